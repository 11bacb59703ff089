/*
 * dyn/spec.h -- the records of dynamic topics: what an application asks
 * for (a request) and what the coordinator decided (a registry spec).
 *
 * Both are interfaces: other languages write requests and read the
 * registry, so the JSON shapes below are documented in dp-coord(1) and
 * never change meaning.  A request is checked completely: a member its
 * action does not have (a misspelt "partiton") makes it invalid, so that
 * it is refused by name instead of granted with a default.  A registry
 * spec may carry members this reader does not know (newer coordinators
 * may add some): they are kept out of the struct.
 *
 * A request, one per record on the requests topic (key: the topic name):
 *   {"action":"create","request_id":"...","topic":"dyn.btc-eur",
 *    "source":"prices","filter":".fsym == \"BTC\"","partitions":1,
 *    "config":{"retention.ms":"3600000"},"requested_by":"...",
 *    "requested_at":"2026-11-30T10:00:00Z"}
 *   {"action":"retire","request_id":"...","topic":"dyn.btc-eur",
 *    "delete_after_ms":600000,"requested_by":"...","requested_at":"..."}
 *
 * A registry spec, the latest per topic on the compacted registry topic
 * (key: the topic name; a tombstone means the topic is gone):
 *   {"topic":"dyn.btc-eur","state":"active","filter":"...","source":"prices",
 *    "partitions":1,"config":{...},"request_id":"...","requested_by":"...",
 *    "created_at":"...","updated_at":"...","reason":null,"rejected_for":null,
 *    "delete_at":null}
 * state is "active", "rejected" (reason says why, rejected_for what) or
 * "retired" (delete_at says when the topic goes).  created_at names the
 * topic the spec is about: a name deleted and made again gets a new one,
 * a retired topic taken back keeps its own (followers tell the two topics
 * of one name apart by it; librdkafka 2.0 gives no topic ids).
 *
 * A decision, one per request decided, on the coordinator's compacted
 * decisions topic (key: the request_id), so that a request is decided
 * once whatever the coordinators' group offsets say:
 *   {"request_id":"...","action":"create","topic":"dyn.btc-eur",
 *    "outcome":"granted","reason":null,"request_offset":17,
 *    "decided_at":"..."}
 * outcome is "granted" (active), "rejected", "retired" or "ignored"
 * (nothing written: the name belongs to another topic); request_offset is
 * the request's offset on the requests topic (its one partition).
 *
 * Records are checked with json/scan.h's scanner, the one definition of JSON
 * every dp path shares.  All strings in the structs are owned and
 * NUL-terminated; a string that holds a NUL byte is refused.
 */
#ifndef DP_DYNSPEC_H
#define DP_DYNSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/props.h"

enum dp_dyn_state { DP_DYN_NONE = 0, DP_DYN_ACTIVE, DP_DYN_REJECTED, DP_DYN_RETIRED };

/*
 * What a rejected request got wrong ("rejected_for" in the spec), so that
 * a requester can tell the cases apart without reading the reason: each
 * has its own exit status in dp-coord request (dp_dyn_reject_status).
 */
enum dp_dyn_reject {
	DP_DYN_OK = 0,
	DP_DYN_BAD_NAME,        /* "name": not a legal name, or not allowed (82) */
	DP_DYN_BAD_FILTER,      /* "filter": does not compile as jq (65) */
	DP_DYN_BAD_PARTITIONS,  /* "partitions": more than the coordinator allows (83) */
	DP_DYN_TOO_MANY,        /* "topics": as many active as allowed already (83) */
	DP_DYN_NO_SOURCE,       /* "source": the source topic does not exist (81) */
	DP_DYN_BAD_CONFIG,      /* "config": the broker refused a topic config (78) */
	DP_DYN_EXISTS,          /* "exists": a topic of that name exists otherwise (80) */
	DP_DYN_OTHER,           /* "other", or a reason this reader does not know (65) */
	DP_DYN_BAD_REQUEST,     /* "request": a member unknown or of the wrong type (65) */
};

/* The longest filter a coordinator grants, in bytes (see dp-coord(1)). */
#define DP_DYN_FILTER_MAX 4096
enum dp_dyn_action { DP_DYN_CREATE = 1, DP_DYN_RETIRE };

struct dp_dyn_spec {
	char *topic;
	enum dp_dyn_state state;
	char *filter;               /* jq over the source's records */
	char *source;               /* the fixed topic that feeds it */
	int32_t partitions;         /* -1: the broker's default */
	struct dp_kv *config;       /* topic configs, in given order */
	size_t nconfig;
	char *request_id;
	char *requested_by;
	int64_t created_at;         /* ms since the epoch; -1 unknown */
	int64_t updated_at;
	char *reason;               /* rejected: why; else NULL */
	enum dp_dyn_reject rejected_for;
	int64_t delete_at;          /* retired: when the topic is deleted; -1 none */
};

struct dp_dyn_request {
	enum dp_dyn_action action;  /* 0: not known (invalid) */
	char *request_id;
	char *topic;
	char *source;               /* create */
	char *filter;               /* create */
	int32_t partitions;         /* create; -1: the broker's default */
	struct dp_kv *config;       /* create */
	size_t nconfig;
	int64_t delete_after_ms;    /* retire; 0: at once */
	char *requested_by;
	int64_t requested_at;       /* ms; -1 unknown */
	char *invalid;              /* not a member: why the request is refused */
};

enum dp_dyn_outcome { DP_DYN_OUT_GRANTED = 1, DP_DYN_OUT_REJECTED, DP_DYN_OUT_RETIRED,
                      DP_DYN_OUT_IGNORED };

struct dp_dyn_decision {
	char *request_id;
	enum dp_dyn_action action;  /* 0: the request's action was not known */
	char *topic;
	enum dp_dyn_outcome outcome;
	char *reason;               /* rejected, ignored: why; else NULL */
	int64_t request_offset;     /* on the requests topic; -1 unknown */
	int64_t decided_at;         /* ms since the epoch; -1 unknown */
};

const char *dp_dyn_state_name(enum dp_dyn_state s);   /* "active", ...; static */
const char *dp_dyn_reject_name(enum dp_dyn_reject r);  /* "name", ...; static */
const char *dp_dyn_outcome_name(enum dp_dyn_outcome o); /* "granted", ...; static */
int dp_dyn_reject_status(enum dp_dyn_reject r);        /* an exit status (core/exit.h) */

/*
 * Parse a registry value, a request or a decision.  Returns 0, or -1
 * with the reason appended to err (for the warning a reader gives when
 * it skips the record).  The struct is safe to clear either way.
 *
 * A request that names its request_id (not empty) and topic but is
 * otherwise invalid -- no or an unknown action, a member unknown to its
 * action, a member of the wrong type or out of range -- can still be
 * answered: the parse returns -1 and keeps request_id, topic, action
 * (when known) and the reason in invalid.  Without those two nobody can
 * be answered, and both are NULL.
 */
int dp_dyn_spec_parse(const char *json, size_t n, struct dp_dyn_spec *s, struct dp_buf *err);
int dp_dyn_request_parse(const char *json, size_t n, struct dp_dyn_request *r,
                         struct dp_buf *err);
int dp_dyn_decision_parse(const char *json, size_t n, struct dp_dyn_decision *d,
                          struct dp_buf *err);
void dp_dyn_spec_clear(struct dp_dyn_spec *s);
void dp_dyn_request_clear(struct dp_dyn_request *r);
void dp_dyn_decision_clear(struct dp_dyn_decision *d);

/* Append the compact JSON of a spec or a request (no newline).  0 or -1 (memory). */
int dp_dyn_spec_json(struct dp_buf *out, const struct dp_dyn_spec *s) DP_MUST_CHECK;
int dp_dyn_request_json(struct dp_buf *out, const struct dp_dyn_request *r) DP_MUST_CHECK;
int dp_dyn_decision_json(struct dp_buf *out, const struct dp_dyn_decision *d) DP_MUST_CHECK;

/* Deep copy (dst is overwritten).  0 or -1 (memory). */
int dp_dyn_spec_copy(struct dp_dyn_spec *dst, const struct dp_dyn_spec *src) DP_MUST_CHECK;

/* A fresh request id: 32 hex digits from getrandom(2) (into buf). */
int dp_dyn_request_id(char buf[33]);

struct dp_expr;

/*
 * Whether s satisfies e, a jq condition over its registry JSON (dp-coord
 * run --match, dp-tail --follow-match): e's first result is neither
 * false nor null.  No result, or a jq error (said in a warning naming
 * the topic), is no.
 */
bool dp_dyn_spec_matches(const struct dp_dyn_spec *s, struct dp_expr *e, const char *what);

/* "user@host:pid" for requested_by (into buf). */
void dp_dyn_requester(char *buf, size_t size);

#endif
