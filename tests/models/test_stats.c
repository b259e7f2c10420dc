/* test_stats.c: experiment statistics against textbook and hand-computed values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include "base/hash.h"
#include "models/stats.h"

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.17g, want %.17g (tolerance %g)", got, want, tol);
}

static void test_stats_normal_cdf(void **state)
{
    assert_close(recd_stats_normal_cdf(0.0), 0.5, 1e-15);
    assert_close(recd_stats_normal_cdf(RECD_STATS_Z95), 0.975, 1e-12);
    assert_close(recd_stats_normal_cdf(-1.0), 0.15865525393145707, 1e-14);
}

/* 8 of 10 at z = 1.96: [0.4902, 0.9433] (Newcombe 1998's Wilson interval). */
static void test_stats_wilson(void **state)
{
    double lo, hi;
    recd_stats_wilson(8, 10, RECD_STATS_Z95, &lo, &hi);
    assert_close(lo, 0.49016247153664183, 1e-12);
    assert_close(hi, 0.9433178485456247, 1e-12);
    recd_stats_wilson(0, 10, RECD_STATS_Z95, &lo, &hi); /* never below 0, and not degenerate */
    assert_close(lo, 0.0, 1e-15);
    assert_close(hi, 0.2775327998628892, 1e-12);
    recd_stats_wilson(10, 10, RECD_STATS_Z95, &lo, &hi); /* the mirror image */
    assert_close(lo, 1.0 - 0.2775327998628892, 1e-12);
    assert_close(hi, 1.0, 1e-15);
    recd_stats_wilson(50, 1000, RECD_STATS_Z95, &lo, &hi);
    assert_close(lo, 0.03813026239274882, 1e-12);
    assert_close(hi, 0.06531382024425081, 1e-12);
    recd_stats_wilson(0, 0, RECD_STATS_Z95, &lo, &hi);
    assert_close(lo, 0.0, 0.0);
    assert_close(hi, 1.0, 0.0);
}

/* 50/1000 against 70/1000: pooled p 0.06, se sqrt(0.06 * 0.94 * 2/1000), z 1.8831, p 0.0597. */
static void test_stats_two_proportion(void **state)
{
    double z;
    assert_close(recd_stats_two_proportion_p(50, 1000, 70, 1000, &z), 0.059685605532426286, 1e-12);
    assert_close(z, 1.8831089428867736, 1e-12);
    assert_close(recd_stats_two_proportion_p(70, 1000, 50, 1000, &z), 0.059685605532426286, 1e-12);
    assert_close(z, -1.8831089428867736, 1e-12);
    assert_close(recd_stats_two_proportion_p(0, 1000, 0, 1000, &z), 1.0, 0.0); /* no variance */
    assert_close(recd_stats_two_proportion_p(5, 10, 0, 0, &z), 1.0, 0.0);      /* no data */
    assert_close(z, 0.0, 0.0);
}

/* 100/1000 against 150/1000 and 200/1000 with tau^2 = 1e-4, computed from Johari et al.'s formula by hand. */
static void test_stats_msprt_values(void **state)
{
    assert_close(recd_stats_msprt_p(100, 1000, 150, 1000, 1e-4), 0.1977050354716023, 1e-12);
    assert_close(recd_stats_msprt_p(100, 1000, 200, 1000, 1e-4), 0.0039028446434298003, 1e-12);
    assert_close(recd_stats_msprt_p(100, 1000, 100, 1000, 1e-4), 1.0, 0.0); /* no difference: no evidence */
    assert_close(recd_stats_msprt_p(0, 0, 100, 1000, 1e-4), 1.0, 0.0);
    assert_true(recd_stats_msprt_p(1000, 100000, 3000, 100000, 1e-4) < 1e-100); /* huge evidence: no overflow to 0/NaN */
    assert_true(recd_stats_msprt_p(1000, 100000, 3000, 100000, 1e-4) >= 0.0);
    /* the evidence is symmetric in direction, and grows with the sample */
    assert_close(recd_stats_msprt_p(150, 1000, 100, 1000, 1e-4), 0.1977050354716023, 1e-12);
    assert_true(recd_stats_msprt_p(1000, 10000, 1500, 10000, 1e-4) < recd_stats_msprt_p(100, 1000, 150, 1000, 1e-4));
}

/*
 * Always valid: A/A tests peeked at after every 100 observations per arm stop falsely at most alpha of the time, where the
 * fixed-horizon z-test peeked at the same moments stops falsely far more often (the reason for the sequential test).
 */
static void test_stats_msprt_peeking(void **state)
{
    const int n_runs = 300, n_looks = 40, step = 100;
    const double rate = 0.1, alpha = 0.05;
    int msprt_false = 0, z_false = 0;
    uint64_t rng = 42;
    for (int r = 0; r < n_runs; ++r) {
        uint64_t xa = 0, xb = 0, n = 0;
        int m_hit = 0, z_hit = 0;
        for (int look = 0; look < n_looks; ++look) {
            for (int i = 0; i < step; ++i) {
                xa += recd_rand_uniform(&rng) < rate;
                xb += recd_rand_uniform(&rng) < rate;
            }
            n += step;
            m_hit |= recd_stats_msprt_p(xa, n, xb, n, RECD_STATS_MSPRT_TAU2) <= alpha;
            z_hit |= recd_stats_two_proportion_p(xa, n, xb, n, NULL) <= alpha;
        }
        msprt_false += m_hit;
        z_false += z_hit;
    }
    if (!(msprt_false <= alpha * n_runs))
        fail_msg("mSPRT false positives %d of %d", msprt_false, n_runs);
    if (!(z_false > 2 * alpha * n_runs))
        fail_msg("peeked z-test false positives only %d of %d", z_false, n_runs);
}

/* Q(n, x) = exp(-x) sum_{k<n} x^k/k! for integer n: a closed form that checks both the series and the fraction. */
static void test_stats_gamma_q_integer(void **state)
{
    static const double xs[] = {0.01, 0.5, 1.0, 2.5, 4.9, 5.1, 10.0, 30.0, 80.0};
    for (int a = 1; a <= 12; ++a)
        for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); ++i) {
            double x = xs[i], term = 1.0, sum = 1.0;
            for (int k = 1; k < a; ++k) {
                term *= x / k;
                sum += term;
            }
            double want = exp(-x) * sum, got = recd_stats_gamma_q(a, x);
            if (!(fabs(got - want) <= 1e-12 * (want > 1e-300 ? want : 1e-300) + 1e-300))
                fail_msg("Q(%d, %g) = %.17g, want %.17g", a, x, got, want);
        }
}

/* Textbook chi-square critical values, and the df = 1 closed form erfc(sqrt(x / 2)). */
static void test_stats_chi2_known(void **state)
{
    assert_close(recd_stats_chi2_sf(3.841458820694124, 1), 0.05, 1e-12);
    assert_close(recd_stats_chi2_sf(6.634896601021214, 1), 0.01, 1e-12);
    assert_close(recd_stats_chi2_sf(10.827566170662733, 1), 0.001, 1e-13);
    assert_close(recd_stats_chi2_sf(5.991464547107979, 2), 0.05, 1e-12);
    assert_close(recd_stats_chi2_sf(16.266236196238129, 3), 0.001, 1e-13);
    assert_close(recd_stats_chi2_sf(18.307038053275146, 10), 0.05, 1e-12);
    assert_close(recd_stats_chi2_sf(0.0, 4), 1.0, 0.0);
    for (double x = 0.05; x < 60; x *= 1.7)
        assert_close(recd_stats_chi2_sf(x, 1), erfc(sqrt(x / 2.0)), 1e-13);
    assert_true(isnan(recd_stats_gamma_q(0.0, 1.0)));
    assert_true(isnan(recd_stats_gamma_q(1.0, -1.0)));
}

/* 90/10 weights: 9000/1000 is perfect; 8900/1100 gives chi2 100^2/9000 + 100^2/1000 = 11.11, p 0.000858 (flagged);
 * 8950/1050 gives 2.78, p 0.0956 (not flagged). */
static void test_stats_srm(void **state)
{
    const uint32_t w[] = {9000, 1000};
    double chi2;
    assert_close(recd_stats_srm_p((const uint64_t[]){9000, 1000}, w, 2, &chi2), 1.0, 1e-12);
    assert_close(chi2, 0.0, 1e-12);
    double p = recd_stats_srm_p((const uint64_t[]){8900, 1100}, w, 2, &chi2);
    assert_close(chi2, 11.11111111111111, 1e-9);
    assert_close(p, 0.0008581206663936747, 1e-12);
    assert_true(p < RECD_STATS_SRM_ALPHA);
    p = recd_stats_srm_p((const uint64_t[]){8950, 1050}, w, 2, &chi2);
    assert_close(p, 0.0955807045456294, 1e-12);
    assert_true(p >= RECD_STATS_SRM_ALPHA);
    /* an arm of weight 0 that got traffic is a mismatch; one without traffic is left out */
    assert_close(recd_stats_srm_p((const uint64_t[]){9000, 1000, 3}, (const uint32_t[]){9000, 1000, 0}, 3, NULL), 0.0, 0.0);
    assert_close(recd_stats_srm_p((const uint64_t[]){9000, 1000, 0}, (const uint32_t[]){9000, 1000, 0}, 3, NULL), 1.0, 1e-12);
    assert_close(recd_stats_srm_p((const uint64_t[]){0, 0}, w, 2, NULL), 1.0, 0.0);
}

int test_stats_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_normal_cdf),     cmocka_unit_test(test_stats_wilson),
        cmocka_unit_test(test_stats_two_proportion), cmocka_unit_test(test_stats_msprt_values),
        cmocka_unit_test(test_stats_msprt_peeking),  cmocka_unit_test(test_stats_gamma_q_integer),
        cmocka_unit_test(test_stats_chi2_known),     cmocka_unit_test(test_stats_srm),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
