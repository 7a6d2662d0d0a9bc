/* Unit tests of the MQTT codec at level 5 (MQTT 5.0): SUBSCRIBE, SUBACK,
 * UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH and the pings, then every
 * level-5 packet type cut short, with other flags, or framed against a
 * Maximum Packet Size. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "mqtt5_test.h"

/* "$share/g/x" as a string field. */
#define S_SHARE	0x00, 0x0a, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'x'
#define S_SHARE_PLUS	0x00, 0x0a, '$', 's', 'h', 'a', 'r', 'e', '/', '+', \
			'/', 'x'
/* "$share/g+/x": a wildcard in the group's name, not a level of its own. */
#define S_SHARE_GPLUS	0x00, 0x0b, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', \
			'+', '/', 'x'

static void
test_subscribe(void **state)
{
	const struct mqtt_sub_item *it;
	struct mqtt_packet p;

	(void)state;
	/* Subscription Identifier 5; "a/b" at QoS 1 with No Local, Retain
	 * As Published and Retain Handling 2; a shared subscription. */
	decode_ok5(B(0x82, 0x18, 0x00, 0x0a, 0x02, 0x0b, 0x05, S_AB, 0x2d,
	    S_SHARE, 0x02), &p);
	assert_int_equal(p.u.subscribe.packet_id, 10);
	assert_int_equal(p.u.subscribe.props.v[0].num, 5);
	assert_int_equal(p.u.subscribe.n, 2);
	it = &p.u.subscribe.items[0];
	assert_string_equal(it->filter, "a/b");
	assert_int_equal(it->qos, 1);
	assert_true(it->no_local);
	assert_true(it->retain_as_published);
	assert_int_equal(it->retain_handling, 2);
	it = &p.u.subscribe.items[1];
	assert_string_equal(it->filter, "$share/g/x");
	assert_int_equal(it->qos, 2);
	assert_false(it->no_local);
	mqtt_packet_free(&p);
	MALFORMED5("reserved subscription option set",
	    0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40);
	MALFORMED5("reserved subscription option set",
	    0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x80);
	PROTOCOL5("Retain Handling 3",
	    0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30);
	PROTOCOL5("requested QoS above 2",
	    0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03);
	PROTOCOL5("No Local on a shared subscription",
	    0x82, 0x10, 0x00, 0x01, 0x00, S_SHARE, 0x04);
	PROTOCOL5("malformed shared subscription",
	    0x82, 0x10, 0x00, 0x01, 0x00, S_SHARE_PLUS, 0x00);
	/* ShareName must not contain + or # (4.8.2): the same error. */
	PROTOCOL5("malformed shared subscription",
	    0x82, 0x11, 0x00, 0x01, 0x00, S_SHARE_GPLUS, 0x00);
	PROTOCOL5("Subscription Identifier more than once", 0x82, 0x0b,
	    0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, 'a', 0x00);
	PROTOCOL5("Subscription Identifier of 0",
	    0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 'a', 0x00);
	PROTOCOL5("SUBSCRIBE without topic filters",
	    0x82, 0x03, 0x00, 0x01, 0x00);
	PROTOCOL5("packet identifier 0",
	    0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 'a', 0x00);
	MALFORMED5("misplaced wildcard in a topic filter", 0x82, 0x0b, 0x00, 0x01, 0x00, 0x00, 0x05,
	    'a', '/', '#', '/', 'b', 0x00);
	/* Below level 5 the same options byte is reserved. */
	assert_int_equal(mqtt_decode(B(0x82, 0x06, 0x00, 0x01, 0x00, 0x01,
	    'a', 0x04), MQTT_LEVEL_311, &p), MQTT_E_MALFORMED);
	assert_string_equal(p.error, "reserved subscription option set");
	mqtt_packet_free(&p);
}

/* Every combination of the options, encoded and decoded back. */
static void
test_subscribe_options(void **state)
{
	struct mqtt_sub_item items[36];
	struct mqtt_packet in = { .type = MQTT_SUBSCRIBE, .level = L5 }, p;
	struct mqtt_subscribe *s = &in.u.subscribe;
	struct wbuf w;
	size_t i;

	(void)state;
	for (i = 0; i < 36; i++) {
		items[i] = (struct mqtt_sub_item){ .filter = "t/#",
		    .qos = (uint8_t)(i % 3), .no_local = (i / 3) % 2,
		    .retain_as_published = (i / 6) % 2,
		    .retain_handling = (uint8_t)(i / 12) };
	}
	s->packet_id = 7, s->n = 36, s->items = items;
	wbuf_init(&w);
	roundtrip5(&in, &w, &p);
	for (i = 0; i < 36; i++) {
		/* The options byte ends each item of 6 bytes. */
		assert_int_equal(w.data[w.len - 1 - (35 - i) * 6],
		    items[i].qos | items[i].no_local << 2 |
		    items[i].retain_as_published << 3 |
		    items[i].retain_handling << 4);
		assert_int_equal(p.u.subscribe.items[i].qos, items[i].qos);
		assert_int_equal(p.u.subscribe.items[i].no_local,
		    items[i].no_local);
		assert_int_equal(p.u.subscribe.items[i].retain_as_published,
		    items[i].retain_as_published);
		assert_int_equal(p.u.subscribe.items[i].retain_handling,
		    items[i].retain_handling);
	}
	mqtt_packet_free(&p);
	/* Options other than QoS do not exist below level 5. */
	REFUSED(mqtt_enc_subscribe(&w, MQTT_LEVEL_311, s));
	assert_string_equal(mqtt_check(&(struct mqtt_packet){
	    .type = MQTT_SUBSCRIBE, .u.subscribe = *s }),
	    "subscription options below MQTT 5.0");
	items[35].retain_handling = 3;
	REFUSED(mqtt_enc_subscribe(&w, L5, s));
	wbuf_free(&w);
}

static int
enc_codes(struct wbuf *w, uint8_t level, uint8_t type, const uint8_t *codes,
    size_t n)
{
	struct mqtt_suback s = { .packet_id = 7, .n = n, .codes = codes };

	return mqtt_enc_suback(w, level, type, &s);
}

static void
test_suback_unsuback(void **state)
{
	struct mqtt_packet p;
	struct wbuf w;
	uint8_t code;
	int c;

	(void)state;
	decode_ok5(B(0x90, 0x0f, 0x00, 0x07, 0x00, 0x00, 0x01, 0x02, 0x80,
	    0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2), &p);
	assert_int_equal(p.u.suback.n, 12);
	mqtt_packet_free(&p);
	decode_ok5(B(0xb0, 0x0a, 0x00, 0x07, 0x00, 0x00, 0x11, 0x80, 0x83,
	    0x87, 0x8f, 0x91), &p);
	assert_int_equal(p.u.suback.packet_id, 7);
	assert_int_equal(p.u.suback.n, 7);
	mqtt_packet_free(&p);
	decode_ok5(B(0xb0, 0x08, 0x00, 0x07, 0x04, 0x1f, 0x00, 0x01, 'r',
	    0x00), &p);
	assert_int_equal(p.u.suback.props.n, 1);
	mqtt_packet_free(&p);
	PROTOCOL5("reason code not allowed in the packet type",
	    0x90, 0x04, 0x00, 0x07, 0x00, 0x03);
	PROTOCOL5("reason code not allowed in the packet type",
	    0x90, 0x04, 0x00, 0x07, 0x00, 0x11);
	PROTOCOL5("reason code not allowed in the packet type",
	    0xb0, 0x04, 0x00, 0x07, 0x00, 0x01);
	PROTOCOL5("SUBACK without return codes", 0x90, 0x03, 0x00, 0x07, 0x00);
	PROTOCOL5("UNSUBACK without reason codes",
	    0xb0, 0x03, 0x00, 0x07, 0x00);
	/* A 3.1.1 UNSUBACK at level 5. */
	MALFORMED5("Property Length runs past the end of the packet",
	    0xb0, 0x02, 0x00, 0x07);
	wbuf_init(&w);
	for (c = 0; c < 256; c++) {
		code = (uint8_t)c;
		wbuf_reset(&w);
		assert_int_equal(enc_codes(&w, L5, MQTT_SUBACK, &code, 1),
		    mqtt_reason_allowed(MQTT_SUBACK, code) ? 0 : -1);
		assert_int_equal(enc_codes(&w, L5, MQTT_UNSUBACK, &code, 1),
		    mqtt_reason_allowed(MQTT_UNSUBACK, code) ? 0 : -1);
	}
	code = 0;
	REFUSED(enc_codes(&w, MQTT_LEVEL_311, MQTT_UNSUBACK, &code, 1));
	REFUSED(enc_codes(&w, L5, MQTT_PUBACK, &code, 1));
	REFUSED(enc_codes(&w, L5, MQTT_UNSUBACK, NULL, 0));
	wbuf_free(&w);
}

static void
test_unsubscribe(void **state)
{
	struct mqtt_packet p;
	size_t i = 0;
	const struct mqtt_prop *up;

	(void)state;
	decode_ok5(B(0xa2, 0x0f, 0x00, 0x01, 0x07, 0x26, 0x00, 0x01, 'k',
	    0x00, 0x01, 'v', S_AB), &p);
	assert_int_equal(p.u.unsubscribe.n, 1);
	assert_string_equal(p.u.unsubscribe.filters[0], "a/b");
	up = mqtt_props_next(&p.u.unsubscribe.props, MQTT_PROP_USER, &i);
	assert_non_null(up);
	expect_str(&up->name, "k");
	expect_str(&up->str, "v");
	mqtt_packet_free(&p);
	MALFORMED5("Reason String in a packet that cannot carry it", 0xa2,
	    0x0a, 0x00, 0x01, 0x04, 0x1f, 0x00, 0x01, 'r', 0x00, 0x01, 'a');
	MALFORMED5("Subscription Identifier in a packet that cannot carry it",
	    0xa2, 0x08, 0x00, 0x01, 0x02, 0x0b, 0x01, 0x00, 0x01, 'a');
	PROTOCOL5("UNSUBSCRIBE without topic filters",
	    0xa2, 0x03, 0x00, 0x01, 0x00);
	PROTOCOL5("malformed shared subscription",
	    0xa2, 0x0f, 0x00, 0x01, 0x00, S_SHARE_PLUS);
	PROTOCOL5("malformed shared subscription",
	    0xa2, 0x10, 0x00, 0x01, 0x00, S_SHARE_GPLUS);
}

static void
test_disconnect(void **state)
{
	struct mqtt_disconnect d = { .reason = MQTT_RC_SERVER_SHUTTING_DOWN };
	struct mqtt_packet p;
	struct wbuf w;
	int c;

	(void)state;
	decode_ok5(B(0xe0, 0x00), &p);
	assert_int_equal(p.u.disconnect.reason, 0);
	assert_int_equal(p.u.disconnect.form, MQTT_FORM_MINIMAL);
	mqtt_packet_free(&p);
	decode_ok5(B(0xe0, 0x01, 0x00), &p);
	assert_int_equal(p.u.disconnect.form, MQTT_FORM_REASON);
	mqtt_packet_free(&p);
	decode_ok5(B(0xe0, 0x01, 0x04), &p);
	assert_int_equal(p.u.disconnect.reason, MQTT_RC_DISCONNECT_WITH_WILL);
	assert_int_equal(p.u.disconnect.form, MQTT_FORM_MINIMAL);
	mqtt_packet_free(&p);
	decode_ok5(B(0xe0, 0x02, 0x00, 0x00), &p);
	assert_int_equal(p.u.disconnect.form, MQTT_FORM_PROPS);
	mqtt_packet_free(&p);
	/* A server's, on a takeover: Session taken over, no properties. */
	decode_ok5(B(0xe0, 0x02, 0x8e, 0x00), &p);
	assert_int_equal(p.u.disconnect.reason, MQTT_RC_SESSION_TAKEN_OVER);
	mqtt_packet_free(&p);
	decode_ok5(B(0xe0, 0x0f, 0x80, 0x0d, 0x11, 0x00, 0x00, 0x00, 0x00,
	    0x1c, 0x00, 0x01, 's', 0x1f, 0x00, 0x01, 'r'), &p);
	assert_int_equal(p.u.disconnect.props.n, 3);
	mqtt_packet_free(&p);
	PROTOCOL5("reason code not allowed in the packet type",
	    0xe0, 0x01, 0x01);
	MALFORMED5("Receive Maximum in a packet that cannot carry it",
	    0xe0, 0x05, 0x00, 0x03, 0x21, 0x00, 0x01);
	MALFORMED5("Property Length runs past the end of the packet",
	    0xe0, 0x02, 0x00, 0x01);
	MALFORMED5("reserved flag bits set", 0xe1, 0x00);
	/* What the broker sends when it stops. */
	wbuf_init(&w);
	mqtt_props_add_string(&d.props, MQTT_PROP_REASON_STRING, "bye");
	assert_int_equal(mqtt_enc_disconnect(&w, L5, &d), 0);
	expect_wbuf(&w, B(0xe0, 0x08, 0x8b, 0x06, 0x1f, 0x00, 0x03,
	    'b', 'y', 'e'));
	REFUSED(mqtt_enc_disconnect(&w, MQTT_LEVEL_311, &d));
	mqtt_props_free(&d.props);
	for (c = 0; c < 256; c++) {
		d.reason = (uint8_t)c;
		wbuf_reset(&w);
		assert_int_equal(mqtt_enc_disconnect(&w, L5, &d),
		    mqtt_reason_allowed(MQTT_DISCONNECT, d.reason) ? 0 : -1);
	}
	wbuf_reset(&w);
	assert_int_equal(mqtt_enc_simple(&w, MQTT_DISCONNECT), 0);
	expect_wbuf(&w, B(0xe0, 0x00));
	wbuf_free(&w);
}

static void
test_auth(void **state)
{
	struct mqtt_auth a = { .reason = MQTT_RC_CONTINUE_AUTH };
	struct mqtt_packet p;
	struct mqtt_str s;
	struct wbuf w;

	(void)state;
	decode_ok5(B(0xf0, 0x0e, 0x18, 0x0c, 0x15, 0x00, 0x04, 'S', 'C', 'R',
	    'M', 0x16, 0x00, 0x02, 0x01, 0x02), &p);
	assert_int_equal(p.type, MQTT_AUTH);
	assert_int_equal(p.u.auth.reason, MQTT_RC_CONTINUE_AUTH);
	assert_true(mqtt_props_get_string(&p.u.auth.props,
	    MQTT_PROP_AUTH_METHOD, &s));
	expect_str(&s, "SCRM");
	mqtt_packet_free(&p);
	PROTOCOL5("AUTH without an Authentication Method", 0xf0, 0x00);
	PROTOCOL5("AUTH without an Authentication Method",
	    0xf0, 0x02, 0x00, 0x00);
	PROTOCOL5("AUTH without an Authentication Method",
	    0xf0, 0x06, 0x19, 0x04, 0x16, 0x00, 0x01, 'x');
	PROTOCOL5("Authentication Method more than once", 0xf0, 0x0a, 0x00,
	    0x08, 0x15, 0x00, 0x01, 'a', 0x15, 0x00, 0x01, 'b');
	PROTOCOL5("reason code not allowed in the packet type",
	    0xf0, 0x02, 0x01, 0x00);
	MALFORMED5("Property Length runs past the end of the packet",
	    0xf0, 0x01, 0x00);
	MALFORMED5("Session Expiry Interval in a packet that cannot carry it",
	    0xf0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01);
	MALFORMED5("reserved flag bits set", 0xf2, 0x00);
	/* Below level 5 type 15 is reserved. */
	assert_int_equal(mqtt_decode(B(0xf0, 0x00), MQTT_LEVEL_311, &p),
	    MQTT_E_MALFORMED);
	assert_string_equal(p.error, "reserved packet type");
	mqtt_packet_free(&p);
	wbuf_init(&w);
	REFUSED(mqtt_enc_auth(&w, &a));
	mqtt_props_add_string(&a.props, MQTT_PROP_AUTH_METHOD, "SCRM");
	assert_int_equal(mqtt_enc_auth(&w, &a), 0);
	expect_wbuf(&w, B(0xf0, 0x09, 0x18, 0x07, 0x15, 0x00, 0x04,
	    'S', 'C', 'R', 'M'));
	assert_int_equal(mqtt_encode(&w, &(struct mqtt_packet){
	    .type = MQTT_AUTH, .level = MQTT_LEVEL_311, .u.auth = a }), -1);
	mqtt_props_free(&a.props);
	wbuf_free(&w);
}

/* One valid level-5 packet of every type, for the loops below. */
#define VEC(...) { (const uint8_t[]){ __VA_ARGS__ }, \
	sizeof((const uint8_t[]){ __VA_ARGS__ }) }
static const struct {
	const uint8_t	*b;
	size_t		 n;
} valid[] = {
	VEC(0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c,
	    0x03, 0x21, 0x00, 0x0a, 0x00, 0x01, 'c'),
	VEC(0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0x00, 0x05),
	VEC(0x32, 0x0c, S_AB, 0x00, 0x01, 0x02, 0x01, 0x01, 'h', 'i'),
	VEC(0x40, 0x03, 0x00, 0x01, 0x10),
	VEC(0x50, 0x08, 0x00, 0x01, 0x80, 0x04, 0x1f, 0x00, 0x01, 'r'),
	VEC(0x62, 0x02, 0x00, 0x01),
	VEC(0x70, 0x04, 0x00, 0x01, 0x00, 0x00),
	VEC(0x82, 0x09, 0x00, 0x01, 0x00, S_AB, 0x11),
	VEC(0x90, 0x04, 0x00, 0x01, 0x00, 0x01),
	VEC(0xa2, 0x08, 0x00, 0x01, 0x00, S_AB),
	VEC(0xb0, 0x04, 0x00, 0x01, 0x00, 0x11),
	VEC(0xc0, 0x00),
	VEC(0xd0, 0x00),
	VEC(0xe0, 0x01, 0x04),
	VEC(0xf0, 0x07, 0x18, 0x05, 0x15, 0x00, 0x02, 'm', 'd'),
};
#define NVALID	(sizeof(valid) / sizeof(valid[0]))

static void
test_all_valid(void **state)
{
	struct mqtt_packet p;
	size_t i;
	int seen = 0;

	(void)state;
	for (i = 0; i < NVALID; i++) {
		decode_ok5(valid[i].b, valid[i].n, &p);
		seen |= 1 << p.type;
		mqtt_packet_free(&p);
	}
	assert_int_equal(seen, 0xfffe);		/* types 1 .. 15 */
}

/* Every other value of the reserved flag bits, for every type. */
static void
test_reserved_flags(void **state)
{
	uint8_t b[64], f, want;
	size_t i;

	(void)state;
	for (i = 0; i < NVALID; i++) {
		uint8_t type = valid[i].b[0] >> 4;

		if (type == MQTT_PUBLISH)
			continue;
		want = type == MQTT_PUBREL || type == MQTT_SUBSCRIBE ||
		    type == MQTT_UNSUBSCRIBE ? 0x2 : 0x0;
		memcpy(b, valid[i].b, valid[i].n);
		for (f = 0; f < 16; f++) {
			if (f == want)
				continue;
			b[0] = (uint8_t)(type << 4 | f);
			expect_err5(MQTT_E_MALFORMED, want ?
			    "reserved flag bits are not 0010" :
			    "reserved flag bits set", b, valid[i].n);
		}
	}
}

/* Every prefix of every valid packet: frame waits, decode refuses; one
 * byte more is not the packet either. */
static void
test_truncated(void **state)
{
	struct mqtt_packet p;
	size_t i, k, total;
	uint8_t b[64];

	(void)state;
	for (i = 0; i < NVALID; i++) {
		for (k = 0; k < valid[i].n; k++) {
			assert_int_equal(mqtt_frame(valid[i].b, k,
			    MQTT_MAX_PACKET, &total), 0);
			assert_int_equal(mqtt_decode(valid[i].b, k, L5, &p),
			    MQTT_E_MALFORMED);
			assert_non_null(p.error);
			mqtt_packet_free(&p);
		}
		memcpy(b, valid[i].b, valid[i].n);
		b[valid[i].n] = 0;
		expect_err5(MQTT_E_MALFORMED,
		    "bytes after the end of the packet", b, valid[i].n + 1);
	}
}

/* The body cut short with the Remaining Length to match: refused with a
 * reason, or (a short form, a shorter list or payload) decoded, and then
 * encoded to the same bytes. */
static void
test_truncated_body(void **state)
{
	struct mqtt_packet p;
	struct wbuf w;
	uint8_t b[64];
	size_t i, k;
	int rc;

	(void)state;
	wbuf_init(&w);
	for (i = 0; i < NVALID; i++) {
		for (k = 0; k + 2 < valid[i].n; k++) {
			b[0] = valid[i].b[0];
			b[1] = (uint8_t)k;
			memcpy(b + 2, valid[i].b + 2, k);
			rc = mqtt_decode(b, k + 2, L5, &p);
			if (rc == 0) {
				wbuf_reset(&w);
				assert_int_equal(mqtt_encode(&w, &p), 0);
				expect_wbuf(&w, b, k + 2);
			} else {
				assert_true(rc == MQTT_E_MALFORMED ||
				    rc == MQTT_E_PROTOCOL);
				assert_non_null(p.error);
			}
			mqtt_packet_free(&p);
		}
	}
	wbuf_free(&w);
}

/* Maximum Packet Size counts the whole packet (3.1.2.11.4). */
static void
test_max_packet_size(void **state)
{
	static const uint8_t payload[100];
	struct mqtt_publish pub = { .topic = "t", .payload = payload };
	struct wbuf w;
	size_t total;

	(void)state;
	wbuf_init(&w);
	pub.len = 100 - 2 - 3 - 1;	/* header, topic, Property Length */
	assert_int_equal(mqtt_enc_publish(&w, L5, &pub), 0);
	assert_int_equal(w.len, 100);
	assert_int_equal(mqtt_packet_size(&(struct mqtt_packet){
	    .type = MQTT_PUBLISH, .level = L5, .u.publish = pub }), 100);
	assert_int_equal(mqtt_frame(w.data, w.len, 100, &total), 1);
	assert_int_equal(mqtt_frame(w.data, 2, 99, &total), MQTT_E_TOO_LARGE);
	assert_int_equal(total, 100);
	assert_int_equal(mqtt_error_reason(MQTT_E_TOO_LARGE),
	    MQTT_RC_PACKET_TOO_LARGE);
	assert_int_equal(mqtt_error_reason(MQTT_E_MALFORMED),
	    MQTT_RC_MALFORMED_PACKET);
	assert_int_equal(mqtt_error_reason(MQTT_E_PROTOCOL),
	    MQTT_RC_PROTOCOL_ERROR);
	assert_int_equal(mqtt_error_reason(MQTT_E_BAD_LEVEL),
	    MQTT_RC_UNSUPPORTED_VERSION);
	assert_int_equal(mqtt_error_reason(MQTT_E_PROTOCOL_NAME),
	    MQTT_RC_UNSUPPORTED_VERSION);
	assert_int_equal(mqtt_error_reason(0), MQTT_RC_UNSPECIFIED_ERROR);
	assert_int_equal(mqtt_packet_size(&(struct mqtt_packet){
	    .type = MQTT_PUBLISH, .level = L5 }), 0);
	wbuf_free(&w);
}

static void
test_types(void **state)
{
	(void)state;
	assert_string_equal(mqtt_type_name(MQTT_AUTH), "AUTH");
	assert_int_equal(mqtt_type_dir(MQTT_AUTH, L5),
	    MQTT_FROM_CLIENT | MQTT_FROM_SERVER);
	assert_int_equal(mqtt_type_dir(MQTT_AUTH, MQTT_LEVEL_311), 0);
	assert_int_equal(mqtt_type_dir(MQTT_DISCONNECT, L5),
	    MQTT_FROM_CLIENT | MQTT_FROM_SERVER);
	assert_int_equal(mqtt_type_dir(MQTT_DISCONNECT, MQTT_LEVEL_311),
	    MQTT_FROM_CLIENT);
	assert_int_equal(mqtt_type_dir(MQTT_CONNACK, L5), MQTT_FROM_SERVER);
	assert_int_equal(mqtt_type_dir(0, L5), 0);
	decode_ok5(B(0xc0, 0x00), &(struct mqtt_packet){ 0 });
	MALFORMED5("trailing bytes in the packet", 0xd0, 0x01, 0x00);
}

static void
test_share_split(void **state)
{
	const char *rest = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(mqtt_share_split("$share/grp/a/+", &n, &rest), 1);
	assert_int_equal(n, 3);
	assert_string_equal(rest, "a/+");
	assert_int_equal(mqtt_share_split("$share/g//", &n, &rest), 1);
	assert_string_equal(rest, "/");
	assert_int_equal(mqtt_share_split("a/b", &n, &rest), 0);
	assert_int_equal(mqtt_share_split("$share", &n, &rest), 0);
	assert_int_equal(mqtt_share_split("$shared/g/a", &n, &rest), 0);
	assert_int_equal(mqtt_share_split("$share/g", &n, &rest), -1);
	assert_int_equal(mqtt_share_split("$share/g/", &n, &rest), -1);
	assert_int_equal(mqtt_share_split("$share//a", &n, &rest), -1);
	assert_int_equal(mqtt_share_split("$share/+/a", &n, &rest), -1);
	assert_int_equal(mqtt_share_split("$share/#/a", &n, &rest), -1);
	assert_int_equal(mqtt_share_split("$share/g+/a", &n, &rest), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subscribe),
		cmocka_unit_test(test_subscribe_options),
		cmocka_unit_test(test_suback_unsuback),
		cmocka_unit_test(test_unsubscribe),
		cmocka_unit_test(test_disconnect),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_all_valid),
		cmocka_unit_test(test_reserved_flags),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_truncated_body),
		cmocka_unit_test(test_max_packet_size),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_share_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
