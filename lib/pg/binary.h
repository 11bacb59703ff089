/*
 * pg/binary.h -- JSON values as fields of PostgreSQL's binary COPY format.
 *
 * COPY ... FROM STDIN (FORMAT binary) takes each field as a 32-bit length
 * and the bytes of the type's binary "send" form, so the server skips
 * parsing text; a timestamptz, for one, costs it an integer instead of a
 * date parser.  The formats come from the PostgreSQL 15 documentation
 * (sql-copy.html, "Binary Format") and the types' send functions in its
 * source (src/backend/utils/adt: boolsend, int8send, float8send,
 * numeric_send, timestamptz_send, date_send, uuid_send, jsonb_send).
 * All integers are big-endian (network order).
 *
 * How a JSON value becomes a field depends on the column's kind; the
 * rules are the ones dp-sink-pg(1) documents under COLUMNS.  A value
 * that does not fit is refused with a reason, never changed: a float
 * that would overflow, an integer that is out of range, a string with
 * a NUL character.
 */
#ifndef DP_PGBIN_H
#define DP_PGBIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "json/scan.h"

/* The 19-byte file header (signature, flags, extension length) and the trailer. */
#define DP_PGBIN_HEADER "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0"
#define DP_PGBIN_HEADER_LEN 19
#define DP_PGBIN_TRAILER "\377\377"
#define DP_PGBIN_TRAILER_LEN 2

enum dp_pgbin_kind {
	DP_PGBIN_UNSUPPORTED = 0,
	DP_PGBIN_BOOL,
	DP_PGBIN_INT2,
	DP_PGBIN_INT4,
	DP_PGBIN_INT8,
	DP_PGBIN_FLOAT4,
	DP_PGBIN_FLOAT8,
	DP_PGBIN_NUMERIC,
	DP_PGBIN_TEXT,          /* text, varchar, bpchar, and enum labels */
	DP_PGBIN_JSON,
	DP_PGBIN_JSONB,
	DP_PGBIN_TIMESTAMPTZ,
	DP_PGBIN_TIMESTAMP,     /* written as the UTC wall-clock time */
	DP_PGBIN_DATE,
	DP_PGBIN_UUID,
};

/*
 * The kind for a column whose (domain-resolved) type has this OID;
 * typtype 'e' (an enum) is written as text.  DP_PGBIN_UNSUPPORTED for
 * every other type.
 */
enum dp_pgbin_kind dp_pgbin_kind_of(uint32_t type_oid, char typtype);

/* "bigint", "timestamptz", ... for messages; static. */
const char *dp_pgbin_kind_name(enum dp_pgbin_kind k);

/*
 * Append the field for JSON value v[0..n) of type t (valid JSON, as the
 * scanner returned it) to a column of kind k.  JSON null appends SQL
 * NULL.  Returns 0; -1 when memory runs out; 1 when the value does not
 * fit the column, with *why (static text) saying why and out unchanged.
 * scratch is reused between calls (the caller owns it).
 */
int dp_pgbin_field(struct dp_buf *out, enum dp_pgbin_kind k, enum dp_json_type t,
                   const char *v, size_t n, struct dp_buf *scratch,
                   const char **why) DP_MUST_CHECK;

/* A NULL field. */
int dp_pgbin_null(struct dp_buf *out) DP_MUST_CHECK;

/* Start a tuple of nfields fields. */
int dp_pgbin_tuple(struct dp_buf *out, uint16_t nfields) DP_MUST_CHECK;

/*
 * What a JSON number's text is: 1 an integer that fits int64 (no
 * fraction, no exponent), 2 any other valid number, 0 not a JSON number.
 * Used both to check strings that stand for numbers and to infer types.
 */
int dp_pgbin_number_class(const char *s, size_t n);

/* 1 when the JSON string literal s[0..n) (with quotes) holds an RFC 3339 timestamp. */
int dp_pgbin_is_timestamp(const char *s, size_t n, struct dp_buf *scratch);

#endif
