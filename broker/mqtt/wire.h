/* The MQTT codec's own: what its files share, not an interface.  Wire
 * primitives (wire.c), the state of a check (check.c, props.c), the
 * property lists' wire form (props.c) and the reason-code table
 * (reason.c). */
#ifndef BROKER_MQTT_WIRE_H
#define BROKER_MQTT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "marshal.h"
#include "mqtt/mqtt_codec.h"

/*
 * Reading.  mqtt_rd_varint() reads a Variable Byte Integer at buf[0 ..
 * len): 1 with the value and the number of its bytes, 0 if it is
 * incomplete, VARINT_OVERLONG for a form longer than needed (its last
 * byte is 0), VARINT_TOO_LONG for a continuation bit on the 4th byte.
 * The others read from an rbuf and return 0, or -1 when it runs out.
 */
#define VARINT_OVERLONG		(-1)
#define VARINT_TOO_LONG		(-2)
int	mqtt_rd_varint(const uint8_t *buf, size_t len, size_t *value,
	    size_t *n);
/* A Variable Byte Integer inside a packet: NULL, or why[0] if it runs
 * past the end, why[1] if over-long, why[2] if longer than 4 bytes. */
const char *mqtt_rd_vbi(struct rbuf *r, size_t *v, const char *const why[3]);
int	mqtt_rd_u16(struct rbuf *r, uint16_t *v);
int	mqtt_rd_u32(struct rbuf *r, uint32_t *v);
/* A 16-bit length and that many bytes: binary data, or a string. */
int	mqtt_rd_field(struct rbuf *r, const uint8_t **p, size_t *n);

/* Writing: big-endian integers (1.5.2), Variable Byte Integers (1.5.5),
 * a 16-bit length and the bytes (1.5.3 - 1.5.6). */
void	mqtt_wr_u16(struct wbuf *w, uint16_t v);
void	mqtt_wr_u32(struct wbuf *w, uint32_t v);
void	mqtt_wr_varint(struct wbuf *w, size_t v);
void	mqtt_wr_field(struct wbuf *w, const void *p, size_t n);
void	mqtt_wr_string(struct wbuf *w, const char *s);

/*
 * A check in progress: the Remaining Length so far (each check adds its
 * field's bytes and fails once the packet would exceed
 * MQTT_MAX_REMAINING), the layout (level 5 or not), and whether the
 * failure is a Protocol Error rather than a Malformed Packet (which only
 * level 5 tells apart).
 */
struct chk {
	size_t	 rem;
	bool	 v5;
	bool	 protocol;
};

const char *mqtt_chk_len(struct chk *c, size_t n);
/* Marks the failure as a Protocol Error and returns why. */
const char *mqtt_chk_proto(struct chk *c, const char *why);
/* A string's bytes: at most 65535, well-formed UTF-8, no U+0000. */
const char *mqtt_chk_utf8(const char *p, size_t n);
/* The rules of a packet (check.c); mqtt_check() without the reason's
 * class. */
const char *mqtt_chk_packet(const struct mqtt_packet *p, struct chk *c);

/*
 * Property lists.  mqtt_props_read() reads a Property Length and the
 * properties it covers into ps (NULL, or why the layout is malformed);
 * mqtt_props_read_all() reads properties up to the end of r, with no
 * Property Length (packed properties).  mqtt_props_rules() checks a list
 * for a place (a packet type or MQTT_PROPS_WILL), adding the Property
 * Length and the properties to c->rem; mqtt_props_write() writes them
 * (after a check).  mqtt_props_wire_len() is the properties' bytes
 * without the Property Length (after a check).
 */
const char *mqtt_props_read(struct rbuf *r, struct mqtt_props *ps);
const char *mqtt_props_read_all(struct rbuf *r, struct mqtt_props *ps);
const char *mqtt_props_rules(const struct mqtt_props *ps, uint8_t where,
	    struct chk *c);
void	mqtt_props_write(struct wbuf *w, const struct mqtt_props *ps);
void	mqtt_props_write_all(struct wbuf *w, const struct mqtt_props *ps);
size_t	mqtt_props_wire_len(const struct mqtt_props *ps);
/* Appends a zeroed entry and returns it. */
struct mqtt_prop *mqtt_props_push(struct mqtt_props *ps);

/* Is the packet level 5's layout? */
static inline bool
mqtt_is_v5(uint8_t level)
{
	return level == MQTT_LEVEL_5;
}

#endif
