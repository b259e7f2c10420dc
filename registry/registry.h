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

/** Creates a fresh staging directory <dir>/<model>/.staging-XXXXXX (creating parents) and writes its path into out. */
int recd_registry_stage(const char *dir, const char *model, char *out, size_t outlen);
/**
 * Publishes a staging directory as the next version (largest existing + 1) by fsync + rename, retrying when a concurrent
 * publisher took that number. *version receives the number.
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
/** Writes <dir>/<model>/<version>/model.recd into out. */
int recd_registry_artifact_path(const char *dir, const char *model, uint64_t version, char *out, size_t outlen);
/** Valid model names: 1..64 of [A-Za-z0-9_.-], not starting with '.'. */
int recd_registry_valid_name(const char *model);

#ifdef __cplusplus
}
#endif

#endif
