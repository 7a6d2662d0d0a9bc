/* Requests held for a topicd (broker/core/held.c) and the supervision of
 * topicds (supervise.c, topicd_ipc.c): what goes to a topicd and when,
 * what its answers complete, and what a crash or a bad topicd does to
 * the requests that wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core_fixture.h"
#include "fake_proto.h"
#include "fake_topicd.h"

static const char *const payload[] = { "a", "b", "c", "d", "e" };

/* A new topic: cold, no topicd until a request needs one. */
static struct child *
open_topic(struct core_fx *fx, const char *topic)
{
	const char *why = NULL;
	struct child *c = topic_open(&fx->b, topic, &why);

	assert_non_null(c);
	assert_int_equal(c->state, CH_COLD);
	assert_int_equal(fx_count_tds(fx, topic), 0);
	return c;
}

/* The first request starts the topicd; requests are held while it
 * starts, sent on READY in the order submitted; each DONE completes its
 * own request, once. */
static void
test_held_until_ready(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	uint64_t r[3];

	for (int i = 0; i < 3; i++)
		r[i] = fx_publish(cl, c, (uint64_t)i + 1, payload[i]);
	assert_int_equal(fx_count_tds(fx, "t"), 1);
	assert_int_equal(c->state, CH_STARTING);
	td = fx_td(fx, "t");
	td_config(td);
	td_quiet(td);
	assert_int_equal(c->nunsent, 3);
	assert_int_equal(cl->pending, 3);

	td_ready_as(td, IPC_PROTO_VERSION, "t");
	for (int i = 0; i < 3; i++)
		assert_int_equal(td_expect_publish(td, payload[i]), r[i]);
	td_quiet(td);
	assert_int_equal(c->noutstanding, 3);

	td_done(td, r[1], ST_OK, 7);
	FX_UNTIL(fx, fx->nanswers == 1);
	fx_expect_answer(fx, 0, 2, ST_OK, "t");
	assert_int_equal(fx->answers[0].seq, 7);
	td_done(td, r[1], ST_OK, 7);		/* again: nothing waits for it */
	td_done(td, r[0], ST_STORE, 0);
	td_done(td, r[2], ST_OK, 8);
	td_sync(td);
	assert_int_equal(fx->nanswers, 3);
	fx_expect_answer(fx, 1, 1, ST_STORE, "t");
	fx_expect_answer(fx, 2, 3, ST_OK, "t");
	assert_true(TAILQ_EMPTY(&c->held));
	assert_int_equal(c->noutstanding, 0);
	assert_int_equal(cl->pending, 0);
	td_quiet(td);
}

/* Killed from outside (SIGKILL): what it answered, also just before it
 * died, is not sent again; the rest goes to the next topicd, in order,
 * with what was submitted meanwhile, all at once. */
static void
test_crash_replays_unanswered(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	uint64_t r[5];

	for (int i = 0; i < 4; i++)
		r[i] = fx_publish(cl, c, (uint64_t)i + 1, payload[i]);
	td = fx_ready(fx, "t");
	for (int i = 0; i < 4; i++)
		td_expect_publish(td, payload[i]);
	td_done(td, r[0], ST_OK, 1);
	td_sync(td);
	td_done(td, r[1], ST_OK, 2);		/* still in the channel at SIGCHLD */
	td_exit_unread(td, -SIGKILL);
	assert_int_equal(fx->nanswers, 2);
	fx_expect_answer(fx, 1, 2, ST_OK, "t");
	assert_int_equal(c->state, CH_BACKOFF);
	assert_false(c->probing);		/* a kill from outside is no crash of a record */

	r[4] = fx_publish(cl, c, 5, "e");
	td = fx_restarted(fx, td);
	td_config(td);
	td_quiet(td);				/* nothing before READY */
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	assert_int_equal(td_expect_publish(td, "c"), r[2]);
	assert_int_equal(td_expect_publish(td, "d"), r[3]);
	assert_int_equal(td_expect_publish(td, "e"), r[4]);
	td_quiet(td);
	td_done(td, r[2], ST_OK, 3);
	td_done(td, r[3], ST_OK, 4);
	td_done(td, r[4], ST_OK, 5);
	td_sync(td);
	assert_int_equal(fx->nanswers, 5);
	for (size_t i = 2; i < 5; i++)
		fx_expect_answer(fx, i, i + 1, ST_OK, "t");
	assert_int_equal(cl->pending, 0);
}

/* A topicd that dies before it is ready doubles the back-off, however
 * long the one before it ran: a store that cannot be opened is not tried
 * again at restart_backoff_min for ever. */
static void
test_crash_before_ready_backs_off(void **state)
{
	struct core_fx *fx = *state;
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;

	fx->b.set.crash_window = 0;	/* a topicd that was ready ran long enough */
	fx->b.set.restart_backoff_max = 1000;
	child_wake(c);
	td = fx_ready(fx, "t");
	td_die(td, 1);
	assert_int_equal(c->state, CH_BACKOFF);
	assert_int_equal(c->backoff_ms, 2);	/* the minimum, doubled */
	td = fx_restarted(fx, td);
	td_die(td, 1);				/* before READY */
	assert_int_equal(c->backoff_ms, 4);
	td = fx_restarted(fx, td);
	td_die(td, 1);
	assert_int_equal(c->backoff_ms, 8);
}

/* The topicd answered and died; a record sent to it before the master
 * reaped it fails to write.  Its answer, still unread then, counts: the
 * publish it answered is not replayed (and stored twice). */
static void
test_answers_count_after_a_failed_write(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	uint64_t r1, r2;

	r1 = fx_publish(cl, c, 1, "one");
	td = fx_ready(fx, "t");
	td_expect_publish(td, "one");
	td_done(td, r1, ST_OK, 1);		/* not read by the master yet */
	event_del(td->ev);
	close(td->fd);
	td->fd = -1;
	assert_int_equal(kill(td->pid, SIGKILL), 0);
	r2 = fx_publish(cl, c, 2, "two");	/* its write fails */
	FX_UNTIL(fx, c->chan == NULL);		/* the failure is handled first */
	(void)standin_wait(td);
	children_reap(&fx->b);
	assert_int_equal(c->pid, 0);
	assert_int_equal(fx->nanswers, 1);
	fx_expect_answer(fx, 0, 1, ST_OK, "t");
	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	assert_int_equal(td_expect_publish(td, "two"), r2);
	td_quiet(td);
}

/* A topicd that fails by itself with requests outstanding may have died
 * of one of them: the next one gets them one at a time, and what came
 * after them waits until they are answered. */
static void
test_crash_probes_one_at_a_time(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	uint64_t r[4];

	for (int i = 0; i < 3; i++)
		r[i] = fx_publish(cl, c, (uint64_t)i + 1, payload[i]);
	td = fx_ready(fx, "t");
	for (int i = 0; i < 3; i++)
		td_expect_publish(td, payload[i]);
	td_die(td, 1);
	assert_true(c->probing);
	r[3] = fx_publish(cl, c, 4, "d");
	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(td_expect_publish(td, payload[i]), r[i]);
		td_quiet(td);
		td_done(td, r[i], ST_OK, (uint64_t)i + 1);
	}
	assert_int_equal(td_expect_publish(td, "d"), r[3]);
	assert_false(c->probing);
	td_done(td, r[3], ST_OK, 4);
	FX_UNTIL(fx, fx->nanswers == 4);
	for (size_t i = 0; i < 4; i++)
		fx_expect_answer(fx, i, i + 1, ST_OK, "t");
}

/* While probing, a topicd that answers the one request it was sent and
 * then dies by itself, its DONE still in the channel when SIGCHLD is
 * handled, died on none: the next request, which it never got, takes no
 * strike, and goes to the dead-letter topic only if poison_limit topicds
 * die on it. */
static void
test_probe_answer_in_channel(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	uint64_t r[2];

	fx->b.set.poison_limit = 2;
	for (int i = 0; i < 2; i++)
		r[i] = fx_publish(cl, c, (uint64_t)i + 1, payload[i]);
	td = fx_ready(fx, "t");
	td_expect_publish(td, "a");
	td_expect_publish(td, "b");
	td = td_crash_to_probing(td, c);	/* with both outstanding */
	assert_int_equal(td_expect_publish(td, "a"), r[0]);
	td_quiet(td);
	td_done(td, r[0], ST_OK, 1);
	td_exit_unread(td, 1);
	assert_int_equal(fx->nanswers, 1);
	fx_expect_answer(fx, 0, 1, ST_OK, "t");

	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	assert_int_equal(td_expect_publish(td, "b"), r[1]);
	td_die(td, 1);				/* it died on b: the first strike */
	assert_int_equal(c->poisoned, 0);
	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	assert_int_equal(td_expect_publish(td, "b"), r[1]);
	td_done(td, r[1], ST_OK, 2);
	FX_UNTIL(fx, fx->nanswers == 2);
	fx_expect_answer(fx, 1, 2, ST_OK, "t");
	assert_false(c->probing);
	assert_null(topic_find(&fx->b, "$DLQ"));
}

/* A publish that comes while the topicd stops waits; once it has exited,
 * the topic starts again at once (there is room), and that topicd is
 * supervised as any other: its pid is the child's, its crash is seen and
 * it is restarted, and nothing is lost. */
static void
test_submitted_while_stopping(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	uint64_t r;

	child_wake(c);
	td = fx_ready(fx, "t");
	td_stop_idle(td);
	r = fx_publish(cl, c, 1, "m");
	td_quiet(td);
	td_goes_cold(td, NULL);
	assert_int_equal(fx_count_tds(fx, "t"), 2);
	td = fx_td(fx, "t");
	assert_int_equal(c->state, CH_STARTING);
	assert_int_equal(c->pid, td->pid);
	assert_ptr_equal(child_by_pid(&fx->b, td->pid), c);
	assert_int_equal(fx->b.nlive, 1);
	td = fx_ready(fx, "t");
	assert_int_equal(td_expect_publish(td, "m"), r);

	td_die(td, -SIGKILL);
	assert_int_equal(c->state, CH_BACKOFF);
	assert_int_equal(fx->b.nlive, 0);
	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	assert_int_equal(td_expect_publish(td, "m"), r);
	td_done(td, r, ST_OK, 1);
	FX_UNTIL(fx, fx->nanswers == 1);
	fx_expect_answer(fx, 0, 1, ST_OK, "t");
}

/* The topicd says it has no room, and refuses publish req for it; w
 * holds the FULL record, and serves for the ROOM after. */
static void
refuse_for_room(struct fake_td *td, struct child *c, uint64_t req, struct wbuf *w)
{
	struct rec_full full = { .reason = "max_topic_size" };

	wbuf_init(w);
	enc_full(w, &full);
	td_send(td, IPC_FULL, w);
	td_done(td, req, ST_FULL, 0);
	td_sync(td);
	assert_true(c->full);
}

/* FULL, and a publish refused with ST_FULL: it is not answered, it waits
 * with every later publish, its client is not read; ROOM: RESUME first,
 * then the publishes in order.  Requests other than publishes go on. */
static void
test_full_room_resume(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	struct rec_release rel = { .owner = "o", .pubid = 9 };
	const char *why;
	uint64_t r1, r2;
	struct wbuf w;

	r1 = fx_publish(cl, c, 1, "one");
	td = fx_ready(fx, "t");
	td_expect_publish(td, "one");
	refuse_for_room(td, c, r1, &w);
	assert_int_equal(fx->nanswers, 0);
	assert_true(client_throttled(cl));	/* its publisher is not read */
	r2 = fx_publish(cl, c, 2, "two");
	rel.req = broker_req(&fx->b);
	assert_int_equal(release_submit(cl, c, &rel, fx_answered, 3, &why), 0);
	td_expect(td, IPC_RELEASE);
	td_quiet(td);

	td_send(td, IPC_ROOM, &w);
	td_expect(td, IPC_RESUME);
	assert_int_equal(td_expect_publish(td, "one"), r1);
	assert_int_equal(td_expect_publish(td, "two"), r2);
	td_quiet(td);
	assert_false(c->full);
	td_done(td, r1, ST_OK, 1);
	td_done(td, r2, ST_OK, 2);
	td_done(td, rel.req, ST_OK, 1);
	FX_UNTIL(fx, fx->nanswers == 3);
	fx_expect_answer(fx, 0, 1, ST_OK, "t");
	fx_expect_answer(fx, 1, 2, ST_OK, "t");
	fx_expect_answer(fx, 2, 3, ST_OK, "t");
	assert_false(client_throttled(cl));
	wbuf_free(&w);
}

static void
publish_qos0(struct client *cl, struct child *c, const char *text)
{
	struct rec_publish p = { .req = 0, .owner = "", .qos = 0, .time_ms = 1,
				 .payload = (const uint8_t *)text,
				 .payload_len = strlen(text) };
	const char *why = NULL;

	assert_int_equal(publish_submit(cl, c, &p, fx_answered, 0, &why), 0);
}

/* A QoS 0 publish has no answer: to a ready topicd with nothing waiting
 * it goes at once and nothing of it is held.  Behind a request that
 * waits (here, for room) it waits too, held, and goes in its turn. */
static void
test_qos0_sent_at_once_or_in_turn(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	struct wbuf w;
	uint64_t r1;

	publish_qos0(cl, c, "cold");		/* held until the topicd is ready */
	assert_int_equal(c->nunsent, 1);
	td = fx_ready(fx, "t");
	td_expect_publish(td, "cold");
	td_quiet(td);
	assert_true(TAILQ_EMPTY(&c->held));

	publish_qos0(cl, c, "a");
	assert_true(TAILQ_EMPTY(&c->held));
	assert_int_equal(c->nunsent, 0);
	assert_int_equal(c->nheld_pub, 0);
	assert_int_equal(cl->pending, 0);
	td_expect_publish(td, "a");
	td_quiet(td);

	r1 = fx_publish(cl, c, 1, "one");
	td_expect_publish(td, "one");
	refuse_for_room(td, c, r1, &w);
	publish_qos0(cl, c, "b");		/* no room: held behind "one" */
	assert_int_equal(c->nunsent, 2);
	td_quiet(td);

	td_send(td, IPC_ROOM, &w);
	td_expect(td, IPC_RESUME);
	assert_int_equal(td_expect_publish(td, "one"), r1);
	td_expect_publish(td, "b");
	td_quiet(td);
	td_done(td, r1, ST_OK, 2);
	FX_UNTIL(fx, fx->nanswers == 1);
	assert_true(TAILQ_EMPTY(&c->held));
	assert_int_equal(fx->b.msgs_in, 4);
	wbuf_free(&w);
}

/* A QoS 0 publish that cannot go at once (the topicd is probed after a
 * crash, one request at a time) but goes in the pump its submission
 * runs: it is sent and freed there, and nothing of it is read after. */
static void
test_qos0_sent_by_the_pump_of_its_submission(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	uint64_t r1 = fx_publish(cl, c, 1, "one");

	td = fx_ready(fx, "t");
	assert_int_equal(td_expect_publish(td, "one"), r1);
	td = td_crash_to_probing(td, c);
	assert_int_equal(td_expect_publish(td, "one"), r1);
	assert_true(c->probing);
	publish_qos0(cl, c, "zero");		/* not at once: probing */
	assert_int_equal(c->nunsent, 0);
	td_expect_publish(td, "zero");
	td_done(td, r1, ST_OK, 1);
	FX_UNTIL(fx, fx->nanswers == 1);
	td_quiet(td);
	assert_true(TAILQ_EMPTY(&c->held));
}

static struct client *hook_client;
static struct child *hook_child;

/* The hooked client publishes "a3" the next time it is read. */
static void
publish_a3(struct client *cl)
{
	if (cl != hook_client)
		return;
	hook_client = NULL;
	publish_qos0(cl, hook_child, "a3");
}

/* A client whose last stalled publish goes out is read again later in
 * the loop, not from inside the pump that sent it: what it publishes then
 * would pump the same list again, and free entries the outer pump holds
 * (here b1, the one after a2). */
static void
test_unstalled_client_read_after_the_pump(void **state)
{
	struct core_fx *fx = *state;
	struct client *a = fx_client(fx), *b = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	struct wbuf w;
	uint64_t r1;

	r1 = fx_publish(a, c, 1, "one");
	td = fx_ready(fx, "t");
	td_expect_publish(td, "one");
	refuse_for_room(td, c, r1, &w);
	publish_qos0(a, c, "a2");
	publish_qos0(b, c, "b1");
	assert_true(client_throttled(a));
	hook_client = a;
	hook_child = c;
	fx->read_hook = publish_a3;
	td_send(td, IPC_ROOM, &w);
	td_expect(td, IPC_RESUME);
	assert_int_equal(td_expect_publish(td, "one"), r1);
	td_expect_publish(td, "a2");
	td_expect_publish(td, "b1");
	td_expect_publish(td, "a3");
	td_quiet(td);
	assert_null(hook_client);
	td_done(td, r1, ST_OK, 1);
	FX_UNTIL(fx, fx->nanswers == 1);
	assert_true(TAILQ_EMPTY(&c->held));
	assert_false(client_throttled(a));
	fx->read_hook = NULL;
	wbuf_free(&w);
}

/* A READY for another topic: the topicd is killed, what it sends then is
 * ignored, and it is restarted like after any kill; nothing is lost. */
static void
test_ready_wrong_topic(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	uint64_t r = fx_publish(cl, c, 1, "m");
	struct fake_td *td = fx_td(fx, "t");

	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "u");
	FX_UNTIL(fx, c->killed);
	td_done(td, r, ST_OK, 1);		/* from a topicd being killed: ignored */
	td_killed(td);
	assert_int_equal(fx->nanswers, 0);
	assert_int_equal(c->state, CH_BACKOFF);

	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	assert_int_equal(td_expect_publish(td, "m"), r);
	td_done(td, r, ST_OK, 1);
	FX_UNTIL(fx, fx->nanswers == 1);
	fx_expect_answer(fx, 0, 1, ST_OK, "t");
}

/* A topicd that was starting when the broker began to stop says READY
 * after its SIGTERM was sent: that is no fault (it was killed, and
 * logged as one, for each topic starting at a shutdown).  Its SIGTERM is
 * held back here, so that the READY is read while it still runs. */
static void
test_ready_while_stopping(void **state)
{
	struct core_fx *fx = *state;
	struct child *c = open_topic(fx, "t");
	sigset_t term, old;
	struct fake_td *td;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	assert_int_equal(sigprocmask(SIG_BLOCK, &term, &old), 0);
	child_wake(c);				/* the stand-in inherits the mask */
	assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
	td = fx_td(fx, "t");
	td_config(td);
	assert_int_equal(c->state, CH_STARTING);
	children_stop_all(&fx->b);
	assert_int_equal(c->state, CH_STOPPING);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	td_sync(td);				/* read after the READY */
	assert_false(c->killed);
	assert_int_equal(c->state, CH_STOPPING);
	td_die(td, 0);
	assert_int_equal(fx->b.nlive, 0);
	assert_false(evtimer_pending(c->timer, NULL));	/* not restarted */
}

/* A topicd of another release: killed, and the topic fails for good
 * (restarting the same binary cannot help): what waited is refused to
 * its clients, new publishes are refused, nothing is restarted. */
static void
test_ready_other_version(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct rec_publish p = { .req = 99, .owner = "", .qos = 1, .payload_len = 0 };
	const char *why = NULL;
	struct fake_td *td;

	(void)fx_publish(cl, c, 1, "m");
	td = fx_td(fx, "t");
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION + 1, "t");
	FX_UNTIL(fx, c->killed);
	assert_true(c->version_mismatch);
	td_killed(td);
	assert_int_equal(c->state, CH_FAILED);
	assert_int_equal(fx->nanswers, 1);
	fx_expect_answer(fx, 0, 1, ST_STORE, "t");
	assert_int_equal(cl->pending, 0);
	assert_int_equal(publish_submit(cl, c, &p, fx_answered, 2, &why), -1);
	assert_non_null(why);
	assert_false(evtimer_pending(c->timer, NULL));
	assert_int_equal(fx_count_tds(fx, "t"), 1);
}

/* A damaged store fails the topic until the operator's SIGHUP retries it. */
static void
test_damaged_store_retried(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;

	(void)fx_publish(cl, c, 1, "m");
	td = fx_ready(fx, "t");
	td_expect_publish(td, "m");
	td_die(td, TOPICD_EXIT_DAMAGED);
	assert_int_equal(c->state, CH_FAILED);
	fx_expect_answer(fx, 0, 1, ST_STORE, "t");
	assert_false(evtimer_pending(c->timer, NULL));

	children_retry_failed(&fx->b);
	td = fx_ready(fx, "t");
	assert_int_equal(fx_count_tds(fx, "t"), 2);
	(void)fx_publish(cl, c, 2, "again");
	td_expect_publish(td, "again");
	td_quiet(td);
}

/* A publish its topicd dies on again, alone, is a poison record: after
 * poison_limit strikes it goes to the dead-letter topic instead, its
 * client hears it is stored once it is durable there, and its client is
 * read again (max_client_pending counts it once). */
static void
test_poison_dead_lettered(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td, *dlq;
	struct rec_publish p;
	const struct ipc_msg *m;
	uint64_t r;

	fx->b.set.poison_limit = 1;
	fx->b.set.max_client_pending = 1;
	r = fx_publish(cl, c, 1, "bad");
	assert_true(client_throttled(cl));
	td = fx_ready(fx, "t");
	td_expect_publish(td, "bad");
	td_die(td, 1);				/* first crash: it may have been any */
	td = fx_restarted(fx, td);
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	assert_int_equal(td_expect_publish(td, "bad"), r);
	td_die(td, 1);				/* again, with it alone: poison */
	assert_int_equal(c->poisoned, 1);
	assert_true(TAILQ_EMPTY(&c->held));

	dlq = fx_ready(fx, "$DLQ");
	m = td_expect(dlq, IPC_PUBLISH);
	assert_int_equal(dec_publish(m->body, m->len, &p), 0);
	assert_non_null(memmem(p.payload, p.payload_len, "\"reason\":\"poison\"", 17));
	assert_non_null(memmem(p.payload, p.payload_len, "\"msg\":\"bad\"", 11));
	assert_int_equal(fx->nanswers, 0);
	td_done(dlq, p.req, ST_OK, 1);
	FX_UNTIL(fx, fx->nanswers == 1);
	fx_expect_answer(fx, 0, 1, ST_OK, "$DLQ");
	assert_int_equal(cl->pending, 0);
	assert_false(client_throttled(cl));

	td = fx_restarted(fx, td);		/* the topic goes on without it */
	td_config(td);
	td_ready_as(td, IPC_PROTO_VERSION, "t");
	FX_UNTIL(fx, c->state == CH_READY);
	td_quiet(td);
}

/* A topicd sent STOP while its dead letter is on its way still hears
 * that it is stored: it waits for that before it exits (else its next
 * process would ask again, and the message be stored twice). */
static void
test_dead_letter_answer_reaches_a_stopping_topicd(void **state)
{
	struct core_fx *fx = *state;
	struct child *c = open_topic(fx, "t");
	struct rec_deadletter d = { .req = 7, .reason = "maxlen", .subkey = "m/s", .seq = 3,
				    .payload = (const uint8_t *)"x", .payload_len = 1 };
	struct fake_td *td, *dlq;
	struct rec_dlq_done dd;
	struct rec_publish p;
	const struct ipc_msg *m;
	struct wbuf w;

	child_wake(c);
	td = fx_ready(fx, "t");
	wbuf_init(&w);
	enc_deadletter(&w, &d);
	td_send(td, IPC_DEADLETTER, &w);
	wbuf_free(&w);
	dlq = fx_ready(fx, "$DLQ");
	m = td_expect(dlq, IPC_PUBLISH);
	assert_int_equal(dec_publish(m->body, m->len, &p), 0);
	td_stop_idle(td);
	td_done(dlq, p.req, ST_OK, 1);
	m = td_expect(td, IPC_DLQ_DONE);
	assert_int_equal(dec_dlq_done(m->body, m->len, &dd), 0);
	assert_true(dd.req == 7 && dd.stored == 1);
}

/* max_held_bytes bounds what all topics hold together.  Past it, the
 * topics that make it grow (here two whose topicds are starting) stall
 * their publishers; a topic whose topicd keeps up does not.  A stalled
 * publisher is read again once its publish goes; all are once answers
 * bring the sum under 90%.  The bound is crossed going up at it, going
 * down at 90%. */
static void
test_held_bytes_bound_all_topics(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx), *other = fx_client(fx), *third = fx_client(fx);
	struct child *a = open_topic(fx, "a"), *b = open_topic(fx, "b"), *k = open_topic(fx, "k");
	struct fake_td *ta, *tb, *tk;
	uint64_t ra, rb, rk, one;

	assert_false(over_limit(100, 0, true));
	assert_true(over_limit(100, 100, false));
	assert_false(over_limit(95, 100, false));
	assert_true(over_limit(95, 100, true));
	assert_false(over_limit(89, 100, true));

	rk = fx_publish(third, k, 1, "k0");
	tk = fx_ready(fx, "k");
	assert_int_equal(td_expect_publish(tk, "k0"), rk);
	td_done(tk, rk, ST_OK, 1);
	FX_UNTIL(fx, fx->nanswers == 1);
	assert_int_equal(fx->b.held_bytes, 0);

	ra = fx_publish(cl, a, 2, "one");
	one = fx->b.held_bytes;
	fx->b.set.max_held_bytes = one * 2;
	rb = fx_publish(other, b, 3, "two");	/* the sum reaches the bound */
	assert_true(fx->b.held_over);
	/* Their topicds are not running: from the loop, they stall. */
	FX_UNTIL(fx, client_throttled(cl) && client_throttled(other));
	rk = fx_publish(third, k, 4, "k1");	/* this one keeps up */
	assert_false(client_throttled(third));
	assert_int_equal(td_expect_publish(tk, "k1"), rk);

	ta = fx_ready(fx, "a");
	tb = fx_ready(fx, "b");
	assert_int_equal(td_expect_publish(ta, "one"), ra);
	assert_int_equal(td_expect_publish(tb, "two"), rb);
	assert_false(client_throttled(cl));	/* sent: nothing of theirs waits */
	assert_false(client_throttled(other));
	td_done(ta, ra, ST_OK, 1);
	td_done(tb, rb, ST_OK, 1);
	td_done(tk, rk, ST_OK, 2);
	FX_UNTIL(fx, fx->nanswers == 4);
	assert_false(fx->b.held_over);
	assert_int_equal(fx->b.held_bytes, 0);
}

/* A publish held for a full topic whose client has gone was never
 * acknowledged (the client sends it again): it goes at the topic's next
 * pump, not once the topic has room. */
static void
test_orphan_dropped_while_the_topic_is_full(void **state)
{
	struct core_fx *fx = *state;
	struct client *cl = fx_client(fx), *other = fx_client(fx);
	struct child *c = open_topic(fx, "t");
	struct fake_td *td;
	struct rec_release rel = { .owner = "o", .pubid = 9 };
	const char *why;
	uint64_t r1;
	struct wbuf w;

	r1 = fx_publish(other, c, 1, "one");
	td = fx_ready(fx, "t");
	td_expect_publish(td, "one");
	refuse_for_room(td, c, r1, &w);
	(void)fx_publish(cl, c, 2, "two");
	assert_int_equal(c->nheld_pub, 2);
	client_close(cl, "test");
	rel.req = broker_req(&fx->b);
	assert_int_equal(release_submit(other, c, &rel, fx_answered, 3, &why), 0);
	td_expect(td, IPC_RELEASE);
	assert_int_equal(c->nheld_pub, 1);	/* "two" is gone; "one" waits */
	wbuf_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_held_bytes_bound_all_topics, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_orphan_dropped_while_the_topic_is_full, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_held_until_ready, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_dead_letter_answer_reaches_a_stopping_topicd,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unstalled_client_read_after_the_pump,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash_replays_unanswered, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_ready_backs_off, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_answers_count_after_a_failed_write, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash_probes_one_at_a_time, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_probe_answer_in_channel, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_submitted_while_stopping, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_qos0_sent_by_the_pump_of_its_submission,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_qos0_sent_at_once_or_in_turn,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_full_room_resume, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ready_wrong_topic, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ready_other_version, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ready_while_stopping, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_damaged_store_retried, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_poison_dead_lettered, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
