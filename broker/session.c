/* Sessions and the topic registry, kept in the master's own store
 * (DATA/sessions.*).  A session is a subscriber identity: a JSON-lines
 * username ("j/NAME") or an MQTT client id ("m/ID", or "c/BOOT/ID" for a
 * clean session that lives only as long as its connection).  It owns
 * topic filters; every known topic a filter matches holds a durable
 * cursor for it in its topicd.
 *
 * Keys: "s" + session key -> version, offline since, filters;
 *       "t" + topic       -> "" (every topic ever used, for wildcards). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "clock.h"
#include "kvstore.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

#define SESSION_RECORD_VERSION 2

static int
session_cmp(struct session *a, struct session *b)
{
	return strcmp(a->key, b->key);
}

static int
tname_cmp(struct tname *a, struct tname *b)
{
	return strcmp(a->name, b->name);
}

RB_GENERATE(session_tree, session, entry, session_cmp)
RB_GENERATE(tname_tree, tname, entry, tname_cmp)

static char *
kv_key(char kind, const char *name, size_t *len)
{
	char *k;

	*len = (size_t)xasprintf(&k, "%c%s", kind, name);
	return k;
}

struct session *
session_find(struct broker *b, const char *key)
{
	struct session k = { .key = (char *)key };

	return RB_FIND(session_tree, &b->sessions, &k);
}

struct session *
session_new(struct broker *b, const char *key, uint8_t mode, bool persistent)
{
	struct session *s = xcalloc(1, sizeof(*s));

	s->b = b;
	s->key = xstrdup(key);
	s->mode = mode;
	s->persistent = persistent;
	s->offline_since = wall_ms();
	s->incarnation = (uint64_t)s->offline_since;
	RB_INIT(&s->out);
	RB_INSERT(session_tree, &b->sessions, s);
	return s;
}

/* Writes the session record; returns the ticket that makes it durable
 * (0 for a session that is not stored): the SUBACK or OK that depends on
 * it waits for that (client_gate). */
uint64_t
session_save(struct session *s)
{
	struct wbuf w;
	size_t klen;
	char *k;

	if (!s->persistent)
		return 0;
	wbuf_init(&w);
	put_u8(&w, SESSION_RECORD_VERSION);
	put_u64(&w, (uint64_t)s->offline_since);
	put_u64(&w, s->incarnation);
	put_u32(&w, (uint32_t)s->nfilters);
	for (size_t i = 0; i < s->nfilters; i++) {
		put_str(&w, s->filters[i].filter);
		put_u8(&w, s->filters[i].qos);
	}
	k = kv_key('s', s->key, &klen);
	if (kv_put(s->b->store, k, klen, w.data, w.len) == -1)
		fatalx("session %s: the session store refuses it", s->key);
	free(k);
	wbuf_free(&w);
	return durable_write(s->b);
}

static void
filters_free(struct session *s)
{
	for (size_t i = 0; i < s->nfilters; i++)
		free(s->filters[i].filter);
	free(s->filters);
	s->filters = NULL;
	s->nfilters = 0;
}

/* "i" KEY "/" PID -> topic: QoS 2 messages the session had PUBREC'd. */
struct staged_scan {
	struct broker	*b;
	char		**keys;
	size_t		 n;
};

static int
collect_key(const void *key, size_t klen, void *arg)
{
	struct staged_scan *ss = arg;

	ss->keys = xreallocarray(ss->keys, ss->n + 1, sizeof(char *));
	ss->keys[ss->n++] = xmemdup(key, klen);
	return 0;
}

/* A session that ends for good releases what it staged (it was told it is
 * stored) and forgets its QoS 2 records. */
static void
release_staged(struct session *s)
{
	struct staged_scan ss = { s->b, NULL, 0 };
	struct rec_release_owner r;
	char *prefix, *owner;
	size_t plen;

	plen = (size_t)xasprintf(&prefix, "i%s/", s->key);
	xasprintf(&owner, "%s/%llx", s->key, (unsigned long long)s->incarnation);
	kv_scan(s->b->store, prefix, plen, collect_key, &ss);
	for (size_t i = 0; i < ss.n; i++) {
		void *topic = NULL;
		size_t tlen = 0;
		const char *why;
		struct child *c;

		if (kv_get(s->b->store, ss.keys[i], strlen(ss.keys[i]), &topic, &tlen) == 1 &&
		    (c = child_get(s->b, topic, true, &why)) != NULL) {
			struct wbuf w;

			r.req = broker_req(s->b);
			r.owner = owner;
			wbuf_init(&w);
			enc_release_owner(&w, &r);
			struct held *h = held_new(HELD_NOTE, IPC_RELEASE_OWNER, r.req, &w);
			wbuf_free(&w);
			if (child_submit(c, h, &why) == -1)
				held_free(h);
		}
		free(topic);
		kv_del(s->b->store, ss.keys[i], strlen(ss.keys[i]));
		free(ss.keys[i]);
	}
	free(ss.keys);
	free(prefix);
	free(owner);
}

/* Forgets the session: its record, and its cursors in every topic. */
void
session_delete(struct session *s)
{
	struct broker *b = s->b;
	struct tname *t;
	size_t klen;
	char *k;

	RB_FOREACH(t, tname_tree, &b->topics) {
		struct child *c;
		const char *why;

		if (session_qos(s, t->name) < 0 || (c = child_get(b, t->name, true, &why)) == NULL)
			continue;
		topic_unsub(c, s->key, true);
	}
	mqtt_session_clear(s, true);
	if (s->persistent) {
		release_staged(s);
		k = kv_key('s', s->key, &klen);
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
	mqtt_session_clear(s, false);
	filters_free(s);
	free(s->key);
	free(s);
}

/* Highest QoS among the filters that match topic; -1 if none does. */
int
session_qos(const struct session *s, const char *topic)
{
	int q = -1;

	for (size_t i = 0; i < s->nfilters; i++)
		if (topic_matches(s->filters[i].filter, topic) && s->filters[i].qos > q)
			q = s->filters[i].qos;
	return q;
}

/* Adds or updates a filter; returns true if anything changed. */
bool
session_add_filter(struct session *s, const char *filter, uint8_t qos)
{
	for (size_t i = 0; i < s->nfilters; i++) {
		if (strcmp(s->filters[i].filter, filter) == 0) {
			bool changed = s->filters[i].qos != qos;

			s->filters[i].qos = qos;
			return changed;
		}
	}
	s->filters = xreallocarray(s->filters, s->nfilters + 1, sizeof(*s->filters));
	s->filters[s->nfilters].filter = xstrdup(filter);
	s->filters[s->nfilters].qos = qos;
	s->nfilters++;
	return true;
}

bool
session_remove_filter(struct session *s, const char *filter)
{
	for (size_t i = 0; i < s->nfilters; i++) {
		if (strcmp(s->filters[i].filter, filter) == 0) {
			free(s->filters[i].filter);
			s->filters[i] = s->filters[--s->nfilters];
			return true;
		}
	}
	return false;
}

bool
topic_known(struct broker *b, const char *topic)
{
	struct tname k = { .name = (char *)topic };

	return RB_FIND(tname_tree, &b->topics, &k) != NULL;
}

static void
topic_add(struct broker *b, const char *topic)
{
	struct tname *t = xcalloc(1, sizeof(*t));

	t->name = xstrdup(topic);
	RB_INSERT(tname_tree, &b->topics, t);
	b->ntopics++;
}

/* A topic used for the first time: remembered durably, so that wildcard
 * filters find it after a restart too.  Returns the ticket that makes it
 * durable; nothing is stored in the topic before (held.c). */
uint64_t
topic_register(struct broker *b, const char *topic)
{
	size_t klen;
	char *k = kv_key('t', topic, &klen);

	if (kv_put(b->store, k, klen, "", 0) == -1)
		fatalx("topic %s: the session store refuses it", topic);
	free(k);
	topic_add(b, topic);
	return durable_write(b);
}

static int
load_topic(const void *key, size_t klen, void *arg)
{
	struct broker *b = arg;
	char *name = xmemdup((const char *)key + 1, klen - 1);

	topic_add(b, name);
	free(name);
	return 0;
}

static int
decode_session(struct session *s, const void *val, size_t len)
{
	struct rbuf r;
	uint8_t version, qos;
	uint64_t since;
	uint32_t n;
	const char *f;

	rbuf_init(&r, val, len);
	get_u8(&r, &version);
	get_u64(&r, &since);
	get_u64(&r, &s->incarnation);
	get_u32(&r, &n);
	if (r.err || version != SESSION_RECORD_VERSION)
		return -1;
	s->offline_since = (int64_t)since;
	for (uint32_t i = 0; i < n; i++) {
		if (get_str(&r, &f) == -1 || get_u8(&r, &qos) == -1)
			return -1;
		session_add_filter(s, f, qos);
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
		s = session_new(b, name, strncmp(name, "j/", 2) == 0 ? MODE_JSON : MODE_MQTT, true);
		if (decode_session(s, val, len) == -1) {
			log_errx("session %s: a record of an unknown version or unreadable in %s/"
			    "sessions: the session store is left as it is", name, b->set.data_dir);
			session_free(s);
			free(val);
			free(name);
			return -1;
		}
		free(val);
	}
	free(name);
	return 0;
}

/* The session store cannot be opened: its files are not ours (err, from
 * kv_open(), ends with strerror()), or they are damaged. */
static void
log_store_error(const char *dir, const char *err)
{
	if (strstr(err, strerror(EACCES)) != NULL || strstr(err, strerror(EPERM)) != NULL ||
	    strstr(err, strerror(EROFS)) != NULL)
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
	RB_INIT(&b->topics);
	b->store = kv_open(b->set.data_dir, "sessions", b->set.checkpoint_size, &err);
	if (b->store == NULL) {
		log_store_error(b->set.data_dir, err ? err : "?");
		free(err);
		return -1;
	}
	kv_scan(b->store, "t", 1, load_topic, b);
	if (kv_scan(b->store, "s", 1, load_session, b) != 0) {
		store_close(b);
		return -1;
	}
	mqtt_load_outflights(b);
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
store_close(struct broker *b)
{
	struct session *s, *sn;
	struct tname *t, *tn;

	RB_FOREACH_SAFE(s, session_tree, &b->sessions, sn)
		session_free(s);
	RB_FOREACH_SAFE(t, tname_tree, &b->topics, tn) {
		RB_REMOVE(tname_tree, &b->topics, t);
		free(t->name);
		free(t);
	}
	bool used = b->store_ev != NULL;

	durable_free(b);
	if (!used)
		kv_abandon(b->store);	/* never opened for use: write nothing */
	else if (kv_close(b->store) == -1)
		log_warnx("the session store did not close cleanly");
	b->store = NULL;
}

/* The attach settings of a session for one topic. */
static void
attach_settings(const struct session *s, int qos, struct rec_attach *a)
{
	memset(a, 0, sizeof(*a));
	a->subkey = s->key;
	a->mode = s->mode;
	a->qos = s->mode == MODE_JSON ? 2 : (uint8_t)qos;
	a->window = s->mode == MODE_JSON ? 1 : (uint16_t)s->b->set.max_inflight_messages;
	a->flags = AF_NEW_ONLY;
}

/* Brings one topic in line with the session's filters: attached (online),
 * registered (offline persistent), or unsubscribed when nothing matches
 * any more.  retained: a SUBSCRIBE asks for the retained message. */
void
session_sync_topic(struct session *s, struct child *c, bool retained)
{
	int q = session_qos(s, c->topic);
	struct rec_attach a;

	if (q < 0) {
		if (s->cl != NULL) {
			struct attachment *at = attach_find(s->cl, c);

			if (at == NULL)
				return;
			attach_drop(at, s->persistent);
		}
		topic_unsub(c, s->key, s->mode == MODE_MQTT);
		if (s->mode == MODE_MQTT)
			mqtt_forget_topic(s, c->topic);
		return;
	}
	attach_settings(s, q, &a);
	if (retained)
		a.flags |= AF_RETAINED;
	if (s->cl != NULL)
		attach_topic(s->cl, c, &a);
	else if (s->persistent)
		attach_offline(c, &a);
}

/* Every known topic that matches the session's filters, plus the exact
 * filters' own topics (created on first use). */
void
session_attach_all(struct session *s, const char *only_filter, bool retained)
{
	struct broker *b = s->b;
	struct tname *t, *tn;
	const char *why;

	for (size_t i = 0; i < s->nfilters; i++) {
		const char *f = s->filters[i].filter;

		if (only_filter != NULL && strcmp(f, only_filter) != 0)
			continue;
		if (strpbrk(f, "+#") == NULL && f[0] != '$' && !topic_known(b, f) &&
		    child_get(b, f, true, &why) == NULL)
			log_warnx("session %s: cannot subscribe to %s: %s", s->key, f, why);
	}
	RB_FOREACH_SAFE(t, tname_tree, &b->topics, tn) {
		struct child *c;

		if (only_filter != NULL ? !topic_matches(only_filter, t->name) :
		    session_qos(s, t->name) < 0)
			continue;
		if ((c = child_get(b, t->name, true, &why)) != NULL)
			session_sync_topic(s, c, retained);
	}
}

/* A new topic: every session whose filters match it gets its cursor. */
void
sessions_topic_created(struct broker *b, struct child *c)
{
	struct session *s;

	RB_FOREACH(s, session_tree, &b->sessions)
		if (session_qos(s, c->topic) >= 0 && (s->cl != NULL || s->persistent))
			session_sync_topic(s, c, false);
}

/* persistent_client_expiration: an MQTT session offline for longer is
 * removed with its cursors (JSON-lines usernames do not expire). */
void
sessions_expire(struct broker *b)
{
	uint64_t max = b->set.persistent_client_expiration;
	int64_t now = wall_ms();
	struct session *s, *next;

	if (max == 0)
		return;
	RB_FOREACH_SAFE(s, session_tree, &b->sessions, next) {
		if (s->mode != MODE_MQTT || !s->persistent || s->cl != NULL ||
		    now - s->offline_since < (int64_t)max)
			continue;
		log_notice("session %s: offline for longer than persistent_client_expiration; "
		    "removed", s->key);
		session_delete(s);
	}
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
