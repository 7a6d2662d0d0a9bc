/* Preloaded into a broker and its topicds by the tests of forgetting
 * (tests/e2e/test_forget.py): unlink() of a topic's journal segment or
 * lock file whose path holds SLOW_UNLINK_MATCH says so on stderr (the
 * broker's log) and waits SLOW_UNLINK_MS first, so that a test can kill
 * a topicd while it deletes its store. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int unlink_fn(const char *);

static unlink_fn *real_unlink;
static const char *match;
static long delay_ms;

__attribute__((constructor)) static void
slow_unlink_init(void)
{
	const char *v = getenv("SLOW_UNLINK_MS"), *m = getenv("SLOW_UNLINK_MATCH");

	/* A copy: the process title is written over the environment. */
	real_unlink = (unlink_fn *)dlsym(RTLD_NEXT, "unlink");
	match = m != NULL ? strdup(m) : NULL;
	delay_ms = v != NULL ? strtol(v, NULL, 10) : 0;
}

int
unlink(const char *path)
{
	size_t len = strlen(path);

	if (match != NULL && *match != '\0' && strstr(path, "/topics/") != NULL &&
	    strstr(path, match) != NULL && (strstr(path, ".journal.") != NULL ||
	    (len > 5 && strcmp(path + len - 5, ".lock") == 0))) {
		char line[512];
		struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
		int n = snprintf(line, sizeof(line), "slow-unlink: %s\n", path);

		if (n > 0)
			(void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
		while (nanosleep(&ts, &ts) == -1)
			;
	}
	return real_unlink(path);
}
