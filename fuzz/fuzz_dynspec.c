/*
 * fuzz_dynspec -- dp-coord's records (lib/dyn/spec.h), which other
 * programs write: a registry spec, a request or a decision (byte 0
 * chooses: bit 1 a decision, else bit 0 a request), parsed, printed,
 * parsed again.  The second print is the first, byte for byte, and it is
 * one compact JSON object; a refusal says why, and a refused request
 * that can still be answered carries its reason.
 */
#include "core/buf.h"
#include "dyn/spec.h"
#include "fuzz.h"
#include "json/scan.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void
check_json(const struct dp_buf *b)
{
	const char *why;
	size_t off;
	int compact;

	FUZZ_CHECK(dp_json_check_compact(b->data, b->len, &why, &off, &compact) ==
	           DP_JSON_OBJECT && compact);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dp_buf err = DP_BUF_INIT, p1 = DP_BUF_INIT, p2 = DP_BUF_INIT;

	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	if (data[0] & 2) {
		struct dp_dyn_decision a, b;
		if (dp_dyn_decision_parse(s, n, &a, &err) == 0) {
			FUZZ_CHECK(dp_dyn_decision_json(&p1, &a) == 0);
			check_json(&p1);
			if (dp_dyn_decision_parse(p1.data, p1.len, &b, &err) < 0) {
				fprintf(stderr, "printed %s\nrefused: %s\n", p1.data, dp_buf_str(&err));
				FUZZ_CHECK(!"a printed decision reads back");
			}
			FUZZ_CHECK(dp_dyn_decision_json(&p2, &b) == 0);
			FUZZ_CHECK(p1.len == p2.len && !memcmp(p1.data, p2.data, p1.len));
			dp_dyn_decision_clear(&b);
		} else {
			FUZZ_CHECK(err.len > 0);
		}
		dp_dyn_decision_clear(&a);
	} else if (data[0] & 1) {
		struct dp_dyn_request a, b;
		if (dp_dyn_request_parse(s, n, &a, &err) == 0) {
			FUZZ_CHECK(dp_dyn_request_json(&p1, &a) == 0);
			check_json(&p1);
			if (dp_dyn_request_parse(p1.data, p1.len, &b, &err) < 0) {
				fprintf(stderr, "printed %s\nrefused: %s\n", p1.data, dp_buf_str(&err));
				FUZZ_CHECK(!"a printed request reads back");
			}
			FUZZ_CHECK(dp_dyn_request_json(&p2, &b) == 0);
			FUZZ_CHECK(p1.len == p2.len && !memcmp(p1.data, p2.data, p1.len));
			dp_dyn_request_clear(&b);
		} else {
			FUZZ_CHECK(err.len > 0);
			/* Answerable: both names and the reason, or neither name. */
			FUZZ_CHECK((a.request_id != NULL) == (a.topic != NULL));
			FUZZ_CHECK(!a.request_id || (a.invalid && *a.invalid));
		}
		dp_dyn_request_clear(&a);
	} else {
		struct dp_dyn_spec a, b, c;
		if (dp_dyn_spec_parse(s, n, &a, &err) == 0) {
			FUZZ_CHECK(dp_dyn_spec_json(&p1, &a) == 0);
			check_json(&p1);
			if (dp_dyn_spec_parse(p1.data, p1.len, &b, &err) < 0) {
				fprintf(stderr, "printed %s\nrefused: %s\n", p1.data, dp_buf_str(&err));
				FUZZ_CHECK(!"a printed spec reads back");
			}
			FUZZ_CHECK(dp_dyn_spec_json(&p2, &b) == 0);
			FUZZ_CHECK(p1.len == p2.len && !memcmp(p1.data, p2.data, p1.len));
			/* A copy prints the same too. */
			dp_buf_reset(&p2);
			FUZZ_CHECK(dp_dyn_spec_copy(&c, &a) == 0 && dp_dyn_spec_json(&p2, &c) == 0);
			FUZZ_CHECK(p1.len == p2.len && !memcmp(p1.data, p2.data, p1.len));
			dp_dyn_spec_clear(&b);
			dp_dyn_spec_clear(&c);
		} else {
			FUZZ_CHECK(err.len > 0);
		}
		dp_dyn_spec_clear(&a);
	}
	dp_buf_free(&err);
	dp_buf_free(&p1);
	dp_buf_free(&p2);
	return 0;
}
