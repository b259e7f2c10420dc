/* test_server.c: recd end to end over HTTP — every endpoint's happy path and JSON shape, bad input, events, metrics. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include "tests/integration/harness.h"

static harness_t server;

static int setup(void **state)
{
    static const char *const extra[] = {"--max-body-bytes", "4096", NULL};
    return harness_start(&server, extra);
}

static int teardown(void **state)
{
    /* a graceful stop exits 0 */
    return harness_stop(&server) == 0 ? 0 : -1;
}

/* Sends a request, checks the status, JSON content type and Content-Length, and returns the parsed body. */
static json_t *call(const char *method, const char *path, const char *ctype, const char *body, int expect_status)
{
    harness_response_t res;
    char ct[128];
    json_error_t jerr;
    assert_int_equal(harness_request(server.port, method, path, ctype, body, body ? strlen(body) : 0, NULL, &res), 0);
    if (res.status != expect_status)
        fprintf(stderr, "%s %s -> %d %s\n", method, path, res.status, res.body);
    assert_int_equal(res.status, expect_status);
    assert_true(res.has_content_length);
    assert_non_null(harness_header(&res, "content-type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_t *j = json_loads(res.body, 0, &jerr);
    if (j == NULL)
        fprintf(stderr, "not JSON: %s\n", res.body);
    assert_non_null(j);
    harness_response_free(&res);
    return j;
}

static json_t *get(const char *path, int expect_status)
{
    return call("GET", path, NULL, NULL, expect_status);
}

static json_t *post(const char *path, const char *body, int expect_status)
{
    return call("POST", path, "application/json", body, expect_status);
}

static const char *str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* Checks the recommendations shape and returns the items array (borrowed). */
static json_t *check_recs(json_t *j, const char *user, const char *model, const char *fallback, size_t k)
{
    assert_int_equal(strlen(str(j, "request_id")), 16);
    assert_string_equal(str(j, "user"), user);
    assert_string_equal(str(j, "model"), model);
    assert_true(json_is_null(json_object_get(j, "experiment")));
    assert_true(json_is_null(json_object_get(j, "arm")));
    assert_string_equal(str(j, "fallback"), fallback);
    json_t *items = json_object_get(j, "items");
    assert_true(json_is_array(items));
    assert_int_equal(json_array_size(items), k);
    double prev = 1e30;
    for (size_t i = 0; i < json_array_size(items); ++i) {
        json_t *it = json_array_get(items, i);
        assert_true(json_is_string(json_object_get(it, "item")));
        assert_true(json_is_number(json_object_get(it, "score")));
        double s = json_number_value(json_object_get(it, "score"));
        assert_true(s <= prev);
        prev = s;
    }
    return items;
}

static const char *item_at(json_t *items, size_t i)
{
    return json_string_value(json_object_get(json_array_get(items, i), "item"));
}

static int contains_item(json_t *items, const char *id)
{
    for (size_t i = 0; i < json_array_size(items); ++i)
        if (strcmp(item_at(items, i), id) == 0)
            return 1;
    return 0;
}

static void assert_error(json_t *j, const char *code)
{
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_object(e));
    assert_string_equal(str(e, "code"), code);
    assert_true(strlen(str(e, "message")) > 0);
}

static void test_health_healthz(void **state)
{
    json_t *j = get("/healthz", 200);
    assert_string_equal(str(j, "status"), "ok");
    json_decref(j);
}

static void test_health_readyz(void **state)
{
    json_t *j = get("/readyz", 200);
    assert_string_equal(str(j, "status"), "ready");
    assert_string_equal(str(j, "model"), "demo@1");
    json_decref(j);
}

static void test_recs_known_user_get(void **state)
{
    json_t *j = get("/v1/recommendations?user=u00&k=5", 200);
    json_t *items = check_recs(j, "u00", "demo@1", "none", 5);
    /* u00 likes group 0 and already saw i00..i02 */
    for (size_t i = 0; i < 5; ++i)
        assert_true(strncmp(item_at(items, i), "i0", 2) == 0);
    assert_false(contains_item(items, "i00") || contains_item(items, "i01") || contains_item(items, "i02"));
    assert_string_equal(item_at(items, 0), "i03");
    json_decref(j);
}

static void test_recs_default_k(void **state)
{
    json_t *j = get("/v1/recommendations?user=u11", 200);
    check_recs(j, "u11", "demo@1", "none", 10);
    json_decref(j);
}

static void test_recs_known_user_post(void **state)
{
    json_t *j = post("/v1/recommendations", "{\"user\":\"u10\",\"k\":3,\"exclude\":[\"i13\"]}", 200);
    json_t *items = check_recs(j, "u10", "demo@1", "none", 3);
    for (size_t i = 0; i < 3; ++i)
        assert_true(strncmp(item_at(items, i), "i1", 2) == 0);
    assert_false(contains_item(items, "i13"));
    json_decref(j);
}

static void test_recs_unknown_user_popular(void **state)
{
    json_t *j = get("/v1/recommendations?user=stranger&k=3", 200);
    json_t *items = check_recs(j, "stranger", "demo@1", "popular", 3);
    assert_string_equal(item_at(items, 0), "i00");
    assert_string_equal(item_at(items, 1), "i01");
    json_decref(j);
}

static void test_recs_unknown_user_fold_in(void **state)
{
    json_t *j = post("/v1/recommendations", "{\"user\":\"anon\",\"k\":5,\"recent_items\":[\"i20\",\"i21\",\"no-such-item\"]}", 200);
    json_t *items = check_recs(j, "anon", "demo@1", "fold_in", 5);
    for (size_t i = 0; i < 5; ++i)
        assert_true(strncmp(item_at(items, i), "i2", 2) == 0);
    assert_false(contains_item(items, "i20") || contains_item(items, "i21"));
    json_t *ignored = json_object_get(j, "ignored_items");
    assert_true(json_is_array(ignored));
    assert_int_equal(json_array_size(ignored), 1);
    assert_string_equal(json_string_value(json_array_get(ignored, 0)), "no-such-item");
    json_decref(j);
}

static void test_recs_escaped_user_id(void **state)
{
    /* percent-encoded UTF-8 and a quote come back JSON-escaped */
    json_t *j = get("/v1/recommendations?user=%C3%A9t%C3%A9%22x&k=2", 200);
    check_recs(j, "\xc3\xa9t\xc3\xa9\"x", "demo@1", "popular", 2);
    json_decref(j);
}

static void test_similar_known_item(void **state)
{
    json_t *j = get("/v1/items/i30/similar?k=4", 200);
    assert_string_equal(str(j, "item"), "i30");
    assert_string_equal(str(j, "model"), "demo@1");
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 4);
    for (size_t i = 0; i < 4; ++i)
        assert_true(strncmp(item_at(items, i), "i3", 2) == 0);
    assert_false(contains_item(items, "i30"));
    json_decref(j);
}

static void test_similar_unknown_item(void **state)
{
    json_t *j = get("/v1/items/nothing/similar", 404);
    assert_error(j, "not_found");
    json_decref(j);
}

typedef struct st_bad_case_t {
    const char *method, *path, *ctype, *body;
    int status;
    const char *code, *message_part;
} bad_case_t;

static void test_bad_input_table(void **state)
{
    char long_user[400], long_body[5200];
    memset(long_user, 0, sizeof(long_user));
    strcpy(long_user, "/v1/recommendations?user=");
    memset(long_user + strlen(long_user), 'a', 300);
    snprintf(long_body, sizeof(long_body), "{\"user\":\"u00\",\"exclude\":[\"%0*d\"]}", 5000, 0);

    const bad_case_t cases[] = {
        {"GET", "/v1/recommendations", NULL, NULL, 400, "invalid_argument", "user"},
        {"GET", "/v1/recommendations?user=", NULL, NULL, 400, "invalid_argument", "user"},
        {"GET", "/v1/recommendations?user=u00&k=0", NULL, NULL, 400, "invalid_argument", "1..1000"},
        {"GET", "/v1/recommendations?user=u00&k=1001", NULL, NULL, 400, "invalid_argument", "1..1000"},
        {"GET", "/v1/recommendations?user=u00&k=abc", NULL, NULL, 400, "invalid_argument", "k must"},
        {"GET", "/v1/recommendations?user=u00&k=", NULL, NULL, 400, "invalid_argument", "k must"},
        {"GET", "/v1/recommendations?user=u00&k=-3", NULL, NULL, 400, "invalid_argument", "k must"},
        {"GET", "/v1/recommendations?user=u00&user=u01", NULL, NULL, 400, "invalid_argument", "repeated"},
        {"GET", "/v1/recommendations?user=%zz", NULL, NULL, 400, "invalid_argument", "percent"},
        {"GET", "/v1/recommendations?user=%C3", NULL, NULL, 400, "invalid_argument", "UTF-8"},
        {"GET", "/v1/recommendations?user=%00", NULL, NULL, 400, "invalid_argument", "UTF-8"},
        {"GET", long_user, NULL, NULL, 400, "invalid_argument", "256"},
        {"GET", "/v1/recommendations?user=u00&color=red", NULL, NULL, 400, "invalid_argument", "color"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":", 400, "invalid_argument", "malformed JSON at line 1"},
        {"POST", "/v1/recommendations", "application/json", "{\n\"user\": tru}", 400, "invalid_argument",
         "malformed JSON at line 2"},
        {"POST", "/v1/recommendations", "application/json", "", 400, "invalid_argument", "malformed JSON"},
        {"POST", "/v1/recommendations", "application/json", "[1,2]", 400, "invalid_argument", "object"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":5}", 400, "invalid_argument", "user must be a string"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":\"\"}", 400, "invalid_argument", "user"},
        {"POST", "/v1/recommendations", "application/json", "{\"k\":3}", 400, "invalid_argument", "user is required"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":\"u00\",\"k\":\"10\"}", 400, "invalid_argument", "k must"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":\"u00\",\"k\":2.5}", 400, "invalid_argument", "k must"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":\"u00\",\"recent_items\":\"i00\"}", 400, "invalid_argument",
         "recent_items"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":\"u00\",\"recent_items\":[1]}", 400, "invalid_argument",
         "recent_items[0]"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":\"u00\",\"bogus\":1}", 400, "invalid_argument", "bogus"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":\"u00\",\"user\":\"u01\"}", 400, "invalid_argument",
         "duplicate"},
        {"POST", "/v1/recommendations", "application/json", "{\"user\":\"\\u0000x\"}", 400, "invalid_argument", "malformed JSON"},
        {"POST", "/v1/recommendations", "text/plain", "{\"user\":\"u00\"}", 415, "unsupported_media_type", "application/json"},
        {"POST", "/v1/recommendations", NULL, "{\"user\":\"u00\"}", 415, "unsupported_media_type", "application/json"},
        {"POST", "/v1/recommendations", "application/json; charset=latin1", "{\"user\":\"u00\"}", 415, "unsupported_media_type",
         "json"},
        {"POST", "/v1/recommendations", "application/json", long_body, 413, "payload_too_large", "4096"},
        {"DELETE", "/v1/recommendations", NULL, NULL, 405, "method_not_allowed", "GET, POST"},
        {"PUT", "/v1/events", "application/json", "{}", 405, "method_not_allowed", "POST"},
        {"GET", "/v1/events", NULL, NULL, 405, "method_not_allowed", "POST"},
        {"POST", "/healthz", "application/json", "{}", 405, "method_not_allowed", "GET"},
        {"DELETE", "/v1/items/i00/similar", NULL, NULL, 405, "method_not_allowed", "GET"},
        {"GET", "/nope", NULL, NULL, 404, "not_found", "endpoint"},
        {"GET", "/v1/recommendationsX", NULL, NULL, 404, "not_found", "endpoint"},
        {"GET", "/v1/items/i00/other", NULL, NULL, 404, "not_found", "endpoint"},
        {"GET", "/v1/items/i00/similar?k=0", NULL, NULL, 400, "invalid_argument", "k must"},
        {"GET", "/v1/items/%zz/similar", NULL, NULL, 400, "invalid_argument", "percent"},
        {"POST", "/v1/events", "application/json", "{\"user\":\"a\",\"item\":\"i00\",\"type\":\"bogus\"}", 400, "invalid_argument",
         "type must be one of"},
        {"POST", "/v1/events", "application/json", "{\"user\":\"a\",\"item\":\"i00\",\"type\":\"rating\"}", 400, "invalid_argument",
         "value is required"},
        {"POST", "/v1/events", "application/json", "{\"user\":\"a\",\"item\":\"i00\",\"type\":\"view\",\"ts\":\"yesterday\"}", 400,
         "invalid_argument", "ts must"},
        {"POST", "/v1/events", "application/json", "{\"user\":\"a\",\"item\":\"i00\",\"type\":\"view\",\"value\":\"1\"}", 400,
         "invalid_argument", "value must be a number"},
        {"POST", "/v1/events", "application/json", "{\"item\":\"i00\",\"type\":\"view\"}", 400, "invalid_argument",
         "user is required"},
        {"POST", "/v1/events", "application/json", "{\"events\":[]}", 400, "invalid_argument", "1..1000"},
        {"POST", "/v1/events", "application/json", "{\"events\":{}}", 400, "invalid_argument", "1..1000"},
        {"POST", "/v1/events", "application/json",
         "{\"events\":[{\"user\":\"a\",\"item\":\"i00\",\"type\":\"view\"},{\"user\":\"a\",\"item\":\"i01\",\"type\":\"buy\"}]}",
         400, "invalid_argument", "events[1].type"},
        {"POST", "/v1/events", "application/json", "{\"events\":[{\"user\":\"a\",\"item\":\"\",\"type\":\"view\"}]}", 400,
         "invalid_argument", "events[0].item"},
    };
    struct stat before, after;
    int had_log = stat(server.events, &before) == 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const bad_case_t *c = &cases[i];
        harness_response_t res;
        char allow[64];
        assert_int_equal(
            harness_request(server.port, c->method, c->path, c->ctype, c->body, c->body ? strlen(c->body) : 0, NULL, &res), 0);
        if (res.status != c->status || strstr(res.body, c->message_part) == NULL || strstr(res.body, c->code) == NULL)
            fprintf(stderr, "case %zu: %s %.60s -> %d %s\n", i, c->method, c->path, res.status, res.body);
        assert_int_equal(res.status, c->status);
        json_t *j = json_loads(res.body, 0, NULL);
        assert_non_null(j);
        assert_error(j, c->code);
        assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), c->message_part));
        if (c->status == 405) {
            assert_non_null(harness_header(&res, "allow", allow, sizeof(allow)));
            assert_string_equal(allow, c->message_part);
        }
        json_decref(j);
        harness_response_free(&res);
    }
    /* nothing from the rejected event bodies was written */
    if (had_log) {
        assert_int_equal(stat(server.events, &after), 0);
        assert_int_equal(after.st_size, before.st_size);
    }
    /* and the server still serves */
    json_t *j = get("/healthz", 200);
    json_decref(j);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    int found = 0;
    if (fp == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), fp) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(fp);
    return found;
}

static void test_events_change_next_answer(void **state)
{
    char body[256], first[32];
    json_t *j = get("/v1/recommendations?user=u01&k=5", 200), *items = check_recs(j, "u01", "demo@1", "none", 5);
    snprintf(first, sizeof(first), "%s", item_at(items, 0));
    json_decref(j);

    snprintf(body, sizeof(body), "{\"user\":\"u01\",\"item\":\"%s\",\"type\":\"purchase\",\"request_id\":\"r-1\"}", first);
    j = post("/v1/events", body, 202);
    assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 1);
    json_decref(j);

    /* the event is in the log before the 202, with the schema version */
    snprintf(body, sizeof(body), "\"user\":\"u01\",\"item\":\"%s\",\"type\":\"purchase\"", first);
    assert_true(file_contains(server.events, body));
    assert_true(file_contains(server.events, "{\"v\":1,"));

    /* every following request (new connections land on either thread) no longer offers the purchased item */
    for (int i = 0; i < 6; ++i) {
        j = get("/v1/recommendations?user=u01&k=5", 200);
        items = check_recs(j, "u01", "demo@1", "none", 5);
        assert_false(contains_item(items, first));
        json_decref(j);
    }
}

static void test_events_new_user_gets_fold_in(void **state)
{
    json_t *j = get("/v1/recommendations?user=newbie&k=4", 200);
    check_recs(j, "newbie", "demo@1", "popular", 4);
    json_decref(j);

    j = post("/v1/events",
             "{\"events\":[{\"user\":\"newbie\",\"item\":\"i30\",\"type\":\"purchase\",\"ts\":\"2024-05-01T12:00:00Z\"},"
             "{\"user\":\"newbie\",\"item\":\"i31\",\"type\":\"rating\",\"value\":4.5,\"ts\":1714564800},"
             "{\"user\":\"newbie\",\"item\":\"not-yet-in-model\",\"type\":\"view\"}]}",
             202);
    assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 3);
    /* each event got its own id, which the log line carries first */
    json_t *ids = json_object_get(j, "event_ids");
    assert_int_equal(json_array_size(ids), 3);
    for (size_t n = 0; n < 3; ++n) {
        char line[128];
        const char *id = json_string_value(json_array_get(ids, n));
        assert_non_null(id);
        assert_int_equal(strlen(id), 26);
        snprintf(line, sizeof(line), "{\"v\":1,\"event_id\":\"%s\",\"user\":\"newbie\"", id);
        assert_true(file_contains(server.events, line));
    }
    assert_string_not_equal(json_string_value(json_array_get(ids, 0)), json_string_value(json_array_get(ids, 1)));
    json_decref(j);
    assert_true(file_contains(server.events, "\"item\":\"i30\",\"type\":\"purchase\",\"ts\":1714564800,"));

    for (int i = 0; i < 4; ++i) {
        j = get("/v1/recommendations?user=newbie&k=4", 200);
        json_t *items = check_recs(j, "newbie", "demo@1", "fold_in", 4);
        for (size_t n = 0; n < 4; ++n)
            assert_true(strncmp(item_at(items, n), "i3", 2) == 0);
        assert_false(contains_item(items, "i30") || contains_item(items, "i31"));
        json_decref(j);
    }
}

/* The value of a sample line "<series> <value>", or -1 when absent. */
static long metric_value(const char *text, const char *series)
{
    char needle[256];
    snprintf(needle, sizeof(needle), "\n%s ", series);
    const char *p = strstr(text, needle);
    if (p == NULL)
        return -1;
    return atol(p + strlen(needle));
}

static void test_metrics_counts_requests(void **state)
{
    harness_response_t res;
    char ct[128];
    long before, after;

    assert_int_equal(harness_get(server.port, "/metrics", &res), 0);
    before = metric_value(res.body, "recd_http_requests_total{endpoint=\"healthz\",status=\"200\"}");
    harness_response_free(&res);
    for (int i = 0; i < 3; ++i) {
        json_t *j = get("/healthz", 200);
        json_decref(j);
    }
    json_t *j = get("/no/such/path", 404);
    json_decref(j);

    assert_int_equal(harness_get(server.port, "/metrics", &res), 0);
    assert_int_equal(res.status, 200);
    assert_non_null(harness_header(&res, "content-type", ct, sizeof(ct)));
    assert_non_null(strstr(ct, "text/plain"));
    after = metric_value(res.body, "recd_http_requests_total{endpoint=\"healthz\",status=\"200\"}");
    assert_int_equal(after, (before < 0 ? 0 : before) + 3);
    assert_true(metric_value(res.body, "recd_http_requests_total{endpoint=\"other\",status=\"404\"}") >= 1);
    assert_true(metric_value(res.body, "recd_http_request_duration_seconds_count{endpoint=\"healthz\"}") >= 3);
    assert_non_null(strstr(res.body, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"0.0005\"}"));
    assert_int_equal(metric_value(res.body, "recd_model_version{model=\"demo\"}"), 1);
    assert_int_equal(metric_value(res.body, "recd_model_loads_total"), 1);
    assert_non_null(strstr(res.body, "recd_build_info{"));
    harness_response_free(&res);
}

typedef struct st_client_t {
    int id;
    int failures;
} client_t;

/* One client: events for its own user interleaved with recommendations; no cmocka asserts off the main thread. */
static void *client_main(void *arg)
{
    client_t *c = arg;
    char body[256], path[128];
    for (int i = 0; i < 20; ++i) {
        harness_response_t res;
        snprintf(body, sizeof(body), "{\"user\":\"conc%d\",\"item\":\"i%d%d\",\"type\":\"click\"}", c->id, c->id % 4, i % 10);
        if (harness_post_json(server.port, "/v1/events", body, &res) != 0 || res.status != 202)
            ++c->failures;
        harness_response_free(&res);
        snprintf(path, sizeof(path), "/v1/recommendations?user=conc%d&k=3", c->id);
        if (harness_get(server.port, path, &res) != 0 || res.status != 200 || strstr(res.body, "\"fallback\":\"fold_in\"") == NULL)
            ++c->failures;
        harness_response_free(&res);
        if (harness_get(server.port, "/v1/recommendations?user=u30&k=5", &res) != 0 || res.status != 200)
            ++c->failures;
        harness_response_free(&res);
    }
    return NULL;
}

static void test_events_concurrent_clients(void **state)
{
    enum { N = 4 };
    pthread_t tids[N];
    client_t clients[N];
    for (int i = 0; i < N; ++i) {
        clients[i] = (client_t){i, 0};
        assert_int_equal(pthread_create(&tids[i], NULL, client_main, &clients[i]), 0);
    }
    for (int i = 0; i < N; ++i) {
        pthread_join(tids[i], NULL);
        assert_int_equal(clients[i].failures, 0);
    }
    /* every client's user has seen all ten items of one group: none of them is offered any more */
    for (int i = 0; i < N; ++i) {
        char path[128], prefix[8];
        snprintf(path, sizeof(path), "/v1/recommendations?user=conc%d&k=20", i);
        snprintf(prefix, sizeof(prefix), "i%d", i % 4);
        json_t *j = get(path, 200), *items = json_object_get(j, "items");
        assert_int_equal(json_array_size(items), 20);
        for (size_t n = 0; n < json_array_size(items); ++n)
            assert_true(strncmp(item_at(items, n), prefix, 2) != 0);
        json_decref(j);
    }
}

int test_server_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_healthz),
        cmocka_unit_test(test_health_readyz),
        cmocka_unit_test(test_recs_known_user_get),
        cmocka_unit_test(test_recs_default_k),
        cmocka_unit_test(test_recs_known_user_post),
        cmocka_unit_test(test_recs_unknown_user_popular),
        cmocka_unit_test(test_recs_unknown_user_fold_in),
        cmocka_unit_test(test_recs_escaped_user_id),
        cmocka_unit_test(test_similar_known_item),
        cmocka_unit_test(test_similar_unknown_item),
        cmocka_unit_test(test_bad_input_table),
        cmocka_unit_test(test_events_change_next_answer),
        cmocka_unit_test(test_events_new_user_gets_fold_in),
        cmocka_unit_test(test_events_concurrent_clients),
        cmocka_unit_test(test_metrics_counts_requests),
    };
    return cmocka_run_group_tests_name("server", tests, setup, teardown);
}
