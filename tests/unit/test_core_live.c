/* Topicds that run and cold topics (broker/core/live.c, and what
 * attach.c, held.c, registry.c and supervise.c do for them): what starts
 * a cold topic and what does not, IDLE and STOP, turns under
 * max_topicds, the registry marker before anything goes to a started
 * topicd, acks kept for the next topicd, and the summary of a cold topic
 * in the master's store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_fixture.h"
#include "fake_proto.h"
#include "fake_topicd.h"

#define LIVE_MIN_MS	1000	/* live.c: a busy topicd runs at least this long */

static const struct rec_attach settings = {
	.mode = MODE_MQTT, .qos = 1, .flags = AF_NEW_ONLY, .window = 20,
};

/* A known topic, cold; sum: what its topicd said when it stopped (NULL: a
 * new topic, nothing there). */
static struct child *
cold_topic(struct core_fx *fx, const char *topic, const struct idle_summary *sum)
{
	const char *why = NULL;
	struct child *c;

	(void)registry_add(&fx->b, topic);
	if (sum != NULL)
		fx_cold_summary(fx, topic, sum);
	c = topic_open(&fx->b, topic, &why);
	assert_non_null(c);
	assert_int_equal(c->state, CH_COLD);
	return c;
}

/* The online session subscribes to the topic (flags added to settings). */
static struct attachment *
subscribe(struct session *s, struct child *c, uint8_t flags)
{
	struct rec_attach a = settings;

	a.flags |= flags;
	attach_topic(s->cl, c, &a);
	return attach_find(s->cl, c);
}

/* It started nothing: the topic is cold, no topicd, no ATTACH sent. */
static void
expect_left_cold(struct core_fx *fx, const struct attachment *a)
{
	assert_non_null(a);
	assert_false(a->sent);
	assert_int_equal(a->child->state, CH_COLD);
	assert_int_equal(fx_count_tds(fx, a->child->topic), 0);
}

/* The next record is an ATTACH of subkey with a delivery socket; its req. */
static uint64_t
td_expect_attach(struct fake_td *td, const char *subkey)
{
	const struct ipc_msg *m = td_expect(td, IPC_ATTACH);
	struct rec_attach r;

	assert_int_equal(dec_attach(m->body, m->len, &r), 0);
	assert_string_equal(r.subkey, subkey);
	assert_int_not_equal(m->fd, -1);
	return r.req;
}

static void
td_expect_ack(struct fake_td *td, const char *subkey, uint64_t seq)
{
	const struct ipc_msg *m = td_expect(td, IPC_ACK);
	struct rec_ack r;

	assert_int_equal(dec_ack(m->body, m->len, &r), 0);
	assert_string_equal(r.subkey, subkey);
	assert_int_equal(r.seq, seq);
}

/* It started the topic: one topicd, which gets the ATTACH once ready. */
static void
expect_started(struct core_fx *fx, const struct attachment *a)
{
	struct fake_td *td;

	assert_non_null(a);
	assert_int_equal(fx_count_tds(fx, a->child->topic), 1);
	td = fx_ready(fx, a->child->topic);
	(void)td_expect_attach(td, a->a.subkey);
	td_quiet(td);
	assert_true(a->sent);
}

/* A subscription to cold topics where nothing is known to be there for
 * the session (a new topic, a summary without it, one where it has
 * nothing to get, a retained message asked for where none is kept)
 * starts nothing; no ATTACH went, so the end of the clean session sends
 * nothing either. */
static void
test_subscribe_nothing_there(void **state)
{
	static const struct idle_sub others[] = { { "m/x", true }, { "c/1/s", false } };
	static const struct idle_summary caught_up = { .subs = others, .nsubs = 2 };
	static const struct idle_summary empty = { .bytes = 10 };
	static const char *const names[] = { "a/new", "a/empty", "a/caught" };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct attachment *a[3];
	struct child *c;

	(void)cold_topic(fx, "a/new", NULL);
	(void)cold_topic(fx, "a/empty", &empty);
	(void)cold_topic(fx, "a/caught", &caught_up);
	assert_true(session_add_filter(s, "a/+", 1));
	session_attach_all(s, NULL, true);	/* asks for retained messages */
	for (int i = 0; i < 3; i++) {
		a[i] = attach_find(s->cl, topic_find(&fx->b, names[i]));
		expect_left_cold(fx, a[i]);
		assert_true(a[i]->a.flags & AF_RETAINED);
	}
	for (int i = 0; i < 3; i++)
		attach_end(a[i], false);	/* as MQTT ends a clean session */
	for (int i = 0; i < 3; i++) {
		c = topic_find(&fx->b, names[i]);
		assert_true(TAILQ_EMPTY(&c->held));
		assert_int_equal(c->state, CH_COLD);
		assert_int_equal(fx_count_tds(fx, names[i]), 0);
	}
	assert_int_equal(fx->max_live, 0);
}

/* A subscription starts a cold topic where the session may have
 * something to get: its summary says it has a backlog, or lists no
 * subscribers (too many), or nothing is known (a topicd was live when the
 * store was last written); the topicd gets its ATTACH. */
static void
test_subscribe_something_there(void **state)
{
	static const struct idle_sub subs[] = { { "m/s", true } };
	static const struct idle_summary backlog = { .subs = subs, .nsubs = 1 };
	static const struct idle_summary unlisted = { .flags = IDLE_SUBS_UNKNOWN };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/s", true, false);
	struct child *b = cold_topic(fx, "b", &backlog), *x = cold_topic(fx, "x", &unlisted);
	struct child *u = cold_topic(fx, "u", NULL);

	(void)registry_live(&fx->b, "u");
	assert_int_equal(topic_info_sub(registry_info(&fx->b, "b"), "m/s"), SUB_BACKLOG);
	assert_int_equal(topic_info_sub(registry_info(&fx->b, "x"), "m/s"), SUB_UNKNOWN);
	assert_int_equal(topic_info_sub(registry_info(&fx->b, "u"), "m/s"), SUB_UNKNOWN);
	expect_started(fx, subscribe(s, b, 0));
	expect_started(fx, subscribe(s, x, 0));
	expect_started(fx, subscribe(s, u, 0));
	assert_int_equal(fx->b.nlive, 3);
}

/* A retained message asked for starts a cold topic only where its summary
 * says one is kept; one kept but not asked for starts nothing. */
static void
test_retained_asked(void **state)
{
	static const struct idle_summary kept = { .flags = IDLE_RETAINED };
	static const struct idle_summary none = { .flags = 0 };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct child *k = cold_topic(fx, "k", &kept), *n = cold_topic(fx, "n", &none);
	struct child *k2 = cold_topic(fx, "k2", &kept);

	expect_left_cold(fx, subscribe(s, n, AF_RETAINED));
	expect_left_cold(fx, subscribe(s, k2, 0));
	expect_started(fx, subscribe(s, k, AF_RETAINED));
	assert_int_equal(fx->max_live, 1);
}

/* A cold topic's retained message, copied into its last IDLE: a clean
 * session's subscription gets it from the master, at the lower of the two
 * QoS, with the topic left cold; a persistent session's starts the topic,
 * whose topicd sends it (and again after a reconnect). */
static void
test_retained_from_copy(void **state)
{
	static const struct rec_deliver copy = {
		.topic = "", .seq = 5, .qos = 2, .flags = DF_RETAIN | DF_PUBRETAIN,
		.payload = (const uint8_t *)"on", .payload_len = 2, .share = "",
	};
	static const struct idle_summary kept = {
		.flags = IDLE_RETAINED | IDLE_RETAINED_COPY, .next_seq = 6, .copy = &copy,
	};
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct session *p = fx_session(fx, "m/p", true, false);
	struct child *k = cold_topic(fx, "k", &kept), *k2 = cold_topic(fx, "k2", &kept);
	struct child *k3 = cold_topic(fx, "k3", &kept);
	struct attachment *a = subscribe(s, k, AF_RETAINED);

	assert_non_null(registry_info(&fx->b, "k")->copy);
	FX_UNTIL(fx, fx->ndelivered == 1);
	assert_true(fx->delivered[0].copy);
	assert_int_equal(fx->delivered[0].client_id, s->cl->id);
	assert_string_equal(fx->delivered[0].topic, "k");
	assert_int_equal(fx->delivered[0].seq, 5);
	assert_int_equal(fx->delivered[0].qos, 1);
	expect_left_cold(fx, a);
	assert_false(a->owed);
	assert_false(a->a.flags & AF_RETAINED);
	expect_left_cold(fx, subscribe(s, k2, 0));	/* not asked for */
	assert_int_equal(fx->max_live, 0);
	expect_started(fx, subscribe(p, k3, AF_RETAINED));
	assert_int_equal(fx->ndelivered, 1);
}

/* A topic that starts before the copy owed from it went (a publish
 * there): its topicd is asked for the retained message with the ATTACH,
 * and the master sends nothing from the copy, which may be stale. */
static void
test_retained_copy_topic_starts_first(void **state)
{
	static const struct rec_deliver copy = {
		.topic = "", .seq = 5, .qos = 1, .flags = DF_RETAIN,
		.payload = (const uint8_t *)"old", .payload_len = 3, .share = "",
	};
	static const struct idle_summary kept = {
		.flags = IDLE_RETAINED | IDLE_RETAINED_COPY, .next_seq = 6, .copy = &copy,
	};
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct client *pub = fx_client(fx);
	struct child *k = cold_topic(fx, "k", &kept);
	struct attachment *a = subscribe(s, k, AF_RETAINED);
	const struct ipc_msg *m;
	struct rec_attach r;
	struct fake_td *td;

	assert_true(a->owed);
	(void)fx_publish(pub, k, 1, "new");
	td = fx_ready(fx, "k");
	m = td_expect(td, IPC_ATTACH);
	assert_int_equal(dec_attach(m->body, m->len, &r), 0);
	assert_string_equal(r.subkey, "c/1/s");
	assert_true(r.flags & AF_RETAINED);
	(void)td_expect_publish(td, "new");
	assert_false(a->owed);
	assert_int_equal(fx->ndelivered, 0);
}

/* A clean session's ATTACH that found no descriptor (EMFILE) while the
 * topic ran, and the topic goes cold meanwhile with a copy of its
 * retained message: the retry once a second finds no topicd to send the
 * ATTACH to, and leaves the copy owed, which goes. */
static void
test_a_copy_outlives_an_attach_retry(void **state)
{
	static const struct rec_deliver copy = {
		.topic = "", .seq = 1, .qos = 1, .flags = DF_RETAIN,
		.payload = (const uint8_t *)"m", .payload_len = 1, .share = "",
	};
	static const struct idle_summary said = {
		.flags = IDLE_RETAINED | IDLE_RETAINED_COPY, .next_seq = 2, .copy = &copy,
	};
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct client *pub = fx_client(fx);
	struct child *c = cold_topic(fx, "t", NULL);
	uint64_t r = fx_publish(pub, c, 1, "m");
	int fd = s->cl->dsock[1];
	struct attachment *a;
	struct fake_td *td;

	td = fx_ready(fx, "t");
	assert_int_equal(td_expect_publish(td, "m"), r);
	td_done(td, r, ST_OK, 1);
	s->cl->dsock[1] = -1;			/* its descriptor cannot be duplicated */
	a = subscribe(s, c, AF_RETAINED);
	s->cl->dsock[1] = fd;
	assert_true(a->no_fd);
	assert_false(a->sent);
	td_stop_idle(td);
	td_quiet(td);
	td_goes_cold(td, &said);
	assert_int_equal(c->state, CH_COLD);
	assert_true(a->owed);
	attach_retry_failed(&fx->b);
	assert_true(a->owed);
	FX_UNTIL(fx, fx->ndelivered == 1);
	assert_true(fx->delivered[0].copy);
	assert_int_equal(fx->delivered[0].seq, 1);
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(fx->b.nlive, 0);
	assert_int_equal(fx_count_tds(fx, "t"), 1);	/* the first, not started again */
}

/* A persistent session that comes and goes while a topic it is new to
 * is cold leaves one registration waiting for the topic's next start, not
 * one per visit (a client on '#' would fill HELD_LAZY_MAX alone). */
static void
test_visits_leave_one_waiting_registration(void **state)
{
	static const struct idle_sub subs[] = { { "m/other", false } };
	static const struct idle_summary said = { .subs = subs, .nsubs = 1 };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/p", true, false);
	struct child *c = cold_topic(fx, "k", &said);
	struct client *cl;

	assert_true(session_add_filter(s, "k", 1));
	for (int i = 0; i < 5; i++) {
		session_attach_all(s, NULL, false);
		expect_left_cold(fx, attach_find(s->cl, c));
		client_close(s->cl, "visit over");
		cl = fx_client(fx);
		assert_int_equal(delivery_open(cl), 0);
		session_online(s, cl, NULL);
	}
	assert_int_equal(fx->b.nlazy, 1);
	assert_int_equal(c->nunsent, 1);
	assert_int_equal(c->state, CH_COLD);
}

/* A registration waiting for a cold topic's next start is no work: the
 * end of another session, which the topic does not know, sends no UNSUB
 * that would start it; an UNSUB of the waiting one that keeps its cursor
 * (JSON-lines) leaves the registration, which makes just that; its end
 * drops the registration instead. */
static void
test_a_waiting_registration_is_not_work_for_an_unsub(void **state)
{
	static const struct idle_sub subs[] = { { "m/other", false } };
	static const struct idle_summary said = { .subs = subs, .nsubs = 1 };
	struct core_fx *fx = *state;
	struct session *p = fx_session(fx, "m/p", true, false);
	struct session *q = fx_session(fx, "m/q", true, true);
	struct child *c = cold_topic(fx, "k", &said);
	struct attachment *a;

	assert_true(session_add_filter(q, "k", 1));
	(void)session_save(q);
	a = subscribe(p, c, 0);
	attach_end(a, true);			/* p leaves: its registration waits */
	assert_int_equal(fx->b.nlazy, 1);
	session_delete(q);
	assert_int_equal(c->state, CH_COLD);
	topic_unsub(c, "m/p", false);		/* keeps the cursor: as registered */
	assert_int_equal(fx->b.nlazy, 1);
	assert_int_equal(c->state, CH_COLD);
	topic_unsub(c, "m/p", true);		/* p ends: its registration goes */
	assert_int_equal(fx->b.nlazy, 0);
	assert_int_equal(c->nunsent, 0);
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(fx->max_live, 0);
}

/* A clean session that is a member of a group in a topic whose deliveries
 * to it are still unread in its socket, and subscribes to the topic on
 * its own once it is cold: not from the copy, which would overtake them;
 * the topic starts, and its topicd is asked for the retained message. */
static void
test_a_copy_does_not_overtake_a_group_delivery(void **state)
{
	static const struct rec_deliver copy = {
		.topic = "", .seq = 5, .qos = 1, .flags = DF_RETAIN,
		.payload = (const uint8_t *)"new", .payload_len = 3, .share = "",
	};
	static const struct idle_summary said = {
		.flags = IDLE_RETAINED | IDLE_RETAINED_COPY, .next_seq = 6, .copy = &copy,
	};
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct child *c = cold_topic(fx, "k", NULL);
	struct rec_deliver d = { .topic = "k", .seq = 1, .qos = 1, .share = "g" };
	uint64_t limit = fx->b.set.client_output_limit;
	const struct ipc_msg *m;
	struct attachment *a;
	struct fake_td *td;
	struct rec_attach r;
	int retained = 0;
	struct wbuf w;

	assert_true(session_add_filter(s, "$share/g/k", 1));
	session_sync_shares(s, c);
	child_wake(c);
	td = fx_ready(fx, "k");
	m = td_expect(td, IPC_ATTACH);
	assert_int_equal(dec_attach(m->body, m->len, &r), 0);
	td_done(td, r.req, ST_OK, 1);
	fx->b.set.client_output_limit = 0;	/* the client is not read */
	wbuf_init(&w);
	enc_deliver(&w, &d);
	assert_int_equal(ipc_send(m->fd, IPC_DELIVER, w.data, w.len, -1), 0);
	wbuf_free(&w);
	td_sync(td);
	td_stop_idle(td);
	td_quiet(td);
	td_goes_cold(td, &said);
	a = subscribe(s, c, AF_RETAINED);
	assert_false(a->owed);
	fx->b.set.client_output_limit = limit;
	delivery_resume(s->cl);
	FX_UNTIL(fx, fx->ndelivered == 1);
	assert_int_equal(fx->delivered[0].seq, 1);
	FX_UNTIL(fx, fx_td(fx, "k") != td);	/* started again, to send it */
	td = fx_ready(fx, "k");
	for (int i = 0; i < 2; i++) {		/* the group's and its own */
		m = td_expect(td, IPC_ATTACH);
		assert_int_equal(dec_attach(m->body, m->len, &r), 0);
		retained += r.member[0] == '\0' && (r.flags & AF_RETAINED) != 0;
	}
	assert_int_equal(retained, 1);
	assert_int_equal(fx->ndelivered, 1);	/* nothing from the copy */
}

/* IDLE for fewer records than were sent is old news: ignored.  IDLE for
 * all of them makes the topicd quiet; topicd_idle_timeout later STOP
 * goes; it answers with its last IDLE (its subscribers, whether each has
 * something to get, a retained message kept) and exits 0: the topic is
 * cold, not restarted, and the registry keeps what it said. */
static void
test_idle_then_cold(void **state)
{
	static const struct idle_sub subs[] = { { "m/late", true }, { "m/done", false } };
	static const struct idle_summary said = { .flags = IDLE_RETAINED, .bytes = 42,
						  .subs = subs, .nsubs = 2 };
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = cold_topic(fx, "t", NULL);
	struct fake_td *td;
	struct topic_info *ti;
	struct event *tick;
	uint64_t r = fx_publish(cl, c, 1, "m");
	int64_t t0;

	fx->b.set.topicd_idle_timeout = 200;
	td = fx_ready(fx, "t");
	assert_int_equal(td_expect_publish(td, "m"), r);
	td_done(td, r, ST_OK, 1);
	td_idle_as(td, td_rx(td) - 1, 0, NULL);	/* said before the last record */
	td_sync(td);
	assert_int_equal(fx->nanswers, 1);
	assert_false(c->quiet);
	assert_ptr_equal(c->list, &fx->b.lru);
	t0 = mono_ms();
	td_make_quiet(td);
	tick = fx_every(fx, 10, fx_on_expire_tick);
	td_expect(td, IPC_STOP);
	assert_true(mono_ms() - t0 >= 200);
	event_free(tick);
	td_quiet(td);
	td_goes_cold(td, &said);
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(fx->b.nlive, 0);
	assert_false(evtimer_pending(c->timer, NULL));
	ti = registry_info(&fx->b, "t");
	assert_true(ti->known);
	assert_true(ti->retained);
	assert_int_equal(ti->bytes, 42);
	assert_int_equal(fx->b.stored_bytes, 42);
	assert_int_equal(topic_info_sub(ti, "m/late"), SUB_BACKLOG);
	assert_int_equal(topic_info_sub(ti, "m/done"), SUB_CAUGHT_UP);
	assert_int_equal(topic_info_sub(ti, "m/other"), SUB_ABSENT);
}

/* A clean session that ends while a topic it was attached to is cold
 * does not start it: its cursor is forgotten (UNSUB) first thing at the
 * topic's next start, before what started it. */
static void
test_clean_end_waits_for_a_start(void **state)
{
	static const struct idle_sub subs[] = { { "c/1/s", false } };
	static const struct idle_summary said = { .subs = subs, .nsubs = 1 };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct child *c = cold_topic(fx, "k", NULL);
	struct client *pub = fx_client(fx);
	struct attachment *a;
	struct fake_td *td;
	struct rec_unsub u;
	const struct ipc_msg *m;
	uint64_t r;

	a = subscribe(s, c, 0);			/* a new topic: it stays cold */
	r = fx_publish(pub, c, 1, "first");	/* starts it */
	td = fx_ready(fx, "k");
	(void)td_expect_attach(td, "c/1/s");	/* attachments go first */
	assert_int_equal(td_expect_publish(td, "first"), r);
	td_done(td, r, ST_OK, 1);
	td_done(td, a->req, ST_OK, 1);
	td_sync(td);
	td_stop_idle(td);
	td_goes_cold(td, &said);
	assert_int_equal(c->state, CH_COLD);

	attach_end(a, false);			/* as MQTT ends a clean session */
	assert_true(TAILQ_EMPTY(&c->held));
	assert_int_equal(c->ncold_unsubs, 1);
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(fx->b.nlive, 0);
	assert_int_equal(fx_count_tds(fx, "k"), 1);	/* the first one only */

	r = fx_publish(pub, c, 2, "second");	/* the next start */
	td = fx_ready(fx, "k");
	m = td_expect(td, IPC_UNSUB);
	assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
	assert_string_equal(u.subkey, "c/1/s");
	assert_true(u.flags & UF_FORGET);
	assert_int_equal(td_expect_publish(td, "second"), r);
	assert_int_equal(c->ncold_unsubs, 0);
}

/* max_topicds 2: a third topic that needs a topicd waits (queued) while
 * the one quiet longest is stopped, and starts once it has exited, never
 * as a third process; the other quiet one keeps running. */
static void
test_room_from_quietest(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *a = cold_topic(fx, "a", NULL), *b = cold_topic(fx, "b", NULL);
	struct child *c = cold_topic(fx, "c", NULL);
	struct fake_td *ta, *tb, *tc;
	uint64_t r;

	fx->b.set.max_topicds = 2;
	child_wake(a);
	ta = fx_ready(fx, "a");
	td_make_quiet(ta);
	child_wake(b);
	tb = fx_ready(fx, "b");
	td_make_quiet(tb);
	r = fx_publish(cl, c, 1, "m");
	assert_int_equal(c->state, CH_QUEUED);
	assert_int_equal(fx_count_tds(fx, "c"), 0);
	td_expect(ta, IPC_STOP);
	assert_int_equal(a->state, CH_PARKING);
	td_quiet(tb);
	assert_int_equal(c->state, CH_QUEUED);

	td_goes_cold(ta, NULL);
	assert_int_equal(a->state, CH_COLD);
	tc = fx_ready(fx, "c");
	assert_int_equal(td_expect_publish(tc, "m"), r);
	td_quiet(tb);
	assert_int_equal(b->state, CH_READY);
	assert_int_equal(fx->b.nlive, 2);
	assert_int_equal(fx->max_live, 2);
}

/* A persistent session that subscribed while a topic was cold and leaves
 * before it started has its cursor made there, but not by starting it:
 * its ATTACH (no socket) goes first at the next start, before the publish
 * that causes it, and the broker's stop does not wait for it.  A
 * persistent session on '#' that comes and goes would otherwise start
 * every cold topic. */
static void
test_an_offline_registration_waits_for_a_start(void **state)
{
	static const struct idle_sub subs[] = { { "m/other", false } };
	static const struct idle_summary said = { .subs = subs, .nsubs = 1 };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/p", true, false);
	struct child *c = cold_topic(fx, "k", &said);
	struct client *pub = fx_client(fx);
	struct attachment *a;
	struct fake_td *td;
	struct rec_attach r;
	const struct ipc_msg *m;
	uint64_t req;

	a = subscribe(s, c, 0);
	expect_left_cold(fx, a);
	attach_end(a, true);			/* it leaves, its session kept */
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(fx_count_tds(fx, "k"), 0);
	assert_int_equal(fx->max_live, 0);
	assert_int_equal(children_pending(&fx->b), 0);

	req = fx_publish(pub, c, 1, "m");	/* the next start */
	td = fx_ready(fx, "k");
	m = td_expect(td, IPC_ATTACH);
	assert_int_equal(dec_attach(m->body, m->len, &r), 0);
	assert_string_equal(r.subkey, "m/p");
	assert_int_equal(m->fd, -1);
	assert_int_equal(td_expect_publish(td, "m"), req);
	assert_int_equal(children_pending(&fx->b), 2);	/* sent: answered before a stop */
	assert_int_equal(fx->b.nlazy, 0);

	/* Past HELD_LAZY_MAX waiting, one starts its topic as before. */
	c = cold_topic(fx, "k2", &said);
	a = subscribe(s, c, 0);
	expect_left_cold(fx, a);
	fx->b.nlazy = HELD_LAZY_MAX;
	attach_end(a, true);
	td = fx_ready(fx, "k2");
	m = td_expect(td, IPC_ATTACH);
	assert_int_equal(m->fd, -1);
	assert_int_equal(fx->b.nlazy, HELD_LAZY_MAX);
	fx->b.nlazy = 0;
}

/* A session that comes and goes gives a quiet topicd no work: quiet
 * again, it has been so since before, and it keeps its place at the head
 * of the quiet ones (a client on a wildcard that connects every few
 * seconds would otherwise keep every topicd it matches running).  A
 * publish is work: the clock starts again. */
static void
test_attachments_keep_the_idle_clock(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct child *a = cold_topic(fx, "a", NULL), *b = cold_topic(fx, "b", NULL);
	struct client *pub = fx_client(fx);
	const struct ipc_msg *m;
	struct attachment *at;
	struct fake_td *ta, *tb;
	struct rec_unsub u;
	int64_t since;
	uint64_t r;

	child_wake(a);
	ta = fx_ready(fx, "a");
	td_make_quiet(ta);
	since = a->quiet_since;
	FX_UNTIL(fx, mono_ms() > since);
	child_wake(b);
	tb = fx_ready(fx, "b");
	td_make_quiet(tb);
	assert_true(b->quiet_since > since);

	at = subscribe(s, a, 0);
	(void)td_expect_attach(ta, "c/1/s");
	assert_false(a->quiet);
	td_done(ta, at->req, ST_OK, 0);
	td_make_quiet(ta);
	assert_int_equal(a->quiet_since, since);
	assert_ptr_equal(TAILQ_FIRST(&fx->b.quiet), a);

	attach_end(at, false);			/* the clean session ends */
	m = td_expect(ta, IPC_UNSUB);
	assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
	if (u.req != 0)
		td_done(ta, u.req, ST_OK, 0);
	td_make_quiet(ta);
	assert_int_equal(a->quiet_since, since);
	assert_ptr_equal(TAILQ_FIRST(&fx->b.quiet), a);

	FX_UNTIL(fx, mono_ms() > b->quiet_since);
	r = fx_publish(pub, a, 1, "m");
	assert_int_equal(td_expect_publish(ta, "m"), r);
	td_done(ta, r, ST_OK, 1);
	td_make_quiet(ta);
	assert_true(a->quiet_since > b->quiet_since);
	assert_ptr_equal(TAILQ_FIRST(&fx->b.quiet), b);
	assert_ptr_equal(TAILQ_LAST(&fx->b.quiet, child_list), a);
}

struct seen {
	struct core_fx	*fx;
	unsigned	 started;	/* topicds started when the socket was served */
};

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct seen *seen = arg;

	(void)fd;
	(void)what;
	seen->started = seen->fx->b.nlive;
}

/* Starting a topicd costs a fork and an exec: a pass of the loop starts
 * them for a while, and the loop serves its sockets before the next pass,
 * so that many cold topics woken at once (a subscription to a wildcard
 * over them) hold up nothing else.  Those waiting for a pass while there
 * is room stop no quiet topicd. */
static void
test_starts_take_passes(void **state)
{
	struct core_fx *fx = *state;
	struct seen seen = { fx, UINT_MAX };
	struct child *c[40], *q = cold_topic(fx, "quiet", NULL);
	struct fake_td *tq;
	struct event *ev;
	char topic[16];
	int sv[2];

	fx->b.set.max_topicds = 100;
	child_wake(q);
	tq = fx_ready(fx, "quiet");
	td_make_quiet(tq);
	for (unsigned i = 0; i < 40; i++) {
		snprintf(topic, sizeof(topic), "cold/%u", i);
		c[i] = cold_topic(fx, topic, NULL);
	}
	fx->spawn_ms = 2;
	for (unsigned i = 0; i < 40; i++)
		child_wake(c[i]);
	assert_true(fx->b.nlive >= 2 && fx->b.nlive < 41);
	assert_int_equal(fx->b.nqueued, 41 - fx->b.nlive);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write(sv[0], "x", 1), 1);
	ev = event_new(fx->b.base, sv[1], EV_READ, on_readable, &seen);
	assert_non_null(ev);
	assert_int_equal(event_add(ev, NULL), 0);
	FX_UNTIL(fx, fx->b.nlive == 41);
	assert_true(seen.started < 41);
	td_quiet(tq);				/* no STOP */
	assert_int_equal(q->state, CH_READY);
	event_free(ev);
	close(sv[0]);
	close(sv[1]);
}

/* A publish to a cold topic, its topicd started and given it: busy. */
static struct fake_td *
busy_topic(struct core_fx *fx, struct client *cl, struct child *c, uint64_t *req)
{
	struct fake_td *td;

	*req = fx_publish(cl, c, 0, c->topic);
	td = fx_ready(fx, c->topic);
	assert_int_equal(td_expect_publish(td, c->topic), *req);
	return td;
}

/* With none quiet, room is made by stopping the least recently used
 * topicd, only once it ran LIVE_MIN_MS: busy topics take turns.  What is
 * submitted to a stopping topicd waits; its DONE and last IDLE, still in
 * the channel when SIGCHLD is handled, count (the request is answered
 * once, the summary is kept); the requests that waited then go, in
 * order, to its next process, when its turn comes again. */
static void
test_busy_take_turns(void **state)
{
	static const struct idle_sub subs[] = { { "m/s", false } };
	static const struct idle_summary said = { .subs = subs, .nsubs = 1 };
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *a = cold_topic(fx, "a", NULL), *b = cold_topic(fx, "b", NULL);
	struct child *c = cold_topic(fx, "c", NULL);
	struct fake_td *ta, *tb;
	struct event *tick;
	uint64_t pa, pb, r, later[2];

	fx->b.set.max_topicds = 2;
	ta = busy_topic(fx, cl, a, &pa);
	tb = busy_topic(fx, cl, b, &pb);
	r = fx_publish(cl, c, 3, "r");
	td_quiet(ta);				/* they ran less than LIVE_MIN_MS */
	td_quiet(tb);
	tick = fx_every(fx, 10, fx_on_expire_tick);
	td_expect(ta, IPC_STOP);
	assert_true(mono_ms() - a->started_at >= LIVE_MIN_MS);
	td_quiet(tb);				/* one stops for the one waiting */
	later[0] = fx_publish(cl, a, 1, "a1");
	later[1] = fx_publish(cl, a, 2, "a2");
	td_quiet(ta);

	td_done(ta, pa, ST_OK, 1);
	td_final(ta, &said);
	td_exit_unread(ta, 0);
	assert_int_equal(fx->nanswers, 1);
	fx_expect_answer(fx, 0, 0, ST_OK, "a");
	assert_int_equal(a->state, CH_QUEUED);	/* cold, with requests waiting */
	assert_int_equal(topic_info_sub(registry_info(&fx->b, "a"), "m/s"), SUB_CAUGHT_UP);
	assert_int_equal(fx_count_tds(fx, "c"), 1);
	td_expect(tb, IPC_STOP);		/* the next least recently used */
	assert_true(mono_ms() - b->started_at >= LIVE_MIN_MS);
	event_free(tick);
	td_done(tb, pb, ST_OK, 1);
	td_goes_cold(tb, NULL);

	ta = fx_ready(fx, "a");
	assert_int_equal(td_expect_publish(ta, "a1"), later[0]);
	assert_int_equal(td_expect_publish(ta, "a2"), later[1]);
	td_quiet(ta);
	assert_int_equal(td_expect_publish(fx_ready(fx, "c"), "r"), r);
	assert_int_equal(fx->nanswers, 2);
	assert_int_equal(fx->max_live, 2);
}

/* A request to a cold topic starts it; nothing goes to its topicd, ready
 * or not, before the master's store says durably that the topic is live
 * (its summary is unknown from then on); then all of it, in order. */
static void
test_nothing_before_registered(void **state)
{
	static const struct idle_sub subs[] = { { "m/s", false } };
	static const struct idle_summary caught_up = { .subs = subs, .nsubs = 1 };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/s", true, false);
	struct client *cl = fx_client(fx);
	struct child *c = cold_topic(fx, "t", &caught_up);
	struct attachment *at = subscribe(s, c, 0);
	struct fake_td *td;
	uint64_t r[2];

	expect_left_cold(fx, at);
	fx_hold_store(fx);
	r[0] = fx_publish(cl, c, 1, "one");
	assert_int_equal(c->state, CH_STARTING);
	assert_false(c->registered);
	assert_int_equal(topic_info_sub(registry_info(&fx->b, "t"), "m/s"), SUB_UNKNOWN);
	td = fx_td(fx, "t");
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	FX_UNTIL(fx, c->state == CH_READY);
	r[1] = fx_publish(cl, c, 2, "two");
	td_sync(td);
	td_quiet(td);
	assert_false(c->registered);
	assert_false(at->sent);

	fx_release_store(fx);
	FX_UNTIL(fx, c->registered);
	(void)td_expect_attach(td, "m/s");
	assert_int_equal(td_expect_publish(td, "one"), r[0]);
	assert_int_equal(td_expect_publish(td, "two"), r[1]);
	td_quiet(td);
}

/* A topicd started for a subscriber's retained message says IDLE before
 * its topic is registered: it was sent nothing it was started for, so it
 * is not the one stopped for another topic's room (it would start again,
 * and again: a subscriber on # to thousands of cold topics waited for
 * each topic's third or eighth topicd).  Registered, it gets the ATTACH;
 * idle after that, it is stopped for the topic that waits.  One that
 * said IDLE early and was sent nothing once registered is quiet then. */
static void
test_idle_before_registered(void **state)
{
	static const struct idle_sub subs[] = { { "c/1/s", false } };
	static const struct idle_summary kept = { .flags = IDLE_RETAINED };
	static const struct idle_summary sent = { .flags = IDLE_RETAINED, .subs = subs,
	    .nsubs = 1 };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/s", false, false);
	struct client *cl = fx_client(fx);
	struct child *c = cold_topic(fx, "t", &kept), *u = cold_topic(fx, "u", NULL);
	struct child *v = cold_topic(fx, "v", NULL);
	struct fake_td *td, *tv;
	uint64_t r;

	fx->b.set.max_topicds = 1;
	fx_hold_store(fx);
	(void)subscribe(s, c, AF_RETAINED);
	td = fx_td(fx, "t");
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	td_idle(td);
	r = fx_publish(cl, u, 1, "m");
	assert_int_equal(u->state, CH_QUEUED);
	td_sync(td);
	assert_false(c->registered);
	assert_false(c->quiet);
	assert_int_equal(c->state, CH_READY);
	td_quiet(td);				/* no STOP */

	fx_release_store(fx);
	FX_UNTIL(fx, c->registered);
	td_done(td, td_expect_attach(td, "c/1/s"), ST_OK, 1);
	td_sync(td);
	assert_false(c->quiet);
	td_idle(td);
	td_expect(td, IPC_STOP);
	td_goes_cold(td, &sent);
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(td_expect_publish(fx_ready(fx, "u"), "m"), r);

	/* Started for nothing it is sent, early IDLE and all: quiet once
	 * registered. */
	fx->b.set.max_topicds = 2;
	fx_hold_store(fx);
	child_wake(v);
	tv = fx_td(fx, "v");
	td_config(tv);
	td_ready_as(tv, IPC_PROTO_VERSION, "v");
	td_idle(tv);
	td_sync(tv);
	assert_false(v->quiet);
	fx_release_store(fx);
	FX_UNTIL(fx, v->quiet);
	td_quiet(tv);
}

/* Acks that come while no topicd takes them (one stopping, one restarting
 * after a crash) reach the next topicd first, before the ATTACH of the
 * session that sent them: it is not sent again what it acknowledged. */
static void
test_acks_go_first(void **state)
{
	static const struct idle_sub subs[] = { { "m/s", true } };
	static const struct idle_summary in_flight = { .subs = subs, .nsubs = 1 };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/s", true, false);
	struct child *c = cold_topic(fx, "t", &in_flight);
	struct attachment *at = subscribe(s, c, 0);	/* starts it: a backlog */
	struct fake_td *td = fx_ready(fx, "t");

	td_done(td, td_expect_attach(td, "m/s"), ST_OK, 1);
	FX_UNTIL(fx, at->confirmed);
	td_stop_idle(td);
	ack_to_topic(&fx->b, "m/s", "t", "", 7, ACK_PUBACK);
	assert_int_equal(c->nacks, 1);
	td_quiet(td);
	td_goes_cold(td, &in_flight);		/* started again for the backlog */
	td = fx_ready(fx, "t");
	td_expect_ack(td, "m/s", 7);
	(void)td_expect_attach(td, "m/s");
	td_quiet(td);

	td_die(td, -SIGKILL);
	assert_int_equal(c->state, CH_BACKOFF);
	ack_to_topic(&fx->b, "m/s", "t", "", 8, ACK_PUBACK);
	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	td_expect_ack(td, "m/s", 8);
	(void)td_expect_attach(td, "m/s");
	td_quiet(td);
	assert_int_equal(c->nacks, 0);
}

/* The last IDLE still in the channel when SIGCHLD is handled first is not
 * lost: the topic is cold with what it said, not restarted.  A last IDLE
 * for fewer records than were sent is no last word: that exit is a crash,
 * and the topic is restarted. */
static void
test_last_idle_in_channel(void **state)
{
	static const struct idle_summary kept = { .flags = IDLE_RETAINED };
	struct core_fx *fx = *state;
	struct child *c = cold_topic(fx, "t", NULL), *u = cold_topic(fx, "u", NULL);
	struct fake_td *td, *tu;

	child_wake(c);
	td = fx_ready(fx, "t");
	td_stop_idle(td);
	td_final(td, &kept);
	td_exit_unread(td, 0);
	assert_int_equal(c->state, CH_COLD);
	assert_false(evtimer_pending(c->timer, NULL));
	assert_true(registry_info(&fx->b, "t")->retained);

	child_wake(u);
	tu = fx_ready(fx, "u");
	td_stop_idle(tu);
	td_idle_as(tu, td_rx(tu) - 1, IDLE_FINAL, &kept);
	td_exit_unread(tu, 0);
	assert_int_equal(u->state, CH_BACKOFF);
	assert_false(registry_info(&fx->b, "u")->known);
	tu = fx_restarted(fx, tu);
	td_config(tu);
}

/* A reload sends the new settings to the topicds that run, none to one
 * that was sent STOP: it may exit before it reads them, and its last
 * IDLE, missing them, would make its exit a crash (restarted, its summary
 * unknown).  It goes cold; its next topicd starts with the new settings. */
static void
test_reload_while_stopping(void **state)
{
	struct core_fx *fx = *state;
	struct child *c = cold_topic(fx, "t", NULL), *u = cold_topic(fx, "u", NULL);
	struct fake_td *td, *tu;

	child_wake(c);
	td = fx_ready(fx, "t");
	child_wake(u);
	tu = fx_ready(fx, "u");
	td_stop_idle(td);
	children_config(&fx->b);
	td_config(tu);
	td_quiet(tu);
	td_goes_cold(td, NULL);
	assert_int_equal(c->state, CH_COLD);
	assert_true(registry_info(&fx->b, "t")->known);
	td_quiet(td);

	child_wake(c);
	td = fx_ready(fx, "t");
	td_quiet(td);
}

/* The summary of a cold topic is in the master's store: it reads back
 * after a restart (registry_load).  A topic whose topicd was live when
 * the store was last written reads back as unknown. */
static void
test_summary_reloaded(void **state)
{
	static const struct idle_sub subs[] = { { "m/b", true }, { "m/a", false } };
	static const struct idle_summary said = { .flags = IDLE_RETAINED, .bytes = 5,
						  .subs = subs, .nsubs = 2 };
	struct core_fx *fx = *state;
	struct child *c = cold_topic(fx, "cold", NULL), *l = cold_topic(fx, "live", &said);
	struct topic_info *ti;
	struct fake_td *td;

	child_wake(c);
	td = fx_ready(fx, "cold");
	td_stop_idle(td);
	td_goes_cold(td, &said);
	child_wake(l);
	(void)fx_ready(fx, "live");
	FX_UNTIL(fx, l->registered);		/* what the store says now */

	fx_store_reopen(fx);
	assert_int_equal(fx->b.ntopics, 2);
	ti = registry_info(&fx->b, "cold");
	assert_true(ti->known);
	assert_true(ti->retained);
	assert_int_equal(ti->bytes, 5);
	assert_int_equal(topic_info_sub(ti, "m/a"), SUB_CAUGHT_UP);
	assert_int_equal(topic_info_sub(ti, "m/b"), SUB_BACKLOG);
	assert_int_equal(topic_info_sub(ti, "m/c"), SUB_ABSENT);
	ti = registry_info(&fx->b, "live");
	assert_false(ti->known);
	assert_int_equal(topic_info_sub(ti, "m/a"), SUB_UNKNOWN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_subscribe_nothing_there, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_something_there, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_retained_asked, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_retained_from_copy, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_retained_copy_topic_starts_first, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_copy_outlives_an_attach_retry, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_visits_leave_one_waiting_registration,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_waiting_registration_is_not_work_for_an_unsub,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_copy_does_not_overtake_a_group_delivery,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_idle_then_cold, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_room_from_quietest, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_attachments_keep_the_idle_clock, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_an_offline_registration_waits_for_a_start,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_starts_take_passes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_busy_take_turns, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nothing_before_registered, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_acks_go_first, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_last_idle_in_channel, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_idle_before_registered, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_reload_while_stopping, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_summary_reloaded, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_clean_end_waits_for_a_start, fx_setup,
		    fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
