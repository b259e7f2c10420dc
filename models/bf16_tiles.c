/* bf16_tiles.c: building the bf16 tiles of a version's item rows (the kernel that reads them is in scan.c). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "models/bf16_tiles.h"
#include "base/alloc.h"

#define TILE_ITEMS 16

int recd_bf16_tiles_supported(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

static atomic_int tiles_off;

int recd_bf16_tiles_enabled(void)
{
    return !atomic_load_explicit(&tiles_off, memory_order_relaxed) && recd_bf16_tiles_supported();
}

void recd_bf16_tiles_set_enabled(int on)
{
    atomic_store_explicit(&tiles_off, !on, memory_order_relaxed);
}

/* Round to nearest even, as VCVTNEPS2BF16; a finite value past the largest bf16 saturates to it. */
static uint16_t to_bf16(float v, float *back)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    uint32_t r = (b + 0x7fff + ((b >> 16) & 1)) >> 16;
    if ((r & 0x7f80) == 0x7f80 && isfinite(v))
        r = ((b >> 16) & 0x8000) | 0x7f7f;
    uint32_t wide = r << 16;
    memcpy(back, &wide, 4);
    return (uint16_t)r;
}

recd_bf16_tiles_t *recd_bf16_tiles_build(const float *items, size_t n, uint32_t f, const float *item_bias)
{
    if (n == 0 || f == 0 || items == NULL)
        return NULL;
    recd_bf16_tiles_t *t = recd_xcalloc(1, sizeof(*t));
    t->n_items = n;
    t->n_factors = f;
    t->pairs = (f + 1) / 2;
    t->n_tiles = (n + TILE_ITEMS - 1) / TILE_ITEMS;
    t->data = recd_xcalloc(t->n_tiles * t->pairs * TILE_ITEMS * 2, sizeof(uint16_t));
    recd_compact_bounds_t b = {.known = 1};
    for (size_t i = 0; i != n; ++i) {
        uint16_t *tile = t->data + (i / TILE_ITEMS) * t->pairs * TILE_ITEMS * 2;
        double row = 0;
        for (uint32_t j = 0; j != f; ++j) {
            float x = items[i * f + j], back;
            tile[(j / 2) * TILE_ITEMS * 2 + (i % TILE_ITEMS) * 2 + j % 2] = to_bf16(x, &back);
            double d = fabs((double)x - (double)back);
            if (!isfinite(d))
                b.known = 0;
            b.max_error = d > b.max_error ? d : b.max_error;
            b.max_abs = fabs((double)x) > b.max_abs ? fabs((double)x) : b.max_abs;
            row += d * d;
        }
        row = sqrt(row);
        b.max_row_error = row > b.max_row_error ? row : b.max_row_error;
        if (item_bias != NULL && fabs((double)item_bias[i]) > b.max_bias)
            b.max_bias = fabs((double)item_bias[i]);
    }
    if (!isfinite(b.max_bias))
        b.known = 0;
    t->bounds = b.known ? b : (recd_compact_bounds_t){0};
    return t;
}

size_t recd_bf16_tiles_bytes(const recd_bf16_tiles_t *t)
{
    return t != NULL ? sizeof(*t) + t->n_tiles * t->pairs * TILE_ITEMS * 2 * sizeof(uint16_t) : 0;
}

void recd_bf16_tiles_free(recd_bf16_tiles_t *t)
{
    if (t == NULL)
        return;
    free(t->data);
    free(t);
}
