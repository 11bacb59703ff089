/*
 * jq/fast.h -- the part of jq's language dp answers on raw JSON text.
 *
 * libjq builds a tree of every record and, in Debian 12's libjq 1.6,
 * holds every number as a double: an id such as 288230376151711744 comes
 * out as 288230376151711740.  The expressions people write most only move
 * values around and compare them, and for those dp needs neither the
 * tree nor the doubles.  This module compiles that subset of jq and
 * evaluates it on the record's text, so values keep their original bytes
 * and no tree is built.  Anything outside the subset, or a record that
 * would make jq raise an error, is left to libjq (jq/expr.h), which then
 * gives jq's own answer.  Operands are evaluated in jq's order (see
 * jq/fast.c), so that the subset answers a value or "no value" only where
 * jq gives that value, or none, and no error.
 *
 * The subset (with jq's own precedence and meaning):
 *   .   .a   .a.b   ."a b"   .["a b"]        paths, also after any term
 *   "text"  123  -1.5  true  false  null     literals
 *   A == B  !=  <  <=  >  >=                  jq's order: null < false <
 *                                             true < numbers < strings
 *                                             (bytewise) < arrays < objects
 *   A and B    A or B    not                  jq's truthiness
 *   select(F)    tostring    (F)    F | G
 *   {a, "b c", d: F, "e": F}                  object construction
 * Numbers compare as doubles, as in jq.  Values are copied as their
 * original text (compacted), so they are equal to jq's as JSON values and
 * keep every digit; tostring of a number is its original text.
 *
 * A compiled program is immutable and may be shared; evaluation needs a
 * struct dp_jqf_run of its own per thread.
 */
#ifndef DP_JQFAST_H
#define DP_JQFAST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "json/scan.h"

struct dp_jqf;

/*
 * Compile src; NULL when it is outside the subset, longer than 1000
 * tokens (the subset recurses once per level: a deeper expression is
 * libjq's), or memory runs out.
 */
struct dp_jqf *dp_jqf_compile(const char *src);
void dp_jqf_free(struct dp_jqf *f);

/* Scratch space of one evaluation; reuse it, free with dp_jqf_run_free. */
struct dp_jqf_run {
	struct dp_buf arena;
	struct dp_buf tmp;
};
#define DP_JQF_RUN_INIT { DP_BUF_INIT, DP_BUF_INIT }
void dp_jqf_run_free(struct dp_jqf_run *r);

enum dp_jqf_result {
	DP_JQF_VALUE,      /* one result */
	DP_JQF_EMPTY,      /* no result (select said no) and no error */
	DP_JQF_NEED_JQ,    /* jq must answer this record (it would raise an error) */
	DP_JQF_NOMEM,
};

/*
 * Evaluate f on the valid JSON text json[0..n).  On DP_JQF_VALUE *type
 * and *v, *vn give the result's JSON text, borrowed from json or from run
 * (valid until the next evaluation with run); it may contain white space
 * copied from the record.
 */
enum dp_jqf_result dp_jqf_eval(const struct dp_jqf *f, struct dp_jqf_run *run,
                               const char *json, size_t n, enum dp_json_type *type,
                               const char **v, size_t *vn);

/*
 * Evaluate f as a condition: *truth gets jq's truthiness of the result
 * (no result counts as false, as select() treats it).  Returns
 * DP_JQF_VALUE, DP_JQF_NEED_JQ or DP_JQF_NOMEM.
 */
enum dp_jqf_result dp_jqf_test(const struct dp_jqf *f, struct dp_jqf_run *run,
                               const char *json, size_t n, bool *truth);

/*
 * When f is the plain path .a.b... (at most max steps), the steps into
 * path[] (borrowed from f) and their count; else 0.  For callers that
 * pick a member out while validating instead of evaluating.
 */
size_t dp_jqf_path(const struct dp_jqf *f, const char **path, size_t max);

/*
 * When f is a conjunction of equality tests of plain paths against
 * string or number literals -- `.fsym == "BTC" and .tsym == "EUR"` -- call
 * fn once per test with the path and the literal's JSON text, and return
 * 1; else return 0 without calling fn.  A router can then index many such
 * filters by the compared values instead of evaluating each one.
 */
typedef void (*dp_jqf_eq_fn)(void *ctx, const char *const *path, size_t npath,
                             const char *lit, size_t litlen);
int dp_jqf_equalities(const struct dp_jqf *f, dp_jqf_eq_fn fn, void *ctx);

#endif
