/*
 * json/envelope.h -- the lossless NDJSON form of one Kafka record.
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
 *           "encoding":"base64" when V is not UTF-8 ("key_encoding":
 *           "base64" when K is not).
 * dp-tail --envelope writes it; dp-publish --envelope reads it.
 *
 * Reading follows json/scan.h, the one definition of JSON text in dp (RFC
 * 8259 and UTF-8, any depth up to DP_JSON_MAX_DEPTH, any number of
 * digits, duplicate names: the last counts, as in jq).  The value is
 * carried as its own text, so anything the scanner accepts goes through
 * byte for byte, lone surrogate escapes included.  A string that must
 * become bytes (a key, a header, an encoded value) cannot hold a lone
 * surrogate escape (UTF-8 has no form for it): that is refused, never
 * replaced.  Every refusal names the member and the byte it starts at.
 */
#ifndef DP_ENVELOPE_H
#define DP_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/buf.h"

/* Append the envelope of msg (no newline). */
int dp_envelope_write(struct dp_buf *out, const rd_kafka_message_t *msg) DP_MUST_CHECK;

struct dp_envelope_hdr {
	char *name;          /* owned; NUL-terminated, holds no NUL */
	char *value;         /* owned; NULL for a null value */
	size_t len;
};

struct dp_envelope {
	char *topic;         /* owned; NULL when absent; holds no NUL */
	int32_t partition;   /* RD_KAFKA_PARTITION_UA when absent */
	int64_t offset;      /* -1 when absent; informative only */
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
 * Parse one envelope line (any bytes: it is checked here).  Returns 0, or
 * -1 with the reason and the byte (1-based) appended to err; env is always
 * safe to clear afterwards.  "partition", "offset" and "timestamp" must
 * be null, absent, or whole numbers written as digits (partition up to
 * INT32_MAX, the others up to INT64_MAX: Kafka's range, negative
 * timestamps are refused by its producers), read from the text itself so
 * that no digit is lost.  Members it does not know are ignored.
 */
int dp_envelope_parse(const char *line, size_t len, struct dp_envelope *env,
                      struct dp_buf *err);
void dp_envelope_clear(struct dp_envelope *env);

/*
 * Append the envelope of a parsed (or built) env, no newline: the same
 * form dp_envelope_write gives a message, with null for an absent topic,
 * partition, offset or timestamp.  Parsing the result gives env back.
 */
int dp_envelope_print(struct dp_buf *out, const struct dp_envelope *env) DP_MUST_CHECK;

#endif
