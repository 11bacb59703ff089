/*
 * test_lib -- unit checks for lib/ that are hard to reach through a
 * command (a 16 MiB line would exceed a broker's message size).
 *
 * usage: test_lib CASE    (tests/lib.bats runs each case)
 * Prints what it observed; exits 0 when the case holds, 1 otherwise.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base64.h"
#include "buf.h"
#include "cli.h"
#include "envelope.h"
#include "exit.h"
#include "expr.h"
#include "json.h"
#include "lines.h"
#include "kafka.h"
#include "log.h"
#include "onerror.h"
#include "producer.h"
#include "sig.h"
#include "timefmt.h"

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

static int
t_parse(void)
{
	int64_t ms;
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
	/* libjq takes an int length: a longer text is refused, not cut. */
	dp_buf_reset(&err);
	CHECK(dp_envelope_parse("{}", (size_t)INT_MAX + 1, &env, &err) < 0);
	printf("2 GiB envelope -> refused: %s\n", dp_buf_str(&err));
	dp_envelope_clear(&env);
	dp_buf_free(&line);
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
		c.brokers = argv[3];
	struct dp_producer_conf conf = { .common = &c };
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
		CHECK(dp_on_error_record(&pol, p, "row 7", "duplicate key", "raw", 3, dh, 1, 7) == 0);
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

int
main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(void); } cases[] = {
		{ "lines_basic", t_lines_basic }, { "lines_long", t_lines_long },
		{ "lines_bad", t_lines_bad }, { "lines_swap", t_lines_swap }, { "json", t_json }, { "expr", t_expr },
		{ "parse", t_parse }, { "base64", t_base64 },
		{ "lines_cap", t_lines_cap }, { "envelope_ts", t_envelope_ts },
		{ "expr_limit", t_expr_limit },
	};

	dp_log_init("test_lib");
	if (argc >= 3 && !strcmp(argv[1], "producer"))
		return t_producer(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], "producer"))
		return t_producer(argc, argv);
	for (size_t i = 0; argc == 2 && i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(argv[1], cases[i].name))
			return cases[i].fn();
	fprintf(stderr, "usage: test_lib CASE\n");
	return 2;
}
