/* Delivery to a shared subscription's members (share.c): each entry goes
 * to one member online with room in its window, in turn; the entries
 * marked for resending first (to their member for a PUBREL, to anyone
 * for a message whose member went away), then new messages.  A member
 * whose socket is full is passed over until it drains; the others go on.
 * JSON-lines members get timed retrial as a JSON-lines subscriber does.
 *
 * A message that goes to an MQTT member at QoS 2 is that member's for good
 * (share.c), so whose it is must be on disk before it is sent: were the
 * topicd killed after the send, its successor would otherwise give it to
 * another member too.  Such entries are given out, made durable with one
 * sync for all of them, and then sent. */
#include <stdlib.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

static bool
member_ready(const struct sub *m)
{
	return m != NULL && m->fd != -1 && !m->blocked && !m->parked;
}

/* Entries in flight to each member (by slot). */
static uint32_t *
member_loads(const struct sub *g)
{
	uint32_t *load = xcalloc((size_t)g->nslots + 1, sizeof(*load));

	for (uint32_t i = 0; i < g->nfl; i++)
		if (g->fl[i].state != FL_DONE && g->fl[i].mi != 0 && g->fl[i].mi <= g->nslots)
			load[g->fl[i].mi - 1]++;
	return load;
}

/* Is the JSON-lines consumer key subscribed to the topic by itself now?
 * Its cursor stays after an UNSUB (a later SUB resumes there), offline. */
static bool
own_online(struct topicd *td, const char *key)
{
	struct sub *own = sub_find(td, key);

	return own != NULL && sub_online(own);
}

/* The next member in turn that can take a message now, or NULL.  An MQTT
 * session's acks say which of its subscriptions they answer, its own or a
 * group's (MQTT 4.8.2: it may get both copies); a JSON-lines consumer's do
 * not, so one that is also subscribed to the topic by itself gets its
 * messages that way only. */
static struct sub *
pick(struct sub *g, const uint32_t *load)
{
	for (uint16_t k = 0; k < g->nslots; k++) {
		uint16_t i = (uint16_t)((g->rr + k) % g->nslots);
		struct sub *m = g->members[i];

		if (member_ready(m) && load[i] < m->window &&
		    (m->mode == MODE_MQTT || !own_online(g->td, m->key))) {
			g->rr = (uint16_t)((i + 1) % g->nslots);
			return m;
		}
	}
	return NULL;
}

/* Would message seq go to member m at QoS 2, to be its own? */
static bool
goes_bound(struct sub *g, const struct sub *m, uint64_t seq)
{
	struct msg msg;
	bool bound;

	if (m->mode != MODE_MQTT || m->qos < 2 || !log_get(g->td, seq, &msg))
		return false;
	bound = msg.qos == 2 && !msg_expired(&msg);
	msg_release(&msg);
	return bound;
}

/* Sends entry f (message seq) to a member: its own for a PUBREL, or the
 * next in turn for a message.  false when no member can take it now. */
static bool
send_entry(struct sub *g, struct flight *f, uint64_t seq, uint32_t *load, int64_t now)
{
	struct sub *m = f->mi != 0 && f->mi <= g->nslots ? g->members[f->mi - 1] : NULL;
	uint8_t qos = 0;
	int rc;

	if (f->state == FL_RECEIVED) {
		if (m == NULL) {	/* its member left: the exchange is over */
			sub_set_state(g, f, FL_DONE);
			return true;
		}
		if (!gate_open(g->td, f->rel_gen) || !member_ready(m) ||
		    deliver_send_rel(m, seq) != SEND_OK)
			return false;
		deliver_sent(g, f, now);
		return true;
	}
	if (m != NULL && !member_ready(m) && share_bound(g, m, f, seq))
		return false;		/* it waits for its member */
	if (!member_ready(m) && (m = pick(g, load)) == NULL)
		return false;
	if (f->mi != m->slot && goes_bound(g, m, seq)) {
		/* Its new member's own: sent once that is durable. */
		if (f->mi != 0 && f->mi <= g->nslots)
			load[f->mi - 1]--;
		load[m->slot - 1]++;
		f->mi = m->slot;
		f->qos = 2;
		f->unsent = f->resend = true;
		sub_dirty(g);
		return true;
	}
	rc = deliver_send_msg(m, seq, f->unsent ? 0 : DF_DUP, &qos);
	if (rc != SEND_OK)
		return rc == SEND_GONE;		/* its entries went back to the others */
	f->unsent = false;
	if (f->mi != m->slot) {
		if (f->mi != 0 && f->mi <= g->nslots)
			load[f->mi - 1]--;
		load[m->slot - 1]++;
		f->mi = m->slot;
	}
	f->qos = qos;
	deliver_sent(g, f, now);
	if (qos == 0)
		sub_set_state(g, f, FL_DONE);
	return true;
}

/* The entries marked for sending; durable: also those given out whose
 * owner is now on disk.  True if any of those is left. */
static bool
resend(struct sub *g, uint32_t *load, bool durable)
{
	int64_t now = mono_ms();
	bool unsent = false;

	for (uint32_t i = 0; i < g->nfl; i++) {
		struct flight *f = &g->fl[i];

		if (f->unsent && !durable)
			unsent = true;
		else if (f->resend && f->state != FL_DONE)
			(void)send_entry(g, f, g->cursor + i, load, now);
	}
	g->restored = false;
	sub_advance(g);
	return unsent;
}

/* New messages to the members in turn; true when some were given out to
 * be sent once that is durable. */
static bool
send_new(struct sub *g, uint32_t *load)
{
	struct topicd *td = g->td;
	int64_t now = mono_ms();
	struct flight *f;
	struct sub *m;
	bool deferred = false;
	uint8_t qos;
	int rc;

	while (g->cursor + g->nfl < td->deliver_upto && g->nfl < deliver_span_max(g) &&
	    (m = pick(g, load)) != NULL) {
		if (goes_bound(g, m, g->cursor + g->nfl)) {
			f = sub_push(g, FL_SENT);
			f->mi = m->slot;
			f->qos = 2;
			f->unsent = f->resend = true;
			load[m->slot - 1]++;
			sub_dirty(g);
			deferred = true;
			continue;
		}
		rc = deliver_send_msg(m, g->cursor + g->nfl, 0, &qos);
		if (rc == SEND_LATER && !m->blocked)
			break;		/* a transient error: retry_soon is armed */
		if (rc != SEND_OK)
			continue;	/* that member is full or gone: the next one */
		f = sub_push(g, qos == 0 ? FL_DONE : FL_SENT);
		f->mi = m->slot;
		f->qos = qos;
		load[m->slot - 1] += qos != 0;
		deliver_sent(g, f, now);
		if (qos == 0)
			sub_advance(g);
	}
	return deferred;
}

static void
flush_members(struct sub *g)
{
	for (uint16_t i = 0; i < g->nslots; i++)
		if (member_ready(g->members[i]))
			(void)deliver_flush(g->members[i]);
}

void
share_pump(struct sub *g)
{
	uint32_t *load;
	bool unsent;

	flush_members(g);
	if (g->parked || g->dlq_req != 0 || !sub_online(g) || !gate_open(g->td, g->hold_gen))
		return;
	/* Not in the middle of a batch (gate.c holds what it made). */
	if (g->td->batch_n > 0 || g->td->io_wait) {
		deliver_wake(g);
		return;
	}
	if (g->check_head) {
		g->check_head = false;
		if (deliver_dead_letter_head(g))
			return;
	}
	share_set_aside(g);
	share_aside_send(g);
	load = member_loads(g);
	unsent = resend(g, load, false);
	if ((send_new(g, load) || unsent) && dispatch_sync(g->td, true) == 0)
		(void)resend(g, load, true);	/* what was given out, now durable */
	free(load);
	flush_members(g);
	share_retry_arm(g);
}

/* Timed retrial of what JSON-lines members did not answer: due when the
 * oldest such send is retry_ms old. */
void
share_retry_arm(struct sub *g)
{
	int64_t oldest = INT64_MAX;
	struct timeval tv;

	if (g->timer == NULL || (g->retry_due && evtimer_pending(g->timer, NULL)))
		return;		/* a transient error's retry comes first */
	for (uint32_t i = 0; i < g->nfl; i++) {
		const struct flight *f = &g->fl[i];
		const struct sub *m = f->mi != 0 && f->mi <= g->nslots ? g->members[f->mi - 1] : NULL;

		if (f->state != FL_DONE && !f->resend && m != NULL && m->fd != -1 &&
		    !m->parked && m->mode == MODE_JSON && f->last_ms < oldest)
			oldest = f->last_ms;
	}
	if (share_aside_oldest(g) < oldest)
		oldest = share_aside_oldest(g);
	if (oldest == INT64_MAX) {
		evtimer_del(g->timer);
		return;
	}
	oldest += g->td->retry_ms - mono_ms();
	if (oldest < 0)
		oldest = 0;
	tv.tv_sec = oldest / 1000;
	tv.tv_usec = (oldest % 1000) * 1000;
	if (evtimer_add(g->timer, &tv) == -1)
		fatalx("cannot add a timer");
}

/* Marks the sends that went unanswered for retry_ms.  A message that used
 * up its attempts is dead-lettered from the head, as for any subscriber;
 * anywhere else, or a PUBREL that did, parks the member that did not
 * answer, as a subscriber is parked (share_member_park). */
void
share_retry_check(struct sub *g)
{
	struct topicd *td = g->td;
	int64_t now = mono_ms();

	for (uint32_t i = 0; i < g->nfl; i++) {
		struct flight *f = &g->fl[i];
		struct sub *m = f->mi != 0 && f->mi <= g->nslots ? g->members[f->mi - 1] : NULL;

		if (f->state == FL_DONE || f->resend || m == NULL || m->mode != MODE_JSON ||
		    m->parked || now - f->last_ms < td->retry_ms)
			continue;
		if (f->attempts < td->max_attempts)
			f->resend = true;
		else if (i == 0 && f->state == FL_SENT)
			g->check_head = true;
		else
			share_member_park(m, g->cursor + i, f->attempts);
	}
	share_aside_retry_check(g, now);
}
