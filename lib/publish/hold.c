/*
 * publish/hold.c -- topics asked of the coordinator, and the records held
 * until it answers (publish/hold.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "dyn/spec.h"
#include "kafka/client.h"
#include "publish/hold.h"
#include "publish/record.h"

#define NONE DP_FEED_NONE

/* One held record, in one allocation: key, value, headers, copies. */
struct held {
	struct held *next;
	uint64_t lineno;
	int32_t partition;
	int64_t ts;
	const char *key;
	size_t keylen;
	const char *value;
	size_t vallen;
	size_t nhdrs, ncopies;
	struct dp_producer_header *hdrs;        /* into data */
	const char **copies;                    /* into data */
	size_t size;
	char data[];
};

/* A topic asked for, and its fate. */
enum req_state { RQ_PENDING, RQ_ACTIVE, RQ_REJECTED, RQ_TIMEOUT };
struct dp_hold_topic {
	char *name;
	enum req_state state;
	char request_id[33];
	int64_t sent_ms;                /* monotonic */
	char *reason;                   /* RQ_REJECTED: why, said with each of its lines */
	struct held *first, *last;      /* its records, in line order */
};

static void
held_free_list(struct dp_hold_topic *rq)
{
	for (struct held *x = rq->first, *next; x; x = next) {
		next = x->next;
		free(x);
	}
	rq->first = rq->last = NULL;
}

void
dp_hold_clear(struct dp_hold *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->ntopics; i++) {
		held_free_list(&h->topics[i]);
		free(h->topics[i].name);
		free(h->topics[i].reason);
	}
	free(h->topics);
	h->topics = NULL;
	h->ntopics = h->captopics = 0;
	dp_buf_free(&h->err);
}

static struct dp_hold_topic *
find(const struct dp_hold *h, const char *name)
{
	for (size_t i = 0; i < h->ntopics; i++)
		if (strcmp(h->topics[i].name, name) == 0)
			return &h->topics[i];
	return NULL;
}

bool
dp_hold_active(const struct dp_hold *h, const char *topic)
{
	const struct dp_hold_topic *rq = find(h, topic);

	return rq && rq->state == RQ_ACTIVE;
}

bool
dp_hold_pending(const struct dp_hold *h)
{
	for (size_t i = 0; i < h->ntopics; i++)
		if (h->topics[i].state == RQ_PENDING)
			return true;
	return false;
}

/* Keep record i of b for rq.  0 or -1 (memory). */
static int
hold(struct dp_hold *h, struct dp_hold_topic *rq, const struct dp_feed_batch *b, size_t i)
{
	const struct dp_record *r = dp_record_at(b, i);
	size_t size = sizeof(struct held) + r->nhdr * sizeof(struct dp_producer_header) +
	              r->ncopies * sizeof(char *) + r->keylen + r->vallen + 2;
	const char *v = dp_record_value(b, i, r);

	for (size_t k = 0; k < r->nhdr; k++) {
		struct dp_record_hdr_at a = dp_record_hdr(b, r, k);
		size += strlen(dp_feed_at(b, a.name)) + 1 + (a.value == NONE ? 0 : a.len);
	}
	for (size_t c = 0; c < r->ncopies; c++)
		size += strlen(dp_record_copy(b, r, c)) + 1;
	struct held *x = malloc(size);
	if (!x)
		return -1;
	*x = (struct held){ NULL, r->lineno, r->partition, r->ts, NULL, r->keylen, NULL,
	                    r->vallen, r->nhdr, r->ncopies, NULL, NULL, size };
	x->hdrs = (struct dp_producer_header *)x->data;
	x->copies = (const char **)(x->hdrs + r->nhdr);
	char *d = (char *)(x->copies + r->ncopies);
	if (r->key != NONE) {
		x->key = d;
		memcpy(d, dp_feed_at(b, r->key), r->keylen);
		d += r->keylen;
	}
	*d++ = '\0';
	if (v) {
		x->value = d;
		memcpy(d, v, r->vallen);
		d += r->vallen;
	}
	*d++ = '\0';
	for (size_t k = 0; k < r->nhdr; k++) {
		struct dp_record_hdr_at a = dp_record_hdr(b, r, k);
		size_t nl = strlen(dp_feed_at(b, a.name)) + 1;
		x->hdrs[k].name = memcpy(d, dp_feed_at(b, a.name), nl);
		d += nl;
		x->hdrs[k].value = a.value == NONE ? NULL : memcpy(d, dp_feed_at(b, a.value), a.len);
		x->hdrs[k].len = a.len;
		d += a.value == NONE ? 0 : a.len;
	}
	for (size_t c = 0; c < r->ncopies; c++) {
		const char *t = dp_record_copy(b, r, c);
		size_t nl = strlen(t) + 1;
		x->copies[c] = memcpy(d, t, nl);
		d += nl;
	}
	if (rq->last)
		rq->last->next = x;
	else
		rq->first = x;
	rq->last = x;
	h->bytes += size;
	h->n++;
	return 0;
}

/* The first held record of rq is dealt with. */
static void
unhold(struct dp_hold *h, struct dp_hold_topic *rq)
{
	struct held *x = rq->first;

	rq->first = x->next;
	if (!rq->first)
		rq->last = NULL;
	h->bytes -= x->size;
	h->n--;
	free(x);
}

/* The held records of rq go now that its topic is there, in their order. */
static int
send_held(struct dp_hold *h, struct dp_hold_topic *rq)
{
	int status = 0;

	while (rq->first && !status) {
		struct held *x = rq->first;
		struct dp_producer_rec rec = {
			.topic = rq->name, .partition = x->partition, .key = x->key,
			.key_len = x->keylen, .value = x->value, .value_len = x->vallen,
			.hdrs = x->nhdrs ? x->hdrs : NULL, .nhdrs = x->nhdrs, .timestamp = x->ts,
			.tag = x->lineno,
		};
		bool taken;
		status = dp_send_one(h->send, &rec, x->copies, x->ncopies, &taken);
		if (!taken)
			return status;          /* still held: not delivered */
		unhold(h, rq);
	}
	return status;
}

/* Write a create request for rq's topic, fed directly by this producer. */
static int
request_topic(struct dp_hold *h, struct dp_hold_topic *rq)
{
	char who[300];
	struct dp_buf value = DP_BUF_INIT;
	int st;

	if (!h->requests_ok) {
		st = dp_producer_check_topic(h->prod, h->requests, DP_PRODUCER_FOREVER, &h->err);
		if (st == DP_KAFKA_STOPPED)
			return st;
		if (st == DP_EX_NOTFOUND) {
			dp_err("cannot ask for topic '%s': requests topic '%s' does not exist: no "
			       "dp-coord serve has run on this cluster", rq->name, h->requests);
			return DP_EX_UNAVAILABLE;
		}
		if (st) {
			dp_err("cannot ask for topic '%s': %s", rq->name, dp_buf_str(&h->err));
			return st;
		}
		h->requests_ok = true;
	}
	dp_dyn_requester(who, sizeof(who));
	/* Its own source: the coordinator checks no other topic, routers copy nothing in. */
	struct dp_dyn_request q = {
		.action = DP_DYN_CREATE, .request_id = rq->request_id, .topic = rq->name,
		.source = rq->name, .filter = ".", .partitions = -1, .requested_by = who,
		.requested_at = dp_time_now_ms(),
	};
	if (dp_dyn_request_id(rq->request_id) < 0 || dp_dyn_request_json(&value, &q) < 0) {
		dp_err("cannot ask for topic '%s': %s", rq->name, strerror(errno ? errno : ENOMEM));
		dp_buf_free(&value);
		return DP_EX_SOFTWARE;
	}
	struct dp_producer_rec rec = {
		.topic = h->requests, .partition = DP_PRODUCER_ANY, .key = rq->name,
		.key_len = strlen(rq->name), .value = value.data, .value_len = value.len,
	};
	dp_buf_reset(&h->err);
	st = dp_producer_send_wait(h->prod, &rec, 1, NULL, h->timeout_ms, &h->err);
	dp_buf_free(&value);
	if (st == DP_KAFKA_STOPPED)
		return st;
	if (st) {
		dp_err("cannot ask for topic '%s': %s", rq->name, dp_buf_str(&h->err));
		return st;
	}
	rq->sent_ms = dp_time_mono_ms();
	dp_info("topic '%s' does not exist: asked the coordinator for it (request %s); its "
	        "records wait", rq->name, rq->request_id);
	return 0;
}

/*
 * What becomes of records for topic name, which the reader found missing:
 * *rqp gets its entry, made (and asked for) the first time.  Returns 0 or
 * the status that ends the input.
 */
static int
requested(struct dp_hold *h, const char *name, struct dp_hold_topic **rqp)
{
	if ((*rqp = find(h, name)))
		return 0;
	struct dp_hold_topic *v = dp_grow(h->topics, &h->captopics, h->ntopics + 1, sizeof(*v), 4);
	if (!v)
		return DP_EX_SOFTWARE;
	h->topics = v;
	struct dp_hold_topic *rq = &v[h->ntopics];
	memset(rq, 0, sizeof(*rq));
	if (!(rq->name = strdup(name)))
		return DP_EX_SOFTWARE;
	h->ntopics++;
	*rqp = rq;
	const struct dp_dyn_spec *spec = dp_registry_get(h->reg, name);
	if (spec && spec->state == DP_DYN_ACTIVE) {
		rq->state = RQ_ACTIVE;          /* made a moment ago: the registry knew first */
		return 0;
	}
	if (spec && spec->state == DP_DYN_RETIRED) {
		rq->state = RQ_REJECTED;
		rq->reason = strdup("it is a retired dynamic topic");
		return rq->reason ? 0 : DP_EX_SOFTWARE;
	}
	rq->state = RQ_PENDING;
	int st = request_topic(h, rq);
	return st == DP_KAFKA_STOPPED ? DP_EX_TEMPFAIL : st;
}

int
dp_hold_take(struct dp_hold *h, const struct dp_feed_batch *b, size_t i)
{
	const struct dp_record *r = dp_record_at(b, i);
	struct dp_hold_topic *rq;
	int st;

	if ((st = requested(h, dp_feed_at(b, r->topic), &rq)) != 0)
		return st;
	if (rq->state == RQ_PENDING && hold(h, rq, b, i) < 0) {
		dp_err("line %llu: out of memory", (unsigned long long)r->lineno);
		return DP_EX_SOFTWARE;
	}
	if (rq->state == RQ_REJECTED || rq->state == RQ_TIMEOUT) {
		char why[512];
		snprintf(why, sizeof(why), "topic '%s' was not created: %s", rq->name,
		         rq->reason ? rq->reason : "the coordinator did not answer");
		return dp_send_bad_line(h->send, dp_record_value(b, i, r), r->vallen, r->lineno, why,
		                        "topic_not_created");
	}
	return 0;
}

int
dp_hold_check(struct dp_hold *h)
{
	int64_t now = dp_time_mono_ms();

	for (size_t i = 0; i < h->ntopics; i++) {
		struct dp_hold_topic *rq = &h->topics[i];
		if (rq->state != RQ_PENDING)
			continue;
		const struct dp_dyn_spec *spec = dp_registry_get(h->reg, rq->name);
		bool ours = spec && spec->request_id && !strcmp(spec->request_id, rq->request_id);
		if (spec && spec->state == DP_DYN_ACTIVE) {
			rq->state = RQ_ACTIVE;
			dp_info("topic '%s' is active: sending its records", rq->name);
			int st = send_held(h, rq);
			if (st)
				return st;
		} else if (ours && spec->state == DP_DYN_REJECTED) {
			rq->state = RQ_REJECTED;
			rq->reason = strdup(spec->reason ? spec->reason : "no reason given");
			h->failed = true;
			if (!rq->reason)
				return DP_EX_SOFTWARE;
		} else if (now - rq->sent_ms >= h->timeout_ms) {
			rq->state = RQ_TIMEOUT;
			h->failed = true;
		}
	}
	return 0;
}

bool
dp_hold_unanswered(struct dp_hold *h)
{
	char within[48];
	bool any = false;

	for (size_t i = 0; i < h->ntopics; i++) {
		struct dp_hold_topic *rq = &h->topics[i];
		if (rq->state != RQ_TIMEOUT || !rq->first)
			continue;
		dp_err("no answer to the request for topic '%s' within %s: is a dp-coord serve "
		       "running (requests on '%s')?", rq->name,
		       h->timeout_arg ? h->timeout_arg : dp_duration_format(h->timeout_ms, within),
		       h->requests);
		any = true;
	}
	return any;
}

int
dp_hold_reject(struct dp_hold *h)
{
	int st = 0;

	for (size_t i = 0; i < h->ntopics; i++) {
		struct dp_hold_topic *rq = &h->topics[i];
		if (rq->state != RQ_REJECTED)
			continue;
		if (rq->first)
			dp_warn("topic '%s' was not created: %s", rq->name, rq->reason);
		while (rq->first && !st) {
			struct held *x = rq->first;
			char why[512];
			snprintf(why, sizeof(why), "topic '%s' was not created: %s", rq->name,
			         rq->reason);
			st = dp_send_bad_line(h->send, x->value, x->vallen, x->lineno, why,
			                      "topic_not_created");
			unhold(h, rq);
		}
		if (st == DP_EX_DATAERR) {
			/* --on-error fail: the rest are bad lines after the first, not sent. */
			for (size_t k = i; k < h->ntopics; k++) {
				if (h->topics[k].state != RQ_REJECTED)
					continue;
				for (struct held *x = h->topics[k].first; x; x = x->next) {
					h->bytes -= x->size;
					h->n--;
				}
				held_free_list(&h->topics[k]);
			}
		}
		if (st)
			return st;
	}
	h->failed = false;
	return 0;
}
