/* test_text.c: UTF-8 validity, both ISO-8601 grammars and JSON quoting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "base/text.h"

static void test_text_utf8(void **state)
{
    assert_true(recd_utf8_valid("abc", 3));
    assert_true(recd_utf8_valid("\xc3\xa9t\xc3\xa9", 5));
    assert_true(recd_utf8_valid("\xf0\x9f\x8e\xac", 4));
    assert_false(recd_utf8_valid("\xc0\x80", 2));         /* overlong */
    assert_false(recd_utf8_valid("\xe0\x80\xaf", 3));     /* overlong, 3 bytes */
    assert_false(recd_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(recd_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(recd_utf8_valid("\xe2\x82", 2));         /* cut short */
    assert_false(recd_utf8_valid("a\0b", 3));
    assert_false(recd_utf8_valid("\xff", 1));
}

static double parse(const char *s, unsigned flags, int *rc)
{
    double t = -1;
    *rc = recd_iso8601_parse(s, strlen(s), flags, &t);
    return t;
}

static void test_text_iso8601_both_grammars(void **state)
{
    int rc;
    /* accepted by both */
    assert_true(parse("2024-05-01T12:00:00Z", RECD_ISO8601_STRICT, &rc) == 1714564800.0 && rc == 0);
    assert_true(parse("2024-05-01T12:00:00Z", 0, &rc) == 1714564800.0 && rc == 0);
    assert_true(parse("2024-05-01T14:00:00+02:00", RECD_ISO8601_STRICT, &rc) == 1714564800.0 && rc == 0);
    assert_true(parse("2024-05-01T12:00:00.25Z", RECD_ISO8601_STRICT, &rc) == 1714564800.25 && rc == 0);
    assert_true(parse("2024-02-29 00:00:00z", RECD_ISO8601_STRICT, &rc) == 1709164800.0 && rc == 0);
    /* only the trainer's wider grammar */
    const char *wide_only[] = {
        "2024-05-01",          "2024-05-01T12:00", "2024-05-01T12:00:00", "2024-05-01T14:00:00+0200", "2024-05-01T12:00:00,5Z",
        "1969-12-31T23:59:59Z"};
    for (size_t i = 0; i < sizeof(wide_only) / sizeof(wide_only[0]); ++i) {
        parse(wide_only[i], 0, &rc);
        assert_int_equal(rc, 0);
        parse(wide_only[i], RECD_ISO8601_STRICT, &rc);
        assert_int_equal(rc, -1);
    }
    assert_true(parse("2024-05-01", 0, &rc) == 1714521600.0);
    assert_true(parse("2024-05-01T14:00:00+0200", 0, &rc) == 1714564800.0);
    assert_true(parse("1969-12-31T23:59:59Z", 0, &rc) == -1.0 && rc == 0);
    /* neither */
    const char *bad[] = {"",
                         "2024-13-01T00:00:00Z",
                         "2023-02-29T00:00:00Z",
                         "2024-05-01T24:00:00Z",
                         "2024-05-01T12:60:00Z",
                         "2024-05-01T12:00:00Zjunk",
                         "2024-05-01T12:00:00.Z",
                         "2024/05/01",
                         "24-05-01",
                         "2024-05-01T"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        parse(bad[i], 0, &rc);
        assert_int_equal(rc, -1);
        parse(bad[i], RECD_ISO8601_STRICT, &rc);
        assert_int_equal(rc, -1);
    }
}

static void test_text_json_quote(void **state)
{
    char buf[64];
    assert_string_equal(recd_json_quote(buf, sizeof(buf), "a\"b\\c\n\x01", 7), "\"a\\\"b\\\\c\\n\\u0001\"");
    assert_string_equal(recd_json_quote(buf, 8, "abcdefghij", 10), "\"abcde\"");
    assert_string_equal(recd_json_quote(buf, sizeof(buf), "\xc3\xa9", 2), "\"\xc3\xa9\"");
}

int test_text_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_utf8),
        cmocka_unit_test(test_text_iso8601_both_grammars),
        cmocka_unit_test(test_text_json_quote),
    };
    return cmocka_run_group_tests_name("text", tests, NULL, NULL);
}
