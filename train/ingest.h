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
    RECD_FORMAT_UDATA,  /* MovieLens u.data: user \t item \t rating \t timestamp, no header */
    RECD_FORMAT_JSONL,
    RECD_FORMAT_JSON,   /* a JSON array of objects */
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
    RECD_REJECT_BAD_VALUE,      /* non-numeric or non-finite */
    RECD_REJECT_VALUE_RANGE,    /* outside [min_value, max_value] */
    RECD_REJECT_BAD_TIMESTAMP,
    RECD_REJECT_BAD_UTF8,
    RECD_REJECT_COLUMN_COUNT,
    RECD_REJECT_MALFORMED,      /* unparseable JSON/XML record */
    RECD_REJECT_UNKNOWN_EVENT,  /* events: type not in the weight table */
    RECD_REJECT__COUNT
} recd_reject_t;

/** "missing_user", "bad_value", ... */
const char *recd_reject_name(recd_reject_t r);

typedef struct st_recd_ingest_options_t {
    recd_format_t format;
    /* Column by header name, or by 0-based position given as digits; NULL = the default names/positions
     * (user/user_id/userId, item/item_id/itemId/movie_id, value/rating/weight, timestamp/ts/time; or positions 0,1,2,3). */
    const char *user_col, *item_col, *value_col, *time_col;
    double min_value, max_value;  /* accepted value range, default -inf..inf */
    double max_reject_rate;       /* fraction in [0,1]; above it ingestion fails; default 1 (never) */
    size_t max_samples;           /* sample rejected lines kept in the report, default 10 */
    /* events format: weight per event type; NULL = view 1, click 2, add_to_cart 3, purchase 5, rating = its value */
    const char *event_weights_json;
} recd_ingest_options_t;

/** Fills o with the defaults. */
void recd_ingest_options_init(recd_ingest_options_t *o);

/** Accepted interactions: dense user/item indexes into the id maps, in input order. */
typedef struct st_recd_interactions_t {
    recd_idmap_t *users, *items;
    size_t n, capacity;
    uint32_t *user, *item;
    float *value;  /* 1 when the input has no value column */
    int64_t *ts;   /* epoch seconds; 0 when absent */
} recd_interactions_t;

/** Initialises an empty set (creates the id maps). */
void recd_interactions_init(recd_interactions_t *x);
void recd_interactions_dispose(recd_interactions_t *x);
/** Appends one interaction, interning the ids (copied). Aborts on out of memory. */
void recd_interactions_add(recd_interactions_t *x, const char *user, size_t user_len, const char *item, size_t item_len,
                           float value, int64_t ts);

typedef struct st_recd_reject_sample_t {
    uint64_t line;   /* 1-based line (or record) number */
    recd_reject_t reason;
    char text[160];  /* the start of the offending line */
} recd_reject_sample_t;

typedef struct st_recd_ingest_report_t {
    recd_format_t format; /* as detected */
    uint64_t rows_read, rows_accepted, rows_rejected;
    uint64_t rejected[RECD_REJECT__COUNT];
    recd_reject_sample_t *samples;
    size_t n_samples;
} recd_ingest_report_t;

void recd_ingest_report_dispose(recd_ingest_report_t *r);
/** Writes the report as a JSON object (format, counts, per-reason counts, samples). Caller frees. */
char *recd_ingest_report_json(const recd_ingest_report_t *r);

/**
 * Streams path (gzip-compressed or not) into out, appending to what it holds. Bad rows are dropped and counted in
 * report, never silently. Returns RECD_OK; RECD_EIO / RECD_EFORMAT (unreadable, undetectable format) or RECD_EINVAL when
 * the reject rate exceeds o->max_reject_rate, with a message in err.
 */
int recd_ingest_file(const char *path, const recd_ingest_options_t *o, recd_interactions_t *out, recd_ingest_report_t *report,
                     char *err, size_t errlen);

#endif
