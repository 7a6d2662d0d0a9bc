/* Preloaded into a broker and its topicds by the tests of forgetting
 * (tests/e2e/test_forget.py) and of wills (test_will_restart.py): while
 * the file named by SLOW_SYNC_MARKER exists, fsync() and fdatasync() of a
 * file whose path holds SLOW_SYNC_MATCH (default "/sessions": the
 * master's store) say so on stderr and wait, until the file is removed or
 * for SLOW_SYNC_MS at most.  (A topicd linked statically is not held.) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int sync_fn(int);

static sync_fn *real_fsync, *real_fdatasync;
static const char *marker, *match = "/sessions";
static long most_ms;

__attribute__((constructor)) static void
slow_sync_init(void)
{
	const char *m = getenv("SLOW_SYNC_MARKER"), *v = getenv("SLOW_SYNC_MS");
	const char *p = getenv("SLOW_SYNC_MATCH");

	/* A copy: the process title is written over the environment. */
	real_fsync = (sync_fn *)dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (sync_fn *)dlsym(RTLD_NEXT, "fdatasync");
	marker = m != NULL && *m != '\0' ? strdup(m) : NULL;
	most_ms = v != NULL ? strtol(v, NULL, 10) : 0;
	if (p != NULL && *p != '\0')
		match = strdup(p);
}

static void
hold(int fd, const char *what)
{
	char link[64], path[PATH_MAX], line[PATH_MAX + 64];
	struct timespec ts = { 0, 10 * 1000000L };
	ssize_t n;
	long waited;
	int len;

	if (marker == NULL || access(marker, F_OK) != 0)
		return;
	(void)snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0)
		return;
	path[n] = '\0';
	if (match == NULL || strstr(path, match) == NULL)
		return;
	len = snprintf(line, sizeof(line), "slow-sync: %s of %s held\n", what, path);
	if (len > 0)
		(void)!write(2, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
	for (waited = 0; waited < most_ms && access(marker, F_OK) == 0; waited += 10)
		(void)nanosleep(&ts, NULL);
}

int
fsync(int fd)
{
	hold(fd, "fsync");
	return real_fsync(fd);
}

int
fdatasync(int fd)
{
	hold(fd, "fdatasync");
	return real_fdatasync(fd);
}
