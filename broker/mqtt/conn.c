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
	RB_INIT(&mc->counted);
	cl->pstate = mc;
	client_arm_idle(cl, cl->b->set.connect_timeout);	/* the CONNECT must come by then */
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

	if (!mc->connected)
		client_close(cl, "no CONNECT within connect_timeout");
	else if (mc->keepalive_ms && client_throttled(cl) && !client_output_full(cl))
		/* The broker stopped reading the client (its publishes wait for
		 * a topicd): what it sent since, its PINGREQs too, is unread.
		 * The keep-alive waits as well. */
		client_arm_idle(cl, mc->keepalive_ms);
	else if (mc->keepalive_ms)
		mqtt_close(cl, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep-alive expired");
	else
		mqtt_close(cl, MQTT_RC_MALFORMED_PACKET, "half a packet for longer than idle_timeout");
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
			mqtt_close(s->cl, MQTT_RC_SESSION_TAKEN_OVER,
			    "taken over by a new connection with its client id");
		free(keys[i]);
	}
}

/* A clean session lives as long as its connection; so does an MQTT 5.0
 * session of Session Expiry Interval 0, unless it resumes a stored one
 * (which then ends with the connection). */
static struct session *
open_session(struct client *cl, const char *id, bool clean, bool *present)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct session *s;
	char *key;

	/* Stored: MQTT 3.1.1's persistent session, or a non-zero expiry. */
	bool keep = mc->level == MQTT_LEVEL_5 ? mc->session_expiry > 0 : !clean;

	*present = false;
	xasprintf(&key, "m/%s", id);
	if ((s = session_find(cl->b, key)) != NULL && session_expire_due(s))
		s = NULL;	/* expired: not resumed, even before the sweep */
	if (clean && s != NULL) {
		session_delete(s);	/* a clean start discards the old one */
		s = NULL;
	}
	if (s != NULL) {
		*present = true;
	} else if (keep) {
		s = session_new(cl->b, key, MODE_MQTT, true);
	} else {
		free(key);
		xasprintf(&key, "c/%016llx/%s", (unsigned long long)cl->b->boot_id, id);
		s = session_new(cl->b, key, MODE_MQTT, false);
	}
	free(key);
	mqtt_session_attach(s);
	return s;
}

/* What the codec cannot refuse alone; true when the connection is
 * refused (and closing).  MQTT 3.1 requires a client id (its upper bound
 * of 23 bytes is not enforced); 3.1.1 allows an empty one with a clean
 * session only (3.1.3-8); 5.0 lets the server assign one (3.1.3-6). */
static bool
connect_refused(struct client *cl, const struct mqtt_connect *c)
{
	/* A refusal too keeps within the client's Maximum Packet Size. */
	if (c->level == MQTT_LEVEL_5)
		(void)mqtt_props_get_u32(&c->props, MQTT_PROP_MAXIMUM_PACKET_SIZE,
		    &mqtt_conn(cl)->max_packet);
	if (c->client_id[0] == '\0' && (c->level == MQTT_LEVEL_31 ||
	    (c->level == MQTT_LEVEL_311 && !c->clean_session))) {
		mqtt_refuse(cl, c->level, MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_CONNACK_ID_REJECTED,
		    c->level == MQTT_LEVEL_31 ? "empty client id in an MQTT 3.1 CONNECT" :
		    "empty client id without clean session");
		return true;
	}
	if (strlen(c->client_id) > MQTT_CLIENT_ID_MAX) {
		mqtt_refuse(cl, c->level, MQTT_RC_CLIENT_ID_NOT_VALID, MQTT_CONNACK_ID_REJECTED,
		    "client id longer than " MQTT_STR(MQTT_CLIENT_ID_MAX) " bytes");
		return true;
	}
	if (c->will && topic_check_levels(c->will_topic, strlen(c->will_topic),
	    cl->b->set.max_topic_levels) != TOPIC_OK) {
		mqtt_refuse(cl, c->level, MQTT_RC_TOPIC_NAME_INVALID, 0xff,
		    "will topic of more levels than max_topic_levels");
		return true;
	}
	if (c->will && c->will_len > cl->b->set.message_size_limit) {
		mqtt_refuse(cl, c->level, MQTT_RC_PACKET_TOO_LARGE, 0xff,
		    "will payload over message_size_limit");
		return true;
	}
	mqtt_conn(cl)->level = c->level;
	return c->level == MQTT_LEVEL_5 && !mqtt5_connect_props(cl, c);
}

/* Who owns what the connection stages (QoS 2 publishes): a stored
 * session's incarnation, or this connection alone. */
static void
set_owner(struct client *cl, const struct session *s)
{
	char *owner;

	if (!s->persistent)
		xasprintf(&owner, "j/%016llx/m%llu", (unsigned long long)cl->b->boot_id,
		    (unsigned long long)cl->id);
	else
		xasprintf(&owner, "%s/%llx", s->key, (unsigned long long)s->incarnation);
	owner_set(cl, owner);
	free(owner);
}

static void
log_connected(struct client *cl, const struct mqtt_connect *c, const struct session *s,
    bool present, const char *user)
{
	snprintf(cl->desc + strlen(cl->desc), sizeof(cl->desc) - strlen(cl->desc), " id %s%s%s",
	    mqtt_conn(cl)->client_id, user != NULL ? " user " : "", user != NULL ? user : "");
	if (c->level == MQTT_LEVEL_5)
		log_info("client %s: MQTT 5.0 %s, session expiry %us, keep-alive %us", cl->desc,
		    present ? "session resumed" : "new session", mqtt_conn(cl)->session_expiry,
		    (unsigned)(mqtt_conn(cl)->keepalive_ms / 1500));
	else
		log_info("client %s: MQTT %s session%s, keep-alive %us", cl->desc,
		    s->persistent ? "persistent" : "clean", present ? " resumed" : "",
		    c->keepalive);
}

/* The user name and password against the client's auth (the password
 * file, allow_anonymous); true when it is let in, *user then being the
 * checked user name or NULL (anonymous).  A wrong login is answered
 * CONNACK 4 after a delay that grows with the failures from its address;
 * an anonymous client that may not come in, CONNACK 5 at once. */
static bool
login(struct client *cl, const struct mqtt_connect *c, const char **user)
{
	enum auth_verdict v;
	uint64_t delay;
	struct wbuf w;

	/* use_identity_as_username (or use_subject_as_username): the
	 * certificate's name, checked by the
	 * TLS handshake, is the user; the packet's name and password are not
	 * looked at. */
	if (cl->tls_identity != NULL) {
		*user = cl->tls_identity;
		return true;
	}
	v = auth_login(cl->auth, c->username, c->password, c->password_len,
	    c->password != NULL);
	*user = v == AUTH_USER ? c->username : NULL;
	if (v == AUTH_USER || v == AUTH_ANONYMOUS)
		return true;
	wbuf_init(&w);
	if (v == AUTH_ANONYMOUS_REFUSED) {
		cl->b->anonymous_refused++;
		log_notice("client %s: anonymous client refused%s: allow_anonymous is off",
		    cl->desc, c->username != NULL ? " (no password_file checks its user name)" : "");
		mqtt_enc_refusal(cl, &w, c->level, MQTT_RC_NOT_AUTHORIZED, MQTT_CONNACK_NOT_AUTHORIZED,
		    "not authorized");
		client_refuse(cl, 0, w.data, w.len, "not authorized");
	} else {
		delay = client_login_failed(cl, c->username, c->password != NULL ?
		    "wrong password or unknown user" : "no password");
		mqtt_enc_refusal(cl, &w, c->level, MQTT_RC_BAD_USERNAME_PASSWORD,
		    MQTT_CONNACK_BAD_LOGIN, "bad user name or password");
		client_refuse(cl, delay, w.data, w.len, "bad user name or password");
	}
	wbuf_free(&w);
	return false;
}

/* Does the session outlive the connection?  A stored one does, unless an
 * MQTT 5.0 client ended it with a Session Expiry Interval of 0. */
static bool
session_stays(const struct client *cl, const struct session *s)
{
	const struct mqtt_conn *mc = mqtt_conn(cl);

	return s != NULL && s->persistent &&
	    !(mc->connected && mc->level == MQTT_LEVEL_5 && mc->session_expiry == 0);
}

/* The client id: the CONNECT's, one made up for an empty one, or with
 * use_username_as_clientid the checked user name (as mosquitto does: a
 * client cannot take over another user's session by naming its id).
 * With no password_file to check it (anonymous clients let in), the
 * CONNECT's user name is taken as it is, as mosquitto does too.  False
 * if the client is refused. */
static bool
choose_client_id(struct client *cl, const struct mqtt_connect *c, const char *user)
{
	struct mqtt_conn *mc = mqtt_conn(cl);

	if (cl->auth != NULL && cl->auth->username_as_clientid) {
		if (user == NULL)
			user = c->username;	/* login() let it in anonymous */
		if (user == NULL) {
			log_notice("client %s: refused: use_username_as_clientid, and it gave no"
			    " user name", cl->desc);
			mqtt_refuse(cl, c->level, MQTT_RC_NOT_AUTHORIZED,
			    MQTT_CONNACK_NOT_AUTHORIZED, "not authorized");
			return false;
		}
		if (strlen(user) > MQTT_CLIENT_ID_MAX) {
			mqtt_refuse(cl, c->level, MQTT_RC_CLIENT_ID_NOT_VALID,
			    MQTT_CONNACK_ID_REJECTED, "user name too long for a client id");
			return false;
		}
		mc->client_id = xstrdup(user);
	} else if (c->client_id[0] == '\0') {
		xasprintf(&mc->client_id, "auto-%016llx-%llu",
		    (unsigned long long)cl->b->boot_id, (unsigned long long)cl->id);
	} else {
		mc->client_id = xstrdup(c->client_id);
	}
	return true;
}

static void
on_connect(struct client *cl, const struct mqtt_connect *c)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct broker *b = cl->b;
	const char *user;
	struct session *s;
	bool present, told;

	if (connect_refused(cl, c) || !login(cl, c, &user) || !choose_client_id(cl, c, user))
		return;
	take_over(cl, mc->client_id);
	if (delivery_open(cl) == -1) {
		mqtt_refuse(cl, c->level, MQTT_RC_SERVER_UNAVAILABLE, MQTT_CONNACK_UNAVAILABLE,
		    "no delivery socket");
		return;
	}
	s = open_session(cl, mc->client_id, c->clean_session, &present);
	mqtt_will_cancel(s);	/* resumed within its Will Delay Interval */
	if (s->persistent)
		mqtt5_session_expiry(cl, s);
	session_online(s, cl, user);
	mqtt_session_reconnected(s);
	mc->connected = true;
	if (c->level == MQTT_LEVEL_5)
		b->mqtt5_clients++;
	set_owner(cl, s);
	if ((mc->will = mqtt_will_new(c, mc->client_id)) != NULL)
		(void)mqtt_will_store(s, mc->will, 0, session_stays(cl, s), &mc->will_key);
	/* The CONNACK once the session (or the end of an old one) and its
	 * will are durable. */
	client_gate(cl, session_save(s));
	client_gate(cl, durable_write(b));
	mc->keepalive_ms = c->level == MQTT_LEVEL_5 ?
	    (uint64_t)keepalive_granted(c->keepalive, b->set.max_keepalive, &told) * 1500 :
	    (uint64_t)c->keepalive * 1500;
	log_connected(cl, c, s, present, user);
	if (c->level == MQTT_LEVEL_5)
		mqtt5_send_connack(cl, present, c);
	else	/* MQTT 3.1 has no session present flag: its byte is reserved, 0. */
		send_connack(cl, present && c->level != MQTT_LEVEL_31, MQTT_CONNACK_ACCEPTED);
	if (cl->closing)
		return;
	touch(cl);
	session_attach_all(s, NULL, false);
}

static void
on_disconnect(struct client *cl, const struct mqtt_disconnect *d)
{
	struct mqtt_conn *mc = mqtt_conn(cl);

	if (mc->level == MQTT_LEVEL_5 && !mqtt5_disconnect_in(cl, d))
		return;
	/* A clean end: no will.  At 5.0 only reason 0x00 is one (3.1.2-10):
	 * 0x04 asks for the will, and so does any error the client reports. */
	if (mc->level != MQTT_LEVEL_5 || d->reason == MQTT_RC_NORMAL_DISCONNECTION) {
		mqtt_will_free(mc->will);
		mc->will = NULL;
	}
	client_close(cl, "DISCONNECT");
}

static void
on_pingreq(struct client *cl)
{
	struct wbuf w;

	wbuf_init(&w);
	mqtt_enc_simple(&w, MQTT_PINGRESP);
	mqtt_send(cl, &w);
	wbuf_free(&w);
}

/* The packets a connected client may send, in order. */
static void
on_packet(struct client *cl, struct mqtt_packet *p)
{
	switch (p->type) {
	case MQTT_PUBLISH:
		mqtt_publish_in(cl, &p->u.publish);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		mqtt_ack_in(cl, p->type, &p->u.ack);
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
		on_pingreq(cl);
		break;
	case MQTT_DISCONNECT:
		on_disconnect(cl, &p->u.disconnect);
		break;
	case MQTT_AUTH:		/* the CONNECT had no Authentication Method */
		mqtt_close(cl, MQTT_RC_PROTOCOL_ERROR, "AUTH without an authentication method");
		break;
	}
}

/* What needs connection state: CONNECT first and once, direction. */
static void
on_any_packet(struct client *cl, struct mqtt_packet *p)
{
	struct mqtt_conn *mc = mqtt_conn(cl);

	if (!mc->connected && p->type != MQTT_CONNECT)
		client_close(cl, "a packet before CONNECT");
	else if (!(mqtt_type_dir(p->type, mc->level ? mc->level : p->level) & MQTT_FROM_CLIENT))
		mqtt_close(cl, MQTT_RC_PROTOCOL_ERROR, "a server-to-client packet from the client");
	else if (p->type == MQTT_CONNECT && mc->connected)
		mqtt_close(cl, MQTT_RC_PROTOCOL_ERROR, "a second CONNECT");
	else if (p->type == MQTT_CONNECT)
		on_connect(cl, &p->u.connect);
	else
		on_packet(cl, p);
}

/* A packet that does not decode: a first CONNECT is refused (a level-5
 * one with the reason code, 3.2.2.2); a second one is the protocol error
 * any second CONNECT is, whatever is wrong with it (a CONNACK in the
 * middle of a session would be taken for the answer to the first);
 * anything else closes the connection (at level 5 with a DISCONNECT that
 * says why). */
static void
on_bad_packet(struct client *cl, const struct mqtt_packet *p, int rc)
{
	char why[160];

	/* A reserved type (0, or AUTH below 5.0) has no name to be a
	 * malformed one of. */
	if (mqtt_type_dir(p->type, p->level) == 0)
		snprintf(why, sizeof(why), "a packet of reserved type %u", p->type);
	else
		snprintf(why, sizeof(why), "malformed %s: %s", mqtt_type_name(p->type),
		    p->error ? p->error : "?");
	if (p->type == MQTT_CONNECT && mqtt_conn(cl)->connected)
		mqtt_close(cl, MQTT_RC_PROTOCOL_ERROR, "a second CONNECT");
	else if (rc == MQTT_E_BAD_LEVEL)
		mqtt_refuse(cl, MQTT_LEVEL_311, 0, MQTT_CONNACK_BAD_VERSION,
		    "unsupported MQTT protocol level");
	else if (p->type == MQTT_CONNECT && p->level == MQTT_LEVEL_5)
		mqtt_refuse(cl, MQTT_LEVEL_5, mqtt_error_reason(rc), 0xff, why);
	else
		mqtt_close(cl, mqtt_error_reason(rc), why);
}

/* Handles one framed packet; returns -1 when the connection is done. */
static int
one_packet(struct client *cl, const uint8_t *pkt, size_t len)
{
	struct mqtt_packet p;
	int rc = mqtt_decode(pkt, len, mqtt_conn(cl)->level, &p);

	if (rc < 0)
		on_bad_packet(cl, &p, rc);
	else
		on_any_packet(cl, &p);
	mqtt_packet_free(&p);
	return cl->closing ? -1 : 0;
}

/* The largest packet taken: before the CONNECT, and from MQTT 3.1 and
 * 3.1.1 clients, message_size_limit with a topic and headers (within
 * max_packet_size); MQTT 5.0 clients were told theirs. */
static size_t
frame_limit(const struct client *cl)
{
	const struct settings *set = &cl->b->set;
	const struct mqtt_conn *mc = mqtt_conn(cl);
	size_t limit = set->message_size_limit + MQTT_MAX_STRING + 16;

	if (mc->level == MQTT_LEVEL_5 && mc->told_max_packet > 0)
		return mc->told_max_packet;
	if (mc->level == MQTT_LEVEL_5 || mc->level == 0)
		return mqtt_max_packet_in(cl->b);
	return set->max_packet_size > 0 && set->max_packet_size < limit ?
	    set->max_packet_size : limit;
}

/* A CONNECT's first bytes that say its level: the fixed header, the
 * protocol name ("MQIsdp" at most) and the level. */
#define MQTT_CONNECT_HEAD	(5 + 2 + 6 + 1)

/* A packet over the limit: DISCONNECT 0x95 once connected.  A first
 * packet that is a level-5 CONNECT gets CONNACK 0x95 (3.2.2.2) once the
 * bytes that say its level are in (the wait for them is the wait for a
 * CONNECT, bounded by connect_timeout); any other first packet only closes
 * the connection. */
static void
too_large(struct client *cl, struct evbuffer *in, size_t have)
{
	static const char why[] =
	    "packet larger than message_size_limit or max_packet_size allows";
	size_t n = have < MQTT_CONNECT_HEAD ? have : MQTT_CONNECT_HEAD;
	uint8_t level = 0;
	int rc;

	if (mqtt_conn(cl)->connected) {
		mqtt_close(cl, MQTT_RC_PACKET_TOO_LARGE, why);
		return;
	}
	rc = mqtt_connect_level(evbuffer_pullup(in, (ssize_t)n), n, &level);
	if (rc == 1 && level == MQTT_LEVEL_5)
		mqtt_refuse(cl, MQTT_LEVEL_5, MQTT_RC_PACKET_TOO_LARGE, 0xff, why);
	else if (rc != 0)
		client_close_fault(cl, why);
}

/* A packet missing more than libevent reads in a pass (4 KiB) has the
 * rest read at once, up to this much per call. */
#define MQTT_READ_MORE_OVER	(16 * 1024)
#define MQTT_READ_MORE_BUDGET	(1024 * 1024)

static void
mqtt_read(struct client *cl)
{
	struct evbuffer *in = client_input(cl);
	size_t limit = frame_limit(cl), total = 0, budget = MQTT_READ_MORE_BUDGET;
	ssize_t n;

	while (!cl->closing && !client_throttled(cl)) {
		size_t have = evbuffer_get_length(in);
		const uint8_t *head = evbuffer_pullup(in, (ssize_t)(have < 5 ? have : 5));
		int rc;

		total = 0;
		if (have == 0)
			break;
		rc = mqtt_frame(head, have < 5 ? have : 5, limit, &total);
		if (rc == MQTT_E_TOO_LARGE) {
			too_large(cl, in, have);
			break;
		}
		if (rc < 0) {
			mqtt_close(cl, MQTT_RC_MALFORMED_PACKET, "malformed remaining length");
			break;
		}
		/* With only the header in view, 0 still sets *total once the
		 * length bytes are complete. */
		/* The rest of a large packet at once; a budget per call keeps
		 * one fast publisher from holding the loop. */
		if (have < total && total - have > MQTT_READ_MORE_OVER && budget > 0 &&
		    (n = client_read_more(cl, total - have)) > 0) {
			budget -= (size_t)n < budget ? (size_t)n : budget;
			continue;
		}
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
		limit = frame_limit(cl);	/* the CONNECT may have set the level */
	}
}

/* The will of a connection that ended without DISCONNECT: published, or
 * handed to its session to wait for its delay (will.c); else its record
 * goes. */
static void
will_on_close(struct client *cl, struct session *s, bool stays)
{
	struct mqtt_conn *mc = mqtt_conn(cl);

	if (mc->connected && mc->will != NULL)
		mqtt_will_end(cl, s, stays, mc->will_key);
	else if (mc->will_key != NULL)
		mqtt_will_unstore(cl->b, mc->will_key);
	free(mc->will_key);
	mc->will_key = NULL;
	mqtt_will_free(mc->will);
	mc->will = NULL;
}

/* The connection ended: the will unless it said DISCONNECT, deliveries
 * stop, a clean session ends with it (and releases what it staged). */
static void
mqtt_closed(struct client *cl)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct session *s = cl->session;
	struct attachment *a;
	bool stays = session_stays(cl, s);

	if (mc->connected && mc->level == MQTT_LEVEL_5)
		cl->b->mqtt5_clients--;

	will_on_close(cl, s, stays);
	while ((a = TAILQ_FIRST(&cl->attached)) != NULL)
		attach_end(a, stays);
	owner_closed(cl, !stays);
	if (s != NULL) {
		session_offline(s);
		if (!s->persistent)
			session_free(s);
		else if (!stays)
			session_delete(s);
		else
			(void)session_save(s);
	}
	mqtt_inbound_free(mc);
	alias_free(&mc->alias_in);
	alias_free(&mc->alias_out);
	free(mc->client_id);
	free(mc);
}

static void
mqtt_stopping(struct client *cl)
{
	mqtt_close(cl, MQTT_RC_SERVER_SHUTTING_DOWN, "broker shutting down");
}

const struct proto mqtt_proto = {
	.name = "MQTT",
	.start = mqtt_start,
	.read = mqtt_read,
	.deliver = mqtt_deliver,
	.deliver_copy = mqtt_deliver_copy,
	.can_take = mqtt_can_take,
	.idle = mqtt_idle,
	.closed = mqtt_closed,
	.stopping = mqtt_stopping,
};
