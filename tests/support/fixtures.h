/* fixtures.h: shared test fixtures: temp directories, the built binaries, a generated model artifact and registry. */
#ifndef RECD_TESTS_SUPPORT_FIXTURES_H
#define RECD_TESTS_SUPPORT_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

/** Creates a fresh directory /tmp/<prefix>-XXXXXX and writes its path to out. Returns 0 or -1. */
int support_tmpdir_create(char *out, size_t outlen, const char *prefix);

/** Removes dir and everything under it (not following symlinks) unless RECD_KEEP_TMP is set. Returns 0 or -1. */
int support_remove_tree(const char *dir);

/**
 * Mounts a tmpfs of size bytes ("64k", "1m": tmpfs counts whole pages) on dir, creating dir when missing: a disk that
 * can really fill up. Returns 0, or -1 with errno set (EPERM without the privilege to mount: callers skip).
 */
int support_tmpfs_mount(const char *dir, const char *size);
/** Changes the size of the tmpfs mounted on dir (not below what it holds). Returns 0 or -1 with errno set. */
int support_tmpfs_resize(const char *dir, const char *size);
/** Detaches the tmpfs mounted on dir; -1 (harmless) when nothing is mounted there. */
int support_tmpfs_unmount(const char *dir);

/** Writes the path of the built executable name (in $RECD_BINARY_DIR, else the working directory) to out. */
void support_binary_path(const char *name, char *out, size_t outlen);

/* The generated model: SUPPORT_FIXTURE_N_GROUPS taste groups of items and users. */
#define SUPPORT_FIXTURE_N_GROUPS 4
#define SUPPORT_FIXTURE_ITEMS_PER_GROUP 10
#define SUPPORT_FIXTURE_USERS_PER_GROUP 8

/**
 * Writes a real ALS-shaped artifact with planted structure to path (via path.tmp and rename, like recd_model_write):
 * SUPPORT_FIXTURE_N_GROUPS taste groups; items "i<g><n>" load on factor g; users "u<g><n>" on their group's factor and
 * interacted with the first three items of it. variant shifts the item factors (so a new version ranks differently).
 * corrupt flips one byte of the artifact after writing (the checksum then fails). Returns 0 or -1.
 */
int support_fixture_write_artifact(const char *path, int variant, int corrupt);

/** Writes that artifact and publishes it as the next version of model in registry. Returns the version or 0. */
uint64_t support_fixture_publish(const char *registry, const char *model, int variant, int corrupt);

#endif
