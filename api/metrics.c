/* metrics.c: GET /metrics — the Prometheus text of the process's metrics registry. */
#include <stdlib.h>
#include <string.h>
#include "api/api_internal.h"

struct st_metrics_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
    recd_api_endpoint_t *ep;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_metrics_handler_t *h = (void *)self;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->ep);
    h2o_iovec_t path = recd_api_path(req);

    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    if (recd_api_method_or_reply(req, RECD_API_GET) != 0)
        goto Exit;
    size_t len;
    char *text = recd_metrics_render(h->api->metrics, &len);
    char *body = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(body, text, len);
    free(text);
    recd_api_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
Exit:
    recd_api_end(call);
    return 0;
}

void recd_api_register_metrics(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    struct st_metrics_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h->ep = recd_api_endpoint(api, "metrics");
}
