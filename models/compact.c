/* compact.c: compact item factors (bf16, fp16, int8 with per-row scales) and the recall of a compact scan against float32. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif
#include "models/models_internal.h"
#include "models/scan.h"
#include "base/alloc.h"

#define FP16_MAX 65504.0f

const char *recd_factor_type_name(uint32_t type)
{
    switch (type) {
    case RECD_FACTORS_F32:
        return "f32";
    case RECD_FACTORS_BF16:
        return "bf16";
    case RECD_FACTORS_FP16:
        return "fp16";
    case RECD_FACTORS_INT8:
        return "int8";
    default:
        return "unknown";
    }
}

int recd_factor_type_parse(const char *name)
{
    static const uint32_t types[] = {RECD_FACTORS_F32, RECD_FACTORS_BF16, RECD_FACTORS_FP16, RECD_FACTORS_INT8};
    for (size_t i = 0; i != sizeof(types) / sizeof(types[0]); ++i)
        if (strcmp(name, recd_factor_type_name(types[i])) == 0)
            return (int)types[i];
    return -1;
}

/* Round to nearest even (as F16C's _MM_FROUND_TO_NEAREST_INT); a value past +-65504 saturates to it. */
static uint16_t float_to_fp16(float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    uint32_t sign = (b >> 16) & 0x8000, abs = b & 0x7fffffff;
    if (abs >= 0x477ff000) /* 65520 and above round to infinity */
        return (uint16_t)(sign | 0x7bff);
    if (abs < 0x38800000) { /* below 2^-14: a binary16 subnormal in units of 2^-24, or zero */
        if (abs < 0x33000000)
            return (uint16_t)sign;
        uint32_t e = abs >> 23, mant = (abs & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            ++q;
        return (uint16_t)(sign | q);
    }
    uint32_t q = (abs - 0x38000000) >> 13, rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
        ++q;
    return (uint16_t)(sign | q);
}

#ifdef HAVE_X86
__attribute__((target("avx2,fma,f16c"))) static void fp16_encode_simd(const float *in, size_t n, uint16_t *out)
{
    size_t i = 0;
    __m256 hi = _mm256_set1_ps(FP16_MAX), lo = _mm256_set1_ps(-FP16_MAX);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(in + i), lo), hi);
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i != n; ++i)
        out[i] = float_to_fp16(in[i]);
}
#endif

void recd_fp16_encode(int simd, const float *in, size_t n, uint16_t *out)
{
#ifdef HAVE_X86
    if (simd && recd_simd_available()) {
        fp16_encode_simd(in, n, out);
        return;
    }
#endif
    for (size_t i = 0; i != n; ++i)
        out[i] = float_to_fp16(in[i]);
}

int recd_factors_encode(uint32_t type, const float *factors, size_t n, size_t f, void *data, float *scales)
{
    switch (type) {
    case RECD_FACTORS_BF16:
        for (size_t i = 0; i != n * f; ++i)
            ((uint16_t *)data)[i] = recd_bf16_round(factors[i]);
        return RECD_OK;
    case RECD_FACTORS_FP16:
        recd_fp16_encode(1, factors, n * f, data);
        return RECD_OK;
    case RECD_FACTORS_INT8:
        for (size_t i = 0; i != n; ++i) {
            const float *y = factors + i * f;
            int8_t *q = (int8_t *)data + i * f;
            float max = 0;
            for (size_t j = 0; j != f; ++j)
                max = fabsf(y[j]) > max ? fabsf(y[j]) : max;
            scales[i] = max / 127.0f;
            for (size_t j = 0; j != f; ++j) {
                long v = max > 0 ? lrintf(y[j] / scales[i]) : 0;
                q[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
        }
        return RECD_OK;
    default:
        return RECD_EINVAL;
    }
}

void recd_compact_bounds(const recd_scorer_t *s, recd_compact_bounds_t *out)
{
    size_t f = s->n_factors;
    *out = (recd_compact_bounds_t){0};
    if (s->factor_type == RECD_FACTORS_F32 || s->item_factors_compact == NULL || s->item_factors == NULL || f == 0 ||
        (s->factor_type == RECD_FACTORS_INT8 && s->item_scales == NULL))
        return;
    size_t row_bytes = f * (s->factor_type == RECD_FACTORS_INT8 ? 1 : 2);
    float *decoded = recd_xmalloc(f * sizeof(float));
    recd_compact_bounds_t b = {.known = 1};
    for (size_t i = 0; i != s->n_items && b.known; ++i) {
        recd_decode(1, s->factor_type, (const uint8_t *)s->item_factors_compact + i * row_bytes, f, decoded);
        recd_bounds_add_item(&b, s->item_factors + i * f, decoded,
                             s->factor_type == RECD_FACTORS_INT8 ? (double)s->item_scales[i] : 1.0, f,
                             s->item_bias != NULL ? &s->item_bias[i] : NULL);
    }
    free(decoded);
    if (b.known)
        *out = b;
}

void recd_bounds_add_item(recd_compact_bounds_t *b, const float *x, const float *y, double scale, size_t f, const float *bias)
{
    double row = 0;
    for (size_t j = 0; j != f; ++j) {
        double d = fabs((double)x[j] - (double)y[j] * scale);
        if (!isfinite(d))
            b->known = 0;
        b->max_error = d > b->max_error ? d : b->max_error;
        b->max_abs = fabs((double)x[j]) > b->max_abs ? fabs((double)x[j]) : b->max_abs;
        row += d * d;
    }
    row = sqrt(row);
    b->max_row_error = row > b->max_row_error ? row : b->max_row_error;
    if (bias != NULL) {
        if (!isfinite(*bias))
            b->known = 0;
        b->max_bias = fabs((double)*bias) > b->max_bias ? fabs((double)*bias) : b->max_bias;
    }
}

/* A splitmix64 step, for the user sample. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double recd_scan_recall(const recd_scorer_t *s, const float *user_factors, size_t n_users, size_t sample, uint32_t k, uint64_t seed,
                        double *candidates)
{
    enum { BATCH = 32 };
    if (candidates != NULL)
        *candidates = 0.0;
    if (!recd_scan_reads_compact(s))
        return 1.0;
    if (n_users == 0 || sample == 0 || k == 0 || s->n_items == 0)
        return 0.0;
    if (sample > n_users)
        sample = n_users;
    /* The first `sample` entries of a seeded Fisher-Yates shuffle of the users. */
    uint32_t *users = recd_xmalloc(n_users * sizeof(uint32_t));
    for (size_t i = 0; i != n_users; ++i)
        users[i] = (uint32_t)i;
    for (size_t i = 0; i != sample; ++i) {
        size_t j = i + (size_t)(next_random(&seed) % (n_users - i));
        uint32_t t = users[i];
        users[i] = users[j];
        users[j] = t;
    }
    recd_scorer_t exact = *s;
    exact.factor_type = RECD_FACTORS_F32;
    exact.item_factors_compact = NULL;
    exact.item_scales = NULL;
    recd_scan_scratch_t *sc = recd_scan_scratch_new();
    recd_scored_t *got = recd_xmalloc((size_t)BATCH * k * sizeof(recd_scored_t));
    recd_scored_t *want = recd_xmalloc((size_t)BATCH * k * sizeof(recd_scored_t));
    recd_scan_query_t qa[BATCH], qb[BATCH];
    double sum = 0;
    size_t counted = 0, reranked = 0;
    for (size_t at = 0; at < sample; at += BATCH) {
        size_t nb = sample - at < BATCH ? sample - at : BATCH;
        for (size_t i = 0; i != nb; ++i) {
            uint32_t u = users[at + i];
            qa[i] = (recd_scan_query_t){.vec = user_factors + (size_t)u * s->n_factors, .user = u, .k = k, .out = got + i * k};
            qb[i] = qa[i];
            qb[i].out = want + i * k;
        }
        recd_scan_topk(s, qa, nb, sc);
        recd_scan_topk(&exact, qb, nb, sc);
        for (size_t i = 0; i != nb; ++i) {
            reranked += qa[i].n_candidates;
            if (qb[i].n_out == 0)
                continue;
            size_t hits = 0;
            for (size_t a = 0; a != qa[i].n_out; ++a)
                for (size_t b = 0; b != qb[i].n_out; ++b)
                    hits += qa[i].out[a].index == qb[i].out[b].index;
            sum += (double)hits / (double)qb[i].n_out;
            ++counted;
        }
    }
    recd_scan_scratch_free(sc);
    free(got);
    free(want);
    free(users);
    if (candidates != NULL)
        *candidates = (double)reranked / (double)sample;
    return counted != 0 ? sum / (double)counted : 0.0;
}
