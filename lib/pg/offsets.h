/*
 * pg/offsets.h -- dp-sink-pg's offsets table seen from outside a sink:
 * read a group's stored offsets (dp-topic offsets), move them
 * (dp-sink-pg --reset-offsets).
 *
 * The table, made by the sink engine (pg/sink.h) in the connection's
 * default schema:
 *
 *   dp_sink_offsets("group" text, topic text, "partition" integer,
 *                   next_offset bigint, updated_at timestamptz)
 *
 * next_offset is the offset of the first record of (topic, partition)
 * not yet in the table; a --stdin --source-id source is group '' and
 * partition -1, and is never shown or moved here.
 */
#ifndef DP_SINKOFFSETS_H
#define DP_SINKOFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "core/buf.h"

#define DP_SINKOFFSETS_TABLE "dp_sink_offsets"
#define DP_SINKOFFSETS_DDL                                                              \
	"CREATE TABLE IF NOT EXISTS " DP_SINKOFFSETS_TABLE " ("                         \
	"\"group\" text NOT NULL, topic text NOT NULL, \"partition\" integer NOT NULL, " \
	"next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "   \
	"PRIMARY KEY (\"group\", topic, \"partition\"))"

/* One stored offset. */
struct dp_sinkoffset {
	char *topic;            /* owned */
	int32_t partition;
	int64_t next_offset;
};

/*
 * The stored offsets of group on c, sorted by topic and partition, into
 * *out (caller frees with dp_sinkoffsets_free) and *n: none when the
 * table does not exist.  Returns 0, or an exit status with a message in
 * err: 69 the database is away, 77 no privilege.
 */
int dp_sinkoffsets_read(PGconn *c, const char *group, struct dp_sinkoffset **out, size_t *n,
                        struct dp_buf *err);
void dp_sinkoffsets_free(struct dp_sinkoffset *v, size_t n);

/*
 * dp_sinkoffsets_read on a connection of its own to conninfo (app is the
 * application_name; connecting takes at most timeout_ms), closed again.
 * Returns what dp_sinkoffsets_read does, or when no connection was made:
 * 78 for options libpq refuses, else 69, with the message in err.
 */
int dp_sinkoffsets_fetch(const char *conninfo, const char *app, int64_t timeout_ms,
                         const char *group, struct dp_sinkoffset **out, size_t *n,
                         struct dp_buf *err);

/* One move of dp_sinkoffsets_move. */
struct dp_sinkoffsets_move {
	const char *topic;      /* borrowed */
	int32_t partition;
	int64_t to;             /* the new next_offset; -1: delete the row */
	int64_t from;           /* out: what it was, -1 when there was no row */
};

/*
 * Move group's stored offsets on c, all in one transaction: each row of
 * v[0..n) gets next_offset = to (made where missing, the table too) and
 * its old value in from.  The rows are locked first (a running sink's
 * batch holds them until it commits; waiting at most timeout_ms), and
 * confirm(arg, err) runs before the COMMIT, with the new offsets in place
 * (the caller commits them to Kafka's group there): when it returns an
 * exit status the transaction rolls back and that status is returned.
 * Returns 0, or an exit status with a message in err: 69 the database is
 * away, 75 a row stayed locked, 77 no privilege.
 */
int dp_sinkoffsets_move(PGconn *c, const char *group, struct dp_sinkoffsets_move *v, size_t n,
                        int64_t timeout_ms, int (*confirm)(void *arg, struct dp_buf *err),
                        void *arg, struct dp_buf *err);

#endif
