/* test_codec.c: JSON request validation tables (each bad body -> status, code, message) and response rendering. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include "api/api_internal.h"

static h2o_mem_pool_t pool;

static int setup(void **state)
{
    h2o_mem_init_pool(&pool);
    return 0;
}

static int teardown(void **state)
{
    h2o_mem_clear_pool(&pool);
    return 0;
}

typedef struct st_bad_body_t {
    const char *body;
    const char *message; /* expected prefix of the message */
} bad_body_t;

static void test_codec_recs_body_valid(void **state)
{
    static const char body[] = "{\"user\":\"u\\u00e9\",\"k\":7,\"recent_items\":[\"a\",\"b\"],\"exclude\":[\"c\"]}";
    recd_recs_request_t rq;
    recd_api_error_t err;
    assert_int_equal(recd_codec_parse_recs_body(body, sizeof(body) - 1, 10, 1000, &pool, &rq, &err), 0);
    assert_true(h2o_memis(rq.user.base, rq.user.len, H2O_STRLIT("u\xc3\xa9")));
    assert_int_equal(rq.k, 7);
    assert_int_equal(rq.n_recent, 2);
    assert_true(h2o_memis(rq.recent_items[1].base, rq.recent_items[1].len, H2O_STRLIT("b")));
    assert_int_equal(rq.n_exclude, 1);

    assert_int_equal(recd_codec_parse_recs_body(H2O_STRLIT("{\"user\":\"x\"}"), 12, 1000, &pool, &rq, &err), 0);
    assert_null(rq.model.base);
    assert_int_equal(recd_codec_parse_recs_body(H2O_STRLIT("{\"user\":\"x\",\"model\":\"m2\"}"), 12, 1000, &pool, &rq, &err), 0);
    assert_true(h2o_memis(rq.model.base, rq.model.len, H2O_STRLIT("m2")));
    assert_int_equal(recd_codec_parse_recs_body(H2O_STRLIT("{\"user\":\"x\",\"model\":7}"), 12, 1000, &pool, &rq, &err), -1);
    assert_string_equal(err.message, "model must be a string");
    assert_int_equal(recd_codec_parse_recs_body(H2O_STRLIT("{\"user\":\"x\",\"model\":\"a b\"}"), 12, 1000, &pool, &rq, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(rq.k, 12);
    assert_int_equal(rq.n_recent, 0);
}

static void test_codec_recs_body_invalid(void **state)
{
    char long_id[400], many[12000];
    memset(long_id, 0, sizeof(long_id));
    strcpy(long_id, "{\"user\":\"");
    memset(long_id + strlen(long_id), 'a', 257);
    strcat(long_id, "\"}");
    strcpy(many, "{\"user\":\"u\",\"exclude\":[");
    for (int i = 0; i < 1001; ++i)
        strcat(many, i ? ",\"x\"" : "\"x\"");
    strcat(many, "]}");

    const bad_body_t cases[] = {
        {"", "malformed JSON at line 1 column 0"},
        {"{\"user\":", "malformed JSON at line 1"},
        {"{\n  \"user\": \"a\",\n  oops\n}", "malformed JSON at line 3"},
        {"{\"user\":\"a\"} trailing", "malformed JSON"},
        {"[\"user\"]", "the body must be a JSON object"},
        {"\"user\"", "malformed JSON"}, /* jansson rejects a top-level scalar without JSON_DECODE_ANY */
        {"{}", "user is required"},
        {"{\"user\":null}", "user must be a string"},
        {"{\"user\":\"\"}", "user must be a non-empty string"},
        {long_id, "user is longer than 256 bytes"},
        {"{\"user\":\"a\",\"k\":0}", "k must be an integer in 1..1000"},
        {"{\"user\":\"a\",\"k\":1001}", "k must be an integer in 1..1000"},
        {"{\"user\":\"a\",\"k\":\"5\"}", "k must be an integer in 1..1000"},
        {"{\"user\":\"a\",\"k\":5.0}", "k must be an integer in 1..1000"},
        {"{\"user\":\"a\",\"k\":-1}", "k must be an integer in 1..1000"},
        {"{\"user\":\"a\",\"recent_items\":{}}", "recent_items must be an array of strings"},
        {"{\"user\":\"a\",\"recent_items\":[\"ok\",2]}", "recent_items[1] must be a string"},
        {"{\"user\":\"a\",\"exclude\":[\"\"]}", "exclude[0] must be a non-empty string"},
        {many, "exclude has more than 1000 entries"},
        {"{\"user\":\"a\",\"filter\":{}}", "unknown field 'filter'"},
        {"{\"user\":\"a\",\"user\":\"b\"}", "malformed JSON"},
        {"{\"user\":\"a\\u0000\"}", "malformed JSON"},
        {"{\"user\":\"\xff\"}", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        recd_recs_request_t rq;
        recd_api_error_t err;
        if (recd_codec_parse_recs_body(cases[i].body, strlen(cases[i].body), 10, 1000, &pool, &rq, &err) != -1)
            fail_msg("case %zu accepted", i);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, "invalid_argument");
        if (strncmp(err.message, cases[i].message, strlen(cases[i].message)) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err.message, cases[i].message);
    }
}

static void test_codec_recs_query(void **state)
{
    recd_recs_request_t rq;
    recd_api_error_t err;
    assert_int_equal(recd_codec_parse_recs_query(H2O_STRLIT("k=3&user=a%2Bb"), 10, 1000, &pool, &rq, &err), 0);
    assert_int_equal(rq.k, 3);
    assert_true(h2o_memis(rq.user.base, rq.user.len, H2O_STRLIT("a+b")));
    assert_int_equal(recd_codec_parse_recs_query(H2O_STRLIT("k=3"), 10, 1000, &pool, &rq, &err), -1);
    assert_string_equal(err.message, "user is required");
    assert_int_equal(recd_codec_parse_recs_query(H2O_STRLIT("user=a&kk=3"), 10, 1000, &pool, &rq, &err), -1);
    assert_non_null(strstr(err.message, "'kk'"));
    assert_int_equal(recd_codec_parse_recs_query(H2O_STRLIT("user=a&k=20"), 10, 15, &pool, &rq, &err), -1);
    assert_string_equal(err.message, "k must be an integer in 1..15");
    assert_null(rq.model.base); /* no model: the default */
    assert_int_equal(recd_codec_parse_recs_query(H2O_STRLIT("user=a&model=ml-2"), 10, 1000, &pool, &rq, &err), 0);
    assert_true(h2o_memis(rq.model.base, rq.model.len, H2O_STRLIT("ml-2")));
    assert_int_equal(recd_codec_parse_recs_query(H2O_STRLIT("user=a&model=.hidden"), 10, 1000, &pool, &rq, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.message, "model must be a model name"));
    assert_int_equal(recd_codec_parse_recs_query(H2O_STRLIT("user=a&model="), 10, 1000, &pool, &rq, &err), -1);
    assert_int_equal(recd_codec_parse_recs_query(H2O_STRLIT("user=a&model=a%2Fb"), 10, 1000, &pool, &rq, &err), -1);
    uint32_t k;
    h2o_iovec_t model;
    assert_int_equal(recd_codec_parse_similar_query(H2O_STRLIT(""), 10, 1000, &pool, &k, &model, &err), 0);
    assert_int_equal(k, 10);
    assert_null(model.base);
    assert_int_equal(recd_codec_parse_similar_query(H2O_STRLIT("k=2&model=m"), 10, 1000, &pool, &k, &model, &err), 0);
    assert_true(h2o_memis(model.base, model.len, H2O_STRLIT("m")));
    assert_int_equal(recd_codec_parse_similar_query(H2O_STRLIT("user=x"), 10, 1000, &pool, &k, &model, &err), -1);
}

static void test_codec_events_valid(void **state)
{
    static const char single[] = "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\",\"request_id\":\"r1\"}";
    static const char batch[] =
        "{\"events\":[{\"user\":\"u\",\"item\":\"i\",\"type\":\"rating\",\"value\":4.5,"
        "\"ts\":\"2024-05-01T14:00:00.250+02:00\"},{\"user\":\"v\",\"item\":\"j\",\"type\":\"purchase\",\"ts\":17}]}";
    recd_event_t *ev;
    size_t n;
    recd_api_error_t err;

    assert_int_equal(recd_codec_parse_events(single, sizeof(single) - 1, 1000.5, &pool, &ev, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].type, RECD_EVENT_CLICK);
    assert_true(ev[0].ts == 1000.5);
    assert_false(ev[0].has_value);
    assert_true(recd_event_weight(&ev[0]) == 2.0f);
    assert_true(h2o_memis(ev[0].request_id.base, ev[0].request_id.len, H2O_STRLIT("r1")));

    assert_int_equal(recd_codec_parse_events(batch, sizeof(batch) - 1, 0, &pool, &ev, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].type, RECD_EVENT_RATING);
    assert_true(ev[0].ts == 1714564800.25);
    assert_true(recd_event_weight(&ev[0]) == 4.5f);
    assert_true(ev[1].ts == 17);
    assert_true(recd_event_weight(&ev[1]) == 5.0f);
    assert_null(ev[1].request_id.base);

    /* the log line (Kafka's message value) carries the schema version, the event id, every given field and the receive time */
    assert_null(ev[0].event_id.base);
    ev[0].event_id = h2o_iovec_init(H2O_STRLIT("e-1"));
    recd_jw_t w;
    recd_jw_init_pool(&w, &pool, 8);
    recd_codec_render_event_line(&w, &ev[0], 1714564801.5);
    assert_true(h2o_memis(w.buf, w.len,
                          H2O_STRLIT("{\"v\":1,\"event_id\":\"e-1\",\"user\":\"u\",\"item\":\"i\",\"type\":\"rating\","
                                     "\"ts\":1714564800.25,\"value\":4.5,\"received_at\":1714564801.500}\n")));
}

static void test_codec_events_invalid(void **state)
{
    char big[64 * 1024];
    strcpy(big, "{\"events\":[");
    for (int i = 0; i < 1001; ++i)
        strcat(big, i ? ",{}" : "{}");
    strcat(big, "]}");
    const bad_body_t cases[] = {
        {"nope", "malformed JSON at line 1"},
        {"[]", "the body must be a JSON object"},
        {"{\"item\":\"i\",\"type\":\"view\"}", "user is required"},
        {"{\"user\":\"u\",\"type\":\"view\"}", "item is required"},
        {"{\"user\":\"u\",\"item\":\"i\"}", "type is required"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"like\"}", "type must be one of view, click, add_to_cart, purchase, rating"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":3}", "type must be one of"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"rating\"}", "value is required for a rating"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"value\":true}", "value must be a number"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"ts\":-1}", "ts must be non-negative epoch seconds"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"ts\":\"2024-13-01T00:00:00Z\"}",
         "ts must be epoch seconds or an ISO-8601"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"ts\":\"2024-05-01\"}", "ts must be epoch seconds or an ISO-8601"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"request_id\":1}", "request_id must be a string"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"extra\":1}", "extra: unknown field"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"event_id\":\"\"}", "event_id must be 1..128 characters"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"event_id\":\"a b\"}", "event_id must be 1..128 characters"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"event_id\":\"e\\\"\"}", "event_id must be 1..128 characters"},
        {"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"event_id\":7}", "event_id must be 1..128 characters"},
        {"{\"events\":[{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"event_id\":\"\u00e9\"}]}",
         "events[0].event_id must be 1..128 characters"},
        {"{\"events\":[]}", "events must be an array of 1..1000 events"},
        {"{\"events\":{}}", "events must be an array of 1..1000 events"},
        {big, "events must be an array of 1..1000 events"},
        {"{\"events\":[{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\"}],\"user\":\"u\"}", "a batch body has only the member"},
        {"{\"events\":[{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\"},{\"user\":\"u\",\"item\":\"i\",\"type\":\"buy\"}]}",
         "events[1].type must be one of"},
        {"{\"events\":[{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\"},7]}", "events[1] must be an object"},
        {"{\"events\":[{\"user\":\"\",\"item\":\"i\",\"type\":\"view\"}]}", "events[0].user must be a non-empty string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        recd_event_t *ev;
        size_t n;
        recd_api_error_t err;
        if (recd_codec_parse_events(cases[i].body, strlen(cases[i].body), 0, &pool, &ev, &n, &err) != -1)
            fail_msg("case %zu accepted", i);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, "invalid_argument");
        if (strncmp(err.message, cases[i].message, strlen(cases[i].message)) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err.message, cases[i].message);
    }
}

/* A client's event_id is kept as sent; the others get fresh, distinct ids; 128 bytes is the longest accepted. */
static void test_codec_events_ids(void **state)
{
    char body[512], long_id[130];
    recd_event_t *ev;
    size_t n;
    recd_api_error_t err;

    memset(long_id, 'x', 128);
    long_id[128] = '\0';
    snprintf(body, sizeof(body),
             "{\"events\":[{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"event_id\":\"client-1:a_b.C\"},"
             "{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\"},{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\"},"
             "{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"event_id\":\"%s\"}]}",
             long_id);
    assert_int_equal(recd_codec_parse_events(body, strlen(body), 1700000000.5, &pool, &ev, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_true(h2o_memis(ev[0].event_id.base, ev[0].event_id.len, H2O_STRLIT("client-1:a_b.C")));
    assert_null(ev[1].event_id.base);
    assert_int_equal(ev[3].event_id.len, 128);
    assert_int_equal(recd_codec_assign_event_ids(ev, n, 1700000000.5, &pool), 0);
    assert_true(h2o_memis(ev[0].event_id.base, ev[0].event_id.len, H2O_STRLIT("client-1:a_b.C")));
    assert_int_equal(ev[1].event_id.len, RECD_EVENT_ID_LEN);
    assert_int_equal(ev[2].event_id.len, RECD_EVENT_ID_LEN);
    assert_true(recd_event_id_valid(ev[1].event_id.base, ev[1].event_id.len));
    assert_false(h2o_memis(ev[1].event_id.base, ev[1].event_id.len, ev[2].event_id.base, ev[2].event_id.len));
    /* the time part is the receive time's milliseconds */
    char want[RECD_EVENT_ID_LEN + 1];
    static const uint8_t zeros[RECD_EVENT_ID_RANDOM_BYTES];
    recd_event_id_format(want, 1700000000500, zeros);
    assert_memory_equal(ev[1].event_id.base, want, 10);

    long_id[128] = 'x';
    long_id[129] = '\0';
    snprintf(body, sizeof(body), "{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"event_id\":\"%s\"}", long_id);
    assert_int_equal(recd_codec_parse_events(body, strlen(body), 0, &pool, &ev, &n, &err), -1);
    assert_string_equal(err.message, "event_id must be 1..128 characters of A-Z a-z 0-9 _ . : -");
}

static void test_codec_iso8601(void **state)
{
    static const struct {
        const char *s;
        double want;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2024-05-01T12:00:00Z", 1714564800},
        {"2024-05-01T14:00:00+02:00", 1714564800},
        {"2024-05-01T07:30:00-04:30", 1714564800},
        {"2024-02-29T00:00:00Z", 1709164800},
        {"2000-03-01T00:00:00.5Z", 951868800.5},
    };
    static const char *const bad[] = {"2023-02-29T00:00:00Z",     "2024-05-01T24:00:00Z",  "2024-05-01T12:00:00",
                                      "2024-05-01T12:00:00+0200", "2024-05-01T12:00:00.Z", "1969-12-31T23:59:59Z",
                                      "2024-05-01X12:00:00Z",     "2024-5-1T12:00:00Z"};
    double t;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
        assert_int_equal(recd_codec_parse_iso8601(good[i].s, strlen(good[i].s), &t), 0);
        assert_true(fabs(t - good[i].want) < 1e-6);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        if (recd_codec_parse_iso8601(bad[i], strlen(bad[i]), &t) != -1)
            fail_msg("accepted %s", bad[i]);
}

static void test_codec_render_recs(void **state)
{
    recd_api_item_t items[] = {{h2o_iovec_init(H2O_STRLIT("a\"b")), 0.5f}, {h2o_iovec_init(H2O_STRLIT("c\\d\n")), -0.25f}};
    h2o_iovec_t ignored[] = {h2o_iovec_init(H2O_STRLIT("zz"))};
    recd_jw_t w;
    recd_jw_init_pool(&w, &pool, 16); /* small, so the writer has to grow */
    recd_codec_render_recs(&w, h2o_iovec_init(H2O_STRLIT("0123456789abcdef")), h2o_iovec_init(H2O_STRLIT("u\x01")),
                           h2o_iovec_init(H2O_STRLIT("demo")), 3, NULL, NULL, items, 2, "fold_in", "exact", ignored, 1);
    assert_true(h2o_memis(
        w.buf, w.len,
        H2O_STRLIT("{\"request_id\":\"0123456789abcdef\",\"user\":\"u\\u0001\",\"model\":\"demo@3\",\"experiment\":null,"
                   "\"arm\":null,\"items\":[{\"item\":\"a\\\"b\",\"score\":0.5},{\"item\":\"c\\\\d\\n\",\"score\":-0.25}],"
                   "\"fallback\":\"fold_in\",\"search\":\"exact\",\"ignored_items\":[\"zz\"]}")));
    /* and it is JSON that parses back */
    json_t *j = json_loadb(w.buf, w.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 1), "item")), "c\\d\n");
    json_decref(j);

    recd_jw_init_pool(&w, &pool, 16);
    recd_codec_render_recs(&w, h2o_iovec_init(H2O_STRLIT("r")), h2o_iovec_init(H2O_STRLIT("u")), h2o_iovec_init(H2O_STRLIT("m")), 1,
                           "exp1", "canary", NULL, 0, "popular", "approximate", NULL, 0);
    assert_true(h2o_memis(
        w.buf, w.len,
        H2O_STRLIT("{\"request_id\":\"r\",\"user\":\"u\",\"model\":\"m@1\",\"experiment\":\"exp1\",\"arm\":\"canary\",\"items\":[],"
                   "\"fallback\":\"popular\",\"search\":\"approximate\"}")));
}

static void test_codec_render_similar_and_error(void **state)
{
    recd_api_item_t items[] = {{h2o_iovec_init(H2O_STRLIT("b")), 0.875f}};
    recd_jw_t w;
    recd_jw_init_pool(&w, &pool, 64);
    recd_codec_render_similar(&w, h2o_iovec_init(H2O_STRLIT("a")), h2o_iovec_init(H2O_STRLIT("demo")), 12, items, 1);
    assert_true(
        h2o_memis(w.buf, w.len, H2O_STRLIT("{\"item\":\"a\",\"model\":\"demo@12\",\"items\":[{\"item\":\"b\",\"score\":0.875}]}")));

    recd_jw_init_pool(&w, &pool, 64);
    recd_codec_render_error(&w, "invalid_argument", "bad \"k\" \xff");
    assert_true(h2o_memis(w.buf, w.len, H2O_STRLIT("{\"error\":{\"code\":\"invalid_argument\",\"message\":\"bad \\\"k\\\" ?\"}}")));

    recd_jw_init_pool(&w, &pool, 8);
    recd_jw_double(&w, NAN);
    recd_jw_lit(&w, " ");
    recd_jw_u64(&w, 18446744073709551615ULL);
    assert_true(h2o_memis(w.buf, w.len, H2O_STRLIT("0 18446744073709551615")));

    /* numbers: fixed point for the usual score range, printf's %g outside it */
    static const struct {
        double v;
        const char *want;
    } nums[] = {{0, "0"},
                {1, "1"},
                {-0.25, "-0.25"},
                {0.6050318, "0.605032"},
                {12.5, "12.5"},
                {-3.0000004, "-3"},
                {0.01, "0.01"},
                {0.001234567, "0.001234567"},
                {-2e-7, "-2e-07"},
                {1e12, "1e+12"},
                {999999.9999996, "1000000"}};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); ++i) {
        recd_jw_init_pool(&w, &pool, 8);
        recd_jw_double(&w, nums[i].v);
        if (!h2o_memis(w.buf, w.len, nums[i].want, strlen(nums[i].want)))
            fail_msg("%.17g rendered as %.*s, want %s", nums[i].v, (int)w.len, w.buf, nums[i].want);
    }
}

int test_codec_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_recs_body_valid),
        cmocka_unit_test(test_codec_recs_body_invalid),
        cmocka_unit_test(test_codec_recs_query),
        cmocka_unit_test(test_codec_events_valid),
        cmocka_unit_test(test_codec_events_invalid),
        cmocka_unit_test(test_codec_events_ids),
        cmocka_unit_test(test_codec_iso8601),
        cmocka_unit_test(test_codec_render_recs),
        cmocka_unit_test(test_codec_render_similar_and_error),
    };
    return cmocka_run_group_tests_name("codec", tests, setup, teardown);
}
