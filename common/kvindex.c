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

/* The node of key, or with nearest the first node not below it. */
struct kv_node *
kvi_find(struct kv *kv, const void *key, size_t klen, int nearest)
{
	struct kv_node q;

	if (klen > KV_KEY_MAX)
		return NULL;
	q.key = key;
	q.klen = (uint16_t)klen;
	if (nearest)
		return RB_NFIND(kv_tree, &kv->tree, &q);
	return RB_FIND(kv_tree, &kv->tree, &q);
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
	struct kv_node *n = kvi_find(kv, key, klen, 0);
	struct kv_seg *s;

	if (n == NULL) {
		n = xcalloc(1, sizeof(*n) + klen);
		memcpy(n + 1, key, klen);
		n->key = (const uint8_t *)(n + 1);
		n->klen = (uint16_t)klen;
		RB_INSERT(kv_tree, &kv->tree, n);
		kv->st.keys++;
		kv->st.live_bytes += klen;
	} else {
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

	if (n == NULL)
		return;
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

	RB_FOREACH_SAFE(n, kv_tree, &kv->tree, next) {
		RB_REMOVE(kv_tree, &kv->tree, n);
		free(n->sval);
		free(n);
	}
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
	r = kvj_pread(fd, v, n->vlen, n->off);
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

uint64_t
kvs_journal_bytes(const struct kv *kv)
{
	uint64_t n = 0;

	for (size_t i = 0; i < kv->nsegs; i++)
		if (kv->segs[i].num >= kv->first_seg)
			n += kv->segs[i].size;
	return n;
}

uint64_t
kvs_disk_bytes(const struct kv *kv)
{
	uint64_t n = kv->db_bytes;

	for (size_t i = 0; i < kv->nsegs; i++)
		n += kv->segs[i].size;
	return n;
}
