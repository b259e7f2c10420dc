/* score.c: the request hot path — scoring every item for a user, top-k selection, fold-in and similar items. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <lapacke.h>
#include "models/models_internal.h"
#include "base/alloc.h"

/* Fold-in keeps its f x f system on the stack up to this many factors (64 KiB), so the common case never allocates. */
#define FOLD_IN_STACK_FACTORS 128

void recd_scorer_score(const recd_scorer_t *s, const float *user_vec, int64_t user, float *scores)
{
    size_t n = s->n_items;
    int f = (int)s->n_factors;
    float beta = 0.0f;

    if (n == 0)
        return;
    switch (s->kind) {
    case RECD_MODEL_ALS:
        break;
    case RECD_MODEL_BPR:
        if (s->item_bias != NULL) {
            memcpy(scores, s->item_bias, n * sizeof(float));
            beta = 1.0f;
        }
        break;
    case RECD_MODEL_BIASED_MF: {
        float offset = s->global_bias;
        if (s->user_bias != NULL && user >= 0 && (uint64_t)user < s->n_users)
            offset += s->user_bias[user];
        for (size_t i = 0; i != n; ++i)
            scores[i] = (s->item_bias != NULL ? s->item_bias[i] : 0.0f) + offset;
        beta = 1.0f;
    } break;
    default: /* popularity */
        memcpy(scores, s->popularity, n * sizeof(float));
        return;
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, f, 1.0f, s->item_factors, f, user_vec, 1, beta, scores, 1);
}

void recd_model_scorer(const recd_model_t *m, recd_scorer_t *out)
{
    *out = (recd_scorer_t){.kind = m->kind,
                           .n_factors = m->n_factors,
                           .n_users = m->n_users,
                           .n_items = m->n_items,
                           .item_factors = m->item_factors,
                           .item_bias = m->item_bias,
                           .user_bias = m->user_bias,
                           .popularity = m->popularity,
                           .global_bias = m->global_bias,
                           .ann = m->ann};
}

void recd_model_score(const recd_model_t *m, const float *user_vec, int64_t user, float *scores)
{
    recd_scorer_t s;
    recd_model_scorer(m, &s);
    recd_scorer_score(&s, user_vec, user, scores);
}

/* a ranks below b: lower score, or equal score and higher index. */
static inline int worse(float as, uint32_t ai, float bs, uint32_t bi)
{
    return as < bs || (as == bs && ai > bi);
}

static inline void sift_down(recd_scored_t *heap, size_t n, size_t i)
{
    recd_scored_t x = heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && worse(heap[c + 1].score, heap[c + 1].index, heap[c].score, heap[c].index))
            ++c;
        if (!worse(heap[c].score, heap[c].index, x.score, x.index))
            break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = x;
}

static inline void sift_up(recd_scored_t *heap, size_t i)
{
    recd_scored_t x = heap[i];
    while (i != 0) {
        size_t p = (i - 1) / 2;
        if (!worse(x.score, x.index, heap[p].score, heap[p].index))
            break;
        heap[i] = heap[p];
        i = p;
    }
    heap[i] = x;
}

size_t recd_topk(const float *scores, size_t n, size_t k, recd_scored_t *out)
{
    size_t len = 0, i = 0;

    if (k == 0)
        return 0;
    /* out is a min-heap (worst at out[0]) of the best `len` finite scores seen so far. Indexes arrive in ascending order,
     * so once the heap is full a later equal score never wins: a strict > against the root is the whole test. */
    for (; i != n && len != k; ++i) {
        if (!isfinite(scores[i]))
            continue;
        out[len] = (recd_scored_t){(uint32_t)i, scores[i]};
        sift_up(out, len++);
    }
    for (; i != n; ++i) {
        float s = scores[i];
        if (s > out[0].score && s < INFINITY) {
            out[0] = (recd_scored_t){(uint32_t)i, s};
            sift_down(out, len, 0);
        }
    }
    /* Heap sort in place: repeatedly move the worst to the end, leaving the best first. */
    for (size_t end = len; end > 1; --end) {
        recd_scored_t t = out[0];
        out[0] = out[end - 1];
        out[end - 1] = t;
        sift_down(out, end - 1, 0);
    }
    return len;
}

int recd_fold_in_solve(const float *gram, const float *item_factors, size_t n_items, size_t n_factors, float alpha, float reg,
                       const uint32_t *items, const float *values, size_t n, float *vec)
{
    size_t f = n_factors;
    float stack_a[FOLD_IN_STACK_FACTORS * FOLD_IN_STACK_FACTORS];
    float *a = stack_a;
    int ret = RECD_OK;

    if (f == 0 || item_factors == NULL || gram == NULL)
        return RECD_EINVAL;
    for (size_t k = 0; k != n; ++k)
        if (items[k] >= n_items || !isfinite(values[k]))
            return RECD_EINVAL;
    memset(vec, 0, f * sizeof(float));
    if (n == 0)
        return RECD_OK;

    if (f > FOLD_IN_STACK_FACTORS) {
        a = recd_xmalloc(f * f * sizeof(float));
    }
    /* A = Y^T Y + reg I + sum_i (c_i - 1) y_i y_i^T (upper triangle is enough for the Cholesky), b = sum_i c_i y_i. */
    memcpy(a, gram, f * f * sizeof(float));
    for (size_t j = 0; j != f; ++j)
        a[j * f + j] += reg;
    for (size_t k = 0; k != n; ++k) {
        const float *y = item_factors + (size_t)items[k] * f;
        float c = 1.0f + alpha * values[k];
        if (c != 1.0f)
            cblas_ssyr(CblasRowMajor, CblasUpper, (int)f, c - 1.0f, y, 1, a, (int)f);
        cblas_saxpy((int)f, c, y, 1, vec, 1);
    }
    lapack_int info = LAPACKE_sposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)f, 1, a, (lapack_int)f, vec, 1);
    if (info != 0) {
        memset(vec, 0, f * sizeof(float));
        ret = info < 0 ? RECD_EINVAL : RECD_ENUMERIC;
    } else {
        for (size_t j = 0; j != f; ++j) {
            if (!isfinite(vec[j])) {
                memset(vec, 0, f * sizeof(float));
                ret = RECD_ENUMERIC;
                break;
            }
        }
    }
    if (a != stack_a)
        free(a);
    return ret;
}

int recd_model_fold_in(const recd_model_t *m, const uint32_t *items, const float *values, size_t n, float *vec)
{
    return recd_fold_in_solve(m->gram, m->item_factors, m->n_items, m->n_factors, m->alpha, m->reg, items, values, n, vec);
}

size_t recd_model_similar(const recd_model_t *m, uint32_t item, size_t k, float *scores, recd_scored_t *out)
{
    size_t n = m->n_items;

    if (item >= n || k == 0)
        return 0;
    if (m->n_factors == 0) {
        size_t len = 0;
        for (size_t i = 0; i != n && len != k; ++i) {
            uint32_t j = m->popular_order[i];
            if (j != item)
                out[len++] = (recd_scored_t){j, m->popularity[j]};
        }
        return len;
    }
    int f = (int)m->n_factors;
    float norm = m->item_norms[item];
    if (norm == 0.0f)
        return 0;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, f, 1.0f, m->item_factors, f, m->item_factors + (size_t)item * f, 1, 0.0f,
                scores, 1);
    for (size_t i = 0; i != n; ++i) {
        float d = m->item_norms[i] * norm;
        scores[i] = d > 0.0f ? scores[i] / d : -INFINITY;
    }
    scores[item] = -INFINITY;
    return recd_topk(scores, n, k, out);
}
