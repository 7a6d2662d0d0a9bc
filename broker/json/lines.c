/* JSON-lines framing: lines cut at '\n' (a '\r' before it dropped),
 * bounded by message_size_limit; the plain lines the broker sends; the
 * idle timer while half a line waits, or a consumer has not logged in. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "json/json_int.h"
#include "log.h"
#include "xmalloc.h"

struct json_conn *
json_conn_new(struct client *cl, bool consumer)
{
	struct json_conn *jc = xcalloc(1, sizeof(*jc));

	jc->consumer = consumer;
	RB_INIT(&jc->pending);
	TAILQ_INIT(&jc->answers);
	cl->pstate = jc;
	return jc;
}

void
json_line(struct client *cl, const char *text)
{
	struct wbuf w;

	wbuf_init(&w);
	jl_enc_text(&w, text);
	json_write(cl, w.data, w.len);
	wbuf_free(&w);
}

/* The original broker sent ERROR only when it closed the connection;
 * a bad request gets UNKNOWN COMMAND instead (json_unknown()). */
static void
error_line(struct client *cl, const char *text, void (*close)(struct client *, const char *))
{
	struct wbuf w;

	if (cl->closing)
		return;
	wbuf_init(&w);
	jl_enc_error(&w, text);
	client_write(cl, w.data, w.len);
	wbuf_free(&w);
	close(cl, text);		/* freed once the line is out */
}

void
json_error(struct client *cl, const char *text)
{
	error_line(cl, text, client_close);
}

void
json_error_fault(struct client *cl, const char *text)
{
	error_line(cl, text, client_close_fault);
}

/* A line over message_size_limit: refused (ERROR, and the connection
 * ends), its start dead-lettered. */
static void
oversized(struct client *cl, struct evbuffer *in, size_t have)
{
	size_t keep = have < 1024 ? have : 1024;
	const uint8_t *p = evbuffer_pullup(in, (ssize_t)keep);

	json_refused(cl, "oversized", NULL, NULL, p, keep);
	json_error_fault(cl, "line too long (message_size_limit)");
}

/* A line's length without its end (LF, or CRLF: the CR does not count
 * towards message_size_limit). */
static size_t
line_length(struct evbuffer *in, const struct evbuffer_ptr *p)
{
	char cr = 0;
	struct evbuffer_ptr before;

	if (p->pos == 0 ||
	    evbuffer_ptr_set(in, &before, (size_t)p->pos - 1, EVBUFFER_PTR_SET) == -1 ||
	    evbuffer_copyout_from(in, &before, &cr, 1) != 1)
		return (size_t)p->pos;
	return (size_t)p->pos - (cr == '\r');
}

/* Where the next line's end is, -1 if it has not come: the search goes
 * on from where the last one stopped, so that a long line arriving in
 * many reads is scanned once, not once per read. */
static struct evbuffer_ptr
next_eol(struct evbuffer *in, struct json_conn *jc)
{
	struct evbuffer_ptr from, p;
	size_t have = evbuffer_get_length(in), eol;

	if (jc->scanned > 0 && jc->scanned < have &&
	    evbuffer_ptr_set(in, &from, jc->scanned, EVBUFFER_PTR_SET) == 0)
		p = evbuffer_search_eol(in, &from, &eol, EVBUFFER_EOL_LF);
	else
		p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_LF);
	jc->scanned = p.pos == -1 ? have : 0;
	return p;
}

/* Hands every whole line to line(), while the client may send more. */
void
json_read_lines(struct client *cl, void (*line)(struct client *, const char *, size_t))
{
	struct evbuffer *in = client_input(cl);
	struct json_conn *jc = json_conn(cl);
	size_t limit = cl->b->set.message_size_limit;

	while (!cl->closing && !client_throttled(cl)) {
		struct evbuffer_ptr p = next_eol(in, jc);
		size_t have = evbuffer_get_length(in), len;
		const char *text;

		/* Without its end yet, a line may still get a CR before the LF. */
		if (p.pos == -1 ? have > limit + 1 : line_length(in, &p) > limit) {
			jc->scanned = 0;	/* (its closing frees jc) */
			oversized(cl, in, p.pos == -1 ? have : (size_t)p.pos);
			evbuffer_drain(in, have);
			return;
		}
		if (p.pos == -1)
			return;
		text = (const char *)evbuffer_pullup(in, p.pos + 1);
		len = (size_t)p.pos;
		if (len > 0 && text[len - 1] == '\r')
			len--;
		jc->lines++;
		line(cl, text, len);	/* may close cl: jc goes then */
		evbuffer_drain(in, (size_t)p.pos + 1);
	}
}

/* A login is due: a consumer's, or a publisher's where passwords are
 * checked and anonymous publishers are not let in.  A publisher that may
 * come in anonymously owes none: it may connect long before it has
 * anything to publish, so connect_timeout does not bound it. */
static bool
login_due(struct client *cl)
{
	struct json_conn *jc = json_conn(cl);

	return (jc->consumer && jc->username == NULL) ||
	    (jc->login_pending && !cl->auth->anonymous);
}

/* The idle timer runs while half a line waits (idle_timeout), and until a
 * login that is due comes (connect_timeout, from the start, whatever
 * lines come meanwhile): a client that stalls there is closed.  Input the
 * broker does not read while the client waits for answers
 * (max_client_pending, a full topic) is not a stall, unlike input left
 * because the client does not read its own (client_output_limit); each
 * line read starts the time again. */
void
json_update_idle(struct client *cl)
{
	struct json_conn *jc = json_conn(cl);
	bool login, partial;

	if (cl->closing || jc == NULL)
		return;
	login = login_due(cl);
	/* Reading stops at a partial line unless the client is throttled. */
	partial = evbuffer_get_length(client_input(cl)) > 0 &&
	    (!client_throttled(cl) || client_output_full(cl));
	if (!login && !partial)
		client_disarm_idle(cl);
	else if (!client_idle_armed(cl) || (!login && jc->lines != jc->idle_lines)) {
		jc->idle_lines = jc->lines;
		client_arm_idle(cl, login ? cl->b->set.connect_timeout : cl->b->set.idle_timeout);
	}
}

void
json_idle(struct client *cl)
{
	client_close(cl, login_due(cl) ? "no login within connect_timeout" :
	    "half a line for longer than idle_timeout");
}
