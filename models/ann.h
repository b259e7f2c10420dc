/* ann.h: an approximate maximum-inner-product index over a model's item factors (IVF-Flat on the MIPS->NN augmentation),
 * its byte form for the artifact, and the approximate answer to a scan query. See docs/ANN.md. */
#ifndef RECD_MODELS_ANN_H
#define RECD_MODELS_ANN_H

#include <stddef.h>
#include <stdint.h>
#include "models/model.h"
#include "models/scan.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The index kinds a recd_ann_t can be; the byte form records it. */
typedef enum en_recd_ann_kind_t {
    RECD_ANN_NONE = 0, /* no index: exact search only */
    RECD_ANN_IVF = 1,  /* inverted lists of k-means cells over the augmented item vectors */
} recd_ann_kind_t;

/** "none", "ivf", or "unknown". */
const char *recd_ann_kind_name(uint32_t kind);
/** Parses a name as recd_ann_kind_name writes it; returns 0, or -1 when it is not one. */
int recd_ann_kind_parse(const char *name, recd_ann_kind_t *out);

/** How an index is built. */
typedef struct st_recd_ann_params_t {
    uint32_t n_lists;        /* k-means cells; 0 = about 4 * sqrt(n_items) */
    uint32_t n_probe;        /* cells searched per query until recd_ann_set_n_probe changes it; 0 = about n_lists / 16 */
    uint32_t iterations;     /* k-means iterations (default 12) */
    uint32_t train_per_list; /* k-means trains on at most this many items per cell (default 64), all of them when fewer */
    float bias_weight;       /* how much the item biases shape the cells; 0 = twice the factors' total variance over the
                                biases' (see docs/ANN.md); ignored without biases */
    uint32_t threads;        /* build threads (0 = 1), each running single-threaded OpenBLAS products; the result does not
                                depend on it */
    uint64_t seed;           /* the training sample, the initial centroids and the splits of empty cells */
} recd_ann_params_t;

/** Fills p with the defaults. */
void recd_ann_params_init(recd_ann_params_t *p);

typedef struct st_recd_ann_t recd_ann_t;

/**
 * Builds an index over the n_items x n_factors row-major item factors and their optional item biases (scores x . y_i + b_i,
 * searched as the (f+1)-dimensional inner product of (x, 1/w) and (y_i, w b_i), w = p->bias_weight): every item vector is
 * scaled by the largest norm and given one more coordinate sqrt(1 - |y|^2), so that the largest inner product with a query
 * becomes its nearest neighbour (Bachrach et al. 2014), and k-means cells over those vectors become the inverted lists.
 * Deterministic for the inputs and p->seed, whatever p->threads. Returns NULL with a message in err for bad parameters or
 * non-finite factors. Aborts on out of memory.
 */
recd_ann_t *recd_ann_build(const float *item_factors, const float *item_bias, size_t n_items, uint32_t n_factors,
                           const recd_ann_params_t *p, char *err, size_t errlen);

/**
 * Opens the byte form of an index (recd_ann_bytes) without copying it: data must stay readable, unchanged and 8-byte
 * aligned while the index lives. Every count, offset and item index is checked first, so corrupt bytes give NULL with a
 * message in err, never a bad read. Aborts on out of memory.
 */
recd_ann_t *recd_ann_map(const void *data, size_t size, char *err, size_t errlen);

/** Frees an index (and its bytes when it built them); accepts NULL. */
void recd_ann_free(recd_ann_t *a);

/** The byte form of the index, owned by it (8-byte aligned), for the artifact; *size receives its length. */
const void *recd_ann_bytes(const recd_ann_t *a, size_t *size);

/** What an index is: its kind, shape and search default. */
uint32_t recd_ann_kind(const recd_ann_t *a);
size_t recd_ann_n_items(const recd_ann_t *a);
uint32_t recd_ann_n_factors(const recd_ann_t *a);
/** Whether the index searches (y_i, b_i): it was built with item biases. */
int recd_ann_has_bias(const recd_ann_t *a);
/** The weight the item biases were given in the cells (1 without biases). */
float recd_ann_bias_weight(const recd_ann_t *a);
uint32_t recd_ann_n_lists(const recd_ann_t *a);
uint32_t recd_ann_n_probe(const recd_ann_t *a);

/**
 * Sets the cells recd_ann_topk searches, in the index's bytes (so call it before writing them out, never on a mapped or
 * shared index). Returns RECD_EINVAL unless 1 <= n_probe <= n_lists, and for a mapped index.
 */
int recd_ann_set_n_probe(recd_ann_t *a, uint32_t n_probe);

/**
 * Checks that a belongs to s: same item count and factors, and item biases exactly when the index searched them. Returns
 * 0, or RECD_EINVAL with a message in err.
 */
int recd_ann_check_scorer(const recd_ann_t *a, const recd_scorer_t *s, char *err, size_t errlen);

/**
 * Answers n scan queries from s->ann: the cells nearest each query are scanned (recd_ann_n_probe of them, then more until
 * at least max(4k, k + 2 n_excluded, 100) not-excluded items were seen), every item in them scored exactly as
 * recd_scorer_score scores it, excluded items skipped, and the best k written to q->out as recd_topk orders them
 * (descending score, ties by ascending index), with the same scores bit for bit. An excluded item is never answered. A
 * query on a scorer without an index (s->ann NULL, a popularity model) is answered exactly (recd_scan_topk). s->ann must
 * have passed recd_ann_check_scorer for s. Safe to call from several threads at once (it allocates its own scratch).
 */
void recd_ann_topk(const recd_scorer_t *s, recd_scan_query_t *q, size_t n);

/** recd_ann_topk with n_probe cells instead of the index's own setting (benchmarks and recall measurements). */
void recd_ann_topk_probe(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, uint32_t n_probe);

/**
 * Recall@k of s->ann against exact search for n_users user vectors (row-major, s->n_factors each; user u's bias index is
 * users[u] when users is not NULL, else -1), nothing excluded, with n_probe cells (0: the index's setting): the share of
 * the exact top k that the approximate top k holds, over all users. Returns RECD_EINVAL without an index or for k == 0.
 */
int recd_ann_recall(const recd_scorer_t *s, const float *user_vecs, const int64_t *users, size_t n_users, uint32_t k,
                    uint32_t n_probe, double *recall);

/**
 * Chooses the smallest n_probe of 1, 2, 4, ... n_lists whose recd_ann_recall on the given users reaches target and sets it
 * in a (recd_ann_set_n_probe); *recall receives the recall at the chosen setting. Returns RECD_EINVAL for bad arguments.
 */
int recd_ann_tune_n_probe(recd_ann_t *a, const recd_scorer_t *s, const float *user_vecs, const int64_t *users, size_t n_users,
                          uint32_t k, double target, double *recall);

/**
 * The index stored in a loaded model's artifact (optional section RECD_ARTIFACT_ANN_INDEX), mapped in place and checked
 * when the artifact was opened (a corrupt one fails recd_model_open), or NULL: the model answers exactly. Valid while m
 * lives; recd_model_scorer sets it as the scorer's ann.
 */
const recd_ann_t *recd_model_ann(const recd_model_t *m);

#ifdef __cplusplus
}
#endif

#endif
