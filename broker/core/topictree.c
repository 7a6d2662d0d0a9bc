/* The set of topic names as a tree of levels (see topictree.h).
 *
 * Every node is one level below its parent; the root stands for no level
 * at all.  A node either ends a name (named) or has children: removing a
 * name prunes the nodes left with neither, so every node is a prefix of
 * some name and a walk of a subtree costs at most levels x names found.
 * Children are kept in a red-black tree ordered by the level's bytes.
 *
 * Nothing here recurses: a name may have 65536 levels.  A walk keeps the
 * name of the node it is at in a buffer (names are not stored whole). */
#include "topictree.h"

#include <bsd/sys/tree.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

struct tnode {
	RB_ENTRY(tnode)		 link;		/* among the parent's children */
	RB_HEAD(tt_children, tnode) children;
	struct tnode		*parent;	/* NULL for the root */
	void			*value;
	uint16_t		 len;		/* a valid name has at most 65535 bytes */
	bool			 named;		/* a name ends here */
	char			 level[];	/* len bytes, not NUL-terminated */
};

struct topictree {
	struct tnode	*root;
	size_t		 names;
	size_t		 nodes;
	size_t		 bytes;
	uint64_t	 visits;
};

/* The name of the node a walk is at, NUL-terminated. */
struct namebuf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

/* A '+' level of a filter being matched: its node's children left to try. */
struct plusframe {
	struct tnode	*next;		/* the next child to try, NULL when done */
	const char	*rest;		/* the filter after the '+', NULL if none */
	size_t		 base;		/* the name's length at the '+' node */
	bool		 skip_dollar;	/* the node is the root (MQTT 4.7.2) */
};

struct tmatch {
	struct topictree	*t;
	topictree_cb		*cb;
	void			*arg;
	struct namebuf		 nb;
	struct plusframe	*stack;
	size_t			 depth;
	size_t			 cap;
};

static int
level_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

static int
tnode_cmp(struct tnode *a, struct tnode *b)
{
	return level_cmp(a->level, a->len, b->level, b->len);
}

RB_PROTOTYPE(tt_children, tnode, link, tnode_cmp)
RB_GENERATE(tt_children, tnode, link, tnode_cmp)

static struct tnode *
child_find(struct topictree *t, struct tnode *parent, const char *level, size_t len)
{
	struct tnode *n = RB_ROOT(&parent->children);

	t->visits++;
	while (n != NULL) {
		int c = level_cmp(level, len, n->level, n->len);

		if (c == 0)
			return n;
		n = c < 0 ? RB_LEFT(n, link) : RB_RIGHT(n, link);
	}
	return NULL;
}

/* A node's memory: the level's bytes may start inside the struct's padding. */
static size_t
node_size(size_t len)
{
	size_t size = offsetof(struct tnode, level) + len;

	return size < sizeof(struct tnode) ? sizeof(struct tnode) : size;
}

static struct tnode *
node_new(struct topictree *t, struct tnode *parent, const char *level, size_t len)
{
	struct tnode *n = xcalloc(1, node_size(len));

	RB_INIT(&n->children);
	n->parent = parent;
	n->len = (uint16_t)len;
	memcpy(n->level, level, len);
	if (parent != NULL)
		RB_INSERT(tt_children, &parent->children, n);
	t->nodes++;
	t->bytes += node_size(len);
	return n;
}

static void
node_free(struct topictree *t, struct tnode *n)
{
	if (n->parent != NULL)
		RB_REMOVE(tt_children, &n->parent->children, n);
	t->nodes--;
	t->bytes -= node_size(n->len);
	free(n);
}

/* The node of name, created (with its missing ancestors) if create. */
static struct tnode *
lookup(struct topictree *t, const char *name, bool create)
{
	struct tnode *n = t->root, *c;
	const char *p = name;

	for (;;) {
		const char *e = strchrnul(p, '/');

		if ((c = child_find(t, n, p, (size_t)(e - p))) == NULL) {
			if (!create)
				return NULL;
			c = node_new(t, n, p, (size_t)(e - p));
		}
		n = c;
		if (*e == '\0')
			return n;
		p = e + 1;
	}
}

struct topictree *
topictree_new(void)
{
	struct topictree *t = xcalloc(1, sizeof(*t));

	t->root = node_new(t, NULL, "", 0);
	return t;
}

void
topictree_free(struct topictree *t, void (*free_value)(void *))
{
	struct tnode *n, *c, *p;

	if (t == NULL)
		return;
	/* Frees leaves first, without recursion. */
	n = t->root;
	for (;;) {
		if ((c = RB_ROOT(&n->children)) != NULL) {
			n = c;
			continue;
		}
		if (n->named && free_value != NULL)
			free_value(n->value);
		p = n->parent;
		node_free(t, n);
		if (p == NULL)
			break;
		n = p;
	}
	free(t);
}

enum topic_err
topictree_add(struct topictree *t, const char *name, void *value, bool *added)
{
	enum topic_err e;
	struct tnode *n;

	if ((e = topic_check_name(name, strlen(name))) != TOPIC_OK)
		return e;
	n = lookup(t, name, true);
	if (added != NULL)
		*added = !n->named;
	if (!n->named) {
		n->named = true;
		n->value = value;
		t->names++;
	}
	return TOPIC_OK;
}

bool
topictree_remove(struct topictree *t, const char *name, void **value)
{
	struct tnode *n = lookup(t, name, false), *p;

	if (n == NULL || !n->named)
		return false;
	if (value != NULL)
		*value = n->value;
	n->named = false;
	n->value = NULL;
	t->names--;
	while (n != t->root && !n->named && RB_EMPTY(&n->children)) {
		p = n->parent;
		node_free(t, n);
		n = p;
	}
	return true;
}

bool
topictree_find(struct topictree *t, const char *name, void **value)
{
	struct tnode *n = lookup(t, name, false);

	if (n == NULL || !n->named)
		return false;
	if (value != NULL)
		*value = n->value;
	return true;
}

size_t
topictree_count(const struct topictree *t)
{
	return t->names;
}

void
topictree_stats(const struct topictree *t, struct topictree_stats *st)
{
	st->names = t->names;
	st->nodes = t->nodes - 1;	/* the root is no level */
	st->bytes = t->bytes - node_size(0);
	st->visits = t->visits;
}

static void
nb_reserve(struct namebuf *nb, size_t more)
{
	if (nb->len + more + 1 <= nb->cap)
		return;
	nb->cap = (nb->len + more + 1) * 2;
	nb->s = xrealloc(nb->s, nb->cap);
}

/* Appends n's level: the walk goes down to n. */
static void
nb_push(struct namebuf *nb, const struct tnode *n)
{
	bool slash = n->parent->parent != NULL;

	nb_reserve(nb, n->len + 1);
	if (slash)
		nb->s[nb->len++] = '/';
	memcpy(nb->s + nb->len, n->level, n->len);
	nb->len += n->len;
	nb->s[nb->len] = '\0';
}

/* Takes n's level off: the walk goes up from n. */
static void
nb_pop(struct namebuf *nb, const struct tnode *n)
{
	nb->len -= n->len + (n->parent->parent != NULL);
	nb->s[nb->len] = '\0';
}

static void
nb_truncate(struct namebuf *nb, size_t len)
{
	nb->len = len;
	nb_reserve(nb, 0);
	nb->s[len] = '\0';
}

/* The node after n in a preorder walk of top's subtree, NULL at its end;
 * the buffer follows. */
static struct tnode *
walk_next(const struct tnode *top, struct tnode *n, struct namebuf *nb)
{
	struct tnode *next;

	if ((next = RB_MIN(tt_children, &n->children)) != NULL) {
		nb_push(nb, next);
		return next;
	}
	for (; n != top; n = n->parent) {
		next = RB_NEXT(tt_children, &n->parent->children, n);
		nb_pop(nb, n);
		if (next != NULL) {
			nb_push(nb, next);
			return next;
		}
	}
	return NULL;
}

/* Calls back for top (whose name is in the buffer) and every name below. */
static void
walk_subtree(struct topictree *t, struct tnode *top, struct namebuf *nb,
    topictree_cb *cb, void *arg)
{
	struct tnode *n = top;

	do {
		t->visits++;
		if (n->named)
			cb(nb->s, n->value, arg);
	} while ((n = walk_next(top, n, nb)) != NULL);
}

void
topictree_foreach(struct topictree *t, topictree_cb *cb, void *arg)
{
	struct namebuf nb = { NULL, 0, 0 };

	nb_truncate(&nb, 0);
	walk_subtree(t, t->root, &nb, cb, arg);
	free(nb.s);
}

static void
push_plus(struct tmatch *m, struct tnode *n, const char *rest)
{
	struct plusframe *fr;

	if (m->depth == m->cap) {
		m->cap = m->cap == 0 ? 8 : m->cap * 2;
		m->stack = xreallocarray(m->stack, m->cap, sizeof(*m->stack));
	}
	fr = &m->stack[m->depth++];
	fr->next = RB_MIN(tt_children, &n->children);
	fr->rest = rest;
	fr->base = m->nb.len;
	fr->skip_dollar = n->parent == NULL;
}

/*
 * Follows the filter f (NULL when it is all used) down from n, whose name
 * is in the buffer: a literal level goes to that child; '#' reports n's
 * subtree; '+' leaves a frame, from which the caller tries every child.
 */
static void
follow(struct tmatch *m, struct tnode *n, const char *f)
{
	for (;;) {
		const char *e, *rest;
		size_t len;

		if (f == NULL) {
			if (n->named)
				m->cb(m->nb.s, n->value, m->arg);
			return;
		}
		e = strchrnul(f, '/');
		len = (size_t)(e - f);
		rest = *e == '\0' ? NULL : e + 1;
		if (len == 1 && f[0] == '#') {
			/* At the root, '#' is "+/#": every name, none with '$'. */
			if (n->parent == NULL)
				push_plus(m, n, "#");
			else
				walk_subtree(m->t, n, &m->nb, m->cb, m->arg);
			return;
		}
		if (len == 1 && f[0] == '+') {
			push_plus(m, n, rest);
			return;
		}
		if ((n = child_find(m->t, n, f, len)) == NULL)
			return;
		nb_push(&m->nb, n);
		f = rest;
	}
}

enum topic_err
topictree_match(struct topictree *t, const char *filter, topictree_cb *cb, void *arg)
{
	struct tmatch m = { t, cb, arg, { NULL, 0, 0 }, NULL, 0, 0 };
	enum topic_err e;

	if ((e = topic_check_filter(filter, strlen(filter))) != TOPIC_OK)
		return e;
	nb_truncate(&m.nb, 0);
	follow(&m, t->root, filter);
	while (m.depth > 0) {
		struct plusframe *fr = &m.stack[m.depth - 1];
		struct tnode *c = fr->next;
		const char *rest = fr->rest;

		if (c == NULL) {
			m.depth--;
			continue;
		}
		fr->next = RB_NEXT(tt_children, &c->parent->children, c);
		t->visits++;
		nb_truncate(&m.nb, fr->base);
		if (fr->skip_dollar && c->len > 0 && c->level[0] == '$')
			continue;
		nb_push(&m.nb, c);
		follow(&m, c, rest);	/* may push frames: fr is stale */
	}
	free(m.stack);
	free(m.nb.s);
	return TOPIC_OK;
}
