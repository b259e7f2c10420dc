/* test_updater.c: recd-updater against a real redis-server and a Kafka-protocol broker (librdkafka's mock cluster in this
 * process, on loopback): events become the user's recent list and folded vector in Redis; duplicates and garbage are
 * dropped; a kill -9 mid-stream or while Redis is down skips no event and applies none twice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/error.h"
#include "registry/control.h"
#include "tests/support/redis.h"
#include "tests/support/fixtures.h"
#include "tests/support/http.h"
#include "tests/support/net.h"
#include "tests/support/proc.h"
#include "updater/updater.h"

#define MODEL "demo"
#define WAIT_MS 120000 /* bound on every wait: a rejoin after a kill -9 can wait out the 30 s rebalance timeout */

typedef struct st_fixture_t {
    char dir[256], registry[300], redis_log[300], updater_log[300];
    support_proc_t redis, updater;
    rd_kafka_t *host, *producer;
    rd_kafka_mock_cluster_t *mc;
    char bootstraps[512];
    recd_model_t *model;
} fixture_t;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int start_redis(fixture_t *fx, int port)
{
    return support_redis_start(&fx->redis, port, fx->redis_log);
}

static int start_updater(fixture_t *fx)
{
    char bin[512], redis[64], listen[64];
    support_binary_path("recd-updater", bin, sizeof(bin));
    int port = support_free_port();
    snprintf(redis, sizeof(redis), "127.0.0.1:%d", fx->redis.port);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *argv[] = {bin,       "--kafka", fx->bootstraps, "--redis", redis,     "--registry",   fx->registry,
                          "--model", MODEL,     "--listen",     listen,    "--group", "test-updater", "--redis-timeout-ms",
                          "500",     NULL};
    support_proc_spec_t spec = {.argv = argv, .log = fx->updater_log, .port = port, .probe = support_probe_recd};
    return support_proc_start(&fx->updater, &spec);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    char err[512], path[400];
    if (access("/usr/bin/redis-server", X_OK) != 0) {
        fprintf(stderr, "test_updater: redis-server not installed; skipping\n");
        free(fx);
        return -1;
    }
    assert_int_equal(support_tmpdir_create(fx->dir, sizeof(fx->dir), "recd-updater-it"), 0);
    snprintf(fx->registry, sizeof(fx->registry), "%s/registry", fx->dir);
    snprintf(fx->redis_log, sizeof(fx->redis_log), "%s/redis.log", fx->dir);
    snprintf(fx->updater_log, sizeof(fx->updater_log), "%s/updater.log", fx->dir);
    assert_int_equal(support_fixture_publish(fx->registry, MODEL, 0, 0), 1);
    snprintf(path, sizeof(path), "%s/model.recd", fx->dir);
    assert_int_equal(support_fixture_write_artifact(path, 0, 0), 0);
    assert_non_null(fx->model = recd_model_open(path, err, sizeof(err)));

    /* the broker: a mock cluster of 3 owned by a handle of this process, the topic with 4 partitions */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)), RD_KAFKA_CONF_OK); /* it connects nowhere */
    assert_non_null(fx->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
    rd_kafka_mock_cluster_t *mc = fx->mc = rd_kafka_mock_cluster_new(fx->host, 3);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "recd.events", 4, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
    snprintf(fx->bootstraps, sizeof(fx->bootstraps), "%s", rd_kafka_mock_cluster_bootstraps(mc));
    conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", fx->bootstraps, err, sizeof(err)), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err)), RD_KAFKA_CONF_OK);
    assert_non_null(fx->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));

    if (start_redis(fx, support_free_port()) != 0 || start_updater(fx) != 0) {
        fprintf(stderr, "test_updater: cannot start the servers (logs in %s)\n", fx->dir);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    if (fx->updater.pid > 0 && support_proc_stop(&fx->updater, 10000) != 0)
        fprintf(stderr, "recd-updater did not exit cleanly: %s\n", fx->updater_log);
    if (fx->redis.pid > 0)
        support_proc_stop(&fx->redis, 5000);
    rd_kafka_destroy(fx->producer);
    rd_kafka_mock_cluster_destroy(fx->mc);
    rd_kafka_destroy(fx->host);
    recd_model_release(fx->model);
    support_remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------------------------------ */

static void produce_raw(fixture_t *fx, const char *user, const char *value)
{
    rd_kafka_resp_err_t e =
        rd_kafka_producev(fx->producer, RD_KAFKA_V_TOPIC("recd.events"), RD_KAFKA_V_KEY(user, strlen(user)),
                          RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void produce(fixture_t *fx, const char *event_id, const char *user, const char *item, const char *type)
{
    char value[512];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(value, sizeof(value), "{\"v\":1,\"event_id\":\"%s\",\"user\":\"%s\",\"item\":\"%s\",\"type\":\"%s\",\"ts\":%.3f}",
             event_id, user, item, type, (double)now.tv_sec + now.tv_nsec / 1e9);
    produce_raw(fx, user, value);
}

static void flush(fixture_t *fx)
{
    assert_int_equal(rd_kafka_flush(fx->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static redisContext *redis(fixture_t *fx)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", fx->redis.port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    return c;
}

static long long redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* The value of a counter series in recd-updater's /metrics (0 when absent). */
static double metric(fixture_t *fx, const char *series)
{
    support_http_response_t res;
    double v = 0;
    if (support_http_get(fx->updater.port, "/metrics", &res) != 0)
        return -1;
    const char *p = strstr(res.body, series);
    if (p != NULL && p[strlen(series)] == ' ')
        v = atof(p + strlen(series) + 1);
    support_http_response_free(&res);
    return v;
}

typedef int (*cond_cb)(fixture_t *fx, void *data);

static void wait_for(fixture_t *fx, cond_cb cond, void *data, const char *what)
{
    for (unsigned waited = 0; waited < WAIT_MS; waited += 50) {
        if (cond(fx, data))
            return;
        sleep_ms(50);
    }
    fail_msg("timed out after %d ms waiting for %s (logs: %s, %s)", WAIT_MS, what, fx->updater_log, fx->redis_log);
}

typedef struct st_key_cond_t {
    const char *user, *field;
    long long llen;
} key_cond_t;

static int has_vector(fixture_t *fx, void *data)
{
    key_cond_t *k = data;
    redisContext *c = redis(fx);
    int ok = redis_int(c, "HEXISTS recd:u:{%s}:vec %s", k->user, k->field) == 1;
    redisFree(c);
    return ok;
}

static int has_llen(fixture_t *fx, void *data)
{
    key_cond_t *k = data;
    redisContext *c = redis(fx);
    int ok = redis_int(c, "LLEN recd:u:{%s}:recent", k->user) == k->llen;
    redisFree(c);
    return ok;
}

typedef struct st_metric_cond_t {
    const char *series;
    double at_least;
} metric_cond_t;

static int metric_reached(fixture_t *fx, void *data)
{
    metric_cond_t *m = data;
    return metric(fx, m->series) >= m->at_least;
}

/* The vector Redis holds for user under field, as floats (fails when absent or of the wrong length). */
static void stored_vector(fixture_t *fx, const char *user, const char *field, float *out, uint32_t nf)
{
    redisContext *c = redis(fx);
    redisReply *r = redisCommand(c, "HGET recd:u:{%s}:vec %s", user, field);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, nf * 4);
    for (uint32_t f = 0; f < nf; ++f) {
        const unsigned char *p = (const unsigned char *)r->str + 4 * f;
        uint32_t x = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&out[f], &x, 4);
    }
    freeReplyObject(r);
    redisFree(c);
}

/* got equals the fold want, factor by factor, within float rounding of the Redis round trip. */
static void assert_same_fold(const char *what, const float *got, const float *want, uint32_t nf)
{
    for (uint32_t f = 0; f < nf; ++f)
        if (fabsf(got[f] - want[f]) > 1e-6f * (1 + fabsf(want[f])))
            fail_msg("%s factor %u: Redis holds %g, recd folds %g", what, f, got[f], want[f]);
}

/* ---- tests -------------------------------------------------------------------------------------------------------- */

/* A new user's events: recent list newest first, the vector equal to recd's fold of that list, the stamp, the TTLs. */
static void test_updater_writes_recent_items_and_folded_vector(void **state)
{
    fixture_t *fx = *state;
    produce(fx, "a-1", "rt-new", "i00", "click");
    produce(fx, "a-2", "rt-new", "i01", "view");
    produce(fx, "a-3", "rt-new", "i02", "purchase");
    flush(fx);
    key_cond_t k = {"rt-new", MODEL "@1", 3};
    wait_for(fx, has_llen, &k, "3 recent items of rt-new");
    wait_for(fx, has_vector, &k, "rt-new's vector for demo@1");

    redisContext *c = redis(fx);
    redisReply *r = redisCommand(c, "LRANGE recd:u:{rt-new}:recent 0 -1");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "5\ti02");
    assert_string_equal(r->element[1]->str, "1\ti01");
    assert_string_equal(r->element[2]->str, "2\ti00");
    recd_updater_entry_t entries[3];
    for (int i = 0; i < 3; ++i)
        assert_int_equal(recd_updater_entry_parse(r->element[i]->str, r->element[i]->len, &entries[i]), 0);
    float want[64];
    uint32_t nf = recd_model_n_factors(fx->model);
    assert_int_equal(recd_updater_fold(fx->model, "rt-new", 6, entries, 3, want), 0);
    freeReplyObject(r);

    /* the vector may be rewritten by a later batch of the same list; it is the same fold either way */
    float got[64];
    stored_vector(fx, "rt-new", MODEL "@1", got, nf);
    assert_same_fold("rt-new", got, want, nf);
    r = redisCommand(c, "GET recd:u:{rt-new}:stamp");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_true(strncmp(r->str, MODEL "@1 ", strlen(MODEL) + 3) == 0);
    freeReplyObject(r);
    assert_true(redis_int(c, "TTL recd:u:{rt-new}:vec") > 0);
    assert_true(redis_int(c, "TTL recd:u:{rt-new}:recent") > 0);
    assert_true(redis_int(c, "TTL recd:u:{rt-new}:stamp") > 0);
    long long ttl = redis_int(c, "TTL recd:e:{rt-new}:a-2");
    assert_true(ttl > 0 && ttl <= 86400);
    redisFree(c);
    assert_true(metric(fx, "recd_updater_event_to_redis_seconds_count") >= 3);
}

/* A replayed event_id and a message that is not an event change nothing, and are counted. */
static void test_updater_drops_duplicates_and_garbage(void **state)
{
    fixture_t *fx = *state;
    metric_cond_t dup = {"recd_updater_events_total{result=\"duplicate\"}", metric(fx, dup.series) + 1};
    metric_cond_t bad = {"recd_updater_events_total{result=\"invalid\"}", metric(fx, bad.series) + 2};
    produce(fx, "b-1", "rt-dup", "i10", "click");
    flush(fx);
    key_cond_t k = {"rt-dup", MODEL "@1", 1};
    wait_for(fx, has_vector, &k, "rt-dup's vector");
    produce(fx, "b-1", "rt-dup", "i11", "click"); /* same id, even with another item: a replay */
    produce_raw(fx, "rt-dup", "{not json");
    produce_raw(fx, "rt-dup", "{\"v\":1,\"user\":\"rt-dup\",\"item\":\"i12\",\"type\":\"like\",\"ts\":1}");
    flush(fx);
    wait_for(fx, metric_reached, &dup, "the duplicate to be counted");
    wait_for(fx, metric_reached, &bad, "the two bad messages to be counted");
    redisContext *c = redis(fx);
    assert_int_equal(redis_int(c, "LLEN recd:u:{rt-dup}:recent"), 1);
    redisFree(c);
}

/* The apply script on its own, against the real server: running it twice applies each event once. */
static void test_apply_script_is_idempotent(void **state)
{
    fixture_t *fx = *state;
    recd_updater_batch_t *b = recd_updater_batch_create();
    recd_updater_limits_t lim = {.max_recent = 3, .recent_ttl_s = 60, .vec_ttl_s = 60, .dedup_ttl_s = 60};
    char json[256], err[128];
    for (int i = 0; i < 5; ++i) {
        snprintf(json, sizeof(json),
                 "{\"v\":1,\"event_id\":\"s-%d\",\"user\":\"script\",\"item\":\"i%d\",\"type\":\"view\",\"ts\":1}", i % 4, i);
        assert_int_equal(recd_updater_batch_add(b, json, strlen(json), i, "x", err, sizeof(err)), 0);
    }
    size_t n;
    const recd_updater_user_t *u = recd_updater_batch_users(b, &n);
    assert_int_equal(n, 1);
    redisContext *c = redis(fx);
    for (int round = 0; round < 2; ++round) {
        recd_updater_cmd_t cmd;
        recd_updater_cmd_apply(b, &u[0], &lim, &cmd);
        redisReply *r = redisCommandArgv(c, cmd.argc, cmd.argv, cmd.argvlen);
        assert_non_null(r);
        if (r->type == REDIS_REPLY_ERROR)
            fail_msg("script: %s", r->str);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        /* round 0: s-0..s-3 applied, the fifth event reuses s-0; round 1: nothing new. LTRIM keeps 3, newest first */
        assert_int_equal(r->element[0]->integer, round == 0 ? 4 : 0);
        assert_int_equal(r->elements, 1 + 3);
        assert_string_equal(r->element[1]->str, "1\ti3");
        assert_string_equal(r->element[3]->str, "1\ti1");
        freeReplyObject(r);
    }
    redisFree(c);
    recd_updater_batch_free(b);
}

typedef struct st_count_cond_t {
    int n_users, per_user;
} count_cond_t;

static int all_counts(fixture_t *fx, void *data)
{
    count_cond_t *cc = data;
    redisContext *c = redis(fx);
    int ok = 1;
    for (int u = 0; u < cc->n_users && ok; ++u)
        ok = redis_int(c, "LLEN recd:u:{kill-%d}:recent", u) >= cc->per_user;
    redisFree(c);
    return ok;
}

/* kill -9 mid-stream, more events while it is down, restart: every event applied exactly once. */
static void test_updater_killed_mid_stream_skips_nothing(void **state)
{
    fixture_t *fx = *state;
    enum { USERS = 20, PER_USER = 20 };
    char id[32], user[32], item[8];
    metric_cond_t some = {"recd_updater_events_total{result=\"applied\"}", metric(fx, some.series) + 1};
    for (int e = 0; e < PER_USER; ++e)
        for (int u = 0; u < USERS; ++u) {
            snprintf(id, sizeof(id), "kill-%d-%d", u, e);
            snprintf(user, sizeof(user), "kill-%d", u);
            snprintf(item, sizeof(item), "i%d%d", u % 4, e % 10);
            produce(fx, id, user, item, "view");
            if (e == PER_USER / 2 && u == 0) {
                flush(fx);
                wait_for(fx, metric_reached, &some, "the first events of the stream to be applied");
                kill(fx->updater.pid, SIGKILL);
                support_proc_stop(&fx->updater, 1000); /* reaps it */
            }
        }
    flush(fx);
    assert_int_equal(start_updater(fx), 0);
    count_cond_t cc = {USERS, PER_USER};
    wait_for(fx, all_counts, &cc, "every user's 20 events after the restart");
    redisContext *c = redis(fx);
    for (int u = 0; u < USERS; ++u) {
        assert_int_equal(redis_int(c, "LLEN recd:u:{kill-%d}:recent", u), PER_USER); /* no event applied twice */
        for (int e = 0; e < PER_USER; ++e)
            assert_int_equal(redis_int(c, "EXISTS recd:e:{kill-%d}:kill-%d-%d", u, u, e), 1);
        assert_int_equal(redis_int(c, "HEXISTS recd:u:{kill-%d}:vec %s", u, MODEL "@1"), 1);
    }
    redisFree(c);
}

/* Redis down: the batch cannot be written, so its offsets are never committed; kill -9 the updater, bring Redis back
 * (empty) and restart it: the events are all there. */
static void test_updater_commits_only_after_redis_writes(void **state)
{
    fixture_t *fx = *state;
    int port = fx->redis.port;
    metric_cond_t tried = {"recd_updater_redis_errors_total{kind=\"connect\"}", metric(fx, tried.series) + 1};
    assert_int_equal(support_proc_stop(&fx->redis, 5000), 0);
    char id[32], item[8];
    for (int e = 0; e < 10; ++e) {
        snprintf(id, sizeof(id), "down-%d", e);
        snprintf(item, sizeof(item), "i2%d", e);
        produce(fx, id, "rd-user", item, "click");
    }
    flush(fx);
    wait_for(fx, metric_reached, &tried, "the updater to find Redis down");
    kill(fx->updater.pid, SIGKILL);
    support_proc_stop(&fx->updater, 1000);
    assert_int_equal(start_redis(fx, port), 0);
    assert_int_equal(start_updater(fx), 0);
    key_cond_t k = {"rd-user", MODEL "@1", 10};
    wait_for(fx, has_llen, &k, "rd-user's 10 events once Redis is back");
    wait_for(fx, has_vector, &k, "rd-user's vector");
}

/* The user's recent list from Redis, parsed into out (which points into the reply: free it after use); *n its length. */
static redisReply *stored_entries(fixture_t *fx, const char *user, recd_updater_entry_t *out, size_t cap, size_t *n)
{
    redisContext *c = redis(fx);
    redisReply *r = redisCommand(c, "LRANGE recd:u:{%s}:recent 0 -1", user);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(r->elements <= cap);
    for (size_t i = 0; i < r->elements; ++i)
        assert_int_equal(recd_updater_entry_parse(r->element[i]->str, r->element[i]->len, &out[i]), 0);
    *n = r->elements;
    redisFree(c);
    return r;
}

static int activate_edit(recd_control_t *c, void *data)
{
    recd_control_activate(c, *(const uint64_t *)data);
    return RECD_OK;
}

/* Events after an activation change fold the user's whole list against the newly active version. */
static void check_follows(fixture_t *fx, const char *user, const char *field, const recd_model_t *m, int *next_event)
{
    key_cond_t k = {user, field, 0};
    /* the updater loads the change on its own schedule: events keep coming until one is folded under the new version */
    for (unsigned waited = 0; !has_vector(fx, &k); waited += 200) {
        char id[32];
        if (waited >= WAIT_MS)
            fail_msg("no vector for %s under %s after %d ms (log: %s)", user, field, WAIT_MS, fx->updater_log);
        snprintf(id, sizeof(id), "act-%d", (*next_event)++);
        produce(fx, id, user, "i11", "view");
        flush(fx);
        sleep_ms(200);
    }
    recd_updater_entry_t entries[64];
    float want[64], got[64];
    uint32_t nf = recd_model_n_factors(m);
    /* read the list, then the vector, then the list again: equal lists mean the vector is the fold of that list */
    for (int tries = 0;; ++tries) {
        size_t n, n_again;
        recd_updater_entry_t again[64];
        redisReply *list = stored_entries(fx, user, entries, 64, &n);
        stored_vector(fx, user, field, got, nf);
        freeReplyObject(stored_entries(fx, user, again, 64, &n_again));
        if (n_again == n) {
            assert_int_equal(recd_updater_fold(m, user, strlen(user), entries, n, want), 0);
            freeReplyObject(list);
            break;
        }
        freeReplyObject(list);
        assert_true(tries < 100);
    }
    assert_same_fold(field, got, want, nf);
}

static void test_updater_follows_activation_changes(void **state)
{
    fixture_t *fx = *state;
    char err[512], path[400];
    int next_event = 0;
    produce(fx, "act-first", "rt-act", "i00", "purchase");
    flush(fx);
    key_cond_t k1 = {"rt-act", MODEL "@1", 1};
    wait_for(fx, has_vector, &k1, "rt-act's vector for demo@1");

    /* a new version (items shifted: it folds differently) becomes the newest, so it is served */
    assert_int_equal(support_fixture_publish(fx->registry, MODEL, 1, 0), 2);
    snprintf(path, sizeof(path), "%s/model-v2.recd", fx->dir);
    assert_int_equal(support_fixture_write_artifact(path, 1, 0), 0);
    recd_model_t *v2 = recd_model_open(path, err, sizeof(err));
    assert_non_null(v2);
    check_follows(fx, "rt-act", MODEL "@2", v2, &next_event);

    /* an SRE activates version 1 again: the next events fold under it, with everything since */
    uint64_t v = 1;
    redisContext *c = redis(fx);
    redisReply *r = redisCommand(c, "HDEL recd:u:{rt-act}:vec " MODEL "@1");
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(recd_control_update(fx->registry, MODEL, activate_edit, &v, NULL, err, sizeof(err)), RECD_OK);
    check_follows(fx, "rt-act", MODEL "@1", fx->model, &next_event);
    recd_model_release(v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_updater_writes_recent_items_and_folded_vector),
        cmocka_unit_test(test_updater_drops_duplicates_and_garbage),
        cmocka_unit_test(test_apply_script_is_idempotent),
        cmocka_unit_test(test_updater_killed_mid_stream_skips_nothing),
        cmocka_unit_test(test_updater_commits_only_after_redis_writes),
        cmocka_unit_test(test_updater_follows_activation_changes), /* last: it leaves version 1 active with 2 published */
    };
    return cmocka_run_group_tests_name("updater_integration", tests, setup, teardown);
}
