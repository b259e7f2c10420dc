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

_Static_assert(sizeof(latency_bounds) / sizeof(latency_bounds[0]) + 1 == RECD_SERVE_ARM_LATENCY_BUCKETS,
               "the flushed latency counts cover every bucket");

typedef struct st_recd_serve_arm_entry_t {
    char model[128], experiment[65], arm[65];
    uint64_t table_version;
    int owns_flushed; /* the arm's first entry; later table versions share its flushed counts */
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
    /* {model/experiment} is a Redis Cluster hash tag: every arm of one experiment lives in one slot */
    snprintf(a->stats.shared_key, sizeof(a->stats.shared_key), "recd:x:{%s/%s}:%s", a->model, a->experiment, a->arm);
    for (arm_entry_t *b = s->arms; b != NULL; b = b->next)
        if (strcmp(b->arm, a->arm) == 0 && strcmp(b->experiment, a->experiment) == 0 && strcmp(b->model, a->model) == 0) {
            a->stats.flushed = b->stats.flushed;
            break;
        }
    if (a->stats.flushed == NULL) {
        a->stats.flushed = recd_xcalloc(1, sizeof(*a->stats.flushed));
        a->owns_flushed = 1;
    }
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
        if (a->owns_flushed)
            free(a->stats.flushed);
        free(a);
    }
    s->arms = NULL;
}

/* The fields of an arm's shared hash, in the order counts_of writes them. */
enum {
    SHARED_REQUESTS,
    SHARED_ERRORS,
    SHARED_IMPRESSIONS,
    SHARED_CLICKS,
    SHARED_CONVERSIONS,
    SHARED_LATENCY,
    SHARED_TABLE = SHARED_LATENCY + RECD_SERVE_ARM_LATENCY_BUCKETS,
    SHARED_N_FIELDS
};

#define SHARED_TTL_S (30u * 24 * 3600) /* an experiment idle for a month is forgotten */

/* An arm's current local counts, in field order. */
static void counts_of(const recd_serve_arm_stats_t *a, uint64_t *v)
{
    v[SHARED_REQUESTS] = recd_metric_value(a->requests);
    v[SHARED_ERRORS] = recd_metric_value(a->errors);
    v[SHARED_IMPRESSIONS] = recd_metric_value(a->impressions);
    v[SHARED_CLICKS] = recd_metric_value(a->clicks);
    v[SHARED_CONVERSIONS] = recd_metric_value(a->conversions);
    recd_metric_buckets(a->latency, v + SHARED_LATENCY, RECD_SERVE_ARM_LATENCY_BUCKETS, NULL);
    v[SHARED_TABLE] = recd_metric_value(a->table_requests);
}

static void flushed_of(const recd_serve_arm_stats_t *a, uint64_t *v)
{
    v[SHARED_REQUESTS] = a->flushed->requests;
    v[SHARED_ERRORS] = a->flushed->errors;
    v[SHARED_IMPRESSIONS] = a->flushed->impressions;
    v[SHARED_CLICKS] = a->flushed->clicks;
    v[SHARED_CONVERSIONS] = a->flushed->conversions;
    memcpy(v + SHARED_LATENCY, a->flushed->latency, sizeof(a->flushed->latency));
    v[SHARED_TABLE] = a->flushed_table_requests;
}

static void set_flushed(recd_serve_arm_stats_t *a, const uint64_t *v)
{
    a->flushed->requests = v[SHARED_REQUESTS];
    a->flushed->errors = v[SHARED_ERRORS];
    a->flushed->impressions = v[SHARED_IMPRESSIONS];
    a->flushed->clicks = v[SHARED_CLICKS];
    a->flushed->conversions = v[SHARED_CONVERSIONS];
    memcpy(a->flushed->latency, v + SHARED_LATENCY, sizeof(a->flushed->latency));
    a->flushed_table_requests = v[SHARED_TABLE];
}

/* The shared hash's field names; the table field names the slot table version, so the SRM check reads one table's counts. */
static void field_names(uint64_t table_version, char names[SHARED_N_FIELDS][32])
{
    static const char *const fixed[] = {"requests", "errors", "impressions", "clicks", "conversions"};
    for (size_t i = 0; i < SHARED_LATENCY; ++i)
        snprintf(names[i], 32, "%s", fixed[i]);
    for (size_t b = 0; b < RECD_SERVE_ARM_LATENCY_BUCKETS; ++b)
        snprintf(names[SHARED_LATENCY + b], 32, "latency:%zu", b);
    snprintf(names[SHARED_TABLE], 32, "table:%llu:requests", (unsigned long long)table_version);
}

void recd_serve_flush_counters(recd_serve_t *s)
{
    if (s->shared == NULL)
        return;
    /* entries are only ever prepended and never freed before s: the list as it is now can be walked without the lock */
    pthread_mutex_lock(&s->arms_mutex);
    arm_entry_t *first = s->arms;
    pthread_mutex_unlock(&s->arms_mutex);
    for (arm_entry_t *a = first; a != NULL; a = a->next) {
        uint64_t now[SHARED_N_FIELDS], before[SHARED_N_FIELDS], delta[SHARED_N_FIELDS];
        char names[SHARED_N_FIELDS][32];
        const char *fields[SHARED_N_FIELDS];
        field_names(a->table_version, names);
        pthread_mutex_lock(&s->shared_mutex);
        counts_of(&a->stats, now);
        flushed_of(&a->stats, before);
        for (size_t i = 0; i < SHARED_N_FIELDS; ++i) {
            delta[i] = now[i] - before[i];
            fields[i] = names[i];
        }
        int ret = recd_shared_counters_add(s->shared, a->stats.shared_key, fields, delta, SHARED_N_FIELDS, SHARED_TTL_S);
        if (ret == 0)
            set_flushed(&a->stats, now);
        pthread_mutex_unlock(&s->shared_mutex);
        recd_metric_add(s->shared_flushes[ret == 0 ? 0 : 1], RECD_METRICS_SHARED, 1);
    }
}

typedef struct st_shared_read_t {
    char names[SHARED_N_FIELDS][32];
    uint64_t v[SHARED_N_FIELDS];
} shared_read_t;

static void on_shared_field(void *data, const char *field, size_t len, uint64_t value)
{
    shared_read_t *r = data;
    for (size_t i = 0; i < SHARED_N_FIELDS; ++i)
        if (strlen(r->names[i]) == len && memcmp(r->names[i], field, len) == 0)
            r->v[i] = value;
}

void recd_serve_arm_counts(recd_serve_t *s, const char *model, const recd_control_experiment_t *e, size_t arm,
                           recd_serve_arm_counts_t *out)
{
    recd_serve_arm_stats_t *a = recd_serve_arm_stats(s, model, e, arm);
    uint64_t v[SHARED_N_FIELDS];

    out->all_replicas = 0;
    if (s->shared == NULL) {
        counts_of(a, v);
    } else {
        /* the hash holds what every replica flushed; this process adds what it has not flushed yet */
        shared_read_t r = {.v = {0}};
        uint64_t before[SHARED_N_FIELDS];
        field_names(e->table_version, r.names);
        pthread_mutex_lock(&s->shared_mutex);
        counts_of(a, v);
        if (recd_shared_counters_read(s->shared, a->shared_key, on_shared_field, &r) == 0) {
            flushed_of(a, before);
            for (size_t i = 0; i < SHARED_N_FIELDS; ++i)
                v[i] = r.v[i] + (v[i] - before[i]);
            out->all_replicas = 1;
        }
        pthread_mutex_unlock(&s->shared_mutex);
    }
    out->requests = v[SHARED_REQUESTS];
    out->errors = v[SHARED_ERRORS];
    out->impressions = v[SHARED_IMPRESSIONS];
    out->clicks = v[SHARED_CLICKS];
    out->conversions = v[SHARED_CONVERSIONS];
    out->table_requests = v[SHARED_TABLE];
    out->p99_seconds = recd_metrics_bucket_quantile(latency_bounds, v + SHARED_LATENCY, RECD_SERVE_ARM_LATENCY_BUCKETS - 1, 0.99);
}

void recd_serve_share_counters(recd_serve_t *s, recd_shared_counters_t *c)
{
    s->shared = c;
    s->shared_flushes[0] = recd_metrics_counter(s->metrics, "recd_experiment_counter_flushes_total",
                                                "Arm counter flushes to the shared Redis hashes.", "result=\"ok\"");
    s->shared_flushes[1] = recd_metrics_counter(s->metrics, "recd_experiment_counter_flushes_total",
                                                "Arm counter flushes to the shared Redis hashes.", "result=\"error\"");
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
