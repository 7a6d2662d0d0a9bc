/* Topic names, filters, matching and file names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topic.h"

#define S(lit)	lit, sizeof(lit) - 1

static const struct {
	const char     *s;
	size_t          len;
	enum topic_err  name;		/* topic_check_name */
	enum topic_err  filter;		/* topic_check_filter */
} checks[] = {
	{ S("a"), TOPIC_OK, TOPIC_OK },
	{ S("sport/tennis/player1"), TOPIC_OK, TOPIC_OK },
	{ S("/"), TOPIC_OK, TOPIC_OK },
	{ S("//"), TOPIC_OK, TOPIC_OK },
	{ S("/finance"), TOPIC_OK, TOPIC_OK },
	{ S("$SYS/broker"), TOPIC_OK, TOPIC_OK },
	{ S("a b"), TOPIC_OK, TOPIC_OK },
	{ S("caf\xc3\xa9"), TOPIC_OK, TOPIC_OK },
	{ S("\xe2\x82\xac"), TOPIC_OK, TOPIC_OK },		/* U+20AC */
	{ S("\xf0\x9f\x98\x80"), TOPIC_OK, TOPIC_OK },		/* U+1F600 */
	{ S("\xef\xbf\xbf"), TOPIC_OK, TOPIC_OK },		/* U+FFFF */
	{ S("\xf4\x8f\xbf\xbf"), TOPIC_OK, TOPIC_OK },		/* U+10FFFF */
	{ S("\xed\x9f\xbf"), TOPIC_OK, TOPIC_OK },		/* U+D7FF */
	{ S("\xee\x80\x80"), TOPIC_OK, TOPIC_OK },		/* U+E000 */
	{ S(""), TOPIC_EMPTY, TOPIC_EMPTY },
	{ S("a\0b"), TOPIC_NUL, TOPIC_NUL },
	{ S("\0"), TOPIC_NUL, TOPIC_NUL },
	{ S("\xc0\x80"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },	/* overlong NUL */
	{ S("\xc1\xbf"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },	/* overlong */
	{ S("\xe0\x80\xaf"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },	/* overlong '/' */
	{ S("\xf0\x82\x82\xac"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 }, /* overlong */
	{ S("\xed\xa0\x80"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },	/* U+D800 */
	{ S("\xed\xbf\xbf"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },	/* U+DFFF */
	{ S("\xf4\x90\x80\x80"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 }, /* U+110000 */
	{ S("\xf8\x88\x80\x80\x80"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },
	{ S("\xff"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },
	{ S("\x80"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },		/* lone continuation */
	{ S("a\xc3"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },	/* truncated */
	{ S("\xe2\x82"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },	/* truncated */
	{ S("\xc3\x28"), TOPIC_BAD_UTF8, TOPIC_BAD_UTF8 },	/* bad continuation */
	{ S("#"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("+"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("a/#"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("a/+/b"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("+/+"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("/+"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("/#"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("+/#"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("+/tennis/#"), TOPIC_WILDCARD, TOPIC_OK },
	{ S("a#"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("a/b#"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("a/#/b"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("#/"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("##"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("a+"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("sport+"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("a/+b/c"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("++"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
	{ S("+#"), TOPIC_WILDCARD, TOPIC_BAD_WILDCARD },
};

static void
test_check_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		enum topic_err n = topic_check_name(checks[i].s, checks[i].len);
		enum topic_err f = topic_check_filter(checks[i].s, checks[i].len);

		if (n != checks[i].name || f != checks[i].filter)
			fail_msg("case %zu: name %d (want %d), filter %d (want %d)",
			    i, n, checks[i].name, f, checks[i].filter);
	}
}

static void
test_check_length(void **state)
{
	char *s = malloc(TOPIC_MAX_LEN + 2);

	(void)state;
	assert_non_null(s);
	memset(s, 'a', TOPIC_MAX_LEN + 1);
	assert_int_equal(topic_check_name(s, TOPIC_MAX_LEN), TOPIC_OK);
	assert_int_equal(topic_check_filter(s, TOPIC_MAX_LEN), TOPIC_OK);
	assert_int_equal(topic_check_name(s, TOPIC_MAX_LEN + 1), TOPIC_TOO_LONG);
	assert_int_equal(topic_check_filter(s, TOPIC_MAX_LEN + 1), TOPIC_TOO_LONG);
	free(s);
}

static void
test_strerror(void **state)
{
	(void)state;
	for (int e = TOPIC_OK; e <= TOPIC_TOO_MANY_LEVELS; e++) {
		const char *m = topic_strerror((enum topic_err)e);

		assert_non_null(m);
		assert_true(strlen(m) > 0);
	}
	assert_string_equal(topic_strerror(TOPIC_EMPTY), "empty topic");
}

static void
test_levels(void **state)
{
	static const struct {
		const char *s;
		size_t      levels;
	} t[] = {
		{ "a", 1 }, { "a/b", 2 }, { "/", 2 }, { "//", 3 }, { "/a/", 3 },
		{ "a/+/#", 3 }, { "#", 1 }, { "$SYS/broker/uptime", 3 },
	};
	char *s = malloc(TOPIC_MAX_LEN);

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].s);

		assert_int_equal(topic_levels(t[i].s, n), t[i].levels);
		assert_int_equal(topic_check_levels(t[i].s, n, t[i].levels), TOPIC_OK);
		assert_int_equal(topic_check_levels(t[i].s, n, 0), TOPIC_OK);
		if (t[i].levels > 1)
			assert_int_equal(topic_check_levels(t[i].s, n, t[i].levels - 1),
			    TOPIC_TOO_MANY_LEVELS);
	}
	/* Only len bytes count. */
	assert_int_equal(topic_levels("a/b/c", 3), 2);
	/* The most levels a topic can have: nothing but separators. */
	assert_non_null(s);
	memset(s, '/', TOPIC_MAX_LEN);
	assert_int_equal(topic_levels(s, TOPIC_MAX_LEN), TOPIC_MAX_LEN + 1);
	assert_int_equal(topic_check_levels(s, TOPIC_MAX_LEN, 200), TOPIC_TOO_MANY_LEVELS);
	assert_int_equal(topic_check_levels(s, 199, 200), TOPIC_OK);
	assert_int_equal(topic_check_levels(s, 200, 200), TOPIC_TOO_MANY_LEVELS);
	free(s);
	assert_string_equal(topic_strerror(TOPIC_TOO_MANY_LEVELS),
	    "topic has more levels than max_topic_levels");
}

static const struct {
	const char *filter, *name;
	bool        match;
} matches[] = {
	/* MQTT 3.1.1 section 4.7 */
	{ "sport/tennis/player1/#", "sport/tennis/player1", true },
	{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
	{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
	{ "sport/#", "sport", true },
	{ "sport/tennis/+", "sport/tennis/player1", true },
	{ "sport/tennis/+", "sport/tennis/player2", true },
	{ "sport/tennis/+", "sport/tennis/player1/ranking", false },
	{ "sport/+", "sport", false },
	{ "sport/+", "sport/", true },
	{ "+/+", "/finance", true },
	{ "/+", "/finance", true },
	{ "+", "/finance", false },
	{ "#", "$SYS/monitor/Clients", false },
	{ "+/monitor/Clients", "$SYS/monitor/Clients", false },
	{ "$SYS/#", "$SYS/monitor/Clients", true },
	{ "$SYS/monitor/+", "$SYS/monitor/Clients", true },
	{ "ACCOUNTS", "Accounts", false },
	{ "Accounts payable", "Accounts payable", true },
	{ "/finance", "finance", false },
	/* more */
	{ "#", "a", true },
	{ "#", "a/b/c", true },
	{ "#", "/", true },
	{ "#", "$DLQ", false },
	{ "+", "$DLQ", false },
	{ "$DLQ", "$DLQ", true },
	{ "$DLQ/#", "$DLQ", true },
	{ "a/$b", "a/$b", true },
	{ "a/+", "a/$b", true },
	{ "a/#", "a/$b/c", true },
	{ "+", "a", true },
	{ "+", "a/b", false },
	{ "+/+", "/", true },
	{ "+/+", "a", false },
	{ "a/b", "a/b", true },
	{ "a/b", "a/b/c", false },
	{ "a/b", "a", false },
	{ "a/b", "a/bc", false },
	{ "a/bc", "a/b", false },
	{ "a/+/c", "a/b/c", true },
	{ "a/+/c", "a//c", true },
	{ "a/+/c", "a/b/d", false },
	{ "a/+/#", "a/b", true },
	{ "a/+/#", "a", false },
	{ "a/#", "a/", true },
	{ "a/#", "ab", false },
	{ "a/#", "b/a", false },
	{ "/#", "/", true },
	{ "/#", "a", false },
	{ "a//b", "a//b", true },
	{ "a//b", "a/b", false },
	{ "a ", "a", false },
	{ "caf\xc3\xa9/+", "caf\xc3\xa9/x", true },
};

static void
test_match_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(matches) / sizeof(matches[0]); i++)
		if (topic_matches(matches[i].filter, matches[i].name) !=
		    matches[i].match)
			fail_msg("'%s' vs '%s': want %s", matches[i].filter,
			    matches[i].name, matches[i].match ? "match" : "no match");
}

/* A stem is one path component that is neither "." nor "..". */
static void
assert_good_stem(const char *stem)
{
	size_t len = strlen(stem);

	assert_true(len > 0);
	assert_true(len <= TOPIC_FILE_MAX);
	assert_null(strchr(stem, '/'));
	assert_true(stem[0] != '.');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)stem[i];

		assert_true(c > 0x20 && c < 0x7f);
	}
}

static const struct {
	const char *topic, *stem;
} escapes[] = {
	{ "a", "a" },
	{ "sensors/temp", "sensors%2Ftemp" },
	{ "a/b", "a%2Fb" },
	{ "/", "%2F" },
	{ ".", "%2E" },
	{ "..", "%2E." },
	{ "../etc", "%2E.%2Fetc" },
	{ "a.b", "a.b" },
	{ "%", "%25" },
	{ "%25", "%2525" },
	{ "~", "%7E" },
	{ "$DLQ", "%24DLQ" },
	{ "$SYS/broker/uptime", "%24SYS%2Fbroker%2Fuptime" },
	{ "a b", "a%20b" },
	{ "Az09_-", "Az09_-" },
	{ "caf\xc3\xa9", "caf%C3%A9" },
	{ "\xf0\x9f\x98\x80", "%F0%9F%98%80" },
	{ "\\", "%5C" },
	{ "\x01\x7f", "%01%7F" },
};

static void
test_escape_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		char *stem = topic_file_name(escapes[i].topic);
		char *back = topic_from_file_name(stem);

		assert_string_equal(stem, escapes[i].stem);
		assert_good_stem(stem);
		assert_non_null(back);
		assert_string_equal(back, escapes[i].topic);
		free(stem);
		free(back);
	}
}

static char *
repeat(char c, size_t n, const char *tail)
{
	size_t t = strlen(tail);
	char *s = malloc(n + t + 1);

	assert_non_null(s);
	memset(s, c, n);
	memcpy(s + n, tail, t + 1);
	return s;
}

static void
test_escape_long(void **state)
{
	char *exact = repeat('a', TOPIC_FILE_MAX, "");
	char *over = repeat('a', TOPIC_FILE_MAX + 1, "");
	char *s1, *back;

	(void)state;
	/* Exactly TOPIC_FILE_MAX bytes: kept whole, reversible. */
	s1 = topic_file_name(exact);
	assert_string_equal(s1, exact);
	back = topic_from_file_name(s1);
	assert_non_null(back);
	assert_string_equal(back, exact);
	free(back);
	free(s1);

	/* One more: cut, with the hash, and not reversible. */
	s1 = topic_file_name(over);
	assert_good_stem(s1);
	assert_int_equal(strlen(s1), TOPIC_FILE_MAX);
	assert_int_equal(s1[TOPIC_FILE_MAX - 17], '~');
	assert_int_equal(strspn(s1 + TOPIC_FILE_MAX - 16, "0123456789abcdef"), 16);
	assert_null(topic_from_file_name(s1));
	free(s1);
	free(exact);
	free(over);
}

static void
test_escape_long_differ_at_end(void **state)
{
	char *a = repeat('x', 5000, "/a");
	char *b = repeat('x', 5000, "/b");
	char *sa = topic_file_name(a), *sb = topic_file_name(b);
	char *sa2 = topic_file_name(a);

	(void)state;
	assert_good_stem(sa);
	assert_good_stem(sb);
	assert_string_not_equal(sa, sb);
	assert_string_equal(sa, sa2);		/* stable */
	free(a);
	free(b);
	free(sa);
	free(sb);
	free(sa2);
}

static void
test_escape_cut_keeps_triples(void **state)
{
	(void)state;
	/* Cuts at every alignment of a %XX triple against the limit. */
	for (size_t pre = 0; pre < 3; pre++) {
		char *t = repeat('/', 100, "");
		char *p = malloc(pre + 101);
		char *stem, *tilde;

		assert_non_null(p);
		memset(p, 'a', pre);
		memcpy(p + pre, t, 101);
		stem = topic_file_name(p);
		assert_good_stem(stem);
		tilde = strchr(stem, '~');
		assert_non_null(tilde);
		assert_int_equal(strlen(tilde), 17);
		assert_int_equal((size_t)(tilde - stem - pre) % 3, 0);
		for (char *q = stem + pre; q < tilde; q += 3)
			assert_memory_equal(q, "%2F", 3);
		free(stem);
		free(t);
		free(p);
	}
}

static uint32_t
next_rand(uint32_t *seed)
{
	*seed = *seed * 1103515245 + 12345;
	return *seed >> 8;
}

/* Random bytes 1..255 on even rounds; on odd rounds, text made of
 * pieces that need care (mostly valid names). */
static size_t
random_topic(uint32_t *seed, int round, char *buf, size_t size)
{
	static const char *const piece[] = {
		"a", "Z", "9", "_", "-", "/", ".", "..", "%", "%2F", "$", "~",
		" ", "+", "#", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
	};
	size_t len = 0, want = 1 + next_rand(seed) % (size - 1), n;

	if (round % 2 == 0) {
		for (; len < want; len++)
			buf[len] = (char)(1 + next_rand(seed) % 255);
	} else {
		want = want % 80 + 1;
		while (len < want) {
			const char *p = piece[next_rand(seed) %
			    (sizeof(piece) / sizeof(piece[0]))];

			if ((n = strlen(p)) >= size - len)
				break;
			memcpy(buf + len, p, n);
			len += n;
		}
	}
	buf[len] = '\0';
	return len;
}

/* Every stem is a good path component, and every uncut stem of a valid
 * name turns back into the name. */
static void
test_escape_random(void **state)
{
	uint32_t seed = 12345;
	char buf[400];
	int valid = 0;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len = random_topic(&seed, round, buf, sizeof(buf));
		char *stem, *back;

		stem = topic_file_name(buf);
		assert_good_stem(stem);
		back = topic_from_file_name(stem);
		if (strchr(stem, '~') == NULL &&
		    topic_check_name(buf, len) == TOPIC_OK) {
			assert_non_null(back);
			assert_string_equal(back, buf);
			valid++;
		} else
			assert_null(back);
		free(stem);
		free(back);
	}
	assert_true(valid > 1000);
}

static void
test_unescape_rejects(void **state)
{
	static const char *const bad[] = {
		"", "a%2fb", "%41", "a%2", "a%", "%", "%G0", ".a", "a/b",
		"a%2B", "%23", "%00", "%C3", "%ED%A0%80", "a~0123456789abcdef",
		"a b", "a%2Fb%2", "%2e",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *t = topic_from_file_name(bad[i]);

		if (t != NULL)
			fail_msg("'%s' decoded to '%s'", bad[i], t);
	}
}

/* $share/GROUP/FILTER: the filter part, or why not. */
static void
test_share_split(void **state)
{
	const char *f = NULL;

	(void)state;
	assert_int_equal(topic_share_split("$share/g/a/b", &f), 1);
	assert_string_equal(f, "a/b");
	assert_int_equal(topic_share_split("$share/group-1/#", &f), 1);
	assert_string_equal(f, "#");
	assert_int_equal(topic_share_split("$share/g//", NULL), 1);
	assert_int_equal(topic_share_split("a/b", &f), 0);
	assert_int_equal(topic_share_split("$SYS/x", &f), 0);
	assert_int_equal(topic_share_split("$sharex/g/t", &f), 0);
	assert_int_equal(topic_share_split("$share/", &f), -1);
	assert_int_equal(topic_share_split("$share/g", &f), -1);
	assert_int_equal(topic_share_split("$share/g/", &f), -1);
	assert_int_equal(topic_share_split("$share//t", &f), -1);
	assert_int_equal(topic_share_split("$share/g+/t", &f), -1);
	assert_int_equal(topic_share_split("$share/#/t", &f), -1);
	assert_int_equal(topic_share_split("$share/g/a#", &f), -1);
}

/* A subscriber's filter: a wildcard in a share's group is left to
 * topic_share_split, one in its filter is not. */
static void
test_check_sub_filter(void **state)
{
	(void)state;
	assert_int_equal(topic_check_sub_filter(S("a/+/#")), TOPIC_OK);
	assert_int_equal(topic_check_sub_filter(S("a+/b")), TOPIC_BAD_WILDCARD);
	assert_int_equal(topic_check_sub_filter(S("$share/g/a/#")), TOPIC_OK);
	assert_int_equal(topic_check_sub_filter(S("$share/g+/a")), TOPIC_OK);
	assert_int_equal(topic_share_split("$share/g+/a", NULL), -1);
	assert_int_equal(topic_check_sub_filter(S("$share/#/a/#")), TOPIC_OK);
	assert_int_equal(topic_check_sub_filter(S("$share/g#")), TOPIC_OK);
	assert_int_equal(topic_check_sub_filter(S("$share/g+/")), TOPIC_OK);
	assert_int_equal(topic_check_sub_filter(S("$share/g+/a+")), TOPIC_BAD_WILDCARD);
	assert_int_equal(topic_check_sub_filter(S("$share/g/a+")), TOPIC_BAD_WILDCARD);
	assert_int_equal(topic_check_sub_filter(S("$sharex/g+/a")), TOPIC_BAD_WILDCARD);
	assert_int_equal(topic_check_sub_filter(S("$share/g+/\xc1")), TOPIC_BAD_UTF8);
	assert_int_equal(topic_check_sub_filter(S("")), TOPIC_EMPTY);
}

/* utf8_prefix: where a UTF-8 string may be cut without splitting a
 * character. */
static void
test_utf8_prefix(void **state)
{
	(void)state;
	assert_int_equal(utf8_prefix(S("")), 0);
	assert_int_equal(utf8_prefix(S("abc")), 3);
	assert_int_equal(utf8_prefix(S("caf\xc3\xa9")), 5);
	assert_int_equal(utf8_prefix("caf\xc3\xa9", 4), 3);		/* half of U+00E9 */
	assert_int_equal(utf8_prefix("\xe2\x82\xac", 2), 0);		/* 2 of 3 bytes */
	assert_int_equal(utf8_prefix(S("ab\xc3\xa9\xf0\x9f\x98\x80")), 8);
	assert_int_equal(utf8_prefix("ab\xc3\xa9\xf0\x9f\x98\x80", 7), 4);
	assert_int_equal(utf8_prefix(S("a\xff" "b")), 1);		/* stops at a bad byte */
	assert_int_equal(utf8_prefix(S("a\xed\xa0\x80")), 1);		/* a surrogate */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_table),
		cmocka_unit_test(test_check_length),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_escape_long),
		cmocka_unit_test(test_escape_long_differ_at_end),
		cmocka_unit_test(test_escape_cut_keeps_triples),
		cmocka_unit_test(test_escape_random),
		cmocka_unit_test(test_unescape_rejects),
		cmocka_unit_test(test_share_split),
		cmocka_unit_test(test_check_sub_filter),
		cmocka_unit_test(test_utf8_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
