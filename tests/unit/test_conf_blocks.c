/* Blocks in configuration files ("listener 8883" and the keys after it):
 * where each key goes, the errors of keys out of place, and freeing. */
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

#include "house_conf.h"

/* Each block gets the keys after it; keys of the main table go to the
 * main structure wherever they are, except a key the block has too. */
static void
test_keys_go_to_their_block(void **state)
{
	struct house h;
	struct conf_errors e;

	(void)state;
	assert_int_equal(parse(&h, &e, NULL,
	    "floors 2\n"
	    "room kitchen\n"
	    "colour red\n"
	    "seats 6\n"
	    "open yes\n"			/* the house's, in a block */
	    "owner alice\n"			/* the room's: it has the key */
	    "# a comment\n"
	    "room hall\n"
	    "tags long\n"
	    "tags narrow\n"
	    "garden back\n"
	    "fenced on\n"
	    "floors 3\n"), 0);
	assert_int_equal(h.floors, 3);
	assert_true(h.open);
	assert_string_equal(h.owner, "nobody");
	assert_int_equal(h.rooms.n, 2);
	assert_string_equal(room(&h, 0)->name, "kitchen");
	assert_string_equal(room(&h, 0)->where, "h.conf:2");
	assert_string_equal(room(&h, 0)->colour, "red");
	assert_int_equal(room(&h, 0)->seats, 6);
	assert_false(room(&h, 0)->locked);
	assert_string_equal(room(&h, 0)->owner, "alice");
	assert_int_equal(room(&h, 0)->tags.n, 1);
	assert_string_equal(room(&h, 0)->tags.v[0], "plain");	/* its default */
	/* The second room starts from the defaults, not from the first. */
	assert_string_equal(room(&h, 1)->name, "hall");
	assert_string_equal(room(&h, 1)->where, "h.conf:8");
	assert_string_equal(room(&h, 1)->colour, "white");
	assert_null(room(&h, 1)->owner);
	assert_int_equal(room(&h, 1)->tags.n, 2);		/* the first replaced the default */
	assert_string_equal(room(&h, 1)->tags.v[0], "long");
	assert_string_equal(room(&h, 1)->tags.v[1], "narrow");
	/* Another kind of block ends the room. */
	assert_int_equal(h.gardens.n, 1);
	assert_string_equal(((struct garden *)h.gardens.v[0])->name, "back");
	assert_true(((struct garden *)h.gardens.v[0])->fenced);
	done(&h, &e);

	/* Outside any block, a key both tables have is the main one's. */
	assert_int_equal(parse(&h, &e, NULL, "owner bob\nroom a\n"), 0);
	assert_string_equal(h.owner, "bob");
	assert_null(room(&h, 0)->owner);
	done(&h, &e);
}

/* Every error names its line; a block with a bad opening value is still
 * opened, so that its keys are not reported too. */
static void
test_block_errors(void **state)
{
	struct house h;
	struct conf_errors e;

	(void)state;
	assert_int_equal(parse(&h, &e, NULL,
	    "colour blue\n"
	    "room two words\n"
	    "seats 6\n"
	    "seats 99\n"
	    "fenced yes\n"
	    "room\n"
	    "painting 3\n"
	    "garden g\n"
	    "colour green\n"), 7);
	assert_string_equal(e.msg[0], "h.conf:1: key 'colour' belongs in a room block:"
	    " put it after a 'room' line");
	assert_string_equal(e.msg[1], "h.conf:2: bad value 'two words' for key 'room':"
	    " expected one word");
	assert_string_equal(e.msg[2], "h.conf:4: bad value '99' for key 'seats':"
	    " expected a number between 1 and 20");
	assert_string_equal(e.msg[3], "h.conf:5: key 'fenced' belongs in a garden block:"
	    " put it after a 'garden' line");
	assert_string_equal(e.msg[4], "h.conf:6: missing value for key 'room'");
	assert_string_equal(e.msg[5], "h.conf:7: unknown key 'painting'");
	/* In a garden, a room's key is out of place too. */
	assert_string_equal(e.msg[6], "h.conf:9: key 'colour' belongs in a room block:"
	    " put it after a 'room' line");
	done(&h, &e);

	/* Both blocks were kept, with what parsed. */
	assert_int_equal(parse(&h, &e, NULL, "room two words\nseats 6\nroom\n"), 2);
	assert_int_equal(h.rooms.n, 2);
	assert_null(room(&h, 0)->name);
	assert_int_equal(room(&h, 0)->seats, 6);
	done(&h, &e);
}

/* given: which keys of the main table a line set, and where the last
 * one is. */
static void
test_given(void **state)
{
	struct house h;
	struct conf_errors e;
	char *given[3] = { NULL, NULL, NULL };

	(void)state;
	assert_int_equal(parse(&h, &e, given, "room a\nopen yes\nowner x\nfloors 99\n"
	    "open no\n"), 1);
	assert_null(given[0]);			/* floors: a bad value */
	assert_null(given[1]);			/* owner: the room's */
	assert_string_equal(given[2], "h.conf:5");	/* open, the last of two */
	done(&h, &e);
	conf_given_free(given, 3);
	assert_null(given[2]);
}

/* Each element of a list knows its line; a default's knows none, and a
 * copy keeps them. */
static void
test_list_where(void **state)
{
	struct house h;
	struct room copy;
	struct conf_errors e;
	const struct room *r;

	(void)state;
	assert_int_equal(parse(&h, &e, NULL, "room a\ntags x\n\ntags y\nroom b\n"), 0);
	r = room(&h, 0);
	assert_int_equal(r->tags.n, 2);
	assert_string_equal(r->tags.where[0], "h.conf:2");
	assert_string_equal(r->tags.where[1], "h.conf:4");
	r = room(&h, 1);
	assert_int_equal(r->tags.n, 1);		/* the default, "plain" */
	assert_null(r->tags.where[0]);
	memset(&copy, 0, sizeof(copy));
	conf_copy(room_keys, &copy, room(&h, 0));
	assert_string_equal(copy.tags.where[1], "h.conf:4");
	conf_free(room_keys, &copy);
	done(&h, &e);
}

/* The same through a file. */
static void
test_file(void **state)
{
	struct house h;
	struct conf_errors e = { 0 };
	char path[] = "test_conf_blocks.XXXXXX";
	static const char text[] = "room a\nseats 2\nbogus 1\n";
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd != -1);
	assert_int_equal(write(fd, text, sizeof(text) - 1), sizeof(text) - 1);
	assert_int_equal(close(fd), 0);
	memset(&h, 0, sizeof(h));
	conf_defaults(house_keys, &h);
	assert_int_equal(conf_parse_syntax_file(&syntax, &h, path, NULL, &e), 1);
	assert_int_equal(room(&h, 0)->seats, 2);
	assert_true(strncmp(room(&h, 0)->where, path, strlen(path)) == 0);
	assert_string_equal(room(&h, 0)->where + strlen(path), ":1");
	assert_string_equal(e.msg[0] + strlen(path), ":3: unknown key 'bogus'");
	assert_int_equal(unlink(path), 0);
	done(&h, &e);
}

/* Without blocks, a block's opening key is unknown: the old entry points
 * know no blocks. */
static void
test_no_blocks(void **state)
{
	struct house h;
	struct conf_errors e = { 0 };
	static const char text[] = "room a\nfloors 2\n";

	(void)state;
	memset(&h, 0, sizeof(h));
	conf_defaults(house_keys, &h);
	assert_int_equal(conf_parse_buf(house_keys, &h, "h.conf", text, sizeof(text) - 1, &e), 1);
	assert_string_equal(e.msg[0], "h.conf:1: unknown key 'room'");
	assert_int_equal(h.floors, 2);
	assert_int_equal(h.rooms.n, 0);
	done(&h, &e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_go_to_their_block),
		cmocka_unit_test(test_block_errors),
		cmocka_unit_test(test_given),
		cmocka_unit_test(test_list_where),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_no_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
