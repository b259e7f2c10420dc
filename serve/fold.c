/* fold.c: re-folds a user from its training history plus remembered or request interactions, summing repeated items. */
#include <stdlib.h>
#include <string.h>
#include "base/error.h"
#include "serve/fold.h"

typedef struct st_pair_t {
    uint32_t item;
    float value;
} pair_t;

static int cmp_pair(const void *a, const void *b)
{
    uint32_t x = ((const pair_t *)a)->item, y = ((const pair_t *)b)->item;
    return x < y ? -1 : x > y;
}

int recd_serve_fold_user(const recd_model_t *m, int64_t user, const uint32_t *items, const float *weights, size_t n,
                         recd_store_alloc_cb alloc, void *alloc_ctx, float *vec)
{
    const uint32_t *hist_items = NULL;
    const float *hist_values = NULL;
    size_t n_hist = 0, n_pairs = 0, out = 0;

    if (user >= 0)
        recd_model_user_items(m, (uint32_t)user, &hist_items, &hist_values, &n_hist);
    if (n_hist + n == 0)
        return RECD_ENOTFOUND;
    pair_t *pairs = alloc(alloc_ctx, sizeof(*pairs) * (n_hist + n));
    for (size_t i = 0; i < n_hist; ++i)
        pairs[n_pairs++] = (pair_t){hist_items[i], hist_values[i]};
    for (size_t i = 0; i < n; ++i)
        pairs[n_pairs++] = (pair_t){items[i], weights[i]};
    qsort(pairs, n_pairs, sizeof(*pairs), cmp_pair);
    uint32_t *sorted = alloc(alloc_ctx, sizeof(*sorted) * n_pairs);
    float *values = alloc(alloc_ctx, sizeof(*values) * n_pairs);
    for (size_t i = 0; i < n_pairs; ++i) {
        if (out > 0 && sorted[out - 1] == pairs[i].item) {
            values[out - 1] += pairs[i].value;
        } else {
            sorted[out] = pairs[i].item;
            values[out] = pairs[i].value;
            ++out;
        }
    }
    return recd_model_fold_in(m, sorted, values, out, vec);
}
