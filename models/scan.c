/* scan.c: PLACEHOLDER batched scan (helper P's branch) — each query scored alone by recd_scorer_score, its exclusions set to
 * -INFINITY, then recd_topk. Correct by construction and slow; the fused, blocked kernel (helper K) replaces this file. */
#include <math.h>
#include <stdlib.h>
#include "base/alloc.h"
#include "models/scan.h"

struct st_recd_scan_scratch_t {
    float *scores;
    size_t cap;
};

recd_scan_scratch_t *recd_scan_scratch_new(void)
{
    return recd_xcalloc(1, sizeof(recd_scan_scratch_t));
}

void recd_scan_scratch_free(recd_scan_scratch_t *s)
{
    if (s == NULL)
        return;
    free(s->scores);
    free(s);
}

void recd_scan_topk(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, recd_scan_scratch_t *scratch)
{
    if (scratch->cap < s->n_items) {
        free(scratch->scores);
        scratch->scores = recd_xreallocarray(NULL, s->n_items, sizeof(float));
        scratch->cap = s->n_items;
    }
    for (size_t i = 0; i < n; ++i) {
        recd_scorer_score(s, q[i].vec, q[i].user, scratch->scores);
        for (size_t e = 0; e < q[i].n_excluded; ++e)
            scratch->scores[q[i].excluded[e]] = -INFINITY;
        q[i].n_out = recd_topk(scratch->scores, s->n_items, q[i].k, q[i].out);
    }
}
