/* The subscription tree: entries (filter, owner, qos), matching a topic
 * name (against topic_matches() as the oracle) and its cost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/subtree.h"
#include "route_test.h"
#include "topic.h"

#define NOWNERS		64
static int owners[NOWNERS];		/* their addresses are the owners */
#define OWNER(i)	((void *)&owners[(i)])
#define OWNER_INDEX(p)	((int *)(p) - owners)

/* Records every call as "OWNER:QOS:FILTER". */
static void
collect(void *owner, uint8_t qos, const char *filter, void *arg)
{
	char buf[128];

	assert_true(OWNER_INDEX(owner) >= 0 && OWNER_INDEX(owner) < NOWNERS);
	snprintf(buf, sizeof(buf), "%td:%u:%s", OWNER_INDEX(owner), qos, filter);
	strlist_add(arg, buf);
}

/* What a match of name reports, sorted and joined with '|'. */
static char *
matches(struct subtree *t, const char *name)
{
	struct strlist l = { NULL, 0, 0 };
	char *s;

	assert_int_equal(subtree_match(t, name, collect, &l), TOPIC_OK);
	s = strlist_join(&l);
	strlist_clear(&l);
	return s;
}

static void
test_add_update_remove(void **state)
{
	struct subtree *t = subtree_new();
	struct subtree_stats st;
	bool added = false;
	uint8_t qos = 9;
	char *s;

	(void)state;
	assert_int_equal(subtree_add(t, "a/+/c", OWNER(1), 1, &added), TOPIC_OK);
	assert_true(added);
	/* Same filter and owner: the qos is replaced, no new entry. */
	assert_int_equal(subtree_add(t, "a/+/c", OWNER(1), 2, &added), TOPIC_OK);
	assert_false(added);
	assert_true(subtree_find(t, "a/+/c", OWNER(1), &qos));
	assert_int_equal(qos, 2);
	assert_int_equal(subtree_add(t, "a/+/c", OWNER(2), 0, &added), TOPIC_OK);
	assert_true(added);
	assert_int_equal(subtree_add(t, "a/#", OWNER(1), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_count(t), 3);
	subtree_stats(t, &st);
	assert_int_equal(st.filters, 2);
	assert_int_equal(st.nodes, 4);		/* a, +, c, # */
	s = matches(t, "a/b/c");
	assert_string_equal(s, "1:0:a/#|1:2:a/+/c|2:0:a/+/c");
	free(s);

	/* Prefixes of a filter hold no entry. */
	assert_false(subtree_find(t, "a/+", OWNER(1), NULL));
	assert_false(subtree_find(t, "a", OWNER(1), NULL));
	assert_false(subtree_remove(t, "a/+", OWNER(1)));
	assert_false(subtree_remove(t, "a/+/c", OWNER(3)));
	assert_true(subtree_remove(t, "a/+/c", OWNER(1)));
	assert_false(subtree_remove(t, "a/+/c", OWNER(1)));
	assert_false(subtree_find(t, "a/+/c", OWNER(1), NULL));
	assert_true(subtree_find(t, "a/+/c", OWNER(2), &qos));
	assert_int_equal(qos, 0);
	assert_int_equal(subtree_count(t), 2);
	s = matches(t, "a/b/c");
	assert_string_equal(s, "1:0:a/#|2:0:a/+/c");
	free(s);

	/* Removing every entry leaves no node (and no memory) behind. */
	assert_true(subtree_remove(t, "a/+/c", OWNER(2)));
	assert_true(subtree_remove(t, "a/#", OWNER(1)));
	subtree_stats(t, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.filters, 0);
	assert_int_equal(st.nodes, 0);
	assert_int_equal(st.bytes, 0);
	subtree_free(t);
	subtree_free(NULL);
}

static void
test_remove_owner(void **state)
{
	static const char *const mine[] = { "a", "a/#", "+/b", "nosuch", "#" };
	struct subtree *t = subtree_new();
	char *s;

	(void)state;
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(subtree_add(t, mine[i], OWNER(5), 1, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "a/#", OWNER(6), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "#", OWNER(6), 2, NULL), TOPIC_OK);
	/* "nosuch" and "#" are not owner 5's: they do not count. */
	assert_int_equal(subtree_remove_owner(t, OWNER(5), mine, 5), 3);
	assert_int_equal(subtree_count(t), 2);
	s = matches(t, "a/b");
	assert_string_equal(s, "6:0:a/#|6:2:#");
	free(s);
	assert_int_equal(subtree_remove_owner(t, OWNER(5), mine, 5), 0);
	subtree_free(t);
}

static void
test_invalid(void **state)
{
	static const struct {
		const char *s;
		enum topic_err e;
	} bad_filters[] = {
		{ "", TOPIC_EMPTY }, { "a#", TOPIC_BAD_WILDCARD },
		{ "#/a", TOPIC_BAD_WILDCARD }, { "a/#/b", TOPIC_BAD_WILDCARD },
		{ "a+", TOPIC_BAD_WILDCARD }, { "+a/b", TOPIC_BAD_WILDCARD },
		{ "a\xc3", TOPIC_BAD_UTF8 },
	}, bad_names[] = {
		{ "", TOPIC_EMPTY }, { "a/+", TOPIC_WILDCARD }, { "#", TOPIC_WILDCARD },
		{ "\xff", TOPIC_BAD_UTF8 },
	};
	struct subtree *t = subtree_new();
	struct strlist l = { NULL, 0, 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad_filters) / sizeof(bad_filters[0]); i++)
		assert_int_equal(subtree_add(t, bad_filters[i].s, OWNER(0), 0, NULL),
		    bad_filters[i].e);
	assert_int_equal(subtree_count(t), 0);
	assert_int_equal(subtree_add(t, "#", OWNER(0), 0, NULL), TOPIC_OK);
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		assert_int_equal(subtree_match(t, bad_names[i].s, collect, &l),
		    bad_names[i].e);
	assert_int_equal(l.n, 0);
	/* Removing or finding what cannot be there is just "not there". */
	assert_false(subtree_remove(t, "", OWNER(0)));
	assert_false(subtree_remove(t, "a/#/b", OWNER(0)));
	assert_false(subtree_find(t, "a#", OWNER(0), NULL));
	subtree_free(t);
}

/* One owner per filter (its index), qos 1. */
static const char *const filters[] = {
	"#", "+", "+/+", "+/#", "/+", "/#", "a", "a/#", "a/+", "a/+/b", "a//b",
	"+/+/+", "$SYS/#", "$SYS/+", "$x/+", "+/x", "a/b/#", "//", "a/",
};
#define NFILTERS (sizeof(filters) / sizeof(filters[0]))

static const struct {
	const char *name;
	const char *expect;	/* the matching filters, '|'-separated */
} rules[] = {
	{ "a", "#|+|+/#|a|a/#" },			/* "a/#" matches "a" */
	{ "a/", "#|+/+|+/#|a/#|a/+|a/" },		/* '+' matches an empty level */
	{ "a/b", "#|+/+|+/#|a/#|a/+|a/b/#" },
	{ "a//b", "#|+/#|a/#|a/+/b|a//b|+/+/+" },
	{ "/", "#|+/+|+/#|/+|/#" },
	{ "//", "#|+/#|/#|+/+/+|//" },
	{ "$SYS", "$SYS/#" },				/* not "#", "+" */
	{ "$SYS/x", "$SYS/#|$SYS/+" },			/* not "+/+", "+/x" */
	{ "$x/a", "$x/+" },
	{ "b/x", "#|+/+|+/#|+/x" },
	{ "a/$x", "#|+/+|+/#|a/#|a/+" },		/* '$' only counts first */
	{ "/$x", "#|+/+|+/#|/+|/#" },
	{ "c/d/e/f", "#|+/#" },
};

/* The filters of a "OWNER:QOS:FILTER" list. */
static char *
filters_of(const char *reported)
{
	struct strlist l = { NULL, 0, 0 };
	char *copy = xstrdup(reported), *p = copy, *tok, *s;

	while (*reported != '\0' && (tok = strsep(&p, "|")) != NULL)
		strlist_add(&l, strchr(strchr(tok, ':') + 1, ':') + 1);
	s = strlist_join(&l);
	strlist_clear(&l);
	free(copy);
	return s;
}

static void
test_match_rules(void **state)
{
	struct subtree *t = subtree_new();

	(void)state;
	for (size_t i = 0; i < NFILTERS; i++)
		assert_int_equal(subtree_add(t, filters[i], OWNER(i), 1, NULL), TOPIC_OK);
	for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
		struct strlist o = { NULL, 0, 0 };
		char *want = sorted_join(rules[r].expect), *got = matches(t, rules[r].name);
		char *gotf = filters_of(got), *oracle;

		for (size_t i = 0; i < NFILTERS; i++)
			if (topic_matches(filters[i], rules[r].name))
				strlist_add(&o, filters[i]);
		oracle = strlist_join(&o);
		/* The table says what topic_matches() says, and so does the tree. */
		assert_string_equal(oracle, want);
		assert_string_equal(gotf, want);
		free(want);
		free(got);
		free(gotf);
		free(oracle);
		strlist_clear(&o);
	}
	subtree_free(t);
}

/* An owner with several matching filters: one call per filter. */
static void
test_owner_several_filters(void **state)
{
	struct subtree *t = subtree_new();
	char *s;

	(void)state;
	assert_int_equal(subtree_add(t, "a/b", OWNER(1), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "a/+", OWNER(1), 1, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "#", OWNER(1), 2, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "a/b/#", OWNER(1), 1, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "a/b", OWNER(2), 1, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "a/c", OWNER(3), 1, NULL), TOPIC_OK);
	s = matches(t, "a/b");
	assert_string_equal(s, "1:0:a/b|1:1:a/+|1:1:a/b/#|1:2:#|2:1:a/b");
	free(s);
	subtree_free(t);
}

/*
 * Property: a few thousand random (filter, owner, qos) entries over a
 * small alphabet of levels ('', '$x', 'a', 'b', '+', '#'), a few thousand
 * random names; for every name the tree reports exactly the entries a
 * naive list with topic_matches() gives.  Then again after removing a
 * third of the entries, then all of them by owner.
 */
#define PROP_ENTRIES	3000
#define PROP_NAMES	3000
#define TOPIC_BUF	64

struct naive {
	char	*filter[PROP_ENTRIES];
	int	 owner[PROP_ENTRIES];
	uint8_t	 qos[PROP_ENTRIES];
	bool	 alive[PROP_ENTRIES];
	size_t	 n;
};

static void
naive_add(struct naive *nv, struct subtree *t, const char *filter, int owner, uint8_t qos)
{
	bool added;
	size_t i;

	assert_int_equal(subtree_add(t, filter, OWNER(owner), qos, &added), TOPIC_OK);
	for (i = 0; i < nv->n; i++)
		if (nv->owner[i] == owner && strcmp(nv->filter[i], filter) == 0)
			break;
	assert_int_equal(added, i == nv->n);
	if (i == nv->n) {
		nv->filter[nv->n] = xstrdup(filter);
		nv->owner[nv->n] = owner;
		nv->alive[nv->n++] = true;
	}
	nv->qos[i] = qos;
}

/* Checks every name; returns the number of entries reported. */
static size_t
check_names(struct subtree *t, const struct naive *nv, const struct strlist *names)
{
	size_t total = 0;

	for (size_t k = 0; k < names->n; k++) {
		struct strlist want = { NULL, 0, 0 }, got = { NULL, 0, 0 };
		char buf[128], *w, *g;

		for (size_t i = 0; i < nv->n; i++) {
			if (!nv->alive[i] || !topic_matches(nv->filter[i], names->v[k]))
				continue;
			snprintf(buf, sizeof(buf), "%d:%u:%s", nv->owner[i], nv->qos[i],
			    nv->filter[i]);
			strlist_add(&want, buf);
		}
		assert_int_equal(subtree_match(t, names->v[k], collect, &got), TOPIC_OK);
		total += got.n;
		w = strlist_join(&want);
		g = strlist_join(&got);
		if (strcmp(w, g) != 0)
			fail_msg("name \"%s\": reported %s, expected %s", names->v[k], g, w);
		free(w);
		free(g);
		strlist_clear(&want);
		strlist_clear(&got);
	}
	return total;
}

/* Removes every entry, owner by owner, with the owner's filters. */
static void
remove_all(struct subtree *t, struct naive *nv)
{
	const char **mine = xreallocarray(NULL, nv->n, sizeof(*mine));

	for (int o = 0; o < NOWNERS; o++) {
		size_t n = 0, alive = 0;

		for (size_t i = 0; i < nv->n; i++)
			if (nv->owner[i] == o) {
				mine[n++] = nv->filter[i];
				alive += nv->alive[i];
				nv->alive[i] = false;
			}
		assert_int_equal(subtree_remove_owner(t, OWNER(o), mine, n), alive);
	}
	free(mine);
}

static void
test_property_random(void **state)
{
	static struct naive nv;
	struct strlist names = { NULL, 0, 0 };
	struct subtree *t = subtree_new();
	struct subtree_stats st;
	char buf[TOPIC_BUF];
	uint64_t seed = 0x243f6a8885a308d3ULL;
	size_t alive, reported;

	(void)state;
	nv.n = 0;
	for (int i = 0; i < PROP_ENTRIES; i++) {
		random_topic(&seed, buf, sizeof(buf), 1);
		naive_add(&nv, t, buf, (int)(rng_next(&seed) % NOWNERS),
		    (uint8_t)(rng_next(&seed) % 3));
	}
	assert_int_equal(subtree_count(t), nv.n);
	for (int i = 0; i < PROP_NAMES; i++) {
		random_topic(&seed, buf, sizeof(buf), 0);
		strlist_add(&names, buf);
	}
	reported = check_names(t, &nv, &names);
	print_message("%zu entries, %zu names, %zu reported\n", nv.n, names.n, reported);
	assert_true(nv.n > 1000 && reported > 10000);	/* not vacuous */

	alive = nv.n;
	for (size_t i = 0; i < nv.n; i += 3) {
		assert_true(subtree_remove(t, nv.filter[i], OWNER(nv.owner[i])));
		nv.alive[i] = false;
		alive--;
	}
	assert_int_equal(subtree_count(t), alive);
	(void)check_names(t, &nv, &names);

	remove_all(t, &nv);
	subtree_stats(t, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.nodes, 0);
	assert_int_equal(st.bytes, 0);
	for (size_t i = 0; i < nv.n; i++)
		free(nv.filter[i]);
	strlist_clear(&names);
	subtree_free(t);
}

/*
 * Cost: 101,202 subscriptions: one per device "siteS/devD/temp" (100 sites
 * of 1,000 devices), and wildcards per site, per device and for all.  A
 * match visits at most (levels + 1) x (matches + 1) nodes: not the number
 * of subscriptions.
 */
#define COST_SITES	100
#define COST_DEVS	1000

static void
count_cb(void *owner, uint8_t qos, const char *filter, void *arg)
{
	(void)owner;
	(void)qos;
	(void)filter;
	(*(size_t *)arg)++;
}

static void
add_cost_entries(struct subtree *t)
{
	char buf[TOPIC_BUF];
	int k = 0;

	for (int s = 0; s < COST_SITES; s++) {
		for (int d = 0; d < COST_DEVS; d++) {
			snprintf(buf, sizeof(buf), "site%d/dev%d/temp", s, d);
			assert_int_equal(subtree_add(t, buf, OWNER(k++ % NOWNERS), 1, NULL),
			    TOPIC_OK);
		}
		snprintf(buf, sizeof(buf), "site%d/+/temp", s);
		assert_int_equal(subtree_add(t, buf, OWNER(s % NOWNERS), 1, NULL), TOPIC_OK);
		snprintf(buf, sizeof(buf), "site%d/#", s);
		assert_int_equal(subtree_add(t, buf, OWNER(s % NOWNERS), 1, NULL), TOPIC_OK);
	}
	for (int d = 0; d < COST_DEVS; d++) {
		snprintf(buf, sizeof(buf), "+/dev%d/temp", d);
		assert_int_equal(subtree_add(t, buf, OWNER(d % NOWNERS), 1, NULL), TOPIC_OK);
	}
	assert_int_equal(subtree_add(t, "#", OWNER(0), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "+/+/temp", OWNER(0), 0, NULL), TOPIC_OK);
}

static void
test_cost_100k(void **state)
{
	static const struct {
		const char *name;
		size_t matches;
	} cases[] = {
		{ "site7/dev42/temp", 6 },	/* itself, site7/+/temp, site7/#, +/dev42/temp, #, +/+/temp */
		{ "site7/dev42/humidity", 2 },	/* site7/#, # */
		{ "site7", 2 },			/* site7/#, # */
		{ "other/dev42/temp", 3 },	/* +/dev42/temp, #, +/+/temp */
		{ "other/x/y/z", 1 },		/* # */
		{ "$SYS/dev42/temp", 0 },
	};
	struct subtree *t = subtree_new();
	struct subtree_stats before, after;

	(void)state;
	add_cost_entries(t);
	assert_int_equal(subtree_count(t),
	    COST_SITES * COST_DEVS + 2 * COST_SITES + COST_DEVS + 2);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t levels = topic_levels(cases[i].name, strlen(cases[i].name)), n = 0;
		uint64_t v;

		subtree_stats(t, &before);
		assert_int_equal(subtree_match(t, cases[i].name, count_cb, &n), TOPIC_OK);
		subtree_stats(t, &after);
		assert_int_equal(n, cases[i].matches);
		v = after.visits - before.visits;
		if (v > (levels + 1) * (cases[i].matches + 1))
			fail_msg("%s: %llu visits for %zu matches", cases[i].name,
			    (unsigned long long)v, cases[i].matches);
	}
	subtree_free(t);
}

/* 100,000 owners of one filter: adding and removing them is not quadratic
 * (the entries of a filter are ordered by owner), matching reports each. */
static void
test_many_owners(void **state)
{
	static char many[100000];
	struct subtree *t = subtree_new();
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(many); i++)
		assert_int_equal(subtree_add(t, "news/#", &many[i], 1, NULL), TOPIC_OK);
	assert_int_equal(subtree_match(t, "news/today", count_cb, &n), TOPIC_OK);
	assert_int_equal(n, sizeof(many));
	for (size_t i = 0; i < sizeof(many); i += 2)
		assert_true(subtree_remove(t, "news/#", &many[i]));
	n = 0;
	assert_int_equal(subtree_match(t, "news", count_cb, &n), TOPIC_OK);
	assert_int_equal(n, sizeof(many) / 2);
	subtree_free(t);
}

/* Names and filters of 65,536 and 32,768 levels: no recursion, no overflow. */
static void
test_deep(void **state)
{
	size_t len = TOPIC_MAX_LEN, nplus = (TOPIC_MAX_LEN + 1) / 2, n = 0;
	char *name = xmalloc(len + 1), *half = xmalloc(nplus), *plus = xmalloc(2 * nplus);
	struct subtree *t = subtree_new();
	struct subtree_stats st;

	(void)state;
	memset(name, '/', len);
	name[len] = '\0';
	memset(half, '/', nplus - 1);
	half[nplus - 1] = '\0';
	for (size_t i = 0; i < 2 * nplus - 1; i++)
		plus[i] = i % 2 == 0 ? '+' : '/';
	plus[2 * nplus - 1] = '\0';
	assert_int_equal(subtree_add(t, "#", OWNER(0), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "+/#", OWNER(0), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, "/#", OWNER(0), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, name, OWNER(0), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_add(t, plus, OWNER(0), 0, NULL), TOPIC_OK);
	assert_int_equal(subtree_match(t, name, count_cb, &n), TOPIC_OK);
	assert_int_equal(n, 4);
	n = 0;
	assert_int_equal(subtree_match(t, half, count_cb, &n), TOPIC_OK);
	assert_int_equal(n, 4);		/* #, +/#, /#, and the '+' levels */
	assert_true(subtree_remove(t, name, OWNER(0)));
	assert_true(subtree_remove(t, plus, OWNER(0)));
	subtree_stats(t, &st);
	assert_int_equal(st.nodes, 5);	/* "#", "+" and its "#", "" and its "#" */
	subtree_free(t);
	free(name);
	free(half);
	free(plus);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_update_remove),
		cmocka_unit_test(test_remove_owner),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_match_rules),
		cmocka_unit_test(test_owner_several_filters),
		cmocka_unit_test(test_property_random),
		cmocka_unit_test(test_cost_100k),
		cmocka_unit_test(test_many_owners),
		cmocka_unit_test(test_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
