/* stats.h: the statistics of experiment reports — Wilson intervals, two-proportion z-tests, an always-valid sequential
 * p-value (mSPRT) and the sample-ratio-mismatch chi-square test. Pure functions. */
#ifndef RECD_MODELS_STATS_H
#define RECD_MODELS_STATS_H

#include <stddef.h>
#include <stdint.h>

/** z for a two-sided 95% interval: the 0.975 quantile of the standard normal. */
#define RECD_STATS_Z95 1.959963984540054

/**
 * The mSPRT mixing variance tau^2 recd uses for CTR differences: the prior on the true difference of two click-through
 * rates is N(0, tau^2) with tau = 0.01 (one percentage point), the size of effect a recommender change typically has
 * (Johari, Koomen, Pekelis, Walsh 2017 choose tau from the effects expected). A larger tau detects large effects sooner and
 * small ones later; validity holds for any fixed tau.
 */
#define RECD_STATS_MSPRT_TAU2 1e-4

/** P(Z <= z) for a standard normal Z. */
double recd_stats_normal_cdf(double z);

/**
 * The Wilson score interval of a proportion (successes of n trials) at normal quantile z (RECD_STATS_Z95 for 95%): writes
 * [*lo, *hi], always within [0, 1]. n = 0 gives [0, 1] (nothing is known). successes must not exceed n.
 */
void recd_stats_wilson(uint64_t successes, uint64_t n, double z, double *lo, double *hi);

/**
 * Two-proportion z-test (pooled variance) of x_b/n_b against x_a/n_a: returns the two-sided p-value, and the z statistic in
 * *z (positive when b is higher; may be NULL). Returns 1 (and z 0) when a rate is undefined (n 0) or the pooled variance is 0.
 */
double recd_stats_two_proportion_p(uint64_t x_a, uint64_t n_a, uint64_t x_b, uint64_t n_b, double *z);

/**
 * The always-valid p-value of the mSPRT for the difference of two proportions with a normal mixture N(0, tau2) over the
 * difference (Johari et al. 2017, normal approximation): with d = p_b - p_a and V = p_a(1 - p_a)/n_a + p_b(1 - p_b)/n_b,
 *   Lambda = sqrt(V / (V + tau2)) * exp(d^2 tau2 / (2 V (V + tau2))),  p = min(1, 1 / Lambda).
 * It may be looked at after every observation: P(p ever <= alpha | no difference) <= alpha. A caller that keeps the
 * running minimum over its looks gets the sequence's p-value; one look alone is conservative. Returns 1 when a rate is
 * undefined or V is 0 (no evidence).
 */
double recd_stats_msprt_p(uint64_t x_a, uint64_t n_a, uint64_t x_b, uint64_t n_b, double tau2);

/**
 * The regularised upper incomplete gamma function Q(a, x) = Gamma(a, x) / Gamma(a) for a > 0, x >= 0 (series below a + 1,
 * Lentz's continued fraction above; relative error near 1e-14). Returns NAN for arguments outside that domain.
 */
double recd_stats_gamma_q(double a, double x);

/** P(X >= x) for X chi-square with df > 0 degrees of freedom: Q(df / 2, x / 2). */
double recd_stats_chi2_sf(double x, double df);

/** Sample-ratio-mismatch p-values below this are flagged. */
#define RECD_STATS_SRM_ALPHA 0.001

/**
 * The sample-ratio-mismatch test: Pearson's chi-square of observed[i] (requests per arm) against the share weights[i] /
 * sum(weights) of their total, with (arms of non-zero weight - 1) degrees of freedom. An arm of weight 0 that received
 * requests is a mismatch by itself (p 0). Writes the statistic to *chi2 (may be NULL) and returns the p-value; 1 when there
 * is nothing to test (no requests, or fewer than two arms with weight).
 */
double recd_stats_srm_p(const uint64_t *observed, const uint32_t *weights, size_t n_arms, double *chi2);

#endif
