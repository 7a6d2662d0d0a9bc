/* Typed marshalling: round trips, wire layout, and the checks of the readers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "marshal.h"

static void
test_wbuf_grows_and_resets(void **state)
{
	struct wbuf w;
	uint8_t big[1000];

	(void)state;
	wbuf_init(&w);
	assert_null(w.data);
	assert_int_equal(w.len, 0);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	put_raw(&w, NULL, 0);
	assert_int_equal(w.len, 0);
	for (int i = 0; i < 10; i++)
		put_raw(&w, big, sizeof(big));
	assert_int_equal(w.len, 10 * sizeof(big));
	assert_true(w.cap >= w.len);
	for (int i = 0; i < 10; i++)
		assert_memory_equal(w.data + i * sizeof(big), big, sizeof(big));
	wbuf_reset(&w);
	assert_int_equal(w.len, 0);
	put_u8(&w, 0x5a);
	assert_int_equal(w.len, 1);
	assert_int_equal(w.data[0], 0x5a);
	wbuf_free(&w);
	assert_null(w.data);
	assert_int_equal(w.len, 0);
	assert_int_equal(w.cap, 0);
}

/* A reset keeps the room of a buffer up to 16 MiB, and lets a larger one
 * go (one huge message does not stay in a long-lived buffer). */
static void
test_wbuf_reset_lets_a_huge_buffer_go(void **state)
{
	struct wbuf w;
	size_t cap;

	(void)state;
	wbuf_init(&w);
	wbuf_reserve(&w, 16u << 20);
	w.len = 1;
	cap = w.cap;
	wbuf_reset(&w);
	assert_int_equal(w.cap, cap);
	assert_non_null(w.data);
	wbuf_reserve(&w, (16u << 20) + 1);
	w.len = 1;
	wbuf_reset(&w);
	assert_null(w.data);
	assert_int_equal(w.cap, 0);
	assert_int_equal(w.len, 0);
	put_u8(&w, 7);
	assert_int_equal(w.data[0], 7);
	wbuf_free(&w);
}

/* Reserved room is taken without moving the buffer, exactly. */
static void
test_wbuf_reserve(void **state)
{
	static uint8_t big[70000];
	struct wbuf w;
	uint8_t *at;

	(void)state;
	wbuf_init(&w);
	put_u32(&w, 1);
	wbuf_reserve(&w, sizeof(big) + 8);
	assert_int_equal(w.cap, 4 + sizeof(big) + 8);
	at = w.data;
	put_u64(&w, 2);
	put_raw(&w, big, sizeof(big));
	assert_ptr_equal(w.data, at);
	assert_int_equal(w.len, w.cap);
	wbuf_reserve(&w, 0);
	assert_ptr_equal(w.data, at);
	put_u8(&w, 3);			/* beyond it: grows as before */
	assert_int_equal(w.len, 4 + sizeof(big) + 9);
	assert_int_equal(w.data[w.len - 1], 3);
	wbuf_free(&w);
}

/* The parts of a record framed around a payload kept elsewhere. */
static void
test_wbuf_around(void **state)
{
	struct wbuf w;
	struct iovec iov[3];
	static const char payload[] = "PAYLOAD";

	(void)state;
	wbuf_init(&w);
	put_raw(&w, "head", 4);
	put_raw(&w, "tail!", 5);
	wbuf_around(&w, 4, payload, 7, iov);
	assert_ptr_equal(iov[0].iov_base, w.data);
	assert_int_equal(iov[0].iov_len, 4);
	assert_ptr_equal(iov[1].iov_base, payload);
	assert_int_equal(iov[1].iov_len, 7);
	assert_memory_equal(iov[2].iov_base, "tail!", 5);
	assert_int_equal(iov[2].iov_len, 5);
	wbuf_around(&w, 9, NULL, 0, iov);	/* no tail, no payload */
	assert_int_equal(iov[0].iov_len, 9);
	assert_int_equal(iov[1].iov_len, 0);
	assert_int_equal(iov[2].iov_len, 0);
	wbuf_free(&w);
}

static void
test_integers_little_endian(void **state)
{
	static const uint8_t want[] = {
		0xab,
		0x34, 0x12,
		0x78, 0x56, 0x34, 0x12,
		0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
	};
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	put_u8(&w, 0xab);
	put_u16(&w, 0x1234);
	put_u32(&w, 0x12345678);
	put_u64(&w, 0x0123456789abcdefULL);
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(w.data, want, sizeof(want));
	wbuf_free(&w);
}

static void
test_integers_round_trip(void **state)
{
	static const uint64_t vals[] = {
		0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000,
		0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ULL,
		0x8000000000000000ULL, UINT64_MAX, 0x0102030405060708ULL,
	};
	struct wbuf w;
	struct rbuf r;

	(void)state;
	wbuf_init(&w);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		put_u8(&w, (uint8_t)vals[i]);
		put_u16(&w, (uint16_t)vals[i]);
		put_u32(&w, (uint32_t)vals[i]);
		put_u64(&w, vals[i]);
	}
	rbuf_init(&r, w.data, w.len);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t a;
		uint16_t b;
		uint32_t c;
		uint64_t d;

		assert_int_equal(get_u8(&r, &a), 0);
		assert_int_equal(get_u16(&r, &b), 0);
		assert_int_equal(get_u32(&r, &c), 0);
		assert_int_equal(get_u64(&r, &d), 0);
		assert_int_equal(a, (uint8_t)vals[i]);
		assert_int_equal(b, (uint16_t)vals[i]);
		assert_int_equal(c, (uint32_t)vals[i]);
		assert_true(d == vals[i]);
	}
	assert_int_equal(get_end(&r), 0);
	wbuf_free(&w);
}

static void
test_bytes_and_str_layout(void **state)
{
	static const uint8_t want[] = {
		3, 0, 0, 0, 'x', 0, 'y',		/* bytes: length, then the bytes */
		2, 0, 0, 0, 'h', 'i', 0,		/* str: length, bytes, NUL */
		0, 0, 0, 0,				/* empty bytes */
		0, 0, 0, 0, 0,				/* empty str: just the NUL */
	};
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	put_bytes(&w, "x\0y", 3);
	put_str(&w, "hi");
	put_bytes(&w, NULL, 0);
	put_str(&w, "");
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(w.data, want, sizeof(want));
	wbuf_free(&w);
}

static void
test_bytes_str_raw_round_trip(void **state)
{
	uint8_t blob[300];
	struct wbuf w;
	struct rbuf r;
	const uint8_t *p;
	const char *s;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)i;		/* includes NUL bytes */
	wbuf_init(&w);
	put_bytes(&w, blob, sizeof(blob));
	put_str(&w, "sensors/temp");
	put_bytes(&w, NULL, 0);
	put_str(&w, "");
	put_raw(&w, "RAW", 3);
	rbuf_init(&r, w.data, w.len);

	assert_int_equal(get_bytes(&r, &p, &n), 0);
	assert_int_equal(n, sizeof(blob));
	assert_memory_equal(p, blob, sizeof(blob));
	assert_ptr_equal(p, w.data + 4);		/* points into the buffer */

	assert_int_equal(get_str(&r, &s), 0);
	assert_string_equal(s, "sensors/temp");
	assert_ptr_equal(s, (const char *)w.data + 4 + sizeof(blob) + 4);

	assert_int_equal(get_bytes(&r, &p, &n), 0);
	assert_int_equal(n, 0);

	assert_int_equal(get_str(&r, &s), 0);
	assert_string_equal(s, "");

	assert_int_equal(get_raw(&r, &p, 3), 0);
	assert_memory_equal(p, "RAW", 3);
	assert_int_equal(get_end(&r), 0);
	wbuf_free(&w);
}

static void
test_short_reads_fail_and_latch(void **state)
{
	static const uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct rbuf r;
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;
	const uint8_t *p;

	(void)state;
	for (size_t n = 0; n < 8; n++) {
		rbuf_init(&r, buf, n);
		d = 42;
		assert_int_equal(get_u64(&r, &d), -1);
		assert_true(d == 0);
		assert_int_equal(get_end(&r), -1);
	}
	for (size_t n = 0; n < 4; n++) {
		rbuf_init(&r, buf, n);
		assert_int_equal(get_u32(&r, &c), -1);
		assert_int_equal(get_end(&r), -1);
	}
	rbuf_init(&r, buf, 1);
	assert_int_equal(get_u16(&r, &b), -1);
	assert_int_equal(get_end(&r), -1);
	rbuf_init(&r, buf, 0);
	assert_int_equal(get_u8(&r, &a), -1);
	assert_int_equal(get_end(&r), -1);
	rbuf_init(&r, buf, 3);
	assert_int_equal(get_raw(&r, &p, 4), -1);
	assert_int_equal(get_end(&r), -1);

	/* Once failed, even reads that would fit fail: the error latches. */
	rbuf_init(&r, buf, sizeof(buf));
	assert_int_equal(get_raw(&r, &p, 9), -1);
	assert_int_equal(get_u8(&r, &a), -1);
	assert_int_equal(get_u16(&r, &b), -1);
	assert_int_equal(get_u32(&r, &c), -1);
	assert_int_equal(get_u64(&r, &d), -1);
	assert_int_equal(r.left, sizeof(buf));	/* nothing consumed */
	assert_int_equal(get_end(&r), -1);
}

static void
test_get_bytes_rejects_overrun(void **state)
{
	static const uint8_t over[] = { 5, 0, 0, 0, 'a', 'b', 'c', 'd' };
	static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'a' };
	struct rbuf r;
	const uint8_t *p = (const uint8_t *)"x";
	size_t n = 99;

	(void)state;
	rbuf_init(&r, over, sizeof(over));
	assert_int_equal(get_bytes(&r, &p, &n), -1);
	assert_null(p);
	assert_int_equal(n, 0);
	assert_int_equal(get_end(&r), -1);

	rbuf_init(&r, huge, sizeof(huge));
	assert_int_equal(get_bytes(&r, &p, &n), -1);
	assert_int_equal(get_end(&r), -1);

	rbuf_init(&r, over, 3);			/* not even the length */
	assert_int_equal(get_bytes(&r, &p, &n), -1);
	assert_int_equal(get_end(&r), -1);
}

/* get_str on buf must fail, leave "" in *s, and latch the error. */
static void
str_rejected(const void *buf, size_t len)
{
	struct rbuf r;
	const char *s = NULL;

	rbuf_init(&r, buf, len);
	assert_int_equal(get_str(&r, &s), -1);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(get_end(&r), -1);
}

static void
test_get_str_rejects(void **state)
{
	static const uint8_t no_nul[] = { 3, 0, 0, 0, 'a', 'b', 'c', 'd' };
	static const uint8_t inner_nul[] = { 3, 0, 0, 0, 'a', 0, 'c', 0 };
	static const uint8_t past_end[] = { 4, 0, 0, 0, 'a', 'b', 'c', 0 };
	static const uint8_t nul_missing_at_end[] = { 3, 0, 0, 0, 'a', 'b', 'c' };
	static const uint8_t max_len[] = { 0xff, 0xff, 0xff, 0xff };
	static const uint8_t max_len_more[] = { 0xff, 0xff, 0xff, 0xff, 'a', 0 };
	static const uint8_t big_len[] = { 0xfe, 0xff, 0xff, 0xff, 'a', 0 };
	static const uint8_t short_len[] = { 1, 0, 0 };
	static const uint8_t ok[] = { 3, 0, 0, 0, 'a', 'b', 'c', 0 };
	struct rbuf r;
	const char *s;

	(void)state;
	str_rejected(no_nul, sizeof(no_nul));
	str_rejected(inner_nul, sizeof(inner_nul));
	str_rejected(past_end, sizeof(past_end));
	str_rejected(nul_missing_at_end, sizeof(nul_missing_at_end));
	/* A length of UINT32_MAX with nothing after it: the read must fail and
	 * latch, so that a decoder ending here does not pass get_end(). */
	str_rejected(max_len, sizeof(max_len));
	str_rejected(max_len_more, sizeof(max_len_more));
	str_rejected(big_len, sizeof(big_len));
	str_rejected(short_len, sizeof(short_len));

	rbuf_init(&r, ok, sizeof(ok));
	assert_int_equal(get_str(&r, &s), 0);
	assert_string_equal(s, "abc");
	assert_int_equal(get_end(&r), 0);
}

static void
test_get_end(void **state)
{
	static const uint8_t buf[] = { 1, 2, 3 };
	struct rbuf r;
	uint16_t v;
	uint8_t b;
	const uint8_t *p;

	(void)state;
	rbuf_init(&r, buf, 0);
	assert_int_equal(get_end(&r), 0);		/* empty and untouched */

	rbuf_init(&r, buf, sizeof(buf));
	assert_int_equal(get_end(&r), -1);		/* nothing read */
	assert_int_equal(get_u16(&r, &v), 0);
	assert_int_equal(v, 0x0201);
	assert_int_equal(get_end(&r), -1);		/* one trailing byte */
	assert_int_equal(get_u8(&r, &b), 0);
	assert_int_equal(get_end(&r), 0);

	/* A latched error fails get_end even with nothing left over. */
	assert_int_equal(get_u8(&r, &b), -1);
	assert_int_equal(r.left, 0);
	assert_int_equal(get_end(&r), -1);

	rbuf_init(&r, buf, sizeof(buf));
	assert_int_equal(get_raw(&r, &p, 4), -1);
	assert_int_equal(get_raw(&r, &p, 3), -1);	/* latched */
	assert_int_equal(get_end(&r), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wbuf_grows_and_resets),
		cmocka_unit_test(test_wbuf_reserve),
		cmocka_unit_test(test_wbuf_reset_lets_a_huge_buffer_go),
		cmocka_unit_test(test_wbuf_around),
		cmocka_unit_test(test_integers_little_endian),
		cmocka_unit_test(test_integers_round_trip),
		cmocka_unit_test(test_bytes_and_str_layout),
		cmocka_unit_test(test_bytes_str_raw_round_trip),
		cmocka_unit_test(test_short_reads_fail_and_latch),
		cmocka_unit_test(test_get_bytes_rejects_overrun),
		cmocka_unit_test(test_get_str_rejects),
		cmocka_unit_test(test_get_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
