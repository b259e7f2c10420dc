/* ingest.c: the ingestion driver — byte reader, format detection, options, record validation, reject report. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <jansson.h>
#include "train/ingest_internal.h"
#include "base/text.h"
#include "models/event.h"
#include "base/alloc.h"

#define READ_CHUNK 65536
#define PEEK_BYTES 65536

/* ---- reader ------------------------------------------------------------------------------------------------------- */

int ingest_reader_open_file(ingest_reader_t *r, const char *path, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    errno = 0;
    if (strcmp(path, "-") == 0) {
        int fd = dup(STDIN_FILENO);
        if (fd < 0 || (r->gz = gzdopen(fd, "rb")) == NULL) {
            snprintf(err, errlen, "cannot read standard input: %s", errno != 0 ? strerror(errno) : "out of memory");
            if (fd >= 0)
                close(fd);
            return RECD_EIO;
        }
    } else if ((r->gz = gzopen(path, "rb")) == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, errno != 0 ? strerror(errno) : "out of memory");
        return RECD_EIO;
    }
    gzbuffer(r->gz, 128 * 1024);
    return RECD_OK;
}

void ingest_reader_open_mem(ingest_reader_t *r, const void *data, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->mem = data;
    r->mem_len = len;
}

void ingest_reader_close(ingest_reader_t *r)
{
    if (r->gz != NULL)
        gzclose(r->gz);
    free(r->buf);
    free(r->line);
    memset(r, 0, sizeof(*r));
}

int ingest_reader_fill(ingest_reader_t *r)
{
    if (r->error)
        return -1;
    if (r->eof)
        return 0;
    if (r->pos == r->end)
        r->pos = r->end = 0;
    if (r->end == r->cap) {
        if (r->pos > 0) {
            memmove(r->buf, r->buf + r->pos, r->end - r->pos);
            r->end -= r->pos;
            r->pos = 0;
        } else {
            r->cap = r->cap == 0 ? READ_CHUNK : r->cap * 2;
            r->buf = recd_xrealloc(r->buf, r->cap);
        }
    }
    size_t room = r->cap - r->end;
    if (room > INT_MAX)
        room = INT_MAX;
    size_t got;
    if (r->gz != NULL) {
        int n = gzread(r->gz, r->buf + r->end, (unsigned)room);
        if (n < 0) {
            int errnum;
            const char *msg = gzerror(r->gz, &errnum);
            snprintf(r->errmsg, sizeof(r->errmsg), "read error: %s", errnum == Z_ERRNO ? strerror(errno) : msg);
            r->error = 1;
            return -1;
        }
        if (n == 0) {
            int errnum;
            const char *msg = gzerror(r->gz, &errnum);
            if (errnum != Z_OK) { /* Z_BUF_ERROR: the gzip stream ended early */
                snprintf(r->errmsg, sizeof(r->errmsg), "read error: %s (truncated gzip file?)", msg);
                r->error = 1;
                return -1;
            }
        }
        got = (size_t)n;
    } else {
        got = r->mem_len - r->mem_pos;
        if (got > room)
            got = room;
        memcpy(r->buf + r->end, r->mem + r->mem_pos, got);
        r->mem_pos += got;
    }
    if (got == 0) {
        r->eof = 1;
        return 0;
    }
    r->end += got;
    return (int)got;
}

const char *ingest_reader_peek(ingest_reader_t *r, size_t want, size_t *avail)
{
    while (r->end - r->pos < want && ingest_reader_fill(r) > 0)
        ;
    *avail = r->end - r->pos;
    return r->buf != NULL ? r->buf + r->pos : "";
}

void ingest_reader_skip_bom(ingest_reader_t *r)
{
    size_t n;
    const char *p = ingest_reader_peek(r, 3, &n);
    if (n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        r->pos += 3;
}

static void line_append(ingest_reader_t *r, size_t *n, const char *p, size_t len)
{
    if (*n + len + 1 > r->line_cap) {
        size_t cap = r->line_cap == 0 ? 256 : r->line_cap;
        while (cap < *n + len + 1)
            cap *= 2;
        r->line = recd_xrealloc(r->line, cap);
        r->line_cap = cap;
    }
    memcpy(r->line + *n, p, len);
    *n += len;
}

int ingest_reader_getline(ingest_reader_t *r, size_t *len, int *too_long)
{
    size_t n = 0;
    int got = 0;
    *too_long = 0;
    for (;;) {
        if (r->pos == r->end) {
            int f = ingest_reader_fill(r);
            if (f < 0)
                return -1;
            if (f == 0)
                break;
        }
        got = 1;
        const char *start = r->buf + r->pos;
        size_t avail = r->end - r->pos;
        const char *nl = memchr(start, '\n', avail);
        size_t take = nl != NULL ? (size_t)(nl - start) : avail;
        size_t keep = take;
        if (n + keep > INGEST_MAX_RECORD) {
            keep = INGEST_MAX_RECORD - n;
            *too_long = 1;
        }
        line_append(r, &n, start, keep);
        r->pos += take + (nl != NULL);
        if (nl != NULL) {
            r->line_no++;
            break;
        }
    }
    if (!got)
        return 0;
    if (n > 0 && r->line[n - 1] == '\r' && !*too_long)
        n--;
    line_append(r, &n, "", 0);
    r->line[n] = '\0';
    *len = n;
    return 1;
}

/* ---- names, options, report --------------------------------------------------------------------------------------- */

static const char *const reject_names[RECD_REJECT__COUNT] = {
    "missing_user", "missing_item", "bad_value", "value_range",   "bad_timestamp",
    "bad_utf8",     "column_count", "malformed", "unknown_event",
};

const char *recd_reject_name(recd_reject_t r)
{
    return (unsigned)r < RECD_REJECT__COUNT ? reject_names[r] : "unknown";
}

static const char *const format_names[] = {"auto", "csv", "tsv", "udata", "jsonl", "json", "xml", "events"};

const char *recd_format_name(recd_format_t f)
{
    return (unsigned)f < sizeof(format_names) / sizeof(format_names[0]) ? format_names[f] : "unknown";
}

int recd_format_parse(const char *name, recd_format_t *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcasecmp(name, format_names[i]) == 0) {
            *out = (recd_format_t)i;
            return RECD_OK;
        }
    }
    if (strcasecmp(name, "ndjson") == 0) {
        *out = RECD_FORMAT_JSONL;
        return RECD_OK;
    }
    return RECD_EINVAL;
}

void recd_ingest_options_init(recd_ingest_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->format = RECD_FORMAT_AUTO;
    o->min_value = -INFINITY;
    o->max_value = INFINITY;
    o->max_reject_rate = 1;
    o->max_samples = 10;
}

void recd_ingest_report_dispose(recd_ingest_report_t *r)
{
    free(r->samples);
    memset(r, 0, sizeof(*r));
}

char *recd_ingest_report_json(const recd_ingest_report_t *r)
{
    json_t *o = json_object(), *rej = json_object(), *samples = json_array();
    json_object_set_new(o, "format", json_string(recd_format_name(r->format)));
    json_object_set_new(o, "rows_read", json_integer((json_int_t)r->rows_read));
    json_object_set_new(o, "rows_accepted", json_integer((json_int_t)r->rows_accepted));
    json_object_set_new(o, "rows_rejected", json_integer((json_int_t)r->rows_rejected));
    for (int i = 0; i < RECD_REJECT__COUNT; i++)
        json_object_set_new(rej, reject_names[i], json_integer((json_int_t)r->rejected[i]));
    json_object_set_new(o, "rejected", rej);
    for (size_t i = 0; i < r->n_samples; i++) {
        const recd_reject_sample_t *s = &r->samples[i];
        json_t *js = json_object();
        json_object_set_new(js, "line", json_integer((json_int_t)s->line));
        json_object_set_new(js, "reason", json_string(recd_reject_name(s->reason)));
        json_object_set_new(js, "text", json_string(s->text)); /* sanitised to UTF-8 when stored */
        json_array_append_new(samples, js);
    }
    json_object_set_new(o, "samples", samples);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL) {
        fprintf(stderr, "recd ingest: out of memory\n");
        abort();
    }
    return s;
}

/* ---- interactions ------------------------------------------------------------------------------------------------- */

void recd_interactions_init(recd_interactions_t *x)
{
    memset(x, 0, sizeof(*x));
    x->users = recd_idmap_create();
    x->items = recd_idmap_create();
}

void recd_interactions_dispose(recd_interactions_t *x)
{
    recd_idmap_free(x->users);
    recd_idmap_free(x->items);
    free(x->user);
    free(x->item);
    free(x->value);
    free(x->ts);
    memset(x, 0, sizeof(*x));
}

void recd_interactions_add(recd_interactions_t *x, const char *user, size_t user_len, const char *item, size_t item_len,
                           float value, int64_t ts)
{
    if (x->n == x->capacity) {
        size_t cap = x->capacity == 0 ? 1024 : x->capacity * 2;
        x->user = recd_xrealloc(x->user, cap * sizeof(*x->user));
        x->item = recd_xrealloc(x->item, cap * sizeof(*x->item));
        x->value = recd_xrealloc(x->value, cap * sizeof(*x->value));
        x->ts = recd_xrealloc(x->ts, cap * sizeof(*x->ts));
        x->capacity = cap;
    }
    x->user[x->n] = recd_idmap_intern(x->users, user, user_len);
    x->item[x->n] = recd_idmap_intern(x->items, item, item_len);
    x->value[x->n] = value;
    x->ts[x->n] = ts;
    x->n++;
}

/* ---- validation helpers ------------------------------------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static void trim(const char **p, size_t *len)
{
    while (*len > 0 && is_space(**p)) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && is_space((*p)[*len - 1]))
        (*len)--;
}

int ingest_parse_number(const char *p, size_t len, double *out)
{
    char tmp[64];
    trim(&p, &len);
    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + len)
        return -1;
    *out = v;
    return 0;
}

#define MIN_EPOCH (-62135596800.0) /* 0001-01-01T00:00:00Z */
#define MAX_EPOCH 253402300799.0   /* 9999-12-31T23:59:59Z */

static int epoch_from_number(double v, int64_t *out)
{
    if (!isfinite(v))
        return -1;
    if (v >= 1e11)
        v /= 1000; /* milliseconds */
    if (v < MIN_EPOCH || v > MAX_EPOCH)
        return -1;
    *out = (int64_t)floor(v);
    return 0;
}

static int parse_iso8601(const char *p, size_t len, int64_t *out)
{
    double epoch;
    if (recd_iso8601_parse(p, len, 0, &epoch) != 0)
        return -1;
    *out = (int64_t)floor(epoch);
    return 0;
}

int ingest_parse_timestamp(const char *p, size_t len, int64_t *out)
{
    trim(&p, &len);
    if (len == 0)
        return -1;
    /* plain epoch numbers: [+-]digits[.digits] (no exponents, hex or inf) */
    size_t i = 0, nd = 0;
    if (p[i] == '+' || p[i] == '-')
        i++;
    while (i < len && isdigit((unsigned char)p[i]))
        i++, nd++;
    if (i < len && p[i] == '.') {
        i++;
        while (i < len && isdigit((unsigned char)p[i]))
            i++;
    }
    if (i == len && nd > 0) {
        double v;
        if (ingest_parse_number(p, len, &v) != 0)
            return -1;
        return epoch_from_number(v, out);
    }
    return parse_iso8601(p, len, out);
}

static const char *const aliases[4][6] = {
    {"user", "user_id", "userid", NULL},
    {"item", "item_id", "itemid", "movie_id", "movieid", NULL},
    {"value", "rating", "weight", NULL},
    {"timestamp", "ts", "time", NULL},
};

int ingest_default_alias(int column, const char *name, size_t len)
{
    trim(&name, &len);
    for (const char *const *a = aliases[column]; *a != NULL; a++)
        if (strlen(*a) == len && strncasecmp(*a, name, len) == 0)
            return 1;
    return 0;
}

const char *ingest_col_option(const recd_ingest_options_t *o, int column)
{
    switch (column) {
    case 0:
        return o->user_col;
    case 1:
        return o->item_col;
    case 2:
        return o->value_col;
    default:
        return o->time_col;
    }
}

const char *ingest_col_flag(int column)
{
    static const char *const flags[] = {"--user-col", "--item-col", "--value-col", "--time-col"};
    return flags[column & 3];
}

void ingest_error(ingest_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ctx->errlen > 0)
        vsnprintf(ctx->err, ctx->errlen, fmt, ap);
    va_end(ap);
}

/* Copies the start of a line into a sample, replacing invalid UTF-8 and control characters so the report is valid JSON. */
static void sample_text(char *dst, size_t cap, const char *text, size_t len)
{
    if (len > cap - 1)
        len = cap - 1;
    memcpy(dst, text, len);
    dst[len] = '\0';
    unsigned char *p = (unsigned char *)dst;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x20 && p[i] != '\t') {
            p[i++] = '?';
        } else if (p[i] < 0x80) {
            i++;
        } else {
            size_t n = 1;
            while (n < 4 && i + n < len && (p[i + n] & 0xc0) == 0x80)
                n++;
            size_t good = 0;
            for (size_t k = n; k >= 2; k--) {
                if (recd_utf8_valid(dst + i, k)) {
                    good = k;
                    break;
                }
            }
            if (good != 0) {
                i += good;
            } else {
                p[i++] = '?';
            }
        }
    }
}

void ingest_reject(ingest_ctx_t *ctx, uint64_t line, recd_reject_t reason, const char *text, size_t text_len)
{
    recd_ingest_report_t *rep = ctx->report;
    rep->rows_read++;
    rep->rows_rejected++;
    rep->rejected[reason]++;
    if (rep->n_samples < ctx->o->max_samples) {
        if (rep->n_samples == ctx->samples_cap) {
            ctx->samples_cap = ctx->samples_cap == 0 ? 16 : ctx->samples_cap * 2;
            rep->samples = recd_xrealloc(rep->samples, ctx->samples_cap * sizeof(*rep->samples));
        }
        recd_reject_sample_t *s = &rep->samples[rep->n_samples++];
        s->line = line;
        s->reason = reason;
        sample_text(s->text, sizeof(s->text), text, text_len);
    }
}

static int field_empty(const ingest_field_t *f)
{
    if (f->p == NULL && !f->is_num)
        return 1;
    if (f->is_num)
        return 0;
    const char *p = f->p;
    size_t len = f->len;
    trim(&p, &len);
    return len == 0;
}

static const ingest_weight_t *find_weight(const ingest_ctx_t *ctx, const ingest_field_t *type)
{
    if (type->p == NULL)
        return NULL;
    for (size_t i = 0; i < ctx->n_weights; i++)
        if (strlen(ctx->weights[i].type) == type->len && memcmp(ctx->weights[i].type, type->p, type->len) == 0)
            return &ctx->weights[i];
    return NULL;
}

static int field_number(const ingest_field_t *f, double *v)
{
    if (f->is_num) {
        *v = f->num;
        return 0;
    }
    return ingest_parse_number(f->p, f->len, v);
}

void ingest_record(ingest_ctx_t *ctx, uint64_t line, const char *text, size_t text_len, const ingest_fields_t *f)
{
    const char *u = f->user.p, *it = f->item.p;
    size_t ulen = f->user.len, ilen = f->item.len;
    recd_reject_t why;
    double v = 1;
    int64_t ts = 0;

    if (u == NULL || (trim(&u, &ulen), ulen == 0)) {
        why = RECD_REJECT_MISSING_USER;
        goto Reject;
    }
    if (it == NULL || (trim(&it, &ilen), ilen == 0)) {
        why = RECD_REJECT_MISSING_ITEM;
        goto Reject;
    }
    if (!recd_utf8_valid(u, ulen) || !recd_utf8_valid(it, ilen)) {
        why = RECD_REJECT_BAD_UTF8;
        goto Reject;
    }
    if (f->is_event) {
        const ingest_weight_t *w = find_weight(ctx, &f->type);
        if (w == NULL) {
            why = RECD_REJECT_UNKNOWN_EVENT;
            goto Reject;
        }
        if (w->use_value) {
            if (field_empty(&f->value) || field_number(&f->value, &v) != 0) {
                why = RECD_REJECT_BAD_VALUE;
                goto Reject;
            }
        } else {
            v = w->weight;
        }
    } else if (f->value.p != NULL || f->value.is_num) {
        if (field_number(&f->value, &v) != 0) {
            why = RECD_REJECT_BAD_VALUE;
            goto Reject;
        }
    }
    if (!isfinite(v) || fabs(v) > FLT_MAX) {
        why = RECD_REJECT_BAD_VALUE;
        goto Reject;
    }
    if (v < ctx->o->min_value || v > ctx->o->max_value) {
        why = RECD_REJECT_VALUE_RANGE;
        goto Reject;
    }
    if (f->ts.is_num) {
        if (epoch_from_number(f->ts.num, &ts) != 0) {
            why = RECD_REJECT_BAD_TIMESTAMP;
            goto Reject;
        }
    } else if (!field_empty(&f->ts) && ingest_parse_timestamp(f->ts.p, f->ts.len, &ts) != 0) {
        why = RECD_REJECT_BAD_TIMESTAMP;
        goto Reject;
    }
    recd_interactions_add(ctx->out, u, ulen, it, ilen, (float)v, ts);
    ctx->report->rows_read++;
    ctx->report->rows_accepted++;
    return;

Reject:
    ingest_reject(ctx, line, why, text, text_len);
}

/* ---- event weights ------------------------------------------------------------------------------------------------ */

static void add_weight(ingest_ctx_t *ctx, const char *type, double w, int use_value)
{
    ctx->weights = recd_xrealloc(ctx->weights, (ctx->n_weights + 1) * sizeof(*ctx->weights));
    ctx->weights[ctx->n_weights].type = recd_xstrdup(type);
    ctx->weights[ctx->n_weights].weight = w;
    ctx->weights[ctx->n_weights].use_value = use_value;
    ctx->n_weights++;
}

static int load_weights(ingest_ctx_t *ctx)
{
    if (ctx->o->event_weights_json == NULL) {
        for (int t = 0; t != RECD_EVENT_N_TYPES; ++t) {
            double w = recd_event_default_weight((recd_event_type_t)t);
            add_weight(ctx, recd_event_type_name((recd_event_type_t)t), w < 0 ? 0 : w, w < 0);
        }
        return RECD_OK;
    }
    json_error_t jerr;
    json_t *o = json_loads(ctx->o->event_weights_json, 0, &jerr), *v;
    const char *key;
    int ret = RECD_OK;
    if (o == NULL || !json_is_object(o)) {
        ingest_error(ctx, "event weights: not a JSON object (%s)", o == NULL ? jerr.text : "wrong type");
        ret = RECD_EINVAL;
        goto Exit;
    }
    json_object_foreach(o, key, v)
    {
        if (json_is_number(v) && isfinite(json_number_value(v))) {
            add_weight(ctx, key, json_number_value(v), 0);
        } else if (json_is_string(v) && strcmp(json_string_value(v), "value") == 0) {
            add_weight(ctx, key, 0, 1);
        } else {
            ingest_error(ctx, "event weights: \"%s\" must be a number or \"value\"", key);
            ret = RECD_EINVAL;
            goto Exit;
        }
    }
Exit:
    json_decref(o);
    return ret;
}

/* ---- format detection and the driver ------------------------------------------------------------------------------ */

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && strncasecmp(s + len - n, suffix, n) == 0;
}

static recd_format_t format_from_name(const char *name)
{
    if (name == NULL)
        return RECD_FORMAT_AUTO;
    const char *base = strrchr(name, '/');
    base = base != NULL ? base + 1 : name;
    size_t len = strlen(base);
    if (ends_with(base, len, ".gz"))
        len -= 3;
    if (len == 6 && strncmp(base, "u.data", 6) == 0)
        return RECD_FORMAT_UDATA;
    if (ends_with(base, len, ".csv"))
        return RECD_FORMAT_CSV;
    if (ends_with(base, len, ".tsv") || ends_with(base, len, ".tab"))
        return RECD_FORMAT_TSV;
    if (ends_with(base, len, ".txt"))
        return RECD_FORMAT_CSV; /* delimiter detected from the content */
    if (ends_with(base, len, ".jsonl") || ends_with(base, len, ".ndjson"))
        return RECD_FORMAT_JSONL;
    if (ends_with(base, len, ".json"))
        return RECD_FORMAT_JSON;
    if (ends_with(base, len, ".xml"))
        return RECD_FORMAT_XML;
    return RECD_FORMAT_AUTO;
}

/* Whether p starts like {"name": [ — an object whose first member is an array (white space allowed around tokens). */
static int wrapped_array(const char *p, size_t n)
{
    size_t i = 1;
    while (i < n && is_space(p[i]))
        i++;
    if (i >= n || p[i++] != '"')
        return 0;
    while (i < n && p[i] != '"')
        i += p[i] == '\\' ? 2 : 1;
    i++;
    while (i < n && is_space(p[i]))
        i++;
    if (i >= n || p[i++] != ':')
        return 0;
    while (i < n && is_space(p[i]))
        i++;
    return i < n && p[i] == '[';
}

/* Which family the first bytes belong to: '[' json, '{' jsonl (or events when the first record has "type"), '<' xml. */
static recd_format_t format_from_content(ingest_reader_t *r)
{
    size_t n, i = 0;
    const char *p = ingest_reader_peek(r, PEEK_BYTES, &n);
    while (i < n && is_space(p[i]))
        i++;
    if (i == n)
        return RECD_FORMAT_CSV;
    switch (p[i]) {
    case '[':
        return RECD_FORMAT_JSON;
    case '<':
        return RECD_FORMAT_XML;
    case '{': {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t len = nl != NULL ? (size_t)(nl - (p + i)) : n - i;
        json_t *o = json_loadb(p + i, len, 0, NULL);
        int events = o != NULL && json_is_object(o) && json_object_get(o, "type") != NULL;
        if (o == NULL && wrapped_array(p + i, n - i))
            return RECD_FORMAT_JSON; /* {"records": [ ... ] ...} spread over lines */
        json_decref(o);
        return events ? RECD_FORMAT_EVENTS : RECD_FORMAT_JSONL;
    }
    default:
        return RECD_FORMAT_CSV;
    }
}

static int family(recd_format_t f)
{
    switch (f) {
    case RECD_FORMAT_CSV:
    case RECD_FORMAT_TSV:
    case RECD_FORMAT_UDATA:
        return 1;
    case RECD_FORMAT_JSONL:
    case RECD_FORMAT_EVENTS:
        return 2;
    case RECD_FORMAT_JSON:
        return 3;
    case RECD_FORMAT_XML:
        return 4;
    default:
        return 0;
    }
}

static recd_format_t detect_format(ingest_reader_t *r, const char *name)
{
    recd_format_t by_name = format_from_name(name), by_content = format_from_content(r);
    if (by_name == RECD_FORMAT_AUTO || family(by_name) != family(by_content))
        return by_content;
    if (by_name == RECD_FORMAT_JSONL)
        return by_content; /* jsonl or events */
    return by_name;
}

static void rate_text(char *buf, size_t len, double rate)
{
    snprintf(buf, len, "%.2f", rate);
    if (strtod(buf, NULL) != rate)
        snprintf(buf, len, "%g", rate);
}

static int run(ingest_ctx_t *ctx)
{
    recd_format_t format = ctx->o->format;
    int ret;

    if (!(ctx->o->max_reject_rate >= 0 && ctx->o->max_reject_rate <= 1)) {
        ingest_error(ctx, "--max-reject-rate must be in [0, 1]");
        return RECD_EINVAL;
    }
    if (!(ctx->o->min_value <= ctx->o->max_value)) {
        ingest_error(ctx, "the value range is empty (min %g > max %g)", ctx->o->min_value, ctx->o->max_value);
        return RECD_EINVAL;
    }
    ingest_reader_skip_bom(ctx->r);
    size_t head_len;
    const char *head = ingest_reader_peek(ctx->r, 2, &head_len);
    if (head_len >= 2 && (memcmp(head, "\xff\xfe", 2) == 0 || memcmp(head, "\xfe\xff", 2) == 0)) {
        ingest_error(ctx, "%s: UTF-16 input is not supported; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)",
                     ctx->name != NULL ? ctx->name : "input");
        return RECD_EFORMAT;
    }
    if (format == RECD_FORMAT_AUTO)
        format = detect_format(ctx->r, ctx->name);
    ctx->report->format = format;
    switch (format) {
    case RECD_FORMAT_CSV:
    case RECD_FORMAT_TSV:
    case RECD_FORMAT_UDATA:
        ret = ingest_delimited(ctx, format);
        break;
    case RECD_FORMAT_JSONL:
        ret = ingest_jsonl(ctx, 0);
        break;
    case RECD_FORMAT_EVENTS:
        if ((ret = load_weights(ctx)) == RECD_OK)
            ret = ingest_jsonl(ctx, 1);
        break;
    case RECD_FORMAT_JSON:
        ret = ingest_json_array(ctx);
        break;
    case RECD_FORMAT_XML:
        ret = ingest_xml(ctx);
        break;
    default:
        ingest_error(ctx, "unknown input format %d", (int)format);
        ret = RECD_EINVAL;
        break;
    }
    if (ret != RECD_OK)
        return ret;
    if (ctx->r->error) {
        ingest_error(ctx, "%s: %s", ctx->name != NULL ? ctx->name : "input", ctx->r->errmsg);
        return RECD_EIO;
    }
    const recd_ingest_report_t *rep = ctx->report;
    if (rep->rows_read > 0 && (double)rep->rows_rejected / (double)rep->rows_read > ctx->o->max_reject_rate) {
        char rate[32];
        rate_text(rate, sizeof(rate), ctx->o->max_reject_rate);
        ingest_error(ctx, "%llu of %llu rows rejected (%.1f%%) exceeds --max-reject-rate %s",
                     (unsigned long long)rep->rows_rejected, (unsigned long long)rep->rows_read,
                     100.0 * (double)rep->rows_rejected / (double)rep->rows_read, rate);
        return RECD_EINVAL;
    }
    return RECD_OK;
}

static int ingest_with(ingest_reader_t *r, const char *name, const recd_ingest_options_t *o, recd_interactions_t *out,
                       recd_ingest_report_t *report, char *err, size_t errlen)
{
    ingest_ctx_t ctx = {.o = o, .out = out, .report = report, .r = r, .name = name, .err = err, .errlen = errlen};
    memset(report, 0, sizeof(*report));
    if (errlen > 0)
        err[0] = '\0';
    int ret = run(&ctx);
    for (size_t i = 0; i < ctx.n_weights; i++)
        free(ctx.weights[i].type);
    free(ctx.weights);
    return ret;
}

int ingest_buffer(const void *data, size_t len, const char *name, const recd_ingest_options_t *o, recd_interactions_t *out,
                  recd_ingest_report_t *report, char *err, size_t errlen)
{
    ingest_reader_t r;
    ingest_reader_open_mem(&r, data, len);
    int ret = ingest_with(&r, name, o, out, report, err, errlen);
    ingest_reader_close(&r);
    return ret;
}

int recd_ingest_file(const char *path, const recd_ingest_options_t *o, recd_interactions_t *out, recd_ingest_report_t *report,
                     char *err, size_t errlen)
{
    ingest_reader_t r;
    memset(report, 0, sizeof(*report));
    int ret = ingest_reader_open_file(&r, path, err, errlen);
    if (ret != RECD_OK)
        return ret;
    ret = ingest_with(&r, strcmp(path, "-") == 0 ? NULL : path, o, out, report, err, errlen);
    ingest_reader_close(&r);
    return ret;
}
