/*
 * kafka/client.h -- librdkafka set-up shared by the commands.
 *
 * Builds clients from the common options (-b, -F, -X, --timeout),
 * routes librdkafka's log and error lines through core/log.h, proves that the
 * cluster answers before a command starts its work, and maps Kafka
 * errors to the exit table.  Property values are never printed: they may
 * hold credentials.
 *
 * Every call here that waits for the cluster waits in slices of at most
 * DP_KAFKA_SLICE_MS and gives up early when SIGINT or SIGTERM arrived
 * (core/sig.h's dp_sig_stop): a signal ends any command within about a second,
 * even while no broker answers.
 */
#ifndef DP_KAFKA_H
#define DP_KAFKA_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/buf.h"
#include "core/props.h"

#define DP_KAFKA_SLICE_MS 250

/*
 * How long a topic may be missing from a broker's metadata, or have
 * partitions without a leader, before it counts as absent: a topic
 * created a moment ago (by this process or another) takes that long, at
 * most, to reach every broker and to get its leaders.
 */
#define DP_KAFKA_PROPAGATION_MS 1500

/* Returned instead of an exit status when a signal stopped the wait. */
#define DP_KAFKA_STOPPED (-1)

/*
 * A new configuration (caller owns it; rd_kafka_new takes it over).
 * Order: the command's defaults (borrowed, may be NULL), then the
 * -F/$DP_CONFIG file, then -X pairs, then bootstrap.servers from -b
 * unless -X/-F set it.  On error returns NULL, appends a message to err
 * and sets *status to an exit code.
 */
rd_kafka_conf_t *dp_kafka_conf_new(const struct dp_kafka_opts *c, const struct dp_kv *defaults,
                                   size_t ndefaults, struct dp_buf *err, int *status);

/* Set one property; the message in err never contains the value. */
int dp_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                      struct dp_buf *err);

/* A property's value as configured (into buf), or NULL when unset. */
const char *dp_kafka_conf_str(const rd_kafka_conf_t *conf, const char *key, char *buf,
                              size_t size);

/*
 * A client of the given type, configured as dp_kafka_conf_new() does.
 * configure (may be NULL) sets the command's callbacks and properties on
 * the configuration before the client is made; it returns 0, or -1 with
 * a message in err.  Returns the client (caller destroys), or NULL with
 * a message in err and an exit status in *status.
 */
rd_kafka_t *dp_kafka_new(const struct dp_kafka_opts *c, rd_kafka_type_t type,
                         const struct dp_kv *defaults, size_t ndefaults,
                         int (*configure)(rd_kafka_conf_t *conf, void *arg,
                                          struct dp_buf *err),
                         void *arg, struct dp_buf *err, int *status);

/*
 * The connecting step of every command: prove within c->timeout_ms that
 * a broker answers, and that each of the n topics exists (partitions[i]
 * gets its partition count; partitions may be NULL).  Returns 0,
 * DP_KAFKA_STOPPED, or an exit status with a message in err that a new
 * user can act on:
 *   - no bootstrap broker name resolves: at once, DP_EX_UNAVAILABLE;
 *   - no broker answers: DP_EX_UNAVAILABLE, naming the brokers and the
 *     timeout as the user typed it;
 *   - a topic does not exist: DP_EX_NOTFOUND, suggesting dp-topic create.
 */
int dp_kafka_connect(rd_kafka_t *rk, const struct dp_kafka_opts *c, const char *const *topics,
                     size_t n, int *partitions, struct dp_buf *err);

/*
 * Ask the cluster for metadata within timeout_ms: the cheapest proof that
 * a broker answers.  With topic set, also checks that the topic exists
 * and returns its partition count in *partitions.  Returns 0,
 * DP_KAFKA_STOPPED, or an exit status with a message in err:
 * DP_EX_NOTFOUND when the topic does not exist (after looking again for
 * up to 1.5 s, since a topic created a moment ago may not have reached
 * the broker's metadata yet), DP_EX_UNAVAILABLE when no broker answered.
 * Retriable topic errors (no leader yet) are retried until timeout_ms.
 */
int dp_kafka_probe(rd_kafka_t *rk, const char *topic, int timeout_ms,
                   int *partitions, struct dp_buf *err);

/*
 * dp_kafka_probe() for a topic known to exist, because this process has
 * just created it: wait until this broker's metadata shows it, with a
 * leader for every partition, as long as timeout_ms.  A broker that was
 * restarted a moment ago can take seconds to get there, far longer than
 * the window in which dp_kafka_probe forgives a missing topic.  Returns
 * what dp_kafka_probe does.
 */
int dp_kafka_await_topic(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partitions,
                         struct dp_buf *err);

/*
 * rd_kafka_metadata(), waited for in slices: a request that times out is
 * sent again until timeout_ms, and a signal ends the wait (*stopped set).
 */
rd_kafka_resp_err_t dp_kafka_metadata(rd_kafka_t *rk, int all_topics, rd_kafka_topic_t *only,
                                      int timeout_ms, const struct rd_kafka_metadata **md,
                                      int *stopped);

/*
 * Low and high watermark of one partition, asked of its leader.  Errors
 * that the Kafka protocol defines as retriable (dp_kafka_retriable) are
 * retried until timeout_ms, the leader looked up again before each try
 * (a leader that died is replaced by another).  Returns within about
 * timeout_ms whatever the cluster does: 0, DP_KAFKA_STOPPED, or an exit
 * status with a message in err.  Never rd_kafka_query_watermark_offsets():
 * before librdkafka 2.3 it may wait for ever (kafka/client.c says why).
 */
int dp_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms,
                        int64_t *low, int64_t *high, struct dp_buf *err);

/*
 * rd_kafka_offsets_for_times(), waited for in slices: each element's
 * offset is a timestamp (epoch ms) on entry and, on success, the offset
 * of the partition's first record at or after it (-1: none that late).
 * Retriable errors are retried until timeout_ms.  Returns 0,
 * DP_KAFKA_STOPPED, or an exit status with a message in err.
 */
int dp_kafka_offsets_for_times(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list,
                               int timeout_ms, struct dp_buf *err);

/*
 * rd_kafka_committed(), the same way: each element gets the group's
 * committed offset, or RD_KAFKA_OFFSET_INVALID when it has none.
 */
int dp_kafka_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, int timeout_ms,
                       struct dp_buf *err);

/*
 * 1 when an error may go away by itself and the request should be sent
 * again: the errors Kafka's protocol marks retriable (NOT_LEADER,
 * LEADER_NOT_AVAILABLE, REQUEST_TIMED_OUT, COORDINATOR_LOAD_IN_PROGRESS,
 * ..., see org.apache.kafka.common.errors.RetriableException), unknown
 * topic or partition (a topic created a moment ago has not reached every
 * broker yet), and librdkafka's local transport and timeout errors.
 */
int dp_kafka_retriable(rd_kafka_resp_err_t err);

/*
 * Wait up to timeout_ms for an event on q, in slices, giving up early on
 * a signal.  Returns the event (caller destroys) or NULL; *stopped tells
 * a signal from a timeout.
 */
rd_kafka_event_t *dp_kafka_queue_wait(rd_kafka_queue_t *q, int timeout_ms, int *stopped);

/*
 * The error callback every client gets (dp_kafka_conf_new): transport
 * errors, which repeat while librdkafka retries, at -v; others as
 * warnings.  Exported for callbacks that handle some errors themselves
 * and pass the rest on.
 */
void dp_kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque);

/*
 * The exit status for a Kafka error code: the one place librdkafka's
 * errors become dp's causes (core/exit.h).  A missing topic or partition is
 * 81, refused credentials or ACLs 77, anything not answered 69.
 */
int dp_kafka_exit_status(rd_kafka_resp_err_t err);

/* "librdkafka 2.0.2": the library's version, for --version (static). */
const char *dp_kafka_version(void);

#endif
