/* redis.c: one Redis command over a fresh loopback connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "tests/support/net.h"
#include "tests/support/redis.h"

#define TIMEOUT_S 10

/* Whether buf (n bytes) holds one whole reply: a status/error/integer line, or a bulk string with its payload. */
static int reply_complete(const char *buf, size_t n)
{
    const char *eol = memmem(buf, n, "\r\n", 2);
    if (eol == NULL)
        return 0;
    if (buf[0] != '$')
        return 1;
    long len = atol(buf + 1);
    return len < 0 || (size_t)(eol + 2 - buf) + (size_t)len + 2 <= n;
}

ssize_t support_redis_call(int port, const char *command, char *reply, size_t cap)
{
    char line[512];
    size_t n = 0;
    int fd, len = snprintf(line, sizeof(line), "%s\r\n", command);

    if (len < 0 || (size_t)len >= sizeof(line) || cap < 2 || (fd = support_connect_loopback(port, TIMEOUT_S)) < 0)
        return -1;
    if (support_send_all(fd, line, (size_t)len) != 0)
        goto Error;
    while (!reply_complete(reply, n)) {
        ssize_t r = recv(fd, reply + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (n += (size_t)r) >= cap - 1)
            goto Error;
    }
    close(fd);
    reply[n] = '\0';
    return (ssize_t)n;
Error:
    close(fd);
    return -1;
}

int support_redis_start(support_proc_t *p, int port, const char *log)
{
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    const char *argv[] = {SUPPORT_REDIS_SERVER, "--port", port_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", NULL};
    support_proc_spec_t spec = {.argv = argv, .log = log, .port = port, .probe = support_probe_redis};
    return support_proc_start(p, &spec);
}
