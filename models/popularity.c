/* popularity.c: the popularity model — how many users interacted with each item. */
#include <string.h>
#include "models/model.h"

void recd_popularity_compute(const recd_csr_t *user_items, float *out)
{
    memset(out, 0, user_items->n_cols * sizeof(*out));
    /* rows hold no duplicate columns, so each stored entry is one distinct user */
    for (size_t j = 0; j != user_items->nnz; ++j)
        out[user_items->col[j]] += 1.0f;
}
