/*
 * pg/conn.c -- PostgreSQL connections, errors and identifiers (pg/conn.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/parse.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "json/scan.h"
#include "pg/conn.h"
#include "pg/sqlstate.h"

#define MASK "********"
#define SCRUB_MIN 4      /* bytes: shorter secrets are not searched for in messages */

/* ---- passwords out of messages ----------------------------------------- */

struct secrets {
	char *s[8];
	size_t n;
};

static void
secret_add(struct secrets *sc, const char *p, size_t n)
{
	if (!n || sc->n == sizeof(sc->s) / sizeof(sc->s[0]))
		return;
	for (size_t i = 0; i < sc->n; i++)
		if (strlen(sc->s[i]) == n && memcmp(sc->s[i], p, n) == 0)
			return;
	char *c = strndup(p, n);
	if (c)
		sc->s[sc->n++] = c;
}

/* The secret as written and, when it has %XX escapes, decoded too. */
static void
secret_add_uri(struct secrets *sc, const char *p, size_t n)
{
	secret_add(sc, p, n);
	char *d = malloc(n + 1);
	size_t k = 0;
	if (!d)
		return;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%' && i + 2 < n &&
		    dp_hexval(p[i + 1]) >= 0 && dp_hexval(p[i + 2]) >= 0) {
			d[k++] = (char)(dp_hexval(p[i + 1]) << 4 | dp_hexval(p[i + 2]));
			i += 2;
		} else {
			d[k++] = p[i];
		}
	}
	secret_add(sc, d, k);
	free(d);
}

/* Where a password sits in a connection string, as written. */
struct span {
	size_t off, len;
	enum { SPAN_PLAIN, SPAN_QUOTED, SPAN_URI } kind;
};

/*
 * Every password a connection string may carry, found without libpq's
 * parser (which is what fails on a malformed string): a URI's
 * user:password@, password=... in its query, and password = ... in the
 * key/value form, quoted or not.  At most max; returns how many.
 */
static size_t
password_spans(const char *ci, struct span *sp, size_t max)
{
	size_t n = 0;
	const char *scheme = strstr(ci, "://");

	if (scheme && (strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0)) {
		const char *a = scheme + 3, *slash = strchr(a, '/'), *at = NULL;
		const char *end = slash ? slash : a + strlen(a);
		for (const char *p = a; p < end; p++)
			if (*p == '@')
				at = p;
		if (at) {
			const char *colon = memchr(a, ':', (size_t)(at - a));
			if (colon && n < max)
				sp[n++] = (struct span){ (size_t)(colon + 1 - ci),
				                         (size_t)(at - colon - 1), SPAN_URI };
		}
		for (const char *q = strstr(ci, "password="); q; q = strstr(q + 1, "password=")) {
			const char *v = q + 9;
			if (n < max)
				sp[n++] = (struct span){ (size_t)(v - ci), strcspn(v, "&"), SPAN_URI };
		}
		return n;
	}
	for (const char *q = strstr(ci, "password"); q; q = strstr(q + 1, "password")) {
		const char *p = q + 8;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\'') {
			const char *v = ++p;
			while (*p && *p != '\'') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (n < max)
				sp[n++] = (struct span){ (size_t)(v - ci), (size_t)(p - v), SPAN_QUOTED };
		} else if (n < max) {
			sp[n++] = (struct span){ (size_t)(p - ci), strcspn(p, " \t\n"), SPAN_PLAIN };
		}
	}
	return n;
}

static void
secrets_of(struct secrets *sc, const char *ci, bool env)
{
	const char *pw = env ? getenv("PGPASSWORD") : NULL;
	struct span sp[8];

	if (pw)
		secret_add(sc, pw, strlen(pw));
	if (!ci)
		return;
	size_t n = password_spans(ci, sp, 8);
	for (size_t i = 0; i < n; i++) {
		const char *v = ci + sp[i].off;
		if (sp[i].kind == SPAN_URI) {
			secret_add_uri(sc, v, sp[i].len);
		} else if (sp[i].kind == SPAN_QUOTED) {
			/* backslash escapes: the raw and the unescaped text */
			char *d = malloc(sp[i].len + 1);
			size_t k = 0;
			secret_add(sc, v, sp[i].len);
			for (size_t j = 0; d && j < sp[i].len; j++) {
				if (v[j] == '\\' && j + 1 < sp[i].len)
					j++;
				d[k++] = v[j];
			}
			if (d)
				secret_add(sc, d, k);
			free(d);
		} else {
			secret_add(sc, v, sp[i].len);
		}
	}
}

static void
secrets_free(struct secrets *sc)
{
	for (size_t i = 0; i < sc->n; i++)
		free(sc->s[i]);
	sc->n = 0;
}

/* Replace each secret in msg, longest first (one may contain another). */
static void
scrub(struct dp_buf *msg, struct secrets *sc)
{
	for (size_t i = 0; i < sc->n; i++)
		for (size_t j = i + 1; j < sc->n; j++)
			if (strlen(sc->s[j]) > strlen(sc->s[i])) {
				char *t = sc->s[i];
				sc->s[i] = sc->s[j];
				sc->s[j] = t;
			}
	for (size_t i = 0; i < sc->n && msg->len; i++) {
		const char *s = sc->s[i];
		size_t n = strlen(s);
		/*
		 * Masked wherever it appears, a short one would mark every "1"
		 * of 127.0.0.1 and so give itself away.  No message of libpq's
		 * or ours carries a password on purpose; where a connection
		 * string is echoed (a parse error), dp_pg_conninfo_check
		 * reports on a copy without it instead.
		 */
		if (n < SCRUB_MIN)
			continue;
		char *hit;
		size_t from = 0;
		while (from < msg->len && (hit = memmem(msg->data + from, msg->len - from, s, n))) {
			size_t at = (size_t)(hit - msg->data), tail = msg->len - at - n;
			struct dp_buf out = DP_BUF_INIT;
			if (dp_buf_add(&out, msg->data, at) < 0 || dp_buf_addstr(&out, MASK) < 0 ||
			    dp_buf_add(&out, hit + n, tail) < 0) {
				/* No memory for a copy: blank the secret in place. */
				memset(hit, '*', n);
				dp_buf_free(&out);
				from = at + n;
				continue;
			}
			from = at + strlen(MASK);
			dp_buf_free(msg);
			*msg = out;
		}
	}
}

/*
 * Append msg to err without the passwords of conninfo, the environment
 * and the connection (its .pgpass one too); msg is freed.
 */
static void
scrub_into(struct dp_buf *err, struct dp_buf *msg, const char *conninfo, const PGconn *c)
{
	struct secrets sc = { { NULL }, 0 };

	secrets_of(&sc, conninfo, true);
	if (c && PQpass(c))
		secret_add(&sc, PQpass(c), strlen(PQpass(c)));
	scrub(msg, &sc);
	secrets_free(&sc);
	dp_buf_msgf(err, "%s", dp_buf_str(msg));
	dp_buf_free(msg);
}

void
dp_pg_scrub(struct dp_buf *msg, const char *conninfo)
{
	struct secrets sc = { { NULL }, 0 };

	secrets_of(&sc, conninfo, true);
	scrub(msg, &sc);
	secrets_free(&sc);
}

/* Overwrite every password in ci with '*', in place; whether there was one. */
static bool
blank_passwords(char *ci)
{
	struct span sp[8];
	size_t n = password_spans(ci, sp, 8);
	bool had = false;

	for (size_t i = 0; i < n; i++) {
		memset(ci + sp[i].off, '*', sp[i].len);
		had |= sp[i].len > 0;
	}
	return had;
}

char *
dp_pg_conninfo_hide(char *arg, bool *had)
{
	char *copy = strdup(arg);

	*had = copy && blank_passwords(arg);
	return copy;
}

/*
 * libpq's message as one line: no "ERROR:  " prefix, newlines and tabs
 * folded into "; ", no trailing newline.
 */
static void
one_line(struct dp_buf *out, const char *m)
{
	struct dp_buf b = DP_BUF_INIT;

	if (!m)
		m = "";
	static const char *const severities[] = { "ERROR:  ", "FATAL:  ", "NOTICE:  ",
		"WARNING:  ", NULL };

	for (int i = 0; severities[i]; i++)
		if (strncmp(m, severities[i], strlen(severities[i])) == 0) {
			m += strlen(severities[i]);
			break;
		}
	/*
	 * libpq indents a message's continuation lines with a tab: they go
	 * on the same sentence, or start a new one when capitalized; other
	 * lines (DETAIL:, HINT:) are parts of their own.
	 */
	for (const char *p = m; *p; p++) {
		if (*p == '\n' || *p == '\t') {
			bool cont = p[0] == '\n' && p[1] == '\t';
			while (p[1] == '\n' || p[1] == '\t')
				p++;
			if (!p[1] || !b.len)
				continue;
			if (!cont)
				dp_buf_msgf(&b, "; ");
			else if (p[1] >= 'A' && p[1] <= 'Z' && b.data[b.len - 1] != '.')
				dp_buf_msgf(&b, ". ");
			else
				dp_buf_msgf(&b, " ");
			continue;
		}
		dp_buf_msgf(&b, "%c", *p);
	}
	dp_buf_msgf(out, "%s", dp_buf_str(&b));
	dp_buf_free(&b);
}

/* ---- connecting ------------------------------------------------------- */

static void
notice(void *arg, const char *msg)
{
	struct dp_buf b = DP_BUF_INIT;

	(void)arg;
	one_line(&b, msg);
	dp_info("server: %s", dp_buf_str(&b));
	dp_buf_free(&b);
}

static void
describe(struct dp_buf *err, PGconn *c)
{
	const char *host = c ? PQhost(c) : NULL, *port = c ? PQport(c) : NULL;
	const char *db = c ? PQdb(c) : NULL, *user = c ? PQuser(c) : NULL;
	struct dp_buf d = DP_BUF_INIT;

	if (host && *host)
		dp_buf_msgf(&d, "host %s", host);
	if (port && *port)
		dp_buf_msgf(&d, "%sport %s", d.len ? " " : "", port);
	if (db && *db)
		dp_buf_msgf(&d, "%sdbname %s", d.len ? " " : "", db);
	if (user && *user)
		dp_buf_msgf(&d, "%suser %s", d.len ? " " : "", user);
	if (d.len)
		dp_buf_msgf(err, " (%s)", dp_buf_str(&d));
	dp_buf_free(&d);
}

static void
connect_failed(struct dp_buf *err, PGconn *c, const char *conninfo, const char *why)
{
	struct dp_buf m = DP_BUF_INIT;

	dp_buf_msgf(&m, "cannot connect to the database");
	describe(&m, c);
	dp_buf_msgf(&m, ": ");
	if (why)
		dp_buf_msgf(&m, "%s", why);
	else
		one_line(&m, c ? PQerrorMessage(c) : "out of memory");
	scrub_into(err, &m, conninfo, c);
}

int
dp_pg_conninfo_check(const char *conninfo, struct dp_buf *err)
{
	char *why = NULL;
	PQconninfoOption *o;

	if (!conninfo || !*conninfo || (!strchr(conninfo, '=') && !strstr(conninfo, "://")))
		return 0;      /* nothing, or a plain database name */
	o = PQconninfoParse(conninfo, &why);
	if (o) {
		PQconninfoFree(o);
		return 0;
	}
	PQfreemem(why);
	/*
	 * libpq quotes the part it could not parse, which may be the
	 * password: parse a copy with every password blanked, and report
	 * on that.  When the copy parses, the password was the fault.
	 */
	char *copy = strdup(conninfo);
	struct dp_buf m = DP_BUF_INIT;
	why = NULL;
	if (copy)
		blank_passwords(copy);
	if (!copy)
		dp_buf_msgf(&m, "out of memory");
	else if ((o = PQconninfoParse(copy, &why)) != NULL)
		dp_buf_msgf(&m, "the password is not valid there (in a URI, %% must begin a %%XX "
		            "escape, and @ / : ? # must be written as %%XX)");
	else
		one_line(&m, why ? why : "out of memory");
	PQconninfoFree(o);
	PQfreemem(why);
	free(copy);
	dp_pg_scrub(&m, conninfo);
	dp_buf_msgf(err, "%s", dp_buf_str(&m));
	dp_buf_free(&m);
	return -1;
}

/* The server refused the login itself (credentials), not the connection. */
static bool
login_refused(PGconn *c)
{
	const char *m = PQerrorMessage(c);

	return PQconnectionNeedsPassword(c) || strstr(m, "authentication failed") ||
	       strstr(m, "no pg_hba.conf entry") ||
	       (strstr(m, "role \"") && strstr(m, "\" does not exist"));
}

PGconn *
dp_pg_connect(const char *conninfo, const char *app, int64_t timeout_ms,
              enum dp_pg_kind *kind, struct dp_buf *err)
{
	/*
	 * Keepalives and tcp_user_timeout come first: keywords are taken in
	 * order and a later one wins, so the conninfo expanded from dbname
	 * overrides them (libpq, PQconnectdbParams).  A frozen or cut-off
	 * server is then noticed within about a minute: 30 s idle, 3 probes
	 * 10 s apart, and at most 60 s for data the peer never acknowledges.
	 */
	const char *kw[9] = { "keepalives", "keepalives_idle", "keepalives_interval",
	                      "keepalives_count", "tcp_user_timeout" };
	const char *val[9] = { "1", "30", "10", "3", "60000" };
	int n = 5;

	if (kind)
		*kind = DP_PG_TRANSIENT;

	if (conninfo && *conninfo) {
		kw[n] = "dbname";       /* expand_dbname: a conninfo string or URI */
		val[n++] = conninfo;
	}
	kw[n] = "fallback_application_name";
	val[n++] = app;
	kw[n] = NULL;
	val[n] = NULL;

	PGconn *c = PQconnectStartParams(kw, val, 1);
	if (!c || PQstatus(c) == CONNECTION_BAD) {
		/*
		 * libpq checks option values (connectOptions2 in fe-connect.c)
		 * before it resolves or dials anything, and says "invalid ..."
		 * or "could not match ..." (dp never sets LC_MESSAGES, so the
		 * text is libpq's English).  A name that does not resolve fails
		 * here too, with another text: that one may be retried.
		 */
		const char *m = c ? PQerrorMessage(c) : "";
		if (kind && c && (!strncmp(m, "invalid ", 8) || !strncmp(m, "could not match ", 16) ||
		                  strstr(m, "not compiled in")))
			*kind = DP_PG_FATAL;
		connect_failed(err, c, conninfo, NULL);
		PQfinish(c);
		return NULL;
	}
	int64_t deadline = dp_time_mono_ms() + timeout_ms;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			if (kind && login_refused(c))
				*kind = DP_PG_AUTH;
			connect_failed(err, c, conninfo, NULL);
			PQfinish(c);
			return NULL;
		}
		int64_t left = deadline - dp_time_mono_ms();
		if (left <= 0) {
			char d[48], why[96];
			snprintf(why, sizeof(why), "no answer within %s", dp_duration_format(timeout_ms, d));
			connect_failed(err, c, conninfo, why);
			PQfinish(c);
			return NULL;
		}
		struct pollfd pfd = { PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0 };
		int r = poll(&pfd, 1, (int)(left < 250 ? left : 250));
		if (dp_sig_stop) {
			PQfinish(c);
			return NULL;
		}
		if (r < 0 && errno != EINTR) {
			connect_failed(err, c, conninfo, strerror(errno));
			PQfinish(c);
			return NULL;
		}
		if (r > 0)
			st = PQconnectPoll(c);
	}
	PQsetNoticeProcessor(c, notice, NULL);
	return c;
}

/* ---- errors ----------------------------------------------------------- */

const char *
dp_pg_sqlstate(const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return s ? s : "";
}

enum dp_pg_kind
dp_pg_classify(const PGresult *res, const PGconn *conn)
{
	const char *s = dp_pg_sqlstate(res);

	if (!conn || PQstatus(conn) == CONNECTION_BAD)
		return DP_PG_TRANSIENT;
	if (!*s)
		return DP_PG_FATAL;     /* libpq's own complaint, on a good connection */
	switch (dp_sqlstate_of(s)->what) {
	case DP_SQLSTATE_OUTAGE: return DP_PG_TRANSIENT;
	case DP_SQLSTATE_RETRY: return DP_PG_RETRY;
	case DP_SQLSTATE_BAD: return DP_PG_DATA;
	default: return DP_PG_FATAL;
	}
}

/* When a waiter first saw the stop signal (monotonic ms), 0 before. */
static atomic_llong stop_seen_ms;

static bool
stop_grace_over(void)
{
	if (!dp_sig_stop)
		return false;
	long long now = dp_time_mono_ms(), zero = 0;
	atomic_compare_exchange_strong(&stop_seen_ms, &zero, now);
	return now - atomic_load(&stop_seen_ms) >= DP_PG_STOP_GRACE_MS;
}

void
dp_pg_shutdown(PGconn *conn)
{
	int fd = conn ? PQsocket(conn) : -1;

	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

int
dp_pg_wait(PGconn *c)
{
	while (PQisBusy(c)) {
		struct pollfd pfd = { PQsocket(c), POLLIN, 0 };
		if (pfd.fd < 0)
			return -1;
		int r = poll(&pfd, 1, 250);
		if (r < 0 && errno != EINTR)
			return -1;
		if (stop_grace_over()) {
			/* The server does not answer, and the user asked to stop. */
			dp_pg_shutdown(c);
			PQconsumeInput(c);
			return -1;
		}
		if (r > 0 && !PQconsumeInput(c))
			return -1;
	}
	return 0;
}

void
dp_pg_error(struct dp_buf *err, const PGresult *res, const PGconn *conn)
{
	struct dp_buf m = DP_BUF_INIT;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *st = dp_pg_sqlstate(res);

	if (primary)
		one_line(&m, primary);
	else if (res && *PQresultErrorMessage(res))
		one_line(&m, PQresultErrorMessage(res));
	else if (conn && *PQerrorMessage(conn))
		one_line(&m, PQerrorMessage(conn));
	else
		dp_buf_msgf(&m, "the connection to the database was lost");
	if (*st) {
		const struct dp_sqlstate *row = dp_sqlstate_of(st);
		if (row->what == DP_SQLSTATE_BAD)
			dp_buf_msgf(&m, " (SQLSTATE %s)", st);
		else
			dp_buf_msgf(&m, " (SQLSTATE %s %s)", st, row->name);
	}
	scrub_into(err, &m, NULL, conn);
}

enum dp_pg_kind
dp_pg_exec(PGconn *c, const char *sql, int nparams, const char *const *params,
           PGresult **res, char *sqlstate, struct dp_buf *err, const char *what)
{
	PGresult *r = NULL;

	/* Sent, then waited for in slices: a stop signal is not held by a
	 * server that does not answer (dp_pg_wait). */
	/* Without parameters, the simple protocol: sql may be several statements. */
	if (nparams ? PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, 0)
	            : PQsendQuery(c, sql)) {
		for (PGresult *x; dp_pg_wait(c), (x = PQgetResult(c)) != NULL; ) {
			ExecStatusType xs = PQresultStatus(x);
			if (xs == PGRES_COPY_IN || xs == PGRES_COPY_OUT || xs == PGRES_COPY_BOTH) {
				PQclear(x);     /* not for COPY: end it, it fails */
				PQputCopyEnd(c, "not expected");
				continue;
			}
			/* the first error, else the last result */
			if (r && PQresultStatus(r) == PGRES_FATAL_ERROR) {
				PQclear(x);
			} else {
				PQclear(r);
				r = x;
			}
			if (PQstatus(c) == CONNECTION_BAD)
				break;
		}
	}
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (sqlstate)
		*sqlstate = '\0';
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (res)
			*res = r;
		else
			PQclear(r);
		return DP_PG_OK;
	}
	enum dp_pg_kind k = dp_pg_classify(r, c);
	if (sqlstate)
		snprintf(sqlstate, 6, "%s", dp_pg_sqlstate(r));
	if (what)
		dp_buf_msgf(err, "%s: ", what);
	dp_pg_error(err, r, c);
	PQclear(r);
	if (res)
		*res = NULL;
	return k == DP_PG_OK ? DP_PG_FATAL : k;
}

/* ---- identifiers ------------------------------------------------------ */

int
dp_pg_ident(struct dp_buf *out, const char *name, size_t n)
{
	if (dp_buf_grow(out, n + 2) < 0 || dp_buf_addch(out, '"') < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (name[i] == '"' && dp_buf_addch(out, '"') < 0)
			return -1;
		if (dp_buf_addch(out, name[i]) < 0)
			return -1;
	}
	return dp_buf_addch(out, '"');
}

int
dp_pg_qualified(struct dp_buf *out, const char *name)
{
	const char *dot = strchr(name, '.');

	if (dot) {
		if (dp_pg_ident(out, name, (size_t)(dot - name)) < 0 || dp_buf_addch(out, '.') < 0)
			return -1;
		name = dot + 1;
	}
	return dp_pg_ident(out, name, strlen(name));
}
