/*
 * cc/price.c -- planning the /data/pricemultifull requests of a poll, and
 * turning their answers into records (cc/rest.h, "Price requests").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc/rest.h"
#include "core/log.h"

#define ALL SIZE_MAX

int
dp_cc_prices_init(struct dp_cc_prices *p, char *const *fsyms, size_t nf, char *const *tsyms,
                  size_t nt)
{
	memset(p, 0, sizeof(*p));
	p->fsyms = fsyms;
	p->tsyms = tsyms;
	p->nf = nf;
	p->nt = nt;
	p->pairs = calloc(nf * nt, sizeof(*p->pairs));
	p->single = calloc(nf, sizeof(*p->single));
	p->req = calloc(nt, sizeof(*p->req));
	return p->pairs && p->single && p->req ? 0 : -1;
}

void
dp_cc_prices_free(struct dp_cc_prices *p)
{
	free(p->pairs);
	free(p->single);
	free(p->req);
	p->pairs = NULL;
	p->single = NULL;
	p->req = NULL;
}

static unsigned char *
pair_at(const struct dp_cc_prices *p, size_t f, size_t t)
{
	return &p->pairs[f * p->nt + t];
}

void
dp_cc_prices_start(struct dp_cc_prices *p)
{
	memset(p->pairs, DP_CC_WANTED, p->nf * p->nt);
	memset(p->single, 0, p->nf * sizeof(*p->single));
	p->cur = ALL;
	p->cur_t = ALL;
	p->missing = false;
}

bool
dp_cc_prices_next(struct dp_cc_prices *p)
{
	for (size_t f = 0; f < p->nf; f++) {
		for (size_t t = 0; t < p->nt; t++) {
			if (*pair_at(p, f, t) == DP_CC_WANTED) {
				p->cur = f;
				p->cur_t = p->single[f] ? t : ALL;
				return true;
			}
		}
	}
	return false;
}

/* 1 when pair (f, t) is part of the planned request. */
static bool
asked(const struct dp_cc_prices *p, size_t f, size_t t)
{
	if (p->cur == ALL)
		return true;
	return f == p->cur && (p->cur_t == ALL || t == p->cur_t) &&
	       *pair_at(p, f, t) == DP_CC_WANTED;
}

int
dp_cc_prices_url(struct dp_cc_prices *p, struct dp_buf *url, const char *base,
                 const char *market)
{
	const char *const *fs = (const char *const *)p->fsyms;
	size_t nf = p->nf, nt = 0;

	if (p->cur != ALL) {
		fs = (const char *const *)&p->fsyms[p->cur];
		nf = 1;
	}
	for (size_t t = 0; t < p->nt; t++)
		if (p->cur == ALL || (p->cur_t == ALL ? *pair_at(p, p->cur, t) == DP_CC_WANTED
		                                      : t == p->cur_t))
			p->req[nt++] = p->tsyms[t];
	return dp_cc_url_price(url, base, fs, nf, p->req, nt, market);
}

int
dp_cc_prices_take(struct dp_cc_prices *p, jv root, bool raw, struct dp_buf *batch,
                  struct dp_buf *err)
{
	struct dp_buf fkey = DP_BUF_INIT, tkey = DP_BUF_INIT;
	int rc = 0;

	for (size_t f = 0; f < p->nf && rc == 0; f++) {
		for (size_t t = 0; t < p->nt && rc == 0; t++) {
			jv obj;
			int r;
			if (!asked(p, f, t))
				continue;
			dp_buf_reset(&fkey);
			dp_buf_reset(&tkey);
			r = dp_cc_price_find(root, p->fsyms[f], p->tsyms[t], &obj, &fkey, &tkey, err);
			if (r == 1) {
				r = raw ? dp_cc_dump(batch, obj)
				        : dp_cc_price_record(batch, obj, fkey.data, tkey.data, err);
				if (r == 0)
					r = dp_buf_addch(batch, '\n');
				jv_free(obj);
				if (r < 0 && !err->len)
					dp_buf_msgf(err, "out of memory");
				if (r == 0)
					*pair_at(p, f, t) = DP_CC_DONE;
			}
			if (r < 0) {
				rc = -1;
			} else if (r == 0 && *pair_at(p, f, t) == DP_CC_WANTED) {
				dp_warn("no price for %s/%s in the response", p->fsyms[f], p->tsyms[t]);
				*pair_at(p, f, t) = DP_CC_ABSENT;
				p->missing = true;
			}
		}
	}
	dp_buf_free(&fkey);
	dp_buf_free(&tkey);
	return rc;
}

void
dp_cc_prices_refused(struct dp_cc_prices *p, const char *api_message, const char *msg)
{
	size_t named = 0, nasked = 0, last_f = 0, last_t = 0;

	p->missing = true;
	for (size_t f = 0; f < p->nf; f++) {
		for (size_t t = 0; t < p->nt; t++) {
			if (!asked(p, f, t) || *pair_at(p, f, t) != DP_CC_WANTED)
				continue;
			nasked++;
			last_f = f;
			last_t = t;
			if (dp_cc_names_pair(api_message, p->fsyms[f], p->tsyms[t])) {
				dp_warn("no price for %s/%s: %s", p->fsyms[f], p->tsyms[t], msg);
				*pair_at(p, f, t) = DP_CC_ABSENT;
				named++;
			}
		}
	}
	if (!named && nasked == 1) {
		/* One pair asked: the message is about it, however it names it. */
		dp_warn("no price for %s/%s: %s", p->fsyms[last_f], p->tsyms[last_t], msg);
		*pair_at(p, last_f, last_t) = DP_CC_ABSENT;
	} else if (!named && (p->cur != ALL || p->nf == 1)) {
		/* One fsym, a message naming no pair asked: ask its pairs one by one. */
		p->single[p->cur != ALL ? p->cur : 0] = true;
	}
}
