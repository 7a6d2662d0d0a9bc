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
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* A sealed memfd holding the body; -1 with errno on failure. */
static int
memfd_body(const void *body, size_t len)
{
	int fd = memfd_create("ipc-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int saved;

	if (fd == -1)
		return -1;
	if (write_all(fd, body, len) == -1 ||
	    fcntl(fd, F_ADD_SEALS, SEALS | F_SEAL_SEAL) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
send_raw(int sock, const struct ipc_hdr *h, const void *body, size_t blen, int fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov[2] = {
		{ .iov_base = (void *)h, .iov_len = sizeof(*h) },
		{ .iov_base = (void *)body, .iov_len = blen },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = blen ? 2 : 1 };
	ssize_t n;

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

int
ipc_send(int sock, uint16_t type, const void *body, size_t len, int fd)
{
	struct ipc_hdr h = { .type = type, .flags = 0, .len = (uint32_t)len };
	int mfd, rc, saved;

	if (len > IPC_MAX_BODY) {
		errno = EMSGSIZE;
		return -1;
	}
	if (len <= IPC_MAX_INLINE) {
		if (fd != -1)
			h.flags |= IPC_F_FD;
		return send_raw(sock, &h, body, len, fd);
	}
	if (fd != -1) {
		errno = EINVAL;		/* one fd per record: a big body takes the slot */
		return -1;
	}
	if ((mfd = memfd_body(body, len)) == -1)
		return -1;
	h.flags |= IPC_F_MEMFD;
	rc = send_raw(sock, &h, NULL, 0, mfd);
	saved = errno;
	close(mfd);
	errno = saved;
	return rc;
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

/* Checks header, size and fds of a received datagram and fills *m. */
static int
unpack(const uint8_t *buf, size_t n, int *fds, int nfds, struct ipc_msg *m)
{
	struct ipc_hdr h;

	if (n < sizeof(h))
		goto bad;
	memcpy(&h, buf, sizeof(h));
	if ((h.flags & ~IPC_F_MASK) || h.len > IPC_MAX_BODY ||
	    (h.flags & IPC_F_MASK) == IPC_F_MASK)
		goto bad;
	if (nfds != ((h.flags & IPC_F_MASK) ? 1 : 0))
		goto bad;
	m->type = h.type;
	m->flags = h.flags & IPC_F_FD;
	m->len = h.len;
	m->body = NULL;
	m->fd = -1;
	if (h.flags & IPC_F_MEMFD) {
		if (n != sizeof(h) || h.len <= IPC_MAX_INLINE ||
		    memfd_read(fds[0], h.len, &m->body) == -1)
			goto bad;
		close(fds[0]);
		return 1;
	}
	if (n != sizeof(h) + h.len)
		goto bad;
	if (h.len)
		m->body = xmemdup(buf + sizeof(h), h.len);
	if (h.flags & IPC_F_FD)
		m->fd = fds[0];
	return 1;
bad:
	close_fds(fds, nfds);
	errno = EPROTO;
	return -1;
}

int
ipc_recv(int sock, struct ipc_msg *m)
{
	static uint8_t buf[IPC_HDR_SIZE + IPC_MAX_INLINE];
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_SEEN)];
	} cm;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	int fds[MAX_FDS_SEEN], nfds;
	ssize_t n;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	nfds = collect_fds(&msg, fds, MAX_FDS_SEEN);
	if (n == 0 && nfds == 0)
		return 0;
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		close_fds(fds, nfds);
		errno = EPROTO;
		return -1;
	}
	return unpack(buf, (size_t)n, fds, nfds, m);
}

void
ipc_msg_clear(struct ipc_msg *m)
{
	free(m->body);
	m->body = NULL;
	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
}
