/* recommendations.c: GET and POST /v1/recommendations and POST /v1/recommendations:batch — parse, run the serving pipeline
 * for each request, render the answers (a batch entry is rendered exactly as the single answer, by the same code). */
#include <string.h>
#include "base/error.h"
#include "api/api_internal.h"
#include "api/auth.h"

#define RETRY_AFTER_S "1"    /* what a 503 for a full scoring queue tells the client to wait, in seconds */
#define DEFAULT_IN_FLIGHT 32 /* entries of one batch in the pipeline at once, without a configured score_batch_max */

struct st_recommendations_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
    recd_api_endpoint_t *ep;
    int batch; /* the :batch endpoint */
};

/* One recommendation being answered: the request's only one, or one entry of a batch. */
typedef struct st_entry_t {
    struct st_answer_t *answer;
    recd_recs_request_t rq;
    recd_api_error_t err;  /* status 0: none (the entry parsed and was found) */
    recd_serve_ctx_t *ctx; /* the request's reference, from start until the reply is rendered */
} entry_t;

/*
 * The answer of one HTTP request, in h2o shared memory of the request's pool: when h2o disposes the request first (the
 * client went away), on_answer_dispose cancels every context still running, so their late answers touch nothing of it.
 */
typedef struct st_answer_t {
    recd_api_call_t *call;
    int batch;
    int advancing; /* inside advance(): completions that arrive at once leave the next step to it */
    int replied;
    size_t n, next, running, max_running;
    entry_t entries[];
} answer_t;

static void on_answer_dispose(void *p)
{
    answer_t *a = p;
    for (size_t i = 0; i < a->n; ++i) {
        if (a->entries[i].ctx != NULL) {
            recd_serve_ctx_cancel(a->entries[i].ctx);
            recd_serve_ctx_release(a->entries[i].ctx);
        }
    }
}

/* Renders one entry's answer object (or its error object) into jw; returns its HTTP status; *busy for a full scoring queue. */
static int render_entry(recd_jw_t *jw, h2o_mem_pool_t *pool, const entry_t *e, int *busy)
{
    if (e->err.status != 0) {
        recd_codec_render_error(jw, e->err.code, e->err.message);
        return e->err.status;
    }
    const recd_serve_result_t *res = recd_serve_ctx_result(e->ctx);
    recd_model_t *m = recd_serve_ctx_model(e->ctx);
    if (res->err == RECD_EBUSY) {
        *busy = 1;
        recd_codec_render_error(jw, "overloaded", "the scoring queue is full; retry later");
        return 503;
    }
    if (res->err != 0) {
        recd_codec_render_error(jw, "unavailable", "no model is loaded");
        return 503;
    }
    recd_api_item_t *out = h2o_mem_alloc_pool(pool, sizeof(*out) * (res->n_items ? res->n_items : 1));
    for (size_t i = 0; i < res->n_items; ++i)
        out[i] = (recd_api_item_t){h2o_iovec_init(res->items[i].id, res->items[i].len), res->items[i].score};
    h2o_iovec_t *ignored = NULL;
    if (res->n_ignored > 0) {
        ignored = h2o_mem_alloc_pool(pool, sizeof(*ignored) * res->n_ignored);
        for (size_t i = 0; i < res->n_ignored; ++i)
            ignored[i] = h2o_iovec_init(res->ignored[i].base, res->ignored[i].len);
    }
    const char *name = recd_model_name(m);
    recd_codec_render_recs(jw, h2o_iovec_init(res->request_id, strlen(res->request_id)), e->rq.user,
                           h2o_iovec_init(name, strlen(name)), recd_model_version(m), res->experiment, res->arm, out, res->n_items,
                           res->fallback, res->search, ignored, res->n_ignored);
    return 200;
}

static size_t answer_size_hint(const answer_t *a)
{
    size_t bytes = 64;
    for (size_t i = 0; i < a->n; ++i)
        bytes += 256 + a->entries[i].rq.k * 64 + a->entries[i].rq.user.len * 6;
    return bytes;
}

/* Every entry is done: reply (the single answer, or {"results":[...]} in request order), then drop the contexts. */
static void reply(answer_t *a)
{
    h2o_req_t *req = a->call->req;
    recd_jw_t jw;
    int busy = 0, status;

    recd_jw_init_pool(&jw, &req->pool, answer_size_hint(a));
    if (!a->batch) {
        status = render_entry(&jw, &req->pool, &a->entries[0], &busy);
    } else {
        recd_jw_lit(&jw, "{\"results\":[");
        for (size_t i = 0; i < a->n; ++i) {
            if (i != 0)
                recd_jw_lit(&jw, ",");
            render_entry(&jw, &req->pool, &a->entries[i], &busy);
        }
        recd_jw_lit(&jw, "]}");
        status = 200;
    }
    if (busy && status == 503)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT(RETRY_AFTER_S));
    a->replied = 1;
    for (size_t i = 0; i < a->n; ++i) {
        recd_serve_ctx_release(a->entries[i].ctx);
        a->entries[i].ctx = NULL;
    }
    recd_api_reply_json(req, status, &jw);
    recd_api_end(a->call);
}

/* Copies the parsed id lists into pipeline ids (pointers only: the strings stay in the request pool until the call). */
static recd_serve_id_t *to_ids(h2o_mem_pool_t *pool, const h2o_iovec_t *v, size_t n)
{
    recd_serve_id_t *ids = h2o_mem_alloc_pool(pool, sizeof(*ids) * (n ? n : 1));
    for (size_t i = 0; i < n; ++i)
        ids[i] = recd_api_id(v[i]);
    return ids;
}

static void advance(answer_t *a);

static void on_entry_done(recd_serve_ctx_t *ctx, void *data)
{
    entry_t *e = data;
    --e->answer->running;
    advance(e->answer);
}

/* Runs the pipeline for one entry; its completion (at once or later) comes to on_entry_done. */
static void start_entry(answer_t *a, entry_t *e)
{
    h2o_req_t *req = a->call->req;
    const recd_recs_request_t *rq = &e->rq;
    recd_serve_recs_request_t srq = {recd_api_id(rq->user), rq->k, NULL, rq->n_recent, NULL, rq->n_exclude, rq->search};

    if (e->err.status != 0)
        return;
    if (rq->n_recent > 0)
        srq.recent = to_ids(&req->pool, rq->recent_items, rq->n_recent);
    if (rq->n_exclude > 0)
        srq.exclude = to_ids(&req->pool, rq->exclude, rq->n_exclude);
    e->ctx = recd_serve_ctx_create(a->call->ctx->serve);
    if (rq->model.base != NULL && recd_serve_ctx_use_model(e->ctx, rq->model.base, rq->model.len) != 0) {
        recd_api_error_set(&e->err, 404, "not_found", "no model named \"%.*s\" is served", (int)rq->model.len, rq->model.base);
        recd_serve_ctx_release(e->ctx);
        e->ctx = NULL;
        return;
    }
    ++a->running;
    recd_serve_recommend(e->ctx, &srq, on_entry_done, e);
}

/* Starts entries while fewer than max_running run, and replies once all are done. */
static void advance(answer_t *a)
{
    if (a->advancing)
        return; /* a completion that came at once, inside the loop below: the loop goes on */
    a->advancing = 1;
    while (a->next < a->n && a->running < a->max_running)
        start_entry(a, &a->entries[a->next++]);
    a->advancing = 0;
    if (a->next == a->n && a->running == 0 && !a->replied)
        reply(a);
}

/* Answers the parsed requests rqs (errs: their parse errors, or NULL); ends the call once the reply is sent. */
static void recommend(recd_api_call_t *call, int batch, const recd_recs_request_t *rqs, const recd_api_error_t *errs, size_t n)
{
    const recd_config_t *cfg = call->api->config;
    answer_t *a = h2o_mem_alloc_shared(&call->req->pool, sizeof(*a) + sizeof(entry_t) * n, on_answer_dispose);
    *a = (answer_t){call, batch, 0, 0, n, 0, 0, cfg->score_batch_max > 0 ? cfg->score_batch_max : DEFAULT_IN_FLIGHT};
    for (size_t i = 0; i < n; ++i) {
        a->entries[i] = (entry_t){a, rqs[i], {0}, NULL};
        if (errs != NULL)
            a->entries[i].err = errs[i];
    }
    advance(a);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_recommendations_handler_t *h = (void *)self;
    const recd_config_t *cfg = h->api->config;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->ep);
    recd_recs_request_t rq, *rqs;
    recd_api_error_t err, *errs;
    h2o_iovec_t path = recd_api_path(req);
    size_t n;

    if (!h->batch ? !h2o_memis(path.base, path.len, H2O_STRLIT("/v1/recommendations"))
                  : !h2o_memis(path.base, path.len, H2O_STRLIT("/v1/recommendations:batch"))) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    if (recd_api_authorize_or_reply(call, RECD_AUTH_SCOPE_RECS_READ) != 0)
        goto Exit;
    if (recd_api_method_or_reply(req, h->batch ? RECD_API_POST : RECD_API_GET | RECD_API_POST) != 0)
        goto Exit;
    if (h->batch) {
        if (recd_api_json_body_or_reply(req, cfg->max_body_bytes) != 0)
            goto Exit;
        if (recd_codec_parse_recs_batch(req->entity.base, req->entity.len, cfg->default_k, cfg->max_k, &req->pool, &rqs, &errs, &n,
                                        &err) != 0) {
            recd_api_reply_api_error(req, &err);
            goto Exit;
        }
        recommend(call, 1, rqs, errs, n); /* ends the call when the answer is sent */
        return 0;
    }
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
    recommend(call, 0, &rq, NULL, 1); /* ends the call when the answer is sent */
    return 0;
Exit:
    recd_api_end(call);
    return 0;
}

static void register_handler(h2o_pathconf_t *pathconf, recd_api_t *api, const char *endpoint, int batch)
{
    struct st_recommendations_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h->ep = recd_api_endpoint(api, endpoint);
    h->batch = batch;
}

void recd_api_register_recommendations(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    register_handler(pathconf, api, "recommendations", 0);
}

void recd_api_register_recommendations_batch(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    register_handler(pathconf, api, "recommendations_batch", 1);
}
