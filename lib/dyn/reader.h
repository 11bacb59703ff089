/*
 * dyn/reader.h -- the registry of dynamic topics read by a client: listed
 * once, watched, or kept running as child processes (dp-coord list,
 * watch, run).
 *
 * Every reader reads the registry to its end first (the view is then
 * current: dyn/registry.h); list prints it and ends, watch prints it and
 * then each change as it comes, run starts one child per active topic
 * (that --match takes) and stops and starts them as the registry changes
 * (dyn/supervise.h).  Specs are printed as NDJSON lines, the registry's
 * own JSON (dyn/spec.h); a topic deleted is {"topic":...,"state":"deleted"}.
 *
 * Each step below is the work of one transition of the readers' machine
 * and returns the event that follows from it (enum dp_reader_event); a
 * step that ends the run unsuccessfully sets *status to its exit status
 * (core/exit.h).  Waits poll in slices of at most 200 ms and end with
 * SIGNAL within about that after SIGINT or SIGTERM (core/sig.h).
 *
 * Threads: one thread owns a reader.
 */
#ifndef DP_READER_H
#define DP_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/out.h"
#include "core/props.h"
#include "dyn/spec.h"

/* The events of the readers' machine. */
enum dp_reader_event {
	DP_READER_START,
	DP_READER_LOADED_LIST,          /* the view is current; a list follows */
	DP_READER_LOADED_WATCH,         /* ... a watch */
	DP_READER_LOADED_RUN,           /* ... the children */
	DP_READER_UNREACHABLE,
	DP_READER_SIGNAL,
	DP_READER_LISTED,
	DP_READER_WRITE_FAILED,
	DP_READER_PIPE_CLOSED,          /* watch: the reader of stdout left */
	DP_READER_LOST,                 /* the registry, or stdout, failed */
	DP_READER_STOPPED,              /* run: every child ended */
	DP_READER_NEVENTS
};

enum dp_reader_mode { DP_READER_LIST, DP_READER_WATCH, DP_READER_RUN };

struct dp_expr;

struct dp_reader_conf {
	const struct dp_kafka_opts *kafka;      /* -b, -X, --timeout */
	const char *registry;                   /* the registry topic */
	enum dp_reader_mode mode;
	bool table;                             /* list: a table, else NDJSON */
	struct dp_expr *match;                  /* run: the topics wanted; NULL: all active */
	char *const *argv;                      /* run: the child's command ... */
	size_t argc;                            /* ... ({} is the topic: dyn/supervise.h) */
	struct dp_out *out;                     /* stdout */
	/* A failed write to out: says so (once) and gives the exit status, 0
	 * when the reader left (the command passes dp_cmd_stdout_failed). */
	int (*stdout_failed)(int err);
};

struct dp_reader;

/* conf and everything it points to are borrowed and outlive the reader.
 * NULL: out of memory. */
struct dp_reader *dp_reader_new(const struct dp_reader_conf *conf);
/* Stops the children that still run (SIGTERM, then SIGKILL after 10 s)
 * and frees everything. */
void dp_reader_free(struct dp_reader *r);

/*
 * The registry read to its end: LOADED_LIST, LOADED_WATCH or LOADED_RUN
 * (by mode); SIGNAL; UNREACHABLE with *status (69 also when the registry
 * does not exist: no dp-coord serve has run).
 */
int dp_reader_load(struct dp_reader *r, int *status);

/* Every spec, by name; a table when conf.table.  LISTED (also when the
 * reader of stdout left), or WRITE_FAILED with *status. */
int dp_reader_list(struct dp_reader *r, int *status);

/* What is there, then each change as it comes, until SIGNAL, PIPE_CLOSED,
 * or LOST with *status (stdout or the registry failed). */
int dp_reader_watch(struct dp_reader *r, int *status);

/* A child per wanted topic, kept running, until SIGNAL, or LOST with
 * *status (the registry failed). */
int dp_reader_supervise(struct dp_reader *r, int *status);

/* SIGTERM to every child, and wait for them (SIGKILL after 10 s): STOPPED. */
int dp_reader_stop(struct dp_reader *r);

/* list: everything was printed. */
bool dp_reader_finished(const struct dp_reader *r);

/* One spec as an NDJSON line on out, flushed.  0, or -1 with errno (or
 * "out of memory" said). */
int dp_reader_print_spec(struct dp_out *out, const struct dp_dyn_spec *s);

#endif
