/* A process's state as /proc says it, for the supervision of topicds: one
 * that does not answer may only be waiting for its disk.  The proc root is
 * a parameter, for the tests. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

/* The state letter of a stat file ("pid (comm) S ..."); '?' if unknown. */
static char
stat_state(const char *path)
{
	char buf[512], *p;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return '?';
	while ((n = read(fd, buf, sizeof(buf) - 1)) == -1 && errno == EINTR)
		continue;
	(void)close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	/* comm may hold anything, ')' too. */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ' || p[2] == '\0')
		return '?';
	return p[2];
}

/* Is one of its threads in uninterruptible sleep (the store's worker in
 * a sync, while the loop waits for it)? */
static bool
thread_in_disk_wait(const char *proc, pid_t pid)
{
	char path[PATH_MAX];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%ld/task", proc, (long)pid);
	if ((d = opendir(path)) == NULL)
		return false;
	while (!found && (e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%ld/task/%s/stat", proc, (long)pid, e->d_name);
		found = stat_state(path) == 'D';
	}
	(void)closedir(d);
	return found;
}

char
proc_state(const char *proc, pid_t pid)
{
	char path[PATH_MAX], state;

	snprintf(path, sizeof(path), "%s/%ld/stat", proc, (long)pid);
	state = stat_state(path);
	if (state != '?' && state != 'D' && state != 'T' && state != 't' &&
	    thread_in_disk_wait(proc, pid))
		return 'D';
	return state;
}
