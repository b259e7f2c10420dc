/* cli_internal.h: what the files of recd-train's command line share — the parsed options, the dataset, splits, fitting
 * with progress lines, reports and publishing. */
#ifndef RECD_TRAIN_CLI_INTERNAL_H
#define RECD_TRAIN_CLI_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "models/model.h"
#include "models/ann.h"
#include "train/ingest.h"
#include "train/trainer.h"

#define RECD_CLI_EXIT_USAGE 2
#define RECD_CLI_MAX_PARAM_FLAGS 32
/* K-fold validation costs K fits per surviving candidate: used up to this many interactions, one split above it. */
#define RECD_CLI_TUNE_KFOLD_MAX_INTERACTIONS 2000000

typedef enum en_recd_cli_command_t { RECD_CLI_TRAIN = 0, RECD_CLI_EVALUATE, RECD_CLI_TUNE } recd_cli_command_t;

/** Everything the command line says, once parsed and checked. */
typedef struct st_recd_cli_options_t {
    recd_cli_command_t cmd;
    FILE *out, *err; /* the JSON report (unless --report), and progress, tables and messages */
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
    recd_eval_metric_t metric;
    uint32_t factor_type; /* recd_factor_type_t of the published artifact's scan (--factor-type) */
    int factor_type_given;
    /* --ann: the approximate index built into the published artifact (kind RECD_ANN_NONE = none); n_probe 0 = tuned */
    uint32_t ann_kind;
    recd_ann_params_t ann;
    double ann_recall; /* the recall@10 the tuned n_probe must reach on a sample of the users */
    int ann_given;
    /* model parameter flags as given, applied to the chosen algorithm(s) once all flags are read */
    const char *param_value[RECD_CLI_MAX_PARAM_FLAGS];
} recd_cli_options_t;

/** The distinct parameter names of the algorithm table, in table order: each is a --flag. */
typedef struct st_recd_cli_param_flags_t {
    const char *name[RECD_CLI_MAX_PARAM_FLAGS];
    const char *help[RECD_CLI_MAX_PARAM_FLAGS];
    size_t n;
} recd_cli_param_flags_t;

/** An algorithm with its parameters: the defaults overridden by the flags given (those are "fixed" for tuning). */
typedef struct st_recd_cli_setup_t {
    const recd_algorithm_t *a;
    _Alignas(16) char params[RECD_PARAMS_MAX_SIZE];
    uint8_t fixed[RECD_CLI_MAX_PARAM_FLAGS];
} recd_cli_setup_t;

/** The log as read and cleansed, merged into unique entries, and what is known about it. */
typedef struct st_recd_cli_dataset_t {
    recd_interactions_t data;
    recd_ingest_report_t report;
    recd_entries_t entries;
    char fingerprint[65];
    int from_stdin;
    uint64_t kcore_removed;
    double seconds;
} recd_cli_dataset_t;

/** A split as matrices. */
typedef struct st_recd_cli_split_t {
    recd_entries_t train_e, test_e;
    recd_csr_t train, test;
} recd_cli_split_t;

/** What a publication records besides the model itself. */
typedef struct st_recd_cli_publication_t {
    const char *algorithm;
    json_t *params, *data_info, *evaluation, *tuning; /* borrowed; tuning may be NULL */
    const char *trained_on;                           /* which rows the published model saw */
    const char *created;
    int all_rows; /* the model claims every accepted row: publishing fails if any is missing from its matrix */
} recd_cli_publication_t;

/* ---- the subcommands (cmd_train.c, cmd_evaluate.c, cmd_tune.c): each returns the exit status ---------------------- */

/** recd-train train: fit on every row (or the train part), optionally evaluate, publish. */
int recd_cli_train(const recd_cli_options_t *o, const recd_cli_param_flags_t *pf);
/** recd-train evaluate: fit on the train part and score the test part; with --artifact, score the artifact as recd serves it. */
int recd_cli_evaluate(const recd_cli_options_t *o, const recd_cli_param_flags_t *pf);
/** recd-train tune: search parameters on validation folds, refit the winner for test figures, publish it. */
int recd_cli_tune(const recd_cli_options_t *o, const recd_cli_param_flags_t *pf);

/* ---- shared steps (cli.c, cli_common.c, publish.c) ------------------------------------------------------------------ */

/** Applies the parameter flags to one algorithm. strict: a flag the algorithm lacks is a usage error (train, evaluate).
 * Returns 0 or RECD_CLI_EXIT_USAGE (message printed). */
int recd_cli_setup_algorithm(const recd_cli_options_t *o, const recd_cli_param_flags_t *pf, const recd_algorithm_t *a, int strict,
                             recd_cli_setup_t *s);
/** The --algorithm of train and evaluate (default als), or NULL after printing what is wrong. */
const recd_algorithm_t *recd_cli_single_algorithm(const recd_cli_options_t *o);
/** The factors parameter of s, or 0 when its algorithm has none. */
uint32_t recd_cli_factors_of(const recd_cli_setup_t *s);

/** Reads, validates, cleanses and merges the input; prints what it did on o->err. Returns 0 or 1 (message printed). */
int recd_cli_load_dataset(const recd_cli_options_t *o, recd_cli_dataset_t *d);
/** Frees a dataset; accepts a zeroed one. */
void recd_cli_dataset_dispose(recd_cli_dataset_t *d);
/** The "data" object of reports and manifests; new reference. */
json_t *recd_cli_data_info_json(const recd_cli_options_t *o, const recd_cli_dataset_t *d);

/** Splits e by protocol p into s (fold/folds for kfold). Prints a message and returns RECD_E* on failure or an empty test. */
int recd_cli_split(const recd_cli_options_t *o, const recd_entries_t *e, recd_protocol_t p, double ratio, uint64_t seed,
                   uint32_t fold, uint32_t folds, recd_cli_split_t *s);
/** Frees a split; accepts a zeroed one. */
void recd_cli_split_dispose(recd_cli_split_t *s);
/** Adds the protocol part of an evaluation object to ev (train/test counts when s is not NULL). */
void recd_cli_protocol_json(const recd_cli_options_t *o, json_t *ev, const recd_cli_split_t *s);

/** CPU seconds used by every thread of the process so far (user + system). */
double recd_cli_cpu_seconds(void);
/**
 * Trains s on m. prefix != NULL prints a line per iteration; curve != NULL records loss (and snapshots when its test is
 * set). wall and cpu (may be NULL) receive the fit's seconds. Returns RECD_OK or the trainer's code (message printed).
 */
int recd_cli_fit(const recd_cli_options_t *o, const recd_cli_setup_t *s, const recd_csr_t *m, const char *prefix,
                 recd_curve_t *curve, recd_fitted_t *out, double *wall, double *cpu);
/** The evaluation options of the command line for a model of a trained on train (rating metrics for explicit models). */
recd_eval_options_t recd_cli_eval_options(const recd_cli_options_t *o, const recd_algorithm_t *a, const recd_csr_t *train);
/** BPR and biased MF: recd's fold-in pair, chosen on a validation fold with s's parameters. Returns RECD_OK or RECD_E*. */
int recd_cli_choose_fold_in(const recd_cli_options_t *o, const recd_cli_setup_t *s, const recd_cli_split_t *fold,
                            recd_fold_in_choice_t *choice);
/** Whether a's fold-in pair is chosen on validation (BPR and biased MF; ALS records its own alpha and reg). */
int recd_cli_has_fold_in_choice(const recd_algorithm_t *a);

/** Prints the metrics of n results side by side (columns labelled), every row aligned. */
void recd_cli_print_metrics(FILE *out, const char *const *labels, const recd_eval_result_t *r, size_t n);
/** Adds the metrics of r to ev at the top level (precision, ..., sampled, rating). */
void recd_cli_merge_metrics(json_t *ev, const recd_eval_result_t *r);
/** Writes the report to --report FILE or o->out. Returns 0 or 1 (message printed). */
int recd_cli_write_report(const recd_cli_options_t *o, json_t *report);
/** Writes the --chart SVG when asked for. Returns 0 or 1 (message printed). */
int recd_cli_write_chart(const recd_cli_options_t *o, const recd_curve_t *curve, const char *title, const char *metric_label);
/** The current UTC time as ISO 8601 ("2026-01-02T03:04:05Z"). */
void recd_cli_now_iso(char *buf, size_t len);
/** Whether the sorted array a of n values holds v. */
int recd_cli_contains_sorted(const uint32_t *a, size_t n, uint32_t v);

/**
 * Writes the artifact, manifest.json and evaluation.json to a staging directory and publishes it as the next version of
 * --model in --registry. On success *version and artifact receive the version and its artifact path. Returns 0 or 1
 * (message printed); a failed run leaves no half-written version behind.
 */
int recd_cli_publish(const recd_cli_options_t *o, const recd_cli_dataset_t *d, const recd_fitted_t *f, const recd_csr_t *user_items,
                     const recd_cli_publication_t *pub, uint64_t *version, char *artifact, size_t artifact_len);

#endif
