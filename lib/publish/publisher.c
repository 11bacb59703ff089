/*
 * publish/publisher.c -- dp-publish's engine: the steps its machine takes
 * (publish/publisher.h), the loop that feeds batches to the producer, and
 * the registry followed meanwhile.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/progress.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "dyn/registry.h"
#include "dyn/route.h"
#include "kafka/client.h"
#include "kafka/producer.h"
#include "obs/health.h"
#include "obs/obs.h"
#include "publish/feed.h"
#include "publish/hold.h"
#include "publish/publisher.h"
#include "publish/send.h"

/* Lines travel from the reader thread in batches of this size. */
#define BATCH_RECS 1024
#define BATCH_BYTES (1024 * 1024)

/* How often the main thread looks at the registry while it publishes. */
#define REGISTRY_POLL_MS 100

/*
 * Told to stop, the reader thread finishes the line in hand.  One whose
 * jq program runs on (libjq cannot be interrupted) would hold the stop
 * for ever: after STUCK_MS it is left behind, and its line and those it
 * read after it count as not sent.
 */
#define STUCK_MS 1000

struct dp_publisher {
	struct dp_publisher_opts o;
	const struct dp_kafka_opts *kafka;
	struct dp_out *out;
	int (*out_failed)(int err);

	struct dp_producer *prod;
	struct dp_lines *in;
	struct dp_feed *feed;           /* the reader thread */
	struct dp_record_reader *reader;
	struct dp_registry *reg;
	struct dp_send send;
	struct dp_hold hold;

	/* routes: made here, offered to the reader */
	uint64_t routes_version;
	size_t nroutes;                 /* active routes in the last list */
	bool routes_dirty;              /* the registry changed since */
	int64_t reg_polled;             /* monotonic ms */

	int ended;                      /* the event that ended the input, while held records wait */
	int status;                     /* why the input ended early, 0 if it did not */
	bool feed_stuck;                /* the reader thread is in jq for good: left behind */
	uint64_t taken;                 /* the last line of the batches taken from the reader */
	uint64_t stuck_line;            /* after a signal: the line the reader's jq is on */
	int64_t stuck_ms;               /* monotonic ms it was first seen there */
	uint64_t undelivered;           /* lines read and not delivered (the drain) */
	struct dp_progress prog;
	struct dp_buf err;
	/* obs/obs.h: the lines read, and standard input as a feed (per batch) */
	struct dp_series *obs_in;
	struct dp_health_feed *obs_feed;
};

struct dp_publisher *
dp_publisher_new(const struct dp_publisher_opts *o, const struct dp_kafka_opts *kafka,
                 struct dp_out *out, int (*out_failed)(int err))
{
	struct dp_publisher *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->o = *o;
	p->kafka = kafka;
	p->obs_in = dp_metric_one(dp_obs_family(DP_OBS_RECORDS_IN, NULL));
	p->obs_feed = dp_health_feed("stdin");
	p->out = out;
	p->out_failed = out_failed;
	dp_progress_init(&p->prog, o->progress);
	/* The JSON scanner checks UTF-8 and NUL bytes itself, in one pass. */
	if (!(p->in = dp_lines_new(STDIN_FILENO, 0))) {
		free(p);
		return NULL;
	}
	dp_lines_set_max(p->in, o->rec.max_line);
	p->send = (struct dp_send){
		.topic = o->rec.topic, .on_error = &p->o.on_error, .out = o->report ? out : NULL,
		.out_failed = out_failed, .status = &p->status,
	};
	p->hold = (struct dp_hold){
		.send = &p->send, .requests = o->requests, .timeout_ms = kafka->timeout_ms,
		.timeout_arg = kafka->timeout_arg,
	};
	return p;
}

bool
dp_publisher_free(struct dp_publisher *p)
{
	if (!p)
		return true;
	if (p->feed_stuck) {
		/* Its reader is in jq for good: what that uses stays. */
		dp_feed_abandon(p->feed);
		dp_producer_free(p->prod);
		return false;
	}
	dp_feed_free(p->feed);
	dp_record_reader_free(p->reader);
	dp_registry_free(p->reg);
	dp_hold_clear(&p->hold);
	dp_producer_free(p->prod);
	dp_lines_free(p->in);
	dp_send_clear(&p->send);
	dp_buf_free(&p->err);
	free(p);
	return true;
}

/* ---- the registry ---- */

static void
on_registry(void *arg, const char *topic, const struct dp_dyn_spec *old,
            const struct dp_dyn_spec *now, int64_t offset)
{
	struct dp_publisher *p = arg;

	p->routes_dirty = true;
}

/* Offer the reader the routes active now (whose source this producer writes). */
static int
offer_routes(struct dp_publisher *p)
{
	size_t n, k = 0;
	const struct dp_dyn_spec *const *v = dp_registry_specs(p->reg, &n);
	struct dp_route_spec *specs = calloc(n ? n : 1, sizeof(*specs));
	const char *topic = p->o.rec.topic;

	if (!specs)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct dp_dyn_spec *s = v[i];
		if (s->state != DP_DYN_ACTIVE || !s->source || !s->filter ||
		    !strcmp(s->topic, s->source) || (topic && strcmp(s->source, topic)))
			continue;
		specs[k++] = (struct dp_route_spec){ s->topic, s->source, s->filter };
	}
	struct dp_route_list *l = dp_route_list_new(specs, k, ++p->routes_version);
	free(specs);
	if (!l)
		return -1;
	dp_record_offer_routes(p->reader, l);
	if (k != p->nroutes)
		dp_info("%zu dynamic topic%s take%s copies", k, k == 1 ? "" : "s", k == 1 ? "s" : "");
	p->nroutes = k;
	return 0;
}

/*
 * Poll the registry: with wait_ms 0 at most every REGISTRY_POLL_MS.
 * Returns 0, or the event that ends the input.
 */
static int
poll_registry(struct dp_publisher *p, int wait_ms)
{
	int64_t now = dp_time_mono_ms();
	int st;

	if (!p->reg || (wait_ms == 0 && now - p->reg_polled < REGISTRY_POLL_MS))
		return 0;
	p->reg_polled = now;
	dp_buf_reset(&p->err);
	st = dp_registry_poll(p->reg, wait_ms, &p->err);
	if (st == DP_KAFKA_STOPPED)
		return DP_PUB_STOP;
	if (st) {
		dp_err("registry: %s", dp_buf_str(&p->err));
		p->status = st;
		return DP_PUB_FATAL;
	}
	if (p->routes_dirty && p->o.follow) {
		if (offer_routes(p) < 0) {
			dp_err("out of memory");
			p->status = DP_EX_SOFTWARE;
			return DP_PUB_FATAL;
		}
	}
	p->routes_dirty = false;
	if (dp_hold_pending(&p->hold) && (st = dp_hold_check(&p->hold)) != 0) {
		p->status = st;
		return st == DP_EX_DATAERR ? DP_PUB_BAD_LINE : DP_PUB_FATAL;
	}
	return 0;
}

/* ---- connecting ---- */

int
dp_publisher_connect(struct dp_publisher *p, int *status)
{
	const struct dp_record_opts *ro = &p->o.rec;
	struct dp_buf err = DP_BUF_INIT;
	const struct dp_producer_conf conf = {
		.kafka = p->kafka,
		.topic = ro->topic,
		/* Lanes pay where records pick their partition by key. */
		.lanes = (ro->key_expr || ro->envelope) && ro->partition == DP_PRODUCER_ANY,
		.metrics = true,
		.report = dp_send_report,
		.arg = &p->send,
	};
	const struct dp_registry_conf rconf = {
		.kafka = p->kafka, .topic = p->o.registry, .change = on_registry, .arg = p,
		.missing_ok = true,
	};
	const struct dp_record_conf rec = {
		.opts = ro, .in = p->in, .follow = p->o.follow,
		.request_topics = p->o.request_topics,
		.stop_at_bad = p->o.on_error.mode == DP_ON_ERROR_FAIL,
		.ev_bad_line = DP_PUB_BAD_LINE, .ev_fatal = DP_PUB_FATAL, .ev_stop = DP_PUB_STOP,
	};
	int st, ev;

	if (!(p->prod = dp_producer_new(&conf, &err, &st))) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		*status = st;
		return DP_PUB_BAD_CONFIG;
	}
	p->send.prod = p->hold.prod = p->prod;
	st = dp_producer_connect(p->prod, &p->o.on_error.dlq_topic,
	                         p->o.on_error.dlq_topic ? 1 : 0, &err);
	if (st == 0) {
		struct dp_record_conf c = rec;
		c.prod = p->prod;
		if (!(p->reader = dp_record_reader_new(&c))) {
			dp_buf_msgf(&err, "out of memory");
			st = DP_EX_SOFTWARE;
		}
	}
	/* The routes come from the registry before the first line is read. */
	if (st == 0 && (p->o.follow || p->o.request_topics)) {
		if (!(p->reg = dp_registry_new(&rconf, &err, &st)))
			st = st ? st : DP_EX_SOFTWARE;
		else
			st = dp_registry_load(p->reg, &err);
		p->hold.reg = p->reg;
		if (st == 0 && p->o.follow && offer_routes(p) < 0) {
			dp_buf_msgf(&err, "out of memory");
			st = DP_EX_SOFTWARE;
		}
		p->routes_dirty = false;
		p->reg_polled = dp_time_mono_ms();
	}
	int32_t parts = p->prod ? dp_producer_partitions(p->prod) : 0;
	if (st == DP_KAFKA_STOPPED) {
		ev = DP_PUB_STOP;
	} else if (st) {
		dp_err("%s", dp_buf_str(&err));
		ev = st == DP_EX_UNAVAILABLE ? DP_PUB_UNREACHABLE : DP_PUB_REFUSED;
		*status = st;
	} else if (ro->topic && ro->partition != DP_PRODUCER_ANY && parts > 0 &&
	           ro->partition >= parts) {
		dp_err("topic '%s' has %d partitions: no partition %d", ro->topic, (int)parts,
		       (int)ro->partition);
		*status = DP_EX_USAGE;
		ev = DP_PUB_REFUSED;
	} else {
		ev = DP_PUB_CONNECTED;
	}
	dp_buf_free(&err);
	return ev;
}

/* ---- publishing ---- */

/* The reader thread starts once, with the first publishing step. */
static int
start_feed(struct dp_publisher *p)
{
	struct dp_buf err = DP_BUF_INIT;
	const struct dp_feed_conf conf = {
		.in = p->in, .rec_size = sizeof(struct dp_record), .max_recs = BATCH_RECS,
		.max_bytes = BATCH_BYTES, .prepare = dp_record_prepare, .failed = dp_record_failed,
		.ready = dp_record_ready, .eof = DP_PUB_EOF, .stop = DP_PUB_STOP, .arg = p->reader,
	};

	if (p->feed)
		return 0;
	if (!(p->feed = dp_feed_start(&conf, &err))) {
		dp_err("%s", err.len ? dp_buf_str(&err) : "out of memory");
		dp_buf_free(&err);
		p->status = DP_EX_SOFTWARE;
		return -1;
	}
	return 0;
}

/* Record r can go now: its topic is known to exist. */
static inline bool
sendable(const struct dp_publisher *p, const struct dp_feed_batch *b, const struct dp_record *r)
{
	return r->kind == DP_RECORD_SEND &&
	       (!r->unverified || dp_hold_active(&p->hold, dp_feed_at(b, r->topic)));
}

/*
 * Hand a batch to the producer: runs of records that can go, bad lines
 * as --on-error says, records of topics asked for to the hold.  Returns
 * 0, or the status that ends the input.
 */
static int
send_batch(struct dp_publisher *p, const struct dp_feed_batch *b)
{
	for (size_t i = 0; i < b->n;) {
		const struct dp_record *r = dp_record_at(b, i);
		size_t j = i;
		int st;

		if (r->kind == DP_RECORD_FATAL) {
			dp_err("line %llu: %s", (unsigned long long)r->lineno, dp_feed_at(b, r->why));
			return r->status;
		}
		if (r->kind == DP_RECORD_BAD) {
			st = dp_send_bad_line(&p->send, dp_record_value(b, i, r), r->vallen, r->lineno,
			                      dp_feed_at(b, r->why), r->bad ? r->bad : "bad");
			if (st)
				return st;
			i++;
			continue;
		}
		if (!sendable(p, b, r)) {
			/* Its topic is asked for: held, or a bad line once refused. */
			if ((st = dp_hold_take(&p->hold, b, i)) != 0)
				return st;
			if (!sendable(p, b, r)) {
				i++;
				continue;
			}
		}
		while (j < b->n && sendable(p, b, dp_record_at(b, j)))
			j++;
		if ((st = dp_send_run(&p->send, b, i, j)) != 0)
			return st;
		i = j;
	}
	return 0;
}

/* Serve delivery reports and pass acknowledgements on. */
static void
serve(struct dp_publisher *p)
{
	dp_producer_poll(p->prod, 0);
	if (dp_out_flush(p->out) < 0) {
		int st = p->out_failed(errno);
		if (st && !p->status)
			p->status = st;
	}
	dp_progress_tick(&p->prog, "lines", dp_feed_lines(p->feed), NULL, false);
}

/* After a signal: whether the reader is stuck in one line's jq for good. */
static bool
feed_stuck(struct dp_publisher *p)
{
	int64_t now = dp_time_mono_ms();
	uint64_t line = dp_feed_busy_line(p->feed);
	char d[48];

	if (!line || line != p->stuck_line) {
		/* the signal came, or prepare moved on: watch this line from now */
		p->stuck_line = line;
		p->stuck_ms = now;
		return false;
	}
	if (now - p->stuck_ms < STUCK_MS)
		return false;
	dp_err("line %llu: jq still works on it %s after the signal: lines %llu to %llu are "
	       "not sent, nor any read after them", (unsigned long long)line,
	       dp_duration_format(now - p->stuck_ms, d), (unsigned long long)p->taken + 1,
	       (unsigned long long)line);
	p->feed_stuck = true;
	if (!p->status)
		p->status = DP_EX_TEMPFAIL;
	return true;
}

/* The input ends with ev: no more is read. */
static int
end_input(struct dp_publisher *p, int ev)
{
	p->ended = ev;
	dp_feed_halt(p->feed);
	return ev;
}

/* Whether what until waits for happened (besides the answers): its event, or 0. */
static int
moved(const struct dp_publisher *p, enum dp_pub_until until, bool pending)
{
	switch (until) {
	case DP_PUB_UNTIL_COPIES:
		return pending ? DP_PUB_CREATE_TOPIC : p->nroutes > 0 ? DP_PUB_PUBLISH_DYNAMIC : 0;
	case DP_PUB_UNTIL_NO_COPIES:
		return pending ? DP_PUB_CREATE_TOPIC : p->nroutes == 0 ? DP_PUB_PUBLISH_FIXED : 0;
	case DP_PUB_UNTIL_ANSWERED:
		break;
	}
	return 0;
}

int
dp_publisher_run(struct dp_publisher *p, enum dp_pub_until until)
{
	bool quiet = false;     /* the last batch ended because input paused */

	if (start_feed(p) < 0)
		return DP_PUB_FATAL;
	if (until == DP_PUB_UNTIL_COPIES && p->o.follow)
		dp_info("publishing to fixed topics only");
	else if (until == DP_PUB_UNTIL_NO_COPIES)
		dp_info("publishing to fixed and %zu dynamic topic%s", p->nroutes,
		        p->nroutes == 1 ? "" : "s");
	for (;;) {
		int ev = poll_registry(p, 0);
		if (ev)
			return end_input(p, ev);
		if (dp_sig_stop && feed_stuck(p))
			return end_input(p, DP_PUB_FATAL);
		bool pending = dp_hold_pending(&p->hold);
		if (until == DP_PUB_UNTIL_ANSWERED && !pending)
			return p->hold.failed ? DP_PUB_CREATE_FAILURE : DP_PUB_CREATE_SUCCESS;
		/* At the end of the input, requests still open are waited for. */
		if (p->ended && (p->ended != DP_PUB_EOF || !pending))
			return p->ended;
		if ((ev = moved(p, until, pending)) != 0)
			return ev;
		if (p->ended || p->hold.bytes >= p->o.hold_max) {
			/* Nothing is read now: the registry must answer first. */
			if (dp_sig_stop)
				return end_input(p, DP_PUB_STOP);
			serve(p);
			if (p->status)
				return end_input(p, DP_PUB_FATAL);
			if ((ev = poll_registry(p, 50)) != 0)
				return end_input(p, ev);
			continue;
		}
		if ((quiet || dp_feed_quiet(p->feed)) && dp_producer_pending(p->prod) > 0) {
			/*
			 * The writer is quiet: send what waits for linger.ms
			 * now.  flush returns once all is delivered, and looks
			 * for new input again after 10 ms at most.
			 */
			dp_producer_flush(p->prod, 10);
			serve(p);
			quiet = false;
			/* stdout failed under --report: also while the input pauses. */
			if (p->status)
				return end_input(p, DP_PUB_FATAL);
			continue;
		}
		struct dp_feed_batch *b = dp_feed_next(p->feed, 100);
		if (!b) {
			serve(p);
			if (p->status)
				return end_input(p, DP_PUB_FATAL);
			continue;
		}
		if (b->n) {
			p->taken = dp_record_at(b, b->n - 1)->lineno;
			dp_series_add(p->obs_in, (double)b->n);
			dp_health_data(p->obs_feed);
		}
		int st = send_batch(p, b);
		if (st) {
			p->status = st;
			ev = st == DP_EX_DATAERR ? DP_PUB_BAD_LINE : DP_PUB_FATAL;
		} else if (b->end) {
			ev = b->end;
		} else if (p->status) {
			ev = DP_PUB_FATAL;      /* stdout failed under --report */
		}
		quiet = b->quiet;
		if (ev)
			dp_feed_halt(p->feed);  /* before the batch is filled again */
		dp_feed_release(p->feed, b);
		dp_producer_poll(p->prod, 0);
		dp_progress_tick(&p->prog, "lines", dp_feed_lines(p->feed), NULL, false);
		if (ev)
			p->ended = ev;
	}
}

int
dp_publisher_reject(struct dp_publisher *p)
{
	int st;

	if (dp_hold_unanswered(&p->hold))
		p->status = DP_EX_UNAVAILABLE;
	if (p->status)
		return DP_PUB_FATAL;    /* the held records are counted as not delivered */
	if ((st = dp_hold_reject(&p->hold)) != 0) {
		p->status = st;
		return st == DP_EX_DATAERR ? DP_PUB_BAD_LINE : DP_PUB_FATAL;
	}
	return DP_PUB_RESET;
}

/* ---- the end ---- */

int
dp_publisher_drain(struct dp_publisher *p, int *status)
{
	struct dp_producer_stats st;

	dp_producer_drain(p->prod, p->kafka->timeout_ms);
	dp_producer_stats(p->prod, &st);
	/* Reports that never came (a drain that gave up) cannot name their lines. */
	uint64_t lost = dp_send_lost(&p->send, p->reg) + (st.produced - st.delivered - st.lost);
	uint64_t held = p->hold.n, records = p->send.records + held;
	p->undelivered = lost + held;
	if (lost + held)
		dp_err("%llu of %llu record%s not delivered%s", (unsigned long long)(lost + held),
		       (unsigned long long)records, records == 1 ? "" : "s",
		       held ? " (held for topics not made)" : "");
	if (lost || (held && !p->status)) {
		*status = DP_EX_TEMPFAIL;
		return DP_PUB_LOST;
	}
	if (p->status) {
		*status = p->status;
		return DP_PUB_ABORTED;
	}
	return DP_PUB_DRAINED;
}

void
dp_publisher_summary(struct dp_publisher *p)
{
	uint64_t lines = p->feed ? dp_feed_lines(p->feed) : 0;

	if (p->o.progress)
		dp_progress_tick(&p->prog, "lines", lines, NULL, true);
	dp_on_error_summary(&p->o.on_error, "line");
	if (p->o.follow)
		dp_info("%llu lines, %llu delivered (and %llu copies into dynamic topics), %llu bad",
		        (unsigned long long)lines, (unsigned long long)p->send.delivered,
		        (unsigned long long)p->send.copies_delivered,
		        (unsigned long long)p->o.on_error.count);
	else
		dp_info("%llu lines, %llu delivered, %llu bad", (unsigned long long)lines,
		        (unsigned long long)p->send.delivered,
		        (unsigned long long)p->o.on_error.count);
}

bool
dp_publisher_interrupted(struct dp_publisher *p, int status, uint64_t *delivered,
                         uint64_t *undelivered, int64_t *unread)
{
	*unread = -1;
	*undelivered = p->undelivered;
	*delivered = p->send.delivered;
	if (p->ended == DP_PUB_EOF && status == 0)
		return false;
	if (p->feed_stuck) {
		*undelivered += dp_feed_lines(p->feed) - p->taken;     /* left in the reader */
	} else {
		/* The reader thread ends here, so that what it left can be counted. */
		dp_feed_free(p->feed);
		p->feed = NULL;
		*unread = dp_lines_unread(p->in);
	}
	/* It had read the whole file already, and delivered it. */
	return !(*unread == 0 && !*undelivered && status == 0);
}
