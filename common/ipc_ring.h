/* Shared-memory rings for large record bodies.
 *
 * A 64 KiB message crossed each Unix socket as a copy into the kernel, an
 * skb of high-order pages and a copy out: two such hops (master to topicd,
 * topicd to master) cost more than half of both processes' time in a
 * stream of them.  A ring is a memfd both ends map: the producer copies a
 * body into a slot once, and the record that crosses the socket is a
 * 16-byte reference (struct ipc_ring_ref, see ipc.h for the records).
 *
 * Slots are taken in order by one producer and released in any order by
 * the consumer, which marks a slot free when done with its body (the
 * master keeps a delivery's body in a client's output until it is
 * written).  The producer takes the space back in order, from the oldest
 * slot, as far as slots are free: a body held long (a client that does
 * not read) holds the space after it, and the producer then sends inline,
 * as without a ring.  Nothing waits for ring space.
 *
 * The consumer trusts nothing in the ring: a reference is checked against
 * the mapping's size and the slot's header before its body is used, and a
 * mapping stays until the last body taken from it is released.  The
 * shared words are the slot headers: the producer writes a slot whole
 * before sending its reference; the consumer writes only the state word,
 * from BUSY to FREE.
 *
 * Consumers find rings by id in a table of this process (ipc_ring_map
 * adds one, ipc_ring_unmap takes it out), so that a topicd's bodies can
 * come on any of the delivery sockets it writes to. */
#ifndef COMMON_IPC_RING_H
#define COMMON_IPC_RING_H

#include <sys/uio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A ring's size: 64 messages of 64 KiB in flight. */
#define IPC_RING_SIZE	(4u * 1024 * 1024)
/* Smaller bodies go inline: they pack many to a datagram. */
#define IPC_RING_MIN	(16u * 1024)
#define IPC_RING_SIZE_MIN (64u * 1024)
#define IPC_RING_SIZE_MAX (256u * 1024 * 1024)

/* What crosses the socket for a body in a ring (host byte order). */
struct ipc_ring_ref {
	uint64_t id;
	uint32_t off;		/* of the slot */
	uint32_t len;		/* of the body */
};

/* The producer's end. */
struct ipc_ring;
/* A new ring of size bytes (a multiple of 64 KiB), or NULL with errno. */
struct ipc_ring *ipc_ring_new(size_t size);
void     ipc_ring_free(struct ipc_ring *r);
/* The memfd, to announce the ring to its consumer with: the caller owns
 * it now (-1 once taken).  The ring keeps its mapping. */
int      ipc_ring_take_fd(struct ipc_ring *r);
uint64_t ipc_ring_id(const struct ipc_ring *r);
size_t   ipc_ring_size(const struct ipc_ring *r);
/* Copies the n parts of iov into a new slot and fills *ref: 0, or -1 when
 * there is no room now (or the ring is out of order: never again). */
int      ipc_ring_put(struct ipc_ring *r, const struct iovec *iov, int n,
		      struct ipc_ring_ref *ref);
/* Takes back the slot put last, whose reference could not be sent. */
void     ipc_ring_unput(struct ipc_ring *r, const struct ipc_ring_ref *ref);
/* Slots in use (not yet taken back); 0 for a ring out of order, which
 * nothing is put into again. */
size_t   ipc_ring_used(struct ipc_ring *r);
/* When every slot has been released and nothing was put for quiet_ms
 * (IPC_RING_QUIET_MS): the pages go back to the system (a ring is kept by a
 * topicd for its life, and a burst of large messages must not keep 4 MiB
 * each; in a stream, pages given back would be faulted in again).  True
 * when it was empty. */
#define IPC_RING_QUIET_MS 1000
bool     ipc_ring_trim(struct ipc_ring *r, int quiet_ms);
/* Pages were written since the last trim that gave them back. */
bool     ipc_ring_dirty(const struct ipc_ring *r);

/* The consumer's end. */
struct ipc_ring_map;
/* Maps the ring fd announces as id, of size bytes; fd is not closed.
 * NULL with errno EPROTO when the memfd is not one (size, seals) or the
 * id is mapped already. */
struct ipc_ring_map *ipc_ring_map(int fd, uint64_t id, uint64_t size);
/* The producer is gone: no new reference to it resolves; the mapping goes
 * when the last body taken from it is released. */
void     ipc_ring_unmap(struct ipc_ring_map *m);
/* The body ref names, which the caller now holds: NULL with errno ESTALE
 * (no such ring: its producer is gone) or EPROTO (a bad reference). */
const uint8_t *ipc_ring_take(const struct ipc_ring_ref *ref, struct ipc_ring_map **mp);
/* Frees the slot body (from ipc_ring_take on m) is in. */
void     ipc_ring_release(struct ipc_ring_map *m, const void *body);

#endif
