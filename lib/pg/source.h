/*
 * pg/source.h -- where a sink's records come from: one interface, two
 * inputs, so that nothing that writes them asks which one it has.
 *
 *   lines   NDJSON lines of a descriptor (dp-sink-pg --stdin): one sink
 *           source (pg/sink.h) whose offsets are line numbers - 1, stored
 *           under --source-id when given (a rerun resumes after the last
 *           line written; the lines before are read and passed over).
 *   group   a consumer group (-t -g, kafka/consumer.h): each partition is
 *           a sink source, started where the offsets table says.  The
 *           consumer's record hook copies each record into an inbox (at
 *           most a batch's bytes); a rebalance acquires and releases the
 *           partitions' sources (revoked ones have their batches
 *           finished first); during a database outage the partitions are
 *           paused and the consumer is still polled, so the member stays
 *           in the group; a source another member took over is started
 *           again where that one left it (resync); the stored offsets go
 *           to the group in Kafka too, for lag tools.
 *
 * A record is *in hand* from dp_source_peek until dp_source_take: a
 * record that could not be written yet (no room in its batch, the
 * database away) stays in hand and comes again.  Borrowed pointers in a
 * struct dp_source_rec stay valid until dp_source_take, dp_source_wait
 * or dp_source_stop.
 *
 * Threads: one, the caller's; the consumer's hooks run inside
 * dp_source_wait and dp_source_idle, and call the rebalance hook there.
 */
#ifndef DP_SOURCE_H
#define DP_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/props.h"
#include "pg/sink.h"

struct dp_source;

/* One record in hand. */
struct dp_source_rec {
	struct dp_pgsink_src *src;      /* the sink source it belongs to */
	const char *topic;              /* its topic, or the --source-id ("stdin" without) */
	int32_t partition;              /* -1 for a line */
	int64_t offset;                 /* a line's: its number - 1 */
	const void *key;                /* NULL: none */
	size_t klen;
	const char *value;              /* NULL: none (a tombstone, or too long) */
	size_t vlen;
	const void *hdr;                /* its headers, packed (kafka/onerror.h); NULL: none */
	size_t hlen;
	bool blank;                     /* an empty line: no row, but it counts */
	bool too_long;                  /* longer than the reader keeps: no value, vlen bytes */
};

/* What dp_source_wait saw. */
enum dp_source_event {
	DP_SOURCE_RECORD,               /* a record is in hand */
	DP_SOURCE_DUE,                  /* the sink has work (dp_pgsink_due), or a failure waits
	                                   (dp_source_failure) */
	DP_SOURCE_END,                  /* no more records: the end, a signal, or a failure */
	DP_SOURCE_NONE,                 /* dp_source_peek: nothing in hand without waiting */
};

/* What dp_source_idle saw. */
enum dp_source_idle_result {
	DP_SOURCE_IDLE_OK,              /* the time passed */
	DP_SOURCE_IDLE_SIGNAL,          /* SIGINT or SIGTERM */
	DP_SOURCE_IDLE_FAILED,          /* the input failed: a status, the reason said */
};

/* Rebalance events, for the rebalance hook. */
enum { DP_SOURCE_ASSIGNED, DP_SOURCE_REVOKED };

struct dp_source_hooks {
	void *arg;
	/*
	 * A rebalance (group only), inside dp_source_wait or dp_source_idle:
	 * the caller runs dp_source_assigned or dp_source_revoked (through
	 * its state machine).  Returns 0, or an exit status that fails the
	 * consumer's poll.
	 */
	int (*rebalance)(void *arg, int event);
};

/* --stdin: NDJSON lines of fd (borrowed). */
struct dp_source_lines_conf {
	int fd;
	const char *source_id;          /* --source-id (borrowed), or NULL */
	size_t max_line;                /* longer lines are too_long (--batch-bytes) */
};

/* -t -g: the partitions of a consumer group. */
struct dp_source_group_conf {
	const struct dp_kafka_opts *kafka;      /* borrowed */
	const char *const *topics;      /* names or ^patterns (borrowed) */
	size_t ntopics;
	const char *group;
	bool until_end;                 /* -e: stop at the ends as they were at start */
	size_t inbox_bytes;             /* at most this many bytes wait in the inbox */
	bool keep_headers;              /* pack each record's headers (dead letters need them) */
	int64_t linger_ms;              /* polls wait a fraction of it */
};

/*
 * A source, not yet connected.  Returns it (free with dp_source_free), or
 * NULL when memory runs out.  hooks may be NULL (lines).
 */
struct dp_source *dp_source_lines_new(const struct dp_source_lines_conf *conf);
struct dp_source *dp_source_group_new(const struct dp_source_group_conf *conf,
                                      const struct dp_source_hooks *hooks);

/*
 * Start reading into sink (borrowed; it outlives the source's use):
 * lines registers its sink source and passes over the lines stored;
 * group connects the consumer.  0, DP_KAFKA_STOPPED (a signal), or an
 * exit status with the reason in err.
 */
int dp_source_connect(struct dp_source *s, struct dp_pgsink *sink, struct dp_buf *err);

/* Whether the sink must resync lost sources (pg/sink.h's resync). */
bool dp_source_resyncs(const struct dp_source *s);

/*
 * Wait for a record (dp_source_peek then has one), for the sink to have
 * work, or for the end.  After DP_SOURCE_END, *status is an exit status
 * when the input failed (the reason said), else 0; every later call says
 * END again.  Calls tick about every 100 ms while it waits.
 */
enum dp_source_event dp_source_wait(struct dp_source *s, void (*tick)(void *), void *arg,
                                    int *status);

/* The record in hand, without waiting: DP_SOURCE_RECORD (r filled) or DP_SOURCE_NONE. */
static inline enum dp_source_event dp_source_peek(struct dp_source *s,
                                                 struct dp_source_rec *r);

/* The record in hand is dealt with: the next one. */
static inline void dp_source_take(struct dp_source *s);

/*
 * The sink source the next record goes to, without reading it (a writer
 * may have to make room there first); NULL when unknown.
 */
static inline struct dp_pgsink_src *dp_source_next_src(struct dp_source *s);

/* Whether no more records will come: the end, a signal, a failure, a stop. */
bool dp_source_ended(const struct dp_source *s);

/* Read nothing more: what is in hand is dropped (it is not written). */
void dp_source_stop(struct dp_source *s);

/* A database outage: stop taking records in (group: pause the partitions). */
void dp_source_pause(struct dp_source *s);

/*
 * During an outage: let ms pass (group: polling, so the member stays in
 * the group).  *status for DP_SOURCE_IDLE_FAILED; the reason is in err.
 */
enum dp_source_idle_result dp_source_idle(struct dp_source *s, int64_t ms, struct dp_buf *err,
                                          int *status);

/*
 * The database is back: partitions assigned meanwhile start from their
 * stored offsets, paused ones resume.  0, or DP_PGSINK_DOWN (the reason
 * in err: the outage goes on).  Other failures wait for
 * dp_source_failure.
 */
int dp_source_resume(struct dp_source *s, struct dp_buf *err);

/*
 * A failure seen where it could not be reported (a rebalance hook, a
 * resume), for the next write: its status, once, with its reason
 * appended to err; 0 when none.
 */
int dp_source_failure(struct dp_source *s, struct dp_buf *err);

/*
 * After a dp_pgsink_write: start again the sources another instance
 * wrote (resync).  0, or an exit status.
 */
int dp_source_resync(struct dp_source *s);

/* The stored offsets to Kafka's group too (lag tools): at most once a second unless wait. */
void dp_source_commit(struct dp_source *s, bool wait);

/*
 * The rebalance hook's work: start the partitions assigned; finish and
 * let go those revoked (with finish, their batches commit first).  0, or
 * an exit status for the hook.
 */
int dp_source_assigned(struct dp_source *s);
int dp_source_revoked(struct dp_source *s, bool finish);

/* Records in Kafka not yet in the table (librdkafka's cached watermarks); -1: unknown. */
int64_t dp_source_lag(const struct dp_source *s);

/* The end: the offsets to Kafka once more, leave the group. */
void dp_source_close(struct dp_source *s);

/* "line", "record": what one is called in messages. */
const char *dp_source_unit(const struct dp_source *s);

/* What a stop left unwritten, appended to out ("lines after 12 are not written ..."). */
void dp_source_say_unwritten(const struct dp_source *s, struct dp_buf *out);

/* What is in the table at a stop at a bad record, appended ("lines up to 12 are"). */
void dp_source_say_written(const struct dp_source *s, struct dp_buf *out);

/* What a signal before the end of the input left, counted in lines. */
struct dp_source_left {
	const char *unit;               /* "line"; NULL: said in words instead */
	uint64_t delivered, undelivered;
	int64_t unread;                 /* -1: unknown (a pipe) */
};

/*
 * For core/frame.h's .interrupted: whether a signal came before the end
 * of the input (status: the run's).  When it did, what it left is in
 * *left (for dp_cmd_say_undelivered), or appended to said in words
 * (rows: the rows committed).
 */
bool dp_source_interrupted(struct dp_source *s, int status, uint64_t rows, struct dp_buf *said,
                           struct dp_source_left *left);

/* Release everything (the consumer, the reader).  Accepts NULL. */
void dp_source_free(struct dp_source *s);

/* ---- implementing an input ---------------------------------------------- */

/*
 * What an input implements (source-lines.c, source-group.c), as the
 * functions above describe each.  An operation left NULL does nothing:
 * it returns 0, false, DP_SOURCE_IDLE_OK, or -1 for lag.  resync NULL
 * means the input's sources are never lost.
 */
struct dp_source_ops {
	const char *unit;
	int (*connect)(struct dp_source *s, struct dp_buf *err);
	enum dp_source_event (*wait)(struct dp_source *s, void (*tick)(void *), void *arg,
	                             int *status);
	enum dp_source_event (*peek)(struct dp_source *s, struct dp_source_rec *r);
	void (*take)(struct dp_source *s);
	struct dp_pgsink_src *(*next_src)(struct dp_source *s);
	void (*stop)(struct dp_source *s);
	void (*pause)(struct dp_source *s);
	enum dp_source_idle_result (*idle)(struct dp_source *s, int64_t ms, struct dp_buf *err,
	                                   int *status);
	int (*resume)(struct dp_source *s, struct dp_buf *err);
	int (*failure)(struct dp_source *s, struct dp_buf *err);
	int (*resync)(struct dp_source *s);
	void (*commit)(struct dp_source *s, bool wait);
	int (*assigned)(struct dp_source *s);
	int (*revoked)(struct dp_source *s, bool finish);
	int64_t (*lag)(const struct dp_source *s);
	void (*close)(struct dp_source *s);
	void (*say_unwritten)(const struct dp_source *s, struct dp_buf *out);
	void (*say_written)(const struct dp_source *s, struct dp_buf *out);
	bool (*interrupted)(struct dp_source *s, int status, uint64_t rows, struct dp_buf *said,
	                    struct dp_source_left *left);
	void (*free)(struct dp_source *s);
};

/* What every input's structure starts with. */
struct dp_source {
	const struct dp_source_ops *ops;
	struct dp_pgsink *sink;         /* set by dp_source_connect before ops->connect */
	bool ended;                     /* no more records (dp_source_ended) */
};

/* The calls made for every record, inline: one indirect call each. */
static inline enum dp_source_event
dp_source_peek(struct dp_source *s, struct dp_source_rec *r)
{
	return s->ops->peek(s, r);
}

static inline void
dp_source_take(struct dp_source *s)
{
	s->ops->take(s);
}

static inline struct dp_pgsink_src *
dp_source_next_src(struct dp_source *s)
{
	return s->ops->next_src ? s->ops->next_src(s) : NULL;
}

#endif
