/* worker.c: the per-thread catalog snapshot and scratch buffers a worker swaps on its own thread. */
#include <stdio.h>
#include <stdlib.h>
#include "base/alloc.h"
#include "server/server.h"

void recd_worker_set_catalog(recd_worker_state_t *w, recd_catalog_t *snapshot)
{
    if (w->catalog != NULL && recd_catalog_generation(snapshot) < recd_catalog_generation(w->catalog)) {
        recd_catalog_release(snapshot);
        return;
    }
    size_t n = recd_catalog_max_items(snapshot);
    if (n > w->scores_cap) {
        free(w->scores);
        w->scores = recd_xreallocarray(NULL, n, sizeof(float));
        w->scores_cap = n;
    }
    if (w->top == NULL) {
        uint32_t max_k = w->app->config->max_k > 0 ? w->app->config->max_k : 1;
        w->top = recd_xreallocarray(NULL, max_k, sizeof(*w->top));
    }
    recd_catalog_t *old = w->catalog;
    w->catalog = snapshot;
    recd_catalog_release(old);
}

recd_model_t *recd_worker_model(const recd_worker_state_t *w)
{
    return w->catalog != NULL ? recd_catalog_active(w->catalog, NULL, 0) : NULL;
}

void recd_worker_dispose(recd_worker_state_t *w)
{
    recd_catalog_release(w->catalog);
    w->catalog = NULL;
    free(w->scores);
    w->scores = NULL;
    w->scores_cap = 0;
    free(w->top);
    w->top = NULL;
}
