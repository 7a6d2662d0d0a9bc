/* The service manager's readiness protocol (sd_notify(3), for a systemd
 * unit of Type=notify): READY=1 once the listeners accept, RELOADING=1
 * then READY=1 around a SIGHUP, STOPPING=1 when shutdown begins, and
 * STATUS= lines with the live state.  Outside such a unit NOTIFY_SOCKET
 * is not set and every call does nothing. */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "broker.h"
#include "log.h"

/* A failed notification is worth a warning, except for the STATUS=
 * updates, which may come every second. */
static void
check(int rc, const char *what, bool loud)
{
	if (rc >= 0)
		return;
	if (loud)
		log_warnx("cannot notify the service manager (%s): %s", what, strerror(-rc));
	else
		log_debug("cannot notify the service manager (%s): %s", what, strerror(-rc));
}

void
notify_ready(const char *status)
{
	check(sd_notifyf(0, "READY=1\nSTATUS=%s", status), "READY", true);
}

void
notify_reloading(void)
{
	struct timespec ts;
	uint64_t usec = 0;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		usec = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	check(sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading",
	    usec), "RELOADING", true);
}

void
notify_stopping(void)
{
	check(sd_notify(0, "STOPPING=1\nSTATUS=shutting down"), "STOPPING", true);
}

void
notify_status(const char *status)
{
	check(sd_notifyf(0, "STATUS=%s", status), "STATUS", false);
}
