/* WebSocket frames (broker/core/wscodec.c): headers of 7, 16 and 64-bit
 * lengths both ways and in pieces, unmasking, and a server's reading of
 * a client's frames: messages in fragments, control frames between them,
 * the close, every rule broken, and the same results whatever the pieces
 * the bytes come in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/wscodec.h"

static const uint8_t MASK[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* A client's frame: masked (unless mask is NULL), FIN as given. */
static size_t
frame(uint8_t *out, bool fin, uint8_t opcode, const uint8_t *mask, const void *payload,
    size_t n)
{
	size_t h = ws_frame_write(out, opcode, n);

	if (!fin)
		out[0] &= 0x7f;
	if (mask == NULL) {
		memcpy(out + h, payload, n);
		return h + n;
	}
	out[1] |= 0x80;
	memcpy(out + h, mask, 4);
	ws_unmask(out + h + 4, payload, n, mask, 0);
	return h + 4 + n;
}

static void
test_header_lengths(void **state)
{
	static const struct {
		uint64_t len;
		size_t   head;
		uint8_t  bytes[10];
	} cases[] = {
		{ 0, 2, { 0x82, 0 } },
		{ 125, 2, { 0x82, 125 } },
		{ 126, 4, { 0x82, 126, 0, 126 } },
		{ 65535, 4, { 0x82, 126, 0xff, 0xff } },
		{ 65536, 10, { 0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0 } },
		{ 0x100000001ULL, 10, { 0x82, 127, 0, 0, 0, 1, 0, 0, 0, 1 } },
		{ INT64_MAX, 10, { 0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
	};
	uint8_t out[WS_HEAD_MAX];
	struct ws_frame f;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ws_frame_write(out, WS_OP_BINARY, cases[i].len), cases[i].head);
		assert_memory_equal(out, cases[i].bytes, cases[i].head);
		assert_int_equal(ws_frame_read(out, cases[i].head, &f), (int)cases[i].head);
		assert_true(f.fin);
		assert_int_equal(f.opcode, WS_OP_BINARY);
		assert_false(f.masked);
		assert_int_equal(f.rsv, 0);
		assert_true(f.len == cases[i].len);
		/* In pieces: nothing until the last byte. */
		for (size_t n = 0; n < cases[i].head; n++)
			assert_int_equal(ws_frame_read(out, n, &f), 0);
	}
	/* Masked: the key follows the length, 4 more bytes to wait for. */
	uint8_t m[WS_HEAD_MAX + 300], x[300];
	size_t n = frame(m, true, WS_OP_BINARY, MASK, memset(x, 'x', sizeof(x)), sizeof(x));
	assert_int_equal(n, 4 + 4 + 300);
	for (size_t k = 0; k < 8; k++)
		assert_int_equal(ws_frame_read(m, k, &f), 0);
	assert_int_equal(ws_frame_read(m, 8, &f), 8);
	assert_true(f.masked);
	assert_memory_equal(f.mask, MASK, 4);
	assert_int_equal(f.len, 300);
	/* The top bit of a 64-bit length is not a length. */
	memcpy(out, (uint8_t[]){ 0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0 }, 10);
	assert_int_equal(ws_frame_read(out, 10, &f), -1);
	/* Flags and opcode as they are. */
	memcpy(out, (uint8_t[]){ 0x71, 0x00 }, 2);
	assert_int_equal(ws_frame_read(out, 2, &f), 2);
	assert_false(f.fin);
	assert_int_equal(f.rsv, 0x70);
	assert_int_equal(f.opcode, WS_OP_TEXT);
}

static void
test_unmask(void **state)
{
	/* RFC 6455 5.7: a masked "Hello". */
	static const uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
		0x51, 0x58 };
	uint8_t out[64], piece[64];
	struct ws_frame f;

	(void)state;
	assert_int_equal(ws_frame_read(hello, sizeof(hello), &f), 6);
	ws_unmask(out, hello + 6, 5, f.mask, 0);
	assert_memory_equal(out, "Hello", 5);
	/* In pieces, each at its offset in the payload. */
	for (size_t cut = 0; cut <= 5; cut++) {
		ws_unmask(piece, hello + 6, cut, f.mask, 0);
		ws_unmask(piece + cut, hello + 6 + cut, 5 - cut, f.mask, cut);
		assert_memory_equal(piece, "Hello", 5);
	}
	/* In place. */
	memcpy(out, hello + 6, 5);
	ws_unmask(out, out, 5, f.mask, 0);
	assert_memory_equal(out, "Hello", 5);
}

/* What a reader made of some input, fed in pieces of at most step bytes
 * (0: at once): the data, and its events in order. */
struct got {
	uint8_t	 data[4096];
	size_t	 len;
	enum ws_rx_event ev[16];
	uint16_t code[16];
	char	 ctl[16][WS_CONTROL_MAX + 1];
	const char *why;
	size_t	 nev;
};

static void
feed(const uint8_t *in, size_t n, size_t step, uint64_t max, struct got *g)
{
	struct ws_rx rx;
	struct ws_rx_out o;
	uint8_t *out = malloc(n + 1);
	size_t off = 0, piece;

	memset(g, 0, sizeof(*g));
	ws_rx_init(&rx, max);
	while (off < n) {
		piece = step == 0 || n - off < step ? n - off : step;
		ws_rx_feed(&rx, in + off, piece, out, &o);
		assert_true(o.used > 0 && o.used <= piece);
		assert_true(o.len <= o.used);
		memcpy(g->data + g->len, out, o.len);
		g->len += o.len;
		off += o.used;
		if (o.ev == WS_RX_MORE)
			continue;
		g->ev[g->nev] = o.ev;
		g->code[g->nev] = o.code;
		memcpy(g->ctl[g->nev], o.ctl != NULL ? o.ctl : (const uint8_t *)"", o.ctl_len);
		g->why = o.why;
		g->nev++;
	}
	free(out);
}

/* The same at once, in pieces of 1, 2, 3, 7 bytes: the same results. */
static void
feed_all_ways(const uint8_t *in, size_t n, uint64_t max, struct got *g)
{
	static const size_t steps[] = { 1, 2, 3, 7 };
	struct got other;

	feed(in, n, 0, max, g);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		feed(in, n, steps[i], max, &other);
		assert_int_equal(other.len, g->len);
		assert_memory_equal(other.data, g->data, g->len);
		assert_int_equal(other.nev, g->nev);
		assert_memory_equal(other.ev, g->ev, sizeof(g->ev));
		assert_memory_equal(other.code, g->code, sizeof(g->code));
		assert_memory_equal(other.ctl, g->ctl, sizeof(g->ctl));
	}
}

static void
test_messages(void **state)
{
	uint8_t in[2048];
	size_t n = 0;
	struct got g;

	(void)state;
	/* An MQTT PINGREQ in a frame; a CONNECT cut over a fragmented
	 * message, a ping between its fragments; an empty frame; a pong. */
	n += frame(in + n, true, WS_OP_BINARY, MASK, "\xc0\x00", 2);
	n += frame(in + n, false, WS_OP_BINARY, MASK, "\x10\x0c\x00\x04MQ", 6);
	n += frame(in + n, true, WS_OP_PING, MASK, "are you there", 13);
	n += frame(in + n, false, WS_OP_CONTINUATION, (const uint8_t *)"\0\0\0\0", "TT", 2);
	n += frame(in + n, true, WS_OP_CONTINUATION, MASK, "\x04\x02\x00\x3c\x00\x00", 6);
	n += frame(in + n, true, WS_OP_BINARY, MASK, "", 0);
	n += frame(in + n, true, WS_OP_PONG, MASK, "", 0);
	feed_all_ways(in, n, 1024, &g);
	assert_int_equal(g.len, 16);
	assert_memory_equal(g.data, "\xc0\x00\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 16);
	assert_int_equal(g.nev, 2);
	assert_int_equal(g.ev[0], WS_RX_PING);
	assert_string_equal(g.ctl[0], "are you there");
	assert_int_equal(g.ev[1], WS_RX_PONG);
	/* Large frames: 16 and 64-bit lengths. */
	static uint8_t big[70000 + 14], payload[70000];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	n = frame(big, true, WS_OP_BINARY, MASK, payload, sizeof(payload));
	struct ws_rx rx;
	struct ws_rx_out o;
	uint8_t *out = malloc(n);
	ws_rx_init(&rx, sizeof(payload));
	ws_rx_feed(&rx, big, n, out, &o);
	assert_int_equal(o.ev, WS_RX_MORE);
	assert_int_equal(o.used, n);
	assert_int_equal(o.len, sizeof(payload));
	assert_memory_equal(out, payload, sizeof(payload));
	free(out);
}

static void
test_close(void **state)
{
	uint8_t in[256];
	size_t n = 0;
	struct got g;

	(void)state;
	/* Data before the close is kept; what follows it is ignored. */
	n += frame(in + n, true, WS_OP_BINARY, MASK, "\xe0\x00", 2);
	n += frame(in + n, true, WS_OP_CLOSE, MASK, "\x03\xe8" "bye", 5);
	n += frame(in + n, true, WS_OP_BINARY, MASK, "\xc0\x00", 2);
	n += frame(in + n, true, WS_OP_TEXT, NULL, "junk", 4);
	feed_all_ways(in, n, 1024, &g);
	assert_int_equal(g.len, 2);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.ev[0], WS_RX_CLOSE);
	assert_int_equal(g.code[0], 1000);
	assert_memory_equal(g.ctl[0], "\x03\xe8" "bye", 5);
	/* Without a code. */
	n = frame(in, true, WS_OP_CLOSE, MASK, "", 0);
	feed_all_ways(in, n, 1024, &g);
	assert_int_equal(g.ev[0], WS_RX_CLOSE);
	assert_int_equal(g.code[0], 0);
	/* 4000, an application's code, is fine. */
	n = frame(in, true, WS_OP_CLOSE, MASK, "\x0f\xa0", 2);
	feed_all_ways(in, n, 1024, &g);
	assert_int_equal(g.ev[0], WS_RX_CLOSE);
	assert_int_equal(g.code[0], 4000);
}

/* One input that breaks a rule: FAIL with code and why, once. */
static void
assert_fails(const uint8_t *in, size_t n, uint64_t max, uint16_t code, const char *why)
{
	struct got g;

	feed_all_ways(in, n, max, &g);
	assert_int_equal(g.nev, 1);
	assert_int_equal(g.ev[0], WS_RX_FAIL);
	assert_int_equal(g.code[0], code);
	assert_string_equal(g.why, why);
}

static void
test_broken_rules(void **state)
{
	uint8_t in[512], big[200];
	size_t n;

	(void)state;
	memset(big, 'b', sizeof(big));
	n = frame(in, true, WS_OP_BINARY, NULL, "\xc0\x00", 2);
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a frame not masked");
	n = frame(in, true, WS_OP_TEXT, MASK, "{}", 2);
	assert_fails(in, n, 1024, WS_CLOSE_UNSUPPORTED, "a text frame (MQTT is binary)");
	n = frame(in, true, WS_OP_BINARY, MASK, "\xc0\x00", 2);
	in[0] |= 0x40;				/* RSV1: permessage-deflate */
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a reserved bit set (no extension was agreed)");
	n = frame(in, true, 0x3, MASK, "x", 1);
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a reserved opcode");
	n = frame(in, true, 0xb, MASK, "x", 1);
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a reserved opcode");
	n = frame(in, true, WS_OP_CONTINUATION, MASK, "x", 1);
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a continuation frame outside a message");
	n = frame(in, false, WS_OP_BINARY, MASK, "x", 1);
	n += frame(in + n, true, WS_OP_BINARY, MASK, "y", 1);
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a new message before the last one ended");
	n = frame(in, false, WS_OP_PING, MASK, "x", 1);
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a fragmented control frame");
	n = frame(in, true, WS_OP_PING, MASK, big, 126);
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a control frame of more than 125 bytes");
	n = frame(in, true, WS_OP_CLOSE, MASK, "\x03", 1);
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a close frame of 1 byte");
	n = frame(in, true, WS_OP_CLOSE, MASK, "\x03\xed", 2);	/* 1005 */
	assert_fails(in, n, 1024, WS_CLOSE_PROTOCOL, "a close code a peer may not send");
	n = frame(in, true, WS_OP_CLOSE, MASK, "\x03\xe8\xff", 3);
	assert_fails(in, n, 1024, 1007, "a close reason that is not UTF-8");
	/* Longer than the limit: refused on the header, before the payload. */
	n = frame(in, true, WS_OP_BINARY, MASK, big, 200);
	assert_fails(in, 8, 199, WS_CLOSE_TOO_BIG, "a frame longer than the listener takes");
	assert_fails(in, n, 199, WS_CLOSE_TOO_BIG, "a frame longer than the listener takes");
}

/* The limit is the longest frame taken; a length past 63 bits is none. */
static void
test_limit_is_inclusive(void **state)
{
	uint8_t in[300], big[200];
	struct got g;
	size_t n;

	(void)state;
	memset(big, 'b', sizeof(big));
	n = frame(in, true, WS_OP_BINARY, MASK, big, 200);
	feed_all_ways(in, n, 200, &g);
	assert_int_equal(g.nev, 0);
	assert_int_equal(g.len, 200);
	/* A 64-bit length with its top bit set. */
	memcpy(in, (uint8_t[]){ 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4 }, 14);
	feed_all_ways(in, 14, 200, &g);
	assert_int_equal(g.ev[0], WS_RX_FAIL);
	assert_int_equal(g.code[0], WS_CLOSE_PROTOCOL);
}

static void
test_close_payload(void **state)
{
	uint8_t out[WS_CONTROL_MAX];
	char reason[200];

	(void)state;
	assert_int_equal(ws_close_payload(out, 0, "ignored"), 0);
	assert_int_equal(ws_close_payload(out, 1002, NULL), 2);
	assert_memory_equal(out, "\x03\xea", 2);
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	assert_int_equal(ws_close_payload(out, 1000, reason), WS_CONTROL_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_lengths),
		cmocka_unit_test(test_unmask),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_close),
		cmocka_unit_test(test_broken_rules),
		cmocka_unit_test(test_limit_is_inclusive),
		cmocka_unit_test(test_close_payload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
