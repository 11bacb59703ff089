/*
 * pg/reset.h -- dp-sink-pg --reset-offsets: move a group's stored
 * offsets (pg/offsets.h) in the database, and its offsets in Kafka, in
 * one transaction.
 *
 * Where they go (dp_sinkreset_add, once per --reset-offsets):
 *   earliest, latest        every partition of each topic (the -t ones,
 *                           else each topic the group has stored) to its
 *                           low or high watermark; rows of partitions the
 *                           topic no longer has are deleted;
 *   TOPIC:PARTITION:OFFSET  that partition to OFFSET, which must lie among
 *                           its records (low..high watermark); repeatable.
 * Nothing moves while a member of the group runs (it would write the old
 * offsets back), and nothing moves unless everything does.
 *
 * Two steps, the states of a machine of their own: dp_sinkreset_connect
 * (the database and the group's rows, then Kafka and the topics), and
 * dp_sinkreset_move.  Each says why it failed on stderr and returns the
 * exit status: 69 unreachable, 75 a member runs, a row stayed locked, or
 * a signal came before anything moved, 77 no privilege, 81 no such topic
 * or partition (or nothing stored and no -t), 82 an offset outside the
 * partition's records.
 */
#ifndef DP_SINKRESET_H
#define DP_SINKRESET_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include "core/buf.h"
#include "core/props.h"
#include "pg/offsets.h"

enum dp_sinkreset_to { DP_SINKRESET_NONE, DP_SINKRESET_EARLIEST, DP_SINKRESET_LATEST,
                       DP_SINKRESET_EXPLICIT };

/* One TOPIC:PARTITION:OFFSET. */
struct dp_sinkreset_spec {
	char *topic;                    /* owned */
	int32_t partition;
	int64_t offset;
};

/* A reset: zeroed, then dp_sinkreset_add; dp_sinkreset_clear frees what it holds. */
struct dp_sinkreset {
	enum dp_sinkreset_to to;
	struct dp_sinkreset_spec *specs;
	size_t nspecs, capspecs;

	/* dp_sinkreset_connect's */
	const char *group;              /* borrowed */
	const struct dp_kafka_opts *kafka;      /* borrowed */
	PGconn *pg;
	rd_kafka_t *admin;
	struct dp_sinkoffset *stored;   /* the group's rows */
	size_t nstored;
	const char **topics;            /* the topics whose offsets move (borrowed names) */
	size_t ntopics, captopics;
	int *counts;                    /* their partition counts */
	struct dp_buf err, why;
};

/*
 * One --reset-offsets: earliest, latest or TOPIC:PARTITION:OFFSET.  0, or
 * -1 after saying why (earliest or latest given twice, or with a
 * TOPIC:PARTITION:OFFSET; a malformed one).
 */
int dp_sinkreset_add(struct dp_sinkreset *r, const char *arg);

/*
 * The combinations with -t (topics[0..ntopics), borrowed): names, not
 * patterns, and each TOPIC of a spec among them (when -t is given).  0,
 * or -1 after saying why.
 */
int dp_sinkreset_check(const struct dp_sinkreset *r, const char *const *topics,
                       size_t ntopics);

/*
 * Connect to the database (conninfo; from names it in messages: "--db",
 * "$DP_PG", or NULL for libpq's defaults), read group's rows, then
 * connect to Kafka and look up the topics that move (topics, else the
 * group's).  0, or an exit status after saying why.  All borrowed.
 */
int dp_sinkreset_connect(struct dp_sinkreset *r, const char *conninfo, const char *from,
                         const char *group, const char *const *topics, size_t ntopics,
                         const struct dp_kafka_opts *kafka);

/*
 * No member may run; then every partition's row moves, and Kafka's group
 * offsets with it, in one transaction; each move said on stderr.  0, or
 * an exit status after saying why (then no offset moved).
 */
int dp_sinkreset_move(struct dp_sinkreset *r);

void dp_sinkreset_clear(struct dp_sinkreset *r);

#endif
