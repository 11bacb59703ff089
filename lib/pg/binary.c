/*
 * pg/binary.c -- JSON values as binary COPY fields (pg/binary.h).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timefmt.h"
#include "pg/binary.h"

/* Type OIDs from PostgreSQL's src/include/catalog/pg_type.dat. */
enum {
	OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25,
	OID_JSON = 114, OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_BPCHAR = 1042,
	OID_VARCHAR = 1043, OID_DATE = 1082, OID_TIMESTAMP = 1114,
	OID_TIMESTAMPTZ = 1184, OID_NUMERIC = 1700, OID_UUID = 2950, OID_JSONB = 3802,
};

/* PostgreSQL counts time from 2000-01-01 00:00:00 UTC. */
#define PG_EPOCH_DAYS 10957
#define PG_EPOCH_US (INT64_C(946684800) * 1000000)

enum dp_pgbin_kind
dp_pgbin_kind_of(uint32_t oid, char typtype)
{
	if (typtype == 'e')
		return DP_PGBIN_TEXT;
	switch (oid) {
	case OID_BOOL: return DP_PGBIN_BOOL;
	case OID_INT2: return DP_PGBIN_INT2;
	case OID_INT4: return DP_PGBIN_INT4;
	case OID_INT8: return DP_PGBIN_INT8;
	case OID_FLOAT4: return DP_PGBIN_FLOAT4;
	case OID_FLOAT8: return DP_PGBIN_FLOAT8;
	case OID_NUMERIC: return DP_PGBIN_NUMERIC;
	case OID_TEXT: case OID_VARCHAR: case OID_BPCHAR: return DP_PGBIN_TEXT;
	case OID_JSON: return DP_PGBIN_JSON;
	case OID_JSONB: return DP_PGBIN_JSONB;
	case OID_TIMESTAMPTZ: return DP_PGBIN_TIMESTAMPTZ;
	case OID_TIMESTAMP: return DP_PGBIN_TIMESTAMP;
	case OID_DATE: return DP_PGBIN_DATE;
	case OID_UUID: return DP_PGBIN_UUID;
	default: return DP_PGBIN_UNSUPPORTED;
	}
}

const char *
dp_pgbin_kind_name(enum dp_pgbin_kind k)
{
	static const char *const names[] = {
		"unsupported", "boolean", "smallint", "integer", "bigint", "real",
		"double precision", "numeric", "text", "json", "jsonb", "timestamptz",
		"timestamp", "date", "uuid",
	};
	return (size_t)k < sizeof(names) / sizeof(names[0]) ? names[k] : "unsupported";
}

/*
 * Appends in the innermost loop: a field is a few bytes, so the call
 * and checks of dp_buf_add would cost more than the copy.  The buffer
 * stays NUL-terminated as core/buf.h promises.
 */
static inline int
put(struct dp_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap)
		return dp_buf_add(b, p, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static inline int
put16(struct dp_buf *b, uint16_t v)
{
	unsigned char p[2] = { (unsigned char)(v >> 8), (unsigned char)v };
	return put(b, p, 2);
}

static inline int
put32(struct dp_buf *b, uint32_t v)
{
	unsigned char p[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                       (unsigned char)(v >> 8), (unsigned char)v };
	return put(b, p, 4);
}

/* A field's length and 8 bytes of value. */
static inline int
put_len64(struct dp_buf *b, uint64_t v)
{
	unsigned char p[12] = { 0, 0, 0, 8 };
	for (int i = 0; i < 8; i++)
		p[4 + i] = (unsigned char)(v >> (56 - 8 * i));
	return put(b, p, 12);
}

int
dp_pgbin_null(struct dp_buf *out)
{
	return put32(out, 0xffffffffu);
}

int
dp_pgbin_tuple(struct dp_buf *out, uint16_t nfields)
{
	return put16(out, nfields);
}

int
dp_pgbin_number_class(const char *s, size_t n)
{
	const char *p = s, *end = s + n;
	int cls = 1;

	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return 0;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return 0;
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return 0;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		cls = 2;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return 0;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		cls = 2;
	}
	if (p != end)
		return 0;
	if (cls == 1) {
		/* Integer syntax: does it fit int64? (19 digits may not.) */
		size_t digits = n - (s[0] == '-');
		if (digits > 19)
			return 2;
		if (digits == 19) {
			const char *lim = s[0] == '-' ? "9223372036854775808" : "9223372036854775807";
			if (memcmp(s + (s[0] == '-'), lim, 19) > 0)
				return 2;
		}
	}
	return cls;
}

/*
 * The text of a number: the JSON number itself, or the contents of a
 * string that holds one (APIs often send numbers as strings).  NUL-
 * terminated in scratch.  0, -1 out of memory, 1 not a number.
 */
static int
number_text(enum dp_json_type t, const char *v, size_t n, struct dp_buf *scratch,
            const char **s, size_t *sn)
{
	if (t == DP_JSON_NUMBER) {
		/* Valid JSON: the number ends at a delimiter, so the parsers
		 * (strtoll, strtod) stop there without a copy. */
		*s = v;
		*sn = n;
		return 0;
	}
	dp_buf_reset(scratch);
	if (t == DP_JSON_STRING) {
		if (dp_json_unquote(scratch, v, n) < 0)
			return -1;
	} else {
		return 1;
	}
	if (!dp_pgbin_number_class(scratch->data, scratch->len))
		return 1;
	*s = scratch->data;
	*sn = scratch->len;
	return 0;
}

/* An integer that dp_pgbin_number_class() said fits int64. */
static long long
parse_int(const char *s, size_t n)
{
	if (n < 19) {
		const char *p = s, *end = s + n;
		long long x = 0;
		bool neg = *p == '-';
		for (p += neg; p < end; p++)
			x = x * 10 + (*p - '0');
		return neg ? -x : x;
	}
	return strtoll(s, NULL, 10);
}

/*
 * The double nearest to a decimal, without strtod when the decimal has
 * at most 15 significant digits and a small exponent: both the digits
 * and the power of ten are then exact doubles, and one multiplication or
 * division rounds correctly (Clinger, "How to Read Floating Point
 * Numbers Accurately", PLDI 1990).  Else strtod.
 */
static double
parse_double(const char *s, size_t n)
{
	static const double p10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
		1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
	const char *p = s, *end = s + n;
	uint64_t m = 0;
	int digits = 0, scale = 0;
	bool neg = *p == '-';

	for (p += neg; p < end && *p >= '0' && *p <= '9'; p++) {
		if (m || *p != '0')
			digits++;
		m = m * 10 + (uint64_t)(*p - '0');
		if (digits > 15)
			goto slow;
	}
	if (p < end && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
			if (m || *p != '0')
				digits++;
			m = m * 10 + (uint64_t)(*p - '0');
			scale++;
			if (digits > 15 || scale > 22)
				goto slow;
		}
	if (p != end)
		goto slow;      /* an exponent */
	double d = scale ? (double)m / p10[scale] : (double)m;
	return neg ? -d : d;
slow:
	errno = 0;
	return strtod(s, NULL);
}

static int
field_int(struct dp_buf *out, enum dp_pgbin_kind k, enum dp_json_type t, const char *v,
          size_t n, struct dp_buf *scratch, const char **why)
{
	const char *s;
	size_t sn;
	int rc = number_text(t, v, n, scratch, &s, &sn);

	if (rc)
		return rc < 0 ? -1 : (*why = "not an integer", 1);
	if (dp_pgbin_number_class(s, sn) != 1) {
		*why = memchr(s, '.', sn) || memchr(s, 'e', sn) || memchr(s, 'E', sn)
		       ? "not an integer" : "out of range for bigint";
		return 1;
	}
	long long x = parse_int(s, sn);
	switch (k) {
	case DP_PGBIN_INT2:
		if (x < INT16_MIN || x > INT16_MAX)
			return *why = "out of range for smallint", 1;
		return put32(out, 2) < 0 || put16(out, (uint16_t)(int16_t)x) < 0 ? -1 : 0;
	case DP_PGBIN_INT4:
		if (x < INT32_MIN || x > INT32_MAX)
			return *why = "out of range for integer", 1;
		return put32(out, 4) < 0 || put32(out, (uint32_t)(int32_t)x) < 0 ? -1 : 0;
	default:
		return put_len64(out, (uint64_t)(int64_t)x);
	}
}

static int
int_exact_slow(double d, const char *digits, size_t n, char buf[400])
{
	if (isinf(d))
		return 1;       /* out of range: said elsewhere */
	int len = snprintf(buf, 400, "%.0f", fabs(d));
	return len > 0 && (size_t)len == n && memcmp(buf, digits, n) == 0;
}

/* 0 when s[0..n) is written as an integer (no point, no exponent) that d
 * does not equal exactly; else 1. */
static int
int_exact(double d, const char *s, size_t n, size_t safe)
{
	const char *p = s + (*s == '-');
	size_t digits = n - (size_t)(p - s);
	char buf[400];

	if (memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n))
		return 1;
	if (digits <= safe)
		return 1;       /* below 2^53 (2^24 for real): always exact */
	return int_exact_slow(d, p, digits, buf);
}

static int
field_float(struct dp_buf *out, enum dp_pgbin_kind k, enum dp_json_type t, const char *v,
            size_t n, struct dp_buf *scratch, const char **why)
{
	const char *s;
	size_t sn;
	int rc = number_text(t, v, n, scratch, &s, &sn);

	if (rc)
		return rc < 0 ? -1 : (*why = "not a number", 1);
	errno = 0;
	double d = parse_double(s, sn);
	/* As float8in: ERANGE is an error unless the result is a denormal. */
	if (errno == ERANGE && (d == 0.0 || isinf(d)))
		return *why = "out of range for double precision", 1;
	/*
	 * A float is an approximation, but an integer is a count or an id:
	 * one that the float would round comes back as another number.
	 */
	if (k == DP_PGBIN_FLOAT4 ? !int_exact((float)d, s, sn, 7) : !int_exact(d, s, sn, 15))
		return *why = k == DP_PGBIN_FLOAT4 ? "an integer that real would round"
		                                    : "an integer that double precision would round "
		                                      "(a numeric column keeps it)", 1;
	if (k == DP_PGBIN_FLOAT4) {
		float f = (float)d;
		if (isinf(f) || (f == 0.0f && d != 0.0))
			return *why = "out of range for real", 1;
		uint32_t bits;
		memcpy(&bits, &f, 4);
		return put32(out, 4) < 0 || put32(out, bits) < 0 ? -1 : 0;
	}
	uint64_t bits;
	memcpy(&bits, &d, 8);
	return put_len64(out, bits);
}

/*
 * numeric_send's form: int16 ndigits, int16 weight, uint16 sign, int16
 * dscale, then ndigits base-10000 digits, the first worth 10000^weight.
 * Built from the decimal text: all its digits with the point moved by
 * the exponent, padded to whole groups of four around the point.
 */
static int
field_numeric(struct dp_buf *out, enum dp_json_type t, const char *v, size_t n,
              struct dp_buf *scratch, const char **why)
{
	const char *s;
	size_t sn;
	int rc = number_text(t, v, n, scratch, &s, &sn);

	if (rc)
		return rc < 0 ? -1 : (*why = "not a number", 1);
	const char *p = s, *end = s + sn;
	int neg = *p == '-';
	p += neg;
	/* The digits, and how many of them stand before the point. */
	char digs[1024];
	size_t nd = 0, nint = 0, nfrac = 0;
	long exp10 = 0;
	for (; p < end && *p >= '0' && *p <= '9'; p++, nint++)
		if (nd < sizeof(digs))
			digs[nd++] = *p;
	if (p < end && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9'; p++, nfrac++)
			if (nd < sizeof(digs))
				digs[nd++] = *p;
	if (nint + nfrac > sizeof(digs))
		return *why = "has too many digits for dp (more than 1024)", 1;
	if (p < end) {
		errno = 0;
		exp10 = strtol(p + 1, NULL, 10);
		if (errno || exp10 > 100000 || exp10 < -100000)
			return *why = "out of range for numeric", 1;
	}
	long point = (long)nint + exp10;         /* digits before the point */
	long dscale = (long)nfrac - exp10;
	if (dscale < 0)
		dscale = 0;
	if (dscale > 16383)
		return *why = "out of range for numeric (scale above 16383)", 1;
	/* Skip leading zeros (they carry no weight). */
	size_t first = 0;
	while (first < nd && digs[first] == '0') {
		first++;
		point--;
	}
	size_t last = nd;
	while (last > first && digs[last - 1] == '0')
		last--;
	int16_t ndigits = 0, weight = 0;
	uint16_t groups[300];
	if (first < last) {
		/* Pad on the left so that the point falls between groups. */
		long pm = ((point % 4) + 4) % 4;
		long lpad = pm ? 4 - pm : 0;
		long w = (point + lpad) / 4 - 1;
		if (w > 32767 || w < -32768)
			return *why = "out of range for numeric", 1;
		weight = (int16_t)w;
		long total = lpad + (long)(last - first);
		long ng = (total + 3) / 4;
		if (ng > (long)(sizeof(groups) / sizeof(groups[0])))
			return *why = "has too many digits for dp (more than 1024)", 1;
		for (long g = 0; g < ng; g++) {
			unsigned val = 0;
			for (long j = 0; j < 4; j++) {
				long idx = g * 4 + j - lpad;     /* into digs[first..last) */
				int d = idx >= 0 && idx < (long)(last - first) ? digs[first + (size_t)idx] - '0' : 0;
				val = val * 10 + (unsigned)d;
			}
			groups[g] = (uint16_t)val;
		}
		ndigits = (int16_t)ng;
		while (ndigits > 0 && groups[ndigits - 1] == 0)
			ndigits--;
	} else {
		neg = 0;        /* zero has no sign */
	}
	if (put32(out, (uint32_t)(8 + 2 * ndigits)) < 0 || put16(out, (uint16_t)ndigits) < 0 ||
	    put16(out, (uint16_t)weight) < 0 || put16(out, neg ? 0x4000 : 0) < 0 ||
	    put16(out, (uint16_t)dscale) < 0)
		return -1;
	for (int16_t i = 0; i < ndigits; i++)
		if (put16(out, groups[i]) < 0)
			return -1;
	return 0;
}

/*
 * Decoded contents of a string value, NUL-terminated, in scratch.  A
 * lone surrogate escape has no UTF-8 form: 2, never U+FFFD.
 */
static int
string_text(enum dp_json_type t, const char *v, size_t n, struct dp_buf *scratch)
{
	size_t bad;

	if (t != DP_JSON_STRING)
		return 1;
	dp_buf_reset(scratch);
	int rc = dp_json_unquote_exact(scratch, v, n, &bad);
	if (rc == -2)
		return 2;
	if (rc < 0 || dp_buf_addch(scratch, '\0') < 0)
		return -1;
	scratch->len--;
	return 0;
}

#define LONE_SURROGATE "a string with a lone surrogate escape (such as \\ud800), which has " \
	"no UTF-8 form"

/*
 * What jsonb refuses in valid JSON text (PostgreSQL's json lexer): the
 * escape \u0000, and a lone surrogate escape.  NULL when it takes it.
 */
static const char *
jsonb_refuses(const char *v, size_t n)
{
	const char *p = v, *end = v + n;
	bool high = false;

	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
		if (p + 1 < end && p[1] == 'u' && p + 5 < end) {
			unsigned cp = 0;
			for (int i = 2; i < 6; i++)
				cp = cp << 4 | (unsigned)dp_hexval(p[i]);
			if (cp == 0)
				return "a string with \\u0000, which jsonb cannot hold";
			bool is_high = cp >= 0xd800 && cp <= 0xdbff, is_low = cp >= 0xdc00 && cp <= 0xdfff;
			if ((high && !is_low) || (!high && is_low))
				return LONE_SURROGATE;
			high = is_high;
			p += 6;
			if (high && !(p + 1 < end && p[0] == '\\' && p[1] == 'u'))
				return LONE_SURROGATE;
			continue;
		}
		if (high)
			return LONE_SURROGATE;
		p += 2;
	}
	return high ? LONE_SURROGATE : NULL;
}

static int
field_time(struct dp_buf *out, enum dp_json_type t, const char *v, size_t n,
           struct dp_buf *scratch, const char **why)
{
	int64_t us;

	if (t == DP_JSON_NUMBER) {
		/* Epoch time as dp_time_parse_epoch reads it, to the microsecond. */
		const char *s;
		size_t sn;
		int rc = number_text(t, v, n, scratch, &s, &sn);
		if (rc)
			return rc;
		double d = strtod(s, NULL);
		if (!(d >= 0) || d > 9.2e15)
			return *why = "not an RFC 3339 timestamp or a non-negative epoch number", 1;
		us = d < 1e11 ? (int64_t)llround(d * 1e6) : (int64_t)llround(d * 1e3);
	} else if (t == DP_JSON_STRING && n < 64 && !memchr(v, '\\', n)) {
		char tmp[64];
		memcpy(tmp, v + 1, n - 2);
		tmp[n - 2] = '\0';
		if (dp_time_parse_rfc3339_us(tmp, &us) < 0)
			return *why = "not an RFC 3339 timestamp or a non-negative epoch number", 1;
	} else {
		int rc = string_text(t, v, n, scratch);
		if (rc < 0)
			return -1;
		if (rc || dp_time_parse_rfc3339_us(scratch->data, &us) < 0)
			return *why = "not an RFC 3339 timestamp or a non-negative epoch number", 1;
	}
	return put_len64(out, (uint64_t)(us - PG_EPOCH_US));
}

static int
field_uuid(struct dp_buf *out, enum dp_json_type t, const char *v, size_t n,
           struct dp_buf *scratch, const char **why)
{
	unsigned char u[16];
	int rc = string_text(t, v, n, scratch);

	if (rc < 0)
		return -1;
	if (rc || scratch->len != 36)
		return *why = "not a UUID (8-4-4-4-12 hex digits)", 1;
	const char *s = scratch->data;
	for (int i = 0, j = 0; i < 36; ) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i++] != '-')
				return *why = "not a UUID (8-4-4-4-12 hex digits)", 1;
			continue;
		}
		int hi = dp_hexval(s[i]), lo = dp_hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return *why = "not a UUID (8-4-4-4-12 hex digits)", 1;
		u[j++] = (unsigned char)(hi << 4 | lo);
		i += 2;
	}
	return put32(out, 16) < 0 || put(out, u, 16) < 0 ? -1 : 0;
}

int
dp_pgbin_field(struct dp_buf *out, enum dp_pgbin_kind k, enum dp_json_type t,
               const char *v, size_t n, struct dp_buf *scratch, const char **why)
{
	int rc;

	if (t == DP_JSON_NULL)
		return dp_pgbin_null(out);
	switch (k) {
	case DP_PGBIN_BOOL:
		if (t != DP_JSON_TRUE && t != DP_JSON_FALSE)
			return *why = "not a boolean", 1;
		return put32(out, 1) < 0 || put(out, t == DP_JSON_TRUE ? "\1" : "", 1) < 0 ? -1 : 0;
	case DP_PGBIN_INT2:
	case DP_PGBIN_INT4:
	case DP_PGBIN_INT8:
		return field_int(out, k, t, v, n, scratch, why);
	case DP_PGBIN_FLOAT4:
	case DP_PGBIN_FLOAT8:
		return field_float(out, k, t, v, n, scratch, why);
	case DP_PGBIN_NUMERIC:
		return field_numeric(out, t, v, n, scratch, why);
	case DP_PGBIN_TEXT:
		if (t == DP_JSON_STRING && !memchr(v + 1, '\\', n - 2)) {
			/* No escapes: the bytes as they are (a valid JSON string
			 * holds no raw NUL; only \u0000 makes one). */
			return put32(out, (uint32_t)(n - 2)) < 0 || put(out, v + 1, n - 2) < 0 ? -1 : 0;
		}
		if (t == DP_JSON_STRING) {
			if ((rc = string_text(t, v, n, scratch)) == 2)
				return *why = LONE_SURROGATE, 1;
			if (rc != 0)
				return rc;
			if (memchr(scratch->data, '\0', scratch->len))
				return *why = "a string with a NUL character (\\u0000), which "
				              "PostgreSQL text cannot hold", 1;
			return put32(out, (uint32_t)scratch->len) < 0 ||
			       put(out, scratch->data, scratch->len) < 0 ? -1 : 0;
		}
		/* numbers, booleans, objects and arrays: as JSON text */
		__attribute__((fallthrough));
	case DP_PGBIN_JSON:
	case DP_PGBIN_JSONB: {
		const char *no;
		if (k == DP_PGBIN_JSONB && memchr(v, '\\', n) && (no = jsonb_refuses(v, n)) != NULL)
			return *why = no, 1;
		dp_buf_reset(scratch);
		if (k == DP_PGBIN_JSONB && dp_buf_addch(scratch, 1) < 0)   /* jsonb version */
			return -1;
		if (dp_json_compact(scratch, v, n) < 0)
			return -1;
		return put32(out, (uint32_t)scratch->len) < 0 ||
		       put(out, scratch->data, scratch->len) < 0 ? -1 : 0;
	}
	case DP_PGBIN_TIMESTAMPTZ:
	case DP_PGBIN_TIMESTAMP:
		return field_time(out, t, v, n, scratch, why);
	case DP_PGBIN_DATE: {
		int64_t days;
		if ((rc = string_text(t, v, n, scratch)) < 0)
			return -1;
		if (rc || dp_time_parse_date(scratch->data, &days) < 0)
			return *why = "not a date (YYYY-MM-DD)", 1;
		return put32(out, 4) < 0 || put32(out, (uint32_t)(int32_t)(days - PG_EPOCH_DAYS)) < 0
		       ? -1 : 0;
	}
	case DP_PGBIN_UUID:
		return field_uuid(out, t, v, n, scratch, why);
	default:
		return *why = "has a type dp-sink-pg cannot write", 1;
	}
}

int
dp_pgbin_is_timestamp(const char *s, size_t n, struct dp_buf *scratch)
{
	int64_t us;

	/* Cheap rejection first: "YYYY-MM-DDThh:mm:ssZ" is at least 22 bytes quoted. */
	if (n < 22 || s[0] != '"' || s[5] != '-' || s[8] != '-')
		return 0;
	dp_buf_reset(scratch);
	if (dp_json_unquote(scratch, s, n) < 0 || dp_buf_addch(scratch, '\0') < 0)
		return 0;
	return dp_time_parse_rfc3339_us(scratch->data, &us) == 0;
}
