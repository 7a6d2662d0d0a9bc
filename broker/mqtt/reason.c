/* MQTT 5.0 reason codes (2.4): their names, and the packets that may
 * carry each (table 2-6). */
#include "mqtt/wire.h"

#define T(t)	(1u << (t))
#define CONNACK	T(MQTT_CONNACK)
#define PUBACK	(T(MQTT_PUBACK) | T(MQTT_PUBREC))
#define PUBREL	(T(MQTT_PUBREL) | T(MQTT_PUBCOMP))
#define SUBACK	T(MQTT_SUBACK)
#define UNSUBACK T(MQTT_UNSUBACK)
#define DISC	T(MQTT_DISCONNECT)
#define AUTH	T(MQTT_AUTH)
/* The errors most packets share. */
#define COMMON	(CONNACK | PUBACK | SUBACK | UNSUBACK | DISC)

static const struct {
	const char	*name;
	uint16_t	 types;	/* a bit per packet type */
} reasons[256] = {
	[0x00] = { "Success", CONNACK | PUBACK | PUBREL | SUBACK | UNSUBACK |
	    DISC | AUTH },
	[0x01] = { "Granted QoS 1", SUBACK },
	[0x02] = { "Granted QoS 2", SUBACK },
	[0x04] = { "Disconnect with Will Message", DISC },
	[0x10] = { "No matching subscribers", PUBACK },
	[0x11] = { "No subscription existed", UNSUBACK },
	[0x18] = { "Continue authentication", AUTH },
	[0x19] = { "Re-authenticate", AUTH },
	[0x80] = { "Unspecified error", COMMON },
	[0x81] = { "Malformed Packet", CONNACK | DISC },
	[0x82] = { "Protocol Error", CONNACK | DISC },
	[0x83] = { "Implementation specific error", COMMON },
	[0x84] = { "Unsupported Protocol Version", CONNACK },
	[0x85] = { "Client Identifier not valid", CONNACK },
	[0x86] = { "Bad User Name or Password", CONNACK },
	[0x87] = { "Not authorized", COMMON },
	[0x88] = { "Server unavailable", CONNACK },
	[0x89] = { "Server busy", CONNACK | DISC },
	[0x8a] = { "Banned", CONNACK },
	[0x8b] = { "Server shutting down", DISC },
	[0x8c] = { "Bad authentication method", CONNACK | DISC },
	[0x8d] = { "Keep Alive timeout", DISC },
	[0x8e] = { "Session taken over", DISC },
	[0x8f] = { "Topic Filter invalid", SUBACK | UNSUBACK | DISC },
	[0x90] = { "Topic Name invalid", CONNACK | PUBACK | DISC },
	[0x91] = { "Packet Identifier in use", PUBACK | SUBACK | UNSUBACK },
	[0x92] = { "Packet Identifier not found", PUBREL },
	[0x93] = { "Receive Maximum exceeded", DISC },
	[0x94] = { "Topic Alias invalid", DISC },
	[0x95] = { "Packet too large", CONNACK | DISC },
	[0x96] = { "Message rate too high", DISC },
	[0x97] = { "Quota exceeded", CONNACK | PUBACK | SUBACK | DISC },
	[0x98] = { "Administrative action", DISC },
	[0x99] = { "Payload format invalid", CONNACK | PUBACK | DISC },
	[0x9a] = { "Retain not supported", CONNACK | DISC },
	[0x9b] = { "QoS not supported", CONNACK | DISC },
	[0x9c] = { "Use another server", CONNACK | DISC },
	[0x9d] = { "Server moved", CONNACK | DISC },
	[0x9e] = { "Shared Subscriptions not supported", SUBACK | DISC },
	[0x9f] = { "Connection rate exceeded", CONNACK | DISC },
	[0xa0] = { "Maximum connect time", DISC },
	[0xa1] = { "Subscription Identifiers not supported", SUBACK | DISC },
	[0xa2] = { "Wildcard Subscriptions not supported", SUBACK | DISC },
};

const char *
mqtt_reason_name(uint8_t code)
{
	return reasons[code].name != NULL ? reasons[code].name : "reserved";
}

bool
mqtt_reason_allowed(uint8_t type, uint8_t code)
{
	return type < 16 && (reasons[code].types & T(type)) != 0;
}

uint8_t
mqtt_error_reason(int err)
{
	switch (err) {
	case MQTT_E_MALFORMED:
		return MQTT_RC_MALFORMED_PACKET;
	case MQTT_E_PROTOCOL:
		return MQTT_RC_PROTOCOL_ERROR;
	case MQTT_E_TOO_LARGE:
		return MQTT_RC_PACKET_TOO_LARGE;
	case MQTT_E_BAD_LEVEL:
	case MQTT_E_PROTOCOL_NAME:
		return MQTT_RC_UNSUPPORTED_VERSION;
	default:
		return MQTT_RC_UNSPECIFIED_ERROR;
	}
}
