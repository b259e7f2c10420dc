/* train_internal.h: helpers shared by the training and evaluation files of recd_models (seeded PRNG). */
#ifndef RECD_MODELS_TRAIN_INTERNAL_H
#define RECD_MODELS_TRAIN_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "models/sys.h"

/** splitmix64 (Steele, Lea, Flood 2014): a tiny seeded generator; its state is one uint64_t the caller owns. */
static inline uint64_t train_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/** A uniform double in [0, 1) with 53 random bits. */
static inline double train_uniform(uint64_t *state)
{
    return (double)(train_splitmix64(state) >> 11) * 0x1.0p-53;
}

/** A uniform integer in [0, n) (n > 0), by Lemire's multiply-shift (bias below 2^-32 for the n we use). */
static inline uint64_t train_below(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)train_splitmix64(state) * n) >> 64);
}

/** A standard normal deviate (Box-Muller; one of the pair is discarded to keep the state simple). */
static inline double train_normal(uint64_t *state)
{
    double u1 = train_uniform(state), u2 = train_uniform(state);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
