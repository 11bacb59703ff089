/*
 * status/top_view.c -- dp-top's views of a snapshot (status/top.h): NDJSON, an
 * aligned table grouped by actor, and the system diagram with each running
 * process's state marked.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsm.h"
#include "core/table.h"
#include "core/timefmt.h"
#include "json/scan.h"
#include "json/write.h"
#include "status/top_int.h"

#define STARTS(p, lit) (strncmp((p), lit, sizeof(lit) - 1) == 0)

/* docs/system.dot as `make diagrams` made it, built in by the Makefile (EMBED). */
extern const char dp_system_dot[];

/* ---- NDJSON ---------------------------------------------------------------- */

/* The members of a record's value, after the reader's own (which win). */
static void
members(struct dp_jw *w, const struct dp_top_inst *p)
{
	static const char *const ours[] = { "key", "actor", "status", "age_ms" };
	struct dp_buf k = DP_BUF_INIT;
	size_t pos = 0, kn, vn;
	const char *kl, *v;

	while (dp_json_next_member(p->value, p->vlen, &pos, &kl, &kn, &v, &vn) !=
	       DP_JSON_INVALID) {
		bool mine = false;
		dp_buf_reset(&k);
		if (dp_json_unquote(&k, kl, kn) < 0) {
			w->err = -1;
			break;
		}
		for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
			mine |= strcmp(dp_buf_str(&k), ours[i]) == 0;
		if (!mine)
			dp_jw_kraw(w, dp_buf_str(&k), v, vn);
	}
	dp_buf_free(&k);
}

int
dp_top_json(const struct dp_top *t, struct dp_buf *out)
{
	struct dp_jw w;
	char ts[DP_TIME_BUFSZ];

	dp_jw_init(&w, out);
	dp_jw_obj(&w);
	dp_jw_kstr(&w, "time", dp_time_format(t->now_ms, ts));
	dp_jw_kstr(&w, "topic", t->o.topic);
	dp_jw_kuint(&w, "running", t->counts.running);
	dp_jw_kuint(&w, "stopped", t->counts.stopped);
	dp_jw_kuint(&w, "gone", t->counts.gone);
	dp_jw_key(&w, "instances");
	dp_jw_arr(&w);
	for (size_t i = 0; i < t->nshown; i++) {
		const struct dp_top_inst *p = t->shown[i];
		dp_jw_obj(&w);
		dp_jw_kstr(&w, "key", p->key);
		dp_jw_kstr(&w, "actor", dp_top_actor_names[p->actor]);
		dp_jw_kstr(&w, "status", dp_top_status_names[p->status]);
		dp_jw_kcount(&w, "age_ms", p->age_ms);
		members(&w, p);
		dp_jw_end(&w);
	}
	dp_jw_end(&w);
	dp_jw_end(&w);
	if (dp_jw_finish(&w) < 0 || dp_buf_addch(out, '\n') < 0)
		return -1;
	return 0;
}

/* ---- the table --------------------------------------------------------------- */

/* A duration as a person reads it at a glance: 12s, 5m12s, 3h5m, 2d3h. */
static const char *
ago(char buf[32], int64_t ms)
{
	int64_t s = ms / 1000;

	if (ms < 0)
		return NULL;
	if (s < 60)
		snprintf(buf, 32, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, 32, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, 32, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else
		snprintf(buf, 32, "%lldd%02lldh", (long long)(s / 86400),
		         (long long)(s % 86400 / 3600));
	return buf;
}

/* A rate: one decimal below 100 a second; NULL ("-") when not counted. */
static const char *
rate(char buf[32], double v)
{
	if (isnan(v))
		return NULL;
	snprintf(buf, 32, v < 100 ? "%.1f" : "%.0f", v);
	return buf;
}

/* A state machine's name in its process's row: "reader" for "dp-coord reader". */
static const char *
short_machine(const struct dp_top_inst *p, const char *machine)
{
	size_t n = strlen(p->command);

	if (strncmp(machine, p->command, n) == 0 && machine[n] == ' ')
		return machine + n + 1;
	return machine;
}

enum { C_ACTOR, C_COMMAND, C_INSTANCE, C_STATUS, C_STATE, C_SINCE, C_IN, C_OUT, C_LAG,
       C_AGE, C_READY, NCOLS };

static int
add_rows(struct dp_table *tb, const struct dp_top *t, const struct dp_top_inst *p, bool first)
{
	const char *cells[NCOLS] = { 0 };
	char status[48], since[32], in[32], out[32], lag[64], age[32], ready[300], state[300];
	bool running = p->status == DP_TOP_RUNNING;

	cells[C_ACTOR] = first ? dp_top_actor_titles[p->actor] : "";
	cells[C_COMMAND] = p->command;
	cells[C_INSTANCE] = p->instance;
	if (p->status == DP_TOP_STOPPED && p->exit >= 0)
		snprintf(status, sizeof(status), "stopped (exit %lld)", (long long)p->exit);
	else
		snprintf(status, sizeof(status), "%s", dp_top_status_names[p->status]);
	cells[C_STATUS] = status;
	cells[C_STATE] = p->nm ? p->m[0].state : NULL;
	cells[C_SINCE] = p->nm && p->m[0].since_ms >= 0
	               ? ago(since, t->now_ms - p->m[0].since_ms) : NULL;
	if (running) {
		cells[C_IN] = rate(in, p->in_per_s);
		cells[C_OUT] = rate(out, p->out_per_s);
		if (!isnan(p->lag_records) && !isnan(p->lag_seconds))
			snprintf(lag, sizeof(lag), "%.0f (%s)", p->lag_records,
			         ago(age, (int64_t)(p->lag_seconds * 1000)));
		else if (!isnan(p->lag_records))
			snprintf(lag, sizeof(lag), "%.0f", p->lag_records);
		cells[C_LAG] = isnan(p->lag_records) ? NULL : lag;
		cells[C_AGE] = isnan(p->data_age_ms) ? NULL : ago(age, (int64_t)p->data_age_ms);
		snprintf(ready, sizeof(ready), p->ready ? "yes" : "no: %s",
		         p->reason ? p->reason : "?");
		cells[C_READY] = ready;
	} else if (p->status == DP_TOP_GONE) {
		snprintf(ready, sizeof(ready), "last seen %s ago",
		         p->age_ms >= 0 ? ago(age, p->age_ms) : "?");
		cells[C_READY] = ready;
	}
	if (dp_table_add(tb, cells) < 0)
		return -1;
	/* Its other machines, a row each, under its state. */
	for (size_t i = 1; i < p->nm; i++) {
		const char *more[NCOLS] = { "", "", "", "", NULL, NULL, "", "", "", "", "" };
		snprintf(state, sizeof(state), "%s: %s", short_machine(p, p->m[i].machine),
		         p->m[i].state);
		more[C_STATE] = state;
		more[C_SINCE] = p->m[i].since_ms >= 0 ? ago(since, t->now_ms - p->m[i].since_ms)
		                                       : NULL;
		if (dp_table_add(tb, more) < 0)
			return -1;
	}
	return 0;
}

/* Each line of text[from..] cut to width code points. */
static void
cut(struct dp_buf *out, size_t from, size_t width)
{
	size_t w = from, col = 0;

	for (size_t r = from; r < out->len; r++) {
		unsigned char c = (unsigned char)out->data[r];
		if (c == '\n')
			col = 0;
		else if ((c & 0xc0) != 0x80 && col++ >= width)
			continue;
		else if ((c & 0xc0) == 0x80 && col > width)
			continue;
		out->data[w++] = (char)c;
	}
	dp_buf_truncate(out, w);
}

int
dp_top_table(const struct dp_top *t, struct dp_buf *out, size_t width)
{
	static const char *const headers[NCOLS] = {
		"ACTOR", "COMMAND", "INSTANCE", "STATUS", "STATE", "SINCE", "IN/S", "OUT/S", "LAG",
		"DATA AGE", "READY",
	};
	struct dp_table *tb = dp_table_new(headers, NCOLS);
	size_t from = out->len;
	int rc = -1;

	if (!tb)
		return -1;
	dp_table_align_right(tb, C_SINCE);
	dp_table_align_right(tb, C_IN);
	dp_table_align_right(tb, C_OUT);
	dp_table_align_right(tb, C_AGE);
	for (size_t i = 0; i < t->nshown; i++)
		if (add_rows(tb, t, t->shown[i], i == 0 || t->shown[i - 1]->actor !=
		                                      t->shown[i]->actor) < 0)
			goto out;
	if (dp_table_render(tb, out) < 0)
		goto out;
	if (width)
		cut(out, from, width);
	rc = 0;
out:
	dp_table_free(tb);
	return rc;
}

/* ---- the system diagram ---------------------------------------------------- */

/* s as the inside of a DOT string. */
static int
dot_str(struct dp_buf *out, const char *s)
{
	for (; *s; s++)
		if ((*s == '"' || *s == '\\') ? dp_buf_addch(out, '\\') < 0 ||
		                                dp_buf_addch(out, *s) < 0
		                              : dp_buf_addch(out, *s) < 0)
			return -1;
	return 0;
}

/* The running processes whose machine is in the state node names ("machine:state"). */
static size_t
in_node(const struct dp_top *t, const char *node, size_t len, const struct dp_top_inst **one)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nshown; i++) {
		const struct dp_top_inst *p = t->shown[i];
		if (p->status != DP_TOP_RUNNING)
			continue;
		for (size_t j = 0; j < p->nm; j++) {
			size_t ml = strlen(p->m[j].machine);
			if (ml + 1 + strlen(p->m[j].state) == len &&
			    memcmp(node, p->m[j].machine, ml) == 0 && node[ml] == ':' &&
			    memcmp(node + ml + 1, p->m[j].state, len - ml - 1) == 0) {
				*one = p;
				n++;
				break;
			}
		}
	}
	return n;
}

/* A node line of a cluster, "\t\t\"M:S\" [attrs];": marked when processes are in it. */
static int
node_line(const struct dp_top *t, const char *line, size_t len, struct dp_buf *out)
{
	const struct dp_top_inst *one = NULL;
	const char *id = line + 3, *q = memchr(id, '"', len - 3), *state;
	size_t n;

	if (!q || strncmp(q, "\" [", 3) != 0 || len < 2 || line[len - 2] != ']' ||
	    !(n = in_node(t, id, (size_t)(q - id), &one)))
		return dp_buf_add(out, line, len);
	state = memchr(id, ':', (size_t)(q - id));
	state = state ? state + 1 : id;
	bool bad = strncmp(state, "err", 3) == 0 || strncmp(state, "fail", 4) == 0;
	if (dp_buf_add(out, line, len - 2) < 0 ||
	    dp_buf_addf(out, ", style=\"rounded,filled,bold\", penwidth=2.5, color=%s, "
	                "fillcolor=%s, label=\"%.*s\\n", bad ? "red" : "darkgreen",
	                bad ? "orange" : "palegreen", (int)(q - state), state) < 0)
		return -1;
	if (n == 1 ? dot_str(out, one->instance) < 0
	           : dp_buf_addf(out, "%zu processes", n) < 0)
		return -1;
	return dp_buf_addstr(out, "\"];");
}

/*
 * The reader's own machine as a cluster: dp_fsm_dot's lines without its
 * digraph's head and end (single-tab lines, as tests/helpers/
 * fsm_coverage.py reads them), its current state marked.
 */
static int
self_cluster(const struct dp_fsm *self, struct dp_buf *out)
{
	char *text = NULL, mark[160];
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	int rc = -1;

	if (!fp)
		return -1;
	if (dp_fsm_dot(self->def, fp) < 0 || fclose(fp) != 0) {
		free(text);
		return -1;
	}
	snprintf(mark, sizeof(mark), "\t\"%s\" [", dp_fsm_state_name(self));
	if (dp_buf_addf(out, "\tsubgraph cluster_self {\n\t\tlabel=\"Inspector: ") < 0 ||
	    dot_str(out, self->def->name) < 0 ||
	    dp_buf_addstr(out, "\";\n\t\tstyle=filled;\n\t\tcolor=lightgrey;\n"
	                  "\t\tfontname=Helvetica;\n") < 0)
		goto out;
	for (const char *p = text; *p;) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		bool skip = STARTS(p, "digraph ") || STARTS(p, "\trankdir=") ||
		            STARTS(p, "\tnode [") || STARTS(p, "\tedge [") || (n == 1 && *p == '}');
		if (!skip && strncmp(p, mark, strlen(mark)) == 0 && n > 2 && p[n - 2] == ']') {
			if (dp_buf_add(out, p, n - 2) < 0 ||
			    dp_buf_addstr(out, ", style=\"rounded,filled,bold\", penwidth=2.5, "
			                  "color=darkgreen, fillcolor=palegreen];\n") < 0)
				goto out;
		} else if (!skip && (dp_buf_add(out, p, n) < 0 || dp_buf_addch(out, '\n') < 0)) {
			goto out;
		}
		p = eol ? eol + 1 : p + n;
	}
	rc = dp_buf_addstr(out, "\t}\n");
out:
	free(text);
	return rc;
}

int
dp_top_summary(const struct dp_top *t, struct dp_buf *out)
{
	char ts[DP_TIME_BUFSZ];

	if (!t->subscribed && !t->n)
		return dp_buf_addf(out, "%s at %s: no status topic '%s' yet (nothing has published "
		                   "a status: give commands --status-topic)", t->o.topic,
		                   dp_time_format(t->now_ms, ts), t->o.topic);
	return dp_buf_addf(out, "%s at %s: %zu running, %zu stopped, %zu gone%s", t->o.topic,
	                   dp_time_format(t->now_ms, ts), t->counts.running, t->counts.stopped,
	                   t->counts.gone, t->caught || !t->subscribed ? "" : " (still reading)");
}

int
dp_top_dot(const struct dp_top *t, const struct dp_fsm *self, struct dp_buf *out)
{
	struct dp_buf head = DP_BUF_INIT;
	bool labelled = false;
	int rc = 0;

	if (dp_top_summary(t, &head) < 0) {
		dp_buf_free(&head);
		return -1;
	}
	for (const char *p = dp_system_dot; *p && rc == 0;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (STARTS(p, "//")) {
			p = eol ? eol + 1 : p + len;
			continue;               /* make diagrams' "do not edit" is not ours */
		}
		if (STARTS(p, "digraph ")) {
			rc = dp_buf_addstr(out, "digraph \"");
			rc = rc < 0 ? rc : dot_str(out, self->def->name);
			rc = rc < 0 ? rc : dp_buf_addstr(out, "\" {\n\t// docs/system.dot with the "
			                                 "state of each running process marked");
		} else if (!labelled && STARTS(p, "\tlabel=\"") && len > 10) {
			labelled = true;
			rc = dp_buf_add(out, p, len - 2);
			rc = rc < 0 ? rc : dp_buf_addstr(out, "\\n");
			rc = rc < 0 ? rc : dot_str(out, dp_buf_str(&head));
			rc = rc < 0 ? rc : dp_buf_addstr(out, "\";");
		} else if (len == 1 && *p == '}' && (!eol || !eol[1])) {
			rc = self_cluster(self, out);
			rc = rc < 0 ? rc : dp_buf_addch(out, '}');
		} else if (STARTS(p, "\t\t\"") && !memchr(p, '>', len)) {
			rc = node_line(t, p, len, out);
		} else {
			rc = dp_buf_add(out, p, len);
		}
		rc = rc < 0 ? rc : dp_buf_addch(out, '\n');
		p = eol ? eol + 1 : p + len;
	}
	dp_buf_free(&head);
	return rc < 0 ? -1 : 0;
}
