/* experiment.h: experiment assignment — the user's slot, slot tables, minimal-move rebalancing and signed request ids. */
#ifndef RECD_MODELS_EXPERIMENT_H
#define RECD_MODELS_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>

/*
 * hash(salt, user) picks one of RECD_EXPERIMENT_SLOTS slots; a slot table (one arm index per slot) maps slots to arms. The
 * assignment needs no stored state, so a user keeps their arm across requests and replicas, and a weight change moves only
 * the slots it must. Everything here is pure: no I/O, no global state.
 */

/** Slots of a slot table; weights are in basis points of it (they sum to RECD_EXPERIMENT_SLOTS). Same as registry/control.h. */
#define RECD_EXPERIMENT_SLOTS 10000
/** The most arms an experiment has (an arm index is written as one of [0-9a-zA-Z] in control.json). */
#define RECD_EXPERIMENT_MAX_ARMS 62
/** The longest request id recd_experiment_request_id_encode writes, without its NUL. */
#define RECD_EXPERIMENT_REQUEST_ID_MAX (16 + 1 + 64 + 1 + 20 + 1 + 2 + 1 + 8)

/**
 * The slot of user in an experiment salted with salt: recd_hash_bytes(user, recd_hash_id(salt)) % RECD_EXPERIMENT_SLOTS.
 * Part of recd's contract (every replica must agree): never change it.
 */
uint32_t recd_experiment_slot(const char *salt, size_t salt_len, const char *user, size_t user_len);

/** 1 when n_arms (1..RECD_EXPERIMENT_MAX_ARMS) weights sum to RECD_EXPERIMENT_SLOTS, else 0. */
int recd_experiment_weights_valid(const uint32_t *weights, size_t n_arms);

/**
 * Fills a fresh slot table: arm i takes weights[i] consecutive slots, arm 0 first (slots are uniform hashes, so which slots
 * an arm holds does not matter, only how many). The weights must be valid (recd_experiment_weights_valid); when they are
 * not, every slot goes to arm 0.
 */
void recd_experiment_initial_slots(const uint32_t *weights, size_t n_arms, uint8_t *slots);

/**
 * Changes a slot table from old_weights to new_weights moving the minimum number of slots: only slots of a shrinking arm
 * are handed to a growing arm, lowest slot first (so a ramp up then back down returns the very slots it took). A user in an
 * arm that does not shrink never changes arm: a canary ramped 1% -> 5% -> 25% -> 100% keeps every user it had. Returns the
 * number of slots moved, or RECD_EINVAL (the table untouched) when either weight vector is invalid or the table does not
 * hold exactly old_weights[i] slots of each arm i.
 */
int recd_experiment_rebalance(uint8_t *slots, const uint32_t *old_weights, const uint32_t *new_weights, size_t n_arms);

/** The parts of an experiment request id. experiment points into the id that was parsed (not NUL-terminated). */
typedef struct st_recd_experiment_request_id_t {
    uint64_t nonce;
    const char *experiment;
    size_t experiment_len;
    uint64_t table_version;
    uint32_t arm;
} recd_experiment_request_id_t;

/**
 * Writes the request id of an answer in an experiment, "<16 hex nonce>.<experiment>.<table_version>.<arm>.<8 hex MAC>",
 * where the MAC is the first 4 bytes of HMAC-SHA256(key = salt, message = everything before the last '.'), so an event
 * carrying it can be attributed to its arm with no server-side state, and a made-up id is refused. The MAC is only as
 * secret as the salt. out needs RECD_EXPERIMENT_REQUEST_ID_MAX + 1 bytes. Returns the length written, or RECD_EINVAL
 * when the experiment id is not [A-Za-z0-9_-]{1,64}, arm >= RECD_EXPERIMENT_MAX_ARMS or outlen is too small.
 */
int recd_experiment_request_id_encode(uint64_t nonce, const char *experiment, size_t experiment_len, uint64_t table_version,
                                      uint32_t arm, const char *salt, size_t salt_len, char *out, size_t outlen);

/**
 * Splits an experiment request id into its parts without checking its MAC (to find the experiment, hence the salt).
 * Returns 0, or -1 when id does not have that exact shape (a plain 16-hex id outside experiments included).
 */
int recd_experiment_request_id_parse(const char *id, size_t len, recd_experiment_request_id_t *out);

/**
 * Parses id and checks its MAC with salt: returns the arm index (out filled), or -1 for a garbled or forged id. Never
 * reads beyond len bytes; the comparison takes the same time wherever the MAC differs.
 */
int recd_experiment_request_id_decode(const char *id, size_t len, const char *salt, size_t salt_len,
                                      recd_experiment_request_id_t *out);

#endif
