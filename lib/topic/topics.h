/*
 * topic/topics.h -- dp-topic's engine: the topics a run names or reads as
 * NDJSON specs, what each subcommand asks of the cluster about them, and
 * what became of each one, shown as one record per topic or as a table.
 *
 * A run is a few steps, each one call, in this order:
 *
 *   the topics        dp_topics_name (names), dp_topics_specs (create
 *                     NAME... with -p/-r/-c) or dp_topics_specs_read
 *                     (create -: NDJSON specs, all read before anything
 *                     is sent), then dp_topics_check, which fails bad
 *                     names locally so that a typo never reaches the
 *                     broker;
 *   a client          dp_topics_connect;
 *   one request step  dp_topics_create, _list, _describe, _alter,
 *                     _add_partitions, _delete or _offsets (the
 *                     subcommands, through kafka/admin.h);
 *   one view          dp_topics_show_created, _altered, _added, _deleted,
 *                     _list, _described or _offsets, after
 *                     dp_topics_output says where and how.
 *
 * Every topic keeps its own outcome (struct dp_topic): no step stops at
 * the first failure.  t->status is the run's exit status so far: 0, the
 * one status every failure shares, or DP_EX_PARTIAL when they differ
 * (dp_topics_note).  A request step returns 0 when the cluster answered,
 * else the status of the request as a whole, which every topic still
 * undecided carries too.
 *
 * Messages go to stderr (core/log.h): a topic that failed as "cannot
 * create 'x': why" (t->verb) when it is shown, drift between a spec and
 * the live topic, offsets outside a partition's records.  Data goes only
 * to the writer given to dp_topics_output.  Nothing here exits.
 *
 * Views.  Each is a list of columns for the table and the members of a
 * record, written in one function per subcommand; describe's sections
 * (the topic, its partitions, its configs) are functions of their own,
 * so that a column or a member is added in one place for both forms.
 */
#ifndef DP_TOPICS_H
#define DP_TOPICS_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/buf.h"
#include "core/props.h"
#include "kafka/admin.h"

struct dp_out;
struct dp_table;
struct dp_sinkoffset;           /* pg/offsets.h: dp-sink-pg's stored offsets */

/* What the command line asks.  The command owns every pointer. */
struct dp_topics_opts {
	uint64_t partitions;            /* create: the count; add-partitions: the new total; 0: not given */
	uint64_t replication;           /* create; 0: the broker's default */
	struct dp_kv *config;           /* create: topic configs a spec does not set itself */
	size_t nconfig;
	struct dp_kv *set;              /* alter --set, in order (the last of a key wins) */
	size_t nset;
	const char **del;               /* alter --delete: config keys */
	size_t ndel;
	size_t del_cap;
	bool if_not_exists;             /* create: an existing topic is "exists", not 80 */
	bool if_exists;                 /* delete: a missing topic is "absent", not 81 */
	bool dry_run;                   /* the broker validates, nothing changes */
	bool internal;                  /* list: the topics Kafka keeps, too */
	const char *pattern;            /* list, delete: whole names matching this ERE */
	const char *group;              /* offsets: also this group's committed offsets and lag */
	uint64_t max_line;              /* dp_topics_specs_read: the longest line, bytes */
};

/* How a view is written: the order of dp-topic's --output names. */
enum dp_topics_format { DP_TOPICS_TABLE, DP_TOPICS_JSON, DP_TOPICS_NAMES };

/* One topic of the run, and what became of it. */
struct dp_topic {
	struct dp_admin_result res;     /* name; status 0 while it is fine; error */
	const char *action;             /* "created", "exists", ... (static); NULL: undecided */
	int32_t partitions;             /* -1 unknown */
	int32_t replication;            /* -1 unknown */
	int32_t previous;               /* add-partitions: the count before; -1 unknown */
	const struct dp_admin_spec *spec;   /* create: its spec, in t->specs */
	const struct dp_admin_topic *md;    /* describe, offsets: its metadata, in t->md */
	struct dp_admin_configs configs;    /* describe: every config the broker has */
	int64_t *low, *high;            /* describe, offsets: watermarks per partition of md; -1 unknown */
	int64_t *committed;             /* offsets: the group's offset per partition; -1 none */
};

struct dp_topics {
	const struct dp_topics_opts *o; /* borrowed */
	const char *verb;               /* "cannot create": how a failed topic is named */
	rd_kafka_t *rk;                 /* owned, from dp_topics_connect */
	int timeout_ms;                 /* every request's, from dp_topics_connect */
	struct dp_admin_spec *specs;    /* create; owned */
	size_t nspecs, specs_cap;
	struct dp_topic *v;             /* the run's topics, in the order given; owned */
	size_t n, cap;
	struct dp_admin_topics md;      /* every topic's metadata, when a step needed it */
	regex_t re;                     /* o->pattern, anchored (dp_topics_pattern) */
	bool re_ok;
	int method;                     /* alter: DP_ADMIN_METHOD_* */
	const struct dp_sinkoffset *stored; /* offsets: dp-sink-pg's, borrowed; NULL: none read */
	size_t nstored;
	int status;                     /* the run's exit status so far */
	/* the views' */
	struct dp_out *out;             /* borrowed */
	enum dp_topics_format format;
	struct dp_buf rec;
	struct dp_table *table;
};

/* Start a run with options o (borrowed); verb begins a failed topic's message. */
void dp_topics_init(struct dp_topics *t, const struct dp_topics_opts *o, const char *verb);
/* Release everything the run holds (the client too).  Accepts NULL. */
void dp_topics_free(struct dp_topics *t);

/*
 * Compile o->pattern so that it must match a whole name ("orders" never
 * selects "orders-dlq").  0, or -1 with the reason appended to err.
 */
int dp_topics_pattern(struct dp_topics *t, struct dp_buf *err);

/* Fold one failure's exit status into t->status. */
void dp_topics_note(struct dp_topics *t, int status);

/* ---- the topics ---------------------------------------------------- */

/* The n topics named.  0, or DP_EX_SOFTWARE after saying why. */
int dp_topics_name(struct dp_topics *t, const char *const *names, size_t n);

/*
 * A spec for each name, from -p, -r and -c (o->partitions, replication,
 * config), and a topic for each spec.  0, or DP_EX_SOFTWARE after saying why.
 */
int dp_topics_specs(struct dp_topics *t, const char *const *names, size_t n);

/*
 * The specs on fd, one NDJSON object a line (dp_admin_spec_parse; blank
 * lines are skipped), each completed from -p, -r and -c where it says
 * nothing, and a topic for each.  Every line is read first: a bad line
 * is named ("stdin line 3: ...") and the run changes nothing.  0, or the
 * exit status after saying why: 65 a bad or too long line, 74 a read
 * error, 70 out of memory.
 */
int dp_topics_specs_read(struct dp_topics *t, int fd);

/*
 * Fail locally the topics whose name Kafka would refuse, and repeats.
 * Returns how many topics are left to send.
 */
size_t dp_topics_check(struct dp_topics *t);

/*
 * A client (a producer: the cheapest that can send admin requests, with
 * allow.auto.create.topics=false, so that looking at a topic never makes
 * it), proven to reach the cluster within k->timeout_ms.  0,
 * DP_KAFKA_STOPPED, or an exit status with the message in err.
 */
int dp_topics_connect(struct dp_topics *t, const struct dp_kafka_opts *k, struct dp_buf *err);

/* ---- one request step per subcommand ------------------------------ */

/*
 * CreateTopics for the specs (validate only with o->dry_run).  A created
 * topic is waited for until the cluster's metadata shows it, so that
 * "create, then publish" works in a script; an existing one is "exists"
 * with o->if_not_exists, and a spec that differs from it is said.
 */
int dp_topics_create(struct dp_topics *t);
/* Every topic's metadata, for dp_topics_show_list. */
int dp_topics_list(struct dp_topics *t);
/* Metadata, configs and the watermarks of each partition. */
int dp_topics_describe(struct dp_topics *t);
/* o->set and o->del on each topic (dp_admin_alter); t->method says how. */
int dp_topics_alter(struct dp_topics *t);
/* Grow each topic to o->partitions; the count it has is "unchanged", fewer refused. */
int dp_topics_add_partitions(struct dp_topics *t);
/*
 * DeleteTopics, or with o->pattern every topic whose name matches (the
 * internal ones never); with o->dry_run only the metadata says what
 * would go.
 */
int dp_topics_delete(struct dp_topics *t);
/*
 * Metadata, with o->group the group's committed offsets, then the
 * watermarks of each partition: in that order, because an offset is
 * committed below the high watermark of its time and a high watermark
 * never goes down, so a group that commits meanwhile is never shown past
 * the end.  A topic that does not exist fails with 81.
 */
int dp_topics_offsets(struct dp_topics *t);

/*
 * The offsets dp-sink-pg stored for o->group (pg/offsets.h's rows,
 * borrowed until dp_topics_free), read before dp_topics_offsets for the
 * same reason: shown beside the committed ones, and for a topic that has
 * them, the lag is counted from them.
 */
void dp_topics_stored(struct dp_topics *t, const struct dp_sinkoffset *v, size_t n);

/* ---- views --------------------------------------------------------- */

/* Where and how the views write (out borrowed). */
void dp_topics_output(struct dp_topics *t, struct dp_out *out, enum dp_topics_format format);

/*
 * One record (or table row) per topic, in the order given, each failure
 * said on stderr and folded into t->status.  0, or -1 when writing failed
 * (dp_out_error(out) says why) or memory ran out (t->status is 70).
 */
int dp_topics_show_created(struct dp_topics *t);
int dp_topics_show_altered(struct dp_topics *t);
int dp_topics_show_added(struct dp_topics *t);
int dp_topics_show_deleted(struct dp_topics *t);
/* Every topic listed (o->internal, o->pattern); names only with DP_TOPICS_NAMES. */
int dp_topics_show_list(struct dp_topics *t);
/* Each topic, its partitions (leader, replicas, ISR, watermarks) and non-default configs. */
int dp_topics_show_described(struct dp_topics *t);
/* A row per partition: watermarks and, with a group, its offsets and lag. */
int dp_topics_show_offsets(struct dp_topics *t);

/*
 * The records a group has not consumed yet, from the watermarks and the
 * next offset it would read (committed or stored; -1: none).  Without
 * one, or one outside low..high (where no record is), the whole
 * partition counts: the larger answer is the safer one for alerting.
 * -1 when high is unknown.
 */
int64_t dp_topics_lag(int64_t low, int64_t high, int64_t next);

#endif
