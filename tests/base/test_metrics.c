/* test_metrics.c: the registry sums every slot, keeps registration order and renders Prometheus text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/metrics.h"

static void assert_line(const char *text, const char *line)
{
    char needle[512];
    snprintf(needle, sizeof(needle), "\n%s\n", line);
    if (strstr(text, needle) == NULL)
        fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void collect(void *data, recd_jw_t *out)
{
    recd_jw_lit(out, "# TYPE custom gauge\ncustom{name=\"");
    recd_metrics_label_value(out, data, strlen(data));
    recd_jw_lit(out, "\"} 1\n");
}

static void test_metrics_registry_sums_and_renders(void **state)
{
    static const double bounds[] = {0.001, 0.01};
    recd_metrics_t *m = recd_metrics_create(2);
    size_t len;

    recd_metric_t *a = recd_metrics_counter(m, "x_total", "Xs.", "k=\"a\"");
    assert_ptr_equal(recd_metrics_counter(m, "x_total", "ignored", "k=\"a\""), a); /* same series */
    recd_metric_t *b = recd_metrics_counter(m, "x_total", "Xs.", "k=\"b\"");
    recd_metric_t *plain = recd_metrics_counter(m, "y_total", "Ys.", NULL);
    recd_metric_t *h = recd_metrics_histogram(m, "lat_seconds", "Latency.", "ep=\"r\"", bounds, 2);
    recd_metric_t *g = recd_metrics_gauge(m, "depth", "Depth.", NULL);
    recd_metric_add(a, 0, 2);
    recd_metric_add(a, 1, 3);
    recd_metric_add(a, RECD_METRICS_SHARED, 5);
    recd_metric_add(plain, 1, 1);
    recd_metric_observe(h, 0, 0.0005);
    recd_metric_observe(h, 1, 0.001); /* le is inclusive */
    recd_metric_observe(h, RECD_METRICS_SHARED, 3);
    recd_metric_set(g, 2.5);
    recd_metrics_add_collector(m, collect, "q\"uote");
    assert_int_equal(recd_metric_value(a), 10);
    assert_int_equal(recd_metric_value(b), 0);

    char *text = recd_metrics_render(m, &len);
    assert_int_equal(strlen(text), len);
    assert_true(strncmp(text, "# HELP x_total Xs.\n# TYPE x_total counter\n", 41) == 0);
    assert_line(text, "x_total{k=\"a\"} 10");
    assert_line(text, "x_total{k=\"b\"} 0");
    assert_line(text, "y_total 1");
    assert_line(text, "# TYPE lat_seconds histogram");
    assert_line(text, "lat_seconds_bucket{ep=\"r\",le=\"0.001\"} 2");
    assert_line(text, "lat_seconds_bucket{ep=\"r\",le=\"0.01\"} 2");
    assert_line(text, "lat_seconds_bucket{ep=\"r\",le=\"+Inf\"} 3");
    assert_line(text, "lat_seconds_count{ep=\"r\"} 3");
    assert_line(text, "lat_seconds_sum{ep=\"r\"} 3.001500000");
    /* 3 observations: the median (2nd) is in the 0.001 bucket, the p99 (3rd) in +Inf */
    assert_true(recd_metric_count(h) == 3);
    assert_true(recd_metric_quantile(h, 0.5) == 0.001);
    assert_true(recd_metric_quantile(h, 0.33) == 0.001);
    assert_true(isinf(recd_metric_quantile(h, 0.99)));
    assert_true(isnan(recd_metric_quantile(a, 0.5))); /* not a histogram */
    assert_line(text, "depth 2.5");
    assert_line(text, "custom{name=\"q\\\"uote\"} 1");
    assert_true(strstr(text, "x_total{k=\"b\"}") < strstr(text, "y_total 1")); /* registration order */
    free(text);
    recd_metrics_free(m);
}

int test_metrics_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_registry_sums_and_renders),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
