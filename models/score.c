/* score.c: a loaded model's scorer, fold-in and similar items (the scoring kernels and top-k are in scan.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <lapacke.h>
#include "models/models_internal.h"
#include "models/scan.h"
#include "base/alloc.h"

/* Fold-in keeps its f x f system on the stack up to this many factors (64 KiB), so the common case never allocates. */
#define FOLD_IN_STACK_FACTORS 128

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
                           .ann = m->ann,
                           .compact_bounds = m->compact_bounds,
                           .bf16_tiles = m->bf16_tiles};
    static const uint32_t smallest_first[] = {RECD_FACTORS_INT8, RECD_FACTORS_FP16, RECD_FACTORS_BF16};
    for (size_t k = 0; k != sizeof(smallest_first) / sizeof(smallest_first[0]); ++k) {
        const void *data = recd_model_extra(m, smallest_first[k], NULL);
        if (data != NULL) {
            out->factor_type = smallest_first[k];
            out->item_factors_compact = data;
            out->item_scales = smallest_first[k] == RECD_FACTORS_INT8 ? recd_model_extra(m, RECD_ARTIFACT_INT8_SCALES, NULL) : NULL;
            break;
        }
    }
}

void recd_model_score(const recd_model_t *m, const float *user_vec, int64_t user, float *scores)
{
    recd_scorer_t s;
    recd_model_scorer(m, &s);
    recd_scorer_score(&s, user_vec, user, scores);
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
