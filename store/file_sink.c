/*
 * file_sink.c: the embedded event sink, a JSON-lines file appended by one writer thread.
 *
 * DESIGN
 * Appenders (the workers' event loops) copy their batch into a queue and return at once: they never touch the file.
 * One writer thread, as in redis's bio.c (a job list under a mutex, a condition variable to wake the thread), takes
 * everything queued in one go (a round), writes those batches in order and, when fsync is on, issues one fdatasync for
 * the whole round (group commit) before calling any of them back; callbacks run on this thread, after the lock is
 * dropped. Only this thread writes, so lines of two batches never interleave. A batch is written whole or not at all:
 * when write(2) fails part-way (disk full, EFBIG), the file is truncated back to its length before that batch, so an
 * error answer leaves no bytes behind and the next batch starts on a line boundary. The queue is bounded in bytes; a
 * full queue answers RECD_EBUSY at once, so the caller sheds load instead of blocking its loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/error.h"
#include "base/fs.h"
#include "store/file_sink.h"

/* One appended batch, owned by the queue from append until its callback returns. */
typedef struct st_batch_t {
    struct st_batch_t *next;
    recd_event_sink_cb cb;
    void *data;
    int err;
    size_t len;
    char buf[];
} batch_t;

typedef struct st_file_sink_t {
    recd_event_sink_t super;
    int fd;
    int fsync;
    size_t max_queue_bytes;
    pthread_t writer;
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    batch_t *head, **tail;
    size_t queued_bytes;
    int stopping;
    /* the writer thread's own */
    off_t length;  /* the file's length at the end of the last stored batch: always a line boundary */
    int must_trim; /* a failed write may have left bytes past length that truncation has not removed yet */
    /* read by recd_file_sink_stats from any thread */
    _Atomic uint64_t batches_written, batches_failed, rounds, fsyncs;
    /* the same in a metrics registry, when one was given (set under lock before the first append) */
    recd_metric_t *m_written, *m_failed, *m_fsyncs, *m_queue_bytes;
} file_sink_t;

/* Publishes queued_bytes; called with lock held so the gauge never goes back to an older value. */
static void set_queue_gauge(file_sink_t *fs)
{
    if (fs->m_queue_bytes != NULL)
        recd_metric_set(fs->m_queue_bytes, (double)fs->queued_bytes);
}

static void count(_Atomic uint64_t *counter, recd_metric_t *metric)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    if (metric != NULL)
        recd_metric_add(metric, RECD_METRICS_SHARED, 1);
}

/* Cuts the file back to the last stored batch; every write waits for this to succeed so no torn line stays behind. */
static int trim(file_sink_t *fs)
{
    if (fs->must_trim && ftruncate(fs->fd, fs->length) == 0)
        fs->must_trim = 0;
    return fs->must_trim ? RECD_EIO : 0;
}

static int write_whole(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* a short write was the last that fitted; this one says why (ENOSPC, EFBIG, EIO) */
            return RECD_EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes a round's batches in order, then one fdatasync for all of them; sets each batch's answer. */
static void write_round(file_sink_t *fs, batch_t *round)
{
    off_t round_start = fs->length;
    int wrote = 0;

    for (batch_t *b = round; b != NULL; b = b->next) {
        if ((b->err = trim(fs)) == 0 && (b->err = write_whole(fs->fd, b->buf, b->len)) != 0)
            fs->must_trim = 1;
        if (b->err == 0) {
            fs->length += (off_t)b->len;
            wrote = 1;
        }
        (void)trim(fs);
    }
    if (fs->fsync && wrote) {
        count(&fs->fsyncs, fs->m_fsyncs);
        if (fdatasync(fs->fd) != 0) {
            /* nothing of this round is known to be durable: answer all of it with an error and take its bytes back out */
            for (batch_t *b = round; b != NULL; b = b->next)
                b->err = RECD_EIO;
            fs->length = round_start;
            fs->must_trim = 1;
            (void)trim(fs);
        }
    }
}

static void *run_writer(void *arg)
{
    file_sink_t *fs = arg;

    pthread_mutex_lock(&fs->lock);
    for (;;) {
        while (fs->head == NULL && !fs->stopping)
            pthread_cond_wait(&fs->wake, &fs->lock);
        if (fs->head == NULL)
            break; /* stopping, and everything queued has been answered */
        batch_t *round = fs->head;
        size_t round_bytes = fs->queued_bytes;
        fs->head = NULL;
        fs->tail = &fs->head;
        pthread_mutex_unlock(&fs->lock);

        write_round(fs, round);
        atomic_fetch_add_explicit(&fs->rounds, 1, memory_order_relaxed);
        pthread_mutex_lock(&fs->lock);
        fs->queued_bytes -= round_bytes;
        set_queue_gauge(fs);
        pthread_mutex_unlock(&fs->lock);
        while (round != NULL) {
            batch_t *b = round;
            round = b->next;
            if (b->err == 0)
                count(&fs->batches_written, fs->m_written);
            else
                count(&fs->batches_failed, fs->m_failed);
            b->cb(b->data, b->err);
            free(b);
        }
        pthread_mutex_lock(&fs->lock);
    }
    pthread_mutex_unlock(&fs->lock);
    return NULL;
}

static int file_sink_append(recd_event_sink_t *s, const char *buf, size_t len, recd_event_sink_cb cb, void *data)
{
    file_sink_t *fs = (file_sink_t *)s;
    batch_t *b;

    if (len > fs->max_queue_bytes)
        return RECD_EBUSY;
    b = recd_xmalloc(offsetof(batch_t, buf) + len);
    b->next = NULL;
    b->cb = cb;
    b->data = data;
    b->err = 0;
    b->len = len;
    memcpy(b->buf, buf, len);

    pthread_mutex_lock(&fs->lock);
    if (fs->stopping || fs->queued_bytes + len > fs->max_queue_bytes) {
        pthread_mutex_unlock(&fs->lock);
        free(b);
        return RECD_EBUSY;
    }
    fs->queued_bytes += len;
    set_queue_gauge(fs);
    *fs->tail = b;
    fs->tail = &b->next;
    pthread_cond_signal(&fs->wake);
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

static void file_sink_free(recd_event_sink_t *s)
{
    file_sink_t *fs = (file_sink_t *)s;

    pthread_mutex_lock(&fs->lock);
    fs->stopping = 1;
    pthread_cond_signal(&fs->wake);
    pthread_mutex_unlock(&fs->lock);
    pthread_join(fs->writer, NULL);
    close(fs->fd);
    pthread_cond_destroy(&fs->wake);
    pthread_mutex_destroy(&fs->lock);
    free(fs);
}

static const recd_event_sink_ops_t file_sink_ops = {file_sink_append, file_sink_free};

/* The length of the file up to and including its last '\n' (0 when it has none), reading backwards from its end. */
static int find_last_line_end(int fd, off_t size, off_t *end)
{
    char buf[4096];
    off_t pos = size;

    while (pos > 0) {
        size_t n = pos < (off_t)sizeof(buf) ? (size_t)pos : sizeof(buf);
        if (pread(fd, buf, n, pos - (off_t)n) != (ssize_t)n)
            return -1;
        for (size_t i = n; i > 0; --i) {
            if (buf[i - 1] == '\n') {
                *end = pos - (off_t)n + (off_t)i;
                return 0;
            }
        }
        pos -= (off_t)n;
    }
    *end = 0;
    return 0;
}

recd_event_sink_t *recd_file_sink_open(const char *path, int fsync, size_t max_queue_bytes, char *err, size_t errlen)
{
    file_sink_t *fs;
    struct stat st;
    off_t end;
    sigset_t all, old;
    int fd, rc;

    if (recd_mkdir_parents(path) != 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(errno));
        return NULL;
    }
    if ((fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || find_last_line_end(fd, st.st_size, &end) != 0 || (end != st.st_size && ftruncate(fd, end) != 0)) {
        snprintf(err, errlen, "cannot cut the unfinished last line of %s: %s", path, strerror(errno));
        goto fail_fd;
    }
    fs = recd_xcalloc(1, sizeof(*fs));
    fs->super.ops = &file_sink_ops;
    fs->fd = fd;
    fs->fsync = fsync;
    fs->max_queue_bytes = max_queue_bytes;
    fs->tail = &fs->head;
    fs->length = end;
    pthread_mutex_init(&fs->lock, NULL);
    pthread_cond_init(&fs->wake, NULL);
    /* the writer takes no signals: the process handles them on the thread that waits for them */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&fs->writer, NULL, run_writer, fs);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the event writer thread: %s", strerror(rc));
        goto fail_sink;
    }
    return &fs->super;

fail_sink:
    pthread_cond_destroy(&fs->wake);
    pthread_mutex_destroy(&fs->lock);
    free(fs);
fail_fd:
    close(fd);
    return NULL;
}

void recd_file_sink_stats(recd_event_sink_t *s, recd_file_sink_stats_t *out)
{
    file_sink_t *fs = (file_sink_t *)s;

    out->batches_written = atomic_load_explicit(&fs->batches_written, memory_order_relaxed);
    out->batches_failed = atomic_load_explicit(&fs->batches_failed, memory_order_relaxed);
    out->rounds = atomic_load_explicit(&fs->rounds, memory_order_relaxed);
    out->fsyncs = atomic_load_explicit(&fs->fsyncs, memory_order_relaxed);
    pthread_mutex_lock(&fs->lock);
    out->queued_bytes = fs->queued_bytes;
    pthread_mutex_unlock(&fs->lock);
}

void recd_file_sink_use_metrics(recd_event_sink_t *s, recd_metrics_t *metrics)
{
    file_sink_t *fs = (file_sink_t *)s;
    static const char batches[] = "recd_event_sink_batches_total", batches_help[] = "Event batches the event log answered.";

    pthread_mutex_lock(&fs->lock);
    fs->m_written = recd_metrics_counter(metrics, batches, batches_help, "result=\"written\"");
    fs->m_failed = recd_metrics_counter(metrics, batches, batches_help, "result=\"failed\"");
    fs->m_fsyncs =
        recd_metrics_counter(metrics, "recd_event_sink_fsyncs_total", "fdatasync calls of the event log (one per round).", NULL);
    fs->m_queue_bytes =
        recd_metrics_gauge(metrics, "recd_event_sink_queue_bytes", "Event bytes accepted and not yet written.", NULL);
    set_queue_gauge(fs);
    pthread_mutex_unlock(&fs->lock);
}
