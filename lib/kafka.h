/*
 * kafka.h -- librdkafka set-up shared by the commands.
 *
 * Builds an rd_kafka_conf_t from the common options (-b, -F, -X),
 * routes librdkafka's log and error lines through log.h, and maps Kafka
 * errors to the exit table.  Property values are never printed: they may hold
 * credentials.
 */
#ifndef DP_KAFKA_H
#define DP_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "buf.h"
#include "cli.h"

/*
 * A new configuration (caller owns it; rd_kafka_new takes it over).
 * Order: the command's defaults (borrowed, may be NULL), then the
 * -F/$DP_CONFIG file, then -X pairs, then bootstrap.servers from -b
 * unless -X/-F set it.  On error returns NULL, appends a message to err
 * and sets *status to an exit code.
 */
rd_kafka_conf_t *dp_kafka_conf_new(const struct dp_common *c, const struct dp_kv *defaults,
                                   size_t ndefaults, struct dp_buf *err, int *status);

/* Set one property; the message in err never contains the value. */
int dp_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                      struct dp_buf *err);

/*
 * Ask the cluster for metadata within timeout_ms: the cheapest proof that
 * a broker answers.  With topic set, also checks that the topic exists
 * and returns its partition count in *partitions.  Returns 0, or an exit
 * status with a message in err: DP_EX_NOTFOUND when the topic does not
 * exist (after looking again for up to 1.5 s, since a topic created a
 * moment ago may not have reached the broker's metadata yet),
 * DP_EX_UNAVAILABLE when no broker answered.
 */
int dp_kafka_probe(rd_kafka_t *rk, const char *topic, int timeout_ms,
                   int *partitions, struct dp_buf *err);

/* The exit status for a Kafka error code. */
int dp_kafka_exit_status(rd_kafka_resp_err_t err);

#endif
