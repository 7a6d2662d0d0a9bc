/* Shared subscriptions in the master's core (broker/core/share.c): a
 * session's $share/GROUP/FILTER filter makes it a member of the group in
 * every topic FILTER matches, online with its delivery socket or
 * registered while offline; it leaves with the filter or with its clean
 * session, and only goes offline with a persistent one's client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_fixture.h"
#include "fake_proto.h"
#include "fake_topicd.h"

#define GKEY SHARE_KEY_PREFIX "g/a/#"

static struct child *
open_topic(struct core_fx *fx, const char *topic)
{
	const char *why = NULL;
	struct child *c = topic_open(&fx->b, topic, &why);

	assert_non_null(c);
	return c;
}

/* The next record is an ATTACH of the group for member; its req. */
static uint64_t
td_expect_member(struct fake_td *td, const char *member, bool with_fd)
{
	const struct ipc_msg *m = td_expect(td, IPC_ATTACH);
	struct rec_attach a;

	assert_int_equal(dec_attach(m->body, m->len, &a), 0);
	assert_string_equal(a.subkey, GKEY);
	assert_string_equal(a.member, member);
	assert_int_equal(a.qos, 2);
	assert_int_equal(a.flags, AF_NEW_ONLY);	/* no retained message for a group */
	assert_int_equal(m->fd != -1, with_fd);
	return a.req;
}

static void
td_expect_leave(struct fake_td *td, const char *member, uint8_t flags)
{
	const struct ipc_msg *m = td_expect(td, IPC_UNSUB);
	struct rec_unsub u;

	assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
	assert_string_equal(u.subkey, GKEY);
	assert_string_equal(u.member, member);
	assert_int_equal(u.flags, flags);
}

/* A running topic that the session's share filter matches: it is a
 * member there, with its socket, apart from its own attachments. */
static struct fake_td *
member_of_running_topic(struct core_fx *fx, struct session *s, struct child **cp)
{
	struct fake_td *td;
	uint64_t req;

	assert_true(session_add_filter(s, "$share/g/a/#", 2));
	*cp = open_topic(fx, "a/b");
	assert_null(attach_find(s->cl, *cp));
	assert_false(TAILQ_EMPTY(&s->cl->shared));
	child_wake(*cp);
	td = fx_ready(fx, "a/b");
	req = td_expect_member(td, s->key, true);
	td_done(td, req, ST_OK, 1);
	FX_UNTIL(fx, TAILQ_FIRST(&s->cl->shared)->confirmed);
	td_quiet(td);
	return td;
}

/* A persistent session's client goes: the member goes offline. */
static void
test_persistent_member_goes_offline(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/a", true, false);
	struct rec_detach d;
	struct child *c;
	struct fake_td *td = member_of_running_topic(fx, s, &c);
	const struct ipc_msg *m;

	session_offline(s);
	m = td_expect(td, IPC_DETACH);
	assert_int_equal(dec_detach(m->body, m->len, &d), 0);
	assert_string_equal(d.subkey, GKEY);
	assert_string_equal(d.member, "m/a");
	td_quiet(td);
	assert_true(TAILQ_EMPTY(&c->attached));
}

/* A clean session's client goes: the member leaves, and the group goes
 * with its last member. */
static void
test_clean_member_leaves(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "c/1/a", false, false);
	struct child *c;
	struct fake_td *td = member_of_running_topic(fx, s, &c);

	session_offline(s);
	td_expect_leave(td, "c/1/a", UF_FORGET);
	td_quiet(td);
	session_free(s);
}

/* Unsubscribing the share filter: the member leaves the group, and the
 * protocol is told the topic is dropped for the group. */
static void
test_filter_removed_leaves(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/a", true, false);
	struct child *c;
	struct fake_td *td = member_of_running_topic(fx, s, &c);

	assert_true(session_remove_filter(s, "$share/g/a/#"));
	td_expect_leave(td, "m/a", UF_FORGET);
	td_quiet(td);
	assert_true(TAILQ_EMPTY(&s->cl->shared));
	assert_int_equal(fx->ndropped, 1);
	assert_string_equal(fx->dropped[0], "a/b $share/g/a/#");
}

/* An offline persistent session is registered as a member of a new
 * topic's group, without a socket: at the topic's first start (its first
 * publish), first.  No UNSUB of a cursor of its own goes: a new topic
 * has none, and one would start the topic for nothing. */
static void
test_offline_member_registered(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/off", true, true);
	struct fake_td *td;
	struct child *c;
	uint64_t r;

	assert_true(session_add_filter(s, "$share/g/a/#", 2));
	c = open_topic(fx, "a/x");
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(fx->max_live, 0);
	r = fx_publish(fx_client(fx), c, 1, "m");
	td = fx_ready(fx, "a/x");
	(void)td_expect_member(td, "m/off", false);
	assert_int_equal(td_expect_publish(td, "m"), r);
	td_quiet(td);
}

/* A session with a plain filter and a share of the same filter: both
 * attachments, and the plain one's route (and deliveries in flight) stay
 * when the share goes. */
static void
test_plain_and_share_side_by_side(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/both", true, false);
	struct child *c;
	struct fake_td *td = member_of_running_topic(fx, s, &c);
	struct child *c2;

	assert_true(session_add_filter(s, "a/#", 1));
	session_attach_all(s, "a/#", false);
	assert_non_null(attach_find(s->cl, c));
	td_expect(td, IPC_ATTACH);
	assert_true(session_remove_filter(s, "$share/g/a/#"));
	td_expect_leave(td, "m/both", UF_FORGET);
	td_quiet(td);
	assert_int_equal(fx->ndropped, 1);	/* the group's, not the plain filter's */
	assert_string_equal(fx->dropped[0], "a/b $share/g/a/#");
	c2 = open_topic(fx, "a/new");		/* routed by the plain filter */
	assert_non_null(attach_find(s->cl, c2));
	assert_true(TAILQ_EMPTY(&s->cl->shared));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_persistent_member_goes_offline, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_clean_member_leaves, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_filter_removed_leaves, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_offline_member_registered, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_plain_and_share_side_by_side, fx_setup,
		    fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
