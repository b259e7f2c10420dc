/* test_ann.c: the approximate index — recall against exact search on a clustered catalogue, exclusions, tie order,
 * deterministic builds, the byte form's round trip and its rejection of corrupt bytes. */
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
#include "models/ann.h"
#include "base/hash.h"
#include "tests/support/catalogue.h"

#define N_ITEMS 20000
#define N_FACTORS 32
#define N_USERS 200
#define K 10

typedef struct st_ann_fixture_t {
    support_catalogue_t cat;
    recd_ann_t *ann;
    recd_scorer_t s;
} ann_fixture_t;

static void fixture_make(ann_fixture_t *fx, size_t n_items, int with_bias, uint32_t n_probe)
{
    support_catalogue_spec_t spec = {
        .n_items = n_items, .n_users = N_USERS, .n_factors = N_FACTORS, .n_topics = 100, .with_bias = with_bias, .seed = 7};
    recd_ann_params_t p;
    char err[256] = "";
    support_catalogue_generate(&spec, &fx->cat);
    recd_ann_params_init(&p);
    p.n_probe = n_probe;
    fx->ann = recd_ann_build(fx->cat.items, fx->cat.item_bias, n_items, N_FACTORS, &p, err, sizeof(err));
    assert_non_null(fx->ann);
    fx->s = (recd_scorer_t){.kind = with_bias ? RECD_MODEL_BPR : RECD_MODEL_ALS,
                            .n_factors = N_FACTORS,
                            .n_items = n_items,
                            .item_factors = fx->cat.items,
                            .item_bias = fx->cat.item_bias,
                            .ann = fx->ann};
    assert_int_equal(recd_ann_check_scorer(fx->ann, &fx->s, err, sizeof(err)), RECD_OK);
}

static void fixture_dispose(ann_fixture_t *fx)
{
    recd_ann_free(fx->ann);
    support_catalogue_dispose(&fx->cat);
}

/* The exact answer (the batched scan without an index). */
static void exact_topk(const recd_scorer_t *s, recd_scan_query_t *q)
{
    recd_scan_scratch_t *scratch = recd_scan_scratch_new();
    recd_scorer_t e = *s;
    e.ann = NULL;
    recd_scan_topk(&e, q, 1, scratch);
    recd_scan_scratch_free(scratch);
}

/* The answer is sorted as recd_topk sorts: descending score, ties by ascending index, no repeats. */
static void assert_sorted(const recd_scored_t *out, size_t n)
{
    for (size_t i = 1; i < n; ++i)
        assert_true(out[i - 1].score > out[i].score || (out[i - 1].score == out[i].score && out[i - 1].index < out[i].index));
}

/* Tuned on half the users for 0.97, the index reaches recall@10 >= 0.95 on the other half; answers are sorted and their
 * scores are recd_scorer_score's, bit for bit. */
static void check_recall(int with_bias)
{
    ann_fixture_t fx;
    double tuned = 0.0, recall = 0.0, one = 1.0;
    const size_t half = N_USERS / 2;
    fixture_make(&fx, N_ITEMS, with_bias, 0);
    assert_int_equal(recd_ann_tune_n_probe(fx.ann, &fx.s, fx.cat.users, NULL, half, K, 0.97, &tuned), RECD_OK);
    assert_int_equal(recd_ann_recall(&fx.s, fx.cat.users + half * N_FACTORS, NULL, half, K, 0, &recall), RECD_OK);
    print_message("recall@10 %s biases, %u of %u lists: %.4f (tuning users %.4f)\n", with_bias ? "with" : "without",
                  recd_ann_n_probe(fx.ann), recd_ann_n_lists(fx.ann), recall, tuned);
    assert_true(recall >= 0.95);
    /* and selective: 32 of the 566 cells (under 6% of them) already reach it; ranking cells badly needs more */
    double at32 = 0.0;
    assert_int_equal(recd_ann_recall(&fx.s, fx.cat.users + half * N_FACTORS, NULL, half, K, 32, &at32), RECD_OK);
    assert_true(at32 >= 0.95);
    /* one probed list is not enough on this catalogue: the measurement can fail */
    assert_int_equal(recd_ann_recall(&fx.s, fx.cat.users + half * N_FACTORS, NULL, half, K, 1, &one), RECD_OK);
    assert_true(one < 0.95);

    float *scores = malloc(N_ITEMS * sizeof(float));
    recd_scored_t out[K];
    for (size_t u = 0; u != 20; ++u) {
        recd_scan_query_t q = {.vec = fx.cat.users + u * N_FACTORS, .user = -1, .k = K, .approximate = 1, .out = out};
        recd_ann_topk(&fx.s, &q, 1);
        assert_int_equal(q.n_out, K);
        assert_sorted(out, q.n_out);
        recd_scorer_score(&fx.s, q.vec, -1, scores);
        for (size_t i = 0; i != q.n_out; ++i)
            assert_true(out[i].score == scores[out[i].index]); /* bit for bit the exact score */
    }
    free(scores);
    fixture_dispose(&fx);
}

static void test_ann_recall_als(void **state)
{
    check_recall(0);
}

static void test_ann_recall_bpr_bias(void **state)
{
    check_recall(1);
}

/* Excluded items are never answered, even when they are the true top, and duplicates in the list are harmless. */
static void test_ann_exclusions(void **state)
{
    ann_fixture_t fx;
    double tuned;
    fixture_make(&fx, N_ITEMS, 1, 0);
    assert_int_equal(recd_ann_tune_n_probe(fx.ann, &fx.s, fx.cat.users + 100 * N_FACTORS, NULL, 100, K, 0.97, &tuned), RECD_OK);
    recd_scored_t top[40], out[K];
    uint32_t excluded[60];
    size_t found = 0, total = 0;
    for (size_t u = 0; u != 50; ++u) {
        recd_scan_query_t e = {.vec = fx.cat.users + u * N_FACTORS, .user = -1, .k = 40, .out = top};
        exact_topk(&fx.s, &e);
        assert_int_equal(e.n_out, 40);
        /* the exact top 30, some of them twice, and the items' lowest indexes */
        size_t n_ex = 0;
        for (size_t i = 0; i != 30; ++i)
            excluded[n_ex++] = top[i].index;
        for (size_t i = 0; i != 20; ++i)
            excluded[n_ex++] = top[i].index;
        for (size_t i = 0; i != 10; ++i)
            excluded[n_ex++] = (uint32_t)i;
        recd_scan_query_t q = {
            .vec = e.vec, .user = -1, .k = K, .excluded = excluded, .n_excluded = n_ex, .approximate = 1, .out = out};
        recd_ann_topk(&fx.s, &q, 1);
        assert_int_equal(q.n_out, K);
        assert_sorted(out, q.n_out);
        for (size_t i = 0; i != q.n_out; ++i)
            for (size_t j = 0; j != n_ex; ++j)
                assert_int_not_equal(out[i].index, excluded[j]);
        /* the next ten of the exact ranking are what should come back */
        for (size_t i = 30; i != 40; ++i) {
            for (size_t j = 0; j != q.n_out; ++j)
                if (out[j].index == top[i].index) {
                    ++found;
                    break;
                }
            ++total;
        }
    }
    print_message("recall@10 with the exact top 30 excluded: %.4f\n", (double)found / (double)total);
    assert_true((double)found / (double)total >= 0.9);
    fixture_dispose(&fx);
}

/* With all but three items excluded, exactly those three come back, in order: the search widens until it finds them. */
static void test_ann_exclusions_leave_few(void **state)
{
    ann_fixture_t fx;
    const size_t n = 3000;
    fixture_make(&fx, n, 0, 1);
    uint32_t *excluded = malloc(n * sizeof(uint32_t));
    const uint32_t keep[3] = {17, 1234, 2999};
    size_t n_ex = 0;
    for (uint32_t i = 0; i != n; ++i)
        if (i != keep[0] && i != keep[1] && i != keep[2])
            excluded[n_ex++] = (uint32_t)(n - 1 - i); /* any order */
    recd_scored_t out[K], exact[K];
    recd_scan_query_t q = {
        .vec = fx.cat.users, .user = -1, .k = K, .excluded = excluded, .n_excluded = n_ex, .approximate = 1, .out = out};
    recd_scan_query_t e = q;
    e.out = exact;
    recd_ann_topk(&fx.s, &q, 1);
    exact_topk(&fx.s, &e);
    assert_int_equal(q.n_out, 3);
    assert_int_equal(e.n_out, 3);
    for (size_t i = 0; i != 3; ++i)
        assert_int_equal(out[i].index, exact[i].index);
    free(excluded);
    fixture_dispose(&fx);
}

/* Probing every cell is the exact scan: the same items, scores and order as recd_scan_topk, for each model kind. */
static void test_ann_all_cells_is_exact(void **state)
{
    static const uint32_t kinds[] = {RECD_MODEL_ALS, RECD_MODEL_BPR, RECD_MODEL_BIASED_MF};
    for (size_t kind = 0; kind != 3; ++kind) {
        ann_fixture_t fx;
        fixture_make(&fx, 5000, kinds[kind] != RECD_MODEL_ALS, 3);
        fx.s.kind = kinds[kind];
        float user_bias[N_USERS];
        for (size_t u = 0; u != N_USERS; ++u)
            user_bias[u] = (float)u / 100.0f;
        if (kinds[kind] == RECD_MODEL_BIASED_MF) {
            fx.s.user_bias = user_bias;
            fx.s.n_users = N_USERS;
            fx.s.global_bias = 3.5f;
        }
        recd_scored_t a[K], b[K];
        uint32_t excluded[4] = {7, 7, 4999, 123};
        for (size_t u = 0; u != 30; ++u) {
            recd_scan_query_t qa = {.vec = fx.cat.users + u * N_FACTORS,
                                    .user = (int64_t)u,
                                    .k = K,
                                    .excluded = excluded,
                                    .n_excluded = u % 2 ? 4 : 0,
                                    .approximate = 1,
                                    .out = a};
            recd_scan_query_t qb = qa;
            qb.out = b;
            recd_ann_topk_probe(&fx.s, &qa, 1, recd_ann_n_lists(fx.ann));
            exact_topk(&fx.s, &qb);
            assert_int_equal(qa.n_out, qb.n_out);
            assert_memory_equal(a, b, qa.n_out * sizeof(recd_scored_t));
        }
        fixture_dispose(&fx);
    }
}

/* Equal scores are answered by ascending index, as recd_topk answers them; a popularity scorer is answered exactly. */
static void test_ann_ties_and_fallback(void **state)
{
    enum { n = 400, f = 8 };
    float *items = calloc(n * f, sizeof(float));
    uint64_t rng = 3;
    for (size_t i = 0; i != n * f; ++i)
        items[i] = (float)(recd_rand_uniform(&rng) - 0.5);
    for (size_t i = 300; i != 310; ++i) /* ten copies of item 5 */
        memcpy(items + i * f, items + 5 * f, f * sizeof(float));
    recd_ann_params_t p;
    char err[256];
    recd_ann_params_init(&p);
    p.n_lists = 20;
    recd_ann_t *ann = recd_ann_build(items, NULL, n, f, &p, err, sizeof(err));
    assert_non_null(ann);
    recd_scorer_t s = {.kind = RECD_MODEL_ALS, .n_factors = f, .n_items = n, .item_factors = items, .ann = ann};
    recd_scored_t out[6];
    recd_scan_query_t q = {.vec = items + 5 * f, .user = -1, .k = 6, .approximate = 1, .out = out};
    recd_ann_topk_probe(&s, &q, 1, 20);
    assert_int_equal(q.n_out, 6);
    const uint32_t want[6] = {5, 300, 301, 302, 303, 304};
    for (size_t i = 0; i != 6; ++i) {
        assert_int_equal(out[i].index, want[i]);
        assert_true(out[i].score == out[0].score);
    }
    /* a popularity scorer has nothing to search: the exact answer */
    float pop[n];
    for (size_t i = 0; i != n; ++i)
        pop[i] = (float)(i % 7);
    recd_scorer_t ps = {.kind = RECD_MODEL_POPULARITY, .n_items = n, .popularity = pop, .ann = ann};
    recd_ann_topk(&ps, &q, 1);
    assert_int_equal(q.n_out, 6);
    assert_int_equal(out[0].index, 6);
    assert_int_equal(out[1].index, 13);
    recd_ann_free(ann);
    free(items);
}

/* The same inputs and seed give the same bytes, whatever the build's thread count; another seed gives others. */
static void test_ann_deterministic(void **state)
{
    support_catalogue_spec_t spec = {
        .n_items = 5000, .n_users = 1, .n_factors = N_FACTORS, .n_topics = 50, .with_bias = 1, .seed = 11};
    support_catalogue_t cat;
    recd_ann_params_t p;
    char err[256];
    support_catalogue_generate(&spec, &cat);
    recd_ann_params_init(&p);
    p.threads = 1;
    recd_ann_t *a = recd_ann_build(cat.items, cat.item_bias, spec.n_items, N_FACTORS, &p, err, sizeof(err));
    p.threads = 2;
    recd_ann_t *b = recd_ann_build(cat.items, cat.item_bias, spec.n_items, N_FACTORS, &p, err, sizeof(err));
    p.seed += 1;
    recd_ann_t *c = recd_ann_build(cat.items, cat.item_bias, spec.n_items, N_FACTORS, &p, err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    size_t na, nb, nc;
    const void *ba = recd_ann_bytes(a, &na), *bb = recd_ann_bytes(b, &nb), *bc = recd_ann_bytes(c, &nc);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    assert_int_equal(na, nc);
    assert_memory_not_equal(ba, bc, na);
    recd_ann_free(a);
    recd_ann_free(b);
    recd_ann_free(c);
    support_catalogue_dispose(&cat);
}

/* A copy of the bytes, mapped, answers exactly as the index that built them. */
static void test_ann_round_trip(void **state)
{
    ann_fixture_t fx;
    char err[256] = "";
    fixture_make(&fx, N_ITEMS, 1, 0);
    size_t size;
    const void *bytes = recd_ann_bytes(fx.ann, &size);
    void *copy = aligned_alloc(64, (size + 63) / 64 * 64);
    memcpy(copy, bytes, size);
    recd_ann_t *mapped = recd_ann_map(copy, size, err, sizeof(err));
    assert_non_null(mapped);
    assert_int_equal(recd_ann_n_lists(mapped), recd_ann_n_lists(fx.ann));
    assert_int_equal(recd_ann_n_probe(mapped), recd_ann_n_probe(fx.ann));
    assert_int_equal(recd_ann_set_n_probe(mapped, 1), RECD_EINVAL); /* a mapped index is read-only */
    recd_scorer_t ms = fx.s;
    ms.ann = mapped;
    recd_scored_t a[K], b[K];
    uint32_t excluded[3] = {1, 2, 3};
    for (size_t u = 0; u != N_USERS; ++u) {
        recd_scan_query_t qa = {.vec = fx.cat.users + u * N_FACTORS,
                                .user = -1,
                                .k = K,
                                .excluded = excluded,
                                .n_excluded = 3,
                                .approximate = 1,
                                .out = a};
        recd_scan_query_t qb = qa;
        qb.out = b;
        recd_ann_topk(&fx.s, &qa, 1);
        recd_ann_topk(&ms, &qb, 1);
        assert_int_equal(qa.n_out, qb.n_out);
        assert_memory_equal(a, b, qa.n_out * sizeof(recd_scored_t));
    }
    recd_ann_free(mapped);
    free(copy);
    fixture_dispose(&fx);
}

/* An index that does not belong to the scorer is refused, with a message. */
static void test_ann_check_scorer(void **state)
{
    ann_fixture_t fx;
    char err[256] = "";
    fixture_make(&fx, 3000, 1, 1);
    recd_scorer_t s = fx.s;
    s.n_items = 2999;
    assert_int_equal(recd_ann_check_scorer(fx.ann, &s, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "3000 items"));
    s = fx.s;
    s.kind = RECD_MODEL_ALS; /* ALS ignores item biases: the index searched them */
    assert_int_equal(recd_ann_check_scorer(fx.ann, &s, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "biases"));
    s = fx.s;
    s.kind = RECD_MODEL_POPULARITY;
    assert_int_equal(recd_ann_check_scorer(fx.ann, &s, err, sizeof(err)), RECD_EINVAL);
    /* searched anyway with fewer items than it indexes, it answers exactly instead of reading past them */
    s = fx.s;
    s.n_items = 2000;
    recd_scored_t a[K], b[K];
    recd_scan_query_t qa = {.vec = fx.cat.users, .user = -1, .k = K, .approximate = 1, .out = a}, qb = qa;
    qb.out = b;
    recd_ann_topk(&s, &qa, 1);
    exact_topk(&s, &qb);
    assert_int_equal(qa.n_out, K);
    assert_memory_equal(a, b, sizeof(a));
    fixture_dispose(&fx);
}

/* Maps bytes that may be corrupt; when they pass, queries must still answer only real, distinct, non-excluded items. */
static int map_and_query(const void *bytes, size_t size, const recd_scorer_t *s, const float *user)
{
    char err[256] = "";
    recd_ann_t *a = recd_ann_map(bytes, size, err, sizeof(err));
    if (a == NULL) {
        assert_true(strlen(err) > 0);
        return 0;
    }
    recd_scorer_t ms = *s;
    ms.ann = a;
    if (recd_ann_check_scorer(a, &ms, err, sizeof(err)) == RECD_OK) {
        recd_scored_t out[K];
        uint32_t excluded[1] = {0};
        recd_scan_query_t q = {
            .vec = user, .user = -1, .k = K, .excluded = excluded, .n_excluded = 1, .approximate = 1, .out = out};
        recd_ann_topk(&ms, &q, 1);
        assert_true(q.n_out <= K);
        for (size_t i = 0; i != q.n_out; ++i) {
            assert_true(out[i].index < s->n_items);
            assert_int_not_equal(out[i].index, 0);
        }
        assert_sorted(out, q.n_out);
    }
    recd_ann_free(a);
    return 1;
}

static void put_u32(uint8_t *b, size_t off, uint32_t v)
{
    memcpy(b + off, &v, 4);
}

static uint64_t get_u64(const uint8_t *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

/* Truncated, aimed and random corruptions of the bytes are refused (or harmless), never a bad read (run under ASan). */
static void test_ann_corrupt_bytes(void **state)
{
    ann_fixture_t fx;
    fixture_make(&fx, 3000, 0, 2);
    size_t size;
    const uint8_t *good = recd_ann_bytes(fx.ann, &size);
    uint8_t *b = aligned_alloc(64, (size + 63) / 64 * 64);
    const float *user = fx.cat.users;

    memcpy(b, good, size);
    assert_int_equal(map_and_query(b, size, &fx.s, user), 1);
    /* every truncation is refused: the size is in the header */
    for (size_t len = 0; len < size; len += len < 256 ? 1 : 97) {
        char err[256] = "";
        void *t = malloc(len + 8);
        memcpy(t, good, len);
        assert_null(recd_ann_map(len != 0 ? t : NULL, len, err, sizeof(err)));
        assert_true(strlen(err) > 0);
        free(t);
    }
    /* aimed: each header field, an item out of range, a repeated item, lists out of order */
    const size_t fields[] = {0, 8, 12, 16, 20, 24, 32, 36, 40, 56, 64, 72, 80, 88};
    for (size_t i = 0; i != sizeof(fields) / sizeof(fields[0]); ++i) {
        const uint32_t values[] = {0, 1, 0x7fffffffu, 0xffffffffu, 3001};
        for (size_t v = 0; v != sizeof(values) / sizeof(values[0]); ++v) {
            memcpy(b, good, size);
            put_u32(b, fields[i], values[v]);
            map_and_query(b, size, &fx.s, user);
        }
    }
    uint64_t off_start = get_u64(good, 72), off_items = get_u64(good, 80);
    char err[256];
    memcpy(b, good, size);
    put_u32(b, off_items + 4 * 10, 3000);
    assert_null(recd_ann_map(b, size, err, sizeof(err)));
    assert_non_null(strstr(err, "out of range or repeated"));
    memcpy(b, good, size);
    memcpy(b + off_items + 4 * 11, b + off_items + 4 * 12, 4);
    assert_null(recd_ann_map(b, size, err, sizeof(err)));
    memcpy(b, good, size);
    put_u32(b, off_start + 4 * 1, 2999); /* list 0 now ends after list 1 starts */
    assert_null(recd_ann_map(b, size, err, sizeof(err)));
    /* random: flip 1..4 bytes anywhere, 2000 times */
    uint64_t rng = 99;
    size_t refused = 0;
    for (int round = 0; round != 2000; ++round) {
        memcpy(b, good, size);
        int flips = 1 + (int)recd_rand_below(&rng, 4);
        for (int k = 0; k != flips; ++k) {
            size_t at = (size_t)recd_rand_below(&rng, round % 2 ? size : 128);
            b[at] ^= (uint8_t)(1u << recd_rand_below(&rng, 8));
        }
        refused += map_and_query(b, size, &fx.s, user) == 0;
    }
    print_message("random flips: %zu of 2000 refused\n", refused);
    assert_true(refused > 0);
    free(b);
    fixture_dispose(&fx);
}

/* Writes an ALS artifact of the fixture's first n items with `index` as its ANN section, opens it; NULL with err on failure. */
static recd_model_t *open_with_index(const ann_fixture_t *fx, size_t n, const void *index, size_t size, char *err, size_t errlen)
{
    char dir[] = "/tmp/recd-test-ann-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/m.recd", dir);
    char **ids = malloc(n * sizeof(char *)), user0[] = "u0";
    for (size_t i = 0; i != n; ++i)
        assert_true(asprintf(&ids[i], "i%zu", i) > 0);
    const char *user_ids[] = {user0};
    float *pop = calloc(n, sizeof(float));
    uint64_t row_ptr[2] = {0, 0};
    recd_csr_t ui = {.n_rows = 1, .n_cols = n, .row_ptr = row_ptr};
    recd_artifact_extra_t extra = {RECD_ARTIFACT_ANN_INDEX, index, size};
    recd_model_spec_t spec = {.kind = RECD_MODEL_ALS,
                              .n_factors = N_FACTORS,
                              .n_users = 1,
                              .n_items = n,
                              .user_ids = user_ids,
                              .item_ids = (const char *const *)ids,
                              .user_factors = fx->cat.users,
                              .item_factors = fx->cat.items,
                              .item_popularity = pop,
                              .user_items = &ui,
                              .metadata_json = "{}",
                              .extras = &extra,
                              .n_extras = 1};
    assert_int_equal(recd_model_write(&spec, path, err, errlen), RECD_OK);
    recd_model_t *m = recd_model_open(path, err, errlen);
    unlink(path);
    rmdir(dir);
    for (size_t i = 0; i != n; ++i)
        free(ids[i]);
    free(ids);
    free(pop);
    return m;
}

/* A model opens with its index and answers through it; an index that is corrupt or made for other items fails the load. */
static void test_ann_in_artifact(void **state)
{
    ann_fixture_t fx;
    char err[512] = "";
    fixture_make(&fx, 3000, 0, 4);
    size_t size;
    const uint8_t *bytes = recd_ann_bytes(fx.ann, &size);
    recd_model_t *m = open_with_index(&fx, 3000, bytes, size, err, sizeof(err));
    if (m == NULL)
        fail_msg("open: %s", err);
    assert_non_null(recd_model_ann(m));
    assert_int_equal(recd_ann_n_probe(recd_model_ann(m)), 4);
    recd_scorer_t s;
    recd_model_scorer(m, &s);
    assert_ptr_equal(s.ann, recd_model_ann(m));
    recd_scored_t a[K], b[K];
    recd_scan_query_t qa = {.vec = fx.cat.users, .user = -1, .k = K, .approximate = 1, .out = a}, qb = qa;
    qb.out = b;
    recd_ann_topk(&s, &qa, 1);
    recd_ann_topk(&fx.s, &qb, 1);
    assert_int_equal(qa.n_out, K);
    assert_memory_equal(a, b, sizeof(a));
    recd_model_release(m);

    /* made for 3000 items, stored with 2999 */
    assert_null(open_with_index(&fx, 2999, bytes, size, err, sizeof(err)));
    assert_non_null(strstr(err, "bad ANN index section: ANN index: built for 3000 items"));
    /* a list entry out of range (the checksum covers the bytes as written, so only the index's own checks can tell) */
    uint8_t *bad = aligned_alloc(64, (size + 63) / 64 * 64);
    memcpy(bad, bytes, size);
    uint64_t off_items = get_u64(bytes, 80);
    put_u32(bad, off_items, 70000);
    assert_null(open_with_index(&fx, 3000, bad, size, err, sizeof(err)));
    assert_non_null(strstr(err, "bad ANN index section: ANN index: list entry 0 (item 70000) is out of range"));
    assert_null(open_with_index(&fx, 3000, bytes, size - 64, err, sizeof(err)));
    assert_non_null(strstr(err, "bad ANN index section"));
    free(bad);
    fixture_dispose(&fx);
}

/* Bad build parameters and factors are refused with a message. */
static void test_ann_build_rejects(void **state)
{
    float items[4 * 2] = {1, 0, 0, 1, 1, 1, NAN, 0};
    recd_ann_params_t p;
    char err[256] = "";
    recd_ann_params_init(&p);
    p.n_lists = 2;
    assert_null(recd_ann_build(items, NULL, 4, 2, &p, err, sizeof(err))); /* the NaN */
    assert_non_null(strstr(err, "item 3"));
    items[6] = 0.5f;
    p.n_lists = 5;
    assert_null(recd_ann_build(items, NULL, 4, 2, &p, err, sizeof(err)));
    p.n_lists = 2;
    p.n_probe = 3;
    assert_null(recd_ann_build(items, NULL, 4, 2, &p, err, sizeof(err)));
    p.n_probe = 2;
    recd_ann_t *a = recd_ann_build(items, NULL, 4, 2, &p, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(recd_ann_set_n_probe(a, 3), RECD_EINVAL);
    assert_int_equal(recd_ann_set_n_probe(a, 1), RECD_OK);
    assert_int_equal(recd_ann_n_probe(a), 1);
    recd_ann_free(a);
}

/* Tuning picks the smallest probe count that meets the target on the users given. */
static void test_ann_tune(void **state)
{
    ann_fixture_t fx;
    double recall = 0.0, lower = 0.0;
    fixture_make(&fx, N_ITEMS, 0, 1);
    assert_int_equal(recd_ann_tune_n_probe(fx.ann, &fx.s, fx.cat.users, NULL, N_USERS, K, 0.97, &recall), RECD_OK);
    uint32_t chosen = recd_ann_n_probe(fx.ann);
    assert_true(recall >= 0.97);
    assert_true(chosen > 1);
    assert_int_equal(recd_ann_recall(&fx.s, fx.cat.users, NULL, N_USERS, K, chosen / 2, &lower), RECD_OK);
    assert_true(lower < 0.97);
    fixture_dispose(&fx);
}

int test_ann_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ann_recall_als),
        cmocka_unit_test(test_ann_recall_bpr_bias),
        cmocka_unit_test(test_ann_exclusions),
        cmocka_unit_test(test_ann_exclusions_leave_few),
        cmocka_unit_test(test_ann_all_cells_is_exact),
        cmocka_unit_test(test_ann_ties_and_fallback),
        cmocka_unit_test(test_ann_deterministic),
        cmocka_unit_test(test_ann_round_trip),
        cmocka_unit_test(test_ann_check_scorer),
        cmocka_unit_test(test_ann_corrupt_bytes),
        cmocka_unit_test(test_ann_in_artifact),
        cmocka_unit_test(test_ann_build_rejects),
        cmocka_unit_test(test_ann_tune),
    };
    return cmocka_run_group_tests_name("ann", tests, NULL, NULL);
}
