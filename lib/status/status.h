/*
 * status/status.h -- this process's status, published to a compacted topic
 * for dp-top (and anyone reading the topic) to see the system live.
 *
 * A command given --status-topic TOPIC (or $DP_STATUS_TOPIC) publishes
 * one record about itself every --status-interval (default 5 s) and
 * whenever one of its machines changes state, and a last one when it
 * ends cleanly (its final state and exit status: a stopped process is
 * shown as stopped, not forgotten, so no tombstone).  A process that
 * died without one (SIGKILL, a power cut) stops publishing, and readers
 * count it as gone once its status is older than a few intervals.  The
 * idea is Kafka Connect's status.storage.topic: a compacted topic keyed
 * by the worker, which the worker creates when it is missing.
 *
 * The record.  Key: "COMMAND/INSTANCE" (dp-sink-pg/db1:4242), so each
 * process has one current record after compaction; --instance NAME gives
 * a name that stays across restarts (a systemd unit's), and the status
 * of the next run replaces the last one.  Value, one JSON object:
 *
 *   command       "dp-sink-pg"
 *   instance      --instance, else "HOST:PID"
 *   host, pid     gethostname(2), getpid(2)
 *   started       RFC 3339 UTC, when the process started publishing
 *   time          RFC 3339 UTC, when this record was made
 *   interval_ms   the next record is due within this (readers' "gone")
 *   machines      [{"machine","state","since"}]: each state machine of the
 *                 process (core/fsm.h; "machine" is its --dot digraph
 *                 name, so "MACHINE:STATE" names its node in
 *                 docs/system.dot), its state and since when (RFC 3339)
 *   records_in, records_out, records_bad, dead_letters
 *                 totals of dp_records_in_total, ... (obs/metrics.h, over
 *                 all their labels); null when the command counts none
 *   in_per_s, out_per_s
 *                 records per second over the last second or more (since
 *                 an earlier record); null in the first and the final
 *                 record, and when not counted
 *   lag_records   dp_consumer_lag_records summed over partitions, or null
 *   lag_seconds   the largest dp_consumer_lag_seconds, or null
 *   data_age_ms   obs/health.h's dp_health_data_age_ms, or null (no data yet)
 *   ready, live   obs/health.h's verdicts (as the command keeps them: it
 *                 turns health on, with its --stale-after); reason: why
 *                 not, or null
 *   final         true in the last record of a clean end
 *   exit          the exit status in that record, else null
 *
 * The topic is created when it is missing, compacted (cleanup.policy=
 * compact, one partition, the broker's replication factor); one that
 * exists is used as it is.
 *
 * Threads: one process-wide publisher, like obs/metrics.h's registry.  It
 * runs in a thread of its own, with its own Kafka producer, so the
 * command's work never waits for it and a broker that does not answer
 * costs the command nothing; dp_status_stop joins it.  The watcher
 * (core/fsm.h's dp_fsm_watch) runs on whichever thread steps a machine
 * and costs a few atomic operations per move.  Failing to publish is
 * said once on stderr and never changes the command's exit status.
 */
#ifndef DP_STATUS_H
#define DP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/fsm.h"
#include "core/opt.h"
#include "core/props.h"

#define DP_STATUS_TOPIC_DEFAULT "dp.status"      /* dp-top's, when $DP_STATUS_TOPIC is unset */
#define DP_STATUS_INTERVAL_DEFAULT_MS 5000
#define DP_STATUS_INTERVAL_MIN_MS 100
#define DP_STATUS_MACHINES 8                     /* machines per process it follows */

/* The options of the block below (the command's table fills them). */
struct dp_status_opts {
	const char *topic;              /* --status-topic; NULL: $DP_STATUS_TOPIC, else off */
	const char *instance;           /* --instance; NULL: HOST:PID */
	int64_t interval_ms;            /* --status-interval; 0: the default */
};

/*
 * The option rows, for a command's table (core/opt.h): type is the
 * command's context, field its struct dp_status_opts member, subs the
 * subcommands that take them (core/opt.h's DP_SUB bits; 0: all).
 *   DP_OPT_STATUS_ROWS(struct sink, status, 0),
 */
#define DP_OPT_STATUS_ROWS(type, field, subs_) \
	DP_OPT_GROUP("Status (see dp-top)"), \
	{ .kind = DP_ARG_STRING, .long_name = "status-topic", .argname = "TOPIC", \
	  .help = "publish this process's status to TOPIC, for dp-top\n" \
	          "(default $DP_STATUS_TOPIC; none when unset)", \
	  .off = offsetof(type, field.topic), .flags = DP_OPT_NONEMPTY, .subs = (subs_) }, \
	{ .kind = DP_ARG_STRING, .long_name = "instance", .argname = "NAME", \
	  .help = "this process's name in its status (default HOST:PID)", \
	  .off = offsetof(type, field.instance), .flags = DP_OPT_NONEMPTY, .subs = (subs_) }, \
	{ .kind = DP_ARG_DURATION, .long_name = "status-interval", .argname = "DURATION", \
	  .help = "publish the status this often, and at each change\nof state (default 5s)", \
	  .off = offsetof(type, field.interval_ms), .max = 3600000, .max_label = "1h", \
	  .subs = (subs_) }

/*
 * For validate(): $DP_STATUS_TOPIC when --status-topic was not given, the
 * topic's name (Kafka's rules), the instance's (no '/', printable), the
 * interval (at least 100 ms).  0, or -1 with the reason in err (the
 * option named: "invalid --status-topic 'a b': ...").
 */
int dp_status_check(struct dp_status_opts *o, struct dp_buf *err);

/* dp_status_check, said on stderr: 0, or -1 (a usage error) for validate(). */
int dp_status_validate(struct dp_status_opts *o);

/* Whether o (after dp_status_check) asks for a status. */
bool dp_status_wanted(const struct dp_status_opts *o);

/*
 * Start publishing, in the command's open step before its engines exist
 * (they declare their metrics when they are made): turns obs/metrics.h's
 * registry on when the command has not (so the counters exist), watches
 * every machine of the process, main (the command's, may be NULL) from
 * now on, and starts the publisher's thread, which makes its producer
 * from kafka (borrowed: it must outlive the run), creates the topic when
 * it is missing and publishes the first record.  The command is named by
 * core/log.h's program name.  The run's end (core/frame.h's
 * dp_cmd_at_end, with the exit status) publishes the last record.  Does
 * nothing unless dp_status_wanted(o).  0, or -1 after a warning (no
 * thread, no memory): the command goes on without a status.
 */
int dp_status_start(const struct dp_status_opts *o, const struct dp_kafka_opts *kafka,
                    const struct dp_fsm *main);

/*
 * The end of the run: publish the last record (final, exit_status), wait
 * for it to be acknowledged (at most the --timeout of the Kafka options,
 * while no answer comes), stop the thread and free the producer.  Called
 * by the frame at the end of the run; safe when not started, and more
 * than once.
 */
void dp_status_stop(int exit_status);

/*
 * The record dp_status_start's thread would publish now (for tests and
 * readers of this module): its key and value.  0, or -1 when not started
 * or out of memory.
 */
int dp_status_record(struct dp_buf *key, struct dp_buf *value);

#endif
