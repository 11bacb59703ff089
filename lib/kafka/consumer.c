/*
 * kafka/consumer.c -- the consumer engine (kafka/consumer.h): partition bookkeeping,
 * --from and --until, rebalances, offsets and the consume loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/consumer.h"
#include "obs/health.h"
#include "obs/obs.h"

/* Records handed over per poll: bounded, so that the queue length seen
 * between batches tells whether the prefetch has stopped. */
#define BATCH 1000

/*
 * What records fetched ahead may take, unless opts.prefetch_bytes says:
 * their bytes plus librdkafka's cost of each fetched record besides its
 * bytes, about 300 bytes in 2.0.2 (measured: a queue of 200,000 more
 * 40-byte records took 70 MB more RSS).  A bound in records alone let
 * 4 KB records take 40 MB, and 40-byte ones fill it with every fetch.
 */
#define PREFETCH_BYTES (8u << 20)
#define RECORD_COST 300
/* Fetches of 1 MB, librdkafka's least: see dp_consumer_new. */
#define FETCH_MAX_BYTES "1048576"
/*
 * A run that ends at the end (--until end) learns a partition's end from
 * a fetch that finds nothing, which the broker holds for
 * fetch.wait.max.ms (librdkafka: 500 ms): every such run ended half a
 * second late (measured: dp-tail -e of one record, 0.51 s; 0.02 s with
 * 10 ms).  A fetch that finds records is answered at once, so the wait
 * costs nothing while there is a backlog; a live reader (no end) keeps
 * the default and its fewer idle fetches.  -X may set it.
 */
#define END_FETCH_WAIT_MS "10"

/*
 * A group member without partitions this long after it subscribed asks
 * the group why (DescribeConsumerGroups), and again this often, until
 * it can say; after WAIT_VAGUE_MS it says what it knows.
 */
#define WAIT_ASK_MS 3000
#define WAIT_VAGUE_MS 15000

/* During a broker outage, how often to ask whether a broker answers. */
#define OUTAGE_PROBE_MS 1000

/*
 * The outage the process has said, since when (monotonic ms; 0: none).
 * A command with several consumers (dp-coord, dp-tail --follow) sees one
 * outage on each client and says it once.  Only polling threads touch it.
 */
static int64_t said_outage_ms;

/*
 * The engine's view of a partition.  The public part comes first, so a
 * struct dp_consumer_part * handed to the application is also this.
 */
struct part {
	struct dp_consumer_part pub;
	char *topic;            /* owned; pub.topic points here */
	bool end_known;         /* pub.end was taken (first sight) */
	bool held;              /* assigned, paused by the engine, not yet released */
	bool hook_pending;      /* the assigned hook has not seen this assignment */
	bool started;           /* simple mode: its fetcher runs */
	bool drop;              /* drop its records left in this batch */
	bool reseek;            /* seek to pub.next before reading it again */
	bool stop_end;          /* dp_consumer_end_topic: done at pub.end */
	int64_t assigned_at;    /* the offset librdkafka was given at assignment */
	int64_t target;         /* where release starts it; NO_TARGET until known */
	int64_t held_since;     /* monotonic ms */
	int64_t unsaved;        /* a failed engine commit left it up to here; -1 */
	int64_t seen_end;       /* high watermark of the last fetch that gave records; -1 */
	bool fresh;             /* records handed over in this poll: seen_end is to update */
	/* Where target came from, so release knows to check it against the
	 * partition's records (check_ranges); the watermarks resolve asked. */
	enum { FROM_ENGINE, FROM_HOOK, FROM_COMMITTED, FROM_ARG } origin;
	bool wm_known;
	int64_t wm_lo, wm_hi;
	/* opts.metrics: its metrics, and what this poll handed over (told per poll) */
	struct dp_obs_part *obs;
	bool obs_assigned;
	uint64_t obs_n;
	int64_t obs_ts;
};

/* A topic read in simple mode. */
struct topic {
	char *name;
	rd_kafka_topic_t *rkt;   /* made when its first fetcher starts */
	bool dropped;            /* dp_consumer_drop_topic */
};

#define NO_TARGET INT64_MIN
#define PRIV(pp) ((struct part *)(pp))

struct dp_consumer {
	struct dp_consumer_opts o;
	struct dp_consumer_hooks h;
	const struct dp_kafka_opts *kafka;
	rd_kafka_t *rk;

	bool group;             /* subscribed: a group, or a pattern's private group */
	bool real_group;        /* opts.group: commits are possible */
	bool commits;           /* the engine stores and commits handled offsets */
	char *private_group;
	struct dp_kv *defaults;
	size_t ndefaults;

	/* simple mode */
	rd_kafka_queue_t *rkqu;          /* every partition feeds it */
	struct topic *topics;            /* opts.topics, then dp_consumer_add_topic's */
	size_t ntopics;

	/* the prefetch bound, and whether its fetcher may be waiting (wake_fetcher) */
	size_t prefetch_msgs;            /* queued.min.messages */
	size_t prefetch_bytes;           /* queued.max.messages.kbytes, in bytes */
	size_t record_len;               /* payload bytes a record, recently, generously */
	bool prefetch_full;              /* the fetcher may have stopped since the last wake */
	int64_t wake_ms;                 /* the last wake-up (monotonic) */

	rd_kafka_queue_t *commitq;       /* results of asynchronous commits */
	bool topic_gone;                 /* a subscribed topic was deleted */
	rd_kafka_queue_t *cgq;           /* group mode: the consumer queue (for its length) */
	int64_t reset_offset;            /* auto.offset.reset as a logical offset */
	char reset_name[16];             /* earliest, latest or error, for messages */

	struct dp_consumer_part **parts; /* each a struct part */
	size_t nparts, capparts;
	struct dp_consumer_part **scratch;   /* hook arrays */

	rd_kafka_topic_partition_list_t *pending;   /* handled, not yet stored */
	bool dirty;             /* offsets stored since the last commit */

	bool assigned_once;
	bool rebalancing;       /* eager: everything revoked, nothing assigned yet */
	bool rebalanced;        /* a rebalance callback ran during this poll */
	bool closing;
	bool closed;
	bool halt;              /* the commit hook said stop */
	bool halting;           /* a record verdict said stop: drop the rest */
	int fail;               /* exit status of a failure seen in a callback */
	struct dp_buf failmsg;
	unsigned commit_failures;
	int64_t last_sync_ms;

	/* waiting for the first assignment (group mode) */
	int64_t subscribed_ms;
	int64_t wait_ask_ms;    /* when to ask the group next */
	bool said_waiting;

	/* a broker outage: every broker down since outage_ms (0: none) */
	int64_t outage_ms;
	int64_t outage_probe_ms;

	int64_t obs_lag_ms;              /* opts.metrics: when the lags were last told */

	/* the last message's partition, for the common case of runs */
	rd_kafka_topic_t *last_rkt;
	int32_t last_partition;
	struct part *last_part;
};

/* ---- parsing ------------------------------------------------------------ */

int
dp_consumer_parse_from(const char *s, enum dp_from *from, int64_t *arg)
{
	uint64_t n;

	if (strcmp(s, "beginning") == 0) {
		*from = DP_FROM_BEGINNING;
	} else if (strcmp(s, "end") == 0) {
		*from = DP_FROM_END;
	} else if (strcmp(s, "stored") == 0) {
		*from = DP_FROM_STORED;
	} else if (s[0] == '-' && s[1] >= '0' && s[1] <= '9') {
		if (dp_parse_u64("--from", s + 1, 1, INT64_MAX / 2, &n) < 0)
			return -1;
		*from = DP_FROM_TAIL;
		*arg = (int64_t)n;
	} else if (s[0] >= '0' && s[0] <= '9') {
		if (dp_parse_u64("--from", s, 0, INT64_MAX / 2, &n) < 0)
			return -1;
		*from = DP_FROM_OFFSET;
		*arg = (int64_t)n;
	} else if (s[0] == '@') {
		*from = DP_FROM_TIME;
		if (s[1] == '-') {
			int64_t d;
			if (dp_parse_duration("--from", s + 2, &d) < 0)
				return -1;
			*arg = dp_time_now_ms() - d;
		} else if (dp_time_parse(s + 1, arg) < 0) {
			dp_err("invalid --from '%s': expected @RFC3339, @epoch-ms or @-DURATION", s);
			return -1;
		}
	} else {
		dp_err("invalid --from '%s': expected beginning, end, stored, -N, N or @TIME", s);
		return -1;
	}
	return 0;
}

int
dp_consumer_parse_until(const char *s, enum dp_until *until, int64_t *ms)
{
	if (strcmp(s, "end") == 0) {
		*until = DP_UNTIL_END;
		return 0;
	}
	if (s[0] == '@') {
		if (s[1] == '-' || s[1] == '+') {
			int64_t d;
			if (dp_parse_duration("--until", s + 2, &d) < 0)
				return -1;
			*until = DP_UNTIL_TIME;
			*ms = dp_time_now_ms() + (s[1] == '-' ? -d : d);
			return 0;
		}
		if (dp_time_parse(s + 1, ms) == 0) {
			*until = DP_UNTIL_TIME;
			return 0;
		}
	}
	dp_err("invalid --until '%s': expected end or @TIME", s);
	return -1;
}

/* ---- partitions --------------------------------------------------------- */

static struct part *
find_part(struct dp_consumer *c, const char *topic, int32_t partition)
{
	for (size_t i = 0; i < c->nparts; i++) {
		struct part *p = PRIV(c->parts[i]);
		if (p->pub.partition == partition && strcmp(p->topic, topic) == 0)
			return p;
	}
	return NULL;
}

/* The partition's bookkeeping, made on first sight.  NULL: out of memory. */
static struct part *
add_part(struct dp_consumer *c, const char *topic, int32_t partition)
{
	struct part *p = find_part(c, topic, partition);

	if (p)
		return p;
	if (c->nparts == c->capparts) {
		size_t cap = c->capparts ? 2 * c->capparts : 16;
		struct dp_consumer_part **a = realloc(c->parts, cap * sizeof(*a));
		struct dp_consumer_part **s = a ? realloc(c->scratch, cap * sizeof(*s)) : NULL;
		if (a)
			c->parts = a;
		if (!s)
			return NULL;
		c->scratch = s;
		c->capparts = cap;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->topic = strdup(topic))) {
		free(p);
		return NULL;
	}
	p->pub.topic = p->topic;
	p->pub.partition = partition;
	p->pub.start = DP_CONSUMER_NO_OFFSET;
	p->pub.next = DP_CONSUMER_NO_OFFSET;
	p->pub.end = DP_CONSUMER_NO_OFFSET;
	p->target = NO_TARGET;
	p->unsaved = -1;
	p->seen_end = -1;
	c->parts[c->nparts++] = &p->pub;
	return p;
}

/* The partition of a message; made when unknown (it cannot be, but a
 * record is never dropped for want of bookkeeping). */
static struct part *
part_of(struct dp_consumer *c, const rd_kafka_message_t *m)
{
	if (m->rkt == c->last_rkt && m->partition == c->last_partition && c->last_part)
		return c->last_part;
	struct part *p = add_part(c, rd_kafka_topic_name(m->rkt), m->partition);
	c->last_rkt = m->rkt;
	c->last_partition = m->partition;
	c->last_part = p;
	return p;
}

static void
fail(struct dp_consumer *c, int status, const char *msg)
{
	if (c->fail)
		return;
	c->fail = status;
	if (msg)
		dp_buf_msgf(&c->failmsg, "%s", msg);
}

static bool
stored_start(const struct dp_consumer *c)
{
	return c->real_group && (c->o.from == DP_FROM_STORED || c->o.from == DP_FROM_DEFAULT);
}

/*
 * The offset librdkafka gets when p is assigned: where it continues, or
 * where --from puts it when that needs no broker query.  --from -N and
 * @TIME need one: they get a placeholder and release seeks.
 */
static int64_t
assign_offset(const struct dp_consumer *c, const struct part *p)
{
	if (p->pub.next >= 0 && !stored_start(c))
		return p->pub.next;    /* handed back: continue where it was */
	switch (c->o.from) {
	case DP_FROM_BEGINNING:
		return RD_KAFKA_OFFSET_BEGINNING;
	case DP_FROM_OFFSET:
		return c->o.from_arg;
	case DP_FROM_STORED:
	case DP_FROM_DEFAULT:
		if (c->real_group)
			return RD_KAFKA_OFFSET_INVALID;   /* the committed offset */
		return RD_KAFKA_OFFSET_END;
	case DP_FROM_END:
	case DP_FROM_TAIL:
	case DP_FROM_TIME:
	default:
		return RD_KAFKA_OFFSET_END;
	}
}

/* A partition (re)enters the assignment, held until release. */
static void
take(struct dp_consumer *c, struct part *p)
{
	p->pub.assigned = true;
	p->pub.paused = false;
	p->pub.at_eof = false;
	p->pub.start = DP_CONSUMER_NO_OFFSET;
	p->held = true;
	p->hook_pending = true;
	p->drop = p->reseek = false;
	p->target = NO_TARGET;
	p->origin = FROM_ENGINE;
	p->wm_known = false;
	p->held_since = dp_time_mono_ms();
	p->assigned_at = assign_offset(c, p);
}

static void
reached_end(struct dp_consumer *c, struct part *p)
{
	if (p->pub.caught_up)
		return;
	p->pub.caught_up = true;
	if (c->o.until == DP_UNTIL_END || p->stop_end)
		p->pub.done = true;
	if (c->h.caught_up)
		c->h.caught_up(c, c->h.arg, &p->pub);
}

/* Every assigned partition has reached its stop point. */
static bool
all_done(const struct dp_consumer *c)
{
	size_t assigned = 0;

	if (!c->assigned_once || c->rebalancing)
		return false;
	for (size_t i = 0; i < c->nparts; i++) {
		const struct part *p = PRIV(c->parts[i]);
		if (!p->pub.assigned)
			continue;
		if (p->held || !p->pub.done)
			return false;
		assigned++;
	}
	/* Without --until only dp_consumer_end_topic makes partitions done. */
	return c->o.until != DP_UNTIL_NONE || assigned > 0;
}

static rd_kafka_topic_partition_list_t *
list_of(struct part *const *ps, size_t n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)(n ? n : 1));

	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, ps[i]->topic, ps[i]->pub.partition);
	return l;
}

/* ---- offsets ------------------------------------------------------------- */

static rd_kafka_resp_err_t
first_error(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t *offsets)
{
	for (int i = 0; !err && offsets && i < offsets->cnt; i++)
		err = offsets->elems[i].err;
	return err;
}

/*
 * Partitions a successful commit carried past where a failed engine
 * commit had left them: that failure cost nothing in the end.
 */
static void
healed(struct dp_consumer *c, rd_kafka_resp_err_t err,
       const rd_kafka_topic_partition_list_t *offsets)
{
	for (int i = 0; !err && offsets && i < offsets->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &offsets->elems[i];
		struct part *p = find_part(c, tp->topic, tp->partition);
		if (!p || p->unsaved < 0 || tp->err || tp->offset < p->unsaved)
			continue;
		p->unsaved = -1;
		dp_warn("%s [%d]: the offsets that could not be committed for group '%s' "
		        "are committed now (up to offset %lld)", p->topic, (int)p->pub.partition,
		        c->o.group, (long long)tp->offset);
	}
}

/* A commit's result: to the committed hook, else reported (periodic: at -v). */
static void
commit_result(struct dp_consumer *c, rd_kafka_resp_err_t err,
              const rd_kafka_topic_partition_list_t *offsets, bool periodic)
{
	healed(c, err, offsets);
	if (c->h.committed)
		c->h.committed(c, c->h.arg, err, offsets);
	else if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		/* A periodic one failing is no news: the next one, and the one
		 * at close, may well succeed. */
		(periodic ? dp_info : dp_warn)("%s commit for group '%s' failed: %s",
		                              periodic ? "periodic" : "asynchronous",
		                              c->o.group, rd_kafka_err2str(err));
}

/* librdkafka's periodic commits (enable.auto.commit). */
static void
on_auto_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
               rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	commit_result(opaque, first_error(err, offsets), offsets, true);
}

/* dp_consumer_commit(async). */
static void
on_async_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	commit_result(opaque, first_error(err, offsets), offsets, false);
}

struct sync_commit {
	struct dp_consumer *c;
	bool done;
	bool again;             /* a retriable error, with time left: ask again */
	int64_t deadline;
	rd_kafka_resp_err_t err;
};

static void
on_sync_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
               rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	struct sync_commit *r = opaque;

	r->done = true;
	r->err = first_error(err, offsets);
	/* Only the last answer is the commit's result. */
	r->again = dp_kafka_retriable(r->err) && dp_time_mono_ms() + 100 < r->deadline;
	healed(r->c, r->err, offsets);
	if (!r->again && r->c->h.committed)
		r->c->h.committed(r->c, r->c->h.arg, r->err, offsets);
}

/*
 * Commit and wait for the answer, at most --timeout.  Errors Kafka calls
 * retriable (the coordinator is loading, moved, or its broker restarts)
 * are asked again until then.  Not cut short by a signal: the commit
 * after SIGTERM is the point of a graceful drain (a second signal ends
 * the process, core/sig.h).  0, or TEMPFAIL with err.
 */
static int
commit_wait(struct dp_consumer *c, const rd_kafka_topic_partition_list_t *offsets,
            struct dp_buf *err)
{
	struct sync_commit r = { c, false, true, dp_time_mono_ms() + c->kafka->timeout_ms, 0 };
	int64_t deadline = r.deadline;
	rd_kafka_resp_err_t e = 0;

	while (!e && r.again) {
		rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
		if (!q) {
			dp_buf_msgf(err, "out of memory");
			return DP_EX_SOFTWARE;
		}
		if (r.done) {           /* not the first try: a pause, not a spin */
			struct timespec ts = { 0, 100 * 1000000L };
			nanosleep(&ts, NULL);
		}
		r.done = r.again = false;
		e = rd_kafka_commit_queue(c->rk, offsets, q, on_sync_commit, &r);
		while (!e && !r.done && dp_time_mono_ms() < deadline)
			rd_kafka_queue_poll_callback(q, DP_KAFKA_SLICE_MS);
		rd_kafka_queue_destroy(q);
	}
	if (!e && !r.done) {
		char within[48];
		dp_buf_msgf(err, "no answer within %s",
		            c->kafka->timeout_arg ? c->kafka->timeout_arg
		                                   : dp_duration_format(c->kafka->timeout_ms, within));
		return DP_EX_TEMPFAIL;
	}
	if (!e)
		e = r.err;
	if (!e || e == RD_KAFKA_RESP_ERR__NO_OFFSET)
		return 0;
	if (e == RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST)
		dp_buf_msgf(err, "the partitions were lost to the group first (this member "
		            "was too slow to answer it); unless they come back to this member, "
		            "they are read again from the last commit");
	else
		dp_buf_msgf(err, "%s", rd_kafka_err2str(e));
	return DP_EX_TEMPFAIL;
}

/* The engine's own commit (revoke, close): reported and counted. */
static void
commit_stored(struct dp_consumer *c)
{
	struct dp_buf err = DP_BUF_INIT;

	if (!c->commits || !c->dirty)
		return;
	c->dirty = false;
	if (commit_wait(c, NULL, &err) != 0) {
		dp_err("cannot commit offsets for group '%s' %s: %s", c->o.group,
		       c->closing ? "at exit" : "at a rebalance", dp_buf_str(&err));
		/*
		 * What was handled here is not committed: a failure, unless a
		 * later commit carries these partitions past it (they come
		 * back to this member, which goes on where it was).
		 */
		for (size_t i = 0; i < c->nparts; i++) {
			struct part *p = PRIV(c->parts[i]);
			if (p->pub.assigned && p->pub.next > p->unsaved)
				p->unsaved = p->pub.next;
		}
	}
	dp_buf_free(&err);
}

int
dp_consumer_commit(struct dp_consumer *c, const rd_kafka_topic_partition_list_t *offsets,
                   bool async, struct dp_buf *err)
{
	rd_kafka_resp_err_t e;

	if (!c->real_group) {
		dp_buf_msgf(err, "cannot commit offsets: no consumer group");
		return DP_EX_SOFTWARE;
	}
	if (!async)
		return commit_wait(c, offsets, err);
	e = rd_kafka_commit_queue(c->rk, offsets, c->commitq, on_async_commit, c);
	if (e) {
		dp_buf_msgf(err, "cannot commit offsets: %s", rd_kafka_err2str(e));
		return DP_EX_TEMPFAIL;
	}
	return 0;
}

static void
pending_add(struct dp_consumer *c, const rd_kafka_message_t *m, const struct part *p)
{
	rd_kafka_topic_partition_t *tp =
		rd_kafka_topic_partition_list_find(c->pending, p->topic, m->partition);

	if (!tp)
		tp = rd_kafka_topic_partition_list_add(c->pending, p->topic, m->partition);
	tp->offset = m->offset + 1;
}

int
dp_consumer_sync(struct dp_consumer *c)
{
	c->last_sync_ms = dp_time_mono_ms();
	if (c->h.commit && c->h.commit(c, c->h.arg) != 0) {
		c->halt = true;
		return -1;
	}
	if (c->commits && c->pending->cnt > 0) {
		rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, c->pending);
		/* A partition revoked meanwhile cannot be stored: not an error. */
		if (e && e != RD_KAFKA_RESP_ERR__STATE)
			dp_warn("cannot store offsets: %s", rd_kafka_err2str(e));
		c->dirty = true;
		rd_kafka_topic_partition_list_destroy(c->pending);
		c->pending = rd_kafka_topic_partition_list_new(8);
	}
	return 0;
}

/* ---- pause, seek, resume -------------------------------------------------- */

/* The first partition error of a pause/resume/seek, or err. */
static int
toppar_result(rd_kafka_resp_err_t e, const rd_kafka_topic_partition_list_t *l,
              const char *what, struct dp_buf *err)
{
	e = first_error(e, l);
	if (!e)
		return 0;
	dp_buf_msgf(err, "cannot %s %s [%d]: %s", what, l->elems[0].topic,
	            (int)l->elems[0].partition, rd_kafka_err2str(e));
	return dp_kafka_exit_status(e);
}

/*
 * Seek; per-partition results stay in l.  A local request, no broker: it
 * takes librdkafka's main thread a moment, or a second when the process
 * is starved (valgrind), so the wait is short and seek_again() says
 * which results mean "ask again at the next poll".  The seek's version
 * barrier is in place as soon as it is queued: nothing fetched before it
 * reaches the application either way.
 */
static void
seek_list(struct dp_consumer *c, rd_kafka_topic_partition_list_t *l)
{
	rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 1000);

	if (e)
		rd_kafka_error_destroy(e);    /* per partition: __IN_PROGRESS */
}

/*
 * 1 when a seek may succeed if asked again: the fetcher has not started
 * yet (a partition assigned at its committed offset starts only once the
 * coordinator answered), or the answer did not come in time.
 */
static int
seek_again(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR__STATE || e == RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS ||
	       e == RD_KAFKA_RESP_ERR__IN_PROGRESS;
}

/* Seek p, now or (seek_again) at the next poll. */
static int
seek_one(struct dp_consumer *c, struct part *p, int64_t offset, struct dp_buf *err)
{
	rd_kafka_topic_partition_list_t *l = list_of(&p, 1);
	rd_kafka_resp_err_t e;
	int st = 0;

	l->elems[0].offset = offset;
	seek_list(c, l);
	e = l->elems[0].err;
	p->reseek = e != 0;
	if (e && !seek_again(e))
		st = toppar_result(e, l, "seek in", err);
	rd_kafka_topic_partition_list_destroy(l);
	return st;
}

/* Fetching now: assigned, released, started.  Otherwise release (or the
 * start) takes pub.paused and pub.next into account. */
static bool
running(const struct dp_consumer *c, const struct part *p)
{
	return p->pub.assigned && !p->held && (c->group || p->started);
}

static int
pause_one(struct dp_consumer *c, struct part *p, bool pause, struct dp_buf *err)
{
	rd_kafka_topic_partition_list_t *l = list_of(&p, 1);
	int st = toppar_result(pause ? rd_kafka_pause_partitions(c->rk, l)
	                             : rd_kafka_resume_partitions(c->rk, l),
	                       l, pause ? "pause" : "resume", err);

	rd_kafka_topic_partition_list_destroy(l);
	return st;
}

int
dp_consumer_pause(struct dp_consumer *c, struct dp_consumer_part *pp, struct dp_buf *err)
{
	struct part *p = PRIV(pp);

	if (pp->paused)
		return 0;
	pp->paused = true;
	p->drop = true;
	return running(c, p) ? pause_one(c, p, true, err) : 0;
}

int
dp_consumer_resume(struct dp_consumer *c, struct dp_consumer_part *pp, struct dp_buf *err)
{
	struct part *p = PRIV(pp);
	int st;

	if (!pp->paused)
		return 0;
	pp->paused = false;
	if (!running(c, p))
		return 0;
	/*
	 * librdkafka resumes at the application position, which a batch
	 * moves past records that were never handed over: continue at next.
	 * The seek also wakes the fetcher (see release_group).
	 */
	st = pause_one(c, p, false, err);
	if (!st && pp->next >= 0)
		st = seek_one(c, p, pp->next, err);
	return st;
}

int
dp_consumer_seek(struct dp_consumer *c, struct dp_consumer_part *pp, int64_t offset,
                 struct dp_buf *err)
{
	struct part *p = PRIV(pp);

	if (offset < 0) {
		dp_buf_msgf(err, "cannot seek in %s [%d] to offset %lld", pp->topic,
		            (int)pp->partition, (long long)offset);
		return DP_EX_SOFTWARE;
	}
	pp->next = offset;
	p->drop = true;
	if (p->held) {
		pp->start = offset;
		return 0;
	}
	if (pp->paused || !running(c, p)) {
		p->reseek = true;
		return 0;
	}
	return seek_one(c, p, offset, err);
}

/* Partitions whose records were dropped read again from next. */
static int
reseek(struct dp_consumer *c, struct dp_buf *err)
{
	for (size_t i = 0; i < c->nparts; i++) {
		struct part *p = PRIV(c->parts[i]);
		int st;
		if (!p->reseek || p->pub.paused || !p->pub.assigned || p->held)
			continue;
		if (p->pub.next < 0) {
			p->reseek = false;
			continue;
		}
		if ((st = seek_one(c, p, p->pub.next, err)) != 0)
			return st;
	}
	return 0;
}

/* ---- rebalancing ------------------------------------------------------------ */

/*
 * The assigned partitions of list, into c->scratch: first those the
 * application was told about (the revoked hook gets only these), then
 * those taken but never released.  Returns how many; *told the first part.
 */
static size_t
collect(struct dp_consumer *c, const rd_kafka_topic_partition_list_t *list, size_t *told)
{
	size_t n = 0;

	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			*told = n;
		for (int i = 0; i < list->cnt; i++) {
			struct part *p = find_part(c, list->elems[i].topic,
			                           list->elems[i].partition);
			if (p && p->pub.assigned && p->hook_pending == (pass == 1))
				c->scratch[n++] = &p->pub;
		}
	}
	return n;
}

static void
on_assign(struct dp_consumer *c, rd_kafka_topic_partition_list_t *list, bool incremental)
{
	rd_kafka_error_t *e = NULL;
	rd_kafka_resp_err_t re = 0;
	char msg[512];

	for (int i = 0; i < list->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &list->elems[i];
		struct part *p = add_part(c, tp->topic, tp->partition);
		if (!p) {
			fail(c, DP_EX_SOFTWARE, "out of memory");
			tp->offset = RD_KAFKA_OFFSET_INVALID;
			continue;
		}
		take(c, p);
		tp->offset = p->assigned_at;
	}
	/* librdkafka wants the assign call whatever happens. */
	if (incremental)
		e = rd_kafka_incremental_assign(c->rk, list);
	else
		re = rd_kafka_assign(c->rk, list);
	if (e) {
		re = rd_kafka_error_code(e);
		snprintf(msg, sizeof(msg), "cannot take the assigned partitions: %s",
		         rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		fail(c, dp_kafka_exit_status(re), msg);
	} else if (re) {
		snprintf(msg, sizeof(msg), "cannot take the assigned partitions: %s",
		         rd_kafka_err2str(re));
		fail(c, dp_kafka_exit_status(re), msg);
	} else if (!c->closing) {
		/*
		 * Held until release, outside this callback, has asked the
		 * cluster what --from and --until need.  A pause is a local
		 * request; what was fetched before it is dropped.
		 */
		re = first_error(rd_kafka_pause_partitions(c->rk, list), list);
		if (re) {
			snprintf(msg, sizeof(msg), "cannot hold the assigned partitions: %s",
			         rd_kafka_err2str(re));
			fail(c, dp_kafka_exit_status(re), msg);
		}
	}
	if (c->closing) {
		/* Leaving: they go again at once, untouched. */
		for (int i = 0; i < list->cnt; i++) {
			struct part *p = find_part(c, list->elems[i].topic, list->elems[i].partition);
			if (p)
				p->held = p->hook_pending = false;
		}
	}
	if (c->said_waiting && !c->assigned_once) {
		char d[48];
		dp_warn("group '%s' gave this member its partitions after %s", c->o.group,
		        dp_duration_format((dp_time_mono_ms() - c->subscribed_ms) / 100 * 100, d));
	}
	if (!c->closing && list->cnt == 0 && !c->assigned_once)
		dp_info("group '%s' gave this member no partitions: the others hold them all "
		        "(more members than partitions); it takes some over when one leaves",
		        c->o.group ? c->o.group : "");
	c->assigned_once = true;
	c->rebalancing = false;
}

static void
on_revoke(struct dp_consumer *c, rd_kafka_topic_partition_list_t *list, bool incremental)
{
	size_t told, n = collect(c, list, &told);
	rd_kafka_error_t *e = NULL;

	if (c->h.revoked && told) {
		int st = c->h.revoked(c, c->h.arg, c->scratch, told);
		if (st)
			fail(c, st, NULL);
	}
	/* Hand over cleanly: what was handled is stored and committed first. */
	dp_consumer_sync(c);
	commit_stored(c);
	for (size_t i = 0; i < n; i++) {
		struct part *p = PRIV(c->scratch[i]);
		p->pub.assigned = p->pub.paused = p->pub.at_eof = false;
		p->held = p->hook_pending = p->drop = p->reseek = false;
	}
	if (incremental) {
		e = rd_kafka_incremental_unassign(c->rk, list);
	} else {
		/* Everything goes; --until must not finish before the new set. */
		c->rebalancing = true;
		rd_kafka_assign(c->rk, NULL);
	}
	if (e) {
		dp_warn("cannot let the revoked partitions go: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *list,
             void *opaque)
{
	struct dp_consumer *c = opaque;
	/* cooperative-sticky hands partitions over a few at a time. */
	bool incremental = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

	c->rebalanced = true;
	c->last_part = NULL;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
		on_assign(c, list, incremental);
	else
		on_revoke(c, list, incremental);
	/* Back to dp_consumer_poll at once: it releases new partitions. */
	rd_kafka_yield(rk);
}

/* ---- release: start held partitions where --from and the hook say ------- */

/* Ask the cluster what p needs: its end, its start for -N. */
static int
resolve(struct dp_consumer *c, struct part *p, rd_kafka_topic_partition_list_t *times,
        rd_kafka_topic_partition_list_t *stored, struct dp_buf *err)
{
	bool want_end = (c->o.until == DP_UNTIL_END || c->o.track_end) && !p->end_known;
	bool fresh = p->pub.start < 0 && !(p->pub.next >= 0 && !stored_start(c));
	bool want_tail = fresh && c->o.from == DP_FROM_TAIL;
	int64_t lo = 0, hi = 0;

	if (want_end || want_tail) {
		int st = dp_kafka_watermarks(c->rk, p->topic, p->pub.partition,
		                             (int)c->kafka->timeout_ms, &lo, &hi, err);
		if (st)
			return st;
		p->wm_known = true;
		p->wm_lo = lo;
		p->wm_hi = hi;
	}
	if (want_end) {
		p->pub.end = hi;
		p->end_known = true;
		if (hi <= lo)
			reached_end(c, p);     /* empty: nothing to wait for */
	}
	if (p->pub.start >= 0) {
		p->target = p->pub.start;
		p->origin = FROM_HOOK;
	} else if (want_tail)
		p->target = hi - c->o.from_arg > lo ? hi - c->o.from_arg : lo;
	else if (fresh && c->o.from == DP_FROM_TIME)
		rd_kafka_topic_partition_list_add(times, p->topic, p->pub.partition)->offset =
			c->o.from_arg;
	else if (p->assigned_at == RD_KAFKA_OFFSET_INVALID)
		/* Stored: learn the offset itself, so release can seek to it. */
		rd_kafka_topic_partition_list_add(stored, p->topic, p->pub.partition);
	else if (fresh && c->o.from == DP_FROM_OFFSET) {
		p->target = p->assigned_at;
		p->origin = FROM_ARG;
	} else {
		p->target = p->assigned_at;
	}
	return 0;
}

/* ---- starts outside the records ------------------------------------------ */

/*
 * p was to go on at offset, outside its records lo..hi; librdkafka would
 * go on at to (auto.offset.reset; RD_KAFKA_OFFSET_INVALID: error).  The
 * out_of_range hook decides, else the engine says so and agrees.
 * Returns 0, or an exit status after saying why.
 */
static int
out_of_range(struct dp_consumer *c, struct part *p, int64_t offset, int64_t lo, int64_t hi,
             int64_t to, const char *what)
{
	bool past = offset > hi;
	char range[80];
	int st;

	if (c->h.out_of_range &&
	    (st = c->h.out_of_range(c, c->h.arg, &p->pub, offset, lo, hi)) != 0)
		return st;
	if (lo >= 0)
		snprintf(range, sizeof(range), "low..high watermark %lld..%lld", (long long)lo,
		         (long long)hi);
	else
		snprintf(range, sizeof(range), "high watermark %lld", (long long)hi);
	const char *why = past ? "the topic was deleted and created again, or its log lost "
	                         "records (an unclean leader election)"
	                       : "retention deleted records before they were read";
	if (to == RD_KAFKA_OFFSET_INVALID) {
		dp_err("%s [%d]: offset %lld%s is %s (%s): %s; auto.offset.reset=error stops here",
		       p->topic, (int)p->pub.partition, (long long)offset, what,
		       past ? "past the partition's end" : "before the partition's first record",
		       range, why);
		return DP_EX_CONFIG;
	}
	dp_warn("%s [%d]: offset %lld%s is %s (%s): %s; going on from offset %lld "
	        "(auto.offset.reset=%s)", p->topic, (int)p->pub.partition, (long long)offset, what,
	        past ? "past the partition's end" : "before the partition's first record", range,
	        why, (long long)to, c->reset_name);
	return 0;
}

/*
 * The held partitions' targets that came from outside the engine (the
 * assigned hook, the group's commit, --from N) against their records:
 * a start past the end would otherwise have librdkafka go back to
 * auto.offset.reset, and deliver() seek forward again, for ever.  Every
 * partition is looked at before the first failure is returned, so each
 * one is named.
 */
static int
check_ranges(struct dp_consumer *c, size_t n)
{
	int first = 0;

	for (size_t i = 0; i < n; i++) {
		struct part *p = PRIV(c->scratch[i]);
		char what[320];
		if (p->origin == FROM_ENGINE || p->target <= 0)
			continue;
		if (!p->wm_known) {
			struct dp_buf why = DP_BUF_INIT;
			int st = dp_kafka_watermarks(c->rk, p->topic, p->pub.partition,
			                             (int)c->kafka->timeout_ms, &p->wm_lo, &p->wm_hi,
			                             &why);
			if (st == DP_KAFKA_STOPPED) {
				dp_buf_free(&why);
				return st;
			}
			/* A check that cannot be made stops nothing: reading finds
			 * a position past the end too (deliver). */
			if (st)
				dp_debug("%s [%d]: not checking offset %lld against the partition's "
				         "records: %s", p->topic, (int)p->pub.partition,
				         (long long)p->target, dp_buf_str(&why));
			dp_buf_free(&why);
			if (st)
				continue;
			p->wm_known = true;
		}
		if (p->target >= p->wm_lo && p->target <= p->wm_hi)
			continue;
		int64_t to = c->reset_offset == RD_KAFKA_OFFSET_END         ? p->wm_hi
		             : c->reset_offset == RD_KAFKA_OFFSET_BEGINNING ? p->wm_lo
		                                                            : RD_KAFKA_OFFSET_INVALID;
		if (p->origin == FROM_COMMITTED)
			snprintf(what, sizeof(what), " (committed by group '%s')", c->o.group);
		else if (p->origin == FROM_ARG)
			snprintf(what, sizeof(what), " (--from)");
		else
			what[0] = '\0';
		int st = out_of_range(c, p, p->target, p->wm_lo, p->wm_hi, to, what);
		if (st) {
			if (!first)
				first = st;
			continue;
		}
		p->target = to;
	}
	return first;
}

/* Simple mode: start the fetcher of p at its target. */
static struct topic *
topic_find(const struct dp_consumer *c, const char *name)
{
	for (size_t i = 0; i < c->ntopics; i++)
		if (strcmp(c->topics[i].name, name) == 0)
			return &c->topics[i];
	return NULL;
}

static int
start_fetch(struct dp_consumer *c, struct part *p, struct dp_buf *err)
{
	struct topic *t = topic_find(c, p->topic);

	if (!t) {
		dp_buf_msgf(err, "internal error: %s is not a topic given", p->topic);
		return DP_EX_SOFTWARE;
	}
	if (!t->rkt)
		t->rkt = rd_kafka_topic_new(c->rk, p->topic, NULL);
	if (!t->rkt ||
	    rd_kafka_consume_start_queue(t->rkt, p->pub.partition, p->target, c->rkqu) < 0) {
		rd_kafka_resp_err_t e = rd_kafka_last_error();
		dp_buf_msgf(err, "cannot start reading %s [%d]: %s", p->topic,
		            (int)p->pub.partition, rd_kafka_err2str(e));
		return dp_kafka_exit_status(e);
	}
	p->started = true;
	return 0;
}

/* The held partitions, into c->scratch; with hook_pending only if asked. */
static size_t
held_parts(struct dp_consumer *c, bool hook_pending)
{
	size_t n = 0;

	for (size_t i = 0; i < c->nparts; i++) {
		struct part *p = PRIV(c->parts[i]);
		if (p->held && p->pub.assigned && (!hook_pending || p->hook_pending))
			c->scratch[n++] = &p->pub;
	}
	return n;
}

/* Simple mode: start the fetchers; the ones the hook paused start paused. */
static int
release_simple(struct dp_consumer *c, size_t n, struct dp_buf *err)
{
	rd_kafka_topic_partition_list_t *pauses = rd_kafka_topic_partition_list_new((int)n);
	int st = 0;

	for (size_t i = 0; i < n && !st; i++) {
		struct part *p = PRIV(c->scratch[i]);
		if ((st = start_fetch(c, p, err)) != 0)
			break;
		if (p->pub.paused)
			rd_kafka_topic_partition_list_add(pauses, p->topic, p->pub.partition);
		p->held = false;
		if (p->target >= 0)
			p->pub.next = p->target;
	}
	if (!st && pauses->cnt > 0)
		st = toppar_result(rd_kafka_pause_partitions(c->rk, pauses), pauses, "pause", err);
	rd_kafka_topic_partition_list_destroy(pauses);
	return st;
}

/*
 * Group mode: resume, then seek to the target.  The seek comes second on
 * purpose: librdkafka 2.0.2 wakes a partition's fetcher on a seek but not
 * on a resume (rdkafka_partition.c), which would leave it idle for up to
 * a second; whatever it fetched from its own position in between is
 * dropped by the seek's new version.
 */
static int
release_group(struct dp_consumer *c, size_t n, struct dp_buf *err)
{
	rd_kafka_topic_partition_list_t *seeks = rd_kafka_topic_partition_list_new((int)n);
	rd_kafka_topic_partition_list_t *resumes = rd_kafka_topic_partition_list_new((int)n);
	int st = 0;

	for (size_t i = 0; i < n; i++) {
		struct part *p = PRIV(c->scratch[i]);
		if (!p->pub.paused)
			rd_kafka_topic_partition_list_add(resumes, p->topic, p->pub.partition);
		/* INVALID: no committed offset and auto.offset.reset=error. */
		if (p->target != RD_KAFKA_OFFSET_INVALID)
			rd_kafka_topic_partition_list_add(seeks, p->topic, p->pub.partition)->offset =
				p->target;
	}
	if (resumes->cnt > 0 &&
	    (st = toppar_result(rd_kafka_resume_partitions(c->rk, resumes), resumes, "resume",
	                        err)) != 0)
		goto out;
	if (seeks->cnt > 0)
		seek_list(c, seeks);
	for (size_t i = 0; i < n; i++) {
		struct part *p = PRIV(c->scratch[i]);
		rd_kafka_topic_partition_t *tp =
			rd_kafka_topic_partition_list_find(seeks, p->topic, p->pub.partition);
		if (tp && tp->err) {
			/* It stays held (what it delivers is not handed over)
			 * and is sought again at the next poll. */
			if (seek_again(tp->err) &&
			    dp_time_mono_ms() - p->held_since < c->kafka->timeout_ms) {
				dp_debug("%s [%d]: seek not done yet (%s); again at the next poll",
				         p->topic, (int)p->pub.partition, rd_kafka_err2str(tp->err));
				continue;
			}
			dp_buf_msgf(err, "cannot seek in %s [%d] to offset %lld: %s", p->topic,
			            (int)p->pub.partition, (long long)p->target,
			            rd_kafka_err2str(tp->err));
			st = dp_kafka_exit_status(tp->err);
			break;
		}
		p->held = false;
		if (p->target >= 0)
			p->pub.next = p->target;
	}
out:
	rd_kafka_topic_partition_list_destroy(seeks);
	rd_kafka_topic_partition_list_destroy(resumes);
	return st;
}

/* Targets from a look-up list; missing ones become fallback. */
static void
targets_from(struct dp_consumer *c, const rd_kafka_topic_partition_list_t *l, int64_t fallback)
{
	for (int i = 0; i < l->cnt; i++) {
		struct part *p = find_part(c, l->elems[i].topic, l->elems[i].partition);
		p->target = l->elems[i].offset >= 0 ? l->elems[i].offset : fallback;
	}
}

/* Held partitions go: the assigned hook, the queries, then start/seek and resume. */
static int
release(struct dp_consumer *c, struct dp_buf *err)
{
	rd_kafka_topic_partition_list_t *times, *stored;
	int timeout = (int)c->kafka->timeout_ms;
	size_t n;
	int st = 0;

	if (c->h.assigned && (n = held_parts(c, true)) > 0) {
		for (size_t i = 0; i < n; i++)
			PRIV(c->scratch[i])->hook_pending = false;
		if ((st = c->h.assigned(c, c->h.arg, c->scratch, n)) != 0)
			return st;
	}
	if ((n = held_parts(c, false)) == 0)
		return 0;
	times = rd_kafka_topic_partition_list_new((int)n);
	stored = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n && !st; i++) {
		struct part *p = PRIV(c->scratch[i]);
		p->hook_pending = false;
		if (p->target == NO_TARGET)
			st = resolve(c, p, times, stored, err);
	}
	/* Nothing that late: start at the end. */
	if (!st && times->cnt > 0 && !(st = dp_kafka_offsets_for_times(c->rk, times, timeout, err)))
		targets_from(c, times, RD_KAFKA_OFFSET_END);
	/* No committed offset: auto.offset.reset says, as librdkafka would. */
	if (!st && stored->cnt > 0 && !(st = dp_kafka_committed(c->rk, stored, timeout, err))) {
		targets_from(c, stored, c->reset_offset);
		/*
		 * Handed back: a commit behind where this member was means its
		 * last commit failed (its session was lost while the broker
		 * was away, say); the records from there on were handed over
		 * here already, so go on where it was.  A commit beyond it
		 * means another member read on: start there.
		 */
		for (int i = 0; i < stored->cnt; i++) {
			struct part *p = find_part(c, stored->elems[i].topic,
			                           stored->elems[i].partition);
			if (p->pub.next >= 0 && p->target < p->pub.next)
				p->target = p->pub.next;
			else if (stored->elems[i].offset >= 0)
				p->origin = FROM_COMMITTED;
		}
	}
	rd_kafka_topic_partition_list_destroy(times);
	rd_kafka_topic_partition_list_destroy(stored);
	if (!st)
		st = check_ranges(c, n);
	if (st)
		return st;
	return c->group ? release_group(c, n, err) : release_simple(c, n, err);
}

/* ---- the consume loop ------------------------------------------------------- */

static void
partition_eof(struct dp_consumer *c, const rd_kafka_message_t *m)
{
	struct part *p = part_of(c, m);

	if (!p || p->held || p->drop)
		return;
	dp_info("%s [%d] at end, offset %lld", p->topic, (int)p->pub.partition,
	        (long long)m->offset);
	p->pub.at_eof = true;
	if (p->pub.next < 0)
		p->pub.next = m->offset;        /* where the next record will be */
	if (p->end_known && m->offset >= p->pub.end)
		reached_end(c, p);
	if (c->o.until == DP_UNTIL_TIME && dp_time_now_ms() >= c->o.until_ms)
		p->pub.done = true;
}

/* A record that is not handed over now is read again from next. */
static void
drop(struct part *p, const rd_kafka_message_t *m)
{
	if (p->pub.next < 0)
		p->pub.next = m->offset;
	p->reseek = true;
}

static void
deliver(struct dp_consumer *c, struct part *p, const rd_kafka_message_t *m)
{
	enum dp_consumer_verdict v;

	/*
	 * A held or revoked partition delivers nothing: pausing and
	 * unassigning bump its version in librdkafka, which then drops what
	 * was fetched before.  So only the batch in hand needs care.
	 */
	if (p->held || !p->pub.assigned)
		return;
	if (c->halting || p->drop || p->reseek) {
		drop(p, m);
		p->drop = true;
		return;
	}
	/*
	 * Before the position this engine set: librdkafka 2.0.2 went back to
	 * the logical offset the partition was assigned at (an answer to its
	 * offset query outdated by our seek makes it query again,
	 * rd_kafka_toppar_handle_Offset), so the hook's start would be lost
	 * and records handed over twice.  Seek to the position again.
	 */
	if (p->pub.next >= 0 && m->offset < p->pub.next) {
		int64_t lo, hi;
		/*
		 * Unless the position is past the log's end now (an unclean
		 * leader election cut it while this member read): then
		 * librdkafka went back to auto.offset.reset, and seeking to
		 * the position again would do so for ever.  The cached end is
		 * the newest fetch's, which brought this record.
		 */
		if (rd_kafka_get_watermark_offsets(c->rk, p->topic, p->pub.partition, &lo, &hi) ||
		    hi < 0 || hi >= p->pub.next) {
			dp_debug("%s [%d]: offset %lld before the position %lld; seeking again",
			         p->topic, (int)p->pub.partition, (long long)m->offset,
			         (long long)p->pub.next);
			drop(p, m);
			p->drop = true;
			return;
		}
		int st = out_of_range(c, p, p->pub.next, lo, hi, m->offset, " (the position)");
		if (st) {
			fail(c, st, NULL);
			drop(p, m);
			p->drop = true;
			return;
		}
		p->pub.next = m->offset;
	}
	p->pub.at_eof = false;
	if (p->pub.done) {
		/* Past its stop point while others catch up: not handed over. */
		p->pub.next = m->offset + 1;
		return;
	}
	if (c->o.until == DP_UNTIL_TIME && rd_kafka_message_timestamp(m, NULL) >= c->o.until_ms) {
		p->pub.done = true;
		p->pub.next = m->offset + 1;
		return;
	}
	v = c->h.record(c, c->h.arg, &p->pub, m);
	switch (v) {
	case DP_CONSUMER_NEXT:
	case DP_CONSUMER_LAST:
		p->pub.next = m->offset + 1;
		p->fresh = true;
		if (c->o.metrics) {
			int64_t ts = rd_kafka_message_timestamp(m, NULL);
			p->obs_n++;
			if (ts > p->obs_ts)
				p->obs_ts = ts;
		}
		if (c->commits)
			pending_add(c, m, p);
		if (p->end_known && m->offset + 1 >= p->pub.end)
			reached_end(c, p);
		if (v == DP_CONSUMER_LAST)
			c->halting = true;
		break;
	case DP_CONSUMER_HALT:
		drop(p, m);
		c->halting = true;
		break;
	case DP_CONSUMER_AGAIN:
	default:
		drop(p, m);
		p->drop = true;
		break;
	}
}

/*
 * Simple mode: a topic being read was deleted.  1 when that is no
 * failure: the topic was dropped already, the gone hook drops it, or it
 * says the topic is there (the report was about an earlier one).
 */
static bool
gone(struct dp_consumer *c, const char *topic)
{
	struct topic *t = topic_find(c, topic);

	if (!t)
		return false;
	if (!t->dropped) {
		int r = c->h.gone ? c->h.gone(c, c->h.arg, topic) : DP_EX_UNAVAILABLE;
		if (r == DP_CONSUMER_KEEP)
			return true;
		if (r != 0)
			return false;
		dp_consumer_drop_topic(c, topic);
	}
	dp_debug("topic '%s' is gone; it was no longer read", topic);
	return true;
}

static void
on_message(struct dp_consumer *c, rd_kafka_message_t *m)
{
	char msg[512];

	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		partition_eof(c, m);
	} else if (m->err) {
		const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
		if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
		    m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
		    m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
			if (m->err != RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED && !c->group &&
			    gone(c, topic))
				return;
			snprintf(msg, sizeof(msg), "topic '%s': %s", topic, rd_kafka_message_errstr(m));
			c->topic_gone |= m->err != RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
			fail(c, dp_kafka_exit_status(m->err), msg);
		} else {
			dp_warn("kafka: %s", rd_kafka_message_errstr(m));
		}
	} else {
		struct part *p = part_of(c, m);
		if (!p) {
			fail(c, DP_EX_SOFTWARE, "out of memory");
			return;
		}
		deliver(c, p, m);
	}
}

/*
 * Prefetch wake-up.  librdkafka 2.0.2 stops fetching a partition when its
 * queue holds queued.min.messages records or queued.max.messages.kbytes
 * of payload (in group mode every partition's queue is the one consumer
 * queue, so the whole of it counts), and then decides again only when its
 * broker thread wakes for something else, up to a second later
 * (rd_kafka_toppar_fetch_decide: "not fetchable", no backoff time;
 * fetch.queue.backoff.ms arrived in 2.1).  A request to the broker wakes
 * that thread, which then finds the queue drained and fetches
 * (wake_fetcher).
 *
 * Whether the fetcher may have stopped is read from the queue around
 * each poll: before it, the queue holds all that came since the last
 * one; after it, it held at most what is left plus what the poll took.
 * So a fetch that filled it to the bound (a 1 MB producer batch is
 * 25,000 records of 40 bytes: one fetch can do it) is always noticed.
 * Bytes are estimated from the records' recent size, generously.  The
 * wake comes before the poll that would take the queue below half the
 * bound, so the fetcher decides while records are still queued and the
 * next fetch arrives while they are handled.
 * And a poll that found nothing while a partition is not at its end
 * wakes the fetcher too, at most every WAKE_IDLE_MS, in case an
 * estimate missed.
 */
#define WAKE_IDLE_MS 100

static void
prefetch_seen(struct dp_consumer *c, size_t peak)
{
	if (peak >= c->prefetch_msgs || 4 * peak * c->record_len >= 3 * c->prefetch_bytes)
		c->prefetch_full = true;
}

static void
wake_fetcher(struct dp_consumer *c)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->nparts);

	/*
	 * An offsets-for-times request (latest) to the leaders of every
	 * partition being read: each leader's thread wakes to send it.  The
	 * call does not wait for the answer (timeout 0; librdkafka drops
	 * it), so the reader never waits behind a fetch that the broker
	 * holds for fetch.wait.max.ms, as a blocking query did.
	 */
	for (size_t i = 0; i < c->nparts; i++) {
		struct part *p = PRIV(c->parts[i]);
		if (running(c, p) && !p->pub.paused)
			rd_kafka_topic_partition_list_add(l, p->topic, p->pub.partition)->offset =
				RD_KAFKA_OFFSET_END;
	}
	if (l->cnt > 0)
		rd_kafka_offsets_for_times(c->rk, l, 0);
	rd_kafka_topic_partition_list_destroy(l);
	c->prefetch_full = false;
	c->wake_ms = dp_time_mono_ms();
}

/*
 * Before a poll: how many records it may take.  A quarter of the bound
 * at most, so that a poll never takes the queue from full to empty
 * before the wake-up (4 KB records under a 1 MB bound: 64 a poll).
 */
static size_t
prefetch_before(struct dp_consumer *c)
{
	size_t queued = rd_kafka_queue_length(c->group ? c->cgq : c->rkqu);
	size_t take = c->prefetch_bytes / 4 / c->record_len;

	if (take > c->prefetch_msgs / 4)
		take = c->prefetch_msgs / 4;
	take = take < 1 ? 1 : take > BATCH ? BATCH : take;
	size_t left = queued > take ? queued - take : 0;
	prefetch_seen(c, queued);
	if (c->prefetch_full && 2 * left <= c->prefetch_msgs &&
	    2 * left * c->record_len <= c->prefetch_bytes)
		wake_fetcher(c);
	return take;
}

/* After a poll that took `taken` records of `bytes` payload bytes. */
static void
prefetch_after(struct dp_consumer *c, size_t taken, size_t bytes)
{
	bool idle = false;

	if (taken) {
		/* Quick to grow, slow to shrink: too large only wakes early. */
		size_t len = bytes / taken + 1;
		c->record_len = len > c->record_len ? len : (3 * c->record_len + len) / 4;
	}
	prefetch_seen(c, rd_kafka_queue_length(c->group ? c->cgq : c->rkqu) + taken);
	if (taken || dp_time_mono_ms() - c->wake_ms < WAKE_IDLE_MS)
		return;
	for (size_t i = 0; i < c->nparts && !idle; i++) {
		struct part *p = PRIV(c->parts[i]);
		idle = running(c, p) && !p->pub.paused && !p->pub.at_eof && !p->pub.done;
	}
	if (idle)
		wake_fetcher(c);
}

/*
 * Keep the end each fetch showed for the partitions that gave records,
 * once per poll: librdkafka forgets it with the topic, and a reader whose
 * topic is deleted must still know whether it had read everything.
 */
static void
note_ends(struct dp_consumer *c)
{
	int64_t lo, hi;

	for (size_t i = 0; i < c->nparts; i++) {
		struct part *p = PRIV(c->parts[i]);
		if (!p->fresh)
			continue;
		p->fresh = false;
		if (!rd_kafka_get_watermark_offsets(c->rk, p->topic, p->pub.partition, &lo, &hi) &&
		    hi >= 0)
			p->seen_end = hi;
	}
}

/*
 * opts.metrics, once per poll: what each partition handed over, each
 * one's lag (from the watermark of librdkafka's last fetch, at most once
 * a second), and which partitions are this member's now.
 */
#define OBS_LAG_MS 1000

static void
observe(struct dp_consumer *c)
{
	int64_t now = dp_time_mono_ms(), lo, hi;
	bool lags = now - c->obs_lag_ms >= OBS_LAG_MS;

	if (lags)
		c->obs_lag_ms = now;
	for (size_t i = 0; i < c->nparts; i++) {
		struct part *p = PRIV(c->parts[i]);
		if (!p->obs && p->pub.assigned &&
		    (p->obs = dp_obs_part_new(p->topic, p->pub.partition)))
			p->obs_assigned = true;
		if (p->pub.assigned != p->obs_assigned) {
			dp_obs_part_assigned(p->obs, p->pub.assigned);
			p->obs_assigned = p->pub.assigned;
		}
		if (p->obs_n) {
			dp_obs_part_read(p->obs, p->obs_n, p->obs_ts);
			p->obs_n = 0;
		}
		if (!lags || !p->pub.assigned)
			continue;
		if (p->pub.at_eof)
			dp_obs_part_lag(p->obs, 0);
		else if (p->pub.next >= 0 &&
		         !rd_kafka_get_watermark_offsets(c->rk, p->topic, p->pub.partition, &lo, &hi) &&
		         hi >= 0)
			dp_obs_part_lag(p->obs, hi > p->pub.next ? hi - p->pub.next : 0);
	}
}

static int
failed(struct dp_consumer *c, struct dp_buf *err, int *status)
{
	if (c->failmsg.len || c->failmsg.lost)
		dp_buf_msgf(err, "%s", dp_buf_str(&c->failmsg));
	*status = c->fail;
	return DP_CONSUMER_FAILED;
}

/* Partitions idle at their end once --until's time has come are done. */
static void
idle_until(struct dp_consumer *c)
{
	if (c->o.until != DP_UNTIL_TIME || dp_time_now_ms() < c->o.until_ms)
		return;
	for (size_t i = 0; i < c->nparts; i++)
		if (c->parts[i]->at_eof)
			c->parts[i]->done = true;
}

/*
 * A member still without partitions a while after it joined: say once
 * why, as the group tells it.  The usual reason is a member that
 * stopped without leaving (kill -9, a crash): the group waits for it to
 * rejoin until its session times out, and so does every other member.
 */
static void
say_waiting(struct dp_consumer *c)
{
	int64_t now = dp_time_mono_ms();
	struct dp_admin_group g;
	struct dp_buf err = DP_BUF_INIT, who = DP_BUF_INIT;
	char d[48], q[32];
	size_t others = 0;

	if (!c->real_group || c->assigned_once || c->said_waiting || !c->subscribed_ms ||
	    now < c->wait_ask_ms)
		return;
	c->wait_ask_ms = now + WAIT_ASK_MS;
	char *me = rd_kafka_memberid(c->rk);
	int st = dp_admin_describe_group(c->rk, c->o.group, 1000, &g, &err);
	for (size_t i = 0; !st && i < g.nmembers; i++) {
		if (me && !strcmp(me, g.members[i].member_id))
			continue;
		dp_buf_msgf(&who, "%s%s on %s", others++ ? ", " : "", g.members[i].client_id,
		            g.members[i].host);
	}
	if (me)
		rd_kafka_mem_free(c->rk, me);
	dp_duration_format((now - c->subscribed_ms) / 1000 * 1000, d);
	if (!st && others && (g.state == RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE ||
	                      g.state == RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE)) {
		if (!dp_kafka_conf_str(rd_kafka_conf(c->rk), "session.timeout.ms", q, sizeof(q)))
			snprintf(q, sizeof(q), "45000");
		dp_warn("no partitions yet after %s: group '%s' waits for %zu member%s to rejoin "
		        "(%s); a member that stopped without leaving the group (kill -9, a crash, "
		        "a lost network) holds its partitions until its session times out "
		        "(session.timeout.ms=%s); with -X group.instance.id=NAME a restarted member "
		        "takes its own back at once", d, c->o.group, others, others == 1 ? "" : "s",
		        dp_buf_str(&who), q);
		c->said_waiting = true;
	} else if (now - c->subscribed_ms >= WAIT_VAGUE_MS) {
		if (st)
			dp_warn("no partitions yet after %s from group '%s' (%s)", d, c->o.group,
			        dp_buf_str(&err));
		else
			dp_warn("no partitions yet after %s from group '%s', which is %s with %zu "
			        "other member%s%s%s%s", d, c->o.group,
			        rd_kafka_consumer_group_state_name(g.state), others,
			        others == 1 ? "" : "s", others ? " (" : "", dp_buf_str(&who),
			        others ? ")" : "");
		c->said_waiting = true;
	}
	dp_admin_group_clear(&g);
	dp_buf_free(&err);
	dp_buf_free(&who);
}

/*
 * During an outage (every broker down, said once by on_error): the end
 * of it, once a record came or a broker answers a metadata request
 * (asked at most every OUTAGE_PROBE_MS, briefly).
 */
static void
outage_over(struct dp_consumer *c, int got)
{
	int64_t now = dp_time_mono_ms();
	const struct rd_kafka_metadata *md;
	char d[48];

	if (!c->outage_ms)
		return;
	if (!got) {
		if (now - c->outage_probe_ms < OUTAGE_PROBE_MS)
			return;
		c->outage_probe_ms = now;
		if (rd_kafka_metadata(c->rk, 0, NULL, &md, 200) != RD_KAFKA_RESP_ERR_NO_ERROR)
			return;
		rd_kafka_metadata_destroy(md);
	}
	if (said_outage_ms)
		dp_warn("kafka answers again, after an outage of %s",
		        dp_duration_format((now - said_outage_ms + 50) / 100 * 100, d));
	said_outage_ms = 0;
	c->outage_ms = 0;
	if (c->o.metrics)
		dp_health_link("kafka", true);
}

int
dp_consumer_poll(struct dp_consumer *c, int timeout_ms, struct dp_buf *err, int *status)
{
	int n = 0, st;
	size_t bytes = 0, take = BATCH;

	c->rebalanced = false;
	if (c->fail)
		return failed(c, err, status);
	if (c->halt || c->halting) {
		c->halt = c->halting = false;
		return DP_CONSUMER_HALTED;
	}
	if (dp_sig_stop)
		return DP_CONSUMER_SIGNAL;
	if ((st = release(c, err)) != 0 || (st = reseek(c, err)) != 0) {
		if (st == DP_KAFKA_STOPPED)
			return DP_CONSUMER_SIGNAL;
		*status = st;
		return DP_CONSUMER_FAILED;
	}
	if (c->commitq)
		rd_kafka_queue_poll_callback(c->commitq, 0);
	idle_until(c);
	if (all_done(c))
		return DP_CONSUMER_END;
	for (size_t i = 0; i < c->nparts; i++)
		PRIV(c->parts[i])->drop = false;

	if (!c->group || c->cgq)
		take = prefetch_before(c);
	if (!c->group) {
		rd_kafka_message_t *msgs[BATCH];
		/*
		 * librdkafka's batch call waits until the batch is full or the
		 * time is up: wait for the first record only, then take what
		 * is there.  Otherwise a live record, or the last ones before
		 * the end, waited out the timeout.
		 */
		ssize_t got = rd_kafka_consume_batch_queue(c->rkqu, timeout_ms, msgs, 1);
		if (got == 1 && take > 1) {
			ssize_t more = rd_kafka_consume_batch_queue(c->rkqu, 0, msgs + 1, take - 1);
			got += more > 0 ? more : 0;
		}
		for (ssize_t i = 0; i < got; i++) {
			bytes += msgs[i]->len;
			on_message(c, msgs[i]);
			rd_kafka_message_destroy(msgs[i]);
		}
		n = got > 0 ? (int)got : 0;
		rd_kafka_poll(c->rk, 0);
		prefetch_after(c, (size_t)n, bytes);
	} else {
		while ((size_t)n < take && !c->halting && !c->fail && !c->rebalanced) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, n ? 0 : timeout_ms);
			if (!m)
				break;
			n++;
			bytes += m->len;
			on_message(c, m);
			rd_kafka_message_destroy(m);
		}
		if (c->cgq)
			prefetch_after(c, (size_t)n, bytes);
	}
	if (n > 0)
		note_ends(c);
	if (c->o.metrics)
		observe(c);
	outage_over(c, n);
	say_waiting(c);
	if (c->fail)
		return failed(c, err, status);
	/*
	 * A sync point whenever the queue ran dry or sync_ms went by: a
	 * steady trickle must not sit in a buffer.  Not at the end of the
	 * records asked for: dp_consumer_close syncs, after the caller knows
	 * that everything was read (a signal while the last output waits for
	 * its reader is then after the end, not before it).
	 */
	bool done = all_done(c), at_end = done && c->o.until != DP_UNTIL_NONE;
	if (!c->halting && !at_end &&
	    ((size_t)n < take || dp_time_mono_ms() - c->last_sync_ms >= c->o.sync_ms))
		dp_consumer_sync(c);
	if (c->halt || c->halting) {
		c->halt = c->halting = false;
		return DP_CONSUMER_HALTED;
	}
	return done ? DP_CONSUMER_END : DP_CONSUMER_MORE;
}

/* ---- set-up ------------------------------------------------------------------- */

/*
 * librdkafka's legacy consumer (simple mode) reports a partition whose
 * topic was deleted only through the error callback, again and again; a
 * reader then waits for ever.  It is the end of that reader, as a
 * subscribed topic that disappears is for a group member.
 */
static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct dp_consumer *c = opaque;

	if (!c->group && (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
	                  err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)) {
		/* librdkafka 2.0.2 names the partition first: "T [0]: topic does not exist". */
		for (size_t i = 0; i < c->ntopics; i++) {
			size_t len = strlen(c->topics[i].name);
			if (!strncmp(reason, c->topics[i].name, len) && !strncmp(reason + len, " [", 2) &&
			    gone(c, c->topics[i].name))
				return;
		}
		fail(c, DP_EX_NOTFOUND, reason);
		return;
	}
	/*
	 * Every broker down: said once, here, and its end once, with its
	 * length (outage_over); librdkafka's lines about each broker and
	 * each retry stay at -v.
	 */
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		if (c->o.metrics)
			dp_health_link("kafka", false);
		if (!c->outage_ms)
			c->outage_ms = c->outage_probe_ms = dp_time_mono_ms();
		if (!said_outage_ms) {
			said_outage_ms = c->outage_ms;
			dp_warn("lost every kafka broker (%s); waiting for them to come back", reason);
		}
		return;
	}
	dp_kafka_on_error(rk, err, reason, opaque);
}

static int
configure(rd_kafka_conf_t *conf, void *arg, struct dp_buf *err)
{
	struct dp_consumer *c = arg;
	const char *group = c->o.group ? c->o.group : c->private_group;
	char q[32];

	if (group && dp_kafka_conf_set(conf, "group.id", group, err) < 0)
		return -1;
	if (c->group)
		rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	if (c->real_group)
		rd_kafka_conf_set_offset_commit_cb(conf, on_auto_commit);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, c);
	c->reset_offset = RD_KAFKA_OFFSET_BEGINNING;
	snprintf(c->reset_name, sizeof(c->reset_name), "earliest");
	if (dp_kafka_conf_str(conf, "auto.offset.reset", q, sizeof(q))) {
		if (!strcmp(q, "latest") || !strcmp(q, "largest") || !strcmp(q, "end")) {
			c->reset_offset = RD_KAFKA_OFFSET_END;
			snprintf(c->reset_name, sizeof(c->reset_name), "latest");
		} else if (!strcmp(q, "error")) {
			c->reset_offset = RD_KAFKA_OFFSET_INVALID;
			snprintf(c->reset_name, sizeof(c->reset_name), "error");
		}
	}
	/*
	 * fetch.max.bytes is ours only as a default (FETCH_MAX_BYTES):
	 * librdkafka refuses a fetch.max.bytes below message.max.bytes, so
	 * a -X message.max.bytes above it raises it instead of failing.
	 */
	char fm[24], mm[24];
	if (dp_kafka_conf_str(conf, "fetch.max.bytes", fm, sizeof(fm)) &&
	    !strcmp(fm, FETCH_MAX_BYTES) &&
	    dp_kafka_conf_str(conf, "message.max.bytes", mm, sizeof(mm)) &&
	    strtoull(mm, NULL, 10) > strtoull(fm, NULL, 10) &&
	    dp_kafka_conf_set(conf, "fetch.max.bytes", mm, err) < 0)
		return -1;
	/* The bound as it is now, -X included: the wake-up follows it. */
	c->prefetch_msgs = 100000;
	c->prefetch_bytes = (size_t)65536 * 1024;
	if (dp_kafka_conf_str(conf, "queued.min.messages", q, sizeof(q)))
		c->prefetch_msgs = (size_t)strtoull(q, NULL, 10);
	if (dp_kafka_conf_str(conf, "queued.max.messages.kbytes", q, sizeof(q)))
		c->prefetch_bytes = (size_t)strtoull(q, NULL, 10) * 1024;
	c->record_len = 4096;  /* until records come: the first polls take few */
	return 0;
}

struct dp_consumer *
dp_consumer_new(const struct dp_kafka_opts *kafka, const struct dp_consumer_opts *opts,
                const struct dp_consumer_hooks *hooks, struct dp_buf *err, int *status)
{
	struct dp_consumer *c = calloc(1, sizeof(*c));
	bool pattern = false;

	if (!c) {
		dp_buf_msgf(err, "out of memory");
		*status = DP_EX_SOFTWARE;
		return NULL;
	}
	c->o = *opts;
	c->o.metrics = opts->metrics && dp_obs_on();
	c->h = *hooks;
	c->kafka = kafka;
	if (!c->o.sync_ms)
		c->o.sync_ms = 100;
	for (size_t i = 0; i < opts->ntopics; i++)
		if (opts->topics[i][0] == '^')
			pattern = true;
	c->real_group = opts->group != NULL;
	c->group = c->real_group || pattern;
	c->commits = c->real_group && !opts->manual_commit;
	*status = DP_EX_SOFTWARE;
	if (opts->npartitions && c->group) {
		dp_buf_msgf(err, "chosen partitions need named topics and no group");
		goto fail;
	}
	if (pattern && !opts->group) {
		/* A pattern needs a group to subscribe; nothing is committed under it. */
		char gid[128];
		snprintf(gid, sizeof(gid), "%s-%ld-%lld", dp_log_progname(), (long)getpid(),
		         (long long)dp_time_now_ms());
		if (!(c->private_group = strdup(gid)))
			goto nomem;
	}

	/*
	 * The prefetch, bounded in bytes (see PREFETCH_BYTES): half for the
	 * records' payload, half for librdkafka's own cost of each record;
	 * and fetches of 1 MB (librdkafka's least), which a broker still
	 * exceeds by the rest of a record batch.
	 */
	size_t pf = opts->prefetch_bytes ? opts->prefetch_bytes : PREFETCH_BYTES;
	char pf_msgs[24], pf_kb[24];
	snprintf(pf_msgs, sizeof(pf_msgs), "%zu", pf / 2 / RECORD_COST ? pf / 2 / RECORD_COST : 1);
	snprintf(pf_kb, sizeof(pf_kb), "%zu", pf / 2 / 1024 ? pf / 2 / 1024 : 1);
	const struct dp_kv engine[] = {
		{ "enable.auto.offset.store", "false" },
		{ "enable.auto.commit", c->commits ? "true" : "false" },
		{ "enable.partition.eof", "true" },
		{ "auto.offset.reset", "earliest" },
		{ "allow.auto.create.topics", "false" },
		{ "topic.metadata.refresh.interval.ms", pattern ? "5000" : "300000" },
		{ "queued.min.messages", pf_msgs },
		{ "queued.max.messages.kbytes", pf_kb },
		{ "fetch.max.bytes", FETCH_MAX_BYTES },
		{ "fetch.wait.max.ms", END_FETCH_WAIT_MS },     /* last: only to an end */
	};
	size_t ne = sizeof(engine) / sizeof(engine[0]) - (opts->until != DP_UNTIL_END);
	c->defaults = calloc(ne + opts->ndefaults, sizeof(*c->defaults));
	if (!c->defaults)
		goto nomem;
	memcpy(c->defaults, engine, ne * sizeof(engine[0]));
	if (opts->ndefaults)
		memcpy(c->defaults + ne, opts->defaults, opts->ndefaults * sizeof(*opts->defaults));
	c->ndefaults = ne + opts->ndefaults;

	c->rk = dp_kafka_new(kafka, RD_KAFKA_CONSUMER, c->defaults, c->ndefaults, configure, c,
	                     err, status);
	if (!c->rk)
		goto fail;
	*status = DP_EX_SOFTWARE;
	if (c->group) {
		rd_kafka_poll_set_consumer(c->rk);
		if (c->real_group && !(c->commitq = rd_kafka_queue_new(c->rk)))
			goto nomem;
		c->cgq = rd_kafka_queue_get_consumer(c->rk);
	} else {
		c->rkqu = rd_kafka_queue_new(c->rk);
		c->topics = calloc(opts->ntopics ? opts->ntopics : 1, sizeof(*c->topics));
		if (!c->rkqu || !c->topics)
			goto nomem;
		for (size_t i = 0; i < opts->ntopics; i++, c->ntopics++)
			if (!(c->topics[i].name = strdup(opts->topics[i])))
				goto nomem;
	}
	c->pending = rd_kafka_topic_partition_list_new(8);
	if (!c->pending)
		goto nomem;
	c->last_sync_ms = dp_time_mono_ms();
	*status = 0;
	return c;
nomem:
	dp_buf_msgf(err, "out of memory");
fail:
	dp_consumer_free(c);
	return NULL;
}

int
dp_consumer_connect(struct dp_consumer *c, struct dp_buf *err)
{
	const char **names = calloc(c->o.ntopics + 1, sizeof(*names));
	int *counts = calloc(c->o.ntopics + 1, sizeof(*counts));
	size_t nn = 0;
	int st = 0;

	if (!names || !counts) {
		dp_buf_msgf(err, "out of memory");
		st = DP_EX_SOFTWARE;
		goto out;
	}
	/* Named topics must exist; patterns may match nothing yet. */
	for (size_t i = 0; i < c->o.ntopics; i++)
		if (c->o.topics[i][0] != '^')
			names[nn++] = c->o.topics[i];
	st = dp_kafka_connect(c->rk, c->kafka, names, nn, counts, err);
	if (st)
		goto out;
	if (c->group) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(
			(int)c->o.ntopics);
		for (size_t i = 0; i < c->o.ntopics; i++)
			rd_kafka_topic_partition_list_add(l, c->o.topics[i], RD_KAFKA_PARTITION_UA);
		rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, l);
		rd_kafka_topic_partition_list_destroy(l);
		if (e) {
			dp_buf_msgf(err, "cannot subscribe: %s", rd_kafka_err2str(e));
			st = dp_kafka_exit_status(e);
		}
		c->subscribed_ms = dp_time_mono_ms();
		c->wait_ask_ms = c->subscribed_ms + WAIT_ASK_MS;
		goto out;
	}
	/* Simple mode: every topic is named; take its partitions, held. */
	for (size_t i = 0; i < nn && !st; i++) {
		for (size_t j = 0; j < c->o.npartitions; j++) {
			if (c->o.partitions[j] >= counts[i]) {
				dp_buf_msgf(err, "topic '%s' has no partition %d (it has %d: 0-%d)",
				            names[i], (int)c->o.partitions[j], counts[i], counts[i] - 1);
				st = DP_EX_NOTFOUND;
				goto out;
			}
		}
		size_t np = c->o.npartitions ? c->o.npartitions : (size_t)counts[i];
		for (size_t j = 0; j < np; j++) {
			int32_t part = c->o.npartitions ? c->o.partitions[j] : (int32_t)j;
			struct part *p = add_part(c, names[i], part);
			if (!p) {
				dp_buf_msgf(err, "out of memory");
				st = DP_EX_SOFTWARE;
				goto out;
			}
			if (!p->pub.assigned)
				take(c, p);
		}
	}
	c->assigned_once = true;
out:
	if (!st && c->o.metrics)
		dp_health_link("kafka", true);
	free(names);
	free(counts);
	return st;
}

int
dp_consumer_close(struct dp_consumer *c)
{
	c->closing = true;
	dp_consumer_sync(c);
	if (!c->group) {
		for (size_t i = 0; i < c->nparts; i++) {
			struct part *p = PRIV(c->parts[i]);
			struct topic *t = p->started ? topic_find(c, p->topic) : NULL;
			if (t && t->rkt)
				rd_kafka_consume_stop(t->rkt, p->pub.partition);
			p->started = false;
		}
	} else {
		commit_stored(c);
		/* Leaving the group revokes everything: the revoked hook runs,
		 * and commits what it stored. */
		rd_kafka_consumer_close(c->rk);
	}
	c->closed = true;
	for (size_t i = 0; i < c->nparts; i++)
		if (PRIV(c->parts[i])->unsaved >= 0)
			c->commit_failures++;
	return c->commit_failures ? DP_EX_TEMPFAIL : 0;
}

void
dp_consumer_free(struct dp_consumer *c)
{
	if (!c)
		return;
	if (c->rkqu)
		rd_kafka_queue_destroy(c->rkqu);
	if (c->commitq)
		rd_kafka_queue_destroy(c->commitq);
	if (c->cgq)
		rd_kafka_queue_destroy(c->cgq);
	for (size_t i = 0; i < c->ntopics; i++) {
		if (c->topics[i].rkt)
			rd_kafka_topic_destroy(c->topics[i].rkt);
		free(c->topics[i].name);
	}
	free(c->topics);
	/*
	 * Lists that went through librdkafka hold references to its
	 * partitions: destroyed after the handle, they make rd_kafka_destroy
	 * wait for ever (librdkafka issue #3796).
	 */
	if (c->pending) {
		rd_kafka_topic_partition_list_destroy(c->pending);
		c->pending = NULL;
	}
	if (c->rk && c->group && c->topic_gone) {
		/*
		 * librdkafka 2.0.2 cannot destroy a group consumer whose topic
		 * was deleted under it: a partition pause or resume leaves a
		 * reference that its broker thread waits for, for ever
		 * (librdkafka issues #4362, #4486; fixed after 2.0).  The
		 * consumer has left its group already (dp_consumer_close);
		 * what is left is memory the process's exit returns.
		 */
		dp_debug("not destroying the consumer: its topic is gone (librdkafka #4486)");
	} else if (c->rk) {
		/* Not closed (a signal while connecting): go without the
		 * leave-group handshake, which waits for the cluster. */
		if (c->group && !c->closed)
			rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
		else
			rd_kafka_destroy(c->rk);
	}
	for (size_t i = 0; i < c->nparts; i++) {
		free(PRIV(c->parts[i])->topic);
		free(c->parts[i]);
	}
	free(c->parts);
	free(c->scratch);
	free(c->defaults);
	free(c->private_group);
	dp_buf_free(&c->failmsg);
	free(c);
}

struct dp_consumer_part *const *
dp_consumer_parts(const struct dp_consumer *c, size_t *n)
{
	*n = c->nparts;
	return c->parts;
}

int64_t
dp_consumer_seen_end(const struct dp_consumer *c, const struct dp_consumer_part *p)
{
	const struct part *q = PRIV(p);

	return q->seen_end >= 0 ? q->seen_end : DP_CONSUMER_NO_OFFSET;
}

unsigned
dp_consumer_commit_failures(const struct dp_consumer *c)
{
	return c->commit_failures;
}

int
dp_consumer_in_group(const struct dp_consumer *c)
{
	return c->real_group;
}

void
dp_consumer_say_parts(const char *what, struct dp_consumer_part *const *parts, size_t n)
{
	struct dp_buf b = DP_BUF_INIT;
	size_t i;

	if (dp_log_level() < DP_LOG_VERBOSE)
		return;
	for (i = 0; i < n; i++)
		if (dp_buf_addf(&b, "%s%s [%d]", i ? ", " : "", parts[i]->topic,
		                (int)parts[i]->partition) < 0)
			break;
	if (i < n)
		dp_info("%s %zu partitions", what, n);
	else
		dp_info("%s %s", what, dp_buf_str(&b));
	dp_buf_free(&b);
}

rd_kafka_t *
dp_consumer_rk(const struct dp_consumer *c)
{
	return c->rk;
}

/* ---- topics at run time (simple mode) ------------------------------------------- */

int
dp_consumer_add_topic(struct dp_consumer *c, const char *name, struct dp_buf *err)
{
	struct topic *t = topic_find(c, name);
	int count = 0, st;

	if (c->group) {
		dp_buf_msgf(err, "internal error: topics are added at run time without a group");
		return DP_EX_SOFTWARE;
	}
	if (t && !t->dropped)
		return 0;
	if ((st = dp_kafka_probe(c->rk, name, (int)c->kafka->timeout_ms, &count, err)) != 0)
		return st;
	if (!t) {
		struct topic *v = realloc(c->topics, (c->ntopics + 1) * sizeof(*v));
		if (!v)
			goto nomem;
		c->topics = v;
		t = &v[c->ntopics];
		memset(t, 0, sizeof(*t));
		if (!(t->name = strdup(name)))
			goto nomem;
		c->ntopics++;
	}
	t->dropped = false;
	for (int32_t j = 0; j < count; j++) {
		struct part *p = add_part(c, name, j);
		if (!p)
			goto nomem;
		/* Read again after a drop: a topic of that name made anew starts over. */
		p->pub.next = p->pub.end = DP_CONSUMER_NO_OFFSET;
		p->seen_end = -1;
		p->pub.caught_up = p->pub.done = false;
		p->end_known = p->stop_end = false;
		take(c, p);
	}
	c->assigned_once = true;
	c->last_part = NULL;
	return 0;
nomem:
	dp_buf_msgf(err, "out of memory");
	return DP_EX_SOFTWARE;
}

void
dp_consumer_drop_topic(struct dp_consumer *c, const char *name)
{
	struct topic *t = topic_find(c, name);

	if (!t || t->dropped)
		return;
	t->dropped = true;
	for (size_t i = 0; i < c->nparts; i++) {
		struct part *p = PRIV(c->parts[i]);
		if (strcmp(p->topic, name) != 0)
			continue;
		/* The stop bumps the partition's version: what was fetched is dropped. */
		if (p->started && t->rkt)
			rd_kafka_consume_stop(t->rkt, p->pub.partition);
		p->started = false;
		p->pub.assigned = p->pub.paused = p->pub.at_eof = false;
		p->held = p->hook_pending = p->drop = p->reseek = false;
	}
	c->last_part = NULL;
}

int
dp_consumer_end_topic(struct dp_consumer *c, const char *name, struct dp_buf *err)
{
	for (size_t i = 0; i < c->nparts; i++) {
		struct part *p = PRIV(c->parts[i]);
		int64_t lo = 0, hi = 0;
		int st;
		if (strcmp(p->topic, name) != 0 || !p->pub.assigned || p->pub.done)
			continue;
		if (p->pub.at_eof && p->pub.next >= 0 && !p->held) {
			/* At its end already: nothing to ask (the topic may be going). */
			lo = hi = p->pub.next;
		} else {
			/* A topic being deleted answers no more: do not wait long for it. */
			int ms = c->kafka->timeout_ms < 2000 ? (int)c->kafka->timeout_ms : 2000;
			st = dp_kafka_watermarks(c->rk, p->topic, p->pub.partition, ms, &lo, &hi, err);
			if (st)
				return st;
		}
		p->pub.end = hi;
		p->end_known = true;
		p->stop_end = true;
		p->pub.caught_up = false;
		if (hi <= lo || (p->pub.next >= 0 && p->pub.next >= hi))
			reached_end(c, p);
	}
	return 0;
}

bool
dp_consumer_topic_done(const struct dp_consumer *c, const char *name)
{
	for (size_t i = 0; i < c->nparts; i++) {
		const struct part *p = PRIV(c->parts[i]);
		if (p->pub.assigned && !strcmp(p->topic, name) && (p->held || !p->pub.done))
			return false;
	}
	return true;
}
