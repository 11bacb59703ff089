/*
 * dp-publish -- NDJSON on stdin to Kafka records.
 *
 * Every input line becomes one record.  Keys, topics, headers and
 * timestamps come from jq expressions evaluated on the line; --envelope
 * reads the lossless form that dp-tail --envelope prints.  The command
 * exits 0 only when every record was acknowledged by the cluster.
 *
 * Two threads: a reader turns lines into batches of prepared records
 * (reading, validating and jq run there), and the main thread hands them
 * to the producer engine (lib/producer.h), which alone talks to Kafka,
 * and serves delivery reports.  On two cores this overlaps the JSON work
 * with the producer's, which is what lets dp-publish keep up with kcat
 * while it still checks every line.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "cmd.h"
#include "envelope.h"
#include "exit.h"
#include "expr.h"
#include "fsm.h"
#include "json.h"
#include "jsonw.h"
#include "kafka.h"
#include "lines.h"
#include "log.h"
#include "out.h"
#include "producer.h"
#include "progress.h"
#include "sig.h"
#include "timefmt.h"

enum on_error { ON_ERROR_FAIL, ON_ERROR_SKIP, ON_ERROR_DLQ };

/* Lines travel from the reader thread in batches of this size. */
#define BATCH_RECS 1024
#define BATCH_BYTES (1024 * 1024)
#define NBATCH 4

struct batch;

struct header_spec {
	char *name;
	struct dp_expr *expr;
};

struct pub {
	/* options */
	struct dp_common common;
	const char *topic;
	struct dp_expr *topic_expr;
	struct dp_expr *key_expr;
	struct dp_expr *ts_expr;
	struct header_spec *hdrs;
	size_t nhdrs;
	int32_t partition;
	bool envelope;
	bool raw;
	bool report;
	bool progress;
	enum on_error on_error;
	const char *dlq_topic;
	uint64_t max_line;              /* --max-line-bytes */

	/* resources */
	struct dp_producer *prod;
	struct dp_lines *in;
	char **known;                   /* topics proven to exist (reader thread) */
	size_t nknown;

	/* the reader thread and the batches it fills */
	pthread_t reader;
	bool reader_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* on the monotonic clock */
	bool sync_ok;
	struct batch *batches[NBATCH];
	struct batch *free[NBATCH];     /* LIFO of empty batches */
	size_t nfree;
	struct batch *full[NBATCH];     /* FIFO of filled batches */
	size_t full_head, nfull;
	atomic_int halt;                /* main thread to reader: stop */
	atomic_int waiting;             /* reader to main thread: input is quiet */

	/* per-line scratch of the reader thread, reused */
	struct dp_buf key, tmp, err, topicbuf;
	/* the main thread's */
	struct dp_buf ack, perr;

	/* counters */
	atomic_ullong lines;            /* written by the reader thread */
	uint64_t failed;                /* delivery reports with an error */
	uint64_t bad;
	int status;                     /* why the input ended early, 0 if it did not */
	struct dp_progress prog;
	struct dp_fsm fsm;
};

/* ---- state machine ---------------------------------------------------- */

enum state { S_IDLE, S_CONNECTING, S_PUBLISHING, S_DRAINING, S_DONE, S_FAILED, NSTATES };
enum event { E_START, E_CONNECTED, E_UNREACHABLE, E_REFUSED, E_BAD_CONFIG, E_STOP, E_EOF,
             E_BAD_LINE, E_FATAL, E_DRAINED, E_LOST, E_ABORTED, NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "connecting", "publishing", "draining", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "connected", "unreachable", "refused", "bad_config", "signal", "eof",
	"bad_line", "fatal", "drained", "lost", "aborted",
};

static int act_connect(struct dp_fsm *m, void *ctx);
static int act_publish(struct dp_fsm *m, void *ctx);
static int act_drain(struct dp_fsm *m, void *ctx);

/*
 * done exits 0: every record read was delivered (after a signal too).
 * failed exits with the reason the action recorded: 65 a bad line under
 * --on-error fail, 69 no broker or no topic, 75 records not delivered,
 * 64/66/78 a bad -p, -F or -X, 74 stdin or stdout failed.
 */
static const struct dp_fsm_row rows[] = {
	/* state          event          next           action */
	{ S_IDLE,       E_START,       S_CONNECTING, act_connect },
	{ S_CONNECTING, E_CONNECTED,   S_PUBLISHING, act_publish },
	{ S_CONNECTING, E_UNREACHABLE, S_FAILED,     NULL },
	{ S_CONNECTING, E_REFUSED,     S_FAILED,     NULL },
	{ S_CONNECTING, E_BAD_CONFIG,  S_FAILED,     NULL },
	{ S_CONNECTING, E_STOP,        S_DONE,       NULL },
	{ S_PUBLISHING, E_EOF,         S_DRAINING,   act_drain },
	{ S_PUBLISHING, E_STOP,        S_DRAINING,   act_drain },
	{ S_PUBLISHING, E_BAD_LINE,    S_DRAINING,   act_drain },
	{ S_PUBLISHING, E_FATAL,       S_DRAINING,   act_drain },
	{ S_DRAINING,   E_DRAINED,     S_DONE,       NULL },
	{ S_DRAINING,   E_LOST,        S_FAILED,     NULL },
	{ S_DRAINING,   E_ABORTED,     S_FAILED,     NULL },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-publish", state_names, NSTATES, event_names, NEVENTS,
	rows, DP_FSM_COUNT(rows), S_IDLE, finals, DP_FSM_COUNT(finals),
};

/* ---- options ---------------------------------------------------------- */

enum {
	OPT_TOPIC_EXPR = DP_OPT_CMD, OPT_TIMESTAMP, OPT_ENVELOPE, OPT_ON_ERROR,
	OPT_REPORT, OPT_RAW, OPT_PROGRESS, OPT_MAX_LINE,
};

static const struct option longopts[] = {
	{ "topic",          required_argument, NULL, 't' },
	{ "topic-expr",     required_argument, NULL, OPT_TOPIC_EXPR },
	{ "key",            required_argument, NULL, 'k' },
	{ "partition",      required_argument, NULL, 'p' },
	{ "header",         required_argument, NULL, 'H' },
	{ "timestamp",      required_argument, NULL, OPT_TIMESTAMP },
	{ "envelope",       no_argument,       NULL, OPT_ENVELOPE },
	{ "on-error",       required_argument, NULL, OPT_ON_ERROR },
	{ "max-line-bytes", required_argument, NULL, OPT_MAX_LINE },
	{ "report",         no_argument,       NULL, OPT_REPORT },
	{ "raw",            no_argument,       NULL, OPT_RAW },
	{ "progress",       no_argument,       NULL, OPT_PROGRESS },
	DP_CLI_KAFKA_LONG,
	DP_CLI_BASE_LONG,
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-publish (-t TOPIC | --topic-expr JQ) [options] < records.ndjson\n"
	      "\n"
	      "Read NDJSON on stdin and produce each line as one Kafka record.\n"
	      "\n"
	      "Routing:\n"
	      "  -t, --topic TOPIC       send every record to TOPIC\n"
	      "      --topic-expr JQ     pick each record's topic, e.g. '\"prices.\" + .fsym'\n"
	      "  -k, --key JQ            record key, e.g. .fsym (strings are sent raw)\n"
	      "  -p, --partition N       send to partition N (default: by key hash)\n"
	      "  -H, --header NAME=JQ    add a header; repeatable, order kept\n"
	      "      --timestamp JQ      record time: RFC 3339, epoch seconds or milliseconds\n"
	      "\n"
	      "Input:\n"
	      "      --envelope          read dp-tail --envelope lines (lossless copy)\n"
	      "      --raw               send lines as opaque bytes, no JSON check\n"
	      "      --on-error MODE     bad lines: fail (default), skip, dlq=TOPIC\n"
	      "      --max-line-bytes N  a longer line is a bad line (default "
	      DP_LINES_MAX_DEFAULT_ARG "; K, M, G)\n"
	      "\n"
	      "Delivery:\n"
	      "      --report            print one NDJSON acknowledgement per record on stdout\n"
	      "      --progress          print rate and totals on stderr every second\n", fp);
	dp_cli_help_common(fp, true);
	fputs("\nDefaults that -X overrides: enable.idempotence=true acks=all linger.ms=100\n"
	      "allow.auto.create.topics=false; a pause in the input sends what waits.\n", fp);
	fputs("\nExit status: 0 all delivered (also after SIGINT/SIGTERM), 64 usage,\n"
	      "65 bad line (--on-error fail), 66 -F unreadable, 69 cluster or topic\n"
	      "unavailable, 74 I/O error, 75 records not delivered, 78 bad configuration.\n"
	      "See dp-publish(1).\n", fp);
}

static int
add_header(struct pub *p, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct header_spec *h;
	struct dp_buf err = DP_BUF_INIT;

	if (!eq || eq == arg || !eq[1]) {
		dp_err("invalid --header '%s': expected NAME=JQ", arg);
		return -1;
	}
	h = realloc(p->hdrs, (p->nhdrs + 1) * sizeof(*h));
	if (!h) {
		dp_err("out of memory");
		return -1;
	}
	p->hdrs = h;
	h = &p->hdrs[p->nhdrs];
	if (!(h->name = strndup(arg, (size_t)(eq - arg)))) {
		dp_err("out of memory");
		return -1;
	}
	h->expr = dp_expr_compile(eq + 1, &err);
	if (!h->expr) {
		dp_err("invalid --header %s: %s", h->name, dp_buf_str(&err));
		free(h->name);
		dp_buf_free(&err);
		return -1;
	}
	p->nhdrs++;
	return 0;
}

static struct dp_expr *
compile(const char *opt, const char *src)
{
	struct dp_buf err = DP_BUF_INIT;
	struct dp_expr *e = dp_expr_compile(src, &err);

	if (!e)
		dp_err("invalid %s: %s", opt, dp_buf_str(&err));
	dp_buf_free(&err);
	return e;
}

static int
parse_options(void *ctx, int argc, char **argv)
{
	struct pub *p = ctx;
	const char *shortopts = "t:k:p:H:" DP_CLI_KAFKA_SHORT DP_CLI_BASE_SHORT;
	int opt;
	uint64_t n;

	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			p->topic = optarg;
			break;
		case OPT_TOPIC_EXPR:
			dp_expr_free(p->topic_expr);    /* the last one given wins */
			if (!(p->topic_expr = compile("--topic-expr", optarg)))
				return -1;
			break;
		case 'k':
			dp_expr_free(p->key_expr);
			if (!(p->key_expr = compile("--key", optarg)))
				return -1;
			break;
		case 'p':
			if (dp_parse_u64("--partition", optarg, 0, INT32_MAX, &n) < 0)
				return -1;
			p->partition = (int32_t)n;
			break;
		case 'H':
			if (add_header(p, optarg) < 0)
				return -1;
			break;
		case OPT_TIMESTAMP:
			dp_expr_free(p->ts_expr);
			if (!(p->ts_expr = compile("--timestamp", optarg)))
				return -1;
			break;
		case OPT_ENVELOPE:
			p->envelope = true;
			break;
		case OPT_RAW:
			p->raw = true;
			break;
		case OPT_REPORT:
			p->report = true;
			break;
		case OPT_PROGRESS:
			p->progress = true;
			break;
		case OPT_MAX_LINE:
			if (dp_parse_size("--max-line-bytes", optarg, 1, (uint64_t)1 << 40, "1024G",
			                  &p->max_line) < 0)
				return -1;
			break;
		case OPT_ON_ERROR:
			if (strcmp(optarg, "fail") == 0) {
				p->on_error = ON_ERROR_FAIL;
			} else if (strcmp(optarg, "skip") == 0) {
				p->on_error = ON_ERROR_SKIP;
			} else if (strncmp(optarg, "dlq=", 4) == 0 && optarg[4]) {
				p->on_error = ON_ERROR_DLQ;
				p->dlq_topic = optarg + 4;
			} else {
				dp_err("invalid --on-error '%s': expected fail, skip or dlq=TOPIC", optarg);
				return -1;
			}
			break;
		case '?':
			dp_cli_bad_option(argv);
			return -1;
		default:
			if (dp_cli_common(&p->common, opt, optarg) != 1)
				return -1;
		}
	}
	if (optind < argc) {
		dp_err("unexpected argument '%s' (records are read from stdin)", argv[optind]);
		return -1;
	}
	return 0;
}

/* All option combinations are checked here, once. */
static int
validate(void *ctx)
{
	struct pub *p = ctx;

	if (p->topic && p->topic_expr) {
		dp_err("-t and --topic-expr cannot be used together");
		return -1;
	}
	if (!p->topic && !p->topic_expr && !p->envelope) {
		dp_err("no topic: use -t TOPIC or --topic-expr JQ");
		return -1;
	}
	if (p->raw && (p->topic_expr || p->key_expr || p->ts_expr || p->nhdrs)) {
		dp_err("--raw lines are not JSON: --topic-expr, --key, --header and "
		       "--timestamp cannot be used with it");
		return -1;
	}
	if (p->raw && p->envelope) {
		dp_err("--raw and --envelope cannot be used together");
		return -1;
	}
	if (p->envelope && (p->key_expr || p->ts_expr || p->nhdrs)) {
		dp_err("--envelope carries key, headers and timestamp: --key, --header "
		       "and --timestamp cannot be used with it");
		return -1;
	}
	return 0;
}

/* ---- delivery reports (main thread) ------------------------------------ */

static void
report_line(struct pub *p, const struct dp_producer_report *r)
{
	struct dp_buf *b = &p->ack;
	struct dp_jw w;

	dp_buf_reset(b);
	dp_jw_init(&w, b);
	dp_jw_obj(&w);
	dp_jw_kuint(&w, "line", r->tag);
	dp_jw_kstr(&w, "topic", r->topic);
	if (r->err) {
		dp_jw_kstr(&w, "error", rd_kafka_err2str(r->err));
	} else {
		dp_jw_kint(&w, "partition", r->partition);
		dp_jw_kint(&w, "offset", r->offset);
	}
	dp_jw_end(&w);
	if (dp_jw_finish(&w) < 0 || dp_buf_addch(b, '\n') < 0) {
		dp_err("line %llu: cannot report: out of memory", (unsigned long long)r->tag);
		if (!p->status)
			p->status = DP_EX_SOFTWARE;
		return;
	}
	if (dp_out_write(p->common.out, b->data, b->len) < 0) {
		int st = dp_cmd_stdout_failed(errno);
		if (st && !p->status)
			p->status = st;
	}
}

static void
on_report(void *arg, const struct dp_producer_report *r)
{
	struct pub *p = arg;

	/* The first few failures are named; the total is always given. */
	if (r->err && ++p->failed <= 5)
		dp_err("line %llu: not delivered to '%s': %s", (unsigned long long)r->tag,
		       r->topic, rd_kafka_err2str(r->err));
	if (p->report)
		report_line(p, r);
}

/* ---- preparing records (the reader thread) ------------------------------ */

/*
 * Order is kept: batches travel in a FIFO, records inside a batch are in
 * line order, and the main thread stops at the first record that tells
 * it to (a bad line under --on-error fail, a fatal error).
 */
enum rec_kind { REC_RECORD, REC_BAD, REC_FATAL };

#define NONE ((size_t)-1)
#define PREP_STOP (-2)          /* prepare_*: a signal came while checking a topic */

/* A header while the batch fills: arena offsets (value NONE: null). */
struct hdr_at {
	size_t name, value, len;
};

struct rec {
	uint64_t lineno;
	enum rec_kind kind;
	int status;                 /* REC_FATAL: the exit status */
	size_t topic;               /* arena offset, or NONE for the -t topic */
	int32_t partition;
	size_t key, keylen;         /* arena offset, or NONE: no key */
	size_t val, vallen;         /* arena offset, or NONE: a tombstone */
	const char *line;           /* or the value in place, in batch->lines */
	int64_t ts;
	size_t hdr, nhdr;           /* batch->hdrs[hdr..hdr+nhdr) */
	size_t why;                 /* REC_BAD, REC_FATAL: the message */
};

struct batch {
	struct rec recs[BATCH_RECS];
	struct dp_producer_rec out[BATCH_RECS];     /* recs, as the producer takes them */
	size_t n;
	struct dp_buf arena;        /* the bytes records point at, but lines */
	struct hdr_at *hdrs;
	struct dp_producer_header *hv;      /* hdrs, resolved */
	size_t nhdrs, hdrs_cap;
	char *lines;                /* the input lines records point into */
	size_t lines_cap;
	bool in_lines;              /* records point into the reader's buffer */
	bool oom;                   /* an arena_add failed since the last check */
	int end;                    /* 0, or the event that ended the input */
	bool quiet;                 /* handed over because the writer went quiet */
};

/* Copy into the arena; on failure b->oom is set and the record is dropped
 * as fatal by prepare_line, so NONE never stands for real data. */
static size_t
arena_add(struct batch *b, const void *data, size_t n)
{
	size_t off = b->arena.len;

	if (dp_buf_add(&b->arena, data, n) < 0 || dp_buf_addch(&b->arena, '\0') < 0) {
		b->oom = true;
		return NONE;
	}
	return off;
}

static const char *
at(const struct batch *b, size_t off)
{
	return off == NONE ? "(out of memory)" : b->arena.data + off;
}

static void
add_hdr(struct batch *b, struct rec *r, const char *name, const char *value, size_t len)
{
	if (b->nhdrs == b->hdrs_cap) {
		size_t cap = b->hdrs_cap ? 2 * b->hdrs_cap : 64;
		struct hdr_at *h = realloc(b->hdrs, cap * sizeof(*h));
		struct dp_producer_header *v = h ? realloc(b->hv, cap * sizeof(*v)) : NULL;
		if (h)
			b->hdrs = h;
		if (v)
			b->hv = v;
		if (!h || !v) {
			b->oom = true;
			return;
		}
		b->hdrs_cap = cap;
	}
	if (!r->nhdr)
		r->hdr = b->nhdrs;
	struct hdr_at *h = &b->hdrs[b->nhdrs++];
	r->nhdr++;
	h->name = arena_add(b, name, strlen(name));
	h->value = value ? arena_add(b, value, len) : NONE;
	h->len = len;
}

/*
 * A record's value is the input line itself: point at it where the line
 * reader has it, and let the batch take that buffer over when it is
 * handed on (see keep_lines), instead of copying every line.
 */
static void
value_is_line(struct batch *b, struct rec *r, const char *line, size_t len)
{
	r->line = line;
	r->vallen = line ? len : 0;
	if (line)
		b->in_lines = true;
}

/* The value's bytes, or NULL for a tombstone. */
static const char *
value_of(const struct batch *b, const struct rec *r)
{
	return r->line ? r->line : r->val == NONE ? NULL : at(b, r->val);
}

/*
 * Topics named by --topic-expr or an envelope are checked once each, so
 * a typo fails at once instead of after message.timeout.ms.
 */
static int
check_topic(struct pub *p, const char *name, struct dp_buf *why)
{
	char **k;

	for (size_t i = 0; i < p->nknown; i++)
		if (strcmp(p->known[i], name) == 0)
			return 0;
	int st = dp_producer_check_topic(p->prod, name, why);
	if (st == DP_EX_NOTFOUND)
		st = DP_EX_UNAVAILABLE;         /* dp-publish(1): 69, cluster or topic */
	else if (st == DP_KAFKA_STOPPED)
		st = PREP_STOP;
	if (st)
		return st;
	k = realloc(p->known, (p->nknown + 1) * sizeof(*k));
	if (!k || !(k[p->nknown] = strdup(name))) {
		if (k)
			p->known = k;
		dp_buf_msgf(why, "out of memory");
		return DP_EX_SOFTWARE;
	}
	p->known = k;
	p->nknown++;
	return 0;
}

/* A --timestamp result (text of a number or a string) in ms, > 0. */
static int
to_timestamp(enum dp_json_type t, const char *s, int64_t *ms)
{
	if (t == DP_JSON_NUMBER && dp_time_parse_epoch(s, ms) == 0)
		return *ms > 0 ? 0 : -1;
	if (t == DP_JSON_STRING && dp_time_parse(s, ms) == 0)
		return *ms > 0 ? 0 : -1;
	return -1;
}

/*
 * Fill r from one valid JSON line.  Returns 0, -1 with the reason in
 * p->err (a bad line), PREP_STOP, or an exit status > 0 (fatal).
 */
static int
prepare_json(struct pub *p, struct batch *b, struct rec *r, const char *line,
             size_t len, const char *kv, size_t kvn)
{
	struct dp_expr_rec rec = DP_EXPR_REC(line, len);
	enum dp_json_type t;
	int rc = -1;

	if (p->topic_expr) {
		dp_buf_reset(&p->topicbuf);
		if (dp_expr_first(p->topic_expr, &rec, &t, &p->topicbuf, &p->err) < 0)
			goto out;
		if (t != DP_JSON_STRING || p->topicbuf.len == 0) {
			dp_buf_msgf(&p->err, "--topic-expr gave %s, not a topic name",
			            t == DP_JSON_INVALID ? "no result" : dp_buf_str(&p->topicbuf));
			goto out;
		}
		int st = check_topic(p, p->topicbuf.data, &p->err);
		if (st) {
			rc = st;
			goto out;
		}
		r->topic = arena_add(b, p->topicbuf.data, p->topicbuf.len);
	}
	if (p->key_expr) {
		dp_buf_reset(&p->key);
		if (kv) {
			/* Found while validating: no second pass over the line. */
			t = dp_json_type_of(kv);
			if ((t == DP_JSON_STRING ? dp_json_unquote(&p->key, kv, kvn)
			                         : dp_json_compact(&p->key, kv, kvn)) < 0) {
				dp_buf_msgf(&p->err, "out of memory");
				rc = DP_EX_SOFTWARE;
				goto out;
			}
		} else if (dp_expr_first(p->key_expr, &rec, &t, &p->key, &p->err) < 0) {
			goto out;
		}
		if (t != DP_JSON_NULL && t != DP_JSON_INVALID) {
			r->key = arena_add(b, p->key.data ? p->key.data : "", p->key.len);
			r->keylen = p->key.len;
		}
	}
	if (p->ts_expr) {
		dp_buf_reset(&p->tmp);
		if (dp_expr_first(p->ts_expr, &rec, &t, &p->tmp, &p->err) < 0)
			goto out;
		if (to_timestamp(t, dp_buf_str(&p->tmp), &r->ts) < 0) {
			dp_buf_msgf(&p->err, "--timestamp gave '%s', not RFC 3339 or epoch time "
			            "after 1970-01-01T00:00:00Z", dp_buf_str(&p->tmp));
			goto out;
		}
	}
	for (size_t i = 0; i < p->nhdrs; i++) {
		dp_buf_reset(&p->tmp);
		if (dp_expr_first(p->hdrs[i].expr, &rec, &t, &p->tmp, &p->err) < 0)
			goto out;
		if (t != DP_JSON_INVALID)       /* no result: no header */
			add_hdr(b, r, p->hdrs[i].name, t == DP_JSON_NULL ? NULL : dp_buf_str(&p->tmp),
			        t == DP_JSON_NULL ? 0 : p->tmp.len);
	}
	value_is_line(b, r, line, len);
	rc = 0;
out:
	dp_expr_rec_clear(&rec);
	return rc;
}

static int
prepare_envelope(struct pub *p, struct batch *b, struct rec *r, const char *line,
                 size_t len)
{
	struct dp_envelope env;
	const char *topic;
	int rc = -1;

	if (dp_envelope_parse(line, len, &env, &p->err) < 0)
		goto out;
	topic = p->topic ? p->topic : env.topic;
	if (p->topic_expr) {
		struct dp_expr_rec rec = DP_EXPR_REC(line, len);
		enum dp_json_type t;
		dp_buf_reset(&p->topicbuf);
		int e = dp_expr_first(p->topic_expr, &rec, &t, &p->topicbuf, &p->err);
		dp_expr_rec_clear(&rec);
		if (e < 0)
			goto out;
		if (t != DP_JSON_STRING || p->topicbuf.len == 0) {
			dp_buf_msgf(&p->err, "--topic-expr gave no topic name");
			goto out;
		}
		topic = p->topicbuf.data;
	}
	if (!topic) {
		dp_buf_msgf(&p->err, "envelope has no \"topic\" and no -t was given");
		goto out;
	}
	if (env.has_timestamp && env.timestamp == 0) {
		/* rd_kafka_msg_new0 sends 0 as "now": the copy would differ. */
		dp_buf_msgf(&p->err, "envelope timestamp 0 cannot be produced: librdkafka "
		            "sends 0 as the current time");
		goto out;
	}
	if (!p->topic || strcmp(topic, p->topic) != 0) {
		int st = check_topic(p, topic, &p->err);
		if (st) {
			rc = st;
			goto out;
		}
		r->topic = arena_add(b, topic, strlen(topic));
	}
	for (size_t i = 0; i < env.nhdrs; i++)
		add_hdr(b, r, env.hdrs[i].name, env.hdrs[i].value, env.hdrs[i].len);
	if (p->partition == RD_KAFKA_PARTITION_UA)
		r->partition = env.partition;
	if (env.key) {
		r->key = arena_add(b, env.key, env.key_len);
		r->keylen = env.key_len;
	}
	if (env.value) {
		r->val = arena_add(b, env.value, env.value_len);
		r->vallen = env.value_len;
	}
	r->ts = env.has_timestamp ? env.timestamp : 0;
	rc = 0;
out:
	dp_envelope_clear(&env);
	return rc;
}

/* Record that ends the batch (rc > 0) or marks a bad line (rc < 0). */
static void
mark(struct batch *b, struct rec *r, int rc, const char *why)
{
	r->nhdr = 0;
	r->kind = rc > 0 ? REC_FATAL : REC_BAD;
	r->status = rc > 0 ? rc : 0;
	r->why = arena_add(b, why, strlen(why));
	if (r->why == NONE) {
		r->kind = REC_FATAL;
		r->status = DP_EX_SOFTWARE;
	}
}

/*
 * Turn one line into a record in b: r (its slot) is zeroed, with its line
 * number.  Returns 0, or the event that ends input.  line is NULL for a
 * line over --max-line-bytes, with len its length.
 */
static int
prepare_line(struct pub *p, struct batch *b, struct rec *r, const char *line, size_t len,
             int got)
{
	char why[256];
	int rc = 0;

	r->topic = r->key = r->val = r->why = NONE;
	r->partition = p->partition;
	if (got == DP_LINES_LONG) {
		snprintf(why, sizeof(why), "line of %zu bytes is longer than --max-line-bytes "
		         "(%llu); it is not kept", len, (unsigned long long)p->max_line);
		mark(b, r, -1, why);
	} else if (got == DP_LINES_BAD) {
		snprintf(why, sizeof(why), "%s at byte %zu", dp_lines_error(p->in),
		         dp_lines_error_offset(p->in) + 1);
		mark(b, r, -1, why);
	} else if (p->raw) {
		value_is_line(b, r, line, len);
	} else {
		const char *jwhy, *kv = NULL;
		size_t off, kvn = 0;
		const char *member = p->key_expr && !p->envelope ? dp_expr_member(p->key_expr) : NULL;
		if (dp_json_check_member(line, len, member, &kv, &kvn, &jwhy, &off, NULL) ==
		    DP_JSON_INVALID) {
			/* Bytes that are not text are named as such, not as JSON. */
			int text = strncmp(jwhy, "invalid UTF-8", 13) && strcmp(jwhy, "NUL byte");
			snprintf(why, sizeof(why), "%s%s at byte %zu", text ? "invalid JSON: " : "",
			         jwhy, off + 1);
			mark(b, r, -1, why);
		} else {
			dp_buf_reset(&p->err);
			rc = p->envelope ? prepare_envelope(p, b, r, line, len)
			                 : prepare_json(p, b, r, line, len, kv, kvn);
			if (rc == PREP_STOP) {
				/* Its topic is not proven: the line cannot go. */
				dp_warn("line %llu: not sent: the signal came while checking "
				        "its topic", (unsigned long long)r->lineno);
				b->n--;
				return E_STOP;
			}
			if (rc)
				mark(b, r, rc, dp_buf_str(&p->err));
		}
	}
	if (r->kind == REC_BAD)         /* the raw line goes along for --on-error dlq */
		value_is_line(b, r, line, len);
	if (b->oom) {
		b->oom = false;
		mark(b, r, DP_EX_SOFTWARE, "out of memory");
	}
	if (r->kind == REC_BAD && p->on_error == ON_ERROR_FAIL)
		return E_BAD_LINE;
	return r->kind == REC_FATAL ? E_FATAL : 0;
}

/* Wait for input, but give up when the main thread or a signal says stop. */
static int
reader_idle(void *ctx)
{
	struct pub *p = ctx;

	return dp_sig_stop || atomic_load(&p->halt);
}

/* A record that ends the input with an error of the reader's own. */
static int
read_failed(struct pub *p, struct batch *b, int status, const char *why)
{
	struct rec *f = &b->recs[b->n++];

	memset(f, 0, sizeof(*f));
	f->lineno = dp_lines_lineno(p->in) + 1;
	mark(b, f, status, why);
	return E_FATAL;
}

static int
read_batch(struct pub *p, struct batch *b)
{
	const char *line;
	size_t len;

	for (;;) {
		/* Hand over a partial batch rather than sit on it while input is quiet. */
		if (b->n == BATCH_RECS || b->arena.len > BATCH_BYTES)
			return 0;
		if (b->n > 0 && !dp_lines_has_line(p->in)) {
			b->quiet = dp_lines_quiet(p->in);
			return 0;
		}
		/*
		 * On a signal, lines already taken from stdin are still sent:
		 * they are gone from the pipe, so dropping them would lose them.
		 */
		if (dp_sig_stop)
			dp_lines_stop(p->in);
		if (atomic_load(&p->halt))
			return E_STOP;
		/* About to wait for the writer: the main thread may send what it holds. */
		bool wait = b->n == 0 && !dp_lines_has_line(p->in) && dp_lines_quiet(p->in);
		if (wait) {
			pthread_mutex_lock(&p->mu);
			atomic_store(&p->waiting, 1);
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
		}
		int got = dp_lines_next(p->in, &line, &len);
		if (wait)
			atomic_store(&p->waiting, 0);
		if (got == DP_LINES_EOF && dp_sig_stop) {
			if (dp_lines_pending(p->in))
				dp_warn("line %lu: incomplete when the signal came; %zu bytes "
				        "not sent", dp_lines_lineno(p->in) + 1,
				        dp_lines_pending(p->in));
			return E_STOP;
		}
		if (got == DP_LINES_EOF)
			return E_EOF;
		if (got == DP_LINES_ERR) {
			char why[128];
			if (errno == EINTR)
				continue;
			snprintf(why, sizeof(why), "cannot read stdin: %s", strerror(errno));
			return read_failed(p, b, DP_EX_IOERR, why);
		}
		if (got == DP_LINES_NOMEM)
			return read_failed(p, b, DP_EX_SOFTWARE, "out of memory");
		p->lines++;
		if (len == 0)
			continue;
		struct rec *r = &b->recs[b->n++];
		memset(r, 0, sizeof(*r));
		r->lineno = dp_lines_lineno(p->in);
		int ev = prepare_line(p, b, r, line, len, got);
		if (ev)
			return ev;
	}
}

/* No memory for a swap: copy the values out of the reader's buffer. */
static void
pin_values(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct rec *r = &b->recs[i];
		if (r->line) {
			r->val = arena_add(b, r->line, r->vallen);
			r->line = NULL;
			if (r->val == NONE) {
				r->kind = REC_FATAL;
				r->status = DP_EX_SOFTWARE;
				r->why = arena_add(b, "out of memory", 13);
			}
		}
	}
	b->in_lines = false;
}

/*
 * read_batch stops where the reader would read again, so every line it
 * took is still in the reader's buffer.  The batch takes that buffer
 * over (and gives the reader its old one) when it used more of it than
 * is left to read; otherwise, as with short lines, where a batch ends at
 * BATCH_RECS long before the buffer does, it copies its lines out.
 * Either way no more than the smaller part is copied.
 */
static void
keep_lines(struct pub *p, struct batch *b)
{
	const char *lo = NULL, *hi = NULL;

	for (size_t i = 0; i < b->n; i++) {
		const struct rec *r = &b->recs[i];
		if (!r->line)
			continue;
		if (!lo || r->line < lo)
			lo = r->line;
		if (!hi || r->line + r->vallen + 1 > hi)
			hi = r->line + r->vallen + 1;     /* with its NUL */
	}
	size_t used = (size_t)(hi - lo);
	if (dp_lines_pending(p->in) <= used) {
		if (dp_lines_swap(p->in, &b->lines, &b->lines_cap) < 0)
			pin_values(b);
		return;
	}
	if (b->lines_cap < used) {
		char *nb = realloc(b->lines, used + 1);     /* as the reader's: +1 */
		if (!nb) {
			pin_values(b);
			return;
		}
		b->lines = nb;
		b->lines_cap = used;
	}
	memcpy(b->lines, lo, used);
	for (size_t i = 0; i < b->n; i++)
		if (b->recs[i].line)
			b->recs[i].line = b->lines + (b->recs[i].line - lo);
}

/* Point the producer's view of each record at its bytes, now that they stay put. */
static void
resolve(struct batch *b)
{
	for (size_t i = 0; i < b->nhdrs; i++) {
		const struct hdr_at *h = &b->hdrs[i];
		b->hv[i] = (struct dp_producer_header){
			at(b, h->name), h->value == NONE ? NULL : at(b, h->value), h->len,
		};
	}
	for (size_t i = 0; i < b->n; i++) {
		const struct rec *r = &b->recs[i];
		b->out[i] = (struct dp_producer_rec){
			.topic = r->topic == NONE ? NULL : at(b, r->topic),
			.partition = r->partition,
			.key = r->key == NONE ? NULL : at(b, r->key),
			.key_len = r->keylen,
			.value = value_of(b, r),
			.value_len = r->vallen,
			.hdrs = r->nhdr ? &b->hv[r->hdr] : NULL,
			.nhdrs = r->nhdr,
			.timestamp = r->ts,
			.tag = r->lineno,
		};
	}
}

static void *
reader_main(void *arg)
{
	struct pub *p = arg;
	int end = 0;

	while (!end) {
		pthread_mutex_lock(&p->mu);
		while (p->nfree == 0 && !atomic_load(&p->halt))
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->nfree == 0) {
			pthread_mutex_unlock(&p->mu);
			break;          /* the main thread stopped: nothing more is sent */
		}
		struct batch *b = p->free[--p->nfree];
		pthread_mutex_unlock(&p->mu);

		b->n = b->nhdrs = 0;
		b->quiet = b->in_lines = false;
		dp_buf_reset(&b->arena);
		end = b->end = read_batch(p, b);
		if (b->in_lines)
			keep_lines(p, b);
		resolve(b);

		pthread_mutex_lock(&p->mu);
		p->full[(p->full_head + p->nfull++) % NBATCH] = b;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

static int
start_reader(struct pub *p)
{
	for (size_t i = 0; i < NBATCH; i++) {
		p->batches[i] = calloc(1, sizeof(struct batch));
		if (!p->batches[i])
			return -1;
		p->free[p->nfree++] = p->batches[i];
	}
	dp_lines_set_idle(p->in, reader_idle, p);
	int e = pthread_create(&p->reader, NULL, reader_main, p);
	if (e) {
		errno = e;
		return -1;
	}
	p->reader_started = true;
	return 0;
}

/* ---- producing (the main thread) ---------------------------------------- */

/* Send a bad line to the dead-letter topic, with the reason in headers. */
static int
dead_letter(struct pub *p, const char *line, size_t len, uint64_t lineno, const char *why)
{
	char num[32];
	struct dp_producer_header h[3] = {
		{ "dp-error", why, strlen(why) },
		{ "dp-line", num, 0 },
		{ "dp-topic", p->topic, p->topic ? strlen(p->topic) : 0 },
	};
	struct dp_producer_rec r = {
		.topic = p->dlq_topic, .partition = DP_PRODUCER_ANY, .value = line,
		.value_len = len, .hdrs = h, .nhdrs = p->topic ? 3 : 2, .tag = lineno,
	};
	struct dp_buf err = DP_BUF_INIT;
	size_t failed;

	h[1].len = (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)lineno);
	int st = dp_producer_send(p->prod, &r, 1, &failed, &err);
	if (st)
		dp_err("line %llu: cannot send to dead-letter topic '%s': %s",
		       (unsigned long long)lineno, p->dlq_topic, dp_buf_str(&err));
	dp_buf_free(&err);
	return st;
}

/* Apply --on-error to a bad line.  Returns 0 to go on, else a status. */
static int
bad_line(struct pub *p, const char *line, size_t len, uint64_t lineno, const char *why)
{
	p->bad++;
	if (p->on_error == ON_ERROR_FAIL || p->bad <= 10 || dp_log_level() > 0)
		dp_err("line %llu: %s", (unsigned long long)lineno, why);
	switch (p->on_error) {
	case ON_ERROR_FAIL:
		return DP_EX_DATAERR;
	case ON_ERROR_SKIP:
		return 0;
	case ON_ERROR_DLQ:
		return dead_letter(p, line, len, lineno, why);
	}
	return DP_EX_SOFTWARE;
}

/* Hand a batch to the producer.  Returns 0, or the status that ends the input. */
static int
send_batch(struct pub *p, const struct batch *b)
{
	for (size_t i = 0; i < b->n;) {
		const struct rec *r = &b->recs[i];
		size_t j = i, failed;
		int st;

		if (r->kind == REC_FATAL) {
			dp_err("line %llu: %s", (unsigned long long)r->lineno, at(b, r->why));
			return r->status;
		}
		if (r->kind == REC_BAD) {
			if ((st = bad_line(p, value_of(b, r), r->vallen, r->lineno, at(b, r->why))))
				return st;
			i++;
			continue;
		}
		while (j < b->n && b->recs[j].kind == REC_RECORD)
			j++;
		dp_buf_reset(&p->perr);
		st = dp_producer_send(p->prod, &b->out[i], j - i, &failed, &p->perr);
		if (!st) {
			i = j;
			continue;
		}
		/* Said once, with its line: the record is refused for itself, or all stops. */
		r = &b->recs[i + failed];
		if (st != DP_EX_DATAERR) {
			dp_err("line %llu: %s", (unsigned long long)r->lineno, dp_buf_str(&p->perr));
			return st;
		}
		if ((st = bad_line(p, value_of(b, r), r->vallen, r->lineno, dp_buf_str(&p->perr))))
			return st;
		i += failed + 1;
	}
	return 0;
}

/* Serve delivery reports and pass acknowledgements on. */
static void
serve(struct pub *p)
{
	dp_producer_poll(p->prod, 0);
	if (dp_out_flush(p->common.out) < 0) {
		int st = dp_cmd_stdout_failed(errno);
		if (st && !p->status)
			p->status = st;
	}
	dp_progress_tick(&p->prog, "lines", p->lines, NULL, false);
}

static void
release(struct pub *p, struct batch *b)
{
	b->n = 0;
	pthread_mutex_lock(&p->mu);
	p->free[p->nfree++] = b;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* The next full batch, or NULL after 100 ms (or at once when input is quiet). */
static struct batch *
next_batch(struct pub *p, bool quiet)
{
	struct batch *b = NULL;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);    /* the clock of p->cv */
	ts.tv_nsec += 100 * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->mu);
	if (p->nfull == 0 && (quiet || atomic_load(&p->waiting)) &&
	    dp_producer_pending(p->prod) > 0) {
		/*
		 * The writer is quiet: send what waits for linger.ms now.
		 * flush returns once all is delivered, and looks for new
		 * input again after 10 ms at most.
		 */
		pthread_mutex_unlock(&p->mu);
		dp_producer_flush(p->prod, 10);
		return NULL;
	}
	if (p->nfull == 0)
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	if (p->nfull > 0) {
		b = p->full[p->full_head];
		p->full_head = (p->full_head + 1) % NBATCH;
		p->nfull--;
	}
	pthread_mutex_unlock(&p->mu);
	return b;
}

/* Produce batches until the input ends, a bad line or an error, or a stop. */
static int
run_lines(struct pub *p)
{
	int ev = 0;
	bool quiet = false;     /* the last batch ended because input paused */

	while (!ev) {
		struct batch *b = next_batch(p, quiet);
		if (!b) {
			serve(p);
			continue;
		}
		int st = send_batch(p, b);
		if (st) {
			p->status = st;
			ev = st == DP_EX_DATAERR ? E_BAD_LINE : E_FATAL;
		} else if (b->end) {
			ev = b->end;
		} else if (p->status) {
			ev = E_FATAL;           /* stdout failed under --report */
		}
		quiet = b->quiet;
		if (ev)
			atomic_store(&p->halt, 1);  /* before the batch frees up */
		release(p, b);
		dp_producer_poll(p->prod, 0);
		dp_progress_tick(&p->prog, "lines", p->lines, NULL, false);
	}
	/* Stop the reader (it may be waiting for input or for a batch). */
	atomic_store(&p->halt, 1);
	pthread_mutex_lock(&p->mu);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return ev;
}

/* ---- the machine's actions ---------------------------------------------- */

/* -> connecting: make the producer, prove the cluster and the topics are there. */
static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;
	struct dp_buf err = DP_BUF_INIT;
	const struct dp_producer_conf conf = {
		.common = &p->common,
		.topic = p->topic,
		/* Lanes pay where records pick their partition by key. */
		.lanes = (p->key_expr || p->envelope) && p->partition == DP_PRODUCER_ANY,
		.report = on_report,
		.arg = p,
	};
	int st, ev;

	if (!(p->prod = dp_producer_new(&conf, &err, &st))) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_free(&err);
		dp_fsm_fail(m, st);
		return E_BAD_CONFIG;
	}
	st = dp_producer_connect(p->prod, &p->dlq_topic, p->dlq_topic ? 1 : 0, &err);
	if (st == DP_KAFKA_STOPPED) {
		ev = E_STOP;
	} else if (st) {
		dp_err("%s", dp_buf_str(&err));
		/* A missing topic is 69 as dp-publish(1) has always said, not 81. */
		ev = st == DP_EX_UNAVAILABLE ? E_UNREACHABLE : E_REFUSED;
		dp_fsm_fail(m, st == DP_EX_NOTFOUND ? DP_EX_UNAVAILABLE : st);
	} else if (p->topic && p->partition != DP_PRODUCER_ANY &&
	           dp_producer_partitions(p->prod) > 0 &&
	           p->partition >= dp_producer_partitions(p->prod)) {
		dp_err("topic '%s' has %d partitions: no partition %d", p->topic,
		       (int)dp_producer_partitions(p->prod), (int)p->partition);
		dp_fsm_fail(m, DP_EX_USAGE);
		ev = E_REFUSED;
	} else {
		ev = E_CONNECTED;
	}
	dp_buf_free(&err);
	return ev;
}

/* -> publishing: the reader thread fills batches, this one produces them. */
static int
act_publish(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;
	int ev;

	if (start_reader(p) < 0) {
		dp_err("cannot start the reader thread: %s", strerror(errno));
		p->status = DP_EX_SOFTWARE;
		return E_FATAL;
	}
	ev = run_lines(p);
	pthread_join(p->reader, NULL);
	p->reader_started = false;
	return ev;
}

/* -> draining: wait for every outstanding delivery report. */
static int
act_drain(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;
	struct dp_producer_stats st;

	if (dp_producer_drain(p->prod, p->common.timeout_ms) != 0) {
		dp_producer_stats(p->prod, &st);
		dp_err("%llu of %llu record%s not delivered",
		       (unsigned long long)(st.produced - st.delivered),
		       (unsigned long long)st.produced, st.produced == 1 ? "" : "s");
		dp_fsm_fail(m, DP_EX_TEMPFAIL);
		return E_LOST;
	}
	if (p->status) {
		dp_fsm_fail(m, p->status);
		return E_ABORTED;
	}
	return E_DRAINED;
}

/* ---- main ----------------------------------------------------------------- */

static int
open_pub(void *ctx)
{
	struct pub *p = ctx;
	pthread_condattr_t ca;

	/* Timed waits on the monotonic clock: a clock step must not stall them. */
	if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
	    pthread_mutex_init(&p->mu, NULL) || pthread_cond_init(&p->cv, &ca)) {
		dp_err("cannot set up the reader thread's lock");
		return DP_EX_SOFTWARE;
	}
	pthread_condattr_destroy(&ca);
	p->sync_ok = true;
	dp_progress_init(&p->prog, p->progress);
	/* The JSON scanner checks UTF-8 and NUL bytes itself, in one pass. */
	if (!(p->in = dp_lines_new(STDIN_FILENO, 0))) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_lines_set_max(p->in, p->max_line);
	return 0;
}

static int
finish_pub(void *ctx, int status)
{
	struct pub *p = ctx;
	struct dp_producer_stats st = { 0 };

	if (p->prod)
		dp_producer_stats(p->prod, &st);
	if (p->progress)
		dp_progress_tick(&p->prog, "lines", p->lines, NULL, true);
	if (p->bad && p->on_error != ON_ERROR_FAIL)
		dp_warn("%llu bad line%s %s", (unsigned long long)p->bad, p->bad == 1 ? "" : "s",
		        p->on_error == ON_ERROR_SKIP ? "skipped" : "sent to the dead-letter topic");
	if (dp_sig_stop && !status)
		dp_info("stopped by signal after %llu lines; all delivered",
		        (unsigned long long)p->lines);
	dp_info("%llu lines, %llu delivered, %llu bad", (unsigned long long)p->lines,
	        (unsigned long long)st.delivered, (unsigned long long)p->bad);
	return status;
}

static void
close_pub(void *ctx)
{
	struct pub *p = ctx;

	for (size_t i = 0; i < NBATCH; i++) {
		if (!p->batches[i])
			continue;
		dp_buf_free(&p->batches[i]->arena);
		free(p->batches[i]->hdrs);
		free(p->batches[i]->hv);
		free(p->batches[i]->lines);
		free(p->batches[i]);
	}
	if (p->sync_ok) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
	}
	dp_producer_free(p->prod);
	dp_lines_free(p->in);
	dp_expr_free(p->topic_expr);
	dp_expr_free(p->key_expr);
	dp_expr_free(p->ts_expr);
	for (size_t i = 0; i < p->nhdrs; i++) {
		free(p->hdrs[i].name);
		dp_expr_free(p->hdrs[i].expr);
	}
	free(p->hdrs);
	for (size_t i = 0; i < p->nknown; i++)
		free(p->known[i]);
	free(p->known);
	dp_buf_free(&p->key);
	dp_buf_free(&p->tmp);
	dp_buf_free(&p->err);
	dp_buf_free(&p->topicbuf);
	dp_buf_free(&p->ack);
	dp_buf_free(&p->perr);
}

static const struct dp_cmd cmd = {
	.name = "dp-publish",
	.usage = usage,
	.machine = &machine,
	.start = E_START,
	.parse = parse_options,
	.validate = validate,
	.open = open_pub,
	.finish = finish_pub,
	.close = close_pub,
};

int
main(int argc, char **argv)
{
	static struct pub p = {
		.partition = DP_PRODUCER_ANY,
		.max_line = DP_LINES_MAX_DEFAULT,
	};

	return dp_cmd_main(&cmd, &p, &p.common, &p.fsm, argc, argv);
}
