/* scan.h: the batched scan's query (Contract 1 of issue 10). Helper K owns this header and models/scan.c; this branch
 * carries the query struct exactly as the contract fixes it so that the approximate index (models/ann.h) can answer it. */
#ifndef RECD_MODELS_SCAN_H
#define RECD_MODELS_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include "models/model.h"

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

#endif
