/* test_tune.c: the trainer's algorithm table, split protocols, metric names, search spaces, SVG chart and progress line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include "models/model.h"
#include "train/ingest.h"
#include "train/trainer.h"

/* A planted log: 60 users in 3 taste groups, each group interacting with most of its own 10 items (plus a few others),
 * timestamps increasing with the row number. */
static void planted(recd_interactions_t *x)
{
    char u[16], it[16];
    uint64_t s = 7;
    recd_interactions_init(x);
    for (int user = 0; user != 60; ++user) {
        int g = user % 3;
        for (int item = 0; item != 30; ++item) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double r = (double)(s >> 11) * 0x1.0p-53;
            if ((item / 10 == g && r < 0.7) || (item / 10 != g && r < 0.05)) {
                snprintf(u, sizeof(u), "u%d", user);
                snprintf(it, sizeof(it), "i%d", item);
                recd_interactions_add(x, u, strlen(u), it, strlen(it), 1.0f + (float)(item % 5), (int64_t)x->n + 1000);
            }
        }
    }
}

static void test_algorithms_round_trip(void **state)
{
    recd_interactions_t x;
    recd_entries_t e;
    recd_csr_t m = {0};
    char dir[] = "/tmp/recd-test-tune-XXXXXX", path[128], err[256];
    planted(&x);
    assert_int_equal(recd_entries_from_interactions(&x, RECD_MERGE_SUM, &e), RECD_OK);
    assert_int_equal(recd_entries_csr(&e, &m), RECD_OK);
    assert_non_null(mkdtemp(dir));
    assert_int_equal(recd_n_algorithms, 4);
    for (size_t a = 0; a != recd_n_algorithms; ++a) {
        const recd_algorithm_t *al = &recd_algorithms[a];
        assert_ptr_equal(recd_algorithm_find(al->name), al);
        _Alignas(16) char params[RECD_PARAMS_MAX_SIZE];
        al->params_init(params);
        /* small and quick: every factor count to 4, iteration counts to 5 */
        const recd_param_def_t *d;
        if ((d = recd_algorithm_param(al, "factors")) != NULL)
            recd_param_set(d, params, 4);
        if ((d = recd_algorithm_param(al, "iterations")) != NULL)
            recd_param_set(d, params, 5);
        if ((d = recd_algorithm_param(al, "epochs")) != NULL)
            recd_param_set(d, params, 5);
        recd_fit_hooks_t hooks = {.threads = 1, .seed = 3};
        recd_fitted_t f;
        assert_int_equal(recd_fit(al, &m, params, &hooks, &f), RECD_OK);
        assert_int_equal(f.kind, al->kind);
        recd_model_spec_t spec;
        recd_fitted_spec(&f, recd_idmap_ids(x.users), recd_idmap_ids(x.items), &m, "{}", &spec);
        snprintf(path, sizeof(path), "%s/%s.recd", dir, al->name);
        assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), RECD_OK);
        recd_model_t *model = recd_model_open(path, err, sizeof(err));
        assert_non_null(model);
        assert_int_equal(recd_model_kind(model), al->kind);
        assert_int_equal(recd_model_n_factors(model), al->kind == RECD_MODEL_POPULARITY ? 0 : 4);
        /* the artifact scores every item exactly as the fitted model does */
        float a_scores[30], f_scores[30];
        for (uint32_t u = 0; u < m.n_rows; u += 7) {
            recd_fitted_score(&f, u, f_scores);
            recd_model_score(model, recd_model_user_vector(model, u), u, a_scores);
            for (size_t i = 0; i != m.n_cols; ++i)
                assert_true(fabsf(a_scores[i] - f_scores[i]) <= 1e-5f * (1 + fabsf(f_scores[i])));
        }
        recd_model_release(model);
        unlink(path);
        recd_fitted_dispose(&f);
    }
    rmdir(dir);
    recd_csr_dispose(&m);
    recd_entries_dispose(&e);
    recd_interactions_dispose(&x);
}

static void test_split_protocol_counts(void **state)
{
    recd_interactions_t x;
    recd_entries_t e, train, test;
    planted(&x);
    /* a duplicate row: merged into one entry whose timestamp is the later one */
    recd_interactions_add(&x, "u0", 2, "i29", 3, 1.0f, 5);
    recd_interactions_add(&x, "u0", 2, "i29", 3, 1.0f, 999999);
    assert_int_equal(recd_entries_from_interactions(&x, RECD_MERGE_SUM, &e), RECD_OK);
    assert_int_equal(e.n, x.n - 1);
    size_t users_with_2 = 0;
    for (size_t u = 0, j = 0; u != e.n_rows; ++u) {
        size_t c = 0;
        for (; j != e.n && e.row[j] == u; ++j)
            ++c;
        users_with_2 += c >= 2;
    }

    assert_int_equal(recd_entries_split(&e, RECD_PROTOCOL_LEAVE_LAST_OUT, 0, 0, 0, 0, &train, &test), RECD_OK);
    assert_int_equal(test.n, users_with_2);
    assert_int_equal(train.n + test.n, e.n);
    int found = 0; /* u0's latest entry is the merged (u0, i29) at 999999 */
    for (size_t j = 0; j != test.n; ++j)
        if (test.row[j] == 0)
            found = test.ts[j] == 999999;
    assert_true(found);
    recd_entries_dispose(&train), recd_entries_dispose(&test);

    assert_int_equal(recd_entries_split(&e, RECD_PROTOCOL_TEMPORAL, 0.25, 0, 0, 0, &train, &test), RECD_OK);
    assert_int_equal(test.n, (size_t)llround(0.25 * (double)e.n));
    int64_t max_train = INT64_MIN, min_test = INT64_MAX;
    for (size_t j = 0; j != train.n; ++j)
        max_train = train.ts[j] > max_train ? train.ts[j] : max_train;
    for (size_t j = 0; j != test.n; ++j)
        min_test = test.ts[j] < min_test ? test.ts[j] : min_test;
    assert_true(max_train <= min_test);
    recd_entries_dispose(&train), recd_entries_dispose(&test);

    size_t covered = 0;
    for (uint32_t fold = 0; fold != 4; ++fold) {
        assert_int_equal(recd_entries_split(&e, RECD_PROTOCOL_KFOLD, 0, 9, fold, 4, &train, &test), RECD_OK);
        assert_int_equal(train.n + test.n, e.n);
        assert_true(test.n == e.n / 4 || test.n == e.n / 4 + 1);
        covered += test.n;
        recd_entries_dispose(&train), recd_entries_dispose(&test);
    }
    assert_int_equal(covered, e.n);
    assert_int_equal(recd_entries_split(&e, RECD_PROTOCOL_KFOLD, 0, 9, 4, 4, &train, &test), RECD_EINVAL);

    /* stratified on entries is the CSR split recd_split_stratified makes */
    recd_csr_t m = {0}, a = {0}, b = {0}, tr = {0};
    assert_int_equal(recd_entries_csr(&e, &m), RECD_OK);
    assert_int_equal(recd_split_stratified(&m, 0.25, 42, &a, &b), RECD_OK);
    assert_int_equal(recd_entries_split(&e, RECD_PROTOCOL_STRATIFIED, 0.25, 42, 0, 0, &train, &test), RECD_OK);
    assert_int_equal(recd_entries_csr(&train, &tr), RECD_OK);
    assert_int_equal(tr.nnz, a.nnz);
    assert_memory_equal(tr.col, a.col, a.nnz * sizeof(uint32_t));
    assert_memory_equal(tr.row_ptr, a.row_ptr, (a.n_rows + 1) * sizeof(uint64_t));
    recd_csr_dispose(&m), recd_csr_dispose(&a), recd_csr_dispose(&b), recd_csr_dispose(&tr);
    recd_entries_dispose(&train), recd_entries_dispose(&test);
    recd_entries_dispose(&e);
    recd_interactions_dispose(&x);
}

static void test_metric_parse_names(void **state)
{
    recd_eval_metric_t m;
    assert_int_equal(recd_eval_metric_parse("ndcg@10", &m), 0);
    assert_string_equal(m.name, "ndcg@10");
    assert_int_equal(m.k, 10);
    assert_false(m.lower_is_better);
    assert_int_equal(recd_eval_metric_parse("P@5", &m), 0);
    assert_string_equal(m.name, "precision@5");
    assert_int_equal(recd_eval_metric_parse("rmse", &m), 0);
    assert_true(m.lower_is_better);
    assert_int_equal(recd_eval_metric_parse("rmse@10", &m), -1);
    assert_int_equal(recd_eval_metric_parse("ndcg@0", &m), -1);
    assert_int_equal(recd_eval_metric_parse("ndcg@", &m), -1);
    assert_int_equal(recd_eval_metric_parse("bleu", &m), -1);
    recd_eval_result_t r = {0};
    r.ranking.ndcg = 0.25;
    assert_int_equal(recd_eval_metric_parse("ndcg", &m), 0);
    assert_true(recd_eval_metric_value(&m, &r) == 0.25);
    assert_int_equal(recd_eval_metric_parse("mae", &m), 0);
    assert_true(isnan(recd_eval_metric_value(&m, &r))); /* no rating metrics in r */
}

static void test_grid_expand_and_random(void **state)
{
    const recd_algorithm_t *als = recd_algorithm_find("als"), *bpr = recd_algorithm_find("bpr");
    _Alignas(16) char base[RECD_PARAMS_MAX_SIZE];
    char *list, err[256];
    als->params_init(base);
    const recd_param_def_t *alpha = recd_algorithm_param(als, "alpha"), *reg = recd_algorithm_param(als, "reg"),
                           *factors = recd_algorithm_param(als, "factors");
    /* bpr's epochs is skipped for als; the last axis varies fastest; other parameters keep base's values */
    long n = recd_grid_expand(als, base, "alpha=1,2,4; reg=10,50;epochs=5", NULL, &list, err, sizeof(err));
    assert_int_equal(n, 6);
    double want[6][2] = {{1, 10}, {1, 50}, {2, 10}, {2, 50}, {4, 10}, {4, 50}};
    for (long c = 0; c != n; ++c) {
        assert_true(recd_param_get(alpha, list + c * als->params_size) == want[c][0]);
        assert_true(recd_param_get(reg, list + c * als->params_size) == want[c][1]);
        assert_true(recd_param_get(factors, list + c * als->params_size) == recd_param_get(factors, base));
    }
    free(list);
    assert_int_equal(recd_grid_expand(als, base, "factors=1.5", NULL, &list, err, sizeof(err)), -1);
    assert_int_equal(recd_grid_expand(als, base, "alpha", NULL, &list, err, sizeof(err)), -1);
    assert_int_equal(recd_grid_expand(als, base, "alpha=-1", NULL, &list, err, sizeof(err)), -1);
    const recd_algorithm_t *both[] = {als, bpr};
    assert_int_equal(recd_grid_check(both, 2, "alpha=1;learning_rate=0.01", err, sizeof(err)), 0);
    assert_int_equal(recd_grid_check(both, 2, "alpha=1;init_std=0.1", err, sizeof(err)), -1);
    assert_int_equal(recd_grid_check(both, 1, "epochs=5", err, sizeof(err)), -1);
    assert_int_equal(recd_grid_check(both, 2, "bpr.reg=0.01;als.alpha=1", err, sizeof(err)), 0);
    assert_int_equal(recd_grid_check(both, 2, "bpr.alpha=1", err, sizeof(err)), -1);
    /* a qualified key applies to its algorithm only: shared names (reg) can have a range per algorithm */
    n = recd_grid_expand(als, base, "bpr.reg=0.01,0.02;als.reg=30,40,50", NULL, &list, err, sizeof(err));
    assert_int_equal(n, 3);
    assert_true(recd_param_get(reg, list + 2 * als->params_size) == 50);
    free(list);

    /* the default grid leaves fixed parameters alone */
    uint8_t fixed[8] = {0};
    fixed[factors - als->params] = 1;
    n = recd_grid_expand(als, base, NULL, fixed, &list, err, sizeof(err));
    assert_true(n > 1);
    for (long c = 0; c != n; ++c)
        assert_true(recd_param_get(factors, list + c * als->params_size) == recd_param_get(factors, base));
    free(list);

    /* random draws stay in the search range; log-uniform ones cover both decades of [1, 200] */
    uint64_t rng = 5;
    int low = 0, high = 0;
    for (int i = 0; i != 200; ++i) {
        _Alignas(16) char p[RECD_PARAMS_MAX_SIZE];
        recd_random_params(als, base, fixed, &rng, p);
        double r = recd_param_get(reg, p), f = recd_param_get(factors, p);
        assert_true(r >= reg->lo * 0.999 && r <= reg->hi * 1.001);
        assert_true(f == recd_param_get(factors, base));
        low += r < 14;
        high += r > 14;
    }
    assert_true(low > 40 && high > 40); /* uniform on a log scale: half below sqrt(200) ~ 14 */
}

static int count_elements(xmlNode *n, const char *name)
{
    int c = 0;
    for (; n != NULL; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            c += (strcmp((const char *)n->name, name) == 0) + count_elements(n->children, name);
    return c;
}

static void test_svg_chart_well_formed(void **state)
{
    char path[] = "/tmp/recd-test-chart-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    uint32_t li[3] = {1, 2, 3}, mi[2] = {1, 3};
    double loss[3] = {10, 5, 4}, metric[2] = {0.2, 0.3};
    recd_curve_t c = {.n_loss = 3, .n_metric = 2, .loss_iter = li, .loss = loss, .metric_iter = mi, .metric = metric};
    assert_int_equal(recd_chart_write_svg(&c, "als <test> & \"chart\"", "validation ndcg@10", path), RECD_OK);
    xmlDoc *doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    assert_non_null(doc);
    xmlNode *root = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)root->name, "svg");
    assert_int_equal(count_elements(root, "polyline"), 2);
    xmlFreeDoc(doc);

    /* no snapshots: the loss alone, and a note instead of the second line */
    c.n_metric = 0;
    assert_int_equal(recd_chart_write_svg(&c, "bpr", "validation ndcg@10", path), RECD_OK);
    doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    assert_non_null(doc);
    assert_int_equal(count_elements(xmlDocGetRootElement(doc), "polyline"), 1);
    xmlChar *text = xmlNodeGetContent(xmlDocGetRootElement(doc));
    assert_non_null(strstr((const char *)text, "no per-iteration snapshots"));
    xmlFree(text);
    xmlFreeDoc(doc);
    unlink(path);
    assert_int_equal(recd_chart_write_svg(&c, "x", "y", "/nonexistent-dir/chart.svg"), RECD_EIO);
}

static void test_progress_format_eta(void **state)
{
    char buf[128];
    recd_progress_format(5, 20, 10.0, 20, buf, sizeof(buf));
    /* 5 of 20 took 10 s: 15 more take 30 s */
    assert_string_equal(buf, "[#####...............] 5/20  25% ETA 0:30");
    recd_progress_format(0, 4, 0, 4, buf, sizeof(buf));
    assert_string_equal(buf, "[....] 0/4   0% ETA --:--");
    recd_progress_format(4, 4, 100, 4, buf, sizeof(buf));
    assert_string_equal(buf, "[####] 4/4 100% ETA 0:00");
}

int test_tune_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_algorithms_round_trip), cmocka_unit_test(test_split_protocol_counts),
        cmocka_unit_test(test_metric_parse_names),    cmocka_unit_test(test_grid_expand_and_random),
        cmocka_unit_test(test_svg_chart_well_formed), cmocka_unit_test(test_progress_format_eta),
    };
    return cmocka_run_group_tests_name("tune", tests, NULL, NULL);
}
