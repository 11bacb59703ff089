/*
 * fuzz_json -- the JSON scanner (lib/json/scan.h): its functions against each
 * other, and against libjq where the two must agree.
 *
 * On every input:
 *   - dp_json_check, _compact, _member and _members give one verdict;
 *   - valid text: dp_json_compact's output is valid, compact, of the same
 *     type, and the input itself when that was compact already;
 *     dp_json_next_member / _next_element walk exactly what the scanner
 *     saw; dp_json_get and dp_json_check_member find the last of
 *     duplicate names; every string decodes, re-quotes and decodes to the
 *     same bytes; dp_json_big_int only ever points at a big integer;
 *   - where libjq 1.6 and RFC 8259 agree (ASCII text, no surrogate
 *     escapes, at most 256 levels, libjq's limit): what dp accepts, libjq
 *     accepts, as a value of the same type, equal to the compacted one.
 * The opposite direction (dp refuses what a reference accepts) is
 * checked against Python's json module over the corpus, by
 * fuzz/json_reference.py: libjq 1.6 accepts more than RFC 8259 (nan, 01).
 */
#include <jv.h>

#include "core/buf.h"
#include "fuzz.h"
#include "json/scan.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

struct visit {
	const char *s;
	size_t n;
	size_t pos;             /* the walk dp_json_next_member makes alongside */
	size_t count;
};

/* dp_json_check_members' callback: the same members as the walk, in order. */
static int
visit(void *ctx, const char *key, size_t klen, const char *v, size_t vn, enum dp_json_type t)
{
	struct visit *w = ctx;
	const char *k2, *v2;
	size_t klen2, vn2;
	enum dp_json_type t2 = dp_json_next_member(w->s, w->n, &w->pos, &k2, &klen2, &v2, &vn2);

	FUZZ_CHECK(t2 == t && k2 == key && klen2 == klen && v2 == v && vn2 == vn);
	w->count++;
	return 0;
}

/* A string literal decodes, and quote + decode gives the same bytes. */
static void
check_string(const char *s, size_t n)
{
	struct dp_buf a = DP_BUF_INIT, q = DP_BUF_INIT, b = DP_BUF_INIT, x = DP_BUF_INIT;
	const char *why;
	size_t off, bad = 0;

	FUZZ_CHECK(dp_json_check(s, n, &why, &off) == DP_JSON_STRING);
	FUZZ_CHECK(dp_json_unquote(&a, s, n) == 0);
	FUZZ_CHECK(dp_json_quote(&q, a.data ? a.data : "", a.len) == 0);
	FUZZ_CHECK(dp_json_check(q.data, q.len, &why, &off) == DP_JSON_STRING);
	FUZZ_CHECK(dp_json_unquote(&b, q.data, q.len) == 0);
	FUZZ_CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
	int rc = dp_json_unquote_exact(&x, s, n, &bad);
	if (rc == 0) {
		FUZZ_CHECK(x.len == a.len && (a.len == 0 || memcmp(x.data, a.data, a.len) == 0));
	} else {
		/* Only a lone surrogate escape, and it is where it says. */
		FUZZ_CHECK(rc == -2 && bad + 6 <= n && s[bad] == '\\' && s[bad + 1] == 'u');
		FUZZ_CHECK(dp_hexval(s[bad + 2]) == 0xd);
	}
	dp_buf_free(&a);
	dp_buf_free(&q);
	dp_buf_free(&b);
	dp_buf_free(&x);
}

static void check_value(const char *s, size_t n, int depth);

static void
check_object(const char *s, size_t n, int depth)
{
	size_t pos = 0, klen, vn, count = 0;
	const char *k, *v, *why;
	enum dp_json_type t;
	struct dp_buf name = DP_BUF_INIT;

	while ((t = dp_json_next_member(s, n, &pos, &k, &klen, &v, &vn)) != DP_JSON_INVALID) {
		count++;
		FUZZ_CHECK(v >= s && v + vn <= s + n && k >= s && k + klen <= v);
		check_string(k, klen);
		check_value(v, vn, depth + 1);
		FUZZ_CHECK(dp_json_type_of(v) == t);
		if (depth > 0)
			continue;
		/* At the top: the last member of this name is what get and
		 * check_member find (names with NUL cannot be asked for). */
		dp_buf_reset(&name);
		FUZZ_CHECK(dp_json_unquote(&name, k, klen) == 0 && dp_buf_addstr(&name, "") == 0);
		if (strlen(name.data) != name.len)
			continue;
		const char *last = NULL, *k2, *v2, *gv, *cv;
		size_t p2 = 0, k2n, v2n, gvn, cvn, off;
		struct dp_buf n2 = DP_BUF_INIT;
		while (dp_json_next_member(s, n, &p2, &k2, &k2n, &v2, &v2n) != DP_JSON_INVALID) {
			dp_buf_reset(&n2);
			FUZZ_CHECK(dp_json_unquote(&n2, k2, k2n) == 0);
			if (n2.len == name.len && memcmp(n2.data ? n2.data : "", name.data, name.len) == 0)
				last = v2;
		}
		dp_buf_free(&n2);
		const char *path[1] = { name.data };
		dp_json_get(s, n, path, 1, &gv, &gvn);
		FUZZ_CHECK(gvn > 0 && gv == last);
		int compact;
		FUZZ_CHECK(dp_json_check_member(s, n, name.data, &cv, &cvn, &why, &off, &compact) ==
		           DP_JSON_OBJECT);
		FUZZ_CHECK(cv == last && cvn == gvn);
	}
	dp_buf_free(&name);
	if (depth == 0) {
		struct visit w = { s, n, 0, 0 };
		size_t off;
		FUZZ_CHECK(dp_json_check_members(s, n, visit, &w, &why, &off) == DP_JSON_OBJECT);
		FUZZ_CHECK(w.count == count);
	}
}

/* One valid value s[0..n), no white space around it. */
static void
check_value(const char *s, size_t n, int depth)
{
	const char *why, *v;
	size_t off, pos = 0, vn;

	FUZZ_CHECK(n > 0);
	FUZZ_CHECK(dp_json_check(s, n, &why, &off) == dp_json_type_of(s));
	switch (dp_json_type_of(s)) {
	case DP_JSON_STRING:
		check_string(s, n);
		break;
	case DP_JSON_OBJECT:
		check_object(s, n, depth);
		break;
	case DP_JSON_ARRAY:
		while (dp_json_next_element(s, n, &pos, &v, &vn) != DP_JSON_INVALID) {
			FUZZ_CHECK(v >= s && v + vn <= s + n);
			check_value(v, vn, depth + 1);
		}
		break;
	default:
		break;
	}
}

/* ASCII only, no surrogate escape, at most 256 levels: libjq 1.6 must agree. */
static int
jq_comparable(const char *s, size_t n)
{
	int depth = 0, in_str = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80)
			return 0;
		if (in_str) {
			if (c == '\\') {
				if (i + 2 < n && s[i + 1] == 'u' && (s[i + 2] == 'd' || s[i + 2] == 'D'))
					return 0;
				i++;
			} else if (c == '"') {
				in_str = 0;
			}
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > 256)
				return 0;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return 1;
}

static const jv_kind kinds[] = {
	[DP_JSON_NULL] = JV_KIND_NULL, [DP_JSON_FALSE] = JV_KIND_FALSE,
	[DP_JSON_TRUE] = JV_KIND_TRUE, [DP_JSON_NUMBER] = JV_KIND_NUMBER,
	[DP_JSON_STRING] = JV_KIND_STRING, [DP_JSON_ARRAY] = JV_KIND_ARRAY,
	[DP_JSON_OBJECT] = JV_KIND_OBJECT,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *why, *why2, *v;
	size_t off, off2, vn;
	int compact;
	enum dp_json_type t = dp_json_check_compact(s, size, &why, &off, &compact);

	/* One verdict, whichever entry point. */
	FUZZ_CHECK(dp_json_check(s, size, &why2, &off2) == t);
	FUZZ_CHECK(dp_json_check_member(s, size, "a", &v, &vn, &why2, &off2, NULL) == t);
	if (t == DP_JSON_INVALID) {
		FUZZ_CHECK(why && off <= size);
		return 0;
	}
	struct dp_buf c = DP_BUF_INIT;
	FUZZ_CHECK(dp_json_compact(&c, s, size) == 0);
	int c2;
	FUZZ_CHECK(dp_json_check_compact(c.data, c.len, &why2, &off2, &c2) == t && c2);
	if (compact)
		FUZZ_CHECK(c.len == size && memcmp(c.data, s, size) == 0);
	check_value(c.data, c.len, 0);

	const char *at;
	size_t len;
	if (dp_json_big_int(s, size, &at, &len)) {
		FUZZ_CHECK(at >= s && at + len <= s + size && len >= 16);
		size_t i = at[0] == '-';
		for (; i < len; i++)
			FUZZ_CHECK(at[i] >= '0' && at[i] <= '9');
	}

	if (jq_comparable(s, size) && size < (size_t)1 << 30) {
		jv a = jv_parse_sized(s, (int)size);
		FUZZ_CHECK(jv_is_valid(a));
		FUZZ_CHECK(jv_get_kind(a) == kinds[t]);
		jv b = jv_parse_sized(c.data, (int)c.len);
		FUZZ_CHECK(jv_equal(a, b));
	}
	dp_buf_free(&c);
	return 0;
}
