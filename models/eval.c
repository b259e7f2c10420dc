/* eval.c: offline ranking evaluation — P@k, R@k, nDCG@k, MAP@k, HR@k, MRR@k, AUC and coverage over held-out interactions.
 *
 * DESIGN: users are handed out in chunks through an atomic counter to `threads` threads (the caller's thread is one of
 * them), each with its own score buffer, top-k array and scratch; the score callback must therefore be safe to call from
 * several threads at once. Each user's metrics land in a per-user slot and are summed in user order at the end, and the
 * items recommended are marked in per-thread sets that are united at the end, so every figure is the same whatever the
 * thread count or scheduling. eval_for_each_user is shared with eval_sampled.c. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "models/model.h"
#include "models/eval_internal.h"
#include "models/train_internal.h"

#define CHUNK_USERS 16

enum { M_PRECISION, M_RECALL, M_NDCG, M_MAP, M_HIT, M_MRR, M_AUC, M_AUC_VALID, N_PER_USER };

typedef struct st_eval_loop_t {
    size_t n_users;
    eval_user_fn fn;
    void *ctx;
    atomic_size_t next;
} eval_loop_t;

typedef struct st_eval_loop_worker_t {
    eval_loop_t *loop;
    uint32_t index;
    pthread_t tid;
} eval_loop_worker_t;

static void *run_loop_worker(void *arg)
{
    eval_loop_worker_t *w = arg;
    eval_loop_t *loop = w->loop;
    for (;;) {
        size_t start = atomic_fetch_add(&loop->next, CHUNK_USERS);
        if (start >= loop->n_users)
            break;
        size_t stop = start + CHUNK_USERS < loop->n_users ? start + CHUNK_USERS : loop->n_users;
        for (size_t u = start; u != stop; ++u)
            loop->fn(loop->ctx, w->index, u);
    }
    return NULL;
}

uint32_t eval_thread_count(uint32_t threads)
{
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (uint32_t)n : 1;
    }
    return threads > EVAL_MAX_THREADS ? EVAL_MAX_THREADS : threads;
}

void eval_for_each_user(size_t n_users, uint32_t threads, eval_user_fn fn, void *ctx)
{
    eval_loop_t loop = {.n_users = n_users, .fn = fn, .ctx = ctx};
    atomic_init(&loop.next, 0);
    eval_loop_worker_t *workers = recd_xcalloc(threads, sizeof(*workers));
    uint32_t started = 0;
    for (uint32_t t = 0; t != threads; ++t) {
        workers[t].loop = &loop;
        workers[t].index = t;
    }
    for (uint32_t t = 1; t < threads; ++t) {
        if (pthread_create(&workers[t].tid, NULL, run_loop_worker, &workers[t]) != 0)
            break;
        ++started;
    }
    run_loop_worker(&workers[0]);
    for (uint32_t t = 1; t <= started; ++t)
        pthread_join(workers[t].tid, NULL);
    free(workers);
}

typedef struct st_eval_scratch_t {
    float *scores;      /* n_items */
    float *positives;   /* n_items: rank keys of the user's test items, for AUC */
    recd_scored_t *top; /* k */
    uint8_t *covered;   /* n_items: items this worker put in some top k */
} eval_scratch_t;

typedef struct st_eval_job_t {
    const recd_csr_t *train, *test;
    uint32_t k;
    recd_eval_score_cb score;
    void *data;
    eval_scratch_t *scratch; /* one per worker */
    double (*per_user)[N_PER_USER];
} eval_job_t;

/* Non-finite scores (never recommended by recd_topk) and NaN rank lowest, all equal to each other. */
static float rank_key(float s)
{
    return isfinite(s) ? s : -INFINITY;
}

static int compare_float(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

/* The first index in sorted a[0..n) whose value is not below x (upper: not below-or-equal). */
static size_t lower_bound(const float *a, size_t n, float x, int upper)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x || (upper && a[mid] == x))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* AUC over the whole catalogue: test items not in train against items in neither; -1 when either side is empty. Only the
 * positives are sorted (a user has few); each negative then finds by binary search how many positives beat or tie it, so a
 * user costs O(n_items log |test|). The counts are whole and half numbers, exact in a double. */
static double user_auc(const eval_job_t *job, eval_scratch_t *s, size_t u)
{
    const recd_csr_t *train = job->train, *test = job->test;
    uint64_t a = train->row_ptr[u], a_end = train->row_ptr[u + 1], b = test->row_ptr[u], b_end = test->row_ptr[u + 1];
    size_t n_pos = 0, n_neg = 0;
    for (uint64_t j = b; j != b_end; ++j)
        if (!eval_row_contains(train, u, test->col[j]))
            s->positives[n_pos++] = rank_key(s->scores[test->col[j]]);
    qsort(s->positives, n_pos, sizeof(float), compare_float);

    double wins = 0;
    for (uint32_t i = 0; i != (uint32_t)train->n_cols; ++i) {
        while (a != a_end && train->col[a] < i)
            ++a;
        while (b != b_end && test->col[b] < i)
            ++b;
        if ((a != a_end && train->col[a] == i) || (b != b_end && test->col[b] == i))
            continue;
        float y = rank_key(s->scores[i]);
        size_t below = lower_bound(s->positives, n_pos, y, 0), not_above = lower_bound(s->positives, n_pos, y, 1);
        wins += (double)(n_pos - not_above) + 0.5 * (double)(not_above - below);
        ++n_neg;
    }
    if (n_pos == 0 || n_neg == 0)
        return -1;
    return wins / ((double)n_pos * (double)n_neg);
}

static void eval_user(void *ctx, uint32_t worker, size_t u)
{
    eval_job_t *job = ctx;
    eval_scratch_t *s = &job->scratch[worker];
    const recd_csr_t *train = job->train, *test = job->test;
    size_t n_test = test->row_ptr[u + 1] - test->row_ptr[u];
    double *r = job->per_user[u];
    if (n_test == 0)
        return;

    job->score(job->data, (uint32_t)u, s->scores);
    double auc = user_auc(job, s, u);
    for (uint64_t j = train->row_ptr[u]; j != train->row_ptr[u + 1]; ++j)
        s->scores[train->col[j]] = -INFINITY;
    size_t n_top = recd_topk(s->scores, train->n_cols, job->k, s->top);

    size_t hits = 0;
    double dcg = 0, ap = 0, idcg = 0, rr = 0;
    for (size_t rank = 0; rank != n_top; ++rank) {
        s->covered[s->top[rank].index] = 1;
        if (eval_row_contains(test, u, s->top[rank].index)) {
            if (hits++ == 0)
                rr = 1.0 / (double)(rank + 1);
            dcg += 1.0 / log2((double)rank + 2);
            ap += (double)hits / (double)(rank + 1);
        }
    }
    size_t ideal = n_test < job->k ? n_test : job->k;
    for (size_t rank = 0; rank != ideal; ++rank)
        idcg += 1.0 / log2((double)rank + 2);
    r[M_PRECISION] = (double)hits / job->k;
    r[M_RECALL] = (double)hits / n_test;
    r[M_NDCG] = dcg / idcg;
    r[M_MAP] = ap / n_test;
    r[M_HIT] = hits != 0;
    r[M_MRR] = rr;
    r[M_AUC] = auc >= 0 ? auc : 0;
    r[M_AUC_VALID] = auc >= 0;
}

int recd_eval_ranking(const recd_csr_t *train, const recd_csr_t *test, uint32_t k, recd_eval_score_cb score, void *data,
                      uint32_t threads, recd_ranking_metrics_t *out)
{
    memset(out, 0, sizeof(*out));
    out->k = k;
    if (train == NULL || test == NULL || score == NULL || k == 0 || train->n_rows != test->n_rows ||
        train->n_cols != test->n_cols || train->n_rows > UINT32_MAX || train->n_cols > UINT32_MAX)
        return RECD_EINVAL;
    threads = eval_thread_count(threads);

    eval_job_t job = {.train = train, .test = test, .k = k, .score = score, .data = data};
    job.per_user = recd_xcalloc(test->n_rows, sizeof(*job.per_user));
    job.scratch = recd_xcalloc(threads, sizeof(*job.scratch));
    for (uint32_t t = 0; t != threads; ++t) {
        job.scratch[t].scores = recd_xmalloc(train->n_cols * sizeof(float));
        job.scratch[t].positives = recd_xmalloc(train->n_cols * sizeof(float));
        job.scratch[t].top = recd_xmalloc((size_t)k * sizeof(recd_scored_t));
        job.scratch[t].covered = recd_xcalloc(train->n_cols, 1);
    }
    eval_for_each_user(test->n_rows, threads, eval_user, &job);

    double sum[N_PER_USER] = {0};
    for (size_t u = 0; u != test->n_rows; ++u) {
        size_t n_test = test->row_ptr[u + 1] - test->row_ptr[u];
        if (n_test == 0)
            continue;
        ++out->users;
        out->pairs += n_test;
        for (int m = 0; m != N_PER_USER; ++m)
            sum[m] += job.per_user[u][m];
    }
    if (out->users != 0) {
        out->precision = sum[M_PRECISION] / out->users;
        out->recall = sum[M_RECALL] / out->users;
        out->ndcg = sum[M_NDCG] / out->users;
        out->map = sum[M_MAP] / out->users;
        out->hit_rate = sum[M_HIT] / out->users;
        out->mrr = sum[M_MRR] / out->users;
    }
    out->auc_users = (size_t)sum[M_AUC_VALID];
    if (out->auc_users != 0)
        out->auc = sum[M_AUC] / out->auc_users;
    size_t covered = 0;
    for (size_t i = 0; i != train->n_cols; ++i) {
        int any = 0;
        for (uint32_t t = 0; t != threads; ++t)
            any |= job.scratch[t].covered[i];
        covered += any != 0;
    }
    if (train->n_cols != 0)
        out->coverage = (double)covered / (double)train->n_cols;

    for (uint32_t t = 0; t != threads; ++t) {
        free(job.scratch[t].scores);
        free(job.scratch[t].positives);
        free(job.scratch[t].top);
        free(job.scratch[t].covered);
    }
    free(job.scratch);
    free(job.per_user);
    return RECD_OK;
}
