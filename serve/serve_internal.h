/* serve_internal.h: what the files of recd_serve share — the worker, the context and its pipeline state. */
#ifndef RECD_SERVE_SERVE_INTERNAL_H
#define RECD_SERVE_SERVE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include "serve/score_pool.h"
#include "serve/serve.h"
#include "store/shared_counters.h"

/** The arms' latency histogram: its bounds, plus the +Inf bucket. */
#define RECD_SERVE_ARM_LATENCY_BUCKETS 17

/** How much of an arm's counters this process has added to the shared (Redis) hash already; guarded by shared_mutex. */
typedef struct st_recd_serve_arm_flushed_t {
    uint64_t requests, errors, impressions, clicks, conversions;
    uint64_t latency[RECD_SERVE_ARM_LATENCY_BUCKETS];
} recd_serve_arm_flushed_t;

/** One experiment arm's counters: process-wide, registered once per (model, experiment, arm) and never freed before s. */
typedef struct st_recd_serve_arm_stats_t {
    recd_metric_t *requests, *errors, *latency, *impressions, *clicks, *conversions;
    recd_metric_t *table_requests;     /* this slot table version's requests alone (SRM) */
    char shared_key[320];              /* the arm's hash in the shared counters (docs/REDIS.md) */
    recd_serve_arm_flushed_t *flushed; /* one per arm, whatever its table version */
    uint64_t flushed_table_requests;
} recd_serve_arm_stats_t;

/** A worker's view of one experiment of its snapshot: borrowed from the snapshot, rebuilt with every snapshot. */
typedef struct st_recd_serve_route_t {
    size_t model;                       /* index in the snapshot */
    const recd_control_experiment_t *e; /* borrowed from the snapshot */
    recd_serve_arm_stats_t **arms;      /* e->n_arms, process-wide */
} recd_serve_route_t;

struct st_recd_serve_t {
    recd_serve_config_t config;
    recd_feature_store_t *store;
    recd_metrics_t *metrics; /* may be NULL */
    const recd_logger_t *log;
    recd_metrics_t *own_metrics; /* when created without a registry: counters still count, nobody renders them */
    pthread_mutex_t arms_mutex;  /* guards the arm table; the counters themselves are lock-free */
    struct st_recd_serve_arm_entry_t *arms;
    recd_metric_t *bad_request_ids;
    recd_metric_t *loop_batch_size;   /* recd_score_loop_batch_size */
    recd_metric_t *scan_reranked;     /* recd_scan_reranked_total */
    recd_shared_counters_t *shared;   /* experiment counters across replicas, or NULL (this process's alone) */
    pthread_mutex_t shared_mutex;     /* guards every arm's flushed counts: a flush and a read see one state */
    recd_metric_t *shared_flushes[2]; /* recd_experiment_counter_flushes_total{result="ok"|"error"} */
    recd_score_pool_t *pool;          /* NULL: every scan runs on the thread that asks */
};

struct st_recd_serve_worker_t {
    recd_serve_t *serve;
    size_t slot;
    recd_catalog_t *catalog;    /* the snapshot the worker serves from; NULL before the first */
    recd_serve_route_t *routes; /* the snapshot's experiments, every model's, in snapshot order */
    size_t n_routes;
    uint64_t rng; /* request ids */
    /* scratch reused by the synchronous stages, sized for the largest version seen */
    float *scores;      /* similar items */
    uint64_t *excluded; /* one bit per item, all clear between requests (the popular order) */
    size_t items_cap;
    recd_scored_t *top;        /* max_k (similar items, the popular order) */
    recd_scan_scratch_t *scan; /* scans run on this thread (no pool, or not bound to a loop) */
    /* answers of the scoring pool: scoring threads push to the inbox, the worker's thread drains it after a wake */
    recd_serve_wake_cb wake; /* NULL: not bound to a loop */
    void *wake_data;
    pthread_mutex_t inbox_mutex;
    recd_score_job_t *inbox;
    size_t pending; /* submitted or put off, and not completed yet (the worker's thread only) */
    /* scans put off until the loop has read this round's requests (recd_serve_worker_defer_scans) */
    recd_serve_defer_cb defer; /* NULL: scan at once */
    void *defer_data;
    struct st_recd_serve_ctx_t **deferred, **flushing; /* the list filling, and the one a flush is working through */
    size_t n_deferred, deferred_cap, flushing_cap;
    recd_scan_query_t *flush_queries;
    struct st_recd_serve_ctx_t **flush_group;
    size_t flush_cap;
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
    uint32_t similar_item;  /* similar items: the item's index */
    int search;             /* RECD_SERVE_SEARCH_* as asked */
    size_t n_recent;        /* as asked, known or not */
    uint32_t *recent_known; /* indexes of the recent items model knows, request order */
    size_t n_recent_known;
    recd_serve_index_list_t excluded[RECD_SERVE_N_EXCL];
    recd_feature_user_t state;
    const float *vec;            /* the user vector scored, or NULL for the popular order */
    recd_score_job_t job;        /* stages 4 to 7 as one scan query: on the scoring pool, or at once on this thread */
    recd_serve_arm_stats_t *arm; /* the experiment arm the request was routed to, or NULL */
};

/** Makes the worker's scratch (scores, exclusion bits) big enough for a version of n items; grows only for a larger one. */
void recd_serve_reserve_scratch(recd_serve_worker_t *sw, size_t n);
/** The context a job is embedded in. */
static inline recd_serve_ctx_t *recd_serve_ctx_of_job(recd_score_job_t *job)
{
    return (recd_serve_ctx_t *)((char *)job - offsetof(recd_serve_ctx_t, job));
}
/**
 * Runs ctx->job (model, query, run set; run NULL for a scan query): on the scoring pool when the worker is bound to a loop,
 * else at once on this thread. Either way its answer becomes the context's result and the context finishes. Returns 0 when
 * that happened already (a full queue finishes it with result.err RECD_EBUSY), or RECD_SERVE_PENDING.
 */
int recd_serve_run_job(recd_serve_ctx_t *ctx);
/** Marks the context done (timing, arm counters) and calls its done callback unless it was cancelled. */
void recd_serve_finish(recd_serve_ctx_t *ctx);
/** Copies n top-k entries into the context's result memory, with their ids. */
recd_serve_item_t *recd_serve_copy_top(recd_serve_ctx_t *ctx, const recd_scored_t *top, size_t n);

/** A 64-bit nonce from the worker's request-id generator. */
uint64_t recd_serve_worker_nonce(recd_serve_worker_t *sw);
/** Rebuilds sw's routes for its current snapshot (registering arm counters on first sight). */
void recd_serve_build_routes(recd_serve_worker_t *sw);
/** Frees sw's routes. */
void recd_serve_free_routes(recd_serve_worker_t *sw);
/** The counters of arm (an index in e) of experiment e of model, registering them on first use. Thread-safe. */
recd_serve_arm_stats_t *recd_serve_arm_stats(recd_serve_t *s, const char *model, const recd_control_experiment_t *e, size_t arm);
/** Appends the labels model="..",experiment=".." (escaped). */
void recd_serve_label_experiment(recd_jw_t *out, const char *model, const char *experiment);
/** Frees the process-wide arm table. */
void recd_serve_free_arms(recd_serve_t *s);
/**
 * Stage 1, route: when the context's model has an enabled experiment, picks the user's arm by slot, makes the arm's
 * version the context's (NULL when it is not loaded: the request fails and counts as the arm's error), and fills the
 * result's experiment, arm and signed request id; otherwise a plain request id. Call before the version stage.
 */
void recd_serve_route(recd_serve_ctx_t *ctx, const recd_serve_id_t *user);
/** Counts a finished request in its arm's counters (requests, errors, latency, impressions); nothing outside experiments. */
void recd_serve_count_arm(recd_serve_ctx_t *ctx);
/** Attributes events carrying a request id to their arms (clicks, conversions); bad ids are counted and ignored. */
void recd_serve_attribute(recd_serve_ctx_t *ctx, const recd_serve_event_t *events, size_t n);

#endif
