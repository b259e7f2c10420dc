/* bf16_tiles.h: a bfloat16 copy of a version's item rows laid out for the AVX-512 BF16 dot-product instruction. */
#ifndef RECD_MODELS_BF16_TILES_H
#define RECD_MODELS_BF16_TILES_H

#include <stddef.h>
#include <stdint.h>
#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The rows in tiles of 16 items: tile t holds, for each pair p of factors (2p, 2p + 1), the 16 items' two bf16 values
 * side by side (64 bytes), so one VDPBF16PS adds a pair of products to 16 items' sums at once. A factor count that is odd
 * is padded with a zero, and so are the items past n_items in the last tile. The scan (models/scan.h) scores these to
 * choose candidates, which it re-ranks from the float32 rows: bounds say how far the copy is from them.
 */
typedef struct st_recd_bf16_tiles_t {
    uint16_t *data; /* n_tiles x pairs x 16 x 2 */
    size_t n_items, n_tiles;
    uint32_t n_factors, pairs;
    recd_compact_bounds_t bounds; /* of the copy against the float32 rows (the item biases included) */
} recd_bf16_tiles_t;

/** Whether this CPU runs the tiles' kernel (AVX-512F, BW and BF16). */
int recd_bf16_tiles_supported(void);

/**
 * Whether versions opened from now on get tiles: the CPU runs them and they are not turned off. recd turns them off with
 * its bf16_tiles setting (they cost half the float32 rows' memory again); default on.
 */
int recd_bf16_tiles_enabled(void);
void recd_bf16_tiles_set_enabled(int on);

/** The tiles of n items x f float32 factors (item_bias may be NULL), or NULL when f == 0 or n == 0. */
recd_bf16_tiles_t *recd_bf16_tiles_build(const float *items, size_t n, uint32_t f, const float *item_bias);

/** Bytes the tiles hold. */
size_t recd_bf16_tiles_bytes(const recd_bf16_tiles_t *t);

/** Frees t; accepts NULL. */
void recd_bf16_tiles_free(recd_bf16_tiles_t *t);

#ifdef __cplusplus
}
#endif

#endif
