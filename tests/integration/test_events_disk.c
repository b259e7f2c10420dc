/* test_events_disk.c: POST /v1/events against a full disk: a 503 leaves no bytes behind, every 202 parses back whole. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tests/integration/harness.h"

#define MAX_POSTS 3000
#define WANT_REFUSALS 20

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Every line of path is a whole event object; returns how many there are, or -1 at the first torn line. */
static long count_whole_events(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long count = 0;

    if (fp == NULL)
        return -1;
    while ((n = getline(&line, &cap, fp)) > 0) {
        json_t *j = line[n - 1] == '\n' ? json_loadb(line, (size_t)n - 1, 0, NULL) : NULL;
        int whole = json_is_string(json_object_get(j, "user")) && json_is_string(json_object_get(j, "item"));
        json_decref(j);
        if (!whole) {
            count = -1;
            break;
        }
        ++count;
    }
    free(line);
    fclose(fp);
    return count;
}

/* POSTs a batch of n events; returns the status and adds the accepted count to *accepted. */
static int post_batch(int port, int seq, int n, long *accepted)
{
    char body[8192];
    size_t len = (size_t)snprintf(body, sizeof(body), "{\"events\":[");
    for (int e = 0; e < n; ++e)
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "%s{\"user\":\"disk-user-%d-%d-padding-padding-padding\",\"item\":\"i%d%d\",\"type\":\"click\"}",
                                e > 0 ? "," : "", seq, e, e % HARNESS_N_GROUPS, seq % HARNESS_ITEMS_PER_GROUP);
    snprintf(body + len, sizeof(body) - len, "]}");
    harness_response_t res;
    assert_int_equal(harness_post_json(port, "/v1/events", body, &res), 0);
    if (res.status == 202) {
        json_t *j = json_loads(res.body, 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(j, "accepted")), n);
        *accepted += n;
        json_decref(j);
    }
    int status = res.status;
    harness_response_free(&res);
    return status;
}

/* A recd whose event log is on a small tmpfs; teardown stops and unmounts even after a failed assertion. */
typedef struct st_disk_fixture_t {
    char root[256], mnt[300], events[320];
    harness_t h;
} disk_fixture_t;

static int setup(void **state)
{
    disk_fixture_t *f = calloc(1, sizeof(*f));
    f->h.pid = -1;
    *state = f;
    if (support_tmpdir_create(f->root, sizeof(f->root), "recd-disk") != 0)
        return -1;
    snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", f->root);
    snprintf(f->events, sizeof(f->events), "%s/events.jsonl", f->mnt);
    return 0;
}

static int teardown(void **state)
{
    disk_fixture_t *f = *state;
    if (f->h.pid > 0)
        harness_stop(&f->h);
    support_tmpfs_unmount(f->mnt); /* harmless when the test did not get to mount it */
    support_remove_tree(f->root);
    free(f);
    return 0;
}

static void test_events_disk_full_leaves_no_torn_line(void **state)
{
    disk_fixture_t *f = *state;
    harness_t *h = &f->h;
    const char *events = f->events;
    long accepted = 0;
    int refused = 0, accepted_after_refusal = 0;

    if (support_tmpfs_mount(f->mnt, "24k") != 0) {
        fprintf(stderr, "cannot mount a tmpfs (%s): tests/store covers disk full with a file-size limit\n", strerror(errno));
        skip();
    }
    const char *extra[] = {"--events-path", events, "--events-fsync", "true", NULL};
    assert_int_equal(harness_start(h, extra), 0);

    /* one client, one request at a time: each answer can be checked against the file right after it */
    for (int i = 0; i < MAX_POSTS && refused < WANT_REFUSALS; ++i) {
        off_t before = file_size(events) < 0 ? 0 : file_size(events);
        int status = post_batch(h->port, i, 1 + (i * 7) % 12, &accepted);
        off_t after = file_size(events) < 0 ? 0 : file_size(events);
        if (status == 503) {
            assert_int_equal(after, before); /* nothing of a refused batch stays */
            ++refused;
        } else {
            assert_int_equal(status, 202);
            assert_true(after > before);
            accepted_after_refusal += refused > 0;
        }
    }
    assert_int_equal(refused, WANT_REFUSALS);
    assert_true(accepted > 0);
    assert_true(accepted_after_refusal > 0); /* a smaller batch still fitted after a refused one */
    assert_int_equal(count_whole_events(events), accepted);
    /* the refusals are counted where an operator looks */
    harness_response_t res;
    char series[96];
    snprintf(series, sizeof(series), "recd_event_sink_batches_total{result=\"failed\"} %d\n", refused);
    assert_int_equal(harness_get(h->port, "/metrics", &res), 0);
    assert_non_null(strstr(res.body, series));
    harness_response_free(&res);

    /* space comes back: events are accepted again and the log is clean */
    assert_int_equal(support_tmpfs_resize(f->mnt, "1m"), 0);
    for (int i = 0; i < 5; ++i)
        assert_int_equal(post_batch(h->port, MAX_POSTS + i, 10, &accepted), 202);
    assert_int_equal(count_whole_events(events), accepted);

    assert_int_equal(harness_stop(h), 0);
}

int test_events_disk_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_disk_full_leaves_no_torn_line, setup, teardown),
    };
    return cmocka_run_group_tests_name("events_disk", tests, NULL, NULL);
}
