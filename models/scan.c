/* scan.c: the scoring hot path — dot-product kernels, recd_scorer_score, recd_topk and the batched scan with top-k fused in. */
/*
 * DESIGN
 * The bits of a score are defined here, once. The dot product of a user vector x and an item row y (f factors) runs in
 * eight lanes: lane l accumulates fma(x[8c + l], y[8c + l], acc[l]) over the chunks c = 0, 1, ... in order, the last chunk
 * zero-padded past f, and the lanes are summed as ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)). The AVX2 kernel does
 * exactly that eight rows at a time (one accumulator register per row; the eight are reduced together with hadd) and the
 * scalar kernel does it with fmaf, so both give the same bits and nothing depends on which rows share a group, how the
 * items are blocked, or which queries share a batch. Biases are added afterwards (dot + b_i, dot + (b_i + mu + b_u)).
 * The file is compiled with -ffp-contract=off, so the compiler never fuses a multiply and an add on one path only.
 *
 * recd_scan_topk walks the item rows in blocks of about 16 KiB; the queries of a batch score a block two at a time (a row
 * load serves both: dots4x2, same fma sequence and reduction tree as dots8, so the same bits) into small L1-resident
 * tiles, prefetching the next block meanwhile, and each query offers its tile to its heap: eight scores are compared at once
 * against the heap's root (its k-th best), and only the items above it, checked against the query's sorted exclusions, enter the
 * heap. Items arrive in ascending index order, so a strict comparison with the root keeps the tie order of recd_topk (ties by
 * ascending index). With compact factors the heaps hold candidates that are re-ranked from the float32 rows at the end, and a batch
 * decodes each compact block to float32 once (exactly) for all its queries.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif
#include "models/models_internal.h"
#include "models/ann.h"
#include "models/bf16_tiles.h"
#include "models/scan.h"
#include "base/alloc.h"

#define LANES 8
/* Item rows per block: about this many bytes of float32 rows, so a block stays in L1/L2 for the whole batch. */
#define BLOCK_BYTES 16384
/* Compact factors are read only when the float32 rows are larger than this: below, they stay in cache and the exact scan
 * is faster than choosing and re-ranking candidates (1,682 x 64 items: 8 us against 20). */
#define COMPACT_MIN_BYTES (1u << 20)
/* Rows are prefetched a block ahead only when there are more bytes of them than this: below, they stay in L2. */
#define PREFETCH_MIN_BYTES (512u << 10)
/* Items per bf16 tile (models/bf16_tiles.h): one 512-bit register of float32 sums. */
#define BF16_TILE_ITEMS 16

/* ---- element loads of each factor type ----------------------------------------------------------------------------- */

static float fp16_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exp = 113;
        while ((mant & 0x400) == 0) {
            mant <<= 1;
            --exp;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

static float element(uint32_t type, const void *row, size_t j)
{
    switch (type) {
    case RECD_FACTORS_BF16:
        return recd_bf16_widen(((const uint16_t *)row)[j]);
    case RECD_FACTORS_FP16:
        return fp16_to_float(((const uint16_t *)row)[j]);
    case RECD_FACTORS_INT8:
        return (float)((const int8_t *)row)[j];
    default:
        return ((const float *)row)[j];
    }
}

static size_t element_size(uint32_t type)
{
    return type == RECD_FACTORS_F32 ? 4 : type == RECD_FACTORS_INT8 ? 1 : 2;
}

/* ---- dot-product kernels ------------------------------------------------------------------------------------------- */

static void dots_scalar(uint32_t type, const void *rows, const float *scales, const uint32_t *idx, size_t n, size_t f,
                        const float *x, float *out)
{
    size_t row_bytes = f * element_size(type), chunks = (f + LANES - 1) / LANES;
    for (size_t i = 0; i != n; ++i) {
        const void *row = (const uint8_t *)rows + (idx != NULL ? idx[i] : i) * row_bytes;
        float acc[LANES] = {0};
        for (size_t c = 0; c != chunks; ++c) {
            for (size_t l = 0; l != LANES; ++l) {
                size_t j = c * LANES + l;
                acc[l] = fmaf(j < f ? x[j] : 0.0f, j < f ? element(type, row, j) : 0.0f, acc[l]);
            }
        }
        float d = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        if (scales != NULL)
            d = d * scales[idx != NULL ? idx[i] : i];
        out[i] = d;
    }
}

#ifdef HAVE_X86
#define SIMD_TARGET __attribute__((target("avx2,fma,f16c")))

SIMD_TARGET static inline __m256 load8(uint32_t type, const void *p)
{
    switch (type) {
    case RECD_FACTORS_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    case RECD_FACTORS_FP16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case RECD_FACTORS_INT8:
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    default:
        return _mm256_loadu_ps((const float *)p);
    }
}

/* The eight lane sums of a..h, in the canonical order: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). */
SIMD_TARGET static inline __m256 reduce8(__m256 a, __m256 b, __m256 c, __m256 d, __m256 e, __m256 f, __m256 g, __m256 h)
{
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d)); /* a_lo b_lo c_lo d_lo | a_hi b_hi c_hi d_hi */
    __m256 efgh = _mm256_hadd_ps(_mm256_hadd_ps(e, f), _mm256_hadd_ps(g, h));
    return _mm256_add_ps(_mm256_permute2f128_ps(abcd, efgh, 0x20), _mm256_permute2f128_ps(abcd, efgh, 0x31));
}

/*
 * The canonical dot products of x with the eight rows r0..r7 (full chunks, then the zero-padded tail), as one vector. The
 * rows are eight scalar arguments, not an array: GCC would otherwise build the addresses with vector instructions and
 * read them back through the stack, which doubled the time of a group.
 */
SIMD_TARGET static inline __attribute__((always_inline)) __m256 dots8(uint32_t type, const uint8_t *r0, const uint8_t *r1,
                                                                      const uint8_t *r2, const uint8_t *r3, const uint8_t *r4,
                                                                      const uint8_t *r5, const uint8_t *r6, const uint8_t *r7,
                                                                      size_t full, size_t tail, const float *x, const float *x_tail)
{
    size_t esize = element_size(type);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t c = 0; c != full; ++c) {
        size_t off = c * LANES * esize;
        __m256 xv = _mm256_loadu_ps(x + c * LANES);
        a0 = _mm256_fmadd_ps(xv, load8(type, r0 + off), a0);
        a1 = _mm256_fmadd_ps(xv, load8(type, r1 + off), a1);
        a2 = _mm256_fmadd_ps(xv, load8(type, r2 + off), a2);
        a3 = _mm256_fmadd_ps(xv, load8(type, r3 + off), a3);
        a4 = _mm256_fmadd_ps(xv, load8(type, r4 + off), a4);
        a5 = _mm256_fmadd_ps(xv, load8(type, r5 + off), a5);
        a6 = _mm256_fmadd_ps(xv, load8(type, r6 + off), a6);
        a7 = _mm256_fmadd_ps(xv, load8(type, r7 + off), a7);
    }
    if (tail != 0) { /* zero-padded copies of the rows' last partial chunk */
        const uint8_t *r[LANES] = {r0, r1, r2, r3, r4, r5, r6, r7};
        uint8_t pad[LANES][LANES * 4];
        memset(pad, 0, sizeof(pad));
        for (size_t j = 0; j != LANES; ++j)
            memcpy(pad[j], r[j] + full * LANES * esize, tail * esize);
        __m256 xv = _mm256_loadu_ps(x_tail);
        a0 = _mm256_fmadd_ps(xv, load8(type, pad[0]), a0);
        a1 = _mm256_fmadd_ps(xv, load8(type, pad[1]), a1);
        a2 = _mm256_fmadd_ps(xv, load8(type, pad[2]), a2);
        a3 = _mm256_fmadd_ps(xv, load8(type, pad[3]), a3);
        a4 = _mm256_fmadd_ps(xv, load8(type, pad[4]), a4);
        a5 = _mm256_fmadd_ps(xv, load8(type, pad[5]), a5);
        a6 = _mm256_fmadd_ps(xv, load8(type, pad[6]), a6);
        a7 = _mm256_fmadd_ps(xv, load8(type, pad[7]), a7);
    }
    return reduce8(a0, a1, a2, a3, a4, a5, a6, a7);
}

/* The eight products of a group times its rows' scales (int8), or the products as they are. */
SIMD_TARGET static inline __m256 scaled(__m256 d, const float *scales, const uint32_t *idx, size_t i)
{
    if (scales == NULL)
        return d;
    if (idx == NULL)
        return _mm256_mul_ps(d, _mm256_loadu_ps(scales + i));
    float sc[LANES];
    for (size_t j = 0; j != LANES; ++j)
        sc[j] = scales[idx[i + j]];
    return _mm256_mul_ps(d, _mm256_loadu_ps(sc));
}

/* One type's kernel; inlined into the per-type functions below so that load8's switch folds away. */
SIMD_TARGET static inline __attribute__((always_inline)) void dots_simd_type(uint32_t type, const void *rows, const float *scales,
                                                                             const uint32_t *idx, size_t n, size_t f,
                                                                             const float *x, float *out)
{
    const uint8_t *base = rows;
    size_t rb = f * element_size(type), full = f / LANES, tail = f % LANES, i = 0;
    float x_tail[LANES] = {0};
    memcpy(x_tail, x + full * LANES, tail * sizeof(float));
    if (idx == NULL) {
        for (; i + LANES <= n; i += LANES) {
            const uint8_t *r = base + i * rb;
            __m256 d = dots8(type, r, r + rb, r + 2 * rb, r + 3 * rb, r + 4 * rb, r + 5 * rb, r + 6 * rb, r + 7 * rb, full, tail, x,
                             x_tail);
            _mm256_storeu_ps(out + i, scaled(d, scales, NULL, i));
        }
    } else {
        for (; i + LANES <= n; i += LANES) {
            const uint32_t *ix = idx + i;
            __m256 d = dots8(type, base + ix[0] * rb, base + ix[1] * rb, base + ix[2] * rb, base + ix[3] * rb, base + ix[4] * rb,
                             base + ix[5] * rb, base + ix[6] * rb, base + ix[7] * rb, full, tail, x, x_tail);
            _mm256_storeu_ps(out + i, scaled(d, scales, idx, i));
        }
    }
    if (i != n) { /* a short last group repeats its last row; those results are dropped */
        uint32_t at[LANES];
        float sc[LANES] = {0}, tmp[LANES];
        for (size_t j = 0; j != LANES; ++j) {
            size_t k = i + j < n ? i + j : n - 1;
            at[j] = idx != NULL ? idx[k] : (uint32_t)k;
            sc[j] = scales != NULL ? scales[at[j]] : 0.0f;
        }
        __m256 d = dots8(type, base + at[0] * rb, base + at[1] * rb, base + at[2] * rb, base + at[3] * rb, base + at[4] * rb,
                         base + at[5] * rb, base + at[6] * rb, base + at[7] * rb, full, tail, x, x_tail);
        if (scales != NULL)
            d = _mm256_mul_ps(d, _mm256_loadu_ps(sc));
        _mm256_storeu_ps(tmp, d);
        memcpy(out + i, tmp, (n - i) * sizeof(float));
    }
}

/*
 * The canonical dot products of two queries x0, x1 with four float32 rows, as [x0.r0 .. x0.r3 | x1.r0 .. x1.r3]: each lane
 * runs the same fma sequence as dots8 and reduce8 sums each accumulator in the same tree, so the bits are dots8's; a row
 * load serves both queries (six loads for eight FMAs instead of nine), which is what a batch gains.
 */
SIMD_TARGET static inline __attribute__((always_inline)) __m256 dots4x2(const float *r0, const float *r1, const float *r2,
                                                                        const float *r3, size_t full, size_t tail, const float *x0,
                                                                        const float *x1, const float *x0_tail, const float *x1_tail)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (size_t c = 0; c != full; ++c) {
        size_t off = c * LANES;
        __m256 y0 = _mm256_loadu_ps(r0 + off), y1 = _mm256_loadu_ps(r1 + off), y2 = _mm256_loadu_ps(r2 + off),
               y3 = _mm256_loadu_ps(r3 + off), u = _mm256_loadu_ps(x0 + off), v = _mm256_loadu_ps(x1 + off);
        /* keep each row in a register: GCC would otherwise fold its load into both FMAs and read it twice */
        __asm__("" : "+x"(y0), "+x"(y1), "+x"(y2), "+x"(y3));
        a0 = _mm256_fmadd_ps(u, y0, a0);
        a1 = _mm256_fmadd_ps(u, y1, a1);
        a2 = _mm256_fmadd_ps(u, y2, a2);
        a3 = _mm256_fmadd_ps(u, y3, a3);
        b0 = _mm256_fmadd_ps(v, y0, b0);
        b1 = _mm256_fmadd_ps(v, y1, b1);
        b2 = _mm256_fmadd_ps(v, y2, b2);
        b3 = _mm256_fmadd_ps(v, y3, b3);
    }
    if (tail != 0) { /* zero-padded copies of the rows' last partial chunk */
        const float *r[4] = {r0, r1, r2, r3};
        float pad[4][LANES];
        memset(pad, 0, sizeof(pad));
        for (size_t j = 0; j != 4; ++j)
            memcpy(pad[j], r[j] + full * LANES, tail * sizeof(float));
        __m256 y0 = _mm256_loadu_ps(pad[0]), y1 = _mm256_loadu_ps(pad[1]), y2 = _mm256_loadu_ps(pad[2]),
               y3 = _mm256_loadu_ps(pad[3]), u = _mm256_loadu_ps(x0_tail), v = _mm256_loadu_ps(x1_tail);
        a0 = _mm256_fmadd_ps(u, y0, a0);
        a1 = _mm256_fmadd_ps(u, y1, a1);
        a2 = _mm256_fmadd_ps(u, y2, a2);
        a3 = _mm256_fmadd_ps(u, y3, a3);
        b0 = _mm256_fmadd_ps(v, y0, b0);
        b1 = _mm256_fmadd_ps(v, y1, b1);
        b2 = _mm256_fmadd_ps(v, y2, b2);
        b3 = _mm256_fmadd_ps(v, y3, b3);
    }
    return reduce8(a0, a1, a2, a3, b0, b1, b2, b3);
}

/* recd_dots of two queries over the same n float32 rows (times their scales when given), into out0 and out1. */
SIMD_TARGET static void dots_pair_simd(const float *rows, const float *scales, size_t n, size_t f, const float *x0, const float *x1,
                                       float *out0, float *out1)
{
    size_t full = f / LANES, tail = f % LANES, i = 0;
    float x0_tail[LANES] = {0}, x1_tail[LANES] = {0};
    memcpy(x0_tail, x0 + full * LANES, tail * sizeof(float));
    memcpy(x1_tail, x1 + full * LANES, tail * sizeof(float));
    for (; i + 4 <= n; i += 4) {
        const float *r = rows + i * f;
        __m256 d = dots4x2(r, r + f, r + 2 * f, r + 3 * f, full, tail, x0, x1, x0_tail, x1_tail);
        if (scales != NULL) {
            __m128 sc = _mm_loadu_ps(scales + i);
            d = _mm256_mul_ps(d, _mm256_set_m128(sc, sc));
        }
        _mm_storeu_ps(out0 + i, _mm256_castps256_ps128(d));
        _mm_storeu_ps(out1 + i, _mm256_extractf128_ps(d, 1));
    }
    if (i != n) { /* a short last group repeats its last row; those results are dropped */
        const float *r[4];
        float sc[4] = {0}, tmp[LANES];
        for (size_t j = 0; j != 4; ++j) {
            size_t k = i + j < n ? i + j : n - 1;
            r[j] = rows + k * f;
            sc[j] = scales != NULL ? scales[k] : 0.0f;
        }
        __m256 d = dots4x2(r[0], r[1], r[2], r[3], full, tail, x0, x1, x0_tail, x1_tail);
        if (scales != NULL) {
            __m128 s4 = _mm_loadu_ps(sc);
            d = _mm256_mul_ps(d, _mm256_set_m128(s4, s4));
        }
        _mm256_storeu_ps(tmp, d);
        memcpy(out0 + i, tmp, (n - i) * sizeof(float));
        memcpy(out1 + i, tmp + 4, (n - i) * sizeof(float));
    }
}

SIMD_TARGET static inline __attribute__((always_inline)) void decode_simd_type(uint32_t type, const void *in, size_t n, float *out)
{
    size_t esize = element_size(type), i = 0;
    for (; i + LANES <= n; i += LANES)
        _mm256_storeu_ps(out + i, load8(type, (const uint8_t *)in + i * esize));
    for (; i != n; ++i)
        out[i] = element(type, in, i);
}

SIMD_TARGET static void decode_simd(uint32_t type, const void *in, size_t n, float *out)
{
    switch (type) {
    case RECD_FACTORS_BF16:
        decode_simd_type(RECD_FACTORS_BF16, in, n, out);
        break;
    case RECD_FACTORS_FP16:
        decode_simd_type(RECD_FACTORS_FP16, in, n, out);
        break;
    default:
        decode_simd_type(RECD_FACTORS_INT8, in, n, out);
        break;
    }
}

SIMD_TARGET static void dots_simd(uint32_t type, const void *rows, const float *scales, const uint32_t *idx, size_t n, size_t f,
                                  const float *x, float *out)
{
    switch (type) {
    case RECD_FACTORS_BF16:
        dots_simd_type(RECD_FACTORS_BF16, rows, scales, idx, n, f, x, out);
        break;
    case RECD_FACTORS_FP16:
        dots_simd_type(RECD_FACTORS_FP16, rows, scales, idx, n, f, x, out);
        break;
    case RECD_FACTORS_INT8:
        dots_simd_type(RECD_FACTORS_INT8, rows, scales, idx, n, f, x, out);
        break;
    default:
        dots_simd_type(RECD_FACTORS_F32, rows, scales, idx, n, f, x, out);
        break;
    }
}
#endif

int recd_simd_available(void)
{
#ifdef HAVE_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

void recd_dots(int simd, uint32_t type, const void *rows, const float *scales, const uint32_t *idx, size_t n, size_t f,
               const float *x, float *out)
{
#ifdef HAVE_X86
    if (simd && recd_simd_available()) {
        dots_simd(type, rows, scales, idx, n, f, x, out);
        return;
    }
#endif
    dots_scalar(type, rows, scales, idx, n, f, x, out);
}

void recd_decode(int simd, uint32_t type, const void *in, size_t n, float *out)
{
#ifdef HAVE_X86
    if (simd && recd_simd_available()) {
        decode_simd(type, in, n, out);
        return;
    }
#endif
    for (size_t i = 0; i != n; ++i)
        out[i] = element(type, in, i);
}

/* recd_dots of two queries over the same n float32 rows: the same bits as two calls, with the row loads shared. */
static void dots_pair(int simd, const float *rows, const float *scales, size_t n, size_t f, const float *x0, const float *x1,
                      float *out0, float *out1)
{
#ifdef HAVE_X86
    if (simd && recd_simd_available()) {
        dots_pair_simd(rows, scales, n, f, x0, x1, out0, out1);
        return;
    }
#endif
    dots_scalar(RECD_FACTORS_F32, rows, scales, NULL, n, f, x0, out0);
    dots_scalar(RECD_FACTORS_F32, rows, scales, NULL, n, f, x1, out1);
}

const char *recd_scan_kernel(void)
{
    return recd_simd_available() ? "avx2+fma" : "scalar";
}

/* ---- the bf16 tiles' kernel (AVX-512 BF16) ------------------------------------------------------------------------- */

/* x's f factors as bf16 pairs (2p low, 2p + 1 high; an odd f padded with zero), rounded to nearest even as VCVTNEPS2BF16
 * rounds; returns |x - bf16(x)|_1, which the approximation bound needs. */
static double bf16_query_pairs(const float *x, size_t f, uint32_t *pairs)
{
    double err = 0;
    for (size_t p = 0; p != (f + 1) / 2; ++p) {
        uint32_t packed = 0;
        for (size_t h = 0; h != 2 && 2 * p + h < f; ++h) {
            uint16_t r = recd_bf16_round(x[2 * p + h]); /* a value past the largest bf16 saturates: the bound covers it */
            err += fabs((double)x[2 * p + h] - (double)recd_bf16_widen(r));
            packed |= (uint32_t)r << (16 * h);
        }
        pairs[p] = packed;
    }
    return err;
}

#ifdef HAVE_X86
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/*
 * The approximate scores of a block's nb items (whole tiles: the padding past nb is computed and never read) for m <= 4
 * queries (xs: their bf16 pairs) into out + j * stride. Four queries share each tile load; one query runs two tiles at
 * a time, so that two chains of VDPBF16PS overlap.
 */
BF16_TARGET static void bf16_tile_dots(const uint16_t *tiles, size_t nb, size_t pairs, const uint32_t *const *xs, size_t m,
                                       float *out, size_t stride)
{
    size_t n_tiles = (nb + BF16_TILE_ITEMS - 1) / BF16_TILE_ITEMS, tile_len = pairs * BF16_TILE_ITEMS * 2, t = 0;
    if (m == 1) {
        const uint32_t *x = xs[0];
        for (; t + 2 <= n_tiles; t += 2) {
            const uint16_t *p0 = tiles + t * tile_len, *p1 = p0 + tile_len;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0;
            for (size_t c = 0; c != pairs; ++c) {
                __m512bh xv = (__m512bh)_mm512_set1_epi32((int)x[c]);
                a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(p0 + c * 32), xv);
                a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(p1 + c * 32), xv);
            }
            _mm512_storeu_ps(out + t * BF16_TILE_ITEMS, a0);
            _mm512_storeu_ps(out + (t + 1) * BF16_TILE_ITEMS, a1);
        }
    }
    for (; t != n_tiles; ++t) { /* the rest, or every tile of a batch: up to four queries per load */
        const uint16_t *p = tiles + t * tile_len;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t c = 0; c != pairs; ++c) {
            __m512bh r = (__m512bh)_mm512_loadu_si512(p + c * 32);
            a0 = _mm512_dpbf16_ps(a0, r, (__m512bh)_mm512_set1_epi32((int)xs[0][c]));
            a1 = _mm512_dpbf16_ps(a1, r, (__m512bh)_mm512_set1_epi32((int)xs[1][c]));
            a2 = _mm512_dpbf16_ps(a2, r, (__m512bh)_mm512_set1_epi32((int)xs[2][c]));
            a3 = _mm512_dpbf16_ps(a3, r, (__m512bh)_mm512_set1_epi32((int)xs[3][c]));
        }
        _mm512_storeu_ps(out + t * BF16_TILE_ITEMS, a0);
        if (m > 1)
            _mm512_storeu_ps(out + stride + t * BF16_TILE_ITEMS, a1);
        if (m > 2)
            _mm512_storeu_ps(out + 2 * stride + t * BF16_TILE_ITEMS, a2);
        if (m > 3)
            _mm512_storeu_ps(out + 3 * stride + t * BF16_TILE_ITEMS, a3);
    }
}
#else
static void bf16_tile_dots(const uint16_t *tiles, size_t nb, size_t pairs, const uint32_t *const *xs, size_t m, float *out,
                           size_t stride)
{
    (void)tiles, (void)nb, (void)pairs, (void)xs, (void)m, (void)out, (void)stride; /* scan_rows never picks the tiles here */
}
#endif

/* ---- scores -------------------------------------------------------------------------------------------------------- */

float recd_scan_user_offset(const recd_scorer_t *s, int64_t user)
{
    float offset = s->global_bias;
    if (s->kind == RECD_MODEL_BIASED_MF && s->user_bias != NULL && user >= 0 && (uint64_t)user < s->n_users)
        offset += s->user_bias[user];
    return offset;
}

void recd_scan_add_biases(const recd_scorer_t *s, float *scores, size_t base, const uint32_t *idx, size_t n, float offset)
{
    const float *ib = s->item_bias;
    if (s->kind == RECD_MODEL_BPR && ib != NULL) {
        for (size_t j = 0; j != n; ++j)
            scores[j] = scores[j] + ib[idx != NULL ? idx[j] : base + j];
    } else if (s->kind == RECD_MODEL_BIASED_MF) {
        for (size_t j = 0; j != n; ++j)
            scores[j] = scores[j] + ((ib != NULL ? ib[idx != NULL ? idx[j] : base + j] : 0.0f) + offset);
    }
}

void recd_scorer_score(const recd_scorer_t *s, const float *user_vec, int64_t user, float *scores)
{
    size_t n = s->n_items;
    if (n == 0)
        return;
    if (s->kind == RECD_MODEL_POPULARITY || s->n_factors == 0) {
        memcpy(scores, s->popularity, n * sizeof(float));
        return;
    }
    recd_dots(1, RECD_FACTORS_F32, s->item_factors, NULL, NULL, n, s->n_factors, user_vec, scores);
    recd_scan_add_biases(s, scores, 0, NULL, n, recd_scan_user_offset(s, user));
}

/* ---- top-k heaps --------------------------------------------------------------------------------------------------- */

void recd_heap_sift_down(recd_scored_t *heap, size_t n, size_t i)
{
    recd_scored_t x = heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && recd_scored_worse(heap[c + 1].score, heap[c + 1].index, heap[c].score, heap[c].index))
            ++c;
        if (!recd_scored_worse(heap[c].score, heap[c].index, x.score, x.index))
            break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = x;
}

void recd_heap_sift_up(recd_scored_t *heap, size_t i)
{
    recd_scored_t x = heap[i];
    while (i != 0) {
        size_t p = (i - 1) / 2;
        if (!recd_scored_worse(x.score, x.index, heap[p].score, heap[p].index))
            break;
        heap[i] = heap[p];
        i = p;
    }
    heap[i] = x;
}

/* Repeatedly moves the worst to the end, leaving the best first. */
void recd_heap_sort(recd_scored_t *heap, size_t len)
{
    for (size_t end = len; end > 1; --end) {
        recd_scored_t t = heap[0];
        heap[0] = heap[end - 1];
        heap[end - 1] = t;
        recd_heap_sift_down(heap, end - 1, 0);
    }
}

/*
 * One query's top list while items are offered to it in ascending index order: a min-heap (worst at heap[0]) of the best
 * `len` finite, non-excluded scores so far. Because indexes ascend, a later equal score never beats the root: a strict >
 * against it is the whole test, and it can be made on eight scores at once.
 */
typedef struct st_topk_t {
    recd_scored_t *heap;
    size_t len, cap;
    const uint32_t *excl, *excl_end; /* sorted; the cursor only moves forward */
} topk_t;

static inline int is_excluded(topk_t *t, uint32_t item)
{
    while (t->excl != t->excl_end && *t->excl < item)
        ++t->excl;
    return t->excl != t->excl_end && *t->excl == item;
}

/*
 * Sets the scores of t's excluded items among base .. base + n - 1 to -INFINITY, moving its cursor past them: a known
 * user's own items score high, and offering each of them only to find it excluded cost a mispredicted branch apiece.
 */
static inline void mask_excluded(topk_t *t, float *scores, size_t base, size_t n)
{
    while (t->excl != t->excl_end && *t->excl < base + n) {
        if (*t->excl >= base)
            scores[*t->excl - base] = -INFINITY;
        ++t->excl;
    }
}

/* Bit j set when scores[j] is finite and above thr (thr finite or -INFINITY), j < 8. */
static inline unsigned above8(const float *scores, float thr)
{
#if defined(__SSE2__)
    __m128 t = _mm_set1_ps(thr), inf = _mm_set1_ps(INFINITY);
    __m128 lo = _mm_loadu_ps(scores), hi = _mm_loadu_ps(scores + 4);
    unsigned m_lo = (unsigned)_mm_movemask_ps(_mm_and_ps(_mm_cmpgt_ps(lo, t), _mm_cmplt_ps(lo, inf)));
    unsigned m_hi = (unsigned)_mm_movemask_ps(_mm_and_ps(_mm_cmpgt_ps(hi, t), _mm_cmplt_ps(hi, inf)));
    return m_lo | m_hi << 4;
#else
    unsigned m = 0;
    for (unsigned j = 0; j != 8; ++j)
        m |= (unsigned)(scores[j] > thr && scores[j] < INFINITY) << j;
    return m;
#endif
}

static inline void offer_one(topk_t *t, uint32_t item, float s)
{
    if (t->len < t->cap) {
        if (isfinite(s) && !is_excluded(t, item)) {
            t->heap[t->len] = (recd_scored_t){item, s};
            recd_heap_sift_up(t->heap, t->len++);
        }
    } else if (s > t->heap[0].score && s < INFINITY && !is_excluded(t, item)) {
        t->heap[0] = (recd_scored_t){item, s};
        recd_heap_sift_down(t->heap, t->len, 0);
    }
}

/* Offers n scores of the items base + j (or idx[j], ascending) to t. */
static void offer(topk_t *t, const float *scores, size_t n, size_t base, const uint32_t *idx)
{
    size_t j = 0;
    if (t->cap == 0)
        return;
    for (; j != n && t->len != t->cap; ++j)
        offer_one(t, (uint32_t)(idx != NULL ? idx[j] : base + j), scores[j]);
    for (; j + 8 <= n; j += 8) {
        for (unsigned m = above8(scores + j, t->heap[0].score); m != 0; m &= m - 1) {
            size_t b = j + (size_t)__builtin_ctz(m);
            offer_one(t, (uint32_t)(idx != NULL ? idx[b] : base + b), scores[b]);
        }
    }
    for (; j != n; ++j)
        offer_one(t, (uint32_t)(idx != NULL ? idx[j] : base + j), scores[j]);
}

size_t recd_topk(const float *scores, size_t n, size_t k, recd_scored_t *out)
{
    topk_t t = {.heap = out, .cap = k};
    offer(&t, scores, n, 0, NULL);
    recd_heap_sort(out, t.len);
    return t.len;
}

/* ---- the batched scan ---------------------------------------------------------------------------------------------- */

typedef struct st_query_state_t {
    topk_t top;   /* the answer (exclusions, and the heap of a float32 scan) */
    float offset; /* user_offset */
    float thr;    /* approximate: an item scoring above it is a candidate */
    double band;  /* approximate: twice the bound on |float32 score - approximate score| of any item */
    float *kbest; /* approximate: min-heap of the k best approximate scores so far */
    size_t kbest_len, kbest_cap;
    int exact; /* 1: scanned over the float32 rows (a float32 scan, or an approximate one that had no usable bound) */
} query_state_t;

/* A query's candidates: the items whose approximate score was above its threshold when they were scanned, in scan order. */
typedef struct st_cand_list_t {
    uint32_t *idx;
    float *score;
    size_t len, cap;
} cand_list_t;

struct st_recd_scan_scratch_t {
    float *tile;
    size_t tile_cap;
    float *decoded; /* a block of compact rows as float32, shared by the queries of a batch */
    size_t decoded_cap;
    query_state_t *qs;
    size_t qs_cap;
    uint32_t *excl; /* every query's exclusions, sorted per query, one after the other */
    size_t excl_cap;
    cand_list_t *lists; /* one per query; kept (with their room) from call to call */
    size_t lists_cap;
    uint32_t *cand_idx;
    size_t cand_idx_cap;
    uint32_t *qpairs; /* the bf16 tiles' queries: each query's factors as bf16 pairs */
    size_t qpairs_cap;
    float *kbest; /* every approximate query's k best so far, one heap after the other */
    size_t kbest_cap;
    size_t *live; /* the queries the blocked pass scans (not those left to a float32 scan) */
    size_t live_cap;
};

recd_scan_scratch_t *recd_scan_scratch_new(void)
{
    return recd_xcalloc(1, sizeof(recd_scan_scratch_t));
}

void recd_scan_scratch_free(recd_scan_scratch_t *s)
{
    if (s == NULL)
        return;
    free(s->tile);
    free(s->decoded);
    free(s->qs);
    free(s->excl);
    for (size_t i = 0; i != s->lists_cap; ++i) {
        free(s->lists[i].idx);
        free(s->lists[i].score);
    }
    free(s->kbest);
    free(s->live);
    free(s->lists);
    free(s->cand_idx);
    free(s->qpairs);
    free(s);
}

/* p, or a larger buffer in its place, holding at least n elements of size sz (the contents are not kept). */
static void *grow(void *p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap)
        return p;
    free(p);
    *cap = *cap * 2 > n ? *cap * 2 : n;
    return recd_xmalloc(*cap * sz);
}

/* Room in l for n more entries, and 16 past them (the AVX-512 offer stores whole registers). */
static void cand_reserve(cand_list_t *l, size_t n)
{
    if (l->len + n + 16 <= l->cap)
        return;
    l->cap = 2 * (l->len + n + 16);
    l->idx = recd_xreallocarray(l->idx, l->cap, sizeof(*l->idx));
    l->score = recd_xreallocarray(l->score, l->cap, sizeof(*l->score));
}

static int is_ascending(const uint32_t *v, size_t n)
{
    for (size_t i = 1; i < n; ++i)
        if (v[i] < v[i - 1])
            return 0;
    return 1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The largest float below x: an item scoring at least x scores above it, whatever x's rounding to float did (one step
 * of the bit pattern below (float)x). */
static inline float float_below(double x)
{
    float v = (float)x;
    if (!(v > -FLT_MAX))
        return -INFINITY; /* rounded to -inf (or NaN): every finite score is above it */
    uint32_t bits;
    memcpy(&bits, &v, 4);
    if ((bits & 0x7fffffff) == 0)
        bits = 0x80000001; /* -0 and +0: the smallest negative subnormal */
    else if (bits & 0x80000000)
        ++bits; /* negative: away from zero */
    else
        --bits;
    memcpy(&v, &bits, 4);
    return v;
}

/*
 * A bound on |float32 score - approximate score| of any item for the query x, both as computed in IEEE single: the
 * approximate rows' error, |x . (y - y')| <= min(max_error |x|_1, max_row_error |x|_2); the query's own rounding
 * (x_error_l1 = |x - x'|_1, 0 when the query is used as it is), times the largest approximate element; and the rounding
 * of the dot products (at most f + 2 steps of 2^-24 of the magnitude each, for the float32 and the approximate one), the
 * int8 scale and the bias additions, which 4 (f + 4) units of 2^-24 of the magnitude cover with room; and what flushing
 * subnormals to zero (VDPBF16PS does) can lose. NaN when x is not finite or the bounds are not known, infinite when the
 * magnitude is so large that a score could overflow.
 */
static double approximation_bound(const recd_compact_bounds_t *b, uint32_t f, const float *x, double x_error_l1, float offset)
{
    if (!b->known)
        return NAN;
    double l1 = 0, l2 = 0, x_max = 0;
    for (size_t j = 0; j != f; ++j) {
        double v = fabs((double)x[j]);
        l1 += v;
        l2 += v * v;
        x_max = v > x_max ? v : x_max;
    }
    double y_max = b->max_abs + b->max_error;
    double mag = (l1 + x_error_l1) * y_max + b->max_bias + fabs((double)offset);
    if (!(mag < FLT_MAX / 4))
        return isnan(mag) ? NAN : INFINITY;
    return fmin(b->max_error * l1, b->max_row_error * sqrt(l2)) + x_error_l1 * y_max + 4.0 * (f + 4) * 0x1p-24 * mag +
           f * 0x1p-125 * (1 + y_max + x_max);
}

/* The k best approximate scores so far of a query, as a min-heap of floats (ties need no order here): x joins them when
 * there is room, or when it beats the worst, h[0]. */
static inline __attribute__((always_inline)) void kbest_offer(query_state_t *st, float x)
{
    float *h = st->kbest;
    size_t i, n = st->kbest_len;
    if (n < st->kbest_cap) {
        for (i = st->kbest_len++; i != 0 && x < h[(i - 1) / 2]; i = (i - 1) / 2)
            h[i] = h[(i - 1) / 2];
        h[i] = x;
        return;
    }
    if (!(x > h[0]))
        return;
    for (i = 0;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1] < h[c])
            ++c;
        if (!(h[c] < x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* The threshold from the k best so far: their k-th best - band, once there are k (-inf before). */
static inline void kbest_threshold(query_state_t *st)
{
    if (st->kbest_len == st->kbest_cap)
        st->thr = float_below((double)st->kbest[0] - st->band);
}

#ifdef HAVE_X86
/* offer_approximate sixteen scores at a time (room reserved): the threshold rises after each sixteen. */
BF16_TARGET static void offer_approximate_avx512(query_state_t *st, cand_list_t *cl, const float *scores, size_t n, size_t base)
{
    __m512 inf = _mm512_set1_ps(INFINITY);
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t len = cl->len;
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 in = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(in, scores + j);
        __mmask16 m = in & _mm512_cmp_ps_mask(v, _mm512_set1_ps(st->thr), _CMP_GT_OQ) & _mm512_cmp_ps_mask(v, inf, _CMP_LT_OQ);
        if (m == 0)
            continue;
        /* compress in registers, then a plain store: a compressing store to memory is slow on Zen 4 */
        _mm512_storeu_ps(cl->score + len, _mm512_maskz_compress_ps(m, v));
        __m512i ids = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(base + j)));
        _mm512_storeu_si512(cl->idx + len, _mm512_maskz_compress_epi32(m, ids));
        for (size_t end = len + (size_t)__builtin_popcount(m); len != end; ++len)
            kbest_offer(st, cl->score[len]);
        kbest_threshold(st);
    }
    cl->len = len;
}
#endif

/*
 * Offers n approximate scores of the items base + j to a query: every finite score above its threshold becomes a
 * candidate, and the threshold rises with the k best so far (kbest_offer): their k-th best - band. The tiles' scans
 * filter with AVX-512 (avx512: their CPU has it); compact rows use the portable filter, which every CPU runs and the
 * compact tests exercise.
 */
static void offer_approximate(query_state_t *st, cand_list_t *cl, const float *scores, size_t n, size_t base, int avx512)
{
    cand_reserve(cl, n);
#ifdef HAVE_X86
    if (avx512) {
        offer_approximate_avx512(st, cl, scores, n, base);
        return;
    }
#else
    (void)avx512;
#endif
    size_t first = cl->len;
    {
        size_t j = 0, len = cl->len;
        for (; j + 8 <= n; j += 8) {
            for (unsigned m = above8(scores + j, st->thr); m != 0; m &= m - 1) {
                size_t b = j + (size_t)__builtin_ctz(m);
                cl->idx[len] = (uint32_t)(base + b);
                cl->score[len++] = scores[b];
            }
        }
        for (; j != n; ++j) {
            if (scores[j] > st->thr && scores[j] < INFINITY) {
                cl->idx[len] = (uint32_t)(base + j);
                cl->score[len++] = scores[j];
            }
        }
        cl->len = len;
    }
    /* the new candidates raise the k best so far, and with them the threshold of the blocks to come */
    for (size_t j = first; j != cl->len; ++j)
        kbest_offer(st, cl->score[j]);
    kbest_threshold(st);
}

/*
 * An approximate query's answer: its candidates within band of the k-th best approximate score, scored exactly from the
 * float32 rows, best k of them. That is the exact top k. Let a_k be the k-th best approximate score of all items: the k
 * items scoring at least a_k approximately score at least a_k - band / 2 exactly, so the exact k-th best does too, and
 * any item that scores that much exactly scores at least a_k - band approximately. Every threshold the query had came
 * from the k best so far, so was at most a_k - band: such an item became a candidate.
 */
static void rerank(const recd_scorer_t *s, recd_scan_query_t *q, query_state_t *st, cand_list_t *cl, recd_scan_scratch_t *sc)
{
    float thr = st->thr; /* the final threshold: from the k best themselves (-inf when there were fewer) */
    sc->cand_idx = grow(sc->cand_idx, &sc->cand_idx_cap, cl->len, sizeof(uint32_t));
    size_t n = 0;
    for (size_t j = 0; j != cl->len; ++j)
        if (cl->score[j] > thr)
            sc->cand_idx[n++] = cl->idx[j]; /* ascending: pushed in scan order */
    sc->tile = grow(sc->tile, &sc->tile_cap, n, sizeof(float));
    recd_dots(1, RECD_FACTORS_F32, s->item_factors, NULL, sc->cand_idx, n, s->n_factors, q->vec, sc->tile);
    recd_scan_add_biases(s, sc->tile, 0, sc->cand_idx, n, st->offset);
    topk_t t = {.heap = q->out, .cap = q->k}; /* exclusions never became candidates */
    offer(&t, sc->tile, n, 0, sc->cand_idx);
    recd_heap_sort(q->out, t.len);
    q->n_out = t.len;
    q->n_candidates = n;
}

/* Offers a block's scores to a query: to its candidates when approximate (cl given), else to its answer. */
static inline void offer_scores(query_state_t *st, cand_list_t *cl, const float *scores, size_t n, size_t base)
{
    if (cl != NULL)
        offer_approximate(st, cl, scores, n, base, 0);
    else
        offer(&st->top, scores, n, base, NULL);
}

int recd_scan_reads_compact(const recd_scorer_t *s)
{
    return s->kind != RECD_MODEL_POPULARITY && s->n_factors != 0 && s->factor_type != RECD_FACTORS_F32 &&
           s->item_factors_compact != NULL && s->n_items * s->n_factors * sizeof(float) > COMPACT_MIN_BYTES;
}

/* What a scan of s reads to choose candidates. */
typedef enum en_scan_rows_t { ROWS_F32, ROWS_COMPACT, ROWS_BF16_TILES } scan_rows_t;

static scan_rows_t scan_rows(const recd_scorer_t *s)
{
    if (s->kind == RECD_MODEL_POPULARITY || s->n_factors == 0)
        return ROWS_F32;
    if (s->bf16_tiles != NULL && s->bf16_tiles->n_items == s->n_items && s->bf16_tiles->n_factors == s->n_factors &&
        recd_bf16_tiles_supported())
        return ROWS_BF16_TILES;
    return recd_scan_reads_compact(s) ? ROWS_COMPACT : ROWS_F32;
}

/* Asks for the part-th of `parts` slices of bytes at p to be brought into L2 (the next block, while this one is scanned). */
static inline void prefetch_slice(const uint8_t *p, size_t bytes, size_t part, size_t parts)
{
    for (size_t at = bytes * part / parts / 64 * 64, end = bytes * (part + 1) / parts; at < end; at += 64)
        __builtin_prefetch(p + at, 0, 2);
}

/* The blocked pass over every item for n queries: exact over float32 rows, or approximate, then re-ranked exactly. */
static void scan_rows_pass(const recd_scorer_t *s, scan_rows_t rows_kind, recd_scan_query_t *q, size_t n, recd_scan_scratch_t *sc)
{
    size_t n_items = s->n_items, f = s->n_factors;
    int popularity = s->kind == RECD_MODEL_POPULARITY || f == 0;
    uint32_t type = rows_kind == ROWS_COMPACT ? s->factor_type : RECD_FACTORS_F32;
    const recd_bf16_tiles_t *tiles = rows_kind == ROWS_BF16_TILES ? s->bf16_tiles : NULL;
    const void *rows = type == RECD_FACTORS_F32 ? (const void *)s->item_factors : s->item_factors_compact;
    const float *scales = type == RECD_FACTORS_INT8 ? s->item_scales : NULL;
    int simd = recd_simd_available();
    int approximate = rows_kind != ROWS_F32;

    /* Per-query state: sorted exclusions, the heap, the bias offset and, when approximate, the band and the candidates. */
    size_t n_excl = 0;
    for (size_t i = 0; i != n; ++i)
        n_excl += q[i].n_excluded;
    sc->qs = grow(sc->qs, &sc->qs_cap, n, sizeof(query_state_t));
    sc->excl = grow(sc->excl, &sc->excl_cap, n_excl, sizeof(uint32_t));
    if (approximate && sc->lists_cap < n) {
        sc->lists = recd_xreallocarray(sc->lists, n, sizeof(cand_list_t));
        memset(sc->lists + sc->lists_cap, 0, (n - sc->lists_cap) * sizeof(cand_list_t));
        sc->lists_cap = n;
    }
    if (tiles != NULL)
        sc->qpairs = grow(sc->qpairs, &sc->qpairs_cap, n * tiles->pairs, sizeof(uint32_t));
    size_t n_kbest = 0;
    for (size_t i = 0; i != n && approximate; ++i)
        n_kbest += q[i].k;
    sc->kbest = grow(sc->kbest, &sc->kbest_cap, n_kbest, sizeof(float));
    size_t excl_at = 0, kbest_at = 0;
    for (size_t i = 0; i != n; ++i) {
        query_state_t *st = &sc->qs[i];
        const uint32_t *excl = q[i].excluded;
        /* a known user's training items alone arrive sorted already (the artifact's CSR row): no copy, no sort */
        if (!is_ascending(q[i].excluded, q[i].n_excluded)) {
            uint32_t *sorted = sc->excl + excl_at;
            memcpy(sorted, q[i].excluded, q[i].n_excluded * sizeof(uint32_t));
            qsort(sorted, q[i].n_excluded, sizeof(uint32_t), cmp_u32);
            excl = sorted;
            excl_at += q[i].n_excluded;
        }
        *st = (query_state_t){.top = {.heap = q[i].out, .cap = q[i].k, .excl = excl},
                              .offset = recd_scan_user_offset(s, q[i].user),
                              .thr = -INFINITY,
                              .exact = !approximate};
        st->top.excl_end = q[i].n_excluded != 0 ? excl + q[i].n_excluded : excl;
        q[i].n_candidates = 0;
        if (approximate) {
            double x_error = tiles != NULL ? bf16_query_pairs(q[i].vec, f, sc->qpairs + i * tiles->pairs) : 0.0;
            const recd_compact_bounds_t *b = tiles != NULL ? &tiles->bounds : &s->compact_bounds;
            st->band = 2 * approximation_bound(b, (uint32_t)f, q[i].vec, x_error, st->offset);
            st->exact = !(st->band < INFINITY); /* no bound (NaN or infinite): this query is scanned over the float32 rows */
            sc->lists[i].len = 0;
            st->kbest = sc->kbest + kbest_at;
            st->kbest_cap = q[i].k;
            kbest_at += q[i].k;
        }
    }

    /*
     * The blocked pass: every query scores a block of rows while it is in cache, and keeps its best on the fly. A batch
     * decodes a block of compact rows to float32 once and scans that with the float32 kernel: the values are exact, so
     * the bits are those of the compact kernel (fma of x with the converted value), only the conversion is shared.
     */
    size_t row_bytes = popularity ? 4 : tiles != NULL ? 4 * (size_t)tiles->pairs : f * element_size(type);
    size_t block = popularity ? BLOCK_BYTES / 4 : BLOCK_BYTES / (f * sizeof(float));
    block = block < BF16_TILE_ITEMS ? BF16_TILE_ITEMS : block / BF16_TILE_ITEMS * BF16_TILE_ITEMS;
    int share_decoding = type != RECD_FACTORS_F32 && n > 1;
    /* rows that stay in L2 from one scan to the next gain nothing from a prefetch, which costs 10% of a MovieLens scan */
    int prefetch = n_items * row_bytes > PREFETCH_MIN_BYTES;
    sc->tile = grow(sc->tile, &sc->tile_cap, 4 * block, sizeof(float));
    if (share_decoding)
        sc->decoded = grow(sc->decoded, &sc->decoded_cap, block * f, sizeof(float));
    sc->live = grow(sc->live, &sc->live_cap, n, sizeof(size_t));
    size_t *live = sc->live, n_live = 0;
    for (size_t i = 0; i != n; ++i)
        if (!approximate || !sc->qs[i].exact)
            live[n_live++] = i;
    for (size_t b = 0; b < n_items && n_live != 0; b += block) {
        size_t nb = n_items - b < block ? n_items - b : block;
        const uint8_t *next_rows = (const uint8_t *)rows + (b + nb) * row_bytes;
        size_t next_bytes = (b + nb < n_items ? (n_items - b - nb < block ? n_items - b - nb : block) : 0) * row_bytes;
        if (!prefetch)
            next_bytes = 0;
        size_t i = 0;
        if (tiles != NULL) { /* four queries at a time share the tile loads */
            const uint16_t *block_tiles = tiles->data + (b / BF16_TILE_ITEMS) * tiles->pairs * BF16_TILE_ITEMS * 2;
            next_rows = (const uint8_t *)(block_tiles + (nb / BF16_TILE_ITEMS) * tiles->pairs * BF16_TILE_ITEMS * 2);
            for (; i < n_live; i += 4) {
                size_t m = n_live - i < 4 ? n_live - i : 4;
                const uint32_t *xs[4];
                for (size_t j = 0; j != 4; ++j)
                    xs[j] = sc->qpairs + live[i + (j < m ? j : 0)] * tiles->pairs;
                prefetch_slice(next_rows, next_bytes, i / 4, (n_live + 3) / 4);
                bf16_tile_dots(block_tiles, nb, tiles->pairs, xs, m, sc->tile, block);
                for (size_t j = 0; j != m; ++j) {
                    query_state_t *st = &sc->qs[live[i + j]];
                    float *scores = sc->tile + j * block;
                    recd_scan_add_biases(s, scores, b, NULL, nb, st->offset);
                    mask_excluded(&st->top, scores, b, nb);
                    offer_approximate(st, &sc->lists[live[i + j]], scores, nb, b, 1);
                }
            }
            continue;
        }
        const void *block_rows = (const uint8_t *)rows + b * row_bytes;
        uint32_t block_type = type;
        if (share_decoding) {
            recd_decode(simd, type, block_rows, nb * f, sc->decoded);
            block_rows = sc->decoded;
            block_type = RECD_FACTORS_F32;
        }
        if (!popularity && block_type == RECD_FACTORS_F32) { /* two queries at a time share the row loads */
            float *tile1 = sc->tile + block;
            for (; i + 2 <= n_live; i += 2) {
                query_state_t *st0 = &sc->qs[live[i]], *st1 = &sc->qs[live[i + 1]];
                prefetch_slice(next_rows, next_bytes, i / 2, n_live / 2);
                dots_pair(simd, block_rows, scales != NULL ? scales + b : NULL, nb, f, q[live[i]].vec, q[live[i + 1]].vec, sc->tile,
                          tile1);
                recd_scan_add_biases(s, sc->tile, b, NULL, nb, st0->offset);
                recd_scan_add_biases(s, tile1, b, NULL, nb, st1->offset);
                mask_excluded(&st0->top, sc->tile, b, nb);
                mask_excluded(&st1->top, tile1, b, nb);
                offer_scores(st0, approximate ? &sc->lists[live[i]] : NULL, sc->tile, nb, b);
                offer_scores(st1, approximate ? &sc->lists[live[i + 1]] : NULL, tile1, nb, b);
            }
        }
        for (; i != n_live; ++i) {
            query_state_t *st = &sc->qs[live[i]];
            if (popularity) {
                offer(&st->top, s->popularity + b, nb, b, NULL);
                continue;
            }
            recd_dots(simd, block_type, block_rows, scales != NULL ? scales + b : NULL, NULL, nb, f, q[live[i]].vec, sc->tile);
            recd_scan_add_biases(s, sc->tile, b, NULL, nb, st->offset);
            mask_excluded(&st->top, sc->tile, b, nb);
            offer_scores(st, approximate ? &sc->lists[live[i]] : NULL, sc->tile, nb, b);
        }
    }

    size_t *unbounded = NULL, n_unbounded = 0;
    for (size_t i = 0; i != n; ++i) {
        query_state_t *st = &sc->qs[i];
        if (!approximate) {
            recd_heap_sort(q[i].out, st->top.len);
            q[i].n_out = st->top.len;
        } else if (!st->exact) {
            rerank(s, &q[i], st, &sc->lists[i], sc);
        } else {
            if (unbounded == NULL)
                unbounded = recd_xmalloc(n * sizeof(size_t));
            unbounded[n_unbounded++] = i;
        }
    }
    if (n_unbounded != 0) { /* rare (a vector that is not finite, say): one float32 pass for all of them together */
        recd_scan_query_t *again = recd_xmalloc(n_unbounded * sizeof(*again));
        for (size_t j = 0; j != n_unbounded; ++j)
            again[j] = q[unbounded[j]];
        scan_rows_pass(s, ROWS_F32, again, n_unbounded, sc);
        for (size_t j = 0; j != n_unbounded; ++j) {
            q[unbounded[j]].n_out = again[j].n_out;
            q[unbounded[j]].n_candidates = n_items;
        }
        free(again);
    }
    free(unbounded);
}

/* The exact blocked pass over every item for n queries. */
static void scan_exact(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, recd_scan_scratch_t *scratch)
{
    recd_scan_scratch_t *sc = scratch != NULL ? scratch : recd_scan_scratch_new();
    scan_rows_pass(s, scan_rows(s), q, n, sc);
    if (sc != scratch)
        recd_scan_scratch_free(sc);
}

void recd_scan_topk(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, recd_scan_scratch_t *scratch)
{
    size_t n_approximate = 0;
    if (s->ann != NULL)
        for (size_t i = 0; i != n; ++i)
            n_approximate += q[i].approximate != 0;
    if (n_approximate == 0) {
        scan_exact(s, q, n, scratch);
        return;
    }
    /* a batch may mix both: the approximate queries search the index one by one, the others share one exact pass */
    recd_scan_query_t *exact = recd_xmalloc(sizeof(*exact) * (n - n_approximate + 1));
    size_t n_exact = 0;
    for (size_t i = 0; i != n; ++i) {
        if (q[i].approximate)
            recd_ann_topk(s, &q[i], 1);
        else
            exact[n_exact++] = q[i];
    }
    if (n_exact != 0)
        scan_exact(s, exact, n_exact, scratch);
    for (size_t i = 0, j = 0; i != n; ++i)
        if (!q[i].approximate) {
            q[i].n_out = exact[j].n_out;
            q[i].n_candidates = exact[j++].n_candidates;
        }
    free(exact);
}
