/* updater.h: recd-updater's core without I/O — Kafka event values into per-user batches, the Redis commands that apply them,
 * and the fold-in of a user's recent items against the version that user is served. */
#ifndef RECD_UPDATER_UPDATER_H
#define RECD_UPDATER_UPDATER_H

#include <stddef.h>
#include <stdint.h>
#include "models/model.h"
#include "registry/catalog.h"

/*
 * One batch of consumed messages becomes two pipelined Redis round trips. First, per user, one atomic script that for each
 * event sets recd:e:{<user>}:<event_id> NX EX and, only when that succeeded, LPUSHes "<weight>\t<item>" to recd:u:{<user>}:recent,
 * then LTRIMs and EXPIREs the list and returns it: an event is marked seen exactly when it was applied, so a crash between
 * the two cannot lose it, and a replay after a crash does not double-count it. Second, per user, the vector folded from
 * exactly that list for the version the user is served, written by a script that replaces the model's other versions'
 * fields (they no longer reflect the list) and sets the stamp. The vector is written even when every event was a
 * duplicate, so a replay repairs a vector that a crash kept from being written. Offsets are committed after both.
 */

/** The Redis key schema's limits and lifetimes (docs/REDIS.md). */
typedef struct st_recd_updater_limits_t {
    uint32_t max_recent;   /* LTRIM bound of the recent list (recd's max_recent_items) */
    uint32_t recent_ttl_s; /* EXPIRE of recd:u:{user}:recent */
    uint32_t vec_ttl_s;    /* EXPIRE of recd:u:{user}:vec and :stamp */
    uint32_t dedup_ttl_s;  /* EX of recd:e:{<user>}:<event_id> */
} recd_updater_limits_t;

/** One parsed event (Contract A); the strings belong to the batch that parsed it. */
typedef struct st_recd_updater_event_t {
    const char *event_id, *user, *item;
    size_t event_id_len, user_len, item_len;
    float weight; /* recd_event_weight_of its type and value */
    double ts;    /* Unix seconds */
    int64_t seq;  /* the message's offset in its partition: a user's events are keyed to one partition, so it grows */
} recd_updater_event_t;

/** A user's events in a batch, in the order they were consumed. */
typedef struct st_recd_updater_user_t {
    const char *user;
    size_t user_len;
    const recd_updater_event_t *events;
    size_t n_events;
} recd_updater_user_t;

/** One Redis command as an argument vector (for redisAppendCommandArgv); memory belongs to the batch. */
typedef struct st_recd_updater_cmd_t {
    int argc;
    const char **argv;
    size_t *argvlen;
} recd_updater_cmd_t;

/** One entry of a recent list: an item (not NUL-terminated) and its weight. */
typedef struct st_recd_updater_entry_t {
    const char *item;
    size_t item_len;
    float weight;
} recd_updater_entry_t;

typedef struct st_recd_updater_batch_t recd_updater_batch_t;

/** Creates an empty batch. Aborts on out of memory. */
recd_updater_batch_t *recd_updater_batch_create(void);
/** Frees the batch and everything it handed out; accepts NULL. */
void recd_updater_batch_free(recd_updater_batch_t *b);
/** Forgets every event, user and command (pointers handed out become invalid); keeps the memory for the next batch. */
void recd_updater_batch_reset(recd_updater_batch_t *b);
/** Copies len bytes into the batch's memory (NUL-terminated), valid until reset. */
char *recd_updater_batch_strdup(recd_updater_batch_t *b, const char *s, size_t len);

/**
 * Parses one message value (Contract A: {"v":1,"event_id","user","item","type","ts","value"?,"request_id"?}) and adds the
 * event with sequence number seq. An event without "event_id" gets fallback_id (stable for the message, such as its
 * partition and offset), so a replay still de-duplicates it. Returns 0, or RECD_EFORMAT with why in err when the value is
 * not such an object (not JSON, v other than 1, a missing or ill-typed field, an unknown type, a rating without a value,
 * an id empty, too long or not UTF-8); nothing is added then.
 */
int recd_updater_batch_add(recd_updater_batch_t *b, const char *value, size_t len, int64_t seq, const char *fallback_id, char *err,
                           size_t errlen);
/** Number of events added since the last reset. */
size_t recd_updater_batch_n_events(const recd_updater_batch_t *b);
/**
 * Groups the batch's events by user (each user's events keep their order; users in the order of their first event) and
 * returns the users (*n of them), valid until reset or the next add.
 */
const recd_updater_user_t *recd_updater_batch_users(recd_updater_batch_t *b, size_t *n);

/**
 * Builds the first round trip's command for user u: the script that de-duplicates and applies its events and replies
 * with [number applied, then the recent list newest first].
 */
void recd_updater_cmd_apply(recd_updater_batch_t *b, const recd_updater_user_t *u, const recd_updater_limits_t *lim,
                            recd_updater_cmd_t *out);
/**
 * Builds the second round trip's command for user u: the script that writes vec (n_factors floats, stored as float32
 * little-endian) in the field "<model>@<version>" of recd:u:{user}:vec, deletes the fields of the model's other
 * versions, sets recd:u:{user}:stamp to "<model>@<version> <seq>" and applies the vector TTL to both.
 */
void recd_updater_cmd_vector(recd_updater_batch_t *b, const recd_updater_user_t *u, const char *model, uint64_t version,
                             int64_t seq, const float *vec, uint32_t n_factors, const recd_updater_limits_t *lim,
                             recd_updater_cmd_t *out);
/** Writes the recent-list entry of an event, "<weight>\t<item>", into the batch's memory; its length goes to *len. */
const char *recd_updater_entry_format(recd_updater_batch_t *b, const recd_updater_event_t *ev, size_t *len);
/**
 * Parses a recent-list entry "<weight>\t<item>" (item points into s). Returns 0, or RECD_EFORMAT when there is no tab,
 * the weight is not a finite number or the item is empty.
 */
int recd_updater_entry_parse(const char *s, size_t len, recd_updater_entry_t *out);

/**
 * The version of model that serves user in snapshot c: the arm of the model's first enabled experiment (by the user's
 * slot, as recd's route stage assigns it), else the active version. NULL when that version is not loaded (the user's
 * request fails in recd too, so there is nothing to fold for). Borrowed from the snapshot.
 */
recd_model_t *recd_updater_user_model(const recd_catalog_t *c, const char *model, const char *user, size_t user_len);

/**
 * Folds user into m exactly as recd does from a feature-store state holding entries: the user's training history (when m
 * knows the user) plus the entries whose items m knows, repeated items summed. vec receives n_factors floats. Returns 0,
 * RECD_ENOTFOUND when there is nothing to fold (no history and no known item), RECD_EINVAL for a model without factors,
 * or the fold's error.
 */
int recd_updater_fold(const recd_model_t *m, const char *user, size_t user_len, const recd_updater_entry_t *entries, size_t n,
                      float *vec);

#endif
