/* Retained messages of cold topics, sent by the master.  A topicd that
 * stops copies its topic's retained message into its last IDLE when it is
 * small (IDLE_COPY_MAX), and the registry keeps the copy while the topic
 * is cold.  A SUBSCRIBE then gets it from the master, without starting
 * the topic: a client on "sensors/+/status" over 100,000 cold topics
 * starts none of them.
 *
 * Only for a clean session's own subscription: nothing of the exchange
 * outlives the connection, so no topicd needs to know of it (its answer
 * ends with the client, DF_COPY).  A persistent session's retained
 * message is sent again after a reconnect, which its topicd does.  And
 * only while the topic is cold with nothing waiting for it: a publish
 * that waits there (a start queued under max_topicds) may change the
 * retained message.
 *
 * The copies go as the client takes them (its window, its output), each
 * from an attachment in the client's owed list, before its delivery
 * socket is read; they are taken only when nothing the topic's last
 * topicd sent can still be in that socket (may_have_left).  One whose topic
 * starts first is asked of the topicd instead (AF_RETAINED again, with
 * the ATTACH), which sends it before anything published after the
 * SUBSCRIBE, or sends the newer one. */
#include <event2/event.h>

#include "core/core.h"
#include "log.h"

/* The copy of the topic's retained message, if it may be sent now. */
static const struct topic_info *
usable(struct child *c)
{
	const struct topic_info *ti;

	if (c->state != CH_COLD || child_has_work(c))
		return NULL;
	ti = registry_info(c->b, c->topic);
	return ti != NULL && ti->copy != NULL ? ti : NULL;
}

/* Could the topic's last topicd have left deliveries in the client's
 * delivery socket, not read yet?  The copy would overtake them, a newer
 * value before an older one: the topicd sends the retained message after
 * them instead.  Not if the socket was read to empty since the topic went
 * cold, nor if no topicd of it had the socket: neither the attachment's
 * ATTACH nor that of the client's membership of a group there went, and
 * no attachment of the client whose ATTACH went was dropped (after an UNSUBSCRIBE its topicd writes until it reads the
 * DETACH, and which topic that was is not kept). */
static bool
may_have_left(const struct attachment *a)
{
	const struct client *cl = a->client;
	const struct attachment *g;

	if (cl->drained_gen >= a->child->cold_gen)
		return false;
	if (a->sent || cl->dropped_sent)
		return true;
	TAILQ_FOREACH(g, &cl->shared, by_client)	/* a group's, into the same socket */
		if (g->child == a->child && g->sent)
			return true;
	return false;
}

/* An attachment that asks for the retained message of a cold topic, and
 * needs nothing else of it: owed from the copy (true), or not. */
bool
retcopy_take(struct attachment *a)
{
	struct client *cl = a->client;
	const struct topic_info *ti;
	enum sub_known k;

	if (!(a->a.flags & AF_RETAINED) || a->group != NULL || cl->session == NULL ||
	    cl->session->persistent || cl->proto->deliver_copy == NULL ||
	    (ti = usable(a->child)) == NULL)
		return false;
	k = topic_info_sub(ti, a->a.subkey);
	if (k == SUB_UNKNOWN || k == SUB_BACKLOG)
		return false;
	if (may_have_left(a))
		return false;
	a->a.flags &= ~AF_RETAINED;
	if (!a->owed) {
		a->owed = true;
		TAILQ_INSERT_TAIL(&cl->owed, a, by_owed);
	}
	if (cl->dev != NULL && cl->dev_on)
		event_active(cl->dev, EV_READ, 0);
	return true;
}

/* The topic went cold: its attachments that wait for the retained
 * message get it from the copy. */
void
retcopy_offer(struct child *c)
{
	struct attachment *a;

	TAILQ_FOREACH(a, &c->attached, by_child)
		(void)retcopy_take(a);
}

/* No longer owed from the copy; ask: of the topicd instead. */
void
retcopy_cancel(struct attachment *a, bool ask)
{
	if (!a->owed)
		return;
	TAILQ_REMOVE(&a->client->owed, a, by_owed);
	a->owed = false;
	if (ask)
		a->a.flags |= AF_RETAINED;
}

/* The next one the client is owed: sent from the copy at the QoS of the
 * subscription, or, its topic no longer cold, asked of the topicd. */
void
retcopy_send(struct client *cl)
{
	struct attachment *a = TAILQ_FIRST(&cl->owed);
	const struct topic_info *ti;
	struct rec_deliver d;

	if (a == NULL)
		return;
	if ((ti = usable(a->child)) == NULL) {
		retcopy_cancel(a, true);
		attach_go(a);
		return;
	}
	retcopy_cancel(a, false);
	if (dec_deliver(ti->copy, ti->copy_len, &d) == -1) {
		log_warnx("topic %s: the copy of its retained message does not read",
		    a->child->topic);	/* dec_idle checked it: not reached */
		return;
	}
	d.topic = a->child->topic;
	d.flags |= DF_COPY;
	if (d.qos > a->a.qos)
		d.qos = a->a.qos;
	cl->proto->deliver_copy(cl, &d);
}
