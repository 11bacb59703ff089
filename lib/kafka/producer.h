/*
 * kafka/producer.h -- the Kafka producer engine: records in, acknowledgements out.
 *
 * One engine for every dp command that writes to Kafka: dp-publish's
 * stream of lines, dp-sink-pg's dead-letter records, dp-coord's registry
 * records.  It owns the librdkafka producers and does what a plain
 * rd_kafka_producev() loop gets wrong or slow:
 *
 *   - delivery accounting: every record handed over is counted as
 *     produced, and later as delivered or lost, and reported one by one
 *     to the caller's callback;
 *   - back-pressure: a full local queue waits for deliveries instead of
 *     failing the record;
 *   - batching: runs of keyed records for the producer's topic are
 *     partitioned here, with librdkafka's own partitioner function, and
 *     handed over one partition at a time (rd_kafka_produce_batch), so
 *     a partition's queue lock is taken once per run, not per record;
 *   - a window per partition: librdkafka 2.0's idempotent producer sends
 *     a partition's next request only once the previous one is answered
 *     (one request in flight per partition), so the engine keeps about
 *     two and a half batches of each partition outstanding: one in
 *     flight, one ready to leave when the answer comes, one filling.
 *     More only takes memory, and one busy partition would fill the
 *     shared queue and hold up the others;
 *   - lanes: for records that pick their partition by key, the topic's
 *     partitions are spread over up to DP_PRODUCER_MAX_LANES producers,
 *     each with its own connection (the broker serves one connection's
 *     requests in turn).  Partition k always goes through lane
 *     k % lanes, so its records keep their order and each producer's
 *     sequence numbers still rule out duplicates;
 *   - records that cannot be delivered are given up, not waited for until
 *     message.timeout.ms: when no report comes for --timeout while
 *     records wait, the engine asks the cluster why, and when no broker
 *     answers, or a partition with records has no leader or (acks=all)
 *     fewer in-sync replicas than min.insync.replicas, it says so
 *     (dp_err) and purges the queues; each record is reported lost with
 *     its partition's reason (NOT_ENOUGH_REPLICAS, LEADER_NOT_AVAILABLE,
 *     _ALL_BROKERS_DOWN), and a line says how many, and how many were
 *     in a request in flight: those wait for its answer (the broker may
 *     have written them).  What is sent after goes through once the
 *     cluster takes records again.  A cluster that answers and could
 *     take them is only slow, however long it takes.
 * docs/BENCHMARKS.md has the measurements behind each of these.
 *
 * Defaults (the caller's and then -F/-X override them): enable.idempotence
 * =true, acks=all, allow.auto.create.topics=false (a typo in a topic name
 * does not create a topic), queue.buffering.max.messages=40000 (bounds
 * memory), linger.ms=100 (see dp_producer_flush: callers send what waits
 * as soon as their input pauses, so linger.ms only bounds a slowly
 * filling partition in a busy stream, and a long one keeps librdkafka's
 * broker thread from polling in a loop while a full batch waits behind
 * the request in flight).
 *
 * Threads: a producer is used from one thread only (in dp-publish, the
 * main thread): every call here, and the report callback, which runs
 * inside dp_producer_send, _poll, _flush, _drain and _send_wait.  The one
 * exception is dp_producer_check_topic(), see there.
 *
 * Signals: waits for the cluster (connect, send_wait) end early when
 * SIGINT or SIGTERM arrived (core/sig.h).  A drain does not: it is what a
 * signal asks for.  Back-pressure waits only for deliveries, which the
 * engine gives up as above when they cannot come.
 */
#ifndef DP_PRODUCER_H
#define DP_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/buf.h"
#include "core/props.h"

#define DP_PRODUCER_MAX_LANES 4
#define DP_PRODUCER_ANY RD_KAFKA_PARTITION_UA  /* partition: by key, as librdkafka does */
#define DP_PRODUCER_TAG_MAX ((UINT64_C(1) << 62) - 1)
#define DP_PRODUCER_FOREVER (-1)               /* send_wait: no timeout of its own */

struct dp_producer;

/* One header; names and values are copied when the record is handed over. */
struct dp_producer_header {
	const char *name;        /* NUL-terminated; borrowed */
	const void *value;       /* NULL: a header with a null value; borrowed */
	size_t len;
};

/*
 * One record.  Every pointer is borrowed for the call only: the engine
 * copies what it keeps (RD_KAFKA_MSG_F_COPY).
 */
struct dp_producer_rec {
	const char *topic;       /* NULL: the producer's topic (conf.topic) */
	int32_t partition;       /* or DP_PRODUCER_ANY */
	const void *key;         /* NULL: no key */
	size_t key_len;
	const void *value;       /* NULL: a tombstone */
	size_t value_len;
	const struct dp_producer_header *hdrs;
	size_t nhdrs;
	/*
	 * Create time, ms since the epoch, > 0; 0 lets the producer's clock
	 * decide.  librdkafka cannot send a timestamp of 0 (it takes 0 as
	 * "now", rd_kafka_msg_new0): callers must refuse one.
	 */
	int64_t timestamp;
	uint64_t tag;            /* the caller's, given back in the report; <= DP_PRODUCER_TAG_MAX */
};

/* The fate of one record, for the report callback. */
struct dp_producer_report {
	uint64_t tag;
	const char *topic;       /* borrowed for the call */
	int32_t partition;       /* -1 when unknown */
	int64_t offset;          /* -1 when not delivered */
	rd_kafka_resp_err_t err; /* 0: delivered (acknowledged per acks) */
};

typedef void (*dp_producer_report_fn)(void *arg, const struct dp_producer_report *r);

struct dp_producer_conf {
	const struct dp_kafka_opts *kafka;  /* -b, -F, -X, --timeout; borrowed, outlives the producer */
	const char *topic;       /* the topic most records go to, or NULL; borrowed */
	/*
	 * Spread the topic's partitions over several connections.  Pays only
	 * for records that pick their partition by key (or name it); takes
	 * effect for an idempotent producer, a known partitioner and a topic
	 * of two partitions or more.
	 */
	bool lanes;
	/*
	 * Count acknowledged records per topic as dp_records_out_total
	 * (obs/obs.h), per poll; the link "kafka" is up once connected, down
	 * while every broker is, up again at the next acknowledgement.  For
	 * the command's own records (dp-publish), not its dead letters.
	 */
	bool metrics;
	const struct dp_kv *defaults;    /* the caller's defaults over the engine's; may be NULL */
	size_t ndefaults;
	dp_producer_report_fn report;    /* may be NULL; not called for send_wait's records */
	void *arg;
};

/* Totals over the producer's life. */
struct dp_producer_stats {
	uint64_t produced;       /* handed over to librdkafka */
	uint64_t delivered;      /* acknowledged */
	uint64_t lost;           /* reported as failed */
	int pending;             /* handed over and not reported yet (librdkafka's queues) */
	int lanes;               /* producers in use */
};

/*
 * Make the producer (lane 0).  Nothing is sent and nothing waits.
 * Returns the producer (dp_producer_free), or NULL with a message in err
 * and the exit status in *status: DP_EX_CONFIG for a bad property,
 * DP_EX_NOINPUT for an unreadable -F file, DP_EX_SOFTWARE out of memory.
 */
struct dp_producer *dp_producer_new(const struct dp_producer_conf *conf, struct dp_buf *err,
                                    int *status);
void dp_producer_free(struct dp_producer *p);

/*
 * The connecting step (dp_kafka_connect): prove within --timeout that a
 * broker answers and that conf.topic and topics[0..n) exist, learn
 * conf.topic's partition count (one metadata request), and open the
 * lanes.  A missing topic is no error when allow.auto.create.topics=true
 * (the broker makes it on first use; batching starts once it is seen).
 * Returns 0, DP_KAFKA_STOPPED (a signal), or an exit status with a
 * message in err: DP_EX_UNAVAILABLE, DP_EX_NOTFOUND (a topic is missing),
 * DP_EX_INVALID (a bad topic name), ...
 */
int dp_producer_connect(struct dp_producer *p, const char *const *topics, size_t n,
                        struct dp_buf *err);

/* conf.topic's partition count; 0 before connect or while it is unknown. */
int32_t dp_producer_partitions(const struct dp_producer *p);

/*
 * Hand records over, in order (per partition, order is kept on the
 * wire).  Waits while librdkafka's queue is full.  Now and then (every
 * 10 s at most) asks for conf.topic's partition count again, so that
 * partitions added meanwhile are used as librdkafka would.
 * Returns 0 when all went, else *failed is the index of the record that
 * did not, with a message in err (without the tag: the caller names it):
 *   DP_EX_DATAERR     recs[*failed] was refused for itself (over
 *                     message.max.bytes, a partition the topic does not
 *                     have, ...); the records before it went, none after
 *                     it: the caller may go on after it;
 *   DP_EX_NOTFOUND    recs[*failed]'s topic does not exist any more (it
 *                     was deleted while the producer knew it); as with
 *                     DP_EX_DATAERR the caller may go on after it;
 *   another status    the producer cannot go on (out of memory, an
 *                     unexpected librdkafka error); records after
 *                     *failed may have gone too.  Drain, then stop.
 */
int dp_producer_send(struct dp_producer *p, const struct dp_producer_rec *recs, size_t n,
                     size_t *failed, struct dp_buf *err);

/* Serve delivery reports (the callback), waiting up to ms for one. */
void dp_producer_poll(struct dp_producer *p, int ms);

/*
 * Send what waits for linger.ms now, and wait up to ms (per lane) for
 * it to be acknowledged.  Callers call it when their input pauses.
 */
void dp_producer_flush(struct dp_producer *p, int ms);

/* Records handed over and not yet reported, over all lanes. */
int dp_producer_pending(const struct dp_producer *p);

void dp_producer_stats(const struct dp_producer *p, struct dp_producer_stats *st);

/*
 * Wait for every record handed over to be reported.  Deliveries may take
 * long on a busy cluster, so timeout_ms only runs while no report
 * arrives; then the engine asks the cluster why, and gives up only when
 * the records cannot be delivered now (see above), or a signal came.
 * What is still queued or in flight then is purged, and reported as
 * lost.  Returns 0 when every record was delivered, DP_EX_TEMPFAIL when
 * any was lost (dp_producer_stats says how many).
 */
int dp_producer_drain(struct dp_producer *p, int64_t timeout_ms);

/* The outcome of one record of dp_producer_send_wait. */
struct dp_producer_ack {
	rd_kafka_resp_err_t err; /* 0: acknowledged; RD_KAFKA_RESP_ERR__TIMED_OUT: no answer
	                          * in time; RD_KAFKA_RESP_ERR__IN_PROGRESS: a signal came first */
	int32_t partition;       /* -1 unless acknowledged */
	int64_t offset;          /* -1 unless acknowledged */
};

/*
 * Send recs[0..n) and wait until each is acknowledged or failed, for a
 * dead-letter record or a registry write that must be durable before
 * the caller commits what caused it.  What waits for linger.ms is sent
 * at once.  acks[0..n) (caller's, may be NULL) get each record's fate.
 * tags are not used, and the report callback is not called for these.
 * timeout_ms bounds the whole wait (DP_PRODUCER_FOREVER: only
 * message.timeout.ms does).
 * Returns 0 when every record was acknowledged, DP_KAFKA_STOPPED when a
 * signal came first, or an exit status with a message in err naming the
 * first failure: DP_EX_TEMPFAIL for a record not acknowledged (failed or
 * timed out), DP_EX_DATAERR for one refused for itself, at hand-over or
 * by the broker (too large: message.max.bytes, the topic's
 * max.message.bytes), ... .  Records that were not answered in time or before the signal are
 * not withdrawn: they may still be delivered later (counted in the
 * stats only), so a caller that retries must write records that are
 * safe to repeat (a compacted topic's key, say).
 */
int dp_producer_send_wait(struct dp_producer *p, const struct dp_producer_rec *recs, size_t n,
                          struct dp_producer_ack *acks, int64_t timeout_ms, struct dp_buf *err);

/*
 * Whether records can go to topic: it exists (or allow.auto.create.topics
 * is on and the broker will make it), asked within timeout_ms
 * (DP_PRODUCER_FOREVER: --timeout).  A topic made a moment ago may not be
 * in the metadata yet, so a missing one is looked for again for up to
 * 1.5 s, or timeout_ms when shorter (kafka/client.h's dp_kafka_probe).  The one
 * call that may come from another thread than the producer's (it only
 * reads metadata, and librdkafka's calls are thread-safe): dp-publish's
 * reader checks each topic --topic-expr names.  Returns 0,
 * DP_KAFKA_STOPPED, or an exit status with a message in err
 * (DP_EX_NOTFOUND: it does not exist).
 */
int dp_producer_check_topic(struct dp_producer *p, const char *topic, int timeout_ms,
                            struct dp_buf *err);

#endif
