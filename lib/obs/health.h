/*
 * obs/health.h -- whether this process does its job: live (/healthz: it
 * is not failing) and ready (/readyz: connected to what it needs, and
 * data still arrives).
 *
 * Ready is more than "the process runs": a pipeline whose input stopped
 * is not ready, so that an alert fires when data stops, not only when a
 * process dies (influxdata/telegraf#16645 is the complaint).  A *feed* is
 * one stream data arrives on -- a Kafka partition, a streamer's
 * subscription, a command's standard input -- and it is stale when no
 * record came on it for stale_after; a *link* is something the command
 * must be connected to (kafka, database, api).  Ready means every link is
 * up and no feed is stale.
 *
 * A feed is watched from its first record on: a partition no producer
 * writes to (keys that hash elsewhere) is not a pipeline that stopped.
 * So that a pipeline whose data never starts is not green for ever, no
 * record on any feed for stale_after after the first feed came is stale
 * too ("no record since the start").  A feed made again (a partition
 * assigned again) keeps what it saw and is fresh from then on.
 *
 * Threads: any function may be called from any thread.  dp_health_data
 * is one relaxed atomic store, for the hot path (call it per batch).
 */
#ifndef DP_HEALTH_H
#define DP_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dp_health_feed;

/*
 * Start keeping health; stale_after_ms 0 means feeds are never stale.
 * Until this is called every function does nothing (feeds are NULL, and
 * every call accepts NULL).  0, or -1 when memory runs out.
 */
int dp_health_init(int64_t stale_after_ms);
void dp_health_free(void);

/* The run is failing (a final state that is an error): not live, not ready. */
void dp_health_fail(const char *why);

/* what ("kafka", "database", "api"; a literal) is reachable or not. */
void dp_health_link(const char *what, bool up);

/*
 * A feed named name (copied: "prices/3", "5~CCCAGG~BTC~USD", "stdin"),
 * fresh from now on.  The same name again returns the same feed (a
 * partition assigned again).  NULL when off or out of memory.
 */
struct dp_health_feed *dp_health_feed(const char *name);

/* The feed went away (a partition revoked): it no longer counts. */
void dp_health_feed_drop(struct dp_health_feed *f);

/* A record came on f now (or, for a partition caught up with a producer
 * that is still writing, data is known to be flowing). */
void dp_health_data(struct dp_health_feed *f);

/* Live: 1, or 0 with why (the dp_health_fail reason) in why[0..n). */
bool dp_health_live(char *why, size_t n);

/*
 * Ready: 1, or 0 with a one-line reason in why[0..n): "not connected to
 * kafka yet", "kafka is down", "no record on prices/3 for 2m10s
 * (--stale-after 1m)", "no record since the start, 1m5s ago
 * (--stale-after 1m)".
 */
bool dp_health_ready(char *why, size_t n);

/* Milliseconds since the newest record on any feed, or -1 when none came. */
int64_t dp_health_data_age_ms(void);

#endif
