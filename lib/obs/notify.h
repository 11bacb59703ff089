/*
 * obs/notify.h -- systemd's notify protocol (Type=notify units): READY=1,
 * WATCHDOG=1, STATUS=..., STOPPING=1 on $NOTIFY_SOCKET, through
 * libsystemd's sd_notify(3).
 *
 * Without $NOTIFY_SOCKET (not started by systemd, or a unit of another
 * type) every call does nothing.  The watchdog interval comes from
 * $WATCHDOG_USEC, for this process only ($WATCHDOG_PID, when set, must
 * be ours: sd_watchdog_enabled(3)).  The environment is left as it is,
 * since sd_notify reads it at every call: a command that starts other
 * programs takes these variables out of their environment itself
 * (dyn/supervise.c), so that a child does not speak for its parent.
 *
 * Sources: sd_notify(3), sd_watchdog_enabled(3), systemd.service(5)
 * (Type=notify, WatchdogSec=, NotifyAccess=), libsystemd 252.
 */
#ifndef DP_NOTIFY_H
#define DP_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Whether $NOTIFY_SOCKET is set. */
bool dp_notify_on(void);

/* The watchdog interval asked for, in ms; 0 when there is none. */
int64_t dp_notify_watchdog_ms(void);

/*
 * Send one message: fields separated by newlines ("READY=1\nSTATUS=x";
 * a value has no newline of its own).  0 (also when off), or -1 with
 * errno (the socket is gone: systemd stopped listening).
 */
int dp_notify_send(const char *fields);

#endif
