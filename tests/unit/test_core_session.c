/* Sessions (broker/core/session.c), their routes (route.c) and the topic
 * registry (registry.c): which topics a session takes at what QoS, which
 * sessions a new topic goes to, and what the master's store keeps of
 * them across a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clock.h"
#include "core_fixture.h"
#include "kvstore.h"
#include "fake_proto.h"
#include "fake_topicd.h"
#include "route_test.h"

static void
add_name(struct broker *b, const char *topic, void *arg)
{
	(void)b;
	strlist_add(arg, topic);
}

/* The topics the registry matches with filter, sorted, '|'-joined. */
static void
expect_topics(struct core_fx *fx, const char *filter, const char *want)
{
	struct strlist l = { NULL, 0, 0 };
	char *got;

	registry_match(&fx->b, filter, add_name, &l);
	got = strlist_join(&l);
	assert_string_equal(got, want);
	free(got);
	strlist_clear(&l);
}

static void
add_key(struct session *s, void *arg)
{
	strlist_add(arg, s->key);
}

/* The sessions a topic goes to (each once), sorted, '|'-joined. */
static void
expect_routed(struct core_fx *fx, const char *topic, const char *want)
{
	struct strlist l = { NULL, 0, 0 };
	char *got;

	routes_match(&fx->b, topic, add_key, &l);
	got = strlist_join(&l);
	assert_string_equal(got, want);
	free(got);
	strlist_clear(&l);
}

/* Waits for session_save's ticket: the write at the end of the loop's
 * pass (DURABLE_NEXT), then its sync. */
static void
wait_durable(struct core_fx *fx, uint64_t ticket)
{
	assert_int_not_equal(ticket, 0);
	if (ticket == DURABLE_NEXT) {
		FX_UNTIL(fx, TAILQ_EMPTY(&fx->b.dirty_sessions));
		ticket = kv_written(fx->b.store);
	}
	FX_UNTIL(fx, durable_reached(&fx->b, ticket));
}

/* A topic is taken at the highest QoS of the filters that match it. */
static void
test_filters_qos(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = session_new(&fx->b, "m/a", MODE_MQTT, true);
	struct session *all = session_new(&fx->b, "m/all", MODE_MQTT, true);

	assert_true(session_add_filter(s, "a/+/c", 1));
	assert_false(session_add_filter(s, "a/+/c", 1));	/* nothing changed */
	assert_true(session_add_filter(s, "a/#", 2));
	assert_true(session_add_filter(s, "a/b/c", 0));
	assert_int_equal(s->nfilters, 3);
	assert_int_equal(session_qos(s, "a/b/c"), 2);
	assert_int_equal(session_qos(s, "a"), 2);
	assert_int_equal(session_qos(s, "b"), -1);
	assert_true(session_add_filter(s, "a/#", 0));		/* a new QoS */
	assert_int_equal(s->nfilters, 3);
	assert_int_equal(session_qos(s, "a/x/c"), 1);
	assert_true(session_remove_filter(s, "a/+/c"));
	assert_false(session_remove_filter(s, "a/+/c"));
	assert_int_equal(session_qos(s, "a/x/c"), 0);

	assert_true(session_add_filter(all, "#", 1));
	assert_int_equal(session_qos(all, "x/y"), 1);
	assert_int_equal(session_qos(all, "$SYS/x"), -1);	/* '#' does not take '$' topics */
}

/* A topic finds each session whose filters match it, once, also when
 * several of its filters do; removed filters and freed sessions are gone. */
static void
test_routes(void **state)
{
	struct core_fx *fx = *state;
	struct session *s1 = session_new(&fx->b, "m/1", MODE_MQTT, true);
	struct session *s2 = session_new(&fx->b, "m/2", MODE_MQTT, true);
	struct session *s3 = session_new(&fx->b, "j/3", MODE_JSON, true);

	session_add_filter(s1, "a/+", 1);
	session_add_filter(s1, "a/#", 1);
	session_add_filter(s1, "+/b", 0);
	session_add_filter(s2, "b/#", 1);
	session_add_filter(s3, "a/b", 2);
	expect_routed(fx, "a/b", "j/3|m/1");
	expect_routed(fx, "b/b", "m/1|m/2");
	expect_routed(fx, "c", "");
	session_remove_filter(s1, "a/+");
	expect_routed(fx, "a/b", "j/3|m/1");
	session_remove_filter(s1, "a/#");
	session_remove_filter(s1, "+/b");
	expect_routed(fx, "a/b", "j/3");
	session_free(s3);
	expect_routed(fx, "a/b", "");
}

/* A new topic: a cursor for every session that takes it, once each, with
 * the delivery socket of those online; none for a clean session offline. */
static void
test_topic_created(void **state)
{
	struct core_fx *fx = *state;
	struct session *off = fx_session(fx, "m/off", true, true);
	struct session *on = fx_session(fx, "m/on", true, false);
	struct session *clean = fx_session(fx, "c/1/x", false, true);
	struct session *other = fx_session(fx, "m/other", true, true);
	struct child *c;
	const char *why;
	struct fake_td *td;
	const struct ipc_msg *m;
	struct rec_attach a;

	session_add_filter(off, "a/+", 1);
	session_add_filter(off, "a/#", 2);
	session_add_filter(on, "a/b", 1);
	session_add_filter(clean, "a/#", 1);
	session_add_filter(other, "b/#", 1);
	assert_non_null(c = topic_open(&fx->b, "a/b", &why));
	/* The offline session's registration starts nothing: what created
	 * the topic (a publish) does, and it goes first. */
	assert_int_equal(c->state, CH_COLD);
	child_wake(c);
	td = fx_ready(fx, "a/b");
	m = td_expect(td, IPC_ATTACH);		/* what was held, then the attachment */
	assert_int_equal(dec_attach(m->body, m->len, &a), 0);
	assert_string_equal(a.subkey, "m/off");
	assert_int_equal(a.qos, 2);
	assert_int_equal(m->fd, -1);
	m = td_expect(td, IPC_ATTACH);
	assert_int_equal(dec_attach(m->body, m->len, &a), 0);
	assert_string_equal(a.subkey, "m/on");
	assert_int_not_equal(m->fd, -1);
	td_quiet(td);
}

/* Every topic ever used is registered durably, and known again after a
 * restart; a filter finds the topics it matches. */
static void
test_registry(void **state)
{
	struct core_fx *fx = *state;

	assert_false(registry_known(&fx->b, "a/b"));
	(void)registry_add(&fx->b, "a/b");
	(void)registry_add(&fx->b, "a/c");
	wait_durable(fx, registry_add(&fx->b, "x/y"));
	assert_true(registry_known(&fx->b, "a/b"));
	assert_false(registry_known(&fx->b, "a"));
	expect_topics(fx, "a/+", "a/b|a/c");
	expect_topics(fx, "+/y", "x/y");
	expect_topics(fx, "#", "a/b|a/c|x/y");
	expect_topics(fx, "b/#", "");

	fx_store_reopen(fx);
	assert_int_equal(fx->b.ntopics, 3);
	assert_true(registry_known(&fx->b, "a/c"));
	expect_topics(fx, "#", "a/b|a/c|x/y");
}

/* A topic whose topicd may have been changing it when the master ended
 * (a new one among them: the cursors its creation gave wait in the master
 * until its topicd stores them) says so once after a restart, for its
 * cursors to be given again; one that went cold does not. */
static void
test_registry_recreate(void **state)
{
	static const struct idle_summary none = { .nsubs = 0 };
	struct core_fx *fx = *state;

	(void)registry_add(&fx->b, "new");
	(void)registry_add(&fx->b, "cold");
	fx_cold_summary(fx, "cold", &none);
	(void)registry_add(&fx->b, "live");
	fx_cold_summary(fx, "live", &none);
	wait_durable(fx, registry_live(&fx->b, "live"));	/* started again */
	assert_false(registry_take_recreate(&fx->b, "new"));	/* this master made it */

	fx_store_reopen(fx);
	assert_int_equal(fx->b.ntopics, 3);
	assert_true(registry_take_recreate(&fx->b, "new"));
	assert_false(registry_take_recreate(&fx->b, "new"));
	assert_true(registry_take_recreate(&fx->b, "live"));
	assert_false(registry_take_recreate(&fx->b, "cold"));
	assert_false(registry_take_recreate(&fx->b, "unknown"));
}

/* A persistent session's record comes back after a restart with its
 * filters (routed again), its mode, and when it went offline; a clean
 * session is not stored. */
static void
test_saved_and_loaded(void **state)
{
	struct core_fx *fx = *state;
	struct session *p = session_new(&fx->b, "m/p", MODE_MQTT, true);
	struct session *j = session_new(&fx->b, "j/u", MODE_JSON, true);
	struct session *clean = session_new(&fx->b, "c/1/t", MODE_MQTT, false);
	int64_t since = p->offline_since - 5000;
	uint64_t inc = p->incarnation;

	p->offline_since = since;
	session_add_filter(p, "a/#", 1);
	session_add_filter(p, "b/c", 2);
	session_add_filter(j, "x/#", 2);
	session_add_filter(clean, "a/#", 0);
	assert_int_equal(session_save(clean), 0);
	(void)session_save(j);
	wait_durable(fx, session_save(p));

	fx_store_reopen(fx);
	assert_int_equal(session_count(&fx->b), 2);
	assert_null(session_find(&fx->b, "c/1/t"));
	p = session_find(&fx->b, "m/p");
	assert_non_null(p);
	assert_int_equal(p->mode, MODE_MQTT);
	assert_true(p->persistent);
	assert_int_equal(p->offline_since, since);
	assert_int_equal(p->incarnation, inc);
	assert_int_equal(p->nfilters, 2);
	assert_int_equal(session_qos(p, "b/c"), 2);
	assert_int_equal(session_qos(p, "a/z"), 1);
	j = session_find(&fx->b, "j/u");
	assert_non_null(j);
	assert_int_equal(j->mode, MODE_JSON);
	expect_routed(fx, "b/c", "m/p");
	expect_routed(fx, "x/y", "j/u");
}

/* A session saved many times in one pass of the loop (a client's
 * SUBSCRIBEs read in one go) is written once, with all it holds then:
 * writing all its filters for each would be quadratic. */
static void
test_saves_of_one_pass_written_once(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = session_new(&fx->b, "m/many", MODE_MQTT, true);
	uint64_t before = kv_written(fx->b.store), ticket = 0;
	char f[32];

	for (int i = 0; i < 1000; i++) {
		snprintf(f, sizeof(f), "many/%d", i);
		session_add_filter(s, f, 1);
		ticket = session_save(s);
		assert_int_equal(ticket, DURABLE_NEXT);
	}
	wait_durable(fx, ticket);
	assert_int_equal(kv_written(fx->b.store) - before, 1);
	session_delete(s);			/* after a save not yet written */
	s = session_new(&fx->b, "m/gone", MODE_MQTT, true);
	(void)session_save(s);
	session_delete(s);
	wait_durable(fx, DURABLE_NEXT);
	fx_store_reopen(fx);
	assert_null(session_find(&fx->b, "m/many"));
	assert_null(session_find(&fx->b, "m/gone"));
	s = session_new(&fx->b, "m/many", MODE_MQTT, true);
	session_add_filter(s, "a", 1);
	(void)session_save(s);
	session_add_filter(s, "b", 2);
	(void)session_save(s);
	fx_store_reopen(fx);			/* closed before the pass ended */
	s = session_find(&fx->b, "m/many");
	assert_non_null(s);
	assert_int_equal(s->nfilters, 2);
}

/* A deleted session: its cursor goes from every registered topic its
 * filters match where it may be: a topic whose topicd runs, a cold one
 * whose summary lists it (started for it); a cold topic known not to
 * have it is left alone.  Its protocol forgets it, and its record is
 * gone. */
static void
test_delete(void **state)
{
	static const struct idle_sub listed[] = { { "m/x", true }, { "m/d", false } };
	static const struct idle_summary has_it = { .subs = listed, .nsubs = 2 };
	struct core_fx *fx = *state;
	struct session *s = fx_session(fx, "m/d", true, true);
	struct rec_unsub u;
	const char *why;
	const struct ipc_msg *m;
	struct fake_td *td;

	session_add_filter(s, "a/#", 1);
	(void)session_save(s);
	assert_non_null(topic_open(&fx->b, "a/b", &why));
	child_wake(topic_find(&fx->b, "a/b"));	/* as the publish that made it */
	(void)fx_ready(fx, "a/b");
	(void)td_expect(fx_td(fx, "a/b"), IPC_ATTACH);
	(void)registry_add(&fx->b, "a/c");		/* known: no cursor there */
	(void)registry_add(&fx->b, "a/d");
	fx_cold_summary(fx, "a/d", &has_it);		/* cold, with its cursor */
	(void)registry_add(&fx->b, "z");

	session_delete(s);
	assert_null(session_find(&fx->b, "m/d"));
	assert_int_equal(fx->nforgotten, 1);
	assert_int_equal(fx->nreleased, 0);
	assert_int_equal(fx_count_tds(fx, "z"), 0);
	assert_int_equal(fx_count_tds(fx, "a/c"), 0);
	assert_int_equal(topic_find(&fx->b, "a/c")->state, CH_COLD);
	for (int i = 0; i < 2; i++) {
		td = i == 0 ? fx_td(fx, "a/b") : fx_ready(fx, "a/d");
		m = td_expect(td, IPC_UNSUB);
		assert_int_equal(dec_unsub(m->body, m->len, &u), 0);
		assert_string_equal(u.subkey, "m/d");
		assert_int_equal(u.flags, UF_FORGET);
		td_quiet(td);
	}
	fx_store_reopen(fx);
	assert_null(session_find(&fx->b, "m/d"));
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sessions_expire(arg);
}

/* persistent_client_expiration: a persistent MQTT session offline for
 * longer is deleted; one online, a JSON-lines user or a clean session is
 * not.  Sessions are looked at again once the first may be due. */
static void
test_expire(void **state)
{
	struct core_fx *fx = *state;
	struct broker *b = &fx->b;
	struct session *old = fx_session(fx, "m/old", true, true);
	struct session *young = fx_session(fx, "m/young", true, true);
	struct session *on = fx_session(fx, "m/on", true, false);
	struct session *j = fx_session(fx, "j/u", true, true);
	struct session *clean = fx_session(fx, "c/1/x", false, true);
	struct timeval tick = { 0, 10 * 1000 };
	struct event *ev;

	b->set.persistent_client_expiration = 200;
	old->offline_mono = on->offline_mono = j->offline_mono = clean->offline_mono =
	    mono_ms() - 60000;
	for (struct session *s = RB_MIN(session_tree, &b->sessions); s != NULL;
	    s = RB_NEXT(session_tree, &b->sessions, s))
		(void)session_save(s);
	sessions_expire(b);
	assert_null(session_find(b, "m/old"));
	assert_int_equal(fx->nforgotten, 1);
	assert_int_equal(b->next_expiry, young->offline_mono + 200);	/* its deadline */

	ev = event_new(b->base, -1, EV_PERSIST, on_tick, b);
	assert_int_equal(event_add(ev, &tick), 0);
	FX_UNTIL(fx, session_find(b, "m/young") == NULL);
	assert_non_null(session_find(b, "m/on"));
	client_close(on->cl, "test");			/* offline from now */
	assert_true(b->next_expiry <= on->offline_mono);
	FX_UNTIL(fx, session_find(b, "m/on") == NULL);
	event_free(ev);
	assert_int_equal(fx->nforgotten, 3);
	assert_non_null(session_find(b, "j/u"));
	assert_non_null(session_find(b, "c/1/x"));

	fx_store_reopen(fx);
	assert_int_equal(session_count(b), 1);
	assert_non_null(session_find(b, "j/u"));
}

/* A session's own expiry (MQTT 5.0's Session Expiry Interval) wins over
 * persistent_client_expiration, UINT64_MAX keeps it for ever, and both
 * are stored with the session. */
static void
test_expire_own(void **state)
{
	struct core_fx *fx = *state;
	struct broker *b = &fx->b;
	struct session *soon = fx_session(fx, "m/soon", true, true);
	struct session *never = fx_session(fx, "m/never", true, true);
	struct session *dflt = fx_session(fx, "m/default", true, true);

	b->set.persistent_client_expiration = 0;	/* the default: never */
	soon->expiry_ms = 30000;
	never->expiry_ms = UINT64_MAX;
	soon->offline_since = never->offline_since = dflt->offline_since = wall_ms() - 60000;
	(void)session_save(soon);
	(void)session_save(never);
	(void)session_save(dflt);
	fx_store_reopen(fx);
	assert_int_equal(session_find(b, "m/soon")->expiry_ms, 30000);
	assert_true(session_find(b, "m/never")->expiry_ms == UINT64_MAX);
	assert_int_equal(session_find(b, "m/default")->expiry_ms, 0);
	b->next_expiry = 0;
	sessions_expire(b);
	assert_null(session_find(b, "m/soon"));
	assert_non_null(session_find(b, "m/never"));
	assert_non_null(session_find(b, "m/default"));
	assert_true(b->next_expiry == INT64_MAX);	/* nothing left to expire */

	b->set.persistent_client_expiration = 1000;	/* the cap: default ones go */
	b->next_expiry = 0;
	sessions_expire(b);
	assert_null(session_find(b, "m/default"));
	assert_non_null(session_find(b, "m/never"));
}

/* A deadline is when offline plus the lifetime, as far as an int64_t
 * counts: a lifetime beyond that never comes. */
static void
test_deadline(void **state)
{
	(void)state;
	assert_int_equal(session_deadline(1000, 500), 1500);
	assert_int_equal(session_deadline(-1000, 500), -500);	/* mono, soon after boot */
	assert_true(session_deadline(1000, (uint64_t)INT64_MAX) == INT64_MAX);
	assert_true(session_deadline(-1000, (uint64_t)INT64_MAX) == INT64_MAX - 1000);
	assert_true(session_deadline(INT64_MAX - 10, 10) == INT64_MAX);
	assert_true(session_deadline(INT64_MAX - 10, 11) == INT64_MAX);
	assert_true(session_deadline(0, UINT64_MAX - 1) == INT64_MAX);
}

/* A record's offline time is taken unless it is later than the wall
 * clock now (the clock stepped back) or missing (0: online when the
 * master ended): then the session went offline now. */
static void
test_offline_wall(void **state)
{
	(void)state;
	assert_int_equal(session_offline_wall(5000, 9000), 5000);
	assert_int_equal(session_offline_wall(9000, 9000), 9000);
	assert_int_equal(session_offline_wall(9001, 9000), 9000);
	assert_int_equal(session_offline_wall(UINT64_MAX, 9000), 9000);
	assert_int_equal(session_offline_wall(0, 9000), 9000);
}

/* The sessions_expire tick until the session is gone; returns how long
 * after start (mono ms) that was. */
static int64_t
expired_after(struct core_fx *fx, const char *key, int64_t start)
{
	struct timeval tick = { 0, 10 * 1000 };
	struct event *ev = event_new(fx->b.base, -1, EV_PERSIST, on_tick, &fx->b);

	assert_int_equal(event_add(ev, &tick), 0);
	FX_UNTIL(fx, session_find(&fx->b, key) == NULL);
	event_free(ev);
	return mono_ms() - start;
}

/* The wall clock stepped back while a session was offline (NTP, a VM or
 * an RTC that was ahead): it went offline "later" than now.  That is no
 * time offline, not an age of 2^64 ms: it is kept, and goes once offline
 * for its lifetime from then. */
static void
test_expire_clock_back(void **state)
{
	struct core_fx *fx = *state;
	struct broker *b = &fx->b;
	struct session *s = fx_session(fx, "m/back", true, true);
	int64_t start = mono_ms();

	s->expiry_ms = 300;
	session_offline(s);
	s->offline_since += 10 * 60 * 1000;	/* now 10 minutes behind */
	b->next_expiry = 0;
	sessions_expire(b);
	assert_non_null(session_find(b, "m/back"));
	assert_int_equal(fx->nforgotten, 0);
	assert_true(expired_after(fx, "m/back", start) >= 300);
	assert_int_equal(fx->nforgotten, 1);
}

/* The same across a restart: a stored session whose record says it went
 * offline later than the wall clock now is kept, and its lifetime counts
 * from the start, not from that time (10 minutes more). */
static void
test_expire_clock_back_restart(void **state)
{
	struct core_fx *fx = *state;
	struct broker *b = &fx->b;
	struct session *s = fx_session(fx, "m/back", true, true);
	int64_t start;

	s->expiry_ms = 300;
	s->offline_since = wall_ms() + 10 * 60 * 1000;
	wait_durable(fx, session_save(s));
	start = mono_ms();
	fx_store_reopen(fx);
	b->next_expiry = 0;
	sessions_expire(b);
	s = session_find(b, "m/back");
	assert_non_null(s);
	assert_true(s->offline_since <= wall_ms());	/* re-based: offline from now */
	assert_true(expired_after(fx, "m/back", start) >= 300);
}

/* The next incarnation is the wall clock's millisecond, unless that is
 * not later than the last given: then the one after it. */
static void
test_incarnation_next(void **state)
{
	(void)state;
	assert_true(incarnation_next(0, 1000) == 1000);
	assert_true(incarnation_next(999, 1000) == 1000);
	assert_true(incarnation_next(1000, 1000) == 1001);	/* the same millisecond */
	assert_true(incarnation_next(5000, 1000) == 5001);	/* a clock set back */
	assert_true(incarnation_next(5000, -1) == 5001);
}

/* A stored session's incarnation names what its connections stage (the
 * owner "m/ID/INCARNATION"): the sessions of a client id, one after the
 * other, have increasing ones, also when made in the same millisecond (a
 * Clean Start takeover ping-pong). */
static void
test_incarnations_increase(void **state)
{
	struct core_fx *fx = *state;
	uint64_t last = 0;

	for (int i = 0; i < 200; i++) {
		struct session *s = session_new(&fx->b, "m/pp", MODE_MQTT, true);

		assert_true(s->incarnation > last);
		last = s->incarnation;
		session_delete(s);
	}
}

/* After a restart with the wall clock behind the incarnations given so
 * far (a clock that was ahead, then set back), a new session still gets
 * a later one than the stored sessions have. */
static void
test_incarnations_after_restart(void **state)
{
	struct core_fx *fx = *state;
	struct session *s = session_new(&fx->b, "m/ahead", MODE_MQTT, true);
	uint64_t ahead = (uint64_t)wall_ms() + 10 * 60 * 1000;

	s->incarnation = ahead;		/* made while the clock was 10 minutes ahead */
	wait_durable(fx, session_save(s));
	fx_store_reopen(fx);
	assert_true(session_find(&fx->b, "m/ahead")->incarnation == ahead);
	s = session_new(&fx->b, "m/next", MODE_MQTT, true);
	assert_true(s->incarnation > ahead);
}

/* The last incarnation given is stored: a restart gives none again, even
 * that of a session ended before it (whose staged publishes a topicd may
 * still hold), with the clock set back. */
static void
test_incarnations_after_an_ended_session(void **state)
{
	struct core_fx *fx = *state;
	struct session *s;
	uint64_t ended;

	fx->b.last_incarnation = (uint64_t)wall_ms() + 10 * 60 * 1000;	/* a clock ahead */
	s = session_new(&fx->b, "m/gone", MODE_MQTT, true);
	ended = s->incarnation;
	session_delete(s);
	wait_durable(fx, durable_write(&fx->b));
	fx_store_reopen(fx);
	assert_int_equal(session_count(&fx->b), 0);
	s = session_new(&fx->b, "m/gone", MODE_MQTT, true);
	assert_true(s->incarnation > ended);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_filters_qos, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_routes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_topic_created, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_registry, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_registry_recreate, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_saves_of_one_pass_written_once, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_saved_and_loaded, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_delete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_expire, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_expire_own, fx_setup, fx_teardown),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_offline_wall),
		cmocka_unit_test_setup_teardown(test_expire_clock_back, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_expire_clock_back_restart, fx_setup,
		    fx_teardown),
		cmocka_unit_test(test_incarnation_next),
		cmocka_unit_test_setup_teardown(test_incarnations_increase, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_incarnations_after_restart, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_incarnations_after_an_ended_session, fx_setup,
		    fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
