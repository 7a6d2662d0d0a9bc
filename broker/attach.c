/* Sessions attached to topics.  An attachment outlives its topicd: every
 * new topicd of the topic gets it again, with a fresh copy of the
 * session's delivery socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "broker.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

struct attachment *
attach_find(struct client *cl, struct child *c)
{
	struct attachment *a;

	TAILQ_FOREACH(a, &cl->attached, by_client)
		if (a->child == c)
			return a;
	return NULL;
}

void
attach_resend(struct attachment *a)
{
	struct child *c = a->child;
	struct wbuf w;
	int fd;

	if (c->state != CH_READY || c->chan == NULL)
		return;		/* sent when the child is ready */
	if ((fd = fcntl(a->client->dsock[1], F_DUPFD_CLOEXEC, 0)) == -1) {
		log_warn("topic %s: client %s: cannot duplicate its delivery socket", c->topic,
		    a->client->desc);
		return;
	}
	a->req = broker_req(c->b);
	a->a.req = a->req;
	wbuf_init(&w);
	enc_attach(&w, &a->a);
	ipc_chan_send(c->chan, IPC_ATTACH, w.data, w.len, fd);
	wbuf_free(&w);
}

void
attach_topic(struct client *cl, struct child *c, bool answer_ok)
{
	struct attachment *a = attach_find(cl, c);

	if (a == NULL) {
		a = xcalloc(1, sizeof(*a));
		a->client = cl;
		a->child = c;
		a->a.subkey = cl->subkey;
		a->a.mode = MODE_JSON;
		a->a.qos = 2;
		a->a.window = 1;
		a->a.flags = AF_NEW_ONLY;
		TAILQ_INSERT_TAIL(&c->attached, a, by_child);
		TAILQ_INSERT_TAIL(&cl->attached, a, by_client);
	}
	a->answer_ok = a->answer_ok || answer_ok;
	if (c->state == CH_FAILED) {
		if (answer_ok)
			client_error(cl, "topic failed (crashing topicd); retried on SIGHUP");
		a->answer_ok = false;
		return;
	}
	attach_resend(a);	/* also un-parks a parked subscriber */
}

void
attach_done(struct attachment *a, const struct rec_done *d)
{
	a->req = 0;
	if (!a->answer_ok)
		return;
	a->answer_ok = false;
	if (d->status == ST_OK)
		client_line(a->client, "OK");
	else
		client_error(a->client, "subscription not stored");
}

void
attach_drop(struct attachment *a, bool detach)
{
	struct child *c = a->child;

	if (detach) {
		struct rec_detach r = { .subkey = a->client->subkey };
		struct wbuf w;

		wbuf_init(&w);
		enc_detach(&w, &r);
		child_send(c, IPC_DETACH, &w);
		wbuf_free(&w);
	}
	TAILQ_REMOVE(&c->attached, a, by_child);
	TAILQ_REMOVE(&a->client->attached, a, by_client);
	free(a);
}
