/* control.h: the control file registry/<model>/control.json — active version, rollback history, pins and experiments.
 * TEMP: written from Contract 1 of notes/ISSUE8_PLAN.md so the admin API builds; the owner's ("versions") header replaces it. */
#ifndef RECD_REGISTRY_CONTROL_H
#define RECD_REGISTRY_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Slots of an experiment's slot table: hash(salt, user) picks one. */
#define RECD_EXPERIMENT_SLOTS 10000
/** Arms of one experiment at most (an arm index is one character of [0-9a-zA-Z] in the file). */
#define RECD_EXPERIMENT_MAX_ARMS 62

/** One arm: its name, the version of the model it serves, and its weight in basis points. */
typedef struct {
    char name[65];
    uint64_t version;
    uint32_t weight;
} recd_control_arm_t;

/** The canary guardrails of an experiment. */
typedef struct {
    char canary[65], control[65];
    double max_error_rate_delta, max_p99_ratio, alpha;
    uint64_t min_requests, min_events;
    int enabled;
} recd_control_guardrails_t;

/** One experiment of a model. */
typedef struct {
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

/** A model's control state. */
typedef struct {
    uint64_t generation, active;
    uint64_t *history;
    size_t n_history;
    uint64_t *pins;
    size_t n_pins;
    recd_control_experiment_t *experiments;
    size_t n_experiments;
    void *_extra;
} recd_control_t;

/**
 * Reads <registry>/<model>/control.json. RECD_ENOTFOUND without a file; RECD_EFORMAT + message when malformed (ids
 * [A-Za-z0-9_-]{1,64}, weights sum 10000, slots consistent with n_arms ...).
 */
int recd_control_read(const char *registry, const char *model, recd_control_t *out, char *err, size_t errlen);
/** Writes c atomically; bumps nothing. */
int recd_control_write(const char *registry, const char *model, const recd_control_t *c);
/**
 * Read-modify-write under an flock on <model>/.control.lock, generation += 1, atomic write. Used by the admin API,
 * recdctl's server side and the guardrail; never call it on an event loop (it fsyncs).
 */
int recd_control_update(const char *registry, const char *model, int (*edit)(recd_control_t *c, void *data), void *data,
                        uint64_t *new_generation, char *err, size_t errlen);
/** Frees what read allocated. */
void recd_control_dispose(recd_control_t *c);

#ifdef __cplusplus
}
#endif

#endif
