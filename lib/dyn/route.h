/*
 * dyn/route.h -- which dynamic topics a record goes to, besides its own.
 *
 * dp-publish --follow-registry copies each record it publishes to topic
 * S into every active dynamic topic whose spec (dyn/spec.h) has source S
 * and a filter that the record satisfies.  Filters are evaluated per
 * record against every route, so the common shapes must be cheap:
 *
 *   - a conjunction of equality tests of plain paths against string or
 *     number literals (`.fsym == "BTC" and .tsym == "EUR"`, as
 *     jq/fast.h's dp_jqf_equalities() recognizes it) goes into an index:
 *     routes over the same paths share one hash table keyed by the
 *     compared values, so a record costs one scan of its top-level
 *     members and one look-up per set of paths, however many routes;
 *   - every other filter runs through jq/expr.h: jq/fast.h's subset on the
 *     raw text where it answers, libjq otherwise.
 *
 * Both give jq's answer.  A record matches when the filter's first
 * result is neither false nor null; no result, or a jq error (indexing a
 * number, say), does not match.  Values compare as jq 1.6 compares them:
 * strings by their decoded bytes (so "\u0042TC" equals "BTC"), numbers
 * as doubles (so 1.0 equals 1).  tests/unit/test_lib.c checks the index
 * and the fast path against libjq on a corpus of filters and records.
 *
 * A route whose topic is its own source (a producer-initiated topic, fed
 * directly) is skipped: a copy is never routed again.
 *
 * Threads: a router is used by one thread at a time.  Its compiled
 * filters hold libjq state, so dp-publish builds and uses its router in
 * the reader thread, from plain spec lists (struct dp_route_list) that
 * the main thread, which follows the registry, hands over.
 */
#ifndef DP_ROUTE_H
#define DP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* One route as the registry gives it; strings borrowed. */
struct dp_route_spec {
	const char *topic;       /* the dynamic topic */
	const char *source;      /* the topic whose records feed it */
	const char *filter;      /* jq over a record of source */
};

/*
 * An immutable list of routes in one allocation, for handing over
 * between threads: made by one, read and freed by another.
 */
struct dp_route_list {
	uint64_t version;        /* the caller's, increasing */
	size_t n;
	struct dp_route_spec v[];
};

/* A deep copy of specs[0..n) (caller frees with free()); NULL: out of memory. */
struct dp_route_list *dp_route_list_new(const struct dp_route_spec *specs, size_t n,
                                        uint64_t version);

struct dp_route;

struct dp_route *dp_route_new(void);
void dp_route_free(struct dp_route *r);

/*
 * Make the router's routes exactly specs[0..n) (borrowed for the call).
 * Routes already there with the same topic, source and filter keep
 * their compiled filters (libjq takes tens of milliseconds to compile
 * one); the others are compiled now.  A filter that does not compile is
 * left out with a warning naming its topic (the coordinator refuses
 * those, so only a registry written by hand has one).  Returns 0, or -1
 * when memory ran out (the router is then empty).
 */
int dp_route_set(struct dp_route *r, const struct dp_route_spec *specs, size_t n);

/* Routes in use: all, or only those into the index. */
size_t dp_route_count(const struct dp_route *r);
size_t dp_route_indexed(const struct dp_route *r);

/* Called once per route the record takes, in no particular order. */
typedef int (*dp_route_fn)(void *ctx, const char *topic);

/*
 * The routes a record published to source takes: fn(ctx, topic) for
 * each whose filter matches json[0..n), valid JSON text.  line names
 * the record ("line 12") in the one warning given per route whose filter
 * fails with a jq error.  source and json must not move while fn runs.
 * Returns 0, fn's first non-zero result, or -1 when memory ran out.
 */
int dp_route_match(struct dp_route *r, const char *source, const char *json, size_t n,
                   uint64_t line, dp_route_fn fn, void *ctx);

#endif
