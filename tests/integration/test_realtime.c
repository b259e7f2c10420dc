/* test_realtime.c: the whole real-time loop as real processes on loopback: redis-server, the dev broker, two recd
 * replicas (--redis, --kafka, each its own --wal-dir) and recd-updater. Events for a new user posted to replica A show up
 * in replica B's answer for that user, and kcat reads the same events (same event_ids) from the topic. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/clock.h"
#include "tests/integration/harness.h"
#include "tests/support/redis.h"
#include "tests/support/kafka.h"
#include "tests/support/net.h"

#define TOPIC "recd.events"
#define WAIT_S 30.0 /* bound on waiting for B to see A's events (the updater's first group join included) */
#define POLL_MS 10
#define K 4

typedef struct st_fixture_t {
    char dir[256], registry[300], wal_a[300], wal_b[300], broker_log[300], redis_log[300], updater_log[300];
    char redis_addr[64];
    support_kafka_t kafka;
    support_proc_t redis, updater;
    harness_t a, b;
} fixture_t;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int start_redis(fixture_t *f)
{
    int port = support_free_port();
    snprintf(f->redis_addr, sizeof(f->redis_addr), "127.0.0.1:%d", port);
    return support_redis_start(&f->redis, port, f->redis_log);
}

static int start_updater(fixture_t *f)
{
    char bin[512], listen[64];
    int port = support_free_port();
    support_binary_path("recd-updater", bin, sizeof(bin));
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *argv[] = {bin,       "--kafka",     f->kafka.bootstrap, "--redis", f->redis_addr, "--registry",    f->registry,
                          "--model", HARNESS_MODEL, "--listen",         listen,    "--group",     "test-realtime", NULL};
    support_proc_spec_t spec = {.argv = argv, .log = f->updater_log, .port = port, .probe = support_probe_recd};
    return support_proc_start(&f->updater, &spec);
}

static int start_replica(fixture_t *f, harness_t *h, const char *wal)
{
    const char *extra[] = {"--redis", f->redis_addr, "--kafka", f->kafka.bootstrap, "--wal-dir", wal, NULL};
    return harness_start_registry(h, f->registry, HARNESS_MODEL, extra);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->a.pid = f->b.pid = f->redis.pid = f->updater.pid = f->kafka.proc.pid = -1;
    *state = f;
    if (access(SUPPORT_REDIS_SERVER, X_OK) != 0 || !support_kcat_available()) {
        fprintf(stderr, "test_realtime: redis-server or kcat is not installed (scripts/setup installs them); skipping\n");
        return 0;
    }
    if (support_tmpdir_create(f->dir, sizeof(f->dir), "recd-realtime") != 0)
        return -1;
    snprintf(f->registry, sizeof(f->registry), "%s/registry", f->dir);
    snprintf(f->wal_a, sizeof(f->wal_a), "%s/wal-a", f->dir);
    snprintf(f->wal_b, sizeof(f->wal_b), "%s/wal-b", f->dir);
    snprintf(f->broker_log, sizeof(f->broker_log), "%s/broker.log", f->dir);
    snprintf(f->redis_log, sizeof(f->redis_log), "%s/redis.log", f->dir);
    snprintf(f->updater_log, sizeof(f->updater_log), "%s/updater.log", f->dir);
    if (harness_publish(f->registry, 0, 0) != 1 || start_redis(f) != 0 || support_kafka_start(&f->kafka, f->broker_log) != 0 ||
        start_updater(f) != 0 || start_replica(f, &f->a, f->wal_a) != 0 || start_replica(f, &f->b, f->wal_b) != 0) {
        fprintf(stderr, "test_realtime: cannot start the servers (logs in %s)\n", f->dir);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int rc = 0;
    if (f->a.pid > 0 && harness_stop(&f->a) != 0)
        rc = -1;
    if (f->b.pid > 0 && harness_stop(&f->b) != 0)
        rc = -1;
    if (f->updater.pid > 0 && support_proc_stop(&f->updater, 10000) != 0) {
        fprintf(stderr, "recd-updater did not exit cleanly: %s\n", f->updater_log);
        rc = -1;
    }
    if (f->redis.pid > 0)
        support_proc_stop(&f->redis, 5000);
    support_kafka_stop(&f->kafka);
    if (f->dir[0] != '\0' && rc == 0)
        support_remove_tree(f->dir);
    free(f);
    return rc;
}

/* One recommendations answer of a replica: its fallback and its items, in order. */
typedef struct st_answer_t {
    char fallback[32];
    char items[K][32];
    size_t n;
} answer_t;

static void recommend(const harness_t *h, const char *user, answer_t *out)
{
    char path[160];
    harness_response_t res;
    snprintf(path, sizeof(path), "/v1/recommendations?user=%s&k=%d", user, K);
    assert_int_equal(harness_get(h->port, path, &res), 0);
    if (res.status != 200)
        fail_msg("GET %s on port %d -> %d %s", path, h->port, res.status, res.body);
    json_t *j = json_loads(res.body, 0, NULL);
    assert_non_null(j);
    memset(out, 0, sizeof(*out));
    snprintf(out->fallback, sizeof(out->fallback), "%s", json_string_value(json_object_get(j, "fallback")));
    json_t *items = json_object_get(j, "items");
    for (size_t i = 0; i < json_array_size(items) && out->n < K; ++i)
        snprintf(out->items[out->n++], sizeof(out->items[0]), "%s",
                 json_string_value(json_object_get(json_array_get(items, i), "item")));
    json_decref(j);
    harness_response_free(&res);
}

static int answers_equal(const answer_t *x, const answer_t *y)
{
    if (x->n != y->n)
        return 0;
    for (size_t i = 0; i < x->n; ++i)
        if (strcmp(x->items[i], y->items[i]) != 0)
            return 0;
    return 1;
}

/* Personalised by the events: not the popularity fallback, none of the posted items, only items of their taste group
 * (the generated model's items "i<g><n>" load on factor g), and not the popular list. */
static int reflects(const answer_t *got, const answer_t *popular, const char *const *posted, size_t n_posted, const char *group)
{
    if (strcmp(got->fallback, "popular") == 0 || got->n == 0 || answers_equal(got, popular))
        return 0;
    for (size_t i = 0; i < got->n; ++i) {
        if (strncmp(got->items[i], group, strlen(group)) != 0)
            return 0;
        for (size_t p = 0; p < n_posted; ++p)
            if (strcmp(got->items[i], posted[p]) == 0)
                return 0;
    }
    return 1;
}

/* Posts the events of user to replica A (202 asserted); their event_ids go to ids. */
static void post_events(fixture_t *f, const char *user, const char *const *items, size_t n, char ids[][160])
{
    json_t *events = json_array();
    for (size_t i = 0; i < n; ++i)
        json_array_append_new(events, json_pack("{s:s, s:s, s:s}", "user", user, "item", items[i], "type", "purchase"));
    json_t *body = json_pack("{s:o}", "events", events);
    char *text = json_dumps(body, JSON_COMPACT);
    harness_response_t res;
    assert_int_equal(harness_post_json(f->a.port, "/v1/events", text, &res), 0);
    if (res.status != 202)
        fail_msg("POST /v1/events on A -> %d %s", res.status, res.body);
    json_t *j = json_loads(res.body, 0, NULL);
    json_t *got = json_object_get(j, "event_ids");
    assert_int_equal(json_array_size(got), n);
    for (size_t i = 0; i < n; ++i)
        snprintf(ids[i], 160, "%s", json_string_value(json_array_get(got, i)));
    json_decref(j);
    harness_response_free(&res);
    free(text);
    json_decref(body);
}

/* Polls B until user's answer reflects the events; returns the seconds since since, or fails after WAIT_S. */
static double wait_reflected(fixture_t *f, const char *user, const answer_t *popular, const char *const *posted, size_t n,
                             const char *group, double since)
{
    answer_t got;
    for (;;) {
        recommend(&f->b, user, &got);
        double now = recd_monotonic_seconds();
        if (reflects(&got, popular, posted, n, group))
            return now - since;
        if (now - since > WAIT_S)
            fail_msg("user %s on replica B after %.0f s: fallback \"%s\", %zu items, first \"%s\" (wanted items of %s*, none of "
                     "the posted ones); logs in %s (RECD_KEEP_TMP=1 keeps them)",
                     user, WAIT_S, got.fallback, got.n, got.n > 0 ? got.items[0] : "", group, f->dir);
        sleep_ms(POLL_MS);
    }
}

/* The event_ids of the messages on the topic keyed by user (and naming that user), one per line (malloc'ed). */
static char *topic_ids_of(fixture_t *f, const char *user)
{
    size_t len;
    char *raw = support_kafka_consume(&f->kafka, TOPIC, "%k\t%s\n", &len);
    assert_non_null(raw);
    size_t cap = len + 1, used = 0;
    char *out = calloc(1, cap);
    for (char *line = raw, *eol; (eol = strchr(line, '\n')) != NULL; line = eol + 1) {
        *eol = '\0';
        char *tab = strchr(line, '\t');
        if (tab == NULL)
            continue;
        *tab = '\0';
        json_t *v = json_loads(tab + 1, 0, NULL);
        const char *id = json_string_value(json_object_get(v, "event_id"));
        const char *value_user = json_string_value(json_object_get(v, "user"));
        if (strcmp(line, user) == 0 && id != NULL && value_user != NULL && strcmp(value_user, user) == 0)
            used += (size_t)snprintf(out + used, cap - used, "%s\n", id);
        json_decref(v);
    }
    free(raw);
    return out;
}

static int line_count_of(const char *lines, const char *id)
{
    int n = 0;
    size_t len = strlen(id);
    for (const char *p = lines; (p = strstr(p, id)) != NULL; p += len)
        n += (p == lines || p[-1] == '\n') && p[len] == '\n';
    return n;
}

static void test_realtime_events_on_a_personalise_b(void **state)
{
    fixture_t *f = *state;
    if (f->dir[0] == '\0')
        skip();
    answer_t popular, before;
    recommend(&f->b, "rt-nobody", &popular);
    assert_string_equal(popular.fallback, "popular");

    /* warm-up: the updater's first group join takes seconds; a first user waits it out, so the measured one is steady */
    const char *warm_items[] = {"i20", "i21"};
    char warm_ids[2][160];
    double t0 = recd_monotonic_seconds();
    post_events(f, "rt-warm", warm_items, 2, warm_ids);
    double warm_s = wait_reflected(f, "rt-warm", &popular, warm_items, 2, "i2", t0);

    /* the measured new user: unknown to both replicas until its events go through A, Kafka, the updater and Redis */
    const char *user = "rt-new";
    const char *items[] = {"i30", "i31", "i32"};
    char ids[3][160];
    recommend(&f->b, user, &before);
    assert_string_equal(before.fallback, "popular");
    t0 = recd_monotonic_seconds();
    post_events(f, user, items, 3, ids);
    double fresh_s = wait_reflected(f, user, &popular, items, 3, "i3", t0);
    printf("realtime: event-to-fresh-recommendation on the other replica: %.1f ms (first user, incl. the updater's group "
           "join: %.1f ms)\n",
           fresh_s * 1e3, warm_s * 1e3);

    answer_t after;
    recommend(&f->b, user, &after);
    assert_true(strcmp(after.fallback, "none") == 0 || strcmp(after.fallback, "fold_in") == 0);
    recommend(&f->a, user, &after); /* and A agrees: the state is in Redis, not in either process */
    assert_true(reflects(&after, &popular, items, 3, "i3"));

    /* the topic holds the very events A accepted, once each, keyed by the user */
    char *on_topic = topic_ids_of(f, user);
    for (size_t i = 0; i < 3; ++i)
        if (line_count_of(on_topic, ids[i]) != 1)
            fail_msg("event %s (accepted by A) is on %s %d times; the user's ids there:\n%s", ids[i], TOPIC,
                     line_count_of(on_topic, ids[i]), on_topic);
    free(on_topic);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_realtime_events_on_a_personalise_b),
    };
    return cmocka_run_group_tests_name("realtime", tests, setup, teardown);
}
