/* als_speed.c: times recd's implicit ALS fit (wall, CPU, per iteration, peak RSS) on MovieLens 100K or an interaction file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <malloc.h>
#include <sys/resource.h>
#include <cblas.h>
#include "models/model.h"
#include "train/ingest.h"
#include "bench/bench_common.h"
#include "base/clock.h"

/*
 * Data: --ml100k (default) reads u.data as recd-train does and fits on the per-user stratified 75/25 train part (seed 42
 * unless --seed), the split recd-train --evaluate uses; --input FILE ingests any log recd-train reads and fits on all of it. The
 * file is read and the CSR built before any clock starts, so only recd_als_train is timed. Every (solver, threads) pair is fitted
 * --repeat times, interleaved round by round, and the minimum wall and CPU seconds are printed (the machine may be shared).
 * CPU seconds are the process's user + system time (all threads). --evaluate also scores the ML-100k test part (nDCG@10
 * etc.) with each configuration's factors from its last round (outside the clocks), so speed and quality come from the
 * same run.
 */

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

/* Linux: VmHWM (peak resident set) from /proc/self/status in MiB, or -1. */
static double vm_hwm_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmHWM: %lf kB", &kib) == 1)
            break;
    fclose(f);
    return kib < 0 ? -1 : kib / 1024.0;
}

/* Linux >= 4.0: resets VmHWM to the current resident set, so the next reading is the peak of what follows. */
static int reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL)
        return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static size_t parse_list(const char *s, char out[][32], size_t cap)
{
    size_t n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL && n != cap; tok = strtok_r(NULL, ",", &save))
        snprintf(out[n++], 32, "%s", tok);
    free(copy);
    return n;
}

int main(int argc, char **argv)
{
    const char *input = NULL;
    char path[4096], err[512], solvers[4][32], threads_s[8][32];
    size_t n_solvers = parse_list("cholesky,cg", solvers, 4), n_threads = parse_list("1,2", threads_s, 8);
    uint32_t factors = 64, iterations = 15, repeat = 3, cg_steps = 3;
    uint64_t seed = 42;
    int evaluate = 0;

    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--input") == 0 && i + 1 < argc)
            input = argv[++i];
        else if (strcmp(argv[i], "--ml100k") == 0)
            input = NULL;
        else if (strcmp(argv[i], "--solver") == 0 && i + 1 < argc)
            n_solvers = parse_list(argv[++i], solvers, 4);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            n_threads = parse_list(argv[++i], threads_s, 8);
        else if (strcmp(argv[i], "--factors") == 0 && i + 1 < argc)
            factors = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
            iterations = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--cg-steps") == 0 && i + 1 < argc)
            cg_steps = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--evaluate") == 0)
            evaluate = 1;
        else {
            printf("Usage: %s [--ml100k | --input FILE] [--solver cholesky,cg] [--threads 1,2] [--factors 64]\n"
                   "          [--iterations 15] [--repeat 3] [--cg-steps 3] [--seed 42] [--evaluate]\n"
                   "--seed picks the ML-100k split and the initial factors, as recd-train --seed does.\n"
                   "--ml100k reads ${RECD_DATA_DIR:-" RECD_SOURCE_DIR "/../shared/data}/ml-100k/u.data.\n",
                   argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (repeat == 0 || factors == 0)
        return 2;
    if (input == NULL) {
        bench_ml100k_path(path, sizeof(path));
        input = path;
    }
    int ml100k = strstr(input, "ml-100k") != NULL && argc >= 1 && (strcmp(input, path) == 0);

    double t_ingest = recd_monotonic_seconds();
    recd_csr_t all, train = {0}, test = {0};
    size_t n_rows_read = 0;
    if (bench_load_csr(input, 0, &all, &n_rows_read, err, sizeof(err)) != RECD_OK) {
        printf("als_speed: skipped: %s: %s\n", input, err);
        return 0;
    }
    if (ml100k) {
        if (recd_split_stratified(&all, 0.25, seed, &train, &test) != RECD_OK)
            return 1;
    } else {
        train = all;
        all = (recd_csr_t){0};
    }
    t_ingest = recd_monotonic_seconds() - t_ingest;
    recd_csr_dispose(&all); /* only the train (and test) matrices stay for the fits */
    malloc_trim(0);
    double rss_load = peak_rss_mib();
    int hwm_reset = reset_hwm() == 0;
    printf("# %s: %zu rows read, fit on %zu interactions (%zu users x %zu items%s); ingest + CSR %.2f s wall\n", input, n_rows_read,
           train.nnz, train.n_rows, train.n_cols, ml100k ? ", stratified 75/25 train part" : "", t_ingest);
    printf("# %u factors, %u iterations, alpha/reg recd defaults, seed %llu, OpenBLAS core %s; peak RSS while loading %.1f MiB\n",
           factors, iterations, (unsigned long long)seed, openblas_get_corename(), rss_load);
    printf("# solver threads  wall_s(min)  cpu_s(min)  wall_s/iter  cpu_s/iter  runs_wall_s\n");

    enum { MAX_CONF = 32 };
    double best_wall[MAX_CONF], best_cpu[MAX_CONF], runs[MAX_CONF][16];
    recd_ranking_metrics_t metrics[MAX_CONF];
    size_t n_conf = n_solvers * n_threads;
    if (n_conf > MAX_CONF || repeat > 16) {
        fprintf(stderr, "als_speed: too many configurations or repeats\n");
        return 2;
    }
    for (size_t c = 0; c != n_conf; ++c)
        best_wall[c] = best_cpu[c] = INFINITY;
    float *X = NULL, *Y = NULL;
    for (uint32_t r = 0; r != repeat; ++r) {
        for (size_t c = 0; c != n_conf; ++c) {
            recd_als_params_t p;
            recd_als_params_init(&p);
            p.factors = factors;
            p.iterations = iterations;
            p.hooks.threads = (uint32_t)atoi(threads_s[c % n_threads]);
            p.cg_steps = cg_steps;
            p.hooks.seed = seed;
            if (strcmp(solvers[c / n_threads], "cg") == 0)
                p.solver = RECD_ALS_CG;
            else if (strcmp(solvers[c / n_threads], "cholesky") == 0)
                p.solver = RECD_ALS_CHOLESKY;
            else {
                fprintf(stderr, "als_speed: unknown solver %s\n", solvers[c / n_threads]);
                return 2;
            }
            free(X);
            free(Y);
            double w0 = recd_monotonic_seconds(), c0 = cpu_now();
            int ret = recd_als_train(&train, &p, &X, &Y);
            double w = recd_monotonic_seconds() - w0, cpu = cpu_now() - c0;
            if (ret != RECD_OK) {
                fprintf(stderr, "als_speed: %s\n", recd_strerror(ret));
                return 1;
            }
            runs[c][r] = w;
            if (w < best_wall[c])
                best_wall[c] = w;
            if (cpu < best_cpu[c])
                best_cpu[c] = cpu;
            if (evaluate && ml100k && r + 1 == repeat) {
                bench_factors_t sc = {X, Y, factors, train.n_cols};
                recd_eval_ranking(&train, &test, 10, bench_score_factors, &sc, 2, &metrics[c]);
            }
        }
    }
    for (size_t c = 0; c != n_conf; ++c) {
        printf("%-8s %7s  %11.3f  %10.3f  %11.4f  %10.4f ", solvers[c / n_threads], threads_s[c % n_threads], best_wall[c],
               best_cpu[c], best_wall[c] / iterations, best_cpu[c] / iterations);
        for (uint32_t r = 0; r != repeat; ++r)
            printf(" %.3f", runs[c][r]);
        printf("\n");
    }
    if (hwm_reset) /* the CSR input stays resident throughout, so this is input + everything ALS allocates */
        printf("# peak RSS while fitting (VmHWM reset after loading; the CSR input included): %.1f MiB\n", vm_hwm_mib());
    else
        printf("# peak RSS of the process (fitting alone not measurable here): %.1f MiB\n", peak_rss_mib());

    if (evaluate && ml100k) {
        printf("# quality on the test part (each configuration's last fit): solver threads P@10 R@10 nDCG@10 MAP@10 HR@10\n");
        for (size_t c = 0; c != n_conf; ++c)
            printf("# %-8s %7s  %.4f %.4f %.4f %.4f %.4f\n", solvers[c / n_threads], threads_s[c % n_threads], metrics[c].precision,
                   metrics[c].recall, metrics[c].ndcg, metrics[c].map, metrics[c].hit_rate);
    }
    free(X);
    free(Y);
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
    return 0;
}
