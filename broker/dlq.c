/* The dead-letter topic: one JSON record per dead letter (why, when, from
 * whom, the original topic and bytes), published like any message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "json_codec.h"
#include "log.h"
#include "xmalloc.h"

/* Queues the record d for the dead-letter topic; see dlq_publish(). */
static int
publish_record(struct broker *b, const struct jl_deadletter *d, struct held *answer)
{
	const char *dlq = b->set.dead_letter_topic, *why = NULL;
	const char *reason = d->reason, *topic = d->topic;
	struct child *c = child_get(b, dlq, true, &why);
	struct wbuf rec, w;

	log_info("dead letter: %s%s%s from %s%s%s", reason, d->detail ? ": " : "",
	    d->detail ? d->detail : "", d->client ? d->client : "broker",
	    topic ? " topic " : "", topic ? topic : "");
	wbuf_init(&rec);
	if (jl_enc_deadletter(&rec, d) == -1 || c == NULL) {
		log_warnx("dead letter (%s, topic %s) lost: %s", reason, topic ? topic : "-",
		    c == NULL ? why : "cannot encode it");
		wbuf_free(&rec);
		return -1;
	}
	struct rec_publish p = { .req = broker_req(b), .owner = "", .pubid = 0, .qos = 1,
				 .flags = PF_JSON, .time_ms = (uint64_t)d->time_ms,
				 .payload = rec.data, .payload_len = rec.len };
	wbuf_init(&w);
	enc_publish(&w, &p);
	struct held *h = held_new(HELD_NOTE, IPC_PUBLISH, p.req, &w);
	wbuf_free(&w);
	wbuf_free(&rec);
	if (answer != NULL) {
		h->kind = answer->kind;
		h->client_id = answer->client_id;
		h->msg_id = answer->msg_id;
		h->qos = answer->qos;
		h->dlq_topic = answer->dlq_topic;
		h->dlq_req = answer->dlq_req;
		h->dlq_gen = answer->dlq_gen;
	}
	if (child_submit(c, h, &why) == -1) {
		log_warnx("dead letter (%s, topic %s) not stored: %s", reason,
		    topic ? topic : "-", why);
		h->dlq_topic = NULL;
		held_free(h);
		return -1;
	}
	if (answer != NULL) {
		answer->dlq_topic = NULL;
		held_free(answer);
	}
	return 0;
}

/* Queues a dead-letter record for the dead-letter topic.  answer (may be
 * NULL) says who to tell once it is durable there; it is taken on success
 * and left to the caller on failure.  Returns -1 if the record could not
 * even be queued (logged). */
int
dlq_publish(struct broker *b, const char *reason, const char *client, int port,
    const char *topic, const void *bytes, size_t len, struct held *answer)
{
	struct jl_deadletter d = { .reason = reason, .time_ms = wall_ms(), .client = client,
				   .port = port, .topic = topic, .payload = bytes, .len = len };

	return publish_record(b, &d, answer);
}

/* What a client sent, to the dead-letter topic: reason, and detail (may
 * be NULL) saying what exactly was wrong. */
void
dlq_refused(struct client *cl, const char *reason, const char *detail, const char *topic,
    const void *bytes, size_t len)
{
	struct jl_deadletter d = {
		.reason = reason, .detail = detail, .time_ms = wall_ms(),
		.client = cl->username ? cl->username : cl->desc, .port = cl->port,
		.topic = topic, .payload = bytes, .len = len,
	};

	publish_record(cl->b, &d, NULL);
}

void
dlq_bad_input(struct client *cl, const char *reason, const char *topic, const void *bytes,
    size_t len)
{
	dlq_refused(cl, reason, NULL, topic, bytes, len);
}

/* A request the client may not make: UNKNOWN COMMAND, the original
 * broker's answer to anything but a complete known command; the
 * connection stays open.  bytes (the line, or a PUB's message) go to the
 * dead-letter topic. */
void
json_unknown(struct client *cl, const char *reason, const char *detail, const char *topic,
    const void *bytes, size_t len)
{
	client_line(cl, JL_TEXT_UNKNOWN_COMMAND);
	dlq_refused(cl, reason, detail, topic, bytes, len);
}

/* A JSON-lines line that is not a command for this port. */
void
json_refuse(struct client *cl, const struct jl_request *r, const char *line, size_t len)
{
	char detail[160];

	switch (r->cmd) {
	case JL_INVALID_JSON:
		client_line(cl, JL_TEXT_INVALID_JSON);
		dlq_refused(cl, "invalid_json", r->error, NULL, line, len);
		return;
	case JL_UNKNOWN_COMMAND:
		snprintf(detail, sizeof(detail), "%s", r->error);
		break;
	case JL_BAD_REQUEST:
		snprintf(detail, sizeof(detail), "%s %s", r->type, r->error);
		break;
	default:	/* a command of the other port */
		snprintf(detail, sizeof(detail), "%s on the %s port", r->type,
		    cl->kind == CL_JSON_CONSUMER ? "consumer" : "publisher");
		break;
	}
	json_unknown(cl, "unknown_command", detail, NULL, line, len);
}

/* A topicd gave up on a message: store it in the dead-letter topic and
 * tell the topicd when it is durable there, so that it moves on. */
void
dlq_from_child(struct child *c, const struct rec_deadletter *d)
{
	struct rec_dlq_done done = { .req = d->req };
	struct held *answer;
	struct wbuf w;
	const char *who = d->subkey;
	int port = 0;

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
	if (strncmp(who, "j/", 2) == 0) {
		who += 2;
		port = (int)c->b->set.json_consumer_port;
	} else if (strncmp(who, "m/", 2) == 0) {
		who += 2;
		port = (int)c->b->set.mqtt_port;
	}
	wbuf_init(&w);
	answer = held_new(HELD_DLQ, IPC_PUBLISH, 0, &w);
	wbuf_free(&w);
	answer->dlq_topic = xstrdup(c->topic);
	answer->dlq_req = d->req;
	answer->dlq_gen = c->gen;
	/* Unstored, the topicd keeps the message and asks again later. */
	if (dlq_publish(c->b, d->reason, who, port, c->topic, d->payload, d->payload_len,
	    answer) == -1)
		held_free(answer);
}

/* A poison record: to the dead-letter topic (reason poison); its client
 * hears that it is stored once it is durable there.  What cannot be
 * dead-lettered is refused to its client (never acknowledged). */
void
dlq_poison(struct child *c, struct held *h)
{
	struct rec_publish p;

	if (h->type != IPC_PUBLISH || dec_publish(h->body, h->len, &p) == -1 ||
	    strcmp(c->topic, c->b->set.dead_letter_topic) == 0 ||
	    dlq_publish(c->b, "poison", h->client_desc, h->port, c->topic, p.payload,
	    p.payload_len, h) == -1) {
		log_errx("topic %s: the poison %s cannot be dead-lettered: refused to its client",
		    c->topic, ipc_type_name(h->type));
		held_refuse(c, h);
	}
}
