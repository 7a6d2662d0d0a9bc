/* Preloaded (LD_PRELOAD) into the broker by a fault test, this makes the
 * master's session store meet a nearly full disk: while the file named by
 * JOURNAL_FULL_FLAG exists, a pwrite() to a sessions journal segment of
 * more than JOURNAL_FULL_ROOM bytes fails with ENOSPC (a smaller one still
 * fits).  Other writes are left alone.  Built by the test (cc -shared
 * -fPIC). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t pwrite_fn(int, const void *, size_t, off_t);

static pwrite_fn *real_pwrite;

/* Before main, while the process has one thread. */
__attribute__((constructor)) static void
journal_full_init(void)
{
	real_pwrite = (pwrite_fn *)dlsym(RTLD_NEXT, "pwrite");
}

static int
is_session_journal(int fd)
{
	char link[64], path[4096];
	ssize_t n;

	if (snprintf(link, sizeof(link), "/proc/self/fd/%d", fd) >= (int)sizeof(link))
		return 0;
	if ((n = readlink(link, path, sizeof(path) - 1)) == -1)
		return 0;
	path[n] = '\0';
	return strstr(path, "/sessions.journal.") != NULL;
}

static int
full(int fd, size_t n)
{
	const char *flag = getenv("JOURNAL_FULL_FLAG");
	const char *room = getenv("JOURNAL_FULL_ROOM");

	return flag != NULL && room != NULL && n > strtoul(room, NULL, 10) &&
	    access(flag, F_OK) == 0 && is_session_journal(fd);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (real_pwrite == NULL)		/* called before the constructor */
		journal_full_init();
	if (real_pwrite == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (full(fd, n)) {
		errno = ENOSPC;
		return -1;
	}
	return real_pwrite(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}
