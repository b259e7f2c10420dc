/* server: the public face of recd_server — logging, metrics, model holder, user state and the app context. */
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
#include "config/config.h"
#include "models/model.h"
#include "store/event_sink.h"

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

/** The process's metrics: one slot per worker thread, plus model load counters written by the registry watcher. */
typedef struct st_recd_metrics_t {
    size_t n_slots;
    recd_metrics_slot_t *slots;
    _Atomic uint64_t model_loads;
    _Atomic uint64_t model_load_failures;
    _Atomic uint64_t users_evicted; /* written by the user state when a shard is full */
} recd_metrics_t;

/** Creates metrics with n_slots per-thread slots, all zero. Aborts on out of memory. */
recd_metrics_t *recd_metrics_create(size_t n_slots);
/** Frees; accepts NULL. */
void recd_metrics_free(recd_metrics_t *m);
/** Records one request of slot's thread (only that thread may call it for that slot). */
void recd_metrics_observe(recd_metrics_t *m, size_t slot, recd_endpoint_t ep, int status, uint64_t duration_ns);
/** Adds n accepted events to slot's counter (only that slot's thread). */
void recd_metrics_add_events(recd_metrics_t *m, size_t slot, uint64_t n);
/** The status codes that get their own counter (RECD_METRICS_N_STATUS - 1 of them); others are kept per endpoint. */
extern const int recd_metrics_statuses[RECD_METRICS_N_STATUS - 1];
/** Upper bounds of the latency histogram buckets in seconds (the last, +Inf, is implicit). */
extern const double recd_metrics_bucket_bounds[RECD_METRICS_N_BUCKETS - 1];

/**
 * Renders Prometheus text format (0.0.4): requests by endpoint and status, the latency histogram per endpoint, the loaded
 * model (name and version; skipped when model_name is NULL), model loads and failures, accepted events, evicted users and
 * build info.
 * Counters are summed over the slots when read. Returns a malloc'ed NUL-terminated string the caller frees (*len its
 * length). Aborts on out of memory.
 */
char *recd_metrics_render(const recd_metrics_t *m, const char *model_name, uint64_t model_version, size_t *len);

/* ---- model holder + registry watcher ------------------------------------------------------------------------------ */

/**
 * A message carrying a newly loaded model version to a worker. The receiver takes over the message (free() it) and the one
 * model reference in it.
 */
typedef struct st_recd_model_message_t {
    h2o_multithread_message_t super;
    recd_model_t *model; /* NULL: stop the worker */
} recd_model_message_t;

typedef struct st_recd_holder_t recd_holder_t;

/**
 * Loads the latest version of model from the registry directory and returns a holder serving it, or NULL with a message in
 * err when there is no version or it cannot be opened. log and metrics are borrowed and must outlive the holder.
 */
recd_holder_t *recd_holder_create(const char *registry, const char *model, const recd_logger_t *log, recd_metrics_t *metrics,
                                  char *err, size_t errlen);
/** Stops the watcher if running and drops the holder's reference; accepts NULL. */
void recd_holder_free(recd_holder_t *h);
/** Returns the current model with one more reference, which the caller releases. Thread-safe. */
recd_model_t *recd_holder_acquire(recd_holder_t *h);
/**
 * Adds a receiver that gets a recd_model_message_t for every version loaded later. Call before recd_holder_start. The
 * receiver must stay registered until recd_holder_stop returns.
 */
void recd_holder_subscribe(recd_holder_t *h, h2o_multithread_receiver_t *receiver);
/**
 * Checks the registry once: when a version newer than the current one exists and was not rejected before (or its file
 * changed since), opens it (off any event loop — this is the watcher's job) and hands it to every subscriber. A bad artifact is
 * logged and counted and the current version keeps serving. Returns 1 when a new version was installed, 0 when nothing changed, <0
 * on failure.
 */
int recd_holder_poll(recd_holder_t *h);
/**
 * Starts the watcher thread: it checks the registry when inotify reports a new entry in <registry>/<model>/ and at least
 * every interval_ms (the fallback when inotify is unavailable). Returns 0 or RECD_EIO.
 */
int recd_holder_start(recd_holder_t *h, uint32_t interval_ms);
/** Stops and joins the watcher thread (no message is sent after it returns); a no-op when not running. */
void recd_holder_stop(recd_holder_t *h);

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
recd_userstate_t *recd_userstate_create(uint32_t max_recent, uint32_t max_users, recd_metrics_t *metrics);
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

/* ---- app context and workers ------------------------------------------------------------------------------------- */

typedef struct st_recd_app_t recd_app_t;

/**
 * One worker thread: its h2o context (embedded, so handlers find the worker from req->conn->ctx), the model version it
 * serves (swapped only by its own thread) and scratch buffers reused by every request it runs.
 */
typedef struct st_recd_worker_t {
    h2o_context_t ctx;
    recd_app_t *app;
    size_t index;
    recd_model_t *model;
    float *scores; /* n_items of model */
    size_t scores_cap;
    recd_scored_t *top; /* max_k */
    uint64_t rng;       /* request ids */
    h2o_multithread_receiver_t receiver;
    int stopping;
    uint32_t grace_ms; /* set before the stop message is sent */
    /* set up and used by the recd executable */
    pthread_t tid;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_accept_ctx_t accept_ctx;
    void *_start; /* start-up data of the executable, freed after the thread is joined */
} recd_worker_t;

/** The worker whose context runs req. */
#define recd_worker_of(req) H2O_STRUCT_FROM_MEMBER(recd_worker_t, ctx, (req)->conn->ctx)

/** Everything a request handler may need; built once by main, read-only afterwards except for the thread-safe members. */
struct st_recd_app_t {
    const recd_config_t *config;
    recd_logger_t log;
    recd_metrics_t *metrics;
    recd_holder_t *holder;
    recd_userstate_t *users;
    recd_event_sink_t *events;
    size_t n_workers;
    recd_worker_t *workers;
};

/**
 * Installs model in a worker (called on the worker's own thread): takes over the caller's reference, releases the old
 * one and resizes the scratch buffers. Aborts on out of memory.
 */
void recd_worker_set_model(recd_worker_t *w, recd_model_t *model);
/** Releases the worker's model and frees its scratch buffers. */
void recd_worker_dispose(recd_worker_t *w);

#endif
