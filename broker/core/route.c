/* Routing: which topics a session's filters take (and its cursor in each
 * of them), and which sessions a topic goes to.  A session's filters are
 * indexed (routes), so that a new topic finds its sessions, and a filter
 * finds its topics in the registry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/subtree.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

struct routes {
	struct subtree *filters;	/* (filter, session): a topic walks only
					 * the branches that can match it */
};

void
routes_init(struct broker *b)
{
	b->routes = xcalloc(1, sizeof(*b->routes));
	b->routes->filters = subtree_new();
}

void
routes_free(struct broker *b)
{
	if (b->routes == NULL)
		return;
	subtree_free(b->routes->filters);
	free(b->routes);
	b->routes = NULL;
}

/* A share filter is routed by its FILTER part. */
void
routes_add(struct broker *b, struct session *s, const char *filter)
{
	enum topic_err e = subtree_add(b->routes->filters, filter_route(filter), s, 0, NULL);

	if (e != TOPIC_OK)
		log_warnx("session %s: filter %s left unrouted: %s", s->key, filter,
		    topic_strerror(e));
}

/* Whatever the session's other filters are (it goes). */
void
routes_drop(struct broker *b, struct session *s, const char *filter)
{
	(void)subtree_remove(b->routes->filters, filter_route(filter), s);
}

/* Unless another of the session's filters has the same route (a share
 * and its plain filter). */
void
routes_remove(struct broker *b, struct session *s, const char *filter)
{
	if (!session_shares_route(s, filter))
		(void)subtree_remove(b->routes->filters, filter_route(filter), s);
}

struct matched {
	struct session **v;
	size_t n, cap;
};

static void
match_one(void *owner, uint8_t qos, const char *filter, void *arg)
{
	struct matched *m = arg;

	(void)qos;
	(void)filter;
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->v = xreallocarray(m->v, m->cap, sizeof(*m->v));
	}
	m->v[m->n++] = owner;
}

static int
ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(struct session *const *)a;
	uintptr_t y = (uintptr_t)*(struct session *const *)b;

	return x < y ? -1 : x > y;
}

/* Each session whose filters match topic, once (several of its filters may
 * match); collected first, so that fn may change the routes. */
void
routes_match(struct broker *b, const char *topic, session_fn *fn, void *arg)
{
	struct matched m = { NULL, 0, 0 };

	(void)subtree_match(b->routes->filters, topic, match_one, &m);
	if (m.n > 1)
		qsort(m.v, m.n, sizeof(*m.v), ptr_cmp);
	for (size_t i = 0; i < m.n; i++)
		if (i == 0 || m.v[i] != m.v[i - 1])
			fn(m.v[i], arg);
	free(m.v);
}

/* The attach settings of a session for one topic. */
void
session_attach_settings(const struct session *s, int qos, struct rec_attach *a)
{
	memset(a, 0, sizeof(*a));
	a->subkey = s->key;
	a->mode = s->mode;
	a->qos = s->mode == MODE_JSON ? 2 : (uint8_t)qos;
	a->window = s->mode == MODE_JSON ? 1 : (uint16_t)s->b->set.max_inflight_messages;
	a->flags = AF_NEW_ONLY;
}

const char *
session_client_id(const struct session *s)
{
	/* "m/ID", "j/NAME", "c/" + 16 hex digits + "/ID" */
	return s->key[0] == 'c' && strlen(s->key) > 19 ? s->key + 19 : s->key + 2;
}

bool
session_may_read(const struct session *s, const char *topic)
{
	return auth_may(s->auth, s->user, session_client_id(s), topic, AUTH_READ);
}

/* The session stops taking the topic: no filter matches it any more, or
 * (denied) the ACL does not let it read there, and then its cursor goes
 * too, as an attachment it may not have is never made. */
static void
drop_topic(struct session *s, struct child *c, bool denied)
{
	struct attachment *at = s->cl != NULL ? attach_find(s->cl, c) : NULL;
	/* A clean session's cursor exists only where an ATTACH went. */
	bool sent = at != NULL ? at->sent : s->cl == NULL;

	if (s->cl != NULL && at == NULL && !denied)
		return;
	if (at != NULL)
		attach_drop(at, s->persistent);
	if (s->persistent || sent)
		topic_unsub(c, s->key, denied || s->mode == MODE_MQTT);
	if (s->ext_ops != NULL)
		s->ext_ops->topic_dropped(s, c->topic, session_may_read(s, c->topic) ? "" : NULL);
}

/* Brings one topic in line with the session's filters and its ACL:
 * attached (online), registered (offline persistent), or unsubscribed
 * when nothing matches any more or the session may not read there.
 * retained: a SUBSCRIBE asks for the retained message. */
void
session_sync_topic(struct session *s, struct child *c, bool retained)
{
	int q = session_qos(s, c->topic);
	struct rec_attach a;

	session_sync_shares(s, c);
	if (q < 0 || !session_may_read(s, c->topic)) {
		drop_topic(s, c, q >= 0);
		return;
	}
	session_attach_settings(s, q, &a);
	if (retained)
		a.flags |= AF_RETAINED;
	if (s->cl != NULL)
		attach_topic(s->cl, c, &a);
	else if (s->persistent)
		attach_offline(c, &a);
}

/* The topics to bring in line, each once even when several filters match
 * it (a second ATTACH would send its deliveries in flight again). */
struct name {
	RB_ENTRY(name)	 entry;
	char		*topic;
};
RB_HEAD(name_set, name);

static int
name_cmp(struct name *a, struct name *b)
{
	return strcmp(a->topic, b->topic);
}

RB_PROTOTYPE(name_set, name, entry, name_cmp)
RB_GENERATE(name_set, name, entry, name_cmp)

static void
collect(struct broker *b, const char *topic, void *arg)
{
	struct name_set *set = arg;
	struct name *n = xcalloc(1, sizeof(*n));

	(void)b;
	n->topic = xstrdup(topic);
	if (RB_INSERT(name_set, set, n) != NULL) {
		free(n->topic);
		free(n);
	}
}

/* Every known topic that matches the session's filters (or only_filter).
 * One not created yet gives the session its cursor when it is
 * (sessions_topic_created). */
void
session_attach_all(struct session *s, const char *only_filter, bool retained)
{
	struct broker *b = s->b;
	struct name_set set = RB_INITIALIZER(&set);
	struct name *n, *next;
	struct child *c;
	const char *why;

	/* One filter (a SUBSCRIBE's) costs one pass, not one per filter the
	 * session has: a SUBSCRIBE of thousands stalled every client. */
	for (size_t i = 0; i < (only_filter != NULL ? 1 : s->nfilters); i++)
		registry_match(b, filter_route(only_filter != NULL ? only_filter :
		    s->filters[i].filter), collect, &set);
	RB_FOREACH_SAFE(n, name_set, &set, next) {
		/* A topic being forgotten is as good as one never seen: not
		 * made again by a subscription, which a publish there would
		 * give its cursor (sessions_topic_created).  A visitor on a
		 * wildcard would otherwise start each one it caught. */
		if (!registry_forgetting(b, n->topic) &&
		    (c = topic_open(b, n->topic, &why)) != NULL)
			session_sync_topic(s, c, retained);
		RB_REMOVE(name_set, &set, n);
		free(n->topic);
		free(n);
	}
}

/* A cold topic that one of the session's filters matches, and whose
 * last IDLE listed every subscriber but not this session (or not it as a
 * member of the group of one of its share filters), lost its
 * registration: the last master stopped or died while it waited for the
 * topicd (a start queued under max_topicds, say), after its SUBSCRIBE was
 * answered.  Registered now, before anything new is published there, its
 * cursor misses nothing published from now on (a publish that waited
 * behind the registration was not acknowledged either). */
static void
register_missing(struct session *s)
{
	struct broker *b = s->b;
	struct name_set set = RB_INITIALIZER(&set);
	struct name *n, *next;
	struct child *c;
	const char *why;
	bool own;

	for (size_t i = 0; i < s->nfilters; i++)
		registry_match(b, filter_route(s->filters[i].filter), collect, &set);
	RB_FOREACH_SAFE(n, name_set, &set, next) {
		own = session_qos(s, n->topic) >= 0 &&
		    topic_info_sub(registry_info(b, n->topic), s->key) == SUB_ABSENT;
		if ((own || session_share_unregistered(s, n->topic)) &&
		    session_may_read(s, n->topic) && (c = topic_open(b, n->topic, &why)) != NULL &&
		    c->state != CH_FAILED) {
			log_info("session %s: registered again in topic %s, which did not have it",
			    s->key, n->topic);
			session_sync_topic(s, c, false);
		}
		RB_REMOVE(name_set, &set, n);
		free(n->topic);
		free(n);
	}
}

void
sessions_register_missing(struct broker *b)
{
	struct session *s, *next;

	/* One past its lifetime is removed now (session_expire_due), as the
	 * first sweep would. */
	RB_FOREACH_SAFE(s, session_tree, &b->sessions, next)
		if (s->persistent && s->cl == NULL && !session_expire_due(s))
			register_missing(s);
}

static void
topic_created(struct session *s, void *arg)
{
	struct child *c = arg;

	if (s->cl != NULL || s->persistent)
		session_sync_topic(s, c, false);
}

/* A new topic: every session whose filters match it gets its cursor. */
void
sessions_topic_created(struct broker *b, struct child *c)
{
	routes_match(b, c->topic, topic_created, c);
}

/* Each topic of the set, once, then the set is emptied. */
static void
sync_each(struct session *s, struct name_set *set, bool only_allowed)
{
	struct name *n, *nn;
	struct child *c;
	const char *why;

	RB_FOREACH_SAFE(n, name_set, set, nn) {
		c = !only_allowed || session_may_read(s, n->topic) ?
		    topic_open(s->b, n->topic, &why) : NULL;
		if (c != NULL && (!only_allowed || attach_find(s->cl, c) == NULL))
			session_sync_topic(s, c, false);
		else if (c != NULL)
			session_sync_shares(s, c);	/* a member where it was not */
		RB_REMOVE(name_set, set, n);
		free(n->topic);
		free(n);
	}
}

/* The ACL changed: an online session drops the topics (and the groups'
 * memberships in them) it may no longer read, and takes those its filters
 * match that it may read now.  Offline sessions are brought in line when
 * they come back. */
static void
acl_resync(struct session *s)
{
	struct name_set set = RB_INITIALIZER(&set);
	struct attachment *a;

	TAILQ_FOREACH(a, &s->cl->attached, by_client)
		if (!session_may_read(s, a->child->topic))
			collect(s->b, a->child->topic, &set);
	TAILQ_FOREACH(a, &s->cl->shared, by_client)
		if (!session_may_read(s, a->child->topic))
			collect(s->b, a->child->topic, &set);
	sync_each(s, &set, false);
	for (size_t i = 0; i < s->nfilters; i++)
		registry_match(s->b, filter_route(s->filters[i].filter), collect, &set);
	sync_each(s, &set, true);
}

void
sessions_acl_changed(struct broker *b)
{
	struct session *s;
	unsigned n = 0;

	RB_FOREACH(s, session_tree, &b->sessions) {
		if (s->cl == NULL || s->cl->closing)
			continue;
		acl_resync(s);
		n++;
	}
	log_info("access control changed: %u online session%s brought in line", n,
	    n == 1 ? "" : "s");
}
