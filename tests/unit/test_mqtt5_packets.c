/* Unit tests of the MQTT codec at level 5 (MQTT 5.0): CONNECT, CONNACK,
 * PUBLISH and the acks of a publish, byte for byte and round trip; the
 * other packets are in test_mqtt5_lists.c, properties in
 * test_mqtt5_props.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "mqtt5_test.h"

/* The CONNECT of 3.1.2.12 (flags 0xce, keep alive 10, Session Expiry
 * Interval 10), with a payload: client id "c", a will with a Payload
 * Format Indicator of 1, will topic "a/b", will message "hi", user name
 * "u" and password "p". */
static const uint8_t connect_example[] = {
	0x10, 0x25, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0xce, 0x00, 0x0a,
	0x05, 0x11, 0x00, 0x00, 0x00, 0x0a,
	0x00, 0x01, 'c', 0x02, 0x01, 0x01, S_AB, 0x00, 0x02, 'h', 'i',
	0x00, 0x01, 'u', 0x00, 0x01, 'p',
};

static void
test_connect_vector(void **state)
{
	const struct mqtt_connect *c;
	struct mqtt_packet p;
	uint32_t v = 0;

	(void)state;
	decode_ok5(connect_example, sizeof(connect_example), &p);
	c = &p.u.connect;
	assert_int_equal(c->level, L5);
	assert_true(c->clean_session);
	assert_int_equal(c->keepalive, 10);
	assert_int_equal(c->props.n, 1);
	assert_true(mqtt_props_get_u32(&c->props, MQTT_PROP_SESSION_EXPIRY,
	    &v));
	assert_int_equal(v, 10);
	assert_string_equal(c->client_id, "c");
	assert_true(c->will);
	assert_int_equal(c->will_qos, 1);
	assert_false(c->will_retain);
	assert_int_equal(c->will_props.n, 1);
	assert_int_equal(c->will_props.v[0].id, MQTT_PROP_PAYLOAD_FORMAT);
	assert_int_equal(c->will_props.v[0].num, 1);
	assert_string_equal(c->will_topic, "a/b");
	assert_int_equal(c->will_len, 2);
	assert_memory_equal(c->will_payload, "hi", 2);
	assert_string_equal(c->username, "u");
	assert_int_equal(c->password_len, 1);
	mqtt_packet_free(&p);
	/* The same bytes on a 3.1.1 connection: a CONNECT has its own level. */
	assert_int_equal(mqtt_decode(connect_example, sizeof(connect_example),
	    MQTT_LEVEL_311, &p), 0);
	assert_int_equal(p.level, L5);
	mqtt_packet_free(&p);
}

static void
test_connect_roundtrip(void **state)
{
	struct mqtt_packet in = { .type = MQTT_CONNECT }, p;
	struct mqtt_connect *c = &in.u.connect;
	struct mqtt_str s;
	struct wbuf w;

	(void)state;
	c->level = L5;
	c->client_id = "";
	c->keepalive = 30;
	mqtt_props_add_u32(&c->props, MQTT_PROP_SESSION_EXPIRY, 0xffffffff);
	mqtt_props_add_u32(&c->props, MQTT_PROP_RECEIVE_MAXIMUM, 10);
	mqtt_props_add_u32(&c->props, MQTT_PROP_MAXIMUM_PACKET_SIZE, 1024);
	mqtt_props_add_u32(&c->props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 0);
	mqtt_props_add_u32(&c->props, MQTT_PROP_REQUEST_RESPONSE_INFO, 1);
	mqtt_props_add_u32(&c->props, MQTT_PROP_REQUEST_PROBLEM_INFO, 0);
	mqtt_props_add_user(&c->props, "k", "v1");
	mqtt_props_add_user(&c->props, "k", "v2");
	mqtt_props_add_string(&c->props, MQTT_PROP_AUTH_METHOD, "SCRAM");
	mqtt_props_add_binary(&c->props, MQTT_PROP_AUTH_DATA, "\0\1", 2);
	c->will = true;
	c->will_qos = 2;
	c->will_retain = true;
	c->will_topic = "w";
	mqtt_props_add_u32(&c->will_props, MQTT_PROP_WILL_DELAY, 5);
	mqtt_props_add_u32(&c->will_props, MQTT_PROP_MESSAGE_EXPIRY, 60);
	mqtt_props_add_string(&c->will_props, MQTT_PROP_CONTENT_TYPE, "text");
	mqtt_props_add_string(&c->will_props, MQTT_PROP_RESPONSE_TOPIC, "r/1");
	mqtt_props_add_binary(&c->will_props, MQTT_PROP_CORRELATION_DATA,
	    NULL, 0);
	wbuf_init(&w);
	roundtrip5(&in, &w, &p);
	assert_int_equal(p.u.connect.props.n, 10);
	assert_int_equal(p.u.connect.will_props.n, 5);
	assert_true(mqtt_props_get_string(&p.u.connect.props,
	    MQTT_PROP_AUTH_METHOD, &s));
	expect_str(&s, "SCRAM");
	assert_true(mqtt_props_get_string(&p.u.connect.will_props,
	    MQTT_PROP_CORRELATION_DATA, &s));
	assert_int_equal(s.len, 0);
	assert_null(p.u.connect.username);
	mqtt_packet_free(&p);
	/* Authentication Data without a method is a Protocol Error. */
	mqtt_props_del(&c->props, MQTT_PROP_AUTH_METHOD);
	REFUSED(mqtt_encode(&w, &in));
	assert_string_equal(mqtt_check(&in),
	    "Authentication Data without an Authentication Method");
	/* Will Properties need a will. */
	mqtt_props_del(&c->props, MQTT_PROP_AUTH_DATA);
	c->will = false, c->will_qos = 0, c->will_retain = false;
	c->will_topic = NULL;
	assert_string_equal(mqtt_check(&in), "will properties without a will");
	mqtt_props_free(&c->will_props);
	assert_null(mqtt_check(&in));
	/* No properties below level 5. */
	c->level = MQTT_LEVEL_311;
	assert_string_equal(mqtt_check(&in), "properties below MQTT 5.0");
	mqtt_props_free(&c->props);
	wbuf_free(&w);
}

static void
test_connect_password(void **state)
{
	struct mqtt_packet p;

	(void)state;
	/* A password without a user name: fine at level 5 (3.1.2.9)... */
	decode_ok5(B(0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x42,
	    0x00, 0x3c, 0x00, 0x00, 0x01, 'c', 0x00, 0x01, 'p'), &p);
	assert_null(p.u.connect.username);
	assert_int_equal(p.u.connect.password_len, 1);
	mqtt_packet_free(&p);
	/* ... not at level 4. */
	assert_int_equal(mqtt_decode(B(0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T',
	    'T', 0x04, 0x42, 0x00, 0x3c, 0x00, 0x01, 'c', 0x00, 0x01, 'p'),
	    L5, &p), MQTT_E_MALFORMED);
	assert_string_equal(p.error, "password without a user name");
	mqtt_packet_free(&p);
	/* A level-5 CONNECT without its Property Length, and with a will
	 * but no Will Properties. */
	MALFORMED5("string runs past the end of the packet", 0x10, 0x0d,
	    0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c,
	    0x00, 0x01, 'c');
	MALFORMED5("string runs past the end of the packet", 0x10, 0x12,
	    0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00, 0x3c, 0x00,
	    0x00, 0x01, 'c', 0x00, 0x01, 'w', 0x00);
	/* Still malformed at level 5: will QoS 3, a reserved flag. */
	MALFORMED5("will QoS 3", 0x10, 0x14, 0x00, 0x04, 'M', 'Q', 'T', 'T',
	    0x05, 0x1e, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c', 0x00, 0x00, 0x01,
	    'w', 0x00, 0x00);
	MALFORMED5("reserved CONNECT flag set", 0x10, 0x0e, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x05, 0x03, 0x00, 0x3c, 0x00, 0x00, 0x01, 'c');
	/* MQIsdp has no level 5. */
	EXPECT5(MQTT_E_BAD_LEVEL, "unsupported protocol level", 0x10, 0x0f,
	    0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x05, 0x02, 0x00, 0x3c,
	    0x00, 0x00, 0x00);
}

static int
enc_connack5(struct wbuf *w, bool present, uint8_t rc,
    const struct mqtt_props *ps)
{
	struct mqtt_connack c = { .session_present = present,
	    .return_code = rc };

	if (ps != NULL)
		c.props = *ps;
	return mqtt_enc_connack(w, L5, &c);
}

static void
test_connack(void **state)
{
	struct mqtt_props ps = { 0 };
	struct mqtt_packet p;
	struct wbuf w;
	char *id;
	int code;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(enc_connack5(&w, false, 0, NULL), 0);
	expect_wbuf(&w, B(0x20, 0x03, 0x00, 0x00, 0x00));
	/* What the broker sends. */
	mqtt_props_add_u32(&ps, MQTT_PROP_RECEIVE_MAXIMUM, 20);
	mqtt_props_add_u32(&ps, MQTT_PROP_MAXIMUM_QOS, 1);
	mqtt_props_add_string(&ps, MQTT_PROP_ASSIGNED_CLIENT_ID, "id");
	mqtt_props_add_string(&ps, MQTT_PROP_REASON_STRING, "ok");
	wbuf_reset(&w);
	assert_int_equal(enc_connack5(&w, true, 0, &ps), 0);
	expect_wbuf(&w, B(0x20, 0x12, 0x01, 0x00, 0x0f, 0x21, 0x00, 0x14,
	    0x24, 0x01, 0x12, 0x00, 0x02, 'i', 'd', 0x1f, 0x00, 0x02, 'o', 'k'));
	decode_ok5(w.data, w.len, &p);
	assert_true(p.u.connack.session_present);
	id = mqtt_props_dup_string(&p.u.connack.props,
	    MQTT_PROP_ASSIGNED_CLIENT_ID);
	assert_string_equal(id, "id");
	free(id);
	assert_null(mqtt_props_dup_string(&p.u.connack.props,
	    MQTT_PROP_SERVER_REFERENCE));
	mqtt_packet_free(&p);
	mqtt_props_free(&ps);
	/* Every reason code CONNACK has, and no other. */
	for (code = 0; code < 256; code++) {
		wbuf_reset(&w);
		assert_int_equal(enc_connack5(&w, false, (uint8_t)code, NULL),
		    mqtt_reason_allowed(MQTT_CONNACK, (uint8_t)code) ? 0 : -1);
	}
	PROTOCOL5("reason code not allowed in CONNACK",
	    0x20, 0x03, 0x00, 0x01, 0x00);
	MALFORMED5("session present on a refused connection",
	    0x20, 0x03, 0x01, 0x80, 0x00);
	MALFORMED5("reserved CONNACK flag set", 0x20, 0x03, 0x02, 0x00, 0x00);
	/* A 3.1.1 CONNACK is cut short at level 5. */
	MALFORMED5("Property Length runs past the end of the packet",
	    0x20, 0x02, 0x00, 0x00);
	wbuf_free(&w);
}

static void
test_publish_vectors(void **state)
{
	struct mqtt_packet p;
	struct mqtt_str s;
	uint32_t v = 0;
	size_t i = 0;

	(void)state;
	decode_ok5(B(0x30, 0x08, S_AB, 0x00, 'h', 'i'), &p);
	assert_string_equal(p.u.publish.topic, "a/b");
	assert_int_equal(p.u.publish.props.n, 0);
	assert_int_equal(p.u.publish.len, 2);
	mqtt_packet_free(&p);
	/* QoS 1, packet identifier 10, four properties. */
	decode_ok5(B(0x32, 0x1a, S_AB, 0x00, 0x0a, 0x10,
	    0x01, 0x01, 0x23, 0x00, 0x05, 0x03, 0x00, 0x01, 't',
	    0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 'h', 'i'), &p);
	assert_int_equal(p.u.publish.packet_id, 10);
	assert_int_equal(p.u.publish.props.n, 4);
	assert_true(mqtt_props_get_u32(&p.u.publish.props,
	    MQTT_PROP_TOPIC_ALIAS, &v));
	assert_int_equal(v, 5);
	assert_true(mqtt_props_get_string(&p.u.publish.props,
	    MQTT_PROP_CONTENT_TYPE, &s));
	expect_str(&s, "t");
	assert_non_null(mqtt_props_next(&p.u.publish.props, MQTT_PROP_USER,
	    &i));
	assert_null(mqtt_props_next(&p.u.publish.props, MQTT_PROP_USER, &i));
	assert_memory_equal(p.u.publish.payload, "hi", 2);
	mqtt_packet_free(&p);
	/* An empty topic stands for the one a Topic Alias was set to. */
	decode_ok5(B(0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x07, 'x'), &p);
	assert_string_equal(p.u.publish.topic, "");
	mqtt_packet_free(&p);
	PROTOCOL5("empty topic name without a Topic Alias",
	    0x30, 0x03, 0x00, 0x00, 0x00);
	PROTOCOL5("Topic Alias of 0",
	    0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x00);
	/* A server's PUBLISH may carry a Subscription Identifier for each
	 * subscription it matched; the largest takes 4 bytes. */
	decode_ok5(B(0x30, 0x0b, 0x00, 0x01, 't', 0x07, 0x0b, 0x01,
	    0x0b, 0xff, 0xff, 0xff, 0x7f), &p);
	assert_int_equal(mqtt_props_count(&p.u.publish.props,
	    MQTT_PROP_SUBSCRIPTION_ID), 2);
	assert_int_equal(p.u.publish.props.v[1].num, 268435455);
	mqtt_packet_free(&p);
	/* A 3.1.1 PUBLISH read at level 5: "h" is taken as a Property
	 * Length of 104. */
	MALFORMED5("Property Length runs past the end of the packet",
	    0x30, 0x07, S_AB, 'h', 'i');
	MALFORMED5("wildcard (+ or #) in a topic name",
	    0x30, 0x06, 0x00, 0x03, 'a', '/', '#', 0x00);
	PROTOCOL5("packet identifier 0", 0x32, 0x08, S_AB, 0x00, 0x00, 0x00);
	MALFORMED5("DUP flag on a QoS 0 PUBLISH", 0x38, 0x06, S_AB, 0x00);
	MALFORMED5("PUBLISH QoS 3", 0x36, 0x08, S_AB, 0x00, 0x01, 0x00);
}

static void
test_publish_roundtrip(void **state)
{
	static const uint8_t payload[300];
	struct mqtt_packet in = { .type = MQTT_PUBLISH, .level = L5 }, p;
	struct mqtt_publish *pub = &in.u.publish;
	struct wbuf w;
	uint8_t qos;

	(void)state;
	wbuf_init(&w);
	pub->topic = "sensors/temp";
	pub->payload = payload;
	pub->len = sizeof(payload);
	mqtt_props_add_u32(&pub->props, MQTT_PROP_MESSAGE_EXPIRY, 3600);
	mqtt_props_add_u32(&pub->props, MQTT_PROP_SUBSCRIPTION_ID, 200000);
	mqtt_props_add_u32(&pub->props, MQTT_PROP_SUBSCRIPTION_ID, 3);
	mqtt_props_add_binary(&pub->props, MQTT_PROP_CORRELATION_DATA,
	    "\xff\x00", 2);
	for (qos = 0; qos <= 2; qos++) {
		pub->qos = qos;
		pub->packet_id = qos == 0 ? 0 : 4242;
		pub->retain = qos == 2;
		roundtrip5(&in, &w, &p);
		assert_int_equal(p.u.publish.qos, qos);
		assert_int_equal(p.u.publish.props.n, 4);
		assert_int_equal(p.u.publish.props.v[1].num, 200000);
		assert_int_equal(p.u.publish.len, sizeof(payload));
		mqtt_packet_free(&p);
	}
	/* The same PUBLISH on a 3.1.1 connection cannot carry them. */
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, pub));
	mqtt_props_free(&pub->props);
	assert_int_equal(mqtt_enc_publish(&w, MQTT_LEVEL_311, pub), 0);
	wbuf_free(&w);
}

static const uint8_t pub_ack_types[] = { MQTT_PUBACK, MQTT_PUBREC,
    MQTT_PUBREL, MQTT_PUBCOMP };

/* A success other than 0 and an error of each ack, and one it may not
 * carry. */
static void
ack_codes(uint8_t type, uint8_t *ok, uint8_t *not)
{
	bool rel = type == MQTT_PUBREL || type == MQTT_PUBCOMP;

	*ok = rel ? MQTT_RC_PACKET_ID_NOT_FOUND : MQTT_RC_QUOTA_EXCEEDED;
	*not = rel ? MQTT_RC_NO_MATCHING_SUBSCRIBERS :
	    MQTT_RC_PACKET_ID_NOT_FOUND;
}

/* The forms of 3.4.2.1: Remaining Length 2, 3, 4 and more. */
static void
check_ack_forms(uint8_t type)
{
	uint8_t h = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0));
	uint8_t ok, not;
	struct mqtt_packet p;

	ack_codes(type, &ok, &not);
	decode_ok5(B(h, 0x02, 0x00, 0x01), &p);
	assert_int_equal(p.u.ack.reason, 0);
	assert_int_equal(p.u.ack.form, MQTT_FORM_MINIMAL);
	mqtt_packet_free(&p);
	decode_ok5(B(h, 0x03, 0x00, 0x01, 0x00), &p);
	assert_int_equal(p.u.ack.form, MQTT_FORM_REASON);
	mqtt_packet_free(&p);
	decode_ok5(B(h, 0x03, 0x00, 0x01, ok), &p);
	assert_int_equal(p.u.ack.reason, ok);
	assert_int_equal(p.u.ack.form, MQTT_FORM_MINIMAL);
	mqtt_packet_free(&p);
	decode_ok5(B(h, 0x04, 0x00, 0x01, 0x00, 0x00), &p);
	assert_int_equal(p.u.ack.form, MQTT_FORM_PROPS);
	mqtt_packet_free(&p);
	decode_ok5(B(h, 0x04, 0x00, 0x01, ok, 0x00), &p);
	assert_int_equal(p.u.ack.form, MQTT_FORM_PROPS);
	mqtt_packet_free(&p);
	decode_ok5(B(h, 0x08, 0x00, 0x01, ok, 0x04, 0x1f, 0x00, 0x01, 'r'), &p);
	assert_int_equal(p.u.ack.form, MQTT_FORM_MINIMAL);
	assert_int_equal(p.u.ack.props.n, 1);
	mqtt_packet_free(&p);
	PROTOCOL5("reason code not allowed in the packet type",
	    h, 0x03, 0x00, 0x01, not);
	PROTOCOL5("packet identifier 0", h, 0x02, 0x00, 0x00);
	MALFORMED5("truncated packet identifier", h, 0x01, 0x00);
	MALFORMED5("Property Length runs past the end of the packet",
	    h, 0x04, 0x00, 0x01, 0x00, 0x01);
	MALFORMED5("Topic Alias in a packet that cannot carry it",
	    h, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01);
}

static void
check_ack_encoders(uint8_t type)
{
	struct mqtt_ack a = { .packet_id = 1 };
	uint8_t h = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0));
	uint8_t ok, not;
	struct wbuf w;

	ack_codes(type, &ok, &not);
	wbuf_init(&w);
	assert_int_equal(mqtt_enc_pub_ack(&w, L5, type, &a), 0);
	expect_wbuf(&w, B(h, 0x02, 0x00, 0x01));
	a.reason = ok;
	wbuf_reset(&w);
	assert_int_equal(mqtt_enc_pub_ack(&w, L5, type, &a), 0);
	expect_wbuf(&w, B(h, 0x03, 0x00, 0x01, ok));
	a.form = MQTT_FORM_PROPS;
	wbuf_reset(&w);
	assert_int_equal(mqtt_enc_pub_ack(&w, L5, type, &a), 0);
	expect_wbuf(&w, B(h, 0x04, 0x00, 0x01, ok, 0x00));
	/* A form the fields already need adds nothing: not a decoder's. */
	a.form = MQTT_FORM_REASON;
	REFUSED(mqtt_enc_pub_ack(&w, L5, type, &a));
	a.form = 3;
	REFUSED(mqtt_enc_pub_ack(&w, L5, type, &a));
	a.form = MQTT_FORM_MINIMAL, a.reason = not;
	REFUSED(mqtt_enc_pub_ack(&w, L5, type, &a));
	a.reason = ok;
	REFUSED(mqtt_enc_pub_ack(&w, MQTT_LEVEL_311, type, &a));
	/* The short form of 3.1.1 is success at level 5. */
	wbuf_reset(&w);
	assert_int_equal(mqtt_enc_ack(&w, type, 1), 0);
	expect_wbuf(&w, B(h, 0x02, 0x00, 0x01));
	wbuf_free(&w);
}

static void
test_pub_acks(void **state)
{
	struct mqtt_ack a = { .packet_id = 1 };
	struct wbuf w;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pub_ack_types); i++) {
		check_ack_forms(pub_ack_types[i]);
		check_ack_encoders(pub_ack_types[i]);
	}
	wbuf_init(&w);
	REFUSED(mqtt_enc_pub_ack(&w, L5, MQTT_SUBACK, &a));
	REFUSED(mqtt_enc_pub_ack(&w, L5, MQTT_PUBLISH, &a));
	wbuf_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_vector),
		cmocka_unit_test(test_connect_roundtrip),
		cmocka_unit_test(test_connect_password),
		cmocka_unit_test(test_connack),
		cmocka_unit_test(test_publish_vectors),
		cmocka_unit_test(test_publish_roundtrip),
		cmocka_unit_test(test_pub_acks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
