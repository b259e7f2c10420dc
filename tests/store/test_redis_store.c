/* test_redis_store.c: the Redis feature store against a real redis-server — round trips, TTLs, one round trip per lookup,
 * the deadline on a paused server, the circuit breaker, and reconnection to a restarted server. The store runs on an h2o
 * loop through api/redis_loop.c, as in recd; the test drives the loop itself and waits on conditions, never on time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/clock.h"
#include "base/error.h"
#include "api/redis_loop.h"
#include "store/redis_store.h"
#include "tests/support/redis.h"
#include "tests/support/fixtures.h"
#include "tests/support/net.h"
#include "tests/support/proc.h"

#define WAIT_MS 20000 /* bound on any wait for a condition (sanitizer builds on a busy machine) */
#define NF 4

typedef struct st_fixture_t {
    char dir[256], log[300], port_arg[16];
    support_proc_t redis;
    redisContext *admin; /* a synchronous connection for checking what the store wrote */
    h2o_evloop_t *loop;
    recd_redis_loop_t *adapter;
    recd_metrics_t *metrics;
    recd_logger_t log_to;
    recd_feature_store_t *store;
    recd_redis_conn_t *conn;
} fixture_t;

/* One lookup's answer, with its own arena (freed by the fixture). */
typedef struct st_lookup_t {
    int done, err;
    recd_feature_user_t out;
    void *blocks[64];
    size_t n_blocks;
} lookup_t;

static void *lookup_alloc(void *ctx, size_t size)
{
    lookup_t *l = ctx;
    assert_true(l->n_blocks < 64);
    return l->blocks[l->n_blocks++] = malloc(size);
}

static void lookup_reset(lookup_t *l)
{
    for (size_t i = 0; i < l->n_blocks; ++i)
        free(l->blocks[i]);
    memset(l, 0, sizeof(*l));
}

static void on_lookup(void *data, int err)
{
    lookup_t *l = data;
    assert_false(l->done);
    l->done = 1;
    l->err = err;
}

static void start_redis(fixture_t *f)
{
    assert_int_equal(support_redis_start(&f->redis, atoi(f->port_arg), f->log), 0);
    if (f->admin != NULL)
        redisFree(f->admin);
    struct timeval tv = {10, 0};
    f->admin = redisConnectWithTimeout("127.0.0.1", f->redis.port, tv);
    assert_non_null(f->admin);
    assert_int_equal(f->admin->err, 0);
}

/* Runs the loop until *flag is set (or, with want 0, cleared), failing with what after WAIT_MS. */
static void run_until(fixture_t *f, const int *flag, int want, const char *what)
{
    uint64_t deadline = recd_monotonic_ns() + (uint64_t)WAIT_MS * 1000000;
    while ((*flag != 0) != want) {
        if (recd_monotonic_ns() > deadline)
            fail_msg("still waiting after %d ms for %s", WAIT_MS, what);
        h2o_evloop_run(f->loop, 10);
    }
}

static void wait_ready(fixture_t *f, int want, const char *what)
{
    uint64_t deadline = recd_monotonic_ns() + (uint64_t)WAIT_MS * 1000000;
    while (recd_redis_conn_ready(f->conn) != want) {
        if (recd_monotonic_ns() > deadline)
            fail_msg("still waiting after %d ms for %s", WAIT_MS, what);
        h2o_evloop_run(f->loop, 10);
    }
}

static void open_store_at(fixture_t *f, const char *host, uint32_t timeout_ms, uint32_t breaker_failures)
{
    recd_redis_config_t rc = {.host = host,
                              .port = (uint16_t)f->redis.port,
                              .timeout_ms = timeout_ms,
                              .vec_ttl_s = 1000,
                              .recent_ttl_s = 2000,
                              .max_recent = 5,
                              .breaker_failures = breaker_failures,
                              .breaker_probe_ms = 20,
                              .backoff_min_ms = 10,
                              .backoff_max_ms = 200};
    f->store = recd_redis_store_create(&rc, f->metrics, &f->log_to);
    f->conn = recd_redis_store_attach(f->store, 0, f->adapter);
    wait_ready(f, 1, "the first connection");
}

static void open_store(fixture_t *f, uint32_t timeout_ms, uint32_t breaker_failures)
{
    open_store_at(f, "127.0.0.1", timeout_ms, breaker_failures);
}

static int setup(void **state)
{
    if (access(SUPPORT_REDIS_SERVER, X_OK) != 0) {
        fprintf(stderr, "%s is not installed (scripts/setup installs it)\n", SUPPORT_REDIS_SERVER);
        return -1;
    }
    fixture_t *f = calloc(1, sizeof(*f));
    if (support_tmpdir_create(f->dir, sizeof(f->dir), "recd-redis-store") != 0)
        return -1;
    snprintf(f->log, sizeof(f->log), "%s/redis.log", f->dir);
    snprintf(f->port_arg, sizeof(f->port_arg), "%d", support_free_port());
    f->loop = h2o_evloop_create();
    f->adapter = recd_api_redis_loop_create(f->loop);
    f->metrics = recd_metrics_create(1);
    f->log_to = (recd_logger_t){RECD_LOG_ERROR, STDERR_FILENO};
    *state = f;
    start_redis(f);
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->redis.pid > 0) {
        kill(f->redis.pid, SIGCONT);
        support_proc_stop(&f->redis, 10000);
    }
    recd_redis_conn_close(f->conn);
    recd_feature_store_free(f->store);
    recd_api_redis_loop_free(f->adapter);
    h2o_evloop_run(f->loop, 0); /* h2o frees closed sockets on its next run */
    h2o_evloop_destroy(f->loop);
    recd_metrics_free(f->metrics);
    if (f->admin != NULL)
        redisFree(f->admin);
    support_remove_tree(f->dir);
    free(f);
    return 0;
}

static uint64_t metric(fixture_t *f, const char *name, const char *labels)
{
    return recd_metric_value(recd_metrics_counter(f->metrics, name, "", labels));
}

/* Looks up user for model version, waiting for the answer; returns the error code of the answer. */
static int get(fixture_t *f, lookup_t *l, const char *user, uint64_t version)
{
    lookup_reset(l);
    recd_feature_query_t q = {user, strlen(user), version, NF, lookup_alloc, l, "m"};
    int ret = recd_feature_store_get(f->store, &q, &l->out, on_lookup, l);
    if (ret != RECD_FEATURE_PENDING)
        return ret;
    run_until(f, &l->done, 1, "a lookup's answer");
    return l->err;
}

/* SIGSTOP is delivered asynchronously: wait until the kernel reports the process stopped, so nothing more is read. */
static void pause_redis(fixture_t *f)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)f->redis.pid);
    assert_int_equal(kill(f->redis.pid, SIGSTOP), 0);
    uint64_t deadline = recd_monotonic_ns() + (uint64_t)WAIT_MS * 1000000;
    for (;;) {
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        size_t n = fread(stat, 1, sizeof(stat) - 1, fp);
        fclose(fp);
        stat[n] = '\0';
        const char *close_paren = strrchr(stat, ')');
        if (close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'T')
            return;
        if (recd_monotonic_ns() > deadline)
            fail_msg("redis-server %d not stopped after SIGSTOP", (int)f->redis.pid);
        usleep(1000);
    }
}

/* Looks up a user of a running Redis: a short deadline may be missed on a loaded machine, so retry (bounded). */
static int get_answered(fixture_t *f, lookup_t *l, const char *user, uint64_t version)
{
    uint64_t deadline = recd_monotonic_ns() + (uint64_t)WAIT_MS * 1000000;
    int err;
    while ((err = get(f, l, user, version)) == RECD_EIO) {
        if (recd_monotonic_ns() > deadline)
            fail_msg("no answer from a running redis after %d ms", WAIT_MS);
        wait_ready(f, 1, "the connection to be usable");
    }
    return err;
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

static long long admin_int(fixture_t *f, const char *fmt, const char *arg)
{
    redisReply *r = admin(f, fmt, arg);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void append(fixture_t *f, const char *user, const char *const *items, const float *weights, size_t n)
{
    recd_feature_item_t v[16];
    for (size_t i = 0; i < n; ++i)
        v[i] = (recd_feature_item_t){items[i], strlen(items[i]), weights[i]};
    recd_feature_store_append(f->store, user, strlen(user), v, n);
}

static void assert_item(const recd_feature_item_t *it, const char *id, float w)
{
    assert_int_equal(it->len, strlen(id));
    assert_memory_equal(it->id, id, it->len);
    assert_true(it->weight == w);
}

/* Appends, reads back oldest first, stores a vector for one version only, and an append drops the stale vector. */
static void test_redis_store_round_trip(void **state)
{
    fixture_t *f = *state;
    lookup_t l = {0};
    open_store(f, 10000, 5);

    assert_int_equal(get(f, &l, "nobody", 1), RECD_ENOTFOUND);
    const char *items[] = {"i1", "item two"};
    const float w[] = {1.0f, 2.5f};
    append(f, "u1", items, w, 2);
    assert_int_equal(get(f, &l, "u1", 7), 0);
    assert_int_equal(l.out.n_items, 2);
    assert_item(&l.out.items[0], "i1", 1.0f);
    assert_item(&l.out.items[1], "item two", 2.5f);
    assert_null(l.out.vec);
    uint64_t seq = l.out.seq;

    const float vec[NF] = {0.5f, -1.25f, 3.0f, 1e-3f};
    recd_feature_store_put_vector(f->store, "u1", 2, seq, "m", 7, vec, NF);
    assert_int_equal(get(f, &l, "u1", 7), 0);
    assert_non_null(l.out.vec);
    assert_int_equal(l.out.n_factors, NF);
    assert_memory_equal(l.out.vec, vec, sizeof(vec));
    assert_true(l.out.seq == seq); /* same items, same state */
    assert_int_equal(get(f, &l, "u1", 8), 0);
    assert_null(l.out.vec); /* another version's vector is not this one's */

    /* the bytes on the wire are Contract B's: float32 little-endian under "<model>@<version>", and the stamp */
    redisReply *r = admin(f, "HGET recd:u:{u1}:vec m@7");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, NF * 4);
    const unsigned char le_half[4] = {0x00, 0x00, 0x00, 0x3f}; /* 0.5f */
    assert_memory_equal(r->str, le_half, 4);
    freeReplyObject(r);
    r = admin(f, "GET recd:u:{u1}:stamp");
    char want[64];
    snprintf(want, sizeof(want), "m@7 %llu", (unsigned long long)seq);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
    r = admin(f, "LINDEX recd:u:{u1}:recent 0");
    assert_string_equal(r->str, "2.5\titem two"); /* newest first */
    freeReplyObject(r);

    const char *more[] = {"i3"};
    const float w3[] = {1.0f};
    append(f, "u1", more, w3, 1);
    assert_int_equal(get(f, &l, "u1", 7), 0);
    assert_null(l.out.vec); /* folded from the previous items: gone */
    assert_int_equal(l.out.n_items, 3);
    assert_item(&l.out.items[2], "i3", 1.0f);
    assert_true(l.out.seq != seq);
    lookup_reset(&l);
}

/* Every write sets its key's TTL, and the recent list is capped at max_recent (the newest kept). */
static void test_redis_store_ttls_and_cap(void **state)
{
    fixture_t *f = *state;
    lookup_t l = {0};
    open_store(f, 10000, 5);

    const char *items[] = {"a", "b", "c", "d", "e", "f", "g"};
    const float w[] = {1, 2, 3, 4, 5, 6, 7};
    append(f, "u2", items, w, 7);
    assert_int_equal(get(f, &l, "u2", 1), 0);
    assert_int_equal(l.out.n_items, 5);
    assert_item(&l.out.items[0], "c", 3);
    assert_item(&l.out.items[4], "g", 7);
    const float vec[NF] = {1, 2, 3, 4};
    recd_feature_store_put_vector(f->store, "u2", 2, l.out.seq, "m", 1, vec, NF);
    assert_int_equal(get(f, &l, "u2", 1), 0); /* orders the check after the writes */
    assert_non_null(l.out.vec);

    assert_int_equal(admin_int(f, "LLEN %s", "recd:u:{u2}:recent"), 5);
    long long ttl = admin_int(f, "TTL %s", "recd:u:{u2}:recent");
    assert_true(ttl > 1000 && ttl <= 2000);
    ttl = admin_int(f, "TTL %s", "recd:u:{u2}:vec");
    assert_true(ttl > 0 && ttl <= 1000);
    ttl = admin_int(f, "TTL %s", "recd:u:{u2}:stamp");
    assert_true(ttl > 0 && ttl <= 1000);
    lookup_reset(&l);
}

static long long info_field(fixture_t *f, const char *section, const char *field)
{
    redisReply *r = admin(f, "INFO %s", section);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char key[128];
    snprintf(key, sizeof(key), "\r\n%s", field);
    const char *p = strstr(r->str, key);
    if (p == NULL)
        fail_msg("INFO %s has no %s", section, field);
    long long v = atoll(p + strlen(key));
    freeReplyObject(r);
    return v;
}

/* A lookup is HGET + LRANGE + HGETALL arriving in one read of the server: one round trip. The server's read counter is
 * global, and a stray read (a probe connection's late EOF) may land in the window, so K lookups are counted: pipelined
 * they cost K reads, one command per round trip would cost 3K. */
#define K_LOOKUPS 16
static void test_redis_store_one_round_trip(void **state)
{
    fixture_t *f = *state;
    lookup_t l = {0};
    open_store(f, 10000, 5);
    const char *items[] = {"x"};
    const float w[] = {1};
    append(f, "u3", items, w, 1);
    assert_int_equal(get(f, &l, "u3", 1), 0);

    /* the admin connection's own INFO costs the same number of reads each time: calibrate it */
    long long r0 = info_field(f, "stats", "total_reads_processed:");
    long long r1 = info_field(f, "stats", "total_reads_processed:");
    long long hget = info_field(f, "commandstats", "cmdstat_hget:calls=");
    long long lrange = info_field(f, "commandstats", "cmdstat_lrange:calls=");
    long long hgetall = info_field(f, "commandstats", "cmdstat_hgetall:calls=");
    long long r2 = info_field(f, "stats", "total_reads_processed:");
    for (int i = 0; i < K_LOOKUPS; ++i)
        assert_int_equal(get(f, &l, "u3", 1), 0);
    long long r3 = info_field(f, "stats", "total_reads_processed:");
    long long reads = r3 - r2 - (r1 - r0);
    if (reads < K_LOOKUPS || reads >= 2 * K_LOOKUPS)
        fail_msg("%d lookups took %lld reads of the server; one round trip each is %d", K_LOOKUPS, reads, K_LOOKUPS);
    assert_int_equal(info_field(f, "commandstats", "cmdstat_hget:calls="), hget + K_LOOKUPS);
    assert_int_equal(info_field(f, "commandstats", "cmdstat_lrange:calls="), lrange + K_LOOKUPS);
    assert_int_equal(info_field(f, "commandstats", "cmdstat_hgetall:calls="), hgetall + K_LOOKUPS);
    lookup_reset(&l);
}

/* A paused Redis answers nothing: the lookup is answered "no state" on its deadline, counted as a timeout, and the late
 * replies are dropped once the server resumes. */
static void test_redis_store_deadline_on_paused_server(void **state)
{
    fixture_t *f = *state;
    lookup_t l = {0};
    open_store(f, 50, 100);
    const char *items[] = {"x"};
    const float w[] = {1};
    append(f, "u4", items, w, 1);
    assert_int_equal(get_answered(f, &l, "u4", 1), 0);

    uint64_t timeouts = metric(f, "recd_redis_fallbacks_total", "reason=\"timeout\"");
    pause_redis(f);
    assert_int_equal(get(f, &l, "u4", 1), RECD_EIO);
    assert_true(l.done);                /* answered through the callback, on the deadline */
    assert_int_equal(l.out.n_items, 0); /* nothing half-filled */
    assert_int_equal(metric(f, "recd_redis_fallbacks_total", "reason=\"timeout\""), timeouts + 1);
    assert_int_equal(kill(f->redis.pid, SIGCONT), 0);

    /* once resumed, lookups are answered by Redis again; the late replies went nowhere */
    assert_int_equal(get_answered(f, &l, "u4", 1), 0);
    assert_int_equal(l.out.n_items, 1);
    lookup_reset(&l);
}

/* breaker_failures consecutive timeouts open the breaker: lookups are then answered at once, without a deadline spent;
 * once Redis answers a probe the breaker closes. */
static void test_redis_store_breaker_opens_and_recovers(void **state)
{
    fixture_t *f = *state;
    lookup_t l = {0};
    open_store(f, 50, 3);
    const char *items[] = {"x"};
    const float w[] = {1};
    append(f, "u5", items, w, 1);
    assert_int_equal(get_answered(f, &l, "u5", 1), 0); /* also resets the count of consecutive timeouts */

    uint64_t timeouts = metric(f, "recd_redis_fallbacks_total", "reason=\"timeout\"");
    pause_redis(f);
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(get(f, &l, "u5", 1), RECD_EIO);
        assert_true(l.done); /* each of these waited for its deadline */
    }
    assert_int_equal(metric(f, "recd_redis_breaker_opens_total", NULL), 1);
    assert_false(recd_redis_conn_ready(f->conn));
    uint64_t down = metric(f, "recd_redis_fallbacks_total", "reason=\"down\"");
    lookup_reset(&l);
    recd_feature_query_t q = {"u5", 2, 1, NF, lookup_alloc, &l, "m"};
    assert_int_equal(recd_feature_store_get(f->store, &q, &l.out, on_lookup, &l), RECD_EIO); /* at once */
    assert_false(l.done);
    assert_int_equal(metric(f, "recd_redis_fallbacks_total", "reason=\"down\""), down + 1);
    assert_int_equal(metric(f, "recd_redis_fallbacks_total", "reason=\"timeout\""), timeouts + 3);

    assert_int_equal(kill(f->redis.pid, SIGCONT), 0);
    wait_ready(f, 1, "the breaker to close after SIGCONT");
    assert_int_equal(get_answered(f, &l, "u5", 1), 0);
    assert_int_equal(l.out.n_items, 1);
    lookup_reset(&l);
}

/* A stopped Redis: lookups and writes cost nothing and are counted; a new server on the same port is found again. */
static void test_redis_store_reconnects_after_restart(void **state)
{
    fixture_t *f = *state;
    lookup_t l = {0};
    open_store(f, 10000, 5);
    const char *items[] = {"x"};
    const float w[] = {1};
    append(f, "u6", items, w, 1);
    assert_int_equal(get(f, &l, "u6", 1), 0);

    assert_int_equal(support_proc_stop(&f->redis, 10000), 0);
    wait_ready(f, 0, "the store to see the server gone");
    uint64_t down = metric(f, "recd_redis_fallbacks_total", "reason=\"down\"");
    assert_int_equal(get(f, &l, "u6", 1), RECD_EIO);
    assert_false(l.done); /* answered at once */
    assert_int_equal(metric(f, "recd_redis_fallbacks_total", "reason=\"down\""), down + 1);
    append(f, "u6", items, w, 1);
    assert_int_equal(metric(f, "recd_redis_writes_dropped_total", NULL), 1);

    start_redis(f); /* a fresh server, empty, on the same port */
    wait_ready(f, 1, "the store to reconnect to the new server");
    assert_int_equal(get(f, &l, "u6", 1), RECD_ENOTFOUND);
    append(f, "u6", items, w, 1);
    assert_int_equal(get(f, &l, "u6", 1), 0);
    assert_int_equal(l.out.n_items, 1);
    assert_true(metric(f, "recd_redis_connects_total", NULL) >= 2);
    lookup_reset(&l);
}

/* A key of the wrong type is an error reply: "no state", counted as an error; malformed list elements are skipped. */
static void test_redis_store_error_reply_and_bad_elements(void **state)
{
    fixture_t *f = *state;
    lookup_t l = {0};
    open_store(f, 10000, 5);
    freeReplyObject(admin(f, "SET recd:u:{wrong}:recent %s", "not a list"));
    assert_int_equal(get(f, &l, "wrong", 1), RECD_EIO);
    assert_true(l.done);
    assert_int_equal(metric(f, "recd_redis_fallbacks_total", "reason=\"error\""), 1);
    assert_int_equal(metric(f, "recd_redis_fallbacks_total", "reason=\"timeout\""), 0);

    freeReplyObject(admin(f, "RPUSH recd:u:{odd}:recent %s %s %s %s %s", "2\tgood", "nan\tx", "1.5", "abc\ty", "1\t"));
    freeReplyObject(admin(f, "HSET recd:u:{odd}:vec m@1 %s", "short")); /* not n_factors floats */
    assert_int_equal(get(f, &l, "odd", 1), 0);
    assert_int_equal(l.out.n_items, 1);
    assert_item(&l.out.items[0], "good", 2.0f);
    assert_null(l.out.vec);
    lookup_reset(&l);
}

/* A host name is resolved once, when the store is created (hiredis would resolve it on the loop at every connect). */
static void test_redis_store_host_name(void **state)
{
    fixture_t *f = *state;
    lookup_t l = {0};
    open_store_at(f, "localhost", 10000, 5);
    assert_int_equal(get(f, &l, "nobody", 1), RECD_ENOTFOUND);
    lookup_reset(&l);
}

/* A lookup on a thread that never attached is answered "no state" at once. */
static void test_redis_store_unattached_thread(void **state)
{
    fixture_t *f = *state;
    recd_redis_config_t rc = {.host = "127.0.0.1", .port = (uint16_t)f->redis.port, .timeout_ms = 5, .max_recent = 5};
    recd_feature_store_t *other = recd_redis_store_create(&rc, NULL, &f->log_to);
    lookup_t l = {0};
    recd_feature_query_t q = {"u", 1, 1, NF, lookup_alloc, &l, "m"};
    assert_int_equal(recd_feature_store_get(other, &q, &l.out, on_lookup, &l), RECD_EIO);
    assert_false(l.done);
    recd_feature_store_free(other);
}

int test_redis_store_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_redis_store_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_store_ttls_and_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_store_one_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_store_deadline_on_paused_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_store_breaker_opens_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_store_reconnects_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_store_error_reply_and_bad_elements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_store_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_store_unattached_thread, setup, teardown),
    };
    return cmocka_run_group_tests_name("redis_store", tests, NULL, NULL);
}

int main(void)
{
    return test_redis_store_run() != 0;
}
