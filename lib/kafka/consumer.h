/*
 * kafka/consumer.h -- the Kafka consumer engine: partitions, where each one
 * starts and stops, rebalances, offsets and the consume loop.
 *
 * dp-tail is its first user; dp-sink-pg (a group member that keeps its
 * offsets in PostgreSQL) and dp-coord (a group member on a requests
 * topic, and a reader of a compacted registry topic without a group) plug
 * into it through the hooks below, without changing it.
 *
 * Two modes, chosen from the options:
 *   simple  no group and no ^pattern: the partitions are read directly
 *           with librdkafka's legacy consumer onto one queue, as kcat
 *           does; nothing is committed.  (librdkafka 2.0.2 stops
 *           fetching whenever its bounded prefetch queue fills and looks
 *           again up to a second later; the engine wakes it in both modes,
 *           see kafka/consumer.c.)
 *   group   opts.group set, or a ^pattern (which librdkafka can only
 *           follow with a subscription; without a group a private one is
 *           used, named after the process, and nothing is committed under
 *           it).  Eager and cooperative rebalancing both work; the
 *           assignor comes from -X partition.assignment.strategy.
 *
 * A partition's life:
 *   assigned  librdkafka's rebalance callback (group) or the connect step
 *             (simple) hands it over.  The engine takes it paused ("held")
 *             and does nothing slow inside librdkafka's callback: no
 *             broker query runs there.
 *   released  inside the next dp_consumer_poll(), outside the callback:
 *             the assigned hook runs (it may choose each start offset),
 *             then the engine asks the cluster what --from and --until
 *             need (watermarks, offsets for a time, the committed
 *             offsets), resumes the partition and seeks it to its start
 *             (simple mode: starts its fetcher there).
 *   records   go to the record hook in offset order, each at most once
 *             per assignment unless the hook asks for it again.
 *   revoked   inside librdkafka's callback: the revoked hook finishes
 *             the application's work on the partitions, the engine syncs
 *             (commit hook, then offsets stored) and commits, then lets
 *             them go.  A commit that fails here is reported at once;
 *             it counts as a failure (dp_consumer_commit_failures, and
 *             dp_consumer_close's status) unless a later commit of this
 *             member carries the partition past it (it came back).
 *
 * Where a partition starts, the first time this process sees it: the
 * assigned hook's choice (part->start), else opts.from.  When a rebalance
 * hands it back later it continues where it was (part->next), except when
 * it starts from the group's committed offset (--from stored, the default
 * with a group): then at the later of the two.  A commit beyond part->next
 * means another member read on; one behind it means this member's own
 * last commit failed (its session was lost while a broker was away, say)
 * and the records in between were handed over here already.  Where it
 * stops (opts.until):
 *   end    the high watermark when the partition was first seen: "the
 *          end as it was at start", also for partitions a rebalance hands
 *          over later;
 *   @TIME  its first record at or after TIME (not handed over), or when
 *          it is idle at its end and the clock has passed TIME.
 *
 * Offsets (group mode):
 *   handled  (the default) the engine keeps the offset after each record
 *            the record hook handled; at each sync point (the queue ran
 *            dry, opts.sync_ms passed, dp_consumer_sync(), a revoke, the
 *            close) it calls the commit hook, which makes the handled
 *            records durable (dp-tail flushes stdout), and only then
 *            stores their offsets.  librdkafka commits stored offsets
 *            every auto.commit.interval.ms; the engine commits them at a
 *            revoke and at close.  A reader sees every record at least
 *            once across restarts.
 *   manual   (opts.manual_commit) the engine stores and commits nothing;
 *            the application commits explicit offsets with
 *            dp_consumer_commit() when its own work is done (a sink's
 *            database transaction, a coordinator's action).
 *
 * Threads: a consumer belongs to the thread that calls dp_consumer_poll.
 * Every function here is called from that thread, and every hook runs on
 * it, inside dp_consumer_poll(), dp_consumer_sync() or
 * dp_consumer_close().  Other threads (a sink's writer connections) never
 * call in: they hand their results to the polling thread, which then
 * commits, pauses or resumes.  A hook must not call dp_consumer_poll or
 * dp_consumer_close.
 *
 * Signals: every wait on the cluster is sliced (kafka/client.h) and gives up
 * when SIGINT or SIGTERM arrived; dp_consumer_poll then returns
 * DP_CONSUMER_SIGNAL.  dp_consumer_close still commits after a signal
 * (a graceful drain), within --timeout (common->timeout_ms), which also
 * bounds every look-up and the wait for a commit.
 *
 * Sources: librdkafka 2.0.2 (rdkafka.h; partition pause/seek/resume as
 * rdkafka_partition.c implements them: a pause or a seek bumps the
 * partition's op version, so records fetched before it are dropped; a
 * seek clears the application position, so fetching continues at the
 * seek; a seek wakes the partition's fetcher and a resume does not;
 * rd_kafka_yield() makes the poll return right after the rebalance
 * callback; a seek that outdates the answer to a pending query for a
 * logical offset makes librdkafka query again and go back to that
 * offset, rd_kafka_toppar_handle_Offset, so a record before the position
 * the engine set is never handed over: the engine seeks again).
 */
#ifndef DP_CONSUMER_H
#define DP_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/buf.h"
#include "core/props.h"
#include "kafka/client.h"      /* DP_KAFKA_STOPPED */

/* --from: where a partition starts the first time it is seen. */
enum dp_from {
	DP_FROM_DEFAULT,    /* stored with a group, else end */
	DP_FROM_BEGINNING,
	DP_FROM_END,        /* only records produced from now on */
	DP_FROM_STORED,     /* the group's committed offset (group only) */
	DP_FROM_TAIL,       /* the last from_arg records of each partition */
	DP_FROM_OFFSET,     /* offset from_arg */
	DP_FROM_TIME,       /* first record at or after from_arg (epoch ms) */
};

/* --until: where a partition stops. */
enum dp_until {
	DP_UNTIL_NONE,
	DP_UNTIL_END,       /* the high watermark when first seen */
	DP_UNTIL_TIME,      /* until_ms (epoch ms) */
};

/* The gone hook's "the topic is there: go on reading it". */
#define DP_CONSUMER_KEEP (-1)

/* "No offset" in part->start and part->next. */
#define DP_CONSUMER_NO_OFFSET (-1)

/*
 * What the engine knows about one partition.  The engine owns it; the
 * pointer stays valid until dp_consumer_free(), also after a revoke (a
 * partition handed back later is the same object).  Hooks may write
 * start (assigned hook only) and user; everything else is read-only.
 */
struct dp_consumer_part {
	const char *topic;
	int32_t partition;
	/* Assigned hook: set to an absolute offset to start there instead of
	 * where opts.from says.  DP_CONSUMER_NO_OFFSET otherwise. */
	int64_t start;
	/* The offset of the next record to hand over: one past the last one
	 * handled, or DP_CONSUMER_NO_OFFSET before the first. */
	int64_t next;
	/* Stop offset (--until end) or catch-up offset (opts.track_end): the
	 * high watermark when first seen; DP_CONSUMER_NO_OFFSET when unused. */
	int64_t end;
	bool assigned;      /* in the current assignment */
	bool paused;        /* by dp_consumer_pause() */
	bool at_eof;        /* at its end, nothing newer since */
	bool caught_up;     /* has reached end (records before it all handed over) */
	bool done;          /* reached its --until point */
	void *user;         /* the application's; the engine never touches it */
};

struct dp_consumer;

/* The record hook's verdict on one record. */
enum dp_consumer_verdict {
	DP_CONSUMER_NEXT = 0,  /* handled; go on */
	DP_CONSUMER_LAST,      /* handled; then stop (dp_consumer_poll: HALTED) */
	DP_CONSUMER_HALT,      /* not handled; stop now (HALTED) */
	DP_CONSUMER_AGAIN,     /* not handled; hand it over again later (at once,
	                          or when the hook paused the partition, after
	                          dp_consumer_resume) */
};

/*
 * The hooks.  All may be NULL except record.  They run on the polling
 * thread (see Threads above); parts arrays are borrowed for the call.
 */
struct dp_consumer_hooks {
	void *arg;      /* passed to every hook */

	/*
	 * One record (never an EOF or error event), in offset order per
	 * partition.  m is borrowed for the call.  The record's offset is
	 * handled when the verdict is NEXT or LAST.  The hook may call
	 * dp_consumer_sync(), _pause(), _seek() and _commit(); after a pause
	 * or a seek the partition's further records of this poll are not
	 * handed over (they come again after the resume or from the seek).
	 */
	enum dp_consumer_verdict (*record)(struct dp_consumer *c, void *arg,
	                                   struct dp_consumer_part *p,
	                                   const rd_kafka_message_t *m);

	/*
	 * Partitions newly assigned, before any of their records: set
	 * part->start to choose where each begins (a sink: the offset its
	 * database holds), or pause them and dp_consumer_seek() +
	 * dp_consumer_resume() later (a sink whose database is down).  Runs
	 * inside dp_consumer_poll, outside librdkafka's rebalance callback,
	 * so it may block on its own I/O (not for longer than the group's
	 * max.poll.interval.ms).  Returns 0, or an exit status after printing
	 * why: dp_consumer_poll then fails with that status.
	 */
	int (*assigned)(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts,
	                size_t n);

	/*
	 * Partitions about to go (a rebalance, or the close), inside
	 * librdkafka's rebalance callback: finish the work on them now (a
	 * sink: end the open transactions), since another member may start
	 * on them as soon as this returns.  The engine then syncs and
	 * commits.  Returns 0, or an exit status after printing why (the
	 * next dp_consumer_poll fails with it).
	 */
	int (*revoked)(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts,
	               size_t n);

	/*
	 * The application's half of a commit, at every sync point: make
	 * the records handled so far durable (dp-tail flushes stdout).  The
	 * engine stores their offsets only after it returned 0.  Return
	 * DP_CONSUMER_HALT instead to keep them unstored and stop
	 * (dp_consumer_poll returns HALTED).  Also called in simple mode and
	 * with opts.manual_commit, where nothing is stored: it is the
	 * application's regular chance to flush.
	 */
	int (*commit)(struct dp_consumer *c, void *arg);

	/*
	 * The result of a commit to Kafka: librdkafka's periodic ones, the
	 * engine's at a revoke or close, and dp_consumer_commit's.  err is the
	 * request's error, else the first partition's; offsets (borrowed,
	 * may be NULL) carry each partition's offset and err.  Without this
	 * hook the engine reports failures itself.
	 */
	void (*committed)(struct dp_consumer *c, void *arg, rd_kafka_resp_err_t err,
	                  const rd_kafka_topic_partition_list_t *offsets);

	/*
	 * A partition has reached its end as it was when first seen (with
	 * --until end or opts.track_end): every record before it went to the
	 * record hook.  Once per partition.  A registry reader has its
	 * initial view when all its partitions have called this.
	 */
	void (*caught_up)(struct dp_consumer *c, void *arg, struct dp_consumer_part *p);

	/*
	 * Simple mode: librdkafka says topic does not exist any more (it
	 * was deleted under the reader).  Return 0 to stop reading it (the
	 * engine drops it, dp_consumer_drop_topic) and go on with the
	 * others, DP_CONSUMER_KEEP to go on reading it (the topic is there:
	 * the report, which names a topic only by its name, was about an
	 * earlier topic of that name, deleted), or an exit status to fail
	 * with.  Without the hook the consumer fails (DP_EX_UNAVAILABLE): a
	 * reader of fixed topics has lost one.  A topic dropped before is
	 * never reported.
	 */
	int (*gone)(struct dp_consumer *c, void *arg, const char *topic);

	/*
	 * Where p was to go on lies outside its records, lo..hi (its low and
	 * high watermark; lo is -1 when unknown): offset is past hi (the
	 * topic was deleted and created again, or an unclean leader election
	 * cut its log) or before lo (retention deleted records before they
	 * were read).  offset is the start the assigned hook chose, the
	 * group's committed offset or --from N, checked at release; or,
	 * found while reading, the position (librdkafka has reset it).
	 * Return 0 to go on where auto.offset.reset says, as librdkafka
	 * would (lo, or hi with latest; the engine says so on stderr), or an
	 * exit status after printing why: dp_consumer_poll then fails with
	 * it and p hands nothing over.  Without the hook the engine says so
	 * and goes on.  A start of 0 is never checked: it is "from the
	 * first record", whatever that is now.
	 */
	int (*out_of_range)(struct dp_consumer *c, void *arg, struct dp_consumer_part *p,
	                    int64_t offset, int64_t lo, int64_t hi);
};

struct dp_consumer_opts {
	const char *const *topics;   /* names, or "^regex" patterns; borrowed */
	size_t ntopics;
	const int32_t *partitions;   /* read only these (simple mode); borrowed */
	size_t npartitions;          /* 0: every partition */
	const char *group;           /* consumer group, or NULL; borrowed */
	enum dp_from from;
	int64_t from_arg;            /* N for TAIL and OFFSET, epoch ms for TIME */
	enum dp_until until;
	int64_t until_ms;            /* epoch ms for DP_UNTIL_TIME */
	bool track_end;              /* learn each end and call caught_up, without stopping */
	/*
	 * Count this reader in the process's metrics (obs/obs.h), per poll:
	 * each partition's dp_records_in_total, lag and newest timestamp,
	 * and a feed of health's that --stale-after watches; the link
	 * "kafka" is up once connected and down during a broker outage.
	 * For the command's own reader, not for a registry it follows.
	 */
	bool metrics;
	bool manual_commit;          /* see Offsets above */
	int sync_ms;                 /* longest time between sync points; 0: 100 ms */
	/*
	 * Bytes the records fetched ahead of the application may take in
	 * librdkafka, their own and its cost per record (about 300 bytes);
	 * 0: 8 MiB.  Sets queued.min.messages, queued.max.messages.kbytes
	 * and fetch.max.bytes (1 MB), which defaults and -X may override.
	 */
	size_t prefetch_bytes;
	/*
	 * librdkafka properties on top of the engine's own defaults, under
	 * -F/-X (borrowed).  The engine's: enable.auto.offset.store=false,
	 * enable.auto.commit (true with a group unless manual_commit),
	 * enable.partition.eof=true, auto.offset.reset=earliest,
	 * allow.auto.create.topics=false, the prefetch (prefetch_bytes),
	 * topic.metadata.refresh.interval.ms (5 s with a pattern),
	 * fetch.wait.max.ms=10 when the run ends at the end (DP_UNTIL_END:
	 * the last, empty fetch of each partition is not held 500 ms).
	 */
	const struct dp_kv *defaults;
	size_t ndefaults;
};

/*
 * Parse --from and --until as every command spells them (see
 * dp-tail(1)): beginning, end, stored, -N, N, @TIME (RFC 3339, epoch, or
 * @-DURATION); end, @TIME, @-DURATION or @+DURATION.  Relative times are
 * taken from now.  On error they print "invalid --from 'x': ..." and
 * return -1, as core/cli.h's parsers do.
 */
int dp_consumer_parse_from(const char *s, enum dp_from *from, int64_t *arg);
int dp_consumer_parse_until(const char *s, enum dp_until *until, int64_t *ms);

/*
 * A consumer client for opts and hooks (both copied; the strings and
 * arrays they point to are borrowed and must outlive the consumer).  No
 * broker is contacted yet.  Returns the consumer (caller frees), or NULL
 * with a message in err and an exit status in *status (78 for a bad
 * property, 66 for an unreadable -F file, 70 for partitions chosen with a
 * group or a pattern).
 */
struct dp_consumer *dp_consumer_new(const struct dp_kafka_opts *kafka,
                                    const struct dp_consumer_opts *opts,
                                    const struct dp_consumer_hooks *hooks,
                                    struct dp_buf *err, int *status);

/*
 * The connecting step: prove within common->timeout_ms that the cluster
 * answers and that every named topic (and partition of opts.partitions)
 * exists; then subscribe (group mode) or take the partitions (simple
 * mode).  Returns 0, DP_KAFKA_STOPPED (a signal), or an exit status with
 * a message in err: 69 unreachable, 81 a topic or partition does not
 * exist (kafka/client.h's dp_kafka_connect wordings).
 */
int dp_consumer_connect(struct dp_consumer *c, struct dp_buf *err);

/* What dp_consumer_poll saw. */
enum dp_consumer_result {
	DP_CONSUMER_MORE = 0,  /* nothing ended: poll again */
	DP_CONSUMER_END,       /* every assigned partition reached its --until point */
	DP_CONSUMER_SIGNAL,    /* SIGINT or SIGTERM (core/sig.h) */
	DP_CONSUMER_HALTED,    /* a hook said LAST or HALT; the application knows why */
	DP_CONSUMER_FAILED,    /* *status says how; err says why unless a hook printed it */
};

/*
 * Wait up to timeout_ms for records and hand them to the record hook, a
 * batch at a time (up to 1000); release newly assigned partitions first;
 * serve rebalances and commit results; sync when the queue ran dry or
 * opts.sync_ms passed.  Returns a dp_consumer_result; *status is set for
 * DP_CONSUMER_FAILED.
 */
int dp_consumer_poll(struct dp_consumer *c, int timeout_ms, struct dp_buf *err, int *status);

/*
 * A sync point now: the commit hook, then (group mode, handled offsets)
 * the offsets of the records handled so far are stored for the next
 * commit.  Returns 0, or -1 when the commit hook refused.
 */
int dp_consumer_sync(struct dp_consumer *c);

/*
 * Commit offsets to the group (each element's offset: the next record
 * to read, i.e. the last handled + 1), or with offsets NULL the stored
 * offsets of the current assignment.  async: returns at once, the
 * result goes to the committed hook during a later poll.  Otherwise
 * waits (at most --timeout) and returns 0 or DP_EX_TEMPFAIL with the
 * reason in err; "nothing to commit" is 0.  Works in group mode only
 * (DP_EX_SOFTWARE otherwise).
 */
int dp_consumer_commit(struct dp_consumer *c, const rd_kafka_topic_partition_list_t *offsets,
                       bool async, struct dp_buf *err);

/*
 * Stop handing over p's records / start again.  Pausing is instant and
 * stays until dp_consumer_resume, or until p is revoked.  A resume
 * continues at p->next (or where a dp_consumer_seek said), whatever was
 * fetched meanwhile: nothing is skipped.  A paused group member keeps
 * polling and so stays in the group.  Returns 0, or an exit status with
 * a message in err.
 */
int dp_consumer_pause(struct dp_consumer *c, struct dp_consumer_part *p, struct dp_buf *err);
int dp_consumer_resume(struct dp_consumer *c, struct dp_consumer_part *p, struct dp_buf *err);

/*
 * Continue p at offset (absolute).  On a partition not yet released (in
 * the assigned hook) this is the same as setting p->start; on a paused
 * one it takes effect at the resume.  Returns 0, or an exit status with
 * a message in err.
 */
int dp_consumer_seek(struct dp_consumer *c, struct dp_consumer_part *p, int64_t offset,
                     struct dp_buf *err);

/*
 * The closing step: sync (the commit hook), commit what is stored
 * (group mode, handled offsets), leave the group (its revoke runs the
 * revoked hook), stop the fetchers.  Returns 0, or DP_EX_TEMPFAIL with
 * the reason printed when a commit failed, here or at an earlier revoke,
 * and no later one made up for it.
 * Call once; afterwards only dp_consumer_free.
 */
int dp_consumer_close(struct dp_consumer *c);

/*
 * Simple mode: read topic too, from now on, as if opts.topics had named
 * it (every partition it has now: taken held, released at the next poll
 * with the assigned hook, --from and --until).  For a reader that follows
 * topics as they come (dp-tail --follow).  Proves within --timeout that
 * the topic exists.  Returns 0 (also when it is read already),
 * DP_KAFKA_STOPPED, or an exit status with a message in err:
 * DP_EX_NOTFOUND when the topic does not exist, DP_EX_SOFTWARE with a
 * group (a subscription decides the topics there).  A topic dropped
 * before starts over: its partitions are new ones.
 */
int dp_consumer_add_topic(struct dp_consumer *c, const char *topic, struct dp_buf *err);

/*
 * Simple mode: stop reading topic: its fetchers stop, its partitions
 * leave the assignment (records of it not handed over yet are dropped),
 * and librdkafka's errors about it (it is deleted next) are no failure.
 */
void dp_consumer_drop_topic(struct dp_consumer *c, const char *topic);

/*
 * Stop each assigned partition of topic at its end as it is now (its
 * high watermark), as --until end does for every partition: for a topic
 * that no more records will reach (a retired dynamic topic).  The
 * partitions count as done there (dp_consumer_topic_done), and once
 * every assigned partition is done, dp_consumer_poll returns
 * DP_CONSUMER_END also without --until.  A partition at its end already
 * needs no look-up; the others ask for their high watermark, within 2 s
 * at most (a retired topic may be deleted at once).  Returns 0,
 * DP_KAFKA_STOPPED, or an exit status with a message in err (the topic
 * is gone already: the caller drops it).
 */
int dp_consumer_end_topic(struct dp_consumer *c, const char *topic, struct dp_buf *err);

/* Every assigned partition of topic has reached its stop point (or none is assigned). */
bool dp_consumer_topic_done(const struct dp_consumer *c, const char *topic);

/* Release everything; leaves a group without committing when not closed.
 * Accepts NULL. */
void dp_consumer_free(struct dp_consumer *c);

/* Every partition seen so far (borrowed, valid until the next poll). */
struct dp_consumer_part *const *dp_consumer_parts(const struct dp_consumer *c, size_t *n);

/*
 * The high watermark of p as it was when its last records were handed
 * over (librdkafka's from the fetch response, kept here), so it still
 * answers once the topic is deleted; DP_CONSUMER_NO_OFFSET before any
 * record.  Like at_eof, it may be behind by what was written since.
 */
int64_t dp_consumer_seen_end(const struct dp_consumer *c, const struct dp_consumer_part *p);

/*
 * After dp_consumer_close: the partitions whose handled offsets an engine
 * commit (revoke, close) failed to commit, and no later commit did.
 */
unsigned dp_consumer_commit_failures(const struct dp_consumer *c);

/* 1 when the consumer is in a group (commits possible). */
int dp_consumer_in_group(const struct dp_consumer *c);

/*
 * Say at -v which partitions a rebalance event moved: "what T [0],
 * T [1]" (or "what N partitions" when memory runs out), for the hooks.
 */
void dp_consumer_say_parts(const char *what, struct dp_consumer_part *const *parts, size_t n);

/* The librdkafka client (borrowed), for what this API does not cover. */
rd_kafka_t *dp_consumer_rk(const struct dp_consumer *c);

#endif
