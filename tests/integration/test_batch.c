/* test_batch.c: the real recd's POST /v1/recommendations:batch — each entry answers exactly what the single request does,
 * entries fail one by one, bad bodies get a JSON 400 and recd goes on serving; the search parameter; the BLAS kernel metric. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <unistd.h>
#include "models/bf16_tiles.h"
#include "tests/integration/harness.h"
#include "tests/support/net.h"

/* Single requests, as POST /v1/recommendations bodies; the batch is these in this order. */
static const char *const requests[] = {
    "{\"user\":\"u00\",\"k\":3}",
    "{\"user\":\"u01\",\"k\":5,\"exclude\":[\"i03\",\"i04\"]}",
    "{\"user\":\"u10\",\"k\":4,\"recent_items\":[\"i11\",\"ghost\"],\"search\":\"exact\"}",
    "{\"user\":\"u11\",\"k\":2,\"search\":\"approximate\"}",
    "{\"user\":\"newcomer\",\"k\":4,\"recent_items\":[\"i20\",\"i21\"]}",
    "{\"user\":\"nobody\",\"k\":3}",
    "{\"user\":\"u00\",\"k\":3,\"model\":\"absent\"}",
    "{\"user\":\"u00\",\"k\":0}",
    "{\"user\":\"u20\",\"search\":\"fuzzy\"}",
    "{\"k\":3}",
};
#define N_REQUESTS (sizeof(requests) / sizeof(requests[0]))

/* The answer without its request_id (fresh for every request); errors as they are. */
static json_t *comparable(json_t *answer)
{
    json_object_del(answer, "request_id");
    return answer;
}

static void test_batch_entries_equal_single_requests(void **state)
{
    harness_t *h = *state;
    char body[8192] = "{\"requests\":[";
    json_t *batch, *single;

    for (size_t i = 0; i < N_REQUESTS; ++i) {
        strcat(body, requests[i]);
        strcat(body, i + 1 < N_REQUESTS ? "," : "]}");
    }
    assert_int_equal(harness_call(h->port, "POST", "/v1/recommendations:batch", NULL, body, &batch, NULL), 200);
    json_t *results = json_object_get(batch, "results");
    assert_int_equal(json_object_size(batch), 1);
    assert_int_equal(json_array_size(results), N_REQUESTS);
    size_t n_scored = 0;
    for (size_t i = 0; i < N_REQUESTS; ++i) {
        int status = harness_call(h->port, "POST", "/v1/recommendations", NULL, requests[i], &single, NULL);
        assert_non_null(single);
        json_t *entry = json_array_get(results, i);
        if (status == 200) {
            assert_true(json_is_string(json_object_get(entry, "request_id")));
            /* "exact" even when approximate was asked for: no version has an index */
            assert_string_equal(json_string_value(json_object_get(single, "search")), "exact");
            n_scored += strcmp(json_string_value(json_object_get(single, "fallback")), "popular") != 0;
        } else {
            /* the same error; a field's message names the entry ("requests[7].k must be ...") */
            json_t *got = json_object_get(entry, "error"), *want = json_object_get(single, "error");
            char prefixed[512];
            assert_non_null(got);
            snprintf(prefixed, sizeof(prefixed), "requests[%zu].%s", i, json_string_value(json_object_get(want, "message")));
            if (strcmp(json_string_value(json_object_get(got, "message")), prefixed) == 0)
                json_object_set(got, "message", json_object_get(want, "message"));
        }
        if (!json_equal(comparable(entry), comparable(single))) {
            char *a = json_dumps(entry, JSON_SORT_KEYS), *b = json_dumps(single, JSON_SORT_KEYS);
            fail_msg("entry %zu: batch %s, single %s", i, a, b);
        }
        json_decref(single);
    }
    assert_int_equal(n_scored, 5); /* the scanned kinds are all there: trained users, a remembered stranger's fold-in */
    json_decref(batch);

    /* a GET answers as the POST does, search included */
    assert_int_equal(harness_call(h->port, "GET", "/v1/recommendations?user=u00&k=3&search=approximate", NULL, NULL, &single, NULL),
                     200);
    assert_string_equal(json_string_value(json_object_get(single, "search")), "exact");
    json_decref(single);
    assert_int_equal(harness_call(h->port, "GET", "/v1/recommendations?user=u00&search=nearest", NULL, NULL, &single, NULL), 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(single, "error"), "code")), "invalid_argument");
    json_decref(single);
}

static void test_batch_bad_bodies(void **state)
{
    harness_t *h = *state;
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"requests\":{}}",
        "{\"requests\":[]}",
        "{\"requests\":[{\"user\":\"u00\"}],\"extra\":1}",
        "{\"requests\":\"u00\"}",
    };
    json_t *j;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        assert_int_equal(harness_call(h->port, "POST", "/v1/recommendations:batch", NULL, bad[i], &j, NULL), 400);
        assert_non_null(j); /* a JSON error, whatever the body was */
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "invalid_argument");
        json_decref(j);
    }
    /* one entry more than the bound */
    size_t cap = 64 + 257 * 20;
    char *big = malloc(cap);
    strcpy(big, "{\"requests\":[");
    for (int i = 0; i < 257; ++i)
        strcat(big, i < 256 ? "{\"user\":\"u00\"}," : "{\"user\":\"u00\"}]}");
    assert_int_equal(harness_call(h->port, "POST", "/v1/recommendations:batch", NULL, big, &j, NULL), 400);
    json_decref(j);
    /* the bound itself is fine */
    strcpy(big, "{\"requests\":[");
    for (int i = 0; i < 256; ++i)
        strcat(big, i < 255 ? "{\"user\":\"u00\"}," : "{\"user\":\"u00\"}]}");
    assert_int_equal(harness_call(h->port, "POST", "/v1/recommendations:batch", NULL, big, &j, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(j, "results")), 256);
    json_decref(j);
    free(big);
    /* only POST */
    assert_int_equal(harness_call(h->port, "GET", "/v1/recommendations:batch", NULL, NULL, &j, NULL), 405);
    json_decref(j);
    /* and recd goes on serving */
    assert_int_equal(harness_call(h->port, "GET", "/healthz", NULL, NULL, &j, NULL), 200);
    json_decref(j);
    assert_int_equal(harness_call(h->port, "GET", "/v1/recommendations?user=u00&k=3", NULL, NULL, &j, NULL), 200);
    json_decref(j);
}

static void test_batch_blas_core_exported(void **state)
{
    harness_t *h = *state;
    harness_response_t res;
    /* the flags reached the pool (queue bound: 4 x threads x batch_max by default) */
    assert_true(harness_log_contains(h->log, "\"msg\":\"scoring pool\",\"threads\":2,\"batch_max\":32,\"window_us\":200,"
                                             "\"queue_max\":256"));
    assert_int_equal(harness_get(h->port, "/metrics", &res), 0);
    const char *line = strstr(res.body, "\nrecd_blas_info{core=\"");
    assert_non_null(line);
    char core[64] = "";
    assert_int_equal(sscanf(line, "\nrecd_blas_info{core=\"%63[^\"]\"", core), 1);
    assert_non_null(strstr(line, ",config=\"OpenBLAS "));
    assert_non_null(strstr(line, "\"} 1\n"));
    /* the start-up log names the same kernel */
    char logged[128];
    snprintf(logged, sizeof(logged), "\"openblas_core\":\"%s\"", core);
    assert_true(harness_log_contains(h->log, logged));
    /* the defaults never run a generic kernel on a CPU with AVX2 (unless the environment chose one) */
    __builtin_cpu_init();
    if (getenv("OPENBLAS_CORETYPE") == NULL && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        static const char *const avx2[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator"};
        int found = 0;
        for (size_t i = 0; i < sizeof(avx2) / sizeof(avx2[0]); ++i)
            found |= strcasecmp(core, avx2[i]) == 0;
        if (!found)
            fail_msg("OpenBLAS runs %s on an AVX2 CPU", core);
    }
    harness_response_free(&res);
}

/* Reads one response from a keep-alive connection: its status, and its JSON body into *out (NULL when not JSON). */
static int keepalive_read(int fd, char *buf, size_t cap, json_t **out)
{
    size_t len = 0;
    *out = NULL;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (end == NULL || cl == NULL)
            continue;
        size_t body_len = strtoul(cl + 17, NULL, 10), head = (size_t)(end + 4 - buf);
        if (len < head + body_len)
            continue;
        *out = json_loadb(end + 4, body_len, 0, NULL);
        return atoi(buf + 9);
    }
}
/* One keep-alive request on fd; returns the response's JSON body (parsed) and its status, or -1. */
static int keepalive_call(int fd, const char *body, json_t **out)
{
    char req[1024], buf[16384];
    int n = snprintf(req, sizeof(req),
                     "POST /v1/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    if (write(fd, req, (size_t)n) != n)
        return -1;
    return keepalive_read(fd, buf, sizeof(buf), out);
}

/*
 * Requests that arrive together on different connections are scanned in one pass of the event loop (their scans put off
 * until the loop read them all), and each answer equals the request answered alone. recd is stopped while the requests
 * are written, so that they are all waiting when it wakes.
 */
static void test_loop_scans_arrivals_together(void **state)
{
    harness_t *h = *state;
    enum { N = 6 };
    static const char *const bodies[N] = {
        "{\"user\":\"u00\",\"k\":3}",
        "{\"user\":\"u01\",\"k\":5,\"exclude\":[\"i03\",\"i04\"]}",
        "{\"user\":\"u10\",\"k\":4,\"recent_items\":[\"i11\",\"ghost\"]}",
        "{\"user\":\"u11\",\"k\":2}",
        "{\"user\":\"newcomer\",\"k\":4,\"recent_items\":[\"i20\",\"i21\"]}",
        "{\"user\":\"u20\",\"k\":6}",
    };
    json_t *alone[N], *together[N];
    int fds[N];
    for (size_t i = 0; i < N; ++i) {
        assert_int_equal(harness_call(h->port, "POST", "/v1/recommendations", NULL, bodies[i], &alone[i], NULL), 200);
        comparable(alone[i]);
        /* a first request on each connection, so that every one is accepted and idle when recd stops */
        assert_true((fds[i] = support_connect_loopback(h->port, 5)) >= 0);
        json_t *first;
        assert_int_equal(keepalive_call(fds[i], bodies[i], &first), 200);
        json_decref(first);
    }
    double passes = harness_metric(h->port, "recd_score_loop_batch_size_count");
    double scanned = harness_metric(h->port, "recd_score_loop_batch_size_sum");
    assert_true(passes >= 0 && scanned >= 0);

    assert_int_equal(kill(h->pid, SIGSTOP), 0);
    for (size_t i = 0; i < N; ++i) {
        char req[1024];
        int n = snprintf(req, sizeof(req),
                         "POST /v1/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         strlen(bodies[i]), bodies[i]);
        assert_int_equal(write(fds[i], req, (size_t)n), n);
    }
    harness_sleep_ms(100); /* every request in recd's socket buffers */
    assert_int_equal(kill(h->pid, SIGCONT), 0);
    for (size_t i = 0; i < N; ++i) {
        char buf[16384];
        assert_int_equal(keepalive_read(fds[i], buf, sizeof(buf), &together[i]), 200);
        comparable(together[i]);
        if (!json_equal(alone[i], together[i])) {
            char *a = json_dumps(alone[i], JSON_SORT_KEYS), *b = json_dumps(together[i], JSON_SORT_KEYS);
            fail_msg("request %zu: alone %s, together %s", i, a, b);
        }
        json_decref(alone[i]);
        json_decref(together[i]);
        close(fds[i]);
    }
    /* the N scans (the /metrics requests in between are not scans) took fewer passes than N: some pass held several */
    double more_passes = harness_metric(h->port, "recd_score_loop_batch_size_count") - passes;
    double more_scanned = harness_metric(h->port, "recd_score_loop_batch_size_sum") - scanned;
    fprintf(stderr, "note: %d requests arriving together: %.0f scanned in %.0f passes\n", N, more_scanned, more_passes);
    assert_true(more_scanned == N);
    assert_true(more_passes < N);
    /* with the bf16 tiles, exact search re-ranked candidates, and the loop's scans are counted like the pool's */
    if (recd_bf16_tiles_supported())
        assert_true(harness_metric(h->port, "recd_scan_reranked_total") > 0);
}

static int setup(void **state)
{
    static const char *const args[] = {"--score-threads", "2", "--score-batch-window-us", "200", NULL};
    harness_t *h = calloc(1, sizeof(*h));
    if (harness_start(h, args) != 0)
        return -1;
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    harness_t *h = *state;
    int status = harness_stop(h);
    free(h);
    return status == 0 ? 0 : -1;
}

int test_batch_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_entries_equal_single_requests),
        cmocka_unit_test(test_batch_bad_bodies),
        cmocka_unit_test(test_batch_blas_core_exported),
        cmocka_unit_test(test_loop_scans_arrivals_together),
    };
    return cmocka_run_group_tests_name("batch", tests, setup, teardown);
}
