/* rate_load: an open-loop HTTP/1.1 load generator — requests sent at a fixed rate, latency counted from when each request
 * was due, so a slow answer delays the measurement of the ones queued behind it instead of hiding them (wrk2's
 * correction of coordinated omission; wrk2 is not in Debian, and wrk's own pacing waits for answers).
 *
 *   rate_load --port PORT --rate R --seconds S [--connections C] [--path PATH] [--users FILE] [--seed N]
 *             [--header 'Name: value']...
 *
 * Request j is due at start + j / R seconds, j = 0 .. R*S-1. When it is due it goes out on an idle keep-alive
 * connection (one request in flight per connection, no pipelining); when every connection is busy it waits for one,
 * and that wait is part of its latency. With --users, each request's path is PATH followed by one line of FILE chosen
 * at random (URL-encoded): --path '/v1/recommendations?k=10&user=' --users users.txt. Only 127.0.0.0/8 (--host, default
 * 127.0.0.1) is ever targeted. Answers must carry Content-Length (recd, nginx and uvicorn do).
 * Prints one machine-readable line, in the format of loadtest/recommendations.lua plus fields of its own:
 *   RESULT requests=N duration_us=N rps=X p50_us=N p90_us=N p99_us=N non2xx=N socket_errors=N p999_us=N max_us=N
 *          target_rps=R max_send_lag_us=N unanswered=N
 * max_send_lag_us: the longest any request waited past its due time before it was written (for a free connection, or
 * for this program); when it approaches the latencies, the generator did not keep the rate and the figures say so. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CONNECTIONS = 1024, MAX_HEADERS = 16, READ_BUF = 1 << 16 };

typedef struct st_conn_t {
    int fd;
    int busy;
    uint64_t due_ns;    /* when the request in flight was due */
    char buf[READ_BUF]; /* the answer so far */
    size_t len;
} conn_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void die(const char *what)
{
    fprintf(stderr, "rate_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static char *urlencode(const char *s)
{
    char *out = malloc(strlen(s) * 3 + 1), *p = out;
    if (out == NULL)
        die("malloc");
    for (; *s != '\0'; ++s) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~')
            *p++ = (char)c;
        else
            p += sprintf(p, "%%%02X", c);
    }
    *p = '\0';
    return out;
}

/* The request lines to choose from: one per user, or the one path. */
static char **build_requests(const char *path, const char *users_file, const char *host, const char *headers, size_t *n)
{
    size_t cap = 1024, len = 0;
    char **reqs = malloc(cap * sizeof(*reqs)), line[4096];
    FILE *f = NULL;
    if (reqs == NULL)
        die("malloc");
    if (users_file != NULL && (f = fopen(users_file, "r")) == NULL)
        die(users_file);
    for (;;) {
        const char *user = "";
        char *enc = NULL;
        if (f != NULL) {
            if (fgets(line, sizeof(line), f) == NULL)
                break;
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0] == '\0')
                continue;
            user = enc = urlencode(line);
        }
        if (len == cap && (reqs = realloc(reqs, (cap *= 2) * sizeof(*reqs))) == NULL)
            die("realloc");
        if (asprintf(&reqs[len++], "GET %s%s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, user, host, headers) < 0)
            die("asprintf");
        free(enc);
        if (f == NULL)
            break;
    }
    if (f != NULL)
        fclose(f);
    if (len == 0) {
        fprintf(stderr, "rate_load: %s holds no users\n", users_file);
        exit(1);
    }
    *n = len;
    return reqs;
}

static int connect_to(const struct sockaddr_in *addr, int epfd, conn_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    /* blocking connect: on loopback it completes at once, and only happens at start or after the server closed */
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); /* a spurious wake-up must never block the whole generator */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->busy = 0;
    c->len = 0;
    return 0;
}

/* How far the answer in c->buf is complete: 1 complete (status and whether the server closes set), 0 not yet, -1 bad. */
static int parse_answer(conn_t *c, int *status, int *closes)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    long content_length = -1;
    if (end == NULL)
        return c->len == sizeof(c->buf) ? -1 : 0;
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(c->buf + 9);
    *closes = 0;
    for (char *p = memchr(c->buf, '\n', (size_t)(end - c->buf)); p != NULL && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
        ++p;
        if (strncasecmp(p, "content-length:", 15) == 0)
            content_length = strtol(p + 15, NULL, 10);
        else if (strncasecmp(p, "connection:", 11) == 0 && strncasecmp(p + 11 + strspn(p + 11, " "), "close", 5) == 0)
            *closes = 1;
        else if (strncasecmp(p, "transfer-encoding:", 18) == 0)
            return -1; /* chunked answers are not read here */
    }
    if (content_length < 0)
        return -1;
    size_t total = (size_t)(end + 4 - c->buf) + (size_t)content_length;
    if (total > sizeof(c->buf))
        return -1;
    if (c->len < total)
        return 0;
    return c->len == total ? 1 : -1; /* more bytes than one answer: the server sent something unasked */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t percentile_us(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    return sorted[i < n ? i : n - 1] / 1000;
}

static void usage(void)
{
    fprintf(stderr, "usage: rate_load --port PORT --rate R --seconds S [--connections C] [--path PATH] [--users FILE]\n"
                    "                 [--seed N] [--host 127.x.y.z] [--header 'Name: value']...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = "/", *users_file = NULL;
    char headers[4096] = "";
    int port = 0, n_conns = 16;
    double rate = 0, seconds = 0;

    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(a, "--seconds") == 0)
            seconds = atof(v);
        else if (strcmp(a, "--connections") == 0)
            n_conns = atoi(v);
        else if (strcmp(a, "--path") == 0)
            path = v;
        else if (strcmp(a, "--users") == 0)
            users_file = v;
        else if (strcmp(a, "--host") == 0)
            host = v;
        else if (strcmp(a, "--seed") == 0)
            rng_state = strtoull(v, NULL, 10) * 0x9e3779b97f4a7c15ull + 1;
        else if (strcmp(a, "--header") == 0) {
            size_t l = strlen(headers);
            snprintf(headers + l, sizeof(headers) - l, "%s\r\n", v);
        } else
            usage();
        ++i;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || rate <= 0 || seconds <= 0 || n_conns < 1 || n_conns > MAX_CONNECTIONS ||
        inet_pton(AF_INET, host, &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127)
        usage();

    size_t n_reqs;
    char **reqs = build_requests(path, users_file, host, headers, &n_reqs);
    uint64_t total = (uint64_t)(rate * seconds + 0.5);
    uint64_t *latency = malloc((total ? total : 1) * sizeof(uint64_t));
    conn_t *conns = calloc((size_t)n_conns, sizeof(conn_t));
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (latency == NULL || conns == NULL || epfd < 0)
        die("setup");
    for (int i = 0; i < n_conns; ++i)
        if (connect_to(&addr, epfd, &conns[i]) != 0)
            die("connect");

    uint64_t sent = 0, answered = 0, non2xx = 0, socket_errors = 0, max_lag = 0, failed = 0;
    uint64_t start = now_ns() + 1000000, drain_until = 0;
    /* due time of request j, computed from j (no accumulated rounding) */
#define DUE(j) (start + (uint64_t)((double)(j)*1e9 / rate))
    for (;;) {
        uint64_t now = now_ns();
        /* send everything due, while there are idle connections */
        for (int i = 0; i < n_conns && sent < total && DUE(sent) <= now; ++i) {
            conn_t *c = &conns[i];
            if (c->busy || c->fd < 0)
                continue;
            const char *r = reqs[n_reqs > 1 ? next_random() % n_reqs : 0];
            size_t len = strlen(r);
            if (write(c->fd, r, len) != (ssize_t)len) {
                ++socket_errors;
                close(c->fd);
                if (connect_to(&addr, epfd, c) != 0)
                    c->fd = -1;
                continue;
            }
            c->busy = 1;
            c->due_ns = DUE(sent);
            if (now - c->due_ns > max_lag)
                max_lag = now - c->due_ns;
            ++sent;
        }
        if (answered + failed == total)
            break;
        int live = 0;
        for (int i = 0; i < n_conns; ++i)
            live += conns[i].fd >= 0;
        if (live == 0) {
            fprintf(stderr, "rate_load: every connection failed and none could be re-opened\n");
            break;
        }
        if (sent == total && drain_until == 0)
            drain_until = now + 5000000000ull; /* the last answers get 5 s */
        if (drain_until != 0 && now > drain_until)
            break;
        /* sleep until the next request is due (or an answer arrives); with a backlog, until an answer arrives */
        struct timespec timeout = {0, 0};
        int backlog = sent < total && DUE(sent) <= now;
        if (!backlog) {
            uint64_t until = sent < total ? DUE(sent) : drain_until, wait = until > now ? until - now : 0;
            timeout = (struct timespec){(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        } else {
            timeout = (struct timespec){1, 0};
        }
        struct epoll_event evs[64];
        int n = epoll_pwait2(epfd, evs, 64, &timeout, NULL);
        if (n < 0 && errno != EINTR)
            die("epoll_pwait2");
        for (int e = 0; e < n; ++e) {
            conn_t *c = evs[e].data.ptr;
            ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
            int status = 0, closes = 0, done = 0;
            if (got > 0) {
                c->len += (size_t)got;
                done = c->busy ? parse_answer(c, &status, &closes) : -1;
            }
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR) || done < 0) {
                if (c->busy)
                    ++failed, ++socket_errors;
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                if (connect_to(&addr, epfd, c) != 0)
                    c->fd = -1;
                continue;
            }
            if (done == 1) {
                latency[answered++] = now_ns() - c->due_ns;
                if (status < 200 || status > 299)
                    ++non2xx;
                c->busy = 0;
                c->len = 0;
                if (closes) {
                    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    if (connect_to(&addr, epfd, c) != 0)
                        c->fd = -1;
                }
            }
        }
    }
    uint64_t elapsed = now_ns() - start;
    qsort(latency, (size_t)answered, sizeof(uint64_t), cmp_u64);
    printf("RESULT requests=%llu duration_us=%llu rps=%.1f p50_us=%llu p90_us=%llu p99_us=%llu non2xx=%llu socket_errors=%llu "
           "p999_us=%llu max_us=%llu target_rps=%.1f max_send_lag_us=%llu unanswered=%llu\n",
           (unsigned long long)answered, (unsigned long long)(elapsed / 1000), (double)answered / ((double)elapsed / 1e9),
           (unsigned long long)percentile_us(latency, answered, 50), (unsigned long long)percentile_us(latency, answered, 90),
           (unsigned long long)percentile_us(latency, answered, 99), (unsigned long long)non2xx, (unsigned long long)socket_errors,
           (unsigned long long)percentile_us(latency, answered, 99.9),
           (unsigned long long)(answered ? latency[answered - 1] / 1000 : 0), rate, (unsigned long long)(max_lag / 1000),
           (unsigned long long)(total - answered));
    for (size_t i = 0; i < n_reqs; ++i)
        free(reqs[i]);
    free(reqs), free(latency), free(conns);
    return 0;
}
