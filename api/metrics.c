/* metrics.c: GET /metrics — Prometheus text rendered from the per-thread HTTP counters and the metrics registry. */
#include <stdlib.h>
#include <string.h>
#include "api/api_internal.h"

struct st_metrics_handler_t {
    h2o_handler_t super;
    recd_app_t *app;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_metrics_handler_t *h = (void *)self;
    recd_api_call_t call;
    h2o_iovec_t path = recd_api_path(req);

    recd_api_begin(&call, req, h->app, RECD_EP_METRICS);
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        recd_api_reply_not_found(&call);
        goto Exit;
    }
    if (recd_api_method_or_reply(req, RECD_API_GET) != 0)
        goto Exit;
    /* the HTTP counters, then every family other modules registered (the catalog's model loads and versions) */
    size_t http_len, families_len;
    char *http = recd_http_metrics_render(h->app->metrics, NULL, 0, &http_len);
    char *families = recd_metrics_render(h->app->metrics_registry, &families_len);
    size_t len = http_len + families_len;
    char *body = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(body, http, http_len);
    memcpy(body + http_len, families, families_len);
    free(http);
    free(families);
    recd_api_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
Exit:
    recd_api_end(&call);
    return 0;
}

void recd_api_register_metrics(h2o_pathconf_t *pathconf, recd_app_t *app)
{
    struct st_metrics_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->app = app;
}
