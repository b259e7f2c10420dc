/* hash.h: the one stable id hash and the one seeded generator (splitmix64) that every module and every replica share. */
#ifndef RECD_BASE_HASH_H
#define RECD_BASE_HASH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/** The murmur3 64-bit finaliser: every output bit depends on every input bit. */
static inline uint64_t recd_hash_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

/**
 * The stable hash of an id: FNV-1a over the bytes, then recd_hash_mix64 so the low bits (hash table slots) and the high
 * bits (tags) depend on every byte. Its value is part of recd's contract: experiment assignment hashes (salt, user) with it,
 * so every replica and recd-updater must agree; never change it.
 */
static inline uint64_t recd_hash_bytes(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *s = (const unsigned char *)data;
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ seed;
    for (size_t i = 0; i != len; ++i) {
        h ^= s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return recd_hash_mix64(h);
}

/** recd_hash_bytes with seed 0: the hash of an external id (user, item). */
static inline uint64_t recd_hash_id(const char *id, size_t len)
{
    return recd_hash_bytes(id, len, 0);
}

/** splitmix64 (Steele, Lea, Flood 2014): a tiny seeded generator; its state is one uint64_t the caller owns. */
static inline uint64_t recd_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/** A uniform double in [0, 1) with 53 random bits. */
static inline double recd_rand_uniform(uint64_t *state)
{
    return (double)(recd_splitmix64(state) >> 11) * 0x1.0p-53;
}

/** A uniform integer in [0, n) (n > 0), by Lemire's multiply-shift (bias below 2^-32 for the n we use). */
static inline uint64_t recd_rand_below(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)recd_splitmix64(state) * n) >> 64);
}

/** A standard normal deviate (Box-Muller; one of the pair is discarded to keep the state simple). */
static inline double recd_rand_normal(uint64_t *state)
{
    double u1 = recd_rand_uniform(state), u2 = recd_rand_uniform(state);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
