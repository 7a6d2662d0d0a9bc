/* Shared subscriptions ($share/GROUP/FILTER) as durable competing
 * consumers.  A group is one subscriber of the topic (key "g/GROUP/FILTER":
 * one cursor, one list of entries in flight); its members are sessions,
 * each an endpoint (a struct sub outside td->subs) with its own delivery
 * socket, window and QoS, kept in numbered slots.
 *
 * Each message goes to one member online with room, in turn; an entry in
 * flight remembers its member's slot (stored with the group).  A member
 * that goes offline leaves what it was sent and did not acknowledge to
 * the others (sent again, DUP), except what an MQTT member was sent at
 * QoS 2: that stays its own, acknowledged or not, and its delivery is
 * completed when it comes back (MQTT-4.8.2-4); if it leaves the group
 * instead, it is sent to no other member (MQTT-4.8.2-5).  So QoS 2 is
 * exactly once across the members, QoS 1 (and a JSON-lines member's
 * message it did not PUBREC) at least once.  A group with no member
 * online keeps its messages, as any subscriber does.  The group goes when
 * its last member leaves with UF_FORGET.  What stays a member's own while
 * it is away does not hold up the others (share_aside.c).
 *
 * A group's record (subs.c, version 3) adds the member slots by session
 * key and each entry's slot after the fields of version 2, then, only when
 * there are any, the entries kept aside (share_aside_encode). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

#define SHARE_MAX_SLOTS 4096	/* members of one group */

bool
sub_online(const struct sub *s)
{
	if (!s->is_group)
		return s->fd != -1;
	for (uint16_t i = 0; i < s->nslots; i++)
		if (s->members[i] != NULL && s->members[i]->fd != -1 && !s->members[i]->parked)
			return true;
	return false;
}

static struct sub *
member_find(const struct sub *g, const char *key)
{
	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL && strcmp(g->members[i]->key, key) == 0)
			return g->members[i];
	return NULL;
}

static struct sub *
member_of(const struct sub *g, uint16_t mi)
{
	return mi >= 1 && mi <= g->nslots ? g->members[mi - 1] : NULL;
}

/* A member in slot i (a free one, or a new one at the end). */
static struct sub *
member_add(struct sub *g, const char *key, uint16_t i)
{
	struct sub *m = sub_alloc(g->td, key);

	if (i >= g->nslots) {
		g->members = xreallocarray(g->members, (size_t)i + 1, sizeof(*g->members));
		memset(g->members + g->nslots, 0, (size_t)(i + 1 - g->nslots) *
		    sizeof(*g->members));
		g->nslots = (uint16_t)(i + 1);
	}
	m->group = g;
	m->share = g->share;
	m->slot = (uint16_t)(i + 1);
	/* Until it attaches: what its key says (JSON-lines "j/", else MQTT). */
	m->mode = strncmp(key, "j/", 2) == 0 ? MODE_JSON : MODE_MQTT;
	m->qos = 2;
	g->members[i] = m;
	return m;
}

static struct sub *
member_get(struct sub *g, const char *key)
{
	struct sub *m = member_find(g, key);
	uint16_t i = 0;

	if (m != NULL)
		return m;
	while (i < g->nslots && g->members[i] != NULL)
		i++;
	if (i >= SHARE_MAX_SLOTS)
		return NULL;
	m = member_add(g, key, i);
	log_info("topic %s: %s joins %s", g->td->topic, key, g->share);
	sub_dirty(g);
	return m;
}

/* The group's window: what its members online may have in flight. */
static void
group_window(struct sub *g)
{
	uint32_t w = 0;

	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL && g->members[i]->fd != -1 && !g->members[i]->parked)
			w += g->members[i]->window;
	g->window = (uint16_t)(w == 0 ? 1 : w < TD_WINDOW_MAX ? w : TD_WINDOW_MAX);
}

static bool
group_empty(const struct sub *g)
{
	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL)
			return false;
	return true;
}

/* A member online with the socket of an ATTACH: the PUBRELs it owes an
 * answer to go again; new messages come to it in turn. */
void
share_attach(struct sub *g, int fd, const struct rec_attach *r)
{
	struct topicd *td = g->td;
	struct sub *m = member_get(g, r->member);

	if (m == NULL) {
		log_warnx("topic %s: %s has too many members; %s refused", td->topic, g->share,
		    r->member);
		if (close(fd) == -1)
			log_warn("topic %s: %s: close", td->topic, r->member);
		return;
	}
	if (deliver_same_connection(m, fd, r)) {
		/* Only its settings change: what it has in flight stays. */
		g->qos = r->qos;
		group_window(g);
		deliver_wake(g);
		return;
	}
	deliver_take_socket(m, fd, r);
	m->parked = false;
	if (g->timer == NULL && (g->timer = evtimer_new(td->base, retry_timer_cb, g)) == NULL)
		fatalx("cannot create a timer");
	g->mode = r->mode;
	g->qos = r->qos;
	g->parked = false;
	g->check_head = true;
	for (uint32_t i = 0; i < g->nfl; i++)
		if (g->fl[i].state != FL_DONE && g->fl[i].mi == m->slot)
			g->fl[i].resend = true;	/* its own: to it again */
	share_aside_resume(m);
	group_window(g);
	sub_dirty(g);
	deliver_wake(g);
}

/* An offline session's member: known from now on, nothing sent. */
void
share_register(struct sub *g, const struct rec_attach *r)
{
	struct sub *m = member_get(g, r->member);

	if (m != NULL && m->fd == -1) {
		m->mode = r->mode;
		m->qos = r->qos;
		m->window = r->window == 0 ? 1 : r->window;
		/* Read back with QoS 2 assumed: what its real QoS does not
		 * keep its own goes to the others. */
		share_member_offline(m);
	}
}

void
share_detach(struct sub *g, const char *key)
{
	struct sub *m = member_find(g, key);

	if (m != NULL)
		deliver_offline(m);
}

/* Does entry f (message seq), sent to member m, stay m's while m is
 * offline?  A PUBREL does; so does a message an MQTT member got at QoS 2. */
bool
share_bound(struct sub *g, const struct sub *m, const struct flight *f, uint64_t seq)
{
	struct msg msg;
	uint8_t q;

	if (f->state == FL_RECEIVED)
		return true;
	if (m->mode != MODE_MQTT)
		return false;
	if (f->qos != 0)
		return f->qos == 2;
	if (!log_get(g->td, seq, &msg))
		return false;
	q = msg.qos < m->qos ? msg.qos : m->qos;
	msg_release(&msg);
	return q == 2;
}

/* deliver_offline of a member: what it was sent and did not answer goes
 * to the others, unless it stays its own (share_bound); what it was given
 * and not yet sent (its socket was full) was never its own. */
void
share_member_offline(struct sub *m)
{
	struct sub *g = m->group;
	bool moved = false;

	for (uint32_t i = 0; i < g->nfl; i++) {
		struct flight *f = &g->fl[i];

		if (f->mi == m->slot && f->unsent) {
			f->mi = 0;
			f->unsent = false;
			f->resend = true;
			moved = true;
		} else if (f->mi == m->slot && f->state == FL_SENT &&
		    !share_bound(g, m, f, g->cursor + i)) {
			f->mi = 0;
			f->resend = true;
			moved = true;
		}
	}
	group_window(g);
	if (moved) {
		log_debug("topic %s: %s offline; its deliveries go to the others of %s",
		    g->td->topic, m->key, g->share);
		sub_dirty(g);
	}
	deliver_wake(g);
}

/* A JSON-lines member that did not answer message seq after its
 * attempts: nothing more goes to it until its next ATTACH, and what it
 * was sent goes to the others (a PUBREL it owes stays its own). */
void
share_member_park(struct sub *m, uint64_t seq, uint32_t attempts)
{
	struct sub *g = m->group;

	m->parked = true;
	log_info("topic %s: %s did not answer message %llu of %s after %u attempts; parked",
	    g->td->topic, m->key, (unsigned long long)seq, g->share, attempts);
	share_member_offline(m);
}

void
share_offline_all(struct sub *g)
{
	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL)
			deliver_offline(g->members[i]);
}

/* The member leaves the group (it unsubscribed, or its session ended):
 * what stays its own (share_bound) is given up, never sent to another
 * member (MQTT-4.8.2-5); with forget, the group goes with its last
 * member. */
void
share_leave(struct sub *g, const char *key, bool forget)
{
	struct topicd *td = g->td;
	struct sub *m = member_find(g, key);

	if (m != NULL) {
		deliver_offline(m);
		share_member_offline(m);	/* also one never online here */
		for (uint32_t i = 0; i < g->nfl; i++) {
			struct flight *f = &g->fl[i];

			if (f->mi == m->slot && f->unsent) {
				f->mi = 0;	/* never sent to it: the others' */
				f->unsent = false;
				f->resend = true;
			} else if (f->mi == m->slot) {
				sub_set_state(g, f, FL_DONE);
				f->mi = 0;
			}
		}
		g->members[m->slot - 1] = NULL;
		log_info("topic %s: %s leaves %s", td->topic, key, g->share);
		sub_free(m);
		sub_advance(g);
		sub_dirty(g);
		td->need_sync = true;
	}
	if (forget && group_empty(g)) {
		log_info("topic %s: %s has no member left; forgotten", td->topic, g->share);
		sub_delete(g);
		td->need_sync = true;
	}
}

/* The member that dead-letter request req is of (one kept aside), or NULL. */
struct sub *
share_member_of_dlq(struct topicd *td, uint64_t req)
{
	struct sub *g;

	TAILQ_FOREACH(g, &td->groups, group_entry)
		for (uint16_t i = 0; i < g->nslots; i++)
			if (g->members[i] != NULL && g->members[i]->dlq_req == req)
				return g->members[i];
	return NULL;
}

/* The group's members in an IDLE's list (idle_member_key): the bytes they
 * take, and their number added to *n. */
size_t
share_idle_bytes(const struct sub *g, uint32_t *n)
{
	size_t bytes = 0;

	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL) {
			bytes += strlen(g->key) + strlen(g->members[i]->key) + 32;
			(*n)++;
		}
	return bytes;
}

void
share_idle_members(const struct sub *g, struct wbuf *w)
{
	struct wbuf k;

	wbuf_init(&k);
	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL)
			enc_idle_sub(w, idle_member_key(&k, g->key, g->members[i]->key), false);
	wbuf_free(&k);
}

void
share_free_members(struct sub *g)
{
	for (uint16_t i = 0; i < g->nslots; i++)
		if (g->members[i] != NULL)
			sub_free(g->members[i]);
	free(g->members);
	g->members = NULL;
	g->nslots = 0;
}

/* Members whose key starts with prefix (clean sessions of an earlier
 * master) leave their groups; a group left without members goes. */
unsigned
share_drop_members_prefix(struct topicd *td, const char *prefix)
{
	struct sub *g, *next;
	unsigned n = 0;

	TAILQ_FOREACH_SAFE(g, &td->groups, group_entry, next) {
		bool dropped = false;

		for (uint16_t i = 0; i < g->nslots; i++) {
			struct sub *m = g->members[i];

			if (m != NULL && strncmp(m->key, prefix, strlen(prefix)) == 0) {
				char *key = xstrdup(m->key);

				share_leave(g, key, false);
				free(key);
				dropped = true;
				n++;
			}
		}
		if (dropped && group_empty(g))
			sub_delete(g);
	}
	return n;
}

/* Wakes the groups key is a member of (its own subscription went
 * offline: a JSON-lines consumer gets their messages from now on). */
void
share_wake_groups_of(struct topicd *td, const char *key)
{
	struct sub *g;

	TAILQ_FOREACH(g, &td->groups, group_entry)
		if (member_find(g, key) != NULL)
			deliver_wake(g);
}

/* The group and entry that an ack from member key for seq is about;
 * share: the group's name ("$share/G/F"), or "" for any. */
bool
share_ack_find(struct topicd *td, const char *key, const char *share, uint64_t seq,
    struct sub **gp, struct flight **fp)
{
	struct sub *g, *m;
	struct flight *f;

	TAILQ_FOREACH(g, &td->groups, group_entry) {
		if ((share[0] != '\0' && strcmp(g->share, share) != 0) ||
		    (m = member_find(g, key)) == NULL || (f = sub_flight(g, seq)) == NULL)
			continue;
		if (f->mi == m->slot && f->state != FL_DONE) {
			*gp = g;
			*fp = f;
			return true;
		}
	}
	return false;
}

/* After a group's fields of version 2: its member slots by session key
 * ("" for a free one), then each entry's slot. */
void
share_encode(struct wbuf *w, const struct sub *g)
{
	put_u16(w, g->nslots);
	for (uint16_t i = 0; i < g->nslots; i++)
		put_str(w, g->members[i] != NULL ? g->members[i]->key : "");
	for (uint32_t i = 0; i < g->nfl; i++)
		put_u16(w, g->fl[i].mi);
	share_aside_encode(w, g);
}

/* Entry f (message seq), read back from the store: its member is offline
 * until its session attaches, and may never come back (a session that
 * ended while no topicd ran): what it was sent and does not keep
 * (share_bound) goes to the next member, as at any member's going. */
static void
release_if_free(struct sub *g, struct flight *f, uint64_t seq)
{
	struct sub *m = member_of(g, f->mi);

	if (f->state != FL_SENT || (m != NULL && share_bound(g, m, f, seq)))
		return;
	f->mi = 0;
	f->resend = true;
}

/* The members come back offline, until their sessions attach. */
int
share_decode(struct sub *g, struct rbuf *r)
{
	uint16_t n = 0;
	const char *key;

	get_u16(r, &n);
	if (r->err || n > SHARE_MAX_SLOTS)
		return -1;
	for (uint16_t i = 0; i < n; i++) {
		if (get_str(r, &key) == -1)
			return -1;
		if (key[0] != '\0')
			(void)member_add(g, key, i);
	}
	if (g->nslots < n) {
		g->members = xreallocarray(g->members, n, sizeof(*g->members));
		memset(g->members + g->nslots, 0, (size_t)(n - g->nslots) * sizeof(*g->members));
		g->nslots = n;
	}
	for (uint32_t i = 0; i < g->nfl; i++) {
		if (get_u16(r, &g->fl[i].mi) == -1)
			return -1;
		if (g->fl[i].mi != 0 && member_of(g, g->fl[i].mi) == NULL)
			g->fl[i].mi = 0;	/* its member is gone: anyone's */
		release_if_free(g, &g->fl[i], g->cursor + i);
	}
	return share_aside_decode(g, r);
}
