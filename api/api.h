/* api: the public face of recd_api — the HTTP endpoints of API v1 on an h2o host, over the serving pipeline. */
#ifndef RECD_API_API_H
#define RECD_API_API_H

#include <h2o.h>
#include "base/log.h"
#include "base/metrics.h"
#include "config/config.h"
#include "serve/serve.h"
#include "registry/catalog.h"
#include "store/event_sink.h"

typedef struct st_recd_api_t recd_api_t;

/**
 * Creates the API over serve: config, log, metrics, serve and events are borrowed and must outlive it. Registers the
 * API's metric families in metrics (requests by endpoint and status, latency per endpoint, accepted events, build info).
 * Aborts on out of memory.
 */
recd_api_t *recd_api_create(const recd_config_t *config, const recd_logger_t *log, recd_metrics_t *metrics, recd_serve_t *serve,
                            recd_event_sink_t *events);
/**
 * Turns on what the admin endpoints need: catalog (borrowed; its snapshots name the models served) and the JWT key of
 * the configuration (jwt_hs256_secret_file or jwt_rs256_public_key, read now). Without a key the admin endpoints answer
 * 403 and the public ones stay open. Returns RECD_OK, or RECD_EINVAL with a message in err when the key is unusable.
 */
int recd_api_enable_control(recd_api_t *api, recd_catalog_loader_t *catalog, char *err, size_t errlen);
/** Frees (joining the admin thread); accepts NULL. Detach every context first. */
void recd_api_free(recd_api_t *api);

/**
 * Registers /v1/recommendations, /v1/recommendations:batch, /v1/items/{id}/similar, /v1/events, /healthz, /readyz, /metrics, the
 * admin endpoints /v1/models and /v1/experiments, and a catch-all that answers unknown paths with a JSON 404. The handlers keep api
 * (borrowed; it must outlive the host's contexts) and serve only on contexts attached with recd_api_attach.
 */
void recd_api_register(h2o_hostconf_t *host, recd_api_t *api);

/**
 * Binds a worker's h2o context (after h2o_context_init, on the worker's thread, before it accepts) to its serving state
 * sw (borrowed) and metrics slot, and registers the receiver that brings event-sink completions back to this loop.
 */
void recd_api_attach(recd_api_t *api, h2o_context_t *ctx, recd_serve_worker_t *sw, size_t slot);
/**
 * Event batches of this worker that the event sink has not answered yet, plus its admin operations in flight. Their completions
 * post to the worker's context: it must keep running its loop until this is 0 before recd_api_detach.
 */
size_t recd_api_pending(recd_api_t *api, h2o_context_t *ctx);
/** Undoes recd_api_attach (on the worker's thread, before h2o_context_dispose, once no request is in flight). */
void recd_api_detach(recd_api_t *api, h2o_context_t *ctx);

#endif
