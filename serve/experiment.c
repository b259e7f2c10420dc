/* experiment.c: experiments on the request path — arm counters, the route stage, and attribution of events to arms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "models/experiment.h"
#include "serve/experiments.h"
#include "serve/serve_internal.h"

/* Latency buckets of arms: fine enough that a p99 ratio of 2 shows between neighbouring decades. */
static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

typedef struct st_recd_serve_arm_entry_t {
    char model[128], experiment[65], arm[65];
    uint64_t table_version;
    recd_serve_arm_stats_t stats;
    struct st_recd_serve_arm_entry_t *next;
} arm_entry_t;

void recd_serve_label_experiment(recd_jw_t *out, const char *model, const char *experiment)
{
    recd_jw_lit(out, "model=\"");
    recd_metrics_label_value(out, model, strlen(model));
    recd_jw_lit(out, "\",experiment=\"");
    recd_metrics_label_value(out, experiment, strlen(experiment));
    recd_jw_lit(out, "\"");
}

static void register_arm(recd_metrics_t *m, arm_entry_t *a)
{
    recd_jw_t labels, tlabels;
    recd_jw_init(&labels, NULL, NULL, 256);
    recd_serve_label_experiment(&labels, a->model, a->experiment);
    recd_jw_lit(&labels, ",arm=\"");
    recd_metrics_label_value(&labels, a->arm, strlen(a->arm));
    recd_jw_lit(&labels, "\"\0");
    recd_jw_init(&tlabels, NULL, NULL, 256);
    recd_serve_label_experiment(&tlabels, a->model, a->experiment);
    recd_jw_lit(&tlabels, ",table_version=\"");
    recd_jw_u64(&tlabels, a->table_version);
    recd_jw_lit(&tlabels, "\",arm=\"");
    recd_metrics_label_value(&tlabels, a->arm, strlen(a->arm));
    recd_jw_lit(&tlabels, "\"\0");

    a->stats.requests =
        recd_metrics_counter(m, "recd_experiment_requests_total", "Recommendation requests per experiment arm.", labels.buf);
    a->stats.errors = recd_metrics_counter(m, "recd_experiment_errors_total",
                                           "Recommendation requests of an experiment arm that failed.", labels.buf);
    a->stats.latency = recd_metrics_histogram(m, "recd_experiment_request_duration_seconds",
                                              "Pipeline time of recommendation requests per experiment arm.", labels.buf,
                                              latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
    a->stats.impressions = recd_metrics_counter(m, "recd_experiment_impressions_total",
                                                "Items answered to requests of an experiment arm.", labels.buf);
    a->stats.clicks = recd_metrics_counter(m, "recd_experiment_clicks_total",
                                           "Click events carrying a request id of an experiment arm.", labels.buf);
    a->stats.conversions =
        recd_metrics_counter(m, "recd_experiment_conversions_total",
                             "add_to_cart and purchase events carrying a request id of an experiment arm.", labels.buf);
    a->stats.table_requests = recd_metrics_counter(
        m, "recd_experiment_table_requests_total",
        "Requests per experiment arm under one slot table version (the sample-ratio-mismatch check's counts).", tlabels.buf);
    recd_jw_dispose(&labels);
    recd_jw_dispose(&tlabels);
}

recd_serve_arm_stats_t *recd_serve_arm_stats(recd_serve_t *s, const char *model, const recd_control_experiment_t *e, size_t arm)
{
    arm_entry_t *a;
    pthread_mutex_lock(&s->arms_mutex);
    for (a = s->arms; a != NULL; a = a->next)
        if (a->table_version == e->table_version && strcmp(a->arm, e->arms[arm].name) == 0 && strcmp(a->experiment, e->id) == 0 &&
            strcmp(a->model, model) == 0)
            goto Exit;
    a = recd_xcalloc(1, sizeof(*a));
    snprintf(a->model, sizeof(a->model), "%s", model);
    snprintf(a->experiment, sizeof(a->experiment), "%s", e->id);
    snprintf(a->arm, sizeof(a->arm), "%s", e->arms[arm].name);
    a->table_version = e->table_version;
    register_arm(s->metrics, a);
    a->next = s->arms;
    s->arms = a;
Exit:
    pthread_mutex_unlock(&s->arms_mutex);
    return &a->stats;
}

void recd_serve_free_arms(recd_serve_t *s)
{
    for (arm_entry_t *a = s->arms, *next; a != NULL; a = next) {
        next = a->next;
        free(a);
    }
    s->arms = NULL;
}

void recd_serve_free_routes(recd_serve_worker_t *sw)
{
    for (size_t i = 0; i < sw->n_routes; ++i)
        free(sw->routes[i].arms);
    free(sw->routes);
    sw->routes = NULL;
    sw->n_routes = 0;
}

void recd_serve_build_routes(recd_serve_worker_t *sw)
{
    recd_serve_free_routes(sw);
    if (sw->catalog == NULL)
        return;
    size_t n_models = recd_catalog_n_models(sw->catalog), cap = 0;
    for (size_t mi = 0; mi < n_models; ++mi) {
        const char *name = recd_catalog_model_name(sw->catalog, mi);
        size_t n = 0;
        const recd_control_experiment_t *e = recd_catalog_experiments(sw->catalog, name, strlen(name), &n);
        for (size_t i = 0; i < n; ++i) {
            if (sw->n_routes == cap)
                sw->routes = recd_xreallocarray(sw->routes, cap = cap ? 2 * cap : 4, sizeof(*sw->routes));
            recd_serve_route_t *r = &sw->routes[sw->n_routes++];
            r->model = mi;
            r->e = &e[i];
            r->arms = recd_xcalloc(e[i].n_arms ? e[i].n_arms : 1, sizeof(*r->arms));
            for (size_t a = 0; a < e[i].n_arms; ++a)
                r->arms[a] = recd_serve_arm_stats(sw->serve, name, &e[i], a);
        }
    }
}

static char *copy_str(recd_serve_ctx_t *ctx, const char *s)
{
    size_t len = strlen(s);
    char *p = recd_serve_ctx_alloc(ctx, len + 1);
    memcpy(p, s, len + 1);
    return p;
}

/* The request id outside experiments: 16 lowercase hex digits. */
static void plain_request_id(uint64_t nonce, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i, nonce >>= 4)
        out[i] = hex[nonce & 15];
    out[16] = '\0';
}

void recd_serve_worker_request_id(recd_serve_worker_t *sw, char out[17])
{
    plain_request_id(recd_serve_worker_nonce(sw), out);
}

void recd_serve_route(recd_serve_ctx_t *ctx, const recd_serve_id_t *user)
{
    recd_serve_worker_t *sw = ctx->worker;
    uint64_t nonce = recd_serve_worker_nonce(sw);
    const recd_serve_route_t *r = NULL;

    /* the first enabled experiment of the request's model routes it (the admin API keeps one per model) */
    for (size_t i = 0; i < sw->n_routes && r == NULL; ++i)
        if (sw->routes[i].model == ctx->model_index && recd_control_experiment_routes(sw->routes[i].e))
            r = &sw->routes[i];
    if (r == NULL) {
        char *id = recd_serve_ctx_alloc(ctx, 17);
        plain_request_id(nonce, id);
        ctx->result.request_id = id;
        return;
    }
    const recd_control_experiment_t *e = r->e;
    uint8_t arm = (uint8_t)recd_control_arm_of(e, user->base, user->len);
    const char *model_name = recd_catalog_model_name(sw->catalog, ctx->model_index);
    recd_model_t *m = recd_catalog_version(sw->catalog, model_name, strlen(model_name), e->arms[arm].version);
    if (m != NULL)
        recd_model_retain(m);
    recd_model_release(ctx->model);
    ctx->model = m; /* NULL: the arm's version is not loaded, and the request fails as this arm's error */
    ctx->arm = r->arms[arm];
    ctx->result.experiment = copy_str(ctx, e->id);
    ctx->result.arm = copy_str(ctx, e->arms[arm].name);
    char *id = recd_serve_ctx_alloc(ctx, RECD_EXPERIMENT_REQUEST_ID_MAX + 1);
    if (recd_experiment_request_id_encode(nonce, e->id, strlen(e->id), e->table_version, arm, e->salt, strlen(e->salt), id,
                                          RECD_EXPERIMENT_REQUEST_ID_MAX + 1) < 0)
        plain_request_id(nonce, id); /* an id the reader would have refused: still answer */
    ctx->result.request_id = id;
}

void recd_serve_count_arm(recd_serve_ctx_t *ctx)
{
    recd_serve_arm_stats_t *a = ctx->arm;
    size_t slot = ctx->worker->slot;
    if (a == NULL)
        return;
    recd_metric_add(a->requests, slot, 1);
    recd_metric_add(a->table_requests, slot, 1);
    if (ctx->result.err != 0)
        recd_metric_add(a->errors, slot, 1);
    recd_metric_add(a->impressions, slot, ctx->result.n_items);
    recd_metric_observe(a->latency, slot, (double)(ctx->timing.done_ns - ctx->timing.started_ns) / 1e9);
}

static int is_plain_id(const recd_serve_id_t *id)
{
    if (id->len != 16)
        return 0;
    for (size_t i = 0; i < 16; ++i)
        if (!((id->base[i] >= '0' && id->base[i] <= '9') || (id->base[i] >= 'a' && id->base[i] <= 'f')))
            return 0;
    return 1;
}

void recd_serve_attribute(recd_serve_ctx_t *ctx, const recd_serve_event_t *events, size_t n)
{
    recd_serve_worker_t *sw = ctx->worker;
    for (size_t i = 0; i < n; ++i) {
        const recd_serve_event_t *ev = &events[i];
        recd_experiment_request_id_t rid;
        const recd_serve_route_t *r = NULL;
        int arm = -1;

        if (ev->request_id.len == 0 || is_plain_id(&ev->request_id))
            continue;
        if (recd_experiment_request_id_parse(ev->request_id.base, ev->request_id.len, &rid) == 0)
            for (size_t j = 0; j < sw->n_routes && r == NULL; ++j)
                if (strlen(sw->routes[j].e->id) == rid.experiment_len &&
                    memcmp(sw->routes[j].e->id, rid.experiment, rid.experiment_len) == 0)
                    r = &sw->routes[j];
        if (r != NULL)
            arm = recd_experiment_request_id_decode(ev->request_id.base, ev->request_id.len, r->e->salt, strlen(r->e->salt), &rid);
        if (arm < 0 || (size_t)arm >= r->e->n_arms) {
            recd_metric_add(sw->serve->bad_request_ids, sw->slot, 1);
            continue;
        }
        if (ev->type == RECD_EVENT_CLICK)
            recd_metric_add(r->arms[arm]->clicks, sw->slot, 1);
        else if (ev->type == RECD_EVENT_ADD_TO_CART || ev->type == RECD_EVENT_PURCHASE)
            recd_metric_add(r->arms[arm]->conversions, sw->slot, 1);
    }
}
