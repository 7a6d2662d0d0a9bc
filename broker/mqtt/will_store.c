/* Wills in the master's store, from the CONNECT that brings one until it
 * is published or discarded, so that neither the master's death nor a
 * stop loses one (will.c keeps them in memory while it runs).
 *
 * Key: "w" SESSION -> the will, since when it waits (0: its connection is
 * open), whether the session outlives the connection, and whose it is for
 * the ACL (client id, user, listener block): will_rec.c.
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
#include "mqtt/will_rec.h"
#include "xmalloc.h"

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

bool
mqtt_will_store(const struct session *s, const struct mqtt_will *wl, int64_t since,
    bool stays)
{
	struct wbuf w;
	size_t klen;
	char *k = will_key(s->key, &klen);

	struct will_rec r = {
		.since = (uint64_t)since, .stays = stays, .qos = wl->qos, .retain = wl->retain,
		.delay_s = wl->delay_s, .has_expiry = wl->has_expiry, .expiry_s = wl->expiry_s,
		.topic = wl->topic, .payload = wl->payload, .len = wl->len, .props = wl->props,
		.props_len = wl->props_len, .origin = wl->origin,
		.client_id = session_client_id(s), .user = s->user, .listener = s->listener,
	};

	wbuf_init(&w);
	will_rec_encode(&w, &r);
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

/* The will of a record, the client's own again. */
static struct mqtt_will *
will_of(const struct will_rec *r)
{
	struct mqtt_will *wl = xcalloc(1, sizeof(*wl));

	wl->topic = xstrdup(r->topic);
	wl->payload = xmemdup(r->len > 0 ? r->payload : (const uint8_t *)"", r->len);
	wl->len = r->len;
	wl->qos = r->qos;
	wl->retain = r->retain;
	wl->props = r->props_len > 0 ? xmemdup(r->props, r->props_len) : NULL;
	wl->props_len = r->props_len;
	wl->delay_s = r->delay_s;
	wl->has_expiry = r->has_expiry;
	wl->expiry_s = r->expiry_s;
	wl->origin = xstrdup(r->origin);
	return wl;
}

/* Its session is back and outlives the connection: the rest of the
 * delay, in ms (0: over), or -1 when it is published now. */
static int64_t
delay_left(const struct will_rec *r, const struct session *s, int64_t now)
{
	int64_t since, end;

	if (s == NULL || s->mode != MODE_MQTT || !r->stays || r->delay_s == 0)
		return -1;
	since = r->since == 0 ? now : session_offline_wall(r->since, now);
	end = since + (int64_t)r->delay_s * 1000;
	return end > now ? end - now : 0;
}

/* true: the will waits for its session again */
static bool
restore_one(struct broker *b, const char *key, const struct will_rec *r)
{
	struct session *s = session_find(b, key);
	const struct auth *auth = s != NULL ? s->auth : listener_auth(b, r->listener);
	int64_t now = wall_ms(), left = delay_left(r, s, now);
	struct mqtt_will *wl = will_of(r);
	char who[128];

	snprintf(who, sizeof(who), "%.100s (before the restart)", r->client_id);
	if (left > 0 && mqtt_will_delay(s, wl, who, (uint64_t)left)) {
		mqtt_will_store(s, wl, r->since == 0 ? now : (int64_t)r->since, true);
		log_info("client %s: will to %s published in %llds unless the session resumes",
		    who, wl->topic, (long long)(left + 999) / 1000);
		return true;		/* wl is the session's */
	}
	if (!auth_may(auth, r->user, r->client_id, r->topic, AUTH_WRITE))
		mqtt_will_denied(b, who, r->topic, key);
	else
		mqtt_will_publish(b, who, wl, key);
	mqtt_will_free(wl);
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
	struct will_rec r;
	void *val;
	size_t vlen;

	if (kv_get(b->store, key, klen, &val, &vlen) == 1) {
		if (memchr(name, '\0', klen - 1) != NULL || will_rec_decode(val, vlen, &r) == -1) {
			log_warnx("session %.64s: a will's record of an unknown version or "
			    "unreadable; left in the store", name);
		} else {
			rs->waiting += restore_one(b, name, &r);
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
