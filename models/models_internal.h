/* models_internal.h: the loaded-model struct shared by artifact.c (loader, accessors) and score.c (scoring, fold-in). */
#ifndef RECD_MODELS_MODELS_INTERNAL_H
#define RECD_MODELS_MODELS_INTERNAL_H

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "models/model.h"

/* Factor counts above this are rejected by the writer and the reader (the Gram matrix alone would be 64 MiB). */
#define RECD_ARTIFACT_MAX_FACTORS 4096

/* One slot of an open-addressing id -> index table; index == UINT32_MAX marks an empty slot. */
typedef struct st_recd_idslot_t {
    uint32_t tag; /* high 32 bits of the id's hash, compared before the bytes */
    uint32_t index;
} recd_idslot_t;

/* An id table inside the mapping: offsets[n + 1] relative to bytes, each id NUL-terminated. */
typedef struct st_recd_idtab_t {
    size_t n;
    const uint64_t *offsets;
    const char *bytes;
    recd_idslot_t *slots; /* heap, capacity mask + 1 (a power of two >= 2n) */
    size_t mask;
} recd_idtab_t;

struct st_recd_model_t {
    atomic_size_t _refcnt;
    void *_map;
    size_t _map_size;
    size_t _bytes; /* what this version adds to recd_model_live_bytes; 0 until it opened */

    uint32_t kind;
    uint32_t n_factors;
    size_t n_users, n_items, nnz;
    float alpha, reg, global_bias;

    recd_idtab_t users, items;
    const float *user_factors; /* n_users x n_factors, NULL when n_factors == 0 */
    const float *item_factors; /* n_items x n_factors, NULL when n_factors == 0 */
    const float *gram;         /* n_factors x n_factors, Y^T Y */
    const float *popularity;   /* n_items */
    const float *user_bias;    /* n_users */
    const float *item_bias;    /* n_items */
    const uint64_t *row_ptr;   /* n_users + 1 */
    const uint32_t *cols;      /* nnz */
    const float *vals;         /* nnz */
    const char *metadata;
    size_t metadata_len;
    recd_artifact_extra_t extras[RECD_ARTIFACT_MAX_EXTRAS]; /* the tagged optional sections, data inside the mapping */
    size_t n_extras;

    struct st_recd_ann_t *ann;               /* the index of the ANN section (tag 16) mapped in place, or NULL */
    recd_compact_bounds_t compact_bounds;    /* of the compact item factors the scorer reads, computed at open */
    struct st_recd_bf16_tiles_t *bf16_tiles; /* built at open on a CPU with AVX-512 BF16, or NULL */

    uint32_t *popular_order; /* heap, n_items */
    float *item_norms;       /* heap, n_items (NULL when n_factors == 0) */

    char sha256_hex[65];
    char name[65];
    uint64_t version;
};

/**
 * Opens the model's ANN section (tag 16), when it has one, as m->ann: mapped in place and checked against the model's
 * shape. Returns 0, or -1 with what is wrong in msg (the load then fails).
 */
int recd_model_attach_ann(recd_model_t *m, char *msg, size_t msglen);

/* Whether this CPU runs scan.c's AVX2+FMA+F16C kernels. */
int recd_simd_available(void);

/*
 * scan.c's dot-product kernel with the instruction set chosen by the caller (simd = 0: the scalar twin; 1: AVX2 when
 * available), so tests can compare the two: out[i] = the canonical dot of x with row i (idx[i] when idx is given) of the
 * row-major n x f matrix rows of the given recd_factor_type_t, times scales[i] (or scales[idx[i]]) when scales is given.
 */
void recd_dots(int simd, uint32_t type, const void *rows, const float *scales, const uint32_t *idx, size_t n, size_t f,
               const float *x, float *out);

/* What a biased-MF score adds to every item's bias for user (an index, or -1 when folded in): mu + b_u; 0 for other kinds'
 * use is harmless (they ignore it). */
float recd_scan_user_offset(const recd_scorer_t *s, int64_t user);
/* Turns n dot products (of items base + j, or idx[j] when idx is given) into scores by the kind's biases, in the one order
 * every scoring path uses: ALS none, BPR + b_i, biased MF + (b_i + offset). */
void recd_scan_add_biases(const recd_scorer_t *s, float *scores, size_t base, const uint32_t *idx, size_t n, float offset);

/* The one answer order of every top-k: a ranks below b when its score is lower, or equal with a higher index. */
static inline int recd_scored_worse(float as, uint32_t ai, float bs, uint32_t bi)
{
    return as < bs || (as == bs && ai > bi);
}
/* The bounded min-heap (worst at [0], by recd_scored_worse) of the top-k paths: restore it below i / above i, and sort it
 * in place best first. */
void recd_heap_sift_down(recd_scored_t *heap, size_t n, size_t i);
void recd_heap_sift_up(recd_scored_t *heap, size_t i);
void recd_heap_sort(recd_scored_t *heap, size_t len);

/* v as bf16, rounded to nearest even (as VCVTNEPS2BF16); a finite value past the largest bf16 saturates to it, an
 * infinity stays one and a NaN stays a (quiet) NaN. The one bf16 rounding of the artifact's factors, the tiles and the
 * tiles' queries. */
static inline uint16_t recd_bf16_round(float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    if (!isfinite(v))
        return (uint16_t)((b >> 16) | (isnan(v) ? 0x40 : 0));
    uint32_t r = (b + 0x7fff + ((b >> 16) & 1)) >> 16;
    if ((r & 0x7f80) == 0x7f80)
        r = ((b >> 16) & 0x8000) | 0x7f7f;
    return (uint16_t)r;
}

/* A bf16 value as the float32 it stands for (exactly). */
static inline float recd_bf16_widen(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/*
 * Folds one item into bounds b (recd_compact_bounds_t, known = 1 to start): x its f float32 factors, y the same factors
 * as an approximate copy holds them, to be multiplied by scale (int8) or 1, bias its item bias or NULL. A difference that
 * is not finite clears known; the caller then discards the rest.
 */
void recd_bounds_add_item(recd_compact_bounds_t *b, const float *x, const float *y, double scale, size_t f, const float *bias);

/* The n compact values (recd_factor_type_t) at in as float32, with the instruction set chosen by the caller. */
void recd_decode(int simd, uint32_t type, const void *in, size_t n, float *out);

/* compact.c's float32 -> binary16 encoder with the instruction set chosen by the caller (F16C or its scalar twin). */
void recd_fp16_encode(int simd, const float *in, size_t n, uint16_t *out);

#endif
