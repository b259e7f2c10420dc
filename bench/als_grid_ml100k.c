/* als_grid_ml100k.c: scores implicit ALS over an alpha x reg grid on MovieLens 100K (how recd-train's defaults were picked). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include "models/model.h"
#include "train/ingest.h"
#include "bench/bench_common.h"

/*
 * Reads u.data as recd-train does (recd_ingest_file, ids in order of appearance, duplicates summed), splits it per user
 * 75/25 with --seed (recd-train --evaluate's split), and with --validate SEED splits the train part again 75/25 and scores
 * on that validation part, so the test part is never read. Prints one line per (alpha, reg) with P/R/nDCG/MAP/HR@10.
 */

static size_t parse_list(const char *s, double *out, size_t cap)
{
    size_t n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL && n != cap; tok = strtok_r(NULL, ",", &save))
        out[n++] = atof(tok);
    free(copy);
    return n;
}

int main(int argc, char **argv)
{
    char path[4096], err[512];
    double alphas[64], regs[64];
    size_t n_alpha = parse_list("0.5,1,1.5,2,3,5,10,40", alphas, 64), n_reg = parse_list("0.1,1,5,10,20,30,40,50,70,100", regs, 64);
    uint64_t seed = 42, validate = 0;
    int use_validate = 0, binary = 0;
    uint32_t factors = 64, iterations = 15, threads = 2;

    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--alpha") == 0 && i + 1 < argc)
            n_alpha = parse_list(argv[++i], alphas, 64);
        else if (strcmp(argv[i], "--reg") == 0 && i + 1 < argc)
            n_reg = parse_list(argv[++i], regs, 64);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--validate") == 0 && i + 1 < argc)
            validate = strtoull(argv[++i], NULL, 10), use_validate = 1;
        else if (strcmp(argv[i], "--binary") == 0)
            binary = 1;
        else if (strcmp(argv[i], "--factors") == 0 && i + 1 < argc)
            factors = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
            iterations = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (uint32_t)atoi(argv[++i]);
        else {
            printf("Usage: %s [--alpha A,B,..] [--reg R,S,..] [--seed 42] [--validate SEED] [--binary] [--factors 64]\n"
                   "          [--iterations 15] [--threads 2]\n"
                   "Reads ${RECD_DATA_DIR:-" RECD_SOURCE_DIR "/../shared/data}/ml-100k/u.data.\n",
                   argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    bench_ml100k_path(path, sizeof(path));

    recd_csr_t all, train, test;
    if (bench_load_csr(path, binary, &all, NULL, err, sizeof(err)) != RECD_OK) {
        printf("als_grid_ml100k: skipped: %s: %s\n", path, err);
        return 0;
    }
    if (recd_split_stratified(&all, 0.25, seed, &train, &test) != RECD_OK)
        return 1;
    if (use_validate) { /* replace (train, test) by (inner train, validation): the test part is dropped unread */
        recd_csr_t inner, valid;
        if (recd_split_stratified(&train, 0.25, validate, &inner, &valid) != RECD_OK)
            return 1;
        recd_csr_dispose(&train);
        recd_csr_dispose(&test);
        train = inner;
        test = valid;
    }
    printf("# %s, split seed %llu%s%s: train %zu, scored %zu interactions; %u factors, %u iterations\n", path,
           (unsigned long long)seed, use_validate ? ", validation seed " : " (test part)",
           use_validate ? (snprintf(err, sizeof(err), "%llu", (unsigned long long)validate), err) : "", train.nnz, test.nnz,
           factors, iterations);
    printf("# alpha reg P@10 R@10 nDCG@10 MAP@10 HR@10\n");
    for (size_t a = 0; a != n_alpha; ++a) {
        for (size_t r = 0; r != n_reg; ++r) {
            recd_als_params_t p;
            recd_als_params_init(&p);
            p.factors = factors;
            p.iterations = iterations;
            p.hooks.threads = threads;
            p.hooks.seed = seed;
            p.alpha = (float)alphas[a];
            p.reg = (float)regs[r];
            float *X, *Y;
            if (recd_als_train(&train, &p, &X, &Y) != RECD_OK) {
                printf("%g %g failed\n", alphas[a], regs[r]);
                continue;
            }
            bench_factors_t s = {X, Y, factors, train.n_cols};
            recd_ranking_metrics_t m;
            recd_eval_ranking(&train, &test, 10, bench_score_factors, &s, threads, &m);
            printf("%g %g %.4f %.4f %.4f %.4f %.4f\n", alphas[a], regs[r], m.precision, m.recall, m.ndcg, m.map, m.hit_rate);
            fflush(stdout);
            free(X);
            free(Y);
        }
    }
    recd_csr_dispose(&all);
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
    return 0;
}
