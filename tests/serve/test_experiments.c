/* test_experiments.c: experiments in the pipeline — routing by slot, the arm's version, counters, attribution, the report,
 * guardrail verdicts and the rollback edit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/error.h"
#include "models/experiment.h"
#include "models/stats.h"
#include "serve/experiments.h"
#include "tests/support/fixtures.h"

#define N_ITEMS 10
#define N_FACTORS 2
#define K 3

typedef struct st_fixture_t {
    char dir[64];
    recd_metrics_t *metrics;
    recd_logger_t log;
    recd_feature_store_t *store;
    recd_serve_t *serve;
    recd_serve_worker_t *sw;
    recd_catalog_loader_t *loader;
    recd_control_experiment_t exp;
    int has_exp;
} fixture_t;

/* exp1: control -> version 1, canary -> canary_version; weights 9000/1000, canary_slots slots for the canary. */
static void set_experiment(fixture_t *fx, uint64_t canary_version, uint32_t canary_slots)
{
    recd_control_experiment_t *e = &fx->exp;
    memset(e, 0, sizeof(*e));
    strcpy(e->id, "exp1");
    strcpy(e->salt, "s1");
    e->enabled = 1;
    e->table_version = 4;
    e->n_arms = 2;
    e->arms[0] = (recd_control_arm_t){"control", 1, 9000};
    e->arms[1] = (recd_control_arm_t){"canary", canary_version, 1000};
    recd_experiment_initial_slots((const uint32_t[]){10000 - canary_slots, canary_slots}, 2, e->slots);
    e->guardrails = (recd_control_guardrails_t){"canary", "control", 0.01, 2.0, 0.05, 100, 10, 1};
    fx->has_exp = 1;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (support_tmpdir_create(fx->dir, sizeof(fx->dir), "recd-test-exp") != 0)
        return -1;
    fx->metrics = recd_metrics_create(1);
    fx->log = (recd_logger_t){RECD_LOG_ERROR, 2};
    fx->store = recd_memory_store_create(16, 100000, fx->metrics);
    fx->serve = recd_serve_create(&(recd_serve_config_t){.max_k = 20}, fx->store, fx->metrics, &fx->log);
    fx->sw = recd_serve_worker_create(fx->serve, 0, 42);
    /* the registry: demo@1 and demo@2 (ranking differently), demo@3 corrupt (the catalog refuses it) */
    assert_true(support_fixture_publish(fx->dir, "demo", 0, 0) == 1);
    assert_true(support_fixture_publish(fx->dir, "demo", 1, 0) == 2);
    assert_true(support_fixture_publish(fx->dir, "demo", 0, 1) == 3);
    *state = fx;
    return 0;
}

/* Writes control.json (active 1, plus the experiment if set) and serves the loader's snapshot of it. */
static void install(fixture_t *fx)
{
    char err[256] = "";
    recd_control_t c = {.generation = 1, .active = 1, .experiments = fx->has_exp ? &fx->exp : NULL, .n_experiments = fx->has_exp};
    assert_int_equal(recd_control_write(fx->dir, "demo", &c), 0);
    fx->loader = recd_catalog_loader_create(fx->dir, (const char *const[]){"demo"}, 1, 0, &fx->log, fx->metrics, err, sizeof(err));
    if (fx->loader == NULL)
        fail_msg("loader: %s", err);
    recd_serve_worker_set_catalog(fx->sw, recd_catalog_loader_current(fx->loader));
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    recd_serve_worker_free(fx->sw);
    recd_catalog_loader_free(fx->loader);
    recd_serve_free(fx->serve);
    recd_feature_store_free(fx->store);
    recd_metrics_free(fx->metrics);
    support_remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* Runs one request for user; copies what the test checks. Returns the arm index the answer names (-1 outside). */
static int recommend(fixture_t *fx, const char *user, int *err, uint64_t *version, char *request_id, size_t *n_items)
{
    recd_serve_ctx_t *ctx = recd_serve_ctx_create(fx->sw);
    recd_serve_recs_request_t rq = {{user, strlen(user)}, K, NULL, 0, NULL, 0, RECD_SERVE_SEARCH_DEFAULT};
    assert_int_equal(recd_serve_recommend(ctx, &rq, NULL, NULL), 0);
    const recd_serve_result_t *res = recd_serve_ctx_result(ctx);
    int arm = res->arm == NULL ? -1 : strcmp(res->arm, "control") == 0 ? 0 : strcmp(res->arm, "canary") == 0 ? 1 : -2;
    if (res->arm != NULL)
        assert_string_equal(res->experiment, "exp1");
    *err = res->err;
    *version = recd_serve_ctx_model(ctx) != NULL ? recd_model_version(recd_serve_ctx_model(ctx)) : 0;
    snprintf(request_id, RECD_EXPERIMENT_REQUEST_ID_MAX + 1, "%s", res->request_id);
    *n_items = res->n_items;
    recd_serve_ctx_release(ctx);
    return arm;
}

static recd_serve_arm_counts_t counts(fixture_t *fx, size_t arm)
{
    recd_serve_arm_counts_t c;
    recd_serve_arm_counts(fx->serve, "demo", &fx->exp, arm, &c);
    return c;
}

/* Outside experiments: a plain request id and no arm. */
static void test_route_without_experiment(void **state)
{
    fixture_t *fx = *state;
    char rid[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
    int err;
    uint64_t version;
    size_t n;
    install(fx);
    assert_int_equal(recommend(fx, "u1", &err, &version, rid, &n), -1);
    assert_int_equal(err, 0);
    assert_int_equal(strlen(rid), 16);
}

/* 90/10: each user gets the arm of their slot, every time, with a request id signed for that arm; the split is within 1%. */
static void test_route_by_slot(void **state)
{
    fixture_t *fx = *state;
    char user[32], rid[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
    int err, canary = 0;
    uint64_t version;
    size_t n;
    set_experiment(fx, 2, 1000);
    install(fx);
    for (int u = 0; u < 10000; ++u) {
        int len = snprintf(user, sizeof(user), "user-%d", u);
        int want = fx->exp.slots[recd_experiment_slot("s1", 2, user, (size_t)len)];
        int arm = recommend(fx, user, &err, &version, rid, &n);
        assert_int_equal(arm, want);
        assert_int_equal(err, 0);
        assert_true(version == (arm == 1 ? 2 : 1)); /* the arm's version answers */
        recd_experiment_request_id_t parts;
        assert_int_equal(recd_experiment_request_id_decode(rid, strlen(rid), "s1", 2, &parts), want);
        assert_true(parts.table_version == 4);
        canary += arm == 1;
        if (u % 100 == 0)
            assert_int_equal(recommend(fx, user, &err, &version, rid, &n), arm);
    }
    if (canary < 900 || canary > 1100)
        fail_msg("canary got %d of 10000", canary);
    recd_serve_arm_counts_t c0 = counts(fx, 0), c1 = counts(fx, 1);
    assert_true(c0.requests + c1.requests == 10100);
    assert_true(c1.impressions == c1.requests * K);
    assert_true(c0.errors == 0 && c1.errors == 0);
    assert_true(c1.table_requests == c1.requests);
}

/* The canary names version 3, which the catalog refused: its users fail (and count as its errors), control's are served by 1. */
static void test_route_uses_arm_version(void **state)
{
    fixture_t *fx = *state;
    char user[32], rid[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
    int err;
    uint64_t version;
    size_t n;
    set_experiment(fx, 3, 1000);
    install(fx);
    for (int u = 0; u < 2000; ++u) {
        snprintf(user, sizeof(user), "user-%d", u);
        int arm = recommend(fx, user, &err, &version, rid, &n);
        if (arm == 1) {
            assert_int_equal(err, RECD_ENOTFOUND);
            assert_true(version == 0);
        } else {
            assert_int_equal(arm, 0);
            assert_int_equal(err, 0);
            assert_true(version == 1);
        }
    }
    recd_serve_arm_counts_t c0 = counts(fx, 0), c1 = counts(fx, 1);
    assert_true(c1.requests > 0 && c1.errors == c1.requests && c1.impressions == 0);
    assert_true(c0.errors == 0);
    char reason[256];
    assert_int_equal(recd_serve_guardrail_judge(&fx->exp.guardrails, &c0, &c1, reason, sizeof(reason)), RECD_SERVE_ROLLBACK);
    assert_non_null(strstr(reason, "error rate"));
}

static recd_serve_event_t event(const char *user, const char *rid, recd_event_type_t type)
{
    return (recd_serve_event_t){{user, strlen(user)}, {"i00", 3}, 1.0f, {rid, strlen(rid)}, type};
}

/*
 * A scripted stream: 40 control and 40 canary answers (3 items each), then per arm a known number of clicks and
 * conversions carrying their request ids, plus views (neither), forged, garbled and plain ids. The report shows exactly
 * those counts and the CTR computed by hand.
 */
static void test_attribution_and_report(void **state)
{
    fixture_t *fx = *state;
    char user[32], rids[2][40][RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
    int err, have[2] = {0, 0};
    uint64_t version;
    size_t n;
    recd_serve_event_t events[64];
    size_t n_events = 0;
    set_experiment(fx, 1, 1000);
    install(fx);
    for (int u = 0; (have[0] < 40 || have[1] < 40) && u < 1000; ++u) {
        snprintf(user, sizeof(user), "user-%d", u);
        char rid[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
        int arm = recommend(fx, user, &err, &version, rid, &n);
        if (have[arm] < 40)
            strcpy(rids[arm][have[arm]++], rid);
        else
            have[arm]++; /* counted as a request and impressions all the same */
        for (int again = 0; arm == 1 && again < 4; ++again)
            recommend(fx, user, &err, &version, rid, &n); /* a client retrying canary users: the requests skew */
    }
    assert_true(have[0] >= 40 && have[1] >= 40); /* both arms answered */
    recd_serve_arm_counts_t before0 = counts(fx, 0), before1 = counts(fx, 1);
    /* control: 6 clicks, 2 conversions; canary: 12 clicks, 1 conversion */
    for (int i = 0; i < 6; ++i)
        events[n_events++] = event("a", rids[0][i], RECD_EVENT_CLICK);
    events[n_events++] = event("a", rids[0][10], RECD_EVENT_ADD_TO_CART);
    events[n_events++] = event("a", rids[0][11], RECD_EVENT_PURCHASE);
    events[n_events++] = event("a", rids[0][12], RECD_EVENT_VIEW);
    for (int i = 0; i < 12; ++i)
        events[n_events++] = event("b", rids[1][i], RECD_EVENT_CLICK);
    events[n_events++] = event("b", rids[1][20], RECD_EVENT_PURCHASE);
    /* bad ids: a forged arm (canary's id rewritten to arm 0 keeps canary's MAC), garbage, an unknown experiment */
    char forged[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
    strcpy(forged, rids[1][30]);
    char *arm_digit = strrchr(forged, '.') - 1;
    *arm_digit = '0';
    events[n_events++] = event("c", forged, RECD_EVENT_CLICK);
    events[n_events++] = event("c", "not-a-request-id", RECD_EVENT_CLICK);
    events[n_events++] = event("c", "0123456789abcdef.other.1.0.00000000", RECD_EVENT_CLICK);
    events[n_events++] = event("c", "0123456789abcdef", RECD_EVENT_CLICK); /* plain: outside experiments, not bad */
    recd_metric_t *bad = recd_metrics_counter(fx->metrics, "recd_experiment_bad_request_ids_total", "", NULL);
    recd_serve_ctx_t *ctx = recd_serve_ctx_create(fx->sw);
    recd_serve_remember(ctx, events, n_events);
    recd_serve_ctx_release(ctx);
    assert_true(recd_metric_value(bad) == 3);

    recd_serve_arm_counts_t c0 = counts(fx, 0), c1 = counts(fx, 1);
    assert_true(c0.clicks == 6 && c0.conversions == 2);
    assert_true(c1.clicks == 12 && c1.conversions == 1);
    assert_true(c0.requests == before0.requests && c1.requests == before1.requests); /* events are not requests */

    recd_jw_t out;
    recd_jw_init(&out, NULL, NULL, 256);
    assert_int_equal(recd_serve_experiment_report(fx->serve, "demo", &fx->exp, &out), 0);
    json_error_t jerr;
    json_t *r = json_loadb(out.buf, out.len, 0, &jerr);
    if (r == NULL)
        fail_msg("report is not JSON (%s): %.*s", jerr.text, (int)out.len, out.buf);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "running");
    assert_string_equal(json_string_value(json_object_get(r, "control")), "control");
    json_t *arms = json_object_get(r, "arms");
    assert_int_equal(json_array_size(arms), 2);
    json_t *a0 = json_array_get(arms, 0), *a1 = json_array_get(arms, 1);
    double imp0 = (double)(3 * before0.requests), imp1 = (double)(3 * before1.requests);
    assert_true(json_integer_value(json_object_get(a0, "impressions")) == (json_int_t)imp0);
    assert_true(json_integer_value(json_object_get(a1, "clicks")) == 12);
    assert_true(json_integer_value(json_object_get(a0, "conversions")) == 2);
    double ctr0 = 6 / imp0, ctr1 = 12 / imp1;
    assert_true(fabs(json_real_value(json_object_get(a0, "ctr")) - ctr0) < 1e-6);
    assert_true(fabs(json_real_value(json_object_get(a1, "ctr")) - ctr1) < 1e-6);
    assert_true(json_is_null(json_object_get(a0, "lift")));
    assert_true(fabs(json_real_value(json_object_get(a1, "lift")) - (ctr1 / ctr0 - 1)) < 1e-5);
    double lo, hi;
    recd_stats_wilson(12, (uint64_t)imp1, RECD_STATS_Z95, &lo, &hi);
    assert_true(fabs(json_real_value(json_array_get(json_object_get(a1, "ctr_ci95"), 0)) - lo) < 1e-6);
    assert_true(fabs(json_real_value(json_array_get(json_object_get(a1, "ctr_ci95"), 1)) - hi) < 1e-6);
    assert_true(fabs(json_real_value(json_object_get(a1, "p_value")) -
                     recd_stats_two_proportion_p(6, (uint64_t)imp0, 12, (uint64_t)imp1, NULL)) < 1e-6);
    json_t *srm = json_object_get(r, "srm");
    assert_true(json_is_true(json_object_get(srm, "flagged"))); /* ~36% canary requests against a 10% weight */
    json_decref(r);
    recd_jw_dispose(&out);
}

/* The unskewed 90/10 split is not flagged. */
static void test_report_srm_not_flagged(void **state)
{
    fixture_t *fx = *state;
    char user[32], rid[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
    int err;
    uint64_t version;
    size_t n;
    set_experiment(fx, 1, 1000);
    install(fx);
    for (int u = 0; u < 5000; ++u) {
        snprintf(user, sizeof(user), "user-%d", u);
        recommend(fx, user, &err, &version, rid, &n);
    }
    recd_jw_t out;
    recd_jw_init(&out, NULL, NULL, 256);
    recd_serve_experiment_report(fx->serve, "demo", &fx->exp, &out);
    json_t *r = json_loadb(out.buf, out.len, 0, NULL);
    assert_non_null(r);
    assert_true(json_is_false(json_object_get(json_object_get(r, "srm"), "flagged")));
    json_decref(r);
    recd_jw_dispose(&out);
}

static void test_guardrail_verdicts(void **state)
{
    recd_control_guardrails_t g = {"canary", "control", 0.01, 2.0, 0.05, 1000, 100, 1};
    recd_serve_arm_counts_t control = {10000, 50, 100000, 5000, 100, 0, 0.01, 0};
    recd_serve_arm_counts_t canary = {999, 500, 1000, 50, 1, 0, 5.0, 0};
    char reason[256];
    /* sparse: held, whatever the canary looks like */
    assert_int_equal(recd_serve_guardrail_judge(&g, &control, &canary, reason, sizeof(reason)), RECD_SERVE_HOLD);
    assert_non_null(strstr(reason, "too few requests"));
    canary = (recd_serve_arm_counts_t){2000, 40, 20000, 1000, 0, 0, 0.01, 0};
    assert_int_equal(recd_serve_guardrail_judge(&g, &control, &canary, reason, sizeof(reason)), RECD_SERVE_ROLLBACK);
    assert_non_null(strstr(reason, "error rate"));
    canary.errors = 20; /* 1% vs 0.5%: within the 0.01 delta */
    canary.p99_seconds = 0.025;
    assert_int_equal(recd_serve_guardrail_judge(&g, &control, &canary, reason, sizeof(reason)), RECD_SERVE_ROLLBACK);
    assert_non_null(strstr(reason, "p99"));
    canary.p99_seconds = 0.01;
    canary.clicks = 50; /* too few events: held even though everything else is fine */
    assert_int_equal(recd_serve_guardrail_judge(&g, &control, &canary, reason, sizeof(reason)), RECD_SERVE_HOLD);
    canary.clicks = 1000; /* 5% vs 5% */
    assert_int_equal(recd_serve_guardrail_judge(&g, &control, &canary, reason, sizeof(reason)), RECD_SERVE_PASS);
    canary.clicks = 600; /* 3% vs 5% over 20,000 and 100,000 impressions: significantly worse */
    assert_int_equal(recd_serve_guardrail_judge(&g, &control, &canary, reason, sizeof(reason)), RECD_SERVE_ROLLBACK);
    assert_non_null(strstr(reason, "CTR"));
    canary.clicks = 1400; /* significantly better is no reason to roll back */
    assert_int_equal(recd_serve_guardrail_judge(&g, &control, &canary, reason, sizeof(reason)), RECD_SERVE_PASS);
}

/* The rollback edit gives the canary's slots to control (only those), bumps the table version, and runs once. */
static void test_rollback_edit(void **state)
{
    fixture_t *fx = *state;
    set_experiment(fx, 2, 1000);
    fx->exp.arms[0].weight = 9000, fx->exp.arms[1].weight = 1000;
    recd_control_t c = {.generation = 3, .active = 1, .experiments = &fx->exp, .n_experiments = 1};
    uint8_t before[RECD_EXPERIMENT_SLOTS];
    memcpy(before, fx->exp.slots, sizeof(before));
    recd_serve_rollback_t rb = {"exp1", "error rate 0.5 exceeds control's", 1764500000.0};
    assert_int_equal(recd_serve_rollback_edit(&c, &rb), 0);
    assert_true(fx->exp.arms[0].weight == 10000 && fx->exp.arms[1].weight == 0);
    assert_true(fx->exp.table_version == 5);
    assert_true(fx->exp.rolled_back);
    assert_string_equal(fx->exp.reason, rb.reason);
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s) {
        assert_int_equal(fx->exp.slots[s], 0);
        (void)before[s];
    }
    assert_int_equal(recd_serve_rollback_edit(&c, &rb), RECD_EEXIST);
    rb.experiment = "nope";
    assert_int_equal(recd_serve_rollback_edit(&c, &rb), RECD_ENOTFOUND);
}

int test_experiments_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route_without_experiment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_by_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_uses_arm_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attribution_and_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_srm_not_flagged, setup, teardown),
        cmocka_unit_test(test_guardrail_verdicts),
        cmocka_unit_test_setup_teardown(test_rollback_edit, setup, teardown),
    };
    return cmocka_run_group_tests_name("experiments", tests, NULL, NULL);
}
