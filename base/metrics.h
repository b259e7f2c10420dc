/* metrics.h: the metrics registry — each module registers its own Prometheus families and series, summed when read. */
#ifndef RECD_BASE_METRICS_H
#define RECD_BASE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "base/jsonw.h"

/*
 * A registry holds families (a name, a help text, a type) and their series (one label set each, given pre-rendered as
 * `endpoint="events",status="202"`). Writes are cheap and lock-free: every series has one cache line per writer slot
 * (a worker thread's index), written only by that thread, plus a shared cell that any thread may add to atomically
 * (slot RECD_METRICS_SHARED). Registering takes a mutex: do it at start-up, or once and cache the pointer.
 */

typedef struct st_recd_metrics_t recd_metrics_t;
/** One series; owned by its registry and valid until recd_metrics_free. */
typedef struct st_recd_metric_t recd_metric_t;

/** The slot any thread may write (atomic add); slots 0..n_slots-1 belong to one thread each. */
#define RECD_METRICS_SHARED SIZE_MAX

/** Creates an empty registry with n_slots single-writer slots. Aborts on out of memory. */
recd_metrics_t *recd_metrics_create(size_t n_slots);
/** Frees the registry and every series; accepts NULL. */
void recd_metrics_free(recd_metrics_t *m);
/** The number of single-writer slots. */
size_t recd_metrics_n_slots(const recd_metrics_t *m);

/**
 * Returns the counter series name{labels} (labels NULL or "" for none), registering the family and the series on first
 * use. help is kept from the family's first registration. Thread-safe. Aborts when name is already a family of another type.
 */
recd_metric_t *recd_metrics_counter(recd_metrics_t *m, const char *name, const char *help, const char *labels);
/** Returns the gauge series name{labels}, registering it on first use (see recd_metrics_counter). */
recd_metric_t *recd_metrics_gauge(recd_metrics_t *m, const char *name, const char *help, const char *labels);
/**
 * Returns the histogram series name{labels}, registering it on first use; bounds are the n_bounds ascending upper bounds of
 * its buckets (+Inf is implicit), copied; a family keeps the bounds of its first registration.
 */
recd_metric_t *recd_metrics_histogram(recd_metrics_t *m, const char *name, const char *help, const char *labels,
                                      const double *bounds, size_t n_bounds);

/** Adds n to a counter (or gauge) in slot: the calling thread's own slot, or RECD_METRICS_SHARED. */
void recd_metric_add(recd_metric_t *s, size_t slot, uint64_t n);
/** Sets a gauge to v (shared cell; any thread). */
void recd_metric_set(recd_metric_t *s, double v);
/** Records one observation of a histogram in slot (values are summed in units of 1e-9, so seconds sum in nanoseconds). */
void recd_metric_observe(recd_metric_t *s, size_t slot, double v);
/** The value of a counter summed over its slots (for tests and reports). */
uint64_t recd_metric_value(const recd_metric_t *s);
/**
 * A histogram's q-quantile (0 < q <= 1) at bucket resolution: the upper bound of the bucket that holds the ceil(q * count)-th
 * smallest observation, summed over slots (+INFINITY when that is the +Inf bucket, NAN when there are no observations).
 * Comparable between series of one family, which share their bounds (for guardrails and reports).
 */
double recd_metric_quantile(const recd_metric_t *s, double q);
/**
 * A histogram's buckets summed over slots: writes min(cap, n_bounds + 1) per-bucket (not cumulative) counts, the last the
 * +Inf bucket, and *bounds (may be NULL) its n_bounds upper bounds. Returns n_bounds + 1, or 0 for a series that is not a
 * histogram. For code that adds histograms up across processes (the experiment counters kept in Redis).
 */
size_t recd_metric_buckets(const recd_metric_t *s, uint64_t *counts, size_t cap, const double **bounds);
/** The q-quantile of per-bucket counts (n_bounds + 1 of them) at bucket resolution, as recd_metric_quantile defines it. */
double recd_metrics_bucket_quantile(const double *bounds, const uint64_t *counts, size_t n_bounds, double q);
/** A histogram's number of observations, summed over its slots. */
uint64_t recd_metric_count(const recd_metric_t *s);

/**
 * Adds a collector: at every render, after the registered families, cb appends whole Prometheus text lines (with their own
 * # HELP and # TYPE) to out. For values that are computed rather than counted (the loaded versions, a queue depth).
 */
typedef void (*recd_metrics_collect_cb)(void *data, recd_jw_t *out);
void recd_metrics_add_collector(recd_metrics_t *m, recd_metrics_collect_cb cb, void *data);

/**
 * Renders Prometheus text format 0.0.4: families in registration order, each series with the sum of its slots. Returns a
 * malloc'ed NUL-terminated string the caller frees (*len its length). Aborts on out of memory.
 */
char *recd_metrics_render(recd_metrics_t *m, size_t *len);

/** Appends s as a Prometheus label value (backslash, double quote and newline escaped), without the quotes. */
void recd_metrics_label_value(recd_jw_t *out, const char *s, size_t len);

#endif
