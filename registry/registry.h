/* registry.h: the on-disk model registry <dir>/<model>/<version>/{model.recd,manifest.json,evaluation.json} plus the
 * control file <dir>/<model>/control.json — staging, atomic publication, version lookup, control state. */
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

/** What control.json says about a model. Unknown members are ignored, so later fields (pins, experiments) can be added. */
typedef struct st_recd_registry_control_t {
    uint64_t active;     /* the version to serve; 0 when the file names none (serve the newest that loads) */
    uint64_t generation; /* bumped by whoever writes the file; 0 when absent */
} recd_registry_control_t;

/**
 * Reads <dir>/<model>/control.json: a JSON object with optional positive integers "active" and "generation". Returns
 * RECD_OK, RECD_ENOTFOUND when there is no control file, RECD_EFORMAT with a message in err when it is not such an
 * object, RECD_EINVAL or RECD_EIO.
 */
int recd_registry_read_control(const char *dir, const char *model, recd_registry_control_t *out, char *err, size_t errlen);
/**
 * Replaces <dir>/<model>/control.json atomically (temp file, fsync, rename, fsync of the directory) with control's fields
 * (a zero field is left out). Returns RECD_OK, RECD_EINVAL or RECD_EIO.
 */
int recd_registry_write_control(const char *dir, const char *model, const recd_registry_control_t *control);

#ifdef __cplusplus
}
#endif

#endif
