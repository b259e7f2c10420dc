/* test_metrics.c: per-thread counters are summed when read and rendered as Prometheus text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

static void assert_line(const char *text, const char *line)
{
    char needle[512];
    snprintf(needle, sizeof(needle), "\n%s\n", line);
    if (strstr(text, needle) == NULL)
        fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void test_metrics_render_sums_slots(void **state)
{
    recd_http_metrics_t *m = recd_http_metrics_create(2);
    size_t len;

    recd_http_metrics_observe(m, 0, RECD_EP_RECOMMENDATIONS, 200, 300000);     /* 0.3 ms */
    recd_http_metrics_observe(m, 1, RECD_EP_RECOMMENDATIONS, 200, 2000000);    /* 2 ms */
    recd_http_metrics_observe(m, 1, RECD_EP_RECOMMENDATIONS, 400, 500000);     /* exactly 0.5 ms: le is inclusive */
    recd_http_metrics_observe(m, 0, RECD_EP_RECOMMENDATIONS, 418, 3000000000); /* 3 s, an unlisted status */
    recd_http_metrics_observe(m, 0, RECD_EP_OTHER, 404, 1000);
    recd_http_metrics_add_events(m, 0, 3);
    recd_http_metrics_add_events(m, 1, 4);
    atomic_store(&m->model_loads, 2);
    atomic_store(&m->model_load_failures, 1);

    char *text = recd_http_metrics_render(m, "de\"mo", 7, &len);
    assert_int_equal(strlen(text), len);
    assert_line(text, "recd_http_requests_total{endpoint=\"recommendations\",status=\"200\"} 2");
    assert_line(text, "recd_http_requests_total{endpoint=\"recommendations\",status=\"400\"} 1");
    assert_line(text, "recd_http_requests_total{endpoint=\"recommendations\",status=\"other\"} 1");
    assert_line(text, "recd_http_requests_total{endpoint=\"other\",status=\"404\"} 1");
    assert_null(strstr(text, "endpoint=\"similar\",status="));
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"0.0005\"} 2");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"0.001\"} 2");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"0.0025\"} 3");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"1\"} 3");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"+Inf\"} 4");
    assert_line(text, "recd_http_request_duration_seconds_count{endpoint=\"recommendations\"} 4");
    assert_line(text, "recd_http_request_duration_seconds_sum{endpoint=\"recommendations\"} 3.002800000");
    assert_line(text, "recd_http_request_duration_seconds_count{endpoint=\"similar\"} 0");
    assert_line(text, "recd_model_version{model=\"de\\\"mo\"} 7");
    assert_line(text, "recd_model_loads_total 2");
    assert_line(text, "recd_model_load_failures_total 1");
    assert_line(text, "recd_events_accepted_total 7");
    assert_line(text, "# TYPE recd_http_request_duration_seconds histogram");
    assert_non_null(strstr(text, "recd_build_info{version=\"" RECD_VERSION "\"} 1\n"));
    free(text);

    /* without a model the gauge is left out */
    text = recd_http_metrics_render(m, NULL, 0, &len);
    assert_null(strstr(text, "recd_model_version{"));
    free(text);
    recd_http_metrics_free(m);
}

int test_metrics_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_sums_slots),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
