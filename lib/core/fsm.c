/*
 * core/fsm.c -- the step function, the run loop and the Graphviz drawing of
 * the tables declared with core/fsm.h.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/fsm.h"
#include "core/log.h"
#include "core/timefmt.h"

static void tell(const struct dp_fsm *m, int from, int event);

void
dp_fsm_init(struct dp_fsm *m, const struct dp_fsm_def *def, bool trace)
{
	m->def = def;
	m->state = def->initial;
	m->reason = 0;
	m->trace = trace;
	tell(m, -1, -1);
}

static const struct dp_fsm_final *
final_of(const struct dp_fsm_def *def, int s)
{
	for (size_t i = 0; i < def->nfinal; i++)
		if (def->final[i].state == s)
			return &def->final[i];
	return NULL;
}

static const struct dp_fsm_row *
find(const struct dp_fsm_def *def, int state, int event)
{
	for (size_t i = 0; i < def->nrows; i++) {
		const struct dp_fsm_row *r = &def->rows[i];
		if (r->event != event)
			continue;
		if (r->state == state || (r->state == DP_FSM_ANY && !final_of(def, state)))
			return r;
	}
	return NULL;
}

int
dp_fsm_can(const struct dp_fsm *m, int event)
{
	return find(m->def, m->state, event) != NULL;
}

int
dp_fsm_is_final(const struct dp_fsm *m)
{
	return final_of(m->def, m->state) != NULL;
}

const char *
dp_fsm_state_name(const struct dp_fsm *m)
{
	return m->def->states[m->state];
}

void
dp_fsm_fail(struct dp_fsm *m, int status)
{
	if (!m->reason && status > 0)
		m->reason = status;
}

/*
 * The DP_TRACE_STATES file, opened once.  O_APPEND and one write(2) per
 * line keep the lines of concurrent processes whole.
 */
static int
trace_fd(void)
{
	static int fd = -2;
	const char *path;

	if (fd == -2) {
		path = getenv("DP_TRACE_STATES");
		fd = path && *path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
		                   : -1;
	}
	return fd;
}

static struct {
	dp_fsm_watch_fn fn;
	void *arg;
} watchers[DP_FSM_WATCHERS];
static size_t nwatchers;

int
dp_fsm_watch(dp_fsm_watch_fn fn, void *arg)
{
	if (nwatchers == DP_FSM_WATCHERS)
		return -1;
	watchers[nwatchers].fn = fn;
	watchers[nwatchers].arg = arg;
	nwatchers++;
	return 0;
}

static void
tell(const struct dp_fsm *m, int from, int event)
{
	for (size_t i = 0; i < nwatchers; i++)
		watchers[i].fn(watchers[i].arg, m, from, event);
}

static void
trace(const struct dp_fsm *m, int from, int event)
{
	const struct dp_fsm_def *def = m->def;
	char t[DP_TIME_BUFSZ], line[512];
	int fd = trace_fd(), n;

	if (!m->trace && fd < 0)
		return;
	/* The names are identifiers from the table: no escaping needed. */
	n = snprintf(line, sizeof(line), "{\"cmd\":\"%s\",\"from\":\"%s\",\"event\":\"%s\","
	             "\"to\":\"%s\",\"t\":\"%s\"}\n", def->name, def->states[from],
	             def->events[event], def->states[m->state],
	             dp_time_format(dp_time_now_ms(), t));
	if (n <= 0 || (size_t)n >= sizeof(line))
		return;
	if (m->trace)
		fwrite(line, 1, (size_t)n, stderr);
	/* Best effort: a trace that cannot be written must not change the run. */
	if (fd >= 0 && write(fd, line, (size_t)n) < 0)
		return;
}

int
dp_fsm_step(struct dp_fsm *m, int event, void *ctx)
{
	const struct dp_fsm_def *def = m->def;
	const struct dp_fsm_row *r = find(def, m->state, event);
	int from = m->state;

	if (!r) {
		dp_err("internal error: state machine: no transition from '%s' on '%s'",
		       def->states[from], event >= 0 && (size_t)event < def->nevents
		                          ? def->events[event] : "?");
		m->reason = DP_EX_SOFTWARE;
		return DP_FSM_NOTRANS;
	}
	if (r->next != DP_FSM_SAME)
		m->state = r->next;
	trace(m, from, event);
	tell(m, from, event);
	return r->action ? r->action(m, ctx) : DP_FSM_NONE;
}

int
dp_fsm_run(struct dp_fsm *m, int event, void *ctx)
{
	for (;;) {
		int next = dp_fsm_step(m, event, ctx);
		if (next == DP_FSM_NOTRANS)
			return DP_EX_SOFTWARE;
		if (final_of(m->def, m->state))
			return dp_fsm_status(m);
		if (next == DP_FSM_NONE) {
			dp_err("internal error: state machine: nothing follows in '%s'",
			       dp_fsm_state_name(m));
			m->reason = DP_EX_SOFTWARE;
			return DP_EX_SOFTWARE;
		}
		event = next;
	}
}

int
dp_fsm_status(struct dp_fsm *m)
{
	const struct dp_fsm_final *f = final_of(m->def, m->state);

	if (!f)
		return DP_EX_SOFTWARE;
	if (f->status == DP_FSM_REASON)
		return m->reason ? m->reason : DP_EX_SOFTWARE;
	if (m->reason && m->reason != f->status) {
		dp_err("internal error: state machine: ended in '%s' with status %d recorded",
		       dp_fsm_state_name(m), m->reason);
		return DP_EX_SOFTWARE;
	}
	return f->status;
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
		if (final_of(def, (int)s))
			extra = ", peripheries=2, fillcolor=lightgrey";
		else if (strncmp(name, "err", 3) == 0)
			extra = ", fillcolor=lightpink";
		fprintf(fp, "\t\"%s\" [label=\"%s\"%s];\n", name, name, extra);
	}
	fprintf(fp, "\t__start -> \"%s\";\n", def->states[def->initial]);
	for (size_t i = 0; i < def->nrows; i++) {
		const struct dp_fsm_row *r = &def->rows[i];
		for (size_t s = 0; s < def->nstates; s++) {
			if (r->state != DP_FSM_ANY && (size_t)r->state != s)
				continue;
			if (r->state == DP_FSM_ANY && final_of(def, (int)s))
				continue;
			/* A row for this state and event earlier in the table wins. */
			if (find(def, (int)s, r->event) != r)
				continue;
			size_t to = r->next == DP_FSM_SAME ? s : (size_t)r->next;
			fprintf(fp, "\t\"%s\" -> \"%s\" [label=\"%s\"];\n",
			        def->states[s], def->states[to], def->events[r->event]);
		}
	}
	fputs("}\n", fp);
	return ferror(fp) ? -1 : 0;
}
