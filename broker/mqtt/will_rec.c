/* A will's record: version, waiting since, stays, sent (0, 1, or 2 for
 * staged), the session's incarnation, QoS, retain, Will Delay Interval,
 * Message Expiry Interval (a flag and seconds), topic, payload,
 * properties, origin, client id, and the user and listener block (each a
 * flag and a string). */
#include <string.h>

#include "mqtt/will_rec.h"

static void
put_opt_str(struct wbuf *w, const char *s)
{
	put_u8(w, s != NULL);
	if (s != NULL)
		put_str(w, s);
}

static int
get_flag(struct rbuf *r, bool *v)
{
	uint8_t b = 0;

	if (get_u8(r, &b) == -1)
		return -1;
	if (b > 1) {
		r->err = 1;
		return -1;
	}
	*v = b != 0;
	return 0;
}

static int
get_opt_str(struct rbuf *r, const char **s)
{
	bool has = false;

	*s = NULL;
	if (get_flag(r, &has) == -1)
		return -1;
	return has ? get_str(r, s) : 0;
}

void
will_rec_encode(struct wbuf *w, const struct will_rec *r)
{
	put_u8(w, WILL_RECORD_VERSION);
	put_u64(w, r->since);
	put_u8(w, r->stays);
	put_u8(w, r->staged ? 2 : r->sent);
	put_u64(w, r->incarnation);
	put_u8(w, r->qos);
	put_u8(w, r->retain);
	put_u32(w, r->delay_s);
	put_u8(w, r->has_expiry);
	put_u32(w, r->expiry_s);
	put_str(w, r->topic);
	put_bytes(w, r->payload, r->len);
	put_bytes(w, r->props, r->props_len);
	put_str(w, r->origin);
	put_str(w, r->client_id);
	put_opt_str(w, r->user);
	put_opt_str(w, r->listener);
}

int
will_rec_decode(const void *p, size_t n, struct will_rec *r)
{
	struct rbuf rb;
	uint8_t version = 0, sent = 0;

	memset(r, 0, sizeof(*r));
	rbuf_init(&rb, p, n);
	if (get_u8(&rb, &version) == -1 || version != WILL_RECORD_VERSION)
		return -1;
	get_u64(&rb, &r->since);
	get_flag(&rb, &r->stays);
	get_u8(&rb, &sent);
	get_u64(&rb, &r->incarnation);
	get_u8(&rb, &r->qos);
	get_flag(&rb, &r->retain);
	get_u32(&rb, &r->delay_s);
	get_flag(&rb, &r->has_expiry);
	get_u32(&rb, &r->expiry_s);
	get_str(&rb, &r->topic);
	get_bytes(&rb, &r->payload, &r->len);
	get_bytes(&rb, &r->props, &r->props_len);
	get_str(&rb, &r->origin);
	get_str(&rb, &r->client_id);
	get_opt_str(&rb, &r->user);
	get_opt_str(&rb, &r->listener);
	if (get_end(&rb) == -1 || r->qos > 2 || sent > 2 || (sent == 2 && r->qos != 2))
		return -1;
	r->sent = sent > 0;
	r->staged = sent == 2;
	if (r->props_len == 0)
		r->props = NULL;
	return 0;
}
