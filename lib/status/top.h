/*
 * status/top.h -- dp-top's engine: the status topic read into a view of every
 * actor of the system, and that view as a table, NDJSON or Graphviz.
 *
 * The records are status/status.h's, one per process (key COMMAND/INSTANCE,
 * the latest wins, as compaction keeps it).  The engine reads the topic
 * from its beginning without a group (kafka/consumer.h's simple mode, as
 * dp-coord reads its registry) and keeps the latest record of each key.
 * A snapshot classifies each process at a moment:
 *   running  its latest record is not final and younger than gone-after
 *            (default: three of its own status intervals);
 *   stopped  its latest record is the final one of a clean end (with its
 *            exit status);
 *   gone     it stopped publishing without a final record (killed, its
 *            host lost) longer ago than gone-after;
 * and leaves out the stopped and gone ones whose record is older than
 * forget-after.  Processes are grouped as the seed groups its actors
 * (docs/system.links): producer (dp-fetch, dp-publish), coordinator
 * (dp-coord), consumer of fixed topics (dp-sink-pg), consumer of dynamic
 * topics (dp-tail), then any other command.
 *
 * Clocks: "gone" compares the record's own time with this host's clock,
 * so hosts whose clocks disagree by more than gone-after are shown gone
 * (run NTP).
 *
 * A topic that does not exist yet (nothing has published a status) is
 * looked for again every second while dp_top_consume waits, as dp-coord
 * looks for its registry, and read from its beginning once it is there.
 *
 * Threads: one thread (the command's).
 */
#ifndef DP_TOP_H
#define DP_TOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/fsm.h"
#include "core/props.h"

struct dp_top_opts {
	const char *topic;              /* the status topic (borrowed) */
	int64_t gone_after_ms;          /* 0: three of the process's own intervals */
	int64_t forget_after_ms;        /* 0: never */
};

struct dp_top;

/*
 * The engine, with its consumer (no broker contacted yet).  kafka and o
 * are borrowed and outlive it.  NULL with a message in err and an exit
 * status in *status (kafka/consumer.h's dp_consumer_new).
 */
struct dp_top *dp_top_new(const struct dp_kafka_opts *kafka, const struct dp_top_opts *o,
                          struct dp_buf *err, int *status);
void dp_top_free(struct dp_top *t);

/*
 * Prove the cluster answers and take the topic's partitions, read from
 * their beginning.  0, DP_KAFKA_STOPPED, DP_EX_NOTFOUND (no status topic
 * yet: nothing has published one; not said in err), or another exit
 * status with a message in err.
 */
int dp_top_subscribe(struct dp_top *t, struct dp_buf *err);

/* What dp_top_consume saw. */
enum dp_top_result {
	DP_TOP_CAUGHT_UP,               /* every partition read to its end as it was: a view */
	DP_TOP_TICK,                    /* the deadline came */
	DP_TOP_SIGNAL,                  /* SIGINT or SIGTERM */
	DP_TOP_QUIT,                    /* quit() said so */
	DP_TOP_FAILED,                  /* *status says how, err why */
};

/*
 * Read records until the deadline (monotonic ms), or until the topic is
 * read to its end for the first time (DP_TOP_CAUGHT_UP, once).  quit
 * (may be NULL) is asked between polls (a key on the terminal).
 */
enum dp_top_result dp_top_consume(struct dp_top *t, int64_t deadline_mono_ms,
                                  bool (*quit)(void *), void *arg, struct dp_buf *err,
                                  int *status);

/* Whether the topic has been read to its end once (a full view). */
bool dp_top_caught_up(const struct dp_top *t);

/* Take a record (key, value; NULL value: a tombstone) by hand: tests, other readers. */
int dp_top_record(struct dp_top *t, const void *key, size_t klen, const void *value,
                  size_t len, const char *where);

/* Counts of the last snapshot. */
struct dp_top_counts {
	size_t running, stopped, gone;
};

/*
 * Classify and sort the processes at now (ms since the epoch), for the
 * views below.  Returns the counts.
 */
struct dp_top_counts dp_top_snapshot(struct dp_top *t, int64_t now_ms);

/*
 * One NDJSON line: {"time","topic","running","stopped","gone",
 * "instances":[...]}, each instance its latest record's members as
 * published, after "key", "actor" (producer, coordinator,
 * consumer_fixed, consumer_dynamic, other), "status" (running, stopped,
 * gone) and "age_ms" (since its record was made).  0 or -1 (memory).
 */
int dp_top_json(const struct dp_top *t, struct dp_buf *out);

/*
 * The snapshot as an aligned table, grouped by actor, for a terminal
 * (core/table.h), without escape codes; width (0: no limit) cuts each
 * line.  0 or -1 (memory).
 */
int dp_top_table(const struct dp_top *t, struct dp_buf *out, size_t width);

/*
 * One line for the head of a view: "dp.status at 2026-11-27T02:00:00.000Z:
 * 4 running, 1 stopped, 0 gone", or that the topic does not exist yet.
 * 0 or -1 (memory).
 */
int dp_top_summary(const struct dp_top *t, struct dp_buf *out);

/*
 * docs/system.dot (built in: `make diagrams` draws it from the commands'
 * tables and docs/system.links) with the current state of each running
 * process marked on its machine's node (filled and bold, named with the
 * process, or how many are in it), the counts in the graph's label, and
 * the reader's own machine (self: dp-top's) as one more cluster with its
 * state marked.  The digraph is named after self's machine, and self's
 * rows are drawn as dp_fsm_dot draws them.  0 or -1 (memory).
 */
int dp_top_dot(const struct dp_top *t, const struct dp_fsm *self, struct dp_buf *out);

#endif
