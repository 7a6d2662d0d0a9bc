/* libFuzzer target for the routing trees (broker/core/topictree.c and
 * broker/core/subtree.c).
 *
 * The input is a sequence of lines, each one operation:
 *   a NAME          topictree_add        A OQ FILTER    subtree_add
 *   r NAME          topictree_remove     R O FILTER     subtree_remove
 *   f NAME          topictree_find       F O FILTER     subtree_find
 *   m FILTER        topictree_match      M NAME         subtree_match
 *                                        O O            subtree_remove_owner
 * O is an owner (the byte's value mod 16), Q a qos (the byte's low two
 * bits); one byte (a blank, say) separates them from the string, which is
 * the rest of the line up to a NUL.  Any other line is skipped.
 *
 * Oracle: a naive list of names and one of entries, matched with
 * topic_matches(): every answer (validity, added, found, qos, the names or
 * entries a match reports, each exactly once, and the counts) must be the
 * list's.  At the end the trees are either emptied (and must hold no node
 * and no memory) or freed whole; the sanitizers catch any leak. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/subtree.h"
#include "core/topictree.h"
#include "topic.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

#define NOWNERS	16
static char owners[NOWNERS];	/* their addresses are the owners */

struct sub {
	char	*filter;
	int	 owner;
	uint8_t	 qos;
	bool	 seen;
};

struct route {
	struct topictree *tt;
	struct subtree	 *st;
	char		**names;	/* each name is also its value in tt */
	bool		 *seen;
	size_t		  nnames;
	size_t		  capnames;
	struct sub	 *subs;
	size_t		  nsubs;
	size_t		  capsubs;
};

static ssize_t
name_index(const struct route *r, const char *name)
{
	for (size_t i = 0; i < r->nnames; i++)
		if (strcmp(r->names[i], name) == 0)
			return (ssize_t)i;
	return -1;
}

static ssize_t
sub_index(const struct route *r, const char *filter, int owner)
{
	for (size_t i = 0; i < r->nsubs; i++)
		if (r->subs[i].owner == owner && strcmp(r->subs[i].filter, filter) == 0)
			return (ssize_t)i;
	return -1;
}

static void
topic_add(struct route *r, const char *name)
{
	char *copy = xstrdup(name);
	bool added = false;
	enum topic_err e = topictree_add(r->tt, name, copy, &added);

	CHECK(e == topic_check_name(name, strlen(name)));
	if (e != TOPIC_OK || !added) {
		CHECK(e != TOPIC_OK || name_index(r, name) >= 0);
		free(copy);
		return;
	}
	CHECK(name_index(r, name) < 0);
	if (r->nnames == r->capnames) {
		r->capnames = r->capnames == 0 ? 16 : r->capnames * 2;
		r->names = xreallocarray(r->names, r->capnames, sizeof(*r->names));
		r->seen = xreallocarray(r->seen, r->capnames, sizeof(*r->seen));
	}
	r->names[r->nnames++] = copy;
}

static void
topic_remove(struct route *r, const char *name)
{
	ssize_t i = name_index(r, name);
	void *v = NULL;

	CHECK(topictree_remove(r->tt, name, &v) == (i >= 0));
	if (i < 0)
		return;
	CHECK(v == r->names[i]);
	free(r->names[i]);
	r->names[i] = r->names[--r->nnames];
}

static void
topic_find(struct route *r, const char *name)
{
	ssize_t i = name_index(r, name);
	void *v = NULL;

	CHECK(topictree_find(r->tt, name, &v) == (i >= 0));
	CHECK(i < 0 || v == r->names[i]);
}

static void
topic_seen(const char *name, void *value, void *arg)
{
	struct route *r = arg;
	ssize_t i = name_index(r, name);

	CHECK(i >= 0 && value == r->names[i] && !r->seen[i]);
	r->seen[i] = true;
}

static void
topic_match(struct route *r, const char *filter)
{
	enum topic_err e;

	for (size_t i = 0; i < r->nnames; i++)
		r->seen[i] = false;
	e = topictree_match(r->tt, filter, topic_seen, r);
	CHECK(e == topic_check_filter(filter, strlen(filter)));
	for (size_t i = 0; i < r->nnames; i++)
		CHECK(r->seen[i] == (e == TOPIC_OK && topic_matches(filter, r->names[i])));
}

static void
sub_add(struct route *r, int owner, uint8_t qos, const char *filter)
{
	ssize_t i = sub_index(r, filter, owner);
	bool added = false;
	enum topic_err e = subtree_add(r->st, filter, &owners[owner], qos, &added);

	CHECK(e == topic_check_filter(filter, strlen(filter)));
	if (e != TOPIC_OK)
		return;
	CHECK(added == (i < 0));
	if (i >= 0) {
		r->subs[i].qos = qos;
		return;
	}
	if (r->nsubs == r->capsubs) {
		r->capsubs = r->capsubs == 0 ? 16 : r->capsubs * 2;
		r->subs = xreallocarray(r->subs, r->capsubs, sizeof(*r->subs));
	}
	r->subs[r->nsubs++] = (struct sub){ xstrdup(filter), owner, qos, false };
}

static void
sub_drop(struct route *r, size_t i)
{
	free(r->subs[i].filter);
	r->subs[i] = r->subs[--r->nsubs];
}

static void
sub_remove(struct route *r, int owner, const char *filter)
{
	ssize_t i = sub_index(r, filter, owner);

	CHECK(subtree_remove(r->st, filter, &owners[owner]) == (i >= 0));
	if (i >= 0)
		sub_drop(r, (size_t)i);
}

static void
sub_find(struct route *r, int owner, const char *filter)
{
	ssize_t i = sub_index(r, filter, owner);
	uint8_t qos = 0xff;

	CHECK(subtree_find(r->st, filter, &owners[owner], &qos) == (i >= 0));
	CHECK(i < 0 || qos == r->subs[i].qos);
}

/* The owner's filters, and one it does not have (unless the input gave
 * it that one too). */
static void
sub_remove_owner(struct route *r, int owner)
{
	const char **mine = xreallocarray(NULL, r->nsubs + 1, sizeof(*mine));
	size_t n = 0, had = 0;

	for (size_t i = 0; i < r->nsubs; i++)
		if (r->subs[i].owner == owner)
			mine[n++] = r->subs[i].filter;
	had = n;
	if (sub_index(r, "no/such/filter/#", owner) < 0)
		mine[n++] = "no/such/filter/#";
	CHECK(subtree_remove_owner(r->st, &owners[owner], mine, n) == had);
	free(mine);
	for (size_t i = r->nsubs; i-- > 0;)
		if (r->subs[i].owner == owner)
			sub_drop(r, i);
}

static void
sub_seen(void *owner, uint8_t qos, const char *filter, void *arg)
{
	struct route *r = arg;
	ssize_t i;

	CHECK((char *)owner >= owners && (char *)owner < owners + NOWNERS);
	i = sub_index(r, filter, (int)((char *)owner - owners));
	CHECK(i >= 0 && !r->subs[i].seen && r->subs[i].qos == qos);
	r->subs[i].seen = true;
}

static void
sub_match(struct route *r, const char *name)
{
	enum topic_err e;

	for (size_t i = 0; i < r->nsubs; i++)
		r->subs[i].seen = false;
	e = subtree_match(r->st, name, sub_seen, r);
	CHECK(e == topic_check_name(name, strlen(name)));
	for (size_t i = 0; i < r->nsubs; i++)
		CHECK(r->subs[i].seen ==
		    (e == TOPIC_OK && topic_matches(r->subs[i].filter, name)));
}

/* One line: p[0..n), no '\n'. */
static void
run_line(struct route *r, const uint8_t *p, size_t n)
{
	size_t skip = 2;	/* the operation and the separator */
	int owner = n > 1 ? p[1] % NOWNERS : 0;
	uint8_t qos = n > 2 ? p[2] & 3 : 0;
	char *s;

	if (n == 0)
		return;
	if (p[0] != '\0' && strchr("ARFO", p[0]) != NULL)
		skip++;
	if (p[0] == 'A')
		skip++;
	s = xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	if (skip > n)
		skip = n;
	switch (p[0]) {
	case 'a': topic_add(r, s + skip); break;
	case 'r': topic_remove(r, s + skip); break;
	case 'f': topic_find(r, s + skip); break;
	case 'm': topic_match(r, s + skip); break;
	case 'A': sub_add(r, owner, qos, s + skip); break;
	case 'R': sub_remove(r, owner, s + skip); break;
	case 'F': sub_find(r, owner, s + skip); break;
	case 'M': sub_match(r, s + skip); break;
	case 'O': sub_remove_owner(r, owner); break;
	default: break;
	}
	free(s);
	CHECK(topictree_count(r->tt) == r->nnames);
	CHECK(subtree_count(r->st) == r->nsubs);
}

static void
count_name(const char *name, void *value, void *arg)
{
	CHECK(strcmp(name, value) == 0);
	(*(size_t *)arg)++;
}

/* Removes everything through the API: nothing may be left behind. */
static void
empty_trees(struct route *r)
{
	struct topictree_stats ts;
	struct subtree_stats ss;

	while (r->nnames > 0)
		topic_remove(r, r->names[r->nnames - 1]);
	for (int o = 0; o < NOWNERS; o++)
		sub_remove_owner(r, o);
	topictree_stats(r->tt, &ts);
	subtree_stats(r->st, &ss);
	CHECK(ts.names == 0 && ts.nodes == 0 && ts.bytes == 0);
	CHECK(ss.entries == 0 && ss.filters == 0 && ss.nodes == 0 && ss.bytes == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct route r = { topictree_new(), subtree_new(), NULL, NULL, 0, 0, NULL, 0, 0 };
	const uint8_t *p = data, *end = data + size, *nl;
	size_t n = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		run_line(&r, p, (size_t)(nl - p));
		p = nl + 1;
	}
	topictree_foreach(r.tt, count_name, &n);
	CHECK(n == r.nnames);
	if (size % 2 == 1)
		empty_trees(&r);
	topictree_free(r.tt, NULL);
	subtree_free(r.st);
	for (size_t i = 0; i < r.nnames; i++)
		free(r.names[i]);
	for (size_t i = 0; i < r.nsubs; i++)
		free(r.subs[i].filter);
	free(r.names);
	free(r.seen);
	free(r.subs);
	return 0;
}
