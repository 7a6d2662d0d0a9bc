/* Requests to a topicd that wait for DONE.  They are held, in order, until
 * answered, and replayed into a restarted child: the topicd makes each of
 * them idempotent, so a replay is exactly-once. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

uint64_t
broker_req(struct broker *b)
{
	return b->next_req++;
}

struct held *
held_new(enum held_kind kind, uint16_t type, uint64_t req, const struct wbuf *w)
{
	struct held *h = xcalloc(1, sizeof(*h));

	h->kind = kind;
	h->type = type;
	h->req = req;
	h->body = xmemdup(w->data, w->len);
	h->len = w->len;
	return h;
}

void
held_free(struct held *h)
{
	free(h->body);
	free(h->dlq_topic);
	free(h->client_desc);
	free(h);
}

static bool
can_send(const struct child *c)
{
	return c->state == CH_READY && c->chan != NULL;
}

static void
unlink_held(struct child *c, struct held *h)
{
	TAILQ_REMOVE(&c->held, h, entry);
	if (h->type == IPC_PUBLISH)
		c->nheld_pub--;
}

/* Sends h now if the child can take it; a record without an answer is
 * then done with. */
static void
held_send(struct child *c, struct held *h)
{
	ipc_chan_send(c->chan, h->type, h->body, h->len, -1);
	h->sent = true;
	if (h->req == 0) {
		unlink_held(c, h);
		held_free(h);
	}
}

int
child_submit(struct child *c, struct held *h, const char **why)
{
	struct client *cl;

	if (c->state == CH_FAILED) {
		*why = "topic failed (crashing topicd); retried on SIGHUP";
		return -1;
	}
	if (h->type == IPC_PUBLISH && !can_send(c) &&
	    c->nheld_pub >= c->b->set.max_held_publishes) {
		*why = "topic is restarting and max_held_publishes are waiting";
		return -1;
	}
	TAILQ_INSERT_TAIL(&c->held, h, entry);
	if (h->type == IPC_PUBLISH)
		c->nheld_pub++;
	if (h->client_id != 0 && h->req != 0 && (cl = client_by_id(c->b, h->client_id)) != NULL)
		cl->pending++;
	if (can_send(c))
		held_send(c, h);
	return 0;
}

/* Records without an answer (ACK, DETACH): only to a live child; a
 * restarted one resends what the lost ones were about. */
void
child_send(struct child *c, uint16_t type, const struct wbuf *w)
{
	if (can_send(c))
		ipc_chan_send(c->chan, type, w->data, w->len, -1);
}

void
child_replay(struct child *c)
{
	struct attachment *a;
	struct held *h, *next;
	unsigned n = 0;

	/* An UNSUB still held came before the attachments that exist now
	 * (a later UNSUB would have removed them): it goes first. */
	TAILQ_FOREACH_SAFE(h, &c->held, entry, next) {
		if (!h->sent && h->type == IPC_UNSUB) {
			held_send(c, h);
			n++;
		}
	}
	TAILQ_FOREACH(a, &c->attached, by_child)
		attach_resend(a);
	TAILQ_FOREACH_SAFE(h, &c->held, entry, next) {
		if (!h->sent) {
			held_send(c, h);
			n++;
		}
	}
	if (n > 0 && c->restarts > 0)
		log_notice("topic %s: replayed %u held request%s into topicd pid %ld", c->topic,
		    n, n == 1 ? "" : "s", (long)c->pid);
}

static void
answer(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *waiting = h->client_id ? client_by_id(c->b, h->client_id) : NULL;

	struct child *asker;
	const char *why;
	struct wbuf w;

	switch (h->kind) {
	case HELD_JSON_PUB:
	case HELD_JSON_REL:
		json_pub_done(c, h, d);
		break;
	case HELD_MQTT_PUB:
	case HELD_MQTT_REL:
		mqtt_pub_done(c, h, d);
		break;
	case HELD_DLQ:
		asker = child_get(c->b, h->dlq_topic, false, &why);
		if (asker != NULL && asker->gen == h->dlq_gen) {
			struct rec_dlq_done r = { .req = h->dlq_req };

			wbuf_init(&w);
			enc_dlq_done(&w, &r);
			child_send(asker, IPC_DLQ_DONE, &w);
			wbuf_free(&w);
		}
		break;
	case HELD_NOTE:
		break;
	}
	/* After the answer is out: reading may resume (and handle more). */
	if (waiting != NULL && h->req != 0 && waiting->pending > 0) {
		waiting->pending--;
		client_throttle(waiting);
	}
}

void
child_done(struct child *c, const struct rec_done *d)
{
	struct attachment *a;
	struct held *h;

	TAILQ_FOREACH(h, &c->held, entry) {
		if (h->req == d->req && h->sent) {
			unlink_held(c, h);
			answer(c, h, d);
			held_free(h);
			return;
		}
	}
	TAILQ_FOREACH(a, &c->attached, by_child) {
		if (a->req == d->req) {
			attach_done(a, d);
			return;
		}
	}
	log_debug("topic %s: DONE for unknown request %llu", c->topic, (unsigned long long)d->req);
}

/* A failed topic cannot take what was waiting: refuse it to the clients
 * that are still there and dead-letter the publishes. */
void
child_fail_held(struct child *c)
{
	struct rec_done d = { .status = ST_STORE };
	struct held *h;

	while ((h = TAILQ_FIRST(&c->held)) != NULL) {
		unlink_held(c, h);
		d.req = h->req;
		if (h->type == IPC_PUBLISH && h->kind != HELD_DLQ) {
			struct rec_publish p;

			if (dec_publish(h->body, h->len, &p) == 0)
				dlq_publish(c->b, "failed_topic", h->client_desc, h->port,
				    c->topic, p.payload, p.payload_len, NULL);
		} else if (h->kind == HELD_DLQ) {
			/* Unanswered, the asking topic keeps the message and asks again. */
			log_errx("topic %s failed: a dead letter from topic %s stays with it",
			    c->topic, h->dlq_topic);
			held_free(h);
			continue;
		}
		answer(c, h, &d);
		held_free(h);
	}
}

void
child_discard_held(struct child *c)
{
	struct held *h;

	while ((h = TAILQ_FIRST(&c->held)) != NULL) {
		unlink_held(c, h);
		held_free(h);
	}
}
