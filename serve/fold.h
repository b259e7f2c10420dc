/* fold.h: folding a user into a model from its training history plus interactions recd learnt since. */
#ifndef RECD_SERVE_FOLD_H
#define RECD_SERVE_FOLD_H

#include <stddef.h>
#include <stdint.h>
#include "models/model.h"
#include "store/feature_store.h"

/**
 * Folds a user into m from its training history (user index, or -1 for none) plus n extra interactions given as item
 * indexes of m with their weights. An item that appears more than once (in the history, the extras, or both) counts once
 * with the sum of its values. Scratch memory comes from alloc(alloc_ctx, ...), never freed one by one. vec receives
 * n_factors floats. Returns 0, RECD_ENOTFOUND when there is no interaction at all, or the error of recd_model_fold_in.
 */
int recd_serve_fold_user(const recd_model_t *m, int64_t user, const uint32_t *items, const float *weights, size_t n,
                         recd_store_alloc_cb alloc, void *alloc_ctx, float *vec);

#endif
