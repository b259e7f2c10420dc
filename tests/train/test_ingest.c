/* test_ingest.c: ingestion readers — every defect counted by reason, samples, formats, detection, gzip, reject rate. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <jansson.h>
#include "train/ingest.h"
#include "train/ingest_internal.h"
#include "base/text.h"

typedef struct st_run_t {
    recd_interactions_t x;
    recd_ingest_report_t rep;
    char err[256];
    int ret;
} run_t;

static void data_path(char *buf, size_t len, const char *name)
{
    const char *src = getenv("RECD_SOURCE_DIR");
    snprintf(buf, len, "%s/tests/data/%s", src != NULL ? src : RECD_TEST_SOURCE_DIR, name);
}

static void run_path(run_t *r, const char *path, const recd_ingest_options_t *o)
{
    recd_ingest_options_t def;
    if (o == NULL) {
        recd_ingest_options_init(&def);
        o = &def;
    }
    recd_interactions_init(&r->x);
    r->err[0] = '\0';
    r->ret = recd_ingest_file(path, o, &r->x, &r->rep, r->err, sizeof(r->err));
}

static void run_file(run_t *r, const char *name, const recd_ingest_options_t *o)
{
    char path[1024];
    data_path(path, sizeof(path), name);
    run_path(r, path, o);
}

static void run_buffer(run_t *r, const char *text, const char *name, const recd_ingest_options_t *o)
{
    recd_ingest_options_t def;
    if (o == NULL) {
        recd_ingest_options_init(&def);
        o = &def;
    }
    recd_interactions_init(&r->x);
    r->err[0] = '\0';
    r->ret = ingest_buffer(text, strlen(text), name, o, &r->x, &r->rep, r->err, sizeof(r->err));
}

static void run_done(run_t *r)
{
    recd_interactions_dispose(&r->x);
    recd_ingest_report_dispose(&r->rep);
}

/* counts in enum order: missing_user missing_item bad_value value_range bad_timestamp bad_utf8 column_count malformed
 * unknown_event */
static void assert_counts(const recd_ingest_report_t *rep, uint64_t read, uint64_t accepted, const uint64_t *per_reason)
{
    for (int i = 0; i < RECD_REJECT__COUNT; i++) {
        if (rep->rejected[i] != per_reason[i])
            print_error("reason %s: got %llu, want %llu\n", recd_reject_name((recd_reject_t)i),
                        (unsigned long long)rep->rejected[i], (unsigned long long)per_reason[i]);
        assert_int_equal(rep->rejected[i], per_reason[i]);
    }
    assert_int_equal(rep->rows_read, read);
    assert_int_equal(rep->rows_accepted, accepted);
    assert_int_equal(rep->rows_rejected, read - accepted);
}

static void assert_row(const recd_interactions_t *x, size_t i, const char *user, const char *item, float value, int64_t ts)
{
    assert_true(i < x->n);
    assert_string_equal(recd_idmap_id(x->users, x->user[i]), user);
    assert_string_equal(recd_idmap_id(x->items, x->item[i]), item);
    assert_float_equal(x->value[i], value, 1e-6);
    assert_int_equal(x->ts[i], ts);
}

static void assert_sample(const recd_ingest_report_t *rep, size_t i, uint64_t line, recd_reject_t reason)
{
    assert_true(i < rep->n_samples);
    if (rep->samples[i].line != line || rep->samples[i].reason != reason)
        print_error("sample %zu: line %llu %s, want line %llu %s\n", i, (unsigned long long)rep->samples[i].line,
                    recd_reject_name(rep->samples[i].reason), (unsigned long long)line, recd_reject_name(reason));
    assert_int_equal(rep->samples[i].line, line);
    assert_int_equal(rep->samples[i].reason, reason);
}

/* ---- the same good rows in every format ------------------------------------------------------------------------------ */

static void test_ingest_good_every_format(void **state)
{
    static const struct {
        const char *file;
        recd_format_t format;
    } files[] = {
        {"ingest_good.csv", RECD_FORMAT_CSV},     {"ingest_good.tsv", RECD_FORMAT_TSV},
        {"ingest_good.jsonl", RECD_FORMAT_JSONL}, {"ingest_good.json", RECD_FORMAT_JSON},
        {"ingest_good.xml", RECD_FORMAT_XML},     {"ingest_good_events.jsonl", RECD_FORMAT_EVENTS},
    };
    static const uint64_t none[RECD_REJECT__COUNT];
    for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
        run_t r;
        run_file(&r, files[k].file, NULL);
        if (r.ret != RECD_OK || r.rep.rows_accepted != 4)
            print_error("%s: %s\n", files[k].file, r.err);
        assert_int_equal(r.ret, RECD_OK);
        assert_int_equal(r.rep.format, files[k].format);
        assert_counts(&r.rep, 4, 4, none);
        assert_row(&r.x, 0, "alice", "item-1", 5, 1609459200);
        assert_row(&r.x, 1, "bob", "item, two", 3.5f, 1609459200);
        assert_row(&r.x, 2, "carol", "item-3", 1, 881250949);
        assert_row(&r.x, 3, "dave \xc3\xa9", "item-1", 2, 0);
        assert_int_equal(recd_idmap_size(r.x.items), 3);
        run_done(&r);
    }
}

/* ---- CSV with every defect ---------------------------------------------------------------------------------------- */

static void defects_options(recd_ingest_options_t *o)
{
    recd_ingest_options_init(o);
    o->min_value = 0;
    o->max_value = 5;
    o->max_samples = 20;
}

static void test_ingest_csv_defects(void **state)
{
    recd_ingest_options_t o;
    run_t r;
    defects_options(&o);
    run_file(&r, "ingest_defects.csv", &o);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_CSV);
    static const uint64_t want[RECD_REJECT__COUNT] = {1, 1, 3, 2, 2, 1, 2, 1, 0};
    assert_counts(&r.rep, 17, 4, want);
    static const struct {
        uint64_t line;
        recd_reject_t reason;
    } samples[] = {
        {3, RECD_REJECT_MISSING_USER},  {4, RECD_REJECT_MISSING_ITEM},   {5, RECD_REJECT_BAD_VALUE},
        {6, RECD_REJECT_BAD_VALUE},     {7, RECD_REJECT_BAD_VALUE},      {8, RECD_REJECT_VALUE_RANGE},
        {9, RECD_REJECT_BAD_TIMESTAMP}, {10, RECD_REJECT_BAD_TIMESTAMP}, {11, RECD_REJECT_BAD_UTF8},
        {12, RECD_REJECT_COLUMN_COUNT}, {13, RECD_REJECT_COLUMN_COUNT},  {18, RECD_REJECT_VALUE_RANGE},
        {19, RECD_REJECT_MALFORMED},
    };
    assert_int_equal(r.rep.n_samples, sizeof(samples) / sizeof(samples[0]));
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        assert_sample(&r.rep, i, samples[i].line, samples[i].reason);
    assert_string_equal(r.rep.samples[2].text, "u3,i3,abc,881250949");
    assert_string_equal(r.rep.samples[8].text, "u?9,i9,4,881250949"); /* the invalid byte is replaced in the report */

    assert_int_equal(r.x.n, 4);
    assert_row(&r.x, 0, "u1", "i1", 4, 881250949);
    assert_row(&r.x, 1, "u12", "i,12", 5, 1614834367);
    assert_row(&r.x, 2, "u13", "i13", 2.5f, 1609459200); /* milliseconds */
    assert_row(&r.x, 3, "u14", "i14 \"quoted\"", 1, 881250949);

    /* the report as JSON */
    char *js = recd_ingest_report_json(&r.rep);
    json_t *doc = json_loads(js, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "format")), "csv");
    assert_int_equal(json_integer_value(json_object_get(doc, "rows_rejected")), 13);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "rejected"), "bad_value")), 3);
    json_t *s0 = json_array_get(json_object_get(doc, "samples"), 0);
    assert_int_equal(json_integer_value(json_object_get(s0, "line")), 3);
    assert_string_equal(json_string_value(json_object_get(s0, "reason")), "missing_user");
    json_decref(doc);
    free(js);
    run_done(&r);
}

static void test_ingest_samples_limit(void **state)
{
    recd_ingest_options_t o;
    run_t r;
    defects_options(&o);
    o.max_samples = 2;
    run_file(&r, "ingest_defects.csv", &o);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.rows_rejected, 13);
    assert_int_equal(r.rep.n_samples, 2);
    assert_sample(&r.rep, 1, 4, RECD_REJECT_MISSING_ITEM);
    run_done(&r);
}

static void test_ingest_reject_rate(void **state)
{
    recd_ingest_options_t o;
    run_t r;
    defects_options(&o);
    o.max_reject_rate = 0.10;
    run_file(&r, "ingest_defects.csv", &o);
    assert_int_equal(r.ret, RECD_EINVAL);
    assert_string_equal(r.err, "13 of 17 rows rejected (76.5%) exceeds --max-reject-rate 0.10");
    run_done(&r);

    o.max_reject_rate = 13.0 / 17.0; /* exactly at the limit passes */
    run_file(&r, "ingest_defects.csv", &o);
    assert_int_equal(r.ret, RECD_OK);
    run_done(&r);

    o.max_reject_rate = 1.5;
    run_file(&r, "ingest_defects.csv", &o);
    assert_int_equal(r.ret, RECD_EINVAL);
    assert_string_equal(r.err, "--max-reject-rate must be in [0, 1]");
    run_done(&r);

    o.max_reject_rate = 0.75;
    run_file(&r, "ingest_defects.csv", &o);
    assert_int_equal(r.ret, RECD_EINVAL);
    assert_string_equal(r.err, "13 of 17 rows rejected (76.5%) exceeds --max-reject-rate 0.75");
    run_done(&r);
}

static void test_ingest_bom_crlf_semicolon(void **state)
{
    run_t r;
    run_file(&r, "ingest_bom_crlf.csv", NULL);
    assert_int_equal(r.ret, RECD_OK);
    static const uint64_t none[RECD_REJECT__COUNT];
    assert_counts(&r.rep, 3, 3, none);
    assert_row(&r.x, 0, "1", "10", 4.5f, 1112486027);
    assert_row(&r.x, 1, "1", "20;b", 3, 1112479200); /* +02:00 offset */
    assert_row(&r.x, 2, "2", "10", 5, 1112486027);
    assert_int_equal(recd_idmap_size(r.x.users), 2);
    assert_int_equal(recd_idmap_size(r.x.items), 2);
    run_done(&r);
}

static void test_ingest_udata(void **state)
{
    recd_ingest_options_t o;
    run_t r;
    static const uint64_t none[RECD_REJECT__COUNT];
    run_file(&r, "ingest_u.data", NULL); /* by content: tab-separated, no header */
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_TSV);
    assert_counts(&r.rep, 3, 3, none);
    assert_row(&r.x, 0, "7", "31", 4, 880000001);
    assert_row(&r.x, 2, "3", "77", 1, 879999999);
    run_done(&r);

    recd_ingest_options_init(&o);
    o.format = RECD_FORMAT_UDATA;
    o.user_col = "1"; /* by position: swap users and items */
    o.item_col = "0";
    run_file(&r, "ingest_u.data", &o);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_UDATA);
    assert_row(&r.x, 1, "5", "12", 2, 880000100);
    run_done(&r);

    run_buffer(&r, "1\t2\t3\t4\n", "ml-100k/u.data", NULL);
    assert_int_equal(r.rep.format, RECD_FORMAT_UDATA);
    assert_row(&r.x, 0, "1", "2", 3, 4);
    run_done(&r);
}

static void test_ingest_delimiters(void **state)
{
    run_t r;
    static const uint64_t none[RECD_REJECT__COUNT];
    run_file(&r, "ingest_semicolon.txt", NULL); /* no header, two columns */
    assert_int_equal(r.ret, RECD_OK);
    assert_counts(&r.rep, 4, 4, none);
    assert_row(&r.x, 3, "3", "12", 1, 0);
    run_done(&r);

    run_file(&r, "ingest_pipe.txt", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_counts(&r.rep, 2, 2, none);
    assert_row(&r.x, 1, "bob", "pear", 2, 0);
    run_done(&r);

    /* a comma inside a tab-separated text column does not fool the detection */
    run_buffer(&r, "1\t2\t3\t9\tgreat, movie\n4\t5\t1\t9\tok\n6\t7\t2\t9\ta, b, c\n", "x.txt", NULL);
    assert_int_equal(r.rep.format, RECD_FORMAT_TSV);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.rows_accepted, 3);
    run_done(&r);
}

static void test_ingest_columns_by_name(void **state)
{
    recd_ingest_options_t o;
    run_t r;
    recd_ingest_options_init(&o);
    o.user_col = "item"; /* names are matched against the header */
    o.item_col = "USER";
    run_file(&r, "ingest_pipe.txt", &o);
    assert_int_equal(r.ret, RECD_OK);
    assert_row(&r.x, 0, "apple", "alice", 1, 0);
    run_done(&r);

    o.user_col = "customer";
    run_file(&r, "ingest_pipe.txt", &o);
    assert_int_equal(r.ret, RECD_EINVAL);
    assert_string_equal(r.err, "--user-col customer: no such column in the header (user, item, value)");
    run_done(&r);

    recd_ingest_options_init(&o);
    o.value_col = "7";
    run_file(&r, "ingest_pipe.txt", &o);
    assert_int_equal(r.ret, RECD_EINVAL);
    assert_string_equal(r.err, "--value-col 7: the first row has only 3 columns");
    run_done(&r);

    /* a known header without a value column: values are 1, the time column is found by name */
    run_buffer(&r, "item,user,ts\nx,y,1700000000\n", "f.csv", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_row(&r.x, 0, "y", "x", 1, 1700000000);
    run_done(&r);

    /* some known names but no user column: an error that says how to fix it */
    run_buffer(&r, "a,b,rating\nx,y,2\n", "f.csv", NULL);
    assert_int_equal(r.ret, RECD_EINVAL);
    assert_string_equal(r.err, "no user column in the header (a, b, rating); name it with --user-col");
    run_done(&r);

    /* JSON fields by name */
    recd_ingest_options_init(&o);
    o.value_col = "score";
    o.time_col = "when";
    run_buffer(&r, "{\"user\":\"a\",\"item\":\"b\",\"rating\":9,\"Score\":0.25,\"when\":\"2000-01-01\"}\n", "f.jsonl", &o);
    assert_int_equal(r.ret, RECD_OK);
    assert_row(&r.x, 0, "a", "b", 0.25f, 946684800);
    run_done(&r);

    /* no delimiter at all */
    run_buffer(&r, "12345\n678\n", "f.csv", NULL);
    assert_int_equal(r.ret, RECD_EINVAL);
    assert_string_equal(r.err,
                        "the first row has 1 column: expected user and item columns separated by comma, tab, semicolon or pipe");
    run_done(&r);

    /* header whose names are not known: positions */
    run_buffer(&r, "a,b,c\nx,y,2\n", "f.csv", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.rows_read, 1);
    assert_row(&r.x, 0, "x", "y", 2, 0);
    run_done(&r);
}

static void test_ingest_long_line(void **state)
{
    size_t big = 3u << 20;
    char *text = malloc(big + 64);
    strcpy(text, "user,item\n");
    memset(text + 10, 'x', big);
    strcpy(text + 10 + big, ",y\nb,c\n");
    run_t r;
    run_buffer(&r, text, "f.csv", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.rejected[RECD_REJECT_MALFORMED], 1);
    assert_sample(&r.rep, 0, 2, RECD_REJECT_MALFORMED);
    assert_int_equal(r.rep.rows_accepted, 1);
    assert_row(&r.x, 0, "b", "c", 1, 0);
    run_done(&r);
    free(text);
}

/* ---- JSON ---------------------------------------------------------------------------------------------------------- */

static void test_ingest_jsonl_defects(void **state)
{
    recd_ingest_options_t o;
    run_t r;
    defects_options(&o);
    run_file(&r, "ingest_defects.jsonl", &o);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_JSONL);
    static const uint64_t want[RECD_REJECT__COUNT] = {1, 1, 3, 1, 1, 2, 0, 2, 0};
    assert_counts(&r.rep, 14, 3, want);
    static const struct {
        uint64_t line;
        recd_reject_t reason;
    } samples[] = {
        {3, RECD_REJECT_MISSING_USER}, {4, RECD_REJECT_MISSING_ITEM},  {5, RECD_REJECT_BAD_VALUE},    {6, RECD_REJECT_BAD_VALUE},
        {7, RECD_REJECT_BAD_VALUE},    {8, RECD_REJECT_BAD_TIMESTAMP}, {9, RECD_REJECT_BAD_UTF8},     {10, RECD_REJECT_MALFORMED},
        {12, RECD_REJECT_MALFORMED},   {14, RECD_REJECT_BAD_UTF8},     {15, RECD_REJECT_VALUE_RANGE},
    };
    assert_int_equal(r.rep.n_samples, sizeof(samples) / sizeof(samples[0]));
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        assert_sample(&r.rep, i, samples[i].line, samples[i].reason);
    assert_row(&r.x, 0, "u1", "i1", 4, 881250949);
    assert_row(&r.x, 1, "7", "i2", 3.5f, 1609455600); /* integer id, numeric string, +01:00 */
    assert_row(&r.x, 2, "u12", "i12", 1, 1609459200);
    run_done(&r);
}

static void test_ingest_events(void **state)
{
    recd_ingest_options_t o;
    run_t r;
    run_file(&r, "ingest_events.jsonl", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_EVENTS);
    static const uint64_t want[RECD_REJECT__COUNT] = {0, 0, 1, 0, 0, 0, 0, 0, 2};
    assert_counts(&r.rep, 7, 4, want);
    assert_sample(&r.rep, 0, 4, RECD_REJECT_BAD_VALUE);
    assert_sample(&r.rep, 1, 5, RECD_REJECT_UNKNOWN_EVENT);
    assert_sample(&r.rep, 2, 6, RECD_REJECT_UNKNOWN_EVENT);
    assert_row(&r.x, 0, "u1", "i1", 1, 1700000000);
    assert_row(&r.x, 1, "u1", "i2", 5, 1700000000);
    assert_row(&r.x, 2, "u2", "i1", 4.5f, 0);
    assert_row(&r.x, 3, "u4", "i4", 2, 0);
    run_done(&r);

    recd_ingest_options_init(&o);
    o.event_weights_json = "{\"view\": 0.5, \"teleport\": 7, \"rating\": \"value\"}"; /* replaces the default table */
    run_file(&r, "ingest_events.jsonl", &o);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.rejected[RECD_REJECT_UNKNOWN_EVENT], 3); /* purchase, no type, click */
    assert_int_equal(r.rep.rows_accepted, 3);
    assert_row(&r.x, 0, "u1", "i1", 0.5f, 1700000000);
    assert_row(&r.x, 2, "u3", "i1", 7, 0);
    run_done(&r);

    /* a line exactly as recd's POST /v1/events writes it (api/codec.c), without a .jsonl name */
    run_buffer(&r,
               "{\"v\":1,\"received_at\":1700000001.25,\"user\":\"u1\",\"item\":\"i9\",\"type\":\"add_to_cart\","
               "\"ts\":1700000000.5,\"request_id\":\"r-1\"}\n",
               "data/events.log", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_EVENTS);
    assert_row(&r.x, 0, "u1", "i9", 3, 1700000000);
    run_done(&r);

    o.event_weights_json = "{\"view\": \"lots\"}";
    run_file(&r, "ingest_events.jsonl", &o);
    assert_int_equal(r.ret, RECD_EINVAL);
    assert_string_equal(r.err, "event weights: \"view\" must be a number or \"value\"");
    run_done(&r);
}

static void test_ingest_json_array(void **state)
{
    run_t r;
    run_file(&r, "ingest_defects.json", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_JSON);
    static const uint64_t want[RECD_REJECT__COUNT] = {0, 0, 1, 0, 0, 0, 0, 2, 0};
    assert_counts(&r.rep, 6, 3, want);
    assert_sample(&r.rep, 0, 6, RECD_REJECT_MALFORMED); /* 42 */
    assert_sample(&r.rep, 1, 7, RECD_REJECT_MALFORMED); /* "user": , */
    assert_sample(&r.rep, 2, 8, RECD_REJECT_BAD_VALUE);
    assert_row(&r.x, 0, "u1", "i1", 5, 881250949);
    assert_row(&r.x, 1, "u2", "it}em,[\"x", 2, 0);
    assert_row(&r.x, 2, "u5", "i5", 3, 0);
    run_done(&r);

    /* an object whose first member is the array of records, spread over lines */
    run_buffer(&r,
               "{\n  \"ratings\\\"\" : [\n    {\"user\": \"a\", \"item\": \"b\", \"rating\": 4},\n"
               "    {\"user\": \"c\", \"item\": \"d\"}\n  ],\n  \"meta\": {\"n\": 2}\n}\n",
               "wrapped.json", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_JSON);
    static const uint64_t none[RECD_REJECT__COUNT];
    assert_counts(&r.rep, 2, 2, none);
    assert_row(&r.x, 0, "a", "b", 4, 0);
    assert_row(&r.x, 1, "c", "d", 1, 0);
    run_done(&r);

    run_buffer(&r, "{\"n\": 3}", "e.json", NULL); /* one JSON line without ids: JSON lines, rejected, not an error */
    assert_int_equal(r.rep.format, RECD_FORMAT_JSONL);
    assert_int_equal(r.rep.rejected[RECD_REJECT_MISSING_USER], 1);
    run_done(&r);

    recd_ingest_options_t o;
    recd_ingest_options_init(&o);
    o.format = RECD_FORMAT_JSON;
    run_buffer(&r, "{\"n\": 3}", "e.json", &o);
    assert_int_equal(r.ret, RECD_EFORMAT);
    assert_string_equal(r.err, "e.json: not a JSON array of records, nor an object whose first member is one (line 1)");
    run_done(&r);

    run_buffer(&r, "  [ ]  ", "e.json", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.rows_read, 0);
    run_done(&r);

    run_buffer(&r, "[{\"user\":\"a\",\"item\":\"b\"}] trailing", "e.json", NULL);
    assert_int_equal(r.rep.rows_accepted, 1);
    assert_int_equal(r.rep.rejected[RECD_REJECT_MALFORMED], 1);
    run_done(&r);

    run_buffer(&r, "[{\"user\":\"a\",\"item\":\"b\"}, {\"user\":\"c\", \"item", "e.json", NULL); /* truncated */
    assert_int_equal(r.rep.rows_accepted, 1);
    assert_int_equal(r.rep.rejected[RECD_REJECT_MALFORMED], 1);
    run_done(&r);
}

/* ---- XML ----------------------------------------------------------------------------------------------------------- */

static void test_ingest_xml(void **state)
{
    recd_ingest_options_t o;
    run_t r;
    defects_options(&o);
    run_file(&r, "ingest_records.xml", &o);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_XML);
    static const uint64_t want[RECD_REJECT__COUNT] = {1, 1, 1, 1, 1, 0, 0, 0, 0};
    assert_counts(&r.rep, 8, 3, want);
    assert_sample(&r.rep, 0, 10, RECD_REJECT_MISSING_USER);
    assert_sample(&r.rep, 1, 11, RECD_REJECT_MISSING_ITEM);
    assert_sample(&r.rep, 2, 12, RECD_REJECT_BAD_VALUE);
    assert_sample(&r.rep, 3, 13, RECD_REJECT_VALUE_RANGE);
    assert_sample(&r.rep, 4, 14, RECD_REJECT_BAD_TIMESTAMP);
    assert_string_equal(r.rep.samples[2].text, "<rating user=\"u5\" item=\"i5\" value=\"abc\">");
    assert_row(&r.x, 0, "u1", "i1", 4, 881250949);
    assert_row(&r.x, 1, "u2", "i2", 2.5f, 1577934245); /* child elements */
    assert_row(&r.x, 2, "u8", "i8", 1, 0);
    run_done(&r);
}

static void test_ingest_xml_malformed(void **state)
{
    run_t r;
    run_file(&r, "ingest_malformed.xml", NULL);
    assert_int_equal(r.ret, RECD_OK);
    static const uint64_t want[RECD_REJECT__COUNT] = {0, 0, 0, 0, 0, 0, 0, 1, 0};
    assert_counts(&r.rep, 5, 4, want); /* the broken record alone is lost */
    assert_sample(&r.rep, 0, 4, RECD_REJECT_MALFORMED);
    assert_string_equal(r.rep.samples[0].text, "<rating user=\"u3\" item=\"i3\" value=3/>");
    assert_row(&r.x, 1, "u2", "i2", 3, 0);
    assert_row(&r.x, 2, "u4", "i4", 2, 0);
    assert_row(&r.x, 3, "u5", "i5", 1, 0);
    run_done(&r);

    /* namespaces declared on the root and the declared encoding apply to every record */
    run_buffer(&r,
               "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<d:log xmlns:d=\"urn:x\"><!-- c --><d:e d:user=\"\xe9\" "
               "item=\"x\"/>\n<d:e><user>b</user><![CDATA[ ignored ]]><item><![CDATA[<y>]]></item></d:e></d:log>",
               "n.xml", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.rows_accepted, 2);
    assert_row(&r.x, 0, "\xc3\xa9", "x", 1, 0);
    assert_row(&r.x, 1, "b", "<y>", 1, 0);
    run_done(&r);

    /* a record cut off by the end of input */
    run_buffer(&r, "<r><e user=\"a\" item=\"b\"/><e user=\"c\"><item>d", "t.xml", NULL);
    assert_int_equal(r.rep.rows_accepted, 1);
    assert_int_equal(r.rep.rejected[RECD_REJECT_MALFORMED], 1);
    assert_sample(&r.rep, 0, 1, RECD_REJECT_MALFORMED);
    run_done(&r);

    run_buffer(&r, "<!DOCTYPE r [<!ENTITY a \"aaaa\">]><r><e user=\"&a;\" item=\"x\"/></r>", "d.xml", NULL);
    assert_int_equal(r.ret, RECD_EFORMAT);
    run_done(&r);
}

/* ---- detection, gzip ------------------------------------------------------------------------------------------------ */

static void test_ingest_detect_by_content(void **state)
{
    run_t r;
    run_file(&r, "ingest_jsonl_lies.csv", NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_JSONL);
    assert_int_equal(r.rep.rows_accepted, 2);
    assert_row(&r.x, 1, "b", "y", 1, 0);
    run_done(&r);

    run_file(&r, "ingest_array_lies.jsonl", NULL);
    assert_int_equal(r.rep.format, RECD_FORMAT_JSON);
    assert_row(&r.x, 0, "a", "x", 2, 0);
    run_done(&r);

    run_file(&r, "ingest_xml_lies.txt", NULL);
    assert_int_equal(r.rep.format, RECD_FORMAT_XML);
    assert_row(&r.x, 0, "a", "x", 1, 0);
    run_done(&r);

    {
        static const char utf16[] = "\xff\xfeu\0,\0i\0\n\0";
        recd_ingest_options_t o;
        recd_ingest_options_init(&o);
        recd_interactions_init(&r.x);
        r.ret = ingest_buffer(utf16, sizeof(utf16) - 1, "w.csv", &o, &r.x, &r.rep, r.err, sizeof(r.err));
        assert_int_equal(r.ret, RECD_EFORMAT);
        assert_non_null(strstr(r.err, "UTF-16 input is not supported"));
        run_done(&r);
    }

    run_buffer(&r, "user,item\nq,w\n", "data.json", NULL); /* the extension says JSON, the content is CSV */
    assert_int_equal(r.rep.format, RECD_FORMAT_CSV);
    assert_row(&r.x, 0, "q", "w", 1, 0);
    run_done(&r);
}

static void gzip_copy(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    gzFile out = gzopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(gzwrite(out, buf, (unsigned)n), (int)n);
    fclose(in);
    assert_int_equal(gzclose(out), Z_OK);
}

static void test_ingest_gzip(void **state)
{
    static const char *const names[] = {"ingest_defects.csv", "ingest_defects.jsonl", "ingest_defects.json", "ingest_records.xml",
                                        "ingest_events.jsonl"};
    char tmpl[] = "/tmp/recd-ingest-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        recd_ingest_options_t o;
        run_t plain, gz;
        char src[1024], dst[1100], bare[1100];
        defects_options(&o);
        data_path(src, sizeof(src), names[k]);
        snprintf(dst, sizeof(dst), "%s/%s.gz", tmpl, names[k]);
        snprintf(bare, sizeof(bare), "%s/noext%zu", tmpl, k); /* no extension: magic bytes and content decide */
        gzip_copy(src, dst);
        gzip_copy(src, bare);
        run_file(&plain, names[k], &o);
        run_path(&gz, dst, &o);
        assert_int_equal(gz.ret, RECD_OK);
        assert_int_equal(gz.rep.format, plain.rep.format);
        assert_int_equal(gz.rep.rows_read, plain.rep.rows_read);
        assert_int_equal(gz.rep.rows_accepted, plain.rep.rows_accepted);
        assert_memory_equal(gz.rep.rejected, plain.rep.rejected, sizeof(plain.rep.rejected));
        assert_int_equal(gz.x.n, plain.x.n);
        run_done(&gz);
        run_path(&gz, bare, &o);
        assert_int_equal(gz.ret, RECD_OK);
        assert_int_equal(gz.rep.rows_accepted, plain.rep.rows_accepted);
        assert_memory_equal(gz.rep.rejected, plain.rep.rejected, sizeof(plain.rep.rejected));
        run_done(&gz);
        run_done(&plain);

        /* a truncated gzip file is an I/O error, not a short read */
        FILE *f = fopen(dst, "r+b");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        assert_int_equal(truncate(dst, size - 12), 0);
        run_path(&gz, dst, &o);
        assert_int_equal(gz.ret, RECD_EIO);
        assert_non_null(strstr(gz.err, "truncated"));
        run_done(&gz);
        unlink(dst);
        unlink(bare);
    }
    rmdir(tmpl);

    /* "-" reads standard input (gzip or not), the format from the content */
    char src[1024];
    data_path(src, sizeof(src), "ingest_events.jsonl");
    int saved = dup(STDIN_FILENO), fd = open(src, O_RDONLY);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, STDIN_FILENO), STDIN_FILENO);
    close(fd);
    run_t r;
    run_path(&r, "-", NULL);
    assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
    close(saved);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_EVENTS);
    assert_int_equal(r.rep.rows_accepted, 4);
    run_done(&r);

    run_path(&r, "/nonexistent/recd/file.csv", NULL);
    assert_int_equal(r.ret, RECD_EIO);
    assert_non_null(strstr(r.err, "cannot open /nonexistent/recd/file.csv"));
    recd_interactions_dispose(&r.x);
}

/* ---- parsers -------------------------------------------------------------------------------------------------------- */

static void test_ingest_timestamps(void **state)
{
    static const struct {
        const char *text;
        int ok;
        int64_t want;
    } cases[] = {
        {"881250949", 1, 881250949},
        {" 881250949 ", 1, 881250949},
        {"1609459200000", 1, 1609459200},
        {"1609459200.5", 1, 1609459200},
        {"0", 1, 0},
        {"-86400", 1, -86400},
        {"1970-01-02", 1, 86400},
        {"2000-02-29T12:00:00Z", 1, 951825600},
        {"2000-02-29 12:00", 1, 951825600},
        {"2000-02-29T12:00:00.250Z", 1, 951825600},
        {"2000-02-29T14:00:00+02:00", 1, 951825600},
        {"2000-02-29T10:30:00-0130", 1, 951825600},
        {"1900-02-29", 0, 0},
        {"2001-02-29", 0, 0},
        {"2000-13-01", 0, 0},
        {"2000-01-01T24:00:00", 0, 0},
        {"2000-01-01T12:00:00Q", 0, 0},
        {"2000-01-01Z", 0, 0},
        {"1e9", 0, 0},
        {"inf", 0, 0},
        {"", 0, 0},
        {"99999999999999999999", 0, 0},
        {"notatime", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ts = -1;
        int rc = ingest_parse_timestamp(cases[i].text, strlen(cases[i].text), &ts);
        if ((rc == 0) != cases[i].ok)
            print_error("timestamp \"%s\": rc %d\n", cases[i].text, rc);
        assert_int_equal(rc == 0, cases[i].ok);
        if (cases[i].ok)
            assert_int_equal(ts, cases[i].want);
    }
}

static void test_ingest_utf8(void **state)
{
    assert_true(recd_utf8_valid("abc", 3));
    assert_true(recd_utf8_valid("\xc3\xa9t\xc3\xa9", 5));
    assert_true(recd_utf8_valid("\xf0\x9f\x8e\xac", 4));
    assert_false(recd_utf8_valid("\xc0\x80", 2));         /* overlong */
    assert_false(recd_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(recd_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(recd_utf8_valid("\xe2\x82", 2));         /* cut short */
    assert_false(recd_utf8_valid("a\0b", 3));
    assert_false(recd_utf8_valid("\xff", 1));
}

static void test_ingest_movielens(void **state)
{
    const char *dir = getenv("RECD_DATA_DIR");
    char path[1024];
    if (dir != NULL)
        snprintf(path, sizeof(path), "%s/ml-100k/u.data", dir);
    else
        snprintf(path, sizeof(path), "%s/../shared/data/ml-100k/u.data",
                 getenv("RECD_SOURCE_DIR") ? getenv("RECD_SOURCE_DIR") : RECD_TEST_SOURCE_DIR);
    if (access(path, R_OK) != 0) {
        print_message("skipping: %s is absent\n", path);
        skip();
    }
    run_t r;
    run_path(&r, path, NULL);
    assert_int_equal(r.ret, RECD_OK);
    assert_int_equal(r.rep.format, RECD_FORMAT_UDATA);
    assert_int_equal(r.rep.rows_read, 100000);
    assert_int_equal(r.rep.rows_accepted, 100000);
    assert_int_equal(recd_idmap_size(r.x.users), 943);
    assert_int_equal(recd_idmap_size(r.x.items), 1682);
    assert_row(&r.x, 0, "196", "242", 3, 881250949);
    run_done(&r);
}

int test_ingest_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_good_every_format),
        cmocka_unit_test(test_ingest_csv_defects),
        cmocka_unit_test(test_ingest_samples_limit),
        cmocka_unit_test(test_ingest_reject_rate),
        cmocka_unit_test(test_ingest_bom_crlf_semicolon),
        cmocka_unit_test(test_ingest_udata),
        cmocka_unit_test(test_ingest_delimiters),
        cmocka_unit_test(test_ingest_columns_by_name),
        cmocka_unit_test(test_ingest_long_line),
        cmocka_unit_test(test_ingest_jsonl_defects),
        cmocka_unit_test(test_ingest_events),
        cmocka_unit_test(test_ingest_json_array),
        cmocka_unit_test(test_ingest_xml),
        cmocka_unit_test(test_ingest_xml_malformed),
        cmocka_unit_test(test_ingest_detect_by_content),
        cmocka_unit_test(test_ingest_gzip),
        cmocka_unit_test(test_ingest_timestamps),
        cmocka_unit_test(test_ingest_utf8),
        cmocka_unit_test(test_ingest_movielens),
    };
    return cmocka_run_group_tests_name("ingest", tests, NULL, NULL);
}
