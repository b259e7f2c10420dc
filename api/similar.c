/* similar.c: GET /v1/items/{id}/similar — parse, ask the pipeline for the items closest to an item, render. */
#include <string.h>
#include "base/error.h"
#include "api/api_internal.h"
#include "api/auth.h"

struct st_similar_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
    recd_api_endpoint_t *ep;
};

#define PREFIX "/v1/items/"
#define SUFFIX "/similar"
#define RETRY_AFTER_S "1" /* what a 503 for a full scoring queue tells the client to wait, in seconds */

/* A request waiting for its answer, in h2o shared memory of the request's pool: when h2o disposes the request first (the
 * client went away), on_pending_dispose cancels the context, so its late answer touches nothing of the request. */
typedef struct st_pending_t {
    recd_api_call_t *call;
    recd_serve_ctx_t *ctx; /* the request's reference, until the reply */
    h2o_iovec_t id;
    int in_call; /* recd_serve_similar has not returned yet */
} pending_t;

static void on_pending_dispose(void *p)
{
    pending_t *pd = p;
    if (pd->ctx != NULL) {
        recd_serve_ctx_cancel(pd->ctx);
        recd_serve_ctx_release(pd->ctx);
    }
}

static void reply(pending_t *pd)
{
    h2o_req_t *req = pd->call->req;
    const recd_serve_result_t *res = recd_serve_ctx_result(pd->ctx);
    recd_model_t *m = recd_serve_ctx_model(pd->ctx);

    if (res->err == RECD_EBUSY) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT(RETRY_AFTER_S));
        recd_api_reply_error(req, 503, "overloaded", "the scoring queue is full; retry later");
    } else if (res->err != 0 && m == NULL) {
        recd_api_reply_error(req, 503, "unavailable", "no model is loaded");
    } else if (res->err != 0) {
        recd_api_reply_error(req, 404, "not_found", "unknown item");
    } else {
        recd_api_item_t *out = h2o_mem_alloc_pool(&req->pool, sizeof(*out) * (res->n_items ? res->n_items : 1));
        for (size_t i = 0; i < res->n_items; ++i)
            out[i] = (recd_api_item_t){h2o_iovec_init(res->items[i].id, res->items[i].len), res->items[i].score};
        const char *name = recd_model_name(m);
        recd_jw_t jw;
        recd_jw_init_pool(&jw, &req->pool, 256 + res->n_items * 64 + pd->id.len * 6);
        recd_codec_render_similar(&jw, pd->id, h2o_iovec_init(name, strlen(name)), recd_model_version(m), out, res->n_items);
        recd_api_reply_json(req, 200, &jw);
    }
    recd_serve_ctx_release(pd->ctx);
    pd->ctx = NULL;
    recd_api_end(pd->call);
}

static void on_done(recd_serve_ctx_t *ctx, void *data)
{
    pending_t *pd = data;
    if (!pd->in_call)
        reply(pd); /* later, on this loop: otherwise the call below replies once recd_serve_similar returned */
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_similar_handler_t *h = (void *)self;
    const recd_config_t *cfg = h->api->config;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->ep);
    recd_api_error_t err;
    h2o_iovec_t path = recd_api_path(req), raw_id, id, q, model;
    uint32_t k;

    /* the id is taken from the raw path so an encoded '/' (%2F) stays part of it */
    if (path.len <= sizeof(PREFIX) - 1 + sizeof(SUFFIX) - 1 || memcmp(path.base, PREFIX, sizeof(PREFIX) - 1) != 0 ||
        memcmp(path.base + path.len - (sizeof(SUFFIX) - 1), SUFFIX, sizeof(SUFFIX) - 1) != 0 ||
        memchr(path.base + sizeof(PREFIX) - 1, '/', path.len - (sizeof(PREFIX) - 1) - (sizeof(SUFFIX) - 1)) != NULL) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    if (recd_api_authorize_or_reply(call, RECD_AUTH_SCOPE_RECS_READ) != 0)
        goto Exit;
    if (recd_api_method_or_reply(req, RECD_API_GET) != 0)
        goto Exit;
    raw_id = h2o_iovec_init(path.base + sizeof(PREFIX) - 1, path.len - (sizeof(PREFIX) - 1) - (sizeof(SUFFIX) - 1));
    if (recd_percent_decode(raw_id.base, raw_id.len, 0, &req->pool, &id) != 0) {
        recd_api_reply_error(req, 400, "invalid_argument", "malformed percent-encoding in the item id");
        goto Exit;
    }
    if (recd_api_check_id("item", id, &err) != 0) {
        recd_api_reply_api_error(req, &err);
        goto Exit;
    }
    q = recd_api_query(req);
    if (recd_codec_parse_similar_query(q.base, q.len, cfg->default_k, cfg->max_k, &req->pool, &k, &model, &err) != 0) {
        recd_api_reply_api_error(req, &err);
        goto Exit;
    }

    pending_t *pd = h2o_mem_alloc_shared(&req->pool, sizeof(*pd), on_pending_dispose);
    *pd = (pending_t){call, recd_serve_ctx_create(call->ctx->serve), id, 1};
    if (model.base != NULL && recd_serve_ctx_use_model(pd->ctx, model.base, model.len) != 0) {
        recd_api_reply_error(req, 404, "not_found", "no model named \"%.*s\" is served", (int)model.len, model.base);
        recd_serve_ctx_release(pd->ctx);
        pd->ctx = NULL;
        goto Exit;
    }
    int ret = recd_serve_similar(pd->ctx, id.base, id.len, k, on_done, pd);
    pd->in_call = 0;
    if (ret != RECD_SERVE_PENDING)
        reply(pd); /* ends the call */
    return 0;
Exit:
    recd_api_end(call);
    return 0;
}

void recd_api_register_similar(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    struct st_similar_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h->ep = recd_api_endpoint(api, "similar");
}
