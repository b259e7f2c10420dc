/* bpr.c: Bayesian Personalised Ranking (BPR-OPT) for implicit feedback, trained by multi-threaded SGD. */
/*
 * DESIGN
 * An epoch draws nnz (user, positive, negative) triples and takes one SGD step on each. With threads > 1 the draws are
 * split evenly across threads that each own a PRNG (seeded from the user's seed and the thread number) and update the
 * shared factor matrices without locks: Hogwild! (Niu, Recht, Re & Wright 2011). Two threads rarely touch the same user
 * row in the same instant and a lost update on an item row is just noise in SGD, so quality is unaffected, but the
 * interleaving — and so the result — changes from run to run. threads == 1 runs on the calling thread, takes exactly the
 * same steps for the same seed and is bit-reproducible. Threads are started per epoch (a few microseconds, against
 * milliseconds of work) so that the epoch loss and the progress callback see a quiescent model.
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

typedef struct st_bpr_shared_t {
    const recd_csr_t *m;
    const uint32_t *users; /* users with at least one positive and one negative */
    size_t n_users;
    float *x, *y, *b;
    uint32_t k;
    float lr, reg, bias_reg;
} bpr_shared_t;

typedef struct st_bpr_worker_t {
    bpr_shared_t *shared;
    uint64_t rng;
    size_t samples;
    double loss; /* sum of -ln sigma(x_uij) over this epoch's samples */
    pthread_t tid;
} bpr_worker_t;

void recd_bpr_params_init(recd_bpr_params_t *p)
{
    memset(p, 0, sizeof(*p));
    /* chosen on a validation split carved out of MovieLens 100K's training part (docs/BENCHMARKS.md) */
    p->factors = 128;
    p->epochs = 200;
    p->learning_rate = 0.025f;
    p->reg = 0.02f;
    p->bias_reg = 0.01f;
    p->hooks.threads = 0;
    p->hooks.seed = 42;
}

/* The r-th (0-based) item not in the sorted row cols[0..len): with k row items before it, it is r + k, and k is the number
 * of row positions t with cols[t] - t <= r (that difference never decreases along a sorted row without duplicates). */
static uint32_t nth_absent(const uint32_t *cols, size_t len, uint64_t r)
{
    size_t lo = 0, hi = len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uint64_t)cols[mid] - mid <= r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)(r + lo);
}

SGD_HOGWILD static void run_samples(bpr_worker_t *w)
{
    const bpr_shared_t *s = w->shared;
    const recd_csr_t *m = s->m;
    const uint32_t k = s->k;
    const float lr = s->lr, reg = s->reg, bias_reg = s->bias_reg;
    double loss = 0;

    for (size_t n = 0; n != w->samples; ++n) {
        uint32_t u = s->users[recd_rand_below(&w->rng, s->n_users)];
        const uint32_t *row = m->col + m->row_ptr[u];
        size_t len = (size_t)(m->row_ptr[u + 1] - m->row_ptr[u]);
        uint32_t i = row[recd_rand_below(&w->rng, len)];
        uint32_t j = nth_absent(row, len, recd_rand_below(&w->rng, m->n_cols - len));

        float *restrict xu = s->x + (size_t)u * k;
        float *restrict yi = s->y + (size_t)i * k;
        float *restrict yj = s->y + (size_t)j * k;

        float xuij = s->b[i] - s->b[j] + sgd_dot_diff(xu, yi, yj, k);

        /* g = sigma(-x) = d(ln sigma(x))/dx, and -ln sigma(x), both computed without overflow */
        float g, nll;
        if (xuij >= 0) {
            float e = expf(-xuij);
            g = e / (1.0f + e);
            nll = log1pf(e);
        } else {
            float e = expf(xuij);
            g = 1.0f / (1.0f + e);
            nll = -xuij + log1pf(e);
        }
        loss += nll;

        uint32_t f = 0;
        for (; f + 4 <= k; f += 4) {
            sgd_v4f xf = sgd_load4(xu + f), yif = sgd_load4(yi + f), yjf = sgd_load4(yj + f);
            sgd_store4(xu + f, xf + lr * (g * (yif - yjf) - reg * xf));
            sgd_store4(yi + f, yif + lr * (g * xf - reg * yif));
            sgd_store4(yj + f, yjf + lr * (-g * xf - reg * yjf));
        }
        for (; f != k; ++f) {
            float xf = xu[f], yif = yi[f], yjf = yj[f];
            xu[f] = xf + lr * (g * (yif - yjf) - reg * xf);
            yi[f] = yif + lr * (g * xf - reg * yif);
            yj[f] = yjf + lr * (-g * xf - reg * yjf);
        }
        s->b[i] += lr * (g - bias_reg * s->b[i]);
        s->b[j] += lr * (-g - bias_reg * s->b[j]);
    }
    w->loss = loss;
}

static void *worker_main(void *arg)
{
    run_samples(arg);
    return NULL;
}

int recd_bpr_train(const recd_csr_t *user_items, const recd_bpr_params_t *p, float **user_factors, float **item_factors,
                   float **item_bias)
{
    const recd_csr_t *m = user_items;
    uint32_t *users = NULL;
    bpr_worker_t *workers = NULL;
    float *x = NULL, *y = NULL, *b = NULL;
    int ret = RECD_OK;

    if (m == NULL || p == NULL || user_factors == NULL || item_factors == NULL || item_bias == NULL || p->factors == 0 ||
        m->n_rows == 0 || m->n_cols == 0 || m->n_cols > UINT32_MAX || m->n_rows > UINT32_MAX || m->row_ptr == NULL ||
        (m->nnz != 0 && m->col == NULL) || !(p->learning_rate > 0) || !(p->reg >= 0) || !(p->bias_reg >= 0)) {
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

    /* start as implicit and Cornac do: uniform in (-0.5, 0.5) / factors, biases at zero */
    uint64_t init_rng = p->hooks.seed ^ UINT64_C(0x6270722d696e6974); /* "bpr-init" */
    x = recd_xmalloc(m->n_rows * k * sizeof(*x));
    y = recd_xmalloc(m->n_cols * k * sizeof(*y));
    b = recd_xcalloc(m->n_cols, sizeof(*b));
    for (size_t i = 0; i != m->n_rows * k; ++i)
        x[i] = (float)((recd_rand_uniform(&init_rng) - 0.5) / k);
    for (size_t i = 0; i != m->n_cols * k; ++i)
        y[i] = (float)((recd_rand_uniform(&init_rng) - 0.5) / k);

    size_t n_users = 0;
    users = recd_xmalloc(m->n_rows * sizeof(*users));
    for (size_t u = 0; u != m->n_rows; ++u) {
        uint64_t len = m->row_ptr[u + 1] - m->row_ptr[u];
        if (len != 0 && len < m->n_cols)
            users[n_users++] = (uint32_t)u;
    }

    bpr_shared_t shared = {m, users, n_users, x, y, b, k, p->learning_rate, p->reg, p->bias_reg};
    workers = recd_xcalloc(threads, sizeof(*workers));
    for (uint32_t t = 0; t != threads; ++t) {
        uint64_t seed_state = p->hooks.seed + t * UINT64_C(0x9E3779B97F4A7C15);
        workers[t].shared = &shared;
        workers[t].rng = recd_splitmix64(&seed_state);
    }

    const size_t samples = n_users != 0 ? m->nnz : 0;
    for (uint32_t epoch = 0; epoch != p->epochs; ++epoch) {
        double started = recd_monotonic_seconds(), loss = 0;
        uint32_t started_threads = 0;
        for (uint32_t t = 0; t != threads; ++t)
            workers[t].samples = samples / threads + (t < samples % threads);
        if (threads == 1) {
            run_samples(&workers[0]);
        } else {
            for (; started_threads != threads; ++started_threads)
                if (pthread_create(&workers[started_threads].tid, NULL, worker_main, &workers[started_threads]) != 0)
                    break;
            /* threads that could not be started run their share here */
            for (uint32_t t = started_threads; t != threads; ++t)
                run_samples(&workers[t]);
            for (uint32_t t = 0; t != started_threads; ++t)
                pthread_join(workers[t].tid, NULL);
        }
        for (uint32_t t = 0; t != threads; ++t)
            loss += workers[t].loss;
        if (samples != 0) {
            double penalty = 0.5 * p->reg * (sgd_sum_squares(x, m->n_rows * k) + sgd_sum_squares(y, m->n_cols * k)) +
                             0.5 * p->bias_reg * sgd_sum_squares(b, m->n_cols);
            loss = (loss + penalty) / (double)samples;
        }
        if (p->hooks.on_snapshot != NULL)
            p->hooks.on_snapshot(p->hooks.snapshot_data, epoch + 1, x, y, b);
        if (p->hooks.on_progress != NULL &&
            p->hooks.on_progress(p->hooks.progress_data, epoch + 1, loss, recd_monotonic_seconds() - started) != 0)
            break;
    }

    *user_factors = x;
    *item_factors = y;
    *item_bias = b;
    x = y = b = NULL;

Exit:
    free(x);
    free(y);
    free(b);
    free(users);
    free(workers);
    return ret;
}
