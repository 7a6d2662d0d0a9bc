/* The rest of a large packet, read in one system call.
 *
 * libevent 2.1 reads a socket at most 4 KiB at a time, one pass of the
 * loop each (EVBUFFER_MAX_READ; 2.2 makes it a setting): a 64 KiB PUBLISH
 * took 16 passes of epoll_wait, ioctl and readv, a third of the master's
 * CPU in a stream of them.  A protocol that holds part of a packet asks
 * for the rest here, and on a plain socket it is read straight into the
 * connection's input (under a WebSocket, into the socket's, and the
 * filter takes the frames at once).  TLS connections keep libevent's
 * reads: their bytes must go through OpenSSL. */
#include <sys/uio.h>

#include <errno.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/core.h"
#include "log.h"

#define READ_MORE_MAX	(1024 * 1024)

/* Puts n bytes read into the reserved extents v[0..nv) and commits them. */
static void
commit(struct evbuffer *in, struct evbuffer_iovec *v, int nv, size_t n)
{
	int used = 0;

	for (; used < nv && n > 0; used++) {
		if (v[used].iov_len > n)
			v[used].iov_len = n;
		n -= v[used].iov_len;
	}
	if (evbuffer_commit_space(in, v, used) == -1)
		log_warnx("cannot commit %d extents to an input buffer", used);
}

ssize_t
client_read_more(struct client *cl, size_t want)
{
	struct evbuffer *in = bufferevent_get_input(cl->raw);
	evutil_socket_t fd = bufferevent_getfd(cl->raw);
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ssize_t n;
	int nv;

	if (cl->ssl != NULL || cl->closing || fd < 0 || want == 0)
		return 0;
	if (want > READ_MORE_MAX)
		want = READ_MORE_MAX;
	/* A socket bufferevent freezes the end of its input; its own read
	 * unfreezes it around the read, as here. */
	if (evbuffer_unfreeze(in, 0) == -1)
		return 0;
	if ((nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2)) <= 0) {
		(void)evbuffer_freeze(in, 0);
		return 0;
	}
	for (int i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	do
		n = readv(fd, iov, nv);
	while (n == -1 && errno == EINTR);
	/* Nothing yet, the end, or an error: libevent's next read sees it. */
	commit(in, v, nv, n > 0 ? (size_t)n : 0);
	(void)evbuffer_freeze(in, 0);
	/* Under a WebSocket the filter takes the frames now, also if reading
	 * is off (BEV_NORMAL would leave them in the raw input, where
	 * nothing would look at them again). */
	if (n > 0 && cl->raw != cl->bev)
		(void)bufferevent_flush(cl->bev, EV_READ, BEV_FLUSH);
	return n > 0 ? n : 0;
}
