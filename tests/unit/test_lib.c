/*
 * test_lib -- unit checks for lib/ that are hard to reach through a
 * command (a 16 MiB line would exceed a broker's message size).
 *
 * usage: test_lib CASE [ARG...]    (tests/lib.bats runs each case)
 * Prints what it observed; exits 0 when the case holds, 1 otherwise.
 * The producer and consumer cases talk to the broker in $DP_BROKERS.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jv.h>

#include "cc/rest.h"
#include "cc/stream.h"
#include "cc/ws.h"
#include "core/backoff.h"
#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/file.h"
#include "core/frame.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/opt.h"
#include "core/out.h"
#include "core/secret.h"
#include "core/sig.h"
#include "core/table.h"
#include "core/timefmt.h"
#include "dyn/decide.h"
#include "dyn/route.h"
#include "dyn/spec.h"
#include "jq/expr.h"
#include "jq/fast.h"
#include "json/base64.h"
#include "json/envelope.h"
#include "json/scan.h"
#include "json/write.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "kafka/consumer.h"
#include "kafka/onerror.h"
#include "obs/endpoint.h"
#include "obs/health.h"
#include "obs/metrics.h"
#include "obs/obs.h"
#include "status/status.h"
#include "status/top.h"
#include "kafka/producer.h"
#include "topic/topics.h"
#include "pg/binary.h"
#include "pg/conn.h"
#include "pg/sink.h"
#include "pg/sqlstate.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	return 1; } } while (0)

/* A reader over the bytes s[0..n), fed through a pipe by a child. */
static struct dp_lines *
reader_for(const char *s, size_t n, unsigned flags, pid_t *child)
{
	int fd[2];

	if (pipe(fd) < 0)
		return NULL;
	*child = fork();
	if (*child == 0) {
		close(fd[0]);
		while (n > 0) {
			ssize_t w = write(fd[1], s, n > 4096 ? 4096 : n);
			if (w <= 0)
				_exit(1);
			s += w;
			n -= (size_t)w;
		}
		_exit(0);
	}
	close(fd[1]);
	return dp_lines_new(fd[0], flags);
}

static int
t_lines_basic(void)
{
	const char in[] = "{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":3}";
	const char *l;
	size_t n;
	pid_t c;
	struct dp_lines *r = reader_for(in, sizeof(in) - 1, DP_LINES_STRICT, &c);

	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && n == 7 && !strcmp(l, "{\"a\":1}"));
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && n == 0);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "{\"b\":2}"));
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "{\"c\":3}"));
	CHECK(dp_lines_lineno(r) == 4);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_EOF);
	dp_lines_free(r);
	waitpid(c, NULL, 0);
	printf("ok crlf, empty line, last line without newline, 4 lines\n");
	return 0;
}

/*
 * What a stop leaves of a file is counted without moving it (the reading
 * goes on where it was); a pipe's rest is unknown.  And the one wording
 * of what was and was not delivered.
 */
static int
t_lines_unread(void)
{
	char path[] = "/tmp/dp-test-unread-XXXXXX";
	int fd = mkstemp(path);
	const char *l;
	size_t n;
	pid_t c;

	CHECK(fd >= 0);
	unlink(path);
	CHECK(write(fd, "a\nb\n\nc\nd", 8) == 8 && lseek(fd, 0, SEEK_SET) == 0);
	struct dp_lines *r = dp_lines_new(fd, 0);
	CHECK(r && dp_lines_unread(r) == 5);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "a"));
	CHECK(dp_lines_unread(r) == 4);         /* b, the empty one, c, d */
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "b"));
	CHECK(dp_lines_unread(r) == 3);
	while (dp_lines_next(r, &l, &n) == DP_LINES_OK)
		;
	CHECK(!strcmp(l, "d") && dp_lines_unread(r) == 0);
	dp_lines_free(r);
	close(fd);
	r = reader_for("x\n", 2, 0, &c);
	CHECK(r && dp_lines_unread(r) == -1);
	dp_lines_free(r);
	waitpid(c, NULL, 0);

	struct dp_buf b = DP_BUF_INIT;
	dp_cmd_say_undelivered(&b, "line", 12, 3, 5);
	CHECK(!strcmp(dp_buf_str(&b), "12 lines delivered, 8 not delivered (5 of them not read)"));
	dp_buf_reset(&b);
	dp_cmd_say_undelivered(&b, "line", 1, 0, 7);
	CHECK(!strcmp(dp_buf_str(&b), "1 line delivered, 7 not delivered (not read)"));
	dp_buf_reset(&b);
	dp_cmd_say_undelivered(&b, "line", 0, 2, -1);
	CHECK(!strcmp(dp_buf_str(&b), "0 lines delivered, 2 read and not delivered, the rest of the input not read"));
	dp_buf_free(&b);
	printf("ok the rest of a file counted, a pipe's unknown\n");
	return 0;
}

/* Lines handed over by dp_lines_swap stay intact while reading goes on. */
static int
t_lines_swap(void)
{
	const char in[] = "one\ntwo\nthree\nfour";
	const char *l1, *l2, *l;
	size_t n;
	pid_t c;
	char *mine = NULL;
	size_t cap = 0;
	struct dp_lines *r = reader_for(in, sizeof(in) - 1, 0, &c);

	waitpid(c, NULL, 0);    /* all of it in the pipe: one read gets it */
	CHECK(dp_lines_next(r, &l1, &n) == DP_LINES_OK && !strcmp(l1, "one"));
	CHECK(dp_lines_next(r, &l2, &n) == DP_LINES_OK && !strcmp(l2, "two"));
	CHECK(dp_lines_swap(r, &mine, &cap) == 0 && mine != NULL && cap > 0);
	CHECK(l1 >= mine && l1 < mine + cap);   /* the lines now live in mine */
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "three"));
	CHECK(l < mine || l >= mine + cap);     /* and reading went on elsewhere */
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "four"));
	CHECK(dp_lines_lineno(r) == 4);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_EOF);
	/* Reading on may reuse nothing of mine. */
	CHECK(!strcmp(l1, "one") && !strcmp(l2, "two"));
	/* A swap back hands over the second buffer and reuses the first. */
	char *back = mine;
	CHECK(dp_lines_swap(r, &mine, &cap) == 0 && mine != back);
	free(mine);
	dp_lines_free(r);
	printf("ok swapped lines stay put, reading goes on\n");
	return 0;
}

static int
t_lines_long(void)
{
	size_t big = 16u << 20;
	char *in = malloc(big + 64);
	const char *l;
	size_t n;
	pid_t c;

	memcpy(in, "{\"s\":\"", 6);
	memset(in + 6, 'x', big);
	memcpy(in + 6 + big, "\"}\nnext\n", 8);
	struct dp_lines *r = reader_for(in, big + 14, DP_LINES_STRICT, &c);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK);
	CHECK(n == big + 8 && l[n - 1] == '}' && l[n] == '\0');
	const char *why;
	size_t off;
	CHECK(dp_json_check(l, n, &why, &off) == DP_JSON_OBJECT);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "next"));
	CHECK(dp_lines_lineno(r) == 2);
	dp_lines_free(r);
	free(in);
	waitpid(c, NULL, 0);
	printf("ok 16 MiB line read whole, line 2 intact\n");
	return 0;
}

static int
t_lines_bad(void)
{
	const char in[] = "{\"a\":1}\n{\"b\":\"\xff\"}\n{\"c\0\":1}\n\xe2\x82\xac\n";
	const char *l;
	size_t n;
	pid_t c;
	struct dp_lines *r = reader_for(in, sizeof(in) - 1, DP_LINES_STRICT, &c);

	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_BAD);
	printf("line %lu: %s at byte %zu\n", dp_lines_lineno(r), dp_lines_error(r),
	       dp_lines_error_offset(r) + 1);
	CHECK(!strcmp(dp_lines_error(r), "invalid UTF-8") && dp_lines_error_offset(r) == 6);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_BAD);
	printf("line %lu: %s at byte %zu\n", dp_lines_lineno(r), dp_lines_error(r),
	       dp_lines_error_offset(r) + 1);
	CHECK(!strcmp(dp_lines_error(r), "NUL byte") && dp_lines_lineno(r) == 3);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && n == 3);   /* the euro sign */
	dp_lines_free(r);
	waitpid(c, NULL, 0);
	return 0;
}

static int
t_json(void)
{
	static const char *good[] = { "{}", "[]", " 1 ", "-0.5e+3", "\"\\u00e9\\n\"",
		"{\"a\":[1,{\"b\":null}],\"c\":true}", "false", NULL };
	static const char *bad[] = { "", "{", "{\"a\"}", "[1,]", "01", "1.", "\"\x01\"",
		"{\"a\":1} x", "'x'", "[1 2]", "{\"a\":1,}", "tru", "\"\\x\"", NULL };
	const char *why;
	size_t off;

	for (int i = 0; good[i]; i++)
		CHECK(dp_json_check(good[i], strlen(good[i]), &why, &off) != DP_JSON_INVALID);
	for (int i = 0; bad[i]; i++) {
		CHECK(dp_json_check(bad[i], strlen(bad[i]), &why, &off) == DP_JSON_INVALID);
		printf("rejected %-14s %s at byte %zu\n", bad[i], why, off + 1);
	}
	/* One pass: validate and pick out a top-level member. */
	static const struct { const char *doc, *key, *want; } mem[] = {
		{ "{\"a\":1,\"fsym\":\"BTC\",\"z\":[1]}", "fsym", "\"BTC\"" },
		{ "{\"o\":{\"fsym\":1},\"fsym\":{\"x\":[]}}", "fsym", "{\"x\":[]}" },
		{ "{\"fsym\":1,\"fsym\":2}", "fsym", "2" },
		{ "{\"f\\u0073ym\":true}", "fsym", "true" },
		{ "{\"fsym\":{}}", "fsym", "{}" },
		{ "[{\"fsym\":1}]", "fsym", NULL },
		{ "{\"o\":{\"fsym\":1}}", "fsym", NULL },
	};
	for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++) {
		const char *v;
		size_t vn;
		CHECK(dp_json_check_member(mem[i].doc, strlen(mem[i].doc), mem[i].key, &v, &vn,
		                           &why, &off, NULL) != DP_JSON_INVALID);
		if (!mem[i].want)
			CHECK(v == NULL);
		else
			CHECK(v && vn == strlen(mem[i].want) && !memcmp(v, mem[i].want, vn));
	}
	/* Deep nesting is an error, not a crash. */
	char deep[5000];
	memset(deep, '[', sizeof(deep));
	CHECK(dp_json_check(deep, sizeof(deep), &why, &off) == DP_JSON_INVALID);
	return 0;
}

static int
first(const char *expr, const char *json, const char *want)
{
	struct dp_buf err = DP_BUF_INIT, out = DP_BUF_INIT;
	struct dp_expr *e = dp_expr_compile(expr, &err);
	struct dp_expr_rec rec = DP_EXPR_REC(json, strlen(json));
	enum dp_json_type t;
	int ok;

	if (!e) {
		printf("compile %s: %s\n", expr, err.data);
		return 0;
	}
	int rc = dp_expr_first(e, &rec, &t, &out, &err);
	ok = rc == 0 && !strcmp(out.data ? out.data : "", want);
	printf("%s %s on %s -> %s%s\n", ok ? "ok" : "FAIL", expr, json,
	       out.data ? out.data : "", err.data ? err.data : "");
	dp_expr_rec_clear(&rec);
	dp_expr_free(e);
	dp_buf_free(&err);
	dp_buf_free(&out);
	return ok;
}

static int
t_expr(void)
{
	CHECK(first(".fsym", "{\"fsym\":\"BTC\",\"p\":1}", "BTC"));
	CHECK(first(".a.b", "{\"a\":{\"b\":[1, 2]}}", "[1,2]"));
	CHECK(first(".a", "{\"a\":1,\"a\":2}", "2"));            /* last duplicate */
	CHECK(first(".missing", "{\"a\":1}", "null"));
	CHECK(first(".k", "{\"k\":\"\\u00e9\\\"\"}", "\xc3\xa9\""));
	CHECK(first("\"prices.\" + .fsym", "{\"fsym\":\"ETH\"}", "prices.ETH"));
	CHECK(first(".p * 2", "{\"p\":1.5}", "3"));

	struct dp_buf err = DP_BUF_INIT, out = DP_BUF_INIT;
	CHECK(dp_expr_compile(".a[", &err) == NULL);
	printf("compile error: %s\n", err.data);
	CHECK(strstr(err.data, ".a[") != NULL);
	dp_buf_reset(&err);
	struct dp_expr *e = dp_expr_compile(".a", &err);
	struct dp_expr_rec rec = DP_EXPR_REC("[1]", 3);
	enum dp_json_type t;
	CHECK(dp_expr_first(e, &rec, &t, &out, &err) < 0);    /* jq: cannot index array */
	printf("runtime error: %s\n", err.data);
	dp_expr_rec_clear(&rec);
	dp_expr_free(e);
	dp_buf_free(&err);
	dp_buf_free(&out);
	return 0;
}

/* Every output of e on json, one JSON text per line, or "error". */
static int
collect_out(void *ctx, const char *json, size_t len)
{
	struct dp_buf *b = ctx;

	return dp_buf_add(b, json, len) < 0 || dp_buf_addch(b, '\n') < 0 ? -1 : 0;
}

static void
outputs(struct dp_expr *e, const char *json, struct dp_buf *out)
{
	struct dp_buf err = DP_BUF_INIT;
	struct dp_expr_rec rec = DP_EXPR_REC(json, strlen(json));

	dp_buf_reset(out);
	if (dp_expr_each(e, &rec, collect_out, out, &err) < 0) {
		dp_buf_reset(out);
		if (dp_buf_addstr(out, "error") < 0)
			out->lost = true;
	}
	dp_expr_rec_clear(&rec);
	dp_buf_free(&err);
}

/* The same JSON values, line by line (jv compares numbers as doubles). */
static int
same_values(const char *a, const char *b)
{
	if (!strcmp(a, "error") || !strcmp(b, "error"))
		return !strcmp(a, b);
	for (;;) {
		const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
		if (!ea || !eb)
			return !ea && !eb;
		jv x = jv_parse_sized(a, (int)(ea - a)), y = jv_parse_sized(b, (int)(eb - b));
		int eq = jv_equal(jv_copy(x), jv_copy(y));
		/* tostring of a big integer: ours keeps the digits jq rounds. */
		if (!eq && jv_get_kind(x) == JV_KIND_STRING && jv_get_kind(y) == JV_KIND_STRING) {
			char *e1, *e2;
			double dx = strtod(jv_string_value(x), &e1), dy = strtod(jv_string_value(y), &e2);
			eq = !*e1 && !*e2 && e1 != jv_string_value(x) && dx == dy;
		}
		jv_free(x);
		jv_free(y);
		if (!eq)
			return 0;
		a = ea + 1;
		b = eb + 1;
	}
}

/*
 * jq/fast.h against libjq: each expression of the subset, compiled as dp
 * does (fast) and hidden from the subset inside a def (libjq), gives the
 * same values or the same failure on every record.
 */
static int
t_jqfast(void)
{
	static const char *const exprs[] = {
		".", ".a", ".a.b", ".\"a b\"", ".[\"a b\"]", ".a[\"b\"]", ".a == \"x\"",
		".a != 1", ".n > 3", ".n <= 3.5", "-1 < .n", ".a == \"x\" and .b == \"y\"",
		".a == \"x\" or .n > 1", "(.a == \"x\") | not", ".a | not", "select(.n > 2)",
		"select(.a == \"x\") | {a, n}", "{a, b: .x.y, \"c d\": .c}", ".n | tostring",
		".a | tostring", ".o | tostring", "{a} | .a", "null == .zz", ".a < .b", "true",
		"\"lit\"", "{x: .a | tostring}", ".n == 1", ".o == .o", ".s >= \"b\"",
		".e == \"A\"", "select(.a) | .b", ".a.b.c", "{\"k\": 1, m: null}",
		".u > .e", "(.n)", ".x | .y", "select(.n == 1 or .zz == null)",
	};
	static const char *const recs[] = {
		"{\"a\":\"x\",\"b\":\"y\",\"n\":5,\"c\":[1, 2]}",
		"{\"a\":1,\"n\":1.0,\"b\":null,\"x\":{\"y\":\"z\"}}",
		"{\"a\":{\"b\":{\"c\":true}},\"n\":-2e1,\"a b\":3}",
		"{\"e\":\"\\u0041\",\"u\":\"\u00e9\",\"s\":\"b\",\"o\":{\"p\":[1,{}]}}",
		"{\"n\":288230376151711744,\"a\":\"x\"}",
		"{\"a\":[1],\"x\":5}", "5", "null", "\"str\"", "[1,2]", "{}",
		"{\"a\":true,\"b\":false,\"o\":{}}",
	};
	struct dp_buf fast = DP_BUF_INIT, slow = DP_BUF_INIT, err = DP_BUF_INIT;
	int bad = 0;

	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		struct dp_buf src = DP_BUF_INIT;
		CHECK(dp_buf_addf(&src, "def dp_slow: %s; dp_slow", exprs[i]) == 0);
		struct dp_expr *f = dp_expr_compile(exprs[i], &err);
		struct dp_expr *j = dp_expr_compile(src.data, &err);
		CHECK(f && j);
		if (!dp_expr_is_fast(f)) {
			printf("FAIL not in the subset: %s\n", exprs[i]);
			bad++;
		}
		CHECK(!dp_expr_is_fast(j));
		for (size_t k = 0; k < sizeof(recs) / sizeof(recs[0]); k++) {
			outputs(f, recs[k], &fast);
			outputs(j, recs[k], &slow);
			if (!same_values(dp_buf_str(&fast), dp_buf_str(&slow))) {
				printf("FAIL %s on %s: fast %s, jq %s\n", exprs[i], recs[k],
				       dp_buf_str(&fast), dp_buf_str(&slow));
				bad++;
			}
		}
		dp_expr_free(f);
		dp_expr_free(j);
		dp_buf_free(&src);
	}
	/* Outside the subset: left to libjq. */
	static const char *const other[] = { ".a + 1", ".a, .b", ".[0]", ".a?", "..", "$x",
		".a == .b == .c", "{(.a): 1}", "{a: 1, a: 2}", "not(.a)", "select", "length",
		/* jq reads these numbers, JSON does not (found by fuzz_jqfast) */
		"2.", "01", "-01", "{a: 1.}", "select(.n > 00)" };
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		struct dp_jqf *q = dp_jqf_compile(other[i]);
		if (q) {
			printf("FAIL taken by the subset: %s\n", other[i]);
			bad++;
		}
		dp_jqf_free(q);
	}
	/* A record that is one number ends where its length says, not at a
	 * delimiter (found by fuzz_jqfast: "2" read on into "25"). */
	struct dp_jqf *gt = dp_jqf_compile("select(. > 9)");
	struct dp_jqf_run run = DP_JQF_RUN_INIT;
	bool truth = true;
	CHECK(gt && dp_jqf_test(gt, &run, "25", 1, &truth) == DP_JQF_VALUE && !truth);
	CHECK(dp_jqf_test(gt, &run, "25", 2, &truth) == DP_JQF_VALUE && truth);
	dp_jqf_run_free(&run);
	dp_jqf_free(gt);
	/* Values keep their bytes: big integers and tostring of them. */
	CHECK(first("{id,n}", "{\"id\":288230376151711744,\"n\":13911860366432393}",
	            "{\"id\":288230376151711744,\"n\":13911860366432393}"));
	CHECK(first(".n|tostring", "{\"n\":13911860366432393}", "13911860366432393"));
	dp_buf_free(&fast);
	dp_buf_free(&slow);
	dp_buf_free(&err);
	printf("%d disagreements\n", bad);
	return bad ? 1 : 0;
}

/* dyn/route.h: collects the topics a record takes. */
static int
route_hit(void *ctx, const char *topic)
{
	struct dp_buf *b = ctx;

	return dp_buf_addstr(b, topic) < 0 || dp_buf_addch(b, ' ') < 0 ? -1 : 0;
}

/* libjq's answer: the first result is neither false nor null; an error is no. */
static int
jq_says(struct dp_expr *slow, const char *json)
{
	struct dp_expr_rec rec = DP_EXPR_REC(json, strlen(json));
	struct dp_buf out = DP_BUF_INIT, err = DP_BUF_INIT;
	enum dp_json_type t;
	int rc = dp_expr_first(slow, &rec, &t, &out, &err);

	dp_expr_rec_clear(&rec);
	dp_buf_free(&out);
	dp_buf_free(&err);
	return rc == 0 && t != DP_JSON_INVALID && t != DP_JSON_NULL && t != DP_JSON_FALSE;
}

/*
 * The router (index, jqfast, libjq) against libjq alone: every filter of
 * the corpus, one route each and all together, on every record, gives
 * the answer jq gives.
 */
static int
t_route(void)
{
	static const char *const filters[] = {
		".fsym == \"BTC\"", ".fsym == \"BTC\" and .tsym == \"EUR\"",
		"\"EUR\" == .tsym and .fsym == \"BTC\"", "(.fsym == \"BTC\") and (.tsym == \"USD\")",
		".n == 1", ".n == 1.0", ".n == -0", ".n == 1e2", ".n == 288230376151711744",
		".a.b == \"x\"", ".a.b == \"x\" and .fsym == \"BTC\"", ".fsym == \"B\\u0054C\"",
		".e == \"A\"", ".fsym == \"BTC\" and .fsym == \"ETH\"",
		".fsym == \"BTC\" and .fsym == \"BTC\"", ".\"a b\" == 3", ".u == \"\u00e9\"",
		".fsym == \"ETH\"", ".tsym == \"EUR\" and .fsym == \"ETH\"",
		/* not equalities: jqfast or libjq */
		".price > 100", ".fsym == \"BTC\" or .fsym == \"ETH\"", ".n >= 1 and .n < 3",
		".fsym != \"BTC\"", "select(.fsym == \"BTC\")", ".flag", ".missing", ".a.b.c",
		".fsym | test(\"^B\")", ".tags | index(\"x\")", ".n + 1 > 2", ".fsym == .tsym",
		"null", "true", ".a == null", "(.n | tostring) == \"1\"",
	};
	static const char *const recs[] = {
		"{\"fsym\":\"BTC\",\"tsym\":\"EUR\",\"price\":100.5,\"n\":1}",
		"{\"fsym\":\"BTC\",\"tsym\":\"USD\",\"price\":\"200\",\"n\":1.0}",
		"{\"fsym\":\"ETH\",\"fsym\":\"BTC\",\"tsym\":\"EUR\"}",
		"{\"fsym\":\"BTC\",\"fsym\":\"ETH\",\"tsym\":\"EUR\"}",
		"{\"f\\u0073ym\":\"BTC\",\"tsym\":\"EUR\"}", "{\"fsym\":\"B\\u0054C\"}",
		"{\"e\":\"\\u0041\",\"u\":\"\\u00e9\"}", "{\"n\":-0.0}", "{\"n\":1e0}", "{\"n\":100}",
		"{\"n\":288230376151711745}", "{\"a\":{\"b\":\"x\"},\"fsym\":\"BTC\"}",
		"{\"a\":5,\"fsym\":\"BTC\"}", "{\"a\":null}", "{\"a\":[1]}", "{\"a\":{\"b\":{\"c\":1}}}",
		"{\"a b\":3}", "{\"tags\":[\"y\",\"x\"],\"flag\":false}", "{\"flag\":0}", "{}",
		"5", "null", "\"str\"", "[1]", " { \"fsym\" : \"BTC\" , \"tsym\" : \"EUR\" } ",
		"{\"fsym\":\"BTC\",\"tsym\":\"BTC\"}", "{\"fsym\":1,\"tsym\":1}", "{\"n\":2,\"fsym\":true}",
	};
	size_t nf = sizeof(filters) / sizeof(filters[0]), nr = sizeof(recs) / sizeof(recs[0]);
	struct dp_route_spec *all = calloc(nf, sizeof(*all));
	struct dp_expr **slow = calloc(nf, sizeof(*slow));
	char (*names)[16] = calloc(nf, sizeof(*names));
	struct dp_buf got = DP_BUF_INIT, want = DP_BUF_INIT, err = DP_BUF_INIT;
	struct dp_route *one = dp_route_new(), *every = dp_route_new();
	int bad = 0;

	dp_log_init("test_lib");
	/* The warnings about big integers and failing filters are not the point here. */
	dp_log_set_level(DP_LOG_QUIET);
	CHECK(all && slow && names && one && every);
	for (size_t i = 0; i < nf; i++) {
		struct dp_buf src = DP_BUF_INIT;
		snprintf(names[i], sizeof(names[i]), "dyn.%zu", i);
		all[i] = (struct dp_route_spec){ names[i], "s", filters[i] };
		CHECK(dp_buf_addf(&src, "def dp_slow: %s; dp_slow", filters[i]) == 0);
		CHECK((slow[i] = dp_expr_compile(src.data, &err)) && !dp_expr_is_fast(slow[i]));
		dp_buf_free(&src);
	}
	CHECK(dp_route_set(every, all, nf) == 0);
	/* The equality filters (and their duplicates and contradictions) stay out of jq. */
	printf("%zu routes, %zu indexed\n", dp_route_count(every), dp_route_indexed(every));
	CHECK(dp_route_count(every) == nf && dp_route_indexed(every) == 18);
	for (size_t k = 0; k < nr; k++) {
		dp_buf_reset(&want);
		for (size_t i = 0; i < nf; i++) {
			int yes = jq_says(slow[i], recs[k]);
			CHECK(dp_route_set(one, &all[i], 1) == 0);
			dp_buf_reset(&got);
			CHECK(dp_route_match(one, "s", recs[k], strlen(recs[k]), 1, route_hit,
			                     &got) == 0);
			if ((got.len > 0) != yes) {
				printf("FAIL %s on %s: router %s, jq %s\n", filters[i], recs[k],
				       got.len ? "yes" : "no", yes ? "yes" : "no");
				bad++;
			}
			if (yes)
				CHECK(dp_buf_addf(&want, "%s ", names[i]) == 0);
		}
		/* All at once: the same set (sorted, as the index gives no order). */
		dp_buf_reset(&got);
		CHECK(dp_route_match(every, "s", recs[k], strlen(recs[k]), 1, route_hit,
		                     &got) == 0);
		char *a = strdup(dp_buf_str(&got)), *b = strdup(dp_buf_str(&want));
		size_t na = 0, nb = 0;
		for (char *t = strtok(a, " "); t; t = strtok(NULL, " "))
			na++;
		for (char *t = strtok(b, " "); t; t = strtok(NULL, " "))
			nb++;
		for (size_t i = 0; i < nf; i++) {
			char needle[20];
			snprintf(needle, sizeof(needle), "%s ", names[i]);
			bool in_got = false, in_want = strstr(dp_buf_str(&want), needle) != NULL;
			for (const char *p = dp_buf_str(&got); (p = strstr(p, needle)); p++)
				if (p == dp_buf_str(&got) || p[-1] == ' ')
					in_got = true;
			if (in_want && !strstr(dp_buf_str(&want), needle))
				in_want = false;
			if (in_got != in_want) {
				printf("FAIL all routes on %s: %s %s\n", recs[k], filters[i],
				       in_got ? "taken" : "missed");
				bad++;
			}
		}
		if (na != nb) {
			printf("FAIL all routes on %s: %zu taken, jq says %zu\n", recs[k], na, nb);
			bad++;
		}
		free(a);
		free(b);
		/* Another source takes nothing. */
		dp_buf_reset(&got);
		CHECK(dp_route_match(every, "other", recs[k], strlen(recs[k]), 1, route_hit,
		                     &got) == 0 && got.len == 0);
	}
	/* A route into itself (a producer-initiated topic) is never taken. */
	struct dp_route_spec self = { "s", "s", "." };
	CHECK(dp_route_set(one, &self, 1) == 0 && dp_route_count(one) == 0);
	/* Changing the set keeps what stays; a filter that does not compile is left out. */
	struct dp_route_spec two[2] = { all[0], { "dyn.bad", "s", ".a ==" } };
	CHECK(dp_route_set(every, two, 2) == 0 && dp_route_count(every) == 1);
	for (size_t i = 0; i < nf; i++)
		dp_expr_free(slow[i]);
	free(slow);
	free(all);
	free(names);
	dp_route_free(one);
	dp_route_free(every);
	dp_buf_free(&got);
	dp_buf_free(&want);
	dp_buf_free(&err);
	printf("%zu filters on %zu records: %d disagreements\n", nf, nr, bad);
	return bad ? 1 : 0;
}

static int
t_parse(void)
{
	int64_t ms, ms2;
	uint64_t u;

	dp_log_init("test_lib");
	CHECK(dp_parse_duration("d", "500ms", &ms) == 0 && ms == 500);
	CHECK(dp_parse_duration("d", "1m30s", &ms) == 0 && ms == 90000);
	CHECK(dp_parse_duration("d", "10", &ms) == 0 && ms == 10000);
	CHECK(dp_parse_duration("d", "10x", &ms) < 0);
	CHECK(dp_parse_size("s", "64M", 1, UINT64_MAX, "x", &u) == 0 && u == (64u << 20));
	CHECK(dp_parse_size("s", "512K", 1, UINT64_MAX, "x", &u) == 0 && u == 524288);
	CHECK(dp_parse_size("s", "1G", 1, UINT64_MAX, "x", &u) == 0 && u == (1u << 30));
	CHECK(dp_parse_size("s", "4096", 1, UINT64_MAX, "x", &u) == 0 && u == 4096);
	CHECK(dp_parse_size("s", "0", 1, UINT64_MAX, "x", &u) < 0);
	CHECK(dp_parse_size("s", "2G", 1, (uint64_t)1 << 30, "1G", &u) < 0);
	CHECK(dp_parse_size("s", "99999999999999999999G", 1, UINT64_MAX, "x", &u) < 0);
	CHECK(dp_parse_size("s", "1KB", 1, UINT64_MAX, "x", &u) < 0);
	CHECK(dp_parse_size("s", "-1", 1, UINT64_MAX, "x", &u) < 0);
	CHECK(dp_parse_duration("d", "", &ms) < 0);
	CHECK(dp_parse_duration("d", "-1s", &ms) < 0);
	/* What dp_duration_format prints reads back (found by fuzz_parsers). */
	char dbuf[48];
	CHECK(dp_parse_duration("d", "1500000000s", &ms) == 0 && ms == 1500000000000LL);
	CHECK(!strcmp(dp_duration_format(ms, dbuf), "17361d2h40m"));
	CHECK(dp_parse_duration("d", "999999955d2h", &ms) == 0);
	CHECK(dp_parse_duration("d", dp_duration_format(ms, dbuf), &ms2) == 0 && ms2 == ms);
	CHECK(dp_parse_duration("d", "30000000000d", &ms) < 0);
	CHECK(dp_parse_duration("d", "99999999999999999999s", &ms) < 0);
	CHECK(dp_parse_u64("n", "42", 0, 100, &u) == 0 && u == 42);
	CHECK(dp_parse_u64("n", "42abc", 0, 100, &u) < 0);
	CHECK(dp_parse_u64("n", "101", 0, 100, &u) < 0);
	CHECK(dp_parse_u64("n", " 1", 0, 100, &u) < 0);
	CHECK(dp_time_parse("2024-01-02T03:04:05Z", &ms) == 0 && ms == 1704164645000);
	CHECK(dp_time_parse("2024-01-02T04:04:05.250+01:00", &ms) == 0 && ms == 1704164645250);
	CHECK(dp_time_parse("1704164645", &ms) == 0 && ms == 1704164645000);
	CHECK(dp_time_parse("1704164645250", &ms) == 0 && ms == 1704164645250);
	CHECK(dp_time_parse("2024-02-30T00:00:00Z", &ms) < 0);
	char b[DP_TIME_BUFSZ];
	CHECK(!strcmp(dp_time_format(1704164645250, b), "2024-01-02T03:04:05.250Z"));
	CHECK(!strcmp(dp_time_format(1704164645000, b), "2024-01-02T03:04:05Z"));
	printf("ok durations, integers, times\n");
	return 0;
}

static int
t_base64(void)
{
	struct dp_buf e = DP_BUF_INIT, d = DP_BUF_INIT;
	const char raw[] = "\x00\xff\x10 binary";

	for (size_t n = 0; n <= sizeof(raw) - 1; n++) {
		dp_buf_reset(&e);
		dp_buf_reset(&d);
		CHECK(dp_base64_encode(&e, raw, n) == 0);
		CHECK(dp_base64_decode(&d, e.data, e.len) == 0);
		CHECK(d.len == n && memcmp(d.data, raw, n) == 0);
	}
	CHECK(dp_base64_decode(&d, "abc", 3) < 0);
	CHECK(dp_base64_decode(&d, "a=bc", 4) < 0);
	dp_buf_free(&e);
	dp_buf_free(&d);
	printf("ok base64 round trips\n");
	return 0;
}

/* A time that must be refused, and the reason given. */
static int
refused(const char *s, const char *why_part)
{
	int64_t ms = 42;
	const char *why = NULL;

	if (dp_time_parse_why(s, &ms, &why) == 0 || ms != 42) {
		printf("accepted %s\n", s);
		return 0;
	}
	printf("refused %s: %s\n", s, why);
	return why && strstr(why, why_part) != NULL;
}

static int
t_times(void)
{
	int64_t ms;

	/* Days that exist, including leap days. */
	CHECK(dp_time_parse("2024-02-29T00:00:00Z", &ms) == 0 && ms == 1709164800000);
	CHECK(dp_time_parse("2000-02-29T12:00:00Z", &ms) == 0 && ms == 951825600000);
	CHECK(dp_time_parse("2024-12-31T23:59:59.999Z", &ms) == 0 && ms == 1735689599999);
	CHECK(dp_time_parse("9999-12-31T23:59:59.999Z", &ms) == 0 && ms == DP_TIME_MAX_MS);
	/* Days that do not: never rolled over into the next month. */
	CHECK(refused("2025-02-29T00:00:00Z", "no such day"));
	CHECK(refused("1900-02-29T00:00:00Z", "no such day"));
	CHECK(refused("2024-04-31T00:00:00Z", "no such day"));
	CHECK(refused("2024-01-00T00:00:00Z", "no such day"));
	CHECK(refused("2024-13-01T00:00:00Z", "no such month"));
	CHECK(refused("2024-00-01T00:00:00Z", "no such month"));
	CHECK(refused("2024-01-01T24:00:00Z", "no such time"));
	CHECK(refused("2024-01-01T12:60:00Z", "no such time"));
	CHECK(refused("2016-12-31T23:59:60Z", "leap second"));
	CHECK(refused("2024-01-01T00:00:00+24:00", "no such UTC offset"));
	CHECK(refused("9999-12-31T23:59:59-01:00", "after the year 9999"));
	CHECK(dp_time_parse_rfc3339("2025-02-29T00:00:00Z", &ms) < 0);
	/* Epoch numbers: decimal as JSON writes them, in range. */
	CHECK(dp_time_parse("1.7e9", &ms) == 0 && ms == 1700000000000);
	CHECK(dp_time_parse("1704164645.5", &ms) == 0 && ms == 1704164645500);
	CHECK(dp_time_parse_epoch("253402300799999", &ms) == 0 && ms == DP_TIME_MAX_MS);
	CHECK(refused("253402300800000", "after the year 9999"));
	CHECK(refused("0x10", "not RFC 3339"));
	CHECK(refused("inf", "not RFC 3339"));
	CHECK(refused("nan", "not RFC 3339"));
	CHECK(refused("-1", "not RFC 3339"));
	CHECK(refused(" 1", "not RFC 3339"));
	CHECK(refused("1.", "not RFC 3339"));
	CHECK(refused("2025-02-29", "not RFC 3339"));
	printf("ok impossible dates refused\n");
	return 0;
}

static int
t_backoff(void)
{
	struct dp_backoff b, b2;
	static const int64_t exact[] = { 100, 200, 400, 800, 1000, 1000 };

	dp_backoff_init(&b, 100, 1000, 0, 7);
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		CHECK(dp_backoff_next(&b, -1) == exact[i]);
	CHECK(b.attempts == 6);
	dp_backoff_reset(&b);
	CHECK(dp_backoff_next(&b, -1) == 100);
	/* A hint (Retry-After) lengthens the delay, never past the cap. */
	dp_backoff_reset(&b);
	CHECK(dp_backoff_next(&b, 300) == 300);
	CHECK(dp_backoff_next(&b, INT64_MAX) == 1000);
	/* Equal jitter: between half and all of the doubled delay; seeded. */
	dp_backoff_init(&b, 100, 1000, 0.5, 42);
	dp_backoff_init(&b2, 100, 1000, 0.5, 42);
	for (unsigned i = 0; i < 200; i++) {
		int64_t full = i >= 4 ? 1000 : 100 << i, d = dp_backoff_next(&b, 0);
		CHECK(d >= full / 2 && d <= full);
		CHECK(dp_backoff_next(&b2, 0) == d);
	}
	/* A reconnect loop that runs for months: no overflow. */
	dp_backoff_init(&b, INT64_MAX / 3, INT64_MAX, 1, 1);
	b.attempts = ~0u - 1;
	for (int i = 0; i < 3; i++) {
		int64_t d = dp_backoff_next(&b, 0);
		CHECK(d >= 0 && d <= INT64_MAX);
	}
	CHECK(b.attempts == ~0u);
	/* Out-of-range settings are clamped. */
	dp_backoff_init(&b, 0, -5, 7, 1);
	CHECK(b.base_ms == 1 && b.cap_ms == 1 && b.jitter == 1);
	/* The sleep: the whole time, or at once when stopped. */
	atomic_int stop = 0;
	int64_t t0 = dp_time_mono_ms();
	CHECK(dp_backoff_sleep(50, &stop) == 0 && dp_time_mono_ms() - t0 >= 50);
	stop = 15;
	t0 = dp_time_mono_ms();
	CHECK(dp_backoff_sleep(60000, &stop) < 0 && dp_time_mono_ms() - t0 < 100);
	CHECK(dp_backoff_sleep_until(dp_time_now_ms() + 60000, &stop) < 0);
	CHECK(dp_backoff_sleep_until(dp_time_now_ms() - 1000, NULL) == 0);
	printf("ok backoff\n");
	return 0;
}

static int
t_file(void)
{
	char dir[] = "/tmp/dp-test-file.XXXXXX", path[256], missing[256], notdir[256];
	struct dp_buf err = DP_BUF_INIT;
	struct stat sb;
	char got[16] = "";
	int fd, fd2;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/state", dir);
	CHECK(dp_file_replace(path, "state file", "one\n", 4, &err) == 0);
	CHECK(chmod(path, 0600) == 0);
	CHECK(dp_file_replace(path, "state file", "two\n", 4, &err) == 0);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && read(fd, got, sizeof(got)) == 4 && !strcmp(got, "two\n"));
	close(fd);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	/* A missing directory is named; nothing is left behind. */
	snprintf(missing, sizeof(missing), "%s/no/such/state", dir);
	CHECK(dp_file_replace(missing, "state file", "x", 1, &err) < 0);
	printf("%s\n", dp_buf_str(&err));
	CHECK(strstr(dp_buf_str(&err), "directory ") && strstr(dp_buf_str(&err), "/no/such does not exist"));
	dp_buf_reset(&err);
	snprintf(notdir, sizeof(notdir), "%s/state/sub/x.lock", dir);
	CHECK(dp_file_lock(notdir, &err) == -1);
	printf("%s\n", dp_buf_str(&err));
	CHECK(strstr(dp_buf_str(&err), "/state is not a directory"));
	dp_buf_reset(&err);
	/* The lock: exclusive, even within one process (separate open files). */
	snprintf(path, sizeof(path), "%s/state.lock", dir);
	fd = dp_file_lock(path, &err);
	CHECK(fd >= 0);
	CHECK(dp_file_lock(path, &err) == -2);
	close(fd);
	fd2 = dp_file_lock(path, &err);
	CHECK(fd2 >= 0);
	close(fd2);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state", dir);
	unlink(path);
	CHECK(rmdir(dir) == 0);     /* no temporary file was left */
	dp_buf_free(&err);
	printf("ok atomic replace and lock\n");
	return 0;
}

/* dp_cc_parse's verdict on a body. */
static enum dp_cc_verdict
verdict(const char *body, struct dp_buf *msg, struct dp_buf *api)
{
	jv root;
	int type;
	enum dp_cc_verdict v;

	dp_buf_reset(msg);
	dp_buf_reset(api);
	v = dp_cc_parse(body, strlen(body), &root, &type, msg, api);
	jv_free(root);
	printf("%d %s\n", (int)v, dp_buf_str(msg));
	return v;
}

static int
t_ccerrors(void)
{
	struct dp_buf msg = DP_BUF_INIT, api = DP_BUF_INIT;

	/* A Type no int can hold is no Type (found by fuzz_cc: undefined behaviour). */
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"x\",\"Type\":9.99e20}", &msg,
	              &api) == DP_CC_APIERR);
	CHECK(strstr(dp_buf_str(&msg), "(Type -1)"));
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"x\",\"Type\":99.5}", &msg,
	              &api) == DP_CC_APIERR);
	/* JSON as every dp path reads it: libjq's nan is not JSON. */
	CHECK(verdict("{\"RAW\":nan}", &msg, &api) == DP_CC_MALFORMED);
	CHECK(strstr(dp_buf_str(&msg), "not valid JSON (unexpected character at byte 8)"));
	dp_buf_reset(&msg);
	/* The same condition with Type 1 (2018) and Type 2 (later). */
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"Binance market does not exist for "
	              "this coin pair (ETH-USD)\",\"Type\":1,\"Aggregated\":false,\"Data\":[]}",
	              &msg, &api) == DP_CC_NOPAIR);
	CHECK(dp_cc_names_pair(dp_buf_str(&api), "eth", "usd"));
	CHECK(!dp_cc_names_pair(dp_buf_str(&api), "ETH", "US"));
	CHECK(!dp_cc_names_pair(dp_buf_str(&api), "ETH", "BTC"));
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"cccagg_or_exchange market does not "
	              "exist for this coin pair (ETH-BTCDDD)\",\"HasWarning\":false,\"Type\":2,"
	              "\"RateLimit\":{},\"Data\":{},\"Cooldown\":0}", &msg, &api) == DP_CC_NOPAIR);
	CHECK(dp_cc_names_pair(dp_buf_str(&api), "ETH", "BTCDDD"));
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"You need a valid auth key or api key "
	              "to access this endpoint\",\"Type\":1,\"Data\":{}}", &msg, &api) == DP_CC_AUTH);
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"tsym is a required param.\","
	              "\"Type\":2,\"ParamWithError\":\"tsym\"}", &msg, &api) == DP_CC_PARAM);
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"You are over your rate limit please "
	              "upgrade your account!\",\"Type\":99}", &msg, &api) == DP_CC_RATELIMIT);
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"over the rate limit\",\"Type\":2}",
	              &msg, &api) == DP_CC_RATELIMIT);
	/* Type alone says nothing more. */
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"Something else\",\"Type\":1}",
	              &msg, &api) == DP_CC_APIERR);
	CHECK(verdict("{\"Response\":\"Error\",\"Message\":\"Path does not exist\",\"Type\":0}",
	              &msg, &api) == DP_CC_APIERR);
	CHECK(verdict("{\"Response\":\"Success\",\"Data\":{}}", &msg, &api) == DP_CC_OK);
	CHECK(verdict("[1]", &msg, &api) == DP_CC_MALFORMED);
	dp_buf_free(&msg);
	dp_buf_free(&api);
	printf("ok api errors told apart by Message\n");
	return 0;
}

/* n one-minute candles from t0 on, with price p. */
static struct dp_cc_candle *
candles(int64_t t0, size_t n, double p)
{
	struct dp_cc_candle *k = calloc(n ? n : 1, sizeof(*k));

	for (size_t i = 0; k && i < n; i++) {
		k[i].time = t0 + (int64_t)i * 60;
		for (int j = 0; j < DP_CC_NV; j++)
			k[i].v[j] = p;
	}
	return k;
}

static int
t_ccseries(void)
{
	struct dp_cc_series s = { 0 };
	struct dp_cc_candle *out;
	size_t n;
	bool done;
	int64_t to;
	unsigned limit;
	const int64_t t = 1733916600;          /* 2024-12-11T11:30:00Z */
	struct dp_cc_window w = { .now_ms = (t + 63) * 1000, .settle_ms = 5000,
	                          .has_since = true, .since_ms = (t - 600) * 1000,
	                          .page_size = 2000 };

	/* 11:31:03: 11:30 ended 3 s ago, not settled: the newest closed is 11:29. */
	CHECK(dp_cc_series_plan(&s, DP_CC_MINUTE, &w) == 1);
	CHECK(s.forward && s.live && s.lo == t - 600 && s.hi == t - 60 && s.top == t + 60);
	CHECK(!dp_cc_series_closed(&s, t) && dp_cc_series_closed(&s, t - 60));
	/* The request reaches the present: toTs is the open candle, 11:31. */
	dp_cc_series_request(&s, &to, &limit);
	CHECK(to == t + 60 && limit == 11 && s.req_live);
	/* The API's clock is behind: its newest is 11:28, which is open for it. */
	CHECK(dp_cc_series_take(&s, candles(t - 600, 9, 1), 9, &out, &n, &done) == 0);
	CHECK(done && n == 8 && out[n - 1].time == t - 180);
	CHECK(!dp_cc_series_closed(&s, t - 120) && dp_cc_series_closed(&s, t - 180));
	dp_cc_candles_free(out, n);
	/* With --settle 0, 11:30 is closed at 11:31:03. */
	w.settle_ms = 0;
	CHECK(dp_cc_series_plan(&s, DP_CC_MINUTE, &w) == 1 && s.hi == t);
	/* --until before the settled range: nothing is live, toTs is hi. */
	w.has_until = true;
	w.until_ms = (t - 120) * 1000;
	CHECK(dp_cc_series_plan(&s, DP_CC_MINUTE, &w) == 1 && !s.live && s.hi == t - 180);
	dp_cc_series_request(&s, &to, &limit);
	CHECK(to == t - 180 && !s.req_live);
	/* Small pages: the one that reaches hi reaches the present. */
	w.has_until = false;
	w.page_size = 4;
	CHECK(dp_cc_series_plan(&s, DP_CC_MINUTE, &w) == 1);
	dp_cc_series_request(&s, &to, &limit);
	CHECK(to == t - 360 && limit == 4 && !s.req_live);
	CHECK(dp_cc_series_take(&s, candles(t - 600, 5, 1), 5, &out, &n, &done) == 0);
	CHECK(!done && n == 5);
	dp_cc_candles_free(out, n);
	dp_cc_series_request(&s, &to, &limit);
	CHECK(to == t - 60 && limit == 4 && !s.req_live);
	CHECK(dp_cc_series_take(&s, candles(t - 300, 5, 1), 5, &out, &n, &done) == 0);
	CHECK(!done && n == 5);
	dp_cc_candles_free(out, n);
	dp_cc_series_request(&s, &to, &limit);
	CHECK(to == t + 60 && limit == 1 && s.req_live);
	CHECK(dp_cc_series_take(&s, candles(t, 2, 1), 2, &out, &n, &done) == 0);
	CHECK(done && n == 1 && out[0].time == t);    /* 11:31 is the API's newest */
	dp_cc_candles_free(out, n);
	/* Backward: zeros end the history; the newest answer is open. */
	w.has_since = false;
	w.page_size = 5;
	CHECK(dp_cc_series_plan(&s, DP_CC_MINUTE, &w) == 1 && !s.forward);
	dp_cc_series_request(&s, &to, &limit);
	CHECK(to == t + 60 && limit == 5);
	CHECK(dp_cc_series_take(&s, candles(t - 240, 6, 1), 6, &out, &n, &done) == 0 && !done);
	dp_cc_series_request(&s, &to, &limit);
	CHECK(to == t - 240);
	struct dp_cc_candle *k = candles(t - 540, 6, 1);
	k[0].v[0] = k[0].v[1] = k[0].v[2] = k[0].v[3] = k[0].v[4] = k[0].v[5] = 0;
	CHECK(dp_cc_series_take(&s, k, 6, &out, &n, &done) == 0 && done);
	CHECK(n == 9 && out[0].time == t - 480 && out[n - 1].time == t);
	for (size_t i = 1; i < n; i++)
		CHECK(out[i].time == out[i - 1].time + 60);
	dp_cc_candles_free(out, n);
	dp_cc_series_clear(&s);
	printf("ok candle series\n");
	return 0;
}

/* Candle sizes: labels, sizes, the aggregate, the page limit, the URL. */
static int
t_intervals(void)
{
	static const struct { const char *s; int64_t secs; unsigned agg, max; } iv[] = {
		{ "minute", 60, 1, 2000 }, { "5m", 300, 5, 400 }, { "15m", 900, 15, 133 },
		{ "30m", 1800, 30, 66 }, { "1h", 3600, 1, 2000 }, { "2h", 7200, 2, 1000 },
		{ "4h", 14400, 4, 500 }, { "12h", 43200, 12, 166 }, { "day", 86400, 1, 2000 },
		{ "3d", 259200, 3, 666 }, { "1w", 604800, 7, 285 },
	};
	struct dp_buf url = DP_BUF_INIT;
	enum dp_cc_interval v;

	for (size_t i = 0; i < sizeof(iv) / sizeof(iv[0]); i++) {
		CHECK(dp_cc_interval_parse(iv[i].s, &v) == 0);
		CHECK(dp_cc_interval_secs(v) == iv[i].secs && dp_cc_interval_aggregate(v) == iv[i].agg &&
		      dp_cc_interval_max_limit(v) == iv[i].max);
	}
	CHECK(dp_cc_interval_parse("week", &v) < 0 && dp_cc_interval_parse("1M", &v) < 0);
	/* toTs asks up to the last base candle of the newest candle wanted. */
	CHECK(dp_cc_interval_parse("4h", &v) == 0);
	CHECK(dp_cc_url_histo(&url, "http://x", v, "BTC", "USD", NULL, 2, 1733875200) == 0);
	printf("%s\n", url.data);
	CHECK(!strcmp(url.data, "http://x/data/v2/histohour?fsym=BTC&tsym=USD&limit=2&aggregate=4"
	              "&aggregatePredictableTimePeriods=true&toTs=1733886000"));
	dp_buf_reset(&url);
	CHECK(dp_cc_interval_parse("1d", &v) == 0);
	CHECK(dp_cc_url_histo(&url, "http://x", v, "BTC", "USD", "Kraken", 5, 86400) == 0);
	CHECK(!strcmp(url.data, "http://x/data/v2/histoday?fsym=BTC&tsym=USD&limit=5&toTs=86400&e=Kraken"));
	dp_buf_free(&url);
	printf("ok intervals\n");
	return 0;
}

static char last_member[64];

static int
count_member(void *arg, const char *k, size_t kn, const char *v, size_t vn, enum dp_json_type t)
{
	(*(int *)arg)++;
	snprintf(last_member, sizeof(last_member), "%.*s=%.*s", (int)kn, k, (int)vn, v);
	return t == DP_JSON_TRUE;   /* stop at a true */
}

/* The record writer's quoted-once keys, and the members of a checked object. */
static int
t_jsonw(void)
{
	struct dp_buf b = DP_BUF_INIT;
	struct dp_jw w;
	struct dp_jw_pkey k1, k2, k3;
	const char *why;
	size_t off;
	int n = 0;

	CHECK(dp_jw_pkey(&k1, "price") == 0 && dp_jw_pkey(&k2, "id") == 0 &&
	      dp_jw_pkey(&k3, "t") == 0);
	CHECK(dp_jw_pkey(&k3, "a\"b") < 0);
	dp_jw_init(&w, &b);
	dp_jw_obj(&w);
	dp_jw_praw(&w, &k1, "1.50", 4);
	dp_jw_pstr(&w, &k2, "a\"b\n", 4);
	dp_jw_pnull(&w, &k3);
	dp_jw_kstr(&w, "x", "y");
	dp_jw_kraw(&w, "q\"", "[1]", 3);
	dp_jw_end(&w);
	CHECK(dp_jw_finish(&w) == 0);
	printf("%s\n", b.data);
	CHECK(!strcmp(b.data, "{\"price\":1.50,\"id\":\"a\\\"b\\n\",\"t\":null,\"x\":\"y\","
	              "\"q\\\"\":[1]}"));
	CHECK(dp_json_check_members(b.data, b.len, count_member, &n, &why, &off) ==
	      DP_JSON_OBJECT && n == 5);
	/* Only the top level's members, with their values' whole text. */
	n = 0;
	last_member[0] = '\0';
	CHECK(dp_json_check_members(" { \"a\" : { \"b\": [1, \"]\"] } , \"c\":2 } ", 37,
	                            count_member, &n, &why, &off) == DP_JSON_OBJECT && n == 2);
	CHECK(!strcmp(last_member, "\"c\"=2"));
	n = 0;
	CHECK(dp_json_check_members("[{\"a\":1}]", 9, count_member, &n, &why, &off) ==
	      DP_JSON_ARRAY && n == 0);
	/* The callback stops the scan: invalid, with no reason. */
	n = 0;
	CHECK(dp_json_check_members("{\"a\":1,\"b\":true,\"c\":2}", 22, count_member, &n, &why,
	                            &off) == DP_JSON_INVALID && n == 2 && why == NULL);
	dp_buf_free(&b);
	printf("ok jsonw\n");
	return 0;
}

/* Feed messages to a streamer engine writing to a file; returns the file's text. */
static char *
feed(struct dp_ccs *c, struct dp_out *o, int fd, const char *const *msgs, int *last)
{
	static char text[16384];
	ssize_t n;

	for (; *msgs; msgs++)
		*last = dp_ccs_message(c, *msgs, strlen(*msgs), 1700000000000);
	if (dp_out_flush(o) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    (n = read(fd, text, sizeof(text) - 1)) < 0)
		return NULL;
	text[n] = '\0';
	return text;
}

static int
t_ccstream(void)
{
	char path[] = "/tmp/dp-test-ccs.XXXXXX";
	int fd = mkstemp(path), last;
	struct dp_out *o = dp_out_new(fd, 4096);
	struct dp_ccs *c = dp_ccs_new(&(struct dp_ccs_opts){ .out = o, .max_records = 5 });
	struct dp_buf err = DP_BUF_INIT, sub = DP_BUF_INIT;
	char *out;

	CHECK(fd >= 0 && o && c);
	unlink(path);
	/* Subscriptions: checked, no duplicates, types with records only. */
	CHECK(dp_ccs_subscribe(c, "5~CCCAGG~BTC", &err) < 0);
	CHECK(dp_ccs_subscribe(c, "11~BTC", &err) < 0 && strstr(dp_buf_str(&err), "type 11"));
	CHECK(dp_ccs_subscribe(c, "24~CCCAGG~BTC~USD~X", &err) < 0);
	CHECK(dp_ccs_subscribe(c, "5~CC CAGG~BTC~USD", &err) < 0);
	CHECK(dp_ccs_subscribe_list(c, "5~CCCAGG~BTC~USD,0~Coinbase~BTC~USD", &err) == 0);
	CHECK(dp_ccs_subscribe(c, "5~cccagg~btc~usd", &err) < 0 && strstr(dp_buf_str(&err), "twice"));
	CHECK(dp_ccs_subscribe_pairs(c, "trade", NULL, NULL, 0, NULL, 0, "m", &err) < 0 &&
	      strstr(dp_buf_str(&err), "needs --market"));
	CHECK(dp_ccs_connected(c, &sub) == 0);
	printf("%s\n", sub.data);
	CHECK(!strcmp(sub.data, "{\"action\":\"SubAdd\",\"subs\":[\"5~CCCAGG~BTC~USD\","
	              "\"0~Coinbase~BTC~USD\"]}"));
	/* Acks, TYPE as a number or a string; a partial update before the full one. */
	static const char *const m1[] = {
		"{\"TYPE\":16,\"MESSAGE\":\"SUBSCRIBECOMPLETE\",\"SUB\":\"5~CCCAGG~BTC~USD\"}",
		"{\"TYPE\":\"5\",\"MARKET\":\"CCCAGG\",\"FROMSYMBOL\":\"BTC\",\"TOSYMBOL\":\"USD\","
		"\"FLAGS\":\"1\",\"PRICE\":\"10.5\"}",
		NULL,
	};
	CHECK((out = feed(c, o, fd, m1, &last)) && last == DP_CCS_NOTHING);
	printf("%s", out);
	CHECK(strstr(out, "\"ts\":null,\"price\":10.5,\"bid\":null,") && strstr(out, "\"flags\":1}"));
	static const char *const m2[] = {
		"{\"TYPE\":\"500\",\"MESSAGE\":\"INVALID_SUB\",\"PARAMETER\":\"0~Coinbase~BTC~USD\","
		"\"INFO\":\"no\"}",
		NULL,
	};
	CHECK(feed(c, o, fd, m2, &last) && last == DP_CCS_SUBSCRIBED);
	CHECK(dp_ccs_stats(c)->refused == 1 && dp_ccs_stats(c)->active == 1);
	/* A gap: lost, then the next data ends it. */
	dp_ccs_lost(c, 1700000000000, "test");
	static const char *const m3[] = {
		"{\"TYPE\":\"5\",\"MARKET\":\"CCCAGG\",\"FROMSYMBOL\":\"BTC\",\"TOSYMBOL\":\"USD\","
		"\"FLAGS\":4,\"LASTUPDATE\":1700000000,\"OPENDAY\":9}",
		"not json", "[]", "{\"TYPE\":\"x\"}",
		NULL,
	};
	CHECK((out = feed(c, o, fd, m3, &last)) && last == DP_CCS_NOTHING);
	CHECK(strstr(out, "\"ts\":\"2023-11-14T22:13:20Z\",\"price\":10.5,") &&
	      strstr(out, "\"open_day\":9,"));
	CHECK(dp_ccs_stats(c)->gaps == 1 && dp_ccs_stats(c)->malformed == 3);
	/* The refused subscription is not asked for again. */
	dp_buf_reset(&sub);
	CHECK(dp_ccs_connected(c, &sub) == 0 && !strstr(sub.data, "Coinbase"));
	/* Trades: the same id twice is printed once; max_records ends it. */
	static const char *const m4[] = {
		"{\"TYPE\":\"0\",\"M\":\"Coinbase\",\"FSYM\":\"BTC\",\"TSYM\":\"USD\",\"F\":\"2\","
		"\"ID\":7,\"TS\":1700000000,\"TSNS\":5000000,\"Q\":1,\"P\":2,\"TOTAL\":2}",
		"{\"TYPE\":\"0\",\"M\":\"Coinbase\",\"FSYM\":\"BTC\",\"TSYM\":\"USD\",\"F\":\"2\","
		"\"ID\":7,\"TS\":1700000000,\"Q\":1,\"P\":2,\"TOTAL\":2}",
		"{\"TYPE\":\"0\",\"M\":\"Coinbase\",\"FSYM\":\"BTC\",\"TSYM\":\"USD\",\"F\":\"1\","
		"\"ID\":\"8\",\"TS\":1700000001,\"Q\":1,\"P\":3,\"TOTAL\":3}",
		NULL,
	};
	CHECK((out = feed(c, o, fd, m4, &last)) && last == DP_CCS_NOTHING);
	CHECK(dp_ccs_stats(c)->duplicates == 1);
	CHECK(strstr(out, "\"ts\":\"2023-11-14T22:13:20.005Z\",\"id\":\"7\",\"side\":\"buy\","));
	static const char *const m5[] = {
		"{\"TYPE\":\"401\",\"MESSAGE\":\"UNAUTHORIZED\",\"PARAMETER\":\"format\"}", NULL,
	};
	CHECK(feed(c, o, fd, m5, &last) && last == DP_CCS_UNAUTHORIZED);
	CHECK(!strcmp(dp_ccs_reason(c), "401 UNAUTHORIZED (parameter format)"));
	static const char *const m6[] = { m4[2], NULL };
	CHECK(feed(c, o, fd, m6, &last) && last == DP_CCS_NOTHING && dp_ccs_stats(c)->duplicates == 2);
	static const char *const m7[] = {
		"{\"TYPE\":\"0\",\"M\":\"Coinbase\",\"FSYM\":\"BTC\",\"TSYM\":\"USD\",\"ID\":\"9\","
		"\"TS\":1700000002}", NULL,
	};
	CHECK(feed(c, o, fd, m7, &last) && last == DP_CCS_DONE && dp_ccs_stats(c)->records == 5);
	dp_ccs_free(c);
	dp_out_free(o);
	close(fd);
	dp_buf_free(&err);
	dp_buf_free(&sub);
	printf("ok ccstream\n");
	return 0;
}

static int
t_wsurl(void)
{
	static const char *const good[] = {
		"ws://127.0.0.1:8080/v2", "wss://streamer.cryptocompare.com/v2", "ws://h",
		"ws://[::1]:9/x?y=1", NULL,
	};
	static const char *const bad[] = {
		"http://h", "ws://", "ws://h:0/", "ws://h:70000", "ws://u:p@h/", "ws://h/a b",
		"ws://[::1/", "ws://h#f", NULL,
	};
	struct dp_buf err = DP_BUF_INIT;

	for (const char *const *u = good; *u; u++)
		CHECK(dp_ws_check_url(*u, &err) == 0);
	for (const char *const *u = bad; *u; u++) {
		dp_buf_reset(&err);
		CHECK(dp_ws_check_url(*u, &err) < 0);
		printf("%s\n", dp_buf_str(&err));
	}
	dp_buf_free(&err);
	printf("ok ws urls\n");
	return 0;
}

/* Write s (n bytes) to a fresh file in dir; returns its path (static). */
static const char *
secret_file(const char *dir, const char *s, size_t n)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/key", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, s, n) != (ssize_t)n)
		return NULL;
	close(fd);
	return path;
}

static int
t_secret(void)
{
	char dir[] = "/tmp/dp-test-secret.XXXXXX";
	struct dp_buf err = DP_BUF_INIT;
	const char *f;
	char *key = NULL;

	CHECK(mkdtemp(dir) != NULL);
	f = secret_file(dir, "  s3cr3t-key \r\n", 15);
	CHECK(f && dp_secret_load(f, "DP_TEST_KEY", "api key", &key, &err) == 0);
	CHECK(key && !strcmp(key, "s3cr3t-key"));
	dp_secret_free(key);
	/* Refused, and the message never shows the secret. */
	static const struct { const char *s; size_t n; const char *why; } bad[] = {
		{ "s3cr3t\nsecond", 13, "more than one line" },
		{ "s3cr3t\0x", 8, "control character" },
		{ " \n", 2, "is empty" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dp_buf_reset(&err);
		f = secret_file(dir, bad[i].s, bad[i].n);
		CHECK(f && dp_secret_load(f, NULL, "api key", &key, &err) == DP_EX_CONFIG);
		printf("%s\n", dp_buf_str(&err));
		CHECK(!key && strstr(dp_buf_str(&err), bad[i].why) && !strstr(dp_buf_str(&err), "s3cr3t"));
	}
	dp_buf_reset(&err);
	CHECK(dp_secret_load("/nonexistent/key", NULL, "api key", &key, &err) == DP_EX_NOINPUT);
	/* The environment, when no file is named. */
	setenv("DP_TEST_KEY", "from-env", 1);
	CHECK(dp_secret_load(NULL, "DP_TEST_KEY", "api key", &key, &err) == 0 && !strcmp(key, "from-env"));
	dp_secret_free(key);
	setenv("DP_TEST_KEY", "bad\tkey", 1);
	CHECK(dp_secret_load(NULL, "DP_TEST_KEY", "api key", &key, &err) == DP_EX_CONFIG && !key);
	unsetenv("DP_TEST_KEY");
	CHECK(dp_secret_load(NULL, "DP_TEST_KEY", "api key", &key, &err) == 0 && !key);
	unlink(f);
	CHECK(rmdir(dir) == 0);
	dp_buf_free(&err);
	printf("ok secrets\n");
	return 0;
}

/* Lines over the cap are skipped to their end, counted, and named by length. */
static int
t_lines_cap(void)
{
	struct dp_buf in = DP_BUF_INIT;
	const char *l;
	size_t n;
	pid_t c;
	int ok = 0;

	ok |= dp_buf_addstr(&in, "short\n");
	for (int i = 0; i < 1000; i++)
		ok |= dp_buf_addch(&in, 'x');
	ok |= dp_buf_addstr(&in, "\r\nafter\n");
	for (int i = 0; i < 100; i++)           /* at the cap, with CRLF: fits */
		ok |= dp_buf_addch(&in, 'z');
	ok |= dp_buf_addstr(&in, "\r\n");
	for (int i = 0; i < 101; i++)
		ok |= dp_buf_addch(&in, 'w');
	ok |= dp_buf_addch(&in, '\n');
	for (int i = 0; i < 700 * 1024; i++)        /* across several reads */
		ok |= dp_buf_addch(&in, 'y');
	ok |= dp_buf_addstr(&in, "\nend");
	CHECK(ok == 0);
	struct dp_lines *r = reader_for(in.data, in.len, DP_LINES_STRICT, &c);
	dp_lines_set_max(r, 100);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "short"));
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_LONG && !l && n == 1000);
	CHECK(dp_lines_lineno(r) == 2);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "after"));
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && n == 100);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_LONG && n == 101);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_LONG && n == 700 * 1024);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "end"));
	CHECK(dp_lines_lineno(r) == 7);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_EOF);
	dp_lines_free(r);
	waitpid(c, NULL, 0);
	dp_buf_free(&in);
	printf("ok lines over 100 bytes skipped: 1000, 101 and 716800 bytes; 7 lines\n");
	return 0;
}

/*
 * Reads that end between a CR and its LF (found by fuzz_lines): the cap
 * counts a line without its CRLF whatever the reads.  A SOCK_SEQPACKET
 * socket returns exactly one write per read, so the boundaries are the
 * test's.
 */
static int
t_lines_split(void)
{
	static const char *const pieces[] = { "abcd\r", "\n", "efgh\r", "x\n", "ab\r", "\ncd\r",
	                                      "\r\n", "wxyz" , "\r" };
	int sv[2];
	const char *l;
	size_t n;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
		CHECK(write(sv[0], pieces[i], strlen(pieces[i])) == (ssize_t)strlen(pieces[i]));
	close(sv[0]);
	struct dp_lines *r = dp_lines_new(sv[1], DP_LINES_STRICT);
	dp_lines_set_max(r, 4);
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "abcd"));   /* at the cap */
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_LONG && n == 6);   /* "efgh\rx": the CR counts */
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "ab"));
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && n == 3 && !memcmp(l, "cd\r", 3));
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_OK && !strcmp(l, "wxyz"));  /* CR at EOF goes */
	CHECK(dp_lines_next(r, &l, &n) == DP_LINES_EOF && dp_lines_lineno(r) == 5);
	dp_lines_free(r);
	close(sv[1]);
	printf("ok a CR at the end of a read is not counted against the cap\n");
	return 0;
}

/* Envelope timestamps: read from their text, range-checked, absent is not 0. */
static int
t_envelope_ts(void)
{
	static const struct { const char *ts; int ok; int has; long long ms; } cases[] = {
		{ NULL, 1, 0, 0 }, { "null", 1, 0, 0 }, { "0", 1, 1, 0 },
		{ "1700000000123", 1, 1, 1700000000123LL },
		{ "9223372036854775807", 1, 1, 9223372036854775807LL },
		{ "9007199254740993", 1, 1, 9007199254740993LL },   /* 2^53 + 1, exact */
		{ "1e300", 0, 0, 0 }, { "-1", 0, 0, 0 }, { "1.5", 0, 0, 0 },
		{ "9223372036854775808", 0, 0, 0 }, { "\"2024-01-01\"", 0, 0, 0 },
	};
	struct dp_buf line = DP_BUF_INIT, err = DP_BUF_INIT;
	struct dp_envelope env;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dp_buf_reset(&line);
		dp_buf_reset(&err);
		CHECK(dp_buf_addstr(&line, "{\"topic\":\"t\",") == 0);
		if (cases[i].ts)
			CHECK(dp_buf_addf(&line, "\"timestamp\":%s,", cases[i].ts) == 0);
		CHECK(dp_buf_addstr(&line, "\"key\":null,\"value\":1}") == 0);
		int rc = dp_envelope_parse(line.data, line.len, &env, &err);
		printf("%s -> %s%s\n", cases[i].ts ? cases[i].ts : "(absent)",
		       rc ? "refused: " : "ok", rc ? dp_buf_str(&err) : "");
		CHECK((rc == 0) == cases[i].ok);
		CHECK(!cases[i].ok || (env.has_timestamp == cases[i].has &&
		                       env.timestamp == cases[i].ms));
		dp_envelope_clear(&env);
	}
	dp_buf_free(&line);
	dp_buf_free(&err);
	return 0;
}

/* Parse, print, parse again: the same envelope, and the second print is the first. */
static int
envelope_round(const char *line, size_t len, struct dp_envelope *env, struct dp_buf *err)
{
	struct dp_buf p1 = DP_BUF_INIT, p2 = DP_BUF_INIT;
	struct dp_envelope again;
	int rc = 1;

	dp_buf_reset(err);
	if (dp_envelope_parse(line, len, env, err) < 0)
		return -1;
	if (dp_envelope_print(&p1, env) < 0 || dp_envelope_parse(p1.data, p1.len, &again, err) < 0 ||
	    dp_envelope_print(&p2, &again) < 0)
		goto out;
	rc = p1.len != p2.len || memcmp(p1.data, p2.data, p1.len) ||
	     again.value_len != env->value_len ||
	     (env->value && memcmp(again.value, env->value, env->value_len)) ||
	     again.key_len != env->key_len || (env->key && memcmp(again.key, env->key, env->key_len)) ||
	     again.nhdrs != env->nhdrs;
	for (size_t i = 0; !rc && i < env->nhdrs; i++)
		rc = strcmp(again.hdrs[i].name, env->hdrs[i].name) ||
		     again.hdrs[i].len != env->hdrs[i].len ||
		     (env->hdrs[i].value && memcmp(again.hdrs[i].value, env->hdrs[i].value,
		                                    env->hdrs[i].len));
out:
	if (rc)
		printf("round trip differs: %s\n", p1.data ? p1.data : "(none)");
	dp_envelope_clear(&again);
	dp_buf_free(&p1);
	dp_buf_free(&p2);
	return rc;
}

/* Envelopes read with dp's own scanner: odd but valid JSON goes through, byte for byte. */
static int
t_envelope(void)
{
	static const struct { const char *line; const char *value; } ok[] = {
		/* the lone surrogate that libjq refused */
		{ "{\"topic\":\"t\",\"key\":null,\"value\":{\"s\":\"\\ud800\"}}", "{\"s\":\"\\ud800\"}" },
		{ "{\"value\":{\"\":1,\"a\":1,\"a\":2,\"\\u0000\":[]}}", "{\"\":1,\"a\":1,\"a\":2,\"\\u0000\":[]}" },
		{ "{\"value\":123456789012345678901234567890e-400}", "123456789012345678901234567890e-400" },
		{ "{\"value\":1,\"value\":\"last\"}", "\"last\"" },
		{ "{\"value\":\"\\ud83d\\ude00\\/\\b\",\"value_encoding\":\"string\"}", "\xf0\x9f\x98\x80/\b" },
		{ "{\"value\":\"\",\"value_encoding\":\"base64\"}", "" },
		{ " {\"value\" : [ 1 , 2 ] } ", "[ 1 , 2 ]" },
	};
	static const struct { const char *line; const char *why; } bad[] = {
		{ "{\"key\":\"a\\ud800\",\"value\":1}",
		  "envelope key holds the lone surrogate escape \\ud800 at byte 10, which stands for no UTF-8 text" },
		{ "{\"headers\":[{\"key\":\"a\\u0000b\",\"value\":null}],\"value\":1}",
		  "envelope header 0 key holds a NUL byte, which Kafka header names cannot carry (at byte 20)" },
		{ "{\"value\":1,}", "envelope is not valid JSON: expected member name at byte 12" },
		{ "[1]", "envelope is an array, not a JSON object" },
		{ "{\"partition\":-1,\"value\":1}",
		  "envelope partition -1 is not a partition number from 0 to 2147483647 (at byte 14)" },
		{ "{\"partition\":1.0,\"value\":1}", "envelope partition 1.0 is not" },
		{ "{\"topic\":7,\"value\":1}", "envelope topic must be a string or null, not a number (at byte 10)" },
		{ "{\"headers\":{},\"value\":1}", "envelope headers must be an array, not an object (at byte 12)" },
		{ "{\"headers\":[1],\"value\":1}", "envelope header 0 must be an object, not a number (at byte 13)" },
		{ "{\"value\":\"@@\",\"value_encoding\":\"base64\"}", "envelope value is not valid base64 (at byte 10)" },
		{ "{\"value\":\"x\",\"value_encoding\":\"hex\"}", "envelope value_encoding \"hex\" is unknown (at byte 31)" },
		{ "{\"key\":null}", "envelope has no \"value\"" },
		{ "{\"value\":1,\"value\":\"\\udc00\",\"value_encoding\":\"string\"}",
		  "envelope value holds the lone surrogate escape \\udc00 at byte 21" },
	};
	struct dp_buf line = DP_BUF_INIT, err = DP_BUF_INIT, out = DP_BUF_INIT;
	struct dp_envelope env;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int rc = envelope_round(ok[i].line, strlen(ok[i].line), &env, &err);
		printf("%s -> %s%s\n", ok[i].line, rc ? "refused: " : "ok", rc < 0 ? dp_buf_str(&err) : "");
		CHECK(rc == 0);
		CHECK(env.value && env.value_len == strlen(ok[i].value) &&
		      memcmp(env.value, ok[i].value, env.value_len) == 0);
		dp_envelope_clear(&env);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dp_buf_reset(&err);
		int rc = dp_envelope_parse(bad[i].line, strlen(bad[i].line), &env, &err);
		printf("%s -> %s\n", bad[i].line, rc ? dp_buf_str(&err) : "accepted");
		CHECK(rc < 0 && strncmp(dp_buf_str(&err), bad[i].why, strlen(bad[i].why)) == 0);
		dp_envelope_clear(&env);
	}
	/* A value 1000 levels deep is carried as it is. */
	CHECK(dp_buf_addstr(&line, "{\"value\":") == 0);
	for (int i = 0; i < 1000; i++)
		CHECK(dp_buf_addch(&line, '[') == 0);
	for (int i = 0; i < 1000; i++)
		CHECK(dp_buf_addch(&line, ']') == 0);
	CHECK(dp_buf_addch(&line, '}') == 0);
	CHECK(envelope_round(line.data, line.len, &env, &err) == 0 && env.value_len == 2000);
	dp_envelope_clear(&env);
	/* A key with NUL and a header name that is not UTF-8 go as base64, and back. */
	dp_buf_reset(&line);
	CHECK(dp_buf_addstr(&line, "{\"key\":\"a\\u0000b\",\"headers\":[{\"key\":\"//4=\","
	                    "\"key_encoding\":\"base64\",\"value\":\"v\"}],\"value\":null}") == 0);
	CHECK(envelope_round(line.data, line.len, &env, &err) == 0);
	CHECK(env.key_len == 3 && memcmp(env.key, "a\0b", 3) == 0 && !env.value);
	CHECK(env.nhdrs == 1 && !strcmp(env.hdrs[0].name, "\xff\xfe"));
	CHECK(dp_envelope_print(&out, &env) == 0);
	printf("printed %s\n", out.data);
	CHECK(strstr(out.data, "\"key\":\"YQBi\",\"key_encoding\":\"base64\""));
	CHECK(strstr(out.data, "{\"key\":\"//4=\",\"key_encoding\":\"base64\",\"value\":\"v\"}"));
	CHECK(strstr(out.data, "\"partition\":null,\"offset\":null,\"timestamp\":null"));
	dp_envelope_clear(&env);
	dp_buf_free(&line);
	dp_buf_free(&err);
	dp_buf_free(&out);
	return 0;
}

/* Topic specs are read with the same JSON as everything else: digits kept, no U+FFFD. */
static int
t_spec(void)
{
	static const struct { const char *line; const char *why; } bad[] = {
		{ "{\"name\":\"t\",}", "invalid JSON: expected member name at byte 13" },
		{ "{\"name\":\"t\\udfff\"}", "\"name\" holds the lone surrogate escape \\udfff" },
		{ "{\"name\":\"t\",\"partitions\":3.0}", "\"partitions\" must be an integer between 1 and 2147483647" },
		{ "{\"name\":\"t\",\"config\":{\"a\":1e3}}", "config \"a\" must be a string, an integer or a boolean" },
		{ "{\"name\":\"t\",\"config\":{\"a\\u0000\":\"1\"}}", "a \"config\" key contains a NUL character" },
		{ "[\"t\"]", "a topic spec must be an object, not array" },
	};
	const char *ok = "{\"name\":\"t\",\"partitions\":2,\"config\":{\"retention.bytes\":9223372036854775807,"
	                 "\"cleanup.policy\":\"compact\",\"retention.bytes\":-1,\"x\":true},\"partitions\":3}";
	struct dp_admin_spec spec;
	struct dp_buf err = DP_BUF_INIT;

	CHECK(dp_admin_spec_parse(ok, strlen(ok), &spec, &err) == 0);
	CHECK(!strcmp(spec.name, "t") && spec.partitions == 3 && spec.nconfig == 3);
	CHECK(!strcmp(spec.config[0].key, "retention.bytes") && !strcmp(spec.config[0].value, "-1"));
	CHECK(!strcmp(spec.config[2].key, "x") && !strcmp(spec.config[2].value, "true"));
	dp_admin_spec_clear(&spec);
	const char *big = "{\"name\":\"t\",\"config\":{\"retention.bytes\":9223372036854775807}}";
	CHECK(dp_admin_spec_parse(big, strlen(big), &spec, &err) == 0);
	printf("retention.bytes %s\n", spec.config[0].value);
	CHECK(!strcmp(spec.config[0].value, "9223372036854775807"));
	dp_admin_spec_clear(&spec);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dp_buf_reset(&err);
		int rc = dp_admin_spec_parse(bad[i].line, strlen(bad[i].line), &spec, &err);
		printf("%s -> %s\n", bad[i].line, rc ? dp_buf_str(&err) : "accepted");
		CHECK(rc < 0 && strncmp(dp_buf_str(&err), bad[i].why, strlen(bad[i].why)) == 0);
		dp_admin_spec_clear(&spec);
	}
	dp_buf_free(&err);
	return 0;
}

/* A record longer than libjq's int length is refused with a message. */
static int
t_expr_limit(void)
{
	struct dp_buf err = DP_BUF_INIT, out = DP_BUF_INIT;
	struct dp_expr *e = dp_expr_compile(".a + 1", &err);
	struct dp_expr_rec rec = DP_EXPR_REC("{\"a\":1}", (size_t)INT_MAX + 1);
	enum dp_json_type t;

	CHECK(e != NULL);
	CHECK(dp_expr_first(e, &rec, &t, &out, &err) < 0);
	printf("%s\n", dp_buf_str(&err));
	CHECK(strstr(dp_buf_str(&err), "too large for jq") != NULL);
	dp_expr_rec_clear(&rec);
	dp_expr_free(e);
	dp_buf_free(&err);
	dp_buf_free(&out);
	return 0;
}

static void *
term_later(void *arg)
{
	struct timespec ts = { 0, 300 * 1000000L };

	nanosleep(&ts, NULL);
	kill(getpid(), SIGTERM);
	return arg;
}

/*
 * dp_producer_send_wait against $DP_BROKERS (argv: TOPIC), or against a
 * broker that never answers (argv: -b HOST:PORT): the timeout, then a
 * signal, end the wait.
 */
static int
t_producer(int argc, char **argv)
{
	struct dp_common c;
	struct dp_buf err = DP_BUF_INIT;
	int st;

	dp_cli_init(&c);
	if (argc == 4 && !strcmp(argv[2], "-b"))
		c.kafka.brokers = argv[3];
	struct dp_producer_conf conf = { .kafka = &c.kafka };
	struct dp_producer *p = dp_producer_new(&conf, &err, &st);
	CHECK(p != NULL);
	if (argc == 4) {
		struct dp_producer_rec r = { .topic = "nowhere", .partition = DP_PRODUCER_ANY,
		                             .value = "v", .value_len = 1 };
		struct dp_producer_ack ack;
		int64_t t0 = dp_time_mono_ms();
		CHECK(dp_sig_install() == 0);
		st = dp_producer_send_wait(p, &r, 1, &ack, 1000, &err);
		printf("timeout: status %d after %lld ms: %s\n", st,
		       (long long)(dp_time_mono_ms() - t0), dp_buf_str(&err));
		CHECK(st == DP_EX_TEMPFAIL && ack.err == RD_KAFKA_RESP_ERR__TIMED_OUT);
		pthread_t th;
		CHECK(pthread_create(&th, NULL, term_later, NULL) == 0);
		t0 = dp_time_mono_ms();
		st = dp_producer_send_wait(p, &r, 1, &ack, DP_PRODUCER_FOREVER, &err);
		pthread_join(th, NULL);
		printf("signal: status %d after %lld ms\n", st, (long long)(dp_time_mono_ms() - t0));
		CHECK(st == DP_KAFKA_STOPPED && ack.err == RD_KAFKA_RESP_ERR__IN_PROGRESS);
	} else {
		const char *topic = argv[2];
		struct dp_producer_header h[2] = { { "reason", "bad", 3 }, { "none", NULL, 0 } };
		struct dp_producer_rec r[3] = {
			{ .topic = topic, .partition = DP_PRODUCER_ANY, .key = "k1", .key_len = 2,
			  .value = "v1", .value_len = 2, .hdrs = h, .nhdrs = 2 },
			{ .topic = topic, .partition = 0, .value = "v2", .value_len = 2,
			  .timestamp = 1700000000123LL },
			{ .topic = topic, .partition = DP_PRODUCER_ANY, .key = "k3", .key_len = 2 },
		};
		struct dp_producer_ack acks[3];
		struct dp_producer_stats stats;
		CHECK(dp_producer_connect(p, &topic, 1, &err) == 0);
		CHECK(dp_producer_send_wait(p, r, 3, acks, 10000, &err) == 0);
		for (int i = 0; i < 3; i++)
			printf("ack %d %d %lld\n", i, (int)acks[i].partition, (long long)acks[i].offset);
		static char big[2000000];
		struct dp_producer_rec b = { .topic = topic, .partition = DP_PRODUCER_ANY,
		                             .value = big, .value_len = sizeof(big) };
		st = dp_producer_send_wait(p, &b, 1, acks, 10000, &err);
		printf("too large: status %d: %s\n", st, dp_buf_str(&err));
		CHECK(st == DP_EX_DATAERR);
		/* A dead letter that must be acknowledged before the caller goes on. */
		struct dp_on_error_policy pol = { .durable = true, .timeout_ms = 10000 };
		struct dp_producer_header dh[1] = { { "sqlstate", "23505", 5 } };
		char dlq[300];
		snprintf(dlq, sizeof(dlq), "dlq=%s", topic);
		CHECK(dp_on_error_parse(&pol, dlq) == 0);
		CHECK(dp_on_error_record(&pol, p, "row 7", "duplicate key", NULL, 0, "raw", 3, dh, 1, 7) == 0);
		CHECK(pol.count == 1);
		dp_producer_stats(p, &stats);
		printf("produced %llu delivered %llu lost %llu pending %d\n",
		       (unsigned long long)stats.produced, (unsigned long long)stats.delivered,
		       (unsigned long long)stats.lost, stats.pending);
		CHECK(stats.produced == 4 && stats.delivered == 4 && stats.pending == 0);
	}
	dp_producer_free(p);
	dp_cli_free(&c);
	dp_buf_free(&err);
	return 0;
}

/* ---- lib/consumer, as dp-sink-pg and dp-coord will use it ---------------- */

/*
 * The sink's use: offsets live in "the database" (db[], next offset per
 * partition), the assigned hook starts each partition there, a record
 * that cannot be written yet is handed back (pause + AGAIN) and comes
 * again after the resume, and offsets go to Kafka by explicit commits.
 */
struct sink {
	int64_t db[2];
	int64_t seen[2][64];
	int nseen[2];
	int assigned;
	struct dp_consumer_part *paused;
	int async_results;
	rd_kafka_resp_err_t async_err;
};

static int
sink_assigned(struct dp_consumer *c, void *arg, struct dp_consumer_part **parts, size_t n)
{
	struct sink *s = arg;

	for (size_t i = 0; i < n; i++) {
		parts[i]->start = s->db[parts[i]->partition];
		printf("assigned %d, start %lld\n", (int)parts[i]->partition,
		       (long long)parts[i]->start);
		s->assigned++;
	}
	return 0;
}

static enum dp_consumer_verdict
sink_record(struct dp_consumer *c, void *arg, struct dp_consumer_part *p,
            const rd_kafka_message_t *m)
{
	struct sink *s = arg;
	struct dp_buf err = DP_BUF_INIT;
	int k = p->partition;

	if (k == 0 && m->offset == 8 && !s->paused) {
		/* "The database is down": keep the record, stop the partition. */
		if (dp_consumer_pause(c, p, &err) != 0) {
			fprintf(stderr, "pause: %s\n", dp_buf_str(&err));
			dp_buf_free(&err);
			return DP_CONSUMER_HALT;
		}
		s->paused = p;
		printf("paused 0 at 8\n");
		return DP_CONSUMER_AGAIN;
	}
	if (k < 0 || k > 1 || s->nseen[k] == 64)
		return DP_CONSUMER_HALT;
	s->seen[k][s->nseen[k]++] = m->offset;
	s->db[k] = m->offset + 1;       /* the transaction with the offset */
	return DP_CONSUMER_NEXT;
}

static void
sink_committed(struct dp_consumer *c, void *arg, rd_kafka_resp_err_t err,
               const rd_kafka_topic_partition_list_t *offsets)
{
	struct sink *s = arg;

	s->async_results++;
	s->async_err = err;
}

static rd_kafka_topic_partition_list_t *
db_offsets(const struct sink *s, const char *topic)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);

	for (int k = 0; k < 2; k++)
		rd_kafka_topic_partition_list_add(l, topic, k)->offset = s->db[k];
	return l;
}

static int
t_consumer_sink(const char *topic, const char *group)
{
	struct dp_common common;
	struct sink s = { .db = { 5, 12 } };
	struct dp_buf err = DP_BUF_INIT;
	const char *topics[] = { topic };
	const struct dp_consumer_opts opts = {
		.topics = topics, .ntopics = 1, .group = group, .until = DP_UNTIL_END,
		.manual_commit = true,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = &s, .record = sink_record, .assigned = sink_assigned,
		.committed = sink_committed,
	};
	struct dp_consumer *c;
	int st, r, polls = 0;
	int64_t deadline = dp_time_mono_ms() + 30000;

	dp_cli_init(&common);
	c = dp_consumer_new(&common.kafka, &opts, &hooks, &err, &st);
	CHECK(c != NULL);
	CHECK(dp_consumer_connect(c, &err) == 0);
	CHECK(dp_consumer_in_group(c));
	while ((r = dp_consumer_poll(c, 100, &err, &st)) == DP_CONSUMER_MORE ||
	       (r == DP_CONSUMER_END && s.async_results == 0)) {
		CHECK(dp_time_mono_ms() < deadline);
		/* Paused, the member keeps polling; a few polls later it is back. */
		if (s.paused && s.paused->paused && ++polls == 5) {
			CHECK(dp_consumer_resume(c, s.paused, &err) == 0);
			printf("resumed 0\n");
			rd_kafka_topic_partition_list_t *l = db_offsets(&s, topic);
			CHECK(dp_consumer_commit(c, l, true, &err) == 0);
			rd_kafka_topic_partition_list_destroy(l);
		}
	}
	if (r != DP_CONSUMER_END)
		fprintf(stderr, "poll: %d, status %d: %s\n", r, st, dp_buf_str(&err));
	CHECK(r == DP_CONSUMER_END);
	CHECK(s.assigned == 2);
	CHECK(s.async_results == 1 && s.async_err == 0);
	printf("asynchronous commit answered: %s\n", rd_kafka_err2str(s.async_err));
	rd_kafka_topic_partition_list_t *l = db_offsets(&s, topic);
	CHECK(dp_consumer_commit(c, l, false, &err) == 0);
	rd_kafka_topic_partition_list_destroy(l);
	CHECK(dp_consumer_close(c) == 0);
	dp_consumer_free(c);
	dp_cli_free(&common);
	/* Each partition from the database's offset to its end, each record once. */
	for (int k = 0; k < 2; k++) {
		int64_t first = k == 0 ? 5 : 12;
		CHECK(s.nseen[k] == 20 - first);
		for (int i = 0; i < s.nseen[k]; i++)
			CHECK(s.seen[k][i] == first + i);
		printf("partition %d: offsets %lld-%lld, each once\n", k, (long long)first,
		       (long long)s.seen[k][s.nseen[k] - 1]);
	}
	dp_buf_free(&err);
	return 0;
}

/*
 * The registry reader's use: no group, from the beginning to the end as
 * it was at start (the initial view), then follow live.
 */
struct registry {
	int records;
	int caught_up;
	int after;          /* records after the catch-up */
};

static enum dp_consumer_verdict
registry_record(struct dp_consumer *c, void *arg, struct dp_consumer_part *p,
                const rd_kafka_message_t *m)
{
	struct registry *r = arg;

	r->records++;
	if (r->caught_up) {
		r->after++;
		printf("live record at offset %lld\n", (long long)m->offset);
		fflush(stdout);
		return DP_CONSUMER_LAST;
	}
	return DP_CONSUMER_NEXT;
}

static void
registry_caught_up(struct dp_consumer *c, void *arg, struct dp_consumer_part *p)
{
	struct registry *r = arg;

	r->caught_up++;
	printf("caught up with %d records, end %lld\n", r->records, (long long)p->end);
	fflush(stdout);
}

static int
t_consumer_registry(const char *topic)
{
	struct dp_common common;
	struct registry reg = { 0, 0, 0 };
	struct dp_buf err = DP_BUF_INIT;
	const char *topics[] = { topic };
	const struct dp_consumer_opts opts = {
		.topics = topics, .ntopics = 1, .from = DP_FROM_BEGINNING, .track_end = true,
	};
	const struct dp_consumer_hooks hooks = {
		.arg = &reg, .record = registry_record, .caught_up = registry_caught_up,
	};
	struct dp_consumer *c;
	int st, r;
	int64_t deadline = dp_time_mono_ms() + 30000;

	dp_cli_init(&common);
	c = dp_consumer_new(&common.kafka, &opts, &hooks, &err, &st);
	CHECK(c != NULL);
	CHECK(dp_consumer_connect(c, &err) == 0);
	CHECK(!dp_consumer_in_group(c));
	while ((r = dp_consumer_poll(c, 100, &err, &st)) == DP_CONSUMER_MORE)
		CHECK(dp_time_mono_ms() < deadline);
	CHECK(r == DP_CONSUMER_HALTED);
	CHECK(reg.caught_up == 1 && reg.after == 1);
	CHECK(dp_consumer_close(c) == 0);
	dp_consumer_free(c);
	dp_cli_free(&common);
	dp_buf_free(&err);
	return 0;
}

/* ---- dp-sink-pg's pieces ---- */

/* The bytes of a field, in hex. */
static const char *
field_hex(enum dp_pgbin_kind k, enum dp_json_type t, const char *v, const char **why)
{
	static char hex[256];
	struct dp_buf out = DP_BUF_INIT, scratch = DP_BUF_INIT;
	int rc = dp_pgbin_field(&out, k, t, v, strlen(v), &scratch, why);

	hex[0] = '\0';
	for (size_t i = 0; rc == 0 && i < out.len && i < 100; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)out.data[i]);
	if (rc)
		snprintf(hex, sizeof(hex), "refused");
	dp_buf_free(&out);
	dp_buf_free(&scratch);
	return hex;
}

static int
t_pgbin(void)
{
	const char *why = NULL;

	/* numeric_send: ndigits, weight, sign, dscale, base-10000 digits */
	CHECK(!strcmp(field_hex(DP_PGBIN_NUMERIC, DP_JSON_NUMBER, "123.45", &why),
	              "0000000c00020000000000020" "07b1194"));
	CHECK(!strcmp(field_hex(DP_PGBIN_NUMERIC, DP_JSON_NUMBER, "0.001", &why),
	              "0000000a0001ffff00000003000a"));
	CHECK(!strcmp(field_hex(DP_PGBIN_NUMERIC, DP_JSON_NUMBER, "-1e5", &why),
	              "0000000a00010001400000000" "00a"));
	CHECK(!strcmp(field_hex(DP_PGBIN_NUMERIC, DP_JSON_NUMBER, "-0.0", &why),
	              "000000080000000000000001"));
	CHECK(!strcmp(field_hex(DP_PGBIN_NUMERIC, DP_JSON_STRING, "\"42\"", &why),
	              "0000000a00010000000000000" "02a"));
	/* timestamps: microseconds since 2000-01-01, rounded as PostgreSQL rounds */
	CHECK(!strcmp(field_hex(DP_PGBIN_TIMESTAMPTZ, DP_JSON_STRING, "\"2000-01-01T00:00:01.1234567Z\"", &why),
	              "00000008000000000011248" "1"));
	CHECK(!strcmp(field_hex(DP_PGBIN_TIMESTAMPTZ, DP_JSON_NUMBER, "946684801", &why),
	              "0000000800000000000f4240"));
	/* refusals, never a changed value */
	CHECK(!strcmp(field_hex(DP_PGBIN_FLOAT8, DP_JSON_NUMBER, "9007199254740993", &why), "refused"));
	CHECK(strstr(why, "would round"));
	CHECK(strcmp(field_hex(DP_PGBIN_FLOAT8, DP_JSON_NUMBER, "9007199254740992", &why), "refused"));
	CHECK(!strcmp(field_hex(DP_PGBIN_FLOAT8, DP_JSON_NUMBER, "0.1", &why), "000000083fb999999999999a"));
	CHECK(!strcmp(field_hex(DP_PGBIN_FLOAT8, DP_JSON_NUMBER, "1e-400", &why), "refused"));
	CHECK(!strcmp(field_hex(DP_PGBIN_INT4, DP_JSON_NUMBER, "2147483648", &why), "refused"));
	CHECK(!strcmp(field_hex(DP_PGBIN_INT8, DP_JSON_NUMBER, "1.0", &why), "refused"));
	CHECK(!strcmp(field_hex(DP_PGBIN_TEXT, DP_JSON_STRING, "\"a\\u0000\"", &why), "refused"));
	CHECK(!strcmp(field_hex(DP_PGBIN_UUID, DP_JSON_STRING, "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1\"", &why),
	              "refused"));
	CHECK(!strcmp(field_hex(DP_PGBIN_JSONB, DP_JSON_OBJECT, "{ \"a\" : 1 }", &why),
	              "0000000801" "7b2261223a317d"));
	CHECK(!strcmp(field_hex(DP_PGBIN_BOOL, DP_JSON_NULL, "null", &why), "ffffffff"));
	printf("ok binary COPY fields\n");
	return 0;
}

static int
scrubbed(const char *conninfo, const char *msg, const char *want)
{
	struct dp_buf m = DP_BUF_INIT;
	int ok;

	dp_buf_msgf(&m, "%s", msg);
	dp_pg_scrub(&m, conninfo);
	ok = !strcmp(dp_buf_str(&m), want);
	if (!ok)
		fprintf(stderr, "scrub: got '%s', want '%s'\n", dp_buf_str(&m), want);
	dp_buf_free(&m);
	return ok;
}

static int
t_pg_scrub(void)
{
	struct dp_buf q = DP_BUF_INIT;

	unsetenv("PGPASSWORD");
	CHECK(scrubbed("postgresql://u:s3cret@h/db", "bad \"u:s3cret@h\"", "bad \"u:********@h\""));
	CHECK(scrubbed("postgresql://u:s%33cret@h/db", "a s%33cret b s3cret", "a ******** b ********"));
	CHECK(scrubbed("host=h password='a b\\'c' port=1", "x a b'c y", "x ******** y"));
	CHECK(scrubbed("host=h password = plain port=1", "plain text", "******** text"));
	CHECK(scrubbed("postgresql://h/db?user=u&password=qpqp&x=1", "qpqp!", "********!"));
	/* A one-byte password is not hunted for in text: it would mark every "1". */
	CHECK(scrubbed("host=127.0.0.1 password=1", "host 127.0.0.1", "host 127.0.0.1"));
	/* In the command's own arguments, exactly its bytes are blanked. */
	char arg[] = "host=127.0.0.1 password=1 user=u1", arg2[] = "postgresql://p:p@h:1/p?password=%31";
	bool had;
	char *copy = dp_pg_conninfo_hide(arg, &had);
	CHECK(had && copy && !strcmp(copy, "host=127.0.0.1 password=1 user=u1"));
	CHECK(!strcmp(arg, "host=127.0.0.1 password=* user=u1"));
	free(copy);
	copy = dp_pg_conninfo_hide(arg2, &had);
	CHECK(had && copy && !strcmp(arg2, "postgresql://p:*@h:1/p?password=***"));
	free(copy);
	struct dp_buf e = DP_BUF_INIT;
	CHECK(dp_pg_conninfo_check("postgresql://u:s3cr%zz@h/db", &e) < 0);
	CHECK(strstr(dp_buf_str(&e), "the password is not valid there") && !strstr(dp_buf_str(&e), "s3cr"));
	dp_buf_free(&e);
	setenv("PGPASSWORD", "envpw", 1);
	CHECK(scrubbed(NULL, "it was envpw", "it was ********"));
	unsetenv("PGPASSWORD");
	CHECK(dp_pg_ident(&q, "a\"b", 3) == 0 && !strcmp(q.data, "\"a\"\"b\""));
	dp_buf_reset(&q);
	CHECK(dp_pg_qualified(&q, "s.t.x") == 0 && !strcmp(q.data, "\"s\".\"t.x\""));
	dp_buf_free(&q);
	printf("ok passwords scrubbed, identifiers quoted\n");
	return 0;
}

/* lib/pg/sqlstate.c: what each kind of server error leads to (Appendix A). */
static int
t_sqlstate(void)
{
	static const struct { const char *code; enum dp_sqlstate_do what; int status; const char *name; } want[] = {
		{ "", DP_SQLSTATE_OUTAGE, 0, "connection lost" },
		{ NULL, DP_SQLSTATE_OUTAGE, 0, "connection lost" },
		{ "08006", DP_SQLSTATE_OUTAGE, 0, "connection_exception" },
		{ "57P01", DP_SQLSTATE_OUTAGE, 0, "admin_shutdown" },
		{ "57P02", DP_SQLSTATE_OUTAGE, 0, "crash_shutdown" },
		{ "57P03", DP_SQLSTATE_OUTAGE, 0, "cannot_connect_now" },
		{ "25006", DP_SQLSTATE_OUTAGE, 0, "read_only_sql_transaction" },
		{ "40001", DP_SQLSTATE_RETRY, 0, "serialization_failure" },
		{ "40P01", DP_SQLSTATE_RETRY, 0, "deadlock_detected" },
		{ "53100", DP_SQLSTATE_RETRY, 0, "disk_full" },
		{ "53200", DP_SQLSTATE_RETRY, 0, "out_of_memory" },
		{ "55P03", DP_SQLSTATE_RETRY, 0, "lock_not_available" },
		{ "22P02", DP_SQLSTATE_BAD, 0, "data_exception" },
		{ "23505", DP_SQLSTATE_BAD, 0, "integrity_constraint_violation" },
		{ "54011", DP_SQLSTATE_BAD, 0, "too_many_columns" },
		{ "53400", DP_SQLSTATE_STOP, DP_EX_CONFIG, "configuration_limit_exceeded" },
		{ "42P01", DP_SQLSTATE_STOP, DP_EX_CONFIG, "undefined_table" },
		{ "42601", DP_SQLSTATE_STOP, DP_EX_CONFIG, "syntax_error_or_access_rule_violation" },
		{ "42501", DP_SQLSTATE_STOP, DP_EX_NOPERM, "insufficient_privilege" },
		{ "28P01", DP_SQLSTATE_STOP, DP_EX_NOPERM, "invalid_authorization_specification" },
		{ "0A000", DP_SQLSTATE_STOP, DP_EX_CONFIG, "feature_not_supported" },
		{ "3F000", DP_SQLSTATE_STOP, DP_EX_CONFIG, "invalid_schema_name" },
		{ "08P01", DP_SQLSTATE_STOP, DP_EX_SOFTWARE, "protocol_violation" },
		{ "P0001", DP_SQLSTATE_STOP, DP_EX_TEMPFAIL, "unknown" },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct dp_sqlstate *r = dp_sqlstate_of(want[i].code);
		if (r->what != want[i].what || r->status != want[i].status || strcmp(r->name, want[i].name)) {
			fprintf(stderr, "%s: %s %d %s\n", want[i].code ? want[i].code : "(null)",
			        dp_sqlstate_do_name(r->what), r->status, r->name);
			return 1;
		}
		printf("%s %s %s (%s)\n", want[i].code ? want[i].code : "(none)",
		       dp_sqlstate_do_name(r->what), r->name,
		       want[i].code && *want[i].code ? dp_sqlstate_class(want[i].code) : "-");
	}
	CHECK(!strcmp(dp_sqlstate_class("40P01"), "Transaction Rollback"));
	CHECK(!strcmp(dp_sqlstate_class("53100"), "Insufficient Resources"));
	CHECK(!strcmp(dp_sqlstate_class("ZZ000"), "unknown class"));
	/* Values are never changed: a lone surrogate is refused, never U+FFFD. */
	struct dp_buf out = DP_BUF_INIT, scratch = DP_BUF_INIT;
	const char *why = NULL;
	CHECK(dp_pgbin_field(&out, DP_PGBIN_TEXT, DP_JSON_STRING, "\"a\\ud800\"", 9, &scratch, &why) == 1 &&
	      strstr(why, "lone surrogate"));
	CHECK(dp_pgbin_field(&out, DP_PGBIN_JSONB, DP_JSON_ARRAY, "[\"\\udc00\"]", 10, &scratch, &why) == 1);
	CHECK(dp_pgbin_field(&out, DP_PGBIN_JSONB, DP_JSON_ARRAY, "[\"\\u0000\"]", 10, &scratch, &why) == 1);
	CHECK(dp_pgbin_field(&out, DP_PGBIN_JSONB, DP_JSON_ARRAY, "[\"\\ud83d\\ude00\\\\u0000\"]", 22,
	                     &scratch, &why) == 0);
	CHECK(dp_pgbin_field(&out, DP_PGBIN_JSON, DP_JSON_ARRAY, "[\"\\udc00\"]", 10, &scratch, &why) == 0);
	dp_buf_free(&out);
	dp_buf_free(&scratch);
	printf("ok the SQLSTATE table\n");
	return 0;
}

static int
t_sink_parse(void)
{
	const char *obj = "{\"a\":1, \"b\" : [1,{\"c\":2}] ,\"a\\\"b\":\"x\"}";
	const char *k, *v;
	size_t pos = 0, kn, vn;
	int64_t us, days;

	CHECK(dp_json_next_member(obj, strlen(obj), &pos, &k, &kn, &v, &vn) == DP_JSON_NUMBER);
	CHECK(kn == 3 && !memcmp(k, "\"a\"", 3) && vn == 1 && *v == '1');
	CHECK(dp_json_next_member(obj, strlen(obj), &pos, &k, &kn, &v, &vn) == DP_JSON_ARRAY);
	CHECK(vn == 11 && !memcmp(v, "[1,{\"c\":2}]", 11));
	CHECK(dp_json_next_member(obj, strlen(obj), &pos, &k, &kn, &v, &vn) == DP_JSON_STRING);
	CHECK(kn == 6 && !memcmp(v, "\"x\"", 3));
	CHECK(dp_json_next_member(obj, strlen(obj), &pos, &k, &kn, &v, &vn) == DP_JSON_INVALID);
	pos = 0;
	CHECK(dp_json_next_member("[1]", 3, &pos, &k, &kn, &v, &vn) == DP_JSON_INVALID);
	CHECK(dp_time_parse_rfc3339_us("2000-01-01T00:00:00.0000015Z", &us) == 0 && us == 946684800000002);
	CHECK(dp_time_parse_rfc3339_us("2000-01-01T00:00:00.123456Z", &us) == 0 && us == 946684800123456);
	CHECK(dp_time_parse_rfc3339_us("2023-02-29T00:00:00Z", &us) < 0);
	CHECK(dp_time_parse_rfc3339_us("2024-02-29T00:00:00Z", &us) == 0);
	CHECK(dp_time_parse_date("2000-01-01", &days) == 0 && days == 10957);
	CHECK(dp_time_parse_date("1900-02-29", &days) < 0);
	printf("ok members, microseconds, dates\n");
	return 0;
}

/* Drive the engine until everything accounted is committed. */
static int
drain(struct dp_pgsink *s, struct dp_buf *err)
{
	for (int i = 0; i < 600; i++) {
		int rc = dp_pgsink_write(s, true, err);
		if (rc)
			return rc;
		if (dp_pgsink_idle(s))
			return 0;
		dp_pgsink_wait(s, 100);
	}
	return -1;
}

static int
feed_source(struct dp_pgsink *s, struct dp_pgsink_src *src, int part, int from, int to,
            struct dp_buf *err)
{
	char row[64], key[16];

	for (int i = from; i < to; i++) {
		while (!dp_pgsink_room(s, src)) {
			int rc = dp_pgsink_write(s, false, err);
			if (rc)
				return rc;
			dp_pgsink_wait(s, 50);
		}
		snprintf(row, sizeof(row), "{\"p\":%d,\"o\":%d}", part, i);
		snprintf(key, sizeof(key), "k%d", i);
		dp_pgsink_raw(s, src, i, key, strlen(key), row, strlen(row));
		int rc = dp_pgsink_add(s, src, i, row, strlen(row), err);
		if (rc)
			return rc;
		dp_pgsink_done(s, src, i + 1);
	}
	return 0;
}

/*
 * The engine as the Kafka side will use it: three partitions over two
 * writer connections, rows interleaved, each partition's offset in its
 * own row; then a stale writer of one partition is refused.  Needs a
 * database: $DP_PG.
 */
static int
t_pgsink_sources(void)
{
	const char *db = getenv("DP_PG");
	struct dp_buf err = DP_BUF_INIT;
	struct dp_pgsink *s = NULL, *stale = NULL;
	struct dp_pgsink_src *src[3], *ssrc;
	char table[64], topic[64], sql[256];
	int status;

	if (!db || !*db) {
		printf("no database\n");
		return 3;
	}
	snprintf(table, sizeof(table), "pgsink_unit_%d", (int)getpid());
	snprintf(topic, sizeof(topic), "topic_%d", (int)getpid());
	struct dp_pgsink_config cfg = {
		.conninfo = db, .app = "test_lib", .table = table, .create = true,
		.writers = 2, .batch_rows = 100, .batch_bytes = 1 << 20, .linger_ms = 50,
		.on_error = DP_PGSINK_SKIP, .timeout_ms = 5000,
	};
	CHECK(dp_pgsink_open(&s, &cfg, &err) == 0);
	for (int p = 0; p < 3; p++) {
		src[p] = dp_pgsink_source(s, "group", topic, p, true, &err, &status);
		CHECK(src[p] && dp_pgsink_stored(src[p]) == -1);
	}
	/* a second instance that read the same (empty) offsets */
	CHECK(dp_pgsink_open(&stale, &cfg, &err) == 0);
	ssrc = dp_pgsink_source(stale, "group", topic, 1, true, &err, &status);
	CHECK(ssrc && dp_pgsink_stored(ssrc) == -1);

	for (int chunk = 0; chunk < 10; chunk++)
		for (int p = 0; p < 3; p++)
			CHECK(feed_source(s, src[p], p, chunk * 100, chunk * 100 + 100, &err) == 0);
	CHECK(drain(s, &err) == 0);
	for (int p = 0; p < 3; p++)
		CHECK(dp_pgsink_stored(src[p]) == 1000);

	/* the stale one writes partition 1 from 0: its batch must not land */
	CHECK(feed_source(stale, ssrc, 1, 0, 50, &err) == 0);
	dp_buf_reset(&err);
	status = drain(stale, &err);
	CHECK(status == 75);
	CHECK(strstr(dp_buf_str(&err), "the stored offset is not -1 any more"));

	PGconn *c = PQconnectdb(db);
	CHECK(PQstatus(c) == CONNECTION_OK);
	snprintf(sql, sizeof(sql), "select string_agg(format('%%s:%%s:%%s', p, n, d), ',' order by p) "
	         "from (select p, count(*) n, count(distinct o) d from \"%s\" group by p) x", table);
	PGresult *r = PQexec(c, sql);
	CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
	printf("rows per partition: %s\n", PQgetvalue(r, 0, 0));
	CHECK(!strcmp(PQgetvalue(r, 0, 0), "0:1000:1000,1:1000:1000,2:1000:1000"));
	PQclear(r);
	snprintf(sql, sizeof(sql), "select string_agg(next_offset::text, ',' order by partition) "
	         "from dp_sink_offsets where \"group\" = 'group' and topic = '%s'", topic);
	r = PQexec(c, sql);
	CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(r, 0, 0), "1000,1000,1000"));
	PQclear(r);
	snprintf(sql, sizeof(sql), "drop table \"%s\"", table);
	PQclear(PQexec(c, sql));
	PQfinish(c);
	dp_pgsink_free(s);
	dp_pgsink_free(stale);
	dp_buf_free(&err);
	printf("ok three partitions on two writers, a stale writer refused\n");
	return 0;
}

/* on_bad for t_pgsink_release: the caller's thread, the record as it came. */
struct judged {
	pthread_t caller;
	int calls, other_thread;
	int64_t offset;
	char sqlstate[6];
	char key[32], value[128];
};

static int
judge_bad(void *arg, const struct dp_pgsink_bad *b)
{
	struct judged *j = arg;

	j->calls++;
	j->other_thread += !pthread_equal(pthread_self(), j->caller);
	j->offset = b->offset;
	snprintf(j->sqlstate, sizeof(j->sqlstate), "%s", b->sqlstate);
	snprintf(j->key, sizeof(j->key), "%.*s", (int)b->klen, b->key ? (const char *)b->key : "");
	snprintf(j->value, sizeof(j->value), "%.*s", (int)b->vlen,
	         b->value ? (const char *)b->value : "");
	return 0;
}

/*
 * What a group member does with the engine: a source released with a
 * batch filling is acquired again from its stored offset; a source
 * another instance moved is lost (resync) and starts again where that
 * one stopped; a row the server refuses reaches on_bad on the caller's
 * thread, with the record as it came, before its batch commits.
 */
static int
t_pgsink_release(void)
{
	const char *db = getenv("DP_PG");
	struct dp_buf err = DP_BUF_INIT;
	struct dp_pgsink *s = NULL;
	struct dp_pgsink_src *src, *lost;
	struct judged j = { .caller = pthread_self() };
	char table[64], topic[64], sql[256];
	int status;

	if (!db || !*db) {
		printf("no database\n");
		return 3;
	}
	snprintf(table, sizeof(table), "pgsink_rel_%d", (int)getpid());
	snprintf(topic, sizeof(topic), "rel_%d", (int)getpid());
	PGconn *c = PQconnectdb(db);
	CHECK(PQstatus(c) == CONNECTION_OK);
	snprintf(sql, sizeof(sql), "create table \"%s\" (p int, o bigint check (o <> 123))", table);
	PQclear(PQexec(c, sql));
	struct dp_pgsink_config cfg = {
		.conninfo = db, .app = "test_lib", .table = table, .writers = 2,
		.batch_rows = 100, .batch_bytes = 1 << 20, .linger_ms = 50,
		.on_error = DP_PGSINK_SKIP, .keep_raw = true, .resync = true, .timeout_ms = 5000,
		.on_bad = judge_bad, .arg = &j,
	};
	CHECK(dp_pgsink_open(&s, &cfg, &err) == 0);
	src = dp_pgsink_source(s, "group", topic, 0, true, &err, &status);
	CHECK(src && dp_pgsink_stored(src) == -1);
	/* 0-199 committed; 200-249 filling when the partition is revoked */
	CHECK(feed_source(s, src, 0, 0, 200, &err) == 0);
	CHECK(drain(s, &err) == 0 && dp_pgsink_stored(src) == 200);
	CHECK(feed_source(s, src, 0, 200, 250, &err) == 0);
	dp_pgsink_release(s, src);
	CHECK(dp_pgsink_src_idle(src));
	CHECK(drain(s, &err) == 0);
	/* assigned again: it starts from the stored 200, not from 250 */
	CHECK(dp_pgsink_source(s, "group", topic, 0, true, &err, &status) == src);
	CHECK(dp_pgsink_stored(src) == 200 && dp_pgsink_accounted(src) == 200);
	CHECK(feed_source(s, src, 0, 200, 300, &err) == 0);
	CHECK(drain(s, &err) == 0 && dp_pgsink_stored(src) == 300);
	CHECK(j.calls == 1 && j.other_thread == 0 && j.offset == 123);
	CHECK(!strcmp(j.sqlstate, "23514") && !strcmp(j.key, "k123"));
	CHECK(!strcmp(j.value, "{\"p\":0,\"o\":123}"));
	printf("bad row at offset %lld judged on the caller's thread: %s %s %s\n",
	       (long long)j.offset, j.sqlstate, j.key, j.value);
	/* another instance writes 300-349 and moves the offset */
	snprintf(sql, sizeof(sql), "insert into \"%s\" select 0, g from generate_series(300, 349) g",
	         table);
	PQclear(PQexec(c, sql));
	snprintf(sql, sizeof(sql), "update dp_sink_offsets set next_offset = 350 "
	         "where \"group\" = 'group' and topic = '%s'", topic);
	PQclear(PQexec(c, sql));
	CHECK(feed_source(s, src, 0, 300, 320, &err) == 0);
	CHECK(drain(s, &err) == 0);
	CHECK((lost = dp_pgsink_lost(s)) == src && !dp_pgsink_lost(s));
	CHECK(dp_pgsink_source(s, "group", topic, 0, true, &err, &status) == src);
	CHECK(dp_pgsink_stored(src) == 350);
	CHECK(feed_source(s, src, 0, 350, 400, &err) == 0);
	CHECK(drain(s, &err) == 0 && dp_pgsink_stored(src) == 400);
	snprintf(sql, sizeof(sql), "select count(*), count(distinct o), min(o), max(o) from \"%s\"",
	         table);
	PGresult *r = PQexec(c, sql);
	CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
	printf("rows: %s %s %s-%s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
	       PQgetvalue(r, 0, 3));
	CHECK(!strcmp(PQgetvalue(r, 0, 0), "399") && !strcmp(PQgetvalue(r, 0, 1), "399"));
	PQclear(r);
	snprintf(sql, sizeof(sql), "drop table \"%s\"", table);
	PQclear(PQexec(c, sql));
	snprintf(sql, sizeof(sql), "delete from dp_sink_offsets where topic = '%s'", topic);
	PQclear(PQexec(c, sql));
	PQfinish(c);
	dp_pgsink_free(s);
	dp_buf_free(&err);
	printf("ok released and acquired again, lost and resynced\n");
	return 0;
}

/*
 * Create a topic and use it at once, in the same process, with nothing in
 * between (no probe, unlike dp-topic create): every look-up that must
 * retry while the broker catches up.  N rounds; prints what failed.
 */
static int
t_fresh(int rounds)
{
	struct dp_common c;
	struct dp_buf err = DP_BUF_INIT;
	int st, failures = 0;
	rd_kafka_t *rk;

	dp_cli_init(&c);
	c.kafka.timeout_ms = 10000;
	rk = dp_kafka_new(&c.kafka, RD_KAFKA_PRODUCER, NULL, 0, NULL, NULL, &err, &st);
	CHECK(rk != NULL);
	for (int i = 0; i < rounds; i++) {
		char name[64], group[80];
		snprintf(name, sizeof(name), "fresh_%d_%d", (int)getpid(), i);
		snprintf(group, sizeof(group), "g_%s", name);
		struct dp_admin_spec spec = { name, 6, 1, NULL, 0 };
		struct dp_admin_result res;
		struct dp_admin_topics md;
		struct dp_admin_configs cfg;
		const char *names[1] = { name };
		int64_t lo, hi, committed[6];
		CHECK(dp_admin_create(rk, &spec, 1, false, 10000, &res) == 0 && res.status == 0);
		dp_admin_result_clear(&res);
		dp_buf_reset(&err);
		st = dp_admin_list_for(rk, names, 1, 10000, &md, &err);
		const struct dp_admin_topic *t = st ? NULL : dp_admin_topics_find(&md, name);
		int led = 0;
		for (int p = 0; t && p < t->npartitions; p++)
			led += t->partitions[p].leader >= 0;
		if (!t || t->npartitions != 6 || led != 6) {
			printf("round %d: metadata: status %d, %s, %d of %d partitions led\n", i, st,
			       t ? "listed" : "missing", led, t ? t->npartitions : 0);
			failures++;
		}
		dp_admin_topics_clear(&md);
		st = dp_admin_describe_configs(rk, names, 1, 10000, &cfg);
		if (st || cfg.res.status) {
			printf("round %d: configs: %s\n", i, cfg.res.error);
			failures++;
		}
		dp_admin_configs_clear(&cfg);
		for (int p = 0; p < 6; p++) {
			dp_buf_reset(&err);
			if (dp_kafka_watermarks(rk, name, p, 10000, &lo, &hi, &err)) {
				printf("round %d: %s\n", i, dp_buf_str(&err));
				failures++;
			}
		}
		dp_buf_reset(&err);
		if (dp_admin_committed(rk, group, name, 6, 10000, committed, &err)) {
			printf("round %d: %s\n", i, dp_buf_str(&err));
			failures++;
		}
	}
	printf("%d rounds, %d failures\n", rounds, failures);
	rd_kafka_destroy(rk);
	dp_cli_free(&c);
	dp_buf_free(&err);
	return failures != 0;
}

/*
 * dyn/spec.h's requests are checked completely, and an invalid one keeps
 * what it takes to answer it; dyn/decide.h's decisions table keeps, replaces,
 * forgets and lists decisions by request_id through growth and removal.
 */
static int
t_coord(void)
{
	static const struct { const char *json, *invalid; bool answerable; } reqs[] = {
		{ "{\"action\":\"create\",\"request_id\":\"a\",\"topic\":\"dyn.a\","
		  "\"source\":\"s\",\"filter\":\".\",\"partitions\":2,\"config\":{}}", NULL, true },
		{ "{\"action\":\"create\",\"request_id\":\"a\",\"topic\":\"dyn.a\","
		  "\"source\":\"s\",\"filter\":\".\",\"partiton\":6}",
		  "unknown field \"partiton\"", true },
		{ "{\"action\":\"create\",\"request_id\":\"a\",\"topic\":\"dyn.a\","
		  "\"source\":\"s\",\"filter\":\".\",\"\\u0070artiton\":6}",
		  "unknown field \"\\u0070artiton\"", true },
		{ "{\"action\":\"create\",\"request_id\":\"a\",\"topic\":\"dyn.a\","
		  "\"source\":\"s\",\"filter\":\".\",\"partitions\":0}",
		  "\"partitions\" is not an integer from 1 to 2147483647", true },
		{ "{\"action\":\"create\",\"request_id\":\"a\",\"topic\":\"dyn.a\","
		  "\"source\":\"s\"}", "no \"filter\"", true },
		{ "{\"action\":\"retire\",\"request_id\":\"a\",\"topic\":\"dyn.a\","
		  "\"delete_after_ms\":5,\"requested_by\":\"me\",\"requested_at\":null}", NULL, true },
		{ "{\"action\":\"retire\",\"request_id\":\"a\",\"topic\":\"dyn.a\","
		  "\"filter\":\".\"}", "field \"filter\" is for create, not retire", true },
		{ "{\"action\":\"drop\",\"request_id\":\"a\",\"topic\":\"dyn.a\"}",
		  "unknown \"action\" 'drop' (expected create or retire)", true },
		{ "{\"request_id\":\"a\",\"topic\":\"dyn.a\"}", "no \"action\"", true },
		{ "{\"action\":\"create\",\"topic\":\"dyn.a\"}", NULL, false },
		{ "{\"action\":\"create\",\"request_id\":\"\",\"topic\":\"dyn.a\"}", NULL, false },
		{ "{\"action\":\"create\",\"request_id\":\"a\"}", NULL, false },
		{ "[1]", NULL, false },
	};
	struct dp_buf err = DP_BUF_INIT;
	int bad = 0;

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct dp_dyn_request q;
		dp_buf_reset(&err);
		int rc = dp_dyn_request_parse(reqs[i].json, strlen(reqs[i].json), &q, &err);
		bool ok = reqs[i].invalid || !reqs[i].answerable ? rc < 0 : rc == 0;
		if (reqs[i].invalid)
			ok = ok && q.invalid && !strcmp(q.invalid, reqs[i].invalid) &&
			     !strcmp(dp_buf_str(&err), reqs[i].invalid);
		ok = ok && (q.request_id != NULL) == reqs[i].answerable &&
		     (q.topic != NULL) == reqs[i].answerable;
		if (!ok) {
			printf("FAIL %s: rc %d, invalid '%s', err '%s'\n", reqs[i].json, rc,
			       q.invalid ? q.invalid : "", dp_buf_str(&err));
			bad++;
		}
		dp_dyn_request_clear(&q);
	}
	printf("requests: %d wrong\n", bad);

	/* The table: 5000 decisions, every third forgotten, then put again. */
	struct dp_coord_decisions *d = dp_coord_decisions_new();
	char id[32];
	CHECK(d);
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "req-%d", i);
		struct dp_dyn_decision dec = { .request_id = id, .action = DP_DYN_CREATE,
		                               .topic = "dyn.x", .outcome = DP_DYN_OUT_GRANTED,
		                               .request_offset = i, .decided_at = -1 };
		CHECK(dp_coord_decisions_put(d, &dec) == 0);
	}
	for (int i = 0; i < 5000; i += 3) {
		snprintf(id, sizeof(id), "req-%d", i);
		dp_coord_decisions_forget(d, id);
	}
	CHECK(dp_coord_decisions_count(d) == 5000 - 1667);
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "req-%d", i);
		const struct dp_dyn_decision *x = dp_coord_decided(d, id);
		CHECK(i % 3 == 0 ? x == NULL : x && x->request_offset == i);
	}
	/* Replaced, not added; from the topic's records too (a tombstone forgets). */
	const char *v = "{\"request_id\":\"req-1\",\"action\":\"retire\",\"topic\":\"dyn.x\","
	                "\"outcome\":\"retired\",\"reason\":null,\"request_offset\":1,"
	                "\"decided_at\":\"2026-01-01T00:00:00Z\"}";
	CHECK(dp_coord_decisions_apply(d, "here", "req-1", 5, v, strlen(v)) == 0);
	CHECK(dp_coord_decided(d, "req-1")->outcome == DP_DYN_OUT_RETIRED);
	CHECK(dp_coord_decisions_apply(d, "here", "req-2", 5, NULL, 0) == 0);
	CHECK(!dp_coord_decided(d, "req-2"));
	/* A value whose request_id is not its key is skipped. */
	CHECK(dp_coord_decisions_apply(d, "here", "req-10", 6, v, strlen(v)) == 0);
	CHECK(dp_coord_decided(d, "req-10")->outcome == DP_DYN_OUT_GRANTED);
	CHECK(dp_coord_decisions_count(d) == 5000 - 1667 - 1);
	for (int i = 0; i < 5000; i += 3) {
		snprintf(id, sizeof(id), "req-%d", i);
		struct dp_dyn_decision dec = { .request_id = id, .outcome = DP_DYN_OUT_IGNORED,
		                               .reason = "why", .request_offset = -1 };
		CHECK(dp_coord_decisions_put(d, &dec) == 0);
	}
	const char **ids;
	size_t n = dp_coord_decisions_before(d, 100, &ids);
	/* 1..99 not divisible by 3, without req-2; the ignored ones have no offset */
	CHECK(n == 66 - 1);
	for (size_t i = 0; i < n; i++)
		CHECK(dp_coord_decided(d, ids[i])->request_offset < 100);
	free(ids);
	printf("decisions: %zu kept\n", dp_coord_decisions_count(d));
	dp_coord_decisions_free(d);
	dp_buf_free(&err);
	return bad != 0;
}

/*
 * core/opt.h: one table gives getopt's arrays, the values parsed strictly
 * into the context, the rows given, the subcommand check and --help.
 */
struct opt_ctx {
	bool flag;
	const char *name;
	struct dp_opt_list topics;
	int mode;
	uint64_t count, bytes;
	int64_t ms, wait_ms, offset;
	const char *called;
	struct dp_common common;
};

static int
opt_call(void *ctx, const struct dp_opt *o, char *arg)
{
	struct opt_ctx *c = ctx;

	if (strcmp(arg, "bad") == 0) {
		dp_err("invalid --%s '%s': bad", o->long_name, arg);
		return -1;
	}
	c->called = arg;
	return 0;
}

static int
t_opt(void)
{
	static const char *const modes[] = { "error", "skip", "string", NULL };
	static const struct dp_opt opts[] = {
		DP_OPT_GROUP("Things"),
		{ DP_ARG_FLAG, 'f', "flag", NULL, "a flag", .off = offsetof(struct opt_ctx, flag),
		  .subs = DP_SUB(1) },
		{ DP_ARG_STRING, 0, "name", "NAME", "a name",
		  .off = offsetof(struct opt_ctx, name), .flags = DP_OPT_NONEMPTY },
		{ DP_ARG_LIST, 't', "topic", "TOPIC", "topic to read; repeatable\n'^regex' too",
		  .off = offsetof(struct opt_ctx, topics) },
		{ DP_ARG_CHOICE, 0, "non-json", "MODE", "error, skip or string",
		  .off = offsetof(struct opt_ctx, mode), .choices = modes },
		{ DP_ARG_U64, 'n', "count", "N", "how many", .off = offsetof(struct opt_ctx, count),
		  .min = 1, .max = 100 },
		{ DP_ARG_SIZE, 0, "batch-bytes", "SIZE", NULL,
		  .off = offsetof(struct opt_ctx, bytes), .min = 1024, .max = 1 << 30,
		  .max_label = "1G" },
		{ DP_ARG_DURATION, 0, "linger", "DURATION", "at most 1h",
		  .off = offsetof(struct opt_ctx, ms), .max = 3600000, .max_label = "1h" },
		{ DP_ARG_TIMEOUT, 0, "wait", "DURATION", "a timeout with a long name column here",
		  .off = offsetof(struct opt_ctx, wait_ms), .max = 60000, .max_label = "1m" },
		{ DP_ARG_I64, 0, "offset", "N", "an offset", .off = offsetof(struct opt_ctx, offset),
		  .min = -5, .max = 5, .subs = DP_SUB(0) | DP_SUB(2) },
		{ DP_ARG_CALL, 'c', "call", "X", "parsed by a function", .fn = opt_call },
		{ DP_ARG_FLAG, 0, "old", NULL, "hidden", .off = offsetof(struct opt_ctx, flag),
		  .flags = DP_OPT_HIDDEN },
		DP_OPT_KAFKA_ROWS,
		DP_OPT_END,
	};
	const struct dp_opt *const tabs[] = { opts, dp_opt_base, NULL };
	struct opt_ctx c;
	int first;

	dp_log_init("test_lib");
#define PARSE(...) ( \
	memset(&c, 0, sizeof(c)), dp_cli_init(&c.common), \
	dp_opt_parse(tabs, &c, &c.common, &c.common.seen, \
	             (int)(sizeof((char *[]){ "x", __VA_ARGS__ }) / sizeof(char *)), \
	             (char *[]){ "x", __VA_ARGS__, NULL }, &first))
	char a1[] = "-X", a2[] = "sasl.password=hunter2";
	CHECK(PARSE("-f", "--name", "n1", "op1", "-t", "a", "--topic=b", "--non-json", "skip",
	            "-n", "7", "--batch-bytes", "64K", "--linger", "1m30s", "--wait", "5s",
	            "--offset=-3", "-c", "ok", "op2", "-v", "-b", "h:1", a1, a2) == 0);
	CHECK(c.flag && !strcmp(c.name, "n1") && c.topics.n == 2 && !strcmp(c.topics.v[1], "b"));
	CHECK(c.mode == 1 && c.count == 7 && c.bytes == 65536 && c.ms == 90000);
	CHECK(c.wait_ms == 5000 && c.offset == -3 && !strcmp(c.called, "ok"));
	CHECK(c.common.verbosity == 1 && !strcmp(c.common.kafka.brokers, "h:1"));
	CHECK(c.common.kafka.nprops == 1 && strstr(a2, "hunter2") == NULL);
	CHECK(first == 25);             /* operands permuted to the end */
	CHECK(dp_opt_given(tabs, &c.common.seen, "linger"));
	CHECK(!dp_opt_given(tabs, &c.common.seen, "old"));
	/* --flag is subcommand 1's, --offset 0's and 2's */
	CHECK(dp_opt_check_sub(tabs, &c.common.seen, 1, "one") < 0);
	CHECK(dp_opt_check_sub(tabs, &c.common.seen, 0, "zero") < 0);
	free(c.topics.v);
	dp_cli_free(&c.common);
	CHECK(PARSE("--offset", "1") == 0 && dp_opt_check_sub(tabs, &c.common.seen, 2, "two") == 0);
	dp_cli_free(&c.common);

	/* Every kind refuses what it cannot take. */
	CHECK(PARSE("--name", "") < 0);
	CHECK(PARSE("--non-json", "skipp") < 0);
	CHECK(PARSE("-n", "0") < 0);
	CHECK(PARSE("-n", "7x") < 0);
	CHECK(PARSE("--batch-bytes", "2G") < 0);
	CHECK(PARSE("--linger", "2h") < 0);
	CHECK(PARSE("--wait", "0") < 0);
	CHECK(PARSE("--offset", "-6") < 0);
	CHECK(PARSE("-c", "bad") < 0);
	CHECK(PARSE("--nope") < 0);
	CHECK(PARSE("--count") < 0);            /* missing argument */
	CHECK(PARSE("--flag=1") < 0);           /* a flag takes none */
	CHECK(dp_opt_pick("--x", "b", modes) < 0 && dp_opt_pick("--x", "string", modes) == 2);
	dp_cli_free(&c.common);
#undef PARSE

	/* --help's option text, laid out from the rows */
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	CHECK(fp);
	dp_opt_help(fp, (const struct dp_opt *const[]){ opts, NULL });
	fclose(fp);
	static const char want[] =
		"\n"
		"Things:\n"
		"  -f, --flag              a flag\n"
		"      --name NAME         a name\n"
		"  -t, --topic TOPIC       topic to read; repeatable\n"
		"                          '^regex' too\n"
		"      --non-json MODE     error, skip or string\n"
		"  -n, --count N           how many\n"
		"      --batch-bytes SIZE\n"
		"      --linger DURATION   at most 1h\n"
		"      --wait DURATION     a timeout with a long name column here\n"
		"      --offset N          an offset\n"
		"  -c, --call X            parsed by a function\n"
		"\n"
		"Kafka options:\n"
		"  -b, --brokers LIST      bootstrap brokers (default $DP_BROKERS, else localhost:9092)\n"
		"  -X, --property KEY=VAL  librdkafka property, repeatable (like kcat -X)\n"
		"  -F, --config FILE       librdkafka properties file (default $DP_CONFIG)\n"
		"      --timeout DURATION  give up on an unreachable cluster after this (default 10s)\n";
	if (strcmp(text, want) != 0) {
		printf("help:\n%s---\nwanted:\n%s---\n", text, want);
		free(text);
		return 1;
	}
	free(text);
	printf("opt: ok\n");
	return 0;
}

/*
 * jq/fast.h: operands in jq 1.6's order.  The subset answers "no value"
 * only where jq gives no value and raises no error, so for each
 * construct an operand that gives nothing (select(false)) and one that
 * fails (.n.x of a number, .z9 of 2) are put on either side, and fast
 * and libjq must agree on every record, an error included (found by
 * fuzz_jqfast: `select((. >8))>.z9` on 2 was "empty", jq's answer is
 * "Cannot index number with \"z9\"").
 */
static int
t_jqfast_order(void)
{
	static const char *const exprs[] = {
		"select((. >8))>.z9", "select(. == 2) > .z9", ".z9 > select(. == 3)",
		"select(false) == .n.x", ".n.x == select(false)", "select(false) != .n.x",
		".n.x != select(false)", "select(false) < .n.x", ".n.x < select(false)",
		"select(false) <= .n.x", ".n.x <= select(false)", "select(false) > .n.x",
		".n.x > select(false)", "select(false) >= .n.x", ".n.x >= select(false)",
		"(select(false) == 1) == .n.x", "(.n.x == 1) == select(false)",
		"select(false) and .n.x", ".n.x and select(false)", "false and .n.x",
		"true and .n.x", "true or .n.x", "false or .n.x", "select(false) or .n.x",
		".n.x or select(false)", ".n and .n.x", ".n or .n.x",
		"select(false) | .n.x", ".n.x | select(false)", "select(.n.x)",
		"select(select(false))", "select(false).a", "select(false).a.b",
		"{a: select(false), b: .n.x}", "{a: .n.x, b: select(false)}", "{n, a: .n.x}",
		"{a: .n, b: select(.n == 1)}", "select(false) | not", ".n.x | not",
		".n.x | tostring", "select(false) | tostring", ".a.b", ".n[\"x\"]", "\"s\".a",
		"null | .a.b", "(.n.x) == (.a.b)", "select(.n == 1) == select(.n == 2)",
	};
	static const char *const recs[] = {
		"2", "9", "{\"n\":1}", "{\"n\":{\"x\":3}}", "null", "{\"a\":[1],\"n\":\"s\"}",
		"[1]", "\"str\"", "{\"z9\":5,\"n\":5}", "{\"a\":null,\"n\":null}", "{}",
	};
	struct dp_buf fast = DP_BUF_INIT, slow = DP_BUF_INIT, err = DP_BUF_INIT;
	int bad = 0;

	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		struct dp_buf src = DP_BUF_INIT;
		CHECK(dp_buf_addf(&src, "def dp_slow: %s; dp_slow", exprs[i]) == 0);
		struct dp_expr *f = dp_expr_compile(exprs[i], &err);
		struct dp_expr *j = dp_expr_compile(src.data, &err);
		CHECK(f && j && !dp_expr_is_fast(j));
		if (!dp_expr_is_fast(f)) {
			printf("FAIL not in the subset: %s\n", exprs[i]);
			bad++;
		}
		for (size_t k = 0; k < sizeof(recs) / sizeof(recs[0]); k++) {
			outputs(f, recs[k], &fast);
			outputs(j, recs[k], &slow);
			if (strcmp(dp_buf_str(&fast), dp_buf_str(&slow))) {
				printf("FAIL %s on %s: fast %s, jq %s\n", exprs[i], recs[k],
				       dp_buf_str(&fast), dp_buf_str(&slow));
				bad++;
			}
		}
		dp_expr_free(f);
		dp_expr_free(j);
		dp_buf_free(&src);
	}
	/* Where jq gives nothing without an error, the subset says so itself. */
	static const struct { const char *expr, *rec; enum dp_jqf_result want; } own[] = {
		{ ".z9 > select(. == 3)", "2", DP_JQF_EMPTY },
		{ ".n.x == select(false)", "2", DP_JQF_EMPTY },
		{ "select(false) == .n.x", "2", DP_JQF_NEED_JQ },
		{ "select((. >8))>.z9", "2", DP_JQF_NEED_JQ },
		{ "{a: select(false), b: .n.x}", "2", DP_JQF_EMPTY },
		{ "{a: .n.x, b: select(false)}", "2", DP_JQF_NEED_JQ },
		{ "select(false) and .n.x", "2", DP_JQF_EMPTY },
		{ "false and .n.x", "2", DP_JQF_VALUE },
	};
	struct dp_jqf_run run = DP_JQF_RUN_INIT;
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		struct dp_jqf *q = dp_jqf_compile(own[i].expr);
		enum dp_json_type t;
		const char *v;
		size_t vn;
		CHECK(q != NULL);
		enum dp_jqf_result r = dp_jqf_eval(q, &run, own[i].rec, strlen(own[i].rec), &t, &v, &vn);
		if (r != own[i].want) {
			printf("FAIL %s on %s: the subset says %d, not %d\n", own[i].expr, own[i].rec,
			       (int)r, (int)own[i].want);
			bad++;
		}
		dp_jqf_free(q);
	}
	dp_jqf_run_free(&run);
	/* The operators whose order the subset does not keep are not in it. */
	static const char *const theirs[] = { ".a // .b", "select(false) // .n.x", ".a + 1",
		".a - 1", ".a * 2", ".a / 2", ".a % 2", "-.a", ".a, .b", ".a?", "try .a",
		"if .a then .b else .c end", ".a as $x | $x", "reduce .[] as $x (0; . + $x)" };
	for (size_t i = 0; i < sizeof(theirs) / sizeof(theirs[0]); i++) {
		struct dp_jqf *q = dp_jqf_compile(theirs[i]);
		if (q) {
			printf("FAIL taken by the subset: %s\n", theirs[i]);
			bad++;
		}
		dp_jqf_free(q);
	}
	dp_buf_free(&fast);
	dp_buf_free(&slow);
	dp_buf_free(&err);
	printf("%zu expressions on %zu records: %d disagreements\n",
	       sizeof(exprs) / sizeof(exprs[0]), sizeof(recs) / sizeof(recs[0]), bad);
	return bad ? 1 : 0;
}

/* src: pre repeated n times, then mid, then post repeated n times (caller frees). */
static char *
nested(const char *pre, const char *mid, const char *post, size_t n)
{
	size_t a = strlen(pre), b = strlen(mid), c = strlen(post);
	char *s = malloc(n * (a + c) + b + 1), *p = s;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++, p += a)
		memcpy(p, pre, a);
	memcpy(p, mid, b);
	p += b;
	for (size_t i = 0; i < n; i++, p += c)
		memcpy(p, post, c);
	*p = '\0';
	return s;
}

/*
 * jq/fast.h: an expression deeper than the subset's cap is libjq's, not a
 * stack overflow.  100000 nested parentheses crashed dp_jqf_compile()
 * (its parser recursed once per level), and a filter is text another
 * application may send (a request to dp-coord).
 */
static int
t_jqfast_deep(void)
{
	static const struct { const char *pre, *mid, *post; size_t n; int fast; } cases[] = {
		{ "(", ".a", ")", 100000, 0 },          /* the parser's recursion */
		{ "select(", ".a", ")", 100000, 0 },
		{ "{a: ", ".a", "}", 100000, 0 },
		{ "not | ", ".a", "", 100000, 0 },      /* '|' is right-recursive */
		{ ".a and ", ".a", "", 100000, 0 },     /* a left-deep tree for eval */
		{ "", ".", ".a", 100000, 0 },
		{ "(", ".a", ")", 2000, 0 },            /* libjq still answers this */
		{ "(", ".a", ")", 400, 1 },             /* within the cap: the subset's */
		{ ".a == 1 and ", ".a == 1", "", 100, 1 },
	};
	struct dp_buf out = DP_BUF_INIT, err = DP_BUF_INIT;
	int bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *src = nested(cases[i].pre, cases[i].mid, cases[i].post, cases[i].n);
		CHECK(src != NULL);
		struct dp_jqf *f = dp_jqf_compile(src);
		if (!f != !cases[i].fast) {
			printf("FAIL %zu x '%s%s%s': %s by the subset\n", cases[i].n, cases[i].pre,
			       cases[i].mid, cases[i].post, f ? "taken" : "declined");
			bad++;
		}
		dp_jqf_free(f);
		if (cases[i].n <= 2000) {
			/* Either way dp gives jq's answer. */
			struct dp_expr *e = dp_expr_compile(src, &err);
			CHECK(e != NULL);
			outputs(e, "{\"a\":1}", &out);
			const char *want = strstr(cases[i].mid, "==") ? "true\n" : "1\n";
			if (strcmp(dp_buf_str(&out), want)) {
				printf("FAIL %zu x '%s%s%s': %s\n", cases[i].n, cases[i].pre,
				       cases[i].mid, cases[i].post, dp_buf_str(&out));
				bad++;
			}
			dp_expr_free(e);
		}
		free(src);
	}
	dp_buf_free(&out);
	dp_buf_free(&err);
	printf("%d deep expressions misjudged\n", bad);
	return bad ? 1 : 0;
}

/*
 * json/scan.h's block paths (a run of digits, a run of plain string bytes,
 * an array's next number or string), at their edges: the byte that ends a
 * run at every position of a 16- and an 8-byte block and past them, the
 * run ending exactly at the end of the buffer (each text in a buffer of
 * its own size, so that ASan sees a read past it).  Each verdict is the
 * one the byte-at-a-time grammar gives: the reason and the byte.
 */
static int
json_runs_case(const char *text, size_t n, enum dp_json_type want, const char *want_why,
               size_t want_off, int *bad)
{
	char *b = malloc(n ? n : 1);
	const char *why = NULL;
	size_t off = 0;

	if (!b)
		return -1;
	memcpy(b, text, n);
	enum dp_json_type t = dp_json_check(b, n, &why, &off);
	if (t != want || (want == DP_JSON_INVALID && (strcmp(why, want_why) || off != want_off))) {
		printf("FAIL %zu bytes: got %d %s at %zu, want %d %s at %zu\n", n, (int)t,
		       t == DP_JSON_INVALID ? why : "", off, (int)want, want_why ? want_why : "",
		       want_off);
		++*bad;
	}
	free(b);
	return 0;
}

static int
t_json_runs(void)
{
	char d[64], doc[128];
	int bad = 0, cases = 0;
	size_t n;

	/* Digit runs of every length to 40, both ends '9' and '0' included. */
	for (size_t len = 1; len <= 40; len++) {
		for (size_t i = 0; i < len; i++)
			d[i] = (char)('0' + (9 + i) % 10);      /* 9012345678... */
		/* Alone: the run ends at the buffer's end. */
		CHECK(json_runs_case(d, len, DP_JSON_NUMBER, NULL, 0, &bad) == 0);
		/* As an array's later element, and as a fraction. */
		n = (size_t)snprintf(doc, sizeof(doc), "[1,%.*s]", (int)len, d);
		CHECK(json_runs_case(doc, n, DP_JSON_ARRAY, NULL, 0, &bad) == 0);
		n = (size_t)snprintf(doc, sizeof(doc), "[1,-0.%.*s]", (int)len, d);
		CHECK(json_runs_case(doc, n, DP_JSON_ARRAY, NULL, 0, &bad) == 0);
		/* Cut after the run: no ']' follows. */
		n = (size_t)snprintf(doc, sizeof(doc), "[1,%.*s", (int)len, d);
		CHECK(json_runs_case(doc, n, DP_JSON_INVALID, "unexpected end of input", n,
		                     &bad) == 0);
		/* The bytes on either side of '0'..'9', and a high one, end the run. */
		static const char stops[] = { '/', ':', 'a', ' ' - 1, (char)0x80, (char)0xb9 };
		for (size_t k = 0; k < sizeof(stops); k++) {
			n = (size_t)snprintf(doc, sizeof(doc), "[1,%.*s", (int)len, d);
			doc[n++] = stops[k];
			doc[n++] = ']';
			CHECK(json_runs_case(doc, n, DP_JSON_INVALID, "expected ',' or ']'",
			                     3 + len, &bad) == 0);
			memcpy(doc, d, len);
			doc[len] = stops[k];
			CHECK(json_runs_case(doc, len + 1, DP_JSON_INVALID,
			                     "trailing characters after the value", len, &bad) == 0);
			cases += 2;
		}
		cases += 4;
	}
	/*
	 * Number shapes, each at every distance from the end of the buffer to
	 * 20 bytes (the block takes it whole, or leaves it to the grammar):
	 * the reason and the byte, counted from the number's first.
	 */
	static const struct {
		const char *num, *why;  /* why NULL: valid */
		size_t at;
	} shapes[] = {
		{ "1e5", NULL, 0 }, { "-12.5E-3", NULL, 0 }, { "0.000000000000001e+999", NULL, 0 },
		{ "-0", NULL, 0 }, { "123456789012345.5", NULL, 0 }, { "-9.87654321098765", NULL, 0 },
		{ "-", "bad number", 1 }, { "1.", "bad number", 2 }, { "1.e5", "bad number", 2 },
		{ "-a", "bad number", 1 }, { "1e", "bad number", 2 }, { "1e+", "bad number", 3 },
		{ "--1", "bad number", 1 }, { "-.5", "bad number", 1 },
		{ "0123", "expected ',' or ']'", 1 }, { "1.5.5", "expected ',' or ']'", 3 },
	};
	for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
		for (size_t pad = 0; pad <= 20; pad++) {
			n = (size_t)snprintf(doc, sizeof(doc), "[1,%s]%*s", shapes[k].num, (int)pad, "");
			CHECK(json_runs_case(doc, n, shapes[k].why ? DP_JSON_INVALID : DP_JSON_ARRAY,
			                     shapes[k].why, 3 + shapes[k].at, &bad) == 0);
			/* Alone, where it may run to the end of the buffer. */
			n = (size_t)snprintf(doc, sizeof(doc), "%s%*s", shapes[k].num, (int)pad, "");
			CHECK(json_runs_case(doc, n, shapes[k].why ? DP_JSON_INVALID : DP_JSON_NUMBER,
			                     shapes[k].why && shapes[k].why[0] == 'e' ?
			                     "trailing characters after the value" : shapes[k].why,
			                     shapes[k].at, &bad) == 0);
			cases += 2;
		}
	}
	/* Plain string bytes with one special byte at every position to 40. */
	static const struct {
		const char *bytes;      /* at position i of the body */
		const char *why;        /* NULL: valid */
	} specials[] = {
		{ "\\n", NULL }, { "\\\"", NULL }, { "\\u00e9", NULL }, { "\x7f", NULL },
		{ " ", NULL }, { "\xc3\xa9", NULL }, { "\xf0\x9f\x98\x80", NULL },
		{ "\x01", "control character in string" }, { "\x1f", "control character in string" },
		{ "\xff", "invalid UTF-8" }, { "\xc3", "invalid UTF-8" }, { "\x80", "invalid UTF-8" },
		{ "\xed\xa0\x80", "invalid UTF-8" }, { "\\x", "bad escape in string" },
	};
	for (size_t len = 0; len <= 40; len++) {
		for (size_t i = 0; i <= len; i++) {
			for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
				size_t sl = strlen(specials[k].bytes);
				/* Top level, and an array's later element: the body starts at 1 and 4. */
				for (size_t at = 1; at <= 4; at += 3) {
					n = 0;
					if (at == 4)
						memcpy(doc, "[1,\"", 4), n = 4;
					else
						doc[n++] = '"';
					memset(doc + n, 'a', i), n += i;
					memcpy(doc + n, specials[k].bytes, sl), n += sl;
					memset(doc + n, 'b', len - i), n += len - i;
					doc[n++] = '"';
					if (at == 4)
						doc[n++] = ']';
					CHECK(json_runs_case(doc, n,
					                     specials[k].why ? DP_JSON_INVALID :
					                     at == 4 ? DP_JSON_ARRAY : DP_JSON_STRING,
					                     specials[k].why, at + i, &bad) == 0);
					cases++;
				}
			}
			/* A NUL byte; a quote that ends the string early. */
			doc[0] = '"';
			memset(doc + 1, 'a', i);
			n = 1 + i;
			doc[n++] = '\0';
			doc[n++] = '"';
			CHECK(json_runs_case(doc, n, DP_JSON_INVALID, "NUL byte", 1 + i, &bad) == 0);
			doc[1 + i] = '"';
			CHECK(json_runs_case(doc, n, DP_JSON_INVALID,
			                     "trailing characters after the value", 2 + i, &bad) == 0);
			cases += 2;
		}
		/* Unterminated: the body runs to the end of the buffer. */
		doc[0] = '"';
		memset(doc + 1, 'a', len);
		CHECK(json_runs_case(doc, len + 1, DP_JSON_INVALID, "unterminated string", len + 1,
		                     &bad) == 0);
		cases++;
	}
	printf("json block paths: %d cases, %d wrong\n", cases, bad);
	return bad != 0;
}

/*
 * json/scan.h: a member name written with escapes is the name it stands for,
 * not the name its bytes spell.  The key literal "a\\b" (a\b) has the
 * length of a\\b plus its quotes, and dp_json_get took it for a\\b
 * (found by fuzz_json: the last member of a name was not the one found).
 * Checked on the pickers and, through jqfast, against libjq.
 */
static int
t_json_keys(void)
{
	/* {"a\\\\b":1,"a\\b":2}: the first is a\\b, the second a\b. */
	const char *rec = "{\"a\\\\\\\\b\":1,\"a\\\\b\":2}";
	static const struct { const char *key, *want; } picks[] = {
		{ "a\\\\b", "1" }, { "a\\b", "2" }, { "a\\\\\\\\b", NULL }, { "ab", NULL },
	};
	int bad = 0;

	for (size_t i = 0; i < sizeof(picks) / sizeof(picks[0]); i++) {
		const char *path[1] = { picks[i].key }, *v, *why;
		size_t vn, off;
		int compact;
		enum dp_json_type t = dp_json_check_member(rec, strlen(rec), picks[i].key, &v, &vn,
		                                           &why, &off, &compact);
		const char *got;
		size_t gotn;
		dp_json_get(rec, strlen(rec), path, 1, &got, &gotn);
		int ok = t == DP_JSON_OBJECT &&
		         (picks[i].want ? gotn == strlen(picks[i].want) && !memcmp(got, picks[i].want, gotn) &&
		                          vn == gotn && !memcmp(v, picks[i].want, vn)
		                        : gotn == 0 && v == NULL);
		if (!ok) {
			printf("FAIL member %s of %s: get %.*s, check_member %.*s\n", picks[i].key, rec,
			       (int)gotn, got, v ? (int)vn : 4, v ? v : "none");
			bad++;
		}
	}
	/* The same through jq expressions: fast and libjq agree. */
	static const char *const exprs[] = {
		".\"a\\\\b\"", ".\"a\\\\\\\\b\"", ".[\"a\\\\b\"]", "{\"a\\\\\\\\b\"}",
		".\"a\\\\\\\\b\" == 1", "select(.\"a\\\\b\" == 2) | .\"a\\\\\\\\b\"",
	};
	static const char *const recs[] = {
		"{\"a\\\\\\\\b\":1,\"a\\\\b\":2}", "{\"a\\\\b\":2}", "{\"a\\\\\\\\b\":1}",
		"{\"a\\\\b\":2,\"a\\\\\\\\b\":1}", "{\"a\\u005cb\":3}", "{\"a\\u005c\\\\b\":4}",
	};
	struct dp_buf fast = DP_BUF_INIT, slow = DP_BUF_INIT, err = DP_BUF_INIT;
	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		struct dp_buf src = DP_BUF_INIT;
		CHECK(dp_buf_addf(&src, "def dp_slow: %s; dp_slow", exprs[i]) == 0);
		struct dp_expr *f = dp_expr_compile(exprs[i], &err);
		struct dp_expr *j = dp_expr_compile(src.data, &err);
		CHECK(f && j && dp_expr_is_fast(f) && !dp_expr_is_fast(j));
		for (size_t k = 0; k < sizeof(recs) / sizeof(recs[0]); k++) {
			outputs(f, recs[k], &fast);
			outputs(j, recs[k], &slow);
			if (strcmp(dp_buf_str(&fast), dp_buf_str(&slow))) {
				printf("FAIL %s on %s: fast %s, jq %s\n", exprs[i], recs[k],
				       dp_buf_str(&fast), dp_buf_str(&slow));
				bad++;
			}
		}
		dp_expr_free(f);
		dp_expr_free(j);
		dp_buf_free(&src);
	}
	dp_buf_free(&fast);
	dp_buf_free(&slow);
	dp_buf_free(&err);
	printf("escaped member names: %d disagreements\n", bad);
	return bad ? 1 : 0;
}

/*
 * obs/metrics.h: off until initialized; families, labelled series,
 * escapes, histograms and drops in the text exposition; adds from
 * several threads lose nothing.
 */
static struct dp_series *metrics_hot;

static void *
metrics_adder(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++)
		dp_series_add(metrics_hot, 1);
	return NULL;
}

static int
t_metrics(void)
{
	static const char *const tp[] = { "topic", "partition", NULL };
	static const double lat[] = { 0.005, 0.1, 1 };
	struct dp_buf out = DP_BUF_INIT;

	CHECK(!dp_metrics_on());
	CHECK(dp_metric_new("dp_x_total", "x", DP_METRIC_COUNTER, NULL, NULL, 0) == NULL);
	dp_series_add(NULL, 1);         /* a NULL series takes anything */
	CHECK(dp_metrics_init("dp-test") == 0 && dp_metrics_on());

	struct dp_metric *out_total = dp_metric_new("dp_records_out_total",
	        "Records delivered.\nAcknowledged \\ committed.", DP_METRIC_COUNTER, tp, NULL, 0);
	struct dp_metric *lag = dp_metric_new("dp_consumer_lag_records", "Lag.", DP_METRIC_GAUGE,
	                                      tp, NULL, 0);
	struct dp_metric *batch = dp_metric_new("dp_batch_seconds", "Batch latency.",
	                                        DP_METRIC_HISTOGRAM, NULL, lat, 3);
	struct dp_metric *empty = dp_metric_new("dp_unused", "Never used.", DP_METRIC_GAUGE,
	                                        NULL, NULL, 0);
	CHECK(out_total && lag && batch && empty);
	CHECK(dp_metric_new("dp_records_out_total", "again", DP_METRIC_COUNTER, tp, NULL, 0) ==
	      out_total);

	struct dp_series *p0 = dp_metric_series(out_total, (const char *const[]){ "pri\"ces", "0" });
	struct dp_series *p1 = dp_metric_series(out_total, (const char *const[]){ "prices", "1" });
	CHECK(p0 && p1 && p0 != p1);
	CHECK(dp_metric_series(out_total, (const char *const[]){ "pri\"ces", "0" }) == p0);
	dp_series_add(p0, 3);
	dp_series_add(p1, 1e6);
	struct dp_series *l1 = dp_metric_series(lag, (const char *const[]){ "prices", "1" });
	dp_series_set(l1, 42);
	dp_series_set(l1, 7.5);
	struct dp_series *l2 = dp_metric_series(lag, (const char *const[]){ "prices", "2" });
	dp_series_set(l2, 1);
	dp_series_drop(l2);
	dp_series_set(l2, 99);          /* dropped: kept for late adders, not shown */
	struct dp_series *b = dp_metric_one(batch);
	dp_series_observe(b, 0.001);
	dp_series_observe(b, 0.1);
	dp_series_observe(b, 30);
	CHECK(dp_series_get(b) == 3 && dp_series_get(l1) == 7.5);

	CHECK(dp_metrics_write(&out) == 0);
	static const char want[] =
		"# HELP dp_records_out_total Records delivered.\\nAcknowledged \\\\ committed.\n"
		"# TYPE dp_records_out_total counter\n"
		"dp_records_out_total{command=\"dp-test\",topic=\"pri\\\"ces\",partition=\"0\"} 3\n"
		"dp_records_out_total{command=\"dp-test\",topic=\"prices\",partition=\"1\"} 1000000\n"
		"# HELP dp_consumer_lag_records Lag.\n"
		"# TYPE dp_consumer_lag_records gauge\n"
		"dp_consumer_lag_records{command=\"dp-test\",topic=\"prices\",partition=\"1\"} 7.5\n"
		"# HELP dp_batch_seconds Batch latency.\n"
		"# TYPE dp_batch_seconds histogram\n"
		"dp_batch_seconds_bucket{command=\"dp-test\",le=\"0.005\"} 1\n"
		"dp_batch_seconds_bucket{command=\"dp-test\",le=\"0.1\"} 2\n"
		"dp_batch_seconds_bucket{command=\"dp-test\",le=\"1\"} 2\n"
		"dp_batch_seconds_bucket{command=\"dp-test\",le=\"+Inf\"} 3\n"
		"dp_batch_seconds_sum{command=\"dp-test\"} 30.101\n"
		"dp_batch_seconds_count{command=\"dp-test\"} 3\n";
	if (strcmp(dp_buf_str(&out), want) != 0) {
		printf("exposition:\n%s---\nwanted:\n%s---\n", dp_buf_str(&out), want);
		dp_buf_free(&out);
		return 1;
	}

	/* four threads add 100000 each to one counter */
	pthread_t th[4];
	metrics_hot = dp_metric_one(dp_metric_new("dp_hot_total", "Hot.", DP_METRIC_COUNTER,
	                                          NULL, NULL, 0));
	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&th[i], NULL, metrics_adder, NULL) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(dp_series_get(metrics_hot) == 400000);
	dp_buf_free(&out);
	dp_metrics_free();
	CHECK(!dp_metrics_on());
	printf("metrics: ok\n");
	return 0;
}

/*
 * kafka/topics.h without a broker: specs completed from -p/-c, names
 * checked locally, each topic's outcome shown as a record and as a row;
 * the lag rule; a count or unknown in a cell and in JSON.
 */
static char *
read_all(int fd)
{
	static char text[4096];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);

	text[n > 0 ? n : 0] = '\0';
	return text;
}

static int
t_topics(void)
{
	struct dp_kv cfg[] = { { "retention.ms", "1000" } };
	struct dp_topics_opts o = { .partitions = 3, .config = cfg, .nconfig = 1 };
	const char *names[] = { "a", "bad name", "a" };
	struct dp_topics t;
	char path[] = "/tmp/dp-topics-XXXXXX", num[DP_TABLE_NUM];
	int fd = mkstemp(path);
	struct dp_out *out;

	CHECK(fd >= 0);
	unlink(path);
	dp_topics_init(&t, &o, "cannot create");
	CHECK(dp_topics_specs(&t, names, 3) == 0 && t.nspecs == 3 && t.n == 3);
	CHECK(t.specs[0].partitions == 3 && t.specs[0].replication_factor == -1);
	CHECK(t.specs[0].nconfig == 1 && !strcmp(t.specs[0].config[0].value, "1000"));
	CHECK(dp_topics_check(&t) == 1);
	CHECK(t.v[1].res.status == DP_EX_INVALID && t.v[2].res.status == DP_EX_INVALID);
	CHECK(!strcmp(t.v[2].res.error, "topic is named more than once"));
	t.v[0].action = "would-create";
	out = dp_out_new(fd, 0);
	CHECK(out);
	dp_topics_output(&t, out, DP_TOPICS_JSON);
	CHECK(dp_topics_show_created(&t) == 0 && dp_out_flush(out) == 0);
	CHECK(t.status == DP_EX_INVALID);
	const char *text = read_all(fd);
	printf("%s", text);
	const char *want = "{\"name\":\"a\",\"action\":\"would-create\",\"partitions\":3,"
	                   "\"replication_factor\":null,\"config\":{\"retention.ms\":\"1000\"},"
	                   "\"error\":null,\"status\":0}\n"
	                   "{\"name\":\"bad name\",\"action\":\"failed\",";
	CHECK(!strncmp(text, want, strlen(want)));
	CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	dp_topics_output(&t, out, DP_TOPICS_TABLE);
	CHECK(dp_topics_show_created(&t) == 0 && dp_out_flush(out) == 0);
	text = read_all(fd);
	printf("%s", text);
	want = "NAME      ACTION        PARTITIONS  REPLICATION  ERROR\n"
	       "a         would-create           3            -\n";
	CHECK(!strncmp(text, want, strlen(want)));
	dp_out_free(out);
	close(fd);
	dp_topics_free(&t);

	CHECK(dp_topics_lag(0, 10, 4) == 6 && dp_topics_lag(0, 10, -1) == 10);
	CHECK(dp_topics_lag(2, 10, 1) == 8 && dp_topics_lag(0, 10, 15) == 10);
	CHECK(dp_topics_lag(5, 5, 5) == 0 && dp_topics_lag(-1, -1, 3) == -1);
	CHECK(dp_table_num(num, -1) == NULL && !strcmp(dp_table_num(num, 42), "42"));
	struct dp_buf b = DP_BUF_INIT;
	struct dp_jw w;
	dp_jw_init(&w, &b);
	dp_jw_obj(&w);
	dp_jw_kcount(&w, "low", -1);
	dp_jw_kcount(&w, "high", 7);
	dp_jw_end(&w);
	CHECK(dp_jw_finish(&w) == 0 && !strcmp(dp_buf_str(&b), "{\"low\":null,\"high\":7}"));
	dp_buf_free(&b);
	printf("topics: ok\n");
	return 0;
}

/*
 * obs/health.h: ready needs every link up and no stale feed; a dropped
 * feed no longer counts; a failure ends live and ready.
 */
static int
t_health(void)
{
	char why[256];

	CHECK(dp_health_feed("x") == NULL);     /* off: nothing, NULL everywhere */
	dp_health_data(NULL);
	CHECK(dp_health_init(60) == 0);
	struct dp_health_feed *p0 = dp_health_feed("prices/0");
	struct dp_health_feed *p1 = dp_health_feed("prices/1");
	CHECK(p0 && p1 && dp_health_feed("prices/0") == p0);
	dp_health_link("kafka", true);
	CHECK(dp_health_ready(why, sizeof(why)));
	CHECK(dp_health_data_age_ms() == -1);
	dp_health_link("kafka", false);
	CHECK(!dp_health_ready(why, sizeof(why)) && !strcmp(why, "kafka is down"));
	dp_health_link("kafka", true);
	usleep(100 * 1000);                     /* the clock is the subject */
	/* No record on any feed for the stale time: the data never started. */
	CHECK(!dp_health_ready(why, sizeof(why)));
	CHECK(strstr(why, "no record since the start, ") && strstr(why, "(--stale-after 60ms)"));
	dp_health_data(p1);
	dp_health_data(p0);
	CHECK(dp_health_ready(why, sizeof(why)));
	usleep(100 * 1000);                     /* both go stale; p0 comes again */
	dp_health_data(p0);
	CHECK(!dp_health_ready(why, sizeof(why)));
	CHECK(strstr(why, "no record on prices/1 for ") && strstr(why, "(--stale-after 60ms)"));
	dp_health_feed_drop(p1);
	CHECK(dp_health_ready(why, sizeof(why)));
	/* A feed without any record yet (a partition no key hashes to) is not watched. */
	CHECK(dp_health_feed("prices/2") && dp_health_ready(why, sizeof(why)));
	CHECK(dp_health_data_age_ms() >= 0 && dp_health_data_age_ms() < 60);
	CHECK(dp_health_live(why, sizeof(why)));
	dp_health_fail("a batch was refused");
	CHECK(!dp_health_live(why, sizeof(why)) && !strcmp(why, "a batch was refused"));
	CHECK(!dp_health_ready(why, sizeof(why)));
	dp_health_free();
	printf("health: ok\n");
	return 0;
}

/*
 * status/status.h over the broker in $DP_BROKERS: a process with a toy machine
 * (idle -> working -> done) that publishes its status to TOPIC as INSTANCE
 * every INTERVAL, counting 10 records in and out each 100 ms, until
 * SIGTERM; then its machine ends and the last status says exit 0.  Prints
 * "working" once started.  tests/dp-top.bats reads what it published.
 */
enum { TS_IDLE, TS_WORKING, TS_DONE };
enum { TE_START, TE_STOP };
static int
status_step_none(struct dp_fsm *m, void *ctx)
{
	return DP_FSM_NONE;
}

static int
t_status(const char *topic, const char *instance, const char *interval)
{
	static const char *const states[] = { "idle", "working", "done" };
	static const char *const events[] = { "start", "stop" };
	static const struct dp_fsm_row rows[] = {
		{ TS_IDLE, TE_START, TS_WORKING, status_step_none },
		{ TS_WORKING, TE_STOP, TS_DONE, NULL },
	};
	static const struct dp_fsm_final finals[] = { { TS_DONE, 0 } };
	static const struct dp_fsm_def def = { "test-status", states, 3, events, 2, rows, 2,
	                                       TS_IDLE, finals, 1 };
	static const char *const dir[] = { "direction", NULL };
	struct dp_common c;
	struct dp_fsm m;
	struct dp_buf err = DP_BUF_INIT, key = DP_BUF_INIT, val = DP_BUF_INIT;
	struct dp_status_opts o = { .topic = topic, .instance = instance };

	dp_cli_init(&c);
	CHECK(dp_sig_install() == 0);
	CHECK(dp_parse_duration("interval", interval, &o.interval_ms) == 0);
	CHECK(dp_status_check(&o, &err) == 0);
	CHECK(dp_metrics_init("test-status") == 0);
	struct dp_metric *in = dp_metric_new("dp_records_in_total", "records read",
	                                     DP_METRIC_COUNTER, dir, NULL, 0);
	struct dp_series *a = dp_metric_series(in, (const char *const[]){ "a" });
	struct dp_series *b = dp_metric_series(in, (const char *const[]){ "b" });
	struct dp_series *out = dp_metric_one(dp_metric_new("dp_records_out_total",
	                                                    "records written",
	                                                    DP_METRIC_COUNTER, NULL, NULL, 0));
	dp_log_init("test-status");             /* the command the status names */
	CHECK(dp_status_start(&o, &c.kafka, NULL) == 0);
	dp_fsm_init(&m, &def, false);
	CHECK(dp_status_record(&key, &val) == 0);
	printf("key %s\nrecord %s\n", dp_buf_str(&key), dp_buf_str(&val));
	CHECK(strstr(dp_buf_str(&val), "\"machines\":[{\"machine\":\"test-status\","
	                                "\"state\":\"idle\""));
	dp_fsm_step(&m, TE_START, NULL);
	printf("working\n");
	fflush(stdout);
	while (!dp_sig_stop) {
		dp_series_add(a, 6);
		dp_series_add(b, 4);
		dp_series_add(out, 10);
		dp_backoff_sleep(100, &dp_sig_stop);
	}
	dp_fsm_step(&m, TE_STOP, NULL);
	dp_status_stop(dp_fsm_status(&m));
	dp_status_stop(0);                      /* twice: nothing more */
	dp_buf_free(&key);
	dp_buf_free(&val);
	dp_buf_free(&err);
	dp_cli_free(&c);
	return 0;
}

/*
 * status/status.h's checks, and status/top.h's views of records given by hand
 * (no broker): running, stopped and gone; grouped by actor; forgotten;
 * the diagram marks the running process's state.
 */
static int
t_top_view(void)
{
	struct dp_status_opts o = { .topic = "a b" };
	struct dp_buf err = DP_BUF_INIT, out = DP_BUF_INIT;
	struct dp_common c;
	int st;
	char rec[1024], t1[DP_TIME_BUFSZ], t2[DP_TIME_BUFSZ];
	int64_t now = 1800000000000LL;

	CHECK(dp_status_check(&o, &err) < 0 && strstr(dp_buf_str(&err), "--status-topic 'a b'"));
	o = (struct dp_status_opts){ .topic = "s", .instance = "x/y" };
	dp_buf_reset(&err);
	CHECK(dp_status_check(&o, &err) < 0 && strstr(dp_buf_str(&err), "no '/'"));
	o = (struct dp_status_opts){ .instance = "x" };
	unsetenv("DP_STATUS_TOPIC");
	dp_buf_reset(&err);
	CHECK(dp_status_check(&o, &err) < 0 && strstr(dp_buf_str(&err), "needs --status-topic"));
	setenv("DP_STATUS_TOPIC", "from.env", 1);
	o = (struct dp_status_opts){ 0 };
	CHECK(dp_status_check(&o, &err) == 0 && dp_status_wanted(&o) &&
	      !strcmp(o.topic, "from.env"));
	unsetenv("DP_STATUS_TOPIC");

	dp_cli_init(&c);
	struct dp_top_opts to = { .topic = "s", .forget_after_ms = 3600000 };
	struct dp_top *t = dp_top_new(&c.kafka, &to, &err, &st);
	CHECK(t != NULL);
	static const struct { const char *key, *cmd, *state; int64_t age; const char *fin; } v[] = {
		{ "dp-sink-pg/db1:1", "dp-sink-pg", "writing_to_db", 1000, "false,\"exit\":null" },
		{ "dp-publish/p:2", "dp-publish", "publishingFixed", 2000, "false,\"exit\":null" },
		{ "dp-tail/t:3", "dp-tail", "done", 5000, "true,\"exit\":0" },
		{ "dp-tail/t:4", "dp-tail", "consuming", 60000, "false,\"exit\":null" },
		{ "dp-coord/old:5", "dp-coord", "done", 7200000, "true,\"exit\":0" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snprintf(rec, sizeof(rec), "{\"command\":\"%s\",\"instance\":\"%s\","
		         "\"time\":\"%s\",\"interval_ms\":5000,\"machines\":[{\"machine\":\"%s\","
		         "\"state\":\"%s\",\"since\":\"%s\"}],\"in_per_s\":12.5,\"lag_records\":7,"
		         "\"ready\":true,\"reason\":null,\"final\":%s,\"extra\":[1]}", v[i].cmd,
		         strchr(v[i].key, '/') + 1, dp_time_format(now - v[i].age, t1), v[i].cmd,
		         v[i].state, dp_time_format(now - v[i].age - 65000, t2), v[i].fin);
		CHECK(dp_top_record(t, v[i].key, strlen(v[i].key), rec, strlen(rec), "test") == 0);
	}
	CHECK(dp_top_record(t, "x/y", 3, "not json", 8, "test") == 0);      /* skipped */
	CHECK(dp_top_record(t, "x/y", 3, NULL, 0, "test") == 0);            /* a tombstone */
	struct dp_top_counts n = dp_top_snapshot(t, now);
	CHECK(n.running == 2 && n.stopped == 1 && n.gone == 1);             /* old:5 forgotten */
	CHECK(dp_top_json(t, &out) == 0);
	printf("%s", dp_buf_str(&out));
	const char *j = dp_buf_str(&out);
	CHECK(strstr(j, "\"running\":2,\"stopped\":1,\"gone\":1,"));
	CHECK(strstr(j, "{\"key\":\"dp-publish/p:2\",\"actor\":\"producer\","
	                "\"status\":\"running\",\"age_ms\":2000,\"command\":\"dp-publish\""));
	CHECK(strstr(j, "\"key\":\"dp-tail/t:4\",\"actor\":\"consumer_dynamic\","
	                "\"status\":\"gone\""));
	CHECK(strstr(j, "\"extra\":[1]"));
	/* producer before consumer_fixed before consumer_dynamic */
	CHECK(strstr(j, "dp-publish/p:2") < strstr(j, "dp-sink-pg/db1:1") &&
	      strstr(j, "dp-sink-pg/db1:1") < strstr(j, "dp-tail/t:3"));
	CHECK(!strstr(j, "old:5"));
	dp_buf_reset(&out);
	CHECK(dp_top_table(t, &out, 0) == 0);
	printf("%s", dp_buf_str(&out));
	j = dp_buf_str(&out);
	CHECK(strstr(j, "Producer") && strstr(j, "Consumer for fixed topics") &&
	      strstr(j, "stopped (exit 0)") && strstr(j, "last seen 1m00s ago") &&
	      strstr(j, "1m07s") && strstr(j, "12.5") && strstr(j, "yes"));
	dp_buf_reset(&out);
	CHECK(dp_top_table(t, &out, 20) == 0);
	for (const char *l = dp_buf_str(&out); *l; l = strchr(l, '\n') + 1)
		CHECK(strcspn(l, "\n") <= 20);
	struct dp_fsm self;
	static const char *const states[] = { "idle", "showing" };
	static const char *const events[] = { "start" };
	static const struct dp_fsm_row rows[] = { { 0, 0, 1, NULL } };
	static const struct dp_fsm_final finals[] = { { 1, 0 } };
	static const struct dp_fsm_def def = { "dp-top", states, 2, events, 1, rows, 1, 0,
	                                       finals, 1 };
	dp_fsm_init(&self, &def, false);
	dp_buf_reset(&out);
	CHECK(dp_top_dot(t, &self, &out) == 0);
	j = dp_buf_str(&out);
	CHECK(!strncmp(j, "digraph \"dp-top\" {\n", 18));
	/* states docs/system.links names, so they stay */
	CHECK(strstr(j, "\"dp-sink-pg:writing_to_db\" [label=\"writing_to_db\", style=\"rounded,"
	                "filled,bold\", penwidth=2.5, color=darkgreen, fillcolor=palegreen, "
	                "label=\"writing_to_db\\ndb1:1\"];"));
	CHECK(strstr(j, "label=\"publishingFixed\\np:2\"];"));
	CHECK(strstr(j, "\n\t\"idle\" -> \"showing\" [label=\"start\"];\n"));
	CHECK(strstr(j, "2 running, 1 stopped, 1 gone"));
	CHECK(!strstr(j, "\"dp-tail:consuming\" [label=\"consuming\", style"));     /* gone */
	dp_top_free(t);
	dp_buf_free(&out);
	dp_buf_free(&err);
	dp_cli_free(&c);
	printf("top_view: ok\n");
	return 0;
}

/*
 * obs/obs.h end to end in one process: the endpoint's pages over a real
 * socket, readiness from links, the machines' watcher, a partition's
 * metrics, the file written every interval and at the end, systemd's
 * notify socket (a datagram socket of the test's, as systemd's), and
 * the addresses that cannot be used.  $DP_OBS_FILE, when set, is where
 * the metrics file goes (tests/lib.bats runs promtool over it).
 */
static char obs_body[65536];

/* GET (or method) path on addr ("127.0.0.1:PORT"): the HTTP status, the body in obs_body; -1: no answer. */
static int
obs_http(const char *addr, const char *method, const char *path)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	const char *colon = strrchr(addr, ':');
	char req[256], resp[sizeof(obs_body) + 1024];
	size_t got = 0;
	ssize_t n;
	int fd, status = -1;

	obs_body[0] = '\0';
	sa.sin_port = htons((uint16_t)strtol(colon + 1, NULL, 10));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: test\r\n\r\n", method, path);
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return -1;
	}
	while (got < sizeof(resp) - 1 && (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	const char *body = strstr(resp, "\r\n\r\n");
	if (body)
		snprintf(obs_body, sizeof(obs_body), "%s", body + 4);
	return status;
}

/* The notify messages received within ms, appended to all (each followed by "|"). */
static void
obs_notified(int fd, int ms, char *all, size_t n)
{
	int64_t end = dp_time_mono_ms() + ms;

	while (dp_time_mono_ms() < end) {
		char msg[1024];
		struct timeval tv = { 0, 50 * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ssize_t r = recv(fd, msg, sizeof(msg) - 1, 0);
		if (r <= 0)
			continue;
		msg[r] = '\0';
		size_t len = strlen(all);
		snprintf(all + len, n - len, "%s|", msg);
	}
}

enum { OBS_S_IDLE, OBS_S_WORKING, OBS_S_DONE, OBS_NSTATES };
enum { OBS_E_START, OBS_E_END, OBS_NEVENTS };

static int
obs_act(struct dp_fsm *m, void *ctx)
{
	return DP_FSM_NONE;
}

static int
t_obs(void)
{
	static const char *const good[] = { "127.0.0.1:9464", ":9464", "[::1]:0", "localhost:65535" };
	static const char *const bad[] = { "9464", "host:", "host:70000", "::1:9464", "[::1]9464",
	                                   ":", "h:x", ":-1", ":+80" };
	static const char *const state_names[] = { "idle", "working", "done" };
	static const char *const event_names[] = { "start", "end" };
	static const struct dp_fsm_row rows[] = {
		{ OBS_S_IDLE, OBS_E_START, OBS_S_WORKING, obs_act },
		{ OBS_S_WORKING, OBS_E_END, OBS_S_DONE, NULL },
	};
	static const struct dp_fsm_final finals[] = { { OBS_S_DONE, 0 } };
	static const struct dp_fsm_def def = { "dp-test", state_names, OBS_NSTATES, event_names,
	                                       OBS_NEVENTS, rows, 2, OBS_S_IDLE, finals, 1 };
	char dir[] = "/tmp/dp-obs-XXXXXX", file[256], sock[64], addr[64], why[256];
	static char notes[16384];
	struct dp_buf err = DP_BUF_INIT;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct dp_fsm m;
	int fd, st;

	for (size_t i = 0; i < DP_FSM_COUNT(good); i++)
		CHECK(dp_endpoint_check(good[i], &err) == 0);
	for (size_t i = 0; i < DP_FSM_COUNT(bad); i++) {
		dp_buf_reset(&err);
		CHECK(dp_endpoint_check(bad[i], &err) < 0 && err.len > 0);
		printf("%s: %s\n", bad[i], dp_buf_str(&err));
	}
	CHECK(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s", getenv("DP_OBS_FILE") ? getenv("DP_OBS_FILE") : "");
	if (!file[0])
		snprintf(file, sizeof(file), "%s/dp.prom", dir);
	snprintf(sock, sizeof(sock), "%s/notify", dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	CHECK((fd = socket(AF_UNIX, SOCK_DGRAM, 0)) >= 0);
	CHECK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	setenv("NOTIFY_SOCKET", sock, 1);
	setenv("WATCHDOG_USEC", "200000", 1);
	unsetenv("WATCHDOG_PID");

	struct dp_obs_opts o = { .listen = "127.0.0.1:0", .file = file, .interval_ms = 100 };
	CHECK(dp_obs_validate(&o) == 0);
	CHECK(dp_obs_start(&o, "dp-test", "kafka") == 0 && dp_obs_on());
	snprintf(addr, sizeof(addr), "%s", dp_obs_address());
	printf("listening on %s\n", addr);
	CHECK(strncmp(addr, "127.0.0.1:", 10) == 0 && strcmp(addr, "127.0.0.1:0") != 0);

	/* Not connected yet: not ready, and systemd hears why, and nothing else. */
	CHECK(obs_http(addr, "GET", "/readyz") == 503 && !strcmp(obs_body, "not connected to kafka yet\n"));
	CHECK(obs_http(addr, "GET", "/healthz") == 200 && !strcmp(obs_body, "ok\n"));
	obs_notified(fd, 700, notes, sizeof(notes));
	printf("notify before: %s\n", notes);
	CHECK(strstr(notes, "STATUS=starting; not ready: not connected to kafka yet|"));
	CHECK(!strstr(notes, "READY=1") && !strstr(notes, "WATCHDOG=1"));

	/* A machine steps; the link comes up; a partition is read. */
	dp_fsm_init(&m, &def, false);
	CHECK(dp_fsm_step(&m, OBS_E_START, NULL) == DP_FSM_NONE);
	dp_health_link("kafka", true);
	struct dp_obs_part *p = dp_obs_part_new("prices", 3);
	CHECK(p);
	dp_obs_part_read(p, 5, dp_time_now_ms() - 2500);
	dp_obs_part_read(p, 2, dp_time_now_ms() - 3000);   /* older: the newest stays */
	dp_obs_part_lag(p, 7);
	dp_obs_count(DP_OBS_RETRIES, (const char *const[]){ "cause", NULL },
	             (const char *const[]){ "deadlock" }, 1);
	dp_obs_count(DP_OBS_RETRIES, (const char *const[]){ "cause", NULL },
	             (const char *const[]){ "deadlock" }, 2);
	CHECK(obs_http(addr, "GET", "/readyz") == 200 && !strcmp(obs_body, "ready\n"));
	CHECK(obs_http(addr, "GET", "/metrics") == 200);
	printf("%s", obs_body);
	CHECK(strstr(obs_body, "dp_records_in_total{command=\"dp-test\",topic=\"prices\","
	                       "partition=\"3\"} 7\n"));
	CHECK(strstr(obs_body, "dp_consumer_lag_records{command=\"dp-test\",topic=\"prices\","
	                       "partition=\"3\"} 7\n"));
	const char *lag_s = strstr(obs_body, "dp_consumer_lag_seconds{command=\"dp-test\","
	                                     "topic=\"prices\",partition=\"3\"} ");
	CHECK(lag_s && strtod(strchr(lag_s, '}') + 2, NULL) >= 2.5);
	CHECK(strstr(obs_body, "dp_state{command=\"dp-test\",machine=\"dp-test\",state=\"idle\"} 0\n"));
	CHECK(strstr(obs_body, "dp_state{command=\"dp-test\",machine=\"dp-test\",state=\"working\"} 1\n"));
	CHECK(strstr(obs_body, "dp_state_transitions_total{command=\"dp-test\",machine=\"dp-test\","
	                       "from=\"idle\",event=\"start\",to=\"working\"} 1\n"));
	CHECK(strstr(obs_body, "dp_retries_total{command=\"dp-test\",cause=\"deadlock\"} 3\n"));
	CHECK(strstr(obs_body, "dp_build_info{command=\"dp-test\",version=\"" DP_VERSION "\"} 1\n"));
	CHECK(strstr(obs_body, "dp_ready{command=\"dp-test\"} 1\n"));
	CHECK(strstr(obs_body, "# TYPE dp_records_in_total counter\n"));
	CHECK(obs_http(addr, "HEAD", "/metrics") == 200 && obs_body[0] == '\0');
	CHECK(obs_http(addr, "GET", "/nothing") == 404 && strstr(obs_body, "/metrics /healthz /readyz"));
	CHECK(obs_http(addr, "POST", "/metrics") == 405);

	/* Ready now: READY=1 once, WATCHDOG=1 every half interval, the state in STATUS=. */
	notes[0] = '\0';
	obs_notified(fd, 700, notes, sizeof(notes));
	printf("notify ready: %s\n", notes);
	/* WATCHDOG=1 may come in the same datagram or in the next one. */
	const char *rd = strstr(notes, "READY=1\nSTATUS=working; ready");
	CHECK(rd && (rd[strlen("READY=1\nSTATUS=working; ready")] == '\n' ||
	             rd[strlen("READY=1\nSTATUS=working; ready")] == '|'));
	CHECK(strstr(strstr(notes, "READY=1") + 1, "READY=1") == NULL);
	char *dog = strstr(notes, "WATCHDOG=1");
	CHECK(dog && strstr(dog + 1, "WATCHDOG=1"));

	/* The watchdog stops while not ready (the data stopped): systemd restarts us. */
	dp_health_link("kafka", false);
	obs_notified(fd, 200, notes, sizeof(notes));    /* what was on the way */
	notes[0] = '\0';
	obs_notified(fd, 600, notes, sizeof(notes));
	printf("notify not ready: %s\n", notes);
	CHECK(!strstr(notes, "WATCHDOG=1") && !strstr(notes, "READY=1"));
	dp_health_link("kafka", true);

	/* The file, every interval: the partition's count in it. */
	int64_t end = dp_time_mono_ms() + 3000;
	char text[65536];
	int tfd;
	ssize_t n = 0;
	while (dp_time_mono_ms() < end) {
		if ((tfd = open(file, O_RDONLY)) >= 0) {
			n = read(tfd, text, sizeof(text) - 1);
			close(tfd);
			text[n > 0 ? n : 0] = '\0';
			if (strstr(text, "dp_records_in_total{"))
				break;
		}
		usleep(20 * 1000);
	}
	CHECK(strstr(text, "dp_records_in_total{command=\"dp-test\",topic=\"prices\",partition=\"3\"} 7"));
	CHECK(!strstr(text, "dp_exit_status"));

	/* A revoke: the partition's gauges leave, its count stays. */
	dp_obs_part_assigned(p, false);
	CHECK(obs_http(addr, "GET", "/metrics") == 200);
	CHECK(!strstr(obs_body, "dp_consumer_lag_records{") && !strstr(obs_body, "dp_consumer_lag_seconds{"));
	CHECK(strstr(obs_body, "dp_records_in_total{command=\"dp-test\",topic=\"prices\",partition=\"3\"} 7"));
	dp_obs_part_assigned(p, true);
	dp_obs_part_lag(p, 0);
	CHECK(obs_http(addr, "GET", "/metrics") == 200);
	CHECK(strstr(obs_body, "dp_consumer_lag_seconds{command=\"dp-test\",topic=\"prices\",partition=\"3\"} 0\n"));

	/* The end: the machine's final state, the file with the exit status, STOPPING=1. */
	CHECK(dp_fsm_step(&m, OBS_E_END, NULL) == DP_FSM_NONE);
	CHECK(dp_health_live(why, sizeof(why)));
	notes[0] = '\0';
	dp_obs_exit(0);
	dp_obs_end();
	CHECK(!dp_obs_on() && obs_http(addr, "GET", "/metrics") == -1);
	obs_notified(fd, 200, notes, sizeof(notes));
	printf("notify end: %s\n", notes);
	CHECK(strstr(notes, "STOPPING=1\nSTATUS=done; stopping (exit status 0)|"));
	CHECK((tfd = open(file, O_RDONLY)) >= 0);
	n = read(tfd, text, sizeof(text) - 1);
	close(tfd);
	text[n > 0 ? n : 0] = '\0';
	CHECK(strstr(text, "dp_exit_status{command=\"dp-test\"} 0\n"));
	CHECK(strstr(text, "dp_state{command=\"dp-test\",machine=\"dp-test\",state=\"done\"} 1\n"));
	dp_obs_end();   /* again: nothing */

	/* Addresses that cannot be used, and a file that cannot be written. */
	unsetenv("NOTIFY_SOCKET");
	struct dp_endpoint *taken = dp_endpoint_start("127.0.0.1:0", NULL, 0, &err, &st);
	CHECK(taken);
	struct dp_obs_opts o2 = { .listen = dp_endpoint_address(taken) };
	CHECK(dp_obs_start(&o2, "dp-test", NULL) == DP_EX_UNAVAILABLE && !dp_obs_on());
	dp_endpoint_stop(taken);
	struct dp_obs_opts o3 = { .listen = "192.0.2.1:0" };   /* TEST-NET-1: not ours */
	CHECK(dp_obs_start(&o3, "dp-test", NULL) == DP_EX_CONFIG && !dp_obs_on());
	struct dp_obs_opts o4 = { .listen = "no-such-host.invalid:1" };
	CHECK(dp_obs_start(&o4, "dp-test", NULL) == DP_EX_CONFIG && !dp_obs_on());
	char nodir[300];
	snprintf(nodir, sizeof(nodir), "%s/missing/dp.prom", dir);
	struct dp_obs_opts o5 = { .file = nodir };
	CHECK(dp_obs_start(&o5, "dp-test", NULL) == DP_EX_IOERR && !dp_obs_on());
	struct dp_obs_opts o6 = { .interval_ms = 1000 };
	CHECK(dp_obs_validate(&o6) < 0);
	struct dp_obs_opts o7 = { 0 };
	CHECK(dp_obs_start(&o7, "dp-test", NULL) == 0 && !dp_obs_on());    /* nothing asked */

	close(fd);
	unlink(sock);
	if (!getenv("DP_OBS_FILE"))
		unlink(file);
	rmdir(dir);
	dp_buf_free(&err);
	printf("obs: ok\n");
	return 0;
}

/* An option whose argument may be left out: --wait, --wait=5s, never "--wait 5s". */
static int
opt_wait(void *ctx, const struct dp_opt *o, char *arg)
{
	struct opt_ctx *c = ctx;

	c->flag = true;
	c->called = arg;
	return 0;
}

static int
t_opt_optional(void)
{
	static const struct dp_opt opts[] = {
		{ DP_ARG_CALL, 0, "wait", "TIMEOUT", "wait for it", .fn = opt_wait,
		  .flags = DP_OPT_OPTIONAL_ARG },
		{ DP_ARG_CALL, 'w', "when", "WHEN", NULL, .fn = opt_wait,
		  .flags = DP_OPT_OPTIONAL_ARG },
		DP_OPT_END,
	};
	const struct dp_opt *const tabs[] = { opts, dp_opt_base, NULL };
	struct opt_ctx c;
	int first;

	dp_log_init("test_lib");
#define PARSE(...) ( \
	memset(&c, 0, sizeof(c)), dp_cli_init(&c.common), \
	dp_opt_parse(tabs, &c, &c.common, &c.common.seen, \
	             (int)(sizeof((char *[]){ "x", __VA_ARGS__ }) / sizeof(char *)), \
	             (char *[]){ "x", __VA_ARGS__, NULL }, &first))
	CHECK(PARSE("--wait", "op") == 0 && c.flag && c.called == NULL && first == 2);
	dp_cli_free(&c.common);
	CHECK(PARSE("--wait=5s", "op") == 0 && c.flag && !strcmp(c.called, "5s") && first == 2);
	dp_cli_free(&c.common);
	CHECK(PARSE("-w2", "op") == 0 && !strcmp(c.called, "2") && first == 2);
	dp_cli_free(&c.common);
	CHECK(PARSE("-w", "op") == 0 && c.called == NULL && first == 2);
	dp_cli_free(&c.common);
#undef PARSE
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);
	CHECK(fp);
	dp_opt_help(fp, (const struct dp_opt *const[]){ opts, NULL });
	fclose(fp);
	static const char want[] =
		"      --wait[=TIMEOUT]    wait for it\n"
		"  -w, --when[=WHEN]\n";
	if (strcmp(text, want) != 0) {
		printf("help:\n%s---\nwanted:\n%s---\n", text, want);
		free(text);
		return 1;
	}
	free(text);
	printf("opt_optional: ok\n");
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(void); } cases[] = {
		{ "lines_basic", t_lines_basic }, { "lines_long", t_lines_long },
		{ "lines_bad", t_lines_bad }, { "lines_swap", t_lines_swap },
		{ "lines_unread", t_lines_unread }, { "json", t_json }, { "expr", t_expr },
		{ "parse", t_parse }, { "base64", t_base64 }, { "jqfast", t_jqfast },
		{ "route", t_route },
		{ "times", t_times }, { "backoff", t_backoff }, { "file", t_file },
		{ "intervals", t_intervals }, { "jsonw", t_jsonw }, { "ccstream", t_ccstream },
		{ "wsurl", t_wsurl },
		{ "ccerrors", t_ccerrors }, { "ccseries", t_ccseries }, { "secret", t_secret },
		{ "lines_cap", t_lines_cap }, { "envelope_ts", t_envelope_ts },
		{ "envelope", t_envelope }, { "spec", t_spec }, { "lines_split", t_lines_split },
		{ "expr_limit", t_expr_limit },
		{ "pgbin", t_pgbin }, { "pg_scrub", t_pg_scrub }, { "sqlstate", t_sqlstate }, { "sink_parse", t_sink_parse },
		{ "pgsink_sources", t_pgsink_sources }, { "pgsink_release", t_pgsink_release },
		{ "coord", t_coord }, { "opt", t_opt }, { "metrics", t_metrics }, { "health", t_health }, { "topics", t_topics },
		{ "jqfast_order", t_jqfast_order }, { "jqfast_deep", t_jqfast_deep },
		{ "json_keys", t_json_keys }, { "json_runs", t_json_runs }, { "top_view", t_top_view },
		{ "obs", t_obs },
		{ "opt_optional", t_opt_optional },
	};

	dp_log_init("test_lib");
	if (argc >= 3 && !strcmp(argv[1], "producer"))
		return t_producer(argc, argv);
	if (argc == 4 && !strcmp(argv[1], "consumer_sink"))
		return t_consumer_sink(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "fresh"))
		return t_fresh((int)strtol(argv[2], NULL, 10));
	if (argc == 5 && !strcmp(argv[1], "status"))
		return t_status(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "consumer_registry"))
		return t_consumer_registry(argv[2]);
	for (size_t i = 0; argc == 2 && i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(argv[1], cases[i].name))
			return cases[i].fn();
	fprintf(stderr, "usage: test_lib CASE [ARG...]\n");
	return 2;
}
