/*
 * dyn/follow.c -- following dynamic topics as the registry makes, retires
 * and deletes them (dyn/follow.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "dyn/follow.h"
#include "dyn/registry.h"
#include "kafka/client.h"
#include "kafka/consumer.h"

/* Why a followed topic is read no more. */
enum fin { FIN_NO, FIN_END, FIN_GONE };

/* The registry is looked at after a poll of the consumer at most this often. */
#define POLL_EVERY_MS 100

/* A dynamic topic followed: named, or found by the match. */
struct followed {
	char *topic;
	bool named;              /* by name: once finished, for good */
	bool reading;            /* added to the consumer */
	bool ending;             /* retired or deleted: read up to its end, then drop */
	bool finished;           /* read to its end, or gone: see fin */
	enum fin fin;            /* read to its end (retired, or to_end), or deleted before */
	bool has_id;             /* id is known: the topic was read */
	int64_t id;              /* the created_at of the topic read (or last read) */
	int64_t *resume;         /* FIN_END: where each partition stopped; owned */
	size_t capresume;
	int32_t nresume;
	bool resuming;           /* taken back: its partitions go on at resume[] */
};

struct dp_follow {
	struct dp_follow_conf conf;
	struct dp_consumer *c;   /* borrowed */
	struct dp_registry *reg;
	struct followed *fl;
	size_t nfl, capfl;
	int64_t polled;          /* when the registry was last polled (monotonic ms) */
	bool changed;            /* it changed since the last survey */
	struct dp_buf err;
};

/* A followed topic; NULL when memory runs out. */
static struct followed *
add_followed(struct dp_follow *f, const char *name, bool named)
{
	struct followed *v = dp_grow(f->fl, &f->capfl, f->nfl + 1, sizeof(*v), 4);

	if (!v)
		return NULL;
	f->fl = v;
	v = &v[f->nfl];
	memset(v, 0, sizeof(*v));
	v->named = named;
	if (!(v->topic = strdup(name)))
		return NULL;
	f->nfl++;
	return v;
}

struct dp_follow *
dp_follow_new(const struct dp_follow_conf *conf)
{
	struct dp_follow *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->conf = *conf;
	f->conf.names = NULL;   /* copied into fl */
	f->conf.nnames = 0;
	for (size_t i = 0; i < conf->nnames; i++)
		if (!add_followed(f, conf->names[i], true)) {
			dp_follow_free(f);
			return NULL;
		}
	return f;
}

void
dp_follow_free(struct dp_follow *f)
{
	if (!f)
		return;
	dp_registry_free(f->reg);
	for (size_t i = 0; i < f->nfl; i++) {
		free(f->fl[i].topic);
		free(f->fl[i].resume);
	}
	free(f->fl);
	dp_buf_free(&f->err);
	free(f);
}

static struct followed *
followed_of(struct dp_follow *f, const char *topic)
{
	for (size_t i = 0; i < f->nfl; i++)
		if (strcmp(f->fl[i].topic, topic) == 0)
			return &f->fl[i];
	return NULL;
}

/* The registry changed: look at it after the poll, outside the callback. */
static void
on_registry(void *arg, const char *topic, const struct dp_dyn_spec *old,
            const struct dp_dyn_spec *now, int64_t offset)
{
	struct dp_follow *f = arg;

	f->changed = true;
}

/*
 * A followed topic was deleted: say which partitions were not read to
 * their end, since what was after is gone (never silently), and tell
 * conf.unread.
 */
static void
warn_unread(struct dp_follow *f, const char *topic)
{
	struct dp_consumer_part *const *parts;
	size_t n;

	parts = dp_consumer_parts(f->c, &n);
	for (size_t i = 0; i < n; i++) {
		const struct dp_consumer_part *p = parts[i];
		if (strcmp(p->topic, topic) != 0 || !p->assigned || p->at_eof || p->caught_up)
			continue;
		/* Read up to the end the last fetch showed: nothing was lost. */
		int64_t end = dp_consumer_seen_end(f->c, p);
		if (p->next >= 0 && end != DP_CONSUMER_NO_OFFSET && p->next >= end)
			continue;
		if (f->conf.unread)
			f->conf.unread(f->conf.arg);
		if (p->next >= 0)
			dp_warn("dynamic topic '%s' was deleted before it was read to its end: "
			        "partition %d from offset %lld on was not read", topic,
			        (int)p->partition, (long long)p->next);
		else
			dp_warn("dynamic topic '%s' was deleted before it was read to its end: "
			        "partition %d was not read", topic, (int)p->partition);
	}
}

/*
 * fl is read no more (why): finished, unless the registry shows a topic
 * under its name to read now -- the same one taken back after it was
 * retired and read to its end (not with to_end), or another one made
 * after it was deleted (for a named one only when the one read was
 * deleted before it was read to its end).
 */
static void
settle(struct dp_follow *f, struct followed *fl, enum fin why)
{
	const struct dp_dyn_spec *s = dp_registry_get(f->reg, fl->topic);

	fl->reading = fl->ending = fl->resuming = false;
	fl->finished = true;
	fl->fin = why;
	if (!s || s->state != DP_DYN_ACTIVE)
		return;
	bool same = fl->has_id && s->created_at == fl->id, again;
	if (same)
		again = why == FIN_END && !f->conf.to_end;
	else if (fl->named)
		again = why == FIN_GONE;
	else
		again = dp_dyn_spec_matches(s, f->conf.match, "--follow-match");
	if (again) {
		fl->finished = false;
		fl->fin = FIN_NO;
		fl->resuming = same;
	}
}

/* Keep where each partition of fl's topic stopped, for a taken-back topic. */
static void
keep_positions(struct dp_follow *f, struct followed *fl)
{
	struct dp_consumer_part *const *parts;
	size_t n;
	int32_t most = 0;

	parts = dp_consumer_parts(f->c, &n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(parts[i]->topic, fl->topic) && parts[i]->partition >= most)
			most = parts[i]->partition + 1;
	int64_t *v = most ? dp_grow(fl->resume, &fl->capresume, (size_t)most, sizeof(*v), 1)
	                  : NULL;
	if (!v) {
		/* Out of memory: it would be read again from its beginning. */
		free(fl->resume);
		fl->resume = NULL;
		fl->capresume = 0;
		fl->nresume = 0;
		return;
	}
	for (int32_t k = 0; k < most; k++)
		v[k] = -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(parts[i]->topic, fl->topic))
			v[parts[i]->partition] = parts[i]->next;
	fl->resume = v;
	fl->nresume = most;
}

/* fl's topic is deleted: what was not read is said, and it leaves the consumer. */
static void
lost(struct dp_follow *f, struct followed *fl)
{
	warn_unread(f, fl->topic);
	dp_consumer_drop_topic(f->c, fl->topic);
	settle(f, fl, FIN_GONE);
	if (!fl->finished)
		dp_info("dynamic topic '%s' was made again: reading the new one from its "
		        "beginning", fl->topic);
}

/*
 * Bring the followed topics in line with the registry: new matches, a
 * topic read that is retired or deleted is read up to its end as it is
 * now (what was fetched of a deleted one too), and one with another topic
 * under its name now is dropped at once, with what it still held said.
 * 0, or -1 when memory ran out.
 */
static int
survey(struct dp_follow *f)
{
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(f->reg, &n);

	f->changed = false;
	for (size_t i = 0; f->conf.match && i < n; i++) {
		struct followed *fl = followed_of(f, v[i]->topic);
		if (v[i]->state != DP_DYN_ACTIVE)
			continue;
		if (fl && fl->finished && !fl->named && !fl->reading) {
			/* Taken back, or made anew after it went: read it again. */
			settle(f, fl, fl->fin);
			continue;
		}
		if (!fl && dp_dyn_spec_matches(v[i], f->conf.match, "--follow-match") &&
		    !add_followed(f, v[i]->topic, false))
			return -1;
	}
	for (size_t i = 0; i < f->nfl; i++) {
		struct followed *fl = &f->fl[i];
		const struct dp_dyn_spec *s = dp_registry_get(f->reg, fl->topic);
		if (!fl->reading)
			continue;
		if (s && fl->has_id && s->created_at != fl->id) {
			/*
			 * Its fetchers would read on into the new topic as if it
			 * were this one: it goes now, with what it still held.
			 */
			dp_info("dynamic topic '%s' was deleted and another made under its name",
			        fl->topic);
			lost(f, fl);
			continue;
		}
		/* Deleted (a tombstone), nothing made since: what was fetched is read. */
		if (fl->ending || (s && s->state == DP_DYN_ACTIVE))
			continue;
		dp_info("dynamic topic '%s' is %s: reading it up to its end", fl->topic,
		        s ? dp_dyn_state_name(s->state) : "deleted");
		fl->ending = true;
		dp_buf_reset(&f->err);
		int st = dp_consumer_end_topic(f->c, fl->topic, &f->err);
		if (st == DP_KAFKA_STOPPED)
			return 0;               /* the caller sees the signal */
		if (st) {
			dp_info("dynamic topic '%s' is gone: %s", fl->topic, dp_buf_str(&f->err));
			lost(f, fl);
		}
	}
	return 0;
}

int
dp_follow_start(struct dp_follow *f, struct dp_consumer *c, struct dp_buf *err)
{
	const struct dp_registry_conf rconf = {
		.kafka = f->conf.kafka, .topic = f->conf.registry, .change = on_registry, .arg = f,
		.missing_ok = true,
	};
	int st;

	f->c = c;
	if (!(f->reg = dp_registry_new(&rconf, err, &st)))
		return st;
	if ((st = dp_registry_load(f->reg, err)) != 0)
		return st;
	if (survey(f) < 0) {
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	return 0;
}

int
dp_follow_poll(struct dp_follow *f, int ms, struct dp_buf *err)
{
	int64_t now = dp_time_mono_ms();
	int st;

	if (ms == 0 && now - f->polled < POLL_EVERY_MS)
		return 0;
	f->polled = now;
	dp_buf_reset(&f->err);
	if ((st = dp_registry_poll(f->reg, ms, &f->err)) == DP_KAFKA_STOPPED || dp_sig_stop)
		return DP_KAFKA_STOPPED;
	if (st) {
		dp_buf_msgf(err, "registry: %s", dp_buf_str(&f->err));
		return st;
	}
	if (f->changed && survey(f) < 0) {
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	return dp_sig_stop ? DP_KAFKA_STOPPED : 0;
}

int
dp_follow_subscribe(struct dp_follow *f, struct dp_buf *err)
{
	for (size_t i = 0; i < f->nfl; i++) {
		struct followed *fl = &f->fl[i];
		const struct dp_dyn_spec *s = dp_registry_get(f->reg, fl->topic);
		if (fl->reading || fl->finished || !s || s->state != DP_DYN_ACTIVE)
			continue;
		dp_buf_reset(&f->err);
		int st = dp_consumer_add_topic(f->c, fl->topic, &f->err);
		if (st == DP_KAFKA_STOPPED)
			return st;
		if (st) {
			dp_buf_msgf(err, "cannot read dynamic topic '%s': %s", fl->topic,
			            dp_buf_str(&f->err));
			return st;
		}
		dp_info("reading dynamic topic '%s'", fl->topic);
		fl->reading = true;
		fl->id = s->created_at;
		fl->has_id = true;
	}
	return 0;
}

void
dp_follow_finish(struct dp_follow *f)
{
	for (size_t i = 0; i < f->nfl; i++) {
		struct followed *fl = &f->fl[i];
		if (!fl->reading || !dp_consumer_topic_done(f->c, fl->topic))
			continue;
		dp_info("dynamic topic '%s' read to its end", fl->topic);
		keep_positions(f, fl);
		dp_consumer_drop_topic(f->c, fl->topic);
		settle(f, fl, FIN_END);
		if (fl->resuming)
			dp_info("dynamic topic '%s' is active again: reading on", fl->topic);
	}
}

enum dp_follow_next
dp_follow_next(const struct dp_follow *f)
{
	bool reading = false, finished = !f->conf.match;

	for (size_t i = 0; i < f->nfl; i++) {
		const struct followed *fl = &f->fl[i];
		const struct dp_dyn_spec *s = dp_registry_get(f->reg, fl->topic);
		if (!fl->reading && !fl->finished && s && s->state == DP_DYN_ACTIVE)
			return DP_FOLLOW_ADD;
		reading |= fl->reading;
		finished &= fl->finished;
	}
	if (reading)
		return DP_FOLLOW_READING;
	return finished ? DP_FOLLOW_DONE : DP_FOLLOW_WAIT;
}

void
dp_follow_assigned(struct dp_follow *f, struct dp_consumer_part **parts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct followed *fl = followed_of(f, parts[i]->topic);
		if (fl && fl->resuming && parts[i]->partition < fl->nresume &&
		    fl->resume[parts[i]->partition] >= 0)
			parts[i]->start = fl->resume[parts[i]->partition];
	}
}

/*
 * Finished: it has no more records.  But when the registry shows the very
 * topic being read, and the cluster has it, the report was about an
 * earlier topic of that name (librdkafka says so by name only): never
 * charged to this one.
 */
int
dp_follow_gone(struct dp_follow *f, const char *topic)
{
	struct followed *fl = followed_of(f, topic);
	const struct dp_dyn_spec *s = dp_registry_get(f->reg, topic);

	if (!fl)
		return DP_EX_UNAVAILABLE;
	if (s && s->state == DP_DYN_ACTIVE && fl->has_id && s->created_at == fl->id) {
		struct dp_buf err = DP_BUF_INIT;
		int st = dp_kafka_probe(dp_consumer_rk(f->c), topic, 2000, NULL, &err);
		dp_buf_free(&err);
		if (st == 0) {
			dp_debug("dynamic topic '%s': a report about an earlier topic of that name "
			         "ignored", topic);
			return DP_CONSUMER_KEEP;
		}
	}
	dp_info("dynamic topic '%s' was deleted: it is read no more", topic);
	warn_unread(f, topic);
	/* The consumer drops it when this returns. */
	settle(f, fl, FIN_GONE);
	if (!fl->finished)
		dp_info("dynamic topic '%s' was made again: reading the new one from its "
		        "beginning", topic);
	return 0;
}
