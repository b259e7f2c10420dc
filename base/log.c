/* log.c: structured JSON-lines logging to a file descriptor, one write(2) per line. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/log.h"
#include "base/text.h"

const char *const recd_log_level_names[4] = {"debug", "info", "warn", "error"};

int recd_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; ++i)
        if (strcmp(name, recd_log_level_names[i]) == 0)
            return i;
    return -1;
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
                 recd_log_level_names[level], recd_json_quote(qmsg, sizeof(qmsg), msg, strlen(msg)));
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
