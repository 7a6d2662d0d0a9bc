/* The topicd's side of the channel in a test of the master's core: what
 * the master sent (td_expect, td_quiet) and what a topicd answers (READY,
 * DONE, IDLE, STATS), and how its process ends (core_fixture.h starts
 * it).  A test answers as the real topicd does: READY after CONFIG, DONE
 * for a request once it is "stored", IDLE for everything received when
 * it has nothing to do, and after STOP a last IDLE (IDLE_FINAL) with its
 * subscribers, then exit 0. */
#ifndef TESTS_UNIT_FAKE_TOPICD_H
#define TESTS_UNIT_FAKE_TOPICD_H

#include <poll.h>
#include <sys/syscall.h>

#include "clock.h"
#include "core_fixture.h"

/* The topic's newest topicd, or NULL. */
static inline struct fake_td *
fx_td_find(struct core_fx *fx, const char *topic)
{
	struct fake_td *td;

	TAILQ_FOREACH_REVERSE(td, &fx->tds, fake_td_list, entry)
		if (strcmp(td->topic, topic) == 0)
			return td;
	return NULL;
}

/* The topic's topicd, started now or in a pass of the loop to come (the
 * master starts topicds for a while in each). */
static inline struct fake_td *
fx_td(struct core_fx *fx, const char *topic)
{
	FX_UNTIL(fx, fx_td_find(fx, topic) != NULL);
	return fx_td_find(fx, topic);
}

static inline unsigned
fx_count_tds(struct core_fx *fx, const char *topic)
{
	struct fake_td *td;
	unsigned n = 0;

	TAILQ_FOREACH(td, &fx->tds, entry)
		n += strcmp(td->topic, topic) == 0;
	return n;
}

static inline struct child *
td_child(struct fake_td *td)
{
	struct child *c = topic_find(&td->fx->b, td->topic);

	assert_non_null(c);
	return c;
}

/* The next record the master sent (waited for), of that type. */
static inline const struct ipc_msg *
td_expect(struct fake_td *td, uint16_t type)
{
	const struct ipc_msg *m;

	FX_UNTIL(td->fx, td->next < td->nrecs || td->eof);
	assert_int_equal(td->bad, 0);
	if (td->next == td->nrecs)
		fail_msg("topic %s: channel closed, %s expected", td->topic, ipc_type_name(type));
	m = &td->recs[td->next++];
	if (m->type != type)
		fail_msg("topic %s: %s expected, %s received", td->topic, ipc_type_name(type),
		    ipc_type_name(m->type));
	return m;
}

/* Nothing more was sent: the master's out-queue is empty and nothing
 * waits to be read. */
static inline void
td_quiet(struct fake_td *td)
{
	struct child *c = topic_find(&td->fx->b, td->topic);

	FX_UNTIL(td->fx, c == NULL || c->chan == NULL || ipc_chan_queued(c->chan) == 0);
	td_read(td);
	assert_int_equal(td->bad, 0);
	if (td->next < td->nrecs)
		fail_msg("topic %s: unexpected %s", td->topic,
		    ipc_type_name(td->recs[td->next].type));
}

static inline void
td_send(struct fake_td *td, uint16_t type, struct wbuf *w)
{
	assert_int_equal(ipc_send(td->fd, type, w->data, w->len, -1), 0);
	wbuf_reset(w);
}

static inline void
td_config(struct fake_td *td)
{
	const struct ipc_msg *m = td_expect(td, IPC_CONFIG);
	struct rec_config r;

	assert_int_equal(dec_config(m->body, m->len, &r), 0);
	assert_int_equal(r.version, IPC_PROTO_VERSION);
	assert_int_equal(r.boot_id, td->fx->b.boot_id);
}

static inline void
td_ready_as(struct fake_td *td, uint32_t version, const char *topic)
{
	struct rec_ready r = { .version = version, .topic = topic, .next_seq = 1 };
	struct wbuf w;

	wbuf_init(&w);
	enc_ready(&w, &r);
	td_send(td, IPC_READY, &w);
	wbuf_free(&w);
}

/* CONFIG, then READY: the child is ready. */
static inline struct fake_td *
fx_ready(struct core_fx *fx, const char *topic)
{
	struct fake_td *td = fx_td(fx, topic);
	struct child *c = td_child(td);

	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, topic);
	FX_UNTIL(fx, c->state == CH_READY);
	return td;
}

static inline void
td_done(struct fake_td *td, uint64_t req, uint32_t status, uint64_t seq)
{
	struct rec_done d = { .req = req, .status = status, .seq = seq };
	struct wbuf w;

	wbuf_init(&w);
	enc_done(&w, &d);
	td_send(td, IPC_DONE, &w);
	wbuf_free(&w);
}

/* Everything the topicd sent before has been handled: a STATS record
 * with a fresh marker went through. */
static inline void
td_sync(struct fake_td *td)
{
	struct child *c = td_child(td);
	struct rec_stats st = { .messages = ++td->fx->marker };
	struct wbuf w;

	wbuf_init(&w);
	enc_stats(&w, &st);
	td_send(td, IPC_STATS, &w);
	wbuf_free(&w);
	FX_UNTIL(td->fx, c->stats.messages == td->fx->marker);
}

/* The topicd dies: its channel closes, the stand-in exits with code (or
 * is killed by sig when code < 0), and the broker reaps it. */
static inline void
td_die(struct fake_td *td, int code)
{
	unsigned char byte = (unsigned char)code;

	event_del(td->ev);
	close(td->fd);
	td->fd = -1;
	if (code >= 0)
		assert_int_equal(write(td->ctl, &byte, 1), 1);
	else
		assert_int_equal(kill(td->pid, -code), 0);
	(void)standin_wait(td);
	children_reap(&td->fx->b);
}

/* The broker killed the topicd: it was SIGKILL, and it is reaped. */
static inline void
td_killed(struct fake_td *td)
{
	siginfo_t si = standin_wait(td);

	assert_int_equal(si.si_code, CLD_KILLED);
	assert_int_equal(si.si_status, SIGKILL);
	event_del(td->ev);
	close(td->fd);
	td->fd = -1;
	children_reap(&td->fx->b);
}

/* After a crash: the restart timer starts the next topicd. */
static inline struct fake_td *
fx_restarted(struct core_fx *fx, struct fake_td *old)
{
	FX_UNTIL(fx, fx_td(fx, old->topic) != old);
	return fx_td(fx, old->topic);
}

/* The topicd dies by itself with requests outstanding: the next one,
 * ready, is probed one request at a time. */
static inline struct fake_td *
td_crash_to_probing(struct fake_td *td, struct child *c)
{
	td_die(td, 1);
	assert_true(c->probing);
	td = fx_restarted(td->fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, td->topic);
	return td;
}

/* The next record is a PUBLISH of payload; its req. */
static inline uint64_t
td_expect_publish(struct fake_td *td, const char *payload)
{
	const struct ipc_msg *m = td_expect(td, IPC_PUBLISH);
	struct rec_publish p;

	assert_int_equal(dec_publish(m->body, m->len, &p), 0);
	assert_int_equal(p.payload_len, strlen(payload));
	assert_memory_equal(p.payload, payload, p.payload_len);
	return p.req;
}

/* Records received so far: a topicd's rx, as its IDLE says it. */
static inline uint64_t
td_rx(struct fake_td *td)
{
	td_read(td);
	return td->nrecs;
}

/* What an IDLE says of the topic (its subscribers in any order). */
struct idle_sub {
	const char	*key;
	bool		 backlog;
};
struct idle_summary {
	uint8_t		 flags;		/* IDLE_RETAINED, IDLE_SUBS_UNKNOWN, IDLE_EMPTY */
	uint64_t	 bytes;
	uint64_t	 next_seq;	/* 0: 1 */
	const struct idle_sub *subs;
	size_t		 nsubs;
	const struct rec_deliver *copy;	/* the retained message's, with
					 * IDLE_RETAINED_COPY in flags */
};

static inline void
idle_encode(struct wbuf *w, uint64_t rx, uint8_t flags, const struct idle_summary *sum)
{
	static const struct idle_summary none;
	struct rec_idle r;

	if (sum == NULL)
		sum = &none;
	r = (struct rec_idle){ .rx = rx, .next_seq = sum->next_seq ? sum->next_seq : 1,
			       .bytes = sum->bytes,
			       .flags = (uint8_t)(flags | sum->flags),
			       .nsubs = (uint32_t)sum->nsubs };
	enc_idle(w, &r);
	for (size_t i = 0; i < sum->nsubs; i++)
		enc_idle_sub(w, sum->subs[i].key, sum->subs[i].backlog);
	if (sum->copy != NULL)
		enc_idle_copy(w, sum->copy);
}

static inline void
td_idle_as(struct fake_td *td, uint64_t rx, uint8_t flags, const struct idle_summary *sum)
{
	struct wbuf w;

	wbuf_init(&w);
	idle_encode(&w, rx, flags, sum);
	td_send(td, IPC_IDLE, &w);
	wbuf_free(&w);
}

/* The registry's summary of a cold topic, as if its topicd had stopped
 * saying sum (what live.c records then). */
static inline void
fx_cold_summary(struct core_fx *fx, const char *topic, const struct idle_summary *sum)
{
	struct wbuf w;

	wbuf_init(&w);
	idle_encode(&w, 1, IDLE_FINAL, sum);
	registry_cold(&fx->b, topic, w.data, w.len);
	wbuf_free(&w);
}

/* Nothing to do, for everything received. */
static inline void
td_idle(struct fake_td *td)
{
	td_idle_as(td, td_rx(td), 0, NULL);
}

/* After STOP (and the answers to what came before it): the last word,
 * for the records up to STOP (a topicd may exit before it reads any that
 * came after). */
static inline void
td_final(struct fake_td *td, const struct idle_summary *sum)
{
	uint64_t rx = td_rx(td);

	for (size_t i = 0; i < td->nrecs; i++)
		if (td->recs[i].type == IPC_STOP) {
			rx = i + 1;
			break;
		}
	td_idle_as(td, rx, IDLE_FINAL, sum);
}

/* The last IDLE handled, the topicd exits 0 and is reaped: the topic is
 * cold (and started again at once if something waits for it). */
static inline void
td_goes_cold(struct fake_td *td, const struct idle_summary *sum)
{
	td_final(td, sum);
	td_sync(td);
	td_die(td, 0);
	assert_null(child_by_pid(&td->fx->b, td->pid));
}

static inline void
fx_on_expire_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	live_expire(arg);		/* as the daemon does once a second */
}

/* The topicd says IDLE for all it got: quiet. */
static inline void
td_make_quiet(struct fake_td *td)
{
	struct child *c = td_child(td);

	td_idle(td);
	FX_UNTIL(td->fx, c->quiet);
	assert_ptr_equal(c->list, &td->fx->b.quiet);
}

/* Quiet, it is sent STOP after topicd_idle_timeout (made short). */
static inline void
td_stop_idle(struct fake_td *td)
{
	struct core_fx *fx = td->fx;
	struct event *tick;

	td_make_quiet(td);
	fx->b.set.topicd_idle_timeout = 1;
	tick = fx_every(fx, 5, fx_on_expire_tick);
	td_expect(td, IPC_STOP);
	event_free(tick);
	assert_int_equal(td_child(td)->state, CH_PARKING);
}

/* The stand-in exits with code (or is killed by sig when code < 0) while
 * the loop does not run, so that what the topicd sent last is still in
 * the channel when the broker reaps it (SIGCHLD handled first).  Its end
 * is waited for with a deadline. */
static inline void
td_exit_unread(struct fake_td *td, int code)
{
	unsigned char byte = (unsigned char)code;
	int64_t deadline = mono_ms() + FX_TIMEOUT_MS, left;
	int pfd = (int)syscall(SYS_pidfd_open, td->pid, 0);
	struct pollfd p = { .fd = pfd, .events = POLLIN };
	int rc;

	assert_int_not_equal(pfd, -1);
	event_del(td->ev);
	close(td->fd);
	td->fd = -1;
	if (code >= 0)
		assert_int_equal(write(td->ctl, &byte, 1), 1);
	else
		assert_int_equal(kill(td->pid, -code), 0);
	do {
		left = deadline - mono_ms();
		rc = poll(&p, 1, left > 0 ? (int)left : 0);
	} while (rc == -1 && errno == EINTR);
	close(pfd);
	if (rc != 1)
		fail_msg("topic %s: its stand-in did not exit", td->topic);
	td->gone = true;
	children_reap(&td->fx->b);
}

#endif
