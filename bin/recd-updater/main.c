/* main.c: recd-updater — consumes recd.events, folds each user in against the version they are served, writes Redis.
 *
 * DESIGN: one consumer thread does everything that matters, in a loop: poll a batch of messages, apply them to Redis in
 * two pipelined round trips (updater/updater.h), then commit the batch's offsets. A batch whose Redis writes did not all
 * go through is retried (reconnecting, with backoff) and never committed before they did, so every event is applied at
 * least once; the dedup keys make it exactly once in Redis. The catalog loader's watcher thread publishes new snapshots
 * (an activation, an experiment) and each batch folds against the newest; users are re-folded under a new version when
 * their next event comes (lazily), and until then recd folds them itself from the recent list. A second thread serves
 * /metrics and /healthz (metrics_http.c). Nothing here needs libh2o. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/text.h"
#include "config/options.h"
#include "registry/catalog.h"
#include "updater/updater.h"
#include "bin/recd-updater/metrics_http.h"

#define EXIT_USAGE 2
#define MAX_FACTORS 4096

typedef struct st_updater_config_t {
    char *kafka, *redis, *registry, *model, *group, *topic, *listen, *log_level;
    uint32_t max_recent_items, redis_recent_ttl_s, redis_vec_ttl_s, dedup_ttl_s, batch_max, poll_ms, redis_timeout_ms,
        watch_interval_ms, session_timeout_ms, fetch_wait_ms;
} updater_config_t;

static int check_host_port(const char *value, char *err, size_t errlen)
{
    const char *colon = strrchr(value, ':');
    char *end;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || colon == value || *end != '\0' || port < 1 || port > 65535) {
        snprintf(err, errlen, "must be HOST:PORT");
        return RECD_EINVAL;
    }
    return 0;
}

static int check_listen(const char *value, char *err, size_t errlen)
{
    return value[0] == '\0' ? 0 : check_host_port(value, err, errlen);
}

static int check_level(const char *value, char *err, size_t errlen)
{
    if (recd_log_parse_level(value) >= 0)
        return 0;
    snprintf(err, errlen, "must be debug, info, warn or error");
    return RECD_EINVAL;
}

#define OFF(field) offsetof(updater_config_t, field)
static const recd_option_t options[] = {
    {"kafka", RECD_OPT_STRING, OFF(kafka), NULL, 0, 0, NULL, "BROKERS", "Kafka bootstrap servers (HOST:PORT,...)."},
    {"redis", RECD_OPT_STRING, OFF(redis), NULL, 0, 0, check_host_port, "HOST:PORT", "The Redis feature store recd reads."},
    {"registry", RECD_OPT_STRING, OFF(registry), NULL, 0, 0, NULL, "DIR", "The model registry recd serves from."},
    {"model", RECD_OPT_STRING, OFF(model), NULL, 0, 0, NULL, "NAME", "The model whose users are folded in."},
    {"group", RECD_OPT_STRING, OFF(group), "recd-updater", 0, 0, NULL, "ID",
     "Kafka consumer group: replicas with the same group share the partitions."},
    {"topic", RECD_OPT_STRING, OFF(topic), "recd.events", 0, 0, NULL, "NAME", "The topic recd produces events to."},
    {"listen", RECD_OPT_STRING, OFF(listen), "", 0, 0, check_listen, "HOST:PORT", "Serve /metrics and /healthz here (empty: off)."},
    {"log_level", RECD_OPT_STRING, OFF(log_level), "info", 0, 0, check_level, "LEVEL", "debug, info, warn or error."},
    {"max_recent_items", RECD_OPT_U32, OFF(max_recent_items), "50", 1, 100000, NULL, "N",
     "Recent items kept per user in Redis (recd's max_recent_items)."},
    {"redis_recent_ttl_s", RECD_OPT_U32, OFF(redis_recent_ttl_s), "2592000", 1, UINT32_MAX, NULL, "S",
     "TTL of a user's recent list."},
    {"redis_vec_ttl_s", RECD_OPT_U32, OFF(redis_vec_ttl_s), "2592000", 1, UINT32_MAX, NULL, "S",
     "TTL of a user's vectors and stamp."},
    {"dedup_ttl_s", RECD_OPT_U32, OFF(dedup_ttl_s), "86400", 1, UINT32_MAX, NULL, "S",
     "How long an event_id is remembered to drop its replays."},
    {"batch_max", RECD_OPT_U32, OFF(batch_max), "500", 1, 100000, NULL, "N", "Most messages applied per Redis round trip."},
    {"poll_ms", RECD_OPT_U32, OFF(poll_ms), "100", 1, 10000, NULL, "MS", "Longest wait for the first message of a batch."},
    {"redis_timeout_ms", RECD_OPT_U32, OFF(redis_timeout_ms), "2000", 1, 600000, NULL, "MS",
     "Connect and command timeout towards Redis (a timeout retries the batch)."},
    {"session_timeout_ms", RECD_OPT_U32, OFF(session_timeout_ms), "10000", 1000, 3600000, NULL, "MS",
     "Kafka group session timeout: how soon a dead replica's partitions move to the others."},
    {"fetch_wait_ms", RECD_OPT_U32, OFF(fetch_wait_ms), "20", 1, 10000, NULL, "MS",
     "Longest time a broker may hold a fetch with no new data (librdkafka's fetch.wait.max.ms, 500 by default): the floor "
     "of event-to-fresh-recommendation latency."},
    {"watch_interval_ms", RECD_OPT_U32, OFF(watch_interval_ms), "1000", 10, 3600000, NULL, "MS",
     "Longest time between registry checks (inotify usually reports sooner)."},
};
static const recd_options_t spec = {options, sizeof(options) / sizeof(options[0]), "RECD_UPDATER", 1};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    stopping = 1;
}

typedef struct st_updater_t {
    updater_config_t cfg;
    recd_updater_limits_t limits;
    recd_logger_t log;
    recd_metrics_t *metrics;
    recd_catalog_loader_t *loader;
    rd_kafka_t *rk;
    redisContext *redis;
    char redis_host[256];
    int redis_port;
    recd_updater_batch_t *batch;
    rd_kafka_topic_partition_list_t *offsets; /* next offset per partition of the batch */
    float vec[MAX_FACTORS];
    struct {
        recd_metric_t *applied, *duplicate, *invalid, *vectors, *unserved, *batches, *redis_connect, *redis_transport, *redis_reply,
            *commit_failures, *lag, *latency;
    } m;
} updater_t;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stopping)
        ;
}

static void log_str(updater_t *u, int level, const char *msg, const char *key, const char *value)
{
    char q[1024], fmt[64];
    if (!recd_log_enabled(&u->log, level))
        return;
    snprintf(fmt, sizeof(fmt), "\"%s\":%%s", key);
    recd_log_write(&u->log, level, msg, fmt, recd_json_quote(q, sizeof(q), value, strlen(value)));
}

/* ---- Redis ------------------------------------------------------------------------------------------------------ */

static void redis_drop(updater_t *u)
{
    redisFree(u->redis);
    u->redis = NULL;
}

static int redis_connect(updater_t *u)
{
    struct timeval tv = {u->cfg.redis_timeout_ms / 1000, (long)(u->cfg.redis_timeout_ms % 1000) * 1000};
    u->redis = redisConnectWithTimeout(u->redis_host, u->redis_port, tv);
    if (u->redis == NULL || u->redis->err) {
        log_str(u, RECD_LOG_WARN, "cannot connect to Redis", "error", u->redis != NULL ? u->redis->errstr : "out of memory");
        recd_metric_add(u->m.redis_connect, 0, 1);
        if (u->redis != NULL)
            redis_drop(u);
        return -1;
    }
    redisSetTimeout(u->redis, tv);
    recd_log(&u->log, RECD_LOG_INFO, "connected to Redis", "\"port\":%d", u->redis_port);
    return 0;
}

static int append(updater_t *u, const recd_updater_cmd_t *c)
{
    return redisAppendCommandArgv(u->redis, c->argc, c->argv, c->argvlen) == REDIS_OK ? 0 : -1;
}

/* Reads one reply; a transport failure drops the connection and returns -1. */
static int get_reply(updater_t *u, redisReply **r)
{
    void *p = NULL;
    if (redisGetReply(u->redis, &p) != REDIS_OK || p == NULL) {
        log_str(u, RECD_LOG_WARN, "Redis connection failed", "error", u->redis->errstr[0] ? u->redis->errstr : "no reply");
        recd_metric_add(u->m.redis_transport, 0, 1);
        redis_drop(u);
        return -1;
    }
    *r = p;
    return 0;
}

static void reply_error(updater_t *u, const recd_updater_user_t *usr, const redisReply *r)
{
    char qu[600], qe[600];
    recd_metric_add(u->m.redis_reply, 0, 1);
    recd_log(&u->log, RECD_LOG_ERROR, "Redis refused a user's update; its events are skipped", "\"user\":%s,\"error\":%s",
             recd_json_quote(qu, sizeof(qu), usr->user, usr->user_len),
             recd_json_quote(qe, sizeof(qe), r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply",
                             r->type == REDIS_REPLY_ERROR ? r->len : 16));
}

/*
 * Applies the grouped batch: round trip 1 dedups and pushes each user's events and reads back the recent list, round
 * trip 2 writes the vectors folded from those lists. Returns 0 when every reply arrived (a user whose script Redis
 * refused is logged, counted and skipped: retrying cannot change a deterministic refusal), -1 on a transport failure.
 */
static int apply_batch(updater_t *u, recd_catalog_t *cat)
{
    size_t n_users, n_vectors = 0;
    const recd_updater_user_t *users = recd_updater_batch_users(u->batch, &n_users);
    redisReply **replies = recd_xcalloc(n_users ? n_users : 1, sizeof(*replies));
    size_t *vector_user = recd_xmalloc(sizeof(*vector_user) * (n_users ? n_users : 1));
    uint64_t applied = 0, duplicate = 0;
    int ret = -1;

    for (size_t i = 0; i < n_users; ++i) {
        recd_updater_cmd_t c;
        recd_updater_cmd_apply(u->batch, &users[i], &u->limits, &c);
        if (append(u, &c) != 0)
            goto Exit;
    }
    for (size_t i = 0; i < n_users; ++i) {
        if (get_reply(u, &replies[i]) != 0)
            goto Exit;
        redisReply *r = replies[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER) {
            reply_error(u, &users[i], r);
            freeReplyObject(r);
            replies[i] = NULL;
            continue;
        }
        applied += (uint64_t)r->element[0]->integer;
        duplicate += users[i].n_events - (uint64_t)r->element[0]->integer;

        recd_model_t *m = recd_updater_user_model(cat, u->cfg.model, users[i].user, users[i].user_len);
        uint32_t nf = m != NULL ? recd_model_n_factors(m) : 0;
        if (nf == 0 || nf > MAX_FACTORS) {
            recd_metric_add(u->m.unserved, 0, 1);
            continue;
        }
        recd_updater_entry_t *entries = recd_xmalloc(sizeof(*entries) * r->elements);
        size_t n_entries = 0;
        for (size_t e = 1; e < r->elements; ++e)
            if (r->element[e]->type == REDIS_REPLY_STRING &&
                recd_updater_entry_parse(r->element[e]->str, r->element[e]->len, &entries[n_entries]) == 0)
                ++n_entries;
        int fold = recd_updater_fold(m, users[i].user, users[i].user_len, entries, n_entries, u->vec);
        free(entries);
        if (fold != 0) {
            recd_metric_add(u->m.unserved, 0, 1); /* nothing the version knows: recd answers with popularity */
            continue;
        }
        recd_updater_cmd_t c;
        recd_updater_cmd_vector(u->batch, &users[i], recd_model_name(m), recd_model_version(m),
                                users[i].events[users[i].n_events - 1].seq, u->vec, nf, &u->limits, &c);
        if (append(u, &c) != 0)
            goto Exit;
        vector_user[n_vectors++] = i;
    }
    for (size_t i = 0; i < n_vectors; ++i) {
        redisReply *r = NULL;
        if (get_reply(u, &r) != 0)
            goto Exit;
        if (r->type == REDIS_REPLY_ERROR)
            reply_error(u, &users[vector_user[i]], r);
        freeReplyObject(r);
    }
    /* written: every event of the batch is now in Redis */
    double now = recd_realtime_seconds();
    for (size_t i = 0; i < n_users; ++i)
        for (size_t e = 0; e < users[i].n_events; ++e)
            recd_metric_observe(u->m.latency, 0, now - users[i].events[e].ts > 0 ? now - users[i].events[e].ts : 0);
    recd_metric_add(u->m.applied, 0, applied);
    recd_metric_add(u->m.duplicate, 0, duplicate);
    recd_metric_add(u->m.vectors, 0, n_vectors);
    ret = 0;
Exit:
    for (size_t i = 0; i < n_users; ++i)
        if (replies[i] != NULL)
            freeReplyObject(replies[i]);
    free(replies);
    free(vector_user);
    return ret;
}

/* ---- Kafka ------------------------------------------------------------------------------------------------------ */

static rd_kafka_t *consumer_create(updater_t *u, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char session[16], poll_interval[16], fetch_wait[16];
    snprintf(session, sizeof(session), "%u", u->cfg.session_timeout_ms);
    snprintf(fetch_wait, sizeof(fetch_wait), "%u", u->cfg.fetch_wait_ms);
    /* also the rebalance timeout: how long a join waits for a member that went silent (a killed replica) */
    snprintf(poll_interval, sizeof(poll_interval), "%u", 5 * u->cfg.session_timeout_ms);
    const char *settings[][2] = {
        {"session.timeout.ms", session},   {"max.poll.interval.ms", poll_interval}, {"bootstrap.servers", u->cfg.kafka},
        {"group.id", u->cfg.group},        {"client.id", "recd-updater"},           {"enable.auto.commit", "false"},
        {"auto.offset.reset", "earliest"}, {"enable.partition.eof", "false"},       {"fetch.wait.max.ms", fetch_wait},
    };
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); ++i)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, errlen) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen); /* takes conf on success */
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, u->cfg.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "subscribe %s: %s", u->cfg.topic, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

/* Adds one message to the batch and moves its partition's commit point past it. */
static void take_message(updater_t *u, const rd_kafka_message_t *msg)
{
    char fallback[64], err[256];
    const char *topic = rd_kafka_topic_name(msg->rkt);
    snprintf(fallback, sizeof(fallback), "k:%d:%lld", (int)msg->partition, (long long)msg->offset);
    if (msg->payload == NULL ||
        recd_updater_batch_add(u->batch, msg->payload, msg->len, msg->offset, fallback, err, sizeof(err)) != 0) {
        recd_metric_add(u->m.invalid, 0, 1);
        recd_log(&u->log, RECD_LOG_WARN, "skipping a message that is not an event", "\"partition\":%d,\"offset\":%lld",
                 (int)msg->partition, (long long)msg->offset);
        log_str(u, RECD_LOG_WARN, "why the message was skipped", "error", msg->payload == NULL ? "no value" : err);
    }
    rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(u->offsets, topic, msg->partition);
    if (p == NULL)
        p = rd_kafka_topic_partition_list_add(u->offsets, topic, msg->partition);
    p->offset = msg->offset + 1;
}

/* Polls up to batch_max messages: waits poll_ms for the first, then takes what is already there. Returns how many. */
static size_t poll_batch(updater_t *u)
{
    size_t n = 0;
    while (n < u->cfg.batch_max && !stopping) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(u->rk, n == 0 ? (int)u->cfg.poll_ms : 0);
        if (msg == NULL)
            break;
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_str(u, RECD_LOG_WARN, "consumer error", "error", rd_kafka_message_errstr(msg));
        } else {
            take_message(u, msg);
            ++n;
        }
        rd_kafka_message_destroy(msg);
    }
    return n;
}

static void update_lag(updater_t *u)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    int64_t lag = 0;
    if (rd_kafka_assignment(u->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_position(u->rk, a);
    for (int i = 0; i < a->cnt; ++i) {
        int64_t lo, hi, pos = a->elems[i].offset;
        if (rd_kafka_get_watermark_offsets(u->rk, a->elems[i].topic, a->elems[i].partition, &lo, &hi) != 0 || hi < 0)
            continue;
        lag += pos >= 0 ? (hi > pos ? hi - pos : 0) : hi - lo;
    }
    rd_kafka_topic_partition_list_destroy(a);
    recd_metric_set(u->m.lag, (double)lag);
}

/* Applies the batch until Redis took it all (or we are stopping), then commits its offsets. */
static void run_batch(updater_t *u)
{
    unsigned backoff = 50;
    int done = 0;
    while (!done && !stopping) {
        if (u->redis == NULL && redis_connect(u) != 0) {
            sleep_ms(backoff);
            backoff = backoff < 2000 ? backoff * 2 : 2000;
            continue;
        }
        recd_catalog_t *cat = recd_catalog_loader_current(u->loader);
        done = apply_batch(u, cat) == 0;
        recd_catalog_release(cat);
    }
    if (done) {
        rd_kafka_resp_err_t e = rd_kafka_commit(u->rk, u->offsets, 0);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* a rebalance took the partitions: their new owner re-reads the batch and the dedup keys drop it */
            recd_metric_add(u->m.commit_failures, 0, 1);
            log_str(u, RECD_LOG_WARN, "offset commit failed", "error", rd_kafka_err2str(e));
        }
        recd_metric_add(u->m.batches, 0, 1);
    }
    recd_updater_batch_reset(u->batch);
    rd_kafka_topic_partition_list_destroy(u->offsets);
    u->offsets = rd_kafka_topic_partition_list_new(8);
}

static void register_metrics(updater_t *u)
{
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    const char *ev = "Events consumed, by what became of them";
    u->m.applied = recd_metrics_counter(u->metrics, "recd_updater_events_total", ev, "result=\"applied\"");
    u->m.duplicate = recd_metrics_counter(u->metrics, "recd_updater_events_total", ev, "result=\"duplicate\"");
    u->m.invalid = recd_metrics_counter(u->metrics, "recd_updater_events_total", ev, "result=\"invalid\"");
    u->m.vectors = recd_metrics_counter(u->metrics, "recd_updater_vectors_written_total", "User vectors written to Redis", NULL);
    u->m.unserved = recd_metrics_counter(u->metrics, "recd_updater_users_not_folded_total",
                                         "User updates without a vector (no loaded version, or no item it knows)", NULL);
    u->m.batches = recd_metrics_counter(u->metrics, "recd_updater_batches_total", "Batches applied and committed", NULL);
    const char *re = "Redis failures (connect, transport: the batch is retried; reply: a user's update was refused)";
    u->m.redis_connect = recd_metrics_counter(u->metrics, "recd_updater_redis_errors_total", re, "kind=\"connect\"");
    u->m.redis_transport = recd_metrics_counter(u->metrics, "recd_updater_redis_errors_total", re, "kind=\"transport\"");
    u->m.redis_reply = recd_metrics_counter(u->metrics, "recd_updater_redis_errors_total", re, "kind=\"reply\"");
    u->m.commit_failures =
        recd_metrics_counter(u->metrics, "recd_updater_commit_failures_total", "Offset commits Kafka refused", NULL);
    u->m.lag = recd_metrics_gauge(u->metrics, "recd_updater_lag_messages",
                                  "Messages in the assigned partitions not consumed yet (high watermark - position)", NULL);
    u->m.latency = recd_metrics_histogram(u->metrics, "recd_updater_event_to_redis_seconds",
                                          "From an event's ts to its batch's Redis writes completing", NULL, bounds,
                                          sizeof(bounds) / sizeof(bounds[0]));
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: recd-updater --kafka BROKERS --redis HOST:PORT --registry DIR --model NAME [options]\n\n"
                 "Consumes recd's events, folds each user in against the model version they are served and writes the\n"
                 "vectors and recent items to Redis, where every recd replica reads them. Each option is also a key of the\n"
                 "--config JSON file and a RECD_UPDATER_<KEY> variable.\n\nOptions:\n");
    recd_options_print(&spec, out);
}

int main(int argc, char **argv)
{
    extern char **environ;
    updater_t *u = recd_xcalloc(1, sizeof(*u));
    recd_metrics_http_t *http = NULL;
    char err[1024];
    int want_help = 0, status = 1;

    recd_options_init(&spec, &u->cfg);
    if (recd_options_parse(&spec, &u->cfg, argc, argv, environ, &want_help, err, sizeof(err)) != RECD_OK || want_help) {
        if (want_help)
            usage(stdout);
        else
            fprintf(stderr, "recd-updater: %s\n", err);
        status = want_help ? 0 : EXIT_USAGE;
        goto Exit;
    }
    u->log = (recd_logger_t){recd_log_parse_level(u->cfg.log_level), 2};
    u->limits =
        (recd_updater_limits_t){u->cfg.max_recent_items, u->cfg.redis_recent_ttl_s, u->cfg.redis_vec_ttl_s, u->cfg.dedup_ttl_s};
    const char *colon = strrchr(u->cfg.redis, ':');
    snprintf(u->redis_host, sizeof(u->redis_host), "%.*s", (int)(colon - u->cfg.redis), u->cfg.redis);
    u->redis_port = atoi(colon + 1);
    u->metrics = recd_metrics_create(1);
    register_metrics(u);
    u->batch = recd_updater_batch_create();
    u->offsets = rd_kafka_topic_partition_list_new(8);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *models[] = {u->cfg.model};
    if ((u->loader = recd_catalog_loader_create(u->cfg.registry, models, 1, 0, &u->log, u->metrics, err, sizeof(err))) == NULL) {
        fprintf(stderr, "recd-updater: %s\n", err);
        goto Exit;
    }
    if (recd_catalog_loader_start(u->loader, u->cfg.watch_interval_ms) != 0) {
        fprintf(stderr, "recd-updater: cannot watch the registry %s\n", u->cfg.registry);
        goto Exit;
    }
    if (u->cfg.listen[0] != '\0' && (http = recd_metrics_http_start(u->cfg.listen, u->metrics, err, sizeof(err))) == NULL) {
        fprintf(stderr, "recd-updater: %s\n", err);
        goto Exit;
    }
    if ((u->rk = consumer_create(u, err, sizeof(err))) == NULL) {
        fprintf(stderr, "recd-updater: kafka: %s\n", err);
        goto Exit;
    }
    redis_connect(u); /* not fatal: the first batch retries until Redis answers */
    recd_log(&u->log, RECD_LOG_INFO, "recd-updater started", "\"pid\":%d", (int)getpid());

    double last_lag = 0;
    while (!stopping) {
        if (poll_batch(u) > 0)
            run_batch(u);
        if (recd_monotonic_seconds() - last_lag > 0.2) {
            update_lag(u);
            last_lag = recd_monotonic_seconds();
        }
    }
    recd_log(&u->log, RECD_LOG_INFO, "recd-updater stopping", "\"pid\":%d", (int)getpid());
    status = 0;
Exit:
    if (u->rk != NULL) {
        rd_kafka_consumer_close(u->rk); /* leaves the group at once, so the partitions move without a session timeout */
        rd_kafka_destroy(u->rk);
    }
    recd_metrics_http_stop(http);
    recd_catalog_loader_free(u->loader);
    if (u->redis != NULL)
        redisFree(u->redis);
    if (u->offsets != NULL)
        rd_kafka_topic_partition_list_destroy(u->offsets);
    recd_updater_batch_free(u->batch);
    recd_metrics_free(u->metrics);
    recd_options_dispose(&spec, &u->cfg);
    free(u);
    return status;
}
