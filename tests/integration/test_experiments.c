/* test_experiments.c: experiments against the real recd over HTTP — the 90/10 split over 10,000 users and its ramps
 * (checked user by user against the slot tables in control.json), the report against hand-computed counts of a scripted
 * event stream with forged request ids and a skewed assignment, and a failing canary rolled back by the guardrail thread
 * after it was held while it had too few requests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/error.h"
#include "models/experiment.h"
#include "registry/control.h"
#include "tests/integration/harness.h"
#include "tests/support/net.h"
#include "tests/support/fixtures.h"
#include "tests/support/proc.h"
#include "tests/support/redis.h"

#define N_USERS 10000
#define CLIENT_THREADS 2
#define CONTROL 0 /* arm indexes as every experiment here lists them */
#define CANARY 1
/* Bound of every wait for recd to pick a change up (sanitizer builds are slow); a wait that runs out fails the test. */
#define WAIT_MS 30000
/* Consecutive answers on fresh connections (each lands on a worker thread the kernel picks) that must show a change before
 * the test takes it as served by every worker. */
#define CONFIRMATIONS 16

/* ---- recd with an admin key ------------------------------------------------------------------------------------------ */

typedef struct st_server_t {
    harness_t h;
    char secret[320], flag[400];
    char *admin;
} server_t;

/* Starts recd with an admin secret and up to two extra arguments (NULL for none). */
static void server_start_with(server_t *s, const char *arg1, const char *arg2)
{
    char dir[] = "/tmp/recd-xsecret-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(s->secret, sizeof(s->secret), "%s/secret", dir);
    assert_int_equal(harness_write_jwt_secret(s->secret), 0);
    snprintf(s->flag, sizeof(s->flag), "--jwt-hs256-secret-file=%s", s->secret);
    const char *args[] = {s->flag, arg1, arg2, NULL};
    assert_int_equal(harness_start(&s->h, args), 0);
    assert_non_null(s->admin = harness_token("admin", 3600));
}

static void server_start(server_t *s)
{
    server_start_with(s, NULL, NULL);
}

static void server_stop(server_t *s)
{
    assert_int_equal(harness_stop(&s->h), 0);
    free(s->admin);
    unlink(s->secret);
    *strrchr(s->secret, '/') = '\0';
    rmdir(s->secret);
}

/* PUT /v1/experiments/e1 with two arms (control demo@control_version, canary demo@canary_version); returns the status and
 * checks the table version the reply names. */
static void put_experiment(server_t *s, const char *salt, uint64_t control_version, uint64_t canary_version, uint32_t canary_weight,
                           int want_status, uint64_t want_table_version)
{
    char body[1024];
    json_t *j;
    snprintf(body, sizeof(body),
             "{\"salt\":\"%s\",\"enabled\":true,\"arms\":[{\"name\":\"control\",\"model\":\"" HARNESS_MODEL
             "@%llu\",\"weight\":%u},{\"name\":\"canary\",\"model\":\"" HARNESS_MODEL "@%llu\",\"weight\":%u}]}",
             salt, (unsigned long long)control_version, RECD_EXPERIMENT_SLOTS - canary_weight, (unsigned long long)canary_version,
             canary_weight);
    assert_int_equal(harness_call(s->h.port, "PUT", "/v1/experiments/e1", s->admin, body, &j, NULL), want_status);
    assert_int_equal(json_integer_value(json_object_get(j, "table_version")), want_table_version);
    json_decref(j);
}

/* Experiment e1 as control.json holds it now. */
static void read_experiment(const server_t *s, recd_control_experiment_t *out)
{
    recd_control_t c = {0};
    char err[512] = "";
    int ret = recd_control_read(s->h.registry, HARNESS_MODEL, &c, err, sizeof(err));
    if (ret != RECD_OK)
        fail_msg("control.json: %s (%d)", err, ret);
    const recd_control_experiment_t *e = recd_control_find_experiment(&c, "e1");
    assert_non_null(e);
    *out = *e;
    recd_control_dispose(&c);
}

/* ---- many users over keep-alive connections ------------------------------------------------------------------------ */

static void user_name(size_t i, char *out, size_t outlen)
{
    snprintf(out, outlen, "xu-%05zu", i);
}

/* One recommendation answer, as the test reads it. */
typedef struct st_answer_t {
    int status;       /* -1: transport error */
    int in_e1;        /* "experiment":"e1" */
    int arm;          /* CONTROL, CANARY or -1 (no or another arm) */
    uint64_t version; /* of "model":"demo@N", 0 when absent */
    size_t n_items;
    char request_id[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
} answer_t;

static void parse_answer(const harness_response_t *res, answer_t *a)
{
    memset(a, 0, sizeof(*a));
    a->status = res->status;
    a->arm = -1;
    json_t *j = json_loads(res->body, 0, NULL);
    if (j == NULL)
        return;
    const char *exp = json_string_value(json_object_get(j, "experiment")), *arm = json_string_value(json_object_get(j, "arm"));
    const char *model = json_string_value(json_object_get(j, "model")), *rid = json_string_value(json_object_get(j, "request_id"));
    a->in_e1 = exp != NULL && strcmp(exp, "e1") == 0;
    if (arm != NULL)
        a->arm = strcmp(arm, "control") == 0 ? CONTROL : strcmp(arm, "canary") == 0 ? CANARY : -1;
    if (model != NULL && strncmp(model, HARNESS_MODEL "@", sizeof(HARNESS_MODEL)) == 0)
        a->version = strtoull(model + sizeof(HARNESS_MODEL), NULL, 10);
    a->n_items = json_array_size(json_object_get(j, "items"));
    if (rid != NULL)
        snprintf(a->request_id, sizeof(a->request_id), "%s", rid);
    json_decref(j);
}

typedef struct st_batch_t {
    int port, k;
    const size_t *users; /* user indexes, repeats allowed */
    answer_t *answers;
    size_t n;
} batch_t;

/* Asks for the batch's users in order on one keep-alive connection, reconnecting after a transport error (that answer
 * keeps status -1). No assertion here: cmocka's must stay on the test's thread. */
static void *run_batch(void *arg)
{
    batch_t *b = arg;
    int fd = -1;
    for (size_t i = 0; i < b->n; ++i) {
        char user[32], path[128];
        harness_response_t res;
        user_name(b->users[i], user, sizeof(user));
        snprintf(path, sizeof(path), "/v1/recommendations?user=%s&k=%d", user, b->k);
        b->answers[i] = (answer_t){.status = -1, .arm = -1};
        if (fd < 0 && (fd = support_connect_loopback(b->port, 30)) < 0)
            continue;
        if (support_http_send(fd, "GET", path, NULL, NULL, 0) != 0 || support_http_read_response(fd, &res) != 0) {
            close(fd);
            fd = -1;
            continue;
        }
        parse_answer(&res, &b->answers[i]);
        support_http_response_free(&res);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* Asks for n users (indexes) with k items each on CLIENT_THREADS connections; answers[i] is users[i]'s. */
static void ask_users(int port, const size_t *users, size_t n, int k, answer_t *answers)
{
    pthread_t threads[CLIENT_THREADS];
    batch_t batches[CLIENT_THREADS];
    size_t per = (n + CLIENT_THREADS - 1) / CLIENT_THREADS;
    for (size_t t = 0; t < CLIENT_THREADS; ++t) {
        size_t first = t * per < n ? t * per : n, last = first + per < n ? first + per : n;
        batches[t] = (batch_t){port, k, users + first, answers + first, last - first};
        assert_int_equal(pthread_create(&threads[t], NULL, run_batch, &batches[t]), 0);
    }
    for (size_t t = 0; t < CLIENT_THREADS; ++t)
        pthread_join(threads[t], NULL);
}

/* The arm e's slot table gives user i. */
static int predicted_arm(const recd_control_experiment_t *e, size_t i)
{
    char user[32];
    user_name(i, user, sizeof(user));
    return e->slots[recd_experiment_slot(e->salt, strlen(e->salt), user, strlen(user))];
}

/* One answer for user i on a fresh connection. */
static void ask_once(int port, size_t i, answer_t *a)
{
    char user[32], path[128];
    harness_response_t res;
    user_name(i, user, sizeof(user));
    snprintf(path, sizeof(path), "/v1/recommendations?user=%s&k=1", user);
    assert_int_equal(harness_get(port, path, &res), 0);
    parse_answer(&res, a);
    harness_response_free(&res);
}

/* Waits until user i is answered CONFIRMATIONS times in a row under e1 in arm (all workers have the table), or fails. */
static void wait_for_arm(int port, size_t i, int arm)
{
    int streak = 0;
    answer_t a;
    for (int waited = 0; streak < CONFIRMATIONS; waited += 20) {
        ask_once(port, i, &a);
        streak = a.status == 200 && a.in_e1 && a.arm == arm ? streak + 1 : 0;
        if (streak == 0) {
            if (waited >= WAIT_MS)
                fail_msg("user %zu is not served by arm %d of e1 after %d ms (last: status %d, in e1 %d, arm %d)", i, arm, WAIT_MS,
                         a.status, a.in_e1, a.arm);
            harness_sleep_ms(20);
        }
    }
}

/* The first user (from index from) that e's table puts in arm. */
static size_t first_user_in(const recd_control_experiment_t *e, int arm, size_t from)
{
    size_t i = from;
    while (predicted_arm(e, i) != arm)
        ++i;
    return i;
}

/* Every answer is a 200 of e1, in the arm e's table predicts for its user, from that arm's version. Returns the canary count. */
static size_t check_answers(const recd_control_experiment_t *e, const size_t *users, const answer_t *answers, size_t n)
{
    size_t canary = 0;
    for (size_t i = 0; i < n; ++i) {
        const answer_t *a = &answers[i];
        int want = predicted_arm(e, users[i]);
        if (a->status != 200 || !a->in_e1 || a->arm != want || a->version != e->arms[want].version)
            fail_msg("user %zu: status %d, in e1 %d, arm %d (table says %d), version %llu (arm's %llu)", users[i], a->status,
                     a->in_e1, a->arm, want, (unsigned long long)a->version, (unsigned long long)e->arms[want].version);
        canary += a->arm == CANARY;
    }
    return canary;
}

/* Slots whose arm differs between two tables; each must go from arm `from` to arm `to`. */
static size_t moved_slots(const recd_control_experiment_t *before, const recd_control_experiment_t *after, int from, int to)
{
    size_t moved = 0;
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s)
        if (before->slots[s] != after->slots[s]) {
            assert_int_equal(before->slots[s], from);
            assert_int_equal(after->slots[s], to);
            ++moved;
        }
    return moved;
}

static void count_slots(const recd_control_experiment_t *e, size_t counts[2])
{
    counts[0] = counts[1] = 0;
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s)
        counts[e->slots[s]]++;
}

/* ---- split ----------------------------------------------------------------------------------------------------------- */

/* Ramps e1 (PUT 25%, then recdctl ramp to 10%) and checks that exactly the users of the moved slots changed arm. */
static void ramp_and_check(server_t *s, const recd_control_experiment_t *before, const size_t *users, answer_t *previous,
                           answer_t *now, int via_recdctl, uint32_t weight, uint64_t table_version)
{
    recd_control_experiment_t after;
    int grows = weight > before->arms[CANARY].weight;
    if (via_recdctl) {
        char cmd[8192];
        snprintf(cmd, sizeof(cmd),
                 "RECD_URL=http://127.0.0.1:%d RECD_TOKEN='%s' '%s/recdctl' experiment ramp e1 canary %u >/dev/null", s->h.port,
                 s->admin, getenv("RECD_BINARY_DIR"), weight);
        assert_int_equal(system(cmd), 0);
    } else {
        put_experiment(s, before->salt, before->arms[CONTROL].version, before->arms[CANARY].version, weight, 200, table_version);
    }
    read_experiment(s, &after);
    assert_int_equal(after.table_version, table_version);
    assert_int_equal(after.arms[CANARY].weight, weight);
    /* the minimum move: only the difference of weights, from the shrinking arm to the growing one */
    size_t moved = moved_slots(before, &after, grows ? CONTROL : CANARY, grows ? CANARY : CONTROL);
    assert_int_equal(moved, grows ? weight - before->arms[CANARY].weight : before->arms[CANARY].weight - weight);

    size_t predicted_movers = 0, mover = SIZE_MAX;
    for (size_t i = 0; i < N_USERS; ++i)
        if (predicted_arm(before, i) != predicted_arm(&after, i)) {
            ++predicted_movers;
            mover = mover == SIZE_MAX ? i : mover;
        }
    assert_true(mover != SIZE_MAX);
    wait_for_arm(s->h.port, mover, grows ? CANARY : CONTROL);

    ask_users(s->h.port, users, N_USERS, 1, now);
    check_answers(&after, users, now, N_USERS);
    /* the users that changed arm are exactly those of the moved slots, and no one else */
    size_t movers = 0;
    for (size_t i = 0; i < N_USERS; ++i) {
        int slot_moved = predicted_arm(before, i) != predicted_arm(&after, i);
        if ((previous[i].arm != now[i].arm) != slot_moved)
            fail_msg("user %zu went from arm %d to %d, but its slot %s", i, previous[i].arm, now[i].arm,
                     slot_moved ? "moved" : "did not move");
        movers += slot_moved;
    }
    assert_int_equal(movers, predicted_movers);
    /* users hash uniformly onto slots: the movers are the moved share of users, up to sampling noise (sd ~ 36 users) */
    assert_true(fabs((double)movers - (double)moved * N_USERS / RECD_EXPERIMENT_SLOTS) < 200);
    printf("experiments: ramp to %u bp moved %zu slots and %zu of %d users\n", weight, moved, movers, N_USERS);
}

static void test_experiments_split_and_ramps(void **state)
{
    server_t s;
    recd_control_experiment_t t10, t25, t10b;
    size_t *users = malloc(sizeof(*users) * N_USERS), slots[2];
    answer_t *first = calloc(N_USERS, sizeof(*first)), *again = calloc(N_USERS, sizeof(*again)),
             *ramped = calloc(N_USERS, sizeof(*ramped)), *back = calloc(N_USERS, sizeof(*back));

    server_start(&s);
    assert_int_equal(harness_publish(s.h.registry, 1, 0), 2);
    put_experiment(&s, "split-salt", 1, 2, 1000, 201, 1);
    read_experiment(&s, &t10);
    count_slots(&t10, slots);
    assert_int_equal(slots[CANARY], 1000);
    assert_int_equal(t10.arms[CANARY].version, 2);
    wait_for_arm(s.h.port, first_user_in(&t10, CONTROL, 0), CONTROL);
    wait_for_arm(s.h.port, first_user_in(&t10, CANARY, 0), CANARY);

    /* 10,000 distinct users: each in the arm its slot says, served by that arm's version; the canary gets 10% +- 1% */
    for (size_t i = 0; i < N_USERS; ++i)
        users[i] = i;
    ask_users(s.h.port, users, N_USERS, 1, first);
    size_t canary = check_answers(&t10, users, first, N_USERS);
    printf("experiments: %zu of %d users in the 10%% canary\n", canary, N_USERS);
    assert_true(canary >= 900 && canary <= 1100);

    /* a sample of them again (every 20th, in another order): each keeps its arm */
    size_t n_sample = 0, *sample = malloc(sizeof(*sample) * N_USERS);
    for (size_t i = N_USERS; i-- > 0;)
        if (i % 20 == 7)
            sample[n_sample++] = i;
    ask_users(s.h.port, sample, n_sample, 1, again);
    check_answers(&t10, sample, again, n_sample);
    for (size_t i = 0; i < n_sample; ++i)
        assert_int_equal(again[i].arm, first[sample[i]].arm);

    /* ramp to 25% with PUT, back to 10% with recdctl: each time exactly the users of the moved slots move */
    ramp_and_check(&s, &t10, users, first, ramped, 0, 2500, 2);
    read_experiment(&s, &t25);
    ramp_and_check(&s, &t25, users, ramped, back, 1, 1000, 3);
    read_experiment(&s, &t10b);
    /* lowest slots first both ways: back at 10% the table, hence every user's arm, is what it was */
    assert_memory_equal(t10b.slots, t10.slots, sizeof(t10.slots));
    for (size_t i = 0; i < N_USERS; ++i)
        assert_int_equal(back[i].arm, first[i].arm);

    server_stop(&s);
    free(users);
    free(sample);
    free(first);
    free(again);
    free(ramped);
    free(back);
}

/* ---- report ---------------------------------------------------------------------------------------------------------- */

#define REPORT_USERS 2000

/* The event JSON for answer a (its first item). */
static void event_json(char *out, size_t outlen, size_t user, const char *type, const char *request_id)
{
    char name[32];
    user_name(user, name, sizeof(name));
    snprintf(out, outlen, "{\"user\":\"%s\",\"item\":\"i00\",\"type\":\"%s\",\"request_id\":\"%s\"}", name, type, request_id);
}

static json_t *report(server_t *s)
{
    json_t *j;
    assert_int_equal(harness_call(s->h.port, "GET", "/v1/experiments/e1/report", s->admin, NULL, &j, NULL), 200);
    assert_non_null(j);
    return j;
}

static json_t *report_arm(json_t *r, int arm)
{
    json_t *a = json_array_get(json_object_get(r, "arms"), (size_t)arm);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "name")), arm == CONTROL ? "control" : "canary");
    return a;
}

/* got, as recd's JSON writer printed it (6 decimals in [0.01, 1e9), else 7 significant digits), equals want. */
static void assert_close(double got, double want)
{
    double a = fabs(want), tolerance = a < 0.01 || a >= 1e9 ? 1e-6 * a + 1e-15 : 1e-6;
    if (!(fabs(got - want) <= tolerance))
        fail_msg("got %.15g, hand-computed %.15g", got, want);
}

/* What the test sent and received for one arm. */
typedef struct st_arm_tally_t {
    uint64_t requests, impressions, clicks, conversions;
} arm_tally_t;

/* The 95% Wilson interval by its formula. */
static void wilson(double x, double n, double *lo, double *hi)
{
    const double z = 1.959963984540054, p = x / n, d = 1 + z * z / n;
    double centre = p + z * z / (2 * n), half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n));
    *lo = (centre - half) / d;
    *hi = (centre + half) / d;
}

/* Pearson's chi-square of the requests against 90/10, with its p-value for one degree of freedom. */
static double srm_chi2(const arm_tally_t *t, double *p)
{
    double total = (double)(t[CONTROL].requests + t[CANARY].requests), e0 = total * 0.9, e1 = total * 0.1;
    double chi2 = ((double)t[CONTROL].requests - e0) * ((double)t[CONTROL].requests - e0) / e0 +
                  ((double)t[CANARY].requests - e1) * ((double)t[CANARY].requests - e1) / e1;
    *p = erfc(sqrt(chi2 / 2));
    return chi2;
}

static void check_report(server_t *s, const arm_tally_t *t, int want_flagged)
{
    json_t *r = report(s);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "running");
    for (int arm = CONTROL; arm <= CANARY; ++arm) {
        json_t *a = report_arm(r, arm);
        assert_int_equal(json_integer_value(json_object_get(a, "requests")), t[arm].requests);
        assert_int_equal(json_integer_value(json_object_get(a, "errors")), 0);
        assert_int_equal(json_integer_value(json_object_get(a, "impressions")), t[arm].impressions);
        assert_int_equal(json_integer_value(json_object_get(a, "clicks")), t[arm].clicks);
        assert_int_equal(json_integer_value(json_object_get(a, "conversions")), t[arm].conversions);
        double ctr = (double)t[arm].clicks / (double)t[arm].impressions, lo, hi;
        assert_close(json_number_value(json_object_get(a, "ctr")), ctr);
        assert_close(json_number_value(json_object_get(a, "conversion_rate")),
                     (double)t[arm].conversions / (double)t[arm].impressions);
        wilson((double)t[arm].clicks, (double)t[arm].impressions, &lo, &hi);
        assert_close(json_number_value(json_array_get(json_object_get(a, "ctr_ci95"), 0)), lo);
        assert_close(json_number_value(json_array_get(json_object_get(a, "ctr_ci95"), 1)), hi);
        if (arm == CANARY && t[CONTROL].clicks > 0)
            assert_close(json_number_value(json_object_get(a, "lift")),
                         ctr / ((double)t[CONTROL].clicks / (double)t[CONTROL].impressions) - 1);
    }
    double p, chi2 = srm_chi2(t, &p);
    json_t *srm = json_object_get(r, "srm");
    assert_close(json_number_value(json_object_get(srm, "chi2")), chi2);
    assert_close(json_number_value(json_object_get(srm, "p_value")), p);
    assert_int_equal(json_is_true(json_object_get(srm, "flagged")), want_flagged);
    assert_int_equal(p < 0.001, want_flagged); /* the hand-computed p agrees with the verdict asked for */
    printf("experiments: report requests %llu/%llu, chi2 %.3g, p %.3g, flagged %d\n", (unsigned long long)t[CONTROL].requests,
           (unsigned long long)t[CANARY].requests, chi2, p, want_flagged);
    json_decref(r);
}

static void test_experiments_report(void **state)
{
    server_t s;
    recd_control_experiment_t e;
    size_t users[REPORT_USERS];
    answer_t *answers = calloc(REPORT_USERS, sizeof(*answers));
    arm_tally_t t[2] = {{0}};

    server_start(&s);
    assert_int_equal(harness_publish(s.h.registry, 1, 0), 2);
    put_experiment(&s, "report-salt", 1, 2, 1000, 201, 1);
    read_experiment(&s, &e);
    /* wait on users outside the scripted range, so the counts below are exactly the test's */
    wait_for_arm(s.h.port, first_user_in(&e, CONTROL, 50000), CONTROL);
    wait_for_arm(s.h.port, first_user_in(&e, CANARY, 50000), CANARY);
    json_t *r0 = report(&s);
    for (int arm = CONTROL; arm <= CANARY; ++arm) {
        t[arm].requests = (uint64_t)json_integer_value(json_object_get(report_arm(r0, arm), "requests"));
        t[arm].impressions = (uint64_t)json_integer_value(json_object_get(report_arm(r0, arm), "impressions"));
    }
    json_decref(r0);

    /* one request per user: a clean assignment */
    for (size_t i = 0; i < REPORT_USERS; ++i)
        users[i] = i;
    ask_users(s.h.port, users, REPORT_USERS, 3, answers);
    check_answers(&e, users, answers, REPORT_USERS);
    size_t control[REPORT_USERS], canary[REPORT_USERS], n_control = 0, n_canary = 0;
    for (size_t i = 0; i < REPORT_USERS; ++i) {
        t[answers[i].arm].requests++;
        t[answers[i].arm].impressions += answers[i].n_items;
        if (answers[i].arm == CONTROL)
            control[n_control++] = i;
        else
            canary[n_canary++] = i;
    }
    assert_true(n_control >= 40 && n_canary >= 20);
    check_report(&s, t, 0);

    /* the scripted stream: clicks and conversions on chosen answers of each arm, views (counted nowhere), and ids that must
     * be counted as bad and attributed nowhere; each batch answers 202 */
    json_t *batch = json_array();
    char ev[1024], forged[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
#define ADD(user, type, rid)                                                                                                       \
    do {                                                                                                                           \
        event_json(ev, sizeof(ev), (user), (type), (rid));                                                                         \
        json_array_append_new(batch, json_loads(ev, 0, NULL));                                                                     \
    } while (0)
    for (size_t i = 0; i < 30; ++i)
        ADD(control[i], "click", answers[control[i]].request_id);
    ADD(control[0], "click", answers[control[0]].request_id); /* a second click on one answer counts too */
    for (size_t i = 0; i < 5; ++i)
        ADD(control[i], "purchase", answers[control[i]].request_id);
    for (size_t i = 5; i < 7; ++i)
        ADD(control[i], "add_to_cart", answers[control[i]].request_id);
    for (size_t i = 30; i < 40; ++i)
        ADD(control[i], "view", answers[control[i]].request_id);
    for (size_t i = 0; i < 12; ++i)
        ADD(canary[i], "click", answers[canary[i]].request_id);
    for (size_t i = 0; i < 3; ++i)
        ADD(canary[i], "purchase", answers[canary[i]].request_id);
    t[CONTROL].clicks = 31, t[CONTROL].conversions = 7, t[CANARY].clicks = 12, t[CANARY].conversions = 3;
    /* forged: a canary answer's id claiming the control arm (its MAC no longer matches) */
    snprintf(forged, sizeof(forged), "%s", answers[canary[15]].request_id);
    char *arm_field = strrchr(forged, '.') - 1;
    assert_int_equal(*arm_field, '1');
    *arm_field = '0';
    ADD(canary[15], "click", forged);
    /* forged: a control answer's id with its MAC changed */
    snprintf(forged, sizeof(forged), "%s", answers[control[41]].request_id);
    forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == '0' ? '1' : '0';
    ADD(control[41], "purchase", forged);
    /* garbled, and of an experiment that does not exist */
    ADD(control[42], "click", "garbled.request-id");
    ADD(control[43], "click", "0123456789abcdef.nosuch.1.0.deadbeef");
    const double bad_ids = 4;
    /* a plain id (an answer outside experiments) is neither attributed nor bad */
    ADD(control[44], "click", "0123456789abcdef");
#undef ADD
    json_t *body = json_pack("{s:o}", "events", batch);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    assert_int_equal(harness_call(s.h.port, "POST", "/v1/events", NULL, text, NULL, NULL), 202);
    free(text);
    check_report(&s, t, 0);
    assert_int_equal(harness_metric(s.h.port, "recd_experiment_bad_request_ids_total"), bad_ids);
    assert_int_equal(harness_metric(s.h.port, "recd_experiment_clicks_total{model=\"demo\",experiment=\"e1\",arm=\"control\"}"),
                     31);
    assert_int_equal(harness_metric(s.h.port, "recd_experiment_conversions_total{model=\"demo\",experiment=\"e1\",arm=\"canary\"}"),
                     3);

    /* skew: the canary users come back twice more, the control users do not */
    size_t skewed[2 * REPORT_USERS], n_skewed = 0;
    for (size_t r = 0; r < 2; ++r)
        for (size_t i = 0; i < n_canary; ++i)
            skewed[n_skewed++] = canary[i];
    answer_t *more = calloc(n_skewed, sizeof(*more));
    ask_users(s.h.port, skewed, n_skewed, 3, more);
    check_answers(&e, skewed, more, n_skewed);
    for (size_t i = 0; i < n_skewed; ++i) {
        t[CANARY].requests++;
        t[CANARY].impressions += more[i].n_items;
    }
    check_report(&s, t, 1);

    server_stop(&s);
    free(more);
    free(answers);
}

/* ---- canary ---------------------------------------------------------------------------------------------------------- */

typedef struct st_guarded_t {
    uint64_t canary_version;
    uint64_t min_requests;
} guarded_t;

/* Writes experiment e1 into control.json by hand (the admin API refuses a version that failed its checks): control demo@1
 * at 90%, canary at 10% on the given version, guarded on error rate with min_requests. */
static int edit_guarded(recd_control_t *c, void *data)
{
    const guarded_t *g = data;
    uint32_t weights[2] = {9000, 1000};
    recd_control_experiment_t e = {.enabled = 1, .table_version = 1, .n_arms = 2, .changed_at = (double)time(NULL)};
    snprintf(e.id, sizeof(e.id), "e1");
    snprintf(e.salt, sizeof(e.salt), "canary-salt");
    e.arms[CONTROL] = (recd_control_arm_t){"control", 1, 9000};
    e.arms[CANARY] = (recd_control_arm_t){"canary", g->canary_version, 1000};
    recd_experiment_initial_slots(weights, 2, e.slots);
    e.guardrails = (recd_control_guardrails_t){.canary = "canary",
                                               .control = "control",
                                               .max_error_rate_delta = 0.01,
                                               .max_p99_ratio = 1000,
                                               .alpha = 0.05,
                                               .min_requests = g->min_requests,
                                               .min_events = 100,
                                               .enabled = 1};
    c->active = 1;
    c->experiments = calloc(1, sizeof(*c->experiments));
    c->experiments[0] = e;
    c->n_experiments = 1;
    return 0;
}

/* Asks each of n users (from index from on) of one arm of e once; every answer must have status want. */
static void ask_arm(int port, const recd_control_experiment_t *e, int arm, size_t n, int want, size_t *from)
{
    size_t *users = malloc(sizeof(*users) * n);
    answer_t *answers = calloc(n, sizeof(*answers));
    for (size_t i = 0; i < n; ++i) {
        users[i] = first_user_in(e, arm, *from);
        *from = users[i] + 1;
    }
    ask_users(port, users, n, 2, answers);
    for (size_t i = 0; i < n; ++i)
        if (answers[i].status != want)
            fail_msg("user %zu of arm %d answered %d, want %d", users[i], arm, answers[i].status, want);
    free(users);
    free(answers);
}

static double rounds(int port)
{
    return harness_metric(port, "recd_experiment_guardrail_rounds_total");
}

static void test_experiments_canary_rollback(void **state)
{
    server_t s;
    recd_control_experiment_t e, after;
    char err[512] = "";
    size_t next_control = 0, next_canary = 0;
    guarded_t g = {.min_requests = 60};

    server_start(&s);
    /* version 2 is corrupt: the catalog refuses it, so the canary's requests fail */
    assert_int_equal(harness_publish(s.h.registry, 1, 1), 2);
    for (int waited = 0; !harness_log_contains(s.h.log, "\"msg\":\"model version rejected\""); waited += 50) {
        if (waited >= WAIT_MS)
            fail_msg("recd did not reject the corrupt version 2 within %d ms", WAIT_MS);
        harness_sleep_ms(50);
    }
    g.canary_version = 2;
    if (recd_control_update(s.h.registry, HARNESS_MODEL, edit_guarded, &g, NULL, err, sizeof(err)) != RECD_OK)
        fail_msg("cannot write control.json: %s", err);
    read_experiment(&s, &e);
    size_t probe = first_user_in(&e, CONTROL, 0);
    next_control = probe + 1;
    wait_for_arm(s.h.port, probe, CONTROL);

    /* too few canary requests: held however bad they are */
    ask_arm(s.h.port, &e, CONTROL, 200, 200, &next_control);
    ask_arm(s.h.port, &e, CANARY, 20, 503, &next_canary);
    double r0 = rounds(s.h.port);
    assert_true(r0 >= 0);
    for (int waited = 0; rounds(s.h.port) < r0 + 2; waited += 50) {
        if (waited >= WAIT_MS)
            fail_msg("the guardrail thread did not finish two rounds within %d ms", WAIT_MS);
        harness_sleep_ms(50);
    }
    read_experiment(&s, &after);
    assert_false(after.rolled_back);
    assert_int_equal(after.table_version, 1);
    json_t *r = report(&s);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "running");
    assert_int_equal(json_integer_value(json_object_get(report_arm(r, CANARY), "requests")), 20);
    assert_int_equal(json_integer_value(json_object_get(report_arm(r, CANARY), "errors")), 20);
    assert_int_equal(json_integer_value(json_object_get(report_arm(r, CONTROL), "errors")), 0);
    assert_int_equal(json_integer_value(json_object_get(r, "rollbacks")), 0);
    json_decref(r);

    /* enough canary requests, all failing: rolled back by the guardrail thread */
    ask_arm(s.h.port, &e, CANARY, 50, 503, &next_canary);
    for (int waited = 0; read_experiment(&s, &after), !after.rolled_back; waited += 50) {
        if (waited >= WAIT_MS)
            fail_msg("the failing canary was not rolled back within %d ms", WAIT_MS);
        harness_sleep_ms(50);
    }
    assert_non_null(strstr(after.reason, "error rate"));
    assert_int_equal(after.table_version, 2);
    assert_int_equal(after.arms[CANARY].weight, 0);
    assert_int_equal(after.arms[CONTROL].weight, RECD_EXPERIMENT_SLOTS);
    size_t slots[2];
    count_slots(&after, slots);
    assert_int_equal(slots[CONTROL], RECD_EXPERIMENT_SLOTS);

    /* every user, the canary's included, is back on control and its version */
    wait_for_arm(s.h.port, first_user_in(&e, CANARY, 0), CONTROL);
    size_t users[2000];
    answer_t answers[2000];
    for (size_t i = 0; i < 2000; ++i)
        users[i] = i;
    ask_users(s.h.port, users, 2000, 2, answers);
    check_answers(&after, users, answers, 2000);
    for (size_t i = 0; i < 2000; ++i)
        assert_int_equal(answers[i].arm, CONTROL);

    r = report(&s);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "rolled_back");
    assert_non_null(strstr(json_string_value(json_object_get(r, "reason")), "error rate"));
    assert_int_equal(json_integer_value(json_object_get(r, "rollbacks")), 1);
    json_decref(r);
    assert_int_equal(harness_metric(s.h.port, "recd_experiment_rollbacks_total{model=\"demo\",experiment=\"e1\"}"), 1);
    assert_true(harness_log_contains(s.h.log, "\"msg\":\"canary rolled back\""));
    server_stop(&s);
}

/* ---- two replicas, one report --------------------------------------------------------------------------------------- */

/* recd_experiment_<what>_total of arm on the replica at port: that process's own count. */
static uint64_t arm_metric(int port, const char *what, int arm)
{
    char sample[256];
    snprintf(sample, sizeof(sample), "recd_experiment_%s_total{model=\"" HARNESS_MODEL "\",experiment=\"e1\",arm=\"%s\"}", what,
             arm == CONTROL ? "control" : "canary");
    double v = harness_metric(port, sample);
    assert_true(v >= 0);
    return (uint64_t)v;
}

/* Waits until the guardrail thread of the replica at port has finished two more rounds: its counts up to now are flushed. */
static void wait_flushed(int port)
{
    double r0 = rounds(port);
    assert_true(r0 >= 0);
    for (int waited = 0; rounds(port) < r0 + 2; waited += 50) {
        if (waited >= WAIT_MS)
            fail_msg("the guardrail thread did not finish two rounds within %d ms", WAIT_MS);
        harness_sleep_ms(50);
    }
}

/* Posts a click for each answer, to the replica at port. */
static void click_answers(int port, const size_t *users, const answer_t *answers, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        char body[512];
        harness_response_t res;
        event_json(body, sizeof(body), users[i], "click", answers[i].request_id);
        assert_int_equal(harness_post_json(port, "/v1/events", body, &res), 0);
        assert_int_equal(res.status, 202);
        harness_response_free(&res);
    }
}

static const char *const report_counters[] = {"requests", "errors", "impressions", "clicks", "conversions"};

/* The report of the replica at s adds up both replicas' own counts, field by field, and says so. */
static void check_summed_report(server_t *s, int port_a, int port_b)
{
    json_t *r = report(s);
    assert_string_equal(json_string_value(json_object_get(r, "counts")), "all_replicas");
    for (int arm = CONTROL; arm <= CANARY; ++arm)
        for (size_t f = 0; f < sizeof(report_counters) / sizeof(report_counters[0]); ++f) {
            uint64_t a = arm_metric(port_a, report_counters[f], arm), b = arm_metric(port_b, report_counters[f], arm);
            json_int_t got = json_integer_value(json_object_get(report_arm(r, arm), report_counters[f]));
            if ((uint64_t)got != a + b)
                fail_msg("arm %d %s: report %lld, replicas %llu + %llu", arm, report_counters[f], (long long)got,
                         (unsigned long long)a, (unsigned long long)b);
        }
    json_decref(r);
}

static void test_experiments_report_across_replicas(void **state)
{
    support_proc_t redis;
    server_t a, b;
    char dir[256], redis_log[300], redis_flag[64];
    recd_control_experiment_t e;

    if (access(SUPPORT_REDIS_SERVER, X_OK) != 0)
        fail_msg("%s is not installed (scripts/setup installs it)", SUPPORT_REDIS_SERVER);
    assert_int_equal(support_tmpdir_create(dir, sizeof(dir), "recd-xreplicas"), 0);
    snprintf(redis_log, sizeof(redis_log), "%s/redis.log", dir);
    int redis_port = support_free_port();
    assert_int_equal(support_redis_start(&redis, redis_port, redis_log), 0);
    snprintf(redis_flag, sizeof(redis_flag), "--redis=127.0.0.1:%d", redis_port);

    /* replica B serves A's registry with A's admin secret: one experiment, two processes */
    server_start_with(&a, redis_flag, NULL);
    memset(&b, 0, sizeof(b));
    b.admin = a.admin;
    const char *b_args[] = {a.flag, redis_flag, NULL};
    assert_int_equal(harness_start_registry(&b.h, a.h.registry, HARNESS_MODEL, b_args), 0);
    put_experiment(&a, "replicas", 1, 1, RECD_EXPERIMENT_SLOTS / 2, 201, 1);
    read_experiment(&a, &e);
    wait_for_arm(a.h.port, first_user_in(&e, CANARY, 0), CANARY);
    wait_for_arm(b.h.port, first_user_in(&e, CONTROL, 0), CONTROL);

    /* different users on each replica; the clicks for A's answers go to B, B's to A */
    size_t users_a[300], users_b[200];
    answer_t answers_a[300], answers_b[200];
    for (size_t i = 0; i < 300; ++i)
        users_a[i] = 1000 + i;
    for (size_t i = 0; i < 200; ++i)
        users_b[i] = 2000 + i;
    ask_users(a.h.port, users_a, 300, 2, answers_a);
    ask_users(b.h.port, users_b, 200, 2, answers_b);
    check_answers(&e, users_a, answers_a, 300);
    check_answers(&e, users_b, answers_b, 200);
    click_answers(b.h.port, users_a, answers_a, 40);
    click_answers(a.h.port, users_b, answers_b, 30);
    for (int arm = CONTROL; arm <= CANARY; ++arm) {
        assert_true(arm_metric(a.h.port, "requests", arm) > 0);
        assert_true(arm_metric(b.h.port, "requests", arm) > 0);
    }
    assert_true(arm_metric(a.h.port, "clicks", CONTROL) + arm_metric(a.h.port, "clicks", CANARY) == 30);

    wait_flushed(a.h.port);
    wait_flushed(b.h.port);
    check_summed_report(&a, a.h.port, b.h.port);
    check_summed_report(&b, a.h.port, b.h.port);
    /* at once after more traffic on A: A's report adds what A has not flushed yet (a flush in between changes nothing) */
    ask_users(a.h.port, users_b, 200, 2, answers_b);
    check_summed_report(&a, a.h.port, b.h.port);
    assert_true(arm_metric(a.h.port, "clicks", CONTROL) + arm_metric(b.h.port, "clicks", CONTROL) +
                    arm_metric(a.h.port, "clicks", CANARY) + arm_metric(b.h.port, "clicks", CANARY) ==
                70);

    /* Redis away: the report still answers, with this replica's own counts, and says so */
    assert_int_equal(support_proc_stop(&redis, 2000), 0);
    json_t *r = report(&a);
    assert_string_equal(json_string_value(json_object_get(r, "counts")), "this_replica");
    assert_int_equal(json_integer_value(json_object_get(report_arm(r, CONTROL), "requests")),
                     arm_metric(a.h.port, "requests", CONTROL));
    json_decref(r);
    printf("experiments: one report over two replicas matched the sum of their own counters\n");

    assert_int_equal(harness_stop(&b.h), 0);
    server_stop(&a);
    support_remove_tree(dir);
}

int test_experiments_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experiments_split_and_ramps),
        cmocka_unit_test(test_experiments_report),
        cmocka_unit_test(test_experiments_canary_rollback),
        cmocka_unit_test(test_experiments_report_across_replicas),
    };
    return cmocka_run_group_tests_name("experiments", tests, NULL, NULL);
}
