/* bf16_tiles.c: building the bf16 tiles of a version's item rows (the kernel that reads them is in scan.c). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "models/bf16_tiles.h"
#include "models/models_internal.h"
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
    float *back = recd_xmalloc(f * sizeof(float)); /* a row as the tiles hold it */
    for (size_t i = 0; i != n; ++i) {
        uint16_t *tile = t->data + (i / TILE_ITEMS) * t->pairs * TILE_ITEMS * 2;
        for (uint32_t j = 0; j != f; ++j) {
            uint16_t h = recd_bf16_round(items[i * f + j]);
            tile[(j / 2) * TILE_ITEMS * 2 + (i % TILE_ITEMS) * 2 + j % 2] = h;
            back[j] = recd_bf16_widen(h);
        }
        recd_bounds_add_item(&b, items + i * f, back, 1.0, f, item_bias != NULL ? &item_bias[i] : NULL);
    }
    free(back);
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
