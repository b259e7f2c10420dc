/* ingest_json.c: JSON lines, recd events.jsonl and streamed JSON arrays (one top-level element parsed at a time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "train/ingest_internal.h"
#include "base/alloc.h"

/* The member holding a column: the option's name (exact, then any case), else the first key that is a default alias. */
static json_t *member(json_t *obj, const recd_ingest_options_t *o, int column)
{
    const char *opt = ingest_col_option(o, column), *key;
    json_t *v;
    if (opt != NULL && *opt != '\0') {
        if ((v = json_object_get(obj, opt)) != NULL)
            return v;
        json_object_foreach(obj, key, v)
        {
            if (strcasecmp(key, opt) == 0)
                return v;
        }
        return NULL;
    }
    json_object_foreach(obj, key, v)
    {
        if (ingest_default_alias(column, key, strlen(key)))
            return v;
    }
    return NULL;
}

/* An id: a string, or an integer written in decimal (buf holds it); anything else counts as missing. */
static void id_field(json_t *v, ingest_field_t *f, char *buf, size_t buflen)
{
    if (json_is_string(v)) {
        f->p = json_string_value(v);
        f->len = json_string_length(v);
    } else if (json_is_integer(v)) {
        int n = snprintf(buf, buflen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        f->p = buf;
        f->len = n > 0 ? (size_t)n : 0;
    }
}

/* A number field: JSON numbers as numbers, strings as text to parse; null and other types are present but bad. */
static void num_field(json_t *v, ingest_field_t *f, int null_is_absent)
{
    if (v == NULL)
        return;
    if (json_is_number(v)) {
        f->is_num = 1;
        f->num = json_number_value(v);
    } else if (json_is_string(v)) {
        f->p = json_string_value(v);
        f->len = json_string_length(v);
    } else if (!(json_is_null(v) && null_is_absent)) {
        f->p = "?";
        f->len = 1;
    }
}

static void object_record(ingest_ctx_t *ctx, json_t *obj, int events, uint64_t line, const char *text, size_t len)
{
    char ubuf[32], ibuf[32];
    ingest_fields_t f;
    memset(&f, 0, sizeof(f));
    id_field(member(obj, ctx->o, 0), &f.user, ubuf, sizeof(ubuf));
    id_field(member(obj, ctx->o, 1), &f.item, ibuf, sizeof(ibuf));
    num_field(member(obj, ctx->o, 2), &f.value, 0);
    num_field(member(obj, ctx->o, 3), &f.ts, 1);
    if (events) {
        json_t *t = json_object_get(obj, "type");
        f.is_event = 1;
        if (json_is_string(t)) {
            f.type.p = json_string_value(t);
            f.type.len = json_string_length(t);
        }
    }
    ingest_record(ctx, line, text, len, &f);
}

/* Parses one record's text; invalid UTF-8 is its own reject reason, anything else unparseable is malformed. */
static void parse_record(ingest_ctx_t *ctx, int events, uint64_t line, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *obj = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (obj == NULL) {
        ingest_reject(ctx, line, json_error_code(&jerr) == json_error_invalid_utf8 ? RECD_REJECT_BAD_UTF8 : RECD_REJECT_MALFORMED,
                      text, len);
        return;
    }
    if (!json_is_object(obj))
        ingest_reject(ctx, line, RECD_REJECT_MALFORMED, text, len);
    else
        object_record(ctx, obj, events, line, text, len);
    json_decref(obj);
}

int ingest_jsonl(ingest_ctx_t *ctx, int events)
{
    ingest_reader_t *r = ctx->r;
    for (;;) {
        uint64_t line = r->line_no + 1;
        size_t len, i = 0;
        int too_long;
        if (ingest_reader_getline(r, &len, &too_long) <= 0)
            break;
        while (i < len && (r->line[i] == ' ' || r->line[i] == '\t' || r->line[i] == '\r'))
            i++;
        if (i == len)
            continue;
        if (too_long)
            ingest_reject(ctx, line, RECD_REJECT_MALFORMED, r->line, len);
        else
            parse_record(ctx, events, line, r->line, len);
    }
    return RECD_OK;
}

static int skip_space(ingest_reader_t *r)
{
    int c;
    do
        c = ingest_reader_getc(r);
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    return c;
}

int ingest_json_array(ingest_ctx_t *ctx)
{
    ingest_reader_t *r = ctx->r;
    char *buf = NULL;
    size_t cap = 0;
    int ret = RECD_OK;

    int c = skip_space(r), wrapped = 0;
    if (c == '{') { /* {"records": [ ... ], ...}: stream the first member's array, ignore the other members */
        c = skip_space(r);
        if (c == '"') {
            int esc = 0;
            while ((c = ingest_reader_getc(r)) >= 0 && (esc || c != '"'))
                esc = !esc && c == '\\';
            if (c == '"' && skip_space(r) == ':')
                c = skip_space(r);
            wrapped = c == '[';
        }
    }
    if (c != '[') {
        if (!r->error) {
            ingest_error(ctx, "%s: not a JSON array of records, nor an object whose first member is one (line %llu)",
                         ctx->name != NULL ? ctx->name : "input", (unsigned long long)r->line_no + 1);
            ret = RECD_EFORMAT;
        }
        goto Exit;
    }
    for (;;) {
        c = skip_space(r);
        if (c < 0 || c == ']')
            break; /* the end (a missing ']' loses no record; a read error is reported by the caller) */
        uint64_t line = r->line_no + 1;
        size_t n = 0;
        int depth = 0, in_str = 0, esc = 0, too_long = 0, last = 0;
        /* collect one element: up to a ',' or ']' outside strings and brackets */
        for (;;) {
            if (in_str) {
                if (esc)
                    esc = 0;
                else if (c == '\\')
                    esc = 1;
                else if (c == '"')
                    in_str = 0;
            } else if (c == '"') {
                in_str = 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && depth > 0) {
                depth--;
            } else if ((c == ',' || c == ']') && depth == 0) {
                last = c == ']';
                break;
            }
            if (n < INGEST_MAX_RECORD) {
                if (n + 1 > cap) {
                    cap = cap == 0 ? 4096 : cap * 2;
                    buf = recd_xrealloc(buf, cap);
                }
                buf[n++] = (char)c;
            } else {
                too_long = 1;
            }
            if ((c = ingest_reader_getc(r)) < 0)
                break;
        }
        if (r->error)
            break;
        size_t len = n;
        while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t' || buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        if (too_long || len == 0)
            ingest_reject(ctx, line, RECD_REJECT_MALFORMED, buf != NULL ? buf : "", len);
        else
            parse_record(ctx, 0, line, buf, len);
        if (c < 0 || last)
            break;
    }
    if (c == ']' && !wrapped) { /* anything but space after the array is a defect worth reporting */
        uint64_t line = r->line_no + 1;
        int t = skip_space(r);
        if (t >= 0) {
            char text[2] = {(char)t, 0};
            ingest_reject(ctx, line, RECD_REJECT_MALFORMED, text, 1);
        }
    }
Exit:
    free(buf);
    return ret;
}
