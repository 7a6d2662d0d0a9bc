/* MQTT control packets: framing and decoding, at every level.  This file
 * reads the layout (3.1.1 chapters 2 and 3; 5.0 chapters 2 and 3); the
 * rules a decoded packet must obey are mqtt_check()'s (check.c), shared
 * with the encoders (encode.c). */
#include "mqtt/wire.h"

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

/* Subscription options (3.8.3.1): the reserved bits of each level. */
#define SO_RESERVED_311	0xfc
#define SO_RESERVED_5	0xc0

/* The Remaining Length at buf[0 .. len): 1, 0 if incomplete, or
 * MQTT_E_MALFORMED with a reason. */
static int
get_remaining(const uint8_t *buf, size_t len, size_t *value, size_t *n,
    const char **why)
{
	switch (mqtt_rd_varint(buf, len, value, n)) {
	case 1:
		return 1;
	case VARINT_OVERLONG:
		*why = "over-long Remaining Length";
		return MQTT_E_MALFORMED;
	case VARINT_TOO_LONG:
		*why = "Remaining Length longer than 4 bytes";
		return MQTT_E_MALFORMED;
	default:
		return 0;
	}
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
	if ((rc = get_remaining(buf + 1, len - 1, &rem, &n, &why)) != 1)
		return rc;
	*total = 1 + n + rem;
	if (*total > max_packet)
		return MQTT_E_TOO_LARGE;
	return len >= *total ? 1 : 0;
}

int
mqtt_connect_level(const uint8_t *buf, size_t len, uint8_t *level)
{
	const char *why;
	size_t rem, n, name;
	int rc;

	if (len < 1)
		return 0;
	if (buf[0] != MQTT_CONNECT << 4)
		return -1;
	if ((rc = get_remaining(buf + 1, len - 1, &rem, &n, &why)) != 1)
		return rc == 0 ? 0 : -1;
	if (len < 1 + n + 2)
		return 0;
	name = (size_t)buf[1 + n] << 8 | buf[2 + n];
	if (name != 4 && name != 6)
		return -1;
	if (len < 3 + n + name + 1)
		return 0;
	if (memcmp(buf + 3 + n, name == 4 ? "MQTT" : "MQIsdp", name) != 0)
		return -1;
	*level = buf[3 + n + name];
	return 1;
}

static int
bad(struct mqtt_packet *pk, const char *why)
{
	pk->error = why;
	return MQTT_E_MALFORMED;
}

/* A UTF-8 string field as a malloc'd C string; mqtt_check() looks at the
 * rest, but U+0000 has to be refused here, as a C string cannot hold it. */
static const char *
get_string(struct rbuf *r, char **s)
{
	const uint8_t *p;
	size_t n;

	if (mqtt_rd_field(r, &p, &n) == -1)
		return "string runs past the end of the packet";
	if (memchr(p, '\0', n) != NULL)
		return "string contains U+0000";
	*s = xmalloc(n + 1);
	memcpy(*s, p, n);
	(*s)[n] = '\0';
	return NULL;
}

/* A property list, at level 5 only. */
static int
get_props(struct rbuf *r, struct mqtt_packet *pk, struct mqtt_props *ps)
{
	const char *why;

	if (!mqtt_is_v5(pk->level))
		return 0;
	if ((why = mqtt_props_read(r, ps)) != NULL)
		return bad(pk, why);
	return 0;
}

/* Protocol name and level, which decide how to read the rest. */
static int
dec_protocol(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_connect *c = &pk->u.connect;
	const uint8_t *name;
	bool mqtt;
	size_t n;

	if (mqtt_rd_field(r, &name, &n) == -1)
		return bad(pk, "protocol name runs past the end of the packet");
	if (n == 4 && memcmp(name, "MQTT", 4) == 0)
		mqtt = true;
	else if (n == 6 && memcmp(name, "MQIsdp", 6) == 0)
		mqtt = false;
	else {
		pk->error = "unknown protocol name";
		return MQTT_E_PROTOCOL_NAME;
	}
	if (get_u8(r, &c->level) == -1)
		return bad(pk, "truncated CONNECT");
	pk->level = c->level;
	if (mqtt ? c->level != MQTT_LEVEL_311 && c->level != MQTT_LEVEL_5 :
	    c->level != MQTT_LEVEL_31) {
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
dec_will(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_connect *c = &pk->u.connect;
	const char *why;
	int rc;

	if ((rc = get_props(r, pk, &c->will_props)) != 0)
		return rc;
	if ((why = get_string(r, &c->will_topic)) != NULL)
		return bad(pk, why);
	if (mqtt_rd_field(r, &c->will_payload, &c->will_len) == -1)
		return bad(pk, "will message runs past the end of the packet");
	return 0;
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
	if (get_u8(r, &flags) == -1 || mqtt_rd_u16(r, &c->keepalive) == -1)
		return bad(pk, "truncated CONNECT");
	if (flags & CF_RESERVED)
		return bad(pk, "reserved CONNECT flag set");
	/* mqtt_check() judges how the flags go together. */
	c->clean_session = (flags & CF_CLEAN) != 0;
	c->will = (flags & CF_WILL) != 0;
	c->will_qos = CF_WILL_QOS(flags);
	c->will_retain = (flags & CF_WILL_RETAIN) != 0;
	if ((rc = get_props(r, pk, &c->props)) != 0)
		return rc;
	if ((why = get_string(r, &c->client_id)) != NULL)
		return bad(pk, why);
	if (c->will && (rc = dec_will(r, pk)) != 0)
		return rc;
	if ((flags & CF_USERNAME) && !absent_31(c, r) &&
	    (why = get_string(r, &c->username)) != NULL)
		return bad(pk, why);
	if ((flags & CF_PASSWORD) && !absent_31(c, r) &&
	    mqtt_rd_field(r, &c->password, &c->password_len) == -1)
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
	return get_props(r, pk, &c->props);
}

static int
dec_publish(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_publish *p = &pk->u.publish;
	const char *why;
	int rc;

	p->dup = (pk->flags & 0x8) != 0;
	p->qos = (pk->flags >> 1) & 0x3;
	p->retain = (pk->flags & 0x1) != 0;
	if ((why = get_string(r, &p->topic)) != NULL)
		return bad(pk, why);
	if (p->qos > 0 && mqtt_rd_u16(r, &p->packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	if ((rc = get_props(r, pk, &p->props)) != 0)
		return rc;
	p->len = r->left;
	get_raw(r, &p->payload, p->len);	/* the rest: cannot fail */
	return 0;
}

/*
 * The end of a level-5 ack or DISCONNECT, which may be cut short: a
 * reason code if any byte is left, then properties if any byte is still
 * left.  *form records a form longer than the fields need.
 */
static int
dec_tail(struct rbuf *r, struct mqtt_packet *pk, uint8_t *reason,
    uint8_t *form, struct mqtt_props *ps)
{
	uint8_t wire = MQTT_FORM_MINIMAL, need;
	int rc;

	if (!mqtt_is_v5(pk->level) || r->left == 0)
		return 0;
	get_u8(r, reason);			/* a byte is left */
	wire = MQTT_FORM_REASON;
	if (r->left > 0) {
		if ((rc = get_props(r, pk, ps)) != 0)
			return rc;
		wire = MQTT_FORM_PROPS;
	}
	need = ps->n > 0 ? MQTT_FORM_PROPS :
	    *reason != 0 ? MQTT_FORM_REASON : MQTT_FORM_MINIMAL;
	*form = wire > need ? wire : MQTT_FORM_MINIMAL;
	return 0;
}

static int
dec_ack(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_ack *a = &pk->u.ack;

	if (mqtt_rd_u16(r, &a->packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	return dec_tail(r, pk, &a->reason, &a->form, &a->props);
}

static int
dec_disconnect(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_disconnect *d = &pk->u.disconnect;

	return dec_tail(r, pk, &d->reason, &d->form, &d->props);
}

/* AUTH: nothing (Success, no properties: mqtt_check() then wants the
 * Authentication Method), or a reason code and properties. */
static int
dec_auth(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_auth *a = &pk->u.auth;

	if (r->left == 0)
		return 0;
	get_u8(r, &a->reason);			/* a byte is left */
	return get_props(r, pk, &a->props);
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
		if (mqtt_rd_field(&r, &p, &len) == -1 ||
		    (opts && get_u8(&r, &o) == -1))
			return -1;
		n++;
	}
	return n;
}

/* A packet identifier and, at level 5, properties: how SUBSCRIBE,
 * SUBACK, UNSUBSCRIBE and UNSUBACK start. */
static int
dec_list_head(struct rbuf *r, struct mqtt_packet *pk, uint16_t *packet_id,
    struct mqtt_props *ps)
{
	if (mqtt_rd_u16(r, packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	return get_props(r, pk, ps);
}

static void
set_options(struct mqtt_sub_item *it, uint8_t opts)
{
	it->qos = opts & 0x3;
	it->no_local = (opts & 0x4) != 0;
	it->retain_as_published = (opts & 0x8) != 0;
	it->retain_handling = (opts >> 4) & 0x3;
}

static int
dec_subscribe(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_subscribe *s = &pk->u.subscribe;
	uint8_t opts, reserved;
	const char *why;
	ssize_t n;
	size_t i;
	int rc;

	reserved = mqtt_is_v5(pk->level) ? SO_RESERVED_5 : SO_RESERVED_311;
	if ((rc = dec_list_head(r, pk, &s->packet_id, &s->props)) != 0)
		return rc;
	if ((n = count_filters(*r, true)) == -1)
		return bad(pk, "topic filter runs past the end of the packet");
	if (n == 0)
		return 0;		/* mqtt_check() refuses it */
	s->items = xcalloc((size_t)n, sizeof(*s->items));
	s->n = (size_t)n;
	for (i = 0; i < s->n; i++) {
		if ((why = get_string(r, &s->items[i].filter)) != NULL)
			return bad(pk, why);
		get_u8(r, &opts);		/* counted: cannot fail */
		if (opts & reserved)
			return bad(pk, "reserved subscription option set");
		set_options(&s->items[i], opts);
	}
	return 0;
}

/* SUBACK, and UNSUBACK at level 5: a code per filter. */
static int
dec_suback(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_suback *s = &pk->u.suback;
	int rc;

	if ((rc = dec_list_head(r, pk, &s->packet_id, &s->props)) != 0)
		return rc;
	if (r->left == 0)
		return 0;		/* mqtt_check() refuses it */
	s->n = r->left;
	get_raw(r, &s->codes, s->n);		/* the rest: cannot fail */
	return 0;
}

/* Below level 5 an UNSUBACK is only a packet identifier. */
static int
dec_unsuback(struct rbuf *r, struct mqtt_packet *pk)
{
	if (mqtt_is_v5(pk->level))
		return dec_suback(r, pk);
	if (mqtt_rd_u16(r, &pk->u.suback.packet_id) == -1)
		return bad(pk, "truncated packet identifier");
	return 0;
}

static int
dec_unsubscribe(struct rbuf *r, struct mqtt_packet *pk)
{
	struct mqtt_unsubscribe *u = &pk->u.unsubscribe;
	const char *why;
	ssize_t n;
	size_t i;
	int rc;

	if ((rc = dec_list_head(r, pk, &u->packet_id, &u->props)) != 0)
		return rc;
	if ((n = count_filters(*r, false)) == -1)
		return bad(pk, "topic filter runs past the end of the packet");
	if (n == 0)
		return 0;		/* mqtt_check() refuses it */
	u->filters = xcalloc((size_t)n, sizeof(*u->filters));
	u->n = (size_t)n;
	for (i = 0; i < u->n; i++)
		if ((why = get_string(r, &u->filters[i])) != NULL)
			return bad(pk, why);
	return 0;
}

/* The reserved flag bits of the fixed header (2.2.2; 5.0: 2.1.3). */
static const char *
check_flags(uint8_t type, uint8_t flags, uint8_t level)
{
	switch (type) {
	case 0:
		return "reserved packet type";
	case MQTT_AUTH:
		if (!mqtt_is_v5(level))
			return "reserved packet type";
		return flags != 0 ? "reserved flag bits set" : NULL;
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
		return dec_ack(r, pk);
	case MQTT_SUBSCRIBE:
		return dec_subscribe(r, pk);
	case MQTT_SUBACK:
		return dec_suback(r, pk);
	case MQTT_UNSUBSCRIBE:
		return dec_unsubscribe(r, pk);
	case MQTT_UNSUBACK:
		return dec_unsuback(r, pk);
	case MQTT_DISCONNECT:
		return dec_disconnect(r, pk);
	case MQTT_AUTH:
		return dec_auth(r, pk);
	default:		/* PINGREQ, PINGRESP */
		return 0;
	}
}

/* The fixed header: type, flags, and a Remaining Length that matches
 * the buffer; *body is set to the rest. */
static int
dec_header(const uint8_t *pkt, size_t len, struct mqtt_packet *pk,
    struct rbuf *body)
{
	const char *why;
	size_t rem, n;
	int rc;

	if (len == 0)
		return bad(pk, "empty packet");
	pk->type = pkt[0] >> 4;
	pk->flags = pkt[0] & 0x0f;
	if ((rc = get_remaining(pkt + 1, len - 1, &rem, &n, &why)) < 0)
		return bad(pk, why);
	if (rc == 0)
		return bad(pk, "truncated fixed header");
	if (len - 1 - n < rem)
		return bad(pk, "packet shorter than its Remaining Length");
	if (len - 1 - n > rem)
		return bad(pk, "bytes after the end of the packet");
	if ((why = check_flags(pk->type, pk->flags, pk->level)) != NULL)
		return bad(pk, why);
	rbuf_init(body, pkt + 1 + n, rem);
	return 0;
}

static int
dec_packet(const uint8_t *pkt, size_t len, struct mqtt_packet *pk)
{
	const char *why;
	struct rbuf r;
	struct chk c;
	int rc;

	if ((rc = dec_header(pkt, len, pk, &r)) != 0)
		return rc;
	if ((rc = dec_body(&r, pk)) != 0)
		return rc;
	if (r.left != 0)
		return bad(pk, "trailing bytes in the packet");
	if ((why = mqtt_chk_packet(pk, &c)) != NULL) {
		pk->error = why;
		return c.v5 && c.protocol ? MQTT_E_PROTOCOL : MQTT_E_MALFORMED;
	}
	return 0;
}

int
mqtt_decode(const uint8_t *pkt, size_t len, uint8_t level,
    struct mqtt_packet *out)
{
	uint8_t clevel;
	int rc;

	memset(out, 0, sizeof(*out));
	out->level = level;
	if ((rc = dec_packet(pkt, len, out)) != 0) {
		clevel = out->u.connect.level;
		mqtt_packet_free(out);
		if (rc == MQTT_E_BAD_LEVEL)
			out->u.connect.level = clevel;
	}
	return rc;
}
