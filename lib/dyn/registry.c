/*
 * dyn/registry.c -- the live view of the registry (dyn/registry.h), on the
 * consumer engine without a group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/exit.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "dyn/registry.h"
#include "kafka/client.h"
#include "kafka/consumer.h"

struct dp_registry {
	struct dp_registry_conf conf;
	struct dp_consumer *c;
	struct dp_dyn_spec **v;     /* owned */
	size_t n;
	bool loaded;
	bool progress;              /* a record arrived in the last poll */
	bool absent;                /* missing_ok: the topic is not there yet */
	int64_t next_look;          /* ... when to look again (monotonic ms) */
};

static size_t
find(const struct dp_registry *r, const char *topic)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i]->topic, topic) == 0)
			return i;
	return (size_t)-1;
}

const struct dp_dyn_spec *
dp_registry_get(const struct dp_registry *r, const char *topic)
{
	size_t i = find(r, topic);

	return i == (size_t)-1 ? NULL : r->v[i];
}

const struct dp_dyn_spec *const *
dp_registry_specs(const struct dp_registry *r, size_t *n)
{
	*n = r->n;
	return (const struct dp_dyn_spec *const *)r->v;
}

size_t
dp_registry_count(const struct dp_registry *r, enum dp_dyn_state state)
{
	size_t k = 0;

	for (size_t i = 0; i < r->n; i++)
		k += r->v[i]->state == state;
	return k;
}

/* The key as a C string, or NULL when it cannot be a topic name. */
static char *
key_of(const rd_kafka_message_t *m)
{
	if (!m->key || !m->key_len || memchr(m->key, '\0', m->key_len))
		return NULL;
	return strndup(m->key, m->key_len);
}

static void
tombstone(struct dp_registry *r, const char *topic, int64_t offset)
{
	size_t i = find(r, topic);

	if (i == (size_t)-1)
		return;
	struct dp_dyn_spec *old = r->v[i];
	r->v[i] = r->v[--r->n];
	if (r->conf.change)
		r->conf.change(r->conf.arg, topic, old, NULL, offset);
	dp_dyn_spec_clear(old);
	free(old);
}

static int
put(struct dp_registry *r, struct dp_dyn_spec *s, int64_t offset)
{
	size_t i = find(r, s->topic);
	struct dp_dyn_spec *now = malloc(sizeof(*now));

	if (!now)
		return -1;
	*now = *s;
	if (i == (size_t)-1) {
		struct dp_dyn_spec **v = realloc(r->v, (r->n + 1) * sizeof(*v));
		if (!v) {
			free(now);
			return -1;
		}
		r->v = v;
		r->v[r->n++] = now;
		if (r->conf.change)
			r->conf.change(r->conf.arg, now->topic, NULL, now, offset);
		return 0;
	}
	struct dp_dyn_spec *old = r->v[i];
	r->v[i] = now;
	if (r->conf.change)
		r->conf.change(r->conf.arg, now->topic, old, now, offset);
	dp_dyn_spec_clear(old);
	free(old);
	return 0;
}

static enum dp_consumer_verdict
on_record(struct dp_consumer *c, void *arg, struct dp_consumer_part *p,
          const rd_kafka_message_t *m)
{
	struct dp_registry *r = arg;
	struct dp_buf why = DP_BUF_INIT;
	struct dp_dyn_spec s;
	char *key = key_of(m);

	r->progress = true;
	if (r->conf.record) {
		char where[300];
		snprintf(where, sizeof(where), "%s offset %lld", p->topic, (long long)m->offset);
		free(key);
		return r->conf.record(r->conf.arg, where, m->key, m->key_len, m->payload,
		                      m->len) < 0 ? DP_CONSUMER_AGAIN : DP_CONSUMER_NEXT;
	}
	if (!key) {
		dp_warn("registry %s offset %lld: skipped: no key naming a topic", p->topic,
		        (long long)m->offset);
		return DP_CONSUMER_NEXT;
	}
	if (!m->payload) {
		tombstone(r, key, m->offset);
		free(key);
		return DP_CONSUMER_NEXT;
	}
	if (dp_dyn_spec_parse(m->payload, m->len, &s, &why) < 0) {
		dp_warn("registry %s offset %lld (key '%s'): skipped: %s", p->topic,
		        (long long)m->offset, key, dp_buf_str(&why));
	} else if (strcmp(s.topic, key) != 0) {
		dp_warn("registry %s offset %lld: skipped: key '%s' is not its topic '%s'",
		        p->topic, (long long)m->offset, key, s.topic);
	} else if (put(r, &s, m->offset) == 0) {
		free(key);
		dp_buf_free(&why);
		return DP_CONSUMER_NEXT;        /* s moved into the view */
	} else {
		dp_err("registry: out of memory");
		dp_dyn_spec_clear(&s);
		free(key);
		dp_buf_free(&why);
		return DP_CONSUMER_AGAIN;
	}
	dp_dyn_spec_clear(&s);
	free(key);
	dp_buf_free(&why);
	return DP_CONSUMER_NEXT;
}

static void
on_caught_up(struct dp_consumer *c, void *arg, struct dp_consumer_part *p)
{
	struct dp_registry *r = arg;

	r->loaded = true;
}

struct dp_registry *
dp_registry_new(const struct dp_registry_conf *conf, struct dp_buf *err, int *status)
{
	struct dp_registry *r = calloc(1, sizeof(*r));
	/* A follower should see a change within a poll or two, not 500 ms. */
	static const struct dp_kv defaults[] = {
		{ "fetch.wait.max.ms", "100" },
	};

	if (!r) {
		dp_buf_msgf(err, "out of memory");
		*status = DP_EX_SOFTWARE;
		return NULL;
	}
	r->conf = *conf;
	if (!r->conf.topic)
		r->conf.topic = DP_REGISTRY_DEFAULT;
	const struct dp_consumer_opts opts = {
		.topics = &r->conf.topic, .ntopics = 1, .from = DP_FROM_BEGINNING,
		.track_end = true, .defaults = defaults, .ndefaults = 1, .metrics = conf->metrics,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = r, .record = on_record, .caught_up = on_caught_up,
	};
	r->c = dp_consumer_new(conf->kafka, &opts, &hooks, err, status);
	if (!r->c) {
		free(r);
		return NULL;
	}
	return r;
}

void
dp_registry_free(struct dp_registry *r)
{
	if (!r)
		return;
	dp_consumer_free(r->c);
	for (size_t i = 0; i < r->n; i++) {
		dp_dyn_spec_clear(r->v[i]);
		free(r->v[i]);
	}
	free(r->v);
	free(r);
}

bool
dp_registry_absent(const struct dp_registry *r)
{
	return r->absent;
}

/* missing_ok: is the registry there now?  Then it is read from its beginning. */
static int
look_again(struct dp_registry *r, int timeout_ms, struct dp_buf *err)
{
	int64_t now = dp_time_mono_ms();

	if (now < r->next_look) {
		int64_t ms = r->next_look - now < timeout_ms ? r->next_look - now : timeout_ms;
		if (ms > 0 && dp_backoff_sleep(ms, &dp_sig_stop) < 0)
			return DP_KAFKA_STOPPED;
		return dp_sig_stop ? DP_KAFKA_STOPPED : 0;
	}
	r->next_look = now + 1000;
	/* A short look: the follower's own work must not wait on it. */
	size_t mark = err->len;
	int st = dp_kafka_probe(dp_consumer_rk(r->c), r->conf.topic, 500, NULL, err);
	dp_buf_truncate(err, mark);
	if (st == DP_KAFKA_STOPPED)
		return st;
	if (st)
		return 0;               /* not there yet, or no answer: look again later */
	st = dp_consumer_connect(r->c, err);
	if (st == 0) {
		r->absent = false;
		dp_info("registry '%s' exists now: following it", r->conf.topic);
	}
	return st;
}

int
dp_registry_poll(struct dp_registry *r, int timeout_ms, struct dp_buf *err)
{
	int st = 0;

	r->progress = false;
	if (r->absent)
		return look_again(r, timeout_ms, err);
	switch (dp_consumer_poll(r->c, timeout_ms, err, &st)) {
	case DP_CONSUMER_SIGNAL:
		return DP_KAFKA_STOPPED;
	case DP_CONSUMER_FAILED:
		return st ? st : DP_EX_UNAVAILABLE;
	default:
		return 0;
	}
}

/* The offset of the next registry record the view will take; -1 unknown. */
static int64_t
next_offset(const struct dp_registry *r)
{
	size_t n;
	struct dp_consumer_part *const *parts = dp_consumer_parts(r->c, &n);

	for (size_t i = 0; i < n; i++)
		if (parts[i]->partition == 0)
			return parts[i]->next;
	return -1;
}

int
dp_registry_sync(struct dp_registry *r, int64_t offset, struct dp_buf *err)
{
	int64_t timeout = r->conf.kafka->timeout_ms;
	int64_t deadline = dp_time_mono_ms() + timeout;
	int st;

	if (offset < 0) {
		int64_t lo, hi;
		st = dp_kafka_watermarks(dp_consumer_rk(r->c), r->conf.topic, 0, (int)timeout,
		                         &lo, &hi, err);
		if (st)
			return st;
		if (hi <= lo)
			return 0;
		offset = hi - 1;
	}
	while (next_offset(r) <= offset) {
		if ((st = dp_registry_poll(r, 100, err)) != 0)
			return st;
		if (r->progress)
			deadline = dp_time_mono_ms() + timeout;
		else if (dp_time_mono_ms() >= deadline) {
			char d[48];
			dp_buf_msgf(err, "cannot read registry '%s' up to offset %lld: no answer "
			            "within %s", r->conf.topic, (long long)offset,
			            dp_duration_format(timeout, d));
			return DP_EX_UNAVAILABLE;
		}
	}
	return 0;
}

int
dp_registry_load(struct dp_registry *r, struct dp_buf *err)
{
	int st = dp_consumer_connect(r->c, err);
	int64_t timeout = r->conf.kafka->timeout_ms;
	int64_t deadline = dp_time_mono_ms() + timeout;

	if (st == DP_EX_NOTFOUND && r->conf.missing_ok) {
		dp_buf_reset(err);
		dp_warn("registry '%s' does not exist yet: waiting for a dp-coord serve to make it",
		        r->conf.topic);
		r->absent = r->loaded = true;
		r->next_look = dp_time_mono_ms() + 1000;
		return 0;
	}
	if (st)
		return st;
	while (!r->loaded) {
		if ((st = dp_registry_poll(r, 100, err)) != 0)
			return st;
		/* A registry that stops answering halfway is not current. */
		if (r->progress)
			deadline = dp_time_mono_ms() + timeout;
		else if (dp_time_mono_ms() >= deadline) {
			char d[48];
			dp_buf_msgf(err, "cannot read registry '%s': no answer within %s",
			            r->conf.topic, dp_duration_format(timeout, d));
			return DP_EX_UNAVAILABLE;
		}
	}
	return 0;
}
