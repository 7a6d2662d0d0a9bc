/* Whole writes to a file descriptor. */
#include "fdio.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

/* off: where, or -1 for the file offset. */
static int
write_loop(int fd, const uint8_t *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = off < 0 ? write(fd, p, n) : pwrite(fd, p, n, off);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		if (off >= 0)
			off += w;
	}
	return 0;
}

int
write_all(int fd, const void *buf, size_t n)
{
	return write_loop(fd, buf, n, -1);
}

int
pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	return write_loop(fd, buf, n, off);
}
