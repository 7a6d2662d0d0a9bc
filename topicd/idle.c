/* Going cold.  A topicd with nothing to do says so (IDLE, at most once per
 * record received); the master may then send STOP, after which it applies
 * what came before, says IDLE once more (IDLE_FINAL) and exits 0.  That
 * last IDLE carries what the master needs while no topicd runs: whether a
 * retained message is kept (and a copy of a small one, which the master
 * sends a clean session that subscribes), and every subscriber with
 * whether it has something to get, so that only a subscriber with a
 * backlog starts the topic again. */
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "topicd.h"

#define IDLE_LIST_BYTES	(8u << 20)	/* a longer list: "subscribers unknown" */
#define IDLE_CHEAP_ONLINE 16		/* online subscribers looked at per batch */
#define IDLE_DLQ_WAIT_MS 5000		/* STOP waits this long for DLQ_DONEs */

/* Anything to deliver to it, or waiting for its answer. */
static bool
has_backlog(const struct sub *s)
{
	return s->cursor < s->td->next_seq || s->nfl > 0 || s->ret_state != 0 ||
	    s->retained_rel != 0 || s->want_retained || s->dlq_req != 0;
}

/* Nothing to do: the batch committed, no room to wait for, and no online
 * subscriber that can be sent something or owes an answer. */
static bool
quiet(struct topicd *td)
{
	struct sub *s;

	if (td->batch_n > 0 || td->io_wait || td->need_sync || td->refusing || td->room_sent ||
	    !gate_clear(td) || td->ndlq > 0)
		return false;
	if (td->nonline == 0)
		return true;
	RB_FOREACH(s, sub_tree, &td->subs)
		if ((sub_online(s) && !s->parked && has_backlog(s)) ||
		    (s->is_group && share_aside_online(s)))
			return false;
	return true;
}

/* The subscribers and the groups' members fit in a record of at most
 * IDLE_LIST_BYTES and IDLE_MAX_SUBS entries: how many in *n. */
static bool
listable(struct topicd *td, uint32_t *n)
{
	size_t bytes = 0;
	struct sub *s;

	*n = 0;
	if (td->nsubs > IDLE_MAX_SUBS)
		return false;
	RB_FOREACH(s, sub_tree, &td->subs) {
		bytes += strlen(s->key) + 6;
		(*n)++;
		if (s->is_group)
			bytes += share_idle_bytes(s, n);
		if (*n > IDLE_MAX_SUBS || bytes > IDLE_LIST_BYTES)
			return false;
	}
	return true;
}

/* Nothing kept but subscribers with nothing to get or to answer: no
 * message, retained or staged one, no dead letter waiting for its
 * DLQ_DONE, and the list of subscribers complete, so that the master can
 * tell whether each is one a new store would be given again. */
static bool
keeps_nothing(struct topicd *td)
{
	struct sub *s;
	uint32_t n;

	if (td->kv == NULL || kv_failed(td->kv) || td->messages > 0 || td->has_retained ||
	    td->ndlq > 0 || stage_any(td, "S", 1) || !listable(td, &n))
		return false;
	RB_FOREACH(s, sub_tree, &td->subs)
		if (has_backlog(s) || (s->is_group && share_aside_any(s)))
			return false;
	return true;
}

/* The retained message, when it is small and has not expired: a last
 * IDLE carries a copy, which the master sends new subscribers while the
 * topic is cold, without starting it.  m is the caller's to release. */
static bool
retained_copy(struct topicd *td, struct msg *m)
{
	if (!td->has_retained || retain_get(td, m) != 1)
		return false;
	if (!msg_expired(m) && m->len + m->props_len + strlen(m->origin) <= IDLE_COPY_MAX)
		return true;
	msg_release(m);
	return false;
}

static void
send_idle(struct topicd *td, uint8_t flags)
{
	struct rec_idle r = { .rx = td->rx, .next_seq = td->next_seq, .bytes = td->bytes,
			      .flags = flags };
	struct rec_deliver d;
	struct kv_stats ks;
	struct sub *s;
	struct msg m;
	uint32_t n;
	bool copy = (flags & IDLE_FINAL) && retained_copy(td, &m);

	if (td->kv != NULL) {
		kv_get_stats(td->kv, &ks);
		r.disk_bytes = ks.disk_bytes;
	}
	if (td->has_retained)
		r.flags |= IDLE_RETAINED;
	if (copy)
		r.flags |= IDLE_RETAINED_COPY;
	if (td->kv != NULL && stage_any(td, "Sj/", 3))
		r.flags |= IDLE_STAGED;
	if (!(flags & IDLE_FINAL))
		;			/* the master uses the list of the last one only */
	else if (listable(td, &n))
		r.nsubs = n;
	else
		r.flags |= IDLE_SUBS_UNKNOWN;
	wbuf_reset(&td->wb);
	enc_idle(&td->wb, &r);
	if (r.nsubs > 0)
		RB_FOREACH(s, sub_tree, &td->subs) {
			enc_idle_sub(&td->wb, s->key, has_backlog(s) ||
			    (s->is_group && share_aside_any(s)));
			if (s->is_group)
				share_idle_members(s, &td->wb);
		}
	if (copy) {
		deliver_of_msg(&m, DF_RETAIN, &d);
		enc_idle_copy(&td->wb, &d);
		msg_release(&m);
	}
	dispatch_send(td, IPC_IDLE);
	idle_trim_ring(td);
	td->idle_rx = td->rx;
	td->idle_said = true;
}

/* The delivery ring's pages go back once it is empty and quiet: now, or
 * at the timer, which comes again while the ring is still in use. */
void
idle_trim_ring(struct topicd *td)
{
	struct timeval tv = { IPC_RING_QUIET_MS / 1000 + 1, 0 };

	if (td->dring == NULL || !ipc_ring_dirty(td->dring))
		return;
	(void)ipc_ring_trim(td->dring, IPC_RING_QUIET_MS);
	if (ipc_ring_dirty(td->dring) && td->dring_trim != NULL &&
	    evtimer_add(td->dring_trim, &tv) == -1)
		fatalx("topic %s: cannot set up the ring timer", td->topic);
}

/* At the end of a batch, when few subscribers are online (cheap to tell):
 * a topic that only stores, or whose subscribers have all they need, is
 * said idle at once, and may stop soon. */
void
idle_batch_end(struct topicd *td)
{
	if (td->nonline <= IDLE_CHEAP_ONLINE)
		idle_tick(td);
}

/* Once a second: IDLE, if quiet and not said since the last record. */
void
idle_tick(struct topicd *td)
{
	if (td->stop_asked)
		idle_stop_now(td);	/* past IDLE_DLQ_WAIT_MS */
	if (td->stop_asked || (td->idle_said && td->idle_rx == td->rx) || !quiet(td))
		return;
	log_debug("topic %s: idle after %llu records", td->topic, (unsigned long long)td->rx);
	send_idle(td, 0);
}

/* STOP: once the batch that holds it is committed (dispatch_end_batch);
 * checkpoint (the broker is stopping): the store is closed with one. */
void
idle_stop_asked(struct topicd *td, bool checkpoint)
{
	td->stop_asked = true;
	td->stop_checkpoint = checkpoint;
	td->stop_asked_ms = mono_ms();
}

/* The batch with the STOP is durable and answered: the last word, and
 * out (an I/O error keeps us: the batch is retried first).  When the
 * broker is stopping, nothing is waited for that may not come: a disk
 * full ends us as SIGTERM does, without the last word (the master then
 * knows nothing of the topic), and a dead letter asked for is asked for
 * again by the next topicd (the dead-letter topic may be stopping too). */
void
idle_stop_now(struct topicd *td)
{
	if (td->stop_asked && td->stop_checkpoint && td->io_wait) {
		log_warnx("topic %s: stopping with a batch the disk did not take; it was not "
		    "acknowledged", td->topic);
		td->stop_asked = false;
		topicd_stop(td, 0);
		return;
	}
	if (!td->stop_asked || td->io_wait || !gate_clear(td))
		return;
	/* A dead letter asked for is answered first, if it comes soon: the
	 * next topicd would ask for it again, and it would be stored twice. */
	if (td->ndlq > 0 && !td->stop_checkpoint &&
	    mono_ms() - td->stop_asked_ms < IDLE_DLQ_WAIT_MS)
		return;
	td->stop_asked = false;		/* said once */
	td->went_idle = !td->stop_checkpoint;
	td->verdict_wait = keeps_nothing(td);
	send_idle(td, IDLE_FINAL | (td->verdict_wait ? IDLE_EMPTY : 0));
	log_info("topic %s: stopping: idle (%u subscribers, %u online)%s", td->topic, td->nsubs,
	    td->nonline, td->verdict_wait ? ", keeping nothing" : "");
	if (!td->verdict_wait)
		topicd_stop(td, 0);
}

/* The master's answer to a last IDLE that said IDLE_EMPTY: FORGET (the
 * store is deleted as we exit) or KEEP. */
void
idle_verdict(struct topicd *td, bool forget)
{
	td->verdict_wait = false;
	td->forget = forget;
	topicd_stop(td, 0);
}
