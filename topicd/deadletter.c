/* Dead letters of a subscriber's messages: a head that used up its
 * attempts (max_delivery_attempts), a group member's entry kept aside
 * that did (share_aside.c), or the oldest message of an MQTT subscriber
 * too far behind (max_queued_messages).  The topicd asks the
 * master to store it in the dead-letter topic and moves the cursor past
 * it only when the master says it is stored (DLQ_DONE); one the master
 * could not store is asked for again DLQ_RETRY_MS later.  One request at
 * a time per subscriber, answered by the master whatever happens: a
 * message is never dead-lettered twice by one topicd. */
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "topicd.h"

#define DLQ_RETRY_MS	1000

/* Asks the master to store message seq (m, released here) in the
 * dead-letter topic; nothing moves until DLQ_DONE, and the subscriber is
 * not pumped meanwhile. */
static void
send_deadletter(struct sub *s, uint64_t seq, struct msg *m, const char *reason)
{
	struct topicd *td = s->td;
	struct rec_deadletter d = {
		.req = ++td->dlq_next, .reason = reason, .subkey = s->key, .seq = seq,
		.flags = m->flags, .time_ms = m->time_ms, .payload = m->payload,
		.payload_len = m->len,
	};

	wbuf_reset(&td->wb);
	enc_deadletter(&td->wb, &d);
	msg_release(m);
	dispatch_send(td, IPC_DEADLETTER);
	td->ndlq++;
	s->dlq_req = d.req;
	s->dlq_seq = d.seq;
}

/* max_queued: an MQTT subscriber (online or not) with more than
 * max_queued messages queued beyond those in flight (as mosquitto counts
 * them) has the oldest queued one dead-lettered, reason maxlen, one at a
 * time: the message is never just dropped.  One in flight is not: it may
 * be in the client's hands already. */
static void
deliver_maxlen(struct sub *s)
{
	struct topicd *td = s->td;
	uint64_t oldest = s->cursor + s->nfl;
	struct msg m;

	if (td->max_queued == 0 || s->mode != MODE_MQTT || s->dlq_req != 0 ||
	    td->deliver_upto <= oldest || td->deliver_upto - oldest <= td->max_queued ||
	    mono_ms() < td->dlq_retry_ms)
		return;
	/* A head never answered holds the span: max_delivery_attempts ends it. */
	if (s->nfl >= deliver_span_max(s) || !log_get(td, oldest, &m))
		return;
	send_deadletter(s, oldest, &m, "maxlen");
	log_info("topic %s: %s has more than %u messages queued; message %llu dead-lettered",
	    td->topic, s->key, td->max_queued, (unsigned long long)s->dlq_seq);
}

void
deliver_maxlen_all(struct topicd *td)
{
	struct sub *s;

	if (td->max_queued == 0)
		return;
	RB_FOREACH(s, sub_tree, &td->subs)
		deliver_maxlen(s);
}

/* The subscriber's timer checks its head again ms from now. */
static void
check_head_later(struct sub *s, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	s->check_head = true;
	if (s->timer != NULL && evtimer_add(s->timer, &tv) == 0)
		s->retry_due = true;
}

/* Asks the master to store the exhausted head in the dead-letter topic;
 * the cursor stays until DLQ_DONE.  True while one is outstanding. */
bool
deliver_dead_letter_head(struct sub *s)
{
	struct topicd *td = s->td;
	struct msg m;

	while (s->nfl > 0 && s->fl[0].state == FL_SENT &&
	    s->fl[0].attempts >= td->max_attempts) {
		bool own = td->dlq_topic != NULL && strcmp(td->topic, td->dlq_topic) == 0;

		if (!own && mono_ms() < td->dlq_retry_ms) {
			check_head_later(s, td->dlq_retry_ms - mono_ms());
			return true;
		}
		if (own || !log_get(td, s->cursor, &m)) {
			log_warnx("topic %s: message %llu used %u attempts for %s; dropped",
			    td->topic, (unsigned long long)s->cursor, s->fl[0].attempts, s->key);
			sub_set_state(s, &s->fl[0], FL_DONE);
			sub_advance(s);
			continue;
		}
		send_deadletter(s, s->cursor, &m, "max_attempts");
		log_info("topic %s: message %llu used %u attempts for %s; dead-lettered",
		    td->topic, (unsigned long long)s->dlq_seq, s->fl[0].attempts, s->key);
		return true;
	}
	return false;
}

/* An entry kept aside for member m (share_aside.c) that used up its
 * attempts: asked for under the member's key, as a head is, one at a time
 * per member; it stays aside until DLQ_DONE.  True while it waits; false
 * when it cannot be dead-lettered (gone from the log, or of the
 * dead-letter topic itself): the caller drops it. */
bool
deliver_dead_letter_aside(struct sub *m, uint64_t seq, uint32_t attempts)
{
	struct sub *g = m->group;
	struct topicd *td = g->td;
	bool own = td->dlq_topic != NULL && strcmp(td->topic, td->dlq_topic) == 0;
	struct msg msg;

	if (m->dlq_req != 0)
		return true;
	if (!own && mono_ms() < td->dlq_retry_ms) {
		check_head_later(g, td->dlq_retry_ms - mono_ms());
		return true;
	}
	if (own || !log_get(td, seq, &msg)) {
		log_warnx("topic %s: message %llu of %s used %u attempts for %s; dropped",
		    td->topic, (unsigned long long)seq, g->share, attempts, m->key);
		return false;
	}
	send_deadletter(m, seq, &msg, "max_attempts");
	log_info("topic %s: message %llu of %s used %u attempts for %s; dead-lettered",
	    td->topic, (unsigned long long)seq, g->share, attempts, m->key);
	return true;
}

/* The master could not store it: the message stays, and is asked for
 * again DLQ_RETRY_MS later (the subscriber's timer, or a member's
 * group's, wakes its head check; max_queued is checked after every
 * batch). */
static void
dlq_failed(struct sub *s)
{
	log_warnx("topic %s: message %llu of %s could not be dead-lettered; asked again in "
	    "%d ms", s->td->topic, (unsigned long long)s->dlq_seq, s->key, DLQ_RETRY_MS);
	s->td->dlq_retry_ms = mono_ms() + DLQ_RETRY_MS;
	check_head_later(s->group != NULL ? s->group : s, DLQ_RETRY_MS);
}

/* The dead letter is stored: move the cursor past it and go on. */
void
deliver_dlq_done(struct topicd *td, const struct rec_dlq_done *r)
{
	struct sub *s;
	struct flight *f;

	RB_FOREACH(s, sub_tree, &td->subs)
		if (s->dlq_req == r->req)
			break;
	if (s == NULL)
		s = share_member_of_dlq(td, r->req);
	if (s == NULL) {
		log_debug("topic %s: DLQ_DONE %llu: no such dead letter", td->topic,
		    (unsigned long long)r->req);
		return;
	}
	s->dlq_req = 0;
	td->ndlq--;
	if (!r->stored) {
		dlq_failed(s);
		return;
	}
	if (s->group != NULL) {
		share_aside_dead_lettered(s, s->dlq_seq);
		return;
	}
	if ((f = sub_flight(s, s->dlq_seq)) != NULL) {
		if (f->state != FL_DONE)
			sub_set_state(s, f, FL_DONE);
	} else if (s->dlq_seq == s->cursor + s->nfl) {
		(void)sub_push(s, FL_DONE);	/* a queued message, never sent */
	}
	sub_advance(s);
	sub_dirty(s);
	s->check_head = true;
	td->need_sync = true;
	deliver_wake(s);
}

