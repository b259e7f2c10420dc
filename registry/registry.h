/* registry.h: the on-disk model registry <dir>/<model>/<version>/{model.recd,manifest.json,evaluation.json} plus the
 * control file <dir>/<model>/control.json (registry/control.h) — staging, atomic publication, version lookup. */
#ifndef RECD_REGISTRY_REGISTRY_H
#define RECD_REGISTRY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The artifact's file name inside a version directory. */
#define RECD_REGISTRY_ARTIFACT "model.recd"
/** The control file's name inside a model directory. */
#define RECD_REGISTRY_CONTROL "control.json"

/** The high-water mark file inside a model directory: the largest version ever published there. */
#define RECD_REGISTRY_HIGH_WATER ".last-version"
/** The largest version a commit publishes: the numbers never wrap (UINT64_MAX stays free as a sentinel). */
#define RECD_REGISTRY_MAX_VERSION (UINT64_MAX - 1)

/** Creates a fresh staging directory <dir>/<model>/.staging-XXXXXX (creating parents) and writes its path into out. */
int recd_registry_stage(const char *dir, const char *model, char *out, size_t outlen);
/**
 * Publishes a staging directory as the next version by fsync + rename, retrying when a concurrent publisher took that
 * number. The next version is above the largest directory present, the high-water mark <model>/.last-version (updated
 * atomically after each commit, so a deleted version's number is never reused) and every version control.json names.
 * *version receives the number. Returns RECD_OK, RECD_EOVERFLOW when the next number would pass
 * RECD_REGISTRY_MAX_VERSION (never a wrap to 0), RECD_EEXIST after too many lost races, RECD_EINVAL, RECD_ENOTFOUND (no
 * staging directory) or RECD_EIO.
 */
int recd_registry_commit(const char *dir, const char *model, const char *staging, uint64_t *version);
/** The largest published version of model, or RECD_ENOTFOUND. */
int recd_registry_latest(const char *dir, const char *model, uint64_t *version);
/**
 * Every published version of model (a version directory holding a regular model.recd), ascending, in a malloc'ed array
 * *versions that the caller frees (NULL when *n is 0). Returns RECD_OK (possibly with *n 0), RECD_ENOTFOUND when the model
 * directory does not exist, RECD_EINVAL or RECD_EIO (errno kept).
 */
int recd_registry_versions(const char *dir, const char *model, uint64_t **versions, size_t *n);
/** Called for a directory entry that is refused as a version, with the reason (for a log line). */
typedef void (*recd_registry_ignored_cb)(void *data, const char *name, const char *why);
/**
 * recd_registry_versions that also reports entries refused as versions to on_ignored (may be NULL): names that look like
 * numbers but are not strict decimals ("016", "+3", " 4"), and version directories that are symbolic links (never listed).
 * A version whose artifact cannot be looked at for a reason other than absence (a permission error) is listed, so opening
 * it reports the real error.
 */
int recd_registry_scan(const char *dir, const char *model, uint64_t **versions, size_t *n, recd_registry_ignored_cb on_ignored,
                       void *data);
/** Parses a version directory name: strict decimal 1..UINT64_MAX, no leading zero, sign or space. Returns 1, or 0. */
int recd_registry_parse_version(const char *name, uint64_t *out);
/** Writes <dir>/<model>/<version>/model.recd into out. */
int recd_registry_artifact_path(const char *dir, const char *model, uint64_t version, char *out, size_t outlen);
/** Valid model names: 1..64 of [A-Za-z0-9_.-], not starting with '.'. */
int recd_registry_valid_name(const char *model);

#ifdef __cplusplus
}
#endif

#endif
