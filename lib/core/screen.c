/*
 * core/screen.c -- a view that refreshes in place on a terminal (core/screen.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "core/screen.h"

_Static_assert(sizeof(struct termios) <= sizeof(((struct dp_screen *)0)->saved),
               "struct dp_screen's saved holds a struct termios");

#define ENTER "\033[?1049h\033[?25l"    /* alternate screen, cursor hidden */
#define LEAVE "\033[?25h\033[?1049l"

static int
put(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int
dp_screen_open(struct dp_screen *s, int in, int out)
{
	const char *nc = getenv("NO_COLOR");
	struct termios t;

	s->in = in;
	s->out = out;
	s->bold = !(nc && *nc);
	if (put(out, ENTER) < 0)
		return -1;
	s->open = true;
	if (isatty(in) && tcgetattr(in, &t) == 0) {
		memcpy(s->saved, &t, sizeof(t));
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		s->keys = tcsetattr(in, TCSANOW, &t) == 0;
	}
	return 0;
}

void
dp_screen_close(struct dp_screen *s)
{
	if (s->keys) {
		struct termios t;
		memcpy(&t, s->saved, sizeof(t));
		tcsetattr(s->in, TCSANOW, &t);
		s->keys = false;
	}
	/* A terminal that is gone has nothing left to restore. */
	if (s->open)
		(void)put(s->out, LEAVE);
	s->open = false;
}

int
dp_screen_key(struct dp_screen *s)
{
	unsigned char c;

	if (!s->keys || read(s->in, &c, 1) != 1)
		return 0;
	return c;
}

void
dp_screen_size(const struct dp_screen *s, size_t *cols, size_t *rows)
{
	struct winsize ws;

	*cols = *rows = 0;
	if (ioctl(s->out, TIOCGWINSZ, &ws) == 0) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
	}
}

int
dp_screen_frame(const struct dp_screen *s, struct dp_buf *frame, const char *head,
                const char *text, size_t rows)
{
	size_t n = 0;

	if (dp_buf_addstr(frame, "\033[H") < 0)
		return -1;
	if (head && (dp_buf_addstr(frame, s->bold ? "\033[1m" : "") < 0 ||
	             dp_buf_addstr(frame, head) < 0 ||
	             dp_buf_addstr(frame, s->bold ? "\033[0m\033[K\n" : "\033[K\n") < 0))
		return -1;
	n += head != NULL;
	for (const char *p = text; *p && (!rows || n < rows); n++) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		/* The last row gets no newline: it would scroll the screen. */
		if (dp_buf_add(frame, p, len) < 0 ||
		    dp_buf_addstr(frame, rows && n + 1 == rows ? "\033[K" : "\033[K\n") < 0)
			return -1;
		p += len + (eol != NULL);
	}
	return dp_buf_addstr(frame, "\033[J");
}
