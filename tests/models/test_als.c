/* test_als.c: implicit ALS on small problems with known answers, and the popularity model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"

#define MAX_ITER 64

typedef struct st_losses_t {
    uint32_t n;
    double loss[MAX_ITER];
    uint32_t stop_after; /* 0 = never */
} losses_t;

static int on_progress(void *data, uint32_t iteration, double loss, double seconds)
{
    losses_t *l = data;
    assert_int_equal(iteration, l->n + 1);
    assert_true(seconds >= 0);
    if (l->n < MAX_ITER)
        l->loss[l->n++] = loss;
    return l->stop_after != 0 && iteration >= l->stop_after;
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* A random sparse users x items matrix, values 1..5, every user and item with at least one entry. */
static void random_matrix(recd_csr_t *m, size_t n_users, size_t n_items, size_t per_user, uint64_t seed)
{
    size_t n = n_users * per_user + n_items, k = 0;
    uint32_t *r = malloc(n * sizeof(*r)), *c = malloc(n * sizeof(*c));
    float *v = malloc(n * sizeof(*v));
    for (size_t u = 0; u != n_users; ++u)
        for (size_t j = 0; j != per_user; ++j, ++k) {
            r[k] = (uint32_t)u;
            c[k] = (uint32_t)(lcg(&seed) % n_items);
            v[k] = (float)(1 + lcg(&seed) % 5);
        }
    for (size_t i = 0; i != n_items; ++i, ++k) {
        r[k] = (uint32_t)(lcg(&seed) % n_users);
        c[k] = (uint32_t)i;
        v[k] = 1;
    }
    assert_int_equal(recd_csr_from_coo(m, n_users, n_items, r, c, v, n, RECD_MERGE_MAX), RECD_OK);
    free(r);
    free(c);
    free(v);
}

static void small_params(recd_als_params_t *p, losses_t *l)
{
    recd_als_params_init(p);
    p->factors = 5;
    p->iterations = 12;
    p->alpha = 2;
    p->reg = 0.5f;
    p->hooks.threads = 2;
    p->hooks.seed = 7;
    p->hooks.on_progress = l != NULL ? on_progress : NULL;
    p->hooks.progress_data = l;
}

/* The largest relative residual ||A_u x_u - b_u|| / ||b_u|| over the users with interactions, for the normal equations
 * (Y^T Y + Y_u^T (C_u - I) Y_u + reg I) x = Y_u^T C_u 1 of the returned Y, computed densely in double. */
static double max_user_residual(const recd_csr_t *m, const recd_als_params_t *p, const float *X, const float *Y)
{
    const uint32_t f = p->factors;
    double *A = calloc((size_t)f * f, sizeof(*A)), *b = calloc(f, sizeof(*b)), worst = 0;
    for (size_t u = 0; u != m->n_rows; ++u) {
        if (m->row_ptr[u] == m->row_ptr[u + 1])
            continue;
        memset(A, 0, (size_t)f * f * sizeof(*A));
        memset(b, 0, f * sizeof(*b));
        for (size_t i = 0; i != m->n_cols; ++i)
            for (uint32_t r = 0; r != f; ++r)
                for (uint32_t c = 0; c != f; ++c)
                    A[r * f + c] += (double)Y[i * f + r] * Y[i * f + c];
        for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j) {
            const float *y = Y + (size_t)m->col[j] * f;
            double conf = 1 + p->alpha * m->val[j];
            for (uint32_t r = 0; r != f; ++r) {
                b[r] += conf * y[r];
                for (uint32_t c = 0; c != f; ++c)
                    A[r * f + c] += (conf - 1) * y[r] * y[c];
            }
        }
        double res = 0, norm = 0;
        for (uint32_t r = 0; r != f; ++r) {
            double ax = p->reg * X[u * f + r];
            for (uint32_t c = 0; c != f; ++c)
                ax += A[r * f + c] * X[u * f + c];
            res += (ax - b[r]) * (ax - b[r]);
            norm += b[r] * b[r];
        }
        assert_true(norm > 0);
        if (sqrt(res / norm) > worst)
            worst = sqrt(res / norm);
    }
    free(A);
    free(b);
    return worst;
}

/* After training, every user row solves its normal equations for the returned Y — with CG too, whose last user half-step
 * is exact, also when a progress callback stops training early. */
static void test_als_normal_equations(void **state)
{
    recd_csr_t m;
    random_matrix(&m, 40, 25, 6, 1);
    for (int solver = RECD_ALS_CHOLESKY; solver <= RECD_ALS_CG; ++solver) {
        for (uint32_t stop = 0; stop <= 4; stop += 4) {
            recd_als_params_t p;
            losses_t l = {.stop_after = stop};
            small_params(&p, &l);
            p.solver = (recd_als_solver_t)solver;
            float *X, *Y;
            assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_OK);
            assert_int_equal(l.n, stop != 0 ? stop : p.iterations);
            assert_true(max_user_residual(&m, &p, X, Y) < 1e-4);
            free(X);
            free(Y);
        }
    }
    recd_csr_dispose(&m);
}

/* CG steps from the same start approach the exact solution: after one iteration Y holds the item half-step's CG iterate
 * (both solvers start from the same X and from Y = 0), and its distance to the Cholesky solution shrinks with every added
 * step (the Euclidean error of CG decreases monotonically, Hestenes & Stiefel) until f steps reach it. */
static void test_als_cg_converges_to_cholesky(void **state)
{
    recd_csr_t m;
    random_matrix(&m, 60, 30, 8, 5);
    recd_als_params_t p;
    small_params(&p, NULL);
    p.hooks.on_progress = NULL;
    p.iterations = 1;
    p.reg = 0.05f;
    p.solver = RECD_ALS_CHOLESKY;
    float *Xc, *Yc;
    assert_int_equal(recd_als_train(&m, &p, &Xc, &Yc), RECD_OK);
    double norm = 0;
    for (size_t k = 0; k != m.n_cols * p.factors; ++k)
        norm += (double)Yc[k] * Yc[k];
    assert_true(norm > 0);
    double err[6];
    for (uint32_t steps = 1; steps <= 5; ++steps) {
        p.solver = RECD_ALS_CG;
        p.cg_steps = steps;
        float *X, *Y;
        assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_OK);
        double e = 0;
        for (size_t k = 0; k != m.n_cols * p.factors; ++k)
            e += ((double)Y[k] - Yc[k]) * ((double)Y[k] - Yc[k]);
        err[steps] = sqrt(e / norm);
        free(X);
        free(Y);
    }
    for (uint32_t steps = 2; steps <= 5; ++steps)
        assert_true(err[steps] < err[steps - 1]);
    assert_true(err[1] > 1e-2); /* one step is far from the solution, so the shrinking means something */
    assert_true(err[5] < 1e-4); /* f = 5 steps: exact up to float rounding */
    free(Xc);
    free(Yc);
    recd_csr_dispose(&m);
}

/* Each half-step lowers (never raises) the objective: exactly for Cholesky, and for CG because every CG step is an exact
 * line search on the row's quadratic; the reported loss is the objective of the returned factors. */
static void check_loss_non_increasing(recd_als_solver_t solver)
{
    recd_csr_t m;
    random_matrix(&m, 60, 30, 8, 2);
    recd_als_params_t p;
    losses_t l = {0};
    small_params(&p, &l);
    p.solver = solver;
    p.iterations = 20;
    float *X, *Y;
    assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_OK);
    assert_int_equal(l.n, 20);
    for (uint32_t i = 0; i != l.n; ++i)
        assert_true(isfinite(l.loss[i]) && l.loss[i] > 0);
    for (uint32_t i = 1; i != l.n; ++i)
        assert_true(l.loss[i] <= l.loss[i - 1] * (1 + 1e-5));
    assert_true(l.loss[l.n - 1] < l.loss[0]); /* it did learn something */

    /* the reported loss is the objective of the returned factors, computed densely here */
    double loss = 0;
    const uint32_t f = p.factors;
    for (size_t u = 0; u != m.n_rows; ++u) {
        uint64_t j = m.row_ptr[u];
        for (size_t i = 0; i != m.n_cols; ++i) {
            double s = 0, conf = 1, pref = 0;
            for (uint32_t k = 0; k != f; ++k)
                s += (double)X[u * f + k] * Y[i * f + k];
            if (j != m.row_ptr[u + 1] && m.col[j] == i) {
                conf = 1 + p.alpha * m.val[j++];
                pref = 1;
            }
            loss += conf * (pref - s) * (pref - s);
        }
    }
    for (size_t k = 0; k != m.n_rows * f; ++k)
        loss += p.reg * X[k] * X[k];
    for (size_t k = 0; k != m.n_cols * f; ++k)
        loss += p.reg * Y[k] * Y[k];
    assert_true(fabs(loss - l.loss[l.n - 1]) < 1e-3 * loss);
    free(X);
    free(Y);
    recd_csr_dispose(&m);
}

static void test_als_loss_non_increasing(void **state)
{
    check_loss_non_increasing(RECD_ALS_CHOLESKY);
    check_loss_non_increasing(RECD_ALS_CG);
}

static void check_deterministic(recd_als_solver_t solver)
{
    recd_csr_t m;
    random_matrix(&m, 50, 30, 7, 3);
    recd_als_params_t p;
    small_params(&p, NULL);
    p.solver = solver;
    float *X1, *Y1, *X2, *Y2, *X3, *Y3, *X4, *Y4;
    assert_int_equal(recd_als_train(&m, &p, &X1, &Y1), RECD_OK);
    assert_int_equal(recd_als_train(&m, &p, &X2, &Y2), RECD_OK);
    assert_memory_equal(X1, X2, m.n_rows * p.factors * sizeof(float));
    assert_memory_equal(Y1, Y2, m.n_cols * p.factors * sizeof(float));
    p.hooks.threads = 3; /* rows are independent, so the thread count does not change the answer either */
    assert_int_equal(recd_als_train(&m, &p, &X3, &Y3), RECD_OK);
    assert_memory_equal(X1, X3, m.n_rows * p.factors * sizeof(float));
    assert_memory_equal(Y1, Y3, m.n_cols * p.factors * sizeof(float));
    p.hooks.seed = 8;
    assert_int_equal(recd_als_train(&m, &p, &X4, &Y4), RECD_OK);
    assert_memory_not_equal(X1, X4, m.n_rows * p.factors * sizeof(float));
    assert_memory_not_equal(Y1, Y4, m.n_cols * p.factors * sizeof(float));
    free(X1), free(Y1), free(X2), free(Y2), free(X3), free(Y3), free(X4), free(Y4);
    recd_csr_dispose(&m);
}

static void test_als_deterministic(void **state)
{
    check_deterministic(RECD_ALS_CHOLESKY);
    check_deterministic(RECD_ALS_CG);
}

/* 3 blocks of 12 users x 10 items; each user saw 6 random items of its block and nothing else. The best unseen item for
 * every user must come from its own block. */
static void check_planted_blocks(recd_als_solver_t solver)
{
    enum { BLOCKS = 3, USERS = 12, ITEMS = 10, SEEN = 6 };
    uint32_t r[BLOCKS * USERS * SEEN], c[BLOCKS * USERS * SEEN];
    size_t n = 0;
    uint64_t seed = 11;
    for (uint32_t b = 0; b != BLOCKS; ++b)
        for (uint32_t u = 0; u != USERS; ++u) {
            uint32_t perm[ITEMS];
            for (uint32_t i = 0; i != ITEMS; ++i)
                perm[i] = i;
            for (uint32_t i = ITEMS - 1; i > 0; --i) {
                uint32_t j = (uint32_t)(lcg(&seed) % (i + 1)), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
            for (uint32_t k = 0; k != SEEN; ++k, ++n) {
                r[n] = b * USERS + u;
                c[n] = b * ITEMS + perm[k];
            }
        }
    recd_csr_t m;
    assert_int_equal(recd_csr_from_coo(&m, BLOCKS * USERS, BLOCKS * ITEMS, r, c, NULL, n, RECD_MERGE_SUM), RECD_OK);
    recd_als_params_t p;
    recd_als_params_init(&p);
    p.factors = 4;
    p.iterations = 15;
    p.alpha = 5;
    p.reg = 0.1f;
    p.hooks.threads = 2;
    p.solver = solver;
    float *X, *Y;
    assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_OK);
    for (uint32_t u = 0; u != BLOCKS * USERS; ++u) {
        uint32_t best = UINT32_MAX;
        float best_score = -INFINITY;
        for (uint32_t i = 0; i != BLOCKS * ITEMS; ++i) {
            int seen = 0;
            for (uint64_t j = m.row_ptr[u]; j != m.row_ptr[u + 1]; ++j)
                seen |= m.col[j] == i;
            float s = 0;
            for (uint32_t k = 0; k != p.factors; ++k)
                s += X[u * p.factors + k] * Y[i * p.factors + k];
            if (!seen && s > best_score) {
                best_score = s;
                best = i;
            }
        }
        assert_true(best != UINT32_MAX);
        assert_int_equal(best / ITEMS, u / USERS);
    }
    free(X);
    free(Y);
    recd_csr_dispose(&m);
}

static void test_als_planted_blocks(void **state)
{
    check_planted_blocks(RECD_ALS_CHOLESKY);
    check_planted_blocks(RECD_ALS_CG);
}

static void test_als_early_stop_and_errors(void **state)
{
    recd_csr_t m;
    random_matrix(&m, 20, 10, 3, 4);
    recd_als_params_t p;
    losses_t l = {.stop_after = 3};
    small_params(&p, &l);
    float *X, *Y;
    assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_OK);
    assert_int_equal(l.n, 3);
    free(X);
    free(Y);

    p.factors = 0;
    assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_EINVAL);
    assert_null(X);
    assert_null(Y);
    small_params(&p, &l);
    p.reg = -1;
    assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_EINVAL);
    small_params(&p, &l);
    p.solver = (recd_als_solver_t)7;
    assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_EINVAL);
    small_params(&p, &l);
    p.solver = RECD_ALS_CG;
    p.cg_steps = 0;
    assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_EINVAL);
    p.solver = RECD_ALS_CHOLESKY; /* cg_steps only matters to CG */
    p.hooks.on_progress = NULL;
    assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_OK);
    free(X);
    free(Y);
    recd_csr_dispose(&m);

    recd_als_params_init(&p);
    assert_int_equal(p.factors, 64);
    assert_int_equal(p.iterations, 15);
    assert_true(p.alpha > 0 && p.reg > 0);
    assert_int_equal(p.solver, RECD_ALS_CG);
    assert_int_equal(p.cg_steps, 3);
}

typedef struct st_snapshots_t {
    uint32_t calls;
    size_t n_users, n_items, f;
    float *X, *Y; /* copies of the latest snapshot */
} snapshots_t;

static void on_snapshot(void *data, uint32_t iteration, const float *user_factors, const float *item_factors,
                        const float *item_bias)
{
    snapshots_t *s = data;
    assert_int_equal(iteration, ++s->calls);
    assert_null(item_bias);
    memcpy(s->X, user_factors, s->n_users * s->f * sizeof(float));
    memcpy(s->Y, item_factors, s->n_items * s->f * sizeof(float));
}

/* The snapshot callback sees every iteration's factors; the last one is what training returns. */
static void test_als_snapshots(void **state)
{
    recd_csr_t m;
    random_matrix(&m, 30, 20, 5, 9);
    for (int solver = RECD_ALS_CHOLESKY; solver <= RECD_ALS_CG; ++solver) {
        recd_als_params_t p;
        small_params(&p, NULL);
        p.solver = (recd_als_solver_t)solver;
        p.iterations = 5;
        snapshots_t s = {.n_users = m.n_rows, .n_items = m.n_cols, .f = p.factors};
        s.X = malloc(m.n_rows * p.factors * sizeof(float));
        s.Y = malloc(m.n_cols * p.factors * sizeof(float));
        p.hooks.on_snapshot = on_snapshot;
        p.hooks.snapshot_data = &s;
        float *X, *Y;
        assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_OK);
        assert_int_equal(s.calls, 5);
        assert_memory_equal(s.X, X, m.n_rows * p.factors * sizeof(float));
        assert_memory_equal(s.Y, Y, m.n_cols * p.factors * sizeof(float));
        free(s.X);
        free(s.Y);
        free(X);
        free(Y);
    }
    recd_csr_dispose(&m);
}

/* A user with no interactions gets the zero vector (its exact solution), an item nobody saw likewise. */
static void test_als_empty_rows(void **state)
{
    const uint32_t r[] = {0, 0, 2, 2}, c[] = {0, 1, 1, 3};
    recd_csr_t m;
    assert_int_equal(recd_csr_from_coo(&m, 4, 5, r, c, NULL, 4, RECD_MERGE_SUM), RECD_OK);
    for (int solver = RECD_ALS_CHOLESKY; solver <= RECD_ALS_CG; ++solver) {
        recd_als_params_t p;
        recd_als_params_init(&p);
        p.factors = 3;
        p.iterations = 4;
        p.hooks.threads = 1;
        p.solver = (recd_als_solver_t)solver;
        float *X, *Y;
        assert_int_equal(recd_als_train(&m, &p, &X, &Y), RECD_OK);
        for (uint32_t k = 0; k != 3; ++k) {
            assert_true(X[1 * 3 + k] == 0 && X[3 * 3 + k] == 0);
            assert_true(Y[2 * 3 + k] == 0 && Y[4 * 3 + k] == 0);
        }
        free(X);
        free(Y);
    }
    recd_csr_dispose(&m);
}

static void test_popularity_counts_users(void **state)
{
    const uint32_t r[] = {0, 0, 1, 2, 2, 2}, c[] = {1, 1, 1, 0, 1, 3};
    const float v[] = {5, 5, 1, 2, 3, 4};
    recd_csr_t m;
    assert_int_equal(recd_csr_from_coo(&m, 3, 5, r, c, v, 6, RECD_MERGE_SUM), RECD_OK);
    float pop[5];
    recd_popularity_compute(&m, pop);
    assert_true(pop[0] == 1 && pop[1] == 3 && pop[2] == 0 && pop[3] == 1 && pop[4] == 0);
    recd_csr_dispose(&m);
}

int test_als_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_als_normal_equations),    cmocka_unit_test(test_als_cg_converges_to_cholesky),
        cmocka_unit_test(test_als_loss_non_increasing), cmocka_unit_test(test_als_deterministic),
        cmocka_unit_test(test_als_planted_blocks),      cmocka_unit_test(test_als_early_stop_and_errors),
        cmocka_unit_test(test_als_snapshots),           cmocka_unit_test(test_als_empty_rows),
        cmocka_unit_test(test_popularity_counts_users),
    };
    return cmocka_run_group_tests_name("als", tests, NULL, NULL);
}
