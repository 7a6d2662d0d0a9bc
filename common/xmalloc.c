/* Allocation that cannot fail. */
#include "xmalloc.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatalx("out of memory allocating %zu bytes", n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		fatalx("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		fatalx("out of memory reallocating %zu bytes", n);
	return q;
}

void *
xreallocarray(void *p, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		fatalx("allocation overflow: %zu x %zu", nmemb, size);
	return xrealloc(p, nmemb * size);
}

char *
xstrdup(const char *s)
{
	return xmemdup(s, strlen(s) + 1);
}

void *
xmemdup(const void *p, size_t n)
{
	void *q = xmalloc(n + 1);

	if (n)
		memcpy(q, p, n);
	((char *)q)[n] = '\0';
	return q;
}

int
xasprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(out, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("out of memory formatting a string");
	return n;
}

/* A busy process allocates and frees the same large blocks on every pass
 * of its loop: a topicd its batch and its cache of recent messages, the
 * master the messages it holds for a topicd.  With the allocator's
 * defaults, freed memory above 128 KiB at the top of the heap went back
 * to the kernel and was faulted in again on the next pass (half of a
 * topicd's CPU with 64 KiB messages).  Up to KEEP_FREED bytes of freed
 * memory now stay for reuse, and blocks below MMAP_MIN come from the heap
 * rather than from mmap and munmap each time. */
#define KEEP_FREED	(64 * 1024 * 1024)
#define MMAP_MIN	(32 * 1024 * 1024)

int
xmalloc_keep_freed(void)
{
	if (mallopt(M_TRIM_THRESHOLD, KEEP_FREED) != 1 ||
	    mallopt(M_MMAP_THRESHOLD, MMAP_MIN) != 1)
		return -1;
	return 0;
}
