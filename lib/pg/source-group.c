/*
 * pg/source-group.c -- a sink's records from a consumer group
 * (pg/source.h): dp-sink-pg -t -g.
 *
 * Each partition is a sink source.  The consumer's record hook only
 * copies each record into the inbox (bounded in bytes: what does not fit
 * comes again at the next poll); the sink takes them from there.  A
 * partition starts where the offsets table says (the assigned hook reads
 * it); a revoked one has its batches finished (or rolled back) first;
 * during a database outage the partitions are paused and the consumer is
 * still polled, so the process stays in the group.  The stored offsets
 * are committed to the group in Kafka too, at most once a second: the
 * table is what counts, Kafka's copy is for lag tools.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "kafka/consumer.h"
#include "kafka/onerror.h"
#include "pg/source.h"

#define KAFKA_COMMIT_MS 1000            /* offsets to Kafka at most this often */
#define IDLE_POLL_MS 250                /* an outage's polls */

/* A record the consumer handed over, waiting in the inbox to be processed. */
struct inrec {
	struct dp_consumer_part *part;
	int64_t offset;
	size_t pos;                     /* its key, value and headers, in the inbox's data */
	size_t klen, vlen, hlen;        /* hlen: packed (kafka/onerror.h), with keep_headers only */
	bool has_key, has_value;
};

/* What the source keeps about a partition (its part->user). */
struct pstate {
	struct dp_pgsink_src *src;      /* its sink source, NULL until first acquired */
	bool acquired;                  /* the sink source takes its records */
	bool waiting;                   /* assigned while the database was away: paused,
	                                   start unknown until the reconnect */
	bool held;                      /* paused for an outage */
	int64_t committed;              /* the offset last committed to Kafka, -1 none */
};

struct group {
	struct dp_source base;
	struct dp_source_group_conf conf;
	struct dp_source_hooks hooks;
	struct dp_consumer *c;
	struct dp_buf inbox;            /* the records' bytes */
	struct inrec *inrecs;
	size_t nin, capin, in_next;     /* inrecs[in_next..nin) wait */
	struct dp_consumer_part **moved;        /* the partitions of a rebalance event */
	size_t nmoved;
	int hook_status;                /* the last rebalance hook's status */
	int deferred;                   /* a failure seen inside a hook, for the next write */
	struct dp_buf deferred_why;
	bool outage;                    /* the database is away: partitions stay paused */
	bool at_end;                    /* every partition reached its end (-e) */
	bool said_reset;                /* how to go on after an offset past the end */
	int64_t commit_ms;              /* the last commit to Kafka */
	struct dp_buf err;
	struct dp_buf why;
};

static void
defer(struct group *g, int st, const struct dp_buf *why)
{
	if (g->deferred || !st)
		return;
	g->deferred = st;
	dp_buf_reset(&g->deferred_why);
	if (why && (why->len || why->lost))
		dp_buf_msgf(&g->deferred_why, "%s", dp_buf_str(why));
}

/* The partitions' stored offsets to the group, for dp-topic offsets and lag tools. */
static void
group_commit(struct dp_source *s, bool wait)
{
	struct group *g = (struct group *)s;
	struct dp_consumer_part *const *parts;
	rd_kafka_topic_partition_list_t *l;
	size_t n;
	int64_t now = dp_time_mono_ms();

	if (!g->c || (!wait && now - g->commit_ms < KAFKA_COMMIT_MS))
		return;
	g->commit_ms = now;
	parts = dp_consumer_parts(g->c, &n);
	l = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (!parts[i]->assigned || !ps || !ps->src || !ps->acquired)
			continue;
		int64_t at = dp_pgsink_stored(ps->src);
		if (at < 0 || at == ps->committed)
			continue;
		rd_kafka_topic_partition_list_add(l, parts[i]->topic, parts[i]->partition)->offset = at;
		ps->committed = at;
	}
	if (l->cnt > 0) {
		dp_buf_reset(&g->err);
		if (dp_consumer_commit(g->c, l, !wait, &g->err) != 0)
			/* The table and its offsets are right; only lag tools lag. */
			dp_warn("cannot commit offsets to kafka for group '%s': %s", g->conf.group,
			        dp_buf_str(&g->err));
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* The committed hook: an asynchronous commit's result. */
static void
on_committed(struct dp_consumer *c, void *arg, rd_kafka_resp_err_t err,
             const rd_kafka_topic_partition_list_t *offsets)
{
	struct dp_consumer_part *const *parts;
	size_t n;

	(void)arg;
	(void)offsets;
	if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
		return;
	dp_info("committing offsets to kafka failed: %s (tried again later)",
	        rd_kafka_err2str(err));
	parts = dp_consumer_parts(c, &n);
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (ps)
			ps->committed = -1;
	}
}

/* Drop the inbox's records of p: they come again from where its source resumes. */
static void
purge(struct group *g, const struct dp_consumer_part *p)
{
	size_t j = g->in_next;

	for (size_t i = g->in_next; i < g->nin; i++)
		if (g->inrecs[i].part != p)
			g->inrecs[j++] = g->inrecs[i];
	g->nin = j;
}

/* The record hook: into the inbox; the sink takes it from there. */
static enum dp_consumer_verdict
on_record(struct dp_consumer *c, void *arg, struct dp_consumer_part *p,
          const rd_kafka_message_t *m)
{
	struct group *g = arg;
	const struct pstate *ps = p->user;
	size_t klen = m->key ? m->key_len : 0, vlen = m->payload ? m->len : 0;

	(void)c;
	if (!ps || !ps->acquired)
		return DP_CONSUMER_AGAIN;       /* not ours yet: it comes again after the resume */
	/* Bounded in bytes: what does not fit comes again at the next poll. */
	if (g->nin > g->in_next && g->inbox.len + klen + vlen > g->conf.inbox_bytes)
		return DP_CONSUMER_AGAIN;
	struct inrec *v = dp_grow(g->inrecs, &g->capin, g->nin + 1, sizeof(*v), 1024);
	if (!v)
		goto nomem;
	g->inrecs = v;
	struct inrec *r = &g->inrecs[g->nin];
	r->part = p;
	r->offset = m->offset;
	r->pos = g->inbox.len;
	r->klen = klen;
	r->vlen = vlen;
	r->has_key = m->key != NULL;
	r->has_value = m->payload != NULL;
	if ((klen && dp_buf_add(&g->inbox, m->key, klen) < 0) ||
	    (vlen && dp_buf_add(&g->inbox, m->payload, vlen) < 0))
		goto nomem;
	/* Only a dead letter needs the headers: nobody else pays for them. */
	size_t before = g->inbox.len;
	if (g->conf.keep_headers && dp_on_error_pack_headers(m, &g->inbox) < 0)
		goto nomem;
	r->hlen = g->inbox.len - before;
	g->nin++;
	return DP_CONSUMER_NEXT;
nomem:
	dp_err("out of memory");
	g->hook_status = DP_EX_SOFTWARE;
	return DP_CONSUMER_HALT;
}

/* A rebalance event through the caller (its machine): the hook's status. */
static int
rebalanced(struct group *g, int ev, struct dp_consumer_part **parts, size_t n)
{
	g->moved = parts;
	g->nmoved = n;
	g->hook_status = g->hooks.rebalance ? g->hooks.rebalance(g->hooks.arg, ev)
	                 : ev == DP_SOURCE_ASSIGNED ? dp_source_assigned(&g->base)
	                                            : dp_source_revoked(&g->base, true);
	return g->hook_status;
}

static int
on_assigned(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts, size_t n)
{
	(void)c;
	return rebalanced(arg, DP_SOURCE_ASSIGNED, parts, n);
}

static int
on_revoked(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts, size_t n)
{
	(void)c;
	return rebalanced(arg, DP_SOURCE_REVOKED, parts, n);
}

/*
 * Start p from its sink source's stored offset.  0; DP_PGSINK_DOWN (p
 * waits, paused, for the reconnect); or an exit status after saying why.
 */
static int
start_part(struct group *g, struct dp_consumer_part *p, bool released)
{
	struct pstate *ps = p->user;
	int st = 0;

	dp_buf_reset(&g->err);
	ps->src = dp_pgsink_source(g->base.sink, g->conf.group, p->topic, p->partition, true,
	                           &g->err, &st);
	if (!ps->src && st == DP_PGSINK_DOWN) {
		ps->waiting = true;
		dp_buf_reset(&g->why);
		if (dp_consumer_pause(g->c, p, &g->why) != 0) {
			dp_err("%s", dp_buf_str(&g->why));
			return DP_EX_SOFTWARE;
		}
		dp_info("%s [%d]: the database is away; it starts after the reconnect", p->topic,
		        (int)p->partition);
		return DP_PGSINK_DOWN;
	}
	if (!ps->src) {
		dp_err("%s", dp_buf_str(&g->err));
		return st;
	}
	int64_t stored = dp_pgsink_stored(ps->src);
	/* No row yet: nothing of it was written, so from its first record. */
	int64_t at = stored >= 0 ? stored : 0;
	ps->acquired = true;
	ps->waiting = false;
	if (released) {
		p->start = at;
	} else {
		dp_buf_reset(&g->why);
		if (dp_consumer_seek(g->c, p, at, &g->why) != 0) {
			dp_err("%s", dp_buf_str(&g->why));
			return DP_EX_SOFTWARE;
		}
	}
	dp_info("%s [%d]: from offset %" PRId64 "%s", p->topic, (int)p->partition, at,
	        stored >= 0 ? " (stored)" : " (nothing stored yet)");
	return 0;
}

/*
 * The out_of_range hook: where p was to go on lies outside its records.
 * Before the first one, retention deleted records before they were
 * written: nothing can bring them back, so the engine says so and goes
 * on from the first record.  Past the end, the records the offset counts
 * are not the topic's any more (deleted and created again, or cut by an
 * unclean leader election): which of the new ones are in the table is
 * for a person to say, so stop with 78 and say how (--reset-offsets).
 */
static int
on_out_of_range(struct dp_consumer *c, void *arg, struct dp_consumer_part *p, int64_t offset,
                int64_t lo, int64_t hi)
{
	struct group *g = arg;
	struct pstate *ps = p->user;
	bool stored = ps && ps->src && dp_pgsink_stored(ps->src) == offset;
	const char *group = g->conf.group;

	(void)c;
	if (offset <= hi)
		return 0;
	dp_err("%s [%d]: the %s offset %" PRId64 " (group '%s') is past the partition's end "
	       "(low..high watermark %" PRId64 "..%" PRId64 "): the topic was deleted and "
	       "created again, or an unclean leader election lost records; nothing more of it "
	       "is written", p->topic, (int)p->partition, stored ? "stored" : "current", offset,
	       group, lo, hi);
	if (!g->said_reset)
		dp_err("to write what the topic holds now, stop every dp-sink-pg of group '%s' "
		       "and move its stored offsets: dp-sink-pg --reset-offsets earliest -t %s "
		       "-g %s (or latest, or %s:%d:OFFSET); see \"When the topic is re-created\" "
		       "in dp-sink-pg(1)", group, p->topic, group, p->topic, (int)p->partition);
	g->said_reset = true;
	if (ps && ps->acquired) {
		/* Nothing of it is written, and no offset of it goes to Kafka. */
		dp_pgsink_release(g->base.sink, ps->src);
		ps->acquired = false;
		purge(g, p);
	}
	return DP_EX_CONFIG;
}

static int
group_connect(struct dp_source *s, struct dp_buf *err)
{
	/*
	 * Half the engine's prefetch, in smaller fetches: the records waiting
	 * in librdkafka and the response buffers they pin were 18 of 42 MB
	 * at the defaults; the writers' batches need the room (BENCHMARKS.md).
	 * The bound is in bytes (prefetch_bytes), so that small records are
	 * not held to a count that one fetch fills.
	 */
	static const struct dp_kv defaults[] = {
		{ "max.partition.fetch.bytes", "262144" },
	};
	struct group *g = (struct group *)s;
	const struct dp_consumer_opts opts = {
		.topics = g->conf.topics, .ntopics = g->conf.ntopics, .group = g->conf.group,
		.defaults = defaults, .ndefaults = sizeof(defaults) / sizeof(defaults[0]),
		/* Each partition's start comes from the database (the assigned hook). */
		.from = DP_FROM_BEGINNING,
		.until = g->conf.until_end ? DP_UNTIL_END : DP_UNTIL_NONE,
		.manual_commit = true,
		.prefetch_bytes = 4u << 20,
		.metrics = true,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = g, .record = on_record, .assigned = on_assigned, .revoked = on_revoked,
		.committed = on_committed, .out_of_range = on_out_of_range,
	};
	int st;

	if (!(g->c = dp_consumer_new(g->conf.kafka, &opts, &hooks, err, &st)))
		return st;
	return dp_consumer_connect(g->c, err);
}

/* The consumer failed: why, as it said; its status. */
static int
consumer_failed(struct group *g, const struct dp_buf *err, int st)
{
	if (err->len || err->lost)
		dp_err("%s", dp_buf_str(err));
	return st ? st : g->hook_status ? g->hook_status : DP_EX_SOFTWARE;
}

/* Poll the consumer until records are in the inbox or the sink needs us. */
static enum dp_source_event
group_wait(struct dp_source *s, void (*tick)(void *), void *arg, int *status)
{
	struct group *g = (struct group *)s;
	int64_t linger = g->conf.linger_ms;
	int poll_ms = linger >= 200 ? 100 : linger >= 20 ? (int)linger / 2 : 10;

	for (;;) {
		if (g->deferred)
			return DP_SOURCE_DUE;
		if (g->in_next < g->nin)
			return DP_SOURCE_RECORD;
		g->nin = g->in_next = 0;
		dp_buf_reset(&g->inbox);
		if (s->ended)
			return DP_SOURCE_END;
		if (dp_pgsink_due(s->sink))
			return DP_SOURCE_DUE;
		group_commit(s, false);
		if (tick)
			tick(arg);
		int st = 0;
		dp_buf_reset(&g->err);
		int r = dp_consumer_poll(g->c, poll_ms, &g->err, &st);
		if (r == DP_CONSUMER_MORE)
			continue;
		/* What is in the inbox is still written. */
		s->ended = true;
		g->at_end = r == DP_CONSUMER_END;
		if (r == DP_CONSUMER_END)
			dp_info("every partition is at its end as it was at start (-e)");
		else if (r != DP_CONSUMER_SIGNAL)
			*status = consumer_failed(g, &g->err, st);
	}
}

/* The inbox's next record of a partition still acquired (one let go meanwhile is dropped:
 * its next owner reads it). */
static const struct inrec *
head(struct group *g)
{
	while (g->in_next < g->nin) {
		const struct inrec *in = &g->inrecs[g->in_next];
		const struct pstate *ps = in->part->user;
		if (ps && ps->acquired)
			return in;
		g->in_next++;
	}
	return NULL;
}

static enum dp_source_event
group_peek(struct dp_source *s, struct dp_source_rec *r)
{
	struct group *g = (struct group *)s;
	const struct inrec *in = head(g);

	if (!in)
		return DP_SOURCE_NONE;
	const struct pstate *ps = in->part->user;
	const char *p = g->inbox.data ? g->inbox.data + in->pos : "";
	*r = (struct dp_source_rec){
		.src = ps->src, .topic = in->part->topic, .partition = in->part->partition,
		.offset = in->offset, .key = in->has_key ? p : NULL, .klen = in->klen,
		.value = in->has_value ? p + in->klen : NULL, .vlen = in->vlen,
		.hdr = in->hlen ? p + in->klen + in->vlen : NULL, .hlen = in->hlen,
	};
	return DP_SOURCE_RECORD;
}

static void
group_take(struct dp_source *s)
{
	struct group *g = (struct group *)s;

	if (g->in_next < g->nin)
		g->in_next++;
}

static struct dp_pgsink_src *
group_next_src(struct dp_source *s)
{
	struct group *g = (struct group *)s;

	if (g->in_next < g->nin) {
		const struct pstate *ps = g->inrecs[g->in_next].part->user;
		return ps && ps->acquired ? ps->src : NULL;
	}
	return NULL;
}

static void
group_stop(struct dp_source *s)
{
	struct group *g = (struct group *)s;

	g->nin = g->in_next = 0;
}

/* The input waits while the database is away: partitions are paused, still polled. */
static void
group_pause(struct dp_source *s)
{
	struct group *g = (struct group *)s;
	struct dp_consumer_part *const *parts;
	size_t n;

	g->outage = true;
	parts = dp_consumer_parts(g->c, &n);
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (!parts[i]->assigned || !ps || !ps->acquired || parts[i]->paused)
			continue;
		dp_buf_reset(&g->why);
		if (dp_consumer_pause(g->c, parts[i], &g->why) != 0)
			dp_warn("%s", dp_buf_str(&g->why));
		ps->held = true;
	}
}

/* Wait out an outage's delay polling, so that the member stays in the group. */
static enum dp_source_idle_result
group_idle(struct dp_source *s, int64_t ms, struct dp_buf *err, int *status)
{
	struct group *g = (struct group *)s;
	int64_t until = dp_time_mono_ms() + ms;

	for (int64_t now = dp_time_mono_ms(); now < until; now = dp_time_mono_ms()) {
		int st = 0;
		struct dp_buf perr = DP_BUF_INIT;
		int r = dp_consumer_poll(g->c, until - now < IDLE_POLL_MS ? (int)(until - now)
		                                                          : IDLE_POLL_MS, &perr, &st);
		if (r == DP_CONSUMER_SIGNAL) {
			dp_buf_free(&perr);
			return DP_SOURCE_IDLE_SIGNAL;
		}
		if (r == DP_CONSUMER_FAILED || r == DP_CONSUMER_HALTED) {
			dp_buf_reset(err);
			dp_buf_msgf(err, "%s", dp_buf_str(&perr));
			dp_buf_free(&perr);
			*status = consumer_failed(g, err, st);
			return DP_SOURCE_IDLE_FAILED;
		}
		if (r == DP_CONSUMER_END)
			s->ended = g->at_end = true;
		dp_buf_free(&perr);
	}
	return DP_SOURCE_IDLE_OK;
}

/* The database is back: partitions assigned meanwhile start, paused ones resume. */
static int
group_resume(struct dp_source *s, struct dp_buf *err)
{
	struct group *g = (struct group *)s;
	struct dp_consumer_part *const *parts;
	size_t n;

	parts = dp_consumer_parts(g->c, &n);
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (!parts[i]->assigned || !ps || !ps->waiting)
			continue;
		int st = start_part(g, parts[i], false);
		if (st == DP_PGSINK_DOWN) {
			dp_buf_reset(err);
			dp_buf_msgf(err, "%s", dp_buf_str(&g->err));
			return DP_PGSINK_DOWN;
		}
		defer(g, st, &g->err);
	}
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (!parts[i]->assigned || !ps || !ps->acquired || !parts[i]->paused)
			continue;
		dp_buf_reset(&g->why);
		if (dp_consumer_resume(g->c, parts[i], &g->why) != 0 && !g->deferred) {
			dp_err("%s", dp_buf_str(&g->why));
			defer(g, DP_EX_SOFTWARE, NULL);
		}
		ps->held = false;
	}
	g->outage = false;
	return 0;
}

static int
group_failure(struct dp_source *s, struct dp_buf *err)
{
	struct group *g = (struct group *)s;
	int st = g->deferred;

	if (st && (g->deferred_why.len || g->deferred_why.lost))
		dp_buf_msgf(err, "%s", dp_buf_str(&g->deferred_why));
	g->deferred = 0;
	return st;
}

/* A sink source another instance wrote (resync): start it again where that one left it. */
static int
resync_one(struct group *g, struct dp_pgsink_src *src)
{
	struct dp_consumer_part *const *parts;
	size_t n;

	parts = dp_consumer_parts(g->c, &n);
	for (size_t i = 0; i < n; i++) {
		struct pstate *ps = parts[i]->user;
		if (!ps || ps->src != src)
			continue;
		ps->acquired = false;
		purge(g, parts[i]);
		if (!parts[i]->assigned)
			return 0;
		dp_warn("%s [%d]: another dp-sink-pg of group '%s' wrote it meanwhile; going on "
		        "from the offset it stored", parts[i]->topic, (int)parts[i]->partition,
		        g->conf.group);
		int st = start_part(g, parts[i], false);
		return st == DP_PGSINK_DOWN ? 0 : st;
	}
	return 0;
}

static int
group_resync(struct dp_source *s)
{
	struct group *g = (struct group *)s;
	struct dp_pgsink_src *src;
	int rc = 0;

	while (g->c && (src = dp_pgsink_lost(s->sink)) != NULL) {
		int st = resync_one(g, src);
		if (st && !rc)
			rc = st;
	}
	return rc;
}

/* A rebalance gave partitions: each starts where the database says. */
static int
group_assigned(struct dp_source *s)
{
	struct group *g = (struct group *)s;

	dp_consumer_say_parts("reading", g->moved, g->nmoved);
	for (size_t i = 0; i < g->nmoved; i++) {
		struct dp_consumer_part *p = g->moved[i];
		struct pstate *ps = p->user;
		if (!ps) {
			if (!(ps = calloc(1, sizeof(*ps)))) {
				dp_err("out of memory");
				return DP_EX_SOFTWARE;
			}
			ps->committed = -1;
			p->user = ps;
		}
		int st = start_part(g, p, true);
		if (st == DP_PGSINK_DOWN)
			continue;
		if (st)
			return st;
		if (g->outage) {
			/* The writers are away: it waits with the others. */
			dp_buf_reset(&g->why);
			if (dp_consumer_pause(g->c, p, &g->why) != 0)
				dp_warn("%s", dp_buf_str(&g->why));
			ps->held = true;
		}
	}
	return 0;
}

/* dp_pgsink_write, then the sources another instance took over. */
static int
write_sink(struct group *g)
{
	dp_buf_reset(&g->err);
	int rc = dp_pgsink_write(g->base.sink, false, &g->err);
	int st = group_resync(&g->base);

	return rc ? rc : st;
}

/* The revoked partitions' batches commit before they go (unless the database is away). */
static int
finish_parts(struct group *g)
{
	struct dp_consumer_part **parts = g->moved;
	size_t n = g->nmoved;
	int64_t deadline = dp_time_mono_ms() + g->conf.kafka->timeout_ms;
	bool busy = false;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		const struct pstate *ps = parts[i]->user;
		if (ps && ps->acquired && !dp_pgsink_src_idle(ps->src)) {
			dp_pgsink_flush(g->base.sink, ps->src);
			busy = true;
		}
	}
	while (busy && !g->outage && !dp_sig_stop && dp_time_mono_ms() < deadline) {
		if ((rc = write_sink(g)) != 0)
			break;
		busy = false;
		for (size_t i = 0; i < n; i++) {
			const struct pstate *ps = parts[i]->user;
			busy |= ps && ps->acquired && !dp_pgsink_src_idle(ps->src);
		}
		if (busy)
			dp_pgsink_wait(g->base.sink, 50);
	}
	if (busy && !rc && !g->outage)
		dp_warn("letting partitions go before their last batch committed: the next "
		        "owner starts from what is stored");
	return rc;
}

/*
 * A rebalance or the close took partitions: their batches commit first
 * (or, the database away, are dropped: the next owner reads the stored
 * offset), then they go.
 */
static int
group_revoked(struct dp_source *s, bool finish)
{
	struct group *g = (struct group *)s;

	dp_consumer_say_parts("handing over", g->moved, g->nmoved);
	if (finish) {
		int rc = finish_parts(g);
		if (rc && rc != DP_PGSINK_DOWN)
			defer(g, rc, &g->err);
	}
	group_commit(s, false);
	for (size_t i = 0; i < g->nmoved; i++) {
		struct dp_consumer_part *p = g->moved[i];
		struct pstate *ps = p->user;
		purge(g, p);
		if (!ps)
			continue;
		if (ps->acquired)
			dp_pgsink_release(s->sink, ps->src);
		ps->acquired = ps->waiting = ps->held = false;
		ps->committed = -1;
	}
	return 0;
}

/* Records in Kafka not yet in the table, from librdkafka's cached watermarks. */
static int64_t
group_lag(const struct dp_source *s)
{
	const struct group *g = (const struct group *)s;
	struct dp_consumer_part *const *parts;
	size_t n;
	int64_t sum = 0;

	if (!g->c)
		return -1;
	parts = dp_consumer_parts(g->c, &n);
	for (size_t i = 0; i < n; i++) {
		const struct pstate *ps = parts[i]->user;
		int64_t lo, hi, at;
		if (!parts[i]->assigned || !ps || !ps->src ||
		    rd_kafka_get_watermark_offsets(dp_consumer_rk(g->c), parts[i]->topic,
		                                   parts[i]->partition, &lo, &hi) != 0 || hi < 0)
			continue;
		at = dp_pgsink_stored(ps->src);
		if (at < lo)
			at = lo;
		if (hi > at)
			sum += hi - at;
	}
	return sum;
}

/* The end: offsets to Kafka once more, then leave the group (its revoke runs here). */
static void
group_close(struct dp_source *s)
{
	struct group *g = (struct group *)s;

	if (!g->c)
		return;
	group_commit(s, true);
	dp_consumer_close(g->c);
}

static void
group_say_unwritten(const struct dp_source *s, struct dp_buf *out)
{
	const struct group *g = (const struct group *)s;

	dp_buf_msgf(out, "records after the stored offsets are not written (the next run of "
	            "group '%s' resumes there)", g->conf.group);
}

static void
group_say_written(const struct dp_source *s, struct dp_buf *out)
{
	(void)s;
	dp_buf_msgf(out, "the records before it are");
}

static bool
group_interrupted(struct dp_source *s, int status, uint64_t rows, struct dp_buf *said,
                  struct dp_source_left *left)
{
	const struct group *g = (const struct group *)s;

	(void)left;
	if (g->at_end && status == 0)
		return false;
	dp_buf_msgf(said, "%" PRIu64 " row%s committed; the records after the stored offsets of "
	            "group '%s' are not written (its next run resumes there)", rows,
	            rows == 1 ? "" : "s", g->conf.group);
	return true;
}

static void
group_free(struct dp_source *s)
{
	struct group *g = (struct group *)s;

	if (g->c) {
		struct dp_consumer_part *const *parts;
		size_t n;
		parts = dp_consumer_parts(g->c, &n);
		for (size_t i = 0; i < n; i++)
			free(parts[i]->user);
		dp_consumer_free(g->c);
	}
	free(g->inrecs);
	dp_buf_free(&g->inbox);
	dp_buf_free(&g->deferred_why);
	dp_buf_free(&g->err);
	dp_buf_free(&g->why);
	free(g);
}

static const struct dp_source_ops group_ops = {
	.unit = "record",
	.connect = group_connect,
	.wait = group_wait,
	.peek = group_peek,
	.take = group_take,
	.next_src = group_next_src,
	.stop = group_stop,
	.pause = group_pause,
	.idle = group_idle,
	.resume = group_resume,
	.failure = group_failure,
	.resync = group_resync,
	.commit = group_commit,
	.assigned = group_assigned,
	.revoked = group_revoked,
	.lag = group_lag,
	.close = group_close,
	.say_unwritten = group_say_unwritten,
	.say_written = group_say_written,
	.interrupted = group_interrupted,
	.free = group_free,
};

struct dp_source *
dp_source_group_new(const struct dp_source_group_conf *conf, const struct dp_source_hooks *hooks)
{
	struct group *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->base.ops = &group_ops;
	g->conf = *conf;
	if (hooks)
		g->hooks = *hooks;
	return &g->base;
}
