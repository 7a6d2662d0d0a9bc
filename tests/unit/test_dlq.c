/* The dead-letter record: one compact JSON object per dead letter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

static void
expect_record(struct wbuf *w, const char *want)
{
	assert_int_equal(w->len, strlen(want));
	assert_memory_equal(w->data, want, w->len);
	wbuf_reset(w);
}

static void
test_record(void **state)
{
	struct deadletter d = {
		.reason = "invalid_json",
		.client = "127.0.0.1:5555",
		.port = 4041,
		.bytes = "{\"type\":",
		.len = 8,
	};
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(dlq_encode(&w, &d, INT64_C(1795860000123)), 0);
	expect_record(&w, "{\"reason\":\"invalid_json\","
	    "\"time\":\"2026-11-28T10:00:00.123Z\",\"client\":\"127.0.0.1:5555\","
	    "\"port\":4041,\"msg\":\"{\\\"type\\\":\"}");
	wbuf_free(&w);
}

/* Bytes that are not UTF-8 are base64, marked by "encoding" after them. */
static void
test_binary(void **state)
{
	struct deadletter d = {
		.reason = "max_attempts",
		.client = "alice",
		.topic = "s/\"t\"",
		.bytes = "\x00\xff",
		.len = 2,
	};
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(dlq_encode(&w, &d, 0), 0);
	expect_record(&w, "{\"reason\":\"max_attempts\","
	    "\"time\":\"1970-01-01T00:00:00.000Z\",\"client\":\"alice\","
	    "\"topic\":\"s/\\\"t\\\"\",\"msg\":\"AP8=\",\"encoding\":\"base64\"}");
	/* A NUL in UTF-8 text stays text. */
	d.bytes = "a\0b";
	d.len = 3;
	assert_int_equal(dlq_encode(&w, &d, 0), 0);
	expect_record(&w, "{\"reason\":\"max_attempts\","
	    "\"time\":\"1970-01-01T00:00:00.000Z\",\"client\":\"alice\","
	    "\"topic\":\"s/\\\"t\\\"\",\"msg\":\"a\\u0000b\"}");
	wbuf_free(&w);
}

/* Optional fields are left out; a detail comes after the reason; a time
 * before 1970 keeps a positive millisecond part. */
static void
test_optional(void **state)
{
	struct deadletter d = { .reason = "max_attempts", .bytes = "", .len = 0 };
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(dlq_encode(&w, &d, -1), 0);
	expect_record(&w, "{\"reason\":\"max_attempts\","
	    "\"time\":\"1969-12-31T23:59:59.999Z\",\"msg\":\"\"}");
	d.reason = "unknown_command";
	d.detail = "PUB without \"msg\"";
	d.port = 4041;
	d.bytes = "{}";
	d.len = 2;
	assert_int_equal(dlq_encode(&w, &d, 0), 0);
	expect_record(&w, "{\"reason\":\"unknown_command\","
	    "\"detail\":\"PUB without \\\"msg\\\"\","
	    "\"time\":\"1970-01-01T00:00:00.000Z\",\"port\":4041,\"msg\":\"{}\"}");
	wbuf_free(&w);
}

/* A text field that is not UTF-8, or no reason: nothing is appended. */
static void
test_refused(void **state)
{
	struct deadletter d = {
		.reason = "unknown_command",
		.client = "al\xffice",
		.bytes = "x",
		.len = 1,
	};
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	put_raw(&w, "keep", 4);
	assert_int_equal(dlq_encode(&w, &d, 1), -1);
	d.client = "alice";
	d.topic = "\xc3";
	assert_int_equal(dlq_encode(&w, &d, 1), -1);
	d.topic = NULL;
	d.detail = "bad \xff";
	assert_int_equal(dlq_encode(&w, &d, 1), -1);
	d.detail = NULL;
	d.reason = NULL;
	assert_int_equal(dlq_encode(&w, &d, 1), -1);
	expect_record(&w, "keep");
	wbuf_free(&w);
}

/* A record is one message between the processes (here, of at most 4 KiB):
 * one whose escapes would make it larger (1 KiB of NULs: 6 bytes each) is
 * base64, and one too large even so keeps what fits, saying how long it
 * was. */
static void
test_too_large_for_a_record(void **state)
{
	char nul[8192] = { 0 };
	struct deadletter d = { .reason = "reserved_topic", .client = "c", .bytes = nul,
				.len = 1024 };
	struct wbuf w;

	(void)state;
	wbuf_init(&w);
	assert_int_equal(dlq_encode_within(&w, &d, 0, 4096), 0);
	assert_true(w.len <= 4096 && w.len > 1024 / 3 * 4);
	assert_non_null(memmem(w.data, w.len, "\"encoding\":\"base64\"", 19));
	assert_null(memmem(w.data, w.len, "truncated", 9));
	wbuf_reset(&w);
	assert_int_equal(dlq_encode_within(&w, &d, 0, 8192), 0);
	assert_non_null(memmem(w.data, w.len, "\\u0000", 6));	/* fits as text */
	wbuf_reset(&w);
	d.len = sizeof(nul);
	assert_int_equal(dlq_encode_within(&w, &d, 0, 4096), 0);
	assert_true(w.len <= 4096 && w.len > 3000);
	assert_non_null(memmem(w.data, w.len, "\"truncated\":8192", 16));
	wbuf_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_too_large_for_a_record),
		cmocka_unit_test(test_optional),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
