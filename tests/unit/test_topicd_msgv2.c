/* The MQTT 5 side of a topic's messages: properties, expiry and origin
 * kept in the log (message records of version 2) and in the retained
 * message, sent with every delivery; expired messages are not delivered;
 * and a store written before version 2 reads as it did. */
#include "topicd_fixture.h"

/* A store of topic "fx/old" as the previous release wrote it (message
 * records of version 1): the journal segment of a topicd that appended
 * "one" (QoS 1), {"n":2} (QoS 2, JSON) and "kept" (QoS 1, retained),
 * staged "staged" for owner "m/pub" pubid 7, and has subscriber
 * "m/keeper" at the first message. */
static const uint8_t v1_journal[] = {
	0x4b, 0x56, 0x4a, 0x31, 0x2e, 0x00, 0x00, 0x00, 0x23, 0x0c, 0x2f, 0x0b,
	0x01, 0x01, 0x00, 0x00, 0x00, 0x49, 0x24, 0x00, 0x00, 0x00, 0x01, 0x06,
	0x00, 0x00, 0x00, 0x66, 0x78, 0x2f, 0x6f, 0x6c, 0x64, 0x00, 0x01, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4b, 0x56,
	0x4a, 0x31, 0x15, 0x01, 0x00, 0x00, 0x7e, 0xb1, 0xf6, 0xe0, 0x01, 0x09,
	0x00, 0x00, 0x00, 0x4d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x11, 0x00, 0x00, 0x00, 0x00, 0x01, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x6f, 0x6e, 0x65, 0x01, 0x09, 0x00,
	0x00, 0x00, 0x4d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x15,
	0x00, 0x00, 0x00, 0x02, 0x02, 0xd0, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x07, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x32, 0x7d,
	0x01, 0x09, 0x00, 0x00, 0x00, 0x4d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x03, 0x12, 0x00, 0x00, 0x00, 0x01, 0x01, 0xb8, 0x0b, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x6b, 0x65, 0x70, 0x74,
	0x01, 0x01, 0x00, 0x00, 0x00, 0x52, 0x1a, 0x00, 0x00, 0x00, 0x03, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0xb8, 0x0b, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x6b, 0x65, 0x70, 0x74,
	0x01, 0x0b, 0x00, 0x00, 0x00, 0x53, 0x6d, 0x2f, 0x70, 0x75, 0x62, 0x00,
	0x00, 0x00, 0x00, 0x07, 0x14, 0x00, 0x00, 0x00, 0x00, 0x02, 0xa0, 0x0f,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x73, 0x74,
	0x61, 0x67, 0x65, 0x64, 0x01, 0x09, 0x00, 0x00, 0x00, 0x43, 0x6d, 0x2f,
	0x6b, 0x65, 0x65, 0x70, 0x65, 0x72, 0x1b, 0x00, 0x00, 0x00, 0x02, 0x01,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x49, 0x24, 0x00, 0x00, 0x00, 0x01,
	0x06, 0x00, 0x00, 0x00, 0x66, 0x78, 0x2f, 0x6f, 0x6c, 0x64, 0x00, 0x04,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
};

/* Content Type "text/x", User Property ("k", "v"). */
static const uint8_t props[] = { 0x03, 0x00, 0x06, 't', 'e', 'x', 't', '/', 'x',
				 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v' };

static void
publish_v5(struct fx *f, uint64_t req, uint8_t flags, const char *payload, uint64_t expiry_ms)
{
	struct rec_publish p = { .req = req, .owner = "", .qos = 1, .flags = flags,
				 .time_ms = 1000, .payload = (const uint8_t *)payload,
				 .payload_len = strlen(payload), .props = props,
				 .props_len = sizeof(props), .expiry_ms = expiry_ms,
				 .origin = "pub-1" };

	enc_publish(&f->w, &p);
	rec(f, IPC_PUBLISH, -1);
}

/* The next DELIVER on fd, decoded into *d (its strings point into *m,
 * which the caller clears). */
static void
next_deliver(int fd, struct ipc_msg *m, struct rec_deliver *d)
{
	get(fd, m, IPC_DELIVER);
	assert_int_equal(dec_deliver(m->body, m->len, d), 0);
}

static void
check_old_message(struct topicd *td, uint64_t seq, uint8_t qos, uint8_t flags,
    const char *payload, uint64_t time_ms)
{
	struct msg m;

	assert_int_equal(log_get(td, seq, &m), 1);
	assert_int_equal(m.qos, qos);
	assert_int_equal(m.flags, flags);
	assert_true(m.time_ms == time_ms);
	assert_int_equal(m.len, strlen(payload));
	assert_memory_equal(m.payload, payload, m.len);
	assert_null(m.props);
	assert_int_equal(m.props_len, 0);
	assert_true(m.expiry_ms == 0);
	assert_string_equal(m.origin, "");
	msg_release(&m);
}

static void
write_file(const char *path, const void *p, size_t n)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, n, fp), n);
	assert_int_equal(fclose(fp), 0);
}

/* A store of the previous release opens, every record reads as it was,
 * and it takes messages of version 2 next to them. */
static void
test_store_of_before_reads(void **state)
{
	struct fx *f = *state;
	struct topicd td;
	char dir[300], path[400];
	struct msg m, got;

	snprintf(dir, sizeof(dir), "%s/old", f->dir);
	snprintf(path, sizeof(path), "%s/topics", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/topics/fx%%2Fold.journal.00000001", dir);
	write_file(path, v1_journal, sizeof(v1_journal));

	topicd_init(&td, "fx/old", dir, false);
	assert_int_equal(topicd_open(&td), 0);
	assert_int_equal(td.next_seq, 4);
	assert_int_equal(td.messages, 3);
	check_old_message(&td, 1, 1, 0, "one", 1000);
	check_old_message(&td, 2, 2, PF_JSON, "{\"n\":2}", 2000);
	check_old_message(&td, 3, 1, PF_RETAIN, "kept", 3000);
	assert_true(td.has_retained);
	assert_int_equal(retain_get(&td, &got), 1);
	assert_memory_equal(got.payload, "kept", 4);
	assert_null(got.props);
	msg_release(&got);
	assert_non_null(sub_find(&td, "m/keeper"));
	assert_int_equal(sub_find(&td, "m/keeper")->cursor, 1);
	assert_int_equal(stage_release(&td, "m/pub", 7), 4);
	check_old_message(&td, 4, 2, 0, "staged", 4000);

	memset(&m, 0, sizeof(m));
	m.qos = 1, m.payload = (const uint8_t *)"new", m.len = 3, m.props = props;
	m.props_len = sizeof(props), m.expiry_ms = 99, m.origin = "c9";
	assert_int_equal(log_append(&td, &m), 5);
	assert_int_equal(dispatch_sync(&td, true), 0);
	topicd_close(&td);

	topicd_init(&td, "fx/old", dir, false);
	assert_int_equal(topicd_open(&td), 0);
	check_old_message(&td, 1, 1, 0, "one", 1000);
	td.cache[5 % td.cache_slots].seq = 0;	/* from the store, not the cache */
	assert_int_equal(log_get(&td, 5, &got), 1);
	assert_memory_equal(got.payload, "new", 3);
	assert_int_equal(got.props_len, sizeof(props));
	assert_memory_equal(got.props, props, sizeof(props));
	assert_true(got.expiry_ms == 99);
	assert_string_equal(got.origin, "c9");
	msg_release(&got);
	topicd_close(&td);
}

/* A message without properties is written as version 1, byte for byte. */
static void
test_plain_message_record_unchanged(void **state)
{
	struct msg m = { .qos = 2, .flags = PF_JSON, .time_ms = 7,
			 .payload = (const uint8_t *)"x", .len = 1 }, d;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	msg_encode(&w, &m);
	assert_int_equal(w.len, 1 + 1 + 8 + 4 + 1);
	assert_int_equal(w.data[0], PF_JSON);
	m.origin = "o";
	wbuf_reset(&w);
	msg_encode(&w, &m);
	assert_int_equal(w.len, 1 + 1 + 8 + 4 + 1 + 4 + 8 + 4 + 2);
	assert_int_equal(msg_decode(w.data, w.len, &d), 0);
	assert_int_equal(d.flags, PF_JSON);
	assert_string_equal(d.origin, "o");
	assert_null(d.props);
	w.len--;
	assert_int_equal(msg_decode(w.data, w.len, &d), -1);
	wbuf_free(&w);
}

/* Properties, expiry, origin and the retain flag it was published with
 * go out with the delivery, live and from the store. */
static void
test_delivery_carries_the_message_v5_side(void **state)
{
	struct fx *f = *state;
	uint64_t expiry = (uint64_t)wall_ms() + 3600 * 1000;
	int s = attach(f, "m/v5", MODE_MQTT, 1, 10, 0, 1);
	struct rec_deliver d;
	struct ipc_msg m;

	publish_v5(f, 2, PF_RETAIN, "hello", expiry);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	expect_done(f, 2, ST_OK, 1);
	next_deliver(s, &m, &d);
	assert_int_equal(d.seq, 1);
	assert_int_equal(d.flags, DF_PUBRETAIN);
	assert_int_equal(d.props_len, sizeof(props));
	assert_memory_equal(d.props, props, sizeof(props));
	assert_true(d.expiry_ms == expiry);
	assert_string_equal(d.origin, "pub-1");
	assert_string_equal(d.share, "");
	assert_memory_equal(d.payload, "hello", 5);
	ipc_msg_clear(&m);
	close(s);

	/* The retained message (its own record) keeps them too. */
	s = attach(f, "m/late", MODE_MQTT, 1, 10, AF_RETAINED, 3);
	batch(f);
	expect_done(f, 3, ST_OK, 2);
	next_deliver(s, &m, &d);
	assert_int_equal(d.flags, DF_RETAIN | DF_PUBRETAIN);
	assert_int_equal(d.props_len, sizeof(props));
	assert_memory_equal(d.props, props, sizeof(props));
	assert_string_equal(d.origin, "pub-1");
	ipc_msg_clear(&m);
	close(s);
}

/* Waits until wall-clock time is past t (a condition, with a deadline). */
static void
wait_past(uint64_t t)
{
	int64_t deadline = mono_ms() + 5000;

	while ((uint64_t)wall_ms() <= t && mono_ms() < deadline)
		usleep(1000);
	assert_true((uint64_t)wall_ms() > t);
}

/* An expired message is passed over (the cursor moves past it) and
 * counted; the next one is delivered.  One that was sent before it
 * expired goes again, as a resend: only the master knows whether it
 * reached the client, which then gets it again (MQTT 4.4). */
static void
test_expired_message_not_delivered(void **state)
{
	struct fx *f = *state;
	uint64_t soon = (uint64_t)wall_ms() + 300;	/* room for a busy machine */
	int s = attach(f, "m/exp", MODE_MQTT, 1, 10, 0, 1);
	struct rec_deliver d;
	struct rec_stats st;
	struct ipc_msg m;

	close(s);			/* its socket fails on the first send */
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	publish_v5(f, 2, 0, "sent", soon);
	batch(f);
	expect_done(f, 2, ST_OK, 1);
	publish_v5(f, 3, 0, "short-lived", soon);	/* offline: the messages wait */
	publish_s(f, 4, 1, "lasting");
	batch(f);
	expect_done(f, 3, ST_OK, 2);
	expect_done(f, 4, ST_OK, 3);
	wait_past(soon);
	s = attach(f, "m/exp", MODE_MQTT, 1, 10, 0, 5);
	batch(f);
	expect_done(f, 5, ST_OK, 1);
	next_deliver(s, &m, &d);
	assert_int_equal(d.seq, 1);
	assert_true(d.flags & DF_DUP);
	assert_memory_equal(d.payload, "sent", 4);
	ipc_msg_clear(&m);
	next_deliver(s, &m, &d);
	assert_int_equal(d.seq, 3);
	assert_memory_equal(d.payload, "lasting", 7);
	ipc_msg_clear(&m);
	expect_nothing(s);
	assert_int_equal(f->td.expired, 1);
	ack(f, "m/exp", 1, ACK_PUBACK);
	ack(f, "m/exp", 3, ACK_PUBACK);
	batch(f);
	assert_int_equal(sub_find(&f->td, "m/exp")->cursor, 4);
	stats_fill(&f->td, &st);
	assert_int_equal(st.expired, 1);
	close(s);
}

/* A retained message that expired is not sent to a new subscriber, and
 * it is removed. */
static void
test_expired_retained_removed(void **state)
{
	struct fx *f = *state;
	uint64_t soon = (uint64_t)wall_ms() + 300;	/* room for a busy machine */
	int s;

	publish_v5(f, 1, PF_RETAIN, "stale", soon);
	batch(f);
	expect_done(f, 1, ST_OK, 1);
	assert_true(f->td.has_retained);
	wait_past(soon);
	s = attach(f, "m/new", MODE_MQTT, 1, 10, AF_RETAINED, 2);
	batch(f);
	expect_done(f, 2, ST_OK, 2);
	expect_nothing(s);
	assert_false(f->td.has_retained);
	assert_int_equal(f->td.expired, 1);
	close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_of_before_reads, setup, teardown),
		cmocka_unit_test(test_plain_message_record_unchanged),
		cmocka_unit_test_setup_teardown(test_delivery_carries_the_message_v5_side,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_message_not_delivered, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expired_retained_removed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
