/* metrics.c: the metrics registry — families of per-slot counters, gauges and histograms, rendered as Prometheus text. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/metrics.h"

#define CELL 64 /* one cache line per slot, so two writers never share a line */

typedef enum en_kind_t { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

typedef struct st_family_t family_t;

struct st_recd_metric_t {
    family_t *family;
    char *labels;
    size_t n_slots;         /* single-writer slots; the shared one follows them */
    size_t stride;          /* bytes per slot */
    unsigned char *cells;   /* (n_slots + 1) * stride: the last slot is the shared one */
    _Atomic uint64_t gauge; /* a gauge's value, as double bits */
    struct st_recd_metric_t *next;
};

struct st_family_t {
    char *name, *help;
    kind_t kind;
    double *bounds;
    size_t n_bounds;
    recd_metric_t *series, **series_tail;
    family_t *next;
};

typedef struct st_collector_t {
    recd_metrics_collect_cb cb;
    void *data;
    struct st_collector_t *next;
} collector_t;

struct st_recd_metrics_t {
    size_t n_slots;
    pthread_mutex_t mutex; /* guards the lists; values are atomics */
    family_t *families, **families_tail;
    collector_t *collectors, **collectors_tail;
};

recd_metrics_t *recd_metrics_create(size_t n_slots)
{
    recd_metrics_t *m = recd_xcalloc(1, sizeof(*m));
    m->n_slots = n_slots;
    pthread_mutex_init(&m->mutex, NULL);
    m->families_tail = &m->families;
    m->collectors_tail = &m->collectors;
    return m;
}

void recd_metrics_free(recd_metrics_t *m)
{
    if (m == NULL)
        return;
    for (family_t *f = m->families, *fnext; f != NULL; f = fnext) {
        fnext = f->next;
        for (recd_metric_t *s = f->series, *snext; s != NULL; s = snext) {
            snext = s->next;
            free(s->labels);
            free(s->cells);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    for (collector_t *c = m->collectors, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    pthread_mutex_destroy(&m->mutex);
    free(m);
}

size_t recd_metrics_n_slots(const recd_metrics_t *m)
{
    return m->n_slots;
}

/* Values per slot: a counter or gauge has one, a histogram its buckets (+Inf included), then the count, then the sum. */
static size_t n_values(const family_t *f)
{
    return f->kind == KIND_HISTOGRAM ? f->n_bounds + 3 : 1;
}

static recd_metric_t *get_series(recd_metrics_t *m, const char *name, const char *help, const char *labels, kind_t kind,
                                 const double *bounds, size_t n_bounds)
{
    family_t *f;
    recd_metric_t *s;

    if (labels == NULL)
        labels = "";
    pthread_mutex_lock(&m->mutex);
    for (f = m->families; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0)
            break;
    if (f == NULL) {
        f = recd_xcalloc(1, sizeof(*f));
        f->name = recd_xstrdup(name);
        f->help = recd_xstrdup(help);
        f->kind = kind;
        if (kind == KIND_HISTOGRAM) {
            f->bounds = recd_xmalloc(sizeof(double) * (n_bounds ? n_bounds : 1));
            memcpy(f->bounds, bounds, sizeof(double) * n_bounds);
            f->n_bounds = n_bounds;
        }
        f->series_tail = &f->series;
        *m->families_tail = f;
        m->families_tail = &f->next;
    } else if (f->kind != kind) {
        fprintf(stderr, "recd: metric %s registered with two types\n", name);
        abort();
    }
    for (s = f->series; s != NULL; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            goto Exit;
    s = recd_xcalloc(1, sizeof(*s));
    s->family = f;
    s->labels = recd_xstrdup(labels);
    s->n_slots = m->n_slots;
    s->stride = (n_values(f) * sizeof(uint64_t) + CELL - 1) / CELL * CELL;
    s->cells = recd_xaligned_alloc(CELL, s->stride * (m->n_slots + 1));
    memset(s->cells, 0, s->stride * (m->n_slots + 1));
    *f->series_tail = s;
    f->series_tail = &s->next;
Exit:
    pthread_mutex_unlock(&m->mutex);
    return s;
}

recd_metric_t *recd_metrics_counter(recd_metrics_t *m, const char *name, const char *help, const char *labels)
{
    return get_series(m, name, help, labels, KIND_COUNTER, NULL, 0);
}

recd_metric_t *recd_metrics_gauge(recd_metrics_t *m, const char *name, const char *help, const char *labels)
{
    return get_series(m, name, help, labels, KIND_GAUGE, NULL, 0);
}

recd_metric_t *recd_metrics_histogram(recd_metrics_t *m, const char *name, const char *help, const char *labels,
                                      const double *bounds, size_t n_bounds)
{
    return get_series(m, name, help, labels, KIND_HISTOGRAM, bounds, n_bounds);
}

static _Atomic uint64_t *cell(const recd_metric_t *s, size_t slot, size_t n_slots)
{
    if (slot >= n_slots)
        slot = n_slots; /* RECD_METRICS_SHARED */
    return (_Atomic uint64_t *)(s->cells + slot * s->stride);
}

/* A single-writer slot is bumped with a relaxed load and store (no locked instruction); the shared slot adds atomically. */
static inline void bump(_Atomic uint64_t *c, int shared, uint64_t n)
{
    if (shared)
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
    else
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline size_t n_slots_of(const recd_metric_t *s)
{
    return s->n_slots;
}

void recd_metric_add(recd_metric_t *s, size_t slot, uint64_t n)
{
    size_t ns = n_slots_of(s);
    bump(cell(s, slot, ns), slot >= ns, n);
}

void recd_metric_set(recd_metric_t *s, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    atomic_store_explicit(&s->gauge, bits, memory_order_relaxed);
}

void recd_metric_observe(recd_metric_t *s, size_t slot, double v)
{
    const family_t *f = s->family;
    size_t ns = n_slots_of(s), b;
    _Atomic uint64_t *c = cell(s, slot, ns);
    int shared = slot >= ns;
    for (b = 0; b < f->n_bounds; ++b)
        if (v <= f->bounds[b])
            break;
    bump(&c[b], shared, 1);
    bump(&c[f->n_bounds + 1], shared, 1);
    bump(&c[f->n_bounds + 2], shared, v > 0 ? (uint64_t)(v * 1e9 + 0.5) : 0);
}

static uint64_t sum_value(const recd_metric_t *s, size_t i)
{
    uint64_t total = 0;
    size_t ns = n_slots_of(s);
    for (size_t t = 0; t <= ns; ++t)
        total += atomic_load_explicit(&((_Atomic uint64_t *)(s->cells + t * s->stride))[i], memory_order_relaxed);
    return total;
}

uint64_t recd_metric_value(const recd_metric_t *s)
{
    return sum_value(s, 0);
}

uint64_t recd_metric_count(const recd_metric_t *s)
{
    return s->family->kind == KIND_HISTOGRAM ? sum_value(s, s->family->n_bounds + 1) : sum_value(s, 0);
}

double recd_metrics_bucket_quantile(const double *bounds, const uint64_t *counts, size_t n_bounds, double q)
{
    uint64_t total = 0, cum = 0;
    for (size_t b = 0; b <= n_bounds; ++b)
        total += counts[b];
    if (total == 0)
        return NAN;
    double want = ceil(q * (double)total);
    uint64_t rank = want < 1.0 ? 1 : want > (double)total ? total : (uint64_t)want;
    for (size_t b = 0; b < n_bounds; ++b)
        if ((cum += counts[b]) >= rank)
            return bounds[b];
    return INFINITY;
}

size_t recd_metric_buckets(const recd_metric_t *s, uint64_t *counts, size_t cap, const double **bounds)
{
    const family_t *f = s->family;
    if (f->kind != KIND_HISTOGRAM)
        return 0;
    if (bounds != NULL)
        *bounds = f->bounds;
    for (size_t b = 0; b <= f->n_bounds && b < cap; ++b)
        counts[b] = sum_value(s, b);
    return f->n_bounds + 1;
}

double recd_metric_quantile(const recd_metric_t *s, double q)
{
    const family_t *f = s->family;
    if (f->kind != KIND_HISTOGRAM)
        return NAN;
    /* one read of every bucket, so the rank and the walk see the same counts */
    uint64_t stack_counts[64], *counts = f->n_bounds < 64 ? stack_counts : recd_xmalloc((f->n_bounds + 1) * sizeof(uint64_t));
    recd_metric_buckets(s, counts, f->n_bounds + 1, NULL);
    double v = recd_metrics_bucket_quantile(f->bounds, counts, f->n_bounds, q);
    if (counts != stack_counts)
        free(counts);
    return v;
}

void recd_metrics_add_collector(recd_metrics_t *m, recd_metrics_collect_cb cb, void *data)
{
    collector_t *c = recd_xcalloc(1, sizeof(*c));
    c->cb = cb;
    c->data = data;
    pthread_mutex_lock(&m->mutex);
    *m->collectors_tail = c;
    m->collectors_tail = &c->next;
    pthread_mutex_unlock(&m->mutex);
}

void recd_metrics_label_value(recd_jw_t *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        if (s[i] == '\\' || s[i] == '"')
            recd_jw_raw(out, "\\", 1), recd_jw_raw(out, s + i, 1);
        else if (s[i] == '\n')
            recd_jw_lit(out, "\\n");
        else
            recd_jw_raw(out, s + i, 1);
    }
}

/* Writes name[suffix]{labels[,extra]} and a space. */
static void series_head(recd_jw_t *out, const family_t *f, const char *suffix, const char *labels, const char *extra)
{
    recd_jw_raw(out, f->name, strlen(f->name));
    recd_jw_raw(out, suffix, strlen(suffix));
    if (labels[0] != '\0' || extra != NULL) {
        recd_jw_lit(out, "{");
        recd_jw_raw(out, labels, strlen(labels));
        if (extra != NULL) {
            if (labels[0] != '\0')
                recd_jw_lit(out, ",");
            recd_jw_raw(out, extra, strlen(extra));
        }
        recd_jw_lit(out, "}");
    }
    recd_jw_lit(out, " ");
}

static void render_double(recd_jw_t *out, const char *fmt, double v)
{
    char tmp[64];
    int n = snprintf(tmp, sizeof(tmp), fmt, v);
    recd_jw_raw(out, tmp, (size_t)n);
}

char *recd_metrics_render(recd_metrics_t *m, size_t *len)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    recd_jw_t out;

    recd_jw_init(&out, NULL, NULL, 4096);
    pthread_mutex_lock(&m->mutex);
    for (const family_t *f = m->families; f != NULL; f = f->next) {
        recd_jw_lit(&out, "# HELP ");
        recd_jw_raw(&out, f->name, strlen(f->name));
        recd_jw_lit(&out, " ");
        recd_jw_raw(&out, f->help, strlen(f->help));
        recd_jw_lit(&out, "\n# TYPE ");
        recd_jw_raw(&out, f->name, strlen(f->name));
        recd_jw_lit(&out, " ");
        recd_jw_raw(&out, type_names[f->kind], strlen(type_names[f->kind]));
        recd_jw_lit(&out, "\n");
        for (const recd_metric_t *s = f->series; s != NULL; s = s->next) {
            if (f->kind == KIND_COUNTER) {
                series_head(&out, f, "", s->labels, NULL);
                recd_jw_u64(&out, sum_value(s, 0));
            } else if (f->kind == KIND_GAUGE) {
                uint64_t bits = atomic_load_explicit(&((recd_metric_t *)s)->gauge, memory_order_relaxed);
                double v;
                memcpy(&v, &bits, sizeof(v));
                series_head(&out, f, "", s->labels, NULL);
                render_double(&out, "%.17g", v + (double)sum_value(s, 0));
            } else {
                uint64_t cum = 0;
                char le[48];
                for (size_t b = 0; b <= f->n_bounds; ++b) {
                    cum += sum_value(s, b);
                    if (b < f->n_bounds)
                        snprintf(le, sizeof(le), "le=\"%g\"", f->bounds[b]);
                    else
                        snprintf(le, sizeof(le), "le=\"+Inf\"");
                    series_head(&out, f, "_bucket", s->labels, le);
                    recd_jw_u64(&out, cum);
                    recd_jw_lit(&out, "\n");
                }
                series_head(&out, f, "_sum", s->labels, NULL);
                render_double(&out, "%.9f", (double)sum_value(s, f->n_bounds + 2) / 1e9);
                recd_jw_lit(&out, "\n");
                series_head(&out, f, "_count", s->labels, NULL);
                recd_jw_u64(&out, sum_value(s, f->n_bounds + 1));
            }
            recd_jw_lit(&out, "\n");
        }
    }
    for (const collector_t *c = m->collectors; c != NULL; c = c->next)
        c->cb(c->data, &out);
    pthread_mutex_unlock(&m->mutex);
    recd_jw_lit(&out, "\0");
    *len = out.len - 1;
    return out.buf;
}
