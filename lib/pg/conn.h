/*
 * pg/conn.h -- PostgreSQL connections as dp uses them (libpq).
 *
 * Connecting: a libpq conninfo string ("host=db dbname=dp") or URI
 * ("postgresql://user@db/dp"), or nothing for libpq's own defaults (PG*
 * environment variables, ~/.pgpass, the service file).  The connection is
 * made without blocking and polled in slices, so it gives up after a
 * timeout and when SIGINT/SIGTERM arrives.
 *
 * Passwords: no message from here ever contains one.  libpq's own
 * messages can quote parts of the connection string (a bad percent
 * escape in a URI quotes the whole component, password included), so
 * every message is scrubbed of each password the string, the
 * environment ($PGPASSWORD) or the connection names, and the target is
 * described by host, port, database and user only.
 *
 * Keepalives: unless the conninfo says otherwise (its values win), every
 * connection has TCP keepalives (idle 30 s, then every 10 s, 3 probes)
 * and tcp_user_timeout 60 s, so that a server that went silent -- a
 * partition, a host that died -- is noticed within about a minute, not
 * after the kernel's two hours.
 *
 * Waiting: dp_pg_exec waits for its answer in slices.  Once SIGINT or
 * SIGTERM has come (dp_sig_stop), it waits DP_PG_STOP_GRACE_MS more at
 * most, then shuts the socket down and fails as for a lost connection:
 * a server that does not answer cannot hold a stop.
 *
 * Errors: a failed statement is classified by its SQLSTATE through the
 * table in pg/sqlstate.h (PostgreSQL documentation, Appendix A):
 *   transient  an outage: a connection that is gone, class 08, 57P01-03,
 *              25006 (read-only after a failover): reconnect later,
 *              nothing is wrong with the data;
 *   retry      a passing failure of this statement (40001, 40P01, 53100,
 *              53200, 55P03, ...): run it again on the same connection;
 *   data       class 22 (data exception), 23 (integrity constraint),
 *              54000, 54011: some row is bad;
 *   fatal      everything else (42 syntax or undefined object, 28
 *              authorization, 0A000, 53400, ...): retrying cannot help.
 */
#ifndef DP_PG_H
#define DP_PG_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "core/buf.h"

enum dp_pg_kind {
	DP_PG_OK = 0,
	DP_PG_TRANSIENT,
	DP_PG_RETRY,
	DP_PG_DATA,
	DP_PG_FATAL,
	DP_PG_AUTH,             /* dp_pg_connect only: the server refused the login */
};

/*
 * Connect.  conninfo may be NULL or "" (libpq's defaults); app is the
 * application_name the server shows (unless the string sets one).
 * timeout_ms bounds the whole attempt (> 0).  Returns the connection, or
 * NULL with a message in err ("cannot connect to the database (host h
 * port p dbname d user u): why", password-free); NULL with nothing in
 * err when a signal stopped it (dp_sig_stop is set).  *kind (may be
 * NULL) says why it failed: DP_PG_FATAL when libpq refused the options
 * themselves before trying any server (sslmode=bogus, a bad port: no
 * retry can help), DP_PG_AUTH when the server refused the login (a
 * password wanted and none given, a wrong password, an unknown role, no
 * pg_hba.conf entry: told by libpq and by the server's text, which is
 * English unless the server's lc_messages says otherwise), else
 * DP_PG_TRANSIENT.  Notices from the server go to
 * dp_info() (shown with -v).  Caller PQfinish()es.
 */
PGconn *dp_pg_connect(const char *conninfo, const char *app, int64_t timeout_ms,
                      enum dp_pg_kind *kind, struct dp_buf *err);

/*
 * Check a conninfo string or URI without connecting: 0, or -1 with
 * libpq's reason (password-free) in err.
 */
int dp_pg_conninfo_check(const char *conninfo, struct dp_buf *err);

/*
 * A conninfo from the command line is visible to every user of the
 * machine (ps, /proc/PID/cmdline): return a copy of arg (the caller
 * frees it) and overwrite each password in arg itself with '*', so that
 * what ps shows from then on has none; *had says whether there was one.
 * NULL when memory runs out (arg is left alone).
 */
char *dp_pg_conninfo_hide(char *arg, bool *had);

/* After a stop signal, a statement still unanswered this long (ms) is abandoned. */
#define DP_PG_STOP_GRACE_MS 2500

/* Classify a failed result (or NULL: a lost connection) on conn. */
enum dp_pg_kind dp_pg_classify(const PGresult *res, const PGconn *conn);

/*
 * Wait, in slices, until conn has an answer to read (!PQisBusy), after
 * PQsendQuery* or PQputCopyEnd.  0; -1 when the connection failed, or
 * when a stop signal came DP_PG_STOP_GRACE_MS ago (the socket is then
 * shut down, so the connection is lost as far as libpq can tell).
 */
int dp_pg_wait(PGconn *conn);

/*
 * Shut conn's socket down (both ways) without closing it, so that a
 * thread blocked on it in libpq returns at once with a lost connection.
 * Safe from another thread than conn's user; NULL is fine.
 */
void dp_pg_shutdown(PGconn *conn);

/* "08006", or "" when the error has no SQLSTATE (libpq's own); static or borrowed. */
const char *dp_pg_sqlstate(const PGresult *res);

/*
 * Append the error of res (or of conn when res is NULL) to err as one
 * line: the primary message, and the SQLSTATE with its condition name
 * from pg/sqlstate.h, "(SQLSTATE 53100 disk_full)", or for a bad row the
 * code alone, "(SQLSTATE 23514)" (the server's words say what it is);
 * scrubbed of passwords.
 */
void dp_pg_error(struct dp_buf *err, const PGresult *res, const PGconn *conn);

/*
 * Run one statement with text parameters (values only ever go as
 * parameters, never into the SQL text).  Returns DP_PG_OK with *res set
 * when res is not NULL (caller PQclear()s), else the error's kind with
 * the message in err, prefixed by what (e.g. "cannot create table x").
 * sqlstate (may be NULL, 6 bytes) gets the error's SQLSTATE or "".
 * Without parameters sql may hold several statements ("BEGIN; LOCK
 * ..."), run in one round trip; the first error, else the last result,
 * counts.  The answer is waited for as dp_pg_wait does.
 */
enum dp_pg_kind dp_pg_exec(PGconn *c, const char *sql, int nparams,
                           const char *const *params, PGresult **res, char *sqlstate,
                           struct dp_buf *err, const char *what);

/*
 * Append name[0..n) as a quoted SQL identifier: in double quotes, each
 * double quote doubled (what PQescapeIdentifier does, without needing a
 * connection).  name must be valid UTF-8 without NUL bytes.
 */
int dp_pg_ident(struct dp_buf *out, const char *name, size_t n) DP_MUST_CHECK;

/*
 * Split "schema.name" at the first dot (no dot: no schema) and append it
 * quoted.  Returns -1 when memory runs out.  Names are taken literally:
 * "Candles" stays capitalized, as the user typed it.
 */
int dp_pg_qualified(struct dp_buf *out, const char *name) DP_MUST_CHECK;

/* The longest identifier PostgreSQL keeps (NAMEDATALEN - 1); longer ones it truncates. */
#define DP_PG_MAX_IDENT 63

/*
 * Replace every password of conninfo (and $PGPASSWORD) in msg with
 * "********".  Exposed for callers that print libpq text themselves.
 */
void dp_pg_scrub(struct dp_buf *msg, const char *conninfo);

#endif
