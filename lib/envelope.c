#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jv.h>

#include "base64.h"
#include "envelope.h"
#include "expr.h"
#include "json.h"
#include "lines.h"

/* 1 when p is UTF-8 text that can go into a JSON string unchanged. */
static int
is_text(const void *p, size_t n)
{
	const char *why;
	size_t off;

	return dp_utf8_check(p, n, &why, &off) == 0;
}

/* 1 when p is JSON that dp-tail may print as a value, byte for byte. */
static int
is_compact_json(const char *p, size_t n)
{
	const char *why;
	size_t off;
	int compact;

	if (n == 0 || (n == 4 && memcmp(p, "null", 4) == 0))
		return 0;
	return dp_json_check_compact(p, n, &why, &off, &compact) != DP_JSON_INVALID &&
	       compact;
}

static int
put_bytes(struct dp_buf *out, const char *name, const char *encname,
          const void *p, size_t n)
{
	int rc = dp_buf_addf(out, "\"%s\":", name);

	if (is_text(p, n))
		return rc | dp_json_quote(out, p, n);
	rc |= dp_buf_addch(out, '"');
	rc |= dp_base64_encode(out, p, n);
	rc |= dp_buf_addf(out, "\",\"%s\":\"base64\"", encname);
	return rc;
}

int
dp_envelope_write(struct dp_buf *out, const rd_kafka_message_t *m)
{
	rd_kafka_timestamp_type_t tstype;
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	rd_kafka_headers_t *hdrs = NULL;
	int rc = 0;

	rc |= dp_buf_addstr(out, "{\"topic\":");
	const char *topic = rd_kafka_topic_name(m->rkt);
	rc |= dp_json_quote(out, topic, strlen(topic));
	rc |= dp_buf_addf(out, ",\"partition\":%d,\"offset\":%lld,\"timestamp\":",
	                  (int)m->partition, (long long)m->offset);
	if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
		rc |= dp_buf_addstr(out, "null,");
	else
		rc |= dp_buf_addf(out, "%lld,", (long long)ts);
	if (m->key)
		rc |= put_bytes(out, "key", "key_encoding", m->key, m->key_len);
	else
		rc |= dp_buf_addstr(out, "\"key\":null");
	rc |= dp_buf_addstr(out, ",\"headers\":[");
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		const char *name;
		const void *val;
		size_t sz;
		for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &sz) ==
		                   RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
			rc |= dp_buf_addstr(out, i ? ",{\"key\":" : "{\"key\":");
			rc |= dp_json_quote(out, name, strlen(name));
			rc |= dp_buf_addch(out, ',');
			if (val)
				rc |= put_bytes(out, "value", "encoding", val, sz);
			else
				rc |= dp_buf_addstr(out, "\"value\":null");
			rc |= dp_buf_addch(out, '}');
		}
	}
	rc |= dp_buf_addstr(out, "],");
	if (!m->payload)
		rc |= dp_buf_addstr(out, "\"value\":null");
	else if (is_compact_json(m->payload, m->len))
		rc |= dp_buf_addstr(out, "\"value\":") |
		      dp_buf_add(out, m->payload, m->len);
	else if (is_text(m->payload, m->len))
		rc |= dp_buf_addstr(out, "\"value\":") |
		      dp_json_quote(out, m->payload, m->len) |
		      dp_buf_addstr(out, ",\"value_encoding\":\"string\"");
	else
		rc |= put_bytes(out, "value", "value_encoding", m->payload, m->len);
	rc |= dp_buf_addch(out, '}');
	return rc ? -1 : 0;
}

void
dp_envelope_clear(struct dp_envelope *env)
{
	if (!env)
		return;
	free(env->topic);
	free(env->key);
	free(env->value);
	for (size_t i = 0; i < env->nhdrs; i++) {
		free(env->hdrs[i].name);
		free(env->hdrs[i].value);
	}
	free(env->hdrs);
	memset(env, 0, sizeof(*env));
	env->partition = RD_KAFKA_PARTITION_UA;
}

/* Decode a string member per its encoding into *p (malloc'd). */
static int
take_bytes(jv str, const char *encoding, char **p, size_t *n, const char *what,
           struct dp_buf *err)
{
	struct dp_buf b = DP_BUF_INIT;
	const char *s = jv_string_value(str);
	size_t len = (size_t)jv_string_length_bytes(jv_copy(str));

	if (encoding && strcmp(encoding, "base64") == 0) {
		if (dp_base64_decode(&b, s, len) < 0) {
			dp_buf_msgf(err, "envelope %s is not valid base64", what);
			dp_buf_free(&b);
			return -1;
		}
	} else if (!encoding || strcmp(encoding, "string") == 0) {
		if (dp_buf_add(&b, s, len) < 0) {
			dp_buf_msgf(err, "out of memory");
			dp_buf_free(&b);
			return -1;
		}
	} else {
		dp_buf_msgf(err, "envelope %s has unknown encoding '%s'", what, encoding);
		return -1;
	}
	*p = dp_buf_detach(&b, n);
	return *p ? 0 : -1;
}

static const char *
opt_string(jv obj, const char *key, jv *hold)
{
	*hold = jv_object_get(jv_copy(obj), jv_string(key));
	return jv_get_kind(*hold) == JV_KIND_STRING ? jv_string_value(*hold) : NULL;
}

static int
parse_headers(jv arr, struct dp_envelope *env, struct dp_buf *err)
{
	int n = jv_array_length(jv_copy(arr));

	env->hdrs = calloc((size_t)(n ? n : 1), sizeof(*env->hdrs));
	if (!env->hdrs)
		return -1;
	for (int i = 0; i < n; i++) {
		jv h = jv_array_get(jv_copy(arr), i);
		jv k = jv_object_get(jv_copy(h), jv_string("key"));
		jv v = jv_object_get(jv_copy(h), jv_string("value"));
		jv e;
		const char *enc = opt_string(h, "encoding", &e);
		int rc = 0;
		struct dp_envelope_hdr *d = &env->hdrs[env->nhdrs];
		if (jv_get_kind(h) != JV_KIND_OBJECT || jv_get_kind(k) != JV_KIND_STRING) {
			dp_buf_msgf(err, "envelope header %d needs a string \"key\"", i);
			rc = -1;
		} else if (jv_get_kind(v) != JV_KIND_STRING && jv_get_kind(v) != JV_KIND_NULL) {
			dp_buf_msgf(err, "envelope header %d: \"value\" must be a string or null", i);
			rc = -1;
		} else {
			d->name = strdup(jv_string_value(k));
			if (!d->name) {
				dp_buf_msgf(err, "out of memory");
				rc = -1;
			} else if (jv_get_kind(v) == JV_KIND_STRING)
				rc = take_bytes(v, enc, &d->value, &d->len, "header value", err);
			env->nhdrs++;
		}
		jv_free(h);
		jv_free(k);
		jv_free(v);
		jv_free(e);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/*
 * The "timestamp" member, from its own text: a double would lose digits
 * past 2^53 and turn 1e300 into undefined behaviour.  0, or -1 with a
 * message.
 */
static int
take_timestamp(const char *line, size_t len, struct dp_envelope *env, struct dp_buf *err)
{
	static const char *const path[] = { "timestamp" };
	const char *v;
	size_t n;
	enum dp_json_type t = dp_json_get(line, len, path, 1, &v, &n);
	char num[32], *end;

	if (n == 0 || t == DP_JSON_NULL)
		return 0;               /* absent or null: the producer's clock */
	if (t == DP_JSON_NUMBER && n < sizeof(num)) {
		memcpy(num, v, n);
		num[n] = '\0';
		errno = 0;
		long long ms = strtoll(num, &end, 10);
		if (!*end && !errno && ms >= 0) {
			env->has_timestamp = true;
			env->timestamp = ms;
			return 0;
		}
	}
	dp_buf_msgf(err, "envelope timestamp %.*s is not a whole number of milliseconds "
	            "from 0 to %lld", n > 40 ? 40 : (int)n, v, (long long)INT64_MAX);
	return -1;
}

int
dp_envelope_parse(const char *line, size_t len, struct dp_envelope *env,
                  struct dp_buf *err)
{
	jv doc;
	jv t, p, k, ke, v, ve, h;
	int rc = -1;

	memset(env, 0, sizeof(*env));
	env->partition = RD_KAFKA_PARTITION_UA;
	if (len > DP_EXPR_MAX_BYTES) {
		dp_buf_msgf(err, "envelope of %zu bytes is too large to parse (at most %zu)", len,
		            DP_EXPR_MAX_BYTES);
		return -1;
	}
	if (take_timestamp(line, len, env, err) < 0)
		return -1;
	doc = jv_parse_sized(line, (int)len);
	if (jv_get_kind(doc) != JV_KIND_OBJECT) {
		dp_buf_msgf(err, "envelope is not a JSON object");
		jv_free(doc);
		return -1;
	}
	t = jv_object_get(jv_copy(doc), jv_string("topic"));
	p = jv_object_get(jv_copy(doc), jv_string("partition"));
	k = jv_object_get(jv_copy(doc), jv_string("key"));
	v = jv_object_get(jv_copy(doc), jv_string("value"));
	h = jv_object_get(jv_copy(doc), jv_string("headers"));
	const char *kenc = opt_string(doc, "key_encoding", &ke);
	const char *venc = opt_string(doc, "value_encoding", &ve);

	if (jv_get_kind(t) == JV_KIND_STRING && !(env->topic = strdup(jv_string_value(t)))) {
		dp_buf_msgf(err, "out of memory");
		goto out;
	}
	if (jv_get_kind(p) == JV_KIND_NUMBER) {
		double d = jv_number_value(p);
		if (d < 0 || d > INT32_MAX || d != floor(d)) {
			dp_buf_msgf(err, "envelope partition is not a valid partition number");
			goto out;
		}
		env->partition = (int32_t)d;
	}
	if (jv_get_kind(k) == JV_KIND_STRING) {
		if (take_bytes(k, kenc, &env->key, &env->key_len, "key", err) < 0)
			goto out;
	} else if (jv_get_kind(k) != JV_KIND_NULL && jv_get_kind(k) != JV_KIND_INVALID) {
		dp_buf_msgf(err, "envelope key must be a string or null");
		goto out;
	}
	if (jv_get_kind(h) == JV_KIND_ARRAY) {
		if (parse_headers(h, env, err) < 0)
			goto out;
	} else if (jv_get_kind(h) != JV_KIND_NULL && jv_get_kind(h) != JV_KIND_INVALID) {
		dp_buf_msgf(err, "envelope headers must be an array");
		goto out;
	}
	if (jv_get_kind(v) == JV_KIND_INVALID) {
		dp_buf_msgf(err, "envelope has no \"value\"");
		goto out;
	}
	if (venc) {
		if (jv_get_kind(v) != JV_KIND_STRING) {
			dp_buf_msgf(err, "envelope value with an encoding must be a string");
			goto out;
		}
		if (take_bytes(v, venc, &env->value, &env->value_len, "value", err) < 0)
			goto out;
	} else if (jv_get_kind(v) != JV_KIND_NULL) {
		/* The payload is the value's own text, byte for byte. */
		const char *path[] = { "value" };
		const char *raw;
		size_t rawlen;
		dp_json_get(line, len, path, 1, &raw, &rawlen);
		env->value = malloc(rawlen + 1);
		if (!env->value)
			goto out;
		memcpy(env->value, raw, rawlen);
		env->value[rawlen] = '\0';
		env->value_len = rawlen;
	}
	rc = 0;
out:
	jv_free(t);
	jv_free(p);
	jv_free(k);
	jv_free(ke);
	jv_free(v);
	jv_free(ve);
	jv_free(h);
	jv_free(doc);
	return rc;
}
