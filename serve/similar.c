/* similar.c: items closest to an item in the context's version (cosine of their factors, or popularity). */
#include "base/error.h"
#include "serve/serve_internal.h"

/* On a scoring thread (or at once without a pool): the job's top k. */
static void run_similar(recd_score_job_t *job, float *scores)
{
    recd_serve_ctx_t *ctx = recd_serve_ctx_of_job(job);
    job->query.n_out = recd_model_similar(job->model, ctx->similar_item, job->query.k, scores, job->query.out);
}

int recd_serve_similar(recd_serve_ctx_t *ctx, const char *item, size_t len, uint32_t k, recd_serve_done_cb cb, void *data)
{
    recd_serve_worker_t *sw = ctx->worker;
    recd_model_t *m = ctx->model;
    int64_t idx;

    ctx->done_cb = cb;
    ctx->done_data = data;
    if (m == NULL || (idx = recd_model_find_item(m, item, len)) < 0) {
        ctx->result.err = RECD_ENOTFOUND;
        recd_serve_finish(ctx);
        return 0;
    }
    if (k > sw->serve->config.max_k)
        k = sw->serve->config.max_k;
    ctx->similar_item = (uint32_t)idx;
    ctx->job.model = m;
    ctx->job.run = run_similar;
    ctx->job.query = (recd_scan_query_t){.k = k, .out = recd_serve_ctx_alloc(ctx, sizeof(recd_scored_t) * (k ? k : 1))};
    return recd_serve_run_job(ctx);
}
