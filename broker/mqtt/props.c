/* MQTT 5.0 properties on the wire (2.2.2): the table of identifiers
 * (type, the packets that may carry each, the values allowed), reading a
 * property list, the rules a list obeys, and writing it. */
#include "mqtt/wire.h"

#include "topic.h"

/* What a property's value must be, besides its type. */
enum rule {
	R_ANY = 0,
	R_BOOL,		/* 0 or 1 */
	R_NONZERO,	/* not 0 */
	R_TOPIC,	/* a topic name */
};

struct pinfo {
	const char	*name;
	const char	*misplaced;	/* malformed: not in this packet */
	const char	*twice;		/* protocol error: a duplicate */
	const char	*bad;		/* protocol error: the rule broken */
	uint8_t		 type;		/* enum mqtt_prop_type */
	uint8_t		 rule;		/* enum rule */
	uint16_t	 where;		/* a bit per packet type; bit 0: will */
};

#define W(t)	(1u << (t))
#define WILL	W(MQTT_PROPS_WILL)
#define MSG(nm)	nm, nm " in a packet that cannot carry it", nm " more than once"
#define P(id, nm, ty, wh)	[id] = { MSG(nm), NULL, ty, R_ANY, wh }
#define P_BOOL(id, nm, wh)	[id] = { MSG(nm), nm " other than 0 or 1", \
				    MQTT_PT_BYTE, R_BOOL, wh }
#define P_NZ(id, nm, ty, wh)	[id] = { MSG(nm), nm " of 0", ty, R_NONZERO, wh }

#define CONN	(W(MQTT_CONNECT) | W(MQTT_CONNACK))
#define MSG_PUB	(W(MQTT_PUBLISH) | WILL)
#define ACKS	(W(MQTT_PUBACK) | W(MQTT_PUBREC) | W(MQTT_PUBREL) | \
		W(MQTT_PUBCOMP) | W(MQTT_SUBACK) | W(MQTT_UNSUBACK))
#define ALL	(CONN | MSG_PUB | ACKS | W(MQTT_SUBSCRIBE) | \
		W(MQTT_UNSUBSCRIBE) | W(MQTT_DISCONNECT) | W(MQTT_AUTH))

static const struct pinfo info[] = {
	P_BOOL(MQTT_PROP_PAYLOAD_FORMAT, "Payload Format Indicator", MSG_PUB),
	P(MQTT_PROP_MESSAGE_EXPIRY, "Message Expiry Interval", MQTT_PT_U32,
	    MSG_PUB),
	P(MQTT_PROP_CONTENT_TYPE, "Content Type", MQTT_PT_STRING, MSG_PUB),
	[MQTT_PROP_RESPONSE_TOPIC] = { MSG("Response Topic"),
	    "Response Topic is not a topic name", MQTT_PT_STRING, R_TOPIC,
	    MSG_PUB },
	P(MQTT_PROP_CORRELATION_DATA, "Correlation Data", MQTT_PT_BINARY,
	    MSG_PUB),
	P_NZ(MQTT_PROP_SUBSCRIPTION_ID, "Subscription Identifier",
	    MQTT_PT_VARINT, W(MQTT_PUBLISH) | W(MQTT_SUBSCRIBE)),
	P(MQTT_PROP_SESSION_EXPIRY, "Session Expiry Interval", MQTT_PT_U32,
	    CONN | W(MQTT_DISCONNECT)),
	P(MQTT_PROP_ASSIGNED_CLIENT_ID, "Assigned Client Identifier",
	    MQTT_PT_STRING, W(MQTT_CONNACK)),
	P(MQTT_PROP_SERVER_KEEP_ALIVE, "Server Keep Alive", MQTT_PT_U16,
	    W(MQTT_CONNACK)),
	P(MQTT_PROP_AUTH_METHOD, "Authentication Method", MQTT_PT_STRING,
	    CONN | W(MQTT_AUTH)),
	P(MQTT_PROP_AUTH_DATA, "Authentication Data", MQTT_PT_BINARY,
	    CONN | W(MQTT_AUTH)),
	P_BOOL(MQTT_PROP_REQUEST_PROBLEM_INFO, "Request Problem Information",
	    W(MQTT_CONNECT)),
	P(MQTT_PROP_WILL_DELAY, "Will Delay Interval", MQTT_PT_U32, WILL),
	P_BOOL(MQTT_PROP_REQUEST_RESPONSE_INFO,
	    "Request Response Information", W(MQTT_CONNECT)),
	P(MQTT_PROP_RESPONSE_INFO, "Response Information", MQTT_PT_STRING,
	    W(MQTT_CONNACK)),
	P(MQTT_PROP_SERVER_REFERENCE, "Server Reference", MQTT_PT_STRING,
	    W(MQTT_CONNACK) | W(MQTT_DISCONNECT)),
	P(MQTT_PROP_REASON_STRING, "Reason String", MQTT_PT_STRING,
	    W(MQTT_CONNACK) | ACKS | W(MQTT_DISCONNECT) | W(MQTT_AUTH)),
	P_NZ(MQTT_PROP_RECEIVE_MAXIMUM, "Receive Maximum", MQTT_PT_U16, CONN),
	P(MQTT_PROP_TOPIC_ALIAS_MAXIMUM, "Topic Alias Maximum", MQTT_PT_U16,
	    CONN),
	P_NZ(MQTT_PROP_TOPIC_ALIAS, "Topic Alias", MQTT_PT_U16,
	    W(MQTT_PUBLISH)),
	P_BOOL(MQTT_PROP_MAXIMUM_QOS, "Maximum QoS", W(MQTT_CONNACK)),
	P_BOOL(MQTT_PROP_RETAIN_AVAILABLE, "Retain Available",
	    W(MQTT_CONNACK)),
	P(MQTT_PROP_USER, "User Property", MQTT_PT_PAIR, ALL),
	P_NZ(MQTT_PROP_MAXIMUM_PACKET_SIZE, "Maximum Packet Size", MQTT_PT_U32,
	    CONN),
	P_BOOL(MQTT_PROP_WILDCARD_SUB_AVAILABLE,
	    "Wildcard Subscription Available", W(MQTT_CONNACK)),
	P_BOOL(MQTT_PROP_SUB_ID_AVAILABLE,
	    "Subscription Identifier Available", W(MQTT_CONNACK)),
	P_BOOL(MQTT_PROP_SHARED_SUB_AVAILABLE,
	    "Shared Subscription Available", W(MQTT_CONNACK)),
};
#define NINFO	(sizeof(info) / sizeof(info[0]))

static const struct pinfo *
info_of(uint8_t id)
{
	return id < NINFO && info[id].name != NULL ? &info[id] : NULL;
}

const char *
mqtt_prop_name(uint8_t id)
{
	const struct pinfo *in = info_of(id);

	return in != NULL ? in->name : "unknown property";
}

enum mqtt_prop_type
mqtt_prop_type(uint8_t id)
{
	const struct pinfo *in = info_of(id);

	return in != NULL ? in->type : MQTT_PT_UNKNOWN;
}

bool
mqtt_prop_allowed(uint8_t id, uint8_t type)
{
	const struct pinfo *in = info_of(id);

	return in != NULL && type < 16 && (in->where & W(type)) != 0;
}

/*
 * Reading.
 */

static const char *const id_why[3] = {
	"truncated property",
	"over-long property identifier",
	"unknown property identifier",
};
static const char *const subid_why[3] = {
	"truncated property",
	"over-long Subscription Identifier",
	"Subscription Identifier longer than 4 bytes",
};
static const char *const plen_why[3] = {
	"Property Length runs past the end of the packet",
	"over-long Property Length",
	"Property Length longer than 4 bytes",
};

static int
rd_str(struct rbuf *r, struct mqtt_str *s)
{
	const uint8_t *p;

	if (mqtt_rd_field(r, &p, &s->len) == -1)
		return -1;
	s->p = (const char *)p;
	return 0;
}

/* The value of a property of a known type. */
static int
rd_value(struct rbuf *r, struct mqtt_prop *p, uint8_t type)
{
	uint16_t v16;
	uint8_t v8;

	switch (type) {
	case MQTT_PT_BYTE:
		if (get_u8(r, &v8) == -1)
			return -1;
		p->num = v8;
		return 0;
	case MQTT_PT_U16:
		if (mqtt_rd_u16(r, &v16) == -1)
			return -1;
		p->num = v16;
		return 0;
	case MQTT_PT_U32:
		return mqtt_rd_u32(r, &p->num);
	case MQTT_PT_PAIR:
		if (rd_str(r, &p->name) == -1)
			return -1;
		/* FALLTHROUGH */
	default:			/* string, binary */
		return rd_str(r, &p->str);
	}
}

static const char *
rd_prop(struct rbuf *r, struct mqtt_prop *p)
{
	const struct pinfo *in;
	const char *why;
	size_t id, v;

	if ((why = mqtt_rd_vbi(r, &id, id_why)) != NULL)
		return why;
	if (id > UINT8_MAX || (in = info_of((uint8_t)id)) == NULL)
		return "unknown property identifier";
	p->id = (uint8_t)id;
	if (in->type == MQTT_PT_VARINT) {
		why = mqtt_rd_vbi(r, &v, subid_why);
		p->num = (uint32_t)v;
		return why;
	}
	return rd_value(r, p, in->type) == -1 ? "truncated property" : NULL;
}

const char *
mqtt_props_read_all(struct rbuf *r, struct mqtt_props *ps)
{
	const char *why;

	while (r->left > 0)
		if ((why = rd_prop(r, mqtt_props_push(ps))) != NULL)
			return why;
	return NULL;
}

const char *
mqtt_props_read(struct rbuf *r, struct mqtt_props *ps)
{
	const uint8_t *p;
	struct rbuf sub;
	const char *why;
	size_t len;

	if ((why = mqtt_rd_vbi(r, &len, plen_why)) != NULL)
		return why;
	if (get_raw(r, &p, len) == -1)
		return plen_why[0];
	rbuf_init(&sub, p, len);
	return mqtt_props_read_all(&sub, ps);
}

/*
 * The rules.
 */

static bool
is_empty(const struct mqtt_str *s)
{
	return s->p == NULL && s->len == 0;
}

/* A string or binary value: present, not too long; a string's UTF-8. */
static const char *
str_shape(const struct mqtt_str *s, bool utf8)
{
	if (s->p == NULL && s->len > 0)
		return "missing property value";
	if (s->len > MQTT_MAX_STRING)
		return "property value longer than 65535 bytes";
	return utf8 ? mqtt_chk_utf8(s->p, s->len) : NULL;
}

/* The value is of the property's type: what a decoder can produce. */
static const char *
value_shape(const struct mqtt_prop *p, uint8_t type)
{
	static const uint32_t max[] = { [MQTT_PT_BYTE] = UINT8_MAX,
	    [MQTT_PT_U16] = UINT16_MAX, [MQTT_PT_U32] = UINT32_MAX,
	    [MQTT_PT_VARINT] = MQTT_MAX_VARINT };
	const char *e;

	if (type <= MQTT_PT_VARINT) {
		if (!is_empty(&p->str) || !is_empty(&p->name))
			return "property value of the wrong type";
		return p->num > max[type] ? "property value out of range" :
		    NULL;
	}
	if (p->num != 0 || (type != MQTT_PT_PAIR && !is_empty(&p->name)))
		return "property value of the wrong type";
	if (type == MQTT_PT_PAIR &&
	    (e = str_shape(&p->name, true)) != NULL)
		return e;
	return str_shape(&p->str, type != MQTT_PT_BINARY);
}

static bool
value_allowed(const struct mqtt_prop *p, uint8_t rule)
{
	switch (rule) {
	case R_BOOL:
		return p->num <= 1;
	case R_NONZERO:
		return p->num != 0;
	case R_TOPIC:
		return topic_check_name(p->str.p, p->str.len) == TOPIC_OK;
	default:
		return true;
	}
}

static bool
repeatable(uint8_t id, uint8_t where)
{
	return id == MQTT_PROP_USER ||
	    (id == MQTT_PROP_SUBSCRIPTION_ID && where == MQTT_PUBLISH);
}

static const char *
prop_rules(const struct mqtt_prop *p, uint8_t where, uint64_t *seen,
    struct chk *c)
{
	const struct pinfo *in = info_of(p->id);
	const char *e;

	if (in == NULL)
		return "unknown property identifier";
	if ((in->where & W(where)) == 0)
		return in->misplaced;
	if ((e = value_shape(p, in->type)) != NULL)
		return e;
	if (!repeatable(p->id, where)) {
		if (*seen & (UINT64_C(1) << p->id))
			return mqtt_chk_proto(c, in->twice);
		*seen |= UINT64_C(1) << p->id;
	}
	if (!value_allowed(p, in->rule))
		return mqtt_chk_proto(c, in->bad);
	return NULL;
}

/* The bytes of one property (that passed its rules). */
static size_t
prop_len(const struct mqtt_prop *p)
{
	switch (mqtt_prop_type(p->id)) {
	case MQTT_PT_BYTE:
		return 2;
	case MQTT_PT_U16:
		return 3;
	case MQTT_PT_U32:
		return 5;
	case MQTT_PT_VARINT:
		return 1 + mqtt_varint_len(p->num);
	case MQTT_PT_PAIR:
		return 5 + p->name.len + p->str.len;
	default:
		return 3 + p->str.len;
	}
}

const char *
mqtt_props_rules(const struct mqtt_props *ps, uint8_t where, struct chk *c)
{
	uint64_t seen = 0;
	size_t i, len = 0;
	const char *e;

	if (ps->n > 0 && ps->v == NULL)
		return "missing property list";
	if (!c->v5)
		return ps->n > 0 ? "properties below MQTT 5.0" : NULL;
	for (i = 0; i < ps->n; i++) {
		if ((e = prop_rules(&ps->v[i], where, &seen, c)) != NULL)
			return e;
		len += prop_len(&ps->v[i]);
		if (len > MQTT_MAX_VARINT)
			return "packet too large";
	}
	return mqtt_chk_len(c, mqtt_varint_len(len) + len);
}

/*
 * Writing.
 */

size_t
mqtt_props_wire_len(const struct mqtt_props *ps)
{
	size_t i, len = 0;

	for (i = 0; i < ps->n; i++)
		len += prop_len(&ps->v[i]);
	return len;
}

static void
wr_prop(struct wbuf *w, const struct mqtt_prop *p)
{
	put_u8(w, p->id);
	switch (mqtt_prop_type(p->id)) {
	case MQTT_PT_BYTE:
		put_u8(w, (uint8_t)p->num);
		break;
	case MQTT_PT_U16:
		mqtt_wr_u16(w, (uint16_t)p->num);
		break;
	case MQTT_PT_U32:
		mqtt_wr_u32(w, p->num);
		break;
	case MQTT_PT_VARINT:
		mqtt_wr_varint(w, p->num);
		break;
	case MQTT_PT_PAIR:
		mqtt_wr_field(w, p->name.p, p->name.len);
		/* FALLTHROUGH */
	default:
		mqtt_wr_field(w, p->str.p, p->str.len);
		break;
	}
}

void
mqtt_props_write_all(struct wbuf *w, const struct mqtt_props *ps)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		wr_prop(w, &ps->v[i]);
}

void
mqtt_props_write(struct wbuf *w, const struct mqtt_props *ps)
{
	mqtt_wr_varint(w, mqtt_props_wire_len(ps));
	mqtt_props_write_all(w, ps);
}
