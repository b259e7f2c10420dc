/* test_artifact.c: artifact writer/reader round trip and rejection of damaged files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "models/model.h"
#include "models/ann.h"

/* Byte offsets of the documented header fields (see the format comment in models/artifact.c). */
#define OFF_VERSION 8
#define OFF_N_USERS 16
#define OFF_N_ITEMS 24
#define OFF_NNZ 32
#define OFF_N_FACTORS 40
#define OFF_FILE_SIZE 64
#define OFF_SECTIONS 72
enum {
    S_USER_IDS,
    S_ITEM_IDS,
    S_USER_FACTORS,
    S_ITEM_FACTORS,
    S_GRAM,
    S_POPULARITY,
    S_USER_BIAS,
    S_ITEM_BIAS,
    S_ROW_PTR,
    S_COLS,
    S_VALS,
    S_METADATA,
    S_COUNT
};

typedef struct st_fixture_t {
    char dir[64];
    char path[128];
} fixture_t;

static const char *user_ids[] = {"u1", "u2", "u10"};
static const char *item_ids[] = {"i0", "i1", "i2", "i3"};
static const float user_factors[] = {1, 2, 3, 4, 5, 6};
static const float item_factors[] = {0.5f, 1, 1, 0, -1, 2, 0, 0.25f};
static const float popularity[] = {3, 5, 5, 1};
static uint64_t row_ptr[] = {0, 2, 2, 5};
static uint32_t cols[] = {0, 2, 1, 2, 3};
static float vals[] = {1, 3, 2, 1, 0.5f};
static const char metadata[] = "{\"trainer\":\"test\",\"factors\":2}";

static recd_csr_t fixture_csr(void)
{
    return (recd_csr_t){.n_rows = 3, .n_cols = 4, .nnz = 5, .row_ptr = row_ptr, .col = cols, .val = vals};
}

static recd_model_spec_t fixture_spec(const recd_csr_t *csr)
{
    return (recd_model_spec_t){.kind = RECD_MODEL_ALS,
                               .n_factors = 2,
                               .n_users = 3,
                               .n_items = 4,
                               .user_ids = user_ids,
                               .item_ids = item_ids,
                               .user_factors = user_factors,
                               .item_factors = item_factors,
                               .item_popularity = popularity,
                               .alpha = 40,
                               .reg = 0.05f,
                               .user_items = csr,
                               .metadata_json = metadata};
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/recd-test-artifact-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->path, sizeof(fx->path), "%s/model.recd", fx->dir);
    recd_csr_t csr = fixture_csr();
    recd_model_spec_t spec = fixture_spec(&csr);
    char err[256] = "";
    if (recd_model_write(&spec, fx->path, err, sizeof(err)) != RECD_OK) {
        fprintf(stderr, "write failed: %s\n", err);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void write_all(const char *path, const uint8_t *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

static void sha256(const uint8_t *buf, size_t len, uint8_t out[32])
{
    unsigned n = 0;
    assert_int_equal(EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, 32);
}

/* Re-seals a patched file so that only the patched field, not the checksum, is wrong. */
static void reseal(uint8_t *buf, size_t len)
{
    sha256(buf, len - 32, buf + len - 32);
}

static uint64_t get_u64(const uint8_t *buf, size_t off)
{
    uint64_t v;
    memcpy(&v, buf + off, 8);
    return v;
}

static void put_u64(uint8_t *buf, size_t off, uint64_t v)
{
    memcpy(buf + off, &v, 8);
}

static void put_u32(uint8_t *buf, size_t off, uint32_t v)
{
    memcpy(buf + off, &v, 4);
}

static uint64_t section_offset(const uint8_t *buf, int s)
{
    return get_u64(buf, OFF_SECTIONS + 16 * s);
}

/* Opens path expecting failure; asserts the message starts with the path and contains each of the fragments. */
static void expect_reject(const char *path, const char *fragment1, const char *fragment2)
{
    char err[512] = "";
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    if (m != NULL)
        recd_model_release(m);
    assert_null(m);
    assert_memory_equal(err, path, strlen(path));
    if (strstr(err, fragment1) == NULL || (fragment2 != NULL && strstr(err, fragment2) == NULL))
        fail_msg("message \"%s\" lacks \"%s\"%s%s", err, fragment1, fragment2 ? " / " : "", fragment2 ? fragment2 : "");
}

static void test_artifact_roundtrip(void **state)
{
    fixture_t *fx = *state;
    char err[256] = "";
    recd_model_t *m = recd_model_open(fx->path, err, sizeof(err));
    if (m == NULL)
        fail_msg("open: %s", err);

    assert_int_equal(recd_model_kind(m), RECD_MODEL_ALS);
    assert_string_equal(recd_model_kind_name(recd_model_kind(m)), "als");
    assert_int_equal(recd_model_n_users(m), 3);
    assert_int_equal(recd_model_n_items(m), 4);
    assert_int_equal(recd_model_n_factors(m), 2);
    assert_true(recd_model_alpha(m) == 40.0f);
    assert_true(recd_model_reg(m) == 0.05f);
    assert_string_equal(recd_model_name(m), "");
    assert_int_equal(recd_model_version(m), 0);
    recd_model_set_identity(m, "movies", 3);
    assert_string_equal(recd_model_name(m), "movies");
    assert_int_equal(recd_model_version(m), 3);

    /* Ids both ways, including absent ids and a prefix of a present one. */
    for (uint32_t i = 0; i != 3; ++i) {
        size_t len;
        assert_string_equal(recd_model_user_id(m, i, &len), user_ids[i]);
        assert_int_equal(len, strlen(user_ids[i]));
        assert_int_equal(recd_model_find_user(m, user_ids[i], strlen(user_ids[i])), i);
    }
    for (uint32_t i = 0; i != 4; ++i) {
        size_t len;
        assert_string_equal(recd_model_item_id(m, i, &len), item_ids[i]);
        assert_int_equal(len, 2);
        assert_int_equal(recd_model_find_item(m, item_ids[i], 2), i);
    }
    assert_int_equal(recd_model_find_user(m, "u100", 4), -1);
    assert_int_equal(recd_model_find_user(m, "u10", 2), 0); /* "u1" by length */
    assert_int_equal(recd_model_find_user(m, "", 0), -1);
    assert_int_equal(recd_model_find_item(m, "u1", 2), -1);
    assert_int_equal(recd_model_find_item(m, "i4", 2), -1);
    assert_null(recd_model_item_id(m, 4, NULL));

    /* Numeric sections. */
    for (uint32_t u = 0; u != 3; ++u)
        assert_memory_equal(recd_model_user_vector(m, u), user_factors + 2 * u, 2 * sizeof(float));
    assert_null(recd_model_user_vector(m, 3));
    assert_memory_equal(recd_model_item_factors(m), item_factors, sizeof(item_factors));
    assert_memory_equal(recd_model_popularity(m), popularity, sizeof(popularity));
    const uint32_t *order = recd_model_popular_order(m);
    uint32_t expected_order[] = {1, 2, 0, 3}; /* 5, 5 (tie by index), 3, 1 */
    assert_memory_equal(order, expected_order, sizeof(expected_order));
    for (uint32_t u = 0; u != 3; ++u) {
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(m, u, &items, &values, &n);
        assert_int_equal(n, row_ptr[u + 1] - row_ptr[u]);
        if (n != 0) {
            assert_memory_equal(items, cols + row_ptr[u], n * sizeof(uint32_t));
            assert_memory_equal(values, vals + row_ptr[u], n * sizeof(float));
        }
    }
    size_t mlen;
    const char *meta = recd_model_metadata(m, &mlen);
    assert_int_equal(mlen, strlen(metadata));
    assert_memory_equal(meta, metadata, mlen);

    /* The checksum is SHA-256 of everything before the trailing 32 bytes, and is those bytes. */
    size_t len;
    uint8_t *buf = read_all(fx->path, &len);
    uint8_t digest[32];
    char hex[65];
    sha256(buf, len - 32, digest);
    assert_memory_equal(digest, buf + len - 32, 32);
    for (int i = 0; i != 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    assert_string_equal(recd_model_sha256(m), hex);

    /* Layout: aligned sections, file size in the header, and the Gram matrix equal to Y^T Y. */
    assert_memory_equal(buf, RECD_ARTIFACT_MAGIC, 8);
    assert_int_equal(get_u64(buf, OFF_FILE_SIZE), len);
    for (int s = 0; s != S_COUNT; ++s)
        assert_int_equal(section_offset(buf, s) % RECD_ARTIFACT_ALIGN, 0);
    const float *gram = (const float *)(buf + section_offset(buf, S_GRAM));
    for (int a = 0; a != 2; ++a) {
        for (int b = 0; b != 2; ++b) {
            double g = 0;
            for (int i = 0; i != 4; ++i)
                g += (double)item_factors[2 * i + a] * item_factors[2 * i + b];
            assert_float_equal(gram[2 * a + b], g, 1e-6);
        }
    }
    free(buf);

    /* No temporary file left behind; references counted. */
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", fx->path);
    assert_int_equal(access(tmp, F_OK), -1);
    recd_model_retain(m);
    recd_model_release(m);
    assert_int_equal(recd_model_n_items(m), 4);
    recd_model_release(m);
    recd_model_release(NULL);
}

static void test_artifact_popularity_model(void **state)
{
    fixture_t *fx = *state;
    char path[160], err[256] = "";
    snprintf(path, sizeof(path), "%s/pop.recd", fx->dir);
    recd_model_spec_t spec = {.kind = RECD_MODEL_POPULARITY,
                              .n_users = 3,
                              .n_items = 4,
                              .user_ids = user_ids,
                              .item_ids = item_ids,
                              .item_popularity = popularity};
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_OK);
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    if (m == NULL)
        fail_msg("open: %s", err);
    assert_int_equal(recd_model_kind(m), RECD_MODEL_POPULARITY);
    assert_int_equal(recd_model_n_factors(m), 0);
    assert_null(recd_model_user_vector(m, 0));
    assert_null(recd_model_item_factors(m));
    size_t mlen, n;
    assert_memory_equal(recd_model_metadata(m, &mlen), "{}", 2);
    assert_int_equal(mlen, 2);
    const uint32_t *items;
    const float *values;
    recd_model_user_items(m, 2, &items, &values, &n);
    assert_int_equal(n, 0);
    float vec[2];
    uint32_t it = 0;
    float v = 1;
    assert_int_equal(recd_model_fold_in(m, &it, &v, 1, vec), RECD_EINVAL);
    recd_model_release(m);
}

static void test_artifact_writer_rejects(void **state)
{
    fixture_t *fx = *state;
    char path[160], err[256];
    snprintf(path, sizeof(path), "%s/bad.recd", fx->dir);
    recd_csr_t csr = fixture_csr();

    recd_model_spec_t spec = fixture_spec(&csr);
    const char *dup_ids[] = {"u1", "u2", "u1"};
    spec.user_ids = dup_ids;
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "duplicate user id \"u1\""));

    spec = fixture_spec(&csr);
    float nan_factors[8];
    memcpy(nan_factors, item_factors, sizeof(nan_factors));
    nan_factors[5] = NAN;
    spec.item_factors = nan_factors;
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "non-finite value in item factors at index 5"));

    spec = fixture_spec(&csr);
    spec.kind = RECD_MODEL_POPULARITY;
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "factors"));

    spec = fixture_spec(&csr);
    uint32_t bad_cols[] = {0, 2, 1, 2, 4};
    csr.col = bad_cols;
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "out of range"));

    assert_int_equal(access(path, F_OK), -1);
}

static void test_artifact_truncated(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    uint8_t *buf = read_all(fx->path, &len);
    size_t cuts[] = {5, 11, 100, 263, 264, 400, len / 2, len - 33, len - 1};
    for (size_t i = 0; i != sizeof(cuts) / sizeof(cuts[0]); ++i) {
        write_all(fx->path, buf, cuts[i]);
        expect_reject(fx->path, "truncated", NULL);
    }
    /* Past the header, the message gives both sizes. */
    char expected[96];
    snprintf(expected, sizeof(expected), "truncated: header says %zu bytes, file has %zu", len, len / 2);
    write_all(fx->path, buf, len / 2);
    expect_reject(fx->path, expected, NULL);
    free(buf);
}

static void test_artifact_checksum(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    uint8_t *buf = read_all(fx->path, &len);
    size_t positions[] = {section_offset(buf, S_ITEM_FACTORS) + 3, section_offset(buf, S_METADATA) + 1,
                          section_offset(buf, S_USER_IDS) + 30, len - 1};
    for (size_t i = 0; i != sizeof(positions) / sizeof(positions[0]); ++i) {
        buf[positions[i]] ^= 0x10;
        write_all(fx->path, buf, len);
        expect_reject(fx->path, "checksum mismatch: file is corrupted", NULL);
        buf[positions[i]] ^= 0x10;
    }
    write_all(fx->path, buf, len);
    char err[256];
    recd_model_t *m = recd_model_open(fx->path, err, sizeof(err));
    assert_non_null(m);
    recd_model_release(m);
    free(buf);
}

static void test_artifact_bad_magic(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    uint8_t *buf = read_all(fx->path, &len);
    buf[3] = 'X';
    reseal(buf, len);
    write_all(fx->path, buf, len);
    expect_reject(fx->path, "bad magic", NULL);
    write_all(fx->path, (const uint8_t *)"hello, world\n", 13);
    expect_reject(fx->path, "bad magic", NULL);
    free(buf);
}

static void test_artifact_bad_version(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    uint8_t *buf = read_all(fx->path, &len);
    put_u32(buf, OFF_VERSION, 7);
    reseal(buf, len);
    write_all(fx->path, buf, len);
    expect_reject(fx->path, "unsupported artifact format version 7 (this recd reads 1 and 2)", NULL);
    free(buf);
}

static void patch_and_expect(const char *path, const uint8_t *orig, size_t len, size_t off, uint64_t value, const char *fragment1,
                             const char *fragment2)
{
    uint8_t *buf = malloc(len);
    memcpy(buf, orig, len);
    put_u64(buf, off, value);
    reseal(buf, len);
    write_all(path, buf, len);
    expect_reject(path, fragment1, fragment2);
    free(buf);
}

static void test_artifact_inconsistent_counts(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    uint8_t *buf = read_all(fx->path, &len);
    patch_and_expect(fx->path, buf, len, OFF_N_ITEMS, 5, "inconsistent counts: item factors section is 32 bytes",
                     "n_items*n_factors*4 = 40");
    patch_and_expect(fx->path, buf, len, OFF_N_USERS, 2, "inconsistent counts: user factors section is 24 bytes",
                     "n_users*n_factors*4 = 16");
    patch_and_expect(fx->path, buf, len, OFF_NNZ, 4, "inconsistent counts: CSR cols section", "nnz*4 = 16");
    /* n_factors is a u32 followed by alpha; patch only its 4 bytes. */
    uint8_t *copy = malloc(len);
    memcpy(copy, buf, len);
    put_u32(copy, OFF_N_FACTORS, 3);
    reseal(copy, len);
    write_all(fx->path, copy, len);
    expect_reject(fx->path, "inconsistent counts: user factors section", "n_users*n_factors*4 = 36");
    /* A section size that disagrees with the counts. */
    patch_and_expect(fx->path, buf, len, OFF_SECTIONS + 16 * S_POPULARITY + 8, 12, "inconsistent counts: popularity", NULL);
    free(copy);
    free(buf);
}

static void test_artifact_bad_offsets(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    uint8_t *buf = read_all(fx->path, &len);
    uint64_t past = (len + 63) / 64 * 64 + 64;
    patch_and_expect(fx->path, buf, len, OFF_SECTIONS + 16 * S_ITEM_FACTORS, past, "item factors section", "extends past the end");
    patch_and_expect(fx->path, buf, len, OFF_SECTIONS + 16 * S_METADATA + 8, UINT64_MAX - 8, "metadata section",
                     "extends past the end");
    patch_and_expect(fx->path, buf, len, OFF_SECTIONS + 16 * S_GRAM, section_offset(buf, S_GRAM) + 4, "gram section",
                     "not 64-byte aligned");
    patch_and_expect(fx->path, buf, len, OFF_SECTIONS + 16 * S_ITEM_IDS, section_offset(buf, S_USER_IDS), "item id table section",
                     "overlaps");
    free(buf);
}

static void test_artifact_bad_contents(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    uint8_t *buf = read_all(fx->path, &len);
    uint8_t *copy = malloc(len);

    /* A non-finite factor. */
    memcpy(copy, buf, len);
    float inf = INFINITY;
    memcpy(copy + section_offset(buf, S_USER_FACTORS) + 4 * 3, &inf, 4);
    reseal(copy, len);
    write_all(fx->path, copy, len);
    expect_reject(fx->path, "non-finite value in user factors at index 3", NULL);

    /* A CSR column out of range, then a row_ptr that does not end at nnz. */
    memcpy(copy, buf, len);
    put_u32(copy, section_offset(buf, S_COLS) + 4 * 4, 9);
    reseal(copy, len);
    write_all(fx->path, copy, len);
    expect_reject(fx->path, "CSR column 9", "out of range");
    memcpy(copy, buf, len);
    put_u64(copy, section_offset(buf, S_ROW_PTR) + 8 * 3, 4);
    reseal(copy, len);
    write_all(fx->path, copy, len);
    expect_reject(fx->path, "CSR row_ptr ends at 4", NULL);

    /* Ids: "u2" turned into "u1" (duplicate), then the NUL after "u1" replaced. The id bytes follow 4 offsets. */
    size_t ids = section_offset(buf, S_USER_IDS) + 8 * 4;
    assert_memory_equal(buf + ids, "u1\0u2\0u10\0", 10);
    memcpy(copy, buf, len);
    copy[ids + 4] = '1';
    reseal(copy, len);
    write_all(fx->path, copy, len);
    expect_reject(fx->path, "duplicate user id \"u1\"", NULL);
    memcpy(copy, buf, len);
    copy[ids + 2] = 'x';
    reseal(copy, len);
    write_all(fx->path, copy, len);
    expect_reject(fx->path, "user id table", "NUL-terminated");
    /* Offsets that go backwards. */
    memcpy(copy, buf, len);
    put_u64(copy, section_offset(buf, S_ITEM_IDS) + 8 * 2, 2);
    reseal(copy, len);
    write_all(fx->path, copy, len);
    expect_reject(fx->path, "item id table", "not increasing");
    free(copy);
    free(buf);
}

static void test_artifact_empty_and_missing(void **state)
{
    fixture_t *fx = *state;
    write_all(fx->path, (const uint8_t *)"", 0);
    expect_reject(fx->path, "empty file", NULL);
    unlink(fx->path);
    expect_reject(fx->path, "cannot open", "No such file");
    expect_reject(fx->dir, "not a regular file", NULL);
}

/* The path of a committed fixture in tests/data. */
static void data_path(char *out, size_t len, const char *name)
{
    const char *src = getenv("RECD_SOURCE_DIR");
    if (src != NULL) {
        snprintf(out, len, "%s/tests/data/%s", src, name);
    } else {
        const char *file = __FILE__, *tail = strstr(file, "tests/models/test_artifact.c");
        assert_non_null(tail);
        snprintf(out, len, "%.*stests/data/%s", (int)(tail - file), file, name);
    }
}

/* The fixture's item factors as bf16 (they are exact in bf16: small dyadic numbers), as int8 with per-row scales. */
static uint16_t fixture_bf16[8];
static const int8_t fixture_int8[8] = {64, 127, 127, 0, -64, 127, 0, 127};
static const float fixture_scales[4] = {1.0f / 127, 1.0f / 127, 2.0f / 127, 0.25f / 127};
static const char fixture_ann[100] = "an opaque index: the artifact layer only carries it";

/* The fixture spec with three compact-factor sections and an (opaque) index section. */
static recd_model_spec_t fixture_spec_extras(const recd_csr_t *csr, recd_artifact_extra_t extras[4])
{
    for (int i = 0; i != 8; ++i) {
        uint32_t bits;
        memcpy(&bits, &item_factors[i], 4);
        fixture_bf16[i] = (uint16_t)(bits >> 16);
    }
    extras[0] = (recd_artifact_extra_t){RECD_ARTIFACT_ITEM_FACTORS_BF16, fixture_bf16, sizeof(fixture_bf16)};
    extras[1] = (recd_artifact_extra_t){RECD_ARTIFACT_ITEM_FACTORS_INT8, fixture_int8, sizeof(fixture_int8)};
    extras[2] = (recd_artifact_extra_t){RECD_ARTIFACT_INT8_SCALES, fixture_scales, sizeof(fixture_scales)};
    extras[3] = (recd_artifact_extra_t){RECD_ARTIFACT_ANN_INDEX, fixture_ann, sizeof(fixture_ann)};
    recd_model_spec_t spec = fixture_spec(csr);
    spec.extras = extras;
    spec.n_extras = 4;
    return spec;
}

/* The committed v1 fixture (tests/data/artifact_v1.recd) still opens, with no optional sections; the committed v2 fixture
 * (tests/data/artifact_v2.recd, the fixture with extras) is what today's writer writes, byte for byte: any change to the
 * format must bump RECD_ARTIFACT_FORMAT_VERSION rather than silently break existing registries. The fixture's factors are
 * small dyadic numbers, so its Gram matrix is exact whatever BLAS kernel computes it. */
static void test_artifact_golden(void **state)
{
    fixture_t *fx = *state;
    char golden[512], err[512] = "";
    data_path(golden, sizeof(golden), "artifact_v1.recd");
    recd_model_t *m = recd_model_open(golden, err, sizeof(err));
    if (m == NULL)
        fail_msg("open: %s", err);
    assert_string_equal(recd_model_sha256(m), "c3b4a928b355d4c26523dae4f7f0a0fc1c2a6f530b91c09f1e6435e8125ba8bc");
    assert_int_equal(recd_model_find_user(m, "u10", 3), 2);
    assert_memory_equal(recd_model_item_factors(m), item_factors, sizeof(item_factors));
    uint64_t size = 99;
    assert_null(recd_model_extra(m, RECD_ARTIFACT_ITEM_FACTORS_BF16, &size));
    assert_int_equal(size, 0);
    recd_model_release(m);

    /* without optional sections today's writer still writes version 1, byte for byte: older recd binaries read it */
    char path[160];
    recd_csr_t plain_csr = fixture_csr();
    recd_model_spec_t plain = fixture_spec(&plain_csr);
    snprintf(path, sizeof(path), "%s/v1.recd", fx->dir);
    assert_int_equal(recd_model_write(&plain, path, err, sizeof(err)), RECD_OK);
    size_t v1len, v1glen;
    uint8_t *v1buf = read_all(path, &v1len), *v1gbuf = read_all(golden, &v1glen);
    assert_int_equal(v1len, v1glen);
    assert_memory_equal(v1buf, v1gbuf, v1len);
    free(v1buf);
    free(v1gbuf);

    snprintf(path, sizeof(path), "%s/v2.recd", fx->dir);
    recd_csr_t csr = fixture_csr();
    recd_artifact_extra_t extras[4];
    recd_model_spec_t spec = fixture_spec_extras(&csr, extras);
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_OK);
    data_path(golden, sizeof(golden), "artifact_v2.recd");
    size_t glen, len;
    uint8_t *gbuf = read_all(golden, &glen), *buf = read_all(path, &len);
    assert_int_equal(len, glen);
    assert_memory_equal(buf, gbuf, len);
    assert_int_equal(get_u64(buf, OFF_VERSION) & 0xffffffffu, 2);
    free(gbuf);
    free(buf);
}

/* Byte offsets of the version-2 extension table (see the format comment in models/artifact.c). */
#define OFF_N_EXTRAS 264
#define OFF_EXTENSIONS 272

static void test_artifact_extras_roundtrip(void **state)
{
    fixture_t *fx = *state;
    char path[160], err[256] = "";
    snprintf(path, sizeof(path), "%s/extras.recd", fx->dir);
    recd_csr_t csr = fixture_csr();
    recd_artifact_extra_t extras[4];
    recd_model_spec_t spec = fixture_spec_extras(&csr, extras);
    /* the opaque index section is carried by the writer, but a reader checks an ANN index when it opens the model */
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_OK);
    assert_null(recd_model_open(path, err, sizeof(err)));
    assert_non_null(strstr(err, "bad ANN index section: ANN index truncated"));
    recd_ann_params_t ap;
    recd_ann_params_init(&ap);
    ap.n_lists = 2;
    recd_ann_t *ann = recd_ann_build(item_factors, NULL, 4, 2, &ap, err, sizeof(err));
    assert_non_null(ann);
    size_t ann_size;
    extras[3].data = recd_ann_bytes(ann, &ann_size);
    extras[3].size = ann_size;
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_OK);
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    if (m == NULL)
        fail_msg("open: %s", err);
    assert_non_null(recd_model_ann(m));
    assert_int_equal(recd_ann_n_items(recd_model_ann(m)), 4);
    for (int k = 0; k != 4; ++k) {
        uint64_t size = 0;
        const void *p = recd_model_extra(m, extras[k].tag, &size);
        assert_non_null(p);
        assert_int_equal(size, extras[k].size);
        assert_memory_equal(p, extras[k].data, size);
        assert_int_equal((uintptr_t)p % RECD_ARTIFACT_ALIGN, 0);
        assert_non_null(recd_artifact_tag_name(extras[k].tag));
    }
    assert_null(recd_model_extra(m, RECD_ARTIFACT_ITEM_FACTORS_FP16, NULL));
    assert_null(recd_artifact_tag_name(5));
    /* The fixed sections read as before. */
    assert_memory_equal(recd_model_item_factors(m), item_factors, sizeof(item_factors));
    size_t mlen;
    assert_memory_equal(recd_model_metadata(m, &mlen), metadata, strlen(metadata));
    assert_int_equal(mlen, strlen(metadata));
    recd_model_release(m);

    /* Layout: the count and table in the header, aligned sections after the metadata, the checksum right after the last. */
    size_t len;
    uint8_t *buf = read_all(path, &len);
    assert_int_equal(get_u64(buf, OFF_N_EXTRAS), 4); /* u32 count, u32 reserved 0 */
    assert_int_equal(get_u64(buf, 56) & 0xffffffffu, OFF_EXTENSIONS + 4 * 24);
    uint64_t prev = section_offset(buf, S_METADATA) + strlen(metadata);
    for (int k = 0; k != 4; ++k) {
        uint64_t off = get_u64(buf, OFF_EXTENSIONS + 24 * k + 8), size = get_u64(buf, OFF_EXTENSIONS + 24 * k + 16);
        assert_int_equal(get_u64(buf, OFF_EXTENSIONS + 24 * k), extras[k].tag);
        assert_int_equal(off % RECD_ARTIFACT_ALIGN, 0);
        assert_true(off >= prev);
        assert_int_equal(size, extras[k].size);
        prev = off + size;
    }
    assert_int_equal(prev + 32, len);
    free(buf);
    recd_ann_free(ann);
}

static void test_artifact_extras_rejected(void **state)
{
    fixture_t *fx = *state;
    char path[160], err[256] = "";
    snprintf(path, sizeof(path), "%s/extras.recd", fx->dir);
    recd_csr_t csr = fixture_csr();
    recd_artifact_extra_t extras[4];
    recd_model_spec_t spec = fixture_spec_extras(&csr, extras);
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_OK);
    size_t len;
    uint8_t *buf = read_all(path, &len);
    uint64_t bf16_off = get_u64(buf, OFF_EXTENSIONS + 8), ann_off = get_u64(buf, OFF_EXTENSIONS + 3 * 24 + 8);
    uint8_t *copy = malloc(len);

    /* An extra section's bytes are covered by the checksum. */
    size_t flips[] = {bf16_off + 1, ann_off + 50, OFF_EXTENSIONS + 3 * 24};
    for (size_t i = 0; i != sizeof(flips) / sizeof(flips[0]); ++i) {
        memcpy(copy, buf, len);
        copy[flips[i]] ^= 0x04;
        write_all(path, copy, len);
        expect_reject(path, "checksum mismatch: file is corrupted", NULL);
    }
    /* A tag this recd does not know is an error that names it, even when the checksum matches. */
    memcpy(copy, buf, len);
    put_u32(copy, OFF_EXTENSIONS + 3 * 24, 99);
    reseal(copy, len);
    write_all(path, copy, len);
    expect_reject(path, "unknown optional section tag 99", NULL);
    /* A repeated tag, a section past the end, an overlap with the metadata, a wrong compact size, a reserved field. */
    memcpy(copy, buf, len);
    put_u32(copy, OFF_EXTENSIONS + 3 * 24, RECD_ARTIFACT_ITEM_FACTORS_BF16);
    reseal(copy, len);
    write_all(path, copy, len);
    expect_reject(path, "tag 1 (item factors bf16) appears twice", NULL);
    patch_and_expect(path, buf, len, OFF_EXTENSIONS + 3 * 24 + 16, 4096, "ANN index section", "extends past the end");
    patch_and_expect(path, buf, len, OFF_EXTENSIONS + 8, section_offset(buf, S_METADATA), "item factors bf16 section", "overlaps");
    patch_and_expect(path, buf, len, OFF_EXTENSIONS + 16, 14, "inconsistent counts: item factors bf16 section is 14 bytes",
                     "n_items*n_factors*2 = 16");
    patch_and_expect(path, buf, len, OFF_N_EXTRAS, 4 | (uint64_t)1 << 32, "malformed header", NULL);
    patch_and_expect(path, buf, len, OFF_N_EXTRAS, 3, "malformed header: header size 368", "expected 344");
    /* A non-finite scale. */
    memcpy(copy, buf, len);
    float inf = INFINITY;
    memcpy(copy + get_u64(buf, OFF_EXTENSIONS + 2 * 24 + 8) + 4, &inf, 4);
    reseal(copy, len);
    write_all(path, copy, len);
    expect_reject(path, "bad value in int8 row scales at index 1", NULL);
    free(copy);
    free(buf);

    /* The writer refuses what the reader would. */
    recd_artifact_extra_t bad[2] = {{99, "x", 1}};
    spec.extras = bad;
    spec.n_extras = 1;
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "unknown optional section tag 99"));
    bad[0] = (recd_artifact_extra_t){RECD_ARTIFACT_ITEM_FACTORS_INT8, fixture_int8, sizeof(fixture_int8)};
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "item factors int8 section without its int8 row scales section"));
    bad[0] = (recd_artifact_extra_t){RECD_ARTIFACT_ITEM_FACTORS_FP16, fixture_bf16, 12};
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "item factors fp16 section is 12 bytes"));
    uint16_t fp16_inf[8] = {0, 0, 0x7c00};
    bad[0] = (recd_artifact_extra_t){RECD_ARTIFACT_ITEM_FACTORS_FP16, fp16_inf, sizeof(fp16_inf)};
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "non-finite value in item factors fp16 at index 2"));
    bad[0] = (recd_artifact_extra_t){RECD_ARTIFACT_ANN_INDEX, "a", 1};
    bad[1] = bad[0];
    spec.n_extras = 2;
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "appears twice"));
    spec.extras = NULL;
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_EINVAL);
    recd_model_spec_t pop = {.kind = RECD_MODEL_POPULARITY,
                             .n_users = 3,
                             .n_items = 4,
                             .user_ids = user_ids,
                             .item_ids = item_ids,
                             .item_popularity = popularity,
                             .extras = extras,
                             .n_extras = 1};
    assert_int_equal(recd_model_write(&pop, path, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "item factors bf16 section in a model without factors"));
}

/* Enough ids for long probe sequences in the open-addressing tables; every id found, near misses not. */
static void test_artifact_many_ids(void **state)
{
    fixture_t *fx = *state;
    enum { N = 5000 };
    char path[160], err[256] = "", buf[32];
    char **ids = malloc(N * sizeof(char *));
    float *pop = malloc(N * sizeof(float));
    for (int i = 0; i != N; ++i) {
        ids[i] = malloc(16);
        snprintf(ids[i], 16, "%d", i * 7);
        pop[i] = (float)(i % 10);
    }
    recd_model_spec_t spec = {.kind = RECD_MODEL_POPULARITY,
                              .n_users = N,
                              .n_items = N,
                              .user_ids = (const char *const *)ids,
                              .item_ids = (const char *const *)ids,
                              .item_popularity = pop};
    snprintf(path, sizeof(path), "%s/many.recd", fx->dir);
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_OK);
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    if (m == NULL)
        fail_msg("open: %s", err);
    for (int i = 0; i != N; ++i) {
        assert_int_equal(recd_model_find_user(m, ids[i], strlen(ids[i])), i);
        assert_int_equal(recd_model_find_item(m, ids[i], strlen(ids[i])), i);
        int n = snprintf(buf, sizeof(buf), "%d", i * 7 + 1 + i % 6); /* never a multiple of 7 */
        assert_int_equal(recd_model_find_item(m, buf, (size_t)n), -1);
    }
    /* Popular order: descending popularity, ties by ascending index. */
    const uint32_t *order = recd_model_popular_order(m);
    for (int i = 1; i != N; ++i) {
        float a = pop[order[i - 1]], b = pop[order[i]];
        assert_true(a > b || (a == b && order[i - 1] < order[i]));
    }
    assert_int_equal(order[0], 9);
    recd_model_release(m);
    for (int i = 0; i != N; ++i)
        free(ids[i]);
    free(ids);
    free(pop);
}

int test_artifact_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_artifact_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_popularity_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_golden, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_extras_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_extras_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_many_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_writer_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_bad_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_bad_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_inconsistent_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_bad_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_bad_contents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_empty_and_missing, setup, teardown),
    };
    return cmocka_run_group_tests_name("artifact", tests, NULL, NULL);
}
