/* feature_store.h: the feature-store interface — each user's recent items and folded vectors, behind any backend. */
#ifndef RECD_STORE_FEATURE_STORE_H
#define RECD_STORE_FEATURE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "base/metrics.h"

/*
 * A feature store remembers, per user id, the most recent interactions (item id and weight, oldest first) and a vector
 * folded from them for one model version. A lookup may be answered at once (the in-memory backend) or later (a remote
 * backend): the caller passes a completion callback and gets RECD_FEATURE_PENDING back when it will be used. Nothing here
 * knows h2o: memory for answers comes from the caller's allocator, so a request arena or the heap both work.
 */

/** Returns size bytes that live as long as the caller needs them (an arena); never NULL (abort on out of memory). */
typedef void *(*recd_store_alloc_cb)(void *ctx, size_t size);

/** One remembered interaction: an item id (len bytes, not necessarily NUL-terminated) and its weight. */
typedef struct st_recd_feature_item_t {
    const char *id;
    size_t len;
    float weight;
} recd_feature_item_t;

/** What the store knows of one user; every pointer is memory from the allocator given to the lookup. */
typedef struct st_recd_feature_user_t {
    recd_feature_item_t *items; /* oldest first */
    size_t n_items;
    uint64_t seq;       /* bumped by every append to the user's items */
    float *vec;         /* the vector folded for the asked version from exactly these items (same seq), or NULL */
    uint32_t n_factors; /* of vec; 0 when vec is NULL */
} recd_feature_user_t;

/** A lookup: whose state, and for which model version and width a stored vector is wanted. */
typedef struct st_recd_feature_query_t {
    const char *user;
    size_t user_len;
    uint64_t model_version;
    uint32_t n_factors;
    recd_store_alloc_cb alloc;
    void *alloc_ctx;
    const char *model; /* the name of model_version's model (NUL-terminated), or NULL; several models share a store */
} recd_feature_query_t;

/** The lookup will complete later through its callback (a positive value, never a RECD_E* code). */
#define RECD_FEATURE_PENDING 1

/**
 * Completion of a lookup that returned RECD_FEATURE_PENDING: err is 0 (out filled), RECD_ENOTFOUND (the user has no
 * state) or another RECD_E* code (the store failed; treat the user as unknown). Called once, on the thread that started
 * the lookup (a backend with its own I/O thread marshals the answer back first).
 */
typedef void (*recd_feature_get_cb)(void *data, int err);

typedef struct st_recd_feature_store_t recd_feature_store_t;

/** A backend's operations; see the recd_feature_store_* wrappers for what each must do. */
typedef struct st_recd_feature_store_ops_t {
    int (*get)(recd_feature_store_t *s, const recd_feature_query_t *q, recd_feature_user_t *out, recd_feature_get_cb cb,
               void *data);
    void (*append)(recd_feature_store_t *s, const char *user, size_t user_len, const recd_feature_item_t *items, size_t n);
    void (*put_vector)(recd_feature_store_t *s, const char *user, size_t user_len, uint64_t seq, const char *model,
                       uint64_t model_version, const float *vec, uint32_t n_factors);
    size_t (*count)(recd_feature_store_t *s);
    void (*free)(recd_feature_store_t *s);
} recd_feature_store_ops_t;

/** The interface a backend embeds as its first member. */
struct st_recd_feature_store_t {
    const recd_feature_store_ops_t *ops;
};

/**
 * Looks up a user. Returns 0 with out filled, RECD_ENOTFOUND when the user has no state (out zeroed), or
 * RECD_FEATURE_PENDING when cb(data, err) will deliver the answer into out later (out must stay valid until then). cb is
 * never called when the lookup completes at once. Thread-safe.
 */
static inline int recd_feature_store_get(recd_feature_store_t *s, const recd_feature_query_t *q, recd_feature_user_t *out,
                                         recd_feature_get_cb cb, void *data)
{
    return s->ops->get(s, q, out, cb, data);
}

/**
 * Appends n interactions to a user (creating it), keeping only the most recent ones the backend is configured for, and
 * bumps the user's seq. Copies everything. Thread-safe.
 */
static inline void recd_feature_store_append(recd_feature_store_t *s, const char *user, size_t user_len,
                                             const recd_feature_item_t *items, size_t n)
{
    s->ops->append(s, user, user_len, items, n);
}

/**
 * Stores a vector folded for model_version (of the model named model, NUL-terminated or NULL, as in the lookup) from the
 * user's state with sequence seq (copied). Ignored when the user is unknown or a vector from a later state is already
 * stored, so folds finishing out of order never go back in time (a remote backend may only approximate this: see its
 * header). Thread-safe.
 */
static inline void recd_feature_store_put_vector(recd_feature_store_t *s, const char *user, size_t user_len, uint64_t seq,
                                                 const char *model, uint64_t model_version, const float *vec, uint32_t n_factors)
{
    s->ops->put_vector(s, user, user_len, seq, model, model_version, vec, n_factors);
}

/** Number of users with state (for tests and reports). */
static inline size_t recd_feature_store_count(recd_feature_store_t *s)
{
    return s->ops->count(s);
}

/** Frees the store; accepts NULL. */
static inline void recd_feature_store_free(recd_feature_store_t *s)
{
    if (s != NULL)
        s->ops->free(s);
}

/* ---- the in-memory backend (memory_store.c) ------------------------------------------------------------------------ */

/**
 * Creates the in-memory store: a map sharded 64 ways keeping at most max_recent items per user and about max_users users.
 * Each shard holds at most ceil(max_users / 64) (at least 1); adding a new user to a full shard evicts that shard's least
 * recently appended-to user (get and put_vector do not count as use). Evictions are counted in recd_users_evicted_total
 * of metrics when it is not NULL (borrowed, must outlive the store). Lookups always complete at once. Aborts on out of
 * memory.
 */
recd_feature_store_t *recd_memory_store_create(uint32_t max_recent, uint32_t max_users, recd_metrics_t *metrics);

#endif
