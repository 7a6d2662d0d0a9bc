/* What the topic tree and subscription tree tests share: a list of
 * strings compared in sorted order, and random names and filters over a
 * small alphabet of levels (with empty and '$' levels), from a fixed seed. */
#ifndef TESTS_UNIT_ROUTE_TEST_H
#define TESTS_UNIT_ROUTE_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

struct strlist {
	char	**v;
	size_t	  n;
	size_t	  cap;
};

static inline void
strlist_add(struct strlist *l, const char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 16 : l->cap * 2;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = xstrdup(s);
}

static inline void
strlist_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static inline int
strlist_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The strings, sorted, joined with '|' (malloc'd). */
static inline char *
strlist_join(struct strlist *l)
{
	size_t len = 1, o = 0;
	char *s;

	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), strlist_cmp);
	for (size_t i = 0; i < l->n; i++)
		len += strlen(l->v[i]) + 1;
	s = xmalloc(len);
	s[0] = '\0';
	for (size_t i = 0; i < l->n; i++)
		o += (size_t)sprintf(s + o, "%s%s", i > 0 ? "|" : "", l->v[i]);
	return s;
}

/* "x|y|z" sorted, the way strlist_join() writes it (malloc'd). */
static inline char *
sorted_join(const char *list)
{
	struct strlist l = { NULL, 0, 0 };
	char *copy = xstrdup(list), *p = copy, *tok, *s;

	while (*list != '\0' && (tok = strsep(&p, "|")) != NULL)
		strlist_add(&l, tok);
	s = strlist_join(&l);
	strlist_clear(&l);
	free(copy);
	return s;
}

/* xorshift64*: the same sequence on every run. */
static inline uint32_t
rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (uint32_t)((*s * 0x2545f4914f6cdd1dULL) >> 32);
}

static const char *const route_levels[] = { "", "$x", "a", "b", "+" };

/* 1 to 6 levels; a filter's may be '+' and its last may be '#'.  A name
 * of one empty level ("") is not valid: it is drawn again. */
static inline void
random_topic(uint64_t *s, char *buf, size_t cap, int filter)
{
	do {
		unsigned n = 1 + rng_next(s) % 6;
		size_t o = 0;

		buf[0] = '\0';
		for (unsigned i = 0; i < n; i++) {
			const char *lvl = route_levels[rng_next(s) % (filter ? 5 : 4)];

			if (filter && i == n - 1 && rng_next(s) % 4 == 0)
				lvl = "#";
			o += (size_t)snprintf(buf + o, cap - o, "%s%s", i > 0 ? "/" : "", lvl);
		}
	} while (buf[0] == '\0');
}

#endif
