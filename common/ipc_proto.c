/* Encoders and decoders of the master/topicd records (ipc_proto.h). */
#include "ipc_proto.h"

#include <stdio.h>
#include <string.h>

#include "topic.h"

/* Every decoder: walk the fields, then insist nothing is left over. */
#define DEC_BEGIN(body, len) \
	struct rbuf rb; \
	memset(r, 0, sizeof(*r)); \
	rbuf_init(&rb, (body), (len))
#define DEC_END() return get_end(&rb)

static bool
str_set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static const char *
str_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/* A message's MQTT 5 side, after the payload when the EXT flag says so. */
static bool
msg_has_ext(size_t props_len, uint64_t expiry_ms, const char *origin)
{
	return props_len > 0 || expiry_ms != 0 || str_set(origin);
}

static void
put_msg_ext(struct wbuf *w, const uint8_t *props, size_t props_len, uint64_t expiry_ms,
    const char *origin)
{
	put_bytes(w, props, props_len);
	put_u64(w, expiry_ms);
	put_str(w, str_or_empty(origin));
}

static void
get_msg_ext(struct rbuf *rb, const uint8_t **props, size_t *props_len, uint64_t *expiry_ms,
    const char **origin)
{
	get_bytes(rb, props, props_len);
	get_u64(rb, expiry_ms);
	get_str(rb, origin);
	if (*props_len == 0)
		*props = NULL;
}

void
enc_config(struct wbuf *w, const struct rec_config *r)
{
	put_u32(w, r->version);
	put_u32(w, r->retry_ms);
	put_u32(w, r->max_attempts);
	put_u32(w, r->checkpoint_kib);
	put_u32(w, r->max_queued);
	put_u64(w, r->max_bytes);
	put_u64(w, r->min_free);
	put_u8(w, r->sync);
	put_u8(w, r->log_level);
	put_u64(w, r->boot_id);
	put_str(w, r->dlq_topic);
	put_u64(w, r->seq_floor);
	put_u8(w, r->log_dests);
	put_str(w, str_or_empty(r->log_file));
}

int
dec_config(const void *body, size_t len, struct rec_config *r)
{
	DEC_BEGIN(body, len);
	get_u32(&rb, &r->version);
	get_u32(&rb, &r->retry_ms);
	get_u32(&rb, &r->max_attempts);
	get_u32(&rb, &r->checkpoint_kib);
	get_u32(&rb, &r->max_queued);
	get_u64(&rb, &r->max_bytes);
	get_u64(&rb, &r->min_free);
	get_u8(&rb, &r->sync);
	get_u8(&rb, &r->log_level);
	get_u64(&rb, &r->boot_id);
	get_str(&rb, &r->dlq_topic);
	get_u64(&rb, &r->seq_floor);
	get_u8(&rb, &r->log_dests);
	get_str(&rb, &r->log_file);
	if (r->sync > 1)
		return -1;
	DEC_END();
}

void
enc_publish(struct wbuf *w, const struct rec_publish *r)
{
	bool ext = msg_has_ext(r->props_len, r->expiry_ms, r->origin);

	put_u64(w, r->req);
	put_str(w, r->owner);
	put_u32(w, r->pubid);
	put_u8(w, r->qos);
	put_u8(w, (uint8_t)((r->flags & ~PF_EXT) | (ext ? PF_EXT : 0)));
	put_u64(w, r->time_ms);
	put_bytes(w, r->payload, r->payload_len);
	if (ext)
		put_msg_ext(w, r->props, r->props_len, r->expiry_ms, r->origin);
}

size_t
enc_publish_size(const struct rec_publish *r)
{
	size_t n = 8 + 4 + strlen(r->owner) + 1 + 4 + 1 + 1 + 8 + 4 + r->payload_len;

	if (msg_has_ext(r->props_len, r->expiry_ms, r->origin))
		n += 4 + r->props_len + 8 + 4 + strlen(str_or_empty(r->origin)) + 1;
	return n;
}

int
dec_publish(const void *body, size_t len, struct rec_publish *r)
{
	DEC_BEGIN(body, len);
	r->origin = "";
	get_u64(&rb, &r->req);
	get_str(&rb, &r->owner);
	get_u32(&rb, &r->pubid);
	get_u8(&rb, &r->qos);
	get_u8(&rb, &r->flags);
	get_u64(&rb, &r->time_ms);
	get_bytes(&rb, &r->payload, &r->payload_len);
	if (r->flags & PF_EXT) {
		get_msg_ext(&rb, &r->props, &r->props_len, &r->expiry_ms, &r->origin);
		if (!msg_has_ext(r->props_len, r->expiry_ms, r->origin))
			return -1;	/* one wire form for each record */
	}
	r->flags &= (uint8_t)~PF_EXT;
	if (r->qos > 2 || (r->flags & ~(PF_RETAIN | PF_JSON | PF_STAGE)) ||
	    (r->qos == 0 && r->req != 0) || (r->qos > 0 && r->req == 0))
		return -1;
	DEC_END();
}

void
enc_release(struct wbuf *w, const struct rec_release *r)
{
	put_u64(w, r->req);
	put_str(w, r->owner);
	put_u32(w, r->pubid);
}

int
dec_release(const void *body, size_t len, struct rec_release *r)
{
	DEC_BEGIN(body, len);
	get_u64(&rb, &r->req);
	get_str(&rb, &r->owner);
	get_u32(&rb, &r->pubid);
	DEC_END();
}

void
enc_release_owner(struct wbuf *w, const struct rec_release_owner *r)
{
	put_u64(w, r->req);
	put_str(w, r->owner);
}

int
dec_release_owner(const void *body, size_t len, struct rec_release_owner *r)
{
	DEC_BEGIN(body, len);
	get_u64(&rb, &r->req);
	get_str(&rb, &r->owner);
	DEC_END();
}

void
enc_attach(struct wbuf *w, const struct rec_attach *r)
{
	bool member = str_set(r->member);

	put_u64(w, r->req);
	put_str(w, r->subkey);
	put_u8(w, r->mode);
	put_u8(w, r->qos);
	put_u8(w, (uint8_t)((r->flags & ~AF_MEMBER) | (member ? AF_MEMBER : 0)));
	put_u16(w, r->window);
	if (member)
		put_str(w, r->member);
}

int
dec_attach(const void *body, size_t len, struct rec_attach *r)
{
	DEC_BEGIN(body, len);
	r->member = "";
	get_u64(&rb, &r->req);
	get_str(&rb, &r->subkey);
	get_u8(&rb, &r->mode);
	get_u8(&rb, &r->qos);
	get_u8(&rb, &r->flags);
	get_u16(&rb, &r->window);
	if (r->flags & AF_MEMBER) {
		get_str(&rb, &r->member);
		if (rb.err || r->member[0] == '\0')
			return -1;
	}
	r->flags &= (uint8_t)~AF_MEMBER;
	if ((r->mode != MODE_JSON && r->mode != MODE_MQTT) || r->qos > 2 ||
	    r->window == 0 || (r->flags & ~(AF_RETAINED | AF_NEW_ONLY | AF_SAME_CONN)) || r->subkey[0] == '\0')
		return -1;
	DEC_END();
}

/* DETACH: the member, if any, is the rest of the body. */
void
enc_detach(struct wbuf *w, const struct rec_detach *r)
{
	put_str(w, r->subkey);
	if (str_set(r->member))
		put_str(w, r->member);
}

int
dec_detach(const void *body, size_t len, struct rec_detach *r)
{
	DEC_BEGIN(body, len);
	r->member = "";
	get_str(&rb, &r->subkey);
	if (!rb.err && rb.left > 0) {
		get_str(&rb, &r->member);
		if (rb.err || r->member[0] == '\0')
			return -1;
	}
	DEC_END();
}

void
enc_unsub(struct wbuf *w, const struct rec_unsub *r)
{
	bool member = str_set(r->member);

	put_u64(w, r->req);
	put_str(w, r->subkey);
	put_u8(w, (uint8_t)((r->flags & ~UF_MEMBER) | (member ? UF_MEMBER : 0)));
	if (member)
		put_str(w, r->member);
}

int
dec_unsub(const void *body, size_t len, struct rec_unsub *r)
{
	DEC_BEGIN(body, len);
	r->member = "";
	get_u64(&rb, &r->req);
	get_str(&rb, &r->subkey);
	get_u8(&rb, &r->flags);
	if (r->flags & UF_MEMBER) {
		get_str(&rb, &r->member);
		if (rb.err || r->member[0] == '\0')
			return -1;
	}
	r->flags &= (uint8_t)~UF_MEMBER;
	if (r->flags & ~UF_FORGET)
		return -1;
	DEC_END();
}

void
enc_ack(struct wbuf *w, const struct rec_ack *r)
{
	put_str(w, r->subkey);
	put_u64(w, r->seq);
	put_u8(w, r->kind);
	put_str(w, str_or_empty(r->share));
}

int
dec_ack(const void *body, size_t len, struct rec_ack *r)
{
	DEC_BEGIN(body, len);
	get_str(&rb, &r->subkey);
	get_u64(&rb, &r->seq);
	get_u8(&rb, &r->kind);
	get_str(&rb, &r->share);
	if (r->kind < ACK_PUBACK || r->kind > ACK_PUBCOMP)
		return -1;
	DEC_END();
}

void
enc_stop(struct wbuf *w, const struct rec_stop *r)
{
	put_u8(w, r->flags);
}

int
dec_stop(const void *body, size_t len, struct rec_stop *r)
{
	DEC_BEGIN(body, len);
	get_u8(&rb, &r->flags);
	if (r->flags & ~STOP_CHECKPOINT)
		return -1;
	DEC_END();
}

void
enc_take(struct wbuf *w, const struct rec_take *r)
{
	put_str(w, r->topic);
}

int
dec_take(const void *body, size_t len, struct rec_take *r)
{
	DEC_BEGIN(body, len);
	get_str(&rb, &r->topic);
	if (!rb.err && topic_check_name(r->topic, strlen(r->topic)) != TOPIC_OK)
		return -1;
	DEC_END();
}

void
enc_spare(struct wbuf *w, const struct rec_spare *r)
{
	put_u8(w, r->flags);
}

int
dec_spare(const void *body, size_t len, struct rec_spare *r)
{
	DEC_BEGIN(body, len);
	get_u8(&rb, &r->flags);
	if (r->flags & ~SPARE_DELETED)
		return -1;
	DEC_END();
}

void
enc_dlq_done(struct wbuf *w, const struct rec_dlq_done *r)
{
	put_u64(w, r->req);
	put_u8(w, r->stored);
}

int
dec_dlq_done(const void *body, size_t len, struct rec_dlq_done *r)
{
	DEC_BEGIN(body, len);
	get_u64(&rb, &r->req);
	get_u8(&rb, &r->stored);
	if (r->stored > 1)
		return -1;
	DEC_END();
}

void
enc_ready(struct wbuf *w, const struct rec_ready *r)
{
	put_u32(w, r->version);
	put_str(w, r->topic);
	put_u64(w, r->next_seq);
}

int
dec_ready(const void *body, size_t len, struct rec_ready *r)
{
	DEC_BEGIN(body, len);
	get_u32(&rb, &r->version);
	get_str(&rb, &r->topic);
	get_u64(&rb, &r->next_seq);
	DEC_END();
}

void
enc_done(struct wbuf *w, const struct rec_done *r)
{
	put_u64(w, r->req);
	put_u32(w, r->status);
	put_u64(w, r->seq);
}

int
dec_done(const void *body, size_t len, struct rec_done *r)
{
	DEC_BEGIN(body, len);
	get_u64(&rb, &r->req);
	get_u32(&rb, &r->status);
	get_u64(&rb, &r->seq);
	if (r->status > ST_FULL)
		return -1;
	DEC_END();
}

void
enc_deadletter(struct wbuf *w, const struct rec_deadletter *r)
{
	put_u64(w, r->req);
	put_str(w, r->reason);
	put_str(w, r->subkey);
	put_u64(w, r->seq);
	put_u8(w, r->flags);
	put_u64(w, r->time_ms);
	put_bytes(w, r->payload, r->payload_len);
}

int
dec_deadletter(const void *body, size_t len, struct rec_deadletter *r)
{
	DEC_BEGIN(body, len);
	get_u64(&rb, &r->req);
	get_str(&rb, &r->reason);
	get_str(&rb, &r->subkey);
	get_u64(&rb, &r->seq);
	get_u8(&rb, &r->flags);
	get_u64(&rb, &r->time_ms);
	get_bytes(&rb, &r->payload, &r->payload_len);
	DEC_END();
}

void
enc_stats(struct wbuf *w, const struct rec_stats *r)
{
	put_u32(w, r->subscribers);
	put_u32(w, r->online);
	put_u64(w, r->first_seq);
	put_u64(w, r->next_seq);
	put_u64(w, r->messages);
	put_u64(w, r->bytes);
	put_u64(w, r->lag);
	put_u64(w, r->oldest_unacked_ms);
	put_u64(w, r->commits);
	put_u64(w, r->committed);
	put_u64(w, r->disk_bytes);
	put_u8(w, r->full);
	put_u64(w, r->expired);
}

int
dec_stats(const void *body, size_t len, struct rec_stats *r)
{
	DEC_BEGIN(body, len);
	get_u32(&rb, &r->subscribers);
	get_u32(&rb, &r->online);
	get_u64(&rb, &r->first_seq);
	get_u64(&rb, &r->next_seq);
	get_u64(&rb, &r->messages);
	get_u64(&rb, &r->bytes);
	get_u64(&rb, &r->lag);
	get_u64(&rb, &r->oldest_unacked_ms);
	get_u64(&rb, &r->commits);
	get_u64(&rb, &r->committed);
	get_u64(&rb, &r->disk_bytes);
	get_u8(&rb, &r->full);
	get_u64(&rb, &r->expired);
	if (r->full > 1)
		return -1;
	DEC_END();
}

void
enc_idle(struct wbuf *w, const struct rec_idle *r)
{
	put_u64(w, r->rx);
	put_u64(w, r->next_seq);
	put_u64(w, r->bytes);
	put_u64(w, r->disk_bytes);
	put_u8(w, r->flags);
	put_u32(w, r->nsubs);
}

void
enc_idle_sub(struct wbuf *w, const char *key, bool backlog)
{
	put_str(w, key);
	put_u8(w, backlog);
}

int
dec_idle(const void *body, size_t len, struct rec_idle *r)
{
	const char *key;
	uint8_t backlog;

	DEC_BEGIN(body, len);
	get_u64(&rb, &r->rx);
	get_u64(&rb, &r->next_seq);
	get_u64(&rb, &r->bytes);
	get_u64(&rb, &r->disk_bytes);
	get_u8(&rb, &r->flags);
	get_u32(&rb, &r->nsubs);
	if (rb.err || (r->flags & ~IDLE_MASK) || r->nsubs > IDLE_MAX_SUBS ||
	    ((r->flags & IDLE_SUBS_UNKNOWN) && r->nsubs != 0) ||
	    ((r->flags & IDLE_EMPTY) && !(r->flags & IDLE_FINAL)))
		return -1;
	r->subs = (const uint8_t *)body + (len - rb.left);
	for (uint32_t i = 0; i < r->nsubs; i++) {
		get_str(&rb, &key);
		get_u8(&rb, &backlog);
		if (rb.err || backlog > 1)
			return -1;
	}
	r->subs_len = (size_t)((const uint8_t *)body + (len - rb.left) - r->subs);
	if (r->flags & IDLE_RETAINED_COPY) {
		struct rec_deliver d;

		get_bytes(&rb, &r->copy, &r->copy_len);
		if (rb.err || (r->flags & (IDLE_FINAL | IDLE_RETAINED)) !=
		    (IDLE_FINAL | IDLE_RETAINED) || dec_idle_copy(r, &d) == -1)
			return -1;
	}
	DEC_END();
}

void
enc_idle_copy(struct wbuf *w, const struct rec_deliver *d)
{
	struct wbuf c;

	wbuf_init(&c);
	enc_deliver(&c, d);
	put_bytes(w, c.data, c.len);
	wbuf_free(&c);
}

int
dec_idle_copy(const struct rec_idle *r, struct rec_deliver *d)
{
	if (!(r->flags & IDLE_RETAINED_COPY) || dec_deliver(r->copy, r->copy_len, d) == -1 ||
	    d->topic[0] != '\0' || d->share[0] != '\0' || !(d->flags & DF_RETAIN) ||
	    (d->flags & DF_DUP))
		return -1;
	return 0;
}

bool
idle_next_sub(const struct rec_idle *r, size_t *pos, const char **key, bool *backlog)
{
	struct rbuf rb;
	uint8_t b = 0;

	if (*pos >= r->subs_len)
		return false;
	rbuf_init(&rb, r->subs + *pos, r->subs_len - *pos);
	get_str(&rb, key);
	get_u8(&rb, &b);
	if (rb.err)
		return false;	/* dec_idle checked the list: not reached */
	*pos = r->subs_len - rb.left;
	*backlog = b != 0;
	return true;
}

const char *
idle_member_key(struct wbuf *w, const char *gkey, const char *member)
{
	char len[24];
	int n = snprintf(len, sizeof(len), "%zu/", strlen(gkey));

	wbuf_reset(w);
	put_raw(w, IDLE_MEMBER_PREFIX, strlen(IDLE_MEMBER_PREFIX));
	put_raw(w, len, (size_t)n);
	put_raw(w, gkey, strlen(gkey));
	put_raw(w, member, strlen(member) + 1);
	return (const char *)w->data;
}

void
enc_full(struct wbuf *w, const struct rec_full *r)
{
	put_str(w, r->reason);
}

int
dec_full(const void *body, size_t len, struct rec_full *r)
{
	DEC_BEGIN(body, len);
	get_str(&rb, &r->reason);
	DEC_END();
}

int
dec_empty(const void *body, size_t len)
{
	(void)body;
	return len == 0 ? 0 : -1;
}

static bool
deliver_ext(const struct rec_deliver *r)
{
	return msg_has_ext(r->props_len, r->expiry_ms, r->origin) || str_set(r->share);
}

void
enc_deliver_head(struct wbuf *w, const struct rec_deliver *r)
{
	put_str(w, r->topic);
	put_u64(w, r->seq);
	put_u8(w, r->qos);
	put_u8(w, (uint8_t)((r->flags & ~DF_EXT) | (deliver_ext(r) ? DF_EXT : 0)));
	put_u32(w, (uint32_t)r->payload_len);
}

void
enc_deliver_tail(struct wbuf *w, const struct rec_deliver *r)
{
	if (!deliver_ext(r))
		return;
	put_msg_ext(w, r->props, r->props_len, r->expiry_ms, r->origin);
	put_str(w, str_or_empty(r->share));
}

void
enc_deliver(struct wbuf *w, const struct rec_deliver *r)
{
	enc_deliver_head(w, r);
	put_raw(w, r->payload, r->payload_len);
	enc_deliver_tail(w, r);
}

int
dec_deliver(const void *body, size_t len, struct rec_deliver *r)
{
	DEC_BEGIN(body, len);
	r->origin = "";
	r->share = "";
	get_str(&rb, &r->topic);
	get_u64(&rb, &r->seq);
	get_u8(&rb, &r->qos);
	get_u8(&rb, &r->flags);
	get_bytes(&rb, &r->payload, &r->payload_len);
	if (r->flags & DF_EXT) {
		get_msg_ext(&rb, &r->props, &r->props_len, &r->expiry_ms, &r->origin);
		get_str(&rb, &r->share);
		if (!msg_has_ext(r->props_len, r->expiry_ms, r->origin) && !str_set(r->share))
			return -1;	/* one wire form for each record */
	}
	r->flags &= (uint8_t)~DF_EXT;
	if (r->qos > 2 || (r->flags & ~(DF_DUP | DF_RETAIN | DF_JSON | DF_PUBRETAIN)))
		return -1;
	DEC_END();
}

/* The length of s if it lies in [lo, hi) (read up to hi only), else 0
 * and s is a constant of the decoder (""). */
static size_t
len_within(const char *s, const uint8_t *lo, const uint8_t *hi, bool *inside)
{
	const uint8_t *p = (const uint8_t *)s;

	*inside = p >= lo && p < hi;
	return *inside ? strnlen(s, (size_t)(hi - p)) : 0;
}

void
rec_deliver_own(struct rec_deliver *r, const void *body, size_t len, struct wbuf *w)
{
	const uint8_t *lo = body, *hi = lo + len;
	bool in_t, in_o, in_s;
	size_t tl = len_within(r->topic, lo, hi, &in_t);
	size_t ol = len_within(r->origin, lo, hi, &in_o);
	size_t sl = len_within(r->share, lo, hi, &in_s);
	size_t at_o, at_s, at_p;

	wbuf_reset(w);
	put_raw(w, r->topic, tl);
	put_u8(w, 0);
	at_o = w->len;
	put_raw(w, r->origin, ol);
	put_u8(w, 0);
	at_s = w->len;
	put_raw(w, r->share, sl);
	put_u8(w, 0);
	at_p = w->len;
	if (r->props_len > 0)
		put_raw(w, r->props, r->props_len);
	r->topic = (const char *)w->data;
	if (in_o)
		r->origin = (const char *)w->data + at_o;
	if (in_s)
		r->share = (const char *)w->data + at_s;
	if (r->props_len > 0)
		r->props = w->data + at_p;
}

void
enc_deliver_rel(struct wbuf *w, const struct rec_deliver_rel *r)
{
	put_str(w, r->topic);
	put_u64(w, r->seq);
	put_str(w, str_or_empty(r->share));
}

int
dec_deliver_rel(const void *body, size_t len, struct rec_deliver_rel *r)
{
	DEC_BEGIN(body, len);
	get_str(&rb, &r->topic);
	get_u64(&rb, &r->seq);
	get_str(&rb, &r->share);
	DEC_END();
}

uint32_t
ipc_version_of(const void *body, size_t len)
{
	struct rbuf rb;
	uint32_t v = 0;

	rbuf_init(&rb, body, len);
	get_u32(&rb, &v);
	return rb.err ? 0 : v;
}

const char *
ipc_type_name(uint16_t type)
{
	static const struct { uint16_t type; const char *name; } names[] = {
		{ IPC_CONFIG, "CONFIG" }, { IPC_PUBLISH, "PUBLISH" },
		{ IPC_RELEASE, "RELEASE" }, { IPC_RELEASE_OWNER, "RELEASE_OWNER" },
		{ IPC_ATTACH, "ATTACH" }, { IPC_DETACH, "DETACH" },
		{ IPC_UNSUB, "UNSUB" }, { IPC_ACK, "ACK" },
		{ IPC_DLQ_DONE, "DLQ_DONE" }, { IPC_READY, "READY" },
		{ IPC_DONE, "DONE" }, { IPC_DEADLETTER, "DEADLETTER" },
		{ IPC_STATS, "STATS" }, { IPC_DELIVER, "DELIVER" },
		{ IPC_RESUME, "RESUME" }, { IPC_FULL, "FULL" }, { IPC_ROOM, "ROOM" },
		{ IPC_STOP, "STOP" }, { IPC_PING, "PING" }, { IPC_IDLE, "IDLE" },
		{ IPC_DELIVER_REL, "DELIVER_REL" }, { IPC_FORGET, "FORGET" },
		{ IPC_KEEP, "KEEP" }, { IPC_TAKE, "TAKE" }, { IPC_SPARE, "SPARE" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == type)
			return names[i].name;
	return "?";
}
