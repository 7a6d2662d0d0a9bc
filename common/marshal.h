/* Typed marshalling for IPC bodies and store records.
 *
 * Writers append to a growable buffer.  Readers walk a borrowed buffer; the
 * first failure latches (r->err) so a decoder can read every field and check
 * once with get_end(), which also insists that nothing is left over.
 * Integers are little-endian on the wire.  Strings are a u32 length, the
 * bytes and a terminating NUL; get_str() checks both the NUL and that no NUL
 * is inside, and returns a pointer into the buffer. */
#ifndef COMMON_MARSHAL_H
#define COMMON_MARSHAL_H

#include <sys/uio.h>

#include <stddef.h>
#include <stdint.h>

struct wbuf {
	uint8_t *data;
	size_t   len;
	size_t   cap;
};

void wbuf_init(struct wbuf *w);
void wbuf_free(struct wbuf *w);
void wbuf_reset(struct wbuf *w);
/* Room for n more bytes, so that writing them does not move the buffer. */
void wbuf_reserve(struct wbuf *w, size_t n);
void put_raw(struct wbuf *w, const void *p, size_t n);
void put_u8(struct wbuf *w, uint8_t v);
void put_u16(struct wbuf *w, uint16_t v);
void put_u32(struct wbuf *w, uint32_t v);
void put_u64(struct wbuf *w, uint64_t v);
void put_bytes(struct wbuf *w, const void *p, size_t n);   /* u32 length + bytes */
void put_str(struct wbuf *w, const char *s);               /* u32 length + bytes + NUL */
/* A record framed in w but for a payload that stays where it is (a
 * writer of iovecs sends or stores it without a copy): iov[0] is w's
 * first head bytes, iov[1] the payload, iov[2] the rest of w. */
void wbuf_around(const struct wbuf *w, size_t head, const void *payload, size_t len,
		 struct iovec iov[3]);

struct rbuf {
	const uint8_t *p;
	size_t         left;
	int            err;
};

void rbuf_init(struct rbuf *r, const void *p, size_t n);
int  get_u8(struct rbuf *r, uint8_t *v);
int  get_u16(struct rbuf *r, uint16_t *v);
int  get_u32(struct rbuf *r, uint32_t *v);
int  get_u64(struct rbuf *r, uint64_t *v);
int  get_raw(struct rbuf *r, const uint8_t **p, size_t n);
int  get_bytes(struct rbuf *r, const uint8_t **p, size_t *n);
int  get_str(struct rbuf *r, const char **s);
/* 0 when every read succeeded and the buffer is used up, else -1. */
int  get_end(const struct rbuf *r);

#endif
