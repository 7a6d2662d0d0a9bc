/* The topic registry: every topic ever used, kept in the master's store
 * ("t" + topic -> ""), so that a wildcard filter finds the topics that
 * exist, also after a restart, and a new topic's cursors are made for the
 * filters that match it. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "kvstore.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

struct tname {
	RB_ENTRY(tname)	 entry;
	char		*name;
};
RB_HEAD(tname_tree, tname);

struct registry {
	struct tname_tree names;
};

static int
tname_cmp(struct tname *a, struct tname *b)
{
	return strcmp(a->name, b->name);
}

RB_PROTOTYPE(tname_tree, tname, entry, tname_cmp)
RB_GENERATE(tname_tree, tname, entry, tname_cmp)

void
registry_init(struct broker *b)
{
	b->registry = xcalloc(1, sizeof(*b->registry));
	RB_INIT(&b->registry->names);
	b->ntopics = 0;
}

void
registry_free(struct broker *b)
{
	struct tname *t, *next;

	if (b->registry == NULL)
		return;
	RB_FOREACH_SAFE(t, tname_tree, &b->registry->names, next) {
		RB_REMOVE(tname_tree, &b->registry->names, t);
		free(t->name);
		free(t);
	}
	free(b->registry);
	b->registry = NULL;
}

bool
registry_known(struct broker *b, const char *topic)
{
	struct tname k = { .name = (char *)topic };

	return RB_FIND(tname_tree, &b->registry->names, &k) != NULL;
}

static void
remember(struct broker *b, const char *topic)
{
	struct tname *t = xcalloc(1, sizeof(*t));

	t->name = xstrdup(topic);
	RB_INSERT(tname_tree, &b->registry->names, t);
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

void
registry_match(struct broker *b, const char *filter, topic_fn *fn, void *arg)
{
	struct tname *t, *next;

	RB_FOREACH_SAFE(t, tname_tree, &b->registry->names, next)
		if (topic_matches(filter, t->name))
			fn(b, t->name, arg);
}
