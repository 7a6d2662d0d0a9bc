/* Sessions attached to topics (broker/core/attach.c): what a topicd is
 * told about a session's subscription, with its delivery socket or
 * without one, and what every new topicd of the topic is told again.
 * (What a subscription does to a cold topic: test_core_live.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "core_fixture.h"
#include "fake_proto.h"
#include "fake_topicd.h"

static const struct rec_attach settings = {
	.mode = MODE_MQTT, .qos = 1, .flags = AF_NEW_ONLY, .window = 100,	/* max_inflight_messages */
};

/* A new topic: cold, no topicd. */
static struct child *
open_topic(struct core_fx *fx, const char *topic)
{
	const char *why = NULL;
	struct child *c = topic_open(&fx->b, topic, &why);

	assert_non_null(c);
	assert_int_equal(c->state, CH_COLD);
	return c;
}

/* A new topic whose topicd runs (woken, as a request would), ready. */
static struct child *
running_topic(struct core_fx *fx, const char *topic, struct fake_td **td)
{
	struct child *c = open_topic(fx, topic);

	child_wake(c);
	*td = fx_ready(fx, topic);
	return c;
}

/* The next record is an ATTACH of subkey, with a delivery socket or
 * without; its req. */
static uint64_t
td_expect_attach(struct fake_td *td, const char *subkey, bool with_fd)
{
	const struct ipc_msg *m = td_expect(td, IPC_ATTACH);
	struct rec_attach a;

	assert_int_equal(dec_attach(m->body, m->len, &a), 0);
	assert_string_equal(a.subkey, subkey);
	assert_int_equal(a.mode, settings.mode);
	assert_int_equal(a.qos, settings.qos);
	assert_int_equal(a.window, settings.window);
	assert_int_equal(a.flags, settings.flags);
	assert_int_equal(m->fd != -1, with_fd);
	assert_int_not_equal(a.req, 0);
	return a.req;
}

/* What the topicd writes into the socket of the last ATTACH it was
 * handed reaches the session's client. */
static void
deliver_through(struct fake_td *td, struct client *cl, uint64_t seq)
{
	struct rec_deliver d = { .topic = td->topic, .seq = seq, .qos = 1 };
	struct core_fx *fx = td->fx;
	size_t n = fx->ndelivered, i = td->next;
	struct wbuf w;

	while (i > 0 && (td->recs[i - 1].type != IPC_ATTACH || td->recs[i - 1].fd == -1))
		i--;
	assert_int_not_equal(i, 0);
	wbuf_init(&w);
	enc_deliver(&w, &d);
	assert_int_equal(ipc_send(td->recs[i - 1].fd, IPC_DELIVER, w.data, w.len, -1), 0);
	wbuf_free(&w);
	FX_UNTIL(fx, fx->ndelivered == n + 1);
	assert_int_equal(fx->delivered[n].client_id, cl->id);
	assert_string_equal(fx->delivered[n].topic, td->topic);
	assert_int_equal(fx->delivered[n].seq, seq);
}

/* A subscription to a new topic does not start it (nothing to get
 * there); the topicd a publish starts gets the ATTACH, with the client's
 * delivery socket, on READY and before the publish; its DONE confirms
 * it; a detach then says DETACH. */
static void
test_attach_and_detach(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/a", true, false);
	struct client *pub = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	const struct ipc_msg *m;
	struct attachment *a;
	struct rec_detach d;
	struct fake_td *td;
	uint64_t req, r;

	attach_topic(s->cl, c, &settings);
	a = attach_find(s->cl, c);
	assert_non_null(a);
	assert_false(a->sent);
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(fx_count_tds(fx, "t"), 0);

	r = fx_publish(pub, c, 1, "m");
	td = fx_td(fx, "t");
	td_config(td);
	td_quiet(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	req = td_expect_attach(td, "m/a", true);
	assert_int_equal(td_expect_publish(td, "m"), r);
	td_quiet(td);
	assert_true(a->sent);
	assert_false(a->confirmed);
	td_done(td, r, ST_OK, 1);
	td_done(td, req, ST_OK, 1);
	FX_UNTIL(fx, a->confirmed);
	assert_int_equal(fx->nanswers, 1);
	fx_expect_answer(fx, 0, 1, ST_OK, "t");
	deliver_through(td, s->cl, 1);

	attach_drop(a, true);
	m = td_expect(td, IPC_DETACH);
	assert_int_equal(dec_detach(m->body, m->len, &d), 0);
	assert_string_equal(d.subkey, "m/a");
	assert_null(attach_find(s->cl, c));
	assert_true(TAILQ_EMPTY(&c->attached));
	td_quiet(td);
}

/* Out of descriptors, an ATTACH cannot take a copy of the session's
 * socket: it is not sent, and goes at the first tick that finds one. */
static void
test_attach_retried_without_descriptors(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/a", true, false);
	struct fake_td *td;
	struct child *c = running_topic(fx, "t", &td);
	struct rlimit old, none;
	struct attachment *a;
	int lowest;

	FX_UNTIL(fx, c->registered);		/* attachments go now */
	lowest = fcntl(0, F_DUPFD_CLOEXEC, 0);
	assert_int_not_equal(lowest, -1);
	close(lowest);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	none = old;
	none.rlim_cur = (rlim_t)lowest;		/* every descriptor allowed is in use */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
	attach_topic(s->cl, c, &settings);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	a = attach_find(s->cl, c);
	assert_true(a->no_fd && !a->sent);
	td_quiet(td);
	attach_retry_failed(&fx->b);
	(void)td_expect_attach(td, "m/a", true);
	assert_true(a->sent && !a->no_fd);
	td_quiet(td);
}

/* Every new topicd gets the attachment again, with a working copy of the
 * socket; an UNSUB that waited for it still goes first (it came before). */
static void
test_attach_replayed(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/a", true, false);
	struct fake_td *td;
	struct child *c = running_topic(fx, "t", &td);
	const struct ipc_msg *m;
	struct rec_unsub u;
	uint64_t req, req2;

	attach_topic(s->cl, c, &settings);
	req = td_expect_attach(td, "m/a", true);
	td_done(td, req, ST_OK, 1);
	td_sync(td);
	td_die(td, -SIGKILL);
	topic_unsub(c, "m/gone", true);

	td = fx_restarted(fx, td);
	td_config(td);
	td_quiet(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	m = td_expect(td, IPC_UNSUB);
	assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
	assert_string_equal(u.subkey, "m/gone");
	assert_int_equal(u.flags, UF_FORGET);
	req2 = td_expect_attach(td, "m/a", true);
	assert_int_not_equal(req2, req);
	assert_false(attach_find(s->cl, c)->confirmed);
	deliver_through(td, s->cl, 2);
	td_quiet(td);
	td_done(td, req2, ST_OK, 1);
	FX_UNTIL(fx, attach_find(s->cl, c)->confirmed);
}

/* While a restarted topicd is probed (one request at a time), a
 * subscriber's UNSUB waits behind the request probed; its new ATTACH must
 * not overtake it (the UNSUB would drop the new subscription): it waits,
 * and goes right after the UNSUB. */
static void
test_attach_waits_for_an_unsub_held_before_it(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/a", true, false);
	struct client *pub = fx_client(fx);
	struct fake_td *td;
	struct child *c = running_topic(fx, "t", &td);
	const struct ipc_msg *m;
	struct rec_unsub u;
	uint64_t r[2];

	r[0] = fx_publish(pub, c, 1, "p0");
	r[1] = fx_publish(pub, c, 2, "p1");
	td_expect_publish(td, "p0");
	td_expect_publish(td, "p1");
	td = td_crash_to_probing(td, c);	/* with both outstanding */
	assert_int_equal(td_expect_publish(td, "p0"), r[0]);
	topic_unsub(c, "m/a", true);		/* UNSUBSCRIBE: held behind p1 */
	attach_topic(s->cl, c, &settings);	/* SUBSCRIBE again */
	td_quiet(td);
	td_done(td, r[0], ST_OK, 1);
	assert_int_equal(td_expect_publish(td, "p1"), r[1]);
	td_quiet(td);
	td_done(td, r[1], ST_OK, 2);
	m = td_expect(td, IPC_UNSUB);
	assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
	assert_string_equal(u.subkey, "m/a");
	(void)td_expect_attach(td, "m/a", true);
	td_quiet(td);
	assert_true(attach_find(s->cl, c)->sent);
}

/* An offline persistent session's cursor: an ATTACH without a socket,
 * held until answered (so again to a topicd that died first), never
 * again once answered. */
static void
test_offline_registered(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td;
	struct child *c = running_topic(fx, "t", &td);
	struct rec_attach a = settings;
	uint64_t req;

	a.subkey = "m/off";
	attach_offline(c, &a);
	req = td_expect_attach(td, "m/off", false);
	td_die(td, -SIGKILL);
	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	assert_int_equal(td_expect_attach(td, "m/off", false), req);
	td_done(td, req, ST_OK, 1);
	td_sync(td);
	assert_true(TAILQ_EMPTY(&c->held));

	td_die(td, -SIGKILL);
	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	FX_UNTIL(fx, c->state == CH_READY);
	td_quiet(td);
}

/* A session that goes before its ATTACH was confirmed keeps its cursor:
 * the topicd is asked for it without a socket, not told DETACH. */
static void
test_detach_unconfirmed(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/a", true, false);
	struct fake_td *td;
	struct child *c = running_topic(fx, "t", &td);

	attach_topic(s->cl, c, &settings);
	(void)td_expect_attach(td, "m/a", true);
	client_close(s->cl, "test");
	assert_null(s->cl);
	(void)td_expect_attach(td, "m/a", false);
	td_quiet(td);
}

/* A session whose filters no longer match a topic: it is detached and
 * unsubscribed (an MQTT session forgets its cursor), and its protocol
 * hears that the topic is dropped. */
static void
test_sync_drops_topic(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/a", true, false);
	struct child *c;
	struct fake_td *td;
	const struct ipc_msg *m;
	struct rec_unsub u;
	uint64_t req;

	assert_true(session_add_filter(s, "a/#", 1));
	c = open_topic(fx, "a/b");		/* new: the session's filter matches it */
	assert_non_null(attach_find(s->cl, c));
	assert_int_equal(fx_count_tds(fx, "a/b"), 0);	/* nothing to get there yet */
	child_wake(c);
	td = fx_ready(fx, "a/b");
	req = td_expect_attach(td, "m/a", true);
	td_done(td, req, ST_OK, 1);
	FX_UNTIL(fx, attach_find(s->cl, c)->confirmed);

	assert_true(session_remove_filter(s, "a/#"));
	session_sync_topic(s, c, false);
	td_expect(td, IPC_DETACH);
	m = td_expect(td, IPC_UNSUB);
	assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
	assert_string_equal(u.subkey, "m/a");
	assert_int_equal(u.flags, UF_FORGET);
	td_quiet(td);
	assert_null(attach_find(s->cl, c));
	assert_int_equal(fx->ndropped, 1);
	assert_string_equal(fx->dropped[0], "a/b");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_attach_and_detach, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_attach_retried_without_descriptors, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_attach_replayed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_attach_waits_for_an_unsub_held_before_it,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_offline_registered, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_detach_unconfirmed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_drops_topic, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
