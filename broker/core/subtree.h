/* The set of subscriptions: (filter, owner, qos) entries, at most one per
 * filter and owner, kept as a tree of filter levels ('+', '#' and literal
 * levels are nodes).  Matching a topic name walks, at each of its levels,
 * only the literal child, the '+' child and the '#' child of the nodes
 * reached: its cost grows with the levels and the matches, not with the
 * number of subscriptions.  The owner is opaque (a session); the tree
 * never dereferences it.
 *
 * Matching follows topic_matches() exactly: '+' matches one level (also
 * an empty one), '#' what is left (also nothing: "a/#" matches "a"), and
 * a filter starting with '+' or '#' matches no name starting with '$'.
 *
 * Not thread-safe.  A callback must not change the tree it is called
 * from (collect what to change, change it after the call returns). */
#ifndef BROKER_CORE_SUBTREE_H
#define BROKER_CORE_SUBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topic.h"

struct subtree;

/* One matching entry; filter is valid only during the call.  An owner
 * with several matching filters is called back once for each: the caller
 * keeps the highest qos. */
typedef void subtree_cb(void *owner, uint8_t qos, const char *filter, void *arg);

struct subtree_stats {
	size_t   entries;	/* subtree_count() */
	size_t   filters;	/* distinct filters with at least one entry */
	size_t   nodes;		/* filter levels stored (shared prefixes count once) */
	size_t   bytes;		/* memory held by nodes, entries and filter strings
				 * (allocator overhead and the tree's own struct
				 * not counted) */
	uint64_t visits;	/* nodes visited by matches since creation */
};

struct subtree *subtree_new(void);
/* Frees the tree and its entries (not the owners). */
void subtree_free(struct subtree *t);

/* Adds the entry (filter, owner) with qos, or sets the qos of the entry
 * already there.  Returns TOPIC_OK, or why filter is not a valid filter
 * (topic_check_filter(); nothing changes).  If added is not NULL,
 * *added says whether the entry is new. */
enum topic_err subtree_add(struct subtree *t, const char *filter, void *owner,
    uint8_t qos, bool *added);
/* Removes the entry (filter, owner): true if it was there. */
bool subtree_remove(struct subtree *t, const char *filter, void *owner);
/* Removes the entries of owner for each of the n filters (its
 * subscriptions: the tree has no index by owner); returns how many were
 * there. */
size_t subtree_remove_owner(struct subtree *t, void *owner,
    const char *const *filters, size_t n);
/* Finds the entry (filter, owner): true (with *qos set if qos is not
 * NULL) or false. */
bool subtree_find(struct subtree *t, const char *filter, void *owner, uint8_t *qos);
/* Calls cb for every entry whose filter matches the topic name.  Returns
 * TOPIC_OK, or why name is not a valid topic name (topic_check_name();
 * no call then). */
enum topic_err subtree_match(struct subtree *t, const char *name, subtree_cb *cb,
    void *arg);
/* The number of entries. */
size_t subtree_count(const struct subtree *t);
void subtree_stats(const struct subtree *t, struct subtree_stats *st);

#endif
