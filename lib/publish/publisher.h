/*
 * publish/publisher.h -- dp-publish's engine: NDJSON lines in, Kafka
 * records out, each one accounted for.
 *
 * The command's machine (the seed's producer) drives it one step per
 * action; everything a line goes through happens in here:
 *
 *   stdin -> publish/feed.h (the reader thread) -> publish/record.h
 *   (line -> record) -> publish/send.h (records and their copies to the
 *   producer engine, kafka/producer.h; delivery reports; --on-error)
 *   or publish/hold.h (records held for topics asked of the coordinator)
 *   -> the drain, which counts what was not delivered.
 *
 * Two threads: the reader turns lines into batches of prepared records
 * (reading, validating and jq run there), and the caller's thread hands
 * them to the producer, which alone talks to Kafka, and serves delivery
 * reports.  On two cores this overlaps the JSON work with the
 * producer's, which is what lets dp-publish keep up with kcat while it
 * still checks every line.
 *
 * With --follow-registry the caller's thread follows the registry
 * (dyn/registry.h) and offers the reader the active routes whose source
 * this producer writes (dp_record_offer_routes); each record is also
 * copied into the dynamic topics whose filter it matches, and counts as
 * delivered only when every copy is.  With --request-topics a
 * --topic-expr topic that does not exist is asked of the coordinator,
 * and its records are held (bounded by --hold-bytes) until the registry
 * answers.
 *
 * Every call returns the event that follows (enum dp_pub_event); a
 * failure also gives the exit status for the machine's reason.
 * Threads: every call is from one thread, the caller's.
 */
#ifndef DP_PUBLISHER_H
#define DP_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/out.h"
#include "core/props.h"
#include "kafka/onerror.h"
#include "publish/record.h"

/* --hold-bytes: records waiting for a requested topic, at most (then reading waits). */
#define DP_PUB_HOLD_DEFAULT (32u << 20)
#define DP_PUB_HOLD_DEFAULT_ARG "32M"

/* What the engine's steps lead to; the seed's names where it has them. */
enum dp_pub_event {
	DP_PUB_CONNECTED = 1,   /* the cluster, the topics (and the registry) are there */
	DP_PUB_UNREACHABLE,     /* no broker answered (69) */
	DP_PUB_REFUSED,         /* a topic is missing, a login refused, no such partition */
	DP_PUB_BAD_CONFIG,      /* a bad -F or -X (78, 66) */
	DP_PUB_STOP,            /* SIGINT or SIGTERM */
	DP_PUB_EOF,             /* the input was read to its end, each record handed over */
	DP_PUB_BAD_LINE,        /* a bad line under --on-error fail (65) */
	DP_PUB_FATAL,           /* an error that ends the input (the status says which) */
	DP_PUB_DRAINED,         /* every record was delivered */
	DP_PUB_LOST,            /* some were not (75) */
	DP_PUB_ABORTED,         /* all delivered, but the input ended early */
	DP_PUB_PUBLISH_DYNAMIC, /* dynamic topics take copies now */
	DP_PUB_PUBLISH_FIXED,   /* no dynamic topic takes copies any more */
	DP_PUB_CREATE_TOPIC,    /* a topic was asked of the coordinator */
	DP_PUB_CREATE_SUCCESS,  /* every request answered, each topic made */
	DP_PUB_CREATE_FAILURE,  /* every request answered, some refused or unanswered */
	DP_PUB_RESET,           /* the refused topics' records are dealt with: publish on */
	DP_PUB_NEVENTS
};

/* What a publishing step publishes until, besides the end of the input. */
enum dp_pub_until {
	/* dynamic topics take copies (PUBLISH_DYNAMIC), or a topic was asked for (CREATE_TOPIC) */
	DP_PUB_UNTIL_COPIES,
	/* no dynamic topic takes copies (PUBLISH_FIXED), or a topic was asked for */
	DP_PUB_UNTIL_NO_COPIES,
	/* every request is answered (CREATE_SUCCESS, CREATE_FAILURE); records of
	 * other topics go on meanwhile, and the end of the input waits */
	DP_PUB_UNTIL_ANSWERED,
};

/* dp-publish's options.  The strings are borrowed (argv's, the environment's). */
struct dp_publisher_opts {
	struct dp_record_opts rec;              /* line -> record; its expressions borrowed */
	struct dp_on_error_policy on_error;     /* --on-error; copied, counted in the engine */
	bool report;                            /* --report: acknowledgements on out */
	bool progress;                          /* --progress */
	bool follow;                            /* --follow-registry */
	bool request_topics;                    /* --request-topics */
	uint64_t hold_max;                      /* --hold-bytes */
	const char *registry;                   /* --registry */
	const char *requests;                   /* --requests */
};

struct dp_publisher;

/*
 * Make the engine over standard input (nothing is read and nothing
 * talks to Kafka yet).  o is copied, kafka and out are borrowed and
 * outlive it; out_failed says once that writing to out failed (errno
 * err) and returns the status, 0 for a reader that left
 * (dp_cmd_stdout_failed).  NULL: out of memory.
 */
struct dp_publisher *dp_publisher_new(const struct dp_publisher_opts *o,
                                      const struct dp_kafka_opts *kafka, struct dp_out *out,
                                      int (*out_failed)(int err));

/*
 * False when the reader thread was left behind in a jq program that
 * does not end (after a signal): then p and what it borrows (the
 * expressions) stay allocated, as the thread may still use them; the
 * process is expected to exit.  Accepts NULL.
 */
bool dp_publisher_free(struct dp_publisher *p);

/*
 * The connecting step: make the producer, prove within --timeout that
 * the cluster answers and that -t's topic (and --on-error's dead-letter
 * topic) exist, that -p names a partition -t's topic has, and with
 * --follow-registry or --request-topics read the registry to its end.
 * Returns CONNECTED, STOP, or UNREACHABLE, REFUSED or BAD_CONFIG with
 * *status set, after saying why.
 */
int dp_publisher_connect(struct dp_publisher *p, int *status);

/*
 * Publish: lines are read (the reader starts at the first call), made
 * into records and handed over until the input ends (EOF, STOP,
 * BAD_LINE, FATAL: nothing more is read) or what until names happens.
 * A later call goes on where this one stopped.
 */
int dp_publisher_run(struct dp_publisher *p, enum dp_pub_until until);

/*
 * After CREATE_FAILURE: requests not answered while records waited for
 * them end the input (FATAL, 69); the records of refused topics are
 * bad lines (BAD_LINE under --on-error fail).  Else RESET.
 */
int dp_publisher_reject(struct dp_publisher *p);

/*
 * The draining step: wait for every delivery report (--timeout while no
 * report comes), then judge what was not delivered.  DRAINED; LOST
 * (*status 75) after saying how many records were not delivered; or
 * ABORTED with *status the reason the input ended early.
 */
int dp_publisher_drain(struct dp_publisher *p, int *status);

/* The totals on stderr: --progress's last line, --on-error's, lines and deliveries. */
void dp_publisher_summary(struct dp_publisher *p);

/*
 * A signal came in a run that ended with status (core/frame.h's
 * interrupted): false when the input was read to its end and delivered
 * all the same.  Else true with the lines delivered, those read and not
 * delivered, and those not read (-1: unknown, a pipe).  Stops the
 * reader thread to count them.
 */
bool dp_publisher_interrupted(struct dp_publisher *p, int status, uint64_t *delivered,
                              uint64_t *undelivered, int64_t *unread);

#endif
