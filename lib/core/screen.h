/*
 * core/screen.h -- a view that refreshes in place on a terminal (dp-top),
 * with plain ANSI (ECMA-48) sequences.
 *
 * Like top(1): the view takes the terminal's alternate screen (xterm's
 * private mode 1049, which every terminal emulator and tmux know) so that
 * the shell's screen comes back as it was at the end, hides the cursor,
 * and redraws each frame from the top-left corner, clearing what the last
 * frame left beyond each line and below the last one: no flicker, and no
 * curses (a whole-screen redraw every second or two gains nothing from
 * its screen optimisation, and dp takes no dependency it does not need).
 * When standard input is the terminal too, it is put in non-canonical
 * mode without echo, so that a key (q) acts without Enter.
 *
 * Everything is undone by dp_screen_close, which the command's close step
 * calls whatever happened (a signal included; a second signal kills the
 * process before, as it does every dp command: `reset` repairs that).
 */
#ifndef DP_SCREEN_H
#define DP_SCREEN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

struct dp_screen {
	int in, out;                    /* the descriptors (borrowed) */
	bool open;                      /* the alternate screen was entered */
	bool keys;                      /* stdin's modes were changed */
	bool bold;                      /* escape codes for emphasis ($NO_COLOR unset) */
	unsigned char saved[128];       /* stdin's struct termios before (opaque here) */
};

/*
 * Enter the alternate screen on out (a terminal) and, when in is a
 * terminal, read keys from it one at a time.  0, or -1 with errno (a
 * write that failed).
 */
int dp_screen_open(struct dp_screen *s, int in, int out);

/* Leave it: the shell's screen and the cursor back, stdin's modes restored. */
void dp_screen_close(struct dp_screen *s);

/* A key pressed since the last call, or 0 (never waits). */
int dp_screen_key(struct dp_screen *s);

/* The terminal's columns and rows (0 when unknown). */
void dp_screen_size(const struct dp_screen *s, size_t *cols, size_t *rows);

/*
 * Append to frame the escape codes that draw text (lines ending in '\n')
 * in place of the last frame: from the top-left corner, at most rows
 * lines (0: all), each line's rest cleared, the screen below cleared.
 * head (may be NULL) is one line shown first, in bold.  0 or -1 (memory).
 */
int dp_screen_frame(const struct dp_screen *s, struct dp_buf *frame, const char *head,
                    const char *text, size_t rows);

#endif
