/* scan.h: the batched scan — top-k of many queries against one scorer (one version) in one call. */
#ifndef RECD_MODELS_SCAN_H
#define RECD_MODELS_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One query of a batched scan. */
typedef struct st_recd_scan_query_t {
    const float *vec;         /* n_factors floats (unused for a popularity scorer) */
    int64_t user;             /* the user's index for its bias, or -1 (folded-in user) */
    uint32_t k;               /* how many to answer, >= 1 */
    const uint32_t *excluded; /* item indexes never to answer: any order, duplicates allowed, each < n_items */
    size_t n_excluded;
    int approximate;    /* 1: use the scorer's ANN index when it has one (else exact) */
    recd_scored_t *out; /* room for k entries, written sorted (descending score, ties by ascending index) */
    size_t n_out;       /* set by the scan: how many were written (<= k) */
} recd_scan_query_t;

/** Scratch memory of one thread's scans, reused across calls. */
typedef struct st_recd_scan_scratch_t recd_scan_scratch_t; /* per thread, reused across calls */
/** Creates empty scratch (it grows on use). Aborts on out of memory. */
recd_scan_scratch_t *recd_scan_scratch_new(void);
/** Frees scratch; accepts NULL. */
void recd_scan_scratch_free(recd_scan_scratch_t *s);

/**
 * Answers n queries against one scorer (one version): exactly what recd_scorer_score + setting excluded to -INFINITY +
 * recd_topk give today, bit for bit the same whether a query is scanned alone or in a batch of any size/composition.
 */
void recd_scan_topk(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, recd_scan_scratch_t *scratch);

#ifdef __cplusplus
}
#endif

#endif
