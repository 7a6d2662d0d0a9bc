/* MQTT over WebSockets on a client connection (RFC 6455, the server's
 * side): a libevent filter bufferevent over the connection's own (the
 * socket's, or TLS's), so that the protocol reads and writes plain bytes
 * as on any connection, the way TLS is layered.  The input filter reads
 * the HTTP upgrade request and answers it, then unmasks the payload of
 * the client's frames into the protocol's input, answers pings, and notes
 * a close or a broken rule; the output filter puts what the protocol
 * writes into binary frames, the writes of a pass of the loop gathered
 * into one.  The pure part (the request, frames) is wscodec.c.
 *
 * What libevent 2.1's filter does not do for us:
 * - it moves output into the connection's bufferevent as soon as it is
 *   written (the underlying's write high-water mark, which would stop it,
 *   is not set: the frames would wait in the filter in pieces), so what
 *   a client has not read is there: ws_pending() counts it for
 *   client_output_limit, and a callback on that buffer tells the client
 *   when it drains (the filter runs the client's write callback only when
 *   it framed something);
 * - its callbacks ignore what a filter returns: a refused upgrade, a close
 *   or a broken rule reach the client through an event of ours
 *   (client_upgraded(), client_ws_ended()), after the bytes read before
 *   them were handed to the protocol.
 * Reading needs nothing more: disabling the filter's reading (a throttled
 * client) suspends the socket's, and the input filter takes all the
 * socket gave each time it runs, so nothing is left behind in the
 * underlying input (client_read_more() has the filter take what it read
 * at once, reading on or not). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/core.h"
#include "core/wscodec.h"
#include "log.h"
#include "xmalloc.h"

#define WS_HEADERS_DEFAULT	4096	/* websockets_headers_size 0 */
#define WS_GATHER		(64 * 1024)	/* output framed at once from this size */
/* A frame: message_size_limit and this, more than the largest MQTT packet
 * the broker takes adds to its payload (a topic and properties of 64 KiB
 * each, a header: mqtt_max_packet_in()). */
#define WS_FRAME_SLACK		(192 * 1024)
#define WS_ANSWER_MAX		512	/* of an answer to the upgrade request */

enum ws_state { WS_UPGRADING, WS_OPEN, WS_REFUSED };

struct ws_conn {
	struct client	*cl;		/* NULL once the client is freed */
	struct bufferevent *bev;	/* the filter: cl->bev */
	struct bufferevent *raw;	/* the connection's own, under it: cl->raw */
	struct evbuffer_cb_entry *drain_cb;
	enum ws_state	 state;
	bool		 heard;		/* a byte came */
	char		*head;		/* the request head so far */
	size_t		 head_max, nhead, scanned;
	char		 path[WS_PATH_MAX + 1];
	struct ws_rx	 rx;
	/* The end: the client closed, or broke a rule (input is ignored
	 * from then on); why, for the log; the close frame's code (-1: not
	 * chosen, 1000; 0: a close without a code, as the client's was). */
	bool		 ended;
	bool		 broke_rule;	/* ... for what the client sent: a notice */
	char		 why[256];
	int		 close_code;
	bool		 close_sent;
	bool		 flushing;	/* frame what waits, whatever its size */
	struct event	*flush_ev;	/* frames what a pass of the loop wrote */
	struct event	*notify_ev;	/* tells the client: upgraded, ended */
	bool		 tell_upgraded, tell_ended;
};

static size_t
headers_max(const struct broker *b)
{
	return b->set.websockets_headers_size != 0 ? (size_t)b->set.websockets_headers_size :
	    WS_HEADERS_DEFAULT;
}

static void
notify(struct ws_conn *ws)
{
	event_active(ws->notify_ev, EV_TIMEOUT, 0);
}

static void
on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct ws_conn *ws = arg;

	(void)fd;
	(void)what;
	if (ws->cl != NULL && ws->tell_upgraded) {
		ws->tell_upgraded = false;
		client_upgraded(ws->cl);
	}
	if (ws->cl != NULL && ws->tell_ended) {
		ws->tell_ended = false;
		client_ws_ended(ws->cl, ws->why, ws->broke_rule);
	}
}

/* The connection ends for why, and its close frame is to carry code. */
static void
end(struct ws_conn *ws, int code, const char *fmt, ...)
{
	va_list ap;

	if (ws->ended)
		return;
	ws->ended = true;
	ws->close_code = code;
	va_start(ap, fmt);
	vsnprintf(ws->why, sizeof(ws->why), fmt, ap);
	va_end(ap);
	ws->tell_ended = true;
	notify(ws);
}

static void
send_frame(struct ws_conn *ws, uint8_t opcode, const void *payload, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(ws->raw);
	uint8_t head[WS_HEAD_MAX];

	if (evbuffer_add(out, head, ws_frame_write(head, opcode, n)) == -1 ||
	    evbuffer_add(out, payload, n) == -1)
		log_warnx("client %s: cannot buffer a WebSocket frame", ws->cl->desc);
}

static void
send_close(struct ws_conn *ws)
{
	uint8_t payload[WS_CONTROL_MAX];
	int code = ws->close_code < 0 ? WS_CLOSE_NORMAL : ws->close_code;

	send_frame(ws, WS_OP_CLOSE, payload, ws_close_payload(payload, (uint16_t)code, NULL));
	ws->close_sent = true;
}

/* n bytes of src into one binary frame on dst, without copying them. */
static int
frame_out(struct evbuffer *dst, struct evbuffer *src, size_t n)
{
	uint8_t head[WS_HEAD_MAX];

	if (evbuffer_add(dst, head, ws_frame_write(head, WS_OP_BINARY, n)) == -1 ||
	    evbuffer_remove_buffer(src, dst, n) != (int)n)
		return -1;
	return 0;
}

/* ------------------------------------------------------------- upgrade */

/* The answer is on its way: the connection goes on, or ends. */
static void
upgraded(struct ws_conn *ws, const struct ws_request *r)
{
	if (r->status != WS_SWITCHING) {
		ws->state = WS_REFUSED;
		end(ws, 0, "%s; answered %d", r->why, (int)r->status);
		return;
	}
	ws->state = WS_OPEN;
	memcpy(ws->path, r->path, sizeof(ws->path));
	ws_rx_init(&ws->rx, ws->cl->b->set.message_size_limit + WS_FRAME_SLACK);
	ws->tell_upgraded = true;
	notify(ws);
}

/* Takes the request head from src, up to websockets_headers_size; once
 * it is whole (or too large), answers it.  Bytes after it (frames sent
 * without waiting for the answer) go back to src. */
static void
upgrade(struct ws_conn *ws, struct evbuffer *src)
{
	struct ws_request r;
	char answer[WS_ANSWER_MAX];
	size_t end_at, alen;
	int n;

	if (ws->head == NULL) {
		ws->head_max = headers_max(ws->cl->b);
		ws->head = xmalloc(ws->head_max);
	}
	if ((n = evbuffer_remove(src, ws->head + ws->nhead, ws->head_max - ws->nhead)) > 0)
		ws->nhead += (size_t)n;
	end_at = ws_head_end((const uint8_t *)ws->head, ws->nhead, &ws->scanned);
	if (end_at == 0 && ws->nhead < ws->head_max)
		return;
	if (end_at == 0)
		ws_request_too_large(&r);
	else
		ws_request_read(ws->head, end_at, &r);
	if (r.status == WS_SWITCHING && end_at < ws->nhead &&
	    evbuffer_prepend(src, ws->head + end_at, ws->nhead - end_at) == -1)
		fatalx("cannot buffer input of client %s", ws->cl->desc);
	free(ws->head);
	ws->head = NULL;
	if ((alen = ws_response(&r, answer, sizeof(answer))) == 0) {
		ws->state = WS_REFUSED;
		end(ws, 0, "the answer to the upgrade cannot be made");
		return;
	}
	if (bufferevent_write(ws->raw, answer, alen) == -1)
		log_warnx("client %s: cannot buffer the answer to the upgrade", ws->cl->desc);
	upgraded(ws, &r);
}

/* -------------------------------------------------------------- frames */

/* What the reader stopped for. */
static void
control(struct ws_conn *ws, const struct ws_rx_out *o)
{
	switch (o->ev) {
	case WS_RX_PING:
		if (!ws->close_sent)
			send_frame(ws, WS_OP_PONG, o->ctl, o->ctl_len);
		break;
	case WS_RX_CLOSE:
		if (o->code != 0)
			end(ws, o->code, "the client closed its WebSocket (%u)", (unsigned)o->code);
		else
			end(ws, 0, "the client closed its WebSocket (no code)");
		break;
	case WS_RX_FAIL:
		ws->broke_rule = true;
		end(ws, o->code, "WebSocket: %s (closed with %u)", o->why, (unsigned)o->code);
		break;
	case WS_RX_PONG:
	case WS_RX_MORE:
		break;
	}
}

/* The payload of the frames in src, unmasked, into dst. */
static enum bufferevent_filter_result
frames(struct ws_conn *ws, struct evbuffer *src, struct evbuffer *dst)
{
	struct evbuffer_iovec in[4], out;
	struct ws_rx_out o;
	size_t room, used, off;
	int nin;

	while (!ws->ended && evbuffer_get_length(src) > 0) {
		nin = evbuffer_peek(src, -1, NULL, in, 4);
		nin = nin < 4 ? nin : 4;
		room = 0;
		for (int i = 0; i < nin; i++)
			room += in[i].iov_len;
		if (evbuffer_reserve_space(dst, (ev_ssize_t)room, &out, 1) != 1)
			return BEV_ERROR;
		out.iov_len = 0;
		used = 0;
		for (int i = 0; i < nin && !ws->ended; i++, used += off)
			for (off = 0; off < in[i].iov_len && !ws->ended; off += o.used) {
				ws_rx_feed(&ws->rx, (const uint8_t *)in[i].iov_base + off,
				    in[i].iov_len - off, (uint8_t *)out.iov_base + out.iov_len, &o);
				out.iov_len += o.len;
				control(ws, &o);
			}
		if (evbuffer_commit_space(dst, &out, 1) == -1)
			return BEV_ERROR;
		evbuffer_drain(src, used);
	}
	if (ws->ended)
		evbuffer_drain(src, evbuffer_get_length(src));
	return BEV_OK;
}

static enum bufferevent_filter_result
ws_in(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct ws_conn *ws = arg;

	(void)limit;
	(void)mode;
	if (ws->cl != NULL && !ws->ended && evbuffer_get_length(src) > 0) {
		ws->heard = true;
		if (ws->state == WS_UPGRADING)
			upgrade(ws, src);
		if (ws->state == WS_OPEN)
			return frames(ws, src, dst);
		if (ws->state == WS_UPGRADING)
			return BEV_NEED_MORE;	/* src was taken into the head */
	}
	evbuffer_drain(src, evbuffer_get_length(src));
	return BEV_OK;
}

static enum bufferevent_filter_result
ws_out(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct ws_conn *ws = arg;
	size_t n = evbuffer_get_length(src);

	(void)limit;
	if (n == 0)
		return BEV_NEED_MORE;
	if (ws->cl == NULL || ws->state != WS_OPEN || ws->close_sent) {
		evbuffer_drain(src, n);		/* nothing goes after the close */
		return BEV_OK;
	}
	/* Small writes wait for the end of the pass, to go as one frame. */
	if (mode == BEV_NORMAL && !ws->flushing && n < WS_GATHER) {
		event_active(ws->flush_ev, EV_TIMEOUT, 0);
		return BEV_NEED_MORE;
	}
	return frame_out(dst, src, n) == 0 ? BEV_OK : BEV_ERROR;
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct ws_conn *ws = arg;

	(void)fd;
	(void)what;
	ws->flushing = true;
	bufferevent_flush(ws->bev, EV_WRITE, BEV_NORMAL);
	ws->flushing = false;
}

/* What the client has not read drained: its write callback runs when
 * it is empty, or below half of client_output_limit. */
static void
on_drain(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct ws_conn *ws = arg;
	size_t now = evbuffer_get_length(buf), low;

	if (ws->cl == NULL || info->n_deleted == 0)
		return;
	low = ws->cl->b->set.client_output_limit / 2;
	if (now == 0 || (info->orig_size > low && now <= low))
		bufferevent_trigger(ws->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

static void
ws_conn_free(void *arg)
{
	struct ws_conn *ws = arg;

	if (ws->flush_ev != NULL)
		event_free(ws->flush_ev);
	if (ws->notify_ev != NULL)
		event_free(ws->notify_ev);
	free(ws->head);
	free(ws);
}

struct bufferevent *
ws_bufferevent(struct client *cl, struct bufferevent *raw)
{
	struct ws_conn *ws = xcalloc(1, sizeof(*ws));

	ws->cl = cl;
	ws->raw = raw;
	ws->close_code = -1;
	ws->flush_ev = event_new(cl->b->base, -1, 0, on_flush, ws);
	ws->notify_ev = event_new(cl->b->base, -1, 0, on_notify, ws);
	if (ws->flush_ev == NULL || ws->notify_ev == NULL ||
	    (ws->bev = bufferevent_filter_new(raw, ws_in, ws_out, BEV_OPT_CLOSE_ON_FREE,
	    ws_conn_free, ws)) == NULL) {
		ws_conn_free(ws);
		bufferevent_free(raw);
		return NULL;
	}
	if ((ws->drain_cb = evbuffer_add_cb(bufferevent_get_output(raw), on_drain, ws)) == NULL)
		fatalx("cannot watch the output of client %s", cl->desc);
	cl->ws = ws;
	return ws->bev;
}

void
ws_free(struct client *cl)
{
	struct ws_conn *ws = cl->ws;

	if (ws == NULL)
		return;
	evbuffer_remove_cb_entry(bufferevent_get_output(ws->raw), ws->drain_cb);
	event_del(ws->flush_ev);
	event_del(ws->notify_ev);
	ws->cl = NULL;
	cl->ws = NULL;
}

bool
ws_heard(const struct client *cl)
{
	return cl->ws != NULL && cl->ws->heard;
}

void
ws_describe(const struct client *cl, char *buf, size_t len)
{
	snprintf(buf, len, "WebSocket %s", cl->ws != NULL ? cl->ws->path : "?");
}

size_t
ws_pending(const struct client *cl)
{
	return cl->ws != NULL ? evbuffer_get_length(bufferevent_get_output(cl->ws->raw)) : 0;
}

void
ws_set_close(struct client *cl, uint16_t code)
{
	if (cl->ws != NULL && cl->ws->close_code < 0)
		cl->ws->close_code = code;
}

bool
ws_flushed(struct client *cl)
{
	struct ws_conn *ws = cl->ws;

	if (ws == NULL)
		return true;
	if (ws->state == WS_OPEN && !ws->close_sent)
		send_close(ws);
	return evbuffer_get_length(bufferevent_get_output(ws->raw)) == 0;
}

void
ws_flush_now(struct client *cl)
{
	struct ws_conn *ws = cl->ws;
	struct evbuffer *out;

	if (ws == NULL || ws->state != WS_OPEN || ws->close_sent)
		return;
	out = bufferevent_get_output(ws->bev);
	if (evbuffer_get_length(out) > 0 &&
	    frame_out(bufferevent_get_output(ws->raw), out, evbuffer_get_length(out)) == -1)
		log_warnx("client %s: cannot buffer a WebSocket frame", cl->desc);
	send_close(ws);
}
