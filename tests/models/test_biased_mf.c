/* test_biased_mf.c: biased MF recovers a planted low-rank rating matrix with biases better than biases alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"

#define USERS 80
#define ITEMS 60
#define RANK 3

static double uniform01(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return (double)(*s >> 11) * 0x1.0p-53;
}

static double gaussian(uint64_t *s)
{
    double u1 = uniform01(s), u2 = uniform01(s);
    if (u1 < 1e-12)
        u1 = 1e-12;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Ratings 3.5 + b_u + b_i + <p_u, q_i> + N(0, 0.05^2) on a seeded 60% of the cells; every fifth observed cell is held out. */
static void make_ratings(recd_csr_t *train, recd_csr_t *test)
{
    static uint32_t rows[2][USERS * ITEMS], cols[2][USERS * ITEMS];
    static float vals[2][USERS * ITEMS];
    double p[USERS][RANK], q[ITEMS][RANK], bu[USERS], bi[ITEMS];
    size_t n[2] = {0, 0}, seen = 0;
    uint64_t s = 99;
    for (int u = 0; u != USERS; ++u) {
        bu[u] = 0.4 * gaussian(&s);
        for (int f = 0; f != RANK; ++f)
            p[u][f] = 0.6 * gaussian(&s);
    }
    for (int i = 0; i != ITEMS; ++i) {
        bi[i] = 0.4 * gaussian(&s);
        for (int f = 0; f != RANK; ++f)
            q[i][f] = 0.6 * gaussian(&s);
    }
    for (int u = 0; u != USERS; ++u) {
        for (int i = 0; i != ITEMS; ++i) {
            if (uniform01(&s) >= 0.6)
                continue;
            double r = 3.5 + bu[u] + bi[i] + 0.05 * gaussian(&s);
            for (int f = 0; f != RANK; ++f)
                r += p[u][f] * q[i][f];
            int t = seen++ % 5 == 4;
            rows[t][n[t]] = (uint32_t)u;
            cols[t][n[t]] = (uint32_t)i;
            vals[t][n[t]] = (float)r;
            ++n[t];
        }
    }
    assert_int_equal(recd_csr_from_coo(train, USERS, ITEMS, rows[0], cols[0], vals[0], n[0], RECD_MERGE_LAST), RECD_OK);
    assert_int_equal(recd_csr_from_coo(test, USERS, ITEMS, rows[1], cols[1], vals[1], n[1], RECD_MERGE_LAST), RECD_OK);
}

static double mean_of(const recd_csr_t *m)
{
    double s = 0;
    for (size_t j = 0; j != m->nnz; ++j)
        s += m->val[j];
    return s / (double)m->nnz;
}

/* The baseline written independently of the code under test: regularised biases by alternating exact minimisation. */
typedef struct st_baseline_t {
    double mu, bu[USERS], bi[ITEMS];
} baseline_t;

static void fit_baseline(const recd_csr_t *m, baseline_t *b)
{
    memset(b, 0, sizeof(*b));
    b->mu = mean_of(m);
    for (int round = 0; round != 20; ++round) {
        double num[ITEMS] = {0}, den[ITEMS] = {0};
        for (size_t u = 0; u != m->n_rows; ++u) {
            double s = 0, c = 1;
            for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j, ++c)
                s += m->val[j] - b->mu - b->bi[m->col[j]];
            b->bu[u] = s / c;
        }
        for (size_t u = 0; u != m->n_rows; ++u)
            for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j) {
                num[m->col[j]] += m->val[j] - b->mu - b->bu[u];
                den[m->col[j]] += 1;
            }
        for (int i = 0; i != ITEMS; ++i)
            b->bi[i] = num[i] / (den[i] + 1);
    }
}

static float predict_baseline(void *data, uint32_t user, uint32_t item)
{
    const baseline_t *b = data;
    return (float)(b->mu + b->bu[user] + b->bi[item]);
}

static float predict_mean(void *data, uint32_t user, uint32_t item)
{
    return *(const float *)data;
}

typedef struct st_trained_t {
    float *x, *y, *bu, *bi, mu;
    recd_mf_model_t model;
} trained_t;

static void train(const recd_csr_t *m, uint32_t threads, uint64_t seed, trained_t *t)
{
    recd_mf_params_t p;
    recd_mf_params_init(&p);
    p.factors = 8;
    p.epochs = 150;
    p.learning_rate = 0.01f;
    p.reg = 0.02f;
    p.hooks.threads = threads;
    p.hooks.seed = seed;
    assert_int_equal(recd_mf_train(m, &p, &t->x, &t->y, &t->bu, &t->bi, &t->mu), RECD_OK);
    t->model = (recd_mf_model_t){p.factors, t->x, t->y, t->bu, t->bi, t->mu, 0, 0};
}

static void dispose(trained_t *t)
{
    free(t->x);
    free(t->y);
    free(t->bu);
    free(t->bi);
}

static void check_recovery(uint32_t threads)
{
    recd_csr_t tr, te;
    trained_t t;
    baseline_t base;
    recd_rating_metrics_t fit, mean_fit, held, base_held;
    make_ratings(&tr, &te);
    train(&tr, threads, 3, &t);

    /* mu is the mean of the training ratings */
    assert_float_equal(t.mu, mean_of(&tr), 1e-4);

    /* on the training ratings: far below the error of always predicting the mean */
    assert_int_equal(recd_eval_rating(&tr, recd_mf_predict, &t.model, &fit), RECD_OK);
    assert_int_equal(recd_eval_rating(&tr, predict_mean, &t.mu, &mean_fit), RECD_OK);
    assert_true(fit.rmse < 0.3 * mean_fit.rmse);

    /* on held-out ratings: clearly better than mean + biases, which cannot see the planted interaction */
    fit_baseline(&tr, &base);
    assert_int_equal(recd_eval_rating(&te, recd_mf_predict, &t.model, &held), RECD_OK);
    assert_int_equal(recd_eval_rating(&te, predict_baseline, &base, &base_held), RECD_OK);
    assert_true(held.rmse < 0.7 * base_held.rmse);
    assert_true(held.r2 > base_held.r2);
    dispose(&t);
    recd_csr_dispose(&tr);
    recd_csr_dispose(&te);
}

static void test_mf_recovers_planted(void **state)
{
    check_recovery(1);
}

static void test_mf_recovers_planted_threaded(void **state)
{
    check_recovery(2);
}

static void test_mf_deterministic_one_thread(void **state)
{
    recd_csr_t tr, te;
    trained_t a, b, c;
    make_ratings(&tr, &te);
    train(&tr, 1, 5, &a);
    train(&tr, 1, 5, &b);
    train(&tr, 1, 6, &c);
    assert_memory_equal(a.x, b.x, USERS * 8 * sizeof(float));
    assert_memory_equal(a.y, b.y, ITEMS * 8 * sizeof(float));
    assert_memory_equal(a.bu, b.bu, USERS * sizeof(float));
    assert_memory_equal(a.bi, b.bi, ITEMS * sizeof(float));
    assert_memory_not_equal(a.y, c.y, ITEMS * 8 * sizeof(float));
    dispose(&a);
    dispose(&b);
    dispose(&c);
    recd_csr_dispose(&tr);
    recd_csr_dispose(&te);
}

static double correlation(const double *a, const float *b, size_t n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i != n; ++i) {
        ma += a[i] / n;
        mb += b[i] / n;
    }
    for (size_t i = 0; i != n; ++i) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

/* Ratings made of biases alone (3 + b_u + b_i + noise): one factor cannot stand in for both bias vectors, so the learned
 * biases themselves must follow the planted ones. */
static void test_mf_learns_biases(void **state)
{
    static uint32_t rows[USERS * ITEMS], cols[USERS * ITEMS];
    static float vals[USERS * ITEMS];
    double bu[USERS], bi[ITEMS];
    size_t n = 0;
    uint64_t s = 2024;
    for (int u = 0; u != USERS; ++u)
        bu[u] = 0.5 * gaussian(&s);
    for (int i = 0; i != ITEMS; ++i)
        bi[i] = 0.5 * gaussian(&s);
    for (int u = 0; u != USERS; ++u)
        for (int i = 0; i != ITEMS; ++i)
            if (uniform01(&s) < 0.5) {
                rows[n] = (uint32_t)u;
                cols[n] = (uint32_t)i;
                vals[n++] = (float)(3 + bu[u] + bi[i] + 0.05 * gaussian(&s));
            }
    recd_csr_t m;
    recd_mf_params_t p;
    float *x, *y, *ubias, *ibias, mu;
    assert_int_equal(recd_csr_from_coo(&m, USERS, ITEMS, rows, cols, vals, n, RECD_MERGE_LAST), RECD_OK);
    recd_mf_params_init(&p);
    p.factors = 1;
    p.epochs = 100;
    p.learning_rate = 0.01f;
    p.hooks.threads = 1;
    assert_int_equal(recd_mf_train(&m, &p, &x, &y, &ubias, &ibias, &mu), RECD_OK);
    assert_true(correlation(bu, ubias, USERS) > 0.95);
    assert_true(correlation(bi, ibias, ITEMS) > 0.95);
    free(x);
    free(y);
    free(ubias);
    free(ibias);
    recd_csr_dispose(&m);
}

/* In test_bpr.c: writes spec (completed with ids, popularity and user_items) to a temporary artifact and opens it. */
recd_model_t *test_sgd_artifact_roundtrip(recd_model_spec_t *spec, const recd_csr_t *user_items);

/* What recd serves from a biased-MF artifact is what recd_mf_predict computes (unclipped): mu + b_u + b_i + x_u . y_i. */
static void test_mf_artifact_scores(void **state)
{
    recd_csr_t tr, te, small;
    trained_t t;
    float scores[ITEMS];
    make_ratings(&tr, &te);
    /* the round-trip helper takes at most 64 users: keep the first 50 rows */
    small = tr;
    small.n_rows = 50;
    small.nnz = tr.row_ptr[50];
    train(&small, 1, 9, &t);
    recd_model_spec_t spec = {.kind = RECD_MODEL_BIASED_MF,
                              .n_factors = t.model.factors,
                              .user_factors = t.x,
                              .item_factors = t.y,
                              .user_bias = t.bu,
                              .item_bias = t.bi,
                              .global_bias = t.mu};
    recd_model_t *model = test_sgd_artifact_roundtrip(&spec, &small);
    assert_int_equal(recd_model_kind(model), RECD_MODEL_BIASED_MF);
    for (uint32_t u = 0; u < small.n_rows; u += 5) {
        recd_model_score(model, recd_model_user_vector(model, u), u, scores);
        for (uint32_t i = 0; i != ITEMS; ++i)
            assert_float_equal(scores[i], recd_mf_predict(&t.model, u, i), 1e-4);
    }
    recd_model_release(model);
    dispose(&t);
    recd_csr_dispose(&tr);
    recd_csr_dispose(&te);
}

static void count_snapshot(void *data, uint32_t iteration, const float *user_factors, const float *item_factors,
                           const float *item_bias)
{
    uint32_t *calls = data;
    assert_int_equal(iteration, ++*calls);
    assert_non_null(user_factors);
    assert_non_null(item_factors);
    assert_non_null(item_bias);
}

static void test_mf_snapshots(void **state)
{
    recd_csr_t tr, te;
    recd_mf_params_t p;
    float *x, *y, *bu, *bi, mu;
    uint32_t calls = 0;
    make_ratings(&tr, &te);
    recd_mf_params_init(&p);
    p.epochs = 3;
    p.hooks.threads = 1;
    p.hooks.on_snapshot = count_snapshot;
    p.hooks.snapshot_data = &calls;
    assert_int_equal(recd_mf_train(&tr, &p, &x, &y, &bu, &bi, &mu), RECD_OK);
    assert_int_equal(calls, 3);
    free(x);
    free(y);
    free(bu);
    free(bi);
    recd_csr_dispose(&tr);
    recd_csr_dispose(&te);
}

static void test_mf_predict_clips(void **state)
{
    float x[] = {1, 2}, y[] = {3, 4}, bu[] = {0.5f}, bi[] = {-0.25f};
    recd_mf_model_t m = {2, x, y, bu, bi, 3.0f, 0, 0};
    /* 3 + 0.5 - 0.25 + 1*3 + 2*4 */
    assert_float_equal(recd_mf_predict(&m, 0, 0), 14.25f, 1e-6);
    m.min_rating = 1;
    m.max_rating = 5;
    assert_float_equal(recd_mf_predict(&m, 0, 0), 5.0f, 1e-6);
    y[0] = -20; /* 3 + 0.5 - 0.25 - 20 + 8 */
    assert_float_equal(recd_mf_predict(&m, 0, 0), 1.0f, 1e-6);
}

static void test_mf_rejects_bad_input(void **state)
{
    recd_csr_t tr, te, empty = {0};
    recd_mf_params_t p;
    float *x = NULL, *y = NULL, *bu = NULL, *bi = NULL, mu = -1;
    make_ratings(&tr, &te);
    recd_mf_params_init(&p);
    assert_int_equal(recd_mf_train(&empty, &p, &x, &y, &bu, &bi, &mu), RECD_EINVAL);
    p.factors = 0;
    assert_int_equal(recd_mf_train(&tr, &p, &x, &y, &bu, &bi, &mu), RECD_EINVAL);
    recd_mf_params_init(&p);
    p.reg = -1;
    assert_int_equal(recd_mf_train(&tr, &p, &x, &y, &bu, &bi, &mu), RECD_EINVAL);
    assert_null(x);
    assert_null(bi);
    assert_float_equal(mu, -1, 0);
    recd_csr_dispose(&tr);
    recd_csr_dispose(&te);
}

int test_biased_mf_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mf_recovers_planted),
        cmocka_unit_test(test_mf_recovers_planted_threaded),
        cmocka_unit_test(test_mf_deterministic_one_thread),
        cmocka_unit_test(test_mf_learns_biases),
        cmocka_unit_test(test_mf_artifact_scores),
        cmocka_unit_test(test_mf_snapshots),
        cmocka_unit_test(test_mf_predict_clips),
        cmocka_unit_test(test_mf_rejects_bad_input),
    };
    return cmocka_run_group_tests_name("biased_mf", tests, NULL, NULL);
}
