/* Typed marshalling with an end check. */
#include "marshal.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void
wbuf_init(struct wbuf *w)
{
	w->data = NULL;
	w->len = w->cap = 0;
}

void
wbuf_free(struct wbuf *w)
{
	free(w->data);
	wbuf_init(w);
}

/* A buffer keeps its room across resets, up to this: one message of
 * hundreds of megabytes does not stay in a long-lived buffer for ever. */
#define WBUF_KEEP_MAX	(16u << 20)

void
wbuf_reset(struct wbuf *w)
{
	if (w->cap > WBUF_KEEP_MAX)
		wbuf_free(w);
	w->len = 0;
}

void
wbuf_reserve(struct wbuf *w, size_t n)
{
	if (w->cap - w->len >= n)
		return;
	w->data = xrealloc(w->data, w->len + n);
	w->cap = w->len + n;
}

void
put_raw(struct wbuf *w, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (w->cap - w->len < n) {
		size_t cap = w->cap ? w->cap : 256;

		while (cap - w->len < n)
			cap *= 2;
		w->data = xrealloc(w->data, cap);
		w->cap = cap;
	}
	memcpy(w->data + w->len, p, n);
	w->len += n;
}

void
put_u8(struct wbuf *w, uint8_t v)
{
	put_raw(w, &v, 1);
}

void
put_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { v & 0xff, v >> 8 };

	put_raw(w, b, sizeof(b));
}

void
put_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_raw(w, b, sizeof(b));
}

void
put_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put_raw(w, b, sizeof(b));
}

void
wbuf_around(const struct wbuf *w, size_t head, const void *payload, size_t len,
    struct iovec iov[3])
{
	iov[0] = (struct iovec){ w->data, head };
	iov[1] = (struct iovec){ (void *)payload, len };
	iov[2] = (struct iovec){ w->data + head, w->len - head };
}

void
put_bytes(struct wbuf *w, const void *p, size_t n)
{
	put_u32(w, (uint32_t)n);
	put_raw(w, p, n);
}

void
put_str(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);

	put_u32(w, (uint32_t)n);
	put_raw(w, s, n + 1);
}

void
rbuf_init(struct rbuf *r, const void *p, size_t n)
{
	r->p = p;
	r->left = n;
	r->err = 0;
}

int
get_raw(struct rbuf *r, const uint8_t **p, size_t n)
{
	if (r->err || r->left < n) {
		r->err = 1;
		return -1;
	}
	*p = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static int
get_le(struct rbuf *r, uint64_t *v, size_t n)
{
	const uint8_t *p;

	*v = 0;
	if (get_raw(r, &p, n) == -1)
		return -1;
	for (size_t i = 0; i < n; i++)
		*v |= (uint64_t)p[i] << (8 * i);
	return 0;
}

int
get_u8(struct rbuf *r, uint8_t *v)
{
	uint64_t x;
	int rc = get_le(r, &x, 1);

	*v = (uint8_t)x;
	return rc;
}

int
get_u16(struct rbuf *r, uint16_t *v)
{
	uint64_t x;
	int rc = get_le(r, &x, 2);

	*v = (uint16_t)x;
	return rc;
}

int
get_u32(struct rbuf *r, uint32_t *v)
{
	uint64_t x;
	int rc = get_le(r, &x, 4);

	*v = (uint32_t)x;
	return rc;
}

int
get_u64(struct rbuf *r, uint64_t *v)
{
	return get_le(r, v, 8);
}

int
get_bytes(struct rbuf *r, const uint8_t **p, size_t *n)
{
	uint32_t len;

	*p = NULL;
	*n = 0;
	if (get_u32(r, &len) == -1 || get_raw(r, p, len) == -1)
		return -1;
	*n = len;
	return 0;
}

int
get_str(struct rbuf *r, const char **s)
{
	const uint8_t *p;
	uint32_t len;

	*s = "";
	if (get_u32(r, &len) == -1 || len == UINT32_MAX || get_raw(r, &p, (size_t)len + 1) == -1 ||
	    p[len] != '\0' || memchr(p, '\0', len) != NULL) {
		r->err = 1;
		return -1;
	}
	*s = (const char *)p;
	return 0;
}

int
get_end(const struct rbuf *r)
{
	return (r->err || r->left != 0) ? -1 : 0;
}
