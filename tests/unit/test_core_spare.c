/* Spare topicds (broker/core/spare.c): a topicd stopped for room or
 * idleness that says SPARE after its last IDLE leaves its topic cold (or
 * forgotten) and waits; the next topic to start takes it (TAKE, then
 * CONFIG) instead of a new process.  Declined, or no longer wanted, its
 * channel is closed; one that dies while it waits is only forgotten. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_fixture.h"
#include "fake_proto.h"
#include "fake_topicd.h"

static const struct idle_summary kept = { .flags = IDLE_RETAINED, .bytes = 5 };

/* A topic with a publish stored, its topicd sent STOP when idle. */
static struct fake_td *
parked(struct core_fx *fx, const char *topic)
{
	const char *why = NULL;
	struct child *c = topic_open(&fx->b, topic, &why);
	struct fake_td *td;
	uint64_t r;

	assert_non_null(c);
	r = fx_publish(fx_client(fx), c, 1, "m");
	td = fx_ready(fx, topic);
	assert_int_equal(td_expect_publish(td, "m"), r);
	td_done(td, r, ST_OK, 1);
	td_stop_idle(td);
	return td;
}

static void
td_spare(struct fake_td *td, uint8_t flags)
{
	struct rec_spare r = { flags };
	struct wbuf w;

	wbuf_init(&w);
	enc_spare(&w, &r);
	td_send(td, IPC_SPARE, &w);
	wbuf_free(&w);
}

/* The stand-in as a topicd that took topic: TAKE came first, then what
 * a start gets; from now on it plays that topic's topicd. */
static void
td_takes(struct fake_td *td, const char *topic)
{
	const struct ipc_msg *m = td_expect(td, IPC_TAKE);
	struct rec_take t;

	assert_int_equal(dec_take(m->body, m->len, &t), 0);
	assert_string_equal(t.topic, topic);
	free(td->topic);
	td->topic = xstrdup(topic);
}

/* The master let it go: its channel is closed. */
static void
expect_let_go(struct fake_td *td)
{
	FX_UNTIL(td->fx, td->eof);
}

/* A spare is taken by the next start: no new process, the same pid, and
 * the topic it left is cold with what it said. */
static void
test_a_spare_takes_the_next_topic(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "s/a");
	struct child *a = td_child(td), *b;
	const char *why = NULL;
	pid_t pid = td->pid;
	uint64_t r;

	td_final(td, &kept);
	td_spare(td, 0);
	FX_UNTIL(fx, a->state == CH_COLD);
	assert_int_equal(a->pid, 0);
	assert_null(child_by_pid(&fx->b, pid));
	assert_int_equal(fx->b.nlive, 0);
	assert_int_equal(fx->b.nspares, 1);
	assert_true(registry_info(&fx->b, "s/a")->retained);
	assert_false(td->eof);

	b = topic_open(&fx->b, "s/b", &why);
	assert_non_null(b);
	r = fx_publish(fx_client(fx), b, 2, "n");
	FX_UNTIL(fx, b->state == CH_STARTING);
	assert_int_equal(b->pid, pid);
	assert_ptr_equal(child_by_pid(&fx->b, pid), b);
	assert_int_equal(fx->b.nspares, 0);
	assert_int_equal(fx_count_tds(fx, "s/b"), 0);	/* nothing spawned */
	td_takes(td, "s/b");
	td = fx_ready(fx, "s/b");
	assert_int_equal(td_expect_publish(td, "n"), r);
	td_done(td, r, ST_OK, 1);
	FX_UNTIL(fx, fx->nanswers == 2);
	fx_expect_answer(fx, 1, 2, ST_OK, "s/b");
	assert_int_equal(a->state, CH_COLD);
}

/* A topicd that was sent something after its STOP, or one past
 * topicd_spares, is declined: its channel is closed and it exits; the
 * topic goes cold at its exit, as before spares. */
static void
test_declined(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "d/late");
	struct child *c = td_child(td);

	child_chan_send(c, IPC_PING, NULL, 0, -1);	/* after the STOP */
	td_final(td, &kept);
	td_spare(td, 0);
	expect_let_go(td);
	assert_int_equal(fx->b.nspares, 0);
	assert_int_equal(c->state, CH_PARKING);

	td = parked(fx, "d/later");
	c = td_child(td);
	td_final(td, &kept);
	td_sync(td);
	assert_non_null(c->final_idle);
	child_chan_send(c, IPC_PING, NULL, 0, -1);	/* after the last IDLE */
	td_spare(td, 0);
	expect_let_go(td);
	assert_int_equal(fx->b.nspares, 0);

	fx->b.set.topicd_spares = 0;
	td = parked(fx, "d/none");
	c = td_child(td);
	td_final(td, &kept);
	td_spare(td, 0);
	expect_let_go(td);
	assert_int_equal(fx->b.nspares, 0);
	td_die(td, 0);
	assert_int_equal(c->state, CH_COLD);
}

/* FORGET: the topicd deleted the store, and says so with its SPARE; the
 * topic is forgotten as at an exit with TOPICD_EXIT_DELETED. */
static void
test_a_spare_after_forget(void **state)
{
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .next_seq = 2 };
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "f/t");
	unsigned topics = fx->b.ntopics;

	td_final(td, &empty);
	td_expect(td, IPC_FORGET);
	td_spare(td, SPARE_DELETED);
	FX_UNTIL(fx, fx->b.nspares == 1);
	assert_false(registry_known(&fx->b, "f/t"));
	assert_int_equal(fx->b.ntopics, topics - 1);
	assert_int_equal(fx->b.topics_forgotten, 1);
	assert_true(TAILQ_EMPTY(&fx->b.forgetting));
	assert_int_equal(fx->b.nlive, 0);
	assert_false(td->eof);
}

/* A SPARE that says the store was deleted where no FORGET went is
 * declined; one that does not decode is the topicd's bug: it is
 * killed. */
static void
test_a_wrong_spare_kills(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "w/t");

	td_final(td, &kept);
	td_spare(td, SPARE_DELETED);
	expect_let_go(td);
	assert_int_equal(fx->b.nspares, 0);

	td = parked(fx, "w/u");
	td_final(td, &kept);
	td_spare(td, 0x80);
	td_killed(td);
	assert_int_equal(fx->b.nspares, 0);
}

/* A spare not needed within topicd_idle_timeout is let go; when it is
 * reaped it is forgotten, and the next start is a new process. */
static void
test_a_spare_not_needed_goes(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "e/a");
	struct event *tick;
	struct child *c;
	const char *why = NULL;

	td_final(td, &kept);
	td_spare(td, 0);
	FX_UNTIL(fx, fx->b.nspares == 1);
	fx->b.set.topicd_idle_timeout = 1;
	tick = fx_every(fx, 5, fx_on_expire_tick);
	expect_let_go(td);
	event_free(tick);
	assert_int_equal(fx->b.nspares, 0);
	assert_false(children_all_gone(&fx->b));	/* listed until reaped */
	td_die(td, 0);
	assert_true(children_all_gone(&fx->b));
	c = topic_open(&fx->b, "e/b", &why);
	(void)fx_publish(fx_client(fx), c, 2, "n");
	(void)fx_ready(fx, "e/b");
	assert_int_equal(fx_count_tds(fx, "e/b"), 1);
}

/* A spare killed while it waits is only forgotten: nothing restarts,
 * and the next start is a new process. */
static void
test_a_spare_killed(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "k/a");
	struct child *a = td_child(td), *c;
	const char *why = NULL;

	td_final(td, &kept);
	td_spare(td, 0);
	FX_UNTIL(fx, fx->b.nspares == 1);
	td_die(td, -SIGKILL);
	assert_int_equal(fx->b.nspares, 0);
	assert_true(children_all_gone(&fx->b));
	assert_int_equal(a->state, CH_COLD);
	assert_false(evtimer_pending(a->timer, NULL));
	c = topic_open(&fx->b, "k/b", &why);
	(void)fx_publish(fx_client(fx), c, 2, "n");
	(void)fx_ready(fx, "k/b");
	assert_int_equal(fx_count_tds(fx, "k/b"), 1);
}

/* A spare that died while it waited, its SIGCHLD not handled yet, is
 * not given the next topic: it is reaped then, and a new process starts
 * the topic, which sees no crash. */
static void
test_a_dead_spare_is_not_taken(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "z/a");
	struct child *c;
	const char *why = NULL;

	td_final(td, &kept);
	td_spare(td, 0);
	FX_UNTIL(fx, fx->b.nspares == 1);
	event_del(td->ev);
	assert_int_equal(kill(td->pid, SIGKILL), 0);
	(void)standin_wait(td);			/* a zombie, not reaped */
	c = topic_open(&fx->b, "z/b", &why);
	(void)fx_publish(fx_client(fx), c, 2, "n");
	assert_int_equal(fx->b.nspares, 0);
	assert_true(spares_all_gone(&fx->b));
	(void)fx_ready(fx, "z/b");
	assert_int_equal(fx_count_tds(fx, "z/b"), 1);
	assert_int_equal(c->restarts, 0);
}

/* A last IDLE that said the topic keeps nothing, answered with KEEP (a
 * JSON-lines consumer's place keeps it): the KEEP is part of the end,
 * and the spare is taken. */
static void
test_a_spare_after_keep(void **state)
{
	static const struct idle_sub json[] = { { "j/alice", false } };
	static const struct idle_summary empty = { .flags = IDLE_EMPTY, .subs = json,
						   .nsubs = 1, .next_seq = 2 };
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "j/t");
	struct child *c = td_child(td);

	td_final(td, &empty);
	td_expect(td, IPC_KEEP);
	td_spare(td, 0);
	FX_UNTIL(fx, fx->b.nspares == 1);
	assert_int_equal(c->state, CH_COLD);
	assert_true(registry_known(&fx->b, "j/t"));
	assert_false(td->eof);
}

/* A topicd killed after its SPARE, before the master read it (SIGCHLD
 * handled first): its topic was done with, so the topic is cold, not
 * crashed. */
static void
test_killed_after_its_spare(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "t/k");
	struct child *c = td_child(td);

	td_final(td, &kept);
	td_spare(td, 0);
	td_exit_unread(td, -SIGTERM);
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(c->restarts, 0);
	assert_false(evtimer_pending(c->timer, NULL));
	assert_int_equal(fx->b.nspares, 0);
	assert_true(registry_info(&fx->b, "t/k")->retained);
}

/* A reload keeps the spares (they get the settings with their next
 * topic) unless it lowers topicd_spares below them: then the extra ones
 * go at the next tick. */
static void
test_a_lower_topicd_spares_lets_spares_go(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "r/a");
	struct event *tick;

	td_final(td, &kept);
	td_spare(td, 0);
	FX_UNTIL(fx, fx->b.nspares == 1);
	fx->b.set.topicd_idle_timeout = 60000;	/* parked() made it 1 ms */
	children_config(&fx->b);
	live_expire(&fx->b);
	assert_int_equal(fx->b.nspares, 1);
	fx->b.set.topicd_spares = 0;
	tick = fx_every(fx, 5, fx_on_expire_tick);
	expect_let_go(td);
	event_free(tick);
	assert_int_equal(fx->b.nspares, 0);
	td_die(td, 0);
	assert_true(children_all_gone(&fx->b));
}

/* The broker stops: its spares are let go, and it waits for them. */
static void
test_spares_go_when_the_broker_stops(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "b/a");

	td_final(td, &kept);
	td_spare(td, 0);
	FX_UNTIL(fx, fx->b.nspares == 1);
	fx->b.stopping = true;
	children_stop_all(&fx->b);
	expect_let_go(td);
	assert_false(children_all_gone(&fx->b));
	td_die(td, 0);
	assert_true(children_all_gone(&fx->b));
}

/* A spare that dies after its TAKE is the new topic's crash: restarted
 * with a new process, what it was sent sent again. */
static void
test_a_spare_that_dies_taking(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td = parked(fx, "x/a");
	struct child *c;
	const char *why = NULL;
	uint64_t r;

	td_final(td, &kept);
	td_spare(td, 0);
	FX_UNTIL(fx, fx->b.nspares == 1);
	c = topic_open(&fx->b, "x/b", &why);
	r = fx_publish(fx_client(fx), c, 2, "n");
	td_takes(td, "x/b");
	td_die(td, -SIGKILL);
	assert_int_equal(c->state, CH_BACKOFF);
	td = fx_restarted(fx, td);
	td = fx_ready(fx, "x/b");
	assert_int_equal(td_expect_publish(td, "n"), r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_spare_takes_the_next_topic, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_declined, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_spare_after_forget, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_wrong_spare_kills, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_spare_not_needed_goes, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_spare_killed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_spare_after_keep, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_killed_after_its_spare, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_lower_topicd_spares_lets_spares_go, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_dead_spare_is_not_taken, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_spares_go_when_the_broker_stops, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_a_spare_that_dies_taking, fx_setup,
		    fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
