/* registry.c: the on-disk model registry <dir>/<model>/<version>/ — staging, atomic publication, version lookup, control. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/fs.h"
#include "registry/registry.h"

/* How many version numbers a commit tries before giving up when concurrent publishers keep taking them. */
#define COMMIT_ATTEMPTS 64

int recd_registry_valid_name(const char *model)
{
    size_t len = 0;
    if (model == NULL || model[0] == '\0' || model[0] == '.')
        return 0;
    for (const char *p = model; *p != '\0'; ++p, ++len) {
        char c = *p;
        if (len == 64 ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Parses an all-digits directory name into a version; returns 0 for anything else (including overflow and "0"). */
static int parse_version(const char *name, uint64_t *out)
{
    uint64_t v = 0;
    if (*name == '\0')
        return 0;
    for (const char *p = name; *p != '\0'; ++p) {
        if (*p < '0' || *p > '9')
            return 0;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return v != 0;
}

/* Largest version under model_dir; only_published requires a model.recd inside. When list is not NULL, every version found
 * is appended to it (unordered; *list_len entries, the array grown with realloc). Returns 0 (and *found) or -1 (errno). */
static int scan_versions(const char *model_dir, int only_published, uint64_t *max, int *found, uint64_t **list, size_t *list_len)
{
    DIR *d = opendir(model_dir);
    struct dirent *e;
    size_t cap = 0;
    *max = 0;
    *found = 0;
    if (d == NULL)
        return -1;
    while ((errno = 0, e = readdir(d)) != NULL) {
        uint64_t v;
        if (!parse_version(e->d_name, &v))
            continue;
        if (only_published) {
            char path[PATH_MAX];
            struct stat st;
            if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s", model_dir, e->d_name, RECD_REGISTRY_ARTIFACT) >= sizeof(path) ||
                stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
        }
        if (!*found || v > *max)
            *max = v;
        *found = 1;
        if (list != NULL) {
            if (*list_len == cap) {
                cap = cap != 0 ? cap * 2 : 16;
                *list = recd_xreallocarray(*list, cap, sizeof(**list));
            }
            (*list)[(*list_len)++] = v;
        }
    }
    int saved = errno;
    closedir(d);
    errno = saved;
    return saved != 0 ? -1 : 0;
}

int recd_registry_stage(const char *dir, const char *model, char *out, size_t outlen)
{
    char model_dir[PATH_MAX];

    if (dir == NULL || !recd_registry_valid_name(model) || out == NULL)
        return RECD_EINVAL;
    if ((size_t)snprintf(model_dir, sizeof(model_dir), "%s/%s", dir, model) >= sizeof(model_dir) ||
        (size_t)snprintf(out, outlen, "%s/.staging-XXXXXX", model_dir) >= outlen)
        return RECD_EINVAL;
    if (recd_mkdir_parents(out) != 0 || mkdtemp(out) == NULL) /* out's parents: the registry and model dirs */
        return RECD_EIO;
    return RECD_OK;
}

/* fsyncs every regular file directly inside staging, then staging itself. */
static int sync_staging(const char *staging)
{
    DIR *d = opendir(staging);
    struct dirent *e;
    int ret = 0;
    if (d == NULL)
        return -1;
    while ((errno = 0, e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", staging, e->d_name) >= sizeof(path)) {
            errno = ENAMETOOLONG;
            ret = -1;
            break;
        }
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (recd_fsync_path(path, 0) != 0) {
            ret = -1;
            break;
        }
    }
    if (ret == 0 && errno != 0)
        ret = -1;
    int saved = errno;
    closedir(d);
    errno = saved;
    if (ret == 0)
        ret = recd_fsync_path(staging, O_DIRECTORY);
    return ret;
}

/* Renames without replacing an existing target (a plain rename would replace an empty directory). */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* A file system without RENAME_NOREPLACE: rename(2) still refuses a non-empty target. */
    struct stat st;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

int recd_registry_commit(const char *dir, const char *model, const char *staging, uint64_t *version)
{
    char model_dir[PATH_MAX], target[PATH_MAX];
    struct stat st;

    if (dir == NULL || !recd_registry_valid_name(model) || staging == NULL || version == NULL)
        return RECD_EINVAL;
    if ((size_t)snprintf(model_dir, sizeof(model_dir), "%s/%s", dir, model) >= sizeof(model_dir))
        return RECD_EINVAL;
    if (stat(staging, &st) != 0)
        return errno == ENOENT ? RECD_ENOTFOUND : RECD_EIO;
    if (!S_ISDIR(st.st_mode))
        return RECD_EINVAL;
    if (sync_staging(staging) != 0)
        return RECD_EIO;

    uint64_t next = 0;
    for (int attempt = 0; attempt != COMMIT_ATTEMPTS; ++attempt) {
        uint64_t max;
        int found;
        if (scan_versions(model_dir, 0, &max, &found, NULL, NULL) != 0)
            return RECD_EIO;
        /* Never reuse a number this call already lost, even if a rescan races with a slow publisher. */
        if (max + 1 > next)
            next = max + 1;
        if ((size_t)snprintf(target, sizeof(target), "%s/%llu", model_dir, (unsigned long long)next) >= sizeof(target))
            return RECD_EINVAL;
        if (rename_noreplace(staging, target) == 0) {
            if (recd_fsync_path(model_dir, O_DIRECTORY) != 0)
                return RECD_EIO;
            *version = next;
            return RECD_OK;
        }
        if (errno != EEXIST && errno != ENOTEMPTY)
            return RECD_EIO;
        ++next;
    }
    return RECD_EEXIST;
}

int recd_registry_latest(const char *dir, const char *model, uint64_t *version)
{
    char model_dir[PATH_MAX];
    uint64_t max;
    int found;

    if (dir == NULL || !recd_registry_valid_name(model) || version == NULL)
        return RECD_EINVAL;
    if ((size_t)snprintf(model_dir, sizeof(model_dir), "%s/%s", dir, model) >= sizeof(model_dir))
        return RECD_EINVAL;
    if (scan_versions(model_dir, 1, &max, &found, NULL, NULL) != 0)
        return errno == ENOENT || errno == ENOTDIR ? RECD_ENOTFOUND : RECD_EIO;
    if (!found)
        return RECD_ENOTFOUND;
    *version = max;
    return RECD_OK;
}

int recd_registry_artifact_path(const char *dir, const char *model, uint64_t version, char *out, size_t outlen)
{
    if (dir == NULL || !recd_registry_valid_name(model) || out == NULL || version == 0)
        return RECD_EINVAL;
    if ((size_t)snprintf(out, outlen, "%s/%s/%llu/%s", dir, model, (unsigned long long)version, RECD_REGISTRY_ARTIFACT) >= outlen)
        return RECD_EINVAL;
    return RECD_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int recd_registry_versions(const char *dir, const char *model, uint64_t **versions, size_t *n)
{
    char model_dir[PATH_MAX];
    uint64_t max, *list = NULL;
    size_t len = 0;
    int found;

    if (dir == NULL || !recd_registry_valid_name(model) || versions == NULL || n == NULL)
        return RECD_EINVAL;
    *versions = NULL;
    *n = 0;
    if ((size_t)snprintf(model_dir, sizeof(model_dir), "%s/%s", dir, model) >= sizeof(model_dir))
        return RECD_EINVAL;
    if (scan_versions(model_dir, 1, &max, &found, &list, &len) != 0) {
        int saved = errno;
        free(list);
        errno = saved;
        return errno == ENOENT || errno == ENOTDIR ? RECD_ENOTFOUND : RECD_EIO;
    }
    if (len > 1)
        qsort(list, len, sizeof(*list), cmp_u64);
    *versions = list;
    *n = len;
    return RECD_OK;
}
