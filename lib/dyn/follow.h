/*
 * dyn/follow.h -- following dynamic topics: the reader's side of dp-coord
 * (dp-tail --follow NAME, --follow-match JQ).
 *
 * A follower keeps a view of the registry (dyn/registry.h) and a list of
 * the topics it follows: the names it was given, and for a match every
 * active topic whose spec matches, found as they come.  It adds a topic
 * to a consumer (kafka/consumer.h, simple mode) once the coordinator made
 * it active (dp_follow_subscribe), and reads a retired or deleted one up
 * to its end as it is then, then drops it (dp_follow_finish).  What
 * follows after a topic is read no more:
 *   named     finished for good, unless it was deleted before it was read
 *             to its end and another topic of that name is active: that
 *             one is read from its beginning;
 *   matched   read again whenever the registry shows an active topic of
 *             that name that matches: the same one taken back (read on
 *             where it stopped, unless conf.to_end) or a new one (read
 *             from its beginning).
 *
 * A topic is known by its name and the created_at of its spec (librdkafka
 * 2.0 gives no topic ids): a name deleted and made again is a new topic.
 * When the registry shows another topic under the name of one being read,
 * the one read is dropped at once (its fetchers would read on into the new
 * one as if it were the same), with what it still held said.  A followed
 * topic deleted before it was read to its end is never dropped silently:
 * each partition not read to its end is named in a warning, from the
 * offset on that was not read, and conf.unread is called (dp-tail exits 1
 * for it, after the other topics are read).
 *
 * The follower says on stderr what happens to each topic (reading, read to
 * its end, deleted, made again), at -v and above through dp_info.
 *
 * Threads: a follower belongs to the consumer's polling thread; its
 * functions are called from it, and from the consumer's hooks there.
 */
#ifndef DP_FOLLOW_H
#define DP_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/props.h"

struct dp_consumer;
struct dp_consumer_part;
struct dp_expr;
struct dp_follow;

struct dp_follow_conf {
	const struct dp_kafka_opts *kafka;      /* -b, -X, --timeout; borrowed, outlives it */
	const char *registry;                   /* the registry topic; borrowed */
	const char *const *names;               /* topics to follow by name; borrowed */
	size_t nnames;
	struct dp_expr *match;                  /* follow every active topic whose spec
	                                           matches (dp_dyn_spec_matches); borrowed,
	                                           NULL: only names */
	bool to_end;                            /* reading stops at each topic's end
	                                           (--until, -e): a retired topic taken
	                                           back is not read on */
	void (*unread)(void *arg);              /* a topic was deleted before it was read to
	                                           its end (warned); may be NULL */
	void *arg;
};

/* What the followed topics need next. */
enum dp_follow_next {
	DP_FOLLOW_READING,      /* a followed topic is read: poll the consumer */
	DP_FOLLOW_ADD,          /* an active followed topic is not read yet: dp_follow_subscribe */
	DP_FOLLOW_WAIT,         /* none is read: wait for the registry (dp_follow_poll) */
	DP_FOLLOW_DONE,         /* every named topic is finished, and there is no match */
};

/* A follower of conf (copied; the names are copied too).  NULL when
 * memory runs out.  Nothing is contacted yet.  Caller frees. */
struct dp_follow *dp_follow_new(const struct dp_follow_conf *conf);

/* Release it and its view of the registry; accepts NULL. */
void dp_follow_free(struct dp_follow *f);

/*
 * Read the registry up to its end (a registry that does not exist yet is
 * an empty one, followed from when it is made) and find the topics to
 * follow.  c (borrowed, outlives f) is the consumer the topics are added
 * to, in simple mode.  Returns 0, DP_KAFKA_STOPPED, or an exit status
 * with a message in err (dp_registry_new's and dp_registry_load's;
 * DP_EX_SOFTWARE when memory runs out).
 */
int dp_follow_start(struct dp_follow *f, struct dp_consumer *c, struct dp_buf *err);

/*
 * Apply what the registry brought since, waiting up to ms for it; with ms
 * 0, only when 100 ms went by since the last look (it is called after
 * every poll of the consumer).  A topic read that is retired or deleted is
 * read up to its end as it is now; one with another topic under its name
 * now is dropped.  Returns 0, DP_KAFKA_STOPPED (SIGINT or SIGTERM came,
 * also while the registry answered), or an exit status with a message in
 * err ("registry: ...", or "out of memory").
 */
int dp_follow_poll(struct dp_follow *f, int ms, struct dp_buf *err);

/*
 * Add to the consumer every followed topic that is active and not read
 * yet, to be read from where the consumer's --from says (a topic taken
 * back: where it stopped).  Returns 0 (dp_follow_next then says whether
 * one is read), DP_KAFKA_STOPPED, or an exit status with a message in err
 * ("cannot read dynamic topic 'x': ...": the registry shows a topic the
 * cluster does not have yet; try again later).
 */
int dp_follow_subscribe(struct dp_follow *f, struct dp_buf *err);

/* Topics read to their end (retired, or to_end) leave the consumer. */
void dp_follow_finish(struct dp_follow *f);

/* What the followed topics need next (see enum dp_follow_next). */
enum dp_follow_next dp_follow_next(const struct dp_follow *f);

/*
 * For the consumer's assigned hook: a topic taken back goes on where it
 * stopped (parts[i]->start), not from its beginning.
 */
void dp_follow_assigned(struct dp_follow *f, struct dp_consumer_part **parts, size_t n);

/*
 * For the consumer's gone hook: topic was deleted.  Returns 0 (it is read
 * no more; the consumer drops it), DP_CONSUMER_KEEP when the report was
 * about an earlier topic of that name (the registry shows the one read
 * and the cluster has it: librdkafka names topics only by name), or
 * DP_EX_UNAVAILABLE for a topic not followed.
 */
int dp_follow_gone(struct dp_follow *f, const char *topic);

#endif
