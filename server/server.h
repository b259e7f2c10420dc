/* server: the public face of recd_server — HTTP metrics, user state, event log, the app context and what handlers use of
 * their worker. */
#ifndef RECD_SERVER_SERVER_H
#define RECD_SERVER_SERVER_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <h2o.h>
#include "base/log.h"
#include "base/text.h"
#include "base/metrics.h"
#include "config/config.h"
#include "models/model.h"
#include "registry/catalog.h"

/* ---- metrics ----------------------------------------------------------------------------------------------------- */

/** The endpoints metrics are kept for; RECD_EP_OTHER counts unknown paths. */
typedef enum en_recd_endpoint_t {
    RECD_EP_RECOMMENDATIONS = 0,
    RECD_EP_SIMILAR,
    RECD_EP_EVENTS,
    RECD_EP_HEALTHZ,
    RECD_EP_READYZ,
    RECD_EP_METRICS,
    RECD_EP_OTHER,
    RECD_EP_COUNT
} recd_endpoint_t;

/** Label value of an endpoint ("recommendations", "similar", ...). */
const char *recd_endpoint_name(recd_endpoint_t ep);

#define RECD_METRICS_N_STATUS 10  /* 200 202 400 404 405 413 415 500 503 and "other" */
#define RECD_METRICS_N_BUCKETS 12 /* 0.0005 .. 1 s and +Inf */

/** One thread's counters: only its owner writes them (relaxed atomics), any thread may read them. */
typedef struct st_recd_metrics_slot_t {
    _Atomic uint64_t requests[RECD_EP_COUNT][RECD_METRICS_N_STATUS];
    _Atomic uint64_t buckets[RECD_EP_COUNT][RECD_METRICS_N_BUCKETS];
    _Atomic uint64_t duration_ns[RECD_EP_COUNT];
    _Atomic uint64_t events_accepted;
} __attribute__((aligned(64))) recd_metrics_slot_t;

/**
 * The HTTP metrics: one slot per worker thread. model_loads and model_load_failures are only rendered when a model name is
 * given to recd_http_metrics_render; recd itself passes none, since the catalog registers those families in base/metrics.
 */
typedef struct st_recd_http_metrics_t {
    size_t n_slots;
    recd_metrics_slot_t *slots;
    _Atomic uint64_t model_loads;
    _Atomic uint64_t model_load_failures;
    _Atomic uint64_t users_evicted; /* written by the user state when a shard is full */
} recd_http_metrics_t;

/** Creates metrics with n_slots per-thread slots, all zero. Aborts on out of memory. */
recd_http_metrics_t *recd_http_metrics_create(size_t n_slots);
/** Frees; accepts NULL. */
void recd_http_metrics_free(recd_http_metrics_t *m);
/** Records one request of slot's thread (only that thread may call it for that slot). */
void recd_http_metrics_observe(recd_http_metrics_t *m, size_t slot, recd_endpoint_t ep, int status, uint64_t duration_ns);
/** Adds n accepted events to slot's counter (only that slot's thread). */
void recd_http_metrics_add_events(recd_http_metrics_t *m, size_t slot, uint64_t n);
/** The status codes that get their own counter (RECD_METRICS_N_STATUS - 1 of them); others are kept per endpoint. */
extern const int recd_metrics_statuses[RECD_METRICS_N_STATUS - 1];
/** Upper bounds of the latency histogram buckets in seconds (the last, +Inf, is implicit). */
extern const double recd_metrics_bucket_bounds[RECD_METRICS_N_BUCKETS - 1];

/**
 * Renders Prometheus text format (0.0.4): requests by endpoint and status, the latency histogram per endpoint, the loaded
 * model with model loads and failures (all three skipped when model_name is NULL), accepted events, evicted users and
 * build info.
 * Counters are summed over the slots when read. Returns a malloc'ed NUL-terminated string the caller frees (*len its
 * length). Aborts on out of memory.
 */
char *recd_http_metrics_render(const recd_http_metrics_t *m, const char *model_name, uint64_t model_version, size_t *len);

/* ---- in-memory user state -------------------------------------------------------------------------------------------- */

/** One remembered interaction. */
typedef struct st_recd_user_item_t {
    h2o_iovec_t item;
    float weight;
} recd_user_item_t;

/** A copy of one user's state taken under its shard lock; memory from the pool given to recd_userstate_get. */
typedef struct st_recd_user_snapshot_t {
    recd_user_item_t *items; /* oldest first */
    size_t n_items;
    uint64_t seq; /* bumped by every recd_userstate_add */
    float *vec;   /* the re-folded vector for the asked model version, or NULL */
    uint32_t n_factors;
} recd_user_snapshot_t;

typedef struct st_recd_userstate_t recd_userstate_t;

/**
 * Creates an empty sharded map keeping at most max_recent items per user and about max_users users: each of its 64
 * shards holds at most ceil(max_users / 64) (at least 1), and adding a new user to a full shard evicts that shard's least
 * recently added-to user (recd_userstate_add counts as use; get and set_vector do not). Evictions are counted in
 * metrics->users_evicted when metrics is not NULL (borrowed, must outlive the map). Aborts on out of memory.
 */
recd_userstate_t *recd_userstate_create(uint32_t max_recent, uint32_t max_users, recd_http_metrics_t *metrics);
/** Frees every user; accepts NULL. */
void recd_userstate_free(recd_userstate_t *us);
/**
 * Appends n interactions to a user (creating it, which may evict the shard's least recently updated user), dropping the
 * oldest items beyond max_recent, and marks the user most recently updated. Copies everything.
 */
void recd_userstate_add(recd_userstate_t *us, const char *user, size_t ulen, const recd_user_item_t *items, size_t n);
/**
 * Copies a user's state into out (memory from pool). The vector is copied only when it was folded for model_version with
 * n_factors factors. Returns 0, or RECD_ENOTFOUND when the user has no state (the fast path: no allocation).
 */
int recd_userstate_get(recd_userstate_t *us, const char *user, size_t ulen, uint64_t model_version, uint32_t n_factors,
                       h2o_mem_pool_t *pool, recd_user_snapshot_t *out);
/**
 * Stores a re-folded vector for model_version, computed from the snapshot with sequence seq; ignored when a vector from a
 * later snapshot is already stored (so concurrent folds never go back in time) or the user is unknown.
 */
void recd_userstate_set_vector(recd_userstate_t *us, const char *user, size_t ulen, uint64_t seq, uint64_t model_version,
                               const float *vec, uint32_t n_factors);
/** Number of users with state. */
size_t recd_userstate_count(recd_userstate_t *us);

/* ---- event log sink ------------------------------------------------------------------------------------------------ */

typedef struct st_recd_eventlog_t recd_eventlog_t;

/**
 * Opens (creating it and its parent directory) the JSON-lines event log at path for appending. fsync: fdatasync after
 * each append. Returns NULL with a message in err.
 */
recd_eventlog_t *recd_eventlog_open(const char *path, int fsync, char *err, size_t errlen);
/** Closes; accepts NULL. */
void recd_eventlog_close(recd_eventlog_t *el);
/**
 * Appends len bytes (whole lines) with one write(2) on the O_APPEND descriptor (so concurrent appends never interleave),
 * then fdatasync when configured. Returns 0 or RECD_EIO (errno kept).
 */
int recd_eventlog_append(recd_eventlog_t *el, const char *buf, size_t len);

/* ---- app context and what handlers use of their worker ----------------------------------------------------------- */

typedef struct st_recd_app_t recd_app_t;

/**
 * What request handlers use of the worker thread running them: its h2o context (embedded, so handlers find it from
 * req->conn->ctx), its index (its metrics slot), its current catalog snapshot and scratch buffers reused by every request
 * it runs. Only the worker's own thread touches it. The executable's worker (bin/recd/workers.h) embeds it; the thread's
 * other internals are private to bin/recd.
 */
typedef struct st_recd_worker_state_t {
    h2o_context_t ctx;
    recd_app_t *app;
    size_t index;
    recd_catalog_t *catalog; /* one reference, swapped only by the worker's thread */
    float *scores;           /* recd_catalog_max_items of the snapshot */
    size_t scores_cap;
    recd_scored_t *top; /* max_k */
    uint64_t rng;       /* request ids */
} recd_worker_state_t;

/** The worker state whose context runs req. */
#define recd_worker_of(req) H2O_STRUCT_FROM_MEMBER(recd_worker_state_t, ctx, (req)->conn->ctx)

/** Everything a request handler may need; built once by main, read-only afterwards except for the thread-safe members. */
struct st_recd_app_t {
    const recd_config_t *config;
    recd_logger_t log;
    recd_http_metrics_t *metrics;
    recd_metrics_t *metrics_registry; /* the families other modules register (the catalog's model metrics) */
    recd_catalog_loader_t *catalog;
    recd_userstate_t *users;
    recd_eventlog_t *events;
    size_t n_workers;
};

/**
 * Installs a catalog snapshot in a worker (on the worker's own thread): takes over the caller's reference, releases the old
 * snapshot and grows the scratch buffers to the snapshot's largest model. A snapshot older than the current one (a smaller
 * generation) is released and ignored, so a late message never goes back in time. Aborts on out of memory.
 */
void recd_worker_set_catalog(recd_worker_state_t *w, recd_catalog_t *snapshot);
/** The active version of the default model in the worker's snapshot (borrowed from it), or NULL. */
recd_model_t *recd_worker_model(const recd_worker_state_t *w);
/** Releases the worker's snapshot and frees its scratch buffers. */
void recd_worker_dispose(recd_worker_state_t *w);

#endif
