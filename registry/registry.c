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
#include "registry/control.h"
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

int recd_registry_parse_version(const char *name, uint64_t *out)
{
    uint64_t v = 0;
    /* strict decimal: no sign, no spaces, no leading zero ("016" is a stray, not version 16), no 0 */
    if (name[0] < '1' || name[0] > '9')
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
    return 1;
}

/* Whether a directory entry name looks like something meant as a version (digits, maybe with a sign, spaces or leading
 * zeros), so a near miss is reported instead of silently skipped. */
static int looks_like_version(const char *name)
{
    int digits = 0;
    for (const char *p = name; *p != '\0'; ++p) {
        if (*p >= '0' && *p <= '9')
            digits = 1;
        else if (*p != '+' && *p != '-' && *p != ' ')
            return 0;
    }
    return digits;
}

/*
 * Versions under model_dir; only_published requires a regular model.recd inside (or one that cannot be looked at for a
 * reason other than absence, such as a permission error: opening it will say what is wrong). When list is not NULL, every
 * version found is appended to it (unordered; *list_len entries, the array grown with realloc). on_ignored (may be NULL)
 * hears of every entry that is refused as a version. Returns 0 (with *max the largest, *found) or -1 (errno).
 */
static int scan_versions(const char *model_dir, int only_published, uint64_t *max, int *found, uint64_t **list, size_t *list_len,
                         recd_registry_ignored_cb on_ignored, void *data)
{
    DIR *d = opendir(model_dir);
    struct dirent *e;
    size_t cap = 0;
    *max = 0;
    *found = 0;
    if (d == NULL)
        return -1;
    while ((errno = 0, e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        uint64_t v;
        if (!recd_registry_parse_version(e->d_name, &v)) {
            if (on_ignored != NULL && looks_like_version(e->d_name))
                on_ignored(data, e->d_name, "not a version number (strict decimal, no leading zero, sign or space)");
            continue;
        }
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", model_dir, e->d_name) >= sizeof(path))
            continue;
        if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
            /* a symlink could make another model's version serve under this name */
            if (on_ignored != NULL)
                on_ignored(data, e->d_name, "a symbolic link, refused as a version directory");
            continue;
        }
        if (only_published) {
            if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s", model_dir, e->d_name, RECD_REGISTRY_ARTIFACT) >= sizeof(path))
                continue;
            if (stat(path, &st) != 0 ? errno == ENOENT || errno == ENOTDIR : !S_ISREG(st.st_mode))
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

/* Reads <model_dir>/.last-version (a decimal number and a newline); a missing or unreadable mark leaves *out alone. */
static void read_high_water(const char *model_dir, uint64_t *out)
{
    char path[PATH_MAX + 16], buf[32];
    snprintf(path, sizeof(path), "%s/%s", model_dir, RECD_REGISTRY_HIGH_WATER);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    recd_registry_parse_version(buf, out);
}

/* Raises the high-water mark to v (never lowers it: a slower concurrent publisher may write a smaller number later, so
 * the mark is re-read), atomically by rename. */
static int write_high_water(const char *model_dir, uint64_t v)
{
    char path[PATH_MAX + 16], tmp[PATH_MAX + 32], buf[32];
    uint64_t cur = 0;
    read_high_water(model_dir, &cur);
    if (cur >= v)
        return 0;
    snprintf(path, sizeof(path), "%s/%s", model_dir, RECD_REGISTRY_HIGH_WATER);
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return -1;
    int len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)v);
    int failed = write(fd, buf, (size_t)len) != len || fchmod(fd, 0644) != 0 || fsync(fd) != 0;
    failed |= close(fd) != 0;
    if (failed || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return recd_fsync_path(model_dir, O_DIRECTORY);
}

/* The largest version control.json names (active, history, pins, arms), or 0. */
static uint64_t control_max_version(const char *dir, const char *model)
{
    recd_control_t c;
    uint64_t max = 0;
    if (recd_control_read(dir, model, &c, NULL, 0) == RECD_OK) {
        max = c.active;
        for (size_t i = 0; i < c.n_history; ++i)
            max = c.history[i] > max ? c.history[i] : max;
        for (size_t i = 0; i < c.n_pins; ++i)
            max = c.pins[i] > max ? c.pins[i] : max;
        for (size_t x = 0; x < c.n_experiments; ++x)
            for (size_t a = 0; a < c.experiments[x].n_arms; ++a)
                max = c.experiments[x].arms[a].version > max ? c.experiments[x].arms[a].version : max;
    }
    recd_control_dispose(&c);
    return max;
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

    /* The next number is above every version ever published here: the directories present, the high-water mark (which
     * remembers deleted ones) and every version control.json names, so a number is never reused. */
    uint64_t next = 0, mark = 0;
    read_high_water(model_dir, &mark);
    uint64_t named = control_max_version(dir, model);
    for (int attempt = 0; attempt != COMMIT_ATTEMPTS; ++attempt) {
        uint64_t max;
        int found;
        if (scan_versions(model_dir, 0, &max, &found, NULL, NULL, NULL, NULL) != 0)
            return RECD_EIO;
        if (mark > max)
            max = mark;
        if (named > max)
            max = named;
        if (max >= RECD_REGISTRY_MAX_VERSION)
            return RECD_EOVERFLOW;
        /* Never reuse a number this call already lost, even if a rescan races with a slow publisher. */
        if (max + 1 > next)
            next = max + 1;
        if ((size_t)snprintf(target, sizeof(target), "%s/%llu", model_dir, (unsigned long long)next) >= sizeof(target))
            return RECD_EINVAL;
        if (rename_noreplace(staging, target) == 0) {
            if (recd_fsync_path(model_dir, O_DIRECTORY) != 0 || write_high_water(model_dir, next) != 0)
                return RECD_EIO;
            *version = next;
            return RECD_OK;
        }
        if (errno != EEXIST && errno != ENOTEMPTY)
            return RECD_EIO;
        if (next == RECD_REGISTRY_MAX_VERSION)
            return RECD_EOVERFLOW;
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
    if (scan_versions(model_dir, 1, &max, &found, NULL, NULL, NULL, NULL) != 0)
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

int recd_registry_scan(const char *dir, const char *model, uint64_t **versions, size_t *n, recd_registry_ignored_cb on_ignored,
                       void *data)
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
    if (scan_versions(model_dir, 1, &max, &found, &list, &len, on_ignored, data) != 0) {
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

int recd_registry_versions(const char *dir, const char *model, uint64_t **versions, size_t *n)
{
    return recd_registry_scan(dir, model, versions, n, NULL, NULL);
}
