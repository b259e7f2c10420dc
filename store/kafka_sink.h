/* kafka_sink.h: the Kafka event sink: every event line goes to a local write-ahead log, then to a Kafka topic. */
#ifndef RECD_STORE_KAFKA_SINK_H
#define RECD_STORE_KAFKA_SINK_H

#include <stddef.h>
#include <stdint.h>
#include "base/log.h"
#include "base/metrics.h"
#include "store/event_sink.h"

/** How to open a Kafka sink; zero members take the defaults named. */
typedef struct st_recd_kafka_sink_config_t {
    const char *brokers;         /* bootstrap.servers, "HOST:PORT,..." (required) */
    const char *topic;           /* NULL: "recd.events" */
    const char *wal_dir;         /* the write-ahead log's directory (required; one process per directory) */
    uint64_t wal_max_bytes;      /* the log's size limit; appends beyond it answer RECD_EBUSY (required) */
    unsigned message_timeout_ms; /* librdkafka's delivery deadline for one attempt; 0: 30000. A record whose attempt
                                    failed stays in the log and is produced again */
    unsigned retry_interval_ms;  /* how often failed records are produced again; 0: 1000 */
} recd_kafka_sink_config_t;

/**
 * Opens the write-ahead log (see store/wal.h: a second process on the same directory is refused with a message), starts
 * an idempotent producer (acks=all) to config->brokers and replays every unretired record of the log, with its original
 * event_id, in log order. Each batch given to recd_event_sink_append is split into its lines (one event each, a JSON object
 * with a string "user", the message key); they are appended to the log as one group-committed batch and the batch is
 * answered 0 only after the log's fdatasync, then produced. A record is retired when its delivery report says the broker
 * has it; one whose delivery failed (the brokers are down past the deadline, the queue is full) is produced again every
 * retry interval until it succeeds, so records wait in the log while the brokers are away and go out when they return.
 * A full log answers RECD_EBUSY. Metrics (when metrics is not NULL; it must outlive the sink):
 * recd_kafka_producer_queue_messages, recd_kafka_delivered_total, recd_kafka_delivery_errors_total, recd_wal_bytes,
 * recd_wal_unretired_records, recd_wal_oldest_unretired_age_seconds. log (borrowed) gets the log's recovery warnings and
 * the producer's errors. Returns NULL with a message in err.
 */
recd_event_sink_t *recd_kafka_sink_open(const recd_kafka_sink_config_t *config, recd_metrics_t *metrics, const recd_logger_t *log,
                                        char *err, size_t errlen);

/** Counters of a Kafka sink. */
typedef struct st_recd_kafka_sink_stats_t {
    uint64_t produced;        /* produce calls accepted by librdkafka, replays included */
    uint64_t delivered;       /* delivery reports that the broker has a record */
    uint64_t delivery_errors; /* delivery reports of failure and refused produce calls */
    uint64_t replayed;        /* records produced from the log at open */
    uint64_t queue_messages;  /* librdkafka's queue: messages not yet delivered or failed */
} recd_kafka_sink_stats_t;

/** Reads the counters of s, which recd_kafka_sink_open returned; safe from any thread. */
void recd_kafka_sink_stats(recd_event_sink_t *s, recd_kafka_sink_stats_t *out);

#endif
