/* scan: queries per second of recd_scan_topk against the scoring paths before it, on one thread.
 *
 *   scan [--items N[,N...]] [--factors F] [--rounds R] [--seconds S] [--types f32,bf16,int8] [--batches 1,32]
 *        (defaults: --items 1682,1000000 --factors 64 --rounds 5 --seconds 0.3 --types f32,bf16,int8 --batches 1,32)
 *
 * A random ALS-kind catalogue of N items (factors in [-0.1, 0.1], 1024 random user vectors, top 10, no exclusions) per
 * size. Each round runs every method once, in turn, for about S seconds (and at least one batch) so that peers alternate
 * on a shared machine; the figures are the median and the min..max over the rounds, in queries per second:
 *   sgemv+topk         what recd did before the scan: OpenBLAS sgemv into an n_items array, then recd_topk (1 thread)
 *   score+topk         recd_scorer_score (the scan's own kernel) into an n_items array, then recd_topk
 *   scan <type> b<B>   recd_scan_topk over batches of B queries with the item factors of <type>: f32, bf16, fp16, int8
 *                      (the artifact's compact types), or tiles (the bf16 tiles recd builds on a CPU with AVX-512 BF16);
 *                      all but f32 choose candidates approximately and re-rank them from f32: the "reranked" column is
 *                      how many per query
 * Prints the OpenBLAS core and the scan kernel first. Never part of ctest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include "models/bf16_tiles.h"
#include "models/scan.h"

char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);

enum { N_USERS = 1024, K = 10, MAX_BATCH = 256, MAX_LIST = 8 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float next_float(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((rng * 0x2545f4914f6cdd1dULL) >> 40) / (float)(1 << 24) * 0.2f - 0.1f;
}

/* A comma list of numbers or names into items; returns how many. */
static size_t split_list(char *s, char **items)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok != NULL && n != MAX_LIST; tok = strtok(NULL, ","))
        items[n++] = tok;
    return n;
}

typedef struct st_method_t {
    char name[32];
    int old_path;  /* 1: sgemv + recd_topk, 2: recd_scorer_score + recd_topk, 0: the scan */
    uint32_t type; /* the scan's factor type */
    size_t batch;
    double qps[64];
    int tiles;                /* 1: the bf16 tiles (models/bf16_tiles.h) */
    size_t queries, reranked; /* the scan's queries, and the candidates they re-ranked from the f32 rows */
} method_t;

typedef struct st_setup_t {
    recd_scorer_t f32;
    void *bf16, *fp16, *int8;
    recd_bf16_tiles_t *tiles;
    float *scales, *users, *scores;
    recd_scored_t *out;
    recd_scan_scratch_t *scratch;
    size_t next_user;
} setup_t;

/* Runs m for about seconds (at least one batch); returns queries per second. */
static double run(setup_t *st, method_t *m, double seconds)
{
    recd_scorer_t s = st->f32;
    if (m->tiles)
        s.bf16_tiles = st->tiles;
    if (m->type != RECD_FACTORS_F32) {
        s.factor_type = m->type;
        s.item_factors_compact = m->type == RECD_FACTORS_BF16 ? st->bf16 : m->type == RECD_FACTORS_FP16 ? st->fp16 : st->int8;
        s.item_scales = m->type == RECD_FACTORS_INT8 ? st->scales : NULL;
        recd_compact_bounds(&s, &s.compact_bounds);
    }
    size_t done = 0, n = s.n_items, f = s.n_factors;
    double t0 = now_s(), t;
    do {
        if (m->old_path != 0) {
            const float *x = st->users + (st->next_user++ % N_USERS) * f;
            if (m->old_path == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)f, 1.0f, s.item_factors, (int)f, x, 1, 0.0f, st->scores, 1);
            else
                recd_scorer_score(&s, x, -1, st->scores);
            recd_topk(st->scores, n, K, st->out);
            ++done;
        } else {
            recd_scan_query_t q[MAX_BATCH];
            for (size_t i = 0; i != m->batch; ++i)
                q[i] = (recd_scan_query_t){
                    .vec = st->users + (st->next_user++ % N_USERS) * f, .user = -1, .k = K, .out = st->out + i * K};
            recd_scan_topk(&s, q, m->batch, st->scratch);
            for (size_t i = 0; i != m->batch; ++i)
                m->reranked += q[i].n_candidates;
            m->queries += m->batch;
            done += m->batch;
        }
        t = now_s();
    } while (t - t0 < seconds);
    return (double)done / (t - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    char items_arg[128] = "1682,1000000", types_arg[64] = "f32,bf16,int8", batches_arg[64] = "1,32";
    uint32_t factors = 64, rounds = 5;
    double seconds = 0.3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--items") == 0)
            snprintf(items_arg, sizeof(items_arg), "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--types") == 0)
            snprintf(types_arg, sizeof(types_arg), "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--batches") == 0)
            snprintf(batches_arg, sizeof(batches_arg), "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--factors") == 0)
            factors = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else {
            fprintf(stderr,
                    "usage: %s [--items N,..] [--factors F] [--rounds R] [--seconds S] [--types f32,bf16,fp16,int8] "
                    "[--batches 1,32]\n",
                    argv[0]);
            return 2;
        }
    }
    if (factors == 0 || rounds == 0 || rounds > 64 || argc % 2 == 0) {
        fprintf(stderr, "%s: bad arguments (see the comment at the top of bench/scan.c)\n", argv[0]);
        return 2;
    }
    char *item_list[MAX_LIST], *type_list[MAX_LIST], *batch_list[MAX_LIST];
    size_t n_sizes = split_list(items_arg, item_list), n_types = split_list(types_arg, type_list),
           n_batches = split_list(batches_arg, batch_list);
    openblas_set_num_threads(1);
    printf("openblas core %s, scan kernel %s, %u factors, top %d, %u rounds of %.2f s per method\n", openblas_get_corename(),
           recd_scan_kernel(), factors, K, rounds, seconds);

    for (size_t si = 0; si != n_sizes; ++si) {
        size_t n = (size_t)strtoull(item_list[si], NULL, 10);
        setup_t st = {0};
        float *items = malloc(n * factors * sizeof(float));
        st.users = malloc((size_t)N_USERS * factors * sizeof(float));
        st.scores = malloc(n * sizeof(float));
        st.out = malloc((size_t)MAX_BATCH * K * sizeof(recd_scored_t));
        st.bf16 = malloc(n * factors * 2);
        st.fp16 = malloc(n * factors * 2);
        st.int8 = malloc(n * factors);
        st.scales = malloc(n * sizeof(float));
        st.scratch = recd_scan_scratch_new();
        if (!items || !st.users || !st.scores || !st.out || !st.bf16 || !st.fp16 || !st.int8 || !st.scales) {
            fprintf(stderr, "%s: out of memory for %zu items\n", argv[0], n);
            return 1;
        }
        for (size_t i = 0; i != n * factors; ++i)
            items[i] = next_float();
        for (size_t i = 0; i != (size_t)N_USERS * factors; ++i)
            st.users[i] = next_float();
        recd_factors_encode(RECD_FACTORS_BF16, items, n, factors, st.bf16, NULL);
        recd_factors_encode(RECD_FACTORS_FP16, items, n, factors, st.fp16, NULL);
        recd_factors_encode(RECD_FACTORS_INT8, items, n, factors, st.int8, st.scales);
        st.tiles = recd_bf16_tiles_supported() ? recd_bf16_tiles_build(items, n, factors, NULL) : NULL;
        st.f32 = (recd_scorer_t){.kind = RECD_MODEL_ALS, .n_factors = factors, .n_users = 0, .n_items = n, .item_factors = items};

        method_t methods[2 + MAX_LIST * MAX_LIST];
        size_t n_methods = 0;
        methods[n_methods++] = (method_t){.name = "sgemv+topk", .old_path = 1, .batch = 1};
        methods[n_methods++] = (method_t){.name = "score+topk", .old_path = 2, .batch = 1};
        for (size_t ti = 0; ti != n_types; ++ti) {
            int tiles = strcmp(type_list[ti], "tiles") == 0;
            int type = tiles ? RECD_FACTORS_F32 : recd_factor_type_parse(type_list[ti]);
            if (tiles && st.tiles == NULL) {
                printf("tiles: skipped, this CPU has no AVX-512 BF16\n");
                continue;
            }
            if (type < 0) {
                fprintf(stderr, "%s: unknown type %s\n", argv[0], type_list[ti]);
                return 2;
            }
            for (size_t bi = 0; bi != n_batches; ++bi) {
                method_t *m = &methods[n_methods++];
                *m = (method_t){.type = (uint32_t)type, .tiles = tiles, .batch = (size_t)atoi(batch_list[bi])};
                if (m->batch == 0 || m->batch > MAX_BATCH) {
                    fprintf(stderr, "%s: batch sizes are 1..%d\n", argv[0], MAX_BATCH);
                    return 2;
                }
                snprintf(m->name, sizeof(m->name), "scan %s b%zu", type_list[ti], m->batch);
            }
        }
        for (uint32_t r = 0; r != rounds; ++r)
            for (size_t mi = 0; mi != n_methods; ++mi)
                methods[mi].qps[r] = run(&st, &methods[mi], seconds);
        printf("\n%zu items x %u factors (f32 rows %.1f MB)\n", n, factors, (double)n * factors * 4 / 1e6);
        printf("  %-16s %12s %12s %12s %10s %8s %9s\n", "method", "median q/s", "min", "max", "us/query", "x old", "reranked");
        double base = 0;
        for (size_t mi = 0; mi != n_methods; ++mi) {
            double sorted[64];
            memcpy(sorted, methods[mi].qps, rounds * sizeof(double));
            qsort(sorted, rounds, sizeof(double), cmp_double);
            double median = rounds % 2 ? sorted[rounds / 2] : (sorted[rounds / 2 - 1] + sorted[rounds / 2]) / 2;
            if (mi == 0)
                base = median;
            double reranked = methods[mi].queries != 0 ? (double)methods[mi].reranked / (double)methods[mi].queries : 0;
            printf("  %-16s %12.0f %12.0f %12.0f %10.1f %8.2f %9.1f\n", methods[mi].name, median, sorted[0], sorted[rounds - 1],
                   1e6 / median, median / base, reranked);
        }
        fflush(stdout);
        recd_scan_scratch_free(st.scratch);
        free(items);
        free(st.users);
        free(st.scores);
        free(st.out);
        free(st.bf16);
        free(st.fp16);
        free(st.int8);
        free(st.scales);
        recd_bf16_tiles_free(st.tiles);
    }
    return 0;
}
