/* Recent messages kept in memory, so that fan-out and a subscriber a
 * little behind do not read each message back from the store: a slot
 * per sequence number modulo cache_slots, at most TD_CACHE_BYTES of
 * payload in all, nothing over TD_CACHE_MAX_PAYLOAD.  The slots are
 * allocated with the first message, TD_CACHE_FIRST of them, and doubled
 * up to TD_CACHE_SLOTS when a message would take the slot of an older one
 * still kept: a topicd whose subscribers keep up, or that carries few
 * messages (100,000 topics), touches a page or two, not TD_CACHE_SLOTS
 * of them. */
#include <assert.h>
#include <stdlib.h>

#include "topicd.h"
#include "xmalloc.h"

/* Twice the slots.  Two messages in different slots of n are in
 * different slots of 2n, so each moves to its place without a loss. */
static void
grow(struct topicd *td)
{
	size_t n = td->cache_slots;
	struct msg *old = td->cache;

	td->cache = xcalloc(2 * n, sizeof(*td->cache));
	td->cache_slots = 2 * n;
	for (size_t i = 0; i < n; i++) {
		if (old[i].buf == NULL)
			continue;
		assert(td->cache[old[i].seq % (2 * n)].buf == NULL);
		td->cache[old[i].seq % (2 * n)] = old[i];
	}
	free(old);
}

static struct msg *
slot(struct topicd *td, uint64_t seq)
{
	struct msg *c;

	if (td->cache == NULL) {
		td->cache = xcalloc(TD_CACHE_FIRST, sizeof(*td->cache));
		td->cache_slots = TD_CACHE_FIRST;
	}
	c = &td->cache[seq % td->cache_slots];
	while (c->buf != NULL && c->seq != seq && td->cache_slots < TD_CACHE_SLOTS) {
		grow(td);
		c = &td->cache[seq % td->cache_slots];
	}
	return c;
}

static void
drop(struct topicd *td, struct msg *c)
{
	if (c->buf == NULL)
		return;
	td->cache_bytes -= c->len;
	msg_release(c);
}

/* May a message of len bytes go into slot c (emptied)? */
static bool
fits(struct topicd *td, struct msg *c, size_t len)
{
	drop(td, c);
	return len <= TD_CACHE_MAX_PAYLOAD && td->cache_bytes + len <= TD_CACHE_BYTES;
}

/* A copy of m, just appended. */
void
cache_put(struct topicd *td, const struct msg *m)
{
	struct msg *c = slot(td, m->seq);

	if (!fits(td, c, m->len))
		return;
	msg_copy(c, m);
	td->cache_bytes += c->len;
}

/* m, read from the store, is kept (m->buf then belongs to the cache and
 * m stays valid until the next store call) if it fits. */
void
cache_adopt(struct topicd *td, struct msg *m)
{
	struct msg *c = slot(td, m->seq);

	if (!fits(td, c, m->len))
		return;
	*c = *m;
	m->buf = NULL;
	td->cache_bytes += c->len;
}

/* Message seq, borrowed from the cache: 1, or 0 when not there. */
int
cache_get(struct topicd *td, uint64_t seq, struct msg *m)
{
	struct msg *c;

	if (td->cache == NULL)
		return 0;
	c = &td->cache[seq % td->cache_slots];
	if (c->buf == NULL || c->seq != seq)
		return 0;
	*m = *c;
	m->buf = NULL;
	return 1;
}

/* Drops message seq (deleted from the log); true, with its payload's
 * length, if it was there. */
bool
cache_forget(struct topicd *td, uint64_t seq, size_t *len)
{
	struct msg *c;

	if (td->cache == NULL)
		return false;
	c = &td->cache[seq % td->cache_slots];
	if (c->buf == NULL || c->seq != seq)
		return false;
	*len = c->len;
	drop(td, c);
	return true;
}

void
cache_clear(struct topicd *td)
{
	if (td->cache == NULL)
		return;
	for (size_t i = 0; i < td->cache_slots; i++)
		drop(td, &td->cache[i]);
	free(td->cache);
	td->cache = NULL;
	td->cache_slots = 0;
}
