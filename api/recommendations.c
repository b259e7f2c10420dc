/* recommendations.c: GET and POST /v1/recommendations — exact top-k for a known, folded-in or popular-fallback user. */
#include <math.h>
#include <string.h>
#include "api/api_internal.h"

struct st_recommendations_handler_t {
    h2o_handler_t super;
    recd_app_t *app;
};

static void exclude_ids(const recd_model_t *m, float *scores, const h2o_iovec_t *ids, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        int64_t idx = recd_model_find_item(m, ids[i].base, ids[i].len);
        if (idx >= 0)
            scores[idx] = -INFINITY;
    }
}

static void recommend(recd_api_call_t *call, const recd_recs_request_t *rq)
{
    h2o_req_t *req = call->req;
    recd_worker_state_t *w = call->worker;
    recd_model_t *m = recd_worker_model(w);
    size_t n_items = recd_model_n_items(m);
    uint32_t nf = recd_model_n_factors(m);
    uint64_t version = recd_model_version(m);
    int64_t user = recd_model_find_user(m, rq->user.base, rq->user.len);
    recd_user_snapshot_t snap;
    int has_state = recd_userstate_get(call->app->users, rq->user.base, rq->user.len, version, nf, &req->pool, &snap) == 0;
    const float *vec = NULL;
    const char *fallback = "popular";
    h2o_iovec_t *ignored = NULL;
    size_t n_ignored = 0;

    /* unknown recent items are reported whatever the user turns out to be */
    if (rq->n_recent > 0) {
        ignored = h2o_mem_alloc_pool(&req->pool, sizeof(*ignored) * rq->n_recent);
        for (size_t i = 0; i < rq->n_recent; ++i)
            if (recd_model_find_item(m, rq->recent_items[i].base, rq->recent_items[i].len) < 0)
                ignored[n_ignored++] = rq->recent_items[i];
    }

    if (nf == 0) {
        if (user >= 0 || has_state)
            fallback = "none";
    } else if (has_state) {
        if (snap.vec != NULL) {
            vec = snap.vec;
        } else {
            float *folded = h2o_mem_alloc_pool(&req->pool, sizeof(float) * nf);
            if (recd_api_fold_user(m, user, snap.items, snap.n_items, &req->pool, folded) == 0) {
                recd_userstate_set_vector(call->app->users, rq->user.base, rq->user.len, snap.seq, version, folded, nf);
                vec = folded;
            } else if (user >= 0) {
                vec = recd_model_user_vector(m, (uint32_t)user);
            }
        }
        if (vec != NULL)
            fallback = user >= 0 ? "none" : "fold_in";
    } else if (user >= 0) {
        vec = recd_model_user_vector(m, (uint32_t)user);
        fallback = "none";
    } else if (rq->n_recent > 0) {
        recd_user_item_t *extra = h2o_mem_alloc_pool(&req->pool, sizeof(*extra) * rq->n_recent);
        float *folded = h2o_mem_alloc_pool(&req->pool, sizeof(float) * nf);
        for (size_t i = 0; i < rq->n_recent; ++i)
            extra[i] = (recd_user_item_t){rq->recent_items[i], 1.0f};
        if (recd_api_fold_user(m, -1, extra, rq->n_recent, &req->pool, folded) == 0) {
            vec = folded;
            fallback = "fold_in";
        }
    }

    float *scores = w->scores;
    if (vec != NULL)
        recd_model_score(m, vec, user, scores); /* user is -1 when unknown to the artifact */
    else
        memcpy(scores, recd_model_popularity(m), sizeof(float) * n_items);

    /* everything the user interacted with, plus the request's own exclusions */
    if (user >= 0) {
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(m, (uint32_t)user, &items, &values, &n);
        for (size_t i = 0; i < n; ++i)
            scores[items[i]] = -INFINITY;
    }
    if (has_state) {
        for (size_t i = 0; i < snap.n_items; ++i) {
            int64_t idx = recd_model_find_item(m, snap.items[i].item.base, snap.items[i].item.len);
            if (idx >= 0)
                scores[idx] = -INFINITY;
        }
    }
    exclude_ids(m, scores, rq->recent_items, rq->n_recent);
    exclude_ids(m, scores, rq->exclude, rq->n_exclude);

    size_t n = recd_topk(scores, n_items, rq->k, w->top);
    recd_api_item_t *out = h2o_mem_alloc_pool(&req->pool, sizeof(*out) * (n ? n : 1));
    size_t idlen;
    for (size_t i = 0; i < n; ++i) {
        const char *id = recd_model_item_id(m, w->top[i].index, &idlen);
        out[i] = (recd_api_item_t){h2o_iovec_init(id, idlen), w->top[i].score};
    }

    const char *name = recd_model_name(m);
    recd_jw_t jw;
    recd_jw_init_pool(&jw, &req->pool, 256 + n * 64 + rq->user.len * 6);
    recd_codec_render_recs(&jw, recd_api_request_id(w, &req->pool), rq->user, h2o_iovec_init(name, strlen(name)), version, out, n,
                           fallback, ignored, n_ignored);
    recd_api_reply_json(req, 200, &jw);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_recommendations_handler_t *h = (void *)self;
    const recd_config_t *cfg = h->app->config;
    recd_api_call_t call;
    recd_recs_request_t rq;
    recd_api_error_t err;
    h2o_iovec_t path = recd_api_path(req);

    recd_api_begin(&call, req, h->app, RECD_EP_RECOMMENDATIONS);
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/v1/recommendations"))) {
        recd_api_reply_not_found(&call);
        goto Exit;
    }
    if (recd_api_method_or_reply(req, RECD_API_GET | RECD_API_POST) != 0)
        goto Exit;
    if (req->method.len == 3) {
        h2o_iovec_t q = recd_api_query(req);
        if (recd_codec_parse_recs_query(q.base, q.len, cfg->default_k, cfg->max_k, &req->pool, &rq, &err) != 0) {
            recd_api_reply_api_error(req, &err);
            goto Exit;
        }
    } else {
        if (recd_api_json_body_or_reply(req, h->app) != 0)
            goto Exit;
        if (recd_codec_parse_recs_body(req->entity.base, req->entity.len, cfg->default_k, cfg->max_k, &req->pool, &rq, &err) != 0) {
            recd_api_reply_api_error(req, &err);
            goto Exit;
        }
    }
    recommend(&call, &rq);
Exit:
    recd_api_end(&call);
    return 0;
}

void recd_api_register_recommendations(h2o_pathconf_t *pathconf, recd_app_t *app)
{
    struct st_recommendations_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->app = app;
}
