/* test_swap.c: the swap test — versions 1, 2 and 3 published, activated and rolled back through the admin API while client
 * threads keep requesting recommendations over keep-alive connections: no request fails, every answer comes from a
 * version that was active at some moment between its send and its answer, and the old versions' memory is released.
 * Also: max_loaded_bytes refuses a pin beyond the budget (metric, failed state with its reason) and serving goes on;
 * several models at once (--model repeated, '*' picking up a model published later) named by requests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "base/error.h"
#include "models/model.h"
#include "registry/control.h"
#include "registry/registry.h"
#include "tests/integration/harness.h"
#include "tests/support/net.h"

#define N_CLIENTS 3
#define MAX_ANSWERS_PER_CLIENT 500000 /* answers recorded per client for the consistency check */
#define LOAD_DEADLINE_S 120
#define SWITCH_TIMEOUT_S 60 /* a bound on a switch reaching every client, against a hang, not a latency target */
#define MAX_INTERVALS 16

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes the HS256 secret into dir/secret and the flag naming it into flag. */
static void write_secret(const char *dir, char *flag, size_t flaglen)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/secret", dir);
    assert_int_equal(harness_write_jwt_secret(path), 0);
    snprintf(flag, flaglen, "--jwt-hs256-secret-file=%s", path);
}

/* An admin POST; returns the status. */
static int admin_post(int port, const char *tok, const char *path, const char *body)
{
    char headers[2048];
    harness_response_t res;
    snprintf(headers, sizeof(headers), "Authorization: Bearer %s\r\n", tok);
    if (harness_request(port, "POST", path, body != NULL ? "application/json" : NULL, body, body ? strlen(body) : 0, headers,
                        &res) != 0) {
        fprintf(stderr, "test_swap: POST %s: no answer\n", path);
        return -1; /* the caller fails, after stopping the load */
    }
    int status = res.status;
    if (status != 200)
        fprintf(stderr, "test_swap: POST %s: %d %s\n", path, status, res.body);
    harness_response_free(&res);
    return status;
}

/* The bytes recd_model_bytes reports for a published version (opened in this process, released at once). */
static size_t artifact_bytes(const char *registry, const char *model, uint64_t version)
{
    char path[1024], err[512];
    assert_int_equal(recd_registry_artifact_path(registry, model, version, path, sizeof(path)), RECD_OK);
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    if (m == NULL)
        fail_msg("%s", err);
    size_t bytes = recd_model_bytes(m);
    recd_model_release(m);
    return bytes;
}

/* ---- a keep-alive client -------------------------------------------------------------------------------------- */

typedef struct st_answer_t {
    uint64_t sent_ns, answered_ns;
    uint32_t version; /* of "model":"demo@V" */
} answer_t;

typedef struct st_client_t {
    int port, index;
    pthread_t tid;
    answer_t *answers;
    size_t n_answers;
    _Atomic int *stop;
    _Atomic uint64_t last_sent_ns; /* of the latest answer, and its version: what the main thread watches */
    _Atomic uint32_t last_version;
    _Atomic size_t done;
    _Atomic int exited; /* the thread stopped early (a transport error) or at its bound */
    int failures;       /* transport errors, statuses other than 200, answers without a version */
    char failure[256];  /* the first failure; read by the main thread once the client exited */
} client_t;

/* Reads one response from a keep-alive connection into buf; returns the status and puts the body at *body, or -1. */
static int read_response(int fd, char *buf, size_t buflen, const char **body)
{
    size_t n = 0, need = 0;
    char *end = NULL;
    for (;;) {
        if (end != NULL && n >= need)
            break;
        if (n + 1 >= buflen)
            return -1;
        ssize_t r = recv(fd, buf + n, buflen - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            if (cl == NULL || cl > end)
                return -1;
            need = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
            if (need >= buflen)
                return -1;
        }
    }
    if (strncmp(buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    buf[need] = '\0';
    *body = end + 4;
    return atoi(buf + 9);
}

static void client_fail(client_t *c, const char *what)
{
    if (c->failures++ == 0)
        snprintf(c->failure, sizeof(c->failure), "%s", what);
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    char req[256], buf[16384];
    uint64_t deadline = now_ns() + (uint64_t)LOAD_DEADLINE_S * 1000000000u;
    int fd = support_connect_loopback(c->port, 10);
    if (fd < 0) {
        client_fail(c, "cannot connect");
        atomic_store(&c->exited, 1);
        return NULL;
    }
    /* one client names the model, the others take the default: both must follow the swaps */
    for (size_t i = 0; !atomic_load(c->stop) && now_ns() < deadline; ++i) {
        int n = snprintf(req, sizeof(req), "GET /v1/recommendations?user=u%zu%zu&k=3%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                         i % HARNESS_N_GROUPS, i % HARNESS_USERS_PER_GROUP, c->index == 0 ? "&model=" HARNESS_MODEL : "");
        const char *body;
        answer_t a = {now_ns(), 0, 0};
        if (support_send_all(fd, req, (size_t)n) != 0) {
            client_fail(c, "send failed");
            break;
        }
        int status = read_response(fd, buf, sizeof(buf), &body);
        a.answered_ns = now_ns();
        if (status != 200) {
            char what[256];
            snprintf(what, sizeof(what), "status %d: %.200s", status, status > 0 ? body : "(transport error)");
            client_fail(c, what);
            if (status < 0)
                break;
            continue;
        }
        const char *m = strstr(body, "\"model\":\"" HARNESS_MODEL "@");
        if (m == NULL) {
            client_fail(c, "answer without a model version");
            continue;
        }
        a.version = (uint32_t)strtoul(m + strlen("\"model\":\"" HARNESS_MODEL "@"), NULL, 10);
        if (c->n_answers < MAX_ANSWERS_PER_CLIENT)
            c->answers[c->n_answers++] = a; /* beyond the bound the load goes on, unrecorded, so a slow run never starves */
        atomic_store(&c->last_version, a.version);
        atomic_store(&c->last_sent_ns, a.sent_ns);
        atomic_fetch_add(&c->done, 1);
    }
    close(fd);
    if (c->failures == 0 && !atomic_load(c->stop))
        client_fail(c, "reached its deadline");
    atomic_store(&c->exited, 1);
    return NULL;
}

/* ---- the control timeline as the test caused it ------------------------------------------------------------------ */

/* Version v may serve from opened_ns (the admin call that made it active was sent) until closed_ns (every client was seen
 * answering from its successor; 0: still open). */
typedef struct st_interval_t {
    uint32_t version;
    uint64_t opened_ns, closed_ns;
} interval_t;

typedef struct st_timeline_t {
    interval_t v[MAX_INTERVALS];
    size_t n;
} timeline_t;

/* The load's clients live outside the test's stack frame: a failing assertion leaves the function by longjmp, and the
 * clients must never write into a frame that is gone. Every failure while they run stops them first. */
static client_t swap_clients[N_CLIENTS];
static _Atomic int swap_stop;
static int swap_clients_running;

static void stop_clients(void)
{
    atomic_store(&swap_stop, 1);
    if (swap_clients_running)
        for (int i = 0; i < N_CLIENTS; ++i)
            pthread_join(swap_clients[i].tid, NULL);
    swap_clients_running = 0;
}

#define fail_with_clients_stopped(...)                                                                                             \
    do {                                                                                                                           \
        stop_clients();                                                                                                            \
        fail_msg(__VA_ARGS__);                                                                                                     \
    } while (0)

/* Waits until every client answered from version for a request sent after since_ns. Returns the time it saw that. */
static uint64_t wait_until_all_serve(client_t *clients, uint32_t version, uint64_t since_ns)
{
    uint64_t deadline = now_ns() + (uint64_t)SWITCH_TIMEOUT_S * 1000000000u;
    for (;;) {
        int all = 1;
        for (int i = 0; i < N_CLIENTS; ++i)
            all &= atomic_load(&clients[i].last_version) == version && atomic_load(&clients[i].last_sent_ns) > since_ns;
        if (all)
            return now_ns();
        for (int i = 0; i < N_CLIENTS; ++i)
            if (atomic_load(&clients[i].exited))
                fail_with_clients_stopped("client %d stopped while waiting for version %u: %d failed requests, the first: %s", i,
                                          version, clients[i].failures, clients[i].failure);
        if (now_ns() > deadline)
            fail_with_clients_stopped("the clients did not all get answers from version %u within %d s", version, SWITCH_TIMEOUT_S);
        harness_sleep_ms(5);
    }
}

/* Makes version active through the admin API (rollback when path ends in /rollback) and records the switch. */
static void switch_to(timeline_t *t, client_t *clients, int port, const char *tok, const char *path, const char *body,
                      uint32_t version)
{
    uint64_t opened = now_ns();
    if (t->n >= MAX_INTERVALS)
        fail_with_clients_stopped("more switches than the timeline holds");
    t->v[t->n++] = (interval_t){version, opened, 0};
    int status = admin_post(port, tok, path, body);
    if (status != 200)
        fail_with_clients_stopped("%s answered %d", path, status);
    uint64_t seen = wait_until_all_serve(clients, version, opened);
    for (size_t i = 0; i + 1 < t->n; ++i)
        if (t->v[i].closed_ns == 0)
            t->v[i].closed_ns = seen;
}

/* Whether an answer's version was active at some moment between its send and its answer. */
static int consistent(const timeline_t *t, const answer_t *a)
{
    for (size_t i = 0; i < t->n; ++i)
        if (t->v[i].version == a->version && t->v[i].opened_ns <= a->answered_ns &&
            (t->v[i].closed_ns == 0 || t->v[i].closed_ns >= a->sent_ns))
            return 1;
    return 0;
}

static void test_swap_under_load(void **state)
{
    harness_t h;
    char flag[600], dir[256];
    char *tok = harness_token("admin", 3600);
    timeline_t t = {.n = 0};
    client_t *clients = swap_clients;

    assert_int_equal(support_tmpdir_create(dir, sizeof(dir), "recd-swap"), 0);
    write_secret(dir, flag, sizeof(flag));
    const char *args[] = {flag, NULL};
    assert_int_equal(harness_start(&h, args), 0);

    /* control state from the start: version 1 active, so publishing 2 and 3 must not switch anything by itself */
    t.v[t.n++] = (interval_t){1, 0, 0};
    assert_int_equal(admin_post(h.port, tok, "/v1/models/" HARNESS_MODEL "/activate", "{\"version\":1}"), 200);

    atomic_store(&swap_stop, 0);
    for (int i = 0; i < N_CLIENTS; ++i) {
        clients[i] = (client_t){.port = h.port, .index = i, .stop = &swap_stop};
        clients[i].answers = calloc(MAX_ANSWERS_PER_CLIENT, sizeof(answer_t));
        assert_non_null(clients[i].answers);
        assert_int_equal(pthread_create(&clients[i].tid, NULL, client_main, &clients[i]), 0);
        swap_clients_running = 1;
    }
    wait_until_all_serve(clients, 1, 0);

    if (harness_publish(h.registry, 1, 0) != 2 || harness_publish(h.registry, 2, 0) != 3)
        fail_with_clients_stopped("publishing versions 2 and 3 failed");
    harness_sleep_ms(300); /* the watcher sees both publishes: neither may take traffic */
    switch_to(&t, clients, h.port, tok, "/v1/models/" HARNESS_MODEL "/activate", "{\"version\":2}", 2);
    harness_sleep_ms(200);
    switch_to(&t, clients, h.port, tok, "/v1/models/" HARNESS_MODEL "/activate", "{\"version\":3}", 3);
    harness_sleep_ms(200);
    switch_to(&t, clients, h.port, tok, "/v1/models/" HARNESS_MODEL "/rollback", NULL, 2);
    harness_sleep_ms(200);
    switch_to(&t, clients, h.port, tok, "/v1/models/" HARNESS_MODEL "/activate", "{\"version\":3}", 3);
    harness_sleep_ms(200);
    switch_to(&t, clients, h.port, tok, "/v1/models/" HARNESS_MODEL "/rollback", NULL, 2);
    harness_sleep_ms(200);

    stop_clients();
    size_t total = 0, per_version[4] = {0};
    for (int i = 0; i < N_CLIENTS; ++i) {
        if (clients[i].failures != 0)
            fail_msg("client %d: %d failed requests, the first: %s", i, clients[i].failures, clients[i].failure);
        for (size_t k = 0; k < clients[i].n_answers; ++k) {
            const answer_t *a = &clients[i].answers[k];
            if (!consistent(&t, a))
                fail_msg("client %d answer %zu came from version %u, not active between its send (+%.3f s) and answer (+%.3f s)", i,
                         k, a->version, (double)(a->sent_ns - clients[i].answers[0].sent_ns) / 1e9,
                         (double)(a->answered_ns - clients[i].answers[0].sent_ns) / 1e9);
            if (a->version >= 1 && a->version <= 3)
                ++per_version[a->version];
        }
        total += clients[i].n_answers;
        free(clients[i].answers);
    }
    fprintf(stderr, "test_swap: %zu answers, 0 failed (v1 %zu, v2 %zu, v3 %zu)\n", total, per_version[1], per_version[2],
            per_version[3]);
    assert_true(per_version[1] > 0 && per_version[2] > 0 && per_version[3] > 0);

    /* memory: version 2 active and version 1 its rollback standby (history [1]); version 3 is released once the last
     * snapshot and request holding it are gone */
    size_t want_bytes = artifact_bytes(h.registry, HARNESS_MODEL, 1) + artifact_bytes(h.registry, HARNESS_MODEL, 2);
    for (int i = 0; i < 200 && harness_metric(h.port, "recd_models_in_memory") != 2; ++i)
        harness_sleep_ms(50);
    assert_int_equal((int)harness_metric(h.port, "recd_models_in_memory"), 2);
    assert_int_equal((size_t)harness_metric(h.port, "recd_model_loaded_bytes"), want_bytes);
    assert_int_equal((int)harness_metric(h.port, "recd_models_loaded{model=\"" HARNESS_MODEL "\",state=\"active\"}"), 1);
    assert_int_equal((int)harness_metric(h.port, "recd_models_loaded{model=\"" HARNESS_MODEL "\",state=\"standby\"}"), 1);
    assert_int_equal((int)harness_metric(h.port, "recd_model_version{model=\"" HARNESS_MODEL "\"}"), 2);

    assert_int_equal(harness_stop(&h), 0);
    support_remove_tree(dir);
    free(tok);
}

/* ---- the memory budget ------------------------------------------------------------------------------------------ */

/* Control state: version 2 active, version 1 pinned. */
static int edit_active_2_pin_1(recd_control_t *c, void *data)
{
    (void)data;
    c->active = 2;
    c->pins = realloc(c->pins, (c->n_pins + 1) * sizeof(*c->pins));
    c->pins[c->n_pins++] = 1;
    return RECD_OK;
}

/* GET /v1/models as JSON: the object of version v of the first model (borrowed from *root, which the caller frees). */
static json_t *model_version(int port, const char *tok, uint64_t v, json_t **root)
{
    char headers[2048];
    harness_response_t res;
    snprintf(headers, sizeof(headers), "Authorization: Bearer %s\r\n", tok);
    assert_int_equal(harness_request(port, "GET", "/v1/models", NULL, NULL, 0, headers, &res), 0);
    assert_int_equal(res.status, 200);
    *root = json_loads(res.body, 0, NULL);
    harness_response_free(&res);
    assert_non_null(*root);
    json_t *vs = json_object_get(json_array_get(json_object_get(*root, "models"), 0), "versions"), *x;
    size_t i;
    json_array_foreach(vs, i, x) if ((uint64_t)json_integer_value(json_object_get(x, "version")) == v) return x;
    return NULL;
}

static void test_swap_budget_refuses_a_pin_and_keeps_serving(void **state)
{
    harness_t h;
    char flag[600], dir[256], budget[64], err[256];
    char *tok = harness_token("admin", 3600);
    json_t *root, *v;
    harness_response_t res;

    assert_int_equal(support_tmpdir_create(dir, sizeof(dir), "recd-budget"), 0);
    write_secret(dir, flag, sizeof(flag));
    /* make the registry first so the budget can be sized from a real artifact: room for one version and a half */
    char registry[300];
    snprintf(registry, sizeof(registry), "%s/registry", dir);
    assert_int_equal(harness_publish(registry, 0, 0), 1);
    assert_int_equal(harness_publish(registry, 1, 0), 2);
    assert_int_equal(harness_publish(registry, 2, 1), 3); /* corrupt: failed, with its reason */
    size_t one = artifact_bytes(registry, HARNESS_MODEL, 1);
    snprintf(budget, sizeof(budget), "--max-loaded-bytes=%zu", one + one / 2);
    const char *args[] = {flag, budget, NULL};
    /* start-up tries the newest first: 3 fails its checks, 2 serves */
    assert_int_equal(harness_start_registry(&h, registry, HARNESS_MODEL, args), 0);
    /* then version 1 is pinned: it does not fit beside the active version 2 */
    uint64_t generation;
    assert_int_equal(recd_control_update(registry, HARNESS_MODEL, edit_active_2_pin_1, NULL, &generation, err, sizeof(err)),
                     RECD_OK);
    for (int i = 0;
         i < 200 && harness_metric(h.port, "recd_model_refusals_total{model=\"" HARNESS_MODEL "\",reason=\"budget\"}") < 1; ++i)
        harness_sleep_ms(50);
    assert_int_equal((int)harness_metric(h.port, "recd_model_refusals_total{model=\"" HARNESS_MODEL "\",reason=\"budget\"}"), 1);
    assert_int_equal((int)harness_metric(h.port, "recd_models_in_memory"), 1);
    assert_int_equal((size_t)harness_metric(h.port, "recd_model_loaded_bytes"), one);

    v = model_version(h.port, tok, 1, &root);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(v, "reason")), "budget"));
    json_decref(root);
    v = model_version(h.port, tok, 3, &root);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(v, "reason")), "artifact: "));
    assert_false(json_is_true(json_object_get(v, "loaded")));
    json_decref(root);
    v = model_version(h.port, tok, 2, &root);
    assert_string_equal(json_string_value(json_object_get(v, "state")), "active");
    assert_null(json_object_get(v, "reason"));
    json_decref(root);

    /* serving goes on from version 2 */
    for (int i = 0; i < 20; ++i) {
        assert_int_equal(harness_get(h.port, "/v1/recommendations?user=u10&k=3", &res), 0);
        assert_int_equal(res.status, 200);
        assert_non_null(strstr(res.body, "\"model\":\"" HARNESS_MODEL "@2\""));
        harness_response_free(&res);
    }
    assert_int_equal(harness_stop(&h), 0);
    support_remove_tree(dir);
    free(tok);
}

/* ---- several models ----------------------------------------------------------------------------------------------- */

/* GET path; returns the status and copies the answer's "model" into model (when 200). */
static int get_model(int port, const char *path, char *model, size_t modellen)
{
    harness_response_t res;
    assert_int_equal(harness_get(port, path, &res), 0);
    int status = res.status;
    json_t *j = json_loads(res.body, 0, NULL);
    model[0] = '\0';
    if (status == 200 && j != NULL)
        snprintf(model, modellen, "%s", json_string_value(json_object_get(j, "model")));
    json_decref(j);
    harness_response_free(&res);
    return status;
}

static void test_swap_several_models(void **state)
{
    harness_t h;
    char model[128];
    /* harness_start gives --model demo first: it stays the default; '*' adds every other model of the registry */
    const char *args[] = {"--model", "*", NULL};
    assert_int_equal(harness_start(&h, args), 0);

    assert_int_equal(get_model(h.port, "/v1/recommendations?user=u10&k=2", model, sizeof(model)), 200);
    assert_string_equal(model, HARNESS_MODEL "@1");
    assert_int_equal(get_model(h.port, "/v1/recommendations?user=u10&k=2&model=other", model, sizeof(model)), 404);
    assert_int_equal(get_model(h.port, "/v1/recommendations?user=u10&k=2&model=..", model, sizeof(model)), 400);
    assert_int_equal(get_model(h.port, "/v1/items/i10/similar?model=other", model, sizeof(model)), 404);

    /* a model published while serving is picked up */
    assert_int_equal(support_fixture_publish(h.registry, "other", 1, 0), 1);
    int status = 0;
    for (int i = 0;
         i < 200 && (status = get_model(h.port, "/v1/recommendations?user=u10&k=2&model=other", model, sizeof(model))) != 200; ++i)
        harness_sleep_ms(50);
    assert_int_equal(status, 200);
    assert_string_equal(model, "other@1");
    assert_int_equal(get_model(h.port, "/v1/items/i10/similar?k=2&model=other", model, sizeof(model)), 200);
    assert_string_equal(model, "other@1");
    harness_response_t res;
    assert_int_equal(harness_post_json(h.port, "/v1/recommendations", "{\"user\":\"u10\",\"k\":2,\"model\":\"other\"}", &res), 0);
    assert_int_equal(res.status, 200);
    assert_non_null(strstr(res.body, "\"model\":\"other@1\""));
    harness_response_free(&res);
    assert_int_equal(harness_post_json(h.port, "/v1/recommendations", "{\"user\":\"u10\",\"model\":\"nosuch\"}", &res), 0);
    assert_int_equal(res.status, 404);
    assert_non_null(strstr(res.body, "no model named \\\"nosuch\\\" is served"));
    harness_response_free(&res);
    /* the default did not move */
    assert_int_equal(get_model(h.port, "/v1/recommendations?user=u10&k=2", model, sizeof(model)), 200);
    assert_string_equal(model, HARNESS_MODEL "@1");
    assert_int_equal(harness_stop(&h), 0);
}

int test_swap_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_under_load),
        cmocka_unit_test(test_swap_budget_refuses_a_pin_and_keeps_serving),
        cmocka_unit_test(test_swap_several_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
