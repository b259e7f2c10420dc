/* test_updater.c: recd-updater's core without servers — parsing Contract A, grouping, the Redis commands, the fold-in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/error.h"
#include "models/experiment.h"
#include "registry/control.h"
#include "tests/support/fixtures.h"
#include "updater/updater.h"

static const recd_updater_limits_t limits = {.max_recent = 50, .recent_ttl_s = 600, .vec_ttl_s = 700, .dedup_ttl_s = 86400};

static void add_ok(recd_updater_batch_t *b, const char *json, int64_t seq)
{
    char err[256] = "";
    int ret = recd_updater_batch_add(b, json, strlen(json), seq, "p0o0", err, sizeof(err));
    if (ret != 0)
        fail_msg("%s: %s", json, err);
}

static int arg_is(const recd_updater_cmd_t *c, int i, const char *s)
{
    return i < c->argc && c->argvlen[i] == strlen(s) && memcmp(c->argv[i], s, c->argvlen[i]) == 0;
}

static void test_event_parse_fields_and_weights(void **state)
{
    recd_updater_batch_t *b = recd_updater_batch_create();
    add_ok(b, "{\"v\":1,\"event_id\":\"e1\",\"user\":\"u1\",\"item\":\"i9\",\"type\":\"click\",\"ts\":1764500000.125}", 7);
    add_ok(b,
           "{\"v\":1,\"event_id\":\"e2\",\"user\":\"u1\",\"item\":\"i8\",\"type\":\"rating\",\"ts\":1,\"value\":4.5,"
           "\"request_id\":\"abc\"}",
           8);
    add_ok(b, "{\"v\":1,\"user\":\"u2\",\"item\":\"i7\",\"type\":\"purchase\",\"ts\":2,\"value\":99}", 9);
    assert_int_equal(recd_updater_batch_n_events(b), 3);
    size_t n;
    const recd_updater_user_t *u = recd_updater_batch_users(b, &n);
    assert_int_equal(n, 2);
    assert_int_equal(u[0].n_events, 2);
    assert_string_equal(u[0].events[0].event_id, "e1");
    assert_string_equal(u[0].events[0].item, "i9");
    assert_true(u[0].events[0].weight == 2.0f);
    assert_true(u[0].events[0].ts == 1764500000.125);
    assert_int_equal(u[0].events[0].seq, 7);
    assert_true(u[0].events[1].weight == 4.5f);           /* a rating weighs its value */
    assert_true(u[1].events[0].weight == 5.0f);           /* a purchase weighs 5 whatever value it carries */
    assert_string_equal(u[1].events[0].event_id, "p0o0"); /* no event_id: the message's stable fallback */
    recd_updater_batch_free(b);
}

static void test_event_parse_rejects_bad_values(void **state)
{
    static const char *const bad[] = {
        "not json",
        "[1]",
        "{\"user\":\"u\",\"item\":\"i\",\"type\":\"click\",\"ts\":1}",
        "{\"v\":2,\"user\":\"u\",\"item\":\"i\",\"type\":\"click\",\"ts\":1}",
        "{\"v\":1,\"item\":\"i\",\"type\":\"click\",\"ts\":1}",
        "{\"v\":1,\"user\":\"\",\"item\":\"i\",\"type\":\"click\",\"ts\":1}",
        "{\"v\":1,\"user\":\"u\",\"item\":7,\"type\":\"click\",\"ts\":1}",
        "{\"v\":1,\"user\":\"u\",\"item\":\"i\",\"type\":\"like\",\"ts\":1}",
        "{\"v\":1,\"user\":\"u\",\"item\":\"i\",\"type\":\"click\"}",
        "{\"v\":1,\"user\":\"u\",\"item\":\"i\",\"type\":\"rating\",\"ts\":1}",
        "{\"v\":1,\"user\":\"u\",\"item\":\"i\",\"type\":\"click\",\"ts\":1,\"value\":\"4\"}",
        "{\"v\":1,\"event_id\":\"a b\",\"user\":\"u\",\"item\":\"i\",\"type\":\"click\",\"ts\":1}",
        "{\"v\":1,\"event_id\":\"\",\"user\":\"u\",\"item\":\"i\",\"type\":\"click\",\"ts\":1}",
        "{\"v\":1,\"user\":\"u\",\"user\":\"w\",\"item\":\"i\",\"type\":\"click\",\"ts\":1}",
    };
    char err[256], big[600];
    recd_updater_batch_t *b = recd_updater_batch_create();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        err[0] = '\0';
        if (recd_updater_batch_add(b, bad[i], strlen(bad[i]), 1, "x", err, sizeof(err)) != RECD_EFORMAT)
            fail_msg("accepted: %s", bad[i]);
        assert_true(err[0] != '\0');
    }
    snprintf(big, sizeof(big), "{\"v\":1,\"user\":\"%0300d\",\"item\":\"i\",\"type\":\"click\",\"ts\":1}", 1);
    assert_int_equal(recd_updater_batch_add(b, big, strlen(big), 1, "x", err, sizeof(err)), RECD_EFORMAT);
    assert_int_equal(recd_updater_batch_n_events(b), 0);
    recd_updater_batch_free(b);
}

static void test_batch_groups_by_user_in_order(void **state)
{
    static const char *const users[] = {"u1", "u2", "u1", "u3", "u2", "u1"};
    char json[256];
    recd_updater_batch_t *b = recd_updater_batch_create();
    for (int round = 0; round < 2; ++round) { /* the second round reuses the reset batch */
        for (int i = 0; i < 6; ++i) {
            snprintf(json, sizeof(json),
                     "{\"v\":1,\"event_id\":\"e%d\",\"user\":\"%s\",\"item\":\"i%d\",\"type\":\"view\",\"ts\":1}", i, users[i], i);
            add_ok(b, json, 100 + i);
        }
        size_t n;
        const recd_updater_user_t *u = recd_updater_batch_users(b, &n);
        assert_int_equal(n, 3);
        assert_string_equal(u[0].user, "u1");
        assert_string_equal(u[1].user, "u2");
        assert_string_equal(u[2].user, "u3");
        assert_int_equal(u[0].n_events, 3);
        assert_string_equal(u[0].events[0].item, "i0");
        assert_string_equal(u[0].events[1].item, "i2");
        assert_string_equal(u[0].events[2].item, "i5");
        assert_int_equal(u[1].n_events, 2);
        assert_string_equal(u[1].events[1].item, "i4");
        assert_int_equal(u[2].n_events, 1);
        recd_updater_batch_reset(b);
        assert_int_equal(recd_updater_batch_n_events(b), 0);
    }
    recd_updater_batch_free(b);
}

static void test_cmd_apply_keys_and_entries(void **state)
{
    recd_updater_batch_t *b = recd_updater_batch_create();
    add_ok(b, "{\"v\":1,\"event_id\":\"e1\",\"user\":\"u1\",\"item\":\"i9\",\"type\":\"click\",\"ts\":1}", 1);
    add_ok(b, "{\"v\":1,\"event_id\":\"e2\",\"user\":\"u1\",\"item\":\"it\\tem\",\"type\":\"rating\",\"value\":0.1,\"ts\":1}", 2);
    size_t n;
    const recd_updater_user_t *u = recd_updater_batch_users(b, &n);
    recd_updater_cmd_t c;
    recd_updater_cmd_apply(b, &u[0], &limits, &c);
    assert_int_equal(c.argc, 3 + 3 + 3 + 2);
    assert_true(arg_is(&c, 0, "EVAL"));
    assert_non_null(memmem(c.argv[1], c.argvlen[1], "'NX'", 4));
    assert_true(arg_is(&c, 2, "3"));
    assert_true(arg_is(&c, 3, "recd:u:{u1}:recent"));
    assert_true(arg_is(&c, 4, "recd:e:{u1}:e1"));
    assert_true(arg_is(&c, 5, "recd:e:{u1}:e2"));
    assert_true(arg_is(&c, 6, "86400"));
    assert_true(arg_is(&c, 7, "50"));
    assert_true(arg_is(&c, 8, "600"));
    assert_true(arg_is(&c, 9, "2\ti9"));
    /* the entry reads back to the same float and the whole item, tab included */
    recd_updater_entry_t e;
    assert_int_equal(recd_updater_entry_parse(c.argv[10], c.argvlen[10], &e), 0);
    assert_true(e.weight == 0.1f);
    assert_int_equal(e.item_len, 5);
    assert_memory_equal(e.item, "it\tem", 5);
    recd_updater_batch_free(b);
}

static void test_entry_parse_rejects_garbage(void **state)
{
    static const char *const bad[] = {"", "2", "2\t", "\ti1", "x\ti1", "nan\ti1", "inf\ti1", "2x\ti1"};
    recd_updater_entry_t e;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        if (recd_updater_entry_parse(bad[i], strlen(bad[i]), &e) != RECD_EFORMAT)
            fail_msg("accepted entry '%s'", bad[i]);
    assert_int_equal(recd_updater_entry_parse("-1.5\ti", 6, &e), 0);
    assert_true(e.weight == -1.5f);
}

static void test_cmd_vector_bytes_and_stamp(void **state)
{
    recd_updater_batch_t *b = recd_updater_batch_create();
    add_ok(b, "{\"v\":1,\"event_id\":\"e1\",\"user\":\"new user\",\"item\":\"i9\",\"type\":\"click\",\"ts\":1}", 1);
    size_t n;
    const recd_updater_user_t *u = recd_updater_batch_users(b, &n);
    const float vec[3] = {1.0f, -2.5f, 0.1f};
    recd_updater_cmd_t c;
    recd_updater_cmd_vector(b, &u[0], "demo", 12, 345, vec, 3, &limits, &c);
    assert_int_equal(c.argc, 10);
    assert_true(arg_is(&c, 0, "EVAL"));
    assert_true(arg_is(&c, 2, "2"));
    assert_true(arg_is(&c, 3, "recd:u:{new user}:vec"));
    assert_true(arg_is(&c, 4, "recd:u:{new user}:stamp"));
    assert_true(arg_is(&c, 5, "demo@"));
    assert_true(arg_is(&c, 6, "demo@12"));
    assert_int_equal(c.argvlen[7], 12);
    const unsigned char *p = (const unsigned char *)c.argv[7];
    assert_int_equal(p[0], 0x00); /* 1.0f = 0x3f800000, little-endian */
    assert_int_equal(p[2], 0x80);
    assert_int_equal(p[3], 0x3f);
    for (int f = 0; f < 3; ++f) {
        uint32_t x = (uint32_t)p[4 * f] | (uint32_t)p[4 * f + 1] << 8 | (uint32_t)p[4 * f + 2] << 16 | (uint32_t)p[4 * f + 3] << 24;
        float back;
        memcpy(&back, &x, 4);
        assert_true(back == vec[f]);
    }
    assert_true(arg_is(&c, 8, "700"));
    assert_true(arg_is(&c, 9, "demo@12 345"));
    recd_updater_batch_free(b);
}

/* ---- fold-in against a generated artifact ---------------------------------------------------------------------- */

typedef struct st_fixture_t {
    char dir[256];
    recd_model_t *m;
} fixture_t;

static int setup_model(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    char path[400], err[256];
    assert_int_equal(support_tmpdir_create(fx->dir, sizeof(fx->dir), "recd-updater-test"), 0);
    snprintf(path, sizeof(path), "%s/model.recd", fx->dir);
    assert_int_equal(support_fixture_write_artifact(path, 0, 0), 0);
    fx->m = recd_model_open(path, err, sizeof(err));
    assert_non_null(fx->m);
    *state = fx;
    return 0;
}

static int teardown_model(void **state)
{
    fixture_t *fx = *state;
    recd_model_release(fx->m);
    support_remove_tree(fx->dir);
    free(fx);
    return 0;
}

static uint32_t item(const recd_model_t *m, const char *id)
{
    int64_t j = recd_model_find_item(m, id, strlen(id));
    assert_true(j >= 0);
    return (uint32_t)j;
}

static void assert_vec_equal(const float *a, const float *b, uint32_t nf)
{
    for (uint32_t f = 0; f < nf; ++f)
        if (fabsf(a[f] - b[f]) > 1e-5f * (1 + fabsf(b[f])))
            fail_msg("factor %u: %g != %g", f, a[f], b[f]);
}

static void test_fold_new_user_sums_repeats_and_skips_unknown_items(void **state)
{
    fixture_t *fx = *state;
    recd_model_t *m = fx->m;
    uint32_t nf = recd_model_n_factors(m);
    const recd_updater_entry_t entries[] = {{"i00", 3, 2}, {"i01", 3, 1}, {"nope", 4, 5}, {"i00", 3, 3}};
    float got[64], want[64];
    assert_true(nf <= 64);
    assert_int_equal(recd_updater_fold(m, "brand-new", 9, entries, 4, got), 0);
    /* recd's solve on the distinct known items with summed weights, sorted by index as the fold requires */
    uint32_t a = item(m, "i00"), c = item(m, "i01");
    uint32_t items[2] = {a < c ? a : c, a < c ? c : a};
    float values[2] = {a < c ? 5.0f : 1.0f, a < c ? 1.0f : 5.0f};
    assert_int_equal(recd_model_fold_in(m, items, values, 2, want), 0);
    assert_vec_equal(got, want, nf);
    /* the new user leans towards group 0's factor, where i00 and i01 load */
    float best = -INFINITY;
    uint32_t arg = 0;
    for (uint32_t f = 0; f < nf; ++f)
        if (got[f] > best)
            best = got[f], arg = f;
    assert_int_equal(arg, 0);

    const recd_updater_entry_t unknown[] = {{"nope", 4, 5}};
    assert_int_equal(recd_updater_fold(m, "brand-new", 9, unknown, 1, got), RECD_ENOTFOUND);
}

static void test_fold_training_user_adds_history(void **state)
{
    fixture_t *fx = *state;
    recd_model_t *m = fx->m;
    uint32_t nf = recd_model_n_factors(m);
    int64_t user = recd_model_find_user(m, "u10", 3);
    assert_true(user >= 0);
    const uint32_t *hist;
    const float *hval;
    size_t n_hist;
    recd_model_user_items(m, (uint32_t)user, &hist, &hval, &n_hist);
    assert_true(n_hist > 0);

    /* one new item of another group and one repeat of a history item */
    uint32_t extra = item(m, "i30"), repeat = hist[0];
    const char *repeat_id;
    size_t repeat_len;
    repeat_id = recd_model_item_id(m, repeat, &repeat_len);
    const recd_updater_entry_t entries[] = {{"i30", 3, 2}, {repeat_id, repeat_len, 3}};
    float got[64], want[64];
    assert_int_equal(recd_updater_fold(m, "u10", 3, entries, 2, got), 0);

    uint32_t items[64];
    float values[64];
    size_t n = 0;
    for (size_t i = 0; i < n_hist; ++i) {
        items[n] = hist[i];
        values[n++] = hval[i] + (hist[i] == repeat ? 3.0f : 0.0f);
    }
    items[n] = extra;
    values[n++] = 2;
    for (size_t i = 1; i < n; ++i) /* insertion sort by index */
        for (size_t j = i; j > 0 && items[j - 1] > items[j]; --j) {
            uint32_t t = items[j];
            items[j] = items[j - 1];
            items[j - 1] = t;
            float v = values[j];
            values[j] = values[j - 1];
            values[j - 1] = v;
        }
    assert_int_equal(recd_model_fold_in(m, items, values, n, want), 0);
    assert_vec_equal(got, want, nf);

    /* a training user with no known recent item folds from the history alone */
    const recd_updater_entry_t none[] = {{"nope", 4, 1}};
    assert_int_equal(recd_updater_fold(m, "u10", 3, none, 1, got), 0);
    assert_int_equal(recd_model_fold_in(m, hist, hval, n_hist, want), 0);
    assert_vec_equal(got, want, nf);
}

/* ---- which version serves a user ------------------------------------------------------------------------------- */

static int set_experiment(recd_control_t *c, void *data)
{
    int enabled = *(int *)data;
    c->active = 1;
    free(c->experiments);
    c->experiments = calloc(1, sizeof(*c->experiments));
    c->n_experiments = 1;
    recd_control_experiment_t *x = &c->experiments[0];
    strcpy(x->id, "exp1");
    strcpy(x->salt, "pepper");
    x->enabled = enabled;
    x->n_arms = 2;
    x->arms[0] = (recd_control_arm_t){"control", 1, 5000};
    x->arms[1] = (recd_control_arm_t){"canary", 2, 5000};
    memset(x->slots + 5000, 1, 5000);
    return RECD_OK;
}

static void test_user_model_follows_experiment_arms(void **state)
{
    char dir[256], err[512];
    assert_int_equal(support_tmpdir_create(dir, sizeof(dir), "recd-updater-arms"), 0);
    assert_int_equal(support_fixture_publish(dir, "demo", 0, 0), 1);
    assert_int_equal(support_fixture_publish(dir, "demo", 1, 0), 2);
    int enabled = 1;
    assert_int_equal(recd_control_update(dir, "demo", set_experiment, &enabled, NULL, err, sizeof(err)), RECD_OK);
    const char *models[] = {"demo"};
    recd_logger_t log = {RECD_LOG_ERROR, 2};
    recd_metrics_t *metrics = recd_metrics_create(1);
    recd_catalog_loader_t *l = recd_catalog_loader_create(dir, models, 1, 0, &log, metrics, err, sizeof(err));
    assert_non_null(l);
    recd_catalog_t *c = recd_catalog_loader_current(l);

    /* users on both sides of the 50/50 table get their arm's version */
    int seen[3] = {0};
    char user[16];
    for (int i = 0; i < 64; ++i) {
        snprintf(user, sizeof(user), "user%d", i);
        uint32_t slot = recd_experiment_slot("pepper", 6, user, strlen(user));
        recd_model_t *m = recd_updater_user_model(c, "demo", user, strlen(user));
        assert_non_null(m);
        uint64_t want = slot >= 5000 ? 2 : 1;
        assert_int_equal(recd_model_version(m), want);
        seen[want]++;
    }
    assert_true(seen[1] > 0 && seen[2] > 0);
    recd_catalog_release(c);

    /* disabled: everyone gets the active version */
    enabled = 0;
    assert_int_equal(recd_control_update(dir, "demo", set_experiment, &enabled, NULL, err, sizeof(err)), RECD_OK);
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    c = recd_catalog_loader_current(l);
    for (int i = 0; i < 64; ++i) {
        snprintf(user, sizeof(user), "user%d", i);
        assert_int_equal(recd_model_version(recd_updater_user_model(c, "demo", user, strlen(user))), 1);
    }
    assert_null(recd_updater_user_model(c, "other", "user1", 5));
    recd_catalog_release(c);
    recd_catalog_loader_free(l);
    recd_metrics_free(metrics);
    support_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_parse_fields_and_weights),
        cmocka_unit_test(test_event_parse_rejects_bad_values),
        cmocka_unit_test(test_batch_groups_by_user_in_order),
        cmocka_unit_test(test_cmd_apply_keys_and_entries),
        cmocka_unit_test(test_entry_parse_rejects_garbage),
        cmocka_unit_test(test_cmd_vector_bytes_and_stamp),
        cmocka_unit_test_setup_teardown(test_fold_new_user_sums_repeats_and_skips_unknown_items, setup_model, teardown_model),
        cmocka_unit_test_setup_teardown(test_fold_training_user_adds_history, setup_model, teardown_model),
        cmocka_unit_test(test_user_model_follows_experiment_arms),
    };
    return cmocka_run_group_tests_name("updater", tests, NULL, NULL);
}
