/* holder.c: the model holder — loads registry versions on a watcher thread and hands them to the workers by message.
 *
 * DESIGN: the holder keeps one reference to the newest good version. A watcher thread checks the registry when inotify
 * reports a change in <registry>/<model>/ (a version published by rename) and in any case every reload_interval_ms (the
 * fallback when inotify is unavailable or the directory was replaced); a newer version is opened (mmap + SHA-256 check) on the
 * watcher thread, never on an event loop, then every subscribed worker receives its own reference through
 * h2o_multithread_send_message and swaps its pointer on its own thread. Requests therefore read their worker's pointer without
 * locks, and an old version is unmapped only when the last worker has released it. A version that fails to open is remembered (with
 * its file's size and mtime) so it is logged once and retried only if the file changes, and serving continues. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/alloc.h"
#include "server/server.h"

struct st_recd_holder_t {
    char *registry;
    char *name;
    const recd_logger_t *log;
    recd_metric_t *loads, *load_failures; /* the watcher and the constructor add to the shared slot */
    pthread_mutex_t mutex;                /* guards current */
    recd_model_t *current;
    uint64_t rejected; /* newest version that failed to open, and its file's identity then */
    struct stat rejected_st;
    H2O_VECTOR(h2o_multithread_receiver_t *) receivers;
    /* watcher */
    pthread_t tid;
    int running;
    uint32_t interval_ms;
    int stop_pipe[2]; /* written by recd_holder_stop */
};

static recd_model_t *open_version(recd_holder_t *h, uint64_t version, char *err, size_t errlen)
{
    char path[4096], openerr[512];
    recd_model_t *m;
    int ret;

    if ((ret = recd_registry_artifact_path(h->registry, h->name, version, path, sizeof(path))) != 0) {
        snprintf(err, errlen, "%s", recd_strerror(ret));
        return NULL;
    }
    if ((m = recd_model_open(path, openerr, sizeof(openerr))) == NULL) {
        snprintf(err, errlen, "%s: %s", path, openerr);
        return NULL;
    }
    recd_model_set_identity(m, h->name, version);
    return m;
}

recd_holder_t *recd_holder_create(const char *registry, const char *model, const recd_logger_t *log, recd_metrics_t *metrics,
                                  char *err, size_t errlen)
{
    recd_holder_t *h;
    uint64_t version;
    int ret;

    if ((ret = recd_registry_latest(registry, model, &version)) != 0) {
        snprintf(err, errlen, "no version of model \"%s\" in registry %s (%s)", model, registry, recd_strerror(ret));
        return NULL;
    }
    h = recd_xcalloc(1, sizeof(*h));
    h->registry = recd_xstrdup(registry);
    h->name = recd_xstrdup(model);
    h->log = log;
    h->loads = recd_metrics_counter(metrics, "recd_model_loads_total", "Model versions loaded from the registry.", NULL);
    h->load_failures =
        recd_metrics_counter(metrics, "recd_model_load_failures_total", "Model versions rejected when loading.", NULL);
    pthread_mutex_init(&h->mutex, NULL);
    h->stop_pipe[0] = h->stop_pipe[1] = -1;
    if ((h->current = open_version(h, version, err, errlen)) == NULL) {
        recd_metric_add(h->load_failures, RECD_METRICS_SHARED, 1);
        recd_holder_free(h);
        return NULL;
    }
    recd_metric_add(h->loads, RECD_METRICS_SHARED, 1);
    return h;
}

void recd_holder_free(recd_holder_t *h)
{
    if (h == NULL)
        return;
    recd_holder_stop(h);
    recd_model_release(h->current);
    free(h->receivers.entries);
    pthread_mutex_destroy(&h->mutex);
    free(h->registry);
    free(h->name);
    free(h);
}

recd_model_t *recd_holder_acquire(recd_holder_t *h)
{
    recd_model_t *m;
    pthread_mutex_lock(&h->mutex);
    m = h->current;
    recd_model_retain(m);
    pthread_mutex_unlock(&h->mutex);
    return m;
}

void recd_holder_subscribe(recd_holder_t *h, h2o_multithread_receiver_t *receiver)
{
    pthread_mutex_lock(&h->mutex);
    h2o_vector_reserve(NULL, &h->receivers, h->receivers.size + 1);
    h->receivers.entries[h->receivers.size++] = receiver;
    pthread_mutex_unlock(&h->mutex);
}

int recd_holder_poll(recd_holder_t *h)
{
    char err[1024];
    uint64_t latest, current;
    recd_model_t *m;
    int ret;

    if ((ret = recd_registry_latest(h->registry, h->name, &latest)) != 0)
        return 0; /* the registry may be briefly unreadable; keep serving */
    pthread_mutex_lock(&h->mutex);
    current = recd_model_version(h->current);
    pthread_mutex_unlock(&h->mutex);
    if (latest <= current)
        return 0;
    if (latest == h->rejected) {
        /* retry a rejected version only when its file changed (e.g. it was still being copied by hand) */
        char path[4096];
        struct stat st;
        if (recd_registry_artifact_path(h->registry, h->name, latest, path, sizeof(path)) != 0 || stat(path, &st) != 0 ||
            (st.st_size == h->rejected_st.st_size && st.st_mtim.tv_sec == h->rejected_st.st_mtim.tv_sec &&
             st.st_mtim.tv_nsec == h->rejected_st.st_mtim.tv_nsec && st.st_ino == h->rejected_st.st_ino))
            return 0;
    }

    if ((m = open_version(h, latest, err, sizeof(err))) == NULL) {
        char qerr[1100], qname[200];
        char path[4096];
        h->rejected = latest;
        memset(&h->rejected_st, 0, sizeof(h->rejected_st));
        if (recd_registry_artifact_path(h->registry, h->name, latest, path, sizeof(path)) == 0)
            stat(path, &h->rejected_st);
        recd_metric_add(h->load_failures, RECD_METRICS_SHARED, 1);
        recd_log(h->log, RECD_LOG_ERROR, "model version rejected", "\"model\":%s,\"version\":%llu,\"serving\":%llu,\"error\":%s",
                 recd_json_quote(qname, sizeof(qname), h->name, strlen(h->name)), (unsigned long long)latest,
                 (unsigned long long)current, recd_json_quote(qerr, sizeof(qerr), err, strlen(err)));
        return RECD_EFORMAT;
    }
    recd_metric_add(h->loads, RECD_METRICS_SHARED, 1);

    pthread_mutex_lock(&h->mutex);
    recd_model_t *old = h->current;
    h->current = m;
    for (size_t i = 0; i < h->receivers.size; ++i) {
        recd_model_message_t *msg = recd_xcalloc(1, sizeof(*msg));
        recd_model_retain(m);
        msg->model = m;
        h2o_multithread_send_message(h->receivers.entries[i], &msg->super);
    }
    pthread_mutex_unlock(&h->mutex);
    recd_model_release(old);

    {
        char qname[200];
        recd_log(h->log, RECD_LOG_INFO, "model loaded",
                 "\"model\":%s,\"version\":%llu,\"previous\":%llu,\"kind\":\"%s\",\"users\":%zu,\"items\":%zu,\"factors\":%u",
                 recd_json_quote(qname, sizeof(qname), h->name, strlen(h->name)), (unsigned long long)latest,
                 (unsigned long long)current, recd_model_kind_name(recd_model_kind(m)), recd_model_n_users(m),
                 recd_model_n_items(m), recd_model_n_factors(m));
    }
    return 1;
}

/* Watches <registry>/<model>/ for versions published by rename (or created in place); -1 when inotify is unavailable. */
static int open_inotify(recd_holder_t *h)
{
    char dir[4096];
    int fd;
    if ((fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
        return -1;
    snprintf(dir, sizeof(dir), "%s/%s", h->registry, h->name);
    if (inotify_add_watch(fd, dir, IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *watch_main(void *arg)
{
    recd_holder_t *h = arg;
    int ifd = open_inotify(h);

    if (ifd < 0)
        recd_log(h->log, RECD_LOG_WARN, "inotify unavailable; polling the registry only", "\"interval_ms\":%u", h->interval_ms);
    for (;;) {
        struct pollfd fds[2] = {{h->stop_pipe[0], POLLIN, 0}, {ifd, POLLIN, 0}};
        int n = poll(fds, ifd >= 0 ? 2 : 1, (int)h->interval_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (fds[0].revents != 0)
            break;
        if (ifd >= 0 && fds[1].revents != 0) {
            char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            int gone = 0;
            ssize_t len;
            while ((len = read(ifd, buf, sizeof(buf))) > 0) {
                for (char *p = buf; p < buf + len; p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len)
                    if (((struct inotify_event *)p)->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
                        gone = 1;
            }
            if (gone) { /* the model directory was replaced: watch the new one (or fall back to polling) */
                close(ifd);
                ifd = open_inotify(h);
            }
        }
        recd_holder_poll(h);
    }
    if (ifd >= 0)
        close(ifd);
    return NULL;
}

int recd_holder_start(recd_holder_t *h, uint32_t interval_ms)
{
    if (h->running)
        return 0;
    h->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    if (pipe2(h->stop_pipe, O_CLOEXEC) != 0)
        return RECD_EIO;
    if (pthread_create(&h->tid, NULL, watch_main, h) != 0) {
        close(h->stop_pipe[0]);
        close(h->stop_pipe[1]);
        h->stop_pipe[0] = h->stop_pipe[1] = -1;
        return RECD_EIO;
    }
    h->running = 1;
    return 0;
}

void recd_holder_stop(recd_holder_t *h)
{
    if (!h->running)
        return;
    ssize_t wr = write(h->stop_pipe[1], "x", 1);
    (void)wr;
    pthread_join(h->tid, NULL);
    close(h->stop_pipe[0]);
    close(h->stop_pipe[1]);
    h->stop_pipe[0] = h->stop_pipe[1] = -1;
    h->running = 0;
}
