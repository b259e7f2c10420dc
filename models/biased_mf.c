/* biased_mf.c: biased matrix factorisation for explicit ratings ("SVD" of Funk and Surprise), trained by SGD. */
/*
 * DESIGN
 * The ratings are copied once into an array of (user, item, rating) triples that is shuffled in place at the start of
 * every epoch (seeded), then walked in order — contiguous memory, one random row of each factor matrix per step. With
 * threads > 1 the shuffled array is cut into one contiguous chunk per thread and the threads update the shared
 * parameters without locks (Hogwild!, as in bpr.c): equally good, not bit-reproducible. threads == 1 runs on the calling
 * thread and is deterministic for a seed.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "models/model.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "models/sgd_internal.h"
#include "models/train_internal.h"

#define MAX_THREADS 256

typedef struct st_rating_t {
    uint32_t user, item;
    float value;
} rating_t;

typedef struct st_mf_shared_t {
    float *x, *y, *bu, *bi;
    float mu;
    uint32_t k;
    float lr, reg, bias_reg;
} mf_shared_t;

typedef struct st_mf_worker_t {
    const mf_shared_t *shared;
    const rating_t *ratings;
    size_t n;
    double sse; /* sum of squared errors before each step */
    pthread_t tid;
} mf_worker_t;

void recd_mf_params_init(recd_mf_params_t *p)
{
    memset(p, 0, sizeof(*p));
    /* chosen by 5-fold CV on MovieLens 100K with another shuffle seed than the reported one (docs/BENCHMARKS.md): Surprise's
     * SVD defaults with a 5x stronger L2 on the factors, a smaller start and 100 epochs */
    p->factors = 100;
    p->epochs = 100;
    p->learning_rate = 0.005f;
    p->reg = 0.1f;
    p->bias_reg = 0.02f;
    p->init_std = 0.02f;
    p->hooks.threads = 0;
    p->hooks.seed = 42;
}

SGD_HOGWILD static void run_ratings(mf_worker_t *w)
{
    const mf_shared_t *s = w->shared;
    const uint32_t k = s->k;
    const float lr = s->lr, reg = s->reg, bias_reg = s->bias_reg;
    double sse = 0;

    for (size_t n = 0; n != w->n; ++n) {
        const rating_t *r = &w->ratings[n];
        float *restrict xu = s->x + (size_t)r->user * k;
        float *restrict yi = s->y + (size_t)r->item * k;
        float *bu = s->bu + r->user, *bi = s->bi + r->item;

        float dot = sgd_dot_diff(xu, yi, NULL, k);
        float err = r->value - (s->mu + *bu + *bi + dot);
        sse += (double)err * err;
        *bu += lr * (err - bias_reg * *bu);
        *bi += lr * (err - bias_reg * *bi);
        uint32_t f = 0;
        for (; f + 4 <= k; f += 4) {
            sgd_v4f xf = sgd_load4(xu + f), yf = sgd_load4(yi + f);
            sgd_store4(xu + f, xf + lr * (err * yf - reg * xf));
            sgd_store4(yi + f, yf + lr * (err * xf - reg * yf));
        }
        for (; f != k; ++f) {
            float xf = xu[f], yf = yi[f];
            xu[f] = xf + lr * (err * yf - reg * xf);
            yi[f] = yf + lr * (err * xf - reg * yf);
        }
    }
    w->sse = sse;
}

static void *worker_main(void *arg)
{
    run_ratings(arg);
    return NULL;
}

int recd_mf_train(const recd_csr_t *ratings, const recd_mf_params_t *p, float **user_factors, float **item_factors,
                  float **user_bias, float **item_bias, float *global_mean)
{
    const recd_csr_t *m = ratings;
    rating_t *all = NULL;
    mf_worker_t *workers = NULL;
    float *x = NULL, *y = NULL, *bu = NULL, *bi = NULL;
    int ret = RECD_OK;

    if (m == NULL || p == NULL || user_factors == NULL || item_factors == NULL || user_bias == NULL || item_bias == NULL ||
        global_mean == NULL || p->factors == 0 || m->nnz == 0 || m->row_ptr == NULL || m->col == NULL || m->val == NULL ||
        m->n_rows > UINT32_MAX || m->n_cols > UINT32_MAX || !(p->learning_rate > 0) || !(p->reg >= 0) || !(p->bias_reg >= 0) ||
        !(p->init_std >= 0)) {
        ret = RECD_EINVAL;
        goto Exit;
    }

    const uint32_t k = p->factors;
    uint32_t threads = p->hooks.threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (uint32_t)n : 1;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;

    all = recd_xmalloc(m->nnz * sizeof(*all));
    double total = 0;
    for (size_t u = 0; u != m->n_rows; ++u) {
        for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j) {
            all[j] = (rating_t){(uint32_t)u, m->col[j], m->val[j]};
            total += m->val[j];
        }
    }
    const float mu = (float)(total / (double)m->nnz);

    uint64_t rng = p->hooks.seed ^ UINT64_C(0x6d662d696e697421); /* "mf-init!" */
    x = recd_xmalloc(m->n_rows * k * sizeof(*x));
    y = recd_xmalloc(m->n_cols * k * sizeof(*y));
    bu = recd_xcalloc(m->n_rows, sizeof(*bu));
    bi = recd_xcalloc(m->n_cols, sizeof(*bi));
    for (size_t i = 0; i != m->n_rows * k; ++i)
        x[i] = (float)(p->init_std * recd_rand_normal(&rng));
    for (size_t i = 0; i != m->n_cols * k; ++i)
        y[i] = (float)(p->init_std * recd_rand_normal(&rng));

    mf_shared_t shared = {x, y, bu, bi, mu, k, p->learning_rate, p->reg, p->bias_reg};
    workers = recd_xcalloc(threads, sizeof(*workers));
    for (uint32_t epoch = 0; epoch != p->epochs; ++epoch) {
        double started = recd_monotonic_seconds(), sse = 0;
        for (size_t n = m->nnz; n > 1; --n) { /* Fisher-Yates */
            size_t j = (size_t)recd_rand_below(&rng, n);
            rating_t t = all[n - 1];
            all[n - 1] = all[j];
            all[j] = t;
        }
        size_t offset = 0;
        for (uint32_t t = 0; t != threads; ++t) {
            workers[t].shared = &shared;
            workers[t].ratings = all + offset;
            workers[t].n = m->nnz / threads + (t < m->nnz % threads);
            offset += workers[t].n;
        }
        if (threads == 1) {
            run_ratings(&workers[0]);
        } else {
            uint32_t started_threads = 0;
            for (; started_threads != threads; ++started_threads)
                if (pthread_create(&workers[started_threads].tid, NULL, worker_main, &workers[started_threads]) != 0)
                    break;
            for (uint32_t t = started_threads; t != threads; ++t)
                run_ratings(&workers[t]);
            for (uint32_t t = 0; t != started_threads; ++t)
                pthread_join(workers[t].tid, NULL);
        }
        for (uint32_t t = 0; t != threads; ++t)
            sse += workers[t].sse;
        double penalty = p->reg * (sgd_sum_squares(x, m->n_rows * k) + sgd_sum_squares(y, m->n_cols * k)) +
                         p->bias_reg * (sgd_sum_squares(bu, m->n_rows) + sgd_sum_squares(bi, m->n_cols));
        double loss = (sse + penalty) / (double)m->nnz;
        if (p->hooks.on_snapshot != NULL) /* item biases, not user biases or mu: enough to rank items for a user */
            p->hooks.on_snapshot(p->hooks.snapshot_data, epoch + 1, x, y, bi);
        if (p->hooks.on_progress != NULL &&
            p->hooks.on_progress(p->hooks.progress_data, epoch + 1, loss, recd_monotonic_seconds() - started) != 0)
            break;
    }

    *user_factors = x;
    *item_factors = y;
    *user_bias = bu;
    *item_bias = bi;
    *global_mean = mu;
    x = y = bu = bi = NULL;

Exit:
    free(x);
    free(y);
    free(bu);
    free(bi);
    free(all);
    free(workers);
    return ret;
}

float recd_mf_predict(void *data, uint32_t user, uint32_t item)
{
    const recd_mf_model_t *model = data;
    const float *xu = model->user_factors + (size_t)user * model->factors;
    const float *yi = model->item_factors + (size_t)item * model->factors;
    float r = model->global_mean + model->user_bias[user] + model->item_bias[item];
    for (uint32_t f = 0; f != model->factors; ++f)
        r += xu[f] * yi[f];
    if (model->min_rating < model->max_rating)
        r = r < model->min_rating ? model->min_rating : r > model->max_rating ? model->max_rating : r;
    return r;
}
