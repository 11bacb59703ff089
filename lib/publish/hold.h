/*
 * publish/hold.h -- dp-publish --request-topics: topics asked of the
 * coordinator, and the records held until it answers.
 *
 * A --topic-expr topic that does not exist (the reader marks its records
 * unverified, publish/record.h) is asked for once, with a create request
 * on the requests topic (dyn/spec.h; its own source and filter ".", so
 * that no router copies into it), written by this producer and
 * acknowledged before its records are held.  The registry (dyn/registry.h)
 * answers: active, and the held records go, in their order, with their
 * copies; rejected, and they are bad lines (--on-error), each with the
 * coordinator's reason; no answer within --timeout, and they are not
 * delivered (69).  A topic the registry already knows as active is
 * not asked for; one it knows as retired is refused at once.
 *
 * Each held record is one allocation (key, value, headers, copies);
 * dp_hold's bytes bound them (--hold-bytes: the caller stops reading
 * when they reach it).
 *
 * Threads: the main thread's.
 */
#ifndef DP_HOLD_H
#define DP_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "dyn/registry.h"
#include "kafka/producer.h"
#include "publish/feed.h"
#include "publish/send.h"

struct dp_hold_topic;

struct dp_hold {
	/* set by the caller; borrowed */
	struct dp_producer *prod;       /* requests are written through it */
	struct dp_registry *reg;        /* the answers are read from it (polled by the caller) */
	struct dp_send *send;           /* held records go, or are bad lines, through it */
	const char *requests;           /* the requests topic */
	int64_t timeout_ms;             /* a request not answered by then fails */
	const char *timeout_arg;        /* ... as the user typed it; NULL: say timeout_ms */

	/* the hold's */
	struct dp_hold_topic *topics;   /* the topics asked for, and their fate */
	size_t ntopics, captopics;
	bool requests_ok;               /* the requests topic exists */
	bool failed;                    /* a request was refused or not answered (dp_hold_reject) */
	uint64_t bytes;                 /* held records' memory */
	uint64_t n;                     /* held records */
	struct dp_buf err;
};

/* Free the held records and the topics (not h, nor what is borrowed).  Accepts NULL. */
void dp_hold_clear(struct dp_hold *h);

/* Whether topic, found missing, was made since: its records can go now. */
bool dp_hold_active(const struct dp_hold *h, const char *topic);

/*
 * Record i of b (kind DP_RECORD_SEND), whose topic was found missing and
 * is not active: its topic is asked for (the first time), the record is
 * held while the request is open, and is a bad line once the request
 * was refused or not answered.  When the registry knew the topic as
 * active already, nothing is done: dp_hold_active is now true.
 * Returns 0, or the status that ends the input.
 */
int dp_hold_take(struct dp_hold *h, const struct dp_feed_batch *b, size_t i);

/* Whether a request is open (not answered, not timed out). */
bool dp_hold_pending(const struct dp_hold *h);

/*
 * Take the registry's answers to the open requests (the caller polled
 * it), and the timeouts: the held records of each topic made go now.
 * Returns 0, or the status that ends the input.
 */
int dp_hold_check(struct dp_hold *h);

/*
 * After h->failed: say which requests were not answered while records
 * waited for them.  True when any (the input ends, 69; their records
 * stay held: not delivered).
 */
bool dp_hold_unanswered(struct dp_hold *h);

/*
 * The held records of the topics the coordinator refused are bad lines
 * now, with its reason (--on-error); failed is cleared.  Returns 0, or
 * the status that ends the input (DP_EX_DATAERR under --on-error fail:
 * the records after the first are dropped, not sent).
 */
int dp_hold_reject(struct dp_hold *h);

#endif
