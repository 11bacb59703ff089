/*
 * dyn/decide.c -- the coordinator's decisions (dyn/decide.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/log.h"
#include "dyn/decide.h"
#include "jq/expr.h"
#include "jq/fast.h"
#include "kafka/admin.h"

int
dp_coord_policy_init(struct dp_coord_policy *p, const char *allow, int32_t max_partitions,
                     size_t max_topics, struct dp_buf *err)
{
	int rc = regcomp(&p->allow, allow, REG_EXTENDED | REG_NOSUB);

	if (rc) {
		char why[256];
		regerror(rc, &p->allow, why, sizeof(why));
		dp_buf_msgf(err, "invalid --allow '%s': %s", allow, why);
		return -1;
	}
	p->max_partitions = max_partitions;
	p->max_topics = max_topics;
	return 0;
}

void
dp_coord_policy_free(struct dp_coord_policy *p)
{
	if (p)
		regfree(&p->allow);
}

void
dp_coord_reject(struct dp_dyn_spec *spec, enum dp_dyn_reject r, const char *fmt, ...)
{
	struct dp_buf b = DP_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	dp_buf_vmsgf(&b, fmt, ap);
	va_end(ap);
	spec->state = DP_DYN_REJECTED;
	spec->rejected_for = r;
	free(spec->reason);
	spec->reason = b.lost ? strdup("out of memory") : dp_buf_detach(&b, NULL);
	dp_buf_free(&b);
}

static const char *
config_value(const struct dp_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			return kv[i].value;
	return NULL;
}

bool
dp_coord_same(const struct dp_dyn_spec *s, const struct dp_dyn_request *q)
{
	if (!s->source || !s->filter || strcmp(s->source, q->source) != 0 ||
	    strcmp(s->filter, q->filter) != 0)
		return false;
	if (q->partitions > 0 && s->partitions > 0 && q->partitions != s->partitions)
		return false;
	if (s->nconfig != q->nconfig)
		return false;
	for (size_t i = 0; i < q->nconfig; i++) {
		const char *v = config_value(s->config, s->nconfig, q->config[i].key);
		if (!v || strcmp(v, q->config[i].value) != 0)
			return false;
	}
	return true;
}

/* The record a request asks for, before any decision. */
static int
from_request(struct dp_dyn_spec *s, const struct dp_dyn_request *q, int64_t now)
{
	memset(s, 0, sizeof(*s));
	s->state = DP_DYN_ACTIVE;
	s->partitions = q->partitions;
	s->created_at = s->updated_at = now;
	s->delete_at = -1;
	if (!(s->topic = strdup(q->topic)) || !(s->request_id = strdup(q->request_id)) ||
	    (q->source && !(s->source = strdup(q->source))) ||
	    (q->filter && !(s->filter = strdup(q->filter))) ||
	    (q->requested_by && !(s->requested_by = strdup(q->requested_by))))
		return -1;
	for (size_t i = 0; i < q->nconfig; i++) {
		if (dp_kv_add_pair(&s->config, &s->nconfig, q->config[i].key,
		                   q->config[i].value) < 0)
			return -1;
	}
	return 0;
}

/*
 * The filter of a request, by the policy: 0 when granted, else a
 * rejection of spec.  Only what producers evaluate without libjq is
 * granted (policy in dyn/decide.h); a filter that is not jq at all says so.
 */
static void
check_filter(struct dp_dyn_spec *spec, const char *filter)
{
	struct dp_buf err = DP_BUF_INIT;
	size_t len = strlen(filter);

	if (len > DP_DYN_FILTER_MAX) {
		dp_coord_reject(spec, DP_DYN_BAD_FILTER, "the filter is %zu bytes, at most %d "
		                "allowed", len, DP_DYN_FILTER_MAX);
		return;
	}
	struct dp_jqf *f = dp_jqf_compile(filter);
	if (f) {
		dp_jqf_free(f);
		return;
	}
	struct dp_expr *e = dp_expr_compile(filter, &err);
	if (!e)
		dp_coord_reject(spec, DP_DYN_BAD_FILTER, "%s", dp_buf_str(&err));
	else
		dp_coord_reject(spec, DP_DYN_BAD_FILTER, "filter '%s' is outside what a dynamic "
		                "topic may use: paths, literals, comparisons, and, or, not, "
		                "select, tostring, object construction and | (see dp-coord(1))",
		                filter);
	dp_expr_free(e);
	dp_buf_free(&err);
}

int
dp_coord_decide_create(const struct dp_coord_policy *p, const struct dp_registry *view,
                       const struct dp_dyn_request *q, int64_t now, struct dp_dyn_spec *spec,
                       struct dp_buf *why)
{
	const struct dp_dyn_spec *cur = dp_registry_get(view, q->topic);
	struct dp_buf err = DP_BUF_INIT;

	memset(spec, 0, sizeof(*spec));
	/* Decided before (the coordinator stopped before it committed). */
	if (cur && cur->request_id && strcmp(cur->request_id, q->request_id) == 0)
		return dp_dyn_spec_copy(spec, cur) < 0 ? -1 : DP_COORD_REPEAT;
	bool held = cur && (cur->state == DP_DYN_ACTIVE || cur->state == DP_DYN_RETIRED);
	if (q->invalid) {
		if (held) {
			dp_buf_msgf(why, "invalid request (%s); topic '%s' is %s, which a rejection "
			            "would overwrite", q->invalid, q->topic,
			            dp_dyn_state_name(cur->state));
			return DP_COORD_IGNORE;
		}
		if (from_request(spec, q, now) < 0)
			return -1;
		dp_coord_reject(spec, DP_DYN_BAD_REQUEST, "invalid request: %s", q->invalid);
		return DP_COORD_REJECT;
	}
	/* A retired topic asked for again as it was is taken back: decided
	 * as new, so the policy holds and its deletion is called off. */
	bool back = cur && cur->state == DP_DYN_RETIRED && dp_coord_same(cur, q);
	if (held && !back) {
		/* Asking again for what is there is success, under the new id. */
		if (cur->state == DP_DYN_ACTIVE && dp_coord_same(cur, q)) {
			if (dp_dyn_spec_copy(spec, cur) < 0)
				return -1;
			free(spec->request_id);
			spec->request_id = strdup(q->request_id);
			free(spec->requested_by);
			spec->requested_by = q->requested_by ? strdup(q->requested_by) : NULL;
			spec->updated_at = now;
			return !spec->request_id ? -1 : DP_COORD_REPEAT;
		}
		dp_buf_msgf(why, "topic '%s' is %s with another spec; a rejection would overwrite it",
		            q->topic, dp_dyn_state_name(cur->state));
		return DP_COORD_IGNORE;
	}
	if (from_request(spec, q, now) < 0)
		return -1;
	/* The same topic, not a new one of that name: followers go on reading it. */
	if (back)
		spec->created_at = cur->created_at;
	if (dp_admin_check_name(q->topic, &err)) {
		dp_coord_reject(spec, DP_DYN_BAD_NAME, "%s", dp_buf_str(&err));
	} else if (strncmp(q->topic, "__", 2) == 0 ||
	           regexec(&p->allow, q->topic, 0, NULL, 0) != 0) {
		dp_coord_reject(spec, DP_DYN_BAD_NAME,
		                "topic name '%s' is not allowed here (see dp-coord serve --allow)",
		                q->topic);
	} else if (q->partitions > p->max_partitions) {
		dp_coord_reject(spec, DP_DYN_BAD_PARTITIONS,
		                "%d partitions asked, at most %d allowed", (int)q->partitions,
		                (int)p->max_partitions);
	} else if (dp_registry_count(view, DP_DYN_ACTIVE) >= p->max_topics) {
		dp_coord_reject(spec, DP_DYN_TOO_MANY, "%zu dynamic topics are active, the most "
		                "allowed", p->max_topics);
	} else {
		check_filter(spec, q->filter);
	}
	dp_buf_free(&err);
	if (back && spec->state == DP_DYN_REJECTED) {
		/* A rejection would overwrite the record that still says when to
		 * delete the topic: the retired topic stays as it is. */
		dp_buf_msgf(why, "topic '%s' is retired and cannot be taken back: %s", q->topic,
		            spec->reason ? spec->reason : "rejected");
		dp_dyn_spec_clear(spec);
		return DP_COORD_IGNORE;
	}
	return spec->state == DP_DYN_REJECTED ? DP_COORD_REJECT : DP_COORD_CREATE;
}

int
dp_coord_decide_retire(const struct dp_registry *view, const struct dp_dyn_request *q,
                       int64_t now, struct dp_dyn_spec *spec, struct dp_buf *why)
{
	const struct dp_dyn_spec *cur = dp_registry_get(view, q->topic);

	memset(spec, 0, sizeof(*spec));
	if (q->invalid) {
		dp_buf_msgf(why, "invalid request: %s", q->invalid);
		return DP_COORD_REJECT;
	}
	if (!cur || (cur->state != DP_DYN_ACTIVE && cur->state != DP_DYN_RETIRED)) {
		dp_buf_msgf(why, "no active dynamic topic '%s' to retire", q->topic);
		return DP_COORD_IGNORE;
	}
	if (dp_dyn_spec_copy(spec, cur) < 0)
		return -1;
	if (cur->state == DP_DYN_RETIRED)
		return DP_COORD_REPEAT;
	spec->state = DP_DYN_RETIRED;
	spec->updated_at = now;
	spec->delete_at = now + q->delete_after_ms;
	return DP_COORD_RETIRE;
}

/* ---- the decisions made ----------------------------------------------------- */

/* An open-addressing table of decisions by request_id (FNV-1a). */
struct slot {
	uint64_t hash;
	struct dp_dyn_decision *d;   /* NULL: free, or GONE */
};

static struct dp_dyn_decision gone_mark;
#define GONE (&gone_mark)

struct dp_coord_decisions {
	struct slot *v;
	size_t cap;                  /* a power of two, or 0 */
	size_t used;                 /* live */
	size_t taken;                /* live and GONE */
};

static uint64_t
hash_id(const char *s)
{
	return dp_hash(s, strlen(s));
}

struct dp_coord_decisions *
dp_coord_decisions_new(void)
{
	return calloc(1, sizeof(struct dp_coord_decisions));
}

static void
decision_free(struct dp_dyn_decision *d)
{
	if (d && d != GONE) {
		dp_dyn_decision_clear(d);
		free(d);
	}
}

void
dp_coord_decisions_free(struct dp_coord_decisions *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->cap; i++)
		decision_free(t->v[i].d);
	free(t->v);
	free(t);
}

/* The slot holding id, or NULL. */
static struct slot *
lookup(const struct dp_coord_decisions *t, const char *id, uint64_t h)
{
	if (!t->cap)
		return NULL;
	for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		struct slot *s = &t->v[i];
		if (!s->d)
			return NULL;
		if (s->d != GONE && s->hash == h && strcmp(s->d->request_id, id) == 0)
			return s;
	}
}

static int
rehash(struct dp_coord_decisions *t, size_t cap)
{
	struct slot *v = calloc(cap, sizeof(*v));

	if (!v)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		struct slot *s = &t->v[i];
		if (!s->d || s->d == GONE)
			continue;
		size_t k = s->hash & (cap - 1);
		while (v[k].d)
			k = (k + 1) & (cap - 1);
		v[k] = *s;
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	t->taken = t->used;
	return 0;
}

/* Insert or replace; takes d (freed on failure). */
static int
insert(struct dp_coord_decisions *t, struct dp_dyn_decision *d)
{
	uint64_t h = hash_id(d->request_id);
	struct slot *s = lookup(t, d->request_id, h);

	if (s) {
		decision_free(s->d);
		s->d = d;
		return 0;
	}
	if ((t->taken + 1) * 4 > t->cap * 3 &&
	    rehash(t, t->used * 2 + 1 > t->cap / 2 ? (t->cap ? t->cap * 2 : 64) : t->cap) < 0) {
		decision_free(d);
		return -1;
	}
	size_t i = h & (t->cap - 1);
	while (t->v[i].d && t->v[i].d != GONE)
		i = (i + 1) & (t->cap - 1);
	if (!t->v[i].d)
		t->taken++;
	t->v[i] = (struct slot){ h, d };
	t->used++;
	return 0;
}

void
dp_coord_decisions_forget(struct dp_coord_decisions *t, const char *id)
{
	struct slot *s = lookup(t, id, hash_id(id));

	if (s) {
		decision_free(s->d);
		s->d = GONE;
		t->used--;
	}
}

int
dp_coord_decisions_put(struct dp_coord_decisions *t, const struct dp_dyn_decision *dec)
{
	struct dp_dyn_decision *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	*d = *dec;
	d->request_id = strdup(dec->request_id);
	d->topic = dec->topic ? strdup(dec->topic) : NULL;
	d->reason = dec->reason ? strdup(dec->reason) : NULL;
	if (!d->request_id || (dec->topic && !d->topic) || (dec->reason && !d->reason)) {
		decision_free(d);
		return -1;
	}
	return insert(t, d);
}

int
dp_coord_decisions_apply(struct dp_coord_decisions *t, const char *where, const char *key,
                         size_t keylen, const char *value, size_t len)
{
	struct dp_buf why = DP_BUF_INIT;
	struct dp_dyn_decision *d;
	char *id;

	if (!key || !keylen || memchr(key, '\0', keylen)) {
		dp_warn("decisions %s: skipped: no key naming a request", where);
		return 0;
	}
	if (!(id = strndup(key, keylen)))
		return -1;
	if (!value) {
		dp_coord_decisions_forget(t, id);
		free(id);
		return 0;
	}
	if (!(d = calloc(1, sizeof(*d)))) {
		free(id);
		return -1;
	}
	int rc = 0;
	if (dp_dyn_decision_parse(value, len, d, &why) < 0) {
		dp_warn("decisions %s (key '%s'): skipped: %s", where, id, dp_buf_str(&why));
		decision_free(d);
	} else if (strcmp(d->request_id, id) != 0) {
		dp_warn("decisions %s: skipped: key '%s' is not its request_id '%s'", where, id,
		        d->request_id);
		decision_free(d);
	} else {
		rc = insert(t, d);
	}
	free(id);
	dp_buf_free(&why);
	return rc;
}

const struct dp_dyn_decision *
dp_coord_decided(const struct dp_coord_decisions *t, const char *id)
{
	const struct slot *s = lookup(t, id, hash_id(id));

	return s ? s->d : NULL;
}

size_t
dp_coord_decisions_count(const struct dp_coord_decisions *t)
{
	return t->used;
}

size_t
dp_coord_decisions_before(const struct dp_coord_decisions *t, int64_t offset,
                          const char ***ids)
{
	size_t n = 0;

	*ids = calloc(t->used ? t->used : 1, sizeof(**ids));
	if (!*ids)
		return (size_t)-1;
	for (size_t i = 0; i < t->cap; i++) {
		const struct dp_dyn_decision *d = t->v[i].d;
		if (d && d != GONE && d->request_offset >= 0 && d->request_offset < offset)
			(*ids)[n++] = d->request_id;
	}
	return n;
}
