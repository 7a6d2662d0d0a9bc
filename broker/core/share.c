/* Shared subscriptions ($share/GROUP/FILTER) in the master.  A session's
 * share filter is routed by its FILTER; in every topic it matches, the
 * session is a member of the group, whose cursor its topicd keeps under
 * the key "g/GROUP/FILTER" (ipc_proto.h).  An online member is an
 * attachment (in its client's shared list) that names the group and the
 * session; an offline persistent one is registered without a socket.
 * A member leaves when the filter is unsubscribed or its session ends
 * (the group goes with its last member), and only goes offline while
 * its persistent session waits for it.  The protocols only pass the
 * filter to session_add_filter and session_attach_all, and get the
 * group's deliveries on the session's delivery socket, as any other. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

/* "g/GROUP/FILTER" for a valid share filter (malloc'd). */
static char *
group_key(const char *filter)
{
	char *k;

	xasprintf(&k, "%s%s", SHARE_KEY_PREFIX, filter + strlen(TOPIC_SHARE_PREFIX));
	return k;
}

const char *
filter_route(const char *filter)
{
	const char *sub;

	return topic_share_split(filter, &sub) == 1 ? sub : filter;
}

static struct attachment *
share_find(struct client *cl, struct child *c, const char *gkey)
{
	struct attachment *a;

	TAILQ_FOREACH(a, &cl->shared, by_client)
		if (a->child == c && strcmp(a->group, gkey) == 0)
			return a;
	return NULL;
}

/* The client's session becomes (or stays) an online member of the group
 * in topic c, with the settings r.  A member whose settings do not change
 * is left alone. */
static void
share_attach_topic(struct client *cl, struct child *c, const struct rec_attach *r,
    const char *gkey)
{
	struct attachment *a = share_find(cl, c, gkey);

	if (a != NULL && a->a.qos == r->qos && a->a.window == r->window && a->a.mode == r->mode)
		return;
	if (a == NULL) {
		a = xcalloc(1, sizeof(*a));
		a->client = cl;
		a->child = c;
		a->group = xstrdup(gkey);
		TAILQ_INSERT_TAIL(&c->attached, a, by_child);
		TAILQ_INSERT_TAIL(&cl->shared, a, by_client);
	}
	a->a = *r;
	a->a.subkey = a->group;
	a->a.member = cl->session->key;
	/* This connection is a member there already: it keeps what it has
	 * in flight, and only its settings change. */
	if (a->sent && r->mode == MODE_MQTT)
		a->a.flags |= AF_SAME_CONN;
	attach_go(a);
}

static void leave(struct child *, const char *, const char *, bool);

/* The session may not read topic c (the ACL): it is no member of group
 * gkey there.  Left as drop_topic leaves a topic: an online session where
 * it had joined, a persistent one that is offline wherever it may be
 * registered. */
static void
share_denied(struct session *s, struct child *c, const char *gkey)
{
	struct attachment *a = s->cl != NULL ? share_find(s->cl, c, gkey) : NULL;
	bool sent = a != NULL ? a->sent : s->cl == NULL;

	if (s->cl != NULL && a == NULL)
		return;
	if (a != NULL)
		attach_drop(a, s->persistent);
	if (s->persistent || sent)
		leave(c, gkey, s->key, s->mode == MODE_MQTT);
}

struct sync_arg {
	struct child	*c;
	bool		 may;		/* the session may read the topic */
};

/* One of the session's shares, if it matches the topic. */
static void
sync_share(struct session *s, const struct filter *f, void *argp)
{
	struct sync_arg *arg = argp;
	struct rec_attach a;
	const char *sub;
	char *gkey;

	if (topic_share_split(f->filter, &sub) != 1 || !topic_matches(sub, arg->c->topic))
		return;
	gkey = group_key(f->filter);
	if (!arg->may) {
		share_denied(s, arg->c, gkey);
		free(gkey);
		return;
	}
	session_attach_settings(s, f->qos, &a);
	a.subkey = gkey;
	a.member = s->key;
	if (s->cl != NULL)
		share_attach_topic(s->cl, arg->c, &a, gkey);
	else if (s->persistent)
		attach_offline(arg->c, &a);
	free(gkey);
}

/* Brings the session's memberships in topic c in line with its share
 * filters and its ACL: a member of each group whose filter matches
 * (online, or registered for a persistent session that is offline) where
 * it may read, of none where it may not. */
void
session_sync_shares(struct session *s, struct child *c)
{
	struct sync_arg arg = { c, session_may_read(s, c->topic) };

	session_scan(s, sync_share, &arg);
}

/* Is the session, offline, a member of a group in cold topic (one of
 * its share filters matches) that the topic's last IDLE, listing every
 * subscriber, does not name?  Its registration there was lost. */
bool
session_share_unregistered(struct session *s, const char *topic)
{
	const struct topic_info *ti = registry_info(s->b, topic);
	bool absent = false;
	const char *sub;
	struct wbuf w;
	char *gkey;

	wbuf_init(&w);
	for (size_t i = 0; i < s->nfilters && !absent; i++) {
		if (topic_share_split(s->filters[i].filter, &sub) != 1 ||
		    !topic_matches(sub, topic))
			continue;
		gkey = group_key(s->filters[i].filter);
		wbuf_reset(&w);
		absent = topic_info_sub(ti, idle_member_key(&w, gkey, s->key)) == SUB_ABSENT;
		free(gkey);
	}
	wbuf_free(&w);
	return absent;
}

/* The member leaves the group in topic c; forget: the group goes with
 * its last member (an MQTT session's), else its cursor stays (a
 * JSON-lines consumer's, like its own). */
static void
leave(struct child *c, const char *gkey, const char *member, bool forget)
{
	struct rec_unsub r = { .req = broker_req(c->b), .subkey = gkey,
			       .flags = forget ? UF_FORGET : 0, .member = member };
	const char *why;
	struct wbuf w;

	if (held_unsub_needless(c, gkey, member, forget))
		return;
	wbuf_init(&w);
	enc_unsub(&w, &r);
	(void)note_submit(c, IPC_UNSUB, r.req, &w, &why);	/* a failed topic: nothing to do */
	wbuf_free(&w);
}

/* A share filter was removed from an online session (UNSUBSCRIBE, JSON
 * UNSUB): it leaves the group in every topic it had joined. */
void
share_filter_removed(struct session *s, const char *filter)
{
	struct attachment *a, *next;
	char *gkey;

	if (topic_share_split(filter, NULL) != 1 || s->cl == NULL)
		return;
	gkey = group_key(filter);
	TAILQ_FOREACH_SAFE(a, &s->cl->shared, by_client, next) {
		struct child *c = a->child;
		bool sent = a->sent;

		if (strcmp(a->group, gkey) != 0)
			continue;
		attach_drop(a, false);
		if (s->persistent || sent)
			leave(c, gkey, s->key, s->mode == MODE_MQTT);
		if (s->ext_ops != NULL)
			s->ext_ops->topic_dropped(s, c->topic, filter);
	}
	free(gkey);
}

/* The session's client goes: a persistent session's memberships wait
 * offline (its messages in flight go to the other members), a clean
 * session's end. */
void
share_client_gone(struct session *s)
{
	struct client *cl = s->cl;
	struct attachment *a;

	while ((a = TAILQ_FIRST(&cl->shared)) != NULL) {
		struct child *c = a->child;
		bool sent = a->sent;
		char *gkey = xstrdup(a->group);

		attach_drop(a, s->persistent);
		if (!s->persistent && sent)
			leave(c, gkey, s->key, true);
		free(gkey);
	}
}

struct leaving {
	struct session	*s;
	const char	*gkey;
};

static void
leave_topic(struct broker *b, const char *topic, void *arg)
{
	struct leaving *l = arg;
	struct child *c;
	const char *why;

	if ((c = topic_open(b, topic, &why)) != NULL)
		leave(c, l->gkey, l->s->key, true);
}

/* Has the session a share filter of group gkey that matches topic? */
static bool
session_in_group(const struct session *s, const char *gkey, const char *topic)
{
	const char *sub;
	char *k;
	bool in;

	for (size_t i = 0; i < s->nfilters; i++) {
		if (topic_share_split(s->filters[i].filter, &sub) != 1 || !topic_matches(sub, topic))
			continue;
		k = group_key(s->filters[i].filter);
		in = strcmp(k, gkey) == 0;
		free(k);
		if (in)
			return true;
	}
	return false;
}

/* A member that a store of topic c lists (its topicd's last IDLE) and
 * that is none any more, its session gone or its share filter removed
 * while the master could not tell the store (a topic being forgotten):
 * it leaves the group there. */
void
share_prune_member(struct child *c, const char *gkey, const char *member)
{
	struct session *s = session_find(c->b, member);

	if (s == NULL || !session_in_group(s, gkey, c->topic))
		leave(c, gkey, member, s == NULL || s->mode == MODE_MQTT);
}

/* The session is deleted: it leaves every group it is a member of, in
 * every topic its share filters match. */
void
share_session_deleted(struct session *s)
{
	const char *sub;

	if (s->cl != NULL) {
		while (!TAILQ_EMPTY(&s->cl->shared))
			attach_drop(TAILQ_FIRST(&s->cl->shared), false);
	}
	for (size_t i = 0; i < s->nfilters; i++) {
		struct leaving l = { .s = s };
		char *gkey;

		if (topic_share_split(s->filters[i].filter, &sub) != 1)
			continue;
		l.gkey = gkey = group_key(s->filters[i].filter);
		registry_match(s->b, sub, leave_topic, &l);
		free(gkey);
	}
}
