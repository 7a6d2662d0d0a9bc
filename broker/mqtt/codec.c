/* MQTT control packets: the packet-type table, and freeing what the
 * decoder allocated.  Framing and decoding are in decode.c, the rules in
 * check.c, the encoders in encode.c, properties in props*.c, reason
 * codes in reason.c. */
#include "mqtt/wire.h"

#include <stdlib.h>
#include <string.h>

#define BOTH	(MQTT_FROM_CLIENT | MQTT_FROM_SERVER)

static const struct {
	const char	*name;
	int		 dir;
} types[16] = {
	[MQTT_CONNECT] =	{ "CONNECT",	MQTT_FROM_CLIENT },
	[MQTT_CONNACK] =	{ "CONNACK",	MQTT_FROM_SERVER },
	[MQTT_PUBLISH] =	{ "PUBLISH",	BOTH },
	[MQTT_PUBACK] =		{ "PUBACK",	BOTH },
	[MQTT_PUBREC] =		{ "PUBREC",	BOTH },
	[MQTT_PUBREL] =		{ "PUBREL",	BOTH },
	[MQTT_PUBCOMP] =	{ "PUBCOMP",	BOTH },
	[MQTT_SUBSCRIBE] =	{ "SUBSCRIBE",	MQTT_FROM_CLIENT },
	[MQTT_SUBACK] =		{ "SUBACK",	MQTT_FROM_SERVER },
	[MQTT_UNSUBSCRIBE] =	{ "UNSUBSCRIBE", MQTT_FROM_CLIENT },
	[MQTT_UNSUBACK] =	{ "UNSUBACK",	MQTT_FROM_SERVER },
	[MQTT_PINGREQ] =	{ "PINGREQ",	MQTT_FROM_CLIENT },
	[MQTT_PINGRESP] =	{ "PINGRESP",	MQTT_FROM_SERVER },
	[MQTT_DISCONNECT] =	{ "DISCONNECT",	MQTT_FROM_CLIENT },
	[MQTT_AUTH] =		{ "AUTH",	BOTH },
};

const char *
mqtt_type_name(uint8_t type)
{
	if (type >= 16 || types[type].name == NULL)
		return "reserved";
	return types[type].name;
}

int
mqtt_type_dir(uint8_t type, uint8_t level)
{
	if (type == MQTT_AUTH && !mqtt_is_v5(level))
		return 0;
	if (type == MQTT_DISCONNECT && mqtt_is_v5(level))
		return BOTH;
	return type < 16 ? types[type].dir : 0;
}

static void
free_strings(char **v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static void
free_subscribe(struct mqtt_subscribe *s)
{
	size_t i;

	for (i = 0; s->items != NULL && i < s->n; i++)
		free(s->items[i].filter);
	free(s->items);
	mqtt_props_free(&s->props);
}

void
mqtt_packet_free(struct mqtt_packet *p)
{
	switch (p->type) {
	case MQTT_CONNECT:
		free(p->u.connect.client_id);
		free(p->u.connect.will_topic);
		free(p->u.connect.username);
		mqtt_props_free(&p->u.connect.props);
		mqtt_props_free(&p->u.connect.will_props);
		break;
	case MQTT_CONNACK:
		mqtt_props_free(&p->u.connack.props);
		break;
	case MQTT_PUBLISH:
		free(p->u.publish.topic);
		mqtt_props_free(&p->u.publish.props);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		mqtt_props_free(&p->u.ack.props);
		break;
	case MQTT_SUBSCRIBE:
		free_subscribe(&p->u.subscribe);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		mqtt_props_free(&p->u.suback.props);
		break;
	case MQTT_UNSUBSCRIBE:
		free_strings(p->u.unsubscribe.filters, p->u.unsubscribe.n);
		mqtt_props_free(&p->u.unsubscribe.props);
		break;
	case MQTT_DISCONNECT:
		mqtt_props_free(&p->u.disconnect.props);
		break;
	case MQTT_AUTH:
		mqtt_props_free(&p->u.auth.props);
		break;
	}
	memset(&p->u, 0, sizeof(p->u));
}
