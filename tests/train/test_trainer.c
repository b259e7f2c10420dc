/* test_trainer.c: the recd-datagen and recd-train executables, run as a user runs them (exit codes, outputs, registry). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include "models/model.h"

typedef struct st_fixture_t {
    char dir[256];
    char datagen[1024], train[1024];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    const char *bin = getenv("RECD_BINARY_DIR");
    snprintf(f->datagen, sizeof(f->datagen), "%s/recd-datagen", bin != NULL ? bin : ".");
    snprintf(f->train, sizeof(f->train), "%s/recd-train", bin != NULL ? bin : ".");
    snprintf(f->dir, sizeof(f->dir), "/tmp/recd-test-trainer-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Runs a shell command line, returns its exit status (or -1). */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

static void test_datagen_deterministic_and_well_formed(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(run("'%s' --users 200 --items 80 --interactions 3000 --seed 5 --output %s/a.csv", f->datagen, f->dir), 0);
    assert_int_equal(run("'%s' --users 200 --items 80 --interactions 3000 --seed 5 > %s/b.csv", f->datagen, f->dir), 0);
    assert_int_equal(run("'%s' --users 200 --items 80 --interactions 3000 --seed 6 --output %s/c.csv", f->datagen, f->dir), 0);
    char path[512];
    size_t la, lb, lc;
    snprintf(path, sizeof(path), "%s/a.csv", f->dir);
    char *a = slurp(path, &la);
    snprintf(path, sizeof(path), "%s/b.csv", f->dir);
    char *b = slurp(path, &lb);
    snprintf(path, sizeof(path), "%s/c.csv", f->dir);
    char *c = slurp(path, &lc);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    assert_true(la != lc || memcmp(a, c, la) != 0);

    assert_true(strncmp(a, "user,item,value,timestamp\n", 26) == 0);
    size_t rows = 0;
    long long last_ts = 0;
    char *line = strchr(a, '\n') + 1;
    while (*line != '\0') {
        unsigned u, i, v;
        long long ts;
        assert_int_equal(sscanf(line, "u%u,i%u,%u,%lld", &u, &i, &v, &ts), 4);
        assert_true(u < 200 && i < 80 && v >= 1 && v <= 5 && ts >= last_ts);
        last_ts = ts;
        ++rows;
        line = strchr(line, '\n') + 1;
    }
    assert_int_equal(rows, 3000);
    free(a), free(b), free(c);

    assert_int_equal(run("'%s' --users 0 --items 5 --interactions 5 2>/dev/null", f->datagen), 2);
    assert_int_equal(run("'%s' --items 5 --interactions 5 2>/dev/null", f->datagen), 2);
}

static json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (j == NULL)
        print_error("%s: %s\n", path, e.text);
    assert_non_null(j);
    return j;
}

static void test_train_publishes_versions(void **state)
{
    fixture_t *f = *state;
    char path[512];
    assert_int_equal(run("'%s' --users 300 --items 120 --interactions 8000 --seed 2 --output %s/log.csv", f->datagen, f->dir), 0);
    assert_int_equal(run("'%s' --input %s/log.csv --registry %s/reg --model demo --factors 8 --iterations 6 --threads 2 "
                         "--seed 3 --evaluate > %s/out1.json 2> %s/err1.txt",
                         f->train, f->dir, f->dir, f->dir, f->dir),
                     0);
    snprintf(path, sizeof(path), "%s/out1.json", f->dir);
    json_t *s = load_json(path);
    assert_string_equal(json_string_value(json_object_get(s, "model")), "demo");
    assert_int_equal(json_integer_value(json_object_get(s, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(s, "algorithm")), "als");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "params"), "factors")), 8);
    json_t *ev = json_object_get(s, "evaluation");
    double ndcg = json_real_value(json_object_get(ev, "ndcg"));
    assert_true(ndcg > 0 && ndcg <= 1);
    assert_int_equal(json_integer_value(json_object_get(ev, "k")), 10);
    size_t n_users = (size_t)json_integer_value(json_object_get(s, "users"));
    assert_true(n_users > 0 && n_users <= 300);
    const char *artifact = json_string_value(json_object_get(s, "artifact"));
    snprintf(path, sizeof(path), "%s/reg/demo/1/model.recd", f->dir);
    assert_string_equal(artifact, path);

    /* progress went to stderr, one line per iteration of each of the two trainings */
    snprintf(path, sizeof(path), "%s/err1.txt", f->dir);
    char *err = slurp(path, NULL);
    assert_non_null(strstr(err, "split: iter 6/6 loss="));
    assert_non_null(strstr(err, "\niter 6/6 loss="));
    free(err);

    /* manifest and evaluation report beside the artifact */
    snprintf(path, sizeof(path), "%s/reg/demo/1/manifest.json", f->dir);
    json_t *man = load_json(path);
    assert_string_equal(json_string_value(json_object_get(man, "kind")), "als");
    assert_int_equal(strlen(json_string_value(json_object_get(json_object_get(man, "data"), "sha256"))), 64);
    snprintf(path, sizeof(path), "%s/reg/demo/1/evaluation.json", f->dir);
    json_t *evf = load_json(path);
    assert_true(json_real_value(json_object_get(evf, "ndcg")) == ndcg);

    /* the artifact loads; a user's stored vector is what fold-in computes from its training row (ALS ends on users) */
    char errbuf[256];
    recd_model_t *m = recd_model_open(artifact, errbuf, sizeof(errbuf));
    assert_non_null(m);
    assert_int_equal(recd_model_n_users(m), n_users);
    assert_int_equal(recd_model_n_factors(m), 8);
    assert_string_equal(json_string_value(json_object_get(man, "artifact_sha256")), recd_model_sha256(m));
    for (uint32_t u = 0; u < n_users; u += 37) {
        const uint32_t *items;
        const float *values;
        size_t n;
        float vec[8];
        recd_model_user_items(m, u, &items, &values, &n);
        assert_int_equal(recd_model_fold_in(m, items, values, n, vec), RECD_OK);
        const float *x = recd_model_user_vector(m, u);
        double diff = 0, norm = 0;
        for (int k = 0; k != 8; ++k) {
            diff += (vec[k] - x[k]) * (vec[k] - x[k]);
            norm += x[k] * x[k];
        }
        assert_true(norm > 0);
        assert_true(sqrt(diff / norm) < 1e-3);
    }
    recd_model_release(m);

    /* same seed, same data: the same factors; the next run is version 2 */
    assert_int_equal(run("'%s' --input %s/log.csv --registry %s/reg --model demo --factors 8 --iterations 6 --threads 2 "
                         "--seed 3 > %s/out2.json 2>/dev/null",
                         f->train, f->dir, f->dir, f->dir),
                     0);
    snprintf(path, sizeof(path), "%s/out2.json", f->dir);
    json_t *s2 = load_json(path);
    assert_int_equal(json_integer_value(json_object_get(s2, "version")), 2);
    assert_true(json_is_false(json_object_get(json_object_get(s2, "evaluation"), "evaluated")));
    recd_model_t *m1 = recd_model_open(artifact, errbuf, sizeof(errbuf));
    recd_model_t *m2 = recd_model_open(json_string_value(json_object_get(s2, "artifact")), errbuf, sizeof(errbuf));
    assert_non_null(m1);
    assert_non_null(m2);
    assert_memory_equal(recd_model_item_factors(m1), recd_model_item_factors(m2), recd_model_n_items(m1) * 8 * sizeof(float));
    recd_model_release(m1);
    recd_model_release(m2);

    /* popularity */
    assert_int_equal(run("'%s' --input %s/log.csv --registry %s/reg --model pop --algorithm popularity > %s/out3.json "
                         "2>/dev/null",
                         f->train, f->dir, f->dir, f->dir),
                     0);
    snprintf(path, sizeof(path), "%s/reg/pop/1/model.recd", f->dir);
    m = recd_model_open(path, errbuf, sizeof(errbuf));
    assert_non_null(m);
    assert_int_equal(recd_model_kind(m), RECD_MODEL_POPULARITY);
    assert_int_equal(recd_model_n_factors(m), 0);
    recd_model_release(m);

    json_decref(s), json_decref(s2), json_decref(man), json_decref(evf);
}

static void test_train_errors(void **state)
{
    fixture_t *f = *state;
    /* usage errors: 2, and nothing on stdout */
    assert_int_equal(run("'%s' --input x --registry %s/reg 2>/dev/null", f->train, f->dir), 2);
    assert_int_equal(run("'%s' --input x --registry %s/reg --model m --factors 0 2>/dev/null", f->train, f->dir), 2);
    assert_int_equal(run("'%s' --input x --registry %s/reg --model m --algorithm svd 2>/dev/null", f->train, f->dir), 2);
    assert_int_equal(run("'%s' --input x --registry %s/reg --model .hidden 2>/dev/null", f->train, f->dir), 2);
    assert_int_equal(run("'%s' --bogus 2>/dev/null", f->train), 2);
    assert_int_equal(run("'%s' --help > /dev/null", f->train), 0);
    /* failures: 1 with a message, and no version published */
    assert_int_equal(run("'%s' --input %s/missing.csv --registry %s/reg --model m 2> %s/err.txt", f->train, f->dir, f->dir, f->dir),
                     1);
    char path[512];
    snprintf(path, sizeof(path), "%s/err.txt", f->dir);
    char *err = slurp(path, NULL);
    assert_non_null(strstr(err, "missing.csv"));
    free(err);
    assert_int_equal(run("printf 'user,item\\n,\\n' > %s/empty.csv", f->dir), 0);
    assert_int_equal(run("'%s' --input %s/empty.csv --registry %s/reg --model m 2>/dev/null", f->train, f->dir, f->dir), 1);
    snprintf(path, sizeof(path), "%s/reg/m/1", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
}

static void test_train_stdin_and_cleanse(void **state)
{
    fixture_t *f = *state;
    char path[512];
    /* u1 has one item and i9 one user: a 2-core drops both; repeated (u0, i0) rows merge by max */
    assert_int_equal(
        run("printf 'user,item,value\\nu0,i0,1\\nu0,i0,4\\nu0,i1,1\\nu2,i0,1\\nu2,i1,2\\nu1,i9,1\\n' > %s/small.csv", f->dir), 0);
    assert_int_equal(run("'%s' --input - --registry %s/reg --model small --min-user-interactions 2 --min-item-interactions 2 "
                         "--merge max --factors 2 --iterations 2 < %s/small.csv > %s/small.json 2>/dev/null",
                         f->train, f->dir, f->dir, f->dir),
                     0);
    snprintf(path, sizeof(path), "%s/small.json", f->dir);
    json_t *s = load_json(path);
    assert_int_equal(json_integer_value(json_object_get(s, "users")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "items")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "interactions")), 4);
    char errbuf[256];
    recd_model_t *m = recd_model_open(json_string_value(json_object_get(s, "artifact")), errbuf, sizeof(errbuf));
    assert_non_null(m);
    const uint32_t *items;
    const float *values;
    size_t n;
    int64_t u0 = recd_model_find_user(m, "u0", 2), i0 = recd_model_find_item(m, "i0", 2);
    assert_true(u0 >= 0 && i0 >= 0);
    assert_int_equal(recd_model_find_user(m, "u1", 2), -1);
    recd_model_user_items(m, (uint32_t)u0, &items, &values, &n);
    assert_int_equal(n, 2);
    for (size_t j = 0; j != n; ++j)
        if (items[j] == (uint32_t)i0)
            assert_true(values[j] == 4.0f); /* max, not the sum 5 */
    recd_model_release(m);
    snprintf(path, sizeof(path), "%s/reg/small/1/manifest.json", f->dir);
    json_t *man = load_json(path);
    assert_string_equal(json_string_value(json_object_get(json_object_get(man, "data"), "sha256_of")), "accepted rows");
    json_decref(man);
    json_decref(s);
}

int test_trainer_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datagen_deterministic_and_well_formed),
        cmocka_unit_test(test_train_publishes_versions),
        cmocka_unit_test(test_train_errors),
        cmocka_unit_test(test_train_stdin_and_cleanse),
    };
    return cmocka_run_group_tests_name("trainer", tests, setup, teardown);
}
