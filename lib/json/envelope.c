/*
 * json/envelope.c -- the lossless NDJSON form of a Kafka record, written from a
 * message (dp-tail) or from a parsed envelope, and read back (dp-publish).
 *
 * Reading uses json/scan.h's scanner and decoder, the same definition of JSON
 * as every other path: whatever dp-tail --envelope prints is read back to
 * the same bytes, and what is refused is refused with the reason and the
 * byte where it is.  No JSON tree is built: the members are picked out of
 * the text, and the value is carried as the text it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lines.h"
#include "json/base64.h"
#include "json/envelope.h"
#include "json/scan.h"

/* ---- writing -------------------------------------------------------- */

/* 1 when p is UTF-8 text without NUL that can go into a JSON string as it is. */
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

/* "name":"text" or "name":"base64","encname":"base64". */
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

static int
put_head(struct dp_buf *out, const char *topic, int32_t partition, int64_t offset,
         bool has_ts, int64_t ts)
{
	int rc = dp_buf_addstr(out, "{\"topic\":");

	if (topic)
		rc |= dp_json_quote(out, topic, strlen(topic));
	else
		rc |= dp_buf_addstr(out, "null");
	if (partition >= 0)
		rc |= dp_buf_addf(out, ",\"partition\":%d", (int)partition);
	else
		rc |= dp_buf_addstr(out, ",\"partition\":null");
	if (offset >= 0)
		rc |= dp_buf_addf(out, ",\"offset\":%lld", (long long)offset);
	else
		rc |= dp_buf_addstr(out, ",\"offset\":null");
	if (has_ts)
		rc |= dp_buf_addf(out, ",\"timestamp\":%lld,", (long long)ts);
	else
		rc |= dp_buf_addstr(out, ",\"timestamp\":null,");
	return rc;
}

static int
put_key(struct dp_buf *out, const void *key, size_t len)
{
	if (!key)
		return dp_buf_addstr(out, "\"key\":null");
	return put_bytes(out, "key", "key_encoding", key, len);
}

/* One header object; names that are not text go as base64 too. */
static int
put_header(struct dp_buf *out, size_t i, const char *name, size_t namelen, const void *val,
           size_t len)
{
	int rc = dp_buf_addstr(out, i ? ",{" : "{");

	rc |= put_bytes(out, "key", "key_encoding", name, namelen);
	rc |= dp_buf_addch(out, ',');
	if (val)
		rc |= put_bytes(out, "value", "encoding", val, len);
	else
		rc |= dp_buf_addstr(out, "\"value\":null");
	rc |= dp_buf_addch(out, '}');
	return rc;
}

/* The value and the closing brace (each append in turn: '|' has no order). */
static int
put_value(struct dp_buf *out, const void *payload, size_t len)
{
	int rc;

	if (!payload)
		return dp_buf_addstr(out, "\"value\":null}");
	if (is_compact_json(payload, len)) {
		rc = dp_buf_addstr(out, "\"value\":");
		rc |= dp_buf_add(out, payload, len);
	} else if (is_text(payload, len)) {
		rc = dp_buf_addstr(out, "\"value\":");
		rc |= dp_json_quote(out, payload, len);
		rc |= dp_buf_addstr(out, ",\"value_encoding\":\"string\"");
	} else {
		rc = put_bytes(out, "value", "value_encoding", payload, len);
	}
	rc |= dp_buf_addch(out, '}');
	return rc;
}

int
dp_envelope_write(struct dp_buf *out, const rd_kafka_message_t *m)
{
	rd_kafka_timestamp_type_t tstype;
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	rd_kafka_headers_t *hdrs = NULL;
	int rc;

	rc = put_head(out, rd_kafka_topic_name(m->rkt), m->partition, m->offset,
	              tstype != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE, ts);
	rc |= put_key(out, m->key, m->key_len);
	rc |= dp_buf_addstr(out, ",\"headers\":[");
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		const char *name;
		const void *val;
		size_t sz;
		for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &sz) ==
		                   RD_KAFKA_RESP_ERR_NO_ERROR; i++)
			rc |= put_header(out, i, name, strlen(name), val, sz);
	}
	rc |= dp_buf_addstr(out, "],");
	rc |= put_value(out, m->payload, m->len);
	return rc ? -1 : 0;
}

int
dp_envelope_print(struct dp_buf *out, const struct dp_envelope *env)
{
	int rc;

	rc = put_head(out, env->topic, env->partition, env->offset, env->has_timestamp,
	              env->timestamp);
	rc |= put_key(out, env->key, env->key_len);
	rc |= dp_buf_addstr(out, ",\"headers\":[");
	for (size_t i = 0; i < env->nhdrs; i++)
		rc |= put_header(out, i, env->hdrs[i].name, strlen(env->hdrs[i].name),
		                 env->hdrs[i].value, env->hdrs[i].len);
	rc |= dp_buf_addstr(out, "],");
	rc |= put_value(out, env->value, env->value_len);
	return rc ? -1 : 0;
}

/* ---- reading -------------------------------------------------------- */

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
	env->offset = -1;
}

/* A member's value as found in the line: its text and type, or absent (v NULL). */
struct slot {
	const char *v;
	size_t n;
	enum dp_json_type t;
};

struct reader {
	const char *line;
	struct dp_buf *err;
};

static size_t
byte_of(const struct reader *r, const char *p)
{
	return (size_t)(p - r->line) + 1;
}

static bool
absent(const struct slot *s)
{
	return !s->v || s->t == DP_JSON_NULL;
}

/* The one-word name of a JSON type, for messages. */
static const char *
type_name(enum dp_json_type t)
{
	switch (t) {
	case DP_JSON_NULL: return "null";
	case DP_JSON_FALSE: case DP_JSON_TRUE: return "a boolean";
	case DP_JSON_NUMBER: return "a number";
	case DP_JSON_STRING: return "a string";
	case DP_JSON_ARRAY: return "an array";
	case DP_JSON_OBJECT: return "an object";
	default: return "invalid";
	}
}

/*
 * The bytes a string literal stands for, into a new buffer *p, *n
 * (malloc'd, NUL-terminated).  A lone surrogate escape has no bytes: it
 * is refused, not replaced.
 */
static int
decode_string(struct reader *r, const struct slot *s, const char *what, char **p, size_t *n)
{
	struct dp_buf b = DP_BUF_INIT;
	size_t bad = 0;
	int rc = dp_json_unquote_exact(&b, s->v, s->n, &bad);

	if (rc == -2) {
		dp_buf_msgf(r->err, "envelope %s holds the lone surrogate escape %.6s at byte "
		            "%zu, which stands for no UTF-8 text", what, s->v + bad,
		            byte_of(r, s->v + bad));
		dp_buf_free(&b);
		return -1;
	}
	if (rc < 0 || !(*p = dp_buf_detach(&b, n))) {
		dp_buf_msgf(r->err, "out of memory");
		dp_buf_free(&b);
		return -1;
	}
	return 0;
}

/* An "encoding" member: NULL when absent or null, else its text (owned). */
static int
take_encoding(struct reader *r, const struct slot *s, const char *what, char **enc)
{
	size_t n;

	*enc = NULL;
	if (absent(s))
		return 0;
	if (s->t != DP_JSON_STRING) {
		dp_buf_msgf(r->err, "envelope %s%s must be a string, not %s (at byte %zu)", what,
		            enc ? " with an encoding" : "", type_name(s->t), byte_of(r, s->v));
		return -1;
	}
	if (decode_string(r, s, what, enc, &n) < 0)
		return -1;
	if (strcmp(*enc, "base64") && strcmp(*enc, "string")) {
		dp_buf_msgf(r->err, "envelope %s \"%.40s\" is unknown (at byte %zu); it is "
		            "\"string\" or \"base64\"", what, *enc, byte_of(r, s->v));
		free(*enc);
		*enc = NULL;
		return -1;
	}
	return 0;
}

/* A string member's bytes per its encoding (NULL: as text) into *p, *n. */
static int
take_bytes(struct reader *r, const struct slot *s, const char *enc, const char *what,
           char **p, size_t *n)
{
	char *text;
	size_t len;

	if (s->t != DP_JSON_STRING) {
		dp_buf_msgf(r->err, "envelope %s%s must be a string, not %s (at byte %zu)", what,
		            enc ? " with an encoding" : "", type_name(s->t), byte_of(r, s->v));
		return -1;
	}
	if (decode_string(r, s, what, &text, &len) < 0)
		return -1;
	if (!enc || strcmp(enc, "string") == 0) {
		*p = text;
		*n = len;
		return 0;
	}
	struct dp_buf b = DP_BUF_INIT;
	int rc = dp_base64_decode(&b, text, len);
	free(text);
	if (rc < 0) {
		dp_buf_msgf(r->err, "envelope %s is not valid base64 (at byte %zu)", what,
		            byte_of(r, s->v));
		dp_buf_free(&b);
		return -1;
	}
	if (!(*p = dp_buf_detach(&b, n))) {
		dp_buf_msgf(r->err, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * A whole number from 0 to max, read from the member's own text: a
 * double would lose digits past 2^53 and turn 1e300 into undefined
 * behaviour.  Digits only, as dp-tail writes them.
 */
static bool
whole(const struct slot *s, int64_t max, int64_t *out)
{
	int64_t v = 0;

	if (s->t != DP_JSON_NUMBER || s->n == 0)
		return false;
	for (size_t i = 0; i < s->n; i++) {
		char c = s->v[i];
		if (c < '0' || c > '9' || v > (max - (c - '0')) / 10)
			return false;
		v = v * 10 + (c - '0');
	}
	*out = v;
	return true;
}

/* The bytes of what r->err calls a member's text: at most 40 of them. */
#define SHOWN(s) ((s)->n > 40 ? 40 : (int)(s)->n), (s)->v

enum { M_TOPIC, M_PARTITION, M_OFFSET, M_TIMESTAMP, M_KEY, M_KEY_ENC, M_HEADERS, M_VALUE,
       M_VALUE_ENC, M_N };
static const char *const top_names[M_N] = { "topic", "partition", "offset", "timestamp", "key",
	"key_encoding", "headers", "value", "value_encoding" };

enum { H_KEY, H_KEY_ENC, H_VALUE, H_VALUE_ENC, H_N };
static const char *const hdr_names[H_N] = { "key", "key_encoding", "value", "encoding" };

/*
 * The members of the object text s[0..n) named in names[] into slots[]
 * (the last of duplicates, as jq keeps); others are ignored.
 */
static int
pick(const char *s, size_t n, const char *const *names, size_t nnames, struct slot *slots,
     struct dp_buf *err)
{
	struct dp_buf name = DP_BUF_INIT;
	size_t pos = 0, klen, vn;
	const char *k, *v;
	enum dp_json_type t;

	while ((t = dp_json_next_member(s, n, &pos, &k, &klen, &v, &vn)) != DP_JSON_INVALID) {
		dp_buf_reset(&name);
		if (dp_json_unquote(&name, k, klen) < 0 || dp_buf_addstr(&name, "") < 0) {
			dp_buf_msgf(err, "out of memory");
			dp_buf_free(&name);
			return -1;
		}
		for (size_t i = 0; i < nnames; i++)
			if (name.len == strlen(names[i]) && memcmp(name.data, names[i], name.len) == 0)
				slots[i] = (struct slot){ v, vn, t };
	}
	dp_buf_free(&name);
	return 0;
}

static int
parse_header(struct reader *r, const char *at, size_t n, size_t i, struct dp_envelope_hdr *d)
{
	struct slot h[H_N] = { { NULL, 0, DP_JSON_INVALID } };
	char what[64], *kenc = NULL, *venc = NULL;
	int rc = -1;

	if (dp_json_type_of(at) != DP_JSON_OBJECT) {
		dp_buf_msgf(r->err, "envelope header %zu must be an object, not %s (at byte %zu)",
		            i, type_name(dp_json_type_of(at)), byte_of(r, at));
		return -1;
	}
	if (pick(at, n, hdr_names, H_N, h, r->err) < 0)
		return -1;
	if (!h[H_KEY].v || h[H_KEY].t != DP_JSON_STRING) {
		dp_buf_msgf(r->err, "envelope header %zu needs a string \"key\" (at byte %zu)", i,
		            byte_of(r, h[H_KEY].v ? h[H_KEY].v : at));
		return -1;
	}
	snprintf(what, sizeof(what), "header %zu key_encoding", i);
	if (take_encoding(r, &h[H_KEY_ENC], what, &kenc) < 0)
		goto out;
	snprintf(what, sizeof(what), "header %zu encoding", i);
	if (take_encoding(r, &h[H_VALUE_ENC], what, &venc) < 0)
		goto out;
	size_t namelen;
	snprintf(what, sizeof(what), "header %zu key", i);
	if (take_bytes(r, &h[H_KEY], kenc, what, &d->name, &namelen) < 0)
		goto out;
	if (memchr(d->name, '\0', namelen)) {
		/* librdkafka keeps header names as C strings: the rest would be lost. */
		dp_buf_msgf(r->err, "envelope header %zu key holds a NUL byte, which Kafka "
		            "header names cannot carry (at byte %zu)", i, byte_of(r, h[H_KEY].v));
		goto out;
	}
	if (!h[H_VALUE].v || (h[H_VALUE].t != DP_JSON_STRING && h[H_VALUE].t != DP_JSON_NULL)) {
		dp_buf_msgf(r->err, "envelope header %zu: \"value\" must be a string or null, "
		            "not %s (at byte %zu)", i,
		            h[H_VALUE].v ? type_name(h[H_VALUE].t) : "absent",
		            byte_of(r, h[H_VALUE].v ? h[H_VALUE].v : at));
		goto out;
	}
	snprintf(what, sizeof(what), "header %zu value", i);
	if (h[H_VALUE].t == DP_JSON_STRING &&
	    take_bytes(r, &h[H_VALUE], venc, what, &d->value, &d->len) < 0)
		goto out;
	rc = 0;
out:
	free(kenc);
	free(venc);
	return rc;
}

static int
parse_headers(struct reader *r, const struct slot *s, struct dp_envelope *env)
{
	size_t pos = 0, n = 0, vn;
	const char *v;

	if (absent(s))
		return 0;
	if (s->t != DP_JSON_ARRAY) {
		dp_buf_msgf(r->err, "envelope headers must be an array, not %s (at byte %zu)",
		            type_name(s->t), byte_of(r, s->v));
		return -1;
	}
	while (dp_json_next_element(s->v, s->n, &pos, &v, &vn) != DP_JSON_INVALID)
		n++;
	env->hdrs = calloc(n ? n : 1, sizeof(*env->hdrs));
	if (!env->hdrs) {
		dp_buf_msgf(r->err, "out of memory");
		return -1;
	}
	pos = 0;
	while (dp_json_next_element(s->v, s->n, &pos, &v, &vn) != DP_JSON_INVALID) {
		/* Counted before it is filled: a half-made header is freed too. */
		struct dp_envelope_hdr *d = &env->hdrs[env->nhdrs++];
		if (parse_header(r, v, vn, env->nhdrs - 1, d) < 0)
			return -1;
	}
	return 0;
}

int
dp_envelope_parse(const char *line, size_t len, struct dp_envelope *env,
                  struct dp_buf *err)
{
	struct slot m[M_N] = { { NULL, 0, DP_JSON_INVALID } };
	struct reader r = { line, err };
	char *kenc = NULL, *venc = NULL;
	const char *why;
	size_t off, n;
	int64_t v;
	int rc = -1;
	enum dp_json_type t;

	memset(env, 0, sizeof(*env));
	env->partition = RD_KAFKA_PARTITION_UA;
	env->offset = -1;
	t = dp_json_check(line, len, &why, &off);
	if (t == DP_JSON_INVALID) {
		dp_buf_msgf(err, "envelope is not valid JSON: %s at byte %zu", why, off + 1);
		return -1;
	}
	if (t != DP_JSON_OBJECT) {
		dp_buf_msgf(err, "envelope is %s, not a JSON object", type_name(t));
		return -1;
	}
	if (pick(line, len, top_names, M_N, m, err) < 0)
		return -1;

	if (!absent(&m[M_TOPIC])) {
		if (m[M_TOPIC].t != DP_JSON_STRING) {
			dp_buf_msgf(err, "envelope topic must be a string or null, not %s (at byte "
			            "%zu)", type_name(m[M_TOPIC].t), byte_of(&r, m[M_TOPIC].v));
			goto out;
		}
		if (decode_string(&r, &m[M_TOPIC], "topic", &env->topic, &n) < 0)
			goto out;
		if (strlen(env->topic) != n) {
			dp_buf_msgf(err, "envelope topic holds a NUL byte (at byte %zu)",
			            byte_of(&r, m[M_TOPIC].v));
			goto out;
		}
	}
	if (!absent(&m[M_PARTITION])) {
		if (!whole(&m[M_PARTITION], INT32_MAX, &v)) {
			dp_buf_msgf(err, "envelope partition %.*s is not a partition number from 0 "
			            "to %d (at byte %zu)", SHOWN(&m[M_PARTITION]), INT32_MAX,
			            byte_of(&r, m[M_PARTITION].v));
			goto out;
		}
		env->partition = (int32_t)v;
	}
	if (!absent(&m[M_OFFSET])) {
		if (!whole(&m[M_OFFSET], INT64_MAX, &env->offset)) {
			dp_buf_msgf(err, "envelope offset %.*s is not an offset from 0 to %lld (at "
			            "byte %zu)", SHOWN(&m[M_OFFSET]), (long long)INT64_MAX,
			            byte_of(&r, m[M_OFFSET].v));
			goto out;
		}
	}
	if (!absent(&m[M_TIMESTAMP])) {
		if (!whole(&m[M_TIMESTAMP], INT64_MAX, &env->timestamp)) {
			dp_buf_msgf(err, "envelope timestamp %.*s is not a whole number of "
			            "milliseconds from 0 to %lld (at byte %zu)",
			            SHOWN(&m[M_TIMESTAMP]), (long long)INT64_MAX,
			            byte_of(&r, m[M_TIMESTAMP].v));
			goto out;
		}
		env->has_timestamp = true;
	}
	if (take_encoding(&r, &m[M_KEY_ENC], "key_encoding", &kenc) < 0 ||
	    take_encoding(&r, &m[M_VALUE_ENC], "value_encoding", &venc) < 0)
		goto out;
	if (!absent(&m[M_KEY]) &&
	    take_bytes(&r, &m[M_KEY], kenc, "key", &env->key, &env->key_len) < 0)
		goto out;
	if (parse_headers(&r, &m[M_HEADERS], env) < 0)
		goto out;
	if (!m[M_VALUE].v) {
		dp_buf_msgf(err, "envelope has no \"value\"");
		goto out;
	}
	if (venc) {
		if (take_bytes(&r, &m[M_VALUE], venc, "value", &env->value, &env->value_len) < 0)
			goto out;
	} else if (m[M_VALUE].t != DP_JSON_NULL) {
		/* The payload is the value's own text, byte for byte. */
		env->value = malloc(m[M_VALUE].n + 1);
		if (!env->value) {
			dp_buf_msgf(err, "out of memory");
			goto out;
		}
		memcpy(env->value, m[M_VALUE].v, m[M_VALUE].n);
		env->value[m[M_VALUE].n] = '\0';
		env->value_len = m[M_VALUE].n;
	}
	rc = 0;
out:
	free(kenc);
	free(venc);
	return rc;
}
