/* swap_artifact: the generated artifacts of bench/swap and bench/serve_scale, and the time an artifact takes to load.
 *
 *   swap_artifact write PATH [ITEMS [USERS [FACTORS [SEED]]]]             (defaults 100000 50000 64 1)
 *   swap_artifact write-clustered PATH [ITEMS [USERS [FACTORS [SEED [ANN_PROBE]]]]]   (same defaults; no index)
 *   swap_artifact time-open PATH [RUNS]                                    (default 7)
 *
 * write: an ALS artifact (recd_model_write) with uniform random factors, ids "i<n>" and "u<n>", and 20 training items
 * per user (uniform over the catalogue).
 * write-clustered: the same shape, but with the structure trained factors have, so that an approximate index meets the
 * difficulties it meets on real data: items fall into clusters of skewed sizes (cluster c drawn with weight 1/(c+1)),
 * each item is its cluster's centre plus Gaussian noise, scaled by a log-normal norm (popular items score higher for
 * everyone); each user mixes one to three centres plus noise, and takes 80% of its training items from its first
 * cluster. Everything comes from SEED, so a seed always gives the same bytes. With ANN_PROBE > 0 the artifact also carries
 * an IVF index (models/ann.h, default cells, searched ANN_PROBE cells at a time), for search=approximate.
 * time-open: per run, with the file in the page cache (one untimed read first): recd_model_open as recd loads a version
 * (pread into anonymous memory, SHA-256 and every check, id tables); then the two ways of getting the bytes with the
 * SHA-256 over them that every load does: pread into anonymous memory, and a read-only mmap of the file (the loader before
 * the copy). Prints each run and the median, min and max of each, in milliseconds. */
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "models/ann.h"
#include "models/model.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t rng_state = 1;
static uint32_t next_u32(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    rng_state = x;
    return (uint32_t)((x * 0x2545f4914f6cdd1dULL) >> 32);
}

/* A standard normal draw (Box-Muller; one of the pair is dropped, which costs little next to the file's SHA-256). */
static float next_normal(void)
{
    double u1 = ((double)next_u32() + 1.0) / 4294967297.0, u2 = (double)next_u32() / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A cluster with weight 1/(c+1) (Zipf, exponent 1): inverse of its cumulative weight, cum[c] = sum_{j<=c} 1/(j+1). */
static uint32_t next_cluster(const double *cum, uint32_t n_clusters)
{
    double x = (double)next_u32() / 4294967296.0 * cum[n_clusters - 1];
    uint32_t lo = 0, hi = n_clusters - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cum[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

typedef struct st_clustered_t {
    uint32_t n_clusters;
    double *cum;          /* cumulative cluster weights */
    uint32_t *by_cluster; /* item indexes grouped by cluster */
    size_t *start;        /* cluster c's items: by_cluster[start[c] .. start[c + 1] - 1] */
    uint32_t *user_cluster;
} clustered_t;

/* Fills item_f and user_f with clustered factors (see write-clustered above) and records what the training items need. */
static void fill_clustered(clustered_t *cl, float *item_f, size_t n_items, float *user_f, size_t n_users, uint32_t factors)
{
    uint32_t nc = (uint32_t)(n_items / 2000 < 16 ? 16 : n_items / 2000 > 1024 ? 1024 : n_items / 2000);
    float *centre = malloc((size_t)nc * factors * sizeof(float));
    uint32_t *cluster_of = malloc(n_items * sizeof(uint32_t));
    float scale = 1.0f / sqrtf((float)factors);
    cl->n_clusters = nc;
    cl->cum = malloc(nc * sizeof(double));
    cl->start = calloc((size_t)nc + 1, sizeof(size_t));
    cl->by_cluster = malloc(n_items * sizeof(uint32_t));
    cl->user_cluster = malloc(n_users * sizeof(uint32_t));
    if (!centre || !cluster_of || !cl->cum || !cl->start || !cl->by_cluster || !cl->user_cluster) {
        fprintf(stderr, "swap_artifact: out of memory\n");
        exit(1);
    }
    for (uint32_t c = 0; c < nc; ++c)
        cl->cum[c] = (c ? cl->cum[c - 1] : 0) + 1.0 / (c + 1);
    for (size_t j = 0; j < (size_t)nc * factors; ++j)
        centre[j] = next_normal() * scale;
    for (size_t i = 0; i < n_items; ++i) {
        uint32_t c = next_cluster(cl->cum, nc);
        float norm = expf(0.35f * next_normal());
        cluster_of[i] = c;
        ++cl->start[c + 1];
        for (uint32_t j = 0; j < factors; ++j)
            item_f[i * factors + j] = norm * (centre[(size_t)c * factors + j] + 0.6f * scale * next_normal());
    }
    for (uint32_t c = 0; c < nc; ++c)
        cl->start[c + 1] += cl->start[c];
    size_t *fill = malloc(nc * sizeof(size_t));
    if (fill == NULL)
        exit(1);
    memcpy(fill, cl->start, nc * sizeof(size_t));
    for (size_t i = 0; i < n_items; ++i)
        cl->by_cluster[fill[cluster_of[i]]++] = (uint32_t)i;
    for (size_t u = 0; u < n_users; ++u) {
        uint32_t mix = 1 + next_u32() % 3;
        float *v = user_f + u * factors;
        for (uint32_t j = 0; j < factors; ++j)
            v[j] = 0.5f * scale * next_normal();
        for (uint32_t m = 0; m < mix; ++m) {
            uint32_t c = next_cluster(cl->cum, nc);
            float w = m == 0 ? 1.0f : 0.5f;
            if (m == 0)
                cl->user_cluster[u] = c;
            for (uint32_t j = 0; j < factors; ++j)
                v[j] += w * centre[(size_t)c * factors + j];
        }
    }
    free(fill), free(centre), free(cluster_of);
}

static uint32_t next_training_item(const clustered_t *cl, size_t user, size_t n_items)
{
    if (cl == NULL || next_u32() % 5 == 0)
        return next_u32() % (uint32_t)n_items;
    uint32_t c = cl->user_cluster[user];
    size_t size = cl->start[c + 1] - cl->start[c];
    if (size == 0)
        return next_u32() % (uint32_t)n_items;
    return cl->by_cluster[cl->start[c] + next_u32() % size];
}

static int write_artifact(const char *path, size_t n_items, size_t n_users, uint32_t factors, uint64_t seed, int clustered,
                          uint32_t ann_probe)
{
    recd_ann_t *ann = NULL;
    recd_artifact_extra_t ann_section;
    enum { ITEMS_PER_USER = 20 };
    char err[512];
    rng_state = seed != 0 ? seed : 1;
    float *item_f = malloc(n_items * factors * sizeof(float)), *user_f = malloc(n_users * factors * sizeof(float));
    float *pop = malloc(n_items * sizeof(float));
    char **item_ids = malloc(n_items * sizeof(char *)), **user_ids = malloc(n_users * sizeof(char *));
    uint32_t *rows = malloc(n_users * ITEMS_PER_USER * sizeof(uint32_t)),
             *cols = malloc(n_users * ITEMS_PER_USER * sizeof(uint32_t));
    recd_csr_t csr = {0};
    int ret = 1;

    if (!item_f || !user_f || !pop || !item_ids || !user_ids || !rows || !cols) {
        fprintf(stderr, "swap_artifact: out of memory\n");
        return 1;
    }
    clustered_t cl = {0};
    if (clustered) {
        fill_clustered(&cl, item_f, n_items, user_f, n_users, factors);
    } else {
        for (size_t i = 0; i < n_items * factors; ++i)
            item_f[i] = (float)(next_u32() % 2001) / 10000.0f - 0.1f;
        for (size_t i = 0; i < n_users * factors; ++i)
            user_f[i] = (float)(next_u32() % 2001) / 10000.0f - 0.1f;
    }
    for (size_t i = 0; i < n_items; ++i) {
        item_ids[i] = malloc(24);
        snprintf(item_ids[i], 24, "i%zu", i);
        pop[i] = (float)(n_items - i);
    }
    for (size_t u = 0; u < n_users; ++u) {
        user_ids[u] = malloc(24);
        snprintf(user_ids[u], 24, "u%zu", u);
        for (size_t j = 0; j < ITEMS_PER_USER; ++j) {
            rows[u * ITEMS_PER_USER + j] = (uint32_t)u;
            cols[u * ITEMS_PER_USER + j] = next_training_item(clustered ? &cl : NULL, u, n_items);
        }
    }
    if (recd_csr_from_coo(&csr, n_users, n_items, rows, cols, NULL, n_users * ITEMS_PER_USER, RECD_MERGE_SUM) != 0) {
        fprintf(stderr, "swap_artifact: cannot build the user-item matrix\n");
        goto Exit;
    }
    recd_model_spec_t spec = {.kind = RECD_MODEL_ALS,
                              .n_factors = factors,
                              .n_users = n_users,
                              .n_items = n_items,
                              .user_ids = (const char *const *)user_ids,
                              .item_ids = (const char *const *)item_ids,
                              .user_factors = user_f,
                              .item_factors = item_f,
                              .item_popularity = pop,
                              .alpha = 10.0f,
                              .reg = 0.1f,
                              .user_items = &csr,
                              .metadata_json = clustered ? "{\"trainer\":\"bench/swap_artifact write-clustered\"}"
                                                         : "{\"trainer\":\"bench/swap_artifact\"}"};
    if (ann_probe > 0) {
        recd_ann_params_t p;
        size_t bytes;
        recd_ann_params_init(&p);
        p.n_probe = ann_probe;
        p.threads = 2;
        p.seed = seed;
        if ((ann = recd_ann_build(item_f, NULL, n_items, factors, &p, err, sizeof(err))) == NULL) {
            fprintf(stderr, "swap_artifact: cannot build the index: %s\n", err);
            goto Exit;
        }
        ann_section = (recd_artifact_extra_t){RECD_ARTIFACT_ANN_INDEX, recd_ann_bytes(ann, &bytes), 0};
        ann_section.size = bytes;
        spec.extras = &ann_section;
        spec.n_extras = 1;
    }
    if (recd_model_write(&spec, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "swap_artifact: %s\n", err);
        goto Exit;
    }
    ret = 0;
Exit:
    recd_csr_dispose(&csr);
    recd_ann_free(ann);
    for (size_t i = 0; i < n_items; ++i)
        free(item_ids[i]);
    for (size_t u = 0; u < n_users; ++u)
        free(user_ids[u]);
    free(item_ids), free(user_ids), free(item_f), free(user_f), free(pop), free(rows), free(cols);
    free(cl.cum), free(cl.start), free(cl.by_cluster), free(cl.user_cluster);
    return ret;
}

static void sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

/* pread into anonymous memory + SHA-256, as recd_model_open gets its bytes. */
static double time_pread(const char *path, size_t size, unsigned char *sum)
{
    double t0 = now_ms();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t done = 0; done < size;) {
        ssize_t n = pread(fd, buf + done, size - done, (off_t)done);
        if (n <= 0)
            exit(1);
        done += (size_t)n;
    }
    close(fd);
    sha256(buf, size, sum);
    double t = now_ms() - t0;
    munmap(buf, size);
    return t;
}

/* A read-only mapping of the file + SHA-256, as the loader got its bytes before the copy. */
static double time_mmap(const char *path, size_t size, unsigned char *sum)
{
    double t0 = now_ms();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        exit(1);
    sha256(map, size, sum);
    double t = now_ms() - t0;
    munmap(map, size);
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summary(const char *what, double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    printf("%-34s median %8.2f ms  min %8.2f  max %8.2f  (%d runs)\n", what, v[n / 2], v[0], v[n - 1], n);
}

static int time_open(const char *path, int runs)
{
    char err[512];
    struct stat st;
    unsigned char a[32], b[32];
    double open_ms[64], pread_ms[64], mmap_ms[64];
    if (stat(path, &st) != 0 || runs < 1 || runs > 64) {
        fprintf(stderr, "swap_artifact: cannot stat %s (or runs not 1..64)\n", path);
        return 1;
    }
    time_pread(path, (size_t)st.st_size, a); /* into the page cache */
    for (int r = 0; r < runs; ++r) {
        double t0 = now_ms();
        recd_model_t *m = recd_model_open(path, err, sizeof(err));
        open_ms[r] = now_ms() - t0;
        if (m == NULL) {
            fprintf(stderr, "swap_artifact: %s\n", err);
            return 1;
        }
        if (r == 0)
            printf("artifact: %lld bytes, %zu items, %zu users, %u factors\n", (long long)st.st_size, recd_model_n_items(m),
                   recd_model_n_users(m), recd_model_n_factors(m));
        recd_model_release(m);
        pread_ms[r] = time_pread(path, (size_t)st.st_size, a);
        mmap_ms[r] = time_mmap(path, (size_t)st.st_size, b);
        if (memcmp(a, b, 32) != 0) {
            fprintf(stderr, "swap_artifact: the two reads disagree\n");
            return 1;
        }
        printf("run %d: recd_model_open %.2f ms, pread+sha256 %.2f ms, mmap+sha256 %.2f ms\n", r + 1, open_ms[r], pread_ms[r],
               mmap_ms[r]);
    }
    summary("recd_model_open (pread copy)", open_ms, runs);
    summary("pread into anonymous + sha256", pread_ms, runs);
    summary("mmap of the file + sha256", mmap_ms, runs);
    return 0;
}

int main(int argc, char **argv)
{
    int clustered = argc >= 3 && strcmp(argv[1], "write-clustered") == 0;
    if (argc >= 3 && (clustered || strcmp(argv[1], "write") == 0))
        return write_artifact(argv[2], argc > 3 ? strtoul(argv[3], NULL, 10) : 100000,
                              argc > 4 ? strtoul(argv[4], NULL, 10) : 50000, argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 64,
                              argc > 6 ? strtoull(argv[6], NULL, 10) : 1, clustered,
                              clustered && argc > 7 ? (uint32_t)strtoul(argv[7], NULL, 10) : 0);
    if (argc >= 3 && strcmp(argv[1], "time-open") == 0)
        return time_open(argv[2], argc > 3 ? atoi(argv[3]) : 7);
    fprintf(stderr, "usage: swap_artifact write|write-clustered PATH [ITEMS [USERS [FACTORS [SEED [ANN_PROBE]]]]] | time-open PATH "
                    "[RUNS]\n");
    return 2;
}
