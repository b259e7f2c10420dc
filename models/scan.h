/* scan.h: the batched exact scan (top-k fused into a blocked pass over the item rows) and compact item factors. */
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
    int approximate;     /* 1: use the scorer's ANN index when it has one (else exact) */
    recd_scored_t *out;  /* room for k entries, written sorted (descending score, ties by ascending index) */
    size_t n_out;        /* set by the scan: how many were written (<= k) */
    size_t n_candidates; /* set by the scan: items re-ranked from the float32 rows after an approximate pass, else 0 */
} recd_scan_query_t;

/** Scratch memory of the scan (sorted exclusions, score tiles, candidate lists): one per thread, reused across calls. */
typedef struct st_recd_scan_scratch_t recd_scan_scratch_t;

/** Creates empty scratch; it grows on demand. Aborts on out of memory. */
recd_scan_scratch_t *recd_scan_scratch_new(void);
/** Frees scratch; accepts NULL. */
void recd_scan_scratch_free(recd_scan_scratch_t *s);

/**
 * Answers n queries against one scorer (one version). With float32 item factors (factor_type RECD_FACTORS_F32) each query
 * gets exactly what recd_scorer_score, then setting its excluded items to -INFINITY, then recd_topk give: descending score,
 * ties by ascending index, non-finite scores never answered. The item rows are scanned once per call in blocks that stay in
 * cache while every query of the batch passes over them, and each query's top k is kept on the fly (a SIMD comparison
 * against the query's current k-th score lets only better items reach its heap), so no array of n_items scores is written.
 * A score is computed in an order that depends only on the item and the query, never on the batch: a query's answer is the
 * same bit for bit scanned alone or in a batch of any size and composition.
 *
 * With bf16 tiles (s->bf16_tiles, on a CPU with AVX-512 BF16), or else compact item factors (bf16, fp16, int8) and
 * float32 item rows larger than 1 MiB (smaller ones stay in cache, where the float32 scan is faster), the scan scores
 * every item approximately first. From the copy's bounds (recd_compact_bounds_t) it bounds, per query, how far any
 * item's approximate score can be from its float32 score, keeps as candidates the items within twice that of the k-th
 * best approximate score, and re-ranks them from the float32 rows (q->n_candidates says how many). The answer is the
 * same as above, exactly: docs/SCORING.md gives the argument. A query without a finite bound (a vector that is not
 * finite, say) is scanned over the float32 rows.
 * scratch must not be used by another thread at the same time; NULL makes a temporary one (an allocation per call).
 */
void recd_scan_topk(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, recd_scan_scratch_t *scratch);

/** Whether recd_scan_topk reads s's compact item factors (it has some, and its float32 rows exceed 1 MiB). */
int recd_scan_reads_compact(const recd_scorer_t *s);

/** The dot-product kernel this process runs: "avx2+fma" (chosen at run time when the CPU has them) or "scalar". */
const char *recd_scan_kernel(void);

/* ---- compact item factors ------------------------------------------------------------------------------------------ */

/** How the scan reads the item factors; the compact values equal the artifact tags of their sections. */
typedef enum en_recd_factor_type_t {
    RECD_FACTORS_F32 = 0,
    RECD_FACTORS_BF16 = RECD_ARTIFACT_ITEM_FACTORS_BF16,
    RECD_FACTORS_FP16 = RECD_ARTIFACT_ITEM_FACTORS_FP16,
    RECD_FACTORS_INT8 = RECD_ARTIFACT_ITEM_FACTORS_INT8,
} recd_factor_type_t;

/** "f32", "bf16", "fp16", "int8", or "unknown". */
const char *recd_factor_type_name(uint32_t type);
/** The factor type called name ("f32", "bf16", "fp16", "int8"), or -1. */
int recd_factor_type_parse(const char *name);

/**
 * Encodes n x f row-major float32 factors (finite) into a compact type: bf16 and fp16 write n*f uint16 values into data
 * (round to nearest even; values beyond the type's range saturate to its largest finite value), int8 writes n*f int8 values
 * into data and n per-row scales into scales (row i ~= data row i * scales[i], scale = max |y| / 127). The result is what
 * the artifact sections of that type hold. Returns RECD_EINVAL for RECD_FACTORS_F32 or an unknown type.
 */
int recd_factors_encode(uint32_t type, const float *factors, size_t n, size_t f, void *data, float *scales);

/**
 * Fills out with how far s's compact item factors are from its float32 ones (one pass over both); out->known stays 0
 * when s has no compact factors or a compact value is not finite.
 */
void recd_compact_bounds(const recd_scorer_t *s, recd_compact_bounds_t *out);

/**
 * The recall@k of s's scan (compact or not) against the exact float32 scan of the same scorer, averaged over `sample` users
 * drawn with seed from the n_users rows of user_factors (all of them when sample >= n_users), without exclusions: what
 * recd-train reports for a compact factor type. Returns 1 for a float32 scorer, and 0 when there is nothing to measure.
 * When candidates is not NULL it receives how many items a query re-ranked from the float32 rows, on average (0 for a
 * float32 scorer): the price of the approximate pass.
 */
double recd_scan_recall(const recd_scorer_t *s, const float *user_factors, size_t n_users, size_t sample, uint32_t k, uint64_t seed,
                        double *candidates);

#ifdef __cplusplus
}
#endif

#endif
