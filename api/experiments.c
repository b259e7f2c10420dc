/* experiments.c: GET|PUT|DELETE /v1/experiments/{id} and GET /v1/experiments/{id}/report — experiments live in the control
 * file of the model their arms split; writes go through recd_control_update on the admin thread (admin.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "models/experiment.h"
#include "registry/registry.h"
#include "serve/experiments.h"
#include "api/admin_internal.h"
#include "api/auth.h"

struct st_experiments_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
    recd_api_endpoint_t *ep;
};

/* ---- finding and rendering -------------------------------------------------------------------------------------- */

/*
 * The served model whose control file holds experiment id: writes its name into model and returns 1, 0 when none does,
 * or -1 with the job's reply set when a control file cannot be read.
 */
static int find_owner(recd_api_job_t *job, const char *id, char *model, size_t modellen)
{
    recd_catalog_t *snap = recd_catalog_loader_current(job->api->catalog);
    int found = 0;
    for (size_t i = 0; found == 0 && i < recd_catalog_n_models(snap); ++i) {
        const char *name = recd_catalog_model_name(snap, i);
        recd_control_t c = {0};
        char err[512];
        int ret = recd_control_read(job->api->config->registry, name, &c, err, sizeof(err));
        if (ret == RECD_OK && recd_control_find_experiment(&c, id) != NULL) {
            snprintf(model, modellen, "%s", name);
            found = 1;
        } else if (ret != RECD_OK && ret != RECD_ENOTFOUND) {
            recd_api_job_error(job, 500, "internal", "cannot read the control state of %s: %s", name, err);
            found = -1;
        }
        recd_control_dispose(&c);
    }
    recd_catalog_release(snap);
    return found;
}

static json_t *render(const char *model, const recd_control_experiment_t *e, uint64_t generation)
{
    json_t *arms = json_array();
    char spec[200];
    for (size_t i = 0; i < e->n_arms; ++i) {
        snprintf(spec, sizeof(spec), "%s@%llu", model, (unsigned long long)e->arms[i].version);
        json_array_append_new(arms, json_pack("{s:s,s:s,s:I,s:I}", "name", e->arms[i].name, "model", spec, "version",
                                              (json_int_t)e->arms[i].version, "weight", (json_int_t)e->arms[i].weight));
    }
    json_t *g = json_null();
    if (e->guardrails.enabled) {
        const recd_control_guardrails_t *r = &e->guardrails;
        g = json_pack("{s:s,s:s,s:f,s:f,s:I,s:I,s:f}", "canary", r->canary, "control", r->control, "max_error_rate_delta",
                      r->max_error_rate_delta, "max_p99_ratio", r->max_p99_ratio, "min_requests", (json_int_t)r->min_requests,
                      "min_events", (json_int_t)r->min_events, "alpha", r->alpha);
    }
    return json_pack("{s:s,s:s,s:s,s:b,s:I,s:s,s:s,s:f,s:o,s:o,s:I}", "id", e->id, "model", model, "salt", e->salt, "enabled",
                     e->enabled, "table_version", (json_int_t)e->table_version, "status",
                     e->rolled_back ? "rolled_back" : "running", "reason", e->reason, "changed_at", e->changed_at, "arms", arms,
                     "guardrails", g, "generation", (json_int_t)generation);
}

static void run_get(recd_api_job_t *job)
{
    char model[65], err[512];
    int found = find_owner(job, job->arg, model, sizeof(model));
    if (found <= 0) {
        if (found == 0)
            recd_api_job_error(job, 404, "not_found", "no experiment \"%s\"", job->arg);
        return;
    }
    recd_control_t c = {0};
    if (recd_control_read(job->api->config->registry, model, &c, err, sizeof(err)) == RECD_OK &&
        recd_control_find_experiment(&c, job->arg) != NULL)
        recd_api_job_reply(job, 200, render(model, recd_control_find_experiment(&c, job->arg), c.generation));
    else
        recd_api_job_error(job, 404, "not_found", "no experiment \"%s\"", job->arg);
    recd_control_dispose(&c);
}

/* ---- PUT: parse and validate ------------------------------------------------------------------------------------- */

typedef struct st_put_t {
    recd_api_job_t *job;
    char model[65];
    recd_control_experiment_t e; /* the experiment as the body gives it (slots and table version filled by the edit) */
    recd_control_experiment_t result;
    int created;
} put_t;

__attribute__((format(printf, 2, 3))) static int bad(recd_api_job_t *job, const char *fmt, ...)
{
    char message[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    recd_api_job_error(job, 400, "invalid_argument", "%s", message);
    return -1;
}

static int only_keys(recd_api_job_t *job, json_t *obj, const char *where, const char *const *keys, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(keys[i], key) != 0)
            ++i;
        if (i == n)
            return bad(job, "%s: unknown member \"%s\"", where, key);
    }
    return 0;
}

static int copy_name(recd_api_job_t *job, json_t *v, const char *where, char *out)
{
    if (!json_is_string(v) || !recd_control_valid_id(json_string_value(v), json_string_length(v)))
        return bad(job, "%s must be a name of 1..64 characters [A-Za-z0-9_-]", where);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int number(recd_api_job_t *job, json_t *g, const char *key, double min, double max, double *out)
{
    json_t *v = json_object_get(g, key);
    if (v == NULL)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max)
        return bad(job, "guardrails.%s must be a number in %g..%g", key, min, max);
    *out = json_number_value(v);
    return 0;
}

static int count(recd_api_job_t *job, json_t *g, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(g, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bad(job, "guardrails.%s must be a non-negative integer", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int arm_index(const recd_control_experiment_t *e, const char *name)
{
    for (size_t i = 0; i < e->n_arms; ++i)
        if (strcmp(e->arms[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int parse_guardrails(recd_api_job_t *job, json_t *g, recd_control_experiment_t *e)
{
    static const char *const keys[] = {"canary",     "control", "max_error_rate_delta", "max_p99_ratio", "min_requests",
                                       "min_events", "alpha"};
    recd_control_guardrails_t *r = &e->guardrails;
    if (!json_is_object(g))
        return bad(job, "guardrails must be an object");
    if (only_keys(job, g, "guardrails", keys, sizeof(keys) / sizeof(keys[0])) != 0)
        return -1;
    *r = (recd_control_guardrails_t){
        .max_error_rate_delta = 0.01, .max_p99_ratio = 2.0, .alpha = 0.05, .min_requests = 1000, .min_events = 100, .enabled = 1};
    if (copy_name(job, json_object_get(g, "canary"), "guardrails.canary", r->canary) != 0 ||
        copy_name(job, json_object_get(g, "control"), "guardrails.control", r->control) != 0)
        return -1;
    if (arm_index(e, r->canary) < 0 || arm_index(e, r->control) < 0 || strcmp(r->canary, r->control) == 0)
        return bad(job, "guardrails.canary and guardrails.control must name two different arms of the experiment");
    if (number(job, g, "max_error_rate_delta", 0, 1, &r->max_error_rate_delta) != 0 ||
        number(job, g, "max_p99_ratio", 1, 1000, &r->max_p99_ratio) != 0 || number(job, g, "alpha", 1e-9, 0.5, &r->alpha) != 0 ||
        count(job, g, "min_requests", &r->min_requests) != 0 || count(job, g, "min_events", &r->min_events) != 0)
        return -1;
    return 0;
}

/* Parses "name@version" into model (NUL-terminated) and *version. */
static int parse_model_spec(const char *s, size_t len, char *model, uint64_t *version)
{
    const char *at = memchr(s, '@', len);
    if (at == NULL || at == s || at - s > 64 || at + 1 == s + len)
        return -1;
    memcpy(model, s, (size_t)(at - s));
    model[at - s] = '\0';
    uint64_t v = 0;
    for (const char *p = at + 1; p < s + len; ++p) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0 || at[1] == '0' || !recd_registry_valid_name(model))
        return -1;
    *version = v;
    return 0;
}

static int parse_put(recd_api_job_t *job, put_t *p)
{
    static const char *const keys[] = {"salt", "enabled", "arms", "guardrails"}, *const arm_keys[] = {"name", "model", "weight"};
    json_error_t jerr;
    json_t *body = json_loadb(job->body, job->body_len, JSON_REJECT_DUPLICATES, &jerr), *v, *arms;
    recd_control_experiment_t *e = &p->e;
    uint32_t weights[RECD_EXPERIMENT_MAX_ARMS], sum = 0;
    int ret = -1;

    if (body == NULL) {
        bad(job, "the body is not JSON: %s", jerr.text);
        goto Exit;
    }
    if (!json_is_object(body)) {
        bad(job, "the body must be a JSON object {\"salt\", \"enabled\", \"arms\", \"guardrails\"}");
        goto Exit;
    }
    if (only_keys(job, body, "body", keys, sizeof(keys) / sizeof(keys[0])) != 0)
        goto Exit;
    snprintf(e->id, sizeof(e->id), "%s", job->arg);
    v = json_object_get(body, "salt");
    if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > 128 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        bad(job, "salt must be a string of 1..128 bytes");
        goto Exit;
    }
    memcpy(e->salt, json_string_value(v), json_string_length(v) + 1);
    v = json_object_get(body, "enabled");
    if (v != NULL && !json_is_boolean(v)) {
        bad(job, "enabled must be true or false");
        goto Exit;
    }
    e->enabled = v == NULL || json_is_true(v);
    arms = json_object_get(body, "arms");
    if (!json_is_array(arms) || json_array_size(arms) < 1 || json_array_size(arms) > RECD_EXPERIMENT_MAX_ARMS) {
        bad(job, "arms must be an array of 1..%d arms", RECD_EXPERIMENT_MAX_ARMS);
        goto Exit;
    }
    e->n_arms = json_array_size(arms);
    for (size_t i = 0; i < e->n_arms; ++i) {
        json_t *a = json_array_get(arms, i), *w, *m;
        char where[40], model[65];
        snprintf(where, sizeof(where), "arms[%zu]", i);
        if (!json_is_object(a)) {
            bad(job, "%s must be an object {\"name\", \"model\", \"weight\"}", where);
            goto Exit;
        }
        if (only_keys(job, a, where, arm_keys, 3) != 0)
            goto Exit;
        snprintf(where, sizeof(where), "arms[%zu].name", i);
        if (copy_name(job, json_object_get(a, "name"), where, e->arms[i].name) != 0)
            goto Exit;
        if (arm_index(e, e->arms[i].name) != (int)i) {
            bad(job, "arms[%zu].name: \"%s\" is used by two arms", i, e->arms[i].name);
            goto Exit;
        }
        m = json_object_get(a, "model");
        if (!json_is_string(m) || parse_model_spec(json_string_value(m), json_string_length(m), model, &e->arms[i].version) != 0) {
            bad(job, "arms[%zu].model must be \"<model>@<version>\", e.g. \"ml@2\"", i);
            goto Exit;
        }
        if (i == 0)
            snprintf(p->model, sizeof(p->model), "%s", model);
        else if (strcmp(model, p->model) != 0) {
            bad(job, "arms[%zu].model: every arm must be a version of the same model (%s), got %s", i, p->model, model);
            goto Exit;
        }
        w = json_object_get(a, "weight");
        if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > RECD_EXPERIMENT_SLOTS) {
            bad(job, "arms[%zu].weight must be an integer 0..10000 (basis points)", i);
            goto Exit;
        }
        weights[i] = e->arms[i].weight = (uint32_t)json_integer_value(w);
        sum += weights[i];
    }
    if (sum != RECD_EXPERIMENT_SLOTS || !recd_experiment_weights_valid(weights, e->n_arms)) {
        bad(job, "the arms' weights sum to %u; they must sum to 10000 (basis points: 9000 + 1000 is a 90/10 split)", sum);
        goto Exit;
    }
    if ((v = json_object_get(body, "guardrails")) != NULL && !json_is_null(v) && parse_guardrails(job, v, e) != 0)
        goto Exit;
    ret = 0;
Exit:
    json_decref(body);
    return ret;
}

/* ---- PUT: the edit ------------------------------------------------------------------------------------------------ */

static int same_arm_names(const recd_control_experiment_t *a, const recd_control_experiment_t *b)
{
    if (a->n_arms != b->n_arms)
        return 0;
    for (size_t i = 0; i < a->n_arms; ++i)
        if (strcmp(a->arms[i].name, b->arms[i].name) != 0)
            return 0;
    return 1;
}

static int edit_put(recd_control_t *c, void *data)
{
    put_t *p = data;
    recd_control_experiment_t *old = recd_control_find_experiment(c, p->e.id), *e = &p->e;
    uint32_t old_w[RECD_EXPERIMENT_MAX_ARMS], new_w[RECD_EXPERIMENT_MAX_ARMS];

    for (size_t i = 0; i < e->n_arms; ++i)
        new_w[i] = e->arms[i].weight;
    if (old != NULL && same_arm_names(old, e)) {
        /* the same arms: keep the slot table and move only the slots the new weights require */
        int changed = strcmp(old->salt, e->salt) != 0;
        for (size_t i = 0; i < e->n_arms; ++i) {
            old_w[i] = old->arms[i].weight;
            changed |= old_w[i] != new_w[i];
        }
        memcpy(e->slots, old->slots, sizeof(e->slots));
        if (recd_experiment_rebalance(e->slots, old_w, new_w, e->n_arms) < 0)
            recd_experiment_initial_slots(new_w, e->n_arms, e->slots); /* the stored table did not match its weights */
        e->table_version = old->table_version + (changed ? 1 : 0);
        e->rolled_back = old->rolled_back && !changed;
        snprintf(e->reason, sizeof(e->reason), "%s", e->rolled_back ? old->reason : "");
        e->changed_at = changed ? recd_realtime_seconds() : old->changed_at;
    } else {
        recd_experiment_initial_slots(new_w, e->n_arms, e->slots);
        e->table_version = old != NULL ? old->table_version + 1 : 1;
        e->changed_at = recd_realtime_seconds();
    }
    if (old != NULL) {
        *old = *e;
    } else {
        c->experiments = recd_xreallocarray(c->experiments, c->n_experiments + 1, sizeof(*c->experiments));
        c->experiments[c->n_experiments++] = *e;
        p->created = 1;
    }
    p->result = *e;
    return RECD_OK;
}

static void run_put(recd_api_job_t *job)
{
    put_t *p = recd_xcalloc(1, sizeof(*p));
    char owner[65];
    uint64_t generation;

    p->job = job;
    if (parse_put(job, p) != 0)
        goto Exit;
    for (size_t i = 0; i < p->e.n_arms; ++i)
        if (recd_admin_check_version(job, p->model, p->e.arms[i].version) != 0)
            goto Exit;
    int found = find_owner(job, p->e.id, owner, sizeof(owner));
    if (found < 0)
        goto Exit;
    if (found > 0 && strcmp(owner, p->model) != 0) {
        recd_api_job_error(job, 409, "conflict", "experiment %s splits model %s; delete it before reusing its id for %s", p->e.id,
                           owner, p->model);
        goto Exit;
    }
    if (recd_admin_update_or_reply(job, p->model, edit_put, p, &generation) != 0)
        goto Exit;
    recd_log(job->api->log, RECD_LOG_INFO, "experiment set", "\"experiment\":\"%s\",\"model\":\"%s\",\"table_version\":%llu",
             p->e.id, p->model, (unsigned long long)p->result.table_version);
    recd_api_job_reply(job, p->created ? 201 : 200, render(p->model, &p->result, generation));
Exit:
    free(p);
}

/* ---- DELETE and report ------------------------------------------------------------------------------------------- */

static int edit_delete(recd_control_t *c, void *data)
{
    recd_control_experiment_t *e = recd_control_find_experiment(c, data);
    if (e == NULL)
        return RECD_ENOTFOUND;
    size_t i = (size_t)(e - c->experiments);
    memmove(e, e + 1, (c->n_experiments - i - 1) * sizeof(*e));
    --c->n_experiments;
    return RECD_OK;
}

static void run_delete(recd_api_job_t *job)
{
    char model[65];
    uint64_t generation;
    int found = find_owner(job, job->arg, model, sizeof(model));
    if (found <= 0) {
        if (found == 0)
            recd_api_job_error(job, 404, "not_found", "no experiment \"%s\"", job->arg);
        return;
    }
    if (recd_admin_update_or_reply(job, model, edit_delete, job->arg, &generation) != 0) {
        if (job->status == 409 || job->status == 500) /* deleted meanwhile */
            recd_api_job_error(job, 404, "not_found", "no experiment \"%s\"", job->arg);
        return;
    }
    recd_log(job->api->log, RECD_LOG_INFO, "experiment deleted", "\"experiment\":\"%s\",\"model\":\"%s\"", job->arg, model);
    recd_api_job_reply(
        job, 200,
        json_pack("{s:s,s:s,s:b,s:I}", "id", job->arg, "model", model, "deleted", 1, "generation", (json_int_t)generation));
}

static void run_report(recd_api_job_t *job)
{
    char model[65];
    int found = find_owner(job, job->arg, model, sizeof(model));
    if (found <= 0) {
        if (found == 0)
            recd_api_job_error(job, 404, "not_found", "no experiment \"%s\"", job->arg);
        return;
    }
    recd_control_t c = {0};
    char err[512];
    const recd_control_experiment_t *e;
    if (recd_control_read(job->api->config->registry, model, &c, err, sizeof(err)) != RECD_OK ||
        (e = recd_control_find_experiment(&c, job->arg)) == NULL) {
        recd_api_job_error(job, 404, "not_found", "no experiment \"%s\"", job->arg); /* deleted meanwhile */
        goto Exit;
    }
    /* the counters and statistics are serve/'s; the report is rendered as JSON text and handed over as an object */
    recd_jw_t out;
    json_error_t jerr;
    recd_jw_init(&out, NULL, NULL, 4096);
    recd_serve_experiment_report(job->api->serve, model, e, &out);
    json_t *body = json_loadb(out.buf, out.len, 0, &jerr);
    recd_jw_dispose(&out);
    if (body == NULL)
        recd_api_job_error(job, 500, "internal", "the experiment report is not valid JSON: %s", jerr.text);
    else
        recd_api_job_reply(job, 200, body);
Exit:
    recd_control_dispose(&c);
}

/* ---- routing ------------------------------------------------------------------------------------------------------ */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_experiments_handler_t *h = (void *)self;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->ep);
    h2o_iovec_t path = recd_api_path(req);
    static const char prefix[] = "/v1/experiments/";
    recd_api_job_cb run = NULL;

    if (path.len <= sizeof(prefix) - 1 || memcmp(path.base, prefix, sizeof(prefix) - 1) != 0) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    const char *id = path.base + sizeof(prefix) - 1, *end = path.base + path.len;
    const char *slash = memchr(id, '/', (size_t)(end - id));
    size_t id_len = slash != NULL ? (size_t)(slash - id) : (size_t)(end - id);
    int report = slash != NULL && h2o_memis(slash, (size_t)(end - slash), H2O_STRLIT("/report"));
    if ((slash != NULL && !report) || !recd_control_valid_id(id, id_len)) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    if (recd_api_authorize_or_reply(call, RECD_AUTH_SCOPE_ADMIN) != 0 ||
        recd_api_method_or_reply(req, report ? RECD_API_GET : RECD_API_GET | RECD_API_PUT | RECD_API_DELETE) != 0)
        goto Exit;
    if (h->api->catalog == NULL) {
        recd_api_reply_error(req, 503, "unavailable", "no model catalog");
        goto Exit;
    }
    switch (req->method.base[0]) {
    case 'G':
        run = report ? run_report : run_get;
        break;
    case 'P':
        if (recd_api_json_body_or_reply(req, h->api->config->max_body_bytes) != 0)
            goto Exit;
        run = run_put;
        break;
    default:
        run = run_delete;
        break;
    }
    recd_api_job_submit(call, run, id, id_len);
    return 0;
Exit:
    recd_api_end(call);
    return 0;
}

void recd_api_register_experiments(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    struct st_experiments_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h->ep = recd_api_endpoint(api, "experiments");
}
