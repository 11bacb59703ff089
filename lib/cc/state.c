/*
 * cc/state.c -- dp-fetch's cursor state file (declared in cc/rest.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc/rest.h"
#include "core/exit.h"
#include "core/file.h"
#include "core/log.h"
#include "core/timefmt.h"

struct entry {
	char *fsym;
	char *tsym;
	char *market;          /* NULL: no market given */
	enum dp_cc_interval iv;
	int64_t last;
};

struct dp_cc_state {
	struct entry *e;
	size_t n;
};

void
dp_cc_state_free(struct dp_cc_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++) {
		free(st->e[i].fsym);
		free(st->e[i].tsym);
		free(st->e[i].market);
	}
	free(st->e);
	free(st);
}

static int
same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static struct entry *
lookup(const struct dp_cc_state *st, const char *fsym, const char *tsym,
       enum dp_cc_interval iv, const char *market)
{
	for (size_t i = 0; i < st->n; i++) {
		struct entry *e = &st->e[i];
		if (e->iv == iv && strcmp(e->fsym, fsym) == 0 && strcmp(e->tsym, tsym) == 0 &&
		    same(e->market, market))
			return e;
	}
	return NULL;
}

int
dp_cc_state_get(const struct dp_cc_state *st, const char *fsym, const char *tsym,
                enum dp_cc_interval iv, const char *market, int64_t *last)
{
	const struct entry *e = lookup(st, fsym, tsym, iv, market);

	if (!e)
		return 0;
	*last = e->last;
	return 1;
}

int
dp_cc_state_set(struct dp_cc_state *st, const char *fsym, const char *tsym,
                enum dp_cc_interval iv, const char *market, int64_t last)
{
	struct entry *e = lookup(st, fsym, tsym, iv, market), *p;

	if (e) {
		e->last = last;
		return 0;
	}
	p = realloc(st->e, (st->n + 1) * sizeof(*p));
	if (!p)
		return -1;
	st->e = p;
	e = &p[st->n];
	memset(e, 0, sizeof(*e));
	e->fsym = strdup(fsym);
	e->tsym = strdup(tsym);
	e->market = market ? strdup(market) : NULL;
	e->iv = iv;
	e->last = last;
	if (!e->fsym || !e->tsym || (market && !e->market)) {
		free(e->fsym);
		free(e->tsym);
		free(e->market);
		return -1;
	}
	st->n++;
	return 0;
}

/* One series line; -1 with the reason appended to why. */
static int
parse_line(struct dp_cc_state *st, char *line, struct dp_buf *why)
{
	char *f[7];
	int n = 0;
	char *save = NULL, *end;
	enum dp_cc_interval iv;
	long long last;
	int64_t ms;
	const char *bad;

	for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (n == 7) {
			dp_buf_msgf(why, "too many fields");
			return -1;
		}
		f[n++] = tok;
	}
	if (n < 5 || n > 6) {
		dp_buf_msgf(why, "expected FSYM TSYM INTERVAL MARKET LAST [TIME]");
		return -1;
	}
	if (dp_cc_interval_parse(f[2], &iv) < 0) {
		dp_buf_msgf(why, "unknown interval");
		return -1;
	}
	errno = 0;
	last = strtoll(f[4], &end, 10);
	if (*end || errno || last < 0 || f[4][0] == '-' || f[4][0] == '+' ||
	    last > DP_TIME_MAX_MS / 1000) {
		dp_buf_msgf(why, "LAST is not a time in seconds");
		return -1;
	}
	/* Candles open on whole intervals since the epoch: anything else was not written by us. */
	if (last % dp_cc_interval_secs(iv) != 0) {
		dp_buf_msgf(why, "LAST %lld is not the open time of a %s candle", last,
		            dp_cc_interval_label(iv));
		return -1;
	}
	/* TIME is for people, but one they changed must not be ignored silently. */
	if (n == 6 && dp_time_parse_why(f[5], &ms, &bad) < 0) {
		dp_buf_msgf(why, "TIME '%s' is not a time: %s", f[5], bad);
		return -1;
	}
	if (n == 6 && ms != last * 1000) {
		char t[DP_TIME_BUFSZ];
		dp_buf_msgf(why, "TIME %s does not match LAST %lld (%s)", f[5], last,
		            dp_time_format(last * 1000, t));
		return -1;
	}
	if (dp_cc_state_set(st, f[0], f[1], iv, strcmp(f[3], "-") ? f[3] : NULL, last) < 0) {
		dp_buf_msgf(why, "out of memory");
		return -1;
	}
	return 0;
}

int
dp_cc_state_load(const char *path, struct dp_cc_state **out, struct dp_buf *err)
{
	struct dp_cc_state *st = calloc(1, sizeof(*st));
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	struct dp_buf why = DP_BUF_INIT;
	int rc = 0;

	*out = NULL;
	if (!st) {
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	fp = fopen(path, "r");
	if (!fp) {
		if (errno == ENOENT) {
			*out = st;
			return 0;
		}
		dp_buf_msgf(err, "cannot open state file %s: ", path);
		dp_file_why(err, path, errno);
		dp_cc_state_free(st);
		return -1;
	}
	while ((len = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (parse_line(st, line, &why) < 0) {
			dp_buf_msgf(err, "%s:%lu: %s", path, lineno, dp_buf_str(&why));
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(fp)) {
		dp_buf_msgf(err, "cannot read state file %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	dp_buf_free(&why);
	fclose(fp);
	if (rc < 0) {
		dp_cc_state_free(st);
		return -1;
	}
	*out = st;
	return 0;
}

int
dp_cc_state_save(const struct dp_cc_state *st, const char *path, struct dp_buf *err)
{
	struct dp_buf text = DP_BUF_INIT;
	int rc;

	rc = dp_buf_addstr(&text, "# dp-fetch state, format 1: "
	                   "FSYM TSYM INTERVAL MARKET LAST_EPOCH_SECONDS LAST_TIME\n");
	for (size_t i = 0; i < st->n && rc == 0; i++) {
		const struct entry *e = &st->e[i];
		char t[DP_TIME_BUFSZ];
		rc = dp_buf_addf(&text, "%s %s %s %s %lld %s\n", e->fsym, e->tsym,
		                 dp_cc_interval_label(e->iv), e->market ? e->market : "-",
		                 (long long)e->last, dp_time_format(e->last * 1000, t));
	}
	if (rc < 0)
		dp_buf_msgf(err, "cannot write state file %s: out of memory", path);
	else
		rc = dp_file_replace(path, "state file", text.data, text.len, err);
	dp_buf_free(&text);
	return rc;
}

int
dp_cc_state_lock(const char *path, struct dp_buf *err)
{
	struct dp_buf lock = DP_BUF_INIT;
	int fd;

	if (dp_buf_addf(&lock, "%s.lock", path) < 0) {
		dp_buf_msgf(err, "out of memory");
		return -1;
	}
	fd = dp_file_lock(lock.data, err);
	dp_buf_free(&lock);
	return fd;
}

int
dp_cc_state_open(const char *path, struct dp_cc_state **st, int *lock_fd)
{
	struct dp_buf err = DP_BUF_INIT;
	int status = 0;

	*st = NULL;
	*lock_fd = dp_cc_state_lock(path, &err);
	if (*lock_fd == -2) {
		dp_err("state file %s is in use by another dp-fetch", path);
		status = DP_EX_TEMPFAIL;
	} else if (*lock_fd < 0) {
		dp_err("%s", dp_buf_str(&err));
		status = DP_EX_IOERR;
	} else if (dp_cc_state_load(path, st, &err) < 0) {
		dp_err("%s", dp_buf_str(&err));
		status = DP_EX_DATAERR;
	}
	dp_buf_free(&err);
	return status;
}
