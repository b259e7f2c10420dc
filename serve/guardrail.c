/* guardrail.c: canary verdicts from arm counters, and the control-file edit that rolls a canary back. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "base/error.h"
#include "models/experiment.h"
#include "models/stats.h"
#include "serve/experiments.h"

static void say(char *reason, size_t len, const char *fmt, double a, double b, double c)
{
    if (reason != NULL && len > 0)
        snprintf(reason, len, fmt, a, b, c);
}

recd_serve_verdict_t recd_serve_guardrail_judge(const recd_control_guardrails_t *g, const recd_serve_arm_counts_t *control,
                                                const recd_serve_arm_counts_t *canary, char *reason, size_t reason_len)
{
    uint64_t min_requests = g->min_requests > 0 ? g->min_requests : 1;
    if (control->requests < min_requests || canary->requests < min_requests) {
        say(reason, reason_len, "too few requests to judge (control %.0f, canary %.0f, need %.0f)", (double)control->requests,
            (double)canary->requests, (double)min_requests);
        return RECD_SERVE_HOLD;
    }
    double control_errors = (double)control->errors / (double)control->requests;
    double canary_errors = (double)canary->errors / (double)canary->requests;
    if (canary_errors - control_errors > g->max_error_rate_delta) {
        say(reason, reason_len, "error rate %.4f exceeds control's %.4f by more than %.4f", canary_errors, control_errors,
            g->max_error_rate_delta);
        return RECD_SERVE_ROLLBACK;
    }
    /* a p99 beyond the last bucket is larger than any finite one; two of them cannot be compared */
    if (g->max_p99_ratio > 0 && !isnan(canary->p99_seconds) && !isnan(control->p99_seconds) &&
        !(isinf(canary->p99_seconds) && isinf(control->p99_seconds)) &&
        canary->p99_seconds > control->p99_seconds * g->max_p99_ratio) {
        say(reason, reason_len, "p99 latency %gs exceeds %g times control's %gs", canary->p99_seconds, g->max_p99_ratio,
            control->p99_seconds);
        return RECD_SERVE_ROLLBACK;
    }
    uint64_t control_events = control->clicks + control->conversions, canary_events = canary->clicks + canary->conversions;
    if (control_events < g->min_events || canary_events < g->min_events) {
        say(reason, reason_len, "too few events to judge CTR (control %.0f, canary %.0f, need %.0f)", (double)control_events,
            (double)canary_events, (double)g->min_events);
        return RECD_SERVE_HOLD;
    }
    double control_ctr = control->impressions ? (double)control->clicks / (double)control->impressions : 0.0;
    double canary_ctr = canary->impressions ? (double)canary->clicks / (double)canary->impressions : 0.0;
    double p =
        recd_stats_msprt_p(control->clicks, control->impressions, canary->clicks, canary->impressions, RECD_STATS_MSPRT_TAU2);
    if (canary_ctr < control_ctr && p < g->alpha) {
        say(reason, reason_len, "CTR %.4f is significantly below control's %.4f (sequential p %.2g)", canary_ctr, control_ctr, p);
        return RECD_SERVE_ROLLBACK;
    }
    say(reason, reason_len, "no guardrail crossed (sequential p %.2g, error rates %.4f vs %.4f)", p, canary_errors, control_errors);
    return RECD_SERVE_PASS;
}

static int find_arm(const recd_control_experiment_t *e, const char *name)
{
    for (size_t i = 0; i < e->n_arms; ++i)
        if (strcmp(e->arms[i].name, name) == 0)
            return (int)i;
    return -1;
}

int recd_serve_rollback_edit(recd_control_t *c, void *data)
{
    const recd_serve_rollback_t *rb = data;
    recd_control_experiment_t *e = NULL;
    uint32_t old_w[RECD_EXPERIMENT_MAX_ARMS], new_w[RECD_EXPERIMENT_MAX_ARMS];

    for (size_t i = 0; i < c->n_experiments && e == NULL; ++i)
        if (strcmp(c->experiments[i].id, rb->experiment) == 0)
            e = &c->experiments[i];
    if (e == NULL)
        return RECD_ENOTFOUND;
    if (e->rolled_back)
        return RECD_EEXIST;
    int canary = find_arm(e, e->guardrails.canary);
    int control = e->guardrails.control[0] != '\0' ? find_arm(e, e->guardrails.control) : 0;
    if (canary < 0 || control < 0 || canary == control || e->n_arms > RECD_EXPERIMENT_MAX_ARMS)
        return RECD_ENOTFOUND;
    for (size_t i = 0; i < e->n_arms; ++i)
        old_w[i] = new_w[i] = e->arms[i].weight;
    new_w[control] += new_w[canary];
    new_w[canary] = 0;
    if (recd_experiment_rebalance(e->slots, old_w, new_w, e->n_arms) < 0)
        return RECD_EINVAL;
    for (size_t i = 0; i < e->n_arms; ++i)
        e->arms[i].weight = new_w[i];
    e->table_version += 1;
    e->rolled_back = 1;
    snprintf(e->reason, sizeof(e->reason), "%s", rb->reason);
    e->changed_at = rb->now;
    return 0;
}
