/*
 * jq/expr.h -- jq expressions applied to one JSON record at a time.
 *
 * An expression is compiled once and evaluated per record.  Plain paths
 * such as ".", ".fsym" or ".a.b" are answered by json/scan.h's scanner without
 * building a jv tree; anything else goes through libjq.  Both give the
 * same results, so callers never know which path ran.
 *
 * A record (struct dp_expr_rec) carries the raw JSON text and lazily the
 * parsed jv, so several expressions over one line parse it only once.
 */
#ifndef DP_EXPR_H
#define DP_EXPR_H

#include <limits.h>
#include <stddef.h>

#include "core/buf.h"
#include "json/scan.h"

/*
 * The largest JSON text libjq 1.6 parses: jv_parse_sized takes an int
 * length.  Longer records are refused with a message, never truncated.
 */
#define DP_EXPR_MAX_BYTES ((size_t)INT_MAX)

struct dp_expr;

struct dp_expr_rec {
	const char *json;     /* borrowed, valid JSON text */
	size_t len;
	void *jv_cache;       /* private: parsed jv, owned by the record */
};

#define DP_EXPR_REC(text, n) { (text), (n), NULL }

/*
 * Compile src.  On failure returns NULL and appends a message that names
 * the expression to err.  The result is owned by the caller
 * (dp_expr_free).
 */
struct dp_expr *dp_expr_compile(const char *src, struct dp_buf *err);
void dp_expr_free(struct dp_expr *e);
const char *dp_expr_source(const struct dp_expr *e);
/*
 * "name" when the expression is the plain path .name (borrowed), else
 * NULL: callers may then pick the member out while validating the line
 * (dp_json_check_member) and skip evaluating it.
 */
const char *dp_expr_member(const struct dp_expr *e);
/* 1 when the expression is answered without libjq. */
int dp_expr_is_fast(const struct dp_expr *e);

/*
 * Evaluate e on rec and keep the first result.  Its type goes to *type and
 * its text to out: a string's decoded contents, or the compact JSON text
 * of any other value.  No result at all gives DP_JSON_INVALID with out
 * empty and returns 0.  A jq runtime error returns -1 and appends the
 * message to err.
 */
int dp_expr_first(struct dp_expr *e, struct dp_expr_rec *rec,
                  enum dp_json_type *type, struct dp_buf *out, struct dp_buf *err);

/*
 * Evaluate e on rec and call fn once per result with its compact JSON
 * text.  Stops early when fn returns non-zero (that value is returned).
 * A jq runtime error returns -1 and appends the message to err.
 */
typedef int (*dp_expr_fn)(void *ctx, const char *json, size_t len);
int dp_expr_each(struct dp_expr *e, struct dp_expr_rec *rec, dp_expr_fn fn,
                 void *ctx, struct dp_buf *err);

/* Release the record's cached parse (rec itself is the caller's). */
void dp_expr_rec_clear(struct dp_expr_rec *rec);

#endif
