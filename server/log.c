/* log.c: structured JSON-lines logging to a file descriptor, one write(2) per line. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "server/server.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int recd_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; ++i)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

char *recd_json_quote(char *dst, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap < 3) {
        if (cap > 0)
            dst[0] = '\0';
        return dst;
    }
    dst[o++] = '"';
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, elen = 2;
        } else if (c == '\n') {
            esc[0] = '\\', esc[1] = 'n', elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4), esc[4] = hex[c >> 4], esc[5] = hex[c & 15], elen = 6;
        } else {
            esc[0] = (char)c, elen = 1;
        }
        if (o + elen + 2 > cap)
            break;
        memcpy(dst + o, esc, elen);
        o += elen;
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}

void recd_log_write(const recd_logger_t *log, int level, const char *msg, const char *fmt, ...)
{
    char line[4096], qmsg[512];
    struct timespec ts;
    struct tm tm;
    size_t off;
    int n;

    if (level < 0 || level > 3)
        level = RECD_LOG_ERROR;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 level_names[level], recd_json_quote(qmsg, sizeof(qmsg), msg, strlen(msg)));
    off = (size_t)n;
    if (fmt[0] != '\0' && off < sizeof(line) - 3) {
        va_list ap;
        line[off++] = ',';
        va_start(ap, fmt);
        n = vsnprintf(line + off, sizeof(line) - off - 2, fmt, ap);
        va_end(ap);
        if (n > 0)
            off += (size_t)n < sizeof(line) - off - 2 ? (size_t)n : sizeof(line) - off - 3;
        else
            --off; /* nothing formatted: drop the comma */
    }
    line[off++] = '}';
    line[off++] = '\n';
    ssize_t wr = write(log->fd, line, off);
    (void)wr;
}
