/* The topic's records over the key/value store: the meta record, the
 * message log, staged messages and a cache of recent messages.
 *
 * Keys (one byte of kind, then the identity; integers big-endian so that
 * key order is numeric order):
 *   "I"                        meta: version, topic, next_seq, boot_id, bytes
 *   "M" seq(u64)               a message in the log
 *   "S" owner NUL pubid(u32)   a staged message, waiting for RELEASE
 *   "C" subkey                 a subscriber (subs.c)
 *   "R"                        the retained message (retain.c)
 * A message record is flags(u8) qos(u8) time_ms(u64) payload(bytes), in
 * marshal.h encoding (version 1).  Version 2 has MSG_V2 in the flags byte
 * and the message's MQTT 5 side after the payload: props(bytes)
 * expiry_ms(u64) origin(str).  A message without any is written as
 * version 1, its compact form; records written before version 2 existed
 * read as messages without properties, expiry or origin. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "kvstore.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

#define META_VERSION 1
#define MSG_V2 0x80		/* in a message record's flags byte: version 2 */

/* A store that does not read back stops the topic until an operator
 * looks (the master marks it failed); any other store failure ends this
 * process, and the master starts a new one, which recovers from disk. */
void
store_fail(struct topicd *td, const char *what)
{
	int damaged = errno == EUCLEAN;

	log_errx("topic %s: store %s failed: %s; %s", td->topic, what, strerror(errno),
	    damaged ? "the store is damaged" : "restarting");
	exit(damaged ? TOPICD_EXIT_DAMAGED : TOPICD_EXIT_IO);
}

/* Writes (and with durable, syncs) the pending batch.  0, or -1 when the
 * disk is full: the batch stays pending, nothing is lost, and the caller
 * holds every answer until a later call succeeds.  Other failures end
 * the process. */
int
store_commit(struct topicd *td, bool durable)
{
	int rc = durable ? kv_commit(td->kv) : kv_flush(td->kv);

	if (rc == 0)
		return 0;
	if (errno == ENOSPC || errno == EDQUOT)
		return -1;
	store_fail(td, durable ? "commit" : "write");
}

/* A large batch in the making is written as it grows (TD_WRITE_AHEAD
 * bytes at a time): the disk writes it while the rest arrives (when it
 * is to be synced), and the bytes are copied while in the CPU's cache.
 * A full disk leaves it pending for the batch's end to deal with. */
void
store_write_ahead(struct topicd *td)
{
	if (kv_write_ahead(td->kv, TD_WRITE_AHEAD, td->sync) == 0)
		return;
	if (errno != ENOSPC && errno != EDQUOT)
		store_fail(td, "write");
}

static void
put_be(struct wbuf *w, uint64_t v, int bytes)
{
	uint8_t b[8];

	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	put_raw(w, b, (size_t)bytes);
}

static uint64_t
get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static void
key_msg(struct wbuf *k, uint64_t seq)
{
	wbuf_reset(k);
	put_u8(k, 'M');
	put_be(k, seq, 8);
}

static void
key_stage(struct wbuf *k, const char *owner, uint32_t pubid)
{
	wbuf_reset(k);
	put_u8(k, 'S');
	put_raw(k, owner, strlen(owner) + 1);
	put_be(k, pubid, 4);
}

static bool
msg_v2(const struct msg *m)
{
	return m->props_len > 0 || m->expiry_ms != 0 || (m->origin != NULL && m->origin[0]);
}

/* A message record is its head, the payload, and its tail. */
static void
msg_encode_head(struct wbuf *w, const struct msg *m)
{
	put_u8(w, (uint8_t)((m->flags & ~MSG_V2) | (msg_v2(m) ? MSG_V2 : 0)));
	put_u8(w, m->qos);
	put_u64(w, m->time_ms);
	put_u32(w, (uint32_t)m->len);
}

static void
msg_encode_tail(struct wbuf *w, const struct msg *m)
{
	if (!msg_v2(m))
		return;
	put_bytes(w, m->props, m->props_len);
	put_u64(w, m->expiry_ms);
	put_str(w, m->origin != NULL ? m->origin : "");
}

void
msg_encode(struct wbuf *w, const struct msg *m)
{
	msg_encode_head(w, m);
	put_raw(w, m->payload, m->len);
	msg_encode_tail(w, m);
}

/* Puts message m under key: its head and tail are framed in td->wb, its
 * payload goes into the store's batch from where it is. */
static void
msg_put(struct topicd *td, const void *key, size_t klen, const struct msg *m)
{
	struct iovec iov[3];
	size_t head;

	wbuf_reset(&td->wb);
	msg_encode_head(&td->wb, m);
	head = td->wb.len;
	msg_encode_tail(&td->wb, m);
	wbuf_around(&td->wb, head, m->payload, m->len, iov);
	if (kv_putv(td->kv, key, klen, iov, 3) == -1)
		store_fail(td, "put");
}

/* Fills m from a record of either version; m->payload, props and origin
 * point into p. */
int
msg_decode(const void *p, size_t n, struct msg *m)
{
	struct rbuf r;

	rbuf_init(&r, p, n);
	m->props = NULL;
	m->props_len = 0;
	m->expiry_ms = 0;
	m->origin = "";
	get_u8(&r, &m->flags);
	get_u8(&r, &m->qos);
	get_u64(&r, &m->time_ms);
	get_bytes(&r, &m->payload, &m->len);
	if (m->flags & MSG_V2) {
		get_bytes(&r, &m->props, &m->props_len);
		get_u64(&r, &m->expiry_ms);
		get_str(&r, &m->origin);
		if (m->props_len == 0)
			m->props = NULL;
	}
	m->flags &= (uint8_t)~MSG_V2;
	return get_end(&r);
}

/* dst becomes a copy of src that owns its bytes (one allocation). */
void
msg_copy(struct msg *dst, const struct msg *src)
{
	size_t olen = src->origin != NULL ? strlen(src->origin) + 1 : 1;
	uint8_t *b = xmalloc(src->len + src->props_len + olen);

	*dst = *src;
	if (src->len > 0)
		memcpy(b, src->payload, src->len);
	if (src->props_len > 0)
		memcpy(b + src->len, src->props, src->props_len);
	memcpy(b + src->len + src->props_len, src->origin != NULL ? src->origin : "", olen);
	dst->buf = b;
	dst->payload = b;
	dst->props = src->props_len > 0 ? b + src->len : NULL;
	dst->origin = (const char *)b + src->len + src->props_len;
}

/* Has the message expired?  The clock is read only for a message with an
 * expiry: a read of it cost 7% of a topicd's time in a QoS 0 stream. */
bool
msg_expired(const struct msg *m)
{
	return m->expiry_ms != 0 && (int64_t)m->expiry_ms <= wall_ms();
}

void
msg_release(struct msg *m)
{
	free(m->buf);
	m->buf = NULL;
	m->payload = NULL;
	m->props = NULL;
	m->origin = NULL;
}

/* The value of a key (malloc'd), or 0 when absent; an I/O error is
 * fatal, like every store failure. */
int
store_get(struct topicd *td, const void *key, size_t klen, void **val, size_t *vlen)
{
	int rc = kv_get(td->kv, key, klen, val, vlen);

	if (rc == -1)
		store_fail(td, "read");
	return rc;
}

void
store_put(struct topicd *td, const void *key, size_t klen, const void *val, size_t vlen)
{
	if (kv_put(td->kv, key, klen, val, vlen) == -1)
		store_fail(td, "put");
}

void
store_del(struct topicd *td, const void *key, size_t klen)
{
	if (kv_del(td->kv, key, klen) == -1)
		store_fail(td, "delete");
}

void
store_save_meta(struct topicd *td)
{
	if (!td->meta_dirty)
		return;
	wbuf_reset(&td->kb);
	put_u8(&td->kb, 'I');
	wbuf_reset(&td->wb);
	put_u8(&td->wb, META_VERSION);
	put_str(&td->wb, td->topic);
	put_u64(&td->wb, td->next_seq);
	put_u64(&td->wb, td->boot_id);
	put_u64(&td->wb, td->bytes);
	store_put(td, td->kb.data, td->kb.len, td->wb.data, td->wb.len);
	td->meta_dirty = false;
}

/* Reads the meta record, or starts a new store. */
static int
meta_load(struct topicd *td, char **err)
{
	void *val;
	size_t vlen;
	struct rbuf r;
	const char *topic;
	uint8_t version;

	wbuf_reset(&td->kb);
	put_u8(&td->kb, 'I');
	if (store_get(td, td->kb.data, td->kb.len, &val, &vlen) == 0) {
		/* A new store: past the numbers of the topics the master
		 * forgot, this one's earlier life among them, so that a
		 * consumer never sees a number again. */
		td->next_seq = td->seq_floor > 1 ? td->seq_floor : 1;
		td->meta_dirty = true;
		return 0;
	}
	rbuf_init(&r, val, vlen);
	get_u8(&r, &version);
	get_str(&r, &topic);
	get_u64(&r, &td->next_seq);
	get_u64(&r, &td->boot_id);
	get_u64(&r, &td->bytes);
	if (get_end(&r) == -1 || version != META_VERSION) {
		xasprintf(err, "%s/topics/%s.db: meta record of an unknown version (%u) or "
		    "unreadable", td->datadir, td->stem, version);
		free(val);
		errno = EUCLEAN;
		return -1;
	}
	if (strcmp(topic, td->topic) != 0) {
		xasprintf(err, "store %s belongs to topic \"%s\" (a stem collision)",
		    td->stem, topic);
		free(val);
		errno = EUCLEAN;
		return -1;
	}
	free(val);
	if (td->next_seq == 0)
		td->next_seq = 1;
	return 0;
}

struct log_range {
	struct kv *kv;
	uint64_t n, first, last, bytes;
};

static int
scan_msg(const void *key, size_t klen, void *arg)
{
	struct log_range *lr = arg;
	uint64_t seq;

	if (klen != 9) {
		log_warnx("ignoring a malformed message key (%zu bytes)", klen);
		return 0;
	}
	seq = get_be((const uint8_t *)key + 1, 8);
	lr->bytes += (uint64_t)kv_size(lr->kv, key, klen);
	if (lr->n++ == 0)
		lr->first = seq;
	lr->last = seq;
	return 0;
}

/* First and next sequence numbers from the keys: the next one is past
 * both the recorded one and the last message, so numbers never repeat.
 * The bytes kept are those of the records as stored (the meta record's
 * figure is only written, for a release that reads it). */
static void
log_load(struct topicd *td)
{
	struct log_range lr = { td->kv, 0, 0, 0, 0 };

	kv_scan(td->kv, "M", 1, scan_msg, &lr);
	td->messages = lr.n;
	if (td->bytes != lr.bytes) {
		td->bytes = lr.bytes;
		td->meta_dirty = true;
	}
	if (lr.n > 0 && lr.last >= td->next_seq) {
		td->next_seq = lr.last + 1;
		td->meta_dirty = true;
	}
	td->first_seq = lr.n > 0 ? lr.first : td->next_seq;
}

int
store_open(struct topicd *td, char **err)
{
	char *dir;
	int e;

	xasprintf(&dir, "%s/topics", td->datadir);
	td->kv = kv_open(dir, td->stem, td->checkpoint_bytes, err);
	free(dir);
	if (td->kv == NULL)
		return -1;
	if (meta_load(td, err) == -1)
		goto fail;
	log_load(td);
	if (subs_load(td) == -1) {
		xasprintf(err, "%s/topics/%s: a subscriber record of an unknown version or "
		    "unreadable", td->datadir, td->stem);
		goto fail;
	}
	retain_load(td);
	return 0;
fail:
	/* Not readable as ours: close without writing anything. */
	e = errno;
	subs_free(td);
	kv_abandon(td->kv);
	td->kv = NULL;
	errno = e;
	return -1;
}

void
store_close(struct topicd *td)
{
	cache_clear(td);
	if (td->kv != NULL && td->forget) {
		if (kv_destroy(td->kv) == 0) {
			log_info("topic %s: store deleted, the topic forgotten", td->topic);
			if (td->exit_code == 0)
				td->exit_code = TOPICD_EXIT_DELETED;
		} else
			td->exit_code = TOPICD_EXIT_IO;
		td->kv = NULL;
		return;
	}
	/* Going cold, the journal stays: the topic may start again soon. */
	if (td->kv != NULL && (td->went_idle ? kv_close_lazy(td->kv) : kv_close(td->kv)) == -1)
		td->exit_code = 1;
	td->kv = NULL;
}

/* Reads message seq from the store: 1, or 0 when absent or unreadable. */
static int
msg_read(struct topicd *td, uint64_t seq, struct msg *m)
{
	void *val;
	size_t vlen;

	key_msg(&td->kb, seq);
	if (store_get(td, td->kb.data, td->kb.len, &val, &vlen) == 0)
		return 0;
	if (msg_decode(val, vlen, m) == -1) {
		free(val);
		errno = EUCLEAN;
		store_fail(td, "read of a message record");
	}
	m->seq = seq;
	m->buf = val;
	return 1;
}

int
log_get(struct topicd *td, uint64_t seq, struct msg *m)
{
	memset(m, 0, sizeof(*m));
	if (cache_get(td, seq, m))
		return 1;
	if (!msg_read(td, seq, m))
		return 0;
	cache_adopt(td, m);
	return 1;
}

/* Appends message in to the log; its sequence number.  in->buf (or NULL)
 * is memory that in's bytes lie in, taken by the log: the cache keeps it
 * instead of a copy, or it is freed. */
uint64_t
log_append(struct topicd *td, struct msg *in)
{
	struct msg m = *in;

	in->buf = NULL;
	m.seq = td->next_seq++;
	m.flags &= PF_RETAIN | PF_JSON;
	key_msg(&td->kb, m.seq);
	msg_put(td, td->kb.data, td->kb.len, &m);
	if (td->messages++ == 0)
		td->first_seq = m.seq;
	td->bytes += td->wb.len + m.len;
	td->meta_dirty = true;
	td->stats_dirty = true;
	if (m.buf != NULL)
		cache_adopt(td, &m);
	else
		cache_put(td, &m);
	if (m.flags & PF_RETAIN)
		retain_update(td, &m);
	free(m.buf);			/* not kept by the cache */
	return m.seq;
}

/* Deletes the messages that every subscriber has completed (all of them
 * when there is none: a new subscriber starts at next_seq). */
void
log_trim(struct topicd *td)
{
	uint64_t upto = subs_min_cursor(td);

	while (td->first_seq < upto && td->first_seq < td->next_seq) {
		uint64_t seq = td->first_seq++;
		size_t len;
		ssize_t size;

		(void)cache_forget(td, seq, &len);
		key_msg(&td->kb, seq);
		if ((size = kv_size(td->kv, td->kb.data, td->kb.len)) >= 0) {
			td->bytes -= (uint64_t)size < td->bytes ? (uint64_t)size : td->bytes;
			td->messages -= td->messages > 0;
			store_del(td, td->kb.data, td->kb.len);
		}
		td->meta_dirty = true;
		td->stats_dirty = true;
	}
	if (td->messages == 0) {
		td->first_seq = td->next_seq;
		td->bytes = 0;
	}
	/* What every subscriber has read is not read again. */
	if (td->messages == 0) {
		kv_forget_before(td->kv, NULL, 0);
	} else {
		key_msg(&td->kb, td->first_seq);
		kv_forget_before(td->kv, td->kb.data, td->kb.len);
	}
}

bool
stage_exists(struct topicd *td, const char *owner, uint32_t pubid)
{
	key_stage(&td->kb, owner, pubid);
	return kv_exists(td->kv, td->kb.data, td->kb.len) > 0;
}

/* Stages a message unless (owner, pubid) is staged already: 0 stored,
 * 1 already there. */
int
stage_put(struct topicd *td, const char *owner, uint32_t pubid, const struct msg *m)
{
	if (stage_exists(td, owner, pubid))
		return 1;
	msg_put(td, td->kb.data, td->kb.len, m);
	return 0;
}

/* Moves the staged message under key k into the log; its sequence number,
 * or 0 if there is none. */
static uint64_t
release_key(struct topicd *td, const void *key, size_t klen)
{
	struct msg m;
	void *val;
	size_t vlen;
	uint64_t seq = 0;

	if (store_get(td, key, klen, &val, &vlen) == 0)
		return 0;
	memset(&m, 0, sizeof(m));
	if (msg_decode(val, vlen, &m) == -1) {
		log_warnx("topic %s: dropping an unreadable staged message", td->topic);
		free(val);
	} else {
		m.buf = val;			/* the log's now */
		seq = log_append(td, &m);
	}
	store_del(td, key, klen);
	return seq;
}

uint64_t
stage_release(struct topicd *td, const char *owner, uint32_t pubid)
{
	struct wbuf k;
	uint64_t seq;

	/* Not td->kb: appending to the log uses it. */
	wbuf_init(&k);
	key_stage(&k, owner, pubid);
	seq = release_key(td, k.data, k.len);
	wbuf_free(&k);
	return seq;
}

/* Releases every staged message whose key starts with prefix ("S" owner
 * NUL for one owner), in key order, i.e. by owner and then pubid. */
struct each {
	struct topicd	*td;
	int		(*fn)(struct topicd *, const uint8_t *, size_t);
	unsigned	 n;		/* calls that returned non-zero */
};

static int
release_one(const void *key, size_t klen, void *arg)
{
	struct each *e = arg;

	if (release_key(e->td, key, klen) != 0)
		e->n++;
	return 0;
}

unsigned
stage_release_prefix(struct topicd *td, const char *prefix, size_t plen)
{
	struct each e = { td, NULL, 0 };

	(void)kv_each(td->kv, prefix, plen, release_one, &e);
	return e.n;
}

static int
found(const void *key, size_t klen, void *arg)
{
	(void)key;
	(void)klen;
	(void)arg;
	return 1;
}

bool
stage_any(struct topicd *td, const char *prefix, size_t plen)
{
	return kv_scan(td->kv, prefix, plen, found, NULL) == 1;
}

/* Calls fn for every key under prefix (collected first, so that fn may
 * change the store). */
static int
call_one(const void *key, size_t klen, void *arg)
{
	struct each *e = arg;

	return e->fn(e->td, key, klen);
}

int
store_each(struct topicd *td, const char *prefix, size_t plen,
    int (*fn)(struct topicd *, const uint8_t *, size_t))
{
	struct each e = { td, fn, 0 };

	return kv_each(td->kv, prefix, plen, call_one, &e);
}
