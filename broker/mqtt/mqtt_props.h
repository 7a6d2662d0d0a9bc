/* MQTT 5.0 properties (section 2.2.2) and reason codes (2.4): what a
 * level-5 packet carries besides its fixed fields.  Included by
 * mqtt_codec.h; pure like the rest of the codec.
 *
 * A packet's properties are kept as they came, in order: a property list
 * (struct mqtt_props) of entries that say which property it is and hold
 * its value.  Decoding fills one per property list of the packet
 * (pointing into the packet's buffer); encoding takes a list that the
 * caller built with the mqtt_props_add_*() builders, or one it decoded
 * and changed (forwarding).
 *
 * Which property a packet may carry, how often, and which values are
 * allowed is checked by mqtt_check() (mqtt_codec.h), for decoding and
 * encoding alike:
 *
 *   - the identifier is known and allowed in that packet (table 2-4; Will
 *     Properties are a place of their own), else Malformed Packet;
 *   - strings are well-formed UTF-8 without U+0000 (both halves of a User
 *     Property too), else Malformed Packet;
 *   - a property appears at most once, except User Property (anywhere)
 *     and Subscription Identifier in a PUBLISH (one per matching
 *     subscription), else Protocol Error;
 *   - values: Payload Format Indicator, Request Problem Information,
 *     Request Response Information, Maximum QoS, Retain Available,
 *     Wildcard / Subscription Identifier / Shared Subscription Available
 *     are 0 or 1; Receive Maximum, Maximum Packet Size and Topic Alias are
 *     not 0; a Subscription Identifier is 1 .. 268435455; a Response Topic
 *     is a topic name (no wildcards); else Protocol Error;
 *   - Authentication Data needs an Authentication Method (CONNECT, AUTH),
 *     and an AUTH has one, else Protocol Error.
 *
 * What needs state is the caller's: a client's PUBLISH must not carry a
 * Subscription Identifier (3.3.4-6), a Topic Alias must not exceed the
 * receiver's Topic Alias Maximum, the Authentication Method must be the
 * CONNECT's, Session Expiry in a DISCONNECT must not turn 0 into non-0,
 * Reason String and User Property are left out when a packet would
 * exceed the peer's Maximum Packet Size, a Payload Format Indicator of 1
 * may be checked against the payload (utf8_valid(), reason 0x99).
 */
#ifndef BROKER_MQTT_PROPS_H
#define BROKER_MQTT_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "marshal.h"

/* Property identifiers (2.2.2.2). */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT	= 0x01,	/* byte: 0 bytes, 1 UTF-8 */
	MQTT_PROP_MESSAGE_EXPIRY	= 0x02,	/* four-byte: seconds */
	MQTT_PROP_CONTENT_TYPE		= 0x03,	/* string */
	MQTT_PROP_RESPONSE_TOPIC	= 0x08,	/* string: a topic name */
	MQTT_PROP_CORRELATION_DATA	= 0x09,	/* binary */
	MQTT_PROP_SUBSCRIPTION_ID	= 0x0b,	/* variable byte integer */
	MQTT_PROP_SESSION_EXPIRY	= 0x11,	/* four-byte: seconds */
	MQTT_PROP_ASSIGNED_CLIENT_ID	= 0x12,	/* string */
	MQTT_PROP_SERVER_KEEP_ALIVE	= 0x13,	/* two-byte: seconds */
	MQTT_PROP_AUTH_METHOD		= 0x15,	/* string */
	MQTT_PROP_AUTH_DATA		= 0x16,	/* binary */
	MQTT_PROP_REQUEST_PROBLEM_INFO	= 0x17,	/* byte: 0 or 1 */
	MQTT_PROP_WILL_DELAY		= 0x18,	/* four-byte: seconds */
	MQTT_PROP_REQUEST_RESPONSE_INFO	= 0x19,	/* byte: 0 or 1 */
	MQTT_PROP_RESPONSE_INFO		= 0x1a,	/* string */
	MQTT_PROP_SERVER_REFERENCE	= 0x1c,	/* string */
	MQTT_PROP_REASON_STRING		= 0x1f,	/* string */
	MQTT_PROP_RECEIVE_MAXIMUM	= 0x21,	/* two-byte, not 0 */
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM	= 0x22,	/* two-byte */
	MQTT_PROP_TOPIC_ALIAS		= 0x23,	/* two-byte, not 0 */
	MQTT_PROP_MAXIMUM_QOS		= 0x24,	/* byte: 0 or 1 */
	MQTT_PROP_RETAIN_AVAILABLE	= 0x25,	/* byte: 0 or 1 */
	MQTT_PROP_USER			= 0x26,	/* string pair */
	MQTT_PROP_MAXIMUM_PACKET_SIZE	= 0x27,	/* four-byte, not 0 */
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28, /* byte: 0 or 1 */
	MQTT_PROP_SUB_ID_AVAILABLE	= 0x29,	/* byte: 0 or 1 */
	MQTT_PROP_SHARED_SUB_AVAILABLE	= 0x2a,	/* byte: 0 or 1 */
};

/* The data type of a property's value (2.2.2.2). */
enum mqtt_prop_type {
	MQTT_PT_UNKNOWN = 0,	/* not a property identifier */
	MQTT_PT_BYTE,
	MQTT_PT_U16,		/* Two Byte Integer */
	MQTT_PT_U32,		/* Four Byte Integer */
	MQTT_PT_VARINT,		/* Variable Byte Integer */
	MQTT_PT_STRING,		/* UTF-8 Encoded String */
	MQTT_PT_BINARY,		/* Binary Data */
	MQTT_PT_PAIR,		/* UTF-8 String Pair */
};

/* Where Will Properties are checked: the "packet type" 0 of the property
 * table (CONNECT's will, 3.1.3.2). */
#define MQTT_PROPS_WILL		0

/*
 * Bytes that are not a C string: len bytes at p.  Decoded, p points into
 * the packet (or the packed properties) and the bytes are not
 * NUL-terminated; a string holds no U+0000, so "%.*s" prints it.
 */
struct mqtt_str {
	const char	*p;
	size_t		 len;
};

/* One property: an integer type's value is num; a string's or binary
 * data's is str; a User Property's name is name and its value str. */
struct mqtt_prop {
	uint8_t		 id;		/* enum mqtt_prop_id */
	uint32_t	 num;
	struct mqtt_str	 str;
	struct mqtt_str	 name;
};

/* The properties of a packet, in their order: v[0 .. n).  All zero is the
 * empty list.  v is malloc'd (by the decoder or the builders) and freed by
 * mqtt_packet_free() or mqtt_props_free(); what the entries point to is
 * never freed by the codec. */
struct mqtt_props {
	struct mqtt_prop *v;
	size_t		  n;
	size_t		  cap;
};

/* "Topic Alias", ...; "unknown property" for an unknown identifier. */
const char *mqtt_prop_name(uint8_t id);
/* The type of a property (MQTT_PT_UNKNOWN for an unknown identifier). */
enum mqtt_prop_type mqtt_prop_type(uint8_t id);
/* May a packet of this type (or MQTT_PROPS_WILL) carry the property? */
bool mqtt_prop_allowed(uint8_t id, uint8_t type);

/*
 * Reading.  The first property id, or the next one from *i on (which it
 * then moves past): for User Property and Subscription Identifier, which
 * may come several times:
 *
 *	for (size_t i = 0; (up = mqtt_props_next(ps, MQTT_PROP_USER, &i)); )
 *		... up->name, up->str ...
 */
const struct mqtt_prop *mqtt_props_find(const struct mqtt_props *ps,
    uint8_t id);
const struct mqtt_prop *mqtt_props_next(const struct mqtt_props *ps,
    uint8_t id, size_t *i);
size_t mqtt_props_count(const struct mqtt_props *ps, uint8_t id);
/* The value of an integer property (byte, two-byte, four-byte or
 * variable): true and *v set if it is there, else false, *v untouched. */
bool mqtt_props_get_u32(const struct mqtt_props *ps, uint8_t id,
    uint32_t *v);
/* A string or binary property: true and *s set if it is there. */
bool mqtt_props_get_string(const struct mqtt_props *ps, uint8_t id,
    struct mqtt_str *s);
/* A string property as a malloc'd C string, NULL if it is not there. */
char *mqtt_props_dup_string(const struct mqtt_props *ps, uint8_t id);

/*
 * Building (for encoding).  Each appends one property and returns 0, or
 * returns -1 and appends nothing if id is not a property of that type.
 * The bytes are not copied: strings and data must outlive the encoding.
 * Values and placement are checked when the packet is encoded.
 * add_u32 takes every integer type.  add copies an entry (a decoded one,
 * to forward it).  del removes every property id.
 */
int mqtt_props_add_u32(struct mqtt_props *ps, uint8_t id, uint32_t v);
int mqtt_props_add_string(struct mqtt_props *ps, uint8_t id, const char *s);
int mqtt_props_add_binary(struct mqtt_props *ps, uint8_t id,
    const void *p, size_t len);
int mqtt_props_add_user(struct mqtt_props *ps, const char *name,
    const char *value);
int mqtt_props_add(struct mqtt_props *ps, const struct mqtt_prop *p);
void mqtt_props_del(struct mqtt_props *ps, uint8_t id);
/* Frees v and empties the list. */
void mqtt_props_free(struct mqtt_props *ps);

/*
 * The application properties of a message, for keeping it in a store:
 * Payload Format Indicator, Message Expiry Interval, Content Type,
 * Response Topic, Correlation Data and User Properties (3.3.2.3) - what a
 * PUBLISH or a will carries for its receivers - in their order.  The
 * packed form is those properties' MQTT 5.0 wire bytes without a
 * Property Length: empty for none (an MQTT 3.1.1 message).
 *
 * pack appends them to w, leaving out the others (Topic Alias,
 * Subscription Identifier, Will Delay Interval: the sender's business);
 * -1 and nothing appended if they break the rules of a PUBLISH's
 * properties (a list mqtt_decode() produced never does).
 *
 * unpack reads packed bytes (they come from disk: every rule is checked
 * again, and a property that is not an application property is
 * refused): 0, or MQTT_E_MALFORMED / MQTT_E_PROTOCOL with a static reason
 * in *why.  out points into b; mqtt_props_free() it in any case.  To
 * deliver, add the Subscription Identifiers (and a Topic Alias), set the
 * Message Expiry Interval to what is left of it, and encode.
 */
int mqtt_props_pack(struct wbuf *w, const struct mqtt_props *ps);
int mqtt_props_unpack(const uint8_t *b, size_t len, struct mqtt_props *out,
    const char **why);
/* Is this one of the application properties above? */
bool mqtt_prop_is_application(uint8_t id);

/* Reason codes (2.4).  0x00 is Success, Normal disconnection (DISCONNECT)
 * and Granted QoS 0 (SUBACK); below 0x80 they report success. */
enum mqtt_reason {
	MQTT_RC_SUCCESS			= 0x00,
	MQTT_RC_NORMAL_DISCONNECTION	= 0x00,
	MQTT_RC_GRANTED_QOS0		= 0x00,
	MQTT_RC_GRANTED_QOS1		= 0x01,
	MQTT_RC_GRANTED_QOS2		= 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL	= 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS	= 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED	= 0x11,
	MQTT_RC_CONTINUE_AUTH		= 0x18,
	MQTT_RC_REAUTHENTICATE		= 0x19,
	MQTT_RC_UNSPECIFIED_ERROR	= 0x80,
	MQTT_RC_MALFORMED_PACKET	= 0x81,
	MQTT_RC_PROTOCOL_ERROR		= 0x82,
	MQTT_RC_IMPLEMENTATION_ERROR	= 0x83,
	MQTT_RC_UNSUPPORTED_VERSION	= 0x84,
	MQTT_RC_CLIENT_ID_NOT_VALID	= 0x85,
	MQTT_RC_BAD_USERNAME_PASSWORD	= 0x86,
	MQTT_RC_NOT_AUTHORIZED		= 0x87,
	MQTT_RC_SERVER_UNAVAILABLE	= 0x88,
	MQTT_RC_SERVER_BUSY		= 0x89,
	MQTT_RC_BANNED			= 0x8a,
	MQTT_RC_SERVER_SHUTTING_DOWN	= 0x8b,
	MQTT_RC_BAD_AUTH_METHOD		= 0x8c,
	MQTT_RC_KEEP_ALIVE_TIMEOUT	= 0x8d,
	MQTT_RC_SESSION_TAKEN_OVER	= 0x8e,
	MQTT_RC_TOPIC_FILTER_INVALID	= 0x8f,
	MQTT_RC_TOPIC_NAME_INVALID	= 0x90,
	MQTT_RC_PACKET_ID_IN_USE	= 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND	= 0x92,
	MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID	= 0x94,
	MQTT_RC_PACKET_TOO_LARGE	= 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH	= 0x96,
	MQTT_RC_QUOTA_EXCEEDED		= 0x97,
	MQTT_RC_ADMINISTRATIVE_ACTION	= 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID	= 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED	= 0x9a,
	MQTT_RC_QOS_NOT_SUPPORTED	= 0x9b,
	MQTT_RC_USE_ANOTHER_SERVER	= 0x9c,
	MQTT_RC_SERVER_MOVED		= 0x9d,
	MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9e,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9f,
	MQTT_RC_MAXIMUM_CONNECT_TIME	= 0xa0,
	MQTT_RC_SUB_IDS_NOT_SUPPORTED	= 0xa1,
	MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xa2,
};

/* "Success", "Malformed Packet", ... as the specification names them;
 * "reserved" for a value that is no reason code. */
const char *mqtt_reason_name(uint8_t code);
/* May a packet of this type carry the reason code (CONNACK, PUBACK,
 * PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH)?  Which
 * side may send which DISCONNECT reason is not looked at. */
bool mqtt_reason_allowed(uint8_t type, uint8_t code);

#endif
