/* eval.c: offline ranking evaluation — P@k, R@k, nDCG@k, MAP@k and HR@k over held-out interactions.
 *
 * DESIGN: users are handed out in chunks through an atomic counter to `threads` threads (the caller's thread is one of
 * them), each with its own score buffer and top-k array; the score callback must therefore be safe to call from several
 * threads at once. Each user's five metrics land in a per-user slot and are summed in user order at the end, so the
 * averages are the same whatever the thread count or scheduling. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include "models/model.h"
#include "models/train_internal.h"

#define CHUNK_USERS 16

typedef struct st_eval_job_t {
    const recd_csr_t *train, *test;
    uint32_t k;
    recd_eval_score_cb score;
    void *data;
    atomic_size_t next;
    /* per-user results, summed in user order afterwards so the averages do not depend on scheduling */
    double (*per_user)[5];
} eval_job_t;

typedef struct st_eval_worker_t {
    eval_job_t *job;
    float *scores;
    recd_scored_t *top;
    pthread_t tid;
} eval_worker_t;

/* Binary search in a sorted row. */
static int row_contains(const recd_csr_t *m, size_t u, uint32_t col)
{
    uint64_t lo = m->row_ptr[u], hi = m->row_ptr[u + 1];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (m->col[mid] < col)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->row_ptr[u + 1] && m->col[lo] == col;
}

static void eval_user(eval_job_t *job, eval_worker_t *w, size_t u)
{
    const recd_csr_t *train = job->train, *test = job->test;
    size_t n_test = test->row_ptr[u + 1] - test->row_ptr[u];
    double *r = job->per_user[u];

    job->score(job->data, (uint32_t)u, w->scores);
    for (uint64_t j = train->row_ptr[u]; j != train->row_ptr[u + 1]; ++j)
        w->scores[train->col[j]] = -INFINITY;
    size_t n_top = recd_topk(w->scores, train->n_cols, job->k, w->top);

    size_t hits = 0;
    double dcg = 0, ap = 0, idcg = 0;
    for (size_t rank = 0; rank != n_top; ++rank) {
        if (row_contains(test, u, w->top[rank].index)) {
            ++hits;
            dcg += 1.0 / log2((double)rank + 2);
            ap += (double)hits / (double)(rank + 1);
        }
    }
    size_t ideal = n_test < job->k ? n_test : job->k;
    for (size_t rank = 0; rank != ideal; ++rank)
        idcg += 1.0 / log2((double)rank + 2);
    r[0] = (double)hits / job->k;
    r[1] = (double)hits / n_test;
    r[2] = dcg / idcg;
    r[3] = ap / n_test;
    r[4] = hits != 0;
}

static void *run_eval_worker(void *arg)
{
    eval_worker_t *w = arg;
    eval_job_t *job = w->job;
    for (;;) {
        size_t start = atomic_fetch_add(&job->next, CHUNK_USERS);
        if (start >= job->test->n_rows)
            break;
        size_t stop = start + CHUNK_USERS < job->test->n_rows ? start + CHUNK_USERS : job->test->n_rows;
        for (size_t u = start; u != stop; ++u)
            if (job->test->row_ptr[u + 1] != job->test->row_ptr[u])
                eval_user(job, w, u);
    }
    return NULL;
}

int recd_eval_ranking(const recd_csr_t *train, const recd_csr_t *test, uint32_t k, recd_eval_score_cb score, void *data,
                      uint32_t threads, recd_ranking_metrics_t *out)
{
    memset(out, 0, sizeof(*out));
    out->k = k;
    if (train == NULL || test == NULL || score == NULL || k == 0 || train->n_rows != test->n_rows ||
        train->n_cols != test->n_cols || train->n_rows > UINT32_MAX)
        return RECD_EINVAL;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (uint32_t)n : 1;
    }
    if (threads > 256)
        threads = 256;

    eval_job_t job = {.train = train, .test = test, .k = k, .score = score, .data = data};
    atomic_init(&job.next, 0);
    job.per_user = train_xcalloc(test->n_rows, sizeof(*job.per_user));
    eval_worker_t *workers = train_xcalloc(threads, sizeof(*workers));
    uint32_t started = 0;
    for (uint32_t t = 0; t != threads; ++t) {
        workers[t].job = &job;
        workers[t].scores = train_xmalloc(train->n_cols * sizeof(float));
        workers[t].top = train_xmalloc((size_t)k * sizeof(recd_scored_t));
    }
    for (uint32_t t = 1; t < threads; ++t) {
        if (pthread_create(&workers[t].tid, NULL, run_eval_worker, &workers[t]) != 0)
            break;
        ++started;
    }
    run_eval_worker(&workers[0]);
    for (uint32_t t = 1; t <= started; ++t)
        pthread_join(workers[t].tid, NULL);

    double sum[5] = {0};
    for (size_t u = 0; u != test->n_rows; ++u) {
        if (test->row_ptr[u + 1] == test->row_ptr[u])
            continue;
        ++out->users;
        for (int m = 0; m != 5; ++m)
            sum[m] += job.per_user[u][m];
    }
    if (out->users != 0) {
        out->precision = sum[0] / out->users;
        out->recall = sum[1] / out->users;
        out->ndcg = sum[2] / out->users;
        out->map = sum[3] / out->users;
        out->hit_rate = sum[4] / out->users;
    }
    for (uint32_t t = 0; t != threads; ++t) {
        free(workers[t].scores);
        free(workers[t].top);
    }
    free(workers);
    free(job.per_user);
    return RECD_OK;
}
