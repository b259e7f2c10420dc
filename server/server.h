/* server: what is left of recd_server — the model holder and the recd executable's app context. */
#ifndef RECD_SERVER_SERVER_H
#define RECD_SERVER_SERVER_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <h2o.h>
#include "base/log.h"
#include "base/metrics.h"
#include "base/text.h"
#include "config/config.h"
#include "models/model.h"
#include "store/event_sink.h"

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

/* ---- app context and workers ------------------------------------------------------------------------------------- */

typedef struct st_recd_app_t recd_app_t;

/**
 * One worker thread: its h2o context (embedded, so the executable finds the worker from it), its serving state (the model
 * version it serves, swapped only by its own thread, and its scratch buffers) and its receiver for model messages.
 */
typedef struct st_recd_worker_t {
    h2o_context_t ctx;
    recd_app_t *app;
    size_t index;
    struct st_recd_serve_worker_t *serve;
    h2o_multithread_receiver_t receiver;
    int stopping;
    uint32_t grace_ms; /* set before the stop message is sent */
    /* set up and used by the recd executable */
    pthread_t tid;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_accept_ctx_t accept_ctx;
    void *_start;   /* start-up data of the executable, freed after the thread is joined */
    uint64_t _seed; /* of the request-id generator */
} recd_worker_t;

/** Everything the executable builds once in main; read-only afterwards except for the thread-safe members. */
struct st_recd_app_t {
    const recd_config_t *config;
    recd_logger_t log;
    recd_metrics_t *metrics;
    recd_holder_t *holder;
    struct st_recd_feature_store_t *store;
    struct st_recd_serve_t *serve;
    struct st_recd_api_t *api;
    recd_event_sink_t *events;
    size_t n_workers;
    recd_worker_t *workers;
};

#endif
