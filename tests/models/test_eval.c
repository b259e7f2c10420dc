/* test_eval.c: ranking metrics against hand-computed values; the splits (stratified, temporal, leave-last-out, K-fold). */
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
 * MRR: user 0 first hit at 1, user 1 at 1, user 2 none -> 2/3.
 * AUC: user 0 positives 1 (9), 3 (7) vs negatives 2 (8), 4 (6), 5 (5): 3 + 2 of 6 pairs; user 1 positive 5 (5) vs
 *      0, 3, 4: 1; user 2 positive 0 (0) vs 1..5: 0 -> (5/6 + 1 + 0) / 3.
 * Coverage: tops {1,2,3}, {5,4,3}, {5,4,3} -> 5 of 6 items.
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
        assert_true(fabs(m.mrr - 2.0 / 3) < 1e-9);
        assert_true(fabs(m.auc - (5.0 / 6 + 1) / 3) < 1e-9);
        assert_int_equal(m.auc_users, 3);
        assert_true(fabs(m.coverage - 5.0 / 6) < 1e-9);
        assert_int_equal(m.pairs, 4);
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

/* Scores read from a users x items table. */
typedef struct st_table_t {
    size_t n_items;
    const float *scores;
} table_t;

static void table_scores(void *data, uint32_t user, float *scores)
{
    const table_t *t = data;
    memcpy(scores, t->scores + (size_t)user * t->n_items, t->n_items * sizeof(float));
}

/*
 * k = 2, 5 items.
 * user 0: train {}, test {3}; ranking 0,1,3,4,2 -> no hit in top 2: RR 0; AUC 3 (0.5) vs 0,1,2,4: beats 0.1, 0.3 -> 1/2.
 * user 1: train {2}, test {0,4}; ranking 3 (0.7), then the 0.2 ties by index 0,1,4 -> first hit at rank 2: RR 1/2;
 *         AUC positives 0, 4 (0.2) vs negatives 1 (0.2), 3 (0.7): two ties out of four pairs -> 1/4.
 * user 2: train {1}, test {2}; item 0 scores NaN (ranks lowest, never recommended); ranking 2,3,4 -> RR 1; AUC 1.
 * user 3: train {4}, test {4} (the test item is a train item: masked, so no hit and no AUC positive); top {3,2}: RR 0.
 * MRR (0 + 1/2 + 1 + 0) / 4; AUC over users 0..2 only: (1/2 + 1/4 + 1) / 3; coverage {0,1} u {3,0} u {2,3} u {3,2} = 4/5.
 */
static void test_eval_mrr_auc_coverage(void **state)
{
    const float table[] = {0.9f, 0.8f, 0.1f, 0.5f, 0.3f, /* user 0 */
                           0.2f, 0.2f, 0.9f, 0.7f, 0.2f, /* user 1 */
                           NAN,  0.4f, 0.6f, 0.1f, 0.0f, /* user 2 */
                           1,    2,    3,    4,    5};
    const uint32_t tr_r[] = {1, 2, 3}, tr_c[] = {2, 1, 4};
    const uint32_t te_r[] = {0, 1, 1, 2, 3}, te_c[] = {3, 0, 4, 2, 4};
    recd_csr_t train, test;
    build(&train, 4, 5, tr_r, tr_c, 3);
    build(&test, 4, 5, te_r, te_c, 5);
    table_t t = {5, table};
    for (uint32_t threads = 1; threads <= 3; ++threads) {
        recd_ranking_metrics_t m;
        assert_int_equal(recd_eval_ranking(&train, &test, 2, table_scores, &t, threads, &m), RECD_OK);
        assert_int_equal(m.users, 4);
        assert_int_equal(m.pairs, 5);
        assert_int_equal(m.auc_users, 3);
        assert_true(fabs(m.mrr - 1.5 / 4) < 1e-9);
        assert_true(fabs(m.auc - 1.75 / 3) < 1e-9);
        assert_true(fabs(m.coverage - 0.8) < 1e-9);
        assert_true(fabs(m.hit_rate - 0.5) < 1e-9);
    }
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
}

/* A scorer that knows the test matrix: 1 for its items, 0 elsewhere (or the reverse). */
typedef struct st_oracle_t {
    const recd_csr_t *test;
    int reversed;
} oracle_t;

static void oracle_scores(void *data, uint32_t user, float *scores)
{
    const oracle_t *o = data;
    for (size_t i = 0; i != o->test->n_cols; ++i)
        scores[i] = o->reversed ? 1.0f : 0.0f;
    for (uint64_t j = o->test->row_ptr[user]; j != o->test->row_ptr[user + 1]; ++j)
        scores[o->test->col[j]] = o->reversed ? 0.0f : 1.0f;
}

/* Deterministic pseudo-random scores from (user, item). */
static void hashed_scores(void *data, uint32_t user, float *scores)
{
    size_t n = *(size_t *)data;
    for (size_t i = 0; i != n; ++i) {
        uint64_t h = (user + 1) * 0x9E3779B97F4A7C15ULL ^ (i + 7) * 0xC2B2AE3D27D4EB4FULL;
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9ULL;
        scores[i] = (float)((h >> 40) % 1000); /* ties occur */
    }
}

static void random_rows(recd_csr_t *m);

static void test_eval_auc_perfect_and_reversed(void **state)
{
    recd_csr_t m, train, test;
    random_rows(&m);
    assert_int_equal(recd_split_stratified(&m, 0.3, 11, &train, &test), RECD_OK);
    oracle_t o = {&test, 0};
    recd_ranking_metrics_t good, bad;
    assert_int_equal(recd_eval_ranking(&train, &test, 5, oracle_scores, &o, 2, &good), RECD_OK);
    o.reversed = 1;
    assert_int_equal(recd_eval_ranking(&train, &test, 5, oracle_scores, &o, 2, &bad), RECD_OK);
    assert_true(good.auc_users > 50);
    assert_int_equal(good.auc_users, bad.auc_users);
    assert_true(fabs(good.auc - 1) < 1e-12);
    assert_true(bad.auc < 1e-12);
    assert_true(fabs(good.mrr - 1) < 1e-12);
    assert_true(bad.mrr == 0);
    assert_true(fabs(good.hit_rate - 1) < 1e-12);
    recd_csr_dispose(&train), recd_csr_dispose(&test), recd_csr_dispose(&m);
}

static void test_eval_same_for_any_thread_count(void **state)
{
    recd_csr_t m, train, test;
    random_rows(&m);
    assert_int_equal(recd_split_stratified(&m, 0.25, 3, &train, &test), RECD_OK);
    size_t n_items = m.n_cols;
    recd_ranking_metrics_t one, other;
    assert_int_equal(recd_eval_ranking(&train, &test, 7, hashed_scores, &n_items, 1, &one), RECD_OK);
    assert_true(one.auc > 0.3 && one.auc < 0.7); /* random scores */
    assert_true(one.coverage > 0 && one.coverage <= 1);
    for (uint32_t threads = 2; threads <= 4; ++threads) {
        assert_int_equal(recd_eval_ranking(&train, &test, 7, hashed_scores, &n_items, threads, &other), RECD_OK);
        assert_int_equal(one.users, other.users);
        assert_int_equal(one.pairs, other.pairs);
        assert_int_equal(one.auc_users, other.auc_users);
        /* bit-identical, not merely close */
        assert_memory_equal(&one.precision, &other.precision, sizeof(double));
        assert_memory_equal(&one.recall, &other.recall, sizeof(double));
        assert_memory_equal(&one.ndcg, &other.ndcg, sizeof(double));
        assert_memory_equal(&one.map, &other.map, sizeof(double));
        assert_memory_equal(&one.hit_rate, &other.hit_rate, sizeof(double));
        assert_memory_equal(&one.mrr, &other.mrr, sizeof(double));
        assert_memory_equal(&one.auc, &other.auc, sizeof(double));
        assert_memory_equal(&one.coverage, &other.coverage, sizeof(double));
    }
    recd_csr_dispose(&train), recd_csr_dispose(&test), recd_csr_dispose(&m);
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

/* ts 5 1 5 3 9 5 ordered by (ts, row): rows 1, 3, 0, 2, 5, 4. */
static void test_split_temporal_hand(void **state)
{
    const int64_t ts[] = {5, 1, 5, 3, 9, 5};
    uint8_t mask[6];
    const uint8_t half[] = {0, 0, 1, 0, 1, 1}, two[] = {0, 0, 0, 0, 1, 1}, all[] = {1, 1, 1, 1, 1, 1}, none[6] = {0};
    assert_int_equal(recd_split_temporal_mask(ts, 6, 0.5, mask), RECD_OK);
    assert_memory_equal(mask, half, 6);
    assert_int_equal(recd_split_temporal_mask(ts, 6, 0.4, mask), RECD_OK); /* round(2.4) = 2 */
    assert_memory_equal(mask, two, 6);
    assert_int_equal(recd_split_temporal_mask(ts, 6, 1, mask), RECD_OK);
    assert_memory_equal(mask, all, 6);
    assert_int_equal(recd_split_temporal_mask(ts, 6, 0, mask), RECD_OK);
    assert_memory_equal(mask, none, 6);
    assert_int_equal(recd_split_temporal_mask(ts, 6, -0.1, mask), RECD_EINVAL);
    assert_int_equal(recd_split_temporal_mask(ts, 6, NAN, mask), RECD_EINVAL);
    assert_int_equal(recd_split_temporal_mask(NULL, 0, 0.5, NULL), RECD_OK);
}

/*
 * user 0: rows 0 (ts 10), 2 (30), 5 (30) -> row 5 (the later of the tie); user 1: rows 1 (5), 4 (5), 6 (2) -> row 4;
 * users 2 and 3 have one row each -> train; user 4 has none.
 */
static void test_split_leave_last_out_hand(void **state)
{
    const uint32_t user[] = {0, 1, 0, 2, 1, 0, 1, 3};
    const int64_t ts[] = {10, 5, 30, 7, 5, 30, 2, 1};
    const uint8_t expect[] = {0, 0, 0, 0, 1, 1, 0, 0};
    uint8_t mask[8];
    assert_int_equal(recd_split_leave_last_out_mask(user, ts, 8, 5, mask), RECD_OK);
    assert_memory_equal(mask, expect, 8);
    assert_int_equal(recd_split_leave_last_out_mask(user, ts, 8, 3, mask), RECD_EINVAL); /* user 3 out of range */
    assert_int_equal(recd_split_leave_last_out_mask(NULL, NULL, 0, 0, NULL), RECD_OK);
    assert_int_equal(recd_split_stratified_mask(NULL, 0, 0, 0.5, 1, NULL), RECD_OK);
}

/* The COO version over rows grouped differently gives the CSR version's split, row for row. */
static void test_split_stratified_mask_matches_csr(void **state)
{
    recd_csr_t m, train, test;
    random_rows(&m);
    assert_int_equal(recd_split_stratified(&m, 0.3, 9, &train, &test), RECD_OK);
    /* the entries listed round-robin over the users: users interleave, each user's entries keep their CSR order */
    size_t n = m.nnz, at = 0;
    uint32_t *user = malloc(n * sizeof(*user)), *col = malloc(n * sizeof(*col));
    for (size_t round = 0; at != n; ++round)
        for (size_t u = 0; u != m.n_rows; ++u)
            if (m.row_ptr[u] + round < m.row_ptr[u + 1]) {
                user[at] = (uint32_t)u;
                col[at++] = m.col[m.row_ptr[u] + round];
            }
    uint8_t *mask = malloc(n);
    assert_int_equal(recd_split_stratified_mask(user, n, m.n_rows, 0.3, 9, mask), RECD_OK);
    size_t n_test = 0;
    for (size_t i = 0; i != n; ++i) {
        size_t u = user[i];
        int in_test = 0;
        for (uint64_t j = test.row_ptr[u]; j != test.row_ptr[u + 1]; ++j)
            in_test |= test.col[j] == col[i];
        assert_int_equal(mask[i], in_test);
        n_test += mask[i];
    }
    assert_int_equal(n_test, test.nnz);
    /* ratio 1: every user with two or more rows entirely in test */
    assert_int_equal(recd_split_stratified_mask(user, n, m.n_rows, 1, 9, mask), RECD_OK);
    for (size_t i = 0; i != n; ++i)
        assert_int_equal(mask[i], m.row_ptr[user[i] + 1] - m.row_ptr[user[i]] >= 2);
    assert_int_equal(recd_split_stratified_mask(user, n, m.n_rows - 1, 0.3, 9, mask), RECD_EINVAL);
    free(user), free(col), free(mask);
    recd_csr_dispose(&train), recd_csr_dispose(&test), recd_csr_dispose(&m);
}

static void test_split_kfold_partition(void **state)
{
    enum { N = 103, FOLDS = 5 };
    uint32_t a[N], b[N], c[N];
    size_t size[FOLDS] = {0};
    assert_int_equal(recd_split_kfold_mask(N, FOLDS, 17, a), RECD_OK);
    assert_int_equal(recd_split_kfold_mask(N, FOLDS, 17, b), RECD_OK);
    assert_int_equal(recd_split_kfold_mask(N, FOLDS, 18, c), RECD_OK);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    for (size_t i = 0; i != N; ++i) {
        assert_true(a[i] < FOLDS);
        ++size[a[i]];
    }
    /* 103 = 5 * 20 + 3: the first three folds hold 21 */
    for (uint32_t f = 0; f != FOLDS; ++f)
        assert_int_equal(size[f], f < 3 ? 21 : 20);
    /* shuffled: the folds are not consecutive blocks of rows */
    size_t changes = 0;
    for (size_t i = 1; i != N; ++i)
        changes += a[i] != a[i - 1];
    assert_true(changes > FOLDS);
    assert_int_equal(recd_split_kfold_mask(N, 1, 17, a), RECD_EINVAL);
    assert_int_equal(recd_split_kfold_mask(0, 2, 17, NULL), RECD_OK);
}

/* recd_split_kfold (CSR) and recd_split_kfold_mask over the entries in row-major order cut the same folds. */
static void test_split_kfold_mask_matches_csr(void **state)
{
    recd_csr_t m;
    random_rows(&m);
    uint32_t *fold_of = malloc(m.nnz * sizeof(*fold_of));
    assert_int_equal(recd_split_kfold_mask(m.nnz, 4, 23, fold_of), RECD_OK);
    for (uint32_t f = 0; f != 4; ++f) {
        recd_csr_t train, test;
        assert_int_equal(recd_split_kfold(&m, 4, f, 23, &train, &test), RECD_OK);
        size_t in_fold = 0;
        for (size_t u = 0; u != m.n_rows; ++u)
            for (uint64_t j = m.row_ptr[u]; j != m.row_ptr[u + 1]; ++j) {
                int in_test = 0;
                for (uint64_t t = test.row_ptr[u]; t != test.row_ptr[u + 1]; ++t)
                    in_test |= test.col[t] == m.col[j];
                assert_int_equal(in_test, fold_of[j] == f);
                in_fold += fold_of[j] == f;
            }
        assert_int_equal(in_fold, test.nnz);
        recd_csr_dispose(&train), recd_csr_dispose(&test);
    }
    free(fold_of);
    recd_csr_dispose(&m);
}

static void test_split_by_mask(void **state)
{
    /* (0,1) twice in train (merged LAST: 3), (0,1) also in test, (1,2) in test, (2,0) in train */
    const uint32_t rows[] = {0, 1, 0, 2, 0}, cols[] = {1, 2, 1, 0, 1};
    const float vals[] = {1, 2, 3, 4, 5};
    const uint8_t is_test[] = {0, 1, 0, 0, 1};
    recd_csr_t train, test;
    assert_int_equal(recd_csr_split_by_mask(3, 3, rows, cols, vals, 5, is_test, RECD_MERGE_LAST, &train, &test), RECD_OK);
    assert_int_equal(train.nnz, 2);
    assert_int_equal(test.nnz, 2);
    const uint64_t tr_ptr[] = {0, 1, 1, 2}, te_ptr[] = {0, 1, 2, 2};
    assert_memory_equal(train.row_ptr, tr_ptr, sizeof(tr_ptr));
    assert_memory_equal(test.row_ptr, te_ptr, sizeof(te_ptr));
    assert_int_equal(train.col[0], 1);
    assert_true(train.val[0] == 3);
    assert_int_equal(train.col[1], 0);
    assert_true(train.val[1] == 4);
    assert_int_equal(test.col[0], 1);
    assert_true(test.val[0] == 5);
    assert_int_equal(test.col[1], 2);
    assert_true(test.val[1] == 2);
    recd_csr_dispose(&train), recd_csr_dispose(&test);

    /* vals NULL: ones, summed */
    assert_int_equal(recd_csr_split_by_mask(3, 3, rows, cols, NULL, 5, is_test, RECD_MERGE_SUM, &train, &test), RECD_OK);
    assert_true(train.val[0] == 2 && test.val[0] == 1);
    recd_csr_dispose(&train), recd_csr_dispose(&test);

    /* a test row out of range: both outputs zeroed */
    assert_int_equal(recd_csr_split_by_mask(2, 3, rows, cols, vals, 5, is_test, RECD_MERGE_SUM, &train, &test), RECD_EINVAL);
    assert_null(train.row_ptr);
    assert_null(test.row_ptr);
}

/* The stratified protocol written out independently: splitmix64 (Steele et al.), Lemire's bounded draw, one Fisher-Yates
 * per user with two or more rows, the generator carried from user to user; the first round(ratio * count) shuffled
 * positions of the user's rows, in input order, are test. recd-train's published figures depend on this exact draw. */
static uint64_t ref_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void test_split_stratified_mask_exact(void **state)
{
    /* users interleaved: user 0 has rows 0, 2, 3, 7, 9; user 1 rows 1, 4, 8; user 2 row 5 (alone); user 3 row 6, 10 */
    const uint32_t user[] = {0, 1, 0, 0, 1, 2, 3, 0, 1, 0, 3};
    enum { N = 11, USERS = 4 };
    const double ratio = 0.4;
    for (uint64_t seed = 0; seed != 20; ++seed) {
        uint8_t expect[N] = {0}, mask[N];
        uint64_t x = seed;
        for (uint32_t u = 0; u != USERS; ++u) {
            size_t rows[N], count = 0, perm[N];
            for (size_t i = 0; i != N; ++i)
                if (user[i] == u)
                    rows[count++] = i;
            if (count < 2)
                continue;
            for (size_t i = 0; i != count; ++i)
                perm[i] = i;
            for (size_t i = count - 1; i > 0; --i) {
                size_t j = (size_t)(((unsigned __int128)ref_next(&x) * (i + 1)) >> 64), t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            for (size_t i = 0; i != (size_t)llround(ratio * (double)count); ++i)
                expect[rows[perm[i]]] = 1;
        }
        assert_int_equal(recd_split_stratified_mask(user, N, USERS, ratio, seed, mask), RECD_OK);
        assert_memory_equal(mask, expect, N);
        assert_int_equal(mask[5], 0); /* a lone row stays in train */
    }
}

/* Non-finite scores rank lowest for AUC, as recd_topk never recommends them: a +inf positive ties the NaN and -inf
 * negatives (one half each) and loses to the finite one -> 1/3. */
static void test_eval_auc_non_finite(void **state)
{
    const float table[] = {INFINITY, NAN, -INFINITY, 0.5f};
    const uint32_t te_r[] = {0}, te_c[] = {0};
    recd_csr_t train, test;
    build(&train, 1, 4, NULL, NULL, 0);
    build(&test, 1, 4, te_r, te_c, 1);
    table_t t = {4, table};
    recd_ranking_metrics_t m;
    assert_int_equal(recd_eval_ranking(&train, &test, 2, table_scores, &t, 1, &m), RECD_OK);
    assert_int_equal(m.auc_users, 1);
    assert_true(fabs(m.auc - 1.0 / 3) < 1e-12);
    assert_true(m.hit_rate == 0);
    assert_true(fabs(m.coverage - 0.25) < 1e-12); /* only item 3 has a finite score */
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
}

int test_eval_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_hand_computed),
        cmocka_unit_test(test_eval_k_larger_than_catalogue),
        cmocka_unit_test(test_split_sizes_disjoint_union),
        cmocka_unit_test(test_split_deterministic_per_seed),
        cmocka_unit_test(test_eval_mrr_auc_coverage),
        cmocka_unit_test(test_eval_auc_perfect_and_reversed),
        cmocka_unit_test(test_eval_same_for_any_thread_count),
        cmocka_unit_test(test_split_temporal_hand),
        cmocka_unit_test(test_split_leave_last_out_hand),
        cmocka_unit_test(test_split_stratified_mask_matches_csr),
        cmocka_unit_test(test_split_kfold_partition),
        cmocka_unit_test(test_split_kfold_mask_matches_csr),
        cmocka_unit_test(test_split_by_mask),
        cmocka_unit_test(test_split_stratified_mask_exact),
        cmocka_unit_test(test_eval_auc_non_finite),
    };
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
