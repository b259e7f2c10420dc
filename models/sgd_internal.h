/* sgd_internal.h: small vector kernels shared by the SGD trainers (bpr.c, biased_mf.c). */
#ifndef RECD_MODELS_SGD_INTERNAL_H
#define RECD_MODELS_SGD_INTERNAL_H

#include <stdint.h>

/* Marks code that reads and writes the shared factor matrices without locks on purpose (Hogwild!): ThreadSanitizer would
 * report every such access as a race, so these functions are exempt from it. */
#define SGD_HOGWILD __attribute__((no_sanitize("thread")))

/*
 * GCC's -O2 cost model leaves the factor loops scalar; GCC/Clang vector extensions make them 4-wide SSE on any x86-64
 * (and NEON on arm64) without -march flags, roughly halving training time. The lanes are summed in a fixed order, so
 * results do not depend on the compiler's choices and one-thread runs stay reproducible.
 */
typedef float sgd_v4f __attribute__((vector_size(16)));
/* The same vector at float alignment and allowed to alias floats: loads and stores through it are plain unaligned moves. */
typedef float sgd_v4f_u __attribute__((vector_size(16), aligned(4), may_alias));

/** An unaligned 4-float load. */
SGD_HOGWILD static inline sgd_v4f sgd_load4(const float *p)
{
    return *(const sgd_v4f_u *)p;
}

/** An unaligned 4-float store. */
SGD_HOGWILD static inline void sgd_store4(float *p, sgd_v4f v)
{
    *(sgd_v4f_u *)p = v;
}

/** Sum of a[f] * (b[f] - c[f]) over f < k; c may be NULL for a plain dot product a . b. */
SGD_HOGWILD static inline float sgd_dot_diff(const float *a, const float *b, const float *c, uint32_t k)
{
    sgd_v4f acc0 = {0, 0, 0, 0}, acc1 = {0, 0, 0, 0};
    uint32_t f = 0;
    if (c != NULL) {
        for (; f + 8 <= k; f += 8) {
            acc0 += sgd_load4(a + f) * (sgd_load4(b + f) - sgd_load4(c + f));
            acc1 += sgd_load4(a + f + 4) * (sgd_load4(b + f + 4) - sgd_load4(c + f + 4));
        }
    } else {
        for (; f + 8 <= k; f += 8) {
            acc0 += sgd_load4(a + f) * sgd_load4(b + f);
            acc1 += sgd_load4(a + f + 4) * sgd_load4(b + f + 4);
        }
    }
    float tail = 0;
    for (; f != k; ++f)
        tail += a[f] * (b[f] - (c != NULL ? c[f] : 0));
    return tail + (((acc0[0] + acc0[1]) + (acc0[2] + acc0[3])) + ((acc1[0] + acc1[1]) + (acc1[2] + acc1[3])));
}

/** Sum of squares of n floats, accumulated in double (for the L2 term of the reported loss). */
static inline double sgd_sum_squares(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i != n; ++i)
        s += (double)v[i] * v[i];
    return s;
}

#endif
