/* api.c: the API object, binding worker contexts to it, every endpoint's registration, and the JSON 404 catch-all. */
#include <stdlib.h>
#include "base/alloc.h"
#include "api/api_internal.h"

struct st_not_found_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_not_found_handler_t *h = (void *)self;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->api->other);
    recd_api_reply_not_found(call);
    recd_api_end(call);
    return 0;
}

void recd_api_register_not_found(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    struct st_not_found_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
}

recd_api_t *recd_api_create(const recd_config_t *config, const recd_logger_t *log, recd_metrics_t *metrics, recd_serve_t *serve,
                            recd_event_sink_t *events)
{
    recd_api_t *api = recd_xcalloc(1, sizeof(*api));
    api->config = config;
    api->log = log;
    api->metrics = metrics;
    api->serve = serve;
    api->events = events;
    api->storage_key = SIZE_MAX;
    pthread_mutex_init(&api->attach_mutex, NULL);
    api->events_accepted = recd_metrics_counter(metrics, "recd_events_accepted_total", "Events accepted by POST /v1/events.", NULL);
    recd_metric_set(recd_metrics_gauge(metrics, "recd_build_info", "Build information.", "version=\"" RECD_VERSION "\""), 1);
    return api;
}

void recd_api_free(recd_api_t *api)
{
    if (api == NULL)
        return;
    while (api->endpoints != NULL) {
        recd_api_endpoint_t *next = api->endpoints->next;
        free(api->endpoints->name);
        free(api->endpoints);
        api->endpoints = next;
    }
    pthread_mutex_destroy(&api->attach_mutex);
    free(api);
}

void recd_api_attach(recd_api_t *api, h2o_context_t *ctx, recd_serve_worker_t *sw, size_t slot)
{
    recd_api_context_t *actx = recd_xcalloc(1, sizeof(*actx));
    actx->api = api;
    actx->serve = sw;
    actx->slot = slot;
    h2o_multithread_register_receiver(ctx->queue, &actx->events_receiver, recd_api_on_events_message);
    pthread_mutex_lock(&api->attach_mutex);
    *h2o_context_get_storage(ctx, &api->storage_key, NULL) = actx;
    pthread_mutex_unlock(&api->attach_mutex);
}

size_t recd_api_pending(recd_api_t *api, h2o_context_t *ctx)
{
    recd_api_context_t *actx = *h2o_context_get_storage(ctx, &api->storage_key, NULL);
    return actx != NULL ? actx->pending_appends : 0;
}

void recd_api_detach(recd_api_t *api, h2o_context_t *ctx)
{
    void **slot = h2o_context_get_storage(ctx, &api->storage_key, NULL);
    recd_api_context_t *actx = *slot;
    if (actx == NULL)
        return;
    h2o_multithread_unregister_receiver(ctx->queue, &actx->events_receiver);
    *slot = NULL;
    free(actx);
}

void recd_api_register(h2o_hostconf_t *host, recd_api_t *api)
{
    recd_api_register_recommendations(h2o_config_register_path(host, "/v1/recommendations", 0), api);
    recd_api_register_similar(h2o_config_register_path(host, "/v1/items", 0), api);
    recd_api_register_events(h2o_config_register_path(host, "/v1/events", 0), api);
    recd_api_register_healthz(h2o_config_register_path(host, "/healthz", 0), api);
    recd_api_register_readyz(h2o_config_register_path(host, "/readyz", 0), api);
    recd_api_register_metrics(h2o_config_register_path(host, "/metrics", 0), api);
    api->other = recd_api_endpoint(api, "other");
    recd_api_register_not_found(h2o_config_register_path(host, "/", 0), api);
}
