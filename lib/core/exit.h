/*
 * core/exit.h -- the one exit-status table shared by every dp command.
 *
 * The numbers follow sysexits(3) where a meaning exists there.  They are
 * an interface: scripts test them, every man page lists them under EXIT
 * STATUS.  Never renumber; only append.
 *
 * One status per cause, whatever the command (every man page's EXIT
 * STATUS has this table):
 *
 *   cause                                              status
 *   a topic, partition or table that does not exist    81 NOTFOUND
 *   no broker, database, API or coordinator answers    69 UNAVAILABLE
 *   credentials or permissions refused (SASL, ACLs,
 *     the database's login or a statement, API key)    77 NOPERM
 *   a bad property, connection option or table         78 CONFIG
 *   -F or a key file unreadable; stdin closed          66 NOINPUT
 *   stdin or stdout failed; stdout closed;
 *     the --metrics-file cannot be written             74 IOERR
 *   the --metrics address is taken                     69 UNAVAILABLE
 *   a --metrics address that cannot be used            78 CONFIG
 *   records read, not delivered or committed           75 TEMPFAIL
 *   SIGINT, SIGTERM before the end of the input        130, 143
 *     (a bounded input, core/frame.h: 128 + the signal)
 *
 * librdkafka's errors become causes in dp_kafka_exit_status() (kafka/client.h),
 * libpq's in pg/conn.h's kinds; no command maps one status to another.
 */
#ifndef DP_EXIT_H
#define DP_EXIT_H

enum dp_exit {
	DP_EX_OK          = 0,   /* everything done */
	DP_EX_PARTIAL     = 1,   /* several items: at least one failed, see stderr */
	DP_EX_USAGE       = 64,  /* bad command line */
	DP_EX_DATAERR     = 65,  /* bad input data (a line, a response body) */
	DP_EX_NOINPUT     = 66,  /* an input file could not be opened */
	DP_EX_UNAVAILABLE = 69,  /* broker, database or API not reachable */
	DP_EX_SOFTWARE    = 70,  /* internal error (a bug) */
	DP_EX_IOERR       = 74,  /* reading or writing failed */
	DP_EX_TEMPFAIL    = 75,  /* something was not delivered or committed */
	DP_EX_NOPERM      = 77,  /* authentication or authorization refused */
	DP_EX_CONFIG      = 78,  /* bad configuration (-X, -F, unknown config key) */
	DP_EX_EXISTS      = 80,  /* the object already exists */
	DP_EX_NOTFOUND    = 81,  /* the object does not exist */
	DP_EX_INVALID     = 82,  /* invalid name or spec (topic name, partitions) */
	DP_EX_CAPACITY    = 83,  /* the cluster cannot satisfy it (replication factor) */
	/* + the signal's number: SIGINT (130) or SIGTERM (143) stopped a run
	 * before the end of its input (core/frame.h), as a shell reports it */
	DP_EX_SIGNAL      = 128,
};

/* Short lowercase description of an exit status; never NULL. */
const char *dp_exit_describe(int status);

#endif
