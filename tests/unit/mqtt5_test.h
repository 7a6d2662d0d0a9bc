/* What the unit tests of the MQTT 5.0 codec share: byte vectors, decoding
 * that must fail with a given code and reason, decoding that must succeed
 * and re-encode to the same bytes.  Include after cmocka.h. */
#ifndef TESTS_UNIT_MQTT5_TEST_H
#define TESTS_UNIT_MQTT5_TEST_H

#include <string.h>

#include "mqtt/mqtt_codec.h"

#define L5	MQTT_LEVEL_5

/* A byte vector as (pointer, length). */
#define B(...)	(const uint8_t[]){ __VA_ARGS__ }, \
		sizeof((const uint8_t[]){ __VA_ARGS__ })

/* Decoding the bytes at level 5 fails with this code and reason. */
#define EXPECT5(rc, why, ...)	expect_err5(rc, why, B(__VA_ARGS__))
#define MALFORMED5(why, ...)	expect_err5(MQTT_E_MALFORMED, why, \
				    B(__VA_ARGS__))
#define PROTOCOL5(why, ...)	expect_err5(MQTT_E_PROTOCOL, why, \
				    B(__VA_ARGS__))

/* The wire form of "a/b" as a string field. */
#define S_AB	0x00, 0x03, 'a', '/', 'b'

static inline void
expect_err5(int rc, const char *why, const uint8_t *b, size_t n)
{
	struct mqtt_packet p;

	assert_int_equal(mqtt_decode(b, n, L5, &p), rc);
	assert_non_null(p.error);
	if (why != NULL)
		assert_string_equal(p.error, why);
	mqtt_packet_free(&p);
}

static inline void
expect_wbuf(const struct wbuf *w, const uint8_t *want, size_t n)
{
	assert_int_equal(w->len, n);
	assert_memory_equal(w->data, want, n);
}

/* Decodes b at level 5, which must be one whole packet, and checks that
 * encoding the result gives the same bytes back. */
static inline void
decode_ok5(const uint8_t *b, size_t n, struct mqtt_packet *p)
{
	struct wbuf w;
	size_t total;

	assert_int_equal(mqtt_frame(b, n, MQTT_MAX_PACKET, &total), 1);
	assert_int_equal(total, n);
	assert_int_equal(mqtt_decode(b, n, L5, p), 0);
	assert_null(p->error);
	assert_int_equal(p->level, L5);
	assert_null(mqtt_check(p));
	assert_int_equal(p->flags, b[0] & 0x0f);
	assert_int_equal(mqtt_packet_size(p), n);
	wbuf_init(&w);
	assert_int_equal(mqtt_encode(&w, p), 0);
	expect_wbuf(&w, b, n);
	wbuf_free(&w);
}

/* Encodes p, decodes the bytes into out and checks type and bytes. */
static inline void
roundtrip5(const struct mqtt_packet *p, struct wbuf *w,
    struct mqtt_packet *out)
{
	wbuf_reset(w);
	assert_int_equal(mqtt_encode(w, p), 0);
	decode_ok5(w->data, w->len, out);
	assert_int_equal(out->type, p->type);
}

/* The call fails and leaves w (a struct wbuf in scope) as it was. */
#define REFUSED(call) do {					\
	size_t len_ = w.len;					\
								\
	assert_int_equal((call), -1);				\
	assert_int_equal(w.len, len_);				\
} while (0)

/* A property's value as (pointer, length) equals a C string. */
static inline void
expect_str(const struct mqtt_str *s, const char *want)
{
	assert_int_equal(s->len, strlen(want));
	assert_memory_equal(s->p, want, s->len);
}

#endif
