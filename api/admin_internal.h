/* admin_internal.h: what the admin endpoints (models.c, experiments.c) share — version checks and control-file updates,
 * both on the admin thread. */
#ifndef RECD_API_ADMIN_INTERNAL_H
#define RECD_API_ADMIN_INTERNAL_H

#include <stdint.h>
#include "registry/control.h"
#include "api/api_internal.h"

/**
 * Checks that model has a published version that passes the catalog's checks (open, format, SHA-256). Returns 0, or -1
 * with the job's reply set: 404 for an unknown model or version, 409 for a version that fails its checks.
 */
int recd_admin_check_version(recd_api_job_t *job, const char *model, uint64_t version);
/**
 * recd_control_update(model, edit, data) for the job; *generation receives the new generation. Returns 0, or -1 with the
 * job's reply set (an edit that set a reply itself keeps it).
 */
int recd_admin_update_or_reply(recd_api_job_t *job, const char *model, int (*edit)(recd_control_t *c, void *data), void *data,
                               uint64_t *generation);

#endif
