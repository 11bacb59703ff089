/*
 * publish/record.c -- one input line made into a Kafka record, in the reader
 * thread (publish/record.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/vec.h"
#include "json/envelope.h"
#include "json/scan.h"
#include "kafka/client.h"
#include "publish/record.h"

#define NONE DP_FEED_NONE
#define PREP_STOP (-2)          /* prepare_*: a signal came while checking a topic */

struct dp_record_reader {
	struct dp_record_conf c;
	const struct dp_record_opts *o;
	char **known;                   /* topics proven to exist */
	size_t nknown, capknown;
	char **missing;                 /* --request-topics: topics found missing */
	size_t nmissing, capmissing;
	/* routes: the main thread offers lists, the reader takes the newest */
	_Atomic(struct dp_route_list *) routes_next;
	struct dp_route *router;
	size_t *copyscratch;            /* a record's copies */
	size_t ncopy, copycap;
	/* scratch, reused */
	struct dp_buf key, tmp, err, topicbuf;
	struct dp_record_hdr_at *hscratch;      /* the headers of the line being prepared */
	size_t nhscratch, hscratch_cap;
};

/* ---- options ---- */

int
dp_record_opts_expr(struct dp_expr **e, const char *opt, const char *src)
{
	struct dp_buf err = DP_BUF_INIT;

	dp_expr_free(*e);
	*e = dp_expr_compile(src, &err);
	if (!*e)
		dp_err("invalid %s: %s", opt, dp_buf_str(&err));
	dp_buf_free(&err);
	return *e ? 0 : -1;
}

int
dp_record_opts_header(struct dp_record_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct dp_record_header *h;
	struct dp_buf err = DP_BUF_INIT;

	if (!eq || eq == arg || !eq[1]) {
		dp_err("invalid --header '%s': expected NAME=JQ", arg);
		return -1;
	}
	if (!(h = dp_grow(o->hdrs, &o->caphdrs, o->nhdrs + 1, sizeof(*h), 4))) {
		dp_err("out of memory");
		return -1;
	}
	o->hdrs = h;
	h = &o->hdrs[o->nhdrs];
	if (!(h->name = strndup(arg, (size_t)(eq - arg)))) {
		dp_err("out of memory");
		return -1;
	}
	h->expr = dp_expr_compile(eq + 1, &err);
	if (!h->expr) {
		dp_err("invalid --header %s: %s", h->name, dp_buf_str(&err));
		free(h->name);
		dp_buf_free(&err);
		return -1;
	}
	o->nhdrs++;
	return 0;
}

void
dp_record_opts_clear(struct dp_record_opts *o)
{
	if (!o)
		return;
	dp_expr_free(o->topic_expr);
	dp_expr_free(o->key_expr);
	dp_expr_free(o->ts_expr);
	for (size_t i = 0; i < o->nhdrs; i++) {
		free(o->hdrs[i].name);
		dp_expr_free(o->hdrs[i].expr);
	}
	free(o->hdrs);
	o->topic_expr = o->key_expr = o->ts_expr = NULL;
	o->hdrs = NULL;
	o->nhdrs = o->caphdrs = 0;
}

/* ---- the reader ---- */

struct dp_record_reader *
dp_record_reader_new(const struct dp_record_conf *conf)
{
	struct dp_record_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->c = *conf;
	r->o = conf->opts;
	atomic_init(&r->routes_next, NULL);
	/* The router is the reader's from now on (made here, before it starts). */
	if (conf->follow && !(r->router = dp_route_new())) {
		free(r);
		return NULL;
	}
	return r;
}

static void
free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
dp_record_reader_free(struct dp_record_reader *r)
{
	if (!r)
		return;
	dp_route_free(r->router);
	free(atomic_exchange(&r->routes_next, NULL));
	free_names(r->known, r->nknown);
	free_names(r->missing, r->nmissing);
	free(r->copyscratch);
	free(r->hscratch);
	dp_buf_free(&r->key);
	dp_buf_free(&r->tmp);
	dp_buf_free(&r->err);
	dp_buf_free(&r->topicbuf);
	free(r);
}

void
dp_record_offer_routes(struct dp_record_reader *r, struct dp_route_list *l)
{
	/* A list the reader never took is superseded: it is ours to free. */
	free(atomic_exchange(&r->routes_next, l));
}

/* The reader takes the newest routes the main thread offered, if any. */
static void
take_routes(struct dp_record_reader *r, struct dp_feed_batch *b)
{
	if (!atomic_load_explicit(&r->routes_next, memory_order_relaxed))
		return;
	struct dp_route_list *l = atomic_exchange(&r->routes_next, NULL);
	if (l && dp_route_set(r->router, l->v, l->n) < 0)
		b->oom = true;
	free(l);
}

static void
add_hdr(struct dp_record_reader *r, struct dp_feed_batch *b, const char *name,
        const char *value, size_t len)
{
	struct dp_record_hdr_at *h = dp_grow(r->hscratch, &r->hscratch_cap, r->nhscratch + 1,
	                                     sizeof(*h), 16);

	if (!h) {
		b->oom = true;
		return;
	}
	r->hscratch = h;
	h = &r->hscratch[r->nhscratch++];
	h->name = dp_feed_add(b, name, strlen(name));
	h->value = value ? dp_feed_add(b, value, len) : NONE;
	h->len = len;
}

/* The record's value is its line: kept in place, not copied (publish/feed.h). */
static void
value_is_line(struct dp_feed_batch *b, size_t i, struct dp_record *rec, const char *line,
              size_t len)
{
	rec->in_line = line != NULL;
	rec->vallen = line ? len : 0;
	dp_feed_keep(b, i, line, len);
}

/*
 * Topics named by --topic-expr or an envelope are checked once each, so
 * a typo fails at once instead of after message.timeout.ms.
 */
static int
remember(char ***v, size_t *n, size_t *cap, const char *name, struct dp_buf *why)
{
	char **k = dp_grow(*v, cap, *n + 1, sizeof(*k), 16);

	if (!k || !(k[*n] = strdup(name))) {
		if (k)
			*v = k;
		dp_buf_msgf(why, "out of memory");
		return DP_EX_SOFTWARE;
	}
	*v = k;
	(*n)++;
	return 0;
}

/*
 * 0 when the topic exists; with --request-topics also when it does not,
 * with *missing set (the main thread asks the coordinator for it).
 */
static int
check_topic(struct dp_record_reader *r, const char *name, bool *missing, struct dp_buf *why)
{
	*missing = false;
	for (size_t i = 0; i < r->nknown; i++)
		if (strcmp(r->known[i], name) == 0)
			return 0;
	for (size_t i = 0; i < r->nmissing; i++)
		if (strcmp(r->missing[i], name) == 0) {
			*missing = true;
			return 0;
		}
	size_t mark = why->len;
	/*
	 * With --request-topics a topic thought missing is only asked for:
	 * the coordinator takes one that exists after all.  One short look.
	 */
	int st = dp_producer_check_topic(r->c.prod, name, r->c.request_topics ? 500
	                                                  : DP_PRODUCER_FOREVER, why);
	if (st == DP_EX_UNAVAILABLE && r->c.request_topics) {
		/* No answer that soon: a busy cluster gets --timeout, as always. */
		dp_buf_truncate(why, mark);
		st = dp_producer_check_topic(r->c.prod, name, DP_PRODUCER_FOREVER, why);
	}
	if (st == DP_EX_NOTFOUND && r->c.request_topics) {
		dp_buf_truncate(why, mark);
		*missing = true;
		return remember(&r->missing, &r->nmissing, &r->capmissing, name, why);
	}
	if (st == DP_KAFKA_STOPPED)
		st = PREP_STOP;
	if (st)
		return st;
	return remember(&r->known, &r->nknown, &r->capknown, name, why);
}

/* dp_route_match's callback: one more dynamic topic for the record in hand. */
struct copy_ctx {
	struct dp_record_reader *r;
	struct dp_feed_batch *b;
};

static int
add_copy(void *arg, const char *topic)
{
	struct copy_ctx *c = arg;
	struct dp_record_reader *r = c->r;
	size_t *v = dp_grow(r->copyscratch, &r->copycap, r->ncopy + 1, sizeof(*v), 16);

	if (!v)
		return -1;
	r->copyscratch = v;
	r->copyscratch[r->ncopy++] = dp_feed_add(c->b, topic, strlen(topic));
	return 0;
}

/*
 * --follow-registry: the dynamic topics that take a copy of the record
 * published to source, whose JSON is json[0..n).  0, or -1 (memory).
 */
static int
route_copies(struct dp_record_reader *r, struct dp_feed_batch *b, struct dp_record *rec,
             const char *source, const char *json, size_t n)
{
	struct copy_ctx c = { r, b };

	if (!r->router || !dp_route_count(r->router))
		return 0;
	r->ncopy = 0;
	if (dp_route_match(r->router, source, json, n, rec->lineno, add_copy, &c) < 0)
		return -1;
	if (r->ncopy) {
		rec->copies = dp_feed_add(b, r->copyscratch, r->ncopy * sizeof(*r->copyscratch));
		rec->ncopies = r->ncopy;
	}
	return 0;
}

/* A --timestamp result (text of a number or a string) in ms, > 0. */
static int
to_timestamp(enum dp_json_type t, const char *s, int64_t *ms)
{
	if (t == DP_JSON_NUMBER && dp_time_parse_epoch(s, ms) == 0)
		return *ms > 0 ? 0 : -1;
	if (t == DP_JSON_STRING && dp_time_parse(s, ms) == 0)
		return *ms > 0 ? 0 : -1;
	return -1;
}

/* The topic --topic-expr gives for the line, into r->topicbuf.  0 or -1. */
static int
topic_of(struct dp_record_reader *r, struct dp_expr_rec *rec)
{
	enum dp_json_type t;

	dp_buf_reset(&r->topicbuf);
	if (dp_expr_first(r->o->topic_expr, rec, &t, &r->topicbuf, &r->err) < 0)
		return -1;
	if (t != DP_JSON_STRING || r->topicbuf.len == 0) {
		dp_buf_msgf(&r->err, "--topic-expr gave %s, not a topic name",
		            t == DP_JSON_INVALID ? "no result" :
		            t == DP_JSON_STRING ? "an empty string" : dp_buf_str(&r->topicbuf));
		return -1;
	}
	return 0;
}

/*
 * Fill rec from one valid JSON line.  Returns 0, -1 with the reason in
 * r->err (a bad line), PREP_STOP, or an exit status > 0 (fatal).
 */
static int
prepare_json(struct dp_record_reader *r, struct dp_feed_batch *b, size_t i,
             struct dp_record *out, const char *line, size_t len, const char *kv, size_t kvn)
{
	const struct dp_record_opts *o = r->o;
	struct dp_expr_rec rec = DP_EXPR_REC(line, len);
	enum dp_json_type t;
	int rc = -1;

	if (o->topic_expr) {
		if (topic_of(r, &rec) < 0)
			goto out;
		if ((rc = check_topic(r, r->topicbuf.data, &out->unverified, &r->err)))
			goto out;
		rc = -1;
		out->topic = dp_feed_add(b, r->topicbuf.data, r->topicbuf.len);
	}
	if (o->key_expr) {
		dp_buf_reset(&r->key);
		if (kv) {
			/* Found while validating: no second pass over the line. */
			t = dp_json_type_of(kv);
			if ((t == DP_JSON_STRING ? dp_json_unquote(&r->key, kv, kvn)
			                         : dp_json_compact(&r->key, kv, kvn)) < 0) {
				dp_buf_msgf(&r->err, "out of memory");
				rc = DP_EX_SOFTWARE;
				goto out;
			}
		} else if (dp_expr_first(o->key_expr, &rec, &t, &r->key, &r->err) < 0) {
			goto out;
		}
		if (t != DP_JSON_NULL && t != DP_JSON_INVALID) {
			out->key = dp_feed_add(b, r->key.data ? r->key.data : "", r->key.len);
			out->keylen = r->key.len;
		}
	}
	if (o->ts_expr) {
		dp_buf_reset(&r->tmp);
		if (dp_expr_first(o->ts_expr, &rec, &t, &r->tmp, &r->err) < 0)
			goto out;
		if (to_timestamp(t, dp_buf_str(&r->tmp), &out->ts) < 0) {
			dp_buf_msgf(&r->err, "--timestamp gave '%s', not RFC 3339 or epoch time "
			            "after 1970-01-01T00:00:00Z", dp_buf_str(&r->tmp));
			goto out;
		}
	}
	for (size_t h = 0; h < o->nhdrs; h++) {
		dp_buf_reset(&r->tmp);
		if (dp_expr_first(o->hdrs[h].expr, &rec, &t, &r->tmp, &r->err) < 0)
			goto out;
		if (t != DP_JSON_INVALID)       /* no result: no header */
			add_hdr(r, b, o->hdrs[h].name, t == DP_JSON_NULL ? NULL : dp_buf_str(&r->tmp),
			        t == DP_JSON_NULL ? 0 : r->tmp.len);
	}
	if (route_copies(r, b, out, o->topic_expr ? r->topicbuf.data : o->topic, line, len) < 0) {
		dp_buf_msgf(&r->err, "out of memory");
		rc = DP_EX_SOFTWARE;
		goto out;
	}
	value_is_line(b, i, out, line, len);
	rc = 0;
out:
	dp_expr_rec_clear(&rec);
	return rc;
}

static int
prepare_envelope(struct dp_record_reader *r, struct dp_feed_batch *b, struct dp_record *out,
                 const char *line, size_t len)
{
	const struct dp_record_opts *o = r->o;
	struct dp_envelope env;
	const char *topic;
	int rc = -1;

	if (dp_envelope_parse(line, len, &env, &r->err) < 0)
		goto out;
	topic = o->topic ? o->topic : env.topic;
	if (o->topic_expr) {
		struct dp_expr_rec rec = DP_EXPR_REC(line, len);
		int e = topic_of(r, &rec);
		dp_expr_rec_clear(&rec);
		if (e < 0)
			goto out;
		topic = r->topicbuf.data;
	}
	if (!topic) {
		dp_buf_msgf(&r->err, "envelope has no \"topic\" and no -t was given");
		goto out;
	}
	if (env.has_timestamp && env.timestamp == 0) {
		/* rd_kafka_msg_new0 sends 0 as "now": the copy would differ. */
		dp_buf_msgf(&r->err, "envelope timestamp 0 cannot be produced: librdkafka "
		            "sends 0 as the current time");
		goto out;
	}
	if (!o->topic || strcmp(topic, o->topic) != 0) {
		bool missing;
		if ((rc = check_topic(r, topic, &missing, &r->err)))
			goto out;
		rc = -1;
		out->topic = dp_feed_add(b, topic, strlen(topic));
	}
	for (size_t h = 0; h < env.nhdrs; h++)
		add_hdr(r, b, env.hdrs[h].name, env.hdrs[h].value, env.hdrs[h].len);
	if (o->partition == DP_PRODUCER_ANY)
		out->partition = env.partition;
	if (env.key) {
		out->key = dp_feed_add(b, env.key, env.key_len);
		out->keylen = env.key_len;
	}
	if (env.value) {
		out->val = dp_feed_add(b, env.value, env.value_len);
		out->vallen = env.value_len;
	}
	out->ts = env.has_timestamp ? env.timestamp : 0;
	/* Filters see the value, when it is JSON. */
	const char *why;
	size_t off;
	if (r->router && env.value &&
	    dp_json_check(env.value, env.value_len, &why, &off) != DP_JSON_INVALID &&
	    route_copies(r, b, out, topic, env.value, env.value_len) < 0) {
		dp_buf_msgf(&r->err, "out of memory");
		rc = DP_EX_SOFTWARE;
		goto out;
	}
	rc = 0;
out:
	dp_envelope_clear(&env);
	return rc;
}

/* Record that ends the input (rc > 0) or marks a bad line (rc < 0) of kind bad. */
static void
mark(struct dp_feed_batch *b, struct dp_record *rec, int rc, const char *why, const char *bad)
{
	rec->nhdr = rec->ncopies = 0;
	rec->bad = bad;
	rec->kind = rc > 0 ? DP_RECORD_FATAL : DP_RECORD_BAD;
	rec->status = rc > 0 ? rc : 0;
	rec->why = dp_feed_add(b, why, strlen(why));
	if (rec->why == NONE) {
		rec->kind = DP_RECORD_FATAL;
		rec->status = DP_EX_SOFTWARE;
	}
}

int
dp_record_prepare(void *arg, struct dp_feed_batch *b, size_t i, const char *line, size_t len,
                  int got)
{
	struct dp_record_reader *r = arg;
	const struct dp_record_opts *o = r->o;
	struct dp_record *rec = (struct dp_record *)b->recs + i;
	char why[256];
	int rc = 0;

	rec->lineno = dp_lines_lineno(r->c.in);
	rec->topic = rec->key = rec->val = rec->why = rec->copies = NONE;
	rec->partition = o->partition;
	r->nhscratch = 0;
	if (r->router)
		take_routes(r, b);
	if (got == DP_LINES_LONG) {
		snprintf(why, sizeof(why), "line of %zu bytes is longer than --max-line-bytes "
		         "(%llu); it is not kept", len, (unsigned long long)o->max_line);
		mark(b, rec, -1, why, "too_long");
	} else if (got == DP_LINES_BAD) {
		snprintf(why, sizeof(why), "%s at byte %zu", dp_lines_error(r->c.in),
		         dp_lines_error_offset(r->c.in) + 1);
		mark(b, rec, -1, why, "not_text");
	} else if (o->raw) {
		value_is_line(b, i, rec, line, len);
	} else {
		const char *jwhy, *kv = NULL;
		size_t off, kvn = 0;
		const char *member = o->key_expr && !o->envelope ? dp_expr_member(o->key_expr) : NULL;
		if (dp_json_check_member(line, len, member, &kv, &kvn, &jwhy, &off, NULL) ==
		    DP_JSON_INVALID) {
			/* Bytes that are not text are named as such, not as JSON. */
			int text = strncmp(jwhy, "invalid UTF-8", 13) && strcmp(jwhy, "NUL byte");
			snprintf(why, sizeof(why), "%s%s at byte %zu", text ? "invalid JSON: " : "",
			         jwhy, off + 1);
			mark(b, rec, -1, why, text ? "invalid_json" : "not_text");
		} else {
			dp_buf_reset(&r->err);
			rc = o->envelope ? prepare_envelope(r, b, rec, line, len)
			                 : prepare_json(r, b, i, rec, line, len, kv, kvn);
			if (rc == PREP_STOP) {
				/* Its topic is not proven: the line cannot go. */
				dp_warn("line %llu: not sent: the signal came while checking "
				        "its topic", (unsigned long long)rec->lineno);
				b->n--;
				return r->c.ev_stop;
			}
			if (rc)
				mark(b, rec, rc, dp_buf_str(&r->err),
				     o->envelope ? "envelope" : "expression");
		}
	}
	if (rec->kind == DP_RECORD_BAD)         /* the raw line goes along for --on-error dlq */
		value_is_line(b, i, rec, line, len);
	else if (rec->kind == DP_RECORD_SEND && r->nhscratch) {
		rec->hdr = dp_feed_add(b, r->hscratch, r->nhscratch * sizeof(*r->hscratch));
		rec->nhdr = r->nhscratch;
	}
	if (b->oom) {
		b->oom = false;
		mark(b, rec, DP_EX_SOFTWARE, "out of memory", NULL);
	}
	if (rec->kind == DP_RECORD_BAD && r->c.stop_at_bad)
		return r->c.ev_bad_line;
	return rec->kind == DP_RECORD_FATAL ? r->c.ev_fatal : 0;
}

int
dp_record_failed(void *arg, struct dp_feed_batch *b, size_t i, int status, const char *why)
{
	struct dp_record_reader *r = arg;
	struct dp_record *rec = (struct dp_record *)b->recs + i;

	rec->lineno = dp_lines_lineno(r->c.in) + 1;
	mark(b, rec, status, why, NULL);
	return r->c.ev_fatal;
}

void
dp_record_ready(void *arg, struct dp_feed_batch *b)
{
	/* A kept line the hand-over had no memory for is fatal. */
	for (size_t i = 0; i < b->n; i++) {
		struct dp_record *rec = (struct dp_record *)b->recs + i;
		if (rec->in_line && !dp_feed_line(b, i)) {
			rec->in_line = false;
			rec->kind = DP_RECORD_FATAL;
			rec->status = DP_EX_SOFTWARE;
			rec->why = NONE;        /* "(out of memory)" */
		}
	}
}
