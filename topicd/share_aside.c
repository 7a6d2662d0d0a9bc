/* A group member's exchanges kept aside.  What stays a member's own while
 * it is away (share_bound: a message an MQTT member got at QoS 2, a
 * PUBREL it owes) cannot go to another member, and must not hold up the
 * group: the group's entries in flight span at most deliver_span_max
 * messages from its cursor.  So when such an entry is at the group's
 * head and its member is offline (or parked), it moves to the member's
 * list, the group's cursor goes past it, and it is completed when the
 * member is back: the message again (DUP) or the PUBREL, then its
 * answers, as in the group.  A member that leaves gives them up
 * (MQTT-4.8.2-5).
 *
 * They are stored with the group (share_encode), and a message one waits
 * for is kept in the log (share_aside_min_seq). */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

static bool
member_away(const struct sub *m)
{
	return m->fd == -1 || m->parked;
}

static void
aside_add(struct sub *m, uint64_t seq, const struct flight *f)
{
	struct aside *a;

	m->aside = xreallocarray(m->aside, (size_t)m->naside + 1, sizeof(*m->aside));
	a = &m->aside[m->naside++];
	a->seq = seq;
	a->f = *f;
	a->f.resend = false;
	a->f.mi = m->slot;
}

static void
aside_remove(struct sub *m, uint32_t i)
{
	memmove(&m->aside[i], &m->aside[i + 1], (size_t)(m->naside - i - 1) *
	    sizeof(*m->aside));
	m->naside--;
}

/* Moves the head's entries that wait for a member away to its list. */
void
share_set_aside(struct sub *g)
{
	while (g->nfl > 0) {
		struct flight *f = &g->fl[0];
		struct sub *m = f->mi != 0 && f->mi <= g->nslots ? g->members[f->mi - 1] : NULL;

		if (f->state == FL_DONE || f->unsent || m == NULL || !member_away(m) ||
		    !share_bound(g, m, f, g->cursor))
			break;
		log_debug("topic %s: message %llu of %s waits for %s, who is away",
		    g->td->topic, (unsigned long long)g->cursor, g->share, m->key);
		aside_add(m, g->cursor, f);
		sub_set_state(g, f, FL_DONE);
		sub_advance(g);
		sub_dirty(g);
	}
}

/* The member is back: what waits for it goes again. */
void
share_aside_resume(struct sub *m)
{
	for (uint32_t i = 0; i < m->naside; i++)
		m->aside[i].f.resend = true;
}

/* Sends what waits for member m and may go; false when its socket is
 * full or it is gone. */
static bool
send_member(struct sub *g, struct sub *m, int64_t now)
{
	for (uint32_t i = 0; i < m->naside; i++) {
		struct aside *a = &m->aside[i];
		uint8_t qos = 0;
		int rc;

		if (!a->f.resend)
			continue;
		if (a->f.state == FL_SENT && a->f.attempts >= g->td->max_attempts) {
			if (!deliver_dead_letter_aside(m, a->seq, a->f.attempts)) {
				aside_remove(m, i--);
				sub_dirty(g);
			}
			continue;
		}
		if (a->f.state == FL_RECEIVED) {
			if (!gate_open(g->td, a->f.rel_gen))
				continue;
			rc = deliver_send_rel(m, a->seq);
		} else
			rc = deliver_send_msg(m, a->seq, DF_DUP, &qos);
		if (rc != SEND_OK)
			return false;
		if (a->f.state == FL_SENT && qos == 0) {
			aside_remove(m, i--);	/* gone from the log, or expired */
			sub_dirty(g);
			continue;
		}
		deliver_sent(g, &a->f, now);
	}
	return true;
}

void
share_aside_send(struct sub *g)
{
	int64_t now = mono_ms();

	for (uint16_t i = 0; i < g->nslots; i++) {
		struct sub *m = g->members[i];

		if (m != NULL && m->naside > 0 && m->fd != -1 && !m->blocked && !m->parked)
			(void)send_member(g, m, now);
	}
}

static struct aside *
aside_find(struct sub *m, uint64_t seq, uint32_t *ip)
{
	for (uint32_t i = 0; i < m->naside; i++)
		if (m->aside[i].seq == seq) {
			*ip = i;
			return &m->aside[i];
		}
	return NULL;
}

/* An ack of member key for seq that is about an exchange kept aside (in
 * group share, or "" for any); false if none is. */
bool
share_aside_ack(struct topicd *td, const struct rec_ack *r)
{
	struct sub *g, *m = NULL;
	struct aside *a = NULL;
	uint32_t i = 0;

	TAILQ_FOREACH(g, &td->groups, group_entry) {
		if (r->share[0] != '\0' && strcmp(g->share, r->share) != 0)
			continue;
		for (uint16_t k = 0; k < g->nslots && a == NULL; k++)
			if ((m = g->members[k]) != NULL && strcmp(m->key, r->subkey) == 0)
				a = aside_find(m, r->seq, &i);
		if (a != NULL)
			break;
	}
	if (a == NULL)
		return false;
	if (r->kind != ACK_PUBREC)
		aside_remove(m, i);
	else {
		if (a->f.state == FL_SENT) {
			a->f.state = FL_RECEIVED;
			a->f.attempts = 0;
		}
		a->f.resend = true;
		a->f.rel_gen = gate_hold(td);	/* PUBREL once it is durable */
		td->need_sync = true;
	}
	sub_dirty(g);
	deliver_wake(g);
	return true;
}

/* The master stored message seq of member m in the dead-letter topic
 * (deliver_dead_letter_aside): it is no longer m's. */
void
share_aside_dead_lettered(struct sub *m, uint64_t seq)
{
	struct sub *g = m->group;
	uint32_t i = 0;

	if (aside_find(m, seq, &i) != NULL)
		aside_remove(m, i);
	sub_dirty(g);
	g->td->need_sync = true;
	deliver_wake(g);
}

/* A JSON-lines member online that a send aside waits for: retried as in
 * the group (share_retry_arm, share_retry_check). */
static bool
retried(const struct sub *m)
{
	return m != NULL && m->mode == MODE_JSON && !member_away(m);
}

/* The oldest send aside that waits for an answer, or INT64_MAX. */
int64_t
share_aside_oldest(const struct sub *g)
{
	int64_t oldest = INT64_MAX;

	for (uint16_t i = 0; i < g->nslots; i++) {
		const struct sub *m = g->members[i];

		for (uint32_t k = 0; retried(m) && k < m->naside; k++)
			if (!m->aside[k].f.resend && m->aside[k].f.last_ms < oldest)
				oldest = m->aside[k].f.last_ms;
	}
	return oldest;
}

/* Marks the sends aside unanswered for retry_ms; a member whose attempts
 * are used up is parked. */
void
share_aside_retry_check(struct sub *g, int64_t now)
{
	struct topicd *td = g->td;

	for (uint16_t i = 0; i < g->nslots; i++) {
		struct sub *m = g->members[i];

		for (uint32_t k = 0; retried(m) && k < m->naside; k++) {
			struct aside *a = &m->aside[k];

			if (a->f.resend || now - a->f.last_ms < td->retry_ms)
				continue;
			if (a->f.attempts < td->max_attempts)
				a->f.resend = true;
			else
				share_member_park(m, a->seq, a->f.attempts);
		}
	}
}

/* Is a member online owed something kept aside? */
bool
share_aside_online(const struct sub *g)
{
	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL && g->members[i]->naside > 0 &&
		    !member_away(g->members[i]))
			return true;
	return false;
}

bool
share_aside_any(const struct sub *g)
{
	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL && g->members[i]->naside > 0)
			return true;
	return false;
}

/* The oldest message an entry aside waits for, or UINT64_MAX. */
uint64_t
share_aside_min_seq(const struct sub *g)
{
	uint64_t min = UINT64_MAX;

	for (uint16_t i = 0; i < g->nslots; i++) {
		const struct sub *m = g->members[i];

		for (uint32_t k = 0; m != NULL && k < m->naside; k++)
			if (m->aside[k].f.state == FL_SENT && m->aside[k].seq < min)
				min = m->aside[k].seq;
	}
	return min;
}

/* After the group's record (share_encode), only when there are any (a
 * record without them reads as before): per member with some, its slot
 * + 1 and count, then seq, state, attempts and QoS of each; slot 0 ends. */
void
share_aside_encode(struct wbuf *w, const struct sub *g)
{
	if (!share_aside_any(g))
		return;
	for (uint16_t i = 0; i < g->nslots; i++) {
		const struct sub *m = g->members[i];

		if (m == NULL || m->naside == 0)
			continue;
		put_u16(w, m->slot);
		put_u32(w, m->naside);
		for (uint32_t k = 0; k < m->naside; k++) {
			put_u64(w, m->aside[k].seq);
			put_u8(w, m->aside[k].f.state);
			put_u32(w, m->aside[k].f.attempts);
			put_u8(w, m->aside[k].f.qos);
		}
	}
	put_u16(w, 0);
}

int
share_aside_decode(struct sub *g, struct rbuf *r)
{
	uint16_t slot = 0;
	uint32_t n = 0;

	if (r->left == 0)
		return 0;
	while (get_u16(r, &slot) == 0 && slot != 0) {
		struct sub *m = slot <= g->nslots ? g->members[slot - 1] : NULL;

		if (m == NULL || get_u32(r, &n) == -1 || n > r->left / 14)
			return -1;
		for (uint32_t k = 0; k < n; k++) {
			struct flight f = { .mi = slot };
			uint64_t seq = 0;

			get_u64(r, &seq);
			get_u8(r, &f.state);
			get_u32(r, &f.attempts);
			get_u8(r, &f.qos);
			if (r->err || (f.state != FL_SENT && f.state != FL_RECEIVED))
				return -1;
			aside_add(m, seq, &f);
		}
	}
	return r->err ? -1 : 0;
}
