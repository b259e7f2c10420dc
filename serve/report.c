/* report.c: the experiment report — per arm counts, CTR with Wilson intervals, lift with z and sequential tests, SRM. */
#include <math.h>
#include <string.h>
#include "models/stats.h"
#include "serve/experiments.h"
#include "serve/serve_internal.h"

size_t recd_serve_control_arm(const recd_control_experiment_t *e)
{
    for (size_t i = 0; i < e->n_arms; ++i)
        if (e->guardrails.control[0] != '\0' && strcmp(e->arms[i].name, e->guardrails.control) == 0)
            return i;
    return 0;
}

recd_metric_t *recd_serve_rollbacks_metric(recd_serve_t *s, const char *model, const char *experiment)
{
    recd_jw_t labels;
    recd_jw_init(&labels, NULL, NULL, 128);
    recd_serve_label_experiment(&labels, model, experiment);
    recd_jw_lit(&labels, "\0");
    recd_metric_t *m = recd_metrics_counter(s->metrics, "recd_experiment_rollbacks_total",
                                            "Canaries rolled back by their guardrails.", labels.buf);
    recd_jw_dispose(&labels);
    return m;
}

/* A finite double, or null (JSON has no NaN or infinity). */
static void number_or_null(recd_jw_t *out, double v)
{
    if (isfinite(v))
        recd_jw_double(out, v);
    else
        recd_jw_lit(out, "null");
}

static double ratio(uint64_t num, uint64_t den)
{
    return den > 0 ? (double)num / (double)den : NAN;
}

static void key(recd_jw_t *out, const char *k)
{
    recd_jw_lit(out, ",\"");
    recd_jw_raw(out, k, strlen(k));
    recd_jw_lit(out, "\":");
}

int recd_serve_experiment_report(recd_serve_t *s, const char *model, const recd_control_experiment_t *e, recd_jw_t *out)
{
    recd_serve_arm_counts_t counts[RECD_EXPERIMENT_MAX_ARMS];
    uint64_t observed[RECD_EXPERIMENT_MAX_ARMS];
    uint32_t weights[RECD_EXPERIMENT_MAX_ARMS];
    size_t control = recd_serve_control_arm(e),
           n_arms = e->n_arms < RECD_EXPERIMENT_MAX_ARMS ? e->n_arms : RECD_EXPERIMENT_MAX_ARMS;

    for (size_t i = 0; i < n_arms; ++i) {
        recd_serve_arm_counts(s, model, e, i, &counts[i]);
        observed[i] = counts[i].table_requests;
        weights[i] = e->arms[i].weight;
    }
    recd_jw_lit(out, "{\"experiment\":");
    recd_jw_str(out, e->id, strlen(e->id));
    key(out, "model");
    recd_jw_str(out, model, strlen(model));
    key(out, "enabled");
    recd_jw_raw(out, e->enabled ? "true" : "false", e->enabled ? 4 : 5);
    key(out, "status");
    recd_jw_raw(out, e->rolled_back ? "\"rolled_back\"" : "\"running\"", e->rolled_back ? 13 : 9);
    key(out, "reason");
    if (e->reason[0] != '\0')
        recd_jw_str(out, e->reason, strlen(e->reason));
    else
        recd_jw_lit(out, "null");
    key(out, "changed_at");
    number_or_null(out, e->changed_at > 0 ? e->changed_at : NAN);
    key(out, "table_version");
    recd_jw_u64(out, e->table_version);
    key(out, "control");
    if (n_arms > 0)
        recd_jw_str(out, e->arms[control].name, strlen(e->arms[control].name));
    else
        recd_jw_lit(out, "null");
    /* whether the counts add up every replica's (the shared Redis hashes answered) or are this process's alone */
    key(out, "counts");
    const char *scope = n_arms > 0 && counts[0].all_replicas ? "\"all_replicas\"" : "\"this_replica\"";
    recd_jw_raw(out, scope, strlen(scope));
    key(out, "rollbacks");
    recd_jw_u64(out, recd_metric_value(recd_serve_rollbacks_metric(s, model, e->id)));
    key(out, "arms");
    recd_jw_lit(out, "[");
    for (size_t i = 0; i < n_arms; ++i) {
        const recd_serve_arm_counts_t *c = &counts[i], *k = &counts[control];
        double lo, hi, ctr = ratio(c->clicks, c->impressions), control_ctr = ratio(k->clicks, k->impressions);
        if (i > 0)
            recd_jw_lit(out, ",");
        recd_jw_lit(out, "{\"name\":");
        recd_jw_str(out, e->arms[i].name, strlen(e->arms[i].name));
        key(out, "version");
        recd_jw_u64(out, e->arms[i].version);
        key(out, "weight");
        recd_jw_u64(out, e->arms[i].weight);
        key(out, "requests");
        recd_jw_u64(out, c->requests);
        key(out, "errors");
        recd_jw_u64(out, c->errors);
        key(out, "error_rate");
        number_or_null(out, ratio(c->errors, c->requests));
        key(out, "p99_seconds");
        number_or_null(out, c->p99_seconds);
        key(out, "impressions");
        recd_jw_u64(out, c->impressions);
        key(out, "clicks");
        recd_jw_u64(out, c->clicks);
        key(out, "conversions");
        recd_jw_u64(out, c->conversions);
        key(out, "ctr");
        number_or_null(out, ctr);
        key(out, "ctr_ci95");
        /* clicks may exceed impressions (a client sending many clicks per answer): the interval needs a proportion */
        recd_stats_wilson(c->clicks < c->impressions ? c->clicks : c->impressions, c->impressions, RECD_STATS_Z95, &lo, &hi);
        recd_jw_lit(out, "[");
        recd_jw_double(out, lo);
        recd_jw_lit(out, ",");
        recd_jw_double(out, hi);
        recd_jw_lit(out, "]");
        key(out, "conversion_rate");
        number_or_null(out, ratio(c->conversions, c->impressions));
        key(out, "lift");
        number_or_null(out, i != control && control_ctr > 0 ? ctr / control_ctr - 1.0 : NAN);
        key(out, "p_value");
        number_or_null(out, i != control ? recd_stats_two_proportion_p(k->clicks, k->impressions, c->clicks, c->impressions, NULL)
                                         : NAN);
        key(out, "sequential_p_value");
        number_or_null(out, i != control
                                ? recd_stats_msprt_p(k->clicks, k->impressions, c->clicks, c->impressions, RECD_STATS_MSPRT_TAU2)
                                : NAN);
        recd_jw_lit(out, "}");
    }
    double chi2, p = recd_stats_srm_p(observed, weights, n_arms, &chi2);
    recd_jw_lit(out, "],\"srm\":{\"table_version\":");
    recd_jw_u64(out, e->table_version);
    key(out, "chi2");
    number_or_null(out, chi2);
    key(out, "p_value");
    recd_jw_double(out, p);
    key(out, "flagged");
    recd_jw_raw(out, p < RECD_STATS_SRM_ALPHA ? "true" : "false", p < RECD_STATS_SRM_ALPHA ? 4 : 5);
    recd_jw_lit(out, "}}");
    return 0;
}
