/* Recovery: the journal's segments replayed in order (the format is in
 * kvjournal.c), and a format-1 journal read for its conversion
 * (kvlegacy.c).  Every segment but the last must end with its end
 * record (or be all "KVJ1" batches up to the end of its file); the last
 * ends at its first batch that does not check, and what follows is cut.
 * Anything else that does not read back is an error naming the file and
 * the offset (EUCLEAN), and nothing is changed. */
#include "kvstore_int.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libdeflate.h>

#include "log.h"
#include "xmalloc.h"

/* Checks (apply 0) or applies (apply 1) the records of a batch whose body
 * starts at offset off of segment seg; *end: it is an end record. */
static int
batch_parse(struct kv *kv, const uint8_t *body, size_t len, uint32_t seg, uint64_t off,
    int apply, bool *end)
{
	struct rbuf r;
	const uint8_t *k, *v;
	size_t klen, vlen;
	uint8_t op;

	*end = false;
	rbuf_init(&r, body, len);
	if (len == 1 && body[0] == OP_END) {
		*end = true;
		return 0;
	}
	while (r.left > 0) {
		if (get_u8(&r, &op) == -1 || get_bytes(&r, &k, &klen) == -1 ||
		    klen == 0 || klen > KV_KEY_MAX)
			return -1;
		if (op == OP_PUT) {
			if (get_bytes(&r, &v, &vlen) == -1 || vlen > KV_VAL_MAX)
				return -1;
			if (apply)
				kvi_set(kv, k, klen, v, vlen, KV_IN_SEG, seg,
				    off + (uint64_t)(v - body));
		} else if (op == OP_DEL) {
			if (apply)
				kvi_del(kv, k, klen);
		} else
			return -1;
		if (apply)
			kv->st.recovered++;
	}
	return get_end(&r);
}

/* B_OK: a whole batch whose CRC matches.  B_TORN: what a write cut short
 * leaves (a prefix, zeros).  B_OTHER: a batch of another segment (an
 * earlier use of the file).  B_BAD: anything else.  B_ERROR: I/O. */
enum batch_state { B_OK, B_TORN, B_OTHER, B_BAD, B_ERROR };

struct batch {
	uint8_t		*buf;		/* the body */
	size_t		 cap;
	uint32_t	 len;
	size_t		 hdr;		/* KV_HDR_LEN, or KV_HDR1_LEN ("KVJ1") */
	bool		 reused;	/* KV_LEN_REUSED, read even if it does not check */
	uint64_t	 ours;		/* the length its header gives, if of this segment */
};

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* Whether the bytes from off to the end of the file are zeros (a crash
 * that extended the file without its data). */
static enum batch_state
zero_tail(int fd, uint64_t off, uint64_t size)
{
	uint8_t buf[4096];

	while (off < size) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		ssize_t r = kvj_pread(fd, buf, n, off);

		if (r != (ssize_t)n)
			return B_ERROR;
		if (!all_zero(buf, n))
			return B_BAD;
		off += n;
	}
	return B_TORN;
}

static bool
magic_prefix(const uint8_t *p, size_t n)
{
	static const uint8_t m2[4] = { 0x4b, 0x56, 0x4a, 0x32 }, m1[4] = { 0x4b, 0x56, 0x4a, 0x31 };

	return memcmp(p, m2, n) == 0 || memcmp(p, m1, n) == 0;
}

/* A header at off whose length passes the end of the file: a torn write
 * (its batch's prefix follows, the last thing written), unless a whole
 * batch of the same segment lies after it, which no torn write leaves:
 * then the length is damaged, and what follows was durable. */
static enum batch_state
torn_or_bad(int fd, uint32_t seg, uint64_t off, uint64_t size)
{
	static const uint8_t m2[4] = { 0x4b, 0x56, 0x4a, 0x32 };
	uint8_t buf[65536], hdr[KV_HDR_LEN], *body;
	uint64_t at = off + 4;

	while (at + KV_HDR_LEN <= size) {
		size_t n = size - at < sizeof(buf) ? (size_t)(size - at) : sizeof(buf);
		const uint8_t *p;
		ssize_t r = kvj_pread(fd, buf, n, at);

		if (r != (ssize_t)n)
			return B_ERROR;
		for (p = buf; (p = memmem(p, n - (size_t)(p - buf), m2, sizeof(m2))) != NULL;
		    p++) {
			uint64_t h = at + (uint64_t)(p - buf);
			uint32_t len, hseg, crc;
			struct rbuf rb;
			bool ok;

			if (h + KV_HDR_LEN > size || kvj_pread(fd, hdr, sizeof(hdr), h) !=
			    (ssize_t)sizeof(hdr))
				continue;
			rbuf_init(&rb, hdr + 4, KV_HDR_LEN - 4);
			get_u32(&rb, &len);
			get_u32(&rb, &hseg);
			get_u32(&rb, &crc);
			len &= ~KV_LEN_REUSED;
			if (hseg != seg || len == 0 || len > KV_BATCH_MAX ||
			    len > size - h - KV_HDR_LEN)
				continue;
			body = xmalloc(len);
			ok = kvj_pread(fd, body, len, h + KV_HDR_LEN) == (ssize_t)len &&
			    kvj_batch_crc(seg, body, len) == crc;
			free(body);
			if (ok)
				return B_BAD;
		}
		if (at + n >= size)
			break;
		at += n - 3;		/* a magic across the two reads */
	}
	return B_TORN;
}

/* Reads the batch at off of segment seg (0: a format 1 journal, which has
 * no segments) into b. */
static enum batch_state
batch_read(int fd, uint32_t seg, uint64_t off, uint64_t size, struct batch *b)
{
	uint8_t hdr[KV_HDR_LEN];
	uint64_t left = size - off;
	uint32_t magic, crc, hseg = 0;
	struct rbuf r;
	size_t n = left < KV_HDR_LEN ? (size_t)left : KV_HDR_LEN;

	b->ours = 0;
	if (kvj_pread(fd, hdr, n, off) != (ssize_t)n)
		return B_ERROR;
	if (n < 4)
		return magic_prefix(hdr, n) ? B_TORN : zero_tail(fd, off, size);
	rbuf_init(&r, hdr, n);
	get_u32(&r, &magic);
	if (magic == KV_MAGIC1)
		b->hdr = KV_HDR1_LEN;
	else if (magic == KV_MAGIC && seg != 0)
		b->hdr = KV_HDR_LEN;
	else
		return zero_tail(fd, off, size);
	if (n < b->hdr)
		return B_TORN;
	get_u32(&r, &b->len);
	if (b->hdr == KV_HDR_LEN)
		get_u32(&r, &hseg);
	get_u32(&r, &crc);
	if (b->hdr == KV_HDR_LEN && (b->len & KV_LEN_REUSED)) {
		if (hseg == seg)
			b->reused = true;
		b->len &= ~KV_LEN_REUSED;
	}
	if (b->hdr == KV_HDR_LEN && hseg == seg)
		b->ours = b->hdr + (uint64_t)b->len;
	/* A header cut short after its magic: the rest is zeros. */
	if (b->len == 0)
		return zero_tail(fd, off + 4, size);
	if (b->len > KV_BATCH_MAX)
		return B_BAD;
	if (b->len > left - b->hdr)
		return b->hdr == KV_HDR_LEN && hseg == seg ? torn_or_bad(fd, seg, off, size) :
		    B_TORN;
	if (b->len > b->cap) {
		b->buf = xrealloc(b->buf, b->len);
		b->cap = b->len;
	}
	if (kvj_pread(fd, b->buf, b->len, off + b->hdr) != (ssize_t)b->len)
		return B_ERROR;
	if (b->hdr == KV_HDR1_LEN)
		hseg = seg;
	if ((b->hdr == KV_HDR_LEN ? kvj_batch_crc(hseg, b->buf, b->len) :
	    libdeflate_crc32(0, b->buf, b->len)) == crc)
		return hseg == seg ? B_OK : B_OTHER;
	/* A batch of another segment is one that checks with its number (an
	 * earlier use of the file): a header whose number does not is
	 * damaged or torn like any other, not the end of the segment.
	 * The last batch, its data not all written: torn; so is one followed
	 * by zeros only (a crash that extended the file beyond it, its data
	 * and that of the batches after it not all written).  Before other
	 * bytes, a batch that does not check is damage (but see
	 * replay_segment). */
	if (off + b->hdr + b->len == size)
		return B_TORN;
	return zero_tail(fd, off + b->hdr + b->len, size);
}

/* What follows the valid batches of the last segment: cut off.  In a
 * file used before, only a batch of this segment's there was torn (the
 * length its header gives, at most); the bytes after it are the earlier
 * use's, no loss. */
static int
cut_segment(struct kv *kv, struct kv_seg *s, uint64_t size, enum batch_state st,
    const struct batch *b)
{
	uint64_t after = size - s->size, torn = after;

	if (b->reused || st == B_OTHER)
		torn = st == B_OTHER ? 0 : b->ours < after ? b->ours : after;
	if (torn == 0)
		log_info("store %s: segment %" PRIu32 " ends at offset %" PRIu64 "; the %"
		    PRIu64 " bytes after it are of an earlier use of the file", kv->label,
		    s->num, s->size, after);
	else if (torn < after)
		log_warnx("store %s: cutting %" PRIu64 " torn bytes from the end of segment %"
		    PRIu32 " at offset %" PRIu64 ", and the %" PRIu64 " bytes after them of "
		    "an earlier use of the file", kv->label, torn, s->num, s->size,
		    after - torn);
	else
		log_warnx("store %s: cutting %" PRIu64 " torn bytes from the end of segment %"
		    PRIu32 " at offset %" PRIu64, kv->label, torn, s->num, s->size);
	if (kvj_truncate(s->fd, s->size) == -1 || kvj_sync_fd(s->fd, 1) == -1)
		return -1;
	kv->st.truncated += torn;
	return 0;
}

/* Replays one segment; last: it may end in a torn write, which is cut.
 * Any other segment ends with an end record, or is all "KVJ1" batches. */
static int
replay_segment(struct kv *kv, struct kv_seg *s, bool last, char **err)
{
	struct stat sb;
	struct batch b = { 0 };
	uint64_t off = 0, size, before = kv->st.recovered;
	enum batch_state st = B_OK;
	bool v1 = false, v2 = false, end = false;

	/* b.reused: any header of this segment's says so */

	if (fstat(s->fd, &sb) == -1)
		goto io;
	size = (uint64_t)sb.st_size;
	while (off < size && (st = batch_read(s->fd, s->num, off, size, &b)) == B_OK) {
		/* "KVJ1" after "KVJ2" is no batch of this segment's. */
		if ((b.hdr == KV_HDR1_LEN && v2) ||
		    batch_parse(kv, b.buf, b.len, s->num, off + b.hdr, 0, &end) == -1) {
			st = B_BAD;
			break;
		}
		(void)batch_parse(kv, b.buf, b.len, s->num, off + b.hdr, 1, &end);
		v2 = v2 || b.hdr == KV_HDR_LEN;
		v1 = v1 || b.hdr == KV_HDR1_LEN;
		off += b.hdr + b.len;
	}
	free(b.buf);
	s->size = off;
	s->records = kv->st.recovered - before;
	if (st == B_ERROR)
		goto io;
	s->reused = b.reused;
	s->reusable = !v1;
	if (off == size && !last && v2 && !end) {
		/* Every segment of this format is ended, synced, before the
		 * next is made: one that stops short of its end record lost
		 * its tail, even at a batch's end. */
		char *path = kvs_path(kv, s->num);

		xasprintf(err, "%s: no end record at offset %" PRIu64 ", where the file "
		    "ends, before the next segment; the store is left as it is", path, off);
		free(path);
		errno = EUCLEAN;
		return -1;
	}
	if (off == size || (!last && end))
		return 0;
	/* A file that was a segment before may follow the last batch with
	 * anything; one that was not, only with a torn write. */
	if (last && (st == B_TORN || st == B_OTHER || b.reused)) {
		if (cut_segment(kv, s, size, st, &b) == -1)
			goto io;
		return 0;
	}
	{
		char *path = kvs_path(kv, s->num);

		xasprintf(err, "%s: damaged journal batch at offset %" PRIu64
		    " (%" PRIu64 " bytes follow)%s; the store is left as it is", path, off,
		    size - off, last ? "" : ", and no end record before the next segment");
		free(path);
		errno = EUCLEAN;
		return -1;
	}
io:
	xasprintf(err, "%s segment %" PRIu32 ": %s", kv->label, s->num, strerror(errno));
	return -1;
}

static int
open_segment(struct kv *kv, uint32_t num, int *fd)
{
	char *path = kvs_path(kv, num);

	*fd = open(path, O_RDWR | O_CLOEXEC);
	free(path);
	return *fd == -1 && errno != ENOENT ? -1 : 0;
}

/* Replays the segments from first_seg on, in order; the last one becomes
 * the one written to (a new store gets its first). */
int
kvj_replay_all(struct kv *kv, char **err)
{
	uint32_t num = kv->first_seg;
	int fd, next;

	if (open_segment(kv, num, &fd) == -1)
		goto io;
	if (fd == -1)
		return kvj_create_segment(kv, num, err);
	for (;;) {
		struct kv_seg *s = kvs_find(kv, num);

		if (s == NULL)
			s = kvs_add(kv, num);
		s->fd = fd;
		if (open_segment(kv, num + 1, &next) == -1)
			goto io;
		if (replay_segment(kv, s, next == -1, err) == -1) {
			if (next != -1)
				(void)close(next);
			return -1;
		}
		/* What a process that died wrote without syncing is read back
		 * like the rest: make it durable before anyone relies on it
		 * (an answer about a record found here goes out once a sync
		 * says so, and a sync covers only what this process wrote). */
		if (next == -1) {
			if (s->size > 0 && kvj_sync_fd(s->fd, 1) == -1)
				goto io;
			return 0;
		}
		/* Read again when a value in it is wanted. */
		(void)close(s->fd);
		s->fd = -1;
		fd = next;
		num++;
	}
io:
	xasprintf(err, "%s segment %" PRIu32 ": %s", kv->label, num, strerror(errno));
	return -1;
}

/* Format 1 (kvlegacy.c): the journal DIR/NAME.journal, the same batches;
 * its records are put again into the pending batch.  A torn end is
 * ignored, damage before it is an error. */
static int
reput(struct kv *kv, const uint8_t *body, size_t len)
{
	struct rbuf r;
	const uint8_t *k, *v;
	size_t klen, vlen;
	uint8_t op;

	rbuf_init(&r, body, len);
	while (r.left > 0) {
		get_u8(&r, &op);
		get_bytes(&r, &k, &klen);
		if (op == OP_PUT && get_bytes(&r, &v, &vlen) == 0 &&
		    kv_put(kv, k, klen, v, vlen) == -1)
			return -1;
		if (op == OP_DEL && kv_del(kv, k, klen) == -1)
			return -1;
		kv->st.recovered++;
		if (kv->batch.len > 64u << 20 && kvj_write(kv) == -1)
			return -1;
	}
	return 0;
}

int
kvj_convert_journal(struct kv *kv, int fd, const char *path, char **err)
{
	struct stat sb;
	struct batch b = { 0 };
	uint64_t off = 0;
	enum batch_state st = B_OK;
	bool end;

	if (fstat(fd, &sb) == -1)
		goto io;
	while (off < (uint64_t)sb.st_size &&
	    (st = batch_read(fd, 0, off, (uint64_t)sb.st_size, &b)) == B_OK) {
		if (batch_parse(kv, b.buf, b.len, 0, 0, 0, &end) == -1 || end) {
			st = B_BAD;
			break;
		}
		if (reput(kv, b.buf, b.len) == -1) {
			free(b.buf);
			goto io;
		}
		off += b.hdr + b.len;
	}
	free(b.buf);
	if (st == B_ERROR)
		goto io;
	if (st == B_BAD) {
		xasprintf(err, "%s: damaged journal batch at offset %" PRIu64
		    "; the store is left as it is", path, off);
		errno = EUCLEAN;
		return -1;
	}
	if (off < (uint64_t)sb.st_size) {
		log_warnx("store %s: ignoring %" PRIu64 " torn bytes at the end of %s",
		    kv->label, (uint64_t)sb.st_size - off, path);
		kv->st.truncated += (uint64_t)sb.st_size - off;
	}
	return 0;
io:
	xasprintf(err, "%s: %s", path, strerror(errno));
	return -1;
}
