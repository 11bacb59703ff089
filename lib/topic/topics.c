/*
 * topic/topics.c -- dp-topic's engine (topic/topics.h): the run's topics,
 * their specs, and one request step per subcommand.  The views are in
 * topic/show.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/table.h"
#include "core/vec.h"
#include "kafka/client.h"
#include "topic/topics.h"

void
dp_topics_init(struct dp_topics *t, const struct dp_topics_opts *o, const char *verb)
{
	memset(t, 0, sizeof(*t));
	t->o = o;
	t->verb = verb;
	t->format = DP_TOPICS_JSON;
}

void
dp_topics_free(struct dp_topics *t)
{
	if (!t)
		return;
	if (t->rk)
		rd_kafka_destroy(t->rk);
	for (size_t i = 0; i < t->nspecs; i++)
		dp_admin_spec_clear(&t->specs[i]);
	free(t->specs);
	for (size_t i = 0; i < t->n; i++) {
		struct dp_topic *it = &t->v[i];
		dp_admin_result_clear(&it->res);
		dp_admin_configs_clear(&it->configs);
		free(it->low);
		free(it->high);
		free(it->committed);
	}
	free(t->v);
	dp_admin_topics_clear(&t->md);
	if (t->re_ok)
		regfree(&t->re);
	dp_table_free(t->table);
	dp_buf_free(&t->rec);
	memset(t, 0, sizeof(*t));
}

int
dp_topics_pattern(struct dp_topics *t, struct dp_buf *err)
{
	struct dp_buf re = DP_BUF_INIT;
	int rc;

	if (!t->o->pattern)
		return 0;
	/* The whole name must match: "orders" must not select "orders-dlq". */
	rc = dp_buf_addf(&re, "^(%s)$", t->o->pattern) < 0
	     ? REG_ESPACE : regcomp(&t->re, re.data, REG_EXTENDED | REG_NOSUB);
	dp_buf_free(&re);
	if (rc) {
		char why[256];
		regerror(rc, &t->re, why, sizeof(why));
		dp_buf_msgf(err, "%s", why);
		return -1;
	}
	t->re_ok = true;
	return 0;
}

void
dp_topics_note(struct dp_topics *t, int st)
{
	if (!st)
		return;
	if (!t->status)
		t->status = st;
	else if (t->status != st)
		t->status = DP_EX_PARTIAL;
}

/* Memory ran out: said, and the run's status.  Returns DP_EX_SOFTWARE. */
static int
nomem(struct dp_topics *t)
{
	dp_err("out of memory");
	dp_topics_note(t, DP_EX_SOFTWARE);
	return DP_EX_SOFTWARE;
}

/* ---- the topics ---------------------------------------------------- */

static int
add(struct dp_topics *t, const char *name, const struct dp_admin_spec *spec)
{
	struct dp_topic *v = dp_grow(t->v, &t->cap, t->n + 1, sizeof(*v), 8), *p;

	if (!v)
		return -1;
	t->v = v;
	p = &v[t->n];
	memset(p, 0, sizeof(*p));
	p->partitions = spec ? spec->partitions : -1;
	p->replication = spec ? spec->replication_factor : -1;
	p->previous = -1;
	p->spec = spec;
	if (!(p->res.name = strdup(name)))
		return -1;
	t->n++;
	return 0;
}

int
dp_topics_name(struct dp_topics *t, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (add(t, names[i], NULL) < 0)
			return nomem(t);
	return 0;
}

/* Defaults from -p/-r/-c for a spec; what the spec itself says wins. */
static int
complete(const struct dp_topics_opts *o, struct dp_admin_spec *s)
{
	if (s->partitions < 0 && o->partitions)
		s->partitions = (int32_t)o->partitions;
	if (s->replication_factor < 0 && o->replication)
		s->replication_factor = (int32_t)o->replication;
	for (size_t i = 0; i < o->nconfig; i++) {
		bool has = false;
		for (size_t j = 0; j < s->nconfig; j++)
			if (strcmp(s->config[j].key, o->config[i].key) == 0)
				has = true;
		if (has)
			continue;
		if (dp_kv_add_pair(&s->config, &s->nconfig, o->config[i].key,
		                   o->config[i].value) < 0)
			return -1;
	}
	return 0;
}

/* Take s (completed) into the run's specs; s is the run's after 0. */
static int
add_spec(struct dp_topics *t, struct dp_admin_spec *s)
{
	struct dp_admin_spec *v;

	if (complete(t->o, s) < 0)
		return -1;
	v = dp_grow(t->specs, &t->specs_cap, t->nspecs + 1, sizeof(*v), 8);
	if (!v)
		return -1;
	t->specs = v;
	t->specs[t->nspecs++] = *s;
	return 0;
}

/* A topic for each spec, once they are all read (the array moves no more). */
static int
add_spec_topics(struct dp_topics *t)
{
	for (size_t i = 0; i < t->nspecs; i++)
		if (add(t, t->specs[i].name, &t->specs[i]) < 0)
			return nomem(t);
	return 0;
}

int
dp_topics_specs(struct dp_topics *t, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct dp_admin_spec s;
		memset(&s, 0, sizeof(s));
		s.partitions = -1;
		s.replication_factor = -1;
		s.name = strdup(names[i]);
		if (!s.name || add_spec(t, &s) < 0) {
			dp_admin_spec_clear(&s);
			return nomem(t);
		}
	}
	return add_spec_topics(t);
}

static bool
blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* One line of specs: 0, or the status after naming the line. */
static int
spec_line(struct dp_topics *t, const char *line, size_t len, unsigned long lineno)
{
	struct dp_admin_spec s;
	struct dp_buf err = DP_BUF_INIT;

	if (blank(line, len))
		return 0;
	if (dp_admin_spec_parse(line, len, &s, &err) < 0) {
		dp_err("stdin line %lu: %s", lineno, dp_buf_str(&err));
		dp_buf_free(&err);
		dp_admin_spec_clear(&s);
		return DP_EX_DATAERR;
	}
	dp_buf_free(&err);
	if (add_spec(t, &s) < 0) {
		dp_admin_spec_clear(&s);
		dp_err("out of memory");
		return DP_EX_SOFTWARE;
	}
	return 0;
}

/*
 * Read every spec before anything is sent: a file with one bad line
 * changes nothing at all, so fixing it and running again is safe.
 */
int
dp_topics_specs_read(struct dp_topics *t, int fd)
{
	struct dp_lines *in = dp_lines_new(fd, DP_LINES_STRICT);
	const char *line;
	size_t len;
	int r, st, status = 0;

	if (!in)
		return nomem(t);
	dp_lines_set_max(in, t->o->max_line);
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
			       "(%llu)", lineno, len, (unsigned long long)t->o->max_line);
			status = DP_EX_DATAERR;
			continue;
		}
		if (r == DP_LINES_BAD) {
			dp_err("stdin line %lu: %s at byte %zu", lineno, dp_lines_error(in),
			       dp_lines_error_offset(in) + 1);
			status = DP_EX_DATAERR;
			continue;
		}
		if ((st = spec_line(t, line, len, lineno)) == DP_EX_SOFTWARE) {
			status = st;
			break;
		}
		if (st)
			status = st;
	}
	dp_lines_free(in);
	return status ? status : add_spec_topics(t);
}

size_t
dp_topics_check(struct dp_topics *t)
{
	size_t left = 0;

	for (size_t i = 0; i < t->n; i++) {
		struct dp_topic *it = &t->v[i];
		struct dp_buf why = DP_BUF_INIT;
		if (dp_admin_check_name(it->res.name, &why)) {
			dp_admin_result_fail(&it->res, DP_EX_INVALID, 0, "%s", dp_buf_str(&why));
		} else {
			for (size_t j = 0; j < i; j++)
				if (strcmp(t->v[j].res.name, it->res.name) == 0) {
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

int
dp_topics_connect(struct dp_topics *t, const struct dp_kafka_opts *k, struct dp_buf *err)
{
	/* Looking at a topic must never create it, whatever the broker allows. */
	static const struct dp_kv defaults[] = {
		{ "allow.auto.create.topics", "false" },
	};
	int st;

	t->timeout_ms = (int)k->timeout_ms;
	t->rk = dp_kafka_new(k, RD_KAFKA_PRODUCER, defaults, 1, NULL, NULL, err, &st);
	if (t->rk)
		st = dp_kafka_connect(t->rk, k, NULL, 0, NULL, err);
	return st;
}

/* ---- what the steps share ------------------------------------------ */

/*
 * The topics still undecided: their names into names[], their places in
 * t->v into idx[] (both t->n long), and how many.
 */
static size_t
pending(struct dp_topics *t, const char **names, size_t *idx)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++)
		if (!t->v[i].res.status && !t->v[i].action) {
			names[n] = t->v[i].res.name;
			idx[n++] = i;
		}
	return n;
}

/* A request's result onto its topic; the message moves. */
static void
take_result(struct dp_topic *it, struct dp_admin_result *r)
{
	it->res.status = r->status;
	it->res.err = r->err;
	free(it->res.error);
	it->res.error = r->error;
	r->error = NULL;
}

/* Room for the arrays of a request about every topic of the run. */
struct batch {
	const char **names;
	size_t *idx;
	struct dp_admin_result *res;
	size_t n;
};

static int
batch_new(struct dp_topics *t, struct batch *b)
{
	b->names = calloc(t->n + 1, sizeof(*b->names));
	b->idx = calloc(t->n + 1, sizeof(*b->idx));
	b->res = calloc(t->n + 1, sizeof(*b->res));
	b->n = 0;
	if (b->names && b->idx && b->res) {
		b->n = pending(t, b->names, b->idx);
		return 0;
	}
	free(b->names);
	free(b->idx);
	free(b->res);
	b->res = NULL;
	b->names = NULL;
	b->idx = NULL;
	return nomem(t);
}

static void
batch_free(struct batch *b)
{
	dp_admin_results_free(b->res, b->n);
	free(b->names);
	free(b->idx);
}

/*
 * Every topic's metadata.  When it cannot be had, every topic still
 * undecided fails with the reason (or, with none named, the run does).
 */
static int
metadata(struct dp_topics *t)
{
	struct dp_buf err = DP_BUF_INIT;
	const char **names = calloc(t->n + 1, sizeof(*names));
	size_t n = 0;
	bool any = false;
	int st;

	/* The topics about to be looked at: a moment to show up when just created. */
	for (size_t i = 0; names && i < t->n; i++)
		if (!t->v[i].res.status && !t->v[i].action && t->v[i].res.name)
			names[n++] = t->v[i].res.name;
	st = dp_admin_list_for(t->rk, names, n, t->timeout_ms, &t->md, &err);
	free(names);

	for (size_t i = 0; st && i < t->n; i++)
		if (!t->v[i].res.status && !t->v[i].action) {
			dp_admin_result_fail(&t->v[i].res, st, 0, "%s", dp_buf_str(&err));
			any = true;
		}
	if (st && !any) {
		dp_err("%s", dp_buf_str(&err));
		dp_topics_note(t, st);
	}
	dp_buf_free(&err);
	return st;
}

/* Fail the topics that are not in the metadata; the others get theirs. */
static void
require_existing(struct dp_topics *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct dp_topic *it = &t->v[i];
		if (it->res.status)
			continue;
		if (!(it->md = dp_admin_topics_find(&t->md, it->res.name)))
			dp_admin_result_fail(&it->res, DP_EX_NOTFOUND,
			                     RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
			                     "topic does not exist");
	}
}

/*
 * With o->group the group's committed offsets, then the watermarks of
 * every partition of it's topic (-1 where the leader did not answer,
 * said).  In this order: an offset is committed below the high watermark
 * of its time, and a high watermark never goes down, so a group that
 * commits meanwhile is never seen past the partition's end.
 */
static void
partition_offsets(struct dp_topics *t, struct dp_topic *it)
{
	const struct dp_admin_topic *tp = it->md;
	size_t n = (size_t)(tp->npartitions > 0 ? tp->npartitions : 1);
	struct dp_buf err = DP_BUF_INIT;
	int st, first = 0;

	it->low = calloc(n, sizeof(*it->low));
	it->high = calloc(n, sizeof(*it->high));
	it->committed = calloc(n, sizeof(*it->committed));
	if (!it->low || !it->high || !it->committed) {
		free(it->low);
		free(it->high);
		free(it->committed);
		it->low = it->high = it->committed = NULL;    /* the views skip it */
		nomem(t);
		return;
	}
	for (int p = 0; p < tp->npartitions; p++)
		it->committed[p] = -1;
	if (t->o->group && (st = dp_admin_committed(t->rk, t->o->group, tp->name,
	                                            tp->npartitions, t->timeout_ms,
	                                            it->committed, &err))) {
		dp_err("%s", dp_buf_str(&err));
		dp_buf_reset(&err);
		dp_topics_note(t, st);
	}
	for (int p = 0; p < tp->npartitions; p++) {
		st = dp_admin_watermarks(t->rk, tp->name, tp->partitions[p].id, t->timeout_ms,
		                         &it->low[p], &it->high[p], &err);
		if (st) {
			dp_err("%s", dp_buf_str(&err));
			it->low[p] = it->high[p] = -1;
			first = first ? first : st;
		}
		dp_buf_reset(&err);
	}
	dp_buf_free(&err);
	/* the leaders that did not answer count once, as the first did */
	dp_topics_note(t, first);
}

/* ---- create --------------------------------------------------------- */

/* Fill partitions and replication from metadata where the broker chose. */
static void
fill_from_metadata(struct dp_topics *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct dp_topic *it = &t->v[i];
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

/*
 * Return only once the broker's metadata shows a created topic, so that
 * "create, then publish" works in a script.
 */
static void
await_created(struct dp_topics *t, const char *name)
{
	struct dp_buf err = DP_BUF_INIT;
	int st = dp_kafka_await_topic(t->rk, name, t->timeout_ms, NULL, &err);

	if (st && st != DP_KAFKA_STOPPED)
		dp_warn("topic '%s' was created but is not usable yet: %s", name, dp_buf_str(&err));
	dp_buf_free(&err);
}

int
dp_topics_create(struct dp_topics *t)
{
	struct dp_admin_spec *send = calloc(t->n + 1, sizeof(*send));
	struct batch b;
	bool dry = t->o->dry_run, lookup = false;
	int st;

	if (!send || batch_new(t, &b) != 0) {
		free(send);
		return nomem(t);
	}
	for (size_t k = 0; k < b.n; k++)
		send[k] = *t->v[b.idx[k]].spec;         /* shallow: the strings stay in t->specs */
	st = dp_admin_create(t->rk, send, b.n, dry, t->timeout_ms, b.res);
	for (size_t k = 0; k < b.n; k++) {
		struct dp_topic *it = &t->v[b.idx[k]];
		if (!b.res[k].status) {
			it->action = dry ? "would-create" : "created";
			lookup |= !dry;
			if (!dry)
				await_created(t, it->spec->name);
		} else if (b.res[k].err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS &&
		           t->o->if_not_exists) {
			it->action = "exists";
			lookup = true;
		} else {
			take_result(it, &b.res[k]);
		}
	}
	batch_free(&b);
	free(send);
	if (lookup && !st) {
		struct dp_buf err = DP_BUF_INIT;
		const char **names = calloc(t->n + 1, sizeof(*names));
		size_t k = 0;
		/*
		 * Only decoration: without it the requested numbers are shown.
		 * The topics' names, so that the broker asked (in a cluster, maybe
		 * not the one that took the create) is given a moment to know them.
		 */
		for (size_t i = 0; names && i < t->n; i++)
			if (!t->v[i].res.status && t->v[i].action)
				names[k++] = t->v[i].res.name;
		if (names && dp_admin_list_for(t->rk, names, k, t->timeout_ms, &t->md, &err) == 0)
			fill_from_metadata(t);
		else
			dp_info("%s", names ? dp_buf_str(&err) : "out of memory");
		free(names);
		dp_buf_free(&err);
	}
	return st;
}

/* ---- list, describe, offsets ---------------------------------------- */

int
dp_topics_list(struct dp_topics *t)
{
	return metadata(t);
}

int
dp_topics_describe(struct dp_topics *t)
{
	struct dp_admin_configs *cfg;
	struct batch b;
	int st;

	if ((st = metadata(t)) != 0)
		return st;
	require_existing(t);
	if (batch_new(t, &b) != 0)
		return DP_EX_SOFTWARE;
	if (!(cfg = calloc(b.n + 1, sizeof(*cfg)))) {
		batch_free(&b);
		return nomem(t);
	}
	st = dp_admin_describe_configs(t->rk, b.names, b.n, t->timeout_ms, cfg);
	for (size_t k = 0; k < b.n; k++) {
		struct dp_topic *it = &t->v[b.idx[k]];
		if (cfg[k].res.status)
			take_result(it, &cfg[k].res);
		dp_admin_result_clear(&cfg[k].res);
		it->configs = cfg[k];
		it->action = "described";
	}
	free(cfg);
	batch_free(&b);
	for (size_t i = 0; i < t->n; i++)
		if (!t->v[i].res.status)
			partition_offsets(t, &t->v[i]);
	return st;
}

int
dp_topics_offsets(struct dp_topics *t)
{
	int st = metadata(t);

	if (st)
		return st;
	require_existing(t);
	for (size_t i = 0; i < t->n; i++)
		if (!t->v[i].res.status)
			partition_offsets(t, &t->v[i]);
	return 0;
}

void
dp_topics_stored(struct dp_topics *t, const struct dp_sinkoffset *v, size_t n)
{
	t->stored = v;
	t->nstored = n;
}

/* ---- alter, add-partitions, delete ---------------------------------- */

int
dp_topics_alter(struct dp_topics *t)
{
	const struct dp_admin_change ch = { t->o->set, t->o->nset, t->o->del, t->o->ndel };
	struct batch b;
	int st;

	if (batch_new(t, &b) != 0)
		return DP_EX_SOFTWARE;
	st = dp_admin_alter(t->rk, b.names, b.n, &ch, t->o->dry_run, t->timeout_ms, b.res,
	                    &t->method);
	for (size_t k = 0; k < b.n; k++) {
		struct dp_topic *it = &t->v[b.idx[k]];
		if (b.res[k].status)
			take_result(it, &b.res[k]);
		else
			it->action = t->o->dry_run ? "would-alter" : "altered";
	}
	batch_free(&b);
	return st;
}

int
dp_topics_add_partitions(struct dp_topics *t)
{
	int32_t total = (int32_t)t->o->partitions;
	struct batch b;
	int st;

	if ((st = metadata(t)) != 0)
		return st;
	require_existing(t);
	for (size_t i = 0; i < t->n; i++) {
		struct dp_topic *it = &t->v[i];
		if (it->res.status)
			continue;
		it->previous = it->partitions = it->md->npartitions;
		/* Asking again for what is already there is not an error. */
		if (it->md->npartitions == total)
			it->action = "unchanged";
		else if (it->md->npartitions > total)
			dp_admin_result_fail(&it->res, DP_EX_INVALID,
			                     RD_KAFKA_RESP_ERR_INVALID_PARTITIONS,
			                     "topic has %d partitions; partitions can be added, "
			                     "never removed", it->md->npartitions);
	}
	if (batch_new(t, &b) != 0)
		return DP_EX_SOFTWARE;
	if (b.n)
		st = dp_admin_add_partitions(t->rk, b.names, b.n, total, t->o->dry_run,
		                             t->timeout_ms, b.res);
	for (size_t k = 0; k < b.n; k++) {
		struct dp_topic *it = &t->v[b.idx[k]];
		if (b.res[k].status) {
			take_result(it, &b.res[k]);
		} else {
			it->action = t->o->dry_run ? "would-add" : "added";
			it->partitions = total;
		}
	}
	batch_free(&b);
	return st;
}

/* Every topic whose whole name matches --pattern; internal ones never. */
static int
name_matching(struct dp_topics *t)
{
	for (size_t i = 0; i < t->md.n; i++)
		if (!t->md.v[i].internal && regexec(&t->re, t->md.v[i].name, 0, NULL, 0) == 0 &&
		    add(t, t->md.v[i].name, NULL) < 0)
			return nomem(t);
	if (t->n == 0 && !t->o->if_exists) {
		dp_err("no topic matches --pattern '%s'", t->o->pattern);
		dp_topics_note(t, DP_EX_NOTFOUND);
	}
	return 0;
}

int
dp_topics_delete(struct dp_topics *t)
{
	struct batch b;
	int st = 0;

	if ((t->re_ok || t->o->dry_run) && (st = metadata(t)) != 0)
		return st;
	if (t->re_ok && name_matching(t) != 0)
		return DP_EX_SOFTWARE;
	if (t->o->dry_run) {
		for (size_t i = 0; i < t->n; i++) {
			struct dp_topic *it = &t->v[i];
			if (it->res.status)
				continue;
			if (dp_admin_topics_find(&t->md, it->res.name))
				it->action = "would-delete";
			else if (t->o->if_exists)
				it->action = "absent";
			else
				dp_admin_result_fail(&it->res, DP_EX_NOTFOUND,
				                     RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
				                     "topic does not exist");
		}
		return 0;
	}
	if (batch_new(t, &b) != 0)
		return DP_EX_SOFTWARE;
	if (b.n)
		st = dp_admin_delete(t->rk, b.names, b.n, t->timeout_ms, b.res);
	for (size_t k = 0; k < b.n; k++) {
		struct dp_topic *it = &t->v[b.idx[k]];
		if (!b.res[k].status)
			it->action = "deleted";
		else if (b.res[k].status == DP_EX_NOTFOUND && t->o->if_exists)
			it->action = "absent";
		else
			take_result(it, &b.res[k]);
	}
	batch_free(&b);
	return st;
}
