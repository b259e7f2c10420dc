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
#include "models/scan.h"
#include "base/alloc.h"

#define LANES 8
/* Item rows per block: about this many bytes of float32 rows, so a block stays in L1/L2 for the whole batch. */
#define BLOCK_BYTES 16384
/* Candidates a compact scan keeps per query before the exact re-rank: max(CAND_FACTOR * k, k + CAND_MIN_EXTRA). */
#define CAND_FACTOR 4
/* Compact factors are read only when the float32 rows are larger than this: below, they stay in cache and the exact scan
 * is faster than choosing and re-ranking candidates (1,682 x 64 items: 8 us against 20). */
#define COMPACT_MIN_BYTES (1u << 20)
#define CAND_MIN_EXTRA 64

/* ---- element loads of each factor type ----------------------------------------------------------------------------- */

static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

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
        return bf16_to_float(((const uint16_t *)row)[j]);
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
    topk_t top;   /* over the candidates (compact) or the answer itself (float32) */
    float offset; /* user_offset */
} query_state_t;

struct st_recd_scan_scratch_t {
    float *tile;
    size_t tile_cap;
    float *decoded; /* a block of compact rows as float32, shared by the queries of a batch */
    size_t decoded_cap;
    query_state_t *qs;
    size_t qs_cap;
    uint32_t *excl; /* every query's exclusions, sorted per query, one after the other */
    size_t excl_cap;
    recd_scored_t *cand; /* the compact scan's candidate heaps, one after the other */
    size_t cand_cap;
    uint32_t *cand_idx;
    size_t cand_idx_cap;
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
    free(s->cand);
    free(s->cand_idx);
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

static int cmp_scored_index(const void *a, const void *b)
{
    uint32_t x = ((const recd_scored_t *)a)->index, y = ((const recd_scored_t *)b)->index;
    return x < y ? -1 : x > y;
}

/* How many candidates a compact scan keeps for a query asking k. */
static size_t candidates_for(size_t k, size_t n_items)
{
    size_t c = k * CAND_FACTOR > k + CAND_MIN_EXTRA ? k * CAND_FACTOR : k + CAND_MIN_EXTRA;
    return c < n_items ? c : n_items;
}

/* Re-ranks a query's candidates exactly from the float32 rows into its answer. */
static void rerank(const recd_scorer_t *s, recd_scan_query_t *q, query_state_t *st, recd_scan_scratch_t *sc)
{
    size_t n = st->top.len;
    qsort(st->top.heap, n, sizeof(recd_scored_t), cmp_scored_index);
    sc->cand_idx = grow(sc->cand_idx, &sc->cand_idx_cap, n, sizeof(uint32_t));
    sc->tile = grow(sc->tile, &sc->tile_cap, n, sizeof(float));
    for (size_t j = 0; j != n; ++j)
        sc->cand_idx[j] = st->top.heap[j].index;
    recd_dots(1, RECD_FACTORS_F32, s->item_factors, NULL, sc->cand_idx, n, s->n_factors, q->vec, sc->tile);
    recd_scan_add_biases(s, sc->tile, 0, sc->cand_idx, n, st->offset);
    topk_t t = {.heap = q->out, .cap = q->k}; /* exclusions were applied when the candidates were chosen */
    offer(&t, sc->tile, n, 0, sc->cand_idx);
    recd_heap_sort(q->out, t.len);
    q->n_out = t.len;
}

int recd_scan_reads_compact(const recd_scorer_t *s)
{
    return s->kind != RECD_MODEL_POPULARITY && s->n_factors != 0 && s->factor_type != RECD_FACTORS_F32 &&
           s->item_factors_compact != NULL && s->n_items * s->n_factors * sizeof(float) > COMPACT_MIN_BYTES;
}

/* Asks for the part-th of `parts` slices of bytes at p to be brought into L2 (the next block, while this one is scanned). */
static inline void prefetch_slice(const uint8_t *p, size_t bytes, size_t part, size_t parts)
{
    for (size_t at = bytes * part / parts / 64 * 64, end = bytes * (part + 1) / parts; at < end; at += 64)
        __builtin_prefetch(p + at, 0, 2);
}

/* The exact blocked pass over every item for n queries. */
static void scan_exact(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, recd_scan_scratch_t *scratch)
{
    recd_scan_scratch_t *sc = scratch != NULL ? scratch : recd_scan_scratch_new();
    size_t n_items = s->n_items, f = s->n_factors;
    int popularity = s->kind == RECD_MODEL_POPULARITY || f == 0;
    uint32_t type = recd_scan_reads_compact(s) ? s->factor_type : RECD_FACTORS_F32;
    const void *rows = type == RECD_FACTORS_F32 ? (const void *)s->item_factors : s->item_factors_compact;
    const float *scales = type == RECD_FACTORS_INT8 ? s->item_scales : NULL;
    int simd = recd_simd_available();

    /* Per-query state: sorted exclusions, the heap (the answer itself, or candidates), the bias offset. */
    size_t n_excl = 0, n_cand = 0;
    for (size_t i = 0; i != n; ++i) {
        n_excl += q[i].n_excluded;
        n_cand += type != RECD_FACTORS_F32 ? candidates_for(q[i].k, n_items) : 0;
    }
    sc->qs = grow(sc->qs, &sc->qs_cap, n, sizeof(query_state_t));
    sc->excl = grow(sc->excl, &sc->excl_cap, n_excl, sizeof(uint32_t));
    sc->cand = grow(sc->cand, &sc->cand_cap, n_cand, sizeof(recd_scored_t));
    size_t excl_at = 0, cand_at = 0;
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
        st->top = (topk_t){.excl = excl, .excl_end = q[i].n_excluded != 0 ? excl + q[i].n_excluded : excl};
        if (type == RECD_FACTORS_F32) {
            st->top.heap = q[i].out;
            st->top.cap = q[i].k;
        } else {
            st->top.heap = sc->cand + cand_at;
            st->top.cap = candidates_for(q[i].k, n_items);
            cand_at += st->top.cap;
        }
        st->offset = recd_scan_user_offset(s, q[i].user);
    }

    /*
     * The blocked pass: every query scores a block of rows while it is in cache, and keeps its best on the fly. A batch
     * decodes a block of compact rows to float32 once and scans that with the float32 kernel: the values are exact, so
     * the bits are those of the compact kernel (fma of x with the converted value), only the conversion is shared.
     */
    size_t row_bytes = popularity ? 4 : f * element_size(type);
    size_t block = popularity ? BLOCK_BYTES / 4 : BLOCK_BYTES / (f * sizeof(float));
    block = block < LANES ? LANES : block / LANES * LANES;
    int share_decoding = type != RECD_FACTORS_F32 && n > 1;
    sc->tile = grow(sc->tile, &sc->tile_cap, 2 * block, sizeof(float));
    if (share_decoding)
        sc->decoded = grow(sc->decoded, &sc->decoded_cap, block * f, sizeof(float));
    for (size_t b = 0; b < n_items; b += block) {
        size_t nb = n_items - b < block ? n_items - b : block;
        const void *block_rows = (const uint8_t *)rows + b * row_bytes;
        uint32_t block_type = type;
        if (share_decoding) {
            recd_decode(simd, type, block_rows, nb * f, sc->decoded);
            block_rows = sc->decoded;
            block_type = RECD_FACTORS_F32;
        }
        size_t i = 0;
        if (!popularity && block_type == RECD_FACTORS_F32) { /* two queries at a time share the row loads */
            float *tile1 = sc->tile + block;
            const uint8_t *next_rows = (const uint8_t *)rows + (b + nb) * row_bytes;
            size_t next_bytes = (b + nb < n_items ? (n_items - b - nb < block ? n_items - b - nb : block) : 0) * row_bytes;
            for (; i + 2 <= n; i += 2) {
                query_state_t *st0 = &sc->qs[i], *st1 = &sc->qs[i + 1];
                prefetch_slice(next_rows, next_bytes, i / 2, n / 2);
                dots_pair(simd, block_rows, scales != NULL ? scales + b : NULL, nb, f, q[i].vec, q[i + 1].vec, sc->tile, tile1);
                recd_scan_add_biases(s, sc->tile, b, NULL, nb, st0->offset);
                recd_scan_add_biases(s, tile1, b, NULL, nb, st1->offset);
                offer(&st0->top, sc->tile, nb, b, NULL);
                offer(&st1->top, tile1, nb, b, NULL);
            }
        }
        for (; i != n; ++i) {
            query_state_t *st = &sc->qs[i];
            if (popularity) {
                offer(&st->top, s->popularity + b, nb, b, NULL);
                continue;
            }
            recd_dots(simd, block_type, block_rows, scales != NULL ? scales + b : NULL, NULL, nb, f, q[i].vec, sc->tile);
            recd_scan_add_biases(s, sc->tile, b, NULL, nb, st->offset);
            offer(&st->top, sc->tile, nb, b, NULL);
        }
    }

    for (size_t i = 0; i != n; ++i) {
        query_state_t *st = &sc->qs[i];
        if (type == RECD_FACTORS_F32) {
            recd_heap_sort(q[i].out, st->top.len);
            q[i].n_out = st->top.len;
        } else {
            rerank(s, &q[i], st, sc);
        }
    }
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
        if (!q[i].approximate)
            q[i].n_out = exact[j++].n_out;
    free(exact);
}
