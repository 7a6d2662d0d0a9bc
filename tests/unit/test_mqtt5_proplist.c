/* Unit tests of MQTT 5.0 property lists as the broker uses them: reading
 * values, building lists to encode, and the packed application
 * properties kept with a message in a topic's log. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "mqtt5_test.h"

/* A PUBLISH to "t" with Payload Format Indicator 1, User Property a=1,
 * Message Expiry Interval 10, User Property b=2, Subscription
 * Identifiers 3 and 4, Correlation Data 00 ff, Content Type "ct". */
static const uint8_t publish_props[] = {
	0x30, 0x27, 0x00, 0x01, 't', 0x23,
	0x01, 0x01, 0x26, 0x00, 0x01, 'a', 0x00, 0x01, '1',
	0x02, 0x00, 0x00, 0x00, 0x0a, 0x26, 0x00, 0x01, 'b', 0x00, 0x01, '2',
	0x0b, 0x03, 0x0b, 0x04, 0x09, 0x00, 0x02, 0x00, 0xff,
	0x03, 0x00, 0x02, 'c', 't',
};

static void
test_accessors(void **state)
{
	const struct mqtt_props *ps;
	const struct mqtt_prop *up;
	struct mqtt_packet p;
	struct mqtt_str s;
	uint32_t v;
	size_t i = 0;
	char *d;

	(void)state;
	decode_ok5(publish_props, sizeof(publish_props), &p);
	ps = &p.u.publish.props;
	assert_int_equal(ps->n, 8);
	up = mqtt_props_find(ps, MQTT_PROP_USER);
	expect_str(&up->name, "a");
	/* User Properties in their order. */
	up = mqtt_props_next(ps, MQTT_PROP_USER, &i);
	expect_str(&up->str, "1");
	up = mqtt_props_next(ps, MQTT_PROP_USER, &i);
	expect_str(&up->name, "b");
	expect_str(&up->str, "2");
	assert_null(mqtt_props_next(ps, MQTT_PROP_USER, &i));
	assert_int_equal(mqtt_props_count(ps, MQTT_PROP_USER), 2);
	assert_int_equal(mqtt_props_count(ps, MQTT_PROP_SUBSCRIPTION_ID), 2);
	assert_int_equal(mqtt_props_count(ps, MQTT_PROP_TOPIC_ALIAS), 0);
	assert_true(mqtt_props_get_u32(ps, MQTT_PROP_PAYLOAD_FORMAT, &v));
	assert_int_equal(v, 1);
	assert_true(mqtt_props_get_u32(ps, MQTT_PROP_MESSAGE_EXPIRY, &v));
	assert_int_equal(v, 10);
	assert_true(mqtt_props_get_u32(ps, MQTT_PROP_SUBSCRIPTION_ID, &v));
	assert_int_equal(v, 3);
	v = 77;
	assert_false(mqtt_props_get_u32(ps, MQTT_PROP_TOPIC_ALIAS, &v));
	assert_false(mqtt_props_get_u32(ps, MQTT_PROP_CONTENT_TYPE, &v));
	assert_false(mqtt_props_get_u32(ps, 0x04, &v));
	assert_int_equal(v, 77);
	assert_true(mqtt_props_get_string(ps, MQTT_PROP_CONTENT_TYPE, &s));
	expect_str(&s, "ct");
	assert_true(mqtt_props_get_string(ps, MQTT_PROP_CORRELATION_DATA, &s));
	assert_int_equal(s.len, 2);
	assert_memory_equal(s.p, "\0\xff", 2);
	assert_false(mqtt_props_get_string(ps, MQTT_PROP_USER, &s));
	assert_false(mqtt_props_get_string(ps, MQTT_PROP_PAYLOAD_FORMAT, &s));
	d = mqtt_props_dup_string(ps, MQTT_PROP_CONTENT_TYPE);
	assert_string_equal(d, "ct");
	free(d);
	assert_null(mqtt_props_dup_string(ps, MQTT_PROP_CORRELATION_DATA));
	assert_null(mqtt_props_dup_string(ps, MQTT_PROP_RESPONSE_TOPIC));
	mqtt_packet_free(&p);
	assert_int_equal(p.u.publish.props.n, 0);
	assert_null(p.u.publish.props.v);
}

static void
test_builders(void **state)
{
	struct mqtt_props ps = { 0 };

	(void)state;
	assert_int_equal(mqtt_props_add_u32(&ps, MQTT_PROP_CONTENT_TYPE, 1),
	    -1);
	assert_int_equal(mqtt_props_add_string(&ps, MQTT_PROP_PAYLOAD_FORMAT,
	    "x"), -1);
	assert_int_equal(mqtt_props_add_string(&ps, MQTT_PROP_CONTENT_TYPE,
	    NULL), -1);
	assert_int_equal(mqtt_props_add_binary(&ps, MQTT_PROP_CONTENT_TYPE,
	    "x", 1), -1);
	assert_int_equal(mqtt_props_add_binary(&ps,
	    MQTT_PROP_CORRELATION_DATA, NULL, 1), -1);
	assert_int_equal(mqtt_props_add_user(&ps, NULL, "v"), -1);
	assert_int_equal(mqtt_props_add_user(&ps, "k", NULL), -1);
	assert_int_equal(mqtt_props_add(&ps, &(struct mqtt_prop){ .id = 4 }),
	    -1);
	assert_int_equal(ps.n, 0);
	assert_int_equal(mqtt_props_add_u32(&ps, MQTT_PROP_PAYLOAD_FORMAT, 1),
	    0);
	assert_int_equal(mqtt_props_add_user(&ps, "a", "1"), 0);
	assert_int_equal(mqtt_props_add_user(&ps, "b", "2"), 0);
	assert_int_equal(mqtt_props_add_u32(&ps, MQTT_PROP_MESSAGE_EXPIRY, 5),
	    0);
	assert_int_equal(mqtt_props_add_binary(&ps,
	    MQTT_PROP_CORRELATION_DATA, NULL, 0), 0);
	assert_int_equal(ps.n, 5);
	mqtt_props_del(&ps, MQTT_PROP_USER);
	mqtt_props_del(&ps, MQTT_PROP_TOPIC_ALIAS);
	assert_int_equal(ps.n, 3);
	assert_int_equal(ps.v[0].id, MQTT_PROP_PAYLOAD_FORMAT);
	assert_int_equal(ps.v[1].id, MQTT_PROP_MESSAGE_EXPIRY);
	assert_int_equal(ps.v[1].num, 5);
	assert_int_equal(ps.v[2].id, MQTT_PROP_CORRELATION_DATA);
	mqtt_props_free(&ps);
	assert_int_equal(ps.n, 0);
	assert_null(ps.v);
}

/* A PUBLISH at level 5 with one property, which the check refuses. */
static void
expect_refused(const struct mqtt_prop *prop, const char *why)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH, .level = L5 };
	struct wbuf w;

	p.u.publish.topic = "t";
	assert_int_equal(mqtt_props_add(&p.u.publish.props, prop), 0);
	wbuf_init(&w);
	REFUSED(mqtt_encode(&w, &p));
	assert_string_equal(mqtt_check(&p), why);
	wbuf_free(&w);
	mqtt_props_free(&p.u.publish.props);
}

/* What a caller can build but the check refuses. */
static void
test_built_values(void **state)
{
	struct mqtt_packet p = { .type = MQTT_CONNACK, .level = L5 };
	char *big;

	(void)state;
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_PAYLOAD_FORMAT,
	    .num = 256 }, "property value out of range");
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_TOPIC_ALIAS,
	    .num = 70000 }, "property value out of range");
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_SUBSCRIPTION_ID,
	    .num = 268435456 }, "property value out of range");
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_PAYLOAD_FORMAT,
	    .str = { "x", 1 } }, "property value of the wrong type");
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_CONTENT_TYPE,
	    .num = 1, .str = { "x", 1 } }, "property value of the wrong type");
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_CONTENT_TYPE,
	    .name = { "k", 1 }, .str = { "x", 1 } },
	    "property value of the wrong type");
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_CONTENT_TYPE,
	    .str = { NULL, 3 } }, "missing property value");
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_USER,
	    .name = { "\xc0\xaf", 2 }, .str = { "v", 1 } },
	    "string is not well-formed UTF-8");
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_CONTENT_TYPE,
	    .str = { "a\0b", 3 } }, "string contains U+0000");
	big = calloc(1, 65536);
	assert_non_null(big);
	expect_refused(&(struct mqtt_prop){ .id = MQTT_PROP_CORRELATION_DATA,
	    .str = { big, 65536 } }, "property value longer than 65535 bytes");
	free(big);
	/* A list that says it has entries but has none. */
	p.u.connack.props.n = 1;
	assert_string_equal(mqtt_check(&p), "missing property list");
	p.u.connack.props.n = 0;
	mqtt_props_add_u32(&p.u.connack.props, MQTT_PROP_TOPIC_ALIAS, 1);
	assert_string_equal(mqtt_check(&p),
	    "Topic Alias in a packet that cannot carry it");
	mqtt_props_free(&p.u.connack.props);
	assert_null(mqtt_check(&p));
}

/* publish_props with a Topic Alias, a Response Topic, and the User
 * Properties around them; and its application properties packed. */
static const uint8_t publish_all[] = {
	0x30, 0x2c, 0x00, 0x01, 't', 0x28,
	0x23, 0x00, 0x01, 0x01, 0x01, 0x0b, 0x07,
	0x26, 0x00, 0x01, 'a', 0x00, 0x01, '1', 0x02, 0x00, 0x00, 0x00, 0x3c,
	0x03, 0x00, 0x02, 'c', 't', 0x08, 0x00, 0x01, 'r',
	0x09, 0x00, 0x02, 0x00, 0xff, 0x26, 0x00, 0x01, 'b', 0x00, 0x01, '2',
};
static const uint8_t packed_all[] = {
	0x01, 0x01, 0x26, 0x00, 0x01, 'a', 0x00, 0x01, '1',
	0x02, 0x00, 0x00, 0x00, 0x3c, 0x03, 0x00, 0x02, 'c', 't',
	0x08, 0x00, 0x01, 'r', 0x09, 0x00, 0x02, 0x00, 0xff,
	0x26, 0x00, 0x01, 'b', 0x00, 0x01, '2',
};

/* Read back from a store and delivered: the Message Expiry Interval set
 * to what is left, a Subscription Identifier added. */
static void
deliver(struct mqtt_props *ps)
{
	struct mqtt_publish pub = { .topic = "t" };
	struct mqtt_packet p;
	struct wbuf w;
	size_t i = 0;

	mqtt_props_del(ps, MQTT_PROP_MESSAGE_EXPIRY);
	assert_int_equal(mqtt_props_add_u32(ps, MQTT_PROP_MESSAGE_EXPIRY, 30),
	    0);
	assert_int_equal(mqtt_props_add_u32(ps, MQTT_PROP_SUBSCRIPTION_ID, 9),
	    0);
	pub.props = *ps;
	wbuf_init(&w);
	assert_int_equal(mqtt_enc_publish(&w, L5, &pub), 0);
	decode_ok5(w.data, w.len, &p);
	assert_int_equal(p.u.publish.props.n, 8);
	expect_str(&mqtt_props_next(&p.u.publish.props, MQTT_PROP_USER,
	    &i)->name, "a");
	expect_str(&mqtt_props_next(&p.u.publish.props, MQTT_PROP_USER,
	    &i)->name, "b");
	assert_int_equal(p.u.publish.props.v[6].num, 30);
	assert_int_equal(p.u.publish.props.v[7].num, 9);
	mqtt_packet_free(&p);
	wbuf_free(&w);
}

static void
test_pack(void **state)
{
	struct mqtt_props ps;
	struct mqtt_packet p;
	const char *why;
	struct wbuf w;

	(void)state;
	decode_ok5(publish_all, sizeof(publish_all), &p);
	wbuf_init(&w);
	assert_int_equal(mqtt_props_pack(&w, &p.u.publish.props), 0);
	expect_wbuf(&w, packed_all, sizeof(packed_all));
	mqtt_packet_free(&p);
	assert_int_equal(mqtt_props_unpack(w.data, w.len, &ps, &why), 0);
	assert_null(why);
	assert_int_equal(ps.n, 7);
	assert_true(mqtt_prop_is_application(ps.v[0].id));
	assert_ptr_equal(ps.v[6].name.p, (const char *)w.data + w.len - 4);
	deliver(&ps);
	mqtt_props_free(&ps);
	/* No properties: nothing to keep. */
	wbuf_reset(&w);
	assert_int_equal(mqtt_props_pack(&w, &ps), 0);
	assert_int_equal(w.len, 0);
	assert_int_equal(mqtt_props_unpack(NULL, 0, &ps, &why), 0);
	assert_int_equal(ps.n, 0);
	mqtt_props_free(&ps);
	wbuf_free(&w);
}

static void
test_pack_will(void **state)
{
	struct mqtt_props ps = { 0 };
	struct wbuf w;

	(void)state;
	mqtt_props_add_u32(&ps, MQTT_PROP_WILL_DELAY, 5);
	mqtt_props_add_u32(&ps, MQTT_PROP_PAYLOAD_FORMAT, 1);
	wbuf_init(&w);
	assert_int_equal(mqtt_props_pack(&w, &ps), 0);
	expect_wbuf(&w, B(0x01, 0x01));
	/* Lists that break the rules are not packed. */
	mqtt_props_add_u32(&ps, MQTT_PROP_PAYLOAD_FORMAT, 0);
	REFUSED(mqtt_props_pack(&w, &ps));
	mqtt_props_del(&ps, MQTT_PROP_PAYLOAD_FORMAT);
	mqtt_props_add_u32(&ps, MQTT_PROP_PAYLOAD_FORMAT, 2);
	REFUSED(mqtt_props_pack(&w, &ps));
	mqtt_props_free(&ps);
	wbuf_free(&w);
}

/* Packed bytes that do not read back: they come from disk. */
static void
expect_unpack(int rc, const char *why, const uint8_t *b, size_t n)
{
	struct mqtt_props ps;
	const char *got;

	assert_int_equal(mqtt_props_unpack(b, n, &ps, &got), rc);
	assert_string_equal(got, why);
	mqtt_props_free(&ps);
}

static void
test_unpack_bad(void **state)
{
	(void)state;
	expect_unpack(MQTT_E_MALFORMED, "not an application property",
	    B(0x01, 0x01, 0x23, 0x00, 0x01));
	expect_unpack(MQTT_E_MALFORMED, "not an application property",
	    B(0x0b, 0x01));
	expect_unpack(MQTT_E_MALFORMED, "not an application property",
	    B(0x18, 0x00, 0x00, 0x00, 0x01));
	expect_unpack(MQTT_E_MALFORMED, "not an application property",
	    B(0x1f, 0x00, 0x01, 'r'));
	expect_unpack(MQTT_E_PROTOCOL, "Payload Format Indicator more than "
	    "once", B(0x01, 0x01, 0x01, 0x00));
	expect_unpack(MQTT_E_PROTOCOL, "Payload Format Indicator other than 0 "
	    "or 1", B(0x01, 0x02));
	expect_unpack(MQTT_E_PROTOCOL, "Response Topic is not a topic name",
	    B(0x08, 0x00, 0x01, '#'));
	expect_unpack(MQTT_E_MALFORMED, "truncated property",
	    B(0x02, 0x00, 0x00));
	expect_unpack(MQTT_E_MALFORMED, "truncated property",
	    B(0x26, 0x00, 0x01, 'k', 0x00));
	expect_unpack(MQTT_E_MALFORMED, "unknown property identifier",
	    B(0x00));
	expect_unpack(MQTT_E_MALFORMED, "over-long property identifier",
	    B(0x81, 0x00));
	expect_unpack(MQTT_E_MALFORMED, "string is not well-formed UTF-8",
	    B(0x03, 0x00, 0x01, 0xff));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_built_values),
		cmocka_unit_test(test_pack),
		cmocka_unit_test(test_pack_will),
		cmocka_unit_test(test_unpack_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
