/* workers.c: worker threads of the recd executable — listeners, h2o loops, catalog snapshots by message, graceful stop.
 *
 * DESIGN: each worker owns an h2o_evloop_t, an h2o_context_t (attached to the API with its serving state) and its own
 * listening socket bound with SO_REUSEPORT, so the kernel spreads connections and no lock is shared between loops. The
 * only way into a running worker is its h2o_multithread receiver: the catalog loader's thread posts every new snapshot
 * there (the worker swaps it in on its own thread and holds exactly one), and recd_workers_stop posts a NULL snapshot
 * that means "stop"; a second receiver takes the scoring pool's wake-ups (answers scanned off this loop are waiting) and
 * completes those requests on the loop. Shutdown closes the listener, asks h2o to close
 * connections after their current request, runs the loop until they are gone or the grace period ends, then tears down. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "base/alloc.h"
#include "api/api.h"
#include "api/redis_loop.h"
#include "bin/recd/workers.h"

#if defined(__SANITIZE_ADDRESS__)
/* libh2o 2.2.5 caches freed request-pool chunks in a static thread-local list that nothing can drain; when a worker thread
 * exits, LeakSanitizer reports whatever that cache held. Only that allocator is suppressed; everything of ours is checked.
 * Defined here, with the threads, so recd and the tests that run workers in-process (tests/recd) both get it. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}
#endif

/* One worker thread; only this file and the thread itself touch it. */
typedef struct st_recd_worker_t {
    h2o_context_t ctx;
    recd_workers_t *group;
    size_t index;
    recd_serve_worker_t *serve;
    recd_catalog_t *catalog; /* the one snapshot this worker holds, swapped only on its thread */
    h2o_multithread_receiver_t receiver;
    h2o_multithread_receiver_t scored_receiver; /* the scoring pool's wake-ups */
    int stopping;
    uint32_t grace_ms; /* set before the stop message is sent */
    pthread_t tid;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_accept_ctx_t accept_ctx;
    uint64_t seed;                 /* of the request-id generator */
    recd_redis_loop_t *redis_loop; /* with app->redis: this loop's adapter and connection */
    recd_redis_conn_t *redis_conn;
    h2o_timeout_entry_t flush_entry; /* the serving state's put-off scans: run once this round of I/O is read */
} recd_worker_t;

/* A new catalog snapshot for a worker (one reference, which the worker takes over), or NULL: stop. */
typedef struct st_catalog_message_t {
    h2o_multithread_message_t super;
    recd_catalog_t *snapshot;
} catalog_message_t;

/* Freed only after every thread is joined (waking threads still touch the barrier's mutex). */
struct st_recd_workers_t {
    recd_app_t *app;
    h2o_globalconf_t *conf;
    h2o_barrier_t ready;
    size_t n;
    recd_worker_t *workers;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int bind_listener(const struct addrinfo *ai, uint16_t port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int fd, on = 1;

    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 || bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "cannot listen on port %u: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int has_connections(h2o_context_t *ctx)
{
    return !h2o_linklist_is_empty(&ctx->http1._conns) || !h2o_linklist_is_empty(&ctx->http2._conns);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    recd_worker_t *w = listener->data;
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    /* accept a bounded batch per wake-up so one busy listener cannot starve the loop */
    for (int i = 0; i < 64 && (sock = h2o_evloop_socket_accept(listener)) != NULL; ++i)
        h2o_accept(&w->accept_ctx, sock);
}

/*
 * Installs a snapshot (on the worker's thread): takes over the reference and hands the serving state its own. A snapshot older than
 * the one held (a late message) is dropped, so the worker never goes back in time.
 */
static void set_catalog(recd_worker_t *w, recd_catalog_t *snapshot)
{
    if (w->catalog != NULL && recd_catalog_generation(snapshot) < recd_catalog_generation(w->catalog)) {
        recd_catalog_release(snapshot);
        return;
    }
    recd_catalog_retain(snapshot); /* one reference for the serving state, one kept here */
    recd_serve_worker_set_catalog(w->serve, snapshot);
    recd_catalog_release(w->catalog);
    w->catalog = snapshot;
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    recd_worker_t *w = H2O_STRUCT_FROM_MEMBER(recd_worker_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        catalog_message_t *msg = H2O_STRUCT_FROM_MEMBER(catalog_message_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        if (msg->snapshot != NULL)
            set_catalog(w, msg->snapshot);
        else
            w->stopping = 1;
        free(msg);
    }
}

/* On a scoring thread: answers for this worker are waiting; one message per wake (the serving state wakes once per drain). */
static void on_scored_wake(void *data)
{
    recd_worker_t *w = data;
    h2o_multithread_message_t *msg = recd_xcalloc(1, sizeof(*msg));
    h2o_multithread_send_message(&w->scored_receiver, msg);
}

static void on_scored_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    recd_worker_t *w = H2O_STRUCT_FROM_MEMBER(recd_worker_t, scored_receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        free(msg);
    }
    recd_serve_worker_drain(w->serve);
}

/* The loop read this round's requests (the context's zero timeout runs after the sockets): scan what they put off. */
static void on_flush(h2o_timeout_entry_t *entry)
{
    recd_worker_t *w = H2O_STRUCT_FROM_MEMBER(recd_worker_t, flush_entry, entry);
    recd_serve_worker_flush(w->serve);
}

static void on_defer(void *data)
{
    recd_worker_t *w = data;
    if (!h2o_timeout_is_linked(&w->flush_entry))
        h2o_timeout_link(w->ctx.loop, &w->ctx.zero_timeout, &w->flush_entry);
}

/* The catalog loader's subscriber (on the loader's thread): posts the snapshot to the worker's loop. */
static void on_snapshot(void *data, recd_catalog_t *snapshot)
{
    recd_worker_t *w = data;
    catalog_message_t *msg = recd_xcalloc(1, sizeof(*msg));
    msg->snapshot = snapshot;
    h2o_multithread_send_message(&w->receiver, &msg->super);
}

static void *worker_main(void *arg)
{
    recd_worker_t *w = arg;
    recd_workers_t *ws = w->group;
    recd_app_t *app = ws->app;
    h2o_evloop_t *loop = h2o_evloop_create();

    h2o_context_init(&w->ctx, loop, ws->conf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = ws->conf->hosts;
    w->serve = recd_serve_worker_create(app->serve, w->index, w->seed);
    if (app->redis) {
        w->redis_loop = recd_api_redis_loop_create(loop);
        w->redis_conn = recd_redis_store_attach(app->store, w->index, w->redis_loop);
    }
    set_catalog(w, recd_catalog_loader_current(app->catalog));
    recd_api_attach(app->api, &w->ctx, w->serve, w->index);
    h2o_multithread_register_receiver(w->ctx.queue, &w->receiver, on_message);
    h2o_multithread_register_receiver(w->ctx.queue, &w->scored_receiver, on_scored_message);
    recd_serve_worker_use_loop(w->serve, on_scored_wake, w);
    w->flush_entry = (h2o_timeout_entry_t){.cb = on_flush};
    recd_serve_worker_defer_scans(w->serve, on_defer, w);
    w->listener = h2o_evloop_socket_create(loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    h2o_barrier_wait(&ws->ready);

    while (!w->stopping)
        h2o_evloop_run(loop, INT32_MAX);

    /* graceful stop: no new connections, keep-alive connections close after their current request */
    h2o_socket_read_stop(w->listener);
    h2o_socket_close(w->listener);
    w->listener = NULL;
    h2o_context_request_shutdown(&w->ctx);
    /* Idle keep-alive connections would otherwise wait out their idle timeout: expire those timers now. Connections in the
     * middle of sending a response are not on these timers and finish normally. */
    w->ctx.http1.req_timeout.timeout = 0;
    w->ctx.http2.idle_timeout.timeout = 0;
    uint64_t deadline = now_ms() + w->grace_ms;
    while (has_connections(&w->ctx) && now_ms() < deadline)
        h2o_evloop_run(loop, 10);
    /* Scans this worker queued come back to this loop (their contexts belong to it): wait for every one of them. */
    if (recd_serve_worker_pending(w->serve) > 0) {
        recd_log(&app->log, RECD_LOG_WARN, "waiting for the scoring threads to answer", "\"thread\":%zu,\"scans\":%zu", w->index,
                 recd_serve_worker_pending(w->serve));
        while (recd_serve_worker_pending(w->serve) > 0)
            h2o_evloop_run(loop, 10);
    }
    /* The event sink answers every batch it took, even after the grace period (a stalled fsync): its completion posts to
     * this context, so the loop runs until none is pending, or the answer would land in freed memory. */
    if (recd_api_pending(app->api, &w->ctx) > 0) {
        recd_log(&app->log, RECD_LOG_WARN, "waiting for the event log to answer", "\"thread\":%zu,\"batches\":%zu", w->index,
                 recd_api_pending(app->api, &w->ctx));
        while (recd_api_pending(app->api, &w->ctx) > 0)
            h2o_evloop_run(loop, 10);
    }
    /* lookups still waiting on Redis are answered now; the run below lets h2o dispose of the closed socket */
    recd_redis_conn_close(w->redis_conn);
    w->redis_conn = NULL;
    recd_api_redis_loop_free(w->redis_loop);
    w->redis_loop = NULL;
    /* drain leftover messages (none are sent after the loader stopped, but one may still be queued) */
    h2o_evloop_run(loop, 0);
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->receiver);
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->scored_receiver);
    recd_api_detach(app->api, &w->ctx);
    if (has_connections(&w->ctx)) {
        /* h2o cannot dispose a context that still has connections; the process is about to exit, so leave it */
        recd_log(&app->log, RECD_LOG_WARN, "connections still open after the grace period", "\"thread\":%zu", w->index);
    } else {
        /* h2o's HTTP/2 graceful-shutdown timer stays armed after the last connection is gone; disarm it before disposing */
        if (h2o_timeout_is_linked(&w->ctx.http2._graceful_shutdown_timeout))
            h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
        h2o_multithread_queue_t *queue = w->ctx.queue;
        h2o_context_dispose(&w->ctx);
        h2o_evloop_destroy(loop);
        /* libh2o 2.2.5 (evloop) closes the queue's pipe but never frees the queue itself */
        free(queue);
        /* socket buffers recycled into this thread's cache would be lost when the thread exits: free them now */
        while (h2o_socket_buffer_prototype.allocator.cnt > 0)
            free(h2o_mem_alloc_recycle(&h2o_socket_buffer_prototype.allocator, 1));
    }
    recd_serve_worker_free(w->serve);
    w->serve = NULL;
    recd_catalog_release(w->catalog);
    w->catalog = NULL;
    return NULL;
}

recd_workers_t *recd_workers_start(recd_app_t *app, h2o_globalconf_t *conf, const char *host, uint16_t port, uint16_t *bound_port,
                                   char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    size_t n = app->n_workers;
    recd_workers_t *ws;
    int gai;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    if ((gai = getaddrinfo(host, NULL, &hints, &ai)) != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    ws = recd_xcalloc(1, sizeof(*ws));
    ws->app = app;
    ws->conf = conf;
    ws->n = n;
    ws->workers = recd_xcalloc(n, sizeof(*ws->workers));
    for (size_t i = 0; i < n; ++i)
        ws->workers[i].listen_fd = -1;
    for (size_t i = 0; i < n; ++i) {
        if ((ws->workers[i].listen_fd = bind_listener(ai, port, err, errlen)) < 0)
            goto Error;
        if (i == 0 && port == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            getsockname(ws->workers[0].listen_fd, (struct sockaddr *)&ss, &sl);
            port =
                ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    *bound_port = port;
    freeaddrinfo(ai);

    h2o_barrier_init(&ws->ready, n + 1);
    for (size_t i = 0; i < n; ++i) {
        recd_worker_t *w = &ws->workers[i];
        w->group = ws;
        w->index = i;
        w->seed = ((uint64_t)now_ms() << 20) ^ ((uint64_t)getpid() << 8) ^ (0x9e3779b97f4a7c15ULL * (i + 1));
        recd_catalog_loader_subscribe(app->catalog, on_snapshot, w);
        h2o_multithread_create_thread(&w->tid, NULL, worker_main, w); /* aborts on failure */
    }
    h2o_barrier_wait(&ws->ready);
    return ws;

Error:
    for (size_t i = 0; i < n; ++i)
        if (ws->workers[i].listen_fd >= 0)
            close(ws->workers[i].listen_fd);
    free(ws->workers);
    free(ws);
    freeaddrinfo(ai);
    return NULL;
}

void recd_workers_stop(recd_workers_t *ws, uint32_t grace_ms)
{
    for (size_t i = 0; i < ws->n; ++i) {
        catalog_message_t *msg = recd_xcalloc(1, sizeof(*msg));
        ws->workers[i].grace_ms = grace_ms;
        h2o_multithread_send_message(&ws->workers[i].receiver, &msg->super);
    }
    for (size_t i = 0; i < ws->n; ++i)
        pthread_join(ws->workers[i].tid, NULL);
    free(ws->workers);
    free(ws);
}
