/* MQTT 5.0 on a connection: the CONNECT's properties, the CONNACK's, the
 * reason codes of refusals, acknowledgements and server DISCONNECTs, and a
 * client's DISCONNECT (its Session Expiry Interval and the will). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mqtt/mqtt_int.h"
#include "topic.h"
#include "xmalloc.h"

/* A Reason String is a UTF-8 string (1.5.4): a packet with a broken one
 * would not encode, and the client would get none.  What the broker logs
 * may quote what a client sent, cut at so many bytes: the text goes up
 * to its first broken character. */
static void
add_reason_string(struct mqtt_props *ps, const char *why)
{
	size_t n = utf8_prefix(why, strlen(why));

	if (n > 0)
		(void)mqtt_props_add(ps, &(struct mqtt_prop){ .id = MQTT_PROP_REASON_STRING,
		    .str = { why, n } });
}

/* Reason String and User Property go only where the client allows
 * (3.1.2.11.7); why is what the broker logs. */
static void
add_reason(const struct client *cl, struct mqtt_props *ps, const char *why)
{
	if (why != NULL && mqtt_conn(cl)->problem_info)
		add_reason_string(ps, why);
}

/* Is p larger than the client's Maximum Packet Size (3.1.2-24)? */
static bool
over_max(const struct client *cl, const struct mqtt_packet *p)
{
	uint32_t max = mqtt_conn(cl)->max_packet;

	return max > 0 && mqtt_packet_size(p) > max;
}

/* Encodes p, leaving out its Reason String and User Properties if the
 * packet would be larger than the client's Maximum Packet Size (3.2.2-19,
 * 3.2.2-20 and their like in every packet), and sends it; false (not
 * sent) if it is larger all the same. */
static bool
send_packet(struct client *cl, struct mqtt_packet *p, struct mqtt_props *ps)
{
	struct wbuf w;
	bool sent = false;

	if (over_max(cl, p)) {
		mqtt_props_del(ps, MQTT_PROP_REASON_STRING);
		mqtt_props_del(ps, MQTT_PROP_USER);
	}
	if (over_max(cl, p)) {
		log_info("client %s: a %s of %zu bytes is over its Maximum Packet Size (%u): "
		    "not sent", cl->desc, mqtt_type_name(p->type), mqtt_packet_size(p),
		    mqtt_conn(cl)->max_packet);
		return false;
	}
	wbuf_init(&w);
	if (mqtt_encode(&w, p) == 0) {
		mqtt_send(cl, &w);
		sent = true;
	} else
		log_warnx("client %s: cannot encode a %s", cl->desc, mqtt_type_name(p->type));
	wbuf_free(&w);
	return sent;
}

void
mqtt_send_reason_ack(struct client *cl, uint8_t type, uint16_t pid, uint8_t rc, const char *why)
{
	struct mqtt_packet p = { .type = type, .level = MQTT_LEVEL_5 };

	if (!mqtt_v5(cl)) {
		mqtt_send_ack(cl, type, pid);
		return;
	}
	p.u.ack.packet_id = pid;
	p.u.ack.reason = rc;
	if (rc != MQTT_RC_SUCCESS)
		add_reason(cl, &p.u.ack.props, why);
	(void)send_packet(cl, &p, &p.u.ack.props);
	mqtt_props_free(&p.u.ack.props);
}

/* An error the client made (what it sent): its close is a notice.  Not
 * an end that may come to any client (keep-alive, shutdown, takeover,
 * the server's trouble), nor a failed login or a refused one, each
 * logged on its own. */
static bool
client_fault(uint8_t rc5, uint8_t rc3)
{
	switch (rc5) {
	case MQTT_RC_BAD_USERNAME_PASSWORD:
	case MQTT_RC_NOT_AUTHORIZED:
	case MQTT_RC_SERVER_UNAVAILABLE:
	case MQTT_RC_SERVER_BUSY:
	case MQTT_RC_SERVER_SHUTTING_DOWN:
	case MQTT_RC_KEEP_ALIVE_TIMEOUT:
	case MQTT_RC_SESSION_TAKEN_OVER:
		return false;
	default:
		return rc5 >= 0x80 || rc3 == MQTT_CONNACK_BAD_VERSION ||
		    rc3 == MQTT_CONNACK_ID_REJECTED;
	}
}

void
mqtt_close(struct client *cl, uint8_t rc, const char *why)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct mqtt_packet p = { .type = MQTT_DISCONNECT, .level = MQTT_LEVEL_5 };

	if (cl->closing)
		return;
	if (mc->connected && mc->level == MQTT_LEVEL_5) {
		p.u.disconnect.reason = rc;
		add_reason(cl, &p.u.disconnect.props, why);
		(void)send_packet(cl, &p, &p.u.disconnect.props);
		mqtt_props_free(&p.u.disconnect.props);
		cl->b->mqtt5_disconnects++;
	}
	if (client_fault(rc, 0xff))
		client_close_fault(cl, why);
	else
		client_close(cl, why);
}

void
mqtt_enc_refusal(const struct client *cl, struct wbuf *w, uint8_t level, uint8_t rc5,
    uint8_t rc3, const char *why)
{
	struct mqtt_packet p = { .type = MQTT_CONNACK,
	    .level = level == MQTT_LEVEL_5 ? level : MQTT_LEVEL_311 };
	struct mqtt_connack *c = &p.u.connack;

	c->return_code = level == MQTT_LEVEL_5 ? rc5 : rc3;
	/* A CONNACK may always carry a Reason String (3.1.2-29), where it
	 * fits (3.2.2-19). */
	if (level == MQTT_LEVEL_5 && why != NULL)
		add_reason_string(&c->props, why);
	if (over_max(cl, &p))
		mqtt_props_del(&c->props, MQTT_PROP_REASON_STRING);
	if (mqtt_encode(w, &p) == -1)
		log_warnx("cannot encode a CONNACK %#x", c->return_code);
	mqtt_props_free(&c->props);
}

void
mqtt_refuse(struct client *cl, uint8_t level, uint8_t rc5, uint8_t rc3, const char *why)
{
	struct wbuf w;

	if (level == MQTT_LEVEL_5 || rc3 != 0xff) {
		wbuf_init(&w);
		mqtt_enc_refusal(cl, &w, level, rc5, rc3, why);
		mqtt_send(cl, &w);
		wbuf_free(&w);
	}
	if (client_fault(rc5, rc3))
		client_close_fault(cl, why);
	else
		client_close(cl, why);
}

size_t
mqtt_max_packet_in(const struct broker *b)
{
	/* message_size_limit bounds payloads (as in mosquitto); a packet
	 * may add a topic, headers and properties to that. */
	size_t implied = b->set.message_size_limit + 2 * MQTT_MAX_STRING + 64;

	if (b->set.max_packet_size > 0 && b->set.max_packet_size < implied)
		return b->set.max_packet_size;
	return implied < MQTT_MAX_PACKET ? implied : MQTT_MAX_PACKET;
}

/* The CONNECT's properties into the connection; -1 for an authentication
 * method (none is supported: 4.12). */
bool
mqtt5_connect_props(struct client *cl, const struct mqtt_connect *c)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	const struct mqtt_props *ps = &c->props;
	uint32_t v;
	struct mqtt_str method;

	mc->problem_info = true;
	mc->recv_max = UINT16_MAX;
	mc->session_expiry = 0;
	(void)mqtt_props_get_u32(ps, MQTT_PROP_SESSION_EXPIRY, &mc->session_expiry);
	if (mqtt_props_get_u32(ps, MQTT_PROP_REQUEST_PROBLEM_INFO, &v))
		mc->problem_info = v != 0;
	if (mqtt_props_get_u32(ps, MQTT_PROP_RECEIVE_MAXIMUM, &v))
		mc->recv_max = (uint16_t)v;
	v = 0;
	(void)mqtt_props_get_u32(ps, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, &v);
	/* Aliases to the client: a few, looked up one by one. */
	alias_init(&mc->alias_out, (uint16_t)(v < 64 ? v : 64));
	alias_init(&mc->alias_in, (uint16_t)cl->b->set.max_topic_alias);
	if (mqtt_props_get_string(ps, MQTT_PROP_AUTH_METHOD, &method)) {
		char why[128];

		snprintf(why, sizeof(why), "authentication method %.*s is not supported",
		    (int)utf8_prefix(method.p, method.len < 64 ? method.len : 64), method.p);
		mqtt_refuse(cl, MQTT_LEVEL_5, MQTT_RC_BAD_AUTH_METHOD, 0xff, why);
		return false;
	}
	return true;
}

/* What the server tells every client of itself (3.2.2.3); the
 * connection keeps its limits as told, whatever a reload sets later. */
static void
server_props(struct client *cl, struct mqtt_props *ps)
{
	const struct settings *set = &cl->b->set;
	struct mqtt_conn *mc = mqtt_conn(cl);

	mc->told_recv_max = set->max_inflight_messages < UINT16_MAX ?
	    set->max_inflight_messages : UINT16_MAX;
	mc->told_max_packet = mqtt_max_packet_in(cl->b);
	if (mc->told_recv_max < UINT16_MAX)
		(void)mqtt_props_add_u32(ps, MQTT_PROP_RECEIVE_MAXIMUM, mc->told_recv_max);
	(void)mqtt_props_add_u32(ps, MQTT_PROP_RETAIN_AVAILABLE, 1);
	(void)mqtt_props_add_u32(ps, MQTT_PROP_MAXIMUM_PACKET_SIZE,
	    (uint32_t)mc->told_max_packet);
	if (set->max_topic_alias > 0)
		(void)mqtt_props_add_u32(ps, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, set->max_topic_alias);
	(void)mqtt_props_add_u32(ps, MQTT_PROP_WILDCARD_SUB_AVAILABLE, 1);
	(void)mqtt_props_add_u32(ps, MQTT_PROP_SUB_ID_AVAILABLE, 1);
	(void)mqtt_props_add_u32(ps, MQTT_PROP_SHARED_SUB_AVAILABLE, 1);
}

/* What an accepted CONNACK leaves out, in this order, where it would be
 * larger than the client's Maximum Packet Size: what says the default
 * (available), then what the client does without (Response Information;
 * a Topic Alias Maximum, without which it sends no aliases).  What is
 * left says limits the client must know. */
static const uint8_t connack_optional[] = {
	MQTT_PROP_RETAIN_AVAILABLE, MQTT_PROP_WILDCARD_SUB_AVAILABLE,
	MQTT_PROP_SUB_ID_AVAILABLE, MQTT_PROP_SHARED_SUB_AVAILABLE,
	MQTT_PROP_RESPONSE_INFO, MQTT_PROP_TOPIC_ALIAS_MAXIMUM,
};

static void
fit_connack(const struct client *cl, struct mqtt_packet *p)
{
	for (size_t i = 0; i < sizeof(connack_optional) / sizeof(connack_optional[0]) &&
	    over_max(cl, p); i++)
		mqtt_props_del(&p->u.connack.props, connack_optional[i]);
}

/* The CONNACK of an accepted level-5 CONNECT, with what this connection
 * got: its client id if assigned, its keep-alive and session expiry if
 * the server changed them, Response Information if asked for.  One that
 * the client's Maximum Packet Size cannot take closes the connection. */
void
mqtt5_send_connack(struct client *cl, bool present, const struct mqtt_connect *c)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct mqtt_packet p = { .type = MQTT_CONNACK, .level = MQTT_LEVEL_5 };
	struct mqtt_props *ps = &p.u.connack.props;
	uint32_t asked = 0, rri = 0;
	bool told;
	uint16_t ka = keepalive_granted(c->keepalive, cl->b->set.max_keepalive, &told);

	p.u.connack.session_present = present;
	server_props(cl, ps);
	if (c->client_id[0] == '\0')
		(void)mqtt_props_add_string(ps, MQTT_PROP_ASSIGNED_CLIENT_ID, mc->client_id);
	if (told)
		(void)mqtt_props_add_u32(ps, MQTT_PROP_SERVER_KEEP_ALIVE, ka);
	(void)mqtt_props_get_u32(&c->props, MQTT_PROP_SESSION_EXPIRY, &asked);
	if (asked != mc->session_expiry)
		(void)mqtt_props_add_u32(ps, MQTT_PROP_SESSION_EXPIRY, mc->session_expiry);
	if (mqtt_props_get_u32(&c->props, MQTT_PROP_REQUEST_RESPONSE_INFO, &rri) && rri &&
	    cl->b->set.response_information != NULL)
		(void)mqtt_props_add_string(ps, MQTT_PROP_RESPONSE_INFO,
		    cl->b->set.response_information);
	fit_connack(cl, &p);
	if (!send_packet(cl, &p, ps))
		client_close(cl, "CONNACK larger than the client's Maximum Packet Size");
	mqtt_props_free(ps);
}

/* The Session Expiry Interval as the core keeps it, capped by
 * persistent_client_expiration; the connection learns the interval the
 * server uses. */
void
mqtt5_session_expiry(struct client *cl, struct session *s)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	bool capped;
	uint64_t ms;

	if (mc->level != MQTT_LEVEL_5) {
		s->expiry_ms = 0;	/* persistent_client_expiration */
		return;
	}
	ms = expiry_ms(mc->session_expiry, cl->b->set.persistent_client_expiration, &capped);
	if (capped)
		mc->session_expiry = (uint32_t)((ms + 999) / 1000);
	s->expiry_ms = ms == 0 ? 1 : ms;
}

bool
mqtt5_disconnect_in(struct client *cl, const struct mqtt_disconnect *d)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	uint32_t v = 0;
	bool given = mqtt_props_get_u32(&d->props, MQTT_PROP_SESSION_EXPIRY, &v);
	int64_t e = expiry_at_disconnect(mc->session_expiry, given, v);

	if (e < 0) {
		mqtt_close(cl, MQTT_RC_PROTOCOL_ERROR,
		    "DISCONNECT sets a Session Expiry Interval after a CONNECT of 0");
		return false;
	}
	mc->session_expiry = (uint32_t)e;
	if (cl->session != NULL && cl->session->persistent)
		mqtt5_session_expiry(cl, cl->session);
	return true;
}
