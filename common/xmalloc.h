/* Allocation that cannot fail: out of memory is fatal (the supervisor
 * restarts a topicd; the master has nothing sensible to do either). */
#ifndef COMMON_XMALLOC_H
#define COMMON_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
void *xmemdup(const void *p, size_t n);
/* Keeps freed memory for reuse instead of giving it back to the kernel at
 * once (see xmalloc.c); 0, or -1 when the allocator does not take it. */
int   xmalloc_keep_freed(void);
int   xasprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
