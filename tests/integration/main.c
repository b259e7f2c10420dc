/* main.c: runs every integration test group (each starts its own recd process). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_server_run(void);
int test_hotswap_run(void);
int test_events_disk_run(void);
int test_served_run(void);
int test_admin_run(void);
int test_kafka_run(void);
int test_experiments_run(void);
int test_redis_run(void);
int test_swap_run(void);
int test_batch_run(void);

int main(void)
{
    int failed = 0;
    failed += test_server_run();
    failed += test_hotswap_run();
    failed += test_events_disk_run();
    failed += test_served_run();
    failed += test_admin_run();
    failed += test_kafka_run();
    failed += test_experiments_run();
    failed += test_redis_run();
    failed += test_swap_run();
    failed += test_batch_run();
    return failed != 0;
}
