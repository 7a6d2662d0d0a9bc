/* Wills in the master's store, from the CONNECT that brings one until it
 * is published or discarded, so that neither the master's death nor a
 * stop loses one (will.c keeps them in memory while it runs).
 *
 * Key: "w" SESSION -> version, waiting since (wall ms; 0 while its
 * connection is open), whether the session outlives the connection, the
 * will (QoS, retain, Will Delay Interval, Message Expiry Interval, topic,
 * payload, properties, origin), and whose it is for the ACL (client id,
 * user, listener block).
 *
 * A record goes once its will is stored by its topicd (DONE), so that a
 * will is published at least once: a master killed in between publishes
 * it again at its next start.  A stop leaves the records of the wills it
 * would publish (will.c).  Every change is written at once (the page
 * cache), not when the loop next flushes the store: a cancelled will's
 * record must not outlive its cancel in a SIGKILL.
 *
 * At the next start, before a client is accepted, each record is a
 * connection that ended without DISCONNECT, or a will that was waiting:
 * its will is published, or, when its session is back and outlives the
 * connection, waits for the rest of its delay (all of it for a connection
 * that was open: when the master died is not known). */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "clock.h"
#include "kvstore.h"
#include "log.h"
#include "mqtt/mqtt_int.h"
#include "xmalloc.h"

#define WILL_RECORD_VERSION 1

/* A record, read: the will and what was kept with it. */
struct will_rec {
	struct mqtt_will wl;		/* points into the record's bytes */
	uint64_t	 since;
	uint8_t		 stays;
	const char	*client_id;
	const char	*user;		/* NULL: anonymous */
	const char	*listener;	/* NULL: the broker's auth */
};

/* Wills sent to their topicd, waiting to be stored: by request. */
struct sent_will {
	TAILQ_ENTRY(sent_will) entry;
	uint64_t	 req;
	char		*key;
};
static TAILQ_HEAD(, sent_will) sent_wills = TAILQ_HEAD_INITIALIZER(sent_wills);

static char *
will_key(const char *session_key, size_t *len)
{
	char *k;

	*len = (size_t)xasprintf(&k, "w%s", session_key);
	return k;
}

static void
forget_sent(const char *session_key)
{
	struct sent_will *sw, *next;

	TAILQ_FOREACH_SAFE(sw, &sent_wills, entry, next) {
		if (strcmp(sw->key, session_key) == 0) {
			TAILQ_REMOVE(&sent_wills, sw, entry);
			free(sw->key);
			free(sw);
		}
	}
}

static void
put_opt_str(struct wbuf *w, const char *s)
{
	put_u8(w, s != NULL);
	if (s != NULL)
		put_str(w, s);
}

bool
mqtt_will_store(const struct session *s, const struct mqtt_will *wl, int64_t since,
    bool stays)
{
	struct wbuf w;
	size_t klen;
	char *k = will_key(s->key, &klen);

	wbuf_init(&w);
	put_u8(&w, WILL_RECORD_VERSION);
	put_u64(&w, (uint64_t)since);
	put_u8(&w, stays);
	put_u8(&w, wl->qos);
	put_u8(&w, wl->retain);
	put_u32(&w, wl->delay_s);
	put_u8(&w, wl->has_expiry);
	put_u32(&w, wl->expiry_s);
	put_str(&w, wl->topic);
	put_bytes(&w, wl->payload, wl->len);
	put_bytes(&w, wl->props, wl->props_len);
	put_str(&w, wl->origin);
	put_str(&w, session_client_id(s));
	put_opt_str(&w, s->user);
	put_opt_str(&w, s->listener);
	forget_sent(s->key);		/* that one's DONE must not delete this */
	if (mqtt_record(s, k, klen, &w, true)) {
		store_flush(s->b);
		return true;
	}
	log_warn("session %s: its will is not in the store: the master's death would lose it",
	    s->key);
	return false;
}

void
mqtt_will_unstore(struct broker *b, const char *session_key)
{
	size_t klen;
	char *k = will_key(session_key, &klen);

	forget_sent(session_key);
	if (kv_del(b->store, k, klen) == -1)
		log_warn("session %s: its will's record stays in the store", session_key);
	else
		store_flush(b);
	free(k);
}

void
mqtt_will_sent(const char *session_key, uint64_t req)
{
	struct sent_will *sw = xcalloc(1, sizeof(*sw));

	sw->req = req;
	sw->key = xstrdup(session_key);
	TAILQ_INSERT_TAIL(&sent_wills, sw, entry);
}

void
mqtt_will_stored(struct child *c, struct held *h, const struct rec_done *d)
{
	struct sent_will *sw;
	char *key;

	TAILQ_FOREACH(sw, &sent_wills, entry)
		if (sw->req == h->arg)
			break;
	if (sw == NULL)
		return;			/* a newer will replaced its record */
	key = sw->key;
	TAILQ_REMOVE(&sent_wills, sw, entry);
	free(sw);
	if (d->status == ST_STORE)
		log_warnx("topic %s: the will of session %s was not stored: it is published "
		    "again at the next start", c->topic, key);
	else {
		log_debug("topic %s: the will of session %s is stored: its record goes", c->topic,
		    key);
		mqtt_will_unstore(c->b, key);
	}
	free(key);
}

void
mqtt_wills_free(void)
{
	struct sent_will *sw;

	while ((sw = TAILQ_FIRST(&sent_wills)) != NULL) {
		TAILQ_REMOVE(&sent_wills, sw, entry);
		free(sw->key);
		free(sw);
	}
}

static int
get_opt_str(struct rbuf *r, const char **s)
{
	uint8_t has = 0;

	*s = NULL;
	if (get_u8(r, &has) == -1)
		return -1;
	return has ? get_str(r, s) : 0;
}

static int
decode_will(const void *val, size_t len, struct will_rec *w)
{
	struct rbuf r;
	uint8_t version, retain, has_expiry;
	const uint8_t *props;
	const char *topic, *origin;

	memset(w, 0, sizeof(*w));
	rbuf_init(&r, val, len);
	get_u8(&r, &version);
	if (r.err || version != WILL_RECORD_VERSION)
		return -1;
	get_u64(&r, &w->since);
	get_u8(&r, &w->stays);
	get_u8(&r, &w->wl.qos);
	get_u8(&r, &retain);
	get_u32(&r, &w->wl.delay_s);
	get_u8(&r, &has_expiry);
	get_u32(&r, &w->wl.expiry_s);
	get_str(&r, &topic);
	get_bytes(&r, (const uint8_t **)&w->wl.payload, &w->wl.len);
	get_bytes(&r, &props, &w->wl.props_len);
	get_str(&r, &origin);
	get_str(&r, &w->client_id);
	get_opt_str(&r, &w->user);
	get_opt_str(&r, &w->listener);
	if (get_end(&r) == -1 || w->wl.qos > 2)
		return -1;
	w->wl.retain = retain != 0;
	w->wl.has_expiry = has_expiry != 0;
	w->wl.topic = (char *)topic;
	w->wl.origin = (char *)origin;
	w->wl.props = w->wl.props_len > 0 ? (uint8_t *)props : NULL;
	return 0;
}

/* The will as the client's own, to keep past the record's bytes. */
static struct mqtt_will *
will_dup(const struct mqtt_will *src)
{
	struct mqtt_will *wl = xcalloc(1, sizeof(*wl));

	*wl = *src;
	wl->topic = xstrdup(src->topic);
	wl->payload = xmemdup(src->len > 0 ? src->payload : (const uint8_t *)"", src->len);
	wl->props = src->props_len > 0 ? xmemdup(src->props, src->props_len) : NULL;
	wl->origin = xstrdup(src->origin);
	return wl;
}

/* Its session is back and outlives the connection: the rest of the
 * delay, in ms (0: over), or -1 when it is published now. */
static int64_t
delay_left(const struct will_rec *w, const struct session *s, int64_t now)
{
	int64_t since;

	if (s == NULL || s->mode != MODE_MQTT || !w->stays || w->wl.delay_s == 0)
		return -1;
	since = w->since == 0 ? now : session_offline_wall(w->since, now);
	return since + (int64_t)w->wl.delay_s * 1000 > now ?
	    since + (int64_t)w->wl.delay_s * 1000 - now : 0;
}

/* true: the will waits for its session again */
static bool
restore_one(struct broker *b, const char *key, const struct will_rec *w)
{
	struct session *s = session_find(b, key);
	const struct auth *auth = s != NULL ? s->auth : listener_auth(b, w->listener);
	int64_t now = wall_ms(), left = delay_left(w, s, now);
	struct mqtt_will *wl;
	char who[128];

	snprintf(who, sizeof(who), "%.100s (before the restart)", w->client_id);
	if (left > 0) {
		wl = will_dup(&w->wl);
		if (mqtt_will_delay(s, wl, who, (uint64_t)left)) {
			mqtt_will_store(s, wl, w->since == 0 ? now : (int64_t)w->since, true);
			log_info("client %s: will to %s published in %llds unless the session resumes",
			    who, wl->topic, (long long)(left + 999) / 1000);
			return true;
		}
		mqtt_will_free(wl);
	}
	if (!auth_may(auth, w->user, w->client_id, w->wl.topic, AUTH_WRITE))
		mqtt_will_denied(b, who, w->wl.topic, key);
	else
		mqtt_will_publish(b, who, &w->wl, key);
	return false;
}

struct restore {
	struct broker	*b;
	size_t		 n, waiting;
};

static int
restore_record(const void *key, size_t klen, void *arg)
{
	struct restore *rs = arg;
	struct broker *b = rs->b;
	char *name = xmemdup((const char *)key + 1, klen - 1);
	struct will_rec w;
	void *val;
	size_t vlen;

	if (kv_get(b->store, key, klen, &val, &vlen) == 1) {
		if (memchr(name, '\0', klen - 1) != NULL || decode_will(val, vlen, &w) == -1) {
			log_warnx("session %.64s: a will's record of an unknown version or "
			    "unreadable; left in the store", name);
		} else {
			rs->waiting += restore_one(b, name, &w);
			rs->n++;
		}
		free(val);
	}
	free(name);
	return 0;
}

void
mqtt_wills_restore(struct broker *b)
{
	struct restore r = { b, 0, 0 };

	(void)kv_each(b->store, "w", 1, restore_record, &r);	/* it deletes */
	if (r.n > 0)
		log_notice("wills kept from before the start: %zu published (or denied), %zu "
		    "waiting for their sessions", r.n - r.waiting, r.waiting);
}
