/*
 * ccstate.c -- dp-fetch's cursor state file (declared in cc.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc.h"
#include "timefmt.h"

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

static int
parse_line(struct dp_cc_state *st, char *line, const char **why)
{
	char *f[7];
	int n = 0;
	char *save = NULL, *end;
	enum dp_cc_interval iv;
	long long last;

	for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (n == 7) {
			*why = "too many fields";
			return -1;
		}
		f[n++] = tok;
	}
	if (n < 5 || n > 6) {
		*why = "expected FSYM TSYM INTERVAL MARKET LAST [TIME]";
		return -1;
	}
	if (dp_cc_interval_parse(f[2], &iv) < 0) {
		*why = "unknown interval";
		return -1;
	}
	errno = 0;
	last = strtoll(f[4], &end, 10);
	if (*end || errno || last < 0 || f[4][0] == '-' || f[4][0] == '+') {
		*why = "LAST is not a time in seconds";
		return -1;
	}
	if (dp_cc_state_set(st, f[0], f[1], iv, strcmp(f[3], "-") ? f[3] : NULL, last) < 0) {
		*why = "out of memory";
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
		dp_buf_msgf(err, "cannot open state file %s: %s", path, strerror(errno));
		dp_cc_state_free(st);
		return -1;
	}
	while ((len = getline(&line, &cap, fp)) >= 0) {
		const char *why = NULL;
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (parse_line(st, line, &why) < 0) {
			dp_buf_msgf(err, "%s:%lu: %s", path, lineno, why);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(fp)) {
		dp_buf_msgf(err, "cannot read state file %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(fp);
	if (rc < 0) {
		dp_cc_state_free(st);
		return -1;
	}
	*out = st;
	return 0;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
fsync_dir(const char *path)
{
	char *copy = strdup(path), *slash;
	const char *dir = ".";
	int fd, rc;

	if (!copy)
		return -1;
	slash = strrchr(copy, '/');
	if (slash == copy)
		dir = "/";
	else if (slash) {
		*slash = '\0';
		dir = copy;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	/* Some file systems cannot fsync a directory; the rename still stands. */
	if (rc < 0 && (errno == EINVAL || errno == EROFS))
		rc = 0;
	close(fd);
	return rc;
}

int
dp_cc_state_save(const struct dp_cc_state *st, const char *path, struct dp_buf *err)
{
	struct dp_buf text = DP_BUF_INIT, tmp = DP_BUF_INIT;
	struct stat sb;
	mode_t mode;
	int fd = -1, rc = -1;
	const char *what = "write";

	int built = dp_buf_addstr(&text, "# dp-fetch state, format 1: "
	                          "FSYM TSYM INTERVAL MARKET LAST_EPOCH_SECONDS LAST_TIME\n");
	for (size_t i = 0; i < st->n && built == 0; i++) {
		const struct entry *e = &st->e[i];
		char t[DP_TIME_BUFSZ];
		built = dp_buf_addf(&text, "%s %s %s %s %lld %s\n", e->fsym, e->tsym,
		                    dp_cc_interval_label(e->iv), e->market ? e->market : "-",
		                    (long long)e->last, dp_time_format(e->last * 1000, t));
	}
	if (built < 0) {
		dp_buf_msgf(err, "cannot write state file %s: out of memory", path);
		dp_buf_free(&text);
		return -1;
	}
	if (!text.data || dp_buf_addf(&tmp, "%s.XXXXXX", path) < 0) {
		dp_buf_msgf(err, "out of memory");
		goto out;
	}
	if (stat(path, &sb) == 0) {
		mode = sb.st_mode & 07777;
	} else {
		mode_t mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}
	fd = mkstemp(tmp.data);
	if (fd < 0) {
		dp_buf_msgf(err, "cannot create a temporary file next to state file %s: %s",
		            path, strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) < 0) {
		what = "chmod";
		goto fail;
	}
	if (write_all(fd, text.data, text.len) < 0) {
		what = "write";
		goto fail;
	}
	if (fsync(fd) < 0) {
		what = "fsync";
		goto fail;
	}
	int c = close(fd);
	fd = -1;
	if (c < 0) {
		what = "close";
		goto fail;
	}
	if (rename(tmp.data, path) < 0) {
		what = "rename";
		goto fail;
	}
	if (fsync_dir(path) < 0) {
		/* The new state is in place; only its durability is in doubt. */
		dp_buf_msgf(err, "cannot fsync the directory of state file %s: %s", path,
		            strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
fail:
	dp_buf_msgf(err, "cannot %s state file %s: %s", what, path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp.data);
out:
	dp_buf_free(&text);
	dp_buf_free(&tmp);
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
	fd = open(lock.data, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0) {
		dp_buf_msgf(err, "cannot open lock file %s: %s", lock.data, strerror(errno));
		dp_buf_free(&lock);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK) {
			dp_buf_free(&lock);
			return -2;
		}
		dp_buf_msgf(err, "cannot lock %s: %s", lock.data, strerror(e));
		dp_buf_free(&lock);
		return -1;
	}
	dp_buf_free(&lock);
	return fd;
}
