/* Whole writes to a file descriptor. */
#ifndef COMMON_FDIO_H
#define COMMON_FDIO_H

#include <sys/types.h>

#include <stddef.h>

/* Writes all n bytes (partial writes and EINTR are resumed); 0, or -1
 * with errno.  For blocking fds: EAGAIN is an error here. */
int write_all(int fd, const void *p, size_t n);
/* The same at offset off, without moving the file offset. */
int pwrite_all(int fd, const void *p, size_t n, off_t off);

#endif
