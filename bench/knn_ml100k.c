/* knn_ml100k.c: scores item-kNN (cosine) on MovieLens 100K, choosing neighbours and shrinkage on a validation split. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "models/model.h"
#include "base/clock.h"
#include "train/ingest.h"
#include "bench/bench_common.h"

/*
 * Reads u.data as recd-train does (recd_ingest_file, duplicates summed), splits it per user 75/25 with --seed (the
 * foundation protocol), splits that train part again 75/25 with --validate-seed, and scores every (values, N, shrink)
 * of the grid on the validation part only. The setting with the best validation nDCG@10 is then built from the whole
 * train part and scored on the test part. The model: S = RᵀR over the train matrix R (users × items, binary or with
 * the ratings as values) by cblas_sgemm, sim(i, j) = S_ij / (|r_i| |r_j| + shrink), sim(i, i) = 0; each item's row keeps
 * its N largest similarities; score(u, j) = Σ_{i ∈ train(u)} sim(i, j).
 */

typedef struct st_knn_t {
    size_t n_items;
    float *sim;             /* n_items × n_items, row i = item i's kept neighbours, zeros elsewhere */
    const recd_csr_t *user; /* the train rows the scores sum over */
} knn_t;

typedef struct st_pair_t {
    float v;
    uint32_t i;
} pair_t;

static void *xmalloc(size_t n)
{
    void *p = malloc(n != 0 ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "knn_ml100k: out of memory\n");
        abort();
    }
    return p;
}

static int by_value_desc(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* ties: lower index first, so the result is deterministic */
}

/* Builds knn->sim from m; binary uses 1 for every stored entry. neighbours == 0 keeps all. */
static void knn_build(knn_t *knn, const recd_csr_t *m, int binary, size_t neighbours, float shrink)
{
    size_t n = m->n_cols, n_users = m->n_rows;
    float *R = calloc(n_users * n, sizeof(float)), *norm = xmalloc(n * sizeof(float));
    pair_t *row = xmalloc(n * sizeof(pair_t));
    if (R == NULL) {
        fprintf(stderr, "knn_ml100k: out of memory\n");
        abort();
    }
    for (size_t u = 0; u != n_users; ++u)
        for (uint64_t p = m->row_ptr[u]; p != m->row_ptr[u + 1]; ++p)
            R[u * n + m->col[p]] = binary ? 1.0f : m->val[p];
    knn->n_items = n;
    knn->user = m;
    knn->sim = xmalloc(n * n * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)n_users, 1.0f, R, (int)n, R, (int)n, 0.0f, knn->sim,
                (int)n);
    for (size_t i = 0; i != n; ++i)
        norm[i] = sqrtf(knn->sim[i * n + i]);
    for (size_t i = 0; i != n; ++i) {
        float *s = knn->sim + i * n;
        for (size_t j = 0; j != n; ++j) {
            float d = norm[i] * norm[j] + shrink;
            s[j] = (i == j || d == 0) ? 0.0f : s[j] / d;
        }
        if (neighbours != 0 && neighbours < n) {
            for (size_t j = 0; j != n; ++j)
                row[j] = (pair_t){s[j], (uint32_t)j};
            qsort(row, n, sizeof(pair_t), by_value_desc);
            for (size_t r = neighbours; r != n; ++r)
                s[row[r].i] = 0.0f;
        }
    }
    free(row);
    free(norm);
    free(R);
}

static void knn_score(void *data, uint32_t user, float *scores)
{
    const knn_t *knn = data;
    const recd_csr_t *m = knn->user;
    memset(scores, 0, knn->n_items * sizeof(float));
    for (uint64_t p = m->row_ptr[user]; p != m->row_ptr[user + 1]; ++p)
        cblas_saxpy((int)knn->n_items, 1.0f, knn->sim + (size_t)m->col[p] * knn->n_items, 1, scores, 1);
}

/* Builds and scores one setting; returns the build + evaluation seconds. */
static double run(const recd_csr_t *train, const recd_csr_t *test, int binary, size_t neighbours, float shrink, uint32_t threads,
                  recd_ranking_metrics_t *out, double *build_seconds)
{
    knn_t knn;
    double t0 = recd_monotonic_seconds();
    knn_build(&knn, train, binary, neighbours, shrink);
    double t1 = recd_monotonic_seconds();
    recd_eval_ranking(train, test, 10, knn_score, &knn, threads, out);
    double t2 = recd_monotonic_seconds();
    free(knn.sim);
    *build_seconds = t1 - t0;
    return t2 - t0;
}

int main(int argc, char **argv)
{
    static const size_t neighbour_grid[] = {20, 50, 100, 0}; /* 0 = all */
    static const float shrink_grid[] = {0, 10, 50};
    char path[4096], err[512];
    uint64_t seed = 42, validate = 43;
    uint32_t threads = 2;

    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--validate-seed") == 0 && i + 1 < argc)
            validate = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (uint32_t)atoi(argv[++i]);
        else {
            printf("Usage: %s [--seed 42] [--validate-seed 43] [--threads 2]\n"
                   "Reads ${RECD_DATA_DIR:-" RECD_SOURCE_DIR "/../shared/data}/ml-100k/u.data.\n",
                   argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    bench_ml100k_path(path, sizeof(path));

    recd_csr_t all, train, test, inner, valid;
    if (bench_load_csr(path, 0, &all, NULL, err, sizeof(err)) != RECD_OK) {
        printf("knn_ml100k: skipped: %s: %s\n", path, err);
        return 0;
    }
    if (recd_split_stratified(&all, 0.25, seed, &train, &test) != RECD_OK ||
        recd_split_stratified(&train, 0.25, validate, &inner, &valid) != RECD_OK)
        return 1;

    printf("# %s: %zu users, %zu items; split seed %llu: train %zu / test %zu; validation seed %llu: inner %zu / validation %zu\n",
           path, all.n_rows, all.n_cols, (unsigned long long)seed, train.nnz, test.nnz, (unsigned long long)validate, inner.nnz,
           valid.nnz);
    printf("# validation (inner train -> validation part)\n# values N shrink P@10 R@10 nDCG@10 MAP@10 HR@10 build_s total_s\n");
    int best_binary = 1;
    size_t best_n = 0;
    float best_shrink = 0;
    double best_ndcg = -1;
    for (int binary = 1; binary >= 0; --binary) {
        for (size_t a = 0; a != sizeof(neighbour_grid) / sizeof(neighbour_grid[0]); ++a) {
            for (size_t b = 0; b != sizeof(shrink_grid) / sizeof(shrink_grid[0]); ++b) {
                recd_ranking_metrics_t m;
                double build, total = run(&inner, &valid, binary, neighbour_grid[a], shrink_grid[b], threads, &m, &build);
                char nbuf[16];
                snprintf(nbuf, sizeof(nbuf), "%zu", neighbour_grid[a]);
                printf("%s %s %g %.4f %.4f %.4f %.4f %.4f %.3f %.3f\n", binary ? "binary" : "ratings",
                       neighbour_grid[a] == 0 ? "all" : nbuf, shrink_grid[b], m.precision, m.recall, m.ndcg, m.map, m.hit_rate,
                       build, total);
                fflush(stdout);
                if (m.ndcg > best_ndcg) {
                    best_ndcg = m.ndcg;
                    best_binary = binary;
                    best_n = neighbour_grid[a];
                    best_shrink = shrink_grid[b];
                }
            }
        }
    }

    recd_ranking_metrics_t m;
    double build, total = run(&train, &test, best_binary, best_n, best_shrink, threads, &m, &build);
    char nbuf[16];
    snprintf(nbuf, sizeof(nbuf), "%zu", best_n);
    printf("# chosen on validation (nDCG@10 %.4f): %s, N %s, shrink %g; test part (train -> test)\n", best_ndcg,
           best_binary ? "binary" : "ratings", best_n == 0 ? "all" : nbuf, best_shrink);
    printf("# P@10 R@10 nDCG@10 MAP@10 HR@10 MRR@10 AUC coverage build_s total_s\n");
    printf("test %.4f %.4f %.4f %.4f %.4f %.4f %.4f %.4f %.3f %.3f\n", m.precision, m.recall, m.ndcg, m.map, m.hit_rate, m.mrr,
           m.auc, m.coverage, build, total);

    recd_csr_dispose(&all);
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
    recd_csr_dispose(&inner);
    recd_csr_dispose(&valid);
    return 0;
}
