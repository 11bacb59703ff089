/*
 * dyn/route.c -- the routes of dynamic topics (dyn/route.h): equality filters in
 * an index keyed by the compared values, the rest through jq/expr.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/log.h"
#include "dyn/route.h"
#include "jq/expr.h"
#include "jq/fast.h"
#include "json/scan.h"

enum kind { R_INDEX, R_EXPR, R_NEVER };

/* One equality test: a plain path and the canonical form of its literal. */
struct term {
	char *pkey;             /* the path, as length-prefixed steps */
	size_t pkeylen;
	char **steps;
	size_t nsteps;
	char *canon;            /* see canon_string, canon_number */
	size_t canonlen;
};

struct rt {
	char *topic, *source, *filter;
	enum kind kind;
	struct dp_expr *expr;   /* R_EXPR */
	struct term *terms;     /* R_INDEX, sorted by path */
	size_t nterms;
	bool warned;            /* its filter failed once and said so */
	bool keep;
};

/* The index of one source. */
struct path {
	char *pkey;             /* borrowed from a route's term */
	size_t pkeylen;
	const char *const *steps;
	size_t nsteps;
	size_t top;             /* its first step, in src->tops */
};

struct slot {
	uint64_t hash;
	char *key;              /* NULL: free */
	size_t keylen;
	size_t *routes;
	size_t nroutes;
};

/* Routes whose filters test the same paths: one hash table of value tuples. */
struct group {
	size_t *paths;          /* ascending */
	size_t npaths;
	struct slot *slots;
	size_t cap, used;
};

struct src {
	char *name;             /* borrowed from a route */
	const char **tops;      /* distinct first steps of the paths */
	size_t *toplen;
	size_t ntops;
	struct path *paths;
	size_t npaths;
	struct group *groups;
	size_t ngroups;
	size_t *exprs;          /* routes through jq/expr.h */
	size_t nexprs;
};

/* A captured top-level member of the record in hand. */
struct tv {
	const char *v;
	size_t n;
};

struct dp_route {
	struct rt **v;
	size_t n;
	struct src *srcs;
	size_t nsrcs;
	size_t last;            /* the source of the last record */
	size_t indexed;
	/* scratch */
	struct tv *tv;
	size_t tvcap;
	struct dp_buf key, tmp, out, err;
};

/* ---- lists for the hand-over ----------------------------------------------- */

struct dp_route_list *
dp_route_list_new(const struct dp_route_spec *specs, size_t n, uint64_t version)
{
	size_t bytes = sizeof(struct dp_route_list) + n * sizeof(struct dp_route_spec);

	for (size_t i = 0; i < n; i++)
		bytes += strlen(specs[i].topic) + strlen(specs[i].source) +
		         strlen(specs[i].filter) + 3;
	struct dp_route_list *l = malloc(bytes);
	if (!l)
		return NULL;
	char *p = (char *)&l->v[n];
	l->version = version;
	l->n = n;
	for (size_t i = 0; i < n; i++) {
		const char *s[3] = { specs[i].topic, specs[i].source, specs[i].filter };
		const char **d[3] = { &l->v[i].topic, &l->v[i].source, &l->v[i].filter };
		for (int k = 0; k < 3; k++) {
			size_t len = strlen(s[k]) + 1;
			memcpy(p, s[k], len);
			*d[k] = p;
			p += len;
		}
	}
	return l;
}

/* ---- canonical values ------------------------------------------------------ */

/*
 * A value as jq compares it, as bytes: 's' and a string's decoded bytes,
 * or 'n' and a number's double (jq 1.6 holds numbers as doubles, so 1.0
 * and 1 are the same; -0 is 0).  Appended to b with a 32-bit length
 * first, so that a tuple of them is one unambiguous key.  Other types
 * return 1 (they never equal a string or number literal).  0, 1, or -1
 * (memory).
 */
static int
canon_append(struct dp_buf *b, struct dp_buf *tmp, const char *v, size_t n)
{
	uint32_t len;
	size_t at = b->len;

	if (n == 0)
		return 1;
	if (v[0] == '"') {
		const char *s = v + 1;
		size_t sn = n - 2;
		if (memchr(s, '\\', sn)) {
			dp_buf_reset(tmp);
			if (dp_json_unquote(tmp, v, n) < 0)
				return -1;
			s = tmp->data ? tmp->data : "";
			sn = tmp->len;
		}
		len = (uint32_t)(sn + 1);
		if (dp_buf_add(b, &len, sizeof(len)) < 0 || dp_buf_addch(b, 's') < 0 ||
		    dp_buf_add(b, s, sn) < 0)
			return -1;
		return 0;
	}
	if (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
		/* The text ends at a delimiter of valid JSON, where strtod stops too. */
		double d = strtod(v, NULL);
		if (d == 0)
			d = 0;          /* -0 */
		len = (uint32_t)(sizeof(d) + 1);
		if (dp_buf_add(b, &len, sizeof(len)) < 0 || dp_buf_addch(b, 'n') < 0 ||
		    dp_buf_add(b, &d, sizeof(d)) < 0)
			return -1;
		return 0;
	}
	dp_buf_truncate(b, at);
	return 1;
}

/* FNV-1a, its high bits folded in: the index takes the low ones. */
static uint64_t
hash_bytes(const void *p, size_t n)
{
	uint64_t h = dp_hash(p, n);

	return h ^ (h >> 29);
}

/* ---- compiling one route ------------------------------------------------------ */

static void
rt_free(struct rt *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nterms; i++) {
		for (size_t k = 0; k < r->terms[i].nsteps; k++)
			free(r->terms[i].steps[k]);
		free(r->terms[i].steps);
		free(r->terms[i].pkey);
		free(r->terms[i].canon);
	}
	free(r->terms);
	dp_expr_free(r->expr);
	free(r->topic);
	free(r->source);
	free(r->filter);
	free(r);
}

struct collect {
	struct rt *r;
	struct dp_buf tmp;
	bool oom;
};

/* dp_jqf_equalities' callback: one term. */
static void
add_term(void *ctx, const char *const *path, size_t npath, const char *lit, size_t litlen)
{
	struct collect *c = ctx;
	struct dp_buf pk = DP_BUF_INIT, cv = DP_BUF_INIT;
	struct term *t = realloc(c->r->terms, (c->r->nterms + 1) * sizeof(*t));

	if (!t) {
		c->oom = true;
		return;
	}
	c->r->terms = t;
	t = &t[c->r->nterms];
	memset(t, 0, sizeof(*t));
	t->steps = calloc(npath, sizeof(*t->steps));
	bool ok = t->steps != NULL;
	for (size_t i = 0; ok && i < npath; i++) {
		uint32_t len = (uint32_t)strlen(path[i]);
		ok = (t->steps[i] = strdup(path[i])) && dp_buf_add(&pk, &len, sizeof(len)) == 0 &&
		     dp_buf_add(&pk, path[i], len) == 0;
		t->nsteps = i + 1;
	}
	/* A literal of the subset is a string or a number: canon_append takes both. */
	ok = ok && canon_append(&cv, &c->tmp, lit, litlen) == 0;
	c->r->nterms++;
	t->pkey = dp_buf_detach(&pk, &t->pkeylen);
	t->canon = dp_buf_detach(&cv, &t->canonlen);
	if (!ok || !t->pkey || !t->canon)
		c->oom = true;
	dp_buf_free(&pk);
	dp_buf_free(&cv);
}

static int
cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	return c ? c : an < bn ? -1 : an > bn;
}

static int
cmp_terms(const void *x, const void *y)
{
	const struct term *a = x, *b = y;

	return cmp_bytes(a->pkey, a->pkeylen, b->pkey, b->pkeylen);
}

/*
 * Sort the terms by path; a path tested twice for the same value counts
 * once, for two values the filter can never hold (R_NEVER).
 */
static void
normalize_terms(struct rt *r)
{
	size_t k = 0;

	qsort(r->terms, r->nterms, sizeof(*r->terms), cmp_terms);
	for (size_t i = 0; i < r->nterms; i++) {
		struct term *t = &r->terms[i];
		if (k && cmp_terms(&r->terms[k - 1], t) == 0) {
			if (cmp_bytes(r->terms[k - 1].canon, r->terms[k - 1].canonlen, t->canon,
			              t->canonlen) != 0)
				r->kind = R_NEVER;
			for (size_t s = 0; s < t->nsteps; s++)
				free(t->steps[s]);
			free(t->steps);
			free(t->pkey);
			free(t->canon);
			continue;
		}
		r->terms[k++] = *t;
	}
	r->nterms = k;
}

/*
 * A route for spec: NULL with *oom false when its filter does not
 * compile (said), or with *oom true when memory ran out.
 */
static struct rt *
rt_new(const struct dp_route_spec *spec, bool *oom)
{
	struct rt *r = calloc(1, sizeof(*r));
	struct collect c = { r, DP_BUF_INIT, false };

	*oom = true;
	if (!r || !(r->topic = strdup(spec->topic)) || !(r->source = strdup(spec->source)) ||
	    !(r->filter = strdup(spec->filter))) {
		rt_free(r);
		return NULL;
	}
	struct dp_jqf *f = dp_jqf_compile(spec->filter);
	if (f && dp_jqf_equalities(f, add_term, &c)) {
		r->kind = R_INDEX;
		if (!c.oom)
			normalize_terms(r);
	} else {
		struct dp_buf err = DP_BUF_INIT;
		r->kind = R_EXPR;
		r->expr = dp_expr_compile(spec->filter, &err);
		if (!r->expr) {
			*oom = false;
			dp_warn("dynamic topic '%s' left out: its filter does not compile: %s",
			        spec->topic, dp_buf_str(&err));
			c.oom = true;
		}
		dp_buf_free(&err);
	}
	dp_jqf_free(f);
	dp_buf_free(&c.tmp);
	if (c.oom) {
		rt_free(r);
		return NULL;
	}
	*oom = false;
	return r;
}

/* ---- the index ------------------------------------------------------------------ */

static void
srcs_free(struct dp_route *r)
{
	for (size_t i = 0; i < r->nsrcs; i++) {
		struct src *s = &r->srcs[i];
		for (size_t g = 0; g < s->ngroups; g++) {
			struct group *gr = &s->groups[g];
			for (size_t k = 0; k < gr->cap; k++) {
				free(gr->slots[k].key);
				free(gr->slots[k].routes);
			}
			free(gr->slots);
			free(gr->paths);
		}
		free(s->groups);
		free(s->paths);
		free(s->tops);
		free(s->toplen);
		free(s->exprs);
	}
	free(r->srcs);
	r->srcs = NULL;
	r->nsrcs = 0;
	r->last = 0;
	r->indexed = 0;
}

static struct src *
src_of(struct dp_route *r, const char *name)
{
	for (size_t i = 0; i < r->nsrcs; i++)
		if (strcmp(r->srcs[i].name, name) == 0)
			return &r->srcs[i];
	struct src *v = realloc(r->srcs, (r->nsrcs + 1) * sizeof(*v));
	if (!v)
		return NULL;
	r->srcs = v;
	memset(&v[r->nsrcs], 0, sizeof(*v));
	v[r->nsrcs].name = (char *)name;
	return &v[r->nsrcs++];
}

static int
push(size_t **v, size_t *n, size_t x)
{
	size_t *nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -1;
	nv[(*n)++] = x;
	*v = nv;
	return 0;
}

/* The index of the path of t in s, added when new.  (size_t)-1: out of memory. */
static size_t
path_of(struct src *s, const struct term *t)
{
	size_t i, top;

	for (i = 0; i < s->npaths; i++)
		if (cmp_bytes(s->paths[i].pkey, s->paths[i].pkeylen, t->pkey, t->pkeylen) == 0)
			return i;
	for (top = 0; top < s->ntops && strcmp(s->tops[top], t->steps[0]) != 0; top++)
		;
	if (top == s->ntops) {
		const char **tops = realloc(s->tops, (s->ntops + 1) * sizeof(*tops));
		if (!tops)
			return (size_t)-1;
		s->tops = tops;
		size_t *lens = realloc(s->toplen, (s->ntops + 1) * sizeof(*lens));
		if (!lens)
			return (size_t)-1;
		s->toplen = lens;
		tops[s->ntops] = t->steps[0];
		lens[s->ntops++] = strlen(t->steps[0]);
	}
	struct path *p = realloc(s->paths, (s->npaths + 1) * sizeof(*p));
	if (!p)
		return (size_t)-1;
	s->paths = p;
	p[s->npaths] = (struct path){ t->pkey, t->pkeylen, (const char *const *)t->steps,
	                              t->nsteps, top };
	return s->npaths++;
}

static int
cmp_size(const void *x, const void *y)
{
	size_t a = *(const size_t *)x, b = *(const size_t *)y;

	return a < b ? -1 : a > b;
}

static struct slot *
probe(struct group *g, uint64_t h, const char *key, size_t keylen)
{
	size_t mask = g->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &g->slots[i];
		if (!s->key || (s->hash == h && s->keylen == keylen && !memcmp(s->key, key, keylen)))
			return s;
	}
}

static int
grow(struct group *g)
{
	size_t cap = g->cap ? 2 * g->cap : 16;
	struct slot *old = g->slots, *nv = calloc(cap, sizeof(*nv));

	if (!nv)
		return -1;
	g->slots = nv;
	size_t oldcap = g->cap;
	g->cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key)
			*probe(g, old[i].hash, old[i].key, old[i].keylen) = old[i];
	free(old);
	return 0;
}

/* Route ri (an R_INDEX one) into its source's index. */
static int
index_route(struct dp_route *r, struct src *s, size_t ri)
{
	const struct rt *rt = r->v[ri];
	size_t *ids = calloc(rt->nterms, sizeof(*ids));
	size_t *order = calloc(rt->nterms, sizeof(*order));
	struct group *g = NULL;
	int rc = -1;

	if (!ids || !order)
		goto out;
	for (size_t i = 0; i < rt->nterms; i++) {
		if ((ids[i] = path_of(s, &rt->terms[i])) == (size_t)-1)
			goto out;
		order[i] = ids[i];
	}
	/* The group's paths ascend; the key follows them in that order. */
	qsort(order, rt->nterms, sizeof(*order), cmp_size);
	for (size_t i = 0; i < s->ngroups && !g; i++)
		if (s->groups[i].npaths == rt->nterms &&
		    !memcmp(s->groups[i].paths, order, rt->nterms * sizeof(*order)))
			g = &s->groups[i];
	if (!g) {
		struct group *v = realloc(s->groups, (s->ngroups + 1) * sizeof(*v));
		if (!v)
			goto out;
		s->groups = v;
		g = &v[s->ngroups++];
		memset(g, 0, sizeof(*g));
		g->paths = order;
		g->npaths = rt->nterms;
		order = NULL;
	}
	dp_buf_reset(&r->key);
	for (size_t i = 0; i < g->npaths; i++)
		for (size_t t = 0; t < rt->nterms; t++)
			if (ids[t] == g->paths[i] &&
			    dp_buf_add(&r->key, rt->terms[t].canon, rt->terms[t].canonlen) < 0)
				goto out;
	if ((g->used + 1) * 4 > g->cap * 3 && grow(g) < 0)
		goto out;
	uint64_t h = hash_bytes(r->key.data, r->key.len);
	struct slot *sl = probe(g, h, r->key.data, r->key.len);
	if (!sl->key) {
		if (!(sl->key = malloc(r->key.len ? r->key.len : 1)))
			goto out;
		memcpy(sl->key, r->key.data, r->key.len);
		sl->keylen = r->key.len;
		sl->hash = h;
		g->used++;
	}
	rc = push(&sl->routes, &sl->nroutes, ri);
	r->indexed++;
out:
	free(ids);
	free(order);
	return rc;
}

static int
build_index(struct dp_route *r)
{
	srcs_free(r);
	for (size_t i = 0; i < r->n; i++) {
		struct rt *rt = r->v[i];
		if (rt->kind == R_NEVER)
			continue;
		struct src *s = src_of(r, rt->source);
		if (!s)
			return -1;
		if (rt->kind == R_EXPR ? push(&s->exprs, &s->nexprs, i) < 0
		                       : index_route(r, s, i) < 0)
			return -1;
	}
	size_t most = 0;
	for (size_t i = 0; i < r->nsrcs; i++)
		most = r->srcs[i].ntops > most ? r->srcs[i].ntops : most;
	if (most > r->tvcap) {
		struct tv *tv = realloc(r->tv, most * sizeof(*tv));
		if (!tv)
			return -1;
		r->tv = tv;
		r->tvcap = most;
	}
	return 0;
}

/* ---- the router ----------------------------------------------------------------- */

struct dp_route *
dp_route_new(void)
{
	return calloc(1, sizeof(struct dp_route));
}

static void
clear(struct dp_route *r)
{
	srcs_free(r);
	for (size_t i = 0; i < r->n; i++)
		rt_free(r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

void
dp_route_free(struct dp_route *r)
{
	if (!r)
		return;
	clear(r);
	free(r->tv);
	dp_buf_free(&r->key);
	dp_buf_free(&r->tmp);
	dp_buf_free(&r->out);
	dp_buf_free(&r->err);
	free(r);
}

size_t dp_route_count(const struct dp_route *r) { return r->n; }
size_t dp_route_indexed(const struct dp_route *r) { return r->indexed; }

int
dp_route_set(struct dp_route *r, const struct dp_route_spec *specs, size_t n)
{
	struct rt **v = calloc(n ? n : 1, sizeof(*v));
	size_t k = 0;

	if (!v)
		goto nomem;
	for (size_t i = 0; i < r->n; i++)
		r->v[i]->keep = false;
	for (size_t i = 0; i < n; i++) {
		const struct dp_route_spec *s = &specs[i];
		struct rt *old = NULL;
		bool oom;
		if (strcmp(s->topic, s->source) == 0)
			continue;       /* fed directly by its producer */
		for (size_t j = 0; j < r->n && !old; j++)
			if (!r->v[j]->keep && strcmp(r->v[j]->topic, s->topic) == 0 &&
			    strcmp(r->v[j]->source, s->source) == 0 &&
			    strcmp(r->v[j]->filter, s->filter) == 0)
				old = r->v[j];
		if (old) {
			old->keep = true;
			v[k++] = old;
			continue;
		}
		struct rt *nr = rt_new(s, &oom);
		if (nr) {
			nr->keep = true;
			v[k++] = nr;
		} else if (oom) {
			for (size_t j = 0; j < k; j++)
				if (!v[j]->keep)
					rt_free(v[j]);
			goto nomem;
		}
	}
	for (size_t i = 0; i < r->n; i++)
		if (!r->v[i]->keep)
			rt_free(r->v[i]);
	free(r->v);
	r->v = v;
	r->n = k;
	if (build_index(r) < 0) {
		clear(r);
		return -1;
	}
	return 0;
nomem:
	free(v);
	clear(r);
	return -1;
}

/* The top-level member literal key[0..klen) names name[0..len). */
static bool
key_is(struct dp_route *r, const char *key, size_t klen, const char *name, size_t len)
{
	if (!memchr(key, '\\', klen))
		return klen == len + 2 && memcmp(key + 1, name, len) == 0;
	dp_buf_reset(&r->tmp);
	return dp_json_unquote(&r->tmp, key, klen) == 0 && r->tmp.len == len &&
	       memcmp(r->tmp.data, name, len) == 0;
}

/* The members of json that s's paths start with, in one pass (the last of duplicates). */
static void
capture(struct dp_route *r, const struct src *s, const char *json, size_t n)
{
	const char *key, *v;
	size_t pos = 0, klen, vn;

	for (size_t i = 0; i < s->ntops; i++)
		r->tv[i] = (struct tv){ NULL, 0 };
	while (dp_json_next_member(json, n, &pos, &key, &klen, &v, &vn) != DP_JSON_INVALID)
		for (size_t i = 0; i < s->ntops; i++)
			if (key_is(r, key, klen, s->tops[i], s->toplen[i]))
				r->tv[i] = (struct tv){ v, vn };
}

/* The value at path p of the record, from its captured first step; 0 length: none. */
static struct tv
value_at(struct dp_route *r, const struct path *p)
{
	struct tv t = r->tv[p->top];

	if (t.v && p->nsteps > 1) {
		const char *v;
		size_t vn = 0;
		dp_json_get(t.v, t.n, p->steps + 1, p->nsteps - 1, &v, &vn);
		t.v = vn ? v : NULL;
		t.n = vn;
	}
	return t;
}

static int
match_expr(struct dp_route *r, struct rt *rt, struct dp_expr_rec *rec, uint64_t line,
           bool *yes)
{
	enum dp_json_type t;

	dp_buf_reset(&r->out);
	dp_buf_reset(&r->err);
	*yes = false;
	if (dp_expr_first(rt->expr, rec, &t, &r->out, &r->err) < 0) {
		if (r->out.lost || (!r->err.len && !r->err.lost))
			return -1;      /* memory */
		if (!rt->warned) {
			rt->warned = true;
			dp_warn("line %llu: not copied to '%s': its filter failed: %s (said once "
			        "per topic)", (unsigned long long)line, rt->topic, dp_buf_str(&r->err));
		}
		return 0;
	}
	*yes = t != DP_JSON_INVALID && t != DP_JSON_NULL && t != DP_JSON_FALSE;
	return 0;
}

int
dp_route_match(struct dp_route *r, const char *source, const char *json, size_t n,
               uint64_t line, dp_route_fn fn, void *ctx)
{
	struct src *s = NULL;
	int rc = 0;

	if (r->last < r->nsrcs && strcmp(r->srcs[r->last].name, source) == 0)
		s = &r->srcs[r->last];
	for (size_t i = 0; i < r->nsrcs && !s; i++)
		if (strcmp(r->srcs[i].name, source) == 0) {
			s = &r->srcs[i];
			r->last = i;
		}
	if (!s)
		return 0;
	if (s->ngroups)
		capture(r, s, json, n);
	for (size_t g = 0; g < s->ngroups && !rc; g++) {
		struct group *gr = &s->groups[g];
		int c = 0;
		dp_buf_reset(&r->key);
		for (size_t i = 0; i < gr->npaths && c == 0; i++) {
			struct tv t = value_at(r, &s->paths[gr->paths[i]]);
			c = t.v ? canon_append(&r->key, &r->tmp, t.v, t.n) : 1;
		}
		if (c < 0)
			return -1;
		if (c > 0)
			continue;       /* a path is missing or not a string or number */
		struct slot *sl = probe(gr, hash_bytes(r->key.data, r->key.len), r->key.data,
		                        r->key.len);
		for (size_t i = 0; sl->key && i < sl->nroutes && !rc; i++)
			rc = fn(ctx, r->v[sl->routes[i]]->topic);
	}
	if (s->nexprs && !rc) {
		struct dp_expr_rec rec = DP_EXPR_REC(json, n);
		for (size_t i = 0; i < s->nexprs && !rc; i++) {
			struct rt *rt = r->v[s->exprs[i]];
			bool yes;
			if (match_expr(r, rt, &rec, line, &yes) < 0)
				rc = -1;
			else if (yes)
				rc = fn(ctx, rt->topic);
		}
		dp_expr_rec_clear(&rec);
	}
	return rc;
}
