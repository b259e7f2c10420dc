/* ingest_internal.h: what the ingestion readers share — the byte/line reader, the per-run context and record validation. */
#ifndef RECD_TRAIN_INGEST_INTERNAL_H
#define RECD_TRAIN_INGEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>
#include "train/ingest.h"

/* Longest line / record kept in memory; longer ones are rejected as malformed without being buffered whole. */
#define INGEST_MAX_RECORD (1u << 20)

/* A buffered byte source over a gzip-or-plain file (zlib reads plain files transparently) or a memory buffer. */
typedef struct st_ingest_reader_t {
    gzFile gz;
    const char *mem;
    size_t mem_len, mem_pos;
    char *buf;
    size_t cap, pos, end; /* buffered bytes are buf[pos, end) */
    int eof;
    int error; /* set when the source failed; errmsg says why */
    char errmsg[160];
    uint64_t line_no; /* newlines consumed so far, so the current line is line_no + 1 */
    char *line;       /* the last line returned by ingest_reader_getline */
    size_t line_cap;
} ingest_reader_t;

/** Opens path for reading (gzip or plain). Returns 0, or RECD_EIO with a message. */
int ingest_reader_open_file(ingest_reader_t *r, const char *path, char *err, size_t errlen);
/** Reads from a borrowed memory buffer (gzip-compressed buffers are not inflated). */
void ingest_reader_open_mem(ingest_reader_t *r, const void *data, size_t len);
void ingest_reader_close(ingest_reader_t *r);
/** Buffers at least want bytes when the source has them; *avail receives the buffered count. Returns the buffer start. */
const char *ingest_reader_peek(ingest_reader_t *r, size_t want, size_t *avail);
/** Skips a UTF-8 byte order mark at the current position. */
void ingest_reader_skip_bom(ingest_reader_t *r);
/**
 * Reads the next line without its "\n" or "\r\n" into r->line (NUL-terminated; it may contain NUL bytes). Lines longer
 * than INGEST_MAX_RECORD are cut there and *too_long is set. Returns 1 for a line, 0 at the end, -1 on a read error.
 */
int ingest_reader_getline(ingest_reader_t *r, size_t *len, int *too_long);
/** Reads more bytes into the buffer. Returns how many were added, 0 at the end, -1 on error. */
int ingest_reader_fill(ingest_reader_t *r);
/** The next byte (0..255), or -1 at the end or on error (check r->error). Counts newlines. */
static inline int ingest_reader_getc(ingest_reader_t *r)
{
    if (r->pos == r->end && ingest_reader_fill(r) <= 0)
        return -1;
    int c = (unsigned char)r->buf[r->pos++];
    if (c == '\n')
        r->line_no++;
    return c;
}

/* An event type's weight (events format). */
typedef struct st_ingest_weight_t {
    char *type;
    double weight;
    int use_value; /* the event's own value is the weight (ratings) */
} ingest_weight_t;

/* One run of recd_ingest_*: options, output and the reject report. */
typedef struct st_ingest_ctx_t {
    const recd_ingest_options_t *o;
    recd_interactions_t *out;
    recd_ingest_report_t *report;
    ingest_reader_t *r;
    const char *name; /* path or buffer name, for messages and extension-based detection */
    char *err;
    size_t errlen;
    ingest_weight_t *weights;
    size_t n_weights;
    size_t samples_cap;
} ingest_ctx_t;

/* A field as found in a record: absent (p == NULL), or text, or a number already parsed (JSON). */
typedef struct st_ingest_field_t {
    const char *p;
    size_t len;
    int is_num;
    double num;
} ingest_field_t;

typedef struct st_ingest_fields_t {
    ingest_field_t user, item, value, ts;
    int is_event;
    ingest_field_t type;
} ingest_fields_t;

/**
 * Validates one record and appends it to ctx->out, or counts it as rejected with its line and text. Checks in this order,
 * the first failure being the reason: missing user, missing item, invalid UTF-8 (or NUL) in either id, unknown event type,
 * value (absent = 1; present but empty, non-numeric or non-finite = bad), value range, timestamp (absent or empty = 0).
 */
void ingest_record(ingest_ctx_t *ctx, uint64_t line, const char *text, size_t text_len, const ingest_fields_t *f);
/** Counts a rejected row (in rows_read too) and keeps a sample of it while fewer than max_samples are kept. */
void ingest_reject(ingest_ctx_t *ctx, uint64_t line, recd_reject_t reason, const char *text, size_t text_len);
/** Formats a message into ctx->err. */
void ingest_error(ingest_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Parses a number filling the whole (space-trimmed) text; 0 or -1. Non-finite results parse (callers check). */
int ingest_parse_number(const char *p, size_t len, double *out);
/** Parses epoch seconds, epoch milliseconds (>= 1e11) or ISO-8601 into epoch seconds; 0 or -1. */
int ingest_parse_timestamp(const char *p, size_t len, int64_t *out);
/** Whether a (trimmed, case-insensitive) name is one of the default aliases of a column (0 user, 1 item, 2 value, 3 time). */
int ingest_default_alias(int column, const char *name, size_t len);
/** The option naming column (0 user .. 3 time), or NULL. */
const char *ingest_col_option(const recd_ingest_options_t *o, int column);
/** The flag name of a column option, "--user-col" etc. */
const char *ingest_col_flag(int column);

/* The format readers; each returns RECD_OK or a RECD_E* code with a message in ctx->err. */
int ingest_delimited(ingest_ctx_t *ctx, recd_format_t format);
int ingest_jsonl(ingest_ctx_t *ctx, int events);
int ingest_json_array(ingest_ctx_t *ctx);
int ingest_xml(ingest_ctx_t *ctx);

/**
 * Ingests a memory buffer as recd_ingest_file does a file (name is used like a path for extension detection and may be
 * NULL). For the fuzzers and tests.
 */
int ingest_buffer(const void *data, size_t len, const char *name, const recd_ingest_options_t *o, recd_interactions_t *out,
                  recd_ingest_report_t *report, char *err, size_t errlen);

#endif
