/* The set of known topic names, as a tree of their '/'-separated levels,
 * each name with an opaque value.  Names with a common prefix share the
 * nodes (and level strings) of that prefix.  Finding a name costs its
 * levels; enumerating the names that match a filter costs the levels and
 * the matches: a literal level is one child lookup, '+' walks the children
 * of one node, '#' the subtree below one node.
 *
 * Matching follows topic_matches() exactly: '+' matches one level (also
 * an empty one), '#' what is left (also nothing: "a/#" matches "a"), and
 * a filter starting with '+' or '#' matches no name starting with '$'.
 * Empty levels ("a//b", "/a", "a/") are levels like any other.
 *
 * Not thread-safe.  A callback must not change the tree it is called
 * from (collect what to change, change it after the call returns). */
#ifndef BROKER_CORE_TOPICTREE_H
#define BROKER_CORE_TOPICTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topic.h"

struct topictree;

/* One name found, with its value; name is valid only during the call. */
typedef void topictree_cb(const char *name, void *value, void *arg);

struct topictree_stats {
	size_t   names;		/* topictree_count() */
	size_t   nodes;		/* levels stored (shared prefixes count once) */
	size_t   bytes;		/* memory held by the nodes (allocator overhead
				 * and the tree's own struct not counted) */
	uint64_t visits;	/* nodes visited by lookups and matches since creation */
};

struct topictree *topictree_new(void);
/* Frees the tree and its nodes; free_value, if not NULL, is called on the
 * value of every name. */
void topictree_free(struct topictree *t, void (*free_value)(void *));

/* Adds name with value.  Returns TOPIC_OK, or why name is not a valid
 * topic name (topic_check_name(); nothing changes).  If added is not
 * NULL, *added says whether the name is new: a name already there keeps
 * its value. */
enum topic_err topictree_add(struct topictree *t, const char *name, void *value,
    bool *added);
/* Removes name: true (with *value, if value is not NULL, set to its
 * value) if it was there, false if not. */
bool topictree_remove(struct topictree *t, const char *name, void **value);
/* Finds name exactly: true (with *value set if value is not NULL) or false. */
bool topictree_find(struct topictree *t, const char *name, void **value);
/* Calls cb for every name matching filter.  Returns TOPIC_OK, or why
 * filter is not a valid filter (topic_check_filter(); no call then). */
enum topic_err topictree_match(struct topictree *t, const char *filter,
    topictree_cb *cb, void *arg);
/* Calls cb for every name: a name before the names below it, siblings in
 * the byte order of their level. */
void topictree_foreach(struct topictree *t, topictree_cb *cb, void *arg);
/* The number of names. */
size_t topictree_count(const struct topictree *t);
void topictree_stats(const struct topictree *t, struct topictree_stats *st);

#endif
