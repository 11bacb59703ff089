/*
 * dyn/serve.h -- the coordinator of dynamic topics (dp-coord serve).
 *
 * Applications write requests to the requests topic (one partition); the
 * coordinators of a cluster are one consumer group on it, so exactly one
 * of them owns that partition and acts, the others stand by.  The one
 * that acts takes the requests one at a time: it decides each
 * (dyn/decide.h), creates the topic granted, writes the spec to the
 * registry that every follower reads (dyn/registry.h), writes the
 * decision to the decisions topic (so that no replay decides a request
 * twice), and only then commits the request: a coordinator stopped at
 * any point before redoes it.  Retired topics are deleted when their
 * time comes, and their registry records become tombstones.
 *
 * Each step below is the work of one transition of dp-coord serve's
 * machine (the seed's coordinator actor), and returns the event that
 * follows from it: enum dp_serve_event holds the seed's events, so that
 * the command's table names them and its actions are one call each.  A
 * step that ends the run sets *status to its exit status (core/exit.h);
 * every other failure is said on stderr and tried again (the error
 * state's back-off, dp_serve_wait).
 *
 * Waits (for the requests partition, for a request) poll in slices of
 * 100 ms and return DP_SERVE_SIGNAL within about that after SIGINT or
 * SIGTERM (core/sig.h).
 *
 * Threads: one thread owns the coordinator.  Its consumer's rebalance
 * hooks run inside its polls.
 */
#ifndef DP_SERVE_H
#define DP_SERVE_H

#include <stdbool.h>

#include "core/props.h"
#include "dyn/decide.h"

/* The events of the coordinator's machine, in the seed's words. */
enum dp_serve_event {
	DP_SERVE_START,
	DP_SERVE_CONNECTED,
	DP_SERVE_UNREACHABLE,
	DP_SERVE_SIGNAL,
	DP_SERVE_ASSIGNED,              /* the requests partition is this one's */
	DP_SERVE_REVOKED,               /* ... no longer */
	DP_SERVE_FATAL,
	DP_SERVE_REQUEST_CREATE,        /* a request in hand: create */
	DP_SERVE_REQUEST_RETIRE,        /* ... retire (or an action not known) */
	DP_SERVE_REQUEST_DECIDED,       /* ... decided before: not again */
	DP_SERVE_DELETE_DUE,            /* a retired topic's time has come */
	DP_SERVE_CREATE_SUCCESS,
	DP_SERVE_CREATE_REJECTED,
	DP_SERVE_CREATE_IGNORED,
	DP_SERVE_CREATE_FAILURE,
	DP_SERVE_RETIRE_SUCCESS,
	DP_SERVE_RETIRE_REJECTED,
	DP_SERVE_RETIRE_IGNORED,
	DP_SERVE_DELETE_SUCCESS,
	DP_SERVE_DELETE_FAILURE,
	DP_SERVE_NOTIFY_SUCCESS,
	DP_SERVE_NOTIFY_FAILURE,
	DP_SERVE_RESET,
	DP_SERVE_STOPPED,
	DP_SERVE_NEVENTS
};

struct dp_serve_conf {
	const struct dp_kafka_opts *kafka;      /* -b, -X, --timeout */
	const char *registry;                   /* the three topics' names */
	const char *requests;
	const char *decisions;
	const char *group;                      /* the coordinators' consumer group */
	const struct dp_coord_policy *policy;   /* what may be granted */
	int replication;                        /* of the three topics it makes; <= 0:
	                                           DP_SERVE_REPLICATION */
};

/* The replication factor of the topics dp_serve_topics makes, unless asked. */
#define DP_SERVE_REPLICATION 3

struct dp_serve;

/* A coordinator, nothing contacted yet.  conf and everything it points to
 * are borrowed and outlive it.  NULL: out of memory. */
struct dp_serve *dp_serve_new(const struct dp_serve_conf *conf);
/* Leaves the group (nothing is committed) and frees everything. */
void dp_serve_free(struct dp_serve *s);

/*
 * The three topics made when missing (dp_serve_topics), the views of the
 * registry and of the decisions read to their ends, the producer and the
 * consumer group joined.  CONNECTED, SIGNAL, or UNREACHABLE with *status.
 */
int dp_serve_connect(struct dp_serve *s, int *status);

/*
 * The registry, requests and decisions topics exist, as the coordinator
 * wants them (one partition each; the registry and the decisions
 * compacted; replication factor conf.replication, or the brokers up when
 * fewer, with a warning); what it creates is said on stderr, and an
 * existing one with fewer replicas is pointed out.  The only place that
 * makes them.  0, or an exit status with a message in err.
 */
int dp_serve_topics(struct dp_serve *s, struct dp_buf *err);

/*
 * Wait until this coordinator owns the requests partition, then bring
 * the views up to what the last owner wrote and forget the decisions no
 * replay can reach.  ASSIGNED, SIGNAL, or FATAL with *status.
 */
int dp_serve_standby(struct dp_serve *s, int *status);

/*
 * The next thing to do: the request in hand first (REQUEST_CREATE,
 * REQUEST_RETIRE, REQUEST_DECIDED), then a retired topic due (DELETE_DUE);
 * else wait for one.  Also REVOKED, SIGNAL, or FATAL with *status.
 * Hourly, decisions no replay can reach are forgotten.
 */
int dp_serve_listen(struct dp_serve *s, int *status);

/*
 * Decide the create request in hand and create what is granted: the
 * registry record and the decision to write are kept for
 * dp_serve_notify.  CREATE_SUCCESS, CREATE_REJECTED, CREATE_IGNORED, or
 * CREATE_FAILURE (the cluster failed: tried again).
 */
int dp_serve_create(struct dp_serve *s);

/* Decide the retire request in hand (a retired spec with its time to go).
 * RETIRE_SUCCESS, RETIRE_REJECTED or RETIRE_IGNORED. */
int dp_serve_retire(struct dp_serve *s);

/* Delete the retired topic that is due (gone already is the same).
 * DELETE_SUCCESS or DELETE_FAILURE. */
int dp_serve_delete(struct dp_serve *s);

/*
 * Write the registry record every follower sees, then the decision on
 * the request in hand (in that order: a coordinator stopped between the
 * two redoes the request and finds its outcome in the registry).
 * NOTIFY_SUCCESS or NOTIFY_FAILURE.
 */
int dp_serve_notify(struct dp_serve *s);

/*
 * The work done: commit the request (a failure is said: the partition's
 * next owner redoes it), let the registry view catch up with what was
 * written, then listen again: as dp_serve_listen.
 */
int dp_serve_done(struct dp_serve *s, int *status);

/* After a failure: wait (a back-off from 0.5 s up to 30 s, reset by each
 * request done).  RESET, or SIGNAL. */
int dp_serve_wait(struct dp_serve *s);

/* Leave the group; what was not committed is redone by the next owner.
 * STOPPED, or FATAL when failing (the run already has its status). */
int dp_serve_stop(struct dp_serve *s, bool failing);

#endif
