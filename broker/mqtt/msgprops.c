/* A message's MQTT 5.0 properties between a PUBLISH (or a will) and the
 * topic's log, and from there to each MQTT 5.0 subscriber: the
 * application properties travel packed (common/ipc_proto.h, props), the
 * Message Expiry Interval as an absolute time (expiry_ms), and a delivery
 * says the interval that is left (3.3.2.3.3): a message is not sent once
 * it has expired, but one whose delivery started before goes again
 * (4.4), with 0 left.  An interval of 0 is taken
 * as none, as mosquitto takes it: a lifetime of no time at all would keep
 * the message from every subscriber, those online when it came too, and
 * clients send 0 meaning "does not expire".  MQTT 3.1.1 subscribers get
 * no properties. */
#include "clock.h"
#include "mqtt/mqtt_int.h"

int
msg_props_in(const struct mqtt_props *in, struct wbuf *blob, uint64_t *expiry_ms)
{
	struct mqtt_props app = { 0 };
	uint32_t secs;
	int rc = 0;

	*expiry_ms = 0;
	if (mqtt_props_get_u32(in, MQTT_PROP_MESSAGE_EXPIRY, &secs) && secs > 0)
		*expiry_ms = (uint64_t)wall_ms() + (uint64_t)secs * 1000;
	for (size_t i = 0; i < in->n && rc == 0; i++)
		if (in->v[i].id != MQTT_PROP_MESSAGE_EXPIRY)
			rc = mqtt_props_add(&app, &in->v[i]);
	if (rc == 0)
		rc = mqtt_props_pack(blob, &app);
	mqtt_props_free(&app);
	return rc;
}

int
msg_props_out(const struct rec_deliver *d, struct mqtt_props *out, const char **why)
{
	int64_t left;

	*why = NULL;
	if (d->props_len > 0 && mqtt_props_unpack(d->props, d->props_len, out, why) != 0)
		return -1;
	if (d->expiry_ms == 0)
		return 0;
	left = (int64_t)d->expiry_ms - wall_ms();
	/* Seconds left, rounded up: 0 only once none is left, for a message
	 * that goes again after it expired, its delivery having started. */
	return mqtt_props_add_u32(out, MQTT_PROP_MESSAGE_EXPIRY,
	    left > 0 ? (uint32_t)((left + 999) / 1000) : 0);
}

bool
delivery_expired(const struct rec_deliver *d)
{
	return d->expiry_ms != 0 && (int64_t)d->expiry_ms <= wall_ms();
}
