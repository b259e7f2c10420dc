/* http.h: a tiny HTTP/1.1 client for tests: one request per connection (Connection: close), or requests on a keep-alive
 * connection the test holds open. */
#ifndef RECD_TESTS_SUPPORT_HTTP_H
#define RECD_TESTS_SUPPORT_HTTP_H

#include <stddef.h>
#include <sys/types.h>

/** One HTTP response; body is NUL-terminated, both freed by support_http_response_free. */
typedef struct st_support_http_response_t {
    int status;
    char *headers; /* raw header block */
    char *body;
    size_t body_len;
    int has_content_length;
} support_http_response_t;

/**
 * Sends one HTTP/1.1 request (Connection: close) to 127.0.0.1:port and reads the whole response. content_type may be NULL
 * (no header); body may be NULL. extra_headers is raw "Name: value\r\n" lines or NULL. Returns 0, or -1 on a transport
 * error or a response that is not HTTP/1.1 or whose Content-Length does not match its body.
 */
int support_http_request(int port, const char *method, const char *path, const char *content_type, const char *body,
                         size_t body_len, const char *extra_headers, support_http_response_t *res);
/** GET path. */
int support_http_get(int port, const char *path, support_http_response_t *res);
/** POST body with Content-Type: application/json. */
int support_http_post_json(int port, const char *path, const char *body, support_http_response_t *res);
/**
 * Sends one request on fd, a connection the caller opened (support_connect_loopback) and keeps open: no Connection: close,
 * so the server keeps it alive. content_type and body may be NULL. Returns 0 or -1.
 */
int support_http_send(int fd, const char *method, const char *path, const char *content_type, const char *body, size_t body_len);
/**
 * Reads exactly one response from fd, framed by its Content-Length, and leaves the connection open for the next request.
 * Returns 0, or -1 when the peer closed or the receive timed out first, or the response has no Content-Length.
 */
int support_http_read_response(int fd, support_http_response_t *res);
/** The value of a header (case-insensitive name) copied into out, or NULL. */
const char *support_http_header(const support_http_response_t *res, const char *name, char *out, size_t outlen);
/** Frees the response's buffers; res may be reused. */
void support_http_response_free(support_http_response_t *res);

/** Sends raw bytes and reads until the server closes; returns the number of bytes read into buf (NUL-terminated) or -1. */
ssize_t support_http_raw(int port, const char *data, size_t len, char *buf, size_t buflen);

#endif
