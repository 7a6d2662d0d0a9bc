/* The libevent channel: read, drain, dispatch; write interest only while
 * the out-queue is non-empty; EOF and every error reach one callback.
 *
 * A small record sent is queued, and the queue is written once the
 * callback that sent it returns (the flush event is made active): what
 * one wake-up sends goes out together, packed into as few datagrams as
 * fit.  A record that goes alone (an fd, a large body) is sent at once,
 * after what is queued, when the socket takes them.  The socket's write
 * event is watched only while the peer does not keep up.
 *
 * With ipc_chan_use_ring, a large body is copied into the channel's ring
 * as it is sent, and its reference is packed like a small record; the
 * ring goes when the channel does.  A body counts as queued until the
 * peer has released its slot: the ring is memory held for a peer that
 * may not keep up.  The peer says nothing when it does, so the count is
 * taken again whenever it is asked for, and every millisecond while a
 * drain callback waits for the ring. */
#include "ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/sys/queue.h>
#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "xmalloc.h"

#define DRAIN_MAX 256		/* records dispatched per wake-up, for fairness */
#define RING_POLL_US 1000	/* while a drain waits for ring slots */

/* A queued record with an fd or a large body (IPC_ALONE) goes alone in
 * its datagram; the others are framed, as they are sent, into the
 * datagram at the queue's tail while they fit (one copy, no allocation
 * of their own). */
struct outrec {
	TAILQ_ENTRY(outrec) entry;
	uint16_t  type;
	uint16_t  flags;	/* IPC_F_RING: a ring's announcement */
	uint8_t  *body;		/* follows the record: one allocation */
	size_t    len;		/* of the body; of a datagram's, their sum */
	int       fd;
	bool      packed;	/* a datagram of records in out */
	struct ipc_out out;
};

struct ipc_chan {
	struct event_base *base;
	int                fd;
	struct event      *rev;
	struct event      *wev;
	struct event      *fev;		/* flush, made active by a send */
	struct event      *pev;		/* ring poll, while a drain waits for it */
	TAILQ_HEAD(outq, outrec) q;
	size_t             nq;		/* records */
	size_t             qbytes;	/* their bodies */
	uint64_t          *tally;	/* qbytes also counted there (or NULL) */
	ipc_drain_cb      *on_drain;	/* armed by ipc_chan_when_below */
	size_t             drain_low;
	struct outrec     *spare;	/* a sent datagram's, for the next */
	struct ipc_reader  in;
	int                error;	/* a send failed: reported from the write event */
	bool              *freed;	/* set while dispatching */
	ipc_msg_cb        *on_msg;
	ipc_err_cb        *on_err;
	void              *arg;
	struct ipc_ring   *ring;	/* large bodies go through it */
	size_t             ring_bytes;	/* of qbytes: slots not yet released */
	bool               want_ring;	/* made at the first large body */
};

static void ring_account(struct ipc_chan *c);
static void ring_check(struct ipc_chan *c);
static void on_ring_poll(evutil_socket_t fd, short what, void *arg);

static void
qbytes_add(struct ipc_chan *c, size_t n)
{
	c->qbytes += n;
	if (c->tally != NULL)
		*c->tally += n;
}

static void
qbytes_sub(struct ipc_chan *c, size_t n)
{
	c->qbytes -= n;
	if (c->tally != NULL)
		*c->tally -= n;
}

static void
outrec_free(struct outrec *o)
{
	if (o->fd != -1)
		close(o->fd);
	ipc_out_free(&o->out);
	free(o);
}

/* The queue's head, of n records, was sent. */
static void
dequeue(struct ipc_chan *c, size_t n)
{
	struct outrec *o = TAILQ_FIRST(&c->q);

	TAILQ_REMOVE(&c->q, o, entry);
	c->nq -= n;
	qbytes_sub(c, o->len);
	if (o->packed && c->spare == NULL) {
		o->len = 0;		/* ipc_out_flush emptied o->out */
		c->spare = o;
		return;
	}
	outrec_free(o);
}

/* Sends what it can; 0 when the queue is empty or the socket is full. */
static int
flush_queue(struct ipc_chan *c)
{
	struct outrec *o;
	size_t n;

	while ((o = TAILQ_FIRST(&c->q)) != NULL) {
		n = o->packed ? o->out.n : 1;
		if (o->packed ? ipc_out_flush(c->fd, &o->out) == -1 :
		    ipc_send_flags(c->fd, o->type, o->flags, o->body, o->len, o->fd) == -1)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		dequeue(c, n);
	}
	return 0;
}

static void
report(struct ipc_chan *c, int err)
{
	event_del(c->rev);
	event_del(c->wev);
	event_del(c->fev);
	event_del(c->pev);
	c->on_err(c, err, c->arg);
}

/* The out-queue is down to the armed mark: its callback, once. */
static bool
drained(const struct ipc_chan *c)
{
	return c->on_drain != NULL && c->qbytes <= c->drain_low;
}

/* Writes what it can from the event loop; the socket's write event is
 * watched exactly while something is left. */
static void
write_from_loop(struct ipc_chan *c)
{
	ipc_drain_cb *cb;

	if (c->error == 0 && flush_queue(c) == -1)
		c->error = errno;
	if (c->error) {
		report(c, c->error);
		return;
	}
	if (c->nq == 0)
		event_del(c->wev);
	else if (event_add(c->wev, NULL) == -1)
		fatalx("cannot add write event for channel fd %d", c->fd);
	if (drained(c)) {
		cb = c->on_drain;
		c->on_drain = NULL;
		cb(c, c->arg);
	}
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	write_from_loop(arg);
}

/* After the callbacks that sent. */
static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	write_from_loop(arg);
}

void
ipc_chan_push(struct ipc_chan *c)
{
	if (c->nq == 0 || c->error != 0)
		return;
	if (flush_queue(c) == -1) {
		c->error = errno;
		event_active(c->fev, 0, 0);	/* reported from the loop */
		return;
	}
	if (c->nq > 0 && event_add(c->wev, NULL) == -1)
		fatalx("cannot add write event for channel fd %d", c->fd);
	if (drained(c))
		event_active(c->fev, 0, 0);	/* its callback, from the loop */
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
		int rc = ipc_recv(fd, &c->in, &m);

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
	if (ipc_reader_left(&c->in) > 0)
		event_active(c->rev, EV_READ, 0);	/* the rest, after others had a turn */
	ring_check(c);			/* what it released meanwhile */
}

/* Counts the ring's slots again; a drain that waits for them fires when
 * they are down to its mark, and is polled for until then. */
static void
ring_check(struct ipc_chan *c)
{
	struct timeval tv = { 0, RING_POLL_US };

	if (c->ring == NULL || c->ring_bytes == 0)
		return;
	ring_account(c);
	if (c->on_drain == NULL || c->error != 0)
		return;
	if (drained(c))
		event_active(c->fev, 0, 0);
	else if (c->ring_bytes > 0 && !evtimer_pending(c->pev, NULL) && evtimer_add(c->pev, &tv) == -1)
		fatalx("cannot add the ring timer for channel fd %d", c->fd);
}

static void
on_ring_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ring_check(arg);
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
	c->fev = event_new(base, -1, 0, on_flush, c);
	c->pev = evtimer_new(base, on_ring_poll, c);
	if (c->rev == NULL || c->wev == NULL || c->fev == NULL || c->pev == NULL ||
	    event_add(c->rev, NULL) == -1)
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
	event_free(c->fev);
	event_free(c->pev);
	qbytes_sub(c, c->qbytes);
	while ((o = TAILQ_FIRST(&c->q)) != NULL) {
		TAILQ_REMOVE(&c->q, o, entry);
		outrec_free(o);
	}
	if (c->spare != NULL)
		outrec_free(c->spare);
	ipc_reader_clear(&c->in);
	ipc_ring_free(c->ring);
	close(c->fd);
	free(c);
}

/* Frames a small record into the datagram at the queue's tail, or a new
 * one (the spare's buffer, when there is one). */
static int
out_add(struct ipc_out *o, uint16_t type, const void *body, size_t len, bool ref)
{
	return ref ? ipc_out_add_ref(o, type, body) : ipc_out_add(o, type, body, len);
}

/* (A reference's body is counted with the ring: ring_account.) */
static void
pack(struct ipc_chan *c, uint16_t type, const void *body, size_t len, bool ref)
{
	struct outrec *o = TAILQ_LAST(&c->q, outq);

	if (o != NULL && o->packed && out_add(&o->out, type, body, len, ref) == 0) {
		o->len += ref ? 0 : len;
		return;
	}
	if ((o = c->spare) != NULL)
		c->spare = NULL;
	else {
		o = xcalloc(1, sizeof(*o));
		o->fd = -1;
		o->packed = true;
	}
	if (out_add(&o->out, type, body, len, ref) == -1)
		fatalx("ipc_chan: a record of %zu bytes does not fit a datagram", len);
	o->len = ref ? 0 : len;
	TAILQ_INSERT_TAIL(&c->q, o, entry);
}

/* A record that goes alone in its datagram: what is queued before it (a
 * datagram of small records, waiting for the callback to end) is sent
 * first, then the record, from where it is, when the socket takes them
 * (a 64 KiB body is not copied into the queue and out again; the
 * datagram before it would have gone alone all the same).  False: it must
 * be queued. */
static bool
sent_at_once(struct ipc_chan *c, uint16_t type, const void *body, size_t len, int fd)
{
	if (c->error != 0)
		return false;
	if (c->nq > 0 && flush_queue(c) == -1) {
		c->error = errno;
		event_active(c->fev, 0, 0);	/* reported from the loop */
		return false;
	}
	if (c->nq > 0)
		return false;
	if (ipc_send(c->fd, type, body, len, fd) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return false;
		c->error = errno;
		event_active(c->fev, 0, 0);	/* reported from the loop */
	}
	if (fd != -1)
		close(fd);
	return true;
}

/* Queues an fd record: alone in its datagram, in order. */
static void
queue_alone(struct ipc_chan *c, uint16_t type, uint16_t flags, const void *body, size_t len,
    int fd)
{
	struct outrec *o = xmalloc(sizeof(*o) + len);

	memset(o, 0, sizeof(*o));
	o->type = type;
	o->flags = flags;
	o->body = len ? memcpy(o + 1, body, len) : NULL;
	o->len = len;
	o->fd = fd;
	TAILQ_INSERT_TAIL(&c->q, o, entry);
	qbytes_add(c, len);
	if (c->nq++ == 0 && c->error == 0)
		event_active(c->fev, 0, 0);	/* once this callback returns */
}

void
ipc_chan_announce(struct ipc_chan *c, struct ipc_ring *r)
{
	uint64_t note[2] = { ipc_ring_id(r), ipc_ring_size(r) };
	int fd = ipc_ring_take_fd(r);

	if (fd == -1)
		fatalx("ipc_chan: ring %016llx announced twice", (unsigned long long)note[0]);
	queue_alone(c, 0, IPC_F_RING, note, sizeof(note), fd);
}

void
ipc_chan_use_ring(struct ipc_chan *c)
{
	c->want_ring = true;
}

void
ipc_chan_trim(struct ipc_chan *c)
{
	if (c->ring != NULL)
		(void)ipc_ring_trim(c->ring, IPC_RING_QUIET_MS);
}

/* The ring's slots in use count as queued: as the peer releases them
 * (and we take them back), the count goes down. */
static void
ring_account(struct ipc_chan *c)
{
	size_t used = ipc_ring_used(c->ring);

	if (used > c->ring_bytes)
		qbytes_add(c, used - c->ring_bytes);
	else
		qbytes_sub(c, c->ring_bytes - used);
	c->ring_bytes = used;
}

/* The body copied into the channel's ring (made now if it is wanted and
 * there is none): false when it goes inline. */
static bool
ring_put(struct ipc_chan *c, const void *body, size_t len, struct ipc_ring_ref *ref)
{
	struct iovec iov = { .iov_base = (void *)body, .iov_len = len };

	if (c->ring == NULL && c->want_ring) {
		c->want_ring = false;		/* one try */
		if ((c->ring = ipc_ring_new(IPC_RING_SIZE)) == NULL)
			log_warn("channel fd %d: no shared ring; large bodies go inline", c->fd);
		else
			ipc_chan_announce(c, c->ring);
	}
	return c->ring != NULL && ipc_ring_put(c->ring, &iov, 1, ref) == 0;
}

int
ipc_chan_send(struct ipc_chan *c, uint16_t type, const void *body, size_t len, int fd)
{
	struct ipc_ring_ref ref;

	if (len > IPC_MAX_BODY || (fd != -1 && len > IPC_MAX_INLINE)) {
		if (fd != -1)
			close(fd);
		errno = EMSGSIZE;
		return -1;
	}
	if (fd == -1 && len >= IPC_RING_MIN && ring_put(c, body, len, &ref)) {
		pack(c, type, &ref, sizeof(ref), true);
		ring_account(c);
		len = 0;
	} else if (fd == -1 && len < IPC_ALONE)
		pack(c, type, body, len, false);
	else {
		if (!sent_at_once(c, type, body, len, fd))
			queue_alone(c, type, 0, body, len, fd);
		return 0;
	}
	qbytes_add(c, len);
	if (c->nq++ == 0 && c->error == 0)
		event_active(c->fev, 0, 0);	/* once this callback returns */
	return 0;
}

void
ipc_chan_adopt(struct ipc_chan *c, struct ipc_reader *r)
{
	ipc_reader_clear(&c->in);
	c->in = *r;
	memset(r, 0, sizeof(*r));
	if (ipc_reader_left(&c->in) > 0)
		event_active(c->rev, EV_READ, 0);
}

int
ipc_chan_recv(struct ipc_chan *c, struct ipc_msg *m)
{
	return ipc_recv(c->fd, &c->in, m);
}

size_t
ipc_chan_queued(const struct ipc_chan *c)
{
	return c->nq;
}

size_t
ipc_chan_queued_bytes(struct ipc_chan *c)
{
	if (c->ring != NULL && c->ring_bytes > 0)
		ring_account(c);
	return c->qbytes;
}

/* Counts the bytes queued also in *tally, which many channels may share. */
void
ipc_chan_tally(struct ipc_chan *c, uint64_t *tally)
{
	if (c->tally != NULL)
		*c->tally -= c->qbytes;
	c->tally = tally;
	if (tally != NULL)
		*tally += c->qbytes;
}

void
ipc_chan_when_below(struct ipc_chan *c, size_t low, ipc_drain_cb *cb)
{
	c->on_drain = cb;
	c->drain_low = low;
	if (c->ring != NULL && c->ring_bytes > 0)
		ring_account(c);
	if (drained(c) && c->error == 0)
		event_active(c->fev, 0, 0);
	else
		ring_check(c);
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
