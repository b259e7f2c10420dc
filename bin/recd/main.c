/* main.c: the recd executable — configuration, model catalog, worker threads, registry watcher and signal handling. */
#include <cblas.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "base/text.h"
#include "config/options.h"
#include "models/bf16_tiles.h"
#include "models/scan.h"
#include "api/api.h"
#include "bin/recd/workers.h"
#include "serve/experiments.h"
#include "serve/score_pool.h"
#include "store/file_sink.h"
#include "store/kafka_sink.h"
#include "store/redis_store.h"

extern char **environ;

/* Set by OpenBLAS' own header on most builds; declared here for the ones that do not. */
char *openblas_get_corename(void);
char *openblas_get_config(void);
void openblas_set_num_threads(int num_threads);

static size_t online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* recd_blas_info{core="...",config="..."} 1: which OpenBLAS kernel this process runs. */
static void register_blas_info(recd_metrics_t *metrics, const char *core, const char *config)
{
    recd_jw_t labels;
    recd_jw_init(&labels, NULL, NULL, 256);
    recd_jw_lit(&labels, "core=\"");
    recd_metrics_label_value(&labels, core, strlen(core));
    recd_jw_lit(&labels, "\",config=\"");
    recd_metrics_label_value(&labels, config, strlen(config));
    recd_jw_lit(&labels, "\"");
    recd_jw_raw(&labels, "", 1); /* NUL */
    recd_metric_set(
        recd_metrics_gauge(metrics, "recd_blas_info", "The OpenBLAS kernel (core) and build of this process.", labels.buf), 1);
    recd_jw_dispose(&labels);
}

/* OpenBLAS kernels built for AVX2 (or wider). Debian's DYNAMIC_ARCH build has been seen to pick an SSE3 one (Prescott) on
 * CPUs it does not know, 2-3x slower. */
static int is_avx2_core(const char *core)
{
    static const char *const cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator"};
    for (size_t i = 0; i < sizeof(cores) / sizeof(cores[0]); ++i)
        if (strcasecmp(core, cores[i]) == 0)
            return 1;
    return 0;
}

/*
 * The defaults never run a generic OpenBLAS kernel on a CPU with AVX2. OpenBLAS reads OPENBLAS_CORETYPE once, when it is
 * loaded (before main), so setting it now changes nothing for this process: when the user has not set it and the kernel
 * chosen is not an AVX2 one although the CPU has AVX2 and FMA, recd sets it and executes itself again, once (the variable
 * is then set). Returns only when nothing had to change, or when the exec failed (then recd runs with the kernel it got).
 */
static void ensure_avx2_blas_core(char **argv, const recd_logger_t *log)
{
    const char *core = openblas_get_corename();
    if (getenv("OPENBLAS_CORETYPE") != NULL || is_avx2_core(core))
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return;
    const char *want = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
                           ? "SkylakeX"
                           : "Haswell";
    char q1[128], q2[64];
    recd_log(log, RECD_LOG_WARN, "OpenBLAS chose a generic kernel on an AVX2 CPU: restarting with OPENBLAS_CORETYPE set",
             "\"openblas_core\":%s,\"openblas_coretype\":%s", recd_json_quote(q1, sizeof(q1), core, strlen(core)),
             recd_json_quote(q2, sizeof(q2), want, strlen(want)));
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    recd_log(log, RECD_LOG_ERROR, "cannot execute recd again; running with the generic kernel", "\"errno\":%d", errno);
}

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
    /* before any thread starts and before anything calls BLAS */
    ensure_avx2_blas_core(argv, &(recd_logger_t){level, STDERR_FILENO});
    /* signals are taken by sigwait on this thread only: block them before any thread starts
     * (the catalog loader and the event log's writer start their threads below and inherit the mask) */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    app.config = &config;
    app.log = (recd_logger_t){level, STDERR_FILENO};
    app.n_workers = config.threads > 0 ? config.threads : online_cpus();

    /* signals are taken by sigwait on this thread only: block them before any thread starts (the event sink's writer and
     * the admin thread start below; a SIGTERM that one of them took while this thread is not in sigwait kills the process) */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* the worker threads are the parallelism: BLAS inside a request stays single-threaded */
    openblas_set_num_threads(1);
    recd_bf16_tiles_set_enabled(config.bf16_tiles);
    recd_log(&app.log, RECD_LOG_INFO, "starting",
             "\"version\":\"%s\",\"openblas_core\":%s,\"openblas_config\":%s,\"scan_kernel\":\"%s\",\"bf16_tiles\":%s,\"pid\":%d",
             RECD_VERSION, recd_json_quote(q1, sizeof(q1), openblas_get_corename(), strlen(openblas_get_corename())),
             recd_json_quote(q2, sizeof(q2), openblas_get_config(), strlen(openblas_get_config())), recd_scan_kernel(),
             recd_bf16_tiles_enabled() ? "true" : "false", (int)getpid());

    app.metrics = recd_metrics_create(app.n_workers);
    register_blas_info(app.metrics, openblas_get_corename(), openblas_get_config());
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
                              .store_written_by_updater = config.redis[0] != '\0' && config.kafka[0] != '\0',
                              .score_threads = config.score_threads > 0 ? config.score_threads : (uint32_t)online_cpus(),
                              .score_batch_max = config.score_batch_max,
                              .score_batch_window_us = config.score_batch_window_us,
                              .score_queue_max = config.score_queue_max,
                              /* a scan costs about a quarter of a ns per item x factor on one core: waiting at most a
                               * sixteenth of one scan lets 1M x 64 gather for 1 ms while MovieLens 100K waits 2 µs */
                              .score_window_cost_scale = 64000,
                              .score_inline_max = config.score_inline_max,
                              .approximate = strcmp(config.search, "approximate") == 0};
    if ((app.serve = recd_serve_create(&sc, app.store, app.metrics, &app.log)) == NULL) {
        recd_log(&app.log, RECD_LOG_ERROR, "cannot start the scoring threads", "%s", "");
        fprintf(stderr, "recd: cannot start the scoring threads\n");
        goto Exit;
    }
    if (shared_counters != NULL)
        recd_serve_share_counters(app.serve, shared_counters); /* experiment reports add up every replica's traffic */
    recd_log(&app.log, RECD_LOG_INFO, "scoring pool", "\"threads\":%u,\"batch_max\":%u,\"window_us\":%u,\"queue_max\":%u",
             recd_score_pool_config(recd_serve_pool(app.serve))->threads,
             recd_score_pool_config(recd_serve_pool(app.serve))->batch_max,
             recd_score_pool_config(recd_serve_pool(app.serve))->window_us,
             recd_score_pool_config(recd_serve_pool(app.serve))->queue_max);
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
