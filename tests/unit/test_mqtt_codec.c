/* Unit tests of the MQTT codec (broker/mqtt/codec.c, broker/mqtt/decode.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mqtt/mqtt_codec.h"

/* A byte vector as (pointer, length). */
#define B(...)	(const uint8_t[]){ __VA_ARGS__ }, \
		sizeof((const uint8_t[]){ __VA_ARGS__ })

/* Decoding the bytes fails with this code and reason. */
#define EXPECT_ERR(rc, why, ...)	expect_err(rc, why, B(__VA_ARGS__))
#define EXPECT_BAD(why, ...)		EXPECT_ERR(MQTT_E_MALFORMED, why, __VA_ARGS__)

/* The wire form of "a/b" as a string field. */
#define S_AB	0x00, 0x03, 'a', '/', 'b'

static void
expect_err(int rc, const char *why, const uint8_t *b, size_t n)
{
	struct mqtt_packet p;

	assert_int_equal(mqtt_decode(b, n, MQTT_LEVEL_311, &p), rc);
	assert_non_null(p.error);
	if (why != NULL)
		assert_string_equal(p.error, why);
	mqtt_packet_free(&p);
}

static void
expect_wbuf(struct wbuf *w, const uint8_t *want, size_t n)
{
	assert_int_equal(w->len, n);
	assert_memory_equal(w->data, want, n);
}

/* Decodes b, which must be one whole packet, and checks that encoding the
 * result gives the same bytes back. */
static void
decode_ok(const uint8_t *b, size_t n, struct mqtt_packet *p)
{
	struct wbuf w;
	size_t total;

	assert_int_equal(mqtt_frame(b, n, MQTT_MAX_PACKET, &total), 1);
	assert_int_equal(total, n);
	assert_int_equal(mqtt_decode(b, n, MQTT_LEVEL_311, p), 0);
	assert_null(p->error);
	assert_null(mqtt_check(p));
	assert_int_equal(p->flags, b[0] & 0x0f);
	wbuf_init(&w);
	assert_int_equal(mqtt_encode(&w, p), 0);
	expect_wbuf(&w, b, n);
	wbuf_free(&w);
}

/* Encodes p, decodes the bytes into out and checks type and bytes. */
static void
roundtrip(const struct mqtt_packet *p, struct wbuf *w, struct mqtt_packet *out)
{
	wbuf_reset(w);
	assert_int_equal(mqtt_encode(w, p), 0);
	decode_ok(w->data, w->len, out);
	assert_int_equal(out->type, p->type);
}

/* The encoders of 3.1.1's CONNACK and SUBACK, as the broker calls them. */
static int
enc_connack(struct wbuf *w, bool present, uint8_t rc)
{
	struct mqtt_connack c = { .session_present = present,
	    .return_code = rc };

	return mqtt_enc_connack(w, MQTT_LEVEL_311, &c);
}

static int
enc_suback(struct wbuf *w, uint16_t packet_id, const uint8_t *codes,
    size_t n)
{
	struct mqtt_suback s = { .packet_id = packet_id, .n = n,
	    .codes = codes };

	return mqtt_enc_suback(w, MQTT_LEVEL_311, MQTT_SUBACK, &s);
}

static void
test_varint_len(void **state)
{
	(void)state;
	assert_int_equal(mqtt_varint_len(0), 1);
	assert_int_equal(mqtt_varint_len(127), 1);
	assert_int_equal(mqtt_varint_len(128), 2);
	assert_int_equal(mqtt_varint_len(16383), 2);
	assert_int_equal(mqtt_varint_len(16384), 3);
	assert_int_equal(mqtt_varint_len(2097151), 3);
	assert_int_equal(mqtt_varint_len(2097152), 4);
	assert_int_equal(mqtt_varint_len(268435455), 4);
	assert_int_equal(mqtt_varint_len(268435456), 0);
	assert_int_equal(mqtt_varint_len(SIZE_MAX), 0);
}

/* The table of 2.2.3, as the header of a QoS 0 PUBLISH. */
static const struct {
	size_t		rem;
	uint8_t		hdr[5];
	size_t		hlen;
} edges[] = {
	{ 0,		{ 0x30, 0x00 },				2 },
	{ 127,		{ 0x30, 0x7f },				2 },
	{ 128,		{ 0x30, 0x80, 0x01 },			3 },
	{ 16383,	{ 0x30, 0xff, 0x7f },			3 },
	{ 16384,	{ 0x30, 0x80, 0x80, 0x01 },		4 },
	{ 2097151,	{ 0x30, 0xff, 0xff, 0x7f },		4 },
	{ 2097152,	{ 0x30, 0x80, 0x80, 0x80, 0x01 },	5 },
	{ 268435455,	{ 0x30, 0xff, 0xff, 0xff, 0x7f },	5 },
};

static void
test_frame_edges(void **state)
{
	size_t i, total, want;

	(void)state;
	for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		want = edges[i].hlen + edges[i].rem;
		assert_int_equal(mqtt_frame(edges[i].hdr, edges[i].hlen,
		    MQTT_MAX_PACKET, &total), edges[i].rem == 0 ? 1 : 0);
		assert_int_equal(total, want);
		/* Every shorter header needs more. */
		for (size_t k = 0; k < edges[i].hlen; k++) {
			assert_int_equal(mqtt_frame(edges[i].hdr, k,
			    MQTT_MAX_PACKET, &total), 0);
			assert_int_equal(total, 0);
		}
		/* The limit is known from the header alone. */
		assert_int_equal(mqtt_frame(edges[i].hdr, edges[i].hlen,
		    want - 1, &total), MQTT_E_TOO_LARGE);
		assert_int_equal(mqtt_frame(edges[i].hdr, edges[i].hlen,
		    want, &total), edges[i].rem == 0 ? 1 : 0);
	}
	assert_int_equal(edges[7].hlen + edges[7].rem, MQTT_MAX_PACKET);
}

/* The level of a CONNECT from its first bytes, however long the rest. */
static void
test_connect_level(void **state)
{
	static const uint8_t v5[] = { 0x10, 0x80, 0x80, 0x01, 0x00, 0x04, 'M', 'Q', 'T', 'T', 5 };
	static const uint8_t v31[] = { 0x10, 0x7f, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 3 };
	uint8_t level = 0;

	(void)state;
	for (size_t k = 0; k < sizeof(v5); k++)
		assert_int_equal(mqtt_connect_level(v5, k, &level), 0);
	assert_int_equal(mqtt_connect_level(v5, sizeof(v5), &level), 1);
	assert_int_equal(level, 5);
	assert_int_equal(mqtt_connect_level(v31, sizeof(v31), &level), 1);
	assert_int_equal(level, 3);
	assert_int_equal(mqtt_connect_level(B(0x30, 0x7f, 0x00, 0x04, 'M', 'Q', 'T', 'T', 5),
	    &level), -1);
	assert_int_equal(mqtt_connect_level(B(0x10, 0x7f, 0x00, 0x04, 'M', 'Q', 'T', 't', 5),
	    &level), -1);
	assert_int_equal(mqtt_connect_level(B(0x10, 0x7f, 0x00, 0x05, 'M', 'Q', 'T', 'T', 5),
	    &level), -1);
	assert_int_equal(mqtt_connect_level(B(0x10, 0x80, 0x00), &level), -1);
}

/* Whole packets up to 2 MB: the encoder writes the same header, frame
 * finds the end, decode reads the payload. */
static void
test_frame_edges_encoded(void **state)
{
	struct mqtt_publish pub = { .topic = "t" };
	struct mqtt_packet p;
	struct wbuf w;
	uint8_t *payload;
	size_t i, total;

	(void)state;
	payload = calloc(1, 2097152);
	assert_non_null(payload);
	pub.payload = payload;
	wbuf_init(&w);
	for (i = 1; i < 7; i++) {
		pub.len = edges[i].rem - 3;	/* topic "t" takes 3 bytes */
		wbuf_reset(&w);
		assert_int_equal(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub), 0);
		assert_int_equal(w.len, edges[i].hlen + edges[i].rem);
		assert_memory_equal(w.data, edges[i].hdr, edges[i].hlen);
		assert_int_equal(mqtt_frame(w.data, w.len, MQTT_MAX_PACKET,
		    &total), 1);
		assert_int_equal(total, w.len);
		assert_int_equal(mqtt_frame(w.data, w.len - 1, MQTT_MAX_PACKET,
		    &total), 0);
		assert_int_equal(total, w.len);
		assert_int_equal(mqtt_decode(w.data, w.len, MQTT_LEVEL_311, &p), 0);
		assert_string_equal(p.u.publish.topic, "t");
		assert_int_equal(p.u.publish.len, pub.len);
		assert_ptr_equal(p.u.publish.payload, w.data + w.len - pub.len);
		mqtt_packet_free(&p);
	}
	wbuf_free(&w);
	free(payload);
}

/* The head and then the payload are the packet, at the edges of the
 * Remaining Length, at both levels; a refused packet appends nothing. */
static void
test_publish_head(void **state)
{
	static const uint8_t levels[] = { MQTT_LEVEL_311, MQTT_LEVEL_5 };
	struct mqtt_publish pub = { .topic = "t", .qos = 1, .packet_id = 7 };
	struct wbuf full, head;
	uint8_t *payload;

	(void)state;
	payload = malloc(2097152);
	assert_non_null(payload);
	for (size_t i = 0; i < 2097152; i++)
		payload[i] = (uint8_t)(i * 7);
	pub.payload = payload;
	wbuf_init(&full);
	wbuf_init(&head);
	for (size_t l = 0; l < 2; l++) {
		for (size_t i = 0; i < 7; i++) {
			pub.len = edges[i].rem > 8 ? edges[i].rem - 8 : 0;
			wbuf_reset(&full);
			wbuf_reset(&head);
			assert_int_equal(mqtt_enc_publish(&full, levels[l], &pub), 0);
			assert_int_equal(mqtt_enc_publish_head(&head, levels[l], &pub), 0);
			assert_int_equal(head.len + pub.len, full.len);
			assert_memory_equal(head.data, full.data, head.len);
			if (pub.len > 0)
				assert_memory_equal(full.data + head.len, payload, pub.len);
		}
	}
	wbuf_reset(&head);
	pub.topic = "a/+";
	assert_int_equal(mqtt_enc_publish_head(&head, MQTT_LEVEL_311, &pub), -1);
	assert_int_equal(head.len, 0);
	wbuf_free(&full);
	wbuf_free(&head);
	free(payload);
}

static void
test_frame_malformed(void **state)
{
	static const struct {
		uint8_t		b[6];
		size_t		n;
		const char	*why;
	} bad[] = {
		{ { 0x30, 0xff, 0xff, 0xff, 0xff, 0x7f }, 6,
		    "Remaining Length longer than 4 bytes" },
		{ { 0x30, 0x80, 0x80, 0x80, 0x80 }, 5,
		    "Remaining Length longer than 4 bytes" },
		{ { 0x30, 0x80, 0x00 }, 3, "over-long Remaining Length" },
		{ { 0x30, 0xff, 0x00 }, 3, "over-long Remaining Length" },
		{ { 0x30, 0x80, 0x80, 0x00 }, 4, "over-long Remaining Length" },
		{ { 0xc0, 0x80, 0x80, 0x80, 0x00 }, 5,
		    "over-long Remaining Length" },
	};
	size_t i, total;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mqtt_frame(bad[i].b, bad[i].n,
		    MQTT_MAX_PACKET, &total), MQTT_E_MALFORMED);
		assert_int_equal(total, 0);
		expect_err(MQTT_E_MALFORMED, bad[i].why, bad[i].b, bad[i].n);
	}
	/* Not yet decidable: three continuation bytes and no 4th. */
	assert_int_equal(mqtt_frame(B(0x30, 0xff, 0xff, 0xff), MQTT_MAX_PACKET,
	    &total), 0);
	EXPECT_BAD("truncated fixed header", 0x30, 0xff, 0xff, 0xff);
	EXPECT_BAD("truncated fixed header", 0xc0);
	expect_err(MQTT_E_MALFORMED, "empty packet", (const uint8_t *)"", 0);
}

static void
test_frame_max_packet(void **state)
{
	static const uint8_t pkt[] = { 0x30, 0x07, S_AB, 'h', 'i' };
	size_t total;

	(void)state;
	assert_int_equal(mqtt_frame(pkt, sizeof(pkt), 9, &total), 1);
	assert_int_equal(total, 9);
	assert_int_equal(mqtt_frame(pkt, sizeof(pkt), 8, &total),
	    MQTT_E_TOO_LARGE);
	assert_int_equal(mqtt_frame(pkt, 2, 8, &total), MQTT_E_TOO_LARGE);
	assert_int_equal(total, 9);
	assert_int_equal(mqtt_frame(pkt, 1, 8, &total), 0);
	/* A second packet behind the first is not this one's business. */
	assert_int_equal(mqtt_frame(B(0xc0, 0x00, 0xd0, 0x00), 2, &total), 1);
	assert_int_equal(total, 2);
	assert_int_equal(mqtt_frame(B(0xc0, 0x00), 1, &total),
	    MQTT_E_TOO_LARGE);
}

/* mosquitto_pub -i mosqpub -t a/b -m hi: keep alive 60, clean session. */
static const uint8_t connect_mosq[] = {
	0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c,
	0x00, 0x07, 'm', 'o', 's', 'q', 'p', 'u', 'b',
};

static void
test_connect_vector(void **state)
{
	struct mqtt_connect c = {
		.level = MQTT_LEVEL_311, .clean_session = true,
		.keepalive = 60, .client_id = "mosqpub",
	};
	struct mqtt_packet p;
	struct wbuf w;

	(void)state;
	decode_ok(connect_mosq, sizeof(connect_mosq), &p);
	assert_int_equal(p.type, MQTT_CONNECT);
	assert_int_equal(p.u.connect.level, 4);
	assert_true(p.u.connect.clean_session);
	assert_int_equal(p.u.connect.keepalive, 60);
	assert_string_equal(p.u.connect.client_id, "mosqpub");
	assert_false(p.u.connect.will);
	assert_null(p.u.connect.will_topic);
	assert_null(p.u.connect.will_payload);
	assert_null(p.u.connect.username);
	assert_null(p.u.connect.password);
	mqtt_packet_free(&p);
	wbuf_init(&w);
	assert_int_equal(mqtt_enc_connect(&w, &c), 0);
	expect_wbuf(&w, connect_mosq, sizeof(connect_mosq));
	wbuf_free(&w);
}

static void
test_connect_full(void **state)
{
	struct mqtt_packet in = { .type = MQTT_CONNECT }, p;
	struct mqtt_connect *c = &in.u.connect;
	struct wbuf w;

	(void)state;
	c->level = MQTT_LEVEL_311;
	c->keepalive = 65535;
	c->client_id = "client-\xc3\xa9";
	c->will = true;
	c->will_qos = 2;
	c->will_retain = true;
	c->will_topic = "clients/gone";
	c->will_payload = (const uint8_t *)"\0bye";
	c->will_len = 4;
	c->username = "alice";
	c->password = (const uint8_t *)"s\0cret";
	c->password_len = 6;
	wbuf_init(&w);
	roundtrip(&in, &w, &p);
	/* Flags: user name, password, will retain, will QoS 2, will. */
	assert_int_equal(w.data[2 + 6 + 1], 0xf4);
	assert_int_equal(p.u.connect.level, 4);
	assert_false(p.u.connect.clean_session);
	assert_int_equal(p.u.connect.keepalive, 65535);
	assert_string_equal(p.u.connect.client_id, "client-\xc3\xa9");
	assert_true(p.u.connect.will);
	assert_int_equal(p.u.connect.will_qos, 2);
	assert_true(p.u.connect.will_retain);
	assert_string_equal(p.u.connect.will_topic, "clients/gone");
	assert_int_equal(p.u.connect.will_len, 4);
	assert_memory_equal(p.u.connect.will_payload, "\0bye", 4);
	assert_string_equal(p.u.connect.username, "alice");
	assert_int_equal(p.u.connect.password_len, 6);
	assert_memory_equal(p.u.connect.password, "s\0cret", 6);
	mqtt_packet_free(&p);
	/* Empty client id, empty will message, empty password. */
	c->client_id = "";
	c->will_payload = NULL;
	c->will_len = 0;
	c->password = (const uint8_t *)"";
	c->password_len = 0;
	roundtrip(&in, &w, &p);
	assert_string_equal(p.u.connect.client_id, "");
	assert_non_null(p.u.connect.will_payload);
	assert_int_equal(p.u.connect.will_len, 0);
	assert_non_null(p.u.connect.password);
	assert_int_equal(p.u.connect.password_len, 0);
	mqtt_packet_free(&p);
	wbuf_free(&w);
}

static void
test_connect_31(void **state)
{
	static const uint8_t v31[] = {
		0x10, 0x15, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03,
		0x02, 0x00, 0x3c, 0x00, 0x07, 'm', 'o', 's', 'q', 'p', 'u', 'b',
	};
	struct mqtt_packet p;

	(void)state;
	decode_ok(v31, sizeof(v31), &p);
	assert_int_equal(p.u.connect.level, MQTT_LEVEL_31);
	assert_string_equal(p.u.connect.client_id, "mosqpub");
	mqtt_packet_free(&p);
	/* User name and password flags, the fields left out: taken as
	 * absent at level 3, malformed at level 4. */
	assert_int_equal(mqtt_decode(B(0x10, 0x0f, 0x00, 0x06,
	    'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0xc2, 0x00, 0x3c, 0x00, 0x01,
	    'x'), MQTT_LEVEL_311, &p), 0);
	assert_null(p.u.connect.username);
	assert_null(p.u.connect.password);
	mqtt_packet_free(&p);
	assert_int_equal(mqtt_decode(B(0x10, 0x12, 0x00, 0x06,
	    'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0xc2, 0x00, 0x3c, 0x00, 0x01,
	    'x', 0x00, 0x01, 'u'), MQTT_LEVEL_311, &p), 0);
	assert_string_equal(p.u.connect.username, "u");
	assert_null(p.u.connect.password);
	mqtt_packet_free(&p);
	EXPECT_BAD("string runs past the end of the packet",
	    0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xc2, 0x00, 0x3c,
	    0x00, 0x01, 'x');
	EXPECT_BAD("password runs past the end of the packet",
	    0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xc2, 0x00, 0x3c,
	    0x00, 0x01, 'x', 0x00, 0x01, 'u');
	/* A field cut in half is malformed at level 3 as well. */
	EXPECT_BAD("string runs past the end of the packet",
	    0x10, 0x10, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x82,
	    0x00, 0x3c, 0x00, 0x01, 'x', 0x00);
}

static void
test_connect_protocol(void **state)
{
	struct mqtt_packet p;

	(void)state;
	/* Known names at the wrong level: CONNACK 0x01. */
	EXPECT_ERR(MQTT_E_BAD_LEVEL, "unsupported protocol level",
	    0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x03, 0x02, 0x00, 0x3c,
	    0x00, 0x00);
	EXPECT_ERR(MQTT_E_BAD_LEVEL, "unsupported protocol level",
	    0x10, 0x0e, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x04, 0x02,
	    0x00, 0x3c, 0x00, 0x00);
	/* A level the codec does not know (MQTT 5.0's is 5): the level is
	 * reported, the rest is not looked at. */
	assert_int_equal(mqtt_decode(B(0x10, 0x10, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x03,
	    'a', 'b', 'c'), MQTT_LEVEL_311, &p), MQTT_E_BAD_LEVEL);
	assert_int_equal(p.type, MQTT_CONNECT);
	assert_int_equal(p.u.connect.level, 6);
	assert_int_equal(p.level, 6);
	assert_null(p.u.connect.client_id);
	mqtt_packet_free(&p);
	EXPECT_ERR(MQTT_E_BAD_LEVEL, NULL, 0x10, 0x07, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x00);
	/* Other names: close without CONNACK, whatever follows. */
	EXPECT_ERR(MQTT_E_PROTOCOL_NAME, "unknown protocol name",
	    0x10, 0x0c, 0x00, 0x04, 'm', 'q', 't', 't', 0x04, 0x02, 0x00, 0x3c,
	    0x00, 0x00);
	EXPECT_ERR(MQTT_E_PROTOCOL_NAME, "unknown protocol name",
	    0x10, 0x0d, 0x00, 0x05, 'M', 'Q', 'T', 'T', 'X', 0x04, 0x02, 0x00,
	    0x3c, 0x00, 0x00);
	EXPECT_ERR(MQTT_E_PROTOCOL_NAME, "unknown protocol name",
	    0x10, 0x05, 0x00, 0x03, 'M', 'Q', 'T');
	EXPECT_ERR(MQTT_E_PROTOCOL_NAME, "unknown protocol name",
	    0x10, 0x02, 0x00, 0x00);
	EXPECT_ERR(MQTT_E_PROTOCOL_NAME, "unknown protocol name",
	    0x10, 0x06, 0x00, 0x04, 'H', 'T', 'T', 'P');
	/* Too short to tell. */
	EXPECT_BAD("protocol name runs past the end of the packet",
	    0x10, 0x04, 0x00, 0x04, 'M', 'Q');
	EXPECT_BAD("protocol name runs past the end of the packet",
	    0x10, 0x01, 0x00);
	EXPECT_BAD("truncated CONNECT", 0x10, 0x06, 0x00, 0x04,
	    'M', 'Q', 'T', 'T');
	EXPECT_BAD("truncated CONNECT", 0x10, 0x09, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00);
	EXPECT_BAD("string runs past the end of the packet", 0x10, 0x0a,
	    0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c);
}

/* A level-4 CONNECT with these flags and this payload after the id "c". */
static void
expect_connect_bad(uint8_t flags, const char *why, const uint8_t *rest,
    size_t n)
{
	uint8_t b[64] = { 0x10, 0, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
	    flags, 0x00, 0x3c, 0x00, 0x01, 'c' };

	assert_true(15 + n <= sizeof(b));
	if (n > 0)
		memcpy(b + 15, rest, n);
	b[1] = (uint8_t)(13 + n);
	expect_err(MQTT_E_MALFORMED, why, b, 15 + n);
}

static void
test_connect_flags(void **state)
{
	(void)state;
	expect_connect_bad(0x03, "reserved CONNECT flag set", NULL, 0);
	expect_connect_bad(0x01, "reserved CONNECT flag set", NULL, 0);
	expect_connect_bad(0x08, "will QoS or retain without a will", NULL, 0);
	expect_connect_bad(0x10, "will QoS or retain without a will", NULL, 0);
	expect_connect_bad(0x20, "will QoS or retain without a will", NULL, 0);
	expect_connect_bad(0x1c, "will QoS 3", B(S_AB, 0x00, 0x00));
	expect_connect_bad(0x40, "password without a user name",
	    B(0x00, 0x01, 'p'));
	expect_connect_bad(0x04, "string runs past the end of the packet",
	    B(0x00));
	expect_connect_bad(0x04, "will message runs past the end of the packet",
	    B(S_AB, 0x00, 0x02, 'x'));
	expect_connect_bad(0x04, "empty topic", B(0x00, 0x00, 0x00, 0x00));
	expect_connect_bad(0x04, "wildcard (+ or #) in a topic name",
	    B(0x00, 0x03, 'a', '/', '#', 0x00, 0x00));
	expect_connect_bad(0x04, "wildcard (+ or #) in a topic name",
	    B(0x00, 0x01, '+', 0x00, 0x00));
	expect_connect_bad(0x80, "string runs past the end of the packet",
	    B(0x00, 0x05, 'u'));
	expect_connect_bad(0x80, "string contains U+0000",
	    B(0x00, 0x02, 'u', 0x00));
	expect_connect_bad(0x80, "string is not well-formed UTF-8",
	    B(0x00, 0x02, 0xc0, 0xaf));
	expect_connect_bad(0xc0, "password runs past the end of the packet",
	    B(0x00, 0x01, 'u', 0x00, 0x02, 'p'));
	expect_connect_bad(0x00, "trailing bytes in the packet", B(0x00));
	expect_connect_bad(0xc0, "trailing bytes in the packet",
	    B(0x00, 0x01, 'u', 0x00, 0x01, 'p', 0x00));
}

static void
test_connect_client_id(void **state)
{
	struct mqtt_packet p;

	(void)state;
	/* An empty id decodes (the server decides, 3.1.3-8). */
	assert_int_equal(mqtt_decode(B(0x10, 0x0c, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x00, 0x00, 0x00),
	    MQTT_LEVEL_311, &p), 0);
	assert_string_equal(p.u.connect.client_id, "");
	assert_false(p.u.connect.clean_session);
	assert_int_equal(p.u.connect.keepalive, 0);
	mqtt_packet_free(&p);
	EXPECT_BAD("string contains U+0000", 0x10, 0x0e, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 'a', 0x00);
	EXPECT_BAD("string contains U+0000", 0x10, 0x0d, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x00);
	/* Overlong '/', a surrogate, above U+10FFFF, a stray continuation
	 * byte, a cut sequence. */
	EXPECT_BAD("string is not well-formed UTF-8", 0x10, 0x0e, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 0xc0, 0xaf);
	EXPECT_BAD("string is not well-formed UTF-8", 0x10, 0x0f, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x03,
	    0xed, 0xa0, 0x80);
	EXPECT_BAD("string is not well-formed UTF-8", 0x10, 0x10, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x04,
	    0xf4, 0x90, 0x80, 0x80);
	EXPECT_BAD("string is not well-formed UTF-8", 0x10, 0x0d, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x80);
	EXPECT_BAD("string is not well-formed UTF-8", 0x10, 0x0e, 0x00, 0x04,
	    'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 0xe2, 0x82);
}

static void
test_connack(void **state)
{
	struct mqtt_packet p;
	struct wbuf w;
	uint8_t rc;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(enc_connack(&w, true, MQTT_CONNACK_ACCEPTED), 0);
	expect_wbuf(&w, B(0x20, 0x02, 0x01, 0x00));
	decode_ok(w.data, w.len, &p);
	assert_int_equal(p.type, MQTT_CONNACK);
	assert_true(p.u.connack.session_present);
	assert_int_equal(p.u.connack.return_code, 0);
	mqtt_packet_free(&p);
	for (rc = 0; rc <= MQTT_CONNACK_NOT_AUTHORIZED; rc++) {
		wbuf_reset(&w);
		assert_int_equal(enc_connack(&w, false, rc), 0);
		expect_wbuf(&w, B(0x20, 0x02, 0x00, rc));
		decode_ok(w.data, w.len, &p);
		assert_false(p.u.connack.session_present);
		assert_int_equal(p.u.connack.return_code, rc);
		mqtt_packet_free(&p);
	}
	wbuf_free(&w);
	EXPECT_BAD("reserved CONNACK flag set", 0x20, 0x02, 0x02, 0x00);
	EXPECT_BAD("reserved CONNACK flag set", 0x20, 0x02, 0x81, 0x00);
	EXPECT_BAD("reserved CONNACK return code", 0x20, 0x02, 0x00, 0x06);
	EXPECT_BAD("reserved CONNACK return code", 0x20, 0x02, 0x00, 0xff);
	EXPECT_BAD("session present on a refused connection",
	    0x20, 0x02, 0x01, 0x05);
	EXPECT_BAD("truncated CONNACK", 0x20, 0x01, 0x00);
	EXPECT_BAD("trailing bytes in the packet", 0x20, 0x03, 0x00, 0x00, 0x00);
}

static void
test_publish_vectors(void **state)
{
	struct mqtt_packet p;

	(void)state;
	/* QoS 0, retained: no packet identifier. */
	decode_ok(B(0x31, 0x07, S_AB, 'h', 'i'), &p);
	assert_int_equal(p.type, MQTT_PUBLISH);
	assert_int_equal(p.u.publish.qos, 0);
	assert_true(p.u.publish.retain);
	assert_false(p.u.publish.dup);
	assert_string_equal(p.u.publish.topic, "a/b");
	assert_int_equal(p.u.publish.packet_id, 0);
	assert_int_equal(p.u.publish.len, 2);
	assert_memory_equal(p.u.publish.payload, "hi", 2);
	mqtt_packet_free(&p);
	/* The example of 3.3.2.3: topic "a/b", packet identifier 10. */
	decode_ok(B(0x32, 0x09, S_AB, 0x00, 0x0a, 'h', 'i'), &p);
	assert_int_equal(p.u.publish.qos, 1);
	assert_int_equal(p.u.publish.packet_id, 10);
	assert_int_equal(p.u.publish.len, 2);
	mqtt_packet_free(&p);
	/* QoS 2, DUP, empty payload, highest packet identifier. */
	decode_ok(B(0x3c, 0x07, S_AB, 0xff, 0xff), &p);
	assert_int_equal(p.u.publish.qos, 2);
	assert_true(p.u.publish.dup);
	assert_false(p.u.publish.retain);
	assert_int_equal(p.u.publish.packet_id, 65535);
	assert_int_equal(p.u.publish.len, 0);
	assert_non_null(p.u.publish.payload);
	mqtt_packet_free(&p);
	/* A payload is bytes: NUL and invalid UTF-8 are fine. */
	decode_ok(B(0x30, 0x07, S_AB, 0x00, 0xff), &p);
	assert_int_equal(p.u.publish.len, 2);
	assert_memory_equal(p.u.publish.payload, "\0\xff", 2);
	mqtt_packet_free(&p);
	/* Multi-byte UTF-8 and a '$' topic. */
	decode_ok(B(0x30, 0x08, 0x00, 0x06, '$', 'S', 'Y', 'S', 0xc3, 0xa9), &p);
	assert_string_equal(p.u.publish.topic, "$SYS\xc3\xa9");
	mqtt_packet_free(&p);
}

static void
test_publish_roundtrip(void **state)
{
	static const uint8_t big_payload[70000];
	struct mqtt_packet in = { .type = MQTT_PUBLISH }, p;
	struct mqtt_publish *pub = &in.u.publish;
	struct wbuf w;
	uint8_t qos;

	(void)state;
	wbuf_init(&w);
	pub->topic = "sensors/temp";
	pub->payload = big_payload;
	pub->len = sizeof(big_payload);
	for (qos = 0; qos <= 2; qos++) {
		pub->qos = qos;
		pub->packet_id = qos == 0 ? 0 : 4242;
		pub->dup = qos > 0;
		pub->retain = qos != 1;
		roundtrip(&in, &w, &p);
		assert_int_equal(w.data[0], 0x30 | (qos > 0 ? 0x8 : 0) |
		    qos << 1 | (qos != 1 ? 1 : 0));
		assert_int_equal(p.u.publish.qos, qos);
		assert_int_equal(p.u.publish.dup, qos > 0);
		assert_int_equal(p.u.publish.retain, qos != 1);
		assert_int_equal(p.u.publish.packet_id, pub->packet_id);
		assert_string_equal(p.u.publish.topic, "sensors/temp");
		assert_int_equal(p.u.publish.len, sizeof(big_payload));
		assert_memory_equal(p.u.publish.payload, big_payload,
		    sizeof(big_payload));
		mqtt_packet_free(&p);
	}
	pub->payload = NULL;
	pub->len = 0;
	roundtrip(&in, &w, &p);
	assert_int_equal(p.u.publish.len, 0);
	mqtt_packet_free(&p);
	wbuf_free(&w);
}

static void
test_publish_bad(void **state)
{
	(void)state;
	EXPECT_BAD("PUBLISH QoS 3", 0x36, 0x07, S_AB, 0x00, 0x01);
	EXPECT_BAD("PUBLISH QoS 3", 0x37, 0x07, S_AB, 0x00, 0x01);
	EXPECT_BAD("PUBLISH QoS 3", 0x3e, 0x07, S_AB, 0x00, 0x01);
	/* Refused on the first byte, before a packet identifier is read. */
	EXPECT_BAD("PUBLISH QoS 3", 0x36, 0x05, S_AB);
	EXPECT_BAD("DUP flag on a QoS 0 PUBLISH", 0x38, 0x05, S_AB);
	EXPECT_BAD("DUP flag on a QoS 0 PUBLISH", 0x39, 0x05, S_AB);
	EXPECT_BAD("packet identifier 0", 0x32, 0x07, S_AB, 0x00, 0x00);
	EXPECT_BAD("packet identifier 0", 0x34, 0x07, S_AB, 0x00, 0x00);
	EXPECT_BAD("truncated packet identifier", 0x32, 0x06, S_AB, 0x01);
	EXPECT_BAD("truncated packet identifier", 0x34, 0x05, S_AB);
	EXPECT_BAD("wildcard (+ or #) in a topic name",
	    0x30, 0x05, 0x00, 0x03, 'a', '/', '+');
	EXPECT_BAD("wildcard (+ or #) in a topic name",
	    0x30, 0x03, 0x00, 0x01, '#');
	EXPECT_BAD("wildcard (+ or #) in a topic name",
	    0x30, 0x04, 0x00, 0x02, 'a', '#');
	EXPECT_BAD("wildcard (+ or #) in a topic name",
	    0x30, 0x07, 0x00, 0x05, 'a', '/', '+', '/', 'b');
	EXPECT_BAD("empty topic", 0x30, 0x04, 0x00, 0x00, 'h', 'i');
	EXPECT_BAD("string contains U+0000", 0x30, 0x05, 0x00, 0x03,
	    'a', 0x00, 'b');
	EXPECT_BAD("topic is not well-formed UTF-8",
	    0x30, 0x04, 0x00, 0x02, 0xc0, 0xaf);
	EXPECT_BAD("topic is not well-formed UTF-8",
	    0x30, 0x05, 0x00, 0x03, 0xed, 0xbf, 0xbf);
	EXPECT_BAD("topic is not well-formed UTF-8",
	    0x30, 0x06, 0x00, 0x04, 0xf4, 0x90, 0x80, 0x80);
	EXPECT_BAD("topic is not well-formed UTF-8",
	    0x30, 0x06, 0x00, 0x04, 0xf8, 0x88, 0x80, 0x80);
	EXPECT_BAD("string runs past the end of the packet",
	    0x30, 0x04, 0x00, 0x03, 'a', '/');
	EXPECT_BAD("string runs past the end of the packet", 0x30, 0x01, 0x00);
	EXPECT_BAD("string runs past the end of the packet", 0x30, 0x00);
}

/* The acks: PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK. */
static void
test_acks(void **state)
{
	static const uint8_t ack_types[] = { MQTT_PUBACK, MQTT_PUBREC,
	    MQTT_PUBREL, MQTT_PUBCOMP, MQTT_UNSUBACK };
	struct mqtt_packet p;
	struct wbuf w;
	uint8_t first;
	size_t i;

	(void)state;
	wbuf_init(&w);
	for (i = 0; i < sizeof(ack_types); i++) {
		first = (uint8_t)(ack_types[i] << 4 |
		    (ack_types[i] == MQTT_PUBREL ? 0x2 : 0));
		wbuf_reset(&w);
		assert_int_equal(mqtt_enc_ack(&w, ack_types[i], 0x1234), 0);
		expect_wbuf(&w, B(first, 0x02, 0x12, 0x34));
		decode_ok(w.data, w.len, &p);
		assert_int_equal(p.type, ack_types[i]);
		assert_int_equal(ack_types[i] == MQTT_UNSUBACK ?
		    p.u.suback.packet_id : p.u.ack.packet_id, 0x1234);
		mqtt_packet_free(&p);
		EXPECT_BAD("packet identifier 0", first, 0x02, 0x00, 0x00);
		EXPECT_BAD("truncated packet identifier", first, 0x01, 0x01);
		EXPECT_BAD("truncated packet identifier", first, 0x00);
		EXPECT_BAD("trailing bytes in the packet",
		    first, 0x03, 0x00, 0x01, 0x00);
		assert_int_equal(mqtt_enc_ack(&w, ack_types[i], 0), -1);
	}
	assert_string_equal(mqtt_type_name(MQTT_PUBREL), "PUBREL");
	wbuf_free(&w);
}

static void
test_subscribe(void **state)
{
	struct mqtt_sub_item items[] = {
		{ .filter = "a/b", .qos = 0 }, { .filter = "a/+/c", .qos = 1 },
		{ .filter = "#", .qos = 2 }, { .filter = "$SYS/#", .qos = 1 },
	};
	struct mqtt_packet in = { .type = MQTT_SUBSCRIBE }, p;
	struct wbuf w;
	size_t i;

	(void)state;
	/* The packet identifier 10 and filter "a/b" at QoS 1. */
	decode_ok(B(0x82, 0x08, 0x00, 0x0a, S_AB, 0x01), &p);
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_int_equal(p.u.subscribe.packet_id, 10);
	assert_int_equal(p.u.subscribe.n, 1);
	assert_string_equal(p.u.subscribe.items[0].filter, "a/b");
	assert_int_equal(p.u.subscribe.items[0].qos, 1);
	mqtt_packet_free(&p);
	/* A wildcard in a share's group is for the SUBACK to refuse (0x80);
	 * one in its filter is a filter's misplaced wildcard (below). */
	decode_ok(B(0x82, 0x10, 0x00, 0x0a, 0x00, 0x0b, '$', 's', 'h', 'a', 'r', 'e', '/',
	    'g', '+', '/', 'a', 0x01), &p);
	assert_string_equal(p.u.subscribe.items[0].filter, "$share/g+/a");
	mqtt_packet_free(&p);
	in.u.subscribe.packet_id = 65535;
	in.u.subscribe.n = 4;
	in.u.subscribe.items = items;
	wbuf_init(&w);
	roundtrip(&in, &w, &p);
	assert_int_equal(w.data[0], 0x82);
	assert_int_equal(p.u.subscribe.packet_id, 65535);
	assert_int_equal(p.u.subscribe.n, 4);
	for (i = 0; i < 4; i++) {
		assert_string_equal(p.u.subscribe.items[i].filter,
		    items[i].filter);
		assert_int_equal(p.u.subscribe.items[i].qos, items[i].qos);
	}
	mqtt_packet_free(&p);
	wbuf_free(&w);
}

static void
test_subscribe_bad(void **state)
{
	(void)state;
	EXPECT_BAD("SUBSCRIBE without topic filters", 0x82, 0x02, 0x00, 0x01);
	EXPECT_BAD("packet identifier 0", 0x82, 0x06, 0x00, 0x00,
	    0x00, 0x01, 'a', 0x00);
	EXPECT_BAD("truncated packet identifier", 0x82, 0x01, 0x00);
	EXPECT_BAD("requested QoS above 2", 0x82, 0x06, 0x00, 0x01,
	    0x00, 0x01, 'a', 0x03);
	EXPECT_BAD("reserved subscription option set", 0x82, 0x06, 0x00, 0x01,
	    0x00, 0x01, 'a', 0x04);
	EXPECT_BAD("reserved subscription option set", 0x82, 0x06, 0x00, 0x01,
	    0x00, 0x01, 'a', 0x80);
	EXPECT_BAD("reserved subscription option set", 0x82, 0x06, 0x00, 0x01,
	    0x00, 0x01, 'a', 0xfe);
	EXPECT_BAD("misplaced wildcard in a topic filter", 0x82, 0x0a,
	    0x00, 0x01, 0x00, 0x05, 'a', '/', '#', '/', 'b', 0x00);
	EXPECT_BAD("misplaced wildcard in a topic filter", 0x82, 0x07,
	    0x00, 0x01, 0x00, 0x02, 'a', '+', 0x00);
	EXPECT_BAD("misplaced wildcard in a topic filter", 0x82, 0x10, 0x00, 0x01, 0x00, 0x0b,
	    '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', '+', 0x00);
	EXPECT_BAD("empty topic", 0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00);
	EXPECT_BAD("string contains U+0000", 0x82, 0x06, 0x00, 0x01,
	    0x00, 0x01, 0x00, 0x00);
	EXPECT_BAD("topic is not well-formed UTF-8", 0x82, 0x07, 0x00, 0x01,
	    0x00, 0x02, 0xc1, 0x81, 0x00);
	/* A filter without its options byte, a cut second filter. */
	EXPECT_BAD("topic filter runs past the end of the packet",
	    0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a');
	EXPECT_BAD("topic filter runs past the end of the packet",
	    0x82, 0x07, 0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x00);
	/* A bad item after a good one. */
	EXPECT_BAD("requested QoS above 2", 0x82, 0x0a, 0x00, 0x01,
	    0x00, 0x01, 'a', 0x00, 0x00, 0x01, 'b', 0x03);
}

static void
test_suback(void **state)
{
	static const uint8_t codes[] = { 0x00, 0x01, 0x02, MQTT_SUBACK_FAILURE };
	struct mqtt_packet p;
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(enc_suback(&w, 7, codes, 4), 0);
	expect_wbuf(&w, B(0x90, 0x06, 0x00, 0x07, 0x00, 0x01, 0x02, 0x80));
	decode_ok(w.data, w.len, &p);
	assert_int_equal(p.type, MQTT_SUBACK);
	assert_int_equal(p.u.suback.packet_id, 7);
	assert_int_equal(p.u.suback.n, 4);
	assert_memory_equal(p.u.suback.codes, codes, 4);
	mqtt_packet_free(&p);
	wbuf_free(&w);
	EXPECT_BAD("SUBACK without return codes", 0x90, 0x02, 0x00, 0x07);
	EXPECT_BAD("packet identifier 0", 0x90, 0x03, 0x00, 0x00, 0x00);
	EXPECT_BAD("reserved SUBACK return code", 0x90, 0x03, 0x00, 0x07, 0x03);
	EXPECT_BAD("reserved SUBACK return code", 0x90, 0x04, 0x00, 0x07,
	    0x00, 0x81);
	EXPECT_BAD("reserved SUBACK return code", 0x90, 0x03, 0x00, 0x07, 0x7f);
	EXPECT_BAD("truncated packet identifier", 0x90, 0x01, 0x00);
}

static void
test_unsubscribe(void **state)
{
	char *filters[] = { "a/b", "+/x/#", "\xe2\x82\xac" };
	struct mqtt_packet in = { .type = MQTT_UNSUBSCRIBE }, p;
	struct wbuf w;
	size_t i;

	(void)state;
	decode_ok(B(0xa2, 0x07, 0x00, 0x0b, S_AB), &p);
	assert_int_equal(p.type, MQTT_UNSUBSCRIBE);
	assert_int_equal(p.u.unsubscribe.packet_id, 11);
	assert_int_equal(p.u.unsubscribe.n, 1);
	assert_string_equal(p.u.unsubscribe.filters[0], "a/b");
	mqtt_packet_free(&p);
	in.u.unsubscribe.packet_id = 1;
	in.u.unsubscribe.n = 3;
	in.u.unsubscribe.filters = filters;
	wbuf_init(&w);
	roundtrip(&in, &w, &p);
	assert_int_equal(w.data[0], 0xa2);
	assert_int_equal(p.u.unsubscribe.packet_id, 1);
	assert_int_equal(p.u.unsubscribe.n, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(p.u.unsubscribe.filters[i], filters[i]);
	mqtt_packet_free(&p);
	wbuf_free(&w);
	EXPECT_BAD("UNSUBSCRIBE without topic filters", 0xa2, 0x02, 0x00, 0x01);
	EXPECT_BAD("packet identifier 0", 0xa2, 0x05, 0x00, 0x00,
	    0x00, 0x01, 'a');
	EXPECT_BAD("misplaced wildcard in a topic filter", 0xa2, 0x06,
	    0x00, 0x01, 0x00, 0x02, '#', 'a');
	EXPECT_BAD("empty topic", 0xa2, 0x04, 0x00, 0x01, 0x00, 0x00);
	EXPECT_BAD("string contains U+0000", 0xa2, 0x05, 0x00, 0x01,
	    0x00, 0x01, 0x00);
	EXPECT_BAD("topic filter runs past the end of the packet",
	    0xa2, 0x05, 0x00, 0x01, 0x00, 0x02, 'a');
	EXPECT_BAD("topic filter runs past the end of the packet",
	    0xa2, 0x07, 0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x01);
}

static void
test_simple(void **state)
{
	static const uint8_t simple[] = { MQTT_PINGREQ, MQTT_PINGRESP,
	    MQTT_DISCONNECT };
	struct mqtt_packet p;
	struct wbuf w;
	uint8_t first;
	size_t i;

	(void)state;
	wbuf_init(&w);
	for (i = 0; i < sizeof(simple); i++) {
		first = (uint8_t)(simple[i] << 4);
		wbuf_reset(&w);
		assert_int_equal(mqtt_enc_simple(&w, simple[i]), 0);
		expect_wbuf(&w, B(first, 0x00));
		decode_ok(w.data, w.len, &p);
		assert_int_equal(p.type, simple[i]);
		mqtt_packet_free(&p);
		EXPECT_BAD("trailing bytes in the packet", first, 0x01, 0x00);
		EXPECT_BAD("reserved flag bits set", first | 0x1, 0x00);
	}
	wbuf_free(&w);
}

/* One valid packet of every type, for the loops below. */
#define VEC(...) { (const uint8_t[]){ __VA_ARGS__ }, \
	sizeof((const uint8_t[]){ __VA_ARGS__ }) }
static const struct {
	const uint8_t	*b;
	size_t		 n;
} valid[] = {
	VEC(0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c,
	    0x00, 0x07, 'm', 'o', 's', 'q', 'p', 'u', 'b'),
	VEC(0x10, 0x26, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xee, 0x00, 0x3c,
	    0x00, 0x01, 'c', S_AB, 0x00, 0x03, 'b', 'y', 'e', 0x00, 0x05,
	    'a', 'l', 'i', 'c', 'e', 0x00, 0x06, 's', 'e', 'c', 'r', 'e', 't'),
	VEC(0x10, 0x0f, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02,
	    0x00, 0x3c, 0x00, 0x01, 'c'),
	VEC(0x20, 0x02, 0x00, 0x00),
	VEC(0x30, 0x07, S_AB, 'h', 'i'),
	VEC(0x3d, 0x09, S_AB, 0x00, 0x0a, 'h', 'i'),
	VEC(0x40, 0x02, 0x00, 0x01),
	VEC(0x50, 0x02, 0x00, 0x01),
	VEC(0x62, 0x02, 0x00, 0x01),
	VEC(0x70, 0x02, 0x00, 0x01),
	VEC(0x82, 0x0e, 0x00, 0x01, S_AB, 0x01, 0x00, 0x03, 'c', '/', '#',
	    0x02),
	VEC(0x90, 0x04, 0x00, 0x01, 0x01, 0x80),
	VEC(0xa2, 0x0c, 0x00, 0x01, S_AB, 0x00, 0x03, 'c', '/', '#'),
	VEC(0xb0, 0x02, 0x00, 0x01),
	VEC(0xc0, 0x00),
	VEC(0xd0, 0x00),
	VEC(0xe0, 0x00),
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
		decode_ok(valid[i].b, valid[i].n, &p);
		seen |= 1 << p.type;
		mqtt_packet_free(&p);
	}
	assert_int_equal(seen, 0x7ffe);		/* types 1 .. 14 */
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
			expect_err(MQTT_E_MALFORMED, want ?
			    "reserved flag bits are not 0010" :
			    "reserved flag bits set", b, valid[i].n);
		}
	}
	/* Reserved types 0 and 15. */
	EXPECT_BAD("reserved packet type", 0x00, 0x00);
	EXPECT_BAD("reserved packet type", 0x0f, 0x02, 0x00, 0x01);
	EXPECT_BAD("reserved packet type", 0xf0, 0x00);
	EXPECT_BAD("reserved packet type", 0xf2, 0x02, 0x00, 0x01);
}

/* Every prefix of every valid packet: frame waits, decode refuses. */
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
			assert_int_equal(mqtt_decode(valid[i].b, k,
			    MQTT_LEVEL_311, &p),
			    MQTT_E_MALFORMED);
			assert_non_null(p.error);
			mqtt_packet_free(&p);
		}
		/* One byte too many is not the packet either. */
		memcpy(b, valid[i].b, valid[i].n);
		b[valid[i].n] = 0;
		expect_err(MQTT_E_MALFORMED, "bytes after the end of the packet",
		    b, valid[i].n + 1);
	}
}

/*
 * The body cut short with the Remaining Length to match.  A packet whose
 * last field has a length of its own cannot end early; a PUBLISH, SUBACK,
 * SUBSCRIBE or UNSUBSCRIBE may legitimately be shorter, and then must
 * still re-encode to the same bytes.
 */
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
		uint8_t type = valid[i].b[0] >> 4;
		bool fixed = type != MQTT_PUBLISH && type != MQTT_SUBACK &&
		    type != MQTT_SUBSCRIBE && type != MQTT_UNSUBSCRIBE;

		for (k = 0; k + 2 < valid[i].n; k++) {
			b[0] = valid[i].b[0];
			b[1] = (uint8_t)k;
			memcpy(b + 2, valid[i].b + 2, k);
			rc = mqtt_decode(b, k + 2, MQTT_LEVEL_311, &p);
			if (fixed) {
				assert_int_not_equal(rc, 0);
			} else if (rc == 0) {
				wbuf_reset(&w);
				assert_int_equal(mqtt_encode(&w, &p), 0);
				expect_wbuf(&w, b, k + 2);
			}
			mqtt_packet_free(&p);
		}
	}
	wbuf_free(&w);
}

/* The call fails and leaves w (a struct wbuf in scope) as it was. */
#define REFUSED(call) do {					\
	size_t len_ = w.len;					\
								\
	assert_int_equal((call), -1);				\
	assert_int_equal(w.len, len_);				\
} while (0)

static void
test_encode_refuses_publish(void **state)
{
	struct mqtt_publish pub = { .topic = "a/+" };
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	put_u8(&w, 0xaa);		/* something already there */
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub));
	pub.topic = NULL;
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub));
	pub.topic = "a/b";
	pub.qos = 3, pub.packet_id = 1;
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub));
	pub.qos = 1, pub.packet_id = 0;
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub));
	pub.qos = 0, pub.packet_id = 1;
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub));
	pub.packet_id = 0, pub.dup = true;
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub));
	pub.dup = false, pub.len = 1;
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub));
	pub.payload = (const uint8_t *)"x";
	pub.len = MQTT_MAX_REMAINING - 4;	/* lengths only: never read */
	REFUSED(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub));
	pub.len = MQTT_MAX_REMAINING - 5;
	assert_null(mqtt_check(&(struct mqtt_packet){ .type = MQTT_PUBLISH,
	    .u.publish = pub }));
	pub.len = 1;
	assert_int_equal(mqtt_enc_publish(&w, MQTT_LEVEL_311, &pub), 0);
	expect_wbuf(&w, B(0xaa, 0x30, 0x06, S_AB, 'x'));
	wbuf_free(&w);
}

static void
test_encode_refuses_connect(void **state)
{
	struct mqtt_connect c = { .level = 6, .client_id = "c" };
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	REFUSED(mqtt_enc_connect(&w, &c));
	c.level = 4, c.client_id = NULL;
	REFUSED(mqtt_enc_connect(&w, &c));
	c.client_id = "\xed\xa0\x80";
	REFUSED(mqtt_enc_connect(&w, &c));
	c.client_id = "c", c.password = (const uint8_t *)"p";
	REFUSED(mqtt_enc_connect(&w, &c));
	c.password = NULL, c.password_len = 1;
	REFUSED(mqtt_enc_connect(&w, &c));
	c.password_len = 0, c.will_qos = 1;
	REFUSED(mqtt_enc_connect(&w, &c));
	c.will_qos = 0, c.will_topic = "w";
	REFUSED(mqtt_enc_connect(&w, &c));
	c.will = true, c.will_qos = 3;
	REFUSED(mqtt_enc_connect(&w, &c));
	c.will_qos = 0, c.will_topic = NULL;
	REFUSED(mqtt_enc_connect(&w, &c));
	c.will_topic = "w/#";
	REFUSED(mqtt_enc_connect(&w, &c));
	c.will_topic = "w", c.will_len = 1;
	REFUSED(mqtt_enc_connect(&w, &c));	/* no will_payload */
	c.will_len = 70000;
	c.will_payload = (const uint8_t *)"x";
	REFUSED(mqtt_enc_connect(&w, &c));
	c.will_len = 1;
	assert_int_equal(mqtt_enc_connect(&w, &c), 0);
	wbuf_free(&w);
}

static void
test_encode_refuses_others(void **state)
{
	struct mqtt_sub_item item = { .filter = "a/#", .qos = 3 };
	struct mqtt_subscribe sub = { .packet_id = 1, .n = 1, .items = &item };
	char *filter = "a/#/b";
	struct mqtt_unsubscribe unsub = { .packet_id = 1, .n = 1,
	    .filters = &filter };
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	REFUSED(enc_connack(&w, false, 6));
	REFUSED(enc_connack(&w, true, MQTT_CONNACK_BAD_LOGIN));
	REFUSED(mqtt_enc_ack(&w, MQTT_PUBLISH, 1));
	REFUSED(mqtt_enc_ack(&w, MQTT_SUBACK, 1));
	REFUSED(mqtt_enc_ack(&w, MQTT_PUBACK, 0));
	REFUSED(mqtt_enc_subscribe(&w, MQTT_LEVEL_311, &sub));
	item.qos = 0, item.filter = "#/a";
	REFUSED(mqtt_enc_subscribe(&w, MQTT_LEVEL_311, &sub));
	item.filter = "a", sub.n = 0;
	REFUSED(mqtt_enc_subscribe(&w, MQTT_LEVEL_311, &sub));
	sub.n = 1, sub.packet_id = 0;
	REFUSED(mqtt_enc_subscribe(&w, MQTT_LEVEL_311, &sub));
	REFUSED(enc_suback(&w, 1, NULL, 0));
	REFUSED(enc_suback(&w, 1, (const uint8_t *)"\x03", 1));
	REFUSED(enc_suback(&w, 0, (const uint8_t *)"\x00", 1));
	REFUSED(mqtt_enc_unsubscribe(&w, MQTT_LEVEL_311, &unsub));
	unsub.n = 0;
	REFUSED(mqtt_enc_unsubscribe(&w, MQTT_LEVEL_311, &unsub));
	REFUSED(mqtt_enc_simple(&w, MQTT_CONNECT));
	REFUSED(mqtt_enc_simple(&w, 15));
	REFUSED(mqtt_encode(&w, &(struct mqtt_packet){ .type = 0 }));
	REFUSED(mqtt_encode(&w, &(struct mqtt_packet){ .type = 15 }));
	assert_int_equal(w.len, 0);
	wbuf_free(&w);
}

static void
test_encode_long_strings(void **state)
{
	struct mqtt_connect c = { .level = 4 };
	struct mqtt_packet p;
	struct wbuf w;
	char *id;

	(void)state;
	id = malloc(65537);
	assert_non_null(id);
	memset(id, 'x', 65536);
	id[65536] = '\0';
	c.client_id = id;
	wbuf_init(&w);
	assert_int_equal(mqtt_enc_connect(&w, &c), -1);
	assert_int_equal(w.len, 0);
	id[65535] = '\0';		/* the longest string there is */
	assert_int_equal(mqtt_enc_connect(&w, &c), 0);
	decode_ok(w.data, w.len, &p);
	assert_int_equal(strlen(p.u.connect.client_id), 65535);
	mqtt_packet_free(&p);
	wbuf_free(&w);
	free(id);
}

static void
test_check(void **state)
{
	struct mqtt_packet p = { .type = MQTT_PUBACK };

	(void)state;
	assert_string_equal(mqtt_check(&p), "packet identifier 0");
	p.u.ack.packet_id = 1;
	assert_null(mqtt_check(&p));
	p.type = 0;
	assert_string_equal(mqtt_check(&p), "reserved packet type");
	p = (struct mqtt_packet){ .type = MQTT_DISCONNECT };
	assert_null(mqtt_check(&p));
	/* free leaves a packet that can be freed again. */
	assert_int_equal(mqtt_decode(valid[1].b, valid[1].n, MQTT_LEVEL_311,
	    &p), 0);
	mqtt_packet_free(&p);
	assert_null(p.u.connect.client_id);
	mqtt_packet_free(&p);
}

static void
test_type_names(void **state)
{
	static const char *names[16] = { "reserved", "CONNECT", "CONNACK",
	    "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE",
	    "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP",
	    "DISCONNECT", "AUTH" };
	static const int dirs[16] = { 0, 1, 2, 3, 3, 3, 3, 3, 1, 2, 1, 2,
	    1, 2, 1, 0 };
	int t;

	(void)state;
	for (t = 0; t < 16; t++) {
		assert_string_equal(mqtt_type_name((uint8_t)t), names[t]);
		assert_int_equal(mqtt_type_dir((uint8_t)t, MQTT_LEVEL_311),
		    dirs[t]);
	}
	assert_string_equal(mqtt_type_name(200), "reserved");
	assert_int_equal(mqtt_type_dir(200, MQTT_LEVEL_311), 0);
	assert_int_equal(mqtt_type_dir(MQTT_SUBSCRIBE, MQTT_LEVEL_311),
	    MQTT_FROM_CLIENT);
	assert_int_equal(mqtt_type_dir(MQTT_SUBACK, MQTT_LEVEL_311),
	    MQTT_FROM_SERVER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_len),
		cmocka_unit_test(test_frame_edges),
		cmocka_unit_test(test_connect_level),
		cmocka_unit_test(test_frame_edges_encoded),
		cmocka_unit_test(test_frame_malformed),
		cmocka_unit_test(test_frame_max_packet),
		cmocka_unit_test(test_connect_vector),
		cmocka_unit_test(test_connect_full),
		cmocka_unit_test(test_connect_31),
		cmocka_unit_test(test_connect_protocol),
		cmocka_unit_test(test_connect_flags),
		cmocka_unit_test(test_connect_client_id),
		cmocka_unit_test(test_connack),
		cmocka_unit_test(test_publish_vectors),
		cmocka_unit_test(test_publish_head),
		cmocka_unit_test(test_publish_roundtrip),
		cmocka_unit_test(test_publish_bad),
		cmocka_unit_test(test_acks),
		cmocka_unit_test(test_subscribe),
		cmocka_unit_test(test_subscribe_bad),
		cmocka_unit_test(test_suback),
		cmocka_unit_test(test_unsubscribe),
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_all_valid),
		cmocka_unit_test(test_reserved_flags),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_truncated_body),
		cmocka_unit_test(test_encode_refuses_publish),
		cmocka_unit_test(test_encode_refuses_connect),
		cmocka_unit_test(test_encode_refuses_others),
		cmocka_unit_test(test_encode_long_strings),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
