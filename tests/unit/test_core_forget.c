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

static void
expect_forgotten(struct core_fx *fx, struct fake_td *td, unsigned topics_before)
{
	td_expect(td, IPC_FORGET);
	assert_false(registry_known(&fx->b, td->topic));
	assert_null(topic_find(&fx->b, td->topic));
	assert_int_equal(fx->b.ntopics, topics_before - 1);
	assert_int_equal(fx->b.topics_forgotten, 1);
	assert_int_equal(record_of(fx, td->topic), 3);
	td_die(td, 0);
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
	td_die(td, 0);
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

/* A subscriber listed that a new store would not get again keeps the
 * topic: a JSON-lines consumer that sent UNSUB resumes where it was.
 * One whose filter matches, or that is no session, does not. */
static void
test_a_cursor_without_its_subscription_keeps_the_topic(void **state)
{
	static const struct idle_sub subs[] = {
		{ "j/alice", false }, { "j/bob", false }, { "m/gone", false },
	};
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .subs = subs,
						   .nsubs = 3, .next_seq = 4 };
	struct core_fx *fx = *state;
	struct session *alice = fx_session(fx, "j/alice", true, true);
	struct session *bob = fx_session(fx, "j/bob", true, true);
	struct fake_td *td;
	unsigned topics;

	assert_true(session_add_filter(bob, "f/j", 2));
	td = parked_topic(fx, "f/j", 1);		/* bob's cursor first */
	td_final(td, &empty);
	td_expect(td, IPC_KEEP);
	td_sync(td);
	td_die(td, 0);
	assert_true(registry_known(&fx->b, "f/j"));
	assert_int_equal(record_of(fx, "f/j"), 2);

	/* alice subscribes again (and reads what was there): forgotten at
	 * the next stop. */
	assert_true(session_add_filter(alice, "f/#", 2));
	topics = fx->b.ntopics;
	td = parked_topic(fx, "f/j", 0);
	td_final(td, &empty);
	expect_forgotten(fx, td, topics);
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

/* The topicd dies before its store is deleted: the record stays
 * REC_GONE, so that the next master starts the topic once to forget it
 * again; a publish meanwhile makes it known again. */
static void
test_a_death_while_forgetting_leaves_it_gone(void **state)
{
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .next_seq = 3 };
	struct core_fx *fx = *state;
	struct fake_td *td = parked_topic(fx, "f/d", 0);
	const char *why = NULL;

	td_final(td, &empty);
	td_expect(td, IPC_FORGET);
	td_die(td, -SIGKILL);
	assert_int_equal(record_of(fx, "f/d"), 3);
	assert_false(registry_known(&fx->b, "f/d"));
	assert_true(TAILQ_EMPTY(&fx->b.forgetting));
	fx_store_reopen(fx);
	assert_true(registry_known(&fx->b, "f/d"));
	assert_true(registry_info(&fx->b, "f/d")->gone);
	assert_true(fx->b.seq_floor == 3);
	assert_non_null(topic_open(&fx->b, "f/d", &why));
	assert_int_equal(record_of(fx, "f/d"), 3);	/* REC_LIVE once it starts */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_topic_that_keeps_nothing_is_forgotten,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_waiting_topic_takes_the_place_at_once,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_topic_with_a_publish_waiting_is_kept,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_cursor_without_its_subscription_keeps_the_topic,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_backlog_or_a_retained_message_keeps_the_topic,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_death_while_forgetting_leaves_it_gone,
		    fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
