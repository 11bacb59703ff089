#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/lines.h"
#include "json/scan.h"

struct scan {
	const char *p;
	const char *end;
	const char *base;
	const char *why;
	int spaced;         /* white space seen outside strings */
	/* Optional capture of one top-level member while validating. */
	const char *want;   /* member name, or NULL */
	size_t wantlen;
	int armed;          /* the next value is the wanted member */
	int capturing;
	const char *cap;    /* the wanted member's value: cap..cap_end */
	const char *cap_end;
	/* Or every top-level member, handed to visit as it is scanned. */
	dp_json_member_fn visit;
	void *visit_ctx;
	const char *key;    /* the member's name literal */
	size_t keylen;
	int stopped;        /* visit said stop */
};

static int
fail(struct scan *s, const char *p, const char *why)
{
	s->p = p;
	s->why = why;
	return -1;
}

/*
 * Eight bytes at a time (SWAR): the mask has the high bit set in each
 * byte that is '"', '\\', below 0x20 or above 0x7f.  Only the lowest set
 * byte is exact (borrows can mark later ones), which is all we use.
 */
static inline uint64_t
special_mask(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t q = w ^ (ones * '"');
	uint64_t b = w ^ (ones * '\\');
	return (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w) & highs;
}

/*
 * The first byte from p that a string cannot simply pass over: a quote,
 * a backslash, a control character or a non-ASCII byte, or end.  Strings
 * are most of every price record and most are short, so this is inlined
 * into the scanner and usually decides in one 16-byte block.
 */
static inline const char *
plain_run(const char *p, const char *end)
{
#ifdef __SSE2__
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i m = _mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
			             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
			/* signed compare: below 0x20 and, as negatives, above 0x7f */
			_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
		unsigned bits = (unsigned)_mm_movemask_epi8(m);
		if (bits)
			return p + __builtin_ctz(bits);
		p += 16;
	}
#endif
	while (end - p >= 8) {
		uint64_t w, m;
		memcpy(&w, p, 8);
		m = special_mask(w);
		if (m)
			return p + (__builtin_ctzll(m) >> 3);
		p += 8;
	}
	unsigned char c;
	while (p < end && (c = (unsigned char)*p) >= 0x20 && c < 0x80 && c != '"' && c != '\\')
		p++;
	return p;
}

/*
 * The rest of a string from p, where plain_run stopped at something other
 * than the closing quote.  Returns the byte after the closing quote, or
 * NULL with s->p and s->why set.  Out of line: it is the rare case.
 */
static const char *
string_slow(struct scan *s, const char *p)
{
	const char *end = s->end;

	for (;;) {
		unsigned char c;

		if (p >= end)
			return fail(s, p, "unterminated string"), NULL;
		c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c >= 0x80) {
			size_t n = dp_utf8_seq((const unsigned char *)p, (const unsigned char *)end);
			if (!n)
				return fail(s, p, "invalid UTF-8"), NULL;
			p += n;
		} else if (c == '\\') {
			if (p + 1 >= end)
				return fail(s, p, "unterminated string"), NULL;
			switch (p[1]) {
			case '"': case '\\': case '/': case 'b': case 'f':
			case 'n': case 'r': case 't':
				p += 2;
				break;
			case 'u':
				if (end - p < 6 || dp_hexval(p[2]) < 0 || dp_hexval(p[3]) < 0 ||
				    dp_hexval(p[4]) < 0 || dp_hexval(p[5]) < 0)
					return fail(s, p, "bad \\u escape"), NULL;
				p += 6;
				break;
			default:
				return fail(s, p, "bad escape in string"), NULL;
			}
		} else if (c < 0x20) {
			return fail(s, p, c ? "control character in string" : "NUL byte"), NULL;
		}
		p = plain_run(p, end);
	}
}

/* A string at p (its opening quote): the byte after it, or NULL. */
static inline __attribute__((always_inline)) const char *
string_at(struct scan *s, const char *p)
{
	p = plain_run(p + 1, s->end);
	if (p < s->end && *p == '"')
		return p + 1;
	return string_slow(s, p);
}

/*
 * The same for digits: the high bit set in each byte that is not '0'..'9'.
 * Exact in every byte (each is taken alone, with no carry between bytes),
 * so the lowest set byte is where the run ends.
 */
static inline uint64_t
nondigit_mask(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t lo = w & ~highs;               /* below 0x80: no carry out of a byte */
	uint64_t ge0 = lo + ones * (0x80 - '0');        /* high bit: lo >= '0' */
	uint64_t gt9 = lo + ones * (0x80 - '9' - 1);    /* high bit: lo > '9' */
	return ~(ge0 & ~gt9 & ~w) & highs;
}

/*
 * Skip a run of ASCII digits.  Numbers are most of a price record or an
 * order book, and their runs are short: one block finds the end of most
 * (a mask and its lowest bit) instead of a byte at a time.
 */
static inline const char *
digits(const char *p, const char *end)
{
#ifdef __SSE2__
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* signed compares: bytes above 0x7f are negative, not digits */
		__m128i d = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
		                          _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
		unsigned bits = ~(unsigned)_mm_movemask_epi8(d) & 0xffffu;
		if (bits)
			return p + __builtin_ctz(bits);
		p += 16;
	}
#endif
	while (end - p >= 8) {
		uint64_t w, m;
		memcpy(&w, p, 8);
		m = nondigit_mask(w);
		if (m)
			return p + (__builtin_ctzll(m) >> 3);
		p += 8;
	}
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

static inline int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * A number at p: the byte after it, or NULL.  One 16-byte block finds
 * both runs of the usual shape (-?int.frac, no exponent) from one mask
 * of its non-digits; anything else, or a number that may go on past the
 * block, is taken by the grammar a byte at a time, which also gives
 * every error.
 */
static inline __attribute__((always_inline)) const char *
number_at(struct scan *s, const char *p)
{
	const char *end = s->end;

#ifdef __SSE2__
	if (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i d = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
		                          _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
		/* bit i: p[i] is no digit; bit 16 stops the count at the block's end */
		unsigned nd = (~(unsigned)_mm_movemask_epi8(d) & 0xffffu) | 0x10000u;
		unsigned i = *p == '-';

		if (p[i] == '0')
			i++;
		else if (nd >> i & 1)
			goto slow;              /* no digit: the grammar says why */
		else
			i += (unsigned)__builtin_ctz(nd >> i);
		if (i < 16 && p[i] == '.') {
			unsigned j = (unsigned)__builtin_ctz(nd >> (i + 1));
			if (j == 0)
				goto slow;
			i += 1 + j;
		}
		if (i < 16 && p[i] != 'e' && p[i] != 'E')
			return p + i;
	}
slow:
#endif
	if (*p == '-')
		p++;
	if (p >= end)
		goto bad;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		p = digits(p + 1, end);
	else
		goto bad;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit(*p))
			goto bad;
		p = digits(p + 1, end);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			goto bad;
		while (p < end && is_digit(*p))
			p++;
	}
	return p;
bad:
	return fail(s, p, "bad number"), NULL;
}

/* Past white space; compact JSON, the usual case, has none. */
static inline const char *
skip_ws(struct scan *s, const char *p)
{
	const char *q = p;

	if (q < s->end && (unsigned char)*q > ' ')
		return q;
	while (q < s->end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
		q++;
	s->spaced |= q != p;
	return q;
}

static int key_equals(const char *lit, size_t litlen, const char *key, size_t klen);

/*
 * A member name at p (its opening quote) and the ':' after it: the byte
 * after the ':', or NULL.  At the top level, notes whether this is the
 * member to capture.
 */
static inline __attribute__((always_inline)) const char *
member_at(struct scan *s, const char *p, int depth)
{
	const char *name = p;

	if (p >= s->end || *p != '"')
		return fail(s, p, "expected member name"), NULL;
	p = plain_run(p + 1, s->end);
	if (p < s->end && *p == '"') {
		p++;
		/* No escapes: only the exact spelling can match. */
		s->armed = s->want && depth == 1 && (size_t)(p - name) == s->wantlen + 2 &&
		           memcmp(name + 1, s->want, s->wantlen) == 0;
		if (s->visit && depth == 1) {
			s->armed = 1;
			s->key = name;
			s->keylen = (size_t)(p - name);
		}
	} else {
		if (!(p = string_slow(s, p)))
			return NULL;
		s->armed = s->want && depth == 1 &&
		           key_equals(name, (size_t)(p - name), s->want, s->wantlen);
		if (s->visit && depth == 1) {
			s->armed = 1;
			s->key = name;
			s->keylen = (size_t)(p - name);
		}
	}
	p = skip_ws(s, p);
	if (p >= s->end || *p != ':')
		return fail(s, p, "expected ':'"), NULL;
	return p + 1;
}

static inline const char *
word_at(struct scan *s, const char *p, const char *w, size_t n)
{
	if ((size_t)(s->end - p) < n || memcmp(p, w, n) != 0)
		return fail(s, p, "unexpected character"), NULL;
	return p + n;
}

/*
 * Iterative scan of one value: containers are tracked on an explicit
 * stack so hostile nesting cannot exhaust the C stack.  The position
 * and the innermost container's kind live in locals (registers), the
 * position going back to s->p at the end or on an error.  The stack is a
 * bit a level (set: an array), not chars: a char store may alias *s, and
 * the compiler would reload s's fields after every push.
 */
static enum dp_json_type
scan_value(struct scan *s)
{
	uint64_t arrays[DP_JSON_MAX_DEPTH / 64];
	int depth = 0, in_array = 0;
	enum dp_json_type first = DP_JSON_INVALID, t;
	const char *p = s->p, *end = s->end;
	const char *cap_start = NULL;

/* skip_ws, with the usual case (no white space) decided against a local end. */
#define WS(q) ((q) < end && (unsigned char)*(q) > ' ' ? (q) : skip_ws(s, (q)))
/* The member name at p and its ':'; a captured member's value starts next. */
#define MEMBER()                                                        \
	do {                                                            \
		if (!(p = member_at(s, p, depth)))                      \
			return DP_JSON_INVALID;                         \
		if (s->armed) {                                         \
			p = WS(p);                              \
			s->armed = 0;                                   \
			s->capturing = 1;                               \
			cap_start = p;                                  \
		}                                                       \
	} while (0)

	for (;;) {
		p = WS(p);
		if (p >= end)
			return fail(s, p, "unexpected end of input"), DP_JSON_INVALID;
		switch (*p) {
		case '"':
			t = DP_JSON_STRING;
			p = string_at(s, p);
			break;
		case '{':
		case '[':
			if (depth == DP_JSON_MAX_DEPTH)
				return fail(s, p, "nesting too deep"), DP_JSON_INVALID;
			in_array = *p == '[';
			t = in_array ? DP_JSON_ARRAY : DP_JSON_OBJECT;
			if (depth == 0)
				first = t;
			if (in_array)
				arrays[depth / 64] |= UINT64_C(1) << (depth % 64);
			else
				arrays[depth / 64] &= ~(UINT64_C(1) << (depth % 64));
			depth++;
			p = WS(p + 1);
			if (p < end && *p == (in_array ? ']' : '}')) {
				p++;
				depth--;
				in_array = depth && (arrays[(depth - 1) / 64] >> ((depth - 1) % 64) & 1);
				break;
			}
			if (!in_array)
				MEMBER();
			continue;      /* scan the first element */
		case 't':
			t = DP_JSON_TRUE;
			p = word_at(s, p, "true", 4);
			break;
		case 'f':
			t = DP_JSON_FALSE;
			p = word_at(s, p, "false", 5);
			break;
		case 'n':
			t = DP_JSON_NULL;
			p = word_at(s, p, "null", 4);
			break;
		default:
			if (*p == '-' || is_digit(*p)) {
				t = DP_JSON_NUMBER;
				p = number_at(s, p);
				break;
			}
			return fail(s, p, (unsigned char)*p >= 0x80 ? "invalid UTF-8 outside a string" :
			                  *p ? "unexpected character" : "NUL byte"), DP_JSON_INVALID;
		}
		if (!p)
			return DP_JSON_INVALID;
		/* A value ended: close containers or move to the next element. */
		for (;;) {
			if (depth == 1 && s->capturing) {
				s->capturing = 0;
				s->cap = cap_start;
				s->cap_end = p;
				if (s->visit &&
				    s->visit(s->visit_ctx, s->key, s->keylen, cap_start,
				             (size_t)(p - cap_start), dp_json_type_of(cap_start))) {
					s->stopped = 1;
					return fail(s, p, NULL), DP_JSON_INVALID;
				}
			}
			if (depth == 0) {
				s->p = p;
				return first != DP_JSON_INVALID ? first : t;
			}
			p = WS(p);
			if (p >= end)
				return fail(s, p, "unexpected end of input"), DP_JSON_INVALID;
			if (*p == (in_array ? ']' : '}')) {
				p++;
				depth--;
				in_array = depth && (arrays[(depth - 1) / 64] >> ((depth - 1) % 64) & 1);
				continue;
			}
			if (*p != ',')
				return fail(s, p, in_array ? "expected ',' or ']'" :
				                             "expected ',' or '}'"),
				       DP_JSON_INVALID;
			p++;
			if (!in_array) {
				p = WS(p);
				MEMBER();
				break;
			}
			/*
			 * An element that is a number or a string (an order book's
			 * levels, a candle, a list of symbols) is scanned here, without
			 * the round through the loop above: nothing there applies to
			 * it (no member is armed in an array, and the first type is
			 * known), and the errors are the same.
			 */
			if (p < end && (is_digit(*p) || *p == '-'))
				p = number_at(s, p);
			else if (p < end && *p == '"')
				p = string_at(s, p);
			else
				break;
			if (!p)
				return DP_JSON_INVALID;
		}
	}
#undef MEMBER
#undef WS
}

/* One value and nothing after it; the reason and where, when not. */
static enum dp_json_type
check_all(struct scan *s, const char **why, size_t *off)
{
	enum dp_json_type t = scan_value(s);

	if (t != DP_JSON_INVALID && !s->stopped) {
		s->p = skip_ws(s, s->p);
		if (s->p != s->end) {
			s->why = "trailing characters after the value";
			t = DP_JSON_INVALID;
		}
	}
	if (t == DP_JSON_INVALID) {
		*why = s->why ? s->why : "invalid JSON";
		*off = (size_t)(s->p - s->base);
	}
	return t;
}

enum dp_json_type
dp_json_check(const char *text, size_t n, const char **why, size_t *off)
{
	return dp_json_check_compact(text, n, why, off, NULL);
}

enum dp_json_type
dp_json_check_compact(const char *text, size_t n, const char **why, size_t *off,
                      int *compact)
{
	return dp_json_check_member(text, n, NULL, NULL, NULL, why, off, compact);
}

enum dp_json_type
dp_json_check_member(const char *text, size_t n, const char *member, const char **v,
                     size_t *vn, const char **why, size_t *off, int *compact)
{
	struct scan s = { text, text + n, text, NULL, 0, member,
	                  member ? strlen(member) : 0, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0 };
	enum dp_json_type t = check_all(&s, why, off);

	if (compact)
		*compact = !s.spaced;
	if (v) {
		*v = s.cap;
		*vn = s.cap ? (size_t)(s.cap_end - s.cap) : 0;
	}
	return t;
}

enum dp_json_type
dp_json_check_members(const char *text, size_t n, dp_json_member_fn fn, void *ctx,
                      const char **why, size_t *off)
{
	struct scan s = { text, text + n, text, NULL, 0, NULL, 0, 0, 0, NULL, NULL, fn, ctx, NULL,
	                  0, 0 };
	enum dp_json_type t = check_all(&s, why, off);

	if (s.stopped)
		*why = NULL;
	return t;
}

/* Compare a JSON string literal (with quotes) to a plain key. */
static int
key_equals(const char *lit, size_t litlen, const char *key, size_t klen)
{
	/*
	 * Same length: the bytes decide, when the literal holds no escape (an
	 * escape makes the literal longer than what it stands for, so one
	 * with an escape stands for a shorter key: "a\\b" is a\b, not the
	 * key a\\b its bytes spell; found by fuzz_json).  Shorter: never.
	 * Longer: only an escaped spelling can match, which is rare enough
	 * to decode.
	 */
	if (litlen == klen + 2)
		return memcmp(lit + 1, key, klen) == 0 && !memchr(lit + 1, '\\', klen);
	if (litlen < klen + 2 || !memchr(lit, '\\', litlen))
		return 0;
	struct dp_buf b = DP_BUF_INIT;
	int eq = dp_json_unquote(&b, lit, litlen) == 0 && b.len == klen &&
	         memcmp(b.data, key, klen) == 0;
	dp_buf_free(&b);
	return eq;
}

/*
 * Skip one value of text already known to be valid: no checks, just the
 * boundaries.  Strings are found with memchr; containers by depth.
 */
static const char *
skip_string(const char *p, const char *end)
{
	for (p++;;) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q)
			return end;
		const char *b = q;
		while (b > p && b[-1] == '\\')
			b--;
		if (((q - b) & 1) == 0)
			return q + 1;
		p = q + 1;
	}
}

static const char *
skip_value(const char *p, const char *end)
{
	int depth = 0;

	while (p < end) {
		char c = *p;
		if (c == '"') {
			p = skip_string(p, end);
			if (depth == 0)
				return p;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return p;
			if (--depth == 0)
				return p + 1;
		} else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' ||
		                          c == '\n' || c == '\r')) {
			return p;
		}
		p++;
	}
	return p;
}

int
dp_json_big_int(const char *s, size_t n, const char **at, size_t *len)
{
	const char *p = s, *end = s + n;

	while (p < end) {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		if (*p != '-' && (*p < '0' || *p > '9')) {
			p++;
			continue;
		}
		const char *start = p;
		uint64_t v = 0;
		int over = 0;
		if (*p == '-')
			p++;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			if (v > (UINT64_MAX - 9) / 10)
				over = 1;
			else
				v = v * 10 + (uint64_t)(*p - '0');
		}
		int integer = p >= end || (*p != '.' && *p != 'e' && *p != 'E');
		while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
		                   *p == 'E' || *p == '+' || *p == '-'))
			p++;
		if (integer && (over || v > (UINT64_C(1) << 53))) {
			*at = start;
			*len = (size_t)(p - start);
			return 1;
		}
	}
	return 0;
}

enum dp_json_type
dp_json_type_of(const char *p)
{
	switch (*p) {
	case '{': return DP_JSON_OBJECT;
	case '[': return DP_JSON_ARRAY;
	case '"': return DP_JSON_STRING;
	case 't': return DP_JSON_TRUE;
	case 'f': return DP_JSON_FALSE;
	case 'n': return DP_JSON_NULL;
	default: return DP_JSON_NUMBER;
	}
}

enum dp_json_type
dp_json_get(const char *text, size_t n, const char *const *path, size_t npath,
            const char **v, size_t *vn)
{
	struct scan s = { text, text + n, text, NULL, 0, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL,
	                  0, 0 };
	size_t step = 0;

	for (;;) {
		s.p = skip_ws(&s, s.p);
		const char *start = s.p;
		if (step == npath) {
			if (s.p >= s.end)
				goto none;
			*v = start;
			*vn = (size_t)(skip_value(s.p, s.end) - start);
			return dp_json_type_of(start);
		}
		if (s.p >= s.end || *s.p != '{')
			break;
		s.p++;
		s.p = skip_ws(&s, s.p);
		/* jq keeps the last of duplicate keys, so scan the whole object. */
		const char *hit = NULL;
		size_t keylen = strlen(path[step]);
		while (s.p < s.end && *s.p == '"') {
			const char *k = s.p;
			s.p = skip_string(s.p, s.end);
			size_t klen = (size_t)(s.p - k);
			s.p = skip_ws(&s, s.p);
			s.p++;          /* ':' */
			s.p = skip_ws(&s, s.p);
			if (klen >= keylen + 2 && key_equals(k, klen, path[step], keylen))
				hit = s.p;
			s.p = skip_value(s.p, s.end);
			s.p = skip_ws(&s, s.p);
			if (s.p >= s.end || *s.p != ',')
				break;
			s.p++;
			s.p = skip_ws(&s, s.p);
		}
		if (!hit)
			break;
		s.p = hit;
		step++;
	}
none:
	*v = "null";
	*vn = 0;
	return DP_JSON_NULL;
}

static size_t
ws_at(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/*
 * For the walkers: where the next item of the container opened by open
 * starts, past the opening bracket (on the first call, i 0), white space
 * and a comma; SIZE_MAX when s is no such container or has ended.
 */
static size_t
next_item(const char *s, size_t n, size_t i, char open)
{
	if (i == 0) {
		i = ws_at(s, n, 0);
		if (i >= n || s[i] != open)
			return SIZE_MAX;
		i++;
	}
	i = ws_at(s, n, i);
	if (i < n && s[i] == ',')
		i = ws_at(s, n, i + 1);
	return i < n ? i : SIZE_MAX;
}

/* The value at s[i]: its text into *v and *vn, *pos past it, its type. */
static enum dp_json_type
value_at(const char *s, size_t n, size_t i, size_t *pos, const char **v, size_t *vn)
{
	if (i >= n) {
		*pos = n;
		return DP_JSON_INVALID;
	}
	*v = s + i;
	i = (size_t)(skip_value(s + i, s + n) - s);
	*vn = (size_t)(s + i - *v);
	*pos = i;
	return dp_json_type_of(*v);
}

enum dp_json_type
dp_json_next_member(const char *s, size_t n, size_t *pos, const char **key, size_t *klen,
                    const char **v, size_t *vn)
{
	size_t i = next_item(s, n, *pos, '{');

	if (i == SIZE_MAX || s[i] != '"') {
		*pos = n;
		return DP_JSON_INVALID;        /* '}' or the end */
	}
	*key = s + i;
	i = (size_t)(skip_string(s + i, s + n) - s);
	*klen = (size_t)(s + i - *key);
	i = ws_at(s, n, i);
	i = ws_at(s, n, i + 1);         /* ':' */
	return value_at(s, n, i, pos, v, vn);
}

enum dp_json_type
dp_json_next_element(const char *s, size_t n, size_t *pos, const char **v, size_t *vn)
{
	size_t i = next_item(s, n, *pos, '[');

	if (i == SIZE_MAX || s[i] == ']') {
		*pos = n;
		return DP_JSON_INVALID;        /* ']' or the end */
	}
	return value_at(s, n, i, pos, v, vn);
}

int
dp_json_compact(struct dp_buf *out, const char *s, size_t n)
{
	const char *p = s, *end = s + n, *run = s;

	if (dp_buf_grow(out, n) < 0)
		return -1;
	while (p < end) {
		char c = *p;
		if (c == '"') {
			p++;
			while (p < end && *p != '"') {
				if (*p == '\\')
					p++;
				p++;
			}
			p++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			if (dp_buf_add(out, run, (size_t)(p - run)) < 0)
				return -1;
			while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
				p++;
			run = p;
			continue;
		}
		p++;
	}
	if (p > end)
		p = end;
	return dp_buf_add(out, run, (size_t)(p - run));
}

static int
put_utf8(struct dp_buf *out, uint32_t cp)
{
	char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (char)cp; n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f)); n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
	}
	return dp_buf_add(out, b, n);
}

static uint32_t
hex4(const char *p)
{
	return (uint32_t)(dp_hexval(p[0]) << 12 | dp_hexval(p[1]) << 8 |
	                  dp_hexval(p[2]) << 4 | dp_hexval(p[3]));
}

/*
 * Decode a string literal.  A lone surrogate escape becomes U+FFFD, as
 * jq does, unless exact is set: then the result is -2 with *bad at the
 * escape's offset in s, since UTF-8 has no form for it.
 */
static int
unquote(struct dp_buf *out, const char *s, size_t n, int exact, size_t *bad)
{
	const char *p = s + 1, *end = s + n - 1;

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return -1;
	while (p < end) {
		const char *q = p;
		while (q < end && *q != '\\')
			q++;
		if (dp_buf_add(out, p, (size_t)(q - p)) < 0)
			return -1;
		if (q >= end)
			break;
		if (end - q < 2)
			return -1;
		char c = q[1];
		p = q + 2;
		switch (c) {
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'u': {
			if (end - q < 6)
				return -1;
			uint32_t cp = hex4(q + 2);
			p = q + 6;
			if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 &&
			    p[0] == '\\' && p[1] == 'u') {
				uint32_t lo = hex4(p + 2);
				if (lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
			}
			if (cp >= 0xd800 && cp <= 0xdfff) {
				if (exact) {
					*bad = (size_t)(q - s);
					return -2;
				}
				cp = 0xfffd;   /* lone surrogate, as jq does */
			}
			if (put_utf8(out, cp) < 0)
				return -1;
			continue;
		}
		default: break;        /* '"', '\\', '/' stand for themselves */
		}
		if (dp_buf_addch(out, c) < 0)
			return -1;
	}
	return 0;
}

int
dp_json_unquote(struct dp_buf *out, const char *s, size_t n)
{
	return unquote(out, s, n, 0, NULL);
}

int
dp_json_unquote_exact(struct dp_buf *out, const char *s, size_t n, size_t *bad)
{
	return unquote(out, s, n, 1, bad);
}

int
dp_json_quote(struct dp_buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	if (dp_buf_grow(out, n + 2) < 0 || dp_buf_addch(out, '"') < 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[6];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (dp_buf_add(out, s + run, i - run) < 0)
			return -1;
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			memcpy(u, "\\u00", 4);
			u[4] = hex[c >> 4];
			u[5] = hex[c & 15];
			if (dp_buf_add(out, u, 6) < 0)
				return -1;
		}
		if (esc && dp_buf_addstr(out, esc) < 0)
			return -1;
		run = i + 1;
	}
	if (dp_buf_add(out, s + run, n - run) < 0)
		return -1;
	return dp_buf_addch(out, '"');
}
