/*
 * kafka/producer.c -- the Kafka producer engine (kafka/producer.h): lanes, windows,
 * batching, back-pressure and delivery accounting.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/producer.h"
#include "obs/health.h"
#include "obs/obs.h"

#define MAX_BUCKETS 4096        /* partitions that send_run batches */
#define RUN_RECS 1024           /* records send_run hands over per call */
#define REFRESH_MS 10000        /* how often conf.topic's partitions are counted again */
#define ASK_MS 2000             /* a stall's questions to the cluster, each */
#define MAX_BLAMED 64           /* partitions a stall names, and whose records it marks */

/*
 * The opaque of each record: the tag shifted left, the low bit set for a
 * record counted in its partition's window, the next one for a record of
 * send_wait, whose tag is then (call << 32 | index).
 */
#define F_WIN 1u
#define F_WAIT 2u
#define OPAQUE(tag, f) ((void *)(uintptr_t)(((uintptr_t)(tag) << 2) | (f)))
#define OPAQUE_TAG(o) ((uint64_t)((uintptr_t)(o) >> 2))
#define OPAQUE_FLAGS(o) ((unsigned)((uintptr_t)(o) & 3))
#define WAIT_TAG(call, i) (((uint64_t)(call) << 32) | (uint64_t)(i))
#define WAIT_CALLS 0x3fffffffu  /* 30 bits of call number: 62 bits of tag */

_Static_assert(sizeof(uintptr_t) >= 8, "a record's opaque carries a 62-bit tag");

typedef int32_t (*partitioner_fn)(const rd_kafka_topic_t *, const void *, size_t, int32_t,
                                  void *, void *);

/* Records of one partition handed to librdkafka and not yet reported. */
struct window {
	uint64_t msgs;
	uint64_t bytes;
};

/* The records of one partition that send_run hands over: msgs[done..end). */
struct run {
	rd_kafka_message_t *msgs;
	size_t done, end;
	int32_t partition;
	int status;             /* set when a record could not be produced */
	size_t failed;          /* then: its index in msgs */
};

struct dp_producer {
	const struct dp_kafka_opts *kafka;
	char *topic;                    /* conf.topic, or NULL */
	bool want_lanes;
	dp_producer_report_fn report;
	void *arg;
	struct dp_kv *defaults;         /* the engine's, then the caller's */
	size_t ndefaults;

	rd_kafka_t *rk;                 /* lane 0: also every other topic */
	rd_kafka_topic_t *rkt;          /* conf.topic on lane 0 */
	rd_kafka_t *lane_rk[DP_PRODUCER_MAX_LANES];     /* [0] is rk */
	rd_kafka_topic_t *lane_rkt[DP_PRODUCER_MAX_LANES];
	int nlanes;
	uint32_t next_unkeyed;          /* round robin for records without a key */
	rd_kafka_topic_t **handles;     /* other topics, looked up once */
	size_t nhandles;

	/* learnt from the configuration of lane 0 */
	partitioner_fn partitioner;     /* NULL: one we do not know */
	size_t max_msg_size;            /* message.max.bytes */
	bool auto_create;
	struct window *win;             /* MAX_BUCKETS, or NULL when not idempotent */
	uint64_t win_msgs, win_bytes;   /* a window's size */

	int32_t partitions;             /* of conf.topic */
	int64_t partitions_checked;     /* when, on the monotonic clock */

	/* send_wait's call in progress */
	struct dp_producer_ack *wait_acks;
	uint32_t wait_call;
	size_t wait_n, wait_left;

	uint64_t produced, delivered, lost;
	bool acks_all;                  /* acks=all: min.insync.replicas counts */

	/*
	 * A stall (stall_check): no report for --timeout while records wait.
	 * The partitions found unable to take records, and why; the records
	 * purged for it are reported with that reason.
	 */
	uint64_t seen;                  /* delivered + lost when last looked */
	int64_t progress_ms;            /* when that changed, or nothing waited */
	int64_t asked_ms;               /* when the cluster was last asked why */
	struct blamed {
		char *topic;            /* owned */
		int32_t partition;
		rd_kafka_resp_err_t err;
	} blamed[MAX_BLAMED];
	size_t nblamed;
	rd_kafka_resp_err_t purged_for; /* the reason of a stall purged for all */

	/* conf.metrics: acknowledgements per topic, told at the end of each poll */
	bool metrics;
	struct obs_topic {
		const rd_kafka_topic_t *rkt;
		struct dp_series *s;
		uint64_t n;
	} *obs;
	size_t nobs, capobs, obs_last;

	/* send_run's scratch, too large for the stack of a thread */
	rd_kafka_message_t msgs[RUN_RECS];
	size_t idx[RUN_RECS];
	int32_t part[RUN_RECS];
	size_t count[MAX_BUCKETS + 1];
};

/* ---- delivery ----------------------------------------------------------- */

/*
 * What a record purged by a stall failed of: its partition's reason when
 * the stall named it, else the stall's, else librdkafka's own word.
 */
static rd_kafka_resp_err_t
purge_reason(const struct dp_producer *p, const rd_kafka_message_t *m)
{
	if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
		return m->err;
	for (size_t i = 0; i < p->nblamed; i++)
		if (p->blamed[i].partition == m->partition &&
		    strcmp(p->blamed[i].topic, rd_kafka_topic_name(m->rkt)) == 0)
			return p->blamed[i].err;
	return p->purged_for ? p->purged_for : m->err;
}

/* One more acknowledgement for rkt's topic (per record: no lock, no atomic). */
static void
obs_ack(struct dp_producer *p, const rd_kafka_topic_t *rkt)
{
	static const char *const labels[] = { "topic", NULL };
	struct obs_topic *o;

	if (p->obs_last < p->nobs && p->obs[p->obs_last].rkt == rkt) {
		p->obs[p->obs_last].n++;
		return;
	}
	for (size_t i = 0; i < p->nobs; i++)
		if (p->obs[i].rkt == rkt) {
			p->obs[p->obs_last = i].n++;
			return;
		}
	if (!(o = dp_grow(p->obs, &p->capobs, p->nobs + 1, sizeof(*o), 8)))
		return;         /* out of memory: the count is lost, not the record */
	p->obs = o;
	o = &p->obs[p->obs_last = p->nobs++];
	o->rkt = rkt;
	o->s = dp_metric_series(dp_obs_family(DP_OBS_RECORDS_OUT, labels),
	                        (const char *const[]){ rd_kafka_topic_name(rkt) });
	o->n = 1;
	dp_health_link("kafka", true);
}

/* The acknowledgements counted since the last poll, into the metrics. */
static void
obs_tell(struct dp_producer *p)
{
	for (size_t i = 0; i < p->nobs; i++)
		if (p->obs[i].n) {
			dp_series_add(p->obs[i].s, (double)p->obs[i].n);
			p->obs[i].n = 0;
		}
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct dp_producer *p = opaque;
	unsigned flags = OPAQUE_FLAGS(m->_private);
	uint64_t tag = OPAQUE_TAG(m->_private);
	rd_kafka_resp_err_t err = m->err ? purge_reason(p, m) : 0;

	if (m->err)
		p->lost++;
	else
		p->delivered++;
	if (p->metrics && !m->err)
		obs_ack(p, m->rkt);
	if ((flags & F_WIN) && p->win && m->partition >= 0 && m->partition < MAX_BUCKETS) {
		struct window *w = &p->win[m->partition];
		w->msgs--;
		w->bytes -= m->len + m->key_len;
	}
	if (flags & F_WAIT) {
		uint64_t i = tag & 0xffffffffu;
		/* A call that gave up has forgotten its records: count only. */
		if (p->wait_acks && (tag >> 32) == p->wait_call && i < p->wait_n) {
			p->wait_acks[i].err = err;
			p->wait_acks[i].partition = m->err ? -1 : m->partition;
			p->wait_acks[i].offset = m->err ? -1 : m->offset;
			p->wait_left--;
		}
		return;
	}
	if (p->report) {
		struct dp_producer_report r = {
			tag, rd_kafka_topic_name(m->rkt), m->partition,
			m->err ? -1 : m->offset, err,
		};
		p->report(p->arg, &r);
	}
}

/* ---- stalls --------------------------------------------------------------- */

static void
blame_clear(struct dp_producer *p)
{
	for (size_t i = 0; i < p->nblamed; i++)
		free(p->blamed[i].topic);
	p->nblamed = 0;
	p->purged_for = 0;
}

/* Name a partition that cannot take records: its records are purged with e. */
static void
blame(struct dp_producer *p, const char *topic, int32_t partition, rd_kafka_resp_err_t e)
{
	if (p->nblamed < MAX_BLAMED && (p->blamed[p->nblamed].topic = strdup(topic))) {
		p->blamed[p->nblamed].partition = partition;
		p->blamed[p->nblamed++].err = e;
	}
}

/*
 * Say in said why the partitions blamed since from cannot take records,
 * those with the same reason together: 't' [0,2]: why (error_name).
 */
static void
say_blamed(struct dp_producer *p, size_t from, const char *const *why, struct dp_buf *said)
{
	bool done[MAX_BLAMED] = { false };

	for (size_t i = from; i < p->nblamed; i++) {
		char name[64];
		const char *n = rd_kafka_err2name(p->blamed[i].err);
		size_t k = 0;
		if (done[i])
			continue;
		dp_buf_msgf(said, "%s'%s' [", said->len ? "; " : "", p->blamed[i].topic);
		for (size_t j = i; j < p->nblamed; j++)
			if (!done[j] && strcmp(why[j - from], why[i - from]) == 0) {
				dp_buf_msgf(said, "%s%d", j == i ? "" : ",", (int)p->blamed[j].partition);
				done[j] = true;
			}
		for (; n[k] && k < sizeof(name) - 1; k++)
			name[k] = (char)tolower((unsigned char)n[k]);
		name[k] = '\0';
		dp_buf_msgf(said, "]: %s (%s)", why[i - from], name);
	}
}

/* min.insync.replicas of the topic as the brokers apply it, or -1. */
static int
min_insync(rd_kafka_t *rk, const char *topic)
{
	const char *names[1] = { topic };
	struct dp_admin_configs cfg;
	const struct dp_admin_config *c;
	int n = -1;

	memset(&cfg, 0, sizeof(cfg));
	if (dp_admin_describe_configs(rk, names, 1, ASK_MS, &cfg) == 0 && !cfg.res.status &&
	    (c = dp_admin_configs_find(&cfg, "min.insync.replicas")) && c->value) {
		char *end;
		errno = 0;
		long v = strtol(c->value, &end, 10);
		if (!errno && !*end && v > 0 && v < 1000)
			n = (int)v;
	}
	dp_admin_configs_clear(&cfg);
	return n;
}

/*
 * The partitions of topic that hold records and cannot take them now:
 * without a leader, or (acks=all) with fewer in-sync replicas than
 * min.insync.replicas, whose writes the leader refuses with
 * NOT_ENOUGH_REPLICAS and librdkafka sends again until
 * message.timeout.ms.  Each is blamed.
 */
static void
look_at(struct dp_producer *p, const char *topic, bool ours, struct dp_buf *said)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	int stopped = 0, isr = -2;
	size_t from = p->nblamed;
	char why[MAX_BLAMED][96];
	const char *whyp[MAX_BLAMED];

	if (!rkt)
		return;
	if (dp_kafka_metadata(p->rk, 0, rkt, ASK_MS, &md, &stopped) == 0 && md->topic_cnt == 1) {
		const rd_kafka_metadata_topic_t *t = &md->topics[0];
		for (int i = 0; i < t->partition_cnt && p->nblamed < MAX_BLAMED; i++) {
			const rd_kafka_metadata_partition_t *mp = &t->partitions[i];
			char *w = why[p->nblamed - from];
			/* With windows, only the partitions that hold records. */
			if (ours && p->win && mp->id >= 0 && mp->id < MAX_BUCKETS &&
			    p->win[mp->id].msgs == 0)
				continue;
			if (mp->leader < 0) {
				snprintf(w, sizeof(why[0]), "no leader: none of its %d replicas "
				         "in sync is up", mp->replica_cnt);
				blame(p, topic, mp->id, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
				continue;
			}
			if (!p->acks_all)
				continue;
			if (isr == -2)
				isr = min_insync(p->rk, topic);
			if (isr > 0 && mp->isr_cnt < isr) {
				snprintf(w, sizeof(why[0]), "%d in-sync replica%s of %d, fewer than "
				         "min.insync.replicas=%d", mp->isr_cnt,
				         mp->isr_cnt == 1 ? "" : "s", mp->replica_cnt, isr);
				blame(p, topic, mp->id, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
			}
		}
	}
	for (size_t i = 0; i < p->nblamed - from; i++)
		whyp[i] = why[i];
	say_blamed(p, from, whyp, said);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
}

/*
 * No report came for limit ms (--timeout) while records wait: ask the cluster
 * why.  When waiting cannot help (no broker answers; a partition with
 * records has no leader, or too few in-sync replicas for acks=all), the
 * records not sent yet are given up now (those in a request in flight
 * wait for its answer), each reported as not delivered
 * with its partition's reason, instead of after librdkafka's
 * message.timeout.ms (5 minutes) as "Message timed out"; what comes
 * after them is sent as usual, and goes through once the cluster takes
 * records again.  A cluster that answers and could take them is only
 * slow: the records wait on.  Returns whether records were given up.
 */
static bool
stall_check(struct dp_producer *p, int64_t limit)
{
	int64_t now;
	uint64_t done = p->delivered + p->lost;
	struct dp_buf said = DP_BUF_INIT, err = DP_BUF_INIT;
	char waited[48];
	int pending;

	if (limit <= 0)
		return false;
	now = dp_time_mono_ms();
	if (done != p->seen || (pending = dp_producer_pending(p)) == 0) {
		p->seen = done;
		p->progress_ms = now;
		return false;
	}
	if (now - p->progress_ms < limit || now - p->asked_ms < limit)
		return false;
	p->asked_ms = now;
	blame_clear(p);
	if (dp_sig_stop) {
		/* A drain after a signal does not ask: it ends within --timeout. */
		dp_buf_msgf(&said, "a signal came and the drain does not wait longer");
	} else if (dp_kafka_probe(p->rk, NULL, ASK_MS, NULL, &err) != 0) {
		p->purged_for = RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN;
		dp_buf_msgf(&said, "no kafka broker answers");
	} else {
		if (p->topic)
			look_at(p, p->topic, true, &said);
		for (size_t i = 0; i < p->nhandles; i++)
			look_at(p, rd_kafka_topic_name(p->handles[i]), false, &said);
	}
	dp_buf_free(&err);
	if (!said.len) {
		dp_debug("no delivery for %s, but the cluster could take the records: waiting on",
		         dp_duration_format(now - p->progress_ms, waited));
		return false;
	}
	dp_err("no record delivered for %s: %s; giving up on the records not sent yet",
	       dp_duration_format(now - p->progress_ms, waited), dp_buf_str(&said));
	dp_buf_free(&said);
	/*
	 * The queues only: a request in flight may yet be written, and is
	 * left to its answer (it is delivered once the partition takes
	 * records again, or fails with its reason).  librdkafka's idempotent
	 * producer starts a new epoch for the sequence numbers the purge
	 * skipped.  The purged records are reported by the polls here.
	 */
	for (int i = 0; i < p->nlanes; i++)
		rd_kafka_purge(p->lane_rk[i], RD_KAFKA_PURGE_F_QUEUE);
	for (int i = 0; i < p->nlanes; i++)
		rd_kafka_poll(p->lane_rk[i], 0);
	uint64_t given = p->delivered + p->lost - done;
	int sent = dp_producer_pending(p);
	if (sent > 0)
		dp_err("%llu record%s given up; %d sent before wait for the broker's answer",
		       (unsigned long long)given, given == 1 ? "" : "s", sent);
	else
		dp_err("%llu record%s given up", (unsigned long long)given, given == 1 ? "" : "s");
	p->seen = p->delivered + p->lost;
	p->progress_ms = dp_time_mono_ms();
	return true;
}

/*
 * Serve every lane's delivery reports, waiting up to ms for rk's.  The
 * wait is cut in short slices so that another lane's answers, which may
 * be what frees its partition's window, are not left until rk's come.
 */
static void
wait_lane(struct dp_producer *p, rd_kafka_t *rk, int ms)
{
	int64_t until = dp_time_mono_ms() + ms;
	int slice = p->nlanes > 1 && ms > 2 ? 2 : ms;

	for (;;) {
		int n = rd_kafka_poll(rk, slice);
		for (int i = 0; i < p->nlanes; i++)
			if (p->lane_rk[i] != rk)
				n += rd_kafka_poll(p->lane_rk[i], 0);
		if (n > 0 || slice == ms || dp_time_mono_ms() >= until)
			break;
	}
	stall_check(p, p->kafka->timeout_ms);
	if (p->metrics)
		obs_tell(p);
}

void
dp_producer_poll(struct dp_producer *p, int ms)
{
	wait_lane(p, p->rk, ms);
}

int
dp_producer_pending(const struct dp_producer *p)
{
	int n = 0;

	for (int i = 0; i < p->nlanes; i++)
		n += rd_kafka_outq_len(p->lane_rk[i]);
	return n;
}

void
dp_producer_flush(struct dp_producer *p, int ms)
{
	for (int i = 0; i < p->nlanes; i++)
		if (rd_kafka_outq_len(p->lane_rk[i]) > 0)
			rd_kafka_flush(p->lane_rk[i], ms);
	if (p->metrics)
		obs_tell(p);
}

void
dp_producer_stats(const struct dp_producer *p, struct dp_producer_stats *st)
{
	st->produced = p->produced;
	st->delivered = p->delivered;
	st->lost = p->lost;
	st->pending = dp_producer_pending(p);
	st->lanes = p->nlanes;
}

int
dp_producer_drain(struct dp_producer *p, int64_t timeout_ms)
{
	/*
	 * No progress for --timeout gives up only what cannot be delivered
	 * now (stall_check); a slow cluster is waited for.
	 */
	while (dp_producer_pending(p) > 0) {
		/* flush, not poll: the last batches need not wait for linger.ms */
		dp_producer_flush(p, 100);
		if (stall_check(p, timeout_ms))
			break;
	}
	/* Purge whatever is left so that its reports arrive (as failures). */
	for (int i = 0; i < p->nlanes; i++)
		rd_kafka_purge(p->lane_rk[i], RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	wait_lane(p, p->rk, 0);
	dp_producer_flush(p, 1000);
	return p->lost || p->produced != p->delivered + p->lost ? DP_EX_TEMPFAIL : 0;
}

/* ---- producing one record ------------------------------------------------ */

/* A topic handle for name on lane 0, looked up once. */
static rd_kafka_topic_t *
topic_handle(struct dp_producer *p, const char *name)
{
	for (size_t i = 0; i < p->nhandles; i++)
		if (strcmp(rd_kafka_topic_name(p->handles[i]), name) == 0)
			return p->handles[i];
	rd_kafka_topic_t **h = realloc(p->handles, (p->nhandles + 1) * sizeof(*h));
	if (!h)
		return NULL;
	p->handles = h;
	if (!(h[p->nhandles] = rd_kafka_topic_new(p->rk, name, NULL)))
		return NULL;
	return h[p->nhandles++];
}

/* NULL for conf.topic, however the record names it. */
static const char *
other_topic(const struct dp_producer *p, const char *topic)
{
	return topic && p->topic && strcmp(topic, p->topic) == 0 ? NULL : topic;
}

/*
 * Whether librdkafka would spread this record over the partitions rather
 * than hash its key: no key at all, or an empty one under the default
 * partitioner.  With lanes the engine spreads such records in turn.
 */
static bool
spread(const struct dp_producer *p, const void *key, size_t keylen)
{
	return !key || (keylen == 0 && p->partitioner == rd_kafka_msg_partitioner_consistent_random);
}

static rd_kafka_headers_t *
make_headers(const struct dp_producer_rec *r)
{
	rd_kafka_headers_t *h;

	if (!r->nhdrs)
		return NULL;
	h = rd_kafka_headers_new(r->nhdrs);
	for (size_t i = 0; i < r->nhdrs; i++)
		rd_kafka_header_add(h, r->hdrs[i].name, -1, r->hdrs[i].value,
		                    r->hdrs[i].value ? (ssize_t)r->hdrs[i].len : 0);
	return h;
}

/* Why librdkafka refused a record, in words that fit a local check. */
static void
refused(const struct dp_producer *p, const struct dp_producer_rec *r, const char *topic,
        rd_kafka_resp_err_t e, struct dp_buf *err)
{
	size_t size = r->key_len + r->value_len;

	if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
		/* rd_kafka_msg_new0 counts headers and framing too. */
		dp_buf_msgf(err, "record of %zu bytes is over the producer's limit, "
		            "message.max.bytes=%zu%s", size, p->max_msg_size,
		            size <= p->max_msg_size ? ", with its headers and framing" : "");
	else if (e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
		dp_buf_msgf(err, "topic '%s' has no partition %d", topic, (int)r->partition);
	else
		dp_buf_msgf(err, "cannot produce to '%s': %s", topic, rd_kafka_err2str(e));
}

/*
 * Produce one record with back-pressure: a full local queue waits for
 * deliveries.  Returns 0, DP_EX_DATAERR (refused for itself),
 * DP_EX_NOTFOUND (its topic is gone), or another status, with
 * librdkafka's error in *kerr and a message in err (when err is not
 * NULL).
 */
static int
produce(struct dp_producer *p, const struct dp_producer_rec *r, void *opaque,
        struct dp_buf *err, rd_kafka_resp_err_t *kerr)
{
	const char *topic = other_topic(p, r->topic);
	rd_kafka_topic_t *rkt = topic ? topic_handle(p, topic) : p->rkt;
	rd_kafka_t *rk = p->rk;
	int32_t partition = r->partition;
	rd_kafka_resp_err_t e;

	if (!topic && !p->rkt) {
		*kerr = RD_KAFKA_RESP_ERR__INVALID_ARG;
		if (err)
			dp_buf_msgf(err, "no topic for the record");
		return DP_EX_SOFTWARE;
	}
	if (!rkt) {
		e = *kerr = rd_kafka_last_error();
		if (err)
			dp_buf_msgf(err, "cannot produce to '%s': %s", topic, rd_kafka_err2str(e));
		return e == RD_KAFKA_RESP_ERR__INVALID_ARG ? DP_EX_DATAERR : DP_EX_SOFTWARE;
	}
	if (!topic && p->nlanes > 1) {
		/* The partition decides the lane, so it is picked here. */
		if (partition == RD_KAFKA_PARTITION_UA)
			partition = spread(p, r->key, r->key_len)
			                ? (int32_t)(p->next_unkeyed++ % (uint32_t)p->partitions)
			                : p->partitioner(p->rkt, r->key, r->key_len, p->partitions,
			                                 NULL, NULL);
		rk = p->lane_rk[partition % p->nlanes];
		rkt = p->lane_rkt[partition % p->nlanes];
	}
	rd_kafka_headers_t *hdrs = make_headers(r);
	for (;;) {
		e = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt),
		        RD_KAFKA_V_PARTITION(partition),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		        RD_KAFKA_V_KEY((void *)r->key, r->key_len),
		        RD_KAFKA_V_VALUE((void *)r->value, r->value_len),
		        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_TIMESTAMP(r->timestamp),
		        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		wait_lane(p, rk, 50);
	}
	if (!e) {
		p->produced++;          /* the headers are librdkafka's now */
		return 0;
	}
	if (hdrs)
		rd_kafka_headers_destroy(hdrs);
	*kerr = e;
	if (err)
		refused(p, r, topic ? topic : p->topic, e, err);
	/* A topic deleted since librdkafka knew it (librdkafka 2.0.2: __UNKNOWN_TOPIC). */
	if (e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
		return DP_EX_NOTFOUND;
	int st = dp_kafka_exit_status(e);
	return st == DP_EX_DATAERR || e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ? DP_EX_DATAERR
	                                                                        : st;
}

/* ---- batches of one partition ----------------------------------------- */

/*
 * How far from msgs[from] the records of partition k fit in its window.
 * An empty window takes at least one record, whatever its size.
 */
static size_t
window_fit(const struct dp_producer *p, int32_t k, const rd_kafka_message_t *msgs,
           size_t from, size_t to)
{
	if (!p->win)
		return to;
	uint64_t n = p->win[k].msgs, bytes = p->win[k].bytes;
	size_t i = from;
	for (; i < to; i++) {
		n++;
		bytes += msgs[i].len + msgs[i].key_len;
		if ((n > p->win_msgs || bytes > p->win_bytes) && (i > from || p->win[k].msgs))
			break;
	}
	return i;
}

static void
window_add(struct dp_producer *p, int32_t k, const rd_kafka_message_t *msgs, size_t from,
           size_t to)
{
	if (!p->win)
		return;
	for (size_t i = from; i < to; i++) {
		p->win[k].msgs++;
		p->win[k].bytes += msgs[i].len + msgs[i].key_len;
	}
}

/* A batch produce that failed in a way send_run does not expect. */
static void
batch_failed(struct dp_producer *p, struct run *run, size_t i, struct dp_buf *err)
{
	rd_kafka_resp_err_t e = run->msgs[i].err ? run->msgs[i].err : RD_KAFKA_RESP_ERR__FAIL;

	dp_buf_msgf(err, "cannot produce to '%s' [%d]: %s", p->topic, (int)run->partition,
	            rd_kafka_err2str(e));
	run->status = DP_EX_TEMPFAIL;
	run->failed = i;
}

/*
 * Hand over as many of the run's records as its partition's window
 * takes.  Returns how many went; 0 means wait for answers (or, with
 * run->status set, stop).
 */
static size_t
push_run(struct dp_producer *p, struct run *run, struct dp_buf *err)
{
	rd_kafka_message_t *msgs = run->msgs;
	int32_t k = run->partition;
	size_t done = run->done, upto = window_fit(p, k, msgs, done, run->end);

	if (upto == done)
		return 0;
	rd_kafka_produce_batch(p->lane_rkt[k % p->nlanes], k, RD_KAFKA_MSG_F_COPY,
	                       msgs + done, (int)(upto - done));
	/*
	 * Records that fail stay with err set; librdkafka goes on past them.
	 * send_run only gets records that cannot fail for their size, so the
	 * one failure left is a full queue, and then every later record
	 * failed as well: nothing frees queue space without a poll, which
	 * only we do.
	 */
	size_t first = done;
	while (first < upto && !msgs[first].err)
		first++;
	/* The accepted prefix is librdkafka's now, whatever follows. */
	window_add(p, k, msgs, done, first);
	p->produced += first - done;
	run->done = first;
	for (size_t i = first; i < upto; i++)
		if (msgs[i].err && msgs[i].err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			batch_failed(p, run, i, err);
			return 0;
		}
	for (size_t i = first; i < upto; i++)
		if (!msgs[i].err) {
			batch_failed(p, run, first, err);       /* not a prefix */
			return 0;
		}
	for (size_t i = first; i < upto; i++)
		msgs[i].err = 0;        /* a full queue: they go again */
	return first - done;
}

/*
 * Produce recs[0..n) (n <= RUN_RECS, all batch_ok) partition by
 * partition: librdkafka then takes each partition's lock once per run
 * instead of once per record, which is most of the cost of keyed
 * records.  Returns 0, or a status with *failed set.
 */
static int
send_run(struct dp_producer *p, const struct dp_producer_rec *recs, size_t n, size_t *failed,
         struct dp_buf *err)
{
	rd_kafka_message_t *msgs = p->msgs;
	int32_t *part = p->part;
	size_t *count = p->count;
	int32_t nparts = p->partitions;

	/*
	 * Partition here, with librdkafka's own partitioner function, and
	 * hand over one partition's records at a time: the records of a
	 * partition keep their order.
	 */
	memset(count, 0, (size_t)(nparts + 1) * sizeof(*count));
	for (size_t i = 0; i < n; i++) {
		const struct dp_producer_rec *r = &recs[i];
		if (r->partition != RD_KAFKA_PARTITION_UA)
			part[i] = r->partition;
		else            /* batch_ok lets only keyed records through */
			part[i] = p->partitioner(p->rkt, r->key, r->key_len, nparts, NULL, NULL);
		count[part[i] + 1]++;
	}
	for (int32_t k = 0; k < nparts; k++)
		count[k + 1] += count[k];
	for (size_t i = 0; i < n; i++) {
		const struct dp_producer_rec *r = &recs[i];
		size_t at = count[part[i]]++;
		rd_kafka_message_t *m = &msgs[at];
		memset(m, 0, sizeof(*m));
		m->payload = (void *)r->value;
		m->len = r->value_len;
		m->key = (void *)r->key;
		m->key_len = r->key_len;
		m->_private = OPAQUE(r->tag, p->win ? F_WIN : 0);
		p->idx[at] = i;
	}
	/* count[k] is now the end of partition k's run, count[k-1] its start. */
	size_t start = 0;
	for (int32_t k = 0; k < nparts; k++) {
		struct run run = { msgs, start, count[k], k, 0, 0 };
		rd_kafka_t *lane_rk = p->lane_rk[k % p->nlanes];
		while (run.done < run.end && !run.status) {
			if (push_run(p, &run, err) == 0 && !run.status)
				wait_lane(p, lane_rk, 50);      /* for answers */
		}
		if (run.status) {
			*failed = p->idx[run.failed];
			return run.status;
		}
		start = run.end;
	}
	return 0;
}

/*
 * Records that send_run may take: for conf.topic, without headers or a
 * timestamp (which the batch call cannot carry), with a key (librdkafka's
 * partitioners may look at partition availability for empty keys, from
 * inside librdkafka) or a partition, that fit message.max.bytes (a
 * record that would fail goes alone, so that it alone is refused).
 */
static bool
batch_ok(const struct dp_producer *p, const struct dp_producer_rec *r)
{
	return !other_topic(p, r->topic) && !r->nhdrs && !r->timestamp &&
	       (r->partition != RD_KAFKA_PARTITION_UA || (r->key && r->key_len > 0)) &&
	       (r->partition == RD_KAFKA_PARTITION_UA || r->partition < p->partitions) &&
	       r->value_len + r->key_len + 512 < p->max_msg_size;
}

/*
 * send_run partitions with the count it knows; look again now and then so
 * that partitions added during a long run are used, as librdkafka would.
 */
static void
refresh_partitions(struct dp_producer *p)
{
	int64_t now = dp_time_mono_ms();
	struct dp_buf err = DP_BUF_INIT;
	int n = 0;

	if (!p->rkt || now - p->partitions_checked < REFRESH_MS)
		return;
	p->partitions_checked = now;
	if (dp_kafka_probe(p->rk, p->topic, 2000, &n, &err) == 0 && n > p->partitions) {
		/* Every lane must know a new partition before records go to it. */
		for (int i = 1; i < p->nlanes; i++) {
			int m = 0;
			if (dp_kafka_probe(p->lane_rk[i], p->topic, 2000, &m, &err) != 0 || m < n)
				n = 0;
		}
		if (n > 0)
			p->partitions = n;
	}
	dp_buf_free(&err);
}

int
dp_producer_send(struct dp_producer *p, const struct dp_producer_rec *recs, size_t n,
                 size_t *failed, struct dp_buf *err)
{
	/* An engine with nothing waiting starts the clock now. */
	stall_check(p, p->kafka->timeout_ms);
	refresh_partitions(p);
	bool batching = p->rkt && p->partitioner && p->partitions > 0 &&
	                p->partitions <= MAX_BUCKETS;

	for (size_t i = 0; i < n;) {
		size_t j = i;
		int st;
		if (batching)
			while (j < n && j - i < RUN_RECS && batch_ok(p, &recs[j]))
				j++;
		if (j > i) {
			size_t k = 0;
			st = send_run(p, recs + i, j - i, &k, err);
			k += i;
			i = j;
			if (st) {
				*failed = k;
				return st;
			}
		} else {
			rd_kafka_resp_err_t e;
			st = produce(p, &recs[i], OPAQUE(recs[i].tag, 0), err, &e);
			if (st) {
				*failed = i;
				return st;
			}
			i++;
		}
	}
	return 0;
}

/* ---- send and wait --------------------------------------------------------- */

int
dp_producer_send_wait(struct dp_producer *p, const struct dp_producer_rec *recs, size_t n,
                      struct dp_producer_ack *acks, int64_t timeout_ms, struct dp_buf *err)
{
	struct dp_producer_ack *mine = NULL;
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : dp_time_mono_ms() + timeout_ms;
	struct dp_buf why = DP_BUF_INIT;        /* the first refusal's message */
	size_t refused_at = n;
	int refused_st = 0, status = 0;
	char within[48];

	if (!acks && n && !(acks = mine = malloc(n * sizeof(*acks)))) {
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	stall_check(p, p->kafka->timeout_ms);
	p->wait_call = (p->wait_call + 1) & WAIT_CALLS;
	p->wait_acks = acks;
	p->wait_n = n;
	p->wait_left = 0;
	for (size_t i = 0; i < n; i++) {
		acks[i].err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
		acks[i].partition = -1;
		acks[i].offset = -1;
	}
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t e;
		int st = produce(p, &recs[i], OPAQUE(WAIT_TAG(p->wait_call, i), F_WAIT),
		                 refused_at == n ? &why : NULL, &e);
		if (!st) {
			p->wait_left++;
			continue;
		}
		acks[i].err = e;
		if (refused_at == n) {
			refused_at = i;
			refused_st = st;
		}
	}
	while (p->wait_left > 0 && !dp_sig_stop) {
		int64_t left = deadline - dp_time_mono_ms();
		if (left <= 0) {
			for (size_t i = 0; i < n; i++)
				if (acks[i].err == RD_KAFKA_RESP_ERR__IN_PROGRESS)
					acks[i].err = RD_KAFKA_RESP_ERR__TIMED_OUT;
			break;
		}
		/* flush: what waits for linger.ms goes now */
		dp_producer_flush(p, left < 100 ? (int)left : 100);
		wait_lane(p, p->rk, 0);
	}
	p->wait_acks = NULL;    /* late reports go to the stats only */
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t e = acks[i].err;
		if (!e)
			continue;
		if (i == refused_at) {
			dp_buf_msgf(err, "record %zu of %zu: %s", i + 1, n, dp_buf_str(&why));
			status = refused_st;
		} else if (e == RD_KAFKA_RESP_ERR__IN_PROGRESS) {
			status = DP_KAFKA_STOPPED;
		} else if (e == RD_KAFKA_RESP_ERR__TIMED_OUT) {
			dp_buf_msgf(err, "record %zu of %zu not acknowledged within %s", i + 1, n,
			            dp_duration_format(timeout_ms, within));
			status = DP_EX_TEMPFAIL;
		} else {
			const char *t = other_topic(p, recs[i].topic);
			dp_buf_msgf(err, "record %zu of %zu not delivered to '%s': %s", i + 1, n,
			            t ? t : p->topic, rd_kafka_err2str(e));
			/* The broker refused the record itself (over the topic's
			 * max.message.bytes, say): sending it again cannot help. */
			status = dp_kafka_exit_status(e) == DP_EX_DATAERR ? DP_EX_DATAERR
			                                                  : DP_EX_TEMPFAIL;
		}
		break;
	}
	dp_buf_free(&why);
	free(mine);
	return status;
}

/* ---- making and connecting ----------------------------------------------- */

/*
 * The partitioner function that librdkafka would use for this
 * configuration, so that records partitioned by send_run land where a
 * per-record produce would put them.  NULL for one we do not know.
 */
static partitioner_fn
pick_partitioner(rd_kafka_conf_t *conf)
{
	static const struct {
		const char *name;
		partitioner_fn fn;
	} known[] = {
		{ "consistent_random", rd_kafka_msg_partitioner_consistent_random },
		{ "consistent", rd_kafka_msg_partitioner_consistent },
		{ "murmur2", rd_kafka_msg_partitioner_murmur2 },
		{ "murmur2_random", rd_kafka_msg_partitioner_murmur2_random },
		{ "fnv1a", rd_kafka_msg_partitioner_fnv1a },
		{ "fnv1a_random", rd_kafka_msg_partitioner_fnv1a_random },
	};
	rd_kafka_topic_conf_t *tconf = rd_kafka_conf_get_default_topic_conf(conf);
	char name[64] = "consistent_random";
	size_t len = sizeof(name);

	if (tconf && rd_kafka_topic_conf_get(tconf, "partitioner", name, &len) != RD_KAFKA_CONF_OK)
		return NULL;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(name, known[i].name) == 0)
			return known[i].fn;
	return NULL;
}

static bool
conf_is(rd_kafka_conf_t *conf, const char *name, const char *want)
{
	char v[64];

	return dp_kafka_conf_str(conf, name, v, sizeof(v)) && strcmp(v, want) == 0;
}

static uint64_t
conf_u64(rd_kafka_conf_t *conf, const char *name, uint64_t dflt)
{
	char v[64];
	char *end;

	if (!dp_kafka_conf_str(conf, name, v, sizeof(v)))
		return dflt;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	return errno || *end || n < 1 || n > UINT32_MAX ? dflt : (uint64_t)n;
}

/* acks=all (librdkafka's default): every in-sync replica must have a record. */
static bool
acks_all(rd_kafka_conf_t *conf)
{
	rd_kafka_topic_conf_t *tconf = rd_kafka_conf_get_default_topic_conf(conf);
	char v[16] = "-1";
	size_t len = sizeof(v);

	if (tconf && rd_kafka_topic_conf_get(tconf, "request.required.acks", v, &len) !=
	             RD_KAFKA_CONF_OK)
		return true;
	return strcmp(v, "-1") == 0 || strcmp(v, "all") == 0;
}

/* conf.metrics: every broker down is the link "kafka" down, until a record is acknowledged. */
static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		dp_health_link("kafka", false);
	dp_kafka_on_error(rk, err, reason, opaque);
}

/* dp_kafka_new's configure step of every lane; lane 0 learns the settings. */
static int
configure(rd_kafka_conf_t *conf, void *arg, struct dp_buf *err)
{
	struct dp_producer *p = arg;

	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	if (p->metrics)
		rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, p);
	if (p->rk)
		return 0;
	p->partitioner = pick_partitioner(conf);
	p->max_msg_size = conf_u64(conf, "message.max.bytes", 1000000);
	p->auto_create = conf_is(conf, "allow.auto.create.topics", "true");
	p->acks_all = acks_all(conf);
	if (conf_is(conf, "enable.idempotence", "true")) {
		uint64_t msgs = conf_u64(conf, "batch.num.messages", 10000);
		uint64_t bytes = conf_u64(conf, "batch.size", 1000000);
		p->win = calloc(MAX_BUCKETS, sizeof(*p->win));
		if (!p->win) {
			dp_buf_msgf(err, "cannot allocate the delivery windows: out of memory");
			return -1;
		}
		p->win_msgs = 2 * msgs + msgs / 2;
		p->win_bytes = 2 * bytes + bytes / 2;
	}
	return 0;
}

static rd_kafka_t *
new_lane(struct dp_producer *p, struct dp_buf *err, int *status)
{
	return dp_kafka_new(p->kafka, RD_KAFKA_PRODUCER, p->defaults, p->ndefaults, configure, p,
	                    err, status);
}

struct dp_producer *
dp_producer_new(const struct dp_producer_conf *conf, struct dp_buf *err, int *status)
{
	/*
	 * Safe defaults that -F and -X may override: no duplicates on retry,
	 * every in-sync replica acknowledges, and a typo in a topic name does
	 * not create a topic.
	 */
	static const struct dp_kv engine[] = {
		{ "enable.idempotence", "true" },
		{ "acks", "all" },
		{ "allow.auto.create.topics", "false" },
		/* 40k queued records keep RSS under 30 MB at full speed. */
		{ "queue.buffering.max.messages", "40000" },
		/* see kafka/producer.h, and struct window */
		{ "linger.ms", "100" },
	};
	size_t nengine = sizeof(engine) / sizeof(engine[0]);
	struct dp_producer *p = calloc(1, sizeof(*p));

	*status = DP_EX_SOFTWARE;
	if (!p || !(p->defaults = calloc(nengine + conf->ndefaults, sizeof(*p->defaults))) ||
	    (conf->topic && !(p->topic = strdup(conf->topic)))) {
		dp_buf_msgf(err, "out of memory");
		dp_producer_free(p);
		return NULL;
	}
	/* The strings stay borrowed: the engine's are static, the caller's outlive p. */
	memcpy(p->defaults, engine, sizeof(engine));
	for (size_t i = 0; i < conf->ndefaults; i++)
		p->defaults[nengine + i] = conf->defaults[i];
	p->ndefaults = nengine + conf->ndefaults;
	p->kafka = conf->kafka;
	p->want_lanes = conf->lanes;
	p->metrics = conf->metrics && dp_obs_on();
	p->report = conf->report;
	p->arg = conf->arg;
	if (!(p->rk = new_lane(p, err, status))) {
		dp_producer_free(p);
		return NULL;
	}
	p->lane_rk[0] = p->rk;
	p->nlanes = 1;
	p->progress_ms = dp_time_mono_ms();
	return p;
}

/*
 * More lanes where they pay: an idempotent producer, a topic with more
 * than one partition, and records that pick their partition by key.
 * Without them everything stays on lane 0.
 */
static void
open_lanes(struct dp_producer *p)
{
	int want = p->partitions < DP_PRODUCER_MAX_LANES ? p->partitions : DP_PRODUCER_MAX_LANES;

	if (!p->want_lanes || !p->win || !p->rkt || !p->partitioner || want < 2)
		return;
	while (p->nlanes < want) {
		struct dp_buf err = DP_BUF_INIT;
		int st;
		rd_kafka_t *rk = new_lane(p, &err, &st);
		dp_buf_free(&err);
		if (!rk)
			break;          /* the lanes so far will do */
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, p->topic, NULL);
		if (!rkt) {
			rd_kafka_destroy(rk);
			break;
		}
		p->lane_rk[p->nlanes] = rk;
		p->lane_rkt[p->nlanes++] = rkt;
	}
	dp_debug("%d producer%s for '%s'", p->nlanes, p->nlanes == 1 ? "" : "s", p->topic);
}

int
dp_producer_connect(struct dp_producer *p, const char *const *topics, size_t n,
                    struct dp_buf *err)
{
	const char **all = calloc(n + 1, sizeof(*all));
	int *parts = calloc(n + 1, sizeof(*parts));
	size_t nall = 0;
	int st;

	if (!all || !parts) {
		free(all);
		free(parts);
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	if (p->topic)
		all[nall++] = p->topic;
	for (size_t i = 0; i < n; i++)
		all[nall++] = topics[i];
	if (!p->auto_create) {
		st = dp_kafka_connect(p->rk, p->kafka, all, nall, parts, err);
	} else {
		/* A missing topic is made on first use: the cluster must answer. */
		st = dp_kafka_connect(p->rk, p->kafka, NULL, 0, NULL, err);
		for (size_t i = 0; st == 0 && i < nall; i++) {
			size_t mark = err->len;
			st = dp_kafka_probe(p->rk, all[i], (int)p->kafka->timeout_ms, &parts[i], err);
			if (st == DP_EX_NOTFOUND) {
				dp_buf_truncate(err, mark);
				st = 0;
			}
		}
	}
	if (st == 0 && p->topic) {
		p->partitions = parts[0];
		p->partitions_checked = dp_time_mono_ms();
		p->rkt = rd_kafka_topic_new(p->rk, p->topic, NULL);
		if (!p->rkt) {
			dp_buf_msgf(err, "invalid topic '%s': %s", p->topic,
			            rd_kafka_err2str(rd_kafka_last_error()));
			st = DP_EX_INVALID;
		} else {
			p->lane_rkt[0] = p->rkt;
			open_lanes(p);
		}
	}
	if (st == 0 && p->metrics)
		dp_health_link("kafka", true);
	free(all);
	free(parts);
	return st;
}

int32_t dp_producer_partitions(const struct dp_producer *p) { return p->partitions; }

int
dp_producer_check_topic(struct dp_producer *p, const char *topic, int timeout_ms,
                        struct dp_buf *err)
{
	size_t mark = err->len;
	int st = dp_kafka_probe(p->rk, topic, timeout_ms < 0 ? (int)p->kafka->timeout_ms
	                                                     : timeout_ms, NULL, err);

	if (st == DP_EX_NOTFOUND && p->auto_create) {
		dp_buf_truncate(err, mark);
		st = 0;                 /* the broker makes it on first use */
	}
	return st;
}

void
dp_producer_free(struct dp_producer *p)
{
	if (!p)
		return;
	for (int i = 1; i < p->nlanes; i++) {
		rd_kafka_topic_destroy(p->lane_rkt[i]);
		rd_kafka_destroy(p->lane_rk[i]);
	}
	if (p->rkt)
		rd_kafka_topic_destroy(p->rkt);
	for (size_t i = 0; i < p->nhandles; i++)
		rd_kafka_topic_destroy(p->handles[i]);
	free(p->handles);
	if (p->rk)
		rd_kafka_destroy(p->rk);
	blame_clear(p);
	free(p->win);
	free(p->obs);
	free(p->defaults);
	free(p->topic);
	free(p);
}
