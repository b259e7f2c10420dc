/* test_hotswap.c: a new registry version is picked up while serving; a corrupted one is rejected and the old one stays. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "tests/integration/harness.h"

/* GET recommendations must succeed; returns the "model" it was served by (static buffer). */
static const char *served_model(int port)
{
    static char model[64];
    harness_response_t res;
    assert_int_equal(harness_get(port, "/v1/recommendations?user=u20&k=3", &res), 0);
    assert_int_equal(res.status, 200);
    json_t *j = json_loads(res.body, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 3);
    snprintf(model, sizeof(model), "%s", json_string_value(json_object_get(j, "model")));
    json_decref(j);
    harness_response_free(&res);
    return model;
}

static void test_hotswap_new_version_then_corrupt_one(void **state)
{
    harness_t h;
    int i;

    assert_int_equal(harness_start(&h, NULL), 0);
    assert_string_equal(served_model(h.port), "demo@1");

    assert_int_equal(harness_publish(h.registry, 1, 0), 2);
    /* within a bounded wait every thread answers from version 2, and no request fails meanwhile */
    for (i = 0; i < 100; ++i) {
        int all_new = 1;
        for (int r = 0; r < 4; ++r)
            all_new &= strcmp(served_model(h.port), "demo@2") == 0;
        if (all_new)
            break;
        harness_sleep_ms(50);
    }
    assert_true(i < 100);

    assert_int_equal(harness_publish(h.registry, 2, 1), 3);
    for (i = 0; i < 100 && !harness_log_contains(h.log, "\"msg\":\"model version rejected\""); ++i) {
        assert_string_equal(served_model(h.port), "demo@2");
        harness_sleep_ms(50);
    }
    assert_true(i < 100);
    for (int r = 0; r < 6; ++r)
        assert_string_equal(served_model(h.port), "demo@2");

    harness_response_t res;
    assert_int_equal(harness_get(h.port, "/readyz", &res), 0);
    assert_int_equal(res.status, 200);
    assert_non_null(strstr(res.body, "\"demo@2\""));
    harness_response_free(&res);
    assert_int_equal(harness_get(h.port, "/metrics", &res), 0);
    assert_non_null(strstr(res.body, "recd_model_loads_total 2\n"));
    assert_non_null(strstr(res.body, "recd_model_load_failures_total 1\n"));
    assert_non_null(strstr(res.body, "recd_model_version{model=\"demo\"} 2\n"));
    harness_response_free(&res);

    assert_int_equal(harness_stop(&h), 0);
}

static void test_hotswap_missing_model_fails_to_start(void **state)
{
    harness_t h;
    char dir[256], registry[300];
    /* a registry that holds another model: recd must exit 1 with a clear message rather than listen */
    assert_int_equal(support_tmpdir_create(dir, sizeof(dir), "recd-absent"), 0);
    snprintf(registry, sizeof(registry), "%s/registry", dir);
    assert_int_equal(harness_publish(registry, 0, 0), 1);
    assert_int_not_equal(harness_start_registry(&h, registry, "absent", NULL), 0);
    assert_true(harness_log_contains(h.log, "cannot load a model"));
    assert_true(harness_log_contains(h.log, "absent"));
    harness_stop(&h);
    support_remove_tree(dir);
}

/* Waits (up to ~5 s) until every answer comes from want, checking that no request fails meanwhile. */
static int wait_for_model(int port, const char *want)
{
    for (int i = 0; i < 100; ++i) {
        int all = 1;
        for (int r = 0; r < 4; ++r)
            all &= strcmp(served_model(port), want) == 0;
        if (all)
            return 1;
        harness_sleep_ms(50);
    }
    return 0;
}

static void test_hotswap_inotify_without_polling(void **state)
{
    harness_t h;
    /* a poll period far beyond the wait below: only the inotify watch can pick version 2 up in time */
    const char *const extra[] = {"--reload-interval-ms", "600000", NULL};
    assert_int_equal(harness_start(&h, extra), 0);
    assert_int_equal(harness_publish(h.registry, 1, 0), 2);
    assert_true(wait_for_model(h.port, "demo@2"));
    assert_int_equal(harness_stop(&h), 0);
}

static void test_hotswap_rejected_version_retried_when_fixed(void **state)
{
    harness_t h;
    char path[1200];
    assert_int_equal(harness_start(&h, NULL), 0);
    assert_int_equal(harness_publish(h.registry, 1, 1), 2);
    for (int i = 0; i < 100 && !harness_log_contains(h.log, "\"msg\":\"model version rejected\""); ++i)
        harness_sleep_ms(50);
    assert_true(harness_log_contains(h.log, "\"msg\":\"model version rejected\""));
    assert_string_equal(served_model(h.port), "demo@1");
    /* the operator replaces the broken file: the new file is loaded as version 2 */
    snprintf(path, sizeof(path), "%s/%s/2/model.recd", h.registry, HARNESS_MODEL);
    assert_int_equal(harness_write_artifact(path, 1, 0), 0);
    assert_true(wait_for_model(h.port, "demo@2"));
    assert_int_equal(harness_stop(&h), 0);
}

static int connect_port(int port)
{
    struct sockaddr_in sin = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void test_hotswap_stop_with_idle_and_partial_connections(void **state)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    harness_t h;
    int fds[3];
    char buf[1024];

    assert_int_equal(harness_start(&h, NULL), 0);
    /* two idle keep-alive connections after one request each, and one that sent half a request */
    for (int i = 0; i < 2; ++i) {
        fds[i] = connect_port(h.port);
        assert_int_equal(write(fds[i], req, sizeof(req) - 1), sizeof(req) - 1);
        assert_true(read(fds[i], buf, sizeof(buf)) > 0);
    }
    fds[2] = connect_port(h.port);
    assert_int_equal(write(fds[2], req, 20), 20);
    /* a graceful stop closes them and still exits 0 (and cleanly under the sanitizers) */
    assert_int_equal(harness_stop(&h), 0);
    for (int i = 0; i < 3; ++i) {
        assert_true(read(fds[i], buf, sizeof(buf)) <= 0);
        close(fds[i]);
    }
}

int test_hotswap_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hotswap_new_version_then_corrupt_one),
        cmocka_unit_test(test_hotswap_missing_model_fails_to_start),
        cmocka_unit_test(test_hotswap_stop_with_idle_and_partial_connections),
        cmocka_unit_test(test_hotswap_inotify_without_polling),
        cmocka_unit_test(test_hotswap_rejected_version_retried_when_fixed),
    };
    return cmocka_run_group_tests_name("hotswap", tests, NULL, NULL);
}
