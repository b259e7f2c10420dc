/* main.c: runs every test group of the config module (groups are defined in the test_*.c files beside this one). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

int test_config_run(void);

int main(void)
{
    return test_config_run() != 0;
}
