/* ingest_delimited.c: CSV/TSV/u.data reader — delimiter and header detection, RFC 4180 quoting, column mapping. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "train/ingest_internal.h"
#include "base/alloc.h"

typedef struct st_dfield_t {
    const char *p;
    size_t len;
} dfield_t;

typedef struct st_dstate_t {
    ingest_ctx_t *ctx;
    char delim;
    char *rec; /* the current record (lines joined when a quoted field spans them) */
    size_t rec_len, rec_cap;
    dfield_t *f;
    size_t f_cap;
} dstate_t;

/*
 * Splits rec[0..len) at delim, honouring RFC 4180 quotes ("" inside quotes is a quote; a quote may follow spaces at the
 * start of a field; text after a closing quote is kept as is). With fields != NULL the unquoted text is written in place
 * and the fields recorded. Returns the field count, or -1 when a quote is still open at the end.
 */
static long split(char *rec, size_t len, char delim, dfield_t **fields, size_t *cap)
{
    size_t i = 0, w = 0;
    long nf = 0;
    for (;;) {
        size_t start = w, j = i;
        while (j < len && rec[j] == ' ' && delim != ' ')
            j++;
        if (j < len && rec[j] == '"') {
            i = j + 1;
            for (;;) {
                if (i >= len)
                    return -1;
                if (rec[i] == '"') {
                    if (i + 1 < len && rec[i + 1] == '"') {
                        if (fields != NULL)
                            rec[w] = '"';
                        w++;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (fields != NULL)
                    rec[w] = rec[i];
                w++;
                i++;
            }
        }
        while (i < len && rec[i] != delim) {
            if (fields != NULL)
                rec[w] = rec[i];
            w++;
            i++;
        }
        if (fields != NULL) {
            if ((size_t)nf == *cap) {
                *cap = *cap == 0 ? 16 : *cap * 2;
                *fields = recd_xrealloc(*fields, *cap * sizeof(**fields));
            }
            (*fields)[nf].p = rec + start;
            (*fields)[nf].len = w - start;
        }
        nf++;
        if (i < len) { /* at a delimiter */
            i++;
            w++;
            continue;
        }
        return nf;
    }
}

static int blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)p[i]))
            return 0;
    return 1;
}

/* Picks the delimiter whose field count (>= 2) is the same on most of the first lines; ties go to more fields. */
static char detect_delimiter(ingest_reader_t *r, char fallback)
{
    static const char candidates[] = {',', '\t', ';', '|'};
    size_t n;
    const char *p = ingest_reader_peek(r, 65536, &n);
    char *copy = recd_xmalloc(n + 1);
    memcpy(copy, p, n);
    long first[4] = {0, 0, 0, 0}, same[4] = {0, 0, 0, 0};
    size_t pos = 0;
    int lines = 0;
    while (pos < n && lines < 20) {
        char *nl = memchr(copy + pos, '\n', n - pos);
        if (nl == NULL && !r->eof)
            break; /* a partial line */
        size_t len = nl != NULL ? (size_t)(nl - (copy + pos)) : n - pos;
        char *line = copy + pos;
        pos += len + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (blank(line, len))
            continue;
        for (int c = 0; c < 4; c++) {
            long nf = split(line, len, candidates[c], NULL, NULL);
            if (lines == 0)
                first[c] = nf;
            if (nf >= 2 && nf == first[c])
                same[c]++;
        }
        lines++;
    }
    free(copy);
    int best = -1;
    for (int c = 0; c < 4; c++) {
        if (first[c] < 2 || same[c] == 0)
            continue;
        if (best < 0 || same[c] > same[best] || (same[c] == same[best] && first[c] > first[best]))
            best = c;
    }
    return best >= 0 ? candidates[best] : fallback;
}

static int is_position(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static long find_name(const dfield_t *f, long nf, const char *name)
{
    size_t len = strlen(name);
    for (long i = 0; i < nf; i++)
        if (f[i].len == len && memcmp(f[i].p, name, len) == 0)
            return i;
    for (long i = 0; i < nf; i++)
        if (f[i].len == len && strncasecmp(f[i].p, name, len) == 0)
            return i;
    return -1;
}

static void header_list(const dfield_t *f, long nf, char *buf, size_t len)
{
    size_t w = 0;
    buf[0] = '\0';
    for (long i = 0; i < nf && w + 1 < len; i++) {
        int n = snprintf(buf + w, len - w, "%s%.*s", i > 0 ? ", " : "", (int)(f[i].len > 40 ? 40 : f[i].len), f[i].p);
        if (n < 0)
            break;
        w += (size_t)n;
    }
}

/*
 * Decides whether the first record is a header and maps the four columns. Returns RECD_OK and sets *header, col[] (-1 =
 * absent), or RECD_EINVAL when an option names a column that is not there.
 */
static int resolve_columns(dstate_t *s, recd_format_t format, long nf, int *header, long col[4])
{
    ingest_ctx_t *ctx = s->ctx;
    const dfield_t *f = s->f;
    const char *opt[4];
    int any_name = 0, any_alias = 0;
    for (int c = 0; c < 4; c++) {
        opt[c] = ingest_col_option(ctx->o, c);
        if (opt[c] != NULL && *opt[c] == '\0')
            opt[c] = NULL;
        if (opt[c] != NULL && !is_position(opt[c]))
            any_name = 1;
    }
    for (long i = 0; i < nf; i++)
        for (int c = 0; c < 4; c++)
            any_alias |= ingest_default_alias(c, f[i].p, f[i].len);

    *header = 0;
    if (format != RECD_FORMAT_UDATA) {
        if (any_name || any_alias) {
            *header = 1;
        } else {
            long vpos = opt[2] != NULL ? atol(opt[2]) : (nf > 2 ? 2 : -1);
            long tpos = opt[3] != NULL ? atol(opt[3]) : (nf > 3 ? 3 : -1);
            double v;
            int64_t ts;
            if (vpos >= 0 && vpos < nf && f[vpos].len > 0 && ingest_parse_number(f[vpos].p, f[vpos].len, &v) != 0)
                *header = 1;
            if (tpos >= 0 && tpos < nf && f[tpos].len > 0 && ingest_parse_timestamp(f[tpos].p, f[tpos].len, &ts) != 0)
                *header = 1;
        }
    } else if (any_name) {
        ingest_error(ctx, "u.data has no header: give columns by position");
        return RECD_EINVAL;
    }

    for (int c = 0; c < 4; c++) {
        col[c] = -1;
        if (opt[c] != NULL && is_position(opt[c])) {
            col[c] = atol(opt[c]);
            if (col[c] >= nf) {
                ingest_error(ctx, "%s %s: the first row has only %ld columns", ingest_col_flag(c), opt[c], nf);
                return RECD_EINVAL;
            }
        } else if (opt[c] != NULL) {
            if ((col[c] = find_name(f, nf, opt[c])) < 0) {
                char list[256];
                header_list(f, nf, list, sizeof(list));
                ingest_error(ctx, "%s %s: no such column in the header (%s)", ingest_col_flag(c), opt[c], list);
                return RECD_EINVAL;
            }
        } else if (*header && any_alias) {
            for (long i = 0; i < nf && col[c] < 0; i++)
                if (ingest_default_alias(c, f[i].p, f[i].len))
                    col[c] = i;
        } else {
            long def = c < 2 ? c : (nf > c ? c : -1);
            col[c] = def < nf ? def : -1;
        }
    }
    if (!*header && (col[0] < 0 || col[1] < 0)) {
        ingest_error(ctx,
                     "the first row has %ld column%s: expected user and item columns separated by comma, tab, semicolon or pipe",
                     nf, nf == 1 ? "" : "s");
        return RECD_EINVAL;
    }
    for (int c = 0; c < 2; c++) {
        if (col[c] < 0) {
            char list[256];
            header_list(f, nf, list, sizeof(list));
            ingest_error(ctx, "no %s column in the header (%s); name it with %s", c == 0 ? "user" : "item", list,
                         ingest_col_flag(c));
            return RECD_EINVAL;
        }
    }
    if (col[0] == col[1]) {
        ingest_error(ctx, "the user and item columns are the same column (%ld)", col[0]);
        return RECD_EINVAL;
    }
    return RECD_OK;
}

static void rec_append(dstate_t *s, const char *p, size_t len)
{
    if (s->rec_len + len + 1 > s->rec_cap) {
        size_t cap = s->rec_cap == 0 ? 256 : s->rec_cap;
        while (cap < s->rec_len + len + 1)
            cap *= 2;
        s->rec = recd_xrealloc(s->rec, cap);
        s->rec_cap = cap;
    }
    memcpy(s->rec + s->rec_len, p, len);
    s->rec_len += len;
    s->rec[s->rec_len] = '\0';
}

int ingest_delimited(ingest_ctx_t *ctx, recd_format_t format)
{
    ingest_reader_t *r = ctx->r;
    dstate_t s = {.ctx = ctx};
    int ret = RECD_OK, have_cols = 0;
    long col[4] = {-1, -1, -1, -1}, expected = 0;
    char sample[sizeof(((recd_reject_sample_t *)0)->text)];

    if (format == RECD_FORMAT_TSV || format == RECD_FORMAT_UDATA) {
        s.delim = '\t';
    } else {
        s.delim = detect_delimiter(r, ',');
        if (ctx->o->format == RECD_FORMAT_AUTO)
            ctx->report->format = s.delim == '\t' ? RECD_FORMAT_TSV : RECD_FORMAT_CSV;
    }

    for (;;) {
        uint64_t line = r->line_no + 1;
        size_t len;
        int too_long, rc = ingest_reader_getline(r, &len, &too_long);
        if (rc <= 0)
            break;
        if (!too_long && blank(r->line, len))
            continue;
        s.rec_len = 0;
        rec_append(&s, r->line, len);
        /* join lines while a quoted field is open (only a record with a quote can have one) */
        long nf;
        while (!too_long && memchr(s.rec, '"', s.rec_len) != NULL && split(s.rec, s.rec_len, s.delim, NULL, NULL) < 0) {
            rc = ingest_reader_getline(r, &len, &too_long);
            if (rc <= 0)
                break;
            rec_append(&s, "\n", 1);
            rec_append(&s, r->line, len);
            if (s.rec_len > INGEST_MAX_RECORD)
                too_long = 1;
        }
        if (too_long || rc <= 0) {
            if (rc < 0)
                break;
            ingest_reject(ctx, line, RECD_REJECT_MALFORMED, s.rec, s.rec_len); /* overlong, or a quote open at the end */
            if (rc == 0)
                break;
            continue;
        }
        size_t sample_len = s.rec_len < sizeof(sample) ? s.rec_len : sizeof(sample);
        memcpy(sample, s.rec, sample_len);
        nf = split(s.rec, s.rec_len, s.delim, &s.f, &s.f_cap);

        if (!have_cols) {
            int header;
            if ((ret = resolve_columns(&s, format, nf, &header, col)) != RECD_OK)
                goto Exit;
            have_cols = 1;
            expected = nf;
            if (header)
                continue;
        }
        if (nf != expected) {
            ingest_reject(ctx, line, RECD_REJECT_COLUMN_COUNT, sample, sample_len);
            continue;
        }
        ingest_fields_t fl;
        memset(&fl, 0, sizeof(fl));
        fl.user.p = s.f[col[0]].p;
        fl.user.len = s.f[col[0]].len;
        fl.item.p = s.f[col[1]].p;
        fl.item.len = s.f[col[1]].len;
        if (col[2] >= 0) {
            fl.value.p = s.f[col[2]].p;
            fl.value.len = s.f[col[2]].len;
        }
        if (col[3] >= 0) {
            fl.ts.p = s.f[col[3]].p;
            fl.ts.len = s.f[col[3]].len;
        }
        ingest_record(ctx, line, sample, sample_len, &fl);
    }
Exit:
    free(s.rec);
    free(s.f);
    return ret;
}
