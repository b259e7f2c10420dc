/*
 * recd-kafka-dev-broker: a Kafka-protocol broker on loopback for tests, demos and a developer's terminal, built on
 * librdkafka's mock cluster. Not for production: the data lives in this process's memory.
 *
 *   recd-kafka-dev-broker [--brokers N] [--partitions N] [--topic NAME]...
 *
 * The first stdout line is "bootstrap=HOST:PORT,..."; it serves until SIGTERM or SIGINT. SIGUSR1 takes every broker
 * down (connections dropped and refused, topic data kept), SIGUSR2 brings them back; each is confirmed by a line
 * "brokers=down" or "brokers=up" once applied, so a test can wait for it.
 *
 * The mock cluster's calls are not async-signal-safe, so signals are blocked on every thread and read from a signalfd
 * by the main thread, which makes the calls.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define DEFAULT_TOPIC "recd.events"
#define MAX_TOPICS 16

static void usage(FILE *out)
{
    fprintf(out, "usage: recd-kafka-dev-broker [--brokers N] [--partitions N] [--topic NAME]...\n"
                 "  --brokers N     brokers in the cluster (1..16, default 3)\n"
                 "  --partitions N  partitions of each topic (1..256, default 4)\n"
                 "  --topic NAME    a topic to create (repeatable; default " DEFAULT_TOPIC ")\n"
                 "Prints bootstrap=HOST:PORT,... first; SIGUSR1 takes all brokers down, SIGUSR2 brings them up.\n");
}

static int parse_count(const char *flag, const char *value, long lo, long hi, int *out)
{
    char *end;
    long n;

    if (value == NULL) {
        fprintf(stderr, "recd-kafka-dev-broker: %s needs a value\n", flag);
        return -1;
    }
    errno = 0;
    n = strtol(value, &end, 10);
    if (errno != 0 || *end != '\0' || end == value || n < lo || n > hi) {
        fprintf(stderr, "recd-kafka-dev-broker: %s must be an integer in %ld..%ld, got \"%s\"\n", flag, lo, hi, value);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int main(int argc, char **argv)
{
    const char *topics[MAX_TOPICS];
    int n_topics = 0, n_brokers = 3, n_partitions = 4, ret = 1, sfd = -1;
    char errstr[512];
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    sigset_t sigs;

    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--brokers") == 0) {
            if (parse_count("--brokers", i + 1 < argc ? argv[++i] : NULL, 1, 16, &n_brokers) != 0)
                return 2;
        } else if (strcmp(argv[i], "--partitions") == 0) {
            if (parse_count("--partitions", i + 1 < argc ? argv[++i] : NULL, 1, 256, &n_partitions) != 0)
                return 2;
        } else if (strcmp(argv[i], "--topic") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0' || n_topics == MAX_TOPICS) {
                fprintf(stderr, "recd-kafka-dev-broker: --topic needs a name (at most %d topics)\n", MAX_TOPICS);
                return 2;
            }
            topics[n_topics++] = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "recd-kafka-dev-broker: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (n_topics == 0)
        topics[n_topics++] = DEFAULT_TOPIC;

    /* blocked before librdkafka starts its threads, so they inherit the mask and only the signalfd sees these */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 || (sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "recd-kafka-dev-broker: cannot set up the signalfd: %s\n", strerror(errno));
        goto Exit;
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "recd-kafka-dev-broker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        goto Exit;
    }
    if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) == NULL) {
        fprintf(stderr, "recd-kafka-dev-broker: cannot create the cluster's client handle: %s\n", errstr);
        goto Exit;
    }
    if ((mc = rd_kafka_mock_cluster_new(rk, n_brokers)) == NULL) {
        fprintf(stderr, "recd-kafka-dev-broker: cannot create the mock cluster\n");
        goto Exit;
    }
    for (int i = 0; i < n_topics; ++i) {
        int replicas = n_brokers < 3 ? n_brokers : 3;
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topics[i], n_partitions, replicas);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "recd-kafka-dev-broker: cannot create topic %s: %s\n", topics[i], rd_kafka_err2str(e));
            goto Exit;
        }
    }
    printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(si)) {
            fprintf(stderr, "recd-kafka-dev-broker: cannot read the signalfd: %s\n", strerror(errno));
            goto Exit;
        }
        if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
            int up = si.ssi_signo == SIGUSR2;
            rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(mc, -1) : rd_kafka_mock_broker_set_down(mc, -1);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
                fprintf(stderr, "recd-kafka-dev-broker: cannot take the brokers %s: %s\n", up ? "up" : "down", rd_kafka_err2str(e));
            else
                printf("brokers=%s\n", up ? "up" : "down");
            fflush(stdout);
            continue;
        }
        break; /* SIGTERM or SIGINT */
    }
    ret = 0;

Exit:
    if (mc != NULL)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    if (sfd >= 0)
        close(sfd);
    return ret;
}
