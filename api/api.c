/* api.c: registers every endpoint on a host, and the catch-all that answers unknown paths with a JSON 404. */
#include "api/api_internal.h"

struct st_not_found_handler_t {
    h2o_handler_t super;
    recd_app_t *app;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_not_found_handler_t *h = (void *)self;
    recd_api_call_t call;
    recd_api_begin(&call, req, h->app, RECD_EP_OTHER);
    recd_api_reply_not_found(&call);
    recd_api_end(&call);
    return 0;
}

void recd_api_register_not_found(h2o_pathconf_t *pathconf, recd_app_t *app)
{
    struct st_not_found_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->app = app;
}

void recd_api_register(h2o_hostconf_t *host, recd_app_t *app)
{
    recd_api_register_recommendations(h2o_config_register_path(host, "/v1/recommendations", 0), app);
    recd_api_register_similar(h2o_config_register_path(host, "/v1/items", 0), app);
    recd_api_register_events(h2o_config_register_path(host, "/v1/events", 0), app);
    recd_api_register_healthz(h2o_config_register_path(host, "/healthz", 0), app);
    recd_api_register_readyz(h2o_config_register_path(host, "/readyz", 0), app);
    recd_api_register_metrics(h2o_config_register_path(host, "/metrics", 0), app);
    recd_api_register_not_found(h2o_config_register_path(host, "/", 0), app);
}
