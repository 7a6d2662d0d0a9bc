/* The topic registry: every topic ever used, kept in the master's store
 * ("t" + topic -> ""), so that a wildcard filter finds the topics that
 * exist, also after a restart, and a new topic's cursors are made for the
 * filters that match it. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/topictree.h"
#include "kvstore.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

struct registry {
	struct topictree *names;	/* a tree of levels: a filter walks only
					 * the branches it can match */
};

void
registry_init(struct broker *b)
{
	b->registry = xcalloc(1, sizeof(*b->registry));
	b->registry->names = topictree_new();
	b->ntopics = 0;
}

void
registry_free(struct broker *b)
{
	if (b->registry == NULL)
		return;
	topictree_free(b->registry->names, NULL);
	free(b->registry);
	b->registry = NULL;
}

bool
registry_known(struct broker *b, const char *topic)
{
	return topictree_find(b->registry->names, topic, NULL);
}

static void
remember(struct broker *b, const char *topic)
{
	bool added = false;
	enum topic_err e = topictree_add(b->registry->names, topic, NULL, &added);

	if (e != TOPIC_OK)
		log_warnx("topic %s: not a topic name (%s); left out of the registry", topic,
		    topic_strerror(e));
	else if (added)
		b->ntopics++;
}

uint64_t
registry_add(struct broker *b, const char *topic)
{
	size_t klen;
	char *k;

	klen = (size_t)xasprintf(&k, "t%s", topic);
	if (kv_put(b->store, k, klen, "", 0) == -1)
		fatalx("topic %s: the session store refuses it", topic);
	free(k);
	remember(b, topic);
	return durable_write(b);
}

static int
load_topic(const void *key, size_t klen, void *arg)
{
	struct broker *b = arg;
	char *name = xmemdup((const char *)key + 1, klen - 1);

	remember(b, name);
	free(name);
	return 0;
}

int
registry_load(struct broker *b)
{
	return kv_scan(b->store, "t", 1, load_topic, b) == 0 ? 0 : -1;
}

struct names {
	char	**v;
	size_t	  n, cap;
};

static void
collect(const char *name, void *value, void *arg)
{
	struct names *ns = arg;

	(void)value;
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 16;
		ns->v = xreallocarray(ns->v, ns->cap, sizeof(*ns->v));
	}
	ns->v[ns->n++] = xstrdup(name);
}

/* The names are collected first: fn may open topics, which adds to the
 * registry. */
void
registry_match(struct broker *b, const char *filter, topic_fn *fn, void *arg)
{
	struct names ns = { NULL, 0, 0 };

	(void)topictree_match(b->registry->names, filter, collect, &ns);
	for (size_t i = 0; i < ns.n; i++) {
		fn(b, ns.v[i], arg);
		free(ns.v[i]);
	}
	free(ns.v);
}
