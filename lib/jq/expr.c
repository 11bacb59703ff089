/*
 * jq/expr.c -- jq expressions on records: jq/fast.h's subset on the raw text
 * where it can answer, libjq for everything else (jq/expr.h).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jq.h>
#include <jv.h>

#include "core/log.h"
#include "core/sig.h"
#include "jq/expr.h"
#include "jq/fast.h"

struct dp_expr {
	char *src;
	struct dp_jqf *fast;     /* the subset's program, or NULL */
	struct dp_jqf_run run;   /* its scratch */
	const char *member;      /* .name: the name (borrowed from fast) */
	jq_state *jq;            /* NULL until jq must answer */
	struct dp_buf msgs;      /* messages from libjq's error callback */
	bool warned;             /* the precision warning was given */
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

/*
 * `input` and `inputs` read the records after this one in jq; dp gives
 * jq one record at a time, so either is a mistake, and an error says so
 * (an empty `inputs`, as at jq's end of input, would hide it).  Without
 * a callback libjq 1.6 says only "break".
 */
static jv
no_input(jq_state *jq, void *arg)
{
	(void)jq;
	(void)arg;
	return jv_invalid_with_msg(jv_string("input and inputs have nothing to read: "
	                                     "each record is given to jq alone"));
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
	jq_set_input_cb(e->jq, no_input, NULL);
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
	e->fast = dp_jqf_compile(src);
	if (e->fast) {
		const char *path[2];
		if (dp_jqf_path(e->fast, path, 1) == 1)
			e->member = path[0];
	}
	/*
	 * What the subset answers is compiled for libjq only when jq must
	 * answer (a record that makes jq raise an error): jq's builtins take
	 * tens of milliseconds to compile, which most runs need not pay.
	 */
	if (!e->fast && compile_jq(e, err) < 0) {
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
	dp_jqf_free(e->fast);
	dp_jqf_run_free(&e->run);
	if (e->jq)
		jq_teardown(&e->jq);
	dp_buf_free(&e->msgs);
	free(e->src);
	free(e);
}

const char *dp_expr_source(const struct dp_expr *e) { return e->src; }
const char *dp_expr_member(const struct dp_expr *e) { return e->member; }
int dp_expr_is_fast(const struct dp_expr *e) { return e->fast != NULL; }

/*
 * The subset's answer, when it has one: DP_JQF_VALUE (*t, *v, *n),
 * DP_JQF_EMPTY, or DP_JQF_NEED_JQ when libjq must decide.
 */
static enum dp_jqf_result
fast_eval(struct dp_expr *e, struct dp_expr_rec *rec, enum dp_json_type *t,
          const char **v, size_t *n, struct dp_buf *err)
{
	enum dp_jqf_result r;

	if (!e->fast)
		return DP_JQF_NEED_JQ;
	r = dp_jqf_eval(e->fast, &e->run, rec->json, rec->len, t, v, n);
	if (r == DP_JQF_NOMEM)
		dp_buf_msgf(err, "out of memory");
	return r;
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
	if (!e->warned) {
		const char *at;
		size_t len;
		if (dp_json_big_int(rec->json, rec->len, &at, &len)) {
			/* Never change data silently: say so once. */
			dp_warn("jq expression '%s' sees the integer %.*s, beyond 2^53: libjq "
			        "holds numbers as doubles and may change its last digits "
			        "(see \"jq and big numbers\" in the man page)", e->src,
			        (int)(len > 40 ? 40 : len), at);
			e->warned = true;
		}
	}
	/* libjq cannot be interrupted: a signal's watchdog looks at these (core/sig.h). */
	dp_sig_busy_enter();
	jq_start(e->jq, in, 0);
	while (jv_is_valid(r = jq_next(e->jq))) {
		dp_sig_busy_leave();
		rc = fn(ctx, r);        /* fn owns r */
		if (rc)
			return rc;      /* jq_start resets the rest next time */
		dp_sig_busy_enter();
	}
	dp_sig_busy_leave();
	if (jq_halted(e->jq)) {
		/*
		 * halt or halt_error: an error for this record.  libjq 1.6 frees
		 * the halt's message and exit code in jq_reset without forgetting
		 * them, so the next jq_start and the teardown would free them
		 * twice (heap corruption): this state goes now, and the next
		 * record compiles the program again.
		 */
		jv msg = jq_get_error_message(e->jq);
		if (jv_get_kind(msg) == JV_KIND_STRING) {
			int n = jv_string_length_bytes(jv_copy(msg));
			const char *t = jv_string_value(msg);
			while (n > 0 && t[n - 1] == '\n')
				n--;
			dp_buf_msgf(err, "jq program halted: %.*s", n, t);
		} else if (jv_is_valid(msg)) {
			msg = jv_dump_string(msg, 0);
			dp_buf_msgf(err, "jq program halted: %s", jv_string_value(msg));
		} else {
			dp_buf_msgf(err, "jq program halted (halt)");
		}
		jv_free(msg);
		jv_free(r);
		jq_teardown(&e->jq);
		return -1;
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
	switch (fast_eval(e, rec, type, &v, &n, err)) {
	case DP_JQF_VALUE:
		if (*type == DP_JSON_STRING)
			return dp_json_unquote(out, v, n);
		return dp_json_compact(out, v, n);
	case DP_JQF_EMPTY:
		*type = DP_JSON_INVALID;
		return 0;
	case DP_JQF_NOMEM:
		return -1;
	case DP_JQF_NEED_JQ:
		break;
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

	switch (fast_eval(e, rec, &t, &v, &n, err)) {
	case DP_JQF_VALUE:
		rc = dp_json_compact(&c.tmp, v, n);
		if (rc == 0)
			rc = fn(ctx, c.tmp.data, c.tmp.len);
		break;
	case DP_JQF_EMPTY:
		rc = 0;
		break;
	case DP_JQF_NOMEM:
		rc = -1;
		break;
	default:
		rc = run_jq(e, rec, each_fn, &c, err);
	}
	dp_buf_free(&c.tmp);
	return rc;
}
