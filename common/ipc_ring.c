/* Shared-memory rings for large record bodies (see ipc_ring.h). */
#include "ipc_ring.h"

#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/sys/tree.h>

#include "clock.h"
#include "log.h"
#include "xmalloc.h"

#define SLOT_ALIGN 64u
#define SLOT_FREE  0u
#define SLOT_BUSY  0x59535542u		/* "BUSY" */
#define RING_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/* Each slot begins with this; its body follows. */
struct slot {
	_Atomic uint32_t state;
	uint32_t	 len;		/* of the body; a skip slot: to the ring's end */
	uint64_t	 pos;		/* the producer's position of the slot */
};

#define SLOT_HDR sizeof(struct slot)

struct ipc_ring {
	int	  fd;			/* until announced (ipc_ring_take_fd) */
	uint64_t  id;
	uint8_t	 *base;
	size_t	  size;
	uint64_t  head, tail;		/* positions: slots in [tail, head) are in use */
	bool	  dirty;		/* pages written since the last trim */
	int64_t	  last_put;		/* mono_ms */
	bool	  broken;		/* a slot header made no sense: not used again */
};

struct ipc_ring_map {
	RB_ENTRY(ipc_ring_map) entry;
	uint64_t  id;
	uint8_t	 *base;
	size_t	  size;
	size_t	  refs;			/* bodies taken, not released */
	bool	  gone;			/* unmapped by its owner: out of the table */
};

static int
map_cmp(const struct ipc_ring_map *a, const struct ipc_ring_map *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

RB_HEAD(ipc_ring_maps, ipc_ring_map);
RB_PROTOTYPE(ipc_ring_maps, ipc_ring_map, entry, map_cmp)
RB_GENERATE(ipc_ring_maps, ipc_ring_map, entry, map_cmp)

static struct ipc_ring_maps maps = RB_INITIALIZER(&maps);

static size_t
span_of(size_t len)
{
	return (SLOT_HDR + len + SLOT_ALIGN - 1) & ~(size_t)(SLOT_ALIGN - 1);
}

static uint64_t
new_id(void)
{
	uint64_t id;
	struct timespec ts;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) == (ssize_t)sizeof(id) && id != 0)
		return id;
	/* No entropy yet (early boot): unique enough within one machine. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
}

struct ipc_ring *
ipc_ring_new(size_t size)
{
	struct ipc_ring *r;
	int fd, saved;
	void *p;

	if (size < IPC_RING_SIZE_MIN || size > IPC_RING_SIZE_MAX || size % IPC_RING_SIZE_MIN) {
		errno = EINVAL;
		return NULL;
	}
	if ((fd = memfd_create("ipc-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING)) == -1)
		return NULL;
	if (ftruncate(fd, (off_t)size) == -1 || fcntl(fd, F_ADD_SEALS, RING_SEALS) == -1 ||
	    (p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		saved = errno;
		close(fd);
		errno = saved;
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->fd = fd;
	r->id = new_id();
	r->base = p;
	r->size = size;
	return r;
}

void
ipc_ring_free(struct ipc_ring *r)
{
	if (r == NULL)
		return;
	if (munmap(r->base, r->size) == -1)
		log_warn("ipc ring: munmap");
	if (r->fd != -1)
		close(r->fd);
	free(r);
}

int
ipc_ring_take_fd(struct ipc_ring *r)
{
	int fd = r->fd;

	r->fd = -1;
	return fd;
}

uint64_t
ipc_ring_id(const struct ipc_ring *r)
{
	return r->id;
}

size_t
ipc_ring_size(const struct ipc_ring *r)
{
	return r->size;
}

/* Takes back the slots released, oldest first. */
static void
reclaim(struct ipc_ring *r)
{
	while (r->tail < r->head) {
		size_t off = (size_t)(r->tail % r->size);
		struct slot *s = (struct slot *)(r->base + off);
		size_t span;

		if (atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_FREE)
			return;
		span = span_of(s->len);
		if (s->pos != r->tail || span > r->size - off || span > r->head - r->tail) {
			log_warnx("ipc ring %016llx: slot at %zu is damaged; ring no longer used",
			    (unsigned long long)r->id, off);
			r->broken = true;
			return;
		}
		r->tail += span;
	}
}

size_t
ipc_ring_used(struct ipc_ring *r)
{
	reclaim(r);
	return r->broken ? 0 : (size_t)(r->head - r->tail);	/* out of use */
}

static void
slot_init(struct ipc_ring *r, size_t off, size_t len, uint32_t state)
{
	struct slot *s = (struct slot *)(r->base + off);

	s->len = (uint32_t)len;
	s->pos = r->head;
	atomic_store_explicit(&s->state, state, memory_order_release);
}

int
ipc_ring_put(struct ipc_ring *r, const struct iovec *iov, int n, struct ipc_ring_ref *ref)
{
	size_t len = 0, off, skip, span;
	uint8_t *p;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (r->broken || len > r->size / 4)
		return -1;
	reclaim(r);
	span = span_of(len);
	off = (size_t)(r->head % r->size);
	skip = off + span > r->size ? r->size - off : 0;
	if (r->head - r->tail + skip + span > r->size)
		return -1;
	if (skip > 0) {			/* the rest of the ring, to be passed over */
		slot_init(r, off, skip - SLOT_HDR, SLOT_FREE);
		r->head += skip;
		off = 0;
	}
	p = r->base + off + SLOT_HDR;
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > 0)
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	slot_init(r, off, len, SLOT_BUSY);
	r->head += span;
	r->dirty = true;
	r->last_put = mono_ms_coarse();
	ref->id = r->id;
	ref->off = (uint32_t)off;
	ref->len = (uint32_t)len;
	return 0;
}

void
ipc_ring_unput(struct ipc_ring *r, const struct ipc_ring_ref *ref)
{
	struct slot *s = (struct slot *)(r->base + ref->off);

	atomic_store_explicit(&s->state, SLOT_FREE, memory_order_release);
}

bool
ipc_ring_trim(struct ipc_ring *r, int quiet_ms)
{
	reclaim(r);
	if (r->head != r->tail)
		return false;
	if (r->dirty && mono_ms_coarse() - r->last_put < quiet_ms)
		return true;
	if (r->dirty && madvise(r->base, r->size, MADV_REMOVE) == -1)
		log_warn("ipc ring %016llx: madvise", (unsigned long long)r->id);
	r->dirty = false;
	return true;
}

bool
ipc_ring_dirty(const struct ipc_ring *r)
{
	return r->dirty;
}

struct ipc_ring_map *
ipc_ring_map(int fd, uint64_t id, uint64_t size)
{
	struct ipc_ring_map key = { .id = id }, *m;
	struct stat st;
	int seals;
	void *p;

	if (size < IPC_RING_SIZE_MIN || size > IPC_RING_SIZE_MAX || size % IPC_RING_SIZE_MIN ||
	    (seals = fcntl(fd, F_GET_SEALS)) == -1 || (seals & RING_SEALS) != RING_SEALS ||
	    fstat(fd, &st) == -1 || (uint64_t)st.st_size != size ||
	    RB_FIND(ipc_ring_maps, &maps, &key) != NULL) {
		errno = EPROTO;
		return NULL;
	}
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->id = id;
	m->base = p;
	m->size = (size_t)size;
	RB_INSERT(ipc_ring_maps, &maps, m);
	return m;
}

static void
map_free(struct ipc_ring_map *m)
{
	if (munmap(m->base, m->size) == -1)
		log_warn("ipc ring %016llx: munmap", (unsigned long long)m->id);
	free(m);
}

void
ipc_ring_unmap(struct ipc_ring_map *m)
{
	if (m == NULL || m->gone)
		return;
	RB_REMOVE(ipc_ring_maps, &maps, m);
	m->gone = true;
	if (m->refs == 0)
		map_free(m);
}

const uint8_t *
ipc_ring_take(const struct ipc_ring_ref *ref, struct ipc_ring_map **mp)
{
	struct ipc_ring_map key = { .id = ref->id }, *m = RB_FIND(ipc_ring_maps, &maps, &key);
	struct slot *s;

	if (m == NULL) {
		errno = ESTALE;
		return NULL;
	}
	if (ref->off % SLOT_ALIGN || ref->off > m->size - SLOT_HDR ||
	    ref->len > m->size - SLOT_HDR - ref->off) {
		errno = EPROTO;
		return NULL;
	}
	s = (struct slot *)(m->base + ref->off);
	if (s->len != ref->len ||
	    atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_BUSY) {
		errno = EPROTO;
		return NULL;
	}
	m->refs++;
	*mp = m;
	return m->base + ref->off + SLOT_HDR;
}

void
ipc_ring_release(struct ipc_ring_map *m, const void *body)
{
	struct slot *s = (struct slot *)((const uint8_t *)body - SLOT_HDR);

	atomic_store_explicit(&s->state, SLOT_FREE, memory_order_release);
	if (--m->refs == 0 && m->gone)
		map_free(m);
}
