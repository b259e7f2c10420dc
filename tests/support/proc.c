/* proc.c: start a server process for a test, tell when it is ready by probing its port, stop it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"
#include "tests/support/redis.h"

extern char **environ;

#define POLL_MS 20

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The test's environment with extra's NAME=VALUE entries added or replacing; the strings are borrowed. */
static char **build_env(const char *const *extra)
{
    size_t n_env = 0, n_extra = 0, n = 0;
    while (environ[n_env] != NULL)
        ++n_env;
    while (extra != NULL && extra[n_extra] != NULL)
        ++n_extra;
    char **env = recd_xcalloc(n_env + n_extra + 1, sizeof(*env));
    for (size_t i = 0; i < n_env; ++i) {
        int replaced = 0;
        for (size_t j = 0; j < n_extra && !replaced; ++j) {
            size_t name_len = strcspn(extra[j], "=");
            replaced = strncmp(environ[i], extra[j], name_len + 1) == 0;
        }
        if (!replaced)
            env[n++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; ++j)
        env[n++] = (char *)extra[j];
    env[n] = NULL;
    return env;
}

/* Runs in the forked child: only async-signal-safe calls, since the test may have other threads. */
static void exec_child(const support_proc_spec_t *spec, char **env, int log_fd, pid_t parent)
{
    static const char msg[] = "support: cannot exec the server\n";
    static const int reset[] = {SIGPIPE, SIGXFSZ, SIGTERM, SIGINT, SIGCHLD};
    sigset_t none;

    /* a failed assertion skips the stop: the server must still go when the test does */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    /* what the test ignored or blocked would otherwise survive exec */
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); ++i)
        signal(reset[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (log_fd >= 0) {
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
    }
    execve(spec->argv[0], (char *const *)spec->argv, env);
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
        _exit(127);
    _exit(127);
}

int support_proc_start(support_proc_t *p, const support_proc_spec_t *spec)
{
    double deadline = recd_monotonic_seconds() + (spec->ready_timeout_ms != 0 ? spec->ready_timeout_ms : 30000) / 1000.0;
    pid_t parent = getpid();
    int log_fd = -1, status;
    char **env;

    memset(p, 0, sizeof(*p));
    p->pid = -1;
    p->port = spec->port;
    if (spec->log != NULL) {
        snprintf(p->log, sizeof(p->log), "%s", spec->log);
        if ((log_fd = open(spec->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
            fprintf(stderr, "support: cannot open %s: %s\n", spec->log, strerror(errno));
            return -1;
        }
    }
    env = build_env(spec->env);
    p->pid = fork();
    if (p->pid == 0)
        exec_child(spec, env, log_fd, parent);
    if (log_fd >= 0)
        close(log_fd);
    free(env);
    if (p->pid < 0) {
        fprintf(stderr, "support: cannot fork: %s\n", strerror(errno));
        return -1;
    }

    for (;;) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            fprintf(stderr, "support: %s exited before it was ready (wait status %d)%s%s\n", spec->argv[0], status,
                    p->log[0] != '\0' ? "; its log: " : "", p->log);
            p->status = status;
            p->pid = -1;
            return -1;
        }
        int ready = spec->probe != NULL ? spec->probe(p, spec->probe_data) : 1;
        if (ready > 0)
            return 0;
        if (ready < 0) {
            fprintf(stderr, "support: another process answers on port %d, not %s (pid %d)\n", p->port, spec->argv[0], (int)p->pid);
            break;
        }
        if (recd_monotonic_seconds() > deadline) {
            fprintf(stderr, "support: %s (pid %d) was not ready on port %d in time\n", spec->argv[0], (int)p->pid, p->port);
            break;
        }
        sleep_ms(POLL_MS);
    }
    support_proc_stop(p, 2000);
    return -1;
}

int support_proc_stop(support_proc_t *p, unsigned grace_ms)
{
    int ret = -1;

    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    for (unsigned waited = 0;; waited += POLL_MS) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid)
            break;
        if (r < 0 && errno != EINTR) {
            p->pid = -1;
            return -1;
        }
        if (waited >= grace_ms) {
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        sleep_ms(POLL_MS);
    }
    if (WIFEXITED(p->status))
        ret = WEXITSTATUS(p->status);
    p->pid = -1;
    return ret;
}

int support_probe_recd(const support_proc_t *p, void *data)
{
    support_http_response_t res;
    const char *pid;
    int ret = -1;

    if (support_http_get(p->port, "/healthz", &res) != 0)
        return 0; /* not listening yet */
    if (res.status == 200 && (pid = strstr(res.body, "\"pid\":")) != NULL && atol(pid + 6) == (long)p->pid)
        ret = 1;
    support_http_response_free(&res);
    return ret;
}

int support_probe_redis(const support_proc_t *p, void *data)
{
    char reply[8192];
    const char *pid;

    if (support_redis_call(p->port, "PING", reply, sizeof(reply)) < 0)
        return 0; /* not listening yet */
    if (strncmp(reply, "-LOADING", 8) == 0)
        return 0;
    if (strcmp(reply, "+PONG\r\n") != 0 || support_redis_call(p->port, "INFO server", reply, sizeof(reply)) < 0 ||
        (pid = strstr(reply, "\r\nprocess_id:")) == NULL)
        return -1;
    return atol(pid + 13) == (long)p->pid ? 1 : -1;
}
