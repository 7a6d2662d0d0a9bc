/* The dead-letter topic: one JSON record per dead letter (why, when, from
 * whom, the original topic and bytes), published like any message:
 *   {"reason":R,"detail":D,"time":"2026-11-28T10:00:00.123Z","client":C,
 *    "port":P,"topic":T,"msg":M}
 * with M the bytes as a string when they are UTF-8, else their base64 and
 * ,"encoding":"base64" after it; detail, client, port and topic only when
 * known. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>
#include <arpa/nameser.h>
#include <resolv.h>

#include <jansson.h>

#include "clock.h"
#include "core/core.h"
#include "log.h"
#include "xmalloc.h"

static int
set_string(json_t *o, const char *key, const char *v)
{
	json_t *s;

	if (v == NULL)
		return 0;
	if ((s = json_string(v)) == NULL)
		return -1;		/* not UTF-8 */
	return json_object_set_new(o, key, s);
}

/* ISO 8601 UTC with milliseconds: 2026-11-28T10:00:00.123Z (floored, so
 * that a time before 1970 keeps a positive millisecond part). */
static json_t *
iso_time(int64_t ms)
{
	int64_t sec = ms / 1000, rem = ms % 1000;
	struct tm tm;
	char buf[64];
	time_t t;

	if (rem < 0) {
		rem += 1000;
		sec--;
	}
	t = (time_t)sec;
	if (gmtime_r(&t, &tm) == NULL) {
		t = 0;
		rem = 0;
		if (gmtime_r(&t, &tm) == NULL)
			return NULL;
	}
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
	return json_string(buf);
}


/* The bytes as a string if they are UTF-8 (unless b64), else as base64. */
static int
set_bytes(json_t *o, const void *p, size_t len, bool b64only)
{
	json_t *s = b64only ? NULL : json_stringn(p, len);
	char *b64;
	size_t n;
	int rc;

	if (s != NULL)
		return json_object_set_new(o, "msg", s);
	n = (len + 2) / 3 * 4 + 1;
	b64 = xmalloc(n);
	if (b64_ntop(p, len, b64, n) < 0) {
		free(b64);
		return -1;
	}
	rc = json_object_set_new(o, "msg", json_string(b64));
	free(b64);
	return rc == 0 ? json_object_set_new(o, "encoding", json_string("base64")) : -1;
}

/* The record's text, with len of the bytes (as base64 if b64only);
 * NULL when a text field is not UTF-8. */
static char *
record_text(const struct deadletter *d, int64_t time_ms, size_t len, bool b64only)
{
	json_t *o = json_object();
	char *text = NULL;

	if (o == NULL || d->reason == NULL || set_string(o, "reason", d->reason) == -1 ||
	    set_string(o, "detail", d->detail) == -1 ||
	    json_object_set_new(o, "time", iso_time(time_ms)) == -1 ||
	    set_string(o, "client", d->client) == -1 ||
	    (d->port != 0 && json_object_set_new(o, "port", json_integer(d->port)) == -1) ||
	    set_string(o, "topic", d->topic) == -1 ||
	    set_bytes(o, d->bytes, len, b64only) == -1 ||
	    (len < d->len && json_object_set_new(o, "truncated",
	    json_integer((json_int_t)d->len)) == -1))
		goto out;
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(o);
	return text;
}

/* Appends the record (no line ending), of at most max bytes; -1 and
 * nothing appended when a text field is not UTF-8.  The escapes of JSON
 * (6 bytes for a control character) can make the record of a message
 * that fits too large: it is then made again with base64 (4/3), and if
 * that is too large still, with as many of the bytes as fit and
 * "truncated":LENGTH. */
int
dlq_encode_within(struct wbuf *w, const struct deadletter *d, int64_t time_ms, size_t max)
{
	char *text = record_text(d, time_ms, d->len, false);
	size_t rest;

	if (text != NULL && strlen(text) > max) {
		free(text);
		text = record_text(d, time_ms, d->len, true);
	}
	if (text != NULL && strlen(text) > max) {
		free(text);
		/* What the other fields take, with the longest "truncated". */
		if ((text = record_text(d, time_ms, 0, true)) == NULL)
			return -1;
		rest = strlen(text) + 64 < max ? max - strlen(text) - 64 : 0;
		free(text);
		text = record_text(d, time_ms, rest / 4 * 3, true);
		log_warnx("dead letter (%s, topic %s): its %zu bytes are more than a record "
		    "holds: truncated", d->reason, d->topic ? d->topic : "-", d->len);
	}
	if (text == NULL || strlen(text) > max) {
		free(text);
		return -1;
	}
	put_raw(w, text, strlen(text));
	free(text);
	return 0;
}

/* A record is one message between the processes. */
int
dlq_encode(struct wbuf *w, const struct deadletter *d, int64_t time_ms)
{
	return dlq_encode_within(w, d, time_ms, IPC_MAX_MESSAGE);
}

/* answer's client waits for the dead letter now: child_submit counted it
 * again, and answer is not answered. */
static void
wait_moved(struct broker *b, const struct held *answer)
{
	struct client *cl = answer->client_id ? client_by_id(b, answer->client_id) : NULL;

	if (cl != NULL && answer->req != 0 && cl->pending > 0)
		cl->pending--;
}

int
dlq_publish(struct broker *b, const struct deadletter *d, struct held *answer)
{
	const char *why = NULL;
	struct child *c = topic_open(b, b->set.dead_letter_topic, &why);
	int64_t now = wall_ms();
	struct wbuf rec, w;
	struct held *h;

	log_info("dead letter: %s%s%s from %s%s%s", d->reason, d->detail ? ": " : "",
	    d->detail ? d->detail : "", d->client ? d->client : "broker",
	    d->topic ? " topic " : "", d->topic ? d->topic : "");
	wbuf_init(&rec);
	if (c == NULL || dlq_encode(&rec, d, now) == -1) {
		/* One a topicd asked for is asked for again (answer). */
		log_warnx("dead letter (%s, topic %s) %s: %s", d->reason,
		    d->topic ? d->topic : "-",
		    answer != NULL && answer->dlq_topic != NULL ?
		    "not stored; its topic asks again" : "lost",
		    c == NULL ? why : "cannot encode it");
		wbuf_free(&rec);
		return -1;
	}
	struct rec_publish p = { .req = broker_req(b), .owner = "", .pubid = 0, .qos = 1,
				 .flags = PF_JSON, .time_ms = (uint64_t)now,
				 .payload = rec.data, .payload_len = rec.len };
	wbuf_init(&w);
	enc_publish(&w, &p);
	h = held_new(IPC_PUBLISH, p.req, &w);
	wbuf_free(&w);
	wbuf_free(&rec);
	h->client_id = d->client_id;
	if (answer != NULL) {
		h->done = answer->done;
		h->client_id = answer->client_id;
		h->arg = answer->arg;
		h->qos = answer->qos;
		h->dlq_topic = answer->dlq_topic;
		h->dlq_req = answer->dlq_req;
		h->dlq_gen = answer->dlq_gen;
	}
	if (child_submit(c, h, &why) == -1) {
		log_warnx("dead letter (%s, topic %s) not stored: %s", d->reason,
		    d->topic ? d->topic : "-", why);
		h->dlq_topic = NULL;
		held_free(h);
		return -1;
	}
	if (answer != NULL) {
		wait_moved(b, answer);
		answer->dlq_topic = NULL;
		held_free(answer);
	}
	return 0;
}

/* Tells the topicd (the same process, generation gen, that asked)
 * whether its dead letter req is stored: it moves on, or asks again
 * later. */
static void
dlq_answer(struct broker *b, const char *topic, unsigned gen, uint64_t req, bool stored)
{
	struct child *asker = topic_find(b, topic);
	struct rec_dlq_done r = { .req = req, .stored = stored };
	struct wbuf w;

	/* Also to one that was sent STOP: it waits for this to exit; not to
	 * one stopped with the broker (stop_final), which does not wait, and
	 * asks again at its next start if it must. */
	if (asker == NULL || asker->gen != gen || asker->chan == NULL ||
	    (asker->state != CH_READY && asker->state != CH_PARKING) ||
	    (asker->state == CH_PARKING && asker->stop_final))
		return;
	wbuf_init(&w);
	enc_dlq_done(&w, &r);
	child_chan_send(asker, IPC_DLQ_DONE, w.data, w.len, -1);
	wbuf_free(&w);
}

static void
dlq_answered(struct child *c, struct held *h, const struct rec_done *d)
{
	dlq_answer(c->b, h->dlq_topic, h->dlq_gen, h->dlq_req, d->status == ST_OK);
}

/* A topicd gave up on a message: store it in the dead-letter topic and
 * tell the topicd when it is durable there, so that it moves on. */
void
dlq_from_child(struct child *c, const struct rec_deadletter *d)
{
	struct rec_dlq_done done = { .req = d->req, .stored = 1 };
	struct deadletter dl = { .reason = d->reason, .client = d->subkey, .topic = c->topic,
				 .bytes = d->payload, .len = d->payload_len };
	static uint8_t none;
	struct wbuf w = { &none, 0, 0 };
	struct held *answer;

	if (strcmp(c->topic, c->b->set.dead_letter_topic) == 0) {
		/* A dead letter of the dead-letter topic has nowhere to go. */
		log_warnx("topic %s: dead letter seq %llu (%s, subscriber %s) dropped",
		    c->topic, (unsigned long long)d->seq, d->reason, d->subkey);
		wbuf_init(&w);
		enc_dlq_done(&w, &done);
		child_send(c, IPC_DLQ_DONE, &w);
		wbuf_free(&w);
		return;
	}
	if (strncmp(dl.client, "j/", 2) == 0) {
		dl.client += 2;
		dl.port = (int)c->b->set.json_consumer_port;
	} else if (strncmp(dl.client, "m/", 2) == 0) {
		dl.client += 2;
		dl.port = (int)c->b->set.mqtt_port;
	}
	answer = held_new(IPC_PUBLISH, 0, &w);
	answer->done = dlq_answered;
	answer->dlq_topic = xstrdup(c->topic);
	answer->dlq_req = d->req;
	answer->dlq_gen = c->gen;
	/* Unstored, the topicd keeps the message and asks again later. */
	if (dlq_publish(c->b, &dl, answer) == -1) {
		held_free(answer);
		dlq_answer(c->b, c->topic, c->gen, d->req, false);
	}
}

/* A poison record: to the dead-letter topic (reason poison); its client
 * hears that it is stored once it is durable there.  What cannot be
 * dead-lettered is refused to its client (never acknowledged). */
void
dlq_poison(struct child *c, struct held *h)
{
	struct rec_publish p;
	struct deadletter d = { .reason = "poison", .topic = c->topic };

	if (h->type == IPC_PUBLISH && dec_publish(h->body, h->len, &p) == 0 &&
	    strcmp(c->topic, c->b->set.dead_letter_topic) != 0) {
		d.client = h->client_desc;
		d.port = h->port;
		d.bytes = p.payload;
		d.len = p.payload_len;
		if (dlq_publish(c->b, &d, h) == 0)
			return;
	}
	log_errx("topic %s: the poison %s cannot be dead-lettered: refused to its client",
	    c->topic, ipc_type_name(h->type));
	held_refuse(c, h);
}
