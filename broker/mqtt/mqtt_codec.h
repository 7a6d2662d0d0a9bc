/* MQTT 3.1.1 (and 3.1, "MQIsdp" level 3) control packets: framing,
 * decoding and encoding.  Pure: no I/O, no state, so that the broker, the
 * load generator, unit tests and fuzzers all drive it directly.
 *
 * Framing.  mqtt_frame() says whether a whole packet is at the front of a
 * buffer and how long it is; the caller then hands exactly those bytes to
 * mqtt_decode().  The Remaining Length is 1 to 4 bytes and must use the
 * fewest bytes that can hold the value: 0x80 0x00 for 0 is malformed.
 * MQTT 3.1.1 (2.2.3) defines only the minimal encoding; MQTT 5.0 makes it
 * a MUST (1.5.5-1); refusing the others gives every value one encoding, so
 * a packet that decodes re-encodes to the very same bytes.
 *
 * Decoding checks everything the specification lets a receiver check
 * without connection state: the packet type and its reserved flag bits,
 * every length, UTF-8 strings (well-formed, no U+0000), topic names and
 * filters (common/topic.h), packet identifiers, QoS values, the CONNECT
 * flag rules, and that no bytes are left over.  What needs state stays
 * with the caller: which direction a type may travel (mqtt_type_dir()),
 * CONNECT as the first packet and only once, packet-id bookkeeping, the
 * client-id rules of 3.1.3-8 (see struct mqtt_connect).
 *
 * Checking.  mqtt_check() accepts exactly the packets mqtt_decode() can
 * produce; every encoder runs it first, returns -1 and appends nothing if
 * it fails, so whatever is encoded decodes back to the same fields.
 */
#ifndef BROKER_MQTT_CODEC_H
#define BROKER_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "marshal.h"

#define MQTT_MAX_REMAINING	268435455	/* 0xff 0xff 0xff 0x7f */
#define MQTT_MAX_PACKET		(1 + 4 + MQTT_MAX_REMAINING)
#define MQTT_MAX_STRING		65535		/* strings and binary fields */

#define MQTT_LEVEL_31		3	/* MQTT 3.1, protocol name "MQIsdp" */
#define MQTT_LEVEL_311		4	/* MQTT 3.1.1, protocol name "MQTT" */

/* Errors of mqtt_frame() and mqtt_decode(). */
#define MQTT_E_MALFORMED	(-1)	/* close the connection */
#define MQTT_E_TOO_LARGE	(-2)	/* over max_packet: close */
#define MQTT_E_PROTOCOL_NAME	(-3)	/* CONNECT of another protocol: close */
#define MQTT_E_BAD_LEVEL	(-4)	/* CONNACK 0x01, then close */

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
};

/* CONNACK return codes (3.2.2.3); 6 .. 255 are reserved. */
enum mqtt_connack_rc {
	MQTT_CONNACK_ACCEPTED = 0,
	MQTT_CONNACK_BAD_VERSION,	/* unacceptable protocol version */
	MQTT_CONNACK_ID_REJECTED,	/* identifier rejected */
	MQTT_CONNACK_UNAVAILABLE,	/* server unavailable */
	MQTT_CONNACK_BAD_LOGIN,		/* bad user name or password */
	MQTT_CONNACK_NOT_AUTHORIZED,
};

/* SUBACK return codes: the granted QoS 0, 1, 2, or failure. */
#define MQTT_SUBACK_FAILURE	0x80

/*
 * In every struct below, char * fields are NUL-terminated strings that
 * mqtt_decode() allocated (they cannot hold U+0000, so strlen() is their
 * length) and const uint8_t * fields point into the decoded packet's
 * buffer, valid only as long as it is.  For encoding, the caller's own
 * pointers go in the same fields; the encoders never free them.
 */

/*
 * client_id may be "" (never NULL).  The server decides what to do with
 * it: MQTT 3.1.1 requires CONNACK 0x02 for "" without clean_session
 * (3.1.3-8); MQTT 3.1 requires 1 .. 23 bytes.  Without a will, will_qos
 * and will_retain are 0 and will_topic and will_payload NULL.  username
 * NULL means absent; password NULL means absent, else password_len bytes
 * (maybe 0).  A password needs a user name.
 */
struct mqtt_connect {
	uint8_t		 level;		/* MQTT_LEVEL_311 or MQTT_LEVEL_31 */
	bool		 clean_session;
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
};

struct mqtt_connack {
	bool		 session_present;	/* only with return code 0 */
	uint8_t		 return_code;		/* enum mqtt_connack_rc */
};

/* packet_id is non-zero at QoS 1 and 2 and zero at QoS 0; dup only at
 * QoS 1 and 2.  The payload may be empty (and then NULL to encode). */
struct mqtt_publish {
	uint8_t		 qos;
	bool		 dup;
	bool		 retain;
	char		*topic;		/* a topic name: no wildcards */
	uint16_t	 packet_id;
	const uint8_t	*payload;
	size_t		 len;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK. */
struct mqtt_ack {
	uint16_t	 packet_id;	/* non-zero */
};

struct mqtt_sub_item {
	char		*filter;	/* a topic filter */
	uint8_t		 qos;		/* requested QoS, 0 .. 2 */
};

/* The lists below have n >= 1 entries. */
struct mqtt_subscribe {
	uint16_t		 packet_id;
	size_t			 n;
	struct mqtt_sub_item	*items;
};

struct mqtt_suback {
	uint16_t	 packet_id;
	size_t		 n;
	const uint8_t	*codes;		/* 0, 1, 2 or MQTT_SUBACK_FAILURE */
};

struct mqtt_unsubscribe {
	uint16_t	 packet_id;
	size_t		 n;
	char		**filters;	/* topic filters */
};

/* PINGREQ, PINGRESP and DISCONNECT have no fields. */
struct mqtt_packet {
	uint8_t		 type;		/* enum mqtt_type */
	uint8_t		 flags;		/* low nibble of the first byte */
	const char	*error;		/* static reason when decoding failed */
	union {
		struct mqtt_connect	connect;
		struct mqtt_connack	connack;
		struct mqtt_publish	publish;
		struct mqtt_ack		ack;
		struct mqtt_subscribe	subscribe;
		struct mqtt_suback	suback;
		struct mqtt_unsubscribe	unsubscribe;
	} u;
};

/*
 * Is a whole packet at buf[0 .. len)?  Returns 1 and sets *total (header
 * included) if so; 0 if more bytes are needed; MQTT_E_MALFORMED for a bad
 * Remaining Length (a continuation bit on its 4th byte, or an over-long
 * encoding); MQTT_E_TOO_LARGE if the packet would be longer than
 * max_packet bytes in all (MQTT_MAX_PACKET for no limit of one's own).
 * The errors are known as soon as the length bytes are in (at most 5
 * bytes), before the body arrives.  Only the header is looked at.
 * *total is set once the header is complete (so also with 0 while the
 * body is missing, and with MQTT_E_TOO_LARGE), else it is 0.
 */
int mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet,
    size_t *total);

/*
 * Decodes the packet that is exactly pkt[0 .. len): a buffer with fewer
 * bytes than its header announces, or more, is malformed.  Returns 0, or
 * MQTT_E_MALFORMED, MQTT_E_PROTOCOL_NAME or MQTT_E_BAD_LEVEL with a
 * reason in out->error.  Always call mqtt_packet_free() afterwards (it is
 * harmless on any result).  On error, out->type and out->flags are set if
 * the first byte was there, and after MQTT_E_BAD_LEVEL so is
 * out->u.connect.level (5 for an MQTT 5.0 client).
 *
 * The protocol name and level are checked before the rest of a CONNECT
 * (whose layout depends on them).  A level-3 CONNECT that sets the user
 * name or password flag but ends before that field is taken as not
 * having it, as some MQTT 3.1 clients send; this is the only packet whose
 * re-encoding differs from its bytes.  Decoding allocates in proportion
 * to the packet (a SUBSCRIBE of one-byte filters takes about 15 times its
 * size): bound it with max_packet.
 */
int mqtt_decode(const uint8_t *pkt, size_t len, struct mqtt_packet *out);
/* Frees what mqtt_decode() allocated and clears the fields. */
void mqtt_packet_free(struct mqtt_packet *p);

/* NULL if p is a packet mqtt_decode() could have produced (p->flags is
 * not looked at), else a static reason. */
const char *mqtt_check(const struct mqtt_packet *p);

/*
 * Encoders: append one packet to w.  Each returns 0, or -1 and appends
 * nothing when mqtt_check() refuses the packet (or it would exceed
 * MQTT_MAX_PACKET).  mqtt_encode() encodes any type from a packet;
 * p->flags is ignored (PUBLISH takes its flags from the fields).
 */
int mqtt_encode(struct wbuf *w, const struct mqtt_packet *p);
int mqtt_enc_connect(struct wbuf *w, const struct mqtt_connect *c);
int mqtt_enc_connack(struct wbuf *w, bool session_present, uint8_t rc);
int mqtt_enc_publish(struct wbuf *w, const struct mqtt_publish *pub);
/* PUBACK, PUBREC, PUBREL (flags 0x2), PUBCOMP or UNSUBACK. */
int mqtt_enc_ack(struct wbuf *w, uint8_t type, uint16_t packet_id);
int mqtt_enc_subscribe(struct wbuf *w, const struct mqtt_subscribe *s);
int mqtt_enc_suback(struct wbuf *w, uint16_t packet_id,
    const uint8_t *codes, size_t n);
int mqtt_enc_unsubscribe(struct wbuf *w, const struct mqtt_unsubscribe *u);
/* PINGREQ, PINGRESP or DISCONNECT. */
int mqtt_enc_simple(struct wbuf *w, uint8_t type);

/* Bytes of the Remaining Length field for n (1 .. 4), 0 if n is over
 * MQTT_MAX_REMAINING. */
size_t mqtt_varint_len(size_t n);

/* "CONNECT", "PUBLISH", ...; "reserved" for 0, 15 and anything else. */
const char *mqtt_type_name(uint8_t type);

/* Who may send a type: a mask of these; 0 for a reserved type.  A packet
 * travelling the other way is a protocol violation (close). */
#define MQTT_FROM_CLIENT	0x1
#define MQTT_FROM_SERVER	0x2
int mqtt_type_dir(uint8_t type);

#endif
