/* serve.h: the request pipeline — process-wide serving state, one state per worker thread, and request contexts. */
#ifndef RECD_SERVE_SERVE_H
#define RECD_SERVE_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include "base/log.h"
#include "base/metrics.h"
#include "models/event.h"
#include "models/model.h"
#include "registry/catalog.h"
#include "store/feature_store.h"

/*
 * A recommendation runs as explicit stages of a request context: route (experiment arm), version (the model version the
 * context holds a reference on), user vector (from the feature store; may complete later), score, exclude and filter,
 * rank, top-k. Ids are resolved to indexes once, when the version is chosen. The context owns its memory (an arena) and
 * its timing record, so an answer that completes after the worker swapped its model, or after the caller stopped
 * waiting, reads nothing it does not own. Nothing here knows HTTP: api/ parses, calls the pipeline and renders.
 *
 * Threads: recd_serve_t is shared and read-only once built. A recd_serve_worker_t and every context it creates belong to
 * one thread (a worker's event loop): create, complete and release them there. With a scoring pool (score_threads > 0) and
 * a worker bound to its loop (recd_serve_worker_use_loop), stages 4 to 7 of a request with a user vector run on a scoring
 * thread, batched with other requests of the same version; the answer comes back to the worker's loop, which completes the
 * context there. Without either, the same scan runs at once on the caller's thread, as a batch of one.
 */

typedef struct st_recd_serve_t recd_serve_t;
typedef struct st_recd_serve_worker_t recd_serve_worker_t;
typedef struct st_recd_serve_ctx_t recd_serve_ctx_t;

/** What the pipeline needs of the configuration. */
typedef struct st_recd_serve_config_t {
    uint32_t max_k;               /* the largest k a request may ask for */
    int store_written_by_updater; /* recd-updater writes the feature store from Kafka: accepted events are not appended here too */
    uint32_t score_threads;       /* scoring threads; 0: no pool, every scan runs on the thread that asks */
    uint32_t score_batch_max;     /* most requests of one version scanned together (0: the pool's default) */
    uint32_t score_batch_window_us;   /* how long a partial batch waits for more (0: only what is queued) */
    uint32_t score_window_cost_scale; /* recd_score_pool_config_t.window_cost_scale (0: every version waits the whole window) */
    uint32_t score_inline_max;        /* item x factor products up to which a version is scanned on the asking thread (0: none) */
    uint32_t score_queue_max;         /* queued scans beyond which requests are refused (0: the pool's default) */
    int approximate;                  /* the search of a request that does not choose: 0 exact, 1 approximate */
} recd_serve_config_t;

/** An id given by a caller: len bytes, not necessarily NUL-terminated. */
typedef struct st_recd_serve_id_t {
    const char *base;
    size_t len;
} recd_serve_id_t;

/** One answered item: its index in the context's model, its external id (NUL-terminated, owned by the model) and score. */
typedef struct st_recd_serve_item_t {
    uint32_t index;
    float score;
    const char *id;
    size_t len;
} recd_serve_item_t;

/** A context's answer; memory owned by the context. */
typedef struct st_recd_serve_result_t {
    int err;              /* 0, RECD_ENOTFOUND when no model is loaded (recommend) / the item is unknown (similar), or
                             RECD_EBUSY when the scoring queue was full (refused: answer 503 and ask to retry) */
    const char *fallback; /* recommend: "none" (a known or remembered user), "fold_in" or "popular" */
    const char *search;   /* recommend: the search that answered, "exact" or "approximate" */
    const recd_serve_item_t *items;
    size_t n_items;
    const recd_serve_id_t *ignored; /* recommend: the request's recent items unknown to the model, in request order */
    size_t n_ignored;
    const char *request_id; /* recommend: NUL-terminated; signed (recd_experiment_request_id_encode) inside an experiment */
    const char *experiment; /* recommend: the experiment the request was routed by, or NULL */
    const char *arm;        /* its arm's name, or NULL */
} recd_serve_result_t;

/** When a context started and finished (monotonic nanoseconds; done_ns is 0 until the answer is complete). */
typedef struct st_recd_serve_timing_t {
    uint64_t started_ns, done_ns;
} recd_serve_timing_t;

/* ---- process-wide ---------------------------------------------------------------------------------------------- */

/**
 * Creates the serving state, and its scoring pool when config->score_threads > 0. store (the feature store), metrics and log
 * are borrowed and must outlive it; metrics may be NULL (no recd_model_version gauge). Returns NULL when a scoring thread
 * cannot start; aborts on out of memory.
 */
recd_serve_t *recd_serve_create(const recd_serve_config_t *config, recd_feature_store_t *store, recd_metrics_t *metrics,
                                const recd_logger_t *log);
/** Frees (joining the scoring threads); accepts NULL. Free every worker first. */
void recd_serve_free(recd_serve_t *s);
/** The scoring pool (owned by s), or NULL when s scores on the callers' threads. For tests and drills (recd_score_pool_hold). */
struct st_recd_score_pool_t *recd_serve_pool(const recd_serve_t *s);
/**
 * Whether model version m has an approximate index, so that a request asking for approximate search gets one. The one place
 * that decides it: no version has an index yet, so this is 0 and every answer is exact.
 */
int recd_serve_version_has_index(const recd_model_t *m);

/* ---- per worker thread ------------------------------------------------------------------------------------------ */

/**
 * Creates the state of one worker thread: its current model version (none yet), scratch buffers reused by every request
 * and a request-id generator seeded with seed. slot is the thread's metrics slot. Aborts on out of memory.
 */
recd_serve_worker_t *recd_serve_worker_create(recd_serve_t *s, size_t slot, uint64_t seed);
/** Releases the worker's model and frees it; accepts NULL. Every context it created must have been released. */
void recd_serve_worker_free(recd_serve_worker_t *sw);
/**
 * Installs the catalog snapshot the worker serves from (call on the worker's own thread): takes over the caller's reference
 * on snapshot (NULL: nothing is loaded) and drops the worker's reference on the previous one. Contexts still running keep
 * their own reference on the version they use, so an old version stays mapped until the last of them is released.
 */
void recd_serve_worker_set_catalog(recd_serve_worker_t *sw, recd_catalog_t *snapshot);
/** recd_serve_worker_set_catalog with a snapshot of that one version (recd_catalog_of_model); takes over the reference. */
void recd_serve_worker_set_model(recd_serve_worker_t *sw, recd_model_t *model);
/** The version a request of the default model would use now (borrowed; NULL when none is loaded). */
recd_model_t *recd_serve_worker_model(const recd_serve_worker_t *sw);
/** Writes a fresh request id: 16 lowercase hex digits and a NUL. Unique in practice, not unpredictable. */
void recd_serve_worker_request_id(recd_serve_worker_t *sw, char out[17]);

/** Called on a scoring thread when answers for a worker are waiting: make the worker's thread call recd_serve_worker_drain. */
typedef void (*recd_serve_wake_cb)(void *data);
/**
 * Binds the worker to its thread's event loop so that its scans go to the scoring pool (when s has one): wake(data) is called
 * from a scoring thread, once each time answers start waiting, and must be safe there (a message to the loop). Call before
 * the worker's first request. Without it the worker scans on its own thread.
 */
void recd_serve_worker_use_loop(recd_serve_worker_t *sw, recd_serve_wake_cb wake, void *data);
/** On the worker's thread, after a wake: completes every context whose scan is done (their done callbacks run here). */
void recd_serve_worker_drain(recd_serve_worker_t *sw);
/** Called on the worker's thread when it put a scan off: have its loop call recd_serve_worker_flush soon. */
typedef void (*recd_serve_defer_cb)(void *data);
/**
 * Lets the worker put off the scans it runs on its own thread (versions of at most score_inline_max products) until its
 * loop calls recd_serve_worker_flush, which defer(data) asks for once per flush: the loop should call it when it has read
 * the other requests that arrived in the same round, so that those of one version are scanned together (one pass over
 * the rows for all of them, which costs less per request than one pass each). Without it such scans run at once.
 */
void recd_serve_worker_defer_scans(recd_serve_worker_t *sw, recd_serve_defer_cb defer, void *data);
/** On the worker's thread: scans every scan put off so far, a batch per version, and completes their contexts. */
void recd_serve_worker_flush(recd_serve_worker_t *sw);
/** Scans queued or running for this worker and not yet drained. The loop must keep running until 0 before freeing sw. */
size_t recd_serve_worker_pending(const recd_serve_worker_t *sw);

/* ---- request contexts ------------------------------------------------------------------------------------------- */

/**
 * Starts a request on sw: the context takes its own reference on the worker's current version and records the start
 * time. Its memory comes from blocks the worker recycles (no allocation per request once warm). Released with
 * recd_serve_ctx_release; the caller holds one reference.
 */
recd_serve_ctx_t *recd_serve_ctx_create(recd_serve_worker_t *sw);
/**
 * Makes the context serve model name (len bytes) instead of the default one: the active version of that model in the
 * worker's snapshot (none when it has no loaded version: the request then fails as for an unloaded default). Call before
 * recd_serve_recommend or recd_serve_similar. Returns 0, or RECD_ENOTFOUND when the snapshot serves no model of that name
 * (the context keeps the default's version).
 */
int recd_serve_ctx_use_model(recd_serve_ctx_t *ctx, const char *name, size_t len);
/** Adds a reference. */
void recd_serve_ctx_retain(recd_serve_ctx_t *ctx);
/** Drops a reference; the last one releases the model reference and the memory. Accepts NULL. */
void recd_serve_ctx_release(recd_serve_ctx_t *ctx);
/**
 * Tells a context whose answer is still pending that nobody waits for it: its done callback will not be called. The
 * caller still releases its reference; the pending stage keeps the context alive until it completes.
 */
void recd_serve_ctx_cancel(recd_serve_ctx_t *ctx);
/** size bytes of the context's arena (8-byte aligned), freed with the context. ctx is a recd_serve_ctx_t *. Never NULL. */
void *recd_serve_ctx_alloc(void *ctx, size_t size);
/** The version the context uses (borrowed from it; NULL when none was loaded). */
recd_model_t *recd_serve_ctx_model(const recd_serve_ctx_t *ctx);
/** The context's answer (valid once its done callback ran). */
const recd_serve_result_t *recd_serve_ctx_result(const recd_serve_ctx_t *ctx);
/** The context's timing record. */
const recd_serve_timing_t *recd_serve_ctx_timing(const recd_serve_ctx_t *ctx);

/* ---- recommendations ---------------------------------------------------------------------------------------------- */

/** A recommendations request; everything is copied or resolved before recd_serve_recommend returns. */
typedef struct st_recd_serve_recs_request_t {
    recd_serve_id_t user;
    uint32_t k;                    /* 1..max_k (larger values are clamped) */
    const recd_serve_id_t *recent; /* the client's recent items: folded in for a user recd knows nothing of, excluded */
    size_t n_recent;
    const recd_serve_id_t *exclude; /* items never to recommend */
    size_t n_exclude;
    int search; /* RECD_SERVE_SEARCH_*: what the caller asked for */
} recd_serve_recs_request_t;

/** A request's choice of search: the configured default, exact, or approximate (exact when the version has no index). */
enum { RECD_SERVE_SEARCH_DEFAULT, RECD_SERVE_SEARCH_EXACT, RECD_SERVE_SEARCH_APPROXIMATE };

/** Called once when a context's answer is complete (on the worker's thread), unless the context was cancelled. */
typedef void (*recd_serve_done_cb)(recd_serve_ctx_t *ctx, void *data);

/** recd_serve_recommend's answer will come later through the done callback (a positive value, never a RECD_E*). */
#define RECD_SERVE_PENDING 1

/**
 * Runs the pipeline for rq. A user the model was trained on is scored from its factors; a user with remembered
 * interactions is re-folded from its history plus them (once per version: the vector is stored back); an unknown user
 * is folded from rq's recent items; anyone else gets the most popular items. The user's training items, remembered items,
 * recent items and exclusions are never answered. Returns 0 when the answer is complete (cb has been called already) or
 * RECD_SERVE_PENDING when a stage waits (the feature store, or the scoring pool: cb will be called later, on the worker's
 * thread). A full scoring queue completes the context with result->err RECD_EBUSY. Call once per context.
 */
int recd_serve_recommend(recd_serve_ctx_t *ctx, const recd_serve_recs_request_t *rq, recd_serve_done_cb cb, void *data);

/* ---- similar items and events ---------------------------------------------------------------------------------------- */

/**
 * Finds the k items most similar to item (len bytes) in the context's version, on the scoring pool like a recommendation's
 * scan (or at once without one). Returns 0 when the answer is complete (cb has been called already) or RECD_SERVE_PENDING
 * (cb will be called later, on the worker's thread). result->err is RECD_ENOTFOUND when the item is unknown or no version
 * is loaded, RECD_EBUSY when the scoring queue was full. Call once per context.
 */
int recd_serve_similar(recd_serve_ctx_t *ctx, const char *item, size_t len, uint32_t k, recd_serve_done_cb cb, void *data);

/** One accepted interaction to remember. */
typedef struct st_recd_serve_event_t {
    recd_serve_id_t user, item;
    float weight;
    recd_serve_id_t request_id; /* the answer the event follows (len 0: none), for experiment attribution */
    recd_event_type_t type;
} recd_serve_event_t;

/**
 * Attributes events that carry an experiment request id to their arm (a click counts as a click; add_to_cart and purchase
 * as conversions; other types as neither), then remembers accepted events in the feature store: one append per user with that
 * user's items in event order (users in the order of their last event). No fold-in runs here: the next recommendation of each user
 * folds its new state once for its version (lazily, as for any user whose stored vector is missing or stale). Items unknown to the
 * context's version are remembered too, and counted in an info log line. A request id that is garbled, forged (its MAC does not
 * check out with the experiment's salt) or names an experiment the worker's snapshot does not have is counted in
 * recd_experiment_bad_request_ids_total and ignored; a plain id (16 hex digits, an answer outside experiments) is ignored.
 * With store_written_by_updater set, only the attribution runs: recd-updater appends the events from the topic.
 */
void recd_serve_remember(recd_serve_ctx_t *ctx, const recd_serve_event_t *events, size_t n);

#endif
