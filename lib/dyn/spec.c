/*
 * dyn/spec.c -- requests and registry specs of dynamic topics, to and from
 * JSON (dyn/spec.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "dyn/spec.h"
#include "jq/expr.h"
#include "json/scan.h"
#include "json/write.h"

const char *
dp_dyn_state_name(enum dp_dyn_state s)
{
	switch (s) {
	case DP_DYN_ACTIVE:   return "active";
	case DP_DYN_REJECTED: return "rejected";
	case DP_DYN_RETIRED:  return "retired";
	default:              return "unknown";
	}
}

static const char *const reject_names[] = {
	[DP_DYN_OK] = NULL, [DP_DYN_BAD_NAME] = "name", [DP_DYN_BAD_FILTER] = "filter",
	[DP_DYN_BAD_PARTITIONS] = "partitions", [DP_DYN_TOO_MANY] = "topics",
	[DP_DYN_NO_SOURCE] = "source", [DP_DYN_BAD_CONFIG] = "config", [DP_DYN_EXISTS] = "exists",
	[DP_DYN_OTHER] = "other", [DP_DYN_BAD_REQUEST] = "request",
};

const char *
dp_dyn_reject_name(enum dp_dyn_reject r)
{
	return (size_t)r < sizeof(reject_names) / sizeof(reject_names[0]) ? reject_names[r] : NULL;
}

int
dp_dyn_reject_status(enum dp_dyn_reject r)
{
	switch (r) {
	case DP_DYN_OK:             return DP_EX_OK;
	case DP_DYN_BAD_NAME:       return DP_EX_INVALID;
	case DP_DYN_BAD_FILTER:
	case DP_DYN_BAD_REQUEST:
	case DP_DYN_OTHER:          return DP_EX_DATAERR;
	case DP_DYN_BAD_PARTITIONS:
	case DP_DYN_TOO_MANY:       return DP_EX_CAPACITY;
	case DP_DYN_NO_SOURCE:      return DP_EX_NOTFOUND;
	case DP_DYN_BAD_CONFIG:     return DP_EX_CONFIG;
	case DP_DYN_EXISTS:         return DP_EX_EXISTS;
	}
	return DP_EX_DATAERR;
}

static const char *const outcome_names[] = {
	[DP_DYN_OUT_GRANTED] = "granted", [DP_DYN_OUT_REJECTED] = "rejected",
	[DP_DYN_OUT_RETIRED] = "retired", [DP_DYN_OUT_IGNORED] = "ignored",
};

const char *
dp_dyn_outcome_name(enum dp_dyn_outcome o)
{
	return (size_t)o < sizeof(outcome_names) / sizeof(outcome_names[0]) && outcome_names[o]
	       ? outcome_names[o] : "unknown";
}

/* ---- reading ------------------------------------------------------------ */

struct rd {
	const char *json;
	size_t n;
	struct dp_buf *err;
	struct dp_buf tmp;
	int bad;
};

/* The member's text, or NULL when it is absent or null. */
static const char *
member(struct rd *r, const char *name, enum dp_json_type *t, size_t *len)
{
	const char *path[1] = { name }, *v;

	*t = dp_json_get(r->json, r->n, path, 1, &v, len);
	return *len && *t != DP_JSON_NULL ? v : NULL;
}

/* A string member into *out (owned); absent or null leaves NULL. */
static void
get_string(struct rd *r, const char *name, bool required, char **out)
{
	enum dp_json_type t;
	size_t len;
	const char *v = member(r, name, &t, &len);

	if (r->bad)
		return;
	if (!v) {
		if (required) {
			dp_buf_msgf(r->err, "no \"%s\"", name);
			r->bad = 1;
		}
		return;
	}
	if (t != DP_JSON_STRING) {
		dp_buf_msgf(r->err, "\"%s\" is not a string", name);
		r->bad = 1;
		return;
	}
	dp_buf_reset(&r->tmp);
	if (dp_json_unquote(&r->tmp, v, len) < 0 || dp_buf_addstr(&r->tmp, "") < 0) {
		dp_buf_msgf(r->err, "out of memory");
		r->bad = 1;
		return;
	}
	if (memchr(r->tmp.data, '\0', r->tmp.len)) {
		dp_buf_msgf(r->err, "\"%s\" holds a NUL character", name);
		r->bad = 1;
		return;
	}
	*out = dp_buf_detach(&r->tmp, NULL);
	if (!*out) {
		dp_buf_msgf(r->err, "out of memory");
		r->bad = 1;
	}
}

/* An integer member in [min, max]; absent or null leaves *out. */
static void
get_int(struct rd *r, const char *name, int64_t min, int64_t max, int64_t *out)
{
	enum dp_json_type t;
	size_t len;
	const char *v = member(r, name, &t, &len);
	char num[32], *end;

	if (r->bad || !v)
		return;
	if (t != DP_JSON_NUMBER || len >= sizeof(num)) {
		dp_buf_msgf(r->err, "\"%s\" is not an integer", name);
		r->bad = 1;
		return;
	}
	memcpy(num, v, len);
	num[len] = '\0';
	errno = 0;
	long long x = strtoll(num, &end, 10);
	if (*end || errno || x < min || x > max) {
		dp_buf_msgf(r->err, "\"%s\" is not an integer from %lld to %lld", name,
		            (long long)min, (long long)max);
		r->bad = 1;
		return;
	}
	*out = x;
}

/* An RFC 3339 time member into ms; absent or null leaves -1. */
static void
get_time(struct rd *r, const char *name, int64_t *out)
{
	char *s = NULL;

	*out = -1;
	get_string(r, name, false, &s);
	if (s && dp_time_parse_rfc3339(s, out) < 0) {
		dp_buf_msgf(r->err, "\"%s\" is not an RFC 3339 time", name);
		r->bad = 1;
	}
	free(s);
}

/* One config member: the value may be a string, an integer or a boolean. */
static int
cfg_member(struct rd *r, struct dp_kv **kv, size_t *n, const char *key, size_t klen,
           const char *val, size_t vlen, enum dp_json_type t)
{
	struct dp_buf pair = DP_BUF_INIT;
	int rc = dp_json_unquote(&pair, key, klen);

	if (rc == 0 && (!pair.len || memchr(pair.data, '=', pair.len))) {
		dp_buf_msgf(r->err, "bad config key");
		dp_buf_free(&pair);
		return -1;
	}
	if (rc == 0)
		rc = dp_buf_addch(&pair, '=');
	if (rc == 0 && t == DP_JSON_STRING)
		rc = dp_json_unquote(&pair, val, vlen);
	else if (rc == 0 && (t == DP_JSON_NUMBER || t == DP_JSON_TRUE || t == DP_JSON_FALSE))
		rc = dp_buf_add(&pair, val, vlen);
	else if (rc == 0) {
		dp_buf_msgf(r->err, "config values are strings, numbers or booleans");
		dp_buf_free(&pair);
		return -1;
	}
	if (rc == 0 && memchr(pair.data, '\0', pair.len)) {
		dp_buf_msgf(r->err, "a config holds a NUL character");
		dp_buf_free(&pair);
		return -1;
	}
	if (rc == 0)
		rc = dp_kv_add(kv, n, pair.data);
	dp_buf_free(&pair);
	if (rc < 0) {
		dp_buf_msgf(r->err, "out of memory");
		return -1;
	}
	return 0;
}

static void
get_config(struct rd *r, struct dp_kv **kv, size_t *n)
{
	enum dp_json_type t;
	size_t len, pos = 0, klen, vlen;
	const char *v = member(r, "config", &t, &len), *key, *val;

	if (r->bad || !v)
		return;
	if (t != DP_JSON_OBJECT) {
		dp_buf_msgf(r->err, "\"config\" is not an object");
		r->bad = 1;
		return;
	}
	while ((t = dp_json_next_member(v, len, &pos, &key, &klen, &val, &vlen)) !=
	       DP_JSON_INVALID)
		if (cfg_member(r, kv, n, key, klen, val, vlen, t) < 0) {
			r->bad = 1;
			return;
		}
}

static int
start(struct rd *r, const char *json, size_t n, struct dp_buf *err)
{
	const char *why;
	size_t off;

	r->json = json;
	r->n = n;
	r->err = err;
	r->bad = 0;
	dp_buf_reset(&r->tmp);
	enum dp_json_type t = dp_json_check(json, n, &why, &off);
	if (t == DP_JSON_INVALID) {
		dp_buf_msgf(err, "not JSON: %s at byte %zu", why, off + 1);
		return -1;
	}
	if (t != DP_JSON_OBJECT) {
		dp_buf_msgf(err, "not a JSON object");
		return -1;
	}
	return 0;
}

static int
finish(struct rd *r)
{
	dp_buf_free(&r->tmp);
	return r->bad ? -1 : 0;
}

int
dp_dyn_spec_parse(const char *json, size_t n, struct dp_dyn_spec *s, struct dp_buf *err)
{
	struct rd r = { 0 };
	char *state = NULL;
	int64_t parts = -1;

	memset(s, 0, sizeof(*s));
	s->partitions = -1;
	s->created_at = s->updated_at = s->delete_at = -1;
	if (start(&r, json, n, err) < 0)
		return -1;
	get_string(&r, "topic", true, &s->topic);
	get_string(&r, "state", true, &state);
	get_string(&r, "filter", false, &s->filter);
	get_string(&r, "source", false, &s->source);
	get_int(&r, "partitions", 1, INT32_MAX, &parts);
	get_config(&r, &s->config, &s->nconfig);
	get_string(&r, "request_id", false, &s->request_id);
	get_string(&r, "requested_by", false, &s->requested_by);
	get_time(&r, "created_at", &s->created_at);
	get_time(&r, "updated_at", &s->updated_at);
	get_string(&r, "reason", false, &s->reason);
	char *why = NULL;
	get_string(&r, "rejected_for", false, &why);
	for (size_t i = 1; why && i < sizeof(reject_names) / sizeof(reject_names[0]); i++)
		if (!strcmp(why, reject_names[i]))
			s->rejected_for = (enum dp_dyn_reject)i;
	/* A reason this reader does not know is still a rejection. */
	if (why && !s->rejected_for)
		s->rejected_for = DP_DYN_OTHER;
	free(why);
	get_time(&r, "delete_at", &s->delete_at);
	s->partitions = (int32_t)parts;
	if (!r.bad && state) {
		if (!strcmp(state, "active"))
			s->state = DP_DYN_ACTIVE;
		else if (!strcmp(state, "rejected"))
			s->state = DP_DYN_REJECTED;
		else if (!strcmp(state, "retired"))
			s->state = DP_DYN_RETIRED;
		else {
			dp_buf_msgf(err, "unknown \"state\" '%s'", state);
			r.bad = 1;
		}
	}
	if (!r.bad && s->state == DP_DYN_ACTIVE && (!s->source || !s->filter)) {
		dp_buf_msgf(err, "an active spec needs \"source\" and \"filter\"");
		r.bad = 1;
	}
	free(state);
	return finish(&r);
}

/* The members each action of a request has (NULL-terminated). */
static const char *const request_common[] = {
	"action", "request_id", "topic", "requested_by", "requested_at", NULL,
};
static const char *const request_create[] = {
	"source", "filter", "partitions", "config", NULL,
};
static const char *const request_retire[] = {
	"delete_after_ms", NULL,
};

static bool
listed(const char *const *names, const char *name, size_t len)
{
	for (; *names; names++)
		if (strlen(*names) == len && memcmp(*names, name, len) == 0)
			return true;
	return false;
}

/* The first member that action (0: none known) does not have. */
static void
unknown_members(struct rd *r, enum dp_dyn_action action)
{
	const char *key, *val;
	size_t pos = 0, klen, vlen;

	while (!r->bad && dp_json_next_member(r->json, r->n, &pos, &key, &klen, &val, &vlen) !=
	       DP_JSON_INVALID) {
		dp_buf_reset(&r->tmp);
		if (dp_json_unquote(&r->tmp, key, klen) < 0 || dp_buf_addstr(&r->tmp, "") < 0) {
			dp_buf_msgf(r->err, "out of memory");
			r->bad = 1;
			return;
		}
		const char *k = r->tmp.data;
		size_t kn = r->tmp.len;
		if (listed(request_common, k, kn) ||
		    (action == DP_DYN_CREATE && listed(request_create, k, kn)) ||
		    (action == DP_DYN_RETIRE && listed(request_retire, k, kn)))
			continue;
		/* The name as JSON text: it may hold anything. */
		if (action == DP_DYN_CREATE && listed(request_retire, k, kn))
			dp_buf_msgf(r->err, "field %.*s is for retire, not create", (int)klen, key);
		else if (action == DP_DYN_RETIRE && listed(request_create, k, kn))
			dp_buf_msgf(r->err, "field %.*s is for create, not retire", (int)klen, key);
		else
			dp_buf_msgf(r->err, "unknown field %.*s", (int)klen, key);
		r->bad = 1;
	}
}

int
dp_dyn_request_parse(const char *json, size_t n, struct dp_dyn_request *q, struct dp_buf *err)
{
	struct rd r = { 0 };
	char *action = NULL;
	int64_t parts = -1, after = 0;
	size_t mark = err->len;

	memset(q, 0, sizeof(*q));
	q->partitions = -1;
	q->requested_at = -1;
	if (start(&r, json, n, err) < 0)
		return -1;
	/* Who asked, and about what, first: with these a refusal can be answered. */
	get_string(&r, "request_id", true, &q->request_id);
	get_string(&r, "topic", true, &q->topic);
	if (!r.bad && !*q->request_id) {
		dp_buf_msgf(err, "\"request_id\" is empty");
		r.bad = 1;
	}
	if (r.bad) {
		free(q->request_id);
		free(q->topic);
		q->request_id = q->topic = NULL;
		return finish(&r);
	}
	get_string(&r, "action", true, &action);
	if (!r.bad && !strcmp(action, "create")) {
		q->action = DP_DYN_CREATE;
	} else if (!r.bad && !strcmp(action, "retire")) {
		q->action = DP_DYN_RETIRE;
	} else if (!r.bad) {
		dp_buf_msgf(err, "unknown \"action\" '%s' (expected create or retire)", action);
		r.bad = 1;
	}
	unknown_members(&r, q->action);
	get_string(&r, "requested_by", false, &q->requested_by);
	get_time(&r, "requested_at", &q->requested_at);
	if (q->action == DP_DYN_CREATE) {
		get_string(&r, "source", true, &q->source);
		get_string(&r, "filter", true, &q->filter);
		get_int(&r, "partitions", 1, INT32_MAX, &parts);
		get_config(&r, &q->config, &q->nconfig);
	} else if (q->action == DP_DYN_RETIRE) {
		get_int(&r, "delete_after_ms", 0, INT64_MAX / 2, &after);
	}
	q->partitions = (int32_t)parts;
	q->delete_after_ms = after;
	free(action);
	if (r.bad && !(q->invalid = strdup(dp_buf_str(err) + (err->lost ? 0 : mark)))) {
		/* Without the reason it cannot be answered either. */
		free(q->request_id);
		q->request_id = NULL;
	}
	return finish(&r);
}

int
dp_dyn_decision_parse(const char *json, size_t n, struct dp_dyn_decision *d,
                      struct dp_buf *err)
{
	struct rd r = { 0 };
	char *action = NULL, *outcome = NULL;

	memset(d, 0, sizeof(*d));
	d->request_offset = d->decided_at = -1;
	if (start(&r, json, n, err) < 0)
		return -1;
	get_string(&r, "request_id", true, &d->request_id);
	get_string(&r, "action", false, &action);
	get_string(&r, "topic", false, &d->topic);
	get_string(&r, "outcome", true, &outcome);
	get_string(&r, "reason", false, &d->reason);
	get_int(&r, "request_offset", -1, INT64_MAX, &d->request_offset);
	get_time(&r, "decided_at", &d->decided_at);
	if (action && !strcmp(action, "create"))
		d->action = DP_DYN_CREATE;
	else if (action && !strcmp(action, "retire"))
		d->action = DP_DYN_RETIRE;
	for (size_t i = 1; outcome && i < sizeof(outcome_names) / sizeof(outcome_names[0]); i++)
		if (!strcmp(outcome, outcome_names[i]))
			d->outcome = (enum dp_dyn_outcome)i;
	if (!r.bad && !d->outcome) {
		dp_buf_msgf(err, "unknown \"outcome\" '%s'", outcome);
		r.bad = 1;
	}
	free(action);
	free(outcome);
	return finish(&r);
}

void
dp_dyn_spec_clear(struct dp_dyn_spec *s)
{
	if (!s)
		return;
	free(s->topic);
	free(s->filter);
	free(s->source);
	dp_kv_free(s->config, s->nconfig);
	free(s->request_id);
	free(s->requested_by);
	free(s->reason);
	memset(s, 0, sizeof(*s));
}

void
dp_dyn_request_clear(struct dp_dyn_request *r)
{
	if (!r)
		return;
	free(r->request_id);
	free(r->topic);
	free(r->source);
	free(r->filter);
	dp_kv_free(r->config, r->nconfig);
	free(r->requested_by);
	free(r->invalid);
	memset(r, 0, sizeof(*r));
}

void
dp_dyn_decision_clear(struct dp_dyn_decision *d)
{
	if (!d)
		return;
	free(d->request_id);
	free(d->topic);
	free(d->reason);
	memset(d, 0, sizeof(*d));
}

/* ---- writing ------------------------------------------------------------ */

static void
time_member(struct dp_jw *w, const char *key, int64_t ms)
{
	char t[DP_TIME_BUFSZ];

	if (ms < 0)
		dp_jw_knull(w, key);
	else
		dp_jw_kstr(w, key, dp_time_format(ms, t));
}

static void
config_member(struct dp_jw *w, const struct dp_kv *kv, size_t n)
{
	dp_jw_key(w, "config");
	dp_jw_obj(w);
	for (size_t i = 0; i < n; i++)
		dp_jw_kstr(w, kv[i].key, kv[i].value);
	dp_jw_end(w);
}

int
dp_dyn_spec_json(struct dp_buf *out, const struct dp_dyn_spec *s)
{
	struct dp_jw w;

	dp_jw_init(&w, out);
	dp_jw_obj(&w);
	dp_jw_kstr(&w, "topic", s->topic);
	dp_jw_kstr(&w, "state", dp_dyn_state_name(s->state));
	dp_jw_kstr(&w, "filter", s->filter);
	dp_jw_kstr(&w, "source", s->source);
	if (s->partitions > 0)
		dp_jw_kint(&w, "partitions", s->partitions);
	else
		dp_jw_knull(&w, "partitions");
	config_member(&w, s->config, s->nconfig);
	dp_jw_kstr(&w, "request_id", s->request_id);
	dp_jw_kstr(&w, "requested_by", s->requested_by);
	time_member(&w, "created_at", s->created_at);
	time_member(&w, "updated_at", s->updated_at);
	dp_jw_kstr(&w, "reason", s->reason);
	dp_jw_kstr(&w, "rejected_for", dp_dyn_reject_name(s->rejected_for));

	time_member(&w, "delete_at", s->delete_at);
	dp_jw_end(&w);
	return dp_jw_finish(&w);
}

int
dp_dyn_request_json(struct dp_buf *out, const struct dp_dyn_request *r)
{
	struct dp_jw w;

	dp_jw_init(&w, out);
	dp_jw_obj(&w);
	dp_jw_kstr(&w, "action", r->action == DP_DYN_RETIRE ? "retire" : "create");
	dp_jw_kstr(&w, "request_id", r->request_id);
	dp_jw_kstr(&w, "topic", r->topic);
	if (r->action == DP_DYN_CREATE) {
		dp_jw_kstr(&w, "source", r->source);
		dp_jw_kstr(&w, "filter", r->filter);
		if (r->partitions > 0)
			dp_jw_kint(&w, "partitions", r->partitions);
		config_member(&w, r->config, r->nconfig);
	} else {
		dp_jw_kint(&w, "delete_after_ms", r->delete_after_ms);
	}
	dp_jw_kstr(&w, "requested_by", r->requested_by);
	time_member(&w, "requested_at", r->requested_at);
	dp_jw_end(&w);
	return dp_jw_finish(&w);
}

int
dp_dyn_decision_json(struct dp_buf *out, const struct dp_dyn_decision *d)
{
	struct dp_jw w;

	dp_jw_init(&w, out);
	dp_jw_obj(&w);
	dp_jw_kstr(&w, "request_id", d->request_id);
	dp_jw_kstr(&w, "action", d->action == DP_DYN_CREATE ? "create" :
	                         d->action == DP_DYN_RETIRE ? "retire" : NULL);
	dp_jw_kstr(&w, "topic", d->topic);
	dp_jw_kstr(&w, "outcome", dp_dyn_outcome_name(d->outcome));
	dp_jw_kstr(&w, "reason", d->reason);
	dp_jw_kint(&w, "request_offset", d->request_offset);
	time_member(&w, "decided_at", d->decided_at);
	dp_jw_end(&w);
	return dp_jw_finish(&w);
}

static int
dup_str(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src && !*dst ? -1 : 0;
}

int
dp_dyn_spec_copy(struct dp_dyn_spec *d, const struct dp_dyn_spec *s)
{
	*d = *s;
	d->topic = d->filter = d->source = d->request_id = d->requested_by = d->reason = NULL;
	d->config = NULL;
	d->nconfig = 0;
	int rc = dup_str(&d->topic, s->topic) | dup_str(&d->filter, s->filter) |
	         dup_str(&d->source, s->source) | dup_str(&d->request_id, s->request_id) |
	         dup_str(&d->requested_by, s->requested_by) | dup_str(&d->reason, s->reason);
	for (size_t i = 0; rc == 0 && i < s->nconfig; i++) {
		struct dp_buf pair = DP_BUF_INIT;
		rc = dp_buf_addf(&pair, "%s=%s", s->config[i].key, s->config[i].value);
		if (rc == 0)
			rc = dp_kv_add(&d->config, &d->nconfig, pair.data);
		dp_buf_free(&pair);
	}
	if (rc) {
		dp_dyn_spec_clear(d);
		return -1;
	}
	return 0;
}

int
dp_dyn_request_id(char buf[33])
{
	unsigned char raw[16];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

void
dp_dyn_requester(char *buf, size_t size)
{
	char host[256] = "?";
	const char *user = getenv("USER");
	struct passwd *pw;

	if (!user || !*user)
		user = (pw = getpwuid(geteuid())) ? pw->pw_name : NULL;
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, size, "%s@%s:%ld", user && *user ? user : "?", host, (long)getpid());
}

bool
dp_dyn_spec_matches(const struct dp_dyn_spec *s, struct dp_expr *e, const char *what)
{
	struct dp_buf line = DP_BUF_INIT, out = DP_BUF_INIT, err = DP_BUF_INIT;
	enum dp_json_type t = DP_JSON_INVALID;

	if (dp_dyn_spec_json(&line, s) == 0) {
		struct dp_expr_rec rec = DP_EXPR_REC(line.data, line.len);
		if (dp_expr_first(e, &rec, &t, &out, &err) < 0) {
			dp_warn("%s on '%s': %s", what, s->topic, dp_buf_str(&err));
			t = DP_JSON_INVALID;
		}
		dp_expr_rec_clear(&rec);
	} else {
		dp_warn("%s on '%s': out of memory", what, s->topic);
	}
	dp_buf_free(&line);
	dp_buf_free(&out);
	dp_buf_free(&err);
	return t != DP_JSON_FALSE && t != DP_JSON_NULL && t != DP_JSON_INVALID;
}
