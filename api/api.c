/* api.c: the API object, binding worker contexts to it, every endpoint's registration, and the JSON 404 catch-all. */
#include <stdlib.h>
#include "base/alloc.h"
#include "api/api_internal.h"
#include "api/auth.h"

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
    api->admin = recd_api_admin_start();
    return api;
}

int recd_api_enable_control(recd_api_t *api, recd_catalog_loader_t *catalog, char *err, size_t errlen)
{
    const recd_config_t *c = api->config;
    api->catalog = catalog;
    if (c->jwt_hs256_secret_file[0] == '\0' && c->jwt_rs256_public_key[0] == '\0')
        return RECD_OK;
    if ((api->auth = recd_auth_create_from_files(c->jwt_hs256_secret_file, c->jwt_rs256_public_key, c->jwt_clock_skew_s, err,
                                                 errlen)) == NULL)
        return RECD_EINVAL;
    return RECD_OK;
}

void recd_api_free(recd_api_t *api)
{
    if (api == NULL)
        return;
    recd_api_admin_stop(api->admin);
    recd_auth_free(api->auth);
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
    h2o_multithread_register_receiver(ctx->queue, &actx->admin_receiver, recd_api_on_admin_message);
    actx->auth_cache = recd_auth_cache_create();
    pthread_mutex_lock(&api->attach_mutex);
    *h2o_context_get_storage(ctx, &api->storage_key, NULL) = actx;
    pthread_mutex_unlock(&api->attach_mutex);
}

size_t recd_api_pending(recd_api_t *api, h2o_context_t *ctx)
{
    recd_api_context_t *actx = *h2o_context_get_storage(ctx, &api->storage_key, NULL);
    return actx != NULL ? actx->pending_appends + actx->pending_admin : 0;
}

void recd_api_detach(recd_api_t *api, h2o_context_t *ctx)
{
    void **slot = h2o_context_get_storage(ctx, &api->storage_key, NULL);
    recd_api_context_t *actx = *slot;
    if (actx == NULL)
        return;
    h2o_multithread_unregister_receiver(ctx->queue, &actx->events_receiver);
    h2o_multithread_unregister_receiver(ctx->queue, &actx->admin_receiver);
    recd_auth_cache_free(actx->auth_cache);
    *slot = NULL;
    free(actx);
}

void recd_api_register(h2o_hostconf_t *host, recd_api_t *api)
{
    recd_api_register_recommendations(h2o_config_register_path(host, "/v1/recommendations", 0), api);
    recd_api_register_recommendations_batch(h2o_config_register_path(host, "/v1/recommendations:batch", 0), api);
    recd_api_register_similar(h2o_config_register_path(host, "/v1/items", 0), api);
    recd_api_register_events(h2o_config_register_path(host, "/v1/events", 0), api);
    recd_api_register_healthz(h2o_config_register_path(host, "/healthz", 0), api);
    recd_api_register_readyz(h2o_config_register_path(host, "/readyz", 0), api);
    recd_api_register_metrics(h2o_config_register_path(host, "/metrics", 0), api);
    recd_api_register_models(h2o_config_register_path(host, "/v1/models", 0), api);
    recd_api_register_experiments(h2o_config_register_path(host, "/v1/experiments", 0), api);
    api->other = recd_api_endpoint(api, "other");
    recd_api_register_not_found(h2o_config_register_path(host, "/", 0), api);
}
