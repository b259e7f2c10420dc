/* test_redis.c: recd --redis end to end — users' state read from and written to a real redis-server, then redis killed
 * under load (every answer still 2xx, the fallback counted) and a new server on the same port picked up again. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/clock.h"
#include "tests/integration/harness.h"
#include "tests/support/redis.h"
#include "tests/support/net.h"

#define WAIT_MS 20000 /* bound on any wait for a condition */

typedef struct st_fixture_t {
    char dir[256], redis_log[300], port_arg[16], redis_addr[64];
    support_proc_t redis;
    redisContext *admin;
    harness_t server;
} fixture_t;

static void start_redis(fixture_t *f)
{
    assert_int_equal(support_redis_start(&f->redis, atoi(f->port_arg), f->redis_log), 0);
    if (f->admin != NULL)
        redisFree(f->admin);
    struct timeval tv = {10, 0};
    f->admin = redisConnectWithTimeout("127.0.0.1", f->redis.port, tv);
    assert_non_null(f->admin);
    assert_int_equal(f->admin->err, 0);
}

static int setup_with_timeout(void **state, const char *timeout_ms)
{
    if (access(SUPPORT_REDIS_SERVER, X_OK) != 0) {
        fprintf(stderr, "%s is not installed (scripts/setup installs it)\n", SUPPORT_REDIS_SERVER);
        return -1;
    }
    fixture_t *f = calloc(1, sizeof(*f));
    if (support_tmpdir_create(f->dir, sizeof(f->dir), "recd-redis-it") != 0)
        return -1;
    snprintf(f->redis_log, sizeof(f->redis_log), "%s/redis.log", f->dir);
    int port = support_free_port();
    snprintf(f->port_arg, sizeof(f->port_arg), "%d", port);
    snprintf(f->redis_addr, sizeof(f->redis_addr), "127.0.0.1:%d", port);
    start_redis(f);
    /* a generous deadline: this test checks what Redis holds and what happens when it dies, not how fast it answers */
    const char *const extra[] = {"--redis", f->redis_addr, "--redis-timeout-ms", timeout_ms, NULL};
    if (harness_start(&f->server, extra) != 0)
        return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with_timeout(state, "2000");
}

/* A short deadline, for the paused-server test (a running server may miss it on a busy machine: nothing asserts it
 * does not). */
static int setup_short_deadline(void **state)
{
    return setup_with_timeout(state, "50");
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int rc = harness_stop(&f->server) == 0 ? 0 : -1; /* a graceful stop exits 0, Redis or not */
    support_proc_stop(&f->redis, 10000);
    if (f->admin != NULL)
        redisFree(f->admin);
    support_remove_tree(f->dir);
    free(f);
    return rc;
}

/* The fallback of a recommendations answer (200 asserted), and whether its items all start with prefix. */
static void recs(fixture_t *f, const char *method, const char *path_or_body, char *fallback, size_t cap, const char *prefix,
                 int *all_prefixed)
{
    harness_response_t res;
    if (strcmp(method, "GET") == 0)
        assert_int_equal(harness_get(f->server.port, path_or_body, &res), 0);
    else
        assert_int_equal(harness_post_json(f->server.port, "/v1/recommendations", path_or_body, &res), 0);
    if (res.status != 200)
        fail_msg("%s %s -> %d %s", method, path_or_body, res.status, res.body);
    json_t *j = json_loads(res.body, 0, NULL);
    assert_non_null(j);
    snprintf(fallback, cap, "%s", json_string_value(json_object_get(j, "fallback")));
    if (all_prefixed != NULL) {
        json_t *items = json_object_get(j, "items");
        *all_prefixed = json_array_size(items) > 0;
        for (size_t i = 0; i < json_array_size(items); ++i)
            if (strncmp(json_string_value(json_object_get(json_array_get(items, i), "item")), prefix, strlen(prefix)) != 0)
                *all_prefixed = 0;
    }
    json_decref(j);
    harness_response_free(&res);
}

/* Polls GET recommendations of user until its fallback is want for `streak` answers in a row (new connections spread over
 * both worker threads, each with its own Redis connection), failing after WAIT_MS. */
static void wait_fallback(fixture_t *f, const char *user, const char *want, int streak)
{
    char path[128], fallback[32] = "";
    snprintf(path, sizeof(path), "/v1/recommendations?user=%s&k=4", user);
    uint64_t deadline = recd_monotonic_ns() + (uint64_t)WAIT_MS * 1000000;
    for (int run = 0; run < streak;) {
        recs(f, "GET", path, fallback, sizeof(fallback), NULL, NULL);
        run = strcmp(fallback, want) == 0 ? run + 1 : 0;
        if (run < streak && recd_monotonic_ns() > deadline)
            fail_msg("user %s: fallback \"%s\" after %d ms, wanted \"%s\" %d times in a row", user, fallback, WAIT_MS, want,
                     streak);
        if (run == 0)
            usleep(5000);
    }
}

static long long metric(fixture_t *f, const char *series)
{
    harness_response_t res;
    char needle[256];
    assert_int_equal(harness_get(f->server.port, "/metrics", &res), 0);
    assert_int_equal(res.status, 200);
    snprintf(needle, sizeof(needle), "\n%s ", series);
    const char *p = strstr(res.body, needle);
    long long v = p != NULL ? atoll(p + strlen(needle)) : -1;
    harness_response_free(&res);
    return v;
}

static redisReply *admin(fixture_t *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(f->admin, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

/* Known users come from the artifact, a user whose state is only in Redis is folded in from it, events land in Redis
 * and are read back (by whichever thread answers next), and the fold is stored back under "<model>@<version>". */
static void test_redis_users_served_from_redis(void **state)
{
    fixture_t *f = *state;
    char fallback[32];
    int prefixed;

    recs(f, "GET", "/v1/recommendations?user=u01&k=4", fallback, sizeof(fallback), NULL, NULL);
    assert_string_equal(fallback, "none");
    recs(f, "GET", "/v1/recommendations?user=stranger&k=4", fallback, sizeof(fallback), NULL, NULL);
    assert_string_equal(fallback, "popular");

    /* state written by someone else (recd-updater, another replica): newest first, "<weight>\t<item>" */
    redisReply *r = admin(f, "RPUSH recd:u:{seeded}:recent %s %s", "1\ti20", "1\ti21");
    freeReplyObject(r);
    recs(f, "GET", "/v1/recommendations?user=seeded&k=4", fallback, sizeof(fallback), "i2", &prefixed);
    assert_string_equal(fallback, "fold_in");
    assert_true(prefixed); /* folded from group 2's items */

    /* events through recd: remembered in Redis (fire-and-forget from another thread's connection, hence the poll) */
    harness_response_t res;
    assert_int_equal(harness_post_json(f->server.port, "/v1/events",
                                       "{\"events\":[{\"user\":\"newbie\",\"item\":\"i30\",\"type\":\"purchase\"},"
                                       "{\"user\":\"newbie\",\"item\":\"i31\",\"type\":\"click\"}]}",
                                       &res),
                     0);
    assert_int_equal(res.status, 202);
    harness_response_free(&res);
    wait_fallback(f, "newbie", "fold_in", 4);
    recs(f, "GET", "/v1/recommendations?user=newbie&k=4", fallback, sizeof(fallback), "i3", &prefixed);
    assert_true(prefixed);
    r = admin(f, "LRANGE recd:u:{newbie}:recent 0 -1");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_non_null(strstr(r->element[0]->str, "\ti31")); /* newest first */
    freeReplyObject(r);
    r = admin(f, "TTL recd:u:{newbie}:recent");
    assert_true(r->integer > 0);
    freeReplyObject(r);
    /* the fold was stored back for the served version */
    r = admin(f, "HGET recd:u:{newbie}:vec demo@1");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_true(r->len > 0 && r->len % 4 == 0);
    freeReplyObject(r);
    assert_true(metric(f, "recd_redis_lookups_total") > 0);
}

typedef struct st_load_t {
    fixture_t *f;
    int id, iterations;
    atomic_int *done; /* requests answered, all clients */
    int non_2xx, five_xx, transport;
    int last_status;
} load_t;

/* One client: a known user, a stranger with recent items, and an event, over and over; no cmocka asserts here. */
static void *load_main(void *arg)
{
    load_t *c = arg;
    char body[256];
    for (int i = 0; i < c->iterations; ++i) {
        for (int kind = 0; kind < 3; ++kind) {
            harness_response_t res;
            int rc;
            if (kind == 0) {
                rc = harness_get(c->f->server.port, "/v1/recommendations?user=u12&k=3", &res);
            } else if (kind == 1) {
                snprintf(body, sizeof(body), "{\"user\":\"anon%d_%d\",\"k\":3,\"recent_items\":[\"i10\",\"i11\"]}", c->id, i);
                rc = harness_post_json(c->f->server.port, "/v1/recommendations", body, &res);
            } else {
                snprintf(body, sizeof(body), "{\"user\":\"load%d\",\"item\":\"i2%d\",\"type\":\"click\"}", c->id, i % 10);
                rc = harness_post_json(c->f->server.port, "/v1/events", body, &res);
            }
            if (rc != 0) {
                ++c->transport;
            } else {
                c->last_status = res.status;
                if (res.status >= 500)
                    ++c->five_xx;
                if (res.status < 200 || res.status >= 300)
                    ++c->non_2xx;
                harness_response_free(&res);
            }
            atomic_fetch_add(c->done, 1);
        }
    }
    return NULL;
}

/* Redis killed while clients are busy: every request still answered 2xx (fallbacks counted as "down"), the fallbacks
 * are the documented ones, and a new redis-server on the same port is used again. */
static void test_redis_killed_under_load_then_restarted(void **state)
{
    enum { N = 3, ITERATIONS = 60 };
    fixture_t *f = *state;
    pthread_t tids[N];
    load_t clients[N];
    atomic_int done = 0;
    const int total = N * ITERATIONS * 3;
    char fallback[32];

    wait_fallback(f, "u12", "none", 1);
    for (int i = 0; i < N; ++i) {
        clients[i] = (load_t){.f = f, .id = i, .iterations = ITERATIONS, .done = &done};
        assert_int_equal(pthread_create(&tids[i], NULL, load_main, &clients[i]), 0);
    }
    /* a third of the load with Redis up, then kill it with the rest still to run */
    uint64_t deadline = recd_monotonic_ns() + (uint64_t)WAIT_MS * 1000000;
    while (atomic_load(&done) < total / 3) {
        if (recd_monotonic_ns() > deadline)
            fail_msg("load stalled at %d of %d requests", atomic_load(&done), total);
        usleep(1000);
    }
    int at_kill = atomic_load(&done);
    kill(f->redis.pid, SIGKILL);
    support_proc_stop(&f->redis, 0); /* reaps it */
    for (int i = 0; i < N; ++i)
        pthread_join(tids[i], NULL);
    if (at_kill >= total)
        fail_msg("the load ended before Redis was killed");
    for (int i = 0; i < N; ++i) {
        if (clients[i].five_xx != 0 || clients[i].non_2xx != 0 || clients[i].transport != 0)
            fail_msg("client %d: %d 5xx, %d non-2xx, %d transport errors (last status %d)", i, clients[i].five_xx,
                     clients[i].non_2xx, clients[i].transport, clients[i].last_status);
    }
    assert_true(metric(f, "recd_redis_fallbacks_total{reason=\"down\"}") > 0);
    assert_true(metric(f, "recd_redis_writes_dropped_total") > 0); /* the events' appends while Redis was away */

    /* with Redis away: the artifact's users as usual, strangers folded in from the request, else popularity; each
     * lookup is one more "down" fallback */
    long long down = metric(f, "recd_redis_fallbacks_total{reason=\"down\"}");
    recs(f, "GET", "/v1/recommendations?user=u12&k=3", fallback, sizeof(fallback), NULL, NULL);
    assert_string_equal(fallback, "none");
    recs(f, "POST", "{\"user\":\"anon\",\"k\":3,\"recent_items\":[\"i10\",\"i11\"]}", fallback, sizeof(fallback), NULL, NULL);
    assert_string_equal(fallback, "fold_in");
    recs(f, "GET", "/v1/recommendations?user=seeded2&k=3", fallback, sizeof(fallback), NULL, NULL);
    assert_string_equal(fallback, "popular");
    assert_int_equal(metric(f, "recd_redis_fallbacks_total{reason=\"down\"}"), down + 3);

    /* a new, empty server on the same port: state written there is served again, on every thread */
    start_redis(f);
    redisReply *r = admin(f, "RPUSH recd:u:{seeded2}:recent %s", "1\ti20");
    freeReplyObject(r);
    wait_fallback(f, "seeded2", "fold_in", 8);
    assert_true(metric(f, "recd_redis_connects_total") >= 4); /* two threads, connected twice each */
}

/* A paused Redis (SIGSTOP) holds every lookup until its deadline: answers are still 200, the timeouts are counted, the
 * breakers open (after which lookups stop waiting), and once Redis resumes the state in it is served again. */
static void test_redis_paused_then_resumed(void **state)
{
    fixture_t *f = *state;
    char fallback[32];
    redisReply *r = admin(f, "RPUSH recd:u:{paused}:recent %s", "1\ti20");
    freeReplyObject(r);
    wait_fallback(f, "paused", "fold_in", 1);

    long long opens = metric(f, "recd_redis_breaker_opens_total");
    assert_int_equal(kill(f->redis.pid, SIGSTOP), 0);
    /* Every lookup on a closed breaker now waits out its deadline (a timeout); five in a row open that thread's breaker,
     * after which its lookups are answered at once (down). Requests spread over both threads: go on until STREAK in a
     * row cost no timeout, every answer a 200 served like a stranger's. */
    enum { STREAK = 16 };
    uint64_t deadline = recd_monotonic_ns() + (uint64_t)WAIT_MS * 1000000;
    long long down_at_streak = 0;
    int n = 0;
    for (int streak = 0; streak < STREAK; ++n) {
        if (recd_monotonic_ns() > deadline)
            fail_msg("after %d requests to a paused Redis, still timing out (%d in a row without)", n, streak);
        long long timeouts = metric(f, "recd_redis_fallbacks_total{reason=\"timeout\"}");
        if (streak == 0)
            down_at_streak = metric(f, "recd_redis_fallbacks_total{reason=\"down\"}");
        recs(f, "GET", "/v1/recommendations?user=paused&k=3", fallback, sizeof(fallback), NULL, NULL);
        assert_string_equal(fallback, "popular"); /* Redis' state unreachable */
        streak = metric(f, "recd_redis_fallbacks_total{reason=\"timeout\"}") == timeouts ? streak + 1 : 0;
    }
    assert_int_equal(metric(f, "recd_redis_fallbacks_total{reason=\"down\"}"), down_at_streak + STREAK);
    assert_true(metric(f, "recd_redis_breaker_opens_total") > opens);
    assert_true(metric(f, "recd_redis_fallbacks_total{reason=\"timeout\"}") >= 5);
    recs(f, "POST", "{\"user\":\"anon\",\"k\":3,\"recent_items\":[\"i10\",\"i11\"]}", fallback, sizeof(fallback), NULL, NULL);
    assert_string_equal(fallback, "fold_in");

    assert_int_equal(kill(f->redis.pid, SIGCONT), 0);
    wait_fallback(f, "paused", "fold_in", 8);
}

int test_redis_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_redis_users_served_from_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_killed_under_load_then_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_paused_then_resumed, setup_short_deadline, teardown),
    };
    return cmocka_run_group_tests_name("redis", tests, NULL, NULL);
}
