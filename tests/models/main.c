/* main.c: runs every test group of the models module (groups are defined in the test_*.c files beside this one). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

/* Every group named here must be linked in: a missing one fails the build, never skips silently. */
#define RECD_TEST_GROUPS(X)                                                                                                        \
    X(idmap)                                                                                                                       \
    X(csr)                                                                                                                         \
    X(artifact)                                                                                                                    \
    X(score) X(scan) X(als) X(eval) X(bpr) X(biased_mf) X(eval_rating) X(eval_sampled) X(experiment) X(stats) X(event) X(ann)
#define DECLARE(name) int test_##name##_run(void);
RECD_TEST_GROUPS(DECLARE)

int main(void)
{
    int failed = 0;
#define RUN(name) failed += test_##name##_run();
    RECD_TEST_GROUPS(RUN)
    return failed != 0;
}
