/* catalog.h: the catalog of loaded model versions — immutable refcounted snapshots, and the loader that watches the registry
 * and publishes them. */
#ifndef RECD_REGISTRY_CATALOG_H
#define RECD_REGISTRY_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include "base/log.h"
#include "base/metrics.h"
#include "models/model.h"
#include "registry/control.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- snapshots ------------------------------------------------------------------------------------------------------ */

/**
 * An immutable snapshot of every loaded model version, per model name. It holds one reference to each version in it, so a
 * version stays mapped while any snapshot holding it lives. Refcounted with atomics: any thread may retain and release.
 */
typedef struct st_recd_catalog_t recd_catalog_t;

/**
 * Roles of a version in its model (bits). ACTIVE: serves the model's traffic outside experiments; PINNED: named by the
 * control file's "pins"; ARM: named by an arm of an enabled, running experiment; STANDBY: no role but kept loaded (the
 * rollback target, the top of "history"); FAILED: a published version that did not pass its checks (alone, or with the
 * role it was wanted for), or one that was wanted and did not fit the memory budget (its model is NULL).
 */
enum { RECD_CATALOG_ACTIVE = 1, RECD_CATALOG_PINNED = 2, RECD_CATALOG_ARM = 4, RECD_CATALOG_STANDBY = 8, RECD_CATALOG_FAILED = 16 };

/** One version of a model in a snapshot. */
typedef struct st_recd_catalog_version_t {
    uint64_t version;
    recd_model_t *model; /* borrowed from the snapshot; NULL when roles has RECD_CATALOG_FAILED */
    unsigned roles;      /* RECD_CATALOG_* bits */
    const char *reason;  /* with RECD_CATALOG_FAILED: why ("artifact: ...", "warmup: ...", "budget: ..."); else NULL */
} recd_catalog_version_t;

/**
 * A snapshot serving exactly one version (model's name, as its active and only version), for programs that serve an
 * artifact without a registry: offline evaluation ("as recd serves it") and tests. Takes over the caller's reference on
 * model. Its generation is 0. Aborts on out of memory.
 */
recd_catalog_t *recd_catalog_of_model(recd_model_t *model);
/** Takes one more reference. */
void recd_catalog_retain(recd_catalog_t *c);
/** Drops a reference; the last one drops the snapshot's model references and frees it. Accepts NULL. */
void recd_catalog_release(recd_catalog_t *c);
/**
 * The version that serves model name (len bytes; name NULL = the default model): the active one, or NULL when the model is
 * unknown or has no loaded version. Borrowed from the snapshot: a request that keeps it past the snapshot's lifetime takes
 * its own reference (recd_model_retain).
 */
recd_model_t *recd_catalog_active(const recd_catalog_t *c, const char *name, size_t len);
/** A loaded version of model name (NULL = the default), whatever its role, or NULL when not loaded. Borrowed like above. */
recd_model_t *recd_catalog_version(const recd_catalog_t *c, const char *name, size_t len, uint64_t version);
/** The default model's name (the first one the loader was given). */
const char *recd_catalog_default_name(const recd_catalog_t *c);
/** The snapshot's sequence number: every snapshot a loader publishes has a larger one than the one before. */
uint64_t recd_catalog_generation(const recd_catalog_t *c);
/** Number of model names in the snapshot (each configured name, loaded or not). */
size_t recd_catalog_n_models(const recd_catalog_t *c);
/** The name of model i (0 <= i < recd_catalog_n_models; 0 is the default). */
const char *recd_catalog_model_name(const recd_catalog_t *c, size_t i);
/** The index of model name (len bytes) in the snapshot (0 is the default), or -1 when the snapshot has no such model. */
int recd_catalog_model_index(const recd_catalog_t *c, const char *name, size_t len);
/**
 * The versions of model name (NULL = the default) in the snapshot, ascending, *n of them (0 and NULL for an unknown
 * model): the loaded ones with their roles, and the failed ones (RECD_CATALOG_FAILED, model NULL, with a reason). The
 * array belongs to the snapshot.
 */
const recd_catalog_version_t *recd_catalog_versions(const recd_catalog_t *c, const char *name, size_t len, size_t *n);
/**
 * The experiments of model name's control file as the snapshot was built from it (*n of them, each with its arms, slot
 * table, guardrails and status; 0 and NULL for an unknown model or none). Every arm's version of an enabled, running
 * experiment is in recd_catalog_versions (loaded, or failed). The array belongs to the snapshot.
 */
const recd_control_experiment_t *recd_catalog_experiments(const recd_catalog_t *c, const char *name, size_t len, size_t *n);
/** The state of a version by its roles: "active", "pinned", "arm", "standby" or "failed" (the first role that applies). */
const char *recd_catalog_state_name(unsigned roles);
/** The "generation" of the control file the model's versions were chosen by, or 0 (no control file, or none given). */
uint64_t recd_catalog_control_generation(const recd_catalog_t *c, const char *name, size_t len);
/** The largest item count of any loaded version in the snapshot, so per-thread scratch buffers can be sized once per snapshot. */
size_t recd_catalog_max_items(const recd_catalog_t *c);

/* ---- loader and watcher --------------------------------------------------------------------------------------------- */

/**
 * Called with every new snapshot, on the loader's thread; the subscriber takes over one reference to snapshot. It must not
 * block: a worker posts the snapshot to its own event loop (h2o_multithread_send_message) and returns.
 */
typedef void (*recd_catalog_cb)(void *data, recd_catalog_t *snapshot);

typedef struct st_recd_catalog_loader_t recd_catalog_loader_t;

/**
 * Loads models (n_models names, the first the default) from the registry directory and returns a loader holding the first
 * snapshot. The name "*" stands for every model directory in the registry (a real directory with a valid name), found
 * again at every poll: a model published later is served from then on, after the ones named, new ones in byte order
 * (a model keeps its index in later snapshots). With "*" alone the default is the first name in byte order at start-up. A model's
 * version is the one its control file (<registry>/<model>/control.json, {"active": N}) names, else the newest one that opens; a
 * version that fails its checks is rejected (logged and counted), and the next older one is tried. Runs on the calling thread: call
 * it at start-up, before any event loop runs. Returns NULL with a message in err when a name is invalid or the default model has no
 * version that opens.
 *
 * Registers recd_model_loads_total, recd_model_load_failures_total and recd_model_version{model="..."} in metrics; log and
 * metrics are borrowed and must outlive the loader.
 */
recd_catalog_loader_t *recd_catalog_loader_create(const char *registry, const char *const *models, size_t n_models,
                                                  size_t max_loaded_bytes, const recd_logger_t *log, recd_metrics_t *metrics,
                                                  char *err, size_t errlen);
/** Stops the watcher if running, releases the loader's snapshot and frees; accepts NULL. */
void recd_catalog_loader_free(recd_catalog_loader_t *l);
/** The newest snapshot with one reference for the caller. Thread-safe. */
recd_catalog_t *recd_catalog_loader_current(recd_catalog_loader_t *l);
/** Adds a subscriber that receives every snapshot published later. Call before recd_catalog_loader_start. */
void recd_catalog_loader_subscribe(recd_catalog_loader_t *l, recd_catalog_cb cb, void *data);
/**
 * Checks the registry once on the calling thread: re-reads each model's control file and versions, opens the version that
 * should serve when it is not loaded yet (mmap + SHA-256 check), and publishes a new snapshot to the subscribers when
 * anything changed. Without an "active" in the control file a newer version that opens replaces the serving one; nothing
 * goes back to an older version but the control file (a deleted version directory keeps serving from its mapping). A
 * control file naming a version that cannot serve is logged and the serving version stays. A rejected version is not
 * opened again until its file changes (device, inode, size, mtime). Returns 1 when a snapshot was published, 0 when
 * nothing changed, RECD_EBUSY while the watcher thread runs (it alone polls then).
 */
int recd_catalog_loader_poll(recd_catalog_loader_t *l);
/**
 * Starts the watcher thread: it polls when inotify reports a change in a model's directory (a version published by rename,
 * control.json replaced) and at least every interval_ms (the fallback when inotify is unavailable). Returns 0 or RECD_EIO.
 */
int recd_catalog_loader_start(recd_catalog_loader_t *l, uint32_t interval_ms);
/** Stops and joins the watcher thread (no subscriber is called after it returns); a no-op when not running. */
void recd_catalog_loader_stop(recd_catalog_loader_t *l);

#ifdef __cplusplus
}
#endif

#endif
