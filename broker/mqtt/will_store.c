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
 * At the next start, before a client is accepted, each record is a
 * connection that ended without DISCONNECT, or a will that was waiting:
 * its will is published, or, when its session is back and outlives the
 * connection, waits for the rest of its delay (all of it for a connection
 * that was open: when the master died is not known). */
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

static char *
will_key(const char *session_key, size_t *len)
{
	char *k;

	*len = (size_t)xasprintf(&k, "w%s", session_key);
	return k;
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
	if (mqtt_record(s, k, klen, &w, true))
		return true;
	log_warn("session %s: its will is not in the store: the master's death would lose it",
	    s->key);
	return false;
}

void
mqtt_will_unstore(struct broker *b, const char *session_key)
{
	size_t klen;
	char *k = will_key(session_key, &klen);

	if (kv_del(b->store, k, klen) == -1)
		log_warn("session %s: its will's record stays in the store", session_key);
	free(k);
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
			if (w->since == 0)
				mqtt_will_store(s, wl, now, true);
			log_info("client %s: will to %s published in %llds unless the session resumes",
			    who, wl->topic, (long long)(left + 999) / 1000);
			return true;
		}
		mqtt_will_free(wl);
	}
	if (!auth_may(auth, w->user, w->client_id, w->wl.topic, AUTH_WRITE)) {
		b->publishes_denied++;
		log_info("client %s: will to %.64s not published: denied by the ACL", who,
		    w->wl.topic);
	} else
		mqtt_will_publish(b, who, &w->wl);
	mqtt_will_unstore(b, key);
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
