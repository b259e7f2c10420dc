/* test_catalog.c: catalog snapshots and the loader — choice of the active version, fallback, rejection memory, refcounts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "registry/catalog.h"
#include "registry/control.h"
#include "registry/registry.h"

typedef struct st_fixture_t {
    char dir[64];
    char log_path[96];
    recd_logger_t log;
    recd_metrics_t *metrics;
} fixture_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/recd-test-catalog-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->log_path, sizeof(fx->log_path), "%s/log.jsonl", fx->dir);
    fx->log = (recd_logger_t){RECD_LOG_INFO, open(fx->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
    fx->metrics = recd_metrics_create(1);
    *state = fx;
    return fx->log.fd >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    close(fx->log.fd);
    recd_metrics_free(fx->metrics);
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* Writes a small ALS artifact with n_items items (so versions can be told apart); corrupt flips one byte in the middle. */
static void write_artifact(const char *path, size_t n_items, int corrupt)
{
    enum { NU = 2, F = 2, MAX_ITEMS = 16 };
    char ids[MAX_ITEMS][8], err[512];
    const char *item_ids[MAX_ITEMS], *user_ids[NU] = {"u0", "u1"};
    float item_f[MAX_ITEMS * F], user_f[NU * F] = {1, 0, 0, 1}, pop[MAX_ITEMS];
    uint32_t rows[NU] = {0, 1}, cols[NU] = {0, 1};
    recd_csr_t csr = {0};

    assert_true(n_items >= 2 && n_items <= MAX_ITEMS);
    for (size_t i = 0; i < n_items; ++i) {
        snprintf(ids[i], sizeof(ids[i]), "i%zu", i);
        item_ids[i] = ids[i];
        item_f[i * F] = (float)i;
        item_f[i * F + 1] = 1.0f;
        pop[i] = (float)(n_items - i);
    }
    assert_int_equal(recd_csr_from_coo(&csr, NU, n_items, rows, cols, NULL, NU, RECD_MERGE_SUM), 0);
    recd_model_spec_t spec = {.kind = RECD_MODEL_ALS,
                              .n_factors = F,
                              .n_users = NU,
                              .n_items = n_items,
                              .user_ids = user_ids,
                              .item_ids = item_ids,
                              .user_factors = user_f,
                              .item_factors = item_f,
                              .item_popularity = pop,
                              .alpha = 1.0f,
                              .reg = 0.1f,
                              .user_items = &csr,
                              .metadata_json = "{}"};
    assert_int_equal(recd_model_write(&spec, path, err, sizeof(err)), 0);
    recd_csr_dispose(&csr);
    if (corrupt) {
        int fd = open(path, O_RDWR);
        struct stat st;
        unsigned char c;
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(pread(fd, &c, 1, st.st_size / 2), 1);
        c ^= 0x5a;
        assert_int_equal(pwrite(fd, &c, 1, st.st_size / 2), 1);
        close(fd);
    }
}

/* Publishes the next version of model through the registry (stage + commit) and returns its number. */
static uint64_t publish(const fixture_t *fx, const char *model, size_t n_items, int corrupt)
{
    char staging[512], path[600];
    uint64_t version;
    assert_int_equal(recd_registry_stage(fx->dir, model, staging, sizeof(staging)), RECD_OK);
    snprintf(path, sizeof(path), "%s/%s", staging, RECD_REGISTRY_ARTIFACT);
    write_artifact(path, n_items, corrupt);
    assert_int_equal(recd_registry_commit(fx->dir, model, staging, &version), RECD_OK);
    return version;
}

/* Replaces the artifact of an existing version (a new file, as an operator fixing it by hand would). */
static void replace_artifact(const fixture_t *fx, const char *model, uint64_t version, size_t n_items, int corrupt)
{
    char path[600];
    assert_int_equal(recd_registry_artifact_path(fx->dir, model, version, path, sizeof(path)), RECD_OK);
    write_artifact(path, n_items, corrupt);
}

static void set_control(const fixture_t *fx, uint64_t active, uint64_t generation)
{
    recd_control_t control = {.active = active, .generation = generation};
    assert_int_equal(recd_control_write(fx->dir, "demo", &control), RECD_OK);
}

static uint64_t counter(const fixture_t *fx, const char *name)
{
    return recd_metric_value(recd_metrics_counter(fx->metrics, name, "", NULL));
}

static int count_in_file(const char *path, const char *needle)
{
    char line[8192];
    int n = 0;
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}

static recd_catalog_loader_t *create(const fixture_t *fx)
{
    const char *models[] = {"demo"};
    char err[1024];
    recd_catalog_loader_t *l = recd_catalog_loader_create(fx->dir, models, 1, 0, &fx->log, fx->metrics, err, sizeof(err));
    if (l == NULL)
        fail_msg("loader: %s", err);
    return l;
}

static uint64_t active_version(recd_catalog_loader_t *l)
{
    recd_catalog_t *c = recd_catalog_loader_current(l);
    recd_model_t *m = recd_catalog_active(c, NULL, 0);
    uint64_t v = m != NULL ? recd_model_version(m) : 0;
    recd_catalog_release(c);
    return v;
}

static void test_catalog_newest_version_serves(void **state)
{
    fixture_t *fx = *state;
    publish(fx, "demo", 3, 0);
    publish(fx, "demo", 5, 0);
    recd_catalog_loader_t *l = create(fx);
    recd_catalog_t *c = recd_catalog_loader_current(l);
    size_t n;
    const recd_catalog_version_t *v = recd_catalog_versions(c, NULL, 0, &n);

    assert_string_equal(recd_catalog_default_name(c), "demo");
    assert_int_equal(recd_catalog_n_models(c), 1);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].version, 2);
    assert_int_equal(v[0].roles, RECD_CATALOG_ACTIVE);
    assert_ptr_equal(recd_catalog_active(c, "demo", 4), v[0].model);
    assert_ptr_equal(recd_catalog_version(c, NULL, 0, 2), v[0].model);
    assert_null(recd_catalog_version(c, NULL, 0, 1)); /* not loaded */
    assert_null(recd_catalog_active(c, "dem", 3));
    assert_string_equal(recd_model_name(v[0].model), "demo");
    assert_int_equal(recd_catalog_max_items(c), 5);
    assert_int_equal(recd_catalog_generation(c), 1);
    assert_int_equal(recd_catalog_control_generation(c, NULL, 0), 0);
    assert_int_equal(counter(fx, "recd_model_loads_total"), 1);
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 0);
    /* nothing changed: no new snapshot */
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    recd_catalog_release(c);

    size_t len;
    char *text = recd_metrics_render(fx->metrics, &len);
    assert_non_null(strstr(text, "\nrecd_model_version{model=\"demo\"} 2\n"));
    assert_non_null(strstr(text, "\nrecd_model_loads_total 1\n"));
    free(text);
    recd_catalog_loader_free(l);
}

static void test_catalog_startup_skips_a_corrupt_newest(void **state)
{
    fixture_t *fx = *state;
    publish(fx, "demo", 3, 0);
    publish(fx, "demo", 4, 0);
    publish(fx, "demo", 5, 1);
    recd_catalog_loader_t *l = create(fx);
    assert_int_equal(active_version(l), 2);
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 1);
    assert_int_equal(counter(fx, "recd_model_loads_total"), 1);
    /* the corrupt newest is remembered: later polls neither open it again nor go back to it */
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 1);
    assert_int_equal(active_version(l), 2);
    recd_catalog_loader_free(l);
}

static void test_catalog_startup_fails_without_a_loadable_version(void **state)
{
    fixture_t *fx = *state;
    const char *models[] = {"demo"}, *absent[] = {"absent"}, *invalid[] = {"../x"};
    char err[1024];

    assert_null(recd_catalog_loader_create(fx->dir, absent, 1, 0, &fx->log, fx->metrics, err, sizeof(err)));
    assert_non_null(strstr(err, "\"absent\""));
    assert_null(recd_catalog_loader_create(fx->dir, invalid, 1, 0, &fx->log, fx->metrics, err, sizeof(err)));
    assert_non_null(strstr(err, "invalid model name"));
    publish(fx, "demo", 3, 1);
    assert_null(recd_catalog_loader_create(fx->dir, models, 1, 0, &fx->log, fx->metrics, err, sizeof(err)));
    assert_non_null(strstr(err, "\"demo\""));
    assert_non_null(strstr(err, "version 1:")); /* says why */
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 1);
}

static void test_catalog_rejected_version_not_retried_until_its_file_changes(void **state)
{
    fixture_t *fx = *state;
    publish(fx, "demo", 3, 0);
    recd_catalog_loader_t *l = create(fx);

    assert_int_equal(publish(fx, "demo", 4, 1), 2);
    /* the rejection is published once: the snapshot lists version 2 as failed, with its reason */
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    recd_catalog_t *c = recd_catalog_loader_current(l);
    size_t n;
    const recd_catalog_version_t *vs = recd_catalog_versions(c, NULL, 0, &n);
    assert_int_equal(n, 2);
    assert_int_equal(vs[1].version, 2);
    assert_int_equal(vs[1].roles, RECD_CATALOG_FAILED);
    assert_null(vs[1].model);
    assert_non_null(vs[1].reason);
    assert_non_null(strstr(vs[1].reason, "artifact: "));
    assert_null(vs[0].reason);
    recd_catalog_release(c);
    for (int i = 0; i < 4; ++i) {
        assert_int_equal(recd_catalog_loader_poll(l), 0);
        assert_int_equal(counter(fx, "recd_model_load_failures_total"), 1);
        assert_int_equal(active_version(l), 1);
    }
    assert_int_equal(count_in_file(fx->log_path, "\"msg\":\"model version rejected\""), 1);

    /* a different file, still broken: opened once more, rejected once more */
    replace_artifact(fx, "demo", 2, 5, 1);
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 2);
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 2);

    /* fixed: loaded and served */
    replace_artifact(fx, "demo", 2, 6, 0);
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    assert_int_equal(active_version(l), 2);
    c = recd_catalog_loader_current(l);
    vs = recd_catalog_versions(c, NULL, 0, &n);
    assert_int_equal(n, 1); /* no longer failed */
    assert_int_equal(vs[0].roles, RECD_CATALOG_ACTIVE);
    recd_catalog_release(c);
    assert_int_equal(counter(fx, "recd_model_loads_total"), 2);
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 2);
    recd_catalog_loader_free(l);
}

/* Whether path is mapped into this process (the artifact of a version that is still loaded). */
static int mapped(const char *path)
{
    char line[8192];
    int found = 0;
    FILE *fp = fopen("/proc/self/maps", "r");
    assert_non_null(fp);
    while (!found && fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        size_t n = strlen(line), pl = strlen(path);
        found = n >= pl && strcmp(line + n - pl, path) == 0;
    }
    fclose(fp);
    return found;
}

static void test_catalog_old_version_lives_until_its_last_snapshot_goes(void **state)
{
    fixture_t *fx = *state;
    publish(fx, "demo", 3, 0);
    size_t base_count = recd_model_live_count(), base_bytes = recd_model_live_bytes();
    recd_catalog_loader_t *l = create(fx);
    recd_catalog_t *held1 = recd_catalog_loader_current(l), *held2 = recd_catalog_loader_current(l);
    recd_model_t *v1 = recd_catalog_active(held1, NULL, 0);
    assert_int_equal(recd_model_live_count(), base_count + 1);
    assert_int_equal(recd_model_live_bytes(), base_bytes + recd_model_bytes(v1));

    publish(fx, "demo", 4, 0);
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    assert_int_equal(active_version(l), 2);
    /* the loader has moved on, but two snapshots still hold version 1: it stays in memory and readable */
    assert_int_equal(recd_model_live_count(), base_count + 2);
    recd_catalog_release(held1);
    assert_int_equal(recd_model_live_count(), base_count + 2);
    assert_int_equal(recd_model_n_items(v1), 3);
    assert_string_equal(recd_model_item_id(v1, 2, NULL), "i2");
    recd_catalog_release(held2);
    /* the last snapshot holding version 1 is gone: so is its memory */
    assert_int_equal(recd_model_live_count(), base_count + 1);
    recd_catalog_t *now = recd_catalog_loader_current(l);
    assert_int_equal(recd_model_live_bytes(), base_bytes + recd_model_bytes(recd_catalog_active(now, NULL, 0)));
    recd_catalog_release(now);
    recd_catalog_release(NULL);
    recd_catalog_loader_free(l);
    assert_int_equal(recd_model_live_count(), base_count);
}

/* Row "the active model.recd was truncated, or copied over in place": the loaded version is a copy in memory, not a
 * mapping of the file, so reading it after the file shrank cannot raise SIGBUS. */
static void test_catalog_truncated_artifact_keeps_serving(void **state)
{
    fixture_t *fx = *state;
    char path[600];
    publish(fx, "demo", 8, 0);
    recd_catalog_loader_t *l = create(fx);
    recd_catalog_t *c = recd_catalog_loader_current(l);
    recd_model_t *m = recd_catalog_active(c, NULL, 0);
    assert_int_equal(recd_registry_artifact_path(fx->dir, "demo", 1, path, sizeof(path)), RECD_OK);
    assert_false(mapped(path));
    assert_int_equal(truncate(path, 0), 0);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "garbage", 7), 7); /* overwritten in place, as cp onto it would */
    close(fd);
    size_t sum = 0;
    for (uint32_t i = 0; i < recd_model_n_items(m); ++i)
        sum += strlen(recd_model_item_id(m, i, NULL));
    assert_true(sum > 0);
    /* the next poll sees a changed file that does not open: it is rejected and the copy keeps serving */
    recd_catalog_loader_poll(l);
    assert_int_equal(active_version(l), 1);
    recd_catalog_release(c);
    recd_catalog_loader_free(l);
}

static void test_catalog_control_file_chooses_the_active_version(void **state)
{
    fixture_t *fx = *state;
    publish(fx, "demo", 3, 0);
    publish(fx, "demo", 4, 0);
    publish(fx, "demo", 5, 0);
    set_control(fx, 2, 5);
    recd_catalog_loader_t *l = create(fx);
    recd_catalog_t *c = recd_catalog_loader_current(l);
    assert_int_equal(active_version(l), 2);
    assert_int_equal(recd_catalog_control_generation(c, NULL, 0), 5);
    assert_int_equal(counter(fx, "recd_model_loads_total"), 1); /* only the chosen version is opened */
    recd_catalog_release(c);

    /* roll back to version 1 */
    set_control(fx, 1, 6);
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    assert_int_equal(active_version(l), 1);
    /* a version that is not published keeps the current one, and the generation that chose it */
    set_control(fx, 9, 7);
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    assert_int_equal(active_version(l), 1);
    c = recd_catalog_loader_current(l);
    assert_int_equal(recd_catalog_control_generation(c, NULL, 0), 6);
    recd_catalog_release(c);
    assert_int_equal(count_in_file(fx->log_path, "\"msg\":\"control file names a version that cannot serve\""), 1);
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    assert_int_equal(count_in_file(fx->log_path, "\"msg\":\"control file names a version that cannot serve\""), 1);

    /* a malformed control file is ignored (logged once) and the current version keeps serving */
    char path[600];
    snprintf(path, sizeof(path), "%s/demo/%s", fx->dir, RECD_REGISTRY_CONTROL);
    FILE *fp = fopen(path, "w");
    fputs("{\"active\": \"two\"}", fp);
    fclose(fp);
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    assert_int_equal(active_version(l), 1);
    assert_int_equal(count_in_file(fx->log_path, "\"msg\":\"control file ignored\""), 1);

    /* without a control file the newest serves again */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    assert_int_equal(active_version(l), 3);

    /* removing the serving version's files switches nothing by itself (the mapping stays valid): going back to an older
     * version is the control file's job */
    char artifact[600];
    assert_int_equal(recd_registry_artifact_path(fx->dir, "demo", 3, artifact, sizeof(artifact)), RECD_OK);
    assert_int_equal(unlink(artifact), 0);
    assert_int_equal(recd_catalog_loader_poll(l), 0);
    c = recd_catalog_loader_current(l);
    assert_int_equal(recd_model_version(recd_catalog_active(c, NULL, 0)), 3);
    assert_string_equal(recd_model_item_id(recd_catalog_active(c, NULL, 0), 4, NULL), "i4");
    recd_catalog_release(c);
    set_control(fx, 2, 8);
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    assert_int_equal(active_version(l), 2);
    recd_catalog_loader_free(l);
}

static void test_catalog_control_naming_a_corrupt_version_at_startup_falls_back(void **state)
{
    fixture_t *fx = *state;
    publish(fx, "demo", 3, 0);
    publish(fx, "demo", 4, 1);
    publish(fx, "demo", 5, 0);
    set_control(fx, 2, 1);
    recd_catalog_loader_t *l = create(fx);
    assert_int_equal(active_version(l), 3); /* the newest that opens */
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 1);
    recd_catalog_loader_free(l);
}

typedef struct st_received_t {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    recd_catalog_t *last;
    int calls;
} received_t;

static void on_snapshot(void *data, recd_catalog_t *snapshot)
{
    received_t *r = data;
    pthread_mutex_lock(&r->mutex);
    recd_catalog_release(r->last);
    r->last = snapshot;
    ++r->calls;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mutex);
}

static void test_catalog_version_appearing_later_is_picked_up_by_poll(void **state)
{
    fixture_t *fx = *state;
    received_t r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};
    const char *models[] = {"demo", "other"};
    char err[1024];
    publish(fx, "demo", 3, 0);
    recd_catalog_loader_t *l = recd_catalog_loader_create(fx->dir, models, 2, 0, &fx->log, fx->metrics, err, sizeof(err));
    assert_non_null(l);
    recd_catalog_loader_subscribe(l, on_snapshot, &r);
    recd_catalog_t *c = recd_catalog_loader_current(l);
    assert_int_equal(recd_catalog_n_models(c), 2);
    assert_string_equal(recd_catalog_model_name(c, 1), "other");
    assert_null(recd_catalog_active(c, "other", 5)); /* no directory yet */
    recd_catalog_release(c);

    assert_int_equal(recd_catalog_loader_poll(l), 0);
    assert_int_equal(r.calls, 0);
    publish(fx, "demo", 4, 0);
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(recd_catalog_generation(r.last), 2);
    assert_int_equal(recd_model_version(recd_catalog_active(r.last, NULL, 0)), 2);
    assert_int_equal(recd_catalog_max_items(r.last), 4);

    publish(fx, "other", 7, 0);
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    assert_int_equal(r.calls, 2);
    assert_int_equal(recd_catalog_generation(r.last), 3);
    assert_int_equal(recd_model_version(recd_catalog_active(r.last, "other", 5)), 1);
    assert_string_equal(recd_model_name(recd_catalog_active(r.last, "other", 5)), "other");
    assert_int_equal(recd_model_version(recd_catalog_active(r.last, NULL, 0)), 2);
    assert_int_equal(recd_catalog_max_items(r.last), 7);
    recd_catalog_loader_free(l);
    recd_catalog_release(r.last);
}

/* Waits (bounded, so a broken watcher fails instead of hanging) until the subscriber has seen calls snapshots. */
static int wait_calls(received_t *r, int calls)
{
    struct timespec deadline;
    int ok;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    pthread_mutex_lock(&r->mutex);
    while (r->calls < calls && pthread_cond_timedwait(&r->cond, &r->mutex, &deadline) == 0)
        ;
    ok = r->calls >= calls;
    pthread_mutex_unlock(&r->mutex);
    return ok;
}

/* Waits (bounded) until the last snapshot received carries the control file of this generation or a later one. A count of
 * calls is not enough: a rejected version may be published as failed in a snapshot of its own first. */
static int wait_generation(received_t *r, uint64_t generation)
{
    struct timespec deadline;
    int ok;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    pthread_mutex_lock(&r->mutex);
    while ((r->last == NULL || recd_catalog_control_generation(r->last, NULL, 0) < generation) &&
           pthread_cond_timedwait(&r->cond, &r->mutex, &deadline) == 0)
        ;
    ok = r->last != NULL && recd_catalog_control_generation(r->last, NULL, 0) >= generation;
    pthread_mutex_unlock(&r->mutex);
    return ok;
}

typedef struct st_reader_t {
    recd_catalog_loader_t *loader;
    atomic_int stop;
    size_t reads, empty;
} reader_t;

/* Takes snapshots and reads them while the watcher publishes new ones (a request thread's view). */
static void *reader_main(void *arg)
{
    reader_t *rd = arg;
    while (!atomic_load(&rd->stop)) {
        recd_catalog_t *c = recd_catalog_loader_current(rd->loader);
        recd_model_t *m = recd_catalog_active(c, NULL, 0);
        rd->empty += m == NULL || recd_model_n_items(m) != recd_catalog_max_items(c);
        ++rd->reads;
        recd_catalog_release(c);
    }
    return NULL;
}

static void test_catalog_watcher_thread_publishes_new_versions(void **state)
{
    fixture_t *fx = *state;
    received_t r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};
    pthread_t reader;
    publish(fx, "demo", 3, 0);
    recd_catalog_loader_t *l = create(fx);
    reader_t rd = {.loader = l};
    recd_catalog_loader_subscribe(l, on_snapshot, &r);
    assert_int_equal(pthread_create(&reader, NULL, reader_main, &rd), 0);
    assert_int_equal(recd_catalog_loader_start(l, 20), 0);
    assert_int_equal(recd_catalog_loader_poll(l), RECD_EBUSY);

    publish(fx, "demo", 4, 0);
    assert_true(wait_calls(&r, 1));
    publish(fx, "demo", 5, 1); /* rejected on the watcher thread, while readers take snapshots */
    for (int i = 0; i < 2000 && counter(fx, "recd_model_load_failures_total") == 0; ++i) {
        recd_catalog_t *c = recd_catalog_loader_current(l);
        assert_int_equal(recd_model_version(recd_catalog_active(c, NULL, 0)), 2);
        recd_catalog_release(c);
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 1);
    set_control(fx, 1, 2);
    assert_true(wait_generation(&r, 2));
    for (int i = 0; i < 50; ++i) {
        recd_catalog_t *c = recd_catalog_loader_current(l);
        assert_non_null(recd_catalog_active(c, NULL, 0));
        recd_catalog_release(c);
    }
    recd_catalog_loader_stop(l);
    atomic_store(&rd.stop, 1);
    pthread_join(reader, NULL);
    assert_true(rd.reads > 0);
    assert_int_equal(rd.empty, 0);
    pthread_mutex_lock(&r.mutex);
    assert_int_equal(recd_model_version(recd_catalog_active(r.last, NULL, 0)), 1);
    assert_int_equal(recd_catalog_control_generation(r.last, NULL, 0), 2);
    pthread_mutex_unlock(&r.mutex);
    assert_int_equal(recd_catalog_loader_poll(l), 0); /* stopped: the caller may poll again */
    assert_int_equal(counter(fx, "recd_model_load_failures_total"), 1);
    recd_catalog_loader_free(l);
    recd_catalog_release(r.last);
}

/* Sets model demo's control state: active 3, history [2], pins [1] and one experiment whose arms name versions 3 and 4. */
static int set_full_control(recd_control_t *c, void *data)
{
    c->active = 3;
    c->history = realloc(c->history, sizeof(uint64_t));
    c->history[0] = 2;
    c->n_history = 1;
    c->pins = realloc(c->pins, sizeof(uint64_t));
    c->pins[0] = 1;
    c->n_pins = 1;
    free(c->experiments); /* replaced whole */
    c->experiments = calloc(1, sizeof(*c->experiments));
    c->n_experiments = 1;
    recd_control_experiment_t *x = &c->experiments[0];
    strcpy(x->id, "exp1");
    strcpy(x->salt, "s1");
    x->enabled = *(int *)data;
    x->n_arms = 2;
    x->arms[0] = (recd_control_arm_t){"control", 3, 9000};
    x->arms[1] = (recd_control_arm_t){"canary", 4, 1000};
    memset(x->slots + 9000, 1, 1000);
    return RECD_OK;
}

static unsigned roles_of(const recd_catalog_t *c, uint64_t version)
{
    size_t n;
    const recd_catalog_version_t *v = recd_catalog_versions(c, "demo", 4, &n);
    for (size_t i = 0; i < n; ++i)
        if (v[i].version == version)
            return v[i].roles | 0x100u; /* present */
    return 0;
}

static void test_catalog_pins_arms_and_standby_are_loaded(void **state)
{
    fixture_t *fx = *state;
    char err[512];
    int enabled = 1;
    for (int i = 0; i < 5; ++i)
        publish(fx, "demo", 3, 0);
    assert_int_equal(recd_control_update(fx->dir, "demo", set_full_control, &enabled, NULL, err, sizeof(err)), RECD_OK);
    recd_catalog_loader_t *l = create(fx);
    recd_catalog_t *c = recd_catalog_loader_current(l);
    assert_int_equal(roles_of(c, 1), 0x100u | RECD_CATALOG_PINNED);
    assert_int_equal(roles_of(c, 2), 0x100u | RECD_CATALOG_STANDBY);
    assert_int_equal(roles_of(c, 3), 0x100u | RECD_CATALOG_ACTIVE | RECD_CATALOG_ARM);
    assert_int_equal(roles_of(c, 4), 0x100u | RECD_CATALOG_ARM);
    assert_int_equal(roles_of(c, 5), 0); /* newer, but nothing names it */
    assert_non_null(recd_catalog_version(c, "demo", 4, 4));
    assert_string_equal(recd_catalog_state_name(roles_of(c, 4)), "arm");
    assert_string_equal(recd_catalog_state_name(roles_of(c, 2)), "standby");
    size_t n;
    const recd_control_experiment_t *x = recd_catalog_experiments(c, "demo", 4, &n);
    assert_int_equal(n, 1);
    assert_string_equal(x->id, "exp1");
    assert_int_equal(x->slots[9500], 1);
    assert_int_equal(recd_catalog_control_generation(c, "demo", 4), 1);
    recd_model_t *v4 = recd_catalog_version(c, "demo", 4, 4);

    /* disabling the experiment drops its arm version 4 from the next snapshot; it lives while c holds it */
    enabled = 0;
    assert_int_equal(recd_control_update(fx->dir, "demo", set_full_control, &enabled, NULL, err, sizeof(err)), RECD_OK);
    size_t before = recd_model_live_count();
    assert_int_equal(recd_catalog_loader_poll(l), 1);
    recd_catalog_t *c2 = recd_catalog_loader_current(l);
    assert_int_equal(roles_of(c2, 4), 0);
    assert_int_equal(roles_of(c2, 3), 0x100u | RECD_CATALOG_ACTIVE);
    assert_true(recd_catalog_version(c2, "demo", 4, 3) == recd_catalog_version(c, "demo", 4, 3)); /* reused, not reopened */
    assert_int_equal(recd_model_live_count(), before);
    assert_int_equal(recd_model_n_items(v4), 3);
    recd_catalog_release(c);
    assert_int_equal(recd_model_live_count(), before - 1);
    recd_catalog_release(c2);
    recd_catalog_loader_free(l);
}

static void test_catalog_budget_refuses_extras_never_the_active(void **state)
{
    fixture_t *fx = *state;
    char err[1024], path[600];
    struct stat st;
    int enabled = 1;
    const char *models[] = {"demo"};
    for (int i = 0; i < 4; ++i)
        publish(fx, "demo", 3, 0);
    assert_int_equal(recd_control_update(fx->dir, "demo", set_full_control, &enabled, NULL, err, sizeof(err)), RECD_OK);
    assert_int_equal(recd_registry_artifact_path(fx->dir, "demo", 3, path, sizeof(path)), RECD_OK);
    assert_int_equal(stat(path, &st), 0);
    /* room for the active version and a little more, not for a second artifact */
    size_t budget = (size_t)st.st_size + (size_t)st.st_size / 2;
    recd_catalog_loader_t *l = recd_catalog_loader_create(fx->dir, models, 1, budget, &fx->log, fx->metrics, err, sizeof(err));
    assert_non_null(l);
    recd_catalog_t *c = recd_catalog_loader_current(l);
    assert_int_equal(active_version(l), 3);
    assert_int_equal(roles_of(c, 1), 0x100u | RECD_CATALOG_PINNED | RECD_CATALOG_FAILED);
    assert_null(recd_catalog_version(c, "demo", 4, 1));
    assert_string_equal(recd_catalog_state_name(roles_of(c, 1) & ~RECD_CATALOG_PINNED), "failed");
    recd_metric_t *refused = recd_metrics_counter(fx->metrics, "recd_model_refusals_total", "", "model=\"demo\",reason=\"budget\"");
    uint64_t count = recd_metric_value(refused);
    assert_true(count >= 2); /* the pin and the arm (and the standby) */
    /* a poll refuses the same versions again silently: counted once each */
    recd_catalog_loader_poll(l);
    assert_int_equal(recd_metric_value(refused), count);
    assert_true(count_in_file(fx->log_path, "\"reason\":\"budget\"") == (int)count);
    recd_catalog_release(c);
    recd_catalog_loader_free(l);
}

int test_catalog_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_catalog_newest_version_serves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_startup_skips_a_corrupt_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_startup_fails_without_a_loadable_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_rejected_version_not_retried_until_its_file_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_old_version_lives_until_its_last_snapshot_goes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_truncated_artifact_keeps_serving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_pins_arms_and_standby_are_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_budget_refuses_extras_never_the_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_control_file_chooses_the_active_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_control_naming_a_corrupt_version_at_startup_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_version_appearing_later_is_picked_up_by_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_watcher_thread_publishes_new_versions, setup, teardown),
    };
    return cmocka_run_group_tests_name("catalog", tests, NULL, NULL);
}
