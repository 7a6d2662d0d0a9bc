/* libFuzzer target for the MQTT codec (broker/mqtt/: MQTT_CODEC_SRC in
 * mk/codec.mk).
 *
 * The input is bytes off the wire, read as a packet of an MQTT 3.1.1
 * connection and of an MQTT 5.0 one.  Besides crashes and leaks it
 * checks: mqtt_frame() and mqtt_decode() agree on where a packet ends; a
 * decoded packet passes mqtt_check(), re-encodes to the same bytes (an
 * MQTT 3.1 CONNECT without its optional fields to fewer) and decodes
 * again to the same fields, properties included; one byte less never
 * decodes; a Protocol Error is only ever reported at level 5.  The
 * application properties of a decoded PUBLISH or will pack and unpack to
 * the same list, and the input read as packed properties, if it
 * unpacks, packs to the same bytes.  The input is also used as a topic,
 * a filter and a client id for the encoders, which must accept it
 * exactly when the topic rules (common/topic.h) do, and as the start of
 * a CONNECT too large to be taken, whose level mqtt_connect_level()
 * reads. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt_codec.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
bytes_eq(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	if (a == NULL || b == NULL)
		return a == b && an == bn;
	return an == bn && memcmp(a, b, an) == 0;
}

static bool
mstr_eq(const struct mqtt_str *a, const struct mqtt_str *b)
{
	return a->len == b->len &&
	    (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static bool
props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (a->v[i].id != b->v[i].id || a->v[i].num != b->v[i].num ||
		    !mstr_eq(&a->v[i].str, &b->v[i].str) ||
		    !mstr_eq(&a->v[i].name, &b->v[i].name))
			return false;
	return true;
}

static bool
connect_eq(const struct mqtt_connect *a, const struct mqtt_connect *b)
{
	return a->level == b->level && a->clean_session == b->clean_session &&
	    a->keepalive == b->keepalive && str_eq(a->client_id, b->client_id) &&
	    a->will == b->will && a->will_qos == b->will_qos &&
	    a->will_retain == b->will_retain &&
	    str_eq(a->will_topic, b->will_topic) &&
	    bytes_eq(a->will_payload, a->will_len, b->will_payload,
	    b->will_len) && str_eq(a->username, b->username) &&
	    bytes_eq(a->password, a->password_len, b->password,
	    b->password_len) && props_eq(&a->props, &b->props) &&
	    props_eq(&a->will_props, &b->will_props);
}

static bool
item_eq(const struct mqtt_sub_item *a, const struct mqtt_sub_item *b)
{
	return str_eq(a->filter, b->filter) && a->qos == b->qos &&
	    a->no_local == b->no_local &&
	    a->retain_as_published == b->retain_as_published &&
	    a->retain_handling == b->retain_handling;
}

static bool
list_eq(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	const struct mqtt_subscribe *sa = &a->u.subscribe, *sb = &b->u.subscribe;
	const struct mqtt_unsubscribe *ua = &a->u.unsubscribe,
	    *ub = &b->u.unsubscribe;
	size_t i;

	switch (a->type) {
	case MQTT_SUBSCRIBE:
		if (sa->packet_id != sb->packet_id || sa->n != sb->n ||
		    !props_eq(&sa->props, &sb->props))
			return false;
		for (i = 0; i < sa->n; i++)
			if (!item_eq(&sa->items[i], &sb->items[i]))
				return false;
		return true;
	case MQTT_UNSUBSCRIBE:
		if (ua->packet_id != ub->packet_id || ua->n != ub->n ||
		    !props_eq(&ua->props, &ub->props))
			return false;
		for (i = 0; i < ua->n; i++)
			if (!str_eq(ua->filters[i], ub->filters[i]))
				return false;
		return true;
	default:		/* SUBACK, UNSUBACK */
		return a->u.suback.packet_id == b->u.suback.packet_id &&
		    bytes_eq(a->u.suback.codes, a->u.suback.n,
		    b->u.suback.codes, b->u.suback.n) &&
		    props_eq(&a->u.suback.props, &b->u.suback.props);
	}
}

static bool
publish_eq(const struct mqtt_publish *a, const struct mqtt_publish *b)
{
	return a->qos == b->qos && a->dup == b->dup &&
	    a->retain == b->retain && str_eq(a->topic, b->topic) &&
	    a->packet_id == b->packet_id &&
	    bytes_eq(a->payload, a->len, b->payload, b->len) &&
	    props_eq(&a->props, &b->props);
}

static bool
tail_eq(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	const struct mqtt_ack *aa = &a->u.ack, *ab = &b->u.ack;
	const struct mqtt_disconnect *da = &a->u.disconnect,
	    *db = &b->u.disconnect;

	switch (a->type) {
	case MQTT_DISCONNECT:
		return da->reason == db->reason && da->form == db->form &&
		    props_eq(&da->props, &db->props);
	case MQTT_AUTH:
		return a->u.auth.reason == b->u.auth.reason &&
		    props_eq(&a->u.auth.props, &b->u.auth.props);
	default:		/* PUBACK .. PUBCOMP */
		return aa->packet_id == ab->packet_id &&
		    aa->reason == ab->reason && aa->form == ab->form &&
		    props_eq(&aa->props, &ab->props);
	}
}

static bool
packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	if (a->type != b->type || a->flags != b->flags ||
	    a->level != b->level)
		return false;
	switch (a->type) {
	case MQTT_CONNECT:
		return connect_eq(&a->u.connect, &b->u.connect);
	case MQTT_CONNACK:
		return a->u.connack.session_present ==
		    b->u.connack.session_present &&
		    a->u.connack.return_code == b->u.connack.return_code &&
		    props_eq(&a->u.connack.props, &b->u.connack.props);
	case MQTT_PUBLISH:
		return publish_eq(&a->u.publish, &b->u.publish);
	case MQTT_SUBSCRIBE:
	case MQTT_SUBACK:
	case MQTT_UNSUBSCRIBE:
	case MQTT_UNSUBACK:
		return list_eq(a, b);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		return true;
	default:
		return tail_eq(a, b);
	}
}

/* A decoded list's application properties pack, and unpack to the same
 * application properties. */
static void
check_pack(const struct mqtt_props *ps)
{
	struct mqtt_props app = { 0 }, back;
	const char *why;
	struct wbuf w;
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (mqtt_prop_is_application(ps->v[i].id))
			CHECK(mqtt_props_add(&app, &ps->v[i]) == 0);
	wbuf_init(&w);
	CHECK(mqtt_props_pack(&w, ps) == 0);
	CHECK(mqtt_props_unpack(w.data, w.len, &back, &why) == 0);
	CHECK(props_eq(&app, &back));
	mqtt_props_free(&back);
	mqtt_props_free(&app);
	wbuf_free(&w);
}

/* A packet decoded from pkt[0 .. len). */
static void
check_decoded(const struct mqtt_packet *p, const uint8_t *pkt, size_t len)
{
	struct mqtt_packet q;
	struct wbuf w;
	size_t total;

	CHECK(p->error == NULL);
	CHECK(mqtt_check(p) == NULL);
	CHECK(p->type == pkt[0] >> 4 && p->flags == (pkt[0] & 0x0f));
	CHECK(mqtt_type_dir(p->type, p->level) != 0);
	wbuf_init(&w);
	CHECK(mqtt_encode(&w, p) == 0);
	if (p->type == MQTT_CONNECT && p->u.connect.level == MQTT_LEVEL_31)
		CHECK(w.len <= len);
	else
		CHECK(w.len == len && memcmp(w.data, pkt, len) == 0);
	CHECK(mqtt_packet_size(p) == w.len);
	CHECK(mqtt_frame(w.data, w.len, w.len, &total) == 1);
	CHECK(total == w.len);
	CHECK(mqtt_decode(w.data, w.len, p->level, &q) == 0);
	CHECK(packet_eq(p, &q));
	mqtt_packet_free(&q);
	wbuf_free(&w);
	if (p->type == MQTT_PUBLISH)
		check_pack(&p->u.publish.props);
	if (p->type == MQTT_CONNECT && p->u.connect.will)
		check_pack(&p->u.connect.will_props);
}

/* A known protocol name with the other name's level, or another level. */
static void
check_bad_level(const struct mqtt_packet *p, const uint8_t *data)
{
	const uint8_t *name = data + 1;
	uint8_t level = p->u.connect.level;

	CHECK(p->level == level);
	while (*name & 0x80)
		name++;
	name += 3;		/* last length byte, name length */
	if (memcmp(name, "MQTT", 4) == 0)
		CHECK(level != MQTT_LEVEL_311 && level != MQTT_LEVEL_5 &&
		    name[4] == level);
	else
		CHECK(memcmp(name, "MQIsdp", 6) == 0 &&
		    level != MQTT_LEVEL_31 && name[6] == level);
}

/* The input decoded at a level as one packet: only if it is exactly one
 * frame (rc and total are mqtt_frame()'s). */
static void
check_decode(const uint8_t *data, size_t size, uint8_t level, int rc,
    size_t total)
{
	struct mqtt_packet p;
	int drc;

	drc = mqtt_decode(data, size, level, &p);
	CHECK(drc == 0 || p.error != NULL);
	CHECK(drc != MQTT_E_PROTOCOL || p.level == MQTT_LEVEL_5);
	if (drc == 0)
		CHECK(rc == 1 && total == size);
	if (drc == MQTT_E_BAD_LEVEL || drc == MQTT_E_PROTOCOL_NAME)
		CHECK(p.type == MQTT_CONNECT && p.u.connect.client_id == NULL);
	if (drc == MQTT_E_BAD_LEVEL)
		check_bad_level(&p, data);
	mqtt_packet_free(&p);
	if (rc != 1)
		return;
	if (mqtt_decode(data, total, level, &p) == 0)
		check_decoded(&p, data, total);
	mqtt_packet_free(&p);
	CHECK(mqtt_decode(data, total - 1, level, &p) == MQTT_E_MALFORMED);
	mqtt_packet_free(&p);
}

static void
check_frame(const uint8_t *data, size_t size)
{
	size_t total, t2;
	int rc;

	rc = mqtt_frame(data, size, MQTT_MAX_PACKET, &total);
	CHECK(rc == 1 || rc == 0 || rc == MQTT_E_MALFORMED);
	CHECK(rc != 1 || (total >= 2 && total <= size));
	CHECK(rc != 0 || total == 0 || total > size);
	CHECK(rc >= 0 || total == 0);
	if (rc == 1 || (rc == 0 && total > 0)) {
		CHECK(mqtt_frame(data, size, total - 1, &t2) ==
		    MQTT_E_TOO_LARGE && t2 == total);
		CHECK(total <= MQTT_MAX_PACKET);
	}
	check_decode(data, size, MQTT_LEVEL_311, rc, total);
	check_decode(data, size, MQTT_LEVEL_5, rc, total);
}

/* The level an oversized CONNECT is answered at: what its first bytes
 * say, more bytes do not change. */
static void
check_connect_level(const uint8_t *data, size_t size)
{
	uint8_t level = 0, l2 = 0;
	int rc = mqtt_connect_level(data, size, &level), r2;

	CHECK(rc == 1 || rc == 0 || rc == -1);
	if (size == 0)
		return;
	r2 = mqtt_connect_level(data, size - 1, &l2);
	CHECK(r2 == 0 || r2 == rc);
	CHECK(r2 != 1 || l2 == level);
}

/* The input as packed properties, as if read back from a store. */
static void
check_unpack(const uint8_t *data, size_t size)
{
	struct mqtt_props ps;
	const char *why;
	struct wbuf w;
	int rc;

	rc = mqtt_props_unpack(data, size, &ps, &why);
	CHECK(rc == 0 || rc == MQTT_E_MALFORMED || rc == MQTT_E_PROTOCOL);
	CHECK((rc == 0) == (why == NULL));
	if (rc == 0) {
		wbuf_init(&w);
		CHECK(mqtt_props_pack(&w, &ps) == 0);
		CHECK(bytes_eq(w.data, w.len, data, size) ||
		    (size == 0 && w.len == 0));
		wbuf_free(&w);
	}
	mqtt_props_free(&ps);
}

/* A PUBLISH to topic s at a level: encoded exactly when s is a topic
 * name (or, at level 5, "" with a Topic Alias), and decoded back. */
static void
check_publish_topic(char *s, size_t n, const uint8_t *data, size_t size,
    uint8_t level)
{
	struct mqtt_packet in = { .type = MQTT_PUBLISH, .level = level }, out;
	struct wbuf w;
	bool ok;
	int rc;

	in.u.publish.topic = s;
	in.u.publish.qos = (uint8_t)(size % 3);
	in.u.publish.packet_id = in.u.publish.qos ? (uint16_t)size | 1 : 0;
	in.u.publish.payload = data;
	in.u.publish.len = size;
	ok = topic_check_name(s, n) == TOPIC_OK;
	if (level == MQTT_LEVEL_5 && size % 2 == 1) {
		CHECK(mqtt_props_add_u32(&in.u.publish.props,
		    MQTT_PROP_TOPIC_ALIAS, (uint32_t)(size % 65535) + 1) == 0);
		ok = ok || n == 0;
	}
	wbuf_init(&w);
	rc = mqtt_encode(&w, &in);
	CHECK((rc == 0) == ok);
	CHECK(rc == 0 || w.len == 0);
	if (rc == 0) {
		CHECK(mqtt_decode(w.data, w.len, level, &out) == 0);
		in.flags = (uint8_t)(in.u.publish.qos << 1);
		CHECK(packet_eq(&in, &out));
		mqtt_packet_free(&out);
	}
	mqtt_props_free(&in.u.publish.props);
	wbuf_free(&w);
}

/* The encoders take a string exactly when the rules say it is valid. */
static void
check_encoders(const uint8_t *data, size_t size)
{
	struct mqtt_sub_item item = { 0 };
	struct mqtt_subscribe sub = { .packet_id = 1, .n = 1, .items = &item };
	struct mqtt_connect c = { .level = MQTT_LEVEL_311 };
	struct wbuf w;
	char *s;
	size_t n;
	int rc;

	n = strnlen((const char *)data, size);
	if ((s = malloc(n + 1)) == NULL)
		return;
	memcpy(s, data, n);
	s[n] = '\0';
	check_publish_topic(s, n, data, size, MQTT_LEVEL_311);
	check_publish_topic(s, n, data, size, MQTT_LEVEL_5);

	wbuf_init(&w);
	item.filter = s;
	item.qos = (uint8_t)(size % 3);
	rc = mqtt_enc_subscribe(&w, MQTT_LEVEL_311, &sub);
	CHECK((rc == 0) == (topic_check_filter(s, n) == TOPIC_OK));

	wbuf_reset(&w);
	c.client_id = s;
	rc = mqtt_enc_connect(&w, &c);
	CHECK((rc == 0) == (n <= MQTT_MAX_STRING && utf8_valid(s, n)));
	wbuf_free(&w);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_frame(data, size);
	check_connect_level(data, size);
	check_unpack(data, size);
	check_encoders(data, size);
	return 0;
}
