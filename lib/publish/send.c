/*
 * publish/send.c -- prepared records handed to the producer, and their fate
 * accounted for (publish/send.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/vec.h"
#include "json/write.h"
#include "obs/obs.h"
#include "publish/send.h"

#define NONE DP_FEED_NONE

/* A copy not delivered: its line, and its topic (an index into copytopics). */
struct dp_send_lost_copy {
	uint64_t line;
	size_t topic;
};

void
dp_send_clear(struct dp_send *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ncopytopics; i++)
		free(s->copytopics[i]);
	free(s->copytopics);
	free(s->lostcopies);
	free(s->lost_lines);
	free(s->recs);
	free(s->refused);
	free(s->hv);
	dp_buf_free(&s->ack);
	dp_buf_free(&s->err);
}

/* A failure outside the run in hand (stdout, memory): the first one counts. */
static void
failed(struct dp_send *s, int status)
{
	if (status && !*s->status)
		*s->status = status;
}

/* ---- delivery reports ---- */

static void
report_line(struct dp_send *s, const struct dp_producer_report *r, uint64_t line)
{
	struct dp_buf *b = &s->ack;
	struct dp_jw w;

	dp_buf_reset(b);
	dp_jw_init(&w, b);
	dp_jw_obj(&w);
	dp_jw_kuint(&w, "line", line);
	dp_jw_kstr(&w, "topic", r->topic);
	if (r->err) {
		dp_jw_kstr(&w, "error", rd_kafka_err2str(r->err));
	} else {
		dp_jw_kint(&w, "partition", r->partition);
		dp_jw_kint(&w, "offset", r->offset);
	}
	dp_jw_end(&w);
	if (dp_jw_finish(&w) < 0 || dp_buf_addch(b, '\n') < 0) {
		dp_err("line %llu: cannot report: out of memory", (unsigned long long)line);
		failed(s, DP_EX_SOFTWARE);
		return;
	}
	if (dp_out_write(s->out, b->data, b->len) < 0)
		failed(s, s->out_failed(errno));
}

/* A line one of whose records (or copies) was not delivered. */
static void
lost_line(struct dp_send *s, uint64_t line)
{
	uint64_t *v = dp_grow(s->lost_lines, &s->caplost, s->nlost + 1, sizeof(*v), 64);

	if (!v) {
		/* Counted all the same: the total may count a line twice. */
		s->lost_overflow++;
		return;
	}
	s->lost_lines = v;
	s->lost_lines[s->nlost++] = line;
}

/*
 * A copy into a dynamic topic that was not delivered: decided at the
 * end, once the registry is read to its end, whether its topic was
 * retired meanwhile (then it no longer wanted records).
 */
static void
lost_copy(struct dp_send *s, uint64_t line, const char *topic)
{
	size_t t;

	for (t = 0; t < s->ncopytopics && strcmp(s->copytopics[t], topic) != 0; t++)
		;
	if (t == s->ncopytopics) {
		char **v = dp_grow(s->copytopics, &s->capcopytopics, t + 1, sizeof(*v), 8);
		if (v)
			s->copytopics = v;
		if (!v || !(v[t] = strdup(topic))) {
			lost_line(s, line);
			return;
		}
		s->ncopytopics++;
	}
	struct dp_send_lost_copy *v = dp_grow(s->lostcopies, &s->caplostcopies,
	                                      s->nlostcopies + 1, sizeof(*v), 64);
	if (!v) {
		lost_line(s, line);
		return;
	}
	s->lostcopies = v;
	s->lostcopies[s->nlostcopies++] = (struct dp_send_lost_copy){ line, t };
}

void
dp_send_report(void *arg, const struct dp_producer_report *r)
{
	struct dp_send *s = arg;
	uint64_t line = r->tag & ~DP_RECORD_COPY_TAG;

	if (!r->err)
		++*(r->tag & DP_RECORD_COPY_TAG ? &s->copies_delivered : &s->delivered);
	if (r->err && (r->tag & DP_RECORD_COPY_TAG)) {
		dp_info("line %llu: copy not delivered to '%s': %s", (unsigned long long)line,
		        r->topic, rd_kafka_err2str(r->err));
		lost_copy(s, line, r->topic);
	} else if (r->err) {
		/* The first few failures are named; the total is always given. */
		if (++s->failed <= 5)
			dp_err("line %llu: not delivered to '%s': %s", (unsigned long long)line,
			       r->topic, rd_kafka_err2str(r->err));
		lost_line(s, line);
	}
	if (s->out)
		report_line(s, r, line);
}

/* Distinct lines in v[0..n) (sorted here). */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
distinct(uint64_t *v, size_t n)
{
	uint64_t k = 0;

	if (n == 0)
		return 0;       /* v may be NULL: qsort must not see it */
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < n; i++)
		k += i == 0 || v[i] != v[i - 1];
	return k;
}

uint64_t
dp_send_lost(struct dp_send *s, struct dp_registry *reg)
{
	struct dp_buf err = DP_BUF_INIT;

	if (s->nlostcopies && reg && dp_registry_sync(reg, -1, &err) != 0)
		dp_info("registry: %s", dp_buf_str(&err));
	for (size_t i = 0; i < s->nlostcopies; i++) {
		const struct dp_dyn_spec *spec = reg ? dp_registry_get(reg,
		                                       s->copytopics[s->lostcopies[i].topic]) : NULL;
		if (reg && (!spec || spec->state != DP_DYN_ACTIVE))
			s->excused++;
		else
			lost_line(s, s->lostcopies[i].line);
	}
	if (s->nlostcopies && s->excused)
		dp_info("%llu cop%s not delivered to dynamic topics retired meanwhile (not "
		        "missed)", (unsigned long long)s->excused, s->excused == 1 ? "y" : "ies");
	s->nlostcopies = 0;
	dp_buf_free(&err);
	return distinct(s->lost_lines, s->nlost) + s->lost_overflow;
}

/* ---- handing over ---- */

int
dp_send_bad_line(struct dp_send *s, const char *line, size_t len, uint64_t lineno,
                 const char *why, const char *kind)
{
	static const char *const labels[] = { "reason", NULL };

	char where[48], num[24];
	struct dp_producer_header h[3] = {
		{ "dp-error", why, strlen(why) },
		{ "dp-line", num, (size_t)snprintf(num, sizeof(num), "%llu",
		                                   (unsigned long long)lineno) },
		{ "dp-topic", s->topic, s->topic ? strlen(s->topic) : 0 },
	};

	snprintf(where, sizeof(where), "line %llu", (unsigned long long)lineno);
	dp_obs_count(DP_OBS_RECORDS_BAD, labels, (const char *const[]){ kind }, 1);
	int st = dp_on_error_record(s->on_error, s->prod, where, why, NULL, 0, line, len, h,
	                            s->topic ? 3 : 2, lineno);
	if (st == 0 && s->on_error->mode == DP_ON_ERROR_DLQ)
		s->records++;           /* the dead letter is delivered like any record */
	return st;
}

/* Room for n records in s->recs. */
static int
recs_room(struct dp_send *s, size_t n)
{
	struct dp_producer_rec *v;

	if (n <= s->caprecs)
		return 0;
	if (!(v = dp_grow(s->recs, &s->caprecs, n, sizeof(*v), 1024)))
		return -1;
	s->recs = v;
	return 0;
}

/* The headers of record r of b, in s->hv from nh on; returns how many. */
static size_t
headers_of(struct dp_send *s, const struct dp_feed_batch *b, const struct dp_record *r,
           size_t nh)
{
	for (size_t k = 0; k < r->nhdr; k++) {
		struct dp_record_hdr_at h = dp_record_hdr(b, r, k);
		s->hv[nh + k] = (struct dp_producer_header){
			dp_feed_at(b, h.name), h.value == NONE ? NULL : dp_feed_at(b, h.value), h.len,
		};
	}
	return r->nhdr;
}

/* Room in s->hv for the headers of records [from, to) of b. */
static int
hv_room(struct dp_send *s, const struct dp_feed_batch *b, size_t from, size_t to)
{
	struct dp_producer_header *hv;
	size_t nh = 0;

	for (size_t i = from; i < to; i++)
		nh += dp_record_at(b, i)->nhdr;
	if (nh <= s->caphv)
		return 0;
	if (!(hv = dp_grow(s->hv, &s->caphv, nh, sizeof(*hv), 64)))
		return -1;
	s->hv = hv;
	return 0;
}

/* A record as the producer takes it: to its topic, or as a copy into copy_to. */
static struct dp_producer_rec
producer_rec(const struct dp_feed_batch *b, size_t i, const struct dp_record *r,
             const struct dp_producer_header *hv, const char *copy_to)
{
	return (struct dp_producer_rec){
		.topic = copy_to ? copy_to : r->topic == NONE ? NULL : dp_feed_at(b, r->topic),
		/* A copy goes where its key puts it in the dynamic topic. */
		.partition = copy_to ? DP_PRODUCER_ANY : r->partition,
		.key = r->key == NONE ? NULL : dp_feed_at(b, r->key),
		.key_len = r->keylen,
		.value = dp_record_value(b, i, r),
		.value_len = r->vallen,
		.hdrs = r->nhdr ? hv : NULL,
		.nhdrs = r->nhdr,
		.timestamp = r->ts,
		.tag = copy_to ? r->lineno | DP_RECORD_COPY_TAG : r->lineno,
	};
}

/*
 * The producer's view of records [from, to) of b, in s->recs.  Built
 * here rather than in the reader: only now are the batch's bytes where
 * they stay.
 */
static int
resolve(struct dp_send *s, const struct dp_feed_batch *b, size_t from, size_t to)
{
	size_t nh = 0;

	if (hv_room(s, b, from, to) < 0 || recs_room(s, to - from) < 0)
		return -1;
	for (size_t i = from; i < to; i++) {
		const struct dp_record *r = dp_record_at(b, i);
		size_t k = headers_of(s, b, r, nh);
		s->recs[i - from] = producer_rec(b, i, r, &s->hv[nh], NULL);
		nh += k;
	}
	return 0;
}

/* The copies of records [from, to) of b whose records went, in s->recs; -1: memory. */
static ssize_t
resolve_copies(struct dp_send *s, const struct dp_feed_batch *b, size_t from, size_t to)
{
	size_t n = 0, nh = 0;

	for (size_t i = from; i < to; i++)
		n += s->refused[i] ? 0 : dp_record_at(b, i)->ncopies;
	if (n == 0)
		return 0;
	if (hv_room(s, b, from, to) < 0 || recs_room(s, n) < 0)
		return -1;
	n = 0;
	for (size_t i = from; i < to; i++) {
		const struct dp_record *r = dp_record_at(b, i);
		if (s->refused[i] || !r->ncopies)
			continue;
		size_t k = headers_of(s, b, r, nh);
		for (size_t c = 0; c < r->ncopies; c++)
			s->recs[n++] = producer_rec(b, i, r, &s->hv[nh], dp_record_copy(b, r, c));
		nh += k;
	}
	return (ssize_t)n;
}

/*
 * Hand copies s->recs[0..n) over.  A copy refused for itself (too large,
 * its topic deleted) is a copy not delivered, judged at the end (see
 * lost_copy).  Returns 0, or the status that ends the input.
 */
static int
send_copies(struct dp_send *s, size_t n)
{
	for (size_t k0 = 0; k0 < n;) {
		size_t bad;
		dp_buf_reset(&s->err);
		int st = dp_producer_send(s->prod, s->recs + k0, n - k0, &bad, &s->err);
		if (!st) {
			s->copies += n - k0;
			break;
		}
		const struct dp_producer_rec *c = &s->recs[k0 + bad];
		uint64_t line = c->tag & ~DP_RECORD_COPY_TAG;
		s->copies += bad;
		if (st != DP_EX_DATAERR && st != DP_EX_NOTFOUND) {
			dp_err("line %llu: %s", (unsigned long long)line, dp_buf_str(&s->err));
			return st;
		}
		dp_info("line %llu: copy not sent to '%s': %s", (unsigned long long)line, c->topic,
		        dp_buf_str(&s->err));
		lost_copy(s, line, c->topic);
		k0 += bad + 1;
	}
	return 0;
}

int
dp_send_run(struct dp_send *s, const struct dp_feed_batch *b, size_t from, size_t to)
{
	const struct dp_record *recs = b->recs;
	size_t k0 = 0, n = to - from, sent = n;
	int status = 0;
	bool copies = false;

	if (to > s->caprefused) {
		bool *v = dp_grow(s->refused, &s->caprefused, to, sizeof(*v), 1024);
		if (!v) {
			dp_err("line %llu: out of memory", (unsigned long long)recs[from].lineno);
			return DP_EX_SOFTWARE;
		}
		s->refused = v;
	}
	for (size_t i = from; i < to; i++) {
		s->refused[i] = false;
		copies |= recs[i].ncopies > 0;
	}
	if (resolve(s, b, from, to) < 0) {
		dp_err("line %llu: out of memory", (unsigned long long)recs[from].lineno);
		return DP_EX_SOFTWARE;
	}
	while (k0 < n) {
		size_t bad;
		dp_buf_reset(&s->err);
		int st = dp_producer_send(s->prod, s->recs + k0, n - k0, &bad, &s->err);
		if (!st) {
			s->records += n - k0;
			break;
		}
		/* Said once, with its line: the record is refused for itself, or all stops. */
		size_t i = from + k0 + bad;
		s->records += bad;
		if (st != DP_EX_DATAERR) {
			dp_err("line %llu: %s", (unsigned long long)recs[i].lineno, dp_buf_str(&s->err));
			status = st;
			sent = i - from;
			break;
		}
		s->refused[i] = true;
		if ((st = dp_send_bad_line(s, dp_record_value(b, i, &recs[i]), recs[i].vallen,
		                           recs[i].lineno, dp_buf_str(&s->err),
		                           "refused_by_kafka")) != 0) {
			status = st;
			sent = i - from;
			break;
		}
		k0 += bad + 1;
	}
	if (copies && sent) {
		/* Copies of what went, also when the input stops here. */
		ssize_t nc = resolve_copies(s, b, from, from + sent);
		int st = nc < 0 ? DP_EX_SOFTWARE : send_copies(s, (size_t)nc);
		if (nc < 0)
			dp_err("line %llu: out of memory", (unsigned long long)recs[from].lineno);
		if (st && !status)
			status = st;
	}
	return status;
}

int
dp_send_one(struct dp_send *s, const struct dp_producer_rec *rec,
            const char *const *copies, size_t ncopies, bool *taken)
{
	size_t bad;

	dp_buf_reset(&s->err);
	int st = dp_producer_send(s->prod, rec, 1, &bad, &s->err);
	*taken = st == 0 || st == DP_EX_DATAERR;
	if (st == DP_EX_DATAERR)
		return dp_send_bad_line(s, rec->value, rec->value_len, rec->tag, dp_buf_str(&s->err),
		                        "refused_by_kafka");
	if (st) {
		dp_err("line %llu: %s", (unsigned long long)rec->tag, dp_buf_str(&s->err));
		return st;
	}
	s->records++;
	if (recs_room(s, ncopies) < 0) {
		dp_err("line %llu: out of memory", (unsigned long long)rec->tag);
		return DP_EX_SOFTWARE;
	}
	for (size_t c = 0; c < ncopies; c++) {
		s->recs[c] = *rec;
		s->recs[c].topic = copies[c];
		s->recs[c].partition = DP_PRODUCER_ANY;
		s->recs[c].tag = rec->tag | DP_RECORD_COPY_TAG;
	}
	return send_copies(s, ncopies);
}
