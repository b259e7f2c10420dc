/* main.c: the recd executable — configuration, model catalog, worker threads, registry watcher and signal handling. */
#include <cblas.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/text.h"
#include "config/options.h"
#include "api/api.h"
#include "bin/recd/workers.h"
#include "serve/experiments.h"
#include "store/file_sink.h"
#include "store/kafka_sink.h"
#include "store/redis_store.h"

extern char **environ;

/* Set by OpenBLAS' own header on most builds; declared here for the ones that do not. */
char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);

#define GRACE_MS 2000
#define SHARED_COUNTERS_TIMEOUT_MS 200       /* a flush or a report's read; never on a worker's loop */
#define EVENT_QUEUE_BYTES ((size_t)64 << 20) /* events accepted but not yet written; beyond it POST /v1/events answers 503 */

int main(int argc, char **argv)
{
    recd_config_t config;
    recd_app_t app = {0};
    recd_workers_t *workers = NULL;
    recd_shared_counters_t *shared_counters = NULL;
    h2o_globalconf_t conf;
    char err[1024], q1[1100], q2[300];
    int want_help = 0, ret = 1, level, sig;
    uint16_t port, bound_port;
    char host[256];
    sigset_t sigs;

    recd_config_init(&config);
    if (recd_config_parse(&config, argc, argv, environ, &want_help, err, sizeof(err)) != RECD_OK) {
        fprintf(stderr, "recd: %s\n", err);
        goto Exit;
    }
    if (want_help) {
        recd_config_print_help(stdout, argv[0]);
        ret = 0;
        goto Exit;
    }
    if ((level = recd_log_parse_level(config.log_level)) < 0 ||
        recd_config_parse_listen(config.listen, host, sizeof(host), &port) != RECD_OK) {
        fprintf(stderr, "recd: invalid log_level or listen address\n");
        goto Exit;
    }
    /* signals are taken by sigwait on this thread only: block them before any thread starts
     * (the catalog loader and the event log's writer start their threads below and inherit the mask) */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    app.config = &config;
    app.log = (recd_logger_t){level, STDERR_FILENO};
    app.n_workers = config.threads > 0 ? config.threads : (size_t)sysconf(_SC_NPROCESSORS_ONLN);
    if (app.n_workers < 1)
        app.n_workers = 1;

    /* signals are taken by sigwait on this thread only: block them before any thread starts (the event sink's writer and
     * the admin thread start below; a SIGTERM that one of them took while this thread is not in sigwait kills the process) */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* the worker threads are the parallelism: BLAS inside a request stays single-threaded */
    openblas_set_num_threads(1);
    recd_log(&app.log, RECD_LOG_INFO, "starting", "\"version\":\"%s\",\"openblas_core\":%s,\"pid\":%d", RECD_VERSION,
             recd_json_quote(q1, sizeof(q1), openblas_get_corename(), strlen(openblas_get_corename())), (int)getpid());

    app.metrics = recd_metrics_create(app.n_workers);
    size_t n_models;
    char **models = recd_options_list_items(config.model, &n_models);
    app.catalog = recd_catalog_loader_create(config.registry, (const char *const *)models, n_models, config.max_loaded_bytes,
                                             &app.log, app.metrics, err, sizeof(err));
    free(models);
    if (app.catalog == NULL) {
        recd_log(&app.log, RECD_LOG_ERROR, "cannot load a model", "\"error\":%s",
                 recd_json_quote(q1, sizeof(q1), err, strlen(err)));
        fprintf(stderr, "recd: cannot load a model: %s\n", err);
        goto Exit;
    }
    if (config.redis[0] != '\0') {
        char redis_host[256];
        recd_redis_config_t rc = {.host = redis_host,
                                  .timeout_ms = config.redis_timeout_ms,
                                  .vec_ttl_s = config.redis_vec_ttl_s,
                                  .recent_ttl_s = config.redis_recent_ttl_s,
                                  .max_recent = config.max_recent_items};
        if (recd_config_parse_listen(config.redis, redis_host, sizeof(redis_host), &rc.port) != RECD_OK) {
            fprintf(stderr, "recd: invalid redis address\n");
            goto Exit;
        }
        app.store = recd_redis_store_create(&rc, app.metrics, &app.log);
        app.redis = 1;
        shared_counters = recd_shared_counters_create(redis_host, rc.port, SHARED_COUNTERS_TIMEOUT_MS, &app.log);
        recd_log(&app.log, RECD_LOG_INFO, "user state in redis", "\"redis\":%s,\"timeout_ms\":%u",
                 recd_json_quote(q1, sizeof(q1), config.redis, strlen(config.redis)), config.redis_timeout_ms);
    } else {
        app.store = recd_memory_store_create(config.max_recent_items, config.max_users, app.metrics);
    }
    /* with Redis and Kafka both configured, recd-updater is the one writer of user state: it folds events from the topic */
    recd_serve_config_t sc = {.max_k = config.max_k,
                              .store_written_by_updater = config.redis[0] != '\0' && config.kafka[0] != '\0'};
    app.serve = recd_serve_create(&sc, app.store, app.metrics, &app.log);
    if (shared_counters != NULL)
        recd_serve_share_counters(app.serve, shared_counters); /* experiment reports add up every replica's traffic */
    if (config.kafka[0] != '\0') {
        recd_kafka_sink_config_t kc = {.brokers = config.kafka, .wal_dir = config.wal_dir, .wal_max_bytes = config.wal_max_bytes};
        app.events = recd_kafka_sink_open(&kc, app.metrics, &app.log, err, sizeof(err));
    } else if ((app.events = recd_file_sink_open(config.events_path, config.events_fsync, EVENT_QUEUE_BYTES, err, sizeof(err))) !=
               NULL) {
        recd_file_sink_use_metrics(app.events, app.metrics);
    }
    if (app.events == NULL) {
        recd_log(&app.log, RECD_LOG_ERROR, "cannot open the event log", "\"error\":%s",
                 recd_json_quote(q1, sizeof(q1), err, strlen(err)));
        fprintf(stderr, "recd: %s\n", err);
        goto Exit;
    }

    h2o_config_init(&conf);
    /* h2o answers bodies over its own limit with a plain-text 413; keep it well above ours so we answer in JSON */
    conf.max_request_entity_size = config.max_body_bytes * 4 + 65536;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    app.api = recd_api_create(&config, &app.log, app.metrics, app.serve, app.events);
    if (recd_api_enable_control(app.api, app.catalog, err, sizeof(err)) != RECD_OK) {
        fprintf(stderr, "recd: JWT key: %s\n", err);
        h2o_config_dispose(&conf);
        goto Exit;
    }
    recd_api_register(hostconf, app.api);

    if ((workers = recd_workers_start(&app, &conf, host, port, &bound_port, err, sizeof(err))) == NULL) {
        recd_log(&app.log, RECD_LOG_ERROR, "cannot listen", "\"error\":%s", recd_json_quote(q1, sizeof(q1), err, strlen(err)));
        fprintf(stderr, "recd: %s\n", err);
        h2o_config_dispose(&conf);
        goto Exit;
    }
    recd_log(&app.log, RECD_LOG_INFO, "listening", "\"addr\":%s,\"port\":%u,\"threads\":%zu",
             recd_json_quote(q2, sizeof(q2), host, strlen(host)), bound_port, app.n_workers);
    if (recd_catalog_loader_start(app.catalog, config.reload_interval_ms) != 0)
        recd_log(&app.log, RECD_LOG_ERROR, "cannot start the registry watcher; new versions will not be loaded", "%s", "");
    /* canary guardrails judge every second and roll back through control.json */
    recd_serve_guardrail_t *guardrail = recd_serve_guardrail_start(app.serve, app.catalog, config.registry, 1000);
    if (guardrail == NULL)
        recd_log(&app.log, RECD_LOG_ERROR, "cannot start the guardrail thread; canaries will not be rolled back", "%s", "");

    while (sigwait(&sigs, &sig) != 0)
        ;
    recd_log(&app.log, RECD_LOG_INFO, "stopping", "\"signal\":\"%s\"", sig == SIGINT ? "SIGINT" : "SIGTERM");
    recd_serve_guardrail_stop(guardrail);
    recd_catalog_loader_stop(app.catalog);
    recd_workers_stop(workers, GRACE_MS);
    recd_serve_flush_counters(app.serve); /* the last requests' counts, once nothing serves any more */
    h2o_config_dispose(&conf);
    recd_log(&app.log, RECD_LOG_INFO, "stopped", "%s", "");
    ret = 0;

Exit:
    recd_event_sink_free(app.events);
    recd_api_free(app.api);
    recd_serve_free(app.serve);
    recd_feature_store_free(app.store);
    recd_shared_counters_free(shared_counters);
    recd_catalog_loader_free(app.catalog);
    recd_metrics_free(app.metrics);
    recd_config_dispose(&config);
    return ret;
}
