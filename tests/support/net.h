/* net.h: loopback sockets for tests: a free port, a connection with timeouts, sending and reading whole buffers. */
#ifndef RECD_TESTS_SUPPORT_NET_H
#define RECD_TESTS_SUPPORT_NET_H

#include <stddef.h>
#include <sys/types.h>

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and closed), for a server the test starts. Another
 * process may take it before the server binds it; the server then fails to start, which the test reports. Returns -1 on
 * a socket error.
 */
int support_free_port(void);

/** Connects to 127.0.0.1:port with send and receive timeouts of timeout_s seconds. Returns the socket or -1. */
int support_connect_loopback(int port, int timeout_s);

/** Sends all len bytes (retrying short sends and EINTR, never raising SIGPIPE). Returns 0 or -1. */
int support_send_all(int fd, const void *buf, size_t len);

/** Reads until the peer closes (or a timeout) into a malloc'ed NUL-terminated buffer; its length goes to *len. */
char *support_recv_all(int fd, size_t *len);

#endif
