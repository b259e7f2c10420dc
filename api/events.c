/* events.c: POST /v1/events — validate all, append to the event log, and answer 202 only once the append completed.
 *
 * DESIGN: the append completes through a callback that may run on another thread (the event sink's writer), so the
 * completion is posted to this worker's loop (h2o_multithread_send_message) and the request is answered there. The
 * pending record is heap memory, not request memory: the client may go away before the sink answers, and the events
 * are remembered in the feature store all the same once they are durable. The request's pool holds a guard that tells
 * the record when the request is gone. */
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "api/api_internal.h"
#include "api/auth.h"

struct st_events_handler_t {
    h2o_handler_t super;
    recd_api_t *api;
    recd_api_endpoint_t *ep;
};

typedef struct st_events_pending_t {
    h2o_multithread_message_t super;
    recd_api_context_t *actx;
    recd_api_call_t *call;              /* NULL once the request is gone */
    struct st_events_pending_t **guard; /* in the request's pool; NULL once the request is gone */
    int err;                            /* the append's outcome */
    recd_serve_event_t *events;         /* copies, in the same block */
    size_t n;
} events_pending_t;

/* One block: the record, the events and their ids, so nothing of the request is needed when the append completes. */
static events_pending_t *pending_create(recd_api_context_t *actx, recd_api_call_t *call, const recd_event_t *events, size_t n)
{
    size_t bytes = sizeof(events_pending_t) + sizeof(recd_serve_event_t) * n;
    for (size_t i = 0; i < n; ++i)
        bytes += events[i].user.len + events[i].item.len + events[i].request_id.len;
    events_pending_t *p = recd_xmalloc(bytes);
    memset(p, 0, sizeof(*p));
    p->actx = actx;
    p->call = call;
    p->events = (recd_serve_event_t *)(p + 1);
    p->n = n;
    char *ids = (char *)(p->events + n);
    for (size_t i = 0; i < n; ++i) {
        memcpy(ids, events[i].user.base, events[i].user.len);
        p->events[i].user = (recd_serve_id_t){ids, events[i].user.len};
        ids += events[i].user.len;
        memcpy(ids, events[i].item.base, events[i].item.len);
        p->events[i].item = (recd_serve_id_t){ids, events[i].item.len};
        ids += events[i].item.len;
        p->events[i].weight = recd_event_weight(&events[i]);
        /* for attribution to an experiment arm (recd_serve_remember) */
        if (events[i].request_id.len > 0)
            memcpy(ids, events[i].request_id.base, events[i].request_id.len);
        p->events[i].request_id = (recd_serve_id_t){ids, events[i].request_id.len};
        ids += events[i].request_id.len;
        p->events[i].type = events[i].type;
    }
    return p;
}

static void on_guard_dispose(void *data)
{
    events_pending_t **guard = data;
    if (*guard != NULL) {
        (*guard)->call = NULL;
        (*guard)->guard = NULL;
    }
}

/* The append's completion, on whichever thread the sink calls it: hand it to the loop that owns the request. */
static void on_appended(void *data, int err)
{
    events_pending_t *p = data;
    p->err = err;
    h2o_multithread_send_message(&p->actx->events_receiver, &p->super);
}

/* Logs why a batch was refused (err: RECD_EBUSY when the sink's queue is full, else the write's failure) and answers 503. */
static void reply_unavailable(recd_api_t *api, h2o_req_t *req, int err)
{
    char qerr[256];
    const char *why = recd_strerror(err);
    recd_log(api->log, RECD_LOG_ERROR, "cannot append to the event log", "\"error\":%s",
             recd_json_quote(qerr, sizeof(qerr), why, strlen(why)));
    recd_api_reply_error(req, 503, "unavailable", "the event log cannot be written; nothing was accepted");
}

static void complete(events_pending_t *p)
{
    recd_api_context_t *actx = p->actx;
    if (p->err == 0) {
        /* remembered before the 202, so the client's next request on any thread sees its events */
        recd_serve_ctx_t *ctx = recd_serve_ctx_create(actx->serve);
        recd_serve_remember(ctx, p->events, p->n);
        recd_serve_ctx_release(ctx);
        recd_metric_add(actx->api->events_accepted, actx->slot, p->n);
    }
    if (p->call != NULL) {
        h2o_req_t *req = p->call->req;
        if (p->err == 0) {
            recd_jw_t jw;
            recd_jw_init_pool(&jw, &req->pool, 32);
            recd_jw_lit(&jw, "{\"accepted\":");
            recd_jw_u64(&jw, p->n);
            recd_jw_lit(&jw, "}");
            recd_api_reply_json(req, 202, &jw);
        } else {
            reply_unavailable(actx->api, req, p->err);
        }
        recd_api_end(p->call);
        *p->guard = NULL;
    }
    free(p);
}

void recd_api_on_events_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        events_pending_t *p = H2O_STRUCT_FROM_MEMBER(events_pending_t, super.link, messages->next);
        h2o_linklist_unlink(&p->super.link);
        --p->actx->pending_appends;
        complete(p);
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_events_handler_t *h = (void *)self;
    recd_api_call_t *call = recd_api_begin(req, h->api, h->ep);
    recd_api_error_t err;
    recd_event_t *events;
    size_t n;
    h2o_iovec_t path = recd_api_path(req);

    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/v1/events"))) {
        recd_api_reply_not_found(call);
        goto Exit;
    }
    if (recd_api_authorize_or_reply(call, RECD_AUTH_SCOPE_EVENTS_WRITE) != 0)
        goto Exit;
    if (recd_api_method_or_reply(req, RECD_API_POST) != 0 || recd_api_json_body_or_reply(req, h->api->config->max_body_bytes) != 0)
        goto Exit;
    double received_at = recd_realtime_seconds();
    if (recd_codec_parse_events(req->entity.base, req->entity.len, received_at, &req->pool, &events, &n, &err) != 0) {
        recd_api_reply_api_error(req, &err);
        goto Exit;
    }

    recd_jw_t jw;
    recd_jw_init_pool(&jw, &req->pool, req->entity.len + n * 96 + 64);
    for (size_t i = 0; i < n; ++i)
        recd_codec_render_event_line(&jw, &events[i], received_at);
    events_pending_t *p = pending_create(call->ctx, call, events, n);
    p->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*p->guard), on_guard_dispose);
    *p->guard = p;
    ++call->ctx->pending_appends;
    int rc = recd_event_sink_append(h->api->events, jw.buf, jw.len, on_appended, p);
    if (rc != 0) {
        --call->ctx->pending_appends;
        /* the sink's queue is full: nothing was written and the callback will not come */
        *p->guard = NULL;
        free(p);
        reply_unavailable(h->api, req, rc);
        goto Exit;
    }
    return 0; /* answered from the completion */
Exit:
    recd_api_end(call);
    return 0;
}

void recd_api_register_events(h2o_pathconf_t *pathconf, recd_api_t *api)
{
    struct st_events_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h->ep = recd_api_endpoint(api, "events");
}
