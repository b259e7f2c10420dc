/* test_bpr.c: BPR learns a planted block structure, its loss falls, and one thread is reproducible. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "models/model.h"

#define BLOCK_USERS 30
#define BLOCK_ITEMS 24

/* Two groups of users; each user holds a seeded random half of its own group's items and nothing of the other group. */
static void make_blocks(recd_csr_t *m)
{
    uint32_t rows[2 * BLOCK_USERS * BLOCK_ITEMS], cols[2 * BLOCK_USERS * BLOCK_ITEMS];
    size_t n = 0;
    uint64_t state = 12345;
    for (uint32_t u = 0; u != 2 * BLOCK_USERS; ++u) {
        uint32_t first = u < BLOCK_USERS ? 0 : BLOCK_ITEMS;
        for (uint32_t i = first; i != first + BLOCK_ITEMS; ++i) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            if ((state >> 33) % 2 == 0) {
                rows[n] = u;
                cols[n] = i;
                ++n;
            }
        }
    }
    assert_int_equal(recd_csr_from_coo(m, 2 * BLOCK_USERS, 2 * BLOCK_ITEMS, rows, cols, NULL, n, RECD_MERGE_SUM), RECD_OK);
}

static float score(const float *x, const float *y, const float *b, uint32_t k, uint32_t u, uint32_t i)
{
    float s = b[i];
    for (uint32_t f = 0; f != k; ++f)
        s += x[(size_t)u * k + f] * y[(size_t)i * k + f];
    return s;
}

static int in_row(const recd_csr_t *m, uint32_t u, uint32_t i)
{
    for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j)
        if (m->col[j] == i)
            return 1;
    return 0;
}

/* Mean over users of the fraction of (own-group unseen item, other-group item) pairs ranked the right way round. */
static double block_auc(const recd_csr_t *m, const float *x, const float *y, const float *b, uint32_t k)
{
    double total = 0;
    for (uint32_t u = 0; u != m->n_rows; ++u) {
        uint32_t own = u < BLOCK_USERS ? 0 : BLOCK_ITEMS, other = BLOCK_ITEMS - own;
        size_t right = 0, pairs = 0;
        for (uint32_t i = own; i != own + BLOCK_ITEMS; ++i) {
            if (in_row(m, u, i))
                continue;
            for (uint32_t j = other; j != other + BLOCK_ITEMS; ++j) {
                right += score(x, y, b, k, u, i) > score(x, y, b, k, u, j);
                ++pairs;
            }
        }
        total += pairs != 0 ? (double)right / (double)pairs : 1.0;
    }
    return total / (double)m->n_rows;
}

static void small_params(recd_bpr_params_t *p, uint32_t threads)
{
    recd_bpr_params_init(p);
    p->factors = 8;
    p->epochs = 60;
    p->learning_rate = 0.05f;
    p->reg = 0.01f;
    p->hooks.threads = threads;
    p->hooks.seed = 7;
}

static void check_blocks_learned(uint32_t threads)
{
    recd_csr_t m;
    recd_bpr_params_t p;
    float *x = NULL, *y = NULL, *b = NULL;
    make_blocks(&m);
    small_params(&p, threads);

    /* untrained factors rank at chance */
    assert_int_equal(
        recd_bpr_train(&m, &(recd_bpr_params_t){.factors = 8, .epochs = 0, .learning_rate = 0.05f, .hooks.threads = 1}, &x, &y, &b),
        RECD_OK);
    double before = block_auc(&m, x, y, b, 8);
    free(x);
    free(y);
    free(b);
    assert_true(before > 0.2 && before < 0.8);

    assert_int_equal(recd_bpr_train(&m, &p, &x, &y, &b), RECD_OK);
    double after = block_auc(&m, x, y, b, p.factors);
    assert_true(after >= 0.9);
    free(x);
    free(y);
    free(b);
    recd_csr_dispose(&m);
}

static void test_bpr_learns_blocks(void **state)
{
    check_blocks_learned(1);
}

static void test_bpr_learns_blocks_threaded(void **state)
{
    check_blocks_learned(2);
}

typedef struct st_losses_t {
    double loss[100];
    uint32_t calls, stop_after;
} losses_t;

static int on_progress(void *data, uint32_t iteration, double loss, double seconds)
{
    losses_t *l = data;
    assert_int_equal(iteration, l->calls + 1);
    assert_true(seconds >= 0);
    l->loss[l->calls++] = loss;
    return l->stop_after != 0 && l->calls == l->stop_after;
}

static void test_bpr_loss_decreases(void **state)
{
    recd_csr_t m;
    recd_bpr_params_t p;
    losses_t l = {.calls = 0};
    float *x, *y, *b;
    make_blocks(&m);
    small_params(&p, 1);
    p.hooks.on_progress = on_progress;
    p.hooks.progress_data = &l;

    assert_int_equal(recd_bpr_train(&m, &p, &x, &y, &b), RECD_OK);
    assert_int_equal(l.calls, p.epochs);
    assert_int_equal(p.epochs, 60);
    /* the first epoch starts from near-zero scores: -ln sigma(0) = ln 2 */
    assert_true(l.loss[0] > 0.5 && l.loss[0] < 0.7);
    assert_true(l.loss[p.epochs - 1] < 0.5 * l.loss[0]);
    /* and keeps falling: each window of 10 epochs averages below the one before (a wrong gradient stalls early) */
    double window[6] = {0};
    for (uint32_t e = 0; e != 60; ++e)
        window[e / 10] += l.loss[e];
    for (int w = 1; w != 6; ++w)
        assert_true(window[w] < window[w - 1]);
    free(x);
    free(y);
    free(b);

    /* a callback returning non-zero stops training after that epoch */
    memset(&l, 0, sizeof(l));
    l.stop_after = 3;
    assert_int_equal(recd_bpr_train(&m, &p, &x, &y, &b), RECD_OK);
    assert_int_equal(l.calls, 3);
    free(x);
    free(y);
    free(b);
    recd_csr_dispose(&m);
}

typedef struct st_snapshots_t {
    uint32_t calls;
    float last_y0, last_b0;
} snapshots_t;

static void on_snapshot(void *data, uint32_t iteration, const float *user_factors, const float *item_factors,
                        const float *item_bias)
{
    snapshots_t *s = data;
    assert_int_equal(iteration, ++s->calls);
    assert_non_null(user_factors);
    assert_non_null(item_bias);
    s->last_y0 = item_factors[0];
    s->last_b0 = item_bias[0];
}

/* A snapshot after every epoch, the last one showing the factors that are returned. */
static void test_bpr_snapshots(void **state)
{
    recd_csr_t m;
    recd_bpr_params_t p;
    snapshots_t s = {0};
    float *x, *y, *b;
    make_blocks(&m);
    small_params(&p, 1);
    p.epochs = 4;
    p.hooks.on_snapshot = on_snapshot;
    p.hooks.snapshot_data = &s;
    assert_int_equal(recd_bpr_train(&m, &p, &x, &y, &b), RECD_OK);
    assert_int_equal(s.calls, 4);
    assert_true(s.last_y0 == y[0] && s.last_b0 == b[0]);
    free(x);
    free(y);
    free(b);
    recd_csr_dispose(&m);
}

static void test_bpr_deterministic_one_thread(void **state)
{
    recd_csr_t m;
    recd_bpr_params_t p;
    float *x1, *y1, *b1, *x2, *y2, *b2, *x3, *y3, *b3;
    make_blocks(&m);
    small_params(&p, 1);
    p.epochs = 5;

    assert_int_equal(recd_bpr_train(&m, &p, &x1, &y1, &b1), RECD_OK);
    assert_int_equal(recd_bpr_train(&m, &p, &x2, &y2, &b2), RECD_OK);
    p.hooks.seed = 8;
    assert_int_equal(recd_bpr_train(&m, &p, &x3, &y3, &b3), RECD_OK);
    assert_memory_equal(x1, x2, m.n_rows * p.factors * sizeof(float));
    assert_memory_equal(y1, y2, m.n_cols * p.factors * sizeof(float));
    assert_memory_equal(b1, b2, m.n_cols * sizeof(float));
    assert_memory_not_equal(y1, y3, m.n_cols * p.factors * sizeof(float));
    free(x1), free(y1), free(b1), free(x2), free(y2), free(b2), free(x3), free(y3), free(b3);
    recd_csr_dispose(&m);
}

/* Every user holds items 0 and 1 of 3, so item 2 is the only valid negative: with no regularisation every step raises a
 * held item's bias and lowers item 2's. A sampler drawing out of range trips ASan; one drawing held items as negatives
 * leaves items 0 and 1 without a clear lead over item 2. */
static void test_bpr_negatives_outside_row(void **state)
{
    uint32_t rows[] = {0, 0, 1, 1, 2, 2}, cols[] = {0, 1, 0, 1, 1, 0};
    recd_csr_t m;
    recd_bpr_params_t p;
    float *x, *y, *b;
    assert_int_equal(recd_csr_from_coo(&m, 3, 3, rows, cols, NULL, 6, RECD_MERGE_SUM), RECD_OK);
    small_params(&p, 1);
    p.epochs = 20;
    p.reg = 0;
    p.bias_reg = 0;
    assert_int_equal(recd_bpr_train(&m, &p, &x, &y, &b), RECD_OK);
    assert_true(b[0] > 0 && b[1] > 0 && b[2] < 0);
    /* each step moves the positive's and the negative's bias by opposite amounts */
    assert_float_equal(b[0] + b[1], -b[2], 1e-4);
    for (uint32_t u = 0; u != 3; ++u) {
        assert_true(score(x, y, b, p.factors, u, 0) > score(x, y, b, p.factors, u, 2));
        assert_true(score(x, y, b, p.factors, u, 1) > score(x, y, b, p.factors, u, 2));
    }
    free(x);
    free(y);
    free(b);
    recd_csr_dispose(&m);
}

/* Writes spec to a fresh temporary directory, opens it and removes the files (the mapping stays valid); shared with
 * test_biased_mf.c. Fails the calling test when writing or opening fails. */
recd_model_t *test_sgd_artifact_roundtrip(recd_model_spec_t *spec, const recd_csr_t *user_items)
{
    char dir[] = "/tmp/recd-test-sgd-XXXXXX", path[64], err[256] = "", ids[2][64][8];
    const char *user_ids[64], *item_ids[64];
    float popularity[64];
    assert_true(user_items->n_rows <= 64 && user_items->n_cols <= 64);
    for (size_t i = 0; i != 64; ++i) {
        snprintf(ids[0][i], sizeof(ids[0][i]), "u%zu", i);
        snprintf(ids[1][i], sizeof(ids[1][i]), "i%zu", i);
        user_ids[i] = ids[0][i];
        item_ids[i] = ids[1][i];
    }
    recd_popularity_compute(user_items, popularity);
    spec->n_users = user_items->n_rows;
    spec->n_items = user_items->n_cols;
    spec->user_ids = user_ids;
    spec->item_ids = item_ids;
    spec->item_popularity = popularity;
    spec->user_items = user_items;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/model.recd", dir);
    assert_int_equal(recd_model_write(spec, path, err, sizeof(err)), RECD_OK);
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    assert_non_null(m);
    unlink(path);
    rmdir(dir);
    return m;
}

/* What recd serves from a BPR artifact is what the trainer learnt: x_u . y_i + b_i. */
static void test_bpr_artifact_scores(void **state)
{
    recd_csr_t m;
    recd_bpr_params_t p;
    float *x, *y, *b, scores[2 * BLOCK_ITEMS];
    make_blocks(&m);
    small_params(&p, 1);
    p.epochs = 10;
    assert_int_equal(recd_bpr_train(&m, &p, &x, &y, &b), RECD_OK);
    recd_model_spec_t spec = {.kind = RECD_MODEL_BPR, .n_factors = p.factors, .user_factors = x, .item_factors = y, .item_bias = b};
    recd_model_t *model = test_sgd_artifact_roundtrip(&spec, &m);
    assert_int_equal(recd_model_kind(model), RECD_MODEL_BPR);
    for (uint32_t u = 0; u < m.n_rows; u += 7) {
        recd_model_score(model, recd_model_user_vector(model, u), u, scores);
        for (uint32_t i = 0; i != m.n_cols; ++i)
            assert_float_equal(scores[i], score(x, y, b, p.factors, u, i), 1e-5);
    }
    recd_model_release(model);
    free(x);
    free(y);
    free(b);
    recd_csr_dispose(&m);
}

static void test_bpr_rejects_bad_input(void **state)
{
    recd_csr_t m, empty = {0};
    recd_bpr_params_t p;
    float *x = NULL, *y = NULL, *b = NULL;
    make_blocks(&m);
    small_params(&p, 1);
    p.factors = 0;
    assert_int_equal(recd_bpr_train(&m, &p, &x, &y, &b), RECD_EINVAL);
    small_params(&p, 1);
    p.learning_rate = 0;
    assert_int_equal(recd_bpr_train(&m, &p, &x, &y, &b), RECD_EINVAL);
    small_params(&p, 1);
    assert_int_equal(recd_bpr_train(&empty, &p, &x, &y, &b), RECD_EINVAL);
    assert_null(x);
    assert_null(y);
    assert_null(b);
    recd_csr_dispose(&m);
}

int test_bpr_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpr_learns_blocks),
        cmocka_unit_test(test_bpr_learns_blocks_threaded),
        cmocka_unit_test(test_bpr_loss_decreases),
        cmocka_unit_test(test_bpr_deterministic_one_thread),
        cmocka_unit_test(test_bpr_negatives_outside_row),
        cmocka_unit_test(test_bpr_artifact_scores),
        cmocka_unit_test(test_bpr_snapshots),
        cmocka_unit_test(test_bpr_rejects_bad_input),
    };
    return cmocka_run_group_tests_name("bpr", tests, NULL, NULL);
}
