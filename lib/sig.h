/*
 * sig.h -- signals as dp commands treat them.
 *
 * SIGINT and SIGTERM set a flag that asks for a graceful drain (flush,
 * wait for deliveries, commit, exit).  The handler then restores the
 * default action, so a second signal ends the process at once.  The
 * handlers do not use SA_RESTART: a blocking read returns EINTR so the
 * command notices the request promptly.  SIGPIPE is ignored: a closed
 * stdout shows up as EPIPE on write, which commands end on quietly.
 */
#ifndef DP_SIG_H
#define DP_SIG_H

#include <signal.h>

extern volatile sig_atomic_t dp_sig_stop;   /* the signal number, or 0 */

int dp_sig_install(void);

#endif
