/* text.c: UTF-8 validity, the ISO-8601 parser and JSON string escaping. */
#include <stdint.h>
#include <string.h>
#include "base/text.h"

int recd_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0;
        for (size_t j = 1; j <= n; ++j) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        /* overlong forms, surrogates and code points beyond U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* ---- ISO-8601 ------------------------------------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Reads exactly n decimal digits at *i. */
static int digits(const char *p, size_t len, size_t *i, size_t n, int *out)
{
    int v = 0;
    for (size_t k = 0; k < n; k++, (*i)++) {
        if (*i >= len || p[*i] < '0' || p[*i] > '9')
            return -1;
        v = v * 10 + (p[*i] - '0');
    }
    *out = v;
    return 0;
}

static int expect(const char *p, size_t len, size_t *i, char c)
{
    if (*i >= len || p[*i] != c)
        return -1;
    ++*i;
    return 0;
}

int recd_iso8601_parse(const char *p, size_t len, unsigned flags, double *epoch)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const int strict = (flags & RECD_ISO8601_STRICT) != 0;
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, s = 0, off = 0, has_zone = 0, has_seconds = 0;
    double frac = 0;

    if (digits(p, len, &i, 4, &y) || expect(p, len, &i, '-') || digits(p, len, &i, 2, &mo) || expect(p, len, &i, '-') ||
        digits(p, len, &i, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || (strict && y < 1970))
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return -1;
    if (i < len) {
        if (p[i] != 'T' && p[i] != 't' && p[i] != ' ')
            return -1;
        i++;
        if (digits(p, len, &i, 2, &h) || expect(p, len, &i, ':') || digits(p, len, &i, 2, &mi))
            return -1;
        if (i < len && p[i] == ':') {
            i++;
            if (digits(p, len, &i, 2, &s))
                return -1;
            has_seconds = 1;
            if (i < len && (p[i] == '.' || (!strict && p[i] == ','))) {
                double scale = 0.1;
                size_t start = ++i;
                for (; i < len && p[i] >= '0' && p[i] <= '9'; ++i, scale /= 10)
                    frac += (p[i] - '0') * scale;
                if (i == start)
                    return -1;
            }
        }
        if (h > 23 || mi > 59 || s > 60)
            return -1;
        if (i < len) {
            if ((p[i] == 'Z' || p[i] == 'z') && i + 1 == len) {
                i++;
            } else if (p[i] == '+' || p[i] == '-') {
                int sign = p[i++] == '-' ? -1 : 1, oh, om;
                if (digits(p, len, &i, 2, &oh))
                    return -1;
                if (i < len && p[i] == ':')
                    i++;
                else if (strict)
                    return -1;
                if (digits(p, len, &i, 2, &om) || oh > 23 || om > 59)
                    return -1;
                off = sign * (oh * 3600 + om * 60);
            } else {
                return -1;
            }
            has_zone = 1;
        }
    }
    if (i != len || (strict && !(has_seconds && has_zone)))
        return -1;
    *epoch = (double)(days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s - off) + frac;
    return 0;
}

/* ---- JSON strings -------------------------------------------------------------------------------------------------- */

size_t recd_json_escape_byte(unsigned char c, char out[6])
{
    static const char hex[] = "0123456789abcdef";
    if (c >= 0x20 && c != '"' && c != '\\')
        return 0;
    out[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
        out[1] = (char)c;
        return 2;
    case '\n':
        out[1] = 'n';
        return 2;
    case '\r':
        out[1] = 'r';
        return 2;
    case '\t':
        out[1] = 't';
        return 2;
    default:
        memcpy(out + 1, "u00", 3);
        out[4] = hex[c >> 4];
        out[5] = hex[c & 15];
        return 6;
    }
}

char *recd_json_quote(char *dst, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    if (cap < 3) {
        if (cap > 0)
            dst[0] = '\0';
        return dst;
    }
    dst[o++] = '"';
    for (size_t i = 0; i < len; ++i) {
        char esc[6];
        size_t elen = recd_json_escape_byte((unsigned char)s[i], esc);
        if (elen == 0)
            esc[0] = s[i], elen = 1;
        if (o + elen + 2 > cap)
            break;
        memcpy(dst + o, esc, elen);
        o += elen;
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}
