/* Records from the master, and the group commit.
 *
 * Every record read in one wake-up is applied, then the batch is written
 * and, when something in it needs to be durable, synced by the store's
 * worker while the next batch is applied (gate.c).  The store and the
 * answers never disagree: an answer goes out, and a message is
 * delivered, only once it is durable.
 *
 * The channel is used only after READY, so every record the master may
 * send is valid in our one state; the others, and records that do not
 * decode, are protocol violations: we exit and the master restarts us. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

typedef void handler_fn(struct topicd *, struct ipc_msg *);

static handler_fn h_config, h_publish, h_release, h_release_owner, h_attach,
    h_detach, h_unsub, h_ack, h_dlq_done, h_resume, h_stop, h_ping, h_forget, h_keep;

enum { FD_NO, FD_YES, FD_MAYBE };

static const struct handler {
	uint16_t	 type;
	int		 with_fd;	/* FD_NO, FD_YES, FD_MAYBE */
	handler_fn	*fn;
} handlers[] = {
	{ IPC_CONFIG,		FD_NO,		h_config },
	{ IPC_PUBLISH,		FD_NO,		h_publish },
	{ IPC_RELEASE,		FD_NO,		h_release },
	{ IPC_RELEASE_OWNER,	FD_NO,		h_release_owner },
	{ IPC_ATTACH,		FD_MAYBE,	h_attach },
	{ IPC_DETACH,		FD_NO,		h_detach },
	{ IPC_UNSUB,		FD_NO,		h_unsub },
	{ IPC_ACK,		FD_NO,		h_ack },
	{ IPC_DLQ_DONE,		FD_NO,		h_dlq_done },
	{ IPC_RESUME,		FD_NO,		h_resume },
	{ IPC_STOP,		FD_NO,		h_stop },
	{ IPC_PING,		FD_NO,		h_ping },
	{ IPC_FORGET,		FD_NO,		h_forget },
	{ IPC_KEEP,		FD_NO,		h_keep },
};

static void __attribute__((noreturn))
violation(struct topicd *td, const struct ipc_msg *m, const char *why)
{
	fatalx("topic %s: protocol violation from the master: %s (type %u): %s",
	    td->topic, ipc_type_name(m->type), m->type, why);
}

void
dispatch_msg(struct topicd *td, struct ipc_msg *m)
{
	const struct handler *h = NULL;

	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (handlers[i].type == m->type)
			h = &handlers[i];
	if (h == NULL)
		violation(td, m, "not a record the master sends");
	if (h->with_fd != FD_MAYBE && (h->with_fd == FD_YES) != (m->fd != -1))
		violation(td, m, h->with_fd == FD_YES ? "without its fd" : "with an fd");
	td->batch_n++;
	td->rx++;
	if (td->tick_asleep)
		tick_wake(td);
	h->fn(td, m);
	store_write_ahead(td);
	if (td->batch_n >= TD_BATCH_MAX)
		dispatch_end_batch(td);
	else if (td->batch_ev != NULL)
		event_active(td->batch_ev, EV_TIMEOUT, 0);
}

/* Queues td->wb as a record to the master; dropped when the channel is
 * gone (we are exiting). */
void
dispatch_send(struct topicd *td, uint16_t type)
{
	if (td->chan == NULL)
		return;
	if (ipc_chan_send(td->chan, type, td->wb.data, td->wb.len, -1) == -1)
		fatalx("topic %s: %s record of %zu bytes is too large", td->topic,
		    ipc_type_name(type), td->wb.len);
}

/* The disk was full for a commit: every answer and delivery waits, and
 * the commit is tried again every TD_IO_RETRY_MS (dispatch_end_batch). */
static void
io_wait(struct topicd *td)
{
	struct timeval tv = { TD_IO_RETRY_MS / 1000, (TD_IO_RETRY_MS % 1000) * 1000 };

	if (!td->io_wait)
		log_warnx("topic %s: the disk is full: %zu answers wait; trying again every %d ms",
		    td->topic, td->nreplies, TD_IO_RETRY_MS);
	td->io_wait = true;
	room_disk_full(td);
	if (td->io_timer != NULL && evtimer_add(td->io_timer, &tv) == -1)
		fatalx("topic %s: cannot arm a timer", td->topic);
}

/* Writes what changed (trimmed messages, subscriber and meta records) as
 * one batch.  durable: with a sync, here and now (at start and exit, and
 * for a shared subscription's entries given out); everything written
 * before is durable then too, and the batches waiting for it go out.  0,
 * or -1 while the disk is full. */
int
dispatch_sync(struct topicd *td, bool durable)
{
	log_trim(td);
	subs_save(td);
	store_save_meta(td);
	if (!durable || !td->sync) {
		if (kv_pending(td->kv) == 0)
			return 0;
		durable = false;
	}
	if (store_commit(td, durable) == -1) {
		io_wait(td);
		return -1;
	}
	if (durable)
		(void)gate_release(td);
	return 0;
}

/* The batch is written, its sync asked for (gate.c), and the loop goes
 * on: what it allows goes out once it is durable. */
void
dispatch_end_batch(struct topicd *td)
{
	bool durable = td->need_sync || td->io_wait;

	if (td->batch_n > 0) {
		td->batches++;
		td->batch_records += td->batch_n;
		log_debug("topic %s: batch of %u records%s", td->topic, td->batch_n,
		    td->need_sync ? ", synced" : "");
	}
	td->batch_n = 0;
	if (dispatch_sync(td, false) == -1)
		return;		/* nothing goes out before it is stored */
	td->need_sync = false;
	if (td->io_wait) {
		td->io_wait = false;
		evtimer_del(td->io_timer);
		log_notice("topic %s: the disk took the waiting batch; %zu answers go out",
		    td->topic, td->nreplies);
	}
	gate_end_batch(td, durable);
	dispatch_after(td);
}

/* The store's worker finished a sync or a checkpoint: what waited for
 * it goes out (with the batch in hand's end, if there is one). */
void
dispatch_durable(struct topicd *td)
{
	if (kv_poll(td->kv) == -1)
		store_fail(td, "sync");
	if (td->batch_n == 0 && !td->io_wait && gate_release(td))
		dispatch_after(td);
}

/* After answers went out: the deliveries they allow, and going idle.
 * The master has the answers before the deliveries (an ATTACH is
 * confirmed before its first delivery is acked). */
void
dispatch_after(struct topicd *td)
{
	if (td->chan != NULL)
		ipc_chan_push(td->chan);
	room_check(td);
	deliver_maxlen_all(td);
	deliver_run(td);
	idle_batch_end(td);
	idle_stop_now(td);
}

static void
h_config(struct topicd *td, struct ipc_msg *m)
{
	struct rec_config r;

	config_check_version(td, m->body, m->len);
	if (dec_config(m->body, m->len, &r) == -1)
		violation(td, m, "malformed");
	config_apply(td, &r);
	config_boot(td);
}

#ifdef BROKER_TEST_HOOKS
/* The test build dies on a marked payload, as on a poison record, or
 * hangs on another, as in an endless loop. */
static void
test_poison(const struct rec_publish *r)
{
	static const char mark[] = "poison-record-abort", hang[] = "poison-record-hang";

	if (r->payload_len >= sizeof(mark) - 1 &&
	    memcmp(r->payload, mark, sizeof(mark) - 1) == 0)
		abort();
	if (r->payload_len >= sizeof(hang) - 1 &&
	    memcmp(r->payload, hang, sizeof(hang) - 1) == 0)
		for (;;)
			(void)pause();
}
#endif

static void
h_publish(struct topicd *td, struct ipc_msg *m)
{
	struct rec_publish r;
	struct msg msg;

	if (dec_publish(m->body, m->len, &r) == -1)
		violation(td, m, "malformed");
#ifdef BROKER_TEST_HOOKS
	test_poison(&r);
#endif
	memset(&msg, 0, sizeof(msg));
	msg.flags = r.flags;
	msg.qos = r.qos;
	msg.time_ms = r.time_ms;
	msg.payload = r.payload;
	msg.len = r.payload_len;
	msg.props = r.props;
	msg.props_len = r.props_len;
	msg.expiry_ms = r.expiry_ms;
	msg.origin = r.origin;
	/* A replay of what is staged already is answered the same; anything
	 * else that needs an answer waits for room.  QoS 0 is stored all the
	 * same (it was on its way before the master heard FULL). */
	if (r.req == 0)
		(void)room_for(td, r.payload_len);
	else if (!((r.flags & PF_STAGE) && stage_exists(td, r.owner, r.pubid)) &&
	    !room_for(td, r.payload_len)) {
		reply(td, r.req, ST_FULL, 0);
		td->full_gen = td->gen;		/* ROOM goes after this answer */
		return;
	}
	if (r.flags & PF_STAGE) {
		stage_put(td, r.owner, r.pubid, &msg);
		td->need_sync = true;
		reply(td, r.req, ST_OK, 0);
		return;
	}
	msg.buf = ipc_msg_take_mem(m);		/* a large one is cached, not copied */
	uint64_t seq = log_append(td, &msg);
	if (r.qos > 0) {
		td->need_sync = true;
		reply(td, r.req, ST_OK, seq);
	}
}

static void
h_release(struct topicd *td, struct ipc_msg *m)
{
	struct rec_release r;

	if (dec_release(m->body, m->len, &r) == -1)
		violation(td, m, "malformed");
	/* Unknown: released before (a replay); answered with seq 0. */
	uint64_t seq = stage_release(td, r.owner, r.pubid);
	td->need_sync = true;
	reply(td, r.req, ST_OK, seq);
}

static void
h_release_owner(struct topicd *td, struct ipc_msg *m)
{
	struct rec_release_owner r;
	char *prefix;
	int n;

	if (dec_release_owner(m->body, m->len, &r) == -1)
		violation(td, m, "malformed");
	n = xasprintf(&prefix, "S%s", r.owner);
	/* The prefix includes the owner's terminating NUL. */
	unsigned released = stage_release_prefix(td, prefix, (size_t)n + 1);
	free(prefix);
	if (released > 0) {
		log_debug("topic %s: released %u staged messages of %s", td->topic,
		    released, r.owner);
		td->need_sync = true;
	}
	if (r.req != 0)
		reply(td, r.req, ST_OK, 0);
}

/* A shared subscription's key: its ATTACH names a member. */
static bool
is_group_key(const char *key)
{
	return strncmp(key, SHARE_KEY_PREFIX, strlen(SHARE_KEY_PREFIX)) == 0;
}

static void
h_attach(struct topicd *td, struct ipc_msg *m)
{
	struct rec_attach r;
	struct sub *s;

	if (dec_attach(m->body, m->len, &r) == -1 ||
	    is_group_key(r.subkey) != (r.member[0] != '\0'))
		violation(td, m, "malformed");
	if ((s = sub_find(td, r.subkey)) == NULL) {
		s = sub_create(td, r.subkey);
		log_info("topic %s: new subscriber %s from seq %llu", td->topic,
		    s->key, (unsigned long long)s->cursor);
	} else
		log_debug("topic %s: subscriber %s resumes at seq %llu", td->topic,
		    s->key, (unsigned long long)s->cursor);
	if (m->fd != -1) {
		if (s->is_group)
			share_attach(s, m->fd, &r);
		else
			deliver_attach(s, m->fd, &r);
		m->fd = -1;
	} else if (s->is_group) {
		share_register(s, &r);
	} else {
		deliver_register(s, &r);	/* an offline session's filter matched */
	}
	s->hold_gen = gate_hold(td);	/* deliveries after the answer */
	td->need_sync = true;
	reply(td, r.req, ST_OK, s->cursor);
}

static void
h_detach(struct topicd *td, struct ipc_msg *m)
{
	struct rec_detach r;
	struct sub *s;

	if (dec_detach(m->body, m->len, &r) == -1 ||
	    (r.member[0] != '\0' && !is_group_key(r.subkey)))
		violation(td, m, "malformed");
	if ((s = sub_find(td, r.subkey)) == NULL)
		return;
	if (r.member[0] != '\0')
		share_detach(s, r.member);
	else
		deliver_offline(s);
}

static void
h_unsub(struct topicd *td, struct ipc_msg *m)
{
	struct rec_unsub r;
	struct sub *s;

	if (dec_unsub(m->body, m->len, &r) == -1 ||
	    (r.member[0] != '\0' && !is_group_key(r.subkey)))
		violation(td, m, "malformed");
	if ((s = sub_find(td, r.subkey)) != NULL && r.member[0] != '\0') {
		share_leave(s, r.member, (r.flags & UF_FORGET) != 0);
		td->need_sync = true;
	} else if (s != NULL) {
		deliver_offline(s);
		if (r.flags & UF_FORGET) {
			log_info("topic %s: subscriber %s forgotten", td->topic, s->key);
			sub_delete(s);
			td->need_sync = true;
		}
	}
	reply(td, r.req, ST_OK, 0);
}

static void
h_ack(struct topicd *td, struct ipc_msg *m)
{
	struct rec_ack r;

	if (dec_ack(m->body, m->len, &r) == -1)
		violation(td, m, "malformed");
	deliver_ack(td, &r);
}

static void
h_dlq_done(struct topicd *td, struct ipc_msg *m)
{
	struct rec_dlq_done r;

	if (dec_dlq_done(m->body, m->len, &r) == -1)
		violation(td, m, "malformed");
	deliver_dlq_done(td, &r);
}

static void
h_resume(struct topicd *td, struct ipc_msg *m)
{
	if (dec_empty(m->body, m->len) == -1)
		violation(td, m, "malformed");
	room_resume(td);
}

static void
h_stop(struct topicd *td, struct ipc_msg *m)
{
	struct rec_stop r;

	if (dec_stop(m->body, m->len, &r) == -1)
		violation(td, m, "malformed");
	idle_stop_asked(td, (r.flags & STOP_CHECKPOINT) != 0);
}

static void
verdict(struct topicd *td, struct ipc_msg *m, bool forget)
{
	if (dec_empty(m->body, m->len) == -1)
		violation(td, m, "malformed");
	if (!td->verdict_wait)
		violation(td, m, "not after a last IDLE that said the store keeps nothing");
	idle_verdict(td, forget);
}

static void
h_forget(struct topicd *td, struct ipc_msg *m)
{
	verdict(td, m, true);
}

static void
h_keep(struct topicd *td, struct ipc_msg *m)
{
	verdict(td, m, false);
}

/* The master has heard nothing from us for a while: our figures tell it
 * this loop runs. */
static void
h_ping(struct topicd *td, struct ipc_msg *m)
{
	if (dec_empty(m->body, m->len) == -1)
		violation(td, m, "malformed");
	stats_report(td);
}
