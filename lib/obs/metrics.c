/*
 * obs/metrics.c -- the process's metrics registry and its Prometheus text
 * exposition (obs/metrics.h).
 *
 * Values are doubles kept in atomic 64-bit words (their bits), changed by
 * compare-and-swap: C11 has no atomic add on floating types.  The lists
 * of families and series change under one mutex, rarely (a partition
 * assigned); adding to a series takes no lock.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vec.h"
#include "obs/metrics.h"

struct dp_series {
	struct dp_metric *m;
	char **values;                  /* one per label name; owned */
	_Atomic uint64_t v;             /* the value (a double's bits); a histogram's sum */
	_Atomic uint64_t *counts;       /* histogram: per bucket (not cumulative), +Inf last */
	atomic_bool dropped;
	struct dp_series *next;         /* the family's list, newest first (under mu) */
	struct dp_series *all;          /* every series ever made, for freeing */
};

struct dp_metric {
	const char *name, *help;
	enum dp_metric_type type;
	const char **labels;            /* the array owned, the names borrowed */
	size_t nlabels;
	double *buckets;                /* owned */
	size_t nbuckets;
	struct dp_series *series;       /* linked, not dropped */
	struct dp_metric *next;         /* declaration order */
};

static struct {
	pthread_mutex_t mu;
	const char *command;
	bool on;
	struct dp_metric *first, **tail;
	struct dp_series *all;
} reg = { .mu = PTHREAD_MUTEX_INITIALIZER };

static double
load(const _Atomic uint64_t *a)
{
	uint64_t u = atomic_load_explicit(a, memory_order_relaxed);
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

static uint64_t
bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static void
add(_Atomic uint64_t *a, double v)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed), new;

	do {
		double d;
		memcpy(&d, &old, sizeof(d));
		new = bits(d + v);
	} while (!atomic_compare_exchange_weak_explicit(a, &old, new, memory_order_relaxed,
	                                                memory_order_relaxed));
}

int
dp_metrics_init(const char *command)
{
	pthread_mutex_lock(&reg.mu);
	reg.command = command;
	reg.tail = reg.tail ? reg.tail : &reg.first;
	reg.on = true;
	pthread_mutex_unlock(&reg.mu);
	return 0;
}

bool
dp_metrics_on(void)
{
	return reg.on;
}

void
dp_metrics_free(void)
{
	pthread_mutex_lock(&reg.mu);
	for (struct dp_series *s = reg.all, *n; s; s = n) {
		n = s->all;
		for (size_t i = 0; i < s->m->nlabels; i++)
			free(s->values[i]);
		free(s->values);
		free(s->counts);
		free(s);
	}
	for (struct dp_metric *m = reg.first, *n; m; m = n) {
		n = m->next;
		free(m->buckets);
		free(m->labels);
		free(m);
	}
	reg.all = NULL;
	reg.first = NULL;
	reg.tail = &reg.first;
	reg.on = false;
	pthread_mutex_unlock(&reg.mu);
}

/* Whether labels (NULL-terminated; NULL: none) are m's label names. */
static bool
same_labels(const struct dp_metric *m, const char *const *labels)
{
	size_t n = 0;

	while (labels && labels[n])
		n++;
	if (n != m->nlabels)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(m->labels[i], labels[i]) != 0)
			return false;
	return true;
}

struct dp_metric *
dp_metric_new(const char *name, const char *help, enum dp_metric_type type,
              const char *const *labels, const double *buckets, size_t n_buckets)
{
	struct dp_metric *m;

	if (!reg.on)
		return NULL;
	pthread_mutex_lock(&reg.mu);
	for (m = reg.first; m; m = m->next)
		if (strcmp(m->name, name) == 0) {
			/* Another shape under the same name would mix its samples in: refused. */
			if (m->type != type || !same_labels(m, labels))
				m = NULL;
			goto out;
		}
	if (!(m = calloc(1, sizeof(*m))))
		goto out;
	m->name = name;
	m->help = help;
	m->type = type;
	while (labels && labels[m->nlabels])
		m->nlabels++;
	/* The array may be a caller's compound literal: kept as a copy. */
	if (m->nlabels && !(m->labels = malloc(m->nlabels * sizeof(*m->labels)))) {
		free(m);
		m = NULL;
		goto out;
	}
	for (size_t i = 0; i < m->nlabels; i++)
		m->labels[i] = labels[i];
	if (type == DP_METRIC_HISTOGRAM && n_buckets) {
		if (!(m->buckets = malloc(n_buckets * sizeof(*m->buckets)))) {
			free(m->labels);
			free(m);
			m = NULL;
			goto out;
		}
		memcpy(m->buckets, buckets, n_buckets * sizeof(*m->buckets));
		m->nbuckets = n_buckets;
	}
	*reg.tail = m;
	reg.tail = &m->next;
out:
	pthread_mutex_unlock(&reg.mu);
	return m;
}

static bool
same_values(const struct dp_series *s, const char *const *values)
{
	for (size_t i = 0; i < s->m->nlabels; i++)
		if (strcmp(s->values[i], values[i]) != 0)
			return false;
	return true;
}

static struct dp_series *
series_new(struct dp_metric *m, const char *const *values)
{
	struct dp_series *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->m = m;
	if (m->nlabels && !(s->values = calloc(m->nlabels, sizeof(*s->values))))
		goto fail;
	for (size_t i = 0; i < m->nlabels; i++)
		if (!(s->values[i] = strdup(values && values[i] ? values[i] : "")))
			goto fail;
	if (m->type == DP_METRIC_HISTOGRAM &&
	    !(s->counts = calloc(m->nbuckets + 1, sizeof(*s->counts))))
		goto fail;
	return s;
fail:
	for (size_t i = 0; s->values && i < m->nlabels; i++)
		free(s->values[i]);
	free(s->values);
	free(s);
	return NULL;
}

struct dp_series *
dp_metric_series(struct dp_metric *m, const char *const *values)
{
	struct dp_series *s;

	if (!m)
		return NULL;
	pthread_mutex_lock(&reg.mu);
	for (s = m->series; s; s = s->next)
		if (same_values(s, values))
			goto out;
	if ((s = series_new(m, values))) {
		s->next = m->series;
		m->series = s;
		s->all = reg.all;
		reg.all = s;
	}
out:
	pthread_mutex_unlock(&reg.mu);
	return s;
}

struct dp_series *
dp_metric_one(struct dp_metric *m)
{
	return dp_metric_series(m, NULL);
}

void
dp_series_drop(struct dp_series *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&reg.mu);
	for (struct dp_series **p = &s->m->series; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	atomic_store(&s->dropped, true);
	pthread_mutex_unlock(&reg.mu);
}

void
dp_series_add(struct dp_series *s, double v)
{
	if (s)
		add(&s->v, v);
}

void
dp_series_set(struct dp_series *s, double v)
{
	if (s)
		atomic_store_explicit(&s->v, bits(v), memory_order_relaxed);
}

void
dp_series_observe(struct dp_series *s, double v)
{
	size_t i = 0;

	if (!s || !s->counts)
		return;
	while (i < s->m->nbuckets && v > s->m->buckets[i])
		i++;
	atomic_fetch_add_explicit(&s->counts[i], 1, memory_order_relaxed);
	add(&s->v, v);
}

double
dp_series_get(const struct dp_series *s)
{
	uint64_t n = 0;

	if (!s)
		return 0;
	if (!s->counts)
		return load(&s->v);
	for (size_t i = 0; i <= s->m->nbuckets; i++)
		n += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
	return (double)n;
}

/* ---- exposition ---------------------------------------------------------- */

/* A label value or help text, escaped as the text format wants. */
static int
escaped(struct dp_buf *out, const char *s, bool quote)
{
	for (; *s; s++) {
		int rc;
		if (*s == '\\')
			rc = dp_buf_addstr(out, "\\\\");
		else if (*s == '\n')
			rc = dp_buf_addstr(out, "\\n");
		else if (quote && *s == '"')
			rc = dp_buf_addstr(out, "\\\"");
		else
			rc = dp_buf_addch(out, *s);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* v in the fewest digits that read back as v: 0.1, not 0.10000000000000001. */
static const char *
shortest(char buf[40], double v)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, 40, "%.0f", v);
		return buf;
	}
	for (int prec = 1; prec < 17; prec++) {
		snprintf(buf, 40, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return buf;
	}
	snprintf(buf, 40, "%.17g", v);
	return buf;
}

static int
number(struct dp_buf *out, double v)
{
	char b[40];

	return dp_buf_addstr(out, shortest(b, v));
}

/* name{command="...",l1="v1",...[,le="x"]} */
static int
sample_name(struct dp_buf *out, const struct dp_series *s, const char *suffix, const char *le)
{
	const struct dp_metric *m = s->m;

	if (dp_buf_addf(out, "%s%s{command=\"", m->name, suffix) < 0 ||
	    escaped(out, reg.command, true) < 0 || dp_buf_addch(out, '"') < 0)
		return -1;
	for (size_t i = 0; i < m->nlabels; i++)
		if (dp_buf_addf(out, ",%s=\"", m->labels[i]) < 0 ||
		    escaped(out, s->values[i], true) < 0 || dp_buf_addch(out, '"') < 0)
			return -1;
	if (le && dp_buf_addf(out, ",le=\"%s\"", le) < 0)
		return -1;
	return dp_buf_addstr(out, "} ");
}

static int
histogram(struct dp_buf *out, const struct dp_series *s)
{
	const struct dp_metric *m = s->m;
	uint64_t cum = 0;
	char le[40];

	for (size_t i = 0; i <= m->nbuckets; i++) {
		cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
		if (sample_name(out, s, "_bucket", i < m->nbuckets ? shortest(le, m->buckets[i])
		                                                  : "+Inf") < 0 ||
		    dp_buf_addf(out, "%llu\n", (unsigned long long)cum) < 0)
			return -1;
	}
	if (sample_name(out, s, "_sum", NULL) < 0 || number(out, load(&s->v)) < 0 ||
	    dp_buf_addch(out, '\n') < 0 || sample_name(out, s, "_count", NULL) < 0 ||
	    dp_buf_addf(out, "%llu\n", (unsigned long long)cum) < 0)
		return -1;
	return 0;
}

int
dp_metrics_write(struct dp_buf *out)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	int rc = 0;

	if (!reg.on)
		return 0;
	pthread_mutex_lock(&reg.mu);
	for (const struct dp_metric *m = reg.first; m && rc == 0; m = m->next) {
		if (!m->series)
			continue;
		if (dp_buf_addf(out, "# HELP %s ", m->name) < 0 || escaped(out, m->help, false) < 0 ||
		    dp_buf_addf(out, "\n# TYPE %s %s\n", m->name, types[m->type]) < 0) {
			rc = -1;
			break;
		}
		/* oldest series first: the order they came in */
		size_t n = 0, cap = 0;
		const struct dp_series **v = NULL;
		for (const struct dp_series *s = m->series; s; s = s->next) {
			const struct dp_series **nv = dp_grow(v, &cap, n + 1, sizeof(*v), 16);
			if (!nv) {
				rc = -1;
				break;
			}
			v = nv;
			v[n++] = s;
		}
		while (rc == 0 && n > 0) {
			const struct dp_series *s = v[--n];
			if (m->type == DP_METRIC_HISTOGRAM)
				rc = histogram(out, s);
			else if (sample_name(out, s, "", NULL) < 0 || number(out, load(&s->v)) < 0 ||
			         dp_buf_addch(out, '\n') < 0)
				rc = -1;
		}
		free(v);
	}
	pthread_mutex_unlock(&reg.mu);
	return rc;
}
