/* main.c: runs every test group of the server module (user state). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_userstate_run(void);

int main(void)
{
    int failed = 0;
    failed += test_userstate_run();
    return failed != 0;
}
