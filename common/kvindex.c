/* The store's in-memory index (an ordered tree of keys, with small values
 * and the place of the others) and its table of journal segments, which
 * counts the live values each segment holds.  See kvstore.h. */
#include "kvstore_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

/* Bytewise, and a key sorts before every longer key it is a prefix of. */
int
kv_node_cmp(struct kv_node *a, struct kv_node *b)
{
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	int c = n ? memcmp(a->key, b->key, n) : 0;

	if (c != 0)
		return c;
	return (a->klen > b->klen) - (a->klen < b->klen);
}

RB_GENERATE(kv_tree, kv_node, entry, kv_node_cmp)

/* The node of key, or with nearest the first node not below it.  The
 * last node found (the finger) and the one after it are tried first: a
 * log read or trimmed in order finds each key in a step or two rather
 * than down a tree of millions. */
struct kv_node *
kvi_find(struct kv *kv, const void *key, size_t klen, int nearest)
{
	struct kv_node q, *f = kv->finger, *n;
	int c;

	if (klen > KV_KEY_MAX)
		return NULL;
	q.key = key;
	q.klen = (uint16_t)klen;
	if (nearest)
		return RB_NFIND(kv_tree, &kv->tree, &q);
	if (f != NULL && (c = kv_node_cmp(&q, f)) >= 0) {
		if (c == 0)
			return f;
		if ((f = RB_NEXT(kv_tree, &kv->tree, f)) != NULL && kv_node_cmp(&q, f) == 0)
			return kv->finger = f;
	}
	if ((n = RB_FIND(kv_tree, &kv->tree, &q)) != NULL)
		kv->finger = n;
	return n;
}

/* What a node adds to a checkpoint. */
static uint64_t
index_cost(const struct kv_node *n)
{
	return (uint64_t)n->klen + 8 + (n->where == KV_IN_MEM ? n->vlen : KV_REF_LEN);
}

/* The value of n is going away: its segment holds one live value less. */
static void
unlink_value(struct kv *kv, struct kv_node *n)
{
	struct kv_seg *s;

	kv->index_bytes -= index_cost(n);
	kv->st.live_bytes -= n->vlen;
	free(n->sval);
	n->sval = NULL;
	if (n->where == KV_IN_SEG && (s = kvs_find(kv, n->seg)) != NULL && s->refs > 0)
		s->refs--;
}

/* Records that key now has a value of vlen bytes.  A small value is
 * copied into memory; a larger one is only located (where, seg, off), so
 * that memory grows with the number of keys, not with the payload. */
void
kvi_set(struct kv *kv, const void *key, size_t klen, const void *val, size_t vlen,
    enum kv_where where, uint32_t seg, uint64_t off)
{
	struct kv_node *n = xcalloc(1, sizeof(*n) + klen), *old;
	struct kv_seg *s;

	memcpy(n + 1, key, klen);
	n->key = (const uint8_t *)(n + 1);
	n->klen = (uint16_t)klen;
	/* One walk down the tree: the key is inserted, or found there. */
	if ((old = RB_INSERT(kv_tree, &kv->tree, n)) == NULL) {
		kv->st.keys++;
		kv->st.live_bytes += klen;
	} else {
		free(n);
		n = old;
		unlink_value(kv, n);
	}
	n->vlen = (uint32_t)vlen;
	kv->st.live_bytes += vlen;
	if (vlen <= KV_SMALL_MAX) {
		n->where = KV_IN_MEM;
		n->sval = xmemdup(val, vlen);
	} else {
		n->where = (uint8_t)where;
		n->seg = seg;
		n->off = off;
		if (where == KV_IN_SEG) {
			if ((s = kvs_find(kv, seg)) == NULL)
				s = kvs_add(kv, seg);
			s->refs++;
		}
	}
	kv->index_bytes += index_cost(n);
}

void
kvi_del(struct kv *kv, const void *key, size_t klen)
{
	struct kv_node *n = kvi_find(kv, key, klen, 0);

	if (n != NULL)
		kvi_remove(kv, n);
}

void
kvi_remove(struct kv *kv, struct kv_node *n)
{
	if (kv->finger == n)
		kv->finger = RB_NEXT(kv_tree, &kv->tree, n);
	unlink_value(kv, n);
	RB_REMOVE(kv_tree, &kv->tree, n);
	kv->st.keys--;
	kv->st.live_bytes -= n->klen;
	free(n);
}

void
kvi_free_all(struct kv *kv)
{
	struct kv_node *n, *next;

	kv->finger = NULL;
	RB_FOREACH_SAFE(n, kv_tree, &kv->tree, next) {
		RB_REMOVE(kv_tree, &kv->tree, n);
		free(n->sval);
		free(n);
	}
}

/* Does value n follow the last one read, as the values of a log read in
 * order do (with the records of other keys between)?  Small values only:
 * a large one is read straight into its own buffer. */
static bool
in_order(const struct kv *kv, const struct kv_node *n)
{
	return n->vlen <= KV_READAHEAD / 4 && n->seg == kv->ra.next_seg &&
	    n->off >= kv->ra.next && n->off - kv->ra.next <= KV_SEQ_SLACK;
}

/* Copies value n into v from the read-ahead buffer, which is refilled
 * from n->off when n is not all in it.  Segments only grow, and what is
 * written below their size never changes, so what the buffer holds stays
 * true until the segment is removed (kvs_remove).  The value's length, or
 * -1 or a short count as kvj_pread(). */
static ssize_t
read_ahead(struct kv *kv, const struct kv_seg *s, int fd, const struct kv_node *n,
    uint8_t *v)
{
	struct kv_readahead *ra = &kv->ra;
	size_t want = KV_READAHEAD;
	ssize_t r;

	if (ra->len == 0 || ra->seg != n->seg || n->off < ra->off ||
	    n->off + n->vlen > ra->off + ra->len) {
		if (ra->buf == NULL)
			ra->buf = xmalloc(KV_READAHEAD);
		if (s->size > n->off && s->size - n->off < want)
			want = (size_t)(s->size - n->off);
		ra->len = 0;
		kv->st.reads++;
		if ((r = kvj_pread(fd, ra->buf, want, n->off)) == -1)
			return -1;
		ra->seg = n->seg;
		ra->off = n->off;
		ra->len = (size_t)r;
		if (ra->len < n->vlen)
			return r;
	}
	memcpy(v, ra->buf + (n->off - ra->off), n->vlen);
	return (ssize_t)n->vlen;
}

static int
load_segment(struct kv *kv, struct kv_node *n, uint8_t **out)
{
	struct kv_seg *s = kvs_find(kv, n->seg);
	uint8_t *v;
	ssize_t r;
	int fd;

	if (s == NULL) {
		errno = EIO;
		log_warnx("store %s: a value refers to segment %" PRIu32 ", which is not there",
		    kv->label, n->seg);
		return -1;
	}
	if (s == kvs_current(kv) && n->off >= s->size) {
		/* Put but not yet written: it is in the pending batch. */
		*out = xmalloc((size_t)n->vlen + 1);
		memcpy(*out, kv->batch.data + (n->off - s->size), n->vlen);
		(*out)[n->vlen] = '\0';
		return 0;
	}
	if ((fd = kvs_fd(kv, s)) == -1)
		return -1;
	v = xmalloc((size_t)n->vlen + 1);
	if (in_order(kv, n)) {
		r = read_ahead(kv, s, fd, n, v);
	} else {
		kv->st.reads++;
		r = kvj_pread(fd, v, n->vlen, n->off);
	}
	kv->ra.next_seg = n->seg;
	kv->ra.next = n->off + n->vlen;
	if (r != (ssize_t)n->vlen) {
		if (r >= 0)
			errno = EIO;	/* the segment is shorter than the index says */
		log_warn("store %s: reading %" PRIu32 " bytes at offset %" PRIu64
		    " of segment %" PRIu32, kv->label, n->vlen, n->off, n->seg);
		free(v);
		return -1;
	}
	v[n->vlen] = '\0';
	*out = v;
	return 0;
}

/* A malloc'd, NUL-terminated copy of the value of n. */
int
kvi_load(struct kv *kv, struct kv_node *n, uint8_t **out)
{
	switch (n->where) {
	case KV_IN_MEM:
		*out = xmalloc((size_t)n->vlen + 1);
		memcpy(*out, n->sval, n->vlen);
		(*out)[n->vlen] = '\0';
		return 0;
	default:
		return load_segment(kv, n, out);
	}
}

/* Segments are few and kept sorted by number: a binary search. */
struct kv_seg *
kvs_find(struct kv *kv, uint32_t num)
{
	size_t lo = 0, hi = kv->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (kv->segs[mid].num == num)
			return &kv->segs[mid];
		if (kv->segs[mid].num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Adds segment num (closed, empty) in its place. */
struct kv_seg *
kvs_add(struct kv *kv, uint32_t num)
{
	size_t i;

	if (kv->nsegs == kv->segcap) {
		kv->segcap = kv->segcap ? kv->segcap * 2 : 8;
		kv->segs = xreallocarray(kv->segs, kv->segcap, sizeof(*kv->segs));
	}
	for (i = kv->nsegs; i > 0 && kv->segs[i - 1].num > num; i--)
		kv->segs[i] = kv->segs[i - 1];
	memset(&kv->segs[i], 0, sizeof(kv->segs[i]));
	kv->segs[i].num = num;
	kv->segs[i].fd = -1;
	kv->nsegs++;
	return &kv->segs[i];
}

void
kvs_remove(struct kv *kv, struct kv_seg *s)
{
	size_t i = (size_t)(s - kv->segs);

	if (kv->ra.seg == s->num)
		kv->ra.len = 0;
	if (s->fd != -1)
		(void)close(s->fd);	/* read-only or synced: nothing to lose */
	memmove(&kv->segs[i], &kv->segs[i + 1], (kv->nsegs - i - 1) * sizeof(*s));
	kv->nsegs--;
}

/* The segment written to (the one with the highest number). */
struct kv_seg *
kvs_current(struct kv *kv)
{
	return kv->nsegs > 0 ? &kv->segs[kv->nsegs - 1] : NULL;
}

char *
kvs_path(const struct kv *kv, uint32_t num)
{
	char *p;

	xasprintf(&p, "%s.journal.%08" PRIu32, kv->label, num);
	return p;
}

/* Closes the least recently read segment (never the current one, nor one
 * still to be synced). */
static void
close_one(struct kv *kv)
{
	struct kv_seg *lru = NULL;

	for (size_t i = 0; i + 1 < kv->nsegs; i++)
		if (kv->segs[i].fd != -1 && !kv->segs[i].dirty &&
		    (lru == NULL || kv->segs[i].used < lru->used))
			lru = &kv->segs[i];
	if (lru != NULL) {
		(void)close(lru->fd);		/* opened to read only */
		lru->fd = -1;
	}
}

/* A descriptor to read segment s (opened on demand, a few kept). */
int
kvs_fd(struct kv *kv, struct kv_seg *s)
{
	unsigned open_fds = 0;
	char *path;

	s->used = ++kv->clock;
	if (s->fd != -1)
		return s->fd;
	for (size_t i = 0; i < kv->nsegs; i++)
		open_fds += kv->segs[i].fd != -1;
	if (open_fds >= KV_FD_CACHE)
		close_one(kv);
	path = kvs_path(kv, s->num);
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd == -1)
		log_warn("store %s: %s", kv->label, path);
	free(path);
	return s->fd;
}

/* The bytes of the segments the checkpoint does not cover; records (if
 * not NULL): the puts and deletes they hold. */
uint64_t
kvs_journal_bytes(const struct kv *kv, uint64_t *records)
{
	uint64_t n = 0, r = 0;

	for (size_t i = 0; i < kv->nsegs; i++)
		if (kv->segs[i].num >= kv->first_seg) {
			n += kv->segs[i].size;
			r += kv->segs[i].records;
		}
	if (records != NULL)
		*records = r;
	return n;
}

uint64_t
kvs_disk_bytes(const struct kv *kv)
{
	uint64_t n = kv->db_bytes + (kv->spare ? kv->spare_bytes : 0);

	for (size_t i = 0; i < kv->nsegs; i++)
		n += kv->segs[i].size;
	return n;
}
