/* test_file_sink.c: the file event sink's writer thread: whole lines in order, group commit, a bounded queue, disk full. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "base/error.h"
#include "store/file_sink.h"
#include "tests/support/fixtures.h"

/* ---- answers: what the sink said about each batch, recorded on its thread, checked on the test's ---------------------- */

typedef struct st_collector_t {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char path[512];          /* the event file, whose size each answer records */
    recd_event_sink_t *sink; /* set before the first append */
    size_t n_answered;
    int gate_closed; /* a held answer waits while set: the writer thread is stuck in its callback */
    int held;        /* a held answer has started */
} collector_t;

typedef struct st_ticket_t {
    collector_t *c;
    int hold; /* wait for the gate before returning from the callback */
    int answered;
    int err;
    off_t size_at_answer;
    uint64_t fsyncs_at_answer;
    size_t len;
    char *buf; /* the batch, kept to check the file against */
} ticket_t;

static void collector_init(collector_t *c, const char *dir)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    snprintf(c->path, sizeof(c->path), "%s/events.jsonl", dir);
}

static void collector_dispose(collector_t *c)
{
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}

static void on_answer(void *data, int err)
{
    ticket_t *t = data;
    collector_t *c = t->c;
    struct stat st;
    recd_file_sink_stats_t stats;
    off_t size = stat(c->path, &st) == 0 ? st.st_size : -1;

    recd_file_sink_stats(c->sink, &stats);
    pthread_mutex_lock(&c->lock);
    t->err = err;
    t->size_at_answer = size;
    t->fsyncs_at_answer = stats.fsyncs;
    t->answered = 1;
    ++c->n_answered;
    if (t->hold) {
        c->held = 1;
        pthread_cond_broadcast(&c->cond);
        while (c->gate_closed)
            pthread_cond_wait(&c->cond, &c->lock);
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void wait_answers(collector_t *c, size_t n)
{
    pthread_mutex_lock(&c->lock);
    while (c->n_answered < n)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

static void wait_held(collector_t *c)
{
    pthread_mutex_lock(&c->lock);
    while (!c->held)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

static void open_gate(collector_t *c)
{
    pthread_mutex_lock(&c->lock);
    c->gate_closed = 0;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Fills t with a batch of n_lines lines of about line_bytes bytes each, every line carrying the unique id "<tag>-<l>". */
static void make_batch(ticket_t *t, collector_t *c, const char *tag, int n_lines, size_t line_bytes)
{
    size_t cap = (size_t)n_lines * (line_bytes + 64) + 1, len = 0;
    memset(t, 0, sizeof(*t));
    t->c = c;
    t->buf = malloc(cap);
    for (int l = 0; l < n_lines; ++l) {
        int head = snprintf(t->buf + len, cap - len, "{\"id\":\"%s-%d\",\"pad\":\"", tag, l);
        size_t pad = line_bytes > (size_t)head + 3 ? line_bytes - (size_t)head - 3 : 1;
        len += (size_t)head;
        memset(t->buf + len, 'a' + (char)(l % 26), pad);
        len += pad;
        len += (size_t)snprintf(t->buf + len, cap - len, "\"}\n");
    }
    t->len = len;
}

/* Appends t's batch with on_answer as its callback; returns what append returned. */
static int append(recd_event_sink_t *s, ticket_t *t)
{
    return recd_event_sink_append(s, t->buf, t->len, on_answer, t);
}

/* ---- reading the file back ------------------------------------------------------------------------------------------- */

typedef struct st_lines_t {
    char **ids; /* the "id" of every line, in file order */
    size_t n;
    int torn; /* a line that does not parse, or a last line without '\n' */
} lines_t;

static void read_lines(const char *path, lines_t *out)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    memset(out, 0, sizeof(*out));
    assert_non_null(fp);
    while ((n = getline(&line, &cap, fp)) > 0) {
        json_error_t jerr;
        json_t *j = line[n - 1] == '\n' ? json_loadb(line, (size_t)n - 1, 0, &jerr) : NULL;
        const char *id = json_string_value(json_object_get(j, "id"));
        if (id == NULL) {
            out->torn = 1;
        } else {
            out->ids = realloc(out->ids, sizeof(*out->ids) * (out->n + 1));
            out->ids[out->n++] = strdup(id);
        }
        json_decref(j);
    }
    free(line);
    fclose(fp);
}

static void lines_dispose(lines_t *l)
{
    for (size_t i = 0; i < l->n; ++i)
        free(l->ids[i]);
    free(l->ids);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids of the lines in the batches answered 0, in ticket order. */
static void expected_lines(ticket_t *const *tickets, size_t n, lines_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; ++i) {
        if (tickets[i]->err != 0)
            continue;
        for (const char *p = tickets[i]->buf; p < tickets[i]->buf + tickets[i]->len; p = strchr(p, '\n') + 1) {
            const char *q = p + strlen("{\"id\":\""), *e = strchr(q, '"');
            out->ids = realloc(out->ids, sizeof(*out->ids) * (out->n + 1));
            out->ids[out->n++] = strndup(q, (size_t)(e - q));
        }
    }
}

/* The file holds exactly the lines of the batches answered 0, each whole, none twice, and nothing else. */
static void assert_file_holds_exactly(const char *path, ticket_t *const *tickets, size_t n)
{
    lines_t got, want;
    read_lines(path, &got);
    expected_lines(tickets, n, &want);
    assert_false(got.torn);
    assert_int_equal(got.n, want.n);
    qsort(got.ids, got.n, sizeof(*got.ids), cmp_str);
    qsort(want.ids, want.n, sizeof(*want.ids), cmp_str);
    for (size_t i = 0; i < got.n; ++i)
        assert_string_equal(got.ids[i], want.ids[i]);
    lines_dispose(&got);
    lines_dispose(&want);
}

static void free_tickets(ticket_t *t, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        free(t[i].buf);
}

/* Frees the sink (writing and answering what it still holds); teardown does it when a test failed before. */
static void close_sink(collector_t *c)
{
    recd_event_sink_free(c->sink);
    c->sink = NULL;
}

/* ---- fixtures -------------------------------------------------------------------------------------------------------- */

typedef struct st_fixture_t {
    char dir[256];
    collector_t c;
    struct rlimit fsize; /* restored by teardown, in case a disk-full test failed half-way */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (support_tmpdir_create(f->dir, sizeof(f->dir), "recd-sink") != 0 || getrlimit(RLIMIT_FSIZE, &f->fsize) != 0)
        return -1;
    collector_init(&f->c, f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char mnt[300];
    snprintf(mnt, sizeof(mnt), "%s/mnt", f->dir);
    setrlimit(RLIMIT_FSIZE, &f->fsize);
    support_tmpfs_unmount(mnt); /* fails harmlessly when nothing is mounted there */
    open_gate(&f->c);
    close_sink(&f->c);
    collector_dispose(&f->c);
    support_remove_tree(f->dir);
    free(f);
    return 0;
}

static recd_event_sink_t *open_sink(collector_t *c, int fsync, size_t max_queue_bytes)
{
    char err[256] = "";
    recd_event_sink_t *s = recd_file_sink_open(c->path, fsync, max_queue_bytes, err, sizeof(err));
    if (s == NULL)
        fprintf(stderr, "open: %s\n", err);
    assert_non_null(s);
    c->sink = s;
    return s;
}

/* ---- concurrent appenders -------------------------------------------------------------------------------------------- */

enum { N_APPENDERS = 6, BATCHES_PER_APPENDER = 200 };

typedef struct st_appender_t {
    recd_event_sink_t *sink;
    collector_t *c;
    int id;
    ticket_t tickets[BATCHES_PER_APPENDER];
    int refused; /* appends answered other than 0 */
} appender_t;

static void *run_appender(void *arg)
{
    appender_t *a = arg;
    char tag[32];
    for (int b = 0; b < BATCHES_PER_APPENDER; ++b) {
        snprintf(tag, sizeof(tag), "t%d-%04d", a->id, b);
        /* 1..4 lines of 40..1000 bytes: batches of very different sizes, some larger than a pipe buffer */
        make_batch(&a->tickets[b], a->c, tag, 1 + (a->id + b) % 4, 40 + (size_t)((a->id * 131 + b * 197) % 960));
        if (append(a->sink, &a->tickets[b]) != 0)
            ++a->refused;
    }
    return NULL;
}

/* Every line of every thread parses back whole, and each thread's lines come in the order it appended them. */
static void test_file_sink_concurrent_appenders_whole_lines_in_order(void **state)
{
    fixture_t *f = *state;
    recd_event_sink_t *s = open_sink(&f->c, 0, (size_t)64 << 20);
    static appender_t appenders[N_APPENDERS];
    pthread_t tids[N_APPENDERS];

    for (int i = 0; i < N_APPENDERS; ++i) {
        appenders[i] = (appender_t){.sink = s, .c = &f->c, .id = i};
        assert_int_equal(pthread_create(&tids[i], NULL, run_appender, &appenders[i]), 0);
    }
    for (int i = 0; i < N_APPENDERS; ++i)
        pthread_join(tids[i], NULL);
    wait_answers(&f->c, N_APPENDERS * BATCHES_PER_APPENDER);
    close_sink(&f->c);

    lines_t got;
    read_lines(f->c.path, &got);
    assert_false(got.torn);
    size_t want = 0;
    char last[N_APPENDERS][32] = {{0}};
    for (int i = 0; i < N_APPENDERS; ++i) {
        assert_int_equal(appenders[i].refused, 0);
        for (int b = 0; b < BATCHES_PER_APPENDER; ++b) {
            assert_true(appenders[i].tickets[b].answered);
            assert_int_equal(appenders[i].tickets[b].err, 0);
            want += (size_t)(1 + (i + b) % 4);
        }
    }
    assert_int_equal(got.n, want);
    for (size_t k = 0; k < got.n; ++k) {
        int t = got.ids[k][1] - '0';
        assert_true(t >= 0 && t < N_APPENDERS);
        /* "t<i>-<batch>-<line>" sorts the way that thread appended it */
        assert_true(strcmp(last[t], got.ids[k]) < 0);
        snprintf(last[t], sizeof(last[t]), "%s", got.ids[k]);
    }
    lines_dispose(&got);
    for (int i = 0; i < N_APPENDERS; ++i)
        free_tickets(appenders[i].tickets, BATCHES_PER_APPENDER);
}

/* ---- group commit ---------------------------------------------------------------------------------------------------- */

/* With fsync on, a batch is answered only once the data and one fdatasync covering it are done, and batches queued
 * while the writer was busy share one fdatasync. */
static void test_file_sink_fsync_answers_after_sync_and_groups_commits(void **state)
{
    enum { N = 50 };
    fixture_t *f = *state;
    recd_event_sink_t *s = open_sink(&f->c, 1, (size_t)1 << 20);
    recd_metrics_t *metrics = recd_metrics_create(1);
    ticket_t first, rest[N];
    off_t total;
    recd_file_sink_stats_t st;

    int rc[N];
    size_t accepted = 0;

    recd_file_sink_use_metrics(s, metrics);
    make_batch(&first, &f->c, "first", 2, 100);
    first.hold = 1;
    f->c.gate_closed = 1;
    assert_int_equal(append(s, &first), 0);
    wait_held(&f->c); /* the writer is now stuck in first's callback: everything below queues up */
    total = (off_t)first.len;
    for (int i = 0; i < N; ++i) { /* no assertion while the writer is held: a failure must not leave it stuck */
        char tag[16];
        snprintf(tag, sizeof(tag), "r%02d", i);
        make_batch(&rest[i], &f->c, tag, 1, 80);
        accepted += (rc[i] = append(s, &rest[i])) == 0;
        total += (off_t)rest[i].len;
    }
    open_gate(&f->c);
    wait_answers(&f->c, 1 + accepted);
    for (int i = 0; i < N; ++i)
        assert_int_equal(rc[i], 0);

    assert_int_equal(first.err, 0);
    assert_true(first.size_at_answer >= (off_t)first.len);
    assert_int_equal(first.fsyncs_at_answer, 1);
    for (int i = 0; i < N; ++i) {
        assert_int_equal(rest[i].err, 0);
        /* the whole round was written and synced before any of it was answered */
        assert_int_equal(rest[i].size_at_answer, total);
        assert_int_equal(rest[i].fsyncs_at_answer, 2);
    }
    recd_file_sink_stats(s, &st);
    assert_int_equal(st.batches_written, N + 1);
    assert_int_equal(st.fsyncs, 2);
    assert_true(st.fsyncs < st.batches_written);
    close_sink(&f->c);
    /* the same counts in the metrics registry, and nothing left queued */
    size_t len;
    char *text = recd_metrics_render(metrics, &len);
    assert_non_null(strstr(text, "recd_event_sink_batches_total{result=\"written\"} 51\n"));
    assert_non_null(strstr(text, "recd_event_sink_batches_total{result=\"failed\"} 0\n"));
    assert_non_null(strstr(text, "recd_event_sink_fsyncs_total 2\n"));
    assert_non_null(strstr(text, "recd_event_sink_queue_bytes 0\n"));
    free(text);
    recd_metrics_free(metrics);

    ticket_t *all[N + 1] = {&first};
    for (int i = 0; i < N; ++i)
        all[i + 1] = &rest[i];
    assert_file_holds_exactly(f->c.path, all, N + 1);
    free_tickets(&first, 1);
    free_tickets(rest, N);
}

/* ---- bounded queue --------------------------------------------------------------------------------------------------- */

static void test_file_sink_full_queue_answers_busy(void **state)
{
    enum { QUEUE = 1000, FIT = 10 };
    fixture_t *f = *state;
    recd_event_sink_t *s = open_sink(&f->c, 0, QUEUE);
    ticket_t first, queued[FIT], refused, huge, later;

    int rc[FIT], rc_refused, rc_huge;
    size_t accepted = 0;

    make_batch(&first, &f->c, "first", 1, 100);
    first.hold = 1;
    f->c.gate_closed = 1;
    assert_int_equal(append(s, &first), 0);
    wait_held(&f->c);               /* the writer is stuck in first's callback, so nothing leaves the queue */
    for (int i = 0; i < FIT; ++i) { /* no assertion while the writer is held: a failure must not leave it stuck */
        char tag[16];
        snprintf(tag, sizeof(tag), "q%d", i);
        make_batch(&queued[i], &f->c, tag, 1, QUEUE / FIT);
        accepted += (rc[i] = append(s, &queued[i])) == 0;
    }
    make_batch(&refused, &f->c, "refused", 1, 10);
    accepted += (rc_refused = append(s, &refused)) == 0;
    make_batch(&huge, &f->c, "huge", 1, QUEUE + 1);
    accepted += (rc_huge = append(s, &huge)) == 0;
    open_gate(&f->c);
    wait_answers(&f->c, 1 + accepted);
    for (int i = 0; i < FIT; ++i) {
        assert_int_equal(queued[i].len, QUEUE / FIT);
        assert_int_equal(rc[i], 0);
    }
    assert_int_equal(rc_refused, RECD_EBUSY);
    assert_int_equal(rc_huge, RECD_EBUSY);

    /* the queue drained: there is room again */
    make_batch(&later, &f->c, "later", 1, 100);
    assert_int_equal(append(s, &later), 0);
    wait_answers(&f->c, 1 + FIT + 1);
    close_sink(&f->c);
    assert_false(refused.answered);
    assert_false(huge.answered);

    ticket_t *all[FIT + 2] = {&first, &later};
    for (int i = 0; i < FIT; ++i)
        all[i + 2] = &queued[i];
    assert_file_holds_exactly(f->c.path, all, FIT + 2);
    free_tickets(&first, 1);
    free_tickets(queued, FIT);
    free_tickets(&refused, 1);
    free_tickets(&huge, 1);
    free_tickets(&later, 1);
}

/* free() writes what is still queued and answers every batch before it returns. */
static void test_file_sink_free_flushes_and_answers(void **state)
{
    enum { N = 200 };
    fixture_t *f = *state;
    recd_event_sink_t *s = open_sink(&f->c, 1, (size_t)1 << 20);
    ticket_t t[N], *all[N];

    for (int i = 0; i < N; ++i) {
        char tag[16];
        snprintf(tag, sizeof(tag), "f%03d", i);
        make_batch(&t[i], &f->c, tag, 1, 60);
        assert_int_equal(append(s, &t[i]), 0);
        all[i] = &t[i];
    }
    close_sink(&f->c);
    assert_int_equal(f->c.n_answered, N);
    for (int i = 0; i < N; ++i)
        assert_int_equal(t[i].err, 0);
    assert_file_holds_exactly(f->c.path, all, N);
    free_tickets(t, N);
}

/* A last line cut short by a crash is removed on open, so the next batch does not glue onto it. */
static void test_file_sink_open_cuts_unfinished_line(void **state)
{
    fixture_t *f = *state;
    FILE *fp = fopen(f->c.path, "w");
    fputs("{\"id\":\"old-0\"}\n{\"id\":\"torn", fp);
    fclose(fp);
    recd_event_sink_t *s = open_sink(&f->c, 0, 4096);
    ticket_t t;
    make_batch(&t, &f->c, "new", 1, 50);
    assert_int_equal(append(s, &t), 0);
    close_sink(&f->c);
    assert_int_equal(t.err, 0);

    lines_t got;
    read_lines(f->c.path, &got);
    assert_false(got.torn);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.ids[0], "old-0");
    assert_string_equal(got.ids[1], "new-0");
    lines_dispose(&got);
    free_tickets(&t, 1);
}

/* ---- disk full ------------------------------------------------------------------------------------------------------- */

/* How a disk-full test takes space away and gives it back. */
typedef struct st_space_t {
    int (*take)(struct st_space_t *sp, const char *path); /* leaves roughly budget bytes for the file to grow */
    int (*give_back)(struct st_space_t *sp);
    size_t budget;
    struct rlimit saved;
    char mnt[300];
} space_t;

enum { SEQ = 60, CONC_THREADS = 4, CONC_BATCHES = 15, AFTER = 5 };

typedef struct st_full_appender_t {
    recd_event_sink_t *sink;
    collector_t *c;
    int id;
    ticket_t tickets[CONC_BATCHES];
    int refused;
} full_appender_t;

static void *run_full_appender(void *arg)
{
    full_appender_t *a = arg;
    for (int b = 0; b < CONC_BATCHES; ++b) {
        char tag[32];
        snprintf(tag, sizeof(tag), "c%d-%02d", a->id, b);
        make_batch(&a->tickets[b], a->c, tag, 1 + b % 3, 50 + (size_t)((a->id * 37 + b * 211) % 700));
        if (append(a->sink, &a->tickets[b]) != 0)
            ++a->refused;
    }
    return NULL;
}

/*
 * Runs batches into a disk that fills up, then gets its space back, and proves: (a) a batch answered with an error left
 * the file's length as it was, (b) every batch answered 0 parses back whole (and nothing else is in the file), (c) once
 * space is back, appends succeed and the file is clean.
 */
static void run_disk_full(fixture_t *f, const char *dir, space_t *sp, int fsync)
{
    static full_appender_t conc[CONC_THREADS];
    ticket_t seq[SEQ], before[3], after[AFTER];
    ticket_t *all[3 + SEQ + CONC_THREADS * CONC_BATCHES + AFTER];
    pthread_t tids[CONC_THREADS];
    size_t n_all = 0, answered = 0;
    off_t length = 0;
    int failed = 0, ok_after_full = 0, ok_after_failure = 0;
    struct stat st;

    snprintf(f->c.path, sizeof(f->c.path), "%s/events.jsonl", dir);
    recd_event_sink_t *s = open_sink(&f->c, fsync, (size_t)1 << 20);
    for (int i = 0; i < 3; ++i) {
        char tag[16];
        snprintf(tag, sizeof(tag), "b%d", i);
        make_batch(&before[i], &f->c, tag, 2, 70);
        assert_int_equal(append(s, &before[i]), 0);
        wait_answers(&f->c, ++answered);
        assert_int_equal(before[i].err, 0);
        length += (off_t)before[i].len;
        all[n_all++] = &before[i];
    }
    assert_int_equal(sp->take(sp, f->c.path), 0);

    /* one batch at a time, so each answer can be checked against the file's length right after it */
    static const size_t sizes[] = {700, 90, 1500, 60, 400, 1100, 45};
    for (int i = 0; i < SEQ; ++i) {
        char tag[16];
        snprintf(tag, sizeof(tag), "s%02d", i);
        make_batch(&seq[i], &f->c, tag, 1 + i % 2, sizes[i % 7]);
        assert_int_equal(append(s, &seq[i]), 0);
        wait_answers(&f->c, ++answered);
        if (seq[i].err != 0) {
            assert_int_equal(seq[i].size_at_answer, length); /* (a) */
            ++failed;
        } else {
            length += (off_t)seq[i].len;
            assert_int_equal(seq[i].size_at_answer, length);
            ok_after_full += 1;
            ok_after_failure += failed > 0;
        }
        all[n_all++] = &seq[i];
    }
    /* the disk did fill up, batches fitted before it did, and a smaller batch still fitted after a failed one */
    assert_true(failed > 0);
    assert_true(ok_after_full > 0);
    assert_true(ok_after_failure > 0);

    /* several threads at once against the full disk: answers arrive in rounds */
    for (int i = 0; i < CONC_THREADS; ++i) {
        conc[i] = (full_appender_t){.sink = s, .c = &f->c, .id = i};
        assert_int_equal(pthread_create(&tids[i], NULL, run_full_appender, &conc[i]), 0);
    }
    for (int i = 0; i < CONC_THREADS; ++i) {
        pthread_join(tids[i], NULL);
        assert_int_equal(conc[i].refused, 0);
        for (int b = 0; b < CONC_BATCHES; ++b)
            all[n_all++] = &conc[i].tickets[b];
    }
    answered += CONC_THREADS * CONC_BATCHES;
    wait_answers(&f->c, answered);

    assert_int_equal(sp->give_back(sp), 0);
    for (int i = 0; i < AFTER; ++i) {
        char tag[16];
        snprintf(tag, sizeof(tag), "a%d", i);
        make_batch(&after[i], &f->c, tag, 2, 900);
        assert_int_equal(append(s, &after[i]), 0);
        wait_answers(&f->c, ++answered);
        assert_int_equal(after[i].err, 0); /* (c) */
        all[n_all++] = &after[i];
    }
    recd_file_sink_stats_t stats;
    recd_file_sink_stats(s, &stats);
    close_sink(&f->c);
    uint64_t answered_error = 0;
    for (size_t i = 0; i < n_all; ++i)
        answered_error += all[i]->err != 0;
    assert_int_equal(stats.batches_failed, answered_error);

    /* (b) and (c): exactly the lines of the batches answered 0, each whole */
    assert_file_holds_exactly(f->c.path, all, n_all);
    off_t want = 0;
    for (size_t i = 0; i < n_all; ++i)
        want += all[i]->err == 0 ? (off_t)all[i]->len : 0;
    assert_int_equal(stat(f->c.path, &st), 0);
    assert_int_equal(st.st_size, want);

    free_tickets(before, 3);
    free_tickets(seq, SEQ);
    for (int i = 0; i < CONC_THREADS; ++i)
        free_tickets(conc[i].tickets, CONC_BATCHES);
    free_tickets(after, AFTER);
}

static int fsize_take(space_t *sp, const char *path)
{
    struct stat st;
    struct rlimit lim;
    if (stat(path, &st) != 0 || getrlimit(RLIMIT_FSIZE, &sp->saved) != 0)
        return -1;
    /* past the limit write(2) fails with EFBIG instead of raising SIGXFSZ; a write that crosses it is cut short */
    signal(SIGXFSZ, SIG_IGN);
    lim = (struct rlimit){(rlim_t)st.st_size + sp->budget, sp->saved.rlim_max};
    return setrlimit(RLIMIT_FSIZE, &lim);
}

static int fsize_give_back(space_t *sp)
{
    return setrlimit(RLIMIT_FSIZE, &sp->saved);
}

/* The file-size limit (RLIMIT_FSIZE) stands in for a full disk: works without privileges, in this process. */
static void test_file_sink_disk_full_file_size_limit(void **state)
{
    fixture_t *f = *state;
    space_t sp = {.take = fsize_take, .give_back = fsize_give_back, .budget = 6000};
    run_disk_full(f, f->dir, &sp, 0);
}

static int tmpfs_take(space_t *sp, const char *path)
{
    /* the file uses one page so far; four more pages are left */
    return support_tmpfs_resize(sp->mnt, "20k");
}

static int tmpfs_give_back(space_t *sp)
{
    return support_tmpfs_resize(sp->mnt, "1m");
}

/* A small tmpfs that really runs out of space (ENOSPC), with fsync on; skipped where mounting is not allowed. */
static void test_file_sink_disk_full_tmpfs(void **state)
{
    fixture_t *f = *state;
    space_t sp = {.take = tmpfs_take, .give_back = tmpfs_give_back};
    snprintf(sp.mnt, sizeof(sp.mnt), "%s/mnt", f->dir);
    if (support_tmpfs_mount(sp.mnt, "1m") != 0) {
        fprintf(stderr, "cannot mount a tmpfs (%s): the file-size limit test covers disk full\n", strerror(errno));
        skip();
    }
    run_disk_full(f, sp.mnt, &sp, 1);
    assert_int_equal(support_tmpfs_unmount(sp.mnt), 0);
}

int test_file_sink_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_sink_concurrent_appenders_whole_lines_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_sink_fsync_answers_after_sync_and_groups_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_sink_full_queue_answers_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_sink_free_flushes_and_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_sink_open_cuts_unfinished_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_sink_disk_full_file_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_sink_disk_full_tmpfs, setup, teardown),
    };
    return cmocka_run_group_tests_name("file_sink", tests, NULL, NULL);
}
