/* mf_ml100k.c: MovieLens 100K benchmark of biased MF (5-fold CV RMSE/MAE) and BPR (P/R/nDCG/MAP@10 on a 75/25 split). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "models/model.h"

#define FOLDS 5
#define TOP_K 10

typedef struct st_options_t {
    const char *path;
    int run_mf, run_bpr, verbose, validate;
    uint32_t folds_to_run;
    uint64_t seed; /* of the splits and the models */
    recd_mf_params_t mf;
    recd_bpr_params_t bpr;
} options_t;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (every thread): on a busy machine the honest measure of work done. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: mf_ml100k [--data PATH/u.data] [--only mf|bpr] [--threads N] [--verbose] [--validate] [--seed S] [--folds N]\n"
            "                 [--mf-factors N] [--mf-epochs N] [--mf-lr X] [--mf-reg X] [--mf-bias-reg X] [--mf-init-std X]\n"
            "                 [--bpr-factors N] [--bpr-epochs N] [--bpr-lr X] [--bpr-reg X] [--bpr-bias-reg X]\n"
            "--validate scores BPR on a 75/25 split of the training part instead of the test part (for tuning).\n"
            "Defaults are recd's own (recd_mf_params_init, recd_bpr_params_init); the data defaults to\n"
            "${RECD_DATA_DIR:-<repo>/../shared/data}/ml-100k/u.data.\n");
}

static int parse_options(int argc, char **argv, options_t *o)
{
    static char default_path[4096];
    const char *dir = getenv("RECD_DATA_DIR");
    if (dir != NULL && *dir != '\0')
        snprintf(default_path, sizeof(default_path), "%s/ml-100k/u.data", dir);
    else
        snprintf(default_path, sizeof(default_path), "%s/../shared/data/ml-100k/u.data", RECD_SOURCE_DIR);
    o->path = default_path;
    o->run_mf = o->run_bpr = 1;
    o->verbose = 0;
    o->validate = 0;
    o->folds_to_run = FOLDS;
    recd_mf_params_init(&o->mf);
    recd_bpr_params_init(&o->bpr);
    o->seed = 42;

    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--verbose") == 0) {
            o->verbose = 1;
            continue;
        } else if (strcmp(a, "--validate") == 0) {
            o->validate = 1;
            continue;
        }
        if (v == NULL)
            goto Bad;
        ++i;
        if (strcmp(a, "--data") == 0)
            o->path = v;
        else if (strcmp(a, "--only") == 0 && strcmp(v, "mf") == 0)
            o->run_bpr = 0;
        else if (strcmp(a, "--only") == 0 && strcmp(v, "bpr") == 0)
            o->run_mf = 0;
        else if (strcmp(a, "--threads") == 0)
            o->mf.hooks.threads = o->bpr.hooks.threads = (uint32_t)atoi(v);
        else if (strcmp(a, "--seed") == 0)
            o->seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--folds") == 0)
            o->folds_to_run = (uint32_t)atoi(v);
        else if (strcmp(a, "--mf-factors") == 0)
            o->mf.factors = (uint32_t)atoi(v);
        else if (strcmp(a, "--mf-epochs") == 0)
            o->mf.epochs = (uint32_t)atoi(v);
        else if (strcmp(a, "--mf-lr") == 0)
            o->mf.learning_rate = strtof(v, NULL);
        else if (strcmp(a, "--mf-reg") == 0)
            o->mf.reg = strtof(v, NULL);
        else if (strcmp(a, "--mf-bias-reg") == 0)
            o->mf.bias_reg = strtof(v, NULL);
        else if (strcmp(a, "--mf-init-std") == 0)
            o->mf.init_std = strtof(v, NULL);
        else if (strcmp(a, "--bpr-factors") == 0)
            o->bpr.factors = (uint32_t)atoi(v);
        else if (strcmp(a, "--bpr-epochs") == 0)
            o->bpr.epochs = (uint32_t)atoi(v);
        else if (strcmp(a, "--bpr-lr") == 0)
            o->bpr.learning_rate = strtof(v, NULL);
        else if (strcmp(a, "--bpr-reg") == 0)
            o->bpr.reg = strtof(v, NULL);
        else if (strcmp(a, "--bpr-bias-reg") == 0)
            o->bpr.bias_reg = strtof(v, NULL);
        else
            goto Bad;
    }
    if (o->folds_to_run < 1 || o->folds_to_run > FOLDS)
        goto Bad;
    o->mf.hooks.seed = o->bpr.hooks.seed = o->seed;
    return 0;
Bad:
    usage(stderr);
    return -1;
}

/* Reads u.data (user \t item \t rating \t timestamp) into a users x items rating matrix; ids are interned as strings. */
static int load(FILE *fp, recd_csr_t *out)
{
    recd_idmap_t *users = recd_idmap_create(), *items = recd_idmap_create();
    size_t n = 0, cap = 1 << 17;
    uint32_t *rows = malloc(cap * sizeof(*rows)), *cols = malloc(cap * sizeof(*cols));
    float *vals = malloc(cap * sizeof(*vals));
    char line[512];
    int ret = 0;
    if (rows == NULL || cols == NULL || vals == NULL) {
        fprintf(stderr, "mf_ml100k: out of memory\n");
        abort();
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *user = strtok(line, "\t"), *item = strtok(NULL, "\t"), *rating = strtok(NULL, "\t\r\n"), *end;
        if (user == NULL || item == NULL || rating == NULL)
            continue;
        float r = strtof(rating, &end);
        if (end == rating || !isfinite(r))
            continue;
        if (n == cap) {
            cap *= 2;
            rows = realloc(rows, cap * sizeof(*rows));
            cols = realloc(cols, cap * sizeof(*cols));
            vals = realloc(vals, cap * sizeof(*vals));
            if (rows == NULL || cols == NULL || vals == NULL) {
                fprintf(stderr, "mf_ml100k: out of memory\n");
                abort();
            }
        }
        rows[n] = recd_idmap_intern(users, user, strlen(user));
        cols[n] = recd_idmap_intern(items, item, strlen(item));
        vals[n] = r;
        ++n;
    }
    ret = recd_csr_from_coo(out, recd_idmap_size(users), recd_idmap_size(items), rows, cols, vals, n, RECD_MERGE_LAST);
    free(rows);
    free(cols);
    free(vals);
    recd_idmap_free(users);
    recd_idmap_free(items);
    return ret;
}

static int print_epoch(void *data, uint32_t iteration, double loss, double seconds)
{
    fprintf(stderr, "  %s epoch %3u  loss %.5f  %.3f s\n", (const char *)data, iteration, loss, seconds);
    return 0;
}

static void mean_std(const double *v, size_t n, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i != n; ++i)
        s += v[i];
    *mean = s / n;
    for (size_t i = 0; i != n; ++i)
        ss += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(ss / n); /* population std, as Surprise's cross_validate prints */
}

static int run_mf(const recd_csr_t *ratings, options_t *o)
{
    double rmse[FOLDS], mae[FOLDS], secs[FOLDS], cpu[FOLDS], m, s;
    float lo = INFINITY, hi = -INFINITY;
    for (size_t j = 0; j != ratings->nnz; ++j) {
        lo = ratings->val[j] < lo ? ratings->val[j] : lo;
        hi = ratings->val[j] > hi ? ratings->val[j] : hi;
    }
    printf("biased MF: factors %u, epochs %u, lr %g, reg %g, bias_reg %g, init_std %g, threads %u; %u-fold CV (seed %llu), "
           "predictions clipped to [%g, %g]\n",
           o->mf.factors, o->mf.epochs, o->mf.learning_rate, o->mf.reg, o->mf.bias_reg, o->mf.init_std, o->mf.hooks.threads, FOLDS,
           (unsigned long long)o->seed, lo, hi);
    if (o->verbose) {
        o->mf.hooks.on_progress = print_epoch;
        o->mf.hooks.progress_data = "mf";
    }
    for (uint32_t f = 0; f != o->folds_to_run; ++f) {
        recd_csr_t train, test;
        recd_rating_metrics_t metrics;
        float *x, *y, *bu, *bi, mu;
        int ret;
        if ((ret = recd_split_kfold(ratings, FOLDS, f, o->seed, &train, &test)) != 0) {
            fprintf(stderr, "mf_ml100k: split: %s\n", recd_strerror(ret));
            return ret;
        }
        double started = now_seconds(), cpu_started = cpu_seconds();
        if ((ret = recd_mf_train(&train, &o->mf, &x, &y, &bu, &bi, &mu)) != 0) {
            fprintf(stderr, "mf_ml100k: train: %s\n", recd_strerror(ret));
            return ret;
        }
        secs[f] = now_seconds() - started;
        cpu[f] = cpu_seconds() - cpu_started;
        recd_mf_model_t model = {o->mf.factors, x, y, bu, bi, mu, lo, hi};
        recd_eval_rating(&test, recd_mf_predict, &model, &metrics);
        rmse[f] = metrics.rmse;
        mae[f] = metrics.mae;
        printf("  fold %u: train %zu, test %zu ratings  RMSE %.4f  MAE %.4f  R2 %.4f  fit %.2f s (cpu %.2f s)\n", f + 1, train.nnz,
               test.nnz, metrics.rmse, metrics.mae, metrics.r2, secs[f], cpu[f]);
        free(x);
        free(y);
        free(bu);
        free(bi);
        recd_csr_dispose(&train);
        recd_csr_dispose(&test);
    }
    mean_std(rmse, o->folds_to_run, &m, &s);
    printf("  RMSE %.4f ± %.4f", m, s);
    mean_std(mae, o->folds_to_run, &m, &s);
    printf("  MAE %.4f ± %.4f", m, s);
    mean_std(secs, o->folds_to_run, &m, &s);
    printf("  fit %.2f ± %.2f s per fold", m, s);
    mean_std(cpu, o->folds_to_run, &m, &s);
    printf(" (cpu %.2f ± %.2f s)\n", m, s);
    return 0;
}

typedef struct st_bpr_model_t {
    uint32_t k;
    size_t n_items;
    const float *x, *y, *b;
} bpr_model_t;

static void bpr_scores(void *data, uint32_t user, float *scores)
{
    const bpr_model_t *m = data;
    const float *xu = m->x + (size_t)user * m->k;
    for (size_t i = 0; i != m->n_items; ++i) {
        const float *yi = m->y + i * m->k;
        float s = m->b[i];
        for (uint32_t f = 0; f != m->k; ++f)
            s += xu[f] * yi[f];
        scores[i] = s;
    }
}

static int run_bpr(const recd_csr_t *ratings, options_t *o)
{
    recd_csr_t train, test;
    recd_ranking_metrics_t metrics;
    float *x, *y, *b;
    int ret;
    printf("BPR: factors %u, epochs %u, lr %g, reg %g, bias_reg %g, threads %u; per-user stratified 75/25 split (seed %llu), "
           "every rating a positive\n",
           o->bpr.factors, o->bpr.epochs, o->bpr.learning_rate, o->bpr.reg, o->bpr.bias_reg, o->bpr.hooks.threads,
           (unsigned long long)o->seed);
    if ((ret = recd_split_stratified(ratings, 0.25, o->seed, &train, &test)) != 0) {
        fprintf(stderr, "mf_ml100k: split: %s\n", recd_strerror(ret));
        return ret;
    }
    if (o->validate) { /* carve a validation split out of the training part; the test part is never looked at */
        recd_csr_t fit, val;
        if ((ret = recd_split_stratified(&train, 0.25, o->seed + 1, &fit, &val)) != 0) {
            fprintf(stderr, "mf_ml100k: split: %s\n", recd_strerror(ret));
            return ret;
        }
        printf("  --validate: training on %zu, scoring on %zu held out of the training part\n", fit.nnz, val.nnz);
        recd_csr_dispose(&train);
        recd_csr_dispose(&test);
        train = fit;
        test = val;
    }
    if (o->verbose) {
        o->bpr.hooks.on_progress = print_epoch;
        o->bpr.hooks.progress_data = "bpr";
    }
    double started = now_seconds(), cpu_started = cpu_seconds();
    if ((ret = recd_bpr_train(&train, &o->bpr, &x, &y, &b)) != 0) {
        fprintf(stderr, "mf_ml100k: train: %s\n", recd_strerror(ret));
        return ret;
    }
    double secs = now_seconds() - started, cpu = cpu_seconds() - cpu_started;
    bpr_model_t model = {o->bpr.factors, train.n_cols, x, y, b};
    recd_eval_ranking(&train, &test, TOP_K, bpr_scores, &model, 0, &metrics);
    printf("  train %zu, test %zu interactions, %zu test users\n", train.nnz, test.nnz, metrics.users);
    printf("  P@10 %.4f  R@10 %.4f  nDCG@10 %.4f  MAP@10 %.4f  HR@10 %.4f  fit %.2f s (cpu %.2f s)\n", metrics.precision,
           metrics.recall, metrics.ndcg, metrics.map, metrics.hit_rate, secs, cpu);
    free(x);
    free(y);
    free(b);
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
    return 0;
}

int main(int argc, char **argv)
{
    options_t o;
    recd_csr_t ratings;
    FILE *fp;
    int ret;

    if (parse_options(argc, argv, &o) != 0)
        return 2;
    if ((fp = fopen(o.path, "r")) == NULL) {
        if (errno == ENOENT) {
            printf("mf_ml100k: %s not found, skipping (set RECD_DATA_DIR to the folder holding ml-100k/)\n", o.path);
            return 0;
        }
        fprintf(stderr, "mf_ml100k: %s: %s\n", o.path, strerror(errno));
        return 1;
    }
    ret = load(fp, &ratings);
    fclose(fp);
    if (ret != 0) {
        fprintf(stderr, "mf_ml100k: %s: %s\n", o.path, recd_strerror(ret));
        return 1;
    }
    printf("MovieLens 100K: %zu ratings, %zu users, %zu items (%s)\n", ratings.nnz, ratings.n_rows, ratings.n_cols, o.path);
    if (o.run_mf && (ret = run_mf(&ratings, &o)) != 0)
        goto Exit;
    if (o.run_bpr && (ret = run_bpr(&ratings, &o)) != 0)
        goto Exit;
Exit:
    recd_csr_dispose(&ratings);
    return ret != 0;
}
