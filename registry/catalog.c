/* catalog.c: immutable snapshots of the loaded model versions, and the loader thread that builds them from the registry.
 *
 * DESIGN: a snapshot is built once, never changed, and shared by reference count: it holds one reference to each model
 * version in it, so a version is unmapped only when the last snapshot (and the last request that took its own reference)
 * lets go. The loader owns every piece of mutable state — the rejected versions with their files' identities, the watches,
 * the snapshot sequence — and only the thread that polls touches it: the caller of recd_catalog_loader_create/poll before
 * the watcher starts, the watcher thread afterwards (poll refuses to run beside it). The one thing other threads read is
 * the newest snapshot pointer, under a mutex. The watcher wakes on inotify events in each <registry>/<model>/ (a version
 * renamed in, control.json replaced) and at least every interval_ms (the fallback when inotify is unavailable), opens the
 * chosen version (mmap + SHA-256 check) on its own thread, never on an event loop, and hands each subscriber one reference
 * to the new snapshot. A version that fails to open is remembered with its file's identity (device, inode, size, mtime), so
 * it is logged and counted once and opened again only when the file changes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/hash.h"
#include "base/text.h"
#include "registry/catalog.h"
#include "registry/control.h"
#include "registry/registry.h"

/* ---- snapshots ------------------------------------------------------------------------------------------------------ */

typedef struct st_entry_t {
    char *name;
    size_t name_len;
    uint64_t control_generation;
    size_t n_versions;
    recd_catalog_version_t *versions; /* ascending */
    recd_control_experiment_t *experiments;
    size_t n_experiments;
} entry_t;

struct st_recd_catalog_t {
    _Atomic size_t refs;
    uint64_t generation;
    size_t max_items;
    size_t n_models;
    entry_t models[]; /* models[0] is the default */
};

static recd_catalog_t *catalog_new(size_t n_models, uint64_t generation)
{
    recd_catalog_t *c = recd_xcalloc(1, sizeof(*c) + n_models * sizeof(c->models[0]));
    atomic_init(&c->refs, 1);
    c->generation = generation;
    c->n_models = n_models;
    return c;
}

void recd_catalog_retain(recd_catalog_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void recd_catalog_release(recd_catalog_t *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->n_models; ++i) {
        entry_t *e = &c->models[i];
        for (size_t j = 0; j < e->n_versions; ++j) {
            recd_model_release(e->versions[j].model); /* NULL for a failed version */
            free((char *)e->versions[j].reason);
        }
        free(e->versions);
        free(e->experiments);
        free(e->name);
    }
    free(c);
}

recd_catalog_t *recd_catalog_of_model(recd_model_t *model)
{
    recd_catalog_t *c = catalog_new(1, 0);
    entry_t *e = &c->models[0];
    e->name = recd_xstrdup(recd_model_name(model));
    e->name_len = strlen(e->name);
    e->n_versions = 1;
    e->versions = recd_xcalloc(1, sizeof(*e->versions));
    e->versions[0] = (recd_catalog_version_t){recd_model_version(model), model, RECD_CATALOG_ACTIVE, NULL};
    c->max_items = recd_model_n_items(model);
    return c;
}

static const entry_t *find_entry(const recd_catalog_t *c, const char *name, size_t len)
{
    if (name == NULL)
        return &c->models[0];
    for (size_t i = 0; i < c->n_models; ++i)
        if (c->models[i].name_len == len && memcmp(c->models[i].name, name, len) == 0)
            return &c->models[i];
    return NULL;
}

static recd_model_t *active_of(const entry_t *e)
{
    for (size_t j = 0; j < e->n_versions; ++j)
        if (e->versions[j].roles & RECD_CATALOG_ACTIVE)
            return e->versions[j].model;
    return NULL;
}

recd_model_t *recd_catalog_active(const recd_catalog_t *c, const char *name, size_t len)
{
    const entry_t *e = find_entry(c, name, len);
    return e != NULL ? active_of(e) : NULL;
}

recd_model_t *recd_catalog_version(const recd_catalog_t *c, const char *name, size_t len, uint64_t version)
{
    const entry_t *e = find_entry(c, name, len);
    for (size_t j = 0; e != NULL && j < e->n_versions; ++j)
        if (e->versions[j].version == version)
            return e->versions[j].model;
    return NULL;
}

const char *recd_catalog_default_name(const recd_catalog_t *c)
{
    return c->models[0].name;
}

uint64_t recd_catalog_generation(const recd_catalog_t *c)
{
    return c->generation;
}

size_t recd_catalog_n_models(const recd_catalog_t *c)
{
    return c->n_models;
}

const char *recd_catalog_model_name(const recd_catalog_t *c, size_t i)
{
    return c->models[i].name;
}

int recd_catalog_model_index(const recd_catalog_t *c, const char *name, size_t len)
{
    const entry_t *e = find_entry(c, name, len);
    return e != NULL ? (int)(e - c->models) : -1;
}

const recd_catalog_version_t *recd_catalog_versions(const recd_catalog_t *c, const char *name, size_t len, size_t *n)
{
    const entry_t *e = find_entry(c, name, len);
    *n = e != NULL ? e->n_versions : 0;
    return e != NULL ? e->versions : NULL;
}

const recd_control_experiment_t *recd_catalog_experiments(const recd_catalog_t *c, const char *name, size_t len, size_t *n)
{
    const entry_t *e = find_entry(c, name, len);
    *n = e != NULL ? e->n_experiments : 0;
    return e != NULL ? e->experiments : NULL;
}

const char *recd_catalog_state_name(unsigned roles)
{
    return roles & RECD_CATALOG_ACTIVE   ? "active"
           : roles & RECD_CATALOG_PINNED ? "pinned"
           : roles & RECD_CATALOG_ARM    ? "arm"
           : roles & RECD_CATALOG_FAILED ? "failed"
                                         : "standby";
}

uint64_t recd_catalog_control_generation(const recd_catalog_t *c, const char *name, size_t len)
{
    const entry_t *e = find_entry(c, name, len);
    return e != NULL ? e->control_generation : 0;
}

size_t recd_catalog_max_items(const recd_catalog_t *c)
{
    return c->max_items;
}

/* ---- loader --------------------------------------------------------------------------------------------------------- */

/* Which file a path named when it was looked at: a rejected artifact is retried only when this changes. */
typedef struct st_file_id_t {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id_t;

typedef struct st_rejection_t {
    uint64_t version;
    file_id_t file;
    char reason[300]; /* "artifact: ..." or "warmup: ...", shown as the failed version's reason */
} rejection_t;

/* What the loader remembers about one model name; only the polling thread touches it. */
typedef struct st_model_state_t {
    char *name;
    int wd; /* inotify watch of <registry>/<name>/, or -1 */
    rejection_t *rejected;
    size_t n_rejected;
    file_id_t bad_control; /* the malformed control file last reported, so it is logged once */
    int bad_control_logged;
    uint64_t unavailable_logged; /* the control's version last reported as not loadable */
    char last_error[768];        /* why the newest candidate did not open, for the start-up message */
    uint64_t *refused;           /* versions refused for the budget, logged and counted once */
    size_t n_refused;
    uint64_t *ignored; /* hashes of directory entries reported as not versions, logged once */
    size_t n_ignored;
    recd_metric_t *version_gauge;
    recd_metric_t *state_gauges[5]; /* recd_models_loaded{model,state}: active, pinned, arm, standby, failed */
} model_state_t;

typedef struct st_subscriber_t {
    recd_catalog_cb cb;
    void *data;
} subscriber_t;

struct st_recd_catalog_loader_t {
    char *registry;
    const recd_logger_t *log;
    recd_metrics_t *metrics;
    size_t max_loaded_bytes; /* 0: no budget */
    recd_metric_t *loads, *failures;
    size_t n_models;
    model_state_t *models;
    int all_models; /* "*" was given: every model directory of the registry is served, found again at every poll */
    int root_wd;    /* with all_models: the inotify watch of the registry directory itself, or -1 */
    uint64_t generation;
    pthread_mutex_t mutex; /* guards current against readers on other threads; only the polling thread writes it */
    recd_catalog_t *current;
    subscriber_t *subscribers;
    size_t n_subscribers;
    /* watcher */
    pthread_t tid;
    int running;
    uint32_t interval_ms;
    int stop_pipe[2];
};

static int file_identity(const char *path, file_id_t *out)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    *out = (file_id_t){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return 0;
}

static int same_file(const file_id_t *a, const file_id_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* recd_model_refusals_total{model,reason} += 1 (registered on first use: reasons are few). */
static void count_refusal(recd_catalog_loader_t *l, const model_state_t *ms, const char *reason)
{
    char labels[200];
    snprintf(labels, sizeof(labels), "model=\"%s\",reason=\"%s\"", ms->name, reason);
    recd_metric_add(recd_metrics_counter(l->metrics, "recd_model_refusals_total",
                                         "Model versions refused, by reason (artifact, warmup, budget).", labels),
                    RECD_METRICS_SHARED, 1);
}

static rejection_t *find_rejection(model_state_t *ms, uint64_t version)
{
    for (size_t i = 0; i < ms->n_rejected; ++i)
        if (ms->rejected[i].version == version)
            return &ms->rejected[i];
    return NULL;
}

/* Forgets rejections of versions that are no longer published (versions: ascending), so the list stays small. */
static void prune_rejections(model_state_t *ms, const uint64_t *versions, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < ms->n_rejected; ++i) {
        int published = 0;
        for (size_t j = 0; j < n && !published; ++j)
            published = versions[j] == ms->rejected[i].version;
        if (published)
            ms->rejected[kept++] = ms->rejected[i];
    }
    ms->n_rejected = kept;
}

static uint64_t version_or_zero(const recd_model_t *m)
{
    return m != NULL ? recd_model_version(m) : 0;
}

/*
 * Opens version v of a model unless it was rejected before and its file has not changed since. Returns the version with one
 * reference, or NULL (rejected now or before, or gone). serving is only for the log.
 */
/* Users scored before a new version takes traffic: enough to touch the code paths and catch a model that scores garbage. */
#define WARMUP_USERS 8

/* Scores a few users of m on the loader thread. Returns 0, or -1 with a message when a score is NaN or +infinity. */
static int warm_up(const recd_model_t *m, char *err, size_t errlen)
{
    size_t n_items = recd_model_n_items(m), n_users = recd_model_n_users(m);
    float *scores = recd_xmalloc((n_items != 0 ? n_items : 1) * sizeof(*scores));
    recd_scored_t top[10];
    int ret = 0;

    for (size_t k = 0; k < WARMUP_USERS && k < n_users && ret == 0; ++k) {
        uint32_t u = (uint32_t)(k * (n_users / WARMUP_USERS + 1) % n_users);
        recd_model_score(m, recd_model_user_vector(m, u), u, scores);
        for (size_t i = 0; i < n_items; ++i) {
            if (isnan(scores[i]) || scores[i] == INFINITY) {
                snprintf(err, errlen, "warm-up: user %u scores item %zu as %f", (unsigned)u, i, (double)scores[i]);
                ret = -1;
                break;
            }
        }
        recd_topk(scores, n_items, 10, top);
    }
    free(scores);
    return ret;
}

/* Remembers that version v (its file as file) was rejected, counts and logs it. reason labels recd_model_refusals_total. */
static void reject(recd_catalog_loader_t *l, model_state_t *ms, uint64_t v, const file_id_t *file, const char *reason,
                   const char *err, const recd_model_t *serving)
{
    char qname[200], qerr[1100];
    rejection_t *rej = find_rejection(ms, v);
    if (rej == NULL) {
        ms->rejected = recd_xreallocarray(ms->rejected, ms->n_rejected + 1, sizeof(*ms->rejected));
        rej = &ms->rejected[ms->n_rejected++];
    }
    *rej = (rejection_t){v, *file, ""};
    snprintf(rej->reason, sizeof(rej->reason), "%s: %s", reason, err);
    snprintf(ms->last_error, sizeof(ms->last_error), "version %llu: %s", (unsigned long long)v, err);
    recd_metric_add(l->failures, RECD_METRICS_SHARED, 1);
    count_refusal(l, ms, reason);
    recd_log(l->log, RECD_LOG_ERROR, "model version rejected",
             "\"model\":%s,\"version\":%llu,\"serving\":%llu,\"reason\":\"%s\",\"error\":%s",
             recd_json_quote(qname, sizeof(qname), ms->name, strlen(ms->name)), (unsigned long long)v,
             (unsigned long long)version_or_zero(serving), reason, recd_json_quote(qerr, sizeof(qerr), err, strlen(err)));
}

/*
 * Opens version v of a model unless it was rejected before and its file has not changed since, and warms it up. Returns
 * the version with one reference, or NULL (rejected now or before, or gone). serving is only for the log.
 */
static recd_model_t *try_open(recd_catalog_loader_t *l, model_state_t *ms, uint64_t v, const recd_model_t *serving)
{
    char path[4096], err[512], qname[200];
    file_id_t file = {0};
    struct stat st;
    rejection_t *rej;
    recd_model_t *m;

    if (recd_registry_artifact_path(l->registry, ms->name, v, path, sizeof(path)) != RECD_OK)
        return NULL;
    /* a symlinked artifact (or version directory, refused by the listing already) could serve another model's file under
     * this name: only a regular file inside the version's own directory is opened */
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return NULL; /* removed since it was listed */
        snprintf(err, sizeof(err), "%.400s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        file = (file_id_t){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
        snprintf(err, sizeof(err), "%.400s: %s, refused", path, S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
    } else {
        file = (file_id_t){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
        err[0] = '\0';
    }
    rej = find_rejection(ms, v);
    if (rej != NULL && same_file(&rej->file, &file))
        return NULL;
    if (err[0] != '\0') {
        reject(l, ms, v, &file, "artifact", err, serving);
        return NULL;
    }
    if ((m = recd_model_open(path, err, sizeof(err))) == NULL) {
        reject(l, ms, v, &file, "artifact", err, serving);
        return NULL;
    }
    if (warm_up(m, err, sizeof(err)) != 0) {
        recd_model_release(m);
        reject(l, ms, v, &file, "warmup", err, serving);
        return NULL;
    }
    if ((rej = find_rejection(ms, v)) != NULL)
        *rej = ms->rejected[--ms->n_rejected];
    recd_model_set_identity(m, ms->name, v);
    recd_metric_add(l->loads, RECD_METRICS_SHARED, 1);
    recd_log(l->log, RECD_LOG_INFO, "model loaded",
             "\"model\":%s,\"version\":%llu,\"previous\":%llu,\"kind\":\"%s\",\"users\":%zu,\"items\":%zu,\"factors\":%u,"
             "\"bytes\":%zu,\"sha256\":\"%s\"",
             recd_json_quote(qname, sizeof(qname), ms->name, strlen(ms->name)), (unsigned long long)v,
             (unsigned long long)version_or_zero(serving), recd_model_kind_name(recd_model_kind(m)), recd_model_n_users(m),
             recd_model_n_items(m), recd_model_n_factors(m), recd_model_bytes(m), recd_model_sha256(m));
    return m;
}

/* Reads the model's control file into *control (empty without one). Returns 1 when it is usable (or absent), 0 when it is
 * unreadable or malformed (logged once per file; *control is then empty). */
static int read_control(recd_catalog_loader_t *l, model_state_t *ms, recd_control_t *control)
{
    char err[1024], path[4096], qname[200], qerr[1100];
    int ret = recd_control_read(l->registry, ms->name, control, err, sizeof(err));

    if (ret == RECD_OK || ret == RECD_ENOTFOUND) {
        ms->bad_control_logged = 0;
        return 1;
    }
    recd_control_dispose(control);
    if (ret != RECD_EFORMAT && ret != RECD_EIO)
        snprintf(err, sizeof(err), "%s", recd_strerror(ret));
    file_id_t file = {0};
    snprintf(path, sizeof(path), "%s/%s/%s", l->registry, ms->name, RECD_REGISTRY_CONTROL);
    file_identity(path, &file);
    if (!ms->bad_control_logged || !same_file(&ms->bad_control, &file)) {
        ms->bad_control = file;
        ms->bad_control_logged = 1;
        recd_log(l->log, RECD_LOG_ERROR, "control file ignored", "\"model\":%s,\"error\":%s",
                 recd_json_quote(qname, sizeof(qname), ms->name, strlen(ms->name)),
                 recd_json_quote(qerr, sizeof(qerr), err, strlen(err)));
    }
    return 0;
}

/*
 * Decides which version model ms serves now, given what it served in the previous snapshot (prev, NULL at start-up) and
 * the control state (want: its "active", 0 for none). Returns it with one reference (NULL when none can serve).
 * *in_effect is set when the control file's choice is what serves (or it names none).
 */
static recd_model_t *choose(recd_catalog_loader_t *l, model_state_t *ms, const entry_t *prev, const uint64_t *versions, size_t n,
                            uint64_t want, int *in_effect)
{
    recd_model_t *serving = prev != NULL ? active_of(prev) : NULL, *m = NULL;
    char qname[200];

    *in_effect = 0;
    if (want != 0) {
        int published = 0;
        if (want == version_or_zero(serving)) {
            ms->unavailable_logged = 0;
            *in_effect = 1;
            goto Keep;
        }
        for (size_t i = 0; i < n && !published; ++i)
            published = versions[i] == want;
        if (published && (m = try_open(l, ms, want, serving)) != NULL) {
            ms->unavailable_logged = 0;
            *in_effect = 1;
            return m;
        }
        if (ms->unavailable_logged != want) {
            ms->unavailable_logged = want;
            recd_log(l->log, RECD_LOG_ERROR, "control file names a version that cannot serve",
                     "\"model\":%s,\"version\":%llu,\"published\":%s,\"serving\":%llu",
                     recd_json_quote(qname, sizeof(qname), ms->name, strlen(ms->name)), (unsigned long long)want,
                     published ? "true" : "false", (unsigned long long)version_or_zero(serving));
        }
        if (serving != NULL)
            goto Keep; /* and the generation that chose it: this control file is not in effect */
        /* at start-up nothing serves yet: fall back to the newest version that opens */
    } else {
        ms->unavailable_logged = 0;
        *in_effect = 1;
    }
    /* Newest first, and never older than what serves: going back is the control file's job, so a version directory that
     * disappears (or a listing caught in the middle of a deletion) does not switch anything by itself. */
    for (size_t i = n; i-- > 0 && versions[i] > version_or_zero(serving);) {
        if ((m = try_open(l, ms, versions[i], serving)) != NULL)
            return m;
    }
    if (serving == NULL)
        return NULL;
Keep: /* even when its directory is gone: the copy in memory stays valid */
    recd_model_retain(serving);
    return serving;
}

/* Adds version v with roles to e (merging roles when it is there already); model may be NULL (failed, and then reason says
 * why; copied). Takes over model's reference. */
static void entry_add(entry_t *e, uint64_t v, recd_model_t *model, unsigned roles, const char *reason)
{
    for (size_t j = 0; j < e->n_versions; ++j) {
        if (e->versions[j].version == v) {
            e->versions[j].roles |= roles;
            if (e->versions[j].reason == NULL && reason != NULL)
                e->versions[j].reason = recd_xstrdup(reason);
            recd_model_release(model);
            return;
        }
    }
    e->versions = recd_xreallocarray(e->versions, e->n_versions + 1, sizeof(*e->versions));
    size_t at = e->n_versions++;
    while (at > 0 && e->versions[at - 1].version > v) {
        e->versions[at] = e->versions[at - 1];
        --at;
    }
    e->versions[at] = (recd_catalog_version_t){v, model, roles, reason != NULL ? recd_xstrdup(reason) : NULL};
}

static const recd_catalog_version_t *entry_find(const entry_t *e, uint64_t v)
{
    for (size_t j = 0; e != NULL && j < e->n_versions; ++j)
        if (e->versions[j].version == v)
            return &e->versions[j];
    return NULL;
}

/* Counts a refusal of a version by reason (and logs it) once per version and reason, so a poll every second adds nothing. */
static void refuse(recd_catalog_loader_t *l, model_state_t *ms, uint64_t v, const char *reason, const char *detail)
{
    char qname[200], qdetail[600];
    for (size_t i = 0; i < ms->n_refused; ++i)
        if (ms->refused[i] == v)
            return;
    ms->refused = recd_xreallocarray(ms->refused, ms->n_refused + 1, sizeof(*ms->refused));
    ms->refused[ms->n_refused++] = v;
    count_refusal(l, ms, reason);
    recd_log(l->log, RECD_LOG_WARN, "model version refused", "\"model\":%s,\"version\":%llu,\"reason\":\"%s\",\"detail\":%s",
             recd_json_quote(qname, sizeof(qname), ms->name, strlen(ms->name)), (unsigned long long)v, reason,
             recd_json_quote(qdetail, sizeof(qdetail), detail, strlen(detail)));
}

static void forget_refusal(model_state_t *ms, uint64_t v)
{
    for (size_t i = 0; i < ms->n_refused; ++i)
        if (ms->refused[i] == v)
            ms->refused[i--] = ms->refused[--ms->n_refused];
}

/*
 * Version v, wanted with roles beside the active one: reused from the previous snapshot, or opened when it fits the memory
 * budget (*budget_used counts what the new snapshot holds). Adds it to e, loaded or failed.
 */
static void add_extra(recd_catalog_loader_t *l, model_state_t *ms, const entry_t *pe, entry_t *e, const uint64_t *versions,
                      size_t n, uint64_t v, unsigned roles, size_t *budget_used)
{
    const recd_catalog_version_t *had = entry_find(pe, v), *have = entry_find(e, v);
    recd_model_t *m = NULL;
    char path[4096], detail[160] = "";
    struct stat st;
    int published = 0;

    if (have != NULL) { /* already there (the active one, or wanted by another role) */
        entry_add(e, v, NULL, roles, NULL);
        return;
    }
    for (size_t i = 0; i < n && !published; ++i)
        published = versions[i] == v;
    if (had != NULL && had->model != NULL) {
        m = had->model;
        recd_model_retain(m);
    } else if (published) {
        if (l->max_loaded_bytes != 0 && recd_registry_artifact_path(l->registry, ms->name, v, path, sizeof(path)) == RECD_OK &&
            stat(path, &st) == 0 && *budget_used + (size_t)st.st_size > l->max_loaded_bytes) {
            snprintf(detail, sizeof(detail), "budget: needs %lld bytes, %zu of max_loaded_bytes %zu in use", (long long)st.st_size,
                     *budget_used, l->max_loaded_bytes);
            refuse(l, ms, v, "budget", detail);
        } else {
            m = try_open(l, ms, v, active_of(e));
        }
    }
    if (m == NULL) {
        const rejection_t *rej = find_rejection(ms, v);
        if (published || had != NULL)
            entry_add(e, v, NULL, roles | RECD_CATALOG_FAILED,
                      detail[0] != '\0' ? detail
                      : rej != NULL     ? rej->reason
                      : had != NULL     ? had->reason
                                        : "not loaded");
        return;
    }
    if (had == NULL && l->max_loaded_bytes != 0 && *budget_used + recd_model_bytes(m) > l->max_loaded_bytes) {
        snprintf(detail, sizeof(detail), "budget: needs %zu bytes, %zu of max_loaded_bytes %zu in use", recd_model_bytes(m),
                 *budget_used, l->max_loaded_bytes);
        refuse(l, ms, v, "budget", detail);
        recd_model_release(m);
        entry_add(e, v, NULL, roles | RECD_CATALOG_FAILED, detail);
        return;
    }
    forget_refusal(ms, v);
    *budget_used += recd_model_bytes(m);
    entry_add(e, v, m, roles, NULL);
}

/* Copies the previous entry (every version with its roles, the experiments): a control file that cannot be read changes
 * nothing that serves. */
static void copy_entry(entry_t *e, const entry_t *pe, size_t *budget_used)
{
    e->control_generation = pe->control_generation;
    for (size_t j = 0; j < pe->n_versions; ++j) {
        if (pe->versions[j].model != NULL) {
            recd_model_retain(pe->versions[j].model);
            *budget_used += recd_model_bytes(pe->versions[j].model);
        }
        entry_add(e, pe->versions[j].version, pe->versions[j].model, pe->versions[j].roles, pe->versions[j].reason);
    }
    if (pe->n_experiments != 0) {
        e->experiments = recd_xcalloc(pe->n_experiments, sizeof(*e->experiments));
        memcpy(e->experiments, pe->experiments, pe->n_experiments * sizeof(*e->experiments));
        e->n_experiments = pe->n_experiments;
    }
}

/* Lists every published version that failed its checks (and is not in e with a role already) as failed, with its reason. */
static void add_failed(const model_state_t *ms, entry_t *e)
{
    for (size_t i = 0; i < ms->n_rejected; ++i)
        if (entry_find(e, ms->rejected[i].version) == NULL)
            entry_add(e, ms->rejected[i].version, NULL, RECD_CATALOG_FAILED, ms->rejected[i].reason);
}

typedef struct st_ignored_ctx_t {
    recd_catalog_loader_t *l;
    model_state_t *ms;
} ignored_ctx_t;

/* Logs a directory entry refused as a version, once per name. */
static void on_ignored(void *data, const char *name, const char *why)
{
    ignored_ctx_t *ctx = data;
    model_state_t *ms = ctx->ms;
    char qname[200], qentry[600];
    uint64_t h = recd_hash_bytes(name, strlen(name), 0);
    for (size_t i = 0; i < ms->n_ignored; ++i)
        if (ms->ignored[i] == h)
            return;
    ms->ignored = recd_xreallocarray(ms->ignored, ms->n_ignored + 1, sizeof(*ms->ignored));
    ms->ignored[ms->n_ignored++] = h;
    recd_log(ctx->l->log, RECD_LOG_WARN, "registry entry ignored", "\"model\":%s,\"entry\":%s,\"why\":\"%s\"",
             recd_json_quote(qname, sizeof(qname), ms->name, strlen(ms->name)),
             recd_json_quote(qentry, sizeof(qentry), name, strlen(name)), why);
}

/* Builds model ms's entry of the next snapshot from the registry and the control file. */
static void build_entry(recd_catalog_loader_t *l, model_state_t *ms, const entry_t *pe, entry_t *e, size_t *budget_used)
{
    recd_model_t *serving = pe != NULL ? active_of(pe) : NULL, *active;
    recd_control_t control = {0};
    uint64_t *versions = NULL;
    size_t n = 0;
    int in_effect;

    ignored_ctx_t ictx = {l, ms};
    int ret = recd_registry_scan(l->registry, ms->name, &versions, &n, on_ignored, &ictx);
    if (ret != RECD_OK) /* a permission error says so, not "not found" */
        snprintf(ms->last_error, sizeof(ms->last_error), "%s/%s: %s", l->registry, ms->name,
                 ret == RECD_EIO ? strerror(errno) : recd_strerror(ret));
    else if (n == 0)
        snprintf(ms->last_error, sizeof(ms->last_error), "no published version");
    if (ret != RECD_OK && pe != NULL) {
        copy_entry(e, pe, budget_used); /* the registry may be briefly unreadable: keep serving */
        goto Exit;
    }
    prune_rejections(ms, versions, n);
    if (!read_control(l, ms, &control) && pe != NULL) {
        copy_entry(e, pe, budget_used);
        goto Exit;
    }
    active = choose(l, ms, pe, versions, n, control.active, &in_effect);
    e->control_generation = in_effect ? control.generation : pe != NULL ? pe->control_generation : 0;
    if (active != NULL) {
        *budget_used += recd_model_bytes(active); /* what serves is never refused for the budget */
        entry_add(e, recd_model_version(active), active, RECD_CATALOG_ACTIVE, NULL);
    }
    if (!in_effect && pe != NULL && serving != NULL) {
        /* the control file's active cannot serve: keep the rest of the previous state with it */
        for (size_t j = 0; j < pe->n_versions; ++j)
            if (pe->versions[j].model != serving && (pe->versions[j].roles & ~(RECD_CATALOG_ACTIVE | RECD_CATALOG_FAILED)) != 0)
                add_extra(l, ms, pe, e, versions, n, pe->versions[j].version, pe->versions[j].roles & ~RECD_CATALOG_ACTIVE,
                          budget_used);
        if (pe->n_experiments != 0) {
            e->experiments = recd_xcalloc(pe->n_experiments, sizeof(*e->experiments));
            memcpy(e->experiments, pe->experiments, pe->n_experiments * sizeof(*e->experiments));
            e->n_experiments = pe->n_experiments;
        }
        goto Exit;
    }
    for (size_t i = 0; i < control.n_pins; ++i)
        add_extra(l, ms, pe, e, versions, n, control.pins[i], RECD_CATALOG_PINNED, budget_used);
    for (size_t x = 0; x < control.n_experiments; ++x) {
        const recd_control_experiment_t *exp = &control.experiments[x];
        for (size_t a = 0; exp->enabled && !exp->rolled_back && a < exp->n_arms; ++a)
            add_extra(l, ms, pe, e, versions, n, exp->arms[a].version, RECD_CATALOG_ARM, budget_used);
    }
    if (control.n_history != 0) /* the rollback target, kept warm when it fits */
        add_extra(l, ms, pe, e, versions, n, control.history[control.n_history - 1], RECD_CATALOG_STANDBY, budget_used);
    if (control.n_experiments != 0) {
        e->experiments = control.experiments; /* taken over */
        e->n_experiments = control.n_experiments;
        control.experiments = NULL;
        control.n_experiments = 0;
    }
Exit:
    add_failed(ms, e);
    recd_control_dispose(&control);
    free(versions);
}

static int same_entry(const entry_t *a, const entry_t *b)
{
    if (a->control_generation != b->control_generation || a->n_versions != b->n_versions || a->n_experiments != b->n_experiments)
        return 0;
    for (size_t j = 0; j < a->n_versions; ++j)
        if (a->versions[j].version != b->versions[j].version || a->versions[j].model != b->versions[j].model ||
            a->versions[j].roles != b->versions[j].roles ||
            strcmp(a->versions[j].reason != NULL ? a->versions[j].reason : "",
                   b->versions[j].reason != NULL ? b->versions[j].reason : "") != 0)
            return 0;
    return a->n_experiments == 0 || memcmp(a->experiments, b->experiments, a->n_experiments * sizeof(*a->experiments)) == 0;
}

/* Makes snapshot the newest and hands each subscriber its own reference; takes over the caller's reference. */
static void publish(recd_catalog_loader_t *l, recd_catalog_t *snapshot)
{
    for (size_t i = 0; i < l->n_models; ++i) {
        const entry_t *e = &snapshot->models[i];
        model_state_t *ms = &l->models[i];
        double by_state[5] = {0};
        recd_metric_set(ms->version_gauge, (double)version_or_zero(active_of(e)));
        for (size_t j = 0; j < e->n_versions; ++j) {
            unsigned r = e->versions[j].roles;
            ++by_state[r & RECD_CATALOG_ACTIVE   ? 0
                       : r & RECD_CATALOG_PINNED ? 1
                       : r & RECD_CATALOG_ARM    ? 2
                       : r & RECD_CATALOG_FAILED ? 4
                                                 : 3];
        }
        for (size_t k = 0; k < 5; ++k)
            recd_metric_set(ms->state_gauges[k], by_state[k]);
    }
    pthread_mutex_lock(&l->mutex);
    recd_catalog_t *old = l->current;
    l->current = snapshot;
    pthread_mutex_unlock(&l->mutex);
    for (size_t i = 0; i < l->n_subscribers; ++i) {
        recd_catalog_retain(snapshot);
        l->subscribers[i].cb(l->subscribers[i].data, snapshot);
    }
    recd_catalog_release(old);
}

/* Adds a model name to the loader's state, with its metrics (names are valid, so they need no escaping in labels). */
static void add_model(recd_catalog_loader_t *l, const char *name)
{
    static const char *const states[5] = {"active", "pinned", "arm", "standby", "failed"};
    char labels[128];
    l->models = recd_xreallocarray(l->models, l->n_models + 1, sizeof(*l->models));
    model_state_t *ms = &l->models[l->n_models++];
    memset(ms, 0, sizeof(*ms));
    ms->name = recd_xstrdup(name);
    ms->wd = -1;
    snprintf(labels, sizeof(labels), "model=\"%s\"", name);
    ms->version_gauge =
        recd_metrics_gauge(l->metrics, "recd_model_version", "The model version being served (the active one).", labels);
    for (size_t k = 0; k < 5; ++k) {
        snprintf(labels, sizeof(labels), "model=\"%s\",state=\"%s\"", name, states[k]);
        ms->state_gauges[k] =
            recd_metrics_gauge(l->metrics, "recd_models_loaded", "Versions of a model in the current snapshot, by state.", labels);
    }
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* With "*": adds every model directory of the registry not served yet (a real directory with a valid name), new ones in
 * byte order after the ones already there, so a model keeps its index. A registry that cannot be listed adds nothing. */
static void discover_models(recd_catalog_loader_t *l)
{
    DIR *d = opendir(l->registry);
    struct dirent *de;
    char **found = NULL;
    size_t n_found = 0;
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        int known = 0;
        if (!recd_registry_valid_name(de->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", l->registry, de->d_name);
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue; /* a symlinked model directory is refused like a symlinked version */
        for (size_t i = 0; i < l->n_models && !known; ++i)
            known = strcmp(l->models[i].name, de->d_name) == 0;
        if (!known) {
            found = recd_xreallocarray(found, n_found + 1, sizeof(*found));
            found[n_found++] = recd_xstrdup(de->d_name);
        }
    }
    closedir(d);
    if (n_found > 1)
        qsort(found, n_found, sizeof(*found), compare_names); /* qsort(NULL, 0, ...) is undefined behaviour */
    for (size_t i = 0; i < n_found; ++i) {
        char qname[200];
        add_model(l, found[i]);
        if (l->current != NULL)
            recd_log(l->log, RECD_LOG_INFO, "model found in the registry", "\"model\":%s",
                     recd_json_quote(qname, sizeof(qname), found[i], strlen(found[i])));
        free(found[i]);
    }
    free(found);
}

/* One check of every model; only the polling thread calls it. Returns 1 when a snapshot was published, else 0. */
static int poll_once(recd_catalog_loader_t *l)
{
    const recd_catalog_t *prev = l->current; /* only this thread writes current: no lock needed to read it here */
    if (l->all_models)
        discover_models(l);
    recd_catalog_t *next = catalog_new(l->n_models, l->generation + 1);
    int changed = prev == NULL || prev->n_models != l->n_models;
    size_t budget_used = 0;

    for (size_t i = 0; i < l->n_models; ++i) {
        model_state_t *ms = &l->models[i];
        entry_t *e = &next->models[i];
        const entry_t *pe = prev != NULL && i < prev->n_models ? &prev->models[i] : NULL;
        e->name = recd_xstrdup(ms->name);
        e->name_len = strlen(ms->name);
        build_entry(l, ms, pe, e, &budget_used);
        for (size_t j = 0; j < e->n_versions; ++j)
            if (e->versions[j].model != NULL && recd_model_n_items(e->versions[j].model) > next->max_items)
                next->max_items = recd_model_n_items(e->versions[j].model);
        if (pe != NULL && !same_entry(pe, e))
            changed = 1;
    }
    if (!changed) {
        recd_catalog_release(next);
        return 0;
    }
    l->generation = next->generation;
    publish(l, next);
    return 1;
}

/* recd_model_loaded_bytes and recd_models_in_memory: every version still in memory, including old ones that requests
 * still hold, so a release shows up as soon as the last request lets go. */
static void collect_memory(void *data, recd_jw_t *out)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "# HELP recd_model_loaded_bytes Bytes held by loaded model versions (including ones still held by "
                     "requests).\n# TYPE recd_model_loaded_bytes gauge\nrecd_model_loaded_bytes %zu\n"
                     "# HELP recd_models_in_memory Model versions in memory (including ones still held by requests).\n"
                     "# TYPE recd_models_in_memory gauge\nrecd_models_in_memory %zu\n",
                     recd_model_live_bytes(), recd_model_live_count());
    recd_jw_raw(out, buf, (size_t)n);
    (void)data;
}

recd_catalog_loader_t *recd_catalog_loader_create(const char *registry, const char *const *models, size_t n_models,
                                                  size_t max_loaded_bytes, const recd_logger_t *log, recd_metrics_t *metrics,
                                                  char *err, size_t errlen)
{
    recd_catalog_loader_t *l;

    if (n_models == 0) {
        snprintf(err, errlen, "no model name given");
        return NULL;
    }
    for (size_t i = 0; i < n_models; ++i) {
        if (strcmp(models[i], "*") != 0 && !recd_registry_valid_name(models[i])) {
            snprintf(err, errlen, "invalid model name \"%s\" (1..64 of [A-Za-z0-9_.-], not starting with '.')", models[i]);
            return NULL;
        }
    }
    l = recd_xcalloc(1, sizeof(*l));
    l->registry = recd_xstrdup(registry);
    l->log = log;
    l->metrics = metrics;
    l->max_loaded_bytes = max_loaded_bytes;
    l->loads = recd_metrics_counter(metrics, "recd_model_loads_total", "Model versions loaded from the registry.", NULL);
    l->failures = recd_metrics_counter(metrics, "recd_model_load_failures_total", "Model versions rejected when loading.", NULL);
    l->root_wd = -1;
    for (size_t i = 0; i < n_models; ++i) {
        int repeated = 0;
        for (size_t j = 0; j < i; ++j)
            repeated |= strcmp(models[i], models[j]) == 0;
        if (strcmp(models[i], "*") == 0)
            l->all_models = 1;
        else if (!repeated)
            add_model(l, models[i]);
    }
    recd_metrics_add_collector(metrics, collect_memory, NULL);
    pthread_mutex_init(&l->mutex, NULL);
    l->stop_pipe[0] = l->stop_pipe[1] = -1;

    poll_once(l);
    if (l->n_models == 0) {
        snprintf(err, errlen, "no model in registry %s (\"*\" serves the model directories found there)", registry);
        recd_catalog_loader_free(l);
        return NULL;
    }
    if (recd_catalog_active(l->current, NULL, 0) == NULL) {
        snprintf(err, errlen, "no version of model \"%s\" in registry %s opens (%s)", l->models[0].name, registry,
                 l->models[0].last_error);
        recd_catalog_loader_free(l);
        return NULL;
    }
    return l;
}

void recd_catalog_loader_free(recd_catalog_loader_t *l)
{
    if (l == NULL)
        return;
    recd_catalog_loader_stop(l);
    recd_catalog_release(l->current);
    for (size_t i = 0; i < l->n_models; ++i) {
        free(l->models[i].name);
        free(l->models[i].rejected);
        free(l->models[i].refused);
        free(l->models[i].ignored);
    }
    free(l->models);
    free(l->subscribers);
    pthread_mutex_destroy(&l->mutex);
    free(l->registry);
    free(l);
}

recd_catalog_t *recd_catalog_loader_current(recd_catalog_loader_t *l)
{
    pthread_mutex_lock(&l->mutex);
    recd_catalog_t *c = l->current;
    recd_catalog_retain(c);
    pthread_mutex_unlock(&l->mutex);
    return c;
}

void recd_catalog_loader_subscribe(recd_catalog_loader_t *l, recd_catalog_cb cb, void *data)
{
    l->subscribers = recd_xreallocarray(l->subscribers, l->n_subscribers + 1, sizeof(*l->subscribers));
    l->subscribers[l->n_subscribers++] = (subscriber_t){cb, data};
}

int recd_catalog_loader_poll(recd_catalog_loader_t *l)
{
    if (l->running)
        return RECD_EBUSY;
    return poll_once(l);
}

/* (Re)adds the inotify watch of every model directory that has none (it may not exist yet, or was replaced). */
static void add_watches(recd_catalog_loader_t *l, int ifd)
{
    if (l->all_models && l->root_wd < 0) /* a model directory created or renamed in */
        l->root_wd = inotify_add_watch(ifd, l->registry, IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    for (size_t i = 0; i < l->n_models; ++i) {
        char dir[4096];
        if (l->models[i].wd >= 0)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", l->registry, l->models[i].name);
        l->models[i].wd = inotify_add_watch(ifd, dir,
                                            IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE | IN_DELETE_SELF |
                                                IN_MOVE_SELF | IN_ONLYDIR);
    }
}

/* Drains inotify events; a watch whose directory went away is dropped so add_watches sets it up on the new one. */
static void read_events(recd_catalog_loader_t *l, int ifd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t len;
    while ((len = read(ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + len; p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (!(ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)))
                continue;
            if (ev->wd == l->root_wd) {
                if (!(ev->mask & IN_IGNORED))
                    inotify_rm_watch(ifd, ev->wd);
                l->root_wd = -1;
            }
            for (size_t i = 0; i < l->n_models; ++i) {
                if (l->models[i].wd == ev->wd) {
                    if (!(ev->mask & IN_IGNORED))
                        inotify_rm_watch(ifd, ev->wd);
                    l->models[i].wd = -1;
                }
            }
        }
    }
}

static void *watch_main(void *arg)
{
    recd_catalog_loader_t *l = arg;
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

    if (ifd < 0)
        recd_log(l->log, RECD_LOG_WARN, "inotify unavailable; polling the registry only", "\"interval_ms\":%u", l->interval_ms);
    for (;;) {
        if (ifd >= 0)
            add_watches(l, ifd);
        struct pollfd fds[2] = {{l->stop_pipe[0], POLLIN, 0}, {ifd, POLLIN, 0}};
        int n = poll(fds, ifd >= 0 ? 2 : 1, (int)l->interval_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (fds[0].revents != 0)
            break;
        if (ifd >= 0 && fds[1].revents != 0)
            read_events(l, ifd);
        poll_once(l);
    }
    if (ifd >= 0)
        close(ifd);
    for (size_t i = 0; i < l->n_models; ++i)
        l->models[i].wd = -1;
    l->root_wd = -1;
    return NULL;
}

int recd_catalog_loader_start(recd_catalog_loader_t *l, uint32_t interval_ms)
{
    if (l->running)
        return 0;
    l->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    if (pipe2(l->stop_pipe, O_CLOEXEC) != 0)
        return RECD_EIO;
    if (pthread_create(&l->tid, NULL, watch_main, l) != 0) {
        close(l->stop_pipe[0]);
        close(l->stop_pipe[1]);
        l->stop_pipe[0] = l->stop_pipe[1] = -1;
        return RECD_EIO;
    }
    l->running = 1;
    return 0;
}

void recd_catalog_loader_stop(recd_catalog_loader_t *l)
{
    if (!l->running)
        return;
    ssize_t wr = write(l->stop_pipe[1], "x", 1);
    (void)wr;
    pthread_join(l->tid, NULL);
    close(l->stop_pipe[0]);
    close(l->stop_pipe[1]);
    l->stop_pipe[0] = l->stop_pipe[1] = -1;
    l->running = 0;
}
