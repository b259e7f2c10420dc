/* wal.h: a write-ahead log of opaque records in a directory: CRC-checked, group-committed with fsync, retired one by one. */
#ifndef RECD_STORE_WAL_H
#define RECD_STORE_WAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct st_recd_wal_t recd_wal_t;

/**
 * Completion of one appended batch, called once on the log's writer thread. err 0: the batch's records are on disk
 * (an fdatasync covering them returned) with the ids first_id .. first_id + n - 1, in the order given, and already
 * replayable and retirable. err negative (RECD_EIO): none of them was kept. Keep it short: the log writes nothing else
 * while a callback runs.
 */
typedef void (*recd_wal_append_cb)(void *data, int err, uint64_t first_id);

/** One unretired record handed over by recd_wal_replay: payload (len bytes) is valid during the call only. */
typedef void (*recd_wal_replay_cb)(void *data, uint64_t id, const char *payload, size_t len);

/**
 * Opens the log in dir (created with its parents when missing) and starts its writer thread. A lock file dir/LOCK keeps
 * a second process out: it then fails with a message naming the directory and the pid that holds it. The segments
 * found are checked record by record; the first record whose header or CRC-32C does not check (a write torn by a
 * crash, a corrupted byte) ends its segment: it and what follows in that segment are cut off, counted in the stats and
 * reported in warn (when not NULL; "" when nothing was cut). Every record kept is unretired (retirement is not
 * persisted): recd_wal_replay hands them over. max_bytes bounds the log on disk, retired records included until their
 * segment is deleted (segments are a quarter of it; the newest one, once all retired, is deleted by the next append and
 * no longer counted). Returns NULL with a message in err.
 */
recd_wal_t *recd_wal_open(const char *dir, uint64_t max_bytes, char *warn, size_t warnlen, char *err, size_t errlen);

/**
 * Queues n records (copied: the caller may free them on return) as one batch, to be written in order after every batch
 * queued before it. Safe from any thread. Returns 0, after which cb(data, err, first_id) is called exactly once; or
 * RECD_EBUSY without calling cb when the log cannot take them (it would pass max_bytes, counting what is queued, or it is
 * closing), or RECD_EINVAL when n is 0 or a record is larger than the log can ever hold.
 */
int recd_wal_append(recd_wal_t *w, const struct iovec *records, size_t n, recd_wal_append_cb cb, void *data);

/**
 * Marks record id as no longer needed (its consumer has it for good); a segment whose records are all retired is
 * deleted, which frees its bytes for appends. Unknown and already retired ids are ignored. Safe from any thread.
 */
void recd_wal_retire(recd_wal_t *w, uint64_t id);

/**
 * Reads every record unretired when the call starts, in id order, from disk, and calls cb with each (from this thread).
 * Records retired meanwhile may still be handed over. Returns the number handed over, or RECD_EIO when a read failed.
 */
long recd_wal_replay(recd_wal_t *w, recd_wal_replay_cb cb, void *data);

/**
 * Reads record id into a malloc'ed buffer (*payload, *len; the caller frees it). Returns 0, RECD_ENOTFOUND when it is
 * retired or unknown, or RECD_EIO.
 */
int recd_wal_read(recd_wal_t *w, uint64_t id, char **payload, size_t *len);

/** What the log holds; a snapshot, safe from any thread. */
typedef struct st_recd_wal_stats_t {
    uint64_t bytes;             /* segment bytes on disk (retired records included until their segment goes) */
    uint64_t queued_bytes;      /* accepted by recd_wal_append and not yet written */
    uint64_t live_records;      /* written and not retired */
    uint64_t oldest_live_ms;    /* append time (Unix ms) of the oldest unretired record; 0 when none */
    uint64_t appended_records;  /* written since open */
    uint64_t retired_records;   /* retired since open */
    uint64_t segments;          /* segment files */
    uint64_t cut_bytes;         /* bytes cut off at open (torn or corrupt records and what followed them) */
    uint64_t recovered_records; /* records found at open */
} recd_wal_stats_t;

/** Fills out with the log's current state. */
void recd_wal_stats(recd_wal_t *w, recd_wal_stats_t *out);

/**
 * Writes what is queued (answering every callback), stops the writer, releases the lock and frees the log; accepts
 * NULL. Unretired records stay on disk for the next open. No other call may run concurrently with or after it.
 */
void recd_wal_close(recd_wal_t *w);

#endif
