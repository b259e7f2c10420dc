/* text.h: the text rules every module shares — UTF-8 validity, ISO-8601 timestamps, JSON string escaping. */
#ifndef RECD_BASE_TEXT_H
#define RECD_BASE_TEXT_H

#include <stddef.h>

/** Whether s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF) without NUL bytes. */
int recd_utf8_valid(const char *s, size_t len);

/**
 * The API's grammar: date, 'T' (or 't' or a space), hh:mm:ss, an optional '.' fraction and a zone, 'Z' or +hh:mm, with the
 * year at least 1970. Without this flag the trainer's wider grammar is accepted as well: a date alone, hh:mm without
 * seconds, a ',' fraction, an offset without its colon, and no zone at all (read as UTC).
 */
#define RECD_ISO8601_STRICT 1u

/**
 * Parses an ISO-8601 timestamp of the whole of s (len bytes, no surrounding space) into seconds since the Unix epoch,
 * fraction included, by the proleptic Gregorian calendar. flags: 0 or RECD_ISO8601_STRICT. Returns 0, or -1 when s does not
 * follow the grammar or names an impossible date or time (2023-02-29, 24:00).
 */
int recd_iso8601_parse(const char *s, size_t len, unsigned flags, double *epoch);

/**
 * The JSON escape of byte c written into out: returns 0 when c stands for itself, else the length (2 or 6) of the escape
 * (\" \\ \n \r \t, or \u00XX for other control characters). Bytes of 0x80 and above stand for themselves (UTF-8 passes).
 */
size_t recd_json_escape_byte(unsigned char c, char out[6]);

/**
 * Writes s (len bytes) as a quoted JSON string into dst (capacity cap, always NUL-terminated), escaping with
 * recd_json_escape_byte; truncates (keeping the closing quote) when it does not fit. Returns dst for use in printf args.
 */
char *recd_json_quote(char *dst, size_t cap, const char *s, size_t len);

#endif
