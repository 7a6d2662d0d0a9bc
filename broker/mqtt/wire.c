/* MQTT's data representations (1.5): big-endian integers, Variable Byte
 * Integers, and length-prefixed strings and binary data, read from an
 * rbuf and written to a wbuf; and the helpers every check shares. */
#include "mqtt/wire.h"

#include <string.h>

#include "topic.h"

int
mqtt_rd_varint(const uint8_t *buf, size_t len, size_t *value, size_t *n)
{
	size_t v = 0, i;

	for (i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		v |= (size_t)(buf[i] & 0x7f) << (7 * i);
		if ((buf[i] & 0x80) != 0)
			continue;
		if (i > 0 && buf[i] == 0)
			return VARINT_OVERLONG;
		*value = v;
		*n = i + 1;
		return 1;
	}
	return VARINT_TOO_LONG;
}

const char *
mqtt_rd_vbi(struct rbuf *r, size_t *v, const char *const why[3])
{
	const uint8_t *p;
	size_t n;

	switch (mqtt_rd_varint(r->p, r->left, v, &n)) {
	case 0:
		return why[0];
	case VARINT_OVERLONG:
		return why[1];
	case VARINT_TOO_LONG:
		return why[2];
	}
	get_raw(r, &p, n);		/* there: cannot fail */
	return NULL;
}

int
mqtt_rd_u16(struct rbuf *r, uint16_t *v)
{
	const uint8_t *p;

	*v = 0;
	if (get_raw(r, &p, 2) == -1)
		return -1;
	*v = (uint16_t)(p[0] << 8 | p[1]);
	return 0;
}

int
mqtt_rd_u32(struct rbuf *r, uint32_t *v)
{
	const uint8_t *p;

	*v = 0;
	if (get_raw(r, &p, 4) == -1)
		return -1;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
	return 0;
}

int
mqtt_rd_field(struct rbuf *r, const uint8_t **p, size_t *n)
{
	uint16_t len;

	if (mqtt_rd_u16(r, &len) == -1 || get_raw(r, p, len) == -1)
		return -1;
	*n = len;
	return 0;
}

void
mqtt_wr_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { v >> 8, v & 0xff };

	put_raw(w, b, sizeof(b));
}

void
mqtt_wr_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = { v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff,
	    v & 0xff };

	put_raw(w, b, sizeof(b));
}

void
mqtt_wr_varint(struct wbuf *w, size_t v)
{
	uint8_t b[4];
	size_t n = 0;

	do {
		b[n] = v & 0x7f;
		v >>= 7;
		if (v > 0)
			b[n] |= 0x80;
		n++;
	} while (v > 0 && n < sizeof(b));
	put_raw(w, b, n);
}

void
mqtt_wr_field(struct wbuf *w, const void *p, size_t n)
{
	mqtt_wr_u16(w, (uint16_t)n);
	if (n > 0)
		put_raw(w, p, n);
}

void
mqtt_wr_string(struct wbuf *w, const char *s)
{
	mqtt_wr_field(w, s, strlen(s));
}

size_t
mqtt_varint_len(size_t n)
{
	if (n < 128)
		return 1;
	if (n < 16384)
		return 2;
	if (n < 2097152)
		return 3;
	if (n <= MQTT_MAX_VARINT)
		return 4;
	return 0;
}

const char *
mqtt_chk_len(struct chk *c, size_t n)
{
	if (n > MQTT_MAX_REMAINING - c->rem)
		return "packet too large";
	c->rem += n;
	return NULL;
}

const char *
mqtt_chk_proto(struct chk *c, const char *why)
{
	c->protocol = true;
	return why;
}

const char *
mqtt_chk_utf8(const char *p, size_t n)
{
	if (n > MQTT_MAX_STRING)
		return "string longer than 65535 bytes";
	if (n > 0 && memchr(p, '\0', n) != NULL)
		return "string contains U+0000";
	if (!utf8_valid(p, n))
		return "string is not well-formed UTF-8";
	return NULL;
}
