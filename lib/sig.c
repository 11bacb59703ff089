/*
 * sig.c -- the SIGINT/SIGTERM flag and SIGPIPE ignored (sig.h).
 */
#include <string.h>

#include "sig.h"

atomic_int dp_sig_stop;

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "a signal handler may only store lock-free atomics");

static void
on_stop(int sig)
{
	dp_sig_stop = sig;
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
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = 0;
	return sigaction(SIGPIPE, &sa, NULL);
}
