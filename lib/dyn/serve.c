/*
 * dyn/serve.c -- the coordinator of dynamic topics: requests in, topics,
 * registry records and decisions out (dyn/serve.h).
 */
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "core/backoff.h"
#include "core/exit.h"
#include "core/log.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "dyn/serve.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/consumer.h"
#include "kafka/producer.h"
#include "obs/obs.h"

struct dp_serve {
	struct dp_serve_conf conf;
	rd_kafka_t *admin;                      /* topic admin */
	struct dp_registry *reg;
	struct dp_registry *dec;                /* the decisions topic's view ... */
	struct dp_coord_decisions *decided;     /* ... what it holds */
	int64_t prune_at;                       /* when to forget gone requests' decisions (mono ms) */
	struct dp_producer *prod;
	struct dp_consumer *cons;               /* the requests */
	struct dp_backoff backoff;
	struct dp_buf err;

	/* the request in hand, and what to write */
	struct dp_dyn_request req;
	bool have_req;
	struct dp_consumer_part *req_part;
	int64_t req_offset;
	bool assigned;                          /* the requests partition is ours */
	unsigned revokes;                       /* times it was taken away */
	unsigned revokes_seen;                  /* ... as far as the machine knows */
	char *deleting;                         /* a retired topic being deleted; owned */
	char *notice_key;                       /* the registry record to write; owned */
	struct dp_buf notice;                   /* its value; empty for a tombstone */
	bool tombstone;
	int64_t written;                        /* registry offset of the last write, -1 */
	struct dp_dyn_decision decision;        /* the request's, to write; request_id NULL: none */
};

static int
timeout_ms(const struct dp_serve *s)
{
	return (int)s->conf.kafka->timeout_ms;
}

struct dp_serve *
dp_serve_new(const struct dp_serve_conf *conf)
{
	struct dp_serve *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->conf = *conf;
	s->written = -1;
	return s;
}

void
dp_serve_free(struct dp_serve *s)
{
	if (!s)
		return;
	dp_consumer_free(s->cons);
	dp_producer_free(s->prod);
	dp_registry_free(s->reg);
	dp_registry_free(s->dec);
	dp_coord_decisions_free(s->decided);
	dp_dyn_decision_clear(&s->decision);
	if (s->admin)
		rd_kafka_destroy(s->admin);
	dp_dyn_request_clear(&s->req);
	free(s->deleting);
	free(s->notice_key);
	dp_buf_free(&s->notice);
	dp_buf_free(&s->err);
	free(s);
}

/* ---- the consumer group's hooks ------------------------------------------ */

/* The requests partition is ours: take requests one at a time. */
static int
on_assigned(struct dp_consumer *cons, void *arg, struct dp_consumer_part **parts, size_t n)
{
	struct dp_serve *s = arg;

	s->assigned = true;
	dp_info("this coordinator owns %s now", s->conf.requests);
	return 0;
}

static int
on_revoked(struct dp_consumer *cons, void *arg, struct dp_consumer_part **parts, size_t n)
{
	struct dp_serve *s = arg;

	/*
	 * A request not committed yet is the next owner's to redo.  Counted:
	 * an eager rebalance may give the partition back within the same
	 * poll, and the machine must still pass through standby.
	 */
	s->assigned = false;
	s->revokes++;
	if (s->have_req) {
		dp_dyn_request_clear(&s->req);
		s->have_req = false;
	}
	dp_info("this coordinator no longer owns %s", s->conf.requests);
	return 0;
}

/* One request record: kept for the machine, or skipped when unreadable. */
static enum dp_consumer_verdict
on_request(struct dp_consumer *cons, void *arg, struct dp_consumer_part *p,
           const rd_kafka_message_t *m)
{
	struct dp_serve *s = arg;
	struct dp_buf why = DP_BUF_INIT;

	if (!m->payload || (dp_dyn_request_parse(m->payload, m->len, &s->req, &why) < 0 &&
	                    !s->req.request_id)) {
		/* No request_id or topic: no one to answer. */
		dp_warn("request at %s offset %lld skipped: %s", s->conf.requests,
		        (long long)m->offset, m->payload ? dp_buf_str(&why) : "no value");
		dp_dyn_request_clear(&s->req);
		dp_buf_free(&why);
		return DP_CONSUMER_NEXT;
	}
	/* An invalid one that says who asked is refused by its request_id. */
	dp_buf_free(&why);
	s->have_req = true;
	s->req_part = p;
	s->req_offset = m->offset;
	return DP_CONSUMER_LAST;
}

/* A record of the decisions topic, into the decisions known. */
static int
on_decision(void *arg, const char *where, const char *key, size_t keylen, const char *value,
            size_t len)
{
	struct dp_serve *s = arg;

	return dp_coord_decisions_apply(s->decided, where, key, keylen, value, len);
}

/* ---- connecting ----------------------------------------------------------- */

/*
 * The brokers up and, for a topic (not NULL), its replication factor
 * (its partitions' largest replica count; -1 when it cannot be seen).
 */
static int
cluster_replicas(struct dp_serve *s, const char *topic, int *brokers)
{
	rd_kafka_topic_t *rkt = topic ? rd_kafka_topic_new(s->admin, topic, NULL) : NULL;
	const struct rd_kafka_metadata *md = NULL;
	int stopped = 0, rf = -1;

	*brokers = -1;
	if (dp_kafka_metadata(s->admin, 0, rkt, timeout_ms(s), &md, &stopped) == 0) {
		*brokers = md->broker_cnt;
		for (int t = 0; rkt && t < md->topic_cnt; t++)
			for (int i = 0; i < md->topics[t].partition_cnt; i++)
				if (md->topics[t].partitions[i].replica_cnt > rf)
					rf = md->topics[t].partitions[i].replica_cnt;
		rd_kafka_metadata_destroy(md);
	}
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	return rf;
}

/*
 * They are the dynamic topics' only record, so they are made with
 * replicas on conf.replication brokers (3), to outlive a broker: on a
 * cluster with fewer brokers up, on all of them, and a warning says so;
 * a topic that exists with fewer replicas than that is pointed out.
 */
int
dp_serve_topics(struct dp_serve *s, struct dp_buf *err)
{
	struct dp_kv compact = { "cleanup.policy", "compact" };
	int want = s->conf.replication > 0 ? s->conf.replication : DP_SERVE_REPLICATION;
	int brokers, rf;
	struct dp_admin_spec specs[3] = {
		{ (char *)s->conf.registry, 1, want, &compact, 1 },
		{ (char *)s->conf.requests, 1, want, NULL, 0 },
		{ (char *)s->conf.decisions, 1, want, &compact, 1 },
	};

	cluster_replicas(s, NULL, &brokers);
	for (size_t i = 0; i < 3; i++) {
		struct dp_admin_result res = { 0 };
		bool created;
		int st;
		if (brokers > 0 && brokers < want)
			specs[i].replication_factor = brokers;
		st = dp_admin_ensure(s->admin, &specs[i], timeout_ms(s), &res, &created);
		if (st) {
			dp_buf_msgf(err, "cannot set up topic '%s': %s", specs[i].name,
			            res.error ? res.error : "failed");
			dp_admin_result_clear(&res);
			return st;
		}
		dp_admin_result_clear(&res);
		if (created) {
			dp_info("created topic '%s' with replication factor %d", specs[i].name,
			        (int)specs[i].replication_factor);
			if (specs[i].replication_factor < want)
				dp_warn("topic '%s' was made with replication factor %d, not %d: the "
				        "cluster has %d broker%s up; a broker that dies can take it down",
				        specs[i].name, (int)specs[i].replication_factor, want, brokers,
				        brokers == 1 ? "" : "s");
		} else if ((rf = cluster_replicas(s, specs[i].name, &brokers)) > 0 &&
		           rf < specs[i].replication_factor) {
			dp_warn("topic '%s' exists with replication factor %d, not %d: a broker that "
			        "dies can take it down (raise it with kafka-reassign-partitions)",
			        specs[i].name, rf, (int)specs[i].replication_factor);
		}
	}
	return 0;
}

int
dp_serve_connect(struct dp_serve *s, int *status)
{
	struct dp_buf *err = &s->err;
	const struct dp_kafka_opts *kafka = s->conf.kafka;
	int st;
	/* A coordinator that dies is replaced within about this long. */
	static const struct dp_kv consumer_defaults[] = {
		{ "session.timeout.ms", "10000" },
		{ "heartbeat.interval.ms", "1000" },
	};
	const char *topics[1] = { s->conf.requests };
	const struct dp_consumer_opts opts = {
		.topics = topics, .ntopics = 1, .group = s->conf.group, .from = DP_FROM_STORED,
		.manual_commit = true, .defaults = consumer_defaults, .ndefaults = 2,
		.metrics = true,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = s, .record = on_request, .assigned = on_assigned, .revoked = on_revoked,
	};
	const struct dp_producer_conf pconf = { .kafka = kafka, .topic = s->conf.registry };
	const struct dp_registry_conf rconf = { .kafka = kafka, .topic = s->conf.registry };
	const struct dp_registry_conf dconf = {
		.kafka = kafka, .topic = s->conf.decisions, .record = on_decision, .arg = s,
	};
	static const struct dp_kv admin_defaults[] = { { "allow.auto.create.topics", "false" } };

	s->admin = dp_kafka_new(kafka, RD_KAFKA_PRODUCER, admin_defaults, 1, NULL, NULL, err, &st);
	if (s->admin)
		st = dp_kafka_connect(s->admin, kafka, NULL, 0, NULL, err);
	if (st == 0)
		st = dp_serve_topics(s, err);
	if (st == 0 && !(s->reg = dp_registry_new(&rconf, err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_registry_load(s->reg, err);
	if (st == 0 && !(s->decided = dp_coord_decisions_new())) {
		dp_buf_msgf(err, "out of memory");
		st = DP_EX_SOFTWARE;
	}
	if (st == 0 && !(s->dec = dp_registry_new(&dconf, err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_registry_load(s->dec, err);
	if (st == 0 && !(s->prod = dp_producer_new(&pconf, err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_producer_connect(s->prod, NULL, 0, err);
	if (st == 0 && !(s->cons = dp_consumer_new(kafka, &opts, &hooks, err, &st)))
		st = st ? st : DP_EX_SOFTWARE;
	if (st == 0)
		st = dp_consumer_connect(s->cons, err);
	if (st == DP_KAFKA_STOPPED || dp_sig_stop)
		return DP_SERVE_SIGNAL;
	if (st) {
		dp_err("%s", dp_buf_str(err));
		*status = st;
		return DP_SERVE_UNREACHABLE;
	}
	dp_backoff_init(&s->backoff, 500, 30000, 0.5, 0);
	return DP_SERVE_CONNECTED;
}

/* ---- waiting -------------------------------------------------------------- */

/*
 * Poll the requests (a request that arrives is in hand: have_req) and
 * keep the views current.  0, or the event that ends the wait: SIGNAL,
 * or FATAL with *status.
 */
static int
poll_requests(struct dp_serve *s, int *status)
{
	int st = 0;
	int r = dp_consumer_poll(s->cons, 100, &s->err, &st);

	if (r == DP_CONSUMER_SIGNAL || dp_sig_stop)
		return DP_SERVE_SIGNAL;
	if (r == DP_CONSUMER_FAILED) {
		dp_err("requests: %s", dp_buf_str(&s->err));
		*status = st ? st : DP_EX_UNAVAILABLE;
		return DP_SERVE_FATAL;
	}
	st = dp_registry_poll(s->reg, 0, &s->err);
	if (st == 0 && (st = dp_registry_poll(s->dec, 0, &s->err)) != 0 && st != DP_KAFKA_STOPPED) {
		dp_err("decisions: %s", dp_buf_str(&s->err));
		*status = st;
		return DP_SERVE_FATAL;
	}
	if (st == DP_KAFKA_STOPPED)
		return DP_SERVE_SIGNAL;
	if (st) {
		dp_err("registry: %s", dp_buf_str(&s->err));
		*status = st;
		return DP_SERVE_FATAL;
	}
	return 0;
}

/*
 * Forget the decisions on requests that the requests topic holds no more
 * (below its low watermark): no replay can reach them.  At each takeover
 * and then hourly; what fails is tried again the next time.
 */
static void
prune(struct dp_serve *s)
{
	int64_t lo, hi;
	const char **ids = NULL;
	size_t n;
	struct dp_buf err = DP_BUF_INIT;

	s->prune_at = dp_time_mono_ms() + 3600 * 1000;
	if (dp_kafka_watermarks(dp_consumer_rk(s->cons), s->conf.requests, 0, timeout_ms(s), &lo,
	                        &hi, &err) != 0) {
		dp_warn("cannot tell which decisions to forget: %s", dp_buf_str(&err));
		dp_buf_free(&err);
		return;
	}
	if ((n = dp_coord_decisions_before(s->decided, lo, &ids)) == (size_t)-1) {
		dp_warn("cannot tell which decisions to forget: out of memory");
		return;
	}
	struct dp_producer_rec *recs = calloc(n ? n : 1, sizeof(*recs));
	if (!recs) {
		dp_warn("cannot forget decisions: out of memory");
		free(ids);
		return;
	}
	for (size_t i = 0; i < n; i++)
		recs[i] = (struct dp_producer_rec){
			.topic = s->conf.decisions, .partition = 0,
			.key = ids[i], .key_len = strlen(ids[i]),
		};
	int st = n ? dp_producer_send_wait(s->prod, recs, n, NULL, s->conf.kafka->timeout_ms, &err)
	           : 0;
	if (st) {
		dp_warn("cannot forget decisions: %s",
		        st == DP_KAFKA_STOPPED ? "interrupted" : dp_buf_str(&err));
	} else if (n) {
		/* Each id is its own decision's: it is looked up before it is freed. */
		for (size_t i = 0; i < n; i++)
			dp_coord_decisions_forget(s->decided, ids[i]);
		dp_info("forgot %zu decision%s on requests %s holds no more", n, n == 1 ? "" : "s",
		        s->conf.requests);
	}
	free(recs);
	free(ids);
	dp_buf_free(&err);
}

int
dp_serve_standby(struct dp_serve *s, int *status)
{
	dp_info("standing by: another coordinator may own %s", s->conf.requests);
	for (;;) {
		int ev = poll_requests(s, status);
		if (ev)
			return ev;
		if (!s->assigned)
			continue;
		s->revokes_seen = s->revokes;
		/* Decide nothing before the views hold what the last owner wrote. */
		const char *what = "registry";
		int st = dp_registry_sync(s->reg, -1, &s->err);
		if (st == 0) {
			what = "decisions";
			st = dp_registry_sync(s->dec, -1, &s->err);
		}
		if (st == DP_KAFKA_STOPPED)
			return DP_SERVE_SIGNAL;
		if (st) {
			dp_err("%s: %s", what, dp_buf_str(&s->err));
			*status = st;
			return DP_SERVE_FATAL;
		}
		prune(s);
		return DP_SERVE_ASSIGNED;
	}
}

/* The first retired topic whose time to go has come, or NULL. */
static const struct dp_dyn_spec *
due(const struct dp_serve *s)
{
	size_t n;
	const struct dp_dyn_spec *const *v = dp_registry_specs(s->reg, &n);
	int64_t now = dp_time_now_ms();

	for (size_t i = 0; i < n; i++)
		if (v[i]->state == DP_DYN_RETIRED && v[i]->delete_at >= 0 && v[i]->delete_at <= now)
			return v[i];
	return NULL;
}

/*
 * The request in hand as an event.  One decided before is not decided
 * again (a replay).  One whose action is not known (invalid) is refused
 * as a retire is: nothing in the registry changes for it.
 */
static int
request_event(const struct dp_serve *s)
{
	const struct dp_dyn_decision *d = dp_coord_decided(s->decided, s->req.request_id);

	if (d) {
		dp_info("request %s for '%s' was decided before (%s): not again",
		        s->req.request_id, s->req.topic, dp_dyn_outcome_name(d->outcome));
		return DP_SERVE_REQUEST_DECIDED;
	}
	return s->req.action == DP_DYN_CREATE ? DP_SERVE_REQUEST_CREATE : DP_SERVE_REQUEST_RETIRE;
}

int
dp_serve_listen(struct dp_serve *s, int *status)
{
	for (;;) {
		if (dp_sig_stop)
			return DP_SERVE_SIGNAL;
		if (!s->assigned || s->revokes != s->revokes_seen)
			return DP_SERVE_REVOKED;
		if (s->have_req)
			return request_event(s);
		if (s->deleting)
			return DP_SERVE_DELETE_DUE;
		if (dp_time_mono_ms() >= s->prune_at)
			prune(s);
		const struct dp_dyn_spec *d = due(s);
		if (d) {
			if (!(s->deleting = strdup(d->topic))) {
				dp_err("out of memory");
				*status = DP_EX_SOFTWARE;
				return DP_SERVE_FATAL;
			}
			return DP_SERVE_DELETE_DUE;
		}
		int ev = poll_requests(s, status);
		if (ev)
			return ev;
	}
}

/* ---- deciding ------------------------------------------------------------- */

/* Set what notify writes: spec under its topic, or a tombstone. */
static int
set_notice(struct dp_serve *s, const char *key, const struct dp_dyn_spec *spec)
{
	free(s->notice_key);
	dp_buf_reset(&s->notice);
	s->tombstone = spec == NULL;
	s->notice_key = strdup(key);
	if (!s->notice_key || (spec && dp_dyn_spec_json(&s->notice, spec) < 0))
		return -1;
	return 0;
}

/* Nothing for the registry: only the decision is written. */
static void
no_notice(struct dp_serve *s)
{
	free(s->notice_key);
	s->notice_key = NULL;
}

/* Set the decision notify writes for the request in hand. */
static int
set_decision(struct dp_serve *s, enum dp_dyn_outcome outcome, const char *reason)
{
	struct dp_dyn_decision *d = &s->decision;

	dp_dyn_decision_clear(d);
	d->action = s->req.action;
	d->outcome = outcome;
	d->request_offset = s->req_offset;
	d->decided_at = dp_time_now_ms();
	if (!(d->request_id = strdup(s->req.request_id)) || !(d->topic = strdup(s->req.topic)) ||
	    (reason && !(d->reason = strdup(reason)))) {
		dp_dyn_decision_clear(d);
		return -1;
	}
	return 0;
}

/* The outcome of a create, from the spec written. */
static enum dp_dyn_outcome
outcome_of(const struct dp_dyn_spec *spec)
{
	switch (spec->state) {
	case DP_DYN_REJECTED: return DP_DYN_OUT_REJECTED;
	case DP_DYN_RETIRED:  return DP_DYN_OUT_RETIRED;
	default:              return DP_DYN_OUT_GRANTED;
	}
}

/* What a failed create means for the requester: a rejection, or a retry. */
static enum dp_dyn_reject
reject_for(int status)
{
	switch (status) {
	case DP_EX_EXISTS:  return DP_DYN_EXISTS;
	case DP_EX_CONFIG:  return DP_DYN_BAD_CONFIG;
	case DP_EX_INVALID: return DP_DYN_BAD_NAME;
	default:            return DP_DYN_OK;       /* the cluster: try again */
	}
}

/*
 * A topic that was there before the request, and that the registry does
 * not list as ours: 1 when it holds records, 0 when it is empty, else an
 * exit status with a message in why.  An empty one is taken: it is what
 * a coordinator leaves that stopped between creating a topic and writing
 * it down.  One with records belongs to someone else, and is never made
 * a dynamic topic (that a retire would delete).
 */
static int
holds_records(struct dp_serve *s, const char *topic, int partitions, struct dp_buf *why)
{
	for (int32_t i = 0; i < partitions; i++) {
		int64_t lo, hi;
		int st = dp_kafka_watermarks(s->admin, topic, i, timeout_ms(s), &lo, &hi, why);
		if (st)
			return st == DP_KAFKA_STOPPED ? DP_EX_UNAVAILABLE : st;
		if (hi > 0)
			return 1;
	}
	return 0;
}

/*
 * Make the topic of a granted spec (active): 0 with spec as it is to be
 * written (its partitions as made; rejected when the broker refuses the
 * request, or when the name is another's topic with records), or an
 * exit status with why (the cluster failed: tried again).
 */
static int
make_topic(struct dp_serve *s, struct dp_dyn_spec *spec, struct dp_buf *why)
{
	struct dp_admin_spec as = { spec->topic, spec->partitions, -1, spec->config,
	                            spec->nconfig };
	struct dp_admin_result res = { 0 };
	bool created;
	int st = dp_admin_ensure(s->admin, &as, timeout_ms(s), &res, &created);

	if (st && reject_for(st)) {
		dp_coord_reject(spec, reject_for(st), "%s", res.error ? res.error : "");
		st = 0;
	} else if (st) {
		dp_buf_msgf(why, "%s", res.error ? res.error : "cannot create");
	} else {
		if (created)
			dp_info("created topic '%s'", spec->topic);
		/* The spec says what the topic has, not what was left open. */
		int n = 0;
		if (dp_kafka_probe(s->admin, spec->topic, timeout_ms(s), &n, why) == 0 && n > 0)
			spec->partitions = n;
		dp_buf_reset(why);
		const struct dp_dyn_spec *known = dp_registry_get(s->reg, spec->topic);
		bool ours = known && (known->state == DP_DYN_ACTIVE ||
		                      known->state == DP_DYN_RETIRED);
		if (!created && !ours && (st = holds_records(s, spec->topic, n, why)) == 1) {
			dp_coord_reject(spec, DP_DYN_EXISTS, "topic '%s' exists already, with "
			                "records, and is not one this coordinator made", spec->topic);
			st = 0;
		}
	}
	dp_admin_result_clear(&res);
	return st;
}

int
dp_serve_create(struct dp_serve *s)
{
	struct dp_dyn_spec spec;
	struct dp_buf why = DP_BUF_INIT;
	int ev, d = dp_coord_decide_create(s->conf.policy, s->reg, &s->req, dp_time_now_ms(),
	                                   &spec, &why);

	if (d < 0)
		goto nomem;
	if (d == DP_COORD_IGNORE) {
		dp_warn("request %s for '%s' ignored: %s", s->req.request_id, s->req.topic,
		        dp_buf_str(&why));
		no_notice(s);
		if (set_decision(s, DP_DYN_OUT_IGNORED, dp_buf_str(&why)) < 0)
			goto nomem;
		dp_buf_free(&why);
		return DP_SERVE_CREATE_IGNORED;
	}
	if (d == DP_COORD_CREATE) {
		int partitions = 0;
		/*
		 * A topic that is its own source is fed directly by the producer
		 * that asked for it (dp-publish --request-topics): no source to check.
		 */
		int st = strcmp(spec.source, spec.topic) == 0
		         ? 0 : dp_kafka_probe(s->admin, spec.source, timeout_ms(s), &partitions, &why);
		if (st == DP_EX_NOTFOUND) {
			dp_coord_reject(&spec, DP_DYN_NO_SOURCE, "source topic '%s' does not exist",
			                spec.source);
			dp_buf_reset(&why);
			st = 0;
		}
		if (st == 0 && spec.state == DP_DYN_ACTIVE)
			st = make_topic(s, &spec, &why);
		if (st) {
			dp_err("cannot create '%s' for request %s: %s", s->req.topic,
			       s->req.request_id, dp_buf_str(&why));
			dp_dyn_spec_clear(&spec);
			dp_buf_free(&why);
			return DP_SERVE_CREATE_FAILURE;
		}
	}
	if (set_notice(s, spec.topic, &spec) < 0 ||
	    set_decision(s, outcome_of(&spec), spec.reason) < 0)
		goto nomem;
	ev = spec.state == DP_DYN_REJECTED ? DP_SERVE_CREATE_REJECTED : DP_SERVE_CREATE_SUCCESS;
	if (ev == DP_SERVE_CREATE_REJECTED)
		dp_info("request %s for '%s' rejected: %s", s->req.request_id, spec.topic,
		        spec.reason);
	dp_dyn_spec_clear(&spec);
	dp_buf_free(&why);
	return ev;
nomem:
	dp_err("out of memory");
	dp_dyn_spec_clear(&spec);
	dp_buf_free(&why);
	return DP_SERVE_CREATE_FAILURE;
}

int
dp_serve_retire(struct dp_serve *s)
{
	struct dp_dyn_spec spec;
	struct dp_buf why = DP_BUF_INIT;
	int d = dp_coord_decide_retire(s->reg, &s->req, dp_time_now_ms(), &spec, &why);

	if (d == DP_COORD_IGNORE || d == DP_COORD_REJECT) {
		dp_warn("request %s to %s '%s' %s: %s", s->req.request_id,
		        s->req.action == DP_DYN_RETIRE ? "retire" : "act on", s->req.topic,
		        d == DP_COORD_IGNORE ? "ignored" : "rejected", dp_buf_str(&why));
		no_notice(s);
		int rc = set_decision(s, d == DP_COORD_IGNORE ? DP_DYN_OUT_IGNORED
		                                              : DP_DYN_OUT_REJECTED,
		                      dp_buf_str(&why));
		dp_buf_free(&why);
		if (rc < 0) {
			dp_err("out of memory");
			return DP_SERVE_RETIRE_SUCCESS;         /* not notified: retried */
		}
		return d == DP_COORD_IGNORE ? DP_SERVE_RETIRE_IGNORED : DP_SERVE_RETIRE_REJECTED;
	}
	dp_buf_free(&why);
	if (d < 0 || set_notice(s, spec.topic, &spec) < 0 ||
	    set_decision(s, DP_DYN_OUT_RETIRED, NULL) < 0)
		/* The retire never fails for itself: not notified, it is retried. */
		dp_err("out of memory");
	dp_dyn_spec_clear(&spec);
	return DP_SERVE_RETIRE_SUCCESS;
}

int
dp_serve_delete(struct dp_serve *s)
{
	struct dp_admin_result res = { 0 };
	const char *names[1] = { s->deleting };
	int st = dp_admin_delete(s->admin, names, 1, timeout_ms(s), &res);

	if (st == 0)
		st = res.status;
	/* Gone already (a coordinator stopped before the tombstone): the same. */
	if (st && st != DP_EX_NOTFOUND) {
		dp_err("cannot delete retired topic '%s': %s", s->deleting,
		       res.error ? res.error : "failed");
		dp_admin_result_clear(&res);
		return DP_SERVE_DELETE_FAILURE;
	}
	dp_admin_result_clear(&res);
	dp_info("deleted retired topic '%s'", s->deleting);
	if (set_notice(s, s->deleting, NULL) < 0) {
		dp_err("out of memory");
		return DP_SERVE_DELETE_FAILURE;
	}
	return DP_SERVE_DELETE_SUCCESS;
}

/* ---- writing it down ------------------------------------------------------ */

static const char *const outcome_labels[] = { "outcome", NULL };

int
dp_serve_notify(struct dp_serve *s)
{
	int64_t wait_ms = s->conf.kafka->timeout_ms;
	struct dp_producer_ack ack;
	int st;

	if (s->have_req && !s->decision.request_id) {
		dp_err("request %s: out of memory", s->req.request_id);
		return DP_SERVE_NOTIFY_FAILURE;
	}
	dp_buf_reset(&s->err);
	if (s->notice_key) {
		struct dp_producer_rec rec = {
			.topic = s->conf.registry, .partition = 0,
			.key = s->notice_key, .key_len = strlen(s->notice_key),
			.value = s->tombstone ? NULL : s->notice.data,
			.value_len = s->tombstone ? 0 : s->notice.len,
		};
		st = dp_producer_send_wait(s->prod, &rec, 1, &ack, wait_ms, &s->err);
		if (st) {
			dp_err("cannot write '%s' to the registry: %s", s->notice_key,
			       st == DP_KAFKA_STOPPED ? "interrupted" : dp_buf_str(&s->err));
			return DP_SERVE_NOTIFY_FAILURE;
		}
		s->written = ack.offset;
	}
	if (s->decision.request_id) {
		struct dp_buf value = DP_BUF_INIT;
		if (dp_dyn_decision_json(&value, &s->decision) < 0) {
			dp_err("request %s: out of memory", s->req.request_id);
			dp_buf_free(&value);
			return DP_SERVE_NOTIFY_FAILURE;
		}
		struct dp_producer_rec rec = {
			.topic = s->conf.decisions, .partition = 0,
			.key = s->decision.request_id, .key_len = strlen(s->decision.request_id),
			.value = value.data, .value_len = value.len,
		};
		st = dp_producer_send_wait(s->prod, &rec, 1, NULL, wait_ms, &s->err);
		dp_buf_free(&value);
		if (st) {
			dp_err("cannot write the decision on request %s to '%s': %s",
			       s->decision.request_id, s->conf.decisions,
			       st == DP_KAFKA_STOPPED ? "interrupted" : dp_buf_str(&s->err));
			return DP_SERVE_NOTIFY_FAILURE;
		}
		dp_obs_count(DP_OBS_RECORDS_OUT, outcome_labels,
		             (const char *const[]){ dp_dyn_outcome_name(s->decision.outcome) }, 1);
		/* Known at once, before the view reads it back. */
		if (dp_coord_decisions_put(s->decided, &s->decision) < 0)
			dp_warn("request %s: out of memory", s->decision.request_id);
	}
	return DP_SERVE_NOTIFY_SUCCESS;
}

int
dp_serve_done(struct dp_serve *s, int *status)
{
	if (s->have_req) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, s->req_part->topic,
		                                  s->req_part->partition)->offset = s->req_offset + 1;
		dp_buf_reset(&s->err);
		if (dp_consumer_commit(s->cons, l, false, &s->err))
			/* The partition moved on: its next owner redoes the request. */
			dp_warn("cannot commit request %s: %s", s->req.request_id,
			        dp_buf_str(&s->err));
		rd_kafka_topic_partition_list_destroy(l);
		dp_dyn_request_clear(&s->req);
		s->have_req = false;
	} else if (s->deleting) {
		free(s->deleting);
		s->deleting = NULL;
	}
	no_notice(s);
	dp_dyn_decision_clear(&s->decision);
	if (s->written >= 0) {
		int st = dp_registry_sync(s->reg, s->written, &s->err);
		s->written = -1;
		if (st && st != DP_KAFKA_STOPPED)
			dp_warn("registry: %s", dp_buf_str(&s->err));
	}
	dp_backoff_reset(&s->backoff);
	return dp_serve_listen(s, status);
}

int
dp_serve_wait(struct dp_serve *s)
{
	int64_t ms = dp_backoff_next(&s->backoff, 0);

	dp_warn("trying again in %lld ms", (long long)ms);
	return dp_backoff_sleep(ms, &dp_sig_stop) < 0 ? DP_SERVE_SIGNAL : DP_SERVE_RESET;
}

int
dp_serve_stop(struct dp_serve *s, bool failing)
{
	/* Nothing is committed here (requests are committed one by one). */
	dp_consumer_close(s->cons);
	return failing ? DP_SERVE_FATAL : DP_SERVE_STOPPED;
}
