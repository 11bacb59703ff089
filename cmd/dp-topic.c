/*
 * dp-topic -- topic administration that scripts can trust.
 *
 * One command for what Kafka splits between kafka-topics and
 * kafka-configs: create (also declaratively from NDJSON specs), list,
 * describe, alter configs, add partitions, delete, and show offsets and
 * lag.  Every change prints one result record per topic and every kind
 * of failure has its own exit status, so a script can apply the same
 * topic list again and again and tell "already there" from "broken".
 *
 * The Kafka work lives in lib/kafka/admin.c, which dp-coord shares; this file
 * parses the command line, drives the state machine and prints.
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

#include "core/buf.h"
#include "core/cli.h"
#include "core/exit.h"
#include "core/frame.h"
#include "core/fsm.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/out.h"
#include "core/table.h"
#include "json/write.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "pg/conn.h"
#include "pg/offsets.h"

enum subcmd { SC_NONE, SC_CREATE, SC_LIST, SC_DESCRIBE, SC_ALTER, SC_ADD_PARTITIONS,
              SC_DELETE, SC_OFFSETS };
static const char *const subcmd_names[] = {
	"", "create", "list", "describe", "alter", "add-partitions", "delete", "offsets",
};
#define NSUBCMDS (sizeof(subcmd_names) / sizeof(subcmd_names[0]))

enum outfmt { OUT_AUTO, OUT_TABLE, OUT_JSON, OUT_NAMES };

/* Options that only some subcommands take, for validate(). */
enum {
	G_PARTITIONS = 1 << 0, G_REPLICATION = 1 << 1, G_TOPIC_CONFIG = 1 << 2,
	G_IF_NOT_EXISTS = 1 << 3, G_IF_EXISTS = 1 << 4, G_DRY_RUN = 1 << 5,
	G_PATTERN = 1 << 6, G_INTERNAL = 1 << 7, G_YES = 1 << 8, G_SET = 1 << 9,
	G_DELETE = 1 << 10, G_GROUP = 1 << 11, G_MAX_LINE = 1 << 12, G_DB = 1 << 13,
};

/* One topic named on the command line or in a spec, and what became of it. */
struct item {
	struct dp_admin_result res;     /* name, status, error */
	const char *action;             /* static; NULL while undecided */
	int32_t partitions;             /* -1 unknown */
	int32_t replication;            /* -1 unknown */
	int32_t previous;               /* add-partitions: count before */
	const struct dp_admin_spec *spec;   /* create: borrowed from t->specs */
};

struct topic {
	/* options */
	struct dp_common common;
	enum subcmd sub;
	const char **names;             /* borrowed from argv */
	size_t nnames;
	bool from_stdin;
	uint64_t max_line;              /* create -: --max-line-bytes */
	int32_t partitions;             /* -1: not given */
	int32_t replication;
	struct dp_kv *tconfig;          /* -c, last of a key wins; owned */
	size_t ntconfig;
	struct dp_kv *set;              /* --set; owned */
	size_t nset;
	const char **del;               /* --delete; strings borrowed */
	size_t ndel;
	bool if_not_exists, if_exists, dry_run, internal, yes;
	const char *pattern;
	regex_t re;
	bool re_ok;
	const char *group;
	const char *db;                 /* offsets -g: --db, else $DP_PG, else NULL */
	char *db_arg;                   /* owned: --db's copy, its argv bytes blanked */
	const char *db_from;            /* "--db" or "$DP_PG", for messages */
	enum outfmt fmt;
	unsigned given;

	/* resources */
	rd_kafka_t *rk;
	struct dp_admin_spec *specs;    /* create; owned */
	size_t nspecs;
	struct item *items;
	size_t nitems;
	struct dp_admin_topics md;      /* metadata, all topics */
	struct dp_admin_configs *configs;   /* describe: per item */
	int method;                     /* alter */
	struct dp_buf rec;              /* output scratch */
	struct dp_table *table;
	struct dp_sinkoffset *stored;   /* offsets -g: dp-sink-pg's rows of the group */
	size_t nstored;

	/* state */
	int status;                     /* exit status so far */
	struct dp_fsm fsm;
};

/* ---- state machine ---------------------------------------------------- */

enum state { S_IDLE, S_CHECKING, S_CONNECTING, S_REQUESTING, S_REPORTING, S_DONE, S_FAILED,
             NSTATES };
enum event { E_START, E_BAD_INPUT, E_NOTHING_TO_SEND, E_CHECKED, E_CONNECTED, E_UNREACHABLE,
             E_SIGNAL, E_ANSWERED, E_NO_ANSWER, E_ALL_OK, E_ITEMS_FAILED, E_WRITE_FAILED,
             NEVENTS };

static const char *const state_names[NSTATES] = {
	"idle", "checking", "connecting", "requesting", "reporting", "done", "failed",
};
static const char *const event_names[NEVENTS] = {
	"start", "bad_input", "nothing_to_send", "checked", "connected", "unreachable",
	"signal", "answered", "no_answer", "all_ok", "items_failed", "write_failed",
};

static int act_check(struct dp_fsm *m, void *ctx);
static int act_connect(struct dp_fsm *m, void *ctx);
static int act_request(struct dp_fsm *m, void *ctx);
static int act_report(struct dp_fsm *m, void *ctx);

static const struct dp_fsm_row rows[] = {
	{ S_IDLE,       E_START,           S_CHECKING,   act_check },
	{ S_CHECKING,   E_BAD_INPUT,       S_FAILED,     NULL },
	{ S_CHECKING,   E_NOTHING_TO_SEND, S_REPORTING,  act_report },
	{ S_CHECKING,   E_CHECKED,         S_CONNECTING, act_connect },
	{ S_CONNECTING, E_CONNECTED,       S_REQUESTING, act_request },
	{ S_CONNECTING, E_UNREACHABLE,     S_FAILED,     NULL },
	{ S_CONNECTING, E_SIGNAL,          S_FAILED,     NULL },
	{ S_REQUESTING, E_ANSWERED,        S_REPORTING,  act_report },
	{ S_REQUESTING, E_NO_ANSWER,       S_REPORTING,  act_report },
	{ S_REPORTING,  E_ALL_OK,          S_DONE,       NULL },
	{ S_REPORTING,  E_ITEMS_FAILED,    S_FAILED,     NULL },
	{ S_REPORTING,  E_WRITE_FAILED,    S_FAILED,     NULL },
};
static const struct dp_fsm_final finals[] = { { S_DONE, 0 }, { S_FAILED, DP_FSM_REASON } };

static const struct dp_fsm_def machine = {
	"dp-topic", state_names, NSTATES, event_names, NEVENTS,
	rows, DP_FSM_COUNT(rows), S_IDLE, finals, DP_FSM_COUNT(finals),
};

/* ---- options ---------------------------------------------------------- */

enum {
	OPT_IF_NOT_EXISTS = DP_OPT_CMD, OPT_IF_EXISTS, OPT_DRY_RUN, OPT_PATTERN,
	OPT_INTERNAL, OPT_YES, OPT_SET, OPT_DELETE, OPT_MAX_LINE, OPT_DB,
};

static const struct option longopts[] = {
	{ "partitions",         required_argument, NULL, 'p' },
	{ "replication-factor", required_argument, NULL, 'r' },
	{ "topic-config",       required_argument, NULL, 'c' },
	{ "if-not-exists",      no_argument,       NULL, OPT_IF_NOT_EXISTS },
	{ "if-exists",          no_argument,       NULL, OPT_IF_EXISTS },
	{ "dry-run",            no_argument,       NULL, OPT_DRY_RUN },
	{ "pattern",            required_argument, NULL, OPT_PATTERN },
	{ "internal",           no_argument,       NULL, OPT_INTERNAL },
	{ "yes",                no_argument,       NULL, OPT_YES },
	{ "set",                required_argument, NULL, OPT_SET },
	{ "delete",             required_argument, NULL, OPT_DELETE },
	{ "group",              required_argument, NULL, 'g' },
	{ "output",             required_argument, NULL, 'o' },
	{ "max-line-bytes",     required_argument, NULL, OPT_MAX_LINE },
	{ "db",                 required_argument, NULL, OPT_DB },
	DP_CLI_KAFKA_LONG,
	DP_CLI_BASE_LONG,
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *fp)
{
	fputs("usage: dp-topic create NAME... [-p N] [-r N] [-c KEY=VALUE]... [--if-not-exists] [--dry-run]\n"
	      "       dp-topic create - [--if-not-exists] [--dry-run] < specs.ndjson\n"
	      "       dp-topic list [--pattern REGEX] [--internal]\n"
	      "       dp-topic describe NAME...\n"
	      "       dp-topic alter NAME... [--set KEY=VALUE]... [--delete KEY]... [--dry-run]\n"
	      "       dp-topic add-partitions NAME... -p N [--dry-run]\n"
	      "       dp-topic delete NAME... [--if-exists] [--dry-run]\n"
	      "       dp-topic delete --pattern REGEX --yes [--dry-run]\n"
	      "       dp-topic offsets NAME... [-g GROUP [--db CONNINFO]]\n"
	      "\n"
	      "Create, inspect, change and delete Kafka topics.  Prints NDJSON when stdout is\n"
	      "not a terminal, an aligned table when it is.\n"
	      "\n"
	      "Topic options:\n"
	      "  -p, --partitions N          partition count (create); new total (add-partitions)\n"
	      "  -r, --replication-factor N  replicas per partition (create; default: broker's)\n"
	      "  -c, --topic-config KEY=VALUE  topic config for create, repeatable\n"
	      "      --if-not-exists         create: an existing topic is not an error\n"
	      "      --if-exists             delete: a missing topic is not an error\n"
	      "      --dry-run               let the broker validate, change nothing\n"
	      "      --pattern REGEX         list, delete: topics whose whole name matches\n"
	      "      --internal              list: include internal topics (names starting __)\n"
	      "      --yes                   delete --pattern: really delete what matches\n"
	      "      --set KEY=VALUE         alter: set a topic config, repeatable\n"
	      "      --delete KEY            alter: remove a topic config override, repeatable\n"
	      "  -g, --group GROUP           offsets: also show GROUP's committed offsets and lag\n"
	      "      --db CONNINFO           offsets -g: and the offsets dp-sink-pg stored for\n"
	      "                              GROUP in this database (default $DP_PG)\n"
	      "      --max-line-bytes N      create -: a longer spec line is bad (default "
	      DP_LINES_MAX_DEFAULT_ARG ")\n"
	      "\n"
	      "Output:\n"
	      "  -o, --output FORMAT         table, json, or names (list only)\n", fp);
	dp_cli_help_common(fp, true);
	fputs("\nExit status: 0 ok, 1 several topics failed differently, 64 usage, 65 bad spec,\n"
	      "69 cluster unavailable, 74 stdout error or closed, 78 unknown config key,\n"
	      "80 exists, 81 does not exist, 82 invalid name or spec, 83 replication factor\n"
	      "above broker count, 130/143 SIGINT/SIGTERM before it was done.\n"
	      "See dp-topic(1).\n", fp);
}

static int
parse_options(void *ctx, int argc, char **argv)
{
	struct topic *t = ctx;
	const char *shortopts = "p:r:c:g:o:" DP_CLI_KAFKA_SHORT DP_CLI_BASE_SHORT;
	int opt;
	uint64_t n;

	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (dp_parse_u64("--partitions", optarg, 1, INT32_MAX, &n) < 0)
				return -1;
			t->partitions = (int32_t)n;
			t->given |= G_PARTITIONS;
			break;
		case 'r':
			if (dp_parse_u64("--replication-factor", optarg, 1, INT16_MAX, &n) < 0)
				return -1;
			t->replication = (int32_t)n;
			t->given |= G_REPLICATION;
			break;
		case 'c':
			if (dp_kv_put(&t->tconfig, &t->ntconfig, optarg) < 0) {
				dp_err("invalid --topic-config '%s': expected KEY=VALUE", optarg);
				return -1;
			}
			t->given |= G_TOPIC_CONFIG;
			break;
		case OPT_SET:
			if (dp_kv_add(&t->set, &t->nset, optarg) < 0) {
				dp_err("invalid --set '%s': expected KEY=VALUE", optarg);
				return -1;
			}
			t->given |= G_SET;
			break;
		case OPT_DELETE: {
			const char **d;
			if (!*optarg || strchr(optarg, '=')) {
				dp_err("invalid --delete '%s': expected a config KEY", optarg);
				return -1;
			}
			d = realloc(t->del, (t->ndel + 1) * sizeof(*d));
			if (!d)
				return -1;
			t->del = d;
			t->del[t->ndel++] = optarg;
			t->given |= G_DELETE;
			break;
		}
		case OPT_MAX_LINE:
			if (dp_parse_size("--max-line-bytes", optarg, 1, (uint64_t)1 << 40, "1024G",
			                  &t->max_line) < 0)
				return -1;
			t->given |= G_MAX_LINE;
			break;
		case OPT_IF_NOT_EXISTS:
			t->if_not_exists = true;
			t->given |= G_IF_NOT_EXISTS;
			break;
		case OPT_IF_EXISTS:
			t->if_exists = true;
			t->given |= G_IF_EXISTS;
			break;
		case OPT_DRY_RUN:
			t->dry_run = true;
			t->given |= G_DRY_RUN;
			break;
		case OPT_PATTERN:
			t->pattern = optarg;
			t->given |= G_PATTERN;
			break;
		case OPT_INTERNAL:
			t->internal = true;
			t->given |= G_INTERNAL;
			break;
		case OPT_YES:
			t->yes = true;
			t->given |= G_YES;
			break;
		case 'g':
			if (!*optarg) {
				dp_err("invalid --group: empty");
				return -1;
			}
			t->group = optarg;
			t->given |= G_GROUP;
			break;
		case OPT_DB: {
			bool had;
			free(t->db_arg);
			if (!(t->db = t->db_arg = dp_pg_conninfo_hide(optarg, &had))) {
				dp_err("out of memory");
				return -1;
			}
			t->db_from = "--db";
			t->given |= G_DB;
			if (had)
				dp_warn("--db holds a password, which other users of this machine "
				        "may see in the process list: prefer ~/.pgpass or $DP_PG");
			break;
		}
		case 'o':
			if (strcmp(optarg, "table") == 0) {
				t->fmt = OUT_TABLE;
			} else if (strcmp(optarg, "json") == 0) {
				t->fmt = OUT_JSON;
			} else if (strcmp(optarg, "names") == 0) {
				t->fmt = OUT_NAMES;
			} else {
				dp_err("invalid --output '%s': expected table, json or names", optarg);
				return -1;
			}
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
		const char *s = argv[optind++];
		for (size_t i = 1; i < NSUBCMDS; i++)
			if (strcmp(s, subcmd_names[i]) == 0)
				t->sub = (enum subcmd)i;
		if (t->sub == SC_NONE) {
			dp_err("unknown subcommand '%s' (expected create, list, describe, alter, "
			       "add-partitions, delete or offsets)", s);
			return -1;
		}
	}
	t->names = (const char **)argv + optind;
	t->nnames = (size_t)(argc - optind);
	return 0;
}

static const char *const option_names[] = {
	"--partitions", "--replication-factor", "--topic-config", "--if-not-exists",
	"--if-exists", "--dry-run", "--pattern", "--internal", "--yes", "--set",
	"--delete", "--group", "--max-line-bytes", "--db",
};

/* All option combinations are checked here, once. */
static int
validate(void *ctx)
{
	struct topic *t = ctx;
	static const unsigned allowed[] = {
		[SC_CREATE] = G_PARTITIONS | G_REPLICATION | G_TOPIC_CONFIG | G_IF_NOT_EXISTS |
		              G_DRY_RUN | G_MAX_LINE,
		[SC_LIST] = G_PATTERN | G_INTERNAL,
		[SC_DESCRIBE] = 0,
		[SC_ALTER] = G_SET | G_DELETE | G_DRY_RUN,
		[SC_ADD_PARTITIONS] = G_PARTITIONS | G_DRY_RUN,
		[SC_DELETE] = G_IF_EXISTS | G_PATTERN | G_YES | G_DRY_RUN,
		[SC_OFFSETS] = G_GROUP | G_DB,
	};
	const char *sub = subcmd_names[t->sub];

	if (t->sub == SC_NONE) {
		dp_err("no subcommand (expected create, list, describe, alter, add-partitions, "
		       "delete or offsets)");
		return -1;
	}
	for (size_t i = 0; i < sizeof(option_names) / sizeof(option_names[0]); i++)
		if ((t->given & (1u << i)) && !(allowed[t->sub] & (1u << i))) {
			dp_err("%s cannot be used with %s", option_names[i], sub);
			return -1;
		}
	if ((t->given & G_DB) && !t->group) {
		dp_err("--db shows the offsets dp-sink-pg stored for a group: it needs -g GROUP");
		return -1;
	}
	if (t->sub == SC_OFFSETS && t->group && !t->db) {
		const char *env = getenv("DP_PG");
		if (env && *env) {
			t->db = env;
			t->db_from = "$DP_PG";
		}
	}
	if (t->db) {
		struct dp_buf err = DP_BUF_INIT;
		if (dp_pg_conninfo_check(t->db, &err) < 0) {
			dp_err("invalid %s: %s", t->db_from, dp_buf_str(&err));
			dp_buf_free(&err);
			return -1;
		}
		dp_buf_free(&err);
	}
	if (t->fmt == OUT_NAMES && t->sub != SC_LIST) {
		dp_err("--output names is only for list");
		return -1;
	}
	if (t->pattern) {
		/* The whole name must match: "orders" must not select "orders-dlq". */
		struct dp_buf re = DP_BUF_INIT;
		int rc = dp_buf_addf(&re, "^(%s)$", t->pattern) < 0
		         ? REG_ESPACE : regcomp(&t->re, re.data, REG_EXTENDED | REG_NOSUB);
		dp_buf_free(&re);
		if (rc) {
			char why[256];
			regerror(rc, &t->re, why, sizeof(why));
			dp_err("invalid --pattern '%s': %s", t->pattern, why);
			return -1;
		}
		t->re_ok = true;
	}
	switch (t->sub) {
	case SC_LIST:
		if (t->nnames) {
			dp_err("list takes no topic names (use --pattern REGEX)");
			return -1;
		}
		return 0;
	case SC_CREATE:
		for (size_t i = 0; i < t->nnames; i++)
			if (strcmp(t->names[i], "-") == 0) {
				if (t->nnames > 1) {
					dp_err("create -: specs come from stdin; name no topics besides '-'");
					return -1;
				}
				t->from_stdin = true;
			}
		if ((t->given & G_MAX_LINE) && !t->from_stdin) {
			dp_err("--max-line-bytes is only for create -, which reads specs from stdin");
			return -1;
		}
		break;
	case SC_ALTER:
		if (!t->nset && !t->ndel) {
			dp_err("alter needs at least one --set KEY=VALUE or --delete KEY");
			return -1;
		}
		for (size_t i = 0; i < t->ndel; i++)
			for (size_t j = 0; j < t->nset; j++)
				if (strcmp(t->del[i], t->set[j].key) == 0) {
					dp_err("config '%s' is both in --set and --delete", t->del[i]);
					return -1;
				}
		break;
	case SC_ADD_PARTITIONS:
		if (t->partitions < 0) {
			dp_err("add-partitions needs -p N, the new total partition count");
			return -1;
		}
		break;
	case SC_DELETE:
		if (t->pattern && t->nnames) {
			dp_err("delete takes topic names or --pattern, not both");
			return -1;
		}
		if (t->pattern && !t->yes && !t->dry_run) {
			dp_err("delete --pattern deletes every topic whose name matches: add --yes "
			       "(or --dry-run to see which)");
			return -1;
		}
		if (t->yes && !t->pattern) {
			dp_err("--yes is only needed with delete --pattern");
			return -1;
		}
		if (t->pattern)
			return 0;
		break;
	default:
		break;
	}
	if (t->nnames == 0) {
		dp_err("%s needs at least one topic name", sub);
		return -1;
	}
	return 0;
}

/* ---- items and status ------------------------------------------------- */

static int
add_item(struct topic *t, const char *name, const struct dp_admin_spec *spec)
{
	struct item *p = realloc(t->items, (t->nitems + 1) * sizeof(*p));

	if (!p)
		return -1;
	t->items = p;
	p = &t->items[t->nitems];
	memset(p, 0, sizeof(*p));
	p->partitions = spec ? spec->partitions : -1;
	p->replication = spec ? spec->replication_factor : -1;
	p->previous = -1;
	p->spec = spec;
	if (!(p->res.name = strdup(name)))
		return -1;
	t->nitems++;
	return 0;
}

/*
 * Check every name locally, so a typo is reported without a round trip
 * and never reaches the broker.  Returns how many items are left.
 */
static size_t
check_items(struct topic *t)
{
	size_t left = 0;

	for (size_t i = 0; i < t->nitems; i++) {
		struct item *it = &t->items[i];
		struct dp_buf why = DP_BUF_INIT;
		if (dp_admin_check_name(it->res.name, &why)) {
			dp_admin_result_fail(&it->res, DP_EX_INVALID, 0, "%s", dp_buf_str(&why));
		} else {
			for (size_t j = 0; j < i; j++)
				if (strcmp(t->items[j].res.name, it->res.name) == 0) {
					dp_admin_result_fail(&it->res, DP_EX_INVALID, 0,
					                     "topic is named more than once");
					break;
				}
		}
		dp_buf_free(&why);
		if (!it->res.status)
			left++;
	}
	return left;
}

/* Names of the items still undecided, and where they sit in t->items. */
static size_t
pending(struct topic *t, const char **names, size_t *idx)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nitems; i++)
		if (!t->items[i].res.status && !t->items[i].action) {
			names[n] = t->items[i].res.name;
			idx[n++] = i;
		}
	return n;
}

/* Copy a library result onto its item; ownership of the message moves. */
static void
take_result(struct item *it, struct dp_admin_result *r)
{
	it->res.status = r->status;
	it->res.err = r->err;
	free(it->res.error);
	it->res.error = r->error;
	r->error = NULL;
}

/*
 * The exit status of the whole run: 0, the one status every failure
 * shares, or DP_EX_PARTIAL when they differ.
 */
static void
note_status(struct topic *t, int st)
{
	if (!st)
		return;
	if (!t->status)
		t->status = st;
	else if (t->status != st)
		t->status = DP_EX_PARTIAL;
}

/* ---- create ----------------------------------------------------------- */

/* Defaults from -p/-r/-c for a spec; what the spec itself says wins. */
static int
apply_defaults(struct topic *t, struct dp_admin_spec *s)
{
	if (s->partitions < 0)
		s->partitions = t->partitions;
	if (s->replication_factor < 0)
		s->replication_factor = t->replication;
	for (size_t i = 0; i < t->ntconfig; i++) {
		bool has = false;
		for (size_t j = 0; j < s->nconfig; j++)
			if (strcmp(s->config[j].key, t->tconfig[i].key) == 0)
				has = true;
		if (has)
			continue;
		struct dp_buf pair = DP_BUF_INIT;
		int rc = dp_buf_addf(&pair, "%s=%s", t->tconfig[i].key, t->tconfig[i].value);
		if (rc == 0)
			rc = dp_kv_add(&s->config, &s->nconfig, pair.data);
		dp_buf_free(&pair);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int
add_spec(struct topic *t, struct dp_admin_spec *s)
{
	struct dp_admin_spec *p = realloc(t->specs, (t->nspecs + 1) * sizeof(*p));

	if (!p)
		return -1;
	t->specs = p;
	t->specs[t->nspecs++] = *s;
	return 0;
}

static bool
blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/*
 * Read every spec before anything is sent: a file with one bad line
 * changes nothing at all, so fixing it and running again is safe.
 */
static int
read_specs(struct topic *t)
{
	struct dp_lines *in = dp_lines_new(STDIN_FILENO, DP_LINES_STRICT);
	const char *line;
	size_t len;
	int r, status = 0;

	if (!in) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	dp_lines_set_max(in, t->max_line);
	while ((r = dp_lines_next(in, &line, &len)) != DP_LINES_EOF) {
		unsigned long lineno = dp_lines_lineno(in);
		if (r == DP_LINES_ERR) {
			if (errno == EINTR)
				continue;
			dp_err("cannot read stdin: %s", strerror(errno));
			status = DP_EX_IOERR;
			break;
		}
		if (r == DP_LINES_NOMEM) {
			dp_err("out of memory reading line %lu", lineno + 1);
			status = DP_EX_SOFTWARE;
			break;
		}
		if (r == DP_LINES_LONG) {
			dp_err("stdin line %lu: line of %zu bytes is longer than --max-line-bytes "
			       "(%llu)", lineno, len, (unsigned long long)t->max_line);
			status = DP_EX_DATAERR;
			continue;
		}
		if (r == DP_LINES_BAD) {
			dp_err("stdin line %lu: %s at byte %zu", lineno, dp_lines_error(in),
			       dp_lines_error_offset(in) + 1);
			status = DP_EX_DATAERR;
			continue;
		}
		if (blank(line, len))
			continue;
		struct dp_admin_spec s;
		struct dp_buf err = DP_BUF_INIT;
		if (dp_admin_spec_parse(line, len, &s, &err) < 0) {
			dp_err("stdin line %lu: %s", lineno, dp_buf_str(&err));
			dp_buf_free(&err);
			dp_admin_spec_clear(&s);
			status = DP_EX_DATAERR;
			continue;
		}
		dp_buf_free(&err);
		if (apply_defaults(t, &s) < 0 || add_spec(t, &s) < 0) {
			dp_admin_spec_clear(&s);
			dp_err("out of memory");
			status = DP_EX_SOFTWARE;
			break;
		}
	}
	dp_lines_free(in);
	return status;
}

/* The specs for create: from stdin, or one per NAME with -p/-r/-c. */
static int
build_specs(struct topic *t)
{
	if (t->from_stdin) {
		int st = read_specs(t);
		if (st)
			return st;
	} else {
		for (size_t i = 0; i < t->nnames; i++) {
			struct dp_admin_spec s;
			memset(&s, 0, sizeof(s));
			s.partitions = -1;
			s.replication_factor = -1;
			s.name = strdup(t->names[i]);
			if (!s.name || apply_defaults(t, &s) < 0 || add_spec(t, &s) < 0) {
				dp_admin_spec_clear(&s);
				dp_err("out of memory");
				return DP_EX_SOFTWARE;
			}
		}
	}
	for (size_t i = 0; i < t->nspecs; i++)
		if (add_item(t, t->specs[i].name, &t->specs[i]) < 0) {
			dp_err("out of memory");
			return DP_EX_SOFTWARE;
		}
	return 0;
}

/* Fill partitions and replication from metadata where the broker chose. */
static void
fill_from_metadata(struct topic *t)
{
	for (size_t i = 0; i < t->nitems; i++) {
		struct item *it = &t->items[i];
		const struct dp_admin_topic *tp;
		if (it->res.status || !it->action || strcmp(it->action, "would-create") == 0)
			continue;
		tp = dp_admin_topics_find(&t->md, it->res.name);
		if (!tp || tp->npartitions == 0)
			continue;
		if (strcmp(it->action, "exists") == 0 && it->spec) {
			/* Declarative use: say when the live topic drifted from the spec. */
			if (it->spec->partitions > 0 && it->spec->partitions != tp->npartitions)
				dp_warn("topic '%s' exists with %d partitions, not %d", it->res.name,
				        tp->npartitions, (int)it->spec->partitions);
			if (it->spec->replication_factor > 0 &&
			    it->spec->replication_factor != tp->replication_factor)
				dp_warn("topic '%s' exists with replication factor %d, not %d",
				        it->res.name, tp->replication_factor,
				        (int)it->spec->replication_factor);
		}
		it->partitions = tp->npartitions;
		it->replication = tp->replication_factor;
	}
}

static int
run_create(struct topic *t)
{
	struct dp_admin_spec *send = calloc(t->nitems + 1, sizeof(*send));
	struct dp_admin_result *res = calloc(t->nitems + 1, sizeof(*res));
	size_t *idx = calloc(t->nitems + 1, sizeof(*idx));
	size_t n = 0;
	int st, ev = E_ANSWERED;
	bool lookup = false;

	if (!send || !res || !idx) {
		free(send); free(res); free(idx);
		dp_err("out of memory");
		t->status = DP_EX_SOFTWARE;
		return E_NO_ANSWER;
	}
	for (size_t i = 0; i < t->nitems; i++)
		if (!t->items[i].res.status) {
			send[n] = *t->items[i].spec;    /* shallow: the strings stay in t->specs */
			idx[n++] = i;
		}
	st = dp_admin_create(t->rk, send, n, t->dry_run, (int)t->common.kafka.timeout_ms, res);
	if (st)
		ev = E_NO_ANSWER;
	for (size_t k = 0; k < n; k++) {
		struct item *it = &t->items[idx[k]];
		if (!res[k].status) {
			it->action = t->dry_run ? "would-create" : "created";
			lookup |= !t->dry_run;
			/*
			 * Return only once the broker's metadata shows the topic,
			 * so that "create, then publish" works in a script.
			 */
			if (!t->dry_run) {
				struct dp_buf werr = DP_BUF_INIT;
				int st2 = dp_kafka_await_topic(t->rk, it->spec->name,
				                               (int)t->common.kafka.timeout_ms, NULL, &werr);
				if (st2 && st2 != DP_KAFKA_STOPPED)
					dp_warn("topic '%s' was created but is not usable yet: %s",
					        it->spec->name, dp_buf_str(&werr));
				dp_buf_free(&werr);
			}
		} else if (res[k].err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && t->if_not_exists) {
			it->action = "exists";
			lookup = true;
		} else {
			take_result(it, &res[k]);
		}
	}
	dp_admin_results_free(res, n);
	free(send);
	free(idx);
	if (lookup && ev == E_ANSWERED) {
		struct dp_buf err = DP_BUF_INIT;
		/* Only decoration: without it the requested numbers are shown. */
		if (dp_admin_list(t->rk, (int)t->common.kafka.timeout_ms, &t->md, &err) == 0)
			fill_from_metadata(t);
		else
			dp_info("%s", dp_buf_str(&err));
		dp_buf_free(&err);
	}
	return ev;
}

/* ---- list, describe, offsets ------------------------------------------ */

/*
 * All topics' metadata.  When it cannot be had, every topic still
 * undecided fails with the reason (or, with none named, the run does).
 */
static int
fetch_metadata(struct topic *t)
{
	struct dp_buf err = DP_BUF_INIT;
	const char **names = calloc(t->nitems + 1, sizeof(*names));
	size_t n = 0;
	bool any = false;
	int st;

	/* The topics about to be described: a moment to show up when just created. */
	for (size_t i = 0; names && i < t->nitems; i++)
		if (!t->items[i].res.status && !t->items[i].action && t->items[i].res.name)
			names[n++] = t->items[i].res.name;
	st = dp_admin_list_for(t->rk, names, n, (int)t->common.kafka.timeout_ms, &t->md, &err);
	free(names);

	for (size_t i = 0; st && i < t->nitems; i++)
		if (!t->items[i].res.status && !t->items[i].action) {
			dp_admin_result_fail(&t->items[i].res, st, 0, "%s", dp_buf_str(&err));
			any = true;
		}
	if (st && !any) {
		dp_err("%s", dp_buf_str(&err));
		note_status(t, st);
	}
	dp_buf_free(&err);
	return st;
}

static bool
listed(const struct topic *t, const struct dp_admin_topic *tp)
{
	if (tp->internal && !t->internal)
		return false;
	return !t->re_ok || regexec(&t->re, tp->name, 0, NULL, 0) == 0;
}

static int
run_list(struct topic *t)
{
	return fetch_metadata(t) ? E_NO_ANSWER : E_ANSWERED;
}

/* Fail the items whose topic is not in the metadata. */
static void
require_existing(struct topic *t)
{
	for (size_t i = 0; i < t->nitems; i++) {
		struct item *it = &t->items[i];
		if (!it->res.status && !dp_admin_topics_find(&t->md, it->res.name))
			dp_admin_result_fail(&it->res, DP_EX_NOTFOUND,
			                     RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
			                     "topic does not exist");
	}
}

static int
run_describe(struct topic *t)
{
	const char **names;
	size_t *idx, n;
	struct dp_admin_configs *cfg;

	if (fetch_metadata(t))
		return E_NO_ANSWER;
	require_existing(t);
	names = calloc(t->nitems + 1, sizeof(*names));
	idx = calloc(t->nitems + 1, sizeof(*idx));
	cfg = calloc(t->nitems + 1, sizeof(*cfg));
	t->configs = calloc(t->nitems + 1, sizeof(*t->configs));
	if (!names || !idx || !cfg || !t->configs) {
		free(names); free(idx); free(cfg);
		dp_err("out of memory");
		t->status = DP_EX_SOFTWARE;
		return E_NO_ANSWER;
	}
	n = pending(t, names, idx);
	int st = dp_admin_describe_configs(t->rk, names, n, (int)t->common.kafka.timeout_ms, cfg);
	for (size_t k = 0; k < n; k++) {
		struct item *it = &t->items[idx[k]];
		if (cfg[k].res.status)
			take_result(it, &cfg[k].res);
		dp_admin_result_clear(&cfg[k].res);
		t->configs[idx[k]] = cfg[k];
		it->action = "described";
	}
	free(cfg);
	free(names);
	free(idx);
	return st ? E_NO_ANSWER : E_ANSWERED;
}

/*
 * The offsets dp-sink-pg stored for the group (offsets -g with --db or
 * $DP_PG).  A database named only by $DP_PG that cannot be read is a
 * warning: the Kafka side is still worth showing.
 */
static void
read_stored(struct topic *t)
{
	struct dp_buf err = DP_BUF_INIT;
	enum dp_pg_kind kind = DP_PG_TRANSIENT;
	int st;

	PGconn *c = dp_pg_connect(t->db, "dp-topic", t->common.kafka.timeout_ms, &kind, &err);
	if (!c)
		st = kind == DP_PG_FATAL ? DP_EX_CONFIG : DP_EX_UNAVAILABLE;
	else
		st = dp_sinkoffsets_read(c, t->group, &t->stored, &t->nstored, &err);
	if (c)
		PQfinish(c);
	if (st && (t->given & G_DB)) {
		dp_err("cannot read the offsets dp-sink-pg stored: %s", dp_buf_str(&err));
		note_status(t, st);
	} else if (st) {
		dp_warn("not showing the offsets dp-sink-pg stored (%s): %s", t->db_from,
		        dp_buf_str(&err));
	}
	dp_buf_free(&err);
}

static int
run_offsets(struct topic *t)
{
	if (fetch_metadata(t))
		return E_NO_ANSWER;
	require_existing(t);
	if (t->group && t->db)
		read_stored(t);
	return E_ANSWERED;
}

/* ---- alter, add-partitions, delete ------------------------------------ */

static int
run_alter(struct topic *t)
{
	const char **names = calloc(t->nitems + 1, sizeof(*names));
	size_t *idx = calloc(t->nitems + 1, sizeof(*idx));
	struct dp_admin_result *res = calloc(t->nitems + 1, sizeof(*res));
	struct dp_admin_change ch = { t->set, t->nset, t->del, t->ndel };
	size_t n;
	int st;

	if (!names || !idx || !res) {
		free(names); free(idx); free(res);
		dp_err("out of memory");
		t->status = DP_EX_SOFTWARE;
		return E_NO_ANSWER;
	}
	n = pending(t, names, idx);
	st = dp_admin_alter(t->rk, names, n, &ch, t->dry_run, (int)t->common.kafka.timeout_ms, res,
	                    &t->method);
	for (size_t k = 0; k < n; k++) {
		struct item *it = &t->items[idx[k]];
		if (res[k].status)
			take_result(it, &res[k]);
		else
			it->action = t->dry_run ? "would-alter" : "altered";
	}
	dp_admin_results_free(res, n);
	free(names);
	free(idx);
	return st ? E_NO_ANSWER : E_ANSWERED;
}

static int
run_add_partitions(struct topic *t)
{
	const char **names;
	size_t *idx, n;
	struct dp_admin_result *res;

	if (fetch_metadata(t))
		return E_NO_ANSWER;
	require_existing(t);
	for (size_t i = 0; i < t->nitems; i++) {
		struct item *it = &t->items[i];
		const struct dp_admin_topic *tp = dp_admin_topics_find(&t->md, it->res.name);
		if (it->res.status || !tp)
			continue;
		it->previous = tp->npartitions;
		it->partitions = tp->npartitions;
		/* Asking again for what is already there is not an error. */
		if (tp->npartitions == t->partitions)
			it->action = "unchanged";
		else if (tp->npartitions > t->partitions)
			dp_admin_result_fail(&it->res, DP_EX_INVALID, RD_KAFKA_RESP_ERR_INVALID_PARTITIONS,
			                     "topic has %d partitions; partitions can be added, "
			                     "never removed", tp->npartitions);
	}
	names = calloc(t->nitems + 1, sizeof(*names));
	idx = calloc(t->nitems + 1, sizeof(*idx));
	res = calloc(t->nitems + 1, sizeof(*res));
	if (!names || !idx || !res) {
		free(names); free(idx); free(res);
		dp_err("out of memory");
		t->status = DP_EX_SOFTWARE;
		return E_NO_ANSWER;
	}
	n = pending(t, names, idx);
	int st = 0;
	if (n) {
		st = dp_admin_add_partitions(t->rk, names, n, t->partitions, t->dry_run,
		                             (int)t->common.kafka.timeout_ms, res);
	}
	for (size_t k = 0; k < n; k++) {
		struct item *it = &t->items[idx[k]];
		if (res[k].status) {
			take_result(it, &res[k]);
		} else {
			it->action = t->dry_run ? "would-add" : "added";
			it->partitions = t->partitions;
		}
	}
	dp_admin_results_free(res, n);
	free(names);
	free(idx);
	return st ? E_NO_ANSWER : E_ANSWERED;
}

static int
run_delete(struct topic *t)
{
	const char **names;
	size_t *idx, n;
	struct dp_admin_result *res;
	int st = 0;

	if ((t->pattern || t->dry_run) && fetch_metadata(t))
		return E_NO_ANSWER;
	if (t->pattern) {
		/* Internal topics are never deleted by pattern, not even with --yes. */
		for (size_t i = 0; i < t->md.n; i++)
			if (!t->md.v[i].internal && listed(t, &t->md.v[i]) &&
			    add_item(t, t->md.v[i].name, NULL) < 0) {
				dp_err("out of memory");
				t->status = DP_EX_SOFTWARE;
				return E_NO_ANSWER;
			}
		if (t->nitems == 0 && !t->if_exists) {
			dp_err("no topic matches --pattern '%s'", t->pattern);
			t->status = DP_EX_NOTFOUND;
		}
	}
	if (t->dry_run) {
		for (size_t i = 0; i < t->nitems; i++) {
			struct item *it = &t->items[i];
			if (it->res.status)
				continue;
			if (dp_admin_topics_find(&t->md, it->res.name))
				it->action = "would-delete";
			else if (t->if_exists)
				it->action = "absent";
			else
				dp_admin_result_fail(&it->res, DP_EX_NOTFOUND,
				                     RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
				                     "topic does not exist");
		}
		return E_ANSWERED;
	}
	names = calloc(t->nitems + 1, sizeof(*names));
	idx = calloc(t->nitems + 1, sizeof(*idx));
	res = calloc(t->nitems + 1, sizeof(*res));
	if (!names || !idx || !res) {
		free(names); free(idx); free(res);
		dp_err("out of memory");
		t->status = DP_EX_SOFTWARE;
		return E_NO_ANSWER;
	}
	n = pending(t, names, idx);
	if (n)
		st = dp_admin_delete(t->rk, names, n, (int)t->common.kafka.timeout_ms, res);
	for (size_t k = 0; k < n; k++) {
		struct item *it = &t->items[idx[k]];
		if (!res[k].status)
			it->action = "deleted";
		else if (res[k].status == DP_EX_NOTFOUND && t->if_exists)
			it->action = "absent";
		else
			take_result(it, &res[k]);
	}
	dp_admin_results_free(res, n);
	free(names);
	free(idx);
	return st ? E_NO_ANSWER : E_ANSWERED;
}


/* ---- output ----------------------------------------------------------- */

static int
emit(struct topic *t, const char *s, size_t n)
{
	if (dp_out_write(t->common.out, s, n) < 0) {
		note_status(t, dp_cmd_stdout_failed(errno));
		return -1;
	}
	return 0;
}

/* Finish the record in t->rec (one JSON object) and write it as a line. */
static int
emit_record(struct topic *t, struct dp_jw *w)
{
	if (dp_jw_finish(w) < 0 || dp_buf_addch(&t->rec, '\n') < 0) {
		dp_err("out of memory");
		note_status(t, DP_EX_SOFTWARE);
		return -1;
	}
	return emit(t, t->rec.data, t->rec.len);
}

static void
begin_record(struct topic *t, struct dp_jw *w)
{
	dp_buf_reset(&t->rec);
	dp_jw_init(w, &t->rec);
	dp_jw_obj(w);
}

/* A count or offset; unknown (< 0) is null. */
static void
kcount(struct dp_jw *w, const char *key, int64_t v)
{
	if (v < 0)
		dp_jw_knull(w, key);
	else
		dp_jw_kint(w, key, v);
}

static int
emit_table(struct topic *t)
{
	struct dp_buf b = DP_BUF_INIT;
	int rc = 0;

	if (!t->table)
		return 0;
	if (dp_table_render(t->table, &b) < 0) {
		dp_err("out of memory");
		note_status(t, DP_EX_SOFTWARE);
		rc = -1;
	} else {
		rc = emit(t, b.data, b.len);
	}
	dp_buf_free(&b);
	dp_table_free(t->table);
	t->table = NULL;
	return rc;
}

/*
 * A table for ncols columns; the columns in the bit set numeric hold
 * numbers and are right-aligned, as numbers read best.
 */
static int
new_table(struct topic *t, const char *const *headers, size_t ncols, unsigned numeric)
{
	dp_table_free(t->table);
	t->table = dp_table_new(headers, ncols);
	if (!t->table) {
		dp_err("out of memory");
		note_status(t, DP_EX_SOFTWARE);
		return -1;
	}
	for (size_t c = 0; c < ncols; c++)
		if (numeric & (1u << c))
			dp_table_align_right(t->table, c);
	return 0;
}

static int
table_row(struct topic *t, const char *const *cells)
{
	if (dp_table_add(t->table, cells) < 0) {
		dp_err("out of memory");
		note_status(t, DP_EX_SOFTWARE);
		return -1;
	}
	return 0;
}

/* A number for a table cell; unknown (< 0) is "-". */
static const char *
cell(char buf[24], int64_t v)
{
	if (v < 0)
		return "-";
	snprintf(buf, 24, "%lld", (long long)v);
	return buf;
}

static const char *
source_name(rd_kafka_ConfigSource_t s)
{
	switch (s) {
	case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG:          return "dynamic_topic";
	case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG:         return "dynamic_broker";
	case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: return "dynamic_default_broker";
	case RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG:          return "static_broker";
	case RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG:                return "default";
	default:                                                   return "unknown";
	}
}

static bool
non_default(const struct dp_admin_config *c)
{
	return c->source != RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG && !c->is_default;
}

/* The verb of a subcommand's error messages. */
static const char *
verb(enum subcmd s)
{
	switch (s) {
	case SC_CREATE:         return "cannot create";
	case SC_DESCRIBE:       return "cannot describe";
	case SC_ALTER:          return "cannot alter";
	case SC_ADD_PARTITIONS: return "cannot add partitions to";
	case SC_DELETE:         return "cannot delete";
	case SC_OFFSETS:        return "cannot get offsets of";
	default:                return "cannot use";
	}
}

static bool
as_table(const struct topic *t)
{
	return t->fmt == OUT_TABLE;
}

static int
change_table(struct topic *t)
{
	static const char *const h_create[] = { "NAME", "ACTION", "PARTITIONS", "REPLICATION", "ERROR" };
	static const char *const h_alter[] = { "NAME", "ACTION", "METHOD", "ERROR" };
	static const char *const h_add[] = { "NAME", "ACTION", "PARTITIONS", "PREVIOUS", "ERROR" };
	static const char *const h_delete[] = { "NAME", "ACTION", "ERROR" };

	switch (t->sub) {
	case SC_CREATE:         return new_table(t, h_create, 5, 1u << 2 | 1u << 3);
	case SC_ALTER:          return new_table(t, h_alter, 4, 0);
	case SC_ADD_PARTITIONS: return new_table(t, h_add, 5, 1u << 2 | 1u << 3);
	default:                return new_table(t, h_delete, 3, 0);
	}
}

static int
change_row(struct topic *t, const struct item *it, const char *action, const char *method)
{
	char p[24], r[24], prev[24];
	const char *err = it->res.error ? it->res.error : "";
	const char *c_create[] = { it->res.name, action, cell(p, it->partitions),
	                           cell(r, it->replication), err };
	const char *c_alter[] = { it->res.name, action, it->res.status ? "-" : method, err };
	const char *c_add[] = { it->res.name, action, cell(p, it->partitions),
	                        cell(prev, it->previous), err };
	const char *c_delete[] = { it->res.name, action, err };

	switch (t->sub) {
	case SC_CREATE:         return table_row(t, c_create);
	case SC_ALTER:          return table_row(t, c_alter);
	case SC_ADD_PARTITIONS: return table_row(t, c_add);
	default:                return table_row(t, c_delete);
	}
}

static void
kv_object(struct dp_jw *w, const char *key, const struct dp_kv *kv, size_t n)
{
	dp_jw_key(w, key);
	dp_jw_obj(w);
	for (size_t c = 0; c < n; c++)
		dp_jw_kstr(w, kv[c].key, kv[c].value);
	dp_jw_end(w);
}

static int
change_record(struct topic *t, const struct item *it, const char *action, const char *method)
{
	struct dp_jw w;

	begin_record(t, &w);
	dp_jw_kstr(&w, "name", it->res.name);
	dp_jw_kstr(&w, "action", action);
	if (t->sub == SC_CREATE) {
		kcount(&w, "partitions", it->partitions);
		kcount(&w, "replication_factor", it->replication);
		kv_object(&w, "config", it->spec ? it->spec->config : NULL,
		          it->spec ? it->spec->nconfig : 0);
	} else if (t->sub == SC_ALTER) {
		dp_jw_kstr(&w, "method", it->res.status ? NULL : method);
		kv_object(&w, "set", t->set, t->nset);
		dp_jw_key(&w, "delete");
		dp_jw_arr(&w);
		for (size_t c = 0; c < t->ndel; c++)
			dp_jw_str(&w, t->del[c]);
		dp_jw_end(&w);
	} else if (t->sub == SC_ADD_PARTITIONS) {
		kcount(&w, "partitions", it->res.status ? -1 : it->partitions);
		kcount(&w, "previous", it->previous);
	}
	dp_jw_kstr(&w, "error", it->res.error);
	dp_jw_kint(&w, "status", it->res.status);
	dp_jw_end(&w);
	return emit_record(t, &w);
}

/* create, alter, add-partitions, delete: one record per topic. */
static void
report_changes(struct topic *t)
{
	const char *method = t->method == DP_ADMIN_METHOD_INCREMENTAL ? "incremental" : "full";

	if (as_table(t) && change_table(t) < 0)
		return;
	for (size_t i = 0; i < t->nitems; i++) {
		struct item *it = &t->items[i];
		const char *action = it->res.status ? "failed" : it->action;

		if (it->res.status)
			dp_err("%s '%s': %s", verb(t->sub), it->res.name, it->res.error);
		note_status(t, it->res.status);
		if ((as_table(t) ? change_row(t, it, action, method)
		                 : change_record(t, it, action, method)) < 0)
			return;
	}
	emit_table(t);
}

static void
report_list(struct topic *t)
{
	static const char *const h[] = { "NAME", "PARTITIONS", "REPLICATION", "INTERNAL" };

	if (as_table(t) && new_table(t, h, 4, 1u << 1 | 1u << 2) < 0)
		return;
	for (size_t i = 0; i < t->md.n; i++) {
		const struct dp_admin_topic *tp = &t->md.v[i];
		struct dp_jw w;
		int rc;
		if (!listed(t, tp))
			continue;
		if (t->fmt == OUT_NAMES) {
			dp_buf_reset(&t->rec);
			rc = dp_buf_addstr(&t->rec, tp->name) < 0 || dp_buf_addch(&t->rec, '\n') < 0
			     ? (note_status(t, DP_EX_SOFTWARE), -1) : emit(t, t->rec.data, t->rec.len);
		} else if (as_table(t)) {
			char p[24], r[24];
			const char *cells[] = { tp->name, cell(p, tp->npartitions),
			                        cell(r, tp->replication_factor),
			                        tp->internal ? "yes" : "no" };
			rc = table_row(t, cells);
		} else {
			begin_record(t, &w);
			dp_jw_kstr(&w, "name", tp->name);
			dp_jw_kint(&w, "partitions", tp->npartitions);
			dp_jw_kint(&w, "replication_factor", tp->replication_factor);
			dp_jw_kbool(&w, "internal", tp->internal);
			dp_jw_end(&w);
			rc = emit_record(t, &w);
		}
		if (rc < 0)
			return;
	}
	emit_table(t);
}

/* Replica ids as "1,2,3" for a table cell (into b). */
static int
ids_text(struct dp_buf *b, const int32_t *v, int n)
{
	dp_buf_reset(b);
	for (int i = 0; i < n; i++)
		if (dp_buf_addf(b, "%s%d", i ? "," : "", (int)v[i]) < 0)
			return -1;
	return dp_buf_addstr(b, "");
}

static void
ids_array(struct dp_jw *w, const char *key, const int32_t *v, int n)
{
	dp_jw_key(w, key);
	dp_jw_arr(w);
	for (int i = 0; i < n; i++)
		dp_jw_int(w, v[i]);
	dp_jw_end(w);
}

/*
 * Watermarks of every partition of tp into low[]/high[] (-1 when the
 * leader did not answer).  Returns 0 or the status of the first failure.
 */
static int
watermarks(struct topic *t, const struct dp_admin_topic *tp, int64_t *low, int64_t *high)
{
	int status = 0;

	for (int p = 0; p < tp->npartitions; p++) {
		struct dp_buf err = DP_BUF_INIT;
		low[p] = high[p] = -1;
		int st = dp_admin_watermarks(t->rk, tp->name, tp->partitions[p].id,
		                             (int)t->common.kafka.timeout_ms, &low[p], &high[p], &err);
		if (st) {
			dp_err("%s", dp_buf_str(&err));
			low[p] = high[p] = -1;
			if (!status)
				status = st;
		}
		dp_buf_free(&err);
	}
	return status;
}

static int
describe_table(struct topic *t, const struct dp_admin_topic *tp,
               const struct dp_admin_configs *cfg, const int64_t *low, const int64_t *high)
{
	static const char *const h_topic[] = { "NAME", "PARTITIONS", "REPLICATION", "INTERNAL" };
	static const char *const h_part[] = { "PARTITION", "LEADER", "REPLICAS", "ISR", "LOW", "HIGH" };
	static const char *const h_cfg[] = { "CONFIG", "VALUE", "SOURCE" };
	struct dp_buf rep = DP_BUF_INIT, isr = DP_BUF_INIT;
	char p[24], r[24];
	const char *cells[] = { tp->name, cell(p, tp->npartitions), cell(r, tp->replication_factor),
	                        tp->internal ? "yes" : "no" };
	int rc = -1;

	if (new_table(t, h_topic, 4, 1u << 1 | 1u << 2) < 0 || table_row(t, cells) < 0 ||
	    emit_table(t) < 0 ||
	    new_table(t, h_part, 6, 1u << 0 | 1u << 1 | 1u << 4 | 1u << 5) < 0)
		goto out;
	for (int i = 0; i < tp->npartitions; i++) {
		const struct dp_admin_partition *pp = &tp->partitions[i];
		char id[24], leader[24], lo[24], hi[24];
		if (ids_text(&rep, pp->replicas, pp->nreplicas) < 0 ||
		    ids_text(&isr, pp->isr, pp->nisr) < 0) {
			dp_err("out of memory");
			note_status(t, DP_EX_SOFTWARE);
			goto out;
		}
		const char *row[] = { cell(id, pp->id), cell(leader, pp->leader), rep.data,
		                      isr.data, cell(lo, low[i]), cell(hi, high[i]) };
		if (table_row(t, row) < 0)
			goto out;
	}
	if (emit(t, "\n", 1) < 0 || emit_table(t) < 0)
		goto out;
	size_t shown = 0;
	for (size_t i = 0; i < cfg->n; i++)
		shown += non_default(&cfg->v[i]);
	if (shown) {
		if (emit(t, "\n", 1) < 0 || new_table(t, h_cfg, 3, 0) < 0)
			goto out;
		for (size_t i = 0; i < cfg->n; i++) {
			const struct dp_admin_config *c = &cfg->v[i];
			const char *row[] = { c->name, c->value ? c->value : "(hidden)",
			                      source_name(c->source) };
			if (non_default(c) && table_row(t, row) < 0)
				goto out;
		}
		if (emit_table(t) < 0)
			goto out;
	}
	rc = 0;
out:
	dp_buf_free(&rep);
	dp_buf_free(&isr);
	return rc;
}

static int
describe_record(struct topic *t, const struct dp_admin_topic *tp,
                const struct dp_admin_configs *cfg, const int64_t *low, const int64_t *high)
{
	struct dp_jw w;

	begin_record(t, &w);
	dp_jw_kstr(&w, "name", tp->name);
	dp_jw_kint(&w, "partitions", tp->npartitions);
	dp_jw_kint(&w, "replication_factor", tp->replication_factor);
	dp_jw_kbool(&w, "internal", tp->internal);
	dp_jw_key(&w, "config");
	dp_jw_obj(&w);
	for (size_t i = 0; i < cfg->n; i++)
		if (non_default(&cfg->v[i]))
			dp_jw_kstr(&w, cfg->v[i].name, cfg->v[i].value);
	dp_jw_end(&w);
	dp_jw_key(&w, "config_source");
	dp_jw_obj(&w);
	for (size_t i = 0; i < cfg->n; i++)
		if (non_default(&cfg->v[i]))
			dp_jw_kstr(&w, cfg->v[i].name, source_name(cfg->v[i].source));
	dp_jw_end(&w);
	dp_jw_key(&w, "partition_info");
	dp_jw_arr(&w);
	for (int i = 0; i < tp->npartitions; i++) {
		const struct dp_admin_partition *pp = &tp->partitions[i];
		dp_jw_obj(&w);
		dp_jw_kint(&w, "partition", pp->id);
		kcount(&w, "leader", pp->leader);
		ids_array(&w, "replicas", pp->replicas, pp->nreplicas);
		ids_array(&w, "isr", pp->isr, pp->nisr);
		kcount(&w, "low", low[i]);
		kcount(&w, "high", high[i]);
		dp_jw_end(&w);
	}
	dp_jw_end(&w);
	dp_jw_end(&w);
	return emit_record(t, &w);
}

static void
report_describe_one(struct topic *t, struct item *it, const struct dp_admin_configs *cfg)
{
	const struct dp_admin_topic *tp = dp_admin_topics_find(&t->md, it->res.name);
	size_t n = (size_t)(tp->npartitions > 0 ? tp->npartitions : 1);
	int64_t *low = calloc(n, sizeof(*low));
	int64_t *high = calloc(n, sizeof(*high));

	if (!low || !high) {
		dp_err("out of memory");
		note_status(t, DP_EX_SOFTWARE);
	} else {
		note_status(t, watermarks(t, tp, low, high));
		if (as_table(t))
			describe_table(t, tp, cfg, low, high);
		else
			describe_record(t, tp, cfg, low, high);
	}
	free(low);
	free(high);
}

/* A topic that could not be looked at: one record naming why. */
static void
report_failed_item(struct topic *t, struct item *it, const char *key)
{
	struct dp_jw w;

	dp_err("%s '%s': %s", verb(t->sub), it->res.name, it->res.error);
	note_status(t, it->res.status);
	if (as_table(t))
		return;
	begin_record(t, &w);
	dp_jw_kstr(&w, key, it->res.name);
	dp_jw_kstr(&w, "error", it->res.error);
	dp_jw_kint(&w, "status", it->res.status);
	dp_jw_end(&w);
	emit_record(t, &w);
}

static void
report_describe(struct topic *t)
{
	bool first = true;

	for (size_t i = 0; i < t->nitems && !dp_out_error(t->common.out); i++) {
		struct item *it = &t->items[i];
		if (it->res.status) {
			report_failed_item(t, it, "name");
			continue;
		}
		if (as_table(t) && !first && emit(t, "\n", 1) < 0)
			return;
		first = false;
		report_describe_one(t, it, &t->configs[i]);
	}
}

/*
 * Lag counts the records the group has not consumed yet.  Without a
 * committed offset the group would start from the beginning (or the end:
 * auto.offset.reset is the consumer's choice), and the whole partition is
 * counted: the larger answer is the safer one for alerting.
 */
static int64_t
lag(int64_t low, int64_t high, int64_t committed)
{
	int64_t from = low >= 0 ? low : 0;

	if (high < 0)
		return -1;
	/*
	 * An offset outside low..high is where no record is: a consumer goes
	 * on where auto.offset.reset says (dp-sink-pg stops), and none of the
	 * partition's records is read yet.
	 */
	if (committed >= from && committed <= high)
		from = committed;
	return high > from ? high - from : 0;
}

/* The offset dp-sink-pg stored for (topic, p), or -1. */
static int64_t
stored_of(const struct topic *t, const char *topic, int p)
{
	for (size_t i = 0; i < t->nstored; i++)
		if (t->stored[i].partition == p && strcmp(t->stored[i].topic, topic) == 0)
			return t->stored[i].next_offset;
	return -1;
}

/* dp-sink-pg stored offsets for topic (NULL: for a topic shown): they are shown. */
static bool
has_stored(const struct topic *t, const char *topic)
{
	for (size_t i = 0; i < t->nstored; i++) {
		if (topic) {
			if (strcmp(t->stored[i].topic, topic) == 0)
				return true;
			continue;
		}
		for (size_t j = 0; j < t->nitems; j++)
			if (!t->items[j].res.status && t->items[j].res.name &&
			    strcmp(t->stored[i].topic, t->items[j].res.name) == 0)
				return true;
	}
	return false;
}

/* An offset of the group outside the partition's records, said on stderr. */
static void
say_outside(const struct topic *t, const char *topic, int p, int64_t low, int64_t high,
            int64_t at, bool stored)
{
	if (at < 0 || high < 0 || (at >= low && at <= high))
		return;
	dp_warn("%s [%d]: the offset %s group '%s' is %lld, %s (low..high watermark "
	        "%lld..%lld): %s", topic, p,
	        stored ? "dp-sink-pg stored for" : "committed by", t->group, (long long)at,
	        at > high ? "past the partition's end" : "before its first record",
	        (long long)low, (long long)high,
	        at <= high ? "retention deleted records before they were read"
	        : stored ? "the topic was deleted and created again, or lost records; dp-sink-pg "
	                   "stops there until its offsets move (dp-sink-pg --reset-offsets)"
	                 : "the topic was deleted and created again, or lost records; a consumer "
	                   "goes on where auto.offset.reset says");
}

static int
offsets_row(struct topic *t, const char *topic, int p, int64_t low, int64_t high,
            int64_t committed)
{
	/* A sink's lag is from what its table holds: the stored offset. */
	bool sink = has_stored(t, topic);
	int64_t stored = sink ? stored_of(t, topic, p) : -1;
	int64_t l = lag(low, high, sink ? stored : committed);
	struct dp_jw w;

	say_outside(t, topic, p, low, high, committed, false);
	say_outside(t, topic, p, low, high, stored, true);
	if (as_table(t)) {
		char id[24], lo[24], hi[24], co[24], st[24], la[24];
		const char *row[] = { topic, cell(id, p), cell(lo, low), cell(hi, high),
		                      cell(co, committed), cell(la, l), cell(st, stored) };
		/* STORED is the last column, there when some topic has stored offsets. */
		return table_row(t, row);
	}
	begin_record(t, &w);
	dp_jw_kstr(&w, "topic", topic);
	dp_jw_kint(&w, "partition", p);
	kcount(&w, "low", low);
	kcount(&w, "high", high);
	if (t->group) {
		dp_jw_kstr(&w, "group", t->group);
		kcount(&w, "committed", committed);
		if (sink)
			kcount(&w, "stored", stored);
		kcount(&w, "lag", l);
	}
	dp_jw_end(&w);
	return emit_record(t, &w);
}

static void
report_offsets_one(struct topic *t, const struct dp_admin_topic *tp)
{
	size_t n = (size_t)(tp->npartitions > 0 ? tp->npartitions : 1);
	int64_t *low = calloc(n, sizeof(*low));
	int64_t *high = calloc(n, sizeof(*high));
	int64_t *committed = calloc(n, sizeof(*committed));

	if (!low || !high || !committed) {
		dp_err("out of memory");
		note_status(t, DP_EX_SOFTWARE);
		goto out;
	}
	note_status(t, watermarks(t, tp, low, high));
	for (int p = 0; p < tp->npartitions; p++)
		committed[p] = -1;
	if (t->group) {
		struct dp_buf err = DP_BUF_INIT;
		int st = dp_admin_committed(t->rk, t->group, tp->name, tp->npartitions,
		                            (int)t->common.kafka.timeout_ms, committed, &err);
		if (st) {
			dp_err("%s", dp_buf_str(&err));
			note_status(t, st);
		}
		dp_buf_free(&err);
	}
	for (int p = 0; p < tp->npartitions; p++)
		if (offsets_row(t, tp->name, p, low[p], high[p], committed[p]) < 0)
			break;
out:
	free(low);
	free(high);
	free(committed);
}

static void
report_offsets(struct topic *t)
{
	static const char *const h[] = { "TOPIC", "PARTITION", "LOW", "HIGH", "COMMITTED", "LAG",
		                          "STORED" };

	if (as_table(t) &&
	    new_table(t, h, !t->group ? 4 : has_stored(t, NULL) ? 7 : 6, 0x7eu) < 0)
		return;
	for (size_t i = 0; i < t->nitems && !dp_out_error(t->common.out); i++) {
		struct item *it = &t->items[i];
		if (it->res.status)
			report_failed_item(t, it, "topic");
		else
			report_offsets_one(t, dp_admin_topics_find(&t->md, it->res.name));
	}
	emit_table(t);
}

/* ---- the machine's actions -------------------------------------------- */

/*
 * idle -> checking: read the specs and check every name locally, so that
 * a typo never reaches the broker and a bad spec file changes nothing.
 */
static int
act_check(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;
	int st = 0;

	if (t->sub == SC_CREATE)
		st = build_specs(t);
	else if (t->sub != SC_LIST && !t->pattern)
		for (size_t i = 0; i < t->nnames && !st; i++)
			if (add_item(t, t->names[i], NULL) < 0) {
				dp_err("out of memory");
				st = DP_EX_SOFTWARE;
			}
	if (st) {
		dp_fsm_fail(m, st);
		return E_BAD_INPUT;
	}
	if (t->sub != SC_LIST && !t->pattern && check_items(t) == 0)
		return E_NOTHING_TO_SEND;
	return E_CHECKED;
}

/* checking -> connecting: make the client and prove the cluster answers. */
static int
act_connect(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;
	struct dp_buf err = DP_BUF_INIT;
	int st;
	/* Looking at a topic must never create it, whatever the broker allows. */
	static const struct dp_kv defaults[] = {
		{ "allow.auto.create.topics", "false" },
	};

	/* A producer handle is the cheapest client that can send admin requests. */
	t->rk = dp_kafka_new(&t->common.kafka, RD_KAFKA_PRODUCER, defaults, 1, NULL, NULL, &err, &st);
	if (t->rk)
		st = dp_kafka_connect(t->rk, &t->common.kafka, NULL, 0, NULL, &err);
	if (st == DP_KAFKA_STOPPED) {
		dp_err("interrupted before the cluster answered");
		dp_fsm_fail(m, DP_EX_TEMPFAIL);
		st = E_SIGNAL;
	} else if (st) {
		dp_err("%s", dp_buf_str(&err));
		dp_fsm_fail(m, st);
		st = E_UNREACHABLE;
	} else {
		st = E_CONNECTED;
	}
	dp_buf_free(&err);
	return st;
}

/* connecting -> requesting: the subcommand's requests. */
static int
act_request(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;

	switch (t->sub) {
	case SC_CREATE:         return run_create(t);
	case SC_LIST:           return run_list(t);
	case SC_DESCRIBE:       return run_describe(t);
	case SC_ALTER:          return run_alter(t);
	case SC_ADD_PARTITIONS: return run_add_partitions(t);
	case SC_DELETE:         return run_delete(t);
	case SC_OFFSETS:        return run_offsets(t);
	default:                return E_NO_ANSWER;
	}
}

/* -> reporting: one record per topic, or a table. */
static int
act_report(struct dp_fsm *m, void *ctx)
{
	struct topic *t = ctx;

	if (t->fmt == OUT_AUTO)
		t->fmt = isatty(STDOUT_FILENO) ? OUT_TABLE : OUT_JSON;
	switch (t->sub) {
	case SC_LIST:
		if (!t->status)
			report_list(t);
		break;
	case SC_DESCRIBE:
		report_describe(t);
		break;
	case SC_OFFSETS:
		report_offsets(t);
		break;
	default:
		report_changes(t);
		break;
	}
	if (dp_out_flush(t->common.out) < 0)
		note_status(t, dp_cmd_stdout_failed(errno));
	dp_fsm_fail(m, t->status);
	if (dp_out_error(t->common.out) && !dp_out_closed(t->common.out))
		return E_WRITE_FAILED;
	return t->status ? E_ITEMS_FAILED : E_ALL_OK;
}

/* ---- main ------------------------------------------------------------- */

static void
close_topic(void *ctx)
{
	struct topic *t = ctx;

	if (t->rk)
		rd_kafka_destroy(t->rk);
	for (size_t i = 0; i < t->nspecs; i++)
		dp_admin_spec_clear(&t->specs[i]);
	free(t->specs);
	for (size_t i = 0; i < t->nitems; i++) {
		dp_admin_result_clear(&t->items[i].res);
		if (t->configs)
			dp_admin_configs_clear(&t->configs[i]);
	}
	free(t->items);
	free(t->configs);
	dp_admin_topics_clear(&t->md);
	dp_kv_free(t->tconfig, t->ntconfig);
	dp_kv_free(t->set, t->nset);
	free(t->del);
	if (t->re_ok)
		regfree(&t->re);
	dp_table_free(t->table);
	dp_buf_free(&t->rec);
	dp_sinkoffsets_free(t->stored, t->nstored);
	free(t->db_arg);
}

static unsigned
io_topic(void *ctx)
{
	const struct topic *t = ctx;

	return DP_CMD_STDOUT | DP_CMD_BOUNDED | (t->from_stdin ? DP_CMD_STDIN : 0);
}

/* A signal came (core/frame.h): after every answer, or which topics it left. */
static bool
interrupted_topic(void *ctx, int status, struct dp_buf *said)
{
	const struct topic *t = ctx;
	size_t left = 0;

	if (status == 0)
		return false;
	for (size_t i = 0; i < t->nitems; i++)
		left += t->items[i].res.status != 0;
	if (t->nitems)
		dp_buf_msgf(said, "%zu of %zu topic%s not done", left, t->nitems,
		            t->nitems == 1 ? "" : "s");
	else
		dp_buf_msgf(said, "the cluster did not answer");
	return true;
}

static const struct dp_cmd cmd = {
	.name = "dp-topic",
	.libs = dp_kafka_version,
	.usage = usage,
	.machine = &machine,
	.start = E_START,
	.parse = parse_options,
	.validate = validate,
	.close = close_topic,
	.io = io_topic,
	.interrupted = interrupted_topic,
};

int
main(int argc, char **argv)
{
	static struct topic t = { .partitions = -1, .replication = -1,
	                          .max_line = DP_LINES_MAX_DEFAULT };

	return dp_cmd_main(&cmd, &t, &t.common, &t.fsm, argc, argv);
}
