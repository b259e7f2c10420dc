/* redis.h: one Redis command over a fresh loopback connection, for tests and probes. */
#ifndef RECD_TESTS_SUPPORT_REDIS_H
#define RECD_TESTS_SUPPORT_REDIS_H

#include <stddef.h>
#include <sys/types.h>
#include "tests/support/proc.h"

/**
 * Sends command (an inline command such as "PING" or "INFO server", without CRLF) to 127.0.0.1:port and reads one reply
 * into reply (NUL-terminated, raw RESP: "+PONG\r\n", or "$<n>\r\n<n bytes>\r\n" for a bulk string). Returns the reply's
 * length, or -1 on a transport error or a reply that does not fit.
 */
ssize_t support_redis_call(int port, const char *command, char *reply, size_t cap);

/** Debian's redis-server. */
#define SUPPORT_REDIS_SERVER "/usr/bin/redis-server"

/**
 * Starts SUPPORT_REDIS_SERVER on 127.0.0.1:port with persistence off (--save '' --appendonly no), its output in log, and
 * waits until it answers PING as the child started here. Returns support_proc_start's result.
 */
int support_redis_start(support_proc_t *p, int port, const char *log);

#endif
