/*
 * coord.h -- what the coordinator of dynamic topics decides about each
 * request (dp-coord serve).
 *
 * The decisions are pure: they look at the request, the registry as it
 * is (registry.h) and the coordinator's policy, never at the cluster, so
 * a coordinator that redoes a request after a crash decides the same
 * thing again.  A request whose outcome the registry already shows
 * (its request_id is there) is repeated, not decided anew: the outcome
 * of a request never changes.
 */
#ifndef DP_COORD_H
#define DP_COORD_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dynspec.h"
#include "registry.h"

/* The default of --allow: names under dyn. (never Kafka's __ names). */
#define DP_COORD_ALLOW_DEFAULT "^dyn\\."

struct dp_coord_policy {
	regex_t allow;               /* names a request may use */
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
 * Returns -1 only when memory runs out.
 */
int dp_coord_decide_create(const struct dp_coord_policy *p, const struct dp_registry *view,
                           const struct dp_dyn_request *q, int64_t now_ms,
                           struct dp_dyn_spec *spec, struct dp_buf *why);

/*
 * A retire request: RETIRE for an active topic (deleted at now +
 * delete_after), REPEAT for one already retired, IGNORE for a name the
 * registry has no active topic under.
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

#endif
