/* MQTT control packets: the rules every packet must obey (shared by the
 * decoder and the encoders), the encoders, and the packet-type table.
 * Decoding and framing are in mqtt_decode.c. */
#include "mqtt_codec.h"

#include <stdlib.h>
#include <string.h>

#include "topic.h"

static const struct {
	const char	*name;
	int		 dir;
} types[16] = {
	[MQTT_CONNECT] =	{ "CONNECT",	MQTT_FROM_CLIENT },
	[MQTT_CONNACK] =	{ "CONNACK",	MQTT_FROM_SERVER },
	[MQTT_PUBLISH] =	{ "PUBLISH",	MQTT_FROM_CLIENT | MQTT_FROM_SERVER },
	[MQTT_PUBACK] =		{ "PUBACK",	MQTT_FROM_CLIENT | MQTT_FROM_SERVER },
	[MQTT_PUBREC] =		{ "PUBREC",	MQTT_FROM_CLIENT | MQTT_FROM_SERVER },
	[MQTT_PUBREL] =		{ "PUBREL",	MQTT_FROM_CLIENT | MQTT_FROM_SERVER },
	[MQTT_PUBCOMP] =	{ "PUBCOMP",	MQTT_FROM_CLIENT | MQTT_FROM_SERVER },
	[MQTT_SUBSCRIBE] =	{ "SUBSCRIBE",	MQTT_FROM_CLIENT },
	[MQTT_SUBACK] =		{ "SUBACK",	MQTT_FROM_SERVER },
	[MQTT_UNSUBSCRIBE] =	{ "UNSUBSCRIBE", MQTT_FROM_CLIENT },
	[MQTT_UNSUBACK] =	{ "UNSUBACK",	MQTT_FROM_SERVER },
	[MQTT_PINGREQ] =	{ "PINGREQ",	MQTT_FROM_CLIENT },
	[MQTT_PINGRESP] =	{ "PINGRESP",	MQTT_FROM_SERVER },
	[MQTT_DISCONNECT] =	{ "DISCONNECT",	MQTT_FROM_CLIENT },
};

const char *
mqtt_type_name(uint8_t type)
{
	if (type >= 16 || types[type].name == NULL)
		return "reserved";
	return types[type].name;
}

int
mqtt_type_dir(uint8_t type)
{
	return type < 16 ? types[type].dir : 0;
}

size_t
mqtt_varint_len(size_t n)
{
	if (n < 128)
		return 1;
	if (n < 16384)
		return 2;
	if (n < 2097152)
		return 3;
	if (n <= MQTT_MAX_REMAINING)
		return 4;
	return 0;
}

void
mqtt_packet_free(struct mqtt_packet *p)
{
	size_t i;

	switch (p->type) {
	case MQTT_CONNECT:
		free(p->u.connect.client_id);
		free(p->u.connect.will_topic);
		free(p->u.connect.username);
		break;
	case MQTT_PUBLISH:
		free(p->u.publish.topic);
		break;
	case MQTT_SUBSCRIBE:
		for (i = 0; p->u.subscribe.items != NULL &&
		    i < p->u.subscribe.n; i++)
			free(p->u.subscribe.items[i].filter);
		free(p->u.subscribe.items);
		break;
	case MQTT_UNSUBSCRIBE:
		for (i = 0; p->u.unsubscribe.filters != NULL &&
		    i < p->u.unsubscribe.n; i++)
			free(p->u.unsubscribe.filters[i]);
		free(p->u.unsubscribe.filters);
		break;
	}
	memset(&p->u, 0, sizeof(p->u));
}

/*
 * The checks.  Each also adds the packet's Remaining Length to *rem, and
 * fails once it would exceed MQTT_MAX_REMAINING.
 */

static const char *
add_len(size_t *rem, size_t n)
{
	if (n > MQTT_MAX_REMAINING - *rem)
		return "packet too large";
	*rem += n;
	return NULL;
}

/* A UTF-8 string field (1.5.3). */
static const char *
check_string(const char *s, size_t *rem)
{
	size_t n;

	if (s == NULL)
		return "missing string";
	n = strlen(s);
	if (n > MQTT_MAX_STRING)
		return "string longer than 65535 bytes";
	if (!utf8_valid(s, n))
		return "string is not well-formed UTF-8";
	return add_len(rem, 2 + n);
}

static const char *
check_topic(const char *s, bool filter, size_t *rem)
{
	enum topic_err e;
	size_t n;

	if (s == NULL)
		return "missing topic";
	n = strlen(s);
	e = filter ? topic_check_filter(s, n) : topic_check_name(s, n);
	if (e != TOPIC_OK)
		return topic_strerror(e);
	return add_len(rem, 2 + n);
}

static const char *
check_binary(const uint8_t *p, size_t n, size_t *rem)
{
	if (p == NULL && n > 0)
		return "missing binary data";
	if (n > MQTT_MAX_STRING)
		return "binary field longer than 65535 bytes";
	return add_len(rem, 2 + n);
}

static const char *
check_will(const struct mqtt_connect *c, size_t *rem)
{
	const char *e;

	if (!c->will) {
		if (c->will_qos != 0 || c->will_retain)
			return "will QoS or retain without a will";
		if (c->will_topic != NULL || c->will_payload != NULL ||
		    c->will_len != 0)
			return "will topic or message without a will";
		return NULL;
	}
	if (c->will_qos > 2)
		return "will QoS 3";
	if ((e = check_topic(c->will_topic, false, rem)) != NULL)
		return e;
	return check_binary(c->will_payload, c->will_len, rem);
}

static const char *
check_connect(const struct mqtt_connect *c, size_t *rem)
{
	const char *e;

	if (c->level != MQTT_LEVEL_311 && c->level != MQTT_LEVEL_31)
		return "unsupported protocol level";
	/* Protocol name, level, flags, keep alive. */
	*rem = (c->level == MQTT_LEVEL_31 ? 8 : 6) + 1 + 1 + 2;
	if ((e = check_string(c->client_id, rem)) != NULL)
		return e;
	if ((e = check_will(c, rem)) != NULL)
		return e;
	if (c->username != NULL &&
	    (e = check_string(c->username, rem)) != NULL)
		return e;
	if (c->password == NULL)
		return c->password_len == 0 ? NULL : "missing password";
	if (c->username == NULL)
		return "password without a user name";
	return check_binary(c->password, c->password_len, rem);
}

static const char *
check_connack(const struct mqtt_connack *c, size_t *rem)
{
	*rem = 2;
	if (c->return_code > MQTT_CONNACK_NOT_AUTHORIZED)
		return "reserved CONNACK return code";
	if (c->session_present && c->return_code != MQTT_CONNACK_ACCEPTED)
		return "session present on a refused connection";
	return NULL;
}

static const char *
check_publish(const struct mqtt_publish *p, size_t *rem)
{
	const char *e;

	*rem = 0;
	if (p->qos > 2)
		return "PUBLISH QoS 3";
	if (p->qos == 0 && p->dup)
		return "DUP flag on a QoS 0 PUBLISH";
	if ((e = check_topic(p->topic, false, rem)) != NULL)
		return e;
	if (p->qos > 0 && p->packet_id == 0)
		return "packet identifier 0";
	if (p->qos == 0 && p->packet_id != 0)
		return "packet identifier on a QoS 0 PUBLISH";
	if (p->qos > 0 && (e = add_len(rem, 2)) != NULL)
		return e;
	if (p->payload == NULL && p->len > 0)
		return "missing payload";
	return add_len(rem, p->len);
}

static const char *
check_subscribe(const struct mqtt_subscribe *s, size_t *rem)
{
	const char *e;
	size_t i;

	*rem = 2;
	if (s->packet_id == 0)
		return "packet identifier 0";
	if (s->n == 0 || s->items == NULL)
		return "SUBSCRIBE without topic filters";
	for (i = 0; i < s->n; i++) {
		if ((e = check_topic(s->items[i].filter, true, rem)) != NULL)
			return e;
		if (s->items[i].qos > 2)
			return "requested QoS above 2";
		if ((e = add_len(rem, 1)) != NULL)
			return e;
	}
	return NULL;
}

static const char *
check_suback(const struct mqtt_suback *s, size_t *rem)
{
	size_t i;

	*rem = 2;
	if (s->packet_id == 0)
		return "packet identifier 0";
	if (s->n == 0 || s->codes == NULL)
		return "SUBACK without return codes";
	for (i = 0; i < s->n; i++)
		if (s->codes[i] > 2 && s->codes[i] != MQTT_SUBACK_FAILURE)
			return "reserved SUBACK return code";
	return add_len(rem, s->n);
}

static const char *
check_unsubscribe(const struct mqtt_unsubscribe *u, size_t *rem)
{
	const char *e;
	size_t i;

	*rem = 2;
	if (u->packet_id == 0)
		return "packet identifier 0";
	if (u->n == 0 || u->filters == NULL)
		return "UNSUBSCRIBE without topic filters";
	for (i = 0; i < u->n; i++)
		if ((e = check_topic(u->filters[i], true, rem)) != NULL)
			return e;
	return NULL;
}

static const char *
check_packet(const struct mqtt_packet *p, size_t *rem)
{
	*rem = 0;
	switch (p->type) {
	case MQTT_CONNECT:
		return check_connect(&p->u.connect, rem);
	case MQTT_CONNACK:
		return check_connack(&p->u.connack, rem);
	case MQTT_PUBLISH:
		return check_publish(&p->u.publish, rem);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		*rem = 2;
		return p->u.ack.packet_id == 0 ? "packet identifier 0" : NULL;
	case MQTT_SUBSCRIBE:
		return check_subscribe(&p->u.subscribe, rem);
	case MQTT_SUBACK:
		return check_suback(&p->u.suback, rem);
	case MQTT_UNSUBSCRIBE:
		return check_unsubscribe(&p->u.unsubscribe, rem);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
	case MQTT_DISCONNECT:
		return NULL;
	}
	return "reserved packet type";
}

const char *
mqtt_check(const struct mqtt_packet *p)
{
	size_t rem;

	return check_packet(p, &rem);
}

/*
 * The encoders.  Wire integers are big-endian (1.5.2); strings and binary
 * fields are a 16-bit length and the bytes (1.5.3).
 */

static void
put_be16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { v >> 8, v & 0xff };

	put_raw(w, b, sizeof(b));
}

static void
put_field(struct wbuf *w, const void *p, size_t n)
{
	put_be16(w, (uint16_t)n);
	put_raw(w, p, n);
}

static void
put_string(struct wbuf *w, const char *s)
{
	put_field(w, s, strlen(s));
}

/* The fixed header: type and flags, then the Remaining Length. */
static void
put_header(struct wbuf *w, uint8_t type, uint8_t flags, size_t rem)
{
	uint8_t b[5];
	size_t n = 0;

	b[n++] = (uint8_t)(type << 4 | flags);
	do {
		b[n] = rem & 0x7f;
		rem >>= 7;
		if (rem > 0)
			b[n] |= 0x80;
		n++;
	} while (rem > 0);
	put_raw(w, b, n);
}

int
mqtt_enc_connect(struct wbuf *w, const struct mqtt_connect *c)
{
	uint8_t flags = 0;
	size_t rem;

	if (check_connect(c, &rem) != NULL)
		return -1;
	flags |= c->username != NULL ? 0x80 : 0;
	flags |= c->password != NULL ? 0x40 : 0;
	flags |= c->will_retain ? 0x20 : 0;
	flags |= (uint8_t)(c->will_qos << 3);
	flags |= c->will ? 0x04 : 0;
	flags |= c->clean_session ? 0x02 : 0;
	put_header(w, MQTT_CONNECT, 0, rem);
	put_string(w, c->level == MQTT_LEVEL_31 ? "MQIsdp" : "MQTT");
	put_u8(w, c->level);
	put_u8(w, flags);
	put_be16(w, c->keepalive);
	put_string(w, c->client_id);
	if (c->will) {
		put_string(w, c->will_topic);
		put_field(w, c->will_payload, c->will_len);
	}
	if (c->username != NULL)
		put_string(w, c->username);
	if (c->password != NULL)
		put_field(w, c->password, c->password_len);
	return 0;
}

int
mqtt_enc_connack(struct wbuf *w, bool session_present, uint8_t rc)
{
	struct mqtt_connack c = { session_present, rc };
	size_t rem;

	if (check_connack(&c, &rem) != NULL)
		return -1;
	put_header(w, MQTT_CONNACK, 0, rem);
	put_u8(w, session_present ? 1 : 0);
	put_u8(w, rc);
	return 0;
}

int
mqtt_enc_publish(struct wbuf *w, const struct mqtt_publish *pub)
{
	uint8_t flags;
	size_t rem;

	if (check_publish(pub, &rem) != NULL)
		return -1;
	flags = (uint8_t)((pub->dup ? 0x8 : 0) | pub->qos << 1 |
	    (pub->retain ? 0x1 : 0));
	put_header(w, MQTT_PUBLISH, flags, rem);
	put_string(w, pub->topic);
	if (pub->qos > 0)
		put_be16(w, pub->packet_id);
	put_raw(w, pub->payload, pub->len);
	return 0;
}

int
mqtt_enc_ack(struct wbuf *w, uint8_t type, uint16_t packet_id)
{
	if (packet_id == 0)
		return -1;
	switch (type) {
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		put_header(w, type, 0, 2);
		break;
	case MQTT_PUBREL:
		put_header(w, type, 0x2, 2);
		break;
	default:
		return -1;
	}
	put_be16(w, packet_id);
	return 0;
}

int
mqtt_enc_subscribe(struct wbuf *w, const struct mqtt_subscribe *s)
{
	size_t rem, i;

	if (check_subscribe(s, &rem) != NULL)
		return -1;
	put_header(w, MQTT_SUBSCRIBE, 0x2, rem);
	put_be16(w, s->packet_id);
	for (i = 0; i < s->n; i++) {
		put_string(w, s->items[i].filter);
		put_u8(w, s->items[i].qos);
	}
	return 0;
}

int
mqtt_enc_suback(struct wbuf *w, uint16_t packet_id, const uint8_t *codes,
    size_t n)
{
	struct mqtt_suback s = { packet_id, n, codes };
	size_t rem;

	if (check_suback(&s, &rem) != NULL)
		return -1;
	put_header(w, MQTT_SUBACK, 0, rem);
	put_be16(w, packet_id);
	put_raw(w, codes, n);
	return 0;
}

int
mqtt_enc_unsubscribe(struct wbuf *w, const struct mqtt_unsubscribe *u)
{
	size_t rem, i;

	if (check_unsubscribe(u, &rem) != NULL)
		return -1;
	put_header(w, MQTT_UNSUBSCRIBE, 0x2, rem);
	put_be16(w, u->packet_id);
	for (i = 0; i < u->n; i++)
		put_string(w, u->filters[i]);
	return 0;
}

int
mqtt_enc_simple(struct wbuf *w, uint8_t type)
{
	if (type != MQTT_PINGREQ && type != MQTT_PINGRESP &&
	    type != MQTT_DISCONNECT)
		return -1;
	put_header(w, type, 0, 0);
	return 0;
}

int
mqtt_encode(struct wbuf *w, const struct mqtt_packet *p)
{
	const struct mqtt_suback *s = &p->u.suback;

	switch (p->type) {
	case MQTT_CONNECT:
		return mqtt_enc_connect(w, &p->u.connect);
	case MQTT_CONNACK:
		return mqtt_enc_connack(w, p->u.connack.session_present,
		    p->u.connack.return_code);
	case MQTT_PUBLISH:
		return mqtt_enc_publish(w, &p->u.publish);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		return mqtt_enc_ack(w, p->type, p->u.ack.packet_id);
	case MQTT_SUBSCRIBE:
		return mqtt_enc_subscribe(w, &p->u.subscribe);
	case MQTT_SUBACK:
		return mqtt_enc_suback(w, s->packet_id, s->codes, s->n);
	case MQTT_UNSUBSCRIBE:
		return mqtt_enc_unsubscribe(w, &p->u.unsubscribe);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
	case MQTT_DISCONNECT:
		return mqtt_enc_simple(w, p->type);
	}
	return -1;
}
