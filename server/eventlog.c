/* eventlog.c: the embedded event sink — an O_APPEND JSON-lines file written with one write(2) per batch. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/fs.h"
#include "server/server.h"

struct st_recd_eventlog_t {
    int fd;
    int fsync;
};

recd_eventlog_t *recd_eventlog_open(const char *path, int fsync, char *err, size_t errlen)
{
    recd_eventlog_t *el;
    int fd;

    if (recd_mkdir_parents(path) != 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(errno));
        return NULL;
    }
    if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    el = recd_xmalloc(sizeof(*el));
    el->fd = fd;
    el->fsync = fsync;
    return el;
}

void recd_eventlog_close(recd_eventlog_t *el)
{
    if (el == NULL)
        return;
    close(el->fd);
    free(el);
}

int recd_eventlog_append(recd_eventlog_t *el, const char *buf, size_t len)
{
    ssize_t n;
    while ((n = write(el->fd, buf, len)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return RECD_EIO;
    if ((size_t)n != len) {
        /* a short write on a regular file means the disk is full; finish the lines so the log stays parseable */
        size_t off = (size_t)n;
        while (off < len) {
            if ((n = write(el->fd, buf + off, len - off)) < 0) {
                if (errno == EINTR)
                    continue;
                return RECD_EIO;
            }
            off += (size_t)n;
        }
    }
    if (el->fsync && fdatasync(el->fd) != 0)
        return RECD_EIO;
    return 0;
}
