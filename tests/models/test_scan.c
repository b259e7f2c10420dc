/* test_scan.c: the dot-product kernels, the batched scan against score + exclusions + recd_topk, and compact factors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "models/models_internal.h"
#include "models/bf16_tiles.h"
#include "models/scan.h"

/* Deterministic uniform floats in [-1, 1). */
static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static uint32_t rnd_below(uint64_t *s, uint32_t n)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((*s >> 33) % n);
}

/* ---- kernels ------------------------------------------------------------------------------------------------------- */

/* The AVX2 kernel and its scalar twin give the same bits for every type, factor count (tails included), row count,
 * gathered rows and scales; and both compute a dot product (against double within rounding). */
static void test_scan_kernels_agree(void **state)
{
    if (!recd_simd_available())
        fprintf(stderr, "note: this CPU has no AVX2+FMA+F16C; only the scalar kernel is checked\n");
    uint64_t seed = 11;
    size_t fs[] = {1, 3, 7, 8, 9, 16, 31, 64, 65, 100};
    size_t ns[] = {1, 5, 8, 13, 67};
    uint32_t types[] = {RECD_FACTORS_F32, RECD_FACTORS_BF16, RECD_FACTORS_FP16, RECD_FACTORS_INT8};
    for (size_t a = 0; a != sizeof(fs) / sizeof(fs[0]); ++a) {
        for (size_t b = 0; b != sizeof(ns) / sizeof(ns[0]); ++b) {
            size_t f = fs[a], n = ns[b];
            float *y = malloc(n * f * sizeof(float)), *x = malloc(f * sizeof(float)), *scales = malloc(n * sizeof(float));
            uint8_t *compact = malloc(n * f * 2);
            float out0[67], out1[67];
            uint32_t idx[67];
            for (size_t i = 0; i != n * f; ++i)
                y[i] = rnd(&seed) * 3;
            for (size_t i = 0; i != f; ++i)
                x[i] = rnd(&seed);
            for (size_t i = 0; i != n; ++i)
                idx[i] = rnd_below(&seed, (uint32_t)n);
            for (size_t t = 0; t != 4; ++t) {
                const void *rows = y;
                const float *sc = NULL;
                if (types[t] != RECD_FACTORS_F32) {
                    assert_int_equal(recd_factors_encode(types[t], y, n, f, compact, scales), RECD_OK);
                    rows = compact;
                    sc = types[t] == RECD_FACTORS_INT8 ? scales : NULL;
                }
                if (types[t] != RECD_FACTORS_F32) { /* the decoders agree, and with the kernel on the decoded rows */
                    float *d0 = malloc(n * f * sizeof(float)), *d1 = malloc(n * f * sizeof(float));
                    recd_decode(0, types[t], rows, n * f, d0);
                    recd_decode(1, types[t], rows, n * f, d1);
                    assert_memory_equal(d0, d1, n * f * sizeof(float));
                    recd_dots(1, types[t], rows, sc, NULL, n, f, x, out0);
                    recd_dots(1, RECD_FACTORS_F32, d0, sc, NULL, n, f, x, out1);
                    assert_memory_equal(out0, out1, n * sizeof(float));
                    free(d0);
                    free(d1);
                }
                for (int gathered = 0; gathered != 2; ++gathered) {
                    const uint32_t *ix = gathered ? idx : NULL;
                    recd_dots(0, types[t], rows, sc, ix, n, f, x, out0);
                    recd_dots(1, types[t], rows, sc, ix, n, f, x, out1);
                    assert_memory_equal(out0, out1, n * sizeof(float));
                    for (size_t i = 0; i != n; ++i) {
                        size_t r = ix != NULL ? ix[i] : i;
                        double want = 0, mag = 0;
                        for (size_t j = 0; j != f; ++j) {
                            want += (double)x[j] * y[r * f + j];
                            mag += fabs((double)x[j] * y[r * f + j]);
                        }
                        /* float32 is exact to rounding; the compact types to their precision (int8 ~ 1/127 of the row max). */
                        double tol = types[t] == RECD_FACTORS_F32    ? 1e-5 * (mag + 1)
                                     : types[t] == RECD_FACTORS_INT8 ? 0.03 * (mag + 1)
                                                                     : 0.01 * (mag + 1);
                        if (fabs(out0[i] - want) > tol)
                            fail_msg("type %u f %zu n %zu row %zu: %g, want %g", types[t], f, n, i, out0[i], want);
                    }
                }
            }
            free(y);
            free(x);
            free(scales);
            free(compact);
        }
    }
}

/* ---- the scan against score + exclusions + recd_topk ---------------------------------------------------------------- */

typedef struct st_model_t {
    recd_scorer_t s;
    float *users, *items, *ub, *ib, *pop;
    size_t n_users;
} model_t;

/* A random model of a kind: items with a few duplicated rows (exact ties), popularity with many ties. */
static model_t make_model(uint32_t kind, size_t n_items, uint32_t f, uint64_t *seed)
{
    model_t m = {.n_users = 9};
    int factored = kind != RECD_MODEL_POPULARITY;
    m.users = malloc((m.n_users * f + 1) * sizeof(float));
    m.items = malloc((n_items * f + 1) * sizeof(float));
    m.ub = malloc(m.n_users * sizeof(float));
    m.ib = malloc(n_items * sizeof(float));
    m.pop = malloc(n_items * sizeof(float));
    for (size_t i = 0; i != m.n_users * f; ++i)
        m.users[i] = rnd(seed);
    for (size_t i = 0; i != n_items; ++i) {
        if (i >= 2 && rnd(seed) < -0.7f) { /* a duplicate of an earlier row */
            size_t src = rnd_below(seed, (uint32_t)i);
            memcpy(m.items + i * f, m.items + src * f, f * sizeof(float));
            m.ib[i] = m.ib[src];
        } else {
            for (size_t j = 0; j != f; ++j)
                m.items[i * f + j] = rnd(seed);
            m.ib[i] = rnd(seed) * 0.5f;
        }
        m.pop[i] = (float)rnd_below(seed, 6);
    }
    for (size_t i = 0; i != m.n_users; ++i)
        m.ub[i] = rnd(seed);
    m.s = (recd_scorer_t){.kind = kind,
                          .n_factors = factored ? f : 0,
                          .n_users = m.n_users,
                          .n_items = n_items,
                          .item_factors = factored ? m.items : NULL,
                          .item_bias = m.ib,
                          .user_bias = m.ub,
                          .popularity = m.pop,
                          .global_bias = 3.25f};
    return m;
}

static void free_model(model_t *m)
{
    free(m->users);
    free(m->items);
    free(m->ub);
    free(m->ib);
    free(m->pop);
}

static int cmp_best_first(const void *a, const void *b)
{
    const recd_scored_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* What serving did before the scan: every score, excluded ones set to -INFINITY, then recd_topk; checked against a full
 * sort here, since recd_topk and the scan share their heap code. */
static size_t reference_topk(const recd_scorer_t *s, const recd_scan_query_t *q, recd_scored_t *out)
{
    float *scores = malloc((s->n_items + 1) * sizeof(float));
    recd_scored_t *all = malloc((s->n_items + 1) * sizeof(recd_scored_t));
    recd_scorer_score(s, q->vec, q->user, scores);
    for (size_t j = 0; j != q->n_excluded; ++j)
        scores[q->excluded[j]] = -INFINITY;
    size_t n = recd_topk(scores, s->n_items, q->k, out), n_all = 0;
    for (size_t i = 0; i != s->n_items; ++i)
        if (isfinite(scores[i]))
            all[n_all++] = (recd_scored_t){(uint32_t)i, scores[i]};
    qsort(all, n_all, sizeof(*all), cmp_best_first);
    assert_int_equal(n, n_all < q->k ? n_all : q->k);
    for (size_t i = 0; i != n; ++i) {
        assert_int_equal(out[i].index, all[i].index);
        assert_true(out[i].score == all[i].score);
    }
    free(all);
    free(scores);
    return n;
}

static void expect_same(const recd_scored_t *got, size_t n_got, const recd_scored_t *want, size_t n_want, const char *what)
{
    if (n_got != n_want)
        fail_msg("%s: %zu answers, want %zu", what, n_got, n_want);
    for (size_t i = 0; i != n_got; ++i) {
        if (got[i].index != want[i].index || memcmp(&got[i].score, &want[i].score, sizeof(float)) != 0)
            fail_msg("%s: answer %zu is (%u, %.9g), want (%u, %.9g)", what, i, got[i].index, got[i].score, want[i].index,
                     want[i].score);
    }
}

enum { N_QUERIES = 12 };

typedef struct st_batch_t {
    recd_scan_query_t q[N_QUERIES];
    uint32_t *excluded[N_QUERIES];
    recd_scored_t *want[N_QUERIES];
    size_t n_want[N_QUERIES];
} batch_t;

/* Queries of every shape: known and folded-in users, k from 1 to past n_items, no / some / duplicate / all exclusions. */
static void make_batch(const model_t *m, batch_t *b, uint64_t *seed)
{
    size_t n_items = m->s.n_items, f = m->s.n_factors > 0 ? m->s.n_factors : 1;
    for (size_t i = 0; i != N_QUERIES; ++i) {
        recd_scan_query_t *q = &b->q[i];
        uint32_t ks[] = {1, 3, 10, 10, 50, (uint32_t)n_items, (uint32_t)n_items + 7};
        q->k = ks[i % 7];
        q->user = i % 4 == 3 ? -1 : (int64_t)rnd_below(seed, (uint32_t)m->n_users);
        q->vec = m->users + (size_t)(q->user >= 0 ? q->user : (int64_t)(i % m->n_users)) * f;
        size_t n_ex = i % 3 == 0 ? 0 : i == 5 ? 2 * n_items : rnd_below(seed, (uint32_t)(n_items / 2 + 2));
        b->excluded[i] = malloc((n_ex + 1) * sizeof(uint32_t));
        for (size_t j = 0; j != n_ex; ++j) /* query 5 excludes every item (twice over, in a scrambled order) */
            b->excluded[i][j] = i == 5 ? (uint32_t)((j * 7919) % n_items) : rnd_below(seed, (uint32_t)n_items);
        q->excluded = b->excluded[i];
        q->n_excluded = n_ex;
        q->out = malloc((q->k + 1) * sizeof(recd_scored_t));
        b->want[i] = malloc((q->k + 1) * sizeof(recd_scored_t));
        b->n_want[i] = reference_topk(&m->s, q, b->want[i]);
    }
    assert_int_equal(b->n_want[5], 0); /* all excluded */
}

static void free_batch(batch_t *b)
{
    for (size_t i = 0; i != N_QUERIES; ++i) {
        free(b->excluded[i]);
        free(b->q[i].out);
        free(b->want[i]);
    }
}

/* The scan answers what score + exclusions + recd_topk answer, bit for bit, for every kind, alone and in batches of every
 * size and order: n_items around and off the SIMD width and the block size, k past n_items, ties, all excluded. */
static void test_scan_matches_reference(void **state)
{
    uint64_t seed = 5;
    uint32_t kinds[] = {RECD_MODEL_ALS, RECD_MODEL_BPR, RECD_MODEL_BIASED_MF, RECD_MODEL_POPULARITY};
    size_t sizes[] = {1, 7, 8, 9, 16, 17, 130, 1000, 3001};
    uint32_t factors[] = {3, 11, 64}; /* a tail chunk only, full chunks and a tail, full chunks only */
    recd_scan_scratch_t *sc = recd_scan_scratch_new();
    for (size_t a = 0; a != 4; ++a) {
        for (size_t b = 0; b != sizeof(sizes) / sizeof(sizes[0]); ++b) {
            for (size_t c = 0; c != sizeof(factors) / sizeof(factors[0]); ++c) {
                char what[96];
                model_t m = make_model(kinds[a], sizes[b], factors[c], &seed);
                batch_t bt;
                make_batch(&m, &bt, &seed);
                /* Over the float32 rows, then (on a CPU with AVX-512 BF16) choosing candidates from bf16 tiles first. */
                recd_bf16_tiles_t *tiles = recd_bf16_tiles_supported() && kinds[a] != RECD_MODEL_POPULARITY
                                               ? recd_bf16_tiles_build(m.items, sizes[b], factors[c], m.ib)
                                               : NULL;
                for (int variant = 0; variant != (tiles != NULL ? 2 : 1); ++variant) {
                    recd_scorer_t sv = m.s;
                    sv.bf16_tiles = variant ? tiles : NULL;
                    /* Alone. */
                    for (size_t i = 0; i != N_QUERIES; ++i) {
                        recd_scan_topk(&sv, &bt.q[i], 1, sc);
                        snprintf(what, sizeof(what), "%s%s n_items %zu f %u query %zu alone", variant ? "tiles " : "",
                                 recd_model_kind_name(kinds[a]), sizes[b], factors[c], i);
                        expect_same(bt.q[i].out, bt.q[i].n_out, bt.want[i], bt.n_want[i], what);
                    }
                    /* The whole batch, then random sub-batches in a shuffled order. */
                    recd_scan_topk(&sv, bt.q, N_QUERIES, sc);
                    for (size_t i = 0; i != N_QUERIES; ++i) {
                        snprintf(what, sizeof(what), "%s%s n_items %zu f %u query %zu in the batch", variant ? "tiles " : "",
                                 recd_model_kind_name(kinds[a]), sizes[b], factors[c], i);
                        expect_same(bt.q[i].out, bt.q[i].n_out, bt.want[i], bt.n_want[i], what);
                    }
                    /* Batches of 11 and 10: the queries go two at a time, the last one of an odd batch alone. */
                    for (size_t len = N_QUERIES - 1; len != N_QUERIES - 3; --len) {
                        recd_scan_topk(&sv, bt.q, len, sc);
                        for (size_t i = 0; i != len; ++i) {
                            snprintf(what, sizeof(what), "%s%s n_items %zu f %u query %zu in a batch of %zu",
                                     variant ? "tiles " : "", recd_model_kind_name(kinds[a]), sizes[b], factors[c], i, len);
                            expect_same(bt.q[i].out, bt.q[i].n_out, bt.want[i], bt.n_want[i], what);
                        }
                    }
                    for (int round = 0; round != 3; ++round) {
                        recd_scan_query_t sub[N_QUERIES];
                        size_t from[N_QUERIES], len = 1 + rnd_below(&seed, N_QUERIES);
                        for (size_t i = 0; i != len; ++i) {
                            from[i] = rnd_below(&seed, N_QUERIES);
                            sub[i] = bt.q[from[i]];
                            sub[i].out = malloc((sub[i].k + 1) * sizeof(recd_scored_t));
                        }
                        recd_scan_topk(&sv, sub, len, sc);
                        for (size_t i = 0; i != len; ++i) {
                            snprintf(what, sizeof(what), "%s%s n_items %zu query %zu in a batch of %zu", variant ? "tiles " : "",
                                     recd_model_kind_name(kinds[a]), sizes[b], from[i], len);
                            expect_same(sub[i].out, sub[i].n_out, bt.want[from[i]], bt.n_want[from[i]], what);
                            free(sub[i].out);
                        }
                    }
                }
                recd_bf16_tiles_free(tiles);
                free_batch(&bt);
                free_model(&m);
            }
        }
    }
    recd_scan_scratch_free(sc);
    recd_scan_scratch_free(NULL);
}

/* recd_scorer_score's scores are the kernel's dot products plus the kind's biases, whatever the SIMD path: the scalar
 * twin gives the same bits, so a model trained on one machine ranks alike on another. */
static void test_scan_score_uses_the_kernel(void **state)
{
    uint64_t seed = 9;
    model_t m = make_model(RECD_MODEL_BIASED_MF, 203, 19, &seed);
    float scores[203], dots[203];
    recd_scorer_score(&m.s, m.users, 2, scores);
    recd_dots(0, RECD_FACTORS_F32, m.items, NULL, NULL, 203, 19, m.users, dots);
    for (size_t i = 0; i != 203; ++i) {
        float want = dots[i] + (m.ib[i] + (3.25f + m.ub[2]));
        assert_memory_equal(&scores[i], &want, sizeof(float));
    }
    free_model(&m);
}

/* ---- compact factors ----------------------------------------------------------------------------------------------- */

static uint32_t float_bits(float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    return b;
}

static float bits_float(uint32_t b)
{
    float v;
    memcpy(&v, &b, 4);
    return v;
}

/* Encodings by hand: round to nearest even, saturation instead of infinity, int8 scales of max |y| / 127. */
static void test_scan_encode_known(void **state)
{
    const float in[] = {
        1.0f, bits_float(0x3f808000), bits_float(0x3f818000), -2.5f, bits_float(0x7f7fffff), bits_float(0xff7fffff), 0.0f, -0.0f};
    const uint16_t bf16[] = {0x3f80, 0x3f80, 0x3f82, 0xc020, 0x7f7f, 0xff7f, 0x0000, 0x8000};
    uint16_t out[8];
    assert_int_equal(recd_factors_encode(RECD_FACTORS_BF16, in, 1, 8, out, NULL), RECD_OK);
    assert_memory_equal(out, bf16, sizeof(bf16));
    /* fp16: 1, 1 + 2^-11 (a tie: even), 1 + 3 * 2^-11 (a tie: up), 65504, 70000 (saturates), 2^-24 (smallest subnormal),
     * 2^-25 (a tie with zero: zero), 3 * 2^-25 (a tie: up to 2 * 2^-24). */
    const float in16[] = {1.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, -70000.0f, 0x1p-24f, 0x1p-25f, 3 * 0x1p-25f};
    const uint16_t fp16[] = {0x3c00, 0x3c00, 0x3c02, 0x7bff, 0xfbff, 0x0001, 0x0000, 0x0002};
    assert_int_equal(recd_factors_encode(RECD_FACTORS_FP16, in16, 2, 4, out, NULL), RECD_OK);
    assert_memory_equal(out, fp16, sizeof(fp16));
    recd_fp16_encode(0, in16, 8, out);
    assert_memory_equal(out, fp16, sizeof(fp16));
    const float rows[] = {0.5f, -1.0f, 0.25f, 0, 0, 0};
    int8_t q[6];
    float scales[2];
    assert_int_equal(recd_factors_encode(RECD_FACTORS_INT8, rows, 2, 3, q, scales), RECD_OK);
    const int8_t want_q[] = {64, -127, 32, 0, 0, 0};
    assert_memory_equal(q, want_q, sizeof(want_q));
    assert_true(scales[0] == 1.0f / 127.0f && scales[1] == 0.0f);
    assert_int_equal(recd_factors_encode(RECD_FACTORS_F32, rows, 2, 3, q, scales), RECD_EINVAL);
    assert_int_equal(recd_factor_type_parse("int8"), RECD_FACTORS_INT8);
    assert_int_equal(recd_factor_type_parse("f32"), RECD_FACTORS_F32);
    assert_int_equal(recd_factor_type_parse("f64"), -1);
    assert_string_equal(recd_factor_type_name(RECD_FACTORS_BF16), "bf16");
}

/* F16C and the scalar encoder agree on every kind of float: normal, subnormal, ties, out of range. */
static void test_scan_fp16_encoders_agree(void **state)
{
    enum { N = 200000 };
    uint64_t seed = 3;
    float *in = malloc(N * sizeof(float));
    uint16_t *a = malloc(N * sizeof(uint16_t)), *b = malloc(N * sizeof(uint16_t));
    for (size_t i = 0; i != N; ++i) {
        uint32_t bits;
        do { /* random finite floats across every exponent, and ties: mantissas ending in 1000...0 */
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            bits = (uint32_t)(seed >> 32);
            if (i % 3 == 0)
                bits = (bits & 0xffffe000u) | 0x1000u;
            if (i % 5 == 0) /* exponents around binary16's range */
                bits = (bits & 0x807fffffu) | ((uint32_t)(96 + (bits >> 24) % 48) << 23);
        } while ((bits & 0x7f800000u) == 0x7f800000u);
        in[i] = bits_float(bits);
    }
    recd_fp16_encode(0, in, N, a);
    recd_fp16_encode(1, in, N, b);
    for (size_t i = 0; i != N; ++i)
        if (a[i] != b[i])
            fail_msg("%a (0x%08x): scalar 0x%04x, F16C 0x%04x", in[i], float_bits(in[i]), a[i], b[i]);
    free(in);
    free(a);
    free(b);
}

/* A catalogue with planted structure: items near one of a few taste directions (so many compete closely), users near one. */
typedef struct st_catalogue_t {
    size_t n_users, n_items;
    uint32_t f;
    float *users, *items;
} catalogue_t;

static catalogue_t make_catalogue(size_t n_users, size_t n_items, uint32_t f, uint32_t clusters, uint64_t *seed)
{
    catalogue_t c = {n_users, n_items, f, malloc(n_users * f * sizeof(float)), malloc(n_items * f * sizeof(float))};
    float *centres = malloc((size_t)clusters * f * sizeof(float));
    for (size_t i = 0; i != (size_t)clusters * f; ++i)
        centres[i] = rnd(seed);
    for (size_t i = 0; i != n_items; ++i) {
        const float *centre = centres + (size_t)rnd_below(seed, clusters) * f;
        float size = 0.5f + 0.5f * (rnd(seed) + 1); /* popularity-like spread of norms */
        for (size_t j = 0; j != f; ++j)
            c.items[i * f + j] = size * (centre[j] + 0.1f * rnd(seed));
    }
    for (size_t u = 0; u != n_users; ++u) {
        const float *centre = centres + (size_t)rnd_below(seed, clusters) * f;
        for (size_t j = 0; j != f; ++j)
            c.users[u * f + j] = centre[j] + 0.5f * rnd(seed);
    }
    free(centres);
    return c;
}

/* Each compact type meets its recall@10 target against the exact float32 scan, and answers exact float32 scores. */
static void test_scan_compact_recall(void **state)
{
    uint64_t seed = 21;
    catalogue_t c = make_catalogue(300, 20011, 32, 16, &seed);
    const struct {
        uint32_t type;
        double target;
    } cases[] = {{RECD_FACTORS_BF16, 0.995}, {RECD_FACTORS_FP16, 0.995}, {RECD_FACTORS_INT8, 0.99}};
    recd_scorer_t exact = {
        .kind = RECD_MODEL_ALS, .n_factors = c.f, .n_users = c.n_users, .n_items = c.n_items, .item_factors = c.items};
    double candidates = -1;
    assert_true(recd_scan_recall(&exact, c.users, c.n_users, 100, 10, 1, &candidates) == 1.0);
    assert_true(candidates == 0.0);
    void *data = malloc(c.n_items * c.f * 2);
    float *scales = malloc(c.n_items * sizeof(float)), *scores = malloc(c.n_items * sizeof(float));
    recd_scan_scratch_t *sc = recd_scan_scratch_new();
    for (size_t k = 0; k != sizeof(cases) / sizeof(cases[0]); ++k) {
        assert_int_equal(recd_factors_encode(cases[k].type, c.items, c.n_items, c.f, data, scales), RECD_OK);
        recd_scorer_t s = exact;
        s.factor_type = cases[k].type;
        s.item_factors_compact = data;
        s.item_scales = cases[k].type == RECD_FACTORS_INT8 ? scales : NULL;
        /* without bounds no candidate can be ruled out: every query is scanned over the f32 rows, and answered exactly */
        assert_true(recd_scan_recall(&s, c.users, c.n_users, 50, 10, 1, &candidates) == 1.0);
        assert_true(candidates == (double)c.n_items);
        recd_compact_bounds(&s, &s.compact_bounds);
        assert_true(s.compact_bounds.known);
        double recall = recd_scan_recall(&s, c.users, c.n_users, c.n_users, 10, 1, &candidates);
        fprintf(stderr, "note: %s recall@10 against f32: %.4f, %.1f candidates re-ranked per query (of %zu items)\n",
                recd_factor_type_name(cases[k].type), recall, candidates, c.n_items);
        assert_true(recall == 1.0); /* exact by construction */
        assert_true(candidates >= 10 && candidates < (double)c.n_items * (1 - cases[k].target));
        /* The answers are sorted, exact float32 scores of the items they name, with exclusions honoured. */
        recd_scored_t out[10];
        uint32_t excluded[3];
        recd_scan_query_t q = {.vec = c.users, .user = 0, .k = 10, .out = out};
        recd_scan_topk(&s, &q, 1, sc);
        assert_int_equal(q.n_out, 10);
        memcpy(excluded, (uint32_t[]){out[0].index, out[4].index, out[0].index}, sizeof(excluded));
        q.excluded = excluded;
        q.n_excluded = 3;
        recd_scan_topk(&s, &q, 1, sc);
        recd_scorer_score(&exact, c.users, 0, scores);
        for (size_t i = 0; i != q.n_out; ++i) {
            assert_true(out[i].index != excluded[0] && out[i].index != excluded[1]);
            assert_memory_equal(&out[i].score, &scores[out[i].index], sizeof(float));
            if (i != 0)
                assert_true(out[i - 1].score > out[i].score ||
                            (out[i - 1].score == out[i].score && out[i - 1].index < out[i].index));
        }
    }
    recd_scan_scratch_free(sc);
    free(data);
    free(scales);
    free(scores);
    free(c.users);
    free(c.items);
}

/* A loaded artifact's scorer reads the compact section it holds (the smallest when there are several), and scans it. */
static void test_scan_model_scorer_compact(void **state)
{
    enum { NU = 3, NI = 40, F = 9 };
    uint64_t seed = 17;
    char dir[] = "/tmp/recd-test-scan-XXXXXX", path[64], err[256] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/m.recd", dir);
    float uf[NU * F], itf[NI * F], pop[NI] = {0}, scales[NI];
    uint16_t bf16[NI * F];
    int8_t q8[NI * F];
    for (size_t i = 0; i != NU * F; ++i)
        uf[i] = rnd(&seed);
    for (size_t i = 0; i != NI * F; ++i)
        itf[i] = rnd(&seed);
    char *uids[NU], *iids[NI];
    for (size_t i = 0; i != NU; ++i)
        assert_true(asprintf(&uids[i], "u%zu", i) > 0);
    for (size_t i = 0; i != NI; ++i)
        assert_true(asprintf(&iids[i], "i%zu", i) > 0);
    assert_int_equal(recd_factors_encode(RECD_FACTORS_BF16, itf, NI, F, bf16, NULL), RECD_OK);
    assert_int_equal(recd_factors_encode(RECD_FACTORS_INT8, itf, NI, F, q8, scales), RECD_OK);
    recd_artifact_extra_t extras[] = {{RECD_ARTIFACT_ITEM_FACTORS_BF16, bf16, sizeof(bf16)},
                                      {RECD_ARTIFACT_ITEM_FACTORS_INT8, q8, sizeof(q8)},
                                      {RECD_ARTIFACT_INT8_SCALES, scales, sizeof(scales)}};
    recd_scan_scratch_t *sc = recd_scan_scratch_new();
    for (size_t n_extras = 0; n_extras <= 3; n_extras += 1 + (n_extras == 1)) { /* none, bf16, bf16 + int8 */
        recd_model_spec_t spec = {.kind = RECD_MODEL_ALS,
                                  .n_factors = F,
                                  .n_users = NU,
                                  .n_items = NI,
                                  .user_ids = (const char *const *)uids,
                                  .item_ids = (const char *const *)iids,
                                  .user_factors = uf,
                                  .item_factors = itf,
                                  .item_popularity = pop,
                                  .extras = extras,
                                  .n_extras = n_extras};
        assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_OK);
        recd_model_t *m = recd_model_open(path, err, sizeof(err));
        if (m == NULL)
            fail_msg("open: %s", err);
        recd_scorer_t s;
        recd_model_scorer(m, &s);
        uint32_t want = n_extras == 0 ? RECD_FACTORS_F32 : n_extras == 1 ? RECD_FACTORS_BF16 : RECD_FACTORS_INT8;
        assert_int_equal(s.factor_type, want);
        assert_true((s.item_factors_compact == NULL) == (n_extras == 0));
        assert_true((s.item_scales != NULL) == (want == RECD_FACTORS_INT8));
        if (want != RECD_FACTORS_F32)
            assert_memory_equal(s.item_factors_compact, want == RECD_FACTORS_BF16 ? (const void *)bf16 : (const void *)q8,
                                want == RECD_FACTORS_BF16 ? sizeof(bf16) : sizeof(q8));
        /* the bounds that let a scan prove its compact candidates were computed when the version opened */
        recd_compact_bounds_t bounds;
        recd_compact_bounds(&s, &bounds);
        assert_int_equal(s.compact_bounds.known, want != RECD_FACTORS_F32);
        assert_true(s.compact_bounds.max_error == bounds.max_error && s.compact_bounds.max_row_error == bounds.max_row_error &&
                    s.compact_bounds.max_abs == bounds.max_abs && s.compact_bounds.max_bias == bounds.max_bias);
        assert_true(want == RECD_FACTORS_F32 || bounds.max_error > 0);
        /* the bf16 tiles are built when the version opens, on a CPU that runs them, unless turned off */
        assert_int_equal(s.bf16_tiles != NULL, recd_bf16_tiles_supported());
        recd_bf16_tiles_set_enabled(0);
        recd_model_t *plain = recd_model_open(path, err, sizeof(err));
        recd_bf16_tiles_set_enabled(1);
        assert_non_null(plain);
        recd_scorer_t ps;
        recd_model_scorer(plain, &ps);
        assert_null(ps.bf16_tiles);
        assert_true(recd_model_bytes(plain) < recd_model_bytes(m) || !recd_bf16_tiles_supported());
        recd_model_release(plain);
        /* 40 items: the rows are far below 1 MiB, so the scan reads the float32 ones and answers the exact top 5. */
        recd_scored_t got[5], exact[5];
        recd_scan_query_t q = {.vec = uf, .user = 0, .k = 5, .out = got};
        recd_scan_topk(&s, &q, 1, sc);
        float scores[NI];
        recd_model_score(m, uf, 0, scores);
        assert_int_equal(recd_topk(scores, NI, 5, exact), 5);
        assert_int_equal(q.n_out, 5);
        assert_memory_equal(got, exact, sizeof(exact));
        recd_model_release(m);
    }
    recd_scan_scratch_free(sc);
    unlink(path);
    rmdir(dir);
    for (size_t i = 0; i != NU; ++i)
        free(uids[i]);
    for (size_t i = 0; i != NI; ++i)
        free(iids[i]);
}

/* Compact scans answer the same bits alone and in any batch (a batch decodes each block once and shares it), and what the
 * long way above answers. */
static void test_scan_compact_batches(void **state)
{
    uint64_t seed = 23;
    uint32_t kinds[] = {RECD_MODEL_ALS, RECD_MODEL_BPR, RECD_MODEL_BIASED_MF};
    uint32_t types[] = {RECD_FACTORS_BF16, RECD_FACTORS_FP16, RECD_FACTORS_INT8};
    size_t sizes[] = {8209, 9001}; /* the compact rows are read above 1 MiB of float32 rows */
    uint32_t factors[] = {33, 64};
    size_t queries = 0, selective = 0;
    recd_scan_scratch_t *sc = recd_scan_scratch_new();
    for (size_t a = 0; a != 3; ++a) {
        for (size_t b = 0; b != 2; ++b) {
            for (size_t c = 0; c != 2; ++c) {
                model_t m = make_model(kinds[a], sizes[b], factors[c], &seed);
                void *data = malloc(sizes[b] * factors[c] * 2);
                float *scales = malloc(sizes[b] * sizeof(float));
                batch_t bt;
                make_batch(&m, &bt, &seed);
                for (size_t t = 0; t != 3; ++t) {
                    char what[128];
                    assert_int_equal(recd_factors_encode(types[t], m.items, sizes[b], factors[c], data, scales), RECD_OK);
                    recd_scorer_t s = m.s;
                    s.factor_type = types[t];
                    s.item_factors_compact = data;
                    s.item_scales = types[t] == RECD_FACTORS_INT8 ? scales : NULL;
                    recd_compact_bounds(&s, &s.compact_bounds);
                    assert_true(s.compact_bounds.known);
                    /* the answer is the exact one; when the scan proved it from the candidates it is also theirs */
                    for (size_t i = 0; i != N_QUERIES; ++i)
                        bt.n_want[i] = reference_topk(&m.s, &bt.q[i], bt.want[i]);
                    for (size_t i = 0; i != N_QUERIES; ++i) {
                        recd_scan_topk(&s, &bt.q[i], 1, sc);
                        snprintf(what, sizeof(what), "%s %s n_items %zu f %u query %zu alone", recd_model_kind_name(kinds[a]),
                                 recd_factor_type_name(types[t]), sizes[b], factors[c], i);
                        expect_same(bt.q[i].out, bt.q[i].n_out, bt.want[i], bt.n_want[i], what);
                        /* the approximate pass itself ran, and ruled most items out */
                        selective += bt.q[i].n_candidates * 4 < sizes[b];
                        ++queries;
                    }
                    recd_scan_topk(&s, bt.q, N_QUERIES, sc);
                    for (size_t i = 0; i != N_QUERIES; ++i) {
                        snprintf(what, sizeof(what), "%s %s n_items %zu f %u query %zu in the batch",
                                 recd_model_kind_name(kinds[a]), recd_factor_type_name(types[t]), sizes[b], factors[c], i);
                        expect_same(bt.q[i].out, bt.q[i].n_out, bt.want[i], bt.n_want[i], what);
                    }
                    recd_scan_query_t pair[2] = {bt.q[7], bt.q[2]};
                    recd_scan_topk(&s, pair, 2, sc);
                    expect_same(pair[0].out, pair[0].n_out, bt.want[7], bt.n_want[7], "query 7 in a pair");
                    expect_same(pair[1].out, pair[1].n_out, bt.want[2], bt.n_want[2], "query 2 in a pair");
                }
                free_batch(&bt);
                free(data);
                free(scales);
                free_model(&m);
            }
        }
    }
    recd_scan_scratch_free(sc);
    /* the approximate pass itself was exercised, not only a float32 scan under another name */
    fprintf(stderr, "note: %zu of %zu compact queries re-ranked under a quarter of the items\n", selective, queries);
    assert_true(selective * 2 > queries);
}

/* Compact rows are read only above 1 MiB of float32 rows: with useless compact factors (all zero) a small catalogue
 * answers its exact top 10 without reading them; a large one reads them, can rule no item out (their bounds are as
 * large as the factors) and re-ranks every item, so it too answers exactly. */
static void test_scan_compact_threshold(void **state)
{
    uint64_t seed = 31;
    size_t sizes[] = {1682, 5000}; /* x 64 factors x 4 bytes: 0.43 MB and 1.28 MB */
    recd_scan_scratch_t *sc = recd_scan_scratch_new();
    for (size_t b = 0; b != 2; ++b) {
        model_t m = make_model(RECD_MODEL_ALS, sizes[b], 64, &seed);
        int8_t *zeros = calloc(sizes[b] * 64, 1);
        float *scales = calloc(sizes[b], sizeof(float));
        recd_scorer_t s = m.s;
        s.factor_type = RECD_FACTORS_INT8;
        s.item_factors_compact = zeros;
        s.item_scales = scales;
        recd_compact_bounds(&s, &s.compact_bounds);
        assert_true(s.compact_bounds.known);
        assert_int_equal(recd_scan_reads_compact(&s), b == 1);
        assert_int_equal(recd_scan_reads_compact(&m.s), 0);
        recd_scored_t got[10], want[10];
        recd_scan_query_t q = {.vec = m.users, .user = 0, .k = 10, .out = got};
        recd_scan_topk(&s, &q, 1, sc);
        size_t n_want = reference_topk(&m.s, &q, want);
        assert_int_equal(q.n_out, n_want);
        assert_memory_equal(got, want, sizeof(want));
        assert_int_equal(q.n_candidates, b == 1 ? sizes[b] : 0);
        free(zeros);
        free(scales);
        free_model(&m);
    }
    recd_scan_scratch_free(sc);
}

/* A query the scan cannot bound (the copy's bounds unknown, or a vector with a NaN) is scanned over the float32 rows: it
 * answers exactly, and says every item was re-ranked. */
static void test_scan_without_a_bound(void **state)
{
    uint64_t seed = 37;
    size_t n = 5000; /* x 64 factors x 4 bytes: above 1 MiB, so the compact rows are read */
    model_t m = make_model(RECD_MODEL_BIASED_MF, n, 64, &seed);
    int8_t *q8 = malloc(n * 64);
    float *scales = malloc(n * sizeof(float));
    assert_int_equal(recd_factors_encode(RECD_FACTORS_INT8, m.items, n, 64, q8, scales), RECD_OK);
    recd_scorer_t compact = m.s;
    compact.factor_type = RECD_FACTORS_INT8;
    compact.item_factors_compact = q8;
    compact.item_scales = scales;
    recd_bf16_tiles_t *tiles = recd_bf16_tiles_supported() ? recd_bf16_tiles_build(m.items, n, 64, m.ib) : NULL;
    recd_scan_scratch_t *sc = recd_scan_scratch_new();
    float nan_vec[64];
    memcpy(nan_vec, m.users, sizeof(nan_vec));
    nan_vec[5] = NAN;
    for (int variant = 0; variant != (tiles != NULL ? 3 : 1); ++variant) {
        recd_scorer_t s = compact; /* 0: compact factors without bounds; 1: tiles, a NaN vector; 2: tiles, known bounds */
        if (variant > 0)
            s.bf16_tiles = tiles;
        const float *vec = variant == 1 ? nan_vec : m.users;
        recd_scored_t got[10], want[10];
        recd_scan_query_t q = {.vec = vec, .user = 0, .k = 10, .out = got};
        recd_scan_topk(&s, &q, 1, sc);
        size_t n_want = reference_topk(&m.s, &q, want);
        expect_same(got, q.n_out, want, n_want, variant == 0 ? "no bounds" : variant == 1 ? "NaN vector" : "tiles");
        if (variant < 2)
            assert_int_equal(q.n_candidates, n); /* the float32 scan */
        else
            assert_true(q.n_candidates >= 10 && q.n_candidates < n / 4);
    }
    recd_bf16_tiles_free(tiles);
    recd_scan_scratch_free(sc);
    free(q8);
    free(scales);
    free_model(&m);
}

int test_scan_run(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_kernels_agree),
        cmocka_unit_test(test_scan_matches_reference),
        cmocka_unit_test(test_scan_score_uses_the_kernel),
        cmocka_unit_test(test_scan_encode_known),
        cmocka_unit_test(test_scan_fp16_encoders_agree),
        cmocka_unit_test(test_scan_compact_recall),
        cmocka_unit_test(test_scan_model_scorer_compact),
        cmocka_unit_test(test_scan_compact_batches),
        cmocka_unit_test(test_scan_compact_threshold),
        cmocka_unit_test(test_scan_without_a_bound),
    };
    /* clang-format on */
    return cmocka_run_group_tests_name("scan", tests, NULL, NULL);
}
