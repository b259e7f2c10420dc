/* split.c: train/test splits — per-user stratified, global temporal, leave-last-out, K-fold — and building the matrices. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "models/train_internal.h"

/* Number of test rows for a ratio; the caller has checked 0 <= ratio <= 1. */
static size_t ratio_count(double ratio, size_t n)
{
    size_t c = (size_t)llround(ratio * (double)n);
    return c < n ? c : n;
}

/* Fisher-Yates over perm[0..n): the generator is advanced n - 1 times (none for n < 2). */
static void shuffle(size_t *perm, size_t n, uint64_t *state)
{
    for (size_t i = 0; i != n; ++i)
        perm[i] = i;
    for (size_t i = n; i > 1; --i) {
        size_t j = (size_t)recd_rand_below(state, i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

int recd_split_stratified_mask(const uint32_t *user, size_t n, size_t n_users, double test_ratio, uint64_t seed, uint8_t *is_test)
{
    if ((n != 0 && (user == NULL || is_test == NULL)) || !(test_ratio >= 0 && test_ratio <= 1))
        return RECD_EINVAL;
    for (size_t i = 0; i != n; ++i)
        if (user[i] >= n_users)
            return RECD_EINVAL;

    /* a stable counting sort groups each user's rows in input order */
    size_t *start = recd_xcalloc(n_users + 1, sizeof(*start));
    for (size_t i = 0; i != n; ++i)
        ++start[user[i] + 1];
    size_t max_rows = 0;
    for (size_t u = 0; u != n_users; ++u) {
        if (start[u + 1] > max_rows)
            max_rows = start[u + 1];
        start[u + 1] += start[u];
    }
    size_t *rows = recd_xmalloc(n * sizeof(*rows)), *perm = recd_xmalloc(max_rows * sizeof(*perm));
    {
        size_t *next = recd_xmalloc((n_users + 1) * sizeof(*next));
        memcpy(next, start, (n_users + 1) * sizeof(*next));
        for (size_t i = 0; i != n; ++i)
            rows[next[user[i]]++] = i;
        free(next);
    }

    if (n != 0)
        memset(is_test, 0, n);
    uint64_t state = seed;
    for (size_t u = 0; u != n_users; ++u) {
        size_t count = start[u + 1] - start[u];
        if (count < 2)
            continue;
        /* the first round(ratio * count) of the shuffled positions go to test */
        shuffle(perm, count, &state);
        size_t n_test = ratio_count(test_ratio, count);
        for (size_t i = 0; i != n_test; ++i)
            is_test[rows[start[u] + perm[i]]] = 1;
    }
    free(perm);
    free(rows);
    free(start);
    return RECD_OK;
}

int recd_split_stratified(const recd_csr_t *m, double test_ratio, uint64_t seed, recd_csr_t *train, recd_csr_t *test)
{
    memset(train, 0, sizeof(*train));
    memset(test, 0, sizeof(*test));
    if (m == NULL || m->row_ptr == NULL || !(test_ratio >= 0 && test_ratio <= 1) || m->n_rows > (size_t)UINT32_MAX + 1)
        return RECD_EINVAL;

    /* the CSR's entries in row-major order are coordinate rows grouped by user, columns ascending */
    uint32_t *user = recd_xmalloc(m->nnz * sizeof(*user));
    uint8_t *is_test = recd_xmalloc(m->nnz);
    for (size_t u = 0; u != m->n_rows; ++u)
        for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j)
            user[j] = (uint32_t)u;
    int ret = recd_split_stratified_mask(user, m->nnz, m->n_rows, test_ratio, seed, is_test);
    free(user);
    if (ret != RECD_OK)
        goto Exit;

    recd_csr_t *outs[2] = {train, test};
    for (int o = 0; o != 2; ++o) {
        outs[o]->n_rows = m->n_rows;
        outs[o]->n_cols = m->n_cols;
        outs[o]->row_ptr = recd_xmalloc((m->n_rows + 1) * sizeof(*outs[o]->row_ptr));
        outs[o]->col = recd_xmalloc(m->nnz * sizeof(*outs[o]->col));
        outs[o]->val = recd_xmalloc(m->nnz * sizeof(*outs[o]->val));
        outs[o]->row_ptr[0] = 0;
    }
    /* walking m's rows in order keeps every output row sorted */
    for (size_t u = 0; u != m->n_rows; ++u) {
        for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j) {
            recd_csr_t *dst = outs[is_test[j]];
            dst->col[dst->nnz] = m->col[j];
            dst->val[dst->nnz] = m->val[j];
            ++dst->nnz;
        }
        train->row_ptr[u + 1] = train->nnz;
        test->row_ptr[u + 1] = test->nnz;
    }
Exit:
    free(is_test);
    return ret;
}

typedef struct st_timed_row_t {
    int64_t ts;
    size_t row;
} timed_row_t;

static int compare_timed(const void *pa, const void *pb)
{
    const timed_row_t *a = pa, *b = pb;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

int recd_split_temporal_mask(const int64_t *ts, size_t n, double test_ratio, uint8_t *is_test)
{
    if ((n != 0 && (ts == NULL || is_test == NULL)) || !(test_ratio >= 0 && test_ratio <= 1))
        return RECD_EINVAL;
    /* (ts, row) is a total order, so qsort's instability does not matter */
    timed_row_t *order = recd_xmalloc(n * sizeof(*order));
    for (size_t i = 0; i != n; ++i)
        order[i] = (timed_row_t){ts[i], i};
    qsort(order, n, sizeof(*order), compare_timed);
    size_t n_test = ratio_count(test_ratio, n);
    if (n != 0)
        memset(is_test, 0, n);
    for (size_t p = n - n_test; p != n; ++p)
        is_test[order[p].row] = 1;
    free(order);
    return RECD_OK;
}

int recd_split_leave_last_out_mask(const uint32_t *user, const int64_t *ts, size_t n, size_t n_users, uint8_t *is_test)
{
    if (n != 0 && (user == NULL || ts == NULL || is_test == NULL))
        return RECD_EINVAL;
    for (size_t i = 0; i != n; ++i)
        if (user[i] >= n_users)
            return RECD_EINVAL;

    size_t *last = recd_xmalloc(n_users * sizeof(*last)), *count = recd_xcalloc(n_users, sizeof(*count));
    for (size_t i = 0; i != n; ++i) {
        uint32_t u = user[i];
        /* >= : a later row with the same timestamp replaces the earlier one */
        if (count[u]++ == 0 || ts[i] >= ts[last[u]])
            last[u] = i;
    }
    if (n != 0)
        memset(is_test, 0, n);
    for (size_t u = 0; u != n_users; ++u)
        if (count[u] >= 2)
            is_test[last[u]] = 1;
    free(last);
    free(count);
    return RECD_OK;
}

int recd_split_kfold_mask(size_t n, uint32_t folds, uint64_t seed, uint32_t *fold_of)
{
    if (folds < 2 || (n != 0 && fold_of == NULL))
        return RECD_EINVAL;
    /* The shuffle and the cut are recd_split_kfold's (models/eval_rating.c), step for step, so that a CSR's entries in
     * row-major order land in the same folds through either function; tests/models/test_eval.c checks it. */
    size_t *perm = recd_xmalloc(n * sizeof(*perm));
    for (size_t j = 0; j != n; ++j)
        perm[j] = j;
    uint64_t rng = seed;
    for (size_t m = n; m > 1; --m) {
        size_t j = (size_t)recd_rand_below(&rng, m), t = perm[m - 1];
        perm[m - 1] = perm[j];
        perm[j] = t;
    }
    size_t base = n / folds, extra = n % folds, p = 0;
    for (uint32_t f = 0; f != folds; ++f)
        for (size_t stop = p + base + (f < extra); p != stop; ++p)
            fold_of[perm[p]] = f;
    free(perm);
    return RECD_OK;
}

int recd_csr_split_by_mask(size_t n_rows, size_t n_cols, const uint32_t *rows, const uint32_t *cols, const float *vals, size_t n,
                           const uint8_t *is_test, recd_merge_t merge, recd_csr_t *train, recd_csr_t *test)
{
    memset(train, 0, sizeof(*train));
    memset(test, 0, sizeof(*test));
    if (n != 0 && (rows == NULL || cols == NULL || is_test == NULL))
        return RECD_EINVAL;

    size_t n_test = 0;
    for (size_t i = 0; i != n; ++i)
        n_test += is_test[i] != 0;
    size_t counts[2] = {n - n_test, n_test}, fill[2] = {0, 0};
    uint32_t *r[2], *c[2];
    float *v[2] = {NULL, NULL};
    for (int s = 0; s != 2; ++s) {
        r[s] = recd_xmalloc(counts[s] * sizeof(uint32_t));
        c[s] = recd_xmalloc(counts[s] * sizeof(uint32_t));
        if (vals != NULL)
            v[s] = recd_xmalloc(counts[s] * sizeof(float));
    }
    /* input order is kept within each side, so RECD_MERGE_LAST means the same as for the whole log */
    for (size_t i = 0; i != n; ++i) {
        int s = is_test[i] != 0;
        r[s][fill[s]] = rows[i];
        c[s][fill[s]] = cols[i];
        if (vals != NULL)
            v[s][fill[s]] = vals[i];
        ++fill[s];
    }
    int ret = recd_csr_from_coo(train, n_rows, n_cols, r[0], c[0], v[0], counts[0], merge);
    if (ret == RECD_OK && (ret = recd_csr_from_coo(test, n_rows, n_cols, r[1], c[1], v[1], counts[1], merge)) != RECD_OK)
        recd_csr_dispose(train);
    for (int s = 0; s != 2; ++s) {
        free(r[s]);
        free(c[s]);
        free(v[s]);
    }
    return ret;
}
