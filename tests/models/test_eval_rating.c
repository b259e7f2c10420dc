/* test_eval_rating.c: RMSE/MAE/R^2 on hand-computed data, and the K-fold split's partition properties. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"

typedef struct st_table_t {
    uint32_t n_cols;
    const float *pred; /* dense n_rows x n_cols */
} table_t;

static float predict_table(void *data, uint32_t user, uint32_t item)
{
    const table_t *t = data;
    return t->pred[user * t->n_cols + item];
}

static void test_eval_rating_hand(void **state)
{
    /* ratings (0,0)=4 (0,2)=2 (1,1)=5; predictions 3.5, 2, 4: errors 0.5, 0, 1 */
    uint32_t rows[] = {0, 1, 0}, cols[] = {0, 1, 2};
    float vals[] = {4, 5, 2}, pred[] = {3.5f, 9, 2, 9, 4, 9};
    recd_csr_t m;
    recd_rating_metrics_t out;
    table_t t = {3, pred};
    assert_int_equal(recd_csr_from_coo(&m, 2, 3, rows, cols, vals, 3, RECD_MERGE_SUM), RECD_OK);
    assert_int_equal(recd_eval_rating(&m, predict_table, &t, &out), RECD_OK);
    assert_int_equal(out.n, 3);
    assert_float_equal(out.rmse, sqrt(1.25 / 3), 1e-12);
    assert_float_equal(out.mae, 0.5, 1e-12);
    /* mean 11/3, SS_tot = 1/9 + 25/9 + 16/9 = 42/9, SS_res = 1.25 */
    assert_float_equal(out.r2, 1 - 1.25 / (42.0 / 9), 1e-12);
    recd_csr_dispose(&m);
}

static void test_eval_rating_constant_truth(void **state)
{
    uint32_t rows[] = {0, 0}, cols[] = {0, 1};
    float vals[] = {3, 3}, exact[] = {3, 3}, off[] = {3, 4};
    recd_csr_t m, empty = {0};
    recd_rating_metrics_t out;
    assert_int_equal(recd_csr_from_coo(&m, 1, 2, rows, cols, vals, 2, RECD_MERGE_SUM), RECD_OK);
    assert_int_equal(recd_eval_rating(&m, predict_table, &(table_t){2, exact}, &out), RECD_OK);
    assert_float_equal(out.rmse, 0, 0);
    assert_float_equal(out.r2, 1, 0);
    assert_int_equal(recd_eval_rating(&m, predict_table, &(table_t){2, off}, &out), RECD_OK);
    assert_float_equal(out.rmse, sqrt(0.5), 1e-12);
    assert_float_equal(out.mae, 0.5, 1e-12);
    assert_float_equal(out.r2, 0, 0);
    assert_int_equal(recd_eval_rating(&empty, predict_table, &(table_t){2, off}, &out), RECD_EINVAL);
    recd_csr_dispose(&m);
}

#define KF_ROWS 30
#define KF_COLS 20

/* A seeded random matrix whose value at (u, i) is u * 1000 + i, so every entry can be traced back. */
static void make_matrix(recd_csr_t *m)
{
    uint32_t rows[KF_ROWS * KF_COLS], cols[KF_ROWS * KF_COLS];
    float vals[KF_ROWS * KF_COLS];
    size_t n = 0;
    uint64_t s = 4242;
    for (uint32_t u = 0; u != KF_ROWS; ++u)
        for (uint32_t i = 0; i != KF_COLS; ++i) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            if ((s >> 33) % 3 == 0) {
                rows[n] = u;
                cols[n] = i;
                vals[n] = (float)(u * 1000 + i);
                ++n;
            }
        }
    assert_int_equal(recd_csr_from_coo(m, KF_ROWS, KF_COLS, rows, cols, vals, n, RECD_MERGE_SUM), RECD_OK);
}

static void check_sorted_and_traced(const recd_csr_t *m, int *dense, int mark)
{
    for (size_t u = 0; u != m->n_rows; ++u)
        for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j) {
            if (j != m->row_ptr[u])
                assert_true(m->col[j - 1] < m->col[j]);
            assert_float_equal(m->val[j], (float)(u * 1000 + m->col[j]), 0);
            dense[u * KF_COLS + m->col[j]] += mark;
        }
}

static void test_kfold_partition(void **state)
{
    const uint32_t folds = 5;
    recd_csr_t m;
    int cover[KF_ROWS * KF_COLS] = {0};
    size_t smallest = SIZE_MAX, largest = 0;
    make_matrix(&m);
    assert_true(m.nnz % folds != 0); /* the uneven case is the interesting one */

    for (uint32_t f = 0; f != folds; ++f) {
        recd_csr_t train, test;
        int here[KF_ROWS * KF_COLS] = {0};
        assert_int_equal(recd_split_kfold(&m, folds, f, 17, &train, &test), RECD_OK);
        assert_int_equal(train.n_rows, m.n_rows);
        assert_int_equal(test.n_cols, m.n_cols);
        assert_int_equal(train.nnz + test.nnz, m.nnz);
        assert_int_equal(test.row_ptr[test.n_rows], test.nnz);
        assert_int_equal(train.row_ptr[train.n_rows], train.nnz);
        check_sorted_and_traced(&train, here, 1);
        check_sorted_and_traced(&test, here, 1);
        check_sorted_and_traced(&test, cover, 1);
        /* train and test of one fold split m exactly */
        for (size_t u = 0; u != m.n_rows; ++u)
            for (uint32_t i = 0; i != KF_COLS; ++i) {
                int in_m = 0;
                for (uint64_t j = m.row_ptr[u]; j != m.row_ptr[u + 1]; ++j)
                    in_m |= m.col[j] == i;
                assert_int_equal(here[u * KF_COLS + i], in_m);
            }
        if (test.nnz < smallest)
            smallest = test.nnz;
        if (test.nnz > largest)
            largest = test.nnz;
        recd_csr_dispose(&train);
        recd_csr_dispose(&test);
    }
    /* the test folds are disjoint and cover every entry once */
    for (size_t u = 0; u != m.n_rows; ++u) {
        uint64_t j = m.row_ptr[u];
        for (uint32_t i = 0; i != KF_COLS; ++i) {
            int in_m = j != m.row_ptr[u + 1] && m.col[j] == i;
            j += in_m;
            assert_int_equal(cover[u * KF_COLS + i], in_m);
        }
    }
    assert_true(largest - smallest <= 1);
    assert_int_equal(smallest, m.nnz / folds);
    recd_csr_dispose(&m);
}

static void test_kfold_deterministic(void **state)
{
    recd_csr_t m, a_tr, a_te, b_tr, b_te, c_tr, c_te;
    make_matrix(&m);
    assert_int_equal(recd_split_kfold(&m, 4, 1, 99, &a_tr, &a_te), RECD_OK);
    assert_int_equal(recd_split_kfold(&m, 4, 1, 99, &b_tr, &b_te), RECD_OK);
    assert_int_equal(recd_split_kfold(&m, 4, 1, 100, &c_tr, &c_te), RECD_OK);
    assert_int_equal(a_te.nnz, b_te.nnz);
    assert_memory_equal(a_te.row_ptr, b_te.row_ptr, (m.n_rows + 1) * sizeof(uint64_t));
    assert_memory_equal(a_te.col, b_te.col, a_te.nnz * sizeof(uint32_t));
    assert_memory_equal(a_tr.col, b_tr.col, a_tr.nnz * sizeof(uint32_t));
    /* another seed picks another fold */
    assert_int_equal(a_te.nnz, c_te.nnz);
    int same = memcmp(a_te.row_ptr, c_te.row_ptr, (m.n_rows + 1) * sizeof(uint64_t)) == 0 &&
               memcmp(a_te.col, c_te.col, a_te.nnz * sizeof(uint32_t)) == 0;
    assert_false(same);
    recd_csr_dispose(&a_tr), recd_csr_dispose(&a_te), recd_csr_dispose(&b_tr), recd_csr_dispose(&b_te);
    recd_csr_dispose(&c_tr), recd_csr_dispose(&c_te);
    recd_csr_dispose(&m);
}

static void test_kfold_rejects_bad_folds(void **state)
{
    recd_csr_t m, train, test;
    make_matrix(&m);
    assert_int_equal(recd_split_kfold(&m, 1, 0, 1, &train, &test), RECD_EINVAL);
    assert_int_equal(recd_split_kfold(&m, 5, 5, 1, &train, &test), RECD_EINVAL);
    assert_null(train.row_ptr);
    assert_null(test.col);
    recd_csr_dispose(&m);
}

int test_eval_rating_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_rating_hand),        cmocka_unit_test(test_eval_rating_constant_truth),
        cmocka_unit_test(test_kfold_partition),         cmocka_unit_test(test_kfold_deterministic),
        cmocka_unit_test(test_kfold_rejects_bad_folds),
    };
    return cmocka_run_group_tests_name("eval_rating", tests, NULL, NULL);
}
