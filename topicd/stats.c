/* Figures: the STATS record for the master (on change, at most once a
 * second), the process title, and the status line for SIGUSR1. */
#include <string.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "clock.h"
#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "topicd.h"

void
stats_fill(struct topicd *td, struct rec_stats *st)
{
	struct kv_stats ks;
	struct sub *s;
	int64_t now = mono_ms(), oldest = now;

	memset(st, 0, sizeof(*st));
	st->subscribers = td->nsubs;
	st->online = td->nonline;
	st->first_seq = td->first_seq;
	st->next_seq = td->next_seq;
	st->messages = td->messages;
	st->bytes = td->bytes;
	RB_FOREACH(s, sub_tree, &td->subs) {
		if (td->next_seq - s->cursor > st->lag)
			st->lag = td->next_seq - s->cursor;
		for (uint32_t i = 0; i < s->nfl; i++)
			if (s->fl[i].state != FL_DONE && s->fl[i].first_ms != 0 &&
			    s->fl[i].first_ms < oldest)
				oldest = s->fl[i].first_ms;
	}
	st->oldest_unacked_ms = (uint64_t)(now - oldest);
	if (td->kv != NULL) {
		kv_get_stats(td->kv, &ks);
		st->commits = ks.commits;
		st->committed = ks.committed;
		st->disk_bytes = ks.disk_bytes;
	}
	st->full = td->refusing;
	st->expired = td->expired;
}

/* ps shows "topicd: sensors/temp subs=3 seq=10231 lag=5" (seq: the last
 * one given), the topic escaped as in the log: a client's topic name
 * cannot reorder an operator's ps. */
static void
title(struct topicd *td, const struct rec_stats *st)
{
	char topic[512];

	log_escape(topic, sizeof(topic), td->topic);
	setproctitle("%s subs=%u seq=%llu lag=%llu", topic, st->subscribers,
	    (unsigned long long)(st->next_seq - 1), (unsigned long long)st->lag);
}

/* Once a second: write what deliveries changed since the last batch (no
 * sync: attempts and cursors of QoS 0 deliveries), then report. */
void
stats_tick(struct topicd *td)
{
	if (!td->io_wait && (!TAILQ_EMPTY(&td->dirty) || td->meta_dirty ||
	    kv_pending(td->kv) > 0 || td->first_seq < subs_min_cursor(td)))
		(void)dispatch_sync(td, false);		/* a full disk: retried */
	idle_tick(td);
	if (td->stats_dirty)
		stats_report(td);
}

/* STATS now, and the title. */
void
stats_report(struct topicd *td)
{
	struct rec_stats st;

	td->stats_dirty = false;
	stats_fill(td, &st);
	wbuf_reset(&td->wb);
	enc_stats(&td->wb, &st);
	dispatch_send(td, IPC_STATS);
	title(td, &st);
}

/* Would the next tick do anything?  Not once IDLE was said for the last
 * record and nothing is left to write, report or wait for: the tick then
 * sleeps until a pass of the loop changes that (run.c), so that a
 * thousand idle topicds do not wake a thousand times a second. */
bool
stats_tick_needed(struct topicd *td)
{
	return !td->idle_said || td->idle_rx != td->rx || td->stats_dirty || td->io_wait ||
	    td->refusing || td->room_sent || td->meta_dirty || !TAILQ_EMPTY(&td->dirty) ||
	    (td->kv != NULL && kv_pending(td->kv) > 0) || td->first_seq < subs_min_cursor(td);
}

void
stats_log(struct topicd *td)
{
	struct rec_stats st;

	stats_fill(td, &st);
	/* seq as the master's line and the title have it: the last one
	 * given; first: the oldest still stored (seq + 1 when none is). */
	log_notice("status: topic %s pid %ld subs %u online %u seq %llu first %llu messages %llu "
	    "bytes %llu disk %llu%s%s lag %llu oldest_unacked %llums commits %llu "
	    "records/commit %.1f records/batch %.1f expired %llu", td->topic, (long)getpid(),
	    st.subscribers, st.online,
	    (unsigned long long)(st.next_seq > 0 ? st.next_seq - 1 : 0),
	    (unsigned long long)st.first_seq,
	    (unsigned long long)st.messages, (unsigned long long)st.bytes,
	    (unsigned long long)st.disk_bytes, st.full ? " full " : "",
	    st.full && td->full_reason ? td->full_reason : "",
	    (unsigned long long)st.lag, (unsigned long long)st.oldest_unacked_ms,
	    (unsigned long long)st.commits,
	    st.commits ? (double)st.committed / (double)st.commits : 0.0,
	    td->batches ? (double)td->batch_records / (double)td->batches : 0.0,
	    (unsigned long long)st.expired);
}
