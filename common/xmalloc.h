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
int   xasprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
