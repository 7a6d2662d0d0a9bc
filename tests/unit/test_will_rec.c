/* The will record of the master's store (broker/mqtt/will_rec.c): round
 * trips of every field, and the refusal of damaged records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt/will_rec.h"

static const uint8_t payload[] = { 0, 1, 2, 0xff, 'x' };
static const uint8_t props[] = { 0x03, 0x00, 0x04, 't', 'e', 'x', 't' };

static struct will_rec
full(void)
{
	return (struct will_rec){
		.since = 1796600000123ULL, .stays = true, .sent = true,
		.incarnation = 1796500000000ULL,
		.qos = 2, .retain = true,
		.delay_s = 30, .has_expiry = true, .expiry_s = 3600, .topic = "dev/7/status",
		.payload = payload, .len = sizeof(payload), .props = props,
		.props_len = sizeof(props), .origin = "dev-7", .client_id = "dev-7",
		.user = "alice", .listener = "8883 0.0.0.0",
	};
}

static void
assert_same(const struct will_rec *a, const struct will_rec *b)
{
	assert_int_equal(a->since, b->since);
	assert_int_equal(a->stays, b->stays);
	assert_int_equal(a->sent, b->sent);
	assert_int_equal(a->staged, b->staged);
	assert_int_equal(a->incarnation, b->incarnation);
	assert_int_equal(a->qos, b->qos);
	assert_int_equal(a->retain, b->retain);
	assert_int_equal(a->delay_s, b->delay_s);
	assert_int_equal(a->has_expiry, b->has_expiry);
	assert_int_equal(a->expiry_s, b->expiry_s);
	assert_string_equal(a->topic, b->topic);
	assert_int_equal(a->len, b->len);
	if (a->len > 0)
		assert_memory_equal(a->payload, b->payload, a->len);
	assert_int_equal(a->props_len, b->props_len);
	assert_true((a->props == NULL) == (b->props == NULL));
	if (a->props_len > 0)
		assert_memory_equal(a->props, b->props, a->props_len);
	assert_string_equal(a->origin, b->origin);
	assert_string_equal(a->client_id, b->client_id);
	assert_true((a->user == NULL) == (b->user == NULL));
	if (a->user != NULL)
		assert_string_equal(a->user, b->user);
	assert_true((a->listener == NULL) == (b->listener == NULL));
	if (a->listener != NULL)
		assert_string_equal(a->listener, b->listener);
}

static void
round_trip(const struct will_rec *in)
{
	struct wbuf w;
	struct will_rec out;

	wbuf_init(&w);
	will_rec_encode(&w, in);
	assert_int_equal(will_rec_decode(w.data, w.len, &out), 0);
	assert_same(in, &out);
	wbuf_free(&w);
}

static void
test_round_trips(void **state)
{
	struct will_rec r = full();

	(void)state;
	round_trip(&r);
	/* A connection still open at a 3.1.1 broker's death: no delay, no
	 * properties, anonymous, the broker's own auth, an empty payload. */
	r = (struct will_rec){ .topic = "t", .payload = NULL, .len = 0, .origin = "c",
			       .client_id = "c" };
	round_trip(&r);
	r = full();
	r.user = NULL;
	round_trip(&r);
	r = full();
	r.listener = NULL;
	r.since = UINT64_MAX;
	r.incarnation = UINT64_MAX;
	r.delay_s = UINT32_MAX;
	round_trip(&r);
	r = full();
	r.sent = false;
	round_trip(&r);
	r.sent = r.staged = true;		/* a QoS 2 will staged in its topic */
	round_trip(&r);
}

/* Every truncation, a byte more, another version, a QoS of 3, a flag that
 * is neither 0 nor 1, a sent state past 2 (staged) or staged below QoS 2,
 * a string without its NUL: refused. */
static void
test_damaged_records_are_refused(void **state)
{
	struct will_rec r = full(), out;
	struct wbuf w;
	uint8_t *copy;

	(void)state;
	wbuf_init(&w);
	will_rec_encode(&w, &r);
	for (size_t n = 0; n < w.len; n++)
		assert_int_equal(will_rec_decode(w.data, n, &out), -1);
	copy = malloc(w.len + 1);
	assert_non_null(copy);
	memcpy(copy, w.data, w.len);
	copy[w.len] = 0;
	assert_int_equal(will_rec_decode(copy, w.len + 1, &out), -1);
	copy[0] = WILL_RECORD_VERSION + 1;
	assert_int_equal(will_rec_decode(copy, w.len, &out), -1);
	memcpy(copy, w.data, w.len);
	copy[1 + 8 + 1 + 1 + 8] = 3;		/* qos, after version, since, stays, sent,
						 * incarnation */
	assert_int_equal(will_rec_decode(copy, w.len, &out), -1);
	memcpy(copy, w.data, w.len);
	copy[1 + 8] = 2;			/* stays */
	assert_int_equal(will_rec_decode(copy, w.len, &out), -1);
	memcpy(copy, w.data, w.len);
	copy[1 + 8 + 1] = 3;			/* sent */
	assert_int_equal(will_rec_decode(copy, w.len, &out), -1);
	copy[1 + 8 + 1] = 2;			/* staged: only QoS 2 */
	assert_int_equal(will_rec_decode(copy, w.len, &out), 0);
	assert_true(out.sent && out.staged);
	copy[1 + 8 + 1 + 1 + 8] = 1;
	assert_int_equal(will_rec_decode(copy, w.len, &out), -1);
	memcpy(copy, w.data, w.len);
	memcpy(copy, w.data, w.len);
	/* The topic's NUL, after the fixed fields and its length. */
	copy[1 + 8 + 1 + 1 + 8 + 1 + 1 + 4 + 1 + 4 + 4 + strlen(r.topic)] = 'x';
	assert_int_equal(will_rec_decode(copy, w.len, &out), -1);
	memcpy(copy, w.data, w.len);
	assert_int_equal(will_rec_decode(copy, w.len, &out), 0);
	free(copy);
	wbuf_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_damaged_records_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
