/* Wills in the master's store, from the CONNECT that brings one until it
 * is published or discarded, so that neither the master's death nor a
 * stop loses one (will.c keeps them in memory while it runs).
 *
 * Key: "w" ID SESSION, ID 32 hex digits that no other will of any run
 * has (the boot id and a count), so that a will sent to its topicd keeps
 * its record while a newer one of the same session has its own -> the
 * will, since when it waits (0: its connection is open), whether the
 * session outlives the connection, whether it was sent to its topicd, the
 * session's incarnation, and whose it is for the ACL (client id, user,
 * listener block): will_rec.c.
 *
 * A record goes once its will is stored by its topicd (DONE), so that a
 * will is published at least once: a master killed in between publishes
 * it again at its next start.  A QoS 2 will is staged first, and its
 * record says so, durably, before it is released (will.c): a start
 * releases it, and it is published exactly once.  A stop leaves the records of the wills it
 * would publish (will.c).  Every change is written at once (the page
 * cache), not when the loop next flushes the store: a cancelled will's
 * record must not outlive its cancel in a SIGKILL.
 *
 * At the next start, before a client is accepted, each record is a
 * connection that ended without DISCONNECT, or a will that was waiting:
 * its will is published, or, when its session is back and outlives the
 * connection, waits for the rest of its delay (all of it for a connection
 * that was open: when the master died is not known). */
#include <bsd/sys/tree.h>

#include <ctype.h>
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

#define WILL_ID_LEN	32

/* Wills sent to their topicd, waiting to be stored (or staged, or
 * released): by request; staged ones waiting for their record to be
 * durable: in a list. */
struct sent_will {
	RB_ENTRY(sent_will) entry;
	TAILQ_ENTRY(sent_will) wait;
	uint64_t	 req;
	char		*key;
	char		*topic;
	bool		 staging;
	struct broker	*b;		/* while it waits */
};
RB_HEAD(sent_tree, sent_will);
TAILQ_HEAD(sent_list, sent_will);

static int
sent_cmp(struct sent_will *a, struct sent_will *b)
{
	return (a->req > b->req) - (a->req < b->req);
}

RB_PROTOTYPE(sent_tree, sent_will, entry, sent_cmp)
RB_GENERATE(sent_tree, sent_will, entry, sent_cmp)

static struct sent_tree sent_wills = RB_INITIALIZER(&sent_wills);
static struct sent_list staged_wills = TAILQ_HEAD_INITIALIZER(staged_wills);

/* The session a record's key names. */
const char *
mqtt_will_key_session(const char *key)
{
	return strlen(key) > 1 + WILL_ID_LEN ? key + 1 + WILL_ID_LEN : "?";
}

/* The owner a QoS 2 will is staged under: its id, which no other will of
 * any run has, and no session's owner name begins with "w/". */
char *
mqtt_will_owner(const char *key)
{
	char *o;

	xasprintf(&o, "w/%.*s", WILL_ID_LEN, key + 1);
	return o;
}

static void
sent_free(struct sent_will *sw)
{
	free(sw->key);
	free(sw->topic);
	free(sw);
}

static char *
new_key(const struct session *s)
{
	static uint64_t count;
	char *k;

	xasprintf(&k, "w%016llx%016llx%s", (unsigned long long)s->b->boot_id,
	    (unsigned long long)++count, s->key);
	return k;
}

bool
mqtt_will_store(const struct session *s, const struct mqtt_will *wl, int64_t since,
    bool stays, char **key)
{
	struct will_rec r = {
		.since = (uint64_t)since, .stays = stays, .incarnation = s->incarnation,
		.qos = wl->qos, .retain = wl->retain, .delay_s = wl->delay_s,
		.has_expiry = wl->has_expiry, .expiry_s = wl->expiry_s, .topic = wl->topic,
		.payload = wl->payload, .len = wl->len, .props = wl->props,
		.props_len = wl->props_len, .origin = wl->origin,
		.client_id = session_client_id(s), .user = s->user, .listener = s->listener,
	};
	struct wbuf w;
	bool made = *key == NULL;

	if (made)
		*key = new_key(s);
	wbuf_init(&w);
	will_rec_encode(&w, &r);
	if (mqtt_record(s, xstrdup(*key), strlen(*key), &w, true)) {
		store_flush(s->b);
		return true;
	}
	log_warn("session %s: its will is not in the store: the master's death would lose it",
	    s->key);
	if (made) {		/* a key given still names the record it had */
		free(*key);
		*key = NULL;
	}
	return false;
}

void
mqtt_will_unstore(struct broker *b, const char *key)
{
	if (kv_del(b->store, key, strlen(key)) == -1)
		log_warn("session %s: its will's record stays in the store", mqtt_will_key_session(key));
	else
		store_flush(b);
}

/* The record says its will was sent (or staged); false if it cannot. */
static bool
mark(struct broker *b, const char *key, bool staged)
{
	struct will_rec r;
	struct wbuf w;
	void *val;
	size_t vlen;
	int rc = 0;

	if (kv_get(b->store, key, strlen(key), &val, &vlen) != 1)
		return false;
	if (will_rec_decode(val, vlen, &r) == -1)
		rc = -1;
	else if (!r.sent || (staged && !r.staged)) {
		r.sent = true;
		r.staged |= staged;
		wbuf_init(&w);
		will_rec_encode(&w, &r);
		rc = kv_put(b->store, key, strlen(key), w.data, w.len);
		wbuf_free(&w);
		if (rc == 0)
			store_flush(b);
	}
	free(val);
	return rc == 0;
}

/* The record says its will was sent: a start publishes it at once, even
 * if its session is back and the clock says its delay is not over (set
 * back), and a newer will of the session cannot cancel it. */
void
mqtt_will_mark_sent(struct broker *b, const char *key)
{
	if (!mark(b, key, false))
		log_warn("session %s: its will's record does not say it was sent",
		    mqtt_will_key_session(key));
}

void
mqtt_will_sent(const char *key, const char *topic, uint64_t req, bool staging)
{
	struct sent_will *sw = xcalloc(1, sizeof(*sw));

	sw->req = req;
	sw->key = xstrdup(key);
	sw->topic = xstrdup(topic);
	sw->staging = staging;
	if (RB_INSERT(sent_tree, &sent_wills, sw) != NULL)
		fatalx("will request %llu sent twice", (unsigned long long)req);
}

static void
on_staged_durable(void *arg)
{
	struct sent_will *sw = arg;

	TAILQ_REMOVE(&staged_wills, sw, wait);
	mqtt_will_release(sw->b, sw->topic, sw->key);
	sent_free(sw);
}

/* A QoS 2 will is staged: released once its record says so durably.  A
 * record that cannot say so leaves it staged: the next start stages it
 * again (once) and releases it. */
static void
staged(struct broker *b, struct sent_will *sw)
{
	if (!mark(b, sw->key, true)) {
		log_warn("session %s: its will's record does not say it is staged in %s: it "
		    "is released at the next start", mqtt_will_key_session(sw->key), sw->topic);
		sent_free(sw);
		return;
	}
	log_debug("topic %s: the will of session %s is staged: released once its record says "
	    "so durably", sw->topic, mqtt_will_key_session(sw->key));
	sw->b = b;
	TAILQ_INSERT_TAIL(&staged_wills, sw, wait);
	durable_wait(b, durable_write(b), on_staged_durable, sw);
}

void
mqtt_will_stored(struct child *c, struct held *h, const struct rec_done *d)
{
	struct sent_will k = { .req = h->arg }, *sw = RB_FIND(sent_tree, &sent_wills, &k);

	if (sw == NULL)
		return;
	RB_REMOVE(sent_tree, &sent_wills, sw);
	if (d->status == ST_STORE)
		log_warnx("topic %s: the will of session %s was not stored: it is published "
		    "again at the next start", c->topic, mqtt_will_key_session(sw->key));
	else if (sw->staging) {
		staged(c->b, sw);
		return;
	} else {
		log_debug("topic %s: the will of session %s is stored: its record goes", c->topic,
		    mqtt_will_key_session(sw->key));
		mqtt_will_unstore(c->b, sw->key);
	}
	sent_free(sw);
}

void
mqtt_wills_free(void)
{
	struct sent_will *sw;

	while ((sw = RB_MIN(sent_tree, &sent_wills)) != NULL) {
		RB_REMOVE(sent_tree, &sent_wills, sw);
		sent_free(sw);
	}
	while ((sw = TAILQ_FIRST(&staged_wills)) != NULL) {
		TAILQ_REMOVE(&staged_wills, sw, wait);
		sent_free(sw);
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
	wl->staged = r->staged;
	return wl;
}

/* Its session (the same one: a session of the same key started since is
 * not it) is back and outlives the connection: the rest of the delay, in
 * ms (0: over), or -1 when it is published now. */
static int64_t
delay_left(const struct will_rec *r, const struct session *own, int64_t now)
{
	int64_t since, end;

	if (own == NULL || r->sent || !r->stays || r->delay_s == 0)
		return -1;
	since = r->since == 0 ? now : session_offline_wall(r->since, now);
	end = since + (int64_t)r->delay_s * 1000;
	return end > now ? end - now : 0;
}

/* true: the will waits for its session again */
static bool
restore_one(struct broker *b, const char *key, const struct will_rec *r)
{
	struct session *s = session_find(b, mqtt_will_key_session(key));
	struct session *own = s != NULL && s->mode == MODE_MQTT &&
	    s->incarnation == r->incarnation ? s : NULL;
	const struct auth *auth = own != NULL ? own->auth : listener_auth(b, r->listener);
	int64_t now = wall_ms(), left = delay_left(r, own, now);
	struct mqtt_will *wl = will_of(r);
	char who[128];

	snprintf(who, sizeof(who), "%.100s (before the restart)", r->client_id);
	if (left > 0 && mqtt_will_delay(own, wl, who, (uint64_t)left, key,
	    r->since == 0 ? now : (int64_t)r->since)) {
		log_info("client %s: will to %s published in %llds unless the session resumes",
		    who, wl->topic, (long long)(left + 999) / 1000);
		return true;		/* wl is the session's */
	}
	/* A staged will was allowed when it was published. */
	if (!r->staged && !auth_may(auth, r->user, r->client_id, r->topic, AUTH_WRITE))
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

static bool
key_ok(const char *key, size_t klen)
{
	if (klen <= 1 + WILL_ID_LEN || memchr(key, '\0', klen) != NULL)
		return false;
	for (size_t i = 1; i <= WILL_ID_LEN; i++)
		if (!isxdigit((unsigned char)key[i]))
			return false;
	return true;
}

static int
restore_record(const void *k, size_t klen, void *arg)
{
	struct restore *rs = arg;
	struct broker *b = rs->b;
	char *key = xmemdup(k, klen);
	struct will_rec r;
	void *val;
	size_t vlen;

	if (kv_get(b->store, k, klen, &val, &vlen) == 1) {
		if (!key_ok(key, klen) || will_rec_decode(val, vlen, &r) == -1) {
			log_warnx("a will's record of an unknown version or unreadable (key "
			    "%.80s); left in the store", key + 1);
		} else {
			rs->waiting += restore_one(b, key, &r);
			rs->n++;
		}
		free(val);
	}
	free(key);
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
