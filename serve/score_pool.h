/* score_pool.h: the scoring threads — scans queued off the event loops, batched by version, with a bound that sheds. */
#ifndef RECD_SERVE_SCORE_POOL_H
#define RECD_SERVE_SCORE_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "base/metrics.h"
#include "models/model.h"
#include "models/scan.h"

typedef struct st_recd_score_pool_t recd_score_pool_t;
typedef struct st_recd_score_job_t recd_score_job_t;

/** How the pool runs; recd_score_pool_create fills zeros with the defaults named here. */
typedef struct st_recd_score_pool_config_t {
    uint32_t threads;   /* scoring threads (0: 1) */
    uint32_t batch_max; /* most jobs of one version scanned in one call (0: 32) */
    uint32_t window_us; /* how long a thread with a partial batch waits for more jobs of its version; 0: takes what is queued */
    uint32_t queue_max; /* jobs queued (not yet taken by a thread) beyond which a submit is refused (0: 4 x threads x batch_max) */
    /* item x factor products one µs of waiting is worth: a partial batch of a version of n items x f factors waits at most
     * n * f / window_cost_scale µs (and at most window_us), so a small catalogue's cheap scan never waits long for company
     * while a large one's gathers a full batch; 0: every version waits window_us */
    uint32_t window_cost_scale;
} recd_score_pool_config_t;

/** Called on a scoring thread once a job's query.out and query.n_out are written; the pool never touches the job again. */
typedef void (*recd_score_done_cb)(recd_score_job_t *job);
/**
 * Work other than a scan query (similar items), run alone on a scoring thread: fills job->query.out and n_out. scores is the
 * thread's scratch of n_items floats of job->model.
 */
typedef void (*recd_score_run_cb)(recd_score_job_t *job, float *scores);

/** One query against one version. The submitter owns the memory and keeps it (and the model) alive until done is called. */
struct st_recd_score_job_t {
    recd_score_job_t *next; /* the pool's queue while queued; free for the submitter's use once done is called */
    const recd_model_t *model;
    recd_scan_query_t query;
    recd_score_run_cb run; /* NULL: query is scanned, batched with the other queries of model */
    recd_score_done_cb done;
    atomic_int cancelled; /* set by the submitter when nobody waits: the job is delivered without being scanned */
    uint64_t _queued_ns;  /* when it was queued (the pool's) */
};

/**
 * Starts the scoring threads. metrics (borrowed, must outlive the pool) receives the pool's families: queue depth, time in
 * the queue, batch sizes, scan time, shed jobs. Returns NULL when a thread cannot start (none is left running); aborts on out of
 * memory.
 */
recd_score_pool_t *recd_score_pool_create(const recd_score_pool_config_t *config, recd_metrics_t *metrics);
/** Scans what is still queued (a hold is lifted), joins the threads and frees; accepts NULL. */
void recd_score_pool_free(recd_score_pool_t *p);
/** The configuration in effect (defaults filled in). */
const recd_score_pool_config_t *recd_score_pool_config(const recd_score_pool_t *p);

/**
 * Queues job (its model, query, run and done set; query.out has room for query.k entries). Any thread. Returns 0, or
 * RECD_EBUSY when queue_max jobs are queued already (counted as shed; done will not be called).
 */
int recd_score_pool_submit(recd_score_pool_t *p, recd_score_job_t *job);

/**
 * Holds the scoring threads until at least n jobs are queued, then lets them go once (n 0: lets them go now). For tests
 * and drills: a held pool fills up and sheds exactly as a saturated one does, and n jobs queued together are batched.
 */
void recd_score_pool_hold(recd_score_pool_t *p, size_t n);
/** Jobs queued and not yet taken by a thread. */
size_t recd_score_pool_queued(recd_score_pool_t *p);

#endif
