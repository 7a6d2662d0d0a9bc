/* Client connections: a bufferevent each (an OpenSSL one on a TLS
 * listener, under a WebSocket filter on a WebSocket one), handed to its
 * protocol (struct proto) once connected;
 * back-pressure on what a client sends; output held behind a store
 * ticket (gates); one close path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "core/core.h"
#include "core/wscodec.h"
#include "kvstore.h"
#include "log.h"
#include "xmalloc.h"

#define CLIENT_WRITE_MAX	(1024 * 1024)	/* bytes a client's write takes a pass */
#define CLIENT_REF_MIN		(16 * 1024)	/* a payload written by reference */
/* A retained message from the master's copy comes without a record to
 * refer to (mqtt_deliver_copy): it must be copied. */
_Static_assert(IDLE_COPY_MAX < CLIENT_REF_MIN, "copies are written by value");
#define LAST_WORDS_MAX		(256 * 1024)	/* read from a connection whose write failed */

static int
id_cmp(struct client *a, struct client *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

RB_PROTOTYPE(client_ids, client, by_id, id_cmp)
RB_GENERATE(client_ids, client, by_id, id_cmp)

struct client *
client_by_id(struct broker *b, uint64_t id)
{
	struct client key = { .id = id };

	return RB_FIND(client_ids, &b->clients, &key);
}

static void arm(struct client *, uint64_t);

static void
ungate(struct client *cl)
{
	if (cl->gate == 0)
		return;
	TAILQ_REMOVE(&cl->b->gated, cl, gate_entry);
	cl->gate = 0;
	if (bufferevent_write_buffer(cl->bev, cl->gated) == -1)
		log_warnx("client %s: cannot buffer output", cl->desc);
	evbuffer_free(cl->gated);
	cl->gated = NULL;
}

static void
client_free(struct client *cl)
{
	struct broker *b = cl->b;

	client_close(cl, "broker stopped");
	ungate(cl);
	delivery_close(cl);
	RB_REMOVE(client_ids, &b->clients, cl);
	b->nclients--;
	b->title_dirty = true;
	tls_close_notify(cl);
	ws_free(cl);
	bufferevent_free(cl->bev);		/* and the SSL, raw, with it */
	event_free(cl->idle);
	wbuf_free(&cl->farewell);
	free(cl->farewell_why);
	free(cl->ws_end_why);
	free(cl->tls_identity);
	free(cl->psk_identity);
	free(cl->psk_keyed);
	free(cl);
}

static void
on_free_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	client_free(arg);
}

/* Frees the client outside of any callback that may still use it. */
static void
free_later(struct client *cl)
{
	if (cl->freeing)
		return;
	cl->freeing = true;
	if (event_base_once(cl->b->base, -1, EV_TIMEOUT, on_free_later, cl, NULL) == -1)
		fatalx("cannot schedule the release of client %s", cl->desc);
}

/* Once its last output is out (and not waiting behind a gate), and on a
 * WebSocket the close frame after it. */
static void
free_when_flushed(struct client *cl)
{
	if (evbuffer_get_length(bufferevent_get_output(cl->bev)) == 0 && cl->gate == 0 &&
	    ws_flushed(cl)) {
		bufferevent_disable(cl->bev, EV_WRITE);
		free_later(cl);
	}
}

/* The one close path.  A connection whose protocol never started (its
 * TLS handshake did not complete) was logged by its caller. */
void
client_close(struct client *cl, const char *why)
{
	if (cl->closing)
		return;
	cl->closing = true;
	if (cl->started && cl->its_fault)
		log_notice("client %s: closed: %s", cl->desc, why);
	else if (cl->started)
		log_info("client %s: closed: %s", cl->desc, why);
	bufferevent_disable(cl->bev, EV_READ);
	evtimer_del(cl->idle);
	delivery_close(cl);
	if (cl->started)
		cl->proto->closed(cl);	/* it releases what it staged, or not */
	cl->pstate = NULL;
	owner_closed(cl, false);
	/* Else the write callback frees it once the last line is out, or
	 * on_idle when the peer has not read it within idle_timeout. */
	bufferevent_setwatermark(cl->bev, EV_WRITE, 0, 0);
	free_when_flushed(cl);
	if (!cl->freeing)
		arm(cl, cl->b->set.idle_timeout);
}

void
client_close_fault(struct client *cl, const char *why)
{
	if (!cl->closing)
		cl->its_fault = true;
	client_close(cl, why);
}

void
client_write(struct client *cl, const void *data, size_t len)
{
	if (cl->closing && !bufferevent_get_enabled(cl->bev))
		return;
	if (cl->gate != 0) {
		if (evbuffer_add(cl->gated, data, len) == -1)
			client_close(cl, "cannot buffer output");
		return;
	}
	if (bufferevent_write(cl->bev, data, len) == -1)
		client_close(cl, "cannot buffer output");
}

static void
free_kept(const void *data, size_t len, void *mem)
{
	(void)data;
	(void)len;
	free(mem);
}

/* The body of a record in a topicd's ring, once written: its slot is
 * released (data is in the body, at a distance only the record knows). */
struct ring_kept {
	struct ipc_ring_map *ring;
	const void	    *body;
};

static void
free_ring_kept(const void *data, size_t len, void *arg)
{
	struct ring_kept *k = arg;

	(void)data;
	(void)len;
	ipc_ring_release(k->ring, k->body);
	free(k);
}

/* Writes len bytes of the body of delivery record m.  A large payload in a
 * record of its own, or in a topicd's ring, is not copied: the output
 * refers to it, and frees the record's memory (or its slot) once it is
 * written. */
void
client_write_body(struct client *cl, const void *data, size_t len, struct ipc_msg *m)
{
	struct evbuffer *out;
	struct ring_kept *k;
	void *mem;

	if (len < CLIENT_REF_MIN || (cl->closing && !bufferevent_get_enabled(cl->bev)) ||
	    (const uint8_t *)data < m->body ||
	    (const uint8_t *)data + len > m->body + m->len) {
		client_write(cl, data, len);
		return;
	}
	out = cl->gate != 0 ? cl->gated : bufferevent_get_output(cl->bev);
	if ((mem = ipc_msg_take_mem(m)) != NULL) {
		if (evbuffer_add_reference(out, data, len, free_kept, mem) == -1) {
			m->mem = mem;			/* still the record's */
			client_close(cl, "cannot buffer output");
		}
		return;
	}
	if (m->ring == NULL) {
		client_write(cl, data, len);
		return;
	}
	k = xmalloc(sizeof(*k));
	k->body = m->body;
	k->ring = ipc_msg_take_ring(m);
	if (evbuffer_add_reference(out, data, len, free_ring_kept, k) == -1) {
		m->ring = k->ring;		/* still the record's */
		free(k);
		client_close(cl, "cannot buffer output");
	}
}

struct evbuffer *
client_input(struct client *cl)
{
	return bufferevent_get_input(cl->bev);
}

/* What is written to the client from now on waits until the store has
 * made ticket durable (an answer that says "stored", and everything
 * after it, in order). */
void
client_gate(struct client *cl, uint64_t ticket)
{
	if (ticket == 0 || ticket <= cl->gate || durable_reached(cl->b, ticket))
		return;
	if (cl->gate == 0) {
		if ((cl->gated = evbuffer_new()) == NULL)
			fatalx("cannot allocate a buffer");
		TAILQ_INSERT_TAIL(&cl->b->gated, cl, gate_entry);
	}
	cl->gate = ticket;
}

/* The write that clients gated on DURABLE_NEXT wait for was made: its
 * ticket is theirs now. */
void
clients_gate_next(struct broker *b, uint64_t ticket)
{
	struct client *cl;

	TAILQ_FOREACH(cl, &b->gated, gate_entry)
		if (cl->gate == DURABLE_NEXT)
			cl->gate = ticket;
}

/* The store made everything up to ticket durable: gates open. */
void
clients_ungate(struct broker *b, uint64_t durable)
{
	struct client *cl, *next;

	TAILQ_FOREACH_SAFE(cl, &b->gated, gate_entry, next) {
		if (cl->gate > durable)
			continue;
		ungate(cl);
		if (cl->closing) {
			free_when_flushed(cl);
			continue;
		}
		delivery_resume(cl);
		client_throttle(cl);
	}
}

/*
 * Back-pressure on what a client sends: while max_client_pending of its
 * requests wait for a topicd, or one of its publishes waits for room in
 * its topic (held.c), or its answers pile up above client_output_limit
 * because it does not read them, the broker stops reading from it (TCP
 * pushes back on the client); it reads again, and handles what is
 * buffered, once below.
 */
bool
client_throttled(const struct client *cl)
{
	if (cl->last_words)
		return false;
	return cl->refusing || cl->pending >= cl->b->set.max_client_pending || cl->nstalled > 0 ||
	    client_output_full(cl);
}

bool
client_output_full(const struct client *cl)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(cl->bev)) + ws_pending(cl);

	if (cl->gated != NULL)
		n += evbuffer_get_length(cl->gated);
	return n >= cl->b->set.client_output_limit;
}

/* What a protocol recorded in the store while handling its requests
 * (packet ids, QoS 2 state) is written before its answers leave, when the
 * callback returns: it survives the death of any process. */
static void
flush_store(struct broker *b)
{
	sessions_put_linked(b);
	store_flush(b);
}

/* The end of its WebSocket: a broken rule is the client's fault. */
static void
ws_close(struct client *cl, const char *why, bool fault)
{
	if (fault)
		client_close_fault(cl, why);
	else
		client_close(cl, why);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;

	(void)bev;
	if (!cl->started)
		return;
	if (!cl->closing && !client_throttled(cl))
		cl->proto->read(cl);
	client_throttle(cl);
	flush_store(cl->b);
	/* Its WebSocket ended behind requests, all handled now. */
	if (cl->ws_end_why != NULL && !cl->closing &&
	    evbuffer_get_length(bufferevent_get_input(cl->bev)) == 0)
		ws_close(cl, cl->ws_end_why, cl->ws_end_fault);
}

void
client_throttle(struct client *cl)
{
	bool stop = client_throttled(cl);

	if (cl->closing || stop == cl->throttled)
		return;
	cl->throttled = stop;
	if (stop) {
		bufferevent_disable(cl->bev, EV_READ);
		return;
	}
	if (bufferevent_enable(cl->bev, EV_READ) == -1)
		fatalx("cannot enable client %s", cl->desc);
	/* What is buffered already is read from the loop, not from here:
	 * this runs inside the pump of a topic's held requests, which the
	 * client's publishes would pump again. */
	bufferevent_trigger(cl->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;

	(void)bev;
	if (cl->closing) {
		free_when_flushed(cl);
		return;
	}
	if (!cl->started)
		return;
	delivery_resume(cl);
	client_throttle(cl);
}

/* The protocol starts: at once on a plain connection, after the
 * handshake on a TLS one, after the upgrade on a WebSocket. */
static void
client_start(struct client *cl)
{
	char tls[192] = "", ws[160] = "";

	cl->handshaking = false;
	cl->started = true;
	if (cl->ssl != NULL)
		tls_describe(cl, tls, sizeof(tls));
	if (cl->ws != NULL)
		ws_describe(cl, ws, sizeof(ws));
	log_info("client %s: connected (%s%s%s%s%s)", cl->desc, cl->proto->name,
	    ws[0] != '\0' ? " over " : "", ws, tls[0] != '\0' ? " over " : "", tls);
	cl->proto->start(cl);
}

/* A WebSocket connection past its TLS handshake, if any: its upgrade is
 * what the handshake waits for. */
static bool
upgrading(const struct client *cl)
{
	return cl->ws != NULL && (cl->ssl == NULL || cl->tls_done);
}

/* A TLS handshake or WebSocket upgrade that did not complete: one line,
 * counted (TLS), closed. */
static void
handshake_failed(struct client *cl, const char *why, bool plain)
{
	if (upgrading(cl)) {
		log_notice("client %s: WebSocket handshake failed on port %u: %s", cl->desc,
		    cl->listener->port, why);
		client_close(cl, why);
		return;
	}
	if (plain)
		log_notice("client %s: plain text on TLS port %u: closed", cl->desc,
		    cl->listener->port);
	else if (cl->psk_identity != NULL && !cl->psk_known)
		log_notice("client %s: TLS handshake failed on port %u: unknown pre-shared key"
		    " identity %s", cl->desc, cl->listener->port, cl->psk_identity);
	else if (cl->psk_identity != NULL)
		log_notice("client %s: TLS handshake failed on port %u: %s (pre-shared key"
		    " identity %s)", cl->desc, cl->listener->port, why, cl->psk_identity);
	else
		log_notice("client %s: TLS handshake failed on port %u: %s", cl->desc,
		    cl->listener->port, why);
	cl->b->tls_failures++;
	client_close(cl, why);
}

/* The TLS handshake's end: done, or an error (EOF or ERROR). */
static void
on_handshake_event(struct client *cl, short what)
{
	char why[256];
	const char *bad;
	bool plain = false;

	if (what & BEV_EVENT_CONNECTED) {
		if (tls_handshake_done(cl, &bad) == -1) {
			handshake_failed(cl, bad, false);
			return;
		}
		cl->tls_done = true;
		if (cl->ws != NULL)
			return;		/* the upgrade follows, within the same time */
		client_disarm_idle(cl);
		client_start(cl);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (upgrading(cl) && !ws_heard(cl)) {
		log_info("client %s: disconnected before a WebSocket upgrade", cl->desc);
		client_close(cl, "disconnected");
		return;
	}
	if (cl->ssl == NULL) {
		handshake_failed(cl, what & BEV_EVENT_EOF ? "the client closed the connection" :
		    strerror(EVUTIL_SOCKET_ERROR()), false);
		return;
	}
	tls_error_text(cl, what, why, sizeof(why), &plain);
	if (why[0] == '\0') {		/* gone before it sent a byte: not a handshake */
		log_info("client %s: disconnected before a TLS handshake", cl->desc);
		client_close(cl, "disconnected");
		return;
	}
	handshake_failed(cl, why, plain);
}

/* The connection ends (a write failed, the client closed its WebSocket)
 * with what the client sent last not yet handled: its DISCONNECT, say,
 * which must cancel its will.  The master held back its reading (its
 * output over client_output_limit, max_client_pending of its publishes
 * waiting), or had not come to it.  It is handed to the protocol first,
 * whatever held it back: the bytes are already here, and the connection
 * closes after them.  Not for a client being refused. */
static void
hear_last_words(struct client *cl)
{
	if (!cl->started || cl->closing || cl->refusing)
		return;
	cl->last_words = true;
	if (evbuffer_get_length(bufferevent_get_input(cl->bev)) > 0)
		cl->proto->read(cl);
}

/* A write failed (ECONNRESET: the client closed with deliveries unread,
 * and its kernel answered them with a reset) before libevent read what
 * the client sent last, which the socket still holds: read, up to
 * LAST_WORDS_MAX (over TLS, through OpenSSL), and heard. */
static void
read_last_words(struct client *cl)
{
	int saved = errno;	/* what the write met, for the log */
	size_t total = 0;
	ssize_t n;

	if (!cl->started || cl->closing || cl->refusing)
		return;
	if (cl->ssl != NULL)
		(void)tls_read_rest(cl, LAST_WORDS_MAX);
	else
		while (total < LAST_WORDS_MAX && (n = client_read_more(cl, LAST_WORDS_MAX)) > 0)
			total += (size_t)n;
	hear_last_words(cl);
	errno = saved;
}

/* The connection ended (what: BEV_EVENT_EOF or BEV_EVENT_ERROR). */
static void
close_ended(struct client *cl, struct bufferevent *bev, short what)
{
	char why[256];
	bool plain;

	if (what & BEV_EVENT_EOF)
		client_close(cl, evbuffer_get_length(bufferevent_get_input(bev)) ?
		    "disconnected in the middle of a request" : "disconnected");
	else if (what & BEV_EVENT_ERROR && cl->ssl != NULL) {
		tls_error_text(cl, what, why, sizeof(why), &plain);
		client_close(cl, why[0] != '\0' ? why : "connection lost");
	} else if (what & BEV_EVENT_ERROR)
		client_close(cl, strerror(EVUTIL_SOCKET_ERROR()));
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *cl = arg;

	if (cl->closing) {
		if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
			bufferevent_disable(cl->bev, EV_WRITE);
			free_later(cl);
		}
		return;
	}
	if (cl->handshaking) {
		on_handshake_event(cl, what);
		return;
	}
	/* A failed write: an error, or over TLS an end too (a dirty
	 * shutdown, which the bufferevent is told to allow).  What the client
	 * sent last may close it (a DISCONNECT). */
	if (what & BEV_EVENT_WRITING && what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		read_last_words(cl);
	if (!cl->closing)
		close_ended(cl, bev, what);
	/* libevent stops writing to a connection whose write failed (a client
	 * that is not read from learns that it is gone this way) or, over TLS,
	 * that failed at all: what it was still owed cannot go out. */
	if (cl->closing && !(bufferevent_get_enabled(cl->raw) & EV_WRITE))
		free_later(cl);
}

static void
on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct client *cl = arg;
	char why[96];

	(void)fd;
	(void)what;
	if (cl->closing) {		/* it does not read what it is owed */
		log_info("client %s: output not read within idle_timeout: dropped", cl->desc);
		bufferevent_disable(cl->bev, EV_WRITE);
		free_later(cl);
		return;
	}
	if (cl->refusing) {
		client_write(cl, cl->farewell.data, cl->farewell.len);
		client_close(cl, cl->farewell_why);
		return;
	}
	if (cl->handshaking) {		/* TLS, or a WebSocket's upgrade */
		snprintf(why, sizeof(why), "not completed within tls_handshake_timeout (%.3g s)",
		    (double)cl->b->set.tls_handshake_timeout / 1000);
		handshake_failed(cl, why, false);
		return;
	}
	cl->proto->idle(cl);
}

static void
arm(struct client *cl, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (evtimer_add(cl->idle, &tv) == -1)
		fatalx("cannot arm the timer of client %s", cl->desc);
}

/* While a refusal waits, the timer is its own. */
void
client_arm_idle(struct client *cl, uint64_t ms)
{
	if (!cl->refusing)
		arm(cl, ms);
}

void
client_disarm_idle(struct client *cl)
{
	if (!cl->refusing)
		evtimer_del(cl->idle);
}

void
client_refuse(struct client *cl, uint64_t delay_ms, const void *answer, size_t len,
    const char *why)
{
	if (cl->closing || cl->refusing)
		return;
	if (delay_ms == 0) {
		client_write(cl, answer, len);
		client_close(cl, why);
		return;
	}
	cl->refusing = true;
	client_throttle(cl);		/* nothing more is read */
	wbuf_reset(&cl->farewell);
	put_raw(&cl->farewell, answer, len);
	cl->farewell_why = xstrdup(why);
	arm(cl, delay_ms);
}

uint64_t
client_login_failed(struct client *cl, const char *user, const char *why)
{
	struct broker *b = cl->b;
	uint64_t delay = auth_failures_note(b->auth_failures, cl->addr, mono_ms());

	b->logins_failed++;
	log_notice("client %s: login failed for user %.64s: %s; answered in %llu ms", cl->desc,
	    user != NULL ? user : "(none)", why, (unsigned long long)delay);
	return delay;
}

bool
client_idle_armed(const struct client *cl)
{
	return evtimer_pending(cl->idle, NULL) != 0;
}

/* "ADDRESS:PORT" -> "ADDRESS" */
static void
address_of(const char *desc, char *addr, size_t len)
{
	const char *colon = strrchr(desc, ':');
	size_t n = colon != NULL ? (size_t)(colon - desc) : strlen(desc);

	snprintf(addr, len, "%.*s", (int)n, desc);
}

/* A peer that vanished (its host down, the network cut) sends no FIN: a
 * JSON-lines consumer would hold its user name, which a second
 * connection may not log in with, for as long as TCP has nothing to send.
 * Probes after idle seconds of silence, 4 of them, a quarter of that
 * apart, find it gone. */
static void
keepalive(int fd, unsigned idle, const char *desc)
{
	int on = idle > 0, cnt = 4, secs = (int)idle, intvl = secs / 4 > 0 ? secs / 4 : 1;

	/* Off too: the listening socket may have it on (libevent's does). */
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == -1) {
		log_warn("client %s: SO_KEEPALIVE", desc);
		return;
	}
	if (idle == 0)
		return;
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) == -1)
		log_warn("client %s: TCP keep-alive", desc);
}

void
client_new(struct listener *l, int fd, const char *desc)
{
	struct broker *b = l->b;
	struct client *cl = xcalloc(1, sizeof(*cl));
	int one = 1;

	cl->b = b;
	cl->id = ++b->next_client_id;
	cl->proto = l->proto;
	cl->listener = l;
	cl->port = (int)l->port;
	cl->auth = l->auth;
	cl->dsock[0] = cl->dsock[1] = -1;
	wbuf_init(&cl->farewell);
	snprintf(cl->desc, sizeof(cl->desc), "%s", desc);
	address_of(desc, cl->addr, sizeof(cl->addr));
	TAILQ_INIT(&cl->attached);
	TAILQ_INIT(&cl->owed);
	RB_INIT(&cl->attached_ix);
	TAILQ_INIT(&cl->shared);
	/* Requests are small and answered one by one: no Nagle delay. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_warn("client %s: TCP_NODELAY", desc);
	keepalive(fd, b->set.tcp_keepalive, desc);
	if (l->tls != NULL)
		cl->raw = tls_bufferevent(cl, fd);
	else
		cl->raw = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	/* libevent writes at most 16 KiB a pass by default: a 64 KiB PUBLISH
	 * to a subscriber took four passes of epoll_wait and writev. */
	if (cl->raw != NULL && bufferevent_set_max_single_write(cl->raw, CLIENT_WRITE_MAX) == -1)
		log_warnx("client %s: cannot raise the write size", desc);
	cl->bev = cl->raw != NULL && l->websocket ? ws_bufferevent(cl, cl->raw) : cl->raw;
	cl->idle = evtimer_new(b->base, on_idle, cl);
	if (cl->bev == NULL || cl->idle == NULL)
		fatalx("cannot set up client %s", desc);
	bufferevent_setcb(cl->bev, on_read, on_write, on_event, cl);
	bufferevent_setwatermark(cl->bev, EV_WRITE, b->set.client_output_limit / 2, 0);
	if (bufferevent_enable(cl->bev, EV_READ | EV_WRITE) == -1)
		fatalx("cannot enable client %s", desc);
	RB_INSERT(client_ids, &b->clients, cl);
	b->nclients++;
	b->title_dirty = true;
	if (cl->ssl == NULL && cl->ws == NULL) {
		client_start(cl);
		return;
	}
	cl->handshaking = true;		/* bounded in time: on_idle */
	client_arm_idle(cl, b->set.tls_handshake_timeout);
}

void
client_upgraded(struct client *cl)
{
	if (cl->closing || !cl->handshaking)
		return;
	client_disarm_idle(cl);
	client_start(cl);
	/* Frames sent with the request, before the answer, wait in the input. */
	bufferevent_trigger(cl->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
}

void
client_ws_ended(struct client *cl, const char *why, bool fault)
{
	if (cl->closing)
		return;		/* its close frame follows what it is owed */
	if (cl->handshaking) {
		handshake_failed(cl, why, false);
		return;
	}
	/* What came before the close frame (MQTT.js and browsers send
	 * DISCONNECT, then close) is handled first, as a TCP client's
	 * requests before its FIN are: at the pace its reading is let
	 * (on_read closes it after them). */
	if (cl->started && evbuffer_get_length(bufferevent_get_input(cl->bev)) > 0) {
		if (cl->ws_end_why == NULL) {
			cl->ws_end_why = xstrdup(why);
			cl->ws_end_fault = fault;
		}
		bufferevent_trigger(cl->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
		return;
	}
	ws_close(cl, why, fault);
}

/* The broker stops: what a plain client is still owed (the packet that
 * says why it is closed) goes out if its socket takes it now, without
 * waiting. */
static void
last_write(struct client *cl)
{
	struct evbuffer *out = bufferevent_get_output(cl->raw);
	evutil_socket_t fd = bufferevent_getfd(cl->raw);

	/* Bytes written past TLS would break its stream: not on TLS. */
	if (cl->gate != 0 || cl->ssl != NULL || fd < 0)
		return;
	ws_flush_now(cl);		/* frames, then the close frame */
	if (evbuffer_get_length(out) == 0)
		return;
	/* A socket bufferevent keeps the start of its output frozen: only its
	 * own write takes from there, and it is about to be freed. */
	(void)evbuffer_unfreeze(out, 1);
	if (evbuffer_write(out, fd) == -1)
		log_debug("client %s: last output not written: %s", cl->desc,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

void
clients_free_all(struct broker *b)
{
	struct client *cl;

	while ((cl = RB_MIN(client_ids, &b->clients)) != NULL) {
		last_write(cl);
		client_free(cl);
	}
}

void
clients_each(struct broker *b, void (*fn)(struct client *))
{
	struct client *cl;

	RB_FOREACH(cl, client_ids, &b->clients)
		fn(cl);
}

void
clients_close_all(struct broker *b)
{
	struct client *cl;

	RB_FOREACH(cl, client_ids, &b->clients) {
		ws_set_close(cl, WS_CLOSE_GOING_AWAY);
		if (cl->proto->stopping != NULL && !cl->closing)
			cl->proto->stopping(cl);
		else
			client_close(cl, "broker shutting down");
	}
}

/* Shutdown: no new requests; answers and deliveries still go out.  A
 * TLS handshake in progress has nothing to finish. */
void
clients_stop_reading(struct broker *b)
{
	struct client *cl;

	RB_FOREACH(cl, client_ids, &b->clients) {
		if (cl->handshaking) {
			client_close(cl, "broker shutting down");
			continue;
		}
		bufferevent_disable(cl->bev, EV_READ);
		evtimer_del(cl->idle);
	}
}
