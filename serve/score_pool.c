/* score_pool.c: the scoring threads — jobs queued by the workers' loops, taken in batches of one version, scanned together.
 *
 * DESIGN: one FIFO of jobs under one mutex. A thread takes the oldest job no other thread is gathering for, plus every
 * queued job of the same version (recd_model_t *), up to batch_max; with room left it waits up to window_us for more of that
 * version (other threads leave those to it meanwhile), then scans the batch with one recd_scan_topk call outside the lock
 * and hands each job to its done callback, which posts it to the loop that queued it. The bound counts queued jobs only
 * (what waits, not what is being scanned): a submit beyond it is refused at once, so the caller answers 503 instead of
 * letting latency grow. A job with its own run function (similar items) is taken and run alone. Nothing here blocks a
 * loop: submit takes the mutex for a list insert. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "serve/score_pool.h"

#define DEFAULT_BATCH_MAX 32

typedef struct st_pool_thread_t {
    struct st_recd_score_pool_t *pool;
    pthread_t tid;
    const recd_model_t *gathering; /* the version this thread waits for more jobs of, or NULL (under the pool's mutex) */
    float *scores;                 /* scratch of run jobs */
    size_t scores_cap;
} pool_thread_t;

struct st_recd_score_pool_t {
    recd_score_pool_config_t config;
    pthread_mutex_t mutex;
    pthread_cond_t more; /* a job was queued, a hold lifted, or the pool stops */
    recd_score_job_t *head, *tail;
    size_t queued;
    size_t hold; /* threads take nothing while fewer are queued (0: no hold) */
    int stopping;
    pool_thread_t *threads;
    recd_metric_t *depth, *wait_seconds, *batch_size, *scan_seconds, *shed;
};

static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
static const double scan_bounds[] = {0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002,
                                     0.005,   0.01,    0.02,    0.05,   0.1,    0.2,    0.5,   1};

static int gathered_by_other(const recd_score_pool_t *p, const pool_thread_t *self, const recd_model_t *m)
{
    for (size_t i = 0; i < p->config.threads; ++i)
        if (&p->threads[i] != self && p->threads[i].gathering == m)
            return 1;
    return 0;
}

/* The oldest job that is a run job or whose version no other thread is gathering for, or NULL. */
static recd_score_job_t *next_job(const recd_score_pool_t *p, const pool_thread_t *self)
{
    for (recd_score_job_t *j = p->head; j != NULL; j = j->next)
        if (j->run != NULL || !gathered_by_other(p, self, j->model))
            return j;
    return NULL;
}

/* Moves up to max queued jobs that match (first itself, or the scan queries of version m), oldest first, into out. */
static size_t take(recd_score_pool_t *p, const recd_score_job_t *first, const recd_model_t *m, recd_score_job_t **out, size_t max)
{
    size_t n = 0;
    recd_score_job_t **link = &p->head, *prev = NULL;
    while (*link != NULL && n < max) {
        recd_score_job_t *j = *link;
        if (first != NULL ? j == first : j->model == m && j->run == NULL) {
            *link = j->next;
            if (p->tail == j)
                p->tail = prev;
            j->next = NULL;
            out[n++] = j;
        } else {
            prev = j;
            link = &j->next;
        }
    }
    p->queued -= n;
    if (n > 0) {
        uint64_t now = recd_monotonic_ns();
        for (size_t i = 0; i < n; ++i)
            recd_metric_observe(p->wait_seconds, RECD_METRICS_SHARED, (double)(now - out[i]->_queued_ns) * 1e-9);
        recd_metric_set(p->depth, (double)p->queued);
    }
    return n;
}

static void deadline_after_us(struct timespec *ts, uint32_t us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (long)us * 1000;
    ts->tv_sec += ts->tv_nsec / 1000000000;
    ts->tv_nsec %= 1000000000;
}

/* Scans one batch of one version (outside the lock) and delivers every job of it; cancelled jobs are delivered unscanned. */
static void scan_batch(recd_score_pool_t *p, recd_score_job_t **batch, size_t n, recd_scan_query_t *queries, size_t *scanned,
                       recd_scan_scratch_t *scratch)
{
    recd_scorer_t scorer;
    size_t live = 0;

    for (size_t i = 0; i < n; ++i) {
        batch[i]->query.n_out = 0;
        if (!atomic_load_explicit(&batch[i]->cancelled, memory_order_relaxed)) {
            scanned[live] = i;
            queries[live++] = batch[i]->query;
        }
    }
    if (live > 0) {
        uint64_t t0 = recd_monotonic_ns();
        recd_model_scorer(batch[0]->model, &scorer);
        recd_scan_topk(&scorer, queries, live, scratch);
        recd_metric_observe(p->scan_seconds, RECD_METRICS_SHARED, (double)(recd_monotonic_ns() - t0) * 1e-9);
        recd_metric_observe(p->batch_size, RECD_METRICS_SHARED, (double)live);
    }
    for (size_t i = 0; i < live; ++i) {
        batch[scanned[i]]->query.n_out = queries[i].n_out;
        batch[scanned[i]]->query.n_candidates = queries[i].n_candidates;
    }
    for (size_t i = 0; i < n; ++i)
        batch[i]->done(batch[i]);
}

/* Runs a job with its own run function (outside the lock) and delivers it. */
static void run_alone(recd_score_pool_t *p, pool_thread_t *self, recd_score_job_t *job)
{
    size_t n_items = recd_model_n_items(job->model);
    job->query.n_out = 0;
    if (!atomic_load_explicit(&job->cancelled, memory_order_relaxed)) {
        if (self->scores_cap < n_items) {
            free(self->scores);
            self->scores = recd_xreallocarray(NULL, n_items, sizeof(float));
            self->scores_cap = n_items;
        }
        uint64_t t0 = recd_monotonic_ns();
        job->run(job, self->scores);
        recd_metric_observe(p->scan_seconds, RECD_METRICS_SHARED, (double)(recd_monotonic_ns() - t0) * 1e-9);
    }
    job->done(job);
}

/* Scoring threads yield the CPU to the event loops that share it: a loop waking for a health probe or a new connection
 * preempts a scan at once instead of waiting out its time slice (Linux nice applies to a thread by its tid). */
#define SCORE_THREAD_NICE 10

/* How long a partial batch of m's version may wait for more (see window_cost_scale). */
static uint32_t window_for(const recd_score_pool_t *p, const recd_model_t *m)
{
    if (p->config.window_cost_scale == 0)
        return p->config.window_us;
    uint64_t us = (uint64_t)recd_model_n_items(m) * recd_model_n_factors(m) / p->config.window_cost_scale;
    return us < p->config.window_us ? (uint32_t)us : p->config.window_us;
}

static void *thread_main(void *arg)
{
    pool_thread_t *self = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), SCORE_THREAD_NICE); /* best effort: unprivileged is fine */
    recd_score_pool_t *p = self->pool;
    size_t max = p->config.batch_max;
    recd_score_job_t **batch = recd_xreallocarray(NULL, max, sizeof(*batch));
    recd_scan_query_t *queries = recd_xreallocarray(NULL, max, sizeof(*queries));
    size_t *scanned = recd_xreallocarray(NULL, max, sizeof(*scanned));
    recd_scan_scratch_t *scratch = recd_scan_scratch_new();
    recd_score_job_t *first;

    pthread_mutex_lock(&p->mutex);
    for (;;) {
        for (;;) {
            if (p->hold != 0 && (p->queued >= p->hold || p->stopping))
                p->hold = 0; /* a hold lets go once */
            if (p->hold == 0 && (first = next_job(p, self)) != NULL)
                break;
            if (p->stopping && p->head == NULL)
                goto Exit;
            pthread_cond_wait(&p->more, &p->mutex);
        }
        const recd_model_t *m = first->model;
        if (first->run != NULL) {
            take(p, first, NULL, batch, 1);
            pthread_mutex_unlock(&p->mutex);
            run_alone(p, self, first);
            pthread_mutex_lock(&p->mutex);
            continue;
        }
        size_t n = take(p, NULL, m, batch, max);
        /* an approximate query searches the index on its own: company would only keep it waiting */
        uint32_t window_us = first->query.approximate ? 0 : window_for(p, m);
        if (n < max && window_us > 0 && !p->stopping) {
            struct timespec deadline;
            deadline_after_us(&deadline, window_us);
            self->gathering = m;
            while (n < max && !p->stopping) {
                int rc = pthread_cond_timedwait(&p->more, &p->mutex, &deadline);
                n += take(p, NULL, m, batch + n, max - n);
                if (rc == ETIMEDOUT)
                    break;
            }
            self->gathering = NULL;
            if (p->head != NULL)
                pthread_cond_broadcast(&p->more); /* what others skipped while this thread gathered is theirs again */
        }
        pthread_mutex_unlock(&p->mutex);
        scan_batch(p, batch, n, queries, scanned, scratch);
        pthread_mutex_lock(&p->mutex);
    }
Exit:
    pthread_mutex_unlock(&p->mutex);
    free(batch);
    free(queries);
    free(scanned);
    free(self->scores);
    recd_scan_scratch_free(scratch);
    return NULL;
}

recd_score_pool_t *recd_score_pool_create(const recd_score_pool_config_t *config, recd_metrics_t *metrics)
{
    recd_score_pool_t *p = recd_xcalloc(1, sizeof(*p));
    pthread_condattr_t attr;

    p->config = *config;
    if (p->config.threads == 0)
        p->config.threads = 1;
    if (p->config.batch_max == 0)
        p->config.batch_max = DEFAULT_BATCH_MAX;
    if (p->config.queue_max == 0)
        p->config.queue_max = 4 * p->config.threads * p->config.batch_max;
    pthread_mutex_init(&p->mutex, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->more, &attr);
    pthread_condattr_destroy(&attr);
    p->depth =
        recd_metrics_gauge(metrics, "recd_score_queue_depth", "Scoring jobs queued and not yet taken by a scoring thread.", NULL);
    p->wait_seconds = recd_metrics_histogram(metrics, "recd_score_queue_wait_seconds",
                                             "Time a scoring job waited in the queue for a scoring thread (batch window included).",
                                             NULL, scan_bounds, sizeof(scan_bounds) / sizeof(scan_bounds[0]));
    p->batch_size = recd_metrics_histogram(metrics, "recd_score_batch_size", "Queries scanned together in one call, per scan.",
                                           NULL, batch_bounds, sizeof(batch_bounds) / sizeof(batch_bounds[0]));
    p->scan_seconds = recd_metrics_histogram(
        metrics, "recd_score_scan_duration_seconds",
        "Time of one batched scan (scoring, exclusions and top-k of its queries), or of one similar-items job.", NULL, scan_bounds,
        sizeof(scan_bounds) / sizeof(scan_bounds[0]));
    p->shed = recd_metrics_counter(metrics, "recd_score_shed_total",
                                   "Requests refused with 503 because the scoring queue was full.", NULL);
    p->threads = recd_xcalloc(p->config.threads, sizeof(*p->threads));
    for (size_t i = 0; i < p->config.threads; ++i) {
        p->threads[i].pool = p;
        if (pthread_create(&p->threads[i].tid, NULL, thread_main, &p->threads[i]) != 0) {
            p->config.threads = (uint32_t)i; /* join the ones that started */
            recd_score_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void recd_score_pool_free(recd_score_pool_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mutex);
    p->stopping = 1;
    pthread_cond_broadcast(&p->more);
    pthread_mutex_unlock(&p->mutex);
    for (size_t i = 0; i < p->config.threads; ++i)
        pthread_join(p->threads[i].tid, NULL);
    pthread_cond_destroy(&p->more);
    pthread_mutex_destroy(&p->mutex);
    free(p->threads);
    free(p);
}

const recd_score_pool_config_t *recd_score_pool_config(const recd_score_pool_t *p)
{
    return &p->config;
}

int recd_score_pool_submit(recd_score_pool_t *p, recd_score_job_t *job)
{
    pthread_mutex_lock(&p->mutex);
    if (p->queued >= p->config.queue_max) {
        pthread_mutex_unlock(&p->mutex);
        recd_metric_add(p->shed, RECD_METRICS_SHARED, 1);
        return RECD_EBUSY;
    }
    job->next = NULL;
    job->_queued_ns = recd_monotonic_ns();
    if (p->tail != NULL)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    ++p->queued;
    recd_metric_set(p->depth, (double)p->queued);
    pthread_cond_broadcast(&p->more);
    pthread_mutex_unlock(&p->mutex);
    return 0;
}

void recd_score_pool_hold(recd_score_pool_t *p, size_t n)
{
    pthread_mutex_lock(&p->mutex);
    p->hold = n;
    pthread_cond_broadcast(&p->more);
    pthread_mutex_unlock(&p->mutex);
}

size_t recd_score_pool_queued(recd_score_pool_t *p)
{
    pthread_mutex_lock(&p->mutex);
    size_t n = p->queued;
    pthread_mutex_unlock(&p->mutex);
    return n;
}
