/* MQTT connections: framing, the CONNECT handshake, keep-alive, takeover,
 * wills, and the one close path.  Packets are checked by the codec; what
 * needs connection state (CONNECT first and once, direction) is here. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker.h"
#include "clock.h"
#include "log.h"
#include "mqtt_codec.h"
#include "topic.h"
#include "xmalloc.h"

static void
arm(struct client *cl, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (evtimer_add(cl->idle, &tv) == -1)
		fatalx("cannot arm the timer of client %s", cl->desc);
}

void
mqtt_start(struct client *cl)
{
	arm(cl, cl->b->set.idle_timeout);	/* the CONNECT must come by then */
}

/* A packet came in: the keep-alive starts again. */
void
mqtt_touch(struct client *cl)
{
	if (cl->connected && cl->keepalive_ms > 0)
		arm(cl, cl->keepalive_ms);
	else if (cl->connected)
		evtimer_del(cl->idle);
}

void
mqtt_send(struct client *cl, const struct wbuf *w)
{
	client_write(cl, w);
}

static void
send_connack(struct client *cl, bool present, uint8_t rc)
{
	struct wbuf w;

	wbuf_init(&w);
	mqtt_enc_connack(&w, present, rc);
	mqtt_send(cl, &w);
	wbuf_free(&w);
}

static void
keep_will(struct client *cl, const struct mqtt_connect *c)
{
	struct mqtt_will *wl;

	if (!c->will)
		return;
	wl = xcalloc(1, sizeof(*wl));
	wl->topic = xstrdup(c->will_topic);
	wl->payload = xmemdup(c->will_payload ? c->will_payload : (const uint8_t *)"", c->will_len);
	wl->len = c->will_len;
	wl->qos = c->will_qos;
	wl->retain = c->will_retain;
	cl->will = wl;
}

static void
will_free(struct client *cl)
{
	if (cl->will == NULL)
		return;
	free(cl->will->topic);
	free(cl->will->payload);
	free(cl->will);
	cl->will = NULL;
}

/* Another connection with the same client id is closed first (MQTT
 * 3.1.4-2); its will is published as for any abnormal end. */
static void
take_over(struct client *cl, const char *id)
{
	char *keys[2];

	xasprintf(&keys[0], "m/%s", id);
	xasprintf(&keys[1], "c/%016llx/%s", (unsigned long long)cl->b->boot_id, id);
	for (int i = 0; i < 2; i++) {
		struct session *s = session_find(cl->b, keys[i]);

		if (s != NULL && s->cl != NULL && s->cl != cl)
			client_close(s->cl, "taken over by a new connection with its client id");
		free(keys[i]);
	}
}

static struct session *
open_session(struct client *cl, const char *id, bool clean, bool *present)
{
	struct session *s;
	char *key;

	*present = false;
	xasprintf(&key, "m/%s", id);
	s = session_find(cl->b, key);
	if (clean) {
		if (s != NULL)
			session_delete(s);	/* a clean start discards the old one */
		free(key);
		xasprintf(&key, "c/%016llx/%s", (unsigned long long)cl->b->boot_id, id);
		s = session_new(cl->b, key, MODE_MQTT, false);
	} else if (s != NULL) {
		*present = true;
	} else {
		s = session_new(cl->b, key, MODE_MQTT, true);
	}
	free(key);
	return s;
}

/* What the codec cannot refuse alone; true when the connection is
 * refused (and closing).  MQTT 3.1 requires a client id (its upper bound
 * of 23 bytes is not enforced); 3.1.1 allows an empty one with a clean
 * session only (3.1.3-8). */
static bool
connect_refused(struct client *cl, const struct mqtt_connect *c)
{
	if (c->client_id[0] == '\0' && (c->level == MQTT_LEVEL_31 || !c->clean_session)) {
		send_connack(cl, false, MQTT_CONNACK_ID_REJECTED);
		client_close(cl, c->level == MQTT_LEVEL_31 ?
		    "empty client id in an MQTT 3.1 CONNECT" : "empty client id without clean session");
		return true;
	}
	if (c->will && topic_check_levels(c->will_topic, strlen(c->will_topic),
	    cl->b->set.max_topic_levels) != TOPIC_OK) {
		client_close(cl, "will topic of more levels than max_topic_levels");
		return true;
	}
	return false;
}

static void
on_connect(struct client *cl, const struct mqtt_connect *c)
{
	struct broker *b = cl->b;
	struct session *s;
	bool present;

	if (connect_refused(cl, c))
		return;
	if (c->client_id[0] == '\0')
		xasprintf(&cl->client_id, "auto-%016llx-%llu", (unsigned long long)b->boot_id,
		    (unsigned long long)cl->id);
	else
		cl->client_id = xstrdup(c->client_id);
	take_over(cl, cl->client_id);
	if (delivery_open(cl) == -1) {
		send_connack(cl, false, MQTT_CONNACK_UNAVAILABLE);
		client_close(cl, "no delivery socket");
		return;
	}
	s = open_session(cl, cl->client_id, c->clean_session, &present);
	(void)session_save(s);
	/* The CONNACK once the session (or the end of an old one) is durable. */
	client_gate(cl, durable_write(b));
	s->cl = cl;
	cl->session = s;
	cl->connected = true;
	if (c->clean_session)
		xasprintf(&cl->owner, "j/%016llx/m%llu", (unsigned long long)b->boot_id,
		    (unsigned long long)cl->id);
	else
		xasprintf(&cl->owner, "%s/%llx", s->key, (unsigned long long)s->incarnation);
	keep_will(cl, c);
	cl->keepalive_ms = (uint64_t)c->keepalive * 1500;
	snprintf(cl->desc + strlen(cl->desc), sizeof(cl->desc) - strlen(cl->desc), " id %s",
	    cl->client_id);
	log_info("client %s: MQTT %s session%s, keep-alive %us", cl->desc,
	    c->clean_session ? "clean" : "persistent", present ? " resumed" : "", c->keepalive);
	/* MQTT 3.1 has no session present flag: its byte is reserved, 0. */
	send_connack(cl, present && c->level != MQTT_LEVEL_31, MQTT_CONNACK_ACCEPTED);
	mqtt_touch(cl);
	session_attach_all(s, NULL, false);
}

static void
on_packet(struct client *cl, struct mqtt_packet *p)
{
	struct wbuf w;

	if (!(mqtt_type_dir(p->type) & MQTT_FROM_CLIENT)) {
		client_close(cl, "a server-to-client packet from the client");
		return;
	}
	if (!cl->connected && p->type != MQTT_CONNECT) {
		client_close(cl, "a packet before CONNECT");
		return;
	}
	switch (p->type) {
	case MQTT_CONNECT:
		if (cl->connected)
			client_close(cl, "a second CONNECT");
		else
			on_connect(cl, &p->u.connect);
		break;
	case MQTT_PUBLISH:
		mqtt_publish_in(cl, p);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		mqtt_ack_in(cl, p->type, p->u.ack.packet_id);
		break;
	case MQTT_PUBREL:
		mqtt_pubrel_in(cl, p->u.ack.packet_id);
		break;
	case MQTT_SUBSCRIBE:
		mqtt_subscribe_in(cl, p);
		break;
	case MQTT_UNSUBSCRIBE:
		mqtt_unsubscribe_in(cl, p);
		break;
	case MQTT_PINGREQ:
		wbuf_init(&w);
		mqtt_enc_simple(&w, MQTT_PINGRESP);
		mqtt_send(cl, &w);
		wbuf_free(&w);
		break;
	case MQTT_DISCONNECT:
		will_free(cl);		/* a clean end: no will */
		client_close(cl, "DISCONNECT");
		break;
	}
}

/* Handles one framed packet; returns -1 when the connection is done. */
static int
one_packet(struct client *cl, const uint8_t *pkt, size_t len)
{
	struct mqtt_packet p;
	int rc = mqtt_decode(pkt, len, &p);

	if (rc == MQTT_E_BAD_LEVEL) {
		send_connack(cl, false, MQTT_CONNACK_BAD_VERSION);
		client_close(cl, "unsupported MQTT protocol level");
	} else if (rc < 0) {
		char why[160];

		snprintf(why, sizeof(why), "malformed %s: %s", mqtt_type_name(p.type),
		    p.error ? p.error : "?");
		client_close(cl, why);
	} else {
		on_packet(cl, &p);
	}
	mqtt_packet_free(&p);
	return cl->closing ? -1 : 0;
}

void
mqtt_read(struct client *cl)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	/* message_size_limit bounds payloads (as in mosquitto); a packet
	 * may add a topic and headers to that. */
	size_t limit = cl->b->set.message_size_limit + MQTT_MAX_STRING + 16, total = 0;

	while (!cl->closing && !client_throttled(cl)) {
		size_t have = evbuffer_get_length(in);
		const uint8_t *head = evbuffer_pullup(in, (ssize_t)(have < 5 ? have : 5));
		int rc;

		total = 0;
		if (have == 0)
			break;
		rc = mqtt_frame(head, have < 5 ? have : 5, limit, &total);
		if (rc == MQTT_E_TOO_LARGE) {
			client_close(cl, "packet larger than message_size_limit allows");
			break;
		}
		if (rc < 0) {
			client_close(cl, "malformed remaining length");
			break;
		}
		/* With only the header in view, 0 still sets *total once the
		 * length bytes are complete. */
		if ((rc == 0 && total == 0) || have < total) {
			/* Half a packet: without a keep-alive, idle_timeout bounds the wait. */
			if (cl->keepalive_ms == 0 && !evtimer_pending(cl->idle, NULL))
				arm(cl, cl->b->set.idle_timeout);
			break;
		}
		if (one_packet(cl, evbuffer_pullup(in, (ssize_t)total), total) == -1)
			break;
		evbuffer_drain(in, total);
		mqtt_touch(cl);
	}
	mqtt_flush(cl->b);	/* acks forgotten, QoS 2 state recorded */
}

/* The connection ended: the will unless it said DISCONNECT, deliveries
 * stop, a clean session ends with it. */
void
mqtt_closed(struct client *cl)
{
	struct session *s = cl->session;
	struct attachment *a;

	if (cl->connected && cl->will != NULL)
		mqtt_publish_will(cl);
	will_free(cl);
	while ((a = TAILQ_FIRST(&cl->attached)) != NULL) {
		struct child *c = a->child;

		attach_drop(a, s != NULL && s->persistent);
		if (s != NULL && !s->persistent)
			topic_unsub(c, s->key, true);
	}
	publisher_closed(cl, s == NULL || !s->persistent);
	if (s != NULL) {
		s->cl = NULL;
		cl->session = NULL;
		if (!s->persistent) {
			session_free(s);
		} else {
			s->offline_since = wall_ms();
			(void)session_save(s);
		}
	}
	free(cl->client_id);
	cl->client_id = NULL;
	cl->connected = false;
}
