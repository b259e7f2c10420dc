/* test_event.c: event ids: the ULID layout recd assigns, and what a client may send. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "models/event.h"

static void test_event_id_format_ulid(void **state)
{
    char id[RECD_EVENT_ID_LEN + 1];
    uint8_t random[RECD_EVENT_ID_RANDOM_BYTES];

    memset(random, 0, sizeof(random));
    recd_event_id_format(id, 0, random);
    assert_string_equal(id, "00000000000000000000000000");
    memset(random, 0xff, sizeof(random));
    recd_event_id_format(id, 1469918176385, random); /* the ULID specification's example time */
    assert_string_equal(id, "01ARYZ6S41ZZZZZZZZZZZZZZZZ");
    /* each 5-bit group of the randomness lands in its own character, most significant first */
    memset(random, 0, sizeof(random));
    random[0] = 0x08; /* 00001 000 */
    random[9] = 0x01; /* the very last bit */
    recd_event_id_format(id, 1469918176385, random);
    assert_string_equal(id, "01ARYZ6S411000000000000001");
    /* later times sort after earlier ones as strings */
    char later[RECD_EVENT_ID_LEN + 1];
    recd_event_id_format(later, 1469918176386, random);
    assert_true(strcmp(id, later) < 0);
    assert_true(recd_event_id_valid(id, strlen(id)));
}

static void test_event_id_valid(void **state)
{
    char max[RECD_EVENT_ID_MAX_BYTES + 1];
    memset(max, 'a', sizeof(max));
    assert_true(recd_event_id_valid("A-z_0.9:x", 9));
    assert_true(recd_event_id_valid(max, RECD_EVENT_ID_MAX_BYTES));
    assert_false(recd_event_id_valid(max, RECD_EVENT_ID_MAX_BYTES + 1));
    assert_false(recd_event_id_valid("", 0));
    assert_false(recd_event_id_valid("a b", 3));
    assert_false(recd_event_id_valid("a/b", 3));
    assert_false(recd_event_id_valid("a\"b", 3));
    assert_false(recd_event_id_valid("a\0b", 3));
    assert_false(recd_event_id_valid("\xc3\xa9", 2));
}

int test_event_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_id_format_ulid),
        cmocka_unit_test(test_event_id_valid),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
