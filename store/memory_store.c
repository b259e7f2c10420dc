/* memory_store.c: the in-memory feature store (recent items, re-folded vectors) in a sharded hash map, one mutex per shard.
 *
 * DESIGN: every worker thread reads and writes this map, so it is split into shards by the user id's hash and each shard
 * has its own mutex held only for short copies in and out (no allocation proportional to the model, no BLAS under the
 * lock). Readers take a snapshot into memory from their own allocator and work on it unlocked. A per-user sequence number orders
 * the snapshots so a fold computed from an older snapshot never overwrites a newer one.
 *
 * Memory is bounded: each shard keeps at most ceil(max_users / 64) users on an intrusive LRU list (most recently added
 * at the head); adding a new user to a full shard evicts the shard's tail, so one flood of distinct users cannot grow
 * the map without limit. Every operation stays O(1) apart from the bucket chain walk. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/error.h"
#include "base/hash.h"
#include "store/feature_store.h"

#define N_SHARDS 64

typedef struct st_entry_t {
    struct st_entry_t *next;                /* bucket chain */
    struct st_entry_t *lru_prev, *lru_next; /* shard's LRU list, most recently added first */
    uint64_t hash;
    char *user;
    size_t ulen;
    recd_feature_item_t *ring; /* max_recent slots, id malloc'ed */
    size_t head, n;            /* oldest at head */
    uint64_t seq;
    uint64_t vec_seq, vec_version;
    uint32_t n_factors;
    float *vec;
} entry_t;

typedef struct st_shard_t {
    pthread_mutex_t mutex;
    entry_t **buckets;
    size_t n_buckets, size;
    entry_t *lru_head, *lru_tail;
} __attribute__((aligned(64))) shard_t;

typedef struct st_memory_store_t {
    recd_feature_store_t super;
    uint32_t max_recent;
    size_t shard_cap;       /* users per shard */
    recd_metric_t *evicted; /* recd_users_evicted_total, or NULL */
    shard_t shards[N_SHARDS];
} memory_store_t;

/* A NUL-terminated copy of len bytes (ids may come straight from a request, not terminated). */
static char *dup_id(const char *id, size_t len)
{
    char *p = recd_xmalloc(len + 1);
    memcpy(p, id, len);
    p[len] = '\0';
    return p;
}

static const recd_feature_store_ops_t memory_store_ops;

recd_feature_store_t *recd_memory_store_create(uint32_t max_recent, uint32_t max_users, recd_metrics_t *metrics)
{
    memory_store_t *us = recd_xaligned_alloc(64, sizeof(*us));
    memset(us, 0, sizeof(*us));
    us->max_recent = max_recent > 0 ? max_recent : 1;
    us->shard_cap = ((size_t)max_users + N_SHARDS - 1) / N_SHARDS;
    if (us->shard_cap == 0)
        us->shard_cap = 1;
    us->super.ops = &memory_store_ops;
    if (metrics != NULL)
        us->evicted = recd_metrics_counter(metrics, "recd_users_evicted_total",
                                           "Users dropped from the in-memory user state to stay within max_users.", NULL);
    for (size_t i = 0; i < N_SHARDS; ++i) {
        pthread_mutex_init(&us->shards[i].mutex, NULL);
        us->shards[i].n_buckets = 16;
        us->shards[i].buckets = recd_xcalloc(16, sizeof(entry_t *));
    }
    return &us->super;
}

static void free_entry(entry_t *e, uint32_t max_recent)
{
    for (size_t i = 0; i < e->n; ++i)
        free((char *)e->ring[(e->head + i) % max_recent].id);
    free(e->ring);
    free(e->vec);
    free(e->user);
    free(e);
}

static void store_free(recd_feature_store_t *s)
{
    memory_store_t *us = (memory_store_t *)s;
    for (size_t s = 0; s < N_SHARDS; ++s) {
        shard_t *sh = &us->shards[s];
        for (size_t b = 0; b < sh->n_buckets; ++b) {
            entry_t *e = sh->buckets[b];
            while (e != NULL) {
                entry_t *next = e->next;
                free_entry(e, us->max_recent);
                e = next;
            }
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->mutex);
    }
    free(us);
}

static entry_t **find_slot(shard_t *sh, uint64_t hash, const char *user, size_t ulen)
{
    entry_t **slot = &sh->buckets[(hash >> 6) & (sh->n_buckets - 1)];
    for (; *slot != NULL; slot = &(*slot)->next)
        if ((*slot)->hash == hash && (*slot)->ulen == ulen && memcmp((*slot)->user, user, ulen) == 0)
            break;
    return slot;
}

static void lru_unlink(shard_t *sh, entry_t *e)
{
    if (e->lru_prev != NULL)
        e->lru_prev->lru_next = e->lru_next;
    else
        sh->lru_head = e->lru_next;
    if (e->lru_next != NULL)
        e->lru_next->lru_prev = e->lru_prev;
    else
        sh->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_head(shard_t *sh, entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = sh->lru_head;
    if (sh->lru_head != NULL)
        sh->lru_head->lru_prev = e;
    else
        sh->lru_tail = e;
    sh->lru_head = e;
}

/* Drops the shard's least recently added user; called with the shard locked and the shard not empty. */
static void evict_tail(memory_store_t *us, shard_t *sh)
{
    entry_t *victim = sh->lru_tail, **slot = find_slot(sh, victim->hash, victim->user, victim->ulen);
    *slot = victim->next;
    lru_unlink(sh, victim);
    --sh->size;
    free_entry(victim, us->max_recent);
    if (us->evicted != NULL)
        recd_metric_add(us->evicted, RECD_METRICS_SHARED, 1);
}

static void grow(shard_t *sh)
{
    size_t n = sh->n_buckets * 2;
    entry_t **nb = recd_xcalloc(n, sizeof(*nb));
    for (size_t b = 0; b < sh->n_buckets; ++b) {
        entry_t *e = sh->buckets[b];
        while (e != NULL) {
            entry_t *next = e->next;
            size_t i = (e->hash >> 6) & (n - 1);
            e->next = nb[i];
            nb[i] = e;
            e = next;
        }
    }
    free(sh->buckets);
    sh->buckets = nb;
    sh->n_buckets = n;
}

static void store_append(recd_feature_store_t *s, const char *user, size_t ulen, const recd_feature_item_t *items, size_t n)
{
    memory_store_t *us = (memory_store_t *)s;
    uint64_t hash = recd_hash_id(user, ulen);
    shard_t *sh = &us->shards[hash % N_SHARDS];
    /* copy the ids before taking the lock */
    char **copies = recd_xreallocarray(NULL, n, sizeof(char *));
    for (size_t i = 0; i < n; ++i)
        copies[i] = dup_id(items[i].id, items[i].len);

    pthread_mutex_lock(&sh->mutex);
    entry_t **slot = find_slot(sh, hash, user, ulen), *e = *slot;
    if (e == NULL) {
        if (sh->size >= us->shard_cap) {
            evict_tail(us, sh);
            slot = find_slot(sh, hash, user, ulen); /* the victim may have been the slot's predecessor */
        }
        e = recd_xcalloc(1, sizeof(*e));
        e->hash = hash;
        e->user = dup_id(user, ulen);
        e->ulen = ulen;
        e->ring = recd_xcalloc(us->max_recent, sizeof(*e->ring));
        *slot = e;
        lru_push_head(sh, e);
        if (++sh->size > sh->n_buckets * 2)
            grow(sh);
    } else if (sh->lru_head != e) {
        lru_unlink(sh, e);
        lru_push_head(sh, e);
    }
    for (size_t i = 0; i < n; ++i) {
        recd_feature_item_t *it;
        if (e->n == us->max_recent) {
            it = &e->ring[e->head];
            free((char *)it->id);
            e->head = (e->head + 1) % us->max_recent;
        } else {
            it = &e->ring[(e->head + e->n) % us->max_recent];
            ++e->n;
        }
        *it = (recd_feature_item_t){copies[i], items[i].len, items[i].weight};
    }
    ++e->seq;
    pthread_mutex_unlock(&sh->mutex);
    free(copies);
}

static int store_get(recd_feature_store_t *s, const recd_feature_query_t *q, recd_feature_user_t *out, recd_feature_get_cb cb,
                     void *data)
{
    memory_store_t *us = (memory_store_t *)s;
    uint64_t hash = recd_hash_id(q->user, q->user_len);
    shard_t *sh = &us->shards[hash % N_SHARDS];
    int ret = RECD_ENOTFOUND;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&sh->mutex);
    entry_t *e = *find_slot(sh, hash, q->user, q->user_len);
    if (e != NULL) {
        /* one block for the items and one for their ids, so a snapshot costs two arena allocations whatever its size */
        size_t id_bytes = 0;
        for (size_t i = 0; i < e->n; ++i)
            id_bytes += e->ring[(e->head + i) % us->max_recent].len + 1;
        out->items = q->alloc(q->alloc_ctx, sizeof(*out->items) * (e->n ? e->n : 1));
        char *ids = q->alloc(q->alloc_ctx, id_bytes ? id_bytes : 1);
        for (size_t i = 0; i < e->n; ++i) {
            const recd_feature_item_t *it = &e->ring[(e->head + i) % us->max_recent];
            memcpy(ids, it->id, it->len);
            ids[it->len] = '\0';
            out->items[i] = (recd_feature_item_t){ids, it->len, it->weight};
            ids += it->len + 1;
        }
        out->n_items = e->n;
        out->seq = e->seq;
        /* the stored vector serves only the version and state it was folded from */
        if (e->vec != NULL && e->vec_version == q->model_version && e->n_factors == q->n_factors && e->vec_seq == e->seq) {
            out->vec = q->alloc(q->alloc_ctx, sizeof(float) * q->n_factors);
            memcpy(out->vec, e->vec, sizeof(float) * q->n_factors);
            out->n_factors = q->n_factors;
        }
        ret = 0;
    }
    pthread_mutex_unlock(&sh->mutex);
    return ret;
}

static void store_put_vector(recd_feature_store_t *s, const char *user, size_t ulen, uint64_t seq, const char *model,
                             uint64_t model_version, const float *vec, uint32_t n_factors)
{
    memory_store_t *us = (memory_store_t *)s;
    uint64_t hash = recd_hash_id(user, ulen);
    shard_t *sh = &us->shards[hash % N_SHARDS];
    float *copy = recd_xreallocarray(NULL, n_factors, sizeof(float));
    memcpy(copy, vec, sizeof(float) * n_factors);

    pthread_mutex_lock(&sh->mutex);
    entry_t *e = *find_slot(sh, hash, user, ulen);
    /* never go back in time: a fold from an older state (lower seq) loses to the stored one */
    if (e != NULL && (e->vec == NULL || seq > e->vec_seq || (seq == e->vec_seq && model_version >= e->vec_version))) {
        float *old = e->vec;
        e->vec = copy;
        e->vec_seq = seq;
        e->vec_version = model_version;
        e->n_factors = n_factors;
        copy = old;
    }
    pthread_mutex_unlock(&sh->mutex);
    free(copy);
}

static size_t store_count(recd_feature_store_t *s)
{
    memory_store_t *us = (memory_store_t *)s;
    size_t n = 0;
    for (size_t i = 0; i < N_SHARDS; ++i) {
        pthread_mutex_lock(&us->shards[i].mutex);
        n += us->shards[i].size;
        pthread_mutex_unlock(&us->shards[i].mutex);
    }
    return n;
}

static const recd_feature_store_ops_t memory_store_ops = {store_get, store_append, store_put_vector, store_count, store_free};
