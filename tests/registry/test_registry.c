/* test_registry.c: staging, atomic publication, version lookup and the control file in the on-disk registry. */
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
#include <errno.h>
#include <unistd.h>
#include "tests/support/fixtures.h"
#include "registry/registry.h"

typedef struct st_fixture_t {
    char dir[64];
    char reg[96]; /* a registry path that does not exist yet, to exercise mkdir -p */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (support_tmpdir_create(fx->dir, sizeof(fx->dir), "recd-test-registry") != 0)
        return -1;
    snprintf(fx->reg, sizeof(fx->reg), "%s/a/registry", fx->dir);
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

static void put_file(const char *dir, const char *name, const char *content)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Stages a version holding a model.recd with the given content and commits it; returns the version. */
static uint64_t publish(const char *reg, const char *model, const char *content)
{
    char staging[256];
    uint64_t version = 0;
    assert_int_equal(recd_registry_stage(reg, model, staging, sizeof(staging)), RECD_OK);
    assert_true(is_dir(staging));
    put_file(staging, RECD_REGISTRY_ARTIFACT, content);
    put_file(staging, "manifest.json", "{}");
    assert_int_equal(recd_registry_commit(reg, model, staging, &version), RECD_OK);
    assert_false(is_dir(staging));
    return version;
}

static void test_registry_commit_versions(void **state)
{
    fixture_t *fx = *state;
    uint64_t v;
    char path[256], staging[256];

    assert_int_equal(recd_registry_latest(fx->reg, "movies", &v), RECD_ENOTFOUND);
    assert_int_equal(publish(fx->reg, "movies", "one"), 1);
    assert_int_equal(recd_registry_latest(fx->reg, "movies", &v), RECD_OK);
    assert_int_equal(v, 1);
    assert_int_equal(publish(fx->reg, "movies", "two"), 2);
    assert_int_equal(recd_registry_latest(fx->reg, "movies", &v), RECD_OK);
    assert_int_equal(v, 2);

    /* The artifact path points at what was committed. */
    assert_int_equal(recd_registry_artifact_path(fx->reg, "movies", 2, path, sizeof(path)), RECD_OK);
    char expected[256];
    snprintf(expected, sizeof(expected), "%s/movies/2/model.recd", fx->reg);
    assert_string_equal(path, expected);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char buf[8] = "";
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    assert_string_equal(buf, "two");
    assert_int_equal(recd_registry_artifact_path(fx->reg, "movies", 2, path, 10), RECD_EINVAL);

    /* Models are independent. */
    assert_int_equal(recd_registry_latest(fx->reg, "books", &v), RECD_ENOTFOUND);
    assert_int_equal(publish(fx->reg, "books", "b"), 1);

    /* A staging dir left behind (e.g. by a crashed trainer) and an uncommitted stage are not versions. */
    assert_int_equal(recd_registry_stage(fx->reg, "movies", staging, sizeof(staging)), RECD_OK);
    put_file(staging, RECD_REGISTRY_ARTIFACT, "half");
    assert_int_equal(recd_registry_latest(fx->reg, "movies", &v), RECD_OK);
    assert_int_equal(v, 2);
    assert_int_equal(recd_registry_commit(fx->reg, "movies", staging, &v), RECD_OK);
    assert_int_equal(v, 3);
    assert_int_equal(recd_registry_commit(fx->reg, "movies", staging, &v), RECD_ENOTFOUND);
}

static void test_registry_ignores_strays(void **state)
{
    fixture_t *fx = *state;
    uint64_t v;
    char path[256], staging[256];

    assert_int_equal(publish(fx->reg, "m", "1"), 1);
    snprintf(path, sizeof(path), "%s/m/notes", fx->reg);
    assert_int_equal(mkdir(path, 0755), 0);
    put_file(path, RECD_REGISTRY_ARTIFACT, "x");
    snprintf(path, sizeof(path), "%s/m/12a", fx->reg);
    assert_int_equal(mkdir(path, 0755), 0);
    put_file(path, RECD_REGISTRY_ARTIFACT, "x");
    snprintf(path, sizeof(path), "%s/m/.staging-zzzzzz", fx->reg);
    assert_int_equal(mkdir(path, 0755), 0);
    put_file(path, RECD_REGISTRY_ARTIFACT, "x");
    snprintf(path, sizeof(path), "%s/m/99999999999999999999999", fx->reg); /* overflows u64: not a version */
    assert_int_equal(mkdir(path, 0755), 0);
    put_file(path, RECD_REGISTRY_ARTIFACT, "x");
    snprintf(path, sizeof(path), "%s/m/5", fx->reg); /* a plain file named like a version */
    put_file(fx->reg, "m/5", "not a dir");
    assert_int_equal(recd_registry_latest(fx->reg, "m", &v), RECD_OK);
    assert_int_equal(v, 1);

    /* A numeric directory without an artifact is not the latest, but its number is taken. */
    snprintf(path, sizeof(path), "%s/m/7", fx->reg);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(recd_registry_latest(fx->reg, "m", &v), RECD_OK);
    assert_int_equal(v, 1);
    assert_int_equal(publish(fx->reg, "m", "8"), 8);
    assert_int_equal(recd_registry_latest(fx->reg, "m", &v), RECD_OK);
    assert_int_equal(v, 8);

    /* An empty directory at the next number is not replaced (rename would happily replace an empty dir). */
    snprintf(path, sizeof(path), "%s/m/9", fx->reg);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(publish(fx->reg, "m", "10"), 10);
    assert_true(is_dir(path));

    /* A registry with only staging dirs has no version. */
    assert_int_equal(recd_registry_stage(fx->reg, "fresh", staging, sizeof(staging)), RECD_OK);
    assert_int_equal(recd_registry_latest(fx->reg, "fresh", &v), RECD_ENOTFOUND);
}

static void test_registry_names(void **state)
{
    fixture_t *fx = *state;
    char long_ok[65], too_long[66], out[256];
    uint64_t v;
    memset(long_ok, 'a', 64);
    long_ok[64] = '\0';
    memset(too_long, 'b', 65);
    too_long[65] = '\0';

    const char *valid[] = {"a", "movies", "movies-v2.1_X", "0", long_ok};
    for (size_t i = 0; i != sizeof(valid) / sizeof(valid[0]); ++i)
        assert_true(recd_registry_valid_name(valid[i]));
    const char *invalid[] = {"", ".", "..", ".hidden", "a/b", "../x", "a b", "caf\xc3\xa9", "x\n", too_long};
    for (size_t i = 0; i != sizeof(invalid) / sizeof(invalid[0]); ++i) {
        assert_false(recd_registry_valid_name(invalid[i]));
        assert_int_equal(recd_registry_stage(fx->reg, invalid[i], out, sizeof(out)), RECD_EINVAL);
        assert_int_equal(recd_registry_latest(fx->reg, invalid[i], &v), RECD_EINVAL);
        assert_int_equal(recd_registry_commit(fx->reg, invalid[i], fx->dir, &v), RECD_EINVAL);
        assert_int_equal(recd_registry_artifact_path(fx->reg, invalid[i], 1, out, sizeof(out)), RECD_EINVAL);
    }
    assert_false(recd_registry_valid_name(NULL));
    assert_false(is_dir(fx->reg)); /* nothing was created for the rejected names */
}

static void test_registry_concurrent_commits(void **state)
{
    fixture_t *fx = *state;
    /* Several processes, released together, each publishing in a loop: commits interleave, so a publisher regularly finds
     * that the number it picked was taken between its scan and its rename and must move on to the next one. */
    enum { WRITERS = 4, EACH = 25, TOTAL = WRITERS * EACH };
    int go[2], results[2];
    pid_t pids[WRITERS];

    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(results), 0);
    for (int w = 0; w != WRITERS; ++w) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            char c;
            close(go[1]);
            close(results[0]);
            if (read(go[0], &c, 1) != 0) /* EOF once the parent closes the write end */
                _exit(3);
            for (int i = 0; i != EACH; ++i) {
                char staging[256], path[300];
                uint64_t v = 0;
                if (recd_registry_stage(fx->reg, "race", staging, sizeof(staging)) != RECD_OK)
                    _exit(1);
                snprintf(path, sizeof(path), "%s/" RECD_REGISTRY_ARTIFACT, staging);
                FILE *fp = fopen(path, "w");
                if (fp == NULL)
                    _exit(2);
                fprintf(fp, "writer %d commit %d\n", w, i);
                fclose(fp);
                if (recd_registry_commit(fx->reg, "race", staging, &v) != RECD_OK)
                    _exit(4);
                if (write(results[1], &v, sizeof(v)) != sizeof(v))
                    _exit(5);
            }
            _exit(0);
        }
    }
    close(go[0]);
    close(results[1]);
    close(go[1]); /* release all writers at once */

    /* Every commit got its own number and together they are exactly 1..TOTAL. */
    int hit[TOTAL + 1] = {0};
    size_t nseen = 0;
    uint64_t v;
    ssize_t r;
    while ((r = read(results[0], &v, sizeof(v))) == sizeof(v)) {
        assert_true(v >= 1 && v <= TOTAL);
        assert_int_equal(hit[v], 0);
        hit[v] = 1;
        ++nseen;
    }
    assert_int_equal(r, 0);
    close(results[0]);
    for (int w = 0; w != WRITERS; ++w) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(nseen, TOTAL);
    assert_int_equal(recd_registry_latest(fx->reg, "race", &v), RECD_OK);
    assert_int_equal(v, TOTAL);
}

static void test_registry_versions_listed_ascending(void **state)
{
    fixture_t *fx = *state;
    uint64_t *versions = (uint64_t *)1;
    size_t n = 99;
    char path[256];

    assert_int_equal(recd_registry_versions(fx->reg, "m", &versions, &n), RECD_ENOTFOUND);
    assert_null(versions);
    assert_int_equal(n, 0);
    for (int i = 0; i < 12; ++i)
        publish(fx->reg, "m", "x");
    /* strays and a numeric directory without an artifact are not listed */
    snprintf(path, sizeof(path), "%s/m/40", fx->reg);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/m/notes", fx->reg);
    assert_int_equal(mkdir(path, 0755), 0);
    put_file(path, RECD_REGISTRY_ARTIFACT, "x");
    assert_int_equal(recd_registry_versions(fx->reg, "m", &versions, &n), RECD_OK);
    assert_int_equal(n, 12);
    for (size_t i = 0; i < n; ++i)
        assert_int_equal(versions[i], i + 1);
    free(versions);

    snprintf(path, sizeof(path), "%s/empty", fx->reg);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(recd_registry_versions(fx->reg, "empty", &versions, &n), RECD_OK);
    assert_int_equal(n, 0);
    free(versions);
    assert_int_equal(recd_registry_versions(fx->reg, "../m", &versions, &n), RECD_EINVAL);
}

/* Makes <reg>/<model>/<name>/model.recd (a version directory created by hand, not by a commit). */
static void make_version_dir(const char *reg, const char *model, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/%s", reg, model, name);
    assert_int_equal(mkdir(path, 0755), 0);
    put_file(path, RECD_REGISTRY_ARTIFACT, "x");
}

typedef struct st_ignored_t {
    char names[8][64];
    int n;
} ignored_t;

static void on_ignored(void *data, const char *name, const char *why)
{
    ignored_t *ig = data;
    assert_non_null(why);
    if (ig->n < 8)
        snprintf(ig->names[ig->n++], sizeof(ig->names[0]), "%s", name);
}

static int was_ignored(const ignored_t *ig, const char *name)
{
    for (int i = 0; i < ig->n; ++i)
        if (strcmp(ig->names[i], name) == 0)
            return 1;
    return 0;
}

/* Rows "016 read as version 16" and "a version directory that is a symlink to another model". */
static void test_registry_strict_names_and_symlinks(void **state)
{
    fixture_t *fx = *state;
    char path[512], target[512];
    uint64_t *versions, v;
    size_t n;
    ignored_t ig = {0};

    assert_int_equal(publish(fx->reg, "m", "1"), 1);
    make_version_dir(fx->reg, "m", "016");
    make_version_dir(fx->reg, "m", "+3");
    make_version_dir(fx->reg, "m", "0");
    assert_int_equal(publish(fx->reg, "other", "o"), 1);
    snprintf(path, sizeof(path), "%s/m/7", fx->reg);
    snprintf(target, sizeof(target), "%s/other/1", fx->reg);
    assert_int_equal(symlink(target, path), 0);

    assert_int_equal(recd_registry_scan(fx->reg, "m", &versions, &n, on_ignored, &ig), RECD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(versions[0], 1);
    free(versions);
    assert_true(was_ignored(&ig, "016"));
    assert_true(was_ignored(&ig, "+3"));
    assert_true(was_ignored(&ig, "7"));
    assert_int_equal(recd_registry_latest(fx->reg, "m", &v), RECD_OK);
    assert_int_equal(v, 1);

    assert_int_equal(recd_registry_parse_version("16", &v), 1);
    assert_int_equal(v, 16);
    assert_int_equal(recd_registry_parse_version("016", &v), 0);
    assert_int_equal(recd_registry_parse_version("0", &v), 0);
    assert_int_equal(recd_registry_parse_version(" 1", &v), 0);
    assert_int_equal(recd_registry_parse_version("1 ", &v), 0);
    assert_int_equal(recd_registry_parse_version("-1", &v), 0);
    assert_int_equal(recd_registry_parse_version("18446744073709551615", &v), 1);
    assert_true(v == UINT64_MAX);
    assert_int_equal(recd_registry_parse_version("18446744073709551616", &v), 0);
}

/* Row "the active version's directory was deleted, then a new version published": the number is never reused. */
static void test_registry_numbers_never_reused(void **state)
{
    fixture_t *fx = *state;
    char path[512];

    assert_int_equal(publish(fx->reg, "m", "1"), 1);
    assert_int_equal(publish(fx->reg, "m", "2"), 2);
    snprintf(path, sizeof(path), "rm -rf '%s/m/2'", fx->reg);
    assert_int_equal(system(path), 0);
    assert_int_equal(publish(fx->reg, "m", "3"), 3);
    /* every directory gone: the high-water mark remembers */
    snprintf(path, sizeof(path), "rm -rf '%s/m/1' '%s/m/3'", fx->reg, fx->reg);
    assert_int_equal(system(path), 0);
    assert_int_equal(publish(fx->reg, "m", "4"), 4);
    /* the mark gone too: control.json still names versions, and they are never reused */
    snprintf(path, sizeof(path), "rm -rf '%s/m/4' '%s/m/%s'", fx->reg, fx->reg, RECD_REGISTRY_HIGH_WATER);
    assert_int_equal(system(path), 0);
    snprintf(path, sizeof(path), "%s/m", fx->reg);
    put_file(path, "control.json", "{\"active\": 9, \"history\": [4]}");
    assert_int_equal(publish(fx->reg, "m", "10"), 10);
}

/* Row "a directory named 18446744073709551615": publishes never wrap to 0. */
static void test_registry_numbers_never_wrap(void **state)
{
    fixture_t *fx = *state;
    char staging[256];
    uint64_t v = 0;

    assert_int_equal(publish(fx->reg, "m", "1"), 1);
    make_version_dir(fx->reg, "m", "18446744073709551613");
    assert_int_equal(publish(fx->reg, "m", "x"), UINT64_MAX - 1);
    assert_int_equal(recd_registry_stage(fx->reg, "m", staging, sizeof(staging)), RECD_OK);
    put_file(staging, RECD_REGISTRY_ARTIFACT, "y");
    assert_int_equal(recd_registry_commit(fx->reg, "m", staging, &v), RECD_EOVERFLOW);
    assert_int_equal(v, 0);
    assert_true(is_dir(staging)); /* nothing was published */
    make_version_dir(fx->reg, "m", "18446744073709551615");
    assert_int_equal(recd_registry_commit(fx->reg, "m", staging, &v), RECD_EOVERFLOW);
    assert_non_null(strstr(recd_strerror(RECD_EOVERFLOW), "exhausted"));
}

/* Row "version directories created 0700 seen by another user": the version is listed, so opening it says "permission
 * denied" instead of the model looking absent. */
static void test_registry_permission_denied_is_not_absence(void **state)
{
    fixture_t *fx = *state;
    char path[512];
    assert_int_equal(publish(fx->reg, "m", "1"), 1);
    snprintf(path, sizeof(path), "%s/m/1", fx->reg);
    assert_int_equal(chmod(path, 0700), 0);
    assert_int_equal(chmod(fx->dir, 0755), 0); /* mkdtemp made it 0700: let the other user reach the registry */
    pid_t pid = fork();
    if (pid == 0) {
        int root = geteuid() == 0;
        if (root && (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0))
            _exit(2);
        if (!root && chmod(path, 0) != 0) /* not root: take our own permission away instead */
            _exit(3);
        uint64_t *versions;
        size_t n;
        char artifact[600];
        int ret = recd_registry_versions(fx->reg, "m", &versions, &n);
        if (ret != RECD_OK || n != 1 || versions[0] != 1)
            _exit(4);
        free(versions);
        recd_registry_artifact_path(fx->reg, "m", 1, artifact, sizeof(artifact));
        FILE *fp = fopen(artifact, "r");
        _exit(fp == NULL && errno == EACCES ? 0 : 5);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    chmod(path, 0755);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int test_registry_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_commit_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_ignores_strays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_concurrent_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_versions_listed_ascending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_strict_names_and_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_numbers_never_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_numbers_never_wrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_permission_denied_is_not_absence, setup, teardown),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
