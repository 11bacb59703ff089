/*
 * dyn/reader.c -- the registry listed, watched, or kept running as child
 * processes (dyn/reader.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/sig.h"
#include "core/table.h"
#include "core/timefmt.h"
#include "dyn/reader.h"
#include "dyn/registry.h"
#include "dyn/supervise.h"
#include "json/write.h"
#include "kafka/client.h"

struct dp_reader {
	struct dp_reader_conf conf;
	struct dp_registry *reg;
	struct dp_sup *sup;             /* run */
	struct dp_buf err;
	bool loaded;                    /* the view is current: changes count */
	bool out_failed;                /* watch: stdout failed, the watch ends */
	bool finished;                  /* list: all printed */
};

struct dp_reader *
dp_reader_new(const struct dp_reader_conf *conf)
{
	struct dp_reader *r = calloc(1, sizeof(*r));

	if (r)
		r->conf = *conf;
	return r;
}

void
dp_reader_free(struct dp_reader *r)
{
	if (!r)
		return;
	dp_sup_free(r->sup, 10000);
	dp_registry_free(r->reg);
	dp_buf_free(&r->err);
	free(r);
}

bool
dp_reader_finished(const struct dp_reader *r)
{
	return r->finished;
}

int
dp_reader_print_spec(struct dp_out *out, const struct dp_dyn_spec *s)
{
	struct dp_buf line = DP_BUF_INIT;
	int rc = dp_dyn_spec_json(&line, s);

	if (rc == 0)
		rc = dp_buf_addch(&line, '\n');
	if (rc < 0)
		dp_err("out of memory");
	else if (dp_out_write(out, line.data, line.len) < 0 || dp_out_flush(out) < 0)
		rc = -1;
	dp_buf_free(&line);
	return rc;
}

/* watch: a change, printed as it comes. */
static void
on_watch(void *arg, const char *topic, const struct dp_dyn_spec *old,
         const struct dp_dyn_spec *now, int64_t offset)
{
	struct dp_reader *r = arg;
	struct dp_out *out = r->conf.out;

	/* While the view loads, the log's history goes by: only the result counts. */
	if (!r->loaded)
		return;
	if (now) {
		if (dp_reader_print_spec(out, now) < 0)
			r->out_failed = true;
		return;
	}
	struct dp_jw w;
	struct dp_buf line = DP_BUF_INIT;
	dp_jw_init(&w, &line);
	dp_jw_obj(&w);
	dp_jw_kstr(&w, "topic", topic);
	dp_jw_kstr(&w, "state", "deleted");
	dp_jw_end(&w);
	if (dp_jw_finish(&w) < 0 || dp_buf_addch(&line, '\n') < 0 ||
	    dp_out_write(out, line.data, line.len) < 0 || dp_out_flush(out) < 0)
		r->out_failed = true;
	dp_buf_free(&line);
}

/* run: a child's topic is active and matches --match. */
static bool
wanted(const struct dp_reader *r, const struct dp_dyn_spec *s)
{
	if (!s || s->state != DP_DYN_ACTIVE)
		return false;
	return !r->conf.match || dp_dyn_spec_matches(s, r->conf.match, "--match");
}

/* run: a change starts or stops a child. */
static void
on_run(void *arg, const char *topic, const struct dp_dyn_spec *old,
       const struct dp_dyn_spec *now, int64_t offset)
{
	struct dp_reader *r = arg;

	if (!r->loaded || !r->sup)
		return;
	if (wanted(r, now)) {
		if (!dp_sup_has(r->sup, topic)) {
			dp_buf_reset(&r->err);
			if (dp_sup_start(r->sup, topic, &r->err) < 0)
				dp_err("%s", dp_buf_str(&r->err));
		}
	} else if (dp_sup_has(r->sup, topic)) {
		dp_info("'%s' is %s: stopping its child", topic,
		        now ? dp_dyn_state_name(now->state) : "gone");
		dp_sup_stop(r->sup, topic);
	}
}

int
dp_reader_load(struct dp_reader *r, int *status)
{
	static const dp_registry_fn change[] = {
		[DP_READER_LIST] = NULL, [DP_READER_WATCH] = on_watch, [DP_READER_RUN] = on_run,
	};
	static const int loaded[] = {
		[DP_READER_LIST] = DP_READER_LOADED_LIST, [DP_READER_WATCH] = DP_READER_LOADED_WATCH,
		[DP_READER_RUN] = DP_READER_LOADED_RUN,
	};
	const struct dp_registry_conf rconf = {
		.kafka = r->conf.kafka, .topic = r->conf.registry,
		.change = change[r->conf.mode], .arg = r, .metrics = r->conf.mode == DP_READER_RUN,
	};
	int st;

	if (r->conf.mode == DP_READER_RUN &&
	    !(r->sup = dp_sup_new(r->conf.argv, r->conf.argc, 1000, 60000))) {
		dp_err("out of memory");
		*status = DP_EX_SOFTWARE;
		return DP_READER_UNREACHABLE;
	}
	if (!(r->reg = dp_registry_new(&rconf, &r->err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_registry_load(r->reg, &r->err);
	if (st == DP_KAFKA_STOPPED || dp_sig_stop)
		return DP_READER_SIGNAL;
	if (st == DP_EX_NOTFOUND) {
		dp_buf_reset(&r->err);
		dp_buf_msgf(&r->err, "registry '%s' does not exist: no dp-coord serve has run on "
		            "this cluster", r->conf.registry);
		st = DP_EX_UNAVAILABLE;
	}
	if (st) {
		dp_err("%s", dp_buf_str(&r->err));
		*status = st;
		return DP_READER_UNREACHABLE;
	}
	r->loaded = true;
	return loaded[r->conf.mode];
}

static int
cmp_specs(const void *a, const void *b)
{
	const struct dp_dyn_spec *const *x = a, *const *y = b;

	return strcmp((*x)->topic, (*y)->topic);
}

/* The specs as a table's rows.  0, or -1 (memory). */
static int
table_rows(struct dp_table *t, const struct dp_dyn_spec **v, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct dp_dyn_spec *s = v[i];
		char p[24] = "-", upd[DP_TIME_BUFSZ] = "-";
		if (s->partitions > 0)
			snprintf(p, sizeof(p), "%d", (int)s->partitions);
		if (s->updated_at >= 0)
			dp_time_format(s->updated_at, upd);
		const char *row[] = { s->topic, dp_dyn_state_name(s->state),
		                      s->source ? s->source : "-", p, s->filter ? s->filter : "-",
		                      upd };
		rc = dp_table_add(t, row);
	}
	return rc;
}

int
dp_reader_list(struct dp_reader *r, int *status)
{
	static const char *const h[] = { "TOPIC", "STATE", "SOURCE", "PARTITIONS", "FILTER",
		"UPDATED" };
	struct dp_out *out = r->conf.out;
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(r->reg, &n);
	const struct dp_dyn_spec **sorted = calloc(n ? n : 1, sizeof(*sorted));
	struct dp_table *t = NULL;
	int rc = 0;

	if (!sorted || (r->conf.table && !(t = dp_table_new(h, 6)))) {
		dp_err("out of memory");
		free(sorted);
		*status = DP_EX_SOFTWARE;
		return DP_READER_WRITE_FAILED;
	}
	memcpy(sorted, v, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_specs);
	if (t) {
		struct dp_buf b = DP_BUF_INIT;
		dp_table_align_right(t, 3);
		rc = table_rows(t, sorted, n);
		if (rc == 0)
			rc = dp_table_render(t, &b);
		if (rc == 0)
			rc = dp_out_write(out, b.data, b.len);
		dp_buf_free(&b);
	} else {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = dp_reader_print_spec(out, sorted[i]);
	}
	if (rc == 0)
		rc = dp_out_flush(out);
	dp_table_free(t);
	free(sorted);
	if (rc < 0 && !dp_out_closed(out)) {
		*status = r->conf.stdout_failed(errno);
		return DP_READER_WRITE_FAILED;
	}
	r->finished = true;
	return DP_READER_LISTED;
}

/*
 * One poll of the registry: -1 to go on, or the event that ends the
 * wait (a signal, or the registry lost with *status set and said).
 */
static int
poll_registry(struct dp_reader *r, int timeout_ms, int *status)
{
	int st = dp_registry_poll(r->reg, timeout_ms, &r->err);

	if (st == DP_KAFKA_STOPPED || dp_sig_stop)
		return DP_READER_SIGNAL;
	if (st) {
		dp_err("registry: %s", dp_buf_str(&r->err));
		*status = st;
		return DP_READER_LOST;
	}
	return -1;
}

int
dp_reader_watch(struct dp_reader *r, int *status)
{
	struct dp_out *out = r->conf.out;
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(r->reg, &n);

	for (size_t i = 0; i < n && !r->out_failed; i++)
		if (dp_reader_print_spec(out, v[i]) < 0)
			r->out_failed = true;
	for (;;) {
		if (r->out_failed) {
			if (dp_out_closed(out))
				return DP_READER_PIPE_CLOSED;
			*status = r->conf.stdout_failed(dp_out_error(out));
			return DP_READER_LOST;
		}
		int ev = poll_registry(r, 200, status);
		if (ev >= 0)
			return ev;
	}
}

int
dp_reader_supervise(struct dp_reader *r, int *status)
{
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(r->reg, &n);

	for (size_t i = 0; i < n; i++)
		on_run(r, v[i]->topic, NULL, v[i], -1);
	for (;;) {
		dp_sup_poll(r->sup, 100);
		int ev = poll_registry(r, 0, status);
		if (ev >= 0)
			return ev;
	}
}

int
dp_reader_stop(struct dp_reader *r)
{
	dp_sup_free(r->sup, 10000);
	r->sup = NULL;
	return DP_READER_STOPPED;
}
