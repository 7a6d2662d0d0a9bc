/* A session's filters: an array (s->filters), indexed by name, and the
 * filters a topic has to be matched against one by one (those with a
 * wildcard, and shares) indexed apart.  A plain filter matches one topic,
 * its own name: so a session of thousands of plain filters finds those
 * that match a topic, or its other filters of the same route, without a
 * pass over all of them, and a SUBSCRIBE or UNSUBSCRIBE of thousands is
 * not quadratic. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "topic.h"
#include "xmalloc.h"

struct filter_ix {
	RB_ENTRY(filter_ix) entry;
	RB_ENTRY(filter_ix) scan_entry;	/* in findex_scan, if scanned */
	const char	*filter;	/* the session's copy */
	size_t		 i;		/* in s->filters */
	bool		 scanned;	/* a wildcard or a share */
};

static int
ix_cmp(struct filter_ix *a, struct filter_ix *b)
{
	return strcmp(a->filter, b->filter);
}

RB_PROTOTYPE(filter_index, filter_ix, entry, ix_cmp)
RB_GENERATE(filter_index, filter_ix, entry, ix_cmp)
RB_PROTOTYPE(filter_scan, filter_ix, scan_entry, ix_cmp)
RB_GENERATE(filter_scan, filter_ix, scan_entry, ix_cmp)

static struct filter_ix *
ix_find(const struct session *s, const char *filter)
{
	struct filter_ix key = { .filter = filter };

	return RB_FIND(filter_index, (struct filter_index *)&s->findex, &key);
}

/* Must a topic be matched against the filter itself? */
static bool
needs_scan(const char *filter)
{
	return strpbrk(filter, "+#") != NULL ||
	    strncmp(filter, TOPIC_SHARE_PREFIX, strlen(TOPIC_SHARE_PREFIX)) == 0;
}

bool
session_has_filter(const struct session *s, const char *filter)
{
	return ix_find(s, filter) != NULL;
}

void
session_filters_free(struct session *s)
{
	struct filter_ix *ix;

	RB_INIT(&s->findex_scan);
	while ((ix = RB_MIN(filter_index, &s->findex)) != NULL) {
		RB_REMOVE(filter_index, &s->findex, ix);
		free(ix);
	}
	for (size_t i = 0; i < s->nfilters; i++) {
		routes_drop(s->b, s, s->filters[i].filter);
		free(s->filters[i].filter);
	}
	free(s->filters);
	s->filters = NULL;
	s->nfilters = 0;
}

void
session_scan(struct session *s, filter_fn *fn, void *arg)
{
	struct filter_ix *ix;

	RB_FOREACH(ix, filter_scan, &s->findex_scan)
		fn(s, &s->filters[ix->i], arg);
}

void
session_matching(struct session *s, const char *topic, filter_fn *fn, void *arg)
{
	struct filter_ix *ix = ix_find(s, topic);

	if (ix != NULL)
		fn(s, &s->filters[ix->i], arg);
	RB_FOREACH(ix, filter_scan, &s->findex_scan)
		if (topic_matches(s->filters[ix->i].filter, topic))
			fn(s, &s->filters[ix->i], arg);
}

/* Highest QoS among the filters that match topic; -1 if none does. */
int
session_qos(const struct session *s, const char *topic)
{
	struct filter_ix *ix = ix_find(s, topic);
	int q = ix != NULL ? s->filters[ix->i].qos : -1;

	RB_FOREACH(ix, filter_scan, (struct filter_scan *)&s->findex_scan) {
		const struct filter *f = &s->filters[ix->i];

		if (f->qos > q && topic_matches(f->filter, topic))
			q = f->qos;
	}
	return q;
}

bool
session_may_add_filter(const struct session *s, const char *filter)
{
	return s->nfilters < s->b->set.max_subscriptions || session_has_filter(s, filter);
}

/* Adds or updates a filter; returns true if anything changed. */
bool
session_add_filter(struct session *s, const char *filter, uint8_t qos)
{
	struct filter_ix *ix = ix_find(s, filter);

	if (ix != NULL) {
		bool changed = s->filters[ix->i].qos != qos;

		s->filters[ix->i].qos = qos;
		return changed;
	}
	s->filters = xreallocarray(s->filters, s->nfilters + 1, sizeof(*s->filters));
	s->filters[s->nfilters].filter = xstrdup(filter);
	s->filters[s->nfilters].qos = qos;
	ix = xcalloc(1, sizeof(*ix));
	ix->filter = s->filters[s->nfilters].filter;
	ix->i = s->nfilters;
	RB_INSERT(filter_index, &s->findex, ix);
	if ((ix->scanned = needs_scan(filter)))
		RB_INSERT(filter_scan, &s->findex_scan, ix);
	s->nfilters++;
	routes_add(s->b, s, filter);
	return true;
}

/* Removes a filter; a share's memberships end with it. */
bool
session_remove_filter(struct session *s, const char *filter)
{
	struct filter_ix *ix = ix_find(s, filter);
	size_t i;
	char *f;

	if (ix == NULL)
		return false;
	i = ix->i;
	f = s->filters[i].filter;
	RB_REMOVE(filter_index, &s->findex, ix);
	if (ix->scanned)
		RB_REMOVE(filter_scan, &s->findex_scan, ix);
	free(ix);
	s->filters[i] = s->filters[--s->nfilters];
	if (i < s->nfilters)
		ix_find(s, s->filters[i].filter)->i = i;
	routes_remove(s->b, s, f);
	share_filter_removed(s, f);
	free(f);
	return true;
}

/* Looked up in the index: the plain filter, and the shares, which sort
 * together. */
bool
session_shares_route(const struct session *s, const char *filter)
{
	const char *route = filter_route(filter);
	struct filter_ix key = { .filter = TOPIC_SHARE_PREFIX }, *ix;
	size_t plen = strlen(TOPIC_SHARE_PREFIX);

	if (route != filter && ix_find(s, route) != NULL)
		return true;
	for (ix = RB_NFIND(filter_scan, (struct filter_scan *)&s->findex_scan, &key);
	    ix != NULL && strncmp(ix->filter, TOPIC_SHARE_PREFIX, plen) == 0;
	    ix = RB_NEXT(filter_scan, (struct filter_scan *)&s->findex_scan, ix))
		if (strcmp(ix->filter, filter) != 0 && strcmp(filter_route(ix->filter), route) == 0)
			return true;
	return false;
}
