/* kafka.h: the dev broker (recd-kafka-dev-broker) as a test server: start it, take it down and up, read a topic with kcat. */
#ifndef RECD_TESTS_SUPPORT_KAFKA_H
#define RECD_TESTS_SUPPORT_KAFKA_H

#include <stddef.h>
#include "tests/support/proc.h"

/** A started dev broker. */
typedef struct st_support_kafka_t {
    support_proc_t proc;
    char bootstrap[512]; /* "HOST:PORT,..." from its first stdout line */
    int downs, ups;      /* SIGUSR1 / SIGUSR2 sent and confirmed so far */
} support_kafka_t;

/**
 * Starts the built recd-kafka-dev-broker with its output in log (a file path) and waits until its first line
 * "bootstrap=..." is complete, which fills k->bootstrap. Returns 0 or -1 with a line on stderr.
 */
int support_kafka_start(support_kafka_t *k, const char *log);

/** Takes every broker down (SIGUSR1) and waits until the broker confirms it in its log. Returns 0 or -1. */
int support_kafka_set_down(support_kafka_t *k);
/** Brings every broker back (SIGUSR2) and waits until the broker confirms it. Returns 0 or -1. */
int support_kafka_set_up(support_kafka_t *k);

/** Stops the broker (SIGTERM, then SIGKILL); harmless when it is not running. */
void support_kafka_stop(support_kafka_t *k);

/** 1 when kcat is installed (tests that read topics with it skip otherwise). */
int support_kcat_available(void);

/**
 * Reads every message of topic from the beginning to the current end with `kcat -C -e`, one line per message formatted
 * by kcat's -f format (which should end in "\n"). Returns the output (malloc'ed, NUL-terminated; *len its length), or
 * NULL when kcat failed or did not finish within 30 s (it is then killed).
 */
char *support_kafka_consume(const support_kafka_t *k, const char *topic, const char *format, size_t *len);

#endif
