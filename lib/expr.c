#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jq.h>
#include <jv.h>

#include "expr.h"

#define MAX_PATH 16

struct dp_expr {
	char *src;
	jq_state *jq;            /* NULL until jq must answer */
	size_t npath;
	char *path[MAX_PATH];
	struct dp_buf msgs;      /* messages from libjq's error callback */
};

static void
collect(void *data, jv msg)
{
	struct dp_expr *e = data;

	if (jv_get_kind(msg) == JV_KIND_STRING) {
		dp_buf_msgf(&e->msgs, "%s%s", e->msgs.len ? "; " : "", jv_string_value(msg));
	}
	jv_free(msg);
}

/* ".", ".a", ".a.b_c" -> plain path; anything else -> 0. */
static int
parse_plain(struct dp_expr *e, const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	if (strcmp(s, ".") == 0)
		return 1;
	while (*s == '.') {
		const char *id = ++s;
		if (!(isalpha((unsigned char)*s) || *s == '_'))
			return 0;
		while (isalnum((unsigned char)*s) || *s == '_')
			s++;
		if (e->npath == MAX_PATH)
			return 0;
		e->path[e->npath] = strndup(id, (size_t)(s - id));
		if (!e->path[e->npath])
			return 0;
		e->npath++;
	}
	while (isspace((unsigned char)*s))
		s++;
	return *s == '\0' && e->npath > 0;
}

static void
drop_path(struct dp_expr *e)
{
	for (size_t i = 0; i < e->npath; i++)
		free(e->path[i]);
	e->npath = 0;
}

static int
compile_jq(struct dp_expr *e, struct dp_buf *err)
{
	e->jq = jq_init();
	if (!e->jq) {
		dp_buf_msgf(err, "cannot initialize jq");
		return -1;
	}
	jq_set_error_cb(e->jq, collect, e);
	if (!jq_compile(e->jq, e->src)) {
		dp_buf_msgf(err, "cannot compile jq expression '%s': %s", e->src,
		            e->msgs.len ? e->msgs.data : "syntax error");
		return -1;
	}
	return 0;
}

struct dp_expr *
dp_expr_compile(const char *src, struct dp_buf *err)
{
	struct dp_expr *e = calloc(1, sizeof(*e));

	if (!e || !(e->src = strdup(src))) {
		free(e);
		dp_buf_msgf(err, "out of memory");
		return NULL;
	}
	if (!parse_plain(e, src))
		drop_path(e);
	/*
	 * A plain path is compiled only when jq must answer (a missing step):
	 * jq's builtins take tens of milliseconds to compile, which a short
	 * run, or one where every record has the member, need not pay.
	 */
	if (!dp_expr_is_fast(e) && compile_jq(e, err) < 0) {
		dp_expr_free(e);
		return NULL;
	}
	return e;
}

void
dp_expr_free(struct dp_expr *e)
{
	if (!e)
		return;
	drop_path(e);
	if (e->jq)
		jq_teardown(&e->jq);
	dp_buf_free(&e->msgs);
	free(e->src);
	free(e);
}

const char *dp_expr_source(const struct dp_expr *e) { return e->src; }
const char *dp_expr_member(const struct dp_expr *e) { return e->npath == 1 ? e->path[0] : NULL; }
int dp_expr_is_fast(const struct dp_expr *e) { return e->npath > 0 || strcmp(e->src, ".") == 0; }

/*
 * The plain-path answer: 1 with the value's text when every step exists,
 * 0 when jq must decide (a missing step may be null or an error).
 */
static int
fast_get(struct dp_expr *e, struct dp_expr_rec *rec, enum dp_json_type *t,
         const char **v, size_t *n)
{
	if (!dp_expr_is_fast(e))
		return 0;
	*t = dp_json_get(rec->json, rec->len, (const char *const *)e->path,
	                 e->npath, v, n);
	return *n > 0;
}

void
dp_expr_rec_clear(struct dp_expr_rec *rec)
{
	if (rec && rec->jv_cache) {
		jv *p = rec->jv_cache;
		jv_free(*p);
		free(p);
		rec->jv_cache = NULL;
	}
}

static int
rec_jv(struct dp_expr_rec *rec, jv *out, struct dp_buf *err)
{
	if (!rec->jv_cache && rec->len > DP_EXPR_MAX_BYTES) {
		dp_buf_msgf(err, "record of %zu bytes is too large for jq (at most %zu)",
		            rec->len, DP_EXPR_MAX_BYTES);
		return -1;
	}
	if (!rec->jv_cache) {
		jv *p = malloc(sizeof(*p));
		if (!p) {
			dp_buf_msgf(err, "out of memory");
			return -1;
		}
		*p = jv_parse_sized(rec->json, (int)rec->len);
		rec->jv_cache = p;
	}
	jv v = *(jv *)rec->jv_cache;
	if (!jv_is_valid(v)) {
		jv msg = jv_invalid_get_msg(jv_copy(v));
		dp_buf_msgf(err, "cannot parse JSON: %s",
		            jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "invalid");
		jv_free(msg);
		return -1;
	}
	*out = jv_copy(v);
	return 0;
}

static enum dp_json_type
kind_type(jv v)
{
	switch (jv_get_kind(v)) {
	case JV_KIND_NULL: return DP_JSON_NULL;
	case JV_KIND_FALSE: return DP_JSON_FALSE;
	case JV_KIND_TRUE: return DP_JSON_TRUE;
	case JV_KIND_NUMBER: return DP_JSON_NUMBER;
	case JV_KIND_STRING: return DP_JSON_STRING;
	case JV_KIND_ARRAY: return DP_JSON_ARRAY;
	case JV_KIND_OBJECT: return DP_JSON_OBJECT;
	default: return DP_JSON_INVALID;
	}
}

/* Runs jq; fn gets each result (ownership passes to fn). */
typedef int (*jv_fn)(void *ctx, jv v);

static int
run_jq(struct dp_expr *e, struct dp_expr_rec *rec, jv_fn fn, void *ctx,
       struct dp_buf *err)
{
	jv in, r;
	int rc = 0;

	if (!e->jq && compile_jq(e, err) < 0) {
		if (e->jq)
			jq_teardown(&e->jq);
		return -1;
	}
	if (rec_jv(rec, &in, err) < 0)
		return -1;
	jq_start(e->jq, in, 0);
	while (jv_is_valid(r = jq_next(e->jq))) {
		rc = fn(ctx, r);        /* fn owns r */
		if (rc)
			return rc;      /* jq_start resets the rest next time */
	}
	if (jv_invalid_has_msg(jv_copy(r))) {
		jv msg = jv_invalid_get_msg(r);
		if (jv_get_kind(msg) == JV_KIND_STRING) {
			dp_buf_msgf(err, "jq error: %s", jv_string_value(msg));
		} else {
			msg = jv_dump_string(msg, 0);
			dp_buf_msgf(err, "jq error (not a string): %s", jv_string_value(msg));
		}
		jv_free(msg);
		return -1;
	}
	jv_free(r);
	return 0;
}

struct first_ctx {
	enum dp_json_type *type;
	struct dp_buf *out;
};

static int
put_text(struct dp_buf *out, jv v)
{
	int rc;

	if (jv_get_kind(v) == JV_KIND_STRING) {
		rc = dp_buf_add(out, jv_string_value(v), (size_t)jv_string_length_bytes(jv_copy(v)));
		jv_free(v);
		return rc;
	}
	jv s = jv_dump_string(v, 0);
	rc = dp_buf_add(out, jv_string_value(s), (size_t)jv_string_length_bytes(jv_copy(s)));
	jv_free(s);
	return rc;
}

static int
first_fn(void *ctx, jv v)
{
	struct first_ctx *c = ctx;

	*c->type = kind_type(v);
	if (put_text(c->out, v) < 0)
		return -1;
	return 1;
}

int
dp_expr_first(struct dp_expr *e, struct dp_expr_rec *rec, enum dp_json_type *type,
              struct dp_buf *out, struct dp_buf *err)
{
	const char *v;
	size_t n;

	*type = DP_JSON_INVALID;
	if (fast_get(e, rec, type, &v, &n)) {
		if (*type == DP_JSON_STRING)
			return dp_json_unquote(out, v, n);
		return dp_json_compact(out, v, n);
	}
	struct first_ctx c = { type, out };
	int rc = run_jq(e, rec, first_fn, &c, err);
	return rc < 0 ? -1 : 0;
}

struct each_ctx {
	dp_expr_fn fn;
	void *ctx;
	struct dp_buf tmp;
};

static int
each_fn(void *ctx, jv v)
{
	struct each_ctx *c = ctx;

	dp_buf_reset(&c->tmp);
	jv s = jv_dump_string(v, 0);
	int rc = dp_buf_add(&c->tmp, jv_string_value(s), (size_t)jv_string_length_bytes(jv_copy(s)));
	jv_free(s);
	if (rc < 0)
		return -1;
	return c->fn(c->ctx, c->tmp.data, c->tmp.len);
}

int
dp_expr_each(struct dp_expr *e, struct dp_expr_rec *rec, dp_expr_fn fn, void *ctx,
             struct dp_buf *err)
{
	struct each_ctx c = { fn, ctx, DP_BUF_INIT };
	enum dp_json_type t;
	const char *v;
	size_t n;
	int rc;

	if (fast_get(e, rec, &t, &v, &n)) {
		rc = dp_json_compact(&c.tmp, v, n);
		if (rc == 0)
			rc = fn(ctx, c.tmp.data, c.tmp.len);
	} else {
		rc = run_jq(e, rec, each_fn, &c, err);
	}
	dp_buf_free(&c.tmp);
	return rc;
}
