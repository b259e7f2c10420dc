/* trainer.h: recd-train's algorithm table, fitted models, split protocols, evaluation, search spaces, charts and the progress
 * line — the parts of the trainer that the subcommands (train/cmd_*.c) and the tests share. */
#ifndef RECD_TRAIN_TRAINER_H
#define RECD_TRAIN_TRAINER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "models/model.h"

#include "train/ingest.h"

/* ---- the algorithm table --------------------------------------------------------------------------------------------- */

typedef enum en_recd_param_type_t { RECD_PARAM_U32 = 0, RECD_PARAM_FLOAT } recd_param_type_t;

/** One tunable parameter of an algorithm: its flag (--name with '_' written '-'), range and search space. */
typedef struct st_recd_param_def_t {
    const char *name;       /* JSON key and, with dashes, the flag */
    recd_param_type_t type; /* the field's C type: uint32_t or float */
    size_t offset;          /* of the field in the algorithm's params struct */
    double min, max;        /* accepted values (inclusive) */
    double lo, hi;          /* random-search range */
    int log_scale;          /* random search draws log-uniformly (learning rates, regularisation); lo == hi: not drawn */
    const char *grid;       /* default grid: comma-separated values; NULL = searched only when --grid names it */
    const char *help;
    const char *choices; /* NULL, or the names of the values 0, 1, ... of an enum parameter, comma-separated */
} recd_param_def_t;

/** What a trained model is, in the arrays an artifact needs; every array is owned (recd_fitted_dispose frees them). */
typedef struct st_recd_fitted_t {
    uint32_t kind, n_factors;
    size_t n_users, n_items;
    float *user_factors, *item_factors; /* NULL for popularity */
    float *user_bias, *item_bias;       /* NULL unless the kind has them */
    float *popularity;                  /* n_items, always */
    float global_bias;
    float alpha, reg; /* fold-in parameters recorded in the artifact */
} recd_fitted_t;

/** Upper bound of any algorithm's params struct, so callers can keep one on the stack. */
#define RECD_PARAMS_MAX_SIZE 256

/** One entry of the table: how to set up, describe and train an algorithm. */
typedef struct st_recd_algorithm_t {
    const char *name;
    recd_model_kind_t kind;
    int explicit_ratings;       /* rating metrics (RMSE, MAE, R^2) are reported too */
    const char *iteration_name; /* "iteration" or "epoch" */
    size_t params_size;
    void (*params_init)(void *params);
    const recd_param_def_t *params;
    size_t n_params;
    /* trains on m (values are interaction strengths or ratings); fills out, which the caller disposes */
    int (*fit)(const recd_csr_t *m, const void *params, const recd_fit_hooks_t *hooks, recd_fitted_t *out);
} recd_algorithm_t;

/** The table (als, bpr, biased_mf, popularity) and its size. */
extern const recd_algorithm_t recd_algorithms[];
extern const size_t recd_n_algorithms;

/** The algorithm called name, or NULL. */
const recd_algorithm_t *recd_algorithm_find(const char *name);
/** The parameter called name (underscores or dashes), or NULL when the algorithm has none such. */
const recd_param_def_t *recd_algorithm_param(const recd_algorithm_t *a, const char *name);
/** Reads / writes a parameter of a params struct as a double (u32 parameters are rounded). */
double recd_param_get(const recd_param_def_t *d, const void *params);
void recd_param_set(const recd_param_def_t *d, void *params, double v);
/** Parses a value for d (integer for u32 parameters, a name for enum ones, within [min, max]); -1 when it is not one. */
int recd_param_parse(const recd_param_def_t *d, const char *s, double *out);
/** The parameters as a JSON object {name: value}; new reference. */
json_t *recd_params_json(const recd_algorithm_t *a, const void *params);
/** "factors=64 alpha=2 ..." into buf. */
void recd_params_format(const recd_algorithm_t *a, const void *params, char *buf, size_t len);

/** Trains a with params on m. Returns RECD_OK or the trainer's RECD_E* code (out is then zeroed). */
int recd_fit(const recd_algorithm_t *a, const recd_csr_t *m, const void *params, const recd_fit_hooks_t *hooks, recd_fitted_t *out);
/** Frees the arrays and zeroes the struct; accepts a zeroed struct. */
void recd_fitted_dispose(recd_fitted_t *f);
/** The scorer of f (arrays borrowed from f): the kernel recd_model_score runs on the artifact made from f. */
void recd_fitted_scorer(const recd_fitted_t *f, recd_scorer_t *out);
/** Scores every item for a user through recd_scorer_score, exactly as recd_model_score scores the artifact made from f. */
void recd_fitted_score(const recd_fitted_t *f, uint32_t user, float *scores);
/** Scores every item for a user vector through recd_scorer_score; user is the user's index for its bias, or -1 (a user
 * folded in from interactions: no user bias). */
void recd_fitted_score_vector(const recd_fitted_t *f, const float *user_vec, int64_t user, float *scores);
/** The artifact spec of f (arrays borrowed from f and the arguments). */
void recd_fitted_spec(const recd_fitted_t *f, const char *const *user_ids, const char *const *item_ids,
                      const recd_csr_t *user_items, const char *metadata_json, recd_model_spec_t *spec);

/* ---- data as unique (user, item) entries with a timestamp, and split protocols ---------------------------------------- */

/** Unique (row, col) entries in row-major order, each with its merged value and latest timestamp. */
typedef struct st_recd_entries_t {
    size_t n_rows, n_cols, n;
    uint32_t *row, *col;
    float *val;
    int64_t *ts;
} recd_entries_t;

/** Merges x's duplicate (user, item) rows by `merge` (values) and max (timestamps). Aborts on out of memory. */
int recd_entries_from_interactions(const recd_interactions_t *x, recd_merge_t merge, recd_entries_t *out);
/** Frees and zeroes; accepts a zeroed struct. */
void recd_entries_dispose(recd_entries_t *e);
/** The CSR matrix of the entries (same shape). */
int recd_entries_csr(const recd_entries_t *e, recd_csr_t *out);

typedef enum en_recd_protocol_t {
    RECD_PROTOCOL_STRATIFIED = 0, /* per-user random ratio */
    RECD_PROTOCOL_TEMPORAL,       /* global time cut */
    RECD_PROTOCOL_LEAVE_LAST_OUT, /* each user's latest interaction */
    RECD_PROTOCOL_KFOLD,          /* K folds of all entries */
} recd_protocol_t;

/** "stratified", "temporal", "leave-last-out", "kfold". */
const char *recd_protocol_name(recd_protocol_t p);
/** Parses a name as recd_protocol_name writes it; -1 when unknown. */
int recd_protocol_parse(const char *s, recd_protocol_t *out);
/** A sentence describing the protocol for reports. */
const char *recd_protocol_description(recd_protocol_t p);

/**
 * Splits e into train and test entries (copies, same shape) by the protocol: test_ratio for stratified and temporal, seed
 * for stratified and kfold, fold/folds for kfold. Returns RECD_EINVAL for bad arguments.
 */
int recd_entries_split(const recd_entries_t *e, recd_protocol_t protocol, double test_ratio, uint64_t seed, uint32_t fold,
                       uint32_t folds, recd_entries_t *train, recd_entries_t *test);

/* ---- evaluation ------------------------------------------------------------------------------------------------------ */

/** Everything one evaluation measured. */
typedef struct st_recd_eval_result_t {
    recd_ranking_metrics_t ranking;
    int has_sampled;
    recd_ranking_metrics_t sampled;
    recd_sampled_protocol_t sampled_protocol;
    int has_rating;
    recd_rating_metrics_t rating;
} recd_eval_result_t;

/** The options of an evaluation. */
typedef struct st_recd_eval_options_t {
    uint32_t k;
    uint32_t threads;
    uint32_t sampled_negatives; /* 0 = off */
    uint64_t seed;
    int rating_metrics;           /* also RMSE/MAE/R^2 of the scores as rating predictions */
    float min_rating, max_rating; /* rating predictions clipped to this range unless min >= max */
} recd_eval_options_t;

/**
 * Evaluates a scorer (a recd_eval_score_cb over train's users and items) on test with train's items excluded: ranking
 * metrics, optionally the sampled protocol and rating metrics (the scorer's value for (user, item) is the predicted rating).
 */
int recd_evaluate(const recd_csr_t *train, const recd_csr_t *test, const recd_eval_options_t *o, recd_eval_score_cb score,
                  void *data, recd_eval_result_t *out);
/** recd_evaluate for a fitted model (scores as recd_fitted_score). */
int recd_evaluate_fitted(const recd_fitted_t *f, const recd_csr_t *train, const recd_csr_t *test, const recd_eval_options_t *o,
                         recd_eval_result_t *out);
/** The result as JSON: {"k", "users", "precision", ..., "coverage", "sampled": {...}, "rating": {...}}; new reference. */
json_t *recd_eval_result_json(const recd_eval_result_t *r);

/** A metric to select on: "ndcg@10", "precision@5", "map@10", "hr@10", "recall@20", "mrr", "auc", "coverage", "rmse", ... */
typedef struct st_recd_eval_metric_t {
    char name[32]; /* normalised: "ndcg@10" */
    int which;     /* internal */
    uint32_t k;    /* cut-off (10 when the name has none) */
    int lower_is_better;
} recd_eval_metric_t;

/** Parses a metric name; -1 when unknown. */
int recd_eval_metric_parse(const char *s, recd_eval_metric_t *out);
/** The metric's value in a result (NaN when the result lacks it, e.g. rmse without rating metrics). */
double recd_eval_metric_value(const recd_eval_metric_t *m, const recd_eval_result_t *r);

/* ---- learning curves: loss and a validation metric per iteration ---------------------------------------------------------- */

/** Loss and validation metric per iteration, recorded through the progress and snapshot callbacks. */
typedef struct st_recd_curve_t {
    size_t n_loss, n_metric, cap_loss, cap_metric;
    uint32_t *loss_iter, *metric_iter;
    double *loss, *metric;
    /* for snapshots: what to score and on what */
    const recd_algorithm_t *algorithm;
    uint32_t n_factors;
    const recd_csr_t *train, *test;
    recd_eval_options_t eval;
    recd_eval_metric_t selected;
    /* chained progress callback (printing) */
    recd_train_progress_cb next_progress;
    void *next_progress_data;
} recd_curve_t;

/** Frees the arrays; accepts a zeroed struct. */
void recd_curve_dispose(recd_curve_t *c);
/** Sets hooks->on_progress / on_snapshot to record into c (keeping any on_progress already there as the next one). */
void recd_curve_attach(recd_curve_t *c, recd_fit_hooks_t *hooks);
/** {"loss": [[iter, loss]...], "metric": "ndcg@10", "validation": [[iter, value]...]}; new reference. */
json_t *recd_curve_json(const recd_curve_t *c);

/**
 * Writes an SVG line chart of the curve (one polyline for the loss, one for the validation metric when snapshots were
 * recorded; otherwise a note says none arrived) to path. Returns RECD_OK or RECD_EIO.
 */
int recd_chart_write_svg(const recd_curve_t *c, const char *title, const char *metric_label, const char *path);

/* ---- tuning: candidates from a grid or a random search -------------------------------------------------------------- */

/** Parses 'alpha=1,2,4;reg=10,50' into per-parameter lists for a. A key applies to every algorithm with that parameter;
 * 'als.reg=10,50' limits it to one. Keys of other algorithms are skipped (recd_grid_check rejects keys no algorithm has). Returns
 * the number of candidates (product of the list lengths, every parameter not listed keeping its value in base) and fills *out with
 * that many params structs (params_size each; caller frees), or -1 with a message in err. */
long recd_grid_expand(const recd_algorithm_t *a, const void *base, const char *grid, const uint8_t *fixed, char **out, char *err,
                      size_t errlen);
/** Checks every key of a --grid string names a parameter of at least one of the algorithms; -1 with a message if not. */
int recd_grid_check(const recd_algorithm_t *const *algos, size_t n, const char *grid, char *err, size_t errlen);
/** Draws params for a random-search candidate: each parameter not fixed drawn from [lo, hi] (log-uniform when
 * log_scale), from the generator *rng. */
void recd_random_params(const recd_algorithm_t *a, const void *base, const uint8_t *fixed, uint64_t *rng, void *out);

/* ---- tuning: successive halving over validation folds (tune.c) ------------------------------------------------------- */

/** Whether metric value a beats b: a non-finite value beats nothing, a finite one beats any non-finite one. */
int recd_eval_metric_better(const recd_eval_metric_t *m, double a, double b);

/** How a candidate fared on the validation folds it was scored on. */
typedef struct st_recd_tune_tally_t {
    double score;          /* the metric averaged over folds_scored folds; NaN once a fold failed */
    uint32_t folds_scored; /* folds that produced a finite value */
    int failed;            /* a fit or evaluation failed, or the metric was not finite: not scored again */
} recd_tune_tally_t;

/** A search over candidates 0..n_candidates-1 on validation folds 0..n_folds-1; the caller fits and scores. */
typedef struct st_recd_tune_search_t {
    size_t n_candidates, n_folds;
    const recd_eval_metric_t *metric;
    /* fits candidate c on fold f's train part and returns the metric on its validation part; NaN when that failed */
    double (*score)(void *data, size_t candidate, size_t fold);
    /* after each score (may be NULL): the candidate's tally so far; leads: it is the best on the first fold so far */
    void (*on_scored)(void *data, size_t candidate, size_t fold, const recd_tune_tally_t *tally, int leads);
    void *data;
} recd_tune_search_t;

/** How many candidates go past the first fold: the best third (two at least, so the folds still compare) when there are
 * several folds, else every candidate. */
size_t recd_tune_survivors(size_t n_candidates, size_t n_folds);

/** Writes the indexes 0..n-1 into order, best tally score first (failed and non-finite last, ties by index). */
void recd_tune_rank(const recd_tune_tally_t *tallies, size_t n, const recd_eval_metric_t *m, size_t *order);

/**
 * Successive halving: every candidate is scored on fold 0; the recd_tune_survivors best of them (by recd_tune_rank) are
 * scored on folds 1..n_folds-1 in turn, a candidate stopping at its first failure. tallies (n_candidates entries,
 * overwritten) receive the mean over the folds each was scored on. Returns the candidate with the best mean among those
 * scored on every fold, or SIZE_MAX when none of them has a finite one.
 */
size_t recd_tune_halving(const recd_tune_search_t *s, recd_tune_tally_t *tallies);

/* ---- fold-in parameters chosen on validation (tune.c) ----------------------------------------------------------------- */

/** The fold-in pair chosen for a factor model and how it scored. */
typedef struct st_recd_fold_in_choice_t {
    float alpha, reg;     /* confidence c = 1 + alpha * value; L2 regularisation */
    double score;         /* validation metric at (alpha, reg) */
    double default_score; /* at the fixed pair used before (1, 1), which is always tried */
    size_t tried;
    char metric[32];
} recd_fold_in_choice_t;

/**
 * Chooses recd's fold-in (alpha, reg) for f, a BPR or biased-MF model trained on train: every validation user is folded in
 * from its train row with each pair of a small log grid and scored as recd scores a folded-in user; the pair with the best
 * metric (nDCG@k when metric is a rating metric) wins. Returns RECD_OK, or RECD_EINVAL (no factors, shapes disagree).
 */
int recd_fold_in_choose(const recd_fitted_t *f, const recd_csr_t *train, const recd_csr_t *validation, const recd_eval_options_t *o,
                        const recd_eval_metric_t *metric, recd_fold_in_choice_t *out);
/** {"alpha", "reg", "metric", "validation_score", ...}; new reference. */
json_t *recd_fold_in_choice_json(const recd_fold_in_choice_t *c);

/* ---- the progress line -------------------------------------------------------------------------------------------- */

typedef struct st_recd_progress_t {
    FILE *out;
    int tty; /* redraw one line with \r and a bar; else one plain line per step */
    size_t total, done;
    double started;
} recd_progress_t;

/** Starts a progress display of total steps on out (a bar when out is a terminal). */
void recd_progress_init(recd_progress_t *p, FILE *out, size_t total);
/** Marks one more step done with a message (e.g. the candidate and its score). */
void recd_progress_step(recd_progress_t *p, const char *message);
/** Ends the bar line (when a terminal). */
void recd_progress_finish(recd_progress_t *p);
/** Writes "[#####.....]  5/20  25%  ETA 0:12" for done/total after elapsed seconds into buf. */
void recd_progress_format(size_t done, size_t total, double elapsed, int width, char *buf, size_t len);

#endif
