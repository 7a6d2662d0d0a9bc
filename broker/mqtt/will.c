/* Wills: kept from the CONNECT, published when a connection ends without
 * a clean DISCONNECT (at MQTT 5.0, one of reason 0x00).  An MQTT 5.0 will
 * with a Will Delay Interval on a session that outlives its connection
 * waits in the session: it is published once the delay is over or the
 * session ends, whichever comes first, and not at all if the session
 * resumes before (3.1.3.2.2).  Each will is also in the master's store
 * (will_store.c), from the CONNECT until its topicd has stored it or it is
 * discarded, so that neither the master's death nor a stop loses one.
 *
 * A QoS 2 will is published exactly once: it is staged in its topicd
 * under an owner name of its own ("w/" and its record's id, pubid 1),
 * which a replay (a topicd restarted, a master started again) stages
 * once; its record then says it is staged, and once that is durable the
 * will is released, which a replay releases once.  A will of QoS 0 or 1,
 * sent again after the master's death, may be stored twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "mqtt/mqtt_int.h"
#include "xmalloc.h"

#define WILL_PUBID	1	/* a staged will's pubid (its owner is its own) */

struct delayed_will {
	struct mqtt_will *wl;
	char		*key;		/* its record's (NULL: none) */
	struct event	*ev;
	struct session	*s;
	char		 who[128];
};

struct mqtt_will *
mqtt_will_new(const struct mqtt_connect *c, const char *origin)
{
	struct mqtt_will *wl;
	struct wbuf w;
	uint64_t ignored;

	if (!c->will)
		return NULL;
	wl = xcalloc(1, sizeof(*wl));
	wl->topic = xstrdup(c->will_topic);
	wl->payload = xmemdup(c->will_payload ? c->will_payload : (const uint8_t *)"", c->will_len);
	wl->len = c->will_len;
	wl->qos = c->will_qos;
	wl->retain = c->will_retain;
	wl->origin = xstrdup(origin);
	if (c->level == MQTT_LEVEL_5 && c->will_props.n > 0) {
		(void)mqtt_props_get_u32(&c->will_props, MQTT_PROP_WILL_DELAY, &wl->delay_s);
		/* 0 is none, as for a publish (msgprops.c). */
		wl->has_expiry = mqtt_props_get_u32(&c->will_props, MQTT_PROP_MESSAGE_EXPIRY,
		    &wl->expiry_s) && wl->expiry_s > 0;
		wbuf_init(&w);
		if (msg_props_in(&c->will_props, &w, &ignored) == 0 && w.len > 0) {
			wl->props = xmemdup(w.data, w.len);
			wl->props_len = w.len;
		}
		wbuf_free(&w);
	}
	return wl;
}

void
mqtt_will_free(struct mqtt_will *wl)
{
	if (wl == NULL)
		return;
	free(wl->topic);
	free(wl->payload);
	free(wl->props);
	free(wl->origin);
	free(wl);
}

/* Publishes a will to its topic, as the broker's own publish.  Its record
 * (key; NULL: none) goes once the topicd has stored the will: at once for
 * QoS 0 (which may be lost), or when it cannot be published.  While the
 * broker stops, the will waits in the store for the next start instead:
 * its topicd may have been told to stop. */
void
mqtt_will_publish(struct broker *b, const char *who, const struct mqtt_will *wl,
    const char *key)
{
	const char *why = NULL;
	struct child *c;
	struct rec_publish p = {
		.req = wl->qos ? broker_req(b) : 0, .owner = "", .pubid = 0, .qos = wl->qos,
		.flags = wl->retain ? PF_RETAIN : 0, .time_ms = (uint64_t)wall_ms(),
		.payload = wl->payload, .payload_len = wl->len, .props = wl->props,
		.props_len = wl->props_len, .origin = wl->origin,
	};
	bool tracked = key != NULL && p.req != 0;
	bool staging = tracked && wl->qos == 2;
	char *owner = NULL;
	struct wbuf w;
	int rc = -1;

	if (b->stopping && key != NULL) {
		log_info("client %s: will to %s published at the next start", who, wl->topic);
		return;
	}
	if (wl->staged && key != NULL) {
		log_info("client %s: will to %s, staged before, released", who, wl->topic);
		mqtt_will_release(b, wl->topic, key);
		return;
	}
	if (staging) {
		p.owner = owner = mqtt_will_owner(key);
		p.pubid = WILL_PUBID;
		p.flags |= PF_STAGE;
	}
	/* The Message Expiry Interval runs from when the will is published. */
	if (wl->has_expiry)
		p.expiry_ms = p.time_ms + (uint64_t)wl->expiry_s * 1000;
	if ((c = wl->topic[0] == '$' ? NULL : topic_open(b, wl->topic, &why)) != NULL) {
		if (tracked)	/* before it can reach its topicd */
			mqtt_will_mark_sent(b, key);
		wbuf_init(&w);
		enc_publish(&w, &p);
		rc = tracked ? note_submit_done(c, IPC_PUBLISH, p.req, &w, mqtt_will_stored, p.req,
		    &why) : note_submit(c, IPC_PUBLISH, p.req, &w, &why);
		wbuf_free(&w);
	}
	if (rc == -1) {
		log_warnx("client %s: will to %s not published: %s", who, wl->topic,
		    why ? why : "reserved topic");
		tracked = false;
	}
	free(owner);
	if (tracked)
		mqtt_will_sent(key, wl->topic, p.req, staging);
	else if (key != NULL)
		mqtt_will_unstore(b, key);
	if (rc == -1)
		return;
	b->msgs_in++;
	b->bytes_in += wl->len;
	log_info("client %s: will published to %s", who, wl->topic);
}

void
mqtt_will_release(struct broker *b, const char *topic, const char *key)
{
	char *owner = mqtt_will_owner(key);
	struct rec_release r = { .req = broker_req(b), .owner = owner, .pubid = WILL_PUBID };
	const char *why = NULL;
	struct child *c;
	struct wbuf w;
	int rc = -1;

	if (b->stopping) {
		log_info("session %s: its will, staged in %s, is released at the next start",
		    mqtt_will_key_session(key), topic);
		free(owner);
		return;
	}
	if ((c = topic_open(b, topic, &why)) != NULL) {
		wbuf_init(&w);
		enc_release(&w, &r);
		rc = note_submit_done(c, IPC_RELEASE, r.req, &w, mqtt_will_stored, r.req, &why);
		wbuf_free(&w);
	}
	free(owner);
	if (rc == 0) {
		mqtt_will_sent(key, topic, r.req, false);
		return;
	}
	log_warnx("session %s: its will, staged in %s, is not released: %s; it is at the next "
	    "start", mqtt_will_key_session(key), topic, why);
}

void
mqtt_will_denied(struct broker *b, const char *who, const char *topic, const char *key)
{
	b->publishes_denied++;
	log_info("client %s: will to %.64s not published: denied by the ACL", who, topic);
	if (key != NULL)
		mqtt_will_unstore(b, key);
}

static void
delayed_free(struct delayed_will *dw)
{
	*mqtt_session_will(dw->s) = NULL;
	event_free(dw->ev);
	mqtt_will_free(dw->wl);
	free(dw->key);
	free(dw);
}

/* A delayed will is published if the ACL allows it then, as it may have
 * changed (a SIGHUP) since the connection closed. */
static void
delayed_publish(struct delayed_will *dw)
{
	struct session *s = dw->s;

	if (!auth_may(s->auth, s->user, session_client_id(s), dw->wl->topic, AUTH_WRITE))
		mqtt_will_denied(s->b, dw->who, dw->wl->topic, dw->key);
	else
		mqtt_will_publish(s->b, dw->who, dw->wl, dw->key);
}

static void
on_will_delay(evutil_socket_t fd, short what, void *arg)
{
	struct delayed_will *dw = arg;

	(void)fd;
	(void)what;
	delayed_publish(dw);
	delayed_free(dw);
}

bool
mqtt_will_delay(struct session *s, struct mqtt_will *wl, const char *who, uint64_t ms,
    const char *key, int64_t since)
{
	struct delayed_will *dw;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	mqtt_will_cancel(s);		/* one will per session */
	dw = xcalloc(1, sizeof(*dw));
	dw->s = s;
	dw->wl = wl;
	snprintf(dw->who, sizeof(dw->who), "%s", who);
	if ((dw->ev = evtimer_new(s->b->base, on_will_delay, dw)) == NULL ||
	    evtimer_add(dw->ev, &tv) == -1) {
		log_warnx("client %s: cannot delay its will: published now", who);
		if (dw->ev != NULL)
			event_free(dw->ev);
		free(dw);
		return false;
	}
	*mqtt_session_will(s) = dw;
	dw->key = key != NULL ? xstrdup(key) : NULL;
	(void)mqtt_will_store(s, wl, since, true, &dw->key);
	return true;
}

void
mqtt_will_end(struct client *cl, struct session *s, bool stays, const char *key)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct mqtt_will *wl = mc->will;

	if (!mqtt_may_write(cl, wl->topic)) {
		mqtt_will_denied(cl->b, cl->desc, wl->topic, key);
		return;
	}
	if (wl->delay_s == 0 || !stays || s == NULL ||
	    !mqtt_will_delay(s, wl, cl->desc, (uint64_t)wl->delay_s * 1000, key, wall_ms())) {
		mqtt_will_publish(cl->b, cl->desc, wl, key);
		return;
	}
	mc->will = NULL;		/* the session's now */
	log_info("client %s: will to %s published in %us unless the session resumes", cl->desc,
	    wl->topic, wl->delay_s);
}

void
mqtt_will_cancel(struct session *s)
{
	struct delayed_will *dw = *mqtt_session_will(s);

	if (dw == NULL)
		return;
	log_info("session %s: resumed within its Will Delay Interval: will not sent", s->key);
	if (dw->key != NULL)
		mqtt_will_unstore(s->b, dw->key);
	delayed_free(dw);
}

void
mqtt_will_session_end(struct session *s, bool forget)
{
	struct delayed_will *dw = *mqtt_session_will(s);

	if (dw == NULL)
		return;
	if (forget)
		delayed_publish(dw);
	else
		log_info("session %s: broker stopping: its delayed will to %s waits in the store",
		    s->key, dw->wl->topic);
	delayed_free(dw);
}
