/*
 * core/sig.h -- signals as dp commands treat them.
 *
 * SIGINT and SIGTERM set a flag that asks for a graceful drain (flush,
 * wait for deliveries, commit, exit).  What the exit status is then is
 * dp_cmd_main()'s (core/frame.h): 128 + the signal when it stopped a run before
 * the end of its input, the run's own status otherwise.  The handler then restores the
 * default action, so a second signal ends the process at once.  The
 * handlers do not use SA_RESTART: a blocking read returns EINTR so the
 * command notices the request promptly; so is SIGALRM, which the
 * watchdog below uses.  SIGPIPE is ignored: a closed
 * stdout shows up as EPIPE on write, which commands end on quietly.
 */
#ifndef DP_SIG_H
#define DP_SIG_H

#include <signal.h>
#include <stdatomic.h>

/*
 * The signal number, or 0.  An atomic, not a volatile sig_atomic_t:
 * threads read it too (dp-publish's reader), and only an atomic makes
 * the handler's store visible to them.  atomic_int is lock-free on every
 * platform dp builds on, which makes the store async-signal-safe
 * (C11 7.14.1.1).
 */
extern atomic_int dp_sig_stop;

int dp_sig_install(void);

/*
 * Ignore SIGPIPE, so that a write to a pipe nobody reads fails with
 * EPIPE (a quiet end, core/out.h) instead of killing the process: first thing
 * in every command, before --help prints a text longer than stdio's
 * buffer.  0 or -1 (errno).
 */
int dp_sig_ignore_pipe(void);

/*
 * Work that a signal cannot stop -- libjq's evaluation, which has no way
 * to be interrupted -- is bracketed with these (one bracket open at a
 * time in the process).  Once a stop signal has come, SIGALRM looks
 * every second while one is open: the same bracket open for two seconds
 * means a program that does not end (last(range(infinite))), and the
 * process then ends by that signal, as a second one would, after one
 * line on stderr, without flushing or committing: what was not
 * committed is read again by the next run.  Cheap: one relaxed store each (and one alarm(2) the first
 * time after a signal).
 */
void dp_sig_busy_enter(void);
void dp_sig_busy_leave(void);

#endif
