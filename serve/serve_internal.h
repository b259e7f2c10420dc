/* serve_internal.h: what the files of recd_serve share — the worker, the context and its pipeline state. */
#ifndef RECD_SERVE_SERVE_INTERNAL_H
#define RECD_SERVE_SERVE_INTERNAL_H

#include "serve/serve.h"

struct st_recd_serve_t {
    recd_serve_config_t config;
    recd_feature_store_t *store;
    recd_metrics_t *metrics; /* may be NULL */
    const recd_logger_t *log;
};

struct st_recd_serve_worker_t {
    recd_serve_t *serve;
    size_t slot;
    recd_catalog_t *catalog; /* the snapshot the worker serves from; NULL before the first */
    uint64_t rng;            /* request ids */
    /* scratch reused by the synchronous score .. top-k stages, sized for the largest version seen */
    float *scores;
    uint64_t *excluded; /* one bit per item, all clear between requests */
    size_t items_cap;
    recd_scored_t *top; /* max_k */
    /* recycled context blocks */
    recd_serve_ctx_t *free_ctx;
    size_t n_free;
};

/** An arena chunk beyond the context's own block. */
typedef struct st_recd_serve_chunk_t {
    struct st_recd_serve_chunk_t *next;
} recd_serve_chunk_t;

/** A list of item indexes never to answer. */
typedef struct st_recd_serve_index_list_t {
    const uint32_t *v;
    size_t n;
} recd_serve_index_list_t;

enum { RECD_SERVE_EXCL_TRAINED, RECD_SERVE_EXCL_REMEMBERED, RECD_SERVE_EXCL_RECENT, RECD_SERVE_EXCL_REQUEST, RECD_SERVE_N_EXCL };

struct st_recd_serve_ctx_t {
    recd_serve_worker_t *worker;
    recd_model_t *model; /* the context's own reference */
    size_t model_index;  /* the model's index in the worker's snapshot (0: the default), for the route stage */
    unsigned refcnt;     /* one thread only: no atomics */
    int cancelled;
    recd_serve_timing_t timing;
    recd_serve_result_t result;
    /* arena: the rest of this block, then malloc'ed chunks */
    char *pos, *end;
    recd_serve_chunk_t *chunks;
    /* the recommendation being run */
    recd_serve_done_cb done_cb;
    void *done_data;
    recd_serve_id_t user;
    int64_t user_index; /* in model, or -1 */
    uint32_t k;
    size_t n_recent;        /* as asked, known or not */
    uint32_t *recent_known; /* indexes of the recent items model knows, request order */
    size_t n_recent_known;
    recd_serve_index_list_t excluded[RECD_SERVE_N_EXCL];
    recd_feature_user_t state;
    const float *vec; /* the user vector scored, or NULL for the popular order */
};

/** Makes the worker's scratch (scores, exclusion bits) big enough for a version of n items; grows only for a larger one. */
void recd_serve_reserve_scratch(recd_serve_worker_t *sw, size_t n);
/** Copies the worker's first n top-k entries into the context's result memory, with their ids. */
recd_serve_item_t *recd_serve_copy_top(recd_serve_ctx_t *ctx, size_t n);

#endif
