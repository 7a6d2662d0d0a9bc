/* MQTT control packets: framing and decoding.  The wire primitives are
 * here: the Remaining Length, big-endian 16-bit integers, and length-
 * prefixed strings and binary fields (MQTT 3.1.1 sections 1.5 and 2.2).
 * The rules a decoded packet must obey are mqtt_check()'s, shared with
 * the encoders (mqtt_codec.c). */
#include "mqtt_codec.h"

#include <sys/types.h>

#include <string.h>

#include "xmalloc.h"

/* CONNECT flags (3.1.2.3). */
#define CF_RESERVED	0x01
#define CF_CLEAN	0x02
#define CF_WILL		0x04
#define CF_WILL_QOS(f)	(((f) >> 3) & 0x3)
#define CF_WILL_RETAIN	0x20
#define CF_PASSWORD	0x40
#define CF_USERNAME	0x80

/*
 * The Remaining Length at buf[0 .. len).  Returns 1 with the value and
 * the number of its bytes, 0 if it is incomplete, or MQTT_E_MALFORMED
 * with a reason.  Rejected: a continuation bit on the 4th byte (the value
 * would need a 5th), and over-long forms, whose last byte is 0.
 */
static int
get_varint(const uint8_t *buf, size_t len, size_t *value, size_t *n,
    const char **why)
{
	size_t v = 0, i;

	for (i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		v |= (size_t)(buf[i] & 0x7f) << (7 * i);
		if ((buf[i] & 0x80) != 0)
			continue;
		if (i > 0 && buf[i] == 0) {
			*why = "over-long Remaining Length";
			return MQTT_E_MALFORMED;
		}
		*value = v;
		*n = i + 1;
		return 1;
	}
	*why = "Remaining Length longer than 4 bytes";
	return MQTT_E_MALFORMED;
}

int
mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, size_t *total)
{
	const char *why;
	size_t rem, n;
	int rc;

	*total = 0;
	if (len < 2)
		return 0;
	if ((rc = get_varint(buf + 1, len - 1, &rem, &n, &why)) != 1)
		return rc;
	*total = 1 + n + rem;
	if (*total > max_packet)
		return MQTT_E_TOO_LARGE;
	return len >= *total ? 1 : 0;
}

static int
bad(struct mqtt_packet *pk, const char *why)
{
	pk->error = why;
	return MQTT_E_MALFORMED;
}

static int
get_be16(struct rbuf *r, uint16_t *v)
{
	const uint8_t *p;

	*v = 0;
	if (get_raw(r, &p, 2) == -1)
		return -1;
	*v = (uint16_t)(p[0] << 8 | p[1]);
	return 0;
}

/* A 16-bit length and that many bytes: binary data, or a string. */
static int
get_field(struct rbuf *r, const uint8_t **p, size_t *n)
{
	uint16_t len;

	if (get_be16(r, &len) == -1 || get_raw(r, p, len) == -1)
		return -1;
	*n = len;
	return 0;
}

/* A UTF-8 string field as a malloc'd C string; mqtt_check() looks at the
 * rest, but U+0000 has to be refused here, as a C string cannot hold it. */
static const char *
get_string(struct rbuf *r, char **s)
{
	const uint8_t *p;
	size_t n;

	if (get_field(r, &p, &n) == -1)
		return "string runs past the end of the packet";
	if (memchr(p, '\0', n) != NULL)
		return "string contains U+0000";
	*s = xmalloc(n + 1);
	memcpy(*s, p, n);
	(*s)[n] = '\0';
	return NULL;
}

/* Protocol name and level, which decide how to read the rest. */
static int
dec_protocol(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_connect *c = &pk->u.connect;
	const uint8_t *name;
	uint8_t want;
	size_t n;

	if (get_field(r, &name, &n) == -1)
		return bad(pk, "protocol name runs past the end of the packet");
	if (n == 4 && memcmp(name, "MQTT", 4) == 0)
		want = MQTT_LEVEL_311;
	else if (n == 6 && memcmp(name, "MQIsdp", 6) == 0)
		want = MQTT_LEVEL_31;
	else {
		pk->error = "unknown protocol name";
		return MQTT_E_PROTOCOL_NAME;
	}
	if (get_u8(r, &c->level) == -1)
		return bad(pk, "truncated CONNECT");
	if (c->level != want) {
		pk->error = "unsupported protocol level";
		return MQTT_E_BAD_LEVEL;
	}
	return 0;
}

/* An MQTT 3.1 client may set the user name or password flag and then
 * leave the field out at the very end of the packet. */
static bool
absent_31(const struct mqtt_connect *c, const struct rbuf *r)
{
	return c->level == MQTT_LEVEL_31 && r->left == 0;
}

static int
dec_connect(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_connect *c = &pk->u.connect;
	const char *why;
	uint8_t flags;
	int rc;

	if ((rc = dec_protocol(r, pk)) != 0)
		return rc;
	if (get_u8(r, &flags) == -1 || get_be16(r, &c->keepalive) == -1)
		return bad(pk, "truncated CONNECT");
	if (flags & CF_RESERVED)
		return bad(pk, "reserved CONNECT flag set");
	/* mqtt_check() judges how the flags go together. */
	c->clean_session = (flags & CF_CLEAN) != 0;
	c->will = (flags & CF_WILL) != 0;
	c->will_qos = CF_WILL_QOS(flags);
	c->will_retain = (flags & CF_WILL_RETAIN) != 0;
	if ((why = get_string(r, &c->client_id)) != NULL)
		return bad(pk, why);
	if (c->will) {
		if ((why = get_string(r, &c->will_topic)) != NULL)
			return bad(pk, why);
		if (get_field(r, &c->will_payload, &c->will_len) == -1)
			return bad(pk, "will message runs past the end of "
			    "the packet");
	}
	if ((flags & CF_USERNAME) && !absent_31(c, r) &&
	    (why = get_string(r, &c->username)) != NULL)
		return bad(pk, why);
	if ((flags & CF_PASSWORD) && !absent_31(c, r) &&
	    get_field(r, &c->password, &c->password_len) == -1)
		return bad(pk, "password runs past the end of the packet");
	return 0;
}

static int
dec_connack(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_connack *c = &pk->u.connack;
	uint8_t flags;

	if (get_u8(r, &flags) == -1 || get_u8(r, &c->return_code) == -1)
		return bad(pk, "truncated CONNACK");
	if (flags & 0xfe)
		return bad(pk, "reserved CONNACK flag set");
	c->session_present = flags & 0x01;
	return 0;
}

static int
dec_publish(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_publish *p = &pk->u.publish;
	const char *why;

	p->dup = (pk->flags & 0x8) != 0;
	p->qos = (pk->flags >> 1) & 0x3;
	p->retain = (pk->flags & 0x1) != 0;
	if ((why = get_string(r, &p->topic)) != NULL)
		return bad(pk, why);
	if (p->qos > 0 && get_be16(r, &p->packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	p->len = r->left;
	get_raw(r, &p->payload, p->len);	/* the rest: cannot fail */
	return 0;
}

static int
dec_ack(struct rbuf *r, struct mqtt_packet *pk)
{
	if (get_be16(r, &pk->u.ack.packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	return 0;
}

/* The number of topic filters (each followed by an options byte when
 * opts) up to the end of the packet; -1 if one runs past the end. */
static ssize_t
count_filters(struct rbuf r, bool opts)
{
	const uint8_t *p;
	ssize_t n = 0;
	size_t len;
	uint8_t o;

	while (r.left > 0) {
		if (get_field(&r, &p, &len) == -1 ||
		    (opts && get_u8(&r, &o) == -1))
			return -1;
		n++;
	}
	return n;
}

static int
dec_subscribe(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_subscribe *s = &pk->u.subscribe;
	const char *why;
	ssize_t n;
	uint8_t opts;
	size_t i;

	if (get_be16(r, &s->packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	if ((n = count_filters(*r, true)) == -1)
		return bad(pk, "topic filter runs past the end of the packet");
	if (n == 0)
		return bad(pk, "SUBSCRIBE without topic filters");
	s->items = xcalloc((size_t)n, sizeof(*s->items));
	s->n = (size_t)n;
	for (i = 0; i < s->n; i++) {
		if ((why = get_string(r, &s->items[i].filter)) != NULL)
			return bad(pk, why);
		get_u8(r, &opts);		/* counted: cannot fail */
		if (opts & 0xfc)
			return bad(pk, "reserved subscription option set");
		s->items[i].qos = opts;
	}
	return 0;
}

static int
dec_suback(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_suback *s = &pk->u.suback;

	if (get_be16(r, &s->packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	if (r->left == 0)
		return bad(pk, "SUBACK without return codes");
	s->n = r->left;
	get_raw(r, &s->codes, s->n);		/* the rest: cannot fail */
	return 0;
}

static int
dec_unsubscribe(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_unsubscribe *u = &pk->u.unsubscribe;
	const char *why;
	ssize_t n;
	size_t i;

	if (get_be16(r, &u->packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	if ((n = count_filters(*r, false)) == -1)
		return bad(pk, "topic filter runs past the end of the packet");
	if (n == 0)
		return bad(pk, "UNSUBSCRIBE without topic filters");
	u->filters = xcalloc((size_t)n, sizeof(*u->filters));
	u->n = (size_t)n;
	for (i = 0; i < u->n; i++)
		if ((why = get_string(r, &u->filters[i])) != NULL)
			return bad(pk, why);
	return 0;
}

/* The reserved flag bits of the fixed header (2.2.2). */
static const char *
check_flags(uint8_t type, uint8_t flags)
{
	switch (type) {
	case 0:
	case 15:
		return "reserved packet type";
	case MQTT_PUBLISH:
		return (flags & 0x6) == 0x6 ? "PUBLISH QoS 3" : NULL;
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		return flags != 0x2 ? "reserved flag bits are not 0010" : NULL;
	default:
		return flags != 0 ? "reserved flag bits set" : NULL;
	}
}

static int
dec_body(struct rbuf *r, struct mqtt_packet *pk)
{
	switch (pk->type) {
	case MQTT_CONNECT:
		return dec_connect(r, pk);
	case MQTT_CONNACK:
		return dec_connack(r, pk);
	case MQTT_PUBLISH:
		return dec_publish(r, pk);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		return dec_ack(r, pk);
	case MQTT_SUBSCRIBE:
		return dec_subscribe(r, pk);
	case MQTT_SUBACK:
		return dec_suback(r, pk);
	case MQTT_UNSUBSCRIBE:
		return dec_unsubscribe(r, pk);
	default:		/* PINGREQ, PINGRESP, DISCONNECT */
		return 0;
	}
}

static int
dec_packet(const uint8_t *pkt, size_t len, struct mqtt_packet *pk)
{
	const char *why;
	struct rbuf r;
	size_t rem, n;
	int rc;

	if (len == 0)
		return bad(pk, "empty packet");
	pk->type = pkt[0] >> 4;
	pk->flags = pkt[0] & 0x0f;
	if ((rc = get_varint(pkt + 1, len - 1, &rem, &n, &why)) < 0)
		return bad(pk, why);
	if (rc == 0)
		return bad(pk, "truncated fixed header");
	if (len - 1 - n < rem)
		return bad(pk, "packet shorter than its Remaining Length");
	if (len - 1 - n > rem)
		return bad(pk, "bytes after the end of the packet");
	if ((why = check_flags(pk->type, pk->flags)) != NULL)
		return bad(pk, why);
	rbuf_init(&r, pkt + 1 + n, rem);
	if ((rc = dec_body(&r, pk)) != 0)
		return rc;
	if (r.left != 0)
		return bad(pk, "trailing bytes in the packet");
	if ((why = mqtt_check(pk)) != NULL)
		return bad(pk, why);
	return 0;
}

int
mqtt_decode(const uint8_t *pkt, size_t len, struct mqtt_packet *out)
{
	uint8_t level;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = dec_packet(pkt, len, out)) != 0) {
		level = out->u.connect.level;
		mqtt_packet_free(out);
		if (rc == MQTT_E_BAD_LEVEL)
			out->u.connect.level = level;
	}
	return rc;
}
