/* main.c: recd-datagen — a synthetic interaction log with planted low-rank tastes, popularity skew and timestamps. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/hash.h"
#include "base/alloc.h"
#include "base/error.h"
#include "config/options.h"

/*
 * The model behind the data: every user u and item i gets a unit taste vector in R^factors, near one of the factor axes
 * (a taste cluster) with some spread (taste_vectors). Items get a Zipf(0.9)
 * popularity over a random permutation; users get a log-normal activity. Each interaction picks a user by activity and
 * an item with probability proportional to popularity(i) * exp(BETA * u.i), by drawing candidates from the popularity
 * (alias method) and accepting with probability exp(BETA * (u.i - 1)) <= 1. The value (1..5) rises with u.i plus noise;
 * timestamps increase with exponential gaps from a fixed epoch, so a seed fixes every byte of the output.
 */
#define BETA 5.0
#define NOISE 0.5
#define ZIPF_S 0.9
#define START_TS 1700000000LL
#define MEAN_GAP_SECONDS 15.0

#define EXIT_USAGE 2

/* Walker/Vose alias table: O(1) draws from a discrete distribution. */
typedef struct st_alias_t {
    size_t n;
    double *prob;
    uint32_t *alias;
} alias_t;

static void alias_init(alias_t *a, const double *w, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i != n; ++i)
        sum += w[i];
    a->n = n;
    a->prob = recd_xmalloc(n * sizeof(*a->prob));
    a->alias = recd_xmalloc(n * sizeof(*a->alias));
    uint32_t *small = recd_xmalloc(n * sizeof(*small)), *large = recd_xmalloc(n * sizeof(*large));
    size_t ns = 0, nl = 0;
    for (size_t i = 0; i != n; ++i) {
        a->prob[i] = w[i] * n / sum;
        a->alias[i] = (uint32_t)i;
        if (a->prob[i] < 1)
            small[ns++] = (uint32_t)i;
        else
            large[nl++] = (uint32_t)i;
    }
    while (ns != 0 && nl != 0) {
        uint32_t s = small[--ns], l = large[nl - 1];
        a->alias[s] = l;
        a->prob[l] -= 1 - a->prob[s];
        if (a->prob[l] < 1) {
            --nl;
            small[ns++] = l;
        }
    }
    while (nl != 0)
        a->prob[large[--nl]] = 1;
    while (ns != 0)
        a->prob[small[--ns]] = 1;
    free(small);
    free(large);
}

static uint32_t alias_draw(const alias_t *a, uint64_t *s)
{
    uint64_t r = recd_splitmix64(s);
    size_t i = (size_t)(((unsigned __int128)r * a->n) >> 64);
    return recd_rand_uniform(s) < a->prob[i] ? (uint32_t)i : a->alias[i];
}

/* Unit vectors near the axes: v = normalise(e_c + noise), c uniform in 0..f-1, noise N(0, (NOISE^2 / f) I). Users and
 * items near the same axis share a taste (v.w around 0.8); others are nearly orthogonal. */
static void taste_vectors(float *v, size_t n, uint32_t f, uint64_t *s)
{
    for (size_t i = 0; i != n; ++i) {
        uint32_t c = (uint32_t)(recd_splitmix64(s) % f);
        double norm = 0;
        for (uint32_t k = 0; k != f; ++k) {
            double x = (k == c ? 1.0 : 0.0) + NOISE / sqrt((double)f) * recd_rand_normal(s);
            v[i * f + k] = (float)x;
            norm += x * x;
        }
        norm = sqrt(norm);
        for (uint32_t k = 0; k != f; ++k)
            v[i * f + k] = (float)(v[i * f + k] / (norm > 0 ? norm : 1));
    }
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n != 0)
        *p++ = tmp[--n];
    return p;
}

/* The flags, parsed by the same option engine as recd's configuration. */
typedef struct st_datagen_options_t {
    uint64_t users, items, interactions, seed;
    uint32_t factors;
    char *format, *output;
} datagen_options_t;

static int check_format(const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "csv") == 0 || strcmp(value, "tsv") == 0)
        return RECD_OK;
    snprintf(err, errlen, "must be csv or tsv, got \"%s\"", value);
    return RECD_EINVAL;
}

#define OFF(field) offsetof(datagen_options_t, field)
static const recd_option_t options[] = {
    {"users", RECD_OPT_U64, OFF(users), NULL, 1, UINT32_MAX - 1, NULL, "N", "Number of users (u0, u1, ...)."},
    {"items", RECD_OPT_U64, OFF(items), NULL, 1, UINT32_MAX - 1, NULL, "M", "Number of items (i0, i1, ...)."},
    {"interactions", RECD_OPT_U64, OFF(interactions), NULL, 1, UINT64_C(1) << 40, NULL, "K", "Number of lines written."},
    {"factors", RECD_OPT_U32, OFF(factors), "8", 1, 256, NULL, "F", "Dimension of the planted tastes."},
    {"seed", RECD_OPT_U64, OFF(seed), "42", 0, UINT64_MAX, NULL, "S", "The same seed gives the same bytes."},
    {"format", RECD_OPT_STRING, OFF(format), "csv", 0, 0, check_format, "csv|tsv", "Field separator: comma or tab."},
    {"output", RECD_OPT_STRING, OFF(output), "-", 0, 0, NULL, "FILE", "Where to write; - is standard output."},
};
static const recd_options_t spec = {options, sizeof(options) / sizeof(options[0]), NULL, 0};

static void usage(FILE *out, const char *argv0)
{
    fprintf(out,
            "Usage: %s --users N --items M --interactions K [--factors 8] [--seed S] [--format csv|tsv] [--output FILE]\n"
            "\n"
            "Writes a synthetic interaction log with a header line: user,item,value,timestamp. Users (\"u0\"...) and items\n"
            "(\"i0\"...) have planted latent tastes (unit vectors near one of --factors axes); items follow a Zipf\n"
            "popularity; a user picks item i with probability proportional to popularity(i) * exp(%.0f * taste match); values\n"
            "1..5 rise with the match; timestamps increase. The same seed gives the same bytes. Output goes to stdout unless\n"
            "--output is given. Exit status: 0 written, 1 failure, 2 usage error.\n\nOptions:\n",
            argv0, BETA);
    recd_options_print(&spec, out);
    fprintf(out, "  -h, --help\n      Print this help and exit.\n");
}

int main(int argc, char **argv)
{
    datagen_options_t o = {0};
    char err[512];
    int want_help = 0, ret;

    recd_options_init(&spec, &o);
    if ((ret = recd_options_parse(&spec, &o, argc, argv, NULL, &want_help, err, sizeof(err))) != RECD_OK || want_help) {
        if (want_help)
            usage(stdout, argv[0]);
        else
            fprintf(stderr, "recd-datagen: %s\n", err);
        recd_options_dispose(&spec, &o);
        return want_help ? 0 : EXIT_USAGE;
    }
    const uint64_t n_users = o.users, n_items = o.items, n_interactions = o.interactions, seed = o.seed;
    const char sep = strcmp(o.format, "tsv") == 0 ? '\t' : ',';
    const char *output = strcmp(o.output, "-") == 0 ? NULL : o.output;

    const uint32_t f = o.factors;
    uint64_t state = seed;
    float *U = recd_xmalloc(n_users * f * sizeof(*U)), *V = recd_xmalloc(n_items * f * sizeof(*V));
    taste_vectors(U, n_users, f, &state);
    taste_vectors(V, n_items, f, &state);
    alias_t item_pop, user_act;
    {
        double *w = recd_xmalloc((n_items > n_users ? n_items : n_users) * sizeof(*w));
        uint32_t *perm = recd_xmalloc(n_items * sizeof(*perm));
        for (uint64_t i = 0; i != n_items; ++i)
            perm[i] = (uint32_t)i;
        for (uint64_t i = n_items - 1; i > 0; --i) {
            uint64_t j = recd_splitmix64(&state) % (i + 1);
            uint32_t t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        for (uint64_t r = 0; r != n_items; ++r)
            w[perm[r]] = pow((double)(r + 1), -ZIPF_S);
        alias_init(&item_pop, w, n_items);
        for (uint64_t u = 0; u != n_users; ++u)
            w[u] = exp(recd_rand_normal(&state)); /* log-normal activity */
        alias_init(&user_act, w, n_users);
        free(w);
        free(perm);
    }

    FILE *out = stdout;
    if (output != NULL && (out = fopen(output, "w")) == NULL) {
        fprintf(stderr, "recd-datagen: cannot open %s: %s\n", output, strerror(errno));
        recd_options_dispose(&spec, &o);
        return 1;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = recd_xmalloc(cap + 128);
    len = (size_t)snprintf(buf, cap, "user%citem%cvalue%ctimestamp\n", sep, sep, sep);
    double ts = (double)START_TS;
    int failed = 0;
    for (uint64_t n = 0; n != n_interactions && !failed; ++n) {
        uint32_t u = alias_draw(&user_act, &state), i;
        double match;
        const float *x = U + (size_t)u * f;
        for (;;) { /* rejection: candidates by popularity, kept with probability exp(BETA (match - 1)) */
            i = alias_draw(&item_pop, &state);
            const float *y = V + (size_t)i * f;
            match = 0;
            for (uint32_t k = 0; k != f; ++k)
                match += (double)x[k] * y[k];
            if (recd_rand_uniform(&state) < exp(BETA * (match - 1)))
                break;
        }
        long value = lround(3.0 + 4.0 * match + 0.8 * recd_rand_normal(&state));
        value = value < 1 ? 1 : value > 5 ? 5 : value;
        ts += -MEAN_GAP_SECONDS * log(1 - recd_rand_uniform(&state));

        char *p = buf + len;
        *p++ = 'u';
        p = put_u64(p, u);
        *p++ = sep;
        *p++ = 'i';
        p = put_u64(p, i);
        *p++ = sep;
        *p++ = (char)('0' + value);
        *p++ = sep;
        p = put_u64(p, (uint64_t)ts);
        *p++ = '\n';
        len = (size_t)(p - buf);
        if (len >= cap) {
            failed = fwrite(buf, 1, len, out) != len;
            len = 0;
        }
    }
    if (!failed && len != 0)
        failed = fwrite(buf, 1, len, out) != len;
    if (fflush(out) != 0 || ferror(out))
        failed = 1;
    if (out != stdout && fclose(out) != 0)
        failed = 1;
    if (failed)
        fprintf(stderr, "recd-datagen: write to %s failed: %s\n", output != NULL ? output : "stdout", strerror(errno));
    free(buf);
    free(U);
    free(V);
    free(item_pop.prob), free(item_pop.alias), free(user_act.prob), free(user_act.alias);
    recd_options_dispose(&spec, &o);
    return failed ? 1 : 0;
}
