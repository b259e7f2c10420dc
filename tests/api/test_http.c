/* test_http.c: the HTTP helpers that need no connection — path and query split, reason phrases, accepted JSON bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "api/api_internal.h"

/* A request with only what the helpers read: path, query position, method, headers and body. */
static void init_req(h2o_req_t *req, const char *path, const char *ctype)
{
    memset(req, 0, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
    req->path = h2o_iovec_init(path, strlen(path));
    const char *q = strchr(path, '?');
    req->query_at = q != NULL ? (size_t)(q - path) : SIZE_MAX;
    req->method = h2o_iovec_init(H2O_STRLIT("POST"));
    req->entity = h2o_iovec_init(H2O_STRLIT("{}"));
    if (ctype != NULL)
        h2o_add_header(&req->pool, &req->headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
}

static void test_http_path_and_query(void **state)
{
    h2o_req_t req;
    init_req(&req, "/v1/recommendations?user=u1&k=3", NULL);
    h2o_iovec_t p = recd_api_path(&req), q = recd_api_query(&req);
    assert_int_equal(p.len, strlen("/v1/recommendations"));
    assert_memory_equal(p.base, "/v1/recommendations", p.len);
    assert_int_equal(q.len, strlen("user=u1&k=3"));
    assert_memory_equal(q.base, "user=u1&k=3", q.len);
    h2o_mem_clear_pool(&req.pool);

    init_req(&req, "/healthz", NULL);
    assert_int_equal(recd_api_path(&req).len, 8);
    assert_int_equal(recd_api_query(&req).len, 0);
    h2o_mem_clear_pool(&req.pool);
    init_req(&req, "/metrics?", NULL);
    assert_int_equal(recd_api_path(&req).len, 8);
    assert_int_equal(recd_api_query(&req).len, 0);
    h2o_mem_clear_pool(&req.pool);
}

static void test_http_reasons(void **state)
{
    assert_string_equal(recd_api_reason(200), "OK");
    assert_string_equal(recd_api_reason(202), "Accepted");
    assert_string_equal(recd_api_reason(413), "Payload Too Large");
    assert_string_equal(recd_api_reason(415), "Unsupported Media Type");
    assert_string_equal(recd_api_reason(503), "Service Unavailable");
    assert_string_equal(recd_api_reason(299), "Unknown");
}

static void test_http_json_content_types_accepted(void **state)
{
    /* the accepted forms return 0 without answering (a refused one would reply, which needs a connection) */
    static const char *const ok[] = {"application/json", "Application/JSON", "application/json; charset=utf-8",
                                     "application/json;charset=\"UTF-8\"", "application/json \t; charset=utf-8 "};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); ++i) {
        h2o_req_t req;
        init_req(&req, "/v1/events", ok[i]);
        if (recd_api_json_body_or_reply(&req, 4096) != 0)
            fail_msg("refused %s", ok[i]);
        h2o_mem_clear_pool(&req.pool);
    }
}

int test_http_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_path_and_query),
        cmocka_unit_test(test_http_reasons),
        cmocka_unit_test(test_http_json_content_types_accepted),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
