/* stats.c: Wilson intervals, two-proportion z-tests, the mSPRT always-valid p-value and the chi-square SRM test. */
#include <math.h>
#include "models/stats.h"

#define GAMMA_EPS 1e-15
#define GAMMA_TINY 1e-300
#define GAMMA_MAX_ITER 1000

double recd_stats_normal_cdf(double z)
{
    return 0.5 * erfc(-z / sqrt(2.0));
}

void recd_stats_wilson(uint64_t successes, uint64_t n, double z, double *lo, double *hi)
{
    if (n == 0) {
        *lo = 0.0, *hi = 1.0;
        return;
    }
    double nn = (double)n, p = (double)successes / nn, z2 = z * z;
    double denom = 1.0 + z2 / nn;
    double center = (p + z2 / (2.0 * nn)) / denom;
    double half = z * sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn)) / denom;
    *lo = center - half < 0.0 ? 0.0 : center - half;
    *hi = center + half > 1.0 ? 1.0 : center + half;
}

double recd_stats_two_proportion_p(uint64_t x_a, uint64_t n_a, uint64_t x_b, uint64_t n_b, double *z)
{
    double zz = 0.0, p = 1.0;
    if (n_a > 0 && n_b > 0) {
        double pa = (double)x_a / (double)n_a, pb = (double)x_b / (double)n_b;
        double pooled = (double)(x_a + x_b) / (double)(n_a + n_b);
        double se = sqrt(pooled * (1.0 - pooled) * (1.0 / (double)n_a + 1.0 / (double)n_b));
        if (se > 0.0) {
            zz = (pb - pa) / se;
            p = erfc(fabs(zz) / sqrt(2.0));
        }
    }
    if (z != NULL)
        *z = zz;
    return p;
}

double recd_stats_msprt_p(uint64_t x_a, uint64_t n_a, uint64_t x_b, uint64_t n_b, double tau2)
{
    if (n_a == 0 || n_b == 0 || !(tau2 > 0.0))
        return 1.0;
    double pa = (double)x_a / (double)n_a, pb = (double)x_b / (double)n_b, d = pb - pa;
    double v = pa * (1.0 - pa) / (double)n_a + pb * (1.0 - pb) / (double)n_b;
    if (!(v > 0.0))
        return 1.0;
    /* in logs: exp() of a strong effect overflows long before the p-value stops being meaningful */
    double log_lambda = 0.5 * log(v / (v + tau2)) + d * d * tau2 / (2.0 * v * (v + tau2));
    return log_lambda <= 0.0 ? 1.0 : exp(-log_lambda);
}

/* P(a, x) by its series, for x < a + 1. */
static double gamma_p_series(double a, double x)
{
    double sum = 1.0 / a, term = sum, ap = a;
    for (int n = 0; n < GAMMA_MAX_ITER; ++n) {
        ap += 1.0;
        term *= x / ap;
        sum += term;
        if (fabs(term) < fabs(sum) * GAMMA_EPS)
            break;
    }
    return sum * exp(-x + a * log(x) - lgamma(a));
}

/* Q(a, x) by its continued fraction (modified Lentz), for x >= a + 1. */
static double gamma_q_fraction(double a, double x)
{
    double b = x + 1.0 - a, c = 1.0 / GAMMA_TINY, d = 1.0 / b, h = d;
    for (int i = 1; i < GAMMA_MAX_ITER; ++i) {
        double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if (fabs(d) < GAMMA_TINY)
            d = GAMMA_TINY;
        c = b + an / c;
        if (fabs(c) < GAMMA_TINY)
            c = GAMMA_TINY;
        d = 1.0 / d;
        double delta = d * c;
        h *= delta;
        if (fabs(delta - 1.0) < GAMMA_EPS)
            break;
    }
    return exp(-x + a * log(x) - lgamma(a)) * h;
}

double recd_stats_gamma_q(double a, double x)
{
    if (!(a > 0.0) || !(x >= 0.0))
        return NAN;
    if (x == 0.0)
        return 1.0;
    if (isinf(x))
        return 0.0;
    return x < a + 1.0 ? 1.0 - gamma_p_series(a, x) : gamma_q_fraction(a, x);
}

double recd_stats_chi2_sf(double x, double df)
{
    return recd_stats_gamma_q(df / 2.0, x / 2.0);
}

double recd_stats_srm_p(const uint64_t *observed, const uint32_t *weights, size_t n_arms, double *chi2)
{
    double total = 0.0, wsum = 0.0, stat = 0.0, p = 1.0;
    size_t k = 0;
    int zero_weight_hit = 0;

    for (size_t i = 0; i < n_arms; ++i) {
        total += (double)observed[i];
        wsum += weights[i];
        if (weights[i] > 0)
            ++k;
        else if (observed[i] > 0)
            zero_weight_hit = 1;
    }
    if (total > 0.0 && wsum > 0.0) {
        for (size_t i = 0; i < n_arms; ++i) {
            if (weights[i] == 0)
                continue;
            double expected = total * weights[i] / wsum, diff = (double)observed[i] - expected;
            stat += diff * diff / expected;
        }
        if (zero_weight_hit) {
            stat = INFINITY;
            p = 0.0;
        } else if (k >= 2) {
            p = recd_stats_chi2_sf(stat, (double)(k - 1));
        }
    }
    if (chi2 != NULL)
        *chi2 = stat;
    return p;
}
