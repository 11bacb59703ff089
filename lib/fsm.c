#include <stdio.h>

#include "fsm.h"
#include "log.h"
#include "timefmt.h"

void
dp_fsm_init(struct dp_fsm *m, const struct dp_fsm_def *def, bool trace)
{
	m->def = def;
	m->state = def->initial;
	m->trace = trace;
}

static const struct dp_fsm_row *
find(const struct dp_fsm_def *def, int state, int event)
{
	for (size_t i = 0; i < def->nrows; i++) {
		const struct dp_fsm_row *r = &def->rows[i];
		if ((r->state == state || r->state == DP_FSM_ANY) && r->event == event)
			return r;
	}
	return NULL;
}

int
dp_fsm_can(const struct dp_fsm *m, int event)
{
	return find(m->def, m->state, event) != NULL;
}

const char *
dp_fsm_state_name(const struct dp_fsm *m)
{
	return m->def->states[m->state];
}

int
dp_fsm_step(struct dp_fsm *m, int event, void *ctx)
{
	const struct dp_fsm_def *def = m->def;
	const struct dp_fsm_row *r = find(def, m->state, event);
	int from = m->state;

	if (!r) {
		dp_err("internal error: state machine: no transition from '%s' on '%s'",
		       def->states[from], def->events[event]);
		return DP_FSM_NOTRANS;
	}
	if (r->next != DP_FSM_SAME)
		m->state = r->next;
	if (m->trace) {
		char t[DP_TIME_BUFSZ];
		/* The names are identifiers from the table: no escaping needed. */
		fprintf(stderr, "{\"cmd\":\"%s\",\"from\":\"%s\",\"event\":\"%s\","
		        "\"to\":\"%s\",\"t\":\"%s\"}\n", def->name, def->states[from],
		        def->events[event], def->states[m->state],
		        dp_time_format(dp_time_now_ms(), t));
	}
	return r->action ? r->action(m, ctx) : 0;
}

static int
is_final(const struct dp_fsm_def *def, size_t s)
{
	for (size_t i = 0; i < def->nfinal; i++)
		if ((size_t)def->final[i] == s)
			return 1;
	return 0;
}

int
dp_fsm_dot(const struct dp_fsm_def *def, FILE *fp)
{
	fprintf(fp, "digraph \"%s\" {\n"
	        "\trankdir=LR;\n"
	        "\tnode [shape=box, style=\"rounded,filled\", fillcolor=lightblue, fontname=Helvetica, fontsize=10];\n"
	        "\tedge [fontname=Helvetica, fontsize=9];\n"
	        "\t__start [shape=point, width=0.15, label=\"\"];\n", def->name);
	for (size_t s = 0; s < def->nstates; s++) {
		const char *name = def->states[s];
		const char *extra = "";
		if (is_final(def, s))
			extra = ", peripheries=2, fillcolor=lightgrey";
		else if (name[0] == 'e' && name[1] == 'r' && name[2] == 'r')
			extra = ", fillcolor=lightpink";
		fprintf(fp, "\t\"%s\" [label=\"%s\"%s];\n", name, name, extra);
	}
	fprintf(fp, "\t__start -> \"%s\";\n", def->states[def->initial]);
	for (size_t i = 0; i < def->nrows; i++) {
		const struct dp_fsm_row *r = &def->rows[i];
		for (size_t s = 0; s < def->nstates; s++) {
			if (r->state != DP_FSM_ANY && (size_t)r->state != s)
				continue;
			if (r->state == DP_FSM_ANY && is_final(def, s))
				continue;
			size_t to = r->next == DP_FSM_SAME ? s : (size_t)r->next;
			fprintf(fp, "\t\"%s\" -> \"%s\" [label=\"%s\"];\n",
			        def->states[s], def->states[to], def->events[r->event]);
		}
	}
	fputs("}\n", fp);
	return ferror(fp) ? -1 : 0;
}
