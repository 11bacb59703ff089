/*
 * dyn/ask.h -- asking the coordinator for a dynamic topic, or for one to
 * go (dp-coord request, dp-coord retire).
 *
 * A request is one record on the requests topic (dyn/spec.h), keyed by
 * the topic's name, with a fresh request_id.  The coordinator answers in
 * the registry: the spec it writes under that name carries the
 * request_id (a create), or the topic is retired or gone (a retire).
 * What the registry already says is checked first, so that a request
 * the coordinator could only ignore (the name is another spec's) or a
 * retire of a name it does not hold is refused here, at once.
 *
 * Each step below is the work of one transition of dp-coord request's
 * machine and returns the event that follows from it (enum
 * dp_ask_event); a step that ends the run unsuccessfully sets *status
 * to its exit status (core/exit.h).  Messages go to stderr, data (the
 * request, or the spec that answers it) to the writer given.
 *
 * Threads: one thread owns an asker.
 */
#ifndef DP_ASK_H
#define DP_ASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/out.h"
#include "core/props.h"
#include "dyn/spec.h"

/* The events of dp-coord request's machine. */
enum dp_ask_event {
	DP_ASK_START,
	DP_ASK_CONNECTED,
	DP_ASK_UNREACHABLE,
	DP_ASK_REFUSED,         /* the registry says no already */
	DP_ASK_SIGNAL,
	DP_ASK_SENT,            /* acknowledged; not waiting for the answer */
	DP_ASK_AWAIT,           /* acknowledged; --wait */
	DP_ASK_SEND_FAILED,
	DP_ASK_GRANTED,
	DP_ASK_DENIED,
	DP_ASK_TIMEOUT,
	DP_ASK_NOT_SERVED,      /* --wait: no coordinator has made its topics yet */
	DP_ASK_NEVENTS
};

struct dp_ask_conf {
	const struct dp_kafka_opts *kafka;      /* -b, -X, --timeout */
	const char *registry;                   /* topics */
	const char *requests;
	const char *group;                      /* the coordinators' group, for messages */
	enum dp_dyn_action action;              /* DP_DYN_CREATE (request), DP_DYN_RETIRE */
	const char *topic;                      /* the dynamic topic's name */
	const char *source;                     /* create: its source, filter, ... */
	const char *filter;
	int32_t partitions;                     /* -1: the broker's default */
	const struct dp_kv *config;
	size_t nconfig;
	int64_t delete_after_ms;                /* retire */
	bool wait;                              /* follow the answer ... */
	int64_t wait_ms;                        /* ... this long (ms) */
	const char *wait_arg;                   /* ... as the user typed it, for messages */
	struct dp_out *out;                     /* stdout */
	/* A failed write to out: says so (once) and gives the exit status, 0
	 * when the reader left (the command passes dp_cmd_stdout_failed). */
	int (*stdout_failed)(int err);
};

struct dp_ask;

/* conf and everything it points to are borrowed and outlive the asker.
 * NULL: out of memory. */
struct dp_ask *dp_ask_new(const struct dp_ask_conf *conf);
void dp_ask_free(struct dp_ask *a);

/*
 * The registry read to its end, the producer on the requests topic, and
 * what the registry says about the name.  CONNECTED; SIGNAL; UNREACHABLE
 * or REFUSED (80: the name is another spec's; 81: retire of a name the
 * registry does not hold) with *status.  With --wait, topics that no
 * coordinator has made yet are waited for, as its answer would be:
 * NOT_SERVED after 200 ms, to be called again, until --wait's time.
 */
int dp_ask_connect(struct dp_ask *a, int *status);

/* Write the request, acknowledged.  AWAIT with --wait; else SENT, after
 * the request's JSON line on out.  SEND_FAILED with *status. */
int dp_ask_send(struct dp_ask *a, int *status);

/*
 * Follow the registry until the request is answered; print the spec that
 * answers it.  GRANTED; DENIED (rejected: its status, from the spec);
 * TIMEOUT (69, or the registry's failure); SIGNAL (75, not answered) --
 * all but GRANTED with *status.
 */
int dp_ask_await(struct dp_ask *a, int *status);

bool dp_ask_sent(const struct dp_ask *a);               /* acknowledged */
bool dp_ask_finished(const struct dp_ask *a);           /* sent, and answered if waited for */
const char *dp_ask_request_id(const struct dp_ask *a);  /* "" before send; borrowed */

#endif
