/* csr.c: compressed sparse row interaction matrices — building from coordinate triples, transposing. */
#include <string.h>
#include "models/model.h"
#include "models/train_internal.h"

int recd_csr_from_coo(recd_csr_t *out, size_t n_rows, size_t n_cols, const uint32_t *rows, const uint32_t *cols, const float *vals,
                      size_t n, recd_merge_t merge)
{
    uint64_t *col_count = NULL, *row_ptr = NULL;
    size_t *by_col = NULL, *order = NULL;
    int ret = RECD_OK;

    memset(out, 0, sizeof(*out));
    if (merge != RECD_MERGE_SUM && merge != RECD_MERGE_MAX && merge != RECD_MERGE_LAST)
        return RECD_EINVAL;
    if (n != 0 && (rows == NULL || cols == NULL))
        return RECD_EINVAL;
    for (size_t i = 0; i != n; ++i)
        if (rows[i] >= n_rows || cols[i] >= n_cols)
            return RECD_EINVAL;

    /* Two stable counting sorts (by column, then by row) order the triples by (row, col) and keep input order among
     * duplicates, which RECD_MERGE_LAST relies on. */
    col_count = recd_xcalloc(n_cols + 1, sizeof(*col_count));
    for (size_t i = 0; i != n; ++i)
        ++col_count[cols[i] + 1];
    for (size_t c = 0; c != n_cols; ++c)
        col_count[c + 1] += col_count[c];
    by_col = recd_xmalloc(n * sizeof(*by_col));
    for (size_t i = 0; i != n; ++i)
        by_col[col_count[cols[i]]++] = i;

    row_ptr = recd_xcalloc(n_rows + 1, sizeof(*row_ptr));
    for (size_t i = 0; i != n; ++i)
        ++row_ptr[rows[i] + 1];
    for (size_t r = 0; r != n_rows; ++r)
        row_ptr[r + 1] += row_ptr[r];
    order = recd_xmalloc(n * sizeof(*order));
    { /* row_ptr[r] is advanced while filling, then restored from the shifted copy */
        uint64_t *next = recd_xmalloc((n_rows + 1) * sizeof(*next));
        memcpy(next, row_ptr, (n_rows + 1) * sizeof(*next));
        for (size_t j = 0; j != n; ++j) {
            size_t i = by_col[j];
            order[next[rows[i]]++] = i;
        }
        free(next);
    }

    /* merge runs of equal (row, col) in place */
    out->n_rows = n_rows;
    out->n_cols = n_cols;
    out->row_ptr = recd_xmalloc((n_rows + 1) * sizeof(*out->row_ptr));
    out->col = recd_xmalloc(n * sizeof(*out->col));
    out->val = recd_xmalloc(n * sizeof(*out->val));
    size_t nnz = 0;
    out->row_ptr[0] = 0;
    for (size_t r = 0; r != n_rows; ++r) {
        for (uint64_t j = row_ptr[r]; j != row_ptr[r + 1]; ++j) {
            size_t i = order[j];
            float v = vals != NULL ? vals[i] : 1.0f;
            if (nnz > out->row_ptr[r] && out->col[nnz - 1] == cols[i]) {
                float *dst = &out->val[nnz - 1];
                switch (merge) {
                case RECD_MERGE_SUM:
                    *dst += v;
                    break;
                case RECD_MERGE_MAX:
                    if (v > *dst)
                        *dst = v;
                    break;
                case RECD_MERGE_LAST:
                    *dst = v;
                    break;
                }
            } else {
                out->col[nnz] = cols[i];
                out->val[nnz] = v;
                ++nnz;
            }
        }
        out->row_ptr[r + 1] = nnz;
    }
    out->nnz = nnz;
    if (nnz != n && nnz != 0) { /* give back what merging freed */
        out->col = recd_xrealloc(out->col, nnz * sizeof(*out->col));
        out->val = recd_xrealloc(out->val, nnz * sizeof(*out->val));
    }

    free(col_count);
    free(by_col);
    free(row_ptr);
    free(order);
    return ret;
}

int recd_csr_transpose(const recd_csr_t *m, recd_csr_t *out)
{
    memset(out, 0, sizeof(*out));
    if (m == NULL || (m->nnz != 0 && (m->col == NULL || m->val == NULL)) || m->row_ptr == NULL)
        return RECD_EINVAL;
    out->n_rows = m->n_cols;
    out->n_cols = m->n_rows;
    out->nnz = m->nnz;
    out->row_ptr = recd_xcalloc(out->n_rows + 1, sizeof(*out->row_ptr));
    out->col = recd_xmalloc(m->nnz * sizeof(*out->col));
    out->val = recd_xmalloc(m->nnz * sizeof(*out->val));
    for (size_t j = 0; j != m->nnz; ++j)
        ++out->row_ptr[m->col[j] + 1];
    for (size_t c = 0; c != out->n_rows; ++c)
        out->row_ptr[c + 1] += out->row_ptr[c];
    uint64_t *next = recd_xmalloc((out->n_rows + 1) * sizeof(*next));
    memcpy(next, out->row_ptr, (out->n_rows + 1) * sizeof(*next));
    /* walking rows in order makes each transposed row come out sorted */
    for (size_t r = 0; r != m->n_rows; ++r) {
        for (uint64_t j = m->row_ptr[r]; j != m->row_ptr[r + 1]; ++j) {
            uint64_t dst = next[m->col[j]]++;
            out->col[dst] = (uint32_t)r;
            out->val[dst] = m->val[j];
        }
    }
    free(next);
    return RECD_OK;
}

void recd_csr_dispose(recd_csr_t *m)
{
    if (m == NULL)
        return;
    free(m->row_ptr);
    free(m->col);
    free(m->val);
    memset(m, 0, sizeof(*m));
}
