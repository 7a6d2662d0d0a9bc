/* Shared subscriptions in the topicd: one cursor for the group, each
 * message to one member with room, a member's unanswered messages to the
 * others when it goes, a PUBREL kept for its own member, a group without
 * members online that keeps its messages, and the group's record. */
#include "topicd_fixture.h"
#include "kvstore.h"

#define GROUP SHARE_KEY_PREFIX "grp/t/x"

static uint64_t
kv_commits_of(struct topicd *td)
{
	struct kv_stats ks;

	kv_get_stats(td->kv, &ks);
	return ks.commits;
}

static int
attach_member_mode(struct fx *f, const char *member, uint8_t mode, uint8_t qos,
    uint16_t window, uint64_t req)
{
	struct rec_attach a = { .req = req, .subkey = GROUP, .mode = mode, .qos = qos,
				.flags = AF_NEW_ONLY, .window = window, .member = member };
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	enc_attach(&f->w, &a);
	rec(f, IPC_ATTACH, sv[0]);
	return sv[1];
}

static int
attach_member(struct fx *f, const char *member, uint8_t qos, uint16_t window, uint64_t req)
{
	return attach_member_mode(f, member, MODE_MQTT, qos, window, req);
}

static void
detach_member(struct fx *f, const char *member)
{
	struct rec_detach d = { .subkey = GROUP, .member = member };

	enc_detach(&f->w, &d);
	rec(f, IPC_DETACH, -1);
}

static void
leave(struct fx *f, const char *member, uint64_t req)
{
	struct rec_unsub u = { .req = req, .subkey = GROUP, .flags = UF_FORGET,
			       .member = member };

	enc_unsub(&f->w, &u);
	rec(f, IPC_UNSUB, -1);
}

/* The next DELIVER on fd: its sequence number; checks flags and share. */
static uint64_t
got_deliver(int fd, uint8_t flags)
{
	struct ipc_msg m;
	struct rec_deliver d;
	uint64_t seq;

	get(fd, &m, IPC_DELIVER);
	assert_int_equal(dec_deliver(m.body, m.len, &d), 0);
	assert_string_equal(d.topic, "t/x");
	assert_string_equal(d.share, "$share/grp/t/x");
	assert_int_equal(d.flags, flags);
	seq = d.seq;
	ipc_msg_clear(&m);
	return seq;
}

/* The next DELIVER on fd, whatever its flags: its sequence number. */
static uint64_t
got_deliver_any(int fd)
{
	struct ipc_msg m;
	struct rec_deliver d;

	get(fd, &m, IPC_DELIVER);
	assert_int_equal(dec_deliver(m.body, m.len, &d), 0);
	ipc_msg_clear(&m);
	return d.seq;
}

/* Two members with a window of one: the messages alternate between them,
 * each once; their acks (by their own keys) move the group's cursor. */
static void
test_each_message_to_one_member(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 1, 1, 1), b = attach_member(f, "m/b", 1, 1, 2);
	uint64_t sa, sb;

	publish_s(f, 3, 1, "1");
	publish_s(f, 4, 1, "2");
	publish_s(f, 5, 1, "3");
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	sa = got_deliver(a, 0);
	sb = got_deliver(b, 0);
	assert_true(sa != sb && sa + sb == 3);
	expect_nothing(a);
	expect_nothing(b);
	assert_int_equal(sub_find(&f->td, GROUP)->nfl, 2);
	ack(f, "m/a", sa, ACK_PUBACK);
	batch(f);
	assert_int_equal(got_deliver(a, 0), 3);	/* a has room again */
	expect_nothing(b);
	ack(f, "m/b", sb, ACK_PUBACK);
	ack(f, "m/a", 3, ACK_PUBACK);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->cursor, 4);
	assert_null(sub_find(&f->td, "m/a"));	/* members are not subscribers */
	close(a);
	close(b);
}

/* A member that goes leaves its unacknowledged message to the other,
 * which gets it as a duplicate. */
static void
test_member_gone_message_to_the_other(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 1, 1, 1), b;

	publish_s(f, 2, 1, "only");
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	assert_int_equal(got_deliver(a, 0), 1);
	b = attach_member(f, "m/b", 1, 1, 3);
	batch(f);
	expect_done(f, 3, ST_OK, 1);
	expect_nothing(b);			/* it is a's */
	detach_member(f, "m/a");
	batch(f);
	assert_int_equal(got_deliver(b, DF_DUP), 1);
	ack(f, "m/a", 1, ACK_PUBACK);		/* too late: ignored */
	ack(f, "m/b", 1, ACK_PUBACK);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->cursor, 2);
	close(a);
	close(b);
}

/* QoS 2: once a member answered PUBREC the message is its own; the
 * PUBREL waits for it, and goes when it comes back. */
static void
test_pubrel_stays_with_its_member(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 2, 1, 1), b = attach_member(f, "m/b", 2, 1, 2);
	uint64_t s1, s2;

	publish_s(f, 3, 2, "x");
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	s1 = got_deliver(a, 0);
	ack(f, "m/a", s1, ACK_PUBREC);
	batch(f);
	expect_rel(a, s1);
	detach_member(f, "m/a");
	close(a);
	publish_s(f, 4, 2, "y");
	batch(f);
	s2 = got_deliver(b, 0);
	assert_int_equal(s2, 2);
	expect_nothing(b);			/* no PUBREL of a's message */
	a = attach_member(f, "m/a", 2, 1, 5);
	batch(f);
	expect_rel(a, s1);
	ack(f, "m/a", s1, ACK_PUBCOMP);
	ack(f, "m/b", s2, ACK_PUBREC);
	batch(f);
	expect_rel(b, s2);
	ack(f, "m/b", s2, ACK_PUBCOMP);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->cursor, 3);
	close(a);
	close(b);
}

/* A message an MQTT member got at QoS 2 stays its own while it is away,
 * answered or not (MQTT-4.8.2-4): it gets it again when it comes back, and
 * the other member never does. */
static void
test_qos2_message_waits_for_its_member(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 2, 1, 1), b;

	publish_s(f, 2, 2, "q2");
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	assert_int_equal(got_deliver(a, 0), 1);
	b = attach_member(f, "m/b", 2, 1, 3);
	detach_member(f, "m/a");
	close(a);
	batch(f);
	expect_nothing(b);
	a = attach_member(f, "m/a", 2, 1, 4);
	batch(f);
	assert_int_equal(got_deliver(a, DF_DUP), 1);
	expect_nothing(b);
	close(a);
	close(b);
}

/* Whose a QoS 2 message is (for good) is on disk before it is sent: a
 * topicd killed after the send would give it to another member too. */
static void
test_qos2_owner_durable_before_send(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 2, 4, 1);
	uint64_t commits;

	batch(f);
	expect_done(f, 1, ST_OK, 1);
	commits = kv_commits_of(&f->td);
	publish_s(f, 2, 2, "q2");
	batch(f);
	assert_int_equal(got_deliver(a, 0), 1);
	/* The publish's commit, then the one for the group's entry. */
	assert_true(kv_commits_of(&f->td) >= commits + 2);
	assert_int_equal(kv_pending(f->td.kv), 0);
	assert_int_equal(sub_find(&f->td, GROUP)->fl[0].mi, 1);
	close(a);
}

/* No member online: the group keeps its messages for the next one. */
static void
test_group_keeps_messages_without_members(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 1, 10, 1);

	batch(f);
	expect_done(f, 1, ST_OK, 1);
	detach_member(f, "m/a");
	close(a);
	publish_s(f, 2, 1, "kept-1");
	publish_s(f, 3, 1, "kept-2");
	batch(f);
	expect_done(f, 2, ST_OK, 1);
	expect_done(f, 3, ST_OK, 2);
	assert_int_equal(f->td.messages, 2);	/* not trimmed */
	a = attach_member(f, "m/c", 1, 10, 4);
	batch(f);
	assert_int_equal(got_deliver(a, 0), 1);
	assert_int_equal(got_deliver(a, 0), 2);
	close(a);
}

/* A member leaving gives up its PUBREL; the last one to leave with
 * UF_FORGET takes the group (its cursor) with it. */
static void
test_last_member_leaves(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 2, 1, 1), b = attach_member(f, "m/b", 2, 1, 2);
	uint64_t s1;

	publish_s(f, 3, 2, "x");
	batch(f);
	s1 = got_deliver(a, 0);
	ack(f, "m/a", s1, ACK_PUBREC);
	batch(f);
	expect_rel(a, s1);
	leave(f, "m/a", 4);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->cursor, 2);
	expect_nothing(b);
	leave(f, "m/b", 5);
	batch(f);
	assert_null(sub_find(&f->td, GROUP));
	close(a);
	close(b);
}

/* An MQTT session subscribed by itself and in the group is a member like
 * the others (MQTT 4.8.2): it may get a message twice, and its acks say
 * which subscription they answer. */
static void
test_own_subscriber_is_a_member_too(void **state)
{
	struct fx *f = *state;
	int own = attach(f, "m/a", MODE_MQTT, 1, 10, 0, 1);
	int am = attach_member(f, "m/a", 1, 1, 2), bm = attach_member(f, "m/b", 1, 1, 3);

	publish_s(f, 4, 1, "x");
	publish_s(f, 5, 1, "y");
	batch(f);
	expect_deliver(own, 1, 1, 0, "x");
	expect_deliver(own, 2, 1, 0, "y");
	assert_int_equal(got_deliver(am, 0), 1);
	assert_int_equal(got_deliver(bm, 0), 2);
	/* Its own subscription's ack leaves the group's delivery in flight,
	 * and so does the same ack again: the member's window stays full. */
	ack(f, "m/a", 1, ACK_PUBACK);
	ack(f, "m/a", 1, ACK_PUBACK);
	ack(f, "m/b", 2, ACK_PUBACK);
	publish_s(f, 6, 1, "z");
	batch(f);
	expect_deliver(own, 3, 1, 0, "z");
	assert_int_equal(got_deliver(bm, 0), 3);
	expect_nothing(am);
	assert_int_equal(sub_find(&f->td, "m/a")->cursor, 2);
	assert_int_equal(sub_find(&f->td, GROUP)->cursor, 1);
	ack_for(f, "m/a", "$share/grp/t/x", 1, ACK_PUBACK);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->cursor, 3);
	assert_int_equal(sub_find(&f->td, "m/a")->cursor, 2);	/* its own 2 and 3 wait */
	close(own);
	close(am);
	close(bm);
}

/* A JSON-lines consumer's acks do not say which subscription they
 * answer: one subscribed by itself and in the group gets the messages by
 * its own subscription only; the group's go to the other member. */
static void
test_json_own_subscriber_not_picked(void **state)
{
	struct fx *f = *state;
	int own = attach(f, "j/a", MODE_JSON, 2, 10, 0, 1);
	int am = attach_member_mode(f, "j/a", MODE_JSON, 2, 10, 2);
	int bm = attach_member_mode(f, "j/b", MODE_JSON, 2, 10, 3);

	publish_s(f, 4, 1, "x");
	publish_s(f, 5, 1, "y");
	batch(f);
	assert_int_equal(got_deliver(bm, 0), 1);
	assert_int_equal(got_deliver(bm, 0), 2);
	expect_nothing(am);
	close(own);
	close(am);
	close(bm);
}

/* A JSON-lines member that does not answer gets the message again after
 * retry_interval (DUP), as a JSON-lines subscriber does. */
static void
test_json_member_retried(void **state)
{
	struct fx *f = *state;
	struct rec_attach a = { .req = 1, .subkey = GROUP, .mode = MODE_JSON, .qos = 2,
				.window = 1, .member = "j/slow" };
	int sv[2];

	config(f, 30, 5, 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	enc_attach(&f->w, &a);
	rec(f, IPC_ATTACH, sv[0]);
	publish_s(f, 2, 1, "m");
	batch(f);
	assert_int_equal(got_deliver(sv[1], 0), 1);
	wait_readable(f, sv[1], 5000);
	assert_int_equal(got_deliver(sv[1], DF_DUP), 1);
	ack(f, "j/slow", 1, ACK_PUBREC);
	batch(f);
	expect_rel(sv[1], 1);
	ack(f, "j/slow", 1, ACK_PUBCOMP);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->cursor, 2);
	close(sv[1]);
}

/* The topicd starts again on its store (as after a restart). */
static void
reopen(struct fx *f)
{
	struct topicd *td = &f->td;
	struct event_base *base = td->base;

	ipc_chan_free(td->chan);
	td->chan = NULL;
	topicd_close(td);
	topicd_init(td, "t/x", f->dir, false);
	td->base = base;			/* the fixture's, freed at teardown */
	assert_int_equal(topicd_open(td), 0);
	kv_set_inline(td->kv, 1);
}

/* The group's record keeps its members and whose each entry is. */
static void
test_group_record_reopens(void **state)
{
	struct fx *f = *state;
	struct topicd *td = &f->td;
	int a = attach_member(f, "m/a", 2, 4, 1), b = attach_member(f, "m/b", 2, 4, 2);
	struct sub *g;

	publish_s(f, 3, 2, "x");
	publish_s(f, 4, 2, "y");
	batch(f);
	(void)got_deliver(a, 0);
	(void)got_deliver(b, 0);
	ack(f, "m/b", 2, ACK_PUBREC);
	batch(f);
	close(a);
	close(b);
	reopen(f);
	g = sub_find(td, GROUP);
	assert_non_null(g);
	assert_true(g->is_group);
	assert_string_equal(g->share, "$share/grp/t/x");
	assert_int_equal(g->nslots, 2);
	assert_string_equal(g->members[0]->key, "m/a");
	assert_string_equal(g->members[1]->key, "m/b");
	assert_int_equal(g->nfl, 2);
	assert_int_equal(g->fl[0].state, FL_SENT);
	assert_int_equal(g->fl[0].mi, 1);
	assert_int_equal(g->fl[1].state, FL_RECEIVED);
	assert_int_equal(g->fl[1].mi, 2);
	assert_false(sub_online(g));
}

/* A message its member left unanswered while no other was online is the
 * group's: after a restart, the next member to come gets it. */
static void
test_left_message_goes_out_after_a_restart(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 1, 1, 1), b;

	publish_s(f, 2, 1, "left");
	batch(f);
	assert_int_equal(got_deliver(a, 0), 1);
	detach_member(f, "m/a");		/* nobody online takes it */
	batch(f);
	close(a);
	reopen(f);
	b = attach_member(f, "m/b", 1, 1, 3);
	batch(f);
	assert_int_equal(got_deliver(b, DF_DUP), 1);
	close(b);
}

/* A member read back from the store (never online since) leaves: what it
 * did not answer at QoS 1 goes to the others, not away. */
static void
test_member_read_back_leaves(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 1, 1, 1), b = attach_member(f, "m/b", 1, 1, 2);

	publish_s(f, 3, 1, "to a");
	batch(f);
	assert_int_equal(got_deliver(a, 0), 1);
	close(b);
	close(a);
	reopen(f);
	leave(f, "m/a", 4);
	batch(f);
	b = attach_member(f, "m/b", 1, 1, 5);
	batch(f);
	assert_int_equal(got_deliver(b, DF_DUP), 1);
	assert_int_equal(sub_find(&f->td, GROUP)->cursor, 1);
	close(b);
}

/* A QoS 2 message its member holds while away goes aside: the group's
 * cursor goes past it (its span in flight is not used up waiting), the
 * entry is stored with the group and the message kept, and its member
 * gets it when it is back, after a restart too. */
static void
test_qos2_message_of_a_member_away_goes_aside(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 2, 1, 1), b;
	struct sub *g;
	uint64_t seq;

	publish_s(f, 2, 2, "q2");
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	assert_int_equal(got_deliver(a, 0), 1);
	detach_member(f, "m/a");
	close(a);
	b = attach_member(f, "m/b", 1, 1, 3);
	for (uint64_t i = 0; i < 40; i++) {
		publish_s(f, 4 + i, 1, "n");
		batch(f);
		seq = got_deliver(b, 0);
		assert_int_equal(seq, 2 + i);
		ack(f, "m/b", seq, ACK_PUBACK);
		batch(f);
	}
	g = sub_find(&f->td, GROUP);
	assert_int_equal(g->cursor, 42);
	assert_int_equal(g->members[0]->naside, 1);
	close(b);
	reopen(f);
	g = sub_find(&f->td, GROUP);
	assert_int_equal(g->members[0]->naside, 1);
	assert_int_equal(g->members[0]->aside[0].seq, 1);
	assert_int_equal(g->members[0]->aside[0].f.state, FL_SENT);
	a = attach_member(f, "m/a", 2, 1, 50);
	batch(f);
	assert_int_equal(got_deliver(a, DF_DUP), 1);
	ack(f, "m/a", 1, ACK_PUBREC);
	batch(f);
	expect_rel(a, 1);
	ack(f, "m/a", 1, ACK_PUBCOMP);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->members[0]->naside, 0);
	close(a);
}

/* Entries given out to a member at QoS 2 that its full socket did not
 * take yet were never its own: when it goes they go to the others, and
 * the group does not wait for it past its span in flight. */
static void
test_entries_a_member_was_not_sent_go_to_the_others(void **state)
{
	struct fx *f = *state;
	int a = attach_member(f, "m/a", 2, 64, 1), b;
	static char big[20000];
	uint64_t req = 10, got = 0, seq;
	unsigned unsent = 0;
	struct sub *g;

	memset(big, 'x', sizeof(big) - 1);
	batch(f);
	for (int i = 0; i < 30; i++)
		publish_s(f, req++, 2, big);
	batch(f);
	g = sub_find(&f->td, GROUP);
	for (uint32_t i = 0; i < g->nfl; i++)
		unsent += g->fl[i].unsent;
	assert_true(unsent > 0);		/* its socket is full */
	detach_member(f, "m/a");
	close(a);
	b = attach_member(f, "m/b", 1, 1, req++);
	batch(f);
	for (int i = 0; i < 60; i++)
		publish_s(f, req++, 1, "n");
	batch(f);
	while (got < unsent + 60) {
		seq = got_deliver_any(b);
		ack_for(f, "m/b", "$share/grp/t/x", seq, ACK_PUBACK);
		batch(f);
		got++;
	}
	g = sub_find(&f->td, GROUP);
	assert_int_equal(g->cursor, 91);	/* what a was sent waits aside */
	assert_int_equal(g->members[0]->naside, 30 - unsent);
	close(b);
}

/* A JSON-lines member's PUBREL kept aside is retried once it is back,
 * as one in the group is, and its PUBCOMP ends the exchange. */
static void
test_json_pubrel_aside_retried(void **state)
{
	struct fx *f = *state;
	int a, b;

	config(f, 30, 5, 0);
	a = attach_member_mode(f, "j/a", MODE_JSON, 2, 1, 1);
	publish_s(f, 2, 1, "x");
	batch(f);
	assert_int_equal(got_deliver(a, 0), 1);
	ack(f, "j/a", 1, ACK_PUBREC);
	batch(f);
	expect_rel(a, 1);
	detach_member(f, "j/a");
	close(a);
	b = attach_member_mode(f, "j/b", MODE_JSON, 2, 1, 3);
	publish_s(f, 4, 1, "y");
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->members[0]->naside, 1);
	a = attach_member_mode(f, "j/a", MODE_JSON, 2, 1, 5);
	batch(f);
	expect_rel(a, 1);			/* back: the PUBREL again */
	wait_readable(f, a, 5000);
	expect_rel(a, 1);			/* unanswered: retried */
	ack(f, "j/a", 1, ACK_PUBCOMP);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->members[0]->naside, 0);
	close(a);
	close(b);
}

/* The next record to the master past the DONEs: false if there is none. */
static bool
master_past_dones(struct fx *f, struct ipc_msg *m)
{
	while (master_next(f, m)) {
		if (m->type != IPC_DONE)
			return true;
		ipc_msg_clear(m);
	}
	return false;
}

/* A message kept aside that its member was sent max_delivery_attempts
 * times is dead-lettered under the member's key, as a subscriber's head
 * is (a poison message must not come back at every reconnect), and is
 * no longer its member's once the master has stored it. */
static void
test_aside_entry_dead_lettered_after_its_attempts(void **state)
{
	struct fx *f = *state;
	struct rec_dlq_done dd = { .stored = 1 };
	struct rec_deadletter d;
	struct ipc_msg m;
	int a, b;

	config(f, 10000, 2, 0);
	a = attach_member(f, "m/a", 2, 1, 1);
	publish_s(f, 2, 2, "poison");
	batch(f);
	assert_int_equal(got_deliver(a, 0), 1);		/* attempt 1 */
	detach_member(f, "m/a");
	close(a);
	b = attach_member(f, "m/b", 1, 1, 3);
	publish_s(f, 4, 1, "next");
	batch(f);
	assert_int_equal(got_deliver(b, 0), 2);		/* past it */
	ack(f, "m/b", 2, ACK_PUBACK);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->members[0]->naside, 1);
	a = attach_member(f, "m/a", 2, 1, 5);
	batch(f);
	assert_int_equal(got_deliver(a, DF_DUP), 1);	/* attempt 2 */
	detach_member(f, "m/a");
	close(a);
	a = attach_member(f, "m/a", 2, 1, 6);
	batch(f);
	assert_true(master_past_dones(f, &m));
	assert_int_equal(m.type, IPC_DEADLETTER);
	assert_int_equal(dec_deadletter(m.body, m.len, &d), 0);
	assert_string_equal(d.subkey, "m/a");
	assert_string_equal(d.reason, "max_attempts");
	assert_int_equal(d.seq, 1);
	assert_memory_equal(d.payload, "poison", d.payload_len);
	dd.req = d.req;
	ipc_msg_clear(&m);
	expect_nothing(a);				/* not sent a third time */
	enc_dlq_done(&f->w, &dd);
	rec(f, IPC_DLQ_DONE, -1);
	batch(f);
	assert_int_equal(sub_find(&f->td, GROUP)->members[0]->naside, 0);
	assert_int_equal(f->td.ndlq, 0);
	expect_nothing(a);
	assert_false(master_past_dones(f, &m));		/* asked once */
	close(a);
	reopen(f);
	assert_int_equal(sub_find(&f->td, GROUP)->members[0]->naside, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_each_message_to_one_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_member_gone_message_to_the_other, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pubrel_stays_with_its_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_message_waits_for_its_member, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_qos2_owner_durable_before_send, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_group_keeps_messages_without_members, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_last_member_leaves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_subscriber_is_a_member_too, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_own_subscriber_not_picked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_member_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_pubrel_aside_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aside_entry_dead_lettered_after_its_attempts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_record_reopens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_message_of_a_member_away_goes_aside,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_entries_a_member_was_not_sent_go_to_the_others,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_left_message_goes_out_after_a_restart, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_member_read_back_leaves, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
