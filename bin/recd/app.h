/* app.h: the recd executable's app context — everything main builds once and the worker threads read. */
#ifndef RECD_BIN_RECD_APP_H
#define RECD_BIN_RECD_APP_H

#include <stddef.h>
#include "base/log.h"
#include "base/metrics.h"
#include "config/config.h"
#include "registry/catalog.h"
#include "store/event_sink.h"

/** Everything the executable builds once in main; read-only afterwards except for the thread-safe members. */
typedef struct st_recd_app_t {
    const recd_config_t *config;
    recd_logger_t log;
    recd_metrics_t *metrics;
    recd_catalog_loader_t *catalog;
    struct st_recd_feature_store_t *store;
    struct st_recd_serve_t *serve;
    struct st_recd_api_t *api;
    recd_event_sink_t *events;
    int redis; /* store is the Redis feature store: every worker attaches its own connection */
    size_t n_workers;
} recd_app_t;

#endif
