/* libFuzzer target for the MQTT codec (broker/mqtt/codec.c,
 * broker/mqtt/decode.c).
 *
 * The input is bytes off the wire.  Besides crashes and leaks it checks:
 * mqtt_frame() and mqtt_decode() agree on where a packet ends; a decoded
 * packet passes mqtt_check(), re-encodes to the same bytes (an MQTT 3.1
 * CONNECT without its optional fields to fewer) and decodes again to the
 * same fields; one byte less never decodes.  The input is also used as a
 * topic, a filter and a client id for the encoders, which must accept it
 * exactly when the topic rules (common/topic.h) do. */
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
	    b->password_len);
}

static bool
list_eq(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	size_t i;

	switch (a->type) {
	case MQTT_SUBSCRIBE:
		if (a->u.subscribe.packet_id != b->u.subscribe.packet_id ||
		    a->u.subscribe.n != b->u.subscribe.n)
			return false;
		for (i = 0; i < a->u.subscribe.n; i++)
			if (!str_eq(a->u.subscribe.items[i].filter,
			    b->u.subscribe.items[i].filter) ||
			    a->u.subscribe.items[i].qos !=
			    b->u.subscribe.items[i].qos)
				return false;
		return true;
	case MQTT_UNSUBSCRIBE:
		if (a->u.unsubscribe.packet_id != b->u.unsubscribe.packet_id ||
		    a->u.unsubscribe.n != b->u.unsubscribe.n)
			return false;
		for (i = 0; i < a->u.unsubscribe.n; i++)
			if (!str_eq(a->u.unsubscribe.filters[i],
			    b->u.unsubscribe.filters[i]))
				return false;
		return true;
	default:		/* SUBACK */
		return a->u.suback.packet_id == b->u.suback.packet_id &&
		    bytes_eq(a->u.suback.codes, a->u.suback.n,
		    b->u.suback.codes, b->u.suback.n);
	}
}

static bool
packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
	const struct mqtt_publish *pa = &a->u.publish, *pb = &b->u.publish;

	if (a->type != b->type || a->flags != b->flags)
		return false;
	switch (a->type) {
	case MQTT_CONNECT:
		return connect_eq(&a->u.connect, &b->u.connect);
	case MQTT_CONNACK:
		return a->u.connack.session_present ==
		    b->u.connack.session_present &&
		    a->u.connack.return_code == b->u.connack.return_code;
	case MQTT_PUBLISH:
		return pa->qos == pb->qos && pa->dup == pb->dup &&
		    pa->retain == pb->retain && str_eq(pa->topic, pb->topic) &&
		    pa->packet_id == pb->packet_id &&
		    bytes_eq(pa->payload, pa->len, pb->payload, pb->len);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		return a->u.ack.packet_id == b->u.ack.packet_id;
	case MQTT_SUBSCRIBE:
	case MQTT_SUBACK:
	case MQTT_UNSUBSCRIBE:
		return list_eq(a, b);
	default:
		return true;
	}
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
	CHECK(mqtt_type_dir(p->type) != 0);
	wbuf_init(&w);
	CHECK(mqtt_encode(&w, p) == 0);
	if (p->type == MQTT_CONNECT && p->u.connect.level == MQTT_LEVEL_31)
		CHECK(w.len <= len);
	else
		CHECK(w.len == len && memcmp(w.data, pkt, len) == 0);
	CHECK(mqtt_frame(w.data, w.len, w.len, &total) == 1);
	CHECK(total == w.len);
	CHECK(mqtt_decode(w.data, w.len, &q) == 0);
	CHECK(packet_eq(p, &q));
	mqtt_packet_free(&q);
	wbuf_free(&w);
}

/* A known protocol name with the other name's level, or another level. */
static void
check_bad_level(const struct mqtt_packet *p, const uint8_t *data)
{
	const uint8_t *name = data + 1;
	uint8_t level = p->u.connect.level;

	while (*name & 0x80)
		name++;
	name += 3;		/* last length byte, name length */
	if (memcmp(name, "MQTT", 4) == 0)
		CHECK(level != MQTT_LEVEL_311 && name[4] == level);
	else
		CHECK(memcmp(name, "MQIsdp", 6) == 0 &&
		    level != MQTT_LEVEL_31 && name[6] == level);
}

static void
check_frame(const uint8_t *data, size_t size)
{
	struct mqtt_packet p;
	size_t total, t2;
	int rc, drc;

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
	/* The input as one packet: only if it is exactly one frame. */
	drc = mqtt_decode(data, size, &p);
	CHECK(drc == 0 || p.error != NULL);
	if (drc == 0)
		CHECK(rc == 1 && total == size);
	if (drc == MQTT_E_BAD_LEVEL || drc == MQTT_E_PROTOCOL_NAME)
		CHECK(p.type == MQTT_CONNECT && p.u.connect.client_id == NULL);
	if (drc == MQTT_E_BAD_LEVEL)
		check_bad_level(&p, data);
	mqtt_packet_free(&p);
	if (rc != 1)
		return;
	if (mqtt_decode(data, total, &p) == 0)
		check_decoded(&p, data, total);
	mqtt_packet_free(&p);
	CHECK(mqtt_decode(data, total - 1, &p) == MQTT_E_MALFORMED);
	mqtt_packet_free(&p);
}

/* The encoders take a string exactly when the rules say it is valid. */
static void
check_encoders(const uint8_t *data, size_t size)
{
	struct mqtt_packet in, out;
	struct mqtt_sub_item item;
	struct mqtt_subscribe sub = { 1, 1, &item };
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
	wbuf_init(&w);

	memset(&in, 0, sizeof(in));
	in.type = MQTT_PUBLISH;
	in.u.publish.topic = s;
	in.u.publish.qos = (uint8_t)(size % 3);
	in.u.publish.packet_id = in.u.publish.qos ? (uint16_t)size | 1 : 0;
	in.u.publish.payload = data;
	in.u.publish.len = size;
	rc = mqtt_encode(&w, &in);
	CHECK((rc == 0) == (topic_check_name(s, n) == TOPIC_OK));
	CHECK(rc == 0 || w.len == 0);
	if (rc == 0) {
		CHECK(mqtt_decode(w.data, w.len, &out) == 0);
		in.flags = (uint8_t)(in.u.publish.qos << 1);
		CHECK(packet_eq(&in, &out));
		mqtt_packet_free(&out);
	}

	wbuf_reset(&w);
	item.filter = s;
	item.qos = (uint8_t)(size % 3);
	rc = mqtt_enc_subscribe(&w, &sub);
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
	check_encoders(data, size);
	return 0;
}
