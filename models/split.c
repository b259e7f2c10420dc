/* split.c: per-user stratified random train/test split of an interaction matrix. */
#include <math.h>
#include <string.h>
#include "models/model.h"
#include "models/train_internal.h"

static void alloc_like(recd_csr_t *out, const recd_csr_t *m, size_t nnz)
{
    out->n_rows = m->n_rows;
    out->n_cols = m->n_cols;
    out->nnz = 0;
    out->row_ptr = train_xmalloc((m->n_rows + 1) * sizeof(*out->row_ptr));
    out->col = train_xmalloc(nnz * sizeof(*out->col));
    out->val = train_xmalloc(nnz * sizeof(*out->val));
    out->row_ptr[0] = 0;
}

int recd_split_stratified(const recd_csr_t *m, double test_ratio, uint64_t seed, recd_csr_t *train, recd_csr_t *test)
{
    memset(train, 0, sizeof(*train));
    memset(test, 0, sizeof(*test));
    if (m == NULL || m->row_ptr == NULL || !(test_ratio >= 0 && test_ratio <= 1))
        return RECD_EINVAL;

    size_t max_row = 0;
    for (size_t u = 0; u != m->n_rows; ++u)
        if (m->row_ptr[u + 1] - m->row_ptr[u] > max_row)
            max_row = m->row_ptr[u + 1] - m->row_ptr[u];
    size_t *perm = train_xmalloc(max_row * sizeof(*perm));
    unsigned char *in_test = train_xmalloc(max_row);

    alloc_like(train, m, m->nnz);
    alloc_like(test, m, m->nnz);
    uint64_t state = seed;
    for (size_t u = 0; u != m->n_rows; ++u) {
        uint64_t begin = m->row_ptr[u];
        size_t n = m->row_ptr[u + 1] - begin, n_test = 0;
        if (n >= 2) {
            n_test = (size_t)llround(test_ratio * (double)n);
            /* Fisher-Yates; the first n_test of the shuffled positions go to test */
            for (size_t i = 0; i != n; ++i)
                perm[i] = i;
            for (size_t i = n - 1; i > 0; --i) {
                size_t j = (size_t)train_below(&state, i + 1), t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
        }
        memset(in_test, 0, n);
        for (size_t i = 0; i != n_test; ++i)
            in_test[perm[i]] = 1;
        /* emit in the original (sorted) order */
        for (size_t i = 0; i != n; ++i) {
            recd_csr_t *dst = in_test[i] ? test : train;
            dst->col[dst->nnz] = m->col[begin + i];
            dst->val[dst->nnz] = m->val[begin + i];
            ++dst->nnz;
        }
        train->row_ptr[u + 1] = train->nnz;
        test->row_ptr[u + 1] = test->nnz;
    }
    free(perm);
    free(in_test);
    return RECD_OK;
}
