/* The topics in use: a tree by name of their struct child (the topicd
 * and what waits for it).  Opening a topic makes its entry, cold: its
 * topicd starts when something needs it (live.c).  A topic the broker
 * never saw is registered durably (registry.c); its requests wait until
 * the registry entry is durable, so that wildcard filters find the topic
 * after a restart too. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "core/core.h"
#include "log.h"

static int
child_cmp(struct child *a, struct child *b)
{
	return strcmp(a->topic, b->topic);
}

RB_GENERATE(child_tree, child, entry, child_cmp)

struct child *
topic_find(struct broker *b, const char *topic)
{
	struct child key = { .topic = (char *)topic };

	return RB_FIND(child_tree, &b->children, &key);
}

void
child_registered(void *arg)
{
	struct child *c = arg;

	if (c->registered || !durable_reached(c->b, c->need_ticket))
		return;
	c->registered = true;
	if (c->state == CH_READY) {
		child_replay(c);
		live_registered(c);
	}
}

/* max_topics refusals are logged at most once a second, with a count. */
static void
refuse_new_topic(struct broker *b, const char *topic)
{
	int64_t now = mono_ms();

	b->topics_refused++;
	if (now - b->topics_refused_logged < 1000)
		return;
	log_warnx("topic %s refused: %u topics, max_topics is %u (%llu refused so far)",
	    topic, b->ntopics, b->set.max_topics, (unsigned long long)b->topics_refused);
	b->topics_refused_logged = now;
}

bool
topic_reserved(const struct broker *b, const char *topic)
{
	return topic[0] == '$' || strcmp(topic, b->set.dead_letter_topic) == 0;
}

/* The dead-letter topic is not counted in max_topics: what goes there is
 * what could not go anywhere else, and a dead letter refused is lost. */
const char topic_too_many[] = "too many topics (max_topics)";

struct child *
topic_open(struct broker *b, const char *topic, const char **why)
{
	struct child *c = topic_find(b, topic);
	uint64_t ticket = 0;
	bool fresh, again = false;

	*why = NULL;
	if (c != NULL)
		return c;
	if (b->stopping) {
		*why = "the broker is shutting down";
		return NULL;
	}
	if ((fresh = !registry_known(b, topic))) {
		if (b->ntopics >= b->set.max_topics &&
		    strcmp(topic, b->set.dead_letter_topic) != 0) {
			*why = topic_too_many;
			refuse_new_topic(b, topic);
			return NULL;
		}
		ticket = registry_add(b, topic);
	} else
		again = registry_take_recreate(b, topic);
	c = child_create(b, topic);
	c->need_ticket = ticket;
	c->registered = durable_reached(b, ticket);
	if (!c->registered)
		durable_wait(b, ticket, child_registered, c);
	/* Every session whose filters match it gets its cursor; again for a
	 * topic the last master may have died creating (registry.c), whose
	 * first publish, not acknowledged then, is sent again. */
	if (fresh || again)
		sessions_topic_created(b, c);
	return c;
}
