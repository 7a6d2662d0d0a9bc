/* The topicd's cache of recent messages (topicd/cache.c): a message put
 * or adopted is given back, by its own sequence number only; the slots
 * wrap; nothing over the payload limit is kept, nor past the byte budget;
 * forgetting gives the length back and frees the room; the slots start
 * few and grow only when an older message still holds the one needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topicd.h"
#include "xmalloc.h"

static uint8_t payload[TD_CACHE_MAX_PAYLOAD + 1];

static struct msg
msg_of(uint64_t seq, size_t len)
{
	struct msg m;

	memset(&m, 0, sizeof(m));
	m.seq = seq;
	m.qos = 1;
	m.payload = payload;
	m.len = len;
	m.origin = "m/pub";
	return m;
}

static void
test_put_get_wrap(void **state)
{
	struct topicd td;
	struct msg m = msg_of(7, 5), got;
	size_t len;

	(void)state;
	memset(&td, 0, sizeof(td));
	assert_int_equal(cache_get(&td, 7, &got), 0);	/* nothing allocated yet */
	cache_put(&td, &m);
	assert_int_equal(cache_get(&td, 7, &got), 1);
	assert_int_equal(got.seq, 7);
	assert_int_equal(got.len, 5);
	assert_null(got.buf);				/* borrowed */
	assert_string_equal(got.origin, "m/pub");
	assert_int_equal(cache_get(&td, 7 + TD_CACHE_SLOTS, &got), 0);
	m = msg_of(7 + TD_CACHE_SLOTS, 3);		/* the same slot */
	cache_put(&td, &m);
	assert_int_equal(cache_get(&td, 7, &got), 0);
	assert_int_equal(cache_get(&td, 7 + TD_CACHE_SLOTS, &got), 1);
	assert_int_equal(td.cache_bytes, 3);
	assert_true(cache_forget(&td, 7 + TD_CACHE_SLOTS, &len));
	assert_int_equal(len, 3);
	assert_int_equal(td.cache_bytes, 0);
	assert_false(cache_forget(&td, 7 + TD_CACHE_SLOTS, &len));
	cache_clear(&td);
	assert_null(td.cache);
}

static void
test_limits(void **state)
{
	struct topicd td;
	struct msg m = msg_of(1, TD_CACHE_MAX_PAYLOAD + 1), got;
	uint64_t seq, n = TD_CACHE_BYTES / TD_CACHE_MAX_PAYLOAD;
	size_t len;

	(void)state;
	memset(&td, 0, sizeof(td));
	cache_put(&td, &m);
	assert_int_equal(cache_get(&td, 1, &got), 0);	/* too large */
	for (seq = 2; seq < 2 + n; seq++) {
		m = msg_of(seq, TD_CACHE_MAX_PAYLOAD);
		cache_put(&td, &m);
		assert_int_equal(cache_get(&td, seq, &got), 1);
	}
	assert_int_equal(td.cache_bytes, TD_CACHE_BYTES);
	m = msg_of(seq, 1);
	cache_put(&td, &m);
	assert_int_equal(cache_get(&td, seq, &got), 0);	/* past the budget */
	assert_true(cache_forget(&td, 2, &len));
	assert_int_equal(len, TD_CACHE_MAX_PAYLOAD);
	cache_put(&td, &m);
	assert_int_equal(cache_get(&td, seq, &got), 1);	/* room again */
	cache_clear(&td);
	assert_int_equal(td.cache_bytes, 0);
}

/* A stream whose messages are forgotten as they are taken stays in the
 * first slots; a backlog doubles them, keeping every message, up to
 * TD_CACHE_SLOTS, where the oldest gives way. */
static void
test_grow(void **state)
{
	struct topicd td;
	struct msg m, got;
	uint64_t seq;
	size_t len;

	(void)state;
	memset(&td, 0, sizeof(td));
	for (seq = 1; seq <= 10 * TD_CACHE_FIRST; seq++) {
		m = msg_of(seq, 1);
		cache_put(&td, &m);
		assert_true(cache_forget(&td, seq, &len));
	}
	assert_int_equal(td.cache_slots, TD_CACHE_FIRST);
	for (seq = 1000; seq < 1000 + 3 * TD_CACHE_FIRST; seq++) {
		m = msg_of(seq, 1);
		cache_put(&td, &m);
	}
	assert_int_equal(td.cache_slots, 4 * TD_CACHE_FIRST);
	for (seq = 1000; seq < 1000 + 3 * TD_CACHE_FIRST; seq++) {
		assert_int_equal(cache_get(&td, seq, &got), 1);
		assert_true(got.seq == seq);
	}
	for (; seq < 1000 + TD_CACHE_SLOTS + 1; seq++) {
		m = msg_of(seq, 1);
		cache_put(&td, &m);
	}
	assert_int_equal(td.cache_slots, TD_CACHE_SLOTS);
	assert_int_equal(cache_get(&td, 1000, &got), 0);	/* gave way */
	assert_int_equal(cache_get(&td, 1001, &got), 1);
	assert_int_equal(cache_get(&td, seq - 1, &got), 1);
	assert_int_equal(td.cache_bytes, TD_CACHE_SLOTS);
	cache_clear(&td);
	assert_int_equal(td.cache_slots, 0);
	assert_int_equal(td.cache_bytes, 0);
}

/* A message read from the store is kept without a copy. */
static void
test_adopt(void **state)
{
	struct topicd td;
	struct msg in = msg_of(9, 4), m, got;

	(void)state;
	memset(&td, 0, sizeof(td));
	msg_copy(&m, &in);
	cache_adopt(&td, &m);
	assert_null(m.buf);				/* the cache's now */
	assert_int_equal(cache_get(&td, 9, &got), 1);
	assert_ptr_equal(got.payload, m.payload);
	msg_copy(&m, &in);
	m.seq = 10;
	m.len = TD_CACHE_MAX_PAYLOAD + 1;		/* too large: stays the caller's */
	m.payload = payload;
	cache_adopt(&td, &m);
	assert_non_null(m.buf);
	msg_release(&m);
	cache_clear(&td);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_wrap),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_adopt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
