/* test_eval.c: ranking metrics against hand-computed values, and the per-user stratified split. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"

/* user 0 prefers low item indexes, everyone else high ones */
static void fixed_scores(void *data, uint32_t user, float *scores)
{
    size_t n = *(size_t *)data;
    for (size_t i = 0; i != n; ++i)
        scores[i] = user == 0 ? (float)(10 - (int)i) : (float)i;
}

static void build(recd_csr_t *m, size_t rows, size_t cols, const uint32_t *r, const uint32_t *c, size_t n)
{
    assert_int_equal(recd_csr_from_coo(m, rows, cols, r, c, NULL, n, RECD_MERGE_SUM), RECD_OK);
}

/*
 * k = 3, 6 items.
 * user 0: train {0}, test {1,3}; ranking 1,2,3 -> hits at 1 and 3: P 2/3, R 1, nDCG (1 + 1/2) / (1 + 1/log2 3),
 *         AP (1/1 + 2/3) / 2, HR 1.
 * user 1: train {1,2}, test {5}; ranking 5,4,3 -> hit at 1: P 1/3, R 1, nDCG 1, AP 1, HR 1.
 * user 2: train {}, test {0}; ranking 5,4,3 -> no hit: all 0.
 * user 3: train {0}, no test items -> not evaluated.
 */
static void test_eval_hand_computed(void **state)
{
    const uint32_t tr_r[] = {0, 1, 1, 3}, tr_c[] = {0, 1, 2, 0};
    const uint32_t te_r[] = {0, 0, 1, 2}, te_c[] = {1, 3, 5, 0};
    recd_csr_t train, test;
    build(&train, 4, 6, tr_r, tr_c, 4);
    build(&test, 4, 6, te_r, te_c, 4);
    size_t n_items = 6;
    for (uint32_t threads = 1; threads <= 3; ++threads) {
        recd_ranking_metrics_t m;
        assert_int_equal(recd_eval_ranking(&train, &test, 3, fixed_scores, &n_items, threads, &m), RECD_OK);
        assert_int_equal(m.k, 3);
        assert_int_equal(m.users, 3);
        double ndcg0 = 1.5 / (1 + 1 / log2(3.0));
        assert_true(fabs(m.precision - (2.0 / 3 + 1.0 / 3) / 3) < 1e-9);
        assert_true(fabs(m.recall - 2.0 / 3) < 1e-9);
        assert_true(fabs(m.ndcg - (ndcg0 + 1) / 3) < 1e-9);
        assert_true(fabs(m.map - ((1 + 2.0 / 3) / 2 + 1) / 3) < 1e-9);
        assert_true(fabs(m.hit_rate - 2.0 / 3) < 1e-9);
    }
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
}

/* k above the number of candidates: the ideal DCG still counts min(k, |test|) hits, precision divides by k. */
static void test_eval_k_larger_than_catalogue(void **state)
{
    const uint32_t tr_r[] = {1}, tr_c[] = {0};
    const uint32_t te_r[] = {1, 1}, te_c[] = {1, 2};
    recd_csr_t train, test;
    build(&train, 2, 3, tr_r, tr_c, 1);
    build(&test, 2, 3, te_r, te_c, 2);
    size_t n_items = 3;
    recd_ranking_metrics_t m;
    assert_int_equal(recd_eval_ranking(&train, &test, 10, fixed_scores, &n_items, 2, &m), RECD_OK);
    assert_int_equal(m.users, 1);
    /* user 1 ranks 2, 1: both hits */
    assert_true(fabs(m.precision - 0.2) < 1e-9);
    assert_true(fabs(m.recall - 1) < 1e-9);
    assert_true(fabs(m.ndcg - 1) < 1e-9);
    assert_true(fabs(m.map - 1) < 1e-9);
    assert_true(fabs(m.hit_rate - 1) < 1e-9);

    assert_int_equal(recd_eval_ranking(&train, &test, 0, fixed_scores, &n_items, 2, &m), RECD_EINVAL);
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
}

static void random_rows(recd_csr_t *m)
{
    enum { USERS = 200, ITEMS = 50 };
    uint32_t *r = malloc(USERS * ITEMS * sizeof(*r)), *c = malloc(USERS * ITEMS * sizeof(*c));
    float *v = malloc(USERS * ITEMS * sizeof(*v));
    size_t n = 0;
    uint64_t s = 99;
    for (uint32_t u = 0; u != USERS; ++u) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t len = (uint32_t)((s >> 33) % 20); /* 0..19 interactions, so 0 and 1 occur too */
        for (uint32_t k = 0; k != len; ++k, ++n) {
            r[n] = u;
            c[n] = (u * 7 + k * 3) % ITEMS;
            v[n] = (float)(u + k);
        }
    }
    assert_int_equal(recd_csr_from_coo(m, USERS, ITEMS, r, c, v, n, RECD_MERGE_LAST), RECD_OK);
    free(r);
    free(c);
    free(v);
}

static void test_split_sizes_disjoint_union(void **state)
{
    recd_csr_t m, train, test;
    random_rows(&m);
    assert_int_equal(recd_split_stratified(&m, 0.25, 5, &train, &test), RECD_OK);
    assert_int_equal(train.n_rows, m.n_rows);
    assert_int_equal(test.n_cols, m.n_cols);
    assert_int_equal(train.nnz + test.nnz, m.nnz);
    size_t users_with_one = 0;
    for (size_t u = 0; u != m.n_rows; ++u) {
        size_t n = m.row_ptr[u + 1] - m.row_ptr[u], n_test = test.row_ptr[u + 1] - test.row_ptr[u];
        size_t expect = n < 2 ? 0 : (size_t)llround(0.25 * n);
        assert_int_equal(n_test, expect);
        users_with_one += n == 1;
        /* merge-walk: every entry of m is in exactly one of train/test, with its value; both rows sorted */
        uint64_t a = train.row_ptr[u], b = test.row_ptr[u];
        for (uint64_t j = m.row_ptr[u]; j != m.row_ptr[u + 1]; ++j) {
            int in_a = a != train.row_ptr[u + 1] && train.col[a] == m.col[j];
            int in_b = b != test.row_ptr[u + 1] && test.col[b] == m.col[j];
            assert_true(in_a + in_b == 1);
            assert_true((in_a ? train.val[a++] : test.val[b++]) == m.val[j]);
        }
        assert_int_equal(a, train.row_ptr[u + 1]);
        assert_int_equal(b, test.row_ptr[u + 1]);
    }
    assert_true(users_with_one > 0); /* the fixture exercises the "fewer than 2" rule */
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
    recd_csr_dispose(&m);
}

static void test_split_deterministic_per_seed(void **state)
{
    recd_csr_t m, tr1, te1, tr2, te2, tr3, te3;
    random_rows(&m);
    assert_int_equal(recd_split_stratified(&m, 0.3, 1, &tr1, &te1), RECD_OK);
    assert_int_equal(recd_split_stratified(&m, 0.3, 1, &tr2, &te2), RECD_OK);
    assert_int_equal(recd_split_stratified(&m, 0.3, 2, &tr3, &te3), RECD_OK);
    assert_int_equal(te1.nnz, te2.nnz);
    assert_memory_equal(te1.row_ptr, te2.row_ptr, (m.n_rows + 1) * sizeof(uint64_t));
    assert_memory_equal(te1.col, te2.col, te1.nnz * sizeof(uint32_t));
    assert_memory_equal(tr1.col, tr2.col, tr1.nnz * sizeof(uint32_t));
    assert_int_equal(te1.nnz, te3.nnz); /* sizes depend only on the row lengths */
    assert_memory_not_equal(te1.col, te3.col, te1.nnz * sizeof(uint32_t));

    recd_csr_t tr0, te0;
    assert_int_equal(recd_split_stratified(&m, 0, 1, &tr0, &te0), RECD_OK);
    assert_int_equal(te0.nnz, 0);
    assert_int_equal(tr0.nnz, m.nnz);
    recd_csr_dispose(&tr0), recd_csr_dispose(&te0);
    assert_int_equal(recd_split_stratified(&m, 1.5, 1, &tr0, &te0), RECD_EINVAL);
    recd_csr_dispose(&tr1), recd_csr_dispose(&te1), recd_csr_dispose(&tr2), recd_csr_dispose(&te2);
    recd_csr_dispose(&tr3), recd_csr_dispose(&te3), recd_csr_dispose(&m);
}

int test_eval_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_hand_computed),
        cmocka_unit_test(test_eval_k_larger_than_catalogue),
        cmocka_unit_test(test_split_sizes_disjoint_union),
        cmocka_unit_test(test_split_deterministic_per_seed),
    };
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
