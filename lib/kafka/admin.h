/*
 * kafka/admin.h -- topic administration through librdkafka's Admin API.
 *
 * dp-topic is a thin front end to this module, and dp-coord creates its
 * dynamic topics through the very same functions, so both agree on what
 * a legal name is, on which Kafka error means which exit status, and on
 * how a config change is applied.
 *
 * Every function takes a client handle of any type (a producer is the
 * cheapest) and a timeout that bounds the whole call.  Operations on
 * several topics never stop at the first failure: each topic gets its own
 * struct dp_admin_result.  The return value says whether the cluster
 * answered at all: 0, or an exit status (core/exit.h) when the request as a
 * whole failed -- then every result carries that failure too, so a caller
 * may simply walk the results.
 *
 * Every call is one Admin API request sent the same way: the request
 * timeout is what is left of timeout_ms, the wait is in slices that a
 * signal ends (DP_EX_TEMPFAIL, "interrupted before the cluster
 * answered"), and no answer by then is DP_EX_UNAVAILABLE.  A look-up
 * (describe configs, committed offsets, describe a group) is asked again
 * while the answer is an error Kafka calls retriable, until timeout_ms
 * ("unknown topic" only within DP_KAFKA_PROPAGATION_MS); a change
 * (create, delete, partitions, alter, commit) is sent once, since asking
 * again after a lost answer could make it twice.
 *
 * Nothing here exits or prints; messages go into the results or into an
 * err buffer the caller passes.  Metadata is always fetched for all
 * topics, never for named ones, so that looking at a topic can never
 * auto-create it on a broker with auto.create.topics.enable=true.
 */
#ifndef DP_ADMIN_H
#define DP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/buf.h"
#include "core/props.h"

/* Kafka's limit (kafka.common.internals.Topic.MAX_NAME_LENGTH). */
#define DP_ADMIN_NAME_MAX 249

/* What to create.  -1 in partitions or replication_factor: broker default. */
struct dp_admin_spec {
	char *name;                   /* owned */
	int32_t partitions;
	int32_t replication_factor;
	struct dp_kv *config;         /* owned; topic configs in given order */
	size_t nconfig;
};

/* The outcome for one topic. */
struct dp_admin_result {
	char *name;                   /* owned; NULL only when memory ran out */
	int status;                   /* 0, or an exit status from core/exit.h */
	rd_kafka_resp_err_t err;      /* the Kafka error; 0 for local failures */
	char *error;                  /* owned message; NULL on success */
};

struct dp_admin_partition {
	int32_t id;
	int32_t leader;               /* -1 when there is none */
	int32_t *replicas;            /* owned */
	int nreplicas;
	int32_t *isr;                 /* owned */
	int nisr;
	rd_kafka_resp_err_t err;
};

struct dp_admin_topic {
	char *name;                   /* owned */
	struct dp_admin_partition *partitions;  /* owned, sorted by id */
	int npartitions;
	int replication_factor;       /* largest replica count of a partition */
	bool internal;
	rd_kafka_resp_err_t err;
};

struct dp_admin_topics {
	struct dp_admin_topic *v;     /* owned, sorted by name */
	size_t n;
	int nbrokers;
};

struct dp_admin_config {
	char *name;                   /* owned */
	char *value;                  /* owned; NULL when sensitive or unset */
	rd_kafka_ConfigSource_t source;
	bool is_default;
	bool read_only;
	bool sensitive;
};

/* A topic's configuration as DescribeConfigs reports it. */
struct dp_admin_configs {
	struct dp_admin_result res;   /* name, and status when it failed */
	struct dp_admin_config *v;    /* owned */
	size_t n;
};

/* A config change: --set and --delete.  Everything borrowed. */
struct dp_admin_change {
	const struct dp_kv *set;
	size_t nset;
	const char *const *del;
	size_t ndel;
};

enum {
	DP_ADMIN_METHOD_FULL = 0,         /* describe, merge, AlterConfigs */
	DP_ADMIN_METHOD_INCREMENTAL = 1,  /* IncrementalAlterConfigs */
};

/* ---- names and errors ----------------------------------------------- */

/*
 * Check a topic name as Kafka does: 1 to 249 characters from
 * [a-zA-Z0-9._-], not "." or "..".  Returns 0, or DP_EX_INVALID with the
 * reason appended to why (may be NULL).
 */
int dp_admin_check_name(const char *name, struct dp_buf *why);

/* 1 for the topics Kafka itself keeps (__consumer_offsets, ...). */
int dp_admin_is_internal(const char *name);

/*
 * The exit status for an Admin API error: dp_kafka_exit_status(), plus
 * "unknown topic" as DP_EX_NOTFOUND and the admin-only errors.
 */
int dp_admin_status(rd_kafka_resp_err_t err);

/* Release what a result owns and zero it (accepts NULL). */
void dp_admin_result_clear(struct dp_admin_result *r);
void dp_admin_results_free(struct dp_admin_result *r, size_t n);

/* Record a failure in r (name kept); fmt is the message. */
void dp_admin_result_fail(struct dp_admin_result *r, int status, rd_kafka_resp_err_t err,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- topic specs ---------------------------------------------------- */

/*
 * Parse one NDJSON spec line:
 *   {"name":"t","partitions":3,"replication_factor":1,"config":{"k":"v"}}
 * Only "name" is required.  Unknown members are errors (a typo must not
 * silently create a default topic).  Config values may be strings,
 * integers or booleans; they are kept as text.  Returns 0, or -1 with the
 * reason appended to err; spec is safe to clear either way.
 */
int dp_admin_spec_parse(const char *json, size_t len, struct dp_admin_spec *spec,
                        struct dp_buf *err);
void dp_admin_spec_clear(struct dp_admin_spec *spec);

/* ---- operations ----------------------------------------------------- */

/*
 * All topics with their partitions, and the broker count.  out is
 * overwritten; release it with dp_admin_topics_clear.  Returns 0 or an
 * exit status with a message in err.
 */
int dp_admin_list(rd_kafka_t *rk, int timeout_ms, struct dp_admin_topics *out,
                  struct dp_buf *err);
/*
 * The same, for a caller about to use the n topics named: while one of
 * them is missing, or has a partition without a leader, it asks again
 * for up to DP_KAFKA_PROPAGATION_MS (kafka/client.h), since a topic created a
 * moment ago may not be in this broker's metadata yet.  After that the
 * metadata is returned as it is.  DP_EX_TEMPFAIL when a signal came.
 */
int dp_admin_list_for(rd_kafka_t *rk, const char *const *names, size_t n, int timeout_ms,
                      struct dp_admin_topics *out, struct dp_buf *err);
void dp_admin_topics_clear(struct dp_admin_topics *t);
/* The topic called name, or NULL (borrowed from t). */
const struct dp_admin_topic *dp_admin_topics_find(const struct dp_admin_topics *t,
                                                  const char *name);

/*
 * CreateTopics.  res[n] is filled in spec order (caller clears).  With
 * validate_only the broker checks everything and creates nothing.
 */
int dp_admin_create(rd_kafka_t *rk, const struct dp_admin_spec *specs, size_t n,
                    bool validate_only, int timeout_ms, struct dp_admin_result *res);

/*
 * Create spec's topic, or accept the one already there when it matches
 * the spec: the same partition count (when the spec gives one) and, for
 * each config the spec gives, the same value.  Returns once the topic
 * shows in the cluster's metadata, so it can be used at once.  Returns 0
 * with *created telling which happened, or an exit status with the
 * message in res: DP_EX_EXISTS when a topic of that name exists with
 * another spec (the message names the difference), the statuses of
 * dp_admin_create otherwise.  res is filled in either way (caller clears).
 * This is what makes dp-coord's create idempotent: asking again for what
 * exists is success, asking for something else under its name is not.
 */
int dp_admin_ensure(rd_kafka_t *rk, const struct dp_admin_spec *spec, int timeout_ms,
                    struct dp_admin_result *res, bool *created);

/* DeleteTopics.  res[n] in name order. */
int dp_admin_delete(rd_kafka_t *rk, const char *const *names, size_t n, int timeout_ms,
                    struct dp_admin_result *res);

/* CreatePartitions: grow each topic to total partitions. */
int dp_admin_add_partitions(rd_kafka_t *rk, const char *const *names, size_t n,
                            int32_t total, bool validate_only, int timeout_ms,
                            struct dp_admin_result *res);

/*
 * DescribeConfigs for n topics.  out[n] is filled in name order, every
 * entry the broker knows, defaults included (caller clears each with
 * dp_admin_configs_clear).  Errors Kafka calls retriable are asked again
 * until timeout_ms; "unknown topic" only within DP_KAFKA_PROPAGATION_MS.
 */
int dp_admin_describe_configs(rd_kafka_t *rk, const char *const *names, size_t n,
                              int timeout_ms, struct dp_admin_configs *out);
void dp_admin_configs_clear(struct dp_admin_configs *c);
/* The entry called name, or NULL (borrowed from c). */
const struct dp_admin_config *dp_admin_configs_find(const struct dp_admin_configs *c,
                                                    const char *name);

/*
 * Apply a config change to n topics.  Keys the broker does not know are
 * refused before anything is sent (DP_EX_CONFIG).
 *
 * Built against librdkafka >= 2.2 this sends IncrementalAlterConfigs,
 * and falls back when the broker does not support it.  The fallback (the
 * only way with older librdkafka) reads the topic's current dynamic
 * configs, applies the change to them and sends the whole set with
 * AlterConfigs, which replaces it.  That is not atomic: a change another
 * client makes between the two requests is lost.  *method (may be NULL)
 * says which way was used.
 */
int dp_admin_alter(rd_kafka_t *rk, const char *const *names, size_t n,
                   const struct dp_admin_change *change, bool validate_only,
                   int timeout_ms, struct dp_admin_result *res, int *method);

/*
 * Low and high watermark of one partition, asked of its leader.
 * Returns 0 or an exit status with a message in err.
 */
int dp_admin_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition,
                        int timeout_ms, int64_t *low, int64_t *high, struct dp_buf *err);

/*
 * The offsets group has committed on partitions 0..n-1 of topic, into
 * committed[n]: -1 where nothing is committed.  Uses the Admin API, so
 * the group is never joined.  Errors Kafka calls retriable (the group's
 * coordinator is loading or moving) are asked again until timeout_ms.
 * Returns 0 or an exit status with a message in err.
 */
int dp_admin_committed(rd_kafka_t *rk, const char *group, const char *topic, int n,
                       int timeout_ms, int64_t *committed, struct dp_buf *err);

/* ---- groups --------------------------------------------------------- */

/* One member of a consumer group, as DescribeConsumerGroups shows it. */
struct dp_admin_member {
	char *member_id;              /* owned */
	char *instance_id;            /* owned; NULL: not a static member */
	char *client_id;              /* owned: the command's name for dp's */
	char *host;                   /* owned: "/10.0.0.7" as the broker saw it */
	int npartitions;              /* assigned to it */
};

struct dp_admin_group {
	rd_kafka_consumer_group_state_t state;  /* rd_kafka_consumer_group_state_name() */
	struct dp_admin_member *members;        /* owned */
	size_t nmembers;
};

/*
 * The state and members of group now (a group that does not exist is
 * Dead with no members).  Errors Kafka calls retriable are asked again
 * until timeout_ms.  Returns 0, or an exit status with a message in err;
 * out is cleared with dp_admin_group_clear in either case.
 */
int dp_admin_describe_group(rd_kafka_t *rk, const char *group, int timeout_ms,
                            struct dp_admin_group *out, struct dp_buf *err);
void dp_admin_group_clear(struct dp_admin_group *g);

/*
 * Commit offsets (each element's offset: the next record to read) for
 * group without joining it (AlterConsumerGroupOffsets).  Kafka refuses
 * while the group has members (UNKNOWN_MEMBER_ID): the members' own
 * commits would overwrite these anyway.  Returns 0, or an exit status
 * with a message in err naming the first partition that failed.
 */
int dp_admin_commit_offsets(rd_kafka_t *rk, const char *group,
                            const rd_kafka_topic_partition_list_t *offsets, int timeout_ms,
                            struct dp_buf *err);

#endif
