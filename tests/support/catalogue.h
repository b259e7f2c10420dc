/* catalogue.h: a generated factor catalogue with the structure of trained factors, for the ANN tests and bench/ann. */
#ifndef RECD_TESTS_SUPPORT_CATALOGUE_H
#define RECD_TESTS_SUPPORT_CATALOGUE_H

#include <stddef.h>
#include <stdint.h>

/** What to generate. */
typedef struct st_support_catalogue_spec_t {
    size_t n_items, n_users;
    uint32_t n_factors;
    uint32_t n_topics; /* clusters the items belong to */
    int with_bias;     /* also item biases (as BPR and biased MF have) */
    uint64_t seed;
} support_catalogue_spec_t;

/** The generated arrays (row-major, n_factors columns), owned. */
typedef struct st_support_catalogue_t {
    float *items;     /* n_items x n_factors */
    float *item_bias; /* n_items, or NULL without with_bias */
    float *users;     /* n_users x n_factors */
} support_catalogue_t;

/**
 * Generates a catalogue, a pure function of spec: n_topics topic directions t ~ N(0, I); item i belongs to topic
 * i's draw c uniformly, its vector is a length r_i times the unit vector of t_c + N(0, I), so items cluster around
 * their topic. r_i = exp(g) below the median and exp(0.3 g) above it, g ~ N(0, 1): a long tail of small norms and a short
 * one of large norms, the shape of trained factors (implicit ALS on MovieLens 100K: max / median norm 3.2, p90 / p10 8.0);
 * its bias is 0.3 ln(r_i) + 0.1 N(0, 1). A user mixes two topics with weights w and 1 - w (w uniform) plus 0.5 N(0, I),
 * scaled to a log-normal length. Aborts on out of memory.
 */
void support_catalogue_generate(const support_catalogue_spec_t *spec, support_catalogue_t *out);
/** Frees the arrays and zeroes the struct; accepts a zeroed one. */
void support_catalogue_dispose(support_catalogue_t *c);

#endif
