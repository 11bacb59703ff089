/*
 * cc/series.c -- paging one candle series: what to ask the API for, what
 * of its answers to print, and what counts as closed (cc/rest.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cc/rest.h"
#include "core/out.h"

#define MINUTE_HISTORY_S (7 * 86400)   /* the API keeps 7 days of minutes */

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int64_t
ceil_div(int64_t a, int64_t b)
{
	return -floor_div(-a, b);
}

void
dp_cc_series_clear(struct dp_cc_series *s)
{
	dp_cc_candles_free(s->coll, s->ncoll);
	s->coll = NULL;
	s->ncoll = s->capcoll = 0;
}

int
dp_cc_series_plan(struct dp_cc_series *s, enum dp_cc_interval iv,
                  const struct dp_cc_window *w)
{
	int64_t step = dp_cc_interval_secs(iv);
	int64_t now_s = floor_div(w->now_ms, 1000);
	int64_t open_ts = floor_div(now_s, step) * step;
	unsigned max = dp_cc_interval_max_limit(iv);
	/* Keeps the page from hi to the present within one request. */
	int64_t settle = w->settle_ms < (int64_t)(max - 2) * step * 1000
	                 ? w->settle_ms : (int64_t)(max - 2) * step * 1000;
	/* The newest t whose end, t + step, is settle or more before now. */
	int64_t closed_hi = floor_div(w->now_ms - settle - step * 1000, step * 1000) * step;
	bool have_lo = false;

	dp_cc_series_clear(s);
	memset(s, 0, sizeof(*s));
	s->iv = iv;
	s->step = step;
	s->max_limit = max;
	s->page_size = w->page_size && w->page_size < max ? w->page_size : max;
	s->include_open = w->include_open;
	s->open_from = closed_hi + step;
	s->hi = w->include_open ? open_ts : closed_hi;
	s->live = true;
	if (w->has_until) {
		int64_t last = floor_div(ceil_div(w->until_ms, 1000) - 1, step) * step;
		if (last < closed_hi)
			s->live = false;     /* all settled: no candle of the range is the API's newest */
		if (last < s->hi)
			s->hi = last;
	}
	s->top = s->live ? open_ts : s->hi;
	s->floor_s = -1;
	if (w->has_cursor) {
		s->lo = w->cursor + step;
		have_lo = true;
	}
	if (w->has_since) {
		int64_t since = ceil_div(ceil_div(w->since_ms > 0 ? w->since_ms : 0, 1000), step) * step;
		if (!have_lo || since > s->lo)
			s->lo = since;
		have_lo = true;
	}
	if (have_lo) {
		s->forward = true;
		return s->lo <= s->hi;
	}
	if (dp_cc_interval_base(iv) == DP_CC_MINUTE)
		s->floor_s = now_s - MINUTE_HISTORY_S;
	s->req_to = s->top;
	return s->hi >= 0;
}

void
dp_cc_series_request(struct dp_cc_series *s, int64_t *to_ts, unsigned *limit)
{
	int64_t to, n;

	if (!s->forward) {
		*to_ts = s->req_to;
		*limit = s->req_limit = s->page_size;
		s->req_live = s->live && s->req_to == s->top;
		return;
	}
	to = s->lo + (int64_t)s->page_size * s->step;
	if (s->live && to >= s->hi) {
		/*
		 * The page that holds hi reaches the present, so that its newest
		 * candle is the API's own open one.  When that is more than one
		 * request can hold, this page stops short of hi and the next does it.
		 */
		to = (s->top - s->lo) / s->step <= (int64_t)s->max_limit || s->hi - s->step < s->lo
		     ? s->top : s->hi - s->step;
	} else if (to > s->hi) {
		to = s->hi;
	}
	n = (to - s->lo) / s->step;
	if (n < 1)
		n = 1;           /* limit 0 is the API's default (30 or so), not "one" */
	if (n > s->max_limit)
		n = s->max_limit;
	s->req_to = to;
	s->req_limit = (unsigned)n;
	s->req_live = s->live && to == s->top;
	*to_ts = to;
	*limit = s->req_limit;
}

static int
cmp_candle(const void *a, const void *b)
{
	const struct dp_cc_candle *x = a, *y = b;

	return x->time < y->time ? -1 : x->time > y->time;
}

/*
 * Keep the candles of k[0..n) with lo <= time <= hi, unique, not all
 * zero, not open unless include_open; ascending, compacted to the front
 * of k (the rest freed).  Returns how many were kept.
 */
static size_t
select_candles(const struct dp_cc_series *s, struct dp_cc_candle *k, size_t n, int64_t lo,
               int64_t hi)
{
	size_t m = 0;

	qsort(k, n, sizeof(*k), cmp_candle);
	for (size_t i = 0; i < n; i++) {
		bool keep = k[i].time >= lo && k[i].time <= hi && !dp_cc_candle_is_zero(&k[i]) &&
		            (s->include_open || k[i].time < s->open_from) &&
		            (m == 0 || k[m - 1].time != k[i].time);
		if (keep) {
			struct dp_cc_candle tmp = k[i];
			k[i] = k[m];
			k[m++] = tmp;
		}
	}
	for (size_t i = m; i < n; i++) {
		free(k[i].raw);
		k[i].raw = NULL;
	}
	return m;
}

/* The newest time at or before the request's toTs, -1 when none. */
static int64_t
newest_of(const struct dp_cc_series *s, const struct dp_cc_candle *k, size_t n)
{
	int64_t t = -1;

	for (size_t i = 0; i < n; i++)
		if (k[i].time <= s->req_to && k[i].time > t)
			t = k[i].time;
	return t;
}

static int
take_forward(struct dp_cc_series *s, struct dp_cc_candle *k, size_t n,
             struct dp_cc_candle **out, size_t *nout, bool *done)
{
	bool newer = false;
	int64_t hi = s->req_to < s->hi ? s->req_to : s->hi;

	for (size_t i = 0; i < n; i++)
		if (k[i].time >= s->lo)
			newer = true;
	*nout = select_candles(s, k, n, s->lo, hi);
	*out = k;
	s->no_newer = !newer;
	s->lo = s->req_to + s->step;
	*done = !newer || s->req_live || s->lo > s->hi;
	return 0;
}

static int
take_backward(struct dp_cc_series *s, struct dp_cc_candle *k, size_t n,
              struct dp_cc_candle **out, size_t *nout, bool *done)
{
	int64_t zero = -1, oldest = INT64_MAX, lo, hi;
	size_t m;

	for (size_t i = 0; i < n; i++) {
		if (k[i].time > s->req_to)
			continue;        /* a server that ignores toTs */
		if (k[i].time < oldest)
			oldest = k[i].time;
		if (dp_cc_candle_is_zero(&k[i]) && k[i].time > zero)
			zero = k[i].time;
	}
	lo = zero + 1;               /* the coin did not exist at and before zero */
	if (s->floor_s > lo)
		lo = s->floor_s;
	hi = s->hi < s->req_to ? s->hi : s->req_to;
	if (s->ncoll && s->coll[s->ncoll - 1].time - 1 < hi)
		hi = s->coll[s->ncoll - 1].time - 1;     /* the API repeats the boundary */
	m = select_candles(s, k, n, lo, hi);
	if (m && s->ncoll + m > s->capcoll) {
		size_t cap = (s->ncoll + m) * 2;
		struct dp_cc_candle *p = realloc(s->coll, cap * sizeof(*p));
		if (!p) {
			dp_cc_candles_free(k, m);
			return -1;
		}
		s->coll = p;
		s->capcoll = cap;
	}
	for (size_t i = 0; i < m; i++)
		s->coll[s->ncoll++] = k[m - 1 - i];
	free(k);                     /* the candles moved to s->coll */
	*out = NULL;
	*nout = 0;
	/* Done when nothing older can come: zeros, no progress, or the floor. */
	*done = zero >= 0 || oldest >= s->req_to || (s->floor_s >= 0 && oldest <= s->floor_s);
	s->req_to = oldest;
	if (!*done)
		return 0;
	for (size_t i = 0, j = s->ncoll; i + 1 < j; i++, j--) {
		struct dp_cc_candle t = s->coll[i];
		s->coll[i] = s->coll[j - 1];
		s->coll[j - 1] = t;
	}
	*out = s->coll;
	*nout = s->ncoll;
	s->coll = NULL;
	s->ncoll = s->capcoll = 0;
	return 0;
}

int
dp_cc_series_take(struct dp_cc_series *s, struct dp_cc_candle *k, size_t n,
                  struct dp_cc_candle **out, size_t *nout, bool *done)
{
	if (s->req_live) {
		int64_t newest = newest_of(s, k, n);
		if (newest >= 0 && newest < s->open_from)
			s->open_from = newest;     /* the API is still filling it */
	}
	if (s->forward)
		return take_forward(s, k, n, out, nout, done);
	return take_backward(s, k, n, out, nout, done);
}

int
dp_cc_series_closed(const struct dp_cc_series *s, int64_t t)
{
	return t < s->open_from;
}

int
dp_cc_series_write(const struct dp_cc_series *s, struct dp_out *out, const char *fsym,
                   const char *tsym, bool raw, const struct dp_cc_candle *k, size_t n,
                   bool *have, int64_t *cursor)
{
	struct dp_buf rec = DP_BUF_INIT;
	bool advance = false;
	int64_t newest = 0;
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		dp_buf_reset(&rec);
		if ((raw ? dp_buf_addstr(&rec, k[i].raw)
		         : dp_cc_ohlcv_record(&rec, fsym, tsym, s->iv, &k[i])) < 0 ||
		    dp_buf_addch(&rec, '\n') < 0)
			rc = -2;
		else if (dp_out_write(out, rec.data, rec.len) < 0)
			rc = -1;
		if (dp_cc_series_closed(s, k[i].time) && (!*have || k[i].time > *cursor) &&
		    (!advance || k[i].time > newest)) {
			newest = k[i].time;
			advance = true;
		}
	}
	dp_buf_free(&rec);
	if (rc == 0 && dp_out_flush(out) < 0)
		rc = -1;
	if (rc < 0 || !advance)
		return rc;
	*cursor = newest;
	*have = true;
	return 1;
}
