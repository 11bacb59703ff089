/*
 * fsm.h -- table-driven state machines (after OpenBSD ospfd's iface_fsm).
 *
 * A command declares its states, events and a static const table of
 * {state, event, next, action} rows, and feeds events to dp_fsm_step().
 * The step function finds the row, moves to the next state, then runs the
 * action.  --dot prints the very same table as Graphviz, so the diagram
 * cannot drift from the code.  --trace-states prints every transition to
 * stderr as one NDJSON object: {"cmd","from","event","to","t"}.
 *
 * An event with no row for the current state is a bug in the command: it
 * is reported on stderr and dp_fsm_step() returns DP_FSM_NOTRANS.
 */
#ifndef DP_FSM_H
#define DP_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define DP_FSM_ANY (-1)   /* a row that matches every state */
#define DP_FSM_SAME (-1)  /* next: stay in the current state */
#define DP_FSM_NOTRANS (-1000)

struct dp_fsm;

/* An action returns 0 or a command-defined error; it runs after the move. */
typedef int (*dp_fsm_action)(struct dp_fsm *m, void *ctx);

struct dp_fsm_row {
	int state;               /* or DP_FSM_ANY */
	int event;
	int next;                /* or DP_FSM_SAME */
	dp_fsm_action action;    /* may be NULL */
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
	const int *final;                  /* states drawn as final; may be NULL */
	size_t nfinal;
};

struct dp_fsm {
	const struct dp_fsm_def *def;      /* borrowed, usually static */
	int state;
	bool trace;
};

void dp_fsm_init(struct dp_fsm *m, const struct dp_fsm_def *def, bool trace);

/* Feed one event.  Returns the action's result, 0, or DP_FSM_NOTRANS. */
int dp_fsm_step(struct dp_fsm *m, int event, void *ctx);

/* 1 when the current state has a row for event. */
int dp_fsm_can(const struct dp_fsm *m, int event);

const char *dp_fsm_state_name(const struct dp_fsm *m);

/* Write the table as a Graphviz digraph.  Returns 0 or -1 (write error). */
int dp_fsm_dot(const struct dp_fsm_def *def, FILE *fp);

#endif
