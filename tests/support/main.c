/* main.c: runs the test of the test-support harness itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_proc_run(void);

int main(void)
{
    return test_proc_run() != 0;
}
