/* The set of subscriptions as a tree of filter levels (see subtree.h).
 *
 * Every node is one filter level below its parent; the root stands for no
 * level at all.  A node's '+' and '#' children have their own pointers,
 * its literal children are kept in a red-black tree ordered by the level's
 * bytes.  The entries of one filter hang at its last node, ordered by
 * owner, with the filter's text (kept once, for the callbacks).  Removing
 * the last entry of a filter prunes the nodes left with neither entries
 * nor children.
 *
 * Nothing here recurses: a name may have 65536 levels. */
#include "subtree.h"

#include <bsd/sys/tree.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

struct sentry {
	RB_ENTRY(sentry)	 link;
	void			*owner;
	uint8_t			 qos;
};

struct snode {
	RB_ENTRY(snode)		 link;		/* among the parent's literal children */
	RB_HEAD(st_children, snode) children;	/* literal levels */
	RB_HEAD(st_entries, sentry) entries;	/* by owner */
	struct snode		*plus;		/* the '+' child */
	struct snode		*hash;		/* the '#' child (it has no children) */
	struct snode		*parent;	/* NULL for the root */
	char			*filter;	/* the filter, while there are entries */
	uint16_t		 len;		/* a valid filter has at most 65535 bytes */
	char			 level[];	/* len bytes, not NUL-terminated */
};

struct subtree {
	struct snode	*root;
	size_t		 entries;
	size_t		 filters;
	size_t		 nodes;
	size_t		 bytes;
	uint64_t	 visits;
};

/* A node to visit, with the rest of the name (NULL when all of it is used). */
struct sframe {
	struct snode	*n;
	const char	*rest;
};

/* The frames of a match; most names have few levels. */
#define SFRAMES_LOCAL	32

static int
level_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

static int
snode_cmp(struct snode *a, struct snode *b)
{
	return level_cmp(a->level, a->len, b->level, b->len);
}

static int
sentry_cmp(struct sentry *a, struct sentry *b)
{
	uintptr_t x = (uintptr_t)a->owner, y = (uintptr_t)b->owner;

	return (x > y) - (x < y);
}

RB_PROTOTYPE(st_children, snode, link, snode_cmp)
RB_GENERATE(st_children, snode, link, snode_cmp)
RB_PROTOTYPE(st_entries, sentry, link, sentry_cmp)
RB_GENERATE(st_entries, sentry, link, sentry_cmp)

static bool
is_plus(const char *level, size_t len)
{
	return len == 1 && level[0] == '+';
}

static bool
is_hash(const char *level, size_t len)
{
	return len == 1 && level[0] == '#';
}

/* A node's memory: the level's bytes may start inside the struct's padding. */
static size_t
node_size(size_t len)
{
	size_t size = offsetof(struct snode, level) + len;

	return size < sizeof(struct snode) ? sizeof(struct snode) : size;
}

/* The literal child of parent for the level, or NULL. */
static struct snode *
literal_find(struct snode *parent, const char *level, size_t len)
{
	struct snode *n = RB_ROOT(&parent->children);

	while (n != NULL) {
		int c = level_cmp(level, len, n->level, n->len);

		if (c == 0)
			return n;
		n = c < 0 ? RB_LEFT(n, link) : RB_RIGHT(n, link);
	}
	return NULL;
}

/* The child of parent for a filter level ('+', '#' or literal), or NULL. */
static struct snode *
child_find(struct snode *parent, const char *level, size_t len)
{
	if (is_plus(level, len))
		return parent->plus;
	if (is_hash(level, len))
		return parent->hash;
	return literal_find(parent, level, len);
}

static struct snode *
child_new(struct subtree *t, struct snode *parent, const char *level, size_t len)
{
	struct snode *n = xcalloc(1, node_size(len));

	RB_INIT(&n->children);
	RB_INIT(&n->entries);
	n->parent = parent;
	n->len = (uint16_t)len;
	memcpy(n->level, level, len);
	if (parent == NULL)
		;
	else if (is_plus(level, len))
		parent->plus = n;
	else if (is_hash(level, len))
		parent->hash = n;
	else
		RB_INSERT(st_children, &parent->children, n);
	t->nodes++;
	t->bytes += node_size(len);
	return n;
}

/* Unlinks n (it has no children and no entries left) and frees it. */
static void
node_free(struct subtree *t, struct snode *n)
{
	struct snode *p = n->parent;

	if (p == NULL)
		;
	else if (p->plus == n)
		p->plus = NULL;
	else if (p->hash == n)
		p->hash = NULL;
	else
		RB_REMOVE(st_children, &p->children, n);
	t->nodes--;
	t->bytes -= node_size(n->len);
	free(n);
}

/* The last node of filter, created (with the missing nodes before it) if
 * create. */
static struct snode *
lookup(struct subtree *t, const char *filter, bool create)
{
	struct snode *n = t->root, *c;
	const char *p = filter;

	for (;;) {
		const char *e = strchrnul(p, '/');
		size_t len = (size_t)(e - p);

		if ((c = child_find(n, p, len)) == NULL) {
			if (!create)
				return NULL;
			c = child_new(t, n, p, len);
		}
		n = c;
		if (*e == '\0')
			return n;
		p = e + 1;
	}
}

static struct sentry *
entry_find(struct snode *n, void *owner)
{
	struct sentry key;

	key.owner = owner;
	return RB_FIND(st_entries, &n->entries, &key);
}

static void
entry_free(struct subtree *t, struct snode *n, struct sentry *en)
{
	RB_REMOVE(st_entries, &n->entries, en);
	free(en);
	t->entries--;
	t->bytes -= sizeof(*en);
	if (RB_EMPTY(&n->entries)) {
		t->bytes -= strlen(n->filter) + 1;
		free(n->filter);
		n->filter = NULL;
		t->filters--;
	}
}

/* Frees n and the ancestors that are left with neither entries nor
 * children, up to the root. */
static void
prune(struct subtree *t, struct snode *n)
{
	while (n != t->root && RB_EMPTY(&n->entries) && RB_EMPTY(&n->children) &&
	    n->plus == NULL && n->hash == NULL) {
		struct snode *p = n->parent;

		node_free(t, n);
		n = p;
	}
}

struct subtree *
subtree_new(void)
{
	struct subtree *t = xcalloc(1, sizeof(*t));

	t->root = child_new(t, NULL, "", 0);
	return t;
}

/* Some child of n, unlinked from it, or NULL if it has none. */
static struct snode *
child_take(struct snode *n)
{
	struct snode *c;

	if ((c = n->plus) != NULL)
		n->plus = NULL;
	else if ((c = n->hash) != NULL)
		n->hash = NULL;
	else if ((c = RB_ROOT(&n->children)) != NULL)
		RB_REMOVE(st_children, &n->children, c);
	return c;
}

void
subtree_free(struct subtree *t)
{
	struct snode *n, *c, *p;
	struct sentry *en;

	if (t == NULL)
		return;
	/* Frees leaves first, without recursion. */
	n = t->root;
	for (;;) {
		if ((c = child_take(n)) != NULL) {
			n = c;
			continue;
		}
		while ((en = RB_ROOT(&n->entries)) != NULL)
			entry_free(t, n, en);
		p = n->parent;
		n->parent = NULL;	/* already unlinked */
		node_free(t, n);
		if (p == NULL)
			break;
		n = p;
	}
	free(t);
}

enum topic_err
subtree_add(struct subtree *t, const char *filter, void *owner, uint8_t qos,
    bool *added)
{
	size_t flen = strlen(filter);
	struct snode *n;
	struct sentry *en;
	enum topic_err e;

	if ((e = topic_check_filter(filter, flen)) != TOPIC_OK)
		return e;
	n = lookup(t, filter, true);
	if (added != NULL)
		*added = false;
	if ((en = entry_find(n, owner)) != NULL) {
		en->qos = qos;
		return TOPIC_OK;
	}
	if (RB_EMPTY(&n->entries)) {
		n->filter = xmemdup(filter, flen + 1);
		t->bytes += flen + 1;
		t->filters++;
	}
	en = xcalloc(1, sizeof(*en));
	en->owner = owner;
	en->qos = qos;
	RB_INSERT(st_entries, &n->entries, en);
	t->entries++;
	t->bytes += sizeof(*en);
	if (added != NULL)
		*added = true;
	return TOPIC_OK;
}

bool
subtree_remove(struct subtree *t, const char *filter, void *owner)
{
	struct snode *n = lookup(t, filter, false);
	struct sentry *en;

	if (n == NULL || (en = entry_find(n, owner)) == NULL)
		return false;
	entry_free(t, n, en);
	prune(t, n);
	return true;
}

size_t
subtree_remove_owner(struct subtree *t, void *owner, const char *const *filters,
    size_t n)
{
	size_t removed = 0;

	for (size_t i = 0; i < n; i++)
		if (subtree_remove(t, filters[i], owner))
			removed++;
	return removed;
}

bool
subtree_find(struct subtree *t, const char *filter, void *owner, uint8_t *qos)
{
	struct snode *n = lookup(t, filter, false);
	struct sentry *en;

	if (n == NULL || (en = entry_find(n, owner)) == NULL)
		return false;
	if (qos != NULL)
		*qos = en->qos;
	return true;
}

size_t
subtree_count(const struct subtree *t)
{
	return t->entries;
}

void
subtree_stats(const struct subtree *t, struct subtree_stats *st)
{
	st->entries = t->entries;
	st->filters = t->filters;
	st->nodes = t->nodes - 1;	/* the root is no level */
	st->bytes = t->bytes - node_size(0);
	st->visits = t->visits;
}

static void
report(struct subtree *t, struct snode *n, subtree_cb *cb, void *arg)
{
	struct sentry *en;

	t->visits++;
	RB_FOREACH(en, st_entries, &n->entries)
		cb(en->owner, en->qos, n->filter, arg);
}

/*
 * Visits n, reached with the name's levels before rest: its '#' child
 * matches; at the end of the name n matches too (and so does its '#'
 * child: "a/#" matches "a"); else the literal and '+' children are left
 * to visit with the next level.  Returns the number of frames pushed.
 */
static size_t
visit(struct subtree *t, const struct sframe *fr, struct sframe *push,
    subtree_cb *cb, void *arg)
{
	struct snode *n = fr->n, *c;
	const char *lvl = fr->rest, *e;
	bool dollar = n->parent == NULL && lvl[0] == '$';	/* MQTT 4.7.2 */
	size_t pushed = 0;

	t->visits++;
	if (n->hash != NULL && !dollar)
		report(t, n->hash, cb, arg);
	e = strchrnul(lvl, '/');
	if (n->plus != NULL && !dollar)
		push[pushed++] = (struct sframe){ n->plus, *e == '\0' ? NULL : e + 1 };
	if ((c = literal_find(n, lvl, (size_t)(e - lvl))) != NULL)
		push[pushed++] = (struct sframe){ c, *e == '\0' ? NULL : e + 1 };
	return pushed;
}

enum topic_err
subtree_match(struct subtree *t, const char *name, subtree_cb *cb, void *arg)
{
	struct sframe local[SFRAMES_LOCAL], *stack = local;
	size_t len = strlen(name), depth = 0, max;
	enum topic_err e;

	if ((e = topic_check_name(name, len)) != TOPIC_OK)
		return e;
	/* A depth-first walk: each level leaves at most one frame waiting. */
	max = topic_levels(name, len) + 2;
	if (max > SFRAMES_LOCAL)
		stack = xreallocarray(NULL, max, sizeof(*stack));
	stack[depth++] = (struct sframe){ t->root, name };
	while (depth > 0) {
		struct sframe fr = stack[--depth];

		if (fr.rest != NULL) {
			depth += visit(t, &fr, stack + depth, cb, arg);
			continue;
		}
		report(t, fr.n, cb, arg);
		if (fr.n->hash != NULL)
			report(t, fr.n->hash, cb, arg);
	}
	if (stack != local)
		free(stack);
	return TOPIC_OK;
}
