/* Deliveries to MQTT 5.0 clients: what their session's subscriptions and
 * their CONNECT ask of each message (No Local, Retain As Published,
 * Subscription Identifiers, Maximum Packet Size, Topic Alias Maximum),
 * and its properties (msgprops.c).  A message a client is not to get
 * counts as delivered: its topic moves on. */
#include <string.h>

#include "log.h"
#include "mqtt/mqtt_int.h"

/* A delivery not sent to the client (MQTT 5.0): it counts as delivered,
 * and its topic moves on; one sent before is forgotten. */
static bool
skip_delivery(struct client *cl, const struct rec_deliver *d, const char *why)
{
	log_debug("client %s: %s seq %llu not sent: %s", cl->desc, d->topic,
	    (unsigned long long)d->seq, why);
	if (d->qos == 0)
		return false;
	mqtt_out_forget(cl->session, d->topic, d->share, d->seq);
	mqtt_delivery_over(cl, d);
	return false;
}

/* The size of pub on the wire: with its topic (alias 0), or with a Topic
 * Alias, and the topic too if the alias is fresh. */
static size_t
publish_size(const struct mqtt_publish *pub, uint16_t alias, bool fresh)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH, .level = MQTT_LEVEL_5, .u.publish = *pub };
	struct mqtt_props ps = { 0 };
	size_t n;

	if (pub->qos > 0)
		p.u.publish.packet_id = 1;	/* its size, whichever id it gets */
	if (alias == 0)
		return mqtt_packet_size(&p);
	for (size_t i = 0; i < pub->props.n; i++)
		(void)mqtt_props_add(&ps, &pub->props.v[i]);
	(void)mqtt_props_add_u32(&ps, MQTT_PROP_TOPIC_ALIAS, alias);
	p.u.publish.props = ps;
	if (!fresh)
		p.u.publish.topic = "";
	n = mqtt_packet_size(&p);
	mqtt_props_free(&ps);
	return n;
}

/* A message larger than the client's Maximum Packet Size is not sent to
 * it (3.1.2-24): larger in its smallest form, with its topic or with the
 * alias the client has for it (a fresh alias is given only where it fits,
 * mqtt5_use_alias()). */
static bool
too_large_for(struct client *cl, const struct rec_deliver *d, const struct mqtt_publish *pub)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	uint32_t max = mc->max_packet;
	size_t size;
	bool fresh;
	uint16_t alias;

	if (max == 0)
		return false;
	size = publish_size(pub, 0, false);
	alias = alias_peek(&mc->alias_out, pub->topic, &fresh);
	if (size > max && alias != 0 && !fresh)
		size = publish_size(pub, alias, false);
	if (size <= max)
		return false;
	log_info("client %s: a message of %s (%zu bytes) is over its Maximum Packet Size "
	    "(%u): not sent", cl->desc, d->topic, d->payload_len, max);
	cl->b->msgs_too_large++;
	return true;
}

/* The client's own message where a No Local subscription does not match
 * it: the QoS of the others that do (3.3.4), if lower than the one the
 * topicd sent it at.  At QoS 0 it is over for the topicd at once. */
static void
lower_qos(struct client *cl, const struct rec_deliver *d, struct mqtt_publish *pub,
    uint8_t qos)
{
	if (pub->qos <= qos)
		return;
	log_debug("client %s: %s seq %llu goes at QoS %u: its No Local subscription does "
	    "not match", cl->desc, d->topic, (unsigned long long)d->seq, qos);
	pub->qos = qos;
	if (qos > 0)
		return;
	pub->dup = false;
	mqtt_delivery_over(cl, d);
}

static bool
from_itself(const struct client *cl, const struct rec_deliver *d)
{
	return d->origin[0] != '\0' && strcmp(d->origin, mqtt_conn(cl)->client_id) == 0;
}

/* What MQTT 5.0 adds to a delivery: its properties, with the expiry
 * interval left and the matching subscriptions' identifiers, Retain As
 * Published, and the QoS of the subscriptions that match.  false when it
 * is not for this client: No Local, over its Maximum Packet Size. */
bool
mqtt5_deliver_prepare(struct client *cl, const struct rec_deliver *d, struct mqtt_publish *pub,
    bool again)
{
	struct sub_match m;
	const char *why;

	subopts_match(cl->session, d->topic, d->share, from_itself(cl, d), &m);
	if (m.skip)
		return skip_delivery(cl, d, "No Local");
	if (msg_props_out(d, &pub->props, &why) == -1) {
		mqtt_props_free(&pub->props);
		log_warnx("client %s: a message of %s has unreadable properties (%s): sent "
		    "without them", cl->desc, d->topic, why);
	}
	for (size_t i = 0; i < m.nids; i++)
		(void)mqtt_props_add_u32(&pub->props, MQTT_PROP_SUBSCRIPTION_ID, m.ids[i]);
	if (m.rap && (d->flags & DF_PUBRETAIN))
		pub->retain = true;
	if (too_large_for(cl, d, pub)) {
		mqtt_props_free(&pub->props);
		return skip_delivery(cl, d, "over the Maximum Packet Size");
	}
	if (m.no_local && !again)
		lower_qos(cl, d, pub, m.qos);
	return true;
}

/* The topic, or a Topic Alias for it (3.3.2.3.4): the topic goes with a
 * new alias, an empty one with an alias the client knows.  Without an
 * alias when one would take the packet over the client's Maximum Packet
 * Size: a fresh one is then not given. */
void
mqtt5_use_alias(struct client *cl, struct mqtt_publish *pub)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	bool fresh;
	uint16_t alias = alias_peek(&mc->alias_out, pub->topic, &fresh);

	if (alias == 0 ||
	    (mc->max_packet > 0 && publish_size(pub, alias, fresh) > mc->max_packet))
		return;
	(void)alias_pick(&mc->alias_out, pub->topic, &fresh);
	(void)mqtt_props_add_u32(&pub->props, MQTT_PROP_TOPIC_ALIAS, alias);
	if (!fresh)
		pub->topic = "";
}
