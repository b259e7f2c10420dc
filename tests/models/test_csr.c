/* test_csr.c: building CSR matrices from triples (merge policies) and transposing them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "models/model.h"

/* Value at (r, c), or -1 when not stored; also checks each row is sorted without duplicates. */
static float at(const recd_csr_t *m, size_t r, uint32_t c)
{
    for (uint64_t j = m->row_ptr[r]; j != m->row_ptr[r + 1]; ++j) {
        if (j > m->row_ptr[r])
            assert_true(m->col[j - 1] < m->col[j]);
        if (m->col[j] == c)
            return m->val[j];
    }
    return -1;
}

/* (0,2)=1 (2,1)=2 (0,2)=5 (0,0)=3 (2,1)=4 (0,2)=0.5; row 1 and row 3 empty */
static const uint32_t R[] = {0, 2, 0, 0, 2, 0};
static const uint32_t C[] = {2, 1, 2, 0, 1, 2};
static const float V[] = {1, 2, 5, 3, 4, 0.5f};

static void check_shape(const recd_csr_t *m)
{
    assert_int_equal(m->n_rows, 4);
    assert_int_equal(m->n_cols, 3);
    assert_int_equal(m->nnz, 3);
    assert_int_equal(m->row_ptr[0], 0);
    assert_int_equal(m->row_ptr[1], 2);
    assert_int_equal(m->row_ptr[2], 2); /* empty row */
    assert_int_equal(m->row_ptr[3], 3);
    assert_int_equal(m->row_ptr[4], 3); /* empty last row */
    assert_int_equal(m->col[0], 0);
    assert_int_equal(m->col[1], 2);
    assert_int_equal(m->col[2], 1);
    assert_true(at(m, 0, 0) == 3);
}

static void test_csr_merge_sum(void **state)
{
    recd_csr_t m;
    assert_int_equal(recd_csr_from_coo(&m, 4, 3, R, C, V, 6, RECD_MERGE_SUM), RECD_OK);
    check_shape(&m);
    assert_true(at(&m, 0, 2) == 6.5f);
    assert_true(at(&m, 2, 1) == 6.0f);
    recd_csr_dispose(&m);
    recd_csr_dispose(&m); /* a zeroed struct is fine */
}

static void test_csr_merge_max(void **state)
{
    recd_csr_t m;
    assert_int_equal(recd_csr_from_coo(&m, 4, 3, R, C, V, 6, RECD_MERGE_MAX), RECD_OK);
    check_shape(&m);
    assert_true(at(&m, 0, 2) == 5.0f);
    assert_true(at(&m, 2, 1) == 4.0f);
    recd_csr_dispose(&m);
}

static void test_csr_merge_last(void **state)
{
    recd_csr_t m;
    assert_int_equal(recd_csr_from_coo(&m, 4, 3, R, C, V, 6, RECD_MERGE_LAST), RECD_OK);
    check_shape(&m);
    assert_true(at(&m, 0, 2) == 0.5f); /* the later triple wins, though it is smaller */
    assert_true(at(&m, 2, 1) == 4.0f);
    recd_csr_dispose(&m);
}

static void test_csr_null_values_and_errors(void **state)
{
    recd_csr_t m;
    assert_int_equal(recd_csr_from_coo(&m, 4, 3, R, C, NULL, 6, RECD_MERGE_SUM), RECD_OK);
    assert_true(at(&m, 0, 2) == 3.0f); /* three unit entries summed */
    assert_true(at(&m, 0, 0) == 1.0f);
    recd_csr_dispose(&m);
    assert_int_equal(recd_csr_from_coo(&m, 4, 3, R, C, NULL, 6, RECD_MERGE_MAX), RECD_OK);
    assert_true(at(&m, 0, 2) == 1.0f);
    recd_csr_dispose(&m);

    const uint32_t bad_row[] = {4}, ok[] = {0}, bad_col[] = {3};
    assert_int_equal(recd_csr_from_coo(&m, 4, 3, bad_row, ok, NULL, 1, RECD_MERGE_SUM), RECD_EINVAL);
    assert_int_equal(recd_csr_from_coo(&m, 4, 3, ok, bad_col, NULL, 1, RECD_MERGE_SUM), RECD_EINVAL);

    assert_int_equal(recd_csr_from_coo(&m, 2, 2, NULL, NULL, NULL, 0, RECD_MERGE_SUM), RECD_OK);
    assert_int_equal(m.nnz, 0);
    assert_int_equal(m.row_ptr[2], 0);
    recd_csr_dispose(&m);
}

static void test_csr_transpose(void **state)
{
    recd_csr_t m, t, tt;
    assert_int_equal(recd_csr_from_coo(&m, 4, 3, R, C, V, 6, RECD_MERGE_SUM), RECD_OK);
    assert_int_equal(recd_csr_transpose(&m, &t), RECD_OK);
    assert_int_equal(t.n_rows, 3);
    assert_int_equal(t.n_cols, 4);
    assert_int_equal(t.nnz, 3);
    assert_true(at(&t, 0, 0) == 3.0f);
    assert_true(at(&t, 2, 0) == 6.5f);
    assert_true(at(&t, 1, 2) == 6.0f);
    assert_true(at(&t, 1, 0) == -1);
    assert_int_equal(recd_csr_transpose(&t, &tt), RECD_OK);
    assert_int_equal(tt.nnz, m.nnz);
    assert_memory_equal(tt.row_ptr, m.row_ptr, (m.n_rows + 1) * sizeof(uint64_t));
    assert_memory_equal(tt.col, m.col, m.nnz * sizeof(uint32_t));
    assert_memory_equal(tt.val, m.val, m.nnz * sizeof(float));
    recd_csr_dispose(&m);
    recd_csr_dispose(&t);
    recd_csr_dispose(&tt);
}

int test_csr_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csr_merge_sum),  cmocka_unit_test(test_csr_merge_max),
        cmocka_unit_test(test_csr_merge_last), cmocka_unit_test(test_csr_null_values_and_errors),
        cmocka_unit_test(test_csr_transpose),
    };
    return cmocka_run_group_tests_name("csr", tests, NULL, NULL);
}
