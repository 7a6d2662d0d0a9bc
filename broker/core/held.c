/* Requests to a topicd that wait for DONE.  They are held, in order, until
 * answered, and replayed into a restarted child: the topicd makes each of
 * them idempotent, so a replay is exactly-once.
 *
 * What may go to the child now (child_pump):
 *   - nothing while it is not READY (starting, restarting);
 *   - no publish while the topic's registry entry is not yet durable,
 *     while the topicd has no room (FULL, until ROOM and our RESUME), or
 *     while all topics together are over max_store_size;
 *   - after a crash with requests outstanding, one request at a time
 *     until those have been answered (probing: a request it dies on again
 *     is a poison record, see children.c).
 * A publish that waits stalls its client (the broker stops reading it)
 * when the topicd has no room, or when max_held_publishes wait for a
 * topicd that is not running. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

uint64_t
broker_req(struct broker *b)
{
	return b->next_req++;
}

/* The request, its record and who sent it in one allocation: a stream of
 * publishes makes one each.  take: the record is w's buffer, kept as it
 * is (w is left empty), rather than copied. */
static struct held *
held_alloc(uint16_t type, uint64_t req, struct wbuf *w, const char *desc, bool take)
{
	size_t dlen = desc != NULL ? strlen(desc) + 1 : 0;
	size_t blen = take ? 0 : w->len;
	/* Only the header is zeroed: a body of 64 KiB cost a memset each. */
	struct held *h = xmalloc(sizeof(*h) + blen + dlen);

	memset(h, 0, sizeof(*h));
	h->type = type;
	h->req = req;
	h->len = w->len;
	if (take) {
		h->body = h->own = w->data;
		wbuf_init(w);
	} else {
		h->body = (uint8_t *)(h + 1);
		if (blen > 0)
			memcpy(h->body, w->data, blen);
	}
	if (desc != NULL)
		h->client_desc = memcpy((uint8_t *)(h + 1) + blen, desc, dlen);
	return h;
}

struct held *
held_new(uint16_t type, uint64_t req, const struct wbuf *w)
{
	return held_alloc(type, req, (struct wbuf *)w, NULL, false);
}

void
held_free(struct held *h)
{
	free(h->dlq_topic);
	free(h->own);
	free(h);
}

/* Requests go to a ready topicd once the master's store says the topic
 * is live (registry.c). */
static bool
can_send(const struct child *c)
{
	return c->state == CH_READY && c->chan != NULL && c->registered;
}

/* The topicd does not keep up: topicd_input_limit bytes wait in its
 * channel, or any past max_held_bytes.  QoS 0 publishes have no answer to
 * wait for, and nothing else would stop a client from filling the
 * master's memory with them. */
static bool
congested(const struct child *c)
{
	size_t q = c->chan != NULL ? ipc_chan_queued_bytes(c->chan) : 0;

	return q >= c->b->set.topicd_input_limit || (c->b->held_over && q > 0);
}

/* Publishes may go: the topic is registered, there is room, and the
 * topicd keeps up. */
static bool
takes_publishes(const struct child *c)
{
	return c->registered && !c->full && !c->b->store_full && !congested(c);
}

/* Its clients stop being read: no room, too much waits for a topicd that
 * is not running (max_held_publishes, or any past max_held_bytes), or for
 * one that does not keep up. */
static bool
stalls_clients(const struct child *c)
{
	return c->full || c->b->store_full || congested(c) ||
	    (c->state != CH_READY && (c->nheld_pub >= c->b->set.max_held_publishes ||
	    c->b->held_over));
}

static void
stall(struct child *c, struct held *h, bool on)
{
	struct client *cl;

	if (h->stalls == on || h->type != IPC_PUBLISH || h->client_id == 0)
		return;
	h->stalls = on;
	if ((cl = client_by_id(c->b, h->client_id)) == NULL)
		return;
	if (on)
		cl->nstalled++;
	else if (cl->nstalled > 0)
		cl->nstalled--;
	client_throttle(cl);
}

/* The topicd took half of what waited for it: what was held goes. */
static void
on_drained(struct ipc_chan *chan, void *arg)
{
	struct child *c = arg;

	(void)chan;
	child_pump(c);
	child_update_stalls(c);
}

/* After anything that may change whether the topic stalls its clients;
 * a congested channel calls on_drained once the topicd catches up. */
void
child_update_stalls(struct child *c)
{
	bool want = stalls_clients(c);
	struct held *h;

	if (congested(c))
		ipc_chan_when_below(c->chan, c->b->held_over ? 0 :
		    c->b->set.topicd_input_limit / 2, on_drained);
	if (want == c->stalling)
		return;
	c->stalling = want;
	TAILQ_FOREACH(h, &c->held, entry)
		if (!h->sent)
			stall(c, h, want);
}

/* A QoS 0 publish held for a topicd counts in its client's pending until
 * it goes, as a request counts until its answer: publishes spread over
 * topics that are not running would otherwise grow the master's memory
 * without bound (max_held_publishes is per topic). */
static void
uncount(struct child *c, struct held *h)
{
	struct client *cl;

	if (!h->counted)
		return;
	h->counted = false;
	if ((cl = client_by_id(c->b, h->client_id)) != NULL && cl->pending > 0) {
		cl->pending--;
		client_throttle(cl);
	}
}

/* A lazy request that goes (or goes away) no longer waits. */
static void
unlazy(struct child *c, struct held *h)
{
	if (h->lazy) {
		h->lazy = false;
		c->b->nlazy--;
	}
}

static void
unlink_held(struct child *c, struct held *h)
{
	unlazy(c, h);
	uncount(c, h);
	TAILQ_REMOVE(&c->held, h, entry);
	if (h->type == IPC_PUBLISH) {
		c->nheld_pub--;
		c->b->held_bytes -= h->len;
		held_budget_later(c->b);
	}
	if (!h->sent)
		c->nunsent--;
	else if (h->req != 0)
		c->noutstanding--;
	stall(c, h, false);
}

/* A publish whose client is gone before it went out was never
 * acknowledged: the client sends it again after reconnecting. */
static bool
orphaned(struct child *c, const struct held *h)
{
	struct client *cl;

	if (!h->from_client || h->req == 0)
		return false;
	cl = client_by_id(c->b, h->client_id);
	return cl == NULL || cl->closing;
}

/* Sends h; a record without an answer is then done with. */
static void
held_send(struct child *c, struct held *h)
{
	unlazy(c, h);
	child_chan_send(c, h->type, h->body, h->len, -1);
	h->sent = true;
	c->nunsent--;
	stall(c, h, false);
	if (h->type == IPC_UNSUB)
		attach_unsub_sent(c);
	if (h->req != 0) {
		c->noutstanding++;
		return;
	}
	unlink_held(c, h);
	held_free(h);
}

/* Sends, in order, what may go now. */
void
child_pump(struct child *c)
{
	bool pubs = takes_publishes(c);
	struct held *h, *next;

	if (!can_send(c) || c->nunsent == 0)
		return;
	TAILQ_FOREACH_SAFE(h, &c->held, entry, next) {
		if (h->sent)
			continue;
		if (orphaned(c, h)) {	/* also while publishes wait (a full topic) */
			unlink_held(c, h);
			held_free(h);
			continue;
		}
		if (h->type == IPC_PUBLISH && !pubs)
			continue;
		if (c->probing && h->req != 0 && c->noutstanding > 0)
			break;
		held_send(c, h);
	}
}

/* A request may go now, ahead of nothing: the usual case. */
static bool
sends_now(const struct child *c, uint16_t type)
{
	return c->nunsent == 0 && can_send(c) && !c->probing &&
	    (type != IPC_PUBLISH || takes_publishes(c));
}

int
child_submit(struct child *c, struct held *h, const char **why)
{
	bool now = sends_now(c, h->type), lazy;
	struct client *cl;

	if (c->state == CH_FAILED) {
		*why = "the topic's store is damaged (topic failed)";
		return -1;
	}
	TAILQ_INSERT_TAIL(&c->held, h, entry);
	c->nunsent++;
	if (h->type == IPC_PUBLISH) {
		c->nheld_pub++;
		c->b->held_bytes += h->len;
	}
	if (h->client_id != 0 && (h->req != 0 || h->type == IPC_PUBLISH) &&
	    (cl = client_by_id(c->b, h->client_id)) != NULL) {
		cl->pending++;
		h->counted = h->req == 0;
	}
	if (now) {
		held_send(c, h);		/* the usual case: nothing waits */
		return 0;
	}
	lazy = h->lazy;		/* child_pump may send h, and free it */
	child_update_stalls(c);
	if (c->stalling)
		stall(c, h, true);
	child_pump(c);
	if (!lazy)
		child_wake(c);	/* a cold topic starts */
	return 0;
}

/* A QoS 0 publish that may go now has no answer to wait for and nothing
 * to replay: it is sent as it is encoded, and no record is held (two
 * allocations and a copy less, in the stream that has the most). */
bool
child_send_now(struct child *c, const struct rec_publish *p)
{
	struct wbuf *w = &c->b->rec_enc;

	if (p->req != 0 || !sends_now(c, IPC_PUBLISH))
		return false;
	wbuf_reset(w);
	enc_publish(w, p);
	child_chan_send(c, IPC_PUBLISH, w->data, w->len, -1);
	return true;
}

/* Records without an answer (ACK, DETACH): only to a live child; a
 * restarted one resends what the lost ones were about. */
#define ACKS_KEPT_MAX 65536	/* per topic; past it they go (resends follow) */

void
child_send(struct child *c, uint16_t type, const struct wbuf *w)
{
	struct stashed_ack *a;

	if (c->state == CH_READY && c->chan != NULL) {
		child_chan_send(c, type, w->data, w->len, -1);
		return;
	}
	if (type != IPC_ACK || c->nacks >= ACKS_KEPT_MAX || c->state == CH_FAILED)
		return;
	a = xmalloc(sizeof(*a) + w->len);
	a->len = w->len;
	memcpy(a->body, w->data, w->len);
	TAILQ_INSERT_TAIL(&c->acks, a, entry);
	c->nacks++;
}

static void
send_acks(struct child *c)
{
	struct stashed_ack *a;

	while ((a = TAILQ_FIRST(&c->acks)) != NULL) {
		TAILQ_REMOVE(&c->acks, a, entry);
		c->nacks--;
		if (c->chan != NULL)
			child_chan_send(c, IPC_ACK, a->body, a->len, -1);
		free(a);
	}
}

void
child_free_acks(struct child *c)
{
	struct stashed_ack *a;

	while ((a = TAILQ_FIRST(&c->acks)) != NULL) {
		TAILQ_REMOVE(&c->acks, a, entry);
		free(a);
	}
	c->nacks = 0;
}

/* The clean sessions' cursors left for this start (topic_unsub): held
 * ahead of everything, so that they go first. */
static void
hold_cold_unsubs(struct child *c)
{
	struct rec_unsub r = { .flags = UF_FORGET };
	struct held *h;
	struct wbuf w;

	wbuf_init(&w);
	for (size_t i = c->ncold_unsubs; i-- > 0; ) {
		r.req = broker_req(c->b);
		r.subkey = c->cold_unsubs[i];
		wbuf_reset(&w);
		enc_unsub(&w, &r);
		h = held_new(IPC_UNSUB, r.req, &w);
		TAILQ_INSERT_HEAD(&c->held, h, entry);
		c->nunsent++;
	}
	wbuf_free(&w);
	child_free_cold_unsubs(c);
}

/* READY: what it must know first, then what waited. */
void
child_replay(struct child *c)
{
	struct attachment *a;
	struct held *h, *next;
	unsigned n = c->nunsent;

	send_acks(c);		/* before the attachments: nothing acked goes again */
	hold_cold_unsubs(c);
	/* An UNSUB still held came before the attachments that exist now
	 * (a later UNSUB would have removed them): it goes first, in its
	 * order with the offline ATTACHes held with it (one that came before
	 * it must not be sent after it: it would leave a cursor no one
	 * owns). */
	TAILQ_FOREACH_SAFE(h, &c->held, entry, next)
		if (!h->sent && (h->type == IPC_UNSUB || h->type == IPC_ATTACH) && !c->probing)
			held_send(c, h);
	TAILQ_FOREACH(a, &c->attached, by_child)
		attach_resend(a);
	child_pump(c);
	child_update_stalls(c);
	/* Requests held while a cold topic starts are no replay: only those
	 * of a start after a crash are. */
	if (n > 0 && c->after_crash)
		log_notice("topic %s: replaying %u held request%s into topicd pid %ld%s", c->topic,
		    n, n == 1 ? "" : "s", (long)c->pid, c->probing ? ", one at a time" : "");
	c->after_crash = false;
}

/* The child died: everything it had not answered goes again.  Returns
 * how many requests it had outstanding; the only one, in *alone. */
unsigned
child_requeue(struct child *c, struct held **alone)
{
	unsigned n = 0;
	struct held *h;

	*alone = NULL;
	TAILQ_FOREACH(h, &c->held, entry) {
		if (!h->sent)
			continue;
		h->sent = false;
		c->nunsent++;
		if (h->req != 0) {
			n++;
			*alone = h;
		}
	}
	c->noutstanding = 0;
	if (n != 1)
		*alone = NULL;
	return n;
}

/* Marks every request now held as outstanding at a crash: the probing
 * lasts until they are all answered. */
void
child_suspect_all(struct child *c)
{
	struct held *h;

	TAILQ_FOREACH(h, &c->held, entry)
		h->suspect = h->req != 0;
}

static void
probing_done(struct child *c)
{
	struct held *h;

	if (!c->probing)
		return;
	TAILQ_FOREACH(h, &c->held, entry)
		if (h->suspect)
			return;
	c->probing = false;
	log_notice("topic %s: every request held at its crash has been answered", c->topic);
}

static void
answer(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *waiting = h->client_id ? client_by_id(c->b, h->client_id) : NULL;

	if (h->done != NULL)
		h->done(c, h, d);
	/* After the answer is out: reading may resume (and handle more). */
	if (waiting != NULL && h->req != 0 && waiting->pending > 0) {
		waiting->pending--;
		client_throttle(waiting);
	}
}

/* ST_FULL: not stored, no room; it goes again after RESUME. */
static void
refused(struct child *c, struct held *h)
{
	c->noutstanding--;
	h->sent = false;
	c->nunsent++;
	if (!c->full) {
		c->full = true;
		child_update_stalls(c);
	}
	if (c->stalling)
		stall(c, h, true);
}

void
child_done(struct child *c, const struct rec_done *d)
{
	struct attachment *a;
	struct held *h;

	TAILQ_FOREACH(h, &c->held, entry) {
		if (h->req != d->req || !h->sent)
			continue;
		if (d->status == ST_FULL && h->type == IPC_PUBLISH) {
			refused(c, h);
			return;
		}
		unlink_held(c, h);
		answer(c, h, d);
		held_free(h);
		probing_done(c);
		child_pump(c);
		return;
	}
	TAILQ_FOREACH(a, &c->attached, by_child) {
		if (a->req == d->req) {
			attach_done(a, d);
			return;
		}
	}
	log_debug("topic %s: DONE for unknown request %llu", c->topic, (unsigned long long)d->req);
}

/* Takes h out of the queue, for the caller to answer otherwise (a
 * poison record). */
void
child_take_held(struct child *c, struct held *h)
{
	unlink_held(c, h);
}

/* Answers h as not stored, and frees it. */
void
held_refuse(struct child *c, struct held *h)
{
	struct rec_done d = { .req = h->req, .status = ST_STORE };

	answer(c, h, &d);
	held_free(h);
}

/* A failed topic cannot take what was waiting: refuse it to the clients
 * that are still there (they were never told it is stored). */
void
child_fail_held(struct child *c)
{
	struct held *h;

	while ((h = TAILQ_FIRST(&c->held)) != NULL) {
		unlink_held(c, h);
		if (h->dlq_topic != NULL)
			log_errx("topic %s failed: a dead letter from topic %s stays with it",
			    c->topic, h->dlq_topic);
		held_refuse(c, h);
	}
	c->probing = false;
}

/* At the end: what still waits for the topic goes.  A dead letter that
 * a topicd asked for is asked for again at its next start; one of the
 * broker's own (a client's bad input) is lost, and said so. */
void
child_discard_held(struct child *c)
{
	unsigned again = 0, lost = 0;
	struct held *h;

	while ((h = TAILQ_FIRST(&c->held)) != NULL) {
		if (c->b->set.dead_letter_topic != NULL &&
		    strcmp(c->topic, c->b->set.dead_letter_topic) == 0 && h->type == IPC_PUBLISH)
			*(h->dlq_topic != NULL ? &again : &lost) += 1;
		unlink_held(c, h);
		held_free(h);
	}
	if (again > 0 || lost > 0)
		log_warnx("topic %s: %u dead letters not stored before the stop: %u to be asked "
		    "for again by their topics, %u lost", c->topic, again + lost, again, lost);
}

static struct held *
client_request(struct client *cl, uint16_t type, uint64_t req, struct wbuf *w, bool take,
    held_done *done, uint64_t arg)
{
	struct held *h = held_alloc(type, req, w, cl->desc, take);

	h->done = done;
	h->client_id = cl->id;
	h->arg = arg;
	h->port = cl->port;
	return h;
}

int
publish_submit(struct client *cl, struct child *c, const struct rec_publish *p,
    held_done *done, uint64_t arg, const char **why)
{
	struct broker *b = cl->b;
	struct held *h;
	struct wbuf w;

	if (!child_send_now(c, p)) {
		/* Encoded where it is kept: a payload of 64 KiB is copied once. */
		wbuf_init(&w);
		wbuf_reserve(&w, enc_publish_size(p));
		enc_publish(&w, p);
		h = client_request(cl, IPC_PUBLISH, p->req, &w, true, done, arg);
		h->qos = p->qos;
		h->from_client = true;
		if (child_submit(c, h, why) == -1) {
			held_free(h);
			return -1;
		}
		if (p->flags & PF_STAGE)
			owner_note_topic(cl, c->topic);
	}
	b->msgs_in++;
	b->bytes_in += p->payload_len;
	held_budget_later(b);
	return 0;
}

int
release_submit(struct client *cl, struct child *c, const struct rec_release *r,
    held_done *done, uint64_t arg, const char **why)
{
	struct wbuf w;
	struct held *h;

	wbuf_init(&w);
	enc_release(&w, r);
	h = client_request(cl, IPC_RELEASE, r->req, &w, false, done, arg);
	wbuf_free(&w);
	if (child_submit(c, h, why) == -1) {
		held_free(h);
		return -1;
	}
	return 0;
}

int
note_submit(struct child *c, uint16_t type, uint64_t req, const struct wbuf *w,
    const char **why)
{
	return note_submit_done(c, type, req, w, NULL, 0, why);
}

/* The next unsent ATTACH of subkey (member: a group's member, or "")
 * held for c after h (NULL: from the first). */
static struct held *
unsent_attach(struct child *c, struct held *h, const char *subkey, const char *member)
{
	struct rec_attach a;

	for (h = h != NULL ? TAILQ_NEXT(h, entry) : TAILQ_FIRST(&c->held); h != NULL;
	    h = TAILQ_NEXT(h, entry))
		if (!h->sent && h->type == IPC_ATTACH && dec_attach(h->body, h->len, &a) == 0 &&
		    strcmp(a.subkey, subkey) == 0 && strcmp(a.member, member) == 0)
			return h;
	return NULL;
}

/* The lazy ATTACHes of subkey (member) that wait for c's next start go
 * (drop), or stay; false if a request that is not lazy makes that
 * cursor. */
static bool
only_lazy_attaches(struct child *c, const char *subkey, const char *member, bool drop)
{
	struct held *h, *next;

	for (h = unsent_attach(c, NULL, subkey, member); h != NULL; h = next) {
		next = unsent_attach(c, h, subkey, member);
		if (!h->lazy)
			return false;
		if (drop) {
			unlink_held(c, h);
			held_free(h);
		}
	}
	return true;
}

/* An UNSUB of subkey (member) for a topic that is not running is
 * needless where the topic is known not to have that cursor and only a
 * registration waiting for the next start would make it: one that forgets
 * the cursor drops that registration instead; one that keeps it (a
 * JSON-lines UNSUB) leaves it, since what it makes, a cursor without a
 * socket, is what such an UNSUB leaves.  True: nothing to send. */
bool
held_unsub_needless(struct child *c, const char *subkey, const char *member, bool forget)
{
	if (child_live(c) ||
	    topic_info_sub(registry_info(c->b, c->topic), subkey) != SUB_ABSENT)
		return false;
	return only_lazy_attaches(c, subkey, member, forget);
}

/* A registration that waits for the topic's next start replaces one of
 * the same subscriber waiting there: a persistent session that comes and
 * goes while the topic is cold leaves one, not one per visit. */
int
note_submit_lazy(struct child *c, uint16_t type, uint64_t req, const struct wbuf *w,
    const char **why)
{
	struct rec_attach a;
	struct held *h;

	if (type == IPC_ATTACH && dec_attach(w->data, w->len, &a) == 0)
		(void)only_lazy_attaches(c, a.subkey, a.member, true);
	if (c->b->nlazy >= HELD_LAZY_MAX)
		return note_submit_done(c, type, req, w, NULL, 0, why);
	h = held_new(type, req, w);
	h->lazy = true;
	c->b->nlazy++;
	if (child_submit(c, h, why) == -1) {
		unlazy(c, h);
		held_free(h);
		return -1;
	}
	return 0;
}

bool
child_has_work(const struct child *c)
{
	const struct held *h;

	TAILQ_FOREACH(h, &c->held, entry)
		if (!h->sent && !h->lazy)
			return true;
	return false;
}

int
note_submit_done(struct child *c, uint16_t type, uint64_t req, const struct wbuf *w,
    held_done *done, uint64_t arg, const char **why)
{
	struct held *h = held_new(type, req, w);

	h->done = done;
	h->arg = arg;
	if (child_submit(c, h, why) == -1) {
		held_free(h);
		return -1;
	}
	return 0;
}
