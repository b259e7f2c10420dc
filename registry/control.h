/* control.h: the control file <registry>/<model>/control.json — which version serves whom (active version, rollback
 * history, pins, experiments), read with validation, written atomically, and edited under a lock. */
#ifndef RECD_REGISTRY_CONTROL_H
#define RECD_REGISTRY_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Slots of an experiment's assignment table: hash(salt, user) picks one, the table maps it to an arm. */
#define RECD_EXPERIMENT_SLOTS 10000
/** Arms of one experiment: a slot stores its arm index as one of [0-9a-zA-Z]. */
#define RECD_EXPERIMENT_MAX_ARMS 62

/** One arm of an experiment: a version of the control file's model and its share of the traffic. */
typedef struct st_recd_control_arm_t {
    char name[65];    /* [A-Za-z0-9_-]{1,64} */
    uint64_t version; /* a version of this model (the admin API spells it "<model>@<version>") */
    uint32_t weight;  /* basis points; an experiment's weights sum to 10000 */
} recd_control_arm_t;

/** When the guardrail evaluator rolls a canary arm back (enabled 0: the experiment has no "guardrails" member). */
typedef struct st_recd_control_guardrails_t {
    char canary[65], control[65]; /* arm names of this experiment */
    double max_error_rate_delta, max_p99_ratio, alpha;
    uint64_t min_requests, min_events;
    int enabled;
} recd_control_guardrails_t;

/** One experiment of the control file. */
typedef struct st_recd_control_experiment_t {
    char id[65]; /* [A-Za-z0-9_-]{1,64}: the member name in "experiments" */
    char salt[129];
    int enabled;
    uint64_t table_version; /* bumped whenever slots change */
    size_t n_arms;          /* 1..RECD_EXPERIMENT_MAX_ARMS */
    recd_control_arm_t arms[RECD_EXPERIMENT_MAX_ARMS];
    uint8_t slots[RECD_EXPERIMENT_SLOTS]; /* arm index per slot; arm i holds exactly arms[i].weight slots */
    recd_control_guardrails_t guardrails;
    int rolled_back; /* "status": "rolled_back" (else "running") */
    char reason[256];
    double changed_at; /* Unix seconds of the last status change; 0 when never */
} recd_control_experiment_t;

/**
 * A parsed control file. history, pins and experiments are malloc'ed arrays (NULL when empty): an edit callback may
 * realloc or free them and recd_control_dispose frees them. _extra keeps the file's unknown members so a rewrite keeps
 * them; leave it alone.
 */
typedef struct st_recd_control_t {
    uint64_t generation, active; /* active 0: the file names none (serve the newest version that loads) */
    uint64_t *history;           /* the previous active versions, oldest first: rollback pops the last one */
    size_t n_history;
    uint64_t *pins; /* versions kept loaded whatever is active */
    size_t n_pins;
    recd_control_experiment_t *experiments;
    size_t n_experiments;
    void *_extra;
} recd_control_t;

/**
 * Reads <registry>/<model>/control.json into out (which the caller disposes, also after an error). Returns RECD_OK,
 * RECD_ENOTFOUND without a file (out is then empty), RECD_EFORMAT with a message in err when the file is malformed
 * (not JSON, wrong member types, ids or arm names outside [A-Za-z0-9_-]{1,64}, weights not summing to 10000, slots not
 * 10000 arm indices matching the weights, guardrails naming unknown arms ...), RECD_EINVAL for an invalid model name,
 * RECD_EIO with a message when the file cannot be read (a permission error says so).
 */
int recd_control_read(const char *registry, const char *model, recd_control_t *out, char *err, size_t errlen);
/**
 * Replaces <registry>/<model>/control.json atomically (unique temp file, fsync, rename, fsync of the directory) with c and
 * the unknown members it was read with. Bumps nothing. Returns RECD_OK, RECD_EINVAL when c does not validate (see
 * recd_control_validate) or the name is invalid, RECD_EIO (errno kept).
 */
int recd_control_write(const char *registry, const char *model, const recd_control_t *c);
/**
 * Read-modify-write under an flock on <registry>/<model>/.control.lock: reads the file (a missing one is an empty control
 * state), calls edit, validates the result, sets generation to the old one + 1 and writes it atomically. edit returns 0 to
 * go on, or a RECD_E* code to abort without writing (that code is returned). *new_generation (may be NULL) receives the
 * generation written. Blocks on the lock and fsyncs: never call it on an event loop. Returns RECD_OK or RECD_E* with a
 * message in err.
 */
int recd_control_update(const char *registry, const char *model, int (*edit)(recd_control_t *c, void *data), void *data,
                        uint64_t *new_generation, char *err, size_t errlen);
/**
 * Whether e routes traffic: enabled and with arms. A model's traffic is routed by the first such experiment of its
 * control file; recd's route stage and recd-updater both apply this rule, so a user is folded for the version it is served.
 */
int recd_control_experiment_routes(const recd_control_experiment_t *e);
/** The arm of user (len bytes) in e: the arm of its slot (recd_experiment_slot), or 0 if the table names no such arm. */
size_t recd_control_arm_of(const recd_control_experiment_t *e, const char *user, size_t len);
/** Frees what c holds and empties it; accepts a zeroed or already disposed c. */
void recd_control_dispose(recd_control_t *c);

/** Checks everything recd_control_read checks on an in-memory control state. Returns RECD_OK or RECD_EINVAL with a message. */
int recd_control_validate(const recd_control_t *c, char *err, size_t errlen);
/** Whether s (len bytes) is a valid experiment id or arm name: 1..64 of [A-Za-z0-9_-]. */
int recd_control_valid_id(const char *s, size_t len);
/** The experiment with this id, or NULL. */
recd_control_experiment_t *recd_control_find_experiment(const recd_control_t *c, const char *id);
/** Makes version active, pushing the previous active one (if any, and different) onto history. For edit callbacks. */
void recd_control_activate(recd_control_t *c, uint64_t version);
/** Pops the last history entry into active. Returns RECD_OK, or RECD_ENOTFOUND when history is empty. For edit callbacks. */
int recd_control_rollback(recd_control_t *c);
/** Whether version is pinned. */
int recd_control_is_pinned(const recd_control_t *c, uint64_t version);

#ifdef __cplusplus
}
#endif

#endif
