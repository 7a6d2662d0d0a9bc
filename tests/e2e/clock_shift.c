/* Preloaded (LD_PRELOAD) into the broker by an end-to-end test, this
 * shifts the process's wall clock by CLOCK_SHIFT_MS milliseconds
 * (negative: back), as a step of the system clock would (NTP, a VM or an
 * RTC that was ahead): clock_gettime of the realtime clocks, time() and
 * gettimeofday().  The monotonic clocks are left alone.  Built by the
 * test (cc -shared -fPIC). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int clock_gettime_fn(clockid_t, struct timespec *);

static clock_gettime_fn *real_clock_gettime;
static long long shift_ms;

/* Before main, while the process has one thread. */
__attribute__((constructor)) static void
clock_shift_init(void)
{
	const char *v = getenv("CLOCK_SHIFT_MS");

	real_clock_gettime = (clock_gettime_fn *)dlsym(RTLD_NEXT, "clock_gettime");
	shift_ms = v != NULL ? strtoll(v, NULL, 10) : 0;
}

static void
shift(struct timespec *ts)
{
	long long ns = (long long)ts->tv_nsec + (shift_ms % 1000) * 1000000;

	ts->tv_sec += (time_t)(shift_ms / 1000);
	if (ns < 0) {
		ns += 1000000000;
		ts->tv_sec--;
	} else if (ns >= 1000000000) {
		ns -= 1000000000;
		ts->tv_sec++;
	}
	ts->tv_nsec = (long)ns;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc;

	if (real_clock_gettime == NULL)		/* called before the constructor */
		clock_shift_init();
	if (real_clock_gettime == NULL)
		return -1;
	rc = real_clock_gettime(id, ts);
	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		shift(ts);
	return rc;
}

int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;

	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t
time(time_t *t)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return (time_t)-1;
	if (t != NULL)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
