/* models: the public face of recd_models — artifacts, training, scoring, evaluation. */
#ifndef RECD_MODELS_MODEL_H
#define RECD_MODELS_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- id maps: external string id <-> dense index ------------------------------------------------------------------- */

typedef struct st_recd_idmap_t recd_idmap_t;

/** Creates an empty map. Aborts on out of memory. */
recd_idmap_t *recd_idmap_create(void);
/** Frees the map and its copies of the ids; accepts NULL. */
void recd_idmap_free(recd_idmap_t *map);
/** Returns the index of id, adding it (copied) with the next dense index when absent. */
uint32_t recd_idmap_intern(recd_idmap_t *map, const char *id, size_t len);
/** Returns the index of id, or -1 when absent. */
int64_t recd_idmap_find(const recd_idmap_t *map, const char *id, size_t len);
/** Number of ids; they are indexed 0..size-1 in insertion order. */
size_t recd_idmap_size(const recd_idmap_t *map);
/** The NUL-terminated id of an index (valid while the map lives). */
const char *recd_idmap_id(const recd_idmap_t *map, uint32_t index);
/** The ids as an array of size recd_idmap_size(), owned by the map. */
const char *const *recd_idmap_ids(const recd_idmap_t *map);

/* ---- sparse interaction matrices (CSR) ----------------------------------------------------------------------------- */

typedef struct st_recd_csr_t {
    size_t n_rows, n_cols, nnz;
    uint64_t *row_ptr; /* n_rows + 1 */
    uint32_t *col;     /* nnz, sorted ascending within a row, no duplicates */
    float *val;        /* nnz */
} recd_csr_t;

/** How duplicate (row, col) entries are merged. */
typedef enum en_recd_merge_t { RECD_MERGE_SUM = 0, RECD_MERGE_MAX, RECD_MERGE_LAST } recd_merge_t;

/**
 * Builds a CSR matrix from n coordinate triples (rows[i], cols[i], vals[i]); vals may be NULL (all 1).
 * Duplicates are merged by `merge` (LAST = the later triple in input order wins).
 */
int recd_csr_from_coo(recd_csr_t *out, size_t n_rows, size_t n_cols, const uint32_t *rows, const uint32_t *cols, const float *vals,
                      size_t n, recd_merge_t merge);
/** Writes the transpose of m into out. */
int recd_csr_transpose(const recd_csr_t *m, recd_csr_t *out);
/** Frees the arrays and zeroes the struct; accepts a zeroed struct. */
void recd_csr_dispose(recd_csr_t *m);

/* ---- model artifact ------------------------------------------------------------------------------------------------- */

typedef enum en_recd_model_kind_t {
    RECD_MODEL_POPULARITY = 1, /* no factors; scores are item popularity */
    RECD_MODEL_ALS = 2,        /* implicit ALS: score = x_u . y_i */
    RECD_MODEL_BPR = 3,        /* score = x_u . y_i + b_i */
    RECD_MODEL_BIASED_MF = 4,  /* explicit: mu + b_u + b_i + x_u . y_i */
} recd_model_kind_t;

/** Returns "popularity", "als", "bpr", "biased_mf" or "unknown". */
const char *recd_model_kind_name(uint32_t kind);

#define RECD_ARTIFACT_MAGIC "RECDMDL1"
#define RECD_ARTIFACT_FORMAT_VERSION 2 /* what the writer writes; the reader also accepts 1 */
#define RECD_ARTIFACT_ALIGN 64
/* At most this many tagged optional sections in one artifact. */
#define RECD_ARTIFACT_MAX_EXTRAS 32

/**
 * Tags of the optional sections of a format-2 artifact. A reader rejects a tag it does not know (naming it), so a section
 * that changes how a model scores is never silently ignored. Compact item factors are row-major like the f32 ones, which
 * always stay in the artifact (fold-in, similar items and exact re-ranking read them).
 */
typedef enum en_recd_artifact_tag_t {
    RECD_ARTIFACT_ITEM_FACTORS_BF16 = 1, /* n_items*n_factors*2: bfloat16 */
    RECD_ARTIFACT_ITEM_FACTORS_FP16 = 2, /* n_items*n_factors*2: IEEE-754 binary16 */
    RECD_ARTIFACT_ITEM_FACTORS_INT8 = 3, /* n_items*n_factors: int8, row i times scale i approximates row i */
    RECD_ARTIFACT_INT8_SCALES = 4,       /* n_items*4: f32 per-row scales of the int8 factors (present with tag 3) */
    RECD_ARTIFACT_ANN_INDEX = 16,        /* an approximate nearest-neighbour index (models/ann.c) */
} recd_artifact_tag_t;

/** Returns a short name of an optional-section tag ("item factors bf16", ...), or NULL for a tag this recd does not know. */
const char *recd_artifact_tag_name(uint32_t tag);

/** One optional section handed to the writer (the bytes are borrowed). */
typedef struct st_recd_artifact_extra_t {
    uint32_t tag; /* recd_artifact_tag_t */
    const void *data;
    uint64_t size;
} recd_artifact_extra_t;

/**
 * Everything a writer needs; the arrays are borrowed. user_factors/item_factors are row-major float32 with n_factors
 * columns (NULL when n_factors == 0). user_items is the training interaction matrix (n_users x n_items, values are the raw
 * interaction strengths) used to exclude seen items and to re-fold users. item_bias/user_bias may be NULL (zeros).
 * metadata_json is a JSON object (training parameters, data fingerprint, evaluation, trainer version, created time).
 */
typedef struct st_recd_model_spec_t {
    uint32_t kind;
    uint32_t n_factors;
    size_t n_users, n_items;
    const char *const *user_ids;
    const char *const *item_ids;
    const float *user_factors;
    const float *item_factors;
    const float *item_popularity; /* n_items: interaction counts or weights, higher is more popular */
    const float *user_bias;       /* n_users or NULL */
    const float *item_bias;       /* n_items or NULL */
    float global_bias;
    float alpha; /* fold-in confidence: c = 1 + alpha * value */
    float reg;   /* fold-in L2 regularisation */
    const recd_csr_t *user_items;
    const char *metadata_json;
    const recd_artifact_extra_t *extras; /* optional sections, each tag at most once (format 2); NULL when n_extras == 0 */
    size_t n_extras;
} recd_model_spec_t;

/**
 * Writes an artifact to path (via path.tmp, fsync, rename). The file layout: a fixed header (magic, format version, kind,
 * counts, factors, alpha/reg/global bias, section offsets and sizes, the table of tagged optional sections), 64-byte-aligned
 * sections (user ids, item ids, user factors, item factors, Gram matrix Y^T Y computed here, popularity, biases, user-item
 * CSR, metadata JSON, then the spec's extras in order) and a trailing SHA-256 of every byte before it. An extra with an
 * unknown or repeated tag, or a compact-factor section of the wrong size, is refused. On failure returns a RECD_E* code and
 * writes a message into err.
 */
int recd_model_write(const recd_model_spec_t *spec, const char *path, char *err, size_t errlen);

typedef struct st_recd_model_t recd_model_t;

/**
 * Reads an artifact into anonymous memory (so changes to the file afterwards cannot affect it), verifies its SHA-256 and every
 * offset/count, builds the id lookup tables, and returns it with one reference. Returns NULL and a message in err saying what is
 * wrong (truncated, bad magic, unsupported version, checksum mismatch, inconsistent counts or offsets, an unknown section
 * tag). Reads format versions 1 and 2.
 */
recd_model_t *recd_model_open(const char *path, char *err, size_t errlen);
/** Takes one more reference (atomic). */
void recd_model_retain(recd_model_t *m);
/**
 * The bytes of the optional section with this tag (64-byte aligned, valid while m lives) and *size (may be NULL) its length;
 * NULL (and *size 0) when the artifact has none, as every format-1 artifact.
 */
const void *recd_model_extra(const recd_model_t *m, uint32_t tag, uint64_t *size);
/** Drops a reference (atomic); the last one unmaps and frees. Accepts NULL. */
void recd_model_release(recd_model_t *m);

/** Name and version as set by recd_model_set_identity (the registry loader); "" and 0 by default. */
void recd_model_set_identity(recd_model_t *m, const char *name, uint64_t version);
const char *recd_model_name(const recd_model_t *m);
uint64_t recd_model_version(const recd_model_t *m);

uint32_t recd_model_kind(const recd_model_t *m);
size_t recd_model_n_users(const recd_model_t *m);
size_t recd_model_n_items(const recd_model_t *m);
uint32_t recd_model_n_factors(const recd_model_t *m);
float recd_model_alpha(const recd_model_t *m);
float recd_model_reg(const recd_model_t *m);
/** Bytes of memory the loaded version holds (the artifact's copy plus its lookup tables): what max_loaded_bytes counts. */
size_t recd_model_bytes(const recd_model_t *m);
/** recd_model_bytes summed over every version opened in this process and not yet freed (the last reference gone). */
size_t recd_model_live_bytes(void);
/** How many versions are opened in this process and not yet freed. */
size_t recd_model_live_count(void);
/** The artifact's SHA-256 as 64 lowercase hex characters. */
const char *recd_model_sha256(const recd_model_t *m);
/** The metadata JSON (not NUL-terminated); *len receives its length. */
const char *recd_model_metadata(const recd_model_t *m, size_t *len);

/** Index of a user / item id, or -1. */
int64_t recd_model_find_user(const recd_model_t *m, const char *id, size_t len);
int64_t recd_model_find_item(const recd_model_t *m, const char *id, size_t len);
/** The NUL-terminated external id of an index; *len (may be NULL) receives its length. */
const char *recd_model_user_id(const recd_model_t *m, uint32_t index, size_t *len);
const char *recd_model_item_id(const recd_model_t *m, uint32_t index, size_t *len);

/** Row pointers into the mapped factor matrices (NULL for a popularity model). */
const float *recd_model_user_vector(const recd_model_t *m, uint32_t user);
const float *recd_model_item_factors(const recd_model_t *m);
/** n_items popularity values. */
const float *recd_model_popularity(const recd_model_t *m);
/** Item indexes ordered by descending popularity (ties by index). */
const uint32_t *recd_model_popular_order(const recd_model_t *m);
/** The training interactions of a user: sorted item indexes and their values. */
void recd_model_user_items(const recd_model_t *m, uint32_t user, const uint32_t **items, const float **values, size_t *n);

/* ---- scoring ------------------------------------------------------------------------------------------------------- */

typedef struct st_recd_scored_t {
    uint32_t index;
    float score;
} recd_scored_t;

/**
 * What scoring reads of a model, as bare borrowed arrays: a loaded artifact (recd_model_score) and a model just trained
 * (recd-train's evaluation) are scored by the same kernel, so a trained model ranks exactly as recd will serve it.
 */
/**
 * How far compact item factors are from the float32 ones, which lets the scan prove that its candidates hold the exact
 * top k (models/scan.h). Filled by recd_compact_bounds; known == 0 means not computed, and then the scan proves nothing
 * and re-scans every query in float32.
 */
typedef struct st_recd_compact_bounds_t {
    int known;
    double max_error;     /* max over elements of |float32 - decoded compact| */
    double max_row_error; /* max over rows of the Euclidean norm of that difference */
    double max_abs;       /* max |float32 element| */
    double max_bias;      /* max |item bias|, 0 without biases */
} recd_compact_bounds_t;

typedef struct st_recd_scorer_t {
    uint32_t kind; /* recd_model_kind_t */
    uint32_t n_factors;
    size_t n_users, n_items;
    const float *item_factors; /* n_items x n_factors row-major; unused for popularity */
    const float *item_bias;    /* n_items, or NULL (zeros); BPR and biased MF */
    const float *user_bias;    /* n_users, or NULL (zeros); biased MF */
    const float *popularity;   /* n_items; what a popularity model scores */
    float global_bias;         /* biased MF */
    /* Compact item factors the scan (models/scan.h) reads instead of item_factors to select candidates, which it then
     * re-ranks from item_factors; factor_type 0 (RECD_FACTORS_F32) = none. recd_scorer_score ignores them. */
    uint32_t factor_type;             /* recd_factor_type_t */
    const void *item_factors_compact; /* n_items x n_factors: uint16 bf16/fp16 bits, or int8 */
    const float *item_scales;         /* n_items: the int8 per-row scales */
    recd_compact_bounds_t compact_bounds;
    const struct st_recd_bf16_tiles_t *bf16_tiles; /* a bf16 copy of item_factors the scan reads first, or NULL */
    const struct st_recd_ann_t *ann;               /* the approximate index over item_factors (models/ann.h), or NULL: exact only */
} recd_scorer_t;

/**
 * The scoring kernel: writes the exact score of every item for a user vector into scores (n_items floats): the dot product
 * of the float32 factors (the kernel recd_scan_topk uses, so both rank alike bit for bit) plus the kind's biases (a
 * popularity model copies its popularity). user is the user's index for its bias, or -1 for a user folded in from
 * interactions (no user bias).
 */
void recd_scorer_score(const recd_scorer_t *s, const float *user_vec, int64_t user, float *scores);

/**
 * The scorer of a loaded model (arrays borrowed from it). When the artifact holds compact item factors the scorer reads
 * them (the smallest present: int8, then fp16, then bf16); otherwise factor_type is RECD_FACTORS_F32.
 */
void recd_model_scorer(const recd_model_t *m, recd_scorer_t *out);

/**
 * Writes the score of every item for a user vector into scores (n_items floats): recd_scorer_score on the model's arrays.
 * user is the user's index for bias lookup, or -1 for a folded-in user.
 */
void recd_model_score(const recd_model_t *m, const float *user_vec, int64_t user, float *scores);

/**
 * Selects the k highest finite scores (entries set to -INFINITY are skipped) into out, sorted by descending score, ties by
 * ascending index. Returns how many were written (<= k).
 */
size_t recd_topk(const float *scores, size_t n, size_t k, recd_scored_t *out);

/**
 * Implicit-ALS fold-in: solves (Y^T Y + Y_u^T (C_u - I) Y_u + reg I) x = Y_u^T C_u p_u for the n interactions (items,
 * values), c = 1 + alpha * value, using the model's Gram matrix. vec receives n_factors floats. Returns RECD_OK,
 * RECD_EINVAL for a model without factors, or RECD_ENUMERIC.
 */
int recd_model_fold_in(const recd_model_t *m, const uint32_t *items, const float *values, size_t n, float *vec);

/**
 * The solve behind recd_model_fold_in on bare arrays, for code that holds factors but no loaded model (the trainer chooses
 * alpha and reg with it): gram is the full f x f Y^T Y of the n_items x f row-major item_factors. Same results and errors.
 */
int recd_fold_in_solve(const float *gram, const float *item_factors, size_t n_items, size_t n_factors, float alpha, float reg,
                       const uint32_t *items, const float *values, size_t n, float *vec);

/**
 * Items most similar to item by cosine of their factors (the item itself excluded); for a popularity model, the most
 * popular other items. scores is scratch of n_items floats. Returns how many were written (<= k).
 */
size_t recd_model_similar(const recd_model_t *m, uint32_t item, size_t k, float *scores, recd_scored_t *out);

/* ---- training ------------------------------------------------------------------------------------------------------ */

/** Called after each iteration; return non-zero to stop early. */
typedef int (*recd_train_progress_cb)(void *data, uint32_t iteration, double loss, double seconds);

/**
 * Called after each iteration (ALS) or epoch (SGD) with the current factors, so a caller can score a validation split while
 * the model learns (recd-train's per-iteration chart). The arrays belong to the trainer and are valid only during the
 * call; item_bias is NULL for models without one. Training does not wait for anything but the call itself.
 */
typedef void (*recd_train_snapshot_cb)(void *data, uint32_t iteration, const float *user_factors, const float *item_factors,
                                       const float *item_bias);

/**
 * The per-run settings every trainer takes besides its own parameters: embedded as `hooks` in each params struct, so a
 * caller (recd-train) sets them once for any algorithm.
 */
typedef struct st_recd_fit_hooks_t {
    uint32_t threads; /* 0 = number of cores */
    uint64_t seed;
    recd_train_progress_cb on_progress; /* NULL = none; the loss each trainer reports is described at its params */
    void *progress_data;
    recd_train_snapshot_cb on_snapshot; /* NULL = none */
    void *snapshot_data;
} recd_fit_hooks_t;

/** How ALS solves each row's least-squares system. */
typedef enum en_recd_als_solver_t {
    RECD_ALS_CHOLESKY = 0, /* exact: build the f x f system, Cholesky-factorise it (O(nnz_u f^2 + f^3) per row) */
    RECD_ALS_CG = 1,       /* cg_steps conjugate-gradient steps warm-started from the row's vector (Takacs et al. 2011) */
} recd_als_solver_t;

typedef struct st_recd_als_params_t {
    uint32_t factors;         /* default 64 */
    uint32_t iterations;      /* default 15 */
    float alpha;              /* confidence 1 + alpha * value */
    float reg;                /* L2 */
    recd_als_solver_t solver; /* see recd_als_params_init for the default */
    uint32_t cg_steps;        /* CG steps per row and half-step (default 3); >= 1 when solver is RECD_ALS_CG */
    recd_fit_hooks_t hooks;   /* on_progress's loss: the weighted squared error plus regularisation */
} recd_als_params_t;

/** Fills params with recd-train's defaults. */
void recd_als_params_init(recd_als_params_t *p);

/**
 * Trains implicit ALS (Hu, Koren & Volinsky 2008) on a user x item matrix of interaction strengths. Allocates
 * *user_factors (n_rows x factors) and *item_factors (n_cols x factors), which the caller frees. Deterministic for a seed
 * and thread count. With either solver the last user half-step is exact, so the returned user factors solve their normal
 * equations for the returned item factors (recd_model_fold_in of a training row reproduces the stored vector). Returns
 * RECD_EINVAL for bad parameters (an unknown solver, cg_steps 0 with CG) and RECD_ENUMERIC when a row's system is not
 * positive definite (possible only with negative values).
 */
int recd_als_train(const recd_csr_t *user_items, const recd_als_params_t *p, float **user_factors, float **item_factors);

/** Popularity: per-item sum of interaction counts (number of users who interacted). out has n_cols floats. */
void recd_popularity_compute(const recd_csr_t *user_items, float *out);

/* ---- evaluation ---------------------------------------------------------------------------------------------------- */

/*
 * Splits come in two shapes. The *_mask functions work on n coordinate rows (an interaction log, possibly with
 * timestamps) and write one flag or fold number per row, so a caller can combine them with any row data and then build
 * matrices with recd_csr_split_by_mask. recd_split_stratified and recd_split_kfold work on a CSR matrix directly; they use
 * the same shuffles as the mask versions, so a CSR's entries taken in row-major order give the same partition either way.
 * Every split is a pure function of its inputs and seed.
 */

/**
 * Per-user stratified random split: each user's interactions are shuffled (seeded) and round(test_ratio * n) of them go to
 * test (users with fewer than 2 interactions stay wholly in train). Both outputs have m's shape and are freed with
 * recd_csr_dispose. Returns RECD_EINVAL unless 0 <= test_ratio <= 1. Aborts on out of memory.
 */
int recd_split_stratified(const recd_csr_t *m, double test_ratio, uint64_t seed, recd_csr_t *train, recd_csr_t *test);

/**
 * recd_split_stratified over n coordinate rows: each user's rows (taken in input order) are shuffled with one seeded
 * generator that walks the users in index order, and round(test_ratio * count) of them get is_test = 1; users with fewer
 * than 2 rows stay wholly in train. is_test receives n flags (0 train, 1 test). Returns RECD_EINVAL unless
 * 0 <= test_ratio <= 1 and every user[i] < n_users. Aborts on out of memory.
 */
int recd_split_stratified_mask(const uint32_t *user, size_t n, size_t n_users, double test_ratio, uint64_t seed, uint8_t *is_test);

/**
 * Global temporal cut: the round(test_ratio * n) latest rows by ts (ties: the later row in input order counts as later)
 * get is_test = 1, the rest 0, so every test row is at least as late as every train row. Users are ignored: a user first
 * seen after the cut has no train rows. Returns RECD_EINVAL unless 0 <= test_ratio <= 1. Aborts on out of memory.
 */
int recd_split_temporal_mask(const int64_t *ts, size_t n, double test_ratio, uint8_t *is_test);

/**
 * Per-user leave-last-out: each user's latest row by ts (ties: the later row in input order) gets is_test = 1, every
 * other row 0; a user with a single row keeps it in train. Returns RECD_EINVAL when some user[i] >= n_users. Aborts on
 * out of memory.
 */
int recd_split_leave_last_out_mask(const uint32_t *user, const int64_t *ts, size_t n, size_t n_users, uint8_t *is_test);

/**
 * K-fold assignment: the row indexes 0..n-1 are shuffled with seed and cut into `folds` consecutive chunks whose sizes
 * differ by at most one (the first n % folds chunks hold the extra one); fold_of[i] receives the chunk of row i. This is
 * the partition recd_split_kfold uses for a CSR's entries in row-major order. Returns RECD_EINVAL unless folds >= 2.
 * Aborts on out of memory.
 */
int recd_split_kfold_mask(size_t n, uint32_t folds, uint64_t seed, uint32_t *fold_of);

/**
 * Builds train (rows with is_test[i] == 0) and test (is_test[i] != 0) matrices of shape n_rows x n_cols from n coordinate
 * triples, each side built as recd_csr_from_coo builds it (vals may be NULL for all 1; duplicates within a side merged by
 * `merge`). A (row, col) pair with rows on both sides appears in both outputs: merge duplicates before splitting when a
 * test pair must not also be a train pair. On failure (RECD_EINVAL for an index out of range or a bad merge) both outputs
 * are zeroed; on success the caller frees them with recd_csr_dispose. Aborts on out of memory.
 */
int recd_csr_split_by_mask(size_t n_rows, size_t n_cols, const uint32_t *rows, const uint32_t *cols, const float *vals, size_t n,
                           const uint8_t *is_test, recd_merge_t merge, recd_csr_t *train, recd_csr_t *test);

/**
 * Ranking metrics, each the mean over `users` (the users with at least one test item) unless said otherwise. The fields
 * after hit_rate were added for issue 3; recd_eval_sampled fills them with its own definitions (see there).
 */
typedef struct st_recd_ranking_metrics_t {
    uint32_t k;
    size_t users; /* test users evaluated */
    double precision, recall, ndcg, map, hit_rate;
    double mrr;      /* 1 / (1-based rank of the first test item within the top k), 0 when none is there */
    double auc;      /* per-user AUC, averaged over the auc_users users that have both a positive and a negative */
    double coverage; /* distinct items in any evaluated user's top k / n_items */
    size_t auc_users;
    size_t pairs; /* test interactions ranked: the evaluated users' test items (recd_eval_sampled: ranked lists) */
} recd_ranking_metrics_t;

/** Produces a user's scores over all items (n_cols floats) for evaluation; called from several threads at once. */
typedef void (*recd_eval_score_cb)(void *data, uint32_t user, float *scores);

/**
 * Ranks for every user with test items the top k over items not in that user's train row, binary relevance; averages
 * P@k, R@k, nDCG@k (log2 discount, ideal = min(k, |test|) hits), MAP@k (Microsoft Recommenders: sum of precision at each
 * hit within the top k divided by |test|), HR@k and MRR@k. AUC is computed over the whole ranking, not the top k: the
 * positives are the user's test items not in train, the negatives every item in neither, and it is the share of
 * (positive, negative) pairs the positive outscores, a tie counting one half (Mann-Whitney; non-finite and NaN scores rank
 * lowest). Coverage is the catalogue share recommended to anyone. Results do not depend on `threads` (0 = number of cores).
 * Returns RECD_EINVAL for k == 0 or mismatched shapes. Aborts on out of memory.
 */
int recd_eval_ranking(const recd_csr_t *train, const recd_csr_t *test, uint32_t k, recd_eval_score_cb score, void *data,
                      uint32_t threads, recd_ranking_metrics_t *out);

/** The sampled-negative protocol's parameters (He et al. 2017, "Neural Collaborative Filtering", used 99 negatives). */
typedef struct st_recd_sampled_protocol_t {
    uint32_t n_negatives;
    uint64_t seed;
} recd_sampled_protocol_t;

/**
 * The sampled-negative protocol: for every user with test items and every test item t not in the user's train row, t is
 * ranked among n_negatives items drawn uniformly without replacement from the items in neither the user's train nor test
 * row (all of them when there are fewer), from a generator seeded by (seed, user) so the draw is the same for any thread
 * count. A negative scoring the same as t (or a NaN t) ranks above it, so a constant scorer gets no credit. Per ranked
 * list: rank r in 1..n+1; HR@k = [r <= k], nDCG@k = [r <= k] / log2(r + 1), MRR = 1 / r (no cut-off), AUC = share of the
 * negatives ranked below t, MAP@k = [r <= k] / r, recall = HR, precision = HR / k. Every metric is the mean over the
 * `pairs` lists (not over users); lists without any negative are skipped; users counts users with at least one list;
 * auc_users = users; coverage is 0 (not defined here). score is called once per user, from several threads at once.
 * Returns RECD_EINVAL for k == 0, n_negatives == 0 or mismatched shapes. Aborts on out of memory.
 */
int recd_eval_sampled(const recd_csr_t *train, const recd_csr_t *test, uint32_t k, const recd_sampled_protocol_t *proto,
                      recd_eval_score_cb score, void *data, uint32_t threads, recd_ranking_metrics_t *out);

/* ---- more models: BPR, biased MF, rating metrics ---- */

/*
 * BPR and biased MF are trained by stochastic gradient descent. With threads > 1 the threads update the shared factor
 * matrices without locks (Hogwild!, Niu et al. 2011): the result is as good but not bit-reproducible from run to run.
 * threads == 1 runs on the calling thread and is deterministic for a seed.
 */

typedef struct st_recd_bpr_params_t {
    uint32_t factors;       /* default 128 */
    uint32_t epochs;        /* default 200; each epoch draws nnz (user, positive, negative) triples */
    float learning_rate;    /* default 0.025 */
    float reg;              /* L2 on the factor vectors touched by a step */
    float bias_reg;         /* L2 on the item biases touched by a step */
    recd_fit_hooks_t hooks; /* on_progress's loss = mean -ln sigma(x_uij) of the epoch + regularisation / nnz */
} recd_bpr_params_t;

/** Fills p with recd-train's BPR defaults (chosen on MovieLens 100K, see docs/BENCHMARKS.md). */
void recd_bpr_params_init(recd_bpr_params_t *p);

/**
 * Trains BPR-OPT (Rendle et al. 2009) on a user x item matrix whose non-zero entries are the positives (values are
 * ignored). Each step draws a user uniformly among users with at least one positive and one negative, a positive uniformly
 * from the user's row and a negative uniformly from the items not in it. Score = x_u . y_i + b_i (RECD_MODEL_BPR).
 * Allocates *user_factors (n_rows x factors), *item_factors (n_cols x factors) and *item_bias (n_cols), which the caller
 * frees; they are left untouched on failure. Returns RECD_EINVAL for bad parameters or an empty shape. Aborts on out of
 * memory. A progress callback returning non-zero stops training after that epoch (the factors so far are returned).
 */
int recd_bpr_train(const recd_csr_t *user_items, const recd_bpr_params_t *p, float **user_factors, float **item_factors,
                   float **item_bias);

typedef struct st_recd_mf_params_t {
    uint32_t factors;       /* default 100 */
    uint32_t epochs;        /* default 100 */
    float learning_rate;    /* default 0.005 */
    float reg;              /* L2 on the factor vectors */
    float bias_reg;         /* L2 on the user and item biases */
    float init_std;         /* factors start as N(0, init_std^2); biases at 0 */
    recd_fit_hooks_t hooks; /* on_progress's loss = (sum of squared errors of the epoch + regularisation) / nnz */
} recd_mf_params_t;

/** Fills p with recd-train's biased-MF defaults (chosen by 5-fold CV on MovieLens 100K, see docs/BENCHMARKS.md). */
void recd_mf_params_init(recd_mf_params_t *p);

/**
 * Trains biased matrix factorisation for explicit ratings (Koren, Bell & Volinsky 2009; the "SVD" of Funk and Surprise):
 * prediction = mu + b_u + b_i + x_u . y_i, fitted by SGD over the ratings (the non-zero entries of `ratings`) in a freshly
 * shuffled order each epoch. Allocates *user_factors (n_rows x factors), *item_factors (n_cols x factors), *user_bias
 * (n_rows) and *item_bias (n_cols), which the caller frees; *global_mean receives mu, the mean of the ratings. Returns
 * RECD_EINVAL for bad parameters or a matrix without ratings (outputs untouched). Aborts on out of memory.
 */
int recd_mf_train(const recd_csr_t *ratings, const recd_mf_params_t *p, float **user_factors, float **item_factors,
                  float **user_bias, float **item_bias, float *global_mean);

/** A trained biased-MF model as recd_mf_train returns it (every array borrowed, none may be NULL); recd_mf_predict's data. */
typedef struct st_recd_mf_model_t {
    uint32_t factors;
    const float *user_factors, *item_factors, *user_bias, *item_bias;
    float global_mean;
    float min_rating, max_rating; /* predictions are clipped to this range unless min_rating >= max_rating */
} recd_mf_model_t;

/** Predicts the rating of (user, item) for a recd_mf_model_t passed as data; a recd_rating_predict_cb. */
float recd_mf_predict(void *data, uint32_t user, uint32_t item);

typedef struct st_recd_rating_metrics_t {
    size_t n; /* test ratings */
    double rmse, mae, r2;
} recd_rating_metrics_t;

/** Predicts the rating a user would give an item, for evaluation. */
typedef float (*recd_rating_predict_cb)(void *data, uint32_t user, uint32_t item);

/**
 * Scores every rating of test against predict: RMSE, MAE and R^2 = 1 - SS_res / SS_tot (SS_tot about the test mean; when
 * every test rating is equal, R^2 is 1 for perfect predictions and 0 otherwise, as scikit-learn does). Returns RECD_EINVAL
 * when test holds no ratings.
 */
int recd_eval_rating(const recd_csr_t *test, recd_rating_predict_cb predict, void *data, recd_rating_metrics_t *out);

/**
 * K-fold cross-validation split (Surprise's KFold): the nnz entries of m are shuffled with seed and cut into `folds`
 * consecutive chunks whose sizes differ by at most one (the first nnz % folds chunks hold the extra one); chunk `fold`
 * becomes test, the rest train. The same seed gives the same partition for every fold, so folds 0..folds-1 are disjoint
 * and together cover m. Both outputs have m's shape and are freed with recd_csr_dispose. Returns RECD_EINVAL unless
 * 2 <= folds and fold < folds. Aborts on out of memory.
 */
int recd_split_kfold(const recd_csr_t *m, uint32_t folds, uint32_t fold, uint64_t seed, recd_csr_t *train, recd_csr_t *test);

#ifdef __cplusplus
}
#endif

#endif
