/* shared_counters.h: counters that several processes add to, kept as Redis hashes (experiment counts across replicas). */
#ifndef RECD_STORE_SHARED_COUNTERS_H
#define RECD_STORE_SHARED_COUNTERS_H

#include <stddef.h>
#include <stdint.h>
#include "base/log.h"

/*
 * A blocking hiredis connection for background threads (never an event loop): each call is one round trip with a deadline,
 * serialised by an internal mutex, so any thread may call. A transport failure drops the connection; the next call
 * connects again. Nothing is retried inside: a caller that keeps its own unflushed deltas simply adds them next time.
 */
typedef struct st_recd_shared_counters_t recd_shared_counters_t;

/** Creates the client (no connection yet). host is copied; log is borrowed. Aborts on out of memory. */
recd_shared_counters_t *recd_shared_counters_create(const char *host, uint16_t port, uint32_t timeout_ms, const recd_logger_t *log);
/** Closes and frees; accepts NULL. */
void recd_shared_counters_free(recd_shared_counters_t *c);

/**
 * Adds deltas[i] to field fields[i] of the hash key, all in one MULTI/EXEC with an EXPIRE of ttl_s (0: none), so the hash
 * never holds half a flush. Zero deltas are skipped. Returns 0 when Redis applied the transaction, RECD_EIO otherwise (not
 * reachable, timed out, or an error reply: the caller keeps its deltas). After a timeout Redis may still have applied it:
 * a caller that re-adds then counts those deltas twice (the one window where a count can be off).
 */
int recd_shared_counters_add(recd_shared_counters_t *c, const char *key, const char *const *fields, const uint64_t *deltas,
                             size_t n, uint32_t ttl_s);

/** Called for each field of a hash whose value is a non-negative decimal integer (others are skipped). */
typedef void (*recd_shared_counters_field_cb)(void *data, const char *field, size_t len, uint64_t value);

/** Reads every field of the hash key (HGETALL). Returns 0 (an absent key has no fields) or RECD_EIO. */
int recd_shared_counters_read(recd_shared_counters_t *c, const char *key, recd_shared_counters_field_cb cb, void *data);

#endif
