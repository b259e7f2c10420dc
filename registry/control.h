/* control.h: the control file registry/<model>/control.json — which versions serve whom (active, history, pins, experiments). */
#ifndef RECD_REGISTRY_CONTROL_H
#define RECD_REGISTRY_CONTROL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Schema v1 (unknown members are kept when the file is rewritten):
 *   {"generation": 7, "active": 3, "history": [1, 2], "pins": [2],
 *    "experiments": {"exp1": {"salt": "s1", "enabled": true, "table_version": 4,
 *        "arms": [{"name": "control", "version": 2, "weight": 9000}, {"name": "canary", "version": 1, "weight": 1000}],
 *        "slots": "<10000 characters, one per slot: the arm index as [0-9a-zA-Z]>",
 *        "guardrails": {"canary": "canary", "control": "control", "max_error_rate_delta": 0.01, "max_p99_ratio": 2.0,
 *                       "min_requests": 1000, "min_events": 100, "alpha": 0.05},
 *        "status": "running" | "rolled_back", "reason": "...", "changed_at": 1764500000}}}
 * The file belongs to one model, so an arm stores only its version; the admin API spells it "model@version".
 * Experiment ids and arm names are [A-Za-z0-9_-]{1,64}.
 */

#define RECD_EXPERIMENT_SLOTS 10000
#define RECD_EXPERIMENT_MAX_ARMS 62

/** One arm: its name, the version it serves and its share of the slots in basis points. */
typedef struct st_recd_control_arm_t {
    char name[65];
    uint64_t version;
    uint32_t weight;
} recd_control_arm_t;

/** When a canary arm is rolled back automatically (judged against the control arm). */
typedef struct st_recd_control_guardrails_t {
    char canary[65], control[65];
    double max_error_rate_delta, max_p99_ratio, alpha;
    uint64_t min_requests, min_events;
    int enabled;
} recd_control_guardrails_t;

/** One experiment: salt, arms, the versioned slot table (slots[i] is an arm index) and its guardrails and status. */
typedef struct st_recd_control_experiment_t {
    char id[65];
    char salt[129];
    int enabled;
    uint64_t table_version;
    size_t n_arms;
    recd_control_arm_t arms[RECD_EXPERIMENT_MAX_ARMS];
    uint8_t slots[RECD_EXPERIMENT_SLOTS];
    recd_control_guardrails_t guardrails;
    int rolled_back;
    char reason[256];
    double changed_at;
} recd_control_experiment_t;

/** The whole control state of one model. Arrays are heap memory owned by the struct (recd_control_dispose). */
typedef struct st_recd_control_t {
    uint64_t generation, active;
    uint64_t *history; /* previous active versions, most recent last: rollback pops */
    size_t n_history;
    uint64_t *pins;
    size_t n_pins;
    recd_control_experiment_t *experiments;
    size_t n_experiments;
    void *_extra; /* unknown members, kept on rewrite */
} recd_control_t;

/**
 * Reads <registry>/<model>/control.json into out (zeroed first). Returns RECD_OK, RECD_ENOTFOUND when there is no control
 * file, or RECD_EFORMAT with a message in err naming what is wrong (bad ids, weights not summing to 10,000, a slot table
 * that does not match the arms, ...). The caller disposes out in every case.
 */
int recd_control_read(const char *registry, const char *model, recd_control_t *out, char *err, size_t errlen);
/** Replaces the control file atomically (temp file, fsync, rename, fsync of the directory); changes no field. */
int recd_control_write(const char *registry, const char *model, const recd_control_t *c);
/**
 * Read-modify-write under an flock on <model>/.control.lock: reads the file (an empty state when there is none), calls
 * edit, and when edit returns 0 bumps generation and writes atomically; *new_generation (may be NULL) receives it. edit
 * returns 0 to write, or a negative RECD_E* code (with its message in err, which edit may fill) to abandon. It fsyncs:
 * never call it on an event loop.
 */
int recd_control_update(const char *registry, const char *model, int (*edit)(recd_control_t *c, void *data), void *data,
                        uint64_t *new_generation, char *err, size_t errlen);
/** Frees the arrays of c and zeroes it; accepts a zeroed struct. */
void recd_control_dispose(recd_control_t *c);

#endif
