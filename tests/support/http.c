/* http.c: a tiny HTTP/1.1 client for tests. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "base/alloc.h"
#include "tests/support/http.h"
#include "tests/support/net.h"

#define TIMEOUT_S 60 /* a bound against a hung server, far above any answer time even under sanitizers on a loaded machine */

ssize_t support_http_raw(int port, const char *data, size_t len, char *buf, size_t buflen)
{
    int fd = support_connect_loopback(port, TIMEOUT_S);
    size_t n = 0;
    if (fd < 0)
        return -1;
    if (support_send_all(fd, data, len) != 0) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = recv(fd, buf + n, buflen - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (n += (size_t)r) >= buflen - 1)
            break;
    }
    buf[n] = '\0';
    close(fd);
    return (ssize_t)n;
}

/* Writes one request's head to head (close adds Connection: close) and returns its length. */
static int format_head(char *head, size_t cap, const char *method, const char *path, const char *content_type, const char *body,
                       size_t body_len, const char *extra_headers, int close)
{
    int n = snprintf(head, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, path, close ? "Connection: close\r\n" : "");
    if (content_type != NULL)
        n += snprintf(head + n, cap - (size_t)n, "Content-Type: %s\r\n", content_type);
    if (body != NULL)
        n += snprintf(head + n, cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(head + n, cap - (size_t)n, "%s\r\n", extra_headers != NULL ? extra_headers : "");
    return n;
}

/* Fills res from raw, one whole response of raw_len bytes. Returns 0, or -1 when it is not HTTP/1.1 or its Content-Length
 * does not match its body. */
static int parse_response(const char *raw, size_t raw_len, support_http_response_t *res)
{
    const char *sep;
    char cl[32];

    memset(res, 0, sizeof(*res));
    if (raw_len < 12 || strncmp(raw, "HTTP/1.1 ", 9) != 0 || (sep = strstr(raw, "\r\n\r\n")) == NULL)
        return -1;
    res->status = atoi(raw + 9);
    res->headers = recd_xstrndup(raw, (size_t)(sep - raw) + 2);
    res->body_len = raw_len - (size_t)(sep + 4 - raw);
    res->body = recd_xmalloc(res->body_len + 1);
    memcpy(res->body, sep + 4, res->body_len);
    res->body[res->body_len] = '\0';
    if (support_http_header(res, "content-length", cl, sizeof(cl)) != NULL) {
        res->has_content_length = 1;
        if ((size_t)atol(cl) != res->body_len) {
            support_http_response_free(res);
            return -1;
        }
    }
    return 0;
}

int support_http_request(int port, const char *method, const char *path, const char *content_type, const char *body,
                         size_t body_len, const char *extra_headers, support_http_response_t *res)
{
    char head[2048];
    size_t raw_len;
    char *raw;
    int fd, n, ret;

    memset(res, 0, sizeof(*res));
    if ((fd = support_connect_loopback(port, TIMEOUT_S)) < 0)
        return -1;
    n = format_head(head, sizeof(head), method, path, content_type, body, body_len, extra_headers, 1);
    if (support_send_all(fd, head, (size_t)n) != 0 || (body != NULL && support_send_all(fd, body, body_len) != 0)) {
        close(fd);
        return -1;
    }
    raw = support_recv_all(fd, &raw_len);
    close(fd);
    ret = parse_response(raw, raw_len, res);
    free(raw);
    return ret;
}

int support_http_send(int fd, const char *method, const char *path, const char *content_type, const char *body, size_t body_len)
{
    char head[2048];
    int n = format_head(head, sizeof(head), method, path, content_type, body, body_len, NULL, 0);
    return support_send_all(fd, head, (size_t)n) == 0 && (body == NULL || support_send_all(fd, body, body_len) == 0) ? 0 : -1;
}

int support_http_read_response(int fd, support_http_response_t *res)
{
    size_t cap = 4096, n = 0, want = SIZE_MAX;
    char *buf = recd_xmalloc(cap);
    int ret = -1;

    memset(res, 0, sizeof(*res));
    while (n < want) {
        if (n + 1 >= cap)
            buf = recd_xrealloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto Exit; /* closed or timed out before the whole response came */
        n += (size_t)r;
        buf[n] = '\0';
        const char *sep = strstr(buf, "\r\n\r\n");
        if (want == SIZE_MAX && sep != NULL) {
            support_http_response_t head = {.headers = buf};
            char cl[32];
            if (support_http_header(&head, "content-length", cl, sizeof(cl)) == NULL)
                goto Exit; /* only a Content-Length frames a response on a connection that stays open */
            want = (size_t)(sep + 4 - buf) + (size_t)atol(cl);
        }
    }
    ret = n == want ? parse_response(buf, n, res) : -1;
Exit:
    free(buf);
    return ret;
}

int support_http_get(int port, const char *path, support_http_response_t *res)
{
    return support_http_request(port, "GET", path, NULL, NULL, 0, NULL, res);
}

int support_http_post_json(int port, const char *path, const char *body, support_http_response_t *res)
{
    return support_http_request(port, "POST", path, "application/json", body, strlen(body), NULL, res);
}

const char *support_http_header(const support_http_response_t *res, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = strstr(res->headers, "\r\n");
    while (p != NULL && p[2] != '\0') {
        p += 2;
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                ++v;
            snprintf(out, outlen, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol;
    }
    return NULL;
}

void support_http_response_free(support_http_response_t *res)
{
    free(res->headers);
    free(res->body);
    memset(res, 0, sizeof(*res));
}
