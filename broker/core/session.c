/* Sessions, kept in the master's own store (DATA/sessions.*).  A session
 * is a subscriber identity: a JSON-lines username ("j/NAME") or an MQTT
 * client id ("m/ID", or "c/BOOT/ID" for a clean session that lives only
 * as long as its connection).  It owns topic filters; every known topic a
 * filter matches holds a durable cursor for it in its topicd (route.c).
 * Its protocol may keep state of its own in it (struct session_ext).
 *
 * Key: "s" + session key -> version, offline since, incarnation, filters,
 * and (version 3) the user its client logged in as, for the ACL while it
 * is offline (a version 2 record's session is anonymous until it comes
 * back), then, if it has one, the session's own expiry in ms (MQTT 5.0).
 * Key: "n" -> the last incarnation given (absent from an older store).
 * The store also holds the topic registry (registry.c) and what the
 * protocols keep there (MQTT: "o", "i" and "u"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "core/core.h"
#include "kvstore.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

#define SESSION_RECORD_VERSION 3
#define SESSION_RECORD_V2 2
#define INCARNATION_KEY "n"

static int
session_cmp(struct session *a, struct session *b)
{
	return strcmp(a->key, b->key);
}

RB_GENERATE(session_tree, session, entry, session_cmp)

static char *
record_key(const struct session *s, size_t *len)
{
	char *k;

	*len = (size_t)xasprintf(&k, "s%s", s->key);
	return k;
}

struct session *
session_find(struct broker *b, const char *key)
{
	struct session k = { .key = (char *)key };

	return RB_FIND(session_tree, &b->sessions, &k);
}

uint64_t
incarnation_next(uint64_t last, int64_t now)
{
	return now > 0 && (uint64_t)now > last ? (uint64_t)now : last + 1;
}

/* A new incarnation.  A stored session's is written down before it is
 * used (in the journal of its record, which the connection's answer waits
 * for), so that a restart, with the clock set back or not, gives none
 * again: a QoS 2 publish an ended session staged is told from its
 * successor's by it (mqtt/publish.c). */
static uint64_t
incarnation_take(struct broker *b, bool persistent)
{
	struct wbuf w;

	b->last_incarnation = incarnation_next(b->last_incarnation, wall_ms());
	if (!persistent || b->store == NULL)
		return b->last_incarnation;
	wbuf_init(&w);
	put_u64(&w, b->last_incarnation);
	if (kv_put(b->store, INCARNATION_KEY, strlen(INCARNATION_KEY), w.data, w.len) == -1)
		fatalx("the session store refuses the last incarnation");
	wbuf_free(&w);
	return b->last_incarnation;
}

/* The last incarnation given before the restart: the stored one, or (from
 * a store without it) the latest of the sessions' (load_session). */
static int
incarnation_load(struct broker *b)
{
	struct rbuf r;
	void *val;
	size_t len;
	int rc;

	b->last_incarnation = 0;
	rc = kv_get(b->store, INCARNATION_KEY, strlen(INCARNATION_KEY), &val, &len);
	if (rc != 1)
		return rc;
	rbuf_init(&r, val, len);
	get_u64(&r, &b->last_incarnation);
	rc = get_end(&r);
	free(val);
	if (rc == -1)
		log_errx("the last incarnation in %s/sessions does not read: the session store is "
		    "left as it is", b->set.data_dir);
	return rc;
}

static struct session *
session_alloc(struct broker *b, const char *key, uint8_t mode, bool persistent)
{
	struct session *s = xcalloc(1, sizeof(*s));

	s->b = b;
	s->key = xstrdup(key);
	s->mode = mode;
	s->persistent = persistent;
	s->auth = &b->auth;
	s->offline_since = wall_ms();
	s->offline_mono = mono_ms();
	RB_INSERT(session_tree, &b->sessions, s);
	return s;
}

struct session *
session_new(struct broker *b, const char *key, uint8_t mode, bool persistent)
{
	struct session *s = session_alloc(b, key, mode, persistent);

	s->incarnation = incarnation_take(b, persistent);
	return s;
}

/* Puts the session's record in the store (written by durable_write). */
static void
session_put(struct session *s)
{
	struct wbuf w;
	size_t klen;
	char *k;

	wbuf_init(&w);
	put_u8(&w, SESSION_RECORD_VERSION);
	/* 0: online.  A master that dies does not say when its sessions went
	 * offline: they did when it started again (decode_session). */
	put_u64(&w, s->cl != NULL ? 0 : (uint64_t)s->offline_since);
	put_u64(&w, s->incarnation);
	put_u32(&w, (uint32_t)s->nfilters);
	for (size_t i = 0; i < s->nfilters; i++) {
		put_str(&w, s->filters[i].filter);
		put_u8(&w, s->filters[i].qos);
	}
	put_u8(&w, s->user != NULL);
	if (s->user != NULL)
		put_str(&w, s->user);
	if (s->expiry_ms != 0 || s->listener != NULL)	/* without it: the default */
		put_u64(&w, s->expiry_ms);
	if (s->listener != NULL)
		put_str(&w, s->listener);
	k = record_key(s, &klen);
	if (kv_put(s->b->store, k, klen, w.data, w.len) == -1)
		fatalx("session %s: the session store refuses it", s->key);
	free(k);
	wbuf_free(&w);
}

static void
session_clean(struct session *s)
{
	if (s->dirty) {
		TAILQ_REMOVE(&s->b->dirty_sessions, s, dirty_entry);
		s->dirty = false;
	}
}

/* The records of the sessions changed since the last write, put in the
 * store for the write at the end of the pass (durable_later). */
void
sessions_put_dirty(struct broker *b)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&b->dirty_sessions)) != NULL) {
		session_clean(s);
		session_put(s);
	}
	b->dirty_linked = false;
}

/* The protocol put a change of the session in the store that is only
 * right with its record (MQTT: the options of a filter, "u" keys): the
 * record goes in the same write, whichever comes first, so that a kill
 * between two writes never leaves one without the other (an UNSUBSCRIBE's
 * options gone while its filter stays). */
void
session_linked(struct session *s)
{
	if (!s->persistent)
		return;
	(void)session_save(s);
	s->b->dirty_linked = true;
}

/* Before any write of the store: the records that changes pending in it
 * go with (session_linked). */
void
sessions_put_linked(struct broker *b)
{
	if (b->dirty_linked)
		sessions_put_dirty(b);
}

/* The session's record is to be written, with what it holds then, at the
 * end of this pass of the loop (durable_later); returns the ticket that
 * makes it durable (0 for a session that is not stored): the SUBACK or OK
 * that depends on it waits for that (client_gate). */
uint64_t
session_save(struct session *s)
{
	if (!s->persistent)
		return 0;
	if (!s->dirty) {
		TAILQ_INSERT_TAIL(&s->b->dirty_sessions, s, dirty_entry);
		s->dirty = true;
	}
	return durable_later(s->b);
}

static void
unsub_topic(struct broker *b, const char *topic, void *arg)
{
	struct session *s = arg;
	struct child *c;
	const char *why;

	if (session_qos(s, topic) >= 0 && (c = topic_open(b, topic, &why)) != NULL)
		topic_unsub(c, s->key, true);
}

/* Forgets the session: its record, its cursors in every topic, and what
 * its protocol kept. */
void
session_delete(struct session *s)
{
	struct broker *b = s->b;
	size_t klen;
	char *k;

	for (size_t i = 0; i < s->nfilters; i++)
		registry_match(b, s->filters[i].filter, unsub_topic, s);
	share_session_deleted(s);
	if (s->ext_ops != NULL)
		s->ext_ops->ended(s, true);
	s->ext_ops = NULL;
	if (s->persistent) {
		session_clean(s);
		k = record_key(s, &klen);
		if (kv_del(b->store, k, klen) == -1)
			fatalx("session %s: the session store refuses its deletion", s->key);
		free(k);
		(void)durable_write(b);
	}
	session_free(s);
}

void
session_free(struct session *s)
{
	RB_REMOVE(session_tree, &s->b->sessions, s);
	session_clean(s);
	if (s->ext_ops != NULL)
		s->ext_ops->ended(s, false);
	session_filters_free(s);
	free(s->user);
	free(s->listener);
	free(s->key);
	free(s);
}

void
session_online(struct session *s, struct client *cl, const char *user)
{
	s->cl = cl;
	cl->session = s;
	s->auth = cl->auth;
	free(s->user);
	s->user = user != NULL ? xstrdup(user) : NULL;
	free(s->listener);
	s->listener = cl->auth != &s->b->auth && cl->listener->conf != NULL ?
	    xstrdup(cl->listener->conf->listener) : NULL;
}

/* The auth of the block a restored session's client last came in by;
 * the broker's if no block of that name has its own any more. */
struct auth *
listener_auth(const struct broker *b, const char *listener)
{
	for (size_t i = 0; listener != NULL && i < b->nlisteners; i++) {
		const struct listener *l = &b->listeners[i];

		if (l->conf != NULL && l->auth != &b->auth &&
		    strcmp(l->conf->listener, listener) == 0)
			return l->auth;
	}
	return (struct auth *)&b->auth;
}

void
session_offline(struct session *s)
{
	if (s->cl != NULL)
		share_client_gone(s);
	if (s->cl != NULL)
		s->cl->session = NULL;
	s->cl = NULL;
	s->offline_since = wall_ms();
	s->offline_mono = mono_ms();
	if (s->b->next_expiry > s->offline_mono)
		s->b->next_expiry = s->offline_mono;	/* sooner than that, at least */
}

int64_t
session_offline_wall(uint64_t since, int64_t now)
{
	return since == 0 || since > (uint64_t)now ? now : (int64_t)since;
}

/* A restored session's offline times: its record's, on the monotonic
 * clock as long ago as the wall clock says; offline from now if the wall
 * clock is behind the record (it stepped back: the session gets its whole
 * lifetime from the step rather than none). */
static void
restore_offline(struct session *s, uint64_t since)
{
	int64_t now = wall_ms();

	s->offline_since = session_offline_wall(since, now);
	s->offline_mono = mono_ms() - (now - s->offline_since);
}

static int
decode_session(struct session *s, const void *val, size_t len)
{
	struct rbuf r;
	uint8_t version, qos, has_user = 0;
	uint64_t since;
	uint32_t n;
	const char *f, *user, *listener;

	rbuf_init(&r, val, len);
	get_u8(&r, &version);
	get_u64(&r, &since);
	get_u64(&r, &s->incarnation);
	get_u32(&r, &n);
	if (r.err || (version != SESSION_RECORD_VERSION && version != SESSION_RECORD_V2))
		return -1;
	restore_offline(s, since);
	for (uint32_t i = 0; i < n; i++) {
		if (get_str(&r, &f) == -1 || get_u8(&r, &qos) == -1)
			return -1;
		session_add_filter(s, f, qos);
	}
	if (version == SESSION_RECORD_VERSION && get_u8(&r, &has_user) == 0 && has_user &&
	    get_str(&r, &user) == 0)
		s->user = xstrdup(user);
	if (r.left > 0)
		get_u64(&r, &s->expiry_ms);
	if (r.left > 0 && get_str(&r, &listener) == 0) {
		s->listener = xstrdup(listener);
		s->auth = listener_auth(s->b, listener);
	}
	return get_end(&r);
}

static int
load_session(const void *key, size_t klen, void *arg)
{
	struct broker *b = arg;
	char *name = xmemdup((const char *)key + 1, klen - 1);
	struct session *s;
	void *val;
	size_t len;

	if (kv_get(b->store, key, klen, &val, &len) == 1) {
		s = session_alloc(b, name, strncmp(name, "j/", 2) == 0 ? MODE_JSON : MODE_MQTT, true);
		if (decode_session(s, val, len) == -1) {
			log_errx("session %s: a record of an unknown version or unreadable in %s/"
			    "sessions: the session store is left as it is", name, b->set.data_dir);
			session_free(s);
			free(val);
			free(name);
			return -1;
		}
		if (s->incarnation > b->last_incarnation)
			b->last_incarnation = s->incarnation;
		free(val);
	}
	free(name);
	return 0;
}

/* The session store cannot be opened: its files are not ours, or they are
 * damaged. */
static void
log_store_error(const char *dir, const char *err, int e)
{
	if (e == EACCES || e == EPERM || e == EROFS)
		log_errx("cannot open the session store in %s: %s: give the data directory and "
		    "its files to uid %ld (chown -R %ld:%ld %s)", dir, err, (long)geteuid(),
		    (long)geteuid(), (long)getegid(), dir);
	else
		log_errx("cannot open the session store in %s: %s: check the file named (free "
		    "space, damage; restore it from a backup)", dir, err);
}

int
store_open(struct broker *b)
{
	char *err = NULL;

	RB_INIT(&b->sessions);
	registry_init(b);
	routes_init(b);
	b->store = kv_open(b->set.data_dir, "sessions", b->set.checkpoint_size, &err);
	if (b->store == NULL) {
		log_store_error(b->set.data_dir, err ? err : "?", errno);
		free(err);
		return -1;
	}
	if (registry_load(b) == -1 || incarnation_load(b) == -1 ||
	    kv_scan(b->store, "s", 1, load_session, b) != 0) {
		store_close(b);
		return -1;
	}
	log_info("session store: %u topics, %u sessions", b->ntopics, session_count(b));
	return 0;
}

unsigned
session_count(struct broker *b)
{
	struct session *s;
	unsigned n = 0;

	RB_FOREACH(s, session_tree, &b->sessions)
		n++;
	return n;
}

void
store_flush(struct broker *b)
{
	if (kv_pending(b->store) > 0 && kv_flush(b->store) == -1 &&
	    errno != ENOSPC && errno != EDQUOT)
		log_warn("the session store cannot be written");
}

void
store_close(struct broker *b)
{
	struct session *s, *sn;
	bool used = b->store_ev != NULL;

	if (used)
		sessions_put_dirty(b);	/* kv_close writes them */
	RB_FOREACH_SAFE(s, session_tree, &b->sessions, sn)
		session_free(s);
	routes_free(b);
	registry_free(b);
	durable_free(b);
	if (b->store == NULL)
		return;
	if (!used)
		kv_abandon(b->store);	/* never opened for use: write nothing */
	else if (kv_close(b->store) == -1)
		log_warnx("the session store did not close cleanly");
	b->store = NULL;
}

/* How long the session is kept offline: its own expiry, or
 * persistent_client_expiration (0: for ever). */
static uint64_t
session_lifetime(const struct session *s)
{
	if (s->expiry_ms != 0)
		return s->expiry_ms;
	return s->b->set.persistent_client_expiration ? s->b->set.persistent_client_expiration :
	    UINT64_MAX;
}

int64_t
session_deadline(int64_t since, uint64_t life)
{
	if (life > (uint64_t)INT64_MAX || (since > 0 && life > (uint64_t)(INT64_MAX - since)))
		return INT64_MAX;
	return since + (int64_t)life;
}

/* When an offline MQTT session is due to be removed (mono ms):
 * INT64_MAX for one that is not (online, a JSON-lines username, no
 * lifetime). */
static int64_t
session_due(const struct session *s)
{
	uint64_t life = session_lifetime(s);

	if (s->mode != MODE_MQTT || !s->persistent || s->cl != NULL || life == UINT64_MAX)
		return INT64_MAX;
	return session_deadline(s->offline_mono, life);
}

/* The end a client chose (its Session Expiry Interval) is routine; the
 * operator's persistent_client_expiration is worth a notice. */
static void
session_expire(struct session *s)
{
	if (s->expiry_ms)
		log_info("session %s: offline for longer than its session expiry interval;"
		    " removed", s->key);
	else
		log_notice("session %s: offline for longer than its persistent_client_expiration;"
		    " removed", s->key);
	session_delete(s);
}

bool
session_expire_due(struct session *s)
{
	if (mono_ms() < session_due(s))
		return false;
	session_expire(s);
	return true;
}

/* An MQTT session offline for longer than its lifetime (its Session
 * Expiry Interval, or persistent_client_expiration) is removed with its
 * cursors (JSON-lines usernames do not expire).  Called every second; it
 * looks at the sessions only when one may be due (next_expiry, mono ms:
 * 0 at start, lowered when a session goes offline).  The monotonic clock
 * counts, so that a step of the wall clock ends no session early. */
void
sessions_expire(struct broker *b)
{
	int64_t now = mono_ms(), next = INT64_MAX;
	struct session *s, *tmp;

	if (now < b->next_expiry)
		return;
	RB_FOREACH_SAFE(s, session_tree, &b->sessions, tmp) {
		int64_t due = session_due(s);

		if (due == INT64_MAX)
			continue;
		if (now < due) {
			if (due < next)
				next = due;
			continue;
		}
		session_expire(s);
	}
	b->next_expiry = next;
}

/* Deliveries only write the store (packet ids: no sync), and only a
 * synced journal is checkpointed: sync now and then, so that the journal
 * of a broker that only delivers stays bounded. */
void
store_maintain(struct broker *b)
{
	if (kv_pending(b->store) > 0 || kv_written(b->store) > kv_durable(b->store))
		(void)durable_write(b);
}
