/* A publisher's staged messages.  A QoS 2 (or JSON-lines) publish is
 * staged in its topicd under the publisher's owner name until its
 * release; the connection remembers the topics it published to, so that
 * when it goes what it staged can be released (it was told it is stored),
 * unless its session keeps it for a PUBREL after a reconnect. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "log.h"
#include "xmalloc.h"

struct topicset {
	RB_ENTRY(topicset) entry;
	char *topic;
};
RB_HEAD(topicset_tree, topicset);

struct owner {
	char			*name;
	struct topicset_tree	 topics;
};

static int
topicset_cmp(struct topicset *a, struct topicset *b)
{
	return strcmp(a->topic, b->topic);
}

RB_PROTOTYPE(topicset_tree, topicset, entry, topicset_cmp)
RB_GENERATE(topicset_tree, topicset, entry, topicset_cmp)

const char *
owner_name(struct client *cl)
{
	return cl->owner != NULL ? cl->owner->name : NULL;
}

/* The owner name its publishes are staged under ("j/BOOT/CONN" for a
 * connection, "m/ID/INCARNATION" for a persistent MQTT session). */
void
owner_set(struct client *cl, const char *name)
{
	if (cl->owner == NULL) {
		cl->owner = xcalloc(1, sizeof(*cl->owner));
		RB_INIT(&cl->owner->topics);
	}
	free(cl->owner->name);
	cl->owner->name = xstrdup(name);
}

void
owner_note_topic(struct client *cl, const char *topic)
{
	struct topicset key = { .topic = (char *)topic }, *t;

	if (cl->owner == NULL || RB_FIND(topicset_tree, &cl->owner->topics, &key) != NULL)
		return;
	t = xcalloc(1, sizeof(*t));
	t->topic = xstrdup(topic);
	RB_INSERT(topicset_tree, &cl->owner->topics, t);
}

static void
release_owner(struct client *cl, const char *topic)
{
	struct child *c = topic_find(cl->b, topic);
	struct rec_release_owner r = { .req = broker_req(cl->b), .owner = cl->owner->name };
	const char *why;
	struct wbuf w;

	if (c == NULL || c->state == CH_FAILED)
		return;
	wbuf_init(&w);
	enc_release_owner(&w, &r);
	/* Held until answered, replayed into a restarted topicd. */
	if (note_submit(c, IPC_RELEASE_OWNER, r.req, &w, &why) == -1)
		log_warnx("topic %s: what %s staged stays staged: %s", topic, cl->desc, why);
	wbuf_free(&w);
}

/* The connection is gone.  release: what it staged is released. */
void
owner_closed(struct client *cl, bool release)
{
	struct topicset *t, *tn;

	if (cl->owner == NULL)
		return;
	RB_FOREACH_SAFE(t, topicset_tree, &cl->owner->topics, tn) {
		if (release)
			release_owner(cl, t->topic);
		RB_REMOVE(topicset_tree, &cl->owner->topics, t);
		free(t->topic);
		free(t);
	}
	free(cl->owner->name);
	free(cl->owner);
	cl->owner = NULL;
}
