/* similar.c: items closest to an item in the context's version (cosine of their factors, or popularity). */
#include "base/error.h"
#include "serve/serve_internal.h"

int recd_serve_similar(recd_serve_ctx_t *ctx, const char *item, size_t len, uint32_t k)
{
    recd_serve_worker_t *sw = ctx->worker;
    recd_model_t *m = ctx->model;
    int64_t idx;

    if (m == NULL || (idx = recd_model_find_item(m, item, len)) < 0)
        return ctx->result.err = RECD_ENOTFOUND;
    if (k > sw->serve->config.max_k)
        k = sw->serve->config.max_k;
    recd_serve_reserve_scratch(sw, recd_model_n_items(m));
    size_t n = recd_model_similar(m, (uint32_t)idx, k, sw->scores, sw->top);
    ctx->result.items = recd_serve_copy_top(ctx, sw->top, n);
    ctx->result.n_items = n;
    return 0;
}
