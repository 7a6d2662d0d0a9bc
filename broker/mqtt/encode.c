/* MQTT control packets: the encoders.  Every packet goes through
 * mqtt_encode(), which runs its check (check.c) first, so that nothing is
 * written that would not decode back to the same fields; the typed
 * encoders build a packet and call it. */
#include "mqtt/wire.h"

#include <string.h>

/* The fixed header: type and flags, then the Remaining Length. */
static void
put_header(struct wbuf *w, uint8_t type, uint8_t flags, size_t rem)
{
	put_u8(w, (uint8_t)(type << 4 | flags));
	mqtt_wr_varint(w, rem);
}

static void
put_props(struct wbuf *w, const struct mqtt_props *ps, bool v5)
{
	if (v5)
		mqtt_props_write(w, ps);
}

static uint8_t
connect_flags(const struct mqtt_connect *c)
{
	uint8_t flags = 0;

	flags |= c->username != NULL ? 0x80 : 0;
	flags |= c->password != NULL ? 0x40 : 0;
	flags |= c->will_retain ? 0x20 : 0;
	flags |= (uint8_t)(c->will_qos << 3);
	flags |= c->will ? 0x04 : 0;
	flags |= c->clean_session ? 0x02 : 0;
	return flags;
}

static void
enc_connect(struct wbuf *w, const struct mqtt_connect *c)
{
	bool v5 = mqtt_is_v5(c->level);

	mqtt_wr_string(w, c->level == MQTT_LEVEL_31 ? "MQIsdp" : "MQTT");
	put_u8(w, c->level);
	put_u8(w, connect_flags(c));
	mqtt_wr_u16(w, c->keepalive);
	put_props(w, &c->props, v5);
	mqtt_wr_string(w, c->client_id);
	if (c->will) {
		put_props(w, &c->will_props, v5);
		mqtt_wr_string(w, c->will_topic);
		mqtt_wr_field(w, c->will_payload, c->will_len);
	}
	if (c->username != NULL)
		mqtt_wr_string(w, c->username);
	if (c->password != NULL)
		mqtt_wr_field(w, c->password, c->password_len);
}

static void
enc_publish(struct wbuf *w, const struct mqtt_publish *pub, bool v5)
{
	mqtt_wr_string(w, pub->topic);
	if (pub->qos > 0)
		mqtt_wr_u16(w, pub->packet_id);
	put_props(w, &pub->props, v5);
	if (pub->len > 0)
		put_raw(w, pub->payload, pub->len);
}

/* What follows an ack's packet identifier, or makes a DISCONNECT. */
static void
enc_tail(struct wbuf *w, uint8_t reason, uint8_t form,
    const struct mqtt_props *ps, bool v5)
{
	uint8_t need = ps->n > 0 ? MQTT_FORM_PROPS :
	    reason != 0 ? MQTT_FORM_REASON : MQTT_FORM_MINIMAL;

	if (!v5)
		return;
	if (form > need)
		need = form;
	if (need >= MQTT_FORM_REASON)
		put_u8(w, reason);
	if (need == MQTT_FORM_PROPS)
		mqtt_props_write(w, ps);
}

static void
enc_subscribe(struct wbuf *w, const struct mqtt_subscribe *s, bool v5)
{
	const struct mqtt_sub_item *it;
	size_t i;

	mqtt_wr_u16(w, s->packet_id);
	put_props(w, &s->props, v5);
	for (i = 0; i < s->n; i++) {
		it = &s->items[i];
		mqtt_wr_string(w, it->filter);
		put_u8(w, (uint8_t)(it->qos | (it->no_local ? 0x4 : 0) |
		    (it->retain_as_published ? 0x8 : 0) |
		    it->retain_handling << 4));
	}
}

static void
enc_suback(struct wbuf *w, const struct mqtt_suback *s, bool v5)
{
	mqtt_wr_u16(w, s->packet_id);
	put_props(w, &s->props, v5);
	if (s->n > 0)
		put_raw(w, s->codes, s->n);
}

static void
enc_unsubscribe(struct wbuf *w, const struct mqtt_unsubscribe *u, bool v5)
{
	size_t i;

	mqtt_wr_u16(w, u->packet_id);
	put_props(w, &u->props, v5);
	for (i = 0; i < u->n; i++)
		mqtt_wr_string(w, u->filters[i]);
}

static uint8_t
header_flags(const struct mqtt_packet *p)
{
	const struct mqtt_publish *pub = &p->u.publish;

	switch (p->type) {
	case MQTT_PUBLISH:
		return (uint8_t)((pub->dup ? 0x8 : 0) | pub->qos << 1 |
		    (pub->retain ? 0x1 : 0));
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		return 0x2;
	default:
		return 0;
	}
}

static void
enc_body(struct wbuf *w, const struct mqtt_packet *p, bool v5)
{
	const struct mqtt_ack *a = &p->u.ack;
	const struct mqtt_disconnect *d = &p->u.disconnect;

	switch (p->type) {
	case MQTT_CONNECT:
		enc_connect(w, &p->u.connect);
		break;
	case MQTT_CONNACK:
		put_u8(w, p->u.connack.session_present ? 1 : 0);
		put_u8(w, p->u.connack.return_code);
		put_props(w, &p->u.connack.props, v5);
		break;
	case MQTT_PUBLISH:
		enc_publish(w, &p->u.publish, v5);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		mqtt_wr_u16(w, a->packet_id);
		enc_tail(w, a->reason, a->form, &a->props, v5);
		break;
	case MQTT_SUBSCRIBE:
		enc_subscribe(w, &p->u.subscribe, v5);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		enc_suback(w, &p->u.suback, v5);
		break;
	case MQTT_UNSUBSCRIBE:
		enc_unsubscribe(w, &p->u.unsubscribe, v5);
		break;
	case MQTT_DISCONNECT:
		enc_tail(w, d->reason, d->form, &d->props, v5);
		break;
	case MQTT_AUTH:
		put_u8(w, p->u.auth.reason);
		mqtt_props_write(w, &p->u.auth.props);
		break;
	}
}

int
mqtt_encode(struct wbuf *w, const struct mqtt_packet *p)
{
	struct chk c;

	if (mqtt_chk_packet(p, &c) != NULL)
		return -1;
	put_header(w, p->type, header_flags(p), c.rem);
	enc_body(w, p, c.v5);
	return 0;
}

int
mqtt_enc_connect(struct wbuf *w, const struct mqtt_connect *c)
{
	struct mqtt_packet p = { .type = MQTT_CONNECT, .level = c->level,
	    .u.connect = *c };

	return mqtt_encode(w, &p);
}

int
mqtt_enc_connack(struct wbuf *w, uint8_t level, const struct mqtt_connack *c)
{
	struct mqtt_packet p = { .type = MQTT_CONNACK, .level = level,
	    .u.connack = *c };

	return mqtt_encode(w, &p);
}

int
mqtt_enc_publish(struct wbuf *w, uint8_t level,
    const struct mqtt_publish *pub)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH, .level = level,
	    .u.publish = *pub };

	return mqtt_encode(w, &p);
}

int
mqtt_enc_publish_head(struct wbuf *w, uint8_t level,
    const struct mqtt_publish *pub)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH, .level = level,
	    .u.publish = *pub };
	struct chk c;

	if (mqtt_chk_packet(&p, &c) != NULL)
		return -1;
	put_header(w, MQTT_PUBLISH, header_flags(&p), c.rem);
	p.u.publish.len = 0;		/* the caller's to send */
	enc_publish(w, &p.u.publish, c.v5);
	return 0;
}

static bool
is_pub_ack(uint8_t type)
{
	return type >= MQTT_PUBACK && type <= MQTT_PUBCOMP;
}

int
mqtt_enc_ack(struct wbuf *w, uint8_t type, uint16_t packet_id)
{
	struct mqtt_packet p = { .type = type, .level = MQTT_LEVEL_311 };

	if (type == MQTT_UNSUBACK)
		p.u.suback.packet_id = packet_id;
	else if (is_pub_ack(type))
		p.u.ack.packet_id = packet_id;
	else
		return -1;
	return mqtt_encode(w, &p);
}

int
mqtt_enc_pub_ack(struct wbuf *w, uint8_t level, uint8_t type,
    const struct mqtt_ack *a)
{
	struct mqtt_packet p = { .type = type, .level = level, .u.ack = *a };

	return is_pub_ack(type) ? mqtt_encode(w, &p) : -1;
}

int
mqtt_enc_subscribe(struct wbuf *w, uint8_t level,
    const struct mqtt_subscribe *s)
{
	struct mqtt_packet p = { .type = MQTT_SUBSCRIBE, .level = level,
	    .u.subscribe = *s };

	return mqtt_encode(w, &p);
}

int
mqtt_enc_suback(struct wbuf *w, uint8_t level, uint8_t type,
    const struct mqtt_suback *s)
{
	struct mqtt_packet p = { .type = type, .level = level,
	    .u.suback = *s };

	if (type != MQTT_SUBACK && type != MQTT_UNSUBACK)
		return -1;
	return mqtt_encode(w, &p);
}

int
mqtt_enc_unsubscribe(struct wbuf *w, uint8_t level,
    const struct mqtt_unsubscribe *u)
{
	struct mqtt_packet p = { .type = MQTT_UNSUBSCRIBE, .level = level,
	    .u.unsubscribe = *u };

	return mqtt_encode(w, &p);
}

int
mqtt_enc_disconnect(struct wbuf *w, uint8_t level,
    const struct mqtt_disconnect *d)
{
	struct mqtt_packet p = { .type = MQTT_DISCONNECT, .level = level,
	    .u.disconnect = *d };

	return mqtt_encode(w, &p);
}

int
mqtt_enc_auth(struct wbuf *w, const struct mqtt_auth *a)
{
	struct mqtt_packet p = { .type = MQTT_AUTH, .level = MQTT_LEVEL_5,
	    .u.auth = *a };

	return mqtt_encode(w, &p);
}

int
mqtt_enc_simple(struct wbuf *w, uint8_t type)
{
	struct mqtt_packet p = { .type = type, .level = MQTT_LEVEL_311 };

	if (type != MQTT_PINGREQ && type != MQTT_PINGRESP &&
	    type != MQTT_DISCONNECT)
		return -1;
	return mqtt_encode(w, &p);
}
