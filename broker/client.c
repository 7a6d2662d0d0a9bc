/* Client connections: a bufferevent each, lines framed and bounded here,
 * handed to the protocol; one close path. */
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

#include "broker.h"
#include "json_codec.h"
#include "log.h"
#include "xmalloc.h"


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
	bufferevent_free(cl->bev);
	event_free(cl->idle);
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

void
client_close(struct client *cl, const char *why)
{
	if (cl->closing)
		return;
	cl->closing = true;
	log_info("client %s%s%s: closed: %s", cl->desc, cl->username ? " user " : "",
	    cl->username ? cl->username : "", why);
	bufferevent_disable(cl->bev, EV_READ);
	evtimer_del(cl->idle);
	delivery_close(cl);
	switch (cl->kind) {
	case CL_JSON_CONSUMER:	json_cons_closed(cl); break;
	case CL_JSON_PUBLISHER:	json_pub_closed(cl); break;
	case CL_MQTT:		mqtt_closed(cl); break;
	}
	if (evbuffer_get_length(bufferevent_get_output(cl->bev)) == 0 && cl->gate == 0) {
		bufferevent_disable(cl->bev, EV_WRITE);
		free_later(cl);
	} else {
		/* The write callback frees it once the last line is out (after
		 * its gate opens, if it waits for the store). */
		bufferevent_setwatermark(cl->bev, EV_WRITE, 0, 0);
	}
}

void
client_write(struct client *cl, const struct wbuf *w)
{
	if (cl->closing && !bufferevent_get_enabled(cl->bev))
		return;
	if (cl->gate != 0) {
		if (evbuffer_add(cl->gated, w->data, w->len) == -1)
			client_close(cl, "cannot buffer output");
		return;
	}
	if (bufferevent_write(cl->bev, w->data, w->len) == -1)
		client_close(cl, "cannot buffer output");
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

/* The store made durable up to ticket durable: gates open. */
void
clients_ungate(struct broker *b, uint64_t durable)
{
	struct client *cl, *next;

	TAILQ_FOREACH_SAFE(cl, &b->gated, gate_entry, next) {
		if (cl->gate > durable)
			continue;
		ungate(cl);
		if (cl->closing) {
			if (evbuffer_get_length(bufferevent_get_output(cl->bev)) == 0) {
				bufferevent_disable(cl->bev, EV_WRITE);
				free_later(cl);
			}
			continue;
		}
		delivery_resume(cl);
		client_throttle(cl);
	}
}

void
client_line(struct client *cl, const char *text)
{
	struct wbuf w;

	wbuf_init(&w);
	jl_enc_text(&w, text);
	client_write(cl, &w);
	wbuf_free(&w);
}

/* The original broker sent ERROR only when it closed the connection;
 * a bad request gets UNKNOWN COMMAND instead (json_unknown()). */
void
client_error(struct client *cl, const char *text)
{
	struct wbuf w;

	if (cl->closing)
		return;
	wbuf_init(&w);
	jl_enc_error(&w, text);
	client_write(cl, &w);
	wbuf_free(&w);
	client_close(cl, text);		/* frees it once the line is out */
}

static void
dispatch_line(struct client *cl, const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (cl->kind == CL_JSON_CONSUMER)
		json_cons_line(cl, line, len);
	else
		json_pub_line(cl, line, len);
}

/* A line over message_size_limit: its start is dead-lettered, and the
 * connection ends (ERROR), since what follows cannot be trusted to be
 * the start of a line. */
static void
oversized(struct client *cl, struct evbuffer *in, size_t have)
{
	size_t keep = have < 1024 ? have : 1024;
	const uint8_t *p = evbuffer_pullup(in, (ssize_t)keep);

	dlq_bad_input(cl, "oversized", NULL, p, keep);
	client_error(cl, "line too long (message_size_limit)");
}

/* A line's length without its end (LF, or CRLF: the CR does not count
 * towards message_size_limit). */
static size_t
line_length(struct evbuffer *in, const struct evbuffer_ptr *p)
{
	char cr = 0;
	struct evbuffer_ptr before;

	if (p->pos == 0 || evbuffer_ptr_set(in, &before, (size_t)p->pos - 1, EVBUFFER_PTR_SET) == -1 ||
	    evbuffer_copyout_from(in, &before, &cr, 1) != 1)
		return (size_t)p->pos;
	return (size_t)p->pos - (cr == '\r');
}

static void
read_lines(struct client *cl)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	size_t limit = cl->b->set.message_size_limit, eol;

	while (!cl->closing && !client_throttled(cl)) {
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_LF);
		size_t have = evbuffer_get_length(in);

		/* Without its end yet, a line may still get a CR before the LF. */
		if (p.pos == -1 ? have > limit + 1 : line_length(in, &p) > limit) {
			oversized(cl, in, p.pos == -1 ? have : (size_t)p.pos);
			evbuffer_drain(in, have);
			return;
		}
		if (p.pos == -1)
			return;
		dispatch_line(cl, (const char *)evbuffer_pullup(in, p.pos + 1), (size_t)p.pos);
		evbuffer_drain(in, (size_t)p.pos + 1);
	}
}

/* The idle timer runs while half a line waits (or, for consumers, until
 * they log in): a client that stalls there is closed. */
static void
update_idle(struct client *cl)
{
	bool waiting = evbuffer_get_length(bufferevent_get_input(cl->bev)) > 0 ||
	    (cl->kind == CL_JSON_CONSUMER && cl->username == NULL);
	uint64_t ms = cl->b->set.idle_timeout;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (cl->closing)
		return;
	if (!waiting)
		evtimer_del(cl->idle);
	else if (!evtimer_pending(cl->idle, NULL))
		evtimer_add(cl->idle, &tv);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;

	(void)bev;
	if (cl->kind == CL_MQTT)
		mqtt_read(cl);
	else {
		read_lines(cl);
		update_idle(cl);
	}
	client_throttle(cl);
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
	return cl->pending >= cl->b->set.max_client_pending || cl->nstalled > 0 ||
	    client_output_full(cl);
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
	on_read(cl->bev, cl);		/* what is buffered already */
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;

	if (cl->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && cl->gate == 0) {
			bufferevent_disable(bev, EV_WRITE);
			free_later(cl);
		}
		return;
	}
	delivery_resume(cl);
	client_throttle(cl);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *cl = arg;

	(void)bev;
	if (cl->closing) {
		if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
			bufferevent_disable(cl->bev, EV_WRITE);
			free_later(cl);
		}
		return;
	}
	if (what & BEV_EVENT_EOF)
		client_close(cl, evbuffer_get_length(bufferevent_get_input(cl->bev)) ?
		    "disconnected in the middle of a line" : "disconnected");
	else if (what & BEV_EVENT_ERROR)
		client_close(cl, strerror(EVUTIL_SOCKET_ERROR()));
}

static void
on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct client *cl = arg;

	(void)fd;
	(void)what;
	if (cl->kind == CL_MQTT)
		client_close(cl, !cl->connected ? "no CONNECT within idle_timeout" :
		    cl->keepalive_ms ? "keep-alive expired" : "half a packet for longer than idle_timeout");
	else
		client_close(cl, cl->username == NULL && cl->kind == CL_JSON_CONSUMER ?
		    "no login within idle_timeout" : "half a line for longer than idle_timeout");
}

bool
client_output_full(const struct client *cl)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(cl->bev));

	if (cl->gated != NULL)
		n += evbuffer_get_length(cl->gated);
	return n >= cl->b->set.client_output_limit;
}

void
client_new(struct broker *b, int fd, enum client_kind kind, const char *desc, int port)
{
	struct client *cl = xcalloc(1, sizeof(*cl));
	int one = 1;

	cl->b = b;
	cl->id = ++b->next_client_id;
	cl->kind = kind;
	cl->port = port;
	cl->dsock[0] = cl->dsock[1] = -1;
	snprintf(cl->desc, sizeof(cl->desc), "%s", desc);
	TAILQ_INIT(&cl->attached);
	/* Lines are small and answered one by one: no Nagle delay. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_warn("client %s: TCP_NODELAY", desc);
	cl->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
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
	log_info("client %s: connected (%s)", desc, kind == CL_MQTT ? "MQTT" :
	    kind == CL_JSON_CONSUMER ? "JSON-lines consumer" : "JSON-lines publisher");
	if (kind == CL_MQTT) {
		mqtt_start(cl);
		return;
	}
	if (kind == CL_JSON_CONSUMER)
		json_cons_start(cl);
	update_idle(cl);
}

void
clients_free_all(struct broker *b)
{
	struct client *cl;

	while ((cl = RB_MIN(client_ids, &b->clients)) != NULL)
		client_free(cl);
}

void
clients_close_all(struct broker *b)
{
	struct client *cl;

	RB_FOREACH(cl, client_ids, &b->clients)
		client_close(cl, "broker shutting down");
}

/* Shutdown: no new requests; answers and deliveries still go out. */
void
clients_stop_reading(struct broker *b)
{
	struct client *cl;

	RB_FOREACH(cl, client_ids, &b->clients) {
		bufferevent_disable(cl->bev, EV_READ);
		evtimer_del(cl->idle);
	}
}
