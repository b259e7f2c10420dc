/* guardrail_thread.c: the guardrail thread — judges guarded experiments every interval and writes rollbacks.
 *
 * DESIGN: the thread reads the loader's current snapshot (refcounted, immutable) and the process-wide arm counters
 * (atomics), so it shares nothing mutable with the workers. A rollback goes through recd_control_update (flock, fsync,
 * rename): slow, and exactly why it runs here and never on an event loop. The workers see the new slot table when the
 * catalog loader publishes the rewritten control file; until then the snapshot still says "running" and the edit, finding
 * the file rolled back already, writes nothing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/text.h"
#include "serve/experiments.h"
#include "serve/serve_internal.h"

struct st_recd_serve_guardrail_t {
    recd_serve_t *serve;
    recd_catalog_loader_t *loader;
    char *registry;
    uint32_t interval_ms;
    recd_metric_t *rounds;
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int stop;
};

static void judge(recd_serve_t *s, const char *model, const recd_control_experiment_t *e, const char *registry)
{
    recd_serve_arm_counts_t control, canary;
    char reason[256], err[256] = "", qmodel[160], qexp[160], qreason[600];
    int canary_arm = -1;

    for (size_t i = 0; i < e->n_arms; ++i)
        if (strcmp(e->arms[i].name, e->guardrails.canary) == 0)
            canary_arm = (int)i;
    size_t control_arm = recd_serve_control_arm(e);
    if (canary_arm < 0 || (size_t)canary_arm == control_arm)
        return;
    recd_serve_arm_counts(s, model, e, control_arm, &control);
    recd_serve_arm_counts(s, model, e, (size_t)canary_arm, &canary);
    if (recd_serve_guardrail_judge(&e->guardrails, &control, &canary, reason, sizeof(reason)) != RECD_SERVE_ROLLBACK)
        return;
    recd_serve_rollback_t rb = {e->id, reason, recd_realtime_seconds()};
    uint64_t generation = 0;
    int ret = recd_control_update(registry, model, recd_serve_rollback_edit, &rb, &generation, err, sizeof(err));
    recd_json_quote(qmodel, sizeof(qmodel), model, strlen(model));
    recd_json_quote(qexp, sizeof(qexp), e->id, strlen(e->id));
    recd_json_quote(qreason, sizeof(qreason), reason, strlen(reason));
    if (ret == 0) {
        recd_metric_add(recd_serve_rollbacks_metric(s, model, e->id), RECD_METRICS_SHARED, 1);
        recd_log(s->log, RECD_LOG_WARN, "canary rolled back", "\"model\":%s,\"experiment\":%s,\"reason\":%s,\"generation\":%llu",
                 qmodel, qexp, qreason, (unsigned long long)generation);
    } else if (ret != RECD_EEXIST) {
        char qerr[600];
        recd_json_quote(qerr, sizeof(qerr), err[0] ? err : recd_strerror(ret), strlen(err[0] ? err : recd_strerror(ret)));
        recd_log(s->log, RECD_LOG_ERROR, "cannot roll the canary back", "\"model\":%s,\"experiment\":%s,\"reason\":%s,\"error\":%s",
                 qmodel, qexp, qreason, qerr);
    }
}

void recd_serve_guardrail_run_once(recd_serve_t *s, recd_catalog_t *snapshot, const char *registry)
{
    recd_serve_flush_counters(s); /* first, so the verdicts below judge every replica's traffic */
    size_t n_models = recd_catalog_n_models(snapshot);
    for (size_t mi = 0; mi < n_models; ++mi) {
        const char *model = recd_catalog_model_name(snapshot, mi);
        size_t n = 0;
        const recd_control_experiment_t *e = recd_catalog_experiments(snapshot, model, strlen(model), &n);
        for (size_t i = 0; i < n; ++i)
            if (e[i].enabled && !e[i].rolled_back && e[i].guardrails.enabled)
                judge(s, model, &e[i], registry);
    }
}

static void *run(void *arg)
{
    recd_serve_guardrail_t *g = arg;
    pthread_mutex_lock(&g->mutex);
    while (!g->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += g->interval_ms / 1000;
        until.tv_nsec += (long)(g->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec += 1, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cond, &g->mutex, &until);
        if (g->stop)
            break;
        pthread_mutex_unlock(&g->mutex);
        recd_catalog_t *snapshot = recd_catalog_loader_current(g->loader);
        if (snapshot != NULL)
            recd_serve_guardrail_run_once(g->serve, snapshot, g->registry);
        recd_catalog_release(snapshot);
        /* counted once the round is over: a watcher that reads n knows round n + 2 began after its read */
        recd_metric_add(g->rounds, RECD_METRICS_SHARED, 1);
        pthread_mutex_lock(&g->mutex);
    }
    pthread_mutex_unlock(&g->mutex);
    return NULL;
}

recd_serve_guardrail_t *recd_serve_guardrail_start(recd_serve_t *s, recd_catalog_loader_t *loader, const char *registry,
                                                   uint32_t interval_ms)
{
    recd_serve_guardrail_t *g = recd_xcalloc(1, sizeof(*g));
    g->serve = s;
    g->loader = loader;
    g->registry = recd_xstrdup(registry);
    g->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    g->rounds = recd_metrics_counter(s->metrics, "recd_experiment_guardrail_rounds_total",
                                     "Rounds of the guardrail thread (each judges every guarded experiment once).", NULL);
    pthread_mutex_init(&g->mutex, NULL);
    pthread_cond_init(&g->cond, NULL);
    if (pthread_create(&g->thread, NULL, run, g) != 0) {
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->mutex);
        free(g->registry);
        free(g);
        return NULL;
    }
    return g;
}

void recd_serve_guardrail_stop(recd_serve_guardrail_t *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->mutex);
    g->stop = 1;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->mutex);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->mutex);
    free(g->registry);
    free(g);
}
