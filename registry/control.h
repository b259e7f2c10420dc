/* control.h: the control file registry/<model>/control.json (schema v1) — active version, history, pins, experiments.
 * TEMP: written from Contract 1 of notes/ISSUE8_PLAN.md so "experiments" builds before "versions" lands; drop at merge. */
#ifndef RECD_REGISTRY_CONTROL_H
#define RECD_REGISTRY_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define RECD_EXPERIMENT_SLOTS 10000
#define RECD_EXPERIMENT_MAX_ARMS 62

/** One arm of an experiment; weight in basis points. */
typedef struct {
    char name[65];
    uint64_t version;
    uint32_t weight;
} recd_control_arm_t;

/** The guardrails of a canary experiment. */
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

/** The parsed control file of one model. */
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

/** Reads the control file; RECD_ENOTFOUND without a file, RECD_EFORMAT with a message when malformed. */
int recd_control_read(const char *registry, const char *model, recd_control_t *out, char *err, size_t errlen);
/** Writes the control file atomically; bumps nothing. */
int recd_control_write(const char *registry, const char *model, const recd_control_t *c);
/** Read-modify-write under an flock on <model>/.control.lock, generation += 1, atomic write. Never on an event loop. */
int recd_control_update(const char *registry, const char *model, int (*edit)(recd_control_t *c, void *data), void *data,
                        uint64_t *new_generation, char *err, size_t errlen);
/** Frees what recd_control_read allocated. */
void recd_control_dispose(recd_control_t *c);

#endif
