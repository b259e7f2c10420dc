/* artifact.c: writes, maps, verifies and describes model artifacts (one immutable file per model version). */
/*
 * ARTIFACT FORMAT, version 2 (all integers and floats little-endian; floats are IEEE-754 binary32). Version 1 is the same
 * without the extension table (header size 264, no optional sections); the reader accepts both; the writer writes 2 only
 * when there are optional sections, so an artifact without them stays readable by a recd that knows only version 1.
 *
 *   offset  size  field
 *   0       8     magic "RECDMDL1" (RECD_ARTIFACT_MAGIC, no NUL)
 *   8       4     u32 format version (2; 1 for the older layout)
 *   12      4     u32 model kind (1 popularity, 2 als, 3 bpr, 4 biased_mf)
 *   16      8     u64 n_users
 *   24      8     u64 n_items
 *   32      8     u64 nnz (entries of the user-item CSR)
 *   40      4     u32 n_factors (0 for popularity, 1..4096 otherwise)
 *   44      4     f32 alpha (fold-in confidence c = 1 + alpha * value)
 *   48      4     f32 reg (fold-in L2 regularisation)
 *   52      4     f32 global bias (biased_mf; 0 otherwise)
 *   56      4     u32 header size (272 + 24 * n_extras; 264 in version 1)
 *   60      4     u32 number of fixed sections (12)
 *   64      8     u64 total file size, including the trailing checksum
 *   72      192   section table: 12 x {u64 offset, u64 size}, in this order and at increasing offsets:
 *                  0 user id table      8*(n_users+1) + id bytes
 *                  1 item id table      8*(n_items+1) + id bytes
 *                  2 user factors       n_users*n_factors*4   (row-major f32)
 *                  3 item factors       n_items*n_factors*4   (row-major f32)
 *                  4 gram               n_factors*n_factors*4 (Y^T Y of the item factors, full symmetric, f32)
 *                  5 popularity         n_items*4 (f32)
 *                  6 user bias          n_users*4 (f32, zeros when the model has none)
 *                  7 item bias          n_items*4 (f32, zeros when the model has none)
 *                  8 CSR row_ptr        (n_users+1)*8 (u64, row_ptr[0] = 0, non-decreasing, row_ptr[n_users] = nnz)
 *                  9 CSR cols           nnz*4 (u32 item indexes, strictly ascending within a row)
 *                 10 CSR vals           nnz*4 (f32 raw interaction strengths)
 *                 11 metadata           a JSON object, not NUL-terminated
 *   264     4     u32 n_extras, the number of tagged optional sections (0..32)          [version 2 only]
 *   268     4     u32 reserved, 0                                                       [version 2 only]
 *   272     24*n  extension table: n_extras x {u32 tag, u32 reserved (0), u64 offset, u64 size}, at increasing offsets
 *                 after the metadata section; each tag at most once, and a tag this reader does not know is an error:
 *                  1 item factors bf16  n_items*n_factors*2 (row-major bfloat16, finite)
 *                  2 item factors fp16  n_items*n_factors*2 (row-major binary16, finite)
 *                  3 item factors int8  n_items*n_factors   (row-major int8; present together with tag 4)
 *                  4 int8 row scales    n_items*4           (f32, finite, >= 0: row i of tag 3 times scale i)
 *                 16 ANN index          (models/ann.c)
 *   ..            zero padding; every section starts at a multiple of 64 bytes (RECD_ARTIFACT_ALIGN) and the gap
 *                 before it is zero-filled
 *   size-32 32    SHA-256 of every byte before it; it directly follows the end of the last section (the metadata
 *                 section when there are no optional sections)
 *
 * An id table is u64 offsets[n+1] (relative to the first id byte; offsets[0] = 0, strictly increasing) followed by the
 * ids: id i is the bytes offsets[i] .. offsets[i+1]-1, whose last byte is its NUL terminator and which contain no other
 * NUL. Ids are unique within a table. Every float section holds finite values only.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cblas.h>
#include <openssl/evp.h>
#include "base/hash.h"
#include "models/models_internal.h"
#include "models/scan.h"
#include "models/bf16_tiles.h"
#include "models/ann.h"
#include "base/alloc.h"
#include "base/fs.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the artifact reader maps little-endian data in place");

enum {
    SEC_USER_IDS,
    SEC_ITEM_IDS,
    SEC_USER_FACTORS,
    SEC_ITEM_FACTORS,
    SEC_GRAM,
    SEC_POPULARITY,
    SEC_USER_BIAS,
    SEC_ITEM_BIAS,
    SEC_ROW_PTR,
    SEC_COLS,
    SEC_VALS,
    SEC_METADATA,
    SEC_COUNT
};

static const char *const section_names[SEC_COUNT] = {"user id table", "item id table", "user factors", "item factors",
                                                     "gram",          "popularity",    "user bias",    "item bias",
                                                     "CSR row_ptr",   "CSR cols",      "CSR vals",     "metadata"};

typedef struct st_section_t {
    uint64_t offset, size;
} section_t;

typedef struct st_header_t {
    char magic[8];
    uint32_t format_version;
    uint32_t kind;
    uint64_t n_users;
    uint64_t n_items;
    uint64_t nnz;
    uint32_t n_factors;
    float alpha;
    float reg;
    float global_bias;
    uint32_t header_size;
    uint32_t n_sections;
    uint64_t file_size;
    section_t sections[SEC_COUNT];
} header_t;

/* What follows the version-1 header in version 2: the count of the extension table, then its entries. */
typedef struct st_extension_head_t {
    uint32_t n_extras;
    uint32_t reserved;
} extension_head_t;

typedef struct st_extension_t {
    uint32_t tag;
    uint32_t reserved;
    uint64_t offset, size;
} extension_t;

_Static_assert(sizeof(header_t) == 264, "header layout is part of the file format");
_Static_assert(offsetof(header_t, sections) == 72, "header layout is part of the file format");
_Static_assert(sizeof(extension_head_t) == 8 && sizeof(extension_t) == 24, "header layout is part of the file format");

#define HEADER_V1_SIZE sizeof(header_t)
#define HEADER_V2_SIZE(n_extras) (sizeof(header_t) + sizeof(extension_head_t) + (n_extras) * sizeof(extension_t))

#define SHA_LEN 32

__attribute__((format(printf, 4, 5))) static void set_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    int n = snprintf(err, errlen, "%s: ", path);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static uint64_t align_up(uint64_t x)
{
    return (x + RECD_ARTIFACT_ALIGN - 1) & ~(uint64_t)(RECD_ARTIFACT_ALIGN - 1);
}

const char *recd_model_kind_name(uint32_t kind)
{
    switch (kind) {
    case RECD_MODEL_POPULARITY:
        return "popularity";
    case RECD_MODEL_ALS:
        return "als";
    case RECD_MODEL_BPR:
        return "bpr";
    case RECD_MODEL_BIASED_MF:
        return "biased_mf";
    default:
        return "unknown";
    }
}

const char *recd_artifact_tag_name(uint32_t tag)
{
    switch (tag) {
    case RECD_ARTIFACT_ITEM_FACTORS_BF16:
        return "item factors bf16";
    case RECD_ARTIFACT_ITEM_FACTORS_FP16:
        return "item factors fp16";
    case RECD_ARTIFACT_ITEM_FACTORS_INT8:
        return "item factors int8";
    case RECD_ARTIFACT_INT8_SCALES:
        return "int8 row scales";
    case RECD_ARTIFACT_ANN_INDEX:
        return "ANN index";
    default:
        return NULL;
    }
}

/* A 16-bit float is finite unless its exponent bits (mask) are all ones: bf16 0x7f80, binary16 0x7c00. */
static int halves_finite(const void *data, uint64_t n, uint16_t exponent_mask, uint64_t *bad)
{
    const uint8_t *p = data;
    for (uint64_t i = 0; i != n; ++i) {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        if ((v & exponent_mask) == exponent_mask) {
            *bad = i;
            return 0;
        }
    }
    return 1;
}

/*
 * Checks a set of optional sections against the model's shape, for the writer and the reader alike: known tags, each at
 * most once, compact factors only with factors and of the size the counts imply, finite values, int8 with its scales. On
 * failure writes the problem into msg and returns -1.
 */
static int check_extras(const recd_artifact_extra_t *extras, size_t n, uint64_t n_items, uint64_t n_factors, char *msg,
                        size_t msglen)
{
    int have_int8 = 0, have_scales = 0;
    if (n > RECD_ARTIFACT_MAX_EXTRAS) {
        snprintf(msg, msglen, "%zu optional sections, at most %d", n, RECD_ARTIFACT_MAX_EXTRAS);
        return -1;
    }
    for (size_t k = 0; k != n; ++k) {
        const recd_artifact_extra_t *x = &extras[k];
        const char *name = recd_artifact_tag_name(x->tag);
        if (name == NULL) {
            snprintf(msg, msglen, "unknown optional section tag %u (this recd knows 1, 2, 3, 4 and 16)", x->tag);
            return -1;
        }
        for (size_t j = 0; j != k; ++j) {
            if (extras[j].tag == x->tag) {
                snprintf(msg, msglen, "optional section tag %u (%s) appears twice", x->tag, name);
                return -1;
            }
        }
        if (x->size != 0 && x->data == NULL) {
            snprintf(msg, msglen, "%s section has %llu bytes but no data", name, (unsigned long long)x->size);
            return -1;
        }
        uint64_t expect, bad;
        const char *formula;
        switch (x->tag) {
        case RECD_ARTIFACT_ITEM_FACTORS_BF16:
        case RECD_ARTIFACT_ITEM_FACTORS_FP16:
            expect = n_items * n_factors * 2;
            formula = "n_items*n_factors*2";
            break;
        case RECD_ARTIFACT_ITEM_FACTORS_INT8:
            expect = n_items * n_factors;
            formula = "n_items*n_factors";
            have_int8 = 1;
            break;
        case RECD_ARTIFACT_INT8_SCALES:
            expect = n_items * 4;
            formula = "n_items*4";
            have_scales = 1;
            break;
        default: /* the ANN index checks itself when it is loaded */
            continue;
        }
        if (n_factors == 0) {
            snprintf(msg, msglen, "%s section in a model without factors", name);
            return -1;
        }
        if (x->size != expect) {
            snprintf(msg, msglen, "inconsistent counts: %s section is %llu bytes, expected %s = %llu", name,
                     (unsigned long long)x->size, formula, (unsigned long long)expect);
            return -1;
        }
        if ((x->tag == RECD_ARTIFACT_ITEM_FACTORS_BF16 && !halves_finite(x->data, expect / 2, 0x7f80, &bad)) ||
            (x->tag == RECD_ARTIFACT_ITEM_FACTORS_FP16 && !halves_finite(x->data, expect / 2, 0x7c00, &bad))) {
            snprintf(msg, msglen, "non-finite value in %s at index %llu", name, (unsigned long long)bad);
            return -1;
        }
        if (x->tag == RECD_ARTIFACT_INT8_SCALES) {
            const uint8_t *p = x->data;
            for (uint64_t i = 0; i != n_items; ++i) {
                float v;
                memcpy(&v, p + 4 * i, 4);
                if (!isfinite(v) || v < 0) {
                    snprintf(msg, msglen, "bad value in %s at index %llu (finite and >= 0 expected)", name, (unsigned long long)i);
                    return -1;
                }
            }
        }
    }
    if (have_int8 != have_scales) {
        snprintf(msg, msglen, "%s section without its %s section",
                 recd_artifact_tag_name(have_int8 ? RECD_ARTIFACT_ITEM_FACTORS_INT8 : RECD_ARTIFACT_INT8_SCALES),
                 recd_artifact_tag_name(have_int8 ? RECD_ARTIFACT_INT8_SCALES : RECD_ARTIFACT_ITEM_FACTORS_INT8));
        return -1;
    }
    return 0;
}

/* ---- id hash tables ------------------------------------------------------------------------------------------------ */

typedef const char *(*id_get_cb)(const void *ctx, size_t index, size_t *len);

static int64_t idslots_find(const recd_idslot_t *slots, size_t mask, id_get_cb get, const void *ctx, const char *id, size_t len)
{
    uint64_t h = recd_hash_id(id, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (slots[i].index == UINT32_MAX)
            return -1;
        if (slots[i].tag == tag) {
            size_t l;
            const char *s = get(ctx, slots[i].index, &l);
            if (l == len && memcmp(s, id, len) == 0)
                return slots[i].index;
        }
    }
}

/* Builds a table of capacity >= 2n; returns the slots, or NULL with *dup set to the index of the first duplicate id. */
static recd_idslot_t *idslots_build(size_t n, id_get_cb get, const void *ctx, size_t *mask, size_t *dup)
{
    size_t cap = 2;
    while (cap < 2 * n)
        cap *= 2;
    recd_idslot_t *slots = recd_xmalloc(cap * sizeof(*slots));
    for (size_t i = 0; i != cap; ++i)
        slots[i] = (recd_idslot_t){0, UINT32_MAX};
    for (size_t k = 0; k != n; ++k) {
        size_t len;
        const char *id = get(ctx, k, &len);
        uint64_t h = recd_hash_id(id, len);
        uint32_t tag = (uint32_t)(h >> 32);
        size_t i = h & (cap - 1);
        for (; slots[i].index != UINT32_MAX; i = (i + 1) & (cap - 1)) {
            if (slots[i].tag != tag)
                continue;
            size_t l;
            const char *s = get(ctx, slots[i].index, &l);
            if (l == len && memcmp(s, id, len) == 0) {
                free(slots);
                *dup = k;
                return NULL;
            }
        }
        slots[i] = (recd_idslot_t){tag, (uint32_t)k};
    }
    *mask = cap - 1;
    return slots;
}

static const char *get_idtab(const void *ctx, size_t index, size_t *len)
{
    const recd_idtab_t *t = ctx;
    *len = (size_t)(t->offsets[index + 1] - t->offsets[index] - 1);
    return t->bytes + t->offsets[index];
}

static const char *get_cstr(const void *ctx, size_t index, size_t *len)
{
    const char *const *ids = ctx;
    *len = strlen(ids[index]);
    return ids[index];
}

/* ---- writer -------------------------------------------------------------------------------------------------------- */

typedef struct st_writer_t {
    int fd;
    EVP_MD_CTX *md;
    uint8_t *buf;
    size_t len, cap;
    int failed; /* errno of the first failed write, 0 if none */
} writer_t;

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n != 0) {
        ssize_t r = write(fd, b, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static void wr_flush(writer_t *w)
{
    if (w->len == 0 || w->failed)
        return;
    EVP_DigestUpdate(w->md, w->buf, w->len);
    if (write_all(w->fd, w->buf, w->len) != 0)
        w->failed = errno != 0 ? errno : EIO;
    w->len = 0;
}

static void wr_bytes(writer_t *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n != 0 && !w->failed) {
        size_t chunk = w->cap - w->len < n ? w->cap - w->len : n;
        memcpy(w->buf + w->len, b, chunk);
        w->len += chunk;
        b += chunk;
        n -= chunk;
        if (w->len == w->cap)
            wr_flush(w);
    }
}

static void wr_zeros(writer_t *w, uint64_t n)
{
    static const uint8_t zeros[256];
    while (n != 0) {
        size_t chunk = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
        wr_bytes(w, zeros, chunk);
        n -= chunk;
    }
}

static int all_finite(const float *v, size_t n, size_t *bad)
{
    for (size_t i = 0; i != n; ++i) {
        if (!isfinite(v[i])) {
            *bad = i;
            return 0;
        }
    }
    return 1;
}

/* Checks a CSR's shape and ordering; on failure writes the problem into msg and returns -1. */
static int check_csr(size_t n_rows, size_t n_cols, uint64_t nnz, const uint64_t *row_ptr, const uint32_t *col, const float *val,
                     char *msg, size_t msglen)
{
    if (row_ptr[0] != 0) {
        snprintf(msg, msglen, "CSR row_ptr[0] is %llu, expected 0", (unsigned long long)row_ptr[0]);
        return -1;
    }
    for (size_t r = 0; r != n_rows; ++r) {
        if (row_ptr[r + 1] < row_ptr[r] || row_ptr[r + 1] > nnz) {
            snprintf(msg, msglen, "CSR row_ptr is not monotone within 0..nnz=%llu at row %zu", (unsigned long long)nnz, r);
            return -1;
        }
        for (uint64_t j = row_ptr[r]; j != row_ptr[r + 1]; ++j) {
            if (col[j] >= n_cols) {
                snprintf(msg, msglen, "CSR column %u in row %zu is out of range (n_items = %zu)", col[j], r, n_cols);
                return -1;
            }
            if (j != row_ptr[r] && col[j] <= col[j - 1]) {
                snprintf(msg, msglen, "CSR columns of row %zu are not strictly ascending", r);
                return -1;
            }
            if (!isfinite(val[j])) {
                snprintf(msg, msglen, "non-finite CSR value in row %zu", r);
                return -1;
            }
        }
    }
    if (row_ptr[n_rows] != nnz) {
        snprintf(msg, msglen, "CSR row_ptr ends at %llu, expected nnz = %llu", (unsigned long long)row_ptr[n_rows],
                 (unsigned long long)nnz);
        return -1;
    }
    return 0;
}

/* Validates a spec; on failure writes the problem into msg and returns RECD_EINVAL. */
static int check_spec(const recd_model_spec_t *s, char *msg, size_t msglen)
{
    size_t bad;
    if (s->kind < RECD_MODEL_POPULARITY || s->kind > RECD_MODEL_BIASED_MF) {
        snprintf(msg, msglen, "unknown model kind %u", s->kind);
        return RECD_EINVAL;
    }
    if (s->n_users >= UINT32_MAX || s->n_items >= UINT32_MAX) {
        snprintf(msg, msglen, "too many users or items (at most %u each)", UINT32_MAX - 1);
        return RECD_EINVAL;
    }
    if (s->kind == RECD_MODEL_POPULARITY ? s->n_factors != 0 : (s->n_factors == 0 || s->n_factors > RECD_ARTIFACT_MAX_FACTORS)) {
        snprintf(msg, msglen, "%s model with %u factors (expected %s)", recd_model_kind_name(s->kind), s->n_factors,
                 s->kind == RECD_MODEL_POPULARITY ? "0" : "1..4096");
        return RECD_EINVAL;
    }
    if ((s->n_users != 0 && s->user_ids == NULL) || (s->n_items != 0 && (s->item_ids == NULL || s->item_popularity == NULL))) {
        snprintf(msg, msglen, "missing user ids, item ids or item popularity");
        return RECD_EINVAL;
    }
    if (s->n_factors != 0 && ((s->n_users != 0 && s->user_factors == NULL) || (s->n_items != 0 && s->item_factors == NULL))) {
        snprintf(msg, msglen, "missing factor matrices");
        return RECD_EINVAL;
    }
    for (size_t i = 0; i != s->n_users; ++i) {
        if (s->user_ids[i] == NULL) {
            snprintf(msg, msglen, "user id %zu is NULL", i);
            return RECD_EINVAL;
        }
    }
    for (size_t i = 0; i != s->n_items; ++i) {
        if (s->item_ids[i] == NULL) {
            snprintf(msg, msglen, "item id %zu is NULL", i);
            return RECD_EINVAL;
        }
    }
    if (!isfinite(s->alpha) || !isfinite(s->reg) || !isfinite(s->global_bias)) {
        snprintf(msg, msglen, "non-finite alpha, reg or global bias");
        return RECD_EINVAL;
    }
    struct {
        const float *v;
        size_t n;
        const char *name;
    } floats[] = {{s->user_factors, s->n_users * s->n_factors, "user factors"},
                  {s->item_factors, s->n_items * s->n_factors, "item factors"},
                  {s->item_popularity, s->n_items, "popularity"},
                  {s->user_bias, s->n_users, "user bias"},
                  {s->item_bias, s->n_items, "item bias"}};
    for (size_t k = 0; k != sizeof(floats) / sizeof(floats[0]); ++k) {
        if (floats[k].v != NULL && !all_finite(floats[k].v, floats[k].n, &bad)) {
            snprintf(msg, msglen, "non-finite value in %s at index %zu", floats[k].name, bad);
            return RECD_EINVAL;
        }
    }
    if (s->user_items != NULL) {
        const recd_csr_t *c = s->user_items;
        if (c->n_rows != s->n_users || c->n_cols != s->n_items) {
            snprintf(msg, msglen, "user-item matrix is %zu x %zu, expected n_users x n_items = %zu x %zu", c->n_rows, c->n_cols,
                     s->n_users, s->n_items);
            return RECD_EINVAL;
        }
        if (c->row_ptr == NULL || (c->nnz != 0 && (c->col == NULL || c->val == NULL))) {
            snprintf(msg, msglen, "user-item matrix has NULL arrays");
            return RECD_EINVAL;
        }
        if (check_csr(c->n_rows, c->n_cols, c->nnz, c->row_ptr, c->col, c->val, msg, msglen) != 0)
            return RECD_EINVAL;
    }
    size_t mask;
    recd_idslot_t *slots;
    if ((slots = idslots_build(s->n_users, get_cstr, s->user_ids, &mask, &bad)) == NULL) {
        snprintf(msg, msglen, "duplicate user id \"%s\"", s->user_ids[bad]);
        return RECD_EINVAL;
    }
    free(slots);
    if ((slots = idslots_build(s->n_items, get_cstr, s->item_ids, &mask, &bad)) == NULL) {
        snprintf(msg, msglen, "duplicate item id \"%s\"", s->item_ids[bad]);
        return RECD_EINVAL;
    }
    free(slots);
    if (s->n_extras != 0 && s->extras == NULL) {
        snprintf(msg, msglen, "%zu optional sections but no array of them", s->n_extras);
        return RECD_EINVAL;
    }
    if (s->n_extras != 0 && check_extras(s->extras, s->n_extras, s->n_items, s->n_factors, msg, msglen) != 0)
        return RECD_EINVAL;
    return RECD_OK;
}

static uint64_t idtab_size(const char *const *ids, size_t n)
{
    uint64_t size = 8 * ((uint64_t)n + 1);
    for (size_t i = 0; i != n; ++i)
        size += strlen(ids[i]) + 1;
    return size;
}

static void wr_idtab(writer_t *w, const char *const *ids, size_t n)
{
    uint64_t off = 0;
    wr_bytes(w, &off, sizeof(off));
    for (size_t i = 0; i != n; ++i) {
        off += strlen(ids[i]) + 1;
        wr_bytes(w, &off, sizeof(off));
    }
    for (size_t i = 0; i != n; ++i)
        wr_bytes(w, ids[i], strlen(ids[i]) + 1);
}

static void wr_floats_or_zeros(writer_t *w, const float *v, size_t n)
{
    if (v != NULL)
        wr_bytes(w, v, n * sizeof(float));
    else
        wr_zeros(w, (uint64_t)n * sizeof(float));
}

/* fsyncs the directory holding path, so a rename into it is durable. */
static int fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? recd_xstrdup(".") : recd_xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
    int ret = recd_fsync_path(dir, O_DIRECTORY);
    free(dir);
    return ret;
}

int recd_model_write(const recd_model_spec_t *spec, const char *path, char *err, size_t errlen)
{
    char msg[256];
    char *tmp = NULL;
    float *gram = NULL;
    writer_t w = {.fd = -1};
    int ret;

    if (spec == NULL || path == NULL) {
        set_err(err, errlen, path != NULL ? path : "(null)", "no model spec");
        return RECD_EINVAL;
    }
    if ((ret = check_spec(spec, msg, sizeof(msg))) != RECD_OK) {
        set_err(err, errlen, path, "%s", msg);
        return ret;
    }

    const recd_csr_t *ui = spec->user_items;
    const char *metadata = spec->metadata_json != NULL ? spec->metadata_json : "{}";
    size_t f = spec->n_factors;
    header_t h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, RECD_ARTIFACT_MAGIC, sizeof(h.magic));
    size_t n_extras = spec->n_extras;
    /* without optional sections the file is version 1, which every recd reads: a new trainer never strands an older fleet */
    h.format_version = n_extras != 0 ? RECD_ARTIFACT_FORMAT_VERSION : 1;
    h.kind = spec->kind;
    h.n_users = spec->n_users;
    h.n_items = spec->n_items;
    h.nnz = ui != NULL ? ui->nnz : 0;
    h.n_factors = spec->n_factors;
    h.alpha = spec->alpha;
    h.reg = spec->reg;
    h.global_bias = spec->global_bias;
    h.header_size = (uint32_t)(n_extras != 0 ? HEADER_V2_SIZE(n_extras) : HEADER_V1_SIZE);
    h.n_sections = SEC_COUNT;
    extension_head_t eh = {.n_extras = (uint32_t)n_extras};
    extension_t ext[RECD_ARTIFACT_MAX_EXTRAS];
    uint64_t sizes[SEC_COUNT] = {
        [SEC_USER_IDS] = idtab_size(spec->user_ids, spec->n_users),
        [SEC_ITEM_IDS] = idtab_size(spec->item_ids, spec->n_items),
        [SEC_USER_FACTORS] = (uint64_t)spec->n_users * f * 4,
        [SEC_ITEM_FACTORS] = (uint64_t)spec->n_items * f * 4,
        [SEC_GRAM] = (uint64_t)f * f * 4,
        [SEC_POPULARITY] = (uint64_t)spec->n_items * 4,
        [SEC_USER_BIAS] = (uint64_t)spec->n_users * 4,
        [SEC_ITEM_BIAS] = (uint64_t)spec->n_items * 4,
        [SEC_ROW_PTR] = ((uint64_t)spec->n_users + 1) * 8,
        [SEC_COLS] = h.nnz * 4,
        [SEC_VALS] = h.nnz * 4,
        [SEC_METADATA] = strlen(metadata),
    };
    uint64_t off = h.header_size;
    for (int s = 0; s != SEC_COUNT; ++s) {
        h.sections[s].offset = align_up(off);
        h.sections[s].size = sizes[s];
        off = h.sections[s].offset + sizes[s];
    }
    for (size_t k = 0; k != n_extras; ++k) {
        ext[k] = (extension_t){.tag = spec->extras[k].tag, .offset = align_up(off), .size = spec->extras[k].size};
        off = ext[k].offset + ext[k].size;
    }
    h.file_size = off + SHA_LEN;

    /* Gram matrix Y^T Y: ssyrk fills the upper triangle, mirrored below so readers can use the full matrix. */
    if (f != 0) {
        gram = recd_xcalloc(f * f, sizeof(float));
        if (spec->n_items != 0) {
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)f, (int)spec->n_items, 1.0f, spec->item_factors, (int)f, 0.0f,
                        gram, (int)f);
            for (size_t i = 0; i != f; ++i)
                for (size_t j = i + 1; j != f; ++j)
                    gram[j * f + i] = gram[i * f + j];
        }
    }

    size_t pathlen = strlen(path);
    tmp = recd_xmalloc(pathlen + 5);
    memcpy(tmp, path, pathlen);
    memcpy(tmp + pathlen, ".tmp", 5);
    if ((w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        set_err(err, errlen, path, "cannot create %s: %s", tmp, strerror(errno));
        ret = RECD_EIO;
        goto Exit;
    }
    if ((w.md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(w.md, EVP_sha256(), NULL) != 1) {
        set_err(err, errlen, path, "cannot initialise SHA-256");
        ret = RECD_ENOMEM;
        goto Error;
    }
    w.cap = 1 << 20;
    w.buf = recd_xmalloc(w.cap);

    uint64_t pos = 0;
#define SECTION_START(s)                                                                                                           \
    do {                                                                                                                           \
        wr_zeros(&w, h.sections[s].offset - pos);                                                                                  \
        pos = h.sections[s].offset + h.sections[s].size;                                                                           \
    } while (0)
    wr_bytes(&w, &h, sizeof(h));
    if (n_extras != 0) {
        wr_bytes(&w, &eh, sizeof(eh));
        wr_bytes(&w, ext, n_extras * sizeof(ext[0]));
    }
    pos = h.header_size;
    SECTION_START(SEC_USER_IDS);
    wr_idtab(&w, spec->user_ids, spec->n_users);
    SECTION_START(SEC_ITEM_IDS);
    wr_idtab(&w, spec->item_ids, spec->n_items);
    SECTION_START(SEC_USER_FACTORS);
    wr_floats_or_zeros(&w, spec->user_factors, spec->n_users * f);
    SECTION_START(SEC_ITEM_FACTORS);
    wr_floats_or_zeros(&w, spec->item_factors, spec->n_items * f);
    SECTION_START(SEC_GRAM);
    wr_floats_or_zeros(&w, gram, f * f);
    SECTION_START(SEC_POPULARITY);
    wr_floats_or_zeros(&w, spec->item_popularity, spec->n_items);
    SECTION_START(SEC_USER_BIAS);
    wr_floats_or_zeros(&w, spec->user_bias, spec->n_users);
    SECTION_START(SEC_ITEM_BIAS);
    wr_floats_or_zeros(&w, spec->item_bias, spec->n_items);
    SECTION_START(SEC_ROW_PTR);
    if (ui != NULL)
        wr_bytes(&w, ui->row_ptr, (spec->n_users + 1) * sizeof(uint64_t));
    else
        wr_zeros(&w, sizes[SEC_ROW_PTR]);
    SECTION_START(SEC_COLS);
    if (h.nnz != 0)
        wr_bytes(&w, ui->col, h.nnz * sizeof(uint32_t));
    SECTION_START(SEC_VALS);
    if (h.nnz != 0)
        wr_bytes(&w, ui->val, h.nnz * sizeof(float));
    SECTION_START(SEC_METADATA);
    wr_bytes(&w, metadata, sizes[SEC_METADATA]);
#undef SECTION_START
    for (size_t k = 0; k != n_extras; ++k) {
        wr_zeros(&w, ext[k].offset - pos);
        wr_bytes(&w, spec->extras[k].data, spec->extras[k].size);
        pos = ext[k].offset + ext[k].size;
    }
    wr_flush(&w);
    if (w.failed) {
        set_err(err, errlen, path, "cannot write %s: %s", tmp, strerror(w.failed));
        ret = RECD_EIO;
        goto Error;
    }
    uint8_t digest[SHA_LEN];
    unsigned dlen = 0;
    if (EVP_DigestFinal_ex(w.md, digest, &dlen) != 1 || dlen != SHA_LEN) {
        set_err(err, errlen, path, "SHA-256 failed");
        ret = RECD_EIO;
        goto Error;
    }
    if (write_all(w.fd, digest, SHA_LEN) != 0 || fsync(w.fd) != 0) {
        set_err(err, errlen, path, "cannot write %s: %s", tmp, strerror(errno));
        ret = RECD_EIO;
        goto Error;
    }
    int fd = w.fd;
    w.fd = -1;
    if (close(fd) != 0) {
        set_err(err, errlen, path, "cannot close %s: %s", tmp, strerror(errno));
        ret = RECD_EIO;
        goto Error;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, errlen, path, "cannot rename %s into place: %s", tmp, strerror(errno));
        ret = RECD_EIO;
        goto Error;
    }
    if (fsync_parent(path) != 0) {
        set_err(err, errlen, path, "cannot fsync the directory: %s", strerror(errno));
        ret = RECD_EIO;
        goto Exit;
    }
    ret = RECD_OK;
    goto Exit;

Error:
    if (w.fd >= 0)
        close(w.fd);
    w.fd = -1;
    unlink(tmp);
Exit:
    if (w.fd >= 0)
        close(w.fd);
    EVP_MD_CTX_free(w.md);
    free(w.buf);
    free(gram);
    free(tmp);
    return ret;
}

/* ---- reader -------------------------------------------------------------------------------------------------------- */

/* Expected size of a fixed-size section and the formula, for messages. */
typedef struct st_expect_t {
    int section;
    uint64_t size;
    const char *formula;
} expect_t;

static int check_idtab(recd_idtab_t *t, const uint8_t *base, const section_t *sec, uint64_t n, const char *what, char *msg,
                       size_t msglen)
{
    uint64_t head = 8 * (n + 1);
    if (sec->size < head) {
        snprintf(msg, msglen, "inconsistent counts: %s id table is %llu bytes, too small for n_%ss+1 = %llu offsets", what,
                 (unsigned long long)sec->size, what, (unsigned long long)(n + 1));
        return -1;
    }
    const uint64_t *offsets = (const uint64_t *)(base + sec->offset);
    const char *bytes = (const char *)(base + sec->offset + head);
    uint64_t nbytes = sec->size - head;
    if (offsets[n] != nbytes) {
        snprintf(msg, msglen, "inconsistent counts: %s id table offsets end at %llu but %llu id bytes follow (n_%ss = %llu)", what,
                 (unsigned long long)offsets[n], (unsigned long long)nbytes, what, (unsigned long long)n);
        return -1;
    }
    if (offsets[0] != 0) {
        snprintf(msg, msglen, "malformed %s id table: first offset is %llu, expected 0", what, (unsigned long long)offsets[0]);
        return -1;
    }
    for (uint64_t i = 0; i != n; ++i) {
        if (offsets[i + 1] <= offsets[i] || offsets[i + 1] > nbytes) {
            snprintf(msg, msglen, "malformed %s id table: offsets are not increasing at id %llu", what, (unsigned long long)i);
            return -1;
        }
        size_t len = (size_t)(offsets[i + 1] - offsets[i]);
        const char *nul = memchr(bytes + offsets[i], 0, len);
        if (nul != bytes + offsets[i + 1] - 1) {
            snprintf(msg, msglen, "malformed %s id table: id %llu is not a NUL-terminated string", what, (unsigned long long)i);
            return -1;
        }
    }
    t->n = (size_t)n;
    t->offsets = offsets;
    t->bytes = bytes;
    size_t dup;
    if ((t->slots = idslots_build(t->n, get_idtab, t, &t->mask, &dup)) == NULL) {
        size_t len;
        const char *id = get_idtab(t, dup, &len);
        snprintf(msg, msglen, "duplicate %s id \"%.*s\"", what, len > 64 ? 64 : (int)len, id);
        return -1;
    }
    return 0;
}

static int cmp_popular(const void *a, const void *b, void *ctx)
{
    const float *pop = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (pop[x] != pop[y])
        return pop[x] > pop[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Verifies the mapping and fills m's views; on failure writes the problem into msg and returns -1. */
static int verify(recd_model_t *m, const uint8_t *base, size_t size, char *msg, size_t msglen)
{
    static const char magic[8] = RECD_ARTIFACT_MAGIC;
    header_t h;

    if (size == 0) {
        snprintf(msg, msglen, "empty file (0 bytes)");
        return -1;
    }
    if (memcmp(base, magic, size < sizeof(magic) ? size : sizeof(magic)) != 0) {
        snprintf(msg, msglen, "bad magic: not a recd model artifact (expected \"%s\")", RECD_ARTIFACT_MAGIC);
        return -1;
    }
    if (size < offsetof(header_t, kind)) {
        snprintf(msg, msglen, "truncated: file has %zu bytes, less than the %zu-byte header", size, sizeof(header_t));
        return -1;
    }
    uint32_t version;
    memcpy(&version, base + offsetof(header_t, format_version), sizeof(version));
    if (version != 1 && version != RECD_ARTIFACT_FORMAT_VERSION) {
        snprintf(msg, msglen, "unsupported artifact format version %u (this recd reads 1 and %d)", version,
                 RECD_ARTIFACT_FORMAT_VERSION);
        return -1;
    }
    size_t header_size = version == 1 ? HEADER_V1_SIZE : HEADER_V2_SIZE(0);
    if (size < header_size) {
        snprintf(msg, msglen, "truncated: file has %zu bytes, less than the %zu-byte header", size, header_size);
        return -1;
    }
    memcpy(&h, base, sizeof(h));
    extension_head_t eh = {0};
    if (version != 1) {
        memcpy(&eh, base + sizeof(h), sizeof(eh));
        if (eh.n_extras > RECD_ARTIFACT_MAX_EXTRAS || eh.reserved != 0) {
            snprintf(msg, msglen, "malformed header: %u optional sections (at most %d), reserved field %u", eh.n_extras,
                     RECD_ARTIFACT_MAX_EXTRAS, eh.reserved);
            return -1;
        }
        header_size = HEADER_V2_SIZE(eh.n_extras);
        if (size < header_size) {
            snprintf(msg, msglen, "truncated: file has %zu bytes, less than the %zu-byte header", size, header_size);
            return -1;
        }
    }
    if (h.header_size != header_size || h.n_sections != SEC_COUNT) {
        snprintf(msg, msglen, "malformed header: header size %u with %u sections, expected %zu with %d", h.header_size,
                 h.n_sections, header_size, SEC_COUNT);
        return -1;
    }
    if (h.file_size != size) {
        snprintf(msg, msglen, "%s: header says %llu bytes, file has %zu", h.file_size > size ? "truncated" : "trailing data",
                 (unsigned long long)h.file_size, size);
        return -1;
    }
    if (size < header_size + SHA_LEN) {
        snprintf(msg, msglen, "truncated: no room for the checksum (file has %zu bytes)", size);
        return -1;
    }
    uint8_t digest[SHA_LEN];
    unsigned dlen = 0;
    if (EVP_Digest(base, size - SHA_LEN, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != SHA_LEN) {
        snprintf(msg, msglen, "cannot compute SHA-256");
        return -1;
    }
    if (memcmp(digest, base + size - SHA_LEN, SHA_LEN) != 0) {
        snprintf(msg, msglen, "checksum mismatch: file is corrupted");
        return -1;
    }
    for (int i = 0; i != SHA_LEN; ++i)
        snprintf(m->sha256_hex + 2 * i, 3, "%02x", digest[i]);

    /* Counts. */
    if (h.kind < RECD_MODEL_POPULARITY || h.kind > RECD_MODEL_BIASED_MF) {
        snprintf(msg, msglen, "unknown model kind %u", h.kind);
        return -1;
    }
    if (h.n_users >= UINT32_MAX || h.n_items >= UINT32_MAX) {
        snprintf(msg, msglen, "inconsistent counts: n_users = %llu, n_items = %llu (at most %u each)",
                 (unsigned long long)h.n_users, (unsigned long long)h.n_items, UINT32_MAX - 1);
        return -1;
    }
    if (h.kind == RECD_MODEL_POPULARITY ? h.n_factors != 0 : (h.n_factors == 0 || h.n_factors > RECD_ARTIFACT_MAX_FACTORS)) {
        snprintf(msg, msglen, "inconsistent counts: %s model with n_factors = %u", recd_model_kind_name(h.kind), h.n_factors);
        return -1;
    }
    if (h.nnz > size / 8) {
        snprintf(msg, msglen, "inconsistent counts: nnz = %llu cannot fit in a %zu-byte file", (unsigned long long)h.nnz, size);
        return -1;
    }
    if (!isfinite(h.alpha) || !isfinite(h.reg) || !isfinite(h.global_bias)) {
        snprintf(msg, msglen, "non-finite alpha, reg or global bias in the header");
        return -1;
    }

    /* Section placement: the fixed sections, then the optional ones, at increasing aligned offsets up to the checksum. */
    extension_t ext[RECD_ARTIFACT_MAX_EXTRAS];
    memcpy(ext, base + HEADER_V2_SIZE(0), eh.n_extras * sizeof(ext[0]));
    for (uint32_t k = 0; k != eh.n_extras; ++k) {
        if (recd_artifact_tag_name(ext[k].tag) == NULL) {
            snprintf(msg, msglen, "unknown optional section tag %u (this recd knows 1, 2, 3, 4 and 16)", ext[k].tag);
            return -1;
        }
        if (ext[k].reserved != 0) {
            snprintf(msg, msglen, "malformed extension table: reserved field of tag %u is %u", ext[k].tag, ext[k].reserved);
            return -1;
        }
    }
    uint64_t limit = size - SHA_LEN, prev_end = header_size;
    for (uint32_t s = 0; s != SEC_COUNT + eh.n_extras; ++s) {
        const section_t *sec = s < SEC_COUNT ? &h.sections[s] : &(section_t){ext[s - SEC_COUNT].offset, ext[s - SEC_COUNT].size};
        const char *name = s < SEC_COUNT ? section_names[s] : recd_artifact_tag_name(ext[s - SEC_COUNT].tag);
        if (sec->offset > limit || sec->size > limit - sec->offset) {
            snprintf(msg, msglen, "%s section (offset %llu, %llu bytes) extends past the end of the data (%llu bytes)", name,
                     (unsigned long long)sec->offset, (unsigned long long)sec->size, (unsigned long long)limit);
            return -1;
        }
        if (sec->offset % RECD_ARTIFACT_ALIGN != 0) {
            snprintf(msg, msglen, "%s section offset %llu is not %d-byte aligned", name, (unsigned long long)sec->offset,
                     RECD_ARTIFACT_ALIGN);
            return -1;
        }
        if (sec->offset < prev_end) {
            snprintf(msg, msglen, "%s section at offset %llu overlaps the header or the previous section", name,
                     (unsigned long long)sec->offset);
            return -1;
        }
        prev_end = sec->offset + sec->size;
    }
    if (prev_end != limit) {
        snprintf(msg, msglen, "%llu unaccounted bytes between the last section and the checksum",
                 (unsigned long long)(limit - prev_end));
        return -1;
    }

    /* Section sizes implied by the counts (all products fit: counts < 2^32, factors <= 4096, nnz < 2^61). */
    uint64_t nu = h.n_users, ni = h.n_items, f = h.n_factors;
    expect_t expect[] = {
        {SEC_USER_FACTORS, nu * f * 4, "n_users*n_factors*4"},
        {SEC_ITEM_FACTORS, ni * f * 4, "n_items*n_factors*4"},
        {SEC_GRAM, f * f * 4, "n_factors*n_factors*4"},
        {SEC_POPULARITY, ni * 4, "n_items*4"},
        {SEC_USER_BIAS, nu * 4, "n_users*4"},
        {SEC_ITEM_BIAS, ni * 4, "n_items*4"},
        {SEC_ROW_PTR, (nu + 1) * 8, "(n_users+1)*8"},
        {SEC_COLS, h.nnz * 4, "nnz*4"},
        {SEC_VALS, h.nnz * 4, "nnz*4"},
    };
    for (size_t k = 0; k != sizeof(expect) / sizeof(expect[0]); ++k) {
        const section_t *sec = &h.sections[expect[k].section];
        if (sec->size != expect[k].size) {
            snprintf(msg, msglen, "inconsistent counts: %s section is %llu bytes, expected %s = %llu",
                     section_names[expect[k].section], (unsigned long long)sec->size, expect[k].formula,
                     (unsigned long long)expect[k].size);
            return -1;
        }
    }

    m->kind = h.kind;
    m->n_factors = h.n_factors;
    m->n_users = (size_t)nu;
    m->n_items = (size_t)ni;
    m->nnz = (size_t)h.nnz;
    m->alpha = h.alpha;
    m->reg = h.reg;
    m->global_bias = h.global_bias;
#define SECTION(s, type) ((const type *)(base + h.sections[s].offset))
    m->user_factors = f != 0 ? SECTION(SEC_USER_FACTORS, float) : NULL;
    m->item_factors = f != 0 ? SECTION(SEC_ITEM_FACTORS, float) : NULL;
    m->gram = f != 0 ? SECTION(SEC_GRAM, float) : NULL;
    m->popularity = SECTION(SEC_POPULARITY, float);
    m->user_bias = SECTION(SEC_USER_BIAS, float);
    m->item_bias = SECTION(SEC_ITEM_BIAS, float);
    m->row_ptr = SECTION(SEC_ROW_PTR, uint64_t);
    m->cols = SECTION(SEC_COLS, uint32_t);
    m->vals = SECTION(SEC_VALS, float);
    m->metadata = SECTION(SEC_METADATA, char);
    m->metadata_len = (size_t)h.sections[SEC_METADATA].size;
#undef SECTION
    m->n_extras = eh.n_extras;
    for (uint32_t k = 0; k != eh.n_extras; ++k)
        m->extras[k] = (recd_artifact_extra_t){ext[k].tag, base + ext[k].offset, ext[k].size};
    if (check_extras(m->extras, m->n_extras, ni, f, msg, msglen) != 0)
        return -1;

    struct {
        const float *v;
        size_t n;
        const char *name;
    } floats[] = {{m->user_factors, m->n_users * f, "user factors"},
                  {m->item_factors, m->n_items * f, "item factors"},
                  {m->gram, f * f, "gram"},
                  {m->popularity, m->n_items, "popularity"},
                  {m->user_bias, m->n_users, "user bias"},
                  {m->item_bias, m->n_items, "item bias"}};
    for (size_t k = 0; k != sizeof(floats) / sizeof(floats[0]); ++k) {
        size_t bad;
        if (floats[k].n != 0 && !all_finite(floats[k].v, floats[k].n, &bad)) {
            snprintf(msg, msglen, "non-finite value in %s at index %zu", floats[k].name, bad);
            return -1;
        }
    }
    if (check_csr(m->n_users, m->n_items, m->nnz, m->row_ptr, m->cols, m->vals, msg, msglen) != 0)
        return -1;
    if (check_idtab(&m->users, base, &h.sections[SEC_USER_IDS], nu, "user", msg, msglen) != 0 ||
        check_idtab(&m->items, base, &h.sections[SEC_ITEM_IDS], ni, "item", msg, msglen) != 0)
        return -1;

    m->popular_order = recd_xmalloc(m->n_items * sizeof(uint32_t));
    for (size_t i = 0; i != m->n_items; ++i)
        m->popular_order[i] = (uint32_t)i;
    qsort_r(m->popular_order, m->n_items, sizeof(uint32_t), cmp_popular, (void *)m->popularity);
    if (f != 0) {
        m->item_norms = recd_xmalloc(m->n_items * sizeof(float));
        for (size_t i = 0; i != m->n_items; ++i) {
            const float *y = m->item_factors + i * f;
            double ss = 0;
            for (size_t j = 0; j != f; ++j)
                ss += (double)y[j] * y[j];
            m->item_norms[i] = (float)sqrt(ss);
        }
    }
    return 0;
}

/* Every loaded version in the process, for the memory metrics: a version counts until its last reference goes. */
static atomic_size_t live_bytes, live_count;

static void model_free(recd_model_t *m)
{
    if (m->_bytes != 0) {
        atomic_fetch_sub_explicit(&live_bytes, m->_bytes, memory_order_relaxed);
        atomic_fetch_sub_explicit(&live_count, 1, memory_order_relaxed);
    }
    if (m->_map != NULL)
        munmap(m->_map, m->_map_size);
    free(m->users.slots);
    free(m->items.slots);
    free(m->popular_order);
    free(m->item_norms);
    recd_ann_free(m->ann);
    recd_bf16_tiles_free(m->bf16_tiles);
    free(m);
}

recd_model_t *recd_model_open(const char *path, char *err, size_t errlen)
{
    char msg[320];
    struct stat st;
    recd_model_t *m = NULL;
    int fd = -1;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        set_err(err, errlen, path, "cannot open: %s", strerror(errno));
        goto Error;
    }
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, path, "cannot stat: %s", strerror(errno));
        goto Error;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, path, "not a regular file");
        goto Error;
    }
    m = recd_xcalloc(1, sizeof(*m));
    atomic_init(&m->_refcnt, 1);
    if (st.st_size == 0) {
        set_err(err, errlen, path, "empty file (0 bytes)");
        goto Error;
    }
    /* The bytes are copied into anonymous memory rather than mapped from the file: a file truncated or rewritten in place
     * after the load must not take the process down with SIGBUS (a mapping of it would). */
    m->_map_size = (size_t)st.st_size;
    void *map = mmap(NULL, m->_map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        set_err(err, errlen, path, "cannot allocate %zu bytes: %s", m->_map_size, strerror(errno));
        goto Error;
    }
    m->_map = map;
    for (size_t done = 0; done < m->_map_size;) {
        ssize_t n = pread(fd, (char *)map + done, m->_map_size - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(err, errlen, path, "cannot read: %s", strerror(errno));
            goto Error;
        }
        if (n == 0) {
            set_err(err, errlen, path, "truncated while being read (%zu of %zu bytes)", done, m->_map_size);
            goto Error;
        }
        done += (size_t)n;
    }
    mprotect(map, m->_map_size, PROT_READ); /* immutable from here on, as a mapping of the file was */
    close(fd);
    fd = -1;
    if (verify(m, m->_map, m->_map_size, msg, sizeof(msg)) != 0) {
        set_err(err, errlen, path, "%s", msg);
        goto Error;
    }
    if (recd_model_attach_ann(m, msg, sizeof(msg)) != 0) {
        set_err(err, errlen, path, "%s", msg);
        goto Error;
    }
    recd_scorer_t scorer; /* with compact factors: one pass now, so that each scan can prove its candidates */
    recd_model_scorer(m, &scorer);
    recd_compact_bounds(&scorer, &m->compact_bounds);
    if (m->kind != RECD_MODEL_POPULARITY && recd_bf16_tiles_enabled())
        m->bf16_tiles = recd_bf16_tiles_build(m->item_factors, m->n_items, m->n_factors, m->item_bias);
    m->_bytes = recd_model_bytes(m);
    atomic_fetch_add_explicit(&live_bytes, m->_bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&live_count, 1, memory_order_relaxed);
    return m;

Error:
    if (fd >= 0)
        close(fd);
    if (m != NULL)
        model_free(m);
    return NULL;
}

const void *recd_model_extra(const recd_model_t *m, uint32_t tag, uint64_t *size)
{
    for (size_t k = 0; k != m->n_extras; ++k) {
        if (m->extras[k].tag == tag) {
            if (size != NULL)
                *size = m->extras[k].size;
            return m->extras[k].data;
        }
    }
    if (size != NULL)
        *size = 0;
    return NULL;
}

void recd_model_retain(recd_model_t *m)
{
    atomic_fetch_add_explicit(&m->_refcnt, 1, memory_order_relaxed);
}

void recd_model_release(recd_model_t *m)
{
    if (m == NULL)
        return;
    if (atomic_fetch_sub_explicit(&m->_refcnt, 1, memory_order_acq_rel) == 1)
        model_free(m);
}

/* ---- accessors ----------------------------------------------------------------------------------------------------- */

void recd_model_set_identity(recd_model_t *m, const char *name, uint64_t version)
{
    snprintf(m->name, sizeof(m->name), "%s", name != NULL ? name : "");
    m->version = version;
}

const char *recd_model_name(const recd_model_t *m)
{
    return m->name;
}

uint64_t recd_model_version(const recd_model_t *m)
{
    return m->version;
}

uint32_t recd_model_kind(const recd_model_t *m)
{
    return m->kind;
}

size_t recd_model_n_users(const recd_model_t *m)
{
    return m->n_users;
}

size_t recd_model_n_items(const recd_model_t *m)
{
    return m->n_items;
}

uint32_t recd_model_n_factors(const recd_model_t *m)
{
    return m->n_factors;
}

float recd_model_alpha(const recd_model_t *m)
{
    return m->alpha;
}

float recd_model_reg(const recd_model_t *m)
{
    return m->reg;
}

size_t recd_model_live_bytes(void)
{
    return atomic_load_explicit(&live_bytes, memory_order_relaxed);
}

size_t recd_model_live_count(void)
{
    return atomic_load_explicit(&live_count, memory_order_relaxed);
}

size_t recd_model_bytes(const recd_model_t *m)
{
    size_t slots = m->users.slots != NULL ? m->users.mask + 1 : 0;
    slots += m->items.slots != NULL ? m->items.mask + 1 : 0;
    return m->_map_size + slots * sizeof(recd_idslot_t) + m->n_items * sizeof(*m->popular_order) +
           (m->item_norms != NULL ? m->n_items * sizeof(*m->item_norms) : 0) + recd_bf16_tiles_bytes(m->bf16_tiles);
}

const char *recd_model_sha256(const recd_model_t *m)
{
    return m->sha256_hex;
}

const char *recd_model_metadata(const recd_model_t *m, size_t *len)
{
    *len = m->metadata_len;
    return m->metadata;
}

int64_t recd_model_find_user(const recd_model_t *m, const char *id, size_t len)
{
    return idslots_find(m->users.slots, m->users.mask, get_idtab, &m->users, id, len);
}

int64_t recd_model_find_item(const recd_model_t *m, const char *id, size_t len)
{
    return idslots_find(m->items.slots, m->items.mask, get_idtab, &m->items, id, len);
}

static const char *idtab_id(const recd_idtab_t *t, uint32_t index, size_t *len)
{
    size_t l = 0;
    const char *s = NULL;
    if (index < t->n)
        s = get_idtab(t, index, &l);
    if (len != NULL)
        *len = l;
    return s;
}

const char *recd_model_user_id(const recd_model_t *m, uint32_t index, size_t *len)
{
    return idtab_id(&m->users, index, len);
}

const char *recd_model_item_id(const recd_model_t *m, uint32_t index, size_t *len)
{
    return idtab_id(&m->items, index, len);
}

const float *recd_model_user_vector(const recd_model_t *m, uint32_t user)
{
    if (m->user_factors == NULL || user >= m->n_users)
        return NULL;
    return m->user_factors + (size_t)user * m->n_factors;
}

const float *recd_model_item_factors(const recd_model_t *m)
{
    return m->item_factors;
}

const float *recd_model_popularity(const recd_model_t *m)
{
    return m->popularity;
}

const uint32_t *recd_model_popular_order(const recd_model_t *m)
{
    return m->popular_order;
}

void recd_model_user_items(const recd_model_t *m, uint32_t user, const uint32_t **items, const float **values, size_t *n)
{
    if (user >= m->n_users) {
        *items = NULL;
        *values = NULL;
        *n = 0;
        return;
    }
    uint64_t b = m->row_ptr[user], e = m->row_ptr[user + 1];
    *items = m->cols + b;
    *values = m->vals + b;
    *n = (size_t)(e - b);
}
