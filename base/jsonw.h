/* jsonw.h: an append-only JSON writer over memory the caller chooses (a request pool, or the heap). */
#ifndef RECD_BASE_JSONW_H
#define RECD_BASE_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/**
 * Returns size bytes that live as long as the writer's output is needed; never NULL (abort on out of memory). Old buffers
 * are not given back: with an arena (h2o's request pool) they are freed with it.
 */
typedef void *(*recd_jw_alloc_cb)(void *ctx, size_t size);

/** An append-only buffer; buf is not NUL-terminated. */
typedef struct st_recd_jw_t {
    char *buf;
    size_t len, cap;
    recd_jw_alloc_cb alloc; /* NULL: the heap (realloc), freed by recd_jw_dispose */
    void *ctx;
} recd_jw_t;

/** Starts an empty buffer of cap bytes from alloc(ctx, ...), or from the heap when alloc is NULL. */
void recd_jw_init(recd_jw_t *w, recd_jw_alloc_cb alloc, void *ctx, size_t cap);
/** Frees a heap buffer (alloc NULL); a no-op for arena memory. */
void recd_jw_dispose(recd_jw_t *w);
/** Grows the buffer to hold extra more bytes (the slow path of recd_jw_reserve). */
void recd_jw_grow(recd_jw_t *w, size_t extra);

/** Makes room for extra more bytes. Inline: every answer appends many small pieces. */
static inline void recd_jw_reserve(recd_jw_t *w, size_t extra)
{
    if (w->len + extra > w->cap)
        recd_jw_grow(w, extra);
}

/** Appends raw bytes. */
static inline void recd_jw_raw(recd_jw_t *w, const char *s, size_t len)
{
    recd_jw_reserve(w, len);
    memcpy(w->buf + w->len, s, len);
    w->len += len;
}
#define recd_jw_lit(w, s) recd_jw_raw((w), (s), sizeof(s) - 1)
/** Appends s as a quoted JSON string (quotes, backslashes and control characters escaped; UTF-8 passed through). */
void recd_jw_str(recd_jw_t *w, const char *s, size_t len);
/** Appends the escaped characters of s without the quotes (to build a string from several pieces). */
void recd_jw_escaped(recd_jw_t *w, const char *s, size_t len);
/** Appends an unsigned integer. */
void recd_jw_u64(recd_jw_t *w, uint64_t v);
/** Appends a signed integer. */
void recd_jw_i64(recd_jw_t *w, int64_t v);
/** Appends a number: 6 decimals (trailing zeros trimmed) for magnitudes in [0.01, 1e9), else 7 significant digits; non-finite
 * values are written as 0 (JSON has no NaN/Inf). */
void recd_jw_double(recd_jw_t *w, double v);

#endif
