/* The rules every MQTT packet obeys (mqtt_check()), shared by the decoder
 * and the encoders.  Each check also adds the packet's Remaining Length
 * to c->rem, and fails once it would exceed MQTT_MAX_REMAINING; a rule
 * whose breach level 5 calls a Protocol Error says so with
 * mqtt_chk_proto() (below level 5 every breach is malformed). */
#include "mqtt/wire.h"

#include <string.h>

#include "topic.h"

/* A UTF-8 string field (1.5.3). */
static const char *
check_string(const char *s, struct chk *c)
{
	size_t n;

	if (s == NULL)
		return "missing string";
	n = strlen(s);
	if (n > MQTT_MAX_STRING)
		return "string longer than 65535 bytes";
	if (!utf8_valid(s, n))
		return "string is not well-formed UTF-8";
	return mqtt_chk_len(c, 2 + n);
}

static const char *
check_topic(const char *s, bool filter, struct chk *c)
{
	enum topic_err e;
	size_t n;

	if (s == NULL)
		return "missing topic";
	n = strlen(s);
	e = filter ? topic_check_sub_filter(s, n) : topic_check_name(s, n);
	if (e != TOPIC_OK)
		return topic_strerror(e);
	return mqtt_chk_len(c, 2 + n);
}

static const char *
check_binary(const uint8_t *p, size_t n, struct chk *c)
{
	if (p == NULL && n > 0)
		return "missing binary data";
	if (n > MQTT_MAX_STRING)
		return "binary field longer than 65535 bytes";
	return mqtt_chk_len(c, 2 + n);
}

static const char *
check_packet_id(uint16_t id, struct chk *c)
{
	if (id == 0)
		return mqtt_chk_proto(c, "packet identifier 0");
	return mqtt_chk_len(c, 2);
}

/* Authentication Data goes with an Authentication Method (3.1.2.11.10). */
static const char *
check_auth_props(const struct mqtt_props *ps, struct chk *c)
{
	if (mqtt_props_find(ps, MQTT_PROP_AUTH_DATA) != NULL &&
	    mqtt_props_find(ps, MQTT_PROP_AUTH_METHOD) == NULL)
		return mqtt_chk_proto(c, "Authentication Data without an "
		    "Authentication Method");
	return NULL;
}

static const char *
check_will(const struct mqtt_connect *w, struct chk *c)
{
	const char *e;

	if (!w->will) {
		if (w->will_qos != 0 || w->will_retain)
			return "will QoS or retain without a will";
		if (w->will_topic != NULL || w->will_payload != NULL ||
		    w->will_len != 0)
			return "will topic or message without a will";
		if (w->will_props.n != 0)
			return "will properties without a will";
		return NULL;
	}
	if (w->will_qos > 2)
		return "will QoS 3";
	if ((e = mqtt_props_rules(&w->will_props, MQTT_PROPS_WILL, c)) != NULL)
		return e;
	if ((e = check_topic(w->will_topic, false, c)) != NULL)
		return e;
	return check_binary(w->will_payload, w->will_len, c);
}

static const char *
check_connect(const struct mqtt_connect *cn, struct chk *c)
{
	const char *e;

	if (cn->level != MQTT_LEVEL_311 && cn->level != MQTT_LEVEL_31 &&
	    cn->level != MQTT_LEVEL_5)
		return "unsupported protocol level";
	c->v5 = mqtt_is_v5(cn->level);	/* a CONNECT's level is its own */
	/* Protocol name, level, flags, keep alive. */
	c->rem = (cn->level == MQTT_LEVEL_31 ? 8 : 6) + 1 + 1 + 2;
	if ((e = mqtt_props_rules(&cn->props, MQTT_CONNECT, c)) != NULL ||
	    (e = check_auth_props(&cn->props, c)) != NULL)
		return e;
	if ((e = check_string(cn->client_id, c)) != NULL)
		return e;
	if ((e = check_will(cn, c)) != NULL)
		return e;
	if (cn->username != NULL &&
	    (e = check_string(cn->username, c)) != NULL)
		return e;
	if (cn->password == NULL)
		return cn->password_len == 0 ? NULL : "missing password";
	if (cn->username == NULL && !c->v5)
		return "password without a user name";
	return check_binary(cn->password, cn->password_len, c);
}

static const char *
check_connack(const struct mqtt_connack *ca, struct chk *c)
{
	c->rem = 2;
	if (!c->v5 && ca->return_code > MQTT_CONNACK_NOT_AUTHORIZED)
		return "reserved CONNACK return code";
	if (c->v5 && !mqtt_reason_allowed(MQTT_CONNACK, ca->return_code))
		return mqtt_chk_proto(c, "reason code not allowed in CONNACK");
	if (ca->session_present && ca->return_code != MQTT_CONNACK_ACCEPTED)
		return "session present on a refused connection";
	return mqtt_props_rules(&ca->props, MQTT_CONNACK, c);
}

/* A level-5 topic name may be empty when a Topic Alias stands for it. */
static const char *
check_publish_topic(const struct mqtt_publish *p, struct chk *c)
{
	if (!c->v5 || p->topic == NULL || p->topic[0] != '\0')
		return check_topic(p->topic, false, c);
	if (mqtt_props_find(&p->props, MQTT_PROP_TOPIC_ALIAS) == NULL)
		return mqtt_chk_proto(c, "empty topic name without a Topic "
		    "Alias");
	return mqtt_chk_len(c, 2);
}

static const char *
check_publish(const struct mqtt_publish *p, struct chk *c)
{
	const char *e;

	if (p->qos > 2)
		return "PUBLISH QoS 3";
	if (p->qos == 0 && p->dup)
		return "DUP flag on a QoS 0 PUBLISH";
	if ((e = check_publish_topic(p, c)) != NULL)
		return e;
	if (p->qos == 0 && p->packet_id != 0)
		return "packet identifier on a QoS 0 PUBLISH";
	if (p->qos > 0 && (e = check_packet_id(p->packet_id, c)) != NULL)
		return e;
	if ((e = mqtt_props_rules(&p->props, MQTT_PUBLISH, c)) != NULL)
		return e;
	if (p->payload == NULL && p->len > 0)
		return "missing payload";
	return mqtt_chk_len(c, p->len);
}

/*
 * What follows the packet identifier of an ack, or makes a DISCONNECT:
 * at level 5 a reason code the type allows and properties, either left
 * out when the form allows (see enum mqtt_form); below it, nothing.
 */
static const char *
check_tail(uint8_t type, uint8_t reason, uint8_t form,
    const struct mqtt_props *ps, struct chk *c)
{
	uint8_t need = ps->n > 0 ? MQTT_FORM_PROPS :
	    reason != 0 ? MQTT_FORM_REASON : MQTT_FORM_MINIMAL;
	const char *e;

	if (!c->v5)
		return reason != 0 || form != 0 || ps->n != 0 ?
		    "reason code or properties below MQTT 5.0" : NULL;
	if (!mqtt_reason_allowed(type, reason))
		return mqtt_chk_proto(c, "reason code not allowed in the "
		    "packet type");
	if (form > MQTT_FORM_PROPS || (form != 0 && form <= need))
		return "form that the fields do not need";
	if (form > need)
		need = form;
	if (need >= MQTT_FORM_REASON && (e = mqtt_chk_len(c, 1)) != NULL)
		return e;
	if (need == MQTT_FORM_PROPS)
		return mqtt_props_rules(ps, type, c);
	return NULL;
}

static const char *
check_ack(uint8_t type, const struct mqtt_ack *a, struct chk *c)
{
	const char *e;

	if ((e = check_packet_id(a->packet_id, c)) != NULL)
		return e;
	return check_tail(type, a->reason, a->form, &a->props, c);
}

/* A filter of a SUBSCRIBE or UNSUBSCRIBE; at level 5 "$share/" starts a
 * shared subscription, and a malformed one is a Protocol Error (4.8.2);
 * below, where a share is mosquitto's extension, the SUBACK says 0x80. */
static const char *
check_filter(const char *f, bool no_local, struct chk *c)
{
	const char *e, *rest;
	size_t n;
	int shared;

	if ((e = check_topic(f, true, c)) != NULL || !c->v5)
		return e;
	if ((shared = mqtt_share_split(f, &n, &rest)) < 0)
		return mqtt_chk_proto(c, "malformed shared subscription");
	if (shared && no_local)
		return mqtt_chk_proto(c, "No Local on a shared subscription");
	return NULL;
}

static const char *
check_options(const struct mqtt_sub_item *it, struct chk *c)
{
	if (it->qos > 2)
		return mqtt_chk_proto(c, "requested QoS above 2");
	if (!c->v5)
		return it->no_local || it->retain_as_published ||
		    it->retain_handling != 0 ?
		    "subscription options below MQTT 5.0" : NULL;
	if (it->retain_handling > 2)
		return mqtt_chk_proto(c, "Retain Handling 3");
	return NULL;
}

static const char *
check_subscribe(const struct mqtt_subscribe *s, struct chk *c)
{
	const char *e;
	size_t i;

	if ((e = check_packet_id(s->packet_id, c)) != NULL)
		return e;
	if ((e = mqtt_props_rules(&s->props, MQTT_SUBSCRIBE, c)) != NULL)
		return e;
	if (s->n == 0 || s->items == NULL)
		return mqtt_chk_proto(c, "SUBSCRIBE without topic filters");
	for (i = 0; i < s->n; i++) {
		if ((e = check_filter(s->items[i].filter, s->items[i].no_local,
		    c)) != NULL)
			return e;
		if ((e = check_options(&s->items[i], c)) != NULL)
			return e;
		if ((e = mqtt_chk_len(c, 1)) != NULL)
			return e;
	}
	return NULL;
}

static const char *
check_suback_codes(uint8_t type, const struct mqtt_suback *s, struct chk *c)
{
	size_t i;

	if (s->n == 0 || s->codes == NULL)
		return mqtt_chk_proto(c, type == MQTT_SUBACK ?
		    "SUBACK without return codes" :
		    "UNSUBACK without reason codes");
	for (i = 0; i < s->n; i++) {
		if (!c->v5 && s->codes[i] > 2 &&
		    s->codes[i] != MQTT_SUBACK_FAILURE)
			return "reserved SUBACK return code";
		if (c->v5 && !mqtt_reason_allowed(type, s->codes[i]))
			return mqtt_chk_proto(c, "reason code not allowed in "
			    "the packet type");
	}
	return mqtt_chk_len(c, s->n);
}

/* A SUBACK, or an UNSUBACK (which has reason codes at level 5 only). */
static const char *
check_suback(uint8_t type, const struct mqtt_suback *s, struct chk *c)
{
	const char *e;

	if ((e = check_packet_id(s->packet_id, c)) != NULL)
		return e;
	if ((e = mqtt_props_rules(&s->props, type, c)) != NULL)
		return e;
	if (type == MQTT_UNSUBACK && !c->v5)
		return s->n != 0 || s->codes != NULL ?
		    "UNSUBACK reason codes below MQTT 5.0" : NULL;
	return check_suback_codes(type, s, c);
}

static const char *
check_unsubscribe(const struct mqtt_unsubscribe *u, struct chk *c)
{
	const char *e;
	size_t i;

	if ((e = check_packet_id(u->packet_id, c)) != NULL)
		return e;
	if ((e = mqtt_props_rules(&u->props, MQTT_UNSUBSCRIBE, c)) != NULL)
		return e;
	if (u->n == 0 || u->filters == NULL)
		return mqtt_chk_proto(c, "UNSUBSCRIBE without topic filters");
	for (i = 0; i < u->n; i++)
		if ((e = check_filter(u->filters[i], false, c)) != NULL)
			return e;
	return NULL;
}

/* AUTH: always its reason code and properties (3.15.2). */
static const char *
check_auth(const struct mqtt_auth *a, struct chk *c)
{
	const char *e;

	c->rem = 1;
	if (!mqtt_reason_allowed(MQTT_AUTH, a->reason))
		return mqtt_chk_proto(c, "reason code not allowed in the "
		    "packet type");
	if ((e = mqtt_props_rules(&a->props, MQTT_AUTH, c)) != NULL)
		return e;
	if (mqtt_props_find(&a->props, MQTT_PROP_AUTH_METHOD) == NULL)
		return mqtt_chk_proto(c, "AUTH without an Authentication "
		    "Method");
	return NULL;
}

const char *
mqtt_chk_packet(const struct mqtt_packet *p, struct chk *c)
{
	const struct mqtt_disconnect *d = &p->u.disconnect;

	c->rem = 0;
	c->v5 = mqtt_is_v5(p->level);
	c->protocol = false;
	switch (p->type) {
	case MQTT_CONNECT:
		return check_connect(&p->u.connect, c);
	case MQTT_CONNACK:
		return check_connack(&p->u.connack, c);
	case MQTT_PUBLISH:
		return check_publish(&p->u.publish, c);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return check_ack(p->type, &p->u.ack, c);
	case MQTT_SUBSCRIBE:
		return check_subscribe(&p->u.subscribe, c);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		return check_suback(p->type, &p->u.suback, c);
	case MQTT_UNSUBSCRIBE:
		return check_unsubscribe(&p->u.unsubscribe, c);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		return NULL;
	case MQTT_DISCONNECT:
		return check_tail(p->type, d->reason, d->form, &d->props, c);
	case MQTT_AUTH:
		if (c->v5)
			return check_auth(&p->u.auth, c);
		break;
	}
	return "reserved packet type";
}

const char *
mqtt_check(const struct mqtt_packet *p)
{
	struct chk c;

	return mqtt_chk_packet(p, &c);
}

size_t
mqtt_packet_size(const struct mqtt_packet *p)
{
	struct chk c;

	if (mqtt_chk_packet(p, &c) != NULL)
		return 0;
	return 1 + mqtt_varint_len(c.rem) + c.rem;
}

int
mqtt_share_split(const char *filter, size_t *name_len, const char **rest)
{
	const char *name, *slash;
	size_t n;

	if (strncmp(filter, "$share/", 7) != 0)
		return 0;
	name = filter + 7;
	if ((slash = strchr(name, '/')) == NULL || slash[1] == '\0')
		return -1;
	n = (size_t)(slash - name);
	if (n == 0 || memchr(name, '+', n) != NULL ||
	    memchr(name, '#', n) != NULL)
		return -1;
	*name_len = n;
	*rest = slash + 1;
	return 1;
}
