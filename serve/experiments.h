/* experiments.h: experiment reports and canary guardrails over the per-arm counters the pipeline keeps. */
#ifndef RECD_SERVE_EXPERIMENTS_H
#define RECD_SERVE_EXPERIMENTS_H

#include <stddef.h>
#include <stdint.h>
#include "base/jsonw.h"
#include "registry/catalog.h"
#include "registry/control.h"
#include "serve/serve.h"
#include "store/shared_counters.h"

/*
 * Every recommendation routed by an experiment is counted in its arm: recd_experiment_requests_total, _errors_total,
 * _request_duration_seconds (pipeline time), _impressions_total (items answered), and, from events that carry the answer's
 * request_id, _clicks_total (type click) and _conversions_total (add_to_cart or purchase), all labelled
 * {model, experiment, arm}; recd_experiment_table_requests_total adds table_version, so the sample-ratio check compares
 * the requests of one slot table with its weights even after ramps. The metrics are this process's. With shared counters
 * (recd_serve_share_counters: --redis), every replica adds its counts to one Redis hash per arm each guardrail round, and
 * reports and guardrails read those hashes plus what this process has not flushed yet: they add up across replicas.
 */

/**
 * Makes the experiment counters shared through c (borrowed; it must outlive s). Call once, before any thread reads
 * counts. recd_serve_guardrail_run_once then flushes every arm's new counts before it judges.
 */
void recd_serve_share_counters(recd_serve_t *s, recd_shared_counters_t *c);
/**
 * Adds every arm's counts not yet in the shared hashes to them (one transaction per arm; what Redis refuses stays for the
 * next flush); a no-op without shared counters. Thread-safe. A stopping process calls it once its workers are stopped.
 */
void recd_serve_flush_counters(recd_serve_t *s);

/** One arm's counters at one moment. */
typedef struct st_recd_serve_arm_counts_t {
    uint64_t requests, errors, impressions, clicks, conversions;
    uint64_t table_requests; /* under the experiment's current slot table */
    double p99_seconds;      /* at bucket resolution; NAN without requests, +INFINITY beyond the last bucket */
    int all_replicas;        /* 1: read from the shared counters (every replica's); 0: this process's alone */
} recd_serve_arm_counts_t;

/**
 * Reads the counters of arm (an index in e) of experiment e of model: with shared counters, the arm's Redis hash plus this
 * process's unflushed counts (all_replicas = 1), or this process's alone when Redis does not answer. Thread-safe.
 */
void recd_serve_arm_counts(recd_serve_t *s, const char *model, const recd_control_experiment_t *e, size_t arm,
                           recd_serve_arm_counts_t *out);

/** The arm guardrails call control: guardrails.control when it names an arm, else arm 0. */
size_t recd_serve_control_arm(const recd_control_experiment_t *e);

/**
 * Writes the report of experiment e of model as one JSON object:
 *   {"experiment", "model", "enabled", "status" ("running" | "rolled_back"), "reason", "changed_at", "table_version",
 *    "control": arm name, "counts": "all_replicas" | "this_replica", "rollbacks": count in this process,
 *    "arms": [{"name", "version", "weight", "requests", "errors", "error_rate", "p99_seconds", "impressions", "clicks",
 *              "conversions", "ctr", "ctr_ci95": [lo, hi] (Wilson), "conversion_rate",
 *              "lift" (ctr / control's ctr - 1; null for control or when control's ctr is 0),
 *              "p_value" (two-proportion z-test of ctr against control), "sequential_p_value" (mSPRT, always valid,
 *              mixing variance RECD_STATS_MSPRT_TAU2)}],
 *    "srm": {"table_version", "chi2", "p_value", "flagged" (p < 0.001)}}
 * Rates are null without a denominator. For the admin API's GET /v1/experiments/{id}/report. Returns 0.
 */
int recd_serve_experiment_report(recd_serve_t *s, const char *model, const recd_control_experiment_t *e, recd_jw_t *out);

/* ---- guardrails ------------------------------------------------------------------------------------------------------ */

/** A guardrail's verdict on a canary. */
typedef enum en_recd_serve_verdict_t {
    RECD_SERVE_HOLD = 0, /* too little data to judge: neither pass nor rollback */
    RECD_SERVE_PASS,     /* enough data, and no guardrail is crossed */
    RECD_SERVE_ROLLBACK  /* a guardrail is crossed; reason says which */
} recd_serve_verdict_t;

/**
 * Judges a canary against control under g. Holds while either arm has fewer than min_requests (at least 1) requests.
 * Then rolls back when the canary's error rate exceeds control's by more than max_error_rate_delta, or its p99 latency
 * exceeds max_p99_ratio times control's. The CTR guardrail needs min_events (clicks + conversions) in each arm: below that
 * the verdict is hold; above, it rolls back when the canary's CTR is lower and the sequential (mSPRT) p-value is below
 * alpha. The error and latency guardrails thus act on sparse events, which a failing canary may never produce. reason
 * (may be NULL) receives a sentence for the log, the report and the control file.
 */
recd_serve_verdict_t recd_serve_guardrail_judge(const recd_control_guardrails_t *g, const recd_serve_arm_counts_t *control,
                                                const recd_serve_arm_counts_t *canary, char *reason, size_t reason_len);

/**
 * The edit (for recd_control_update) that rolls experiment id back: the canary's weight goes to control, its slots move to
 * control with the minimum move (recd_experiment_rebalance), table_version += 1, status rolled_back with reason and
 * changed_at. Returns 0, RECD_ENOTFOUND when the experiment or its arms are gone, RECD_EEXIST when it is already rolled
 * back (nothing to write), RECD_EINVAL when its slot table does not match its weights.
 */
typedef struct st_recd_serve_rollback_t {
    const char *experiment;
    const char *reason;
    double now; /* epoch seconds */
} recd_serve_rollback_t;
int recd_serve_rollback_edit(recd_control_t *c, void *rollback);

typedef struct st_recd_serve_guardrail_t recd_serve_guardrail_t;

/**
 * Starts the guardrail thread: every interval_ms it takes the loader's current snapshot and judges each enabled, running
 * experiment of each model whose guardrails are enabled; a rollback verdict is written with recd_control_update (one
 * atomic change of registry/<model>/control.json), logged, and counted in recd_experiment_rollbacks_total{model,
 * experiment}; the catalog then serves the new slot table. Each finished round adds 1 to
 * recd_experiment_guardrail_rounds_total, so a test or an operator can wait for a verdict without guessing at time. s and
 * loader are borrowed. Returns NULL when the thread cannot start.
 */
recd_serve_guardrail_t *recd_serve_guardrail_start(recd_serve_t *s, recd_catalog_loader_t *loader, const char *registry,
                                                   uint32_t interval_ms);
/** Judges every guarded experiment of snapshot once, on the calling thread (what the thread does each interval). */
void recd_serve_guardrail_run_once(recd_serve_t *s, recd_catalog_t *snapshot, const char *registry);
/** Stops and joins the thread and frees; accepts NULL. */
void recd_serve_guardrail_stop(recd_serve_guardrail_t *g);

/** The rollbacks counter of experiment of model. */
recd_metric_t *recd_serve_rollbacks_metric(recd_serve_t *s, const char *model, const char *experiment);

#endif
