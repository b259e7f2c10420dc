/* test_kafka.c: recd with --kafka against the dev broker: events reach the topic keyed by user with their event_id; an
 * outage plus kill -9 loses nothing answered 202 (after dedup by event_id); a full write-ahead log answers 503 with
 * Retry-After and nothing refused ever reaches the topic. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "base/clock.h"
#include "tests/integration/harness.h"
#include "tests/support/kafka.h"

#define TOPIC "recd.events"
#define WAIT_S 60.0 /* bound on waiting for the topic to hold what was accepted (reconnect backoff, sanitizer builds) */
#define MAX_IDS 512

typedef struct st_fixture_t {
    char dir[256], registry[300], wal[300], broker_log[300];
    support_kafka_t kafka;
    harness_t recd;
} fixture_t;

/* A set of event ids (small: linear search is plenty). */
typedef struct st_ids_t {
    char *ids[MAX_IDS];
    size_t n;
} ids_t;

static int ids_has(const ids_t *s, const char *id)
{
    for (size_t i = 0; i < s->n; ++i)
        if (strcmp(s->ids[i], id) == 0)
            return 1;
    return 0;
}

static void ids_add(ids_t *s, const char *id)
{
    assert_true(s->n < MAX_IDS);
    s->ids[s->n++] = strdup(id);
}

static void ids_clear(ids_t *s)
{
    for (size_t i = 0; i < s->n; ++i)
        free(s->ids[i]);
    s->n = 0;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->recd.pid = -1;
    f->kafka.proc.pid = -1;
    *state = f;
    if (support_tmpdir_create(f->dir, sizeof(f->dir), "recd-kafka") != 0)
        return -1;
    snprintf(f->registry, sizeof(f->registry), "%s/registry", f->dir);
    snprintf(f->wal, sizeof(f->wal), "%s/wal", f->dir);
    snprintf(f->broker_log, sizeof(f->broker_log), "%s/broker.log", f->dir);
    return harness_publish(f->registry, 0, 0) == 1 ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->recd.pid > 0)
        harness_stop(&f->recd);
    support_kafka_stop(&f->kafka);
    support_remove_tree(f->dir);
    free(f);
    return 0;
}

/* Starts the broker, or skips when kcat (the test's consumer) is missing. */
static void start_broker(fixture_t *f)
{
    if (!support_kcat_available()) {
        fprintf(stderr, "kcat is not installed (scripts/setup installs it)\n");
        skip();
    }
    assert_int_equal(support_kafka_start(&f->kafka, f->broker_log), 0);
}

static void start_recd(fixture_t *f, const char *wal_max_bytes)
{
    const char *extra[] = {"--kafka", f->kafka.bootstrap, "--wal-dir", f->wal, "--wal-max-bytes", wal_max_bytes, NULL};
    assert_int_equal(harness_start_registry(&f->recd, f->registry, HARNESS_MODEL, extra), 0);
}

/* kill -9: no drain, no flush; the write-ahead log is all that is left. */
static void crash_recd(fixture_t *f)
{
    assert_int_equal(kill(f->recd.pid, SIGKILL), 0);
    assert_int_equal(harness_stop(&f->recd), -1); /* reaped: it died of the signal */
    assert_true(WIFSIGNALED(f->recd.proc.status) && WTERMSIG(f->recd.proc.status) == SIGKILL);
}

/* POSTs body; returns the status; the event_ids of a 202 are added to accepted; a 503 must carry Retry-After. */
static int post_events(int port, const char *body, ids_t *accepted)
{
    harness_response_t res;
    char retry_after[32];

    assert_int_equal(harness_post_json(port, "/v1/events", body, &res), 0);
    int status = res.status;
    if (status == 202) {
        json_t *j = json_loads(res.body, 0, NULL);
        json_t *ids = json_object_get(j, "event_ids");
        assert_int_equal(json_array_size(ids), json_integer_value(json_object_get(j, "accepted")));
        for (size_t i = 0; i < json_array_size(ids); ++i)
            ids_add(accepted, json_string_value(json_array_get(ids, i)));
        json_decref(j);
    } else if (status == 503) {
        assert_non_null(harness_header(&res, "Retry-After", retry_after, sizeof(retry_after)));
        assert_true(atoi(retry_after) >= 1);
        assert_non_null(strstr(res.body, "\"unavailable\""));
    }
    harness_response_free(&res);
    return status;
}

/* What the topic holds now: each message checked (key = user, Contract A fields); distinct ids into distinct,
 * the number of messages returned. */
static size_t read_topic(const fixture_t *f, ids_t *distinct)
{
    size_t len, messages = 0;
    char *out = support_kafka_consume(&f->kafka, TOPIC, "%k\t%s\n", &len);

    assert_non_null(out);
    ids_clear(distinct);
    for (char *line = out, *eol; (eol = strchr(line, '\n')) != NULL; line = eol + 1) {
        *eol = '\0';
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        json_t *v = json_loads(tab + 1, 0, NULL);
        if (v == NULL)
            fail_msg("a message value is not JSON: %s", tab + 1);
        assert_int_equal(json_integer_value(json_object_get(v, "v")), 1);
        assert_string_equal(json_string_value(json_object_get(v, "user")), line); /* keyed by user */
        assert_true(json_is_string(json_object_get(v, "item")));
        assert_true(json_is_string(json_object_get(v, "type")));
        assert_true(json_is_number(json_object_get(v, "ts")));
        const char *id = json_string_value(json_object_get(v, "event_id"));
        assert_non_null(id);
        if (!ids_has(distinct, id))
            ids_add(distinct, id);
        json_decref(v);
        ++messages;
    }
    free(out);
    return messages;
}

/* Waits (bounded) until the topic holds every accepted id; then checks it holds nothing else. */
static void wait_topic_holds_exactly(const fixture_t *f, const ids_t *accepted)
{
    double deadline = recd_monotonic_seconds() + WAIT_S;
    ids_t consumed = {{0}, 0};
    size_t messages = 0, missing = accepted->n;

    for (;;) {
        messages = read_topic(f, &consumed);
        missing = 0;
        for (size_t i = 0; i < accepted->n; ++i)
            missing += !ids_has(&consumed, accepted->ids[i]);
        if (missing == 0 || recd_monotonic_seconds() > deadline)
            break;
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (missing > 0)
        fail_msg("%zu of %zu events accepted with 202 are not in %s after %.0f s (%zu messages there)", missing, accepted->n, TOPIC,
                 WAIT_S, messages);
    for (size_t i = 0; i < consumed.n; ++i)
        if (!ids_has(accepted, consumed.ids[i]))
            fail_msg("event %s is in %s but was never answered 202", consumed.ids[i], TOPIC);
    assert_int_equal(consumed.n, accepted->n); /* after dedup by event_id: exactly what was accepted */
    assert_true(messages >= consumed.n);
    ids_clear(&consumed);
}

/* The value of an unlabelled series in /metrics, or -1. */
static double metric(int port, const char *name)
{
    harness_response_t res;
    char needle[128];
    double v = -1;

    assert_int_equal(harness_get(port, "/metrics", &res), 0);
    snprintf(needle, sizeof(needle), "\n%s ", name);
    const char *p = strstr(res.body, needle);
    if (p != NULL)
        v = atof(p + strlen(needle));
    harness_response_free(&res);
    return v;
}

/* Waits (bounded) until every record of the log is retired, as /metrics tells. */
static void wait_log_retired(int port)
{
    double deadline = recd_monotonic_seconds() + WAIT_S;
    while (metric(port, "recd_wal_unretired_records") != 0) {
        if (recd_monotonic_seconds() > deadline)
            fail_msg("the write-ahead log still has %.0f unretired records after %.0f s",
                     metric(port, "recd_wal_unretired_records"), WAIT_S);
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_true(metric(port, "recd_wal_oldest_unretired_age_seconds") == 0);
}

static void test_kafka_events_reach_the_topic(void **state)
{
    fixture_t *f = *state;
    ids_t accepted = {{0}, 0};

    start_broker(f);
    start_recd(f, "1048576");
    assert_int_equal(post_events(f->recd.port,
                                 "{\"events\":[{\"user\":\"ka\",\"item\":\"i00\",\"type\":\"click\",\"request_id\":\"r-1\"},"
                                 "{\"user\":\"kb\",\"item\":\"i01\",\"type\":\"rating\",\"value\":4.5,\"ts\":1714564800},"
                                 "{\"user\":\"ka\",\"item\":\"i02\",\"type\":\"view\",\"event_id\":\"client:ka-3\"}]}",
                                 &accepted),
                     202);
    assert_int_equal(accepted.n, 3);
    assert_string_equal(accepted.ids[2], "client:ka-3"); /* the client's own id is kept */
    wait_topic_holds_exactly(f, &accepted);
    wait_log_retired(f->recd.port);
    assert_true(metric(f->recd.port, "recd_kafka_delivered_total") >= 3);
    assert_true(metric(f->recd.port, "recd_kafka_producer_queue_messages") >= 0);
    assert_true(metric(f->recd.port, "recd_wal_bytes") >= 0);

    /* the value is exactly Contract A's object */
    size_t len;
    char *out = support_kafka_consume(&f->kafka, TOPIC, "%s\n", &len);
    assert_non_null(out);
    char want[256];
    snprintf(want, sizeof(want),
             "{\"v\":1,\"event_id\":\"%s\",\"user\":\"kb\",\"item\":\"i01\",\"type\":\"rating\",\"ts\":1714564800,\"value\":4.5,",
             accepted.ids[1]);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "\"type\":\"click\""));
    assert_non_null(strstr(out, "\"request_id\":\"r-1\""));
    free(out);
    assert_int_equal(harness_stop(&f->recd), 0);
    ids_clear(&accepted);
}

/* Brokers down while events are posted, recd killed -9 and restarted, brokers back: every 202 is in the topic once
 * duplicates are dropped by event_id, and nothing else is. */
static void test_kafka_outage_and_crash_lose_nothing(void **state)
{
    fixture_t *f = *state;
    ids_t accepted = {{0}, 0};
    char body[2048];

    start_broker(f);
    start_recd(f, "1048576");
    assert_int_equal(post_events(f->recd.port, "{\"user\":\"before\",\"item\":\"i00\",\"type\":\"view\"}", &accepted), 202);
    wait_topic_holds_exactly(f, &accepted); /* the producer is connected before the outage */

    assert_int_equal(support_kafka_set_down(&f->kafka), 0);
    for (int i = 0; i < 20; ++i) {
        size_t n = (size_t)snprintf(body, sizeof(body), "{\"events\":[");
        for (int e = 0; e < 5; ++e)
            n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"user\":\"down-%d\",\"item\":\"i%d%d\",\"type\":\"click\"}",
                                  e > 0 ? "," : "", i % 7, e % HARNESS_N_GROUPS, i % HARNESS_ITEMS_PER_GROUP);
        snprintf(body + n, sizeof(body) - n, "]}");
        assert_int_equal(post_events(f->recd.port, body, &accepted), 202); /* the log has room: every batch is kept */
    }
    assert_int_equal(accepted.n, 101);
    assert_true(metric(f->recd.port, "recd_wal_unretired_records") >= 100); /* none can be confirmed while down */
    crash_recd(f);

    /* restarted, still without brokers: the log's records wait (replayed into the producer), new events go on top */
    start_recd(f, "1048576");
    assert_true(metric(f->recd.port, "recd_wal_unretired_records") >= 100); /* "before" may be retired already */
    for (int i = 0; i < 5; ++i) {
        snprintf(body, sizeof(body), "{\"user\":\"after-%d\",\"item\":\"i1%d\",\"type\":\"purchase\"}", i, i);
        assert_int_equal(post_events(f->recd.port, body, &accepted), 202);
    }
    assert_true(metric(f->recd.port, "recd_wal_unretired_records") >= 104);

    assert_int_equal(support_kafka_set_up(&f->kafka), 0);
    wait_topic_holds_exactly(f, &accepted);
    wait_log_retired(f->recd.port);
    assert_int_equal(harness_stop(&f->recd), 0);

    /* and a clean restart replays nothing already confirmed... except what was not yet known to be retired: whatever it
     * is, the topic still holds exactly the accepted ids after dedup */
    start_recd(f, "1048576");
    wait_log_retired(f->recd.port);
    wait_topic_holds_exactly(f, &accepted);
    assert_int_equal(harness_stop(&f->recd), 0);
    ids_clear(&accepted);
}

/* A full log: 503 with Retry-After, and an event refused never reaches the topic; room comes back once delivered. */
static void test_kafka_full_log_refuses_what_it_cannot_keep(void **state)
{
    fixture_t *f = *state;
    ids_t accepted = {{0}, 0}, refused = {{0}, 0};
    char body[256], id[32];
    int status = 0;

    start_broker(f);
    assert_int_equal(support_kafka_set_down(&f->kafka), 0);
    start_recd(f, "8192");
    for (int i = 0; i < 400 && refused.n < 5; ++i) {
        snprintf(id, sizeof(id), "full-%d", i);
        snprintf(body, sizeof(body), "{\"user\":\"f%d\",\"item\":\"i0%d\",\"type\":\"view\",\"event_id\":\"%s\"}", i % 3, i % 10,
                 id);
        status = post_events(f->recd.port, body, &accepted);
        if (status == 503)
            ids_add(&refused, id);
        else
            assert_int_equal(status, 202);
    }
    assert_int_equal(refused.n, 5);
    assert_true(accepted.n > 10);
    assert_true(metric(f->recd.port, "recd_wal_bytes") <= 8192);

    assert_int_equal(support_kafka_set_up(&f->kafka), 0);
    wait_topic_holds_exactly(f, &accepted); /* every 202, and none of the refused ones */
    for (size_t i = 0; i < refused.n; ++i)
        assert_false(ids_has(&accepted, refused.ids[i]));
    wait_log_retired(f->recd.port);
    /* the room is back */
    assert_int_equal(
        post_events(f->recd.port, "{\"user\":\"f0\",\"item\":\"i00\",\"type\":\"view\",\"event_id\":\"full-again\"}", &accepted),
        202);
    wait_topic_holds_exactly(f, &accepted);
    assert_int_equal(harness_stop(&f->recd), 0);
    ids_clear(&accepted);
    ids_clear(&refused);
}

int test_kafka_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kafka_events_reach_the_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_outage_and_crash_lose_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_full_log_refuses_what_it_cannot_keep, setup, teardown),
    };
    return cmocka_run_group_tests_name("kafka", tests, NULL, NULL);
}
