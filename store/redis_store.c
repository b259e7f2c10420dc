/* redis_store.c: the Redis feature store — pipelined lookups with deadlines, fire-and-forget writes, reconnect, breaker.
 *
 * DESIGN: every worker thread has its own hiredis async connection driven by its own loop (a thread-local pointer finds
 * it), so a lookup never crosses threads. A lookup pipelines HGET vec, LRANGE recent, HGETALL attr in one write; hiredis
 * answers them in order, so the third reply completes the request. Each request has its own deadline timer: when it
 * fires first, the caller is answered "no state" at once and the late replies, which still arrive, are read and dropped
 * (the record lives until the last of its replies, or the disconnect, has been seen). Consecutive timeouts open a circuit
 * breaker: lookups are then answered at once without touching Redis, and a PING probe, retried with backoff, closes it
 * again. A lost connection answers everything pending, and reconnects with exponential backoff; while it is away the
 * store costs a request nothing but a counter. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/error.h"
#include "base/hash.h"
#include "base/text.h"
#include "store/redis_store.h"

#define CONNECT_TIMEOUT_MS 1000
#define N_READ_COMMANDS 3

enum { REASON_TIMEOUT, REASON_DOWN, REASON_ERROR, N_REASONS };

typedef struct st_redis_store_t {
    recd_feature_store_t super;
    recd_redis_config_t config;
    char *host;
    const recd_logger_t *log;
    recd_metric_t *fallbacks[N_REASONS];
    recd_metric_t *lookups, *reconnects, *breaker_opens, *writes_dropped, *write_errors;
} redis_store_t;

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_READY, CONN_OPEN } conn_state_t;

typedef struct st_req_t {
    struct st_req_t *next_free;
    struct st_recd_redis_conn_t *conn;
    recd_redis_timer_t *deadline;
    int answered;     /* the caller has its answer (in time, or "no state" on the deadline) */
    int replies_left; /* replies hiredis still owes this record */
    int error;        /* an error reply was seen */
    recd_feature_user_t *out;
    recd_feature_get_cb cb;
    void *data;
    recd_store_alloc_cb alloc;
    void *alloc_ctx;
    uint32_t n_factors;
} req_t;

struct st_recd_redis_conn_t {
    redis_store_t *store;
    recd_redis_loop_t *loop;
    size_t slot;
    redisAsyncContext *ac;
    conn_state_t state;
    int closing;
    uint32_t failures;   /* consecutive timeouts */
    uint32_t backoff_ms; /* next reconnect delay */
    uint32_t probe_ms;   /* next probe delay while the breaker is open */
    uint64_t probe_gen;  /* the probe whose PING counts; older PING replies are ignored */
    int probe_pending;
    recd_redis_timer_t *reconnect_timer, *connect_timer, *probe_timer, *probe_deadline;
    req_t *free_reqs;
    char *scratch; /* keys and values of the command being built */
    size_t scratch_cap;
};

static __thread recd_redis_conn_t *current_conn;

static const recd_feature_store_ops_t redis_store_ops;

static void count(recd_redis_conn_t *c, recd_metric_t *m)
{
    if (m != NULL)
        recd_metric_add(m, c->slot, 1);
}

/* ---- keys -------------------------------------------------------------------------------------------------------- */

/* Makes the scratch buffer at least n bytes; pointers into it are invalidated. */
static char *reserve_scratch(recd_redis_conn_t *c, size_t n)
{
    if (c->scratch_cap < n) {
        free(c->scratch);
        c->scratch_cap = n < 256 ? 256 : n * 2;
        c->scratch = recd_xmalloc(c->scratch_cap);
    }
    return c->scratch;
}

/* Writes "recd:u:{<user>}:<kind>" at p; returns its length. p has room for ulen + 16 + strlen(kind). */
static size_t write_key(char *p, const char *user, size_t ulen, const char *kind)
{
    size_t n = 0, klen = strlen(kind);
    memcpy(p, "recd:u:{", 8), n += 8;
    memcpy(p + n, user, ulen), n += ulen;
    memcpy(p + n, "}:", 2), n += 2;
    memcpy(p + n, kind, klen), n += klen;
    return n;
}

#define KEY_ROOM(ulen) ((ulen) + 24)

/* Writes "<model>@<version>" at p (room for strlen(model) + 21); returns its length. A NULL model is "". */
static size_t write_field(char *p, const char *model, uint64_t version)
{
    return (size_t)sprintf(p, "%s@%llu", model != NULL ? model : "", (unsigned long long)version);
}

/* float32 little-endian on the wire whatever the host's order. */
static void floats_to_le(const float *v, uint32_t n, unsigned char *out)
{
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        out[4 * i] = (unsigned char)u, out[4 * i + 1] = (unsigned char)(u >> 8);
        out[4 * i + 2] = (unsigned char)(u >> 16), out[4 * i + 3] = (unsigned char)(u >> 24);
    }
}

static void floats_from_le(const unsigned char *in, uint32_t n, float *v)
{
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t u =
            (uint32_t)in[4 * i] | (uint32_t)in[4 * i + 1] << 8 | (uint32_t)in[4 * i + 2] << 16 | (uint32_t)in[4 * i + 3] << 24;
        memcpy(&v[i], &u, 4);
    }
}

/* ---- connection life --------------------------------------------------------------------------------------------- */

static void connect_now(recd_redis_conn_t *c);

static void schedule_reconnect(recd_redis_conn_t *c)
{
    c->state = CONN_DOWN;
    c->probe_pending = 0;
    c->loop->timer_stop(c->connect_timer);
    c->loop->timer_stop(c->probe_timer);
    c->loop->timer_stop(c->probe_deadline);
    if (c->closing)
        return;
    c->loop->timer_start(c->reconnect_timer, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 < c->store->config.backoff_max_ms ? c->backoff_ms * 2 : c->store->config.backoff_max_ms;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    recd_redis_conn_t *c = ac->data;
    c->loop->timer_stop(c->connect_timer);
    if (status != REDIS_OK) {
        /* hiredis frees ac after this callback (no disconnect callback follows a failed connect) */
        recd_log(c->store->log, RECD_LOG_DEBUG, "redis connect failed", "\"slot\":%zu,\"retry_ms\":%u", c->slot, c->backoff_ms);
        c->ac = NULL;
        schedule_reconnect(c);
        return;
    }
    c->state = CONN_READY;
    c->failures = 0;
    c->backoff_ms = c->store->config.backoff_min_ms;
    c->probe_ms = c->store->config.breaker_probe_ms;
    count(c, c->store->reconnects);
    recd_log(c->store->log, RECD_LOG_INFO, "redis connected", "\"slot\":%zu", c->slot);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    recd_redis_conn_t *c = ac->data;
    c->ac = NULL; /* hiredis frees it after this callback */
    if (!c->closing)
        recd_log(c->store->log, RECD_LOG_WARN, "redis connection lost", "\"slot\":%zu,\"retry_ms\":%u", c->slot, c->backoff_ms);
    schedule_reconnect(c);
}

static void connect_now(recd_redis_conn_t *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->store->host, c->store->config.port);
    if (ac == NULL || ac->err != 0 || c->loop->attach(c->loop, ac) != 0) {
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->state = CONN_CONNECTING;
    /* after attach: setting the connect callback arms the first write event through the adapter */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->loop->timer_start(c->connect_timer, CONNECT_TIMEOUT_MS);
}

static void on_reconnect_timer(void *data)
{
    connect_now(data);
}

/* A connect that neither succeeded nor failed in time (a black-holed address): give up on it and back off. */
static void on_connect_timeout(void *data)
{
    recd_redis_conn_t *c = data;
    if (c->state != CONN_CONNECTING || c->ac == NULL)
        return;
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    redisAsyncFree(ac); /* not connected yet: no disconnect callback, no pending lookups */
    schedule_reconnect(c);
}

/* ---- circuit breaker ------------------------------------------------------------------------------------------- */

static void on_probe_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    recd_redis_conn_t *c = ac->data;
    redisReply *reply = r;
    if (reply == NULL || c->state != CONN_OPEN || !c->probe_pending || (uint64_t)(uintptr_t)privdata != c->probe_gen)
        return;
    c->probe_pending = 0;
    c->loop->timer_stop(c->probe_deadline);
    if (reply->type == REDIS_REPLY_ERROR) {
        c->loop->timer_start(c->probe_timer, c->probe_ms);
        return;
    }
    c->state = CONN_READY;
    c->failures = 0;
    c->probe_ms = c->store->config.breaker_probe_ms;
    recd_log(c->store->log, RECD_LOG_INFO, "redis circuit breaker closed", "\"slot\":%zu", c->slot);
}

static void on_probe_timer(void *data)
{
    recd_redis_conn_t *c = data;
    if (c->state != CONN_OPEN || c->ac == NULL)
        return;
    ++c->probe_gen;
    c->probe_pending = 1;
    redisAsyncCommand(c->ac, on_probe_reply, (void *)(uintptr_t)c->probe_gen, "PING");
    c->loop->timer_start(c->probe_deadline, c->store->config.timeout_ms);
}

/* The probe missed its deadline: Redis is still stalled; probe again later, backing off. */
static void on_probe_deadline(void *data)
{
    recd_redis_conn_t *c = data;
    if (c->state != CONN_OPEN)
        return;
    c->probe_pending = 0;
    c->probe_ms = c->probe_ms * 2 < c->store->config.backoff_max_ms ? c->probe_ms * 2 : c->store->config.backoff_max_ms;
    c->loop->timer_start(c->probe_timer, c->probe_ms);
}

static void note_timeout(recd_redis_conn_t *c)
{
    if (c->state != CONN_READY || ++c->failures < c->store->config.breaker_failures)
        return;
    c->state = CONN_OPEN;
    count(c, c->store->breaker_opens);
    recd_log(c->store->log, RECD_LOG_WARN, "redis circuit breaker open", "\"slot\":%zu,\"timeouts\":%u,\"probe_ms\":%u", c->slot,
             c->failures, c->probe_ms);
    c->loop->timer_start(c->probe_timer, c->probe_ms);
}

/* ---- lookups ------------------------------------------------------------------------------------------------------ */

static void answer(req_t *q, int err, int reason)
{
    recd_redis_conn_t *c = q->conn;
    q->answered = 1;
    c->loop->timer_stop(q->deadline);
    if (err != 0 && err != RECD_ENOTFOUND) {
        memset(q->out, 0, sizeof(*q->out));
        count(c, c->store->fallbacks[reason]);
    }
    q->cb(q->data, err);
}

static void release_reply(req_t *q)
{
    if (--q->replies_left > 0)
        return;
    q->next_free = q->conn->free_reqs;
    q->conn->free_reqs = q;
}

static void on_deadline(void *data)
{
    req_t *q = data;
    if (q->answered)
        return;
    answer(q, RECD_EIO, REASON_TIMEOUT);
    note_timeout(q->conn);
}

/* Whether reply is usable; a NULL reply (connection gone) or an error reply answers the request when it still waits. */
static int reply_ok(req_t *q, redisReply *reply)
{
    if (reply == NULL) {
        if (!q->answered)
            answer(q, RECD_EIO, REASON_DOWN);
        return 0;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        q->error = 1;
        return 0;
    }
    return !q->answered;
}

static void on_vec(redisAsyncContext *ac, void *r, void *privdata)
{
    req_t *q = privdata;
    redisReply *reply = r;
    if (reply_ok(q, reply) && reply->type == REDIS_REPLY_STRING && q->n_factors > 0 && reply->len == (size_t)q->n_factors * 4) {
        q->out->vec = q->alloc(q->alloc_ctx, sizeof(float) * q->n_factors);
        q->out->n_factors = q->n_factors;
        floats_from_le((const unsigned char *)reply->str, q->n_factors, q->out->vec);
    }
    release_reply(q);
}

/* Parses "<weight>\t<item>"; returns 0, or -1 for an element that is not one (skipped). */
static int parse_recent(const char *s, size_t len, float *weight, const char **item, size_t *ilen)
{
    const char *tab = memchr(s, '\t', len);
    char num[32];
    if (tab == NULL || tab == s || (size_t)(tab - s) >= sizeof(num) || tab + 1 == s + len)
        return -1;
    memcpy(num, s, (size_t)(tab - s));
    num[tab - s] = '\0';
    char *end;
    *weight = strtof(num, &end);
    if (*end != '\0' || !isfinite(*weight))
        return -1;
    *item = tab + 1;
    *ilen = (size_t)(s + len - *item);
    return 0;
}

static void on_recent(redisAsyncContext *ac, void *r, void *privdata)
{
    req_t *q = privdata;
    redisReply *reply = r;
    if (reply_ok(q, reply) && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        recd_feature_item_t *items = q->alloc(q->alloc_ctx, sizeof(*items) * reply->elements);
        size_t n = 0;
        uint64_t seq = 0;
        /* newest first on the wire, oldest first in the answer */
        for (size_t i = reply->elements; i-- > 0;) {
            redisReply *e = reply->element[i];
            const char *item;
            size_t ilen;
            float w;
            if (e->type != REDIS_REPLY_STRING || parse_recent(e->str, e->len, &w, &item, &ilen) != 0)
                continue;
            char *id = q->alloc(q->alloc_ctx, ilen + 1);
            memcpy(id, item, ilen);
            id[ilen] = '\0';
            items[n++] = (recd_feature_item_t){id, ilen, w};
            seq = recd_hash_bytes(e->str, e->len, seq);
        }
        q->out->items = items;
        q->out->n_items = n;
        q->out->seq = seq; /* the state's identity: equal lists, equal seq */
    }
    release_reply(q);
}

static void on_attr(redisAsyncContext *ac, void *r, void *privdata)
{
    req_t *q = privdata;
    redisReply *reply = r;
    /* attributes are reserved: read in the same round trip, not used yet */
    reply_ok(q, reply); /* answers "down" for a NULL reply, notes an error reply */
    if (reply != NULL && !q->answered) {
        q->conn->failures = 0; /* Redis answered in time */
        int found = q->out->vec != NULL || q->out->n_items > 0;
        answer(q, q->error ? RECD_EIO : found ? 0 : RECD_ENOTFOUND, REASON_ERROR);
    }
    release_reply(q);
}

static req_t *take_req(recd_redis_conn_t *c)
{
    req_t *q = c->free_reqs;
    if (q != NULL) {
        c->free_reqs = q->next_free;
    } else {
        q = recd_xcalloc(1, sizeof(*q));
        q->conn = c;
        q->deadline = c->loop->timer_create(c->loop, on_deadline, q);
    }
    return q;
}

/* The calling thread's connection to s, or NULL. */
static recd_redis_conn_t *conn_of(redis_store_t *st)
{
    recd_redis_conn_t *c = current_conn;
    return c != NULL && c->store == st ? c : NULL;
}

static int store_get(recd_feature_store_t *s, const recd_feature_query_t *qy, recd_feature_user_t *out, recd_feature_get_cb cb,
                     void *data)
{
    redis_store_t *st = (redis_store_t *)s;
    recd_redis_conn_t *c = conn_of(st);
    memset(out, 0, sizeof(*out));
    if (c == NULL) {
        if (st->fallbacks[REASON_DOWN] != NULL)
            recd_metric_add(st->fallbacks[REASON_DOWN], RECD_METRICS_SHARED, 1);
        return RECD_EIO;
    }
    count(c, st->lookups);
    if (c->state != CONN_READY) {
        count(c, st->fallbacks[REASON_DOWN]);
        return RECD_EIO;
    }

    size_t ulen = qy->user_len, room = 3 * KEY_ROOM(ulen) + (qy->model != NULL ? strlen(qy->model) : 0) + 48;
    char *p = reserve_scratch(c, room);
    const char *argv[4];
    size_t argvlen[4];
    char *vec_key = p, *recent_key, *attr_key, *field, *stop;
    size_t vec_len = write_key(vec_key, qy->user, ulen, "vec");
    recent_key = vec_key + vec_len;
    size_t recent_len = write_key(recent_key, qy->user, ulen, "recent");
    attr_key = recent_key + recent_len;
    size_t attr_len = write_key(attr_key, qy->user, ulen, "attr");
    field = attr_key + attr_len;
    size_t field_len = write_field(field, qy->model, qy->model_version);
    stop = field + field_len;
    size_t stop_len = (size_t)sprintf(stop, "%u", st->config.max_recent - 1);

    req_t *q = take_req(c);
    q->answered = 0;
    q->error = 0;
    q->replies_left = N_READ_COMMANDS;
    q->out = out;
    q->cb = cb;
    q->data = data;
    q->alloc = qy->alloc;
    q->alloc_ctx = qy->alloc_ctx;
    q->n_factors = qy->n_factors;

    /* one pipeline: hiredis buffers all three and writes them together when the socket is writable */
    argv[0] = "HGET", argvlen[0] = 4;
    argv[1] = vec_key, argvlen[1] = vec_len;
    argv[2] = field, argvlen[2] = field_len;
    int rc = redisAsyncCommandArgv(c->ac, on_vec, q, 3, argv, argvlen);
    argv[0] = "LRANGE", argvlen[0] = 6;
    argv[1] = recent_key, argvlen[1] = recent_len;
    argv[2] = "0", argvlen[2] = 1;
    argv[3] = stop, argvlen[3] = stop_len;
    rc |= redisAsyncCommandArgv(c->ac, on_recent, q, 4, argv, argvlen);
    argv[0] = "HGETALL", argvlen[0] = 7;
    argv[1] = attr_key, argvlen[1] = attr_len;
    rc |= redisAsyncCommandArgv(c->ac, on_attr, q, 2, argv, argvlen);
    if (rc != REDIS_OK) {
        /* only when hiredis is disconnecting: the commands it refused owe no reply */
        q->replies_left = 0;
        q->next_free = c->free_reqs;
        c->free_reqs = q;
        count(c, st->fallbacks[REASON_DOWN]);
        return RECD_EIO;
    }
    c->loop->timer_start(q->deadline, st->config.timeout_ms);
    return RECD_FEATURE_PENDING;
}

/* ---- writes ------------------------------------------------------------------------------------------------------- */

static void on_write_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    recd_redis_conn_t *c = ac->data;
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        count(c, c->store->write_errors);
        recd_log(c->store->log, RECD_LOG_WARN, "redis write failed", "\"slot\":%zu,\"error\":\"%.200s\"", c->slot, reply->str);
    }
}

/* The connection writes may use now, or NULL (the drop is counted). */
static recd_redis_conn_t *writable_conn(redis_store_t *st)
{
    recd_redis_conn_t *c = conn_of(st);
    if (c != NULL && c->state == CONN_READY)
        return c;
    if (st->writes_dropped != NULL)
        recd_metric_add(st->writes_dropped, c != NULL ? c->slot : RECD_METRICS_SHARED, 1);
    return NULL;
}

static void store_append(recd_feature_store_t *s, const char *user, size_t ulen, const recd_feature_item_t *items, size_t n)
{
    redis_store_t *st = (redis_store_t *)s;
    recd_redis_conn_t *c;
    if (n == 0 || (c = writable_conn(st)) == NULL)
        return;

    size_t room = 2 * KEY_ROOM(ulen) + 48;
    for (size_t i = 0; i < n; ++i)
        room += items[i].len + 24;
    char *p = reserve_scratch(c, room);
    const char **argv = recd_xmalloc(sizeof(*argv) * (n + 2));
    size_t *argvlen = recd_xmalloc(sizeof(*argvlen) * (n + 2));

    char *recent_key = p;
    size_t recent_len = write_key(recent_key, user, ulen, "recent");
    char *vec_key = recent_key + recent_len;
    size_t vec_len = write_key(vec_key, user, ulen, "vec");
    char *v = vec_key + vec_len;
    argv[0] = "LPUSH", argvlen[0] = 5;
    argv[1] = recent_key, argvlen[1] = recent_len;
    /* oldest first in, so the newest ends up at the head */
    for (size_t i = 0; i < n; ++i) {
        int w = sprintf(v, "%.9g\t", items[i].weight);
        memcpy(v + w, items[i].id, items[i].len);
        argv[2 + i] = v, argvlen[2 + i] = (size_t)w + items[i].len;
        v += argvlen[2 + i];
    }
    redisAsyncCommandArgv(c->ac, on_write_reply, NULL, (int)(n + 2), argv, argvlen);
    redisAsyncCommand(c->ac, on_write_reply, NULL, "LTRIM %b 0 %u", recent_key, recent_len, st->config.max_recent - 1);
    redisAsyncCommand(c->ac, on_write_reply, NULL, "EXPIRE %b %u", recent_key, recent_len, st->config.recent_ttl_s);
    /* the stored vectors were folded from the previous items: the next lookup re-folds */
    redisAsyncCommand(c->ac, on_write_reply, NULL, "DEL %b", vec_key, vec_len);
    free(argv);
    free(argvlen);
}

static void store_put_vector(recd_feature_store_t *s, const char *user, size_t ulen, uint64_t seq, const char *model,
                             uint64_t model_version, const float *vec, uint32_t n_factors)
{
    redis_store_t *st = (redis_store_t *)s;
    recd_redis_conn_t *c;
    if (n_factors == 0 || (c = writable_conn(st)) == NULL)
        return;

    size_t flen = (model != NULL ? strlen(model) : 0) + 24;
    char *p = reserve_scratch(c, 2 * KEY_ROOM(ulen) + 2 * flen + 24 + (size_t)n_factors * 4);
    char *vec_key = p;
    size_t vec_len = write_key(vec_key, user, ulen, "vec");
    char *stamp_key = vec_key + vec_len;
    size_t stamp_len = write_key(stamp_key, user, ulen, "stamp");
    char *field = stamp_key + stamp_len;
    size_t field_len = write_field(field, model, model_version);
    char *stamp = field + field_len;
    size_t stamp_val_len = write_field(stamp, model, model_version);
    stamp_val_len += (size_t)sprintf(stamp + stamp_val_len, " %llu", (unsigned long long)seq);
    unsigned char *bytes = (unsigned char *)stamp + stamp_val_len;
    floats_to_le(vec, n_factors, bytes);

    redisAsyncCommand(c->ac, on_write_reply, NULL, "HSET %b %b %b", vec_key, vec_len, field, field_len, bytes,
                      (size_t)n_factors * 4);
    redisAsyncCommand(c->ac, on_write_reply, NULL, "EXPIRE %b %u", vec_key, vec_len, st->config.vec_ttl_s);
    redisAsyncCommand(c->ac, on_write_reply, NULL, "SET %b %b EX %u", stamp_key, stamp_len, stamp, stamp_val_len,
                      st->config.vec_ttl_s);
}

/* ---- the store ----------------------------------------------------------------------------------------------------- */

static size_t store_count(recd_feature_store_t *s)
{
    return 0;
}

static void store_free(recd_feature_store_t *s)
{
    redis_store_t *st = (redis_store_t *)s;
    free(st->host);
    free(st);
}

/* The address of host as a numeric string: hiredis resolves names with a blocking getaddrinfo on every connect, which
 * must not happen on a worker's loop, so a name is resolved once here (NULL when it does not resolve). */
static char *resolve_host(const char *host)
{
    struct addrinfo hints = {0}, *list = NULL;
    char buf[INET6_ADDRSTRLEN];
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &list) != 0 || list == NULL)
        return NULL;
    const struct addrinfo *ai = list;
    for (const struct addrinfo *a = list; a != NULL; a = a->ai_next)
        if (a->ai_family == AF_INET) { /* "localhost" means 127.0.0.1, where redis-server binds by default */
            ai = a;
            break;
        }
    const void *addr = ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                                                 : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    char *ret = inet_ntop(ai->ai_family, addr, buf, sizeof(buf)) != NULL ? recd_xstrdup(buf) : NULL;
    freeaddrinfo(list);
    return ret;
}

static const recd_feature_store_ops_t redis_store_ops = {store_get, store_append, store_put_vector, store_count, store_free};

recd_feature_store_t *recd_redis_store_create(const recd_redis_config_t *config, recd_metrics_t *metrics, const recd_logger_t *log)
{
    redis_store_t *st = recd_xcalloc(1, sizeof(*st));
    st->super.ops = &redis_store_ops;
    st->config = *config;
    if ((st->host = resolve_host(config->host)) == NULL) {
        recd_log(log, RECD_LOG_WARN, "redis host does not resolve; connects will retry it as given", "%s", "");
        st->host = recd_xstrdup(config->host);
    }
    st->config.host = st->host;
    st->log = log;
    if (st->config.timeout_ms == 0)
        st->config.timeout_ms = 1;
    if (st->config.max_recent == 0)
        st->config.max_recent = 1;
    if (st->config.breaker_failures == 0)
        st->config.breaker_failures = 5;
    if (st->config.breaker_probe_ms == 0)
        st->config.breaker_probe_ms = 200;
    if (st->config.backoff_min_ms == 0)
        st->config.backoff_min_ms = 20;
    if (st->config.backoff_max_ms == 0)
        st->config.backoff_max_ms = 2000;
    if (st->config.backoff_max_ms < st->config.backoff_min_ms)
        st->config.backoff_max_ms = st->config.backoff_min_ms;
    if (metrics != NULL) {
        static const char *const reasons[N_REASONS] = {"reason=\"timeout\"", "reason=\"down\"", "reason=\"error\""};
        for (int i = 0; i < N_REASONS; ++i)
            st->fallbacks[i] = recd_metrics_counter(
                metrics, "recd_redis_fallbacks_total",
                "User lookups answered without Redis (the pipeline falls back to fold-in or popularity), by reason.", reasons[i]);
        st->lookups = recd_metrics_counter(metrics, "recd_redis_lookups_total", "User lookups asked of Redis.", NULL);
        st->reconnects = recd_metrics_counter(metrics, "recd_redis_connects_total", "Connections to Redis established.", NULL);
        st->breaker_opens =
            recd_metrics_counter(metrics, "recd_redis_breaker_opens_total", "Times a connection's circuit breaker opened.", NULL);
        st->writes_dropped = recd_metrics_counter(metrics, "recd_redis_writes_dropped_total",
                                                  "Feature writes not sent because Redis was away.", NULL);
        st->write_errors =
            recd_metrics_counter(metrics, "recd_redis_write_errors_total", "Feature writes Redis answered with an error.", NULL);
    }
    return &st->super;
}

recd_redis_conn_t *recd_redis_store_attach(recd_feature_store_t *s, size_t slot, recd_redis_loop_t *loop)
{
    redis_store_t *st = (redis_store_t *)s;
    recd_redis_conn_t *c = recd_xcalloc(1, sizeof(*c));
    c->store = st;
    c->loop = loop;
    c->slot = slot;
    c->state = CONN_DOWN;
    c->backoff_ms = st->config.backoff_min_ms;
    c->probe_ms = st->config.breaker_probe_ms;
    c->reconnect_timer = loop->timer_create(loop, on_reconnect_timer, c);
    c->connect_timer = loop->timer_create(loop, on_connect_timeout, c);
    c->probe_timer = loop->timer_create(loop, on_probe_timer, c);
    c->probe_deadline = loop->timer_create(loop, on_probe_deadline, c);
    current_conn = c;
    connect_now(c);
    return c;
}

int recd_redis_conn_ready(const recd_redis_conn_t *c)
{
    return c->state == CONN_READY;
}

void recd_redis_conn_close(recd_redis_conn_t *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    if (c->ac != NULL) {
        redisAsyncContext *ac = c->ac;
        redisAsyncFree(ac); /* answers every pending callback with a NULL reply; on_disconnect clears c->ac */
        c->ac = NULL;
    }
    c->loop->timer_free(c->reconnect_timer);
    c->loop->timer_free(c->connect_timer);
    c->loop->timer_free(c->probe_timer);
    c->loop->timer_free(c->probe_deadline);
    while (c->free_reqs != NULL) {
        req_t *q = c->free_reqs;
        c->free_reqs = q->next_free;
        c->loop->timer_free(q->deadline);
        free(q);
    }
    if (current_conn == c)
        current_conn = NULL;
    free(c->scratch);
    free(c);
}
