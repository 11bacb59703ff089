/*
 * dp-publish -- NDJSON on stdin to Kafka records.
 *
 * Every input line becomes one record.  Keys, topics, headers and
 * timestamps come from jq expressions evaluated on the line; --envelope
 * reads the lossless form that dp-tail --envelope prints.  The command
 * exits 0 only when every record was acknowledged by the cluster.
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

#include <librdkafka/rdkafka.h>

#include "buf.h"
#include "cli.h"
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
#include "progress.h"
#include "sig.h"
#include "timefmt.h"

enum on_error { ON_ERROR_FAIL, ON_ERROR_SKIP, ON_ERROR_DLQ };

/* Lines travel from the reader thread in batches of this size. */
#define BATCH_RECS 1024
#define BATCH_BYTES (1024 * 1024)
#define NBATCH 4
#define MAX_BUCKETS 4096                /* partitions batched by send_run */
#define MAX_LANES 4                     /* producers of the -t topic */

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
	int64_t timeout_ms;
	bool auto_create;               /* -X allow.auto.create.topics=true */

	/* resources */
	rd_kafka_t *rk;                 /* lane 0: also every other topic */
	rd_kafka_topic_t *rkt;          /* the -t topic, looked up once */
	/*
	 * Lanes.  librdkafka 2.0's idempotent producer has one request in
	 * flight per partition, so a partition waits out every round trip,
	 * and on one connection the broker serves the partitions' requests
	 * one after another.  For a keyed -t topic the partitions are spread
	 * over up to MAX_LANES producers, each with its own connection: a
	 * partition always goes through the same one (partition % nlanes),
	 * so its records keep their order and each producer's sequence
	 * numbers still rule out duplicates.  lane_rk[0] is rk.
	 */
	rd_kafka_t *lane_rk[MAX_LANES];
	rd_kafka_topic_t *lane_rkt[MAX_LANES];
	int nlanes;
	uint32_t next_unkeyed;          /* round robin for records without a key */
	struct dp_lines *in;
	struct dp_out *out;             /* --report lines */
	char **known;                   /* topics proven to exist (reader thread) */
	size_t nknown;
	rd_kafka_topic_t **handles;     /* other topics' handles (main thread) */
	size_t nhandles;

	/* the reader thread and the batches it fills */
	pthread_t reader;
	bool reader_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *batches[NBATCH];
	int32_t partitions;             /* of the -t topic */
	int64_t partitions_checked;     /* when, on the monotonic clock */
	size_t max_msg_size;            /* message.max.bytes */
	int32_t (*partitioner)(const rd_kafka_topic_t *, const void *, size_t, int32_t,
	                       void *, void *);
	struct window *win;             /* send_run's per-partition window, or NULL */
	uint64_t win_msgs, win_bytes;   /* its size */
	struct batch *free[NBATCH];     /* LIFO of empty batches */
	size_t nfree;
	struct batch *full[NBATCH];     /* FIFO of filled batches */
	size_t full_head, nfull;
	atomic_int halt;                /* main thread to reader: stop */
	atomic_int waiting;             /* reader to main thread: input is quiet */

	/* per-line scratch of the reader thread, reused */
	struct dp_buf key, tmp, err, topicbuf, ack;

	/* counters */
	atomic_ullong lines;            /* written by the reader thread */
	uint64_t produced;
	uint64_t delivered;
	uint64_t lost;
	uint64_t bad;
	uint64_t dlq;
	int status;                     /* first fatal status */
	struct dp_progress prog;
	struct dp_fsm fsm;
};

/* ---- state machine ---------------------------------------------------- */

enum state { S_IDLE, S_CONNECTING, S_PUBLISHING, S_DRAINING, S_DONE, S_FAILED, NSTATES };
enum event { E_START, E_CONNECTED, E_UNREACHABLE, E_EOF, E_STOP, E_BAD_LINE,
             E_FATAL, E_DRAINED, E_LOST, NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "connecting", "publishing", "draining", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "connected", "unreachable", "eof", "signal", "bad_line",
	"fatal", "drained", "lost",
};

static const struct dp_fsm_row rows[] = {
	{ S_IDLE,       E_START,       S_CONNECTING, NULL },
	{ S_CONNECTING, E_CONNECTED,   S_PUBLISHING, NULL },
	{ S_CONNECTING, E_UNREACHABLE, S_FAILED,     NULL },
	{ S_CONNECTING, E_STOP,        S_DONE,       NULL },
	{ S_PUBLISHING, E_EOF,         S_DRAINING,   NULL },
	{ S_PUBLISHING, E_STOP,        S_DRAINING,   NULL },
	{ S_PUBLISHING, E_BAD_LINE,    S_DRAINING,   NULL },
	{ S_PUBLISHING, E_FATAL,       S_DRAINING,   NULL },
	{ S_DRAINING,   E_DRAINED,     S_DONE,       NULL },
	{ S_DRAINING,   E_LOST,        S_FAILED,     NULL },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-publish", state_names, NSTATES, event_names, NEVENTS,
	rows, sizeof(rows) / sizeof(rows[0]), S_IDLE, finals, 2,
};

/* ---- options ---------------------------------------------------------- */

enum {
	OPT_TOPIC_EXPR = DP_OPT_CMD, OPT_TIMESTAMP, OPT_ENVELOPE, OPT_ON_ERROR,
	OPT_REPORT, OPT_RAW, OPT_TIMEOUT, OPT_PROGRESS,
};

static const struct option longopts[] = {
	{ "topic",      required_argument, NULL, 't' },
	{ "topic-expr", required_argument, NULL, OPT_TOPIC_EXPR },
	{ "key",        required_argument, NULL, 'k' },
	{ "partition",  required_argument, NULL, 'p' },
	{ "header",     required_argument, NULL, 'H' },
	{ "timestamp",  required_argument, NULL, OPT_TIMESTAMP },
	{ "envelope",   no_argument,       NULL, OPT_ENVELOPE },
	{ "on-error",   required_argument, NULL, OPT_ON_ERROR },
	{ "report",     no_argument,       NULL, OPT_REPORT },
	{ "raw",        no_argument,       NULL, OPT_RAW },
	{ "timeout",    required_argument, NULL, OPT_TIMEOUT },
	{ "progress",   no_argument,       NULL, OPT_PROGRESS },
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
	      "\n"
	      "Delivery:\n"
	      "      --timeout DURATION  give up on an unreachable cluster after this (default 10s)\n"
	      "      --report            print one NDJSON acknowledgement per record on stdout\n"
	      "      --progress          print rate and totals on stderr every second\n", fp);
	dp_cli_help_common(fp, true);
	fputs("\nDefaults that -X overrides: enable.idempotence=true acks=all linger.ms=100\n"
	      "allow.auto.create.topics=false; a pause in the input sends what waits.\n", fp);
	fputs("\nExit status: 0 all delivered, 64 usage, 65 bad line (--on-error fail),\n"
	      "69 cluster or topic unavailable, 75 records not delivered.  See dp-publish(1).\n", fp);
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
	if (!h)
		return -1;
	p->hdrs = h;
	h = &p->hdrs[p->nhdrs];
	h->expr = dp_expr_compile(eq + 1, &err);
	if (!h->expr) {
		dp_err("invalid --header %.*s: %s", (int)(eq - arg), arg, err.data);
		dp_buf_free(&err);
		return -1;
	}
	h->name = strndup(arg, (size_t)(eq - arg));
	p->nhdrs++;
	return 0;
}

static struct dp_expr *
compile(const char *opt, const char *src)
{
	struct dp_buf err = DP_BUF_INIT;
	struct dp_expr *e = dp_expr_compile(src, &err);

	if (!e)
		dp_err("invalid %s: %s", opt, err.data);
	dp_buf_free(&err);
	return e;
}

static int
parse_options(struct pub *p, int argc, char **argv)
{
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
		case OPT_TIMEOUT:
			if (dp_parse_timeout("--timeout", optarg, INT32_MAX, "24d",
			                     &p->timeout_ms) < 0)
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
validate(struct pub *p)
{
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

/* ---- delivery --------------------------------------------------------- */

/*
 * The opaque of each record: the input line number shifted left, with the
 * low bit set for a dead-letter copy and the next one for a record that
 * send_run counts in its window.
 */
#define OPAQUE(line, dlq) ((void *)(uintptr_t)(((uintptr_t)(line) << 2) | (dlq)))
#define OPAQUE_WIN(line) ((void *)(uintptr_t)(((uintptr_t)(line) << 2) | 2))
#define OPAQUE_LINE(o) ((uint64_t)((uintptr_t)(o) >> 2))
#define OPAQUE_IN_WIN(o) (((uintptr_t)(o) & 2) != 0)

/*
 * Records of one partition handed to librdkafka and not yet reported.
 *
 * librdkafka 2.0's idempotent producer sends a partition's next request
 * only once the previous one is answered.  send_run keeps about two and
 * a half batches of each partition outstanding: one in flight, and a
 * full one waiting, so that the next request leaves the moment the
 * answer comes, plus one filling.  More would only take memory, and
 * without a bound one busy partition fills librdkafka's shared queue
 * and holds up all the others.  (A batch waiting behind a request makes
 * librdkafka's broker thread poll in a loop once its linger.ms is over;
 * hence dp-publish's long linger.ms, see open_kafka.)
 */
struct window {
	uint64_t msgs;
	uint64_t bytes;
};

/* The records of one partition that send_run hands over: msgs[done..end). */
struct run {
	rd_kafka_message_t *msgs;
	size_t done, end;
	int32_t partition;
	int status;             /* set when a record could not be produced */
};


static void
report_line(struct pub *p, uint64_t line, const rd_kafka_message_t *m)
{
	struct dp_buf *b = &p->ack;
	const char *topic = rd_kafka_topic_name(m->rkt);

	struct dp_jw w;

	dp_buf_reset(b);
	dp_jw_init(&w, b);
	dp_jw_obj(&w);
	dp_jw_kuint(&w, "line", line);
	dp_jw_kstr(&w, "topic", topic);
	if (m->err) {
		dp_jw_kstr(&w, "error", rd_kafka_err2str(m->err));
	} else {
		dp_jw_kint(&w, "partition", m->partition);
		dp_jw_kint(&w, "offset", m->offset);
	}
	dp_jw_end(&w);
	if (dp_jw_finish(&w) < 0 || dp_buf_addch(b, '\n') < 0) {
		dp_err("line %llu: cannot report: out of memory", (unsigned long long)line);
		if (!p->status)
			p->status = DP_EX_SOFTWARE;
		return;
	}
	if (dp_out_write(p->out, b->data, b->len) < 0 && errno != EPIPE && !p->status)
		p->status = DP_EX_IOERR;
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct pub *p = opaque;
	uint64_t line = OPAQUE_LINE(m->_private);

	if (m->err) {
		p->lost++;
		/* The first few failures are named; the total is always given. */
		if (p->lost <= 5)
			dp_err("line %llu: not delivered to '%s': %s", (unsigned long long)line,
			       rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
	} else {
		p->delivered++;
	}
	if (OPAQUE_IN_WIN(m->_private) && p->win && m->partition >= 0 &&
	    m->partition < MAX_BUCKETS) {
		struct window *w = &p->win[m->partition];
		w->msgs--;
		w->bytes -= m->len + m->key_len;
	}
	if (p->report)
		report_line(p, line, m);
}

/* ---- preparing records (the reader thread) ------------------------------ */

/*
 * Reading, validating and evaluating expressions run in a thread of their
 * own, a batch of lines at a time; the main thread only hands prepared
 * records to librdkafka and serves delivery reports.  On two cores this
 * overlaps the JSON work with the producer's own, which is what lets
 * dp-publish keep up with kcat while it still checks every line.
 *
 * Order is kept: batches travel in a FIFO, records inside a batch are in
 * line order, and the main thread stops at the first record that tells
 * it to (a bad line under --on-error fail, a fatal error).
 */
enum rec_kind { REC_RECORD, REC_BAD, REC_FATAL };

#define NONE ((size_t)-1)

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
	rd_kafka_headers_t *hdrs;   /* owned by the record until produced */
	size_t why;                 /* REC_BAD, REC_FATAL: the message */
};

struct batch {
	struct rec recs[BATCH_RECS];
	size_t n;
	struct dp_buf arena;        /* the bytes records point at, but lines */
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

/*
 * A record's value is the input line itself: point at it where the line
 * reader has it, and let the batch take that buffer over when it is
 * handed on (see reader_main), instead of copying every line.
 */
static void
value_is_line(struct batch *b, struct rec *r, const char *line, size_t len)
{
	r->line = line;
	r->vallen = len;
	b->in_lines = true;
}

/* The value's bytes, or NULL for a tombstone. */
static const char *
value_of(const struct batch *b, const struct rec *r)
{
	return r->line ? r->line : r->val == NONE ? NULL : at(b, r->val);
}

static int
topic_known(struct pub *p, const char *name)
{
	for (size_t i = 0; i < p->nknown; i++)
		if (strcmp(p->known[i], name) == 0)
			return 1;
	return 0;
}

/*
 * Topics named by --topic-expr are checked once each, so a typo fails at
 * once instead of after message.timeout.ms.
 */
static int
check_topic(struct pub *p, const char *name, struct dp_buf *why)
{
	char **k;

	if (topic_known(p, name))
		return 0;
	int st = dp_kafka_probe(p->rk, name, (int)p->timeout_ms, NULL, why);
	if (st == DP_EX_NOTFOUND && p->auto_create) {
		dp_buf_reset(why);
		st = 0;                 /* the broker creates it on first produce */
	} else if (st == DP_EX_NOTFOUND) {
		st = DP_EX_UNAVAILABLE;
	}
	if (st)
		return st;
	k = realloc(p->known, (p->nknown + 1) * sizeof(*k));
	if (!k)
		return DP_EX_SOFTWARE;
	p->known = k;
	p->known[p->nknown++] = strdup(name);
	return 0;
}

/* Parse a --timestamp result (text of a number or a string) into ms. */
static int
to_timestamp(enum dp_json_type t, const char *s, int64_t *ms)
{
	if (t == DP_JSON_NUMBER)
		return dp_time_parse_epoch(s, ms);
	if (t == DP_JSON_STRING)
		return dp_time_parse(s, ms);
	return -1;
}

/*
 * Fill r from one valid JSON line.  Returns 0, -1 with the reason in
 * p->err (a bad line), or an exit status > 0 (fatal).
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
			            t == DP_JSON_INVALID ? "no result" : p->topicbuf.data);
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
			                         : dp_json_compact(&p->key, kv, kvn)) < 0)
				goto out;
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
		if (to_timestamp(t, p->tmp.data ? p->tmp.data : "", &r->ts) < 0) {
			dp_buf_msgf(&p->err, "--timestamp gave '%s', not RFC 3339 or epoch time",
			            p->tmp.data ? p->tmp.data : "");
			goto out;
		}
	}
	if (p->nhdrs) {
		r->hdrs = rd_kafka_headers_new(p->nhdrs);
		for (size_t i = 0; i < p->nhdrs; i++) {
			dp_buf_reset(&p->tmp);
			if (dp_expr_first(p->hdrs[i].expr, &rec, &t, &p->tmp, &p->err) < 0)
				goto out;
			if (t == DP_JSON_INVALID)
				continue;       /* no result: no header */
			rd_kafka_header_add(r->hdrs, p->hdrs[i].name, -1,
			                    t == DP_JSON_NULL ? NULL : p->tmp.data,
			                    t == DP_JSON_NULL ? 0 : (ssize_t)p->tmp.len);
		}
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
	if (!p->topic || strcmp(topic, p->topic) != 0) {
		int st = check_topic(p, topic, &p->err);
		if (st) {
			rc = st;
			goto out;
		}
		r->topic = arena_add(b, topic, strlen(topic));
	}
	r->hdrs = rd_kafka_headers_new(env.nhdrs ? env.nhdrs : 1);
	for (size_t i = 0; i < env.nhdrs; i++)
		rd_kafka_header_add(r->hdrs, env.hdrs[i].name, -1, env.hdrs[i].value,
		                    (ssize_t)env.hdrs[i].len);
	if (p->partition == RD_KAFKA_PARTITION_UA)
		r->partition = env.partition;
	if (env.key) {
		r->key = arena_add(b, env.key, env.key_len);
		r->keylen = env.key_len;
	}
	if (env.value) {
		r->val = arena_add(b, env.value, env.value_len);
		r->vallen = env.value_len;
	} else {
		r->val = NONE;
	}
	r->ts = env.timestamp;
	rc = 0;
out:
	dp_envelope_clear(&env);
	return rc;
}

/* Record that ends the batch (rc > 0) or marks a bad line (rc < 0). */
static void
mark(struct batch *b, struct rec *r, int rc, const char *why)
{
	if (r->hdrs) {
		rd_kafka_headers_destroy(r->hdrs);
		r->hdrs = NULL;
	}
	r->kind = rc > 0 ? REC_FATAL : REC_BAD;
	r->status = rc > 0 ? rc : 0;
	r->why = arena_add(b, why, strlen(why));
	if (r->why == NONE) {
		r->kind = REC_FATAL;
		r->status = DP_EX_SOFTWARE;
	}
}

/* Turn one line into a record in b.  Returns 0, or the event that ends input. */
static int
prepare_line(struct pub *p, struct batch *b, const char *line, size_t len, int bad_bytes)
{
	struct rec *r = &b->recs[b->n++];
	char why[256];
	int rc = 0;

	memset(r, 0, sizeof(*r));
	r->lineno = dp_lines_lineno(p->in);
	r->topic = r->key = r->why = NONE;
	r->partition = p->partition;
	if (bad_bytes) {
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
			if (rc)
				mark(b, r, rc, p->err.data ? p->err.data : "error");
		}
	}
	if (r->kind == REC_BAD) {
		/* The raw line goes along for --on-error dlq. */
		value_is_line(b, r, line, len);
	}
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
		int r = dp_lines_next(p->in, &line, &len);
		if (wait)
			atomic_store(&p->waiting, 0);
		if (r == DP_LINES_EOF && dp_sig_stop) {
			if (dp_lines_pending(p->in))
				dp_warn("line %lu: incomplete when the signal came; %zu bytes "
				        "not sent", dp_lines_lineno(p->in) + 1,
				        dp_lines_pending(p->in));
			return E_STOP;
		}
		if (r == DP_LINES_EOF)
			return E_EOF;
		if (r == DP_LINES_ERR) {
			if (errno == EINTR)
				continue;
			struct rec *f = &b->recs[b->n++];
			memset(f, 0, sizeof(*f));
			char why[128];
			snprintf(why, sizeof(why), "cannot read stdin: %s", strerror(errno));
			f->lineno = dp_lines_lineno(p->in) + 1;
			mark(b, f, DP_EX_IOERR, why);
			return E_FATAL;
		}
		if (r == DP_LINES_NOMEM) {
			struct rec *f = &b->recs[b->n++];
			memset(f, 0, sizeof(*f));
			f->lineno = dp_lines_lineno(p->in) + 1;
			mark(b, f, DP_EX_SOFTWARE, "out of memory");
			return E_FATAL;
		}
		p->lines++;
		if (len == 0)
			continue;
		int ev = prepare_line(p, b, line, len, r == DP_LINES_BAD);
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

		b->n = 0;
		b->end = 0;
		b->quiet = false;
		b->in_lines = false;
		dp_buf_reset(&b->arena);
		end = b->end = read_batch(p, b);
		if (b->in_lines)
			keep_lines(p, b);

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

/* A topic handle for name, looked up once (main thread only). */
static rd_kafka_topic_t *
topic_handle(struct pub *p, const char *name)
{
	for (size_t i = 0; i < p->nhandles; i++)
		if (strcmp(rd_kafka_topic_name(p->handles[i]), name) == 0)
			return p->handles[i];
	rd_kafka_topic_t **h = realloc(p->handles, (p->nhandles + 1) * sizeof(*h));
	if (!h)
		return NULL;
	p->handles = h;
	if (!(h[p->nhandles] = rd_kafka_topic_new(p->rk, name, NULL)))
		return NULL;
	return h[p->nhandles++];
}

/*
 * Serve every lane's delivery reports, waiting up to ms for rk's.  The
 * wait is cut in short slices so that another lane's answers, which may
 * be what frees its partition's window, are not left until rk's come.
 */
static void
wait_lane(struct pub *p, rd_kafka_t *rk, int ms)
{
	int64_t until = dp_time_mono_ms() + ms;
	int slice = p->nlanes > 1 && ms > 2 ? 2 : ms;

	for (;;) {
		int n = rd_kafka_poll(rk, slice);
		for (int i = 0; i < p->nlanes; i++)
			if (p->lane_rk[i] != rk)
				n += rd_kafka_poll(p->lane_rk[i], 0);
		if (n > 0 || slice == ms || dp_time_mono_ms() >= until)
			return;
	}
}

/* Records not yet reported, over all lanes. */
static int
outq_len(struct pub *p)
{
	int n = 0;

	for (int i = 0; i < p->nlanes; i++)
		n += rd_kafka_outq_len(p->lane_rk[i]);
	return n;
}

/* Send now what waits for linger.ms, for up to ms per lane. */
static void
flush_lanes(struct pub *p, int ms)
{
	for (int i = 0; i < p->nlanes; i++)
		if (rd_kafka_outq_len(p->lane_rk[i]) > 0)
			rd_kafka_flush(p->lane_rk[i], ms);
}

/*
 * Whether librdkafka would spread this record over the partitions rather
 * than hash its key: no key at all, or an empty one under the default
 * partitioner.  With lanes dp-publish spreads such records in turn.
 */
static bool
spread(const struct pub *p, const void *key, size_t keylen)
{
	return !key || (keylen == 0 && p->partitioner == rd_kafka_msg_partitioner_consistent_random);
}

/* Produce with back-pressure: a full local queue waits for deliveries. */
static rd_kafka_resp_err_t
produce(struct pub *p, const char *topic, int32_t partition, const void *key,
        size_t keylen, const void *val, size_t vallen, rd_kafka_headers_t *hdrs,
        int64_t ts, void *opaque)
{
	rd_kafka_topic_t *rkt = topic ? topic_handle(p, topic) : p->rkt;
	rd_kafka_t *rk = p->rk;
	rd_kafka_resp_err_t e;

	if (!rkt)
		return rd_kafka_last_error();
	if (!topic && p->nlanes > 1) {
		/* The partition decides the lane, so it is picked here. */
		if (partition == RD_KAFKA_PARTITION_UA)
			partition = spread(p, key, keylen)
			                ? (int32_t)(p->next_unkeyed++ % (uint32_t)p->partitions)
			                : p->partitioner(p->rkt, key, keylen, p->partitions, NULL, NULL);
		rk = p->lane_rk[partition % p->nlanes];
		rkt = p->lane_rkt[partition % p->nlanes];
	}
	for (;;) {
		e = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt),
		        RD_KAFKA_V_PARTITION(partition),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		        RD_KAFKA_V_KEY((void *)key, keylen),
		        RD_KAFKA_V_VALUE((void *)val, vallen),
		        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_TIMESTAMP(ts),
		        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		wait_lane(p, rk, 50);
	}
	if (!e)
		p->produced++;
	return e;
}

/* Send a bad line to the dead-letter topic, with the reason in headers. */
static int
dead_letter(struct pub *p, const char *line, size_t len, uint64_t lineno, const char *why)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	char num[32];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)lineno);
	rd_kafka_header_add(h, "dp-error", -1, why, -1);
	rd_kafka_header_add(h, "dp-line", -1, num, -1);
	if (p->topic)
		rd_kafka_header_add(h, "dp-topic", -1, p->topic, -1);
	rd_kafka_resp_err_t e = produce(p, p->dlq_topic, RD_KAFKA_PARTITION_UA, NULL, 0,
	                                line, len, h, 0, OPAQUE(lineno, 1));
	if (e) {
		rd_kafka_headers_destroy(h);
		dp_err("line %llu: cannot send to dead-letter topic '%s': %s",
		       (unsigned long long)lineno, p->dlq_topic, rd_kafka_err2str(e));
		return dp_kafka_exit_status(e);
	}
	p->dlq++;
	return 0;
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

/* Produce one prepared record.  Returns 0 or an exit status. */
static int
send_rec(struct pub *p, const struct batch *b, struct rec *r)
{
	switch (r->kind) {
	case REC_BAD:
		return bad_line(p, value_of(b, r), r->vallen, r->lineno, at(b, r->why));
	case REC_FATAL:
		dp_err("line %llu: %s", (unsigned long long)r->lineno, at(b, r->why));
		return r->status;
	case REC_RECORD:
		break;
	}
	const char *topic = r->topic == NONE ? NULL : at(b, r->topic);
	rd_kafka_resp_err_t e = produce(p, topic, r->partition,
	                                r->key == NONE ? NULL : at(b, r->key), r->keylen,
	                                value_of(b, r), r->vallen,
	                                r->hdrs, r->ts, OPAQUE(r->lineno, 0));
	if (!e) {
		r->hdrs = NULL;         /* owned by librdkafka now */
		return 0;
	}
	dp_err("line %llu: cannot produce to '%s': %s", (unsigned long long)r->lineno,
	       topic ? topic : p->topic, rd_kafka_err2str(e));
	int st = dp_kafka_exit_status(e);
	if (st == DP_EX_DATAERR || e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
		return bad_line(p, value_of(b, r), r->vallen, r->lineno, rd_kafka_err2str(e));
	return st;
}

/*
 * Produce the plain records b->recs[from..to) with one call: librdkafka
 * then takes each partition's lock once per batch instead of once per
 * record, which is most of the cost of keyed records.  Only for the -t
 * topic without headers or timestamps, which the batch call cannot carry.
 * Returns 0, or an exit status (the failed record is named).
 */
/* A batch produce that failed in a way send_run does not expect. */
static int
batch_failed(struct pub *p, const rd_kafka_message_t *m, int32_t partition)
{
	rd_kafka_resp_err_t e = m->err ? m->err : RD_KAFKA_RESP_ERR__FAIL;

	dp_err("line %llu: cannot produce to '%s' [%d]: %s",
	       (unsigned long long)OPAQUE_LINE(m->_private), p->topic, (int)partition,
	       rd_kafka_err2str(e));
	return DP_EX_TEMPFAIL;
}

/*
 * How far from msgs[from] the records of partition k fit in its window.
 * An empty window takes at least one record, whatever its size.
 */
static size_t
window_fit(const struct pub *p, int32_t k, const rd_kafka_message_t *msgs, size_t from,
           size_t to)
{
	if (!p->win)
		return to;
	uint64_t n = p->win[k].msgs, bytes = p->win[k].bytes;
	size_t i = from;
	for (; i < to; i++) {
		n++;
		bytes += msgs[i].len + msgs[i].key_len;
		if ((n > p->win_msgs || bytes > p->win_bytes) && (i > from || p->win[k].msgs))
			break;
	}
	return i;
}

static void
window_add(struct pub *p, int32_t k, const rd_kafka_message_t *msgs, size_t from, size_t to)
{
	if (!p->win)
		return;
	for (size_t i = from; i < to; i++) {
		p->win[k].msgs++;
		p->win[k].bytes += msgs[i].len + msgs[i].key_len;
	}
}

/*
 * Hand over as many of the run's records as its partition's window
 * takes.  Returns how many went; 0 means wait for answers (or, with
 * run->status set, stop).
 */
static size_t
push_run(struct pub *p, struct run *run)
{
	rd_kafka_message_t *msgs = run->msgs;
	int32_t k = run->partition;
	size_t done = run->done, upto = window_fit(p, k, msgs, done, run->end);

	if (upto == done)
		return 0;
	rd_kafka_produce_batch(p->lane_rkt[k % p->nlanes], k, RD_KAFKA_MSG_F_COPY,
	                       msgs + done, (int)(upto - done));
	/*
	 * Records that fail stay with err set; librdkafka goes on past them.
	 * send_run only gets records that cannot fail for their size, so the
	 * one failure left is a full queue, and then every later record
	 * failed as well: nothing frees queue space without a poll, which
	 * only we do.
	 */
	size_t first = done;
	while (first < upto && !msgs[first].err)
		first++;
	/* The accepted prefix is librdkafka's now, whatever follows. */
	window_add(p, k, msgs, done, first);
	p->produced += first - done;
	run->done = first;
	for (size_t i = first; i < upto; i++)
		if (msgs[i].err && msgs[i].err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			run->status = batch_failed(p, &msgs[i], k);
			return 0;
		}
	for (size_t i = first; i < upto; i++)
		if (!msgs[i].err) {
			run->status = batch_failed(p, &msgs[first], k);   /* not a prefix */
			return 0;
		}
	for (size_t i = first; i < upto; i++)
		msgs[i].err = 0;        /* a full queue: they go again */
	return first - done;
}

static int
send_run(struct pub *p, const struct batch *b, size_t from, size_t to)
{
	rd_kafka_message_t msgs[BATCH_RECS];
	int32_t part[BATCH_RECS];
	size_t n = to - from, count[MAX_BUCKETS + 1];
	int32_t nparts = p->partitions;

	/*
	 * Partition here, with librdkafka's own partitioner function, and
	 * hand over one partition's records at a time: the records of a
	 * partition keep their order, and the queue lock is taken once per
	 * partition and batch.
	 */
	memset(count, 0, sizeof(count));
	for (size_t i = 0; i < n; i++) {
		const struct rec *r = &b->recs[from + i];
		if (r->partition != RD_KAFKA_PARTITION_UA)
			part[i] = r->partition;
		else if (r->key != NONE)
			part[i] = p->partitioner(p->rkt, at(b, r->key), r->keylen, nparts, NULL, NULL);
		else            /* batch_ok lets only keyed records through */
			part[i] = 0;
		count[part[i] + 1]++;
	}
	for (int32_t k = 0; k < nparts; k++)
		count[k + 1] += count[k];
	for (size_t i = 0; i < n; i++) {
		const struct rec *r = &b->recs[from + i];
		rd_kafka_message_t *m = &msgs[count[part[i]]++];
		memset(m, 0, sizeof(*m));
		m->payload = (void *)value_of(b, r);
		m->len = r->vallen;
		if (r->key != NONE) {
			m->key = (void *)at(b, r->key);
			m->key_len = r->keylen;
		}
		m->_private = p->win ? OPAQUE_WIN(r->lineno) : OPAQUE(r->lineno, 0);
	}
	/* count[k] is now the end of partition k's run, count[k-1] its start. */
	size_t start = 0;
	for (int32_t k = 0; k < nparts; k++) {
		struct run run = { msgs, start, count[k], k, 0 };
		rd_kafka_t *lane_rk = p->lane_rk[k % p->nlanes];
		while (run.done < run.end && !run.status) {
			if (push_run(p, &run) == 0)
				wait_lane(p, lane_rk, 50);      /* for answers */
		}
		if (run.status)
			return run.status;
		start = run.end;
	}
	return 0;
}

/*
 * Records that send_run may take: plain ones for the -t topic with a key
 * (librdkafka's partitioners may only look at partition availability for
 * empty keys, from inside librdkafka) that fit message.max.bytes (a record
 * that would fail goes alone, so --on-error applies to it).
 */
static bool
batch_ok(const struct pub *p, const struct rec *r)
{
	return r->kind == REC_RECORD && r->topic == NONE &&
	       (r->partition != RD_KAFKA_PARTITION_UA || (r->key != NONE && r->keylen > 0)) &&
	       r->vallen + (r->key != NONE ? r->keylen : 0) + 512 < p->max_msg_size;
}

/*
 * send_run partitions with the count it knows; look again now and then so
 * that partitions added during a long run are used, as librdkafka would.
 */
static void
refresh_partitions(struct pub *p)
{
	int64_t now = dp_time_mono_ms();
	struct dp_buf err = DP_BUF_INIT;
	int n = 0;

	if (!p->rkt || now - p->partitions_checked < 10000)
		return;
	p->partitions_checked = now;
	if (dp_kafka_probe(p->rk, p->topic, 2000, &n, &err) == 0 && n > p->partitions) {
		/* Every lane must know a new partition before records go to it. */
		for (int i = 1; i < p->nlanes; i++) {
			int m = 0;
			if (dp_kafka_probe(p->lane_rk[i], p->topic, 2000, &m, &err) != 0 || m < n)
				n = 0;
		}
		if (n > 0)
			p->partitions = n;
	}
	dp_buf_free(&err);
}

/* Serve delivery reports and pass acknowledgements on. */
static void
serve(struct pub *p)
{
	wait_lane(p, p->rk, 0);
	if (dp_out_flush(p->out) < 0 && errno != EPIPE && !p->status)
		p->status = DP_EX_IOERR;
	dp_progress_tick(&p->prog, "lines", p->lines, NULL, false);
}

static void
release(struct pub *p, struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->recs[i].hdrs) {
			rd_kafka_headers_destroy(b->recs[i].hdrs);
			b->recs[i].hdrs = NULL;
		}
	b->n = 0;
	pthread_mutex_lock(&p->mu);
	p->free[p->nfree++] = b;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* The publishing state: produce batches until the input ends or a stop. */
static int
run_lines(struct pub *p)
{
	int ev = 0;
	bool quiet = false;     /* the last batch ended because input paused */

	while (!ev) {
		struct timespec ts;
		struct batch *b = NULL;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&p->mu);
		if (p->nfull == 0 && (quiet || atomic_load(&p->waiting)) && outq_len(p) > 0) {
			/*
			 * The writer is quiet: send what waits for linger.ms
			 * now.  flush() returns once all is delivered, and
			 * looks for new input again after 10 ms at most.
			 */
			pthread_mutex_unlock(&p->mu);
			flush_lanes(p, 10);
			serve(p);
			continue;
		}
		if (p->nfull == 0)
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		if (p->nfull > 0) {
			b = p->full[p->full_head];
			p->full_head = (p->full_head + 1) % NBATCH;
			p->nfull--;
		}
		pthread_mutex_unlock(&p->mu);
		if (!b) {
			serve(p);       /* input is quiet */
			continue;
		}
		refresh_partitions(p);
		bool batchable = p->rkt && p->partitioner && p->partitions > 0 &&
		                 p->partitions <= MAX_BUCKETS && !p->nhdrs && !p->ts_expr &&
		                 !p->envelope;
		for (size_t i = 0; i < b->n && !ev;) {
			int st;
			size_t j = i;
			if (batchable)
				while (j < b->n && batch_ok(p, &b->recs[j]))
					j++;
			if (j > i) {
				st = send_run(p, b, i, j);
				i = j;
			} else {
				st = send_rec(p, b, &b->recs[i]);
				i++;
			}
			if (st) {
				p->status = st;
				ev = st == DP_EX_DATAERR ? E_BAD_LINE : E_FATAL;
			}
		}
		if (!ev && b->end)
			ev = b->end;
		quiet = b->quiet;
		if (ev)
			atomic_store(&p->halt, 1);  /* before the batch frees up */
		release(p, b);
		wait_lane(p, p->rk, 0);
		dp_progress_tick(&p->prog, "lines", p->lines, NULL, false);
	}
	/* Stop the reader (it may be waiting for input or for a batch). */
	atomic_store(&p->halt, 1);
	pthread_mutex_lock(&p->mu);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return ev;
}

/* The draining state: wait for every outstanding delivery report. */
static int
drain(struct pub *p)
{
	int64_t deadline = dp_time_mono_ms() + p->timeout_ms;

	/*
	 * Deliveries may legitimately take a while on a busy cluster, so the
	 * deadline only applies while no progress is made.
	 */
	while (outq_len(p) > 0) {
		uint64_t before = p->delivered + p->lost;
		/* flush, not poll: the last batches need not wait for linger.ms */
		flush_lanes(p, 100);
		if (p->delivered + p->lost != before)
			deadline = dp_time_mono_ms() + p->timeout_ms;
		if (dp_time_mono_ms() > deadline) {
			/* No progress for --timeout: give up only if no broker answers. */
			struct dp_buf err = DP_BUF_INIT;
			int down = dp_kafka_probe(p->rk, NULL, 2000, NULL, &err) != 0;
			dp_buf_free(&err);
			if (down)
				break;
			deadline = dp_time_mono_ms() + p->timeout_ms;
		}
		if (p->progress)
			dp_progress_tick(&p->prog, "lines", p->lines, NULL, false);
	}
	/* Purge whatever is left so its reports arrive (as failures). */
	for (int i = 0; i < p->nlanes; i++)
		rd_kafka_purge(p->lane_rk[i], RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	wait_lane(p, p->rk, 0);
	flush_lanes(p, 1000);
	return p->lost || p->produced != p->delivered + p->lost ? E_LOST : E_DRAINED;
}

/*
 * The partitioner function that librdkafka would use for this
 * configuration, so that records partitioned by send_run land where a
 * per-record produce would put them.  NULL for one we do not know.
 */
static int32_t (*pick_partitioner(rd_kafka_conf_t *conf))(const rd_kafka_topic_t *,
                                                         const void *, size_t, int32_t,
                                                         void *, void *)
{
	static const struct {
		const char *name;
		int32_t (*fn)(const rd_kafka_topic_t *, const void *, size_t, int32_t,
		              void *, void *);
	} known[] = {
		{ "consistent_random", rd_kafka_msg_partitioner_consistent_random },
		{ "consistent", rd_kafka_msg_partitioner_consistent },
		{ "murmur2", rd_kafka_msg_partitioner_murmur2 },
		{ "murmur2_random", rd_kafka_msg_partitioner_murmur2_random },
		{ "fnv1a", rd_kafka_msg_partitioner_fnv1a },
		{ "fnv1a_random", rd_kafka_msg_partitioner_fnv1a_random },
	};
	rd_kafka_topic_conf_t *tconf = rd_kafka_conf_get_default_topic_conf(conf);
	char name[64] = "consistent_random";
	size_t len = sizeof(name);

	if (tconf && rd_kafka_topic_conf_get(tconf, "partitioner", name, &len) != RD_KAFKA_CONF_OK)
		return NULL;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(name, known[i].name) == 0)
			return known[i].fn;
	return NULL;
}

static bool
conf_is(rd_kafka_conf_t *conf, const char *name, const char *want)
{
	char v[64];
	size_t len = sizeof(v);

	return rd_kafka_conf_get(conf, name, v, &len) == RD_KAFKA_CONF_OK && strcmp(v, want) == 0;
}

static uint64_t
conf_u64(rd_kafka_conf_t *conf, const char *name, uint64_t dflt)
{
	char v[64];
	size_t len = sizeof(v);
	uint64_t n;

	if (rd_kafka_conf_get(conf, name, v, &len) != RD_KAFKA_CONF_OK ||
	    dp_parse_u64(name, v, 1, UINT32_MAX, &n) != 0)
		return dflt;
	return n;
}

/*
 * A producer with dp-publish's defaults and the user's configuration.
 * The first one also decides the settings that follow from it.
 */
static int
new_producer(struct pub *p, bool first, rd_kafka_t **rkp)
{
	struct dp_buf err = DP_BUF_INIT;
	char errstr[512];
	int status;
	/*
	 * Safe defaults that -F and -X may override: no duplicates on retry,
	 * every in-sync replica acknowledges, and a typo in a topic name does
	 * not create a topic.
	 */
	static const struct dp_kv defaults[] = {
		{ "enable.idempotence", "true" },
		{ "acks", "all" },
		{ "allow.auto.create.topics", "false" },
		/* 40k queued records keep RSS under 30 MB at full speed. */
		{ "queue.buffering.max.messages", "40000" },
		/*
		 * Batches are sent when full, and whatever is left as soon
		 * as the input pauses (see run_lines), so linger.ms only
		 * bounds the wait of a partition that fills slowly in a
		 * busy stream.  Longer than a loaded broker takes to answer,
		 * it keeps librdkafka from polling in a loop while a full
		 * batch waits behind the request in flight (struct window).
		 */
		{ "linger.ms", "100" },
	};
	rd_kafka_conf_t *conf = dp_kafka_conf_new(&p->common, defaults,
	                                          sizeof(defaults) / sizeof(defaults[0]),
	                                          &err, &status);

	if (!conf)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, p);
	if (!first)
		goto create;
	p->partitioner = pick_partitioner(conf);
	p->max_msg_size = conf_u64(conf, "message.max.bytes", 1000000);
	if (conf_is(conf, "enable.idempotence", "true")) {
		uint64_t msgs = conf_u64(conf, "batch.num.messages", 10000);
		uint64_t bytes = conf_u64(conf, "batch.size", 1000000);
		p->win = calloc(MAX_BUCKETS, sizeof(*p->win));
		if (!p->win) {
			rd_kafka_conf_destroy(conf);
			dp_err("cannot allocate the delivery window: %s", strerror(errno));
			return DP_EX_SOFTWARE;
		}
		p->win_msgs = 2 * msgs + msgs / 2;
		p->win_bytes = 2 * bytes + bytes / 2;
	}
create:
	*rkp = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!*rkp) {
		dp_err("cannot create kafka producer: %s", errstr);
		dp_buf_free(&err);
		return DP_EX_CONFIG;
	}
	dp_buf_free(&err);
	return 0;
fail:
	dp_err("%s", err.data);
	dp_buf_free(&err);
	return status;
}

static int
open_kafka(struct pub *p)
{
	int st = new_producer(p, true, &p->rk);

	p->lane_rk[0] = p->rk;
	p->nlanes = 1;
	return st;
}

/*
 * More lanes (see struct pub) where they pay: an idempotent producer, a
 * -t topic with more than one partition, and records that pick their
 * partition by key.  Without them everything stays on lane 0.
 */
static void
open_lanes(struct pub *p)
{
	int want = p->partitions < MAX_LANES ? p->partitions : MAX_LANES;

	if (!p->win || !p->rkt || !p->partitioner || p->partition != RD_KAFKA_PARTITION_UA ||
	    !(p->key_expr || p->envelope) || want < 2)
		return;
	while (p->nlanes < want) {
		rd_kafka_t *rk;
		if (new_producer(p, false, &rk) != 0)
			break;          /* the lanes so far will do */
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, p->topic, NULL);
		if (!rkt) {
			rd_kafka_destroy(rk);
			break;
		}
		p->lane_rk[p->nlanes] = rk;
		p->lane_rkt[p->nlanes++] = rkt;
	}
	dp_debug("%d producer%s for '%s'", p->nlanes, p->nlanes == 1 ? "" : "s", p->topic);
}

/* The connecting state: prove the cluster and the -t topic are there. */
static int
connect_cluster(struct pub *p)
{
	struct dp_buf err = DP_BUF_INIT;
	int partitions = 0;
	int st = p->topic ? check_topic(p, p->topic, &err)
	                  : dp_kafka_probe(p->rk, NULL, (int)p->timeout_ms, NULL, &err);

	if (st == 0 && p->topic)
		dp_kafka_probe(p->rk, p->topic, (int)p->timeout_ms, &partitions, &err);
	if (st == 0 && p->dlq_topic)
		st = check_topic(p, p->dlq_topic, &err);
	if (st) {
		dp_err("%s (brokers %s)", err.data, p->common.brokers);
		p->status = st;
		dp_buf_free(&err);
		return E_UNREACHABLE;
	}
	dp_buf_free(&err);
	if (p->topic) {
		if (p->partition != RD_KAFKA_PARTITION_UA && partitions > 0 &&
		    p->partition >= partitions) {
			dp_err("topic '%s' has %d partitions: no partition %d", p->topic,
			       partitions, (int)p->partition);
			p->status = DP_EX_USAGE;
			return E_UNREACHABLE;
		}
		p->rkt = rd_kafka_topic_new(p->rk, p->topic, NULL);
		p->lane_rkt[0] = p->rkt;
		p->partitions = partitions;
		p->partitions_checked = dp_time_mono_ms();
		open_lanes(p);
	}
	return E_CONNECTED;
}

static void
cleanup(struct pub *p)
{
	for (size_t i = 0; i < NBATCH; i++) {
		if (!p->batches[i])
			continue;
		for (size_t k = 0; k < p->batches[i]->n; k++)
			if (p->batches[i]->recs[k].hdrs)
				rd_kafka_headers_destroy(p->batches[i]->recs[k].hdrs);
		dp_buf_free(&p->batches[i]->arena);
		free(p->batches[i]->lines);
		free(p->batches[i]);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	for (int i = 1; i < p->nlanes; i++) {
		rd_kafka_topic_destroy(p->lane_rkt[i]);
		rd_kafka_destroy(p->lane_rk[i]);
	}
	if (p->rkt)
		rd_kafka_topic_destroy(p->rkt);
	for (size_t i = 0; i < p->nhandles; i++)
		rd_kafka_topic_destroy(p->handles[i]);
	free(p->handles);
	if (p->rk)
		rd_kafka_destroy(p->rk);
	free(p->win);
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
	dp_cli_free(&p->common);
}

int
main(int argc, char **argv)
{
	struct pub p;
	int ev, status;

	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	dp_log_init("dp-publish");
	dp_cli_init(&p.common);
	p.partition = RD_KAFKA_PARTITION_UA;
	p.timeout_ms = 10000;

	/* 1. options */
	if (parse_options(&p, argc, argv) < 0 || (!p.common.help && !p.common.version &&
	                                          !p.common.dot && validate(&p) < 0)) {
		fputs("Try 'dp-publish --help' for more information.\n", stderr);
		cleanup(&p);
		return DP_EX_USAGE;
	}
	if ((status = dp_cli_answer(&p.common, usage, &machine)) >= 0) {
		cleanup(&p);
		return status;
	}

	/* 2. resources */
	for (size_t i = 0; i < p.common.nprops; i++)
		if (!strcmp(p.common.props[i].key, "allow.auto.create.topics"))
			p.auto_create = !strcmp(p.common.props[i].value, "true");
	dp_sig_install();
	dp_fsm_init(&p.fsm, &machine, p.common.trace_states);
	dp_progress_init(&p.prog, p.progress);
	/* The JSON scanner checks UTF-8 and NUL bytes itself, in one pass. */
	p.in = dp_lines_new(STDIN_FILENO, 0);
	p.out = dp_out_new(STDOUT_FILENO, 64 * 1024);
	if (!p.in || !p.out) {
		dp_err("out of memory");
		cleanup(&p);
		return DP_EX_SOFTWARE;
	}
	if ((status = open_kafka(&p)) != 0) {
		dp_out_free(p.out);
		cleanup(&p);
		return status;
	}

	/* 3. the machine */
	dp_fsm_step(&p.fsm, E_START, &p);
	ev = connect_cluster(&p);
	dp_fsm_step(&p.fsm, ev, &p);
	if (p.fsm.state == S_PUBLISHING) {
		if (start_reader(&p) < 0) {
			dp_err("cannot start the reader thread: %s", strerror(errno));
			p.status = DP_EX_SOFTWARE;
			ev = E_FATAL;
		} else {
			ev = run_lines(&p);
			pthread_join(p.reader, NULL);
			p.reader_started = false;
		}
		dp_fsm_step(&p.fsm, ev, &p);
		ev = drain(&p);
		dp_fsm_step(&p.fsm, ev, &p);
	}

	/* 4. flush and report */
	if (p.progress)
		dp_progress_tick(&p.prog, "lines", p.lines, NULL, true);
	if (p.bad && p.on_error != ON_ERROR_FAIL)
		dp_warn("%llu bad line%s %s", (unsigned long long)p.bad, p.bad == 1 ? "" : "s",
		        p.on_error == ON_ERROR_SKIP ? "skipped" : "sent to the dead-letter topic");
	status = p.status;
	if (p.lost || p.produced != p.delivered + p.lost) {
		uint64_t lost = p.produced - p.delivered;
		dp_err("%llu of %llu record%s not delivered", (unsigned long long)lost,
		       (unsigned long long)p.produced, p.produced == 1 ? "" : "s");
		status = DP_EX_TEMPFAIL;
	} else if (dp_sig_stop && !status) {
		dp_info("stopped by signal after %llu lines; all delivered",
		        (unsigned long long)p.lines);
	}
	dp_info("%llu lines, %llu delivered, %llu bad", (unsigned long long)p.lines,
	        (unsigned long long)p.delivered, (unsigned long long)p.bad);
	if (dp_out_free(p.out) < 0 && errno != EPIPE && !status) {
		dp_err("cannot write to stdout: %s", strerror(errno));
		status = DP_EX_IOERR;
	}
	if (dp_out_close_stdout() < 0 && errno != EPIPE && !status)
		status = DP_EX_IOERR;
	cleanup(&p);
	return status;
}
