/* eval_internal.h: what the evaluation files of recd_models share — the parallel loop over users and a sorted-row lookup. */
#ifndef RECD_MODELS_EVAL_INTERNAL_H
#define RECD_MODELS_EVAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "models/model.h"

/** Upper bound on evaluation threads; per-worker scratch is sized by the value eval_thread_count returns. */
#define EVAL_MAX_THREADS 256

/** The number of workers eval_for_each_user will use for a requested count (0 = number of cores, capped). */
uint32_t eval_thread_count(uint32_t threads);

/** Work on one user; worker (< the thread count) picks the caller's per-worker scratch. */
typedef void (*eval_user_fn)(void *ctx, uint32_t worker, size_t user);

/**
 * Calls fn for every user in [0, n_users) on `threads` workers (the calling thread is worker 0, threads as returned by
 * eval_thread_count), handing users out in small chunks through an atomic counter. fn must write only to per-user slots or
 * its worker's scratch; anything summed afterwards in user order is then independent of the thread count. When a thread
 * cannot be started the remaining workers do its share.
 */
void eval_for_each_user(size_t n_users, uint32_t threads, eval_user_fn fn, void *ctx);

/** Whether sorted row u of m holds col (binary search). */
static inline int eval_row_contains(const recd_csr_t *m, size_t u, uint32_t col)
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

#endif
