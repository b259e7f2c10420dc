/* eval_sampled.c: the sampled-negative protocol — each held-out item ranked among N sampled unseen items.
 *
 * Users are spread over threads by eval_for_each_user (eval.c). Each user's negatives come from a generator seeded by
 * (seed, user) alone, and each user's sums land in a per-user slot added up in user order, so the figures do not depend
 * on the thread count or on which thread took which user. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "models/model.h"
#include "models/eval_internal.h"
#include "models/train_internal.h"

enum { S_HIT, S_NDCG, S_MRR, S_AUC, S_MAP, S_LISTS, N_SUMS };

typedef struct st_sampled_scratch_t {
    float *scores;        /* n_items */
    uint32_t *candidates; /* n_items: the user's items in neither train nor test */
} sampled_scratch_t;

typedef struct st_sampled_job_t {
    const recd_csr_t *train, *test;
    uint32_t k;
    recd_sampled_protocol_t proto;
    recd_eval_score_cb score;
    void *data;
    sampled_scratch_t *scratch;
    double (*per_user)[N_SUMS];
} sampled_job_t;

/* NaN ranks lowest; a negative equal to the positive ranks above it. */
static float rank_key(float s)
{
    return isnan(s) ? -INFINITY : s;
}

/* The user's own generator: the seed and the user index hashed together, so streams of nearby users do not overlap. */
static uint64_t user_state(uint64_t seed, size_t user)
{
    uint64_t mix = seed ^ (UINT64_C(0xD1B54A32D192ED03) * ((uint64_t)user + 1));
    return recd_splitmix64(&mix);
}

static void sampled_user(void *ctx, uint32_t worker, size_t u)
{
    sampled_job_t *job = ctx;
    sampled_scratch_t *s = &job->scratch[worker];
    const recd_csr_t *train = job->train, *test = job->test;
    uint64_t b_begin = test->row_ptr[u], b_end = test->row_ptr[u + 1];
    if (b_begin == b_end)
        return;

    /* candidates: a merge walk over the two sorted rows */
    uint64_t a = train->row_ptr[u], a_end = train->row_ptr[u + 1], b = b_begin;
    size_t n_cand = 0;
    for (uint32_t i = 0; i != (uint32_t)train->n_cols; ++i) {
        while (a != a_end && train->col[a] < i)
            ++a;
        while (b != b_end && test->col[b] < i)
            ++b;
        if ((a == a_end || train->col[a] != i) && (b == b_end || test->col[b] != i))
            s->candidates[n_cand++] = i;
    }
    size_t n_neg = job->proto.n_negatives < n_cand ? job->proto.n_negatives : n_cand;
    if (n_neg == 0)
        return;

    job->score(job->data, (uint32_t)u, s->scores);
    uint64_t state = user_state(job->proto.seed, u);
    double *r = job->per_user[u];
    for (uint64_t j = b_begin; j != b_end; ++j) {
        uint32_t positive = test->col[j];
        if (eval_row_contains(train, u, positive))
            continue;
        /* partial Fisher-Yates: candidates[0..n_neg) become a uniform sample without replacement; the array stays a
         * permutation of the candidates, so the next list draws from all of them again */
        float x = rank_key(s->scores[positive]);
        size_t above = 0;
        for (size_t p = 0; p != n_neg; ++p) {
            size_t q = p + (size_t)recd_rand_below(&state, n_cand - p);
            uint32_t t = s->candidates[p];
            s->candidates[p] = s->candidates[q];
            s->candidates[q] = t;
            above += rank_key(s->scores[s->candidates[p]]) >= x;
        }
        size_t rank = above + 1;
        int hit = rank <= job->k;
        r[S_HIT] += hit;
        r[S_NDCG] += hit ? 1.0 / log2((double)rank + 1) : 0;
        r[S_MRR] += 1.0 / (double)rank;
        r[S_AUC] += (double)(n_neg - above) / (double)n_neg;
        r[S_MAP] += hit ? 1.0 / (double)rank : 0;
        r[S_LISTS] += 1;
    }
}

int recd_eval_sampled(const recd_csr_t *train, const recd_csr_t *test, uint32_t k, const recd_sampled_protocol_t *proto,
                      recd_eval_score_cb score, void *data, uint32_t threads, recd_ranking_metrics_t *out)
{
    memset(out, 0, sizeof(*out));
    out->k = k;
    if (train == NULL || test == NULL || proto == NULL || score == NULL || k == 0 || proto->n_negatives == 0 ||
        train->n_rows != test->n_rows || train->n_cols != test->n_cols || train->n_rows > UINT32_MAX || train->n_cols > UINT32_MAX)
        return RECD_EINVAL;
    threads = eval_thread_count(threads);

    sampled_job_t job = {.train = train, .test = test, .k = k, .proto = *proto, .score = score, .data = data};
    job.per_user = recd_xcalloc(test->n_rows, sizeof(*job.per_user));
    job.scratch = recd_xcalloc(threads, sizeof(*job.scratch));
    for (uint32_t t = 0; t != threads; ++t) {
        job.scratch[t].scores = recd_xmalloc(train->n_cols * sizeof(float));
        job.scratch[t].candidates = recd_xmalloc(train->n_cols * sizeof(uint32_t));
    }
    eval_for_each_user(test->n_rows, threads, sampled_user, &job);

    double sum[N_SUMS] = {0};
    for (size_t u = 0; u != test->n_rows; ++u) {
        if (job.per_user[u][S_LISTS] == 0)
            continue;
        ++out->users;
        for (int m = 0; m != N_SUMS; ++m)
            sum[m] += job.per_user[u][m];
    }
    out->pairs = (size_t)sum[S_LISTS];
    out->auc_users = out->users;
    if (out->pairs != 0) {
        double n = (double)out->pairs;
        out->hit_rate = sum[S_HIT] / n;
        out->recall = out->hit_rate;
        out->precision = out->hit_rate / k;
        out->ndcg = sum[S_NDCG] / n;
        out->mrr = sum[S_MRR] / n;
        out->auc = sum[S_AUC] / n;
        out->map = sum[S_MAP] / n;
    }

    for (uint32_t t = 0; t != threads; ++t) {
        free(job.scratch[t].scores);
        free(job.scratch[t].candidates);
    }
    free(job.scratch);
    free(job.per_user);
    return RECD_OK;
}
