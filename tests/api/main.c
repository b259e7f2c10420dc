/* main.c: runs every test group of the api module (query parsing, codecs, metrics, HTTP helpers, JWT checks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_query_run(void);
int test_codec_run(void);
int test_metrics_run(void);
int test_http_run(void);
int test_auth_run(void);

int main(void)
{
    int failed = 0;
    failed += test_query_run();
    failed += test_codec_run();
    failed += test_metrics_run();
    failed += test_http_run();
    failed += test_auth_run();
    return failed != 0;
}
