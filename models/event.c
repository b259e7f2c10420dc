/* event.c: event type names, their default weights and event ids. */
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

void recd_event_id_format(char out[RECD_EVENT_ID_LEN + 1], uint64_t unix_ms, const uint8_t random[RECD_EVENT_ID_RANDOM_BYTES])
{
    static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    /* 48 bits of time in 10 characters (the top 2 bits of the first one are zero), then 80 random bits in 16 */
    for (int i = 9; i >= 0; --i, unix_ms >>= 5)
        out[i] = crockford[unix_ms & 31];
    for (int i = 0; i < 16; ++i) {
        int bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)random[byte] << 8 | (byte + 1 < RECD_EVENT_ID_RANDOM_BYTES ? random[byte + 1] : 0);
        out[10 + i] = crockford[(v >> (11 - shift)) & 31];
    }
    out[RECD_EVENT_ID_LEN] = '\0';
}

int recd_event_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > RECD_EVENT_ID_MAX_BYTES)
        return 0;
    for (size_t i = 0; i < len; ++i) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
              c == '-'))
            return 0;
    }
    return 1;
}

double recd_event_weight_of(recd_event_type_t t, double value)
{
    return t == RECD_EVENT_RATING ? value : recd_event_default_weight(t);
}
