/* SIGUSR1: one status line for the master, one per topic that is not cold
 * (a topicd runs, starts, stops, waits for room or for a restart, or the
 * topic failed).  No side effects.  A topic's seq is its newest message's,
 * as in the topicd's title. */
#include <unistd.h>

#include "broker.h"
#include "clock.h"
#include "log.h"

static const char *
state_name(enum child_state s)
{
	switch (s) {
	case CH_COLD:		return "cold";
	case CH_QUEUED:		return "waiting";
	case CH_PARKING:	return "stopping";
	case CH_STARTING:	return "starting";
	case CH_READY:		return "running";
	case CH_BACKOFF:	return "restarting";
	case CH_FAILED:		return "FAILED";
	case CH_STOPPING:	return "stopping";
	}
	return "?";
}

void
status_log(struct broker *b)
{
	int64_t now = mono_ms();
	unsigned listed = 0;
	struct child *c;

	RB_FOREACH(c, child_tree, &b->children)
		listed += c->state != CH_COLD;
	log_notice("status: master pid %ld uptime %llds clients %u topics %u forgotten %llu running %u "
	    "waiting %u listed %u spare %u messages in %llu out %llu bytes in %llu out %llu "
	    "stored %llu held %llu queued %llu%s%s",
	    (long)getpid(), (long long)(now - b->started_ms) / 1000, b->nclients,
	    b->ntopics, (unsigned long long)b->topics_forgotten, b->nlive, b->nqueued, listed,
	    b->nspares, (unsigned long long)b->msgs_in,
	    (unsigned long long)b->msgs_out, (unsigned long long)b->bytes_in,
	    (unsigned long long)b->bytes_out, (unsigned long long)b->stored_bytes,
	    (unsigned long long)b->held_bytes, (unsigned long long)b->chan_bytes,
	    b->store_full ? " FULL (max_store_size): publishes wait" : "",
	    b->held_over ? " HELD (max_held_bytes): publishers wait" : "");
	RB_FOREACH(c, child_tree, &b->children) {
		const struct rec_stats *s = &c->stats;

		if (c->state == CH_COLD)
			continue;
		log_notice("status: topic %s pid %ld %s%s%s uptime %llds restarts %llu poisoned %llu "
		    "subs %u online %u messages %llu bytes %llu disk %llu seq %llu lag %llu "
		    "oldest_unacked %llums held %u expired %llu", c->topic, (long)c->pid, state_name(c->state),
		    c->full ? " full" : "", c->probing ? " probing" : "",
		    c->ready_at && c->state == CH_READY ? (long long)(now - c->ready_at) / 1000 : 0LL,
		    (unsigned long long)c->restarts, (unsigned long long)c->poisoned,
		    s->subscribers, s->online,
		    (unsigned long long)s->messages, (unsigned long long)s->bytes,
		    (unsigned long long)s->disk_bytes,
		    (unsigned long long)(s->next_seq > 0 ? s->next_seq - 1 : 0),
		    (unsigned long long)s->lag,
		    (unsigned long long)s->oldest_unacked_ms, c->nheld_pub,
		    (unsigned long long)s->expired);
	}
}
