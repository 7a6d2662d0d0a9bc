/* Shared-memory rings for large bodies: slots taken in order and released
 * in any order, wrap-around, no room, references checked, mappings that
 * outlive their owner's channel; and records over real socketpairs whose
 * bodies go through a ring (a channel's own, and a ring announced on a
 * channel and used on another socket, as a topicd's deliveries). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "ipc_ring.h"

#define KIB 1024u

/* A producer's ring and the consumer's mapping of it, in one process. */
struct both {
	struct ipc_ring	    *ring;
	struct ipc_ring_map *map;
};

static void
both_new(struct both *b, size_t size)
{
	int fd;

	assert_non_null(b->ring = ipc_ring_new(size));
	fd = ipc_ring_take_fd(b->ring);
	assert_true(fd >= 0);
	assert_int_equal(ipc_ring_take_fd(b->ring), -1);
	assert_non_null(b->map = ipc_ring_map(fd, ipc_ring_id(b->ring), size));
	close(fd);
}

static void
both_free(struct both *b)
{
	ipc_ring_unmap(b->map);
	ipc_ring_free(b->ring);
}

/* len bytes that tell where they came from. */
static void
fill(uint8_t *p, size_t len, unsigned tag)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + tag);
}

static bool
filled(const uint8_t *p, size_t len, unsigned tag)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(i * 7 + tag))
			return false;
	return true;
}

static int
put_tagged(struct ipc_ring *r, size_t len, unsigned tag, struct ipc_ring_ref *ref)
{
	uint8_t *buf = malloc(len);
	struct iovec iov[2] = { { buf, len / 3 }, { buf + len / 3, len - len / 3 } };
	int rc;

	assert_non_null(buf);
	fill(buf, len, tag);
	rc = ipc_ring_put(r, iov, 2, ref);
	free(buf);
	return rc;
}

static void
test_put_take_release(void **state)
{
	struct both b;
	struct ipc_ring_ref ref;
	struct ipc_ring_map *m = NULL;
	const uint8_t *body;

	(void)state;
	both_new(&b, 256 * KIB);
	assert_int_equal(put_tagged(b.ring, 20 * KIB + 3, 1, &ref), 0);
	assert_int_equal(ref.id, ipc_ring_id(b.ring));
	assert_int_equal(ref.len, 20 * KIB + 3);
	assert_true(ipc_ring_used(b.ring) > 20 * KIB);
	assert_non_null(body = ipc_ring_take(&ref, &m));
	assert_ptr_equal(m, b.map);
	assert_true(filled(body, ref.len, 1));
	assert_true(ipc_ring_used(b.ring) > 0);		/* held */
	ipc_ring_release(m, body);
	assert_int_equal(ipc_ring_used(b.ring), 0);
	both_free(&b);
}

/* The oldest slot held holds the space after it; released, it all comes
 * back.  Bodies released out of order, across many wrap-arounds, keep
 * their contents. */
static void
test_out_of_order_and_wrap(void **state)
{
	struct both b;
	struct ipc_ring_ref refs[64];
	const uint8_t *bodies[64];
	struct ipc_ring_map *m;
	unsigned n = 0, tag = 0;

	(void)state;
	both_new(&b, 256 * KIB);
	while (n < 64 && put_tagged(b.ring, 30 * KIB, tag, &refs[n]) == 0) {
		assert_non_null(bodies[n] = ipc_ring_take(&refs[n], &m));
		n++, tag++;
	}
	assert_true(n >= 7 && n < 9);			/* 256 KiB of 30 KiB slots */
	for (unsigned i = n - 1; i > 0; i--)
		ipc_ring_release(b.map, bodies[i]);	/* all but the oldest */
	assert_int_equal(put_tagged(b.ring, 30 * KIB, 99, &refs[63]), -1);
	assert_true(filled(bodies[0], 30 * KIB, 0));
	ipc_ring_release(b.map, bodies[0]);
	assert_int_equal(ipc_ring_used(b.ring), 0);

	/* Many rounds of varying sizes, a window of slots held, released
	 * newest first, each checked when released. */
	for (unsigned round = 0; round < 400; round++) {
		unsigned k = 0;
		size_t len = 16 * KIB + (round * 7919) % (30 * KIB);

		while (k < 5 && put_tagged(b.ring, len + k, tag + k, &refs[k]) == 0) {
			assert_non_null(bodies[k] = ipc_ring_take(&refs[k], &m));
			k++;
		}
		assert_true(k >= 4);
		while (k-- > 0) {
			assert_true(filled(bodies[k], len + k, tag + k));
			ipc_ring_release(b.map, bodies[k]);
		}
		tag += 5;
		assert_int_equal(ipc_ring_used(b.ring), 0);
	}
	both_free(&b);
}

static void
test_too_large_and_unput(void **state)
{
	struct both b;
	struct ipc_ring_ref ref, ref2;
	struct ipc_ring_map *m;

	(void)state;
	both_new(&b, 256 * KIB);
	assert_int_equal(put_tagged(b.ring, 64 * KIB + 1, 0, &ref), -1);	/* over a quarter */
	assert_int_equal(put_tagged(b.ring, 64 * KIB, 0, &ref), 0);
	ipc_ring_unput(b.ring, &ref);			/* its reference never went */
	assert_int_equal(ipc_ring_used(b.ring), 0);
	errno = 0;
	assert_null(ipc_ring_take(&ref, &m));
	assert_int_equal(errno, EPROTO);
	assert_int_equal(put_tagged(b.ring, 64 * KIB, 2, &ref2), 0);
	ipc_ring_unput(b.ring, &ref2);
	both_free(&b);
}

/* Every reference is checked against the mapping and the slot. */
static void
test_bad_references(void **state)
{
	struct both b;
	struct ipc_ring_ref ref, bad;
	struct ipc_ring_map *m;
	const uint8_t *body;

	(void)state;
	both_new(&b, 128 * KIB);
	assert_int_equal(put_tagged(b.ring, 20 * KIB, 3, &ref), 0);

	bad = ref;
	bad.id ^= 1;
	assert_null(ipc_ring_take(&bad, &m));
	assert_int_equal(errno, ESTALE);
	bad = ref;
	bad.off += 8;					/* not a slot's start */
	assert_null(ipc_ring_take(&bad, &m));
	assert_int_equal(errno, EPROTO);
	bad = ref;
	bad.len += 1;					/* not the slot's length */
	assert_null(ipc_ring_take(&bad, &m));
	assert_int_equal(errno, EPROTO);
	bad = ref;
	bad.off = 128 * KIB;				/* past the end */
	assert_null(ipc_ring_take(&bad, &m));
	assert_int_equal(errno, EPROTO);
	bad = ref;
	bad.len = 128 * KIB;				/* runs past the end */
	assert_null(ipc_ring_take(&bad, &m));
	assert_int_equal(errno, EPROTO);
	bad.off = 64 * KIB;				/* a slot never written */
	bad.len = 0;
	assert_null(ipc_ring_take(&bad, &m));
	assert_int_equal(errno, EPROTO);

	assert_non_null(body = ipc_ring_take(&ref, &m));
	ipc_ring_release(m, body);
	assert_null(ipc_ring_take(&ref, &m));		/* released: free */
	assert_int_equal(errno, EPROTO);
	both_free(&b);
}

/* A slot header that makes no sense (the peer wrote over it) puts the
 * ring out of use: nothing more goes into it, and it counts as empty, so
 * that its slots cannot keep a channel congested. */
static void
test_damaged_ring_goes_out_of_use(void **state)
{
	struct both b;
	struct ipc_ring_ref ref;
	struct ipc_ring_map *m;
	const uint8_t *body;
	uint32_t bad = 0xffffff00u;

	(void)state;
	both_new(&b, 128 * KIB);
	assert_int_equal(put_tagged(b.ring, 20 * KIB, 1, &ref), 0);
	assert_non_null(body = ipc_ring_take(&ref, &m));
	memcpy((uint8_t *)body - 12, &bad, sizeof(bad));	/* the slot's length */
	ipc_ring_release(m, body);
	assert_int_equal(ipc_ring_used(b.ring), 0);
	assert_int_equal(put_tagged(b.ring, 20 * KIB, 2, &ref), -1);
	both_free(&b);
}

/* Unmapped by its owner, a ring resolves no reference, and stays until
 * the last body taken from it is released. */
static void
test_unmap_waits_for_bodies(void **state)
{
	struct both b;
	struct ipc_ring_ref r1, r2;
	struct ipc_ring_map *m;
	const uint8_t *body;

	(void)state;
	both_new(&b, 128 * KIB);
	assert_int_equal(put_tagged(b.ring, 20 * KIB, 5, &r1), 0);
	assert_int_equal(put_tagged(b.ring, 20 * KIB, 6, &r2), 0);
	assert_non_null(body = ipc_ring_take(&r1, &m));
	ipc_ring_unmap(b.map);
	ipc_ring_unmap(b.map);				/* once is enough */
	assert_null(ipc_ring_take(&r2, &m));
	assert_int_equal(errno, ESTALE);
	assert_true(filled(body, 20 * KIB, 5));		/* still mapped */
	ipc_ring_release(m, body);			/* and now gone */
	ipc_ring_free(b.ring);
}

static int
memfd_of(size_t size, unsigned seals)
{
	int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* A memfd the peer could shrink under the mapping, or of another size
 * than announced, or an id mapped already, is refused. */
static void
test_map_refuses(void **state)
{
	struct both b;
	int fd;

	(void)state;
	fd = memfd_of(128 * KIB, 0);
	assert_null(ipc_ring_map(fd, 7, 128 * KIB));
	assert_int_equal(errno, EPROTO);
	close(fd);
	fd = memfd_of(128 * KIB, F_SEAL_SHRINK | F_SEAL_GROW);
	assert_null(ipc_ring_map(fd, 7, 192 * KIB));
	assert_null(ipc_ring_map(fd, 7, 100 * KIB));	/* not a whole number of 64 KiB */
	both_new(&b, 128 * KIB);
	assert_null(ipc_ring_map(fd, ipc_ring_id(b.ring), 128 * KIB));
	assert_int_equal(errno, EPROTO);
	close(fd);
	both_free(&b);
	assert_null(ipc_ring_new(100 * KIB));
	assert_int_equal(errno, EINVAL);
}

static size_t
resident_pages(void *p, size_t size)
{
	unsigned char vec[1024];
	size_t n = 0, pages = size / (size_t)sysconf(_SC_PAGESIZE);

	assert_true(pages <= sizeof(vec));
	assert_int_equal(mincore(p, size, vec), 0);
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	return n;
}

/* An empty ring that has been quiet gives its pages back; one in use
 * does not. */
static void
test_trim(void **state)
{
	struct both b;
	struct ipc_ring_ref ref;
	struct ipc_ring_map *m;
	const uint8_t *body;
	void *view;
	int fd;

	(void)state;
	assert_non_null(b.ring = ipc_ring_new(256 * KIB));
	fd = ipc_ring_take_fd(b.ring);
	assert_non_null(b.map = ipc_ring_map(fd, ipc_ring_id(b.ring), 256 * KIB));
	view = mmap(NULL, 256 * KIB, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(view != MAP_FAILED);
	close(fd);

	assert_int_equal(put_tagged(b.ring, 60 * KIB, 1, &ref), 0);
	assert_non_null(body = ipc_ring_take(&ref, &m));
	assert_false(ipc_ring_trim(b.ring, 0));		/* in use */
	ipc_ring_release(m, body);
	assert_true(ipc_ring_trim(b.ring, 60 * 1000));	/* empty, but not quiet */
	assert_true(resident_pages(view, 256 * KIB) >= 15);
	assert_true(ipc_ring_trim(b.ring, 0));
	assert_int_equal(resident_pages(view, 256 * KIB), 0);
	/* Still a ring: it fills from where it was. */
	assert_int_equal(put_tagged(b.ring, 60 * KIB, 2, &ref), 0);
	assert_non_null(body = ipc_ring_take(&ref, &m));
	assert_true(filled(body, 60 * KIB, 2));
	ipc_ring_release(m, body);
	munmap(view, 256 * KIB);
	both_free(&b);
}

/* --- records over sockets ------------------------------------------- */

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
}

/* A channel that uses a ring: its large bodies arrive in the ring, the
 * announcement is taken in on the way, and small records are as ever.
 * Clearing the reader (the channel gone) unmaps it. */
static void
test_chan_bodies_in_ring(void **state)
{
	struct event_base *base = event_base_new();
	struct ipc_reader r = { 0 };
	struct ipc_msg m;
	struct ipc_chan *c;
	static uint8_t big[100 * KIB];
	size_t lens[4] = { 20 * KIB, 100, 100 * KIB, IPC_RING_MIN - 1 };
	int sv[2];

	(void)state;
	assert_non_null(base);
	pair(sv);
	c = ipc_chan_new(base, sv[0], NULL, NULL, NULL);
	ipc_chan_use_ring(c);
	for (unsigned i = 0; i < 4; i++) {
		fill(big, lens[i], i);
		assert_int_equal(ipc_chan_send(c, (uint16_t)(10 + i), big, lens[i], -1), 0);
	}
	ipc_chan_push(c);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(ipc_recv(sv[1], &r, &m), 1);
		assert_int_equal(m.type, 10 + i);
		assert_int_equal(m.len, lens[i]);
		assert_true(filled(m.body, m.len, i));
		assert_int_equal(m.ring != NULL, lens[i] >= IPC_RING_MIN);
		ipc_msg_clear(&m);
	}
	assert_int_equal(ipc_recv(sv[1], &r, &m), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(r.nrings, 1);

	/* A reference read after the reader is cleared: its ring is gone. */
	fill(big, 30 * KIB, 9);
	assert_int_equal(ipc_chan_send(c, 20, big, 30 * KIB, -1), 0);
	ipc_chan_push(c);
	ipc_reader_clear(&r);
	assert_int_equal(ipc_recv(sv[1], &r, &m), -1);
	assert_int_equal(errno, ESTALE);
	ipc_chan_free(c);
	close(sv[1]);
	event_base_free(base);
}

/* A topicd's way: its ring announced on the channel, bodies sent on a
 * delivery socket; the master holds one (a client's output) past the
 * record.  A full socket gives the slot back; a full ring sends inline;
 * without a reader an announcement is a protocol error. */
static void
test_ring_on_another_socket(void **state)
{
	struct event_base *base = event_base_new();
	struct ipc_reader chan_in = { 0 }, dlv_in = { 0 };
	struct ipc_chan *c;
	struct ipc_ring *ring;
	struct ipc_ring_map *held;
	struct ipc_msg m;
	static uint8_t big[64 * KIB];
	struct iovec iov[2] = { { big, 10 }, { big + 10, sizeof(big) - 10 } };
	const uint8_t *body;
	int ch[2], dv[2], sent = 0, fd;
	size_t used;

	(void)state;
	pair(ch);
	pair(dv);
	c = ipc_chan_new(base, ch[0], NULL, NULL, NULL);
	assert_non_null(ring = ipc_ring_new(IPC_RING_SIZE));
	ipc_chan_announce(c, ring);
	ipc_chan_push(c);
	assert_int_equal(ipc_recv(ch[1], &chan_in, &m), -1);	/* taken in, nothing else */
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(chan_in.nrings, 1);

	fill(big, sizeof(big), 4);
	assert_int_equal(ipc_sendv_ring(dv[0], ring, 64, iov, 2), 0);
	assert_int_equal(ipc_recv(dv[1], &dlv_in, &m), 1);
	assert_int_equal(m.len, sizeof(big));
	body = m.body;
	assert_non_null(held = ipc_msg_take_ring(&m));
	ipc_msg_clear(&m);				/* the slot stays held */
	assert_true(ipc_ring_used(ring) > 0);
	assert_true(filled(body, sizeof(big), 4));
	ipc_ring_release(held, body);
	assert_int_equal(ipc_ring_used(ring), 0);

	/* Until the socket is full: every slot but the ones sent is back. */
	while (ipc_sendv_ring(dv[0], ring, 64, iov, 2) == 0)
		sent++;
	assert_int_equal(errno, EAGAIN);
	used = ipc_ring_used(ring);
	assert_true(sent > 0 && used > 0 && used <= (size_t)sent * (sizeof(big) + 64));
	/* The ring is full long before the socket: the rest went inline. */
	for (int i = 0; i < sent; i++) {
		assert_int_equal(ipc_recv(dv[1], &dlv_in, &m), 1);
		assert_true(filled(m.body, m.len, 4));
		ipc_msg_clear(&m);
	}
	assert_int_equal(ipc_ring_used(ring), 0);

	/* An announcement where no reader keeps it. */
	fd = ipc_ring_take_fd(ring);
	assert_int_equal(fd, -1);
	{
		struct ipc_ring *other = ipc_ring_new(IPC_RING_MIN * 4);
		uint64_t note[2] = { ipc_ring_id(other), ipc_ring_size(other) };

		fd = ipc_ring_take_fd(other);
		assert_int_equal(ipc_send_flags(dv[0], 0, IPC_F_RING, note, sizeof(note), fd), 0);
		close(fd);
		assert_int_equal(ipc_recv(dv[1], NULL, &m), -1);
		assert_int_equal(errno, EPROTO);
		ipc_ring_free(other);
	}
	ipc_reader_clear(&chan_in);
	ipc_reader_clear(&dlv_in);
	ipc_chan_free(c);
	ipc_ring_free(ring);
	close(ch[1]);
	close(dv[0]);
	close(dv[1]);
	event_base_free(base);
}

static void
on_drained(struct ipc_chan *c, void *arg)
{
	(void)c;
	*(bool *)arg = true;
}

static void
on_loop_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* The ring's slots count as queued until released; the peer says nothing
 * when it releases them, and a drain that waits fires all the same. */
static void
test_drain_without_a_word_from_the_peer(void **state)
{
	struct event_base *base = event_base_new();
	struct timeval second = { 1, 0 };
	struct event *deadline = evtimer_new(base, on_loop_deadline, base);
	struct ipc_reader r = { 0 };
	struct ipc_chan *c;
	struct ipc_msg m;
	static uint8_t big[64 * KIB];
	bool fired = false;
	int sv[2], got = 0;

	(void)state;
	pair(sv);
	c = ipc_chan_new(base, sv[0], NULL, NULL, &fired);
	ipc_chan_use_ring(c);
	for (int i = 0; i < 16; i++)
		assert_int_equal(ipc_chan_send(c, 1, big, sizeof(big), -1), 0);
	ipc_chan_push(c);
	assert_true(ipc_chan_queued_bytes(c) >= 16 * sizeof(big));
	ipc_chan_when_below(c, 0, on_drained);
	while (ipc_recv(sv[1], &r, &m) == 1) {
		got++;
		ipc_msg_clear(&m);		/* released: the slot is free */
	}
	assert_int_equal(got, 16);
	assert_int_equal(evtimer_add(deadline, &second), 0);
	assert_int_equal(event_base_loop(base, 0), 0);
	assert_true(fired);
	assert_int_equal(ipc_chan_queued_bytes(c), 0);
	event_free(deadline);
	ipc_reader_clear(&r);
	ipc_chan_free(c);
	close(sv[1]);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_take_release),
		cmocka_unit_test(test_out_of_order_and_wrap),
		cmocka_unit_test(test_too_large_and_unput),
		cmocka_unit_test(test_bad_references),
		cmocka_unit_test(test_damaged_ring_goes_out_of_use),
		cmocka_unit_test(test_unmap_waits_for_bodies),
		cmocka_unit_test(test_map_refuses),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_chan_bodies_in_ring),
		cmocka_unit_test(test_ring_on_another_socket),
		cmocka_unit_test(test_drain_without_a_word_from_the_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
