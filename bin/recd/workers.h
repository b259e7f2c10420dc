/* workers.h: the recd executable's worker threads — one h2o loop, context and SO_REUSEPORT listener each. */
#ifndef RECD_BIN_RECD_WORKERS_H
#define RECD_BIN_RECD_WORKERS_H

#include <h2o.h>
#include "bin/recd/app.h"

/** The running worker threads; their internals are private to workers.c. */
typedef struct st_recd_workers_t recd_workers_t;

/**
 * Binds app->n_workers listening sockets on host:port with SO_REUSEPORT (port 0: the first socket picks a free port and
 * the others bind the same one; *bound_port receives it), subscribes every worker to app->catalog (each receives new
 * snapshots by message and holds exactly one), then starts one thread per worker running conf's hosts, and returns once
 * every worker is accepting. Call before recd_catalog_loader_start. Returns the workers, or NULL with a message in err
 * (no thread left running).
 */
recd_workers_t *recd_workers_start(recd_app_t *app, h2o_globalconf_t *conf, const char *host, uint16_t port, uint16_t *bound_port,
                                   char *err, size_t errlen);

/**
 * Graceful stop: every worker stops accepting, asks its connections to close, finishes what is in flight (up to
 * grace_ms), releases its snapshot and exits; joins them all and frees ws. Call after recd_catalog_loader_stop.
 */
void recd_workers_stop(recd_workers_t *ws, uint32_t grace_ms);

#endif
