/* metrics.c: per-thread request counters and latency histograms, summed and rendered as Prometheus text when read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "server/server.h"

const int recd_metrics_statuses[RECD_METRICS_N_STATUS - 1] = {200, 202, 400, 404, 405, 413, 415, 500, 503};
const double recd_metrics_bucket_bounds[RECD_METRICS_N_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                                       0.05,   0.1,   0.25,   0.5,   1.0};
static const uint64_t bucket_bounds_ns[RECD_METRICS_N_BUCKETS - 1] = {
    500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000};

static const char *const endpoint_names[RECD_EP_COUNT] = {"recommendations", "similar", "events", "healthz",
                                                          "readyz",          "metrics", "other"};

const char *recd_endpoint_name(recd_endpoint_t ep)
{
    return (unsigned)ep < RECD_EP_COUNT ? endpoint_names[ep] : "other";
}

recd_http_metrics_t *recd_http_metrics_create(size_t n_slots)
{
    recd_http_metrics_t *m = recd_xcalloc(1, sizeof(*m));
    m->slots = recd_xaligned_alloc(64, sizeof(*m->slots) * (n_slots ? n_slots : 1));
    memset(m->slots, 0, sizeof(*m->slots) * (n_slots ? n_slots : 1));
    m->n_slots = n_slots;
    return m;
}

void recd_http_metrics_free(recd_http_metrics_t *m)
{
    if (m == NULL)
        return;
    free(m->slots);
    free(m);
}

/* Only the owning thread writes a slot, so a relaxed load + store is an exact increment without a locked instruction. */
static inline void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline uint64_t get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

void recd_http_metrics_observe(recd_http_metrics_t *m, size_t slot, recd_endpoint_t ep, int status, uint64_t duration_ns)
{
    recd_metrics_slot_t *s = &m->slots[slot];
    size_t si, b;

    if ((unsigned)ep >= RECD_EP_COUNT)
        ep = RECD_EP_OTHER;
    for (si = 0; si < RECD_METRICS_N_STATUS - 1; ++si)
        if (recd_metrics_statuses[si] == status)
            break;
    bump(&s->requests[ep][si], 1);
    for (b = 0; b < RECD_METRICS_N_BUCKETS - 1; ++b)
        if (duration_ns <= bucket_bounds_ns[b])
            break;
    bump(&s->buckets[ep][b], 1);
    bump(&s->duration_ns[ep], duration_ns);
}

void recd_http_metrics_add_events(recd_http_metrics_t *m, size_t slot, uint64_t n)
{
    bump(&m->slots[slot].events_accepted, n);
}

static void print_label_value(FILE *fp, const char *s)
{
    for (; *s != '\0'; ++s) {
        if (*s == '\\' || *s == '"')
            fputc('\\', fp), fputc(*s, fp);
        else if (*s == '\n')
            fputs("\\n", fp);
        else
            fputc(*s, fp);
    }
}

char *recd_http_metrics_render(const recd_http_metrics_t *m, const char *model_name, uint64_t model_version, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *fp = open_memstream(&buf, &size);
    if (fp == NULL) {
        fprintf(stderr, "recd: out of memory\n");
        abort();
    }

    fputs("# HELP recd_http_requests_total HTTP requests by endpoint and status code.\n"
          "# TYPE recd_http_requests_total counter\n",
          fp);
    for (size_t ep = 0; ep < RECD_EP_COUNT; ++ep) {
        for (size_t si = 0; si < RECD_METRICS_N_STATUS; ++si) {
            uint64_t n = 0;
            for (size_t t = 0; t < m->n_slots; ++t)
                n += get(&m->slots[t].requests[ep][si]);
            if (n == 0)
                continue;
            if (si < RECD_METRICS_N_STATUS - 1)
                fprintf(fp, "recd_http_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", endpoint_names[ep],
                        recd_metrics_statuses[si], (unsigned long long)n);
            else
                fprintf(fp, "recd_http_requests_total{endpoint=\"%s\",status=\"other\"} %llu\n", endpoint_names[ep],
                        (unsigned long long)n);
        }
    }

    fputs("# HELP recd_http_request_duration_seconds Time from request to response by endpoint.\n"
          "# TYPE recd_http_request_duration_seconds histogram\n",
          fp);
    for (size_t ep = 0; ep < RECD_EP_COUNT; ++ep) {
        uint64_t cum = 0, sum_ns = 0;
        for (size_t t = 0; t < m->n_slots; ++t)
            sum_ns += get(&m->slots[t].duration_ns[ep]);
        for (size_t b = 0; b < RECD_METRICS_N_BUCKETS; ++b) {
            for (size_t t = 0; t < m->n_slots; ++t)
                cum += get(&m->slots[t].buckets[ep][b]);
            if (b < RECD_METRICS_N_BUCKETS - 1)
                fprintf(fp, "recd_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n", endpoint_names[ep],
                        recd_metrics_bucket_bounds[b], (unsigned long long)cum);
            else
                fprintf(fp, "recd_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n", endpoint_names[ep],
                        (unsigned long long)cum);
        }
        fprintf(fp, "recd_http_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n", endpoint_names[ep], sum_ns / 1e9);
        fprintf(fp, "recd_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", endpoint_names[ep],
                (unsigned long long)cum);
    }

    if (model_name != NULL) {
        fputs("# HELP recd_model_version The model version being served.\n# TYPE recd_model_version gauge\n", fp);
        fputs("recd_model_version{model=\"", fp);
        print_label_value(fp, model_name);
        fprintf(fp, "\"} %llu\n", (unsigned long long)model_version);
        fprintf(fp,
                "# HELP recd_model_loads_total Model versions loaded from the registry.\n# TYPE recd_model_loads_total counter\n"
                "recd_model_loads_total %llu\n"
                "# HELP recd_model_load_failures_total Model versions rejected when loading.\n"
                "# TYPE recd_model_load_failures_total counter\n"
                "recd_model_load_failures_total %llu\n",
                (unsigned long long)get(&m->model_loads), (unsigned long long)get(&m->model_load_failures));
    }

    uint64_t events = 0;
    for (size_t t = 0; t < m->n_slots; ++t)
        events += get(&m->slots[t].events_accepted);
    fprintf(fp,
            "# HELP recd_events_accepted_total Events accepted by POST /v1/events.\n"
            "# TYPE recd_events_accepted_total counter\n"
            "recd_events_accepted_total %llu\n"
            "# HELP recd_users_evicted_total Users dropped from the in-memory user state to stay within max_users.\n"
            "# TYPE recd_users_evicted_total counter\n"
            "recd_users_evicted_total %llu\n"
            "# HELP recd_build_info Build information.\n# TYPE recd_build_info gauge\n"
            "recd_build_info{version=\"%s\"} 1\n",
            (unsigned long long)events, (unsigned long long)get(&m->users_evicted), RECD_VERSION);

    if (fclose(fp) != 0 || buf == NULL) {
        fprintf(stderr, "recd: out of memory\n");
        abort();
    }
    *len = size;
    return buf;
}
