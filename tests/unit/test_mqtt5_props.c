/* Unit tests of MQTT 5.0 properties: every property in every packet
 * type (allowed or not, twice), values out of range, bad UTF-8, broken
 * lengths; then the accessors, the builders, and the packed form kept
 * with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "mqtt5_test.h"

#define W(t)	(1u << (t))
#define WILL	W(MQTT_PROPS_WILL)
#define PUB	(W(MQTT_PUBLISH) | WILL)
#define CONN	(W(MQTT_CONNECT) | W(MQTT_CONNACK))
#define ACKS	(W(MQTT_PUBACK) | W(MQTT_PUBREC) | W(MQTT_PUBREL) | \
		W(MQTT_PUBCOMP) | W(MQTT_SUBACK) | W(MQTT_UNSUBACK))

/* Table 2-4 of MQTT 5.0: where each property may be. */
static const struct {
	uint8_t		 id;
	const char	*name;
	uint32_t	 where;
} spec[] = {
	{ 0x01, "Payload Format Indicator", PUB },
	{ 0x02, "Message Expiry Interval", PUB },
	{ 0x03, "Content Type", PUB },
	{ 0x08, "Response Topic", PUB },
	{ 0x09, "Correlation Data", PUB },
	{ 0x0b, "Subscription Identifier", W(MQTT_PUBLISH) |
	    W(MQTT_SUBSCRIBE) },
	{ 0x11, "Session Expiry Interval", CONN | W(MQTT_DISCONNECT) },
	{ 0x12, "Assigned Client Identifier", W(MQTT_CONNACK) },
	{ 0x13, "Server Keep Alive", W(MQTT_CONNACK) },
	{ 0x15, "Authentication Method", CONN | W(MQTT_AUTH) },
	{ 0x16, "Authentication Data", CONN | W(MQTT_AUTH) },
	{ 0x17, "Request Problem Information", W(MQTT_CONNECT) },
	{ 0x18, "Will Delay Interval", WILL },
	{ 0x19, "Request Response Information", W(MQTT_CONNECT) },
	{ 0x1a, "Response Information", W(MQTT_CONNACK) },
	{ 0x1c, "Server Reference", W(MQTT_CONNACK) | W(MQTT_DISCONNECT) },
	{ 0x1f, "Reason String", W(MQTT_CONNACK) | ACKS | W(MQTT_DISCONNECT) |
	    W(MQTT_AUTH) },
	{ 0x21, "Receive Maximum", CONN },
	{ 0x22, "Topic Alias Maximum", CONN },
	{ 0x23, "Topic Alias", W(MQTT_PUBLISH) },
	{ 0x24, "Maximum QoS", W(MQTT_CONNACK) },
	{ 0x25, "Retain Available", W(MQTT_CONNACK) },
	{ 0x26, "User Property", CONN | PUB | ACKS | W(MQTT_SUBSCRIBE) |
	    W(MQTT_UNSUBSCRIBE) | W(MQTT_DISCONNECT) | W(MQTT_AUTH) },
	{ 0x27, "Maximum Packet Size", CONN },
	{ 0x28, "Wildcard Subscription Available", W(MQTT_CONNACK) },
	{ 0x29, "Subscription Identifier Available", W(MQTT_CONNACK) },
	{ 0x2a, "Shared Subscription Available", W(MQTT_CONNACK) },
};
#define NSPEC	(sizeof(spec) / sizeof(spec[0]))

/* Each packet type around its property list; 0 is a CONNECT's will. */
static const struct {
	uint8_t		 head;
	const char	*pre, *post;	/* bytes before and after */
	size_t		 npre, npost;
} shape[16] = {
#define SH(t, h, pre, post) [t] = { h, pre, post, sizeof(pre) - 1, \
	sizeof(post) - 1 }
	SH(MQTT_PROPS_WILL, 0x10, "\0\4MQTT\5\6\0\x3c\0\0\1c", "\0\1w\0\0"),
	SH(MQTT_CONNECT, 0x10, "\0\4MQTT\5\2\0\x3c", "\0\1c"),
	SH(MQTT_CONNACK, 0x20, "\0\0", ""),
	SH(MQTT_PUBLISH, 0x30, "\0\1t", ""),
	SH(MQTT_PUBACK, 0x40, "\0\1\0", ""),
	SH(MQTT_PUBREC, 0x50, "\0\1\0", ""),
	SH(MQTT_PUBREL, 0x62, "\0\1\0", ""),
	SH(MQTT_PUBCOMP, 0x70, "\0\1\0", ""),
	SH(MQTT_SUBSCRIBE, 0x82, "\0\1", "\0\1f\0"),
	SH(MQTT_SUBACK, 0x90, "\0\1", "\0"),
	SH(MQTT_UNSUBSCRIBE, 0xa2, "\0\1", "\0\1f"),
	SH(MQTT_UNSUBACK, 0xb0, "\0\1", "\0"),
	SH(MQTT_DISCONNECT, 0xe0, "\0", ""),
	SH(MQTT_AUTH, 0xf0, "\0", ""),
#undef SH
};

/* An Authentication Method, which an AUTH needs, and Authentication Data
 * needs wherever it is. */
static const uint8_t method[] = { 0x15, 0x00, 0x01, 'm' };

static bool
has_shape(uint8_t where)
{
	return where == MQTT_PROPS_WILL || shape[where].head != 0;
}

static void
put_vbi(struct wbuf *w, size_t v)
{
	do {
		put_u8(w, (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
		v >>= 7;
	} while (v > 0);
}

/* A level-5 packet of type where (a will: MQTT_PROPS_WILL) whose
 * property list is p[0 .. n) (after a method when it needs one). */
static void
build(struct wbuf *w, uint8_t where, const uint8_t *p, size_t n)
{
	struct wbuf props, body;
	bool auth = where == MQTT_AUTH || (n > 0 && p[0] == 0x16 &&
	    (where == MQTT_CONNECT || where == MQTT_CONNACK));

	wbuf_init(&props);
	wbuf_init(&body);
	if (auth && (n == 0 || p[0] != method[0]))
		put_raw(&props, method, sizeof(method));
	put_raw(&props, p, n);
	put_raw(&body, shape[where].pre, shape[where].npre);
	put_vbi(&body, props.len);
	put_raw(&body, props.data, props.len);
	put_raw(&body, shape[where].post, shape[where].npost);
	wbuf_reset(w);
	put_u8(w, shape[where].head);
	put_vbi(w, body.len);
	put_raw(w, body.data, body.len);
	wbuf_free(&props);
	wbuf_free(&body);
}

/* A valid property id, its value of its type, once or twice. */
static size_t
sample(uint8_t *b, uint8_t id, int times)
{
	static const struct { const char *v; size_t n; } val[] = {
		[MQTT_PT_BYTE] = { "\1", 1 }, [MQTT_PT_U16] = { "\0\1", 2 },
		[MQTT_PT_U32] = { "\0\0\0\1", 4 }, [MQTT_PT_VARINT] = { "\1", 1 },
		[MQTT_PT_STRING] = { "\0\1x", 3 }, [MQTT_PT_BINARY] = { "\0\1x", 3 },
		[MQTT_PT_PAIR] = { "\0\1k\0\1v", 6 },
	};
	enum mqtt_prop_type t = mqtt_prop_type(id);
	size_t n = 0;

	while (times-- > 0) {
		b[n++] = id;
		memcpy(b + n, val[t].v, val[t].n);
		n += val[t].n;
	}
	return n;
}

/* Decodes the packet in w: rc and, on error, the reason. */
static void
expect_packet(const struct wbuf *w, int rc, const char *why)
{
	expect_err5(rc, why, w->data, w->len);
}

static void
expect_ok(const struct wbuf *w)
{
	struct mqtt_packet p;

	decode_ok5(w->data, w->len, &p);
	mqtt_packet_free(&p);
}

/* Every property in every packet type that has properties. */
static void
test_placement(void **state)
{
	char why[96];
	struct wbuf w;
	uint8_t b[32];
	size_t i, n;
	int where;

	(void)state;
	wbuf_init(&w);
	for (i = 0; i < NSPEC; i++) {
		assert_string_equal(mqtt_prop_name(spec[i].id), spec[i].name);
		snprintf(why, sizeof(why), "%s in a packet that cannot carry "
		    "it", spec[i].name);
		n = sample(b, spec[i].id, 1);
		for (where = 0; where < 16; where++) {
			bool ok = (spec[i].where & W(where)) != 0;

			assert_int_equal(mqtt_prop_allowed(spec[i].id,
			    (uint8_t)where), ok);
			if (!has_shape((uint8_t)where))
				continue;
			build(&w, (uint8_t)where, b, n);
			if (ok)
				expect_ok(&w);
			else
				expect_packet(&w, MQTT_E_MALFORMED, why);
		}
	}
	wbuf_free(&w);
}

/* Identifiers that are no property. */
static void
test_unknown(void **state)
{
	struct wbuf w;
	size_t i;
	int id;

	(void)state;
	wbuf_init(&w);
	for (id = 0; id < 256; id++) {
		for (i = 0; i < NSPEC && spec[i].id != id; i++)
			continue;
		if (i < NSPEC)
			continue;
		assert_int_equal(mqtt_prop_type((uint8_t)id), MQTT_PT_UNKNOWN);
		assert_string_equal(mqtt_prop_name((uint8_t)id),
		    "unknown property");
		assert_false(mqtt_prop_allowed((uint8_t)id, MQTT_PUBLISH));
		if (id >= 0x80)
			continue;	/* not one byte as a varint */
		build(&w, MQTT_PUBLISH, (const uint8_t[]){ (uint8_t)id, 0 }, 2);
		expect_packet(&w, MQTT_E_MALFORMED,
		    "unknown property identifier");
	}
	/* Identifiers are Variable Byte Integers: 128, an over-long 1, and
	 * one of 5 bytes. */
	build(&w, MQTT_PUBLISH, B(0x80, 0x01, 0x00));
	expect_packet(&w, MQTT_E_MALFORMED, "unknown property identifier");
	build(&w, MQTT_PUBLISH, B(0x81, 0x00, 0x01));
	expect_packet(&w, MQTT_E_MALFORMED, "over-long property identifier");
	build(&w, MQTT_PUBLISH, B(0x81, 0x80, 0x80, 0x80, 0x01));
	expect_packet(&w, MQTT_E_MALFORMED, "unknown property identifier");
	assert_false(mqtt_prop_allowed(MQTT_PROP_USER, 16));
	wbuf_free(&w);
}

/* Twice: a Protocol Error, but for User Property anywhere and
 * Subscription Identifier in a PUBLISH. */
static void
test_duplicates(void **state)
{
	char why[96];
	struct wbuf w;
	uint8_t b[32];
	size_t i, n;
	int where;

	(void)state;
	wbuf_init(&w);
	for (i = 0; i < NSPEC; i++) {
		snprintf(why, sizeof(why), "%s more than once", spec[i].name);
		n = sample(b, spec[i].id, 2);
		for (where = 0; where < 16; where++) {
			if ((spec[i].where & W(where)) == 0)
				continue;
			build(&w, (uint8_t)where, b, n);
			if (spec[i].id == MQTT_PROP_USER ||
			    (spec[i].id == MQTT_PROP_SUBSCRIPTION_ID &&
			    where == MQTT_PUBLISH))
				expect_ok(&w);
			else
				expect_packet(&w, MQTT_E_PROTOCOL, why);
		}
	}
	wbuf_free(&w);
}

/* Values the specification forbids, and edge values it allows. */
static const struct {
	uint8_t		 where;
	const uint8_t	*p;
	size_t		 n;
	int		 rc;
	const char	*why;
} values[] = {
#define V(where, rc, why, ...)	{ where, B(__VA_ARGS__), rc, why }
#define OK(where, ...)		V(where, 0, NULL, __VA_ARGS__)
#define PROTO(where, why, ...)	V(where, MQTT_E_PROTOCOL, why, __VA_ARGS__)
#define BAD(where, why, ...)	V(where, MQTT_E_MALFORMED, why, __VA_ARGS__)
	OK(MQTT_PUBLISH, 0x01, 0x00),
	PROTO(MQTT_PUBLISH, "Payload Format Indicator other than 0 or 1",
	    0x01, 0x02),
	PROTO(MQTT_PROPS_WILL, "Payload Format Indicator other than 0 or 1",
	    0x01, 0xff),
	PROTO(MQTT_CONNECT, "Request Problem Information other than 0 or 1",
	    0x17, 0x02),
	PROTO(MQTT_CONNECT, "Request Response Information other than 0 or 1",
	    0x19, 0x02),
	PROTO(MQTT_CONNACK, "Maximum QoS other than 0 or 1", 0x24, 0x02),
	OK(MQTT_CONNACK, 0x24, 0x00),
	PROTO(MQTT_CONNACK, "Retain Available other than 0 or 1", 0x25, 0x02),
	PROTO(MQTT_CONNACK, "Wildcard Subscription Available other than 0 or "
	    "1", 0x28, 0x02),
	PROTO(MQTT_CONNACK, "Subscription Identifier Available other than 0 "
	    "or 1", 0x29, 0x02),
	PROTO(MQTT_CONNACK, "Shared Subscription Available other than 0 or 1",
	    0x2a, 0x02),
	PROTO(MQTT_CONNECT, "Receive Maximum of 0", 0x21, 0x00, 0x00),
	PROTO(MQTT_CONNACK, "Receive Maximum of 0", 0x21, 0x00, 0x00),
	OK(MQTT_CONNECT, 0x21, 0xff, 0xff),
	PROTO(MQTT_CONNECT, "Maximum Packet Size of 0",
	    0x27, 0x00, 0x00, 0x00, 0x00),
	PROTO(MQTT_CONNACK, "Maximum Packet Size of 0",
	    0x27, 0x00, 0x00, 0x00, 0x00),
	OK(MQTT_CONNECT, 0x22, 0x00, 0x00),	/* Topic Alias Maximum */
	OK(MQTT_CONNACK, 0x13, 0x00, 0x00),	/* Server Keep Alive */
	OK(MQTT_DISCONNECT, 0x11, 0xff, 0xff, 0xff, 0xff),
	PROTO(MQTT_PUBLISH, "Topic Alias of 0", 0x23, 0x00, 0x00),
	PROTO(MQTT_PUBLISH, "Subscription Identifier of 0", 0x0b, 0x00),
	PROTO(MQTT_SUBSCRIBE, "Subscription Identifier of 0", 0x0b, 0x00),
	OK(MQTT_SUBSCRIBE, 0x0b, 0xff, 0xff, 0xff, 0x7f),
	BAD(MQTT_SUBSCRIBE, "over-long Subscription Identifier",
	    0x0b, 0x81, 0x00),
	BAD(MQTT_SUBSCRIBE, "Subscription Identifier longer than 4 bytes",
	    0x0b, 0xff, 0xff, 0xff, 0xff, 0x01),
	BAD(MQTT_SUBSCRIBE, "truncated property", 0x0b, 0x81),
	PROTO(MQTT_PUBLISH, "Response Topic is not a topic name",
	    0x08, 0x00, 0x03, 'a', '/', '#'),
	PROTO(MQTT_PROPS_WILL, "Response Topic is not a topic name",
	    0x08, 0x00, 0x01, '+'),
	PROTO(MQTT_PUBLISH, "Response Topic is not a topic name",
	    0x08, 0x00, 0x00),
	/* Strings: well-formed UTF-8 without U+0000; binary data is bytes. */
	BAD(MQTT_PUBLISH, "string is not well-formed UTF-8",
	    0x03, 0x00, 0x02, 0xc0, 0xaf),
	BAD(MQTT_PUBLISH, "string contains U+0000", 0x03, 0x00, 0x01, 0x00),
	BAD(MQTT_PUBACK, "string is not well-formed UTF-8",
	    0x1f, 0x00, 0x03, 0xed, 0xa0, 0x80),
	BAD(MQTT_CONNACK, "string is not well-formed UTF-8",
	    0x12, 0x00, 0x01, 0x80),
	BAD(MQTT_SUBSCRIBE, "string is not well-formed UTF-8",
	    0x26, 0x00, 0x01, 0xff, 0x00, 0x00),
	BAD(MQTT_DISCONNECT, "string contains U+0000",
	    0x26, 0x00, 0x00, 0x00, 0x02, 'v', 0x00),
	OK(MQTT_PUBLISH, 0x09, 0x00, 0x03, 0x00, 0xff, 0xc0),
	OK(MQTT_AUTH, 0x16, 0x00, 0x02, 0x00, 0xff),
	OK(MQTT_UNSUBACK, 0x26, 0x00, 0x00, 0x00, 0x00),
	/* Lengths inside the list. */
	BAD(MQTT_PUBLISH, "truncated property", 0x02, 0x00, 0x00, 0x00),
	BAD(MQTT_PUBLISH, "truncated property", 0x03, 0x00, 0x05, 'x'),
	BAD(MQTT_PUBLISH, "truncated property", 0x26, 0x00, 0x01, 'k'),
	BAD(MQTT_CONNECT, "truncated property", 0x21, 0x00),
	BAD(MQTT_CONNACK, "truncated property", 0x24),
#undef BAD
#undef PROTO
#undef OK
#undef V
};

static void
test_values(void **state)
{
	struct wbuf w;
	size_t i;

	(void)state;
	wbuf_init(&w);
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		build(&w, values[i].where, values[i].p, values[i].n);
		if (values[i].rc == 0)
			expect_ok(&w);
		else
			expect_packet(&w, values[i].rc, values[i].why);
	}
	wbuf_free(&w);
}

/* The Property Length itself. */
static void
test_property_length(void **state)
{
	(void)state;
	MALFORMED5("over-long Property Length",
	    0x30, 0x05, 0x00, 0x01, 't', 0x80, 0x00);
	MALFORMED5("Property Length longer than 4 bytes",
	    0x30, 0x07, 0x00, 0x01, 't', 0xff, 0xff, 0xff, 0xff);
	MALFORMED5("Property Length runs past the end of the packet",
	    0x30, 0x04, 0x00, 0x01, 't', 0x80);
	MALFORMED5("Property Length runs past the end of the packet",
	    0x30, 0x03, 0x00, 0x01, 't');
	MALFORMED5("Property Length runs past the end of the packet",
	    0x30, 0x05, 0x00, 0x01, 't', 0x05, 0x01);
	MALFORMED5("Property Length runs past the end of the packet",
	    0x30, 0x08, 0x00, 0x01, 't', 0xff, 0xff, 0xff, 0x7f, 0x00);
	/* A list that cuts a property in two; the rest is the payload. */
	MALFORMED5("truncated property",
	    0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x02, 0x00);
	/* A list that takes the payload's first byte as a property. */
	MALFORMED5("unknown property identifier",
	    0x30, 0x08, 0x00, 0x01, 't', 0x03, 0x01, 0x01, 'h', 'i');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placement),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_property_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
