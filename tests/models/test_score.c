/* test_score.c: scoring, top-k selection, fold-in and similar items against naive reference computations. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "models/model.h"

typedef struct st_fixture_t {
    char dir[64];
    int seq;
} fixture_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/recd-test-score-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* Deterministic uniform floats in [-1, 1). */
static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Writes and opens a model with generated ids "u<i>" / "i<i>"; arrays not given are filled with zeros or defaults. */
static recd_model_t *make_model(fixture_t *fx, recd_model_spec_t spec)
{
    char path[128], err[256] = "";
    char **uids = malloc(sizeof(char *) * (spec.n_users + 1)), **iids = malloc(sizeof(char *) * (spec.n_items + 1));
    float *pop = NULL;
    for (size_t i = 0; i != spec.n_users; ++i)
        assert_true(asprintf(&uids[i], "u%zu", i) > 0);
    for (size_t i = 0; i != spec.n_items; ++i)
        assert_true(asprintf(&iids[i], "i%zu", i) > 0);
    spec.user_ids = (const char *const *)uids;
    spec.item_ids = (const char *const *)iids;
    if (spec.item_popularity == NULL) {
        pop = calloc(spec.n_items + 1, sizeof(float));
        spec.item_popularity = pop;
    }
    snprintf(path, sizeof(path), "%s/m%d.recd", fx->dir, fx->seq++);
    int ret = recd_model_write(&spec, path, err, sizeof(err));
    if (ret != RECD_OK)
        fail_msg("write: %s", err);
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    if (m == NULL)
        fail_msg("open: %s", err);
    for (size_t i = 0; i != spec.n_users; ++i)
        free(uids[i]);
    for (size_t i = 0; i != spec.n_items; ++i)
        free(iids[i]);
    free(uids);
    free(iids);
    free(pop);
    return m;
}

/* ---- top-k --------------------------------------------------------------------------------------------------------- */

static void expect_topk(const float *scores, size_t n, size_t k, const uint32_t *idx, size_t expected)
{
    recd_scored_t out[16];
    assert_true(k <= 16);
    for (size_t i = 0; i != 16; ++i)
        out[i] = (recd_scored_t){0xdeadbeef, 12345.0f};
    size_t got = recd_topk(scores, n, k, out);
    assert_int_equal(got, expected);
    for (size_t i = 0; i != got; ++i) {
        assert_int_equal(out[i].index, idx[i]);
        assert_true(out[i].score == scores[idx[i]]);
    }
    for (size_t i = got; i != 16; ++i)
        assert_int_equal(out[i].index, 0xdeadbeef); /* nothing written past the result */
}

static void test_topk_known(void **state)
{
    const float s[] = {0.5f, 2, -1, 3, 2, NAN, -INFINITY, 3, INFINITY, -0.25f};
    const uint32_t top[] = {3, 7, 1, 4, 0, 9, 2};
    expect_topk(s, 10, 1, top, 1);
    expect_topk(s, 10, 2, top, 2);
    expect_topk(s, 10, 3, top, 3);
    expect_topk(s, 10, 5, top, 5);
    expect_topk(s, 10, 7, top, 7);
    expect_topk(s, 10, 12, top, 7); /* k > n: every finite score, NaN and +-inf skipped */
    expect_topk(s, 10, 0, top, 0);
    expect_topk(s, 0, 5, top, 0);
    const float none[] = {-INFINITY, NAN, -INFINITY};
    expect_topk(none, 3, 2, top, 0);
    /* All ties: ascending index. */
    const float ties[] = {1, 1, 1, 1, 1, 1};
    const uint32_t tie_order[] = {0, 1, 2, 3, 4, 5};
    expect_topk(ties, 6, 4, tie_order, 4);
    /* Descending input with a late tie. */
    const float desc[] = {5, 4, 3, 2, 1, 5};
    const uint32_t desc_order[] = {0, 5, 1, 2};
    expect_topk(desc, 6, 4, desc_order, 4);
}

static int cmp_ref(const void *a, const void *b)
{
    const recd_scored_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void test_topk_random_vs_sort(void **state)
{
    uint64_t seed = 42;
    enum { N = 1000 };
    float *s = malloc(N * sizeof(float));
    recd_scored_t *ref = malloc(N * sizeof(*ref)), *out = malloc(N * sizeof(*out));
    for (int round = 0; round != 20; ++round) {
        size_t n = 1 + (size_t)((rnd(&seed) + 1) * (N - 1) / 2), nref = 0;
        for (size_t i = 0; i != n; ++i) {
            float r = rnd(&seed);
            /* Few distinct values so ties are common; some excluded entries. */
            s[i] = r < -0.8f ? -INFINITY : floorf(r * 8);
            if (s[i] > -INFINITY)
                ref[nref++] = (recd_scored_t){(uint32_t)i, s[i]};
        }
        qsort(ref, nref, sizeof(*ref), cmp_ref);
        size_t ks[] = {1, 3, 10, 100, n, n + 5};
        for (size_t j = 0; j != sizeof(ks) / sizeof(ks[0]); ++j) {
            size_t k = ks[j] < N ? ks[j] : N;
            size_t got = recd_topk(s, n, k, out);
            assert_int_equal(got, k < nref ? k : nref);
            for (size_t i = 0; i != got; ++i) {
                assert_int_equal(out[i].index, ref[i].index);
                assert_true(out[i].score == ref[i].score);
            }
        }
    }
    free(s);
    free(ref);
    free(out);
}

/* ---- scoring ------------------------------------------------------------------------------------------------------- */

static void test_score_kinds(void **state)
{
    fixture_t *fx = *state;
    enum { NU = 4, NI = 13, F = 5 };
    uint64_t seed = 7;
    float uf[NU * F], itf[NI * F], ub[NU], ib[NI], pop[NI];
    for (int i = 0; i != NU * F; ++i)
        uf[i] = rnd(&seed);
    for (int i = 0; i != NI * F; ++i)
        itf[i] = rnd(&seed);
    for (int i = 0; i != NU; ++i)
        ub[i] = rnd(&seed);
    for (int i = 0; i != NI; ++i) {
        ib[i] = rnd(&seed);
        pop[i] = (float)((i * 7) % 5);
    }
    uint32_t kinds[] = {RECD_MODEL_ALS, RECD_MODEL_BPR, RECD_MODEL_BIASED_MF, RECD_MODEL_POPULARITY};
    for (size_t k = 0; k != 4; ++k) {
        int factored = kinds[k] != RECD_MODEL_POPULARITY;
        recd_model_t *m = make_model(fx, (recd_model_spec_t){.kind = kinds[k],
                                                             .n_factors = factored ? F : 0,
                                                             .n_users = NU,
                                                             .n_items = NI,
                                                             .user_factors = factored ? uf : NULL,
                                                             .item_factors = factored ? itf : NULL,
                                                             .item_popularity = pop,
                                                             .user_bias = ub,
                                                             .item_bias = ib,
                                                             .global_bias = 3.5f});
        for (int64_t u = -1; u != NU; ++u) {
            const float *x = factored ? (u >= 0 ? recd_model_user_vector(m, (uint32_t)u) : uf) : NULL;
            float scores[NI + 1];
            scores[NI] = 777.0f;
            recd_model_score(m, x, u, scores);
            assert_true(scores[NI] == 777.0f);
            for (int i = 0; i != NI; ++i) {
                double want = 0;
                if (factored)
                    for (int j = 0; j != F; ++j)
                        want += (double)x[j] * itf[i * F + j];
                if (kinds[k] == RECD_MODEL_BPR)
                    want += ib[i];
                if (kinds[k] == RECD_MODEL_BIASED_MF)
                    want += 3.5 + ib[i] + (u >= 0 ? ub[u] : 0);
                if (kinds[k] == RECD_MODEL_POPULARITY)
                    want = pop[i];
                assert_float_equal(scores[i], want, 1e-5);
            }
        }
        recd_model_release(m);
    }
}

/* ---- fold-in ------------------------------------------------------------------------------------------------------- */

/* Solves A x = b (n x n, row-major, destroyed) by Gaussian elimination with partial pivoting, in double. */
static void gauss_solve(double *a, double *b, int n)
{
    for (int c = 0; c != n; ++c) {
        int p = c;
        for (int r = c + 1; r != n; ++r)
            if (fabs(a[r * n + c]) > fabs(a[p * n + c]))
                p = r;
        for (int j = 0; j != n; ++j) {
            double t = a[c * n + j];
            a[c * n + j] = a[p * n + j];
            a[p * n + j] = t;
        }
        double t = b[c];
        b[c] = b[p];
        b[p] = t;
        for (int r = c + 1; r != n; ++r) {
            double q = a[r * n + c] / a[c * n + c];
            for (int j = c; j != n; ++j)
                a[r * n + j] -= q * a[c * n + j];
            b[r] -= q * b[c];
        }
    }
    for (int r = n - 1; r >= 0; --r) {
        double s = b[r];
        for (int j = r + 1; j != n; ++j)
            s -= a[r * n + j] * b[j];
        b[r] = s / a[r * n + r];
    }
}

/* Builds the normal equations naively in double and compares recd_model_fold_in's answer. */
static void check_fold_in(fixture_t *fx, int ni, int f, float alpha, float reg, const uint32_t *items, const float *values,
                          size_t n, uint64_t seed)
{
    float *itf = malloc(sizeof(float) * ni * f), *uf = malloc(sizeof(float) * f), *vec = malloc(sizeof(float) * (f + 1));
    for (int i = 0; i != ni * f; ++i)
        itf[i] = rnd(&seed);
    for (int i = 0; i != f; ++i)
        uf[i] = rnd(&seed);
    recd_model_t *m = make_model(fx, (recd_model_spec_t){.kind = RECD_MODEL_ALS,
                                                         .n_factors = (uint32_t)f,
                                                         .n_users = 1,
                                                         .n_items = (size_t)ni,
                                                         .user_factors = uf,
                                                         .item_factors = itf,
                                                         .alpha = alpha,
                                                         .reg = reg});
    double *a = calloc((size_t)f * f, sizeof(double)), *b = calloc((size_t)f, sizeof(double));
    for (int i = 0; i != ni; ++i)
        for (int r = 0; r != f; ++r)
            for (int c = 0; c != f; ++c)
                a[r * f + c] += (double)itf[i * f + r] * itf[i * f + c];
    for (int r = 0; r != f; ++r)
        a[r * f + r] += reg;
    for (size_t k = 0; k != n; ++k) {
        const float *y = itf + (size_t)items[k] * f;
        double c = 1.0 + (double)alpha * values[k];
        for (int r = 0; r != f; ++r) {
            for (int cc = 0; cc != f; ++cc)
                a[r * f + cc] += (c - 1) * y[r] * y[cc];
            b[r] += c * y[r];
        }
    }
    gauss_solve(a, b, f);
    vec[f] = 555.0f;
    assert_int_equal(recd_model_fold_in(m, items, values, n, vec), RECD_OK);
    assert_true(vec[f] == 555.0f);
    double num = 0, den = 0;
    for (int r = 0; r != f; ++r) {
        num += (vec[r] - b[r]) * (vec[r] - b[r]);
        den += b[r] * b[r];
    }
    assert_true(den > 0);
    if (!(sqrt(num / den) < 1e-4))
        fail_msg("fold-in relative error %g (f = %d)", sqrt(num / den), f);
    free(a);
    free(b);
    free(itf);
    free(uf);
    free(vec);
    recd_model_release(m);
}

static void test_fold_in_matches_naive(void **state)
{
    fixture_t *fx = *state;
    /* A duplicated item counts twice, values vary, alpha and reg as a trainer would set them. */
    const uint32_t items[] = {3, 17, 0, 3, 29, 11, 8};
    const float values[] = {1, 2, 0.5f, 1, 4, 1, 0};
    check_fold_in(fx, 30, 8, 2.0f, 0.1f, items, values, 7, 1);
    check_fold_in(fx, 30, 8, 40.0f, 0.05f, items, values, 3, 2);
    check_fold_in(fx, 30, 1, 1.0f, 0.1f, items, values, 7, 3);
    /* Above the stack-buffer limit. */
    check_fold_in(fx, 300, 130, 1.0f, 1.0f, items, values, 7, 4);
}

static void test_fold_in_edges(void **state)
{
    fixture_t *fx = *state;
    float itf[] = {1, 0, 0, 1, 1, 1}, uf[] = {1, 1}, vec[2] = {9, 9};
    recd_model_t *m = make_model(fx, (recd_model_spec_t){.kind = RECD_MODEL_ALS,
                                                         .n_factors = 2,
                                                         .n_users = 1,
                                                         .n_items = 3,
                                                         .user_factors = uf,
                                                         .item_factors = itf,
                                                         .alpha = 1,
                                                         .reg = 0.1f});
    assert_int_equal(recd_model_fold_in(m, NULL, NULL, 0, vec), RECD_OK);
    assert_true(vec[0] == 0 && vec[1] == 0);
    uint32_t bad = 3;
    float one = 1;
    assert_int_equal(recd_model_fold_in(m, &bad, &one, 1, vec), RECD_EINVAL);
    /* A strongly negative confidence makes the system indefinite. */
    uint32_t item = 2;
    float neg = -1000;
    assert_int_equal(recd_model_fold_in(m, &item, &neg, 1, vec), RECD_ENUMERIC);
    recd_model_release(m);
}

/* ---- similar items ------------------------------------------------------------------------------------------------- */

static void test_similar_cosine(void **state)
{
    fixture_t *fx = *state;
    /* cos with item 0 = (1, 0): item 5 (2, 0) -> 1, item 1 -> 0.99, item 6 -> 0.6, item 2 -> 0, item 3 -> -1; item 4 is
     * the zero vector and has no cosine. */
    float itf[] = {1, 0, 0.9f, 0.1f, 0, 1, -1, 0, 0, 0, 2, 0, 3, 4}, uf[] = {1, 1};
    float pop[] = {1, 9, 3, 3, 0, 2, 5};
    recd_model_t *m = make_model(fx, (recd_model_spec_t){.kind = RECD_MODEL_ALS,
                                                         .n_factors = 2,
                                                         .n_users = 1,
                                                         .n_items = 7,
                                                         .user_factors = uf,
                                                         .item_factors = itf,
                                                         .item_popularity = pop});
    float scratch[7];
    recd_scored_t out[10];
    size_t n = recd_model_similar(m, 0, 10, scratch, out);
    uint32_t want[] = {5, 1, 6, 2, 3};
    assert_int_equal(n, 5);
    for (size_t i = 0; i != n; ++i)
        assert_int_equal(out[i].index, want[i]);
    assert_float_equal(out[0].score, 1.0, 1e-6);
    assert_float_equal(out[2].score, 0.6, 1e-6);
    assert_float_equal(out[4].score, -1.0, 1e-6);
    assert_int_equal(recd_model_similar(m, 0, 2, scratch, out), 2);
    assert_int_equal(out[1].index, 1);
    assert_int_equal(recd_model_similar(m, 4, 3, scratch, out), 0); /* zero vector: nothing is similar */
    assert_int_equal(recd_model_similar(m, 7, 3, scratch, out), 0); /* out of range */
    recd_model_release(m);

    /* Popularity: popular order minus the item (ties by index). */
    m = make_model(fx, (recd_model_spec_t){.kind = RECD_MODEL_POPULARITY, .n_users = 1, .n_items = 7, .item_popularity = pop});
    n = recd_model_similar(m, 6, 4, scratch, out);
    uint32_t want_pop[] = {1, 2, 3, 5};
    assert_int_equal(n, 4);
    for (size_t i = 0; i != n; ++i) {
        assert_int_equal(out[i].index, want_pop[i]);
        assert_true(out[i].score == pop[want_pop[i]]);
    }
    assert_int_equal(recd_model_similar(m, 1, 10, scratch, out), 6);
    recd_model_release(m);
}

int test_score_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topk_known),
        cmocka_unit_test(test_topk_random_vs_sort),
        cmocka_unit_test_setup_teardown(test_score_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_in_matches_naive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_in_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_similar_cosine, setup, teardown),
    };
    return cmocka_run_group_tests_name("score", tests, NULL, NULL);
}
