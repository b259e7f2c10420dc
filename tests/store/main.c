/* main.c: runs every test group of the store module. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_file_sink_run(void);

int main(void)
{
    int failed = 0;
    failed += test_file_sink_run();
    return failed != 0;
}
