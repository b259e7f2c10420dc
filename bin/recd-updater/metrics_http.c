/* metrics_http.c: a blocking, one-connection-at-a-time HTTP/1.1 responder for /metrics and /healthz (a scrape every few
 * seconds needs nothing more, and recd-updater stays free of libh2o). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "base/alloc.h"
#include "bin/recd-updater/metrics_http.h"

struct st_recd_metrics_http_t {
    int fd;
    recd_metrics_t *metrics;
    atomic_int stop;
    pthread_t thread;
};

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void respond(int fd, int status, const char *reason, const char *type, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, reason, type, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void serve_one(recd_metrics_http_t *h, int fd)
{
    char req[4096];
    size_t len = 0;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (len < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    req[len] = '\0';
    char *sp = strchr(req, ' '), *sp2 = sp != NULL ? strchr(sp + 1, ' ') : NULL;
    if (sp == NULL || sp2 == NULL) {
        respond(fd, 400, "Bad Request", "text/plain", "bad request\n", 12);
        return;
    }
    *sp2 = '\0';
    const char *path = sp + 1;
    if (strncmp(req, "GET ", 4) != 0) {
        respond(fd, 405, "Method Not Allowed", "text/plain", "only GET\n", 9);
    } else if (strcmp(path, "/metrics") == 0) {
        size_t n;
        char *text = recd_metrics_render(h->metrics, &n);
        respond(fd, 200, "OK", "text/plain; version=0.0.4", text, n);
        free(text);
    } else if (strcmp(path, "/healthz") == 0) {
        char body[64];
        int n = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"pid\":%d}", (int)getpid());
        respond(fd, 200, "OK", "application/json", body, (size_t)n);
    } else {
        respond(fd, 404, "Not Found", "text/plain", "not found\n", 10);
    }
}

static void *run(void *arg)
{
    recd_metrics_http_t *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {h->fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) /* wakes up to see stop */
            continue;
        int fd = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        serve_one(h, fd);
        close(fd);
    }
    return NULL;
}

recd_metrics_http_t *recd_metrics_http_start(const char *addr, recd_metrics_t *metrics, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sin = {.sin_family = AF_INET};
    int one = 1;

    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) {
        snprintf(err, errlen, "listen %s: must be HOST:PORT", addr);
        return NULL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        snprintf(err, errlen, "listen %s: not an IPv4 address", addr);
        return NULL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 16) != 0) {
        snprintf(err, errlen, "listen %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    recd_metrics_http_t *h = recd_xcalloc(1, sizeof(*h));
    h->fd = fd;
    h->metrics = metrics;
    atomic_init(&h->stop, 0);
    if (pthread_create(&h->thread, NULL, run, h) != 0) {
        snprintf(err, errlen, "listen %s: cannot start a thread", addr);
        close(fd);
        free(h);
        return NULL;
    }
    return h;
}

void recd_metrics_http_stop(recd_metrics_http_t *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    free(h);
}
