/* test_idmap.c: the string id <-> dense index map. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"

static void test_idmap_intern_and_find(void **state)
{
    recd_idmap_t *map = recd_idmap_create();
    assert_int_equal(recd_idmap_size(map), 0);
    assert_int_equal(recd_idmap_find(map, "a", 1), -1);
    assert_int_equal(recd_idmap_intern(map, "alice", 5), 0);
    assert_int_equal(recd_idmap_intern(map, "bob", 3), 1);
    assert_int_equal(recd_idmap_intern(map, "alice", 5), 0); /* existing id keeps its index */
    assert_int_equal(recd_idmap_size(map), 2);
    assert_int_equal(recd_idmap_find(map, "bob", 3), 1);
    assert_int_equal(recd_idmap_find(map, "bo", 2), -1);  /* prefixes are different ids */
    assert_int_equal(recd_idmap_find(map, "bobx", 3), 1); /* only len bytes count */
    assert_string_equal(recd_idmap_id(map, 0), "alice");
    assert_string_equal(recd_idmap_ids(map)[1], "bob");
    recd_idmap_free(map);
    recd_idmap_free(NULL);
}

static void test_idmap_copies_ids(void **state)
{
    recd_idmap_t *map = recd_idmap_create();
    char buf[8] = "item-7";
    recd_idmap_intern(map, buf, strlen(buf));
    strcpy(buf, "zzzzzz");
    assert_string_equal(recd_idmap_id(map, 0), "item-7");
    assert_int_equal(recd_idmap_find(map, "item-7", 6), 0);
    /* an id with an embedded NUL and the empty id are ids like any other */
    assert_int_equal(recd_idmap_intern(map, "a\0b", 3), 1);
    assert_int_equal(recd_idmap_intern(map, "", 0), 2);
    assert_int_equal(recd_idmap_find(map, "a", 1), -1);
    assert_int_equal(recd_idmap_find(map, "", 0), 2);
    recd_idmap_free(map);
}

static void test_idmap_many_ids_grow(void **state)
{
    enum { N = 100000 };
    recd_idmap_t *map = recd_idmap_create();
    char buf[32];
    for (int i = 0; i != N; ++i) {
        int len = snprintf(buf, sizeof(buf), "u%d", i);
        assert_int_equal(recd_idmap_intern(map, buf, (size_t)len), (uint32_t)i);
    }
    assert_int_equal(recd_idmap_size(map), N);
    for (int i = 0; i != N; ++i) {
        int len = snprintf(buf, sizeof(buf), "u%d", i);
        assert_int_equal(recd_idmap_find(map, buf, (size_t)len), i);
        assert_string_equal(recd_idmap_id(map, (uint32_t)i), buf);
    }
    for (int i = N; i != N + 1000; ++i) {
        int len = snprintf(buf, sizeof(buf), "u%d", i);
        assert_int_equal(recd_idmap_find(map, buf, (size_t)len), -1);
    }
    recd_idmap_free(map);
}

/* The copies never move (recd_idmap_id's pointers stay valid while the map grows), and an id longer than an arena block
 * is stored whole. */
static void test_idmap_stable_pointers_and_long_ids(void **state)
{
    recd_idmap_t *map = recd_idmap_create();
    char buf[32];
    assert_int_equal(recd_idmap_intern(map, "first", 5), 0);
    const char *first = recd_idmap_id(map, 0);
    size_t big_len = (size_t)3 << 20;
    char *big = malloc(big_len);
    memset(big, 'x', big_len);
    big[big_len - 1] = 'y';
    assert_int_equal(recd_idmap_intern(map, big, big_len), 1);
    for (int i = 0; i != 200000; ++i) {
        int len = snprintf(buf, sizeof(buf), "id-%d", i);
        assert_int_equal(recd_idmap_intern(map, buf, (size_t)len), (uint32_t)i + 2);
    }
    assert_ptr_equal(recd_idmap_id(map, 0), first);
    assert_string_equal(first, "first");
    assert_int_equal(recd_idmap_find(map, big, big_len), 1);
    assert_int_equal(recd_idmap_find(map, big, big_len - 1), -1);
    assert_int_equal(strlen(recd_idmap_id(map, 1)), big_len);
    assert_memory_equal(recd_idmap_id(map, 1), big, big_len);
    assert_int_equal(recd_idmap_find(map, "id-199999", 9), 200001);
    free(big);
    recd_idmap_free(map);
}

int test_idmap_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idmap_intern_and_find),
        cmocka_unit_test(test_idmap_copies_ids),
        cmocka_unit_test(test_idmap_many_ids_grow),
        cmocka_unit_test(test_idmap_stable_pointers_and_long_ids),
    };
    return cmocka_run_group_tests_name("idmap", tests, NULL, NULL);
}
