/* test_metrics.c: the API's request counters and latency histograms, summed over slots and rendered by the registry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "api/api_internal.h"

static void assert_line(const char *text, const char *line)
{
    char needle[512];
    snprintf(needle, sizeof(needle), "\n%s\n", line);
    if (strstr(text, needle) == NULL)
        fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void test_metrics_render_sums_slots(void **state)
{
    recd_config_t config;
    recd_logger_t log = {RECD_LOG_ERROR, 2};
    recd_metrics_t *m = recd_metrics_create(2);
    recd_config_init(&config);
    recd_api_t *api = recd_api_create(&config, &log, m, NULL, NULL);
    /* the endpoints in the order the API registers them */
    recd_api_endpoint_t *recs = recd_api_endpoint(api, "recommendations");
    recd_api_endpoint(api, "similar");
    recd_api_endpoint_t *other = recd_api_endpoint(api, "other");
    size_t len;

    recd_api_count(api, recs, 0, 200, 300000);     /* 0.3 ms */
    recd_api_count(api, recs, 1, 200, 2000000);    /* 2 ms */
    recd_api_count(api, recs, 1, 400, 500000);     /* exactly 0.5 ms: le is inclusive */
    recd_api_count(api, recs, 0, 418, 3000000000); /* 3 s, a status no endpoint sends today: it gets its own series */
    recd_api_count(api, recs, 0, 0, 1000);         /* not an HTTP status at all */
    recd_api_count(api, other, 0, 404, 1000);
    recd_metric_add(api->events_accepted, 0, 3);
    recd_metric_add(api->events_accepted, 1, 4);

    char *text = recd_metrics_render(m, &len);
    assert_int_equal(strlen(text), len);
    assert_line(text, "recd_http_requests_total{endpoint=\"recommendations\",status=\"200\"} 2");
    assert_line(text, "recd_http_requests_total{endpoint=\"recommendations\",status=\"400\"} 1");
    assert_line(text, "recd_http_requests_total{endpoint=\"recommendations\",status=\"418\"} 1");
    assert_line(text, "recd_http_requests_total{endpoint=\"recommendations\",status=\"other\"} 1");
    assert_line(text, "recd_http_requests_total{endpoint=\"other\",status=\"404\"} 1");
    assert_line(text, "# TYPE recd_http_requests_total counter");
    assert_null(strstr(text, "endpoint=\"similar\",status="));
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"0.0005\"} 3");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"0.001\"} 3");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"0.0025\"} 4");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"1\"} 4");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"recommendations\",le=\"+Inf\"} 5");
    assert_line(text, "recd_http_request_duration_seconds_count{endpoint=\"recommendations\"} 5");
    assert_line(text, "recd_http_request_duration_seconds_sum{endpoint=\"recommendations\"} 3.002801000");
    /* an endpoint renders its histogram before its first request */
    assert_line(text, "recd_http_request_duration_seconds_count{endpoint=\"similar\"} 0");
    assert_line(text, "recd_http_request_duration_seconds_bucket{endpoint=\"similar\",le=\"+Inf\"} 0");
    assert_line(text, "recd_events_accepted_total 7");
    assert_line(text, "# TYPE recd_http_request_duration_seconds histogram");
    assert_non_null(strstr(text, "\nrecd_build_info{version=\"" RECD_VERSION "\"} 1\n"));
    free(text);

    recd_api_free(api);
    recd_metrics_free(m);
    recd_config_dispose(&config);
}

int test_metrics_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_sums_slots),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
