/*
 * json/scan.h -- a fast validating JSON scanner and small JSON writers.
 *
 * dp validates every input line but rarely needs a tree: a producer only
 * has to know that a line is one well-formed JSON value and maybe pull a
 * field or two out of it.  Building a jv for that costs several times
 * more than the Kafka client itself, so this module scans text in place.
 * Anything beyond plain paths goes through jq/expr.h (libjq).
 *
 * Nothing here allocates except the dp_buf writers.
 */
#ifndef DP_JSON_H
#define DP_JSON_H

#include <stddef.h>

#include "core/buf.h"

#define DP_JSON_MAX_DEPTH 1024

enum dp_json_type {
	DP_JSON_INVALID = 0,
	DP_JSON_NULL,
	DP_JSON_FALSE,
	DP_JSON_TRUE,
	DP_JSON_NUMBER,
	DP_JSON_STRING,
	DP_JSON_ARRAY,
	DP_JSON_OBJECT,
};

/*
 * Check that s[0..n) holds exactly one JSON value (RFC 8259), with
 * optional white space around it, and that it is valid UTF-8 (JSON text
 * outside strings is ASCII, so only strings need the check).  Returns
 * the value's type, or DP_JSON_INVALID with *why (static) and *off (byte
 * offset) set.
 */
enum dp_json_type dp_json_check(const char *s, size_t n, const char **why, size_t *off);

/* The same, and *compact (may be NULL) tells whether s has no white space
 * outside strings: such text can be printed as it is, byte for byte. */
enum dp_json_type dp_json_check_compact(const char *s, size_t n, const char **why,
                                        size_t *off, int *compact);

/*
 * The same, and while checking, find the top-level member named member
 * (an object's key; the last one of duplicates, as jq): *v and *vn get
 * its value's text (borrowed from s), or NULL and 0 when the value is not
 * an object or has no such member.  One pass instead of check + get.
 */
enum dp_json_type dp_json_check_member(const char *s, size_t n, const char *member,
                                       const char **v, size_t *vn, const char **why,
                                       size_t *off, int *compact);

/*
 * The same check, and while checking, hand each member of a top-level
 * object to fn as soon as its value is scanned: the name's literal as
 * written (quotes and escapes included) and the value's text, borrowed
 * from s, with the value's type.  One pass instead of check + a walk.
 * fn returning non-zero stops the scan: the result is then
 * DP_JSON_INVALID with *why NULL.  fn may have seen members of a text
 * that turns out invalid further on.  A value that is not an object is
 * checked, and fn never called.
 */
typedef int (*dp_json_member_fn)(void *ctx, const char *key, size_t klen, const char *v,
                                 size_t vn, enum dp_json_type t);
enum dp_json_type dp_json_check_members(const char *s, size_t n, dp_json_member_fn fn,
                                        void *ctx, const char **why, size_t *off);

/*
 * Find the member at path[0].path[1]... in the valid JSON text s[0..n).
 * Returns the type of the value found and sets *v and *vn to its text
 * (borrowed from s).  When a step is missing or is not an object it
 * returns DP_JSON_NULL with *vn 0: the caller decides between jq's null
 * and jq's error (jq/expr.c asks libjq).  Of duplicate keys the last wins,
 * as in jq.
 */
enum dp_json_type dp_json_get(const char *s, size_t n, const char *const *path,
                              size_t npath, const char **v, size_t *vn);

/*
 * The first integer literal in the valid JSON text s[0..n) whose magnitude
 * is beyond 2^53, where a double (libjq 1.6's only number) stops holding
 * every integer: 1 with *at and *len set to its text, else 0.
 */
int dp_json_big_int(const char *s, size_t n, const char **at, size_t *len);

/*
 * Walk the members of an object, in order, duplicates included.  s[0..n)
 * must be valid JSON (dp_json_check said so).  Start with *pos 0; each
 * call sets *key and *klen to the next member name's literal as written
 * (quotes and escapes included; dp_json_unquote decodes it) and *v and
 * *vn to its value's text, all borrowed from s, and returns the value's
 * type.  After the last member, or when s is not an object, it returns
 * DP_JSON_INVALID.
 */
enum dp_json_type dp_json_next_member(const char *s, size_t n, size_t *pos, const char **key,
                                      size_t *klen, const char **v, size_t *vn);

/*
 * Walk the elements of an array, in order, the same way: start with *pos
 * 0; each call sets *v and *vn to the next element's text (borrowed from
 * s) and returns its type; after the last one, or when s is not an
 * array, it returns DP_JSON_INVALID.  s[0..n) must be valid JSON.
 */
enum dp_json_type dp_json_next_element(const char *s, size_t n, size_t *pos, const char **v,
                                       size_t *vn);

/* The type of the valid JSON value that starts at p. */
enum dp_json_type dp_json_type_of(const char *p);

/* Append valid JSON text without the white space outside strings. */
int dp_json_compact(struct dp_buf *out, const char *s, size_t n) DP_MUST_CHECK;

/*
 * Append the decoded contents of a JSON string literal (with quotes).  A
 * lone surrogate escape (\ud800 without its pair) becomes U+FFFD, as jq
 * does: right for comparing strings as jq would, wrong for carrying bytes.
 */
int dp_json_unquote(struct dp_buf *out, const char *s, size_t n) DP_MUST_CHECK;

/*
 * The same, for callers that must carry the bytes the text stands for: a
 * lone surrogate escape has no UTF-8 form, so instead of a replacement
 * it returns -2 with *bad set to the escape's offset in s.  -1 when
 * memory runs out or s is no string literal.
 */
int dp_json_unquote_exact(struct dp_buf *out, const char *s, size_t n,
                          size_t *bad) DP_MUST_CHECK;

/* The value of a hex digit, or -1 (for \u escapes, and anyone else's hex). */
static inline int
dp_hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Append bytes as a JSON string literal, escaping as needed. */
int dp_json_quote(struct dp_buf *out, const char *s, size_t n) DP_MUST_CHECK;

#endif
