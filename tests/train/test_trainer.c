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

/* The log the CLI tests share: 300 users x 120 items of planted tastes. */
static void make_log(fixture_t *f)
{
    assert_int_equal(run("test -f %s/log.csv || '%s' --users 300 --items 120 --interactions 8000 --seed 2 --output %s/log.csv",
                         f->dir, f->datagen, f->dir),
                     0);
}

static json_t *run_json(fixture_t *f, const char *name, const char *args)
{
    char path[512];
    assert_int_equal(run("'%s' %s > %s/%s.json 2> %s/%s.err", f->train, args, f->dir, name, f->dir, name), 0);
    snprintf(path, sizeof(path), "%s/%s.json", f->dir, name);
    return load_json(path);
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        print_error("missing key %s\n", key);
    assert_non_null(v);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static void test_evaluate_protocols(void **state)
{
    fixture_t *f = *state;
    char args[1024];
    make_log(f);
    static const char *const protocols[] = {"stratified", "temporal", "leave-last-out", "kfold"};
    for (size_t p = 0; p != 4; ++p) {
        snprintf(args, sizeof(args),
                 "evaluate --input %s/log.csv --algorithm als --factors 4 --iterations 3 --threads 2 --protocol %s --folds 3 "
                 "--min-user-interactions 2",
                 f->dir, protocols[p]);
        json_t *r = run_json(f, "ev", args);
        assert_string_equal(json_string_value(json_object_get(r, "command")), "evaluate");
        json_t *ev = json_object_get(r, "evaluation");
        assert_string_equal(json_string_value(json_object_get(ev, "protocol")), protocols[p]);
        double n = num(json_object_get(r, "data"), "interactions"), users = num(json_object_get(r, "data"), "users");
        double train = num(ev, "train_interactions"), test = num(ev, "test_interactions");
        if (p == 3) { /* per-fold counts: the folds partition the interactions */
            json_t *folds = json_object_get(ev, "folds_detail");
            assert_int_equal(json_array_size(folds), 3);
            double covered = 0;
            for (size_t i = 0; i != 3; ++i) {
                json_t *fo = json_array_get(folds, i);
                assert_true(num(fo, "train_interactions") + num(fo, "test_interactions") == n);
                covered += num(fo, "test_interactions");
            }
            assert_true(covered == n);
        } else {
            assert_true(train + test == n);
        }
        if (p == 1)
            assert_true(test == round(0.25 * n));
        if (p == 2) /* one per user: the 2-core leaves every user at least 2 interactions */
            assert_true(test == users);
        for (const char *const *k =
                 (const char *const[]){"precision", "recall", "ndcg", "map", "hit_rate", "mrr", "auc", "coverage", NULL};
             *k != NULL; ++k) {
            double v = num(ev, *k);
            assert_true(v >= 0 && v <= 1);
        }
        assert_true(num(ev, "auc") > 0.5); /* planted tastes: better than chance */
        json_decref(r);
    }
}

static void test_evaluate_report_shape_and_chart(void **state)
{
    fixture_t *f = *state;
    char args[1024], path[512];
    make_log(f);
    /* biased MF: rating metrics beside the ranking ones; sampled negatives on request; the report to a file */
    snprintf(args, sizeof(args),
             "evaluate --input %s/log.csv --algorithm biased_mf --factors 4 --epochs 5 --threads 1 --sampled-negatives 20 "
             "--report %s/mf.json --chart %s/mf.svg",
             f->dir, f->dir, f->dir);
    assert_int_equal(run("'%s' %s > %s/stdout.txt 2> %s/mf.err", f->train, args, f->dir, f->dir), 0);
    snprintf(path, sizeof(path), "%s/stdout.txt", f->dir);
    char *out = slurp(path, NULL);
    assert_string_equal(out, ""); /* --report: nothing on stdout */
    free(out);
    snprintf(path, sizeof(path), "%s/mf.json", f->dir);
    json_t *r = load_json(path);
    json_t *ev = json_object_get(r, "evaluation");
    json_t *rating = json_object_get(ev, "rating");
    assert_non_null(rating);
    assert_true(num(rating, "rmse") > 0 && num(rating, "mae") > 0 && num(rating, "mae") <= num(rating, "rmse"));
    assert_true(num(rating, "n") == num(ev, "test_interactions"));
    json_t *sampled = json_object_get(ev, "sampled");
    assert_non_null(sampled);
    assert_true(num(sampled, "negatives") == 20);
    assert_true(num(sampled, "hit_rate") >= 0 && num(sampled, "hit_rate") <= 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "params"), "epochs")), 5);
    /* the readable table went to stderr, aligned rows */
    snprintf(path, sizeof(path), "%s/mf.err", f->dir);
    char *err = slurp(path, NULL);
    assert_non_null(strstr(err, "\nRMSE   "));
    assert_non_null(strstr(err, "\nnDCG@10  "));
    free(err);
    /* the SVG chart parses as XML; one loss polyline per panel with data: the curve in the report says how many */
    json_t *curve = json_object_get(ev, "curve");
    size_t n_loss = json_array_size(json_object_get(curve, "loss")), n_val = json_array_size(json_object_get(curve, "validation"));
    assert_int_equal(n_loss, 5);
    snprintf(path, sizeof(path), "%s/mf.svg", f->dir);
    char *svg = slurp(path, NULL);
    size_t polylines = 0;
    for (const char *p = svg; (p = strstr(p, "<polyline")) != NULL; ++p)
        ++polylines;
    assert_int_equal(polylines, 1 + (n_val != 0));
    assert_non_null(strstr(svg, "</svg>"));
    free(svg);
    json_decref(r);
}

static void test_tune_selects_on_validation_and_publishes(void **state)
{
    fixture_t *f = *state;
    char args[1024], path[512], errbuf[256];
    make_log(f);
    /* factors=1 cannot represent the planted tastes; 16 can: the search must not pick 1. --holdout-test publishes the model
     * the test figures are of (the train part) */
    snprintf(args, sizeof(args),
             "tune --input %s/log.csv --registry %s/reg --model tuned --algorithm als --grid 'factors=1,16;reg=20' "
             "--iterations 5 --threads 2 --metric ndcg@10 --chart %s/tune.svg --holdout-test",
             f->dir, f->dir, f->dir);
    json_t *r = run_json(f, "tune", args);
    json_t *tuning = json_object_get(r, "tuning");
    json_t *cands = json_object_get(tuning, "candidates");
    /* the default configuration (the flags applied) is always a candidate, first */
    assert_int_equal(json_array_size(cands), 3);
    assert_true(json_is_true(json_object_get(json_array_get(cands, 0), "default")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(cands, 0), "params"), "factors")), 64);
    double s1 = num(json_array_get(cands, 1), "ndcg@10"), s16 = num(json_array_get(cands, 2), "ndcg@10");
    assert_true(s16 > s1);
    size_t best = (size_t)json_integer_value(json_object_get(tuning, "best"));
    assert_true(best != 1);
    double s_best = num(json_array_get(cands, best), "ndcg@10");
    assert_true(num(json_object_get(r, "params"), "factors") ==
                num(json_object_get(json_array_get(cands, best), "params"), "factors"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "params"), "iterations")), 5);
    /* validation came out of the train part only (K folds of it), and the published model saw exactly the train part */
    json_t *ev = json_object_get(r, "evaluation");
    double train = num(ev, "train_interactions"), test = num(ev, "test_interactions");
    assert_true(train + test == num(json_object_get(r, "data"), "interactions"));
    assert_true(num(tuning, "inner_train_interactions") + num(tuning, "validation_interactions") == train);
    assert_true(num(json_object_get(tuning, "validation_scheme"), "carved_from_interactions") == train);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(tuning, "validation_scheme"), "folds")), 5);
    assert_true(json_is_true(json_object_get(ev, "published_model_held_out")));
    const char *artifact = json_string_value(json_object_get(r, "artifact"));
    snprintf(path, sizeof(path), "%s/reg/tuned/1/model.recd", f->dir);
    assert_string_equal(artifact, path);
    recd_model_t *m = recd_model_open(artifact, errbuf, sizeof(errbuf));
    assert_non_null(m);
    size_t seen = 0;
    for (uint32_t u = 0; u != recd_model_n_users(m); ++u) {
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(m, u, &items, &values, &n);
        seen += n;
    }
    assert_true((double)seen == train);
    /* params, validation and test metrics in the metadata, manifest.json and evaluation.json */
    size_t len;
    const char *meta = recd_model_metadata(m, &len);
    json_t *mj = json_loadb(meta, len, 0, NULL);
    assert_non_null(mj);
    assert_true(num(json_object_get(mj, "params"), "factors") == num(json_object_get(r, "params"), "factors"));
    assert_true(num(json_object_get(mj, "tuning"), "best_validation_score") == s_best);
    assert_true(num(json_object_get(mj, "evaluation"), "ndcg") == num(ev, "ndcg"));
    json_decref(mj);
    recd_model_release(m);
    snprintf(path, sizeof(path), "%s/reg/tuned/1/manifest.json", f->dir);
    json_t *man = load_json(path);
    assert_int_equal(json_array_size(json_object_get(json_object_get(man, "tuning"), "candidates")), 3);
    json_decref(man);
    snprintf(path, sizeof(path), "%s/reg/tuned/1/evaluation.json", f->dir);
    json_t *evf = load_json(path);
    assert_true(num(evf, "ndcg") == num(ev, "ndcg"));
    assert_true(num(json_object_get(evf, "validation"), "value") == s_best);
    json_decref(evf);
    /* plain progress lines (stderr is a file here), one per candidate */
    snprintf(path, sizeof(path), "%s/tune.err", f->dir);
    char *err = slurp(path, NULL);
    assert_non_null(strstr(err, "candidate 1/3 als factors=64 "));
    assert_non_null(strstr(err, "candidate 2/3 als factors=1 "));
    assert_non_null(strstr(err, "candidate 3/3 als factors=16 "));
    assert_null(strchr(err, '\r'));
    free(err);

    /* the published artifact, scored as recd serves it on the same split, gives the tune run's test figures */
    snprintf(args, sizeof(args), "evaluate --input %s/log.csv --artifact %s --threads 2", f->dir, artifact);
    json_t *a = run_json(f, "art", args);
    json_t *aev = json_object_get(a, "evaluation");
    for (const char *const *k = (const char *const[]){"precision", "recall", "ndcg", "map", "hit_rate", "mrr", "auc", NULL};
         *k != NULL; ++k)
        assert_true(fabs(num(aev, *k) - num(ev, *k)) < 1e-6);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "artifact"), "test_interactions_in_training")), 0);
    json_decref(a);
    /* on another split the artifact has seen test rows: refused */
    assert_int_equal(run("'%s' evaluate --input %s/log.csv --artifact %s --seed 7 > /dev/null 2> %s/leak.err", f->train, f->dir,
                         artifact, f->dir),
                     1);
    snprintf(path, sizeof(path), "%s/leak.err", f->dir);
    err = slurp(path, NULL);
    assert_non_null(strstr(err, "test interactions of this split"));
    free(err);
    json_decref(r);
}

/* Counts the log's well-formed rows and distinct (user, item) pairs by its own reading of the datagen format. */
static void count_log(const char *path, size_t *rows, size_t *pairs)
{
    char *text = slurp(path, NULL);
    static uint8_t seen[1000][1000];
    memset(seen, 0, sizeof(seen));
    *rows = *pairs = 0;
    for (char *line = strchr(text, '\n') + 1; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        unsigned u, i, v;
        long long ts;
        int used = 0;
        if (next != NULL)
            *next = '\0';
        if (sscanf(line, "u%u,i%u,%u,%lld%n", &u, &i, &v, &ts, &used) == 4 && line[used] == '\0' && u < 1000 && i < 1000) {
            ++*rows;
            *pairs += !seen[u][i];
            seen[u][i] = 1;
        }
        line = next != NULL ? next + 1 : NULL;
    }
    free(text);
}

/* The rows an artifact was trained on: the sum of its users' seen items. */
static size_t artifact_rows(const char *path)
{
    char errbuf[256];
    recd_model_t *m = recd_model_open(path, errbuf, sizeof(errbuf));
    assert_non_null(m);
    size_t seen = 0;
    for (uint32_t u = 0; u != recd_model_n_users(m); ++u) {
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(m, u, &items, &values, &n);
        seen += n;
    }
    recd_model_release(m);
    return seen;
}

static void test_tune_publishes_every_accepted_row(void **state)
{
    fixture_t *f = *state;
    char args[1024], path[512];
    size_t rows, pairs;
    /* repeated (user, item) rows and three rejected lines: the published model must still count every accepted row */
    assert_int_equal(run("'%s' --users 200 --items 90 --interactions 6000 --seed 4 --output %s/dup.csv && "
                         "printf 'u1,,3,5\\nu2,i3,abc,7\\nnot a row\\n' >> %s/dup.csv",
                         f->datagen, f->dir, f->dir),
                     0);
    snprintf(path, sizeof(path), "%s/dup.csv", f->dir);
    count_log(path, &rows, &pairs);
    assert_int_equal(rows, 6000);
    assert_true(pairs < rows);
    snprintf(args, sizeof(args),
             "tune --input %s/dup.csv --registry %s/reg --model all --algorithm als,bpr --grid 'als.factors=4,8;bpr.factors=4' "
             "--iterations 3 --epochs 5 --threads 2",
             f->dir, f->dir);
    json_t *r = run_json(f, "all", args);
    assert_true(num(r, "trained_on_interactions") == (double)pairs);
    assert_string_equal(json_string_value(json_object_get(r, "trained_on")), "all interactions");
    assert_int_equal(artifact_rows(json_string_value(json_object_get(r, "artifact"))), pairs);
    json_t *ev = json_object_get(r, "evaluation");
    assert_true(json_is_false(json_object_get(ev, "published_model_held_out")));
    /* the test figures are of a model that saw fewer rows: the split's train part */
    assert_true(num(ev, "train_interactions") < (double)pairs);
    /* validation was carved from every interaction, the rows the published model learned from */
    assert_true(num(json_object_get(json_object_get(r, "tuning"), "validation_scheme"), "carved_from_interactions") ==
                (double)pairs);
    snprintf(path, sizeof(path), "%s/reg/all/1/manifest.json", f->dir);
    json_t *man = load_json(path);
    assert_true(num(man, "trained_on_rows") == (double)rows);
    assert_true(num(man, "accepted_rows") == (double)rows);
    assert_true(num(man, "trained_on_interactions") == (double)pairs);
    assert_true(json_is_true(json_object_get(man, "trained_on_every_accepted_row")));
    assert_non_null(strstr(json_string_value(json_object_get(man, "held_out_figures")), "none"));
    json_decref(man);
    snprintf(path, sizeof(path), "%s/reg/all/1/evaluation.json", f->dir);
    json_t *evf = load_json(path);
    assert_non_null(strstr(json_string_value(json_object_get(evf, "published_model")), "no held-out figure"));
    json_decref(evf);
    json_decref(r);

    /* train publishes every row too; BPR's fold-in pair is chosen on validation and stored in the artifact recd loads */
    snprintf(args, sizeof(args),
             "train --input %s/dup.csv --registry %s/reg --model bpr --algorithm bpr --factors 8 --epochs 10 --threads 1", f->dir,
             f->dir);
    r = run_json(f, "bpr", args);
    const char *artifact = json_string_value(json_object_get(r, "artifact"));
    assert_int_equal(artifact_rows(artifact), pairs);
    json_t *fold_in = json_object_get(json_object_get(r, "evaluation"), "fold_in");
    assert_non_null(fold_in);
    assert_true(num(fold_in, "validation_score") >= num(fold_in, "validation_score_at_alpha1_reg1"));
    char errbuf[256];
    recd_model_t *m = recd_model_open(artifact, errbuf, sizeof(errbuf));
    assert_non_null(m);
    assert_true(recd_model_alpha(m) == (float)num(fold_in, "alpha"));
    assert_true(recd_model_reg(m) == (float)num(fold_in, "reg"));
    recd_model_release(m);
    snprintf(path, sizeof(path), "%s/reg/bpr/1/manifest.json", f->dir);
    man = load_json(path);
    assert_true(num(man, "trained_on_rows") == (double)rows);
    assert_true(num(json_object_get(man, "fold_in"), "alpha") == num(fold_in, "alpha"));
    json_decref(man);
    json_decref(r);
}

static void test_tune_random_search_and_budget(void **state)
{
    fixture_t *f = *state;
    char args[1024];
    make_log(f);
    /* random search: --budget draws per algorithm, each inside the parameter's search range; flags stay fixed */
    snprintf(args, sizeof(args),
             "tune --input %s/log.csv --registry %s/reg --model rnd --algorithm bpr --search random --budget 3 --factors 4 "
             "--epochs 3 --threads 1 --seed 9",
             f->dir, f->dir);
    json_t *r = run_json(f, "rnd", args);
    json_t *cands = json_object_get(json_object_get(r, "tuning"), "candidates");
    assert_int_equal(json_array_size(cands), 3);
    double first_lr = -1;
    int differ = 0;
    for (size_t i = 0; i != 3; ++i) {
        json_t *p = json_object_get(json_array_get(cands, i), "params");
        double lr = num(p, "learning_rate");
        assert_true(lr >= 0.005 * 0.999 && lr <= 0.1 * 1.001);
        assert_int_equal(json_integer_value(json_object_get(p, "factors")), 4);
        assert_int_equal(json_integer_value(json_object_get(p, "epochs")), 3);
        differ |= i != 0 && lr != first_lr;
        if (i == 0)
            first_lr = lr;
    }
    assert_true(differ);
    json_decref(r);
    /* the default grid (48 ALS candidates) is sampled down to the budget */
    snprintf(args, sizeof(args),
             "tune --input %s/log.csv --registry %s/reg --model grid --algorithm als --budget 4 --factors 4 --iterations 2 "
             "--threads 1",
             f->dir, f->dir);
    r = run_json(f, "grid", args);
    cands = json_object_get(json_object_get(r, "tuning"), "candidates");
    assert_int_equal(json_array_size(cands), 4);
    for (size_t i = 0; i != 4; ++i)
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(cands, i), "params"), "factors")), 4);
    json_decref(r);
}

static void test_train_holdout_test(void **state)
{
    fixture_t *f = *state;
    char args[1024];
    make_log(f);
    snprintf(args, sizeof(args),
             "train --input %s/log.csv --registry %s/reg --model held --algorithm bpr --factors 8 --epochs 10 --threads 1 "
             "--holdout-test --protocol temporal",
             f->dir, f->dir);
    json_t *r = run_json(f, "held", args);
    json_t *ev = json_object_get(r, "evaluation");
    assert_string_equal(json_string_value(json_object_get(ev, "protocol")), "temporal");
    assert_non_null(strstr(json_string_value(json_object_get(r, "trained_on")), "train part"));
    snprintf(args, sizeof(args), "evaluate --input %s/log.csv --artifact %s --protocol temporal --threads 1", f->dir,
             json_string_value(json_object_get(r, "artifact")));
    json_t *a = run_json(f, "held-art", args);
    assert_true(fabs(num(json_object_get(a, "evaluation"), "ndcg") - num(ev, "ndcg")) < 1e-6);
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "artifact"), "kind")), "bpr");
    json_decref(a);
    json_decref(r);
}

static void test_cli_usage_errors(void **state)
{
    fixture_t *f = *state;
    make_log(f);
    const char *log = "--input /nonexistent.csv";
    static const char *const bad[] = {
        "bogus --input x",                                       /* unknown command */
        "evaluate --input x --protocol random",                  /* unknown protocol */
        "evaluate --input x --algorithm bpr --alpha 2",          /* not a BPR parameter */
        "evaluate --input x --algorithm als --epochs 5",         /* not an ALS parameter */
        "evaluate --input x --algorithm popularity --factors 8", /* popularity has none */
        "evaluate --input x --metric bleu",                      /* unknown metric */
        "evaluate --input x --metric ndcg@5 --k 10",             /* two cut-offs */
        "evaluate --input x --artifact a.recd --algorithm als",  /* both */
        "evaluate --input x --registry r",                       /* evaluate publishes nothing */
        "evaluate --input x --folds 1 --protocol kfold",         /* folds >= 2 */
        "evaluate --input x --sampled-negatives 0",              /* >= 1 */
        "train --input x --registry r --model m --grid alpha=1", /* tune only */
        "train --input x --registry r --model m --evaluate --holdout-test",
        "train --input x --registry r --model m --holdout-test --protocol kfold",
        "tune --input x --registry r --model m --protocol kfold",      /* no single test split */
        "tune --input x --registry r --model m --algorithm svd",       /* unknown algorithm */
        "tune --input x --registry r --model m --search bayes",        /* unknown search */
        "tune --input x --registry r --model m --budget 0",            /* >= 1 */
        "tune --input x --registry r --model m --grid 'init_std=0.1'", /* not an ALS parameter */
        "tune --input x --registry r --model m --grid 'alpha'",        /* no values */
        "tune --input x --registry r --model m --grid 'factors=2.5'",  /* integer parameter */
        "tune --input x --registry r --model m --search random --grid alpha=1",
        "tune --input x --registry r --model m --algorithm bpr --alpha 1",
        "tune --input x --registry r",                     /* --model missing */
        "evaluate --input x --artifact a.recd --evaluate", /* train only */
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        int rc = run("'%s' %s > %s/usage.out 2>/dev/null", f->train, bad[i], f->dir);
        if (rc != 2)
            print_error("expected exit 2 for: %s (got %d)\n", bad[i], rc);
        assert_int_equal(rc, 2);
        char path[512];
        snprintf(path, sizeof(path), "%s/usage.out", f->dir);
        char *out = slurp(path, NULL);
        assert_string_equal(out, "");
        free(out);
    }
    /* failures at run time: 1 */
    assert_int_equal(run("'%s' evaluate %s 2>/dev/null", f->train, log), 1);
    assert_int_equal(run("'%s' evaluate --input %s/log.csv --artifact %s/none.recd > /dev/null 2>&1", f->train, f->dir, f->dir), 1);
    assert_int_equal(run("'%s' tune %s --registry %s/reg --model m 2>/dev/null", f->train, log, f->dir), 1);
    assert_int_equal(run("'%s' evaluate --help > /dev/null", f->train), 0);
    assert_int_equal(run("'%s' help > /dev/null", f->train), 0);
}

int test_trainer_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datagen_deterministic_and_well_formed),
        cmocka_unit_test(test_train_publishes_versions),
        cmocka_unit_test(test_train_errors),
        cmocka_unit_test(test_train_stdin_and_cleanse),
        cmocka_unit_test(test_evaluate_protocols),
        cmocka_unit_test(test_evaluate_report_shape_and_chart),
        cmocka_unit_test(test_tune_selects_on_validation_and_publishes),
        cmocka_unit_test(test_tune_random_search_and_budget),
        cmocka_unit_test(test_tune_publishes_every_accepted_row),
        cmocka_unit_test(test_train_holdout_test),
        cmocka_unit_test(test_cli_usage_errors),
    };
    return cmocka_run_group_tests_name("trainer", tests, setup, teardown);
}
