/* event.c: event type names and their default weights. */
#include <string.h>
#include "models/event.h"

static const char *const type_names[RECD_EVENT_N_TYPES] = {"view", "click", "add_to_cart", "purchase", "rating"};
static const double default_weights[RECD_EVENT_N_TYPES] = {1, 2, 3, 5, -1};

const char *recd_event_type_name(recd_event_type_t t)
{
    return (unsigned)t < RECD_EVENT_N_TYPES ? type_names[t] : NULL;
}

int recd_event_type_parse(const char *name, size_t len)
{
    for (int i = 0; i != RECD_EVENT_N_TYPES; ++i)
        if (strlen(type_names[i]) == len && memcmp(type_names[i], name, len) == 0)
            return i;
    return -1;
}

double recd_event_default_weight(recd_event_type_t t)
{
    return (unsigned)t < RECD_EVENT_N_TYPES ? default_weights[t] : -1;
}

double recd_event_weight_of(recd_event_type_t t, double value)
{
    return t == RECD_EVENT_RATING ? value : recd_event_default_weight(t);
}
