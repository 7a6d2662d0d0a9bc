/* libFuzzer target: the configuration parser on arbitrary bytes.
 *
 *   clang -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
 *       -Icommon tests/fuzz/fuzz_conf.c common/conf.c common/log.c \
 *       common/xmalloc.c -o fuzz_conf
 *   ./fuzz_conf tests/fuzz/corpus/conf
 *
 * Besides memory errors, it checks that every value stays within its
 * bounds (in the main structure and in every block), that the returned
 * count matches the messages, that every message is "NAME:LINE: ...",
 * that every block knows the line that opened it, that a key flagged as
 * given is in the input, and that copy, differs and free agree. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A block: "blk NAME", then its own keys. */
struct fblock {
	char             *name;
	char             *where;
	unsigned          weight;
	bool              on;
	struct conf_list  tags;
	char             *label;
};

struct fconf {
	bool              flag;
	unsigned          count;
	unsigned          port;
	uint64_t          size;
	uint64_t          delay;
	char             *name;
	struct conf_list  list;
	unsigned          any;
	uint64_t          anysize;
	uint64_t          anydelay;
	struct conf_blocks blocks;
};

#define OFF(f)	offsetof(struct fconf, f)

static const struct conf_key tab[] = {
	{ "flag", CONF_BOOL, OFF(flag), "no", 0, 0, true, "a switch", NULL },
	{ "count", CONF_UINT, OFF(count), "5", 1, 100, true, "a count", NULL },
	{ "port", CONF_PORT, OFF(port), "1883", 0, 0, false, "a port", NULL },
	{ "size", CONF_SIZE, OFF(size), "64k", 16, 1048576, true, "a size", NULL },
	{ "delay", CONF_MSEC, OFF(delay), "0.25", 0.01, 3600, true, "a delay", NULL },
	{ "name", CONF_STRING, OFF(name), "default", 0, 0, false, "a name", NULL },
	{ "list", CONF_LIST, OFF(list), "first", 0, 0, false, "a list", NULL },
	{ "any", CONF_UINT, OFF(any), NULL, 0, 0, false, "any number", NULL },
	{ "anysize", CONF_SIZE, OFF(anysize), NULL, 0, 0, false, "any size", NULL },
	{ "anydelay", CONF_MSEC, OFF(anydelay), NULL, 0, 0, false, "any delay", NULL },
	{ NULL, 0, 0, NULL, 0, 0, false, NULL, NULL },
};

#define BOFF(f)	offsetof(struct fblock, f)

static const struct conf_key block_tab[] = {
	{ "blk", CONF_STRING, BOFF(name), NULL, 0, 0, false, "opens a block", NULL },
	{ "weight", CONF_UINT, BOFF(weight), "3", 1, 9, true, "a weight", NULL },
	{ "on", CONF_BOOL, BOFF(on), "yes", 0, 0, true, "a switch", NULL },
	{ "tags", CONF_LIST, BOFF(tags), "none", 0, 0, true, "tags", NULL },
	{ "name", CONF_STRING, BOFF(label), NULL, 0, 0, true, "also a main key", NULL },
	{ NULL, 0, 0, NULL, 0, 0, false, NULL, NULL },
};

static const struct conf_block blocks[] = {
	{ block_tab, sizeof(struct fblock), OFF(blocks), BOFF(where) },
	{ NULL, 0, 0, 0 },
};

/* Another program's keys: aliases of a main and a block key, values
 * taken, and one refused. */
static const struct conf_foreign foreign[] = {
	{ "howmany", "count", NULL, NULL },
	{ "heft", "weight", NULL, NULL },
	{ "enabled", NULL, "true", "always on" },
	{ "whatever", NULL, "*", NULL },
	{ "gone", NULL, NULL, "not here" },
	{ NULL, NULL, NULL, NULL },
};

static const struct conf_syntax syntax = {
	.keys = tab, .blocks = blocks, .foreign = foreign, .foreign_of = "other",
};

static void
check_bounds(const struct fconf *c)
{
	if (c->count < 1 || c->count > 100 || c->port > 65535 ||
	    c->size < 16 || c->size > 1048576 ||
	    c->delay < 10 || c->delay > 3600000 || c->name == NULL)
		abort();
	for (size_t i = 0; i < c->list.n; i++)
		if (c->list.v[i] == NULL || c->list.v[i][0] == '\0' ||
		    (c->list.where[i] != NULL && strncmp(c->list.where[i], "fuzz:", 5) != 0))
			abort();
	for (size_t i = 0; i < c->blocks.n; i++) {
		const struct fblock *b = c->blocks.v[i];

		if (b->weight < 1 || b->weight > 9 || b->tags.n == 0 ||
		    strncmp(b->where, "fuzz:", 5) != 0)
			abort();
	}
}

static bool
in_input(const char *name, const uint8_t *data, size_t size)
{
	return memmem(data, size, name, strlen(name)) != NULL;
}

/* A key flagged as given must be in the input, itself or an alias, and
 * say where. */
static void
check_given(char *const *given, const uint8_t *data, size_t size)
{
	for (size_t i = 0; tab[i].name != NULL; i++) {
		bool named = in_input(tab[i].name, data, size);

		for (const struct conf_foreign *f = foreign; f->name != NULL && !named; f++)
			named = f->alias != NULL && strcmp(f->alias, tab[i].name) == 0 &&
			    in_input(f->name, data, size);
		if (given[i] != NULL && (!named || strncmp(given[i], "fuzz:", 5) != 0))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors errs = { 0 };
	char *given[sizeof(tab) / sizeof(tab[0])] = { NULL };
	struct fconf c, d;
	const char *nl;
	int n;

	memset(&c, 0, sizeof(c));
	conf_defaults(tab, &c);
	n = conf_parse_syntax_buf(&syntax, &c, "fuzz", (const char *)data, size, given, &errs);
	if (n < 0 || (size_t)n != errs.n + errs.more ||
	    (errs.more > 0 && errs.n != CONF_ERRORS_MAX))
		abort();
	for (size_t i = 0; i < errs.n; i++)
		if (strncmp(errs.msg[i], "fuzz:", 5) != 0)
			abort();
	check_bounds(&c);
	check_given(given, data, size);
	conf_given_free(given, sizeof(given) / sizeof(given[0]));

	/* The first line, split at its first blank, through conf_set. */
	nl = memchr(data, '\n', size);
	if (nl != NULL && memchr(data, '\0', (size_t)(nl - (const char *)data)) == NULL) {
		char *line = strndup((const char *)data, (size_t)(nl - (const char *)data));
		char *sp;

		if (line == NULL)
			abort();
		if ((sp = strchr(line, ' ')) != NULL) {
			size_t kept = errs.n;

			*sp++ = '\0';
			/* Its error is kept, or counted past CONF_ERRORS_MAX. */
			if (conf_set(tab, &c, line, sp, "set", &errs) == -1 &&
			    (kept == CONF_ERRORS_MAX ? errs.more == 0 :
			    strncmp(errs.msg[errs.n - 1], "set: ", 5) != 0))
				abort();
		}
		free(line);
		check_bounds(&c);
	}

	memset(&d, 0, sizeof(d));
	conf_copy(tab, &d, &c);
	for (const struct conf_key *k = tab; k->name != NULL; k++)
		if (conf_differs(k, &c, &d))
			abort();
	conf_free(tab, &c);
	conf_blocks_free(blocks, &c);
	conf_free(tab, &d);
	conf_errors_free(&errs);
	return 0;
}
