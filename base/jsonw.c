/* jsonw.c: the append-only JSON writer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/jsonw.h"
#include "base/text.h"

void recd_jw_init(recd_jw_t *w, recd_jw_alloc_cb alloc, void *ctx, size_t cap)
{
    w->alloc = alloc;
    w->ctx = ctx;
    w->cap = cap > 0 ? cap : 64;
    w->buf = alloc != NULL ? alloc(ctx, w->cap) : recd_xmalloc(w->cap);
    w->len = 0;
}

void recd_jw_dispose(recd_jw_t *w)
{
    if (w->alloc == NULL)
        free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

void recd_jw_grow(recd_jw_t *w, size_t extra)
{
    size_t cap = w->cap * 2;
    while (cap < w->len + extra)
        cap *= 2;
    if (w->alloc == NULL) {
        w->buf = recd_xrealloc(w->buf, cap);
    } else {
        char *nb = w->alloc(w->ctx, cap);
        memcpy(nb, w->buf, w->len);
        w->buf = nb;
    }
    w->cap = cap;
}

void recd_jw_escaped(recd_jw_t *w, const char *s, size_t len)
{
    size_t start = 0;
    recd_jw_reserve(w, len);
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue; /* the common byte, without a call */
        size_t elen = recd_json_escape_byte(c, esc);
        recd_jw_raw(w, s + start, i - start);
        recd_jw_raw(w, esc, elen);
        start = i + 1;
    }
    recd_jw_raw(w, s + start, len - start);
}

void recd_jw_str(recd_jw_t *w, const char *s, size_t len)
{
    recd_jw_lit(w, "\"");
    recd_jw_escaped(w, s, len);
    recd_jw_lit(w, "\"");
}

void recd_jw_u64(recd_jw_t *w, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    recd_jw_raw(w, tmp + i, sizeof(tmp) - i);
}

void recd_jw_double(recd_jw_t *w, double v)
{
    char tmp[32];
    double x = fabs(v);
    int n;

    if (!isfinite(v))
        v = 0, x = 0;
    if (x == 0 || (x >= 0.01 && x < 1e9)) {
        /* the common case (scores): fixed point with 6 decimals, trailing zeros trimmed, without printf's cost */
        uint64_t scaled = (uint64_t)(x * 1e6 + 0.5), ip = scaled / 1000000, fp = scaled % 1000000;
        char *p = tmp + sizeof(tmp), *end;
        end = p;
        if (fp != 0) {
            int digits = 6;
            while (fp % 10 == 0)
                fp /= 10, --digits;
            for (int i = 0; i < digits; ++i, fp /= 10)
                *--p = (char)('0' + fp % 10);
            *--p = '.';
        }
        do {
            *--p = (char)('0' + ip % 10);
            ip /= 10;
        } while (ip != 0);
        if (v < 0 && scaled != 0)
            *--p = '-';
        recd_jw_raw(w, p, (size_t)(end - p));
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%.7g", v);
    recd_jw_raw(w, tmp, (size_t)n);
}

void recd_jw_i64(recd_jw_t *w, int64_t v)
{
    if (v < 0) {
        recd_jw_lit(w, "-");
        recd_jw_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        recd_jw_u64(w, (uint64_t)v);
    }
}
