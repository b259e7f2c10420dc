/* http.c: what the endpoints share — per-context state, per-endpoint metrics, JSON replies with Content-Length, 405/413/415. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "api/api_internal.h"
#include "api/auth.h"

recd_api_endpoint_t *recd_api_endpoint(recd_api_t *api, const char *name)
{
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
    char labels[160];
    recd_api_endpoint_t *ep = recd_xcalloc(1, sizeof(*ep));
    ep->name = recd_xstrdup(name);
    snprintf(labels, sizeof(labels), "endpoint=\"%s\"", name);
    ep->duration =
        recd_metrics_histogram(api->metrics, "recd_http_request_duration_seconds", "Time from request to response by endpoint.",
                               labels, bounds, sizeof(bounds) / sizeof(bounds[0]));
    ep->next = api->endpoints;
    api->endpoints = ep;
    return ep;
}

recd_api_context_t *recd_api_context_of(recd_api_t *api, h2o_req_t *req)
{
    return *h2o_context_get_storage(req->conn->ctx, &api->storage_key, NULL);
}

void recd_api_count(recd_api_t *api, recd_api_endpoint_t *ep, size_t slot, int status, uint64_t duration_ns)
{
    size_t si = status >= 100 && status <= 599 ? (size_t)(status - 100) : RECD_API_STATUS_OTHER;
    recd_metric_t *c = atomic_load_explicit(&ep->by_status[si], memory_order_acquire);
    if (c == NULL) {
        /* first answer with this status here: register its series (the registry's mutex makes racing threads agree) */
        char labels[200];
        if (si == RECD_API_STATUS_OTHER)
            snprintf(labels, sizeof(labels), "endpoint=\"%s\",status=\"other\"", ep->name);
        else
            snprintf(labels, sizeof(labels), "endpoint=\"%s\",status=\"%d\"", ep->name, status);
        c = recd_metrics_counter(api->metrics, "recd_http_requests_total", "HTTP requests by endpoint and status code.", labels);
        atomic_store_explicit(&ep->by_status[si], c, memory_order_release);
    }
    recd_metric_add(c, slot, 1);
    recd_metric_observe(ep->duration, slot, duration_ns / 1e9);
}

recd_api_call_t *recd_api_begin(h2o_req_t *req, recd_api_t *api, recd_api_endpoint_t *ep)
{
    recd_api_call_t *call = h2o_mem_alloc_pool(&req->pool, sizeof(*call));
    *call = (recd_api_call_t){req, api, recd_api_context_of(api, req), ep, recd_monotonic_ns()};
    return call;
}

void recd_api_end(recd_api_call_t *call)
{
    uint64_t ns = recd_monotonic_ns() - call->t0_ns;
    recd_api_count(call->api, call->ep, call->ctx->slot, call->req->res.status, ns);
    if (recd_log_enabled(call->api->log, RECD_LOG_DEBUG)) {
        char qpath[600], qmethod[40];
        recd_log_write(call->api->log, RECD_LOG_DEBUG, "request",
                       "\"method\":%s,\"path\":%s,\"status\":%d,\"us\":%.1f,\"thread\":%zu",
                       recd_json_quote(qmethod, sizeof(qmethod), call->req->method.base, call->req->method.len),
                       recd_json_quote(qpath, sizeof(qpath), call->req->path.base, call->req->path.len), call->req->res.status,
                       ns / 1000.0, call->ctx->slot);
    }
}

const char *recd_api_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
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
    req->res.reason = recd_api_reason(status);
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
    call->ep = call->api->other;
    reply_error_message(call->req, 404, "not_found", "no such endpoint");
}

void recd_api_reply_api_error(h2o_req_t *req, const recd_api_error_t *err)
{
    reply_error_message(req, err->status, err->code, err->message);
}

int recd_api_method_or_reply(h2o_req_t *req, unsigned allowed)
{
    static const char *const names[] = {"GET", "POST", "PUT", "DELETE"};
    char allow[40] = "";
    size_t n = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
        if (!(allowed & (1u << i)))
            continue;
        if (h2o_memis(req->method.base, req->method.len, names[i], strlen(names[i])))
            return 0;
        n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n > 0 ? ", " : "", names[i]);
    }
    char *value = h2o_mem_alloc_pool(&req->pool, n + 1);
    memcpy(value, allow, n + 1);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, value, n);
    recd_api_reply_error(req, 405, "method_not_allowed", "method %.*s is not allowed here (allowed: %s)",
                         (int)(req->method.len > 32 ? 32 : req->method.len), req->method.base, allow);
    return -1;
}

int recd_api_json_body_or_reply(h2o_req_t *req, uint64_t limit)
{
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

int recd_api_authorize_or_reply(recd_api_call_t *call, unsigned need)
{
    recd_api_t *api = call->api;
    h2o_req_t *req = call->req;
    char why[256];
    int status;

    if (!(need & RECD_AUTH_SCOPE_ADMIN) && !api->config->jwt_public_scopes)
        return 0;
    if (api->auth == NULL) {
        recd_api_reply_error(req, 403, "admin_disabled",
                             "admin endpoints are disabled: start recd with --jwt-hs256-secret-file FILE or "
                             "--jwt-rs256-public-key FILE and send a token with the admin scope");
        return -1;
    }
    ssize_t idx = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    const char *value = idx != -1 ? req->headers.entries[idx].value.base : NULL;
    size_t len = idx != -1 ? req->headers.entries[idx].value.len : 0;
    if ((status = recd_auth_check(api->auth, call->ctx->auth_cache, value, len, need, (int64_t)recd_realtime_seconds(), why,
                                  sizeof(why))) == 0)
        return 0;
    if (status == 401) {
        static const char challenge[] = "Bearer realm=\"recd\"";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, challenge, sizeof(challenge) - 1);
        recd_api_reply_error(req, 401, "unauthorized", "%s", why);
    } else {
        recd_api_reply_error(req, 403, "forbidden", "%s", why);
    }
    return -1;
}
