/* Room for new messages.  What bounds a topic is disk, never a count of
 * messages: its byte budget (max_topic_size), the data directory's
 * free-space floor (min_free_space), and a disk that is actually full
 * (a commit failed with ENOSPC).  A topic's bytes are those of its
 * message records as stored: payload, MQTT 5.0 properties and a header.
 *
 * When a publish does not fit, the topicd tells the master once (FULL)
 * and refuses every publish that needs an answer (ST_FULL) until the
 * master says RESUME: the master holds them unacknowledged, stops reading
 * their publishers, and sends them again, in order, after RESUME.  When
 * there is room again (below 90% of the budget, above the floor by a
 * tenth more), the topicd says ROOM, once.  A QoS 0 message that was
 * already on its way when FULL went out is stored all the same: the
 * budget is a soft one by that much, and nothing is ever dropped.  A
 * store's spare journal file goes before the floor refuses anything. */
#include <sys/statvfs.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

#define ROOM_CHECK_MS		1000		/* statvfs at least this often */
#define ROOM_CHECK_BYTES	(1u << 20)	/* ... and after this much written */

/* Free bytes for an unprivileged writer in the data directory (cached
 * unless fresh).  Asked for each message stored under min_free_space: the
 * coarse clock is enough for a second.  A log line asks for a fresh one:
 * without min_free_space, the cached figure is never refreshed. */
static uint64_t
disk_free(struct topicd *td, bool fresh)
{
	int64_t now = mono_ms_coarse();
	struct statvfs sv;
	char *dir;

	if (!fresh && now - td->disk_checked_ms < ROOM_CHECK_MS &&
	    td->written_since_check < ROOM_CHECK_BYTES)
		return td->disk_free;
	xasprintf(&dir, "%s/topics", td->datadir);
	if (statvfs(dir, &sv) == -1)
		log_warn("topic %s: statvfs %s", td->topic, dir);
	else
		td->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	free(dir);
	td->disk_checked_ms = now;
	td->written_since_check = 0;
	return td->disk_free;
}

/* The store's spare journal file (kvjournal.c) is disk it can give back
 * before a floor refuses anything. */
static bool
drop_spare(struct topicd *td)
{
	return td->kv != NULL && kv_drop_spare(td->kv) > 0;
}

/* Why a message of len bytes does not fit now, or NULL. */
static const char *
no_room(struct topicd *td, size_t len)
{
	if (td->io_wait)
		return "disk_full";
	if (td->max_bytes != 0 && td->bytes > 0 && td->bytes + len > td->max_bytes)
		return "max_topic_size";
	if (td->min_free != 0 && disk_free(td, false) < td->min_free + len &&
	    (!drop_spare(td) || disk_free(td, true) < td->min_free + len))
		return "min_free_space";
	return NULL;
}

/* The limit reason stands for, as the log states it: " N bytes", or ""
 * for a full disk (no setting). */
static void
limit_text(const struct topicd *td, const char *reason, char *buf, size_t size)
{
	uint64_t limit;

	if (strcmp(reason, "max_topic_size") == 0)
		limit = td->max_bytes;
	else if (strcmp(reason, "min_free_space") == 0)
		limit = td->min_free;
	else {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, size, " %llu bytes", (unsigned long long)limit);
}

static void
send_full(struct topicd *td, const char *reason)
{
	struct rec_full f = { reason };
	char limit[32], since[64];
	unsigned quiet;

	td->refusing = true;
	td->room_sent = false;
	td->full_reason = reason;
	td->stats_dirty = true;
	wbuf_reset(&td->wb);
	enc_full(&td->wb, &f);
	dispatch_send(td, IPC_FULL);
	limit_text(td, reason, limit, sizeof(limit));
	td->full_level = lograte_level(&td->full_log, mono_ms(), LOGRATE_EVERY_MS, &quiet);
	log_at(td->full_level, "topic %s: no room (%s%s): %llu bytes kept, %llu free on disk: "
	    "publishes wait%s", td->topic, reason, limit, (unsigned long long)td->bytes,
	    (unsigned long long)disk_free(td, true), lograte_since(quiet, since, sizeof(since)));
}

/* May a message with a payload of len bytes be stored now?  When not,
 * the master is told (once). */
bool
room_for(struct topicd *td, size_t len)
{
	const char *why;

	len += TD_MSG_HEADER;
	td->written_since_check += len;
	if (td->refusing)
		return false;
	if ((why = no_room(td, len)) == NULL)
		return true;
	send_full(td, why);
	return false;
}

/* A full disk met by a commit: refuse until the commit goes through. */
void
room_disk_full(struct topicd *td)
{
	(void)drop_spare(td);			/* room for the retry */
	if (!td->refusing)
		send_full(td, "disk_full");
}

/* After a batch, and once a second while refusing: room again?  Said
 * after the answers refused (gate.c), which the master has first; not
 * after every later batch's: while subscribers' acks keep batches waiting
 * for their sync, that would be when the traffic stops. */
void
room_check(struct topicd *td)
{
	if (!td->refusing || td->room_sent || td->io_wait || !gate_open(td, td->full_gen))
		return;
	if (td->max_bytes != 0 && td->bytes > td->max_bytes - td->max_bytes / 10)
		return;
	/* A spare file the store learned of since the refusal (the worker's
	 * checkpoint made it) goes now. */
	if (td->min_free != 0 && disk_free(td, true) < td->min_free + td->min_free / 10 &&
	    (!drop_spare(td) || disk_free(td, true) < td->min_free + td->min_free / 10))
		return;
	td->room_sent = true;
	wbuf_reset(&td->wb);
	dispatch_send(td, IPC_ROOM);
	log_at(td->full_level, "topic %s: room again (%llu bytes kept, %llu free on disk)",
	    td->topic, (unsigned long long)td->bytes,
	    (unsigned long long)disk_free(td, td->min_free == 0));
}

/* RESUME: publishes are taken again (if there is room, else FULL anew). */
void
room_resume(struct topicd *td)
{
	td->refusing = false;
	td->room_sent = false;
	td->full_reason = NULL;
	td->stats_dirty = true;
}
