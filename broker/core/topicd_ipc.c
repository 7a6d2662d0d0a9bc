/* Records from a topicd, with per-state permission: READY once, the rest
 * only after READY.  Anything else is the child's bug: it is killed and
 * restarted, never the master's problem. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "clock.h"
#include "ipc.h"
#include "log.h"

static void
on_ready(struct child *c, const struct ipc_msg *m)
{
	uint32_t v = ipc_version_of(m->body, m->len);
	struct rec_ready r;

	if (v != IPC_PROTO_VERSION) {
		log_errx("topic %s: topicd pid %ld speaks IPC version %u, this broker %u "
		    "(release %s): a topicd of another release; restart the broker after an "
		    "upgrade", c->topic, (long)c->pid, v, IPC_PROTO_VERSION, BROKER_VERSION);
		c->version_mismatch = true;
		child_kill(c, "of another release");
		return;
	}
	if (dec_ready(m->body, m->len, &r) == -1 || strcmp(r.topic, c->topic) != 0) {
		child_kill(c, "bad READY record");
		return;
	}
	c->state = CH_READY;
	child_watch_ready(c);
	c->ready_at = mono_ms();
	/* seq as in ps and the status line: the newest message's. */
	log_info("topic %s: topicd pid %ld ready, newest seq %llu", c->topic, (long)c->pid,
	    (unsigned long long)(r.next_seq > 0 ? r.next_seq - 1 : 0));
	live_ready(c);
	if (c->registered)
		child_replay(c);	/* else once it is (child_registered) */
}

static void
on_done(struct child *c, const struct ipc_msg *m)
{
	struct rec_done d;

	if (dec_done(m->body, m->len, &d) == -1) {
		child_kill(c, "bad DONE record");
		return;
	}
	child_done(c, &d);
}

static void
on_deadletter(struct child *c, const struct ipc_msg *m)
{
	struct rec_deadletter d;

	if (dec_deadletter(m->body, m->len, &d) == -1) {
		child_kill(c, "bad DEADLETTER record");
		return;
	}
	dlq_from_child(c, &d);
}

static void
on_stats(struct child *c, const struct ipc_msg *m)
{
	struct topic_info *ti;

	if (dec_stats(m->body, m->len, &c->stats) == -1) {
		child_kill(c, "bad STATS record");
		return;
	}
	/* One being forgotten keeps nothing; its name may be a new topic's. */
	if (!c->forgetting && (ti = registry_info(c->b, c->topic)) != NULL)
		registry_set_bytes(c->b, ti, c->stats.bytes);
	children_budget(c->b);
}

/* No room in the topic: its publishes wait (held.c), unacknowledged. */
static void
on_full(struct child *c, const struct ipc_msg *m)
{
	struct rec_full f;
	char since[64];
	unsigned quiet;

	if (dec_full(m->body, m->len, &f) == -1) {
		child_kill(c, "bad FULL record");
		return;
	}
	if (!c->full) {
		c->full_level = lograte_level(&c->full_log, mono_ms(), LOGRATE_EVERY_MS, &quiet);
		log_at(c->full_level, "topic %s: no room (%s): publishes to it wait, "
		    "unacknowledged, and their publishers are not read%s", c->topic, f.reason,
		    lograte_since(quiet, since, sizeof(since)));
	}
	c->full = true;
	child_update_stalls(c);
}

/* Room again: RESUME goes first, then what waited, in order. */
static void
on_room(struct child *c, const struct ipc_msg *m)
{
	static uint8_t none;
	struct wbuf w = { &none, 0, 0 };

	if (dec_empty(m->body, m->len) == -1) {
		child_kill(c, "bad ROOM record");
		return;
	}
	log_at(c->full_level, "topic %s: room again: %u waiting publishes go on", c->topic,
	    c->nheld_pub);
	child_send(c, IPC_RESUME, &w);
	c->full = false;
	child_pump(c);
	child_update_stalls(c);
}

static const struct {
	uint16_t type;
	bool     before_ready;		/* allowed in CH_STARTING (and only then) */
	void   (*fn)(struct child *, const struct ipc_msg *);
} table[] = {
	{ IPC_READY, true, on_ready },
	{ IPC_DONE, false, on_done },
	{ IPC_DEADLETTER, false, on_deadletter },
	{ IPC_STATS, false, on_stats },
	{ IPC_FULL, false, on_full },
	{ IPC_ROOM, false, on_room },
	{ IPC_IDLE, false, live_idle },
	{ IPC_SPARE, false, spare_offered },
};

void
topicd_dispatch(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
	struct child *c = arg;
	char why[64];

	(void)ch;
	if (c->killed)
		return;		/* ignore the rest of a child we are killing */
	c->heard = true;
	if (m->fd != -1) {
		child_kill(c, "record with an unexpected fd");
		return;
	}
	if (m->type == IPC_READY && c->state == CH_STOPPING)
		return;		/* started as the broker stops: its SIGTERM is sent */
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].type != m->type)
			continue;
		if (table[i].before_ready != (c->state == CH_STARTING))
			break;
		table[i].fn(c, m);
		return;
	}
	snprintf(why, sizeof(why), "unexpected %s record", ipc_type_name(m->type));
	child_kill(c, why);
}

void
topicd_chan_error(struct ipc_chan *ch, int err, void *arg)
{
	struct child *c = arg;
	/* EOF, or a write that failed because the topicd is gone (killed
	 * from outside, say: its SIGCHLD is on its way).  Anything else (a
	 * malformed record, a ring it cannot map, no memory for a write)
	 * comes from a topicd that may run on: it is killed. */
	bool gone = err == 0 || err == EPIPE || err == ECONNRESET;
	char why[128];

	(void)ch;
	if (gone && err != 0 && c->dead_chan == NULL) {
		/* The topicd died, maybe after answering what is still unread
		 * here; those answers count (drain_answers). */
		c->dead_chan = c->chan;
	} else {
		ipc_chan_free(c->chan);
	}
	c->chan = NULL;
	if (c->state == CH_STOPPING)
		return;
	if (gone) {
		child_watch(c);		/* SIGCHLD does the rest, in time */
		return;
	}
	snprintf(why, sizeof(why), "%s on its channel",
	    err == EPROTO ? "malformed record" : strerror(err));
	child_kill(c, why);
}
