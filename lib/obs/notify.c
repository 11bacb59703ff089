/*
 * obs/notify.c -- sd_notify(3) for the rest of obs (obs/notify.h).
 */
#include <errno.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "obs/notify.h"

bool
dp_notify_on(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	return s && *s;
}

int64_t
dp_notify_watchdog_ms(void)
{
	uint64_t usec = 0;

	if (!dp_notify_on() || sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec >= 1000 ? (int64_t)(usec / 1000) : 1;
}

int
dp_notify_send(const char *fields)
{
	int rc;

	if (!dp_notify_on())
		return 0;
	if ((rc = sd_notify(0, fields)) < 0) {
		errno = -rc;
		return -1;
	}
	return 0;
}
