/* Forgetting a topic that keeps nothing.  A load that makes up topic
 * names (a response topic per request, a topic per device that comes
 * once) would otherwise grow the registry and the data directory for as
 * long as it runs.
 *
 * A topicd told to STOP says in its last IDLE whether its store keeps
 * nothing but subscribers with nothing to get (IDLE_EMPTY), and then
 * waits.  Such a topic is worth no more than a topic never seen, if a new
 * store would be given the same subscribers: every session whose filters
 * match the topic gets its cursor when a topic is created
 * (sessions_topic_created), before its first publish.  So the master
 * forgets it, unless a subscriber the store lists would not be given back
 * (a JSON-lines consumer keeps its cursor after UNSUB, to resume where it
 * was) or something for the topic came meanwhile:
 *   1. the registry drops the topic (REC_GONE in the store), and the
 *      sequence floor rises past the topic's numbers, durably;
 *   2. then the topicd is sent FORGET: it deletes its store (kv_destroy,
 *      whose every intermediate state opens as an empty store) and exits;
 *   3. the registry's record goes.
 * The topic's entry leaves the topic table at 1: a publish to it from
 * then on creates it again, like any new topic, and its topicd waits for
 * the old one's lock.  A death anywhere leaves the topic either known
 * (REC_LIVE or REC_GONE: cursors are given again when it is next used,
 * and one found REC_GONE at start is started once to be forgotten again)
 * or unknown with its store empty, or gone. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/core.h"
#include "ipc.h"
#include "log.h"

/* Would a new store of the topic be given this subscriber again?  A
 * group, or a member of one (a session with a share filter), is given
 * back with its sessions; a subscriber that is no session (any more) is
 * nobody's; a session's own cursor, if one of its filters matches. */
static bool
given_again(struct broker *b, const char *topic, const char *key)
{
	struct session *s;

	if (strncmp(key, IDLE_MEMBER_PREFIX, strlen(IDLE_MEMBER_PREFIX)) == 0 ||
	    strncmp(key, SHARE_KEY_PREFIX, strlen(SHARE_KEY_PREFIX)) == 0)
		return true;
	s = session_find(b, key);
	return s == NULL || session_qos(s, topic) >= 0;
}

/* Nothing waits for the topic here, and its subscribers would all be
 * given again. */
static bool
forgettable(struct child *c, const struct rec_idle *r)
{
	struct broker *b = c->b;
	const char *key;
	size_t pos = 0;
	bool backlog;

	if (c->state != CH_PARKING || c->chan == NULL || r->rx != c->tx || b->stopping ||
	    !c->registered || c->want_again || c->nunsent > 0 || !TAILQ_EMPTY(&c->held) ||
	    c->nacks > 0 || c->pins > 0 || (r->flags & (IDLE_SUBS_UNKNOWN | IDLE_RETAINED |
	    IDLE_STAGED)))
		return false;
	while (idle_next_sub(r, &pos, &key, &backlog))
		if (backlog || !given_again(b, c->topic, key))
			return false;
	return true;
}

static void
forget_free(struct child *c)
{
	live_unlist(c);
	child_free(c);
}

/* Step 1 is durable: step 2. */
static void
forget_durable(void *arg)
{
	struct child *c = arg;

	c->forget_waiting = false;
	if (c->pid == 0) {
		forget_free(c);		/* it died meanwhile (forget_exited) */
		return;
	}
	child_chan_send(c, IPC_FORGET, NULL, 0, -1);
	c->forget_sent = c->chan != NULL;
}

static void
forget_begin(struct child *c, uint64_t next_seq)
{
	struct broker *b = c->b;
	uint64_t ticket;

	log_info("topic %s: forgotten: it keeps nothing", c->topic);
	b->topics_forgotten++;
	b->forgotten_restarts += c->restarts;
	b->forgotten_poisoned += c->poisoned;
	RB_REMOVE(child_tree, &b->children, c);
	b->title_dirty = true;
	/* Online sessions attached there are attached again, with the
	 * others, if the topic comes back. */
	while (!TAILQ_EMPTY(&c->attached))
		attach_drop(TAILQ_FIRST(&c->attached), false);
	child_free_cold_unsubs(c);	/* their cursors go with the store */
	free(c->final_idle);
	c->final_idle = NULL;
	c->forgetting = true;
	TAILQ_INSERT_TAIL(&b->forgetting, c, live);
	c->list = &b->forgetting;
	ticket = registry_forget(b, c->topic, next_seq);
	c->forget_waiting = true;
	durable_wait(b, ticket, forget_durable, c);
}

/* A parked topicd's last IDLE said IDLE_EMPTY: it waits for FORGET or
 * KEEP. */
void
forget_consider(struct child *c, const struct rec_idle *r)
{
	if (forgettable(c, r))
		forget_begin(c, r->next_seq);
	else
		child_chan_send(c, IPC_KEEP, NULL, 0, -1);
}

/* The process of a topic being forgotten is gone (out of the live lists
 * already).  Its store is deleted if it exited 0 after FORGET; else the
 * record stays REC_GONE, for the next start. */
void
forget_exited(struct child *c, int status, const char *how)
{
	if (c->forget_sent && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		log_info("topic %s: topicd %s; its store is deleted", c->topic, how);
		registry_forgotten(c->b, c->topic);
	} else
		log_notice("topic %s: topicd %s while the topic was being forgotten; its store "
		    "is deleted when the broker next starts, or used if the topic comes back",
		    c->topic, how);
	if (!c->forget_waiting)
		forget_free(c);
}
