/* test_served.c: what recd-train reports is what recd serves — a model trained with --holdout-test on a generated log,
 * served by the real recd, asked over HTTP for every test user's top k, and scored here with this file's own metrics. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "models/model.h"
#include "tests/integration/harness.h"

#define K 10
#define MAX_ITEMS 4096

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

/* A user's held-out items: the log's (user, item) pairs the artifact did not train on, as artifact item indices. */
typedef struct st_held_out_t {
    uint32_t *items;
    size_t n, cap;
} held_out_t;

static int has_item(const uint32_t *a, size_t n, uint32_t v)
{
    for (size_t i = 0; i != n; ++i)
        if (a[i] == v)
            return 1;
    return 0;
}

/* Reads the log (datagen's "user,item,value,timestamp" lines) and, per artifact user, the pairs absent from its train row:
 * the test part, found without the split code. */
static held_out_t *held_out_pairs(const char *log, const recd_model_t *m)
{
    held_out_t *h = calloc(recd_model_n_users(m), sizeof(*h));
    FILE *fp = fopen(log, "r");
    char line[256], user[64], item[64];
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof(line), fp)); /* header */
    while (fgets(line, sizeof(line), fp) != NULL) {
        assert_int_equal(sscanf(line, "%63[^,],%63[^,],", user, item), 2);
        int64_t u = recd_model_find_user(m, user, strlen(user)), i = recd_model_find_item(m, item, strlen(item));
        assert_true(u >= 0 && i >= 0); /* the artifact knows every user and item of the log */
        const uint32_t *train;
        const float *values;
        size_t n_train;
        recd_model_user_items(m, (uint32_t)u, &train, &values, &n_train);
        held_out_t *x = &h[u];
        if (has_item(train, n_train, (uint32_t)i) || has_item(x->items, x->n, (uint32_t)i))
            continue;
        if (x->n == x->cap) {
            x->cap = x->cap != 0 ? 2 * x->cap : 8;
            x->items = realloc(x->items, x->cap * sizeof(uint32_t));
        }
        x->items[x->n++] = (uint32_t)i;
    }
    fclose(fp);
    return h;
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static void test_served_metrics_equal_reported(void **state)
{
    const char *bin = getenv("RECD_BINARY_DIR");
    char dir[] = "/tmp/recd-served-XXXXXX", path[512], registry[300], errbuf[256];
    harness_t server;
    assert_non_null(mkdtemp(dir));
    if (bin == NULL)
        bin = ".";
    assert_int_equal(run("'%s/recd-datagen' --users 80 --items 200 --interactions 8000 --seed 11 --output %s/log.csv", bin, dir),
                     0);
    assert_int_equal(run("'%s/recd-train' train --input %s/log.csv --registry %s/reg --model served --holdout-test --factors 8 "
                         "--iterations 6 --threads 2 --seed 5 --k %d > %s/train.json 2> %s/train.err",
                         bin, dir, dir, K, dir, dir),
                     0);
    snprintf(path, sizeof(path), "%s/reg/served/1/evaluation.json", dir);
    json_error_t jerr;
    json_t *ev = json_load_file(path, 0, &jerr);
    assert_non_null(ev);
    snprintf(path, sizeof(path), "%s/reg/served/1/model.recd", dir);
    recd_model_t *m = recd_model_open(path, errbuf, sizeof(errbuf));
    assert_non_null(m);
    snprintf(path, sizeof(path), "%s/log.csv", dir);
    held_out_t *held = held_out_pairs(path, m);

    snprintf(registry, sizeof(registry), "%s/reg", dir);
    assert_int_equal(harness_start_registry(&server, registry, "served", NULL), 0);
    double sum_p = 0, sum_r = 0, sum_ndcg = 0, sum_map = 0;
    size_t users = 0;
    for (uint32_t u = 0; u != recd_model_n_users(m); ++u) {
        if (held[u].n == 0)
            continue;
        size_t idlen;
        const char *id = recd_model_user_id(m, u, &idlen);
        char url[256];
        harness_response_t res;
        snprintf(url, sizeof(url), "/v1/recommendations?user=%.*s&k=%d", (int)idlen, id, K);
        assert_int_equal(harness_get(server.port, url, &res), 0);
        assert_int_equal(res.status, 200);
        json_t *body = json_loads(res.body, 0, &jerr);
        assert_non_null(body);
        harness_response_free(&res);
        assert_string_equal(json_string_value(json_object_get(body, "fallback")), "none");
        json_t *items = json_object_get(body, "items");
        assert_true(json_array_size(items) <= K);
        /* binary relevance: P = hits / k, R = hits / |held out|, nDCG against the ideal min(|held out|, k) hits first,
         * AP = sum over hits of precision at that rank / |held out| (the definitions docs/BENCHMARKS.md states) */
        size_t hits = 0;
        double dcg = 0, idcg = 0, ap = 0;
        for (size_t r = 0; r != json_array_size(items); ++r) {
            const char *item = json_string_value(json_object_get(json_array_get(items, r), "item"));
            int64_t i = recd_model_find_item(m, item, strlen(item));
            assert_true(i >= 0);
            if (has_item(held[u].items, held[u].n, (uint32_t)i)) {
                ++hits;
                dcg += 1.0 / log2((double)r + 2.0);
                ap += (double)hits / (double)(r + 1);
            }
        }
        for (size_t r = 0; r != (held[u].n < K ? held[u].n : K); ++r)
            idcg += 1.0 / log2((double)r + 2.0);
        sum_p += (double)hits / K;
        sum_r += (double)hits / (double)held[u].n;
        sum_ndcg += dcg / idcg;
        sum_map += ap / (double)held[u].n;
        ++users;
        json_decref(body);
    }
    assert_int_equal(harness_stop(&server), 0);

    assert_true(users > 60);
    assert_int_equal(users, (size_t)num(ev, "users"));
    double p = sum_p / users, r = sum_r / users, ndcg = sum_ndcg / users, map = sum_map / users;
    print_message("served over HTTP: P@%d %.6f R@%d %.6f nDCG@%d %.6f MAP@%d %.6f over %zu users; evaluation.json: %.6f %.6f "
                  "%.6f %.6f\n",
                  K, p, K, r, K, ndcg, K, map, users, num(ev, "precision"), num(ev, "recall"), num(ev, "ndcg"), num(ev, "map"));
    assert_true(fabs(p - num(ev, "precision")) < 1e-6);
    assert_true(fabs(r - num(ev, "recall")) < 1e-6);
    assert_true(fabs(ndcg - num(ev, "ndcg")) < 1e-6);
    assert_true(fabs(map - num(ev, "map")) < 1e-6);
    assert_true(ndcg > 0); /* a model that recommends nothing useful cannot pass by matching zeros */

    for (size_t u = 0; u != recd_model_n_users(m); ++u)
        free(held[u].items);
    free(held);
    recd_model_release(m);
    json_decref(ev);
    assert_int_equal(run("rm -rf '%s'", dir), 0);
}

/* ---- search=approximate over HTTP --------------------------------------------------------------------------------- */

/* GET /v1/recommendations for user with search; returns the parsed answer (status 200 asserted). */
static json_t *recommend(int port, const char *user, size_t len, const char *search)
{
    char url[256];
    harness_response_t res;
    json_error_t jerr;
    snprintf(url, sizeof(url), "/v1/recommendations?user=%.*s&k=%d&search=%s", (int)len, user, K, search);
    assert_int_equal(harness_get(port, url, &res), 0);
    assert_int_equal(res.status, 200);
    json_t *body = json_loads(res.body, 0, &jerr);
    assert_non_null(body);
    harness_response_free(&res);
    assert_string_equal(json_string_value(json_object_get(body, "search")), search);
    return body;
}

/* Whether two answers list the same items with the same scores, in the same order. */
static int same_items(json_t *a, json_t *b)
{
    json_t *x = json_object_get(a, "items"), *y = json_object_get(b, "items");
    if (json_array_size(x) != json_array_size(y))
        return 0;
    for (size_t i = 0; i != json_array_size(x); ++i) {
        json_t *p = json_array_get(x, i), *q = json_array_get(y, i);
        if (strcmp(json_string_value(json_object_get(p, "item")), json_string_value(json_object_get(q, "item"))) != 0 ||
            json_number_value(json_object_get(p, "score")) != json_number_value(json_object_get(q, "score")))
            return 0;
    }
    return 1;
}

/* Trains a model with an IVF index of 16 cells searched n_probe at a time into dir/<name>, serves it, and counts the users
 * whose approximate answer differs from the exact one (both asked over HTTP). */
static size_t approximate_differs(const char *bin, const char *dir, const char *name, int n_probe, size_t *n_users)
{
    char registry[300], path[400], errbuf[256];
    harness_t server;
    assert_int_equal(run("'%s/recd-train' train --input %s/log.csv --registry %s/%s --model m --factors 16 --iterations 4 "
                         "--threads 2 --seed 5 --ann ivf --ann-lists 16 --ann-probe %d > %s/%s.json 2> %s/%s.err",
                         bin, dir, dir, name, n_probe, dir, name, dir, name),
                     0);
    snprintf(path, sizeof(path), "%s/%s/m/1/model.recd", dir, name);
    recd_model_t *m = recd_model_open(path, errbuf, sizeof(errbuf));
    assert_non_null(m);
    snprintf(registry, sizeof(registry), "%s/%s", dir, name);
    assert_int_equal(harness_start_registry(&server, registry, "m", NULL), 0);
    size_t differ = 0;
    *n_users = recd_model_n_users(m);
    for (uint32_t u = 0; u != recd_model_n_users(m); ++u) {
        size_t len;
        const char *id = recd_model_user_id(m, u, &len);
        json_t *exact = recommend(server.port, id, len, "exact"), *approx = recommend(server.port, id, len, "approximate");
        differ += !same_items(exact, approx);
        json_decref(exact);
        json_decref(approx);
    }
    assert_int_equal(harness_stop(&server), 0);
    recd_model_release(m);
    return differ;
}

static void test_served_approximate_search(void **state)
{
    const char *bin = getenv("RECD_BINARY_DIR");
    char dir[] = "/tmp/recd-approx-XXXXXX";
    size_t n_users;
    assert_non_null(mkdtemp(dir));
    if (bin == NULL)
        bin = ".";
    assert_int_equal(run("'%s/recd-datagen' --users 150 --items 3000 --interactions 9000 --seed 13 --output %s/log.csv", bin, dir),
                     0);
    /* every cell searched: the index finds exactly what the exact scan finds, score for score */
    assert_int_equal(approximate_differs(bin, dir, "all-cells", 16, &n_users), 0);
    assert_true(n_users > 100);
    /* one cell of 16: the index really answers (some users get another list), and recd says it searched approximately */
    size_t differ = approximate_differs(bin, dir, "one-cell", 1, &n_users);
    print_message("approximate search, 1 of 16 cells: %zu of %zu users answered differently from exact\n", differ, n_users);
    assert_true(differ > 0);
    assert_int_equal(run("rm -rf '%s'", dir), 0);
}

int test_served_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_served_metrics_equal_reported),
        cmocka_unit_test(test_served_approximate_search),
    };
    return cmocka_run_group_tests_name("served", tests, NULL, NULL);
}
