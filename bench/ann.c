/* ann.c: the approximate index against the exact scan on a generated catalogue — build time, queries/s (median and spread
 * over rounds) and recall@10 at several probe counts, on one thread. See docs/ANN.md for the catalogue and the figures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "models/ann.h"
#include "tests/support/catalogue.h"

void openblas_set_num_threads(int num_threads);

typedef struct st_bench_options_t {
    size_t n_items, n_queries;
    uint32_t n_factors, n_topics, n_lists, rounds, build_threads, k, n_excluded;
    int with_bias;
    uint64_t seed;
    const char *probes;
} bench_options_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Queries/s of each round, sorted. */
static void report(const char *label, double *qps, uint32_t rounds, double recall, double exact_median)
{
    qsort(qps, rounds, sizeof(double), cmp_double);
    double median = rounds % 2 ? qps[rounds / 2] : (qps[rounds / 2 - 1] + qps[rounds / 2]) / 2.0;
    printf("%-14s %10.1f q/s  (min %.1f, max %.1f over %u rounds)", label, median, qps[0], qps[rounds - 1], rounds);
    if (recall >= 0.0)
        printf("  recall@k %.4f  speed-up %.1fx", recall, median / exact_median);
    printf("\n");
}

static double median_of(double *v, uint32_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static int parse_args(int argc, char **argv, bench_options_t *o)
{
    *o = (bench_options_t){.n_items = 1000000,
                           .n_queries = 200,
                           .n_factors = 64,
                           .n_topics = 1000,
                           .rounds = 5,
                           .build_threads = 1,
                           .k = 10,
                           .seed = 1,
                           .probes = "8,16,32,64,128"};
    for (int i = 1; i < argc; ++i) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--bias") == 0) {
            o->with_bias = 1;
            continue;
        }
        if (v == NULL)
            goto Usage;
        if (strcmp(argv[i], "--items") == 0)
            o->n_items = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--queries") == 0)
            o->n_queries = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--factors") == 0)
            o->n_factors = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--topics") == 0)
            o->n_topics = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--lists") == 0)
            o->n_lists = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0)
            o->rounds = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--build-threads") == 0)
            o->build_threads = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--k") == 0)
            o->k = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--excluded") == 0)
            o->n_excluded = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0)
            o->seed = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--probes") == 0)
            o->probes = v;
        else
            goto Usage;
        ++i;
    }
    if (o->n_items == 0 || o->n_queries == 0 || o->n_factors == 0 || o->rounds == 0 || o->k == 0)
        goto Usage;
    return 0;
Usage:
    fprintf(stderr, "usage: ann [--items N] [--factors F] [--topics T] [--bias] [--queries Q] [--lists L] [--probes P,P,...]\n"
                    "           [--rounds R] [--build-threads T] [--k K] [--excluded E] [--seed S]\n");
    return -1;
}

/* Runs the queries once, one at a time: the exact scan (recd_scan_topk without the index) or the index with n_probe cells.
 * Returns queries per second. */
static double run_round(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, int approximate, uint32_t n_probe,
                        recd_scan_scratch_t *scratch)
{
    recd_scorer_t exact = *s;
    exact.ann = NULL;
    double t0 = recd_monotonic_seconds();
    for (size_t i = 0; i != n; ++i) {
        if (approximate)
            recd_ann_topk_probe(s, &q[i], 1, n_probe);
        else
            recd_scan_topk(&exact, &q[i], 1, scratch);
    }
    return (double)n / (recd_monotonic_seconds() - t0);
}

int main(int argc, char **argv)
{
    bench_options_t o;
    char err[256];

    if (parse_args(argc, argv, &o) != 0)
        return 2;
    support_catalogue_spec_t spec = {.n_items = o.n_items,
                                     .n_users = o.n_queries,
                                     .n_factors = o.n_factors,
                                     .n_topics = o.n_topics,
                                     .with_bias = o.with_bias,
                                     .seed = o.seed};
    support_catalogue_t cat;
    double t0 = recd_monotonic_seconds();
    support_catalogue_generate(&spec, &cat);
    printf("catalogue: %zu items x %u factors, %u topics, %s, %zu queries (generated in %.1f s)\n", o.n_items, o.n_factors,
           o.n_topics, o.with_bias ? "with item biases (BPR)" : "no biases (ALS)", o.n_queries, recd_monotonic_seconds() - t0);

    recd_ann_params_t p;
    recd_ann_params_init(&p);
    p.n_lists = o.n_lists;
    p.threads = o.build_threads;
    p.seed = o.seed;
    t0 = recd_monotonic_seconds();
    recd_ann_t *ann = recd_ann_build(cat.items, cat.item_bias, o.n_items, o.n_factors, &p, err, sizeof(err));
    if (ann == NULL) {
        fprintf(stderr, "ann: %s\n", err);
        return 1;
    }
    size_t bytes;
    recd_ann_bytes(ann, &bytes);
    printf("build: %.1f s with %u thread(s): %u lists, bias weight %.2f, %zu bytes\n", recd_monotonic_seconds() - t0,
           o.build_threads, recd_ann_n_lists(ann), (double)recd_ann_bias_weight(ann), bytes);
    openblas_set_num_threads(1);

    recd_scorer_t s = {.kind = o.with_bias ? RECD_MODEL_BPR : RECD_MODEL_ALS,
                       .n_factors = o.n_factors,
                       .n_items = o.n_items,
                       .item_factors = cat.items,
                       .item_bias = cat.item_bias,
                       .ann = ann};
    recd_scan_scratch_t *scratch = recd_scan_scratch_new();
    recd_scan_query_t *q = recd_xcalloc(o.n_queries, sizeof(*q));
    recd_scored_t *out = recd_xmalloc(o.n_queries * o.k * sizeof(recd_scored_t));
    /* exclusions: each query's n_excluded items are drawn from its own exact top (the hardest case), half of them */
    uint32_t *excluded = recd_xcalloc(o.n_queries * (o.n_excluded + 1), sizeof(uint32_t));
    for (size_t i = 0; i != o.n_queries; ++i)
        q[i] = (recd_scan_query_t){.vec = cat.users + i * o.n_factors, .user = -1, .k = o.k, .out = out + i * o.k};
    if (o.n_excluded != 0) {
        recd_scored_t *top = recd_xmalloc(2 * o.n_excluded * sizeof(recd_scored_t));
        for (size_t i = 0; i != o.n_queries; ++i) {
            recd_scan_query_t e = q[i];
            e.k = 2 * o.n_excluded;
            e.out = top;
            run_round(&s, &e, 1, 0, 0, scratch);
            for (size_t j = 0; j != o.n_excluded && 2 * j < e.n_out; ++j)
                excluded[i * o.n_excluded + j] = top[2 * j].index;
            q[i].excluded = excluded + i * o.n_excluded;
            q[i].n_excluded = o.n_excluded;
        }
        free(top);
    }
    printf("k %u, %u excluded per query, one thread, %s dot-product kernel\n", o.k, o.n_excluded, recd_scan_kernel());

    double *qps = recd_xmalloc(o.rounds * sizeof(double));
    recd_scored_t *exact = recd_xmalloc(o.n_queries * o.k * sizeof(recd_scored_t));
    size_t *exact_n = recd_xmalloc(o.n_queries * sizeof(size_t));
    for (uint32_t r = 0; r != o.rounds; ++r)
        qps[r] = run_round(&s, q, o.n_queries, 0, 0, scratch);
    memcpy(exact, out, o.n_queries * o.k * sizeof(recd_scored_t));
    for (size_t i = 0; i != o.n_queries; ++i)
        exact_n[i] = q[i].n_out;
    double exact_qps[64];
    memcpy(exact_qps, qps, (o.rounds < 64 ? o.rounds : 64) * sizeof(double));
    double exact_median = median_of(exact_qps, o.rounds < 64 ? o.rounds : 64);
    report("exact", qps, o.rounds, -1.0, exact_median);

    char *list = recd_xstrdup(o.probes), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        uint32_t n_probe = (uint32_t)strtoul(tok, NULL, 10);
        if (n_probe == 0 || n_probe > recd_ann_n_lists(ann))
            continue;
        for (uint32_t r = 0; r != o.rounds; ++r)
            qps[r] = run_round(&s, q, o.n_queries, 1, n_probe, scratch);
        size_t found = 0, total = 0;
        for (size_t i = 0; i != o.n_queries; ++i) {
            for (size_t a = 0; a != exact_n[i]; ++a)
                for (size_t b = 0; b != q[i].n_out; ++b)
                    if (out[i * o.k + b].index == exact[i * o.k + a].index) {
                        ++found;
                        break;
                    }
            total += exact_n[i];
        }
        char label[32];
        snprintf(label, sizeof(label), "ivf probe %u", n_probe);
        report(label, qps, o.rounds, total != 0 ? (double)found / (double)total : 1.0, exact_median);
    }
    free(list);
    free(qps);
    free(exact);
    free(exact_n);
    free(excluded);
    free(out);
    free(q);
    recd_scan_scratch_free(scratch);
    recd_ann_free(ann);
    support_catalogue_dispose(&cat);
    return 0;
}
