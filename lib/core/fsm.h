/*
 * core/fsm.h -- table-driven state machines (after OpenBSD ospfd's iface_fsm).
 *
 * A command declares its states, events and a static const table of
 * {state, event, next, action} rows.  The table is the behaviour: an
 * action does the work of its transition and returns the event that
 * follows from it, and dp_fsm_run() feeds that event back into the table
 * until the machine reaches a final state.  --dot draws the very same
 * table as Graphviz, so the diagram cannot drift from the code.
 *
 * Events that arrive from outside while an action runs (a rebalance
 * callback inside a consumer poll, say) go through dp_fsm_step(); their
 * rows must keep the machine in the state it is in, and their actions
 * return DP_FSM_NONE.
 *
 * The exit status follows from the final state: each final state has a
 * fixed status, or DP_FSM_REASON for "the reason recorded with
 * dp_fsm_fail()".  An event with no row for the current state is a bug:
 * it is reported, and the run ends with DP_EX_SOFTWARE (70).
 *
 * Tracing: --trace-states prints every transition to stderr as one NDJSON
 * object {"cmd","from","event","to","t"}.  When the environment variable
 * DP_TRACE_STATES names a file, the same lines are appended to it (make
 * check collects them there to prove that every row of every table is
 * exercised by the suite).
 */
#ifndef DP_FSM_H
#define DP_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define DP_FSM_ANY (-1)        /* row state: matches every state but the final ones */
#define DP_FSM_SAME (-1)       /* row next: stay in the current state */
#define DP_FSM_NONE (-1)       /* action result: no event follows */
#define DP_FSM_NOTRANS (-1000) /* dp_fsm_step: no row for the event */
#define DP_FSM_REASON (-1)     /* final status: the reason from dp_fsm_fail() */

struct dp_fsm;

/*
 * An action runs after the move into the row's next state.  It returns
 * the next event, or DP_FSM_NONE.
 */
typedef int (*dp_fsm_action)(struct dp_fsm *m, void *ctx);

struct dp_fsm_row {
	int state;               /* or DP_FSM_ANY */
	int event;
	int next;                /* or DP_FSM_SAME */
	dp_fsm_action action;    /* NULL only for rows into a final state */
};

struct dp_fsm_final {
	int state;
	int status;              /* exit status, or DP_FSM_REASON */
};

struct dp_fsm_def {
	const char *name;                  /* the command, "dp-publish" */
	const char *const *states;         /* state names, indexed by state */
	size_t nstates;
	const char *const *events;         /* event names, indexed by event */
	size_t nevents;
	const struct dp_fsm_row *rows;
	size_t nrows;
	int initial;
	const struct dp_fsm_final *final;
	size_t nfinal;
};

#define DP_FSM_COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct dp_fsm {
	const struct dp_fsm_def *def;      /* borrowed, usually static */
	int state;
	int reason;                        /* first dp_fsm_fail() status, 0 none */
	bool trace;
};

void dp_fsm_init(struct dp_fsm *m, const struct dp_fsm_def *def, bool trace);

/*
 * A watcher of every machine's transitions in the process (the metrics'
 * dp_state and dp_state_transitions_total, the status topic): called by
 * dp_fsm_init (from = event = -1: the machine starts in its first state)
 * and after each step's move, before its action runs, on the thread that
 * steps.  It must be quick and must not step a machine.  At most
 * DP_FSM_WATCHERS; 0, or -1 when they are taken.
 */
#define DP_FSM_WATCHERS 4
typedef void (*dp_fsm_watch_fn)(void *arg, const struct dp_fsm *m, int from, int event);
int dp_fsm_watch(dp_fsm_watch_fn fn, void *arg);

/*
 * Feed one event: find the row, move, trace, run the action.  Returns
 * the action's result (an event or DP_FSM_NONE), or DP_FSM_NOTRANS after
 * reporting the missing row (the reason becomes DP_EX_SOFTWARE).
 */
int dp_fsm_step(struct dp_fsm *m, int event, void *ctx);

/*
 * Feed event, then every event the actions return, until a final state.
 * Returns the exit status of that state (dp_fsm_status).  An action that
 * returns DP_FSM_NONE outside a final state is a bug: reported, 70.
 */
int dp_fsm_run(struct dp_fsm *m, int event, void *ctx);

/* Record why the machine is failing; the first reason wins (status > 0). */
void dp_fsm_fail(struct dp_fsm *m, int status);

/*
 * The exit status for the current state: its fixed status, or the reason
 * for a DP_FSM_REASON state (70 when none was recorded).  A fixed-status
 * state reached with a reason recorded means the table and the actions
 * disagree: reported, 70.  Not final: 70.
 */
int dp_fsm_status(struct dp_fsm *m);

/* 1 when the current state has a row for event. */
int dp_fsm_can(const struct dp_fsm *m, int event);
int dp_fsm_is_final(const struct dp_fsm *m);

const char *dp_fsm_state_name(const struct dp_fsm *m);

/* Write the table as a Graphviz digraph.  Returns 0 or -1 (write error). */
int dp_fsm_dot(const struct dp_fsm_def *def, FILE *fp);

#endif
