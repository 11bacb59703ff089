/*
 * status/top.c -- dp-top's engine (status/top.h): the status topic read into the
 * latest record of each process, classified and grouped for the views
 * (status/top_view.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/exit.h"
#include "core/log.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "json/scan.h"
#include "kafka/client.h"
#include "kafka/consumer.h"
#include "status/top_int.h"

/* The seed's actors (docs/system.links), in the order the views show them. */
static const struct {
	const char *command;
	enum dp_top_actor actor;
} actors[] = {
	{ "dp-fetch", DP_TOP_PRODUCER },
	{ "dp-publish", DP_TOP_PRODUCER },
	{ "dp-coord", DP_TOP_COORDINATOR },
	{ "dp-sink-pg", DP_TOP_CONSUMER_FIXED },
	{ "dp-tail", DP_TOP_CONSUMER_DYNAMIC },
};

const char *const dp_top_actor_names[DP_TOP_NACTORS] = {
	"producer", "coordinator", "consumer_fixed", "consumer_dynamic", "other",
};
const char *const dp_top_actor_titles[DP_TOP_NACTORS] = {
	"Producer", "Coordinator", "Consumer for fixed topics", "Consumer for dynamic topics",
	"Other",
};
const char *const dp_top_status_names[3] = { "running", "stopped", "gone" };

/* ---- one record ----------------------------------------------------------- */

static void
inst_clear(struct dp_top_inst *p)
{
	free(p->value);
	free(p->command);
	free(p->instance);
	free(p->host);
	free(p->reason);
	for (size_t i = 0; i < p->nm; i++) {
		free(p->m[i].machine);
		free(p->m[i].state);
	}
	free(p->m);
	char *key = p->key;
	*p = (struct dp_top_inst){ .key = key };
}

/* A string member's text (quotes and escapes decoded), owned; NULL for others. */
static char *
str_of(const char *v, size_t vn, enum dp_json_type ty)
{
	struct dp_buf b = DP_BUF_INIT;

	if (ty != DP_JSON_STRING || dp_json_unquote(&b, v, vn) < 0 || dp_buf_addch(&b, 0) < 0) {
		dp_buf_free(&b);
		return NULL;
	}
	return dp_buf_detach(&b, NULL);
}

static double
num_of(const char *v, size_t vn, enum dp_json_type ty)
{
	char tmp[64];

	if (ty != DP_JSON_NUMBER || vn >= sizeof(tmp))
		return NAN;
	memcpy(tmp, v, vn);
	tmp[vn] = '\0';
	return strtod(tmp, NULL);
}

static int64_t
time_of(const char *v, size_t vn, enum dp_json_type ty)
{
	char *s = str_of(v, vn, ty);
	int64_t ms = -1;

	if (s && dp_time_parse_rfc3339(s, &ms) < 0)
		ms = -1;
	free(s);
	return ms;
}

/* A member name's literal is "name": no status key needs escapes. */
static bool
is(const char *k, size_t kn, const char *name)
{
	size_t n = strlen(name);

	return kn == n + 2 && memcmp(k + 1, name, n) == 0;
}

static int
machines_of(struct dp_top_inst *p, const char *v, size_t vn)
{
	size_t pos = 0, ev;
	const char *e;

	while (dp_json_next_element(v, vn, &pos, &e, &ev) == DP_JSON_OBJECT) {
		struct dp_top_machine m = { .since_ms = -1 }, *grown;
		size_t mp = 0, kn, mn;
		const char *k, *mv;
		enum dp_json_type ty;

		while ((ty = dp_json_next_member(e, ev, &mp, &k, &kn, &mv, &mn)) != DP_JSON_INVALID) {
			if (is(k, kn, "machine") && !m.machine)
				m.machine = str_of(mv, mn, ty);
			else if (is(k, kn, "state") && !m.state)
				m.state = str_of(mv, mn, ty);
			else if (is(k, kn, "since"))
				m.since_ms = time_of(mv, mn, ty);
		}
		if (!m.machine || !m.state ||
		    !(grown = dp_grow(p->m, &p->mcap, p->nm + 1, sizeof(*grown), 2))) {
			free(m.machine);
			free(m.state);
			if (!m.machine || !m.state)
				continue;
			return -1;
		}
		p->m = grown;
		p->m[p->nm++] = m;
	}
	return 0;
}

/* Fill p from its record's value (valid JSON, an object).  0, or -1 (memory). */
static int
parse(struct dp_top_inst *p)
{
	size_t pos = 0, kn, vn;
	const char *k, *v;
	enum dp_json_type ty;

	p->time_ms = p->interval_ms = p->pid = p->exit = -1;
	p->in_per_s = p->out_per_s = p->lag_records = p->lag_seconds = p->data_age_ms = NAN;
	while ((ty = dp_json_next_member(p->value, p->vlen, &pos, &k, &kn, &v, &vn)) !=
	       DP_JSON_INVALID) {
		if (is(k, kn, "command"))
			free(p->command), p->command = str_of(v, vn, ty);
		else if (is(k, kn, "instance"))
			free(p->instance), p->instance = str_of(v, vn, ty);
		else if (is(k, kn, "host"))
			free(p->host), p->host = str_of(v, vn, ty);
		else if (is(k, kn, "reason"))
			free(p->reason), p->reason = str_of(v, vn, ty);
		else if (is(k, kn, "pid") && !isnan(num_of(v, vn, ty)))
			p->pid = (int64_t)num_of(v, vn, ty);
		else if (is(k, kn, "exit") && !isnan(num_of(v, vn, ty)))
			p->exit = (int64_t)num_of(v, vn, ty);
		else if (is(k, kn, "interval_ms") && !isnan(num_of(v, vn, ty)))
			p->interval_ms = (int64_t)num_of(v, vn, ty);
		else if (is(k, kn, "time"))
			p->time_ms = time_of(v, vn, ty);
		else if (is(k, kn, "in_per_s"))
			p->in_per_s = num_of(v, vn, ty);
		else if (is(k, kn, "out_per_s"))
			p->out_per_s = num_of(v, vn, ty);
		else if (is(k, kn, "lag_records"))
			p->lag_records = num_of(v, vn, ty);
		else if (is(k, kn, "lag_seconds"))
			p->lag_seconds = num_of(v, vn, ty);
		else if (is(k, kn, "data_age_ms"))
			p->data_age_ms = num_of(v, vn, ty);
		else if (is(k, kn, "ready"))
			p->ready = ty == DP_JSON_TRUE;
		else if (is(k, kn, "final"))
			p->final = ty == DP_JSON_TRUE;
		else if (is(k, kn, "machines") && ty == DP_JSON_ARRAY && machines_of(p, v, vn) < 0)
			return -1;
	}
	if (!p->command)
		p->command = strdup("?");
	if (!p->instance)
		p->instance = strdup(p->key);
	return p->command && p->instance ? 0 : -1;
}

static struct dp_top_inst *
find(struct dp_top *t, const char *key, size_t klen)
{
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->v[i].key) == klen && memcmp(t->v[i].key, key, klen) == 0)
			return &t->v[i];
	return NULL;
}

static void
drop(struct dp_top *t, struct dp_top_inst *p)
{
	inst_clear(p);
	free(p->key);
	*p = t->v[--t->n];
}

int
dp_top_record(struct dp_top *t, const void *key, size_t klen, const void *value, size_t len,
              const char *where)
{
	struct dp_top_inst *p, *grown;
	const char *why = NULL;         /* set by dp_json_check only when the text is not JSON */
	size_t off;

	if (!key || !klen || memchr(key, '\0', klen)) {
		dp_warn("%s: skipped: a status record needs a key (COMMAND/INSTANCE)", where);
		return 0;
	}
	p = find(t, key, klen);
	if (!value) {                   /* a tombstone: someone cleaned the process up */
		if (p)
			drop(t, p);
		return 0;
	}
	if (dp_json_check(value, len, &why, &off) != DP_JSON_OBJECT) {
		dp_warn("%s: skipped: not a status: %s", where,
		        why ? why : "not a JSON object");
		return 0;
	}
	if (!p) {
		if (!(grown = dp_grow(t->v, &t->cap, t->n + 1, sizeof(*grown), 16)))
			return -1;
		t->v = grown;
		p = &t->v[t->n];
		*p = (struct dp_top_inst){ 0 };
		if (!(p->key = strndup(key, klen)))
			return -1;
		t->n++;
	}
	inst_clear(p);
	if (!(p->value = malloc(len ? len : 1)))
		return -1;
	memcpy(p->value, value, len);
	p->vlen = len;
	return parse(p);
}

/* ---- the consumer ------------------------------------------------------------ */

static enum dp_consumer_verdict
on_record(struct dp_consumer *c, void *arg, struct dp_consumer_part *part,
          const rd_kafka_message_t *m)
{
	struct dp_top *t = arg;
	char where[320];

	snprintf(where, sizeof(where), "%s [%d] offset %lld", part->topic, (int)part->partition,
	         (long long)m->offset);
	if (dp_top_record(t, m->key, m->key_len, m->payload, m->len, where) < 0) {
		dp_err("out of memory");
		return DP_CONSUMER_AGAIN;
	}
	return DP_CONSUMER_NEXT;
}

struct dp_top *
dp_top_new(const struct dp_kafka_opts *kafka, const struct dp_top_opts *o, struct dp_buf *err,
           int *status)
{
	struct dp_top *t = calloc(1, sizeof(*t));
	/* A change should show within a refresh, not half a second later. */
	static const struct dp_kv defaults[] = { { "fetch.wait.max.ms", "100" } };

	if (!t) {
		dp_buf_msgf(err, "out of memory");
		*status = DP_EX_SOFTWARE;
		return NULL;
	}
	t->o = *o;
	const struct dp_consumer_opts copts = {
		.topics = &t->o.topic, .ntopics = 1, .from = DP_FROM_BEGINNING,
		.track_end = true, .defaults = defaults, .ndefaults = 1,
	};
	const struct dp_consumer_hooks hooks = { .arg = t, .record = on_record };
	if (!(t->c = dp_consumer_new(kafka, &copts, &hooks, err, status))) {
		free(t);
		return NULL;
	}
	return t;
}

void
dp_top_free(struct dp_top *t)
{
	if (!t)
		return;
	if (t->c && t->subscribed)
		dp_consumer_close(t->c);
	dp_consumer_free(t->c);
	for (size_t i = 0; i < t->n; i++) {
		inst_clear(&t->v[i]);
		free(t->v[i].key);
	}
	free(t->v);
	free(t->shown);
	free(t);
}

int
dp_top_subscribe(struct dp_top *t, struct dp_buf *err)
{
	size_t mark = err->len;
	int st = dp_consumer_connect(t->c, err);

	if (st == DP_EX_NOTFOUND)
		dp_buf_truncate(err, mark);
	t->subscribed = st == 0;
	return st;
}

/*
 * No status topic yet: is it there now (a short look, once a second)?
 * Then it is read from its beginning.  0, DP_KAFKA_STOPPED, or an exit
 * status with a message in err.
 */
static int
look_again(struct dp_top *t, int64_t wait_ms, struct dp_buf *err)
{
	int64_t now = dp_time_mono_ms();
	size_t mark = err->len;
	int st;

	if (now < t->next_look) {
		int64_t ms = t->next_look - now < wait_ms ? t->next_look - now : wait_ms;
		if (ms > 0 && dp_backoff_sleep(ms, &dp_sig_stop) < 0)
			return DP_KAFKA_STOPPED;
		return dp_sig_stop ? DP_KAFKA_STOPPED : 0;
	}
	t->next_look = now + 1000;
	st = dp_kafka_probe(dp_consumer_rk(t->c), t->o.topic, 500, NULL, err);
	dp_buf_truncate(err, mark);
	if (st == DP_KAFKA_STOPPED)
		return st;
	if (st)
		return 0;               /* not there yet, or no answer: look again later */
	st = dp_top_subscribe(t, err);
	if (st == 0)
		dp_info("status topic '%s' exists now: reading it", t->o.topic);
	return st == DP_EX_NOTFOUND ? 0 : st;
}

/* Every partition taken has been read to its end as it was. */
static bool
all_caught_up(const struct dp_top *t)
{
	size_t n;
	struct dp_consumer_part *const *parts = dp_consumer_parts(t->c, &n);

	for (size_t i = 0; i < n; i++)
		if (parts[i]->assigned && !parts[i]->caught_up)
			return false;
	return n > 0;
}

enum dp_top_result
dp_top_consume(struct dp_top *t, int64_t deadline, bool (*quit)(void *), void *arg,
               struct dp_buf *err, int *status)
{
	for (;;) {
		int64_t left = deadline - dp_time_mono_ms();
		if (quit && quit(arg))
			return DP_TOP_QUIT;
		if (!t->caught && t->subscribed && all_caught_up(t)) {
			t->caught = true;
			return DP_TOP_CAUGHT_UP;
		}
		if (left <= 0)
			return DP_TOP_TICK;
		if (!t->subscribed) {   /* no topic yet: wait, and look again */
			int st = look_again(t, left < 100 ? left : 100, err);
			if (st == DP_KAFKA_STOPPED)
				return DP_TOP_SIGNAL;
			if (st) {
				*status = st;
				return DP_TOP_FAILED;
			}
			continue;
		}
		switch (dp_consumer_poll(t->c, left < 100 ? (int)left : 100, err, status)) {
		case DP_CONSUMER_SIGNAL:
			return DP_TOP_SIGNAL;
		case DP_CONSUMER_FAILED:
			if (!*status)
				*status = DP_EX_UNAVAILABLE;
			return DP_TOP_FAILED;
		default:
			break;
		}
	}
}

bool
dp_top_caught_up(const struct dp_top *t)
{
	return t->caught;
}

/* ---- the snapshot ---------------------------------------------------------- */

static enum dp_top_actor
actor_of(const char *command)
{
	for (size_t i = 0; i < sizeof(actors) / sizeof(actors[0]); i++)
		if (strcmp(actors[i].command, command) == 0)
			return actors[i].actor;
	return DP_TOP_OTHER;
}

static int
by_actor(const void *a, const void *b)
{
	const struct dp_top_inst *x = *(struct dp_top_inst *const *)a;
	const struct dp_top_inst *y = *(struct dp_top_inst *const *)b;
	int c;

	if (x->actor != y->actor)
		return x->actor < y->actor ? -1 : 1;
	if (x->status != y->status)
		return x->status < y->status ? -1 : 1;
	if ((c = strcmp(x->command, y->command)) != 0)
		return c;
	return strcmp(x->key, y->key);
}

struct dp_top_counts
dp_top_snapshot(struct dp_top *t, int64_t now)
{
	struct dp_top_counts n = { 0 };
	struct dp_top_inst **v = dp_grow(t->shown, &t->shown_cap, t->n, sizeof(*v), 16);

	t->now_ms = now;
	t->nshown = 0;
	if (!v)
		return n;               /* nothing shown rather than a wrong view */
	t->shown = v;
	for (size_t i = 0; i < t->n; i++) {
		struct dp_top_inst *p = &t->v[i];
		int64_t gone = t->o.gone_after_ms ? t->o.gone_after_ms
		             : 3 * (p->interval_ms > 0 ? p->interval_ms : 5000);
		/*
		 * The record's time is its host's clock: one ahead of ours is
		 * as far off as one behind (skew), and its age is no less than 0.
		 * -1: no time at all.
		 */
		int64_t age = now - p->time_ms;
		int64_t skew = p->time_ms < 0 ? -1 : age < 0 ? -age : age;
		p->age_ms = p->time_ms < 0 ? -1 : age < 0 ? 0 : age;
		p->actor = actor_of(p->command);
		if (p->final)
			p->status = DP_TOP_STOPPED;
		else if (skew < 0 || skew > gone)
			p->status = DP_TOP_GONE;
		else
			p->status = DP_TOP_RUNNING;
		if (p->status != DP_TOP_RUNNING && t->o.forget_after_ms &&
		    (skew < 0 || skew > t->o.forget_after_ms))
			continue;
		t->shown[t->nshown++] = p;
		if (p->status == DP_TOP_RUNNING)
			n.running++;
		else if (p->status == DP_TOP_STOPPED)
			n.stopped++;
		else
			n.gone++;
	}
	qsort(t->shown, t->nshown, sizeof(*t->shown), by_actor);
	t->counts = n;
	return n;
}
