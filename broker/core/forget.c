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
 * (given_again) or something for the topic came meanwhile:
 *   1. the topic leaves the topic table; the registry knows nothing of it
 *      any more (REC_GONE, recreate: used again, it gives every matching
 *      session its cursor, as a new topic does), and the sequence floor
 *      rises past its numbers, durably;
 *   2. then the topicd is sent FORGET: it deletes its store (kv_destroy,
 *      whose every intermediate state opens whole or empty) and exits
 *      with TOPICD_EXIT_DELETED;
 *   3. only then does the topic leave the registry, unless it came back.
 * Until 3 a filter still finds the topic, so that an UNSUBSCRIBE or a
 * session's end reaches a store that a death kept; a SUBSCRIBE passes it
 * by, as it would a topic never seen.  A topic used again meanwhile (a
 * publish) gets a new entry in the table, whose topicd waits for the old
 * one's lock.  A death anywhere leaves the topic known (REC_LIVE or
 * REC_GONE; one found REC_GONE at start is started once, to be forgotten
 * again) or its store gone. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/core.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

#define JSON_KEY_PREFIX	"j/"	/* a JSON-lines consumer's session key */

/* A group member's entry in an IDLE's list ("M/" LEN "/" GROUP MEMBER,
 * idle_member_key): its group's key (len bytes at *group) and its
 * member's session key; false if it is none. */
static bool
member_split(const char *key, const char **group, size_t *len, const char **member)
{
	size_t plen = strlen(IDLE_MEMBER_PREFIX);
	char *end;
	unsigned long n;

	if (strncmp(key, IDLE_MEMBER_PREFIX, plen) != 0)
		return false;
	n = strtoul(key + plen, &end, 10);
	if (end == key + plen || *end != '/' || n > strlen(end + 1))
		return false;
	*group = end + 1;
	*len = n;
	*member = end + 1 + n;
	return true;
}

/* Would a new store of the topic be given this subscriber again?
 *   - A JSON-lines consumer's cursor, its own or as a group's member,
 *     is durable whatever its subscriptions (each (topic, username) pair
 *     has one, which UNSUB keeps): never.
 *   - Another session's own cursor: if one of its filters matches (an
 *     MQTT UNSUBSCRIBE deletes it), or if the session is gone.
 *   - A group: if it has a member (a JSON-lines member that leaves keeps
 *     the group's cursor; an MQTT group goes with its last member), given
 *     with its members' share filters.
 * The list has each group's members right after it (topicd/idle.c);
 * *group_open is the group waiting for its first member. */
static bool
given_again(struct broker *b, const char *topic, const char *key, char **group_open)
{
	const char *group, *member;
	struct session *s;
	size_t len;

	if (member_split(key, &group, &len, &member)) {
		if (*group_open != NULL && strlen(*group_open) == len &&
		    strncmp(*group_open, group, len) == 0) {
			free(*group_open);
			*group_open = NULL;
		}
		return strncmp(member, JSON_KEY_PREFIX, strlen(JSON_KEY_PREFIX)) != 0;
	}
	if (*group_open != NULL)
		return false;		/* the group before has no member */
	if (strncmp(key, SHARE_KEY_PREFIX, strlen(SHARE_KEY_PREFIX)) == 0) {
		*group_open = xstrdup(key);
		return true;
	}
	if (strncmp(key, JSON_KEY_PREFIX, strlen(JSON_KEY_PREFIX)) == 0)
		return false;
	s = session_find(b, key);
	return s == NULL || session_qos(s, topic) >= 0;
}

/* Nothing waits for the topic here, and its subscribers would all be
 * given again. */
static bool
forgettable(struct child *c, const struct rec_idle *r)
{
	struct broker *b = c->b;
	char *group_open = NULL;
	const char *key;
	size_t pos = 0;
	bool backlog, ok = true;

	if (c->state != CH_PARKING || c->chan == NULL || r->rx != c->tx || b->stopping ||
	    !c->registered || c->want_again || c->nunsent > 0 || !TAILQ_EMPTY(&c->held) ||
	    c->nacks > 0 || c->ncold_unsubs > 0 || c->pins > 0 ||
	    (r->flags & (IDLE_SUBS_UNKNOWN | IDLE_RETAINED | IDLE_STAGED)))
		return false;
	while (ok && idle_next_sub(r, &pos, &key, &backlog))
		ok = !backlog && given_again(b, c->topic, key, &group_open);
	ok = ok && group_open == NULL;
	free(group_open);
	return ok;
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
	c->forget_tx = c->tx;
	child_watch(c);		/* topicd_timeout to delete its store, from now */
}

static void
forget_begin(struct child *c, uint64_t next_seq)
{
	struct broker *b = c->b;
	uint64_t ticket;

	log_info("topic %s: forgotten: it keeps nothing", c->topic);
	/* Out of the topic table, whose figures ($SYS) it leaves. */
	b->forgotten_restarts += c->restarts;
	b->forgotten_poisoned += c->poisoned;
	RB_REMOVE(child_tree, &b->children, c);
	b->title_dirty = true;
	/* Online sessions attached there are attached again, with the
	 * others, when the topic is next used (their cursors in the store, if
	 * a death keeps it, or in a new one). */
	while (!TAILQ_EMPTY(&c->attached))
		attach_drop(TAILQ_FIRST(&c->attached), false);
	c->forgetting = true;		/* c->final_idle kept: forget_undone */
	TAILQ_INSERT_TAIL(&b->forgetting, c, live);
	c->list = &b->forgetting;
	ticket = registry_forget(b, c->topic, c->final_idle, c->final_len, next_seq);
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
	else {
		child_chan_send(c, IPC_KEEP, NULL, 0, -1);
		c->final_tx = c->tx;	/* part of its ending (spare.c) */
	}
}

/* Is a session's own cursor in the store one a new store would not have:
 * the session is gone, or no longer subscribes? */
static bool
stale(struct broker *b, const char *topic, const char *key)
{
	struct session *s = session_find(b, key);

	return s == NULL || session_qos(s, topic) < 0;
}

/* The store of topic n that a forgetting left (whole, or empty) may hold
 * the cursors its last IDLE listed, while the sessions attached there were
 * let go: those that ended, unsubscribed or left a group since could not
 * tell it.  Their cursors, and memberships, are dropped (UNSUB). */
void
forget_prune(struct child *n, const uint8_t *idle, size_t len)
{
	const char *key, *group, *member;
	struct rec_idle r;
	size_t pos = 0, glen;
	bool backlog;
	char *gkey;

	if (idle == NULL || dec_idle(idle, len, &r) == -1)
		return;
	while (idle_next_sub(&r, &pos, &key, &backlog)) {
		if (member_split(key, &group, &glen, &member)) {
			gkey = xcalloc(1, glen + 1);
			memcpy(gkey, group, glen);
			share_prune_member(n, gkey, member);
			free(gkey);
		} else if (strncmp(key, SHARE_KEY_PREFIX, strlen(SHARE_KEY_PREFIX)) != 0 &&
		    stale(n->b, n->topic, key))
			topic_unsub(n, key, true);
	}
}

/* The store was not deleted: the topic is opened again at once (every
 * matching session attached or registered again), what its store may
 * hold for sessions that changed meanwhile is dropped, and its topicd
 * starts, to be forgotten again when idle.  While the broker stops, the
 * next start does it (REC_GONE keeps the last IDLE). */
static void
forget_undone(struct child *c)
{
	const char *why;
	struct child *n;

	if ((n = topic_open(c->b, c->topic, &why)) == NULL)
		return;
	forget_prune(n, c->final_idle, c->final_len);
	child_wake(n);
}

/* The process of a topic being forgotten is gone (out of the live lists
 * already).  Its status says that it deleted its store; else the store
 * stays, whole or empty, and so does the topic, nothing known of it
 * (REC_GONE): used again, it gives every matching session its cursor
 * again, and the next start of the broker starts it to forget it. */
void
forget_exited(struct child *c, int status, const char *how)
{
	if (c->forget_sent && WIFEXITED(status) && WEXITSTATUS(status) == TOPICD_EXIT_DELETED) {
		log_info("topic %s: topicd %s: its store deleted", c->topic, how);
		if (registry_forgotten(c->b, c->topic))
			c->b->topics_forgotten++;
	} else {
		log_notice("topic %s: topicd %s while the topic was being forgotten; its store "
		    "stays, and is opened again", c->topic, how);
		forget_undone(c);
	}
	if (!c->forget_waiting)
		forget_free(c);
}
