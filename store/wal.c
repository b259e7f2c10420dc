/*
 * wal.c: the write-ahead log of the Kafka event sink (and of anything else that must keep records until a consumer has
 * them for good).
 *
 * DESIGN
 * The log is a directory of segment files "wal-<first id, 20 digits>.log", each a run of records
 *   u32 crc32c | u32 payload length | u64 id | u64 append time (Unix ms) | payload
 * (little-endian; the CRC-32C covers everything after itself), with ids consecutive within a segment. Appenders only
 * queue their batch under a mutex and return; one writer thread (redis bio.c style) takes everything queued (a round),
 * gives the records their ids, writes the round with one write and issues one fdatasync for it (group commit), then
 * indexes the records and calls the batches back. A failed write or fdatasync cuts the segment back to where the round
 * started and fails the whole round, so a failure leaves nothing behind. Rounds go to the newest segment; a new one is
 * started when it passes a quarter of the size limit, and an older segment is deleted as soon as its last record is
 * retired. The index (per segment: each record's offset, length, time and retired flag) lives in memory under the
 * same mutex; retirement is not written down, so a restart replays every record of the segments still present and a
 * consumer must drop duplicates by the payload's own id. A lock file (flock) keeps a second process out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/error.h"
#include "base/fs.h"
#include "store/wal.h"

#define HEADER_BYTES 24
#define MIN_SEGMENT_BYTES 4096
#define MAX_RECORD_BYTES (UINT32_C(64) << 20)
#define SEGMENT_PATTERN "wal-%020" PRIu64 ".log"

/* One record of a segment, as indexed. */
typedef struct st_record_t {
    uint64_t off;
    uint32_t len; /* payload bytes */
    uint8_t retired;
    uint64_t time_ms;
} record_t;

typedef struct st_segment_t {
    uint64_t first_id;
    int fd;
    uint64_t bytes;
    record_t *records; /* records[i] has id first_id + i */
    size_t n_records, cap_records;
    size_t live;
    size_t first_live; /* no record before this index is live */
} segment_t;

/* One appended batch, owned by the queue from append until its callback returns. */
typedef struct st_batch_t {
    struct st_batch_t *next;
    recd_wal_append_cb cb;
    void *data;
    size_t n;
    size_t bytes; /* encoded bytes */
    struct iovec *records;
    int err;
    uint64_t first_id;
} batch_t;

struct st_recd_wal_t {
    char *dir;
    int dir_fd, lock_fd;
    uint64_t max_bytes, segment_bytes;
    pthread_t writer;
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    batch_t *head, **tail;
    uint64_t queued_bytes;
    int stopping;
    segment_t **segments; /* oldest first; the last one takes the appends */
    size_t n_segments, cap_segments;
    uint64_t bytes, live, appended, retired, next_id;
    /* set at open */
    uint64_t cut_bytes, recovered;
};

/* ---- CRC-32C (Castagnoli), the checksum of iSCSI, ext4 and Kafka's own record batches --------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = c & 1 ? (c >> 1) ^ UINT32_C(0x82F63B78) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (len-- > 0)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- encoding ------------------------------------------------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Writes one record (header and payload) at out; returns its size. */
static size_t encode(uint8_t *out, uint64_t id, uint64_t time_ms, const void *payload, uint32_t len)
{
    put32(out + 4, len);
    put64(out + 8, id);
    put64(out + 16, time_ms);
    memcpy(out + HEADER_BYTES, payload, len);
    put32(out, crc32c(0, out + 4, HEADER_BYTES - 4 + len));
    return HEADER_BYTES + len;
}

/* ---- the index (called with lock held, or before the writer starts) ----------------------------------------------- */

static void segment_add_record(segment_t *s, uint64_t off, uint32_t len, uint64_t time_ms)
{
    if (s->n_records == s->cap_records) {
        s->cap_records = s->cap_records * 2 + 64;
        s->records = recd_xrealloc(s->records, s->cap_records * sizeof(*s->records));
    }
    s->records[s->n_records++] = (record_t){off, len, 0, time_ms};
    ++s->live;
}

static void segment_path(const recd_wal_t *w, uint64_t first_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/" SEGMENT_PATTERN, w->dir, first_id);
}

/* Deletes segment i (its records all retired, or none), unless it is the newest one, which takes the appends. */
static void maybe_delete_segment(recd_wal_t *w, size_t i)
{
    segment_t *s = w->segments[i];
    char path[4096];

    if (s->live > 0 || i + 1 == w->n_segments)
        return;
    segment_path(w, s->first_id, path, sizeof(path));
    if (unlink(path) != 0)
        return; /* kept, and counted, until a later retirement tries again */
    close(s->fd);
    w->bytes -= s->bytes;
    free(s->records);
    free(s);
    memmove(w->segments + i, w->segments + i + 1, (w->n_segments - i - 1) * sizeof(*w->segments));
    --w->n_segments;
}

/* The segment holding id, or NULL. */
static segment_t *find_segment(recd_wal_t *w, uint64_t id, size_t *index)
{
    size_t lo = 0, hi = w->n_segments;
    while (lo < hi) { /* the last segment whose first id is <= id */
        size_t mid = (lo + hi) / 2;
        if (w->segments[mid]->first_id <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    segment_t *s = w->segments[lo - 1];
    if (id - s->first_id >= s->n_records)
        return NULL;
    *index = lo - 1;
    return s;
}

static void push_segment(recd_wal_t *w, segment_t *s)
{
    if (w->n_segments == w->cap_segments) {
        w->cap_segments = w->cap_segments * 2 + 8;
        w->segments = recd_xrealloc(w->segments, w->cap_segments * sizeof(*w->segments));
    }
    w->segments[w->n_segments++] = s;
}

/* ---- the writer ---------------------------------------------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return RECD_EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Creates the segment whose first record will have id first_id and makes its name durable. */
static segment_t *create_segment(recd_wal_t *w, uint64_t first_id)
{
    char path[4096];
    segment_path(w, first_id, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    if (fsync(w->dir_fd) != 0) {
        close(fd);
        unlink(path);
        return NULL;
    }
    segment_t *s = recd_xcalloc(1, sizeof(*s));
    s->first_id = first_id;
    s->fd = fd;
    return s;
}

/* Writes one round; sets every batch's err and first_id. Runs without the lock except to read and update the index. */
static void write_round(recd_wal_t *w, batch_t *round, size_t round_bytes)
{
    uint8_t *buf = recd_xmalloc(round_bytes), *p = buf;
    uint64_t time_ms = now_ms(), id;
    segment_t *active;
    int err = 0;

    pthread_mutex_lock(&w->lock);
    id = w->next_id;
    active = w->n_segments > 0 ? w->segments[w->n_segments - 1] : NULL;
    /* a new segment when the newest is full, or all retired (it is deleted as soon as it is no longer the newest) */
    int roll = active == NULL || (active->bytes > 0 && (active->live == 0 || active->bytes + round_bytes > w->segment_bytes));
    pthread_mutex_unlock(&w->lock);

    if (roll) {
        segment_t *s = create_segment(w, id);
        if (s == NULL) {
            err = RECD_EIO;
            goto Exit;
        }
        pthread_mutex_lock(&w->lock);
        push_segment(w, s);
        if (active != NULL)
            maybe_delete_segment(w, w->n_segments - 2); /* the old newest may be all retired already */
        pthread_mutex_unlock(&w->lock);
        active = s;
    }
    for (batch_t *b = round; b != NULL; b = b->next) {
        b->first_id = id;
        for (size_t i = 0; i < b->n; ++i)
            p += encode(p, id++, time_ms, b->records[i].iov_base, (uint32_t)b->records[i].iov_len);
    }
    /* only this thread writes the newest segment, so its length is read without the lock */
    if ((err = write_all(active->fd, buf, round_bytes)) == 0 && fdatasync(active->fd) != 0)
        err = RECD_EIO;
    if (err != 0) {
        /* nothing of this round is known to be durable: cut it back out (a later round retries the cut by overwriting) */
        if (ftruncate(active->fd, (off_t)active->bytes) != 0)
            err = RECD_EIO;
        goto Exit;
    }
    pthread_mutex_lock(&w->lock);
    uint64_t off = active->bytes;
    for (batch_t *b = round; b != NULL; b = b->next) {
        for (size_t i = 0; i < b->n; ++i) {
            segment_add_record(active, off, (uint32_t)b->records[i].iov_len, time_ms);
            off += HEADER_BYTES + b->records[i].iov_len;
        }
    }
    active->bytes += round_bytes;
    w->bytes += round_bytes;
    w->next_id = id;
    w->appended += (uint64_t)(id - round->first_id);
    w->live += (uint64_t)(id - round->first_id);
    pthread_mutex_unlock(&w->lock);
Exit:
    for (batch_t *b = round; b != NULL; b = b->next)
        b->err = err;
    free(buf);
}

static void *run_writer(void *arg)
{
    recd_wal_t *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->head == NULL)
            break; /* stopping, and everything queued has been answered */
        batch_t *round = w->head;
        size_t round_bytes = w->queued_bytes;
        w->head = NULL;
        w->tail = &w->head;
        pthread_mutex_unlock(&w->lock);

        write_round(w, round, round_bytes);
        pthread_mutex_lock(&w->lock);
        w->queued_bytes -= round_bytes;
        pthread_mutex_unlock(&w->lock);
        while (round != NULL) {
            batch_t *b = round;
            round = b->next;
            b->cb(b->data, b->err, b->first_id);
            free(b);
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- the public calls ---------------------------------------------------------------------------------------------- */

/* The bytes the size limit counts (lock held): every segment's, except the newest one's once all its records are retired,
 * since the next round deletes it. */
static uint64_t kept_bytes(const recd_wal_t *w)
{
    const segment_t *active = w->n_segments > 0 ? w->segments[w->n_segments - 1] : NULL;
    return active != NULL && active->live == 0 ? w->bytes - active->bytes : w->bytes;
}

int recd_wal_append(recd_wal_t *w, const struct iovec *records, size_t n, recd_wal_append_cb cb, void *data)
{
    size_t bytes = 0, payload = 0;

    if (n == 0)
        return RECD_EINVAL;
    for (size_t i = 0; i < n; ++i) {
        if (records[i].iov_len > MAX_RECORD_BYTES)
            return RECD_EINVAL;
        bytes += HEADER_BYTES + records[i].iov_len;
        payload += records[i].iov_len;
    }
    if (bytes > w->max_bytes)
        return RECD_EINVAL;
    /* one block: the batch, its iovecs and the payloads they point into */
    batch_t *b = recd_xmalloc(sizeof(*b) + n * sizeof(struct iovec) + payload);
    b->next = NULL;
    b->cb = cb;
    b->data = data;
    b->n = n;
    b->bytes = bytes;
    b->records = (struct iovec *)(b + 1);
    b->err = 0;
    b->first_id = 0;
    char *copy = (char *)(b->records + n);
    for (size_t i = 0; i < n; ++i) {
        memcpy(copy, records[i].iov_base, records[i].iov_len);
        b->records[i] = (struct iovec){copy, records[i].iov_len};
        copy += records[i].iov_len;
    }

    pthread_mutex_lock(&w->lock);
    if (w->stopping || kept_bytes(w) + w->queued_bytes + bytes > w->max_bytes) {
        pthread_mutex_unlock(&w->lock);
        free(b);
        return RECD_EBUSY;
    }
    w->queued_bytes += bytes;
    *w->tail = b;
    w->tail = &b->next;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

void recd_wal_retire(recd_wal_t *w, uint64_t id)
{
    size_t index;

    pthread_mutex_lock(&w->lock);
    segment_t *s = find_segment(w, id, &index);
    if (s != NULL && !s->records[id - s->first_id].retired) {
        s->records[id - s->first_id].retired = 1;
        --s->live;
        --w->live;
        ++w->retired;
        while (s->first_live < s->n_records && s->records[s->first_live].retired)
            ++s->first_live;
        maybe_delete_segment(w, index);
    }
    pthread_mutex_unlock(&w->lock);
}

static int read_payload(int fd, const record_t *r, char *out)
{
    if (pread(fd, out, r->len, (off_t)(r->off + HEADER_BYTES)) != (ssize_t)r->len)
        return RECD_EIO;
    return 0;
}

int recd_wal_read(recd_wal_t *w, uint64_t id, char **payload, size_t *len)
{
    size_t index;
    int ret = RECD_ENOTFOUND;

    pthread_mutex_lock(&w->lock);
    segment_t *s = find_segment(w, id, &index);
    if (s != NULL && !s->records[id - s->first_id].retired) {
        /* read under the lock: the segment cannot be deleted meanwhile */
        record_t r = s->records[id - s->first_id];
        *payload = recd_xmalloc(r.len + 1u);
        if ((ret = read_payload(s->fd, &r, *payload)) == 0) {
            (*payload)[r.len] = '\0';
            *len = r.len;
        } else {
            free(*payload);
            *payload = NULL;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return ret;
}

long recd_wal_replay(recd_wal_t *w, recd_wal_replay_cb cb, void *data)
{
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    long handed = 0;

    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n_segments; ++i) {
        segment_t *s = w->segments[i];
        for (size_t r = s->first_live; r < s->n_records; ++r) {
            if (s->records[r].retired)
                continue;
            if (n == cap) {
                cap = cap * 2 + 256;
                ids = recd_xrealloc(ids, cap * sizeof(*ids));
            }
            ids[n++] = s->first_id + r;
        }
    }
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; ++i) {
        char *payload;
        size_t len;
        int rc = recd_wal_read(w, ids[i], &payload, &len);
        if (rc == RECD_ENOTFOUND)
            continue; /* retired meanwhile */
        if (rc != 0) {
            handed = RECD_EIO;
            break;
        }
        cb(data, ids[i], payload, len);
        free(payload);
        ++handed;
    }
    free(ids);
    return handed;
}

void recd_wal_stats(recd_wal_t *w, recd_wal_stats_t *out)
{
    pthread_mutex_lock(&w->lock);
    out->bytes = w->bytes;
    out->queued_bytes = w->queued_bytes;
    out->live_records = w->live;
    out->oldest_live_ms = 0;
    for (size_t i = 0; i < w->n_segments && out->oldest_live_ms == 0; ++i) {
        segment_t *s = w->segments[i];
        if (s->live > 0)
            out->oldest_live_ms = s->records[s->first_live].time_ms;
    }
    out->appended_records = w->appended;
    out->retired_records = w->retired;
    out->segments = w->n_segments;
    out->cut_bytes = w->cut_bytes;
    out->recovered_records = w->recovered;
    pthread_mutex_unlock(&w->lock);
}

/* ---- opening -------------------------------------------------------------------------------------------------------- */

/* Takes dir/LOCK, or says who holds it. */
static int take_lock(recd_wal_t *w, char *err, size_t errlen)
{
    char path[4096], pid[32] = "";

    snprintf(path, sizeof(path), "%s/LOCK", w->dir);
    if ((w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t n = pread(w->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            snprintf(err, errlen,
                     "the write-ahead log %s is in use by another process (pid %s holds %s); give each process its own wal_dir",
                     w->dir, pid[0] != '\0' ? pid : "unknown", path);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return -1;
    }
    int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(w->lock_fd, 0) != 0 || pwrite(w->lock_fd, pid, (size_t)len, 0) != len) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads segment first_id record by record, cutting it at the first record that does not check. */
static segment_t *load_segment(recd_wal_t *w, uint64_t first_id, char *warn, size_t warnlen, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    uint8_t header[HEADER_BYTES];
    uint8_t *payload = NULL;
    size_t payload_cap = 0;

    segment_path(w, first_id, path, sizeof(path));
    int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    segment_t *s = recd_xcalloc(1, sizeof(*s));
    s->first_id = first_id;
    s->fd = fd;
    uint64_t off = 0, size = (uint64_t)st.st_size;
    const char *why = NULL;
    while (off < size) {
        if (size - off < HEADER_BYTES || pread(fd, header, HEADER_BYTES, (off_t)off) != HEADER_BYTES) {
            why = "a torn record header";
            break;
        }
        uint32_t len = get32(header + 4);
        if (len > MAX_RECORD_BYTES || size - off - HEADER_BYTES < len) {
            why = "a torn record";
            break;
        }
        if (len > payload_cap) {
            payload_cap = len;
            payload = recd_xrealloc(payload, payload_cap);
        }
        if (len > 0 && pread(fd, payload, len, (off_t)(off + HEADER_BYTES)) != (ssize_t)len) {
            why = "an unreadable record";
            break;
        }
        if (crc32c(crc32c(0, header + 4, HEADER_BYTES - 4), payload, len) != get32(header)) {
            why = "a record whose CRC-32C does not match";
            break;
        }
        if (get64(header + 8) != first_id + s->n_records) {
            why = "a record out of sequence";
            break;
        }
        segment_add_record(s, off, len, get64(header + 16));
        off += HEADER_BYTES + len;
    }
    free(payload);
    if (why != NULL) {
        if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0) {
            snprintf(err, errlen, "cannot cut %s at byte %" PRIu64 ": %s", path, off, strerror(errno));
            close(fd);
            free(s->records);
            free(s);
            return NULL;
        }
        w->cut_bytes += size - off;
        size_t used = strlen(warn);
        if (warn != NULL && used < warnlen)
            snprintf(warn + used, warnlen - used, "%s%s: cut %" PRIu64 " bytes at byte %" PRIu64 " (%s; %zu records kept)",
                     used > 0 ? "; " : "", path, size - off, off, why, s->n_records);
    }
    s->bytes = off;
    return s;
}

static int load_segments(recd_wal_t *w, char *warn, size_t warnlen, char *err, size_t errlen)
{
    DIR *d = opendir(w->dir);
    struct dirent *e;
    uint64_t *firsts = NULL;
    size_t n = 0, cap = 0;
    int ret = -1;

    if (d == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", w->dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        uint64_t first;
        char tail;
        if (strlen(e->d_name) != 28 || sscanf(e->d_name, "wal-%20" SCNu64 ".lo%c", &first, &tail) != 2 || tail != 'g')
            continue;
        if (n == cap) {
            cap = cap * 2 + 16;
            firsts = recd_xrealloc(firsts, cap * sizeof(*firsts));
        }
        firsts[n++] = first;
    }
    closedir(d);
    if (n > 0)
        qsort(firsts, n, sizeof(*firsts), compare_u64);
    w->next_id = 1;
    for (size_t i = 0; i < n; ++i) {
        segment_t *s = load_segment(w, firsts[i], warn, warnlen, err, errlen);
        if (s == NULL)
            goto Exit;
        if (s->first_id < w->next_id && s->n_records > 0) {
            snprintf(err, errlen, "segments of %s overlap at id %" PRIu64, w->dir, s->first_id);
            close(s->fd);
            free(s->records);
            free(s);
            goto Exit;
        }
        push_segment(w, s);
        w->bytes += s->bytes;
        w->live += s->n_records;
        w->recovered += s->n_records;
        if (s->first_id + s->n_records > w->next_id)
            w->next_id = s->first_id + s->n_records;
        if (s->first_id >= w->next_id)
            w->next_id = s->first_id + 1; /* an empty segment's name is taken: start after it */
    }
    /* empty segments (cut to nothing, or created just before a crash) go now; the newest is replaced at the first round */
    for (size_t i = w->n_segments; i-- > 0;) {
        if (w->segments[i]->n_records == 0) {
            segment_t *s = w->segments[i];
            char path[4096];
            segment_path(w, s->first_id, path, sizeof(path));
            unlink(path);
            close(s->fd);
            free(s->records);
            free(s);
            memmove(w->segments + i, w->segments + i + 1, (w->n_segments - i - 1) * sizeof(*w->segments));
            --w->n_segments;
        }
    }
    ret = 0;
Exit:
    free(firsts);
    return ret;
}

static void free_segments(recd_wal_t *w)
{
    for (size_t i = 0; i < w->n_segments; ++i) {
        close(w->segments[i]->fd);
        free(w->segments[i]->records);
        free(w->segments[i]);
    }
    free(w->segments);
}

recd_wal_t *recd_wal_open(const char *dir, uint64_t max_bytes, char *warn, size_t warnlen, char *err, size_t errlen)
{
    char lock_path[4096];
    sigset_t all, old;
    int rc;

    pthread_once(&crc_once, crc_init);
    if (warn != NULL && warnlen > 0)
        warn[0] = '\0';
    snprintf(lock_path, sizeof(lock_path), "%s/LOCK", dir);
    if (recd_mkdir_parents(lock_path) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return NULL;
    }
    recd_wal_t *w = recd_xcalloc(1, sizeof(*w));
    w->dir = recd_xstrdup(dir);
    w->lock_fd = -1;
    w->max_bytes = max_bytes;
    w->segment_bytes = max_bytes / 4 > MIN_SEGMENT_BYTES ? max_bytes / 4 : MIN_SEGMENT_BYTES;
    w->tail = &w->head;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if ((w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
        goto fail_dir;
    }
    if (take_lock(w, err, errlen) != 0)
        goto fail_lock;
    char no_warn[1] = "";
    if (load_segments(w, warn != NULL ? warn : no_warn, warn != NULL ? warnlen : sizeof(no_warn), err, errlen) != 0)
        goto fail_segments;
    /* the writer takes no signals: the process handles them on the thread that waits for them */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->writer, NULL, run_writer, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the write-ahead log's writer thread: %s", strerror(rc));
        goto fail_segments;
    }
    return w;

fail_segments:
    free_segments(w);
fail_lock:
    if (w->lock_fd >= 0)
        close(w->lock_fd);
    close(w->dir_fd);
fail_dir:
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->dir);
    free(w);
    return NULL;
}

void recd_wal_close(recd_wal_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->writer, NULL);
    free_segments(w);
    close(w->lock_fd); /* releases the flock */
    close(w->dir_fd);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->dir);
    free(w);
}
