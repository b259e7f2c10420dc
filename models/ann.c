/* ann.c: the IVF-Flat maximum-inner-product index — k-means build, byte form with checked mapping, approximate top-k.
 *
 * DESIGN. An item's score is x . y_i (+ b_i): the largest inner product, not the nearest neighbour. With y'_i =
 * (y_i, w b_i) and q' = (x, 1 / w), q' . y'_i is the score for any bias weight w (which only decides how much the biases
 * shape the cells). Each item becomes z_i = (y'_i, sqrt(M^2 - |y'_i|^2)) / M with M the largest |y'_i|, so every z_i has
 * norm 1 and, for q = q' / |q'| padded with a 0, |q - z_i|^2 = 2 - 2 q . y'_i / M: the nearest z_i are the best items
 * (Bachrach et al. 2014). k-means in that space gives the cells; a query ranks the cells by the same distance to their
 * centroids (largest q . c - |c|^2 / 2) and scores every item of the nearest cells exactly. Items are read in place from
 * the model's factor matrix (the index holds only item numbers), so an index costs 4 bytes per item plus the centroids.
 * The build is deterministic for its inputs and seed: the sample is seeded, sums run in item order, ties go to the lower
 * cell, and OpenBLAS does not split a product's few dozen terms between threads (test_ann_deterministic compares one
 * and two threads byte for byte).
 *
 * The byte form is a 128-byte header and four 64-byte-aligned arrays; a mapped index points into the caller's bytes after
 * every count, offset and item number has been checked (the lists must partition the items), so a reader never trusts
 * what it maps.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "models/ann.h"
#include "models/models_internal.h"
#include "models/scan.h"
#include "base/alloc.h"
#include "base/hash.h"

int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

#define ANN_MAGIC "RECDANN1"
#define ANN_FORMAT_VERSION 1
#define ANN_HEADER_SIZE 128
#define ANN_ALIGN 64
#define ANN_MAX_FACTORS 4096
/* Items per block of the build's assignment products: the block's scores against all centroids stay a few MiB. */
#define ANN_ASSIGN_BLOCK 256

/* The header, as laid out in the byte form (little-endian; read and written field by field). */
typedef struct st_ann_header_t {
    uint32_t version, kind, n_factors, has_bias;
    uint64_t n_items;
    uint32_t n_lists, n_probe;
    float bias_weight; /* the bias coordinate is w b_i in the items, 1 / w in the query (1 without biases) */
    uint32_t iterations;
    uint64_t seed;
    uint64_t off_centroids, off_half_sq, off_list_start, off_list_items, total_size;
} ann_header_t;

struct st_recd_ann_t {
    ann_header_t h;
    uint32_t dim;               /* n_factors + has_bias + 1: the augmented space */
    const float *centroids;     /* n_lists x dim */
    const float *half_sq;       /* n_lists: |c|^2 / 2 */
    const uint32_t *list_start; /* n_lists + 1: cell c holds list_items[list_start[c] .. list_start[c + 1]) */
    const uint32_t *list_items; /* n_items, ascending within each cell */
    uint32_t max_list;          /* the longest list's length */
    void *owned;                /* the bytes when built here (NULL when mapped) */
    size_t size;
    const uint8_t *bytes;
};

const char *recd_ann_kind_name(uint32_t kind)
{
    switch (kind) {
    case RECD_ANN_NONE:
        return "none";
    case RECD_ANN_IVF:
        return "ivf";
    default:
        return "unknown";
    }
}

int recd_ann_kind_parse(const char *name, recd_ann_kind_t *out)
{
    if (strcmp(name, "none") == 0)
        *out = RECD_ANN_NONE;
    else if (strcmp(name, "ivf") == 0)
        *out = RECD_ANN_IVF;
    else
        return -1;
    return 0;
}

void recd_ann_params_init(recd_ann_params_t *p)
{
    *p = (recd_ann_params_t){.iterations = 12, .train_per_list = 64, .seed = 42};
}

/* ---- the byte form --------------------------------------------------------------------------------------------------- */

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* Header field offsets. */
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_KIND = 12,
    H_FACTORS = 16,
    H_HAS_BIAS = 20,
    H_N_ITEMS = 24,
    H_N_LISTS = 32,
    H_N_PROBE = 36,
    H_BIAS_WEIGHT = 40,
    H_ITERATIONS = 44,
    H_SEED = 48,
    H_OFF_CENTROIDS = 56,
    H_OFF_HALF_SQ = 64,
    H_OFF_LIST_START = 72,
    H_OFF_LIST_ITEMS = 80,
    H_TOTAL_SIZE = 88,
};

static void write_header(uint8_t *b, const ann_header_t *h)
{
    memset(b, 0, ANN_HEADER_SIZE);
    memcpy(b + H_MAGIC, ANN_MAGIC, 8);
    put32(b + H_VERSION, h->version);
    put32(b + H_KIND, h->kind);
    put32(b + H_FACTORS, h->n_factors);
    put32(b + H_HAS_BIAS, h->has_bias);
    put64(b + H_N_ITEMS, h->n_items);
    put32(b + H_N_LISTS, h->n_lists);
    put32(b + H_N_PROBE, h->n_probe);
    memcpy(b + H_BIAS_WEIGHT, &h->bias_weight, 4);
    put32(b + H_ITERATIONS, h->iterations);
    put64(b + H_SEED, h->seed);
    put64(b + H_OFF_CENTROIDS, h->off_centroids);
    put64(b + H_OFF_HALF_SQ, h->off_half_sq);
    put64(b + H_OFF_LIST_START, h->off_list_start);
    put64(b + H_OFF_LIST_ITEMS, h->off_list_items);
    put64(b + H_TOTAL_SIZE, h->total_size);
}

static void read_header(const uint8_t *b, ann_header_t *h)
{
    h->version = get32(b + H_VERSION);
    h->kind = get32(b + H_KIND);
    h->n_factors = get32(b + H_FACTORS);
    h->has_bias = get32(b + H_HAS_BIAS);
    h->n_items = get64(b + H_N_ITEMS);
    h->n_lists = get32(b + H_N_LISTS);
    h->n_probe = get32(b + H_N_PROBE);
    memcpy(&h->bias_weight, b + H_BIAS_WEIGHT, 4);
    h->iterations = get32(b + H_ITERATIONS);
    h->seed = get64(b + H_SEED);
    h->off_centroids = get64(b + H_OFF_CENTROIDS);
    h->off_half_sq = get64(b + H_OFF_HALF_SQ);
    h->off_list_start = get64(b + H_OFF_LIST_START);
    h->off_list_items = get64(b + H_OFF_LIST_ITEMS);
    h->total_size = get64(b + H_TOTAL_SIZE);
}

static uint64_t align_up(uint64_t v)
{
    return (v + ANN_ALIGN - 1) & ~(uint64_t)(ANN_ALIGN - 1);
}

/* Lays out the sections after the header for the counts in h. */
static void layout(ann_header_t *h)
{
    uint64_t dim = (uint64_t)h->n_factors + h->has_bias + 1;
    h->off_centroids = ANN_HEADER_SIZE;
    h->off_half_sq = align_up(h->off_centroids + (uint64_t)h->n_lists * dim * sizeof(float));
    h->off_list_start = align_up(h->off_half_sq + (uint64_t)h->n_lists * sizeof(float));
    h->off_list_items = align_up(h->off_list_start + ((uint64_t)h->n_lists + 1) * sizeof(uint32_t));
    h->total_size = align_up(h->off_list_items + h->n_items * sizeof(uint32_t));
}

static void point_into(recd_ann_t *a)
{
    a->dim = a->h.n_factors + a->h.has_bias + 1;
    a->centroids = (const float *)(a->bytes + a->h.off_centroids);
    a->half_sq = (const float *)(a->bytes + a->h.off_half_sq);
    a->list_start = (const uint32_t *)(a->bytes + a->h.off_list_start);
    a->list_items = (const uint32_t *)(a->bytes + a->h.off_list_items);
}

/* The longest list (the lists already checked to be in order). */
static uint32_t longest_list(const recd_ann_t *a)
{
    uint32_t longest = 0;
    for (uint32_t c = 0; c != a->h.n_lists; ++c)
        if (a->list_start[c + 1] - a->list_start[c] > longest)
            longest = a->list_start[c + 1] - a->list_start[c];
    return longest;
}

/* Whether [off, off + len) lies inside size bytes, off aligned, without overflowing. */
static int section_ok(uint64_t off, uint64_t count, uint64_t elem, uint64_t size)
{
    if (off % ANN_ALIGN != 0 || off < ANN_HEADER_SIZE || off > size)
        return 0;
    if (elem != 0 && count > (size - off) / elem)
        return 0;
    return 1;
}

recd_ann_t *recd_ann_map(const void *data, size_t size, char *err, size_t errlen)
{
    const uint8_t *b = data;
    ann_header_t h;
    uint8_t *seen = NULL;
    recd_ann_t *a = NULL;

    if (data == NULL || size < ANN_HEADER_SIZE) {
        snprintf(err, errlen, "ANN index truncated: %zu bytes, the header alone is %d", size, ANN_HEADER_SIZE);
        return NULL;
    }
    if (((uintptr_t)data & 7) != 0) {
        snprintf(err, errlen, "ANN index bytes are not 8-byte aligned");
        return NULL;
    }
    if (memcmp(b, ANN_MAGIC, 8) != 0) {
        snprintf(err, errlen, "ANN index: bad magic (not a recd ANN index)");
        return NULL;
    }
    read_header(b, &h);
    if (h.version != ANN_FORMAT_VERSION) {
        snprintf(err, errlen, "ANN index: unsupported format version %u (this build reads %d)", h.version, ANN_FORMAT_VERSION);
        return NULL;
    }
    if (h.kind != RECD_ANN_IVF) {
        snprintf(err, errlen, "ANN index: unknown kind %u", h.kind);
        return NULL;
    }
    if (h.n_factors == 0 || h.n_factors > ANN_MAX_FACTORS || h.has_bias > 1) {
        snprintf(err, errlen, "ANN index: bad shape (%u factors, has_bias %u)", h.n_factors, h.has_bias);
        return NULL;
    }
    if (h.n_items == 0 || h.n_items > UINT32_MAX || h.n_lists == 0 || h.n_lists > h.n_items || h.n_probe == 0 ||
        h.n_probe > h.n_lists) {
        snprintf(err, errlen, "ANN index: inconsistent counts (%llu items, %u lists, %u probed)", (unsigned long long)h.n_items,
                 h.n_lists, h.n_probe);
        return NULL;
    }
    if (!isfinite(h.bias_weight) || !(h.bias_weight > 0.0f) || (!h.has_bias && h.bias_weight != 1.0f)) {
        snprintf(err, errlen, "ANN index: bad bias weight");
        return NULL;
    }
    uint64_t dim = (uint64_t)h.n_factors + h.has_bias + 1;
    if (h.total_size != size) {
        snprintf(err, errlen, "ANN index: size %zu does not match its header (%llu)", size, (unsigned long long)h.total_size);
        return NULL;
    }
    if (!section_ok(h.off_centroids, (uint64_t)h.n_lists * dim, sizeof(float), size) ||
        !section_ok(h.off_half_sq, h.n_lists, sizeof(float), size) ||
        !section_ok(h.off_list_start, (uint64_t)h.n_lists + 1, sizeof(uint32_t), size) ||
        !section_ok(h.off_list_items, h.n_items, sizeof(uint32_t), size)) {
        snprintf(err, errlen, "ANN index: a section lies outside the index or is misaligned");
        return NULL;
    }
    a = recd_xcalloc(1, sizeof(*a));
    a->h = h;
    a->bytes = b;
    a->size = size;
    point_into(a);
    for (uint64_t i = 0; i != (uint64_t)h.n_lists * dim; ++i) {
        if (!isfinite(a->centroids[i])) {
            snprintf(err, errlen, "ANN index: a centroid is not finite");
            goto Error;
        }
    }
    for (uint32_t c = 0; c != h.n_lists; ++c) {
        if (!isfinite(a->half_sq[c])) {
            snprintf(err, errlen, "ANN index: a centroid norm is not finite");
            goto Error;
        }
    }
    if (a->list_start[0] != 0 || a->list_start[h.n_lists] != h.n_items) {
        snprintf(err, errlen, "ANN index: the lists do not cover the %llu items", (unsigned long long)h.n_items);
        goto Error;
    }
    for (uint32_t c = 0; c != h.n_lists; ++c) {
        if (a->list_start[c] > a->list_start[c + 1]) {
            snprintf(err, errlen, "ANN index: list %u ends before it starts", c);
            goto Error;
        }
    }
    seen = recd_xcalloc((size_t)h.n_items, 1);
    for (uint64_t i = 0; i != h.n_items; ++i) {
        uint32_t item = a->list_items[i];
        if (item >= h.n_items || seen[item]) {
            snprintf(err, errlen, "ANN index: list entry %llu (item %u) is out of range or repeated", (unsigned long long)i, item);
            goto Error;
        }
        seen[item] = 1;
    }
    free(seen);
    a->max_list = longest_list(a);
    return a;
Error:
    free(seen);
    free(a);
    return NULL;
}

void recd_ann_free(recd_ann_t *a)
{
    if (a == NULL)
        return;
    free(a->owned);
    free(a);
}

const void *recd_ann_bytes(const recd_ann_t *a, size_t *size)
{
    *size = a->size;
    return a->bytes;
}

uint32_t recd_ann_kind(const recd_ann_t *a)
{
    return a->h.kind;
}

size_t recd_ann_n_items(const recd_ann_t *a)
{
    return (size_t)a->h.n_items;
}

uint32_t recd_ann_n_factors(const recd_ann_t *a)
{
    return a->h.n_factors;
}

int recd_ann_has_bias(const recd_ann_t *a)
{
    return (int)a->h.has_bias;
}

float recd_ann_bias_weight(const recd_ann_t *a)
{
    return a->h.bias_weight;
}

uint32_t recd_ann_n_lists(const recd_ann_t *a)
{
    return a->h.n_lists;
}

uint32_t recd_ann_n_probe(const recd_ann_t *a)
{
    return a->h.n_probe;
}

int recd_ann_set_n_probe(recd_ann_t *a, uint32_t n_probe)
{
    if (a->owned == NULL || n_probe == 0 || n_probe > a->h.n_lists)
        return RECD_EINVAL;
    a->h.n_probe = n_probe;
    put32((uint8_t *)a->owned + H_N_PROBE, n_probe);
    return RECD_OK;
}

int recd_ann_check_scorer(const recd_ann_t *a, const recd_scorer_t *s, char *err, size_t errlen)
{
    int scorer_bias = (s->kind == RECD_MODEL_BPR || s->kind == RECD_MODEL_BIASED_MF) && s->item_bias != NULL;

    if (s->kind == RECD_MODEL_POPULARITY || s->n_factors == 0 || s->item_factors == NULL) {
        snprintf(err, errlen, "ANN index: a %s model has no item factors to search", recd_model_kind_name(s->kind));
        return RECD_EINVAL;
    }
    if (a->h.n_items != s->n_items || a->h.n_factors != s->n_factors) {
        snprintf(err, errlen, "ANN index: built for %llu items x %u factors, the model has %zu x %u",
                 (unsigned long long)a->h.n_items, a->h.n_factors, s->n_items, s->n_factors);
        return RECD_EINVAL;
    }
    if ((int)a->h.has_bias != scorer_bias) {
        snprintf(err, errlen, "ANN index: built %s item biases, the model scores %s them", a->h.has_bias ? "with" : "without",
                 scorer_bias ? "with" : "without");
        return RECD_EINVAL;
    }
    return RECD_OK;
}

/* ---- building -------------------------------------------------------------------------------------------------------- */

/* The augmented rows z_i (dim floats each) of items[0..n) into out. */
static void augment_rows(const float *factors, const float *bias, double bias_weight, uint32_t f, uint32_t dim, double scale,
                         const uint32_t *items, size_t first, size_t n, float *out)
{
    for (size_t r = 0; r != n; ++r) {
        size_t i = items != NULL ? items[first + r] : first + r;
        const float *y = factors + i * f;
        float *z = out + r * dim;
        double sq = 0.0;
        for (uint32_t j = 0; j != f; ++j) {
            z[j] = (float)(y[j] * scale);
            sq += (double)z[j] * z[j];
        }
        if (bias != NULL) {
            z[f] = (float)(bias[i] * bias_weight * scale);
            sq += (double)z[f] * z[f];
        }
        z[dim - 1] = (float)sqrt(sq < 1.0 ? 1.0 - sq : 0.0);
    }
}

/* Nearest centroid (largest z . c - |c|^2 / 2, ties to the lower cell) of each of n rows; scores is n x n_lists scratch. */
static void assign_rows(const float *rows, size_t n, const float *centroids, const float *half_sq, uint32_t n_lists, uint32_t dim,
                        float *scores, uint32_t *out)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n_lists, (int)dim, 1.0f, rows, (int)dim, centroids, (int)dim,
                0.0f, scores, (int)n_lists);
    for (size_t r = 0; r != n; ++r) {
        const float *g = scores + r * n_lists;
        uint32_t best = 0;
        float best_v = g[0] - half_sq[0];
        for (uint32_t c = 1; c != n_lists; ++c) {
            float v = g[c] - half_sq[c];
            if (v > best_v) {
                best_v = v;
                best = c;
            }
        }
        out[r] = best;
    }
}

/* One nearest-centroid pass over n rows: stored rows (the k-means sample) or items first .. first + n, augmented per block. */
typedef struct st_assign_job_t {
    const float *rows; /* n x dim, or NULL: augment the items from factors and bias */
    const float *factors, *bias;
    double bias_weight, scale;
    uint32_t f, dim, n_lists, n_threads;
    size_t n;
    const float *centroids, *half_sq;
    uint32_t *out; /* n cells */
} assign_job_t;

typedef struct st_assign_worker_t {
    const assign_job_t *job;
    uint32_t index;
    pthread_t thread;
} assign_worker_t;

/* Worker `index` takes blocks index, index + n_threads, ...: each row's cell depends on nothing but the row. */
static void *assign_blocks(void *arg)
{
    const assign_worker_t *w = arg;
    const assign_job_t *j = w->job;
    float *scores = recd_xmalloc((size_t)ANN_ASSIGN_BLOCK * j->n_lists * sizeof(float));
    float *rows = j->rows == NULL ? recd_xmalloc((size_t)ANN_ASSIGN_BLOCK * j->dim * sizeof(float)) : NULL;
    for (size_t first = (size_t)w->index * ANN_ASSIGN_BLOCK; first < j->n; first += (size_t)j->n_threads * ANN_ASSIGN_BLOCK) {
        size_t len = j->n - first < ANN_ASSIGN_BLOCK ? j->n - first : ANN_ASSIGN_BLOCK;
        const float *block = j->rows != NULL ? j->rows + first * j->dim : rows;
        if (j->rows == NULL)
            augment_rows(j->factors, j->bias, j->bias_weight, j->f, j->dim, j->scale, NULL, first, len, rows);
        assign_rows(block, len, j->centroids, j->half_sq, j->n_lists, j->dim, scores, j->out + first);
    }
    free(scores);
    free(rows);
    return NULL;
}

/* Runs the pass on job->n_threads (>= 1) threads, the caller's among them; a thread that cannot start has its blocks done by
 * the caller, so the cells are the same whatever happens. */
static void assign_all(const assign_job_t *job)
{
    uint32_t n = job->n_threads;
    assign_worker_t *w = recd_xcalloc(n, sizeof(*w));
    uint8_t *started = recd_xcalloc(n, 1);
    for (uint32_t t = 0; t != n; ++t)
        w[t] = (assign_worker_t){.job = job, .index = t};
    for (uint32_t t = 1; t < n; ++t)
        started[t] = pthread_create(&w[t].thread, NULL, assign_blocks, &w[t]) == 0;
    for (uint32_t t = 0; t != n; ++t)
        if (!started[t])
            assign_blocks(&w[t]);
    for (uint32_t t = 1; t < n; ++t)
        if (started[t])
            pthread_join(w[t].thread, NULL);
    free(started);
    free(w);
}

static void compute_half_sq(const float *centroids, uint32_t n_lists, uint32_t dim, float *half_sq)
{
    for (uint32_t c = 0; c != n_lists; ++c) {
        double sq = 0.0;
        for (uint32_t j = 0; j != dim; ++j)
            sq += (double)centroids[(size_t)c * dim + j] * centroids[(size_t)c * dim + j];
        half_sq[c] = (float)(sq / 2.0);
    }
}

/* Lloyd's k-means on n rows; centroids holds the start and receives the result. */
static void kmeans(const float *rows, size_t n, uint32_t n_lists, uint32_t dim, uint32_t iterations, uint64_t seed,
                   uint32_t n_threads, float *centroids)
{
    float *half_sq = recd_xmalloc(n_lists * sizeof(float));
    uint32_t *cell = recd_xmalloc(n * sizeof(uint32_t));
    double *sum = recd_xmalloc((size_t)n_lists * dim * sizeof(double));
    size_t *count = recd_xmalloc(n_lists * sizeof(size_t));
    uint64_t rng = seed ^ UINT64_C(0x5eed0f4b6a11);

    for (uint32_t it = 0; it != iterations; ++it) {
        compute_half_sq(centroids, n_lists, dim, half_sq);
        assign_job_t job = {.rows = rows,
                            .dim = dim,
                            .n_lists = n_lists,
                            .n_threads = n_threads,
                            .n = n,
                            .centroids = centroids,
                            .half_sq = half_sq,
                            .out = cell};
        assign_all(&job);
        memset(sum, 0, (size_t)n_lists * dim * sizeof(double));
        memset(count, 0, n_lists * sizeof(size_t));
        for (size_t r = 0; r != n; ++r) {
            double *s = sum + (size_t)cell[r] * dim;
            const float *z = rows + r * dim;
            for (uint32_t j = 0; j != dim; ++j)
                s[j] += z[j];
            ++count[cell[r]];
        }
        for (uint32_t c = 0; c != n_lists; ++c)
            if (count[c] != 0)
                for (uint32_t j = 0; j != dim; ++j)
                    centroids[(size_t)c * dim + j] = (float)(sum[(size_t)c * dim + j] / (double)count[c]);
        /* An empty cell takes half of the largest one: both get its centroid, nudged apart (as FAISS does). */
        for (uint32_t c = 0; c != n_lists; ++c) {
            if (count[c] != 0)
                continue;
            uint32_t big = 0;
            for (uint32_t d = 1; d != n_lists; ++d)
                if (count[d] > count[big])
                    big = d;
            if (count[big] < 2)
                break;
            float *cc = centroids + (size_t)c * dim, *cb = centroids + (size_t)big * dim;
            for (uint32_t j = 0; j != dim; ++j) {
                float eps = (float)(1e-3 * (recd_rand_uniform(&rng) - 0.5));
                cc[j] = cb[j] * (1.0f + eps);
                cb[j] = cb[j] * (1.0f - eps);
            }
            count[c] = count[big] / 2;
            count[big] -= count[c];
        }
    }
    free(half_sq);
    free(cell);
    free(sum);
    free(count);
}

/*
 * The default weight of the bias coordinate: twice what gives it the variance of all factor coordinates together. A bias
 * that moves scores as much as the factors do then shapes the cells as much as they do, so a cell holds items of similar
 * bias and its centroid says how well its best items can score (measured on bench/ann's catalogue with biases: recall@10
 * at 128 of 1789 cells 0.81 with weight 1, 0.95 with 4, 0.97 with 8; this rule gives about 8 there).
 */
static double auto_bias_weight(const float *factors, const float *bias, size_t n, uint32_t f)
{
    double factor_var = 0.0, b_mean = 0.0, b_var = 0.0;
    for (uint32_t j = 0; j != f; ++j) {
        double m = 0.0, v = 0.0;
        for (size_t i = 0; i != n; ++i)
            m += factors[i * f + j];
        m /= (double)n;
        for (size_t i = 0; i != n; ++i)
            v += (factors[i * f + j] - m) * (factors[i * f + j] - m);
        factor_var += v / (double)n;
    }
    for (size_t i = 0; i != n; ++i)
        b_mean += bias[i];
    b_mean /= (double)n;
    for (size_t i = 0; i != n; ++i)
        b_var += (bias[i] - b_mean) * (bias[i] - b_mean);
    b_var /= (double)n;
    if (!(b_var > 0.0) || !(factor_var > 0.0) || !isfinite(b_var) || !isfinite(factor_var))
        return 1.0;
    double w = 2.0 * sqrt(factor_var / b_var);
    return w < 1.0 ? 1.0 : w > 64.0 ? 64.0 : w;
}

recd_ann_t *recd_ann_build(const float *item_factors, const float *item_bias, size_t n_items, uint32_t n_factors,
                           const recd_ann_params_t *p, char *err, size_t errlen)
{
    ann_header_t h = {.version = ANN_FORMAT_VERSION, .kind = RECD_ANN_IVF, .n_factors = n_factors, .has_bias = item_bias != NULL};
    recd_ann_t *a = NULL;
    uint32_t dim = n_factors + h.has_bias + 1;
    int saved_threads = 0;

    if (item_factors == NULL || n_factors == 0 || n_factors > ANN_MAX_FACTORS || n_items == 0 || n_items > UINT32_MAX) {
        snprintf(err, errlen, "ANN index: needs 1..%u factors and 1..%u items (got %u x %zu)", ANN_MAX_FACTORS, UINT32_MAX,
                 n_factors, n_items);
        return NULL;
    }
    if (p->iterations == 0 || p->train_per_list == 0) {
        snprintf(err, errlen, "ANN index: iterations and train_per_list must be at least 1");
        return NULL;
    }
    uint32_t n_lists = p->n_lists;
    if (n_lists == 0) {
        n_lists = (uint32_t)lround(4.0 * sqrt((double)n_items));
        if (n_lists < 1)
            n_lists = 1;
    }
    if (n_lists > n_items) {
        snprintf(err, errlen, "ANN index: %u lists for %zu items (at most one list per item)", n_lists, n_items);
        return NULL;
    }
    uint32_t n_probe = p->n_probe != 0 ? p->n_probe : (n_lists + 15) / 16;
    if (n_probe > n_lists) {
        snprintf(err, errlen, "ANN index: n_probe %u is more than the %u lists", n_probe, n_lists);
        return NULL;
    }
    double bias_weight = p->bias_weight != 0.0f ? p->bias_weight
                         : item_bias != NULL    ? auto_bias_weight(item_factors, item_bias, n_items, n_factors)
                                                : 1.0;
    if (item_bias == NULL)
        bias_weight = 1.0;
    if (!isfinite(bias_weight) || !(bias_weight > 0.0)) {
        snprintf(err, errlen, "ANN index: the bias weight must be a positive number");
        return NULL;
    }
    double max_sq = 0.0;
    for (size_t i = 0; i != n_items; ++i) {
        const float *y = item_factors + i * n_factors;
        double sq = 0.0;
        for (uint32_t j = 0; j != n_factors; ++j)
            sq += (double)y[j] * y[j];
        if (item_bias != NULL)
            sq += (double)item_bias[i] * item_bias[i] * bias_weight * bias_weight;
        if (!isfinite(sq)) {
            snprintf(err, errlen, "ANN index: item %zu has non-finite factors or bias", i);
            return NULL;
        }
        if (sq > max_sq)
            max_sq = sq;
    }
    double scale = max_sq > 0.0 ? 1.0 / sqrt(max_sq) : 1.0;
    h.n_items = n_items;
    h.n_lists = n_lists;
    h.n_probe = n_probe;
    h.bias_weight = (float)bias_weight;
    h.iterations = p->iterations;
    h.seed = p->seed;
    layout(&h);

    /* the build's own threads each run single-threaded products: the same work, split by blocks of items */
    uint32_t n_threads = p->threads != 0 ? p->threads : 1;
    saved_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    /* The training sample: a seeded partial shuffle, taken back in item order so that the sums run in a fixed order. */
    uint64_t rng = p->seed;
    size_t n_train = (size_t)n_lists * p->train_per_list;
    if (n_train > n_items)
        n_train = n_items;
    uint32_t *perm = recd_xmalloc(n_items * sizeof(uint32_t));
    for (size_t i = 0; i != n_items; ++i)
        perm[i] = (uint32_t)i;
    for (size_t i = 0; i != n_train; ++i) {
        size_t j = i + (size_t)recd_rand_below(&rng, n_items - i);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    float *centroids = recd_xmalloc((size_t)n_lists * dim * sizeof(float));
    float *train = recd_xmalloc(n_train * dim * sizeof(float));
    /* the first n_lists drawn items start the centroids; then the sample is sorted for a fixed summation order */
    augment_rows(item_factors, item_bias, bias_weight, n_factors, dim, scale, perm, 0, n_lists, centroids);
    uint8_t *in_sample = recd_xcalloc(n_items, 1);
    for (size_t i = 0; i != n_train; ++i)
        in_sample[perm[i]] = 1;
    for (size_t i = 0, t = 0; i != n_items; ++i)
        if (in_sample[i])
            perm[t++] = (uint32_t)i;
    free(in_sample);
    augment_rows(item_factors, item_bias, bias_weight, n_factors, dim, scale, perm, 0, n_train, train);
    kmeans(train, n_train, n_lists, dim, p->iterations, p->seed, n_threads, centroids);
    free(train);

    /* every item to its cell, then the lists by a counting sort (ascending items within each) */
    uint8_t *bytes = recd_xaligned_alloc(ANN_ALIGN, (size_t)h.total_size);
    memset(bytes, 0, (size_t)h.total_size);
    float *half_sq = (float *)(bytes + h.off_half_sq);
    uint32_t *list_start = (uint32_t *)(bytes + h.off_list_start);
    uint32_t *list_items = (uint32_t *)(bytes + h.off_list_items);
    compute_half_sq(centroids, n_lists, dim, half_sq);
    uint32_t *cell = perm; /* reused: n_items entries */
    assign_job_t job = {.factors = item_factors,
                        .bias = item_bias,
                        .bias_weight = bias_weight,
                        .scale = scale,
                        .f = n_factors,
                        .dim = dim,
                        .n_lists = n_lists,
                        .n_threads = n_threads,
                        .n = n_items,
                        .centroids = centroids,
                        .half_sq = half_sq,
                        .out = cell};
    assign_all(&job);
    for (size_t i = 0; i != n_items; ++i)
        ++list_start[cell[i] + 1];
    for (uint32_t c = 0; c != n_lists; ++c)
        list_start[c + 1] += list_start[c];
    uint32_t *fill = recd_xmalloc(n_lists * sizeof(uint32_t));
    memcpy(fill, list_start, n_lists * sizeof(uint32_t));
    for (size_t i = 0; i != n_items; ++i)
        list_items[fill[cell[i]]++] = (uint32_t)i;
    free(fill);
    free(perm);
    memcpy(bytes + h.off_centroids, centroids, (size_t)n_lists * dim * sizeof(float));
    free(centroids);
    write_header(bytes, &h);
    openblas_set_num_threads(saved_threads > 0 ? saved_threads : 1);

    a = recd_xcalloc(1, sizeof(*a));
    a->h = h;
    a->owned = bytes;
    a->bytes = bytes;
    a->size = (size_t)h.total_size;
    point_into(a);
    a->max_list = longest_list(a);
    return a;
}

/* ---- searching ------------------------------------------------------------------------------------------------------- */

/* A bounded min-heap of the best entries seen (worst at [0]): scan.c's heap and answer order. */
typedef struct st_best_t {
    recd_scored_t *e;
    size_t len, cap;
} best_t;

/* Whether (score, index) would enter the heap. */
static inline int best_admits(const best_t *b, float score, uint32_t index)
{
    return b->len < b->cap || recd_scored_worse(b->e[0].score, b->e[0].index, score, index);
}

static void best_push(best_t *b, float score, uint32_t index)
{
    if (b->len < b->cap) {
        b->e[b->len] = (recd_scored_t){index, score};
        recd_heap_sift_up(b->e, b->len++);
    } else {
        b->e[0] = (recd_scored_t){index, score};
        recd_heap_sift_down(b->e, b->len, 0);
    }
}

/* Sorts the heap in place, best first; returns its length. */
static size_t best_finish(best_t *b)
{
    recd_heap_sort(b->e, b->len);
    return b->len;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int is_excluded(const uint32_t *sorted, size_t n, uint32_t item)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && sorted[lo] == item;
}

/* What one call of recd_ann_topk reuses across its queries. */
typedef struct st_search_scratch_t {
    float *cell_score;    /* n_lists */
    recd_scored_t *order; /* n_lists: cells best first */
    uint32_t *excluded;   /* sorted, unique */
    size_t excluded_cap;
    float *query; /* dim: (x, 1/w) / |(x, 1/w)|, then the 0 that meets the norm coordinate */
    float *tile;  /* max_list: the scores of one list */
} search_scratch_t;

/* Scores n items (idx) exactly as recd_scorer_score does: scan.c's canonical dot product, then its biases. */
static void score_items(const recd_scorer_t *s, const float *x, float offset, const uint32_t *idx, size_t n, float *out)
{
    recd_dots(1, RECD_FACTORS_F32, s->item_factors, NULL, idx, n, s->n_factors, x, out);
    recd_scan_add_biases(s, out, 0, idx, n, offset);
}

static void answer_one(const recd_scorer_t *s, const recd_ann_t *a, recd_scan_query_t *q, uint32_t n_probe, search_scratch_t *w)
{
    uint32_t f = s->n_factors, n_lists = a->h.n_lists;
    const float *x = q->vec;
    float offset = recd_scan_user_offset(s, q->user);

    /* the query in the augmented space, and the cells by distance: largest q . c - |c|^2 / 2 */
    double sq = 0.0;
    for (uint32_t j = 0; j != f; ++j)
        sq += (double)x[j] * x[j];
    float bias_q = 1.0f / a->h.bias_weight; /* (x, 1/w) . (y, w b) = x . y + b */
    if (a->h.has_bias)
        sq += (double)bias_q * bias_q;
    float inv = sq > 0.0 ? (float)(1.0 / sqrt(sq)) : 0.0f;
    for (uint32_t j = 0; j != f; ++j)
        w->query[j] = x[j] * inv;
    if (a->h.has_bias)
        w->query[f] = bias_q * inv;
    w->query[a->dim - 1] = 0.0f;
    recd_dots(1, RECD_FACTORS_F32, a->centroids, NULL, NULL, n_lists, a->dim, w->query, w->cell_score);
    for (uint32_t c = 0; c != n_lists; ++c)
        w->cell_score[c] -= a->half_sq[c];

    size_t n_ex = 0;
    if (q->n_excluded != 0) {
        if (q->n_excluded > w->excluded_cap) {
            w->excluded_cap = q->n_excluded;
            w->excluded = recd_xrealloc(w->excluded, w->excluded_cap * sizeof(uint32_t));
        }
        memcpy(w->excluded, q->excluded, q->n_excluded * sizeof(uint32_t));
        qsort(w->excluded, q->n_excluded, sizeof(uint32_t), cmp_u32);
        for (size_t i = 0; i != q->n_excluded; ++i)
            if (n_ex == 0 || w->excluded[n_ex - 1] != w->excluded[i])
                w->excluded[n_ex++] = w->excluded[i];
    }
    /* Oversampling, so that exclusions cannot starve the answer: keep probing past n_probe until this many not-excluded items
     * were seen, and probe n_probe more cells for every k excluded items that would have made the answer so far. */
    size_t want = (size_t)q->k * 4;
    if (want < (size_t)q->k + 2 * n_ex)
        want = (size_t)q->k + 2 * n_ex;
    if (want < 100)
        want = 100;

    size_t ranked = recd_topk(w->cell_score, n_lists, n_probe * 2 < n_lists ? n_probe * 2 : n_lists, w->order);
    best_t best = {q->out, 0, q->k};
    size_t seen = 0, stolen = 0;
    for (size_t r = 0;; ++r) {
        if (r == ranked) {
            if (ranked == n_lists)
                break;
            ranked = recd_topk(w->cell_score, n_lists, ranked * 4 < n_lists ? ranked * 4 : n_lists, w->order);
        }
        if (seen >= want && r >= n_probe + (n_probe * stolen + q->k - 1) / q->k)
            break;
        uint32_t c = w->order[r].index;
        const uint32_t *items = a->list_items + a->list_start[c];
        size_t len = a->list_start[c + 1] - a->list_start[c];
        score_items(s, x, offset, items, len, w->tile);
        for (size_t t = 0; t != len; ++t) {
            float score = w->tile[t];
            uint32_t i = items[t];
            if (!(fabsf(score) < INFINITY)) /* recd_topk never answers a non-finite score */
                continue;
            int admits = best_admits(&best, score, i);
            if (n_ex != 0 && is_excluded(w->excluded, n_ex, i)) {
                stolen += admits;
                continue;
            }
            ++seen;
            if (admits)
                best_push(&best, score, i);
        }
    }
    q->n_out = best_finish(&best);
}

/* The exact answer to queries whose scorer has no index to search. */
static void answer_exactly(const recd_scorer_t *s, recd_scan_query_t *q, size_t n)
{
    recd_scan_scratch_t *scratch = recd_scan_scratch_new();
    recd_scorer_t exact = *s;
    exact.ann = NULL;
    recd_scan_topk(&exact, q, n, scratch);
    recd_scan_scratch_free(scratch);
}

void recd_ann_topk_probe(const recd_scorer_t *s, recd_scan_query_t *q, size_t n, uint32_t n_probe)
{
    const recd_ann_t *a = s->ann;

    /* an index of another shape cannot be searched safely: exact (recd_ann_check_scorer says why when it is attached) */
    if (a == NULL || s->kind == RECD_MODEL_POPULARITY || s->item_factors == NULL || a->h.n_items != s->n_items ||
        a->h.n_factors != s->n_factors) {
        answer_exactly(s, q, n);
        return;
    }
    if (n_probe == 0)
        n_probe = a->h.n_probe;
    if (n_probe > a->h.n_lists)
        n_probe = a->h.n_lists;
    search_scratch_t w = {.cell_score = recd_xmalloc(a->h.n_lists * sizeof(float)),
                          .order = recd_xmalloc(a->h.n_lists * sizeof(recd_scored_t)),
                          .query = recd_xmalloc(a->dim * sizeof(float)),
                          .tile = recd_xmalloc((a->max_list + 1) * sizeof(float))};
    for (size_t i = 0; i != n; ++i) {
        if (q[i].k == 0) {
            q[i].n_out = 0;
            continue;
        }
        answer_one(s, a, &q[i], n_probe, &w);
    }
    free(w.cell_score);
    free(w.order);
    free(w.query);
    free(w.tile);
    free(w.excluded);
}

void recd_ann_topk(const recd_scorer_t *s, recd_scan_query_t *q, size_t n)
{
    recd_ann_topk_probe(s, q, n, 0);
}

int recd_ann_recall(const recd_scorer_t *s, const float *user_vecs, const int64_t *users, size_t n_users, uint32_t k,
                    uint32_t n_probe, double *recall)
{
    if (s->ann == NULL || k == 0 || n_users == 0)
        return RECD_EINVAL;
    recd_scored_t *exact = recd_xmalloc(k * sizeof(recd_scored_t)), *approx = recd_xmalloc(k * sizeof(recd_scored_t));
    size_t found = 0, total = 0;
    for (size_t u = 0; u != n_users; ++u) {
        recd_scan_query_t qe = {.vec = user_vecs + u * s->n_factors, .user = users != NULL ? users[u] : -1, .k = k, .out = exact};
        recd_scan_query_t qa = qe;
        qa.out = approx;
        qa.approximate = 1;
        answer_exactly(s, &qe, 1);
        recd_ann_topk_probe(s, &qa, 1, n_probe);
        for (size_t i = 0; i != qe.n_out; ++i)
            for (size_t j = 0; j != qa.n_out; ++j)
                if (approx[j].index == exact[i].index) {
                    ++found;
                    break;
                }
        total += qe.n_out;
    }
    free(exact);
    free(approx);
    *recall = total != 0 ? (double)found / (double)total : 1.0;
    return RECD_OK;
}

int recd_ann_tune_n_probe(recd_ann_t *a, const recd_scorer_t *s, const float *user_vecs, const int64_t *users, size_t n_users,
                          uint32_t k, double target, double *recall)
{
    if (a == NULL || s->ann != a || a->owned == NULL || !(target >= 0.0 && target <= 1.0))
        return RECD_EINVAL;
    for (uint32_t n_probe = 1;; n_probe = n_probe * 2 < a->h.n_lists ? n_probe * 2 : a->h.n_lists) {
        int ret = recd_ann_recall(s, user_vecs, users, n_users, k, n_probe, recall);
        if (ret != RECD_OK)
            return ret;
        if (*recall >= target || n_probe == a->h.n_lists)
            return recd_ann_set_n_probe(a, n_probe);
    }
}

/* ---- the artifact's section ------------------------------------------------------------------------------------------ */

int recd_model_attach_ann(recd_model_t *m, char *msg, size_t msglen)
{
    uint64_t size = 0;
    const void *data = recd_model_extra(m, RECD_ARTIFACT_ANN_INDEX, &size);
    char why[256];
    recd_scorer_t s;

    if (data == NULL)
        return 0;
    if ((m->ann = recd_ann_map(data, (size_t)size, why, sizeof(why))) == NULL) {
        snprintf(msg, msglen, "bad ANN index section: %s", why);
        return -1;
    }
    recd_model_scorer(m, &s);
    if (recd_ann_check_scorer(m->ann, &s, why, sizeof(why)) != RECD_OK) {
        snprintf(msg, msglen, "bad ANN index section: %s", why);
        recd_ann_free(m->ann);
        m->ann = NULL;
        return -1;
    }
    return 0;
}

const recd_ann_t *recd_model_ann(const recd_model_t *m)
{
    return m->ann;
}
