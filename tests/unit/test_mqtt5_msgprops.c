/* Unit tests of a message's MQTT 5.0 properties between a PUBLISH, the
 * topic's log and a delivery (broker/mqtt/msgprops.c): what is kept, the
 * Message Expiry Interval as an absolute time and back as what is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "mqtt/mqtt_int.h"

/* The application properties are kept in order, but the Message Expiry
 * Interval (an absolute time instead) and what only the sender uses
 * (Topic Alias). */
static void
test_in(void **state)
{
	struct mqtt_props in = { 0 }, back = { 0 };
	struct wbuf blob;
	uint64_t expiry;
	int64_t before = wall_ms();
	const char *why;

	(void)state;
	assert_int_equal(mqtt_props_add_u32(&in, MQTT_PROP_PAYLOAD_FORMAT, 1), 0);
	assert_int_equal(mqtt_props_add_u32(&in, MQTT_PROP_MESSAGE_EXPIRY, 10), 0);
	assert_int_equal(mqtt_props_add_u32(&in, MQTT_PROP_TOPIC_ALIAS, 3), 0);
	assert_int_equal(mqtt_props_add_string(&in, MQTT_PROP_CONTENT_TYPE, "text/plain"), 0);
	assert_int_equal(mqtt_props_add_user(&in, "k", "v"), 0);
	wbuf_init(&blob);
	assert_int_equal(msg_props_in(&in, &blob, &expiry), 0);
	assert_true(expiry >= (uint64_t)before + 10000 && expiry <= (uint64_t)wall_ms() + 10000);
	assert_int_equal(mqtt_props_unpack(blob.data, blob.len, &back, &why), 0);
	assert_int_equal(back.n, 3);
	assert_int_equal(back.v[0].id, MQTT_PROP_PAYLOAD_FORMAT);
	assert_int_equal(back.v[1].id, MQTT_PROP_CONTENT_TYPE);
	assert_int_equal(back.v[2].id, MQTT_PROP_USER);
	mqtt_props_free(&back);
	wbuf_free(&blob);

	mqtt_props_free(&in);			/* none: an empty blob, no expiry */
	wbuf_init(&blob);
	assert_int_equal(msg_props_in(&in, &blob, &expiry), 0);
	assert_int_equal(blob.len, 0);
	assert_int_equal(expiry, 0);
	wbuf_free(&blob);

	/* An interval of 0 is none, as in mosquitto. */
	assert_int_equal(mqtt_props_add_u32(&in, MQTT_PROP_MESSAGE_EXPIRY, 0), 0);
	wbuf_init(&blob);
	assert_int_equal(msg_props_in(&in, &blob, &expiry), 0);
	assert_int_equal(blob.len, 0);
	assert_int_equal(expiry, 0);
	wbuf_free(&blob);
	mqtt_props_free(&in);
}

/* A delivery: the kept properties and the seconds left, rounded up (0
 * once expired); unreadable properties are refused. */
static void
test_out(void **state)
{
	struct mqtt_props in = { 0 }, out = { 0 };
	struct wbuf blob;
	uint64_t expiry;
	uint32_t left;
	const char *why;
	struct rec_deliver d = { .topic = "t", .origin = "", .share = "" };

	(void)state;
	assert_int_equal(mqtt_props_add_string(&in, MQTT_PROP_RESPONSE_TOPIC, "r/t"), 0);
	wbuf_init(&blob);
	assert_int_equal(msg_props_in(&in, &blob, &expiry), 0);
	d.props = blob.data;
	d.props_len = blob.len;
	assert_int_equal(msg_props_out(&d, &out, &why), 0);	/* no expiry */
	assert_int_equal(out.n, 1);
	assert_false(mqtt_props_get_u32(&out, MQTT_PROP_MESSAGE_EXPIRY, &left));
	mqtt_props_free(&out);

	d.expiry_ms = (uint64_t)wall_ms() + 5500;
	assert_false(delivery_expired(&d));
	assert_int_equal(msg_props_out(&d, &out, &why), 0);
	assert_true(mqtt_props_get_u32(&out, MQTT_PROP_MESSAGE_EXPIRY, &left));
	assert_int_equal(left, 6);
	mqtt_props_free(&out);

	/* Less than a second left: 1 s, never 0 (with room for a busy
	 * machine: a margin of 1 ms ran out before the clock was read). */
	d.expiry_ms = (uint64_t)wall_ms() + 500;
	assert_int_equal(msg_props_out(&d, &out, &why), 0);
	assert_true(mqtt_props_get_u32(&out, MQTT_PROP_MESSAGE_EXPIRY, &left));
	assert_int_equal(left, 1);
	mqtt_props_free(&out);

	d.expiry_ms = (uint64_t)wall_ms() - 1;	/* expired, and sent again: 0 left */
	assert_true(delivery_expired(&d));
	assert_int_equal(msg_props_out(&d, &out, &why), 0);
	assert_true(mqtt_props_get_u32(&out, MQTT_PROP_MESSAGE_EXPIRY, &left));
	assert_int_equal(left, 0);
	mqtt_props_free(&out);

	d.expiry_ms = 0;
	d.props = (const uint8_t *)"\x23\x00";	/* a Topic Alias, cut short */
	d.props_len = 2;
	assert_int_equal(msg_props_out(&d, &out, &why), -1);
	assert_non_null(why);
	mqtt_props_free(&out);
	mqtt_props_free(&in);
	wbuf_free(&blob);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in),
		cmocka_unit_test(test_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
