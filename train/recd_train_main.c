/* recd_train_main.c: recd-train — ingest an interaction log, train ALS or popularity, evaluate, publish to a registry. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cblas.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "models/model.h"
#include "train/ingest.h"

#define EXIT_USAGE 2

typedef struct st_options_t {
    const char *input, *registry, *model, *algorithm;
    recd_ingest_options_t ingest;
    recd_als_params_t als;
    int evaluate;
    double test_ratio;
    uint32_t k;
    uint32_t min_user, min_item; /* k-core minimums, 0 = off */
    recd_normalize_t normalize;
    recd_merge_t merge;
} options_t;

static const char *const merge_names[] = {"sum", "max", "last"};

typedef struct st_progress_t {
    const char *prefix;
    uint32_t iterations;
} progress_t;

static void usage(FILE *out, const char *argv0)
{
    recd_als_params_t d;
    recd_als_params_init(&d);
    fprintf(out,
            "Usage: %s --input FILE --registry DIR --model NAME [options]\n"
            "\n"
            "Reads an interaction log, trains a model and publishes it as the next version of NAME in DIR\n"
            "(DIR/NAME/<version>/{model.recd,manifest.json,evaluation.json}). Progress goes to stderr, a JSON summary to stdout.\n"
            "\n"
            "Input:\n"
            "  --input FILE            interaction log (gzip or plain)\n"
            "  --format F              auto|csv|tsv|udata|jsonl|json|xml|events (default auto)\n"
            "  --user-col C, --item-col C, --value-col C, --time-col C\n"
            "                          column by header name or 0-based position (defaults: user/item/value|rating/timestamp)\n"
            "  --max-reject-rate R     fail when more than this fraction of rows is rejected (0..1, default 1)\n"
            "Cleansing:\n"
            "  --min-user-interactions N, --min-item-interactions N\n"
            "                          iterated k-core: drop users / items with fewer distinct partners (default 0, off)\n"
            "  --normalize H           none|minmax|user_mean|log1p applied to the values (default none; implicit ALS needs\n"
            "                          values >= 0, so user_mean suits explicit models only)\n"
            "  --merge M               sum|max|last: how repeated (user, item) rows combine (default sum)\n"
            "Model:\n"
            "  --algorithm A           als|popularity (default als)\n"
            "  --factors N             ALS latent factors (default %u)\n"
            "  --iterations N          ALS iterations (default %u)\n"
            "  --alpha A               ALS confidence c = 1 + alpha * value (default %g)\n"
            "  --reg R                 ALS L2 regularisation (default %g)\n"
            "  --threads N             training threads, 0 = all cores (default 0)\n"
            "  --seed S                random seed for initialisation and the split (default %llu)\n"
            "Evaluation:\n"
            "  --evaluate              also train on a per-user stratified split and report ranking metrics on the held-out part\n"
            "                          (the published model is trained on all the data)\n"
            "  --test-ratio R          held-out fraction per user (default 0.25)\n"
            "  --k K                   cut-off of the metrics (default 10)\n"
            "  -h, --help              this text\n"
            "\n"
            "Exit status: 0 published, 1 failure, 2 usage error.\n",
            argv0, d.factors, d.iterations, d.alpha, d.reg, (unsigned long long)d.seed);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Returns 0, or EXIT_USAGE after printing what is wrong; -1 for --help. */
static int parse_args(options_t *o, int argc, char **argv)
{
    enum {
        O_INPUT = 256,
        O_REGISTRY,
        O_MODEL,
        O_FORMAT,
        O_ALGORITHM,
        O_FACTORS,
        O_ITERATIONS,
        O_ALPHA,
        O_REG,
        O_THREADS,
        O_SEED,
        O_EVALUATE,
        O_TEST_RATIO,
        O_K,
        O_USER_COL,
        O_ITEM_COL,
        O_VALUE_COL,
        O_TIME_COL,
        O_MAX_REJECT,
        O_MIN_USER,
        O_MIN_ITEM,
        O_NORMALIZE,
        O_MERGE
    };
    static const struct option longopts[] = {{"input", required_argument, NULL, O_INPUT},
                                             {"registry", required_argument, NULL, O_REGISTRY},
                                             {"model", required_argument, NULL, O_MODEL},
                                             {"format", required_argument, NULL, O_FORMAT},
                                             {"algorithm", required_argument, NULL, O_ALGORITHM},
                                             {"factors", required_argument, NULL, O_FACTORS},
                                             {"iterations", required_argument, NULL, O_ITERATIONS},
                                             {"alpha", required_argument, NULL, O_ALPHA},
                                             {"reg", required_argument, NULL, O_REG},
                                             {"threads", required_argument, NULL, O_THREADS},
                                             {"seed", required_argument, NULL, O_SEED},
                                             {"evaluate", no_argument, NULL, O_EVALUATE},
                                             {"test-ratio", required_argument, NULL, O_TEST_RATIO},
                                             {"k", required_argument, NULL, O_K},
                                             {"user-col", required_argument, NULL, O_USER_COL},
                                             {"item-col", required_argument, NULL, O_ITEM_COL},
                                             {"value-col", required_argument, NULL, O_VALUE_COL},
                                             {"time-col", required_argument, NULL, O_TIME_COL},
                                             {"max-reject-rate", required_argument, NULL, O_MAX_REJECT},
                                             {"min-user-interactions", required_argument, NULL, O_MIN_USER},
                                             {"min-item-interactions", required_argument, NULL, O_MIN_ITEM},
                                             {"normalize", required_argument, NULL, O_NORMALIZE},
                                             {"merge", required_argument, NULL, O_MERGE},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *argv0 = argv[0];
    int c;
    double d;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case 'h':
            usage(stdout, argv0);
            return -1;
        case O_INPUT:
            o->input = optarg;
            break;
        case O_REGISTRY:
            o->registry = optarg;
            break;
        case O_MODEL:
            o->model = optarg;
            break;
        case O_FORMAT:
            if (recd_format_parse(optarg, &o->ingest.format) != 0)
                bad = "--format must be auto, csv, tsv, udata, jsonl, json, xml or events";
            break;
        case O_ALGORITHM:
            if (strcmp(optarg, "als") != 0 && strcmp(optarg, "popularity") != 0)
                bad = "--algorithm must be als or popularity";
            o->algorithm = optarg;
            break;
        case O_FACTORS:
            if (parse_u32(optarg, 1, 1024, &o->als.factors) != 0)
                bad = "--factors must be an integer in 1..1024";
            break;
        case O_ITERATIONS:
            if (parse_u32(optarg, 1, 1000, &o->als.iterations) != 0)
                bad = "--iterations must be an integer in 1..1000";
            break;
        case O_ALPHA:
            if (parse_double(optarg, 0, 1e6, &d) != 0)
                bad = "--alpha must be a number >= 0";
            o->als.alpha = (float)d;
            break;
        case O_REG:
            if (parse_double(optarg, 0, 1e9, &d) != 0)
                bad = "--reg must be a number >= 0";
            o->als.reg = (float)d;
            break;
        case O_THREADS:
            if (parse_u32(optarg, 0, 256, &o->als.threads) != 0)
                bad = "--threads must be an integer in 0..256";
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-')
                bad = "--seed must be a non-negative integer";
            o->als.seed = v;
        } break;
        case O_EVALUATE:
            o->evaluate = 1;
            break;
        case O_TEST_RATIO:
            if (parse_double(optarg, 0.01, 0.99, &o->test_ratio) != 0)
                bad = "--test-ratio must be a number in 0.01..0.99";
            break;
        case O_K:
            if (parse_u32(optarg, 1, 1000, &o->k) != 0)
                bad = "--k must be an integer in 1..1000";
            break;
        case O_USER_COL:
            o->ingest.user_col = optarg;
            break;
        case O_ITEM_COL:
            o->ingest.item_col = optarg;
            break;
        case O_VALUE_COL:
            o->ingest.value_col = optarg;
            break;
        case O_TIME_COL:
            o->ingest.time_col = optarg;
            break;
        case O_MIN_USER:
            if (parse_u32(optarg, 0, 1000000, &o->min_user) != 0)
                bad = "--min-user-interactions must be an integer in 0..1000000";
            break;
        case O_MIN_ITEM:
            if (parse_u32(optarg, 0, 1000000, &o->min_item) != 0)
                bad = "--min-item-interactions must be an integer in 0..1000000";
            break;
        case O_NORMALIZE:
            if (recd_normalize_parse(optarg, &o->normalize) != 0)
                bad = "--normalize must be none, minmax, user_mean or log1p";
            break;
        case O_MERGE:
            if (strcmp(optarg, "sum") == 0)
                o->merge = RECD_MERGE_SUM;
            else if (strcmp(optarg, "max") == 0)
                o->merge = RECD_MERGE_MAX;
            else if (strcmp(optarg, "last") == 0)
                o->merge = RECD_MERGE_LAST;
            else
                bad = "--merge must be sum, max or last";
            break;
        case O_MAX_REJECT:
            if (parse_double(optarg, 0, 1, &o->ingest.max_reject_rate) != 0)
                bad = "--max-reject-rate must be a number in 0..1";
            break;
        case ':':
            fprintf(stderr, "recd-train: %s needs a value (see --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "recd-train: unknown option %s (see --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
        if (bad != NULL) {
            fprintf(stderr, "recd-train: %s (got \"%s\")\n", bad, optarg);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "recd-train: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (o->input == NULL || o->registry == NULL || o->model == NULL) {
        fprintf(stderr, "recd-train: --input, --registry and --model are required (see --help)\n");
        return EXIT_USAGE;
    }
    if (!recd_registry_valid_name(o->model)) {
        fprintf(stderr, "recd-train: invalid model name \"%s\": use 1..64 of [A-Za-z0-9_.-], not starting with '.'\n", o->model);
        return EXIT_USAGE;
    }
    return 0;
}

/* CPU seconds used by every thread of the process so far (user + system). */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int on_progress(void *data, uint32_t iteration, double loss, double seconds)
{
    progress_t *p = data;
    fprintf(stderr, "%siter %u/%u loss=%.6g %.3fs\n", p->prefix, iteration, p->iterations, loss, seconds);
    return 0;
}

/* SHA-256 of a file's bytes as lowercase hex. */
static int sha256_file(const char *path, char hex[65])
{
    unsigned char buf[1 << 16], md[32];
    unsigned int mdlen = 0;
    int ret = -1;
    FILE *fp = fopen(path, "rb");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (fp == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto Exit;
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), fp)) != 0)
        if (EVP_DigestUpdate(ctx, buf, n) != 1)
            goto Exit;
    if (ferror(fp) || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
        goto Exit;
    for (int i = 0; i != 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ret = 0;
Exit:
    if (fp != NULL)
        fclose(fp);
    EVP_MD_CTX_free(ctx);
    return ret;
}

/* SHA-256 of the accepted rows (ids, value, timestamp), for input read from standard input, which cannot be read twice. */
static int sha256_rows(const recd_interactions_t *x, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    int ret = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto Exit;
    for (size_t i = 0; i != x->n; ++i) {
        const char *u = recd_idmap_id(x->users, x->user[i]), *it = recd_idmap_id(x->items, x->item[i]);
        if (EVP_DigestUpdate(ctx, u, strlen(u) + 1) != 1 || EVP_DigestUpdate(ctx, it, strlen(it) + 1) != 1 ||
            EVP_DigestUpdate(ctx, &x->value[i], sizeof(x->value[i])) != 1 ||
            EVP_DigestUpdate(ctx, &x->ts[i], sizeof(x->ts[i])) != 1)
            goto Exit;
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
        goto Exit;
    for (int i = 0; i != 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ret = 0;
Exit:
    EVP_MD_CTX_free(ctx);
    return ret;
}

typedef struct st_als_scorer_t {
    const float *X, *Y;
    uint32_t f;
    size_t n_items;
} als_scorer_t;

static void score_als(void *data, uint32_t user, float *scores)
{
    als_scorer_t *s = data;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)s->n_items, (int)s->f, 1.0f, s->Y, (int)s->f, s->X + (size_t)user * s->f, 1, 0.0f,
                scores, 1);
}

static void score_popularity(void *data, uint32_t user, float *scores)
{
    als_scorer_t *s = data; /* Y holds the popularity, one float per item */
    memcpy(scores, s->Y, s->n_items * sizeof(*scores));
}

/* Trains the chosen algorithm. For ALS *X and *Y receive the factors; for popularity *Y receives the popularity. */
static int fit(const options_t *o, const recd_csr_t *m, const char *prefix, float **X, float **Y)
{
    *X = NULL;
    *Y = NULL;
    if (strcmp(o->algorithm, "popularity") == 0) {
        *Y = malloc((m->n_cols != 0 ? m->n_cols : 1) * sizeof(float));
        if (*Y == NULL)
            return RECD_ENOMEM;
        recd_popularity_compute(m, *Y);
        return RECD_OK;
    }
    progress_t progress = {prefix, o->als.iterations};
    recd_als_params_t p = o->als;
    p.on_progress = on_progress;
    p.progress_data = &progress;
    return recd_als_train(m, &p, X, Y);
}

/* Splits, trains on the train part and ranks the held-out part; fills the evaluation object. */
static int evaluate(const options_t *o, const recd_csr_t *all, json_t *evaluation, double *fit_seconds, char *err, size_t errlen)
{
    recd_csr_t train = {0}, test = {0};
    float *X = NULL, *Y = NULL;
    int ret;

    if ((ret = recd_split_stratified(all, o->test_ratio, o->als.seed, &train, &test)) != RECD_OK) {
        snprintf(err, errlen, "split failed: %s", recd_strerror(ret));
        goto Exit;
    }
    double t0 = now(), c0 = cpu_now();
    if ((ret = fit(o, &train, "split: ", &X, &Y)) != RECD_OK) {
        snprintf(err, errlen, "training on the split failed: %s", recd_strerror(ret));
        goto Exit;
    }
    *fit_seconds = now() - t0;
    double fit_cpu = cpu_now() - c0;
    als_scorer_t scorer = {X, Y, o->als.factors, all->n_cols};
    recd_ranking_metrics_t m;
    if ((ret = recd_eval_ranking(&train, &test, o->k, X != NULL ? score_als : score_popularity, &scorer, o->als.threads, &m)) !=
        RECD_OK) {
        snprintf(err, errlen, "evaluation failed: %s", recd_strerror(ret));
        goto Exit;
    }
    json_object_set_new(evaluation, "evaluated", json_true());
    json_object_set_new(evaluation, "protocol",
                        json_string("per-user stratified random split, binary relevance, "
                                    "items in the user's train part excluded"));
    json_object_set_new(evaluation, "test_ratio", json_real(o->test_ratio));
    json_object_set_new(evaluation, "seed", json_integer((json_int_t)o->als.seed));
    json_object_set_new(evaluation, "train_interactions", json_integer((json_int_t)train.nnz));
    json_object_set_new(evaluation, "test_interactions", json_integer((json_int_t)test.nnz));
    json_object_set_new(evaluation, "users", json_integer((json_int_t)m.users));
    json_object_set_new(evaluation, "k", json_integer(m.k));
    json_object_set_new(evaluation, "precision", json_real(m.precision));
    json_object_set_new(evaluation, "recall", json_real(m.recall));
    json_object_set_new(evaluation, "ndcg", json_real(m.ndcg));
    json_object_set_new(evaluation, "map", json_real(m.map));
    json_object_set_new(evaluation, "hit_rate", json_real(m.hit_rate));
    json_object_set_new(evaluation, "fit_seconds", json_real(*fit_seconds));
    json_object_set_new(evaluation, "fit_cpu_seconds", json_real(fit_cpu));
Exit:
    free(X);
    free(Y);
    recd_csr_dispose(&train);
    recd_csr_dispose(&test);
    return ret;
}

/* Writes value as DIR/NAME; prints what went wrong. */
static int write_json_file(const char *dir, const char *name, json_t *value)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (json_dump_file(value, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        fprintf(stderr, "recd-train: cannot write %s: %s\n", path, strerror(errno));
        return RECD_EIO;
    }
    return RECD_OK;
}

int main(int argc, char **argv)
{
    options_t o = {.algorithm = "als", .test_ratio = 0.25, .k = 10};
    recd_interactions_t data;
    recd_ingest_report_t report = {0};
    recd_csr_t m = {0};
    float *X = NULL, *Y = NULL;
    json_t *params = NULL, *evaluation = json_object(), *data_info = NULL, *metadata = NULL, *manifest = NULL, *summary = NULL,
           *seconds = json_object();
    char err[1024] = "", staging[4096] = "", artifact[4096], fingerprint[65], created[32];
    char *metadata_str = NULL;
    int exit_code = 1, ret;
    double t_start = now(), t0;

    recd_ingest_options_init(&o.ingest);
    recd_als_params_init(&o.als);
    recd_interactions_init(&data);
    if ((ret = parse_args(&o, argc, argv)) != 0) {
        exit_code = ret < 0 ? 0 : EXIT_USAGE;
        goto Exit;
    }
    if (o.als.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.als.threads = n > 0 ? (uint32_t)n : 1;
    }
    {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }

    /* ingest */
    t0 = now();
    int from_stdin = strcmp(o.input, "-") == 0;
    if (!from_stdin && sha256_file(o.input, fingerprint) != 0) {
        fprintf(stderr, "recd-train: cannot read %s: %s\n", o.input, strerror(errno));
        goto Exit;
    }
    if ((ret = recd_ingest_file(o.input, &o.ingest, &data, &report, err, sizeof(err))) != RECD_OK) {
        fprintf(stderr, "recd-train: %s: %s\n", o.input, err[0] != '\0' ? err : recd_strerror(ret));
        goto Exit;
    }
    fprintf(stderr, "ingest: %s format=%s read=%llu accepted=%llu rejected=%llu", o.input, recd_format_name(report.format),
            (unsigned long long)report.rows_read, (unsigned long long)report.rows_accepted,
            (unsigned long long)report.rows_rejected);
    for (int r = 0; r != RECD_REJECT__COUNT; ++r)
        if (report.rejected[r] != 0)
            fprintf(stderr, " %s=%llu", recd_reject_name((recd_reject_t)r), (unsigned long long)report.rejected[r]);
    fprintf(stderr, "\n");
    for (size_t i = 0; i != report.n_samples; ++i)
        fprintf(stderr, "ingest: rejected line %llu (%s): %s\n", (unsigned long long)report.samples[i].line,
                recd_reject_name(report.samples[i].reason), report.samples[i].text);
    if (from_stdin && sha256_rows(&data, fingerprint) != 0) {
        fprintf(stderr, "recd-train: cannot compute the data fingerprint\n");
        goto Exit;
    }
    uint64_t kcore_removed = 0;
    if ((o.min_user > 1 || o.min_item > 1) && recd_interactions_kcore(&data, o.min_user, o.min_item, &kcore_removed) == RECD_OK)
        fprintf(stderr, "cleanse: k-core (users >= %u items, items >= %u users) removed %llu rows, %zu left\n", o.min_user,
                o.min_item, (unsigned long long)kcore_removed, data.n);
    if (o.normalize != RECD_NORMALIZE_NONE && recd_interactions_normalize(&data, o.normalize) != RECD_OK) {
        fprintf(stderr, "recd-train: --normalize %s cannot be applied to these values (log1p needs values >= 0)\n",
                recd_normalize_name(o.normalize));
        goto Exit;
    }
    if (data.n == 0) {
        fprintf(stderr, "recd-train: %s: no interactions left, nothing to train\n", o.input);
        goto Exit;
    }
    json_object_set_new(seconds, "ingest", json_real(now() - t0));

    /* the user x item matrix, duplicates merged by --merge */
    t0 = now();
    size_t n_users = recd_idmap_size(data.users), n_items = recd_idmap_size(data.items);
    if ((ret = recd_csr_from_coo(&m, n_users, n_items, data.user, data.item, data.value, data.n, o.merge)) != RECD_OK) {
        fprintf(stderr, "recd-train: cannot build the interaction matrix: %s\n", recd_strerror(ret));
        goto Exit;
    }
    fprintf(stderr, "matrix: %zu users x %zu items, %zu distinct interactions\n", n_users, n_items, m.nnz);
    json_object_set_new(seconds, "matrix", json_real(now() - t0));

    int is_als = strcmp(o.algorithm, "als") == 0;
    params = json_object();
    if (is_als) {
        json_object_set_new(params, "factors", json_integer(o.als.factors));
        json_object_set_new(params, "iterations", json_integer(o.als.iterations));
        json_object_set_new(params, "alpha", json_real(o.als.alpha));
        json_object_set_new(params, "reg", json_real(o.als.reg));
        json_object_set_new(params, "threads", json_integer(o.als.threads));
    }
    json_object_set_new(params, "seed", json_integer((json_int_t)o.als.seed));

    json_object_set_new(evaluation, "evaluated", json_false());
    if (o.evaluate) {
        double fit_seconds = 0;
        t0 = now();
        if (evaluate(&o, &m, evaluation, &fit_seconds, err, sizeof(err)) != RECD_OK) {
            fprintf(stderr, "recd-train: %s\n", err);
            goto Exit;
        }
        json_object_set_new(seconds, "evaluate", json_real(now() - t0));
        fprintf(stderr, "evaluation (k=%u, %lld users): P=%.4f R=%.4f nDCG=%.4f MAP=%.4f HR=%.4f\n", o.k,
                (long long)json_integer_value(json_object_get(evaluation, "users")),
                json_real_value(json_object_get(evaluation, "precision")), json_real_value(json_object_get(evaluation, "recall")),
                json_real_value(json_object_get(evaluation, "ndcg")), json_real_value(json_object_get(evaluation, "map")),
                json_real_value(json_object_get(evaluation, "hit_rate")));
    }

    /* the published model learns from all the data */
    t0 = now();
    double c0 = cpu_now();
    if ((ret = fit(&o, &m, "", &X, &Y)) != RECD_OK) {
        fprintf(stderr, "recd-train: training failed: %s%s\n", recd_strerror(ret),
                ret == RECD_ENUMERIC ? " (a per-row system was not positive definite: values below 0 give confidences below 1; "
                                       "use values >= 0 or a larger --reg)"
                                     : "");
        goto Exit;
    }
    json_object_set_new(seconds, "fit", json_real(now() - t0));
    json_object_set_new(seconds, "fit_cpu", json_real(cpu_now() - c0));

    /* artifact + manifest + evaluation into a staging directory, then publish */
    t0 = now();
    data_info =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "path", o.input, "format", recd_format_name(report.format), "sha256",
                  fingerprint, "rows_read", (json_int_t)report.rows_read, "rows_rejected", (json_int_t)report.rows_rejected,
                  "users", (json_int_t)n_users, "items", (json_int_t)n_items, "interactions", (json_int_t)m.nnz);
    if (data_info != NULL) {
        json_object_set_new(data_info, "sha256_of", json_string(from_stdin ? "accepted rows" : "input bytes"));
        json_object_set_new(data_info, "cleanse",
                            json_pack("{s:i, s:i, s:I, s:s, s:s}", "min_user_interactions", (int)o.min_user,
                                      "min_item_interactions", (int)o.min_item, "kcore_rows_removed", (json_int_t)kcore_removed,
                                      "normalize", recd_normalize_name(o.normalize), "merge", merge_names[o.merge]));
    }
    metadata =
        json_pack("{s:s, s:s, s:s, s:O, s:O, s:O, s:s}", "trainer", "recd-train", "trainer_version", RECD_VERSION, "algorithm",
                  o.algorithm, "params", params, "data", data_info, "evaluation", evaluation, "created", created);
    if (data_info == NULL || metadata == NULL || (metadata_str = json_dumps(metadata, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        fprintf(stderr, "recd-train: out of memory building the metadata\n");
        goto Exit;
    }
    float *popularity = malloc((n_items != 0 ? n_items : 1) * sizeof(float));
    if (popularity == NULL) {
        fprintf(stderr, "recd-train: out of memory\n");
        goto Exit;
    }
    recd_popularity_compute(&m, popularity);
    recd_model_spec_t spec = {
        .kind = is_als ? RECD_MODEL_ALS : RECD_MODEL_POPULARITY,
        .n_factors = is_als ? o.als.factors : 0,
        .n_users = n_users,
        .n_items = n_items,
        .user_ids = recd_idmap_ids(data.users),
        .item_ids = recd_idmap_ids(data.items),
        .user_factors = is_als ? X : NULL,
        .item_factors = is_als ? Y : NULL,
        .item_popularity = popularity,
        .alpha = o.als.alpha,
        .reg = o.als.reg,
        .user_items = &m,
        .metadata_json = metadata_str,
    };
    if ((ret = recd_registry_stage(o.registry, o.model, staging, sizeof(staging))) != RECD_OK) {
        fprintf(stderr, "recd-train: cannot create a staging directory in %s: %s\n", o.registry, recd_strerror(ret));
        free(popularity);
        goto Exit;
    }
    snprintf(artifact, sizeof(artifact), "%s/%s", staging, RECD_REGISTRY_ARTIFACT);
    ret = recd_model_write(&spec, artifact, err, sizeof(err));
    free(popularity);
    if (ret != RECD_OK) {
        fprintf(stderr, "recd-train: cannot write the artifact: %s\n", err);
        goto Exit;
    }
    { /* read it back: the checksum and every offset must verify before anything is published */
        recd_model_t *check = recd_model_open(artifact, err, sizeof(err));
        if (check == NULL) {
            fprintf(stderr, "recd-train: the written artifact does not load: %s\n", err);
            goto Exit;
        }
        manifest =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:s, s:s}", "model", o.model, "kind", recd_model_kind_name(spec.kind),
                      "algorithm", o.algorithm, "artifact", RECD_REGISTRY_ARTIFACT, "artifact_sha256", recd_model_sha256(check),
                      "params", params, "data", data_info, "created", created, "trainer_version", RECD_VERSION);
        recd_model_release(check);
    }
    if (manifest == NULL) {
        fprintf(stderr, "recd-train: out of memory building the manifest\n");
        goto Exit;
    }
    { /* the ingest report (per-reason reject counts and samples) documents what was dropped */
        char *report_json = recd_ingest_report_json(&report);
        json_t *ingest = report_json != NULL ? json_loads(report_json, 0, NULL) : NULL;
        free(report_json);
        if (ingest != NULL)
            json_object_set_new(manifest, "ingest", ingest);
    }
    if (write_json_file(staging, "manifest.json", manifest) != RECD_OK ||
        write_json_file(staging, "evaluation.json", evaluation) != RECD_OK)
        goto Exit;
    uint64_t version;
    if ((ret = recd_registry_commit(o.registry, o.model, staging, &version)) != RECD_OK) {
        fprintf(stderr, "recd-train: cannot publish %s in %s: %s\n", o.model, o.registry, recd_strerror(ret));
        goto Exit;
    }
    staging[0] = '\0';
    recd_registry_artifact_path(o.registry, o.model, version, artifact, sizeof(artifact));
    json_object_set_new(seconds, "publish", json_real(now() - t0));
    json_object_set_new(seconds, "total", json_real(now() - t_start));
    fprintf(stderr, "published %s version %llu: %s\n", o.model, (unsigned long long)version, artifact);

    summary = json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:O, s:O, s:O, s:s}", "model", o.model, "version", (json_int_t)version,
                        "algorithm", o.algorithm, "users", (json_int_t)n_users, "items", (json_int_t)n_items, "interactions",
                        (json_int_t)m.nnz, "params", params, "seconds", seconds, "evaluation", evaluation, "artifact", artifact);
    if (summary == NULL || json_dumpf(summary, stdout, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "recd-train: cannot write the summary\n");
        goto Exit;
    }
    fputc('\n', stdout);
    exit_code = fflush(stdout) == 0 ? 0 : 1;

Exit:
    if (staging[0] != '\0') { /* a failed run leaves no half-written version behind */
        char path[4200];
        static const char *const files[] = {RECD_REGISTRY_ARTIFACT, RECD_REGISTRY_ARTIFACT ".tmp", "manifest.json",
                                            "evaluation.json"};
        for (size_t i = 0; i != sizeof(files) / sizeof(files[0]); ++i) {
            snprintf(path, sizeof(path), "%s/%s", staging, files[i]);
            unlink(path);
        }
        rmdir(staging);
    }
    free(X);
    free(Y);
    free(metadata_str);
    json_decref(params);
    json_decref(evaluation);
    json_decref(data_info);
    json_decref(metadata);
    json_decref(manifest);
    json_decref(summary);
    json_decref(seconds);
    recd_csr_dispose(&m);
    recd_ingest_report_dispose(&report);
    recd_interactions_dispose(&data);
    return exit_code;
}
