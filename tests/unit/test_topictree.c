/* The topic tree: the set of names, exact lookups, matching a filter
 * (against topic_matches() as the oracle), enumeration and its cost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/topictree.h"
#include "route_test.h"
#include "topic.h"

/* Names with empty levels, '$' levels and common prefixes. */
static const char *const names[] = {
	"a", "a/", "a/b", "a//b", "a/$x", "/", "/a", "//", "/$x", "b",
	"$SYS", "$SYS/x", "$x/a", "sport/tennis/player1",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static void
collect(const char *name, void *value, void *arg)
{
	(void)value;
	strlist_add(arg, name);
}

static struct topictree *
tree_of_names(void)
{
	struct topictree *t = topictree_new();

	for (size_t i = 0; i < NNAMES; i++) {
		bool added = false;

		assert_int_equal(topictree_add(t, names[i], (void *)names[i], &added), TOPIC_OK);
		assert_true(added);
	}
	return t;
}

/* The names matching filter, sorted and joined with '|'. */
static char *
matches(struct topictree *t, const char *filter)
{
	struct strlist l = { NULL, 0, 0 };
	char *s;

	assert_int_equal(topictree_match(t, filter, collect, &l), TOPIC_OK);
	s = strlist_join(&l);
	strlist_clear(&l);
	return s;
}

/* What topic_matches() says of filter over the names. */
static char *
oracle(const char *filter)
{
	struct strlist l = { NULL, 0, 0 };
	char *s;

	for (size_t i = 0; i < NNAMES; i++)
		if (topic_matches(filter, names[i]))
			strlist_add(&l, names[i]);
	s = strlist_join(&l);
	strlist_clear(&l);
	return s;
}

static void
test_add_find_remove(void **state)
{
	struct topictree *t = tree_of_names();
	struct topictree_stats st;
	void *v = NULL;
	bool added = true;

	(void)state;
	assert_int_equal(topictree_count(t), NNAMES);
	for (size_t i = 0; i < NNAMES; i++) {
		assert_true(topictree_find(t, names[i], &v));
		assert_ptr_equal(v, names[i]);
	}
	/* Prefixes of names are not names. */
	assert_false(topictree_find(t, "sport", NULL));
	assert_false(topictree_find(t, "sport/tennis", NULL));
	assert_false(topictree_find(t, "a/b/c", NULL));
	assert_false(topictree_find(t, "", NULL));
	/* A name already there keeps its value. */
	assert_int_equal(topictree_add(t, "a/b", &v, &added), TOPIC_OK);
	assert_false(added);
	assert_true(topictree_find(t, "a/b", &v));
	assert_ptr_equal(v, names[2]);
	assert_int_equal(topictree_count(t), NNAMES);

	assert_true(topictree_remove(t, "a/b", &v));
	assert_ptr_equal(v, names[2]);
	assert_false(topictree_remove(t, "a/b", NULL));
	assert_false(topictree_find(t, "a/b", NULL));
	assert_true(topictree_find(t, "a", NULL));
	assert_true(topictree_find(t, "a//b", NULL));
	assert_false(topictree_remove(t, "sport/tennis", NULL));
	assert_true(topictree_find(t, "sport/tennis/player1", NULL));
	assert_int_equal(topictree_count(t), NNAMES - 1);

	/* Removing every name leaves no node behind. */
	for (size_t i = 0; i < NNAMES; i++)
		(void)topictree_remove(t, names[i], NULL);
	topictree_stats(t, &st);
	assert_int_equal(st.names, 0);
	assert_int_equal(st.nodes, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(topictree_count(t), 0);
	topictree_free(t, NULL);
}

static void
test_invalid_names(void **state)
{
	struct topictree *t = topictree_new();
	struct strlist l = { NULL, 0, 0 };

	(void)state;
	assert_int_equal(topictree_add(t, "", NULL, NULL), TOPIC_EMPTY);
	assert_int_equal(topictree_add(t, "a/+", NULL, NULL), TOPIC_WILDCARD);
	assert_int_equal(topictree_add(t, "a/#", NULL, NULL), TOPIC_WILDCARD);
	assert_int_equal(topictree_add(t, "a\xc3", NULL, NULL), TOPIC_BAD_UTF8);
	assert_int_equal(topictree_count(t), 0);
	assert_int_equal(topictree_add(t, "a", NULL, NULL), TOPIC_OK);
	assert_int_equal(topictree_match(t, "a#", collect, &l), TOPIC_BAD_WILDCARD);
	assert_int_equal(topictree_match(t, "#/a", collect, &l), TOPIC_BAD_WILDCARD);
	assert_int_equal(topictree_match(t, "", collect, &l), TOPIC_EMPTY);
	assert_int_equal(l.n, 0);
	topictree_free(t, NULL);
}

static const struct {
	const char *filter;
	const char *expect;	/* '|'-separated */
} rules[] = {
	{ "a", "a" },
	{ "a/#", "a|a/|a/b|a//b|a/$x" },		/* "a/#" matches "a" */
	{ "#", "a|a/|a/b|a//b|a/$x|/|/a|//|/$x|b|sport/tennis/player1" },
	{ "+", "a|b" },					/* not "$SYS" */
	{ "+/#", "a|a/|a/b|a//b|a/$x|/|/a|//|/$x|b|sport/tennis/player1" },
	{ "+/+", "a/|a/b|a/$x|/|/a|/$x" },		/* not "$x/a", "$SYS/x" */
	{ "+/x", "" },
	{ "/+", "/|/a|/$x" },				/* '+' matches an empty level */
	{ "/#", "/|/a|//|/$x" },
	{ "a/+", "a/|a/b|a/$x" },
	{ "a/+/b", "a//b" },
	{ "a//b", "a//b" },
	{ "//", "//" },
	{ "+/+/+", "a//b|//|sport/tennis/player1" },
	{ "+/+/#", "a/|a/b|a//b|a/$x|/|/a|//|/$x|sport/tennis/player1" },
	{ "a/b/#", "a/b" },
	{ "$SYS/#", "$SYS|$SYS/x" },
	{ "$SYS/+", "$SYS/x" },
	{ "$SYS", "$SYS" },
	{ "$x/+", "$x/a" },
	{ "sport/+/player1", "sport/tennis/player1" },
	{ "sport/tennis/+", "sport/tennis/player1" },
	{ "sport/#", "sport/tennis/player1" },
	{ "sport", "" },
	{ "sport/tennis", "" },
	{ "a/b/c", "" },
	{ "nosuch/#", "" },
};

static void
test_match_rules(void **state)
{
	struct topictree *t = tree_of_names();

	(void)state;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		char *got = matches(t, rules[i].filter), *want = sorted_join(rules[i].expect);
		char *o = oracle(rules[i].filter);

		/* The table says what topic_matches() says, and so does the tree. */
		assert_string_equal(o, want);
		assert_string_equal(got, want);
		free(got);
		free(want);
		free(o);
	}
	topictree_free(t, NULL);
}

struct valcheck {
	size_t calls;
	bool ok;
};

static void
check_value(const char *name, void *value, void *arg)
{
	struct valcheck *vc = arg;

	vc->calls++;
	if (value == NULL || strcmp(value, name) != 0)
		vc->ok = false;
}

static void
test_values_and_foreach(void **state)
{
	struct topictree *t = tree_of_names();
	struct valcheck vc = { 0, true };
	struct strlist l = { NULL, 0, 0 };

	(void)state;
	assert_int_equal(topictree_match(t, "#", check_value, &vc), TOPIC_OK);
	assert_true(vc.ok);
	vc.calls = 0;
	topictree_foreach(t, check_value, &vc);
	assert_true(vc.ok);
	assert_int_equal(vc.calls, NNAMES);
	/* A name comes before the names below it; siblings in byte order. */
	topictree_foreach(t, collect, &l);
	assert_int_equal(l.n, NNAMES);
	assert_string_equal(l.v[0], "/");	/* the levels "" and "" */
	assert_string_equal(l.v[1], "//");
	assert_string_equal(l.v[2], "/$x");
	assert_string_equal(l.v[3], "/a");
	assert_string_equal(l.v[4], "$SYS");
	assert_string_equal(l.v[5], "$SYS/x");
	strlist_clear(&l);
	topictree_free(t, NULL);
}

static void
test_foreach_order(void **state)
{
	static const char *const in[] = { "b", "a/c", "a", "a/b/x", "", "a-", "/x" };
	struct topictree *t = topictree_new();
	struct strlist l = { NULL, 0, 0 };
	char *got;

	(void)state;
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		(void)topictree_add(t, in[i], NULL, NULL);	/* "" is refused */
	topictree_foreach(t, collect, &l);
	assert_int_equal(l.n, 6);
	assert_string_equal(l.v[0], "/x");
	assert_string_equal(l.v[1], "a");
	assert_string_equal(l.v[2], "a/b/x");
	assert_string_equal(l.v[3], "a/c");
	assert_string_equal(l.v[4], "a-");
	assert_string_equal(l.v[5], "b");
	got = strlist_join(&l);
	assert_string_equal(got, "/x|a|a-|a/b/x|a/c|b");
	free(got);
	strlist_clear(&l);
	topictree_free(t, NULL);
}

static size_t freed;

static void
count_free(void *v)
{
	freed++;
	free(v);
}

static void
test_free_values(void **state)
{
	struct topictree *t = topictree_new();

	(void)state;
	freed = 0;
	assert_int_equal(topictree_add(t, "a/b", xstrdup("1"), NULL), TOPIC_OK);
	assert_int_equal(topictree_add(t, "a", xstrdup("2"), NULL), TOPIC_OK);
	assert_int_equal(topictree_add(t, "c//d", xstrdup("3"), NULL), TOPIC_OK);
	topictree_free(t, count_free);
	assert_int_equal(freed, 3);
	topictree_free(NULL, NULL);
}

/*
 * Property: a few thousand random names over a small alphabet of levels
 * ('', '$x', 'a', 'b'), a few thousand random filters (also '+' and '#');
 * for every filter, the tree finds exactly the names topic_matches() says.
 * Some names are removed half-way, to check the pruned tree as well.
 */
#define PROP_NAMES	5000
#define PROP_FILTERS	2000
#define TOPIC_BUF	64

struct propmark {
	struct strlist	*set;	/* the names in the tree */
	unsigned char	*seen;	/* per name, how often it was reported */
	size_t		 calls;
};

static void
mark(const char *name, void *value, void *arg)
{
	struct propmark *pm = arg;
	size_t i = (size_t)(uintptr_t)value;

	pm->calls++;
	assert_true(i < pm->set->n);
	assert_string_equal(pm->set->v[i], name);
	pm->seen[i]++;
}

static void
check_filter(struct topictree *t, const char *filter, struct propmark *pm,
    const bool *present)
{
	memset(pm->seen, 0, pm->set->n);
	assert_int_equal(topictree_match(t, filter, mark, pm), TOPIC_OK);
	for (size_t i = 0; i < pm->set->n; i++) {
		bool want = present[i] && topic_matches(filter, pm->set->v[i]);

		if (pm->seen[i] != (want ? 1 : 0))
			fail_msg("filter \"%s\", name \"%s\": reported %u times, expected %d",
			    filter, pm->set->v[i], pm->seen[i], want);
	}
}

static void
test_property_random(void **state)
{
	struct topictree *t = topictree_new();
	struct strlist set = { NULL, 0, 0 }, filters = { NULL, 0, 0 };
	char buf[TOPIC_BUF];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	bool *present;
	struct propmark pm = { &set, NULL, 0 };

	(void)state;
	for (int i = 0; i < PROP_NAMES; i++) {
		bool added;

		random_topic(&seed, buf, sizeof(buf), 0);
		assert_int_equal(topictree_add(t, buf, (void *)(uintptr_t)set.n, &added),
		    TOPIC_OK);
		if (added)
			strlist_add(&set, buf);
	}
	assert_int_equal(topictree_count(t), set.n);
	for (int i = 0; i < PROP_FILTERS; i++) {
		random_topic(&seed, buf, sizeof(buf), 1);
		strlist_add(&filters, buf);
	}
	present = xmalloc(set.n * sizeof(*present));
	pm.seen = xmalloc(set.n);
	for (size_t i = 0; i < set.n; i++)
		present[i] = true;
	for (size_t f = 0; f < filters.n; f++)
		check_filter(t, filters.v[f], &pm, present);
	/* Then again without every third name. */
	for (size_t i = 0; i < set.n; i += 3) {
		assert_true(topictree_remove(t, set.v[i], NULL));
		present[i] = false;
	}
	for (size_t f = 0; f < filters.n; f++)
		check_filter(t, filters.v[f], &pm, present);
	assert_int_equal(topictree_count(t), set.n - (set.n + 2) / 3);
	/* Not vacuous: thousands of names, many of them matched. */
	print_message("%zu names, %zu filters, %zu matches\n", set.n, filters.n, pm.calls);
	assert_true(set.n > 1000);
	assert_true(pm.calls > 100000);
	free(present);
	free(pm.seen);
	strlist_clear(&set);
	strlist_clear(&filters);
	topictree_free(t, NULL);
}

/*
 * Cost: 100,000 names "siteS/devD/temp" (100 sites of 1,000 devices).  A
 * match visits at most (levels + 1) x (matches + 1) nodes, levels being
 * those of the filter or of the names (3), whichever is more: not the
 * size of the tree.  A '+' that ends in no match costs the children of
 * its node.
 */
#define COST_SITES	100
#define COST_DEVS	1000

struct counter {
	size_t n;
};

static void
count_cb(const char *name, void *value, void *arg)
{
	(void)name;
	(void)value;
	((struct counter *)arg)->n++;
}

/* Matches filter; checks the number of matches and returns the visits. */
static uint64_t
match_cost(struct topictree *t, const char *filter, size_t want)
{
	struct topictree_stats before, after;
	struct counter c = { 0 };

	topictree_stats(t, &before);
	assert_int_equal(topictree_match(t, filter, count_cb, &c), TOPIC_OK);
	topictree_stats(t, &after);
	assert_int_equal(c.n, want);
	return after.visits - before.visits;
}

static void
test_cost_100k(void **state)
{
	static const struct {
		const char *filter;
		size_t matches;
	} cases[] = {
		{ "site7/dev42/temp", 1 },
		{ "site7/+/temp", COST_DEVS },
		{ "site7/dev42/+", 1 },
		{ "site7/#", COST_DEVS },
		{ "site7/dev42/#", 1 },
		{ "+/dev42/temp", COST_SITES },
		{ "nosuch/#", 0 },
		{ "site7/nosuch/+", 0 },
		{ "site7/dev42/temp/#", 1 },
		{ "#", COST_SITES * COST_DEVS },
	};
	struct topictree *t = topictree_new();
	struct topictree_stats st;
	char buf[TOPIC_BUF];
	uint64_t v;

	(void)state;
	for (int s = 0; s < COST_SITES; s++)
		for (int d = 0; d < COST_DEVS; d++) {
			snprintf(buf, sizeof(buf), "site%d/dev%d/temp", s, d);
			assert_int_equal(topictree_add(t, buf, NULL, NULL), TOPIC_OK);
		}
	topictree_stats(t, &st);
	assert_int_equal(st.names, COST_SITES * COST_DEVS);
	/* Prefixes are shared: a site's node once, not once per name. */
	assert_int_equal(st.nodes, COST_SITES + 2 * COST_SITES * COST_DEVS);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t levels = topic_levels(cases[i].filter, strlen(cases[i].filter));

		if (levels < 3)
			levels = 3;

		v = match_cost(t, cases[i].filter, cases[i].matches);
		if (v > (levels + 1) * (cases[i].matches + 1))
			fail_msg("%s: %llu visits for %zu matches", cases[i].filter,
			    (unsigned long long)v, cases[i].matches);
	}
	/* '+' over the sites, none of which has the next level. */
	v = match_cost(t, "+/nosuch", 0);
	assert_true(v <= 2 * (COST_SITES + 1));
	/* Exact lookups cost the levels. */
	topictree_stats(t, &st);
	assert_true(topictree_find(t, "site99/dev999/temp", NULL));
	v = st.visits;
	topictree_stats(t, &st);
	assert_true(st.visits - v <= 3);
	topictree_free(t, NULL);
}

/* Names of 65,536 and 32,768 empty levels: no recursion, no overflow. */
static void
test_deep_name(void **state)
{
	size_t len = TOPIC_MAX_LEN, nplus = (TOPIC_MAX_LEN + 1) / 2;
	char *name = xmalloc(len + 1), *half = xmalloc(nplus), *filter = xmalloc(2 * nplus);
	struct topictree *t = topictree_new();
	struct counter c = { 0 };

	(void)state;
	memset(name, '/', len);
	name[len] = '\0';
	memset(half, '/', nplus - 1);
	half[nplus - 1] = '\0';
	for (size_t i = 0; i < 2 * nplus - 1; i++)
		filter[i] = i % 2 == 0 ? '+' : '/';
	filter[2 * nplus - 1] = '\0';
	assert_int_equal(topictree_add(t, name, NULL, NULL), TOPIC_OK);
	assert_int_equal(topictree_add(t, half, NULL, NULL), TOPIC_OK);
	assert_int_equal(topictree_add(t, "/", NULL, NULL), TOPIC_OK);
	assert_true(topictree_find(t, name, NULL));
	assert_int_equal(topictree_match(t, "#", count_cb, &c), TOPIC_OK);
	assert_int_equal(c.n, 3);
	c.n = 0;
	assert_int_equal(topictree_match(t, name, count_cb, &c), TOPIC_OK);
	assert_int_equal(c.n, 1);
	/* 32,768 '+' levels: the name with that many levels. */
	c.n = 0;
	assert_int_equal(topictree_match(t, filter, count_cb, &c), TOPIC_OK);
	assert_int_equal(c.n, 1);
	assert_true(topictree_remove(t, name, NULL));
	assert_int_equal(topictree_count(t), 2);
	topictree_free(t, NULL);
	free(name);
	free(half);
	free(filter);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_find_remove),
		cmocka_unit_test(test_invalid_names),
		cmocka_unit_test(test_match_rules),
		cmocka_unit_test(test_values_and_foreach),
		cmocka_unit_test(test_foreach_order),
		cmocka_unit_test(test_free_values),
		cmocka_unit_test(test_property_random),
		cmocka_unit_test(test_cost_100k),
		cmocka_unit_test(test_deep_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
