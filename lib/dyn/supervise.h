/*
 * dyn/supervise.h -- child processes kept running, one per key.
 *
 * dp-coord run starts one command per active dynamic topic: the key is
 * the topic's name.  A child that exits non-zero, or is killed by a
 * signal we did not send, is started again after a backoff; one that
 * exits 0 has finished and stays finished.  Stopping a key sends SIGTERM
 * and never restarts it.  Each child's stderr is read through a pipe and
 * copied to ours line by line, prefixed "KEY: ", so the lines of many
 * children stay apart; stdout and stdin are inherited.
 *
 * Children see the key in the environment variable DP_TOPIC, and every
 * "{}" in an argument is replaced by it (as GNU find -exec does), so
 * `sh -c 'dp-tail -t {}'` works.  What speaks for the parent is taken out
 * of their environment: systemd's NOTIFY_SOCKET, WATCHDOG_USEC and
 * WATCHDOG_PID (a child would tell systemd it is ready, or feed the
 * watchdog, for the unit) and DP_METRICS (every child would try the
 * parent's address).  After SIGINT or SIGTERM (core/sig.h) no
 * child is restarted: a terminal's Ctrl-C reaches the children too.
 *
 * Single-threaded: call dp_sup_poll() from the loop that owns it.  SIGCHLD
 * is not used (children are reaped by polling), so the caller's signal
 * handling is left alone.
 */
#ifndef DP_SUPERVISE_H
#define DP_SUPERVISE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct dp_sup;

/*
 * A supervisor for the command argv[0..argc) (copied).  Restarts wait
 * backoff_ms, doubling up to max_backoff_ms, with jitter; a child that
 * ran for at least max_backoff_ms starts the next wait from backoff_ms
 * again.  Returns NULL when memory runs out.
 */
struct dp_sup *dp_sup_new(char *const *argv, size_t argc, int64_t backoff_ms,
                          int64_t max_backoff_ms);

/*
 * Start the child for key, unless one runs or waits to restart.  Returns
 * 0, or -1 with a message in err (fork or pipe failed; it is retried
 * like a crash).
 */
int dp_sup_start(struct dp_sup *s, const char *key, struct dp_buf *err);

/* Stop key's child with SIGTERM; it is not restarted.  No child: nothing. */
void dp_sup_stop(struct dp_sup *s, const char *key);

/* 1 when key has a child running or waiting to restart. */
int dp_sup_has(const struct dp_sup *s, const char *key);

/*
 * Wait up to timeout_ms for something to do, then do it: copy stderr
 * lines, reap children that ended (reporting how on our stderr), start
 * those whose backoff is over.  Returns the number of children running
 * or waiting to restart.
 */
size_t dp_sup_poll(struct dp_sup *s, int timeout_ms);

/*
 * SIGTERM to every child, wait up to grace_ms for them to end, SIGKILL
 * the rest, reap all, then free.  Accepts NULL.
 */
void dp_sup_free(struct dp_sup *s, int64_t grace_ms);

#endif
