/* main.c: runs every test group of the recd executable's parts (the worker threads). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>

int test_workers_run(void);

int main(void)
{
    int failed = 0;
    signal(SIGPIPE, SIG_IGN); /* as recd does: a client that went away is an error return, not a signal */
    failed += test_workers_run();
    return failed != 0;
}
