/*
 * publish/send.h -- dp-publish's prepared records handed to the producer,
 * and the accounting of their fate.
 *
 * A run of records of a batch (publish/record.h) goes to the producer
 * engine (kafka/producer.h) in one call: the records first, then the
 * copies of those that went into dynamic topics, so that each topic keeps
 * its records' order.  A record the producer refuses for itself (too
 * large, a partition the topic does not have) is a bad line, dealt with
 * as --on-error says (kafka/onerror.h: named, skipped, or a dead letter
 * with headers dp-error, dp-line and dp-topic); anything else ends the
 * input.
 *
 * Accounting: every delivery report comes back through dp_send_report
 * (the producer's callback), tagged with its line (a copy's with
 * DP_RECORD_COPY_TAG).  A line counts as delivered once its record and
 * every copy are.  A copy not delivered is judged at the end
 * (dp_send_lost): into a dynamic topic retired meanwhile it is not
 * missed, since that topic wants no more records.  --report prints one
 * NDJSON acknowledgement per record and copy on stdout.
 *
 * Threads: the main thread's, like the producer.
 */
#ifndef DP_SEND_H
#define DP_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/out.h"
#include "dyn/registry.h"
#include "kafka/onerror.h"
#include "kafka/producer.h"
#include "publish/feed.h"
#include "publish/record.h"

struct dp_send_lost_copy;

struct dp_send {
	/* set by the caller; borrowed */
	struct dp_producer *prod;       /* once made: the report callback is dp_send_report */
	const char *topic;              /* -t, or NULL: dead letters' dp-topic header */
	struct dp_on_error_policy *on_error;
	struct dp_out *out;             /* --report: acknowledgements go here; NULL: none */
	/* Says once that writing to out failed with errno err; returns the
	 * status (0: the reader left, EPIPE).  dp_cmd_stdout_failed. */
	int (*out_failed)(int err);
	int *status;                    /* a report that fails (stdout) sets it, when 0 */

	/* counters */
	uint64_t failed;                /* delivery reports of records with an error */
	uint64_t records;               /* records handed over (lines and dead letters) */
	uint64_t copies;                /* copies into dynamic topics handed over */
	uint64_t delivered;             /* records acknowledged */
	uint64_t copies_delivered;      /* copies acknowledged */
	uint64_t excused;               /* copies into topics retired since: not missed */

	/* the send's own */
	uint64_t *lost_lines;           /* lines with a record or copy not delivered */
	size_t nlost, caplost;
	uint64_t lost_overflow;         /* ... that found no memory to be listed */
	struct dp_send_lost_copy *lostcopies;   /* copies not delivered, judged at the end */
	size_t nlostcopies, caplostcopies;
	char **copytopics;              /* their topics */
	size_t ncopytopics, capcopytopics;
	struct dp_buf ack, err;
	struct dp_producer_rec *recs;   /* a run, as the producer takes it */
	size_t caprecs;
	bool *refused;                  /* per record of a batch: refused for itself */
	size_t caprefused;
	struct dp_producer_header *hv;  /* the run's headers */
	size_t caphv;
};

/* Free what s holds (not s, nor what is borrowed).  Accepts NULL. */
void dp_send_clear(struct dp_send *s);

/* The producer's report callback (struct dp_producer_conf), arg the send. */
void dp_send_report(void *arg, const struct dp_producer_report *r);

/*
 * Records [from, to) of b, all of kind DP_RECORD_SEND and of topics that
 * exist: the records, then the copies of those that went (also when the
 * input stops at a later one).  Returns 0, or the status that ends the
 * input (said on stderr with its line): DP_EX_DATAERR for a record
 * refused under --on-error fail, ...
 */
int dp_send_run(struct dp_send *s, const struct dp_feed_batch *b, size_t from, size_t to);

/*
 * One record kept apart from its batch (publish/hold.h; its tag is its
 * line), to the dynamic topics copies[0..ncopies) too once it went.
 * Same results as dp_send_run; *taken says whether the record is dealt
 * with (sent, or a bad line), or still the caller's (the producer could
 * not take it).
 */
int dp_send_one(struct dp_send *s, const struct dp_producer_rec *rec,
                const char *const *copies, size_t ncopies, bool *taken);

/*
 * A bad line, as --on-error says: named on stderr, skipped, or sent as a
 * dead letter (line[0..len) itself, with the reason in its headers), and
 * counted in dp_records_bad_total{reason=kind} (a literal: too_long,
 * not_text, invalid_json, expression, envelope, refused_by_kafka,
 * topic_not_created).  Returns 0 to go on, DP_EX_DATAERR under
 * --on-error fail, or the producer's status when the dead letter could
 * not be sent.
 */
int dp_send_bad_line(struct dp_send *s, const char *line, size_t len, uint64_t lineno,
                     const char *why, const char *kind);

/*
 * After the drain: the copies not delivered are judged on reg as it is
 * now, read to its end (NULL: no registry; then each is missed), and
 * the lines with anything not delivered are counted once each.
 */
uint64_t dp_send_lost(struct dp_send *s, struct dp_registry *reg);

#endif
