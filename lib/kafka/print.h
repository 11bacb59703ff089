/*
 * kafka/print.h -- Kafka records as NDJSON lines: the output of dp-tail.
 *
 * One record becomes zero or more lines on a checked writer (core/out.h):
 *   value      the record's value, when it is JSON text (compacted when it
 *              is not compact already; a compact one is written as it is,
 *              without a copy); a tombstone is null;
 *   envelope   (conf.envelope) topic, partition, offset, timestamp, key,
 *              headers and value, lossless (json/envelope.h);
 *   filter     (conf.filter) a jq expression over that value or envelope:
 *              each of its results is a line, none drops the record;
 *   raw        (conf.raw) a line that is a JSON string is written as its
 *              text, without quotes (as jq -r);
 *   non-JSON   a value that is not JSON text (json/scan.h) is an error
 *              that names the record, or per conf.non_json skipped
 *              (counted), a JSON string (valid UTF-8), or a base64 string.
 * conf.count stops after that many lines, also in the middle of one
 * record's filter results.
 *
 * Offsets: a line that does not fit in the writer's buffer is written at
 * a sync point (conf.sync: dp-tail calls dp_consumer_sync), so that a
 * reader with a steady backlog still stores offsets as it goes, and a
 * stored offset never runs ahead of the lines that reached the reader.
 *
 * Metrics (obs/obs.h): while the registry is on, the lines written are
 * dp_records_out_total, told by dp_print_observe (per poll, not per line).
 *
 * Threads: a printer belongs to the thread that calls it (the consumer's
 * polling thread, from its record hook).
 */
#ifndef DP_PRINT_H
#define DP_PRINT_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/buf.h"

struct dp_expr;
struct dp_out;
struct dp_print;

/* --non-json: what a value that is not JSON text becomes. */
enum dp_non_json {
	DP_NON_JSON_ERROR,      /* the record is bad: DP_PRINT_BAD */
	DP_NON_JSON_SKIP,       /* no line; counted in stats.skipped */
	DP_NON_JSON_STRING,     /* a JSON string of its text (base64 when not UTF-8) */
	DP_NON_JSON_BASE64,     /* a JSON string of its base64 (RFC 4648, padded) */
};

/* The names of enum dp_non_json, in its order, NULL-terminated (for an
 * option table's choices). */
extern const char *const dp_non_json_names[];

struct dp_print_conf {
	struct dp_out *out;             /* where lines go; borrowed, outlives the printer */
	bool envelope;
	bool raw;
	struct dp_expr *filter;         /* borrowed; NULL: none */
	enum dp_non_json non_json;      /* not with envelope (an envelope carries any bytes) */
	uint64_t count;                 /* stop after this many lines; 0: no limit */
	/*
	 * A sync point before a line that does not fit in out's buffer: 0, or
	 * -1 when out failed (the line is then not written).  May be NULL.
	 */
	int (*sync)(void *arg);
	void *arg;
};

/* What one record came to. */
enum dp_print_result {
	DP_PRINT_OK,            /* its lines are written, or it was skipped */
	DP_PRINT_COUNT,         /* its lines are written, and conf.count is reached */
	DP_PRINT_BAD,           /* not JSON (DP_NON_JSON_ERROR) or the filter failed:
	                           err names the record and why; nothing written */
	DP_PRINT_OUT,           /* out failed or its reader left: dp_out_closed, dp_out_error */
	DP_PRINT_NOMEM,         /* memory ran out: err says so */
};

/* Counts since the printer was made. */
struct dp_print_stats {
	uint64_t records;       /* records handed to dp_print_record */
	uint64_t printed;       /* lines written */
	uint64_t skipped;       /* records not JSON, skipped (DP_NON_JSON_SKIP) */
};

/* A printer for conf (copied).  NULL when memory runs out.  Caller frees. */
struct dp_print *dp_print_new(const struct dp_print_conf *conf);

/* Release it; accepts NULL.  Lines written stay in out's buffer. */
void dp_print_free(struct dp_print *p);

/*
 * Write the lines of record m (borrowed for the call).  err gets the
 * message of DP_PRINT_BAD and DP_PRINT_NOMEM (appended; the caller
 * prints it).
 */
enum dp_print_result dp_print_record(struct dp_print *p, const rd_kafka_message_t *m,
                                     struct dp_buf *err);

/* The counts (borrowed: valid while p lives, updated by each call). */
const struct dp_print_stats *dp_print_stats(const struct dp_print *p);

/* Add the lines written since the last call to dp_records_out_total (once
 * per poll); nothing while the registry is off.  Accepts NULL. */
void dp_print_observe(struct dp_print *p);

#endif
