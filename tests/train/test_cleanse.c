/* test_cleanse.c: iterated k-core (cascades, duplicates, id compaction) and value normalisation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "train/ingest.h"

static void add(recd_interactions_t *x, const char *u, const char *i, float v)
{
    recd_interactions_add(x, u, strlen(u), i, strlen(i), v, 0);
}

static void assert_row(const recd_interactions_t *x, size_t r, const char *u, const char *i, float v)
{
    assert_true(r < x->n);
    assert_string_equal(recd_idmap_id(x->users, x->user[r]), u);
    assert_string_equal(recd_idmap_id(x->items, x->item[r]), i);
    assert_float_equal(x->value[r], v, 1e-6);
}

static void test_cleanse_kcore_cascade(void **state)
{
    recd_interactions_t x;
    uint64_t removed = 99;
    recd_interactions_init(&x);
    /* W has only r: W goes, then r has one user left, so Z-r goes, then Z has one item left, so Z-q goes */
    add(&x, "X", "p", 1);
    add(&x, "Z", "q", 2);
    add(&x, "X", "q", 3);
    add(&x, "W", "r", 4);
    add(&x, "Y", "p", 5);
    add(&x, "Z", "r", 6);
    add(&x, "Y", "q", 7);
    assert_int_equal(recd_interactions_kcore(&x, 2, 2, &removed), RECD_OK);
    assert_int_equal(removed, 3);
    assert_int_equal(x.n, 4);
    assert_row(&x, 0, "X", "p", 1);
    assert_row(&x, 1, "X", "q", 3);
    assert_row(&x, 2, "Y", "p", 5);
    assert_row(&x, 3, "Y", "q", 7);
    /* the maps hold only the ids still used, densely, in their old order */
    assert_int_equal(recd_idmap_size(x.users), 2);
    assert_int_equal(recd_idmap_size(x.items), 2);
    assert_string_equal(recd_idmap_id(x.users, 0), "X");
    assert_string_equal(recd_idmap_id(x.users, 1), "Y");
    assert_int_equal(recd_idmap_find(x.users, "Z", 1), -1);
    assert_int_equal(x.user[2], 1);
    recd_interactions_dispose(&x);
}

static void test_cleanse_kcore_duplicates(void **state)
{
    recd_interactions_t x;
    uint64_t removed;
    recd_interactions_init(&x);
    /* A-1 three times is still one item for A: duplicates do not count towards the minimum */
    add(&x, "A", "1", 1);
    add(&x, "A", "1", 1);
    add(&x, "A", "1", 1);
    add(&x, "B", "1", 1);
    add(&x, "B", "2", 1);
    add(&x, "C", "1", 1);
    add(&x, "C", "2", 1);
    assert_int_equal(recd_interactions_kcore(&x, 2, 1, &removed), RECD_OK);
    assert_int_equal(removed, 3);
    assert_int_equal(x.n, 4);
    assert_row(&x, 0, "B", "1", 1);
    assert_int_equal(recd_idmap_size(x.users), 2);

    /* disabled sides change nothing */
    assert_int_equal(recd_interactions_kcore(&x, 1, 0, &removed), RECD_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(x.n, 4);
    /* everything can go */
    assert_int_equal(recd_interactions_kcore(&x, 5, 0, &removed), RECD_OK);
    assert_int_equal(removed, 4);
    assert_int_equal(x.n, 0);
    assert_int_equal(recd_idmap_size(x.users), 0);
    assert_int_equal(recd_idmap_size(x.items), 0);
    recd_interactions_dispose(&x);
}

static void test_cleanse_normalize(void **state)
{
    recd_interactions_t x;
    recd_normalize_t how;
    recd_interactions_init(&x);
    add(&x, "a", "1", 1);
    add(&x, "a", "2", 3);
    add(&x, "b", "1", 5);
    assert_int_equal(recd_interactions_normalize(&x, RECD_NORMALIZE_MINMAX), RECD_OK);
    assert_row(&x, 0, "a", "1", 0);
    assert_row(&x, 1, "a", "2", 0.5f);
    assert_row(&x, 2, "b", "1", 1);

    x.value[0] = 1, x.value[1] = 3, x.value[2] = 5;
    assert_int_equal(recd_interactions_normalize(&x, RECD_NORMALIZE_USER_MEAN), RECD_OK);
    assert_float_equal(x.value[0], -1, 1e-6);
    assert_float_equal(x.value[1], 1, 1e-6);
    assert_float_equal(x.value[2], 0, 1e-6);

    x.value[0] = 0, x.value[1] = (float)(M_E - 1), x.value[2] = 3;
    assert_int_equal(recd_interactions_normalize(&x, RECD_NORMALIZE_LOG1P), RECD_OK);
    assert_float_equal(x.value[0], 0, 1e-6);
    assert_float_equal(x.value[1], 1, 1e-6);
    assert_float_equal(x.value[2], log(4.0), 1e-6);

    x.value[2] = -2; /* log1p of a negative value: refused, nothing changed */
    assert_int_equal(recd_interactions_normalize(&x, RECD_NORMALIZE_LOG1P), RECD_EINVAL);
    assert_float_equal(x.value[1], 1, 1e-6);

    x.value[0] = x.value[1] = x.value[2] = 7;
    assert_int_equal(recd_interactions_normalize(&x, RECD_NORMALIZE_MINMAX), RECD_OK);
    assert_float_equal(x.value[1], 1, 1e-6);

    assert_int_equal(recd_normalize_parse("user_mean", &how), RECD_OK);
    assert_int_equal(how, RECD_NORMALIZE_USER_MEAN);
    assert_string_equal(recd_normalize_name(RECD_NORMALIZE_LOG1P), "log1p");
    assert_int_equal(recd_normalize_parse("zscore", &how), RECD_EINVAL);
    recd_interactions_dispose(&x);
}

int test_cleanse_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cleanse_kcore_cascade),
        cmocka_unit_test(test_cleanse_kcore_duplicates),
        cmocka_unit_test(test_cleanse_normalize),
    };
    return cmocka_run_group_tests_name("cleanse", tests, NULL, NULL);
}
