/* test_control.c: the control file — round trip with unknown members kept, validation of malformed files, the locked
 * read-modify-write under concurrent writers, activate/rollback helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include "tests/support/fixtures.h"
#include "registry/control.h"
#include "registry/registry.h"

typedef struct st_fixture_t {
    char dir[64];
    char reg[96]; /* a registry path that does not exist yet: writes create it */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (support_tmpdir_create(fx->dir, sizeof(fx->dir), "recd-test-control") != 0)
        return -1;
    snprintf(fx->reg, sizeof(fx->reg), "%s/registry", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    support_remove_tree(fx->dir);
    free(fx);
    return 0;
}

static void put_control(const fixture_t *fx, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/m", fx->reg);
    mkdir(fx->reg, 0755);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/m/%s", fx->reg, RECD_REGISTRY_CONTROL);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

/* A 90/10 experiment (slots: 9000 of arm 0, then 1000 of arm 1) as file text, with extra members spliced in. */
static char *experiment_file(const char *arms, const char *slots_override, const char *extra)
{
    static char buf[32768];
    char slots[RECD_EXPERIMENT_SLOTS + 1];
    memset(slots, '0', 9000);
    memset(slots + 9000, '1', 1000);
    slots[RECD_EXPERIMENT_SLOTS] = '\0';
    snprintf(buf, sizeof(buf),
             "{\"generation\": 7, \"active\": 3, \"history\": [1, 2], \"pins\": [2], \"owner\": \"team-a\",\n"
             " \"experiments\": {\"exp1\": {\"salt\": \"s1\", \"enabled\": true, \"table_version\": 4, \"note\": [1],\n"
             "   \"arms\": %s,\n"
             "   \"slots\": \"%s\",\n"
             "   \"guardrails\": {\"canary\": \"canary\", \"control\": \"control\", \"max_error_rate_delta\": 0.01,\n"
             "                  \"max_p99_ratio\": 2.0, \"min_requests\": 1000, \"min_events\": 100, \"alpha\": 0.05},\n"
             "   \"status\": \"running\", \"changed_at\": 1764500000%s}}}\n",
             arms != NULL ? arms
                          : "[{\"name\": \"control\", \"version\": 2, \"weight\": 9000}, "
                            "{\"name\": \"canary\", \"version\": 1, \"weight\": 1000}]",
             slots_override != NULL ? slots_override : slots, extra != NULL ? extra : "");
    return buf;
}

/* Replaces the first from in s (which has room) with to. */
static void replace_once(char *s, const char *from, const char *to)
{
    char *p = strstr(s, from);
    assert_non_null(p);
    memmove(p + strlen(to), p + strlen(from), strlen(p + strlen(from)) + 1);
    memcpy(p, to, strlen(to));
}

static void test_control_missing_and_round_trip(void **state)
{
    fixture_t *fx = *state;
    recd_control_t c;
    char err[512] = "";

    assert_int_equal(recd_control_read(fx->reg, "m", &c, err, sizeof(err)), RECD_ENOTFOUND);
    assert_int_equal(c.active, 0);
    assert_null(c.experiments);
    recd_control_dispose(&c);

    put_control(fx, experiment_file(NULL, NULL, NULL));
    assert_int_equal(recd_control_read(fx->reg, "m", &c, err, sizeof(err)), RECD_OK);
    assert_int_equal(c.generation, 7);
    assert_int_equal(c.active, 3);
    assert_int_equal(c.n_history, 2);
    assert_int_equal(c.history[0], 1);
    assert_int_equal(c.history[1], 2);
    assert_int_equal(c.n_pins, 1);
    assert_true(recd_control_is_pinned(&c, 2));
    assert_false(recd_control_is_pinned(&c, 3));
    assert_int_equal(c.n_experiments, 1);
    recd_control_experiment_t *x = recd_control_find_experiment(&c, "exp1");
    assert_non_null(x);
    assert_string_equal(x->salt, "s1");
    assert_true(x->enabled);
    assert_int_equal(x->table_version, 4);
    assert_int_equal(x->n_arms, 2);
    assert_string_equal(x->arms[1].name, "canary");
    assert_int_equal(x->arms[1].version, 1);
    assert_int_equal(x->arms[1].weight, 1000);
    assert_int_equal(x->slots[0], 0);
    assert_int_equal(x->slots[9000], 1);
    assert_true(x->guardrails.enabled);
    assert_string_equal(x->guardrails.canary, "canary");
    assert_int_equal(x->guardrails.min_requests, 1000);
    assert_true(x->guardrails.max_p99_ratio == 2.0);
    assert_false(x->rolled_back);
    assert_true(x->changed_at == 1764500000.0);

    /* an edit and a rewrite keep every unknown member, at the top and inside an experiment */
    x->rolled_back = 1;
    snprintf(x->reason, sizeof(x->reason), "p99 ratio 3.1");
    assert_int_equal(recd_control_write(fx->reg, "m", &c), RECD_OK);
    recd_control_dispose(&c);
    assert_int_equal(recd_control_read(fx->reg, "m", &c, err, sizeof(err)), RECD_OK);
    x = recd_control_find_experiment(&c, "exp1");
    assert_true(x->rolled_back);
    assert_string_equal(x->reason, "p99 ratio 3.1");
    assert_int_equal(c.generation, 7); /* write bumps nothing */
    recd_control_dispose(&c);

    char path[512];
    snprintf(path, sizeof(path), "%s/m/%s", fx->reg, RECD_REGISTRY_CONTROL);
    json_t *root = json_load_file(path, 0, NULL);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "owner")), "team-a");
    json_t *exp = json_object_get(json_object_get(root, "experiments"), "exp1");
    assert_true(json_is_array(json_object_get(exp, "note")));
    assert_string_equal(json_string_value(json_object_get(exp, "status")), "rolled_back");
    json_decref(root);

    /* a rewrite is a new file renamed over the old: a reader holding the old inode never sees a partial file */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(recd_control_read(fx->reg, "m", &c, err, sizeof(err)), RECD_OK);
    assert_int_equal(recd_control_write(fx->reg, "m", &c), RECD_OK);
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino != after.st_ino);
    recd_control_dispose(&c);
}

static void test_control_malformed(void **state)
{
    fixture_t *fx = *state;
    char slots_short[100], slots_bad[RECD_EXPERIMENT_SLOTS + 1], slots_skewed[RECD_EXPERIMENT_SLOTS + 1];
    recd_control_t c;
    char err[512];

    memset(slots_short, '0', sizeof(slots_short) - 1);
    slots_short[sizeof(slots_short) - 1] = '\0';
    memset(slots_bad, '0', RECD_EXPERIMENT_SLOTS);
    slots_bad[RECD_EXPERIMENT_SLOTS] = '\0';
    slots_bad[5000] = '2'; /* arm 2 of 2 */
    memset(slots_skewed, '0', RECD_EXPERIMENT_SLOTS);
    memset(slots_skewed + 8000, '1', 2000); /* 2000 slots for a weight of 1000 */
    slots_skewed[RECD_EXPERIMENT_SLOTS] = '\0';

    struct {
        const char *text, *expect; /* expect: a phrase the message must hold */
    } bad[] = {
        {"", "line"},
        {"[1]", "not a JSON object"},
        {"{\"active\": \"2\"}", "\"active\""},
        {"{\"active\": 0}", "\"active\""},
        {"{\"active\": -1}", "\"active\""},
        {"{\"active\": 1.5}", "\"active\""},
        {"{\"generation\": true}", "\"generation\""},
        {"{\"active\": 1, \"active\": 2}", "duplicate"},
        {"{\"active\": 1", "line"},
        {"{\"history\": [1, 0]}", "\"history\"[1]"},
        {"{\"pins\": 2}", "\"pins\""},
        {"{\"experiments\": []}", "\"experiments\""},
        {"{\"experiments\": {\"bad id\": {}}}", "experiment id"},
        {"{\"experiments\": {\"e\": {\"arms\": []}}}", "\"salt\""},
        {"{\"experiments\": {\"e\": {\"salt\": \"s\", \"arms\": []}}}", "\"arms\""},
        {NULL, "\"slots\""},
        {NULL, "not an arm index"},
        {NULL, "holds 8000 slots but its weight is 9000"},
        {NULL, "weights sum to 9999"},
        {NULL, "two arms named"},
        {NULL, "arm 1: name is not"},
        {NULL, "\"version\""},
        {NULL, "\"status\""},
        {NULL, "guardrails must name"},
        {NULL, "\"enabled\""},
    };
    static char texts[10][32768];
    strcpy(texts[0], experiment_file(NULL, slots_short, NULL));
    strcpy(texts[1], experiment_file(NULL, slots_bad, NULL));
    strcpy(texts[2], experiment_file(NULL, slots_skewed, NULL));
    strcpy(texts[3], experiment_file("[{\"name\": \"control\", \"version\": 2, \"weight\": 9000}, "
                                     "{\"name\": \"canary\", \"version\": 1, \"weight\": 999}]",
                                     NULL, NULL));
    strcpy(texts[4], experiment_file("[{\"name\": \"canary\", \"version\": 2, \"weight\": 9000}, "
                                     "{\"name\": \"canary\", \"version\": 1, \"weight\": 1000}]",
                                     NULL, NULL));
    strcpy(texts[5], experiment_file("[{\"name\": \"control\", \"version\": 2, \"weight\": 9000}, "
                                     "{\"name\": \"can ary\", \"version\": 1, \"weight\": 1000}]",
                                     NULL, NULL));
    strcpy(texts[6], experiment_file("[{\"name\": \"control\", \"version\": 0, \"weight\": 9000}, "
                                     "{\"name\": \"canary\", \"version\": 1, \"weight\": 1000}]",
                                     NULL, NULL));
    replace_once(strcpy(texts[7], experiment_file(NULL, NULL, NULL)), "\"running\"", "\"paused\"");
    strcpy(texts[8], experiment_file("[{\"name\": \"control\", \"version\": 2, \"weight\": 9000}, "
                                     "{\"name\": \"other\", \"version\": 1, \"weight\": 1000}]",
                                     NULL, NULL));
    replace_once(strcpy(texts[9], experiment_file(NULL, NULL, NULL)), "\"enabled\": true", "\"enabled\": 1");
    for (size_t i = 0, k = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        if (bad[i].text == NULL)
            bad[i].text = texts[k++];
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        put_control(fx, bad[i].text);
        err[0] = '\0';
        int ret = recd_control_read(fx->reg, "m", &c, err, sizeof(err));
        if (ret != RECD_EFORMAT || strstr(err, bad[i].expect) == NULL)
            fail_msg("case %zu: ret %d, message \"%s\", expected \"%s\"", i, ret, err, bad[i].expect);
        assert_int_equal(c.active, 0);
        assert_null(c.experiments);
        recd_control_dispose(&c);
    }
    assert_int_equal(recd_control_read(fx->reg, "../m", &c, err, sizeof(err)), RECD_EINVAL);
    assert_int_equal(recd_control_write(fx->reg, "../m", &c), RECD_EINVAL);

    /* an in-memory state that does not validate is never written */
    recd_control_t invalid = {.active = 1, .n_pins = 1, .pins = (uint64_t[]){0}};
    assert_int_equal(recd_control_write(fx->reg, "m", &invalid), RECD_EINVAL);
}

static void test_control_status_and_enabled(void **state)
{
    fixture_t *fx = *state;
    char slots[RECD_EXPERIMENT_SLOTS + 1], text[32768], err[512];
    recd_control_t c;

    memset(slots, 'a', RECD_EXPERIMENT_SLOTS); /* arm 10 of 11: every slot */
    slots[RECD_EXPERIMENT_SLOTS] = '\0';
    char arms[2048] = "[";
    for (int i = 0; i < 11; ++i)
        snprintf(arms + strlen(arms), sizeof(arms) - strlen(arms), "%s{\"name\": \"a%d\", \"version\": %d, \"weight\": %d}",
                 i ? ", " : "", i, i + 1, i == 10 ? 10000 : 0);
    strcat(arms, "]");
    snprintf(text, sizeof(text),
             "{\"experiments\": {\"e-1\": {\"salt\": \"\", \"enabled\": false, \"arms\": %s, \"slots\": \"%s\", "
             "\"status\": \"rolled_back\", \"reason\": \"r\"}}}",
             arms, slots);
    put_control(fx, text);
    assert_int_equal(recd_control_read(fx->reg, "m", &c, err, sizeof(err)), RECD_OK);
    assert_int_equal(c.experiments[0].n_arms, 11);
    assert_int_equal(c.experiments[0].slots[1234], 10);
    assert_false(c.experiments[0].enabled);
    assert_true(c.experiments[0].rolled_back);
    assert_false(c.experiments[0].guardrails.enabled);
    recd_control_dispose(&c);
}

static int add_pin(recd_control_t *c, void *data)
{
    c->pins = realloc(c->pins, (c->n_pins + 1) * sizeof(*c->pins));
    c->pins[c->n_pins++] = (uint64_t)(uintptr_t)data;
    return RECD_OK;
}

static int refuse(recd_control_t *c, void *data)
{
    c->active = 99;
    return RECD_EBUSY;
}

static int corrupt(recd_control_t *c, void *data)
{
    c->n_pins = 0;
    c->history = realloc(c->history, sizeof(uint64_t));
    c->history[0] = 0;
    c->n_history = 1;
    return RECD_OK;
}

static void test_control_update_locked(void **state)
{
    fixture_t *fx = *state;
    enum { N_WRITERS = 4, N_EDITS = 25 };
    recd_control_t c;
    char err[512] = "";
    uint64_t generation = 0;

    /* a missing file is an empty state: the first update writes generation 1 */
    assert_int_equal(recd_control_update(fx->reg, "m", add_pin, (void *)(uintptr_t)1000, &generation, err, sizeof(err)), RECD_OK);
    assert_int_equal(generation, 1);

    /* concurrent processes: no update is lost, generations are consecutive */
    pid_t pids[N_WRITERS];
    for (int w = 0; w < N_WRITERS; ++w) {
        if ((pids[w] = fork()) == 0) {
            for (int i = 0; i < N_EDITS; ++i)
                if (recd_control_update(fx->reg, "m", add_pin, (void *)(uintptr_t)(w * 100 + i + 1), NULL, NULL, 0) != RECD_OK)
                    _exit(1);
            _exit(0);
        }
        assert_true(pids[w] > 0);
    }
    for (int w = 0; w < N_WRITERS; ++w) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(recd_control_read(fx->reg, "m", &c, err, sizeof(err)), RECD_OK);
    assert_int_equal(c.generation, 1 + N_WRITERS * N_EDITS);
    assert_int_equal(c.n_pins, 1 + N_WRITERS * N_EDITS);
    for (int w = 0; w < N_WRITERS; ++w)
        for (int i = 0; i < N_EDITS; ++i)
            assert_true(recd_control_is_pinned(&c, (uint64_t)(w * 100 + i + 1)));
    recd_control_dispose(&c);

    /* an edit that refuses writes nothing; one that leaves an invalid state is refused with a message */
    assert_int_equal(recd_control_update(fx->reg, "m", refuse, NULL, &generation, err, sizeof(err)), RECD_EBUSY);
    err[0] = '\0';
    assert_int_equal(recd_control_update(fx->reg, "m", corrupt, NULL, &generation, err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "history[0]"));
    assert_int_equal(recd_control_read(fx->reg, "m", &c, err, sizeof(err)), RECD_OK);
    assert_int_equal(c.generation, 1 + N_WRITERS * N_EDITS);
    assert_int_equal(c.active, 0);
    recd_control_dispose(&c);

    /* a malformed file is not overwritten by an update: the operator's mistake stays visible */
    put_control(fx, "{\"active\": \"x\"}");
    err[0] = '\0';
    assert_int_equal(recd_control_update(fx->reg, "m", add_pin, (void *)(uintptr_t)5, NULL, err, sizeof(err)), RECD_EFORMAT);
    assert_non_null(strstr(err, "\"active\""));
}

static void test_control_activate_rollback(void **state)
{
    recd_control_t c = {0};
    recd_control_activate(&c, 1);
    assert_int_equal(c.n_history, 0);
    recd_control_activate(&c, 2);
    recd_control_activate(&c, 2); /* re-activating the active version pushes nothing */
    recd_control_activate(&c, 3);
    assert_int_equal(c.active, 3);
    assert_int_equal(c.n_history, 2);
    assert_int_equal(recd_control_rollback(&c), RECD_OK);
    assert_int_equal(c.active, 2);
    assert_int_equal(recd_control_rollback(&c), RECD_OK);
    assert_int_equal(c.active, 1);
    assert_int_equal(recd_control_rollback(&c), RECD_ENOTFOUND);
    assert_int_equal(c.active, 1);
    recd_control_dispose(&c);
    (void)state;
}

static void test_control_permission_denied(void **state)
{
    fixture_t *fx = *state;
    recd_control_t c = {0};
    char err[512] = "", path[512];

    put_control(fx, "{\"active\": 1}");
    snprintf(path, sizeof(path), "%s/m/%s", fx->reg, RECD_REGISTRY_CONTROL);
    assert_int_equal(chmod(path, 0), 0);
    if (geteuid() == 0) {
        /* root reads anything: check the message from a child that dropped to nobody */
        pid_t pid = fork();
        if (pid == 0) {
            if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
                _exit(2);
            int ret = recd_control_read(fx->reg, "m", &c, err, sizeof(err));
            _exit(ret == RECD_EIO && strstr(err, "Permission denied") != NULL ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    } else {
        assert_int_equal(recd_control_read(fx->reg, "m", &c, err, sizeof(err)), RECD_EIO);
        assert_non_null(strstr(err, "Permission denied"));
    }
    recd_control_dispose(&c);
}

int test_control_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_control_missing_and_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_status_and_enabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_update_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_activate_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_permission_denied, setup, teardown),
    };
    return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
