/*
 * core/sig.c -- the SIGINT/SIGTERM flag and SIGPIPE ignored (core/sig.h).
 */
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sig.h"

atomic_int dp_sig_stop;

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "a signal handler may only store lock-free atomics");
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2, "a signal handler may only read lock-free atomics");

/* The open bracket's number (0: none), and the next one. */
static atomic_ulong busy;
static unsigned long busy_next;
/* The watchdog: armed, the bracket it saw last, and for how many looks. */
static atomic_int armed;
static unsigned long busy_seen;
static int seen_for;

#define WATCH_LOOKS 2   /* seconds; dp-publish's own remedy (lib/publish/feed.h) acts first */

static void
watch(unsigned long b)
{
	busy_seen = b;
	seen_for = 0;
	alarm(1);
}

void
dp_sig_busy_enter(void)
{
	unsigned long b = ++busy_next ? busy_next : ++busy_next;

	atomic_store_explicit(&busy, b, memory_order_relaxed);
	if (atomic_load(&dp_sig_stop) && !atomic_exchange(&armed, 1))
		watch(b);
}

void
dp_sig_busy_leave(void)
{
	atomic_store_explicit(&busy, 0, memory_order_relaxed);
}

static void
say(const char *s)
{
	ssize_t w = write(2, s, strlen(s));
	(void)w;        /* nothing more can be done about stderr here */
}

/*
 * Every second after a stop signal while jq runs.  Only
 * async-signal-safe calls here (write, alarm, _exit).
 */
static void
on_alarm(int sig)
{
	unsigned long b = atomic_load_explicit(&busy, memory_order_relaxed);

	(void)sig;
	if (!b) {
		atomic_store(&armed, 0);        /* the next bracket arms it again */
		return;
	}
	if (b != busy_seen) {
		watch(b);
		return;
	}
	if (++seen_for < WATCH_LOOKS) {
		alarm(1);
		return;
	}
	say(dp_log_progname());
	say(": a jq program still runs two seconds after the signal, and libjq cannot be "
	    "interrupted: ending by the signal, without flushing or committing\n");
	/*
	 * As a second signal would: the first one's handler was reset
	 * (SA_RESETHAND), so this ends the process by that signal.
	 */
	raise(atomic_load(&dp_sig_stop));
}

static void
on_stop(int sig)
{
	unsigned long b = atomic_load_explicit(&busy, memory_order_relaxed);

	dp_sig_stop = sig;
	if (b && !atomic_exchange(&armed, 1))
		watch(b);
}

int
dp_sig_ignore_pipe(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGPIPE, &sa, NULL);
}

int
dp_sig_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return -1;
	sa.sa_handler = on_alarm;
	sa.sa_flags = 0;
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		return -1;
	return dp_sig_ignore_pipe();
}
