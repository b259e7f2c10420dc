/* workers.h: the recd executable's worker threads — one h2o loop, context and SO_REUSEPORT listener each. */
#ifndef RECD_SERVER_WORKERS_H
#define RECD_SERVER_WORKERS_H

#include "server/server.h"

/**
 * Binds app->n_workers listening sockets on host:port with SO_REUSEPORT (port 0: the first socket picks a free port and
 * the others bind the same one; *bound_port receives it), then starts one thread per worker running conf's hosts, and
 * returns once every worker is accepting and subscribed to the model holder. Returns 0, or -1 with a message in err (no
 * thread left running).
 */
int recd_workers_start(recd_app_t *app, h2o_globalconf_t *conf, const char *host, uint16_t port, uint16_t *bound_port, char *err,
                       size_t errlen);

/**
 * Graceful stop: every worker stops accepting, asks its connections to close, finishes what is in flight (up to
 * grace_ms), releases its model and exits; joins them all. Call after recd_holder_stop.
 */
void recd_workers_stop(recd_app_t *app, uint32_t grace_ms);

#endif
