/* A house in a configuration file, for the tests of the parser: main
 * keys, two kinds of blocks (rooms, gardens), and a hotel's keys. */
#ifndef TESTS_UNIT_HOUSE_CONF_H
#define TESTS_UNIT_HOUSE_CONF_H

#include <stddef.h>
#include <string.h>

#include "conf.h"

/* A room: "room NAME", then its colour, size, lock and tags. */
struct room {
	char             *name;
	char             *where;
	char             *colour;
	unsigned          seats;
	bool              locked;
	struct conf_list  tags;
	char             *owner;		/* also a key of the main table */
};

struct house {
	unsigned           floors;
	char              *owner;
	bool               open;
	struct conf_blocks rooms;
	struct conf_blocks gardens;
};

#define R(f)	offsetof(struct room, f)
#define H(f)	offsetof(struct house, f)

static inline const char *
check_room(const char *v)
{
	return strchr(v, ' ') != NULL ? "expected one word" : NULL;
}

static const struct conf_key room_keys[] = {
	{ "room", CONF_STRING, R(name), NULL, 0, 0, false, "opens a room", check_room },
	{ "colour", CONF_STRING, R(colour), "white", 0, 0, true, "its colour", NULL },
	{ "seats", CONF_UINT, R(seats), "4", 1, 20, true, "its seats", NULL },
	{ "locked", CONF_BOOL, R(locked), "false", 0, 0, true, "locked or not", NULL },
	{ "tags", CONF_LIST, R(tags), "plain", 0, 0, true, "its tags", NULL },
	{ "owner", CONF_STRING, R(owner), NULL, 0, 0, true, "its owner", NULL },
	{ NULL, 0, 0, NULL, 0, 0, false, NULL, NULL },
};

/* A second kind of block, with keys of its own. */
struct garden {
	char *name;
	char *where;
	bool  fenced;
};

static const struct conf_key garden_keys[] = {
	{ "garden", CONF_STRING, offsetof(struct garden, name), NULL, 0, 0, false,
	  "opens a garden", NULL },
	{ "fenced", CONF_BOOL, offsetof(struct garden, fenced), "no", 0, 0, true,
	  "fenced or not", NULL },
	{ NULL, 0, 0, NULL, 0, 0, false, NULL, NULL },
};

static const struct conf_key house_keys[] = {
	{ "floors", CONF_UINT, H(floors), "1", 1, 10, true, "its floors", NULL },
	{ "owner", CONF_STRING, H(owner), "nobody", 0, 0, true, "its owner", NULL },
	{ "open", CONF_BOOL, H(open), "no", 0, 0, true, "open or not", NULL },
	{ NULL, 0, 0, NULL, 0, 0, false, NULL, NULL },
};

static const struct conf_block house_blocks[] = {
	{ room_keys, sizeof(struct room), H(rooms), R(where) },
	{ garden_keys, sizeof(struct garden), H(gardens), offsetof(struct garden, where) },
	{ NULL, 0, 0, 0 },
};

/* A hotel's keys that a house file may hold. */
static const struct conf_foreign hotel_keys[] = {
	{ "storeys", "floors", NULL, NULL },		/* a name of the same key */
	{ "colour_scheme", "colour", NULL, NULL },	/* ... of a room's */
	{ "breakfast", NULL, "yes", "a house always serves breakfast" },
	{ "towels", NULL, "*", NULL },
	{ "bellboy", NULL, NULL, "a house has none: remove the line" },
	{ "lobby_*", NULL, NULL, "a house has no lobby" },
	{ NULL, NULL, NULL, NULL },
};

static const struct conf_syntax syntax = {
	.keys = house_keys, .blocks = house_blocks, .foreign = hotel_keys,
	.foreign_of = "the hotel",
};

static inline int
parse(struct house *h, struct conf_errors *e, char **given, const char *text)
{
	int n;

	memset(h, 0, sizeof(*h));
	memset(e, 0, sizeof(*e));
	conf_defaults(house_keys, h);
	n = conf_parse_syntax_buf(&syntax, h, "h.conf", text, strlen(text), given, e);
	assert_int_equal((size_t)n, e->n);
	return n;
}

static inline void
done(struct house *h, struct conf_errors *e)
{
	conf_free(house_keys, h);
	conf_blocks_free(house_blocks, h);
	assert_int_equal(h->rooms.n, 0);
	assert_null(h->rooms.v);
	conf_blocks_free(house_blocks, h);	/* twice is harmless */
	conf_errors_free(e);
}

static inline struct room *
room(const struct house *h, size_t i)
{
	assert_true(i < h->rooms.n);
	return h->rooms.v[i];
}

#endif
