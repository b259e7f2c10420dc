/* redis_store.h: the Redis feature-store backend — hiredis async on each worker's own event loop, with deadlines. */
#ifndef RECD_STORE_REDIS_STORE_H
#define RECD_STORE_REDIS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "base/log.h"
#include "base/metrics.h"
#include "store/feature_store.h"

/*
 * One store object holds the settings and counters; each worker thread attaches its own connection, bound to that
 * thread's event loop through recd_redis_loop_t, so no lock or cross-thread hop sits on the request path. A lookup is
 * one pipelined round trip (docs/REDIS.md has the key schema) with a per-request deadline; a request that misses it, or
 * finds Redis down or its circuit breaker open, is answered "no state" (an error the pipeline treats as an unknown user)
 * and counted in recd_redis_fallbacks_total{reason}. Nothing here knows h2o: api/redis_loop.c adapts h2o's loop.
 */

struct redisAsyncContext;

/** A one-shot timer owned by a loop adapter. */
typedef struct st_recd_redis_timer_t recd_redis_timer_t;
/** Called on the loop's thread when a started timer expires. */
typedef void (*recd_redis_timer_cb)(void *data);

/** What a connection needs of the event loop that runs it; every call is made on that loop's thread. */
typedef struct st_recd_redis_loop_t {
    /** Installs the loop's read/write/cleanup hooks into ac->ev (before any callback is set). Returns 0 or -1. */
    int (*attach)(struct st_recd_redis_loop_t *loop, struct redisAsyncContext *ac);
    /** A new stopped timer that calls cb(data) when it expires. Aborts on out of memory. */
    recd_redis_timer_t *(*timer_create)(struct st_recd_redis_loop_t *loop, recd_redis_timer_cb cb, void *data);
    /** Starts (or restarts) t to expire ms milliseconds from now. */
    void (*timer_start)(recd_redis_timer_t *t, uint32_t ms);
    /** Stops t; nothing happens when it is not running. */
    void (*timer_stop)(recd_redis_timer_t *t);
    /** Stops and frees t; accepts NULL. */
    void (*timer_free)(recd_redis_timer_t *t);
} recd_redis_loop_t;

/** How to reach Redis and what to keep there. */
typedef struct st_recd_redis_config_t {
    const char *host; /* copied; a name is resolved once, when the store is created */
    uint16_t port;
    uint32_t timeout_ms;       /* per-request deadline */
    uint32_t vec_ttl_s;        /* EXPIRE of a user's vectors and stamp */
    uint32_t recent_ttl_s;     /* EXPIRE of a user's recent items */
    uint32_t max_recent;       /* recent items kept per user (LTRIM) and read back */
    uint32_t breaker_failures; /* consecutive timeouts that open the circuit breaker (0: 5) */
    uint32_t breaker_probe_ms; /* first wait before an open breaker probes with PING (0: 200); doubles up to backoff_max */
    uint32_t backoff_min_ms;   /* first reconnect delay (0: 20) */
    uint32_t backoff_max_ms;   /* reconnect and probe delays double up to this (0: 2000) */
} recd_redis_config_t;

/** One worker thread's connection; private to redis_store.c. */
typedef struct st_recd_redis_conn_t recd_redis_conn_t;

/**
 * Creates the store. metrics (may be NULL) and log are borrowed and must outlive it; metrics needs a slot per worker that
 * will attach. The store does nothing until a thread attaches: a lookup on a thread without a connection is answered
 * "no state" at once. count() is always 0 (Redis is not scanned). Aborts on out of memory.
 */
recd_feature_store_t *recd_redis_store_create(const recd_redis_config_t *config, recd_metrics_t *metrics, const recd_logger_t *log);

/**
 * Gives the calling thread its connection, run by loop (borrowed: it must outlive the connection), and starts
 * connecting; slot is the thread's metrics slot. Every later lookup and write of s made on this thread goes through it.
 * A thread has at most one connection (attaching again replaces the current one as the thread's). Never fails: an
 * unreachable Redis is retried with backoff.
 */
recd_redis_conn_t *recd_redis_store_attach(recd_feature_store_t *s, size_t slot, recd_redis_loop_t *loop);

/**
 * Closes a connection on its own thread: lookups still waiting are answered "no state" (their callbacks run before this
 * returns), writes not yet sent are dropped, timers are freed. Call before the loop goes away. Accepts NULL.
 */
void recd_redis_conn_close(recd_redis_conn_t *c);

/** Whether c is connected with its breaker closed (lookups go to Redis). For tests and /healthz. */
int recd_redis_conn_ready(const recd_redis_conn_t *c);

#endif
