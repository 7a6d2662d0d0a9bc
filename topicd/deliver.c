/* Delivery: fan-out of the log into the subscribers' delivery sockets,
 * within each one's window, with back-pressure per subscriber, acks and
 * dead letters.
 *
 * A subscriber is pumped (deliver_pump) after every batch that concerns it
 * and when its socket becomes writable again.  A pump sends, in order: a
 * dead letter for an exhausted head (on resume only), the retained message
 * (on subscribe), the entries marked for resending, then new messages
 * while the window allows.  EAGAIN stops the pump with nothing changed
 * for the record that did not go out. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "ipc.h"
#include "log.h"
#include "topicd.h"

static void on_writable(evutil_socket_t, short, void *);

/* Entries between the cursor and the next message to send: at most the
 * window not completed, and a bounded span in all, so that a head that is
 * never acked cannot grow the record without end. */
uint32_t
deliver_span_max(const struct sub *s)
{
	return (uint32_t)s->window * 4 + 16;
}

/* MQTT: the lower of the message's and the granted QoS.  JSON-lines has
 * one exchange for every message (PUB, PUBREC, PUBREL, PUBCOMP, one at a
 * time), so its consumers get the granted QoS whatever the publisher's. */
static uint8_t
deliver_qos(const struct sub *s, const struct msg *m)
{
	if (s->mode == MODE_JSON || m->qos > s->qos)
		return s->qos;
	return m->qos;
}

/* After a send that failed with errno. */
static int
send_failed(struct sub *s)
{
	struct topicd *td = s->td;

	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		s->blocked = true;
		if (event_add(s->wev, NULL) == -1)
			fatalx("cannot add a write event");
		return SEND_LATER;
	}
	if (errno == ENOBUFS || errno == ENOMEM || errno == EMFILE || errno == ENFILE) {
		log_warn("topic %s: delivery to %s", td->topic, s->key);
		retry_soon(s->group != NULL ? s->group : s);
		return SEND_LATER;
	}
	log_info("topic %s: delivery socket of %s: %s; now offline", td->topic,
	    s->key, strerror(errno));
	deliver_offline(s);
	return SEND_GONE;
}

/* Sends the datagram of records packed for the subscriber, if any. */
int
deliver_flush(struct sub *s)
{
	if (s->out.len == 0 || ipc_out_flush(s->fd, &s->out) == 0)
		return SEND_OK;
	return send_failed(s);
}

/* Adds td->wb as a record to the subscriber's datagram (sent when full
 * and at the end of the pump: one system call for many records); a large
 * record goes alone, from td->wb (IPC_ALONE), or by memfd. */
static int
sub_send(struct sub *s, uint16_t type)
{
	struct topicd *td = s->td;
	bool alone = td->wb.len >= IPC_ALONE;
	int rc;

	if (!alone && ipc_out_add(&s->out, type, td->wb.data, td->wb.len) == 0)
		return SEND_OK;
	if ((rc = deliver_flush(s)) != SEND_OK)
		return rc;
	if (!alone && ipc_out_add(&s->out, type, td->wb.data, td->wb.len) == 0)
		return SEND_OK;
	if (ipc_send(s->fd, type, td->wb.data, td->wb.len, -1) == 0)
		return SEND_OK;
	return send_failed(s);
}

/* The DELIVER record of message m for subscriber s (it points into m). */
static void
fill_deliver(struct sub *s, const struct msg *m, uint8_t flags, struct rec_deliver *d)
{
	struct topicd *td = s->td;

	deliver_of_msg(m, flags, d);
	d->topic = td->topic;
	d->qos = deliver_qos(s, m);
	d->share = s->share;
}

/* m as a delivery at its own QoS, with flags, to no one yet: topic and
 * share are "". */
void
deliver_of_msg(const struct msg *m, uint8_t flags, struct rec_deliver *d)
{
	memset(d, 0, sizeof(*d));
	d->topic = "";
	d->seq = m->seq;
	d->qos = m->qos;
	d->flags = flags | ((m->flags & PF_JSON) ? DF_JSON : 0) |
	    ((m->flags & PF_RETAIN) ? DF_PUBRETAIN : 0);
	d->payload = m->payload;
	d->payload_len = m->len;
	d->props = m->props;
	d->props_len = m->props_len;
	d->expiry_ms = m->expiry_ms;
	d->origin = m->origin;
	d->share = "";
}

/* Sends DELIVER d.  One with a large payload goes alone, the payload from
 * where it is (the message d points into stays valid until this returns);
 * the others are framed in td->wb and packed by sub_send. */
static int
send_deliver(struct sub *s, const struct rec_deliver *d)
{
	struct topicd *td = s->td;
	struct iovec iov[3];
	size_t head;
	int rc;

	wbuf_reset(&td->wb);
	if (d->payload_len < IPC_ALONE) {
		enc_deliver(&td->wb, d);
		return sub_send(s, IPC_DELIVER);
	}
	enc_deliver_head(&td->wb, d);
	head = td->wb.len;
	enc_deliver_tail(&td->wb, d);
	wbuf_around(&td->wb, head, d->payload, d->payload_len, iov);
	if ((rc = deliver_flush(s)) != SEND_OK)
		return rc;
	/* A QoS 0 delivery never goes by ring: should this topicd end before
	 * the master reads it, the master could no longer find the ring, and
	 * nobody sends a QoS 0 delivery again.  The others are sent again by
	 * the next topicd. */
	if (ipc_sendv_ring(s->fd, d->qos > 0 ? td->dring : NULL, IPC_DELIVER, iov, 3) == 0)
		return SEND_OK;
	return send_failed(s);
}

/* Is m expired for s?  Not a resend (DF_DUP) to an MQTT subscriber:
 * one sent before goes again all the same (MQTT 4.4), and the master
 * alone knows whether it was. */
static bool
expired_for(const struct sub *s, const struct msg *m, uint8_t flags)
{
	return msg_expired(m) && !((flags & DF_DUP) && s->mode == MODE_MQTT);
}

/* Sends DELIVER for message seq; *qos is the QoS it went out with (0 for
 * a message that is missing or expired: skipped, as if delivered at QoS
 * 0). */
int
deliver_send_msg(struct sub *s, uint64_t seq, uint8_t flags, uint8_t *qos)
{
	struct topicd *td = s->td;
	struct rec_deliver d;
	struct msg m;
	int rc;

	*qos = 0;
	if (!log_get(td, seq, &m)) {
		log_warnx("topic %s: message %llu is missing; skipped for %s",
		    td->topic, (unsigned long long)seq, s->key);
		return SEND_OK;
	}
	if (expired_for(s, &m, flags)) {
		log_debug("topic %s: message %llu expired; skipped for %s", td->topic,
		    (unsigned long long)seq, s->key);
		msg_release(&m);
		td->expired++;
		td->stats_dirty = true;
		return SEND_OK;
	}
	fill_deliver(s, &m, flags, &d);
	rc = send_deliver(s, &d);
	msg_release(&m);
	*qos = d.qos;
	return rc;
}

int
deliver_send_rel(struct sub *s, uint64_t seq)
{
	struct rec_deliver_rel d = { s->td->topic, seq, s->share };

	wbuf_reset(&s->td->wb);
	enc_deliver_rel(&s->td->wb, &d);
	return sub_send(s, IPC_DELIVER_REL);
}

void
deliver_sent(struct sub *s, struct flight *f, int64_t now)
{
	/* A resend because this topicd was restarted is not the
	 * subscriber's doing: it does not count against it. */
	if (!s->restored)
		f->attempts++;
	f->last_ms = now;
	if (f->first_ms == 0)
		f->first_ms = now;
	f->resend = false;
	sub_dirty(s);
}

/* The retained message, unless the subscriber gets it from the log anyway
 * or it expired (then it is removed).  At QoS 1 and 2 its exchange is
 * remembered (ret_seq, ret_state), so that a session that comes back gets
 * it again, as MQTT 4.4 asks. */
static int
send_retained(struct sub *s, bool again)
{
	struct topicd *td = s->td;
	struct rec_deliver d;
	struct msg m;
	int rc;

	if (!td->has_retained || (!again && td->retained_seq >= s->cursor) ||
	    (again && td->retained_seq != s->ret_seq) || !retain_get(td, &m)) {
		if (again) {
			s->ret_state = 0;	/* replaced since: that exchange is over */
			sub_dirty(s);
		}
		return SEND_OK;
	}
	if (msg_expired(&m)) {
		msg_release(&m);
		retain_expire(td);
		s->ret_state = 0;
		sub_dirty(s);
		return SEND_OK;
	}
	fill_deliver(s, &m, DF_RETAIN | (again ? DF_DUP : 0), &d);
	rc = send_deliver(s, &d);
	msg_release(&m);
	if (rc == SEND_OK && d.qos > 0) {
		s->ret_seq = d.seq;
		s->ret_state = FL_SENT;
		sub_dirty(s);
	}
	return rc;
}

/* Entries marked for resending: DELIVER with DF_DUP, or DELIVER_REL. */
static int
resend(struct sub *s)
{
	int64_t now = mono_ms();
	uint8_t qos = 0;
	int rc;

	for (uint32_t i = 0; i < s->nfl; i++) {
		struct flight *f = &s->fl[i];

		if (!f->resend || (f->state == FL_RECEIVED && !gate_open(s->td, f->rel_gen)))
			continue;
		if (f->state == FL_SENT)
			rc = deliver_send_msg(s, s->cursor + i, DF_DUP, &qos);
		else
			rc = deliver_send_rel(s, s->cursor + i);
		if (rc != SEND_OK)
			return rc;
		deliver_sent(s, f, now);
		if (f->state == FL_SENT && qos == 0)
			sub_set_state(s, f, FL_DONE);
	}
	s->restored = false;
	sub_advance(s);
	return SEND_OK;
}

/* New messages while the window allows; QoS 0 ones complete at once. */
static int
send_new(struct sub *s)
{
	struct topicd *td = s->td;
	int64_t now = mono_ms();
	struct flight *f;
	uint32_t sent = 0;
	uint8_t qos;
	int rc;

	while (s->cursor + s->nfl < td->deliver_upto && s->busy < s->window &&
	    s->nfl < deliver_span_max(s)) {
		if (sent++ == TD_PUMP_QUANTUM) {
			deliver_wake(s);	/* the rest after the others' turns */
			break;
		}
		rc = deliver_send_msg(s, s->cursor + s->nfl, 0, &qos);
		if (rc != SEND_OK)
			return rc;
		f = sub_push(s, qos == 0 ? FL_DONE : FL_SENT);
		deliver_sent(s, f, now);
		if (qos == 0)
			sub_advance(s);
	}
	return SEND_OK;
}

static void pump(struct sub *);

/* Sends what the subscriber can be sent now: what was packed before the
 * socket filled up first, then the pump's records, packed. */
void
deliver_pump(struct sub *s)
{
	if (s->group != NULL)
		s = s->group;
	if (s->is_group) {
		share_pump(s);
		return;
	}
	if (s->fd == -1 || s->blocked || deliver_flush(s) != SEND_OK)
		return;
	pump(s);
	if (s->fd != -1 && !s->blocked)
		(void)deliver_flush(s);
}

static void
pump(struct sub *s)
{
	if (s->parked || s->dlq_req != 0 || !gate_open(s->td, s->hold_gen))
		return;
	/* Not in the middle of a batch (gate.c holds what it made). */
	if (s->td->batch_n > 0 || s->td->io_wait) {
		deliver_wake(s);
		return;
	}
	if (s->check_head) {
		s->check_head = false;
		if (deliver_dead_letter_head(s))
			return;
	}
	if (s->ret_resend) {
		if (send_retained(s, true) != SEND_OK)
			return;
		s->ret_resend = false;
	}
	/* A retained message is sent once durable, like the log's (the gate
	 * that makes it so wakes every subscriber). */
	if (s->want_retained &&
	    (!s->td->has_retained || s->td->retained_seq < s->td->deliver_upto)) {
		if (send_retained(s, false) != SEND_OK)
			return;
		s->want_retained = false;
	}
	if (s->retained_rel != 0 && gate_open(s->td, s->ret_gen)) {
		if (deliver_send_rel(s, s->retained_rel) != SEND_OK)
			return;
		s->retained_rel = 0;
	}
	if (s->rel_again != 0) {
		if (deliver_send_rel(s, s->rel_again) != SEND_OK)
			return;
		s->rel_again = 0;
	}
	if (resend(s) != SEND_OK || send_new(s) != SEND_OK)
		return;
	retry_arm(s);
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct sub *s = arg;

	(void)fd;
	(void)what;
	s->blocked = false;
	deliver_pump(s);
}

/* The settings of an ATTACH. */
static void
take_settings(struct sub *s, const struct rec_attach *r)
{
	s->mode = r->mode;
	s->qos = r->qos;
	s->window = r->window < TD_WINDOW_MAX ? r->window : TD_WINDOW_MAX;
	if (s->window == 0)
		s->window = 1;
}

/* The subscriber (or a group's member) takes the session's delivery
 * socket (fd) and the settings of the ATTACH. */
void
deliver_take_socket(struct sub *s, int fd, const struct rec_attach *r)
{
	struct topicd *td = s->td;
	int fl;

	deliver_offline(s);
	if ((fl = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		log_warn("topic %s: %s: delivery socket", td->topic, s->key);
	s->fd = fd;
	if ((s->wev = event_new(td->base, fd, EV_WRITE, on_writable, s)) == NULL)
		fatalx("cannot create a write event");
	take_settings(s, r);
	td->nonline++;
}

/* The connection that is attached subscribes again (AF_SAME_CONN): it
 * keeps its socket (fd, a copy, is closed) and what is in flight goes on,
 * not again (MQTT 5.0 resends only on reconnect, 4.4.0-1; a JSON-lines
 * consumer would get a duplicate that costs it an attempt); the new
 * settings apply.  False: another connection, whose socket is taken, or
 * a parked JSON-lines consumer, which its SUB resumes. */
bool
deliver_same_connection(struct sub *s, int fd, const struct rec_attach *r)
{
	if (!(r->flags & AF_SAME_CONN) || s->fd == -1)
		return false;
	if (r->mode != MODE_MQTT && !(r->mode == MODE_JSON && !s->parked))
		return false;
	if (close(fd) == -1)
		log_warn("topic %s: %s: close", s->td->topic, s->key);
	take_settings(s, r);
	return true;
}

/* Takes over the session's delivery socket (fd) and resumes: entries in
 * flight are sent again, the head is checked for dead-lettering. */
void
deliver_attach(struct sub *s, int fd, const struct rec_attach *r)
{
	struct topicd *td = s->td;

	if (deliver_same_connection(s, fd, r)) {
		s->want_retained = (r->flags & AF_RETAINED) != 0;
		sub_dirty(s);
		deliver_wake(s);
		return;
	}
	deliver_take_socket(s, fd, r);
	if (s->timer == NULL && (s->timer = evtimer_new(td->base, retry_timer_cb, s)) == NULL)
		fatalx("cannot create a timer");
	s->parked = false;
	for (uint32_t i = 0; i < s->nfl; i++)
		s->fl[i].resend = s->fl[i].state != FL_DONE;
	s->want_retained = (r->flags & AF_RETAINED) != 0;
	/* A retained message's exchange left unfinished goes on. */
	s->ret_resend = s->ret_state == FL_SENT;
	if (s->ret_state == FL_RECEIVED)
		s->retained_rel = s->ret_seq;
	s->check_head = true;
	sub_dirty(s);
	deliver_wake(s);
}

/* ATTACH without a socket: the subscriber exists (from now on, if new)
 * and keeps its settings, but nothing is sent until a real ATTACH. */
void
deliver_register(struct sub *s, const struct rec_attach *r)
{
	if (s->fd != -1)
		return;		/* online: the live settings win */
	take_settings(s, r);
	sub_dirty(s);
}

/* Drops the delivery socket; the cursor and entries stay.  A group's
 * members all go offline; a member's messages in flight go to the other
 * members. */
void
deliver_offline(struct sub *s)
{
	if (s->is_group) {
		share_offline_all(s);
		return;
	}
	if (s->fd == -1)
		return;
	event_free(s->wev);
	s->wev = NULL;
	if (s->timer != NULL)
		evtimer_del(s->timer);
	if (close(s->fd) == -1)
		log_warn("topic %s: %s: close", s->td->topic, s->key);
	s->fd = -1;
	s->out.len = 0;		/* unsent: in flight, sent again on the next ATTACH */
	s->out.n = 0;
	s->blocked = false;
	s->want_retained = false;
	s->retained_rel = 0;
	s->rel_again = 0;
	s->ret_resend = false;
	s->td->nonline--;
	s->td->stats_dirty = true;
	if (s->group != NULL)
		share_member_offline(s);
	else if (s->mode == MODE_JSON)
		share_wake_groups_of(s->td, s->key);	/* they may pick it now */
}

/* A consumer's PUBREC for the message its last PUBCOMP completed (a
 * repeat: it lost the PUBREL, or sent the PUBREC twice): the PUBREL goes
 * again, as a publisher's PUBREL for an unknown id gets its PUBCOMP; the
 * PUBCOMP that answers it changes nothing.  Not for any other message
 * behind the cursor (one dead-lettered, expired, or from before it
 * subscribed: a PUBREL would have it take as completed a message it was
 * not given), nor to a consumer offline or parked. */
static bool
rel_again(struct sub *s, uint64_t seq)
{
	if (s->mode != MODE_JSON || s->is_group || s->group != NULL || !sub_online(s) ||
	    s->parked || seq == 0 || seq != s->last_done)
		return false;
	s->rel_again = seq;
	deliver_wake(s);
	return true;
}

/* A parked consumer answers after all: it is not gone.  What it answered
 * goes on (the PUBREL, or the next message), and the retrial with it. */
static void
unpark(struct sub *s, uint64_t seq)
{
	s->parked = false;
	sub_dirty(s);
	log_info("topic %s: %s answered message %llu after all; resumed", s->td->topic,
	    s->key, (unsigned long long)seq);
}

void
deliver_ack(struct topicd *td, const struct rec_ack *r)
{
	/* An MQTT session's ack names the group of a member's delivery, or
	 * none for its own subscription's; a JSON-lines consumer's names none
	 * (it is its own, or else a member's: such a consumer is not both). */
	struct sub *s = r->share[0] == '\0' ? sub_find(td, r->subkey) : NULL;
	struct flight *f = s != NULL ? sub_flight(s, r->seq) : NULL;
	bool any_group = r->share[0] != '\0' || s == NULL || s->mode == MODE_JSON;
	/* A consumer's own subscription that is offline (UNSUB keeps it)
	 * gets no acks: its groups' deliveries come first. */
	bool own_first = f != NULL && f->state != FL_DONE &&
	    !(s->mode == MODE_JSON && !sub_online(s));

	if (!own_first && !TAILQ_EMPTY(&td->groups) && any_group &&
	    !(s != NULL && s->ret_state != 0 && r->seq == s->ret_seq) &&
	    !share_ack_find(td, r->subkey, r->share, r->seq, &s, &f) &&
	    share_aside_ack(td, r))
		return;
	if (f == NULL && s != NULL && s->ret_state != 0 && r->seq == s->ret_seq) {
		/* The retained message sent on subscribe, outside the log's
		 * window: PUBACK or PUBCOMP end it; PUBREC is made durable
		 * and the PUBREL goes once it is, like every other. */
		if (r->kind == ACK_PUBCOMP && s->ret_state == FL_RECEIVED)
			s->last_done = r->seq;
		s->ret_state = r->kind == ACK_PUBREC ? FL_RECEIVED : 0;
		if (r->kind == ACK_PUBREC) {
			s->retained_rel = r->seq;
			s->ret_gen = gate_hold(td);
			td->need_sync = true;
		}
		sub_dirty(s);
		deliver_wake(s);
		return;
	}
	if (f == NULL || f->state == FL_DONE) {
		if (r->kind == ACK_PUBREC && s != NULL && rel_again(s, r->seq))
			return;
		log_debug("topic %s: ack %u for %s seq %llu: not in flight, ignored",
		    td->topic, r->kind, r->subkey, (unsigned long long)r->seq);
		return;
	}
	if (s->parked && s->mode == MODE_JSON && !s->is_group && s->group == NULL &&
	    sub_online(s))
		unpark(s, r->seq);
	if (r->kind == ACK_PUBREC) {
		/* From now on attempts count PUBREL sends.  The new state must
		 * be durable before PUBREL goes out (rel_gen), so that the
		 * message is never sent again after a crash. */
		if (f->state == FL_SENT) {
			sub_set_state(s, f, FL_RECEIVED);
			f->attempts = 0;
		}
		f->resend = true;
		f->rel_gen = gate_hold(td);
		td->need_sync = true;
	} else {
		if (r->kind == ACK_PUBCOMP && f->state == FL_RECEIVED)
			s->last_done = r->seq;
		sub_set_state(s, f, FL_DONE);
	}
	sub_advance(s);
	sub_dirty(s);
	deliver_wake(s);
}

void
deliver_wake(struct sub *s)
{
	if (s->group != NULL)
		s = s->group;
	if (s->queued || !sub_online(s))
		return;
	s->queued = true;
	TAILQ_INSERT_TAIL(&s->td->work, s, work_entry);
	if (s->td->work_ev != NULL)
		event_active(s->td->work_ev, EV_TIMEOUT, 0);	/* also if no batch ends */
}

void
deliver_wake_all(struct topicd *td)
{
	struct sub *s;

	RB_FOREACH(s, sub_tree, &td->subs)
		deliver_wake(s);
}

/* Pumps the subscribers that want it, each in turn, until none does; one
 * that has more than TD_PUMP_QUANTUM new messages to go queues itself
 * again (send_new), behind the others, so that they are served between
 * its turns.  Not in the middle of a batch, nor while a commit waits for
 * room on the disk (a pump would only queue itself again): the batch's
 * end runs it then. */
void
deliver_run(struct topicd *td)
{
	struct sub *s;

	/* A pump's commit may find the disk full: then the rest wait too
	 * (each would only queue itself again, for ever). */
	while (td->batch_n == 0 && !td->io_wait && (s = TAILQ_FIRST(&td->work)) != NULL) {
		TAILQ_REMOVE(&td->work, s, work_entry);
		s->queued = false;
		deliver_pump(s);
	}
}
