/* metrics_http.h: recd-updater's tiny HTTP/1.1 listener for /metrics and /healthz, on its own thread, without libh2o. */
#ifndef RECD_BIN_UPDATER_METRICS_HTTP_H
#define RECD_BIN_UPDATER_METRICS_HTTP_H

#include <stddef.h>
#include "base/metrics.h"

typedef struct st_recd_metrics_http_t recd_metrics_http_t;

/**
 * Listens on addr ("HOST:PORT", an IPv4 address or "localhost") and answers, one connection at a time, GET /metrics
 * (metrics rendered as Prometheus text) and GET /healthz ({"status":"ok","pid":N}); anything else gets 404 or 405. The
 * port is held exclusively (no SO_REUSEPORT), so a second process on it fails here. metrics is borrowed. Returns NULL
 * with a message in err when the address is bad or cannot be bound.
 */
recd_metrics_http_t *recd_metrics_http_start(const char *addr, recd_metrics_t *metrics, char *err, size_t errlen);
/** Stops and joins the listener's thread and closes its socket; accepts NULL. */
void recd_metrics_http_stop(recd_metrics_http_t *h);

#endif
