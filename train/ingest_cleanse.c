/* ingest_cleanse.c: cleansing of ingested interactions — iterated k-core and value normalisation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "train/ingest.h"
#include "base/alloc.h"

typedef struct st_pair_t {
    uint32_t user, item;
    size_t row;
} pair_t;

static int cmp_pair(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    if (x->item != y->item)
        return x->item < y->item ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Replaces map by a map of the ids whose used[] is set, in their old order; remap[] receives old -> new indexes. */
static recd_idmap_t *compact_map(recd_idmap_t *map, const uint8_t *used, uint32_t *remap)
{
    recd_idmap_t *fresh = recd_idmap_create();
    size_t n = recd_idmap_size(map);
    for (size_t i = 0; i < n; i++) {
        if (!used[i])
            continue;
        const char *id = recd_idmap_id(map, (uint32_t)i);
        remap[i] = recd_idmap_intern(fresh, id, strlen(id));
    }
    recd_idmap_free(map);
    return fresh;
}

int recd_interactions_kcore(recd_interactions_t *x, uint32_t min_user, uint32_t min_item, uint64_t *removed)
{
    size_t n = x->n, n_users = recd_idmap_size(x->users), n_items = recd_idmap_size(x->items);
    if (removed != NULL)
        *removed = 0;
    if (n == 0 || (min_user <= 1 && min_item <= 1))
        return RECD_OK;

    /* distinct (user, item) pairs: a user's count is its number of distinct items, and vice versa */
    pair_t *pairs = recd_xcalloc(n, sizeof(*pairs));
    for (size_t r = 0; r < n; r++)
        pairs[r] = (pair_t){x->user[r], x->item[r], r};
    qsort(pairs, n, sizeof(*pairs), cmp_pair);
    size_t *pair_of_row = recd_xcalloc(n, sizeof(*pair_of_row)), n_pairs = 0;
    uint32_t *pu = recd_xcalloc(n, sizeof(*pu)), *pi = recd_xcalloc(n, sizeof(*pi));
    for (size_t k = 0; k < n; k++) {
        if (k == 0 || pairs[k].user != pairs[k - 1].user || pairs[k].item != pairs[k - 1].item) {
            pu[n_pairs] = pairs[k].user;
            pi[n_pairs] = pairs[k].item;
            n_pairs++;
        }
        pair_of_row[pairs[k].row] = n_pairs - 1;
    }
    free(pairs);

    uint64_t *ucount = recd_xcalloc(n_users, sizeof(*ucount)), *icount = recd_xcalloc(n_items, sizeof(*icount));
    uint8_t *alive = recd_xcalloc(n_pairs, 1);
    for (size_t p = 0; p < n_pairs; p++) {
        alive[p] = 1;
        ucount[pu[p]]++;
        icount[pi[p]]++;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t p = 0; p < n_pairs; p++) {
            if (alive[p] && (ucount[pu[p]] < min_user || icount[pi[p]] < min_item)) {
                alive[p] = 0;
                ucount[pu[p]]--;
                icount[pi[p]]--;
                changed = 1;
            }
        }
    }

    /* keep the surviving rows in order, then compact the id maps */
    uint8_t *uused = recd_xcalloc(n_users, 1), *iused = recd_xcalloc(n_items, 1);
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (!alive[pair_of_row[r]])
            continue;
        x->user[w] = x->user[r];
        x->item[w] = x->item[r];
        x->value[w] = x->value[r];
        x->ts[w] = x->ts[r];
        uused[x->user[w]] = iused[x->item[w]] = 1;
        w++;
    }
    if (removed != NULL)
        *removed = n - w;
    x->n = w;
    uint32_t *uremap = recd_xcalloc(n_users, sizeof(*uremap)), *iremap = recd_xcalloc(n_items, sizeof(*iremap));
    x->users = compact_map(x->users, uused, uremap);
    x->items = compact_map(x->items, iused, iremap);
    for (size_t r = 0; r < w; r++) {
        x->user[r] = uremap[x->user[r]];
        x->item[r] = iremap[x->item[r]];
    }

    free(uremap);
    free(iremap);
    free(uused);
    free(iused);
    free(alive);
    free(ucount);
    free(icount);
    free(pu);
    free(pi);
    free(pair_of_row);
    return RECD_OK;
}

static const char *const normalize_names[] = {"none", "minmax", "user_mean", "log1p"};

const char *recd_normalize_name(recd_normalize_t how)
{
    return (unsigned)how < sizeof(normalize_names) / sizeof(normalize_names[0]) ? normalize_names[how] : "unknown";
}

int recd_normalize_parse(const char *name, recd_normalize_t *out)
{
    for (size_t i = 0; i < sizeof(normalize_names) / sizeof(normalize_names[0]); i++) {
        if (strcasecmp(name, normalize_names[i]) == 0) {
            *out = (recd_normalize_t)i;
            return RECD_OK;
        }
    }
    return RECD_EINVAL;
}

int recd_interactions_normalize(recd_interactions_t *x, recd_normalize_t how)
{
    switch (how) {
    case RECD_NORMALIZE_NONE:
        return RECD_OK;
    case RECD_NORMALIZE_MINMAX: {
        if (x->n == 0)
            return RECD_OK;
        float lo = x->value[0], hi = x->value[0];
        for (size_t r = 1; r < x->n; r++) {
            lo = x->value[r] < lo ? x->value[r] : lo;
            hi = x->value[r] > hi ? x->value[r] : hi;
        }
        double span = (double)hi - (double)lo;
        for (size_t r = 0; r < x->n; r++)
            x->value[r] = span > 0 ? (float)(((double)x->value[r] - lo) / span) : 1.0f;
        return RECD_OK;
    }
    case RECD_NORMALIZE_USER_MEAN: {
        size_t n_users = recd_idmap_size(x->users);
        double *sum = recd_xcalloc(n_users, sizeof(*sum));
        uint64_t *count = recd_xcalloc(n_users, sizeof(*count));
        for (size_t r = 0; r < x->n; r++) {
            sum[x->user[r]] += x->value[r];
            count[x->user[r]]++;
        }
        for (size_t r = 0; r < x->n; r++)
            x->value[r] = (float)((double)x->value[r] - sum[x->user[r]] / (double)count[x->user[r]]);
        free(sum);
        free(count);
        return RECD_OK;
    }
    case RECD_NORMALIZE_LOG1P:
        for (size_t r = 0; r < x->n; r++)
            if (!(x->value[r] >= 0))
                return RECD_EINVAL;
        for (size_t r = 0; r < x->n; r++)
            x->value[r] = (float)log1p(x->value[r]);
        return RECD_OK;
    default:
        return RECD_EINVAL;
    }
}
