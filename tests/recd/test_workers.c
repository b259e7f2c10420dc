/* test_workers.c: recd's worker threads in-process: SO_REUSEPORT listeners, snapshots by message and never back in time,
 * graceful stop with an idle keep-alive connection and with an event batch the sink has not answered yet. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "api/api.h"
#include "bin/recd/workers.h"
#include "serve/score_pool.h"
#include "store/feature_store.h"
#include "store/file_sink.h"
#include "tests/support/fixtures.h"
#include "tests/support/http.h"
#include "tests/support/net.h"

#define N_WORKERS 2
#define MODEL "demo"
#define TIMEOUT_S 20      /* receive timeout of the test's connections: a guard against hanging, not a measurement */
#define WAIT_ROUNDS 4000  /* bound on polls of 5 ms for something another thread does (a hang guard as well) */
#define STOP_GRACE_MS 100 /* grace of the stop with an event pending: it has to run out for the pending wait to matter */
#define QUEUE_MAX 3       /* the scoring queue's bound */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the workers' catalog subscriptions, recorded by linking with -Wl,--wrap=recd_catalog_loader_subscribe -------------- */

void __real_recd_catalog_loader_subscribe(recd_catalog_loader_t *l, recd_catalog_cb cb, void *data);
void __wrap_recd_catalog_loader_subscribe(recd_catalog_loader_t *l, recd_catalog_cb cb, void *data);

/* What recd_workers_start subscribed (on the test's thread): calling one is exactly what the loader's thread does. */
static struct {
    recd_catalog_cb cb;
    void *data;
} subscriptions[N_WORKERS];
static size_t n_subscriptions;

void __wrap_recd_catalog_loader_subscribe(recd_catalog_loader_t *l, recd_catalog_cb cb, void *data)
{
    if (n_subscriptions < N_WORKERS) {
        subscriptions[n_subscriptions].cb = cb;
        subscriptions[n_subscriptions].data = data;
    }
    ++n_subscriptions;
    __real_recd_catalog_loader_subscribe(l, cb, data);
}

/* ---- a gate that holds the event sink's writer thread in a callback, so batches queued behind it stay unanswered ------- */

typedef struct st_gate_t {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int closed; /* the held callback waits while set */
    int held;   /* the writer thread is in the callback */
} gate_t;

static void on_gate_answer(void *data, int err)
{
    gate_t *g = data;
    pthread_mutex_lock(&g->lock);
    g->held = 1;
    pthread_cond_broadcast(&g->cond);
    while (g->closed)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_open(gate_t *g)
{
    pthread_mutex_lock(&g->lock);
    g->closed = 0;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* ---- stopping on another thread, so the test can act while recd_workers_stop waits -------------------------------------- */

typedef struct st_stopper_t {
    pthread_t tid;
    recd_workers_t *workers;
    uint32_t grace_ms;
    pthread_mutex_t lock;
    int started, done;
} stopper_t;

static void *stopper_main(void *arg)
{
    stopper_t *s = arg;
    recd_workers_stop(s->workers, s->grace_ms);
    pthread_mutex_lock(&s->lock);
    s->done = 1;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static int stopper_done(stopper_t *s)
{
    pthread_mutex_lock(&s->lock);
    int done = s->done;
    pthread_mutex_unlock(&s->lock);
    return done;
}

/* Starts recd_workers_stop(*workers, grace_ms) on s's thread and takes *workers over. */
static void stopper_start(stopper_t *s, recd_workers_t **workers, uint32_t grace_ms)
{
    s->workers = *workers;
    s->grace_ms = grace_ms;
    *workers = NULL;
    assert_int_equal(pthread_create(&s->tid, NULL, stopper_main, s), 0);
    s->started = 1;
}

/* ---- the fixture: recd's parts wired as main wires them, two workers, a keep-alive connection on each ------------------- */

typedef struct st_fixture_t {
    char dir[256], registry[320], log_path[320], events_path[320];
    int log_fd;
    recd_config_t config;
    recd_app_t app;
    h2o_globalconf_t conf;
    recd_workers_t *workers; /* NULL once stopped or handed to the stopper */
    stopper_t stopper;       /* a stop running on its own thread; teardown joins it, also after a failed assertion */
    uint16_t port;
    int conns[N_WORKERS]; /* conns[i]: an open keep-alive connection that worker i accepted */
    gate_t gate;
} fixture_t;

/* One request on the open connection fd and its response; the connection stays open. */
static void exchange(int fd, const char *method, const char *path, const char *body, support_http_response_t *res)
{
    assert_int_equal(
        support_http_send(fd, method, path, body != NULL ? "application/json" : NULL, body, body != NULL ? strlen(body) : 0), 0);
    assert_int_equal(support_http_read_response(fd, res), 0);
}

/* The worker ("thread" of the request's debug log line) that answered the request for path, or -1 when not logged yet. */
static int logged_thread(const fixture_t *f, const char *path)
{
    FILE *fp = fopen(f->log_path, "r");
    char line[8192];
    int thread = -1;
    assert_non_null(fp);
    while (thread < 0 && fgets(line, sizeof(line), fp) != NULL) {
        json_t *j = json_loads(line, 0, NULL);
        const char *logged = json_string_value(json_object_get(j, "path"));
        if (logged != NULL && strcmp(logged, path) == 0 && json_is_integer(json_object_get(j, "thread")))
            thread = (int)json_integer_value(json_object_get(j, "thread"));
        json_decref(j);
    }
    fclose(fp);
    return thread;
}

static int log_contains(const fixture_t *f, const char *needle)
{
    FILE *fp = fopen(f->log_path, "r");
    char line[8192];
    int found = 0;
    assert_non_null(fp);
    while (!found && fgets(line, sizeof(line), fp) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(fp);
    return found;
}

/*
 * Opens connections until each worker has accepted one, and keeps that one per worker: a GET /healthz?connection=<n> on
 * each tells, by its debug log line, which worker answered. The kernel spreads connections over the SO_REUSEPORT listeners
 * by their source port, so 200 attempts all landing on one worker would mean one listener does not accept.
 */
static void connect_each_worker(fixture_t *f)
{
    size_t found = 0;
    for (int attempt = 0; attempt < 200 && found < N_WORKERS; ++attempt) {
        char path[64];
        support_http_response_t res;
        int fd = support_connect_loopback(f->port, TIMEOUT_S), thread, round;
        assert_true(fd >= 0);
        snprintf(path, sizeof(path), "/healthz?connection=%d", attempt);
        exchange(fd, "GET", path, NULL, &res);
        assert_int_equal(res.status, 200);
        json_t *j = json_loads(res.body, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
        assert_int_equal(json_integer_value(json_object_get(j, "pid")), getpid()); /* in-process: our own pid */
        json_decref(j);
        support_http_response_free(&res);
        /* the line is written right after the answer is sent: wait for it */
        for (round = 0; round < WAIT_ROUNDS && (thread = logged_thread(f, path)) < 0; ++round)
            sleep_ms(5);
        assert_in_range(thread, 0, N_WORKERS - 1);
        if (f->conns[thread] < 0) {
            f->conns[thread] = fd;
            ++found;
        } else {
            close(fd);
        }
    }
    assert_int_equal(found, N_WORKERS);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    const char *models[] = {MODEL};
    char err[256];

    assert_int_equal(support_tmpdir_create(f->dir, sizeof(f->dir), "recd-workers"), 0);
    snprintf(f->registry, sizeof(f->registry), "%s/registry", f->dir);
    snprintf(f->log_path, sizeof(f->log_path), "%s/recd.log", f->dir);
    snprintf(f->events_path, sizeof(f->events_path), "%s/events.jsonl", f->dir);
    assert_int_equal(support_fixture_publish(f->registry, MODEL, 0, 0), 1);
    assert_true((f->log_fd = open(f->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) >= 0);
    for (size_t i = 0; i < N_WORKERS; ++i)
        f->conns[i] = -1;
    pthread_mutex_init(&f->gate.lock, NULL);
    pthread_cond_init(&f->gate.cond, NULL);
    pthread_mutex_init(&f->stopper.lock, NULL);

    recd_config_init(&f->config);
    f->app.config = &f->config;
    f->app.log = (recd_logger_t){RECD_LOG_DEBUG, f->log_fd}; /* every request is logged with its worker */
    f->app.n_workers = N_WORKERS;
    f->app.metrics = recd_metrics_create(N_WORKERS);
    f->app.catalog = recd_catalog_loader_create(f->registry, models, 1, 0, &f->app.log, f->app.metrics, err, sizeof(err));
    assert_non_null(f->app.catalog);
    f->app.store = recd_memory_store_create(f->config.max_recent_items, f->config.max_users, f->app.metrics);
    /* scoring on a pool, as main sets it up: a small queue bound, so that a test can fill it */
    f->app.serve = recd_serve_create(
        &(recd_serve_config_t){.max_k = f->config.max_k, .score_threads = 2, .score_batch_max = 8, .score_queue_max = QUEUE_MAX},
        f->app.store, f->app.metrics, &f->app.log);
    assert_non_null(f->app.serve);
    f->app.events = recd_file_sink_open(f->events_path, 0, (size_t)1 << 20, err, sizeof(err));
    assert_non_null(f->app.events);
    recd_file_sink_use_metrics(f->app.events, f->app.metrics);

    h2o_config_init(&f->conf);
    /* an hour: only a graceful stop, never the idle timeout, closes an idle keep-alive connection during a test */
    f->conf.http1.req_timeout = 3600 * 1000;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&f->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    f->app.api = recd_api_create(&f->config, &f->app.log, f->app.metrics, f->app.serve, f->app.events);
    recd_api_register(hostconf, f->app.api);

    n_subscriptions = 0;
    f->workers = recd_workers_start(&f->app, &f->conf, "127.0.0.1", 0, &f->port, err, sizeof(err));
    assert_non_null(f->workers);
    assert_int_not_equal(f->port, 0);
    assert_int_equal(n_subscriptions, N_WORKERS); /* one subscription per worker */
    connect_each_worker(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    gate_open(&f->gate); /* a failed test may have left the sink's writer held */
    if (f->stopper.started)
        pthread_join(f->stopper.tid, NULL);
    pthread_mutex_destroy(&f->stopper.lock);
    if (f->workers != NULL)
        recd_workers_stop(f->workers, 1000);
    for (size_t i = 0; i < N_WORKERS; ++i)
        if (f->conns[i] >= 0)
            close(f->conns[i]);
    h2o_config_dispose(&f->conf);
    recd_event_sink_free(f->app.events);
    recd_api_free(f->app.api);
    recd_serve_free(f->app.serve);
    recd_feature_store_free(f->app.store);
    recd_catalog_loader_free(f->app.catalog);
    recd_metrics_free(f->app.metrics);
    recd_config_dispose(&f->config);
    close(f->log_fd);
    pthread_cond_destroy(&f->gate.cond);
    pthread_mutex_destroy(&f->gate.lock);
    support_remove_tree(f->dir);
    free(f);
    return 0;
}

/* GET recommendations on the open connection fd must answer 3 items; writes the "model" that served them to out. */
static void served_model(int fd, char *out, size_t outlen)
{
    support_http_response_t res;
    exchange(fd, "GET", "/v1/recommendations?user=u00&k=3", NULL, &res);
    assert_int_equal(res.status, 200);
    json_t *j = json_loads(res.body, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 3);
    assert_non_null(json_string_value(json_object_get(j, "model")));
    snprintf(out, outlen, "%s", json_string_value(json_object_get(j, "model")));
    json_decref(j);
    support_http_response_free(&res);
}

static void assert_served_by(int fd, const char *model)
{
    char served[64];
    served_model(fd, served, sizeof(served));
    assert_string_equal(served, model);
}

/* Publishes version 2, has the loader find it (on this thread, as its watcher would) and waits until every worker serves it. */
static void publish_version_2(fixture_t *f)
{
    char served[64];
    assert_int_equal(support_fixture_publish(f->registry, MODEL, 1, 0), 2);
    assert_int_equal(recd_catalog_loader_poll(f->app.catalog), 1);
    for (size_t i = 0; i < N_WORKERS; ++i) {
        /* the snapshot reaches each worker by message, at latest in the loop turn that answers the next request */
        int round = 0;
        do
            served_model(f->conns[i], served, sizeof(served));
        while (strcmp(served, MODEL "@2") != 0 && ++round < 100);
        assert_string_equal(served, MODEL "@2");
    }
}

static void test_workers_every_worker_serves(void **state)
{
    fixture_t *f = *state;
    support_http_response_t res;

    /* setup saw every worker answer /healthz on its own connection; each also serves recommendations */
    for (size_t i = 0; i < N_WORKERS; ++i) {
        assert_served_by(f->conns[i], MODEL "@1");
        assert_served_by(f->conns[i], MODEL "@1"); /* the connection stays with its worker, alive */
    }
    /* a new connection (Connection: close) is served as well */
    assert_int_equal(support_http_get(f->port, "/v1/recommendations?user=u10&k=2", &res), 0);
    assert_int_equal(res.status, 200);
    assert_non_null(strstr(res.body, "\"model\":\"" MODEL "@1\""));
    support_http_response_free(&res);
}

static void test_workers_new_version_reaches_every_worker(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(recd_catalog_loader_poll(f->app.catalog), 0); /* nothing new yet: nothing is sent */
    for (size_t i = 0; i < N_WORKERS; ++i)
        assert_served_by(f->conns[i], MODEL "@1");
    publish_version_2(f);
    for (size_t i = 0; i < N_WORKERS; ++i)
        assert_served_by(f->conns[i], MODEL "@2");
}

static void test_workers_ignore_an_older_snapshot(void **state)
{
    fixture_t *f = *state;
    recd_catalog_t *old = recd_catalog_loader_current(f->app.catalog), *current;

    publish_version_2(f);
    current = recd_catalog_loader_current(f->app.catalog);
    assert_true(recd_catalog_generation(old) < recd_catalog_generation(current));
    recd_catalog_release(current);

    /* a late message with the older snapshot, sent the way the loader sends one: each subscriber takes over a reference */
    for (size_t s = 0; s < N_WORKERS; ++s) {
        recd_catalog_retain(old);
        subscriptions[s].cb(subscriptions[s].data, old);
    }
    recd_catalog_release(old);
    /* the message is queued before the first request is sent, so it has been handled by the time that request is answered:
     * every answer from the second on would show a worker that went back in time */
    for (size_t i = 0; i < N_WORKERS; ++i)
        for (int r = 0; r < 3; ++r)
            assert_served_by(f->conns[i], MODEL "@2");
}

static void test_workers_stop_closes_idle_keepalive(void **state)
{
    fixture_t *f = *state;
    char byte;

    /* every connection is idle between requests; the grace period is longer than the connections' receive timeout */
    stopper_start(&f->stopper, &f->workers, 30000);
    for (size_t i = 0; i < N_WORKERS; ++i) {
        ssize_t n;
        while ((n = recv(f->conns[i], &byte, 1, 0)) < 0 && errno == EINTR)
            ;
        assert_int_equal(n, 0); /* closed by the worker (a timeout would be -1 with EAGAIN) */
    }
    pthread_join(f->stopper.tid, NULL);
    f->stopper.started = 0;
    assert_true(f->stopper.done);
    /* the listeners are closed too */
    int fd = support_connect_loopback(f->port, TIMEOUT_S);
    assert_int_equal(fd, -1);
    assert_false(log_contains(f, "connections still open after the grace period"));
}

static void test_workers_stop_answers_a_pending_event(void **state)
{
    fixture_t *f = *state;
    static const char gate_line[] = "{\"gate\":true}\n";
    static const char event[] = "{\"user\":\"pending-user\",\"item\":\"i00\",\"type\":\"click\"}";
    recd_file_sink_stats_t stats;
    support_http_response_t res;
    int round;

    /* hold the sink's writer in the answer of a batch of our own: the POST's batch queues behind it, unanswered */
    f->gate.closed = 1;
    assert_int_equal(recd_event_sink_append(f->app.events, gate_line, sizeof(gate_line) - 1, on_gate_answer, &f->gate), 0);
    pthread_mutex_lock(&f->gate.lock);
    while (!f->gate.held)
        pthread_cond_wait(&f->gate.cond, &f->gate.lock);
    pthread_mutex_unlock(&f->gate.lock);
    assert_int_equal(support_http_send(f->conns[0], "POST", "/v1/events", "application/json", event, strlen(event)), 0);
    for (round = 0; round < WAIT_ROUNDS; ++round) {
        recd_file_sink_stats(f->app.events, &stats);
        if (stats.queued_bytes > 0) /* the POST's batch is in the sink's queue */
            break;
        sleep_ms(5);
    }
    assert_true(stats.queued_bytes > 0);

    /* stop: the grace period runs out with the POST unanswered, and the worker must keep its loop for the answer */
    stopper_start(&f->stopper, &f->workers, STOP_GRACE_MS);
    for (round = 0; round < WAIT_ROUNDS && !log_contains(f, "waiting for the event log to answer") && !stopper_done(&f->stopper);
         ++round)
        sleep_ms(5);
    assert_false(stopper_done(&f->stopper)); /* a stop that returned with the batch unanswered left its answer nowhere to go */
    assert_true(log_contains(f, "waiting for the event log to answer"));
    gate_open(&f->gate);

    assert_int_equal(support_http_read_response(f->conns[0], &res), 0);
    assert_int_equal(res.status, 202);
    json_t *j = json_loads(res.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 1);
    json_decref(j);
    support_http_response_free(&res);
    pthread_join(f->stopper.tid, NULL);
    f->stopper.started = 0;
    assert_true(f->stopper.done);

    /* the answer was the truth: the event is in the log, after the gate's line */
    FILE *fp = fopen(f->events_path, "r");
    char line[1024];
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof(line), fp));
    assert_string_equal(line, gate_line);
    assert_non_null(fgets(line, sizeof(line), fp));
    assert_non_null(strstr(line, "\"user\":\"pending-user\""));
    fclose(fp);
    assert_false(log_contains(f, "connections still open after the grace period"));
}

/* Sends GET recommendations for a known user on a new connection and leaves the answer unread; returns the connection. */
static int send_recommendation(fixture_t *f, const char *user)
{
    char path[128];
    int fd = support_connect_loopback(f->port, TIMEOUT_S);
    assert_true(fd >= 0);
    snprintf(path, sizeof(path), "/v1/recommendations?user=%s&k=3", user);
    assert_int_equal(support_http_send(fd, "GET", path, NULL, NULL, 0), 0);
    return fd;
}

/* Reads the answer of a recommendation sent with send_recommendation: 200 with 3 items. Closes fd. */
static void expect_recommendation(int fd)
{
    support_http_response_t res;
    assert_int_equal(support_http_read_response(fd, &res), 0);
    assert_int_equal(res.status, 200);
    json_t *j = json_loads(res.body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "search")), "exact");
    json_decref(j);
    support_http_response_free(&res);
    close(fd);
}

static void wait_queued(recd_score_pool_t *pool, size_t n)
{
    for (int round = 0; round < WAIT_ROUNDS && recd_score_pool_queued(pool) < n; ++round)
        sleep_ms(5);
    assert_int_equal(recd_score_pool_queued(pool), n);
}

/* The value of the metrics line "name value" in the body of GET /metrics, or -1. */
static double metric_in(const char *body, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = body; line != NULL && *line != '\0'; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, len) == 0 && line[len] == ' ')
            return strtod(line + len + 1, NULL);
    return -1;
}

static void test_workers_scoring_pool_sheds_while_health_answers(void **state)
{
    fixture_t *f = *state;
    recd_score_pool_t *pool = recd_serve_pool(f->app.serve);
    support_http_response_t res;
    char retry_after[16];
    int waiting[QUEUE_MAX];

    /* the scoring threads take nothing: requests fill the queue to its bound, their connections waiting */
    recd_score_pool_hold(pool, 1000);
    for (size_t i = 0; i < QUEUE_MAX; ++i)
        waiting[i] = send_recommendation(f, i % 2 ? "u01" : "u10");
    wait_queued(pool, QUEUE_MAX);

    /* one more is refused at once, on either worker */
    for (size_t i = 0; i < N_WORKERS; ++i) {
        exchange(f->conns[i], "GET", "/v1/recommendations?user=u00&k=3", NULL, &res);
        assert_int_equal(res.status, 503);
        assert_non_null(support_http_header(&res, "Retry-After", retry_after, sizeof(retry_after)));
        assert_true(atoi(retry_after) >= 1);
        json_t *j = json_loads(res.body, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "overloaded");
        json_decref(j);
        support_http_response_free(&res);
    }
    /* health, readiness and metrics never wait for the pool; the popular fallback needs no scan */
    for (size_t i = 0; i < N_WORKERS; ++i) {
        exchange(f->conns[i], "GET", "/healthz", NULL, &res);
        assert_int_equal(res.status, 200);
        support_http_response_free(&res);
        exchange(f->conns[i], "GET", "/readyz", NULL, &res);
        assert_int_equal(res.status, 200);
        support_http_response_free(&res);
        exchange(f->conns[i], "GET", "/v1/recommendations?user=somebody-new&k=3", NULL, &res);
        assert_int_equal(res.status, 200);
        assert_non_null(strstr(res.body, "\"fallback\":\"popular\""));
        support_http_response_free(&res);
    }
    exchange(f->conns[0], "GET", "/metrics", NULL, &res);
    assert_int_equal(res.status, 200);
    assert_true(metric_in(res.body, "recd_score_queue_depth") == QUEUE_MAX);
    assert_true(metric_in(res.body, "recd_score_shed_total") == N_WORKERS);
    assert_true(metric_in(res.body, "recd_http_requests_total{endpoint=\"recommendations\",status=\"503\"}") == N_WORKERS);
    support_http_response_free(&res);

    /* let go: every waiting request is answered */
    recd_score_pool_hold(pool, 0);
    for (size_t i = 0; i < QUEUE_MAX; ++i)
        expect_recommendation(waiting[i]);
    wait_queued(pool, 0);
}

static void test_workers_stop_waits_for_a_pending_scan(void **state)
{
    fixture_t *f = *state;
    recd_score_pool_t *pool = recd_serve_pool(f->app.serve);
    int round;

    recd_score_pool_hold(pool, 1000);
    int fd = send_recommendation(f, "u01");
    wait_queued(pool, 1);
    /* stop: the grace period runs out with the scan queued, and its worker must keep its loop for the answer */
    stopper_start(&f->stopper, &f->workers, STOP_GRACE_MS);
    for (round = 0;
         round < WAIT_ROUNDS && !log_contains(f, "waiting for the scoring threads to answer") && !stopper_done(&f->stopper);
         ++round)
        sleep_ms(5);
    assert_false(stopper_done(&f->stopper));
    assert_true(log_contains(f, "waiting for the scoring threads to answer"));
    recd_score_pool_hold(pool, 0);
    expect_recommendation(fd);
    pthread_join(f->stopper.tid, NULL);
    f->stopper.started = 0;
    assert_true(f->stopper.done);
}

static void test_workers_client_gone_while_scan_queued(void **state)
{
    fixture_t *f = *state;
    recd_score_pool_t *pool = recd_serve_pool(f->app.serve);
    support_http_response_t res;

    recd_score_pool_hold(pool, 1000);
    int gone = send_recommendation(f, "u01"), stays = send_recommendation(f, "u10");
    wait_queued(pool, 2);
    close(gone); /* the client goes away with its scan queued */
    recd_score_pool_hold(pool, 0);
    expect_recommendation(stays);
    wait_queued(pool, 0);
    /* the late answer to nobody touched nothing (ASan watches): the workers go on serving, a new version too */
    publish_version_2(f);
    for (size_t i = 0; i < N_WORKERS; ++i) {
        exchange(f->conns[i], "GET", "/healthz", NULL, &res);
        assert_int_equal(res.status, 200);
        support_http_response_free(&res);
    }
}

int test_workers_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_workers_every_worker_serves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_new_version_reaches_every_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_ignore_an_older_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_stop_closes_idle_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_stop_answers_a_pending_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_scoring_pool_sheds_while_health_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_stop_waits_for_a_pending_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_client_gone_while_scan_queued, setup, teardown),
    };
    return cmocka_run_group_tests_name("workers", tests, NULL, NULL);
}
