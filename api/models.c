/* models.c: GET /v1/models, POST /v1/models/{name}/activate and /rollback — the versions of each model, and the control
 * file's active version. Everything past parsing the path runs on the admin thread (admin.c): it reads the registry and
 * writes control.json (fsync) through recd_control_update. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/error.h"
#include "registry/control.h"
#include "registry/registry.h"
#include "api/admin_internal.h"
#include "api/auth.h"

struct st_models_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
    recd_api_endpoint_t *ep;
};

/* ---- shared with experiments.c (admin_internal.h) --------------------------------------------------------------- */

int recd_admin_check_version(recd_api_job_t *job, const char *model, uint64_t version)
{
    const char *registry = job->api->config->registry;
    uint64_t *versions = NULL;
    size_t n = 0;
    char path[1024], err[512];
    int ret = recd_registry_versions(registry, model, &versions, &n), found = 0;

    if (ret == RECD_ENOTFOUND) {
        recd_api_job_error(job, 404, "not_found", "no model named \"%s\" in the registry", model);
        return -1;
    }
    if (ret != RECD_OK) {
        recd_api_job_error(job, 500, "internal", "cannot list the versions of %s: %s", model, recd_strerror(ret));
        return -1;
    }
    for (size_t i = 0; i < n; ++i)
        found |= versions[i] == version;
    free(versions);
    if (!found) {
        recd_api_job_error(job, 404, "not_found", "model %s has no version %llu", model, (unsigned long long)version);
        return -1;
    }
    /* the same checks the catalog runs before a version takes traffic (mmap, format, SHA-256) */
    if (recd_registry_artifact_path(registry, model, version, path, sizeof(path)) != RECD_OK) {
        recd_api_job_error(job, 500, "internal", "registry path too long");
        return -1;
    }
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    if (m == NULL) {
        recd_api_job_error(job, 409, "version_failed_checks", "%s@%llu failed its checks: %s", model, (unsigned long long)version,
                           err);
        return -1;
    }
    recd_model_release(m);
    return 0;
}

int recd_admin_update_or_reply(recd_api_job_t *job, const char *model, int (*edit)(recd_control_t *c, void *data), void *data,
                               uint64_t *generation)
{
    char err[512] = "";
    int ret = recd_control_update(job->api->config->registry, model, edit, data, generation, err, sizeof(err));
    if (ret == RECD_OK)
        return 0;
    if (job->reply == NULL) /* edit did not answer itself */
        recd_api_job_error(job, ret == RECD_EINVAL || ret == RECD_EFORMAT ? 409 : 500, ret == RECD_EINVAL ? "conflict" : "internal",
                           "control state of %s not written: %s", model, err[0] != '\0' ? err : recd_strerror(ret));
    return -1;
}

/* ---- GET /v1/models ----------------------------------------------------------------------------------------------- */

/* The JSON object in <registry>/<model>/<version>/<file>, or null. */
static json_t *version_file(const char *registry, const char *model, uint64_t version, const char *file)
{
    char path[1024];
    if (recd_registry_artifact_path(registry, model, version, path, sizeof(path)) != RECD_OK)
        return json_null();
    char *slash = strrchr(path, '/');
    if (slash == NULL || (size_t)(slash + 1 - path) + strlen(file) + 1 > sizeof(path))
        return json_null();
    strcpy(slash + 1, file);
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    if (j != NULL && json_is_object(j))
        return j;
    json_decref(j);
    return json_null();
}

static json_t *u64_array(const uint64_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; ++i)
        json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

/* The state of version in a model: what the snapshot serves it as, else what control state says it should be. */
static const char *version_state(const recd_control_t *c, uint64_t serving, uint64_t version)
{
    if (version == serving)
        return "active";
    for (size_t i = 0; i < c->n_pins; ++i)
        if (c->pins[i] == version)
            return "pinned";
    for (size_t e = 0; e < c->n_experiments; ++e)
        if (c->experiments[e].enabled)
            for (size_t a = 0; a < c->experiments[e].n_arms; ++a)
                if (c->experiments[e].arms[a].version == version)
                    return "arm";
    return "standby";
}

static json_t *describe_model(recd_api_job_t *job, const recd_catalog_t *snap, const char *name)
{
    const char *registry = job->api->config->registry;
    recd_control_t control = {0};
    char err[512];
    uint64_t *versions = NULL;
    size_t n = 0, n_loaded = 0;
    const recd_catalog_version_t *loaded = recd_catalog_versions(snap, name, strlen(name), &n_loaded);
    recd_model_t *active = recd_catalog_active(snap, name, strlen(name));
    uint64_t serving = active != NULL ? recd_model_version(active) : 0;
    json_t *m = json_object(), *vs = json_array();

    int cret = recd_control_read(registry, name, &control, err, sizeof(err));
    recd_registry_versions(registry, name, &versions, &n);
    json_object_set_new(m, "name", json_string(name));
    json_object_set_new(m, "active", serving != 0 ? json_integer((json_int_t)serving) : json_null());
    json_object_set_new(m, "generation", json_integer((json_int_t)control.generation));
    json_object_set_new(m, "history", u64_array(control.history, control.n_history));
    json_object_set_new(m, "pins", u64_array(control.pins, control.n_pins));
    if (cret != RECD_OK && cret != RECD_ENOTFOUND)
        json_object_set_new(m, "control_error", json_string(err));
    json_t *exps = json_array();
    for (size_t e = 0; e < control.n_experiments; ++e)
        json_array_append_new(exps, json_string(control.experiments[e].id));
    json_object_set_new(m, "experiments", exps);
    for (size_t i = n; i-- > 0;) { /* newest first */
        const recd_catalog_version_t *in_snap = NULL;
        for (size_t k = 0; k < n_loaded && in_snap == NULL; ++k)
            if (loaded[k].version == versions[i])
                in_snap = &loaded[k];
        int failed = in_snap != NULL && (in_snap->roles & RECD_CATALOG_FAILED);
        json_t *v = json_object();
        json_object_set_new(v, "version", json_integer((json_int_t)versions[i]));
        json_object_set_new(v, "state", json_string(failed ? "failed" : version_state(&control, serving, versions[i])));
        if (failed)
            json_object_set_new(v, "reason", json_string(in_snap->reason != NULL ? in_snap->reason : "failed its checks"));
        json_object_set_new(v, "loaded", json_boolean(in_snap != NULL && in_snap->model != NULL));
        json_object_set_new(v, "metadata", version_file(registry, name, versions[i], "manifest.json"));
        json_object_set_new(v, "evaluation", version_file(registry, name, versions[i], "evaluation.json"));
        json_array_append_new(vs, v);
    }
    json_object_set_new(m, "versions", vs);
    free(versions);
    recd_control_dispose(&control);
    return m;
}

static void run_list(recd_api_job_t *job)
{
    if (job->api->catalog == NULL) {
        recd_api_job_error(job, 503, "unavailable", "no model catalog");
        return;
    }
    recd_catalog_t *snap = recd_catalog_loader_current(job->api->catalog);
    json_t *models = json_array();
    for (size_t i = 0; i < recd_catalog_n_models(snap); ++i)
        json_array_append_new(models, describe_model(job, snap, recd_catalog_model_name(snap, i)));
    recd_api_job_reply(job, 200, json_pack("{s:o}", "models", models));
    recd_catalog_release(snap);
}

/* ---- POST /v1/models/{name}/activate and /rollback ---------------------------------------------------------------- */

typedef struct st_activate_t {
    uint64_t version, serving, previous;
    recd_api_job_t *job;
} activate_t;

static int edit_activate(recd_control_t *c, void *data)
{
    activate_t *a = data;
    if (c->active == 0)
        c->active = a->serving; /* no control file yet: what serves now is what a rollback goes back to */
    a->previous = c->active;
    recd_control_activate(c, a->version);
    return RECD_OK;
}

static uint64_t serving_version(recd_api_t *api, const char *name)
{
    if (api->catalog == NULL)
        return 0;
    recd_catalog_t *snap = recd_catalog_loader_current(api->catalog);
    recd_model_t *m = recd_catalog_active(snap, name, strlen(name));
    uint64_t v = m != NULL ? recd_model_version(m) : 0;
    recd_catalog_release(snap);
    return v;
}

static void reply_active(recd_api_job_t *job, const char *name, uint64_t active, uint64_t previous, uint64_t generation)
{
    recd_api_job_reply(job, 200,
                       json_pack("{s:s,s:I,s:o,s:I}", "model", name, "active", (json_int_t)active, "previous",
                                 previous != 0 ? json_integer((json_int_t)previous) : json_null(), "generation",
                                 (json_int_t)generation));
}

static void run_activate(recd_api_job_t *job)
{
    json_error_t jerr;
    json_t *body = json_loadb(job->body, job->body_len, JSON_REJECT_DUPLICATES, &jerr), *v;
    activate_t a = {0};
    uint64_t generation;

    if (body == NULL || !json_is_object(body) || json_object_size(body) != 1 ||
        !json_is_integer(v = json_object_get(body, "version")) || json_integer_value(v) <= 0) {
        recd_api_job_error(job, 400, "invalid_argument", "the body must be {\"version\": N} with N a positive integer");
        goto Exit;
    }
    a.version = (uint64_t)json_integer_value(v);
    a.job = job;
    if (recd_admin_check_version(job, job->arg, a.version) != 0)
        goto Exit;
    a.serving = serving_version(job->api, job->arg);
    if (recd_admin_update_or_reply(job, job->arg, edit_activate, &a, &generation) != 0)
        goto Exit;
    recd_log(job->api->log, RECD_LOG_INFO, "version activated", "\"model\":\"%s\",\"version\":%llu,\"generation\":%llu", job->arg,
             (unsigned long long)a.version, (unsigned long long)generation);
    reply_active(job, job->arg, a.version, a.previous, generation);
Exit:
    json_decref(body);
}

typedef struct st_rollback_t {
    uint64_t expect_target, from, to;
    int no_history;
} rollback_t;

static int edit_rollback(recd_control_t *c, void *data)
{
    rollback_t *r = data;
    if (c->n_history == 0) {
        r->no_history = 1;
        return RECD_ENOTFOUND;
    }
    if (c->history[c->n_history - 1] != r->expect_target)
        return RECD_EBUSY; /* changed since it was checked: the caller retries */
    r->from = c->active;
    recd_control_rollback(c);
    r->to = c->active;
    return RECD_OK;
}

static void run_rollback(recd_api_job_t *job)
{
    const char *registry = job->api->config->registry;
    rollback_t r = {0};
    uint64_t generation;
    char err[512];

    for (int attempt = 0; attempt < 3; ++attempt) {
        recd_control_t c = {0};
        int ret = recd_control_read(registry, job->arg, &c, err, sizeof(err));
        uint64_t target = c.n_history > 0 ? c.history[c.n_history - 1] : 0;
        recd_control_dispose(&c);
        if (ret != RECD_OK && ret != RECD_ENOTFOUND) {
            recd_api_job_error(job, 500, "internal", "cannot read the control state of %s: %s", job->arg, err);
            return;
        }
        if (target == 0) {
            uint64_t *versions = NULL;
            size_t n = 0;
            if (recd_registry_versions(registry, job->arg, &versions, &n) == RECD_ENOTFOUND)
                recd_api_job_error(job, 404, "not_found", "no model named \"%s\" in the registry", job->arg);
            else
                recd_api_job_error(job, 409, "no_previous_version", "%s has no previous active version to roll back to", job->arg);
            free(versions);
            return;
        }
        /* the version rolled back to must still pass its checks, or the rollback would leave nothing serving it */
        if (recd_admin_check_version(job, job->arg, target) != 0)
            return;
        r = (rollback_t){target, 0, 0, 0};
        ret = recd_control_update(registry, job->arg, edit_rollback, &r, &generation, err, sizeof(err));
        if (ret == RECD_OK) {
            recd_log(job->api->log, RECD_LOG_INFO, "version rolled back", "\"model\":\"%s\",\"from\":%llu,\"to\":%llu", job->arg,
                     (unsigned long long)r.from, (unsigned long long)r.to);
            reply_active(job, job->arg, r.to, r.from, generation);
            return;
        }
        if (r.no_history) {
            recd_api_job_error(job, 409, "no_previous_version", "%s has no previous active version to roll back to", job->arg);
            return;
        }
        if (ret != RECD_EBUSY) {
            recd_api_job_error(job, 500, "internal", "control state of %s not written: %s", job->arg, err);
            return;
        }
    }
    recd_api_job_error(job, 409, "conflict", "the control state of %s kept changing; retry", job->arg);
}

/* ---- routing ------------------------------------------------------------------------------------------------------ */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_models_handler_t *h = (void *)self;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->ep);
    h2o_iovec_t path = recd_api_path(req);
    static const char prefix[] = "/v1/models";
    const char *rest = path.base + sizeof(prefix) - 1, *end = path.base + path.len;

    if (path.len == sizeof(prefix) - 1) {
        if (recd_api_authorize_or_reply(call, RECD_AUTH_SCOPE_ADMIN) != 0 || recd_api_method_or_reply(req, RECD_API_GET) != 0)
            goto Exit;
        recd_api_job_submit(call, run_list, "", 0);
        return 0;
    }
    /* /v1/models/{name}/activate | /rollback */
    const char *name = rest + 1, *slash = rest < end && *rest == '/' ? memchr(name, '/', (size_t)(end - name)) : NULL;
    if (slash == NULL || slash == name || slash - name > 64) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    h2o_iovec_t action = h2o_iovec_init(slash + 1, (size_t)(end - slash - 1));
    recd_api_job_cb run = h2o_memis(action.base, action.len, H2O_STRLIT("activate"))   ? run_activate
                          : h2o_memis(action.base, action.len, H2O_STRLIT("rollback")) ? run_rollback
                                                                                       : NULL;
    char buf[65];
    memcpy(buf, name, (size_t)(slash - name));
    buf[slash - name] = '\0';
    if (run == NULL || !recd_registry_valid_name(buf)) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    if (recd_api_authorize_or_reply(call, RECD_AUTH_SCOPE_ADMIN) != 0 || recd_api_method_or_reply(req, RECD_API_POST) != 0)
        goto Exit;
    if (run == run_activate && recd_api_json_body_or_reply(req, h->api->config->max_body_bytes) != 0)
        goto Exit;
    recd_api_job_submit(call, run, buf, strlen(buf));
    return 0;
Exit:
    recd_api_end(call);
    return 0;
}

void recd_api_register_models(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    struct st_models_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h->ep = recd_api_endpoint(api, "models");
}
