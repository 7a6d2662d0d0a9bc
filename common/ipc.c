/* Records over SOCK_SEQPACKET with SCM_RIGHTS, and the libevent channel. */
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/sys/queue.h>
#include <event2/event.h>

#include "fdio.h"
#include "log.h"
#include "xmalloc.h"

#define MAX_FDS_SEEN 8		/* room to notice (and close) unexpected fds */
#define OUT_KEEP (64u * 1024)	/* an ipc_out buffer kept between datagrams */
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* A sealed memfd holding the body, the n parts of iov; -1 with errno on
 * failure. */
static int
memfd_body(const struct iovec *iov, int n)
{
	int fd = memfd_create("ipc-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int saved, i;

	if (fd == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (write_all(fd, iov[i].iov_base, iov[i].iov_len) == -1)
			break;
	if (i < n || fcntl(fd, F_ADD_SEALS, SEALS | F_SEAL_SEAL) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* One datagram: the header, then the n parts of the body. */
static int
send_raw(int sock, const struct ipc_hdr *h, const struct iovec *body, int nb, int fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov[1 + IPC_SENDV_MAX] = {
		{ .iov_base = (void *)h, .iov_len = sizeof(*h) },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 1 };
	ssize_t n;

	for (int i = 0; i < nb; i++)
		if (body[i].iov_len > 0)
			iov[msg.msg_iovlen++] = body[i];

	if (fd != -1) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	return n == -1 ? -1 : 0;
}

/* A record whose body is the n parts of iov, with fd (or -1). */
static int
send_parts(int sock, uint16_t type, uint16_t flags, const struct iovec *iov, int n, int fd)
{
	struct ipc_hdr h = { .type = type, .flags = flags };
	size_t len = 0;
	int mfd, rc, saved;

	if (n < 0 || n > IPC_SENDV_MAX) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > IPC_MAX_BODY - len) {
			errno = EMSGSIZE;
			return -1;
		}
		len += iov[i].iov_len;
	}
	h.len = (uint32_t)len;
	if (len <= IPC_MAX_INLINE) {
		if (fd != -1 && flags == 0)
			h.flags |= IPC_F_FD;
		return send_raw(sock, &h, iov, n, fd);
	}
	if (fd != -1 || flags != 0) {
		errno = EINVAL;		/* one fd per record: a big body takes the slot */
		return -1;
	}
	if ((mfd = memfd_body(iov, n)) == -1)
		return -1;
	h.flags |= IPC_F_MEMFD;
	rc = send_raw(sock, &h, NULL, 0, mfd);
	saved = errno;
	close(mfd);
	errno = saved;
	return rc;
}

int
ipc_send(int sock, uint16_t type, const void *body, size_t len, int fd)
{
	return ipc_send_flags(sock, type, 0, body, len, fd);
}

int
ipc_send_flags(int sock, uint16_t type, uint16_t flags, const void *body, size_t len, int fd)
{
	struct iovec iov = { .iov_base = (void *)body, .iov_len = len };

	return send_parts(sock, type, flags, &iov, 1, fd);
}

int
ipc_sendv(int sock, uint16_t type, const struct iovec *iov, int n)
{
	return send_parts(sock, type, 0, iov, n, -1);
}

int
ipc_sendv_ring(int sock, struct ipc_ring *ring, uint16_t type, const struct iovec *iov, int n)
{
	struct ipc_ring_ref ref;
	struct ipc_hdr h = { .type = type, .flags = IPC_F_RING, .len = sizeof(ref) };
	struct iovec riov = { .iov_base = &ref, .iov_len = sizeof(ref) };
	size_t len = 0;
	int saved;

	for (int i = 0; i < n && i < IPC_SENDV_MAX; i++)
		len += iov[i].iov_len;
	if (ring == NULL || n > IPC_SENDV_MAX || len < IPC_RING_MIN ||
	    ipc_ring_put(ring, iov, n, &ref) == -1)
		return ipc_sendv(sock, type, iov, n);
	if (send_raw(sock, &h, &riov, 1, -1) == 0)
		return 0;
	saved = errno;
	ipc_ring_unput(ring, &ref);
	errno = saved;
	return -1;
}

static void
close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* Reads the body out of a sealed memfd of exactly len bytes. */
static int
memfd_read(int fd, uint32_t len, uint8_t **out)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	uint8_t *p;
	size_t off = 0;

	if (seals == -1 || (seals & SEALS) != SEALS || fstat(fd, &st) == -1 ||
	    st.st_size != (off_t)len) {
		errno = EPROTO;
		return -1;
	}
	p = xmalloc(len);
	while (off < len) {
		ssize_t r = pread(fd, p + off, len - off, (off_t)off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(p);
			errno = EPROTO;
			return -1;
		}
		off += (size_t)r;
	}
	*out = p;
	return 0;
}

/* Collects the fds of every SCM_RIGHTS message; returns how many. */
/* After MSG_CTRUNC: had this process no descriptor left for the one
 * sent?  Else the record is malformed (too many fds, say). */
static bool
out_of_fds(int sock)
{
	int fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);

	if (fd != -1) {
		(void)close(fd);
		return false;
	}
	return errno == EMFILE || errno == ENFILE;
}

static int
collect_fds(struct msghdr *msg, int *fds, int max)
{
	int n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

		for (int i = 0; i < k && n < max; i++)
			memcpy(&fds[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	return n;
}

/* The records of a datagram of several are copied out of the receive
 * buffer together, into one block that the last of them to be cleared
 * frees: an allocation and a free per datagram, not per record (a
 * datagram holds dozens of small ones under load). */
struct ipc_block {
	size_t  refs;
	uint8_t data[];
};

static void
block_unref(struct ipc_block *blk)
{
	if (blk != NULL && --blk->refs == 0)
		free(blk);
}

/* A record whose body is in a ring: 0, or -1 with errno. */
static int
take_ring_body(const uint8_t *p, struct ipc_msg *m)
{
	struct ipc_ring_ref ref;

	memcpy(&ref, p, sizeof(ref));
	if ((m->body = (uint8_t *)ipc_ring_take(&ref, &m->ring)) == NULL)
		return -1;
	m->len = ref.len;
	return 0;
}

/* One record of the datagram in blk at *off: 0, or -1 with errno (bad:
 * EPROTO; its ring gone: ESTALE). */
static int
take_record(struct ipc_block *blk, size_t n, size_t *off, struct ipc_msg *m)
{
	struct ipc_hdr h;

	errno = EPROTO;
	if (n - *off < sizeof(h))
		return -1;
	memcpy(&h, blk->data + *off, sizeof(h));
	*off += sizeof(h);
	if ((h.flags != 0 && h.flags != IPC_F_RING) || h.len > n - *off)
		return -1;
	memset(m, 0, sizeof(*m));
	m->type = h.type;
	m->fd = -1;
	if (h.flags == IPC_F_RING) {
		if (h.len != sizeof(struct ipc_ring_ref) || take_ring_body(blk->data + *off, m) == -1)
			return -1;
	} else {
		m->len = h.len;
		m->body = h.len ? blk->data + *off : NULL;
		m->block = blk;
		blk->refs++;
	}
	*off += h.len;
	return 0;
}

/* A ring's announcement (a datagram with an fd): mapped, and kept with r. */
static int
take_ring(const uint8_t *buf, size_t n, int fd, struct ipc_reader *r)
{
	struct ipc_hdr h;
	uint64_t note[2];
	struct ipc_ring_map *map;

	if (r == NULL || n != sizeof(h) + sizeof(note))
		return -1;
	memcpy(&h, buf, sizeof(h));
	memcpy(note, buf + sizeof(h), sizeof(note));
	if (h.len != sizeof(note))
		return -1;
	if ((map = ipc_ring_map(fd, note[0], note[1])) == NULL) {
		if (errno != EPROTO)	/* out of memory or mappings, not the peer's fault */
			log_warn("cannot map a shared ring of %llu bytes announced by the peer",
			    (unsigned long long)note[1]);
		return -1;
	}
	close(fd);
	r->rings = xreallocarray(r->rings, r->nrings + 1, sizeof(*r->rings));
	r->rings[r->nrings++] = map;
	return 0;
}

static bool
is_ring_note(const uint8_t *buf, size_t n)
{
	struct ipc_hdr h;

	if (n < sizeof(h))
		return false;
	memcpy(&h, buf, sizeof(h));
	return h.flags == IPC_F_RING;
}

/* A datagram with an fd: one record, whose fd it is. */
static int
unpack_fd_record(const uint8_t *buf, size_t n, int fd, struct ipc_msg *m)
{
	struct ipc_hdr h;

	if (n < sizeof(h))
		return -1;
	memcpy(&h, buf, sizeof(h));
	if ((h.flags & ~IPC_F_MASK) || h.len > IPC_MAX_BODY ||
	    (h.flags & IPC_F_MASK) == IPC_F_MASK || (h.flags & IPC_F_MASK) == 0)
		return -1;
	m->type = h.type;
	m->flags = h.flags & IPC_F_FD;
	m->len = h.len;
	m->body = NULL;
	m->fd = -1;
	if (h.flags & IPC_F_MEMFD) {
		if (n != sizeof(h) || h.len <= IPC_MAX_INLINE ||
		    memfd_read(fd, h.len, &m->body) == -1)
			return -1;
		m->mem = m->body;
		close(fd);
		return 0;
	}
	if (n != sizeof(h) + h.len)
		return -1;
	if (h.len)
		m->body = m->mem = xmemdup(buf + sizeof(h), h.len);
	m->fd = fd;
	return 0;
}

static void
reader_push(struct ipc_reader *r, const struct ipc_msg *m)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->q = xreallocarray(r->q, r->cap, sizeof(*r->q));
	}
	r->q[r->n++] = *m;
}

/* A datagram that is one large record: its body stays in *buf, which
 * becomes the record's (a new one is allocated for the next datagram).
 * The buffer is cut to the datagram: what holds the record (a client's
 * output, a topicd's cache) counts its length, and a 64 KiB record must
 * not keep 128 KiB.  With large blocks on the heap (xmalloc_keep_freed),
 * the allocator cuts it in place. */
static bool
take_alone(uint8_t **buf, size_t n, struct ipc_msg *m)
{
	struct ipc_hdr h;
	uint8_t *cut;

	if (n < sizeof(h) + IPC_ALONE)
		return false;
	memcpy(&h, *buf, sizeof(h));
	if (h.flags != 0 || h.len != n - sizeof(h))
		return false;
	if (n < IPC_HDR_SIZE + IPC_MAX_INLINE && (cut = realloc(*buf, n)) != NULL)
		*buf = cut;
	m->type = h.type;
	m->flags = 0;
	m->len = h.len;
	m->mem = *buf;
	m->body = *buf + sizeof(h);
	m->fd = -1;
	*buf = NULL;
	return true;
}

/* Every record of a datagram without fds: the first in *m, the rest
 * queued in r.  0, or -1 (bad: nothing kept). */
static int
unpack_records(uint8_t **bufp, size_t n, struct ipc_reader *r, struct ipc_msg *m)
{
	struct ipc_block *blk;
	struct ipc_msg more;
	size_t off = 0, queued = r != NULL ? r->n : 0;
	int saved;

	if (take_alone(bufp, n, m))
		return 0;
	errno = EPROTO;
	if (n == 0)
		return -1;
	blk = xmalloc(sizeof(*blk) + n);
	blk->refs = 1;				/* ours, until every record is out */
	memcpy(blk->data, *bufp, n);
	if (take_record(blk, n, &off, m) == -1) {
		saved = errno;
		block_unref(blk);
		errno = saved;
		return -1;
	}
	while (off < n) {
		if (r == NULL || take_record(blk, n, &off, &more) == -1) {
			saved = r == NULL ? EPROTO : errno;
			ipc_msg_clear(m);
			while (r != NULL && r->n > queued)
				ipc_msg_clear(&r->q[--r->n]);
			block_unref(blk);
			errno = saved;
			return -1;
		}
		reader_push(r, &more);
	}
	block_unref(blk);
	return 0;
}

static int
next_queued(struct ipc_reader *r, struct ipc_msg *m)
{
	if (r == NULL || r->next == r->n)
		return 0;
	*m = r->q[r->next++];
	if (r->next == r->n)
		r->next = r->n = 0;
	return 1;
}

/* The next datagram's records: the first in *m, the others queued in r
 * (a ring's announcement is taken in on the way); as ipc_recv. */
static int
recv_datagram(int sock, struct ipc_reader *r, struct ipc_msg *m)
{
	/* A datagram of one large record is not copied out of it: the buffer
	 * becomes that record's body (take_alone). */
	static uint8_t *buf;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_SEEN)];
	} cm;
	struct iovec iov = { .iov_len = IPC_HDR_SIZE + IPC_MAX_INLINE };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	int fds[MAX_FDS_SEEN], nfds, rc, saved;
	ssize_t n;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (buf == NULL)
		buf = xmalloc(IPC_HDR_SIZE + IPC_MAX_INLINE);
	for (;;) {
		iov.iov_base = buf;
		msg.msg_controllen = sizeof(cm.buf);
		do
			n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		while (n == -1 && errno == EINTR);
		if (n == -1)
			return -1;
		nfds = collect_fds(&msg, fds, MAX_FDS_SEEN);
		if (n == 0 && nfds == 0)
			return 0;
		errno = EPROTO;
		if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || nfds > 1)
			rc = -1;
		else if (nfds == 1 && is_ring_note(buf, (size_t)n)) {
			if ((rc = take_ring(buf, (size_t)n, fds[0], r)) == 0)
				continue;	/* nothing for the caller */
		} else if (nfds == 1)
			rc = unpack_fd_record(buf, (size_t)n, fds[0], m);
		else
			rc = unpack_records(&buf, (size_t)n, r, m);
		if (rc == 0)
			return 1;
		saved = errno == ESTALE ? ESTALE : EPROTO;
		close_fds(fds, nfds);
		if ((msg.msg_flags & MSG_CTRUNC) && out_of_fds(sock))
			saved = EMFILE;		/* the kernel had no slot for its fd */
		memset(m, 0, sizeof(*m));
		m->fd = -1;
		errno = saved;
		return -1;
	}
}

int
ipc_recv(int sock, struct ipc_reader *r, struct ipc_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (next_queued(r, m))
		return 1;
	return recv_datagram(sock, r, m);
}

size_t
ipc_reader_left(const struct ipc_reader *r)
{
	return r->n - r->next;
}

void
ipc_reader_clear(struct ipc_reader *r)
{
	while (r->next < r->n)
		ipc_msg_clear(&r->q[r->next++]);
	free(r->q);
	for (size_t i = 0; i < r->nrings; i++)
		ipc_ring_unmap(r->rings[i]);
	free(r->rings);
	memset(r, 0, sizeof(*r));
}

static int out_add(struct ipc_out *o, uint16_t type, uint16_t flags, const void *body, size_t len);

int
ipc_out_add(struct ipc_out *o, uint16_t type, const void *body, size_t len)
{
	return out_add(o, type, 0, body, len);
}

int
ipc_out_add_ref(struct ipc_out *o, uint16_t type, const struct ipc_ring_ref *ref)
{
	return out_add(o, type, IPC_F_RING, ref, sizeof(*ref));
}

static int
out_add(struct ipc_out *o, uint16_t type, uint16_t flags, const void *body, size_t len)
{
	struct ipc_hdr h = { .type = type, .flags = flags, .len = (uint32_t)len };

	size_t need = o->len + sizeof(h) + len;

	if (len > IPC_MAX_INLINE || need > IPC_HDR_SIZE + IPC_MAX_INLINE) {
		errno = EMSGSIZE;
		return -1;
	}
	if (need > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;

		while (cap < need)
			cap *= 2;
		if (cap > IPC_HDR_SIZE + IPC_MAX_INLINE)
			cap = IPC_HDR_SIZE + IPC_MAX_INLINE;
		o->buf = xrealloc(o->buf, cap);
		o->cap = cap;
	}
	memcpy(o->buf + o->len, &h, sizeof(h));
	if (len)
		memcpy(o->buf + o->len + sizeof(h), body, len);
	o->len += sizeof(h) + len;
	o->n++;
	return 0;
}

int
ipc_out_flush(int sock, struct ipc_out *o)
{
	struct iovec iov = { .iov_base = o->buf, .iov_len = o->len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (o->len == 0)
		return 0;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	o->len = 0;
	o->n = 0;
	if (o->cap > OUT_KEEP) {	/* a large one is not kept by an idle socket */
		free(o->buf);
		o->buf = NULL;
		o->cap = 0;
	}
	return 0;
}

void
ipc_out_free(struct ipc_out *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

void *
ipc_msg_take_mem(struct ipc_msg *m)
{
	void *mem = m->mem;

	m->mem = NULL;
	return mem;
}

struct ipc_ring_map *
ipc_msg_take_ring(struct ipc_msg *m)
{
	struct ipc_ring_map *ring = m->ring;

	m->ring = NULL;
	return ring;
}

void
ipc_msg_clear(struct ipc_msg *m)
{
	free(m->mem);
	block_unref(m->block);
	m->block = NULL;
	if (m->ring != NULL)
		ipc_ring_release(m->ring, m->body);
	m->ring = NULL;
	m->body = m->mem = NULL;
	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
}
