/* Configuration files written for another program (a hotel's keys in a
 * house's file: aliases, values taken, errors with a hint), and
 * include_dir: the .conf files of a directory, in name order, each read
 * from outside any block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

#include "house_conf.h"
#include "tmpdir.h"

static void
test_foreign_alias(void **state)
{
	struct house h;
	struct conf_errors e;

	(void)state;
	assert_int_equal(parse(&h, &e, NULL, "storeys 3\nroom hall\ncolour_scheme blue\n"), 0);
	assert_int_equal(h.floors, 3);
	assert_string_equal(room(&h, 0)->colour, "blue");
	done(&h, &e);
	/* The alias's value is checked as the key's is. */
	assert_int_equal(parse(&h, &e, NULL, "storeys 30\n"), 1);
	assert_string_equal(e.msg[0], "h.conf:1: bad value '30' for key 'floors': expected a"
	    " number between 1 and 10");
	done(&h, &e);
}

static void
test_foreign_taken_or_refused(void **state)
{
	struct house h;
	struct conf_errors e;

	(void)state;
	/* The value that describes a house, a boolean in any spelling; any
	 * value of a key that does not matter here. */
	assert_int_equal(parse(&h, &e, NULL, "breakfast yes\nbreakfast TRUE\nbreakfast 1\n"
	    "towels 12\ntowels none\n"), 0);
	done(&h, &e);
	assert_int_equal(parse(&h, &e, NULL, "breakfast no\nbellboy 2\nbellboys 2\n"
	    "breakfast\n"), 4);
	assert_string_equal(e.msg[0], "h.conf:1: 'breakfast no' is the hotel's: a house always"
	    " serves breakfast");
	assert_string_equal(e.msg[1], "h.conf:2: 'bellboy' is the hotel's: a house has none:"
	    " remove the line");
	assert_string_equal(e.msg[2], "h.conf:3: unknown key 'bellboys'");
	assert_string_equal(e.msg[3], "h.conf:4: 'breakfast' is the hotel's: a house always"
	    " serves breakfast");
	done(&h, &e);
	/* A name ending in '*': every key that starts so, and no other. */
	assert_int_equal(parse(&h, &e, NULL, "lobby_plants 3\nlobby_ 1\nlobby 2\n"), 3);
	assert_string_equal(e.msg[0], "h.conf:1: 'lobby_plants' is the hotel's: a house has"
	    " no lobby");
	assert_string_equal(e.msg[1], "h.conf:2: 'lobby_' is the hotel's: a house has no lobby");
	assert_string_equal(e.msg[2], "h.conf:3: unknown key 'lobby'");
	done(&h, &e);
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int
parse_file(struct house *h, struct conf_errors *e, const char *path)
{
	int n;

	memset(h, 0, sizeof(*h));
	memset(e, 0, sizeof(*e));
	conf_defaults(house_keys, h);
	n = conf_parse_syntax_file(&syntax, h, path, NULL, e);
	assert_int_equal((size_t)n, e->n + e->more);
	return n;
}

/* dir becomes a scratch directory with a subdirectory sub (named
 * subname), and main_conf the path of its main file. */
static void
make_dirs(char *dir, size_t dlen, char *sub, size_t slen, const char *subname,
    char *main_conf, size_t mlen)
{
	assert_int_equal(tmpdir_make(dir, dlen, "test_conf_include"), 0);
	snprintf(sub, slen, "%s/%s", dir, subname);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(main_conf, mlen, "%s/house.conf", dir);
}

static void
remove_dirs(const char *dir, const char *sub)
{
	tmpdir_clear(sub);
	assert_int_equal(rmdir(sub), 0);
	tmpdir_clear(dir);
	assert_int_equal(rmdir(dir), 0);
}

/* The files of the directory in the order of their names, relative to
 * the including file, each outside any block; the block the include_dir
 * line stood in goes on after it. */
static void
test_include_order(void **state)
{
	char dir[32], sub[40], main_conf[64];
	struct conf_errors e;
	struct house h;

	(void)state;
	make_dirs(dir, sizeof(dir), sub, sizeof(sub), "conf.d", main_conf, sizeof(main_conf));
	write_file(dir, "house.conf", "floors 1\nroom hall\ninclude_dir conf.d\nseats 9\n"
	    "owner carol\n");
	write_file(sub, "20-b.conf", "floors 3\nroom attic\nseats 2\n");
	write_file(sub, "10-a.conf", "floors 2\nowner alice\n");
	write_file(sub, "30-c.conf.disabled", "floors 9\n");
	write_file(sub, ".hidden.conf", "floors 8\n");
	assert_int_equal(parse_file(&h, &e, main_conf), 0);
	assert_int_equal(h.floors, 3);			/* 10-a, then 20-b */
	assert_string_equal(h.owner, "alice");		/* the main table's */
	assert_int_equal(h.rooms.n, 2);
	assert_string_equal(room(&h, 0)->name, "hall");
	assert_int_equal(room(&h, 0)->seats, 9);	/* after the include */
	assert_string_equal(room(&h, 0)->owner, "carol");
	assert_string_equal(room(&h, 1)->name, "attic");
	assert_int_equal(room(&h, 1)->seats, 2);
	assert_non_null(strstr(room(&h, 1)->where, "/conf.d/20-b.conf:2"));
	done(&h, &e);
	remove_dirs(dir, sub);
}

/* Errors name the included file and its line; a missing directory, an
 * include in an included file, and an empty value are errors of the
 * include_dir line. */
static void
test_include_errors(void **state)
{
	char dir[32], sub[40], main_conf[64];
	struct conf_errors e;
	struct house h;

	(void)state;
	make_dirs(dir, sizeof(dir), sub, sizeof(sub), "d", main_conf, sizeof(main_conf));
	write_file(dir, "house.conf", "include_dir d\ninclude_dir missing\ninclude_dir\n"
	    "bogus 1\n");
	write_file(sub, "a.conf", "\nfloors 99\ninclude_dir .\n");
	assert_int_equal(parse_file(&h, &e, main_conf), 5);
	assert_non_null(strstr(e.msg[0], "/d/a.conf:2: bad value '99' for key 'floors'"));
	assert_non_null(strstr(e.msg[1], "/d/a.conf:3: include_dir in an included file: give"
	    " it in the main file"));
	assert_non_null(strstr(e.msg[2], "/house.conf:2: include_dir "));
	assert_non_null(strstr(e.msg[2], "/missing: No such file or directory"));
	assert_non_null(strstr(e.msg[3], "/house.conf:3: missing value for key 'include_dir'"));
	assert_non_null(strstr(e.msg[4], "/house.conf:4: unknown key 'bogus'"));
	/* The files they are in, each once, in the order met. */
	assert_int_equal(e.nfiles, 2);
	assert_non_null(strstr(e.files[0], "/d/a.conf"));
	assert_non_null(strstr(e.files[1], "/house.conf"));
	done(&h, &e);
	assert_int_equal(e.nfiles, 0);
	/* Errors in an included file only: only that one. */
	write_file(dir, "house.conf", "include_dir d\nfloors 2\n");
	assert_int_equal(parse_file(&h, &e, main_conf), 2);
	assert_int_equal(e.nfiles, 1);
	assert_non_null(strstr(e.files[0], "/d/a.conf"));
	done(&h, &e);
	remove_dirs(dir, sub);
}

/* A file of junk is at most CONF_ERRORS_MAX messages, and the rest a
 * count; a FIFO or a directory named *.conf is passed over (a FIFO put
 * there after the look is not waited on: conf_file.c's read_file). */
static void
test_include_junk_fifo_and_directory(void **state)
{
	char dir[32], sub[40], main_conf[64], path[64];
	struct conf_errors e;
	struct house h;
	char *junk = calloc(1000, 2);

	(void)state;
	assert_non_null(junk);
	for (int i = 0; i < 1000; i++)
		memcpy(junk + 2 * i, "x\n", 2);
	make_dirs(dir, sizeof(dir), sub, sizeof(sub), "d", main_conf, sizeof(main_conf));
	write_file(dir, "house.conf", "include_dir d\nfloors 2\n");
	junk[1999] = '\0';
	write_file(sub, "junk.conf", junk);
	free(junk);
	assert_int_equal(parse_file(&h, &e, main_conf), 1000);
	assert_int_equal(e.n, CONF_ERRORS_MAX);
	assert_int_equal(e.more, 1000 - CONF_ERRORS_MAX);
	assert_non_null(strstr(e.msg[CONF_ERRORS_MAX - 1], "/d/junk.conf:100: "));
	assert_int_equal(e.nfiles, 1);		/* counted past the messages too */
	done(&h, &e);
	assert_int_equal(e.more, 0);
	snprintf(path, sizeof(path), "%s/junk.conf", sub);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/pipe.conf", sub);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/dir.conf", sub);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(parse_file(&h, &e, main_conf), 0);	/* and no hang */
	assert_int_equal(h.floors, 2);
	done(&h, &e);
	assert_int_equal(rmdir(path), 0);
	remove_dirs(dir, sub);
}

/* An include_dir's files in mosquitto's order: case-insensitive
 * alphabetical, a letter's capital first (mosquitto's scmp_p), so
 * "a.conf" comes before "B.conf" and "_x.conf" after both. */
static void
test_include_order_as_mosquitto(void **state)
{
	char dir[32], sub[40], main_conf[64];
	unsigned first, second;
	struct conf_errors e;
	struct house h;

	(void)state;
	make_dirs(dir, sizeof(dir), sub, sizeof(sub), "conf.d", main_conf, sizeof(main_conf));
	write_file(dir, "house.conf", "include_dir conf.d\n");
	write_file(sub, "a.conf", "floors 2\n");
	write_file(sub, "B.conf", "floors 3\n");
	assert_int_equal(parse_file(&h, &e, main_conf), 0);
	first = h.floors;
	done(&h, &e);
	write_file(sub, "_z.conf", "floors 4\n");
	assert_int_equal(parse_file(&h, &e, main_conf), 0);
	second = h.floors;
	done(&h, &e);
	remove_dirs(dir, sub);
	assert_int_equal(first, 3);			/* a.conf, then B.conf */
	assert_int_equal(second, 4);			/* ... then _z.conf */
}

/* A foreign key whose entry has no hint (an alias, a value taken) and
 * that cannot be taken: an alias of a block key outside a block, a value
 * taken but missing.  The error says something, not "(null)". */
static void
test_foreign_error_without_hint(void **state)
{
	struct house h;
	struct conf_errors e;
	bool null0, null1;

	(void)state;
	assert_int_equal(parse(&h, &e, NULL, "colour_scheme blue\ntowels\n"), 2);
	null0 = strstr(e.msg[0], "(null)") != NULL;	/* h.conf:1: ... */
	null1 = strstr(e.msg[1], "(null)") != NULL;	/* h.conf:2: ... */
	done(&h, &e);
	assert_false(null0);
	assert_false(null1);
}

/* A buffer has no directory: include_dir is not a key there. */
static void
test_include_not_in_a_buffer(void **state)
{
	struct house h;
	struct conf_errors e;

	(void)state;
	assert_int_equal(parse(&h, &e, NULL, "include_dir /etc\n"), 1);
	assert_string_equal(e.msg[0], "h.conf:1: unknown key 'include_dir'");
	done(&h, &e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_foreign_alias),
		cmocka_unit_test(test_foreign_taken_or_refused),
		cmocka_unit_test(test_include_order),
		cmocka_unit_test(test_include_errors),
		cmocka_unit_test(test_include_not_in_a_buffer),
		cmocka_unit_test(test_include_order_as_mosquitto),
		cmocka_unit_test(test_include_junk_fifo_and_directory),
		cmocka_unit_test(test_foreign_error_without_hint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
