/*
 * topic/show.c -- dp-topic's views (topic/topics.h): each
 * subcommand's outcome as one NDJSON record per topic (json/write.h) or
 * as aligned tables for a terminal (core/table.h).
 */
#include <errno.h>
#include <string.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/out.h"
#include "core/table.h"
#include "json/write.h"
#include "topic/topics.h"
#include "pg/offsets.h"

void
dp_topics_output(struct dp_topics *t, struct dp_out *out, enum dp_topics_format format)
{
	t->out = out;
	t->format = format;
}

static bool
as_table(const struct dp_topics *t)
{
	return t->format == DP_TOPICS_TABLE;
}

static int
nomem(struct dp_topics *t)
{
	dp_err("out of memory");
	dp_topics_note(t, DP_EX_SOFTWARE);
	return -1;
}

/* Data out; a failed write is the caller's to report (dp_out_error). */
static int
emit(struct dp_topics *t, const char *s, size_t n)
{
	return dp_out_write(t->out, s, n);
}

/* ---- records -------------------------------------------------------- */

static void
record(struct dp_topics *t, struct dp_jw *w)
{
	dp_buf_reset(&t->rec);
	dp_jw_init(w, &t->rec);
	dp_jw_obj(w);
}

/* Close the record begun with record() and write it as a line. */
static int
record_end(struct dp_topics *t, struct dp_jw *w)
{
	dp_jw_end(w);
	if (dp_jw_finish(w) < 0 || dp_buf_addch(&t->rec, '\n') < 0)
		return nomem(t);
	return emit(t, t->rec.data, t->rec.len);
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

static void
ids_array(struct dp_jw *w, const char *key, const int32_t *v, int n)
{
	dp_jw_key(w, key);
	dp_jw_arr(w);
	for (int i = 0; i < n; i++)
		dp_jw_int(w, v[i]);
	dp_jw_end(w);
}

/* ---- tables --------------------------------------------------------- */

/*
 * A table of ncols columns; the columns in the bit set right hold numbers
 * and are right-aligned, as numbers read best.
 */
static int
table(struct dp_topics *t, const char *const *headers, size_t ncols, unsigned right)
{
	dp_table_free(t->table);
	if (!(t->table = dp_table_new(headers, ncols)))
		return nomem(t);
	for (size_t c = 0; c < ncols; c++)
		if (right & (1u << c))
			dp_table_align_right(t->table, c);
	return 0;
}

static int
row(struct dp_topics *t, const char *const *cells)
{
	return dp_table_add(t->table, cells) < 0 ? nomem(t) : 0;
}

/* Write the table made with table() and forget it. */
static int
table_end(struct dp_topics *t)
{
	struct dp_buf b = DP_BUF_INIT;
	int rc = 0;

	if (!t->table)
		return 0;
	if (dp_table_render(t->table, &b) < 0)
		rc = nomem(t);
	else
		rc = emit(t, b.data, b.len);
	dp_buf_free(&b);
	dp_table_free(t->table);
	t->table = NULL;
	return rc;
}

/* Replica ids as "1,2,3" for a cell (into b). */
static int
ids_text(struct dp_buf *b, const int32_t *v, int n)
{
	dp_buf_reset(b);
	for (int i = 0; i < n; i++)
		if (dp_buf_addf(b, "%s%d", i ? "," : "", (int)v[i]) < 0)
			return -1;
	return dp_buf_addstr(b, "");
}

/* ---- create, alter, add-partitions, delete ------------------------- */

/*
 * A change's view: its table's columns, and what a topic adds to a row
 * (the cells between ACTION and ERROR) and to a record (the members
 * between "action" and "error").
 */
struct change_view {
	const char *const *headers;
	size_t ncols;
	unsigned right;
	void (*cells)(const struct dp_topics *t, const struct dp_topic *it,
	              char num[][DP_TABLE_NUM], const char **cells);
	void (*members)(const struct dp_topics *t, const struct dp_topic *it, struct dp_jw *w);
};

/* One record (or row) per topic, in the order given, each failure said. */
static int
show_changes(struct dp_topics *t, const struct change_view *v)
{
	if (as_table(t) && table(t, v->headers, v->ncols, v->right) < 0)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		const struct dp_topic *it = &t->v[i];
		const char *action = it->res.status ? "failed" : it->action;
		int rc;

		if (it->res.status)
			dp_err("%s '%s': %s", t->verb, it->res.name, it->res.error);
		dp_topics_note(t, it->res.status);
		if (as_table(t)) {
			char num[4][DP_TABLE_NUM];
			const char *c[8] = { it->res.name, action };
			v->cells(t, it, num, c + 2);
			c[v->ncols - 1] = it->res.error ? it->res.error : "";
			rc = row(t, c);
		} else {
			struct dp_jw w;
			record(t, &w);
			dp_jw_kstr(&w, "name", it->res.name);
			dp_jw_kstr(&w, "action", action);
			v->members(t, it, &w);
			dp_jw_kstr(&w, "error", it->res.error);
			dp_jw_kint(&w, "status", it->res.status);
			rc = record_end(t, &w);
		}
		if (rc < 0)
			return -1;
	}
	return table_end(t);
}

static void
created_cells(const struct dp_topics *t, const struct dp_topic *it, char num[][DP_TABLE_NUM],
              const char **c)
{
	c[0] = dp_table_num(num[0], it->partitions);
	c[1] = dp_table_num(num[1], it->replication);
}

static void
created_members(const struct dp_topics *t, const struct dp_topic *it, struct dp_jw *w)
{
	dp_jw_kcount(w, "partitions", it->partitions);
	dp_jw_kcount(w, "replication_factor", it->replication);
	kv_object(w, "config", it->spec ? it->spec->config : NULL, it->spec ? it->spec->nconfig : 0);
}

int
dp_topics_show_created(struct dp_topics *t)
{
	static const char *const h[] = { "NAME", "ACTION", "PARTITIONS", "REPLICATION", "ERROR" };
	static const struct change_view v = { h, 5, 1u << 2 | 1u << 3, created_cells,
	                                      created_members };

	return show_changes(t, &v);
}

static const char *
method(const struct dp_topics *t)
{
	return t->method == DP_ADMIN_METHOD_INCREMENTAL ? "incremental" : "full";
}

static void
altered_cells(const struct dp_topics *t, const struct dp_topic *it, char num[][DP_TABLE_NUM],
              const char **c)
{
	c[0] = it->res.status ? "-" : method(t);
}

static void
altered_members(const struct dp_topics *t, const struct dp_topic *it, struct dp_jw *w)
{
	dp_jw_kstr(w, "method", it->res.status ? NULL : method(t));
	kv_object(w, "set", t->o->set, t->o->nset);
	dp_jw_key(w, "delete");
	dp_jw_arr(w);
	for (size_t c = 0; c < t->o->ndel; c++)
		dp_jw_str(w, t->o->del[c]);
	dp_jw_end(w);
}

int
dp_topics_show_altered(struct dp_topics *t)
{
	static const char *const h[] = { "NAME", "ACTION", "METHOD", "ERROR" };
	static const struct change_view v = { h, 4, 0, altered_cells, altered_members };

	return show_changes(t, &v);
}

static void
added_cells(const struct dp_topics *t, const struct dp_topic *it, char num[][DP_TABLE_NUM],
            const char **c)
{
	c[0] = dp_table_num(num[0], it->partitions);
	c[1] = dp_table_num(num[1], it->previous);
}

static void
added_members(const struct dp_topics *t, const struct dp_topic *it, struct dp_jw *w)
{
	dp_jw_kcount(w, "partitions", it->res.status ? -1 : it->partitions);
	dp_jw_kcount(w, "previous", it->previous);
}

int
dp_topics_show_added(struct dp_topics *t)
{
	static const char *const h[] = { "NAME", "ACTION", "PARTITIONS", "PREVIOUS", "ERROR" };
	static const struct change_view v = { h, 5, 1u << 2 | 1u << 3, added_cells,
	                                      added_members };

	return show_changes(t, &v);
}

static void
deleted_cells(const struct dp_topics *t, const struct dp_topic *it, char num[][DP_TABLE_NUM],
              const char **c)
{
}

static void
deleted_members(const struct dp_topics *t, const struct dp_topic *it, struct dp_jw *w)
{
}

int
dp_topics_show_deleted(struct dp_topics *t)
{
	static const char *const h[] = { "NAME", "ACTION", "ERROR" };
	static const struct change_view v = { h, 3, 0, deleted_cells, deleted_members };

	return show_changes(t, &v);
}

/* ---- list ----------------------------------------------------------- */

static bool
listed(const struct dp_topics *t, const struct dp_admin_topic *tp)
{
	if (tp->internal && !t->o->internal)
		return false;
	return !t->re_ok || regexec(&t->re, tp->name, 0, NULL, 0) == 0;
}

/* A topic as list shows it, and as the first section of describe. */
static const char *const topic_headers[] = { "NAME", "PARTITIONS", "REPLICATION", "INTERNAL" };
#define TOPIC_RIGHT (1u << 1 | 1u << 2)

static int
topic_row(struct dp_topics *t, const struct dp_admin_topic *tp)
{
	char p[DP_TABLE_NUM], r[DP_TABLE_NUM];
	const char *c[] = { tp->name, dp_table_num(p, tp->npartitions),
	                    dp_table_num(r, tp->replication_factor), tp->internal ? "yes" : "no" };

	return row(t, c);
}

static void
topic_members(struct dp_jw *w, const struct dp_admin_topic *tp)
{
	dp_jw_kstr(w, "name", tp->name);
	dp_jw_kint(w, "partitions", tp->npartitions);
	dp_jw_kint(w, "replication_factor", tp->replication_factor);
	dp_jw_kbool(w, "internal", tp->internal);
}

int
dp_topics_show_list(struct dp_topics *t)
{
	/* Without the metadata there is no list: the failure was said. */
	if (t->status)
		return 0;
	if (as_table(t) && table(t, topic_headers, 4, TOPIC_RIGHT) < 0)
		return -1;
	for (size_t i = 0; i < t->md.n; i++) {
		const struct dp_admin_topic *tp = &t->md.v[i];
		struct dp_jw w;
		int rc;
		if (!listed(t, tp))
			continue;
		if (t->format == DP_TOPICS_NAMES) {
			dp_buf_reset(&t->rec);
			rc = dp_buf_addstr(&t->rec, tp->name) < 0 || dp_buf_addch(&t->rec, '\n') < 0
			     ? nomem(t) : emit(t, t->rec.data, t->rec.len);
		} else if (as_table(t)) {
			rc = topic_row(t, tp);
		} else {
			record(t, &w);
			topic_members(&w, tp);
			rc = record_end(t, &w);
		}
		if (rc < 0)
			return -1;
	}
	return table_end(t);
}

/* ---- describe ------------------------------------------------------- */

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

/* Describe shows the configs set for the topic or its broker, not Kafka's defaults. */
static bool
non_default(const struct dp_admin_config *c)
{
	return c->source != RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG && !c->is_default;
}

/* A topic that could not be looked at: said, and one record naming why. */
static int
show_failed(struct dp_topics *t, const struct dp_topic *it, const char *key)
{
	struct dp_jw w;

	dp_err("%s '%s': %s", t->verb, it->res.name, it->res.error);
	dp_topics_note(t, it->res.status);
	if (as_table(t))
		return 0;
	record(t, &w);
	dp_jw_kstr(&w, key, it->res.name);
	dp_jw_kstr(&w, "error", it->res.error);
	dp_jw_kint(&w, "status", it->res.status);
	return record_end(t, &w);
}

/*
 * Describe, section by section: the topic, its partitions, its configs.
 * A section is a table for a terminal and members of the one record,
 * written side by side below.
 */
static int
partitions_table(struct dp_topics *t, const struct dp_topic *it)
{
	static const char *const h[] = { "PARTITION", "LEADER", "REPLICAS", "ISR", "LOW", "HIGH" };
	const struct dp_admin_topic *tp = it->md;
	struct dp_buf rep = DP_BUF_INIT, isr = DP_BUF_INIT;
	int rc = table(t, h, 6, 1u << 0 | 1u << 1 | 1u << 4 | 1u << 5);

	for (int i = 0; rc == 0 && i < tp->npartitions; i++) {
		const struct dp_admin_partition *pp = &tp->partitions[i];
		char id[DP_TABLE_NUM], leader[DP_TABLE_NUM], lo[DP_TABLE_NUM], hi[DP_TABLE_NUM];
		if (ids_text(&rep, pp->replicas, pp->nreplicas) < 0 ||
		    ids_text(&isr, pp->isr, pp->nisr) < 0) {
			rc = nomem(t);
			break;
		}
		const char *c[] = { dp_table_num(id, pp->id), dp_table_num(leader, pp->leader),
		                    rep.data, isr.data, dp_table_num(lo, it->low[i]),
		                    dp_table_num(hi, it->high[i]) };
		rc = row(t, c);
	}
	dp_buf_free(&rep);
	dp_buf_free(&isr);
	return rc;
}

static void
partitions_members(struct dp_jw *w, const struct dp_topic *it)
{
	const struct dp_admin_topic *tp = it->md;

	dp_jw_key(w, "partition_info");
	dp_jw_arr(w);
	for (int i = 0; i < tp->npartitions; i++) {
		const struct dp_admin_partition *pp = &tp->partitions[i];
		dp_jw_obj(w);
		dp_jw_kint(w, "partition", pp->id);
		dp_jw_kcount(w, "leader", pp->leader);
		ids_array(w, "replicas", pp->replicas, pp->nreplicas);
		ids_array(w, "isr", pp->isr, pp->nisr);
		dp_jw_kcount(w, "low", it->low[i]);
		dp_jw_kcount(w, "high", it->high[i]);
		dp_jw_end(w);
	}
	dp_jw_end(w);
}

/* The configs section: none at all when every config is Kafka's default. */
static int
configs_table(struct dp_topics *t, const struct dp_admin_configs *cfg)
{
	static const char *const h[] = { "CONFIG", "VALUE", "SOURCE" };
	size_t shown = 0;

	for (size_t i = 0; i < cfg->n; i++)
		shown += non_default(&cfg->v[i]);
	if (!shown)
		return 0;
	if (emit(t, "\n", 1) < 0 || table(t, h, 3, 0) < 0)
		return -1;
	for (size_t i = 0; i < cfg->n; i++) {
		const struct dp_admin_config *c = &cfg->v[i];
		const char *cells[] = { c->name, c->value ? c->value : "(hidden)",
		                        source_name(c->source) };
		if (non_default(c) && row(t, cells) < 0)
			return -1;
	}
	return table_end(t);
}

static void
configs_members(struct dp_jw *w, const struct dp_admin_configs *cfg)
{
	dp_jw_key(w, "config");
	dp_jw_obj(w);
	for (size_t i = 0; i < cfg->n; i++)
		if (non_default(&cfg->v[i]))
			dp_jw_kstr(w, cfg->v[i].name, cfg->v[i].value);
	dp_jw_end(w);
	dp_jw_key(w, "config_source");
	dp_jw_obj(w);
	for (size_t i = 0; i < cfg->n; i++)
		if (non_default(&cfg->v[i]))
			dp_jw_kstr(w, cfg->v[i].name, source_name(cfg->v[i].source));
	dp_jw_end(w);
}

static int
described_table(struct dp_topics *t, const struct dp_topic *it)
{
	if (table(t, topic_headers, 4, TOPIC_RIGHT) < 0 || topic_row(t, it->md) < 0 ||
	    table_end(t) < 0)
		return -1;
	if (partitions_table(t, it) < 0 || emit(t, "\n", 1) < 0 || table_end(t) < 0)
		return -1;
	return configs_table(t, &it->configs);
}

static int
described_record(struct dp_topics *t, const struct dp_topic *it)
{
	struct dp_jw w;

	record(t, &w);
	topic_members(&w, it->md);
	configs_members(&w, &it->configs);
	partitions_members(&w, it);
	return record_end(t, &w);
}

int
dp_topics_show_described(struct dp_topics *t)
{
	bool first = true;

	for (size_t i = 0; i < t->n && !dp_out_error(t->out); i++) {
		const struct dp_topic *it = &t->v[i];
		int rc;
		if (it->res.status) {
			if (show_failed(t, it, "name") < 0)
				return -1;
			continue;
		}
		/* a blank line between topics */
		if (as_table(t) && !first && emit(t, "\n", 1) < 0)
			return -1;
		first = false;
		if (!it->low)
			continue;       /* memory ran out: said */
		rc = as_table(t) ? described_table(t, it) : described_record(t, it);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---- offsets -------------------------------------------------------- */

int64_t
dp_topics_lag(int64_t low, int64_t high, int64_t next)
{
	int64_t from = low >= 0 ? low : 0;

	if (high < 0)
		return -1;
	/*
	 * An offset outside low..high is where no record is: a consumer goes
	 * on where auto.offset.reset says (dp-sink-pg stops), and none of the
	 * partition's records is read yet.
	 */
	if (next >= from && next <= high)
		from = next;
	return high > from ? high - from : 0;
}

/* The offset dp-sink-pg stored for (topic, p), or -1. */
static int64_t
stored_of(const struct dp_topics *t, const char *topic, int p)
{
	for (size_t i = 0; i < t->nstored; i++)
		if (t->stored[i].partition == p && strcmp(t->stored[i].topic, topic) == 0)
			return t->stored[i].next_offset;
	return -1;
}

/* dp-sink-pg stored offsets for topic (NULL: for a topic shown): they are shown. */
static bool
has_stored(const struct dp_topics *t, const char *topic)
{
	for (size_t i = 0; i < t->nstored; i++) {
		if (topic) {
			if (strcmp(t->stored[i].topic, topic) == 0)
				return true;
			continue;
		}
		for (size_t j = 0; j < t->n; j++)
			if (!t->v[j].res.status && t->v[j].res.name &&
			    strcmp(t->stored[i].topic, t->v[j].res.name) == 0)
				return true;
	}
	return false;
}

/* An offset of the group outside the partition's records, said on stderr. */
static void
say_outside(const struct dp_topics *t, const char *topic, int p, int64_t low, int64_t high,
            int64_t at, bool stored)
{
	if (at < 0 || high < 0 || (at >= low && at <= high))
		return;
	dp_warn("%s [%d]: the offset %s group '%s' is %lld, %s (low..high watermark "
	        "%lld..%lld): %s", topic, p,
	        stored ? "dp-sink-pg stored for" : "committed by", t->o->group, (long long)at,
	        at > high ? "past the partition's end" : "before its first record",
	        (long long)low, (long long)high,
	        at <= high ? "retention deleted records before they were read"
	        : stored ? "the topic was deleted and created again, or lost records; dp-sink-pg "
	                   "stops there until its offsets move (dp-sink-pg --reset-offsets)"
	                 : "the topic was deleted and created again, or lost records; a consumer "
	                   "goes on where auto.offset.reset says");
}

static int
offsets_row(struct dp_topics *t, const char *topic, int p, int64_t low, int64_t high,
            int64_t committed)
{
	/* A sink's lag is from what its table holds: the stored offset. */
	bool sink = has_stored(t, topic);
	int64_t stored = sink ? stored_of(t, topic, p) : -1;
	int64_t l = dp_topics_lag(low, high, sink ? stored : committed);
	struct dp_jw w;

	say_outside(t, topic, p, low, high, committed, false);
	say_outside(t, topic, p, low, high, stored, true);
	if (as_table(t)) {
		char id[DP_TABLE_NUM], lo[DP_TABLE_NUM], hi[DP_TABLE_NUM], co[DP_TABLE_NUM],
		     st[DP_TABLE_NUM], la[DP_TABLE_NUM];
		const char *c[] = { topic, dp_table_num(id, p), dp_table_num(lo, low),
		                    dp_table_num(hi, high), dp_table_num(co, committed),
		                    dp_table_num(la, l), dp_table_num(st, stored) };
		/* STORED is the last column, there when some topic has stored offsets. */
		return row(t, c);
	}
	record(t, &w);
	dp_jw_kstr(&w, "topic", topic);
	dp_jw_kint(&w, "partition", p);
	dp_jw_kcount(&w, "low", low);
	dp_jw_kcount(&w, "high", high);
	if (t->o->group) {
		dp_jw_kstr(&w, "group", t->o->group);
		dp_jw_kcount(&w, "committed", committed);
		if (sink)
			dp_jw_kcount(&w, "stored", stored);
		dp_jw_kcount(&w, "lag", l);
	}
	return record_end(t, &w);
}

int
dp_topics_show_offsets(struct dp_topics *t)
{
	static const char *const h[] = { "TOPIC", "PARTITION", "LOW", "HIGH", "COMMITTED", "LAG",
		                          "STORED" };

	if (as_table(t) &&
	    table(t, h, !t->o->group ? 4 : has_stored(t, NULL) ? 7 : 6, 0x7eu) < 0)
		return -1;
	for (size_t i = 0; i < t->n && !dp_out_error(t->out); i++) {
		const struct dp_topic *it = &t->v[i];
		if (it->res.status) {
			if (show_failed(t, it, "topic") < 0)
				return -1;
			continue;
		}
		for (int p = 0; it->low && p < it->md->npartitions; p++)
			if (offsets_row(t, it->md->name, p, it->low[p], it->high[p],
			                it->committed[p]) < 0)
				return -1;
	}
	return table_end(t);
}
