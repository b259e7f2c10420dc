/* test_proc.c: the process harness starts, probes and stops real servers (redis-server) and refuses impostors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tests/support/fixtures.h"
#include "tests/support/net.h"
#include "tests/support/proc.h"
#include "tests/support/redis.h"

typedef struct st_fixture_t {
    char dir[256];
    char log[300];
    char port_arg[16];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (support_tmpdir_create(f->dir, sizeof(f->dir), "recd-support") != 0)
        return -1;
    snprintf(f->log, sizeof(f->log), "%s/server.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    support_remove_tree(f->dir);
    free(f);
    return 0;
}

/* Starts redis-server on a free port, without persistence; skips the test when redis-server is not installed. */
static void start_redis(fixture_t *f, support_proc_t *p)
{
    if (access(SUPPORT_REDIS_SERVER, X_OK) != 0) {
        fprintf(stderr, "%s is not installed (scripts/setup installs it)\n", SUPPORT_REDIS_SERVER);
        skip();
    }
    int port = support_free_port();
    assert_true(port > 0);
    snprintf(f->port_arg, sizeof(f->port_arg), "%d", port);
    assert_int_equal(support_redis_start(p, port, f->log), 0);
}

static void test_proc_redis_starts_answers_and_stops(void **state)
{
    fixture_t *f = *state;
    support_proc_t redis;
    char reply[64];

    start_redis(f, &redis);
    pid_t pid = redis.pid;
    assert_true(pid > 0);
    assert_true(support_redis_call(redis.port, "PING", reply, sizeof(reply)) > 0);
    assert_string_equal(reply, "+PONG\r\n");
    assert_true(support_redis_call(redis.port, "SET support-key 42", reply, sizeof(reply)) > 0);
    assert_string_equal(reply, "+OK\r\n");
    assert_true(support_redis_call(redis.port, "GET support-key", reply, sizeof(reply)) > 0);
    assert_string_equal(reply, "$2\r\n42\r\n");

    assert_int_equal(support_proc_stop(&redis, 10000), 0); /* redis exits 0 on SIGTERM */
    assert_int_equal(redis.pid, -1);
    assert_int_equal(kill(pid, 0), -1); /* reaped: the pid is gone */
    assert_int_equal(errno, ESRCH);
    assert_int_equal(support_connect_loopback(redis.port, 1), -1);
    assert_int_equal(support_proc_stop(&redis, 10), -1); /* nothing left to stop */
}

/* A process that never listens, started on a port where another redis answers: the probe sees the other pid. */
static void test_proc_probe_refuses_another_server_on_the_port(void **state)
{
    fixture_t *f = *state;
    support_proc_t redis, impostor;
    char reply[64];

    start_redis(f, &redis);
    const char *argv[] = {"/bin/sleep", "30", NULL};
    support_proc_spec_t spec = {.argv = argv, .port = redis.port, .probe = support_probe_redis};
    assert_int_equal(support_proc_start(&impostor, &spec), -1);
    assert_int_equal(impostor.pid, -1); /* stopped and reaped by the failed start */
    assert_true(WIFSIGNALED(impostor.status));
    assert_true(support_redis_call(redis.port, "PING", reply, sizeof(reply)) > 0);
    assert_int_equal(support_proc_stop(&redis, 10000), 0);
}

static void test_proc_exit_before_ready_fails(void **state)
{
    support_proc_t p;
    const char *argv[] = {"/bin/false", NULL};
    support_proc_spec_t spec = {.argv = argv, .port = support_free_port(), .probe = support_probe_redis};
    assert_int_equal(support_proc_start(&p, &spec), -1);
    assert_int_equal(p.pid, -1);
    assert_true(WIFEXITED(p.status));
    assert_int_equal(WEXITSTATUS(p.status), 1);

    const char *missing[] = {"/nonexistent/server", NULL};
    spec.argv = missing;
    assert_int_equal(support_proc_start(&p, &spec), -1);
    assert_int_equal(WEXITSTATUS(p.status), 127);
}

/* The recd probe checks /healthz's pid too: a sleeping impostor on a running recd's port is refused. */
static void test_proc_recd_probe_refuses_another_recd(void **state)
{
    fixture_t *f = *state;
    support_proc_t recd, impostor;
    char registry[300], events[300], binary[1024], listen[32];
    int port = support_free_port();

    snprintf(registry, sizeof(registry), "%s/registry", f->dir);
    snprintf(events, sizeof(events), "%s/events.jsonl", f->dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    support_binary_path("recd", binary, sizeof(binary));
    assert_int_equal(support_fixture_publish(registry, "demo", 0, 0), 1);
    const char *argv[] = {binary, "--registry", registry, "--model",       "demo", "--listen",
                          listen, "--threads",  "1",      "--events-path", events, NULL};
    support_proc_spec_t spec = {.argv = argv, .log = f->log, .port = port, .probe = support_probe_recd};
    assert_int_equal(support_proc_start(&recd, &spec), 0);

    const char *sleep_argv[] = {"/bin/sleep", "30", NULL};
    support_proc_spec_t imp = {.argv = sleep_argv, .port = port, .probe = support_probe_recd};
    assert_int_equal(support_proc_start(&impostor, &imp), -1);
    assert_int_equal(impostor.pid, -1);
    assert_int_equal(support_proc_stop(&recd, 15000), 0);
}

/* Ready once the script has printed the token it was given in its environment. */
static int probe_token_printed(const support_proc_t *p, void *data)
{
    char buf[256] = "";
    FILE *fp = fopen(p->log, "r");
    if (fp == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strstr(buf, (const char *)data) != NULL;
}

/* A server that ignores SIGTERM is killed once the grace period is over; the environment reaches the child. */
static void test_proc_stop_kills_what_ignores_sigterm(void **state)
{
    fixture_t *f = *state;
    support_proc_t p;
    const char *argv[] = {"/bin/sh", "-c", "trap '' TERM; echo \"token=$SUPPORT_TOKEN\"; exec sleep 30", NULL};
    const char *env[] = {"SUPPORT_TOKEN=run-42", NULL};
    support_proc_spec_t spec = {
        .argv = argv, .env = env, .log = f->log, .probe = probe_token_printed, .probe_data = "token=run-42\n"};

    assert_int_equal(support_proc_start(&p, &spec), 0);
    assert_int_equal(support_proc_stop(&p, 200), -1);
    assert_true(WIFSIGNALED(p.status));
    assert_int_equal(WTERMSIG(p.status), SIGKILL);
}

int test_proc_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_proc_redis_starts_answers_and_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_probe_refuses_another_server_on_the_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_exit_before_ready_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_recd_probe_refuses_another_recd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_stop_kills_what_ignores_sigterm, setup, teardown),
    };
    return cmocka_run_group_tests_name("support", tests, NULL, NULL);
}
