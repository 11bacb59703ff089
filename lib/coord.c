/*
 * coord.c -- the coordinator's decisions (coord.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "coord.h"
#include "expr.h"

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
		struct dp_buf pair = DP_BUF_INIT;
		int rc = dp_buf_addf(&pair, "%s=%s", q->config[i].key, q->config[i].value);
		if (rc == 0)
			rc = dp_kv_add(&s->config, &s->nconfig, pair.data);
		dp_buf_free(&pair);
		if (rc < 0)
			return -1;
	}
	return 0;
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
	/* A retired topic asked for again as it was is taken back: decided
	 * as new, so the policy holds and its deletion is called off. */
	bool back = cur && cur->state == DP_DYN_RETIRED && dp_coord_same(cur, q);
	if (cur && !back && (cur->state == DP_DYN_ACTIVE || cur->state == DP_DYN_RETIRED)) {
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
		struct dp_expr *e = dp_expr_compile(q->filter, &err);
		if (!e)
			dp_coord_reject(spec, DP_DYN_BAD_FILTER, "%s", dp_buf_str(&err));
		dp_expr_free(e);
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
