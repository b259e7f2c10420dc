/* recommend.c: the recommendation pipeline — route, version, user vector, score, exclude and filter, rank, top-k — and the
 * stage that runs a context's scan on the scoring pool and completes it back on its worker (similar items use it too). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "models/ann.h"
#include "serve/fold.h"
#include "serve/serve_internal.h"

static char *copy_id(recd_serve_ctx_t *ctx, recd_serve_id_t id)
{
    char *p = recd_serve_ctx_alloc(ctx, id.len + 1);
    memcpy(p, id.base, id.len);
    p[id.len] = '\0';
    return p;
}

/* Resolves ids to indexes of the context's version, keeping the known ones in order; unknown ones go to unknown (if any). */
static uint32_t *resolve_ids(recd_serve_ctx_t *ctx, const recd_serve_id_t *ids, size_t n, size_t *n_known, recd_serve_id_t *unknown,
                             size_t *n_unknown)
{
    uint32_t *known = recd_serve_ctx_alloc(ctx, sizeof(uint32_t) * (n ? n : 1));
    *n_known = 0;
    for (size_t i = 0; i < n; ++i) {
        int64_t idx = recd_model_find_item(ctx->model, ids[i].base, ids[i].len);
        if (idx >= 0)
            known[(*n_known)++] = (uint32_t)idx;
        else if (unknown != NULL)
            unknown[(*n_unknown)++] = (recd_serve_id_t){copy_id(ctx, ids[i]), ids[i].len};
    }
    return known;
}

void recd_serve_finish(recd_serve_ctx_t *ctx)
{
    ctx->timing.done_ns = recd_monotonic_ns();
    recd_serve_count_arm(ctx);
    if (!ctx->cancelled && ctx->done_cb != NULL)
        ctx->done_cb(ctx, ctx->done_data);
}

/* Stage 2, version: the context holds its version since it was created; every id of the request is resolved against it,
 * once. Returns 0, or RECD_ENOTFOUND when no version is loaded. */
static int stage_version(recd_serve_ctx_t *ctx, const recd_serve_recs_request_t *rq)
{
    recd_model_t *m = ctx->model;
    if (m == NULL)
        return RECD_ENOTFOUND;
    ctx->k = rq->k < ctx->worker->serve->config.max_k ? rq->k : ctx->worker->serve->config.max_k;
    ctx->search = rq->search;
    ctx->user = (recd_serve_id_t){copy_id(ctx, rq->user), rq->user.len};
    ctx->user_index = recd_model_find_user(m, rq->user.base, rq->user.len);
    if (ctx->user_index >= 0) {
        const float *values;
        recd_model_user_items(m, (uint32_t)ctx->user_index, &ctx->excluded[RECD_SERVE_EXCL_TRAINED].v, &values,
                              &ctx->excluded[RECD_SERVE_EXCL_TRAINED].n);
    }
    /* unknown recent items are reported whatever the user turns out to be */
    ctx->n_recent = rq->n_recent;
    recd_serve_id_t *ignored = NULL;
    if (rq->n_recent > 0)
        ignored = recd_serve_ctx_alloc(ctx, sizeof(*ignored) * rq->n_recent);
    ctx->recent_known = resolve_ids(ctx, rq->recent, rq->n_recent, &ctx->n_recent_known, ignored, &ctx->result.n_ignored);
    ctx->result.ignored = ignored;
    ctx->excluded[RECD_SERVE_EXCL_RECENT] = (recd_serve_index_list_t){ctx->recent_known, ctx->n_recent_known};
    ctx->excluded[RECD_SERVE_EXCL_REQUEST].v =
        resolve_ids(ctx, rq->exclude, rq->n_exclude, &ctx->excluded[RECD_SERVE_EXCL_REQUEST].n, NULL, NULL);
    return 0;
}

static void on_state(void *data, int err);
static int after_state(recd_serve_ctx_t *ctx, int err);

/* Stage 3, user vector, first half: ask the feature store what it remembers of the user. */
static int stage_user_vector(recd_serve_ctx_t *ctx)
{
    recd_feature_query_t q = {ctx->user.base,       ctx->user.len, recd_model_version(ctx->model), recd_model_n_factors(ctx->model),
                              recd_serve_ctx_alloc, ctx,           recd_model_name(ctx->model)};
    int ret = recd_feature_store_get(ctx->worker->serve->store, &q, &ctx->state, on_state, ctx);
    if (ret == RECD_FEATURE_PENDING) {
        recd_serve_ctx_retain(ctx); /* the pending lookup's reference */
        return RECD_SERVE_PENDING;
    }
    return after_state(ctx, ret);
}

static void on_state(void *data, int err)
{
    recd_serve_ctx_t *ctx = data;
    if (!ctx->cancelled)
        after_state(ctx, err);
    recd_serve_ctx_release(ctx);
}

static const float *user_vector_from_state(recd_serve_ctx_t *ctx, const float *weights, size_t n_known)
{
    recd_model_t *m = ctx->model;
    uint32_t nf = recd_model_n_factors(m);
    if (ctx->state.vec != NULL)
        return ctx->state.vec;
    float *folded = recd_serve_ctx_alloc(ctx, sizeof(float) * nf);
    if (recd_serve_fold_user(m, ctx->user_index, ctx->excluded[RECD_SERVE_EXCL_REMEMBERED].v, weights, n_known,
                             recd_serve_ctx_alloc, ctx, folded) == 0) {
        /* stored back, so the user is folded once per version and state, whichever thread asks next */
        recd_feature_store_put_vector(ctx->worker->serve->store, ctx->user.base, ctx->user.len, ctx->state.seq, recd_model_name(m),
                                      recd_model_version(m), folded, nf);
        return folded;
    }
    return ctx->user_index >= 0 ? recd_model_user_vector(m, (uint32_t)ctx->user_index) : NULL;
}

/* Stage 3, second half: choose the vector to score. err is the store's answer (0: ctx->state holds the user's state). */
static void choose_vector(recd_serve_ctx_t *ctx, int err)
{
    recd_model_t *m = ctx->model;
    uint32_t nf = recd_model_n_factors(m);
    int has_state = err == 0;

    ctx->result.fallback = "popular";
    if (has_state) {
        /* the remembered items known to this version: excluded, and folded in with their weights */
        uint32_t *idx = recd_serve_ctx_alloc(ctx, sizeof(uint32_t) * (ctx->state.n_items ? ctx->state.n_items : 1));
        float *weights = recd_serve_ctx_alloc(ctx, sizeof(float) * (ctx->state.n_items ? ctx->state.n_items : 1));
        size_t n = 0;
        for (size_t i = 0; i < ctx->state.n_items; ++i) {
            int64_t j = recd_model_find_item(m, ctx->state.items[i].id, ctx->state.items[i].len);
            if (j >= 0) {
                idx[n] = (uint32_t)j;
                weights[n++] = ctx->state.items[i].weight;
            }
        }
        ctx->excluded[RECD_SERVE_EXCL_REMEMBERED] = (recd_serve_index_list_t){idx, n};
        if (nf == 0) {
            ctx->result.fallback = "none";
        } else if ((ctx->vec = user_vector_from_state(ctx, weights, n)) != NULL) {
            ctx->result.fallback = ctx->user_index >= 0 ? "none" : "fold_in";
        }
    } else if (ctx->user_index >= 0) {
        if (nf != 0)
            ctx->vec = recd_model_user_vector(m, (uint32_t)ctx->user_index);
        ctx->result.fallback = "none";
    } else if (nf != 0 && ctx->n_recent > 0) {
        float *ones = recd_serve_ctx_alloc(ctx, sizeof(float) * (ctx->n_recent_known ? ctx->n_recent_known : 1));
        float *folded = recd_serve_ctx_alloc(ctx, sizeof(float) * nf);
        for (size_t i = 0; i < ctx->n_recent_known; ++i)
            ones[i] = 1.0f;
        if (recd_serve_fold_user(m, -1, ctx->recent_known, ones, ctx->n_recent_known, recd_serve_ctx_alloc, ctx, folded) == 0) {
            ctx->vec = folded;
            ctx->result.fallback = "fold_in";
        }
    }
}

/* Stage 6, rank: recd has no ranker yet, so the scores are the ranking. A re-ranker goes here, on the top candidates of the
 * scan (oversampled), before the answer is copied. */
static void stage_rank(recd_serve_ctx_t *ctx)
{
}

int recd_serve_version_has_index(const recd_model_t *m)
{
    return recd_model_ann(m) != NULL; /* recd-train --ann ivf stores one in the artifact */
}

/* Stages 4, 5 and 7 for a user vector as one scan query: every exclusion list in one array, room for k answers. */
static void prepare_scan(recd_serve_ctx_t *ctx, int approximate)
{
    recd_scan_query_t *q = &ctx->job.query;
    size_t n = 0;
    for (size_t l = 0; l < RECD_SERVE_N_EXCL; ++l)
        n += ctx->excluded[l].n;
    uint32_t *excluded = recd_serve_ctx_alloc(ctx, sizeof(uint32_t) * (n ? n : 1));
    n = 0;
    for (size_t l = 0; l < RECD_SERVE_N_EXCL; ++l) {
        if (ctx->excluded[l].n > 0)
            memcpy(excluded + n, ctx->excluded[l].v, sizeof(uint32_t) * ctx->excluded[l].n);
        n += ctx->excluded[l].n;
    }
    *q = (recd_scan_query_t){.vec = ctx->vec,
                             .user = ctx->user_index, /* -1 when unknown to the artifact */
                             .k = ctx->k,
                             .excluded = excluded,
                             .n_excluded = n,
                             .approximate = approximate,
                             .out = recd_serve_ctx_alloc(ctx, sizeof(recd_scored_t) * ctx->k)};
    ctx->job.model = ctx->model;
}

/* Stages 6 and 7 done: the scan's answer becomes the context's. */
static void after_scan(recd_serve_ctx_t *ctx)
{
    if (ctx->job.query.n_candidates != 0)
        recd_metric_add(ctx->worker->serve->scan_reranked, ctx->worker->slot, (double)ctx->job.query.n_candidates);
    stage_rank(ctx);
    ctx->result.items = recd_serve_copy_top(ctx, ctx->job.query.out, ctx->job.query.n_out);
    ctx->result.n_items = ctx->job.query.n_out;
    recd_serve_finish(ctx);
}

/* Stages 4 to 7 without a vector: the precomputed popular order (descending popularity, ties by index, every value finite:
 * exactly what top-k over the popularity gives), skipping the excluded items. Cheap, so it stays on the worker's thread. */
static size_t select_popular(recd_serve_ctx_t *ctx)
{
    recd_serve_worker_t *sw = ctx->worker;
    size_t n_items = recd_model_n_items(ctx->model), len = 0;
    const uint32_t *order = recd_model_popular_order(ctx->model);
    const float *popularity = recd_model_popularity(ctx->model);
    uint64_t *bits = sw->excluded;

    for (size_t l = 0; l < RECD_SERVE_N_EXCL; ++l)
        for (size_t i = 0; i < ctx->excluded[l].n; ++i)
            bits[ctx->excluded[l].v[i] / 64] |= 1ull << (ctx->excluded[l].v[i] % 64);
    stage_rank(ctx);
    for (size_t i = 0; i < n_items && len < ctx->k; ++i) {
        uint32_t j = order[i];
        if (!(bits[j / 64] & (1ull << (j % 64))))
            sw->top[len++] = (recd_scored_t){j, popularity[j]};
    }
    for (size_t l = 0; l < RECD_SERVE_N_EXCL; ++l)
        for (size_t i = 0; i < ctx->excluded[l].n; ++i)
            bits[ctx->excluded[l].v[i] / 64] = 0;
    return len;
}

/* On a scoring thread: the scan is done; the context goes to its worker's inbox, and the worker is woken when the inbox
 * was empty (one wake per drain). The worker stays alive until it drained this job (pending counts it). */
static void on_scored(recd_score_job_t *job)
{
    recd_serve_ctx_t *ctx = recd_serve_ctx_of_job(job);
    recd_serve_worker_t *sw = ctx->worker;
    recd_serve_wake_cb wake = sw->wake;
    void *wake_data = sw->wake_data;

    pthread_mutex_lock(&sw->inbox_mutex);
    int was_empty = sw->inbox == NULL;
    job->next = sw->inbox;
    sw->inbox = job;
    pthread_mutex_unlock(&sw->inbox_mutex);
    if (was_empty)
        wake(wake_data);
}

void recd_serve_worker_drain(recd_serve_worker_t *sw)
{
    pthread_mutex_lock(&sw->inbox_mutex);
    recd_score_job_t *job = sw->inbox, *fifo = NULL;
    sw->inbox = NULL;
    pthread_mutex_unlock(&sw->inbox_mutex);
    while (job != NULL) { /* the inbox is a stack: answer in the order the scans finished */
        recd_score_job_t *next = job->next;
        job->next = fifo;
        fifo = job;
        job = next;
    }
    for (job = fifo; job != NULL;) {
        recd_score_job_t *next = job->next;
        recd_serve_ctx_t *ctx = recd_serve_ctx_of_job(job);
        --sw->pending;
        if (!ctx->cancelled)
            after_scan(ctx);
        recd_serve_ctx_release(ctx); /* the scan's reference */
        job = next;
    }
}

/* Stages 4 to 7. Returns 0 when the answer is complete, or RECD_SERVE_PENDING when the scan went to the scoring pool. */
static int after_state(recd_serve_ctx_t *ctx, int err)
{
    recd_serve_worker_t *sw = ctx->worker;
    int search = ctx->search;
    choose_vector(ctx, err);
    if (search == RECD_SERVE_SEARCH_DEFAULT)
        search = sw->serve->config.approximate ? RECD_SERVE_SEARCH_APPROXIMATE : RECD_SERVE_SEARCH_EXACT;
    int approximate = search == RECD_SERVE_SEARCH_APPROXIMATE && ctx->vec != NULL && recd_serve_version_has_index(ctx->model);
    ctx->result.search = approximate ? "approximate" : "exact";
    if (ctx->vec == NULL) {
        recd_serve_reserve_scratch(sw, recd_model_n_items(ctx->model));
        size_t n = select_popular(ctx);
        ctx->result.items = recd_serve_copy_top(ctx, sw->top, n);
        ctx->result.n_items = n;
        recd_serve_finish(ctx);
        return 0;
    }
    if (ctx->k == 0) { /* nothing asked: a scan query needs k >= 1 */
        recd_serve_finish(ctx);
        return 0;
    }
    prepare_scan(ctx, approximate);
    return recd_serve_run_job(ctx);
}

int recd_serve_run_job(recd_serve_ctx_t *ctx)
{
    recd_serve_worker_t *sw = ctx->worker;
    uint64_t products = (uint64_t)recd_model_n_items(ctx->model) * recd_model_n_factors(ctx->model);
    /* a small version's scan costs less than the hop to a scoring thread and back: it runs here */
    if (sw->serve->pool != NULL && sw->wake != NULL && products > sw->serve->config.score_inline_max) {
        ctx->job.done = on_scored;
        if (recd_score_pool_submit(sw->serve->pool, &ctx->job) != 0) {
            ctx->result.err = RECD_EBUSY;
            recd_serve_finish(ctx);
            return 0;
        }
        recd_serve_ctx_retain(ctx); /* the job's reference, dropped when the worker drains it */
        ++sw->pending;
        return RECD_SERVE_PENDING;
    }
    if (ctx->job.run == NULL && sw->defer != NULL) { /* with the others of this round, in recd_serve_worker_flush */
        if (sw->n_deferred == sw->deferred_cap) {
            sw->deferred_cap = sw->deferred_cap != 0 ? 2 * sw->deferred_cap : 32;
            sw->deferred = recd_xreallocarray(sw->deferred, sw->deferred_cap, sizeof(*sw->deferred));
        }
        sw->deferred[sw->n_deferred++] = ctx;
        recd_serve_ctx_retain(ctx); /* the put-off scan's reference, dropped when it completes */
        ++sw->pending;
        if (sw->n_deferred == 1)
            sw->defer(sw->defer_data);
        return RECD_SERVE_PENDING;
    }
    if (ctx->job.run != NULL) {
        recd_serve_reserve_scratch(sw, recd_model_n_items(ctx->model));
        ctx->job.run(&ctx->job, sw->scores);
    } else {
        recd_scorer_t scorer;
        recd_model_scorer(ctx->model, &scorer);
        recd_scan_topk(&scorer, &ctx->job.query, 1, sw->scan);
    }
    after_scan(ctx);
    return 0;
}

void recd_serve_worker_flush(recd_serve_worker_t *sw)
{
    /* take the list: a context completed below may put a new scan off, which starts the next list (and the next flush) */
    recd_serve_ctx_t **batch = sw->deferred;
    size_t n = sw->n_deferred, cap = sw->deferred_cap, max = sw->serve->config.score_batch_max;
    sw->deferred = sw->flushing;
    sw->deferred_cap = sw->flushing_cap;
    sw->n_deferred = 0;
    sw->flushing = batch;
    sw->flushing_cap = cap;
    if (max == 0)
        max = 1;
    if (sw->flush_cap < max) {
        sw->flush_queries = recd_xreallocarray(sw->flush_queries, max, sizeof(*sw->flush_queries));
        sw->flush_group = recd_xreallocarray(sw->flush_group, max, sizeof(*sw->flush_group));
        sw->flush_cap = max;
    }
    for (size_t i = 0; i < n; ++i) {
        if (batch[i] == NULL)
            continue;
        /* the first waiting context's version, and the later ones of the same version (arrival order), one pass */
        recd_model_t *model = batch[i]->model;
        size_t len = 0, live = 0;
        for (size_t j = i; j < n && len < max; ++j) {
            if (batch[j] == NULL || batch[j]->model != model)
                continue;
            sw->flush_group[len++] = batch[j];
            batch[j] = NULL;
        }
        for (size_t j = 0; j < len; ++j) {
            sw->flush_group[j]->job.query.n_out = 0;
            if (!sw->flush_group[j]->cancelled)
                sw->flush_queries[live++] = sw->flush_group[j]->job.query;
        }
        if (live > 0) {
            recd_scorer_t scorer;
            recd_model_scorer(model, &scorer);
            recd_scan_topk(&scorer, sw->flush_queries, live, sw->scan);
            recd_metric_observe(sw->serve->loop_batch_size, sw->slot, (double)live);
        }
        for (size_t j = 0, at = 0; j < len; ++j) {
            recd_serve_ctx_t *ctx = sw->flush_group[j];
            --sw->pending;
            if (!ctx->cancelled) {
                ctx->job.query.n_out = sw->flush_queries[at].n_out;
                ctx->job.query.n_candidates = sw->flush_queries[at++].n_candidates;
                after_scan(ctx);
            }
            recd_serve_ctx_release(ctx); /* the put-off scan's reference */
        }
    }
}

int recd_serve_recommend(recd_serve_ctx_t *ctx, const recd_serve_recs_request_t *rq, recd_serve_done_cb cb, void *data)
{
    ctx->done_cb = cb;
    ctx->done_data = data;
    recd_serve_route(ctx, &rq->user); /* stage 1: the experiment arm, whose version the context then holds */
    if ((ctx->result.err = stage_version(ctx, rq)) != 0) {
        recd_serve_finish(ctx);
        return 0;
    }
    return stage_user_vector(ctx);
}
