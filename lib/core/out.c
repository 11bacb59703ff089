#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/out.h"

struct dp_out {
	int fd;
	int err;
	char *buf;
	size_t len;
	size_t cap;
};

struct dp_out *
dp_out_new(int fd, size_t bufsize)
{
	struct dp_out *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->fd = fd;
	o->cap = bufsize ? bufsize : 64 * 1024;
	o->buf = malloc(o->cap);
	if (!o->buf) {
		free(o);
		return NULL;
	}
	return o;
}

static int
write_all(struct dp_out *o, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(o->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			o->err = errno;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
dp_out_flush(struct dp_out *o)
{
	if (o->err) {
		errno = o->err;
		return -1;
	}
	if (o->len == 0)
		return 0;
	int rc = write_all(o, o->buf, o->len);
	o->len = 0;
	return rc;
}

int
dp_out_write(struct dp_out *o, const void *p, size_t n)
{
	if (o->err) {
		errno = o->err;
		return -1;
	}
	if (o->len + n > o->cap) {
		if (dp_out_flush(o) < 0)
			return -1;
		if (n > o->cap)
			return write_all(o, p, n);
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

size_t dp_out_pending(const struct dp_out *o) { return o->len; }
size_t dp_out_room(const struct dp_out *o) { return o->cap - o->len; }
int dp_out_closed(const struct dp_out *o) { return o->err == EPIPE; }
int dp_out_error(const struct dp_out *o) { return o->err; }

int
dp_out_gone(struct dp_out *o)
{
	struct pollfd p = { o->fd, 0, 0 };

	if (o->err)
		return o->err == EPIPE;
	/*
	 * POLLERR and POLLHUP are reported whatever the events asked for:
	 * Linux's pipe_poll sets POLLERR on a pipe with no reader left, and a
	 * socket whose peer is gone shows POLLHUP.  A file or a terminal
	 * shows neither.
	 */
	if (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP))) {
		o->err = EPIPE;
		return 1;
	}
	return 0;
}

int
dp_out_free(struct dp_out *o)
{
	int rc;

	if (!o)
		return 0;
	rc = dp_out_flush(o);
	free(o->buf);
	free(o);
	return rc;
}

int
dp_out_close_stdout(void)
{
	static int closed;
	int rc = 0;

	if (closed)
		return 0;       /* a second call is harmless: fclose once only */
	closed = 1;
	if (fflush(stdout) != 0)
		rc = -1;
	int e = errno;
	if (fclose(stdout) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	errno = e;
	return rc;
}
