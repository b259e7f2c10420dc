/* health.c: GET /healthz (the process answers, with its pid) and GET /readyz (a model is loaded and the server is not shutting
 * down). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "api/api_internal.h"

struct st_health_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
    recd_api_endpoint_t *ep;
    int ready; /* 0: /healthz, 1: /readyz */
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_health_handler_t *h = (void *)self;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->ep);
    h2o_iovec_t path = recd_api_path(req);

    if (!(h->ready ? h2o_memis(path.base, path.len, H2O_STRLIT("/readyz"))
                   : h2o_memis(path.base, path.len, H2O_STRLIT("/healthz")))) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    if (recd_api_method_or_reply(req, RECD_API_GET) != 0)
        goto Exit;
    if (!h->ready) {
        /* the pid lets a caller (the test harness) tell that the answer comes from the process it started */
        char body[48];
        int len = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"pid\":%ld}", (long)getpid());
        recd_api_reply(req, 200, "application/json", h2o_strdup(&req->pool, body, (size_t)len).base, (size_t)len);
        goto Exit;
    }
    recd_model_t *m = recd_serve_worker_model(call->ctx->serve);
    recd_jw_t jw;
    recd_jw_init_pool(&jw, &req->pool, 128);
    if (m == NULL || req->conn->ctx->shutdown_requested) {
        recd_jw_lit(&jw, "{\"status\":\"not_ready\",\"reason\":");
        if (m == NULL)
            recd_jw_lit(&jw, "\"no model loaded\"}");
        else
            recd_jw_lit(&jw, "\"shutting down\"}");
        recd_api_reply_json(req, 503, &jw);
        goto Exit;
    }
    char version[24];
    int vlen = snprintf(version, sizeof(version), "@%llu", (unsigned long long)recd_model_version(m));
    const char *name = recd_model_name(m);
    recd_jw_lit(&jw, "{\"status\":\"ready\",\"model\":");
    size_t nlen = strlen(name);
    char *full = h2o_mem_alloc_pool(&req->pool, nlen + (size_t)vlen);
    memcpy(full, name, nlen);
    memcpy(full + nlen, version, (size_t)vlen);
    recd_jw_str(&jw, full, nlen + (size_t)vlen);
    recd_jw_lit(&jw, "}");
    recd_api_reply_json(req, 200, &jw);
Exit:
    recd_api_end(call);
    return 0;
}

static void register_health(h2o_pathconf_t *pathconf, recd_api_t *api, int ready)
{
    struct st_health_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h->ep = recd_api_endpoint(api, ready ? "readyz" : "healthz");
    h->ready = ready;
}

void recd_api_register_healthz(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    register_health(pathconf, api, 0);
}

void recd_api_register_readyz(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    register_health(pathconf, api, 1);
}
