/*
 * publish/record.h -- one input line made into a Kafka record, in
 * dp-publish's reader thread, and read back where it is sent.
 *
 * Every line becomes one struct dp_record in a batch of the feed
 * (publish/feed.h): a record to send, a bad line (its reason, and the
 * line itself for --on-error dlq), or a fatal error that ends the input.
 * The record's bytes (topic, key, headers, the dynamic topics it is
 * copied to) are offsets into its batch's arena; its value is the line
 * itself, kept in place (dp_feed_keep), unless it comes from an
 * envelope.  Nothing is copied twice: the main thread hands the
 * producer views of these bytes (publish/send.h).
 *
 * What a line gives, by the options (struct dp_record_opts):
 *   - JSON lines (the default) are checked (json/scan.h, in one pass that
 *     also finds a plain --key member), then --topic-expr, --key,
 *     --timestamp and each --header are evaluated (jq/expr.h);
 *   - --envelope lines (dp-tail --envelope) carry topic, partition, key,
 *     headers and timestamp themselves;
 *   - --raw lines are sent as they are, unchecked.
 * A topic named by --topic-expr or an envelope is looked up once (then
 * remembered), so that a typo fails at once rather than after
 * message.timeout.ms; with --request-topics one that does not exist is
 * marked unverified instead, for the main thread to ask for
 * (publish/hold.h).  With --follow-registry each record also names the
 * dynamic topics whose filter it matches (dyn/route.h), from the routes
 * the main thread last offered (dp_record_offer_routes).
 *
 * Threads: the reader (struct dp_record_reader) is the feed thread's:
 * dp_record_prepare, _failed and _ready run there, and only there are
 * the jq programs and the router used (libjq state never leaves it).
 * dp_record_offer_routes is the one call from another thread.  The
 * accessors below read a batch the feed handed over, on the main thread.
 */
#ifndef DP_RECORD_H
#define DP_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "core/lines.h"
#include "dyn/route.h"
#include "jq/expr.h"
#include "kafka/producer.h"
#include "publish/feed.h"

/* A copy's tag: the line number with this bit (tags have 62 bits, lines far fewer). */
#define DP_RECORD_COPY_TAG (UINT64_C(1) << 61)

/* --header NAME=JQ: one header evaluated on every line. */
struct dp_record_header {
	char *name;              /* owned */
	struct dp_expr *expr;    /* owned */
};

/*
 * How lines become records: dp-publish's options.  The expressions and
 * headers are owned here (dp_record_opts_clear); the strings are argv's.
 */
struct dp_record_opts {
	const char *topic;              /* -t: the producer's topic; NULL: none */
	struct dp_expr *topic_expr;     /* --topic-expr */
	struct dp_expr *key_expr;       /* --key */
	struct dp_expr *ts_expr;        /* --timestamp */
	struct dp_record_header *hdrs;  /* --header, in the order given */
	size_t nhdrs, caphdrs;
	int32_t partition;              /* -p, or DP_PRODUCER_ANY */
	bool envelope;                  /* --envelope */
	bool raw;                       /* --raw */
	uint64_t max_line;              /* --max-line-bytes, for the message */
};

/*
 * Compile src for option opt ("--key") into *e, replacing what was there
 * (the last one given wins).  0, or -1 after "invalid --key: ...".
 */
int dp_record_opts_expr(struct dp_expr **e, const char *opt, const char *src);

/* Add --header arg (NAME=JQ).  0, or -1 after saying why. */
int dp_record_opts_header(struct dp_record_opts *o, const char *arg);

/* Free the expressions and headers (not o itself).  Accepts NULL. */
void dp_record_opts_clear(struct dp_record_opts *o);

enum dp_record_kind {
	DP_RECORD_SEND,          /* a record to send */
	DP_RECORD_BAD,           /* a bad line: why, and the line as its value */
	DP_RECORD_FATAL,         /* the input ends here: status and why */
};

/* One line, prepared: offsets into its batch's arena (DP_FEED_NONE: none). */
struct dp_record {
	uint64_t lineno;
	enum dp_record_kind kind;
	int status;              /* DP_RECORD_FATAL: the exit status */
	size_t topic;            /* NONE: the producer's topic (-t) */
	int32_t partition;       /* or DP_PRODUCER_ANY */
	size_t key, keylen;      /* key NONE: no key */
	size_t val, vallen;      /* val NONE: a tombstone, unless in_line */
	bool in_line;            /* the value is the line itself (dp_feed_keep) */
	bool unverified;         /* --request-topics: its topic did not exist */
	int64_t ts;              /* ms since the epoch; 0: the producer's clock */
	size_t hdr, nhdr;        /* nhdr struct dp_record_hdr_at at hdr */
	size_t copies, ncopies;  /* ncopies size_t offsets of dynamic topic names */
	size_t why;              /* BAD, FATAL: the message (NONE: out of memory) */
	/* BAD: the kind of its reason, for dp_records_bad_total{reason}: too_long,
	 * not_text, invalid_json, expression (a jq expression failed on it), envelope */
	const char *bad;
};

/* A header of a prepared record: arena offsets (value NONE: a null value). */
struct dp_record_hdr_at {
	size_t name, value, len;
};

/* The reader's setup.  Everything is borrowed and outlives the reader. */
struct dp_record_conf {
	const struct dp_record_opts *opts;
	struct dp_lines *in;             /* the feed's input: line numbers, reasons */
	struct dp_producer *prod;        /* topics are checked through it (thread-safe) */
	bool follow;                     /* --follow-registry: route copies */
	bool request_topics;             /* --request-topics: a missing topic is no error */
	bool stop_at_bad;                /* --on-error fail: a bad line ends the input */
	/* The feed's events (publish/feed.h) for what ends the input here. */
	int ev_bad_line, ev_fatal, ev_stop;
};

struct dp_record_reader;

/*
 * Make the reader (conf is copied).  NULL when memory ran out.  Made on
 * the main thread before the feed starts; the feed's thread alone uses
 * it from then on.
 */
struct dp_record_reader *dp_record_reader_new(const struct dp_record_conf *conf);
void dp_record_reader_free(struct dp_record_reader *r);

/* The feed's callbacks (publish/feed.h), with arg the reader; rec_size is sizeof(struct dp_record). */
int dp_record_prepare(void *arg, struct dp_feed_batch *b, size_t i, const char *line,
                      size_t len, int got);
int dp_record_failed(void *arg, struct dp_feed_batch *b, size_t i, int status, const char *why);
void dp_record_ready(void *arg, struct dp_feed_batch *b);

/*
 * From the main thread: the routes in l (owned from now on) replace
 * those the reader has, before its next line.  A list it has not taken
 * yet is superseded and freed.
 */
void dp_record_offer_routes(struct dp_record_reader *r, struct dp_route_list *l);

/* ---- reading a prepared record (the main thread) ---- */

static inline const struct dp_record *
dp_record_at(const struct dp_feed_batch *b, size_t i)
{
	return (const struct dp_record *)b->recs + i;
}

/* The bytes at arena offset off (NONE: "(out of memory)"). */
static inline const char *
dp_record_str(const struct dp_feed_batch *b, size_t off)
{
	return dp_feed_at(b, off);
}

/* Record i's value, or NULL for a tombstone. */
static inline const char *
dp_record_value(const struct dp_feed_batch *b, size_t i, const struct dp_record *r)
{
	return r->in_line ? dp_feed_line(b, i) : r->val == DP_FEED_NONE ? NULL
	                                        : dp_feed_at(b, r->val);
}

/* Header k of r. */
static inline struct dp_record_hdr_at
dp_record_hdr(const struct dp_feed_batch *b, const struct dp_record *r, size_t k)
{
	struct dp_record_hdr_at h;

	memcpy(&h, b->arena.data + r->hdr + k * sizeof(h), sizeof(h));
	return h;
}

/* The name of the dynamic topic of r's copy c. */
static inline const char *
dp_record_copy(const struct dp_feed_batch *b, const struct dp_record *r, size_t c)
{
	size_t off;

	memcpy(&off, b->arena.data + r->copies + c * sizeof(off), sizeof(off));
	return dp_feed_at(b, off);
}

#endif
