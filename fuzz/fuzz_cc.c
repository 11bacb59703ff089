/*
 * fuzz_cc -- the CryptoCompare response decoders (lib/cc/rest.h) on any body.
 *
 * Whatever the body: the classification says why when it is not OK; an
 * OK body is searched for every RAW pair it holds and read as candles of
 * every interval; every record dp-fetch would print from it (price,
 * ohlcv, the raw candle, --raw's dump) is one valid, compact JSON object
 * or value.  A decoder either gives such a record or a reason, never
 * broken JSON and never undefined behaviour.
 */
#include <jv.h>

#include "cc/rest.h"
#include "core/buf.h"
#include "fuzz.h"
#include "json/scan.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void
check_json(const struct dp_buf *b, enum dp_json_type want)
{
	const char *why;
	size_t off;
	int compact;
	enum dp_json_type t = dp_json_check_compact(b->data, b->len, &why, &off, &compact);

	if (t == DP_JSON_INVALID)
		fprintf(stderr, "not JSON (%s at %zu): %s\n", why, off, b->data);
	FUZZ_CHECK(t != DP_JSON_INVALID && compact);
	FUZZ_CHECK(want == DP_JSON_INVALID || t == want);
}

/* A key usable as fsym or tsym: a C string. */
static const char *
key_of(jv k)
{
	const char *s = jv_string_value(k);

	return strlen(s) == (size_t)jv_string_length_bytes(jv_copy(k)) ? s : NULL;
}

static void
prices(jv root, const char *fsym, const char *tsym)
{
	struct dp_buf fkey = DP_BUF_INIT, tkey = DP_BUF_INIT, err = DP_BUF_INIT, out = DP_BUF_INIT;
	jv obj;
	int rc = dp_cc_price_find(root, fsym, tsym, &obj, &fkey, &tkey, &err);

	if (rc < 0)
		FUZZ_CHECK(err.len > 0);
	if (rc == 1) {
		if (dp_cc_price_record(&out, obj, fkey.data, tkey.data, &err) == 0)
			check_json(&out, DP_JSON_OBJECT);
		else
			FUZZ_CHECK(err.len > 0);
	}
	jv_free(obj);
	dp_buf_free(&fkey);
	dp_buf_free(&tkey);
	dp_buf_free(&err);
	dp_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dp_buf msg = DP_BUF_INIT, api = DP_BUF_INIT, out = DP_BUF_INIT;
	jv root;
	int type;
	enum dp_cc_verdict v = dp_cc_parse((const char *)data, size, &root, &type, &msg, &api);

	if (v != DP_CC_OK) {
		FUZZ_CHECK(msg.len > 0 && jv_get_kind(root) == JV_KIND_NULL);
		(void)dp_cc_names_pair(api.data ? api.data : "", "BTC", "USD");
		goto out;
	}
	FUZZ_CHECK(jv_get_kind(root) == JV_KIND_OBJECT);
	FUZZ_CHECK(dp_cc_dump(&out, root) == 0);
	check_json(&out, DP_JSON_OBJECT);

	prices(root, "BTC", "USD");
	jv raw = jv_object_get(jv_copy(root), jv_string("RAW"));
	if (jv_get_kind(raw) == JV_KIND_OBJECT) {
		jv_object_foreach(raw, fk, fv) {
			const char *f = key_of(fk);
			if (f && jv_get_kind(fv) == JV_KIND_OBJECT) {
				jv_object_foreach(fv, tk, tv) {
					const char *t = key_of(tk);
					if (t)
						prices(root, f, t);
					jv_free(tk);
					jv_free(tv);
				}
			} else if (f) {
				prices(root, f, "USD");
			}
			jv_free(fk);
			jv_free(fv);
		}
	}
	jv_free(raw);

	for (int iv = DP_CC_MINUTE; iv <= DP_CC_DAY; iv++) {
		struct dp_cc_candle *c;
		size_t n;
		struct dp_buf err = DP_BUF_INIT;
		if (dp_cc_candles(root, (enum dp_cc_interval)iv, true, &c, &n, &err) < 0) {
			FUZZ_CHECK(err.len > 0);
			dp_buf_free(&err);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			struct dp_buf rec = DP_BUF_INIT, r = DP_BUF_INIT;
			FUZZ_CHECK(c[i].raw != NULL);
			FUZZ_CHECK(dp_buf_addstr(&r, c[i].raw) == 0);
			check_json(&r, DP_JSON_OBJECT);
			FUZZ_CHECK(dp_cc_ohlcv_record(&rec, "BTC", "USD", (enum dp_cc_interval)iv,
			                              &c[i]) == 0);
			check_json(&rec, DP_JSON_OBJECT);
			(void)dp_cc_candle_is_zero(&c[i]);
			dp_buf_free(&rec);
			dp_buf_free(&r);
		}
		dp_cc_candles_free(c, n);
		dp_buf_free(&err);
	}
out:
	jv_free(root);
	dp_buf_free(&msg);
	dp_buf_free(&api);
	dp_buf_free(&out);
	return 0;
}
