/* test_admin.c: the admin API over HTTP against a real recd with a JWT key — the 401/403 matrix, activate and rollback
 * with their 404/409 cases, experiment PUT/GET/DELETE, and recdctl run as a subprocess with its exit codes. */
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
#include <sys/wait.h>
#include "tests/integration/harness.h"

static int recdctl(int port, const char *tok, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "RECD_URL=http://127.0.0.1:%d RECD_TOKEN='%s' '%s/recdctl' %s >/dev/null 2>&1", port, tok ? tok : "",
             getenv("RECD_BINARY_DIR"), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_admin_auth_models_experiments(void **state)
{
    char dir[] = "/tmp/recd-admin-XXXXXX", secret[64], flag[128];
    assert_non_null(mkdtemp(dir));
    snprintf(secret, sizeof(secret), "%s/secret", dir);
    assert_int_equal(harness_write_jwt_secret(secret), 0);
    snprintf(flag, sizeof(flag), "--jwt-hs256-secret-file=%s", secret);
    const char *args[] = {flag, NULL};
    harness_t h;
    harness_response_t res;
    json_t *j;
    char *admin = harness_token("admin", 600), *reader = harness_token("recs:read", 600), *expired = harness_token("admin", -600);

    assert_int_equal(harness_start(&h, args), 0);
    /* the 401/403 matrix */
    assert_int_equal(harness_call(h.port, "GET", "/v1/models", NULL, NULL, NULL, &res), 401);
    char www[200];
    assert_non_null(harness_header(&res, "www-authenticate", www, sizeof(www)));
    assert_non_null(strstr(www, "Bearer"));
    harness_response_free(&res);
    assert_int_equal(harness_call(h.port, "GET", "/v1/models", expired, NULL, NULL, NULL), 401);
    assert_int_equal(harness_call(h.port, "GET", "/v1/models", "garbage.token.here", NULL, NULL, NULL), 401);
    assert_int_equal(harness_call(h.port, "GET", "/v1/models", reader, NULL, NULL, NULL), 403);
    assert_int_equal(harness_call(h.port, "PUT", "/v1/experiments/e1", reader, "{}", NULL, NULL), 403);
    /* public endpoints stay open by default */
    assert_int_equal(harness_call(h.port, "GET", "/v1/recommendations?user=u10&k=2", NULL, NULL, NULL, NULL), 200);

    assert_int_equal(harness_call(h.port, "GET", "/v1/models", admin, NULL, &j, NULL), 200);
    json_t *m = json_array_get(json_object_get(j, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")), HARNESS_MODEL);
    assert_int_equal(json_integer_value(json_object_get(m, "active")), 1);
    json_decref(j);

    /* activate and rollback: version 1 serves and nothing came before it */
    assert_int_equal(harness_call(h.port, "POST", "/v1/models/" HARNESS_MODEL "/activate", admin, "{\"version\":1}", &j, NULL),
                     200);
    uint64_t g1 = (uint64_t)json_integer_value(json_object_get(j, "generation"));
    assert_true(g1 >= 1);
    json_decref(j);
    assert_int_equal(harness_call(h.port, "POST", "/v1/models/" HARNESS_MODEL "/rollback", admin, NULL, NULL, NULL), 409);
    assert_int_equal(harness_publish(h.registry, 1, 0), 2);
    assert_int_equal(harness_publish(h.registry, 2, 1), 3); /* corrupt */
    assert_int_equal(harness_call(h.port, "POST", "/v1/models/" HARNESS_MODEL "/activate", admin, "{\"version\":99}", NULL, NULL),
                     404);
    assert_int_equal(harness_call(h.port, "POST", "/v1/models/nosuch/activate", admin, "{\"version\":1}", NULL, NULL), 404);
    assert_int_equal(harness_call(h.port, "POST", "/v1/models/" HARNESS_MODEL "/activate", admin, "{\"version\":3}", NULL, NULL),
                     409);
    assert_int_equal(
        harness_call(h.port, "POST", "/v1/models/" HARNESS_MODEL "/activate", admin, "{\"version\":\"2\"}", NULL, NULL), 400);
    assert_int_equal(harness_call(h.port, "POST", "/v1/models/" HARNESS_MODEL "/activate", admin, "{\"version\":2}", &j, NULL),
                     200);
    assert_int_equal(json_integer_value(json_object_get(j, "previous")), 1);
    assert_int_equal((uint64_t)json_integer_value(json_object_get(j, "generation")), g1 + 1);
    json_decref(j);
    assert_int_equal(harness_call(h.port, "POST", "/v1/models/" HARNESS_MODEL "/rollback", admin, NULL, &j, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "active")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "previous")), 2);
    json_decref(j);
    assert_int_equal(harness_call(h.port, "POST", "/v1/models/" HARNESS_MODEL "/rollback", admin, NULL, NULL, NULL), 409);

    /* experiments */
    const char *exp = "{\"salt\":\"s1\",\"enabled\":true,\"arms\":[{\"name\":\"control\",\"model\":\"" HARNESS_MODEL
                      "@1\",\"weight\":9000},{\"name\":\"canary\",\"model\":\"" HARNESS_MODEL "@2\",\"weight\":1000}],"
                      "\"guardrails\":{\"canary\":\"canary\",\"control\":\"control\",\"min_requests\":10}}";
    assert_int_equal(harness_call(h.port, "PUT", "/v1/experiments/e1", admin, exp, &j, NULL), 201);
    assert_int_equal(json_integer_value(json_object_get(j, "table_version")), 1);
    json_decref(j);
    assert_int_equal(harness_call(h.port, "PUT", "/v1/experiments/e1", admin,
                                  "{\"salt\":\"s1\",\"arms\":[{\"name\":\"a\",\"model\":\"" HARNESS_MODEL "@1\",\"weight\":9999}]}",
                                  &j, NULL),
                     400);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "10000"));
    json_decref(j);
    assert_int_equal(harness_call(h.port, "PUT", "/v1/experiments/e1", admin,
                                  "{\"salt\":\"s1\",\"arms\":[{\"name\":\"a\",\"model\":\"" HARNESS_MODEL "@1\",\"weight\":5000},"
                                  "{\"name\":\"b\",\"model\":\"other@1\",\"weight\":5000}]}",
                                  NULL, NULL),
                     400);
    assert_int_equal(harness_call(h.port, "PUT", "/v1/experiments/e1", admin,
                                  "{\"salt\":\"s1\",\"arms\":[{\"name\":\"a\",\"model\":\"" HARNESS_MODEL
                                  "@3\",\"weight\":10000}]}",
                                  NULL, NULL),
                     409);
    assert_int_equal(harness_call(h.port, "GET", "/v1/experiments/e1", admin, NULL, &j, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "arms"), 1), "model")),
                        HARNESS_MODEL "@2");
    json_decref(j);

    /* recdctl against the same server: a ramp keeps the table and bumps its version */
    assert_int_equal(recdctl(h.port, admin, "models"), 0);
    assert_int_equal(recdctl(h.port, admin, "experiment ramp e1 canary 2500"), 0);
    assert_int_equal(harness_call(h.port, "GET", "/v1/experiments/e1", admin, NULL, &j, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(j, "arms"), 0), "weight")), 7500);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(j, "arms"), 1), "weight")), 2500);
    assert_int_equal(json_integer_value(json_object_get(j, "table_version")), 2);
    json_decref(j);
    assert_int_equal(recdctl(h.port, admin, "experiment show e1"), 0);
    assert_int_equal(recdctl(h.port, admin, "activate " HARNESS_MODEL " 99"), 1);
    assert_int_equal(recdctl(h.port, reader, "models"), 1);
    assert_int_equal(recdctl(h.port, admin, "frobnicate"), 2);
    assert_int_equal(recdctl(h.port, admin, "experiment delete e1"), 0);
    assert_int_equal(harness_call(h.port, "GET", "/v1/experiments/e1", admin, NULL, NULL, NULL), 404);
    assert_int_equal(harness_call(h.port, "DELETE", "/v1/experiments/e1", admin, NULL, NULL, NULL), 404);
    assert_int_equal(harness_stop(&h), 0);
    /* nothing listens there any more: a clear error, exit 1 */
    assert_int_equal(recdctl(h.port, admin, "models"), 1);

    /* without a key the admin endpoints are refused, saying how to enable them */
    assert_int_equal(harness_start(&h, NULL), 0);
    assert_int_equal(harness_call(h.port, "GET", "/v1/models", admin, NULL, &j, NULL), 403);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "admin_disabled");
    json_decref(j);
    assert_int_equal(harness_stop(&h), 0);

    free(admin);
    free(reader);
    free(expired);
    unlink(secret);
    rmdir(dir);
}

int test_admin_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_auth_models_experiments),
    };
    return cmocka_run_group_tests_name("admin", tests, NULL, NULL);
}
