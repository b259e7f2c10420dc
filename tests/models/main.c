/* main.c: runs every test group of the models module (groups are defined in the test_*.c files beside this one). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

/* Weak while the groups are being written in parallel; a missing group is reported, not skipped silently. */
#define RECD_TEST_GROUPS(X)                                                                                                        \
    X(idmap) X(csr) X(artifact) X(score) X(registry) X(als) X(eval) X(bpr) X(biased_mf) X(eval_rating) X(eval_sampled) X(sys)
#define DECLARE(name) int test_##name##_run(void) __attribute__((weak));
RECD_TEST_GROUPS(DECLARE)

int main(void)
{
    int failed = 0;
#define RUN(name)                                                                                                                  \
    if (test_##name##_run != NULL)                                                                                                 \
        failed += test_##name##_run();
    RECD_TEST_GROUPS(RUN)
    return failed != 0;
}
