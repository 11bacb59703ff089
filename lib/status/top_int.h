/*
 * status/top_int.h -- what status/top.c (the reader) and status/top_view.c (the
 * views) share inside dp-top's engine; not an API (status/top.h is).
 */
#ifndef DP_TOP_INT_H
#define DP_TOP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status/top.h"

struct dp_consumer;

enum dp_top_actor {
	DP_TOP_PRODUCER,
	DP_TOP_COORDINATOR,
	DP_TOP_CONSUMER_FIXED,
	DP_TOP_CONSUMER_DYNAMIC,
	DP_TOP_OTHER,
	DP_TOP_NACTORS,
};

enum dp_top_status { DP_TOP_RUNNING, DP_TOP_STOPPED, DP_TOP_GONE };

extern const char *const dp_top_actor_names[DP_TOP_NACTORS];   /* "producer" */
extern const char *const dp_top_actor_titles[DP_TOP_NACTORS];  /* "Producer" */
extern const char *const dp_top_status_names[3];               /* "running" */

struct dp_top_machine {
	char *machine;                  /* owned: its --dot digraph name */
	char *state;                    /* owned */
	int64_t since_ms;               /* -1: unknown */
};

/* A process: its latest record, and what the last snapshot made of it. */
struct dp_top_inst {
	char *key;                      /* owned: COMMAND/INSTANCE */
	char *value;                    /* owned: the record's JSON, as published */
	size_t vlen;
	/* from the value; strings owned, numbers NaN or -1 when absent */
	char *command, *instance, *host, *reason;
	int64_t pid, time_ms, interval_ms, exit;
	struct dp_top_machine *m;
	size_t nm, mcap;
	double in_per_s, out_per_s, lag_records, lag_seconds, data_age_ms;
	bool ready, final;
	/* the snapshot's */
	enum dp_top_actor actor;
	enum dp_top_status status;
	int64_t age_ms;                 /* since its record was made; -1 unknown */
};

struct dp_top {
	struct dp_top_opts o;
	struct dp_consumer *c;
	bool subscribed, caught;
	int64_t next_look;              /* no topic yet: when to look again (monotonic ms) */
	struct dp_top_inst *v;          /* every key seen */
	size_t n, cap;
	struct dp_top_inst **shown;     /* the snapshot's, in the views' order */
	size_t nshown, shown_cap;
	struct dp_top_counts counts;
	int64_t now_ms;
};

#endif
