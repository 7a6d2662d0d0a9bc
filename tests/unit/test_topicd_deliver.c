/* topicd's record handling and delivery, driven as the master would: records
 * go into dispatch_msg(), answers come back on a real channel, deliveries
 * on real SOCK_SEQPACKET session sockets. */
#include <sys/statvfs.h>

#include <bsd/unistd.h>

#include "tmpdir.h"
#include "topicd_fixture.h"

static void
test_json_one_at_a_time(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "j/user", MODE_JSON, 2, 1, 0, 1);

	publish_s(f, 2, 1, "a");
	publish_s(f, 3, 1, "b");
	batch(f);
	expect_done(f, 1, ST_OK, 1);		/* the cursor of a new subscriber */
	expect_done(f, 2, ST_OK, 1);
	expect_done(f, 3, ST_OK, 2);
	/* JSON-lines consumers get the QoS 2 exchange whatever the QoS. */
	expect_deliver(s, 1, 2, 0, "a");
	expect_nothing(s);
	ack(f, "j/user", 1, ACK_PUBREC);
	/* A pump while the batch is open (socket writable, a timer) sends
	 * nothing: PUBREL only once the PUBREC is committed. */
	deliver_pump(sub_find(&f->td, "j/user"));
	expect_nothing(s);
	batch(f);
	expect_rel(s, 1);
	expect_nothing(s);
	ack(f, "j/user", 1, ACK_PUBCOMP);
	batch(f);
	expect_deliver(s, 2, 2, 0, "b");
	assert_int_equal(sub_find(&f->td, "j/user")->cursor, 2);
	close(s);
}

/* A body that goes alone in its datagram (IPC_ALONE) goes to a QoS 1
 * subscriber by the topicd's ring, and to a QoS 0 one inline: a QoS 0
 * delivery is not sent again, and the master can no longer find the ring
 * of a topicd that ended before it read the reference. */
static void
test_large_deliveries_by_ring_only_at_qos_1_and_2(void **state)
{
	struct fx *f = *state;
	static uint8_t big[IPC_ALONE + 100];
	struct ipc_msg m;
	struct rec_deliver d;
	int s0, s1;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13);
	assert_non_null(f->td.dring = ipc_ring_new(IPC_RING_SIZE));
	ipc_chan_announce(f->td.chan, f->td.dring);
	s0 = attach(f, "m/q0", MODE_MQTT, 0, 10, 0, 1);
	s1 = attach(f, "m/q1", MODE_MQTT, 1, 10, 0, 2);
	batch(f);
	expect_done(f, 1, ST_OK, 1);		/* the announcement was taken in first */
	expect_done(f, 2, ST_OK, 1);
	publish(f, 3, 1, 0, "", 0, big, sizeof(big));
	batch(f);
	expect_done(f, 3, ST_OK, 1);
	get(s0, &m, IPC_DELIVER);
	assert_null(m.ring);
	assert_int_equal(dec_deliver(m.body, m.len, &d), 0);
	assert_int_equal(d.qos, 0);
	assert_memory_equal(d.payload, big, sizeof(big));
	ipc_msg_clear(&m);
	get(s1, &m, IPC_DELIVER);
	assert_non_null(m.ring);
	assert_int_equal(dec_deliver(m.body, m.len, &d), 0);
	assert_int_equal(d.qos, 1);
	assert_memory_equal(d.payload, big, sizeof(big));
	ipc_msg_clear(&m);
	assert_int_equal(ipc_ring_used(f->td.dring), 0);
	ipc_ring_free(f->td.dring);
	f->td.dring = NULL;
	close(s0);
	close(s1);
}

static void
test_mqtt_window(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/c", MODE_MQTT, 1, 2, 0, 1);

	batch(f);
	expect_done(f, 1, ST_OK, 1);
	publish_s(f, 0, 0, "q0");
	publish_s(f, 5, 2, "q2");
	publish_s(f, 6, 1, "q1");
	batch(f);
	expect_done(f, 5, ST_OK, 2);
	expect_done(f, 6, ST_OK, 3);
	expect_deliver(s, 1, 0, 0, "q0");	/* QoS 0: not in flight */
	expect_deliver(s, 2, 1, 0, "q2");	/* min(2, granted 1) */
	expect_deliver(s, 3, 1, 0, "q1");
	publish_s(f, 7, 1, "four");
	ack(f, "m/c", 1, ACK_PUBACK);	/* seq 1 was QoS 0: ignored */
	batch(f);
	expect_done(f, 7, ST_OK, 4);
	expect_nothing(s);			/* window full */
	ack(f, "m/c", 3, ACK_PUBACK);		/* out of order */
	batch(f);
	expect_deliver(s, 4, 1, 0, "four");
	assert_int_equal(sub_find(&f->td, "m/c")->cursor, 2);
	ack(f, "m/c", 2, ACK_PUBACK);
	ack(f, "m/c", 4, ACK_PUBACK);
	batch(f);
	assert_int_equal(sub_find(&f->td, "m/c")->cursor, 5);
	/* Everything is completed: the log is trimmed. */
	assert_int_equal(f->td.messages, 0);
	close(s);
}

static void
test_stage_release(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/q2", MODE_MQTT, 2, 10, 0, 1);
	struct rec_release r = { 3, "m/pub", 9 };

	publish(f, 2, 2, PF_STAGE, "m/pub", 9, "x", 1);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 0);
	expect_nothing(s);			/* staged: not delivered */
	publish(f, 2, 2, PF_STAGE, "m/pub", 9, "x", 1);	/* a replay */
	enc_release(&f->w, &r);
	rec(f, IPC_RELEASE, -1);
	enc_release(&f->w, &r);			/* a replay */
	rec(f, IPC_RELEASE, -1);
	batch(f);
	expect_done(f, 2, ST_OK, 0);
	expect_done(f, 3, ST_OK, 1);
	expect_done(f, 3, ST_OK, 0);
	expect_deliver(s, 1, 2, 0, "x");
	expect_nothing(s);
	ack(f, "m/q2", 1, ACK_PUBREC);
	batch(f);
	expect_rel(s, 1);
	ack(f, "m/q2", 1, ACK_PUBCOMP);
	batch(f);
	assert_int_equal(sub_find(&f->td, "m/q2")->cursor, 2);
	close(s);
}

static void
test_release_owner(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/r", MODE_MQTT, 1, 10, 0, 1);
	struct rec_release_owner ro = { .req = 4, .owner = "j/1/7" };

	publish(f, 2, 2, PF_STAGE | PF_JSON, "j/1/7", 2, "[2]", 3);
	publish(f, 3, 2, PF_STAGE | PF_JSON, "j/1/7", 1, "[1]", 3);
	batch(f);
	enc_release_owner(&f->w, &ro);
	rec(f, IPC_RELEASE_OWNER, -1);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 0);
	expect_done(f, 3, ST_OK, 0);
	expect_done(f, 4, ST_OK, 0);		/* RELEASE_OWNER with a req is answered */
	{
		struct ipc_msg m;

		assert_false(master_next(f, &m));
	}
	expect_deliver(s, 1, 1, DF_JSON, "[1]");	/* in pubid order */
	expect_deliver(s, 2, 1, DF_JSON, "[2]");
	close(s);
}

static void
test_backpressure(void **state)
{
	struct fx *f = *state;
	int slow = attach(f, "m/slow", MODE_MQTT, 0, 1, 0, 1);
	int fast = attach(f, "m/fast", MODE_MQTT, 0, 1, 0, 2);
	char payload[1000];
	struct sub *s;
	int got = 0;

	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int i = 0; i < 500; i++)
		publish_s(f, 0, 0, payload);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	s = sub_find(&f->td, "m/slow");
	assert_true(s->blocked);		/* the socket filled up */
	assert_true(s->cursor < 501);
	/* The fast one is not held up by the slow one: drain it as we go. */
	for (int64_t deadline = mono_ms() + 5000; got < 500 && mono_ms() < deadline;) {
		struct ipc_msg m;
		struct rec_deliver d;

		if (ipc_recv(slow, rd(slow), &m) != 1) {
			event_base_loop(f->td.base, EVLOOP_NONBLOCK);
			struct ipc_msg fm;
			while (ipc_recv(fast, rd(fast), &fm) == 1)
				ipc_msg_clear(&fm);
			continue;
		}
		assert_int_equal(dec_deliver(m.body, m.len, &d), 0);
		assert_int_equal(d.seq, (uint64_t)got + 1);
		ipc_msg_clear(&m);
		got++;
	}
	assert_int_equal(got, 500);
	assert_int_equal(s->cursor, 501);
	assert_false(s->blocked);
	close(slow);
	close(fast);
}

static void
test_reattach_resends(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/re", MODE_MQTT, 1, 10, 0, 1);
	struct rec_detach d = { .subkey = "m/re" };
	struct ipc_msg m;

	publish_s(f, 2, 1, "one");
	publish_s(f, 3, 1, "two");
	batch(f);
	expect_deliver(s, 1, 1, 0, "one");
	expect_deliver(s, 2, 1, 0, "two");
	ack(f, "m/re", 1, ACK_PUBACK);
	enc_detach(&f->w, &d);
	rec(f, IPC_DETACH, -1);
	batch(f);
	assert_int_equal(ipc_recv(s, rd(s), &m), 0);	/* our end was closed */
	close(s);
	assert_int_equal(f->td.nonline, 0);
	s = attach(f, "m/re", MODE_MQTT, 1, 10, 0, 9);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	expect_done(f, 3, ST_OK, 2);
	expect_done(f, 9, ST_OK, 2);
	expect_deliver(s, 2, 1, DF_DUP, "two");
	expect_nothing(s);
	assert_int_equal(sub_find(&f->td, "m/re")->fl[0].attempts, 2);
	close(s);
}

/* A session back right after a PUBREC on its last connection: what it
 * had in flight goes again in sequence order, the DELIVER_REL of the
 * PUBREC'd one first, then the later one.  The master takes a later
 * delivery of a stale exchange for a sign that the topicd went past it;
 * the order holds because the ATTACH's gate opens after the PUBREC's. */
static void
test_reattach_resends_in_order_past_a_pubrec_not_yet_durable(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/ord", MODE_MQTT, 2, 10, 0, 1);
	struct rec_detach d = { .subkey = "m/ord" };

	publish(f, 2, 2, 0, "", 0, "one", 3);
	publish(f, 3, 2, 0, "", 0, "two", 3);
	batch(f);
	expect_deliver(s, 1, 2, 0, "one");
	expect_deliver(s, 2, 2, 0, "two");
	ack(f, "m/ord", 1, ACK_PUBREC);
	enc_detach(&f->w, &d);
	rec(f, IPC_DETACH, -1);
	close(s);
	s = attach(f, "m/ord", MODE_MQTT, 2, 10, 0, 9);
	dispatch_end_batch(&f->td);		/* the PUBREC's sync is not done yet */
	batch(f);
	expect_rel(s, 1);
	expect_deliver(s, 2, 2, DF_DUP, "two");
	expect_nothing(s);
	close(s);
}

/* The attached connection subscribes again (AF_SAME_CONN): nothing in
 * flight is sent again, the copy of its socket is closed, and new
 * messages go with the new settings on the socket it had. */
static void
test_same_connection_attaches_again(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/same", MODE_MQTT, 1, 10, 0, 1), again;
	struct ipc_msg m;

	publish_s(f, 2, 2, "one");
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	expect_deliver(s, 1, 1, 0, "one");
	again = attach(f, "m/same", MODE_MQTT, 2, 10, AF_SAME_CONN, 3);
	publish_s(f, 4, 2, "two");
	batch(f);
	expect_done(f, 3, ST_OK, 1);
	expect_done(f, 4, ST_OK, 2);
	expect_deliver(s, 2, 2, 0, "two");	/* the new QoS, one not again */
	expect_nothing(s);
	assert_int_equal(ipc_recv(again, rd(again), &m), 0);	/* the copy was closed */
	assert_int_equal(f->td.nonline, 1);
	close(again);
	close(s);
}

static uint64_t
expect_deadletter(struct fx *f, uint64_t seq, const char *payload)
{
	struct ipc_msg m;
	struct rec_deadletter d;
	uint64_t req;

	get(f->master, &m, IPC_DEADLETTER);
	assert_int_equal(dec_deadletter(m.body, m.len, &d), 0);
	assert_string_equal(d.reason, "max_attempts");
	assert_int_equal(d.seq, seq);
	assert_int_equal(d.time_ms, 1000);
	assert_memory_equal(d.payload, payload, d.payload_len);
	req = d.req;
	ipc_msg_clear(&m);
	return req;
}

static void
test_dead_letter(void **state)
{
	struct fx *f = *state;
	struct rec_dlq_done dd;
	int s;

	config(f, 10000, 2, 0);
	s = attach(f, "m/dl", MODE_MQTT, 1, 1, 0, 1);
	publish_s(f, 2, 1, "poison");
	publish_s(f, 3, 1, "fine");
	batch(f);
	expect_deliver(s, 1, 1, 0, "poison");
	close(s);
	s = attach(f, "m/dl", MODE_MQTT, 1, 1, 0, 4);
	batch(f);
	expect_deliver(s, 1, 1, DF_DUP, "poison");	/* the second attempt */
	close(s);
	s = attach(f, "m/dl", MODE_MQTT, 1, 1, 0, 5);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	expect_done(f, 3, ST_OK, 2);
	expect_done(f, 4, ST_OK, 1);
	expect_done(f, 5, ST_OK, 1);
	dd.req = expect_deadletter(f, 1, "poison");
	dd.stored = 1;
	expect_nothing(s);			/* held until DLQ_DONE */
	enc_dlq_done(&f->w, &dd);
	rec(f, IPC_DLQ_DONE, -1);
	batch(f);
	expect_deliver(s, 2, 1, 0, "fine");
	assert_int_equal(sub_find(&f->td, "m/dl")->cursor, 2);
	close(s);
}

/* A dead letter is asked for once: the subscriber coming back while it
 * is outstanding does not ask again.  One the master could not store is
 * asked for again a second later. */
static void
test_dead_letter_asked_once(void **state)
{
	struct fx *f = *state;
	struct rec_dlq_done dd = { .stored = 0 };
	struct sub *sub;
	int s;

	config(f, 10000, 1, 0);
	s = attach(f, "m/dl", MODE_MQTT, 1, 1, 0, 1);
	publish_s(f, 2, 1, "poison");
	batch(f);
	expect_deliver(s, 1, 1, 0, "poison");
	close(s);
	s = attach(f, "m/dl", MODE_MQTT, 1, 1, 0, 3);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	expect_done(f, 3, ST_OK, 1);
	dd.req = expect_deadletter(f, 1, "poison");
	close(s);
	s = attach(f, "m/dl", MODE_MQTT, 1, 1, 0, 4);
	batch(f);
	expect_done(f, 4, ST_OK, 1);
	sub = sub_find(&f->td, "m/dl");
	assert_true(sub->dlq_req == dd.req);	/* the same request, not another */
	enc_dlq_done(&f->w, &dd);		/* not stored */
	rec(f, IPC_DLQ_DONE, -1);
	batch(f);
	assert_true(sub->dlq_req == 0 && sub->cursor == 1);
	expect_nothing(s);
	wait_readable(f, f->master, 5000);
	dd.req = expect_deadletter(f, 1, "poison");
	dd.stored = 1;
	enc_dlq_done(&f->w, &dd);
	rec(f, IPC_DLQ_DONE, -1);
	batch(f);
	assert_int_equal(sub->cursor, 2);
	close(s);
}

static void
test_json_retry_park(void **state)
{
	struct fx *f = *state;
	struct sub *sub;
	int s;

	config(f, 30, 2, 0);
	s = attach(f, "j/slow", MODE_JSON, 2, 1, 0, 1);
	publish_s(f, 2, 1, "m");
	batch(f);
	expect_deliver(s, 1, 2, 0, "m");
	wait_readable(f, s, 5000);
	expect_deliver(s, 1, 2, DF_DUP, "m");	/* unchanged but for DUP */
	sub = sub_find(&f->td, "j/slow");
	for (int64_t deadline = mono_ms() + 5000; !sub->parked && mono_ms() < deadline;)
		event_base_loop(f->td.base, EVLOOP_ONCE);
	assert_true(sub->parked);
	expect_nothing(s);
	assert_int_equal(sub->cursor, 1);
	close(s);
	/* Attempts persist: on resume the exhausted head is dead-lettered. */
	s = attach(f, "j/slow", MODE_JSON, 2, 1, 0, 3);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	expect_done(f, 3, ST_OK, 1);
	expect_deadletter(f, 1, "m");
	assert_false(sub->parked);
	close(s);
}

static void
test_json_pubrel_retry(void **state)
{
	struct fx *f = *state;
	int s;

	config(f, 30, 5, 0);
	s = attach(f, "j/rel", MODE_JSON, 2, 1, 0, 1);
	publish_s(f, 2, 2, "m");
	batch(f);
	expect_deliver(s, 1, 2, 0, "m");
	ack(f, "j/rel", 1, ACK_PUBREC);
	batch(f);
	expect_rel(s, 1);
	wait_readable(f, s, 5000);
	expect_rel(s, 1);			/* no PUBCOMP: PUBREL again */
	ack(f, "j/rel", 1, ACK_PUBCOMP);
	batch(f);
	assert_int_equal(sub_find(&f->td, "j/rel")->cursor, 2);
	close(s);
}

static void
test_session_gone(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/gone", MODE_MQTT, 1, 5, 0, 1);
	struct sub *sub;

	batch(f);
	close(s);
	publish_s(f, 2, 1, "lost?");
	batch(f);
	sub = sub_find(&f->td, "m/gone");
	assert_int_equal(sub->fd, -1);
	assert_int_equal(f->td.nonline, 0);
	assert_int_equal(sub->cursor, 1);	/* kept for the next session */
	assert_int_equal(f->td.messages, 1);
	s = attach(f, "m/gone", MODE_MQTT, 1, 5, 0, 3);
	batch(f);
	/* It was packed for the socket that went away: sent as far as the
	 * topicd knows, so it goes again, marked as a resend. */
	expect_deliver(s, 1, 1, DF_DUP, "lost?");
	close(s);
}

static void
test_unsub(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/u", MODE_MQTT, 1, 5, 0, 1);
	struct rec_unsub u = { .req = 2, .subkey = "m/u" };

	publish_s(f, 3, 1, "kept");
	enc_unsub(&f->w, &u);
	rec(f, IPC_UNSUB, -1);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 3, ST_OK, 1);
	expect_done(f, 2, ST_OK, 0);
	assert_non_null(sub_find(&f->td, "m/u"));
	assert_int_equal(f->td.messages, 1);
	u.req = 4;
	u.flags = UF_FORGET;
	enc_unsub(&f->w, &u);
	rec(f, IPC_UNSUB, -1);
	batch(f);
	expect_done(f, 4, ST_OK, 0);
	assert_null(sub_find(&f->td, "m/u"));
	assert_int_equal(f->td.nsubs, 0);
	assert_int_equal(f->td.messages, 0);
	close(s);
}

/* max_topic_size: past it, FULL once, and every publish that needs an
 * answer is refused (ST_FULL) until RESUME; once consumed below 90%,
 * ROOM once; after RESUME publishes are taken again. */
static void
test_full(void **state)
{
	struct fx *f = *state;
	struct rec_full full;
	struct ipc_msg m;
	int s;

	config(f, 10000, 5, 2 * (TD_MSG_HEADER + 1));
	s = attach(f, "m/full", MODE_MQTT, 1, 1, 0, 1);
	publish_s(f, 2, 1, "1");
	publish_s(f, 3, 1, "2");
	publish_s(f, 4, 1, "3");
	publish(f, 5, 2, PF_STAGE, "m/p", 1, "4", 1);
	batch(f);
	get(f->master, &m, IPC_FULL);
	assert_int_equal(dec_full(m.body, m.len, &full), 0);
	assert_string_equal(full.reason, "max_topic_size");
	ipc_msg_clear(&m);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	expect_done(f, 3, ST_OK, 2);
	expect_done(f, 4, ST_FULL, 0);
	expect_done(f, 5, ST_FULL, 0);
	assert_true(f->td.refusing);
	/* Still refused, even with room, until RESUME. */
	expect_deliver(s, 1, 1, 0, "1");
	ack(f, "m/full", 1, ACK_PUBACK);
	batch(f);
	expect_deliver(s, 2, 1, 0, "2");
	ack(f, "m/full", 2, ACK_PUBACK);
	batch(f);
	get(f->master, &m, IPC_ROOM);
	assert_int_equal(m.len, 0);
	ipc_msg_clear(&m);
	publish_s(f, 6, 1, "5");
	batch(f);
	expect_done(f, 6, ST_FULL, 0);
	rec(f, IPC_RESUME, -1);
	publish_s(f, 7, 1, "3");
	batch(f);
	expect_done(f, 7, ST_OK, 3);
	assert_false(f->td.refusing);
	close(s);
}

/* The topicd's log from here on, in the fixture's directory. */
static void
log_to_file(struct fx *f, char *path, size_t size)
{
	snprintf(path, size, "%s/test.log", f->dir);
	log_init("topicd", LOG_LVL_NOTICE, LOG_DEST_FILE, path);
}

/* The free bytes in the topics directory; the whole of the log file. */
static uint64_t
free_now(struct fx *f)
{
	char dir[300];
	struct statvfs sv;

	snprintf(dir, sizeof(dir), "%s/topics", f->dir);
	assert_int_equal(statvfs(dir, &sv), 0);
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* The FULL line of the log: the limit that applies, the bytes kept and
 * the free space on disk now (returned). */
static unsigned long long
full_line(const char *path, const char *limit)
{
	unsigned long long kept, free_b;
	char buf[4096], want[128];
	const char *p;

	assert_true(tmpdir_slurp(path, buf, sizeof(buf)));
	snprintf(want, sizeof(want), "topic t/x: no room (%s): ", limit);
	p = strstr(buf, want);
	if (p == NULL)
		fail_msg("no \"%s\" in the log:\n%s", want, buf);
	assert_int_equal(sscanf(p + strlen(want), "%llu bytes kept, %llu free on disk: "
	    "publishes wait", &kept, &free_b), 2);
	return free_b;
}

/* Under the free-space floor, the line states the floor. */
static void
test_full_log_states_min_free_space(void **state)
{
	struct fx *f = *state;
	struct rec_config c = { .version = IPC_PROTO_VERSION, .retry_ms = 10000,
				.max_attempts = 5, .min_free = UINT64_C(1) << 62,
				.log_level = LOG_LVL_NOTICE, .boot_id = 1, .dlq_topic = "$DLQ",
				.sync = 1 };
	char path[300];
	struct ipc_msg m;
	uint64_t was;

	enc_config(&f->w, &c);
	rec(f, IPC_CONFIG, -1);
	batch(f);
	log_to_file(f, path, sizeof(path));
	publish_s(f, 1, 1, "1");
	batch(f);
	get(f->master, &m, IPC_FULL);
	ipc_msg_clear(&m);
	was = free_now(f);
	assert_true(full_line(path, "min_free_space 4611686018427387904 bytes") + (64u << 20) > was);
}

/* Without a floor (min_free_space 0), the free space stated is fresh,
 * not a figure that is never refreshed. */
static void
test_full_log_states_fresh_free_space(void **state)
{
	struct fx *f = *state;
	unsigned long long stated;
	char path[300], limit[64];
	struct ipc_msg m;
	uint64_t was;

	config(f, 10000, 5, TD_MSG_HEADER + 1);
	log_to_file(f, path, sizeof(path));
	publish_s(f, 1, 1, "1");
	publish_s(f, 2, 1, "2");
	batch(f);
	get(f->master, &m, IPC_FULL);
	ipc_msg_clear(&m);
	was = free_now(f);
	snprintf(limit, sizeof(limit), "max_topic_size %d bytes", TD_MSG_HEADER + 1);
	stated = full_line(path, limit);
	assert_true(stated > 0);
	assert_true(stated + (64u << 20) > was && stated < was + (64u << 20));
}

static void
test_retained(void **state)
{
	struct fx *f = *state;
	int s;

	publish(f, 1, 1, PF_RETAIN, "", 0, "last", 4);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	s = attach(f, "m/ret", MODE_MQTT, 1, 5, AF_RETAINED, 2);
	batch(f);
	expect_done(f, 2, ST_OK, 2);
	/* Sent as retained, and published with RETAIN (Retain As Published). */
	expect_deliver(s, 1, 1, DF_RETAIN | DF_PUBRETAIN, "last");
	publish_s(f, 3, 1, "new");
	batch(f);
	expect_deliver(s, 2, 1, 0, "new");
	close(s);
}

static void
test_large_payload(void **state)
{
	/* Alone in its datagram and cached; read back from the store; over
	 * IPC_MAX_INLINE, by memfd both ways and not cached. */
	static const size_t sizes[] = { 64 * 1024, 100 * 1024, 200 * 1024 };
	struct fx *f = *state;
	int s = attach(f, "m/big", MODE_MQTT, 1, 5, 0, 1);

	for (uint64_t i = 0; i < 3; i++) {
		size_t n = sizes[i];
		char *big = xmalloc(n + 1);

		for (size_t k = 0; k < n; k++)
			big[k] = (char)('a' + (k * 7 + i) % 26);
		big[n] = '\0';
		publish_s(f, 2 + i, 1, big);
		batch(f);
		if (i == 1)
			cache_clear(&f->td);
		expect_deliver(s, i + 1, 1, 0, big);
		free(big);
	}
	close(s);
}

/* A record the master may not send ends the process with status 1. */
static void
violation(struct fx *f, uint16_t type, int with_fd)
{
	pid_t pid;
	int status, sv[2] = { -1, -1 };

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == 0) {
		log_init("test", LOG_LVL_ERR, 0, NULL);	/* quiet */
		if (with_fd)
			socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
		put_u64(&f->w, 1);
		rec(f, type, sv[0]);
		_exit(0);
	}
	assert_int_not_equal(pid, -1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
}

static void
test_violations(void **state)
{
	struct fx *f = *state;

	violation(f, IPC_READY, 0);		/* not from the master */
	violation(f, 999, 0);			/* unknown */
	violation(f, IPC_PUBLISH, 0);		/* does not decode */
	violation(f, IPC_ATTACH, 0);		/* without its fd */
	violation(f, IPC_DLQ_DONE, 1);		/* with an fd */
}

/* The next record to the master, which must be an IDLE; copy: the
 * payload of the retained message's copy it carries (QoS 1), or NULL. */
static void
expect_idle_copy(struct fx *f, uint8_t flags, uint64_t rx, const char *want_subs,
    const char *copy)
{
	struct ipc_msg m;
	struct rec_idle r;
	struct rec_deliver d;
	const char *key;
	size_t pos = 0;
	bool backlog;
	char subs[256] = "";

	get(f->master, &m, IPC_IDLE);
	assert_int_equal(dec_idle(m.body, m.len, &r), 0);
	assert_int_equal(r.flags, flags);
	assert_int_equal(r.rx, rx);
	assert_int_equal(r.next_seq, f->td.next_seq);
	while (idle_next_sub(&r, &pos, &key, &backlog))
		snprintf(subs + strlen(subs), sizeof(subs) - strlen(subs), "%s%s%s",
		    subs[0] ? " " : "", key, backlog ? "+" : "");
	assert_string_equal(subs, want_subs);
	assert_int_equal(dec_idle_copy(&r, &d), copy != NULL ? 0 : -1);
	if (copy != NULL) {
		assert_true(flags & IDLE_RETAINED_COPY);
		assert_int_equal(d.payload_len, strlen(copy));
		assert_memory_equal(d.payload, copy, d.payload_len);
		assert_int_equal(d.qos, 1);
		assert_int_equal(d.flags, DF_RETAIN | DF_PUBRETAIN);
		assert_int_equal(d.seq, f->td.next_seq - 1);
	}
	ipc_msg_clear(&m);
}

static void
expect_idle(struct fx *f, uint8_t flags, uint64_t rx, const char *want_subs)
{
	expect_idle_copy(f, flags, rx, want_subs, NULL);
}

static void
drain_master(struct fx *f)
{
	struct ipc_msg m;

	while (ipc_recv(f->master, rd(f->master), &m) == 1)
		ipc_msg_clear(&m);
}

/* Quiet only once every online subscriber has nothing more to get; then
 * IDLE, once per record received.  The last one, after STOP, lists every
 * subscriber, with a backlog mark (+) for one that has messages waiting. */
static void
test_idle_lists_who_has_a_backlog(void **state)
{
	struct fx *f = *state;
	struct rec_attach off = { .req = 2, .subkey = "m/off", .mode = MODE_MQTT, .qos = 1,
				  .window = 10 };
	int s = attach(f, "m/on", MODE_MQTT, 1, 10, 0, 1);

	enc_attach(&f->w, &off);
	rec(f, IPC_ATTACH, -1);
	publish_s(f, 3, 1, "one");
	publish_s(f, 4, 1, "two");
	batch(f);
	drain_master(f);
	expect_deliver(s, 1, 1, 0, "one");
	expect_deliver(s, 2, 1, 0, "two");
	idle_tick(&f->td);
	expect_nothing(f->master);		/* two deliveries unanswered */
	ack(f, "m/on", 1, ACK_PUBACK);
	ack(f, "m/on", 2, ACK_PUBACK);
	batch(f);
	/* CONFIG, 2 ATTACH, 2 PUBLISH, 2 ACK: quiet at the end of the batch */
	expect_idle(f, 0, 7, "");
	idle_tick(&f->td);
	expect_nothing(f->master);		/* said once */
	stop(f, 0);
	batch(f);
	expect_idle(f, IDLE_FINAL, 8, "m/off+ m/on");
	close(s);
}

static void
on_tick_unused(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* The tick has nothing to do once IDLE was said for the last record, the
 * deliveries are answered and the stats sent: it may sleep.  A record
 * wakes it as it arrives (a pass of the loop may last while the master
 * keeps the channel full); stats to send give it work again. */
static void
test_tick_sleeps_when_idle(void **state)
{
	struct fx *f = *state;
	int s = attach(f, "m/on", MODE_MQTT, 1, 10, 0, 1);

	assert_non_null(f->td.tick = evtimer_new(f->td.base, on_tick_unused, NULL));

	publish_s(f, 3, 1, "one");
	batch(f);
	drain_master(f);
	expect_deliver(s, 1, 1, 0, "one");
	stats_tick(&f->td);
	assert_true(stats_tick_needed(&f->td));	/* the delivery is unanswered */
	ack(f, "m/on", 1, ACK_PUBACK);
	batch(f);
	stats_tick(&f->td);
	drain_master(f);
	assert_false(stats_tick_needed(&f->td));
	f->td.tick_asleep = true;		/* as on_tick leaves it */
	publish_s(f, 4, 1, "two");
	assert_true(stats_tick_needed(&f->td));	/* a record since the IDLE */
	assert_false(f->td.tick_asleep);
	assert_true(evtimer_pending(f->td.tick, NULL));
	batch(f);
	expect_deliver(s, 2, 1, 0, "two");
	ack(f, "m/on", 2, ACK_PUBACK);
	batch(f);
	drain_master(f);
	assert_true(stats_tick_needed(&f->td));	/* stats to send */
	stats_tick(&f->td);
	drain_master(f);
	assert_false(stats_tick_needed(&f->td));
	event_free(f->td.tick);
	f->td.tick = NULL;
	close(s);
}

/* STOP: what came before is applied and answered, then the last IDLE;
 * the store is closed lazily (its journal stays). */
static void
test_stop_answers_then_says_idle(void **state)
{
	struct fx *f = *state;

	publish(f, 2, 1, PF_RETAIN, "", 0, "kept", 4);
	stop(f, 0);
	batch(f);
	expect_done(f, 2, ST_OK, 1);
	expect_idle_copy(f, IDLE_FINAL | IDLE_RETAINED | IDLE_RETAINED_COPY, 3, "", "kept");
	expect_nothing(f->master);
	assert_true(f->td.went_idle);
	batch(f);				/* the loop ends with one more */
	expect_nothing(f->master);
}

/* A retained message larger than IDLE_COPY_MAX is not copied into the
 * last IDLE: the master starts the topic to send it. */
static void
test_stop_large_retained_not_copied(void **state)
{
	struct fx *f = *state;
	char big[IDLE_COPY_MAX + 1];

	memset(big, 'x', sizeof(big));
	publish(f, 2, 1, PF_RETAIN, "", 0, big, sizeof(big));
	stop(f, 0);
	batch(f);
	expect_done(f, 2, ST_OK, 1);
	expect_idle(f, IDLE_FINAL | IDLE_RETAINED, 3, "");
	expect_nothing(f->master);
}

/* STOP with STOP_CHECKPOINT (the broker is stopping): the same last
 * IDLE, and the store is closed with a checkpoint. */
static void
test_stop_for_shutdown_checkpoints(void **state)
{
	struct fx *f = *state;

	publish(f, 2, 1, PF_RETAIN, "", 0, "one", 3);
	stop(f, STOP_CHECKPOINT);
	batch(f);
	expect_done(f, 2, ST_OK, 1);
	expect_idle_copy(f, IDLE_FINAL | IDLE_RETAINED | IDLE_RETAINED_COPY, 3, "", "one");
	expect_nothing(f->master);
	assert_false(f->td.went_idle);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_json_one_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mqtt_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_deliveries_by_ring_only_at_qos_1_and_2,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_connection_attaches_again, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reattach_resends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reattach_resends_in_order_past_a_pubrec_not_yet_durable,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_letter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_letter_asked_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_retry_park, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_pubrel_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsub, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_log_states_min_free_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_log_states_fresh_free_space, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_violations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_lists_who_has_a_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_for_shutdown_checkpoints, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_large_retained_not_copied, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_answers_then_says_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tick_sleeps_when_idle, setup, teardown),
	};

	setproctitle_init(argc, argv, environ);	/* stats_tick sets the title */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
