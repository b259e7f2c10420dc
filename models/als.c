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
 * Conjugate-gradient solver (RECD_ALS_CG; Takacs, Pilaszy & Tikk 2011, as in the `implicit` library): instead of forming
 * the row's matrix, a few CG steps are taken from the row's current vector, with A p = (G + reg I) p + sum_i (c_i - 1)
 * (y_i . p) y_i computed sparsely from the row's stored entries, so a step costs O(f^2 + nnz_u f) instead of the
 * O(nnz_u f^2 + f^3) of building and factorising A. CG never raises a row's quadratic objective, so the loss still does not
 * rise from iteration to iteration. The per-row kernels use GCC vector extensions and are compiled twice, for baseline
 * x86-64 and for AVX2+FMA, picked at run time from the CPU (the binary runs on any x86-64; -DRECD_ALS_NO_AVX2 builds the
 * baseline copy only, to test it). The two copies round differently (FMA), so factors are bit-identical for a seed on
 * one machine, not across CPUs -- as with OpenBLAS, whose kernels also depend on the CPU.
 *
 * X starts random and each iteration solves items then users, so the user factors returned satisfy their normal
 * equations for the item factors returned: folding a known user in from its training row reproduces its stored vector.
 * With CG the last user half-step is therefore solved exactly (Cholesky) too. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>
#include <lapacke.h>
#include "models/model.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "models/train_internal.h"

#define CHUNK_ROWS 8
#define GATHER_ROWS 256 /* rows of Y_u gathered per ssyrk call */

typedef struct st_half_step_t half_step_t;
typedef struct st_worker_t worker_t;
typedef int (*solve_fn)(half_step_t *hs, worker_t *w, size_t u);

struct st_half_step_t {
    const recd_csr_t *m; /* rows to solve; columns index `fixed` */
    const float *fixed;  /* n_cols x f */
    float *out;          /* n_rows x f; for CG also the warm start */
    const float *gram;   /* Cholesky: f x f, lower triangle (column-major) of fixed^T fixed; CG: full fixed^T fixed + reg I */
    double *row_loss;    /* n_rows, or NULL: sum over the row's stored entries of c (1 - s)^2 - s^2 */
    float alpha, reg;
    uint32_t f, cg_steps;
    solve_fn solve;
    atomic_size_t next;
    atomic_int failed;
};

struct st_worker_t {
    half_step_t *hs;
    float *A, *b, *gather; /* Cholesky */
    float *r, *p, *Ap;     /* CG */
    pthread_t tid;
};

/* ---- vector kernels: always inlined into the baseline and the AVX2+FMA copies of the row solvers ---- */

#define KERNEL static inline __attribute__((always_inline))

/* 8 floats: one AVX register in the AVX2 copies, two SSE registers in the baseline ones. */
typedef float v8sf __attribute__((vector_size(32)));

/* Unaligned loads and stores, and the sum of the lanes; macros, so no vector ever crosses a function boundary of the
 * baseline copy (whose ABI passes 32-byte vectors differently). */
#define LOAD8(p)                                                                                                                   \
    ({                                                                                                                             \
        v8sf v_;                                                                                                                   \
        memcpy(&v_, (p), sizeof(v_));                                                                                              \
        v_;                                                                                                                        \
    })
#define STORE8(p, v)                                                                                                               \
    do {                                                                                                                           \
        v8sf s_ = (v);                                                                                                             \
        memcpy((p), &s_, sizeof(s_));                                                                                              \
    } while (0)
#define HSUM8(v)                                                                                                                   \
    ({                                                                                                                             \
        v8sf h_ = (v);                                                                                                             \
        ((h_[0] + h_[4]) + (h_[1] + h_[5])) + ((h_[2] + h_[6]) + (h_[3] + h_[7]));                                                 \
    })

KERNEL float dot_k(const float *restrict a, const float *restrict b, uint32_t f)
{
    v8sf s0 = {0}, s1 = {0};
    uint32_t k = 0;
    for (; k + 16 <= f; k += 16) {
        s0 += LOAD8(a + k) * LOAD8(b + k);
        s1 += LOAD8(a + k + 8) * LOAD8(b + k + 8);
    }
    for (; k + 8 <= f; k += 8)
        s0 += LOAD8(a + k) * LOAD8(b + k);
    float t = 0;
    for (; k != f; ++k)
        t += a[k] * b[k];
    return HSUM8(s0 + s1) + t;
}

/* y += a x */
KERNEL void axpy_k(float a, const float *restrict x, float *restrict y, uint32_t f)
{
    v8sf va = {a, a, a, a, a, a, a, a};
    uint32_t k = 0;
    for (; k + 8 <= f; k += 8)
        STORE8(y + k, LOAD8(y + k) + va * LOAD8(x + k));
    for (; k != f; ++k)
        y[k] += a * x[k];
}

/* y = x + a y */
KERNEL void xpay_k(const float *restrict x, float a, float *restrict y, uint32_t f)
{
    v8sf va = {a, a, a, a, a, a, a, a};
    uint32_t k = 0;
    for (; k + 8 <= f; k += 8)
        STORE8(y + k, LOAD8(x + k) + va * LOAD8(y + k));
    for (; k != f; ++k)
        y[k] = x[k] + a * y[k];
}

/* y = G x for a full symmetric f x f G (row c = column c): 32 outputs at a time in four registers, so the four FMA chains
 * overlap instead of waiting on one another. */
KERNEL void symv_k(const float *restrict G, const float *restrict x, float *restrict y, uint32_t f)
{
    uint32_t k = 0;
    for (; k + 32 <= f; k += 32) {
        v8sf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (uint32_t c = 0; c != f; ++c) {
            float xc = x[c];
            v8sf vx = {xc, xc, xc, xc, xc, xc, xc, xc};
            const float *g = G + (size_t)c * f + k;
            a0 += vx * LOAD8(g);
            a1 += vx * LOAD8(g + 8);
            a2 += vx * LOAD8(g + 16);
            a3 += vx * LOAD8(g + 24);
        }
        STORE8(y + k, a0);
        STORE8(y + k + 8, a1);
        STORE8(y + k + 16, a2);
        STORE8(y + k + 24, a3);
    }
    for (; k + 8 <= f; k += 8) {
        v8sf acc = {0};
        for (uint32_t c = 0; c != f; ++c) {
            float xc = x[c];
            acc += (v8sf){xc, xc, xc, xc, xc, xc, xc, xc} * LOAD8(G + (size_t)c * f + k);
        }
        STORE8(y + k, acc);
    }
    for (; k != f; ++k) {
        float acc = 0;
        for (uint32_t c = 0; c != f; ++c)
            acc += x[c] * G[(size_t)c * f + k];
        y[k] = acc;
    }
}

/* Four dot products y_j . v at once (one pass over v, four independent FMA chains). */
KERNEL void dot4_k(const float *restrict y0, const float *restrict y1, const float *restrict y2, const float *restrict y3,
                   const float *restrict v, uint32_t f, float *d)
{
    v8sf s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    uint32_t k = 0;
    for (; k + 8 <= f; k += 8) {
        v8sf vv = LOAD8(v + k);
        s0 += LOAD8(y0 + k) * vv;
        s1 += LOAD8(y1 + k) * vv;
        s2 += LOAD8(y2 + k) * vv;
        s3 += LOAD8(y3 + k) * vv;
    }
    float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    for (; k != f; ++k) {
        t0 += y0[k] * v[k];
        t1 += y1[k] * v[k];
        t2 += y2[k] * v[k];
        t3 += y3[k] * v[k];
    }
    d[0] = HSUM8(s0) + t0;
    d[1] = HSUM8(s1) + t1;
    d[2] = HSUM8(s2) + t2;
    d[3] = HSUM8(s3) + t3;
}

/* out += a0 y0 + a1 y1 + a2 y2 + a3 y3 (one load and store of out for four rows) */
KERNEL void axpy4_k(const float *a, const float *restrict y0, const float *restrict y1, const float *restrict y2,
                    const float *restrict y3, float *restrict out, uint32_t f)
{
    v8sf v0 = {a[0], a[0], a[0], a[0], a[0], a[0], a[0], a[0]}, v1 = {a[1], a[1], a[1], a[1], a[1], a[1], a[1], a[1]},
         v2 = {a[2], a[2], a[2], a[2], a[2], a[2], a[2], a[2]}, v3 = {a[3], a[3], a[3], a[3], a[3], a[3], a[3], a[3]};
    uint32_t k = 0;
    for (; k + 8 <= f; k += 8)
        STORE8(out + k, LOAD8(out + k) + ((v0 * LOAD8(y0 + k) + v1 * LOAD8(y1 + k)) + (v2 * LOAD8(y2 + k) + v3 * LOAD8(y3 + k))));
    for (; k != f; ++k)
        out[k] += (a[0] * y0[k] + a[1] * y1[k]) + (a[2] * y2[k] + a[3] * y3[k]);
}

/* b += c y and g = s y: the Cholesky path's gather. */
KERNEL void accumulate_gather(uint32_t f, float c, float s, const float *restrict y, float *restrict b, float *restrict g)
{
    v8sf vc = {c, c, c, c, c, c, c, c}, vs = {s, s, s, s, s, s, s, s};
    uint32_t k = 0;
    for (; k + 8 <= f; k += 8) {
        v8sf v = LOAD8(y + k);
        STORE8(b + k, LOAD8(b + k) + vc * v);
        STORE8(g + k, vs * v);
    }
    for (; k != f; ++k) {
        b[k] += c * y[k];
        g[k] = s * y[k];
    }
}

/* Sum over the row's stored entries of c (1 - s)^2 - s^2 with s = x . y_i (the loss bookkeeping). */
KERNEL double row_loss_k(const half_step_t *hs, uint64_t begin, uint64_t end, const float *x)
{
    const uint32_t f = hs->f;
    double loss = 0;
    for (uint64_t j = begin; j != end; ++j) {
        double s = dot_k(x, hs->fixed + (size_t)hs->m->col[j] * f, f);
        double c = 1 + (double)hs->alpha * hs->m->val[j];
        loss += c * (1 - s) * (1 - s) - s * s;
    }
    return loss;
}

/* ---- Cholesky row solver ---- */

KERNEL int solve_row_cholesky_body(half_step_t *hs, worker_t *w, size_t u)
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

    if (hs->row_loss != NULL)
        hs->row_loss[u] = row_loss_k(hs, begin, end, x);
    return 0;
}

/* ---- conjugate-gradient row solver ---- */

/* out += sum over the row's stored entries of (bscale c_i + dsign (c_i - 1)(y_i . v)) y_i, four entries at a time:
 * bscale 0, dsign 1 gives the sparse part of A v; bscale 1, dsign -1 the sparse part of b - A v. */
KERNEL void sparse_update_k(const half_step_t *hs, uint64_t begin, uint64_t end, const float *restrict v, float bscale, float dsign,
                            float *restrict out)
{
    const uint32_t f = hs->f;
    const uint32_t *col = hs->m->col;
    const float *val = hs->m->val, *fixed = hs->fixed, alpha = hs->alpha;
    uint64_t j = begin;
    for (; j + 4 <= end; j += 4) {
        const float *y0 = fixed + (size_t)col[j] * f, *y1 = fixed + (size_t)col[j + 1] * f, *y2 = fixed + (size_t)col[j + 2] * f,
                    *y3 = fixed + (size_t)col[j + 3] * f;
        float d[4], a[4];
        dot4_k(y0, y1, y2, y3, v, f, d);
        for (int q = 0; q != 4; ++q) {
            float cm1 = alpha * val[j + q];
            a[q] = bscale * (1 + cm1) + dsign * cm1 * d[q];
        }
        axpy4_k(a, y0, y1, y2, y3, out, f);
    }
    for (; j != end; ++j) {
        const float *y = fixed + (size_t)col[j] * f;
        float cm1 = alpha * val[j];
        axpy_k(bscale * (1 + cm1) + dsign * cm1 * dot_k(y, v, f), y, out, f);
    }
}

KERNEL int solve_row_cg_body(half_step_t *hs, worker_t *w, size_t u)
{
    const uint32_t f = hs->f;
    const uint64_t begin = hs->m->row_ptr[u], end = hs->m->row_ptr[u + 1];
    float *restrict x = hs->out + u * f, *restrict r = w->r, *restrict p = w->p, *restrict Ap = w->Ap;

    if (begin == end) {
        memset(x, 0, f * sizeof(*x));
        if (hs->row_loss != NULL)
            hs->row_loss[u] = 0;
        return 0;
    }
    /* r = b - A x = sum_i (c_i - (c_i - 1)(y_i . x)) y_i - (G + reg I) x, from the warm start x */
    symv_k(hs->gram, x, r, f);
    for (uint32_t k = 0; k != f; ++k)
        r[k] = -r[k];
    sparse_update_k(hs, begin, end, x, 1, -1, r);
    memcpy(p, r, f * sizeof(*p));
    float rs = dot_k(r, r, f);
    for (uint32_t step = 0; step != hs->cg_steps && rs > 1e-20f; ++step) {
        symv_k(hs->gram, p, Ap, f); /* Ap = (G + reg I) p + sum_i (c_i - 1)(y_i . p) y_i */
        sparse_update_k(hs, begin, end, p, 0, 1, Ap);
        float pAp = dot_k(p, Ap, f);
        if (!(pAp > 0) || !isfinite(pAp)) /* A is not positive definite (negative values) or the numbers overflowed */
            return -1;
        float a = rs / pAp;
        axpy_k(a, p, x, f);
        axpy_k(-a, Ap, r, f);
        float rs_new = dot_k(r, r, f);
        xpay_k(r, rs_new / rs, p, f);
        rs = rs_new;
    }
    for (uint32_t k = 0; k != f; ++k)
        if (!isfinite(x[k]))
            return -1;
    if (hs->row_loss != NULL)
        hs->row_loss[u] = row_loss_k(hs, begin, end, x);
    return 0;
}

/* The row solvers, compiled for baseline x86-64 (SSE2) and for AVX2+FMA; choose_solvers picks by CPU. */
static int solve_row_cholesky(half_step_t *hs, worker_t *w, size_t u)
{
    return solve_row_cholesky_body(hs, w, u);
}

static int solve_row_cg(half_step_t *hs, worker_t *w, size_t u)
{
    return solve_row_cg_body(hs, w, u);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(RECD_ALS_NO_AVX2)
#define HAVE_AVX2_COPY 1
__attribute__((target("avx2,fma"))) static int solve_row_cholesky_avx2(half_step_t *hs, worker_t *w, size_t u)
{
    return solve_row_cholesky_body(hs, w, u);
}

__attribute__((target("avx2,fma"))) static int solve_row_cg_avx2(half_step_t *hs, worker_t *w, size_t u)
{
    return solve_row_cg_body(hs, w, u);
}
#endif

static void choose_solvers(solve_fn *cholesky, solve_fn *cg)
{
    *cholesky = solve_row_cholesky;
    *cg = solve_row_cg;
#ifdef HAVE_AVX2_COPY
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *cholesky = solve_row_cholesky_avx2;
        *cg = solve_row_cg_avx2;
    }
#endif
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
            if (hs->solve(hs, w, u) != 0) {
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

/* The CG solver's matrix: the full symmetric G + reg I from the lower triangle G. */
static void gram_full_reg(const float *G, uint32_t f, float reg, float *out)
{
    for (uint32_t c = 0; c != f; ++c)
        for (uint32_t r = c; r != f; ++r)
            out[(size_t)c * f + r] = out[(size_t)r * f + c] = G[(size_t)c * f + r];
    for (uint32_t k = 0; k != f; ++k)
        out[(size_t)k * f + k] += reg;
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
    p->hooks.threads = 0;
    p->hooks.seed = 42;
    /* CG with 3 steps: on MovieLens 100K (64 factors, 15 iterations) its nDCG@10 matches Cholesky's within the seed-to-seed
     * spread at about a third of the CPU time (docs/BENCHMARKS.md, "ALS training speed"). */
    p->solver = RECD_ALS_CG;
    p->cg_steps = 3;
}

int recd_als_train(const recd_csr_t *user_items, const recd_als_params_t *p, float **user_factors, float **item_factors)
{
    recd_csr_t item_users = {0};
    float *X = NULL, *Y = NULL, *Gx = NULL, *Gy = NULL, *Gcg = NULL;
    double *user_loss = NULL;
    worker_t *workers = NULL;
    uint32_t n_threads = 0;
    int ret = RECD_OK, saved_blas_threads = openblas_get_num_threads();
    solve_fn cholesky, cg;

    *user_factors = NULL;
    *item_factors = NULL;
    if (user_items == NULL || p == NULL || p->factors == 0 || p->factors > 4096 || !(p->alpha >= 0) || !(p->reg >= 0) ||
        !isfinite(p->alpha) || !isfinite(p->reg) || user_items->n_rows > INT32_MAX || user_items->n_cols > INT32_MAX ||
        (p->solver != RECD_ALS_CHOLESKY && p->solver != RECD_ALS_CG) || (p->solver == RECD_ALS_CG && p->cg_steps == 0))
        return RECD_EINVAL;
    const uint32_t f = p->factors;
    const size_t n_users = user_items->n_rows, n_items = user_items->n_cols;
    const int use_cg = p->solver == RECD_ALS_CG;
    if ((ret = recd_csr_transpose(user_items, &item_users)) != RECD_OK)
        return ret;
    choose_solvers(&cholesky, &cg);

    n_threads = p->hooks.threads;
    if (n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (uint32_t)n : 1;
    }
    if (n_threads > 256)
        n_threads = 256;

    X = recd_xmalloc(n_users * f * sizeof(*X));
    Y = recd_xcalloc(n_items * f, sizeof(*Y)); /* CG's first item half-step starts from 0 */
    Gx = recd_xmalloc((size_t)f * f * sizeof(*Gx));
    Gy = recd_xmalloc((size_t)f * f * sizeof(*Gy));
    if (use_cg)
        Gcg = recd_xmalloc((size_t)f * f * sizeof(*Gcg));
    user_loss = recd_xcalloc(n_users, sizeof(*user_loss));
    { /* X ~ N(0, 0.01^2) from the seed; Y is solved first, so it needs no start */
        uint64_t state = p->hooks.seed;
        for (size_t i = 0; i != n_users * f; ++i)
            X[i] = (float)(0.01 * recd_rand_normal(&state));
    }
    workers = recd_xcalloc(n_threads, sizeof(*workers));
    for (uint32_t t = 0; t != n_threads; ++t) {
        workers[t].A = recd_xmalloc((size_t)f * f * sizeof(float));
        workers[t].b = recd_xmalloc(f * sizeof(float));
        workers[t].gather = recd_xmalloc((size_t)GATHER_ROWS * f * sizeof(float));
        workers[t].r = recd_xmalloc(3 * (size_t)f * sizeof(float));
        workers[t].p = workers[t].r + f;
        workers[t].Ap = workers[t].r + 2 * (size_t)f;
    }

    openblas_set_num_threads(1);
    gram(X, n_users, f, Gx);
    for (uint32_t it = 0; it != p->iterations; ++it) {
        double t0 = recd_monotonic_seconds();
        /* with CG, the last iteration's users are solved exactly so that fold-in reproduces them */
        const int exact_users = !use_cg || it + 1 == p->iterations;
        half_step_t items = {.m = &item_users, .fixed = X, .out = Y, .gram = Gx, .alpha = p->alpha, .reg = p->reg, .f = f};
        if (use_cg) {
            gram_full_reg(Gx, f, p->reg, Gcg);
            items.gram = Gcg;
            items.solve = cg;
            items.cg_steps = p->cg_steps;
        } else {
            items.solve = cholesky;
        }
        if ((ret = half_step(&items, workers, n_threads)) != RECD_OK)
            goto Exit;
        gram(Y, n_items, f, Gy);
        half_step_t users = {.m = user_items,
                             .fixed = Y,
                             .out = X,
                             .gram = Gy,
                             .row_loss = p->hooks.on_progress != NULL ? user_loss : NULL,
                             .alpha = p->alpha,
                             .reg = p->reg,
                             .f = f,
                             .cg_steps = p->cg_steps,
                             .solve = cholesky};
        if (!exact_users) {
            gram_full_reg(Gy, f, p->reg, Gcg);
            users.gram = Gcg;
            users.solve = cg;
        }
        if ((ret = half_step(&users, workers, n_threads)) != RECD_OK)
            goto Exit;
        gram(X, n_users, f, Gx);
        if (p->hooks.on_snapshot != NULL)
            p->hooks.on_snapshot(p->hooks.snapshot_data, it + 1, X, Y, NULL);
        if (p->hooks.on_progress != NULL) { /* the loss costs one dot product per stored entry: only when someone listens */
            double loss = gram_loss(Gx, Gy, f, p->reg);
            for (size_t u = 0; u != n_users; ++u)
                loss += user_loss[u];
            if (p->hooks.on_progress(p->hooks.progress_data, it + 1, loss, recd_monotonic_seconds() - t0) != 0) {
                if (!exact_users) { /* stopped early: solve the users exactly once more, as the last iteration would */
                    half_step_t last = {.m = user_items,
                                        .fixed = Y,
                                        .out = X,
                                        .gram = Gy,
                                        .alpha = p->alpha,
                                        .reg = p->reg,
                                        .f = f,
                                        .solve = cholesky};
                    ret = half_step(&last, workers, n_threads);
                }
                break;
            }
        }
    }

Exit:
    openblas_set_num_threads(saved_blas_threads > 0 ? saved_blas_threads : 1);
    if (workers != NULL) {
        for (uint32_t t = 0; t != n_threads; ++t) {
            free(workers[t].A);
            free(workers[t].b);
            free(workers[t].gather);
            free(workers[t].r);
        }
        free(workers);
    }
    free(Gx);
    free(Gy);
    free(Gcg);
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
