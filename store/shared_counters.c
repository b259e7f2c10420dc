/* shared_counters.c: Redis hashes as counters shared by processes — HINCRBY in MULTI/EXEC, HGETALL to read. */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/error.h"
#include "base/text.h"
#include "store/shared_counters.h"

struct st_recd_shared_counters_t {
    pthread_mutex_t mutex; /* one round trip at a time on the one connection */
    char *host;
    uint16_t port;
    uint32_t timeout_ms;
    const recd_logger_t *log;
    redisContext *redis; /* NULL while not connected */
    int warned;          /* a failure was logged; the next success logs the recovery */
};

recd_shared_counters_t *recd_shared_counters_create(const char *host, uint16_t port, uint32_t timeout_ms, const recd_logger_t *log)
{
    recd_shared_counters_t *c = recd_xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->mutex, NULL);
    c->host = recd_xstrdup(host);
    c->port = port;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 100;
    c->log = log;
    return c;
}

void recd_shared_counters_free(recd_shared_counters_t *c)
{
    if (c == NULL)
        return;
    if (c->redis != NULL)
        redisFree(c->redis);
    pthread_mutex_destroy(&c->mutex);
    free(c->host);
    free(c);
}

static void fail(recd_shared_counters_t *c, const char *what)
{
    if (!c->warned && c->log != NULL) {
        char q[512];
        recd_log(c->log, RECD_LOG_WARN, "shared counters: Redis unavailable; counts stay local until it answers", "\"error\":%s",
                 recd_json_quote(q, sizeof(q), what, strlen(what)));
    }
    c->warned = 1;
    if (c->redis != NULL)
        redisFree(c->redis);
    c->redis = NULL;
}

static int ensure_connected(recd_shared_counters_t *c)
{
    if (c->redis != NULL)
        return 0;
    struct timeval tv = {c->timeout_ms / 1000, (long)(c->timeout_ms % 1000) * 1000};
    c->redis = redisConnectWithTimeout(c->host, c->port, tv);
    if (c->redis == NULL || c->redis->err) {
        fail(c, c->redis != NULL ? c->redis->errstr : "out of memory");
        return -1;
    }
    redisSetTimeout(c->redis, tv);
    return 0;
}

static void succeeded(recd_shared_counters_t *c)
{
    if (c->warned && c->log != NULL)
        recd_log(c->log, RECD_LOG_INFO, "shared counters: Redis answers again", "\"port\":%d", c->port);
    c->warned = 0;
}

/* Reads the next reply; a transport failure drops the connection. */
static redisReply *next_reply(recd_shared_counters_t *c)
{
    void *r = NULL;
    if (redisGetReply(c->redis, &r) != REDIS_OK || r == NULL) {
        fail(c, c->redis->errstr[0] ? c->redis->errstr : "no reply");
        return NULL;
    }
    return r;
}

int recd_shared_counters_add(recd_shared_counters_t *c, const char *key, const char *const *fields, const uint64_t *deltas,
                             size_t n, uint32_t ttl_s)
{
    size_t queued = 0;
    int ret = RECD_EIO;

    for (size_t i = 0; i < n; ++i)
        queued += deltas[i] != 0;
    if (queued == 0)
        return 0;
    pthread_mutex_lock(&c->mutex);
    if (ensure_connected(c) != 0)
        goto Exit;
    redisAppendCommand(c->redis, "MULTI");
    for (size_t i = 0; i < n; ++i)
        if (deltas[i] != 0)
            redisAppendCommand(c->redis, "HINCRBY %s %s %llu", key, fields[i], (unsigned long long)deltas[i]);
    if (ttl_s > 0)
        redisAppendCommand(c->redis, "EXPIRE %s %u", key, ttl_s);
    redisAppendCommand(c->redis, "EXEC");
    /* MULTI's +OK, one +QUEUED per command, then EXEC's array (NULL-typed or an error when the transaction failed) */
    size_t n_replies = 1 + queued + (ttl_s > 0) + 1;
    int ok = 1;
    for (size_t i = 0; i < n_replies; ++i) {
        redisReply *r = next_reply(c);
        if (r == NULL)
            goto Exit;
        if (r->type == REDIS_REPLY_ERROR || (i == n_replies - 1 && r->type != REDIS_REPLY_ARRAY))
            ok = 0;
        freeReplyObject(r);
    }
    if (!ok) {
        fail(c, "the counter transaction was refused");
        goto Exit;
    }
    succeeded(c);
    ret = 0;
Exit:
    pthread_mutex_unlock(&c->mutex);
    return ret;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int recd_shared_counters_read(recd_shared_counters_t *c, const char *key, recd_shared_counters_field_cb cb, void *data)
{
    int ret = RECD_EIO;
    pthread_mutex_lock(&c->mutex);
    if (ensure_connected(c) != 0)
        goto Exit;
    redisAppendCommand(c->redis, "HGETALL %s", key);
    redisReply *r = next_reply(c);
    if (r == NULL)
        goto Exit;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        fail(c, "HGETALL did not answer a hash");
        goto Exit;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        uint64_t value;
        if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING && parse_u64(v->str, v->len, &value) == 0)
            cb(data, f->str, f->len, value);
    }
    freeReplyObject(r);
    succeeded(c);
    ret = 0;
Exit:
    pthread_mutex_unlock(&c->mutex);
    return ret;
}
