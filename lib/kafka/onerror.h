/*
 * kafka/onerror.h -- --on-error fail|skip|dlq=TOPIC: what a command does with a
 * bad record, the same way in every command that reads records.
 *
 *   fail  stop at the first bad record (the command exits 65, everything
 *         before it delivered or committed);
 *   skip  go on; their number at the end;
 *   dlq   go on, and send the raw record to TOPIC through the producer
 *         engine, with its own headers (a trace id stays with it) and
 *         then dp's, which say why and where it came from.
 *
 * Under every mode each bad record is named on stderr with where it came
 * from and why (dp-sink-pg(1) promises every one: a quiet skip is data
 * lost without a trace).
 *
 * dp-publish uses it for bad lines (headers dp-error, dp-line, dp-topic);
 * dp-sink-pg for rows the database refuses (the reason, the SQLSTATE,
 * and the source topic, partition and offset).
 */
#ifndef DP_ONERROR_H
#define DP_ONERROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/producer.h"

enum dp_on_error { DP_ON_ERROR_FAIL, DP_ON_ERROR_SKIP, DP_ON_ERROR_DLQ };

struct dp_on_error_policy {
	enum dp_on_error mode;
	const char *dlq_topic;  /* DP_ON_ERROR_DLQ: borrowed from the argument */
	/*
	 * Wait for each dead letter's acknowledgement (dp_producer_send_wait)
	 * before going on: for a command that commits the record's source
	 * offset next.  Otherwise the letter is handed over and accounted
	 * for like any record (dp_producer_drain).
	 */
	bool durable;
	int64_t timeout_ms;     /* durable: how long to wait for the acknowledgement */
	uint64_t count;         /* bad records so far */
	uint64_t sent;          /* dlq: dead letters acknowledged (durable) or handed over */
};

/*
 * Parse the value of --on-error into p (its other fields are kept).
 * Returns 0, or -1 after printing why.
 */
int dp_on_error_parse(struct dp_on_error_policy *p, const char *arg);

/*
 * One bad record: where names it for a person ("line 12", "prices [3]
 * offset 4711"), why says what is wrong.  Prints "where: why"; under dlq
 * sends the record as it came, key[0..klen) (NULL: none) and
 * value[0..len) (NULL: none), to the dead-letter topic with
 * hdrs[0..nhdrs) (borrowed; the caller's: the reason and the record's
 * origin) and tag (for the report callback).  Returns 0 to go on,
 * DP_EX_DATAERR under fail, or the producer's status when the dead
 * letter could not be sent or acknowledged (then it says so with where).
 */
int dp_on_error_record(struct dp_on_error_policy *p, struct dp_producer *prod,
                       const char *where, const char *why, const void *key, size_t klen,
                       const void *value, size_t len, const struct dp_producer_header *hdrs,
                       size_t nhdrs, uint64_t tag);

/*
 * "N bad WHATs skipped" / "N bad WHATs sent to the dead-letter topic
 * 'T'" / "N bad WHATs, M sent to ..." when some were not; nothing under
 * fail.
 */
void dp_on_error_summary(const struct dp_on_error_policy *p, const char *what);

/*
 * A Kafka record's own headers, appended to out in a form that can be
 * kept with the record's bytes until it proves bad (librdkafka's are
 * borrowed from the message), for dp_on_error_unpack_headers.  Nothing
 * is appended when it has none.  0, or -1 when memory runs out.
 */
int dp_on_error_pack_headers(const rd_kafka_message_t *m, struct dp_buf *out);

/*
 * The headers data[0..len) holds (dp_on_error_pack_headers), after the
 * n0 headers already in (*hdrs)[0..n0): *hdrs grows (caller frees it;
 * the new names and values point into data) and *n is the new count.
 * 0, or -1 when memory runs out or data is no such pack.
 */
int dp_on_error_unpack_headers(const void *data, size_t len, struct dp_producer_header **hdrs,
                               size_t *n);

#endif
