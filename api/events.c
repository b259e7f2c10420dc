/* events.c: POST /v1/events — validate all, append to the event log before answering 202, then update user state. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "api/api_internal.h"

struct st_events_handler_t {
    h2o_handler_t super;
    recd_app_t *app;
};

/* The sink's answer to one batch, handed from the sink's thread to the waiting handler. */
typedef struct st_append_wait_t {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int answered;
    int err;
} append_wait_t;

static void on_appended(void *data, int err)
{
    append_wait_t *w = data;
    pthread_mutex_lock(&w->lock);
    w->err = err;
    w->answered = 1;
    pthread_cond_signal(&w->done);
    pthread_mutex_unlock(&w->lock);
}

/* Appends the batch and waits for the sink's answer. This blocks the loop until the batch is written; the serving
 * pipeline replaces it with an asynchronous reply. */
static int append_and_wait(recd_event_sink_t *sink, const char *buf, size_t len)
{
    append_wait_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    int ret;

    if ((ret = recd_event_sink_append(sink, buf, len, on_appended, &w)) != 0)
        return ret;
    pthread_mutex_lock(&w.lock);
    while (!w.answered)
        pthread_cond_wait(&w.done, &w.lock);
    ret = w.err;
    pthread_mutex_unlock(&w.lock);
    pthread_cond_destroy(&w.done);
    pthread_mutex_destroy(&w.lock);
    return ret;
}

static int cmp_user(const void *a, const void *b)
{
    const recd_event_t *x = *(recd_event_t *const *)a, *y = *(recd_event_t *const *)b;
    size_t n = x->user.len < y->user.len ? x->user.len : y->user.len;
    int c = memcmp(x->user.base, y->user.base, n);
    return c != 0 ? c : (x->user.len > y->user.len) - (x->user.len < y->user.len);
}

/* Remembers each event and re-folds every user it touched against this worker's model, so the next request on any
 * thread sees it. */
static void update_users(recd_api_call_t *call, recd_event_t *events, size_t n)
{
    h2o_req_t *req = call->req;
    recd_app_t *app = call->app;
    recd_model_t *m = call->worker->model;
    uint32_t nf = recd_model_n_factors(m);
    uint64_t version = recd_model_version(m);
    recd_event_t **sorted = h2o_mem_alloc_pool(&req->pool, sizeof(*sorted) * n);
    size_t unknown = 0;
    const recd_event_t *first_unknown = NULL;

    for (size_t i = 0; i < n; ++i) {
        recd_user_item_t it = {events[i].item, recd_event_weight(&events[i])};
        recd_userstate_add(app->users, events[i].user.base, events[i].user.len, &it, 1);
        if (recd_model_find_item(m, events[i].item.base, events[i].item.len) < 0 && unknown++ == 0)
            first_unknown = &events[i];
        sorted[i] = &events[i];
    }
    if (unknown > 0 && recd_log_enabled(&app->log, RECD_LOG_INFO)) {
        char qitem[600];
        recd_log_write(&app->log, RECD_LOG_INFO, "events for items unknown to the model",
                       "\"count\":%zu,\"first_item\":%s,\"version\":%llu", unknown,
                       recd_json_quote(qitem, sizeof(qitem), first_unknown->item.base, first_unknown->item.len),
                       (unsigned long long)version);
    }
    if (nf == 0)
        return;
    qsort(sorted, n, sizeof(*sorted), cmp_user);
    float *vec = h2o_mem_alloc_pool(&req->pool, sizeof(float) * nf);
    for (size_t i = 0; i < n; ++i) {
        if (i > 0 && cmp_user(&sorted[i - 1], &sorted[i]) == 0)
            continue;
        h2o_iovec_t user = sorted[i]->user;
        recd_user_snapshot_t snap;
        if (recd_userstate_get(app->users, user.base, user.len, version, nf, &req->pool, &snap) != 0)
            continue;
        int64_t uidx = recd_model_find_user(m, user.base, user.len);
        if (recd_api_fold_user(m, uidx, snap.items, snap.n_items, &req->pool, vec) == 0)
            recd_userstate_set_vector(app->users, user.base, user.len, snap.seq, version, vec, nf);
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct st_events_handler_t *h = (void *)self;
    recd_api_call_t call;
    recd_api_error_t err;
    recd_event_t *events;
    size_t n;
    struct timespec now;
    h2o_iovec_t path = recd_api_path(req);

    recd_api_begin(&call, req, h->app, RECD_EP_EVENTS);
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/v1/events"))) {
        recd_api_reply_not_found(&call);
        goto Exit;
    }
    if (recd_api_method_or_reply(req, RECD_API_POST) != 0 || recd_api_json_body_or_reply(req, h->app) != 0)
        goto Exit;
    clock_gettime(CLOCK_REALTIME, &now);
    double received_at = now.tv_sec + now.tv_nsec / 1e9;
    if (recd_codec_parse_events(req->entity.base, req->entity.len, received_at, &req->pool, &events, &n, &err) != 0) {
        recd_api_reply_api_error(req, &err);
        goto Exit;
    }

    recd_jw_t jw;
    recd_jw_init_pool(&jw, &req->pool, req->entity.len + n * 96 + 64);
    for (size_t i = 0; i < n; ++i)
        recd_codec_render_event_line(&jw, &events[i], received_at);
    int rc;
    if ((rc = append_and_wait(h->app->events, jw.buf, jw.len)) != 0) {
        char qerr[256];
        recd_log(&h->app->log, RECD_LOG_ERROR, "cannot append to the event log", "\"error\":%s",
                 recd_json_quote(qerr, sizeof(qerr), recd_strerror(rc), strlen(recd_strerror(rc))));
        recd_api_reply_error(req, 503, "unavailable", "the event log cannot be written; nothing was accepted");
        goto Exit;
    }
    recd_metrics_add_events(h->app->metrics, call.worker->index, n);
    update_users(&call, events, n);

    recd_jw_init_pool(&jw, &req->pool, 32);
    recd_jw_lit(&jw, "{\"accepted\":");
    recd_jw_u64(&jw, n);
    recd_jw_lit(&jw, "}");
    recd_api_reply_json(req, 202, &jw);
Exit:
    recd_api_end(&call);
    return 0;
}

void recd_api_register_events(h2o_pathconf_t *pathconf, recd_app_t *app)
{
    struct st_events_handler_t *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->app = app;
}
