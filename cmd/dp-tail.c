/*
 * dp-tail -- Kafka records to NDJSON on stdout.
 *
 * Without -g the partitions are assigned directly and nothing is
 * committed.  With -g the command joins a consumer group; offsets are
 * stored only after the lines they produced were flushed to stdout, so a
 * reader sees every record at least once across restarts.
 */
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "base64.h"
#include "buf.h"
#include "cli.h"
#include "envelope.h"
#include "exit.h"
#include "expr.h"
#include "fsm.h"
#include "json.h"
#include "kafka.h"
#include "lines.h"
#include "log.h"
#include "out.h"
#include "progress.h"
#include "sig.h"
#include "timefmt.h"

enum from_kind { FROM_DEFAULT, FROM_BEGINNING, FROM_END, FROM_STORED, FROM_TAIL,
                 FROM_OFFSET, FROM_TIME };
enum until_kind { UNTIL_NONE, UNTIL_END, UNTIL_TIME };
enum non_json { NJ_ERROR, NJ_SKIP, NJ_STRING, NJ_BASE64 };

/* What dp-tail knows about one assigned partition. */
struct part {
	char *topic;
	int32_t partition;
	int64_t end;        /* stop offset for --until end / -e; -1 none */
	int64_t next;       /* offset after the last record handled; -1 none */
	bool at_eof;        /* nothing newer has arrived since its EOF event */
	bool done;
	bool assigned;
};

struct tail {
	/* options */
	struct dp_common common;
	char **topics;
	size_t ntopics;
	bool regex;
	const char *group;
	enum from_kind from;
	int64_t from_arg;   /* N for -N and offsets, ms for @TIME */
	enum until_kind until;
	int64_t until_ms;
	uint64_t count;     /* -n; 0 = unlimited */
	bool envelope;
	bool progress;
	struct dp_expr *filter;
	enum non_json non_json;
	int64_t timeout_ms;

	/* resources */
	rd_kafka_t *rk;
	bool simple;        /* no group, no pattern: the legacy consumer, as kcat */
	rd_kafka_queue_t *rkqu;          /* simple mode: all partitions feed it */
	rd_kafka_topic_t **rkts;         /* simple mode: one per -t */
	rd_kafka_topic_partition_list_t *started;  /* simple mode: partitions read */
	bool prefetch_full;              /* the queue went past its mark: fetcher idle */
	size_t prefetch_high;
	size_t wake_next;
	struct dp_out *out;
	struct part *parts;
	size_t nparts;
	rd_kafka_topic_partition_list_t *pending;   /* written, not yet stored */
	struct dp_buf line, err;

	/* state */
	uint64_t consumed;
	uint64_t printed;
	uint64_t skipped;
	bool assigned_once;
	bool rebalancing;   /* partitions revoked, new ones not yet assigned */
	int64_t last_flush_ms;
	int status;
	struct dp_progress prog;
	struct dp_fsm fsm;
};

/* ---- state machine ---------------------------------------------------- */

enum state { S_IDLE, S_CONNECTING, S_CONSUMING, S_CLOSING, S_DONE, S_FAILED, NSTATES };
enum event { E_START, E_CONNECTED, E_UNREACHABLE, E_ASSIGNED, E_REVOKED, E_END,
             E_COUNT, E_STOP, E_PIPE_CLOSED, E_BAD_RECORD, E_FATAL, E_CLOSED,
             E_COMMIT_FAILED, NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "connecting", "consuming", "closing", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "connected", "unreachable", "assigned", "revoked", "end",
	"count", "signal", "pipe_closed", "bad_record", "fatal", "closed",
	"commit_failed",
};

static const struct dp_fsm_row rows[] = {
	{ S_IDLE,       E_START,         S_CONNECTING, NULL },
	{ S_CONNECTING, E_CONNECTED,     S_CONSUMING,  NULL },
	{ S_CONNECTING, E_UNREACHABLE,   S_FAILED,     NULL },
	{ S_CONNECTING, E_STOP,          S_DONE,       NULL },
	{ S_CONSUMING,  E_ASSIGNED,      S_CONSUMING,  NULL },
	{ S_CONSUMING,  E_REVOKED,       S_CONSUMING,  NULL },
	{ S_CONSUMING,  E_END,           S_CLOSING,    NULL },
	{ S_CONSUMING,  E_COUNT,         S_CLOSING,    NULL },
	{ S_CONSUMING,  E_STOP,          S_CLOSING,    NULL },
	{ S_CONSUMING,  E_PIPE_CLOSED,   S_CLOSING,    NULL },
	{ S_CONSUMING,  E_BAD_RECORD,    S_CLOSING,    NULL },
	{ S_CONSUMING,  E_FATAL,         S_CLOSING,    NULL },
	{ S_CLOSING,    E_ASSIGNED,      S_CLOSING,    NULL },
	{ S_CLOSING,    E_REVOKED,       S_CLOSING,    NULL },
	{ S_CLOSING,    E_CLOSED,        S_DONE,       NULL },
	{ S_CLOSING,    E_COMMIT_FAILED, S_FAILED,     NULL },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-tail", state_names, NSTATES, event_names, NEVENTS,
	rows, sizeof(rows) / sizeof(rows[0]), S_IDLE, finals, 2,
};

/* ---- options ---------------------------------------------------------- */

enum { OPT_FROM = DP_OPT_CMD, OPT_UNTIL, OPT_ENVELOPE, OPT_FILTER, OPT_NON_JSON,
       OPT_PROGRESS, OPT_TIMEOUT };

static const struct option longopts[] = {
	{ "topic",    required_argument, NULL, 't' },
	{ "group",    required_argument, NULL, 'g' },
	{ "from",     required_argument, NULL, OPT_FROM },
	{ "until",    required_argument, NULL, OPT_UNTIL },
	{ "count",    required_argument, NULL, 'n' },
	{ "exit",     no_argument,       NULL, 'e' },
	{ "envelope", no_argument,       NULL, OPT_ENVELOPE },
	{ "filter",   required_argument, NULL, OPT_FILTER },
	{ "non-json", required_argument, NULL, OPT_NON_JSON },
	{ "progress", no_argument,       NULL, OPT_PROGRESS },
	{ "timeout",  required_argument, NULL, OPT_TIMEOUT },
	DP_CLI_KAFKA_LONG,
	DP_CLI_BASE_LONG,
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-tail -t TOPIC [-t TOPIC ...] [-g GROUP] [options]\n"
	      "\n"
	      "Consume Kafka records and print them as NDJSON on stdout.\n"
	      "\n"
	      "Subscribing:\n"
	      "  -t, --topic TOPIC       topic to read; repeatable; '^regex' subscribes\n"
	      "                          to every matching topic, including later ones\n"
	      "  -g, --group GROUP       join consumer group GROUP and commit offsets after\n"
	      "                          the lines are flushed (without -g nothing is committed)\n"
	      "\n"
	      "Where to start and stop:\n"
	      "      --from WHERE        beginning, end, stored, -N (last N per partition),\n"
	      "                          N (offset), or @TIME (RFC 3339, epoch ms, or -1h);\n"
	      "                          default: end, or stored with -g\n"
	      "      --until WHEN        end (offsets as they were at start) or @TIME\n"
	      "  -n, --count N           stop after printing N records\n"
	      "  -e, --exit              same as --until end\n"
	      "\n"
	      "Output:\n"
	      "      --envelope          print topic, partition, offset, timestamp, key,\n"
	      "                          headers and value (lossless; see dp-tail(1))\n"
	      "      --filter JQ         transform each value (or envelope); select() drops\n"
	      "      --non-json MODE     values that are not JSON: error (default), skip,\n"
	      "                          string, base64\n"
	      "      --timeout DURATION  give up on an unreachable cluster after this (default 10s)\n"
	      "      --progress          print rate and totals on stderr every second\n", fp);
	dp_cli_help_common(fp, true);
	fputs("\nExit status: 0 ok, 64 usage, 65 a value is not JSON (--non-json error),\n"
	      "69 cluster or topic unavailable, 74 stdout error, 75 commit failed.\n"
	      "See dp-tail(1).\n", fp);
}

static int
parse_from(struct tail *t, const char *s)
{
	uint64_t n;

	if (strcmp(s, "beginning") == 0) {
		t->from = FROM_BEGINNING;
	} else if (strcmp(s, "end") == 0) {
		t->from = FROM_END;
	} else if (strcmp(s, "stored") == 0) {
		t->from = FROM_STORED;
	} else if (s[0] == '-' && s[1] >= '0' && s[1] <= '9') {
		if (dp_parse_u64("--from", s + 1, 1, INT64_MAX / 2, &n) < 0)
			return -1;
		t->from = FROM_TAIL;
		t->from_arg = (int64_t)n;
	} else if (s[0] >= '0' && s[0] <= '9') {
		if (dp_parse_u64("--from", s, 0, INT64_MAX / 2, &n) < 0)
			return -1;
		t->from = FROM_OFFSET;
		t->from_arg = (int64_t)n;
	} else if (s[0] == '@') {
		t->from = FROM_TIME;
		if (s[1] == '-') {
			int64_t d;
			if (dp_parse_duration("--from", s + 2, &d) < 0)
				return -1;
			t->from_arg = dp_time_now_ms() - d;
		} else if (dp_time_parse(s + 1, &t->from_arg) < 0) {
			dp_err("invalid --from '%s': expected @RFC3339, @epoch-ms or @-DURATION", s);
			return -1;
		}
	} else {
		dp_err("invalid --from '%s': expected beginning, end, stored, -N, N or @TIME", s);
		return -1;
	}
	return 0;
}

static int
parse_until(struct tail *t, const char *s)
{
	if (strcmp(s, "end") == 0) {
		t->until = UNTIL_END;
		return 0;
	}
	if (s[0] == '@') {
		t->until = UNTIL_TIME;
		if (s[1] == '-' || s[1] == '+') {
			int64_t d;
			if (dp_parse_duration("--until", s + 2, &d) < 0)
				return -1;
			t->until_ms = dp_time_now_ms() + (s[1] == '-' ? -d : d);
			return 0;
		}
		if (dp_time_parse(s + 1, &t->until_ms) == 0)
			return 0;
	}
	dp_err("invalid --until '%s': expected end or @TIME", s);
	return -1;
}

static int
parse_options(struct tail *t, int argc, char **argv)
{
	const char *shortopts = "t:g:n:e" DP_CLI_KAFKA_SHORT DP_CLI_BASE_SHORT;
	struct dp_buf err = DP_BUF_INIT;
	int opt;

	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (opt) {
		case 't': {
			char **n = realloc(t->topics, (t->ntopics + 1) * sizeof(*n));
			if (!n)
				return -1;
			t->topics = n;
			t->topics[t->ntopics++] = optarg;
			if (optarg[0] == '^')
				t->regex = true;
			break;
		}
		case 'g':
			t->group = optarg;
			break;
		case OPT_FROM:
			if (parse_from(t, optarg) < 0)
				return -1;
			break;
		case OPT_UNTIL:
			if (parse_until(t, optarg) < 0)
				return -1;
			break;
		case 'e':
			t->until = UNTIL_END;
			break;
		case 'n':
			if (dp_parse_u64("--count", optarg, 1, UINT64_MAX, &t->count) < 0)
				return -1;
			break;
		case OPT_ENVELOPE:
			t->envelope = true;
			break;
		case OPT_PROGRESS:
			t->progress = true;
			break;
		case OPT_FILTER:
			dp_expr_free(t->filter);        /* the last one given wins */
			t->filter = dp_expr_compile(optarg, &err);
			if (!t->filter) {
				dp_err("invalid --filter: %s", err.data);
				dp_buf_free(&err);
				return -1;
			}
			break;
		case OPT_NON_JSON:
			if (strcmp(optarg, "error") == 0)
				t->non_json = NJ_ERROR;
			else if (strcmp(optarg, "skip") == 0)
				t->non_json = NJ_SKIP;
			else if (strcmp(optarg, "string") == 0)
				t->non_json = NJ_STRING;
			else if (strcmp(optarg, "base64") == 0)
				t->non_json = NJ_BASE64;
			else {
				dp_err("invalid --non-json '%s': expected error, skip, string or base64",
				       optarg);
				return -1;
			}
			break;
		case OPT_TIMEOUT:
			if (dp_parse_timeout("--timeout", optarg, INT32_MAX, "24d",
			                     &t->timeout_ms) < 0)
				return -1;
			break;
		case '?':
			dp_cli_bad_option(argv);
			return -1;
		default:
			if (dp_cli_common(&t->common, opt, optarg) != 1)
				return -1;
		}
	}
	if (optind < argc) {
		dp_err("unexpected argument '%s' (name topics with -t)", argv[optind]);
		return -1;
	}
	return 0;
}

static int
validate(struct tail *t)
{
	if (t->ntopics == 0) {
		dp_err("no topic: use -t TOPIC");
		return -1;
	}
	if (t->from == FROM_STORED && !t->group) {
		dp_err("--from stored needs a consumer group (-g)");
		return -1;
	}
	for (size_t i = 0; i < t->ntopics; i++) {
		regex_t re;
		if (t->topics[i][0] != '^')
			continue;
		if (regcomp(&re, t->topics[i], REG_EXTENDED | REG_NOSUB) != 0) {
			dp_err("invalid topic pattern '%s'", t->topics[i]);
			return -1;
		}
		regfree(&re);
	}
	if (t->envelope && t->non_json != NJ_ERROR) {
		dp_err("--non-json does not apply to --envelope (it carries any bytes)");
		return -1;
	}
	return 0;
}

/* ---- partitions --------------------------------------------------------- */

static struct part *
find_part(struct tail *t, const char *topic, int32_t partition)
{
	for (size_t i = 0; i < t->nparts; i++)
		if (t->parts[i].partition == partition && strcmp(t->parts[i].topic, topic) == 0)
			return &t->parts[i];
	return NULL;
}

static struct part *
add_part(struct tail *t, const char *topic, int32_t partition)
{
	struct part *p = find_part(t, topic, partition);

	if (p)
		return p;
	p = realloc(t->parts, (t->nparts + 1) * sizeof(*p));
	if (!p)
		return NULL;
	t->parts = p;
	p = &t->parts[t->nparts++];
	memset(p, 0, sizeof(*p));
	p->topic = strdup(topic);
	p->partition = partition;
	p->end = -1;
	p->next = -1;
	return p;
}

/* Every assigned partition has reached its stop point. */
static bool
all_done(struct tail *t)
{
	if (t->until == UNTIL_NONE || !t->assigned_once || t->rebalancing)
		return false;
	for (size_t i = 0; i < t->nparts; i++)
		if (t->parts[i].assigned && !t->parts[i].done)
			return false;
	return true;
}

/*
 * Fill in start offsets for a fresh assignment and remember where each
 * partition stops.  The stop offsets for --until end are the high
 * watermarks when the partition is first seen: "the end as it was at
 * start" also for partitions that a rebalance hands over later.
 */
static int
prepare_assignment(struct tail *t, rd_kafka_topic_partition_list_t *list)
{
	for (int i = 0; i < list->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &list->elems[i];
		bool fresh = find_part(t, tp->topic, tp->partition) == NULL;
		struct part *p = add_part(t, tp->topic, tp->partition);
		int64_t lo = 0, hi = 0;
		if (!p)
			return -1;
		p->assigned = true;
		if (t->until == UNTIL_END || t->from == FROM_TAIL) {
			rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
				t->rk, tp->topic, tp->partition, &lo, &hi, (int)t->timeout_ms);
			if (e) {
				dp_err("cannot get offsets of %s [%d]: %s", tp->topic,
				       (int)tp->partition, rd_kafka_err2str(e));
				return dp_kafka_exit_status(e);
			}
			if (fresh && t->until == UNTIL_END) {
				p->end = hi;
				p->done = hi <= lo;
			}
		}
		/*
		 * --from is where a partition starts the first time it is
		 * seen.  A rebalance that hands it back continues where it was;
		 * one from which nothing was read yet starts by --from again.
		 */
		if (!fresh && p->next >= 0) {
			tp->offset = p->next;
			continue;
		}
		switch (t->from) {
		case FROM_BEGINNING:
			tp->offset = RD_KAFKA_OFFSET_BEGINNING;
			break;
		case FROM_END:
			tp->offset = RD_KAFKA_OFFSET_END;
			break;
		case FROM_TAIL:
			/* Computed here, not with OFFSET_TAIL, so -e sees it. */
			tp->offset = hi - t->from_arg > lo ? hi - t->from_arg : lo;
			break;
		case FROM_OFFSET:
			tp->offset = t->from_arg;
			break;
		case FROM_TIME:
			tp->offset = t->from_arg;    /* resolved below */
			break;
		case FROM_STORED:
		case FROM_DEFAULT:
			tp->offset = t->group ? RD_KAFKA_OFFSET_STORED : RD_KAFKA_OFFSET_END;
			break;
		}
	}
	if (t->from == FROM_TIME) {
		/* Only the partitions that start by time: others hold offsets. */
		rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(list->cnt);
		for (int i = 0; i < list->cnt; i++) {
			struct part *p = find_part(t, list->elems[i].topic, list->elems[i].partition);
			if (p && p->next < 0)
				rd_kafka_topic_partition_list_add(q, list->elems[i].topic,
				        list->elems[i].partition)->offset = t->from_arg;
		}
		rd_kafka_resp_err_t e = q->cnt ? rd_kafka_offsets_for_times(t->rk, q,
		                                                           (int)t->timeout_ms) : 0;
		if (e) {
			rd_kafka_topic_partition_list_destroy(q);
			dp_err("cannot look up offsets for --from time: %s", rd_kafka_err2str(e));
			return dp_kafka_exit_status(e);
		}
		for (int i = 0; i < q->cnt; i++) {
			rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
				list, q->elems[i].topic, q->elems[i].partition);
			/* Nothing that late: start at the end. */
			tp->offset = q->elems[i].offset < 0 ? RD_KAFKA_OFFSET_END : q->elems[i].offset;
		}
		rd_kafka_topic_partition_list_destroy(q);
	}
	t->assigned_once = true;
	t->rebalancing = false;
	return 0;
}

/* ---- output and offsets ------------------------------------------------- */

static void
pending_add(struct tail *t, const rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	rd_kafka_topic_partition_t *tp =
		rd_kafka_topic_partition_list_find(t->pending, topic, m->partition);

	if (!tp)
		tp = rd_kafka_topic_partition_list_add(t->pending, topic, m->partition);
	tp->offset = m->offset + 1;
}

/*
 * Flush stdout, then store the offsets of everything it held: the order
 * that makes the group's committed offsets trail what the reader has.
 */
static int
flush_and_store(struct tail *t)
{
	if (dp_out_flush(t->out) < 0)
		return -1;
	if (t->group && t->pending->cnt > 0) {
		rd_kafka_resp_err_t e = rd_kafka_offsets_store(t->rk, t->pending);
		/* A partition revoked meanwhile cannot be stored: not an error. */
		if (e && e != RD_KAFKA_RESP_ERR__STATE)
			dp_warn("cannot store offsets: %s", rd_kafka_err2str(e));
	}
	rd_kafka_topic_partition_list_destroy(t->pending);
	t->pending = rd_kafka_topic_partition_list_new(8);
	return 0;
}

static int
emit(void *ctx, const char *json, size_t len)
{
	struct tail *t = ctx;

	if (t->count && t->printed >= t->count)
		return 1;
	/*
	 * A full buffer is written out through flush_and_store, so that a
	 * steady backlog still stores offsets as it goes, not only when idle.
	 */
	if (dp_out_room(t->out) < len + 1 && flush_and_store(t) < 0)
		return -1;
	if (dp_out_write(t->out, json, len) < 0 || dp_out_write(t->out, "\n", 1) < 0)
		return -1;
	t->printed++;
	return 0;
}

/* Turn one record into zero or more output lines.  Returns an event or 0. */
static int
handle_record(struct tail *t, const rd_kafka_message_t *m)
{
	struct dp_buf *b = &t->line;
	const char *why;
	size_t off;
	int rc, compact;

	dp_buf_reset(b);
	if (t->envelope) {
		if (dp_envelope_write(b, m) < 0)
			goto nomem;
	} else if (!m->payload) {
		if (dp_buf_add(b, "null", 4) < 0)
			goto nomem;
	} else if (dp_json_check_compact(m->payload, m->len, &why, &off, &compact) !=
	           DP_JSON_INVALID) {
		/* Compact payloads, the usual case, are printed without a copy. */
		if (compact && !t->filter) {
			rc = emit(t, m->payload, m->len);
			goto written;
		}
		if (dp_json_compact(b, m->payload, m->len) < 0)
			goto nomem;
	} else {
		switch (t->non_json) {
		case NJ_ERROR:
			dp_err("%s [%d] offset %lld: value is not JSON (%s at byte %zu); "
			       "see --non-json", rd_kafka_topic_name(m->rkt), (int)m->partition,
			       (long long)m->offset, why, off + 1);
			t->status = DP_EX_DATAERR;
			return E_BAD_RECORD;
		case NJ_SKIP:
			t->skipped++;
			pending_add(t, m);
			return 0;
		case NJ_STRING:
			if (dp_utf8_check(m->payload, m->len, &why, &off) == 0) {
				if (dp_json_quote(b, m->payload, m->len) < 0)
					goto nomem;
				break;
			}
			/* Not text: only base64 can carry it. */
			/* fall through */
		case NJ_BASE64:
			if (dp_buf_addch(b, '"') < 0 || dp_base64_encode(b, m->payload, m->len) < 0 ||
			    dp_buf_addch(b, '"') < 0)
				goto nomem;
			break;
		}
	}
	if (t->filter) {
		struct dp_expr_rec rec = DP_EXPR_REC(b->data, b->len);
		dp_buf_reset(&t->err);
		rc = dp_expr_each(t->filter, &rec, emit, t, &t->err);
		dp_expr_rec_clear(&rec);
		if (rc < 0 && t->err.len) {
			dp_err("%s [%d] offset %lld: --filter: %s", rd_kafka_topic_name(m->rkt),
			       (int)m->partition, (long long)m->offset, t->err.data);
			t->status = DP_EX_DATAERR;
			return E_BAD_RECORD;
		}
	} else {
		rc = emit(t, b->data, b->len);
	}
written:
	if (rc < 0 && dp_out_error(t->out)) {
		if (dp_out_closed(t->out))
			return E_PIPE_CLOSED;
		dp_err("cannot write to stdout: %s", strerror(dp_out_error(t->out)));
		t->status = DP_EX_IOERR;
		return E_FATAL;
	}
	pending_add(t, m);
	if (t->count && t->printed >= t->count)
		return E_COUNT;
	return 0;
nomem:
	dp_err("out of memory");
	t->status = DP_EX_SOFTWARE;
	return E_FATAL;
}

/* ---- rebalancing -------------------------------------------------------- */

static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
             rd_kafka_topic_partition_list_t *list, void *opaque)
{
	struct tail *t = opaque;
	/* cooperative-sticky hands partitions over a few at a time. */
	bool incremental = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *e = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		int st = prepare_assignment(t, list);
		if (st && !t->status)
			t->status = st;
		dp_fsm_step(&t->fsm, E_ASSIGNED, t);
		if (incremental)
			e = rd_kafka_incremental_assign(rk, list);
		else if (rd_kafka_assign(rk, list))
			dp_warn("cannot take the assigned partitions");
	} else {
		/* Hand over cleanly: what was printed is stored before we let go. */
		if (flush_and_store(t) < 0 && !dp_out_closed(t->out))
			t->status = DP_EX_IOERR;
		for (int i = 0; i < list->cnt; i++) {
			struct part *p = find_part(t, list->elems[i].topic, list->elems[i].partition);
			if (p)
				p->assigned = false;
		}
		if (t->group)
			rd_kafka_commit(rk, NULL, 0);
		dp_fsm_step(&t->fsm, E_REVOKED, t);
		if (incremental) {
			e = rd_kafka_incremental_unassign(rk, list);
		} else {
			/* Everything goes; -e must not finish before the new set. */
			t->rebalancing = true;
			rd_kafka_assign(rk, NULL);
		}
	}
	if (e) {
		dp_warn("rebalance: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

/* ---- connecting --------------------------------------------------------- */

static int
open_kafka(struct tail *t)
{
	struct dp_buf err = DP_BUF_INIT;
	char errstr[512], gid[96];
	int status;
	const char *group = t->group;

	/*
	 * A pattern needs a group id to subscribe; without -g a private one is
	 * used and nothing is ever committed under it.
	 */
	if (!group && t->regex) {
		snprintf(gid, sizeof(gid), "dp-tail-%ld-%lld", (long)getpid(),
		         (long long)dp_time_now_ms());
		group = gid;
	}
	const struct dp_kv defaults[] = {
		{ "enable.auto.offset.store", "false" },
		{ "enable.auto.commit", t->group ? "true" : "false" },
		{ "enable.partition.eof", "true" },
		{ "auto.offset.reset", "earliest" },
		{ "allow.auto.create.topics", "false" },
		{ "topic.metadata.refresh.interval.ms", t->regex ? "5000" : "300000" },
		/* Prefetch about 20k records, not 100k: keeps RSS near 30 MB. */
		{ "queued.min.messages", "20000" },
	};
	rd_kafka_conf_t *conf = dp_kafka_conf_new(&t->common, defaults,
	                                          sizeof(defaults) / sizeof(defaults[0]),
	                                          &err, &status);
	if (!conf)
		goto fail;
	if (group && dp_kafka_conf_set(conf, "group.id", group, &err) < 0) {
		rd_kafka_conf_destroy(conf);
		status = DP_EX_CONFIG;
		goto fail;
	}
	if (group)
		rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_opaque(conf, t);
	char qmin[32];
	size_t qlen = sizeof(qmin);
	uint64_t q = 20000;
	if (rd_kafka_conf_get(conf, "queued.min.messages", qmin, &qlen) == RD_KAFKA_CONF_OK)
		q = strtoull(qmin, NULL, 10);
	t->prefetch_high = (size_t)(q * 9 / 10);
	t->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (!t->rk) {
		dp_err("cannot create kafka consumer: %s", errstr);
		return DP_EX_CONFIG;
	}
	if (t->simple) {
		t->rkqu = rd_kafka_queue_new(t->rk);
		t->rkts = calloc(t->ntopics, sizeof(*t->rkts));
		if (!t->rkqu || !t->rkts) {
			dp_err("out of memory");
			return DP_EX_SOFTWARE;
		}
	} else {
		rd_kafka_poll_set_consumer(t->rk);
	}
	dp_buf_free(&err);
	return 0;
fail:
	dp_err("%s", err.data);
	dp_buf_free(&err);
	return status;
}

/*
 * Simple mode reads partitions with the legacy consumer API onto one
 * queue, as kcat does: it keeps up with the broker where the group
 * consumer's prefetch stalls (librdkafka 2.0 backs a full queue off for a
 * whole second).
 */
static int
start_partition(struct tail *t, const rd_kafka_topic_partition_t *tp)
{
	size_t i;

	for (i = 0; i < t->ntopics && strcmp(t->topics[i], tp->topic) != 0; i++)
		;
	if (i == t->ntopics)
		return DP_EX_SOFTWARE;
	if (!t->rkts[i])
		t->rkts[i] = rd_kafka_topic_new(t->rk, tp->topic, NULL);
	if (!t->started)
		t->started = rd_kafka_topic_partition_list_new(8);
	rd_kafka_topic_partition_list_add(t->started, tp->topic, tp->partition);
	if (!t->rkts[i] ||
	    rd_kafka_consume_start_queue(t->rkts[i], tp->partition, tp->offset, t->rkqu) < 0) {
		rd_kafka_resp_err_t e = rd_kafka_last_error();
		dp_err("cannot start reading %s [%d]: %s", tp->topic, (int)tp->partition,
		       rd_kafka_err2str(e));
		return dp_kafka_exit_status(e);
	}
	return 0;
}

static int
connect_cluster(struct tail *t)
{
	struct dp_buf err = DP_BUF_INIT;
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
	int st = 0;

	/* Named topics must exist; patterns may match nothing yet. */
	for (size_t i = 0; i < t->ntopics && !st; i++) {
		int n = 0;
		const char *name = t->topics[i];
		st = dp_kafka_probe(t->rk, name[0] == '^' ? NULL : name, (int)t->timeout_ms,
		                    &n, &err);
		if (st == DP_EX_NOTFOUND)
			st = DP_EX_UNAVAILABLE;
		if (st) {
			dp_err("%s (brokers %s)", err.data, t->common.brokers);
			break;
		}
		if (t->group || t->regex)
			rd_kafka_topic_partition_list_add(list, name, RD_KAFKA_PARTITION_UA);
		else
			for (int p = 0; p < n; p++)
				rd_kafka_topic_partition_list_add(list, name, p);
	}
	if (!st) {
		rd_kafka_resp_err_t e = 0;
		if (!t->simple) {
			e = rd_kafka_subscribe(t->rk, list);
		} else {
			st = prepare_assignment(t, list);
			for (int i = 0; !st && i < list->cnt; i++)
				st = start_partition(t, &list->elems[i]);
		}
		if (e) {
			dp_err("cannot subscribe: %s", rd_kafka_err2str(e));
			st = dp_kafka_exit_status(e);
		}
	}
	rd_kafka_topic_partition_list_destroy(list);
	dp_buf_free(&err);
	t->status = st;
	return st ? E_UNREACHABLE : E_CONNECTED;
}

/* ---- consuming ---------------------------------------------------------- */

static void
partition_eof(struct tail *t, const rd_kafka_message_t *m)
{
	struct part *p = find_part(t, rd_kafka_topic_name(m->rkt), m->partition);

	if (!p)
		return;
	dp_info("%s [%d] at end, offset %lld", p->topic, (int)p->partition,
	        (long long)m->offset);
	p->at_eof = true;
	if ((t->until == UNTIL_END && m->offset >= p->end) ||
	    (t->until == UNTIL_TIME && dp_time_now_ms() >= t->until_ms))
		p->done = true;
}

/* One message or event from the consumer.  Returns an event or 0. */
static int
on_message(struct tail *t, rd_kafka_message_t *m)
{
	int ev = 0;

	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		partition_eof(t, m);
	} else if (m->err) {
		const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
		if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
		    m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
		    m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
			dp_err("topic '%s': %s", topic, rd_kafka_message_errstr(m));
			t->status = dp_kafka_exit_status(m->err);
			ev = E_FATAL;
		} else {
			dp_warn("kafka: %s", rd_kafka_message_errstr(m));
		}
	} else {
		struct part *p = find_part(t, rd_kafka_topic_name(m->rkt), m->partition);
		t->consumed++;
		if (p)
			p->at_eof = false;
		if (p && p->done) {
			/* Past its stop point while others catch up: not ours. */
		} else if (t->until == UNTIL_TIME &&
		           rd_kafka_message_timestamp(m, NULL) >= t->until_ms) {
			if (p)
				p->done = true;
		} else {
			ev = handle_record(t, m);
			if (p && p->end >= 0 && m->offset + 1 >= p->end)
				p->done = true;
		}
		if (p && ev != E_PIPE_CLOSED && ev != E_FATAL && ev != E_BAD_RECORD)
			p->next = m->offset + 1;
		if ((t->consumed & 1023) == 0)
			dp_progress_tick(&t->prog, "records", t->consumed, NULL, false);
	}
	return ev;
}


/*
 * Prefetch wake-up for simple mode.  librdkafka 2.0 stops prefetching when
 * its queue passes queued.min.messages and then looks again only after a
 * second (fetch.queue.backoff.ms arrived in 2.1).  A small request to the
 * broker wakes its thread, which then sees the drained queue and fetches
 * at once: memory stays bounded without the stall.
 */
#define QUEUE_LOW 2000

static void
wake_fetcher(struct tail *t)
{
	size_t queued = rd_kafka_queue_length(t->rkqu);
	int64_t lo, hi;

	if (!t->started || t->started->cnt == 0)
		return;
	if (queued > t->prefetch_high)
		t->prefetch_full = true;        /* the fetcher has stopped by now */
	else if (t->prefetch_full && queued < QUEUE_LOW) {
		/* One partition per wake-up, in turn, so every leader's thread
		 * is reached over a few rounds; a slow answer costs 200 ms at most. */
		const rd_kafka_topic_partition_t *tp =
			&t->started->elems[t->wake_next++ % (size_t)t->started->cnt];
		rd_kafka_query_watermark_offsets(t->rk, tp->topic, tp->partition, &lo, &hi, 200);
		t->prefetch_full = false;
	}
}

static int
consume(struct tail *t)
{
	for (;;) {
		if (dp_sig_stop)
			return E_STOP;
		if (t->status)
			return E_FATAL;
		if (t->until == UNTIL_TIME && dp_time_now_ms() >= t->until_ms)
			for (size_t i = 0; i < t->nparts; i++)
				if (t->parts[i].at_eof)
					t->parts[i].done = true;   /* idle, and its time has come */
		if (all_done(t))
			return E_END;
		int n = 0, ev = 0;
		if (t->simple) {
			/*
			 * Batches of a bounded size, so the queue length seen
			 * between them shows whether the prefetch has stopped.
			 */
			rd_kafka_message_t *msgs[1000];
			ssize_t got = rd_kafka_consume_batch_queue(t->rkqu, 100, msgs, 1000);
			for (ssize_t i = 0; i < got; i++) {
				if (!ev)
					ev = on_message(t, msgs[i]);
				rd_kafka_message_destroy(msgs[i]);
			}
			n = got > 0 ? (int)got : 0;
			rd_kafka_poll(t->rk, 0);
			wake_fetcher(t);
		} else {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(t->rk, 100);
			if (m) {
				n = 1;
				ev = on_message(t, m);
				rd_kafka_message_destroy(m);
			}
		}
		if (ev)
			return ev;
		/*
		 * Hand the reader what we have, and record it, whenever the
		 * queue ran dry or 100 ms went by: a steady trickle must not sit
		 * in the buffer.
		 */
		int64_t now = dp_time_mono_ms();
		if (n < (t->simple ? 1000 : 1) || now - t->last_flush_ms >= 100) {
			t->last_flush_ms = now;
			if (flush_and_store(t) < 0)
				return dp_out_closed(t->out) ? E_PIPE_CLOSED : E_FATAL;
			dp_progress_tick(&t->prog, "records", t->consumed, NULL, false);
		}
	}
}

/* The closing state: flush what is left, commit it, leave the group. */
static int
finish(struct tail *t, int why)
{
	rd_kafka_resp_err_t e = 0;

	if (why != E_PIPE_CLOSED && flush_and_store(t) < 0 && !dp_out_closed(t->out)) {
		dp_err("cannot write to stdout: %s", strerror(dp_out_error(t->out)));
		if (!t->status)
			t->status = DP_EX_IOERR;
	}
	if (t->simple) {
		for (size_t i = 0; i < t->nparts; i++) {
			for (size_t k = 0; k < t->ntopics; k++)
				if (t->rkts[k] && !strcmp(t->topics[k], t->parts[i].topic))
					rd_kafka_consume_stop(t->rkts[k], t->parts[i].partition);
		}
		return E_CLOSED;
	}
	if (t->group) {
		e = rd_kafka_commit(t->rk, NULL, 0);
		if (e == RD_KAFKA_RESP_ERR__NO_OFFSET)
			e = 0;
	}
	rd_kafka_consumer_close(t->rk);
	if (e) {
		dp_err("cannot commit offsets for group '%s': %s", t->group, rd_kafka_err2str(e));
		if (!t->status)
			t->status = DP_EX_TEMPFAIL;
		return E_COMMIT_FAILED;
	}
	return E_CLOSED;
}

static void
cleanup(struct tail *t)
{
	if (t->rkqu)
		rd_kafka_queue_destroy(t->rkqu);
	for (size_t i = 0; t->rkts && i < t->ntopics; i++)
		if (t->rkts[i])
			rd_kafka_topic_destroy(t->rkts[i]);
	free(t->rkts);
	if (t->started)
		rd_kafka_topic_partition_list_destroy(t->started);
	if (t->rk)
		rd_kafka_destroy(t->rk);
	if (t->pending)
		rd_kafka_topic_partition_list_destroy(t->pending);
	for (size_t i = 0; i < t->nparts; i++)
		free(t->parts[i].topic);
	free(t->parts);
	free(t->topics);
	dp_expr_free(t->filter);
	dp_buf_free(&t->line);
	dp_buf_free(&t->err);
	dp_cli_free(&t->common);
}

int
main(int argc, char **argv)
{
	struct tail t;
	int ev, status;

	memset(&t, 0, sizeof(t));
	dp_log_init("dp-tail");
	dp_cli_init(&t.common);
	t.timeout_ms = 10000;

	/* 1. options */
	if (parse_options(&t, argc, argv) < 0 || (!t.common.help && !t.common.version &&
	                                          !t.common.dot && validate(&t) < 0)) {
		fputs("Try 'dp-tail --help' for more information.\n", stderr);
		cleanup(&t);
		return DP_EX_USAGE;
	}
	if ((status = dp_cli_answer(&t.common, usage, &machine)) >= 0) {
		cleanup(&t);
		return status;
	}

	/* 2. resources */
	t.simple = !t.group && !t.regex;
	dp_sig_install();
	dp_fsm_init(&t.fsm, &machine, t.common.trace_states);
	dp_progress_init(&t.prog, t.progress);
	t.out = dp_out_new(STDOUT_FILENO, 256 * 1024);
	t.pending = rd_kafka_topic_partition_list_new(8);
	if (!t.out || !t.pending) {
		dp_err("out of memory");
		cleanup(&t);
		return DP_EX_SOFTWARE;
	}
	if ((status = open_kafka(&t)) != 0) {
		dp_out_free(t.out);
		cleanup(&t);
		return status;
	}

	/* 3. the machine */
	dp_fsm_step(&t.fsm, E_START, &t);
	ev = connect_cluster(&t);
	dp_fsm_step(&t.fsm, ev, &t);
	if (t.fsm.state == S_CONSUMING) {
		ev = consume(&t);
		dp_fsm_step(&t.fsm, ev, &t);
		ev = finish(&t, ev);
		dp_fsm_step(&t.fsm, ev, &t);
	}

	/* 4. flush and report */
	dp_progress_tick(&t.prog, "records", t.consumed, NULL, true);
	if (t.skipped)
		dp_warn("%llu record%s skipped: value not JSON", (unsigned long long)t.skipped,
		        t.skipped == 1 ? "" : "s");
	status = t.status;
	if (dp_out_closed(t.out))
		status = status == DP_EX_IOERR ? DP_EX_OK : status;
	if (dp_out_free(t.out) < 0 && errno != EPIPE && !status)
		status = DP_EX_IOERR;
	if (dp_out_close_stdout() < 0 && errno != EPIPE && !status)
		status = DP_EX_IOERR;
	cleanup(&t);
	return status;
}
