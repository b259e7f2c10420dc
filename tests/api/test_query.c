/* test_query.c: query-string parsing, percent-decoding, UTF-8 and id / k validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
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

static int parse(const char *q, recd_query_param_t *params, size_t *n, recd_api_error_t *err)
{
    return recd_query_parse(q, strlen(q), &pool, params, RECD_QUERY_MAX_PARAMS, n, err);
}

static void test_query_parse_basic(void **state)
{
    recd_query_param_t p[RECD_QUERY_MAX_PARAMS];
    recd_api_error_t err;
    size_t n;
    assert_int_equal(parse("user=u1&k=5", p, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(h2o_memis(p[0].name.base, p[0].name.len, H2O_STRLIT("user")));
    assert_true(h2o_memis(p[0].value.base, p[0].value.len, H2O_STRLIT("u1")));
    const h2o_iovec_t *k = recd_query_find(p, n, "k");
    assert_non_null(k);
    assert_true(h2o_memis(k->base, k->len, H2O_STRLIT("5")));
    assert_null(recd_query_find(p, n, "us"));
}

static void test_query_parse_decodes(void **state)
{
    recd_query_param_t p[RECD_QUERY_MAX_PARAMS];
    recd_api_error_t err;
    size_t n;
    assert_int_equal(parse("user=a%20b+c%2Bd%2F%e2%82%ac", p, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(p[0].value.base, "a b c+d/\xe2\x82\xac");
    assert_int_equal(p[0].value.len, strlen("a b c+d/\xe2\x82\xac"));
}

static void test_query_parse_empty_pieces_and_flags(void **state)
{
    recd_query_param_t p[RECD_QUERY_MAX_PARAMS];
    recd_api_error_t err;
    size_t n;
    assert_int_equal(parse("&&user=x&&flag&", p, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(p[1].value.len, 0);
    assert_int_equal(parse("", p, &n, &err), 0);
    assert_int_equal(n, 0);
}

static void test_query_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "user=%zz",
        "user=%4",
        "user=%",
        "user=ok&k=%G1", /* bad escapes */
        "user=a&user=b",
        "k=1&user=x&k=2", /* repeated */
        "user=%ff",
        "user=%C0%AF",
        "user=%ED%A0%80",
        "user=%F4%90%80%80",
        "user=%C3",
        "user=a%00b",                                                          /* not UTF-8 / NUL */
        "=x",                                                                  /* no name */
        "a=1&b=1&c=1&d=1&e=1&f=1&g=1&h=1&i=1&j=1&k=1&l=1&m=1&n=1&o=1&p=1&q=1", /* too many */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        recd_query_param_t p[RECD_QUERY_MAX_PARAMS];
        recd_api_error_t err;
        size_t n;
        if (parse(bad[i], p, &n, &err) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, "invalid_argument");
    }
}

static void test_query_utf8_valid(void **state)
{
    assert_true(recd_utf8_valid("plain", 5));
    assert_true(recd_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(recd_utf8_valid("\x80", 1));
    assert_false(recd_utf8_valid("\xe2\x82", 2));
    assert_false(recd_utf8_valid("a\0b", 3));
    assert_false(recd_utf8_valid("\xf8\x88\x80\x80\x80", 5));
}

static void test_query_check_id(void **state)
{
    char buf[300];
    recd_api_error_t err;
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(recd_api_check_id("user", h2o_iovec_init(buf, 256), &err), 0);
    assert_int_equal(recd_api_check_id("user", h2o_iovec_init(buf, 257), &err), -1);
    assert_non_null(strstr(err.message, "256"));
    assert_int_equal(recd_api_check_id("user", h2o_iovec_init(buf, 0), &err), -1);
    assert_non_null(strstr(err.message, "user"));
    assert_int_equal(recd_api_check_id("item", h2o_iovec_init("\xff", 1), &err), -1);
    assert_non_null(strstr(err.message, "item"));
}

static void test_query_parse_k(void **state)
{
    static const char *const good[] = {"1", "10", "1000", "0010"};
    static const uint32_t want[] = {1, 10, 1000, 10};
    static const char *const bad[] = {"0", "1001", "", "abc", "-1", "+5", "1.5", "12345678901", " 5", "5 "};
    recd_api_error_t err;
    uint32_t k;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
        assert_int_equal(recd_api_parse_k(h2o_iovec_init(good[i], strlen(good[i])), 1000, &k, &err), 0);
        assert_int_equal(k, want[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        if (recd_api_parse_k(h2o_iovec_init(bad[i], strlen(bad[i])), 1000, &k, &err) != -1)
            fail_msg("accepted k=%s", bad[i]);
        assert_string_equal(err.message, "k must be an integer in 1..1000");
    }
}

static void test_query_percent_decode_path(void **state)
{
    h2o_iovec_t out;
    assert_int_equal(recd_percent_decode(H2O_STRLIT("a+b%2Fc"), 0, &pool, &out), 0);
    assert_string_equal(out.base, "a+b/c");
    assert_int_equal(recd_percent_decode(H2O_STRLIT("bad%2"), 0, &pool, &out), -1);
}

int test_query_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_parse_basic),
        cmocka_unit_test(test_query_parse_decodes),
        cmocka_unit_test(test_query_parse_empty_pieces_and_flags),
        cmocka_unit_test(test_query_parse_rejects),
        cmocka_unit_test(test_query_utf8_valid),
        cmocka_unit_test(test_query_check_id),
        cmocka_unit_test(test_query_parse_k),
        cmocka_unit_test(test_query_percent_decode_path),
    };
    return cmocka_run_group_tests_name("query", tests, setup, teardown);
}
