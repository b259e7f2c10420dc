/* ingest: streaming readers for interaction logs (CSV, TSV, MovieLens u.data, JSON lines, JSON array, XML, recd events),
 * with validation, a reject report, and cleansing. */
#ifndef RECD_TRAIN_INGEST_H
#define RECD_TRAIN_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "models/model.h"

typedef enum en_recd_format_t {
    RECD_FORMAT_AUTO = 0, /* from the extension, else from the content */
    RECD_FORMAT_CSV,
    RECD_FORMAT_TSV,
    RECD_FORMAT_UDATA, /* MovieLens u.data: user \t item \t rating \t timestamp, no header */
    RECD_FORMAT_JSONL,
    RECD_FORMAT_JSON, /* a JSON array of objects */
    RECD_FORMAT_XML,
    RECD_FORMAT_EVENTS, /* recd's own events.jsonl */
} recd_format_t;

/** "auto", "csv", "tsv", "udata", "jsonl", "json", "xml", "events". */
const char *recd_format_name(recd_format_t f);
/** Parses a format name as recd_format_name writes it (and "ndjson"); RECD_EINVAL when unknown. */
int recd_format_parse(const char *name, recd_format_t *out);

/** Why a row was rejected. */
typedef enum en_recd_reject_t {
    RECD_REJECT_MISSING_USER = 0,
    RECD_REJECT_MISSING_ITEM,
    RECD_REJECT_BAD_VALUE,   /* non-numeric or non-finite */
    RECD_REJECT_VALUE_RANGE, /* outside [min_value, max_value] */
    RECD_REJECT_BAD_TIMESTAMP,
    RECD_REJECT_BAD_UTF8,
    RECD_REJECT_COLUMN_COUNT,
    RECD_REJECT_MALFORMED,     /* unparseable JSON/XML record */
    RECD_REJECT_UNKNOWN_EVENT, /* events: type not in the weight table */
    RECD_REJECT__COUNT
} recd_reject_t;

/** "missing_user", "bad_value", ... */
const char *recd_reject_name(recd_reject_t r);

typedef struct st_recd_ingest_options_t {
    recd_format_t format;
    /* Column by header name (exact, then any case), or by 0-based position given as digits; NULL = the default names, any
     * case (user/user_id/userId, item/item_id/itemId/movie_id/movieId, value/rating/weight, timestamp/ts/time), or, in a
     * delimited file without those names, positions 0, 1, 2, 3 (value and time only when the first row has that many
     * columns). JSON and XML records are looked up by name only. Delimited files: the first row is a header when it holds
     * a default or requested name, or when its value/time field does not parse; names given with no header are an error. */
    const char *user_col, *item_col, *value_col, *time_col;
    double min_value, max_value; /* accepted value range, default -inf..inf */
    double max_reject_rate;      /* fraction in [0,1]; above it ingestion fails; default 1 (never) */
    size_t max_samples;          /* sample rejected lines kept in the report, default 10 */
    /* events format: a JSON object of weight per event type, each a number or "value" (the event's own value); it replaces
     * the default table view 1, click 2, add_to_cart 3, purchase 5, rating "value". Types not in it are rejected. */
    const char *event_weights_json;
} recd_ingest_options_t;

/** Fills o with the defaults: auto format, default columns, any value, max_reject_rate 1, 10 samples, default weights. */
void recd_ingest_options_init(recd_ingest_options_t *o);

/** Accepted interactions: dense user/item indexes into the id maps, in input order. */
typedef struct st_recd_interactions_t {
    recd_idmap_t *users, *items;
    size_t n, capacity;
    uint32_t *user, *item;
    float *value; /* 1 when the input has no value column */
    int64_t *ts;  /* epoch seconds; 0 when absent */
} recd_interactions_t;

/** Initialises an empty set (creates the id maps). */
void recd_interactions_init(recd_interactions_t *x);
/** Frees the arrays and the id maps; accepts a zeroed struct. */
void recd_interactions_dispose(recd_interactions_t *x);
/** Appends one interaction, interning the ids (copied). Aborts on out of memory. */
void recd_interactions_add(recd_interactions_t *x, const char *user, size_t user_len, const char *item, size_t item_len,
                           float value, int64_t ts);

/* ---- cleansing (after ingestion, before recd_csr_from_coo) ---------------------------------------------------------------
 * Duplicate (user, item) rows are kept here in input order; recd_csr_from_coo merges them by its recd_merge_t policy
 * (sum, max, last). */

/**
 * Iterated k-core: drops the rows of users with fewer than min_user distinct items and of items with fewer than min_item
 * distinct users, repeating until every remaining user and item meets its minimum (dropping an item can push a user below
 * it, and so on). 0 or 1 disables a side. Rows keep their input order; the id maps are rebuilt with only the ids still
 * used, keeping their relative order, so indexes stay dense. *removed (may be NULL) receives the number of rows dropped.
 * Returns RECD_OK (an empty result is not an error; the caller decides).
 */
int recd_interactions_kcore(recd_interactions_t *x, uint32_t min_user, uint32_t min_item, uint64_t *removed);

typedef enum en_recd_normalize_t {
    RECD_NORMALIZE_NONE = 0,
    RECD_NORMALIZE_MINMAX,    /* (v - min) / (max - min) over all rows, into [0, 1]; all 1 when every value is equal */
    RECD_NORMALIZE_USER_MEAN, /* v - the user's mean value (centres explicit ratings per user) */
    RECD_NORMALIZE_LOG1P,     /* log(1 + v), damping heavy counts; needs v >= 0 */
} recd_normalize_t;

/** "none", "minmax", "user_mean", "log1p". */
const char *recd_normalize_name(recd_normalize_t how);
/** Parses a name as recd_normalize_name writes it; RECD_EINVAL when unknown. */
int recd_normalize_parse(const char *name, recd_normalize_t *out);
/**
 * Rewrites the values of every row (duplicates included, before they are merged). Returns RECD_OK, or RECD_EINVAL and
 * changes nothing when LOG1P meets a negative value or how is unknown.
 */
int recd_interactions_normalize(recd_interactions_t *x, recd_normalize_t how);

typedef struct st_recd_reject_sample_t {
    uint64_t line; /* 1-based line (or record) number */
    recd_reject_t reason;
    char text[160]; /* the start of the offending line */
} recd_reject_sample_t;

typedef struct st_recd_ingest_report_t {
    recd_format_t format; /* as detected */
    uint64_t rows_read, rows_accepted, rows_rejected;
    uint64_t rejected[RECD_REJECT__COUNT];
    recd_reject_sample_t *samples;
    size_t n_samples;
} recd_ingest_report_t;

/** Frees the samples and zeroes the report. */
void recd_ingest_report_dispose(recd_ingest_report_t *r);
/**
 * Writes the report as a JSON object: {"format", "rows_read", "rows_accepted", "rows_rejected", "rejected": {reason:
 * count, ...}, "samples": [{"line", "reason", "text"}]}. Sample texts are stored with invalid UTF-8 and control bytes
 * replaced by '?', so the JSON is always valid. The caller frees the string.
 */
char *recd_ingest_report_json(const recd_ingest_report_t *r);

/**
 * Streams path ("-" = standard input; gzip or plain: zlib recognises the magic bytes whatever the name) into out, appending
 * to what it holds; memory grows with the accepted rows, not with the file. A UTF-8 byte order mark is skipped; lines may
 * end in CRLF.
 *
 * Format: o->format, else from the extension (.csv .tsv .txt .jsonl .ndjson .json .xml, optionally .gz; a file named
 * u.data is u.data), overridden by the content when that disagrees: '[' is a JSON array (so is an object whose first
 * member is the array of records), '{' JSON lines (events when the first record has "type"), '<' XML, anything else
 * delimited, with the delimiter (comma, tab, semicolon, pipe) detected from the first lines.
 *
 * Each row is rejected for the first failure, checked in this order: column count (delimited); malformed record
 * (JSON/XML, lines over 1 MiB, a quote left open at the end); missing user; missing item; invalid UTF-8 or NUL in an id;
 * unknown event type; value (absent = 1; empty, non-numeric, non-finite or beyond float = bad); value range; timestamp
 * (absent or empty = 0; epoch seconds, milliseconds when >= 1e11, or ISO-8601; years 1..9999). Ids are trimmed of
 * surrounding white space; blank lines are skipped and not counted. Bad rows are dropped and counted in report (which
 * this call resets), never silently.
 *
 * Returns RECD_OK; RECD_EIO (unreadable, truncated gzip), RECD_EFORMAT (not the format it claims, UTF-16, XML with a
 * DOCTYPE), or RECD_EINVAL (bad options, a named column missing, or the reject rate, rejected / read, above
 * o->max_reject_rate), with a message in err.
 */
int recd_ingest_file(const char *path, const recd_ingest_options_t *o, recd_interactions_t *out, recd_ingest_report_t *report,
                     char *err, size_t errlen);

#endif
