/* MQTT control packets of MQTT 3.1 ("MQIsdp", level 3), 3.1.1 (level 4)
 * and 5.0 (level 5): framing, decoding and encoding.  Pure: no I/O, no
 * state, so that the broker, the load generator, unit tests and fuzzers
 * all drive it directly.  Properties and reason codes are in
 * mqtt_props.h.
 *
 * Levels.  A CONNECT says its level; every other packet's layout depends
 * on the level the connection agreed on, which the caller passes to
 * mqtt_decode() and the encoders (struct mqtt_packet's level):
 * MQTT_LEVEL_5 means MQTT 5.0, any other value (0 before the CONNECT, 3
 * or 4) the layout MQTT 3.1 and 3.1.1 share, exactly as before 5.0
 * existed: no properties, no reason codes, type 15 reserved.
 *
 * Framing.  mqtt_frame() says whether a whole packet is at the front of a
 * buffer and how long it is; the caller then hands exactly those bytes to
 * mqtt_decode().  The Remaining Length is 1 to 4 bytes and must use the
 * fewest bytes that can hold the value: 0x80 0x00 for 0 is malformed.
 * MQTT 3.1.1 (2.2.3) defines only the minimal encoding; MQTT 5.0 makes it
 * a MUST (1.5.5-1); refusing the others gives every value one encoding, so
 * a packet that decodes re-encodes to the very same bytes.  The same
 * holds for every Variable Byte Integer of level 5 (Property Length,
 * property identifiers, Subscription Identifier).  The limit given to
 * mqtt_frame() is on the whole packet, header included, which is what
 * MQTT 5.0's Maximum Packet Size (3.1.2.11.4) measures.
 *
 * Decoding (mqtt_decode()) reads the layout: the packet type and its
 * reserved flag bits, every length (the Property Length within the
 * packet, each property within the Property Length), that no bytes are
 * left over, and the values a C string cannot hold (U+0000 in a string
 * field).  It then runs mqtt_check() on the result, which checks every
 * rule the specification lets a receiver check without connection state:
 * UTF-8 strings (well-formed, no U+0000), topic names and filters
 * (common/topic.h), packet identifiers, QoS values, the CONNECT flag
 * rules, reason codes allowed in the packet type, the subscription
 * options, and the properties (mqtt_props.h).  What needs state stays
 * with the caller: which direction a type may travel (mqtt_type_dir()),
 * CONNECT as the first packet and only once, packet-id bookkeeping, the
 * client-id rules (3.1.3-8 of 3.1.1; see struct mqtt_connect), Topic
 * Alias mapping, flow control, and the property rules mqtt_props.h lists.
 *
 * Errors.  Below level 5 every broken packet is MQTT_E_MALFORMED (close
 * the connection).  At level 5 the decoder tells a Malformed Packet
 * (MQTT_E_MALFORMED: cannot be parsed, or breaks a rule the specification
 * calls malformed: reserved bits, bad UTF-8, a property the packet type
 * may not carry) from a Protocol Error (MQTT_E_PROTOCOL: parsed, but with
 * data the protocol forbids: a duplicated property, a value out of range,
 * a reason code the packet type does not have, a SUBSCRIBE without
 * filters, a Retain Handling of 3...), and mqtt_error_reason() gives the
 * reason code of the CONNACK or DISCONNECT that answers it.
 *
 * Checking.  mqtt_check() accepts exactly the packets mqtt_decode() can
 * produce; every encoder runs it first, returns -1 and appends nothing if
 * it fails, so whatever is encoded decodes back to the same fields.
 * Where level 5 lets a packet end early (the short forms of the acks and
 * of DISCONNECT), the struct says which form was on the wire (enum
 * mqtt_form), so that re-encoding gives the same bytes.
 */
#ifndef BROKER_MQTT_CODEC_H
#define BROKER_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "marshal.h"
#include "mqtt/mqtt_props.h"

#define MQTT_MAX_REMAINING	268435455	/* 0xff 0xff 0xff 0x7f */
#define MQTT_MAX_PACKET		(1 + 4 + MQTT_MAX_REMAINING)
#define MQTT_MAX_STRING		65535		/* strings and binary fields */
#define MQTT_MAX_VARINT		268435455	/* any Variable Byte Integer */

#define MQTT_LEVEL_31		3	/* MQTT 3.1, protocol name "MQIsdp" */
#define MQTT_LEVEL_311		4	/* MQTT 3.1.1, protocol name "MQTT" */
#define MQTT_LEVEL_5		5	/* MQTT 5.0, protocol name "MQTT" */

/* Errors of mqtt_frame(), mqtt_decode() and mqtt_props_unpack(). */
#define MQTT_E_MALFORMED	(-1)	/* close (level 5: reason 0x81) */
#define MQTT_E_TOO_LARGE	(-2)	/* over max_packet: close (0x95) */
#define MQTT_E_PROTOCOL_NAME	(-3)	/* CONNECT of another protocol: close */
#define MQTT_E_BAD_LEVEL	(-4)	/* CONNACK 0x01, then close */
#define MQTT_E_PROTOCOL		(-5)	/* level 5 only: Protocol Error (0x82) */

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK,
	MQTT_PUBLISH,
	MQTT_PUBACK,
	MQTT_PUBREC,
	MQTT_PUBREL,
	MQTT_PUBCOMP,
	MQTT_SUBSCRIBE,
	MQTT_SUBACK,
	MQTT_UNSUBSCRIBE,
	MQTT_UNSUBACK,
	MQTT_PINGREQ,
	MQTT_PINGRESP,
	MQTT_DISCONNECT,
	MQTT_AUTH,		/* level 5 only; reserved below */
};

/* CONNACK return codes (3.2.2.3) below level 5; 6 .. 255 are reserved.
 * Level 5 has reason codes instead (enum mqtt_reason). */
enum mqtt_connack_rc {
	MQTT_CONNACK_ACCEPTED = 0,
	MQTT_CONNACK_BAD_VERSION,	/* unacceptable protocol version */
	MQTT_CONNACK_ID_REJECTED,	/* identifier rejected */
	MQTT_CONNACK_UNAVAILABLE,	/* server unavailable */
	MQTT_CONNACK_BAD_LOGIN,		/* bad user name or password */
	MQTT_CONNACK_NOT_AUTHORIZED,
};

/* SUBACK return codes below level 5: the granted QoS 0, 1, 2, or failure
 * (which is also level 5's Unspecified error). */
#define MQTT_SUBACK_FAILURE	0x80

/*
 * How much of an ack (PUBACK, PUBREC, PUBREL, PUBCOMP) or a DISCONNECT is
 * on the wire at level 5, where the end may be left out: an ack of
 * Remaining Length 2 is reason 0 and no properties, of 3 no properties;
 * a DISCONNECT of 0 is reason 0 and no properties, of 1 no properties.
 * MQTT_FORM_MINIMAL (0) leaves out what the fields allow; the decoder
 * sets one of the others only when the wire had more than that (a reason
 * code of 0 written out, or a Property Length of 0), and mqtt_check()
 * refuses a form that adds nothing to the minimal one.
 */
enum mqtt_form {
	MQTT_FORM_MINIMAL = 0,
	MQTT_FORM_REASON,	/* the reason code written, though 0 */
	MQTT_FORM_PROPS,	/* the Property Length written, though 0 */
};

/*
 * In every struct below, char * fields are NUL-terminated strings that
 * mqtt_decode() allocated (they cannot hold U+0000, so strlen() is their
 * length) and const uint8_t * fields point into the decoded packet's
 * buffer, valid only as long as it is, as do the properties' values.
 * For encoding, the caller's own pointers go in the same fields; the
 * encoders never free them.  Property lists (struct mqtt_props) are
 * empty below level 5.
 */

/*
 * client_id may be "" (never NULL).  The server decides what to do with
 * it: MQTT 3.1.1 requires CONNACK 0x02 for "" without clean_session
 * (3.1.3-8); MQTT 3.1 requires 1 .. 23 bytes; MQTT 5.0 lets the server
 * assign one (Assigned Client Identifier).  Without a will, will_qos and
 * will_retain are 0, will_topic and will_payload NULL and will_props
 * empty.  username NULL means absent; password NULL means absent, else
 * password_len bytes (maybe 0).  Below level 5 a password needs a user
 * name; at level 5 it does not.
 */
struct mqtt_connect {
	uint8_t		 level;		/* MQTT_LEVEL_31, _311 or _5 */
	bool		 clean_session;	/* Clean Start at level 5 */
	uint16_t	 keepalive;	/* seconds; 0 turns it off */
	char		*client_id;
	bool		 will;
	uint8_t		 will_qos;
	bool		 will_retain;
	char		*will_topic;	/* a topic name */
	const uint8_t	*will_payload;	/* will_len bytes; NULL if none */
	size_t		 will_len;
	char		*username;
	const uint8_t	*password;
	size_t		 password_len;
	struct mqtt_props props;	/* CONNECT properties */
	struct mqtt_props will_props;	/* Will Properties */
};

struct mqtt_connack {
	bool		 session_present;	/* only with return code 0 */
	uint8_t		 return_code;		/* level 5: a reason code */
	struct mqtt_props props;
};

/* packet_id is non-zero at QoS 1 and 2 and zero at QoS 0; dup only at
 * QoS 1 and 2.  The payload may be empty (and then NULL to encode).  At
 * level 5 the topic may be "" when the properties have a Topic Alias
 * (the caller maps the alias to its topic). */
struct mqtt_publish {
	uint8_t		 qos;
	bool		 dup;
	bool		 retain;
	char		*topic;		/* a topic name: no wildcards */
	uint16_t	 packet_id;
	const uint8_t	*payload;
	size_t		 len;
	struct mqtt_props props;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP.  reason, form and props are level 5's
 * (0 and empty below it). */
struct mqtt_ack {
	uint16_t	 packet_id;	/* non-zero */
	uint8_t		 reason;	/* enum mqtt_reason */
	uint8_t		 form;		/* enum mqtt_form */
	struct mqtt_props props;
};

/* A topic filter and its subscription options (3.8.3.1).  Below level 5
 * only qos is used; the others are 0. */
struct mqtt_sub_item {
	char		*filter;	/* a topic filter */
	uint8_t		 qos;		/* requested QoS, 0 .. 2 */
	bool		 no_local;	/* not on a shared subscription */
	bool		 retain_as_published;
	uint8_t		 retain_handling; /* 0 .. 2 */
};

/* The lists below have n >= 1 entries, except an UNSUBACK's below level
 * 5, which has none. */
struct mqtt_subscribe {
	uint16_t		 packet_id;
	size_t			 n;
	struct mqtt_sub_item	*items;
	struct mqtt_props	 props;
};

/* SUBACK, and UNSUBACK (whose codes are level 5's). */
struct mqtt_suback {
	uint16_t	 packet_id;
	size_t		 n;
	const uint8_t	*codes;		/* see mqtt_reason_allowed() */
	struct mqtt_props props;
};

struct mqtt_unsubscribe {
	uint16_t	 packet_id;
	size_t		 n;
	char		**filters;	/* topic filters */
	struct mqtt_props props;
};

/* DISCONNECT at level 5 (below it, a DISCONNECT has no fields). */
struct mqtt_disconnect {
	uint8_t		 reason;	/* enum mqtt_reason */
	uint8_t		 form;		/* enum mqtt_form */
	struct mqtt_props props;
};

/* AUTH (level 5 only): always reason code and properties, as it needs an
 * Authentication Method (3.15.2.2.2). */
struct mqtt_auth {
	uint8_t		 reason;	/* 0x00, 0x18 or 0x19 */
	struct mqtt_props props;
};

/* PINGREQ, PINGRESP (and DISCONNECT below level 5) have no fields. */
struct mqtt_packet {
	uint8_t		 type;		/* enum mqtt_type */
	uint8_t		 flags;		/* low nibble of the first byte */
	uint8_t		 level;		/* the connection's (see above) */
	const char	*error;		/* static reason when decoding failed */
	union {
		struct mqtt_connect	connect;
		struct mqtt_connack	connack;
		struct mqtt_publish	publish;
		struct mqtt_ack		ack;
		struct mqtt_subscribe	subscribe;
		struct mqtt_suback	suback;		/* and UNSUBACK */
		struct mqtt_unsubscribe	unsubscribe;
		struct mqtt_disconnect	disconnect;
		struct mqtt_auth	auth;
	} u;
};

/*
 * Is a whole packet at buf[0 .. len)?  Returns 1 and sets *total (header
 * included) if so; 0 if more bytes are needed; MQTT_E_MALFORMED for a bad
 * Remaining Length (a continuation bit on its 4th byte, or an over-long
 * encoding); MQTT_E_TOO_LARGE if the packet would be longer than
 * max_packet bytes in all (MQTT_MAX_PACKET for no limit of one's own; a
 * level-5 peer's Maximum Packet Size is such a limit).  The errors are
 * known as soon as the length bytes are in (at most 5 bytes), before the
 * body arrives.  Only the header is looked at.  *total is set once the
 * header is complete (so also with 0 while the body is missing, and with
 * MQTT_E_TOO_LARGE), else it is 0.
 */
int mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet,
    size_t *total);

/*
 * The protocol level a CONNECT at the front of buf[0 .. len) says, from
 * its first bytes (header, protocol name, level), before the rest is in
 * or looked at: 1 and *level; 0 if more bytes are needed; -1 if buf does
 * not start with a CONNECT of a known protocol name.  For a CONNECT that
 * is not taken whole (too large), to answer it at its level.
 */
int mqtt_connect_level(const uint8_t *buf, size_t len, uint8_t *level);

/*
 * Decodes the packet that is exactly pkt[0 .. len) on a connection of
 * this level (see above; a CONNECT is read at its own level): a buffer
 * with fewer bytes than its header announces, or more, is malformed.
 * Returns 0, or MQTT_E_MALFORMED, MQTT_E_PROTOCOL, MQTT_E_PROTOCOL_NAME
 * or MQTT_E_BAD_LEVEL with a reason in out->error.  Always call
 * mqtt_packet_free() afterwards (it is harmless on any result).  On
 * error, out->type and out->flags are set if the first byte was there,
 * out->level is the level the packet was read at (a CONNECT's own once
 * read), and after MQTT_E_BAD_LEVEL so is out->u.connect.level.
 *
 * The protocol name and level are checked before the rest of a CONNECT
 * (whose layout depends on them).  A level-3 CONNECT that sets the user
 * name or password flag but ends before that field is taken as not
 * having it, as some MQTT 3.1 clients send; this is the only packet whose
 * re-encoding differs from its bytes.  Decoding allocates in proportion
 * to the packet (a SUBSCRIBE of one-byte filters takes about 15 times its
 * size, a PUBLISH of two-byte Subscription Identifiers up to 40 times):
 * bound it with max_packet.
 */
int mqtt_decode(const uint8_t *pkt, size_t len, uint8_t level,
    struct mqtt_packet *out);
/* Frees what mqtt_decode() allocated (property lists included) and clears
 * the fields. */
void mqtt_packet_free(struct mqtt_packet *p);

/* NULL if p is a packet mqtt_decode() could have produced at p->level
 * (p->flags is not looked at; a CONNECT's level is its own), else a
 * static reason. */
const char *mqtt_check(const struct mqtt_packet *p);

/* The reason code that answers a decoding error at level 5: 0x81 for
 * MQTT_E_MALFORMED, 0x82 for MQTT_E_PROTOCOL, 0x95 for MQTT_E_TOO_LARGE,
 * 0x84 for MQTT_E_BAD_LEVEL and MQTT_E_PROTOCOL_NAME (though a CONNECT of
 * another protocol gets no CONNACK: 3.1.2-1), 0x80 for anything else. */
uint8_t mqtt_error_reason(int err);

/*
 * Encoders: append one packet to w.  Each returns 0, or -1 and appends
 * nothing when mqtt_check() refuses the packet (or it would exceed
 * MQTT_MAX_PACKET).  mqtt_encode() encodes any type from a packet at
 * p->level; p->flags is ignored (PUBLISH takes its flags from the
 * fields).  The others take the level of the connection.
 */
int mqtt_encode(struct wbuf *w, const struct mqtt_packet *p);
int mqtt_enc_connect(struct wbuf *w, const struct mqtt_connect *c);
int mqtt_enc_connack(struct wbuf *w, uint8_t level,
    const struct mqtt_connack *c);
int mqtt_enc_publish(struct wbuf *w, uint8_t level,
    const struct mqtt_publish *pub);
/* The same packet without its payload, which is its last pub->len bytes:
 * for a caller that sends the payload from where it is. */
int mqtt_enc_publish_head(struct wbuf *w, uint8_t level,
    const struct mqtt_publish *pub);
/* PUBACK, PUBREC, PUBREL (flags 0x2), PUBCOMP or UNSUBACK with only a
 * packet identifier: any level's ack below 5, and at level 5 the short
 * form of success of PUBACK .. PUBCOMP (not UNSUBACK). */
int mqtt_enc_ack(struct wbuf *w, uint8_t type, uint16_t packet_id);
/* PUBACK, PUBREC, PUBREL or PUBCOMP with reason code and properties. */
int mqtt_enc_pub_ack(struct wbuf *w, uint8_t level, uint8_t type,
    const struct mqtt_ack *a);
int mqtt_enc_subscribe(struct wbuf *w, uint8_t level,
    const struct mqtt_subscribe *s);
/* SUBACK, or UNSUBACK at level 5. */
int mqtt_enc_suback(struct wbuf *w, uint8_t level, uint8_t type,
    const struct mqtt_suback *s);
int mqtt_enc_unsubscribe(struct wbuf *w, uint8_t level,
    const struct mqtt_unsubscribe *u);
int mqtt_enc_disconnect(struct wbuf *w, uint8_t level,
    const struct mqtt_disconnect *d);
int mqtt_enc_auth(struct wbuf *w, const struct mqtt_auth *a);
/* PINGREQ, PINGRESP or DISCONNECT (at level 5: Normal disconnection). */
int mqtt_enc_simple(struct wbuf *w, uint8_t type);

/* The bytes p takes encoded (header included), 0 if mqtt_check()
 * refuses it: to compare with a peer's Maximum Packet Size first. */
size_t mqtt_packet_size(const struct mqtt_packet *p);

/* Bytes of a Variable Byte Integer (the Remaining Length, ...) for n
 * (1 .. 4), 0 if n is over MQTT_MAX_VARINT. */
size_t mqtt_varint_len(size_t n);

/* "CONNECT", "PUBLISH", ... "AUTH" (whatever the level); "reserved" for
 * 0 and anything over 15. */
const char *mqtt_type_name(uint8_t type);

/* Who may send a type on a connection of this level: a mask of these; 0
 * for a reserved type (AUTH below level 5).  At level 5 a server sends
 * DISCONNECT too.  A packet travelling the other way is a protocol
 * violation (close; at level 5 a Protocol Error). */
#define MQTT_FROM_CLIENT	0x1
#define MQTT_FROM_SERVER	0x2
int mqtt_type_dir(uint8_t type, uint8_t level);

/*
 * A shared subscription's filter, "$share/NAME/FILTER" (4.8.2): 0 if
 * filter is not one; 1 if it is, with *name_len the bytes of NAME (at
 * filter + 7) and *rest pointing to FILTER; -1 if it starts with
 * "$share/" but NAME is empty or has a wildcard, or no "/FILTER" follows
 * (at level 5 such a SUBSCRIBE or UNSUBSCRIBE is a Protocol Error, as is
 * No Local on a shared subscription).  Below level 5 "$share" is an
 * ordinary first level, except that a wildcard in NAME is not taken for a
 * misplaced one: the SUBACK refuses the share (0x80).
 */
int mqtt_share_split(const char *filter, size_t *name_len,
    const char **rest);

#endif
