/* MQTT connections: framing, the CONNECT handshake, keep-alive, takeover,
 * wills, and the one close path; the protocol's table for the core.
 * Packets are checked by the codec; what needs connection state (CONNECT
 * first and once, direction) is here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "clock.h"
#include "log.h"
#include "mqtt/mqtt_int.h"
#include "topic.h"
#include "xmalloc.h"

static void
mqtt_start(struct client *cl)
{
	struct mqtt_conn *mc = xcalloc(1, sizeof(*mc));

	RB_INIT(&mc->inbound);
	cl->pstate = mc;
	client_arm_idle(cl, cl->b->set.idle_timeout);	/* the CONNECT must come by then */
}

/* A packet came in: the keep-alive starts again. */
static void
touch(struct client *cl)
{
	struct mqtt_conn *mc = mqtt_conn(cl);

	if (mc->connected && mc->keepalive_ms > 0)
		client_arm_idle(cl, mc->keepalive_ms);
	else if (mc->connected)
		client_disarm_idle(cl);
}

static void
mqtt_idle(struct client *cl)
{
	struct mqtt_conn *mc = mqtt_conn(cl);

	client_close(cl, !mc->connected ? "no CONNECT within idle_timeout" :
	    mc->keepalive_ms ? "keep-alive expired" :
	    "half a packet for longer than idle_timeout");
}

void
mqtt_send(struct client *cl, const struct wbuf *w)
{
	client_write(cl, w->data, w->len);
}

void
mqtt_send_ack(struct client *cl, uint8_t type, uint16_t pid)
{
	struct wbuf w;

	wbuf_init(&w);
	mqtt_enc_ack(&w, type, pid);
	mqtt_send(cl, &w);
	wbuf_free(&w);
}

static void
send_connack(struct client *cl, bool present, uint8_t rc)
{
	struct wbuf w;

	wbuf_init(&w);
	mqtt_enc_connack(&w, MQTT_LEVEL_311, &(struct mqtt_connack){
	    .session_present = present, .return_code = rc });
	mqtt_send(cl, &w);
	wbuf_free(&w);
}

static void
keep_will(struct mqtt_conn *mc, const struct mqtt_connect *c)
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
	mc->will = wl;
}

static void
will_free(struct mqtt_conn *mc)
{
	if (mc->will == NULL)
		return;
	free(mc->will->topic);
	free(mc->will->payload);
	free(mc->will);
	mc->will = NULL;
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
	mqtt_session_attach(s);
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
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct broker *b = cl->b;
	struct session *s;
	char *owner;
	bool present;

	if (connect_refused(cl, c))
		return;
	if (c->client_id[0] == '\0')
		xasprintf(&mc->client_id, "auto-%016llx-%llu", (unsigned long long)b->boot_id,
		    (unsigned long long)cl->id);
	else
		mc->client_id = xstrdup(c->client_id);
	take_over(cl, mc->client_id);
	if (delivery_open(cl) == -1) {
		send_connack(cl, false, MQTT_CONNACK_UNAVAILABLE);
		client_close(cl, "no delivery socket");
		return;
	}
	s = open_session(cl, mc->client_id, c->clean_session, &present);
	(void)session_save(s);
	/* The CONNACK once the session (or the end of an old one) is durable. */
	client_gate(cl, durable_write(b));
	session_online(s, cl);
	mqtt_session_reconnected(s);
	mc->connected = true;
	mc->level = c->level;
	if (c->clean_session)
		xasprintf(&owner, "j/%016llx/m%llu", (unsigned long long)b->boot_id,
		    (unsigned long long)cl->id);
	else
		xasprintf(&owner, "%s/%llx", s->key, (unsigned long long)s->incarnation);
	owner_set(cl, owner);
	free(owner);
	keep_will(mc, c);
	mc->keepalive_ms = (uint64_t)c->keepalive * 1500;
	snprintf(cl->desc + strlen(cl->desc), sizeof(cl->desc) - strlen(cl->desc), " id %s",
	    mc->client_id);
	log_info("client %s: MQTT %s session%s, keep-alive %us", cl->desc,
	    c->clean_session ? "clean" : "persistent", present ? " resumed" : "", c->keepalive);
	/* MQTT 3.1 has no session present flag: its byte is reserved, 0. */
	send_connack(cl, present && c->level != MQTT_LEVEL_31, MQTT_CONNACK_ACCEPTED);
	touch(cl);
	session_attach_all(s, NULL, false);
}

static void
on_packet(struct client *cl, struct mqtt_packet *p)
{
	struct wbuf w;

	if (!(mqtt_type_dir(p->type, mqtt_conn(cl)->level) & MQTT_FROM_CLIENT)) {
		client_close(cl, "a server-to-client packet from the client");
		return;
	}
	if (!mqtt_conn(cl)->connected && p->type != MQTT_CONNECT) {
		client_close(cl, "a packet before CONNECT");
		return;
	}
	switch (p->type) {
	case MQTT_CONNECT:
		if (mqtt_conn(cl)->connected)
			client_close(cl, "a second CONNECT");
		else
			on_connect(cl, &p->u.connect);
		break;
	case MQTT_PUBLISH:
		mqtt_publish_in(cl, &p->u.publish);
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
		mqtt_subscribe_in(cl, &p->u.subscribe);
		break;
	case MQTT_UNSUBSCRIBE:
		mqtt_unsubscribe_in(cl, &p->u.unsubscribe);
		break;
	case MQTT_PINGREQ:
		wbuf_init(&w);
		mqtt_enc_simple(&w, MQTT_PINGRESP);
		mqtt_send(cl, &w);
		wbuf_free(&w);
		break;
	case MQTT_DISCONNECT:
		will_free(mqtt_conn(cl));	/* a clean end: no will */
		client_close(cl, "DISCONNECT");
		break;
	}
}

/* Handles one framed packet; returns -1 when the connection is done.
 * The codec reads MQTT 5.0, but the broker does not speak it yet: a
 * level-5 CONNECT, valid or not, is refused as any unsupported level. */
static int
one_packet(struct client *cl, const uint8_t *pkt, size_t len)
{
	struct mqtt_packet p;
	int rc = mqtt_decode(pkt, len, mqtt_conn(cl)->level, &p);

	if (rc == MQTT_E_BAD_LEVEL || (p.type == MQTT_CONNECT && p.level == MQTT_LEVEL_5)) {
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

static void
mqtt_read(struct client *cl)
{
	struct evbuffer *in = client_input(cl);
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
			if (mqtt_conn(cl)->keepalive_ms == 0 && !client_idle_armed(cl))
				client_arm_idle(cl, cl->b->set.idle_timeout);
			break;
		}
		if (one_packet(cl, evbuffer_pullup(in, (ssize_t)total), total) == -1)
			break;
		evbuffer_drain(in, total);
		touch(cl);
	}
}

/* The connection ended: the will unless it said DISCONNECT, deliveries
 * stop, a clean session ends with it (and releases what it staged). */
static void
mqtt_closed(struct client *cl)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct session *s = cl->session;
	struct attachment *a;

	if (mc->connected && mc->will != NULL)
		mqtt_publish_will(cl);
	will_free(mc);
	while ((a = TAILQ_FIRST(&cl->attached)) != NULL)
		attach_end(a, s != NULL && s->persistent);
	owner_closed(cl, s == NULL || !s->persistent);
	if (s != NULL) {
		session_offline(s);
		if (!s->persistent)
			session_free(s);
		else
			(void)session_save(s);
	}
	mqtt_inbound_free(mc);
	free(mc->client_id);
	free(mc);
}

const struct proto mqtt_proto = {
	.name = "MQTT",
	.start = mqtt_start,
	.read = mqtt_read,
	.deliver = mqtt_deliver,
	.can_take = mqtt_can_take,
	.idle = mqtt_idle,
	.closed = mqtt_closed,
};
