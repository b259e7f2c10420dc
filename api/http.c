/* http.c: reply helpers shared by the endpoints — JSON bodies with Content-Length, JSON errors, 405/413/415 checks, metrics. */
#include <stdio.h>
#include <string.h>
#include "api/api_internal.h"

static uint64_t elapsed_ns(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (uint64_t)(t1.tv_sec - t0->tv_sec) * 1000000000u + (uint64_t)(t1.tv_nsec - t0->tv_nsec);
}

void recd_api_begin(recd_api_call_t *call, h2o_req_t *req, recd_app_t *app, recd_endpoint_t ep)
{
    call->req = req;
    call->app = app;
    call->worker = recd_worker_of(req);
    call->ep = ep;
    clock_gettime(CLOCK_MONOTONIC, &call->t0);
}

void recd_api_end(recd_api_call_t *call)
{
    uint64_t ns = elapsed_ns(&call->t0);
    recd_http_metrics_observe(call->app->metrics, call->worker->index, call->ep, call->req->res.status, ns);
    if (recd_log_enabled(&call->app->log, RECD_LOG_DEBUG)) {
        char qpath[600], qmethod[40];
        recd_log_write(&call->app->log, RECD_LOG_DEBUG, "request",
                       "\"method\":%s,\"path\":%s,\"status\":%d,\"us\":%.1f,\"thread\":%zu",
                       recd_json_quote(qmethod, sizeof(qmethod), call->req->method.base, call->req->method.len),
                       recd_json_quote(qpath, sizeof(qpath), call->req->path.base, call->req->path.len), call->req->res.status,
                       ns / 1000.0, call->worker->index);
    }
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

void recd_api_reply(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t iov = h2o_iovec_init(body, len);
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_start_response(req, &generator);
    h2o_send(req, &iov, 1, H2O_SEND_STATE_FINAL);
}

void recd_api_reply_json(h2o_req_t *req, int status, recd_jw_t *w)
{
    recd_api_reply(req, status, "application/json", w->buf, w->len);
}

static void reply_error_message(h2o_req_t *req, int status, const char *code, const char *message)
{
    recd_jw_t w;
    recd_jw_init_pool(&w, &req->pool, 128 + strlen(message));
    recd_codec_render_error(&w, code, message);
    recd_api_reply_json(req, status, &w);
}

void recd_api_reply_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    reply_error_message(req, status, code, message);
}

void recd_api_reply_not_found(recd_api_call_t *call)
{
    call->ep = RECD_EP_OTHER;
    reply_error_message(call->req, 404, "not_found", "no such endpoint");
}

void recd_api_reply_api_error(h2o_req_t *req, const recd_api_error_t *err)
{
    reply_error_message(req, err->status, err->code, err->message);
}

int recd_api_method_or_reply(h2o_req_t *req, unsigned allowed)
{
    const char *allow;
    if (((allowed & RECD_API_GET) && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) ||
        ((allowed & RECD_API_POST) && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))))
        return 0;
    allow = allowed == (RECD_API_GET | RECD_API_POST) ? "GET, POST" : allowed == RECD_API_POST ? "POST" : "GET";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    recd_api_reply_error(req, 405, "method_not_allowed", "method %.*s is not allowed here (allowed: %s)",
                         (int)(req->method.len > 32 ? 32 : req->method.len), req->method.base, allow);
    return -1;
}

int recd_api_json_body_or_reply(h2o_req_t *req, const recd_app_t *app)
{
    uint64_t limit = app->config->max_body_bytes;
    ssize_t idx;

    if (req->entity.len > limit) {
        recd_api_reply_error(req, 413, "payload_too_large", "the body is larger than %llu bytes", (unsigned long long)limit);
        return -1;
    }
    if ((idx = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_LENGTH, -1)) != -1) {
        h2o_iovec_t v = req->headers.entries[idx].value;
        size_t cl = h2o_strtosize(v.base, v.len);
        if (cl != SIZE_MAX && cl > limit) {
            recd_api_reply_error(req, 413, "payload_too_large", "the body is larger than %llu bytes", (unsigned long long)limit);
            return -1;
        }
    }
    if ((idx = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1)) != -1) {
        h2o_iovec_t v = req->headers.entries[idx].value;
        size_t n = v.len;
        const char *semi = memchr(v.base, ';', v.len);
        if (semi != NULL)
            n = (size_t)(semi - v.base);
        while (n > 0 && (v.base[n - 1] == ' ' || v.base[n - 1] == '\t'))
            --n;
        if (h2o_lcstris(v.base, n, H2O_STRLIT("application/json"))) {
            if (semi == NULL)
                return 0;
            /* only a UTF-8 charset parameter is acceptable */
            const char *p = semi + 1, *end = v.base + v.len;
            while (p < end && (*p == ' ' || *p == '\t'))
                ++p;
            size_t plen = (size_t)(end - p);
            while (plen > 0 && (p[plen - 1] == ' ' || p[plen - 1] == '\t'))
                --plen;
            if (h2o_lcstris(p, plen, H2O_STRLIT("charset=utf-8")) || h2o_lcstris(p, plen, H2O_STRLIT("charset=\"utf-8\"")))
                return 0;
        }
    }
    recd_api_reply_error(req, 415, "unsupported_media_type", "the body must be sent as Content-Type: application/json");
    return -1;
}

h2o_iovec_t recd_api_query(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init("", 0);
    return h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

h2o_iovec_t recd_api_path(h2o_req_t *req)
{
    return h2o_iovec_init(req->path.base, req->query_at == SIZE_MAX ? req->path.len : req->query_at);
}

h2o_iovec_t recd_api_request_id(recd_worker_state_t *w, h2o_mem_pool_t *pool)
{
    static const char hex[] = "0123456789abcdef";
    /* xorshift64*: ids only need to be unique in practice, not unpredictable */
    uint64_t x = w->rng;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    w->rng = x;
    x *= 0x2545f4914f6cdd1dULL;
    char *s = h2o_mem_alloc_pool(pool, 17);
    for (int i = 15; i >= 0; --i, x >>= 4)
        s[i] = hex[x & 15];
    s[16] = '\0';
    return h2o_iovec_init(s, 16);
}
