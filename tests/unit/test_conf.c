/* The table-driven configuration parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

struct tconf {
	bool              flag;
	unsigned          count;
	unsigned          port;
	uint64_t          size;
	uint64_t          delay;
	char             *name;
	struct conf_list  list;
	unsigned          any;
	char             *nodef;
};

#define OFF(f)	offsetof(struct tconf, f)

/* List items may not start with '-' (a value check). */
static const char *
check_item(const char *v)
{
	return v[0] == '-' ? "expected a word not starting with -" : NULL;
}

static const struct conf_key tab[] = {
	{ "flag", CONF_BOOL, OFF(flag), "false", 0, 0, true, "a switch", NULL },
	{ "count", CONF_UINT, OFF(count), "5", 1, 100, true, "a count", NULL },
	{ "port", CONF_PORT, OFF(port), "1883", 0, 0, false, "a port", NULL },
	{ "size", CONF_SIZE, OFF(size), "64k", 16, 1048576, true, "a size", NULL },
	{ "delay", CONF_MSEC, OFF(delay), "0.25", 0.01, 3600, true, "a delay", NULL },
	{ "name", CONF_STRING, OFF(name), "default", 0, 0, false, "a name", NULL },
	{ "list", CONF_LIST, OFF(list), "first", 0, 0, false, "a list", check_item },
	{ "any", CONF_UINT, OFF(any), NULL, 0, 0, false, "any number", NULL },
	{ "nodef", CONF_STRING, OFF(nodef), NULL, 0, 0, false, "no default", NULL },
	{ NULL, 0, 0, NULL, 0, 0, false, NULL, NULL },
};

/* Parses text over fresh defaults; returns the number of errors. */
static int
parse(struct tconf *c, struct conf_errors *e, const char *text)
{
	int n;

	memset(e, 0, sizeof(*e));
	conf_defaults(tab, c);
	n = conf_parse_buf(tab, c, "t.conf", text, strlen(text), e);
	assert_int_equal((size_t)n, e->n);
	return n;
}

static void
done(struct tconf *c, struct conf_errors *e)
{
	conf_free(tab, c);
	conf_errors_free(e);
}

/* A key's own value check reports FILE:LINE and keeps the old value. */
static void
test_value_check(void **state)
{
	struct tconf c;
	struct conf_errors e;

	(void)state;
	assert_int_equal(parse(&c, &e, "list ok\nlist -bad\nlist fine\n"), 1);
	assert_string_equal(e.msg[0], "t.conf:2: bad value '-bad' for key 'list': "
	    "expected a word not starting with -");
	assert_int_equal(c.list.n, 2);
	assert_string_equal(c.list.v[0], "ok");
	assert_string_equal(c.list.v[1], "fine");
	done(&c, &e);
}

static void
test_defaults(void **state)
{
	struct tconf c;

	(void)state;
	memset(&c, 0xa5, sizeof(c));
	conf_defaults(tab, &c);
	assert_false(c.flag);
	assert_int_equal(c.count, 5);
	assert_int_equal(c.port, 1883);
	assert_int_equal(c.size, 65536);
	assert_int_equal(c.delay, 250);
	assert_string_equal(c.name, "default");
	assert_int_equal(c.list.n, 1);
	assert_string_equal(c.list.v[0], "first");
	assert_int_equal(c.any, 0);
	assert_null(c.nodef);
	conf_free(tab, &c);
	assert_null(c.name);
	assert_null(c.list.v);
	assert_int_equal(c.list.n, 0);
	conf_free(tab, &c);		/* twice is harmless */
}

/* Good values and what they are stored as. */
static const struct {
	const char *key, *value;
	uint64_t    want;
} goods[] = {
	{ "flag", "true", 1 }, { "flag", "yes", 1 }, { "flag", "on", 1 },
	{ "flag", "1", 1 }, { "flag", "TRUE", 1 }, { "flag", "Yes", 1 },
	{ "flag", "false", 0 }, { "flag", "no", 0 }, { "flag", "off", 0 },
	{ "flag", "0", 0 }, { "flag", "Off", 0 },
	{ "count", "1", 1 }, { "count", "100", 100 }, { "count", "007", 7 },
	{ "port", "0", 0 }, { "port", "65535", 65535 }, { "port", "4040", 4040 },
	{ "size", "16", 16 }, { "size", "65536", 65536 }, { "size", "64k", 65536 },
	{ "size", "64K", 65536 }, { "size", "1m", 1048576 },
	{ "size", "1M", 1048576 }, { "size", "1K", 1024 },
	{ "delay", "0.01", 10 }, { "delay", "0.25", 250 }, { "delay", "1", 1000 },
	{ "delay", "1.5", 1500 }, { "delay", "3600", 3600000 },
	{ "delay", "0.010", 10 }, { "delay", "0.0100", 10 },
	{ "delay", "2.000000", 2000 }, { "delay", "0.123", 123 },
	{ "any", "0", 0 }, { "any", "4294967295", 4294967295u },
};

static uint64_t
get(const struct tconf *c, const char *key)
{
	if (strcmp(key, "flag") == 0)
		return c->flag;
	if (strcmp(key, "count") == 0)
		return c->count;
	if (strcmp(key, "port") == 0)
		return c->port;
	if (strcmp(key, "size") == 0)
		return c->size;
	if (strcmp(key, "delay") == 0)
		return c->delay;
	if (strcmp(key, "any") == 0)
		return c->any;
	fail_msg("no key %s", key);
	return 0;
}

static void
test_good_values(void **state)
{
	struct tconf c;
	struct conf_errors e;
	char line[128];

	(void)state;
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		snprintf(line, sizeof(line), "%s %s\n", goods[i].key, goods[i].value);
		if (parse(&c, &e, line) != 0)
			fail_msg("'%s': %s", line, e.msg[0]);
		if (get(&c, goods[i].key) != goods[i].want)
			fail_msg("'%s': got %llu", line,
			    (unsigned long long)get(&c, goods[i].key));
		done(&c, &e);
	}
}

/* Bad values, and the "expected" part of the message. */
#define E_BOOL	"expected true, false, yes, no, on, off, 1 or 0"
#define E_COUNT	"expected a number between 1 and 100"
#define E_PORT	"expected a port number between 0 and 65535"
#define E_SIZE	"expected a size in bytes between 16 and 1048576 (suffix k, m or g allowed)"
#define E_DELAY	"expected a number of seconds between 0.01 and 3600 (at most 3 decimals)"
#define E_ANY	"expected a number between 0 and 4294967295"

static const struct {
	const char *key, *value, *why;
} bads[] = {
	{ "flag", "maybe", E_BOOL }, { "flag", "2", E_BOOL },
	{ "flag", "truex", E_BOOL }, { "flag", "y", E_BOOL },
	{ "count", "0", E_COUNT }, { "count", "101", E_COUNT },
	{ "count", "-1", E_COUNT }, { "count", "+5", E_COUNT },
	{ "count", "5x", E_COUNT }, { "count", "1.5", E_COUNT },
	{ "count", "0x10", E_COUNT }, { "count", "5 6", E_COUNT },
	{ "count", "99999999999999999999999", E_COUNT },
	{ "port", "65536", E_PORT }, { "port", "-1", E_PORT },
	{ "port", "http", E_PORT },
	{ "size", "15", E_SIZE }, { "size", "2m", E_SIZE }, { "size", "1g", E_SIZE },
	{ "size", "1kb", E_SIZE }, { "size", "k", E_SIZE }, { "size", "1 k", E_SIZE },
	{ "size", "1t", E_SIZE }, { "size", "0m", E_SIZE }, { "size", "-1", E_SIZE },
	{ "size", "18446744073709551616", E_SIZE },
	{ "size", "17179869184g", E_SIZE },
	{ "delay", "0.001", E_DELAY }, { "delay", "0", E_DELAY },
	{ "delay", "0.0101", E_DELAY }, { "delay", "3600.001", E_DELAY },
	{ "delay", ".5", E_DELAY }, { "delay", "5.", E_DELAY },
	{ "delay", "1e3", E_DELAY }, { "delay", "-1", E_DELAY },
	{ "delay", "1s", E_DELAY }, { "delay", "1..5", E_DELAY },
	{ "delay", "18446744073709551615", E_DELAY },
	{ "any", "4294967296", E_ANY }, { "any", "x", E_ANY },
};

static void
test_bad_values(void **state)
{
	struct tconf c, d;
	struct conf_errors e;
	char line[128], want[256];

	(void)state;
	conf_defaults(tab, &d);
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		snprintf(line, sizeof(line), "%s %s\n", bads[i].key, bads[i].value);
		snprintf(want, sizeof(want),
		    "t.conf:1: bad value '%s' for key '%s': %s",
		    bads[i].value, bads[i].key, bads[i].why);
		if (parse(&c, &e, line) != 1)
			fail_msg("'%s' accepted", line);
		assert_string_equal(e.msg[0], want);
		/* The key keeps its value. */
		assert_false(conf_differs(conf_find(tab, bads[i].key), &c, &d));
		done(&c, &e);
	}
	conf_free(tab, &d);
}

static void
test_format(void **state)
{
	struct tconf c;
	struct conf_errors e;

	(void)state;
	assert_int_equal(parse(&c, &e,
	    "\xef\xbb\xbf# a comment\n"
	    "\n"
	    "   \t  \n"
	    "   # an indented comment\n"
	    "#count 7\n"
	    "\tcount\t  9  \t\n"
	    "name  a/# not a comment  \r\n"
	    "nodef x\ty\n"
	    "flag yes"), 0);
	assert_int_equal(c.count, 9);
	assert_string_equal(c.name, "a/# not a comment");
	assert_string_equal(c.nodef, "x\ty");
	assert_true(c.flag);
	done(&c, &e);

	/* The last one wins. */
	assert_int_equal(parse(&c, &e, "count 2\nname a\ncount 3\nname b\n"), 0);
	assert_int_equal(c.count, 3);
	assert_string_equal(c.name, "b");
	done(&c, &e);

	/* Empty input. */
	assert_int_equal(parse(&c, &e, ""), 0);
	assert_int_equal(c.count, 5);
	done(&c, &e);
}

static void
test_errors_lines(void **state)
{
	struct tconf c;
	struct conf_errors e;
	char *text, *p;
	int n;

	(void)state;
	text = malloc(8192);
	assert_non_null(text);
	p = text;
	p += sprintf(p, "# header\n");			/* 1 */
	p += sprintf(p, "count 200\n");			/* 2 bad value */
	p += sprintf(p, "colour blue\n");		/* 3 unknown key */
	p += sprintf(p, "\n");				/* 4 */
	p += sprintf(p, "name\n");			/* 5 no value */
	p += sprintf(p, "  port   \t\n");		/* 6 no value */
	p += sprintf(p, "count 42\n");			/* 7 good */
	p += sprintf(p, "flag perhaps # really\n");	/* 8 bad value */
	p += sprintf(p, "name ");			/* 9 too long */
	memset(p, 'x', 4092);
	p += 4092;
	p += sprintf(p, "\n");
	p += sprintf(p, "name ok\n");			/* 10 good */
	p += sprintf(p, "bogus\n");			/* 11 unknown key */
	n = (int)(p - text);
	memcpy(p, "size 1\0k\n", 9);			/* 12 NUL byte */
	n += 9;
	memcpy(text + n, "delay 1", 7);			/* 13 good, no newline */
	n += 7;

	memset(&e, 0, sizeof(e));
	conf_defaults(tab, &c);
	assert_int_equal(conf_parse_buf(tab, &c, "t.conf", text, (size_t)n, &e), 8);
	assert_int_equal(e.n, 8);
	assert_string_equal(e.msg[0],
	    "t.conf:2: bad value '200' for key 'count': " E_COUNT);
	assert_string_equal(e.msg[1], "t.conf:3: unknown key 'colour'");
	assert_string_equal(e.msg[2], "t.conf:5: missing value for key 'name'");
	assert_string_equal(e.msg[3], "t.conf:6: missing value for key 'port'");
	assert_string_equal(e.msg[4],
	    "t.conf:8: bad value 'perhaps # really' for key 'flag': " E_BOOL);
	assert_string_equal(e.msg[5],
	    "t.conf:9: line too long (more than 4096 bytes)");
	assert_string_equal(e.msg[6], "t.conf:11: unknown key 'bogus'");
	assert_string_equal(e.msg[7], "t.conf:12: NUL byte in line");
	/* Parsing went on. */
	assert_int_equal(c.count, 42);
	assert_string_equal(c.name, "ok");
	assert_int_equal(c.delay, 1000);
	assert_int_equal(c.size, 65536);
	done(&c, &e);
	free(text);
}

static void
test_line_length(void **state)
{
	struct tconf c;
	struct conf_errors e;
	char *text = malloc(4200);

	(void)state;
	assert_non_null(text);
	/* 4096 bytes, then "\r" makes 4097: too long. */
	memcpy(text, "name ", 5);
	memset(text + 5, 'y', 4091);
	text[4096] = '\0';
	assert_int_equal(parse(&c, &e, text), 0);
	assert_int_equal(strlen(c.name), 4091);
	done(&c, &e);
	memcpy(text + 4096, "\r\n", 3);
	assert_int_equal(parse(&c, &e, text), 1);
	assert_string_equal(e.msg[0], "t.conf:1: line too long (more than 4096 bytes)");
	done(&c, &e);
	free(text);
}

static void
test_shown_values(void **state)
{
	struct tconf c;
	struct conf_errors e;
	char line[256];

	(void)state;
	assert_int_equal(parse(&c, &e, "count 1\x01" "2\nke\x1by 1\n"), 2);
	assert_string_equal(e.msg[0],
	    "t.conf:1: bad value '1\\x012' for key 'count': " E_COUNT);
	assert_string_equal(e.msg[1], "t.conf:2: unknown key 'ke\\x1by'");
	done(&c, &e);

	/* Long values are cut. */
	memcpy(line, "count ", 6);
	memset(line + 6, '9', 200);
	line[206] = '\0';
	assert_int_equal(parse(&c, &e, line), 1);
	assert_non_null(strstr(e.msg[0], "'99999999999999999999"));
	assert_non_null(strstr(e.msg[0], "9...' for key 'count'"));
	assert_true(strlen(e.msg[0]) < 200);
	done(&c, &e);
}

static void
test_lists(void **state)
{
	struct tconf c;
	struct conf_errors e;

	(void)state;
	assert_int_equal(parse(&c, &e, "count 2\n"), 0);
	assert_int_equal(c.list.n, 1);
	assert_string_equal(c.list.v[0], "first");
	done(&c, &e);

	/* The file's first occurrence replaces the default; the rest append. */
	assert_int_equal(parse(&c, &e,
	    "list a b\nlist  c  \ncount 2\nlist first\n"), 0);
	assert_int_equal(c.list.n, 3);
	assert_string_equal(c.list.v[0], "a b");
	assert_string_equal(c.list.v[1], "c");
	assert_string_equal(c.list.v[2], "first");
	/* conf_set appends. */
	assert_int_equal(conf_set(tab, &c, "list", "d", "-o", &e), 0);
	assert_int_equal(c.list.n, 4);
	assert_string_equal(c.list.v[3], "d");
	/* A second parse over the same object replaces again. */
	assert_int_equal(conf_parse_buf(tab, &c, "u", "list z\n", 7, &e), 0);
	assert_int_equal(c.list.n, 1);
	assert_string_equal(c.list.v[0], "z");
	done(&c, &e);
}

/* A key given twice: the last line applies, and a warning (not an
 * error) names it; a list given twice is no such thing. */
static void
test_given_twice(void **state)
{
	struct tconf c;
	struct conf_errors e;

	(void)state;
	assert_int_equal(parse(&c, &e, "count 2\nlist a\nname x\ncount 7\nlist b\n"), 0);
	assert_int_equal(c.count, 7);
	assert_string_equal(c.name, "x");
	assert_int_equal(c.list.n, 2);
	assert_int_equal(e.nnotes, 1);
	assert_string_equal(e.notes[0],
	    "t.conf:4: count given again: this line replaces the one before");
	done(&c, &e);
	assert_null(e.notes);
	assert_int_equal(e.nnotes, 0);

	/* A bad second value is an error, not a warning as well. */
	assert_int_equal(parse(&c, &e, "count 2\ncount 0\n"), 1);
	assert_int_equal(c.count, 2);
	assert_int_equal(e.nnotes, 0);
	done(&c, &e);
}

static void
test_set(void **state)
{
	struct tconf c;
	struct conf_errors e;

	(void)state;
	memset(&e, 0, sizeof(e));
	conf_defaults(tab, &c);
	assert_int_equal(conf_set(tab, &c, "count", "17", "command line", &e), 0);
	assert_int_equal(c.count, 17);
	assert_int_equal(conf_set(tab, &c, "name", "  spaced ", "-o", &e), 0);
	assert_string_equal(c.name, "  spaced ");
	assert_int_equal(conf_set(tab, &c, "delay", "2.5", "-o", &e), 0);
	assert_int_equal(c.delay, 2500);
	assert_int_equal(e.n, 0);

	assert_int_equal(conf_set(tab, &c, "colour", "red", "command line", &e), -1);
	assert_int_equal(conf_set(tab, &c, "count", "1000", "command line", &e), -1);
	assert_int_equal(conf_set(tab, &c, "count", "", "command line", &e), -1);
	assert_int_equal(conf_set(tab, &c, "name", NULL, "-o", &e), -1);
	assert_int_equal(e.n, 4);
	assert_string_equal(e.msg[0], "command line: unknown key 'colour'");
	assert_string_equal(e.msg[1],
	    "command line: bad value '1000' for key 'count': " E_COUNT);
	assert_string_equal(e.msg[2], "command line: missing value for key 'count'");
	assert_string_equal(e.msg[3], "-o: missing value for key 'name'");
	assert_int_equal(e.nfiles, 0);		/* no file is wrong */
	assert_int_equal(c.count, 17);
	assert_string_equal(c.name, "  spaced ");
	assert_ptr_equal(conf_find(tab, "port"), &tab[2]);
	assert_null(conf_find(tab, "Port"));
	assert_null(conf_find(tab, ""));
	done(&c, &e);
}

static void
test_differs_copy_free(void **state)
{
	struct tconf a, b;
	struct conf_errors e;
	const struct conf_key *k;

	(void)state;
	assert_int_equal(parse(&a, &e,
	    "flag on\ncount 9\nport 1\nsize 1k\ndelay 2\nname n\n"
	    "list x\nlist y\nany 3\nnodef z\n"), 0);
	conf_errors_free(&e);

	memset(&b, 0, sizeof(b));
	conf_copy(tab, &b, &a);
	for (k = tab; k->name != NULL; k++)
		assert_false(conf_differs(k, &a, &b));
	assert_ptr_not_equal(a.name, b.name);
	assert_ptr_not_equal(a.list.v, b.list.v);
	assert_ptr_not_equal(a.list.v[0], b.list.v[0]);

	/* Change every key in b; each then differs, and only that one. */
	b.flag = false;
	b.count = 10;
	b.port = 2;
	b.size = 2048;
	b.delay = 3000;
	free(b.name);
	b.name = strdup("m");
	free(b.list.v[1]);
	b.list.v[1] = strdup("w");
	b.any = 4;
	free(b.nodef);
	b.nodef = NULL;
	for (k = tab; k->name != NULL; k++)
		assert_true(conf_differs(k, &a, &b));
	/* A list of another length. */
	assert_int_equal(conf_set(tab, &b, "list", "v", "-o", &e), 0);
	assert_true(conf_differs(conf_find(tab, "list"), &a, &b));

	conf_free(tab, &a);
	conf_free(tab, &b);
	/* Both freed: the same. */
	for (k = tab; k->name != NULL; k++)
		if (k->type == CONF_STRING || k->type == CONF_LIST)
			assert_false(conf_differs(k, &a, &b));
	conf_errors_free(&e);
}

static void
test_file(void **state)
{
	struct tconf c;
	struct conf_errors e = { 0 };
	char path[] = "test_conf.XXXXXX";
	static const char text[] = "count 11\nbogus 1\n";
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd != -1);
	assert_int_equal(write(fd, text, sizeof(text) - 1), sizeof(text) - 1);
	assert_int_equal(close(fd), 0);

	conf_defaults(tab, &c);
	assert_int_equal(conf_parse_file(tab, &c, path, &e), 1);
	assert_int_equal(c.count, 11);
	assert_int_equal(e.n, 1);
	assert_true(strncmp(e.msg[0], path, strlen(path)) == 0);
	assert_string_equal(e.msg[0] + strlen(path), ":2: unknown key 'bogus'");
	assert_int_equal(unlink(path), 0);
	conf_errors_free(&e);

	assert_int_equal(conf_parse_file(tab, &c, "no/such/dir/x.conf", &e), 1);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msg[0],
	    "no/such/dir/x.conf: cannot open: No such file or directory");
	assert_int_equal(e.nfiles, 1);
	assert_string_equal(e.files[0], "no/such/dir/x.conf");
	assert_int_equal(c.count, 11);
	conf_errors_free(&e);

	assert_int_equal(conf_parse_file(tab, &c, ".", &e), 1);
	assert_string_equal(e.msg[0], ".: cannot read: Is a directory");
	conf_errors_free(&e);
	assert_int_equal(conf_parse_file(tab, &c, "/dev/zero", &e), 1);
	assert_string_equal(e.msg[0], "/dev/zero: too large (more than 16777216 bytes)");
	done(&c, &e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_value_check),
		cmocka_unit_test(test_good_values),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_errors_lines),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_shown_values),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_given_twice),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_differs_copy_free),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
