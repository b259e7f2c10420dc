/* event.h: the kinds of user events and the implicit-feedback weight each carries (shared by recd, recd-train, recd-updater). */
#ifndef RECD_MODELS_EVENT_H
#define RECD_MODELS_EVENT_H

#include <stddef.h>

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

#endif
