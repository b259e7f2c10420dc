/* redis_loop.c: the hiredis <-> h2o evloop adapter — a dup'ed fd as an h2o socket, and h2o timeouts as timers.
 *
 * hiredis drives its own fd; h2o only tells when it is readable or writable. The socket is created with DONT_READ so h2o
 * never reads the bytes hiredis wants, on a dup of the fd because both libraries close theirs. h2o's write notification
 * is one-shot and asserts when armed twice, hence the flag; hiredis' "delete write" cannot cancel it, and the late call is
 * harmless (hiredis finds nothing to write). h2o 2.2.5 has only fixed-duration timeouts, so the adapter keeps one
 * h2o_timeout_t per duration asked for (a handful: the deadline, the connect bound, the backoff steps). */
#include <hiredis/async.h>
#include <stdlib.h>
#include <unistd.h>
#include "base/alloc.h"
#include "api/redis_loop.h"

typedef struct st_duration_t {
    struct st_duration_t *next;
    uint32_t ms;
    h2o_timeout_t timeout;
} duration_t;

typedef struct st_h2o_redis_loop_t {
    recd_redis_loop_t super;
    h2o_evloop_t *loop;
    duration_t *durations;
} h2o_redis_loop_t;

struct st_recd_redis_timer_t {
    h2o_timeout_entry_t entry;
    h2o_redis_loop_t *owner;
    recd_redis_timer_cb cb;
    void *data;
};

/* One hiredis connection's watcher. */
typedef struct st_watch_t {
    redisAsyncContext *ac;
    h2o_socket_t *sock;
    int reading, write_armed;
} watch_t;

static void on_readable(h2o_socket_t *sock, const char *err)
{
    watch_t *w = sock->data;
    redisAsyncHandleRead(w->ac); /* an error or EOF is seen by hiredis' own read */
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    watch_t *w = sock->data;
    w->write_armed = 0;
    redisAsyncHandleWrite(w->ac);
}

static void add_read(void *data)
{
    watch_t *w = data;
    if (!w->reading) {
        w->reading = 1;
        h2o_socket_read_start(w->sock, on_readable);
    }
}

static void del_read(void *data)
{
    watch_t *w = data;
    if (w->reading) {
        w->reading = 0;
        h2o_socket_read_stop(w->sock);
    }
}

static void add_write(void *data)
{
    watch_t *w = data;
    if (!w->write_armed) {
        w->write_armed = 1;
        h2o_socket_notify_write(w->sock, on_writable);
    }
}

static void del_write(void *data)
{
}

static void cleanup(void *data)
{
    watch_t *w = data;
    w->ac->ev.data = NULL;
    h2o_socket_close(w->sock);
    free(w);
}

static int attach(recd_redis_loop_t *l, redisAsyncContext *ac)
{
    h2o_redis_loop_t *hl = (h2o_redis_loop_t *)l;
    int fd;
    if (ac->ev.data != NULL || (fd = dup(ac->c.fd)) < 0)
        return -1;
    watch_t *w = recd_xcalloc(1, sizeof(*w));
    w->ac = ac;
    w->sock = h2o_evloop_socket_create(hl->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    w->sock->data = w;
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    recd_redis_timer_t *t = H2O_STRUCT_FROM_MEMBER(recd_redis_timer_t, entry, entry);
    t->cb(t->data);
}

static recd_redis_timer_t *new_timer(recd_redis_loop_t *l, recd_redis_timer_cb cb, void *data)
{
    recd_redis_timer_t *t = recd_xcalloc(1, sizeof(*t));
    t->owner = (h2o_redis_loop_t *)l;
    t->entry.cb = on_timeout;
    t->cb = cb;
    t->data = data;
    return t;
}

static h2o_timeout_t *timeout_of(h2o_redis_loop_t *hl, uint32_t ms)
{
    duration_t *d;
    for (d = hl->durations; d != NULL; d = d->next)
        if (d->ms == ms)
            return &d->timeout;
    d = recd_xcalloc(1, sizeof(*d));
    d->ms = ms;
    h2o_timeout_init(hl->loop, &d->timeout, ms);
    d->next = hl->durations;
    hl->durations = d;
    return &d->timeout;
}

static void stop_timer(recd_redis_timer_t *t)
{
    if (h2o_timeout_is_linked(&t->entry))
        h2o_timeout_unlink(&t->entry);
}

static void start_timer(recd_redis_timer_t *t, uint32_t ms)
{
    stop_timer(t);
    h2o_timeout_link(t->owner->loop, timeout_of(t->owner, ms), &t->entry);
}

static void free_timer(recd_redis_timer_t *t)
{
    if (t == NULL)
        return;
    stop_timer(t);
    free(t);
}

recd_redis_loop_t *recd_api_redis_loop_create(h2o_evloop_t *loop)
{
    h2o_redis_loop_t *hl = recd_xcalloc(1, sizeof(*hl));
    hl->super = (recd_redis_loop_t){attach, new_timer, start_timer, stop_timer, free_timer};
    hl->loop = loop;
    return &hl->super;
}

void recd_api_redis_loop_free(recd_redis_loop_t *l)
{
    h2o_redis_loop_t *hl = (h2o_redis_loop_t *)l;
    if (hl == NULL)
        return;
    while (hl->durations != NULL) {
        duration_t *d = hl->durations;
        hl->durations = d->next;
        h2o_timeout_dispose(hl->loop, &d->timeout);
        free(d);
    }
    free(hl);
}
