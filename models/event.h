/* event.h: the kinds of user events and the implicit-feedback weight each carries (shared by recd, recd-train, recd-updater). */
#ifndef RECD_MODELS_EVENT_H
#define RECD_MODELS_EVENT_H

#include <stddef.h>
#include <stdint.h>

/** The kinds of user events recd accepts. */
typedef enum en_recd_event_type_t {
    RECD_EVENT_VIEW = 0,
    RECD_EVENT_CLICK,
    RECD_EVENT_ADD_TO_CART,
    RECD_EVENT_PURCHASE,
    RECD_EVENT_RATING,
    RECD_EVENT_N_TYPES
} recd_event_type_t;

/** "view", "click", "add_to_cart", "purchase" or "rating"; NULL for anything else. */
const char *recd_event_type_name(recd_event_type_t t);
/** The type named name (len bytes), or -1. */
int recd_event_type_parse(const char *name, size_t len);
/**
 * The default interaction weight of an event type: view 1, click 2, add_to_cart 3, purchase 5; a rating weighs its own
 * value (returns -1 to say so).
 */
double recd_event_default_weight(recd_event_type_t t);
/**
 * The interaction weight an event carries, wherever it is counted (recd's feature store, recd-updater's fold-in): a
 * rating weighs its value, every other type its default weight (a value it carries is ignored).
 */
double recd_event_weight_of(recd_event_type_t t, double value);

/** Length of an event id recd assigns (a ULID: 10 characters of milliseconds, 16 of randomness, Crockford base32). */
#define RECD_EVENT_ID_LEN 26
/** Longest event id a client may send. */
#define RECD_EVENT_ID_MAX_BYTES 128
/** Random bytes an assigned event id carries. */
#define RECD_EVENT_ID_RANDOM_BYTES 10

/**
 * Writes the event id of an event received at unix_ms with random (RECD_EVENT_ID_RANDOM_BYTES bytes from the caller's
 * random source, so this stays pure) to out: RECD_EVENT_ID_LEN characters and a NUL. Ids sort by time as strings.
 */
void recd_event_id_format(char out[RECD_EVENT_ID_LEN + 1], uint64_t unix_ms, const uint8_t random[RECD_EVENT_ID_RANDOM_BYTES]);
/** Whether id (len bytes) is an event id a client may send: 1..RECD_EVENT_ID_MAX_BYTES bytes of [A-Za-z0-9_.:-]. */
int recd_event_id_valid(const char *id, size_t len);

#endif
