/* serve.c: the serving state of the process and of each worker thread, and request contexts with their arenas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "serve/serve_internal.h"

#define CTX_BLOCK_SIZE 8192 /* a context and the arena a typical request needs, in one recycled block */
#define MIN_CHUNK_SIZE 16384
#define MAX_FREE_CTX 8
#define ARENA_ALIGN 16

recd_serve_t *recd_serve_create(const recd_serve_config_t *config, recd_feature_store_t *store, recd_metrics_t *metrics,
                                const recd_logger_t *log)
{
    recd_serve_t *s = recd_xcalloc(1, sizeof(*s));
    s->config = *config;
    if (s->config.max_k == 0)
        s->config.max_k = 1;
    s->store = store;
    s->metrics = metrics != NULL ? metrics : (s->own_metrics = recd_metrics_create(0));
    s->log = log;
    pthread_mutex_init(&s->arms_mutex, NULL);
    pthread_mutex_init(&s->shared_mutex, NULL);
    s->bad_request_ids =
        recd_metrics_counter(s->metrics, "recd_experiment_bad_request_ids_total",
                             "Events whose request_id is garbled, forged or of an unknown experiment (ignored).", NULL);
    static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    s->loop_batch_size = recd_metrics_histogram(
        s->metrics, "recd_score_loop_batch_size",
        "Queries an event loop scanned together in one pass (versions small enough to be scanned on the loop, put off until "
        "the loop had read that round's requests), per pass.",
        NULL, batch_bounds, sizeof(batch_bounds) / sizeof(batch_bounds[0]));
    s->scan_reranked = recd_metrics_counter(
        s->metrics, "recd_scan_reranked_total",
        "Candidates an approximate pass (bf16 tiles or compact item factors) chose and the scan re-ranked from the float32 "
        "rows, wherever the scan ran; per request, the price of proving the exact top k.",
        NULL);
    if (config->score_threads > 0) {
        recd_score_pool_config_t pc = {config->score_threads, config->score_batch_max, config->score_batch_window_us,
                                       config->score_queue_max, config->score_window_cost_scale};
        if ((s->pool = recd_score_pool_create(&pc, s->metrics)) == NULL) {
            recd_serve_free(s);
            return NULL;
        }
    }
    return s;
}

void recd_serve_free(recd_serve_t *s)
{
    if (s == NULL)
        return;
    recd_score_pool_free(s->pool);
    recd_serve_free_arms(s);
    pthread_mutex_destroy(&s->arms_mutex);
    pthread_mutex_destroy(&s->shared_mutex);
    recd_metrics_free(s->own_metrics);
    free(s);
}

struct st_recd_score_pool_t *recd_serve_pool(const recd_serve_t *s)
{
    return s->pool;
}

recd_serve_worker_t *recd_serve_worker_create(recd_serve_t *s, size_t slot, uint64_t seed)
{
    recd_serve_worker_t *sw = recd_xcalloc(1, sizeof(*sw));
    sw->serve = s;
    sw->slot = slot;
    sw->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ULL;
    sw->top = recd_xreallocarray(NULL, s->config.max_k, sizeof(*sw->top));
    sw->scan = recd_scan_scratch_new();
    pthread_mutex_init(&sw->inbox_mutex, NULL);
    return sw;
}

void recd_serve_worker_use_loop(recd_serve_worker_t *sw, recd_serve_wake_cb wake, void *data)
{
    sw->wake = wake;
    sw->wake_data = data;
}

void recd_serve_worker_defer_scans(recd_serve_worker_t *sw, recd_serve_defer_cb defer, void *data)
{
    sw->defer = defer;
    sw->defer_data = data;
}

size_t recd_serve_worker_pending(const recd_serve_worker_t *sw)
{
    return sw->pending;
}

void recd_serve_worker_free(recd_serve_worker_t *sw)
{
    if (sw == NULL)
        return;
    recd_serve_free_routes(sw);
    recd_catalog_release(sw->catalog);
    while (sw->free_ctx != NULL) {
        recd_serve_ctx_t *next = (recd_serve_ctx_t *)sw->free_ctx->worker;
        free(sw->free_ctx);
        sw->free_ctx = next;
    }
    free(sw->scores);
    free(sw->excluded);
    free(sw->top);
    recd_scan_scratch_free(sw->scan);
    free(sw->deferred);
    free(sw->flushing);
    free(sw->flush_queries);
    free(sw->flush_group);
    pthread_mutex_destroy(&sw->inbox_mutex);
    free(sw);
}

void recd_serve_worker_set_catalog(recd_serve_worker_t *sw, recd_catalog_t *snapshot)
{
    recd_catalog_t *old = sw->catalog;
    sw->catalog = snapshot;
    if (snapshot != NULL)
        recd_serve_reserve_scratch(sw, recd_catalog_max_items(snapshot));
    recd_serve_build_routes(sw); /* before the old snapshot goes: the routes borrow from it */
    recd_catalog_release(old);
}

void recd_serve_worker_set_model(recd_serve_worker_t *sw, recd_model_t *model)
{
    recd_serve_worker_set_catalog(sw, model != NULL ? recd_catalog_of_model(model) : NULL);
}

recd_model_t *recd_serve_worker_model(const recd_serve_worker_t *sw)
{
    return sw->catalog != NULL ? recd_catalog_active(sw->catalog, NULL, 0) : NULL;
}

uint64_t recd_serve_worker_nonce(recd_serve_worker_t *sw)
{
    /* xorshift64*: ids only need to be unique in practice, not unpredictable (the MAC of an experiment id protects it) */
    uint64_t x = sw->rng;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    sw->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* Makes the worker's scratch big enough for a version with n items (rarely grows: only for a larger version). */
void recd_serve_reserve_scratch(recd_serve_worker_t *sw, size_t n)
{
    if (n <= sw->items_cap)
        return;
    free(sw->scores);
    free(sw->excluded);
    sw->scores = recd_xreallocarray(NULL, n, sizeof(float));
    sw->excluded = recd_xcalloc((n + 63) / 64, sizeof(uint64_t));
    sw->items_cap = n;
}

recd_serve_item_t *recd_serve_copy_top(recd_serve_ctx_t *ctx, const recd_scored_t *top, size_t n)
{
    recd_serve_item_t *out = recd_serve_ctx_alloc(ctx, sizeof(*out) * (n ? n : 1));
    for (size_t i = 0; i < n; ++i) {
        size_t len;
        const char *id = recd_model_item_id(ctx->model, top[i].index, &len);
        out[i] = (recd_serve_item_t){top[i].index, top[i].score, id, len};
    }
    return out;
}

recd_serve_ctx_t *recd_serve_ctx_create(recd_serve_worker_t *sw)
{
    recd_serve_ctx_t *ctx = sw->free_ctx;
    if (ctx != NULL) {
        /* a free block links to the next through its worker field */
        sw->free_ctx = (recd_serve_ctx_t *)ctx->worker;
        --sw->n_free;
    } else {
        ctx = recd_xmalloc(CTX_BLOCK_SIZE);
    }
    memset(ctx, 0, sizeof(*ctx));
    ctx->worker = sw;
    ctx->refcnt = 1;
    ctx->timing.started_ns = recd_monotonic_ns();
    ctx->pos = (char *)ctx + (sizeof(*ctx) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    ctx->end = (char *)ctx + CTX_BLOCK_SIZE;
    ctx->user_index = -1;
    if ((ctx->model = recd_serve_worker_model(sw)) != NULL)
        recd_model_retain(ctx->model);
    return ctx;
}

int recd_serve_ctx_use_model(recd_serve_ctx_t *ctx, const char *name, size_t len)
{
    const recd_catalog_t *snap = ctx->worker->catalog;
    int index = snap != NULL ? recd_catalog_model_index(snap, name, len) : -1;
    if (index < 0)
        return RECD_ENOTFOUND;
    recd_model_t *m = recd_catalog_active(snap, name, len);
    if (m != NULL)
        recd_model_retain(m);
    recd_model_release(ctx->model);
    ctx->model = m;
    ctx->model_index = (size_t)index;
    return 0;
}

void recd_serve_ctx_retain(recd_serve_ctx_t *ctx)
{
    ++ctx->refcnt;
}

void recd_serve_ctx_release(recd_serve_ctx_t *ctx)
{
    if (ctx == NULL || --ctx->refcnt != 0)
        return;
    recd_serve_worker_t *sw = ctx->worker;
    recd_model_release(ctx->model);
    while (ctx->chunks != NULL) {
        recd_serve_chunk_t *next = ctx->chunks->next;
        free(ctx->chunks);
        ctx->chunks = next;
    }
    if (sw->n_free < MAX_FREE_CTX) {
        ctx->worker = (recd_serve_worker_t *)sw->free_ctx;
        sw->free_ctx = ctx;
        ++sw->n_free;
    } else {
        free(ctx);
    }
}

void recd_serve_ctx_cancel(recd_serve_ctx_t *ctx)
{
    ctx->cancelled = 1;
    /* a scoring thread that has not scanned it yet skips the scan (the answer still comes back, to release the context) */
    atomic_store_explicit(&ctx->job.cancelled, 1, memory_order_relaxed);
}

void *recd_serve_ctx_alloc(void *p, size_t size)
{
    recd_serve_ctx_t *ctx = p;
    size = (size + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (size > (size_t)(ctx->end - ctx->pos)) {
        size_t header = (sizeof(recd_serve_chunk_t) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
        size_t chunk = header + size > MIN_CHUNK_SIZE ? header + size : MIN_CHUNK_SIZE;
        recd_serve_chunk_t *c = recd_xmalloc(chunk);
        c->next = ctx->chunks;
        ctx->chunks = c;
        ctx->pos = (char *)c + header;
        ctx->end = (char *)c + chunk;
    }
    void *ret = ctx->pos;
    ctx->pos += size;
    return ret;
}

recd_model_t *recd_serve_ctx_model(const recd_serve_ctx_t *ctx)
{
    return ctx->model;
}

const recd_serve_result_t *recd_serve_ctx_result(const recd_serve_ctx_t *ctx)
{
    return &ctx->result;
}

const recd_serve_timing_t *recd_serve_ctx_timing(const recd_serve_ctx_t *ctx)
{
    return &ctx->timing;
}
