/*
 * cc/rest.c -- the CryptoCompare min-api: URLs, answers, records (cc/rest.h).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <libwebsockets.h>

#include "cc/http.h"
#include "cc/rest.h"
#include "core/exit.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "json/scan.h"
#include "json/write.h"

/* ------------------------------------------------------------------ */
/* Intervals */

static const struct {
	const char *name, *label;
	enum dp_cc_interval base;
	unsigned aggregate;
} intervals[DP_CC_NINTERVALS] = {
	[DP_CC_MINUTE] = { "minute", "1m",  DP_CC_MINUTE, 1 },
	[DP_CC_5M]     = { "5m",     "5m",  DP_CC_MINUTE, 5 },
	[DP_CC_15M]    = { "15m",    "15m", DP_CC_MINUTE, 15 },
	[DP_CC_30M]    = { "30m",    "30m", DP_CC_MINUTE, 30 },
	[DP_CC_HOUR]   = { "hour",   "1h",  DP_CC_HOUR,   1 },
	[DP_CC_2H]     = { "2h",     "2h",  DP_CC_HOUR,   2 },
	[DP_CC_4H]     = { "4h",     "4h",  DP_CC_HOUR,   4 },
	[DP_CC_12H]    = { "12h",    "12h", DP_CC_HOUR,   12 },
	[DP_CC_DAY]    = { "day",    "1d",  DP_CC_DAY,    1 },
	[DP_CC_3D]     = { "3d",     "3d",  DP_CC_DAY,    3 },
	[DP_CC_1W]     = { "1w",     "1w",  DP_CC_DAY,    7 },
};

static const struct {
	const char *path;
	int64_t secs;
} bases[DP_CC_NINTERVALS] = {
	[DP_CC_MINUTE] = { "histominute", 60 },
	[DP_CC_HOUR]   = { "histohour",   3600 },
	[DP_CC_DAY]    = { "histoday",    86400 },
};

int
dp_cc_interval_parse(const char *s, enum dp_cc_interval *iv)
{
	for (size_t i = 0; i < DP_CC_NINTERVALS; i++) {
		if (strcmp(s, intervals[i].name) == 0 || strcmp(s, intervals[i].label) == 0) {
			*iv = (enum dp_cc_interval)i;
			return 0;
		}
	}
	return -1;
}

int64_t
dp_cc_interval_secs(enum dp_cc_interval iv)
{
	return bases[intervals[iv].base].secs * intervals[iv].aggregate;
}

const char *dp_cc_interval_label(enum dp_cc_interval iv) { return intervals[iv].label; }
const char *dp_cc_interval_name(enum dp_cc_interval iv) { return intervals[iv].name; }
enum dp_cc_interval dp_cc_interval_base(enum dp_cc_interval iv) { return intervals[iv].base; }
unsigned dp_cc_interval_aggregate(enum dp_cc_interval iv) { return intervals[iv].aggregate; }

unsigned
dp_cc_interval_max_limit(enum dp_cc_interval iv)
{
	return DP_CC_MAX_LIMIT / intervals[iv].aggregate;
}

/* ------------------------------------------------------------------ */
/* Command-line values */

void
dp_cc_symbols_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int
dp_cc_symbols(const char *name, const char *arg, char ***out, size_t *n, struct dp_buf *err)
{
	const char *p = arg;
	char **v = NULL;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	if (!*arg || arg[strlen(arg) - 1] == ',' || *arg == ',' || strstr(arg, ",,")) {
		dp_buf_msgf(err, "invalid %s '%s': expected symbols separated by commas", name, arg);
		return -1;
	}
	for (const char *c = arg; *c; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f || strchr("/&?#~", *c)) {
			dp_buf_msgf(err, "invalid %s '%s': symbols are letters, digits and the like, "
			            "without spaces", name, arg);
			return -1;
		}
	}
	while (*p) {
		size_t len = strcspn(p, ",");
		char **t;
		if (len > 64) {
			dp_buf_msgf(err, "invalid %s: symbol '%.20s...' is too long", name, p);
			goto fail;
		}
		if (!(t = realloc(v, (cnt + 1) * sizeof(*v))) || !(t[cnt] = strndup(p, len))) {
			v = t ? t : v;
			dp_buf_msgf(err, "out of memory");
			goto fail;
		}
		v = t;
		cnt++;
		p += len + (p[len] == ',');
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	dp_cc_symbols_free(v, cnt);
	return -1;
}

int
dp_cc_check_name(const char *name, const char *s, struct dp_buf *err)
{
	if (!*s || strlen(s) > 64)
		goto bad;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '~')
			goto bad;
	return 0;
bad:
	dp_buf_msgf(err, "invalid %s '%s': expected a name without spaces", name, s);
	return -1;
}

int
dp_cc_check_url(const char *what, const char *url, const char *const *schemes, bool query,
                struct dp_buf *err)
{
	const char *const *sc = schemes;
	const char *q;

	for (; *sc; sc++)
		if (strncmp(url, *sc, strlen(*sc)) == 0)
			break;
	if (!*sc) {
		dp_buf_msgf(err, "invalid %s '%s': expected ", what, url);
		for (sc = schemes; *sc; sc++)
			dp_buf_msgf(err, "%s%s", sc == schemes ? "" : sc[1] ? ", " : " or ", *sc);
		return -1;
	}
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '#' || (!query && *p == '?')) {
			dp_buf_msgf(err, "invalid %s '%s': no spaces, %sfragment", what, url,
			            query ? "" : "query or ");
			return -1;
		}
	}
	/* The key never goes into a URL: URLs end up in logs and messages. */
	if ((q = strchr(url, '?')) && (strcasestr(q, "?api_key=") || strcasestr(q, "&api_key="))) {
		dp_buf_msgf(err, "invalid %s: no api_key in it; the key is read only from "
		            "$CRYPTOCOMPARE_API_KEY or --api-key-file FILE", what);
		return -1;
	}
	return 0;
}

int
dp_cc_set_key(const char *key, dp_cc_header_fn set, void *target)
{
	struct dp_buf v = DP_BUF_INIT, err = DP_BUF_INIT;
	int r = dp_buf_addf(&v, "Apikey %s", key);

	if (r < 0)
		dp_buf_msgf(&err, "out of memory");
	else
		r = set(target, "Authorization", v.data, &err);
	if (v.data)
		explicit_bzero(v.data, v.len);
	dp_buf_free(&v);
	if (r < 0)
		dp_err("%s", dp_buf_str(&err));
	dp_buf_free(&err);
	return r < 0 ? DP_EX_CONFIG : 0;
}

/* ------------------------------------------------------------------ */
/* URLs */

static int
add_list(struct dp_buf *url, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i && dp_buf_addch(url, ',') < 0)
			return -1;
		if (dp_http_escape(url, v[i]) < 0)
			return -1;
	}
	return 0;
}

int
dp_cc_url_price(struct dp_buf *url, const char *base, const char *const *fsyms,
                size_t nf, const char *const *tsyms, size_t nt, const char *market)
{
	if (dp_buf_addf(url, "%s/data/pricemultifull?fsyms=", base) < 0 ||
	    add_list(url, fsyms, nf) < 0 || dp_buf_addstr(url, "&tsyms=") < 0 ||
	    add_list(url, tsyms, nt) < 0)
		return -1;
	if (market && (dp_buf_addstr(url, "&e=") < 0 || dp_http_escape(url, market) < 0))
		return -1;
	return 0;
}

int
dp_cc_url_histo(struct dp_buf *url, const char *base, enum dp_cc_interval iv,
                const char *fsym, const char *tsym, const char *market,
                unsigned limit, int64_t to_ts)
{
	enum dp_cc_interval b = intervals[iv].base;
	unsigned agg = intervals[iv].aggregate;

	if (dp_buf_addf(url, "%s/data/v2/%s?fsym=", base, bases[b].path) < 0 ||
	    dp_http_escape(url, fsym) < 0 || dp_buf_addstr(url, "&tsym=") < 0 ||
	    dp_http_escape(url, tsym) < 0 || dp_buf_addf(url, "&limit=%u", limit) < 0)
		return -1;
	if (agg > 1 && dp_buf_addf(url, "&aggregate=%u&aggregatePredictableTimePeriods=true",
	                           agg) < 0)
		return -1;
	if (to_ts >= 0 && dp_buf_addf(url, "&toTs=%lld", (long long)(agg > 1 ?
	                              to_ts + dp_cc_interval_secs(iv) - bases[b].secs : to_ts)) < 0)
		return -1;
	if (market && (dp_buf_addstr(url, "&e=") < 0 || dp_http_escape(url, market) < 0))
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Small jv helpers; obj is always borrowed. */

static jv
get(jv obj, const char *key)
{
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return jv_invalid();
	return jv_object_get(jv_copy(obj), jv_string(key));
}

/* Append a jv string's contents as a JSON string literal. */
static int
quote_jv(struct dp_buf *out, jv s)
{
	return dp_json_quote(out, jv_string_value(s), (size_t)jv_string_length_bytes(jv_copy(s)));
}

/*
 * A numeric field: number, null or missing (NaN), or a string holding a
 * number.  Returns 0, or -1 when it is something else.
 */
static int
num_field(jv obj, const char *key, double *v, const char **got)
{
	jv x = get(obj, key);
	int rc = 0;

	*v = NAN;
	switch (jv_get_kind(x)) {
	case JV_KIND_INVALID:
	case JV_KIND_NULL:
		break;
	case JV_KIND_NUMBER:
		*v = jv_number_value(x);
		break;
	case JV_KIND_STRING: {
		const char *s = jv_string_value(x);
		char *end;
		if (!*s)
			break;
		errno = 0;
		double d = strtod(s, &end);
		if (*end || errno == ERANGE)
			rc = -1;
		else
			*v = isfinite(d) ? d : NAN;
		break;
	}
	default:
		rc = -1;
		break;
	}
	if (rc < 0)
		*got = jv_kind_name(jv_get_kind(x));
	jv_free(x);
	return rc;
}

int
dp_cc_number(struct dp_buf *out, double v)
{
	char buf[32];

	return dp_buf_addstr(out, dp_jw_format_double(v, buf));
}

int
dp_cc_dump(struct dp_buf *out, jv v)
{
	jv s = jv_dump_string(jv_copy(v), 0);
	int rc = dp_buf_add(out, jv_string_value(s), (size_t)jv_string_length_bytes(jv_copy(s)));

	jv_free(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Responses */

static void
ratelimit_detail(jv root, struct dp_buf *msg)
{
	static const char *const windows[] = { "second", "minute", "hour", "day", "month" };
	jv rl = get(root, "RateLimit");
	jv made = get(rl, "calls_made"), max = get(rl, "max_calls");
	int n = 0;

	for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
		jv a = get(made, windows[i]), b = get(max, windows[i]);
		if (jv_get_kind(a) == JV_KIND_NUMBER && jv_get_kind(b) == JV_KIND_NUMBER &&
		    jv_number_value(a) >= jv_number_value(b)) {
			dp_buf_msgf(msg, "%s%s %.0f of %.0f calls", n++ ? ", " : "; limit reached: ",
			            windows[i], jv_number_value(a), jv_number_value(b));
		}
		jv_free(a);
		jv_free(b);
	}
	jv_free(made);
	jv_free(max);
	jv_free(rl);
}

/* 1 when hay contains any of the needles (a NULL-ended list), ignoring case. */
static int
mentions(const char *hay, const char *const *needles)
{
	for (; *needles; needles++)
		if (strcasestr(hay, *needles))
			return 1;
	return 0;
}

/* The table in cc/rest.h. */
static enum dp_cc_verdict
classify(int type, const char *message, int has_param)
{
	static const char *const nopair[] = { "market does not exist for this coin pair", NULL };
	static const char *const ratelimit[] = { "rate limit", NULL };
	static const char *const auth[] = { "api key", "api_key", "apikey", "auth key", NULL };

	if (mentions(message, nopair))
		return DP_CC_NOPAIR;
	if (type == 99 || mentions(message, ratelimit))
		return DP_CC_RATELIMIT;
	if (mentions(message, auth))
		return DP_CC_AUTH;
	return has_param ? DP_CC_PARAM : DP_CC_APIERR;
}

static const char *
verdict_phrase(enum dp_cc_verdict v)
{
	switch (v) {
	case DP_CC_RATELIMIT: return "rate limited";
	case DP_CC_NOPAIR:    return "no such market or pair";
	case DP_CC_AUTH:      return "the API wants a valid key";
	default:              return "the API refused the request";
	}
}

enum dp_cc_verdict
dp_cc_parse(const char *body, size_t len, jv *root, int *type, struct dp_buf *msg,
            struct dp_buf *api_message)
{
	jv v, resp, t;
	enum dp_cc_verdict verdict = DP_CC_OK;

	*root = jv_null();
	*type = -1;
	if (len == 0) {
		dp_buf_msgf(msg, "empty body");
		return DP_CC_MALFORMED;
	}
	if (len > INT_MAX) {
		dp_buf_msgf(msg, "body too large");
		return DP_CC_MALFORMED;
	}
	/* JSON as every dp path reads it (json/scan.h), not libjq's wider idea (nan, 01). */
	const char *why;
	size_t off;
	if (dp_json_check(body, len, &why, &off) == DP_JSON_INVALID) {
		dp_buf_msgf(msg, "not valid JSON (%s at byte %zu)", why, off + 1);
		return DP_CC_MALFORMED;
	}
	v = jv_parse_sized(body, (int)len);
	if (!jv_is_valid(v)) {
		jv m = jv_invalid_get_msg(v);
		if (jv_get_kind(m) == JV_KIND_STRING) {
			/* libjq appends "(while parsing '<the whole body>')": drop it. */
			const char *text = jv_string_value(m), *cut = strstr(text, " (while parsing");
			int n = cut ? (int)(cut - text) : (int)strlen(text);
			if (n > 200)
				n = 200;
			dp_buf_msgf(msg, "not valid JSON (%.*s)", n, text);
		} else
			dp_buf_msgf(msg, "not valid JSON");
		jv_free(m);
		return DP_CC_MALFORMED;
	}
	if (jv_get_kind(v) != JV_KIND_OBJECT) {
		dp_buf_msgf(msg, "expected a JSON object, got %s", jv_kind_name(jv_get_kind(v)));
		jv_free(v);
		return DP_CC_MALFORMED;
	}
	t = get(v, "Type");
	/* Only an int is a Type: converting 1e21 (or 0.5) to int is undefined. */
	if (jv_get_kind(t) == JV_KIND_NUMBER && jv_number_value(t) >= 0 &&
	    jv_number_value(t) <= INT_MAX && jv_number_value(t) == trunc(jv_number_value(t)))
		*type = (int)jv_number_value(t);
	jv_free(t);
	resp = get(v, "Response");
	if (jv_get_kind(resp) == JV_KIND_STRING && strcmp(jv_string_value(resp), "Error") == 0) {
		jv m = get(v, "Message"), p = get(v, "ParamWithError");
		const char *text = jv_get_kind(m) == JV_KIND_STRING ? jv_string_value(m) : "";
		int has_param = jv_get_kind(p) == JV_KIND_STRING;

		verdict = classify(*type, text, has_param);
		dp_buf_msgf(msg, "%s (Type %d): ", verdict_phrase(verdict), *type);
		if (jv_get_kind(m) == JV_KIND_STRING)
			msg->lost |= quote_jv(msg, m) < 0;
		else
			dp_buf_msgf(msg, "no Message");
		if (has_param) {
			dp_buf_msgf(msg, " (ParamWithError: ");
			msg->lost |= quote_jv(msg, p) < 0;
			dp_buf_msgf(msg, ")");
		}
		if (verdict == DP_CC_RATELIMIT)
			ratelimit_detail(v, msg);
		if (api_message)
			dp_buf_msgf(api_message, "%s", text);
		jv_free(m);
		jv_free(p);
		jv_free(v);
	} else {
		*root = v;
	}
	jv_free(resp);
	return verdict;
}

enum dp_cc_outcome
dp_cc_judge(long st, enum dp_cc_verdict v, const char *url, const char *msg, int *status,
            struct dp_buf *out)
{
	if (v == DP_CC_NOPAIR) {
		dp_buf_msgf(out, "%s", msg);
		return DP_CC_MISSING;
	}
	if (st != 200) {
		bool transient = st == 408 || st == 429 || st >= 500 || v == DP_CC_RATELIMIT;
		bool api = v != DP_CC_OK && v != DP_CC_MALFORMED;
		*status = transient ? DP_EX_UNAVAILABLE :
		          st == 401 || st == 403 || v == DP_CC_AUTH ? DP_EX_NOPERM :
		          v == DP_CC_PARAM ? DP_EX_USAGE : DP_EX_UNAVAILABLE;
		dp_buf_msgf(out, "HTTP %ld from %s%s%s", st, url, api ? ": " : "", api ? msg : "");
		return transient ? DP_CC_RETRY : DP_CC_FAIL;
	}
	switch (v) {
	case DP_CC_OK:
		return DP_CC_ANSWER;
	case DP_CC_RATELIMIT:
		*status = DP_EX_UNAVAILABLE;
		dp_buf_msgf(out, "%s: %s", url, msg);
		return DP_CC_RETRY;
	case DP_CC_MALFORMED:
		*status = DP_EX_DATAERR;
		dp_buf_msgf(out, "malformed response from %s: %s", url, msg);
		return DP_CC_FAIL;
	default:
		*status = v == DP_CC_AUTH ? DP_EX_NOPERM : v == DP_CC_PARAM ? DP_EX_USAGE
		                                                             : DP_EX_UNAVAILABLE;
		dp_buf_msgf(out, "%s: %s", url, msg);
		return DP_CC_FAIL;
	}
}

void
dp_cc_reply_free(struct dp_cc_reply *r)
{
	jv_free(r->root);
	r->root = jv_null();
	dp_buf_free(&r->msg);
	dp_buf_free(&r->api_message);
}

enum dp_cc_outcome
dp_cc_get(struct dp_http *h, const char *url, struct dp_cc_reply *r)
{
	struct dp_http_resp resp = DP_HTTP_RESP_INIT;
	struct dp_buf err = DP_BUF_INIT, msg = DP_BUF_INIT;
	enum dp_cc_outcome o;
	enum dp_cc_verdict v;
	int type;

	dp_cc_reply_free(r);
	r->status = 0;
	r->retry_after_ms = -1;
	r->cancelled = false;
	if (dp_http_get(h, url, &resp, &err) < 0) {
		r->cancelled = resp.cancelled;
		r->status = DP_EX_UNAVAILABLE;
		dp_buf_msgf(&r->msg, "%s", dp_buf_str(&err));
		o = resp.transient && !resp.cancelled ? DP_CC_RETRY : DP_CC_FAIL;
	} else {
		dp_debug("HTTP %ld, %zu bytes in %ld ms", resp.status, resp.body.len, resp.elapsed_ms);
		r->retry_after_ms = resp.retry_after_ms;
		v = dp_cc_parse(resp.body.data, resp.body.len, &r->root, &type, &msg,
		                &r->api_message);
		o = dp_cc_judge(resp.status, v, url, dp_buf_str(&msg), &r->status, &r->msg);
	}
	dp_http_resp_free(&resp);
	dp_buf_free(&err);
	dp_buf_free(&msg);
	return o;
}

int
dp_cc_names_pair(const char *api_message, const char *fsym, const char *tsym)
{
	size_t nf = strlen(fsym), nt = strlen(tsym);

	for (const char *p = strchr(api_message, '('); p; p = strchr(p + 1, '(')) {
		if (strncasecmp(p + 1, fsym, nf) == 0 && p[1 + nf] == '-' &&
		    strncasecmp(p + 2 + nf, tsym, nt) == 0 && p[2 + nf + nt] == ')')
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Prices */

/*
 * The member of obj whose key is name, exactly or else ignoring case, into
 * *out (jv_invalid() when there is none), its key as spelled into key.
 * Returns 0, or -1 when memory runs out.
 */
static int
find_key(jv obj, const char *name, struct dp_buf *key, jv *out)
{
	jv v = get(obj, name);
	int rc = 0;

	*out = jv_invalid();
	if (jv_is_valid(v)) {
		*out = v;
		return dp_buf_addstr(key, name);
	}
	jv_free(v);
	jv_object_foreach(obj, k, val) {
		if (!jv_is_valid(*out) && strcasecmp(jv_string_value(k), name) == 0) {
			rc = dp_buf_addstr(key, jv_string_value(k));
			*out = val;
		} else {
			jv_free(val);
		}
		jv_free(k);
	}
	return rc;
}

int
dp_cc_price_find(jv root, const char *fsym, const char *tsym, jv *obj,
                 struct dp_buf *fkey, struct dp_buf *tkey, struct dp_buf *err)
{
	jv raw = get(root, "RAW"), f, t;
	int rc = 0;

	*obj = jv_invalid();
	if (jv_get_kind(raw) != JV_KIND_OBJECT) {
		dp_buf_msgf(err, "no RAW object in the response");
		jv_free(raw);
		return -1;
	}
	t = jv_invalid();
	if (find_key(raw, fsym, fkey, &f) < 0 ||
	    (jv_get_kind(f) == JV_KIND_OBJECT && find_key(f, tsym, tkey, &t) < 0)) {
		dp_buf_msgf(err, "out of memory");
		jv_free(t);
		rc = -1;
	} else if (jv_get_kind(f) == JV_KIND_OBJECT) {
		if (jv_get_kind(t) == JV_KIND_OBJECT) {
			*obj = t;
			rc = 1;
		} else if (jv_is_valid(t)) {
			dp_buf_msgf(err, "RAW.%s.%s is not an object", fkey->data, tkey->data);
			jv_free(t);
			rc = -1;
		} else {
			jv_free(t);
		}
	} else if (jv_is_valid(f)) {
		dp_buf_msgf(err, "RAW.%s is not an object", fkey->data);
		rc = -1;
	}
	jv_free(f);
	jv_free(raw);
	return rc;
}

int
dp_cc_price_record(struct dp_buf *out, jv raw, const char *fsym, const char *tsym,
                   struct dp_buf *err)
{
	static const struct { const char *out, *in; } fields[] = {
		{ "price", "PRICE" },
		{ "open_24h", "OPEN24HOUR" },
		{ "high_24h", "HIGH24HOUR" },
		{ "low_24h", "LOW24HOUR" },
		{ "volume_24h", "VOLUME24HOUR" },
		{ "volume_24h_to", "VOLUME24HOURTO" },
		{ "change_24h", "CHANGE24HOUR" },
		{ "change_pct_24h", "CHANGEPCT24HOUR" },
		{ "mktcap", "MKTCAP" },
	};
	const char *got = NULL;
	jv market = get(raw, "MARKET");
	double ts;
	int rc = 0;

	if (num_field(raw, "LASTUPDATE", &ts, &got) < 0) {
		dp_buf_msgf(err, "RAW.%s.%s.LASTUPDATE: expected a number, got %s", fsym, tsym, got);
		jv_free(market);
		return -1;
	}
	/* Missing or null is null; a number that is no time is a broken answer. */
	if (!isnan(ts) && !(ts >= 0 && ts <= (double)(DP_TIME_MAX_MS / 1000))) {
		dp_buf_msgf(err, "RAW.%s.%s.LASTUPDATE: %g is not a time in seconds", fsym, tsym, ts);
		jv_free(market);
		return -1;
	}
	rc |= dp_buf_addstr(out, "{\"type\":\"price\",\"source\":\"cryptocompare\",\"market\":");
	if (jv_get_kind(market) == JV_KIND_STRING)
		rc |= quote_jv(out, market);
	else
		rc |= dp_buf_addstr(out, "null");
	jv_free(market);
	rc |= dp_buf_addstr(out, ",\"fsym\":");
	rc |= dp_json_quote(out, fsym, strlen(fsym));
	rc |= dp_buf_addstr(out, ",\"tsym\":");
	rc |= dp_json_quote(out, tsym, strlen(tsym));
	rc |= dp_buf_addstr(out, ",\"ts\":");
	if (!isnan(ts)) {
		char t[DP_TIME_BUFSZ];
		rc |= dp_buf_addf(out, "\"%s\"", dp_time_format((int64_t)llround(ts * 1000), t));
	} else {
		rc |= dp_buf_addstr(out, "null");
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		double v;
		if (num_field(raw, fields[i].in, &v, &got) < 0) {
			dp_buf_msgf(err, "RAW.%s.%s.%s: expected a number, got %s", fsym, tsym,
			            fields[i].in, got);
			return -1;
		}
		rc |= dp_buf_addf(out, ",\"%s\":", fields[i].out);
		rc |= dp_cc_number(out, v);
	}
	rc |= dp_buf_addch(out, '}');
	if (rc) {
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Candles */

static const char *const candle_keys[DP_CC_NV] = {
	"open", "high", "low", "close", "volumefrom", "volumeto",
};

void
dp_cc_candles_free(struct dp_cc_candle *c, size_t n)
{
	if (!c)
		return;
	for (size_t i = 0; i < n; i++)
		free(c[i].raw);
	free(c);
}

int
dp_cc_candles(jv root, enum dp_cc_interval iv, bool keep_raw, struct dp_cc_candle **out,
              size_t *n, struct dp_buf *err)
{
	jv data = get(root, "Data"), arr;
	struct dp_cc_candle *c = NULL;
	size_t len = 0;

	*out = NULL;
	*n = 0;
	if (jv_get_kind(data) == JV_KIND_ARRAY) {
		arr = data;                              /* v1: Data[] */
	} else if (jv_get_kind(data) == JV_KIND_OBJECT) {
		arr = get(data, "Data");                 /* v2: Data.Data[] */
		if (!jv_is_valid(arr) && jv_object_length(jv_copy(data)) == 0)
			arr = jv_array();                /* "Data":{}: nothing */
		jv_free(data);
	} else {
		arr = data;
	}
	if (jv_get_kind(arr) != JV_KIND_ARRAY) {
		dp_buf_msgf(err, "no Data.Data array of candles in the response");
		jv_free(arr);
		return -1;
	}
	len = (size_t)jv_array_length(jv_copy(arr));
	if (len && !(c = calloc(len, sizeof(*c)))) {
		dp_buf_msgf(err, "out of memory");
		jv_free(arr);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		jv e = jv_array_get(jv_copy(arr), (int)i);
		double t;
		const char *got = NULL;
		int bad = 0;

		if (jv_get_kind(e) != JV_KIND_OBJECT) {
			dp_buf_msgf(err, "candle %zu is %s, not an object", i,
			            jv_kind_name(jv_get_kind(e)));
			bad = 1;
		} else if (num_field(e, "time", &t, &got) < 0 || !isfinite(t) || t != trunc(t) ||
		           t < 0 || t > (double)(DP_TIME_MAX_MS / 1000)) {
			dp_buf_msgf(err, "candle %zu: \"time\" is not a time in seconds", i);
			bad = 1;
		} else if (fmod(t, (double)dp_cc_interval_secs(iv)) != 0) {
			dp_buf_msgf(err, "candle %zu: \"time\" %.0f is not the start of a %s "
			            "interval", i, t, intervals[iv].name);
			bad = 1;
		} else {
			c[i].time = (int64_t)t;
			for (int k = 0; k < DP_CC_NV && !bad; k++) {
				if (num_field(e, candle_keys[k], &c[i].v[k], &got) < 0) {
					dp_buf_msgf(err, "candle %zu (time %lld): \"%s\" is %s, not a number",
					            i, (long long)c[i].time, candle_keys[k], got);
					bad = 1;
				}
			}
			if (!bad && keep_raw) {
				struct dp_buf b = DP_BUF_INIT;
				if (dp_cc_dump(&b, e) < 0) {
					dp_buf_msgf(err, "out of memory");
					bad = 1;
				}
				c[i].raw = dp_buf_detach(&b, NULL);
				dp_buf_free(&b);
			}
		}
		jv_free(e);
		if (bad) {
			dp_cc_candles_free(c, len);
			jv_free(arr);
			return -1;
		}
	}
	jv_free(arr);
	*out = c;
	*n = len;
	return 0;
}

int
dp_cc_candle_is_zero(const struct dp_cc_candle *c)
{
	for (int k = 0; k < DP_CC_NV; k++)
		if (c->v[k] != 0)
			return 0;
	return 1;
}

int
dp_cc_ohlcv_record(struct dp_buf *out, const char *fsym, const char *tsym,
                   enum dp_cc_interval iv, const struct dp_cc_candle *c)
{
	static const char *const names[DP_CC_NV] = {
		"open", "high", "low", "close", "volume_from", "volume_to",
	};
	char t[DP_TIME_BUFSZ];
	int rc = 0;

	rc |= dp_buf_addstr(out, "{\"type\":\"ohlcv\",\"source\":\"cryptocompare\",\"fsym\":");
	rc |= dp_json_quote(out, fsym, strlen(fsym));
	rc |= dp_buf_addstr(out, ",\"tsym\":");
	rc |= dp_json_quote(out, tsym, strlen(tsym));
	rc |= dp_buf_addf(out, ",\"interval\":\"%s\",\"ts\":\"%s\"", intervals[iv].label,
	                  dp_time_format(c->time * 1000, t));
	for (int k = 0; k < DP_CC_NV; k++) {
		rc |= dp_buf_addf(out, ",\"%s\":", names[k]);
		rc |= dp_cc_number(out, c->v[k]);
	}
	rc |= dp_buf_addch(out, '}');
	return rc ? -1 : 0;
}

const char *
dp_cc_libs(void)
{
	static char v[96];

	if (!v[0]) {
		const char *lws = lws_get_library_version();
		int n = (int)strcspn(lws, "- ");       /* Debian's is "4.1.6-" */
		snprintf(v, sizeof(v), "libcurl %s, libwebsockets %.*s",
		         curl_version_info(CURLVERSION_NOW)->version, n, lws);
	}
	return v;
}
