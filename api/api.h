/* api: the public face of recd_api — registers every HTTP endpoint of API v1 on an h2o host. */
#ifndef RECD_API_API_H
#define RECD_API_API_H

#include <h2o.h>
#include "server/server.h"

/**
 * Registers /v1/recommendations, /v1/items/{id}/similar, /v1/events, /healthz, /readyz, /metrics and a catch-all that
 * answers unknown paths with a JSON 404. The handlers keep app (borrowed; it must outlive the host's contexts) and find
 * their worker through req->conn->ctx, so every context serving host must be embedded in a recd_worker_state_t.
 */
void recd_api_register(h2o_hostconf_t *host, recd_app_t *app);

#endif
