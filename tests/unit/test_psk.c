/* broker/auth/psk.c: the pre-shared key file (mosquitto's IDENTITY:HEXKEY
 * lines), its errors with FILE:LINE, and the lookup of a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"

static struct psk_file *
parse(const char *text, size_t len, struct conf_errors *e)
{
	memset(e, 0, sizeof(*e));
	return psk_parse("keys", text, len ? len : strlen(text), e);
}

static void
test_keys(void **state)
{
	struct conf_errors e;
	struct psk_file *pf = parse("# clients\nalice:0123456789abcdef\n\n  bob : DEADBEEF \r\n"
	    "urn:dev:7:00ff\n\xc3\xa9t\xc3\xa9:01\n", 0, &e);
	uint8_t key[PSK_KEY_MAX];

	(void)state;
	assert_non_null(pf);
	assert_int_equal(e.n, 0);
	assert_int_equal(psk_count(pf), 4);
	assert_int_equal(psk_key(pf, "alice", key, sizeof(key)), 8);
	assert_memory_equal(key, "\x01\x23\x45\x67\x89\xab\xcd\xef", 8);
	assert_int_equal(psk_key(pf, "bob", key, sizeof(key)), 4);	/* blanks trimmed */
	assert_memory_equal(key, "\xde\xad\xbe\xef", 4);
	/* The line is split at its last colon: an identity may hold one. */
	assert_int_equal(psk_key(pf, "urn:dev:7", key, sizeof(key)), 2);
	assert_memory_equal(key, "\x00\xff", 2);
	assert_int_equal(psk_key(pf, "\xc3\xa9t\xc3\xa9", key, sizeof(key)), 1);
	assert_int_equal(psk_key(pf, "carol", key, sizeof(key)), 0);
	assert_int_equal(psk_key(pf, "Alice", key, sizeof(key)), 0);
	assert_int_equal(psk_key(pf, "", key, sizeof(key)), 0);
	/* A key longer than the room given is not handed out in part. */
	assert_int_equal(psk_key(pf, "alice", key, 7), 0);
	assert_int_equal(psk_key(NULL, "alice", key, sizeof(key)), 0);
	psk_free(pf);
}

/* The largest key and identity OpenSSL takes, and one byte more. */
static void
test_limits(void **state)
{
	char text[PSK_IDENTITY_MAX + 2 * PSK_KEY_MAX + 16], id[PSK_IDENTITY_MAX + 2];
	char hex[2 * PSK_KEY_MAX + 3];
	uint8_t key[PSK_KEY_MAX];
	struct conf_errors e;
	struct psk_file *pf;

	(void)state;
	memset(id, 'i', PSK_IDENTITY_MAX);
	id[PSK_IDENTITY_MAX] = '\0';
	memset(hex, 'a', 2 * PSK_KEY_MAX);
	hex[2 * PSK_KEY_MAX] = '\0';
	snprintf(text, sizeof(text), "%s:%s\n", id, hex);
	assert_non_null(pf = parse(text, 0, &e));
	assert_int_equal(psk_key(pf, id, key, sizeof(key)), PSK_KEY_MAX);
	assert_int_equal(key[PSK_KEY_MAX - 1], 0xaa);
	psk_free(pf);
	snprintf(text, sizeof(text), "%si:aa\n", id);
	assert_null(parse(text, 0, &e));
	assert_string_equal(e.msg[0], "keys:1: the identity must be 1 to 256 bytes");
	conf_errors_free(&e);
	snprintf(text, sizeof(text), "x:%saa\n", hex);
	assert_null(parse(text, 0, &e));
	assert_string_equal(e.msg[0], "keys:1: identity x: the key must be an even number of"
	    " hex digits, 2 to 1024");
	conf_errors_free(&e);
}

static void
test_bad_lines(void **state)
{
	static const struct { const char *text; const char *error; size_t len; } bad[] = {
		{ "alice\n", "keys:1: expected IDENTITY:KEY, the key in hexadecimal", 0 },
		{ "\n:0011\n", "keys:2: the identity must be 1 to 256 bytes", 0 },
		{ "alice:\n", "keys:1: identity alice: the key must be an even number", 0 },
		{ "alice:abc\n", "keys:1: identity alice: the key must be an even number", 0 },
		{ "#\nalice:0x0011\n", "keys:2: identity alice: the key is not hexadecimal", 0 },
		{ "alice:00 11\n", "keys:1: identity alice: the key is not hexadecimal", 0 },
		{ "al\tice:0011\n", "keys:1: the identity has a control character", 0 },
		{ "al\xffice:0011\n", "keys:1: the identity is not UTF-8", 0 },
		{ "alice:0011\nbob:22\nalice:33\n", "keys:3: identity alice is already on line 1",
		  0 },
		{ "alice:00\0" "11\n", "keys:1: NUL byte in line", 11 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conf_errors e;

		assert_null(parse(bad[i].text, bad[i].len, &e));
		assert_int_equal(e.n, 1);
		if (strncmp(e.msg[0], bad[i].error, strlen(bad[i].error)) != 0)
			fail_msg("case %zu: got '%s', expected '%s'", i, e.msg[0], bad[i].error);
		conf_errors_free(&e);
	}
}

/* Every bad line is reported, and a line too long for any entry is one. */
static void
test_every_error(void **state)
{
	size_t len = 4096;
	char *text = malloc(len + 32);
	struct conf_errors e;

	(void)state;
	assert_non_null(text);
	memset(text, 'a', len);
	memcpy(text + len, "\nb\nok:00\nc:zz\n", 15);
	assert_null(parse(text, 0, &e));
	assert_int_equal(e.n, 3);
	assert_string_equal(e.msg[0], "keys:1: line too long (more than 2304 bytes)");
	assert_string_equal(e.msg[1], "keys:2: expected IDENTITY:KEY, the key in hexadecimal");
	assert_string_equal(e.msg[2], "keys:4: identity c: the key is not hexadecimal (no 0x"
	    " before it)");
	conf_errors_free(&e);
	free(text);
}

/* An empty file, or one of comments, is a file without keys. */
static void
test_empty(void **state)
{
	struct conf_errors e;
	struct psk_file *pf = parse("", 0, &e);
	uint8_t key[16];

	(void)state;
	assert_non_null(pf);
	assert_int_equal(psk_count(pf), 0);
	assert_int_equal(psk_key(pf, "alice", key, sizeof(key)), 0);
	psk_free(pf);
	assert_non_null(pf = parse("# none yet\n\n", 0, &e));
	assert_int_equal(psk_count(pf), 0);
	psk_free(pf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_every_error),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
