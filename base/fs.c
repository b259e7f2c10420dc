/* fs.c: parent directories and fsync of a path. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/fs.h"

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
