/* The application properties of a message packed for a store, and read
 * back (mqtt_props.h): their MQTT 5.0 wire bytes, checked again on the
 * way in, since they come from disk. */
#include "mqtt/wire.h"

#include <string.h>

bool
mqtt_prop_is_application(uint8_t id)
{
	switch (id) {
	case MQTT_PROP_PAYLOAD_FORMAT:
	case MQTT_PROP_MESSAGE_EXPIRY:
	case MQTT_PROP_CONTENT_TYPE:
	case MQTT_PROP_RESPONSE_TOPIC:
	case MQTT_PROP_CORRELATION_DATA:
	case MQTT_PROP_USER:
		return true;
	default:
		return false;
	}
}

int
mqtt_props_pack(struct wbuf *w, const struct mqtt_props *ps)
{
	struct mqtt_props app = { 0 };
	struct chk c = { .v5 = true };
	size_t i;
	int rc = 0;

	for (i = 0; i < ps->n; i++)
		if (mqtt_prop_is_application(ps->v[i].id))
			*mqtt_props_push(&app) = ps->v[i];
	if (mqtt_props_rules(&app, MQTT_PUBLISH, &c) != NULL)
		rc = -1;
	else
		mqtt_props_write_all(w, &app);
	mqtt_props_free(&app);
	return rc;
}

int
mqtt_props_unpack(const uint8_t *b, size_t len, struct mqtt_props *out,
    const char **why)
{
	struct chk c = { .v5 = true };
	struct rbuf r;
	size_t i;

	memset(out, 0, sizeof(*out));
	rbuf_init(&r, b, len);
	if ((*why = mqtt_props_read_all(&r, out)) != NULL)
		return MQTT_E_MALFORMED;
	for (i = 0; i < out->n; i++) {
		if (!mqtt_prop_is_application(out->v[i].id)) {
			*why = "not an application property";
			return MQTT_E_MALFORMED;
		}
	}
	if ((*why = mqtt_props_rules(out, MQTT_PUBLISH, &c)) != NULL)
		return c.protocol ? MQTT_E_PROTOCOL : MQTT_E_MALFORMED;
	return 0;
}
