/* Records over SOCK_SEQPACKET sockets, with an optional fd (SCM_RIGHTS).
 *
 * A record is an 8-byte header and a body.  A datagram holds one record or
 * several back to back (at most IPC_HDR_SIZE + IPC_MAX_INLINE bytes in
 * all), so that records sent together cost one system call each way.  A
 * body larger than IPC_MAX_INLINE travels in a sealed memfd attached to the
 * record (IPC_F_MEMFD); the receiver checks the seals and the size and
 * hands the caller an ordinary body.  A record with an fd (the caller's,
 * IPC_F_FD, or the memfd) is alone in its datagram.
 *
 * A body of IPC_RING_MIN bytes or more may instead be in a shared ring
 * (ipc_ring.h): the record (IPC_F_RING) is then a struct ipc_ring_ref,
 * which packs with others, and the receiver hands the caller the body
 * where it is in the ring.  A ring is announced once, on a channel, by an
 * IPC_F_RING record with the memfd attached (body: u64 id, u64 size);
 * the receiver maps it until that channel's reader is cleared, and its
 * references may then come on any socket.  A reference to a ring that is
 * not mapped (its producer is gone) is ESTALE, a bad one EPROTO.
 *
 * Receiving: MSG_TRUNC, MSG_CTRUNC, a bad header, lengths that do not add
 * up to the datagram, a missing or unexpected fd are protocol errors
 * (EPROTO): the whole datagram is discarded and every fd that came with it
 * closed.  Received fds are close-on-exec.  A datagram whose fd the kernel
 * could not give this process (its descriptors all in use: MSG_CTRUNC) is
 * discarded likewise, as EMFILE (or ENFILE): the sender did nothing wrong.
 *
 * Two layers: ipc_send()/ipc_recv() and struct ipc_out on a raw
 * non-blocking socket (used for delivery sockets, where EAGAIN is
 * back-pressure), and struct ipc_chan, a libevent channel with an
 * out-queue that owns queued fds until sent. */
#ifndef COMMON_IPC_H
#define COMMON_IPC_H

#include <sys/uio.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc_ring.h"

struct event_base;

struct ipc_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t len;		/* body length (also when the body is in a memfd) */
};

#define IPC_F_FD	0x0001	/* the record carries the sender's fd */
#define IPC_F_MEMFD	0x0002	/* the body is in the attached sealed memfd */
#define IPC_F_MASK	0x0003
#define IPC_F_RING	0x0004	/* the body is in a ring (with an fd: a ring's announcement) */

#define IPC_HDR_SIZE	 sizeof(struct ipc_hdr)
/* Larger bodies go by memfd.  A datagram of this size fits the default
 * send buffer of a Unix socket (net.core.wmem_default, 208 KiB). */
#define IPC_MAX_INLINE	 (128u * 1024)
/* A record of this size or more cannot share a datagram with another as
 * large: it is sent by itself, from where it is, not copied into a
 * datagram being packed. */
#define IPC_ALONE	 (IPC_MAX_INLINE / 2)
/* The largest message_size_limit there can be; a record carries at most
 * one message, its topic and some fields.  A larger record is a protocol
 * error: the peer that sent it (a topicd) is killed. */
#define IPC_MAX_MESSAGE	 (256u * 1024 * 1024)
#define IPC_MAX_BODY	 (IPC_MAX_MESSAGE + 128u * 1024)

struct ipc_msg {
	uint16_t type;
	uint16_t flags;		/* IPC_F_FD when fd is the sender's fd */
	uint32_t len;
	uint8_t *body;		/* len bytes (NULL when len == 0), in mem */
	int      fd;		/* -1, or an fd the receiver now owns */
	void    *mem;		/* malloc'd: what ipc_msg_clear frees */
	struct ipc_block *block; /* or the copy of the datagram body is in,
				 * shared with the other records of it */
	struct ipc_ring_map *ring; /* or the ring whose slot body is */
};

/* Sends one record, alone in its datagram.  fd (or -1) is not closed.
 * Returns 0, or -1 with errno (EAGAIN when the socket is full: nothing was
 * sent). */
int  ipc_send(int sock, uint16_t type, const void *body, size_t len, int fd);
/* As ipc_send without an fd, the body being the n parts of iov (at most
 * IPC_SENDV_MAX) one after the other: a large payload is sent from where
 * it is, not through a buffer that frames it first. */
#define IPC_SENDV_MAX	4
int  ipc_sendv(int sock, uint16_t type, const struct iovec *iov, int n);
/* As ipc_sendv, with a body of IPC_RING_MIN bytes or more copied into
 * ring (announced to the peer before), when it has room: the datagram is
 * then the reference. */
int  ipc_sendv_ring(int sock, struct ipc_ring *ring, uint16_t type, const struct iovec *iov, int n);
/* As ipc_send, with the header's flags given: IPC_F_RING with an fd is a
 * ring's announcement (ipc_chan_announce makes them). */
int  ipc_send_flags(int sock, uint16_t type, uint16_t flags, const void *body, size_t len, int fd);

/* A datagram being filled with records (no fds), sent by ipc_out_flush. */
struct ipc_out {
	uint8_t	*buf;			/* grows up to IPC_HDR_SIZE + IPC_MAX_INLINE */
	size_t	 len, cap;
	unsigned n;			/* records in it */
};
/* Adds a record: 0, or -1 with errno EMSGSIZE when it does not fit now
 * (flush first) or ever (a body over IPC_MAX_INLINE: ipc_send it). */
int  ipc_out_add(struct ipc_out *o, uint16_t type, const void *body, size_t len);
/* Adds a record whose body is in a ring. */
int  ipc_out_add_ref(struct ipc_out *o, uint16_t type, const struct ipc_ring_ref *ref);
/* Sends the datagram (nothing when empty): 0, or -1 with errno (EAGAIN:
 * the socket is full, the datagram is kept for later). */
int  ipc_out_flush(int sock, struct ipc_out *o);
void ipc_out_free(struct ipc_out *o);

/* What is left of the last datagram read from a socket: the records not
 * taken yet.  Zero-initialised; ipc_reader_clear frees what waits. */
struct ipc_reader {
	struct ipc_msg *q;
	size_t		n, next, cap;
	struct ipc_ring_map **rings;	/* announced on this socket */
	size_t		nrings;
};
/* Receives one record: the next one left in r, else from the next
 * datagram.  Returns 1 with *m filled, 0 on EOF, -1 with errno (EAGAIN:
 * nothing there; EPROTO: a bad datagram, already discarded; EMFILE or
 * ENFILE: one whose fd this process had no room for, discarded).  r NULL: the
 * caller takes one record per datagram (a datagram of several is EPROTO).
 * A ring's announcement is taken in (r not NULL) and the next datagram
 * read; ESTALE: a record whose ring is gone, discarded. */
int  ipc_recv(int sock, struct ipc_reader *r, struct ipc_msg *m);
size_t ipc_reader_left(const struct ipc_reader *r);
void ipc_reader_clear(struct ipc_reader *r);
/* Frees the body and closes the fd if still owned (fd != -1). */
void ipc_msg_clear(struct ipc_msg *m);
/* The memory m->body is in, when m owns it alone (a record that came in a
 * datagram of its own): m no longer frees it, the caller free()s it.  NULL
 * for a record of a shared datagram, or one without a body. */
void *ipc_msg_take_mem(struct ipc_msg *m);
/* The ring m->body is in: m no longer releases it, the caller does, with
 * ipc_ring_release(ring, body).  NULL when the body is not in a ring. */
struct ipc_ring_map *ipc_msg_take_ring(struct ipc_msg *m);

/* A libevent channel: read, drain, dispatch; write interest only while the
 * out-queue is non-empty; EOF and every error reach the one err callback. */
struct ipc_chan;
/* m->body is freed after the callback; take m->fd (set it to -1) to keep it. */
typedef void ipc_msg_cb(struct ipc_chan *c, struct ipc_msg *m, void *arg);
/* err: 0 for EOF, else an errno value (EPROTO for a protocol violation).
 * The callback normally frees the channel. */
typedef void ipc_err_cb(struct ipc_chan *c, int err, void *arg);
/* The out-queue went down to the mark it was armed with. */
typedef void ipc_drain_cb(struct ipc_chan *c, void *arg);

struct ipc_chan *ipc_chan_new(struct event_base *base, int fd,
			      ipc_msg_cb *on_msg, ipc_err_cb *on_err, void *arg);
/* Closes the socket and every queued fd.  Safe from inside a callback:
 * dispatching stops after the current record. */
void   ipc_chan_free(struct ipc_chan *c);
/* Queues a record (one that goes alone in its datagram is sent at once,
 * after what is queued, when the socket takes them); fd (or -1) is owned
 * by the channel from now on, also on failure.  Returns 0, or -1 when the
 * body is too large. */
int    ipc_chan_send(struct ipc_chan *c, uint16_t type, const void *body, size_t len, int fd);
/* Writes what is queued now, not once the callback returns: for records
 * the peer must have before what goes out on other sockets.  Errors are
 * reported through the err callback, as from the event loop. */
void   ipc_chan_push(struct ipc_chan *c);
/* Large bodies sent from now on go through a ring of the channel's own
 * (made, and announced, at the first), while it has room. */
void   ipc_chan_use_ring(struct ipc_chan *c);
/* Queues r's announcement: its references may then go on other sockets
 * to the peer (the channel takes r's fd). */
void   ipc_chan_announce(struct ipc_chan *c, struct ipc_ring *r);
/* Gives back the pages of the channel's ring if nothing is in it and it
 * has been quiet (IPC_RING_QUIET_MS). */
void   ipc_chan_trim(struct ipc_chan *c);
/* Records waiting in the out-queue, and the bytes of their bodies. */
size_t ipc_chan_queued(const struct ipc_chan *c);
size_t ipc_chan_queued_bytes(struct ipc_chan *c);
/* Adds the bytes queued to *tally as well, from now on (one total of many
 * channels); NULL: no longer. */
void   ipc_chan_tally(struct ipc_chan *c, uint64_t *tally);
/* Calls cb (with the channel's arg), once and from the event loop, when
 * the out-queue holds low bytes or fewer: at once if it does now.  For a
 * sender that stops while the peer does not keep up. */
void   ipc_chan_when_below(struct ipc_chan *c, size_t low, ipc_drain_cb *cb);
/* The channel's socket. */
int    ipc_chan_fd(const struct ipc_chan *c);
/* Records read from the socket before the channel was made: they are
 * dispatched first (r is emptied). */
void   ipc_chan_adopt(struct ipc_chan *c, struct ipc_reader *r);
/* One record left on the channel (after an EOF: what came before it), as
 * ipc_recv; for a caller that stopped dispatching. */
int    ipc_chan_recv(struct ipc_chan *c, struct ipc_msg *m);
/* Blocks until the out-queue is flushed or timeout_ms passes (shutdown). */
int    ipc_chan_flush(struct ipc_chan *c, int timeout_ms);

#endif
