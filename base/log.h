/* log.h: structured JSON-lines logging, one write(2) per line. */
#ifndef RECD_BASE_LOG_H
#define RECD_BASE_LOG_H

#include <stdarg.h>

enum { RECD_LOG_DEBUG = 0, RECD_LOG_INFO = 1, RECD_LOG_WARN = 2, RECD_LOG_ERROR = 3 };

/** A JSON-lines logger writing one line per call with a single write(2) to fd; immutable once set up. */
typedef struct st_recd_logger_t {
    int level;
    int fd;
} recd_logger_t;

/** The level names in RECD_LOG_* order: "debug", "info", "warn", "error". */
extern const char *const recd_log_level_names[4];

/** Returns RECD_LOG_* for "debug", "info", "warn" or "error", or -1 for anything else. */
int recd_log_parse_level(const char *name);

/**
 * Writes {"ts":"...","level":"...","msg":msg,<fields>} and a newline. fmt formats the extra JSON members (e.g.
 * "\"port\":%d") or is "" for none; string values in it must already be JSON-escaped (see recd_json_quote). Lines longer
 * than 4 KiB are truncated. Callers use the recd_log() macro, which checks the level before formatting anything.
 */
void recd_log_write(const recd_logger_t *log, int level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define recd_log_enabled(log, lvl) ((lvl) >= (log)->level)
#define recd_log(log, lvl, msg, ...)                                                                                               \
    do {                                                                                                                           \
        if (recd_log_enabled((log), (lvl)))                                                                                        \
            recd_log_write((log), (lvl), (msg), __VA_ARGS__);                                                                      \
    } while (0)

#endif
