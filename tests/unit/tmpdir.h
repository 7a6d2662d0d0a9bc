/* A scratch directory in the current one for a test's files. */
#ifndef TESTS_UNIT_TMPDIR_H
#define TESTS_UNIT_TMPDIR_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* buf (size bytes) gets the whole of path, at most size - 1 bytes of it,
 * NUL-terminated; false if it cannot be read. */
static inline bool
tmpdir_slurp(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
	return true;
}

/* dir (n bytes) becomes PREFIX.XXXXXX, created: 0, or -1. */
static inline int
tmpdir_make(char *dir, size_t n, const char *prefix)
{
	snprintf(dir, n, "%s.XXXXXX", prefix);
	return mkdtemp(dir) != NULL ? 0 : -1;
}

/* Removes every file in dir (it holds no directories). */
static inline void
tmpdir_clear(const char *dir)
{
	struct dirent *e;
	char path[300];
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}

static inline void
tmpdir_remove(const char *dir)
{
	tmpdir_clear(dir);
	rmdir(dir);
}

/* A cmocka fixture that is only such a directory. */
struct tmpdir {
	char	dir[32];
};

static inline int
tmpdir_setup(void **state, const char *prefix)
{
	struct tmpdir *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	if (tmpdir_make(t->dir, sizeof(t->dir), prefix) == -1) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static inline int
tmpdir_teardown(void **state)
{
	struct tmpdir *t = *state;

	tmpdir_remove(t->dir);
	free(t);
	return 0;
}

#endif
