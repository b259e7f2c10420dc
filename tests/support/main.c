/* main.c: runs the test of the test-support harness itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_proc_run(void);
int test_kafka_broker_run(void);

int main(void)
{
    int failed = test_proc_run();
    failed += test_kafka_broker_run();
    return failed != 0;
}
