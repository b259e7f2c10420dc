/* control.c: the control file <registry>/<model>/control.json — parse and validate, atomic write, locked update. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "base/alloc.h"
#include "base/fs.h"
#include "models/experiment.h"
#include "registry/control.h"
#include "registry/registry.h"

/* A control file larger than this is refused: it would be a mistake, and it is read into memory whole. */
#define CONTROL_MAX_BYTES (16u << 20)
/* More experiments than this per model is a runaway tool, not a plan. */
#define CONTROL_MAX_EXPERIMENTS 256

static const char slot_digits[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL && errlen != 0)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int recd_control_valid_id(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i < len; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int slot_index(char c)
{
    const char *p = c != '\0' ? strchr(slot_digits, c) : NULL;
    return p != NULL ? (int)(p - slot_digits) : -1;
}

/* ---- validation of an in-memory state ------------------------------------------------------------------------------ */

static const recd_control_arm_t *find_arm(const recd_control_experiment_t *x, const char *name)
{
    for (size_t i = 0; i < x->n_arms; ++i)
        if (strcmp(x->arms[i].name, name) == 0)
            return &x->arms[i];
    return NULL;
}

static int validate_experiment(const recd_control_experiment_t *x, char *err, size_t errlen)
{
    uint32_t counts[RECD_EXPERIMENT_MAX_ARMS] = {0};
    uint64_t sum = 0;

    if (!recd_control_valid_id(x->id, strnlen(x->id, sizeof(x->id))))
        return fail(err, errlen, "experiment id \"%.64s\" is not 1..64 of [A-Za-z0-9_-]", x->id);
    if (strnlen(x->salt, sizeof(x->salt)) == sizeof(x->salt))
        return fail(err, errlen, "experiment %s: salt longer than 128 bytes", x->id);
    if (x->n_arms == 0 || x->n_arms > RECD_EXPERIMENT_MAX_ARMS)
        return fail(err, errlen, "experiment %s: %zu arms (1..%d allowed)", x->id, x->n_arms, RECD_EXPERIMENT_MAX_ARMS);
    for (size_t i = 0; i < x->n_arms; ++i) {
        const recd_control_arm_t *a = &x->arms[i];
        if (!recd_control_valid_id(a->name, strnlen(a->name, sizeof(a->name))))
            return fail(err, errlen, "experiment %s: arm %zu: name is not 1..64 of [A-Za-z0-9_-]", x->id, i);
        for (size_t j = 0; j < i; ++j)
            if (strcmp(x->arms[j].name, a->name) == 0)
                return fail(err, errlen, "experiment %s: two arms named \"%s\"", x->id, a->name);
        if (a->version == 0)
            return fail(err, errlen, "experiment %s: arm %s: version must be a positive integer", x->id, a->name);
        if (a->weight > RECD_EXPERIMENT_SLOTS)
            return fail(err, errlen, "experiment %s: arm %s: weight %u above 10000", x->id, a->name, (unsigned)a->weight);
        sum += a->weight;
    }
    if (sum != RECD_EXPERIMENT_SLOTS)
        return fail(err, errlen, "experiment %s: weights sum to %llu, not 10000", x->id, (unsigned long long)sum);
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s) {
        if (x->slots[s] >= x->n_arms)
            return fail(err, errlen, "experiment %s: slot %zu names arm %u of %zu", x->id, s, (unsigned)x->slots[s], x->n_arms);
        ++counts[x->slots[s]];
    }
    for (size_t i = 0; i < x->n_arms; ++i)
        if (counts[i] != x->arms[i].weight)
            return fail(err, errlen, "experiment %s: arm %s holds %u slots but its weight is %u", x->id, x->arms[i].name,
                        (unsigned)counts[i], (unsigned)x->arms[i].weight);
    if (x->guardrails.enabled) {
        const recd_control_guardrails_t *g = &x->guardrails;
        if (find_arm(x, g->canary) == NULL || find_arm(x, g->control) == NULL || strcmp(g->canary, g->control) == 0)
            return fail(err, errlen, "experiment %s: guardrails must name two different arms as canary and control", x->id);
        if (!(g->max_error_rate_delta >= 0 && g->max_error_rate_delta <= 1))
            return fail(err, errlen, "experiment %s: guardrails.max_error_rate_delta must be in [0, 1]", x->id);
        if (!(g->max_p99_ratio >= 1 && isfinite(g->max_p99_ratio)))
            return fail(err, errlen, "experiment %s: guardrails.max_p99_ratio must be a finite number >= 1", x->id);
        if (!(g->alpha > 0 && g->alpha < 1))
            return fail(err, errlen, "experiment %s: guardrails.alpha must be in (0, 1)", x->id);
    }
    if (strnlen(x->reason, sizeof(x->reason)) == sizeof(x->reason))
        return fail(err, errlen, "experiment %s: reason longer than 255 bytes", x->id);
    if (!(x->changed_at >= 0 && isfinite(x->changed_at)))
        return fail(err, errlen, "experiment %s: changed_at must be a non-negative number", x->id);
    return 0;
}

int recd_control_validate(const recd_control_t *c, char *err, size_t errlen)
{
    if (c == NULL)
        return RECD_EINVAL;
    if (c->generation > INT64_MAX || c->active > INT64_MAX)
        return fail(err, errlen, "generation and active must fit a JSON integer (<= 2^63-1)"), RECD_EINVAL;
    for (size_t i = 0; i < c->n_history; ++i)
        if (c->history[i] == 0 || c->history[i] > INT64_MAX)
            return fail(err, errlen, "history[%zu] must be a positive integer", i), RECD_EINVAL;
    for (size_t i = 0; i < c->n_pins; ++i)
        if (c->pins[i] == 0 || c->pins[i] > INT64_MAX)
            return fail(err, errlen, "pins[%zu] must be a positive integer", i), RECD_EINVAL;
    if (c->n_experiments > CONTROL_MAX_EXPERIMENTS)
        return fail(err, errlen, "%zu experiments (at most %d)", c->n_experiments, CONTROL_MAX_EXPERIMENTS), RECD_EINVAL;
    for (size_t i = 0; i < c->n_experiments; ++i) {
        if (validate_experiment(&c->experiments[i], err, errlen) != 0)
            return RECD_EINVAL;
        for (size_t j = 0; j < i; ++j)
            if (strcmp(c->experiments[i].id, c->experiments[j].id) == 0)
                return fail(err, errlen, "two experiments named \"%s\"", c->experiments[i].id), RECD_EINVAL;
    }
    return RECD_OK;
}

/* ---- parsing ------------------------------------------------------------------------------------------------------- */

/* A JSON integer >= min (absent leaves *out alone when optional). */
static int get_u64(const json_t *obj, const char *key, uint64_t min, int required, uint64_t *out, const char *where, char *err,
                   size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return required ? fail(err, errlen, "%s\"%s\" is missing", where, key) : 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min)
        return fail(err, errlen, "%s\"%s\" must be an integer >= %llu", where, key, (unsigned long long)min);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_double(const json_t *obj, const char *key, int required, double *out, const char *where, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return required ? fail(err, errlen, "%s\"%s\" is missing", where, key) : 0;
    if (!json_is_number(v))
        return fail(err, errlen, "%s\"%s\" must be a number", where, key);
    *out = json_number_value(v);
    return 0;
}

/* A string into a fixed buffer; too long is an error. */
static int get_string(const json_t *obj, const char *key, int required, char *out, size_t outlen, const char *where, char *err,
                      size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return required ? fail(err, errlen, "%s\"%s\" is missing", where, key) : 0;
    if (!json_is_string(v))
        return fail(err, errlen, "%s\"%s\" must be a string", where, key);
    if (json_string_length(v) >= outlen || strlen(json_string_value(v)) != json_string_length(v))
        return fail(err, errlen, "%s\"%s\" is longer than %zu bytes or holds a NUL", where, key, outlen - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_version_list(const json_t *root, const char *key, uint64_t **out, size_t *n, char *err, size_t errlen)
{
    const json_t *v = json_object_get(root, key);
    size_t i;
    json_t *x;
    if (v == NULL)
        return 0;
    if (!json_is_array(v))
        return fail(err, errlen, "\"%s\" must be an array of versions", key);
    if (json_array_size(v) != 0)
        *out = recd_xcalloc(json_array_size(v), sizeof(**out));
    json_array_foreach(v, i, x)
    {
        if (!json_is_integer(x) || json_integer_value(x) <= 0)
            return fail(err, errlen, "\"%s\"[%zu] must be a positive integer", key, i);
        (*out)[(*n)++] = (uint64_t)json_integer_value(x);
    }
    return 0;
}

static int parse_guardrails(const json_t *g, recd_control_experiment_t *x, char *err, size_t errlen)
{
    char where[128];
    recd_control_guardrails_t *gr = &x->guardrails;
    snprintf(where, sizeof(where), "experiment %s: guardrails: ", x->id);
    if (!json_is_object(g))
        return fail(err, errlen, "%snot an object", where);
    gr->enabled = 1;
    gr->max_error_rate_delta = 0.01;
    gr->max_p99_ratio = 2.0;
    gr->alpha = 0.05;
    gr->min_requests = 1000;
    gr->min_events = 100;
    if (get_string(g, "canary", 1, gr->canary, sizeof(gr->canary), where, err, errlen) != 0 ||
        get_string(g, "control", 1, gr->control, sizeof(gr->control), where, err, errlen) != 0 ||
        get_double(g, "max_error_rate_delta", 0, &gr->max_error_rate_delta, where, err, errlen) != 0 ||
        get_double(g, "max_p99_ratio", 0, &gr->max_p99_ratio, where, err, errlen) != 0 ||
        get_double(g, "alpha", 0, &gr->alpha, where, err, errlen) != 0 ||
        get_u64(g, "min_requests", 0, 0, &gr->min_requests, where, err, errlen) != 0 ||
        get_u64(g, "min_events", 0, 0, &gr->min_events, where, err, errlen) != 0)
        return -1;
    return 0;
}

static int parse_experiment(const char *id, const json_t *o, recd_control_experiment_t *x, char *err, size_t errlen)
{
    char where[128];
    const json_t *v;
    size_t i;
    json_t *a;

    if (!recd_control_valid_id(id, strlen(id)))
        return fail(err, errlen, "experiment id \"%.64s\" is not 1..64 of [A-Za-z0-9_-]", id);
    memcpy(x->id, id, strlen(id) + 1);
    snprintf(where, sizeof(where), "experiment %s: ", id);
    if (!json_is_object(o))
        return fail(err, errlen, "%snot an object", where);
    if (get_string(o, "salt", 1, x->salt, sizeof(x->salt), where, err, errlen) != 0 ||
        get_u64(o, "table_version", 0, 0, &x->table_version, where, err, errlen) != 0 ||
        get_string(o, "reason", 0, x->reason, sizeof(x->reason), where, err, errlen) != 0 ||
        get_double(o, "changed_at", 0, &x->changed_at, where, err, errlen) != 0)
        return -1;
    v = json_object_get(o, "enabled");
    if (v != NULL && !json_is_boolean(v))
        return fail(err, errlen, "%s\"enabled\" must be true or false", where);
    x->enabled = v == NULL || json_is_true(v);
    v = json_object_get(o, "status");
    if (v != NULL) {
        if (json_is_string(v) && strcmp(json_string_value(v), "running") == 0)
            x->rolled_back = 0;
        else if (json_is_string(v) && strcmp(json_string_value(v), "rolled_back") == 0)
            x->rolled_back = 1;
        else
            return fail(err, errlen, "%s\"status\" must be \"running\" or \"rolled_back\"", where);
    }
    v = json_object_get(o, "arms");
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > RECD_EXPERIMENT_MAX_ARMS)
        return fail(err, errlen, "%s\"arms\" must be an array of 1..%d arms", where, RECD_EXPERIMENT_MAX_ARMS);
    json_array_foreach(v, i, a)
    {
        char awhere[160];
        uint64_t weight = 0;
        recd_control_arm_t *arm = &x->arms[i];
        snprintf(awhere, sizeof(awhere), "%sarms[%zu]: ", where, i);
        if (!json_is_object(a))
            return fail(err, errlen, "%snot an object", awhere);
        if (get_string(a, "name", 1, arm->name, sizeof(arm->name), awhere, err, errlen) != 0 ||
            get_u64(a, "version", 1, 1, &arm->version, awhere, err, errlen) != 0 ||
            get_u64(a, "weight", 0, 1, &weight, awhere, err, errlen) != 0)
            return -1;
        if (weight > RECD_EXPERIMENT_SLOTS)
            return fail(err, errlen, "%s\"weight\" must be 0..10000 basis points", awhere);
        arm->weight = (uint32_t)weight;
        x->n_arms = i + 1;
    }
    v = json_object_get(o, "slots");
    if (!json_is_string(v) || json_string_length(v) != RECD_EXPERIMENT_SLOTS)
        return fail(err, errlen, "%s\"slots\" must be a string of %d arm indices [0-9a-zA-Z]", where, RECD_EXPERIMENT_SLOTS);
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s) {
        int arm = slot_index(json_string_value(v)[s]);
        if (arm < 0 || (size_t)arm >= x->n_arms)
            return fail(err, errlen, "%sslot %zu is '%c', not an arm index below %zu", where, s,
                        arm < 0 ? '?' : json_string_value(v)[s], x->n_arms);
        x->slots[s] = (uint8_t)arm;
    }
    v = json_object_get(o, "guardrails");
    if (v != NULL && parse_guardrails(v, x, err, errlen) != 0)
        return -1;
    return 0;
}

static int parse_root(const json_t *root, recd_control_t *out, char *err, size_t errlen)
{
    const json_t *v;
    const char *id;
    json_t *x;

    if (!json_is_object(root))
        return fail(err, errlen, "not a JSON object");
    if (get_u64(root, "generation", 0, 0, &out->generation, "", err, errlen) != 0 ||
        get_u64(root, "active", 1, 0, &out->active, "", err, errlen) != 0 ||
        get_version_list(root, "history", &out->history, &out->n_history, err, errlen) != 0 ||
        get_version_list(root, "pins", &out->pins, &out->n_pins, err, errlen) != 0)
        return -1;
    v = json_object_get(root, "experiments");
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return fail(err, errlen, "\"experiments\" must be an object of experiments by id");
    if (json_object_size(v) > CONTROL_MAX_EXPERIMENTS)
        return fail(err, errlen, "%zu experiments (at most %d)", json_object_size(v), CONTROL_MAX_EXPERIMENTS);
    if (json_object_size(v) != 0)
        out->experiments = recd_xcalloc(json_object_size(v), sizeof(*out->experiments));
    json_object_foreach((json_t *)v, id, x)
    {
        if (parse_experiment(id, x, &out->experiments[out->n_experiments], err, errlen) != 0)
            return -1;
        ++out->n_experiments;
    }
    /* the cross-member rules (slot counts = weights, guardrail arms) */
    char verr[512];
    if (recd_control_validate(out, verr, sizeof(verr)) != RECD_OK)
        return fail(err, errlen, "%s", verr);
    return 0;
}

static int control_path(const char *registry, const char *model, char *out, size_t outlen)
{
    if (registry == NULL || !recd_registry_valid_name(model))
        return RECD_EINVAL;
    if ((size_t)snprintf(out, outlen, "%s/%s/%s", registry, model, RECD_REGISTRY_CONTROL) >= outlen)
        return RECD_EINVAL;
    return RECD_OK;
}

/* Reads the whole file at path (at most CONTROL_MAX_BYTES). Returns RECD_OK, RECD_ENOTFOUND, RECD_EFORMAT or RECD_EIO. */
static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC), ret = RECD_EIO;
    *buf = NULL;
    *len = 0;
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return RECD_ENOTFOUND;
        fail(err, errlen, "%s: %s", path, strerror(errno));
        return RECD_EIO;
    }
    if (fstat(fd, &st) != 0) {
        fail(err, errlen, "%s: %s", path, strerror(errno));
        goto Exit;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)CONTROL_MAX_BYTES) {
        fail(err, errlen, "%s: not a regular file of at most %u bytes", path, CONTROL_MAX_BYTES);
        ret = RECD_EFORMAT;
        goto Exit;
    }
    *buf = recd_xmalloc((size_t)st.st_size + 1);
    while (*len < (size_t)st.st_size) {
        ssize_t n = read(fd, *buf + *len, (size_t)st.st_size - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail(err, errlen, "%s: %s", path, strerror(errno));
            goto Exit;
        }
        if (n == 0)
            break; /* shrank while read: parse what is there (rename-replaced files never shrink) */
        *len += (size_t)n;
    }
    (*buf)[*len] = '\0';
    ret = RECD_OK;
Exit:
    if (ret != RECD_OK) {
        free(*buf);
        *buf = NULL;
    }
    close(fd);
    return ret;
}

int recd_control_read(const char *registry, const char *model, recd_control_t *out, char *err, size_t errlen)
{
    char path[PATH_MAX], perr[512];
    json_error_t jerr;
    json_t *root;
    char *buf;
    size_t len;
    int ret;

    if (out == NULL)
        return RECD_EINVAL;
    *out = (recd_control_t){0};
    if ((ret = control_path(registry, model, path, sizeof(path))) != RECD_OK)
        return ret;
    if ((ret = read_file(path, &buf, &len, err, errlen)) != RECD_OK)
        return ret;
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (root == NULL) {
        fail(err, errlen, "%s: line %d: %s", path, jerr.line, jerr.text);
        return RECD_EFORMAT;
    }
    if (parse_root(root, out, perr, sizeof(perr)) != 0) {
        fail(err, errlen, "%s: %s", path, perr);
        json_decref(root);
        recd_control_dispose(out);
        return RECD_EFORMAT;
    }
    out->_extra = root;
    return RECD_OK;
}

void recd_control_dispose(recd_control_t *c)
{
    if (c == NULL)
        return;
    free(c->history);
    free(c->pins);
    free(c->experiments);
    json_decref(c->_extra);
    *c = (recd_control_t){0};
}

/* ---- writing ------------------------------------------------------------------------------------------------------- */

static json_t *version_array(const uint64_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; ++i)
        json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

/* A fresh object holding the members of old (may be NULL) that are not in known, so a rewrite keeps later fields. */
static json_t *unknown_members(const json_t *old, const char *const *known)
{
    json_t *o = json_object();
    const char *key;
    json_t *v;
    if (!json_is_object(old))
        return o;
    json_object_foreach((json_t *)old, key, v)
    {
        int is_known = 0;
        for (const char *const *k = known; *k != NULL && !is_known; ++k)
            is_known = strcmp(*k, key) == 0;
        if (!is_known)
            json_object_set(o, key, v);
    }
    return o;
}

static json_t *experiment_json(const recd_control_experiment_t *x, const json_t *old)
{
    static const char *const known[] = {"salt",       "enabled", "table_version", "arms",       "slots",
                                        "guardrails", "status",  "reason",        "changed_at", NULL};
    json_t *o = unknown_members(old, known), *arms = json_array();
    char slots[RECD_EXPERIMENT_SLOTS];

    json_object_set_new(o, "salt", json_string(x->salt));
    json_object_set_new(o, "enabled", json_boolean(x->enabled));
    json_object_set_new(o, "table_version", json_integer((json_int_t)x->table_version));
    for (size_t i = 0; i < x->n_arms; ++i)
        json_array_append_new(arms, json_pack("{s:s,s:I,s:I}", "name", x->arms[i].name, "version", (json_int_t)x->arms[i].version,
                                              "weight", (json_int_t)x->arms[i].weight));
    json_object_set_new(o, "arms", arms);
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s)
        slots[s] = slot_digits[x->slots[s]];
    json_object_set_new(o, "slots", json_stringn(slots, sizeof(slots)));
    if (x->guardrails.enabled) {
        const recd_control_guardrails_t *g = &x->guardrails;
        json_object_set_new(o, "guardrails",
                            json_pack("{s:s,s:s,s:f,s:f,s:I,s:I,s:f}", "canary", g->canary, "control", g->control,
                                      "max_error_rate_delta", g->max_error_rate_delta, "max_p99_ratio", g->max_p99_ratio,
                                      "min_requests", (json_int_t)g->min_requests, "min_events", (json_int_t)g->min_events, "alpha",
                                      g->alpha));
    }
    json_object_set_new(o, "status", json_string(x->rolled_back ? "rolled_back" : "running"));
    if (x->reason[0] != '\0')
        json_object_set_new(o, "reason", json_string(x->reason));
    if (x->changed_at != 0)
        json_object_set_new(o, "changed_at", json_real(x->changed_at));
    return o;
}

static json_t *control_json(const recd_control_t *c)
{
    static const char *const known[] = {"generation", "active", "history", "pins", "experiments", NULL};
    const json_t *old = c->_extra, *old_experiments = json_object_get(old, "experiments");
    json_t *root = unknown_members(old, known), *experiments = json_object();

    json_object_set_new(root, "generation", json_integer((json_int_t)c->generation));
    if (c->active != 0)
        json_object_set_new(root, "active", json_integer((json_int_t)c->active));
    json_object_set_new(root, "history", version_array(c->history, c->n_history));
    json_object_set_new(root, "pins", version_array(c->pins, c->n_pins));
    for (size_t i = 0; i < c->n_experiments; ++i) {
        const recd_control_experiment_t *x = &c->experiments[i];
        json_object_set_new(experiments, x->id, experiment_json(x, json_object_get(old_experiments, x->id)));
    }
    json_object_set_new(root, "experiments", experiments);
    return root;
}

int recd_control_write(const char *registry, const char *model, const recd_control_t *c)
{
    char path[PATH_MAX], tmp[PATH_MAX + 16], model_dir[PATH_MAX];
    int ret, fd;
    char *text;

    if (c == NULL || recd_control_validate(c, NULL, 0) != RECD_OK)
        return RECD_EINVAL;
    if ((ret = control_path(registry, model, path, sizeof(path))) != RECD_OK)
        return ret;
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path); /* unique: concurrent writers never share a temp file */
    snprintf(model_dir, sizeof(model_dir), "%s/%s", registry, model);
    json_t *root = control_json(c);
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text == NULL)
        return RECD_ENOMEM;
    if (recd_mkdir_parents(path) != 0 || (fd = mkstemp(tmp)) < 0) {
        free(text);
        return RECD_EIO;
    }
    size_t len = strlen(text), done = 0;
    text[len++] = '\n'; /* json_dumps's NUL becomes the final newline */
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    free(text);
    int failed = done != len || fchmod(fd, 0644) != 0 || fsync(fd) != 0;
    failed |= close(fd) != 0;
    if (failed || rename(tmp, path) != 0 || recd_fsync_path(model_dir, O_DIRECTORY) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return RECD_EIO;
    }
    return RECD_OK;
}

int recd_control_update(const char *registry, const char *model, int (*edit)(recd_control_t *c, void *data), void *data,
                        uint64_t *new_generation, char *err, size_t errlen)
{
    char lock_path[PATH_MAX], verr[512];
    recd_control_t c = {0};
    int fd, ret;

    if (edit == NULL || registry == NULL || !recd_registry_valid_name(model)) {
        fail(err, errlen, "invalid registry or model name");
        return RECD_EINVAL;
    }
    if ((size_t)snprintf(lock_path, sizeof(lock_path), "%s/%s/.control.lock", registry, model) >= sizeof(lock_path)) {
        fail(err, errlen, "path too long");
        return RECD_EINVAL;
    }
    if (recd_mkdir_parents(lock_path) != 0 || (fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        fail(err, errlen, "%s: %s", lock_path, strerror(errno));
        return RECD_EIO;
    }
    while ((ret = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    if (ret != 0) {
        fail(err, errlen, "%s: flock: %s", lock_path, strerror(errno));
        ret = RECD_EIO;
        goto Exit;
    }
    ret = recd_control_read(registry, model, &c, err, errlen);
    if (ret == RECD_ENOTFOUND)
        ret = RECD_OK;
    if (ret != RECD_OK)
        goto Exit;
    uint64_t generation = c.generation;
    if ((ret = edit(&c, data)) != RECD_OK) {
        if (err != NULL && errlen != 0 && err[0] == '\0')
            fail(err, errlen, "edit refused: %s", recd_strerror(ret));
        goto Exit;
    }
    c.generation = generation + 1;
    if (recd_control_validate(&c, verr, sizeof(verr)) != RECD_OK) {
        fail(err, errlen, "the edited control state is invalid: %s", verr);
        ret = RECD_EINVAL;
        goto Exit;
    }
    if ((ret = recd_control_write(registry, model, &c)) != RECD_OK) {
        fail(err, errlen, "writing %s/%s/%s: %s", registry, model, RECD_REGISTRY_CONTROL, strerror(errno));
        goto Exit;
    }
    if (new_generation != NULL)
        *new_generation = c.generation;
Exit:
    recd_control_dispose(&c);
    close(fd); /* releases the lock */
    return ret;
}

/* ---- helpers for edit callbacks ------------------------------------------------------------------------------------- */

recd_control_experiment_t *recd_control_find_experiment(const recd_control_t *c, const char *id)
{
    for (size_t i = 0; i < c->n_experiments; ++i)
        if (strcmp(c->experiments[i].id, id) == 0)
            return &c->experiments[i];
    return NULL;
}

void recd_control_activate(recd_control_t *c, uint64_t version)
{
    if (c->active != 0 && c->active != version) {
        c->history = recd_xreallocarray(c->history, c->n_history + 1, sizeof(*c->history));
        c->history[c->n_history++] = c->active;
    }
    c->active = version;
}

int recd_control_rollback(recd_control_t *c)
{
    if (c->n_history == 0)
        return RECD_ENOTFOUND;
    c->active = c->history[--c->n_history];
    return RECD_OK;
}

int recd_control_is_pinned(const recd_control_t *c, uint64_t version)
{
    for (size_t i = 0; i < c->n_pins; ++i)
        if (c->pins[i] == version)
            return 1;
    return 0;
}

int recd_control_experiment_routes(const recd_control_experiment_t *e)
{
    return e->enabled && e->n_arms > 0;
}

size_t recd_control_arm_of(const recd_control_experiment_t *e, const char *user, size_t len)
{
    uint8_t arm = e->slots[recd_experiment_slot(e->salt, strlen(e->salt), user, len)];
    return arm < e->n_arms ? arm : 0; /* the reader guarantees arm < n_arms; never index out of the arms */
}
