/* catalogue.c: the generated factor catalogue (see catalogue.h for exactly how it is drawn). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tests/support/catalogue.h"
#include "base/alloc.h"
#include "base/hash.h"

/* Writes len * unit(v + spread * N(0, I)) into out. */
static void draw_around(const double *v, uint32_t f, double spread, double len, uint64_t *rng, float *out)
{
    double *t = recd_xmalloc(f * sizeof(double)), sq = 0.0;
    for (uint32_t j = 0; j != f; ++j) {
        t[j] = v[j] + spread * recd_rand_normal(rng);
        sq += t[j] * t[j];
    }
    double scale = sq > 0.0 ? len / sqrt(sq) : 0.0;
    for (uint32_t j = 0; j != f; ++j)
        out[j] = (float)(t[j] * scale);
    free(t);
}

void support_catalogue_generate(const support_catalogue_spec_t *spec, support_catalogue_t *out)
{
    uint32_t f = spec->n_factors, n_topics = spec->n_topics != 0 ? spec->n_topics : 1;
    uint64_t rng = spec->seed;
    double *topics = recd_xmalloc((size_t)n_topics * f * sizeof(double));
    double *mix = recd_xmalloc(f * sizeof(double));

    for (size_t i = 0; i != (size_t)n_topics * f; ++i)
        topics[i] = recd_rand_normal(&rng);
    out->items = recd_xmalloc((spec->n_items * f + 1) * sizeof(float));
    out->item_bias = spec->with_bias ? recd_xmalloc((spec->n_items + 1) * sizeof(float)) : NULL;
    out->users = recd_xmalloc((spec->n_users * f + 1) * sizeof(float));
    for (size_t i = 0; i != spec->n_items; ++i) {
        uint32_t c = (uint32_t)recd_rand_below(&rng, n_topics);
        double g = recd_rand_normal(&rng), len = exp(g < 0.0 ? g : 0.3 * g);
        draw_around(topics + (size_t)c * f, f, 1.0, len, &rng, out->items + i * f);
        if (out->item_bias != NULL)
            out->item_bias[i] = (float)(0.3 * log(len) + 0.1 * recd_rand_normal(&rng));
    }
    for (size_t u = 0; u != spec->n_users; ++u) {
        uint32_t a = (uint32_t)recd_rand_below(&rng, n_topics), b = (uint32_t)recd_rand_below(&rng, n_topics);
        double w = recd_rand_uniform(&rng), len = exp(0.5 * recd_rand_normal(&rng));
        for (uint32_t j = 0; j != f; ++j)
            mix[j] = w * topics[(size_t)a * f + j] + (1.0 - w) * topics[(size_t)b * f + j];
        draw_around(mix, f, 0.5, len, &rng, out->users + u * f);
    }
    free(topics);
    free(mix);
}

void support_catalogue_dispose(support_catalogue_t *c)
{
    free(c->items);
    free(c->item_bias);
    free(c->users);
    memset(c, 0, sizeof(*c));
}
