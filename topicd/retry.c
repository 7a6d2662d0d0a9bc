/* Timed retrial for JSON-lines consumers (MQTT sessions get resends only
 * when they attach again).  One timer per subscriber, due when the oldest
 * unanswered send is retry_ms old.  A send that goes unanswered is
 * repeated unchanged until max_attempts sends were made; then the
 * subscriber is parked, its cursor unchanged, until its next ATTACH. */
#include <stdint.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "topicd.h"

static void
timer_in(struct sub *s, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (evtimer_add(s->timer, &tv) == -1)
		fatalx("cannot add a timer");
}

/* Schedules the next retrial, or none if nothing waits for an answer. */
void
retry_arm(struct sub *s)
{
	int64_t oldest = INT64_MAX;

	if (s->is_group) {
		share_retry_arm(s);
		return;
	}
	if (s->timer == NULL || (s->retry_due && evtimer_pending(s->timer, NULL)))
		return;		/* a transient error's retry comes first */
	if (s->mode != MODE_JSON || s->fd == -1 || s->parked || s->busy == 0) {
		evtimer_del(s->timer);
		return;
	}
	for (uint32_t i = 0; i < s->nfl; i++)
		if (s->fl[i].state != FL_DONE && !s->fl[i].resend &&
		    s->fl[i].last_ms < oldest)
			oldest = s->fl[i].last_ms;
	if (oldest == INT64_MAX)
		evtimer_del(s->timer);
	else
		timer_in(s, oldest + s->td->retry_ms - mono_ms());
}

/* After a transient send error (no memory, no fds): try again shortly. */
void
retry_soon(struct sub *s)
{
	if (s->timer != NULL) {
		s->retry_due = true;
		timer_in(s, TD_SEND_RETRY_MS);
	}
}

static void
park(struct sub *s, const struct flight *f)
{
	struct topicd *td = s->td;

	s->parked = true;
	sub_dirty(s);
	evtimer_del(s->timer);
	log_info("topic %s: %s did not answer message %llu after %u attempts; parked",
	    td->topic, s->key, (unsigned long long)(s->cursor + (uint64_t)(f - s->fl)),
	    f->attempts);
}

/* Marks the entries due for a resend; parks when attempts are used up. */
static void
retry_check(struct sub *s)
{
	struct topicd *td = s->td;
	int64_t now = mono_ms();

	for (uint32_t i = 0; i < s->nfl; i++) {
		struct flight *f = &s->fl[i];

		if (f->state == FL_DONE || f->resend || now - f->last_ms < td->retry_ms)
			continue;
		if (f->attempts >= td->max_attempts) {
			park(s, f);
			return;
		}
		f->resend = true;
	}
}

void
retry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sub *s = arg;

	(void)fd;
	(void)what;
	s->retry_due = false;
	if (s->is_group)
		share_retry_check(s);
	else if (s->mode == MODE_JSON && s->fd != -1 && !s->parked)
		retry_check(s);
	deliver_pump(s);
}
