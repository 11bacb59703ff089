/*
 * dyn/registry.h -- a live, in-memory view of the registry of dynamic topics.
 *
 * The registry is a compacted topic of one partition (dp.registry by
 * default): the key is a dynamic topic's name, the value its spec
 * (dyn/spec.h), a tombstone means the topic is gone.  Every follower --
 * dp-coord itself, dp-publish --follow-registry, dp-tail --follow -- reads
 * it from the beginning to the end it had when the reader started
 * (dp_registry_load: the current view), then keeps following it
 * (dp_registry_poll), and learns each change through one callback.
 *
 * A record that is not a valid spec (not JSON, no topic, a key that is
 * not its topic) is skipped with a warning naming its offset; the view
 * keeps what it had for that key.  Nothing else breaks.
 *
 * Reading uses kafka/consumer.h without a group: nothing is committed, every
 * reader sees the whole registry.  Latency: fetch.wait.max.ms is 100 ms,
 * so a change reaches a polling follower within about that.
 *
 * Threads: one thread owns the view (polls it and reads it); the
 * callback runs on it, inside dp_registry_load and dp_registry_poll.
 */
#ifndef DP_REGISTRY_H
#define DP_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/props.h"
#include "dyn/spec.h"

#define DP_REGISTRY_DEFAULT "dp.registry"
#define DP_REQUESTS_DEFAULT "dp.requests"

struct dp_registry;

/*
 * A change of one key.  old is what the view held (NULL: nothing), now
 * what it holds (NULL: a tombstone removed it).  Both are borrowed for
 * the call.  offset is the registry record's.
 */
typedef void (*dp_registry_fn)(void *arg, const char *topic, const struct dp_dyn_spec *old,
                               const struct dp_dyn_spec *now, int64_t offset);

/*
 * A record as it is, for a view of another compacted topic (dp-coord's
 * decisions): key and value borrowed for the call, value NULL for a
 * tombstone; where names the record ("topic offset 12") for warnings.
 * Returns 0, or -1 when memory ran out (the record is read again).
 */
typedef int (*dp_registry_record_fn)(void *arg, const char *where, const char *key,
                                     size_t keylen, const char *value, size_t len);

struct dp_registry_conf {
	const struct dp_kafka_opts *kafka;   /* -b, -X, --timeout; borrowed, outlives the view */
	const char *topic;                /* the registry topic (DP_REGISTRY_DEFAULT) */
	dp_registry_fn change;            /* may be NULL */
	/*
	 * Set, the records go to it instead of becoming specs: the view then
	 * holds no specs, and load, poll and sync read another compacted topic
	 * the same way (change is not called).
	 */
	dp_registry_record_fn record;
	void *arg;
	/*
	 * A registry that does not exist yet (no dp-coord serve has run) is
	 * an empty one: load succeeds, and polls look for the topic again
	 * every second, then follow it from its beginning.  For followers
	 * that may start before the first coordinator.
	 */
	bool missing_ok;
	/* Count the registry's partitions as the command's input (kafka/consumer.h's
	 * opts.metrics): for dp-coord run, whose input the registry is. */
	bool metrics;
};

/*
 * The view, empty; nothing contacted yet.  Returns NULL with a message in
 * err and an exit status in *status (see dp_consumer_new).
 */
struct dp_registry *dp_registry_new(const struct dp_registry_conf *conf, struct dp_buf *err,
                                    int *status);
void dp_registry_free(struct dp_registry *r);

/*
 * Connect (within --timeout) and read the registry up to its end as it is
 * now, calling the change callback for every key.  Returns 0 once the view
 * is current, DP_KAFKA_STOPPED on a signal, or an exit status with a
 * message in err: DP_EX_UNAVAILABLE, DP_EX_NOTFOUND when the registry
 * topic does not exist (no dp-coord serve ever ran; 0 with missing_ok).
 */
int dp_registry_load(struct dp_registry *r, struct dp_buf *err);

/*
 * Apply what arrived since, waiting up to timeout_ms for it.  Returns 0,
 * DP_KAFKA_STOPPED on a signal, or an exit status with a message in err.
 */
int dp_registry_poll(struct dp_registry *r, int timeout_ms, struct dp_buf *err);

/*
 * Poll until the view holds every registry record up to offset (-1: up
 * to the registry's end as it is now), within --timeout.  A coordinator
 * that takes over syncs before it decides anything, and one that wrote a
 * record syncs to the record's offset before the next decision.  Returns
 * 0, DP_KAFKA_STOPPED, or an exit status with a message in err.
 */
int dp_registry_sync(struct dp_registry *r, int64_t offset, struct dp_buf *err);

/* The spec of topic, or NULL (borrowed until the next load or poll). */
const struct dp_dyn_spec *dp_registry_get(const struct dp_registry *r, const char *topic);

/* Every spec, in no particular order (borrowed until the next poll). */
const struct dp_dyn_spec *const *dp_registry_specs(const struct dp_registry *r, size_t *n);

/* Topics in a state. */
size_t dp_registry_count(const struct dp_registry *r, enum dp_dyn_state state);

/* The registry topic does not exist (yet): only with missing_ok. */
bool dp_registry_absent(const struct dp_registry *r);

#endif
