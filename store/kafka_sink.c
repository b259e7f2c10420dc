/*
 * kafka_sink.c: the Kafka event sink — write-ahead log first, then an idempotent producer.
 *
 * DESIGN
 * librdkafka keeps its queue in memory only, so nothing is acknowledged on its word: a batch is appended to the
 * write-ahead log (store/wal.c) and answered from the log's writer thread once its fdatasync returned; that same
 * callback then produces each record (RD_KAFKA_MSG_F_COPY, the record's log id as the message's opaque). Delivery
 * reports arrive on the sink's poller thread, which calls rd_kafka_poll in a loop: success retires the record, failure
 * puts its id on a retry list that the poller produces again (reading the payload back from the log) every retry
 * interval. So while the brokers are away records wait in the log (and in librdkafka's queue), and they go out when the
 * brokers return; at open every unretired record of the log is produced again. A record can thus reach the topic twice
 * (a replay after a crash, a timeout of a message that was in fact written): the event_id in each payload is what
 * consumers de-duplicate by. Signals are blocked on every thread this sink starts, librdkafka's included.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>
#include "base/alloc.h"
#include "base/error.h"
#include "base/jsonw.h"
#include "base/text.h"
#include "store/kafka_sink.h"
#include "store/wal.h"

#define DEFAULT_TOPIC "recd.events"
#define DEFAULT_MESSAGE_TIMEOUT_MS 30000
#define DEFAULT_RETRY_INTERVAL_MS 1000
#define POLL_MS 50
#define STOP_FLUSH_MS 5000 /* on stop, how long the brokers get to confirm what is in flight; the rest stays in the log */

typedef struct st_kafka_sink_t {
    recd_event_sink_t super;
    recd_wal_t *wal;
    rd_kafka_t *rk;
    rd_kafka_topic_t *topic;
    const recd_logger_t *log;
    unsigned retry_interval_ms;
    pthread_t poller;
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    uint64_t *retry_ids;
    size_t n_retry, cap_retry;
    size_t pending_appends; /* batches the log has not answered yet */
    int stopping;
    _Atomic int stop_poller;
    /* counters, read from any thread */
    _Atomic uint64_t produced, delivered, delivery_errors, replayed;
    recd_metric_t *m_delivered, *m_errors;
} kafka_sink_t;

/* One appended batch: its lines, kept to produce them once the log has them. */
typedef struct st_batch_t {
    kafka_sink_t *ks;
    recd_event_sink_cb cb;
    void *data;
    size_t n;
    struct iovec *lines; /* into buf, without the newline; right after the struct */
    char *buf;           /* a copy of the batch, after the lines */
} batch_t;

static void count(_Atomic uint64_t *counter, recd_metric_t *metric)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    if (metric != NULL)
        recd_metric_add(metric, RECD_METRICS_SHARED, 1);
}

static void push_retry(kafka_sink_t *ks, uint64_t id)
{
    pthread_mutex_lock(&ks->lock);
    if (ks->n_retry == ks->cap_retry) {
        ks->cap_retry = ks->cap_retry * 2 + 64;
        ks->retry_ids = recd_xrealloc(ks->retry_ids, ks->cap_retry * sizeof(*ks->retry_ids));
    }
    ks->retry_ids[ks->n_retry++] = id;
    pthread_mutex_unlock(&ks->lock);
}

/* Produces record id (payload: one event's JSON object), keyed by its "user"; a refusal puts it on the retry list. */
static void produce_record(kafka_sink_t *ks, uint64_t id, const char *payload, size_t len)
{
    json_t *event = json_loadb(payload, len, 0, NULL);
    json_t *user = json_object_get(event, "user");
    const char *key = json_is_string(user) ? json_string_value(user) : NULL;
    size_t key_len = key != NULL ? json_string_length(user) : 0;

    if (rd_kafka_produce(ks->topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)payload, len, key, key_len,
                         (void *)(uintptr_t)id) == 0) {
        atomic_fetch_add_explicit(&ks->produced, 1, memory_order_relaxed);
    } else {
        /* the queue is full (or the producer failed for good): the record waits in the log for the next retry */
        count(&ks->delivery_errors, ks->m_errors);
        push_retry(ks, id);
    }
    json_decref(event);
}

/* The log's answer for one batch, on its writer thread: answer the caller, then hand the records to the producer. */
static void on_logged(void *data, int err, uint64_t first_id)
{
    batch_t *b = data;
    kafka_sink_t *ks = b->ks;

    b->cb(b->data, err);
    if (err == 0)
        for (size_t i = 0; i < b->n; ++i)
            produce_record(ks, first_id + i, b->lines[i].iov_base, b->lines[i].iov_len);
    pthread_mutex_lock(&ks->lock);
    if (--ks->pending_appends == 0)
        pthread_cond_broadcast(&ks->idle);
    pthread_mutex_unlock(&ks->lock);
    free(b);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kafka_sink_t *ks = opaque;
    uint64_t id = (uint64_t)(uintptr_t)m->_private;

    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        count(&ks->delivered, ks->m_delivered);
        recd_wal_retire(ks->wal, id);
    } else {
        count(&ks->delivery_errors, ks->m_errors);
        push_retry(ks, id);
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_sink_t *ks = opaque;
    char q[512];
    /* transport errors and all brokers down are expected during an outage: the log keeps the records meanwhile */
    int expected = err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT;
    recd_log(ks->log, expected ? RECD_LOG_WARN : RECD_LOG_ERROR, "kafka producer error", "\"error\":%s,\"code\":%d",
             recd_json_quote(q, sizeof(q), reason, strlen(reason)), err);
}

static int sink_append(recd_event_sink_t *s, const char *buf, size_t len, recd_event_sink_cb cb, void *data)
{
    kafka_sink_t *ks = (kafka_sink_t *)s;
    size_t n = 0;

    for (size_t i = 0; i < len; ++i)
        n += buf[i] == '\n';
    if (n == 0 || buf[len - 1] != '\n')
        return RECD_EINVAL;
    batch_t *b = recd_xmalloc(sizeof(*b) + n * sizeof(struct iovec) + len);
    b->ks = ks;
    b->cb = cb;
    b->data = data;
    b->n = n;
    b->lines = (struct iovec *)(b + 1);
    b->buf = (char *)(b->lines + n);
    memcpy(b->buf, buf, len);
    for (size_t i = 0, start = 0; i < n; ++i) {
        const char *eol = memchr(b->buf + start, '\n', len - start);
        b->lines[i] = (struct iovec){b->buf + start, (size_t)(eol - (b->buf + start))};
        start = (size_t)(eol - b->buf) + 1;
    }

    pthread_mutex_lock(&ks->lock);
    if (ks->stopping) {
        pthread_mutex_unlock(&ks->lock);
        free(b);
        return RECD_EBUSY;
    }
    ++ks->pending_appends;
    pthread_mutex_unlock(&ks->lock);
    int rc = recd_wal_append(ks->wal, b->lines, n, on_logged, b);
    if (rc != 0) {
        pthread_mutex_lock(&ks->lock);
        if (--ks->pending_appends == 0)
            pthread_cond_broadcast(&ks->idle);
        pthread_mutex_unlock(&ks->lock);
        free(b);
        return rc == RECD_EINVAL ? RECD_EBUSY : rc; /* a batch larger than the log can hold can never be kept either */
    }
    return 0;
}

/* Produces again every record whose last attempt failed (those retired meanwhile are skipped). */
static void retry_failed(kafka_sink_t *ks)
{
    pthread_mutex_lock(&ks->lock);
    uint64_t *ids = ks->retry_ids;
    size_t n = ks->n_retry;
    ks->retry_ids = NULL;
    ks->n_retry = ks->cap_retry = 0;
    pthread_mutex_unlock(&ks->lock);
    for (size_t i = 0; i < n; ++i) {
        char *payload;
        size_t len;
        if (recd_wal_read(ks->wal, ids[i], &payload, &len) != 0)
            continue;
        produce_record(ks, ids[i], payload, len);
        free(payload);
    }
    free(ids);
}

static double monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void *run_poller(void *arg)
{
    kafka_sink_t *ks = arg;
    double next_retry = monotonic_ms() + ks->retry_interval_ms;

    while (!atomic_load(&ks->stop_poller)) {
        rd_kafka_poll(ks->rk, POLL_MS);
        if (monotonic_ms() >= next_retry) {
            retry_failed(ks);
            next_retry = monotonic_ms() + ks->retry_interval_ms;
        }
    }
    return NULL;
}

static void on_replayed(void *data, uint64_t id, const char *payload, size_t len)
{
    kafka_sink_t *ks = data;
    produce_record(ks, id, payload, len);
    atomic_fetch_add_explicit(&ks->replayed, 1, memory_order_relaxed);
}

static void sink_free(recd_event_sink_t *s)
{
    kafka_sink_t *ks = (kafka_sink_t *)s;

    /* no new batch; the ones the log holds are answered and produced */
    pthread_mutex_lock(&ks->lock);
    ks->stopping = 1;
    while (ks->pending_appends > 0)
        pthread_cond_wait(&ks->idle, &ks->lock);
    pthread_mutex_unlock(&ks->lock);
    /* the brokers get a moment to confirm what is in flight (the poller serves the delivery reports meanwhile) */
    double deadline = monotonic_ms() + STOP_FLUSH_MS;
    while (rd_kafka_outq_len(ks->rk) > 0 && monotonic_ms() < deadline) {
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_store(&ks->stop_poller, 1);
    pthread_join(ks->poller, NULL);
    /* what is left stays in the log for the next start */
    rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(ks->rk, 0);
    rd_kafka_topic_destroy(ks->topic);
    rd_kafka_destroy(ks->rk);
    recd_wal_close(ks->wal);
    free(ks->retry_ids);
    pthread_cond_destroy(&ks->idle);
    pthread_mutex_destroy(&ks->lock);
    free(ks);
}

static const recd_event_sink_ops_t kafka_sink_ops = {sink_append, sink_free};

static void collect(void *data, recd_jw_t *out)
{
    kafka_sink_t *ks = data;
    recd_wal_stats_t st;
    char line[256];
    int n;

    recd_wal_stats(ks->wal, &st);
    double age = 0;
    if (st.oldest_live_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        age = (double)ts.tv_sec + ts.tv_nsec / 1e9 - st.oldest_live_ms / 1000.0;
        age = age > 0 ? age : 0;
    }
    n = snprintf(line, sizeof(line),
                 "# HELP recd_kafka_producer_queue_messages Messages in the Kafka producer's queue, not yet delivered or failed.\n"
                 "# TYPE recd_kafka_producer_queue_messages gauge\nrecd_kafka_producer_queue_messages %d\n",
                 rd_kafka_outq_len(ks->rk));
    recd_jw_raw(out, line, (size_t)n);
    n = snprintf(
        line, sizeof(line),
        "# HELP recd_wal_bytes Bytes of the event write-ahead log on disk.\n# TYPE recd_wal_bytes gauge\nrecd_wal_bytes %llu\n",
        (unsigned long long)st.bytes);
    recd_jw_raw(out, line, (size_t)n);
    n = snprintf(line, sizeof(line),
                 "# HELP recd_wal_unretired_records Events in the write-ahead log the broker has not confirmed yet.\n"
                 "# TYPE recd_wal_unretired_records gauge\nrecd_wal_unretired_records %llu\n",
                 (unsigned long long)st.live_records);
    recd_jw_raw(out, line, (size_t)n);
    n = snprintf(line, sizeof(line),
                 "# HELP recd_wal_oldest_unretired_age_seconds Age of the oldest event the broker has not confirmed (0: none).\n"
                 "# TYPE recd_wal_oldest_unretired_age_seconds gauge\nrecd_wal_oldest_unretired_age_seconds %.3f\n",
                 age);
    recd_jw_raw(out, line, (size_t)n);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(err, errlen, "kafka setting %s=%s: %s", name, value, errstr);
    return -1;
}

recd_event_sink_t *recd_kafka_sink_open(const recd_kafka_sink_config_t *config, recd_metrics_t *metrics, const recd_logger_t *log,
                                        char *err, size_t errlen)
{
    char warn[1024], timeout[32], errstr[512], q[1100];
    sigset_t all, old;
    rd_kafka_conf_t *conf = NULL;
    int rc;

    kafka_sink_t *ks = recd_xcalloc(1, sizeof(*ks));
    ks->super.ops = &kafka_sink_ops;
    ks->log = log;
    ks->retry_interval_ms = config->retry_interval_ms != 0 ? config->retry_interval_ms : DEFAULT_RETRY_INTERVAL_MS;
    pthread_mutex_init(&ks->lock, NULL);
    pthread_cond_init(&ks->idle, NULL);
    if ((ks->wal = recd_wal_open(config->wal_dir, config->wal_max_bytes, warn, sizeof(warn), err, errlen)) == NULL)
        goto fail_wal;
    if (warn[0] != '\0')
        recd_log(log, RECD_LOG_WARN, "the event write-ahead log was cut at open", "\"detail\":%s",
                 recd_json_quote(q, sizeof(q), warn, strlen(warn)));

    /* every thread librdkafka starts inherits this mask: the process takes its signals on the thread that waits for them */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    conf = rd_kafka_conf_new();
    snprintf(timeout, sizeof(timeout), "%u",
             config->message_timeout_ms != 0 ? config->message_timeout_ms : DEFAULT_MESSAGE_TIMEOUT_MS);
    if (conf_set(conf, "bootstrap.servers", config->brokers, err, errlen) != 0 || conf_set(conf, "acks", "all", err, errlen) != 0 ||
        conf_set(conf, "enable.idempotence", "true", err, errlen) != 0 ||
        conf_set(conf, "message.timeout.ms", timeout, err, errlen) != 0 || conf_set(conf, "linger.ms", "5", err, errlen) != 0)
        goto fail_conf;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, ks);
    if ((ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) == NULL) {
        snprintf(err, errlen, "cannot create the kafka producer: %s", errstr);
        goto fail_conf;
    }
    conf = NULL; /* rd_kafka_new took it */
    if ((ks->topic = rd_kafka_topic_new(ks->rk, config->topic != NULL ? config->topic : DEFAULT_TOPIC, NULL)) == NULL) {
        snprintf(err, errlen, "cannot create the kafka topic handle: %s", rd_kafka_err2str(rd_kafka_last_error()));
        goto fail_rk;
    }
    if (metrics != NULL) {
        ks->m_delivered = recd_metrics_counter(metrics, "recd_kafka_delivered_total",
                                               "Events the Kafka brokers confirmed (each retires its log record).", NULL);
        ks->m_errors =
            recd_metrics_counter(metrics, "recd_kafka_delivery_errors_total",
                                 "Failed Kafka deliveries and refused produce calls (each record is produced again).", NULL);
        recd_metrics_add_collector(metrics, collect, ks);
    }
    /* what an earlier run left unconfirmed goes first, with its original event_id */
    long replayed = recd_wal_replay(ks->wal, on_replayed, ks);
    if (replayed < 0) {
        snprintf(err, errlen, "cannot read the write-ahead log in %s back: %s", config->wal_dir, recd_strerror((int)replayed));
        goto fail_topic;
    }
    if (replayed > 0)
        recd_log(log, RECD_LOG_INFO, "replaying unconfirmed events from the write-ahead log", "\"events\":%ld", replayed);
    if ((rc = pthread_create(&ks->poller, NULL, run_poller, ks)) != 0) {
        snprintf(err, errlen, "cannot start the kafka poller thread: %s", strerror(rc));
        goto fail_topic;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return &ks->super;

fail_topic:
    rd_kafka_topic_destroy(ks->topic);
fail_rk:
    rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(ks->rk);
fail_conf:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    recd_wal_close(ks->wal);
fail_wal:
    free(ks->retry_ids);
    pthread_cond_destroy(&ks->idle);
    pthread_mutex_destroy(&ks->lock);
    free(ks);
    return NULL;
}

void recd_kafka_sink_stats(recd_event_sink_t *s, recd_kafka_sink_stats_t *out)
{
    kafka_sink_t *ks = (kafka_sink_t *)s;
    out->produced = atomic_load_explicit(&ks->produced, memory_order_relaxed);
    out->delivered = atomic_load_explicit(&ks->delivered, memory_order_relaxed);
    out->delivery_errors = atomic_load_explicit(&ks->delivery_errors, memory_order_relaxed);
    out->replayed = atomic_load_explicit(&ks->replayed, memory_order_relaxed);
    out->queue_messages = (uint64_t)rd_kafka_outq_len(ks->rk);
}
