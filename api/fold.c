/* fold.c: re-folds a user from its training history plus in-memory or request interactions (shared by two endpoints). */
#include <stdlib.h>
#include <string.h>
#include "api/api_internal.h"

typedef struct st_pair_t {
    uint32_t item;
    float value;
} pair_t;

static int cmp_pair(const void *a, const void *b)
{
    uint32_t x = ((const pair_t *)a)->item, y = ((const pair_t *)b)->item;
    return x < y ? -1 : x > y;
}

int recd_api_fold_user(const recd_model_t *m, int64_t user, const recd_user_item_t *extra, size_t n_extra, h2o_mem_pool_t *pool,
                       float *vec)
{
    const uint32_t *hist_items = NULL;
    const float *hist_values = NULL;
    size_t n_hist = 0, n = 0, out = 0;

    if (user >= 0)
        recd_model_user_items(m, (uint32_t)user, &hist_items, &hist_values, &n_hist);
    pair_t *pairs = h2o_mem_alloc_pool(pool, sizeof(*pairs) * (n_hist + n_extra + 1));
    for (size_t i = 0; i < n_hist; ++i)
        pairs[n++] = (pair_t){hist_items[i], hist_values[i]};
    for (size_t i = 0; i < n_extra; ++i) {
        int64_t idx = recd_model_find_item(m, extra[i].item.base, extra[i].item.len);
        if (idx >= 0)
            pairs[n++] = (pair_t){(uint32_t)idx, extra[i].weight};
    }
    if (n == 0)
        return RECD_ENOTFOUND;
    qsort(pairs, n, sizeof(*pairs), cmp_pair);
    uint32_t *items = h2o_mem_alloc_pool(pool, sizeof(*items) * n);
    float *values = h2o_mem_alloc_pool(pool, sizeof(*values) * n);
    for (size_t i = 0; i < n; ++i) {
        if (out > 0 && items[out - 1] == pairs[i].item) {
            values[out - 1] += pairs[i].value;
        } else {
            items[out] = pairs[i].item;
            values[out] = pairs[i].value;
            ++out;
        }
    }
    return recd_model_fold_in(m, items, values, out, vec);
}
