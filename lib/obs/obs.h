/*
 * obs/obs.h -- watching a command run: its Prometheus endpoint, its
 * metrics file, and systemd's notify socket, started and ended by one
 * call each.
 *
 * A long-running command puts DP_OPT_METRICS_ROWS in its option table
 * (--metrics, --metrics-file, --metrics-interval, --stale-after), checks
 * them in its validate with dp_obs_validate, and calls dp_obs_start in
 * its open, before its engines exist: they declare their metrics when
 * they are made, and get nothing while the registry is off.  The end
 * comes by itself: dp_obs_start asks the frame (core/frame.h's
 * dp_cmd_at_end) for dp_obs_exit and dp_obs_end with the exit status,
 * after the command's close, in the order registered: a command that
 * also publishes its status (status/status.h) starts that first, so that
 * its last record still reads the registry this end frees.  Everything else is the engines' part: they
 * count (obs/metrics.h), say when a link is up or down and when data
 * came (obs/health.h), and a consumer keeps one struct dp_obs_part per
 * partition (below).
 *
 * What a running command shows:
 *   --metrics HOST:PORT (or $DP_METRICS)  an HTTP endpoint (obs/endpoint.h):
 *       GET /metrics   the registry in Prometheus' text format 0.0.4;
 *       GET /healthz   200 "ok" while the run is not failing, else 503
 *                      and why;
 *       GET /readyz    200 "ready" when every link the command needs is
 *                      up and no feed is stale (--stale-after), else
 *                      503 and a one-line reason.
 *   --metrics-file PATH  the same exposition, written atomically (a
 *       temporary file in PATH's directory, renamed over PATH: core/file.h)
 *       every --metrics-interval (default 15s) and at the end, for
 *       node_exporter's textfile collector (which reads *.prom files).
 *   $NOTIFY_SOCKET (systemd Type=notify)  READY=1 the first time the
 *       command is ready; WATCHDOG=1 every half of $WATCHDOG_USEC, but
 *       only while it is ready, so that a pipeline whose data stopped is
 *       restarted by systemd as a hung one would be; STATUS= the state of
 *       its machine and, when not ready, why; STOPPING=1 at the end.
 *       Nothing without $NOTIFY_SOCKET.
 *
 * Metrics of the process itself, besides the engines': dp_build_info
 * {version}, process_start_time_seconds, dp_ready (1 or 0, as /readyz),
 * dp_state{machine,state} (1 for the current state of each machine, 0
 * for its others: the inspector in one metric), and
 * dp_state_transitions_total{machine,from,event,to} (core/fsm.h's
 * watchers); in the file written at the end, dp_exit_status.
 *
 * Threads: one thread of the endpoint's, one ticker for the file and the
 * notify socket; both only read what the registry and health publish.
 * The functions below are called from the command's thread, except the
 * dp_obs_part_* ones, which are for the thread that reads the partition.
 */
#ifndef DP_OBS_H
#define DP_OBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/opt.h"
#include "obs/metrics.h"

/* The options (the fields DP_OPT_METRICS_ROWS fills). */
struct dp_obs_opts {
	const char *listen;             /* --metrics HOST:PORT; NULL: $DP_METRICS, else none */
	const char *file;               /* --metrics-file PATH; NULL: none */
	int64_t interval_ms;            /* --metrics-interval; 0: 15 s */
	int64_t stale_after_ms;         /* --stale-after; 0: data is never stale */
	bool read_elsewhere;            /* on without an endpoint, a file or systemd: the
	                                   registry has another reader (status/status.h) */
};

#define DP_OBS_INTERVAL_DEFAULT_MS 15000

#define DP_OBS_OFF_(type, member, field) \
	(offsetof(type, member) + offsetof(struct dp_obs_opts, field))

/*
 * The option rows, for the options of a command whose context type has
 * a struct dp_obs_opts member; subs: the subcommands that take them
 * (core/opt.h's DP_SUB bits; 0: all).
 */
#define DP_OPT_METRICS_ROWS(type, member, subs_) \
	DP_OPT_GROUP("Metrics and health (see METRICS)"), \
	{ .kind = DP_ARG_STRING, .long_name = "metrics", .argname = "HOST:PORT", \
	  .help = "serve /metrics, /healthz and /readyz over HTTP\n" \
	          "(default $DP_METRICS; :PORT: every address)", \
	  .off = DP_OBS_OFF_(type, member, listen), .flags = DP_OPT_NONEMPTY, .subs = (subs_) }, \
	{ .kind = DP_ARG_STRING, .long_name = "metrics-file", .argname = "PATH", \
	  .help = "write the metrics to PATH atomically, every\n" \
	          "--metrics-interval and at exit (for node_exporter)", \
	  .off = DP_OBS_OFF_(type, member, file), .flags = DP_OPT_NONEMPTY, .subs = (subs_) }, \
	{ .kind = DP_ARG_TIMEOUT, .long_name = "metrics-interval", .argname = "DURATION", \
	  .help = "how often --metrics-file is written (default 15s)", \
	  .off = DP_OBS_OFF_(type, member, interval_ms), .max = 86400000, .max_label = "1d", \
	  .subs = (subs_) }, \
	{ .kind = DP_ARG_DURATION, .long_name = "stale-after", .argname = "DURATION", \
	  .help = "not ready when a partition, subscription or input\n" \
	          "that had records gets none this long (default: never)", \
	  .off = DP_OBS_OFF_(type, member, stale_after_ms), .subs = (subs_) }

/*
 * Check the options and take $DP_METRICS when --metrics is not given:
 * the address's syntax, --metrics-interval only with --metrics-file.
 * 0, or -1 after saying why (a usage error).
 */
int dp_obs_validate(struct dp_obs_opts *o);

/*
 * Start watching the run of command ("dp-sink-pg", a literal): the
 * registry (obs/metrics.h) and health (obs/health.h), the endpoint, the
 * file (written once now, so that a path that cannot be written fails
 * before any work), the notify socket, the machines' watcher, and the
 * end (dp_cmd_at_end).  links ("kafka database": names separated by
 * spaces; NULL: none) are what the command needs and are down until its
 * engines say they are up: a run is not ready before it connected.
 * Without --metrics, --metrics-file, $NOTIFY_SOCKET or read_elsewhere,
 * nothing starts and nothing costs.  0, or an exit status after saying why: 69 the address
 * is taken, 78 it cannot be used, 74 the file cannot be written.
 */
int dp_obs_start(const struct dp_obs_opts *o, const char *command, const char *links);

/* The run's exit status (for dp_exit_status and STATUS=); the frame's end calls it. */
void dp_obs_exit(int status);

/*
 * The end of the run, after the engines are freed (nothing may use the
 * registry, the feeds or a struct dp_obs_part afterwards): the last file
 * (with dp_exit_status when dp_obs_exit said it), the last STATUS= and
 * STOPPING=1; then the endpoint and the ticker stop and everything is
 * freed.  Again: nothing.  A file that cannot be written is said, and
 * changes no status (the data was delivered).
 */
void dp_obs_end(void);

/* Whether dp_obs_start started anything (the registry is on). */
bool dp_obs_on(void);

/* The endpoint's address, "127.0.0.1:9464" (the port the system picked for
 * :0), or NULL without one; borrowed, valid until dp_obs_end. */
const char *dp_obs_address(void);

/*
 * The text of /metrics: the process's gauges brought up to date, then
 * the registry.  0, or -1 when memory ran out.
 */
int dp_obs_exposition(struct dp_buf *out);

/*
 * One of the families every dp command names the same way: the names of
 * issue 19, in base units, with their help, in one place.  The label
 * names are the caller's (NULL-terminated; they must be the same for
 * every caller in a process).  NULL while the registry is off.
 */
enum dp_obs_family {
	DP_OBS_RECORDS_IN,      /* dp_records_in_total: read (consumed, lines, values) */
	DP_OBS_RECORDS_OUT,     /* dp_records_out_total: acknowledged, committed, printed */
	DP_OBS_RECORDS_BAD,     /* dp_records_bad_total{reason}: refused, with the reason's kind */
	DP_OBS_DEAD_LETTERS,    /* dp_dead_letters_total: records sent to a dead-letter topic */
	DP_OBS_RETRIES,         /* dp_retries_total{cause}: work tried again */
	DP_OBS_LAG_RECORDS,     /* dp_consumer_lag_records: records after the last one read */
	DP_OBS_LAG_SECONDS,     /* dp_consumer_lag_seconds: how old the last one read is, while behind */
	DP_OBS_LAST_TIMESTAMP,  /* dp_last_record_timestamp_seconds: the newest record's time */
	DP_OBS_BATCH_SECONDS,   /* dp_sink_batch_duration_seconds: a batch from write to commit */
	DP_OBS_NFAMILIES,
};
struct dp_metric *dp_obs_family(enum dp_obs_family which, const char *const *labels);

/*
 * Add n to the series of family which with these labels (names and
 * values, each NULL-terminated, as many of each): for counts that come
 * rarely (a retry, a dead letter); a hot path keeps its series.
 */
void dp_obs_count(enum dp_obs_family which, const char *const *labels,
                  const char *const *values, double n);

/*
 * A partition a consumer reads: dp_records_in_total, the lag in records
 * and seconds and the newest record's timestamp, with labels topic and
 * partition, and a feed of health's named "topic/partition".  NULL while
 * the registry is off (every call accepts NULL).  Owned by obs: valid
 * until dp_obs_end.
 */
struct dp_obs_part;
struct dp_obs_part *dp_obs_part_new(const char *topic, int32_t partition);

/* Records handed over since the last call (per poll, not per record),
 * the newest one's timestamp (ms since the epoch; <= 0: none). */
void dp_obs_part_read(struct dp_obs_part *p, uint64_t n, int64_t newest_ts_ms);

/* The records after the last one read (high watermark - position); -1: unknown. */
void dp_obs_part_lag(struct dp_obs_part *p, int64_t records);

/* Assigned (again) to this process, or taken away (a revoke: its lag and feed
 * leave the exposition and readiness; its count stays). */
void dp_obs_part_assigned(struct dp_obs_part *p, bool assigned);

#endif
