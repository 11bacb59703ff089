/*
 * cc/stream.c -- the CryptoCompare streamer's subscriptions, messages and
 * records (cc/stream.h).
 *
 * A message is checked once (json/scan.h), its members are found in one more
 * pass without copies, and the values the records need are kept as the
 * server's own text: a number is printed as it came, so nothing is lost
 * to a round trip through a double, and the hot path does no conversion
 * but the times.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cc/stream.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/out.h"
#include "core/parse.h"
#include "core/timefmt.h"
#include "json/scan.h"
#include "json/write.h"
#include "obs/health.h"
#include "obs/obs.h"

/* ------------------------------------------------------------------ */
/* The fields of the messages */

enum key {
	K_TYPE, K_MESSAGE, K_PARAMETER, K_INFO, K_SUB,
	K_MARKET, K_FROMSYMBOL, K_TOSYMBOL, K_FLAGS, K_LASTUPDATE,
	K_M, K_FSYM, K_TSYM, K_F, K_ID, K_TS, K_TSNS, K_Q, K_P, K_TOTAL, K_RTS, K_RTSNS,
	K_CCSEQ, K_UNIT,
	K_OPEN, K_HIGH, K_LOW, K_CLOSE, K_VOLUMEFROM, K_VOLUMETO, K_TOTALTRADES,
	K_TICK,                 /* the first of the tick fields below */
};

/* Ticker (2) and aggregate (5) fields, in the order of the records. */
static const struct field {
	const char *api, *name;
	bool str;               /* a string (an id, a market), else a number */
} tick_fields[] = {
	{ "PRICE", "price", false },
	{ "BID", "bid", false },
	{ "ASK", "ask", false },
	{ "MEDIAN", "median", false },
	{ "LASTVOLUME", "last_volume", false },
	{ "LASTVOLUMETO", "last_volume_to", false },
	{ "LASTTRADEID", "last_trade_id", true },
	{ "LASTMARKET", "last_market", true },
	{ "VOLUMEHOUR", "volume_hour", false },
	{ "VOLUMEHOURTO", "volume_hour_to", false },
	{ "OPENHOUR", "open_hour", false },
	{ "HIGHHOUR", "high_hour", false },
	{ "LOWHOUR", "low_hour", false },
	{ "VOLUMEDAY", "volume_day", false },
	{ "VOLUMEDAYTO", "volume_day_to", false },
	{ "OPENDAY", "open_day", false },
	{ "HIGHDAY", "high_day", false },
	{ "LOWDAY", "low_day", false },
	{ "VOLUME24HOUR", "volume_24h", false },
	{ "VOLUME24HOURTO", "volume_24h_to", false },
	{ "OPEN24HOUR", "open_24h", false },
	{ "HIGH24HOUR", "high_24h", false },
	{ "LOW24HOUR", "low_24h", false },
	{ "TOPTIERVOLUME24HOUR", "top_tier_volume_24h", false },
	{ "TOPTIERVOLUME24HOURTO", "top_tier_volume_24h_to", false },
	{ "CURRENTSUPPLY", "current_supply", false },
	{ "CIRCULATINGSUPPLY", "circulating_supply", false },
	{ "MAXSUPPLY", "max_supply", false },
	{ "MKTCAPPENALTY", "mktcap_penalty", false },
	{ "CURRENTSUPPLYMKTCAP", "current_supply_mktcap", false },
	{ "CIRCULATINGSUPPLYMKTCAP", "circulating_supply_mktcap", false },
	{ "MAXSUPPLYMKTCAP", "max_supply_mktcap", false },
};

#define NTICK (sizeof(tick_fields) / sizeof(tick_fields[0]))
#define NKEYS (K_TICK + NTICK)

/* Candle fields, in the order of the records. */
static const struct field ohlc_fields[] = {
	{ "OPEN", "open", false },
	{ "HIGH", "high", false },
	{ "LOW", "low", false },
	{ "CLOSE", "close", false },
	{ "VOLUMEFROM", "volume_from", false },
	{ "VOLUMETO", "volume_to", false },
	{ "TOTALTRADES", "trades", false },
};

#define NOHLC (sizeof(ohlc_fields) / sizeof(ohlc_fields[0]))

static const char *const key_names[K_TICK] = {
	"TYPE", "MESSAGE", "PARAMETER", "INFO", "SUB",
	"MARKET", "FROMSYMBOL", "TOSYMBOL", "FLAGS", "LASTUPDATE",
	"M", "FSYM", "TSYM", "F", "ID", "TS", "TSNS", "Q", "P", "TOTAL", "RTS", "RTSNS",
	"CCSEQ", "UNIT",
	"OPEN", "HIGH", "LOW", "CLOSE", "VOLUMEFROM", "VOLUMETO", "TOTALTRADES",
};

static const char *
key_name(unsigned k)
{
	return k < K_TICK ? key_names[k] : tick_fields[k - K_TICK].api;
}

/* A small hash index from a key's text to its enum, built once. */
#define KEYSLOTS 256
static short key_index[KEYSLOTS];

/* The keys of the records, quoted once (json/write.h). */
enum pk { P_TYPE, P_SOURCE, P_CHANNEL, P_MARKET, P_FSYM, P_TSYM, P_INTERVAL, P_TS, P_ID, P_SIDE,
          P_PRICE, P_QUANTITY, P_TOTAL, P_FLAGS, P_RECV_TS, P_CCSEQ, NPK };
static const char *const pk_names[NPK] = {
	"type", "source", "channel", "market", "fsym", "tsym", "interval", "ts", "id", "side",
	"price", "quantity", "total", "flags", "recv_ts", "ccseq",
};
static struct dp_jw_pkey pk[NPK], pk_tick[NTICK], pk_ohlc[NOHLC];

static void
build_index(void)
{
	if (key_index[0])
		return;
	for (size_t i = 0; i < NPK; i++)
		(void)dp_jw_pkey(&pk[i], pk_names[i]);
	for (size_t i = 0; i < NTICK; i++)
		(void)dp_jw_pkey(&pk_tick[i], tick_fields[i].name);
	for (size_t i = 0; i < NOHLC; i++)
		(void)dp_jw_pkey(&pk_ohlc[i], ohlc_fields[i].name);
	for (size_t i = 0; i < KEYSLOTS; i++)
		key_index[i] = -1;
	for (unsigned k = 0; k < NKEYS; k++) {
		const char *name = key_name(k);
		size_t h = dp_hash(name, strlen(name)) % KEYSLOTS;
		while (key_index[h] >= 0)
			h = (h + 1) % KEYSLOTS;
		key_index[h] = (short)k;
	}
}

/* The enum of a key given as a string literal with its quotes, or -1. */
static int
lookup_key(const char *lit, size_t n)
{
	size_t h;

	/* An escaped spelling never matches: none of our keys has a backslash. */
	if (n < 3)
		return -1;
	h = dp_hash(lit + 1, n - 2) % KEYSLOTS;
	for (; key_index[h] >= 0; h = (h + 1) % KEYSLOTS) {
		const char *name = key_name((unsigned)key_index[h]);
		if (strlen(name) == n - 2 && memcmp(name, lit + 1, n - 2) == 0)
			return key_index[h];
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* The engine */

enum substate { SUB_PENDING, SUB_ACTIVE, SUB_REFUSED };

struct sub {
	char *text;
	int type;
	enum substate st;
};

struct slot {
	bool set;
	struct dp_buf text;     /* the value as JSON text */
};

/* One (TYPE, MARKET, FSYM, TSYM[, UNIT]): what is known of it. */
struct pair {
	char *key;              /* "5~CCCAGG~BTC~USD" as the server spells it */
	size_t klen;
	uint64_t hash;
	int type;
	char *market, *fsym, *tsym, *unit;   /* JSON string literals; unit may be NULL */
	size_t market_len, fsym_len, tsym_len;
	struct slot *v;         /* tick or candle fields */
	bool has_ts;
	int64_t last_ms;        /* LASTUPDATE, or the candle's TS (ms) */
	int64_t ts_s;           /* the time in ts (ms), -1: none yet */
	char ts[DP_TIME_BUFSZ];
	int64_t recv_ms;        /* trades: the time in recv_ts */
	char recv[DP_TIME_BUFSZ];
	uint64_t *ids;          /* trades: the last DP_CCS_DEDUP ids' hashes */
	unsigned nids, ipos;
	/* obs/obs.h: records since the last dp_ccs_observe; its feed and timestamp */
	bool fresh;
	struct dp_health_feed *feed;
	struct dp_series *ts_gauge;
};

struct dp_ccs {
	struct dp_out *out;
	bool raw;
	uint64_t max_records;
	struct sub *subs;
	size_t nsubs;
	bool signalled;         /* SUBSCRIBED or ALL_REFUSED said for this connection */

	struct pair **tab;      /* open addressing */
	size_t cap, npairs;

	/* the message being read: its members, and which were set */
	const char *val[NKEYS];
	size_t vlen[NKEYS];
	unsigned char set[NKEYS];
	size_t nset;

	struct dp_buf rec;      /* one record */
	struct dp_buf tmp;      /* scratch */
	struct dp_buf reason;

	int64_t last_msg_ms;    /* wall clock of the last message */
	bool data;              /* a data message came, ever */
	bool gap;
	int64_t gap_from;
	struct dp_buf gap_why;

	struct dp_ccs_stats st;
	/* obs/obs.h: the counts told so far, and their series */
	uint64_t obs_records, obs_malformed;
	struct dp_series *obs_out, *obs_bad;
};

int
dp_ccs_channel(const char *name)
{
	static const struct { const char *name; int type; } ch[] = {
		{ "trade", 0 }, { "ticker", 2 }, { "aggregate", 5 }, { "ohlc", 24 },
	};

	for (size_t i = 0; i < sizeof(ch) / sizeof(ch[0]); i++)
		if (strcmp(name, ch[i].name) == 0)
			return ch[i].type;
	return -1;
}

const char *
dp_ccs_ohlc_period(const char *label)
{
	if (strcmp(label, "1m") == 0)
		return "m";
	if (strcmp(label, "1h") == 0)
		return "H";
	if (strcmp(label, "1d") == 0)
		return "D";
	return NULL;
}

/* The record's interval for a candle message's UNIT text (no quotes). */
static const char *
unit_interval(const char *u, size_t n)
{
	static const struct { const char *unit, *label; } units[] = {
		{ "m", "1m" }, { "MINUTE", "1m" }, { "H", "1h" }, { "HOUR", "1h" },
		{ "D", "1d" }, { "DAY", "1d" },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].unit) == n && memcmp(units[i].unit, u, n) == 0)
			return units[i].label;
	return NULL;
}

struct dp_ccs *
dp_ccs_new(const struct dp_ccs_opts *o)
{
	struct dp_ccs *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	build_index();
	c->out = o->out;
	c->raw = o->raw;
	c->max_records = o->max_records;
	return c;
}

void
dp_ccs_set_output(struct dp_ccs *c, struct dp_out *out)
{
	c->out = out;
}

struct dp_out *
dp_ccs_output(const struct dp_ccs *c)
{
	return c->out;
}

static size_t
nslots(int type)
{
	return type == 24 ? NOHLC : type == 0 ? 0 : NTICK;
}

static void
pair_free(struct pair *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->v && i < nslots(p->type); i++)
		dp_buf_free(&p->v[i].text);
	free(p->v);
	free(p->ids);
	free(p->key);
	free(p->market);
	free(p->fsym);
	free(p->tsym);
	free(p->unit);
	free(p);
}

void
dp_ccs_free(struct dp_ccs *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nsubs; i++)
		free(c->subs[i].text);
	free(c->subs);
	for (size_t i = 0; i < c->cap; i++)
		pair_free(c->tab[i]);
	free(c->tab);
	dp_buf_free(&c->rec);
	dp_buf_free(&c->tmp);
	dp_buf_free(&c->reason);
	dp_buf_free(&c->gap_why);
	free(c);
}

const struct dp_ccs_stats *
dp_ccs_stats(const struct dp_ccs *c)
{
	return &c->st;
}

const char *
dp_ccs_stats_line(const struct dp_ccs *c, char *buf, size_t n)
{
	char d[48];

	snprintf(buf, n, "%llu messages, %llu duplicate trades, %llu gaps (%s), %llu reconnects",
	         (unsigned long long)c->st.messages, (unsigned long long)c->st.duplicates,
	         (unsigned long long)c->st.gaps, dp_duration_format(c->st.gap_ms, d),
	         (unsigned long long)(c->st.connections ? c->st.connections - 1 : 0));
	return buf;
}

const char *
dp_ccs_reason(const struct dp_ccs *c)
{
	return dp_buf_str(&c->reason);
}

size_t
dp_ccs_nsubs(const struct dp_ccs *c)
{
	return c->nsubs;
}

/* ------------------------------------------------------------------ */
/* Subscriptions */

int
dp_ccs_subscribe(struct dp_ccs *c, const char *sub, struct dp_buf *err)
{
	const char *p;
	char *end;
	long type;
	int parts = 1;
	struct sub *v;

	for (p = sub; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\') {
			dp_buf_msgf(err, "invalid subscription '%s': no spaces, quotes or "
			            "backslashes", sub);
			return -1;
		}
		parts += *p == '~';
	}
	type = strtol(sub, &end, 10);
	if (end == sub || *end != '~' || type < 0 || strstr(sub, "~~") || p[-1] == '~') {
		dp_buf_msgf(err, "invalid subscription '%s': expected TYPE~MARKET~FSYM~TSYM", sub);
		return -1;
	}
	if (!c->raw) {
		const char *per = strrchr(sub, '~') + 1;
		bool ok = ((type == 0 || type == 2 || type == 5) && parts == 4) ||
		          (type == 24 && parts == 5 && (!strcmp(per, "m") || !strcmp(per, "H") ||
		                                        !strcmp(per, "D")));
		if (type != 0 && type != 2 && type != 5 && type != 24) {
			dp_buf_msgf(err, "subscription '%s': type %ld has no records; only 0 (trade), "
			            "2 (ticker), 5 (aggregate) and 24 (ohlc), or any type with --raw",
			            sub, type);
			return -1;
		}
		if (!ok) {
			dp_buf_msgf(err, "invalid subscription '%s': expected %s", sub,
			            type == 24 ? "24~MARKET~FSYM~TSYM~m (or ~H, ~D)"
			                       : "TYPE~MARKET~FSYM~TSYM");
			return -1;
		}
	}
	for (size_t i = 0; i < c->nsubs; i++) {
		if (strcasecmp(c->subs[i].text, sub) == 0) {
			dp_buf_msgf(err, "subscription '%s' is given twice", sub);
			return -1;
		}
	}
	if (c->nsubs >= DP_CCS_MAX_SUBS) {
		dp_buf_msgf(err, "too many subscriptions (at most %d)", DP_CCS_MAX_SUBS);
		return -1;
	}
	if (!(v = realloc(c->subs, (c->nsubs + 1) * sizeof(*v))) ||
	    !(v[c->nsubs].text = strdup(sub))) {
		if (v)
			c->subs = v;
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	c->subs = v;
	v[c->nsubs].type = (int)type;
	v[c->nsubs].st = SUB_PENDING;
	c->nsubs++;
	return 0;
}

int
dp_ccs_subscribe_list(struct dp_ccs *c, const char *list, struct dp_buf *err)
{
	struct dp_buf one = DP_BUF_INIT;
	int rc = 0;

	for (const char *p = list; p && rc == 0; ) {
		size_t len = strcspn(p, ",");
		dp_buf_reset(&one);
		if (dp_buf_add(&one, p, len) < 0 || dp_buf_addch(&one, '\0') < 0) {
			dp_buf_msgf(err, "out of memory");
			rc = -1;
			break;
		}
		rc = dp_ccs_subscribe(c, one.data, err);
		p = p[len] ? p + len + 1 : NULL;
	}
	dp_buf_free(&one);
	return rc;
}

int
dp_ccs_subscribe_pairs(struct dp_ccs *c, const char *channels, const char *market,
                       char *const *fsyms, size_t nf, char *const *tsyms, size_t nt,
                       const char *period, struct dp_buf *err)
{
	struct dp_buf sub = DP_BUF_INIT, ch = DP_BUF_INIT;
	int rc = 0;

	for (const char *p = channels; p && rc == 0; p = p[strcspn(p, ",")] ?
	                                                 p + strcspn(p, ",") + 1 : NULL) {
		int type;
		dp_buf_reset(&ch);
		if (dp_buf_add(&ch, p, strcspn(p, ",")) < 0 || dp_buf_addch(&ch, '\0') < 0) {
			dp_buf_msgf(err, "out of memory");
			rc = -1;
			break;
		}
		if ((type = dp_ccs_channel(ch.data)) < 0) {
			dp_buf_msgf(err, "invalid --channel '%s': expected aggregate, ticker, trade "
			            "or ohlc", ch.data);
			rc = -1;
		} else if ((type == 0 || type == 2) && !market) {
			dp_buf_msgf(err, "--channel %s needs --market (an exchange, such as Coinbase)",
			            ch.data);
			rc = -1;
		}
		for (size_t f = 0; f < nf && rc == 0; f++) {
			for (size_t t = 0; t < nt && rc == 0; t++) {
				dp_buf_reset(&sub);
				if (dp_buf_addf(&sub, "%d~%s~%s~%s%s%s", type, market ? market : "CCCAGG",
				                fsyms[f], tsyms[t], type == 24 ? "~" : "",
				                type == 24 ? period : "") < 0) {
					dp_buf_msgf(err, "out of memory");
					rc = -1;
				} else {
					rc = dp_ccs_subscribe(c, sub.data, err);
				}
			}
		}
	}
	dp_buf_free(&sub);
	dp_buf_free(&ch);
	return rc;
}

int
dp_ccs_connected(struct dp_ccs *c, struct dp_buf *msg)
{
	struct dp_jw w;

	c->st.connections++;
	c->signalled = false;
	c->st.active = 0;
	dp_jw_init(&w, msg);
	dp_jw_obj(&w);
	dp_jw_kstr(&w, "action", "SubAdd");
	dp_jw_key(&w, "subs");
	dp_jw_arr(&w);
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->subs[i].st == SUB_REFUSED)
			continue;
		c->subs[i].st = SUB_PENDING;
		dp_jw_str(&w, c->subs[i].text);
	}
	dp_jw_end(&w);
	dp_jw_end(&w);
	return dp_jw_finish(&w);
}

static struct sub *
find_sub(struct dp_ccs *c, const char *text)
{
	for (size_t i = 0; i < c->nsubs; i++)
		if (strcasecmp(c->subs[i].text, text) == 0)
			return &c->subs[i];
	return NULL;
}

/* SUBSCRIBED or ALL_REFUSED once nothing is pending. */
static enum dp_ccs_event
check_subscribed(struct dp_ccs *c, bool all)
{
	size_t pending = 0;

	if (c->signalled)
		return DP_CCS_NOTHING;
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->subs[i].st == SUB_PENDING && all) {
			c->subs[i].st = SUB_ACTIVE;
			c->st.active++;
		}
		pending += c->subs[i].st == SUB_PENDING;
	}
	if (pending)
		return DP_CCS_NOTHING;
	c->signalled = true;
	return c->st.active ? DP_CCS_SUBSCRIBED : DP_CCS_ALL_REFUSED;
}

static void
set_sub(struct dp_ccs *c, struct sub *s, enum substate st)
{
	if (s->st == st)
		return;
	c->st.active -= s->st == SUB_ACTIVE;
	c->st.refused -= s->st == SUB_REFUSED;
	s->st = st;
	c->st.active += st == SUB_ACTIVE;
	c->st.refused += st == SUB_REFUSED;
}

/* ------------------------------------------------------------------ */
/* Reading values */

/* The text of string member k, unescaped, into b ("" when absent). */
static const char *
str_of(struct dp_ccs *c, int k, struct dp_buf *b)
{
	dp_buf_reset(b);
	if (c->val[k] && c->val[k][0] == '"') {
		if (dp_json_unquote(b, c->val[k], c->vlen[k]) < 0)
			dp_buf_reset(b);
	} else if (c->val[k] && c->val[k][0] != 'n') {
		if (dp_buf_add(b, c->val[k], c->vlen[k]) < 0)
			dp_buf_reset(b);
	}
	return b->data ? b->data : "";
}

/*
 * The number in member k as JSON number text: a number as it is, a string
 * holding one without its quotes.  1 with *t and *n set, 0 when absent, null or
 * "", -1 when it is something else.
 */
static int
num_text(const struct dp_ccs *c, int k, const char **t, size_t *n)
{
	const char *v = c->val[k];
	size_t vn = c->vlen[k];

	if (!v || v[0] == 'n')
		return 0;
	if (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
		*t = v;
		*n = vn;
		return 1;
	}
	if (v[0] != '"')
		return -1;
	if (vn == 2)
		return 0;
	{
		const char *why;
		size_t off;
		if (memchr(v, '\\', vn) ||
		    dp_json_check(v + 1, vn - 2, &why, &off) != DP_JSON_NUMBER ||
		    v[1] == ' ' || v[vn - 2] == ' ')
			return -1;
	}
	*t = v + 1;
	*n = vn - 2;
	return 1;
}

/* An integer member (a number or a numeric string): 1, 0 absent, -1 bad. */
static int
int_of(const struct dp_ccs *c, int k, int64_t *out)
{
	const char *t;
	size_t n;
	int64_t v = 0;
	int r = num_text(c, k, &t, &n);

	if (r <= 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9' || v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (t[i] - '0');
	}
	*out = v;
	return 1;
}

/* A time in seconds (and nanoseconds in ns_k, < 0: none) as milliseconds. */
static int
time_of(const struct dp_ccs *c, int k, int ns_k, int64_t *ms)
{
	const char *t;
	size_t n;
	char buf[40];
	int64_t ns = 0;
	int r = num_text(c, k, &t, &n);

	if (r <= 0)
		return r;
	if (int_of(c, k, ms) > 0 && *ms < INT64_C(100000000000)) {
		*ms *= 1000;        /* whole seconds, as the streamer sends them */
	} else {
		if (n >= sizeof(buf))
			return -1;
		memcpy(buf, t, n);
		buf[n] = '\0';
		/* Seconds: the epoch grammar's seconds range. */
		if (dp_time_parse_epoch(buf, ms) < 0 || *ms >= INT64_C(100000000000) * 1000)
			return -1;
	}
	if (ns_k >= 0 && (r = int_of(c, ns_k, &ns)) < 0)
		return -1;
	if (r > 0 && ns < 1000000000)
		*ms += ns / 1000000;
	return *ms > DP_TIME_MAX_MS ? -1 : 0;
}

/* Print at most 80 bytes of a message for a person: controls as '?'. */
static const char *
excerpt(struct dp_buf *b, const char *msg, size_t n)
{
	dp_buf_reset(b);
	for (size_t i = 0; i < n && i < 80; i++) {
		char ch = (unsigned char)msg[i] < ' ' || msg[i] == 0x7f ? '?' : msg[i];
		if (dp_buf_addch(b, ch) < 0)
			break;
	}
	if (n > 80)
		dp_buf_msgf(b, "...");
	return dp_buf_str(b);
}

static enum dp_ccs_event
malformed(struct dp_ccs *c, const char *msg, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Report message msg as skipped, for the reason fmt. */
static enum dp_ccs_event
malformed(struct dp_ccs *c, const char *msg, size_t n, const char *fmt, ...)
{
	va_list ap;

	c->st.malformed++;
	dp_buf_reset(&c->reason);
	va_start(ap, fmt);
	dp_buf_vmsgf(&c->reason, fmt, ap);
	va_end(ap);
	dp_warn("skipped message %llu from the server: %s: %s",
	        (unsigned long long)c->st.messages, dp_buf_str(&c->reason),
	        excerpt(&c->tmp, msg, n));
	return DP_CCS_NOTHING;
}

/* ------------------------------------------------------------------ */
/* Pairs */

/* Append a string member's contents (no quotes) to b. */
static int
add_contents(struct dp_buf *b, const char *lit, size_t n)
{
	if (memchr(lit, '\\', n))
		return dp_json_unquote(b, lit, n);
	return dp_buf_add(b, lit + 1, n - 2);
}

static char *
dup_text(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int
grow_table(struct dp_ccs *c)
{
	size_t cap = c->cap ? c->cap * 2 : 64;
	struct pair **t = calloc(cap, sizeof(*t));

	if (!t)
		return -1;
	for (size_t i = 0; i < c->cap; i++) {
		struct pair *p = c->tab[i];
		if (!p)
			continue;
		size_t j = p->hash & (cap - 1);
		while (t[j])
			j = (j + 1) & (cap - 1);
		t[j] = p;
	}
	free(c->tab);
	c->tab = t;
	c->cap = cap;
	return 0;
}

/*
 * The pair of the message: found, or made.  mk, fk, tk are the members
 * naming market, fsym and tsym; uk the unit or -1.  NULL with *bad set
 * when a name is missing or not a string, NULL alone when memory runs out.
 */
static struct pair *
get_pair(struct dp_ccs *c, int type, int mk, int fk, int tk, int uk, const char **bad)
{
	const int ks[4] = { mk, fk, tk, uk };
	struct dp_buf *key = &c->tmp;
	struct pair *p;
	uint64_t h;
	size_t i;

	char tnum[12];
	int tl = 0;

	dp_buf_reset(key);
	/* The type as text, without printf: this runs for every message. */
	for (int v = type; tl == 0 || v > 0; v /= 10)
		tnum[tl++] = (char)('0' + v % 10);
	while (tl > 0)
		if (dp_buf_addch(key, tnum[--tl]) < 0)
			return NULL;
	for (int j = 0; j < 4; j++) {
		if (ks[j] < 0)
			continue;
		if (!c->val[ks[j]] || c->val[ks[j]][0] != '"') {
			*bad = key_name((unsigned)ks[j]);
			return NULL;
		}
		if (dp_buf_addch(key, '~') < 0 || add_contents(key, c->val[ks[j]], c->vlen[ks[j]]) < 0)
			return NULL;
	}
	h = dp_hash(key->data, key->len);
	if (c->cap) {
		for (i = h & (c->cap - 1); c->tab[i]; i = (i + 1) & (c->cap - 1)) {
			p = c->tab[i];
			if (p->hash == h && p->klen == key->len && memcmp(p->key, key->data, key->len) == 0)
				return p;
		}
	}
	if ((c->npairs + 1) * 2 > c->cap && grow_table(c) < 0)
		return NULL;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	p->type = type;
	p->hash = h;
	p->klen = key->len;
	p->key = dup_text(key->data, key->len);
	p->market = dup_text(c->val[mk], p->market_len = c->vlen[mk]);
	p->fsym = dup_text(c->val[fk], p->fsym_len = c->vlen[fk]);
	p->tsym = dup_text(c->val[tk], p->tsym_len = c->vlen[tk]);
	p->ts_s = p->recv_ms = -1;
	p->unit = uk >= 0 ? dup_text(c->val[uk], c->vlen[uk]) : NULL;
	if (nslots(type))
		p->v = calloc(nslots(type), sizeof(*p->v));
	if (type == 0)
		p->ids = calloc(DP_CCS_DEDUP, sizeof(*p->ids));
	if (!p->key || !p->market || !p->fsym || !p->tsym || (uk >= 0 && !p->unit) ||
	    (nslots(type) && !p->v) || (type == 0 && !p->ids)) {
		pair_free(p);
		return NULL;
	}
	for (i = h & (c->cap - 1); c->tab[i]; i = (i + 1) & (c->cap - 1))
		;
	c->tab[i] = p;
	c->npairs++;
	return p;
}

/* ------------------------------------------------------------------ */
/* Records */

static enum dp_ccs_event
emit(struct dp_ccs *c)
{
	if (dp_buf_addch(&c->rec, '\n') < 0)
		return DP_CCS_NOMEM;
	if (dp_out_write(c->out, c->rec.data, c->rec.len) < 0)
		return DP_CCS_OUTPUT;
	c->st.records++;
	if (c->max_records && c->st.records >= c->max_records)
		return DP_CCS_DONE;
	return DP_CCS_NOTHING;
}

/* Close the record and print it. */
static enum dp_ccs_event
finish_record(struct dp_ccs *c, struct dp_jw *w)
{
	dp_jw_end(w);
	if (dp_jw_finish(w) < 0)
		return DP_CCS_NOMEM;
	return emit(c);
}

static void
head(struct dp_jw *w, const char *type, size_t tn, const struct pair *p)
{
	dp_jw_obj(w);
	dp_jw_pstr(w, &pk[P_TYPE], type, tn);
	dp_jw_pstr(w, &pk[P_SOURCE], "cryptocompare", 13);
	if (p->type == 2 || p->type == 5)
		dp_jw_pstr(w, &pk[P_CHANNEL], p->type == 5 ? "aggregate" : "ticker",
		           p->type == 5 ? 9 : 6);
	dp_jw_praw(w, &pk[P_MARKET], p->market, p->market_len);
	dp_jw_praw(w, &pk[P_FSYM], p->fsym, p->fsym_len);
	dp_jw_praw(w, &pk[P_TSYM], p->tsym, p->tsym_len);
}

static void
kslot(struct dp_jw *w, const struct dp_jw_pkey *k, const struct slot *s)
{
	if (s->set)
		dp_jw_praw(w, k, s->text.data, s->text.len);
	else
		dp_jw_pnull(w, k);
}

/* A time member from a cached text: formatted again only when ms changed. */
static void
ktime(struct dp_jw *w, const struct dp_jw_pkey *k, int64_t ms, int64_t *cached,
      char text[DP_TIME_BUFSZ])
{
	if (*cached != ms) {
		dp_time_format(ms, text);
		*cached = ms;
	}
	dp_jw_pstr(w, k, text, strlen(text));
}

static int
set_slot(struct slot *s, const char *t, size_t n, bool quote)
{
	dp_buf_reset(&s->text);
	if (!t) {
		s->set = false;
		return 0;
	}
	s->set = true;
	if (quote)
		return dp_json_quote(&s->text, t, n);
	return dp_buf_add(&s->text, t, n);
}

/*
 * Check the fields of a tick or candle message and merge them into p.
 * Returns 0, -1 with *bad naming a field of the wrong type (nothing is
 * merged then), or -2 when memory runs out.
 */
static int
merge(struct dp_ccs *c, struct pair *p, const struct field *f, size_t nf, int first,
      const char **bad)
{
	const char *t;
	size_t n;

	for (size_t i = 0; i < nf; i++) {
		const char *v = c->val[first + (int)i];
		if (!v)
			continue;
		if (f[i].str ? !(v[0] == '"' || v[0] == 'n' || v[0] == '-' ||
		                 (v[0] >= '0' && v[0] <= '9'))
		             : num_text(c, first + (int)i, &t, &n) < 0) {
			*bad = f[i].api;
			return -1;
		}
	}
	for (size_t i = 0; i < nf; i++) {
		const char *v = c->val[first + (int)i];
		int r;
		if (!v)
			continue;
		if (f[i].str) {
			if (v[0] == 'n')
				r = set_slot(&p->v[i], NULL, 0, false);
			else
				r = set_slot(&p->v[i], v, c->vlen[first + (int)i], v[0] != '"');
		} else {
			r = num_text(c, first + (int)i, &t, &n) ? set_slot(&p->v[i], t, n, false)
			                                         : set_slot(&p->v[i], NULL, 0, false);
		}
		if (r < 0)
			return -2;
	}
	return 0;
}

/* The first index of a field table in the message's member array. */
static int
first_key(const struct field *f)
{
	return f == tick_fields ? K_TICK : K_OPEN;
}

static enum dp_ccs_event
tick(struct dp_ccs *c, int type, const char *msg, size_t n)
{
	const char *bad = NULL, *t;
	size_t tn;
	int64_t ms;
	struct dp_jw w;
	struct pair *p = get_pair(c, type, K_MARKET, K_FROMSYMBOL, K_TOSYMBOL, -1, &bad);
	int r;

	if (!p)
		return bad ? malformed(c, msg, n, "%s is missing or not a string", bad) : DP_CCS_NOMEM;
	if ((r = time_of(c, K_LASTUPDATE, -1, &ms)) < 0 || num_text(c, K_FLAGS, &t, &tn) < 0)
		return malformed(c, msg, n, "%s is not a %s", r < 0 ? "LASTUPDATE" : "FLAGS",
		                 r < 0 ? "time in seconds" : "number");
	if ((r = merge(c, p, tick_fields, NTICK, first_key(tick_fields), &bad)) == -1)
		return malformed(c, msg, n, "%s is not a number", bad);
	if (r < 0)
		return DP_CCS_NOMEM;
	if (c->val[K_LASTUPDATE] && c->val[K_LASTUPDATE][0] != 'n') {
		p->has_ts = true;
		p->last_ms = ms;
	}
	dp_buf_reset(&c->rec);
	dp_jw_init(&w, &c->rec);
	head(&w, "tick", 4, p);
	if (p->has_ts)
		ktime(&w, &pk[P_TS], p->last_ms, &p->ts_s, p->ts);
	else
		dp_jw_pnull(&w, &pk[P_TS]);
	for (size_t i = 0; i < NTICK; i++)
		kslot(&w, &pk_tick[i], &p->v[i]);
	if (num_text(c, K_FLAGS, &t, &tn) > 0)
		dp_jw_praw(&w, &pk[P_FLAGS], t, tn);
	else
		dp_jw_pnull(&w, &pk[P_FLAGS]);
	p->fresh = true;
	return finish_record(c, &w);
}

static enum dp_ccs_event
candle(struct dp_ccs *c, const char *msg, size_t n)
{
	const char *bad = NULL, *iv = NULL;
	int64_t ms;
	struct dp_jw w;
	struct pair *p = get_pair(c, 24, K_MARKET, K_FROMSYMBOL, K_TOSYMBOL,
	                          c->val[K_UNIT] ? K_UNIT : -1, &bad);
	int r;

	if (!p)
		return bad ? malformed(c, msg, n, "%s is missing or not a string", bad) : DP_CCS_NOMEM;
	if (time_of(c, K_TS, -1, &ms) != 0)
		return malformed(c, msg, n, "TS is missing or not a time in seconds");
	if (p->unit && !(iv = unit_interval(p->unit + 1, strlen(p->unit) - 2)))
		return malformed(c, msg, n, "UNIT is not m, H or D");
	if (!p->has_ts || p->last_ms != ms) {
		/* Another candle: nothing of the last one carries over. */
		for (size_t i = 0; i < NOHLC; i++)
			p->v[i].set = false;
	}
	if ((r = merge(c, p, ohlc_fields, NOHLC, first_key(ohlc_fields), &bad)) == -1)
		return malformed(c, msg, n, "%s is not a number", bad);
	if (r < 0)
		return DP_CCS_NOMEM;
	p->has_ts = true;
	p->last_ms = ms;
	dp_buf_reset(&c->rec);
	dp_jw_init(&w, &c->rec);
	head(&w, "ohlcv", 5, p);
	if (iv)
		dp_jw_pstr(&w, &pk[P_INTERVAL], iv, 2);
	else
		dp_jw_pnull(&w, &pk[P_INTERVAL]);
	ktime(&w, &pk[P_TS], ms, &p->ts_s, p->ts);
	for (size_t i = 0; i < NOHLC; i++)
		kslot(&w, &pk_ohlc[i], &p->v[i]);
	p->fresh = true;
	return finish_record(c, &w);
}

/* 1 when the trade id (hash) was seen among the pair's last ones; else remember it. */
static bool
seen(struct pair *p, uint64_t id)
{
	for (unsigned i = 0; i < p->nids; i++)
		if (p->ids[i] == id)
			return true;
	p->ids[p->ipos] = id;
	p->ipos = (p->ipos + 1) % DP_CCS_DEDUP;
	if (p->nids < DP_CCS_DEDUP)
		p->nids++;
	return false;
}

static enum dp_ccs_event
trade(struct dp_ccs *c, const char *msg, size_t n)
{
	static const int nums[] = { K_P, K_Q, K_TOTAL, K_CCSEQ };
	const char *bad = NULL, *t;
	size_t tn;
	int64_t ts, rts = 0, flags = 0;
	int rr, rf;
	struct dp_jw w;
	struct pair *p = get_pair(c, 0, K_M, K_FSYM, K_TSYM, -1, &bad);

	if (!p)
		return bad ? malformed(c, msg, n, "%s is missing or not a string", bad) : DP_CCS_NOMEM;
	if (time_of(c, K_TS, K_TSNS, &ts) != 0)
		return malformed(c, msg, n, "TS is missing or not a time in seconds");
	if ((rr = time_of(c, K_RTS, K_RTSNS, &rts)) < 0)
		return malformed(c, msg, n, "RTS is not a time in seconds");
	if ((rf = int_of(c, K_F, &flags)) < 0)
		return malformed(c, msg, n, "F is not a number");
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (num_text(c, nums[i], &t, &tn) < 0)
			return malformed(c, msg, n, "%s is not a number", key_name((unsigned)nums[i]));
	}
	if (c->val[K_ID] && !(c->val[K_ID][0] == '"' || c->val[K_ID][0] == '-' ||
	                      (c->val[K_ID][0] >= '0' && c->val[K_ID][0] <= '9')))
		return malformed(c, msg, n, "ID is not a string or a number");
	if (c->val[K_ID] && seen(p, dp_hash(c->val[K_ID], c->vlen[K_ID]) ^
	                            (uint64_t)(c->val[K_ID][0] == '"'))) {
		c->st.duplicates++;
		return DP_CCS_NOTHING;
	}
	dp_buf_reset(&c->rec);
	dp_jw_init(&w, &c->rec);
	head(&w, "trade", 5, p);
	ktime(&w, &pk[P_TS], ts, &p->ts_s, p->ts);
	if (!c->val[K_ID])
		dp_jw_pnull(&w, &pk[P_ID]);
	else if (c->val[K_ID][0] == '"')
		dp_jw_praw(&w, &pk[P_ID], c->val[K_ID], c->vlen[K_ID]);
	else
		dp_jw_pstr(&w, &pk[P_ID], c->val[K_ID], c->vlen[K_ID]);
	if (rf > 0 && (flags & 1))
		dp_jw_pstr(&w, &pk[P_SIDE], "sell", 4);
	else if (rf > 0 && (flags & 2))
		dp_jw_pstr(&w, &pk[P_SIDE], "buy", 3);
	else
		dp_jw_pnull(&w, &pk[P_SIDE]);
	static const struct { int k, p; } out[] = {
		{ K_P, P_PRICE }, { K_Q, P_QUANTITY }, { K_TOTAL, P_TOTAL }, { K_F, P_FLAGS },
	};
	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
		if (num_text(c, out[i].k, &t, &tn) > 0)
			dp_jw_praw(&w, &pk[out[i].p], t, tn);
		else
			dp_jw_pnull(&w, &pk[out[i].p]);
	}
	if (rr > 0 || (rr == 0 && c->val[K_RTS] && c->val[K_RTS][0] != 'n'))
		ktime(&w, &pk[P_RECV_TS], rts, &p->recv_ms, p->recv);
	else
		dp_jw_pnull(&w, &pk[P_RECV_TS]);
	if (num_text(c, K_CCSEQ, &t, &tn) > 0)
		dp_jw_praw(&w, &pk[P_CCSEQ], t, tn);
	else
		dp_jw_pnull(&w, &pk[P_CCSEQ]);
	p->fresh = true;
	return finish_record(c, &w);
}

/* ------------------------------------------------------------------ */
/* Gaps */

void
dp_ccs_lost(struct dp_ccs *c, int64_t now_ms, const char *why)
{
	/* Before the first data there is nothing to miss yet. */
	if (c->gap || !c->data)
		return;
	c->gap = true;
	c->gap_from = c->last_msg_ms ? c->last_msg_ms : now_ms;
	dp_buf_reset(&c->gap_why);
	dp_buf_msgf(&c->gap_why, "%s", why);
}

static void
report_gap(struct dp_ccs *c, int64_t to, bool open)
{
	char a[DP_TIME_BUFSZ], b[DP_TIME_BUFSZ], d[48];
	int64_t len = to > c->gap_from ? to - c->gap_from : 0;

	c->gap = false;
	c->st.gaps++;
	c->st.gap_ms += len;
	dp_warn("gap %llu: no data from %s %s %s (%s): %s", (unsigned long long)c->st.gaps,
	        dp_time_format(c->gap_from, a), open ? "until the end," : "to",
	        dp_time_format(to, b), dp_duration_format(len, d), dp_buf_str(&c->gap_why));
}

void
dp_ccs_finish(struct dp_ccs *c, int64_t now_ms)
{
	if (c->gap)
		report_gap(c, now_ms, true);
}

/* ------------------------------------------------------------------ */
/* Messages */

static enum dp_ccs_event
control(struct dp_ccs *c, int type)
{
	struct dp_buf m = DP_BUF_INIT, info = DP_BUF_INIT, par = DP_BUF_INIT;
	enum dp_ccs_event ev = DP_CCS_NOTHING;
	struct sub *s;

	str_of(c, K_MESSAGE, &m);
	str_of(c, K_INFO, &info);
	str_of(c, K_PARAMETER, &par);
	switch (type) {
	case 20:
		dp_info("connected: %s", dp_buf_str(&m));
		break;
	case 16:
		if ((s = find_sub(c, str_of(c, K_SUB, &c->tmp))) != NULL && s->st == SUB_PENDING)
			set_sub(c, s, SUB_ACTIVE);
		dp_info("subscribed to %s", dp_buf_str(&c->tmp));
		ev = check_subscribed(c, false);
		break;
	case 3:
		ev = check_subscribed(c, true);
		break;
	case 401:
	case 429:
		dp_buf_reset(&c->reason);
		dp_buf_msgf(&c->reason, "%d %s%s%s%s%s%s", type, dp_buf_str(&m),
		            info.len ? ": " : "", dp_buf_str(&info), par.len ? " (parameter " : "",
		            dp_buf_str(&par), par.len ? ")" : "");
		ev = type == 401 ? DP_CCS_UNAUTHORIZED : DP_CCS_RATELIMITED;
		break;
	case 500:
		if (strcmp(dp_buf_str(&m), "FORCE_DISCONNECT") == 0) {
			dp_buf_reset(&c->reason);
			dp_buf_msgf(&c->reason, "500 FORCE_DISCONNECT%s%s", info.len ? ": " : "",
			            dp_buf_str(&info));
			ev = DP_CCS_RECONNECT;
			break;
		}
		s = find_sub(c, dp_buf_str(&par));
		if (s && strcmp(dp_buf_str(&m), "SUBSCRIPTION_ALREADY_ACTIVE") == 0) {
			set_sub(c, s, SUB_ACTIVE);
		} else if (s && s->st != SUB_REFUSED) {
			dp_err("subscription %s refused: %s%s%s", s->text, dp_buf_str(&m),
			       info.len ? ": " : "", dp_buf_str(&info));
			set_sub(c, s, SUB_REFUSED);
		} else {
			dp_warn("the server reports %s%s%s%s%s%s", dp_buf_str(&m),
			        info.len ? ": " : "", dp_buf_str(&info), par.len ? " (parameter " : "",
			        dp_buf_str(&par), par.len ? ")" : "");
		}
		ev = check_subscribed(c, false);
		break;
	default:
		break;          /* 999 heartbeats, 17, 18 and the rest */
	}
	dp_buf_free(&m);
	dp_buf_free(&info);
	dp_buf_free(&par);
	return ev;
}

static enum dp_ccs_event
raw(struct dp_ccs *c, const char *msg, size_t n)
{
	dp_buf_reset(&c->rec);
	/* One message a line: white space with line ends goes, nothing else changes. */
	if (memchr(msg, '\n', n) || memchr(msg, '\r', n)) {
		if (dp_json_compact(&c->rec, msg, n) < 0)
			return DP_CCS_NOMEM;
	} else if (dp_buf_add(&c->rec, msg, n) < 0) {
		return DP_CCS_NOMEM;
	}
	return emit(c);
}

/* A member of a message: kept when it is one of ours (the last of duplicates). */
static int
on_member(void *arg, const char *k, size_t kn, const char *v, size_t vn, enum dp_json_type t)
{
	struct dp_ccs *c = arg;
	int key = lookup_key(k, kn);

	(void)t;
	if (key < 0)
		return 0;
	if (!c->val[key])
		c->set[c->nset++] = (unsigned char)key;
	c->val[key] = v;
	c->vlen[key] = vn;
	return 0;
}

void
dp_ccs_observe(struct dp_ccs *c)
{
	static const char *const reason[] = { "reason", NULL };
	static const char *const sub[] = { "subscription", NULL };

	if (!dp_obs_on())
		return;
	if (!c->obs_out) {
		c->obs_out = dp_metric_one(dp_obs_family(DP_OBS_RECORDS_OUT, NULL));
		c->obs_bad = dp_metric_series(dp_obs_family(DP_OBS_RECORDS_BAD, reason),
		                              (const char *const[]){ "malformed" });
	}
	dp_series_add(c->obs_out, (double)(c->st.records - c->obs_records));
	dp_series_add(c->obs_bad, (double)(c->st.malformed - c->obs_malformed));
	c->obs_records = c->st.records;
	c->obs_malformed = c->st.malformed;
	for (size_t i = 0; i < c->cap; i++) {
		struct pair *p = c->tab[i];
		if (!p || !p->fresh)
			continue;
		p->fresh = false;
		if (!p->feed)
			p->feed = dp_health_feed(p->key);
		dp_health_data(p->feed);
		if (!p->has_ts)
			continue;
		if (!p->ts_gauge)
			p->ts_gauge = dp_metric_series(dp_obs_family(DP_OBS_LAST_TIMESTAMP, sub),
			                               (const char *const[]){ p->key });
		dp_series_set(p->ts_gauge, (double)p->last_ms / 1000);
	}
}

enum dp_ccs_event
dp_ccs_message(struct dp_ccs *c, const char *msg, size_t n, int64_t now_ms)
{
	const char *why;
	size_t off;
	int64_t type;
	int r;
	enum dp_json_type jt;
	enum dp_ccs_event ev;

	c->st.messages++;
	c->last_msg_ms = now_ms;
	/* Forget the last message's members: only those it had. */
	for (size_t i = 0; i < c->nset; i++)
		c->val[c->set[i]] = NULL;
	c->nset = 0;
	/* Checked and read in one pass (a bad text's members go unused). */
	jt = dp_json_check_members(msg, n, on_member, c, &why, &off);
	if (jt == DP_JSON_INVALID)
		return malformed(c, msg, n, "not valid JSON (%s at byte %zu)", why, off);
	if (jt != DP_JSON_OBJECT)
		return malformed(c, msg, n, "not a JSON object");
	if ((r = int_of(c, K_TYPE, &type)) <= 0 || type > 100000)
		return malformed(c, msg, n, "%s", r < 0 ? "TYPE is not a number" : "no TYPE");
	if (type != 0 && type != 2 && type != 5 && type != 24) {
		ev = control(c, (int)type);
		if (c->raw && ev != DP_CCS_NOMEM) {
			enum dp_ccs_event e = raw(c, msg, n);
			if (e != DP_CCS_NOTHING)
				return e;
		}
		return ev;
	}
	if (c->gap)
		report_gap(c, now_ms, false);
	c->data = true;
	if (c->raw)
		return raw(c, msg, n);
	if (type == 0)
		return trade(c, msg, n);
	if (type == 24)
		return candle(c, msg, n);
	return tick(c, (int)type, msg, n);
}
