/*
 * pg/reset.c -- dp-sink-pg --reset-offsets (pg/reset.h): a group's
 * stored offsets, and its offsets in Kafka, moved in one transaction.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sig.h"
#include "core/vec.h"
#include "kafka/admin.h"
#include "kafka/client.h"
#include "pg/conn.h"
#include "pg/reset.h"

int
dp_sinkreset_add(struct dp_sinkreset *r, const char *arg)
{
	const char *c1 = NULL, *c2 = NULL;
	uint64_t part, off;

	if (!strcmp(arg, "earliest") || !strcmp(arg, "latest")) {
		if (r->to != DP_SINKRESET_NONE) {
			dp_err("--reset-offsets %s: give earliest or latest once, and alone", arg);
			return -1;
		}
		r->to = arg[0] == 'e' ? DP_SINKRESET_EARLIEST : DP_SINKRESET_LATEST;
		return 0;
	}
	if (r->to == DP_SINKRESET_EARLIEST || r->to == DP_SINKRESET_LATEST) {
		dp_err("--reset-offsets %s: give earliest or latest once, and alone", arg);
		return -1;
	}
	/* TOPIC:PARTITION:OFFSET; a topic name has no colon. */
	for (const char *p = arg; *p; p++)
		if (*p == ':') {
			c1 = c2;
			c2 = p;
		}
	if (!c1 || c1 == arg || c2 == c1 + 1 || !c2[1] || memchr(arg, ':', (size_t)(c1 - arg))) {
		dp_err("invalid --reset-offsets '%s': expected earliest, latest or "
		       "TOPIC:PARTITION:OFFSET", arg);
		return -1;
	}
	char part_s[24];
	size_t pn = (size_t)(c2 - c1 - 1);
	snprintf(part_s, sizeof(part_s), "%.*s", (int)(pn < sizeof(part_s) ? pn : sizeof(part_s) - 1),
	         c1 + 1);
	if (pn >= sizeof(part_s) ||
	    dp_parse_u64("--reset-offsets partition", part_s, 0, INT32_MAX, &part) < 0 ||
	    dp_parse_u64("--reset-offsets offset", c2 + 1, 0, INT64_MAX / 2, &off) < 0)
		return -1;
	struct dp_sinkreset_spec *v = dp_grow(r->specs, &r->capspecs, r->nspecs + 1, sizeof(*v), 4);
	if (!v) {
		dp_err("out of memory");
		return -1;
	}
	r->specs = v;
	if (!(v[r->nspecs].topic = strndup(arg, (size_t)(c1 - arg)))) {
		dp_err("out of memory");
		return -1;
	}
	v[r->nspecs].partition = (int32_t)part;
	v[r->nspecs].offset = (int64_t)off;
	r->nspecs++;
	r->to = DP_SINKRESET_EXPLICIT;
	return 0;
}

int
dp_sinkreset_check(const struct dp_sinkreset *r, const char *const *topics, size_t ntopics)
{
	struct dp_buf why = DP_BUF_INIT;

	for (size_t i = 0; i < ntopics; i++)
		if (topics[i][0] == '^') {
			dp_err("--reset-offsets needs topic names, not a pattern ('%s')", topics[i]);
			return -1;
		}
	for (size_t i = 0; i < r->nspecs; i++) {
		const struct dp_sinkreset_spec *sp = &r->specs[i];
		bool named = !ntopics;
		for (size_t j = 0; j < ntopics; j++)
			named |= strcmp(topics[j], sp->topic) == 0;
		if (dp_admin_check_name(sp->topic, &why) != 0) {
			dp_err("invalid --reset-offsets topic '%s': %s", sp->topic, dp_buf_str(&why));
			dp_buf_free(&why);
			return -1;
		}
		if (!named) {
			dp_err("--reset-offsets %s:%d:%" PRId64 ": topic '%s' is not one of -t",
			       sp->topic, (int)sp->partition, sp->offset, sp->topic);
			return -1;
		}
	}
	return 0;
}

/* Add name to the topics whose offsets move, once.  0, or -1 out of memory. */
static int
add_topic(struct dp_sinkreset *r, const char *name)
{
	for (size_t i = 0; i < r->ntopics; i++)
		if (strcmp(r->topics[i], name) == 0)
			return 0;
	const char **v = dp_grow(r->topics, &r->captopics, r->ntopics + 1, sizeof(*v), 8);
	if (!v) {
		dp_err("out of memory");
		return -1;
	}
	r->topics = v;
	v[r->ntopics++] = name;
	return 0;
}

int
dp_sinkreset_connect(struct dp_sinkreset *r, const char *conninfo, const char *from,
                     const char *group, const char *const *topics, size_t ntopics,
                     const struct dp_kafka_opts *kafka)
{
	static const struct dp_kv defaults[] = { { "allow.auto.create.topics", "false" } };
	enum dp_pg_kind kind = DP_PG_TRANSIENT;
	int st = 0;

	r->group = group;
	r->kafka = kafka;
	dp_buf_reset(&r->err);
	if (!(r->pg = dp_pg_connect(conninfo, "dp-sink-pg", kafka->timeout_ms, &kind, &r->err))) {
		st = kind == DP_PG_FATAL ? DP_EX_CONFIG : DP_EX_UNAVAILABLE;
		goto fail;
	}
	if ((st = dp_sinkoffsets_read(r->pg, group, &r->stored, &r->nstored, &r->err)) != 0)
		goto fail;
	for (size_t i = 0; i < r->nspecs && !st; i++)
		st = add_topic(r, r->specs[i].topic);
	for (size_t i = 0; r->to != DP_SINKRESET_EXPLICIT && i < ntopics && !st; i++)
		st = add_topic(r, topics[i]);
	for (size_t i = 0; r->to != DP_SINKRESET_EXPLICIT && !ntopics && i < r->nstored && !st; i++)
		st = add_topic(r, r->stored[i].topic);
	if (st)
		return DP_EX_SOFTWARE;
	if (!r->ntopics) {
		dp_buf_msgf(&r->err, "group '%s' has no stored offsets in table %s (of %s): name "
		            "the topics with -t", group, DP_SINKOFFSETS_TABLE,
		            from ? from : "the default database");
		st = DP_EX_NOTFOUND;
		goto fail;
	}
	if (!(r->counts = calloc(r->ntopics, sizeof(*r->counts)))) {
		dp_buf_msgf(&r->err, "out of memory");
		st = DP_EX_SOFTWARE;
		goto fail;
	}
	if (!(r->admin = dp_kafka_new(kafka, RD_KAFKA_PRODUCER, defaults, 1, NULL, NULL, &r->err,
	                              &st)))
		goto fail;
	st = dp_kafka_connect(r->admin, kafka, r->topics, r->ntopics, r->counts, &r->err);
	if (st == 0)
		return 0;
fail:
	if (st == DP_KAFKA_STOPPED || dp_sig_stop) {
		dp_err("stopped by a signal before anything moved");
		st = DP_EX_TEMPFAIL;
	} else {
		dp_err("%s", dp_buf_str(&r->err));
	}
	return st;
}

/* "dp-sink-pg on /10.0.0.7, ..." for the members of a group, into b. */
static void
say_members(struct dp_buf *b, const struct dp_admin_group *g)
{
	for (size_t i = 0; i < g->nmembers; i++)
		dp_buf_msgf(b, "%s%s on %s%s%s", i ? ", " : "", g->members[i].client_id,
		            g->members[i].host, g->members[i].instance_id ? " as " : "",
		            g->members[i].instance_id ? g->members[i].instance_id : "");
}

/* The moves of a reset, growing. */
struct moves {
	struct dp_sinkoffsets_move *v;
	size_t n, cap;
};

static int
push_move(struct moves *mv, const char *topic, int32_t partition, int64_t to)
{
	struct dp_sinkoffsets_move *v = dp_grow(mv->v, &mv->cap, mv->n + 1, sizeof(*v), 16);

	if (!v) {
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	mv->v = v;
	mv->v[mv->n++] = (struct dp_sinkoffsets_move){ topic, partition, to, -1 };
	return 0;
}

/* A partition's low and high watermark: 0, or a status after saying why. */
static int
watermarks(struct dp_sinkreset *r, const char *topic, int32_t partition, int64_t *lo,
           int64_t *hi)
{
	int st;

	dp_buf_reset(&r->err);
	st = dp_admin_watermarks(r->admin, topic, partition, (int)r->kafka->timeout_ms, lo, hi,
	                         &r->err);
	if (st)
		dp_err("%s", dp_buf_str(&r->err));
	return st;
}

/* TOPIC:PARTITION:OFFSET: a partition the topic has, an offset among its records. */
static int
explicit_move(struct dp_sinkreset *r, const struct dp_sinkreset_spec *sp, int count,
              struct moves *mv)
{
	int64_t lo, hi;
	int st;

	if (sp->partition >= count) {
		dp_err("topic '%s' has no partition %d (it has %d: 0-%d)", sp->topic,
		       (int)sp->partition, count, count - 1);
		return DP_EX_NOTFOUND;
	}
	if ((st = watermarks(r, sp->topic, sp->partition, &lo, &hi)) != 0)
		return st;
	if (sp->offset < lo || sp->offset > hi) {
		dp_err("--reset-offsets %s:%d:%" PRId64 ": the partition's offsets go from %" PRId64
		       " to %" PRId64 " (low..high watermark; the high one is where its next record "
		       "goes)", sp->topic, (int)sp->partition, sp->offset, lo, hi);
		return DP_EX_INVALID;
	}
	return push_move(mv, sp->topic, sp->partition, sp->offset);
}

/* Where each partition of the reset goes, into mv: 0 or a status after saying why. */
static int
targets(struct dp_sinkreset *r, struct moves *mv)
{
	int st = 0;

	for (size_t t = 0; t < r->ntopics && !st; t++) {
		const char *topic = r->topics[t];
		int count = r->counts[t];
		if (r->to == DP_SINKRESET_EXPLICIT) {
			for (size_t i = 0; i < r->nspecs && !st; i++)
				if (strcmp(r->specs[i].topic, topic) == 0)
					st = explicit_move(r, &r->specs[i], count, mv);
			continue;
		}
		for (int32_t p = 0; p < count && !st; p++) {
			int64_t lo, hi;
			if ((st = watermarks(r, topic, p, &lo, &hi)) == 0)
				st = push_move(mv, topic, p, r->to == DP_SINKRESET_EARLIEST ? lo : hi);
		}
		/* Rows of partitions the topic does not have (any more) go. */
		for (size_t i = 0; i < r->nstored && !st; i++)
			if (strcmp(r->stored[i].topic, topic) == 0 && r->stored[i].partition >= count)
				st = push_move(mv, topic, r->stored[i].partition, -1);
	}
	return st;
}

struct commit {
	struct dp_sinkreset *r;
	rd_kafka_topic_partition_list_t *l;
};

/* Inside the transaction, the new offsets in place: the group's in Kafka too. */
static int
commit_kafka(void *arg, struct dp_buf *err)
{
	struct commit *c = arg;

	return dp_admin_commit_offsets(c->r->admin, c->r->group, c->l,
	                               (int)c->r->kafka->timeout_ms, err);
}

/* Say what moved. */
static void
say_moves(const struct dp_sinkreset *r, const struct dp_sinkoffsets_move *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char from[24], to[24];
		snprintf(from, sizeof(from), "%" PRId64, v[i].from);
		snprintf(to, sizeof(to), "%" PRId64, v[i].to);
		if (v[i].from == v[i].to)
			dp_warn("%s [%d]: stored offset of group '%s' stays at %s", v[i].topic,
			        (int)v[i].partition, r->group, to);
		else
			dp_warn("%s [%d]: stored offset of group '%s' moved from %s to %s",
			        v[i].topic, (int)v[i].partition, r->group,
			        v[i].from >= 0 ? from : "none",
			        v[i].to >= 0 ? to : "none (the topic has no such partition)");
	}
}

int
dp_sinkreset_move(struct dp_sinkreset *r)
{
	struct dp_admin_group g;
	struct moves mv = { NULL, 0, 0 };
	int st;

	dp_buf_reset(&r->err);
	st = dp_admin_describe_group(r->admin, r->group, (int)r->kafka->timeout_ms, &g, &r->err);
	if (st) {
		dp_err("%s", dp_buf_str(&r->err));
		dp_admin_group_clear(&g);
		return st;
	}
	if (g.nmembers) {
		dp_buf_reset(&r->why);
		say_members(&r->why, &g);
		dp_err("group '%s' has %zu member%s running (%s): stop %s first, or %s would go "
		       "on from where %s and write the old offsets back", r->group, g.nmembers,
		       g.nmembers == 1 ? "" : "s", dp_buf_str(&r->why),
		       g.nmembers == 1 ? "it" : "them", g.nmembers == 1 ? "it" : "they",
		       g.nmembers == 1 ? "it is" : "they are");
		dp_admin_group_clear(&g);
		return DP_EX_TEMPFAIL;
	}
	dp_admin_group_clear(&g);
	if ((st = targets(r, &mv)) != 0) {
		free(mv.v);
		return st;
	}
	struct commit c = { r, rd_kafka_topic_partition_list_new((int)(mv.n ? mv.n : 1)) };
	for (size_t i = 0; i < mv.n; i++)
		if (mv.v[i].to >= 0)
			rd_kafka_topic_partition_list_add(c.l, mv.v[i].topic, mv.v[i].partition)->offset =
				mv.v[i].to;
	dp_buf_reset(&r->err);
	st = dp_sinkoffsets_move(r->pg, r->group, mv.v, mv.n, r->kafka->timeout_ms, commit_kafka,
	                         &c, &r->err);
	rd_kafka_topic_partition_list_destroy(c.l);
	if (st)
		dp_err("%s; no offset moved", dp_buf_str(&r->err));
	else
		say_moves(r, mv.v, mv.n);
	free(mv.v);
	return st;
}

void
dp_sinkreset_clear(struct dp_sinkreset *r)
{
	for (size_t i = 0; i < r->nspecs; i++)
		free(r->specs[i].topic);
	free(r->specs);
	if (r->pg)
		PQfinish(r->pg);
	if (r->admin)
		rd_kafka_destroy(r->admin);
	dp_sinkoffsets_free(r->stored, r->nstored);
	free(r->topics);
	free(r->counts);
	dp_buf_free(&r->err);
	dp_buf_free(&r->why);
}
