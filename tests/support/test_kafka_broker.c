/* test_kafka_broker.c: the dev broker is a real Kafka: a producer's messages come back through kcat, keyed, and an
 * outage (SIGUSR1) refuses delivery while SIGUSR2 brings the brokers back with the topic's data kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "tests/support/fixtures.h"
#include "tests/support/kafka.h"
#include "tests/support/net.h"

#define TOPIC "recd.events"
#define FLUSH_MS 20000

typedef struct st_fixture_t {
    char dir[256];
    char log[300];
    support_kafka_t kafka;
} fixture_t;

typedef struct st_reports_t {
    int delivered, failed;
} reports_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (support_tmpdir_create(f->dir, sizeof(f->dir), "recd-kafka-broker") != 0)
        return -1;
    snprintf(f->log, sizeof(f->log), "%s/broker.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    support_kafka_stop(&f->kafka);
    support_remove_tree(f->dir);
    free(f);
    return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    reports_t *r = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        ++r->delivered;
    else
        ++r->failed;
}

/* A producer like recd's (acks=all, idempotent) whose messages give up after timeout_ms. */
static rd_kafka_t *producer_create(const char *bootstrap, const char *timeout_ms, reports_t *reports)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {{"bootstrap.servers", bootstrap},
                                 {"acks", "all"},
                                 {"enable.idempotence", "true"},
                                 {"message.timeout.ms", timeout_ms},
                                 {"log_level", "0"}};
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); ++i)
        assert_int_equal(rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)), RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, reports);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    return rk;
}

static void produce(rd_kafka_t *rk, const char *key, const char *value)
{
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Counts lines of the topic, read from the beginning by kcat, that equal line. */
static int count_consumed(const support_kafka_t *k, const char *line)
{
    size_t len, n = strlen(line);
    char *out = support_kafka_consume(k, TOPIC, "%k %s\n", &len);
    int count = 0;

    assert_non_null(out);
    for (const char *p = out; *p != '\0';) {
        const char *eol = strchr(p, '\n');
        if (eol == NULL)
            break;
        count += (size_t)(eol - p) == n && memcmp(p, line, n) == 0;
        p = eol + 1;
    }
    free(out);
    return count;
}

/* How many of the bootstrap addresses accept a TCP connection right now. */
static int count_listening(const support_kafka_t *k)
{
    int n = 0;
    for (const char *p = k->bootstrap; (p = strchr(p, ':')) != NULL; ++p) {
        int fd = support_connect_loopback(atoi(p + 1), 2);
        if (fd >= 0) {
            ++n;
            close(fd);
        }
    }
    return n;
}

static void test_kafka_broker_produce_consume_and_outage(void **state)
{
    fixture_t *f = *state;
    reports_t reports = {0, 0};

    if (!support_kcat_available()) {
        fprintf(stderr, "kcat is not installed (scripts/setup installs it)\n");
        skip();
    }
    assert_int_equal(support_kafka_start(&f->kafka, f->log), 0);
    assert_non_null(strchr(f->kafka.bootstrap, ':'));
    assert_int_equal(strncmp(f->kafka.bootstrap, "127.0.0.1:", 10), 0); /* loopback only */

    /* delivered with acks=all, then read back with its key */
    rd_kafka_t *rk = producer_create(f->kafka.bootstrap, "60000", &reports);
    produce(rk, "u1", "{\"n\":1}");
    produce(rk, "u2", "{\"n\":2}");
    assert_int_equal(rd_kafka_flush(rk, FLUSH_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(reports.delivered, 2);
    assert_int_equal(count_consumed(&f->kafka, "u1 {\"n\":1}"), 1);
    assert_int_equal(count_consumed(&f->kafka, "u2 {\"n\":2}"), 1);
    assert_int_equal(count_listening(&f->kafka), 3);

    /* down: every broker refuses connections and a message stays undelivered (a down broker can never take it) */
    assert_int_equal(support_kafka_set_down(&f->kafka), 0);
    assert_int_equal(count_listening(&f->kafka), 0);
    produce(rk, "u3", "{\"n\":3}");
    assert_int_equal(rd_kafka_flush(rk, 2000), RD_KAFKA_RESP_ERR__TIMED_OUT);
    assert_int_equal(reports.delivered, 2);
    assert_int_equal(reports.failed, 0);
    assert_int_equal(rd_kafka_outq_len(rk), 1);

    /* up again: the queued message goes through, and the data from before the outage is still there */
    assert_int_equal(support_kafka_set_up(&f->kafka), 0);
    assert_int_equal(count_listening(&f->kafka), 3);
    assert_int_equal(rd_kafka_flush(rk, FLUSH_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(reports.delivered, 3);
    assert_int_equal(reports.failed, 0);
    rd_kafka_destroy(rk);
    assert_int_equal(count_consumed(&f->kafka, "u1 {\"n\":1}"), 1);
    assert_int_equal(count_consumed(&f->kafka, "u2 {\"n\":2}"), 1);
    assert_int_equal(count_consumed(&f->kafka, "u3 {\"n\":3}"), 1);

    support_kafka_stop(&f->kafka);
    assert_int_equal(f->kafka.proc.pid, -1);
}

int test_kafka_broker_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kafka_broker_produce_consume_and_outage, setup, teardown),
    };
    return cmocka_run_group_tests_name("kafka_broker", tests, NULL, NULL);
}
