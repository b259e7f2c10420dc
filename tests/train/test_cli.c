/* test_cli.c: recd-train's subcommands run in-process through recd_train_cli (exit status, report, messages), and the
 * successive-halving search of tune on a scripted scorer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "base/hash.h"
#include "models/model.h"
#include "train/cli.h"
#include "train/trainer.h"
#include "models/ann.h"

typedef struct st_cli_fixture_t {
    char dir[64], log[128], registry[128];
} cli_fixture_t;

/* A log of 80 users in 4 taste groups over 40 items (each user mostly in its group's 10 items), with timestamps. */
static int cli_setup(void **state)
{
    cli_fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/recd-test-cli-XXXXXX");
    if (f == NULL || mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->log, sizeof(f->log), "%s/log.csv", f->dir);
    snprintf(f->registry, sizeof(f->registry), "%s/reg", f->dir);
    FILE *fp = fopen(f->log, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp, "user,item,value,timestamp\n");
    uint64_t s = 11, ts = 1000;
    for (int u = 0; u != 80; ++u)
        for (int i = 0; i != 40; ++i) {
            double r = (double)(recd_splitmix64(&s) >> 11) * 0x1.0p-53;
            if ((i / 10 == u % 4 && r < 0.6) || (i / 10 != u % 4 && r < 0.06))
                fprintf(fp, "u%d,i%d,%d,%llu\n", u, i, 1 + (i + u) % 5, (unsigned long long)ts++);
        }
    fclose(fp);
    *state = f;
    return 0;
}

static int cli_teardown(void **state)
{
    cli_fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Runs recd_train_cli on a space-separated command line; *out and *err receive what it wrote (caller frees). */
static int cli(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cli(char **out, char **err, const char *fmt, ...)
{
    char line[2048], *argv[64], *save = NULL;
    int argc = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    argv[argc++] = "recd-train";
    for (char *tok = strtok_r(line, " ", &save); tok != NULL && argc != 63; tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    char *before[64];
    memcpy(before, argv, sizeof(before));
    size_t out_len, err_len;
    FILE *o = open_memstream(out, &out_len), *e = open_memstream(err, &err_len);
    assert_non_null(o);
    assert_non_null(e);
    int rc = recd_train_cli(argc, argv, o, e);
    fclose(o);
    fclose(e);
    assert_memory_equal(before, argv, sizeof(before)); /* the caller's argv is left as it was */
    return rc;
}

static double number_at(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    assert_non_null(v);
    return json_number_value(v);
}

/* train --holdout-test publishes a model with the trainer's test figures; evaluate --artifact scores that artifact
 * in-process through the serving pipeline on the same split: both reports, one set of figures. */
static void test_cli_evaluate_artifact_matches_training(void **state)
{
    static const char *const algos[] = {"als", "bpr", "biased_mf", "popularity"};
    cli_fixture_t *f = *state;
    for (size_t a = 0; a != sizeof(algos) / sizeof(algos[0]); ++a) {
        char *out, *err;
        const char *extra = strcmp(algos[a], "als") == 0          ? "--factors 8 --iterations 5"
                            : strcmp(algos[a], "popularity") == 0 ? ""
                                                                  : "--factors 8 --epochs 5";
        int rc = cli(&out, &err, "train --input %s --registry %s --model m-%s --algorithm %s --holdout-test --threads 2 %s", f->log,
                     f->registry, algos[a], algos[a], extra);
        if (rc != 0)
            fprintf(stderr, "%s", err);
        assert_int_equal(rc, 0);
        json_t *trained = json_loads(out, 0, NULL);
        assert_non_null(trained);
        assert_string_equal(json_string_value(json_object_get(trained, "command")), "train");
        const char *artifact = json_string_value(json_object_get(trained, "artifact"));
        assert_non_null(artifact);
        free(out);
        free(err);

        rc = cli(&out, &err, "evaluate --input %s --artifact %s --threads 2", f->log, artifact);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(err, "evaluation of the artifact"));
        json_t *evaluated = json_loads(out, 0, NULL);
        assert_non_null(evaluated);
        assert_string_equal(json_string_value(json_object_get(evaluated, "command")), "evaluate");
        json_t *te = json_object_get(trained, "evaluation"), *ae = json_object_get(evaluated, "evaluation");
        assert_non_null(strstr(json_string_value(json_object_get(ae, "scored_as")), "recd_serve_recommend"));
        static const char *const metrics[] = {"precision", "recall", "ndcg", "map", "hit_rate", "mrr", "auc", "coverage"};
        for (size_t i = 0; i != sizeof(metrics) / sizeof(metrics[0]); ++i)
            assert_true(fabs(number_at(te, metrics[i]) - number_at(ae, metrics[i])) < 1e-9);
        assert_true(number_at(ae, "ndcg") > 0);
        assert_true(number_at(te, "test_interactions") == number_at(ae, "test_interactions"));
        if (strcmp(algos[a], "biased_mf") == 0)
            assert_true(fabs(number_at(json_object_get(te, "rating"), "rmse") - number_at(json_object_get(ae, "rating"), "rmse")) <
                        1e-9);
        json_decref(trained);
        json_decref(evaluated);
        free(out);
        free(err);
    }
}

/* train --factor-type: the artifact holds the compact item factors beside the f32 ones, and the metadata names the type
 * and the recall@10 recd-train measured and printed; a model without factors keeps f32; a bad type is a usage error. */
static void test_cli_train_factor_type(void **state)
{
    cli_fixture_t *f = *state;
    static const char *const types[] = {"int8", "bf16", "fp16"};
    static const uint32_t tags[] = {RECD_ARTIFACT_ITEM_FACTORS_INT8, RECD_ARTIFACT_ITEM_FACTORS_BF16,
                                    RECD_ARTIFACT_ITEM_FACTORS_FP16};
    for (size_t t = 0; t != 3; ++t) {
        char *out, *err, msg[256] = "";
        int rc =
            cli(&out, &err, "train --input %s --registry %s --model ft --factors 8 --iterations 3 --threads 2 --factor-type %s",
                f->log, f->registry, types[t]);
        if (rc != 0)
            fprintf(stderr, "%s", err);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(err, "compact item factors"));
        json_t *report = json_loads(out, 0, NULL);
        assert_non_null(report);
        recd_model_t *m = recd_model_open(json_string_value(json_object_get(report, "artifact")), msg, sizeof(msg));
        if (m == NULL)
            fail_msg("open: %s", msg);
        uint64_t size = 0;
        assert_non_null(recd_model_extra(m, tags[t], &size));
        assert_int_equal(size, recd_model_n_items(m) * 8 * (t == 0 ? 1 : 2));
        assert_true((recd_model_extra(m, RECD_ARTIFACT_INT8_SCALES, NULL) != NULL) == (t == 0));
        assert_non_null(recd_model_item_factors(m)); /* the f32 factors stay */
        size_t len;
        const char *meta = recd_model_metadata(m, &len);
        json_t *md = json_loadb(meta, len, 0, NULL);
        assert_non_null(md);
        assert_string_equal(json_string_value(json_object_get(md, "factor_type")), types[t]);
        double recall = number_at(json_object_get(md, "factor_recall_at_10"), "recall");
        assert_true(recall > 0.9 && recall <= 1.0);
        json_decref(md);
        recd_model_release(m);
        json_decref(report);
        free(out);
        free(err);
    }
    char *out, *err;
    assert_int_equal(cli(&out, &err, "train --input %s --registry %s --model ft --factor-type f64", f->log, f->registry), 2);
    assert_non_null(strstr(err, "--factor-type must be f32, bf16, fp16 or int8"));
    free(out);
    free(err);
    assert_int_equal(cli(&out, &err, "train --input %s --registry %s --model pop --algorithm popularity --factor-type int8", f->log,
                         f->registry),
                     0);
    assert_non_null(strstr(err, "--factor-type int8 ignored"));
    json_t *report = json_loads(out, 0, NULL);
    char msg[256];
    recd_model_t *m = recd_model_open(json_string_value(json_object_get(report, "artifact")), msg, sizeof(msg));
    assert_non_null(m);
    assert_null(recd_model_extra(m, RECD_ARTIFACT_ITEM_FACTORS_INT8, NULL));
    size_t len;
    const char *meta = recd_model_metadata(m, &len);
    assert_non_null(strstr(meta, "\"factor_type\":\"f32\""));
    recd_model_release(m);
    json_decref(report);
    free(out);
    free(err);
}

/* train --ann ivf stores an index in the artifact, which opens with it; its recall and build time are in the metadata. */
static void test_cli_train_builds_ann(void **state)
{
    cli_fixture_t *f = *state;
    char *out, *err, msg[256];
    int rc = cli(&out, &err,
                 "train --input %s --registry %s --model m-ann --algorithm bpr --factors 8 --epochs 5 --threads 1 "
                 "--ann ivf --ann-lists 4",
                 f->log, f->registry);
    if (rc != 0)
        fprintf(stderr, "%s", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "ANN index ivf: 4 lists"));
    json_t *report = json_loads(out, 0, NULL);
    assert_non_null(report);
    recd_model_t *m = recd_model_open(json_string_value(json_object_get(report, "artifact")), msg, sizeof(msg));
    assert_non_null(m);
    const recd_ann_t *ann = recd_model_ann(m);
    assert_non_null(ann);
    assert_int_equal(recd_ann_n_lists(ann), 4);
    assert_int_equal(recd_ann_has_bias(ann), 1); /* BPR's item biases are searched too */
    size_t len;
    const char *md = recd_model_metadata(m, &len);
    json_t *meta = json_loadb(md, len, 0, NULL), *info = json_object_get(meta, "ann");
    assert_non_null(info);
    assert_string_equal(json_string_value(json_object_get(info, "kind")), "ivf");
    double recall = number_at(info, "recall_at_10");
    assert_true(recall > 0.0 && recall <= 1.0);
    assert_true(number_at(info, "build_seconds") >= 0.0);
    assert_int_equal((int)number_at(info, "n_probe"), (int)recd_ann_n_probe(ann));
    assert_true(number_at(info, "target_recall") == 0.95);
    json_decref(meta);
    json_decref(report);
    recd_model_release(m);
    free(out);
    free(err);

    /* no --ann: no index */
    rc = cli(&out, &err, "train --input %s --registry %s --model m-ann --algorithm als --factors 8 --iterations 3 --threads 1",
             f->log, f->registry);
    assert_int_equal(rc, 0);
    report = json_loads(out, 0, NULL);
    m = recd_model_open(json_string_value(json_object_get(report, "artifact")), msg, sizeof(msg));
    assert_non_null(m);
    assert_null(recd_model_ann(m));
    recd_model_release(m);
    json_decref(report);
    free(out);
    free(err);

    rc = cli(&out, &err, "train --input %s --registry %s --model m-ann --ann hnsw", f->log, f->registry);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--ann hnsw is not built in"));
    free(out);
    free(err);
    rc = cli(&out, &err, "train --input %s --registry %s --model m-ann --ann ivf --ann-recall 1.5", f->log, f->registry);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--ann-recall must be a number in 0..1"));
    free(out);
    free(err);
    rc = cli(&out, &err, "evaluate --input %s --ann ivf", f->log);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--ann does not apply to evaluate"));
    free(out);
    free(err);
}

static void test_cli_usage_and_failures(void **state)
{
    cli_fixture_t *f = *state;
    char *out, *err;

    assert_int_equal(cli(&out, &err, "--help"), 0);
    assert_non_null(strstr(out, "Usage: recd-train"));
    free(out);
    free(err);
    assert_int_equal(cli(&out, &err, "fly --input %s", f->log), 2);
    assert_non_null(strstr(err, "unknown command \"fly\""));
    assert_string_equal(out, "");
    free(out);
    free(err);
    assert_int_equal(cli(&out, &err, "evaluate --input %s --registry %s", f->log, f->registry), 2);
    assert_non_null(strstr(err, "--registry does not apply to evaluate"));
    free(out);
    free(err);
    assert_int_equal(cli(&out, &err, "evaluate --input %s --factors 0", f->log), 2);
    assert_non_null(strstr(err, "--factors must be an integer"));
    free(out);
    free(err);
    /* --help stops parsing in the middle of "-hh"; the next run in the same process still parses afresh */
    assert_int_equal(cli(&out, &err, "-hh"), 0);
    free(out);
    free(err);
    assert_int_equal(cli(&out, &err, "evaluate --input %s --k", f->log), 2);
    assert_non_null(strstr(err, "--k needs a value"));
    free(out);
    free(err);
    assert_int_equal(cli(&out, &err, "evaluate --input %s/missing.csv", f->dir), 1);
    assert_non_null(strstr(err, "missing.csv"));
    assert_string_equal(out, "");
    free(out);
    free(err);
    assert_int_equal(cli(&out, &err, "evaluate --input %s --artifact %s/none.recd", f->log, f->dir), 1);
    assert_non_null(strstr(err, "none.recd"));
    free(out);
    free(err);
}

/* tune in-process: the report names the winner, which is the best mean among the candidates scored on every fold. */
static void test_cli_tune_reports_the_best_survivor(void **state)
{
    cli_fixture_t *f = *state;
    char *out, *err;
    int rc = cli(&out, &err, "tune --input %s --registry %s --model tuned --algorithm als --budget 4 --iterations 3 --threads 1",
                 f->log, f->registry);
    if (rc != 0)
        fprintf(stderr, "%s", err);
    assert_int_equal(rc, 0);
    json_t *report = json_loads(out, 0, NULL);
    assert_non_null(report);
    assert_string_equal(json_string_value(json_object_get(report, "command")), "tune");
    json_t *tuning = json_object_get(report, "tuning"), *cands = json_object_get(tuning, "candidates");
    assert_int_equal(json_array_size(cands), 4);
    int folds = (int)json_integer_value(json_object_get(json_object_get(tuning, "validation_scheme"), "folds"));
    assert_true(folds > 1);
    size_t best = (size_t)json_integer_value(json_object_get(tuning, "best")), full = 0;
    double best_score = -1;
    for (size_t i = 0; i != json_array_size(cands); ++i) {
        json_t *c = json_array_get(cands, i);
        if (json_integer_value(json_object_get(c, "folds_scored")) == folds) {
            ++full;
            best_score = fmax(best_score, number_at(c, "ndcg@10"));
        }
    }
    assert_int_equal(full, 2); /* the best third of 4, at least two */
    assert_true(number_at(json_array_get(cands, best), "ndcg@10") == best_score);
    assert_true(number_at(tuning, "best_validation_score") == best_score);
    assert_non_null(strstr(err, "<- best"));
    json_decref(report);
    free(out);
    free(err);
}

/* A scripted search: value[c][f] is candidate c's metric on fold f (NaN = the fit failed); calls are counted. */
typedef struct st_script_t {
    const double (*value)[3];
    size_t calls[8][3];
    size_t order[32][2]; /* (candidate, fold) in call order */
    size_t n_calls, leads;
} script_t;

static double script_score(void *data, size_t c, size_t f)
{
    script_t *s = data;
    ++s->calls[c][f];
    s->order[s->n_calls][0] = c;
    s->order[s->n_calls++][1] = f;
    return s->value[c][f];
}

static void script_scored(void *data, size_t c, size_t f, const recd_tune_tally_t *t, int leads)
{
    script_t *s = data;
    s->leads += leads;
}

static void test_tune_halving_keeps_the_best_third(void **state)
{
    /* 7 candidates, 3 folds: survivors = ceil(7 / 3) = 3, ranked by fold 0 (4: 0.9, 1: 0.8, 5 and 6 tie at 0.7: the lower
     * index goes first). Candidate 2 fails on fold 0, candidate 5 fails on fold 1. */
    static const double v[7][3] = {{0.5, 0.5, 0.5}, {0.8, 0.5, 0.5}, {NAN, 1, 1},    {0.1, 1, 1},
                                   {0.9, 0.3, 0.2}, {0.7, NAN, 1},   {0.7, 0.8, 0.8}};
    recd_eval_metric_t m;
    assert_int_equal(recd_eval_metric_parse("ndcg@10", &m), 0);
    script_t s = {.value = v};
    recd_tune_tally_t t[7];
    recd_tune_search_t search = {7, 3, &m, script_score, script_scored, &s};
    assert_int_equal(recd_tune_survivors(7, 3), 3);
    size_t best = recd_tune_halving(&search, t);
    assert_int_equal(best, 1); /* mean 0.6: beats 4's 0.4667 (4 led the first fold) and 6's 0.7, which is of one fold only */
    for (size_t c = 0; c != 7; ++c)
        assert_int_equal(s.calls[c][0], 1);
    assert_int_equal(s.calls[4][1] + s.calls[4][2] + s.calls[1][1] + s.calls[1][2], 4);
    assert_int_equal(s.calls[5][1], 1);
    assert_int_equal(s.calls[5][2], 0); /* stopped at its failure */
    assert_int_equal(s.calls[6][1] + s.calls[0][1] + s.calls[3][1] + s.calls[2][1], 0);
    assert_int_equal(s.order[7][0], 4); /* the survivors go in rank order */
    assert_int_equal(s.order[9][0], 1);
    assert_int_equal(s.order[11][0], 5);
    assert_true(t[2].failed && isnan(t[2].score));
    assert_true(t[5].failed && t[5].folds_scored == 1);
    assert_int_equal(t[1].folds_scored, 3);
    assert_true(fabs(t[1].score - (0.8 + 0.5 + 0.5) / 3) < 1e-12);
    assert_int_equal(t[6].folds_scored, 1);
    assert_int_equal(s.leads, 3); /* 0 (0.5), then 1 (0.8), then 4 (0.9) led the first fold */

    /* lower is better: the ranking reverses, failed still last, ties by index */
    recd_eval_metric_t rmse;
    assert_int_equal(recd_eval_metric_parse("rmse", &rmse), 0);
    size_t order[7];
    recd_tune_rank(t, 7, &rmse, order);
    static const size_t expect_low[7] = {3, 4, 0, 1, 6, 2, 5};
    for (size_t i = 0; i != 7; ++i)
        assert_int_equal(order[i], expect_low[i]);
    recd_tune_rank(t, 7, &m, order);
    static const size_t expect_high[7] = {6, 1, 0, 4, 3, 2, 5};
    for (size_t i = 0; i != 7; ++i)
        assert_int_equal(order[i], expect_high[i]);

    /* one fold: every candidate once, the best of them wins; none finite: SIZE_MAX */
    script_t one = {.value = v};
    search = (recd_tune_search_t){7, 1, &m, script_score, NULL, &one};
    assert_int_equal(recd_tune_halving(&search, t), 4);
    assert_int_equal(one.n_calls, 7);
    static const double none[2][3] = {{NAN, 0, 0}, {INFINITY, 0, 0}};
    script_t bad = {.value = none};
    search = (recd_tune_search_t){2, 3, &m, script_score, NULL, &bad};
    assert_int_equal(recd_tune_halving(&search, t), SIZE_MAX);
}

int test_cli_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_evaluate_artifact_matches_training),
        cmocka_unit_test(test_cli_usage_and_failures),
        cmocka_unit_test(test_cli_train_builds_ann),
        cmocka_unit_test(test_cli_train_factor_type),
        cmocka_unit_test(test_cli_tune_reports_the_best_survivor),
        cmocka_unit_test(test_tune_halving_keeps_the_best_third),
    };
    return cmocka_run_group_tests_name("cli", tests, cli_setup, cli_teardown);
}
