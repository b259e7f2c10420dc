/* main.c: runs every test group of the serve module (the request pipeline). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_pipeline_run(void);
int test_experiments_run(void);

int main(void)
{
    int failed = 0;
    failed += test_pipeline_run();
    failed += test_experiments_run();
    return failed != 0;
}
