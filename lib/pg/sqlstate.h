/*
 * pg/sqlstate.h -- what dp does about each error PostgreSQL reports.
 *
 * One table, read by lib/pg/conn.c (which classifies every failed statement)
 * and by lib/pg/sink.c (which words the messages).  Its source is the
 * PostgreSQL 15 manual, Appendix A "PostgreSQL Error Codes": the class
 * names and condition names are the manual's.  A code is looked up
 * exactly first, then by its class (the first two characters), then the
 * default row.  Four things can follow from an error:
 *
 *   outage   the connection is gone or cannot be used for writing (lost,
 *            shut down, a standby after a failover: 25006): wait with
 *            backoff and connect again; nothing is wrong with the data.
 *   retry    the statement failed for a passing reason (a deadlock, a
 *            lock timeout, a full disk, no memory): roll back and run the
 *            same batch again on the same connection, a bounded number
 *            of times.
 *   bad      some row is bad (classes 22 and 23, 44000, 54000, 54011):
 *            find it, report it, write the others.
 *   stop     retrying cannot help (42xxx, 28xxx, 0A000, 53400, ...):
 *            the run ends with the row's exit status (lib/core/exit.h).
 */
#ifndef DP_SQLSTATE_H
#define DP_SQLSTATE_H

enum dp_sqlstate_do {
	DP_SQLSTATE_OUTAGE,
	DP_SQLSTATE_RETRY,
	DP_SQLSTATE_BAD,
	DP_SQLSTATE_STOP,
};

struct dp_sqlstate {
	const char *code;       /* "40P01"; a class: "40"; "" a lost connection; NULL the default */
	const char *name;       /* the manual's condition name: "deadlock_detected" */
	const char *words;      /* what it means for a sink: "a deadlock with another session" */
	enum dp_sqlstate_do what;
	int status;             /* the exit status when it stops the run (DP_SQLSTATE_STOP) */
};

/*
 * The row for a five-character SQLSTATE, "" (libpq's own errors: the
 * connection is lost) or NULL (the same).  Never NULL; static.
 */
const struct dp_sqlstate *dp_sqlstate_of(const char *code);

/* The manual's name of code's class ("Transaction Rollback"), or "unknown class"; static. */
const char *dp_sqlstate_class(const char *code);

/* "outage", "retry", "bad record", "stop": for messages and tests; static. */
const char *dp_sqlstate_do_name(enum dp_sqlstate_do what);

#endif
