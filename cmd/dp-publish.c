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
#include "feed.h"
#include "fsm.h"
#include "json.h"
#include "jsonw.h"
#include "kafka.h"
#include "lines.h"
#include "log.h"
#include "onerror.h"
#include "out.h"
#include "producer.h"
#include "progress.h"
#include "sig.h"
#include "timefmt.h"

/* Lines travel from the reader thread in batches of this size. */
#define BATCH_RECS 1024
#define BATCH_BYTES (1024 * 1024)

/* A header while its record is prepared: arena offsets (value NONE: null). */
struct hdr_at {
	size_t name, value, len;
};

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
	struct dp_on_error_policy on_error;
	uint64_t max_line;              /* --max-line-bytes */

	/* resources */
	struct dp_producer *prod;
	struct dp_lines *in;
	struct dp_feed *feed;           /* the reader thread (lib/feed.h) */
	char **known;                   /* topics proven to exist (reader thread) */
	size_t nknown;

	/* the reader thread's scratch, reused */
	struct dp_buf key, tmp, err, topicbuf;
	struct hdr_at *hscratch;        /* the headers of the line being prepared */
	size_t nhscratch, hscratch_cap;
	/* the main thread's */
	struct dp_buf ack, perr;
	struct dp_producer_rec *out;    /* a batch, as the producer takes it */
	struct dp_producer_header *hv;  /* its headers */
	size_t hv_cap;

	/* counters */
	uint64_t failed;                /* delivery reports with an error */
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
			if (dp_on_error_parse(&p->on_error, optarg) < 0)
				return -1;
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

#define NONE DP_FEED_NONE
#define PREP_STOP (-2)          /* prepare_*: a signal came while checking a topic */

/* One line, prepared: offsets into its batch's arena, or its kept line. */
struct rec {
	uint64_t lineno;
	enum rec_kind kind;
	int status;                 /* REC_FATAL: the exit status */
	size_t topic;               /* or NONE for the -t topic */
	int32_t partition;
	size_t key, keylen;         /* key NONE: no key */
	size_t val, vallen;         /* val NONE: a tombstone, unless in_line */
	bool in_line;               /* the value is the line itself (dp_feed_keep) */
	int64_t ts;
	size_t hdr, nhdr;           /* nhdr struct hdr_at in the arena at hdr */
	size_t why;                 /* REC_BAD, REC_FATAL: the message */
};

static const char *
at(const struct dp_feed_batch *b, size_t off)
{
	return dp_feed_at(b, off);
}

static void
add_hdr(struct pub *p, struct dp_feed_batch *b, const char *name, const char *value,
        size_t len)
{
	if (p->nhscratch == p->hscratch_cap) {
		size_t cap = p->hscratch_cap ? 2 * p->hscratch_cap : 16;
		struct hdr_at *h = realloc(p->hscratch, cap * sizeof(*h));
		if (!h) {
			b->oom = true;
			return;
		}
		p->hscratch = h;
		p->hscratch_cap = cap;
	}
	struct hdr_at *h = &p->hscratch[p->nhscratch++];
	h->name = dp_feed_add(b, name, strlen(name));
	h->value = value ? dp_feed_add(b, value, len) : NONE;
	h->len = len;
}

/* The record's value is its line: kept in place, not copied (feed.h). */
static void
value_is_line(struct dp_feed_batch *b, size_t i, struct rec *r, const char *line, size_t len)
{
	r->in_line = line != NULL;
	r->vallen = line ? len : 0;
	dp_feed_keep(b, i, line, len);
}

/* The value's bytes, or NULL for a tombstone. */
static const char *
value_of(const struct dp_feed_batch *b, size_t i, const struct rec *r)
{
	return r->in_line ? dp_feed_line(b, i) : r->val == NONE ? NULL : at(b, r->val);
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

/* The topic --topic-expr gives for the line, into p->topicbuf.  0 or -1. */
static int
topic_of(struct pub *p, struct dp_expr_rec *rec)
{
	enum dp_json_type t;

	dp_buf_reset(&p->topicbuf);
	if (dp_expr_first(p->topic_expr, rec, &t, &p->topicbuf, &p->err) < 0)
		return -1;
	if (t != DP_JSON_STRING || p->topicbuf.len == 0) {
		dp_buf_msgf(&p->err, "--topic-expr gave %s, not a topic name",
		            t == DP_JSON_INVALID ? "no result" : dp_buf_str(&p->topicbuf));
		return -1;
	}
	return 0;
}

/*
 * Fill r from one valid JSON line.  Returns 0, -1 with the reason in
 * p->err (a bad line), PREP_STOP, or an exit status > 0 (fatal).
 */
static int
prepare_json(struct pub *p, struct dp_feed_batch *b, size_t i, struct rec *r,
             const char *line, size_t len, const char *kv, size_t kvn)
{
	struct dp_expr_rec rec = DP_EXPR_REC(line, len);
	enum dp_json_type t;
	int rc = -1;

	if (p->topic_expr) {
		if (topic_of(p, &rec) < 0)
			goto out;
		if ((rc = check_topic(p, p->topicbuf.data, &p->err)))
			goto out;
		rc = -1;
		r->topic = dp_feed_add(b, p->topicbuf.data, p->topicbuf.len);
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
			r->key = dp_feed_add(b, p->key.data ? p->key.data : "", p->key.len);
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
	for (size_t h = 0; h < p->nhdrs; h++) {
		dp_buf_reset(&p->tmp);
		if (dp_expr_first(p->hdrs[h].expr, &rec, &t, &p->tmp, &p->err) < 0)
			goto out;
		if (t != DP_JSON_INVALID)       /* no result: no header */
			add_hdr(p, b, p->hdrs[h].name, t == DP_JSON_NULL ? NULL : dp_buf_str(&p->tmp),
			        t == DP_JSON_NULL ? 0 : p->tmp.len);
	}
	value_is_line(b, i, r, line, len);
	rc = 0;
out:
	dp_expr_rec_clear(&rec);
	return rc;
}

static int
prepare_envelope(struct pub *p, struct dp_feed_batch *b, struct rec *r, const char *line,
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
		int e = topic_of(p, &rec);
		dp_expr_rec_clear(&rec);
		if (e < 0)
			goto out;
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
		if ((rc = check_topic(p, topic, &p->err)))
			goto out;
		rc = -1;
		r->topic = dp_feed_add(b, topic, strlen(topic));
	}
	for (size_t h = 0; h < env.nhdrs; h++)
		add_hdr(p, b, env.hdrs[h].name, env.hdrs[h].value, env.hdrs[h].len);
	if (p->partition == DP_PRODUCER_ANY)
		r->partition = env.partition;
	if (env.key) {
		r->key = dp_feed_add(b, env.key, env.key_len);
		r->keylen = env.key_len;
	}
	if (env.value) {
		r->val = dp_feed_add(b, env.value, env.value_len);
		r->vallen = env.value_len;
	}
	r->ts = env.has_timestamp ? env.timestamp : 0;
	rc = 0;
out:
	dp_envelope_clear(&env);
	return rc;
}

/* Record that ends the input (rc > 0) or marks a bad line (rc < 0). */
static void
mark(struct dp_feed_batch *b, struct rec *r, int rc, const char *why)
{
	r->nhdr = 0;
	r->kind = rc > 0 ? REC_FATAL : REC_BAD;
	r->status = rc > 0 ? rc : 0;
	r->why = dp_feed_add(b, why, strlen(why));
	if (r->why == NONE) {
		r->kind = REC_FATAL;
		r->status = DP_EX_SOFTWARE;
	}
}

/* The feed's prepare: turn one line into record i of b (feed.h). */
static int
prepare_line(void *arg, struct dp_feed_batch *b, size_t i, const char *line, size_t len,
             int got)
{
	struct pub *p = arg;
	struct rec *r = (struct rec *)b->recs + i;
	char why[256];
	int rc = 0;

	r->lineno = dp_lines_lineno(p->in);
	r->topic = r->key = r->val = r->why = NONE;
	r->partition = p->partition;
	p->nhscratch = 0;
	if (got == DP_LINES_LONG) {
		snprintf(why, sizeof(why), "line of %zu bytes is longer than --max-line-bytes "
		         "(%llu); it is not kept", len, (unsigned long long)p->max_line);
		mark(b, r, -1, why);
	} else if (got == DP_LINES_BAD) {
		snprintf(why, sizeof(why), "%s at byte %zu", dp_lines_error(p->in),
		         dp_lines_error_offset(p->in) + 1);
		mark(b, r, -1, why);
	} else if (p->raw) {
		value_is_line(b, i, r, line, len);
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
			                 : prepare_json(p, b, i, r, line, len, kv, kvn);
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
		value_is_line(b, i, r, line, len);
	else if (r->kind == REC_RECORD && p->nhscratch) {
		r->hdr = dp_feed_add(b, p->hscratch, p->nhscratch * sizeof(*p->hscratch));
		r->nhdr = p->nhscratch;
	}
	if (b->oom) {
		b->oom = false;
		mark(b, r, DP_EX_SOFTWARE, "out of memory");
	}
	if (r->kind == REC_BAD && p->on_error.mode == DP_ON_ERROR_FAIL)
		return E_BAD_LINE;
	return r->kind == REC_FATAL ? E_FATAL : 0;
}

/* The feed's failed: reading stdin failed, or memory ran out. */
static int
read_failed(void *arg, struct dp_feed_batch *b, size_t i, int status, const char *why)
{
	struct pub *p = arg;
	struct rec *r = (struct rec *)b->recs + i;

	r->lineno = dp_lines_lineno(p->in) + 1;
	mark(b, r, status, why);
	return E_FATAL;
}

/* The feed's ready: a kept line the hand-over had no memory for is fatal. */
static void
batch_ready(void *arg, struct dp_feed_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct rec *r = (struct rec *)b->recs + i;
		if (r->in_line && !dp_feed_line(b, i)) {
			r->in_line = false;
			r->kind = REC_FATAL;
			r->status = DP_EX_SOFTWARE;
			r->why = NONE;          /* "(out of memory)" */
		}
	}
}

/* ---- producing (the main thread) ---------------------------------------- */

/* Apply --on-error to a bad line; a dead letter carries the reason in headers. */
static int
bad_line(struct pub *p, const char *line, size_t len, uint64_t lineno, const char *why)
{
	char where[48], num[24];
	struct dp_producer_header h[3] = {
		{ "dp-error", why, strlen(why) },
		{ "dp-line", num, (size_t)snprintf(num, sizeof(num), "%llu",
		                                   (unsigned long long)lineno) },
		{ "dp-topic", p->topic, p->topic ? strlen(p->topic) : 0 },
	};

	snprintf(where, sizeof(where), "line %llu", (unsigned long long)lineno);
	return dp_on_error_record(&p->on_error, p->prod, where, why, NULL, 0, line, len, h,
	                          p->topic ? 3 : 2, lineno);
}

/*
 * The producer's view of records [from, to) of b, in p->out.  Built here
 * rather than in the reader: only now are the batch's bytes where they stay.
 */
static int
resolve(struct pub *p, const struct dp_feed_batch *b, size_t from, size_t to)
{
	size_t nh = 0;

	for (size_t i = from; i < to; i++)
		nh += ((const struct rec *)b->recs)[i].nhdr;
	if (nh > p->hv_cap) {
		struct dp_producer_header *hv = realloc(p->hv, nh * sizeof(*hv));
		if (!hv)
			return -1;
		p->hv = hv;
		p->hv_cap = nh;
	}
	nh = 0;
	for (size_t i = from; i < to; i++) {
		const struct rec *r = (const struct rec *)b->recs + i;
		for (size_t k = 0; k < r->nhdr; k++) {
			struct hdr_at h;
			memcpy(&h, b->arena.data + r->hdr + k * sizeof(h), sizeof(h));
			p->hv[nh + k] = (struct dp_producer_header){
				at(b, h.name), h.value == NONE ? NULL : at(b, h.value), h.len,
			};
		}
		p->out[i - from] = (struct dp_producer_rec){
			.topic = r->topic == NONE ? NULL : at(b, r->topic),
			.partition = r->partition,
			.key = r->key == NONE ? NULL : at(b, r->key),
			.key_len = r->keylen,
			.value = value_of(b, i, r),
			.value_len = r->vallen,
			.hdrs = r->nhdr ? &p->hv[nh] : NULL,
			.nhdrs = r->nhdr,
			.timestamp = r->ts,
			.tag = r->lineno,
		};
		nh += r->nhdr;
	}
	return 0;
}

/* Hand a batch to the producer.  Returns 0, or the status that ends the input. */
static int
send_batch(struct pub *p, const struct dp_feed_batch *b)
{
	const struct rec *recs = b->recs;

	for (size_t i = 0; i < b->n;) {
		const struct rec *r = &recs[i];
		size_t j = i, failed;
		int st;

		if (r->kind == REC_FATAL) {
			dp_err("line %llu: %s", (unsigned long long)r->lineno, at(b, r->why));
			return r->status;
		}
		if (r->kind == REC_BAD) {
			st = bad_line(p, value_of(b, i, r), r->vallen, r->lineno, at(b, r->why));
			if (st)
				return st;
			i++;
			continue;
		}
		while (j < b->n && recs[j].kind == REC_RECORD)
			j++;
		if (resolve(p, b, i, j) < 0) {
			dp_err("line %llu: out of memory", (unsigned long long)r->lineno);
			return DP_EX_SOFTWARE;
		}
		dp_buf_reset(&p->perr);
		st = dp_producer_send(p->prod, p->out, j - i, &failed, &p->perr);
		if (!st) {
			i = j;
			continue;
		}
		/* Said once, with its line: the record is refused for itself, or all stops. */
		i += failed;
		r = &recs[i];
		if (st != DP_EX_DATAERR) {
			dp_err("line %llu: %s", (unsigned long long)r->lineno, dp_buf_str(&p->perr));
			return st;
		}
		st = bad_line(p, value_of(b, i, r), r->vallen, r->lineno, dp_buf_str(&p->perr));
		if (st)
			return st;
		i++;
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
	dp_progress_tick(&p->prog, "lines", dp_feed_lines(p->feed), NULL, false);
}

/* Produce batches until the input ends, a bad line or an error, or a stop. */
static int
run_lines(struct pub *p)
{
	int ev = 0;
	bool quiet = false;     /* the last batch ended because input paused */

	while (!ev) {
		if ((quiet || dp_feed_quiet(p->feed)) && dp_producer_pending(p->prod) > 0) {
			/*
			 * The writer is quiet: send what waits for linger.ms
			 * now.  flush returns once all is delivered, and looks
			 * for new input again after 10 ms at most.
			 */
			dp_producer_flush(p->prod, 10);
			serve(p);
			quiet = false;
			continue;
		}
		struct dp_feed_batch *b = dp_feed_next(p->feed, 100);
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
			dp_feed_halt(p->feed);  /* before the batch is filled again */
		dp_feed_release(p->feed, b);
		dp_producer_poll(p->prod, 0);
		dp_progress_tick(&p->prog, "lines", dp_feed_lines(p->feed), NULL, false);
	}
	dp_feed_halt(p->feed);
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
	st = dp_producer_connect(p->prod, &p->on_error.dlq_topic, p->on_error.dlq_topic ? 1 : 0,
	                         &err);
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
	struct dp_buf err = DP_BUF_INIT;
	const struct dp_feed_conf conf = {
		.in = p->in, .rec_size = sizeof(struct rec), .max_recs = BATCH_RECS,
		.max_bytes = BATCH_BYTES, .prepare = prepare_line, .failed = read_failed,
		.ready = batch_ready, .eof = E_EOF, .stop = E_STOP, .arg = p,
	};

	if (!(p->out = calloc(BATCH_RECS, sizeof(*p->out))) ||
	    !(p->feed = dp_feed_start(&conf, &err))) {
		dp_err("%s", p->out ? dp_buf_str(&err) : "out of memory");
		dp_buf_free(&err);
		p->status = DP_EX_SOFTWARE;
		return E_FATAL;
	}
	return run_lines(p);
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
	uint64_t lines = p->feed ? dp_feed_lines(p->feed) : 0;

	if (p->prod)
		dp_producer_stats(p->prod, &st);
	if (p->progress)
		dp_progress_tick(&p->prog, "lines", lines, NULL, true);
	dp_on_error_summary(&p->on_error, "line");
	if (dp_sig_stop && !status)
		dp_info("stopped by signal after %llu lines; all delivered",
		        (unsigned long long)lines);
	dp_info("%llu lines, %llu delivered, %llu bad", (unsigned long long)lines,
	        (unsigned long long)st.delivered, (unsigned long long)p->on_error.count);
	return status;
}

static void
close_pub(void *ctx)
{
	struct pub *p = ctx;

	dp_feed_free(p->feed);
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
	free(p->hscratch);
	free(p->out);
	free(p->hv);
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
