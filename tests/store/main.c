/* main.c: runs every test group of the store module (the in-memory feature store, the file event sink). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_memory_store_run(void);
int test_file_sink_run(void);

int main(void)
{
    int failed = 0;
    failed += test_memory_store_run();
    failed += test_file_sink_run();
    return failed != 0;
}
