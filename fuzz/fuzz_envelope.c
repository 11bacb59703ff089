/*
 * fuzz_envelope -- the envelope reader and writer (lib/json/envelope.h):
 * parse -> print -> parse gives the same envelope, and printing it again
 * gives the same bytes.  The printed form is one compact JSON object.  A
 * refusal always says why.
 */
#include "core/buf.h"
#include "fuzz.h"
#include "json/envelope.h"
#include "json/scan.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static int
same_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	if (!a || !b)
		return !a && !b;
	return an == bn && memcmp(a, b, an) == 0;
}

static void
check_same(const struct dp_envelope *x, const struct dp_envelope *y)
{
	FUZZ_CHECK((!x->topic && !y->topic) || (x->topic && y->topic && !strcmp(x->topic, y->topic)));
	FUZZ_CHECK(x->partition == y->partition && x->offset == y->offset);
	FUZZ_CHECK(x->has_timestamp == y->has_timestamp && x->timestamp == y->timestamp);
	FUZZ_CHECK(same_bytes(x->key, x->key_len, y->key, y->key_len));
	FUZZ_CHECK(same_bytes(x->value, x->value_len, y->value, y->value_len));
	FUZZ_CHECK(x->nhdrs == y->nhdrs);
	for (size_t i = 0; i < x->nhdrs; i++) {
		FUZZ_CHECK(!strcmp(x->hdrs[i].name, y->hdrs[i].name));
		FUZZ_CHECK(same_bytes(x->hdrs[i].value, x->hdrs[i].len, y->hdrs[i].value,
		                      y->hdrs[i].len));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dp_envelope a, b;
	struct dp_buf err = DP_BUF_INIT, p1 = DP_BUF_INIT, p2 = DP_BUF_INIT;
	const char *why;
	size_t off;
	int compact;

	if (dp_envelope_parse((const char *)data, size, &a, &err) < 0) {
		FUZZ_CHECK(err.len > 0);
		dp_envelope_clear(&a);
		dp_buf_free(&err);
		return 0;
	}
	FUZZ_CHECK(dp_envelope_print(&p1, &a) == 0);
	FUZZ_CHECK(dp_json_check_compact(p1.data, p1.len, &why, &off, &compact) ==
	           DP_JSON_OBJECT && compact);
	if (dp_envelope_parse(p1.data, p1.len, &b, &err) < 0) {
		fprintf(stderr, "printed %s\nrefused: %s\n", p1.data, dp_buf_str(&err));
		FUZZ_CHECK(!"the printed envelope reads back");
	}
	check_same(&a, &b);
	FUZZ_CHECK(dp_envelope_print(&p2, &b) == 0);
	FUZZ_CHECK(p1.len == p2.len && memcmp(p1.data, p2.data, p1.len) == 0);
	dp_envelope_clear(&a);
	dp_envelope_clear(&b);
	dp_buf_free(&err);
	dp_buf_free(&p1);
	dp_buf_free(&p2);
	return 0;
}
