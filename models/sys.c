/* sys.c: small system helpers shared by every module — allocation that aborts on out of memory, directories, fsync. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "models/sys.h"

__attribute__((noreturn, cold)) static void out_of_memory(size_t n, size_t size)
{
    if (n == 1)
        fprintf(stderr, "recd: out of memory (%zu bytes)\n", size);
    else
        fprintf(stderr, "recd: out of memory (%zu x %zu bytes)\n", n, size);
    abort();
}

void *recd_xmalloc(size_t size)
{
    void *p = malloc(size != 0 ? size : 1);
    if (p == NULL)
        out_of_memory(1, size);
    return p;
}

void *recd_xcalloc(size_t n, size_t size)
{
    size_t total;
    void *p;
    if (__builtin_mul_overflow(n, size, &total) || (p = calloc(1, total != 0 ? total : 1)) == NULL)
        out_of_memory(n, size);
    return p;
}

void *recd_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size != 0 ? size : 1);
    if (q == NULL)
        out_of_memory(1, size);
    return q;
}

void *recd_xreallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    void *q;
    if (__builtin_mul_overflow(n, size, &total) || (q = realloc(p, total != 0 ? total : 1)) == NULL)
        out_of_memory(n, size);
    return q;
}

void *recd_xaligned_alloc(size_t align, size_t size)
{
    size_t rounded;
    void *p;
    if (size == 0)
        size = 1;
    if (__builtin_add_overflow(size, align - 1, &rounded) || (p = aligned_alloc(align, rounded & ~(align - 1))) == NULL)
        out_of_memory(1, size);
    return p;
}

char *recd_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        out_of_memory(1, strlen(s) + 1);
    return p;
}

char *recd_xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        out_of_memory(1, strnlen(s, n) + 1);
    return p;
}

/* Makes one directory unless it exists; an existing non-directory is ENOTDIR. */
static int make_dir(const char *dir)
{
    struct stat st;
    if (mkdir(dir, 0755) == 0)
        return 0;
    if (errno != EEXIST || stat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int recd_mkdir_parents(const char *path)
{
    char *buf = recd_xstrdup(path);
    int ret = 0, saved = 0;

    /* each '/' after the first character ends a parent; a run of slashes ends it once */
    for (char *p = buf; *p != '\0' && ret == 0; ++p) {
        if (*p != '/' || p == buf || p[-1] == '/')
            continue;
        *p = '\0';
        if ((ret = make_dir(buf)) != 0)
            saved = errno;
        *p = '/';
    }
    free(buf);
    if (ret != 0)
        errno = saved;
    return ret;
}

int recd_fsync_path(const char *path, int open_flags)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | open_flags);
    if (fd < 0)
        return -1;
    int ret = fsync(fd), saved = errno;
    close(fd);
    errno = saved;
    return ret;
}

double recd_monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
