/* A session's delivery socket: topicds write delivery records into one
 * end; the master reads the other only while the client can take more,
 * so a slow client pushes back on the topicds, one subscriber at a time.
 * Retained messages the master sends from its copies (retcopy.c) go at
 * the socket's turn, first. */
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/core.h"
#include "ipc.h"
#include "kvstore.h"
#include "log.h"

#define DELIVERY_BATCH 64	/* records per wake-up, for fairness */

static bool
can_take(const struct client *cl)
{
	return !client_output_full(cl) && cl->proto->can_take(cl);
}

static void
deliver_batch(struct client *cl, evutil_socket_t fd)
{
	struct ipc_msg m;

	for (int i = 0; i < DELIVERY_BATCH; i++) {
		if (!can_take(cl)) {
			event_del(cl->dev);
			cl->dev_on = false;
			return;
		}
		if (!TAILQ_EMPTY(&cl->owed)) {
			retcopy_send(cl);	/* retained messages of cold topics */
			if (cl->closing)
				return;
			continue;
		}
		int rc = ipc_recv(fd, &cl->din, &m);

		if (rc == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* All that topicds gone cold wrote is read (retcopy.c). */
			cl->drained_gen = cl->b->cold_gen;
			return;
		}
		if (rc == -1 && errno == ESTALE) {
			/* From a topicd that is gone, its ring with it: its
			 * successor sends again what was not acknowledged
			 * (a QoS 0 delivery never comes by ring). */
			log_debug("client %s: a delivery of a topicd that is gone: dropped",
			    cl->desc);
			continue;
		}
		if (rc == -1 && (errno == EMFILE || errno == ENFILE)) {
			/* The record came, its descriptor could not: dropped,
			 * and sent again as any unacknowledged delivery is. */
			log_warn("client %s: a delivery's descriptor could not be received: %s",
			    cl->desc, strerror(errno));
			continue;
		}
		if (rc == -1 && errno == EPROTO) {
			/* A topicd's bug: the record is dropped, the topicd resends on retry. */
			log_warn("client %s: bad delivery record", cl->desc);
			continue;
		}
		if (rc == -1) {
			/* The socket itself failed and nothing was taken: reading
			 * it again would fail again.  The session keeps its
			 * place; the client reconnects to a new socket. */
			log_warn("client %s: its delivery socket failed: %s", cl->desc,
			    strerror(errno));
			client_close(cl, "its delivery socket failed");
			return;
		}
		if (rc == 0)
			return;		/* cannot happen: we hold the other end */
		cl->proto->deliver(cl, &m);
		ipc_msg_clear(&m);
		if (cl->closing)
			return;
	}
	if (ipc_reader_left(&cl->din) > 0 || !TAILQ_EMPTY(&cl->owed))
		event_active(cl->dev, EV_READ, 0);	/* the rest, after others had a turn */
}

static void
on_delivery(evutil_socket_t fd, short what, void *arg)
{
	struct client *cl = arg;
	struct broker *b = cl->b;

	(void)what;
	deliver_batch(cl, fd);
	/* What the deliveries recorded (packet ids) is written before their
	 * output leaves, when this callback returns. */
	store_flush(b);
}

/* The topicds write a client's deliveries into dsock[1]: its send
 * buffer is what they may have handed over before the master takes
 * them.  The kernel's default (net.core.wmem_default, 208 KiB) holds
 * three 64 KiB messages, and a topicd then waits for the master at every
 * third: deliveries of large messages fell behind their publisher.  The
 * kernel caps the size at net.core.wmem_max; the log says so once. */
static void
size_buffer(struct client *cl)
{
	static uint64_t told;	/* the value last found capped */
	uint64_t want = cl->b->set.client_delivery_buffer;
	int sz = (int)want, got = 0;
	socklen_t len = sizeof(got);

	if (setsockopt(cl->dsock[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) == -1 ||
	    getsockopt(cl->dsock[1], SOL_SOCKET, SO_SNDBUF, &got, &len) == -1) {
		log_warn("client %s: the delivery socket's buffer", cl->desc);
		return;
	}
	/* What the kernel reports is twice the size, for its bookkeeping. */
	if ((uint64_t)got / 2 < want && told != want) {
		told = want;
		log_notice("client_delivery_buffer %" PRIu64 " is capped at %d bytes by "
		    "net.core.wmem_max: raise that (sysctl) for large messages at full rate",
		    want, got / 2);
	}
}

int
delivery_open(struct client *cl)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, cl->dsock) == -1) {
		log_warn("client %s: cannot create its delivery socket", cl->desc);
		cl->dsock[0] = cl->dsock[1] = -1;
		return -1;
	}
	size_buffer(cl);
	cl->dev = event_new(cl->b->base, cl->dsock[0], EV_READ | EV_PERSIST, on_delivery, cl);
	if (cl->dev == NULL || event_add(cl->dev, NULL) == -1)
		fatalx("cannot watch the delivery socket of client %s", cl->desc);
	cl->dev_on = true;
	return 0;
}

void
delivery_close(struct client *cl)
{
	if (cl->dev != NULL) {
		event_free(cl->dev);
		cl->dev = NULL;
	}
	for (int i = 0; i < 2; i++) {
		if (cl->dsock[i] != -1)
			close(cl->dsock[i]);
		cl->dsock[i] = -1;
	}
	ipc_reader_clear(&cl->din);
	cl->dev_on = false;
}

void
delivery_resume(struct client *cl)
{
	if (cl->dev == NULL || cl->dev_on || !can_take(cl))
		return;
	if (event_add(cl->dev, NULL) == -1)
		fatalx("cannot watch the delivery socket of client %s", cl->desc);
	cl->dev_on = true;
	if (ipc_reader_left(&cl->din) > 0 || !TAILQ_EMPTY(&cl->owed))
		event_active(cl->dev, EV_READ, 0);	/* read already, or copies */
}
