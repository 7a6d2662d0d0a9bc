/* Sessions attached to topics.  An attachment is a connected session's
 * subscription to one topic; it outlives the topicd: every new topicd of
 * the topic gets it again, with a fresh copy of the delivery socket.  A
 * cold topic (live.c) is started for an attachment only when the session
 * has something to get there, or asks for a retained message it keeps
 * that the master has no copy of (retcopy.c). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/core.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

static int
attachment_cmp(struct attachment *a, struct attachment *b)
{
	return (a->child > b->child) - (a->child < b->child);
}

RB_PROTOTYPE(attachment_ix, attachment, by_topic, attachment_cmp)
RB_GENERATE(attachment_ix, attachment, by_topic, attachment_cmp)

/* A session of thousands of topics is not a pass over all of them for
 * each. */
struct attachment *
attach_find(struct client *cl, struct child *c)
{
	struct attachment key = { .child = c };

	return RB_FIND(attachment_ix, &cl->attached_ix, &key);
}

/* Is an UNSUB of the attachment's subscriber still held?  One held while
 * a restarted topicd is probed came before the ATTACH, which must not
 * overtake it: the topicd would drop the new subscription. */
static bool
unsub_held_for(const struct child *c, const struct rec_attach *a)
{
	const char *member = a->member != NULL ? a->member : "";
	struct rec_unsub u;
	struct held *h;

	TAILQ_FOREACH(h, &c->held, entry)
		if (!h->sent && h->type == IPC_UNSUB && dec_unsub(h->body, h->len, &u) == 0 &&
		    strcmp(u.subkey, a->subkey) == 0 && strcmp(u.member, member) == 0)
			return true;
	return false;
}

void
attach_resend(struct attachment *a)
{
	struct child *c = a->child;
	struct wbuf w;
	int fd;

	if (!child_live(c))
		return;		/* sent when a topicd runs (child_replay) */
	retcopy_cancel(a, true);	/* one runs: it sends the retained message */
	if (c->state != CH_READY || c->chan == NULL || !c->registered)
		return;		/* sent when the child is ready */
	if ((a->deferred = unsub_held_for(c, &a->a)))
		return;		/* sent after it (attach_unsub_sent) */
	if ((fd = fcntl(a->client->dsock[1], F_DUPFD_CLOEXEC, 0)) == -1) {
		if (!a->no_fd)
			log_warn("topic %s: client %s: cannot duplicate its delivery socket; "
			    "retried every second", c->topic, a->client->desc);
		a->no_fd = true;
		c->b->attach_retry = true;
		return;
	}
	a->no_fd = false;
	a->req = broker_req(c->b);
	a->a.req = a->req;
	a->confirmed = false;
	a->sent = true;
	wbuf_init(&w);
	enc_attach(&w, &a->a);
	a->a.flags &= ~AF_SAME_CONN;	/* a replay goes to another topicd */
	child_chan_send(c, IPC_ATTACH, w.data, w.len, fd);
	wbuf_free(&w);
}

static void
retry_list(struct attachment_list *l)
{
	struct attachment *a;

	TAILQ_FOREACH(a, l, by_client)
		if (a->no_fd)
			attach_resend(a);
}

static void
retry_client(struct client *cl)
{
	retry_list(&cl->attached);
	retry_list(&cl->shared);
}

/* An ATTACH that found no descriptor (EMFILE) was not sent: the client
 * got its SUBACK, and is owed what the topic gets. */
void
attach_retry_failed(struct broker *b)
{
	if (!b->attach_retry)
		return;
	b->attach_retry = false;
	clients_each(b, retry_client);
}

/* A held UNSUB went to the topicd: the ATTACHes that waited for it go. */
void
attach_unsub_sent(struct child *c)
{
	struct attachment *a;

	TAILQ_FOREACH(a, &c->attached, by_child)
		if (a->deferred)
			attach_resend(a);
}

bool
attach_needs_topicd(struct child *c, const struct rec_attach *a)
{
	struct topic_info *ti = registry_info(c->b, c->topic);
	enum sub_known k = topic_info_sub(ti, a->subkey);

	if (k == SUB_UNKNOWN || k == SUB_BACKLOG)
		return true;
	return (a->flags & AF_RETAINED) && ti->retained;
}

/* Attaches (or re-attaches, which also un-parks) the client's session to
 * the topic with the given settings.  The ATTACH goes down the topic's
 * channel before any later PUBLISH, so an OK or SUBACK sent now already
 * covers every message published after it. */
void
attach_topic(struct client *cl, struct child *c, const struct rec_attach *r)
{
	struct attachment *a = attach_find(cl, c);

	if (a == NULL) {
		a = xcalloc(1, sizeof(*a));
		a->client = cl;
		a->child = c;
		TAILQ_INSERT_TAIL(&c->attached, a, by_child);
		TAILQ_INSERT_TAIL(&cl->attached, a, by_client);
		RB_INSERT(attachment_ix, &cl->attached_ix, a);
	}
	a->a = *r;
	a->a.subkey = cl->session->key;
	/* This connection is attached there already: what it has in flight
	 * is not sent again (a repeated JSON-lines SUB is harmless), unless
	 * the topicd parked it (a JSON-lines SUB resumes a parked consumer). */
	if (a->sent)
		a->a.flags |= AF_SAME_CONN;
	attach_go(a);
}

/* To the running topicd, or a cold topic started if the attachment has
 * something to get there; nothing for a failed topic. */
void
attach_go(struct attachment *a)
{
	struct child *c = a->child;

	if (c->state == CH_FAILED)
		return;
	if (child_live(c))
		attach_resend(a);
	else if (attach_needs_topicd(c, &a->a) && !retcopy_take(a))
		child_wake(c);
}

/* A persistent session that is offline: its cursor is created (or kept)
 * without a delivery socket.  A cold topic is not started for it: the
 * cursor is made first thing at its next start, before whatever caused
 * that (a publish there waits behind it), so nothing is missed.  A
 * persistent session on '#' that leaves would otherwise start every cold
 * topic it matches. */
void
attach_offline(struct child *c, const struct rec_attach *r)
{
	const char *why;
	struct wbuf w;
	struct rec_attach a = *r;
	int rc;

	a.req = broker_req(c->b);
	wbuf_init(&w);
	enc_attach(&w, &a);
	rc = child_live(c) ? note_submit(c, IPC_ATTACH, a.req, &w, &why) :
	    note_submit_lazy(c, IPC_ATTACH, a.req, &w, &why);
	if (rc == -1)
		log_warnx("topic %s: cannot register offline session %s: %s", c->topic,
		    r->subkey, why);
	wbuf_free(&w);
}

void
attach_done(struct attachment *a, const struct rec_done *d)
{
	a->req = 0;
	a->confirmed = true;
	/* The retained message is asked for once, by the SUBSCRIBE: not by
	 * the ATTACH replayed into a restarted topicd, nor for a cold topic
	 * that already sent it. */
	if (d->status == ST_OK)
		a->a.flags &= ~AF_RETAINED;
	if (d->status != ST_OK)
		log_warnx("topic %s: session %s: subscription not stored", a->child->topic,
		    a->a.subkey);
}

/* detach: the session persists (its cursor stays).  If the topicd has not
 * confirmed the ATTACH yet (still starting, or restarting), the cursor is
 * registered without a socket instead, so that a subscription that was
 * answered OK is never lost. */
/* What the cold topic's last IDLE said of the attachment's session: a
 * subscriber of its own, or a group's member. */
static enum sub_known
known_cold(struct attachment *a)
{
	struct child *c = a->child;
	const struct topic_info *ti = registry_info(c->b, c->topic);
	enum sub_known k;
	struct wbuf w;

	if (child_live(c))
		return SUB_UNKNOWN;
	if (a->group == NULL)
		return topic_info_sub(ti, a->a.subkey);
	wbuf_init(&w);
	k = topic_info_sub(ti, idle_member_key(&w, a->a.subkey, a->a.member));
	wbuf_free(&w);
	return k;
}

void
attach_drop(struct attachment *a, bool detach)
{
	struct child *c = a->child;
	enum sub_known k = known_cold(a);

	retcopy_cancel(a, false);
	if (a->sent)
		a->client->dropped_sent = true;	/* its deliveries may be in the socket */
	if (detach && !a->confirmed && (k == SUB_CAUGHT_UP || k == SUB_BACKLOG)) {
		/* Cold, and its cursor is there (a group's member: known as
		 * one): nothing to register or detach.  A session that joined
		 * a group while the topic was cold is registered. */
	} else if (detach && !a->confirmed) {
		if (a->group == NULL)
			a->a.subkey = a->client->session->key;
		attach_offline(c, &a->a);
	} else if (detach) {
		struct rec_detach r = { .subkey = a->a.subkey,
					.member = a->group != NULL ? a->a.member : "" };
		struct wbuf w;

		wbuf_init(&w);
		enc_detach(&w, &r);
		child_send(c, IPC_DETACH, &w);
		wbuf_free(&w);
	}
	TAILQ_REMOVE(&c->attached, a, by_child);
	if (a->group != NULL)
		TAILQ_REMOVE(&a->client->shared, a, by_client);
	else {
		TAILQ_REMOVE(&a->client->attached, a, by_client);
		RB_REMOVE(attachment_ix, &a->client->attached_ix, a);
	}
	free(a->group);
	free(a);
}

void
attach_end(struct attachment *a, bool persistent)
{
	struct child *c = a->child;
	const char *subkey = a->a.subkey;	/* the session's key: it outlives a */
	bool sent = a->sent;

	attach_drop(a, persistent);
	/* A clean session's cursor exists only where an ATTACH went. */
	if (!persistent && sent)
		topic_unsub(c, subkey, true);
}

/* A clean session's cursor in a topic that is not running: forgotten
 * at the topic's next start (child_replay), which it does not cause. A
 * '#' subscriber of 100,000 cold topics that leaves does not start them
 * all. */
static bool
unsub_later(struct child *c, const char *subkey, bool forget)
{
	if (!forget || strncmp(subkey, "c/", 2) != 0 ||
	    (c->state != CH_COLD && c->state != CH_QUEUED && c->state != CH_PARKING))
		return false;
	c->cold_unsubs = xreallocarray(c->cold_unsubs, c->ncold_unsubs + 1,
	    sizeof(*c->cold_unsubs));
	c->cold_unsubs[c->ncold_unsubs++] = xstrdup(subkey);
	return true;
}

void
child_free_cold_unsubs(struct child *c)
{
	for (size_t i = 0; i < c->ncold_unsubs; i++)
		free(c->cold_unsubs[i]);
	free(c->cold_unsubs);
	c->cold_unsubs = NULL;
	c->ncold_unsubs = 0;
}

/* Stops a session's delivery from a topic; forget also drops its cursor
 * (MQTT UNSUBSCRIBE, clean sessions), else it stays (JSON-lines UNSUB).
 * A cold topic known not to have its cursor is left alone. */
void
topic_unsub(struct child *c, const char *subkey, bool forget)
{
	struct rec_unsub r = { .req = broker_req(c->b), .subkey = subkey,
			       .flags = forget ? UF_FORGET : 0 };
	const char *why;
	struct wbuf w;

	if (held_unsub_needless(c, subkey, "", forget))
		return;
	if (unsub_later(c, subkey, forget))
		return;
	wbuf_init(&w);
	enc_unsub(&w, &r);
	(void)note_submit(c, IPC_UNSUB, r.req, &w, &why);	/* a failed topic: nothing to do */
	wbuf_free(&w);
}

/* A subscriber's PUBACK, PUBREC or PUBCOMP of a delivery, to its topic;
 * share: the delivery's (struct rec_deliver). */
void
ack_to_topic(struct broker *b, const char *subkey, const char *topic, const char *share,
    uint64_t seq, uint8_t kind)
{
	struct rec_ack a = { .subkey = subkey, .seq = seq, .kind = kind, .share = share };
	struct child *c = topic_find(b, topic);
	struct wbuf w;

	if (c == NULL)
		return;
	wbuf_init(&w);
	enc_ack(&w, &a);
	child_send(c, IPC_ACK, &w);
	wbuf_free(&w);
}
