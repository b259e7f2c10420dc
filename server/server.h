/* server: what is left of recd_server — the event log and the recd executable's app context. */
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
#include "registry/catalog.h"

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

/* ---- app context ------------------------------------------------------------------------------------- */

typedef struct st_recd_app_t recd_app_t;

/** Everything the executable builds once in main; read-only afterwards except for the thread-safe members. */
struct st_recd_app_t {
    const recd_config_t *config;
    recd_logger_t log;
    recd_metrics_t *metrics;
    recd_catalog_loader_t *catalog;
    struct st_recd_feature_store_t *store;
    struct st_recd_serve_t *serve;
    struct st_recd_api_t *api;
    recd_eventlog_t *events;
    size_t n_workers;
};

#endif
