/* Forgetting a topic that keeps nothing (broker/core/forget.c, and what
 * registry.c and supervise.c do for it): a parked topicd whose last IDLE
 * says IDLE_EMPTY is sent FORGET once the registry has dropped the topic
 * durably, and KEEP when something waits for the topic or a subscriber
 * it lists would not be given again; the sequence floor rises past the
 * topic's numbers and goes to every new topicd; the record goes once the
 * store is deleted, and a topic forgotten comes back as a new one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_fixture.h"
#include "fake_proto.h"
#include "fake_topicd.h"
#include "kvstore.h"

/* A topic with one publish stored, its topicd sent STOP when idle;
 * nattach: the offline sessions given a cursor first (a new topic). */
static struct fake_td *
parked_topic(struct core_fx *fx, const char *topic, unsigned nattach)
{
	const char *why = NULL;
	struct client *cl = fx_client(fx);
	struct child *c = topic_open(&fx->b, topic, &why);
	struct fake_td *td;
	struct rec_attach a;
	const struct ipc_msg *m;
	uint64_t r;

	assert_non_null(c);
	r = fx_publish(cl, c, 1, "m");
	td = fx_ready(fx, topic);
	for (unsigned i = 0; i < nattach; i++) {
		m = td_expect(td, IPC_ATTACH);
		assert_int_equal(dec_attach(m->body, m->len, &a), 0);
		td_done(td, a.req, ST_OK, 0);
	}
	assert_int_equal(td_expect_publish(td, "m"), r);
	td_done(td, r, ST_OK, 1);
	td_stop_idle(td);
	return td;
}

/* The registry's record of the topic in the master's store: its kind
 * (REC_LIVE 1, REC_COLD 2, REC_GONE 3), 0 if there is none. */
static int
record_of(struct core_fx *fx, const char *topic)
{
	char key[64];
	void *val = NULL;
	size_t vlen = 0;
	int kind = 0;

	snprintf(key, sizeof(key), "t%s", topic);
	if (kv_get(fx->b.store, key, strlen(key), &val, &vlen) == 1)
		kind = vlen > 0 ? ((uint8_t *)val)[0] : -1;
	free(val);
	return kind;
}

/* FORGET once the registry knows nothing of it, durably; out of the
 * registry once the topicd says it deleted its store. */
static void
expect_forgotten(struct core_fx *fx, struct fake_td *td, unsigned topics_before)
{
	struct topic_info *ti;

	td_expect(td, IPC_FORGET);
	assert_null(topic_find(&fx->b, td->topic));
	ti = registry_info(&fx->b, td->topic);
	assert_non_null(ti);
	assert_true(ti->gone && ti->recreate && !ti->known);
	assert_int_equal(fx->b.ntopics, topics_before);
	assert_int_equal(record_of(fx, td->topic), 3);
	td_die(td, TOPICD_EXIT_DELETED);
	assert_false(registry_known(&fx->b, td->topic));
	assert_int_equal(fx->b.ntopics, topics_before - 1);
	assert_int_equal(fx->b.topics_forgotten, 1);
	assert_int_equal(record_of(fx, td->topic), 0);
	assert_true(TAILQ_EMPTY(&fx->b.forgetting));
	assert_int_equal(fx->b.nlive, 0);
}

/* Forgotten; a publish then makes it a new topic, whose topicd is told
 * to number past the old one's messages. */
static void
test_a_topic_that_keeps_nothing_is_forgotten(void **state)
{
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .next_seq = 7 };
	struct core_fx *fx = *state;
	struct fake_td *td = parked_topic(fx, "f/t", 0);
	unsigned topics = fx->b.ntopics;
	const struct ipc_msg *m;
	struct rec_config conf;
	const char *why = NULL;
	struct child *c;

	td_final(td, &empty);
	expect_forgotten(fx, td, topics);
	assert_true(fx->b.seq_floor == 7);
	c = topic_open(&fx->b, "f/t", &why);
	assert_non_null(c);
	assert_true(registry_known(&fx->b, "f/t"));
	(void)fx_publish(fx_client(fx), c, 2, "again");
	td = fx_td(fx, "f/t");
	m = td_expect(td, IPC_CONFIG);
	assert_int_equal(dec_config(m->body, m->len, &conf), 0);
	assert_true(conf.seq_floor == 7);
}

/* A subscription that matches a topic being forgotten, between FORGET
 * and the store's deletion, does not make the topic again (a visitor on
 * a wildcard would start each one it caught): the topic leaves the
 * registry, and the session gets its cursor if a publish makes it anew. */
static void
test_a_subscription_does_not_make_a_topic_being_forgotten_again(void **state)
{
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .next_seq = 2 };
	struct core_fx *fx = *state;
	struct fake_td *td = parked_topic(fx, "f/v", 0);
	unsigned topics = fx->b.ntopics;
	struct session *s = fx_session(fx, "m/visitor", true, false);
	const struct ipc_msg *m;
	const char *why = NULL;
	struct rec_attach a;
	struct child *c;

	td_final(td, &empty);
	td_expect(td, IPC_FORGET);
	assert_true(session_add_filter(s, "f/#", 1));
	session_attach_all(s, "f/#", true);
	assert_null(topic_find(&fx->b, "f/v"));
	assert_true(TAILQ_EMPTY(&s->cl->attached));
	td_die(td, TOPICD_EXIT_DELETED);
	assert_false(registry_known(&fx->b, "f/v"));
	assert_int_equal(fx->b.ntopics, topics - 1);
	assert_int_equal(fx->b.topics_forgotten, 1);
	assert_int_equal(fx->b.nlive, 0);
	c = topic_open(&fx->b, "f/v", &why);	/* a publish makes it anew */
	assert_non_null(c);
	(void)fx_publish(fx_client(fx), c, 2, "again");
	td = fx_ready(fx, "f/v");
	m = td_expect(td, IPC_ATTACH);
	assert_int_equal(dec_attach(m->body, m->len, &a), 0);
	assert_string_equal(a.subkey, "m/visitor");
}

/* Under max_topicds, a topic that waits for a place gets the one a
 * forgotten topic's topicd leaves, as soon as it exits. */
static void
test_a_waiting_topic_takes_the_place_at_once(void **state)
{
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .next_seq = 2 };
	struct core_fx *fx = *state;
	struct fake_td *td;
	const char *why = NULL;
	struct child *q;

	fx->b.set.max_topicds = 1;
	td = parked_topic(fx, "f/p", 0);
	td_final(td, &empty);
	td_expect(td, IPC_FORGET);
	q = topic_open(&fx->b, "f/q", &why);
	assert_non_null(q);
	(void)fx_publish(fx_client(fx), q, 2, "waits");
	assert_int_equal(q->state, CH_QUEUED);
	td_die(td, TOPICD_EXIT_DELETED);
	assert_int_equal(q->state, CH_STARTING);
	assert_int_equal(fx_count_tds(fx, "f/q"), 1);
}

/* Something came for the topic after STOP: the topicd is told to keep
 * its store, and the topic starts again once it exits. */
static void
test_a_topic_with_a_publish_waiting_is_kept(void **state)
{
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .next_seq = 2 };
	struct core_fx *fx = *state;
	struct fake_td *td = parked_topic(fx, "f/w", 0);
	struct child *c = td_child(td);

	(void)fx_publish(fx_client(fx), c, 2, "late");
	td_final(td, &empty);
	td_expect(td, IPC_KEEP);
	td_sync(td);
	td_die(td, 0);
	assert_true(registry_known(&fx->b, "f/w"));
	assert_ptr_equal(topic_find(&fx->b, "f/w"), c);
	assert_int_equal(fx->b.topics_forgotten, 0);
	assert_int_equal(fx_count_tds(fx, "f/w"), 2);	/* started again for the publish */
}

/* A topicd that lists these subscribers; KEEP or FORGET expected. */
static void
judged(struct core_fx *fx, const char *topic, const struct idle_sub *subs, size_t n,
    uint16_t verdict)
{
	struct idle_summary sum = { .flags = IDLE_EMPTY, .subs = subs, .nsubs = n };
	struct fake_td *td = parked_topic(fx, topic, 2);	/* alice's and carol's cursors */

	td_final(td, &sum);
	td_expect(td, verdict);
	if (verdict == IPC_KEEP)
		td_sync(td);	/* the last IDLE taken in before the exit */
	td_die(td, verdict == IPC_FORGET ? TOPICD_EXIT_DELETED : 0);
	assert_int_equal(registry_known(&fx->b, topic), verdict == IPC_KEEP);
}

/* A subscriber listed that a new store would not get again keeps the
 * topic: a JSON-lines consumer's cursor, which its UNSUB keeps (so it is
 * kept whatever its filters), an MQTT session's own cursor where it no
 * longer subscribes, a group without a member (a JSON-lines member that
 * leaves keeps the group's cursor), or with a JSON-lines member.  One
 * whose filter matches, or that is no session, or an MQTT group with its
 * members, does not. */
static void
test_a_subscriber_not_given_again_keeps_the_topic(void **state)
{
	static const struct idle_sub json[] = { { "j/alice", false } };
	static const struct idle_sub mqtt_off[] = { { "m/bob", false } };
	static const struct idle_sub mqtt_on[] = { { "m/carol", false }, { "m/gone", false } };
	static const struct idle_sub lonely[] = { { "g/G/s/#", false } };
	static const struct idle_sub with_json[] = {
		{ "g/G/s/#", false }, { "M/7/g/G/s/#j/alice", false },
	};
	static const struct idle_sub grouped[] = {
		{ "g/G/s/#", false }, { "M/7/g/G/s/#m/carol", false }, { "m/carol", false },
	};
	struct core_fx *fx = *state;
	struct session *alice = fx_session(fx, "j/alice", true, true);
	struct session *carol = fx_session(fx, "m/carol", true, true);

	(void)fx_session(fx, "m/bob", true, true);
	assert_true(session_add_filter(alice, "s/#", 2));
	assert_true(session_add_filter(carol, "s/#", 1));
	judged(fx, "s/json", json, 1, IPC_KEEP);
	judged(fx, "s/off", mqtt_off, 1, IPC_KEEP);
	judged(fx, "s/lonely", lonely, 1, IPC_KEEP);
	judged(fx, "s/jgroup", with_json, 2, IPC_KEEP);
	assert_int_equal(fx->b.topics_forgotten, 0);
	judged(fx, "s/on", mqtt_on, 2, IPC_FORGET);
	judged(fx, "s/grouped", grouped, 3, IPC_FORGET);
	assert_int_equal(fx->b.topics_forgotten, 2);
}

/* A subscriber with something to get, or a retained message, keeps it. */
static void
test_a_backlog_or_a_retained_message_keeps_the_topic(void **state)
{
	static const struct idle_sub late[] = { { "m/late", true } };
	static const struct idle_summary backlog = { .flags = IDLE_EMPTY, .subs = late,
						     .nsubs = 1 };
	static const struct idle_summary retained = { .flags = IDLE_EMPTY | IDLE_RETAINED };
	struct core_fx *fx = *state;
	struct fake_td *td = parked_topic(fx, "f/b", 0);

	td_final(td, &backlog);
	td_expect(td, IPC_KEEP);
	td_sync(td);
	td_die(td, 0);
	td = parked_topic(fx, "f/r", 0);
	td_final(td, &retained);
	td_expect(td, IPC_KEEP);
	td_sync(td);
	td_die(td, 0);
	assert_true(registry_known(&fx->b, "f/b"));
	assert_true(registry_known(&fx->b, "f/r"));
	assert_int_equal(fx->b.topics_forgotten, 0);
}

/* The topicd dies before its store is deleted, or exits without
 * deleting it (SIGTERM): the topic is opened again at once, its topicd
 * started, and the cursors and group memberships of sessions that ended
 * meanwhile dropped (UNSUB), so that the store a death kept holds none
 * that nobody reads. */
static void
test_a_store_not_deleted_is_opened_again(void **state)
{
	static const struct idle_sub subs[] = {
		{ "g/G/f/#", false }, { "M/7/g/G/f/#m/gone", false }, { "m/left", false },
	};
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .next_seq = 3,
						   .subs = subs, .nsubs = 3 };
	static const int ends[] = { -SIGKILL, 0 };
	struct core_fx *fx = *state;

	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		char topic[16];
		const struct ipc_msg *m;
		struct rec_unsub u;
		struct fake_td *td;
		unsigned topics;

		snprintf(topic, sizeof(topic), "f/d%zu", i);
		td = parked_topic(fx, topic, 0);
		topics = fx->b.ntopics;
		td_final(td, &empty);
		td_expect(td, IPC_FORGET);
		td_die(td, ends[i]);
		assert_true(registry_known(&fx->b, topic));
		assert_int_equal(fx->b.ntopics, topics);
		assert_int_equal(fx->b.topics_forgotten, 0);
		assert_true(TAILQ_EMPTY(&fx->b.forgetting));
		assert_int_equal(fx_count_tds(fx, topic), 2);
		td = fx_ready(fx, topic);
		m = td_expect(td, IPC_UNSUB);		/* a member that left the group */
		assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
		assert_string_equal(u.subkey, "g/G/f/#");
		assert_string_equal(u.member, "m/gone");
		assert_true(u.flags & UF_FORGET);
		m = td_expect(td, IPC_UNSUB);		/* a session that ended */
		assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
		assert_string_equal(u.subkey, "m/left");
		assert_true(u.flags & UF_FORGET);
		assert_int_equal(record_of(fx, topic), 1);
	}
}

/* One the master could not open again (it is shutting down) stays
 * REC_GONE with its last IDLE, nothing known of it: the next master
 * starts it once, every cursor given again and those of sessions that
 * ended dropped, and numbers past its messages. */
static void
test_a_forgetting_left_at_shutdown_is_taken_up_at_the_next_start(void **state)
{
	static const struct idle_sub subs[] = { { "m/left", false } };
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .next_seq = 3,
						   .subs = subs, .nsubs = 1 };
	struct core_fx *fx = *state;
	struct fake_td *td = parked_topic(fx, "f/s", 0);
	const struct ipc_msg *m;
	const char *why = NULL;
	struct rec_unsub u;

	td_final(td, &empty);
	td_expect(td, IPC_FORGET);
	fx->b.stopping = true;
	td_die(td, -SIGKILL);
	fx->b.stopping = false;
	assert_int_equal(record_of(fx, "f/s"), 3);
	assert_int_equal(fx_count_tds(fx, "f/s"), 1);
	fx_store_reopen(fx);
	assert_true(registry_known(&fx->b, "f/s"));
	assert_true(registry_info(&fx->b, "f/s")->gone);
	assert_true(registry_info(&fx->b, "f/s")->recreate);
	assert_true(fx->b.seq_floor == 3);
	registry_start_staged(&fx->b);
	assert_int_equal(fx_count_tds(fx, "f/s"), 2);
	/* What the store may keep for a session that ended is dropped. */
	td = fx_ready(fx, "f/s");
	m = td_expect(td, IPC_UNSUB);
	assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
	assert_string_equal(u.subkey, "m/left");
	assert_non_null(topic_open(&fx->b, "f/s", &why));
	assert_false(registry_info(&fx->b, "f/s")->recreate);	/* taken: cursors given */
	assert_false(registry_info(&fx->b, "f/s")->gone);	/* it runs */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_topic_that_keeps_nothing_is_forgotten,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_subscription_does_not_make_a_topic_being_forgotten_again, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_waiting_topic_takes_the_place_at_once,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_topic_with_a_publish_waiting_is_kept,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_subscriber_not_given_again_keeps_the_topic,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_backlog_or_a_retained_message_keeps_the_topic,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_store_not_deleted_is_opened_again,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_forgetting_left_at_shutdown_is_taken_up_at_the_next_start,
		    fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
