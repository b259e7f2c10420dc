/* recommendations.c: GET and POST /v1/recommendations — parse, run the serving pipeline, render its answer. */
#include <string.h>
#include "base/error.h"
#include "api/api_internal.h"
#include "api/auth.h"

struct st_recommendations_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
    recd_api_endpoint_t *ep;
};

/* A request waiting for the pipeline. guard lives in the request's pool: when h2o disposes the request first (the client
 * went away), its dispose callback cancels the context, so the late answer touches nothing of the request. */
typedef struct st_pending_t {
    recd_api_call_t *call;
    recd_serve_ctx_t *ctx;
    recd_recs_request_t rq;
    recd_serve_ctx_t **guard; /* set only when the answer did not come at once */
} pending_t;

static void on_guard_dispose(void *p)
{
    recd_serve_ctx_t **guard = p;
    if (*guard != NULL) {
        recd_serve_ctx_cancel(*guard);
        recd_serve_ctx_release(*guard);
    }
}

static void render(pending_t *p)
{
    h2o_req_t *req = p->call->req;
    const recd_serve_result_t *res = recd_serve_ctx_result(p->ctx);
    recd_model_t *m = recd_serve_ctx_model(p->ctx);

    if (res->err != 0) {
        recd_api_reply_error(req, 503, "unavailable", "no model is loaded");
        return;
    }
    recd_api_item_t *out = h2o_mem_alloc_pool(&req->pool, sizeof(*out) * (res->n_items ? res->n_items : 1));
    for (size_t i = 0; i < res->n_items; ++i)
        out[i] = (recd_api_item_t){h2o_iovec_init(res->items[i].id, res->items[i].len), res->items[i].score};
    h2o_iovec_t *ignored = NULL;
    if (res->n_ignored > 0) {
        ignored = h2o_mem_alloc_pool(&req->pool, sizeof(*ignored) * res->n_ignored);
        for (size_t i = 0; i < res->n_ignored; ++i)
            ignored[i] = h2o_iovec_init(res->ignored[i].base, res->ignored[i].len);
    }
    const char *name = recd_model_name(m);
    recd_jw_t jw;
    recd_jw_init_pool(&jw, &req->pool, 256 + res->n_items * 64 + p->rq.user.len * 6);
    recd_codec_render_recs(&jw, h2o_iovec_init(res->request_id, strlen(res->request_id)), p->rq.user,
                           h2o_iovec_init(name, strlen(name)), recd_model_version(m), res->experiment, res->arm, out, res->n_items,
                           res->fallback, ignored, res->n_ignored);
    recd_api_reply_json(req, 200, &jw);
}

static void on_done(recd_serve_ctx_t *ctx, void *data)
{
    pending_t *p = data;
    render(p);
    recd_api_end(p->call);
    if (p->guard != NULL) {
        /* the request no longer waits: its guard must not cancel, and the reference it held is dropped here */
        *p->guard = NULL;
        recd_serve_ctx_release(ctx);
    }
}

/* Copies the parsed id lists into pipeline ids (pointers only: the strings stay in the request pool until the call). */
static recd_serve_id_t *to_ids(h2o_mem_pool_t *pool, const h2o_iovec_t *v, size_t n)
{
    recd_serve_id_t *ids = h2o_mem_alloc_pool(pool, sizeof(*ids) * (n ? n : 1));
    for (size_t i = 0; i < n; ++i)
        ids[i] = recd_api_id(v[i]);
    return ids;
}

static void recommend(recd_api_call_t *call, const recd_recs_request_t *rq)
{
    h2o_req_t *req = call->req;
    pending_t *p = h2o_mem_alloc_pool(&req->pool, sizeof(*p));
    recd_serve_recs_request_t srq = {recd_api_id(rq->user), rq->k, NULL, rq->n_recent, NULL, rq->n_exclude};

    if (rq->n_recent > 0)
        srq.recent = to_ids(&req->pool, rq->recent_items, rq->n_recent);
    if (rq->n_exclude > 0)
        srq.exclude = to_ids(&req->pool, rq->exclude, rq->n_exclude);
    *p = (pending_t){call, recd_serve_ctx_create(call->ctx->serve), *rq, NULL};
    if (rq->model.base != NULL && recd_serve_ctx_use_model(p->ctx, rq->model.base, rq->model.len) != 0) {
        recd_api_reply_error(req, 404, "not_found", "no model named \"%.*s\" is served", (int)rq->model.len, rq->model.base);
        recd_serve_ctx_release(p->ctx);
        recd_api_end(call);
        return;
    }
    if (recd_serve_recommend(p->ctx, &srq, on_done, p) == RECD_SERVE_PENDING) {
        /* the context outlives this call: the guard holds the request's reference on it until on_done or disposal */
        p->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*p->guard), on_guard_dispose);
        *p->guard = p->ctx;
        return;
    }
    recd_serve_ctx_release(p->ctx);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_recommendations_handler_t *h = (void *)self;
    const recd_config_t *cfg = h->api->config;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->ep);
    recd_recs_request_t rq;
    recd_api_error_t err;
    h2o_iovec_t path = recd_api_path(req);

    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/v1/recommendations"))) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    if (recd_api_authorize_or_reply(call, RECD_AUTH_SCOPE_RECS_READ) != 0)
        goto Exit;
    if (recd_api_method_or_reply(req, RECD_API_GET | RECD_API_POST) != 0)
        goto Exit;
    if (req->method.len == 3) {
        h2o_iovec_t q = recd_api_query(req);
        if (recd_codec_parse_recs_query(q.base, q.len, cfg->default_k, cfg->max_k, &req->pool, &rq, &err) != 0) {
            recd_api_reply_api_error(req, &err);
            goto Exit;
        }
    } else {
        if (recd_api_json_body_or_reply(req, cfg->max_body_bytes) != 0)
            goto Exit;
        if (recd_codec_parse_recs_body(req->entity.base, req->entity.len, cfg->default_k, cfg->max_k, &req->pool, &rq, &err) != 0) {
            recd_api_reply_api_error(req, &err);
            goto Exit;
        }
    }
    recommend(call, &rq); /* ends the call when the answer is sent */
    return 0;
Exit:
    recd_api_end(call);
    return 0;
}

void recd_api_register_recommendations(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    struct st_recommendations_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h->ep = recd_api_endpoint(api, "recommendations");
}
