/* What of a file is in the page cache, for tests of what the stores let
 * it forget.  Include after cmocka.h. */
#ifndef TESTS_UNIT_PAGECACHE_H
#define TESTS_UNIT_PAGECACHE_H

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB	(1024 * 1024)
#define TMPFS	0x01021994	/* TMPFS_MAGIC: its pages cannot be dropped */

/* Which MiB of the file at path are wholly in the page cache: bit i. */
static inline uint64_t
resident_mib(const char *path)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t per = (size_t)(MIB / page), n, mibs;
	unsigned char *vec;
	uint64_t bits = 0;
	struct stat sb;
	void *map;
	int fd;

	if ((fd = open(path, O_RDONLY)) == -1 || fstat(fd, &sb) == -1)
		fail_msg("%s: %s", path, strerror(errno));
	mibs = (size_t)sb.st_size / MIB;
	assert_true(mibs > 0 && mibs <= 64);
	n = (size_t)(sb.st_size + page - 1) / (size_t)page;
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	vec = malloc(n);
	assert_int_equal(mincore(map, (size_t)sb.st_size, vec), 0);
	for (size_t m = 0; m < mibs; m++) {
		size_t in = 0;

		for (size_t p = m * per; p < (m + 1) * per; p++)
			in += vec[p] & 1;
		if (in == per)
			bits |= (uint64_t)1 << m;
	}
	free(vec);
	munmap(map, (size_t)sb.st_size);
	close(fd);
	return bits;
}

/* The bits of the MiB below mib. */
static inline uint64_t
below(unsigned mib)
{
	return ((uint64_t)1 << mib) - 1;
}

static inline bool
on_tmpfs(const char *dir)
{
	struct statfs sf;

	assert_int_equal(statfs(dir, &sf), 0);
	return sf.f_type == TMPFS;
}

#endif
