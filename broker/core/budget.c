/* Bounds over all topics, crossed going up at the bound and going down at
 * 90% of it: max_held_bytes (the publishes the master holds on their way
 * to the topicds) here; max_store_size (children_budget) uses the same
 * crossing. */
#include <event2/event.h>

#include "core/core.h"
#include "log.h"

/* Past max (0: none) from now on?  It is crossed going up at max, and
 * going down at 90% of it, so that a sum that hovers there does not flap. */
bool
over_limit(uint64_t sum, uint64_t max, bool was)
{
	if (max == 0)
		return false;
	if (sum >= max)
		return true;
	return was && sum >= max - max / 10;
}

static uint64_t
held_sum(const struct broker *b)
{
	return b->held_bytes + b->chan_bytes;
}

/* max_held_bytes: what the master holds of publishes on their way to the
 * topicds, all together (held until answered, and queued on channels; a
 * publish queued while its answer is awaited is there twice).  Each
 * topic's share is bounded, but clients that come and go spread theirs
 * over as many topics as they like.  Past it, the topics that make it
 * grow (their topicd not running, or not keeping up: anything queued for
 * it) stall their publishers as a full topic does; topics whose topicds
 * keep up go on.  Below 90% of it, all go on. */
static bool
crossed(struct broker *b)
{
	uint64_t max = b->set.max_held_bytes, sum = held_sum(b);
	bool over = over_limit(sum, max, b->held_over);

	if (over == b->held_over)
		return false;
	b->held_over = over;
	if (over)
		log_notice("%llu bytes of publishes wait for topicds, max_held_bytes is %llu: "
		    "the publishers of topics whose topicds do not keep up wait",
		    (unsigned long long)sum, (unsigned long long)max);
	else
		log_notice("%llu bytes of publishes wait for topicds: below max_held_bytes "
		    "again", (unsigned long long)sum);
	return true;
}

/* What waits goes, or waits, and stalls its publishers, as the bound now
 * says. */
static void
apply(struct broker *b)
{
	struct child *c;

	RB_FOREACH(c, child_tree, &b->children) {
		child_pump(c);
		child_update_stalls(c);
	}
}

void
held_budget(struct broker *b)
{
	if (crossed(b))
		apply(b);
}

static void
on_budget(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	apply(arg);
}

/* From where the topics may not be pumped (a publish is taken, a held
 * request goes): the next publishes see the bound at once, and what
 * waits already is gone over from the loop. */
void
held_budget_later(struct broker *b)
{
	static const struct timeval now = { 0, 0 };

	if (!crossed(b))
		return;
	if (b->budget_ev == NULL && (b->budget_ev = evtimer_new(b->base, on_budget, b)) == NULL)
		fatalx("cannot create the max_held_bytes event");
	if (evtimer_add(b->budget_ev, &now) == -1)
		fatalx("cannot add the max_held_bytes event");
}
