/* als.c: implicit-feedback ALS (Hu, Koren & Volinsky 2008) with OpenBLAS/LAPACKE, rows solved on our own threads.
 *
 * DESIGN: each half-step fixes one side's factors Y, computes G = Y^T Y once (ssyrk), then solves every row u of the
 * other side independently: (G + Y_u^T (C_u - I) Y_u + reg I) x_u = Y_u^T C_u p_u, where Y_u are the factors of the
 * row's stored entries, c = 1 + alpha * value and p = 1 for every stored entry (0 with c = 1 elsewhere). The correction
 * term is built by gathering sqrt(c - 1) * y_i into a per-thread buffer and one ssyrk per block; the system is solved by
 * Cholesky (sposv). Rows are handed out in small chunks through an atomic counter; since a row's result does not depend
 * on which thread solves it, the factors depend only on the seed. BLAS runs single-threaded meanwhile (restored after).
 *
 * Loss after each iteration, without touching the dense matrix:
 *   sum_{u,i} c (p - s)^2 = sum_{all} s^2 + sum_{stored} [c (1 - s)^2 - s^2], and sum_{all} s^2 = <X^T X, Y^T Y>_F,
 * plus reg (||X||^2 + ||Y||^2) = reg (tr X^T X + tr Y^T Y). The stored-entry part is summed per user row during the user
 * half-step (right after x_u is solved) and added up in row order, so it too is independent of scheduling.
 *
 * X starts random and each iteration solves items then users, so the user factors returned satisfy their normal
 * equations for the item factors returned: folding a known user in from its training row reproduces its stored vector. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>
#include <lapacke.h>
#include "models/model.h"
#include "models/train_internal.h"

#define CHUNK_ROWS 8
#define GATHER_ROWS 256 /* rows of Y_u gathered per ssyrk call */

typedef struct st_half_step_t {
    const recd_csr_t *m; /* rows to solve; columns index `fixed` */
    const float *fixed;  /* n_cols x f */
    float *out;          /* n_rows x f */
    const float *gram;   /* f x f, lower triangle (column-major) of fixed^T fixed */
    double *row_loss;    /* n_rows, or NULL: sum over the row's stored entries of c (1 - s)^2 - s^2 */
    float alpha, reg;
    uint32_t f;
    atomic_size_t next;
    atomic_int failed;
} half_step_t;

typedef struct st_worker_t {
    half_step_t *hs;
    float *A, *b, *gather;
    pthread_t tid;
} worker_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* b += c y and g = s y. Unrolled by 8 over restrict pointers so that -O2 (GCC's SLP vectorizer) emits vector code. */
static void accumulate_gather(uint32_t f, float c, float s, const float *restrict y, float *restrict b, float *restrict g)
{
    uint32_t k = 0;
    for (; k + 8 <= f; k += 8) {
        b[k + 0] += c * y[k + 0];
        b[k + 1] += c * y[k + 1];
        b[k + 2] += c * y[k + 2];
        b[k + 3] += c * y[k + 3];
        b[k + 4] += c * y[k + 4];
        b[k + 5] += c * y[k + 5];
        b[k + 6] += c * y[k + 6];
        b[k + 7] += c * y[k + 7];
        g[k + 0] = s * y[k + 0];
        g[k + 1] = s * y[k + 1];
        g[k + 2] = s * y[k + 2];
        g[k + 3] = s * y[k + 3];
        g[k + 4] = s * y[k + 4];
        g[k + 5] = s * y[k + 5];
        g[k + 6] = s * y[k + 6];
        g[k + 7] = s * y[k + 7];
    }
    for (; k != f; ++k) {
        b[k] += c * y[k];
        g[k] = s * y[k];
    }
}

static int solve_row(half_step_t *hs, worker_t *w, size_t u)
{
    const uint32_t f = hs->f;
    const uint64_t begin = hs->m->row_ptr[u], end = hs->m->row_ptr[u + 1];
    float *x = hs->out + u * f, *A = w->A, *b = w->b;

    if (begin == end) { /* no stored entries: p = 0 everywhere, so x = 0 exactly */
        memset(x, 0, f * sizeof(*x));
        if (hs->row_loss != NULL)
            hs->row_loss[u] = 0;
        return 0;
    }
    memcpy(A, hs->gram, (size_t)f * f * sizeof(*A));
    for (uint32_t k = 0; k != f; ++k)
        A[(size_t)k * f + k] += hs->reg;
    memset(b, 0, f * sizeof(*b));

    size_t n_gathered = 0;
    for (uint64_t j = begin; j != end; ++j) {
        const float *y = hs->fixed + (size_t)hs->m->col[j] * f;
        float cm1 = hs->alpha * hs->m->val[j], c = 1 + cm1;
        if (cm1 >= 0) {
            accumulate_gather(f, c, sqrtf(cm1), y, b, w->gather + n_gathered * f);
            if (++n_gathered == GATHER_ROWS) {
                cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, f, (int)n_gathered, 1.0f, w->gather, f, 1.0f, A, f);
                n_gathered = 0;
            }
        } else { /* a negative value lowers the confidence below 1: rank-1 downdate (may lose definiteness) */
            cblas_saxpy(f, c, y, 1, b, 1);
            cblas_ssyr(CblasColMajor, CblasLower, f, cm1, y, 1, A, f);
        }
    }
    if (n_gathered != 0)
        cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, f, (int)n_gathered, 1.0f, w->gather, f, 1.0f, A, f);

    if (LAPACKE_sposv_work(LAPACK_COL_MAJOR, 'L', f, 1, A, f, b, f) != 0)
        return -1;
    for (uint32_t k = 0; k != f; ++k)
        if (!isfinite(b[k]))
            return -1;
    memcpy(x, b, f * sizeof(*x));

    if (hs->row_loss != NULL) {
        double loss = 0;
        for (uint64_t j = begin; j != end; ++j) {
            double s = cblas_sdot(f, x, 1, hs->fixed + (size_t)hs->m->col[j] * f, 1);
            double c = 1 + (double)hs->alpha * hs->m->val[j];
            loss += c * (1 - s) * (1 - s) - s * s;
        }
        hs->row_loss[u] = loss;
    }
    return 0;
}

static void *run_worker(void *arg)
{
    worker_t *w = arg;
    half_step_t *hs = w->hs;
    for (;;) {
        size_t start = atomic_fetch_add(&hs->next, CHUNK_ROWS);
        if (start >= hs->m->n_rows || atomic_load(&hs->failed))
            break;
        size_t stop = start + CHUNK_ROWS < hs->m->n_rows ? start + CHUNK_ROWS : hs->m->n_rows;
        for (size_t u = start; u != stop; ++u) {
            if (solve_row(hs, w, u) != 0) {
                atomic_store(&hs->failed, 1);
                return NULL;
            }
        }
    }
    return NULL;
}

/* G = F^T F for F row-major n x f (= column-major f x n); lower triangle, column-major (OpenBLAS's lower-triangle ssyrk and spotrf
 * measured about 20 % faster here than upper). */
static void gram(const float *F, size_t n, uint32_t f, float *G)
{
    memset(G, 0, (size_t)f * f * sizeof(*G));
    if (n != 0)
        cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, f, (int)n, 1.0f, F, f, 0.0f, G, f);
}

static int half_step(half_step_t *hs, worker_t *workers, uint32_t n_threads)
{
    atomic_store(&hs->next, 0);
    atomic_store(&hs->failed, 0);
    uint32_t started = 0;
    for (uint32_t t = 1; t < n_threads; ++t) {
        workers[t].hs = hs;
        if (pthread_create(&workers[t].tid, NULL, run_worker, &workers[t]) != 0)
            break; /* the threads that did start (and this one) share the rows */
        ++started;
    }
    workers[0].hs = hs;
    run_worker(&workers[0]);
    for (uint32_t t = 1; t <= started; ++t)
        pthread_join(workers[t].tid, NULL);
    return atomic_load(&hs->failed) ? RECD_ENUMERIC : RECD_OK;
}

/* <Gx, Gy>_F and the traces, from lower triangles. */
static double gram_loss(const float *Gx, const float *Gy, uint32_t f, float reg)
{
    double frob = 0, tr = 0;
    for (uint32_t c = 0; c != f; ++c) {
        for (uint32_t r = 0; r < c; ++r)
            frob += 2.0 * Gx[(size_t)r * f + c] * Gy[(size_t)r * f + c];
        frob += (double)Gx[(size_t)c * f + c] * Gy[(size_t)c * f + c];
        tr += (double)Gx[(size_t)c * f + c] + Gy[(size_t)c * f + c];
    }
    return frob + reg * tr;
}

void recd_als_params_init(recd_als_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->factors = 64;
    p->iterations = 15;
    /* Chosen on a validation split of MovieLens 100K with ratings 1..5 as values (docs/BENCHMARKS.md): confidences 3..11
     * and a strong L2. */
    p->alpha = 2.0f;
    p->reg = 50.0f;
    p->threads = 0;
    p->seed = 42;
}

int recd_als_train(const recd_csr_t *user_items, const recd_als_params_t *p, float **user_factors, float **item_factors)
{
    recd_csr_t item_users = {0};
    float *X = NULL, *Y = NULL, *Gx = NULL, *Gy = NULL;
    double *user_loss = NULL;
    worker_t *workers = NULL;
    uint32_t n_threads = 0;
    int ret = RECD_OK, saved_blas_threads = openblas_get_num_threads();

    *user_factors = NULL;
    *item_factors = NULL;
    if (user_items == NULL || p == NULL || p->factors == 0 || p->factors > 4096 || !(p->alpha >= 0) || !(p->reg >= 0) ||
        !isfinite(p->alpha) || !isfinite(p->reg) || user_items->n_rows > INT32_MAX || user_items->n_cols > INT32_MAX)
        return RECD_EINVAL;
    const uint32_t f = p->factors;
    const size_t n_users = user_items->n_rows, n_items = user_items->n_cols;
    if ((ret = recd_csr_transpose(user_items, &item_users)) != RECD_OK)
        return ret;

    n_threads = p->threads;
    if (n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (uint32_t)n : 1;
    }
    if (n_threads > 256)
        n_threads = 256;

    X = train_xmalloc(n_users * f * sizeof(*X));
    Y = train_xcalloc(n_items * f, sizeof(*Y));
    Gx = train_xmalloc((size_t)f * f * sizeof(*Gx));
    Gy = train_xmalloc((size_t)f * f * sizeof(*Gy));
    user_loss = train_xcalloc(n_users, sizeof(*user_loss));
    { /* X ~ N(0, 0.01^2) from the seed; Y is solved first, so it needs no start */
        uint64_t state = p->seed;
        for (size_t i = 0; i != n_users * f; ++i)
            X[i] = (float)(0.01 * train_normal(&state));
    }
    workers = train_xcalloc(n_threads, sizeof(*workers));
    for (uint32_t t = 0; t != n_threads; ++t) {
        workers[t].A = train_xmalloc((size_t)f * f * sizeof(float));
        workers[t].b = train_xmalloc(f * sizeof(float));
        workers[t].gather = train_xmalloc((size_t)GATHER_ROWS * f * sizeof(float));
    }

    openblas_set_num_threads(1);
    gram(X, n_users, f, Gx);
    for (uint32_t it = 0; it != p->iterations; ++it) {
        double t0 = now();
        half_step_t items = {.m = &item_users, .fixed = X, .out = Y, .gram = Gx, .alpha = p->alpha, .reg = p->reg, .f = f};
        if ((ret = half_step(&items, workers, n_threads)) != RECD_OK)
            goto Exit;
        gram(Y, n_items, f, Gy);
        half_step_t users = {.m = user_items,
                             .fixed = Y,
                             .out = X,
                             .gram = Gy,
                             .row_loss = p->on_progress != NULL ? user_loss : NULL,
                             .alpha = p->alpha,
                             .reg = p->reg,
                             .f = f};
        if ((ret = half_step(&users, workers, n_threads)) != RECD_OK)
            goto Exit;
        gram(X, n_users, f, Gx);
        if (p->on_progress != NULL) { /* the loss costs one dot product per stored entry: only when someone listens */
            double loss = gram_loss(Gx, Gy, f, p->reg);
            for (size_t u = 0; u != n_users; ++u)
                loss += user_loss[u];
            if (p->on_progress(p->progress_data, it + 1, loss, now() - t0) != 0)
                break;
        }
    }

Exit:
    openblas_set_num_threads(saved_blas_threads > 0 ? saved_blas_threads : 1);
    if (workers != NULL) {
        for (uint32_t t = 0; t != n_threads; ++t) {
            free(workers[t].A);
            free(workers[t].b);
            free(workers[t].gather);
        }
        free(workers);
    }
    free(Gx);
    free(Gy);
    free(user_loss);
    recd_csr_dispose(&item_users);
    if (ret == RECD_OK) {
        *user_factors = X;
        *item_factors = Y;
    } else {
        free(X);
        free(Y);
    }
    return ret;
}
