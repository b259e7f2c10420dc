/* event_sink.h: the event sink interface: append a batch of JSON lines, hear back once it is stored. No h2o types. */
#ifndef RECD_STORE_EVENT_SINK_H
#define RECD_STORE_EVENT_SINK_H

#include <stddef.h>

/**
 * Completion of one appended batch, called exactly once on the sink's own thread (never on the caller's). err is 0 when
 * the batch is stored as durably as the sink promises (for the file sink with fsync on: after an fdatasync covering it),
 * or a negative RECD_E* code when it was not stored at all: an error answer leaves no bytes of the batch behind. Keep it
 * short (post a message to the caller's loop): the sink stores nothing else while a callback runs.
 */
typedef void (*recd_event_sink_cb)(void *data, int err);

typedef struct st_recd_event_sink_t recd_event_sink_t;

/** What a backend implements; a backend's struct starts with a recd_event_sink_t whose ops point at its table. */
typedef struct st_recd_event_sink_ops_t {
    /** See recd_event_sink_append. */
    int (*append)(recd_event_sink_t *s, const char *buf, size_t len, recd_event_sink_cb cb, void *data);
    /** See recd_event_sink_free (never called with NULL). */
    void (*free)(recd_event_sink_t *s);
} recd_event_sink_ops_t;

/** The interface every backend embeds as its first member. */
struct st_recd_event_sink_t {
    const recd_event_sink_ops_t *ops;
};

/**
 * Queues buf (len bytes of whole JSON lines, each ending in '\n'; copied, so the caller may free it on return) as one batch.
 * Safe to call from any number of threads at once: batches are stored in the order their calls returned, and lines of
 * two batches never interleave. Returns 0, after which cb(data, err) is called exactly once on the sink's thread; or
 * RECD_EBUSY, without calling cb, when the sink's queue cannot take len more bytes (or the sink is closing), so the
 * caller can shed load (HTTP 503) instead of waiting.
 */
int recd_event_sink_append(recd_event_sink_t *s, const char *buf, size_t len, recd_event_sink_cb cb, void *data);

/**
 * Stores everything still queued, calls every pending callback, stops the sink's thread and frees it; accepts NULL. No
 * append may run concurrently with or after this call.
 */
void recd_event_sink_free(recd_event_sink_t *s);

#endif
