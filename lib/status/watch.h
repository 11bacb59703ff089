/*
 * status/watch.h -- how a long-running command is watched from outside, as
 * one block of options, one check and one start: its status published
 * for dp-top (status/status.h) and its metrics and health served, written
 * to a file or told to systemd (obs/obs.h).
 *
 * A command holds a struct dp_watch_opts, puts DP_OPT_WATCH_ROWS in its
 * option table, calls dp_watch_validate in its validate and dp_watch_start
 * in its open, before its engines exist (they declare their metrics when
 * they are made).  The ends are the frame's (core/frame.h's
 * dp_cmd_at_end), registered here in the one order that works: the
 * status's last record first, while the registry it reads still exists,
 * then obs/obs.h's end, which frees it.
 */
#ifndef DP_WATCH_H
#define DP_WATCH_H

#include <stddef.h>

#include "core/fsm.h"
#include "core/props.h"
#include "obs/obs.h"
#include "status/status.h"

struct dp_watch_opts {
	struct dp_status_opts status;   /* --status-topic, --instance, --status-interval */
	struct dp_obs_opts obs;         /* --metrics, --metrics-file, --metrics-interval,
	                                   --stale-after */
};

/* The option rows of both, for the subcommands subs_ (0: all). */
#define DP_OPT_WATCH_ROWS(type, field, subs_) \
	DP_OPT_STATUS_ROWS(type, field.status, subs_), \
	DP_OPT_METRICS_ROWS(type, field.obs, subs_)

/*
 * For validate(): both checks, said on stderr, and that the status topic
 * is none of the ntopics topics the command reads or writes its data in
 * (status records would be read or written as data).  0, or -1 (a usage
 * error).
 */
int dp_watch_validate(struct dp_watch_opts *o, const char *const *topics, size_t ntopics);

/*
 * For open(): the status's publisher (a failure there is a warning, and
 * the run goes on without it), then the metrics of command (a literal,
 * "dp-tail") with its links ("kafka database"; see dp_obs_start).  kafka
 * and main are borrowed for the whole run.  0, or dp_obs_start's exit
 * status after it said why.
 */
int dp_watch_start(const struct dp_watch_opts *o, const struct dp_kafka_opts *kafka,
                   const struct dp_fsm *main, const char *command, const char *links);

#endif
