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
 * to the producer engine (lib/kafka/producer.h), which alone talks to Kafka,
 * and serves delivery reports.  On two cores this overlaps the JSON work
 * with the producer's, which is what lets dp-publish keep up with kcat
 * while it still checks every line.
 *
 * With --follow-registry it is the seed's producer of dynamic topics:
 * the main thread follows the registry (dyn/registry.h) and hands the active
 * routes to the reader as immutable lists (dyn/route.h's dp_route_list,
 * swapped through one atomic pointer); the reader, which alone compiles
 * and evaluates the filters (libjq state never leaves it), adds the
 * dynamic topics each record goes to.  A record is delivered only when
 * every copy is.  With --request-topics a --topic-expr topic that does
 * not exist is asked of the coordinator, and its records are held (the
 * main thread's, bounded) until the registry answers.
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

#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/out.h"
#include "core/progress.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "dyn/registry.h"
#include "dyn/route.h"
#include "dyn/spec.h"
#include "jq/expr.h"
#include "json/envelope.h"
#include "json/scan.h"
#include "json/write.h"
#include "kafka/client.h"
#include "kafka/onerror.h"
#include "kafka/producer.h"
#include "publish/feed.h"

/* Lines travel from the reader thread in batches of this size. */
#define BATCH_RECS 1024
#define BATCH_BYTES (1024 * 1024)

/* A copy's tag: the line number with this bit (tags have 62 bits, lines far fewer). */
#define COPY_TAG (UINT64_C(1) << 61)

/* --hold-bytes: records waiting for a requested topic, at most (then reading waits). */
#define HOLD_DEFAULT (32u << 20)
#define HOLD_DEFAULT_ARG "32M"

/* How often the main thread looks at the registry while it publishes. */
#define REGISTRY_POLL_MS 100

struct held;

/* A copy not delivered: its line, and its topic (an index into copytopics). */
struct lost_copy {
	uint64_t line;
	size_t topic;
};

/* A topic --request-topics asked the coordinator for, and its fate. */
enum req_state { RQ_PENDING, RQ_ACTIVE, RQ_REJECTED, RQ_TIMEOUT };
struct req_topic {
	char *name;
	enum req_state state;
	char request_id[33];
	int64_t sent_ms;                /* monotonic */
	char *reason;                   /* RQ_REJECTED: why, said with each of its lines */
	struct held *first, *last;      /* its records, in line order */
};

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
	bool follow;                    /* --follow-registry */
	bool request_topics;            /* --request-topics */
	uint64_t hold_max;              /* --hold-bytes */
	const char *registry;           /* --registry */
	const char *requests;           /* --requests */

	/* resources */
	struct dp_producer *prod;
	struct dp_lines *in;
	struct dp_feed *feed;           /* the reader thread (lib/publish/feed.h) */
	char **known;                   /* topics proven to exist (reader thread) */
	size_t nknown;
	char **missing;                 /* --request-topics: topics found missing (reader) */
	size_t nmissing;
	struct dp_registry *reg;        /* the main thread's */

	/* routes: the main thread makes lists, the reader takes the newest */
	_Atomic(struct dp_route_list *) routes_next;
	uint64_t routes_version;
	size_t nroutes;                 /* active routes in the last list (main) */
	bool routes_dirty;              /* the registry changed since (main) */
	int64_t reg_polled;             /* monotonic ms (main) */
	struct dp_route *router;        /* the reader's */
	size_t *copyscratch;            /* the reader's: a record's copies */
	size_t ncopy, copycap;

	/* --request-topics (main thread) */
	struct req_topic *reqs;
	size_t nreqs;
	bool requests_ok;               /* the requests topic exists */
	uint64_t held_bytes;
	size_t nheld;
	int ended;                      /* the event that ended the input, while held records wait */
	bool feed_stuck;                /* the reader thread is in jq for good: left behind */
	uint64_t taken;                 /* the last line of the batches taken from the reader */
	uint64_t stuck_line;            /* after a signal: the line the reader's jq is on */
	int64_t stuck_ms;               /* monotonic ms it was first seen there */
	bool create_failed;             /* a request was refused or not answered */

	/* the reader thread's scratch, reused */
	struct dp_buf key, tmp, err, topicbuf;
	struct hdr_at *hscratch;        /* the headers of the line being prepared */
	size_t nhscratch, hscratch_cap;
	/* the main thread's */
	struct dp_buf ack, perr;
	struct dp_producer_rec *out;    /* a batch, as the producer takes it */
	size_t out_cap;
	bool *refused;                  /* per record of a batch: refused for itself */
	struct dp_producer_header *hv;  /* its headers */
	size_t hv_cap;

	/* counters */
	uint64_t failed;                /* delivery reports with an error */
	uint64_t records;               /* records handed over (lines and dead letters) */
	uint64_t copies;                /* copies into dynamic topics handed over */
	uint64_t excused;               /* copies into topics retired since: not counted */
	uint64_t delivered;             /* records acknowledged (reports) */
	uint64_t undelivered;           /* lines read and not delivered (act_drain) */
	uint64_t copies_delivered;      /* copies acknowledged */
	uint64_t *lost_lines;           /* lines with an undelivered copy (or record) */
	size_t nlost, caplost;
	uint64_t lost_overflow;         /* ... that found no memory to be listed */
	struct lost_copy *lostcopies;   /* copies not delivered, judged at the end */
	size_t nlostcopies, caplostcopies;
	char **copytopics;              /* their topics */
	size_t ncopytopics;
	int status;                     /* why the input ended early, 0 if it did not */
	struct dp_progress prog;
	struct dp_fsm fsm;
};

/* ---- state machine ---------------------------------------------------- */

/*
 * The seed's producer: publishingFixed while no dynamic topic takes
 * copies of what it publishes, publishingDynamic while some do (routes
 * come and go with the registry), creatingTopic while a requested topic
 * is not answered yet (records of other topics go on meanwhile), and
 * error when a request failed.  The per-record loop lives inside the
 * publishing actions (run_lines).
 */
enum state { S_IDLE, S_CONNECTING, S_FIXED, S_DYNAMIC, S_CREATING, S_ERROR, S_DRAINING,
             S_DONE, S_FAILED, NSTATES };
enum event { E_START, E_CONNECTED, E_UNREACHABLE, E_REFUSED, E_BAD_CONFIG, E_STOP, E_EOF,
             E_BAD_LINE, E_FATAL, E_DRAINED, E_LOST, E_ABORTED, E_PUBLISH_DYNAMIC,
             E_PUBLISH_FIXED, E_CREATE_TOPIC, E_CREATE_SUCCESS, E_CREATE_FAILURE, E_RESET,
             NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "connecting", "publishingFixed", "publishingDynamic", "creatingTopic", "error",
	"draining", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "connected", "unreachable", "refused", "bad_config", "signal", "eof",
	"bad_line", "fatal", "drained", "lost", "aborted", "PUBLISH_DYNAMIC", "PUBLISH_FIXED",
	"CREATE_TOPIC", "CREATE_TOPIC_SUCCESS", "CREATE_TOPIC_FAILURE", "RESET",
};

static int act_connect(struct dp_fsm *m, void *ctx);
static int act_publish_fixed(struct dp_fsm *m, void *ctx);
static int act_publish_dynamic(struct dp_fsm *m, void *ctx);
static int act_create_topic(struct dp_fsm *m, void *ctx);
static int act_error(struct dp_fsm *m, void *ctx);
static int act_drain(struct dp_fsm *m, void *ctx);

/*
 * done exits 0: every record read was delivered (after a signal too).
 * failed exits with the reason the action recorded: 65 a bad line under
 * --on-error fail, 69 no broker, no topic or no coordinator, 75 records
 * not delivered, 64/66/78 a bad -p, -F or -X, 74 stdin or stdout failed.
 */
static const struct dp_fsm_row rows[] = {
	/* state        event               next         action */
	{ S_IDLE,       E_START,            S_CONNECTING, act_connect },
	{ S_CONNECTING, E_CONNECTED,        S_FIXED,      act_publish_fixed },
	{ S_CONNECTING, E_UNREACHABLE,      S_FAILED,     NULL },
	{ S_CONNECTING, E_REFUSED,          S_FAILED,     NULL },
	{ S_CONNECTING, E_BAD_CONFIG,       S_FAILED,     NULL },
	{ S_CONNECTING, E_STOP,             S_DONE,       NULL },
	{ S_FIXED,      E_PUBLISH_DYNAMIC,  S_DYNAMIC,    act_publish_dynamic },
	{ S_FIXED,      E_CREATE_TOPIC,     S_CREATING,   act_create_topic },
	{ S_FIXED,      E_EOF,              S_DRAINING,   act_drain },
	{ S_FIXED,      E_STOP,             S_DRAINING,   act_drain },
	{ S_FIXED,      E_BAD_LINE,         S_DRAINING,   act_drain },
	{ S_FIXED,      E_FATAL,            S_DRAINING,   act_drain },
	{ S_DYNAMIC,    E_PUBLISH_FIXED,    S_FIXED,      act_publish_fixed },
	{ S_DYNAMIC,    E_CREATE_TOPIC,     S_CREATING,   act_create_topic },
	{ S_DYNAMIC,    E_EOF,              S_DRAINING,   act_drain },
	{ S_DYNAMIC,    E_STOP,             S_DRAINING,   act_drain },
	{ S_DYNAMIC,    E_BAD_LINE,         S_DRAINING,   act_drain },
	{ S_DYNAMIC,    E_FATAL,            S_DRAINING,   act_drain },
	{ S_CREATING,   E_CREATE_SUCCESS,   S_FIXED,      act_publish_fixed },
	{ S_CREATING,   E_CREATE_FAILURE,   S_ERROR,      act_error },
	{ S_CREATING,   E_STOP,             S_DRAINING,   act_drain },
	{ S_CREATING,   E_FATAL,            S_DRAINING,   act_drain },
	{ S_ERROR,      E_RESET,            S_FIXED,      act_publish_fixed },
	{ S_ERROR,      E_BAD_LINE,         S_DRAINING,   act_drain },
	{ S_ERROR,      E_FATAL,            S_DRAINING,   act_drain },
	{ S_DRAINING,   E_DRAINED,          S_DONE,       NULL },
	{ S_DRAINING,   E_LOST,             S_FAILED,     NULL },
	{ S_DRAINING,   E_ABORTED,          S_FAILED,     NULL },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-publish", state_names, NSTATES, event_names, NEVENTS,
	rows, DP_FSM_COUNT(rows), S_IDLE, finals, DP_FSM_COUNT(finals),
};

/* ---- options ---------------------------------------------------------- */

enum {
	OPT_TOPIC_EXPR = DP_OPT_CMD, OPT_TIMESTAMP, OPT_ENVELOPE, OPT_ON_ERROR,
	OPT_REPORT, OPT_RAW, OPT_PROGRESS, OPT_MAX_LINE, OPT_FOLLOW, OPT_REQUEST_TOPICS,
	OPT_HOLD, OPT_REGISTRY, OPT_REQUESTS,
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
	{ "follow-registry", no_argument,      NULL, OPT_FOLLOW },
	{ "request-topics", no_argument,       NULL, OPT_REQUEST_TOPICS },
	{ "hold-bytes",     required_argument, NULL, OPT_HOLD },
	{ "registry",       required_argument, NULL, OPT_REGISTRY },
	{ "requests",       required_argument, NULL, OPT_REQUESTS },
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
	      "Dynamic topics (see dp-coord(1)):\n"
	      "      --follow-registry   also copy each record into every active dynamic topic\n"
	      "                          whose source is its topic and whose filter it matches\n"
	      "      --request-topics    a --topic-expr topic that does not exist is requested\n"
	      "                          from the coordinator; its records wait for it\n"
	      "      --hold-bytes N      records waiting for requested topics, at most; then\n"
	      "                          reading waits (default " HOLD_DEFAULT_ARG "; K, M, G)\n"
	      "      --registry TOPIC    the registry (default $DP_REGISTRY, else dp.registry)\n"
	      "      --requests TOPIC    the requests (default $DP_REQUESTS, else dp.requests)\n"
	      "\n"
	      "Delivery:\n"
	      "      --report            print one NDJSON acknowledgement per record on stdout\n"
	      "      --progress          print rate and totals on stderr every second\n", fp);
	dp_cli_help_common(fp, true);
	fputs("\nDefaults that -X overrides: enable.idempotence=true acks=all linger.ms=100\n"
	      "allow.auto.create.topics=false; a pause in the input sends what waits.\n", fp);
	fputs("\nExit status: 0 all of stdin read and delivered, 64 usage, 65 bad line\n"
	      "(--on-error fail), 66 -F unreadable or stdin closed, 69 cluster or coordinator\n"
	      "unavailable, 74 I/O error, 75 records not delivered (a record counts once all\n"
	      "its copies are), 77 not authorized, 78 bad configuration, 81 no such topic,\n"
	      "130/143 SIGINT/SIGTERM before the end of stdin.  See dp-publish(1).\n", fp);
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
	const char *e;
	int opt;
	uint64_t n;

	p->registry = (e = getenv("DP_REGISTRY")) && *e ? e : DP_REGISTRY_DEFAULT;
	p->requests = (e = getenv("DP_REQUESTS")) && *e ? e : DP_REQUESTS_DEFAULT;
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
		case OPT_FOLLOW:
			p->follow = true;
			break;
		case OPT_REQUEST_TOPICS:
			p->request_topics = true;
			break;
		case OPT_HOLD:
			if (dp_parse_size("--hold-bytes", optarg, 1, (uint64_t)1 << 40, "1024G",
			                  &p->hold_max) < 0)
				return -1;
			break;
		case OPT_REGISTRY:
			p->registry = optarg;
			break;
		case OPT_REQUESTS:
			p->requests = optarg;
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
	if (p->follow && p->raw) {
		dp_err("--raw lines are not JSON: no filter can route them (--follow-registry)");
		return -1;
	}
	if (p->request_topics && (!p->topic_expr || p->envelope)) {
		dp_err("--request-topics asks for the topics --topic-expr names on JSON lines: "
		       "it needs --topic-expr, and not --envelope");
		return -1;
	}
	return 0;
}

/* ---- delivery reports (main thread) ------------------------------------ */

static void
report_line(struct pub *p, const struct dp_producer_report *r, uint64_t line)
{
	struct dp_buf *b = &p->ack;
	struct dp_jw w;

	dp_buf_reset(b);
	dp_jw_init(&w, b);
	dp_jw_obj(&w);
	dp_jw_kuint(&w, "line", line);
	dp_jw_kstr(&w, "topic", r->topic);
	if (r->err) {
		dp_jw_kstr(&w, "error", rd_kafka_err2str(r->err));
	} else {
		dp_jw_kint(&w, "partition", r->partition);
		dp_jw_kint(&w, "offset", r->offset);
	}
	dp_jw_end(&w);
	if (dp_jw_finish(&w) < 0 || dp_buf_addch(b, '\n') < 0) {
		dp_err("line %llu: cannot report: out of memory", (unsigned long long)line);
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

/* A line one of whose records (or copies) was not delivered. */
static void
lost_line(struct pub *p, uint64_t line)
{
	if (p->nlost == p->caplost) {
		size_t cap = p->caplost ? 2 * p->caplost : 64;
		uint64_t *v = realloc(p->lost_lines, cap * sizeof(*v));
		if (!v) {
			/* Counted all the same: the total may count a line twice. */
			p->lost_overflow++;
			return;
		}
		p->lost_lines = v;
		p->caplost = cap;
	}
	p->lost_lines[p->nlost++] = line;
}

/*
 * A copy into a dynamic topic that was not delivered: decided at the
 * end, once the registry is read to its end, whether its topic was
 * retired meanwhile (then it no longer wanted records).
 */
static void
lost_copy(struct pub *p, uint64_t line, const char *topic)
{
	size_t t;

	for (t = 0; t < p->ncopytopics && strcmp(p->copytopics[t], topic) != 0; t++)
		;
	if (t == p->ncopytopics) {
		char **v = realloc(p->copytopics, (t + 1) * sizeof(*v));
		if (v)
			p->copytopics = v;
		if (!v || !(v[t] = strdup(topic))) {
			lost_line(p, line);
			return;
		}
		p->ncopytopics++;
	}
	if (p->nlostcopies == p->caplostcopies) {
		size_t cap = p->caplostcopies ? 2 * p->caplostcopies : 64;
		struct lost_copy *v = realloc(p->lostcopies, cap * sizeof(*v));
		if (!v) {
			lost_line(p, line);
			return;
		}
		p->lostcopies = v;
		p->caplostcopies = cap;
	}
	p->lostcopies[p->nlostcopies++] = (struct lost_copy){ line, t };
}

static void
on_report(void *arg, const struct dp_producer_report *r)
{
	struct pub *p = arg;
	uint64_t line = r->tag & ~COPY_TAG;

	if (!r->err)
		++*(r->tag & COPY_TAG ? &p->copies_delivered : &p->delivered);
	if (r->err && (r->tag & COPY_TAG)) {
		dp_info("line %llu: copy not delivered to '%s': %s", (unsigned long long)line,
		        r->topic, rd_kafka_err2str(r->err));
		lost_copy(p, line, r->topic);
	} else if (r->err) {
		/* The first few failures are named; the total is always given. */
		if (++p->failed <= 5)
			dp_err("line %llu: not delivered to '%s': %s", (unsigned long long)line,
			       r->topic, rd_kafka_err2str(r->err));
		lost_line(p, line);
	}
	if (p->report)
		report_line(p, r, line);
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
	bool unverified;            /* --request-topics: its topic did not exist */
	int64_t ts;
	size_t hdr, nhdr;           /* nhdr struct hdr_at in the arena at hdr */
	size_t copies, ncopies;     /* ncopies arena offsets (size_t) of dynamic topic names */
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

/* The record's value is its line: kept in place, not copied (publish/feed.h). */
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
remember(char ***v, size_t *n, const char *name, struct dp_buf *why)
{
	char **k = realloc(*v, (*n + 1) * sizeof(*k));

	if (!k || !(k[*n] = strdup(name))) {
		if (k)
			*v = k;
		dp_buf_msgf(why, "out of memory");
		return DP_EX_SOFTWARE;
	}
	*v = k;
	(*n)++;
	return 0;
}

/*
 * 0 when the topic exists; with --request-topics also when it does not,
 * with *missing set (the main thread asks the coordinator for it).
 */
static int
check_topic(struct pub *p, const char *name, bool *missing, struct dp_buf *why)
{
	*missing = false;
	for (size_t i = 0; i < p->nknown; i++)
		if (strcmp(p->known[i], name) == 0)
			return 0;
	for (size_t i = 0; i < p->nmissing; i++)
		if (strcmp(p->missing[i], name) == 0) {
			*missing = true;
			return 0;
		}
	size_t mark = why->len;
	/*
	 * With --request-topics a topic thought missing is only asked for:
	 * the coordinator takes one that exists after all.  One short look.
	 */
	int st = dp_producer_check_topic(p->prod, name, p->request_topics ? 500
	                                               : DP_PRODUCER_FOREVER, why);
	if (st == DP_EX_UNAVAILABLE && p->request_topics) {
		/* No answer that soon: a busy cluster gets --timeout, as always. */
		dp_buf_truncate(why, mark);
		st = dp_producer_check_topic(p->prod, name, DP_PRODUCER_FOREVER, why);
	}
	if (st == DP_EX_NOTFOUND && p->request_topics) {
		dp_buf_truncate(why, mark);
		*missing = true;
		return remember(&p->missing, &p->nmissing, name, why);
	}
	if (st == DP_KAFKA_STOPPED)
		st = PREP_STOP;
	if (st)
		return st;
	return remember(&p->known, &p->nknown, name, why);
}

/* dp_route_match's callback: one more dynamic topic for the record in hand. */
struct copy_ctx {
	struct pub *p;
	struct dp_feed_batch *b;
};

static int
add_copy(void *arg, const char *topic)
{
	struct copy_ctx *c = arg;
	struct pub *p = c->p;

	if (p->ncopy == p->copycap) {
		size_t cap = p->copycap ? 2 * p->copycap : 16;
		size_t *v = realloc(p->copyscratch, cap * sizeof(*v));
		if (!v)
			return -1;
		p->copyscratch = v;
		p->copycap = cap;
	}
	p->copyscratch[p->ncopy++] = dp_feed_add(c->b, topic, strlen(topic));
	return 0;
}

/*
 * --follow-registry: the dynamic topics that take a copy of the record
 * published to source, whose JSON is json[0..n).  0, or -1 (memory).
 */
static int
route_copies(struct pub *p, struct dp_feed_batch *b, struct rec *r, const char *source,
             const char *json, size_t n)
{
	struct copy_ctx c = { p, b };

	if (!p->router || !dp_route_count(p->router))
		return 0;
	p->ncopy = 0;
	if (dp_route_match(p->router, source, json, n, r->lineno, add_copy, &c) < 0)
		return -1;
	if (p->ncopy) {
		r->copies = dp_feed_add(b, p->copyscratch, p->ncopy * sizeof(*p->copyscratch));
		r->ncopies = p->ncopy;
	}
	return 0;
}

/* The reader takes the newest routes the main thread made, if any. */
static void
take_routes(struct pub *p, struct dp_feed_batch *b)
{
	if (!atomic_load_explicit(&p->routes_next, memory_order_relaxed))
		return;
	struct dp_route_list *l = atomic_exchange(&p->routes_next, NULL);
	if (l && dp_route_set(p->router, l->v, l->n) < 0)
		b->oom = true;
	free(l);
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
		            t == DP_JSON_INVALID ? "no result" :
		            t == DP_JSON_STRING ? "an empty string" : dp_buf_str(&p->topicbuf));
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
		if ((rc = check_topic(p, p->topicbuf.data, &r->unverified, &p->err)))
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
	if (route_copies(p, b, r, p->topic_expr ? p->topicbuf.data : p->topic, line, len) < 0) {
		dp_buf_msgf(&p->err, "out of memory");
		rc = DP_EX_SOFTWARE;
		goto out;
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
		bool missing;
		if ((rc = check_topic(p, topic, &missing, &p->err)))
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
	/* Filters see the value, when it is JSON. */
	const char *why;
	size_t off;
	if (p->router && env.value &&
	    dp_json_check(env.value, env.value_len, &why, &off) != DP_JSON_INVALID &&
	    route_copies(p, b, r, topic, env.value, env.value_len) < 0) {
		dp_buf_msgf(&p->err, "out of memory");
		rc = DP_EX_SOFTWARE;
		goto out;
	}
	rc = 0;
out:
	dp_envelope_clear(&env);
	return rc;
}

/* Record that ends the input (rc > 0) or marks a bad line (rc < 0). */
static void
mark(struct dp_feed_batch *b, struct rec *r, int rc, const char *why)
{
	r->nhdr = r->ncopies = 0;
	r->kind = rc > 0 ? REC_FATAL : REC_BAD;
	r->status = rc > 0 ? rc : 0;
	r->why = dp_feed_add(b, why, strlen(why));
	if (r->why == NONE) {
		r->kind = REC_FATAL;
		r->status = DP_EX_SOFTWARE;
	}
}

/* The feed's prepare: turn one line into record i of b (publish/feed.h). */
static int
prepare_line(void *arg, struct dp_feed_batch *b, size_t i, const char *line, size_t len,
             int got)
{
	struct pub *p = arg;
	struct rec *r = (struct rec *)b->recs + i;
	char why[256];
	int rc = 0;

	r->lineno = dp_lines_lineno(p->in);
	r->topic = r->key = r->val = r->why = r->copies = NONE;
	r->partition = p->partition;
	p->nhscratch = 0;
	if (p->router)
		take_routes(p, b);
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
	int st = dp_on_error_record(&p->on_error, p->prod, where, why, NULL, 0, line, len, h,
	                            p->topic ? 3 : 2, lineno);
	if (st == 0 && p->on_error.mode == DP_ON_ERROR_DLQ)
		p->records++;           /* the dead letter is delivered like any record */
	return st;
}

/* Room for n records in p->out. */
static int
out_room(struct pub *p, size_t n)
{
	if (n <= p->out_cap)
		return 0;
	struct dp_producer_rec *v = realloc(p->out, n * sizeof(*v));
	if (!v)
		return -1;
	p->out = v;
	p->out_cap = n;
	return 0;
}

/* The headers of record i of b, in p->hv from nh on; returns how many. */
static size_t
headers_of(struct pub *p, const struct dp_feed_batch *b, const struct rec *r, size_t nh)
{
	for (size_t k = 0; k < r->nhdr; k++) {
		struct hdr_at h;
		memcpy(&h, b->arena.data + r->hdr + k * sizeof(h), sizeof(h));
		p->hv[nh + k] = (struct dp_producer_header){
			at(b, h.name), h.value == NONE ? NULL : at(b, h.value), h.len,
		};
	}
	return r->nhdr;
}

static int
hv_room(struct pub *p, const struct dp_feed_batch *b, size_t from, size_t to)
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
	return 0;
}

/* A record as the producer takes it: to its topic, or as a copy into topic. */
static struct dp_producer_rec
producer_rec(const struct dp_feed_batch *b, size_t i, const struct rec *r,
             const struct dp_producer_header *hv, const char *copy_to)
{
	return (struct dp_producer_rec){
		.topic = copy_to ? copy_to : r->topic == NONE ? NULL : at(b, r->topic),
		/* A copy goes where its key puts it in the dynamic topic. */
		.partition = copy_to ? DP_PRODUCER_ANY : r->partition,
		.key = r->key == NONE ? NULL : at(b, r->key),
		.key_len = r->keylen,
		.value = value_of(b, i, r),
		.value_len = r->vallen,
		.hdrs = r->nhdr ? hv : NULL,
		.nhdrs = r->nhdr,
		.timestamp = r->ts,
		.tag = copy_to ? r->lineno | COPY_TAG : r->lineno,
	};
}

/*
 * The producer's view of records [from, to) of b, in p->out.  Built here
 * rather than in the reader: only now are the batch's bytes where they stay.
 */
static int
resolve(struct pub *p, const struct dp_feed_batch *b, size_t from, size_t to)
{
	size_t nh = 0;

	if (hv_room(p, b, from, to) < 0 || out_room(p, to - from) < 0)
		return -1;
	for (size_t i = from; i < to; i++) {
		const struct rec *r = (const struct rec *)b->recs + i;
		size_t k = headers_of(p, b, r, nh);
		p->out[i - from] = producer_rec(b, i, r, &p->hv[nh], NULL);
		nh += k;
	}
	return 0;
}

/* The copies of records [from, to) of b whose records went, in p->out; -1: memory. */
static ssize_t
resolve_copies(struct pub *p, const struct dp_feed_batch *b, size_t from, size_t to)
{
	size_t n = 0, nh = 0;

	for (size_t i = from; i < to; i++)
		n += p->refused[i] ? 0 : ((const struct rec *)b->recs)[i].ncopies;
	if (n == 0)
		return 0;
	if (hv_room(p, b, from, to) < 0 || out_room(p, n) < 0)
		return -1;
	n = 0;
	for (size_t i = from; i < to; i++) {
		const struct rec *r = (const struct rec *)b->recs + i;
		if (p->refused[i] || !r->ncopies)
			continue;
		size_t k = headers_of(p, b, r, nh);
		for (size_t c = 0; c < r->ncopies; c++) {
			size_t off;
			memcpy(&off, b->arena.data + r->copies + c * sizeof(off), sizeof(off));
			p->out[n++] = producer_rec(b, i, r, &p->hv[nh], at(b, off));
		}
		nh += k;
	}
	return (ssize_t)n;
}

/*
 * Hand copies p->out[0..n) over.  A copy refused for itself (too large,
 * its topic deleted) is a copy not delivered, judged at the end (see
 * lost_copy).  Returns 0, or the status that ends the input.
 */
static int
send_copies(struct pub *p, size_t n)
{
	for (size_t k0 = 0; k0 < n;) {
		size_t failed;
		dp_buf_reset(&p->perr);
		int st = dp_producer_send(p->prod, p->out + k0, n - k0, &failed, &p->perr);
		if (!st) {
			p->copies += n - k0;
			break;
		}
		const struct dp_producer_rec *c = &p->out[k0 + failed];
		uint64_t line = c->tag & ~COPY_TAG;
		p->copies += failed;
		if (st != DP_EX_DATAERR && st != DP_EX_NOTFOUND) {
			dp_err("line %llu: %s", (unsigned long long)line, dp_buf_str(&p->perr));
			return st;
		}
		dp_info("line %llu: copy not sent to '%s': %s", (unsigned long long)line, c->topic,
		        dp_buf_str(&p->perr));
		lost_copy(p, line, c->topic);
		k0 += failed + 1;
	}
	return 0;
}

/*
 * Records [from, to) of b, all to be sent: the records first, then the
 * copies of those that went (each topic keeps its records' order).  A
 * record refused for itself is a bad line.  Returns 0, or the status that
 * ends the input.
 */
static int
send_run(struct pub *p, const struct dp_feed_batch *b, size_t from, size_t to)
{
	const struct rec *recs = b->recs;
	size_t k0 = 0, n = to - from, sent = n;
	int status = 0;
	bool copies = false;

	for (size_t i = from; i < to; i++) {
		p->refused[i] = false;
		copies |= recs[i].ncopies > 0;
	}
	if (resolve(p, b, from, to) < 0) {
		dp_err("line %llu: out of memory", (unsigned long long)recs[from].lineno);
		return DP_EX_SOFTWARE;
	}
	while (k0 < n) {
		size_t failed;
		dp_buf_reset(&p->perr);
		int st = dp_producer_send(p->prod, p->out + k0, n - k0, &failed, &p->perr);
		if (!st) {
			p->records += n - k0;
			break;
		}
		/* Said once, with its line: the record is refused for itself, or all stops. */
		size_t i = from + k0 + failed;
		p->records += failed;
		if (st != DP_EX_DATAERR) {
			dp_err("line %llu: %s", (unsigned long long)recs[i].lineno, dp_buf_str(&p->perr));
			status = st;
			sent = i - from;
			break;
		}
		p->refused[i] = true;
		if ((st = bad_line(p, value_of(b, i, &recs[i]), recs[i].vallen, recs[i].lineno,
		                   dp_buf_str(&p->perr))) != 0) {
			status = st;
			sent = i - from;
			break;
		}
		k0 += failed + 1;
	}
	if (copies && sent) {
		/* Copies of what went, also when the input stops here. */
		ssize_t nc = resolve_copies(p, b, from, from + sent);
		int st = nc < 0 ? DP_EX_SOFTWARE : send_copies(p, (size_t)nc);
		if (nc < 0)
			dp_err("line %llu: out of memory", (unsigned long long)recs[from].lineno);
		if (st && !status)
			status = st;
	}
	return status;
}

/* ---- --request-topics: records held for a topic the coordinator makes ---- */

/* One held record, in one allocation: key, value, headers, copies. */
struct held {
	struct held *next;
	uint64_t lineno;
	int32_t partition;
	int64_t ts;
	const char *key;
	size_t keylen;
	const char *value;
	size_t vallen;
	size_t nhdrs, ncopies;
	struct dp_producer_header *hdrs;        /* into data */
	const char **copies;                    /* into data */
	size_t size;
	char data[];
};

static void
held_free_list(struct req_topic *rq)
{
	for (struct held *h = rq->first, *next; h; h = next) {
		next = h->next;
		free(h);
	}
	rq->first = rq->last = NULL;
}

/* Keep record i of b for rq.  0 or -1 (memory). */
static int
hold(struct pub *p, struct req_topic *rq, const struct dp_feed_batch *b, size_t i,
     const struct rec *r)
{
	size_t size = sizeof(struct held) + r->nhdr * sizeof(struct dp_producer_header) +
	              r->ncopies * sizeof(char *) + r->keylen + r->vallen + 2;
	struct hdr_at h;
	const char *v = value_of(b, i, r);

	for (size_t k = 0; k < r->nhdr; k++) {
		memcpy(&h, b->arena.data + r->hdr + k * sizeof(h), sizeof(h));
		size += strlen(at(b, h.name)) + 1 + (h.value == NONE ? 0 : h.len);
	}
	for (size_t c = 0; c < r->ncopies; c++) {
		size_t off;
		memcpy(&off, b->arena.data + r->copies + c * sizeof(off), sizeof(off));
		size += strlen(at(b, off)) + 1;
	}
	struct held *x = malloc(size);
	if (!x)
		return -1;
	*x = (struct held){ NULL, r->lineno, r->partition, r->ts, NULL, r->keylen, NULL,
	                    r->vallen, r->nhdr, r->ncopies, NULL, NULL, size };
	x->hdrs = (struct dp_producer_header *)x->data;
	x->copies = (const char **)(x->hdrs + r->nhdr);
	char *d = (char *)(x->copies + r->ncopies);
	if (r->key != NONE) {
		x->key = d;
		memcpy(d, at(b, r->key), r->keylen);
		d += r->keylen;
	}
	*d++ = '\0';
	if (v) {
		x->value = d;
		memcpy(d, v, r->vallen);
		d += r->vallen;
	}
	*d++ = '\0';
	for (size_t k = 0; k < r->nhdr; k++) {
		memcpy(&h, b->arena.data + r->hdr + k * sizeof(h), sizeof(h));
		size_t nl = strlen(at(b, h.name)) + 1;
		x->hdrs[k].name = memcpy(d, at(b, h.name), nl);
		d += nl;
		x->hdrs[k].value = h.value == NONE ? NULL : memcpy(d, at(b, h.value), h.len);
		x->hdrs[k].len = h.len;
		d += h.value == NONE ? 0 : h.len;
	}
	for (size_t c = 0; c < r->ncopies; c++) {
		size_t off;
		memcpy(&off, b->arena.data + r->copies + c * sizeof(off), sizeof(off));
		size_t nl = strlen(at(b, off)) + 1;
		x->copies[c] = memcpy(d, at(b, off), nl);
		d += nl;
	}
	if (rq->last)
		rq->last->next = x;
	else
		rq->first = x;
	rq->last = x;
	p->held_bytes += size;
	p->nheld++;
	return 0;
}

/* The held records of rq go now that its topic is there, in their order. */
static int
send_held(struct pub *p, struct req_topic *rq)
{
	int status = 0;

	if (out_room(p, 1) < 0)
		return DP_EX_SOFTWARE;
	while (rq->first && !status) {
		struct held *h = rq->first;
		struct dp_producer_rec rec = {
			.topic = rq->name, .partition = h->partition, .key = h->key,
			.key_len = h->keylen, .value = h->value, .value_len = h->vallen,
			.hdrs = h->nhdrs ? h->hdrs : NULL, .nhdrs = h->nhdrs, .timestamp = h->ts,
			.tag = h->lineno,
		};
		size_t failed;
		dp_buf_reset(&p->perr);
		int st = dp_producer_send(p->prod, &rec, 1, &failed, &p->perr);
		if (st == DP_EX_DATAERR) {
			status = bad_line(p, h->value, h->vallen, h->lineno, dp_buf_str(&p->perr));
		} else if (st) {
			dp_err("line %llu: %s", (unsigned long long)h->lineno, dp_buf_str(&p->perr));
			return st;
		} else {
			p->records++;
			if (out_room(p, h->ncopies) < 0)
				return DP_EX_SOFTWARE;
			for (size_t c = 0; c < h->ncopies; c++) {
				p->out[c] = rec;
				p->out[c].topic = h->copies[c];
				p->out[c].partition = DP_PRODUCER_ANY;
				p->out[c].tag = h->lineno | COPY_TAG;
			}
			status = send_copies(p, h->ncopies);
		}
		rq->first = h->next;
		if (!rq->first)
			rq->last = NULL;
		p->held_bytes -= h->size;
		p->nheld--;
		free(h);
	}
	return status;
}

/* Write a create request for rq's topic, fed directly by this producer. */
static int
request_topic(struct pub *p, struct req_topic *rq)
{
	char who[300];
	struct dp_buf value = DP_BUF_INIT;
	int st;

	if (!p->requests_ok) {
		st = dp_producer_check_topic(p->prod, p->requests, DP_PRODUCER_FOREVER, &p->perr);
		if (st == DP_KAFKA_STOPPED)
			return st;
		if (st == DP_EX_NOTFOUND) {
			dp_err("cannot ask for topic '%s': requests topic '%s' does not exist: no "
			       "dp-coord serve has run on this cluster", rq->name, p->requests);
			return DP_EX_UNAVAILABLE;
		}
		if (st) {
			dp_err("cannot ask for topic '%s': %s", rq->name, dp_buf_str(&p->perr));
			return st;
		}
		p->requests_ok = true;
	}
	dp_dyn_requester(who, sizeof(who));
	/* Its own source: the coordinator checks no other topic, routers copy nothing in. */
	struct dp_dyn_request q = {
		.action = DP_DYN_CREATE, .request_id = rq->request_id, .topic = rq->name,
		.source = rq->name, .filter = ".", .partitions = -1, .requested_by = who,
		.requested_at = dp_time_now_ms(),
	};
	if (dp_dyn_request_id(rq->request_id) < 0 || dp_dyn_request_json(&value, &q) < 0) {
		dp_err("cannot ask for topic '%s': %s", rq->name, strerror(errno ? errno : ENOMEM));
		dp_buf_free(&value);
		return DP_EX_SOFTWARE;
	}
	struct dp_producer_rec rec = {
		.topic = p->requests, .partition = DP_PRODUCER_ANY, .key = rq->name,
		.key_len = strlen(rq->name), .value = value.data, .value_len = value.len,
	};
	dp_buf_reset(&p->perr);
	st = dp_producer_send_wait(p->prod, &rec, 1, NULL, p->common.kafka.timeout_ms, &p->perr);
	dp_buf_free(&value);
	if (st == DP_KAFKA_STOPPED)
		return st;
	if (st) {
		dp_err("cannot ask for topic '%s': %s", rq->name, dp_buf_str(&p->perr));
		return st;
	}
	rq->sent_ms = dp_time_mono_ms();
	dp_info("topic '%s' does not exist: asked the coordinator for it (request %s); its "
	        "records wait", rq->name, rq->request_id);
	return 0;
}

/*
 * What becomes of records for topic name, which the reader found missing:
 * *rq gets its entry, made (and asked for) the first time.  Returns 0 or
 * the status that ends the input.
 */
static int
requested(struct pub *p, const char *name, struct req_topic **rqp)
{
	for (size_t i = 0; i < p->nreqs; i++)
		if (strcmp(p->reqs[i].name, name) == 0) {
			*rqp = &p->reqs[i];
			return 0;
		}
	struct req_topic *v = realloc(p->reqs, (p->nreqs + 1) * sizeof(*v));
	if (!v)
		return DP_EX_SOFTWARE;
	p->reqs = v;
	struct req_topic *rq = &v[p->nreqs];
	memset(rq, 0, sizeof(*rq));
	if (!(rq->name = strdup(name)))
		return DP_EX_SOFTWARE;
	p->nreqs++;
	*rqp = rq;
	const struct dp_dyn_spec *spec = dp_registry_get(p->reg, name);
	if (spec && spec->state == DP_DYN_ACTIVE) {
		rq->state = RQ_ACTIVE;          /* made a moment ago: the registry knew first */
		return 0;
	}
	if (spec && spec->state == DP_DYN_RETIRED) {
		rq->state = RQ_REJECTED;
		rq->reason = strdup("it is a retired dynamic topic");
		return rq->reason ? 0 : DP_EX_SOFTWARE;
	}
	rq->state = RQ_PENDING;
	int st = request_topic(p, rq);
	return st == DP_KAFKA_STOPPED ? DP_EX_TEMPFAIL : st;
}

static bool
pending_any(const struct pub *p)
{
	for (size_t i = 0; i < p->nreqs; i++)
		if (p->reqs[i].state == RQ_PENDING)
			return true;
	return false;
}

/* The registry's answers to the requests still open, and the timeouts. */
static int
check_requests(struct pub *p)
{
	int64_t now = dp_time_mono_ms();

	for (size_t i = 0; i < p->nreqs; i++) {
		struct req_topic *rq = &p->reqs[i];
		if (rq->state != RQ_PENDING)
			continue;
		const struct dp_dyn_spec *spec = dp_registry_get(p->reg, rq->name);
		bool ours = spec && spec->request_id && !strcmp(spec->request_id, rq->request_id);
		if (spec && spec->state == DP_DYN_ACTIVE) {
			rq->state = RQ_ACTIVE;
			dp_info("topic '%s' is active: sending its records", rq->name);
			int st = send_held(p, rq);
			if (st)
				return st;
		} else if (ours && spec->state == DP_DYN_REJECTED) {
			rq->state = RQ_REJECTED;
			rq->reason = strdup(spec->reason ? spec->reason : "no reason given");
			p->create_failed = true;
			if (!rq->reason)
				return DP_EX_SOFTWARE;
		} else if (now - rq->sent_ms >= p->common.kafka.timeout_ms) {
			rq->state = RQ_TIMEOUT;
			p->create_failed = true;
		}
	}
	return 0;
}

/* ---- the registry (main thread) ------------------------------------------- */

static void
on_registry(void *arg, const char *topic, const struct dp_dyn_spec *old,
            const struct dp_dyn_spec *now, int64_t offset)
{
	struct pub *p = arg;

	p->routes_dirty = true;
}

/* Hand the reader the routes active now (whose source this producer writes). */
static int
publish_routes(struct pub *p)
{
	size_t n, k = 0;
	const struct dp_dyn_spec *const *v = dp_registry_specs(p->reg, &n);
	struct dp_route_spec *specs = calloc(n ? n : 1, sizeof(*specs));

	if (!specs)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct dp_dyn_spec *s = v[i];
		if (s->state != DP_DYN_ACTIVE || !s->source || !s->filter ||
		    !strcmp(s->topic, s->source) || (p->topic && strcmp(s->source, p->topic)))
			continue;
		specs[k++] = (struct dp_route_spec){ s->topic, s->source, s->filter };
	}
	struct dp_route_list *l = dp_route_list_new(specs, k, ++p->routes_version);
	free(specs);
	if (!l)
		return -1;
	/* A list the reader never took is superseded: it is ours to free. */
	free(atomic_exchange(&p->routes_next, l));
	if (k != p->nroutes)
		dp_info("%zu dynamic topic%s take%s copies", k, k == 1 ? "" : "s", k == 1 ? "s" : "");
	p->nroutes = k;
	return 0;
}

/*
 * Poll the registry: with wait_ms 0 at most every REGISTRY_POLL_MS.
 * Returns 0, or the event that ends the input.
 */
static int
poll_registry(struct pub *p, int wait_ms)
{
	int64_t now = dp_time_mono_ms();
	int st;

	if (!p->reg || (wait_ms == 0 && now - p->reg_polled < REGISTRY_POLL_MS))
		return 0;
	p->reg_polled = now;
	dp_buf_reset(&p->perr);
	st = dp_registry_poll(p->reg, wait_ms, &p->perr);
	if (st == DP_KAFKA_STOPPED)
		return E_STOP;
	if (st) {
		dp_err("registry: %s", dp_buf_str(&p->perr));
		p->status = st;
		return E_FATAL;
	}
	if (p->routes_dirty && p->follow) {
		if (publish_routes(p) < 0) {
			dp_err("out of memory");
			p->status = DP_EX_SOFTWARE;
			return E_FATAL;
		}
	}
	p->routes_dirty = false;
	if (pending_any(p) && (st = check_requests(p)) != 0) {
		p->status = st;
		return st == DP_EX_DATAERR ? E_BAD_LINE : E_FATAL;
	}
	return 0;
}

/* ---- batches ---------------------------------------------------------------- */

/* Record r can go now: its topic is known to exist. */
static bool
sendable(struct pub *p, const struct dp_feed_batch *b, const struct rec *r)
{
	if (r->kind != REC_RECORD)
		return false;
	if (!r->unverified)
		return true;
	for (size_t i = 0; i < p->nreqs; i++)
		if (!strcmp(p->reqs[i].name, at(b, r->topic)))
			return p->reqs[i].state == RQ_ACTIVE;
	return false;
}

/* Hand a batch to the producer.  Returns 0, or the status that ends the input. */
static int
send_batch(struct pub *p, const struct dp_feed_batch *b)
{
	const struct rec *recs = b->recs;

	for (size_t i = 0; i < b->n;) {
		const struct rec *r = &recs[i];
		size_t j = i;
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
		if (!sendable(p, b, r)) {
			/* Its topic is asked for: held, or a bad line once refused. */
			struct req_topic *rq;
			if ((st = requested(p, at(b, r->topic), &rq)) != 0)
				return st;
			if (rq->state == RQ_PENDING && hold(p, rq, b, i, r) < 0) {
				dp_err("line %llu: out of memory", (unsigned long long)r->lineno);
				return DP_EX_SOFTWARE;
			}
			if (rq->state == RQ_REJECTED || rq->state == RQ_TIMEOUT) {
				char why[512];
				snprintf(why, sizeof(why), "topic '%s' was not created: %s", rq->name,
				         rq->reason ? rq->reason : "the coordinator did not answer");
				if ((st = bad_line(p, value_of(b, i, r), r->vallen, r->lineno, why)))
					return st;
			}
			if (rq->state != RQ_ACTIVE) {
				i++;
				continue;
			}
		}
		while (j < b->n && sendable(p, b, &recs[j]))
			j++;
		if ((st = send_run(p, b, i, j)) != 0)
			return st;
		i = j;
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

/*
 * Told to stop, the reader thread finishes the line in hand.  One whose
 * jq program runs on (libjq cannot be interrupted) would hold the stop
 * for ever: after STUCK_MS it is left behind, and its line and those it
 * read after it count as not sent.
 */
#define STUCK_MS 1000

static bool
feed_stuck(struct pub *p)
{
	int64_t now = dp_time_mono_ms();
	uint64_t line = dp_feed_busy_line(p->feed);
	char d[48];

	if (!line || line != p->stuck_line) {
		/* the signal came, or prepare moved on: watch this line from now */
		p->stuck_line = line;
		p->stuck_ms = now;
		return false;
	}
	if (now - p->stuck_ms < STUCK_MS)
		return false;
	dp_err("line %llu: jq still works on it %s after the signal: lines %llu to %llu are "
	       "not sent, nor any read after them", (unsigned long long)line,
	       dp_duration_format(now - p->stuck_ms, d), (unsigned long long)p->taken + 1,
	       (unsigned long long)line);
	p->feed_stuck = true;
	if (!p->status)
		p->status = DP_EX_TEMPFAIL;
	return true;
}

/* The input ends with ev: no more is read. */
static int
end_input(struct pub *p, int ev)
{
	p->ended = ev;
	dp_feed_halt(p->feed);
	return ev;
}

/*
 * Produce batches until the input ends (a bad line, an error, a stop),
 * or the machine has to move: routes came or went (PUBLISH_DYNAMIC,
 * PUBLISH_FIXED), a topic was asked for (CREATE_TOPIC), every request
 * was answered (CREATE_TOPIC_SUCCESS, _FAILURE).  The feed goes on
 * across the moves.
 */
static int
run_lines(struct pub *p)
{
	int state = p->fsm.state;
	bool quiet = false;     /* the last batch ended because input paused */

	for (;;) {
		int ev = poll_registry(p, 0);
		if (ev)
			return end_input(p, ev);
		if (dp_sig_stop && feed_stuck(p))
			return end_input(p, E_FATAL);
		bool pending = pending_any(p);
		if (state == S_CREATING && !pending)
			return p->create_failed ? E_CREATE_FAILURE : E_CREATE_SUCCESS;
		/* At the end of the input, requests still open are waited for. */
		if (p->ended && (p->ended != E_EOF || !pending))
			return p->ended;
		if (pending && state != S_CREATING)
			return E_CREATE_TOPIC;
		if (!pending && state == S_FIXED && p->nroutes > 0)
			return E_PUBLISH_DYNAMIC;
		if (!pending && state == S_DYNAMIC && p->nroutes == 0)
			return E_PUBLISH_FIXED;
		if (p->ended || p->held_bytes >= p->hold_max) {
			/* Nothing is read now: the registry must answer first. */
			if (dp_sig_stop)
				return end_input(p, E_STOP);
			serve(p);
			if (p->status)
				return end_input(p, E_FATAL);
			if ((ev = poll_registry(p, 50)) != 0)
				return end_input(p, ev);
			continue;
		}
		if ((quiet || dp_feed_quiet(p->feed)) && dp_producer_pending(p->prod) > 0) {
			/*
			 * The writer is quiet: send what waits for linger.ms
			 * now.  flush returns once all is delivered, and looks
			 * for new input again after 10 ms at most.
			 */
			dp_producer_flush(p->prod, 10);
			serve(p);
			quiet = false;
			/* stdout failed under --report: also while the input pauses. */
			if (p->status)
				return end_input(p, E_FATAL);
			continue;
		}
		struct dp_feed_batch *b = dp_feed_next(p->feed, 100);
		if (!b) {
			serve(p);
			if (p->status)
				return end_input(p, E_FATAL);
			continue;
		}
		if (b->n)
			p->taken = ((const struct rec *)b->recs)[b->n - 1].lineno;
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
		if (ev)
			p->ended = ev;
	}
}

/* ---- the machine's actions ---------------------------------------------- */

/* -> connecting: make the producer, prove the cluster and the topics are there. */
static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;
	struct dp_buf err = DP_BUF_INIT;
	const struct dp_producer_conf conf = {
		.kafka = &p->common.kafka,
		.topic = p->topic,
		/* Lanes pay where records pick their partition by key. */
		.lanes = (p->key_expr || p->envelope) && p->partition == DP_PRODUCER_ANY,
		.report = on_report,
		.arg = p,
	};
	const struct dp_registry_conf rconf = {
		.kafka = &p->common.kafka, .topic = p->registry, .change = on_registry, .arg = p,
		.missing_ok = true,
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
	/* The routes come from the registry before the first line is read. */
	if (st == 0 && (p->follow || p->request_topics)) {
		if (!(p->reg = dp_registry_new(&rconf, &err, &st)))
			st = st ? st : DP_EX_SOFTWARE;
		else
			st = dp_registry_load(p->reg, &err);
		if (st == 0 && p->follow && publish_routes(p) < 0) {
			dp_buf_msgf(&err, "out of memory");
			st = DP_EX_SOFTWARE;
		}
		p->routes_dirty = false;
		p->reg_polled = dp_time_mono_ms();
	}
	if (st == DP_KAFKA_STOPPED) {
		ev = E_STOP;
	} else if (st) {
		dp_err("%s", dp_buf_str(&err));
		ev = st == DP_EX_UNAVAILABLE ? E_UNREACHABLE : E_REFUSED;
		dp_fsm_fail(m, st);
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

/* The reader thread starts once, with the first publishing state. */
static int
start_feed(struct pub *p)
{
	struct dp_buf err = DP_BUF_INIT;
	const struct dp_feed_conf conf = {
		.in = p->in, .rec_size = sizeof(struct rec), .max_recs = BATCH_RECS,
		.max_bytes = BATCH_BYTES, .prepare = prepare_line, .failed = read_failed,
		.ready = batch_ready, .eof = E_EOF, .stop = E_STOP, .arg = p,
	};

	if (p->feed)
		return 0;
	/* The router is the reader's from now on (made here, before it starts). */
	if (!(p->out = calloc(BATCH_RECS, sizeof(*p->out))) ||
	    !(p->refused = calloc(BATCH_RECS, sizeof(*p->refused))) ||
	    (p->follow && !(p->router = dp_route_new())) ||
	    !(p->feed = dp_feed_start(&conf, &err))) {
		dp_err("%s", err.len ? dp_buf_str(&err) : "out of memory");
		dp_buf_free(&err);
		p->status = DP_EX_SOFTWARE;
		return -1;
	}
	p->out_cap = BATCH_RECS;
	return 0;
}

/* -> publishingFixed: records to their own topics only. */
static int
act_publish_fixed(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;

	if (start_feed(p) < 0)
		return E_FATAL;
	if (p->follow)
		dp_info("publishing to fixed topics only");
	return run_lines(p);
}

/* -> publishingDynamic: records to their topics and to the dynamic topics they match. */
static int
act_publish_dynamic(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;

	dp_info("publishing to fixed and %zu dynamic topic%s", p->nroutes,
	        p->nroutes == 1 ? "" : "s");
	return run_lines(p);
}

/* -> creatingTopic: records of other topics go on while the coordinator answers. */
static int
act_create_topic(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;

	return run_lines(p);
}

/*
 * creatingTopic -> error: a request was refused (its records are bad
 * lines, as --on-error says) or not answered within --timeout (69).
 */
static int
act_error(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;
	char within[48];

	for (size_t i = 0; i < p->nreqs; i++) {
		struct req_topic *rq = &p->reqs[i];
		if (rq->state != RQ_TIMEOUT || !rq->first)
			continue;
		dp_err("no answer to the request for topic '%s' within %s: is a dp-coord serve "
		       "running (requests on '%s')?", rq->name,
		       p->common.kafka.timeout_arg ? p->common.kafka.timeout_arg
		                             : dp_duration_format(p->common.kafka.timeout_ms, within),
		       p->requests);
		p->status = DP_EX_UNAVAILABLE;
	}
	if (p->status)
		return E_FATAL;         /* the held records are counted as not delivered */
	for (size_t i = 0; i < p->nreqs; i++) {
		struct req_topic *rq = &p->reqs[i];
		if (rq->state != RQ_REJECTED)
			continue;
		if (rq->first)
			dp_warn("topic '%s' was not created: %s", rq->name, rq->reason);
		while (rq->first) {
			struct held *h = rq->first;
			char why[512];
			snprintf(why, sizeof(why), "topic '%s' was not created: %s", rq->name,
			         rq->reason);
			int st = bad_line(p, h->value, h->vallen, h->lineno, why);
			rq->first = h->next;
			p->held_bytes -= h->size;
			p->nheld--;
			free(h);
			if (st) {
				p->status = st;
				break;
			}
		}
		if (p->status == DP_EX_DATAERR) {
			/* --on-error fail: the rest are bad lines after the first, not sent. */
			for (size_t k = i; k < p->nreqs; k++) {
				if (p->reqs[k].state != RQ_REJECTED)
					continue;
				for (struct held *h = p->reqs[k].first; h; h = h->next) {
					p->held_bytes -= h->size;
					p->nheld--;
				}
				held_free_list(&p->reqs[k]);
			}
		}
		if (p->status)
			return p->status == DP_EX_DATAERR ? E_BAD_LINE : E_FATAL;
		rq->last = NULL;
	}
	p->create_failed = false;
	return E_RESET;
}

/* Distinct lines in v[0..n) (sorted here). */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
distinct(uint64_t *v, size_t n)
{
	uint64_t k = 0;

	if (n == 0)
		return 0;       /* v may be NULL: qsort must not see it */
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < n; i++)
		k += i == 0 || v[i] != v[i - 1];
	return k;
}

/*
 * Copies not delivered: to a topic retired meanwhile (or gone), they are
 * not missed, since that topic wants no more records; else the line was
 * not delivered.  Judged on the registry as it is at the end.
 */
static void
judge_copies(struct pub *p)
{
	struct dp_buf err = DP_BUF_INIT;

	if (!p->nlostcopies)
		return;
	if (p->reg && dp_registry_sync(p->reg, -1, &err) != 0)
		dp_info("registry: %s", dp_buf_str(&err));
	for (size_t i = 0; i < p->nlostcopies; i++) {
		const struct dp_dyn_spec *s = p->reg ? dp_registry_get(p->reg,
		                                       p->copytopics[p->lostcopies[i].topic]) : NULL;
		if (p->reg && (!s || s->state != DP_DYN_ACTIVE))
			p->excused++;
		else
			lost_line(p, p->lostcopies[i].line);
	}
	p->nlostcopies = 0;
	if (p->excused)
		dp_info("%llu cop%s not delivered to dynamic topics retired meanwhile (not "
		        "missed)", (unsigned long long)p->excused, p->excused == 1 ? "y" : "ies");
	dp_buf_free(&err);
}

/* -> draining: wait for every outstanding delivery report. */
static int
act_drain(struct dp_fsm *m, void *ctx)
{
	struct pub *p = ctx;
	struct dp_producer_stats st;

	dp_producer_drain(p->prod, p->common.kafka.timeout_ms);
	dp_producer_stats(p->prod, &st);
	judge_copies(p);
	/* Reports that never came (a drain that gave up) cannot name their lines. */
	uint64_t lost = distinct(p->lost_lines, p->nlost) + p->lost_overflow +
	                (st.produced - st.delivered - st.lost);
	uint64_t held = p->nheld;
	p->undelivered = lost + held;
	if (lost + held)
		dp_err("%llu of %llu record%s not delivered%s", (unsigned long long)(lost + held),
		       (unsigned long long)(p->records + held), p->records + held == 1 ? "" : "s",
		       held ? " (held for topics not made)" : "");
	if (lost || (held && !p->status)) {
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
	uint64_t lines = p->feed ? dp_feed_lines(p->feed) : 0;

	if (p->progress)
		dp_progress_tick(&p->prog, "lines", lines, NULL, true);
	dp_on_error_summary(&p->on_error, "line");
	if (p->follow)
		dp_info("%llu lines, %llu delivered (and %llu copies into dynamic topics), %llu bad",
		        (unsigned long long)lines, (unsigned long long)p->delivered,
		        (unsigned long long)p->copies_delivered,
		        (unsigned long long)p->on_error.count);
	else
		dp_info("%llu lines, %llu delivered, %llu bad", (unsigned long long)lines,
		        (unsigned long long)p->delivered, (unsigned long long)p->on_error.count);
	return status;
}

static unsigned
io_pub(void *ctx)
{
	const struct pub *p = ctx;

	return DP_CMD_STDIN | DP_CMD_BOUNDED | (p->report ? DP_CMD_STDOUT : 0);
}

/* A signal came (core/frame.h): after the end of the input, or what it left. */
static bool
interrupted_pub(void *ctx, int status, struct dp_buf *said)
{
	struct pub *p = ctx;
	long long unread = -1;
	uint64_t undelivered = p->undelivered;

	if (p->ended == E_EOF && status == 0)
		return false;
	if (p->feed_stuck)
		undelivered += dp_feed_lines(p->feed) - p->taken;      /* left in the reader */
	else if (p->in) {
		/* The reader thread ends here, so that what it left can be counted. */
		dp_feed_free(p->feed);
		p->feed = NULL;
		unread = dp_lines_unread(p->in);
	}
	/* It had read the whole file already, and delivered it. */
	if (unread == 0 && !undelivered && status == 0)
		return false;
	dp_cmd_say_undelivered(said, "line", p->delivered, undelivered, unread);
	return true;
}

static void
close_pub(void *ctx)
{
	struct pub *p = ctx;

	if (p->feed_stuck) {
		/* Its reader is in jq for good: what that uses stays (p is static). */
		dp_feed_abandon(p->feed);
		dp_producer_free(p->prod);
		return;
	}
	dp_feed_free(p->feed);
	dp_route_free(p->router);
	free(atomic_exchange(&p->routes_next, NULL));
	dp_registry_free(p->reg);
	for (size_t i = 0; i < p->nreqs; i++) {
		held_free_list(&p->reqs[i]);
		free(p->reqs[i].name);
		free(p->reqs[i].reason);
	}
	free(p->reqs);
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
	for (size_t i = 0; i < p->nmissing; i++)
		free(p->missing[i]);
	free(p->missing);
	for (size_t i = 0; i < p->ncopytopics; i++)
		free(p->copytopics[i]);
	free(p->copytopics);
	free(p->lostcopies);
	free(p->lost_lines);
	free(p->copyscratch);
	free(p->refused);
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
	.libs = dp_kafka_version,
	.usage = usage,
	.machine = &machine,
	.start = E_START,
	.parse = parse_options,
	.validate = validate,
	.open = open_pub,
	.finish = finish_pub,
	.close = close_pub,
	.io = io_pub,
	.interrupted = interrupted_pub,
};

int
main(int argc, char **argv)
{
	static struct pub p = {
		.partition = DP_PRODUCER_ANY,
		.max_line = DP_LINES_MAX_DEFAULT,
		.hold_max = HOLD_DEFAULT,
	};

	return dp_cmd_main(&cmd, &p, &p.common, &p.fsm, argc, argv);
}
