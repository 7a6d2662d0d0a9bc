/* Whole writes to a file descriptor. */
#include "fdio.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

int
write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}
