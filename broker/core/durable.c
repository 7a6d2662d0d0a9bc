/* The master's own store (sessions, the topic registry) without waiting
 * for the disk in the event loop: a change is written at once (page
 * cache), the store's worker thread syncs it, and what depends on it
 * waits for its ticket:
 *   - a client's answers (CONNACK, SUBACK, OK ...) and everything after
 *     them are held in the client's gate (client.c) until durable;
 *   - other waiters (a new topic's publishes) are called back.
 * Commits are grouped by themselves: while one sync runs, what is written
 * meanwhile waits for the next.  A session's record is written once per
 * pass of the loop (durable_later), however many times it changed in it:
 * a client that sends thousands of SUBSCRIBEs in a row would otherwise
 * write all its filters again for each. */
#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

#include "core/core.h"
#include "kvstore.h"
#include "log.h"
#include "xmalloc.h"

#define DURABLE_RETRY_MS 1000	/* after a full disk */

struct waiter {
	TAILQ_ENTRY(waiter) entry;
	uint64_t	 ticket;
	durable_fn	*fn;
	void		*arg;
};

static void
release(struct broker *b)
{
	uint64_t done = kv_durable(b->store);
	struct waiter *w, *next;

	TAILQ_FOREACH_SAFE(w, &b->waiters, entry, next) {
		if (w->ticket > done)
			continue;
		TAILQ_REMOVE(&b->waiters, w, entry);
		w->fn(w->arg);
		free(w);
	}
	clients_ungate(b, done);
}

static void
on_store(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	if (kv_poll(b->store) == -1)
		fatalx("the session store in %s failed to sync: stopping so that a "
		    "restart recovers it from disk", b->set.data_dir);
	release(b);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)durable_write(arg);
}

static void
on_next(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	sessions_put_dirty(b);
	clients_gate_next(b, durable_write(b));
	release(b);		/* nothing was left to write: open at once */
}

/* Writes what is pending and asks for a sync; the ticket that makes it
 * durable.  On a full disk the write is retried every second. */
uint64_t
durable_write(struct broker *b)
{
	struct timeval tv = { DURABLE_RETRY_MS / 1000, 0 };

	sessions_put_linked(b);
	if (kv_flush(b->store) == -1) {
		if (errno != ENOSPC && errno != EDQUOT)
			fatalx("the session store in %s cannot be written", b->set.data_dir);
		if (!evtimer_pending(b->durable_retry, NULL)) {
			log_warnx("the disk is full: the session store waits; trying again "
			    "every second");
			if (evtimer_add(b->durable_retry, &tv) == -1)
				fatalx("cannot arm a timer");
		}
		return kv_written(b->store) + 1;
	}
	if (kv_sync_async(b->store) == -1)
		fatalx("the session store in %s cannot be synced", b->set.data_dir);
	return kv_written(b->store);
}

/* A write at the end of this pass of the loop, after the callbacks that
 * are ready: DURABLE_NEXT, its ticket to come (a client gated on it gets
 * it then, clients_gate_next).  Before the loop runs: at once. */
uint64_t
durable_later(struct broker *b)
{
	if (b->durable_next == NULL) {
		sessions_put_dirty(b);
		return durable_write(b);
	}
	event_active(b->durable_next, EV_TIMEOUT, 0);
	return DURABLE_NEXT;
}

bool
durable_reached(struct broker *b, uint64_t ticket)
{
	return kv_durable(b->store) >= ticket;
}

/* Calls fn(arg) once ticket is durable (at once if it is). */
void
durable_wait(struct broker *b, uint64_t ticket, durable_fn *fn, void *arg)
{
	struct waiter *w;

	if (durable_reached(b, ticket)) {
		fn(arg);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->ticket = ticket;
	w->fn = fn;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&b->waiters, w, entry);
}

void
durable_init(struct broker *b)
{
	b->store_ev = event_new(b->base, kv_event_fd(b->store), EV_READ | EV_PERSIST,
	    on_store, b);
	b->durable_retry = evtimer_new(b->base, on_retry, b);
	b->durable_next = event_new(b->base, -1, 0, on_next, b);
	if (b->store_ev == NULL || b->durable_retry == NULL || b->durable_next == NULL ||
	    event_add(b->store_ev, NULL) == -1)
		fatalx("cannot watch the session store");
}

void
durable_free(struct broker *b)
{
	struct waiter *w;

	while ((w = TAILQ_FIRST(&b->waiters)) != NULL) {
		TAILQ_REMOVE(&b->waiters, w, entry);
		free(w);
	}
	if (b->store_ev != NULL)
		event_free(b->store_ev);
	if (b->durable_retry != NULL)
		event_free(b->durable_retry);
	if (b->durable_next != NULL)
		event_free(b->durable_next);
	b->store_ev = b->durable_retry = b->durable_next = NULL;
}
