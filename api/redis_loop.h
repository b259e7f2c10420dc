/* redis_loop.h: hiredis async connections and timers on a worker's h2o event loop, for the Redis feature store. */
#ifndef RECD_API_REDIS_LOOP_H
#define RECD_API_REDIS_LOOP_H

#include <h2o.h>
#include "store/redis_store.h"

/**
 * Creates the adapter that lets store/redis_store.c run on loop (borrowed; it must outlive the adapter): sockets are
 * dup'ed hiredis fds watched by h2o, timers are h2o timeouts. Use it on loop's thread only. Aborts on out of memory.
 */
recd_redis_loop_t *recd_api_redis_loop_create(h2o_evloop_t *loop);

/** Frees the adapter; every connection and timer made through it must be gone. Accepts NULL. */
void recd_api_redis_loop_free(recd_redis_loop_t *l);

#endif
