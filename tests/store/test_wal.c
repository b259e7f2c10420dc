/* test_wal.c: the write-ahead log: ids and order across a reopen, a torn tail and a corrupt record cut off, the lock
 * against another process, the size limit, retirement deleting segments. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "base/error.h"
#include "store/wal.h"
#include "tests/support/fixtures.h"

#define BIG (UINT64_C(1) << 30)

typedef struct st_fixture_t {
    char dir[256];
} fixture_t;

/* Counts completions; the test waits for the ones it expects. */
typedef struct st_waiter_t {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int calls, errors;
    uint64_t first_ids[64];
} waiter_t;

typedef struct st_replayed_t {
    uint64_t ids[4096];
    char payloads[4096][32];
    size_t n;
} replayed_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (support_tmpdir_create(f->dir, sizeof(f->dir), "recd-wal") != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    support_remove_tree(f->dir);
    free(f);
    return 0;
}

static void waiter_init(waiter_t *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->done, NULL);
}

static void waiter_dispose(waiter_t *w)
{
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->lock);
}

static void on_appended(void *data, int err, uint64_t first_id)
{
    waiter_t *w = data;
    pthread_mutex_lock(&w->lock);
    if (err != 0)
        ++w->errors;
    if (w->calls < 64)
        w->first_ids[w->calls] = err == 0 ? first_id : 0;
    ++w->calls;
    pthread_cond_signal(&w->done);
    pthread_mutex_unlock(&w->lock);
}

/* Waits (bounded: the writer answers within milliseconds, 20 s is for a loaded sanitizer run) for calls answers. */
static void waiter_wait(waiter_t *w, int calls)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    pthread_mutex_lock(&w->lock);
    while (w->calls < calls)
        if (pthread_cond_timedwait(&w->done, &w->lock, &deadline) != 0)
            break;
    int got = w->calls;
    pthread_mutex_unlock(&w->lock);
    if (got < calls)
        fail_msg("only %d of %d appends were answered within 20 s", got, calls);
}

static void on_replayed(void *data, uint64_t id, const char *payload, size_t len)
{
    replayed_t *r = data;
    assert_true(r->n < 4096);
    assert_true(len < sizeof(r->payloads[0]));
    r->ids[r->n] = id;
    memcpy(r->payloads[r->n], payload, len);
    r->payloads[r->n][len] = '\0';
    ++r->n;
}

static recd_wal_t *open_ok(const char *dir, uint64_t max_bytes, char *warn, size_t warnlen)
{
    char err[512];
    recd_wal_t *w = recd_wal_open(dir, max_bytes, warn, warnlen, err, sizeof(err));
    if (w == NULL)
        fail_msg("recd_wal_open: %s", err);
    return w;
}

/* Appends records "<prefix>-<i>" for i in [from, to) as one batch and waits for its answer. Returns its first id. */
static uint64_t append_range(recd_wal_t *w, const char *prefix, int from, int to)
{
    struct iovec iov[256];
    char bufs[256][32];
    waiter_t wt;

    assert_true(to - from <= 256);
    for (int i = from; i < to; ++i) {
        int n = snprintf(bufs[i - from], sizeof(bufs[0]), "%s-%d", prefix, i);
        iov[i - from] = (struct iovec){bufs[i - from], (size_t)n};
    }
    waiter_init(&wt);
    assert_int_equal(recd_wal_append(w, iov, (size_t)(to - from), on_appended, &wt), 0);
    waiter_wait(&wt, 1);
    assert_int_equal(wt.errors, 0);
    uint64_t first = wt.first_ids[0];
    waiter_dispose(&wt);
    return first;
}

/* The only segment file of dir. */
static void only_segment(const char *dir, char *out, size_t outlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "wal-", 4) == 0) {
            snprintf(out, outlen, "%s/%s", dir, e->d_name);
            ++n;
        }
    }
    closedir(d);
    assert_int_equal(n, 1);
}

static void test_wal_ids_order_and_replay_after_reopen(void **state)
{
    fixture_t *f = *state;
    replayed_t *r = calloc(1, sizeof(*r));
    recd_wal_stats_t st;
    char warn[512];

    recd_wal_t *w = open_ok(f->dir, BIG, warn, sizeof(warn));
    assert_string_equal(warn, "");
    assert_int_equal(append_range(w, "a", 0, 3), 1);
    assert_int_equal(append_range(w, "b", 0, 2), 4);
    /* many batches at once: one round, one fdatasync, ids in the order the calls returned */
    waiter_t wt;
    waiter_init(&wt);
    char bufs[20][16];
    for (int i = 0; i < 20; ++i) {
        struct iovec iov = {bufs[i], (size_t)snprintf(bufs[i], sizeof(bufs[i]), "c-%d", i)};
        assert_int_equal(recd_wal_append(w, &iov, 1, on_appended, &wt), 0);
    }
    waiter_wait(&wt, 20);
    for (int i = 0; i < 20; ++i)
        assert_int_equal(wt.first_ids[i], 6 + i);
    waiter_dispose(&wt);
    recd_wal_retire(w, 2);
    recd_wal_retire(w, 2); /* twice is once */
    recd_wal_retire(w, 999);
    recd_wal_stats(w, &st);
    assert_int_equal(st.live_records, 24);
    assert_int_equal(st.appended_records, 25);
    assert_int_equal(st.retired_records, 1);
    assert_true(st.oldest_live_ms > 0);

    char *payload;
    size_t len;
    assert_int_equal(recd_wal_read(w, 4, &payload, &len), 0);
    assert_string_equal(payload, "b-0");
    free(payload);
    assert_int_equal(recd_wal_read(w, 2, &payload, &len), RECD_ENOTFOUND);
    recd_wal_close(w);

    /* retirement is not persisted: every record comes back, in id order, with its id; new ids continue after them */
    w = open_ok(f->dir, BIG, warn, sizeof(warn));
    assert_string_equal(warn, "");
    recd_wal_stats(w, &st);
    assert_int_equal(st.recovered_records, 25);
    assert_int_equal(recd_wal_replay(w, on_replayed, r), 25);
    assert_int_equal(r->n, 25);
    for (size_t i = 0; i < 25; ++i)
        assert_int_equal(r->ids[i], i + 1);
    assert_string_equal(r->payloads[0], "a-0");
    assert_string_equal(r->payloads[2], "a-2");
    assert_string_equal(r->payloads[4], "b-1");
    assert_string_equal(r->payloads[24], "c-19");
    assert_int_equal(append_range(w, "d", 0, 1), 26);
    /* retired records are not replayed */
    for (uint64_t id = 1; id <= 20; ++id)
        recd_wal_retire(w, id);
    r->n = 0;
    assert_int_equal(recd_wal_replay(w, on_replayed, r), 6);
    assert_int_equal(r->ids[0], 21);
    assert_string_equal(r->payloads[5], "d-0");
    recd_wal_close(w);
    free(r);
}

/* A crash in the middle of a write leaves a partial last record: it is cut off, the ones before it are kept. */
static void test_wal_torn_tail_is_cut(void **state)
{
    fixture_t *f = *state;
    replayed_t *r = calloc(1, sizeof(*r));
    char warn[512], seg[512];
    struct stat st_file;
    recd_wal_stats_t st;

    recd_wal_t *w = open_ok(f->dir, BIG, NULL, 0);
    append_range(w, "t", 0, 5);
    recd_wal_close(w);
    only_segment(f->dir, seg, sizeof(seg));
    assert_int_equal(stat(seg, &st_file), 0);
    assert_int_equal(truncate(seg, st_file.st_size - 3), 0); /* 3 bytes of the last payload missing */

    w = open_ok(f->dir, BIG, warn, sizeof(warn));
    assert_non_null(strstr(warn, "a torn record"));
    recd_wal_stats(w, &st);
    assert_int_equal(st.recovered_records, 4);
    assert_int_equal(st.cut_bytes, 24 + 3 - 3);
    assert_int_equal(recd_wal_replay(w, on_replayed, r), 4);
    assert_string_equal(r->payloads[3], "t-3");
    /* the log goes on from the cut: the next record takes the lost one's id and reads back after another reopen */
    assert_int_equal(append_range(w, "u", 0, 1), 5);
    recd_wal_close(w);
    w = open_ok(f->dir, BIG, warn, sizeof(warn));
    assert_string_equal(warn, "");
    r->n = 0;
    assert_int_equal(recd_wal_replay(w, on_replayed, r), 5);
    assert_int_equal(r->ids[4], 5);
    assert_string_equal(r->payloads[4], "u-0");
    recd_wal_close(w);

    /* a header cut short too */
    only_segment(f->dir, seg, sizeof(seg));
    assert_int_equal(stat(seg, &st_file), 0);
    assert_int_equal(truncate(seg, st_file.st_size - 3 - 24 + 10), 0);
    w = open_ok(f->dir, BIG, warn, sizeof(warn));
    assert_non_null(strstr(warn, "a torn record header"));
    recd_wal_stats(w, &st);
    assert_int_equal(st.recovered_records, 4);
    recd_wal_close(w);
    free(r);
}

/* One flipped byte fails its record's CRC: that record and what follows it in the segment are cut, earlier ones kept. */
static void test_wal_corrupt_record_is_cut(void **state)
{
    fixture_t *f = *state;
    replayed_t *r = calloc(1, sizeof(*r));
    char warn[512], seg[512];
    recd_wal_stats_t st;

    recd_wal_t *w = open_ok(f->dir, BIG, NULL, 0);
    append_range(w, "k", 0, 6); /* "k-0".."k-5": 24 + 3 bytes each */
    recd_wal_close(w);
    only_segment(f->dir, seg, sizeof(seg));
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    char c;
    off_t at = 2 * 27 + 24 + 2; /* the digit of "k-2" */
    assert_int_equal(pread(fd, &c, 1, at), 1);
    assert_int_equal(c, '2');
    c = '7';
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);

    w = open_ok(f->dir, BIG, warn, sizeof(warn));
    assert_non_null(strstr(warn, "CRC-32C does not match"));
    recd_wal_stats(w, &st);
    assert_int_equal(st.recovered_records, 2);
    assert_int_equal(st.cut_bytes, 4 * 27);
    assert_int_equal(recd_wal_replay(w, on_replayed, r), 2);
    assert_string_equal(r->payloads[0], "k-0");
    assert_string_equal(r->payloads[1], "k-1");
    recd_wal_close(w);
    free(r);
}

/* A second opener, in another process or this one, is refused with the holder's pid; after close the lock is free. */
static void test_wal_lock_keeps_a_second_process_out(void **state)
{
    fixture_t *f = *state;
    char err[512], want[64];
    int ready[2], release[2];

    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(release), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char e[512], b;
        /* never outlive a failed test: without the write end of release, its read ends when the test process goes */
        close(release[1]);
        alarm(60);
        recd_wal_t *w = recd_wal_open(f->dir, BIG, NULL, 0, e, sizeof(e));
        b = w != NULL ? 'y' : 'n';
        if (write(ready[1], &b, 1) != 1 || read(release[0], &b, 1) < 0)
            _exit(2);
        recd_wal_close(w);
        _exit(w != NULL ? 0 : 1);
    }
    close(release[0]);
    char b = 0;
    assert_int_equal(read(ready[0], &b, 1), 1);
    assert_int_equal(b, 'y');
    assert_null(recd_wal_open(f->dir, BIG, NULL, 0, err, sizeof(err)));
    snprintf(want, sizeof(want), "(pid %d holds ", (int)child);
    assert_non_null(strstr(err, "is in use by another process"));
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, f->dir));
    assert_int_equal(write(release[1], "x", 1), 1);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);
    close(ready[1]);
    close(release[1]);

    recd_wal_t *w = open_ok(f->dir, BIG, NULL, 0);
    assert_null(recd_wal_open(f->dir, BIG, NULL, 0, err, sizeof(err))); /* a second open in the same process too */
    assert_non_null(strstr(err, "is in use by another process"));
    recd_wal_close(w);
}

/* The size limit refuses with RECD_EBUSY, never half a batch; retiring frees the room again. */
static void test_wal_full_refuses_until_retired(void **state)
{
    fixture_t *f = *state;
    recd_wal_stats_t st;
    char record[200];
    struct iovec iov = {record, sizeof(record)};
    waiter_t wt;
    int accepted = 0;

    memset(record, 'x', sizeof(record));
    recd_wal_t *w = open_ok(f->dir, 16384, NULL, 0); /* segments of 4096 bytes */
    waiter_init(&wt);
    for (int i = 0; i < 1000; ++i) {
        int rc = recd_wal_append(w, &iov, 1, on_appended, &wt);
        if (rc == RECD_EBUSY)
            break;
        assert_int_equal(rc, 0);
        ++accepted;
        waiter_wait(&wt, accepted);
    }
    assert_int_equal(wt.errors, 0);
    assert_int_equal(accepted, 16384 / (24 + 200)); /* 73 records of 224 bytes fit, the 74th would pass the limit */
    recd_wal_stats(w, &st);
    assert_true(st.bytes <= 16384);
    assert_int_equal(st.live_records, accepted);
    assert_true(st.segments >= 4);
    struct iovec two[2] = {iov, iov};
    assert_int_equal(recd_wal_append(w, two, 2, on_appended, &wt), RECD_EBUSY);
    assert_int_equal(recd_wal_append(w, &iov, 0, on_appended, &wt), RECD_EINVAL);
    char huge[20000];
    struct iovec big = {huge, sizeof(huge)};
    assert_int_equal(recd_wal_append(w, &big, 1, on_appended, &wt), RECD_EINVAL); /* could never fit */

    /* retire everything: older segments go at once, the newest once the next append rolls over */
    for (uint64_t id = 1; id <= (uint64_t)accepted; ++id)
        recd_wal_retire(w, id);
    recd_wal_stats(w, &st);
    assert_int_equal(st.live_records, 0);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.oldest_live_ms, 0);
    assert_int_equal(recd_wal_append(w, &iov, 1, on_appended, &wt), 0);
    waiter_wait(&wt, accepted + 1);
    recd_wal_stats(w, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.bytes, 224);
    assert_int_equal(wt.errors, 0);
    waiter_dispose(&wt);
    recd_wal_close(w);

    /* what survives a reopen is only that last record */
    w = open_ok(f->dir, 16384, NULL, 0);
    recd_wal_stats(w, &st);
    assert_int_equal(st.recovered_records, 1);
    recd_wal_close(w);
}

int test_wal_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wal_ids_order_and_replay_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_corrupt_record_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_lock_keeps_a_second_process_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_full_refuses_until_retired, setup, teardown),
    };
    return cmocka_run_group_tests_name("wal", tests, NULL, NULL);
}
