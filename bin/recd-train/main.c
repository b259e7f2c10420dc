/* main.c: recd-train — ingest an interaction log; train, evaluate or tune ALS, BPR, biased MF or popularity;
 * publish the model to a registry. Subcommands: train (the default), evaluate, tune. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "base/clock.h"
#include "base/hash.h"
#include "models/model.h"
#include "registry/registry.h"
#include "train/ingest.h"
#include "train/trainer.h"

#define EXIT_USAGE 2
#define MAX_PARAM_FLAGS 32
#define MAX_ALGOS 8

typedef enum en_command_t { CMD_TRAIN = 0, CMD_EVALUATE, CMD_TUNE } command_t;
static const char *const command_names[] = {"train", "evaluate", "tune"};

typedef struct st_options_t {
    command_t cmd;
    const char *input, *registry, *model, *algorithm, *artifact, *report_path, *chart_path, *grid, *metric_name;
    recd_ingest_options_t ingest;
    uint32_t threads;
    uint64_t seed;
    int evaluate, holdout_test, random_search, k_given, protocol_given, validation_given;
    recd_protocol_t protocol;
    double test_ratio, validation_ratio;
    uint32_t folds, k, sampled_negatives, budget;
    uint32_t min_user, min_item; /* k-core minimums, 0 = off */
    recd_normalize_t normalize;
    recd_merge_t merge;
    recd_metric_t metric;
    /* model parameter flags as given, applied to the chosen algorithm(s) once all flags are read */
    const char *param_value[MAX_PARAM_FLAGS];
} options_t;

static const char *const merge_names[] = {"sum", "max", "last"};

/* The distinct parameter names of the table, in table order: each is a --flag. */
typedef struct st_param_flags_t {
    const char *name[MAX_PARAM_FLAGS];
    const char *help[MAX_PARAM_FLAGS];
    size_t n;
} param_flags_t;

static void collect_param_flags(param_flags_t *f)
{
    f->n = 0;
    for (size_t a = 0; a != recd_n_algorithms; ++a)
        for (size_t i = 0; i != recd_algorithms[a].n_params; ++i) {
            const recd_param_def_t *d = &recd_algorithms[a].params[i];
            size_t j = 0;
            while (j != f->n && strcmp(f->name[j], d->name) != 0)
                ++j;
            if (j == f->n && f->n != MAX_PARAM_FLAGS) {
                f->name[f->n] = d->name;
                f->help[f->n] = d->help;
                ++f->n;
            }
        }
}

/* An algorithm with its parameters: the defaults overridden by the flags given (those are "fixed" for tuning). */
typedef struct st_algo_setup_t {
    const recd_algorithm_t *a;
    _Alignas(16) char params[RECD_PARAMS_MAX_SIZE];
    uint8_t fixed[MAX_PARAM_FLAGS];
} algo_setup_t;

static void print_params_help(FILE *out)
{
    for (size_t a = 0; a != recd_n_algorithms; ++a) {
        const recd_algorithm_t *al = &recd_algorithms[a];
        char defaults[RECD_PARAMS_MAX_SIZE];
        _Alignas(16) char p[RECD_PARAMS_MAX_SIZE];
        al->params_init(p);
        fprintf(out, "  %s%s\n", al->name, al->n_params == 0 ? ": no parameters" : ":");
        for (size_t i = 0; i != al->n_params; ++i) {
            const recd_param_def_t *d = &al->params[i];
            char flag[64];
            snprintf(flag, sizeof(flag), "--%s", d->name);
            for (char *c = flag + 2; *c != '\0'; ++c)
                if (*c == '_')
                    *c = '-';
            if (d->choices != NULL) {
                json_t *j = recd_params_json(al, p);
                snprintf(defaults, sizeof(defaults), "%s; default %s", d->choices, json_string_value(json_object_get(j, d->name)));
                json_decref(j);
            } else if (d->lo < d->hi) {
                snprintf(defaults, sizeof(defaults), "default %g, %g..%g; search %g..%g%s, grid %s", recd_param_get(d, p), d->min,
                         d->max, d->lo, d->hi, d->log_scale ? " log" : "", d->grid != NULL ? d->grid : "-");
            } else {
                snprintf(defaults, sizeof(defaults), "default %g, %g..%g; not searched unless --grid names it",
                         recd_param_get(d, p), d->min, d->max);
            }
            fprintf(out, "    %-18s %s (%s)\n", flag, d->help, defaults);
        }
    }
}

static void usage(FILE *out, const char *argv0)
{
    fprintf(out,
            "Usage: %s [train] --input FILE --registry DIR --model NAME [options]\n"
            "       %s evaluate --input FILE [--algorithm A | --artifact PATH] [options]\n"
            "       %s tune --input FILE --registry DIR --model NAME [--algorithm A[,B]|all] [--metric ndcg@10]\n"
            "                [--budget N] [--search grid|random] [--grid 'alpha=1,2;reg=10,50'] [options]\n"
            "\n"
            "train     reads an interaction log, trains a model and publishes it as the next version of NAME in DIR\n"
            "          (DIR/NAME/<version>/{model.recd,manifest.json,evaluation.json}).\n"
            "evaluate  splits the log (--protocol), trains on the train part and scores the test part; or, with --artifact,\n"
            "          scores a published artifact exactly as recd serves it on the test part of the same split.\n"
            "tune      scores the default configuration and a grid or random sample of others on validation carved once\n"
            "          from the rows the published model learns from (K folds when small: every candidate on one fold, the\n"
            "          best third on all), refits the winner on a train part for test figures, then publishes it refitted\n"
            "          on every row (--holdout-test: publishes the train-part model with its own test figures).\n"
            "Progress and a readable table go to stderr, a JSON report to stdout (or --report FILE).\n"
            "\n"
            "Input:\n"
            "  --input FILE            interaction log (gzip or plain; '-' = standard input)\n"
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
            "  --algorithm A           als|bpr|biased_mf|popularity (default als); tune also takes a comma list or all\n"
            "  --threads N             training threads, 0 = all cores (default 0)\n"
            "  --seed S                random seed for initialisation and the splits (default 42)\n"
            "Model parameters (a flag fixes the parameter; tune searches only the others):\n",
            argv0, argv0, argv0);
    print_params_help(out);
    fprintf(out, "Evaluation:\n"
                 "  --evaluate              train: also evaluate a model trained on the train part of a split (the published\n"
                 "                          model is trained on all the data)\n"
                 "  --holdout-test          train, tune: publish the model trained on the train part only, with its test\n"
                 "                          metrics (default: the model trained on every accepted row)\n"
                 "  --protocol P            stratified|temporal|leave-last-out|kfold (default stratified; tune: not kfold)\n"
                 "  --test-ratio R          held-out fraction for stratified and temporal (default 0.25)\n"
                 "  --folds N               kfold, and tune's validation: number of folds (default 5)\n"
                 "  --k K                   cut-off of the ranking metrics (default 10)\n"
                 "  --sampled-negatives N   also rank each test item among N sampled unseen items (default 0, off)\n"
                 "  --artifact PATH         evaluate: score this artifact (trained on the train part of the same split)\n"
                 "  --report FILE           write the JSON report here instead of stdout\n"
                 "  --chart FILE.svg        SVG chart of the training loss and the held-out metric per iteration (the metric\n"
                 "                          is computed only with --chart: one evaluation per iteration, inside the fit time)\n"
                 "Tuning:\n"
                 "  --metric M              selection metric: ndcg@K, precision@K, recall@K, map@K, hr@K, mrr@K, auc, coverage,\n"
                 "                          rmse, mae, r2 (default ndcg@10; rmse/mae are minimised)\n"
                 "  --search S              grid|random (default grid)\n"
                 "  --budget N              candidates per algorithm (default 12); a larger grid is sampled down to N\n"
                 "  --grid SPEC             'name=v1,v2;name=v1,...'; 'als.reg=...' limits a key to one algorithm (default:\n"
                 "                          each algorithm's built-in grid over the parameters no flag fixed)\n"
                 "  --validation-ratio R    one validation split of this share instead of K folds (default: --folds folds\n"
                 "                          up to 2M interactions with the stratified protocol, else the test ratio)\n"
                 "  -h, --help              this text\n"
                 "\n"
                 "Exit status: 0 success, 1 failure, 2 usage error.\n");
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

enum {
    O_INPUT = 256,
    O_REGISTRY,
    O_MODEL,
    O_FORMAT,
    O_ALGORITHM,
    O_THREADS,
    O_SEED,
    O_EVALUATE,
    O_HOLDOUT,
    O_TEST_RATIO,
    O_VALIDATION_RATIO,
    O_K,
    O_USER_COL,
    O_ITEM_COL,
    O_VALUE_COL,
    O_TIME_COL,
    O_MAX_REJECT,
    O_MIN_USER,
    O_MIN_ITEM,
    O_NORMALIZE,
    O_MERGE,
    O_PROTOCOL,
    O_FOLDS,
    O_SAMPLED,
    O_ARTIFACT,
    O_REPORT,
    O_CHART,
    O_METRIC,
    O_SEARCH,
    O_BUDGET,
    O_GRID,
    O_PARAM /* O_PARAM + index into param_flags_t */
};

/* Applies the parameter flags to one algorithm. strict: a flag the algorithm lacks is an error (train, evaluate). */
static int setup_algorithm(const options_t *o, const param_flags_t *pf, const recd_algorithm_t *a, int strict, algo_setup_t *s)
{
    memset(s, 0, sizeof(*s));
    s->a = a;
    a->params_init(s->params);
    for (size_t j = 0; j != pf->n; ++j) {
        if (o->param_value[j] == NULL)
            continue;
        const recd_param_def_t *d = recd_algorithm_param(a, pf->name[j]);
        if (d == NULL) {
            if (!strict)
                continue;
            fprintf(stderr, "recd-train: --%s does not apply to %s (its parameters:", pf->name[j], a->name);
            for (size_t i = 0; i != a->n_params; ++i)
                fprintf(stderr, " --%s", a->params[i].name);
            fprintf(stderr, "%s)\n", a->n_params == 0 ? " none" : "");
            return EXIT_USAGE;
        }
        double v;
        if (recd_param_parse(d, o->param_value[j], &v) != 0) {
            if (d->choices != NULL)
                fprintf(stderr, "recd-train: --%s must be one of %s (got \"%s\")\n", pf->name[j], d->choices, o->param_value[j]);
            else
                fprintf(stderr, "recd-train: --%s must be %s in %g..%g (got \"%s\")\n", pf->name[j],
                        d->type == RECD_PARAM_U32 ? "an integer" : "a number", d->min, d->max, o->param_value[j]);
            return EXIT_USAGE;
        }
        recd_param_set(d, s->params, v);
        s->fixed[d - a->params] = 1;
    }
    return 0;
}

/* Returns 0, or EXIT_USAGE after printing what is wrong; -1 for --help. */
static int parse_args(options_t *o, const param_flags_t *pf, int argc, char **argv)
{
    static const struct option fixed_opts[] = {{"input", required_argument, NULL, O_INPUT},
                                               {"registry", required_argument, NULL, O_REGISTRY},
                                               {"model", required_argument, NULL, O_MODEL},
                                               {"format", required_argument, NULL, O_FORMAT},
                                               {"algorithm", required_argument, NULL, O_ALGORITHM},
                                               {"threads", required_argument, NULL, O_THREADS},
                                               {"seed", required_argument, NULL, O_SEED},
                                               {"evaluate", no_argument, NULL, O_EVALUATE},
                                               {"holdout-test", no_argument, NULL, O_HOLDOUT},
                                               {"test-ratio", required_argument, NULL, O_TEST_RATIO},
                                               {"validation-ratio", required_argument, NULL, O_VALIDATION_RATIO},
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
                                               {"protocol", required_argument, NULL, O_PROTOCOL},
                                               {"folds", required_argument, NULL, O_FOLDS},
                                               {"sampled-negatives", required_argument, NULL, O_SAMPLED},
                                               {"artifact", required_argument, NULL, O_ARTIFACT},
                                               {"report", required_argument, NULL, O_REPORT},
                                               {"chart", required_argument, NULL, O_CHART},
                                               {"metric", required_argument, NULL, O_METRIC},
                                               {"search", required_argument, NULL, O_SEARCH},
                                               {"budget", required_argument, NULL, O_BUDGET},
                                               {"grid", required_argument, NULL, O_GRID},
                                               {"help", no_argument, NULL, 'h'}};
    enum { N_FIXED = sizeof(fixed_opts) / sizeof(fixed_opts[0]) };
    struct option longopts[N_FIXED + MAX_PARAM_FLAGS + 1];
    char flag_names[MAX_PARAM_FLAGS][48];
    const char *argv0 = argv[0];
    int c;

    memcpy(longopts, fixed_opts, sizeof(fixed_opts));
    for (size_t j = 0; j != pf->n; ++j) {
        snprintf(flag_names[j], sizeof(flag_names[j]), "%s", pf->name[j]);
        for (char *p = flag_names[j]; *p != '\0'; ++p)
            if (*p == '_')
                *p = '-';
        longopts[N_FIXED + j] = (struct option){flag_names[j], required_argument, NULL, O_PARAM + (int)j};
    }
    longopts[N_FIXED + pf->n] = (struct option){NULL, 0, NULL, 0};

    opterr = 0;
    optind = 1;
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
            o->algorithm = optarg;
            break;
        case O_THREADS:
            if (parse_u32(optarg, 0, 256, &o->threads) != 0)
                bad = "--threads must be an integer in 0..256";
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-')
                bad = "--seed must be a non-negative integer";
            o->seed = v;
        } break;
        case O_EVALUATE:
            o->evaluate = 1;
            break;
        case O_HOLDOUT:
            o->holdout_test = 1;
            break;
        case O_TEST_RATIO:
            if (parse_double(optarg, 0.01, 0.99, &o->test_ratio) != 0)
                bad = "--test-ratio must be a number in 0.01..0.99";
            break;
        case O_VALIDATION_RATIO:
            if (parse_double(optarg, 0.01, 0.99, &o->validation_ratio) != 0)
                bad = "--validation-ratio must be a number in 0.01..0.99";
            o->validation_given = 1;
            break;
        case O_K:
            if (parse_u32(optarg, 1, 1000, &o->k) != 0)
                bad = "--k must be an integer in 1..1000";
            o->k_given = 1;
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
        case O_PROTOCOL:
            if (recd_protocol_parse(optarg, &o->protocol) != 0)
                bad = "--protocol must be stratified, temporal, leave-last-out or kfold";
            o->protocol_given = 1;
            break;
        case O_FOLDS:
            if (parse_u32(optarg, 2, 100, &o->folds) != 0)
                bad = "--folds must be an integer in 2..100";
            break;
        case O_SAMPLED:
            if (parse_u32(optarg, 1, 1000000, &o->sampled_negatives) != 0)
                bad = "--sampled-negatives must be an integer in 1..1000000";
            break;
        case O_ARTIFACT:
            o->artifact = optarg;
            break;
        case O_REPORT:
            o->report_path = optarg;
            break;
        case O_CHART:
            o->chart_path = optarg;
            break;
        case O_METRIC:
            if (recd_metric_parse(optarg, &o->metric) != 0)
                bad = "--metric must be ndcg@K, precision@K, recall@K, map@K, hr@K, mrr@K, auc, coverage, rmse, mae or r2";
            o->metric_name = optarg;
            break;
        case O_SEARCH:
            if (strcmp(optarg, "grid") == 0)
                o->random_search = 0;
            else if (strcmp(optarg, "random") == 0)
                o->random_search = 1;
            else
                bad = "--search must be grid or random";
            break;
        case O_BUDGET:
            if (parse_u32(optarg, 1, 100000, &o->budget) != 0)
                bad = "--budget must be an integer in 1..100000";
            break;
        case O_GRID:
            o->grid = optarg;
            break;
        case ':':
            fprintf(stderr, "recd-train: %s needs a value (see --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            if (c >= O_PARAM && c < O_PARAM + (int)pf->n) {
                o->param_value[c - O_PARAM] = optarg;
                break;
            }
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
    if (o->input == NULL) {
        fprintf(stderr, "recd-train: --input is required (see --help)\n");
        return EXIT_USAGE;
    }
    if (o->cmd != CMD_EVALUATE && (o->registry == NULL || o->model == NULL)) {
        fprintf(stderr, "recd-train: --input, --registry and --model are required (see --help)\n");
        return EXIT_USAGE;
    }
    if (o->model != NULL && !recd_registry_valid_name(o->model)) {
        fprintf(stderr, "recd-train: invalid model name \"%s\": use 1..64 of [A-Za-z0-9_.-], not starting with '.'\n", o->model);
        return EXIT_USAGE;
    }
    if (o->metric_name != NULL) {
        if (o->k_given && o->metric.k != o->k && strchr(o->metric_name, '@') != NULL) {
            fprintf(stderr, "recd-train: --metric %s and --k %u disagree on the cut-off\n", o->metric_name, o->k);
            return EXIT_USAGE;
        }
        if (!o->k_given && strchr(o->metric_name, '@') != NULL)
            o->k = o->metric.k;
    }
    /* metrics without @k use the report's k for the ranking they still need */
    o->metric.k = o->k;
    if (strchr(o->metric.name, '@') != NULL) {
        char base[32];
        snprintf(base, sizeof(base), "%s", o->metric.name);
        *strchr(base, '@') = '\0';
        snprintf(o->metric.name, sizeof(o->metric.name), "%.20s@%u", base, o->k);
    }
    const char *misplaced = NULL;
    if ((o->cmd != CMD_TRAIN && o->evaluate) || (o->cmd == CMD_EVALUATE && o->holdout_test))
        misplaced = o->evaluate ? "--evaluate" : "--holdout-test";
    else if (o->cmd != CMD_EVALUATE && o->artifact != NULL)
        misplaced = "--artifact";
    else if (o->cmd != CMD_TUNE && (o->grid != NULL || o->budget != 0 || o->random_search || o->validation_ratio != 0))
        misplaced = o->grid != NULL ? "--grid" : o->budget != 0 ? "--budget" : o->random_search ? "--search" : "--validation-ratio";
    else if (o->cmd == CMD_EVALUATE && (o->registry != NULL || o->model != NULL))
        misplaced = o->registry != NULL ? "--registry" : "--model";
    if (misplaced != NULL) {
        fprintf(stderr, "recd-train: %s does not apply to %s (see --help)\n", misplaced, command_names[o->cmd]);
        return EXIT_USAGE;
    }
    if (o->cmd == CMD_TRAIN && o->evaluate && o->holdout_test) {
        fprintf(stderr, "recd-train: --evaluate and --holdout-test exclude each other (--holdout-test already evaluates)\n");
        return EXIT_USAGE;
    }
    if ((o->cmd == CMD_TUNE || (o->cmd == CMD_TRAIN && o->holdout_test) || (o->cmd == CMD_EVALUATE && o->artifact != NULL)) &&
        o->protocol == RECD_PROTOCOL_KFOLD) {
        fprintf(stderr,
                "recd-train: --protocol kfold has no single test split; %s needs stratified, temporal or "
                "leave-last-out\n",
                o->cmd == CMD_TUNE    ? "tune"
                : o->cmd == CMD_TRAIN ? "--holdout-test"
                                      : "--artifact");
        return EXIT_USAGE;
    }
    if (o->cmd == CMD_EVALUATE && o->artifact != NULL && o->algorithm != NULL) {
        fprintf(stderr, "recd-train: evaluate takes --algorithm or --artifact, not both (the artifact knows its kind)\n");
        return EXIT_USAGE;
    }
    if (o->validation_ratio == 0)
        o->validation_ratio = o->test_ratio;
    if (o->budget == 0)
        o->budget = 12;
    return 0;
}

/* CPU seconds used by every thread of the process so far (user + system). */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
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

/* ---- input ------------------------------------------------------------------------------------------------------------ */

/* The log as read and cleansed, merged into unique entries, and what is known about it. */
typedef struct st_dataset_t {
    recd_interactions_t data;
    recd_ingest_report_t report;
    recd_entries_t entries;
    char fingerprint[65];
    int from_stdin;
    uint64_t kcore_removed;
    double seconds;
} dataset_t;

static void dataset_dispose(dataset_t *d)
{
    recd_entries_dispose(&d->entries);
    recd_ingest_report_dispose(&d->report);
    recd_interactions_dispose(&d->data);
}

/* Reads, validates, cleanses and merges the input; prints what it did on stderr. Returns 0 or 1 (message printed). */
static int load_dataset(const options_t *o, dataset_t *d)
{
    char err[1024] = "";
    int ret;
    double t0 = recd_monotonic_seconds();
    d->from_stdin = strcmp(o->input, "-") == 0;
    if (!d->from_stdin && sha256_file(o->input, d->fingerprint) != 0) {
        fprintf(stderr, "recd-train: cannot read %s: %s\n", o->input, strerror(errno));
        return 1;
    }
    if ((ret = recd_ingest_file(o->input, &o->ingest, &d->data, &d->report, err, sizeof(err))) != RECD_OK) {
        fprintf(stderr, "recd-train: %s: %s\n", o->input, err[0] != '\0' ? err : recd_strerror(ret));
        return 1;
    }
    const recd_ingest_report_t *r = &d->report;
    fprintf(stderr, "ingest: %s format=%s read=%llu accepted=%llu rejected=%llu", o->input, recd_format_name(r->format),
            (unsigned long long)r->rows_read, (unsigned long long)r->rows_accepted, (unsigned long long)r->rows_rejected);
    for (int i = 0; i != RECD_REJECT__COUNT; ++i)
        if (r->rejected[i] != 0)
            fprintf(stderr, " %s=%llu", recd_reject_name((recd_reject_t)i), (unsigned long long)r->rejected[i]);
    fprintf(stderr, "\n");
    for (size_t i = 0; i != r->n_samples; ++i)
        fprintf(stderr, "ingest: rejected line %llu (%s): %s\n", (unsigned long long)r->samples[i].line,
                recd_reject_name(r->samples[i].reason), r->samples[i].text);
    if (d->from_stdin && sha256_rows(&d->data, d->fingerprint) != 0) {
        fprintf(stderr, "recd-train: cannot compute the data fingerprint\n");
        return 1;
    }
    if ((o->min_user > 1 || o->min_item > 1) &&
        recd_interactions_kcore(&d->data, o->min_user, o->min_item, &d->kcore_removed) == RECD_OK)
        fprintf(stderr, "cleanse: k-core (users >= %u items, items >= %u users) removed %llu rows, %zu left\n", o->min_user,
                o->min_item, (unsigned long long)d->kcore_removed, d->data.n);
    if (o->normalize != RECD_NORMALIZE_NONE && recd_interactions_normalize(&d->data, o->normalize) != RECD_OK) {
        fprintf(stderr, "recd-train: --normalize %s cannot be applied to these values (log1p needs values >= 0)\n",
                recd_normalize_name(o->normalize));
        return 1;
    }
    if (d->data.n == 0) {
        fprintf(stderr, "recd-train: %s: no interactions left, nothing to train\n", o->input);
        return 1;
    }
    if ((ret = recd_entries_from_interactions(&d->data, o->merge, &d->entries)) != RECD_OK) {
        fprintf(stderr, "recd-train: cannot build the interaction matrix: %s\n", recd_strerror(ret));
        return 1;
    }
    fprintf(stderr, "matrix: %zu users x %zu items, %zu distinct interactions\n", d->entries.n_rows, d->entries.n_cols,
            d->entries.n);
    d->seconds = recd_monotonic_seconds() - t0;
    return 0;
}

static json_t *data_info_json(const options_t *o, const dataset_t *d)
{
    json_t *info = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "path", o->input, "format", recd_format_name(d->report.format), "sha256",
        d->fingerprint, "rows_read", (json_int_t)d->report.rows_read, "rows_rejected", (json_int_t)d->report.rows_rejected, "users",
        (json_int_t)d->entries.n_rows, "items", (json_int_t)d->entries.n_cols, "interactions", (json_int_t)d->entries.n);
    json_object_set_new(info, "sha256_of", json_string(d->from_stdin ? "accepted rows" : "input bytes"));
    json_object_set_new(info, "cleanse",
                        json_pack("{s:i, s:i, s:I, s:s, s:s}", "min_user_interactions", (int)o->min_user, "min_item_interactions",
                                  (int)o->min_item, "kcore_rows_removed", (json_int_t)d->kcore_removed, "normalize",
                                  recd_normalize_name(o->normalize), "merge", merge_names[o->merge]));
    return info;
}

/* The observed rating range of a matrix's values (predictions of explicit models are clipped to it). */
static void value_range(const recd_csr_t *m, float *lo, float *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t j = 0; j != m->nnz; ++j) {
        *lo = m->val[j] < *lo ? m->val[j] : *lo;
        *hi = m->val[j] > *hi ? m->val[j] : *hi;
    }
    if (m->nnz == 0)
        *lo = *hi = 0;
}

/* ---- training with progress lines ---------------------------------------------------------------------------------- */

typedef struct st_iter_print_t {
    const char *prefix;
    uint32_t iterations;
} iter_print_t;

static int print_iteration(void *data, uint32_t iteration, double loss, double seconds)
{
    iter_print_t *p = data;
    fprintf(stderr, "%siter %u/%u loss=%.6g %.3fs\n", p->prefix, iteration, p->iterations, loss, seconds);
    return 0;
}

static uint32_t total_iterations(const algo_setup_t *s)
{
    const recd_param_def_t *d = recd_algorithm_param(s->a, "iterations");
    if (d == NULL)
        d = recd_algorithm_param(s->a, "epochs");
    return d != NULL ? (uint32_t)recd_param_get(d, s->params) : 1;
}

/* Trains s on m. prefix != NULL prints a line per iteration; curve != NULL records loss (and snapshots when its test is
 * set). Prints a message on failure. */
static int fit_model(const options_t *o, const algo_setup_t *s, const recd_csr_t *m, const char *prefix, recd_curve_t *curve,
                     recd_fitted_t *out, double *wall, double *cpu)
{
    iter_print_t printer = {prefix, total_iterations(s)};
    recd_fit_hooks_t hooks = {.threads = o->threads, .seed = o->seed};
    if (prefix != NULL) {
        hooks.on_progress = print_iteration;
        hooks.progress_data = &printer;
    }
    if (curve != NULL) {
        /* the per-iteration metric costs an evaluation per iteration (inside the fit time): only for a chart */
        if (o->chart_path == NULL)
            curve->test = NULL;
        recd_curve_attach(curve, &hooks);
    }
    double t0 = recd_monotonic_seconds(), c0 = cpu_now();
    int ret = recd_fit(s->a, m, s->params, &hooks, out);
    if (wall != NULL)
        *wall = recd_monotonic_seconds() - t0;
    if (cpu != NULL)
        *cpu = cpu_now() - c0;
    if (ret != RECD_OK)
        fprintf(stderr, "recd-train: training %s failed: %s%s\n", s->a->name, recd_strerror(ret),
                ret == RECD_ENUMERIC ? " (a per-row system was not positive definite: values below 0 give confidences below 1; "
                                       "use values >= 0 or a larger --reg)"
                                     : "");
    return ret;
}

static recd_eval_options_t eval_options(const options_t *o, const recd_algorithm_t *a, const recd_csr_t *train)
{
    recd_eval_options_t e = {.k = o->k, .threads = o->threads, .sampled_negatives = o->sampled_negatives, .seed = o->seed};
    if (a != NULL && a->explicit_ratings) {
        e.rating_metrics = 1;
        value_range(train, &e.min_rating, &e.max_rating);
    }
    return e;
}

/* ---- the readable table -------------------------------------------------------------------------------------------- */

/* Prints the metrics of n results side by side (columns labelled), every row aligned. */
static void print_metrics_table(FILE *out, const char *const *labels, const recd_eval_result_t *r, size_t n)
{
    char name[32];
    uint32_t k = r[0].ranking.k;
    fprintf(out, "%-22s", "metric");
    for (size_t i = 0; i != n; ++i)
        fprintf(out, " %10s", labels[i]);
    fprintf(out, "\n");
#define ROW(label, expr)                                                                                                           \
    do {                                                                                                                           \
        fprintf(out, "%-22s", label);                                                                                              \
        for (size_t i = 0; i != n; ++i)                                                                                            \
            fprintf(out, " %10.4f", (double)(expr));                                                                               \
        fprintf(out, "\n");                                                                                                        \
    } while (0)
    snprintf(name, sizeof(name), "P@%u", k);
    ROW(name, r[i].ranking.precision);
    snprintf(name, sizeof(name), "R@%u", k);
    ROW(name, r[i].ranking.recall);
    snprintf(name, sizeof(name), "nDCG@%u", k);
    ROW(name, r[i].ranking.ndcg);
    snprintf(name, sizeof(name), "MAP@%u", k);
    ROW(name, r[i].ranking.map);
    snprintf(name, sizeof(name), "HR@%u", k);
    ROW(name, r[i].ranking.hit_rate);
    snprintf(name, sizeof(name), "MRR@%u", k);
    ROW(name, r[i].ranking.mrr);
    ROW("AUC", r[i].ranking.auc);
    snprintf(name, sizeof(name), "coverage@%u", k);
    ROW(name, r[i].ranking.coverage);
    fprintf(out, "%-22s", "users");
    for (size_t i = 0; i != n; ++i)
        fprintf(out, " %10zu", r[i].ranking.users);
    fprintf(out, "\n");
    if (r[0].has_sampled) {
        snprintf(name, sizeof(name), "sampled(%u) HR@%u", r[0].sampled_protocol.n_negatives, k);
        ROW(name, r[i].sampled.hit_rate);
        snprintf(name, sizeof(name), "sampled nDCG@%u", k);
        ROW(name, r[i].sampled.ndcg);
        ROW("sampled MRR", r[i].sampled.mrr);
        ROW("sampled AUC", r[i].sampled.auc);
    }
    if (r[0].has_rating) {
        ROW("RMSE", r[i].rating.rmse);
        ROW("MAE", r[i].rating.mae);
        ROW("R2", r[i].rating.r2);
    }
#undef ROW
}

/* Writes the report to --report FILE or stdout. Returns 0 or 1 (message printed). */
static int write_report(const options_t *o, json_t *report)
{
    if (o->report_path != NULL) {
        if (json_dump_file(report, o->report_path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
            fprintf(stderr, "recd-train: cannot write %s: %s\n", o->report_path, strerror(errno));
            return 1;
        }
        return 0;
    }
    if (json_dumpf(report, stdout, JSON_INDENT(2)) != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "recd-train: cannot write the report\n");
        return 1;
    }
    return 0;
}

static int write_chart(const options_t *o, const recd_curve_t *curve, const char *title, const char *metric_label)
{
    if (o->chart_path == NULL)
        return 0;
    if (recd_chart_write_svg(curve, title, metric_label, o->chart_path) != RECD_OK) {
        fprintf(stderr, "recd-train: cannot write %s: %s\n", o->chart_path, strerror(errno));
        return 1;
    }
    fprintf(stderr, "chart: %s (%zu loss points, %zu %s points)\n", o->chart_path, curve->n_loss, curve->n_metric, metric_label);
    return 0;
}

/* ---- splits ------------------------------------------------------------------------------------------------------- */

/* A split as matrices. */
typedef struct st_split_t {
    recd_entries_t train_e, test_e;
    recd_csr_t train, test;
} split_t;

static void split_dispose(split_t *s)
{
    recd_entries_dispose(&s->train_e);
    recd_entries_dispose(&s->test_e);
    recd_csr_dispose(&s->train);
    recd_csr_dispose(&s->test);
}

static int make_split(const recd_entries_t *e, recd_protocol_t p, double ratio, uint64_t seed, uint32_t fold, uint32_t folds,
                      split_t *s)
{
    memset(s, 0, sizeof(*s));
    if ((p == RECD_PROTOCOL_TEMPORAL || p == RECD_PROTOCOL_LEAVE_LAST_OUT) && e->n != 0) {
        size_t j = 1;
        while (j != e->n && e->ts[j] == e->ts[0])
            ++j;
        if (j == e->n)
            fprintf(stderr,
                    "recd-train: note: every interaction has the same timestamp (no --time-col?); the %s split "
                    "follows the input order\n",
                    recd_protocol_name(p));
    }
    int ret = recd_entries_split(e, p, ratio, seed, fold, folds, &s->train_e, &s->test_e);
    if (ret == RECD_OK && (ret = recd_entries_csr(&s->train_e, &s->train)) == RECD_OK)
        ret = recd_entries_csr(&s->test_e, &s->test);
    if (ret != RECD_OK) {
        fprintf(stderr, "recd-train: the %s split failed: %s\n", recd_protocol_name(p), recd_strerror(ret));
        split_dispose(s);
    } else if (s->test.nnz == 0) {
        fprintf(stderr, "recd-train: the %s split left no test interactions (too little data?)\n", recd_protocol_name(p));
        split_dispose(s);
        ret = RECD_EINVAL;
    }
    return ret;
}

/* The protocol part of an evaluation object. */
static void protocol_json(const options_t *o, json_t *ev, const split_t *s)
{
    json_object_set_new(ev, "protocol", json_string(recd_protocol_name(o->protocol)));
    json_object_set_new(ev, "protocol_description", json_string(recd_protocol_description(o->protocol)));
    if (o->protocol == RECD_PROTOCOL_STRATIFIED || o->protocol == RECD_PROTOCOL_TEMPORAL)
        json_object_set_new(ev, "test_ratio", json_real(o->test_ratio));
    if (o->protocol == RECD_PROTOCOL_KFOLD)
        json_object_set_new(ev, "folds", json_integer(o->folds));
    json_object_set_new(ev, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(ev, "relevance", json_string("binary; items in the user's train part excluded from its ranking"));
    if (s != NULL) {
        json_object_set_new(ev, "train_interactions", json_integer((json_int_t)s->train.nnz));
        json_object_set_new(ev, "test_interactions", json_integer((json_int_t)s->test.nnz));
    }
}

/* ---- publishing --------------------------------------------------------------------------------------------------- */

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

/* What a publication records besides the model itself. */
typedef struct st_publication_t {
    const char *algorithm;
    json_t *params, *data_info, *evaluation, *tuning; /* borrowed; tuning may be NULL */
    const char *trained_on;                           /* which rows the published model saw */
    const char *created;
    int all_rows; /* the model claims every accepted row: publishing fails if any is missing from its matrix */
} publication_t;

static int contains_sorted(const uint32_t *a, size_t n, uint32_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == v;
}

/* How many accepted input rows (before duplicates merge) have their (user, item) in m: the rows a model trained on m saw. */
static size_t rows_in_matrix(const recd_interactions_t *x, const recd_csr_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i != x->n; ++i) {
        uint32_t u = x->user[i];
        if (u < m->n_rows && contains_sorted(m->col + m->row_ptr[u], m->row_ptr[u + 1] - m->row_ptr[u], x->item[i]))
            ++n;
    }
    return n;
}

/* Writes the artifact, manifest.json and evaluation.json to a staging directory and publishes it as the next version.
 * On success *version and artifact receive the version and its artifact path. Returns 0 or 1 (message printed). */
static int publish(const options_t *o, const dataset_t *d, const recd_fitted_t *f, const recd_csr_t *user_items,
                   const publication_t *pub, uint64_t *version, char *artifact, size_t artifact_len)
{
    char err[1024] = "", staging[4096] = "";
    char *metadata_str = NULL;
    json_t *metadata = NULL, *manifest = NULL;
    int exit_code = 1, ret;

    /* no published artifact drops rows silently: the manifest counts what the model saw */
    size_t rows = rows_in_matrix(&d->data, user_items);
    if (pub->all_rows && rows != d->data.n) {
        fprintf(stderr, "recd-train: the model would be trained on %zu of the %zu accepted rows; refusing to publish it\n", rows,
                d->data.n);
        return 1;
    }
    metadata = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:s, s:s}", "trainer", "recd-train", "trainer_version", RECD_VERSION,
                         "algorithm", pub->algorithm, "kind", recd_model_kind_name(f->kind), "params", pub->params, "data",
                         pub->data_info, "evaluation", pub->evaluation, "trained_on", pub->trained_on, "created", pub->created);
    if (metadata != NULL && pub->tuning != NULL)
        json_object_set(metadata, "tuning", pub->tuning);
    if (metadata == NULL || (metadata_str = json_dumps(metadata, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        fprintf(stderr, "recd-train: out of memory building the metadata\n");
        goto Exit;
    }
    recd_model_spec_t spec;
    recd_fitted_spec(f, recd_idmap_ids(d->data.users), recd_idmap_ids(d->data.items), user_items, metadata_str, &spec);
    if ((ret = recd_registry_stage(o->registry, o->model, staging, sizeof(staging))) != RECD_OK) {
        fprintf(stderr, "recd-train: cannot create a staging directory in %s: %s\n", o->registry, recd_strerror(ret));
        staging[0] = '\0';
        goto Exit;
    }
    snprintf(artifact, artifact_len, "%s/%s", staging, RECD_REGISTRY_ARTIFACT);
    if ((ret = recd_model_write(&spec, artifact, err, sizeof(err))) != RECD_OK) {
        fprintf(stderr, "recd-train: cannot write the artifact: %s\n", err);
        goto Exit;
    }
    { /* read it back: the checksum and every offset must verify before anything is published */
        recd_model_t *check = recd_model_open(artifact, err, sizeof(err));
        if (check == NULL) {
            fprintf(stderr, "recd-train: the written artifact does not load: %s\n", err);
            goto Exit;
        }
        manifest = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:s, s:s, s:s}", "model", o->model, "kind",
                             recd_model_kind_name(spec.kind), "algorithm", pub->algorithm, "artifact", RECD_REGISTRY_ARTIFACT,
                             "artifact_sha256", recd_model_sha256(check), "params", pub->params, "data", pub->data_info,
                             "trained_on", pub->trained_on, "created", pub->created, "trainer_version", RECD_VERSION);
        recd_model_release(check);
    }
    if (manifest == NULL) {
        fprintf(stderr, "recd-train: out of memory building the manifest\n");
        goto Exit;
    }
    if (pub->tuning != NULL)
        json_object_set(manifest, "tuning", pub->tuning);
    json_object_set(manifest, "evaluation", pub->evaluation);
    json_object_set_new(manifest, "trained_on_rows", json_integer((json_int_t)rows));
    json_object_set_new(manifest, "trained_on_interactions", json_integer((json_int_t)user_items->nnz));
    json_object_set_new(manifest, "accepted_rows", json_integer((json_int_t)d->data.n));
    json_object_set_new(manifest, "trained_on_every_accepted_row", json_boolean(rows == d->data.n));
    json_object_set_new(manifest, "held_out_figures",
                        json_string(rows == d->data.n ? "none: every accepted row trained this model (see evaluation.json for "
                                                        "what its figures are of)"
                                                      : "evaluation.json: the rows this model did not see"));
    if (f->kind == RECD_MODEL_BPR || f->kind == RECD_MODEL_BIASED_MF || f->kind == RECD_MODEL_ALS)
        json_object_set_new(manifest, "fold_in", json_pack("{s:f, s:f}", "alpha", (double)f->alpha, "reg", (double)f->reg));
    { /* the ingest report (per-reason reject counts and samples) documents what was dropped */
        char *report_json = recd_ingest_report_json(&d->report);
        json_t *ingest = report_json != NULL ? json_loads(report_json, 0, NULL) : NULL;
        free(report_json);
        if (ingest != NULL)
            json_object_set_new(manifest, "ingest", ingest);
    }
    if (write_json_file(staging, "manifest.json", manifest) != RECD_OK ||
        write_json_file(staging, "evaluation.json", pub->evaluation) != RECD_OK)
        goto Exit;
    if ((ret = recd_registry_commit(o->registry, o->model, staging, version)) != RECD_OK) {
        fprintf(stderr, "recd-train: cannot publish %s in %s: %s\n", o->model, o->registry, recd_strerror(ret));
        goto Exit;
    }
    staging[0] = '\0';
    recd_registry_artifact_path(o->registry, o->model, *version, artifact, artifact_len);
    fprintf(stderr, "published %s version %llu (%s, trained on %s): %s\n", o->model, (unsigned long long)*version, pub->algorithm,
            pub->trained_on, artifact);
    exit_code = 0;
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
    free(metadata_str);
    json_decref(metadata);
    json_decref(manifest);
    return exit_code;
}

static void now_iso(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Adds the metrics of r to ev at the top level (precision, ..., sampled, rating). */
static void merge_metrics(json_t *ev, const recd_eval_result_t *r)
{
    json_t *m = recd_eval_result_json(r);
    json_object_update(ev, m);
    json_decref(m);
}

static const recd_algorithm_t *single_algorithm(const options_t *o)
{
    const recd_algorithm_t *a = recd_algorithm_find(o->algorithm != NULL ? o->algorithm : "als");
    if (a == NULL)
        fprintf(stderr, "recd-train: --algorithm must be als, bpr, biased_mf or popularity (got \"%s\")\n", o->algorithm);
    return a;
}

/* BPR and biased MF: recd's fold-in pair, chosen on the first validation fold with the winner's parameters. */
static int choose_fold_in(const options_t *o, const algo_setup_t *s, const split_t *fold, recd_fold_in_choice_t *choice)
{
    recd_fitted_t f = {0};
    int ret = fit_model(o, s, &fold->train, NULL, NULL, &f, NULL, NULL);
    if (ret == RECD_OK) {
        recd_eval_options_t eo = eval_options(o, s->a, &fold->train);
        ret = recd_fold_in_choose(&f, &fold->train, &fold->test, &eo, &o->metric, choice);
        if (ret != RECD_OK)
            fprintf(stderr, "recd-train: choosing the fold-in parameters failed: %s\n", recd_strerror(ret));
        else
            fprintf(stderr, "fold-in: alpha=%g reg=%g (validation %s %.4f; %.4f at alpha=1 reg=1, %zu pairs tried)\n",
                    (double)choice->alpha, (double)choice->reg, choice->metric, choice->score, choice->default_score,
                    choice->tried);
    }
    recd_fitted_dispose(&f);
    return ret;
}

static int has_fold_in_choice(const recd_algorithm_t *a)
{
    return a->kind == RECD_MODEL_BPR || a->kind == RECD_MODEL_BIASED_MF;
}

/* ---- train --------------------------------------------------------------------------------------------------------- */

static int cmd_train(const options_t *o, const param_flags_t *pf)
{
    dataset_t d = {0};
    algo_setup_t s;
    split_t split = {0};
    recd_csr_t all = {0};
    recd_fitted_t f = {0};
    recd_curve_t curve = {0};
    json_t *params = NULL, *evaluation = json_object(), *data_info = NULL, *summary = NULL, *seconds = json_object();
    char created[32], artifact[4096];
    int exit_code = 1;
    double t_start = recd_monotonic_seconds(), wall, cpu;
    const recd_algorithm_t *a = single_algorithm(o);

    if (a == NULL) {
        exit_code = EXIT_USAGE;
        goto Exit;
    }
    if ((exit_code = setup_algorithm(o, pf, a, 1, &s)) != 0)
        goto Exit;
    exit_code = 1;
    now_iso(created, sizeof(created));
    recd_interactions_init(&d.data);
    if (load_dataset(o, &d) != 0)
        goto Exit;
    json_object_set_new(seconds, "ingest", json_real(d.seconds));
    if (recd_entries_csr(&d.entries, &all) != RECD_OK)
        goto Exit;
    params = recd_params_json(a, s.params);
    json_object_set_new(params, "threads", json_integer(o->threads));
    json_object_set_new(params, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(evaluation, "evaluated", json_false());

    const recd_csr_t *published_rows = &all;
    const char *trained_on = "all interactions";
    if (o->evaluate || o->holdout_test) {
        double t0 = recd_monotonic_seconds();
        if (make_split(&d.entries, o->protocol, o->test_ratio, o->seed, 0, o->folds, &split) != RECD_OK)
            goto Exit;
        recd_eval_options_t eo = eval_options(o, a, &split.train);
        curve = (recd_curve_t){.algorithm = a, .train = &split.train, .test = &split.test, .eval = eo, .selected = o->metric};
        curve.n_factors =
            (uint32_t)(recd_algorithm_param(a, "factors") ? recd_param_get(recd_algorithm_param(a, "factors"), s.params) : 0);
        if (fit_model(o, &s, &split.train, "split: ", &curve, &f, &wall, &cpu) != RECD_OK)
            goto Exit;
        recd_eval_result_t r;
        int ret = recd_evaluate_fitted(&f, &split.train, &split.test, &eo, &r);
        if (ret != RECD_OK) {
            fprintf(stderr, "recd-train: evaluation failed: %s\n", recd_strerror(ret));
            goto Exit;
        }
        json_object_set_new(evaluation, "evaluated", json_true());
        protocol_json(o, evaluation, &split);
        merge_metrics(evaluation, &r);
        json_object_set_new(evaluation, "fit_seconds", json_real(wall));
        json_object_set_new(evaluation, "fit_cpu_seconds", json_real(cpu));
        json_object_set_new(evaluation, "model_trained_on", json_string("the train part of the split"));
        json_object_set_new(evaluation, "curve", recd_curve_json(&curve));
        json_object_set_new(seconds, "evaluate", json_real(recd_monotonic_seconds() - t0));
        const char *label = "test";
        fprintf(stderr, "evaluation (%s split, %zu train / %zu test interactions):\n", recd_protocol_name(o->protocol),
                split.train.nnz, split.test.nnz);
        print_metrics_table(stderr, &label, &r, 1);
        if (write_chart(o, &curve, a->name, "test metric") != 0)
            goto Exit;
        if (o->holdout_test) {
            published_rows = &split.train;
            trained_on = "the train part of the split only (the test part was held out)";
            json_object_set_new(evaluation, "published_model", json_string("this model (trained on the train part)"));
            json_object_set_new(seconds, "fit", json_real(wall));
            json_object_set_new(seconds, "fit_cpu", json_real(cpu));
        } else {
            json_object_set_new(evaluation, "published_model",
                                json_string("trained on all interactions with the same parameters; these figures are of the "
                                            "model trained on the train part"));
            recd_fitted_dispose(&f);
        }
    }
    if (!o->holdout_test) {
        recd_curve_t all_curve = {.selected = o->metric};
        if (fit_model(o, &s, &all, "", o->evaluate ? NULL : &all_curve, &f, &wall, &cpu) != RECD_OK) {
            recd_curve_dispose(&all_curve);
            goto Exit;
        }
        json_object_set_new(seconds, "fit", json_real(wall));
        json_object_set_new(seconds, "fit_cpu", json_real(cpu));
        if (!o->evaluate && write_chart(o, &all_curve, a->name, "validation metric (no split: use --evaluate)") != 0) {
            recd_curve_dispose(&all_curve);
            goto Exit;
        }
        recd_curve_dispose(&all_curve);
    }

    if (has_fold_in_choice(a)) { /* on a validation split of the rows the published model learned from */
        split_t val;
        recd_fold_in_choice_t choice;
        if (make_split(o->holdout_test ? &split.train_e : &d.entries,
                       o->protocol == RECD_PROTOCOL_KFOLD ? RECD_PROTOCOL_STRATIFIED : o->protocol, o->test_ratio, o->seed + 1, 0,
                       0, &val) != RECD_OK)
            goto Exit;
        int ret = choose_fold_in(o, &s, &val, &choice);
        split_dispose(&val);
        if (ret != RECD_OK)
            goto Exit;
        f.alpha = choice.alpha;
        f.reg = choice.reg;
        json_object_set_new(evaluation, "fold_in", recd_fold_in_choice_json(&choice));
    }
    double t0 = recd_monotonic_seconds();
    data_info = data_info_json(o, &d);
    publication_t pub = {a->name, params, data_info, evaluation, NULL, trained_on, created, !o->holdout_test};
    uint64_t version;
    if (publish(o, &d, &f, published_rows, &pub, &version, artifact, sizeof(artifact)) != 0)
        goto Exit;
    json_object_set_new(seconds, "publish", json_real(recd_monotonic_seconds() - t0));
    json_object_set_new(seconds, "total", json_real(recd_monotonic_seconds() - t_start));
    summary = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:O, s:O, s:O, s:s, s:s}", "command", "train", "model", o->model,
                        "version", (json_int_t)version, "algorithm", a->name, "users", (json_int_t)all.n_rows, "items",
                        (json_int_t)all.n_cols, "interactions", (json_int_t)all.nnz, "params", params, "seconds", seconds,
                        "evaluation", evaluation, "artifact", artifact, "trained_on", trained_on);
    exit_code = summary != NULL ? write_report(o, summary) : 1;
Exit:
    recd_curve_dispose(&curve);
    recd_fitted_dispose(&f);
    split_dispose(&split);
    recd_csr_dispose(&all);
    json_decref(params);
    json_decref(evaluation);
    json_decref(data_info);
    json_decref(summary);
    json_decref(seconds);
    dataset_dispose(&d);
    return exit_code;
}

/* ---- evaluate ------------------------------------------------------------------------------------------------------ */

static uint32_t factors_of(const algo_setup_t *s)
{
    const recd_param_def_t *d = recd_algorithm_param(s->a, "factors");
    return d != NULL ? (uint32_t)recd_param_get(d, s->params) : 0;
}

/* Scores an artifact for the dataset's users and items, as recd serves it: the user's vector (or, for a user the artifact
 * does not know, its popularity fallback) through recd_model_score, the user's seen items in the artifact excluded. */
typedef struct st_artifact_scorer_t {
    recd_model_t *m;
    int64_t *user_map; /* dataset user -> artifact user or -1 */
    int64_t *item_map; /* dataset item -> artifact item or -1 */
    size_t n_items;    /* dataset items */
} artifact_scorer_t;

static void score_artifact(void *data, uint32_t user, float *scores)
{
    artifact_scorer_t *s = data;
    size_t n_art = recd_model_n_items(s->m);
    float *buf = malloc((n_art != 0 ? n_art : 1) * sizeof(float));
    if (buf == NULL) {
        fprintf(stderr, "recd-train: out of memory\n");
        abort();
    }
    int64_t au = s->user_map[user];
    if (au >= 0 && recd_model_kind(s->m) != RECD_MODEL_POPULARITY) {
        recd_model_score(s->m, recd_model_user_vector(s->m, (uint32_t)au), au, buf);
    } else {
        memcpy(buf, recd_model_popularity(s->m), n_art * sizeof(float));
    }
    if (au >= 0) {
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(s->m, (uint32_t)au, &items, &values, &n);
        for (size_t j = 0; j != n; ++j)
            buf[items[j]] = -INFINITY;
    }
    for (size_t i = 0; i != s->n_items; ++i)
        scores[i] = s->item_map[i] >= 0 ? buf[s->item_map[i]] : -INFINITY;
    free(buf);
}

static int evaluate_artifact(const options_t *o, const dataset_t *d, json_t *report)
{
    split_t split = {0};
    artifact_scorer_t s = {0};
    char err[1024] = "";
    int exit_code = 1;
    json_t *ev = json_object();

    if ((s.m = recd_model_open(o->artifact, err, sizeof(err))) == NULL) {
        fprintf(stderr, "recd-train: %s: %s\n", o->artifact, err);
        goto Exit;
    }
    if (make_split(&d->entries, o->protocol, o->test_ratio, o->seed, 0, o->folds, &split) != RECD_OK)
        goto Exit;
    s.n_items = d->entries.n_cols;
    s.user_map = calloc(d->entries.n_rows + 1, sizeof(int64_t));
    s.item_map = calloc(d->entries.n_cols + 1, sizeof(int64_t));
    if (s.user_map == NULL || s.item_map == NULL) {
        fprintf(stderr, "recd-train: out of memory\n");
        goto Exit;
    }
    size_t known_users = 0, known_items = 0, art_train = 0, leaked = 0;
    for (size_t u = 0; u != d->entries.n_rows; ++u) {
        const char *id = recd_idmap_id(d->data.users, (uint32_t)u);
        s.user_map[u] = recd_model_find_user(s.m, id, strlen(id));
        known_users += s.user_map[u] >= 0;
    }
    for (size_t i = 0; i != d->entries.n_cols; ++i) {
        const char *id = recd_idmap_id(d->data.items, (uint32_t)i);
        s.item_map[i] = recd_model_find_item(s.m, id, strlen(id));
        known_items += s.item_map[i] >= 0;
    }
    for (size_t u = 0; u != recd_model_n_users(s.m); ++u) {
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(s.m, (uint32_t)u, &items, &values, &n);
        art_train += n;
    }
    /* a test interaction among the artifact's training rows means it was not trained on this split's train part */
    for (size_t u = 0; u != split.test.n_rows; ++u) {
        if (s.user_map[u] < 0)
            continue;
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(s.m, (uint32_t)s.user_map[u], &items, &values, &n);
        for (uint64_t j = split.test.row_ptr[u]; j != split.test.row_ptr[u + 1]; ++j)
            if (s.item_map[split.test.col[j]] >= 0 && contains_sorted(items, n, (uint32_t)s.item_map[split.test.col[j]]))
                ++leaked;
    }
    fprintf(stderr,
            "artifact: %s kind=%s users=%zu items=%zu training interactions=%zu; dataset users known %zu/%zu, items %zu/%zu\n",
            o->artifact, recd_model_kind_name(recd_model_kind(s.m)), recd_model_n_users(s.m), recd_model_n_items(s.m), art_train,
            known_users, d->entries.n_rows, known_items, d->entries.n_cols);
    if (leaked != 0) {
        fprintf(stderr,
                "recd-train: %s was trained on %zu of the %zu test interactions of this split: its test metrics would be "
                "meaningless. Evaluate it on the split it was trained with (same --protocol, --test-ratio, --seed and input) or "
                "publish a model trained on the train part (recd-train train --holdout-test, recd-train tune)\n",
                o->artifact, leaked, split.test.nnz);
        goto Exit;
    }
    const recd_algorithm_t *a = recd_algorithm_find(recd_model_kind_name(recd_model_kind(s.m)));
    recd_eval_options_t eo = eval_options(o, a, &split.train);
    recd_eval_result_t r;
    int ret = recd_evaluate(&split.train, &split.test, &eo, score_artifact, &s, &r);
    if (ret != RECD_OK) {
        fprintf(stderr, "recd-train: evaluation failed: %s\n", recd_strerror(ret));
        goto Exit;
    }
    json_object_set_new(ev, "evaluated", json_true());
    protocol_json(o, ev, &split);
    merge_metrics(ev, &r);
    json_object_set_new(ev, "scored_as",
                        json_string("recd serves it: recd_model_score on the artifact, the artifact's seen "
                                    "items excluded, popularity for users it does not know"));
    json_object_set_new(report, "evaluation", ev);
    ev = NULL;
    json_object_set_new(report, "artifact",
                        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "path", o->artifact, "kind",
                                  recd_model_kind_name(recd_model_kind(s.m)), "sha256", recd_model_sha256(s.m), "users",
                                  (json_int_t)recd_model_n_users(s.m), "items", (json_int_t)recd_model_n_items(s.m),
                                  "training_interactions", (json_int_t)art_train, "test_interactions_in_training",
                                  (json_int_t)leaked, "dataset_users_known", (json_int_t)known_users, "dataset_items_known",
                                  (json_int_t)known_items));
    {
        size_t mlen;
        const char *meta = recd_model_metadata(s.m, &mlen);
        json_t *mj = json_loadb(meta, mlen, 0, NULL);
        if (mj != NULL) {
            json_t *p = json_object_get(mj, "params");
            if (p != NULL)
                json_object_set(report, "params", p);
            json_t *t = json_object_get(mj, "trained_on");
            if (t != NULL)
                json_object_set(json_object_get(report, "artifact"), "trained_on", t);
            json_decref(mj);
        }
    }
    const char *label = "artifact";
    fprintf(stderr, "evaluation of the artifact (%s split, %zu train / %zu test interactions):\n", recd_protocol_name(o->protocol),
            split.train.nnz, split.test.nnz);
    print_metrics_table(stderr, &label, &r, 1);
    exit_code = 0;
Exit:
    json_decref(ev);
    free(s.user_map);
    free(s.item_map);
    recd_model_release(s.m);
    split_dispose(&split);
    return exit_code;
}

/* Mean and population standard deviation of the folds' metrics. */
static void fold_summary(const recd_eval_result_t *r, size_t n, recd_eval_result_t *mean, recd_eval_result_t *std)
{
    *mean = r[0];
    *std = r[0];
#define AVG(field)                                                                                                                 \
    do {                                                                                                                           \
        double s = 0, ss = 0;                                                                                                      \
        for (size_t i = 0; i != n; ++i)                                                                                            \
            s += r[i].field;                                                                                                       \
        s /= (double)n;                                                                                                            \
        for (size_t i = 0; i != n; ++i)                                                                                            \
            ss += (r[i].field - s) * (r[i].field - s);                                                                             \
        mean->field = s;                                                                                                           \
        std->field = sqrt(ss / (double)n);                                                                                         \
    } while (0)
    AVG(ranking.precision);
    AVG(ranking.recall);
    AVG(ranking.ndcg);
    AVG(ranking.map);
    AVG(ranking.hit_rate);
    AVG(ranking.mrr);
    AVG(ranking.auc);
    AVG(ranking.coverage);
    AVG(sampled.precision);
    AVG(sampled.recall);
    AVG(sampled.ndcg);
    AVG(sampled.map);
    AVG(sampled.hit_rate);
    AVG(sampled.mrr);
    AVG(sampled.auc);
    AVG(rating.rmse);
    AVG(rating.mae);
    AVG(rating.r2);
#undef AVG
    std->ranking.users = mean->ranking.users = 0;
    for (size_t i = 0; i != n; ++i)
        mean->ranking.users += r[i].ranking.users;
    mean->ranking.users /= n;
}

static int cmd_evaluate(const options_t *o, const param_flags_t *pf)
{
    dataset_t d = {0};
    algo_setup_t s;
    recd_eval_result_t *results = NULL;
    recd_curve_t curve = {0};
    json_t *report = json_object(), *folds_json = NULL;
    int exit_code = 1;
    const recd_algorithm_t *a = NULL;

    if (o->artifact == NULL) {
        if ((a = single_algorithm(o)) == NULL) {
            exit_code = EXIT_USAGE;
            goto Exit;
        }
        if ((exit_code = setup_algorithm(o, pf, a, 1, &s)) != 0)
            goto Exit;
        exit_code = 1;
    }
    recd_interactions_init(&d.data);
    if (load_dataset(o, &d) != 0)
        goto Exit;
    json_object_set_new(report, "command", json_string("evaluate"));
    json_object_set_new(report, "data", data_info_json(o, &d));
    if (o->artifact != NULL) {
        exit_code = evaluate_artifact(o, &d, report);
        if (exit_code == 0)
            exit_code = write_report(o, report);
        goto Exit;
    }
    json_object_set_new(report, "algorithm", json_string(a->name));
    json_t *params = recd_params_json(a, s.params);
    json_object_set_new(params, "threads", json_integer(o->threads));
    json_object_set_new(params, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(report, "params", params);

    size_t n_runs = o->protocol == RECD_PROTOCOL_KFOLD ? o->folds : 1;
    results = calloc(n_runs, sizeof(*results));
    folds_json = json_array();
    json_t *ev = json_object();
    json_object_set_new(report, "evaluation", ev);
    json_object_set_new(ev, "evaluated", json_true());
    protocol_json(o, ev, NULL);
    size_t train_total = 0, test_total = 0;
    double fit_total = 0;
    for (size_t run = 0; run != n_runs; ++run) {
        split_t split;
        recd_fitted_t f = {0};
        char prefix[32];
        double wall, cpu;
        if (make_split(&d.entries, o->protocol, o->test_ratio, o->seed, (uint32_t)run, o->folds, &split) != RECD_OK)
            goto Exit;
        recd_eval_options_t eo = eval_options(o, a, &split.train);
        if (n_runs > 1)
            snprintf(prefix, sizeof(prefix), "fold %zu/%zu: ", run + 1, n_runs);
        else
            snprintf(prefix, sizeof(prefix), "split: ");
        if (run == 0) { /* the chart follows the first (or only) split */
            curve = (recd_curve_t){.algorithm = a,
                                   .n_factors = factors_of(&s),
                                   .train = &split.train,
                                   .test = &split.test,
                                   .eval = eo,
                                   .selected = o->metric};
        }
        int ret = fit_model(o, &s, &split.train, prefix, run == 0 ? &curve : NULL, &f, &wall, &cpu);
        if (ret == RECD_OK && (ret = recd_evaluate_fitted(&f, &split.train, &split.test, &eo, &results[run])) != RECD_OK)
            fprintf(stderr, "recd-train: evaluation failed: %s\n", recd_strerror(ret));
        curve.train = curve.test = NULL;
        json_t *fold = recd_eval_result_json(&results[run]);
        json_object_set_new(fold, "train_interactions", json_integer((json_int_t)split.train.nnz));
        json_object_set_new(fold, "test_interactions", json_integer((json_int_t)split.test.nnz));
        json_object_set_new(fold, "fit_seconds", json_real(wall));
        json_object_set_new(fold, "fit_cpu_seconds", json_real(cpu));
        json_array_append_new(folds_json, fold);
        train_total += split.train.nnz;
        test_total += split.test.nnz;
        fit_total += wall;
        recd_fitted_dispose(&f);
        split_dispose(&split);
        if (ret != RECD_OK)
            goto Exit;
    }
    if (n_runs > 1) {
        recd_eval_result_t mean, std;
        fold_summary(results, n_runs, &mean, &std);
        merge_metrics(ev, &mean);
        json_object_set_new(ev, "std", recd_eval_result_json(&std));
        json_object_set_new(ev, "folds_detail", folds_json);
        folds_json = NULL;
        json_object_set_new(ev, "train_interactions", json_integer((json_int_t)(train_total / n_runs)));
        json_object_set_new(ev, "test_interactions", json_integer((json_int_t)(test_total / n_runs)));
        const char *labels[101];
        char names[100][16];
        for (size_t i = 0; i != n_runs; ++i) {
            snprintf(names[i], sizeof(names[i]), "fold %zu", i + 1);
            labels[i] = names[i];
        }
        labels[n_runs] = "mean";
        recd_eval_result_t *all = calloc(n_runs + 1, sizeof(*all));
        memcpy(all, results, n_runs * sizeof(*all));
        all[n_runs] = mean;
        fprintf(stderr, "evaluation (%s, %zu folds):\n", a->name, n_runs);
        print_metrics_table(stderr, labels, all, n_runs + 1);
        free(all);
    } else {
        merge_metrics(ev, &results[0]);
        json_object_set_new(ev, "train_interactions", json_integer((json_int_t)train_total));
        json_object_set_new(ev, "test_interactions", json_integer((json_int_t)test_total));
        const char *label = "test";
        fprintf(stderr, "evaluation (%s, %s split, %zu train / %zu test interactions):\n", a->name, recd_protocol_name(o->protocol),
                train_total, test_total);
        print_metrics_table(stderr, &label, results, 1);
    }
    json_object_set_new(ev, "fit_seconds", json_real(fit_total / (double)n_runs));
    json_object_set_new(ev, "curve", recd_curve_json(&curve));
    char label[64];
    snprintf(label, sizeof(label), "test %s", o->metric.name);
    if (write_chart(o, &curve, a->name, label) != 0)
        goto Exit;
    exit_code = write_report(o, report);
Exit:
    free(results);
    recd_curve_dispose(&curve);
    json_decref(folds_json);
    json_decref(report);
    dataset_dispose(&d);
    return exit_code;
}

/* ---- tune ---------------------------------------------------------------------------------------------------------- */

/* K-fold validation costs K fits per surviving candidate: used up to this many interactions, one split above it. */
#define TUNE_KFOLD_MAX_INTERACTIONS 2000000

typedef struct st_candidate_t {
    algo_setup_t setup;
    recd_eval_result_t validation; /* on the first validation fold */
    double score;                  /* the metric averaged over the folds it was scored on */
    double fit_seconds;            /* on the first fold */
    uint32_t folds_scored;
    int failed, is_default;
} candidate_t;

static int better(const recd_metric_t *m, double a, double b)
{
    if (!isfinite(a))
        return 0;
    if (!isfinite(b))
        return 1;
    return m->lower_is_better ? a < b : a > b;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static candidate_t *push_candidate(candidate_t **c, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        *cap = *cap != 0 ? *cap * 2 : 16;
        *c = realloc(*c, *cap * sizeof(**c));
        if (*c == NULL) {
            fprintf(stderr, "recd-train: out of memory\n");
            abort();
        }
    }
    candidate_t *x = &(*c)[(*n)++];
    memset(x, 0, sizeof(*x));
    return x;
}

/* Appends an algorithm's candidates to *c: its default configuration (the flags applied) always first, then the grid
 * (sampled down so that default + sample fit the budget) or random draws. Returns 0 or EXIT_USAGE. */
static int add_candidates(const options_t *o, const algo_setup_t *base, uint64_t *rng, candidate_t **c, size_t *n, size_t *cap)
{
    const recd_algorithm_t *a = base->a;
    char *list = NULL, err[512];
    size_t count;
    candidate_t *d = push_candidate(c, n, cap);
    d->setup = *base;
    d->is_default = 1;
    if (a->n_params == 0) /* popularity: the default is the only candidate */
        return 0;
    size_t room = o->budget > 1 ? o->budget - 1 : 0;
    if (o->random_search) {
        count = room;
    } else {
        long g = recd_grid_expand(a, base->params, o->grid, base->fixed, &list, err, sizeof(err));
        if (g < 0) {
            fprintf(stderr, "recd-train: %s\n", err);
            return EXIT_USAGE;
        }
        count = (size_t)g;
    }
    /* the grid without the default, which is already in */
    size_t *pick = calloc(count + 1, sizeof(size_t)), n_pick = 0;
    for (size_t i = 0; i != count; ++i)
        if (o->random_search || memcmp(list + i * a->params_size, base->params, a->params_size) != 0)
            pick[n_pick++] = i;
    size_t take = n_pick;
    if (!o->random_search && n_pick > room) { /* a seeded sample of the grid, kept in grid order */
        for (size_t i = 0; i != room; ++i) {
            size_t j = i + (size_t)(recd_splitmix64(rng) % (n_pick - i)), t = pick[i];
            pick[i] = pick[j];
            pick[j] = t;
        }
        take = room;
        qsort(pick, take, sizeof(size_t), cmp_size);
        fprintf(stderr, "tune: %s grid has %zu candidates besides the default; sampling %zu of them (--budget %u)\n", a->name,
                n_pick, take, o->budget);
    }
    for (size_t i = 0; i != take; ++i) {
        candidate_t *x = push_candidate(c, n, cap);
        x->setup = *base;
        if (o->random_search)
            recd_random_params(a, base->params, base->fixed, rng, x->setup.params);
        else
            memcpy(x->setup.params, list + pick[i] * a->params_size, a->params_size);
    }
    free(pick);
    free(list);
    return 0;
}

static json_t *candidate_json(const candidate_t *c, const recd_metric_t *m)
{
    json_t *j =
        json_pack("{s:s, s:o, s:o, s:f, s:b, s:b, s:i}", "algorithm", c->setup.a->name, "params",
                  recd_params_json(c->setup.a, c->setup.params), "validation", recd_eval_result_json(&c->validation), "fit_seconds",
                  c->fit_seconds, "failed", c->failed, "default", c->is_default, "folds_scored", (int)c->folds_scored);
    json_object_set_new(j, m->name, isfinite(c->score) ? json_real(c->score) : json_null());
    return j;
}

/* Fits a candidate on one validation fold and adds its metric to the candidate's mean. */
static void score_candidate(const options_t *o, candidate_t *c, const split_t *fold, int first)
{
    recd_fitted_t f = {0};
    recd_eval_result_t r = {0};
    double wall = 0;
    if (fit_model(o, &c->setup, &fold->train, NULL, NULL, &f, &wall, NULL) != RECD_OK) {
        c->failed = 1;
    } else {
        recd_eval_options_t eo = eval_options(o, c->setup.a, &fold->train);
        eo.sampled_negatives = 0;
        if (recd_evaluate_fitted(&f, &fold->train, &fold->test, &eo, &r) != RECD_OK)
            c->failed = 1;
    }
    recd_fitted_dispose(&f);
    double v = c->failed ? NAN : recd_metric_value(&o->metric, &r);
    if (!isfinite(v))
        c->failed = 1;
    if (first) {
        c->validation = r;
        c->fit_seconds = wall;
    }
    if (!c->failed) {
        c->score = (c->score * c->folds_scored + v) / (c->folds_scored + 1);
        ++c->folds_scored;
    } else {
        c->score = NAN;
    }
}

/* Sorts candidate indices best first by score (failed last). */
static const candidate_t *sort_cands;
static const recd_metric_t *sort_metric;
static int cmp_by_score(const void *pa, const void *pb)
{
    const candidate_t *a = &sort_cands[*(const size_t *)pa], *b = &sort_cands[*(const size_t *)pb];
    if (better(sort_metric, a->score, b->score))
        return -1;
    if (better(sort_metric, b->score, a->score))
        return 1;
    return cmp_size(pa, pb);
}

static int cmd_tune(const options_t *o, const param_flags_t *pf)
{
    dataset_t d = {0};
    algo_setup_t setups[MAX_ALGOS];
    const recd_algorithm_t *algos[MAX_ALGOS];
    size_t n_algos = 0, n_cand = 0, cap = 0, n_folds = 0, *order = NULL;
    candidate_t *cand = NULL;
    split_t outer = {0}, *folds = NULL;
    recd_csr_t all = {0};
    recd_fitted_t test_fit = {0}, published_fit = {0};
    recd_curve_t curve = {0};
    json_t *report = json_object(), *tuning = NULL, *evaluation = NULL, *data_info = NULL, *params = NULL;
    char created[32], artifact[4096], err[512];
    int exit_code = EXIT_USAGE;
    double t_start = recd_monotonic_seconds();

    /* the algorithms: one, a comma list, or all */
    const char *spec = o->algorithm != NULL ? o->algorithm : "als";
    if (strcmp(spec, "all") == 0) {
        for (size_t i = 0; i != recd_n_algorithms && n_algos != MAX_ALGOS; ++i)
            algos[n_algos++] = &recd_algorithms[i];
    } else {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", spec);
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            const recd_algorithm_t *a = recd_algorithm_find(tok);
            if (a == NULL || n_algos == MAX_ALGOS) {
                fprintf(stderr,
                        "recd-train: --algorithm must be all or a comma list of als, bpr, biased_mf, popularity (got "
                        "\"%s\")\n",
                        tok);
                goto Exit;
            }
            algos[n_algos++] = a;
        }
    }
    for (size_t j = 0; j != pf->n; ++j) { /* a parameter flag must belong to some chosen algorithm */
        if (o->param_value[j] == NULL)
            continue;
        size_t i = 0;
        while (i != n_algos && recd_algorithm_param(algos[i], pf->name[j]) == NULL)
            ++i;
        if (i == n_algos) {
            fprintf(stderr, "recd-train: --%s does not apply to the algorithms being tuned (%s)\n", pf->name[j], spec);
            goto Exit;
        }
    }
    for (size_t i = 0; i != n_algos; ++i)
        if (setup_algorithm(o, pf, algos[i], 0, &setups[i]) != 0)
            goto Exit;
    if (o->grid != NULL) {
        if (o->random_search) {
            fprintf(stderr, "recd-train: --grid is for --search grid; random search draws from each parameter's range\n");
            goto Exit;
        }
        if (recd_grid_check(algos, n_algos, o->grid, err, sizeof(err)) != 0) {
            fprintf(stderr, "recd-train: %s\n", err);
            goto Exit;
        }
    }
    uint64_t rng = o->seed ^ 0x74756e65ULL; /* "tune" */
    for (size_t i = 0; i != n_algos; ++i)
        if (add_candidates(o, &setups[i], &rng, &cand, &n_cand, &cap) != 0)
            goto Exit;
    exit_code = 1;
    now_iso(created, sizeof(created));

    recd_interactions_init(&d.data);
    if (load_dataset(o, &d) != 0)
        goto Exit;
    /* the outer split gives the test figures; the published model learns from every row, or with --holdout-test from the
     * train part only. Validation is carved once out of exactly those rows: K folds when the data is small enough and
     * the protocol is the random one, else one split by the protocol. */
    if (make_split(&d.entries, o->protocol, o->test_ratio, o->seed, 0, 0, &outer) != RECD_OK)
        goto Exit;
    const recd_entries_t *learn = o->holdout_test ? &outer.train_e : &d.entries;
    uint64_t validation_seed = o->seed + 1;
    int kfold = o->protocol == RECD_PROTOCOL_STRATIFIED && !o->validation_given && learn->n <= TUNE_KFOLD_MAX_INTERACTIONS;
    n_folds = kfold ? o->folds : 1;
    folds = calloc(n_folds, sizeof(*folds));
    for (size_t i = 0; i != n_folds; ++i)
        if (make_split(learn, kfold ? RECD_PROTOCOL_KFOLD : o->protocol, o->validation_ratio, validation_seed, (uint32_t)i,
                       (uint32_t)n_folds, &folds[i]) != RECD_OK)
            goto Exit;
    /* successive halving: every candidate on the first fold, the best third on the others; the mean over all folds decides */
    size_t n_keep = n_folds > 1 ? (n_cand + 2) / 3 : n_cand;
    if (n_keep < 2 && n_cand >= 2) /* a pair at least, so the folds still compare */
        n_keep = 2;
    fprintf(stderr,
            "tune: %s split: %zu train / %zu test interactions (test figures); validation: %s of the %zu interactions the "
            "published model learns from (%zu train / %zu validation in the first); %zu candidates on the first fold%s, "
            "selecting on validation %s\n",
            recd_protocol_name(o->protocol), outer.train.nnz, outer.test.nnz, kfold ? "K-fold" : recd_protocol_name(o->protocol),
            learn->n, folds[0].train.nnz, folds[0].test.nnz, n_cand, n_folds > 1 ? ", the best third on every fold" : "",
            o->metric.name);

    recd_progress_t progress;
    recd_progress_init(&progress, stderr, n_cand + n_keep * (n_folds - 1));
    size_t best = SIZE_MAX;
    for (size_t i = 0; i != n_cand; ++i) {
        candidate_t *c = &cand[i];
        char desc[256], line[512];
        recd_params_format(c->setup.a, c->setup.params, desc, sizeof(desc));
        score_candidate(o, c, &folds[0], 1);
        if (!c->failed && (best == SIZE_MAX || better(&o->metric, c->score, cand[best].score)))
            best = i;
        snprintf(line, sizeof(line), "candidate %zu/%zu %s %s%s: validation %s=%.4f (%.2fs)%s", i + 1, n_cand, c->setup.a->name,
                 desc, c->is_default ? " (default)" : "", o->metric.name, c->score, c->fit_seconds,
                 best == i ? " best so far" : "");
        recd_progress_step(&progress, line);
    }
    order = calloc(n_cand, sizeof(size_t));
    for (size_t i = 0; i != n_cand; ++i)
        order[i] = i;
    sort_cands = cand;
    sort_metric = &o->metric;
    qsort(order, n_cand, sizeof(size_t), cmp_by_score);
    for (size_t r = 0; r != n_keep && n_folds > 1; ++r) {
        candidate_t *c = &cand[order[r]];
        char desc[256], line[512];
        recd_params_format(c->setup.a, c->setup.params, desc, sizeof(desc));
        for (size_t k = 1; k != n_folds && !c->failed; ++k) {
            score_candidate(o, c, &folds[k], 0);
            snprintf(line, sizeof(line), "fold %zu/%zu %s %s: mean validation %s=%.4f", k + 1, n_folds, c->setup.a->name, desc,
                     o->metric.name, c->score);
            recd_progress_step(&progress, line);
        }
    }
    recd_progress_finish(&progress);
    best = SIZE_MAX; /* among the candidates scored on every fold */
    for (size_t i = 0; i != n_cand; ++i)
        if (!cand[i].failed && cand[i].folds_scored == n_folds &&
            (best == SIZE_MAX || better(&o->metric, cand[i].score, cand[best].score)))
            best = i;
    if (best == SIZE_MAX || !isfinite(cand[best].score)) {
        fprintf(stderr, "recd-train: no candidate produced a finite validation %s\n", o->metric.name);
        goto Exit;
    }

    /* the candidates table, the params column as wide as its widest entry */
    int width = 6;
    for (size_t i = 0; i != n_cand; ++i) {
        char desc[256];
        recd_params_format(cand[i].setup.a, cand[i].setup.params, desc, sizeof(desc));
        width = (int)strlen(desc) > width ? (int)strlen(desc) : width;
    }
    fprintf(stderr, "\n%-3s %-10s %-*s %12s %6s %8s\n", "#", "algorithm", width, "params", o->metric.name, "folds", "fit s");
    json_t *cands = json_array();
    for (size_t i = 0; i != n_cand; ++i) {
        char desc[256];
        recd_params_format(cand[i].setup.a, cand[i].setup.params, desc, sizeof(desc));
        fprintf(stderr, "%-3zu %-10s %-*s %12.4f %6u %8.2f%s%s\n", i + 1, cand[i].setup.a->name, width, desc, cand[i].score,
                cand[i].folds_scored, cand[i].fit_seconds, cand[i].is_default ? "  (default)" : "", i == best ? "  <- best" : "");
        json_array_append_new(cands, candidate_json(&cand[i], &o->metric));
    }
    const candidate_t *w = &cand[best];
    recd_fold_in_choice_t fold_in = {0};
    int fold_in_chosen = 0;
    if (has_fold_in_choice(w->setup.a)) {
        if (choose_fold_in(o, &w->setup, &folds[0], &fold_in) != RECD_OK) {
            json_decref(cands);
            goto Exit;
        }
        fold_in_chosen = 1;
    }

    /* the test figures: the winner refitted on the outer train part, scored once on the outer test part */
    recd_eval_options_t eo = eval_options(o, w->setup.a, &outer.train);
    curve = (recd_curve_t){.algorithm = w->setup.a,
                           .n_factors = factors_of(&w->setup),
                           .train = &outer.train,
                           .test = &outer.test,
                           .eval = eo,
                           .selected = o->metric};
    double wall, cpu;
    fprintf(stderr, "tune: refitting %s on the outer train part (%zu interactions) for the test figures\n", w->setup.a->name,
            outer.train.nnz);
    if (fit_model(o, &w->setup, &outer.train, "refit: ", &curve, &test_fit, &wall, &cpu) != RECD_OK) {
        json_decref(cands);
        goto Exit;
    }
    recd_eval_result_t test;
    int ret = recd_evaluate_fitted(&test_fit, &outer.train, &outer.test, &eo, &test);
    if (ret != RECD_OK) {
        fprintf(stderr, "recd-train: evaluation failed: %s\n", recd_strerror(ret));
        json_decref(cands);
        goto Exit;
    }
    const char *labels[2] = {"validation", "test"};
    recd_eval_result_t both[2] = {w->validation, test};
    both[0].has_sampled = 0;
    if (test.has_sampled) { /* candidates are scored without the sampled protocol; print only what both columns have */
        both[1].has_sampled = 0;
    }
    fprintf(stderr, "\nbest: %s (validation: first fold; test: refit on the outer train part, scored on the outer test part)\n",
            w->setup.a->name);
    print_metrics_table(stderr, labels, both, 2);

    tuning = json_pack("{s:s, s:s, s:i, s:o, s:i, s:s, s:f, s:I, s:I, s:I}", "metric", o->metric.name, "search",
                       o->random_search ? "random" : "grid", "budget_per_algorithm", (int)o->budget, "candidates", cands, "best",
                       (int)best, "best_algorithm", w->setup.a->name, "best_validation_score", w->score, "validation_seed",
                       (json_int_t)validation_seed, "inner_train_interactions", (json_int_t)folds[0].train.nnz,
                       "validation_interactions", (json_int_t)folds[0].test.nnz);
    json_object_set_new(tuning, "validation_scheme",
                        json_pack("{s:s, s:i, s:I, s:s, s:s}", "kind", kfold ? "kfold" : recd_protocol_name(o->protocol), "folds",
                                  (int)n_folds, "carved_from_interactions", (json_int_t)learn->n, "carved_from",
                                  o->holdout_test ? "the outer train part (what the published model learns from)"
                                                  : "every interaction (what the published model learns from)",
                                  "budget",
                                  n_folds > 1 ? "every candidate on fold 1; the best third on every fold; the best mean wins"
                                              : "every candidate on the one validation split"));
    if (!kfold)
        json_object_set_new(tuning, "validation_ratio", json_real(o->validation_ratio));
    if (o->grid != NULL)
        json_object_set_new(tuning, "grid", json_string(o->grid));
    json_object_set_new(tuning, "best_validation", recd_eval_result_json(&w->validation));
    json_object_set_new(tuning, "best_is_default", json_boolean(w->is_default));
    if (fold_in_chosen)
        json_object_set_new(tuning, "fold_in", recd_fold_in_choice_json(&fold_in));

    evaluation = json_object();
    json_object_set_new(evaluation, "evaluated", json_true());
    protocol_json(o, evaluation, &outer);
    merge_metrics(evaluation, &test);
    json_object_set_new(evaluation, "fit_seconds", json_real(wall));
    json_object_set_new(evaluation, "fit_cpu_seconds", json_real(cpu));
    json_object_set_new(evaluation, "model_trained_on",
                        json_string("test figures: the chosen parameters refitted on the train part of the split, scored once "
                                    "on its test part"));
    json_object_set_new(evaluation, "validation",
                        json_pack("{s:s, s:f, s:i, s:s}", "metric", o->metric.name, "value", w->score, "folds", (int)n_folds,
                                  "figures", "candidates trained on the validation folds' train parts, mean over the folds"));
    json_object_set_new(evaluation, "curve", recd_curve_json(&curve));
    char chart_label[64];
    snprintf(chart_label, sizeof(chart_label), "test %s", o->metric.name);
    if (write_chart(o, &curve, w->setup.a->name, chart_label) != 0)
        goto Exit;

    const recd_csr_t *published_rows = &outer.train;
    const char *trained_on = "the train part of the split only (test part held out; validation rows included)";
    if (o->holdout_test) {
        json_object_set_new(evaluation, "published_model",
                            json_string("this model: trained on the train part, the test figures are its own"));
        json_object_set_new(evaluation, "published_model_held_out", json_true());
        published_fit = test_fit;
        memset(&test_fit, 0, sizeof(test_fit));
    } else {
        if (recd_entries_csr(&d.entries, &all) != RECD_OK)
            goto Exit;
        fprintf(stderr, "tune: fitting %s on all %zu interactions (the published model)\n", w->setup.a->name, all.nnz);
        if (fit_model(o, &w->setup, &all, "", NULL, &published_fit, NULL, NULL) != RECD_OK)
            goto Exit;
        published_rows = &all;
        trained_on = "all interactions";
        json_object_set_new(evaluation, "published_model",
                            json_string("trained on every interaction with the chosen parameters: it has no held-out figure of "
                                        "its own. The test figures are of the same parameters refitted on the train part; the "
                                        "validation folds covered every interaction, these test rows included"));
        json_object_set_new(evaluation, "published_model_held_out", json_false());
    }
    if (fold_in_chosen) {
        published_fit.alpha = fold_in.alpha;
        published_fit.reg = fold_in.reg;
    }

    params = recd_params_json(w->setup.a, w->setup.params);
    json_object_set_new(params, "threads", json_integer(o->threads));
    json_object_set_new(params, "seed", json_integer((json_int_t)o->seed));
    data_info = data_info_json(o, &d);
    publication_t pub = {w->setup.a->name, params, data_info, evaluation, tuning, trained_on, created, !o->holdout_test};
    uint64_t version;
    if (publish(o, &d, &published_fit, published_rows, &pub, &version, artifact, sizeof(artifact)) != 0)
        goto Exit;
    json_object_set_new(report, "command", json_string("tune"));
    json_object_set_new(report, "model", json_string(o->model));
    json_object_set_new(report, "version", json_integer((json_int_t)version));
    json_object_set_new(report, "artifact", json_string(artifact));
    json_object_set_new(report, "algorithm", json_string(w->setup.a->name));
    json_object_set(report, "params", params);
    json_object_set(report, "tuning", tuning);
    json_object_set(report, "evaluation", evaluation);
    json_object_set(report, "data", data_info);
    json_object_set_new(report, "trained_on", json_string(trained_on));
    json_object_set_new(report, "trained_on_interactions", json_integer((json_int_t)published_rows->nnz));
    json_object_set_new(report, "seconds", json_real(recd_monotonic_seconds() - t_start));
    exit_code = write_report(o, report);
Exit:
    free(cand);
    free(order);
    recd_curve_dispose(&curve);
    recd_fitted_dispose(&test_fit);
    recd_fitted_dispose(&published_fit);
    split_dispose(&outer);
    for (size_t i = 0; folds != NULL && i != n_folds; ++i)
        split_dispose(&folds[i]);
    free(folds);
    recd_csr_dispose(&all);
    json_decref(report);
    json_decref(tuning);
    json_decref(evaluation);
    json_decref(data_info);
    json_decref(params);
    dataset_dispose(&d);
    return exit_code;
}

int main(int argc, char **argv)
{
    options_t o = {.test_ratio = 0.25, .k = 10, .folds = 5, .seed = 42};
    param_flags_t pf;
    int ret;

    /* the subcommand, when given, comes first; without one recd-train trains */
    if (argc > 1 && argv[1][0] != '-') {
        size_t i = 0;
        while (i != sizeof(command_names) / sizeof(command_names[0]) && strcmp(argv[1], command_names[i]) != 0)
            ++i;
        if (i == sizeof(command_names) / sizeof(command_names[0])) {
            if (strcmp(argv[1], "help") == 0) {
                usage(stdout, argv[0]);
                return 0;
            }
            fprintf(stderr, "recd-train: unknown command \"%s\": train, evaluate or tune (see --help)\n", argv[1]);
            return EXIT_USAGE;
        }
        o.cmd = (command_t)i;
        argv[1] = argv[0];
        ++argv;
        --argc;
    }
    recd_ingest_options_init(&o.ingest);
    recd_metric_parse("ndcg@10", &o.metric);
    collect_param_flags(&pf);
    if ((ret = parse_args(&o, &pf, argc, argv)) != 0)
        return ret < 0 ? 0 : EXIT_USAGE;
    if (o.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = n > 0 ? (uint32_t)n : 1;
    }
    switch (o.cmd) {
    case CMD_EVALUATE:
        return cmd_evaluate(&o, &pf);
    case CMD_TUNE:
        return cmd_tune(&o, &pf);
    default:
        return cmd_train(&o, &pf);
    }
}
