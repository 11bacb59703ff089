/*
 * fuzz_jqfast -- the jq subset answered on raw text (lib/jq/fast.h)
 * against libjq on the same expression and record.
 *
 * Input: the expression, a newline, the record.  When the subset
 * compiles the expression and answers the record (a value or none),
 * libjq must give the same, all of it: for none no result and no error,
 * else one result equal, as a JSON value, to the subset's text read by
 * libjq, and then neither another result nor an error.  (Operands the
 * subset evaluated in another order than jq's answered "none" where jq
 * raised an error.)  The answer "libjq must decide" is always allowed.  Left out of the
 * comparison, on purpose: integers beyond 2^53 (libjq 1.6 rounds them,
 * the subset keeps them: that is its point), and records libjq cannot
 * read (lone surrogate escapes, more than 256 levels).
 *
 * Compiling for libjq costs tens of milliseconds (its builtins), so the
 * last expressions are kept compiled.
 */
#include <stdbool.h>

#include <jq.h>
#include <jv.h>

#include "core/buf.h"
#include "fuzz.h"
#include "jq/fast.h"
#include "json/scan.h"

#define CACHE 64

static struct {
	char *src;
	jq_state *jq;
	bool ok;
} cache[CACHE];
static unsigned next_slot;

static void
no_messages(void *data, jv msg)
{
	jv_free(msg);
}

/* libjq compiled for src (kept), or NULL when libjq refuses it. */
static jq_state *
compiled(const char *src)
{
	for (int i = 0; i < CACHE; i++)
		if (cache[i].src && !strcmp(cache[i].src, src))
			return cache[i].ok ? cache[i].jq : NULL;
	unsigned k = next_slot++ % CACHE;
	if (cache[k].jq)
		jq_teardown(&cache[k].jq);
	free(cache[k].src);
	cache[k].src = strdup(src);
	cache[k].jq = jq_init();
	FUZZ_CHECK(cache[k].src && cache[k].jq);
	jq_set_error_cb(cache[k].jq, no_messages, NULL);
	cache[k].ok = jq_compile(cache[k].jq, src);
	return cache[k].ok ? cache[k].jq : NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

/* 1 when s holds an integer literal beyond 2^53 (outside strings). */
static int
has_big_int(const char *s, size_t n)
{
	const char *at;
	size_t len;

	return dp_json_big_int(s, n, &at, &len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const char *why;
	size_t off;

	if (!nl || memchr(data, '\0', (size_t)(nl - data)))
		return 0;
	char *src = fuzz_str(data, (size_t)(nl - data));
	size_t n = size - (size_t)(nl + 1 - data);
	/*
	 * The record is followed by digits, as a number at the end of a Kafka
	 * payload may be followed by anything: nothing may read past n.
	 */
	char *rec = malloc(n + 9);
	FUZZ_CHECK(rec != NULL);
	memcpy(rec, nl + 1, n);
	memcpy(rec + n, "99999999", 9);
	struct dp_jqf *f = dp_jqf_compile(src);
	if (!f || dp_json_check(rec, n, &why, &off) == DP_JSON_INVALID) {
		dp_jqf_free(f);
		free(src);
		free(rec);
		return 0;
	}
	struct dp_jqf_run run = DP_JQF_RUN_INIT;
	enum dp_json_type t;
	const char *v;
	size_t vn;
	bool truth;
	enum dp_jqf_result r = dp_jqf_eval(f, &run, rec, n, &t, &v, &vn);
	FUZZ_CHECK(r != DP_JQF_NOMEM);
	struct dp_buf text = DP_BUF_INIT;
	if (r == DP_JQF_VALUE) {
		FUZZ_CHECK(dp_json_check(v, vn, &why, &off) == t);
		FUZZ_CHECK(dp_json_compact(&text, v, vn) == 0);
	}
	/* The condition form agrees with the value form. */
	enum dp_jqf_result r2 = dp_jqf_test(f, &run, rec, n, &truth);
	FUZZ_CHECK(r2 == (r == DP_JQF_EMPTY ? DP_JQF_VALUE : r));
	if (r == DP_JQF_VALUE)
		FUZZ_CHECK(truth == (t != DP_JSON_NULL && t != DP_JSON_FALSE));
	else if (r == DP_JQF_EMPTY)
		FUZZ_CHECK(!truth);

	jv in = jv_parse_sized(rec, (int)n);
	jq_state *jq;
	if ((r == DP_JQF_VALUE || r == DP_JQF_EMPTY) && jv_is_valid(in) &&
	    !has_big_int(rec, n) && !has_big_int(src, strlen(src)) && (jq = compiled(src))) {
		jq_start(jq, jv_copy(in), 0);
		jv first = jq_next(jq);
		if (r == DP_JQF_EMPTY) {
			/* No result and no error. */
			FUZZ_CHECK(!jv_is_valid(first) && !jv_invalid_has_msg(jv_copy(first)));
		} else {
			if (!jv_is_valid(first)) {
				jv msg = jv_invalid_get_msg(jv_copy(first));
				fprintf(stderr, "jq: %s\nsubset: %s\n",
				        jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "(none)",
				        text.data);
				jv_free(msg);
			}
			FUZZ_CHECK(jv_is_valid(first));
			jv mine = jv_parse_sized(text.data, (int)text.len);
			if (!jv_equal(jv_copy(mine), jv_copy(first))) {
				jv d = jv_dump_string(jv_copy(first), 0);
				fprintf(stderr, "jq: %s\nsubset: %s\n", jv_string_value(d), text.data);
				jv_free(d);
				FUZZ_CHECK(!"the subset gives jq's result");
			}
			jv_free(mine);
			/* One result, then the end: no second one, no error after it. */
			jv after = jq_next(jq);
			FUZZ_CHECK(!jv_is_valid(after) && !jv_invalid_has_msg(jv_copy(after)));
			jv_free(after);
		}
		jv_free(first);
	}
	jv_free(in);
	dp_buf_free(&text);
	dp_jqf_run_free(&run);
	dp_jqf_free(f);
	free(src);
	free(rec);
	return 0;
}
