/*
 * dyn/decide.h -- what the coordinator of dynamic topics decides about each
 * request (dp-coord serve).
 *
 * The decisions are pure: they look at the request, the registry as it
 * is (dyn/registry.h) and the coordinator's policy, never at the cluster, so
 * a coordinator that redoes a request after a crash decides the same
 * thing again.  A request whose outcome the registry already shows
 * (its request_id is there) is repeated, not decided anew: the outcome
 * of a request never changes.
 *
 * The registry forgets a topic once it is deleted (a tombstone), and a
 * coordinator group's offsets may be gone (a new -g, offsets expired or
 * reset), so the registry alone would let a replayed request make a
 * deleted topic again.  Every decision is therefore also kept, by
 * request_id, in a compacted decisions topic of the coordinators' own
 * (struct dp_coord_decisions below is its view): a request found there
 * is not decided again, whatever the group's offsets.  Its records go
 * once the requests topic no longer holds their request (its low
 * watermark passed it), since no replay can reach that request again.
 */
#ifndef DP_COORD_H
#define DP_COORD_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "dyn/registry.h"
#include "dyn/spec.h"

/* The default of --allow: names under dyn. (never Kafka's __ names). */
#define DP_COORD_ALLOW_DEFAULT "^dyn\\."

struct dp_coord_policy {
	regex_t allow;               /* names a request may use */
	/* Filters: at most DP_DYN_FILTER_MAX bytes, and in jq/fast.h's subset,
	 * which producers evaluate without libjq: libjq cannot be stopped, so
	 * one filter that never ends would stop every producer. */
	int32_t max_partitions;      /* per topic */
	size_t max_topics;           /* active at once */
};

/* Compile --allow.  0, or -1 with the reason in err. */
int dp_coord_policy_init(struct dp_coord_policy *p, const char *allow, int32_t max_partitions,
                         size_t max_topics, struct dp_buf *err);
void dp_coord_policy_free(struct dp_coord_policy *p);

enum dp_coord_decision {
	DP_COORD_CREATE,   /* create the topic, then write spec (active) */
	DP_COORD_REJECT,   /* write spec (rejected) */
	DP_COORD_REPEAT,   /* decided before: write spec (the registry's) again */
	DP_COORD_RETIRE,   /* write spec (retired, delete_at set) */
	DP_COORD_IGNORE,   /* nothing may be written under that name: why says so */
};

/*
 * A create request.  On CREATE, REJECT and REPEAT, spec (overwritten;
 * caller clears) is the registry record to write; on IGNORE why says why
 * nothing is written (the name belongs to another active or retiring
 * topic, which a rejection would overwrite).  now_ms stamps the record.
 * An invalid request (q->invalid) is rejected for "request".  A retired
 * topic taken back keeps its created_at: it is the same topic.
 * Returns -1 only when memory runs out.
 */
int dp_coord_decide_create(const struct dp_coord_policy *p, const struct dp_registry *view,
                           const struct dp_dyn_request *q, int64_t now_ms,
                           struct dp_dyn_spec *spec, struct dp_buf *why);

/*
 * A retire request: RETIRE for an active topic (deleted at now +
 * delete_after), REPEAT for one already retired, IGNORE for a name the
 * registry has no active topic under, REJECT (why says why; no spec:
 * the registry is not written) for an invalid request.
 */
int dp_coord_decide_retire(const struct dp_registry *view, const struct dp_dyn_request *q,
                           int64_t now_ms, struct dp_dyn_spec *spec, struct dp_buf *why);

/* A rejection of spec for r, with the reason (printf-like). */
void dp_coord_reject(struct dp_dyn_spec *spec, enum dp_dyn_reject r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Does an existing spec grant what q asks: the same source, filter,
 * partitions (when q names them) and config?
 */
bool dp_coord_same(const struct dp_dyn_spec *s, const struct dp_dyn_request *q);

/*
 * The decisions made, by request_id: the view of the decisions topic
 * (records fed in with dp_coord_decisions_apply) plus the decisions this
 * coordinator wrote (dp_coord_decisions_put, at once, before the view
 * reads them back).
 */
struct dp_coord_decisions;

struct dp_coord_decisions *dp_coord_decisions_new(void);   /* NULL: out of memory */
void dp_coord_decisions_free(struct dp_coord_decisions *d);

/*
 * One record of the decisions topic: key the request_id, value a
 * decision (dyn/spec.h), or NULL (a tombstone) to forget it.  A value that
 * is not a decision, or whose request_id is not its key, is skipped with
 * a warning naming where (0).  Returns 0, or -1 when memory runs out.
 */
int dp_coord_decisions_apply(struct dp_coord_decisions *d, const char *where,
                             const char *key, size_t keylen, const char *value, size_t len);

/* Keep a copy of dec (replacing one with its request_id).  0 or -1 (memory). */
int dp_coord_decisions_put(struct dp_coord_decisions *d, const struct dp_dyn_decision *dec);

/* The decision on request_id, or NULL (borrowed until the next change). */
const struct dp_dyn_decision *dp_coord_decided(const struct dp_coord_decisions *d,
                                               const char *request_id);

/* Forget the decision on request_id (after its tombstone is written). */
void dp_coord_decisions_forget(struct dp_coord_decisions *d, const char *request_id);

size_t dp_coord_decisions_count(const struct dp_coord_decisions *d);

/*
 * The request_ids of decisions whose request_offset is known and below
 * offset: their requests are gone from the requests topic.  *ids
 * (caller frees the array, not the strings, which are borrowed until the
 * next change) gets them; returns how many, or (size_t)-1 (memory).
 */
size_t dp_coord_decisions_before(const struct dp_coord_decisions *d, int64_t offset,
                                 const char ***ids);

#endif
