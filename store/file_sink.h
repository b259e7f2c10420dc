/* file_sink.h: the embedded event sink, a JSON-lines file appended by one writer thread with group-committed fsync. */
#ifndef RECD_STORE_FILE_SINK_H
#define RECD_STORE_FILE_SINK_H

#include <stddef.h>
#include <stdint.h>
#include "base/metrics.h"
#include "store/event_sink.h"

/**
 * Opens (creating it and its parent directories) the JSON-lines file at path for appending and starts its writer thread.
 * A last line left without its newline (by a crash in the middle of a write) is cut off first, so every batch starts
 * on a line boundary. fsync non-zero: a batch is answered only after an fdatasync covering it; one fdatasync covers
 * every batch written in the same round. max_queue_bytes bounds the bytes accepted but not yet answered: it must be
 * larger than the largest batch, which is refused with RECD_EBUSY otherwise. Returns NULL with a message in err.
 */
recd_event_sink_t *recd_file_sink_open(const char *path, int fsync, size_t max_queue_bytes, char *err, size_t errlen);

/** Counters of a file sink, each monotonic except queued_bytes. */
typedef struct st_recd_file_sink_stats_t {
    uint64_t batches_written; /* answered 0 */
    uint64_t batches_failed;  /* answered an error (no byte of them left in the file) */
    uint64_t rounds;          /* times the writer took the queue and wrote what it held */
    uint64_t fsyncs;          /* fdatasync calls */
    uint64_t queued_bytes;    /* accepted and not yet written */
} recd_file_sink_stats_t;

/** Reads the counters of s, which recd_file_sink_open returned; safe from any thread. */
void recd_file_sink_stats(recd_event_sink_t *s, recd_file_sink_stats_t *out);

/**
 * Also keeps the counters in metrics (borrowed; it must outlive s): recd_event_sink_batches_total{result="written"|"failed"},
 * recd_event_sink_fsyncs_total and the gauge recd_event_sink_queue_bytes. Call it once, before the first append.
 */
void recd_file_sink_use_metrics(recd_event_sink_t *s, recd_metrics_t *metrics);

#endif
