/* cli.c: recd-train's command line — the usage text, flag parsing and checks, and the dispatch to a subcommand. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "base/alloc.h"
#include "models/scan.h"
#include "train/cli.h"
#include "registry/registry.h"
#include "train/cli_internal.h"

static const char *const command_names[] = {"train", "evaluate", "tune"};
static void collect_param_flags(recd_cli_param_flags_t *f)
{
    f->n = 0;
    for (size_t a = 0; a != recd_n_algorithms; ++a)
        for (size_t i = 0; i != recd_algorithms[a].n_params; ++i) {
            const recd_param_def_t *d = &recd_algorithms[a].params[i];
            size_t j = 0;
            while (j != f->n && strcmp(f->name[j], d->name) != 0)
                ++j;
            if (j == f->n && f->n != RECD_CLI_MAX_PARAM_FLAGS) {
                f->name[f->n] = d->name;
                f->help[f->n] = d->help;
                ++f->n;
            }
        }
}
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
            "  --factor-type T         train, tune: f32|bf16|fp16|int8, the item factors recd scans (default f32); a compact\n"
            "                          type is stored beside the f32 factors, which re-rank its candidates exactly, and its\n"
            "                          recall@10 against f32 is printed and stored in the metadata\n"
            "  --ann I                 train, tune: none|ivf, an approximate index stored in the artifact (default none):\n"
            "                          ivf = k-means cells of the item vectors searched by inner product (docs/ANN.md);\n"
            "                          its build time and recall@10 against the exact scan are printed and stored in the\n"
            "                          metadata (\"ann\")\n"
            "  --ann-lists N           ivf cells (default 0: about 4 * sqrt(items))\n"
            "  --ann-probe N           cells searched per query (default 0: the fewest of 1, 2, 4, ... reaching\n"
            "                          --ann-recall on a sample of the users)\n"
            "  --ann-recall R          the recall@10 the probe count is tuned for (0..1, default 0.95)\n"
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
    O_FACTOR_TYPE,
    O_ANN,
    O_ANN_LISTS,
    O_ANN_PROBE,
    O_ANN_RECALL,
    O_PARAM /* O_PARAM + index into recd_cli_param_flags_t */
};

int recd_cli_setup_algorithm(const recd_cli_options_t *o, const recd_cli_param_flags_t *pf, const recd_algorithm_t *a, int strict,
                             recd_cli_setup_t *s)
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
            fprintf(o->err, "recd-train: --%s does not apply to %s (its parameters:", pf->name[j], a->name);
            for (size_t i = 0; i != a->n_params; ++i)
                fprintf(o->err, " --%s", a->params[i].name);
            fprintf(o->err, "%s)\n", a->n_params == 0 ? " none" : "");
            return RECD_CLI_EXIT_USAGE;
        }
        double v;
        if (recd_param_parse(d, o->param_value[j], &v) != 0) {
            if (d->choices != NULL)
                fprintf(o->err, "recd-train: --%s must be one of %s (got \"%s\")\n", pf->name[j], d->choices, o->param_value[j]);
            else
                fprintf(o->err, "recd-train: --%s must be %s in %g..%g (got \"%s\")\n", pf->name[j],
                        d->type == RECD_PARAM_U32 ? "an integer" : "a number", d->min, d->max, o->param_value[j]);
            return RECD_CLI_EXIT_USAGE;
        }
        recd_param_set(d, s->params, v);
        s->fixed[d - a->params] = 1;
    }
    return 0;
}

/* Returns 0, or RECD_CLI_EXIT_USAGE after printing what is wrong; -1 for --help. */
static int parse_args(recd_cli_options_t *o, const recd_cli_param_flags_t *pf, int argc, char **argv)
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
                                               {"factor-type", required_argument, NULL, O_FACTOR_TYPE},
                                               {"ann", required_argument, NULL, O_ANN},
                                               {"ann-lists", required_argument, NULL, O_ANN_LISTS},
                                               {"ann-probe", required_argument, NULL, O_ANN_PROBE},
                                               {"ann-recall", required_argument, NULL, O_ANN_RECALL},
                                               {"help", no_argument, NULL, 'h'}};
    enum { N_FIXED = sizeof(fixed_opts) / sizeof(fixed_opts[0]) };
    struct option longopts[N_FIXED + RECD_CLI_MAX_PARAM_FLAGS + 1];
    char flag_names[RECD_CLI_MAX_PARAM_FLAGS][48];
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
    optind = 0; /* 0, not 1: glibc then also forgets the state of an earlier in-process run */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case 'h':
            usage(o->out, argv0);
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
            if (recd_eval_metric_parse(optarg, &o->metric) != 0)
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
        case O_FACTOR_TYPE: {
            int t = recd_factor_type_parse(optarg);
            if (t < 0)
                bad = "--factor-type must be f32, bf16, fp16 or int8";
            else
                o->factor_type = (uint32_t)t;
            o->factor_type_given = 1;
        } break;
        case O_ANN: {
            recd_ann_kind_t kind;
            if (recd_ann_kind_parse(optarg, &kind) != 0)
                bad = strcmp(optarg, "hnsw") == 0 ? "--ann hnsw is not built in: none or ivf (docs/ANN.md says why)"
                                                  : "--ann must be none or ivf";
            else
                o->ann_kind = kind;
            o->ann_given = 1;
        } break;
        case O_ANN_LISTS:
            if (parse_u32(optarg, 0, 1u << 24, &o->ann.n_lists) != 0)
                bad = "--ann-lists must be an integer in 0..16777216";
            o->ann_given = 1;
            break;
        case O_ANN_PROBE:
            if (parse_u32(optarg, 0, 1u << 24, &o->ann.n_probe) != 0)
                bad = "--ann-probe must be an integer in 0..16777216";
            o->ann_given = 1;
            break;
        case O_ANN_RECALL:
            if (parse_double(optarg, 0.0, 1.0, &o->ann_recall) != 0)
                bad = "--ann-recall must be a number in 0..1";
            o->ann_given = 1;
            break;
        case O_GRID:
            o->grid = optarg;
            break;
        case ':':
            fprintf(o->err, "recd-train: %s needs a value (see --help)\n", argv[optind - 1]);
            return RECD_CLI_EXIT_USAGE;
        default:
            if (c >= O_PARAM && c < O_PARAM + (int)pf->n) {
                o->param_value[c - O_PARAM] = optarg;
                break;
            }
            fprintf(o->err, "recd-train: unknown option %s (see --help)\n", argv[optind - 1]);
            return RECD_CLI_EXIT_USAGE;
        }
        if (bad != NULL) {
            fprintf(o->err, "recd-train: %s (got \"%s\")\n", bad, optarg);
            return RECD_CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(o->err, "recd-train: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return RECD_CLI_EXIT_USAGE;
    }
    if (o->input == NULL) {
        fprintf(o->err, "recd-train: --input is required (see --help)\n");
        return RECD_CLI_EXIT_USAGE;
    }
    if (o->cmd != RECD_CLI_EVALUATE && (o->registry == NULL || o->model == NULL)) {
        fprintf(o->err, "recd-train: --input, --registry and --model are required (see --help)\n");
        return RECD_CLI_EXIT_USAGE;
    }
    if (o->model != NULL && !recd_registry_valid_name(o->model)) {
        fprintf(o->err, "recd-train: invalid model name \"%s\": use 1..64 of [A-Za-z0-9_.-], not starting with '.'\n", o->model);
        return RECD_CLI_EXIT_USAGE;
    }
    if (o->metric_name != NULL) {
        if (o->k_given && o->metric.k != o->k && strchr(o->metric_name, '@') != NULL) {
            fprintf(o->err, "recd-train: --metric %s and --k %u disagree on the cut-off\n", o->metric_name, o->k);
            return RECD_CLI_EXIT_USAGE;
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
    if ((o->cmd != RECD_CLI_TRAIN && o->evaluate) || (o->cmd == RECD_CLI_EVALUATE && o->holdout_test))
        misplaced = o->evaluate ? "--evaluate" : "--holdout-test";
    else if (o->cmd != RECD_CLI_EVALUATE && o->artifact != NULL)
        misplaced = "--artifact";
    else if (o->cmd != RECD_CLI_TUNE && (o->grid != NULL || o->budget != 0 || o->random_search || o->validation_ratio != 0))
        misplaced = o->grid != NULL ? "--grid" : o->budget != 0 ? "--budget" : o->random_search ? "--search" : "--validation-ratio";
    else if (o->cmd == RECD_CLI_EVALUATE && (o->registry != NULL || o->model != NULL || o->factor_type_given || o->ann_given))
        misplaced = o->registry != NULL    ? "--registry"
                    : o->model != NULL     ? "--model"
                    : o->factor_type_given ? "--factor-type"
                                           : "--ann";
    if (misplaced != NULL) {
        fprintf(o->err, "recd-train: %s does not apply to %s (see --help)\n", misplaced, command_names[o->cmd]);
        return RECD_CLI_EXIT_USAGE;
    }
    if (o->cmd == RECD_CLI_TRAIN && o->evaluate && o->holdout_test) {
        fprintf(o->err, "recd-train: --evaluate and --holdout-test exclude each other (--holdout-test already evaluates)\n");
        return RECD_CLI_EXIT_USAGE;
    }
    if ((o->cmd == RECD_CLI_TUNE || (o->cmd == RECD_CLI_TRAIN && o->holdout_test) ||
         (o->cmd == RECD_CLI_EVALUATE && o->artifact != NULL)) &&
        o->protocol == RECD_PROTOCOL_KFOLD) {
        fprintf(o->err,
                "recd-train: --protocol kfold has no single test split; %s needs stratified, temporal or "
                "leave-last-out\n",
                o->cmd == RECD_CLI_TUNE    ? "tune"
                : o->cmd == RECD_CLI_TRAIN ? "--holdout-test"
                                           : "--artifact");
        return RECD_CLI_EXIT_USAGE;
    }
    if (o->cmd == RECD_CLI_EVALUATE && o->artifact != NULL && o->algorithm != NULL) {
        fprintf(o->err, "recd-train: evaluate takes --algorithm or --artifact, not both (the artifact knows its kind)\n");
        return RECD_CLI_EXIT_USAGE;
    }
    if (o->validation_ratio == 0)
        o->validation_ratio = o->test_ratio;
    if (o->budget == 0)
        o->budget = 12;
    return 0;
}

int recd_train_cli(int argc, char **argv, FILE *out, FILE *err)
{
    recd_cli_options_t o = {.out = out, .err = err, .test_ratio = 0.25, .k = 10, .folds = 5, .seed = 42, .ann_recall = 0.95};
    recd_cli_param_flags_t pf;
    int ret;
    recd_ann_params_init(&o.ann);
    /* getopt_long permutes its argument vector: work on a copy, so the caller's argv stays as it was */
    char **args = recd_xcalloc((size_t)argc + 1, sizeof(*args));
    memcpy(args, argv, (size_t)argc * sizeof(*args));
    char **av = args;

    /* the subcommand, when given, comes first; without one recd-train trains */
    if (argc > 1 && av[1][0] != '-') {
        size_t i = 0;
        while (i != sizeof(command_names) / sizeof(command_names[0]) && strcmp(av[1], command_names[i]) != 0)
            ++i;
        if (i == sizeof(command_names) / sizeof(command_names[0])) {
            if (strcmp(av[1], "help") == 0) {
                usage(out, av[0]);
                ret = 0;
            } else {
                fprintf(err, "recd-train: unknown command \"%s\": train, evaluate or tune (see --help)\n", av[1]);
                ret = RECD_CLI_EXIT_USAGE;
            }
            goto Exit;
        }
        o.cmd = (recd_cli_command_t)i;
        av[1] = av[0];
        ++av;
        --argc;
    }
    recd_ingest_options_init(&o.ingest);
    recd_eval_metric_parse("ndcg@10", &o.metric);
    collect_param_flags(&pf);
    if ((ret = parse_args(&o, &pf, argc, av)) != 0) {
        ret = ret < 0 ? 0 : RECD_CLI_EXIT_USAGE;
        goto Exit;
    }
    if (o.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = n > 0 ? (uint32_t)n : 1;
    }
    switch (o.cmd) {
    case RECD_CLI_EVALUATE:
        ret = recd_cli_evaluate(&o, &pf);
        break;
    case RECD_CLI_TUNE:
        ret = recd_cli_tune(&o, &pf);
        break;
    default:
        ret = recd_cli_train(&o, &pf);
        break;
    }
Exit:
    free(args);
    return ret;
}
