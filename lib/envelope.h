/*
 * envelope.h -- the lossless NDJSON form of one Kafka record.
 *
 *   {"topic":"t","partition":0,"offset":42,"timestamp":1700000000000,
 *    "key":"BTC","headers":[{"key":"h","value":"v"}],"value":{...}}
 *
 * Carrying bytes that are not JSON:
 *   value   the JSON value itself when the payload is compact JSON text;
 *           otherwise a string with "value_encoding":"string" (valid
 *           UTF-8) or "base64" (anything else).  A tombstone (no payload)
 *           is "value":null; a payload that is the text null is carried
 *           as a string so the two stay apart.
 *   key     a string, null when there is no key, base64 with
 *           "key_encoding":"base64" when it is not UTF-8.
 *   headers an array in record order, duplicates kept; each
 *           {"key":K,"value":V}, V null for a null header value, and
 *           "encoding":"base64" when V is not UTF-8.
 * dp-tail --envelope writes it; dp-publish --envelope reads it.
 */
#ifndef DP_ENVELOPE_H
#define DP_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "buf.h"

/* Append the envelope of msg (no newline). */
int dp_envelope_write(struct dp_buf *out, const rd_kafka_message_t *msg) DP_MUST_CHECK;

struct dp_envelope_hdr {
	char *name;          /* owned */
	char *value;         /* owned; NULL for a null value */
	size_t len;
};

struct dp_envelope {
	char *topic;         /* owned; NULL when absent */
	int32_t partition;   /* RD_KAFKA_PARTITION_UA when absent */
	bool has_timestamp;  /* false: absent or null */
	int64_t timestamp;   /* ms since the epoch, 0..INT64_MAX, when has_timestamp */
	char *key;           /* owned; NULL for no key */
	size_t key_len;
	char *value;         /* owned; NULL for a tombstone */
	size_t value_len;
	struct dp_envelope_hdr *hdrs;  /* owned */
	size_t nhdrs;
};

/*
 * Parse one envelope line (valid JSON text).  Returns 0, or -1 with the
 * reason appended to err; env is always safe to clear afterwards.
 * "timestamp" must be null, absent, or a whole number of milliseconds
 * from 0 to INT64_MAX (Kafka's range; negative ones are refused by its
 * producers), read from the text itself so that no digit is lost.
 * Lines over DP_EXPR_MAX_BYTES (libjq's limit) are refused.
 */
int dp_envelope_parse(const char *line, size_t len, struct dp_envelope *env,
                      struct dp_buf *err);
void dp_envelope_clear(struct dp_envelope *env);

#endif
