/* worker.c: the per-thread model pointer and scratch buffers a worker swaps on its own thread. */
#include <stdio.h>
#include <stdlib.h>
#include "base/alloc.h"
#include "server/server.h"

void recd_worker_set_model(recd_worker_t *w, recd_model_t *model)
{
    size_t n = recd_model_n_items(model);
    if (n > w->scores_cap) {
        free(w->scores);
        w->scores = recd_xreallocarray(NULL, n, sizeof(float));
        w->scores_cap = n;
    }
    if (w->top == NULL) {
        uint32_t max_k = w->app->config->max_k > 0 ? w->app->config->max_k : 1;
        w->top = recd_xreallocarray(NULL, max_k, sizeof(*w->top));
    }
    recd_model_t *old = w->model;
    w->model = model;
    recd_model_release(old);
}

void recd_worker_dispose(recd_worker_t *w)
{
    recd_model_release(w->model);
    w->model = NULL;
    free(w->scores);
    w->scores = NULL;
    w->scores_cap = 0;
    free(w->top);
    w->top = NULL;
}
