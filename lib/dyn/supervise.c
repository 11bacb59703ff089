/*
 * dyn/supervise.c -- child processes kept running, one per key (dyn/supervise.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/log.h"
#include "core/sig.h"
#include "core/timefmt.h"
#include "dyn/supervise.h"
#include "obs/obs.h"

struct child {
	char *key;
	pid_t pid;              /* 0: not running */
	int err_fd;             /* read end of its stderr; -1 none */
	struct dp_buf line;     /* a partial stderr line */
	bool stopping;          /* we sent SIGTERM: do not restart */
	int64_t started_ms;     /* monotonic */
	int64_t restart_at;     /* monotonic; 0: no restart pending */
	struct dp_backoff backoff;
};

struct dp_sup {
	char **argv;            /* owned copies */
	size_t argc;
	int64_t backoff_ms, max_backoff_ms;
	struct child *c;
	size_t n;
};

struct dp_sup *
dp_sup_new(char *const *argv, size_t argc, int64_t backoff_ms, int64_t max_backoff_ms)
{
	struct dp_sup *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->argv = calloc(argc + 1, sizeof(*s->argv));
	if (!s->argv) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < argc; i++)
		if (!(s->argv[i] = strdup(argv[i]))) {
			dp_sup_free(s, 0);
			return NULL;
		}
	s->argc = argc;
	s->backoff_ms = backoff_ms;
	s->max_backoff_ms = max_backoff_ms;
	return s;
}

static struct child *
find(const struct dp_sup *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->c[i].key, key) == 0)
			return &s->c[i];
	return NULL;
}

int
dp_sup_has(const struct dp_sup *s, const char *key)
{
	const struct child *c = find(s, key);

	return c && !c->stopping && (c->pid || c->restart_at);
}

/* arg with every "{}" replaced by key (as GNU find -exec does), malloc'd. */
static char *
substitute(const char *arg, const char *key)
{
	struct dp_buf b = DP_BUF_INIT;
	const char *p = arg, *q;

	while ((q = strstr(p, "{}")) != NULL) {
		if (dp_buf_add(&b, p, (size_t)(q - p)) < 0 || dp_buf_addstr(&b, key) < 0)
			goto fail;
		p = q + 2;
	}
	if (dp_buf_addstr(&b, p) < 0)
		goto fail;
	return dp_buf_detach(&b, NULL);
fail:
	dp_buf_free(&b);
	return NULL;
}

/* In the child: stderr to the pipe, DP_TOPIC, {} replaced; never returns. */
static void
exec_child(const struct dp_sup *s, const char *key, int err_w)
{
	char **argv = calloc(s->argc + 1, sizeof(*argv));

	if (dup2(err_w, STDERR_FILENO) < 0 || !argv)
		_exit(127);
	for (size_t i = 0; i < s->argc; i++)
		if (!(argv[i] = substitute(s->argv[i], key)))
			_exit(127);
	if (setenv("DP_TOPIC", key, 1) < 0)
		_exit(127);
	/* The parent's notify socket, watchdog and metrics address are its own. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	unsetenv("DP_METRICS");
	/* The handlers of the parent are not the child's business. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], argv);
	fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int
spawn(struct dp_sup *s, struct child *c, struct dp_buf *err)
{
	int fd[2];
	pid_t pid;

	if (pipe2(fd, O_CLOEXEC) < 0) {
		dp_buf_msgf(err, "cannot make a pipe for '%s': %s", c->key, strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		dp_buf_msgf(err, "cannot start a child for '%s': %s", c->key, strerror(errno));
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0)
		exec_child(s, c->key, fd[1]);
	close(fd[1]);
	c->pid = pid;
	c->err_fd = fd[0];
	c->started_ms = dp_time_mono_ms();
	c->restart_at = 0;
	dp_info("'%s': started pid %ld", c->key, (long)pid);
	return 0;
}

int
dp_sup_start(struct dp_sup *s, const char *key, struct dp_buf *err)
{
	struct child *c = find(s, key);

	if (c && (c->pid || c->restart_at) && !c->stopping)
		return 0;
	if (c && c->pid) {
		/* Stopping, and wanted again: let it end, then start anew. */
		c->stopping = false;
		c->restart_at = dp_time_mono_ms();
		return 0;
	}
	if (!c) {
		struct child *p = realloc(s->c, (s->n + 1) * sizeof(*p));
		if (!p) {
			dp_buf_msgf(err, "out of memory");
			return -1;
		}
		s->c = p;
		c = &s->c[s->n];
		memset(c, 0, sizeof(*c));
		c->err_fd = -1;
		if (!(c->key = strdup(key))) {
			dp_buf_msgf(err, "out of memory");
			return -1;
		}
		dp_backoff_init(&c->backoff, s->backoff_ms, s->max_backoff_ms, 0.5, 0);
		s->n++;
	}
	c->stopping = false;
	if (spawn(s, c, err) < 0) {
		c->restart_at = dp_time_mono_ms() + dp_backoff_next(&c->backoff, 0);
		return -1;
	}
	return 0;
}

void
dp_sup_stop(struct dp_sup *s, const char *key)
{
	struct child *c = find(s, key);

	if (!c)
		return;
	c->stopping = true;
	c->restart_at = 0;
	if (c->pid)
		kill(c->pid, SIGTERM);
}

/* Write what the child said, one prefixed line at a time. */
static void
copy_lines(struct child *c, bool eof)
{
	struct dp_buf *b = &c->line;
	size_t start = 0;

	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] != '\n')
			continue;
		dp_err("%s: %.*s", c->key, (int)(i - start), b->data + start);
		start = i + 1;
	}
	if (eof && start < b->len) {
		dp_err("%s: %.*s", c->key, (int)(b->len - start), b->data + start);
		start = b->len;
	}
	/* A line longer than 64 KiB goes out in pieces rather than pile up. */
	if (b->len - start > 65536) {
		dp_err("%s: %.*s", c->key, (int)(b->len - start), b->data + start);
		start = b->len;
	}
	if (start == 0)
		return;         /* nothing said (a child silent so far has no buffer at all) */
	memmove(b->data, b->data + start, b->len - start);
	dp_buf_truncate(b, b->len - start);
}

static void
read_stderr(struct child *c)
{
	char buf[8192];
	ssize_t r = read(c->err_fd, buf, sizeof(buf));

	if (r > 0) {
		if (dp_buf_add(&c->line, buf, (size_t)r) < 0)
			dp_err("%s: (a line of its stderr was lost: out of memory)", c->key);
		copy_lines(c, false);
		return;
	}
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	copy_lines(c, true);
	close(c->err_fd);
	c->err_fd = -1;
}

static const char *const retry_labels[] = { "cause", NULL };

/* A child ended: started again after a backoff when it failed (a retry). */
static void
reaped(struct dp_sup *s, struct child *c, int wstatus)
{
	int64_t now = dp_time_mono_ms();
	bool failed = !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0;

	c->pid = 0;
	if (c->err_fd >= 0) {
		/* What it wrote just before it ended is still in the pipe. */
		while (c->err_fd >= 0)
			read_stderr(c);
	}
	if (WIFSIGNALED(wstatus))
		dp_info("'%s': child killed by signal %d", c->key, WTERMSIG(wstatus));
	else
		dp_info("'%s': child exited with status %d", c->key, WEXITSTATUS(wstatus));
	/* A signal to us means stop: a child that died of it too is not restarted. */
	if (c->stopping || dp_sig_stop || (!failed && !c->restart_at))
		return;
	if (now - c->started_ms >= s->max_backoff_ms)
		dp_backoff_reset(&c->backoff);
	int64_t wait = c->restart_at ? 0 : dp_backoff_next(&c->backoff, 0);
	if (failed)
		dp_obs_count(DP_OBS_RETRIES, retry_labels, (const char *const[]){ "child_failed" }, 1);
	if (failed)
		dp_warn("'%s': child %s %d; starting it again in %lld ms", c->key,
		        WIFSIGNALED(wstatus) ? "killed by signal" : "exited with status",
		        WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus),
		        (long long)wait);
	c->restart_at = now + wait;
}

size_t
dp_sup_poll(struct dp_sup *s, int timeout_ms)
{
	struct pollfd *fds = calloc(s->n ? s->n : 1, sizeof(*fds));
	struct child **who = calloc(s->n ? s->n : 1, sizeof(*who));
	size_t nfds = 0, live = 0;

	if (fds && who) {
		for (size_t i = 0; i < s->n; i++)
			if (s->c[i].err_fd >= 0) {
				fds[nfds].fd = s->c[i].err_fd;
				fds[nfds].events = POLLIN;
				who[nfds++] = &s->c[i];
			}
		/* Children are reaped by polling: wake up often enough for that. */
		if (poll(fds, nfds, timeout_ms > 100 ? 100 : timeout_ms) > 0)
			for (size_t i = 0; i < nfds; i++)
				if (fds[i].revents)
					read_stderr(who[i]);
	}
	free(fds);
	free(who);
	for (;;) {
		int wstatus;
		pid_t pid = waitpid(-1, &wstatus, WNOHANG);
		if (pid <= 0)
			break;
		for (size_t i = 0; i < s->n; i++)
			if (s->c[i].pid == pid)
				reaped(s, &s->c[i], wstatus);
	}
	int64_t now = dp_time_mono_ms();
	for (size_t i = 0; i < s->n; i++) {
		struct child *c = &s->c[i];
		if (!c->pid && c->restart_at && now >= c->restart_at && !c->stopping) {
			struct dp_buf err = DP_BUF_INIT;
			if (spawn(s, c, &err) < 0) {
				dp_err("%s", dp_buf_str(&err));
				c->restart_at = now + dp_backoff_next(&c->backoff, 0);
			}
			dp_buf_free(&err);
		}
		live += c->pid || c->restart_at;
	}
	return live;
}

void
dp_sup_free(struct dp_sup *s, int64_t grace_ms)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		s->c[i].stopping = true;
		s->c[i].restart_at = 0;
		if (s->c[i].pid)
			kill(s->c[i].pid, SIGTERM);
	}
	int64_t deadline = dp_time_mono_ms() + grace_ms;
	for (;;) {
		size_t running = 0;
		for (size_t i = 0; i < s->n; i++)
			running += s->c[i].pid != 0;
		if (!running)
			break;
		if (dp_time_mono_ms() >= deadline) {
			for (size_t i = 0; i < s->n; i++)
				if (s->c[i].pid)
					kill(s->c[i].pid, SIGKILL);
			deadline = INT64_MAX;
		}
		dp_sup_poll(s, 50);
	}
	for (size_t i = 0; i < s->n; i++) {
		if (s->c[i].err_fd >= 0)
			close(s->c[i].err_fd);
		dp_buf_free(&s->c[i].line);
		free(s->c[i].key);
	}
	free(s->c);
	for (size_t i = 0; s->argv && i < s->argc; i++)
		free(s->argv[i]);
	free(s->argv);
	free(s);
}
