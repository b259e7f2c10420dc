/* event_sink.c: the event sink interface's calls, dispatched to the backend. */
#include "store/event_sink.h"

int recd_event_sink_append(recd_event_sink_t *s, const char *buf, size_t len, recd_event_sink_cb cb, void *data)
{
    return s->ops->append(s, buf, len, cb, data);
}

void recd_event_sink_free(recd_event_sink_t *s)
{
    if (s != NULL)
        s->ops->free(s);
}
