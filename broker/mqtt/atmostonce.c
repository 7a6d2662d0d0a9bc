/* QoS 0 at most once across a topicd's restart.  A topicd stores a QoS 0
 * subscriber's cursor with its next batch, or within a second, not before
 * each delivery: a topicd killed in between starts again from the cursor
 * it stored and sends those messages again.  The session keeps, for each
 * subscription in a topic (own or in a group), the highest sequence
 * number it passed on at QoS 0, and drops a QoS 0 delivery at or below
 * it.
 *
 * A topicd sends one subscription's first deliveries in sequence order
 * (retained messages apart, which a subscribe may send again on purpose,
 * and DUPs, which a group gives a member when another went), and numbers
 * never go back in a topic, so nothing is dropped but a delivery the
 * session has had. */
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt_int.h"
#include "xmalloc.h"

struct q0mark {
	RB_ENTRY(q0mark) entry;
	char		*topic;
	char		*share;
	uint64_t	 seq;
};

static int
mark_cmp(struct q0mark *a, struct q0mark *b)
{
	int c = strcmp(a->topic, b->topic);

	return c != 0 ? c : strcmp(a->share, b->share);
}

RB_PROTOTYPE(q0mark_tree, q0mark, entry, mark_cmp)
RB_GENERATE(q0mark_tree, q0mark, entry, mark_cmp)

static struct q0mark *
mark_find(struct q0marks *qm, const char *topic, const char *share)
{
	struct q0mark key = { .topic = (char *)topic, .share = (char *)share };

	/* A stream mostly comes from one topic: the last one first. */
	if (qm->last != NULL && mark_cmp(qm->last, &key) == 0)
		return qm->last;
	return qm->last = RB_FIND(q0mark_tree, &qm->tree, &key);
}

void
q0marks_init(struct q0marks *qm)
{
	RB_INIT(&qm->tree);
	qm->last = NULL;
}

bool
q0marks_seen(struct q0marks *qm, const char *topic, const char *share, uint64_t seq)
{
	struct q0mark *m = mark_find(qm, topic, share);

	if (m != NULL && seq <= m->seq)
		return true;
	if (m == NULL) {
		m = xcalloc(1, sizeof(*m));
		m->topic = xstrdup(topic);
		m->share = xstrdup(share);
		RB_INSERT(q0mark_tree, &qm->tree, m);
		qm->last = m;
	}
	m->seq = seq;
	return false;
}

static void
mark_free(struct q0marks *qm, struct q0mark *m)
{
	if (qm->last == m)
		qm->last = NULL;
	RB_REMOVE(q0mark_tree, &qm->tree, m);
	free(m->topic);
	free(m->share);
	free(m);
}

void
q0marks_drop(struct q0marks *qm, const char *topic, const char *share)
{
	struct q0mark key = { .topic = (char *)topic, .share = (char *)"" }, *m, *next;

	for (m = RB_NFIND(q0mark_tree, &qm->tree, &key); m != NULL &&
	    strcmp(m->topic, topic) == 0; m = next) {
		next = RB_NEXT(q0mark_tree, &qm->tree, m);
		if (share == NULL || strcmp(m->share, share) == 0)
			mark_free(qm, m);
	}
}

void
q0marks_free(struct q0marks *qm)
{
	struct q0mark *m;

	while ((m = RB_MIN(q0mark_tree, &qm->tree)) != NULL)
		mark_free(qm, m);
}
