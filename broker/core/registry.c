/* The topic registry: every topic ever used, kept in the master's store
 * ("t" + topic -> what is known of it), so that a wildcard filter finds the
 * topics that exist, also after a restart, and a new topic's cursors are
 * made for the filters that match it.
 *
 * What is known of a topic while no topicd runs for it (it is cold) is its
 * topicd's last IDLE: whether it keeps a retained message (and a copy of
 * a small one, retcopy.c), its bytes, and its subscribers with whether
 * each has something to get.  The record:
 *   ""                   nothing known (a topic of an older release)
 *   REC_LIVE             a topicd may be changing it: nothing known
 *   REC_COLD + IDLE body what its topicd said when it stopped
 *   REC_GONE + IDLE body being forgotten (forget.c): its topicd deletes
 *                        the store, then the record goes; one found at
 *                        start is started once, what its store may keep
 *                        for sessions that changed dropped (forget_prune),
 *                        to be forgotten again
 * REC_LIVE is durable before a started topicd is sent anything that
 * changes it, so that a summary read after a crash is never stale.  A new
 * topic is REC_LIVE from the start: the cursors its creation gives
 * (sessions_topic_created) wait in the master until its topicd stores
 * them, and a topic found REC_LIVE after a restart gives them again when
 * it is first used (topic_open). */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/topictree.h"
#include "kvstore.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

#define REC_LIVE	1
#define REC_COLD	2
#define REC_GONE	3

/* The sequence number past every number of every topic forgotten: a
 * new topic's first (struct rec_config's seq_floor). */
#define SEQ_FLOOR_KEY	"f"

struct registry {
	struct topictree *names;	/* a tree of levels, each name's value its
					 * struct topic_info: a filter walks only
					 * the branches it can match */
};

static void
info_clear(struct topic_info *ti)
{
	for (size_t i = 0; i < ti->nsubs; i++)
		free(ti->subs[i].key);
	free(ti->subs);
	ti->subs = NULL;
	ti->nsubs = 0;
	ti->known = false;
	ti->retained = false;
	ti->subs_unknown = false;
	ti->staged = false;
	free(ti->copy);
	ti->copy = NULL;
	ti->copy_len = 0;
	free(ti->gone_idle);
	ti->gone_idle = NULL;
	ti->gone_len = 0;
}

static void
info_free(void *p)
{
	struct topic_info *ti = p;

	info_clear(ti);
	free(ti);
}

void
registry_init(struct broker *b)
{
	b->registry = xcalloc(1, sizeof(*b->registry));
	b->registry->names = topictree_new();
	b->ntopics = 0;
}

void
registry_free(struct broker *b)
{
	if (b->registry == NULL)
		return;
	topictree_free(b->registry->names, info_free);
	free(b->registry);
	b->registry = NULL;
}

struct topic_info *
registry_info(struct broker *b, const char *topic)
{
	void *v = NULL;

	return topictree_find(b->registry->names, topic, &v) ? v : NULL;
}

bool
registry_known(struct broker *b, const char *topic)
{
	return registry_info(b, topic) != NULL;
}

static struct topic_info *
remember(struct broker *b, const char *topic)
{
	struct topic_info *ti = xcalloc(1, sizeof(*ti));
	bool added = false;
	enum topic_err e = topictree_add(b->registry->names, topic, ti, &added);

	if (e != TOPIC_OK || !added) {
		if (e != TOPIC_OK)
			log_warnx("topic %s: not a topic name (%s); left out of the registry",
			    topic, topic_strerror(e));
		free(ti);
		return NULL;
	}
	b->ntopics++;
	return ti;
}

static void
put_record(struct broker *b, const char *topic, const void *val, size_t vlen)
{
	size_t klen;
	char *k;

	klen = (size_t)xasprintf(&k, "t%s", topic);
	if (kv_put(b->store, k, klen, val, vlen) == -1)
		fatalx("topic %s: the session store refuses it", topic);
	free(k);
}

static int
sub_cmp(const void *a, const void *b)
{
	return strcmp(((const struct topic_sub *)a)->key, ((const struct topic_sub *)b)->key);
}

/* The summary of an IDLE (its list checked by dec_idle). */
static void
info_set(struct broker *b, struct topic_info *ti, const struct rec_idle *r)
{
	const char *key;
	size_t pos = 0;
	bool backlog;

	info_clear(ti);
	ti->known = true;
	ti->retained = (r->flags & IDLE_RETAINED) != 0;
	ti->subs_unknown = (r->flags & IDLE_SUBS_UNKNOWN) != 0;
	ti->staged = (r->flags & IDLE_STAGED) != 0;
	if (r->flags & IDLE_RETAINED_COPY) {
		ti->copy = xmemdup(r->copy, r->copy_len);
		ti->copy_len = r->copy_len;
	}
	ti->subs = r->nsubs ? xreallocarray(NULL, r->nsubs, sizeof(*ti->subs)) : NULL;
	while (ti->nsubs < r->nsubs && idle_next_sub(r, &pos, &key, &backlog)) {
		ti->subs[ti->nsubs].key = xstrdup(key);
		ti->subs[ti->nsubs++].backlog = backlog;
	}
	if (ti->nsubs > 1)
		qsort(ti->subs, ti->nsubs, sizeof(*ti->subs), sub_cmp);
	registry_set_bytes(b, ti, r->bytes);
}

uint64_t
registry_add(struct broker *b, const char *topic)
{
	struct topic_info *ti = remember(b, topic);
	uint8_t rec = REC_LIVE;

	put_record(b, topic, &rec, 1);
	if (ti != NULL)
		ti->known = true;	/* new: no message, no subscriber */
	return durable_write(b);
}

/* Was the topic live when the last master ended?  Asked once, when the
 * topic is first used. */
bool
registry_take_recreate(struct broker *b, const char *topic)
{
	struct topic_info *ti = registry_info(b, topic);
	bool was = ti != NULL && ti->recreate;

	if (ti != NULL)
		ti->recreate = false;
	return was;
}

uint64_t
registry_live(struct broker *b, const char *topic)
{
	struct topic_info *ti = registry_info(b, topic);
	uint8_t rec = REC_LIVE;

	if (ti != NULL) {
		info_clear(ti);
		ti->gone = false;	/* a topicd of it runs again */
	}
	put_record(b, topic, &rec, 1);
	return durable_write(b);
}

void
registry_cold(struct broker *b, const char *topic, const uint8_t *idle, size_t len)
{
	struct topic_info *ti = registry_info(b, topic);
	struct rec_idle r;
	struct wbuf w;

	if (ti == NULL || dec_idle(idle, len, &r) == -1)
		return;
	info_set(b, ti, &r);
	wbuf_init(&w);
	put_u8(&w, REC_COLD);
	put_raw(&w, idle, len);
	put_record(b, topic, w.data, w.len);
	wbuf_free(&w);
	(void)durable_write(b);		/* nobody waits: lost, it says "unknown" */
}

void
registry_set_bytes(struct broker *b, struct topic_info *ti, uint64_t bytes)
{
	b->stored_bytes += bytes - ti->bytes;	/* modulo 2^64: a decrease too */
	ti->bytes = bytes;
}

enum sub_known
topic_info_sub(const struct topic_info *ti, const char *subkey)
{
	struct topic_sub key = { .key = (char *)subkey }, *s;

	if (ti == NULL || !ti->known || ti->subs_unknown)
		return SUB_UNKNOWN;
	if (ti->nsubs == 0)
		return SUB_ABSENT;
	s = bsearch(&key, ti->subs, ti->nsubs, sizeof(*ti->subs), sub_cmp);
	return s == NULL ? SUB_ABSENT : s->backlog ? SUB_BACKLOG : SUB_CAUGHT_UP;
}

/* The topic is being forgotten (its topicd deletes its store once this is
 * durable: the ticket); its sequence numbers are never given again.  It
 * stays known, nothing known of it, until its store is gone: a filter
 * still finds it (an UNSUBSCRIBE reaches a store that a death kept; a
 * SUBSCRIBE passes it by, registry_forgetting), and used meanwhile (a
 * publish) it is made again (recreate: every matching session gets its
 * cursor, as in a new store). */
uint64_t
registry_forget(struct broker *b, const char *topic, const uint8_t *idle, size_t len,
    uint64_t next_seq)
{
	struct topic_info *ti = registry_info(b, topic);
	struct wbuf w;

	if (ti != NULL) {
		registry_set_bytes(b, ti, 0);
		info_clear(ti);
		ti->recreate = ti->gone = true;
	}
	wbuf_init(&w);
	put_u8(&w, REC_GONE);
	put_raw(&w, idle, len);
	put_record(b, topic, w.data, w.len);
	wbuf_free(&w);
	if (next_seq > b->seq_floor) {
		b->seq_floor = next_seq;
		wbuf_init(&w);
		put_u64(&w, b->seq_floor);
		if (kv_put(b->store, SEQ_FLOOR_KEY, strlen(SEQ_FLOOR_KEY), w.data, w.len) == -1)
			fatalx("topic %s: the session store refuses the sequence floor", topic);
		wbuf_free(&w);
	}
	return durable_write(b);
}

/* Being forgotten, and not used again since (no entry in the table). */
bool
registry_forgetting(struct broker *b, const char *topic)
{
	const struct topic_info *ti = registry_info(b, topic);

	return ti != NULL && ti->gone && topic_find(b, topic) == NULL;
}

/* Its store is deleted: the topic leaves the registry, unless it came
 * back meanwhile.  True if it left. */
bool
registry_forgotten(struct broker *b, const char *topic)
{
	struct topic_info *ti = registry_info(b, topic);
	size_t klen;
	char *k;

	if (!registry_forgetting(b, topic))
		return false;
	(void)topictree_remove(b->registry->names, topic, NULL);
	info_free(ti);
	b->ntopics--;
	klen = (size_t)xasprintf(&k, "t%s", topic);
	if (kv_del(b->store, k, klen) == -1)
		fatalx("topic %s: the session store refuses it", topic);
	free(k);
	(void)durable_write(b);		/* lost, the topic is forgotten again */
	return true;
}

static int
load_topic(const void *key, size_t klen, void *arg)
{
	struct broker *b = arg;
	char *name = xmemdup((const char *)key + 1, klen - 1);
	struct topic_info *ti = remember(b, name);
	struct rec_idle r;
	void *val = NULL;
	size_t vlen = 0;

	if (ti != NULL && kv_get(b->store, key, klen, &val, &vlen) == 1 && vlen > 1 &&
	    ((uint8_t *)val)[0] == REC_COLD) {
		if (dec_idle((uint8_t *)val + 1, vlen - 1, &r) == 0)
			info_set(b, ti, &r);
		else
			log_warnx("topic %s: its registry record does not read; what it keeps is "
			    "found out when it starts", name);
	} else if (ti != NULL && vlen == 1 && ((uint8_t *)val)[0] == REC_LIVE)
		ti->recreate = true;
	else if (ti != NULL && vlen >= 1 && ((uint8_t *)val)[0] == REC_GONE) {
		ti->recreate = ti->gone = true;
		ti->gone_len = vlen - 1;
		ti->gone_idle = ti->gone_len ? xmemdup((uint8_t *)val + 1, ti->gone_len) : NULL;
	}
	free(val);
	free(name);
	return 0;
}

static int
load_seq_floor(struct broker *b)
{
	void *val = NULL;
	size_t vlen = 0;
	struct rbuf r;
	int rc;

	b->seq_floor = 0;
	if ((rc = kv_get(b->store, SEQ_FLOOR_KEY, strlen(SEQ_FLOOR_KEY), &val, &vlen)) != 1)
		return rc;
	rbuf_init(&r, val, vlen);
	get_u64(&r, &b->seq_floor);
	rc = get_end(&r);
	free(val);
	if (rc == -1)
		log_warnx("the session store's sequence floor does not read");
	return rc;
}

int
registry_load(struct broker *b)
{
	if (load_seq_floor(b) == -1)
		return -1;
	return kv_scan(b->store, "t", 1, load_topic, b) == 0 ? 0 : -1;
}

struct names {
	char	**v;
	size_t	  n, cap;
};

static void
start_staged(struct broker *b, const char *topic, void *arg)
{
	struct topic_info *ti = registry_info(b, topic);
	const char *why;
	struct child *c;

	(void)arg;
	if (ti == NULL || !(ti->gone || (ti->known && ti->staged)))
		return;
	if ((c = topic_open(b, topic, &why)) == NULL) {
		log_warnx("topic %s: cannot start it to %s: %s", topic, ti->gone ?
		    "finish forgetting it" : "release what was staged there", why);
		return;
	}
	if (ti->gone) {
		/* Taken: a start it causes clears what is known of the topic. */
		uint8_t *idle = ti->gone_idle;
		size_t len = ti->gone_len;

		ti->gone_idle = NULL;
		ti->gone_len = 0;
		forget_prune(c, idle, len);
		free(idle);
	}
	child_wake(c);
}

/* At start: the cold topics where connections of the last master staged
 * messages (PUBREC'd, never released by PUBREL) are started once, so that
 * their topicds release them (config_boot) without waiting for the next
 * publish; so are those the last master was forgetting, so that they go
 * cold, and are forgotten, again. */
void
registry_start_staged(struct broker *b)
{
	registry_match(b, "#", start_staged, NULL);
}

static void
collect(const char *name, void *value, void *arg)
{
	struct names *ns = arg;

	(void)value;
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 16;
		ns->v = xreallocarray(ns->v, ns->cap, sizeof(*ns->v));
	}
	ns->v[ns->n++] = xstrdup(name);
}

/* The names are collected first: fn may open topics, which adds to the
 * registry. */
void
registry_match(struct broker *b, const char *filter, topic_fn *fn, void *arg)
{
	struct names ns = { NULL, 0, 0 };

	(void)topictree_match(b->registry->names, filter, collect, &ns);
	for (size_t i = 0; i < ns.n; i++) {
		fn(b, ns.v[i], arg);
		free(ns.v[i]);
	}
	free(ns.v);
}
