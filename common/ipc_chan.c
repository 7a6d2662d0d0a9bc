/* The libevent channel: read, drain, dispatch; write interest only while
 * the out-queue is non-empty; EOF and every error reach one callback. */
#include "ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <bsd/sys/queue.h>
#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "xmalloc.h"

#define DRAIN_MAX 256		/* records dispatched per wake-up, for fairness */

struct outrec {
	TAILQ_ENTRY(outrec) entry;
	uint16_t  type;
	uint8_t  *body;
	size_t    len;
	int       fd;
};

struct ipc_chan {
	struct event_base *base;
	int                fd;
	struct event      *rev;
	struct event      *wev;
	TAILQ_HEAD(, outrec) q;
	size_t             nq;
	int                error;	/* a send failed: reported from the write event */
	bool              *freed;	/* set while dispatching */
	ipc_msg_cb        *on_msg;
	ipc_err_cb        *on_err;
	void              *arg;
};

static void
outrec_free(struct outrec *o)
{
	if (o->fd != -1)
		close(o->fd);
	free(o->body);
	free(o);
}

/* Sends what it can; 0 when the queue is empty or the socket is full. */
static int
flush_queue(struct ipc_chan *c)
{
	struct outrec *o;

	while ((o = TAILQ_FIRST(&c->q)) != NULL) {
		if (ipc_send(c->fd, o->type, o->body, o->len, o->fd) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		TAILQ_REMOVE(&c->q, o, entry);
		c->nq--;
		outrec_free(o);
	}
	return 0;
}

static void
report(struct ipc_chan *c, int err)
{
	event_del(c->rev);
	event_del(c->wev);
	c->on_err(c, err, c->arg);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_chan *c = arg;

	(void)fd;
	(void)what;
	if (c->error == 0 && flush_queue(c) == -1)
		c->error = errno;
	if (c->error) {
		report(c, c->error);
		return;
	}
	if (c->nq == 0)
		event_del(c->wev);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_chan *c = arg;
	struct ipc_msg m;
	bool freed = false;

	(void)what;
	c->freed = &freed;
	for (int i = 0; i < DRAIN_MAX; i++) {
		int rc = ipc_recv(fd, &m);

		if (rc == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (rc <= 0) {
			c->freed = NULL;
			report(c, rc == 0 ? 0 : errno);
			return;
		}
		c->on_msg(c, &m, c->arg);
		ipc_msg_clear(&m);
		if (freed)
			return;
	}
	c->freed = NULL;
}

struct ipc_chan *
ipc_chan_new(struct event_base *base, int fd, ipc_msg_cb *on_msg, ipc_err_cb *on_err, void *arg)
{
	struct ipc_chan *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->fd = fd;
	c->on_msg = on_msg;
	c->on_err = on_err;
	c->arg = arg;
	TAILQ_INIT(&c->q);
	if (evutil_make_socket_nonblocking(fd) == -1)
		log_warn("channel fd %d: cannot make it non-blocking", fd);
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) == -1)
		fatalx("cannot set up events for channel fd %d", fd);
	return c;
}

void
ipc_chan_free(struct ipc_chan *c)
{
	struct outrec *o;

	if (c == NULL)
		return;
	if (c->freed != NULL)
		*c->freed = true;
	event_free(c->rev);
	event_free(c->wev);
	while ((o = TAILQ_FIRST(&c->q)) != NULL) {
		TAILQ_REMOVE(&c->q, o, entry);
		outrec_free(o);
	}
	close(c->fd);
	free(c);
}

int
ipc_chan_send(struct ipc_chan *c, uint16_t type, const void *body, size_t len, int fd)
{
	struct outrec *o;

	if (len > IPC_MAX_BODY || (fd != -1 && len > IPC_MAX_INLINE)) {
		if (fd != -1)
			close(fd);
		errno = EMSGSIZE;
		return -1;
	}
	if (c->nq == 0 && c->error == 0) {
		if (ipc_send(c->fd, type, body, len, fd) == 0) {
			if (fd != -1)
				close(fd);
			return 0;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			c->error = errno;	/* reported from the event loop */
			event_active(c->wev, EV_WRITE, 0);
		}
	}
	o = xcalloc(1, sizeof(*o));
	o->type = type;
	o->body = len ? xmemdup(body, len) : NULL;
	o->len = len;
	o->fd = fd;
	TAILQ_INSERT_TAIL(&c->q, o, entry);
	c->nq++;
	if (c->error == 0 && event_add(c->wev, NULL) == -1)
		fatalx("cannot add write event for channel fd %d", c->fd);
	return 0;
}

size_t
ipc_chan_queued(const struct ipc_chan *c)
{
	return c->nq;
}

int
ipc_chan_fd(const struct ipc_chan *c)
{
	return c->fd;
}

int
ipc_chan_flush(struct ipc_chan *c, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;

	while (c->nq > 0 && c->error == 0) {
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		int64_t left = deadline - mono_ms();

		if (left <= 0)
			return -1;
		if (poll(&p, 1, (int)left) == -1 && errno != EINTR)
			return -1;
		if (flush_queue(c) == -1)
			c->error = errno;
	}
	return c->nq == 0 ? 0 : -1;
}
