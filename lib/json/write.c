/*
 * json/write.c -- the JSON writer of json/write.h.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/scan.h"
#include "json/write.h"

void
dp_jw_init(struct dp_jw *w, struct dp_buf *out)
{
	memset(w, 0, sizeof(*w));
	w->out = out;
	w->first[0] = true;
}

/* Before a value: a comma when it is not the first in its container. */
static int
value_start(struct dp_jw *w)
{
	if (w->err)
		return -1;
	if (w->key) {
		w->key = false;
		return 0;
	}
	if (!w->first[w->depth] && dp_buf_addch(w->out, ',') < 0) {
		w->err = -1;
		return -1;
	}
	w->first[w->depth] = false;
	return 0;
}

static void
put(struct dp_jw *w, int rc)
{
	if (rc < 0)
		w->err = -1;
}

static void
open_with(struct dp_jw *w, char c)
{
	if (value_start(w) < 0)
		return;
	if (w->depth >= DP_JW_MAX_DEPTH) {
		w->err = -1;
		return;
	}
	put(w, dp_buf_addch(w->out, c));
	w->depth++;
	w->first[w->depth] = true;
	w->close[w->depth] = c == '{' ? '}' : ']';
}

void dp_jw_obj(struct dp_jw *w) { open_with(w, '{'); }
void dp_jw_arr(struct dp_jw *w) { open_with(w, '['); }

void
dp_jw_end(struct dp_jw *w)
{
	if (w->err)
		return;
	if (w->depth == 0 || w->key) {
		w->err = -1;
		return;
	}
	put(w, dp_buf_addch(w->out, w->close[w->depth]));
	w->depth--;
}

void
dp_jw_key(struct dp_jw *w, const char *k)
{
	if (w->key) {
		w->err = -1;
		return;
	}
	if (value_start(w) < 0)
		return;
	put(w, dp_json_quote(w->out, k, strlen(k)));
	put(w, dp_buf_addch(w->out, ':'));
	w->key = true;
}

void
dp_jw_strn(struct dp_jw *w, const char *s, size_t n)
{
	if (value_start(w) == 0)
		put(w, dp_json_quote(w->out, s, n));
}

void
dp_jw_str(struct dp_jw *w, const char *s)
{
	if (!s)
		dp_jw_null(w);
	else
		dp_jw_strn(w, s, strlen(s));
}

void
dp_jw_int(struct dp_jw *w, int64_t v)
{
	if (value_start(w) == 0)
		put(w, dp_buf_addf(w->out, "%" PRId64, v));
}

void
dp_jw_uint(struct dp_jw *w, uint64_t v)
{
	if (value_start(w) == 0)
		put(w, dp_buf_addf(w->out, "%" PRIu64, v));
}

const char *
dp_jw_format_double(double v, char buf[32])
{
	if (!isfinite(v))
		return strcpy(buf, "null");
	if (v == 0)
		return strcpy(buf, "0");
	if (v == trunc(v) && fabs(v) < 1e15) {
		snprintf(buf, 32, "%.0f", v);
		return buf;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, 32, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

void
dp_jw_double(struct dp_jw *w, double v)
{
	char buf[32];

	if (value_start(w) == 0)
		put(w, dp_buf_addstr(w->out, dp_jw_format_double(v, buf)));
}

void
dp_jw_bool(struct dp_jw *w, bool v)
{
	if (value_start(w) == 0)
		put(w, dp_buf_addstr(w->out, v ? "true" : "false"));
}

void
dp_jw_null(struct dp_jw *w)
{
	if (value_start(w) == 0)
		put(w, dp_buf_add(w->out, "null", 4));
}

void
dp_jw_raw(struct dp_jw *w, const char *json, size_t n)
{
	if (value_start(w) == 0)
		put(w, dp_buf_add(w->out, json, n));
}

/* 1 when s[0..n) goes into a JSON string as it is: nothing to escape. */
static int
plain(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

/*
 * A member whose key (and, quoted, value) need no escapes: ,"k":v in one
 * append.  Records of many members (dp-fetch stream's ticks) are built
 * member by member, and the separate appends of the general path were
 * most of their cost.  0 when written or failed (sticky), -1 when the
 * general path must do it.
 */
static int
member(struct dp_jw *w, const char *k, const char *v, size_t vn, bool quote)
{
	size_t kn = strlen(k), need;
	char *p;

	if (w->err || w->key || !plain(k, kn) || (quote && !plain(v, vn)))
		return -1;
	need = kn + vn + 4 + (quote ? 2 : 0);
	if (dp_buf_grow(w->out, need) < 0) {
		w->err = -1;
		return 0;
	}
	p = w->out->data + w->out->len;
	if (!w->first[w->depth])
		*p++ = ',';
	w->first[w->depth] = false;
	*p++ = '"';
	memcpy(p, k, kn);
	p += kn;
	*p++ = '"';
	*p++ = ':';
	if (quote)
		*p++ = '"';
	memcpy(p, v, vn);
	p += vn;
	if (quote)
		*p++ = '"';
	*p = '\0';
	w->out->len = (size_t)(p - w->out->data);
	return 0;
}

void
dp_jw_kstr(struct dp_jw *w, const char *k, const char *s)
{
	if (s && member(w, k, s, strlen(s), true) == 0)
		return;
	dp_jw_key(w, k);
	dp_jw_str(w, s);
}

void dp_jw_kint(struct dp_jw *w, const char *k, int64_t v) { dp_jw_key(w, k); dp_jw_int(w, v); }
void dp_jw_kuint(struct dp_jw *w, const char *k, uint64_t v) { dp_jw_key(w, k); dp_jw_uint(w, v); }
void dp_jw_kdouble(struct dp_jw *w, const char *k, double v) { dp_jw_key(w, k); dp_jw_double(w, v); }
void dp_jw_kbool(struct dp_jw *w, const char *k, bool v) { dp_jw_key(w, k); dp_jw_bool(w, v); }
void
dp_jw_knull(struct dp_jw *w, const char *k)
{
	if (member(w, k, "null", 4, false) == 0)
		return;
	dp_jw_key(w, k);
	dp_jw_null(w);
}

void
dp_jw_kcount(struct dp_jw *w, const char *k, int64_t v)
{
	if (v < 0)
		dp_jw_knull(w, k);
	else
		dp_jw_kint(w, k, v);
}

void
dp_jw_kraw(struct dp_jw *w, const char *k, const char *json, size_t n)
{
	if (member(w, k, json, n, false) == 0)
		return;
	dp_jw_key(w, k);
	dp_jw_raw(w, json, n);
}

int
dp_jw_pkey(struct dp_jw_pkey *k, const char *name)
{
	size_t n = strlen(name);

	if (n > DP_JW_PKEY_MAX || !plain(name, n))
		return -1;
	k->text[0] = '"';
	memcpy(k->text + 1, name, n);
	k->text[n + 1] = '"';
	k->text[n + 2] = ':';
	k->len = n + 3;
	return 0;
}

/* ,"k":v, v quoted or not, in one append. */
static void
pmember(struct dp_jw *w, const struct dp_jw_pkey *k, const char *v, size_t vn, bool quote)
{
	char *p;

	if (w->err)
		return;
	if (w->key || dp_buf_grow(w->out, k->len + vn + 3) < 0) {
		w->err = -1;
		return;
	}
	p = w->out->data + w->out->len;
	if (!w->first[w->depth])
		*p++ = ',';
	w->first[w->depth] = false;
	memcpy(p, k->text, k->len);
	p += k->len;
	if (quote)
		*p++ = '"';
	memcpy(p, v, vn);
	p += vn;
	if (quote)
		*p++ = '"';
	*p = '\0';
	w->out->len = (size_t)(p - w->out->data);
}

void
dp_jw_praw(struct dp_jw *w, const struct dp_jw_pkey *k, const char *json, size_t n)
{
	pmember(w, k, json, n, false);
}

void
dp_jw_pnull(struct dp_jw *w, const struct dp_jw_pkey *k)
{
	pmember(w, k, "null", 4, false);
}

void
dp_jw_pstr(struct dp_jw *w, const struct dp_jw_pkey *k, const char *s, size_t n)
{
	if (plain(s, n)) {
		pmember(w, k, s, n, true);
	} else if (!w->err && !w->key) {
		/* The key is plain: write it as a raw member's key, then the string. */
		if (value_start(w) == 0) {
			put(w, dp_buf_add(w->out, k->text, k->len));
			put(w, dp_json_quote(w->out, s, n));
		}
	} else {
		w->err = -1;
	}
}

int
dp_jw_finish(const struct dp_jw *w)
{
	return w->err || w->depth != 0 || w->key ? -1 : 0;
}
