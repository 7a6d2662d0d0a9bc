/* MQTT publishing: PUBLISH in (acknowledged once durable), PUBREL, the
 * client's acks of deliveries, and deliveries out with their packet ids.
 * Outbound packet ids live in the session, so that a resend after a
 * reconnect uses the original id (MQTT 4.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "mqtt_codec.h"
#include "topic.h"
#include "xmalloc.h"

static int
outflight_cmp(struct outflight *a, struct outflight *b)
{
	return a->pid - b->pid;
}

RB_GENERATE(outflight_tree, outflight, entry, outflight_cmp)

/*
 * Inbound QoS 2 between PUBREC and PUBREL: packet id -> topic.  A
 * persistent session keeps it in the store (written, not synced: it
 * survives the death of any process), since its PUBREL may come after a
 * reconnect or a restart; a clean session keeps it with the connection.
 */
static char *
pend_key(struct client *cl, uint16_t pid, size_t *len)
{
	char *k;

	*len = (size_t)xasprintf(&k, "i%s/%u", cl->session->key, pid);
	return k;
}

static char *
pend_get(struct client *cl, uint16_t pid)
{
	size_t klen, vlen;
	char *k, *topic = NULL;
	void *v;

	if (!cl->session->persistent) {
		const char *t = pub_pending_get(cl, pid);

		return t ? xstrdup(t) : NULL;
	}
	k = pend_key(cl, pid, &klen);
	if (kv_get(cl->b->store, k, klen, &v, &vlen) == 1)
		topic = v;
	free(k);
	return topic;
}

static int
pend_set(struct client *cl, uint16_t pid, const char *topic, bool on)
{
	size_t klen;
	char *k;
	int rc;

	if (!cl->session->persistent) {
		if (on)
			pub_pending_set(cl, pid, topic);
		else
			pub_pending_del(cl, pid);
		return 0;
	}
	k = pend_key(cl, pid, &klen);
	rc = on ? kv_put(cl->b->store, k, klen, topic, strlen(topic)) :
	    kv_del(cl->b->store, k, klen);
	if (rc == 0)
		rc = kv_flush(cl->b->store);
	if (rc == -1)
		log_warnx("client %s: cannot record QoS 2 state of packet %u", cl->desc, pid);
	free(k);
	return rc;
}

static void
send_ack(struct client *cl, uint8_t type, uint16_t pid)
{
	struct wbuf w;

	wbuf_init(&w);
	mqtt_enc_ack(&w, type, pid);
	mqtt_send(cl, &w);
	wbuf_free(&w);
}

/* Queues a PUBLISH to the topic; 0, or -1 with *why. */
static int
submit(struct broker *b, struct child *c, enum held_kind kind, const struct rec_publish *p,
    struct client *cl, uint16_t pid, const char **why)
{
	struct wbuf w;
	struct held *h;

	wbuf_init(&w);
	enc_publish(&w, p);
	h = held_new(kind, IPC_PUBLISH, p->req, &w);
	wbuf_free(&w);
	h->client_id = cl ? cl->id : 0;
	h->msg_id = pid;
	h->qos = p->qos;
	if (cl != NULL) {
		h->client_desc = xstrdup(cl->desc);
		h->port = cl->port;
	}
	if (child_submit(c, h, why) == -1) {
		held_free(h);
		return -1;
	}
	b->msgs_in++;
	b->bytes_in += p->payload_len;
	return 0;
}

/* What MQTT lets a broker do with a PUBLISH it does not store: one it
 * refuses by rule (a reserved $ topic) is dead-lettered and acknowledged
 * once durable there; one it cannot store (past max_topics, a failed
 * topic) is never acknowledged: the connection is closed, and the client
 * sends it again. */
static void
publish_reserved(struct client *cl, const struct mqtt_publish *m)
{
	struct wbuf none = { NULL, 0, 0 };
	struct held *answer = m->qos ? held_new(HELD_MQTT_PUB, IPC_PUBLISH, 0, &none) : NULL;

	log_info("client %s: PUBLISH to %s dead-lettered: topics starting with $ are reserved",
	    cl->desc, m->topic);
	if (answer != NULL) {
		answer->client_id = cl->id;
		answer->msg_id = m->packet_id;
		answer->qos = m->qos;
	}
	if (dlq_publish(cl->b, "reserved_topic", cl->desc, cl->port, m->topic, m->payload,
	    m->len, answer) == -1) {
		if (answer != NULL)
			held_free(answer);
		if (m->qos > 0)
			client_close(cl, "PUBLISH to a reserved topic could not be dead-lettered; "
			    "not acknowledged");
	}
}

void
mqtt_publish_in(struct client *cl, struct mqtt_packet *pk)
{
	const struct mqtt_publish *m = &pk->u.publish;
	struct broker *b = cl->b;
	const char *why = NULL;
	struct child *c;
	char msg[160];

	if (m->len > b->set.message_size_limit) {
		client_close(cl, "PUBLISH payload over message_size_limit");
		return;
	}
	if (topic_check_levels(m->topic, strlen(m->topic), b->set.max_topic_levels) != TOPIC_OK) {
		/* Not acknowledged: the message was not taken. */
		client_close(cl, "PUBLISH to a topic of more levels than max_topic_levels");
		return;
	}
	if (m->topic[0] == '$') {
		publish_reserved(cl, m);
		return;
	}
	struct rec_publish p = {
		.req = m->qos ? broker_req(b) : 0, .owner = m->qos == 2 ? cl->owner : "",
		.pubid = m->packet_id, .qos = m->qos,
		.flags = (m->retain ? PF_RETAIN : 0) | (m->qos == 2 ? PF_STAGE : 0),
		.time_ms = (uint64_t)wall_ms(), .payload = m->payload, .payload_len = m->len,
	};
	if ((c = child_get(b, m->topic, true, &why)) != NULL &&
	    submit(b, c, HELD_MQTT_PUB, &p, cl, m->packet_id, &why) == 0) {
		if (m->qos == 2)
			pub_note_topic(cl, m->topic);
		return;
	}
	snprintf(msg, sizeof(msg), "PUBLISH to %.60s not stored (%s): not acknowledged",
	    m->topic, why);
	client_close(cl, msg);
}

void
mqtt_pubrel_in(struct client *cl, uint16_t pid)
{
	char *topic = pend_get(cl, pid);
	const char *why;
	struct child *c = topic ? child_get(cl->b, topic, true, &why) : NULL;
	struct wbuf w;

	free(topic);
	if (c == NULL) {
		send_ack(cl, MQTT_PUBCOMP, pid);	/* unknown: complete it (4.3.3) */
		return;
	}
	struct rec_release r = { .req = broker_req(cl->b), .owner = cl->owner, .pubid = pid };
	wbuf_init(&w);
	enc_release(&w, &r);
	struct held *h = held_new(HELD_MQTT_REL, IPC_RELEASE, r.req, &w);
	wbuf_free(&w);
	h->client_id = cl->id;
	h->msg_id = pid;
	if (child_submit(c, h, &why) == -1) {
		held_free(h);
		client_close(cl, "PUBREL for a topic that failed");
	}
}

void
mqtt_pub_done(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *cl = client_by_id(c->b, h->client_id);

	if (cl == NULL || cl->closing || cl->session == NULL)
		return;		/* the client resends after reconnecting */
	if (d->status != ST_OK) {
		client_close(cl, "message not stored (its topic failed): not acknowledged");
		return;
	}
	if (h->kind == HELD_MQTT_REL) {
		pend_set(cl, (uint16_t)h->msg_id, NULL, false);
		send_ack(cl, MQTT_PUBCOMP, (uint16_t)h->msg_id);
	} else if (h->qos == 2) {
		/* Without its record the PUBREL could not find the message. */
		if (pend_set(cl, (uint16_t)h->msg_id, c->topic, true) == -1) {
			client_close(cl, "cannot record QoS 2 state");
			return;
		}
		send_ack(cl, MQTT_PUBREC, (uint16_t)h->msg_id);
	} else {
		send_ack(cl, MQTT_PUBACK, (uint16_t)h->msg_id);
	}
}

/* The will of a connection that ended without DISCONNECT. */
void
mqtt_publish_will(struct client *cl)
{
	const struct mqtt_will *wl = cl->will;
	const char *why;
	struct child *c = child_get(cl->b, wl->topic, true, &why);
	struct rec_publish p = {
		.req = wl->qos ? broker_req(cl->b) : 0, .owner = "", .pubid = 0, .qos = wl->qos,
		.flags = wl->retain ? PF_RETAIN : 0, .time_ms = (uint64_t)wall_ms(),
		.payload = wl->payload, .payload_len = wl->len,
	};

	if (c == NULL || c->state == CH_FAILED || wl->topic[0] == '$' ||
	    submit(cl->b, c, HELD_NOTE, &p, NULL, 0, &why) == -1) {
		log_warnx("client %s: will to %s not published: %s", cl->desc, wl->topic,
		    why ? why : "refused");
		return;
	}
	log_info("client %s: will published to %s", cl->desc, wl->topic);
}

/*
 * A persistent session's deliveries in flight are also in the store
 * ("o" KEY NUL PID -> seq, rel, topic, qos), written before the PUBLISH leaves
 * (flushed at the end of the callback, before libevent writes the
 * socket), so that after a restart of the master a resend uses the
 * original packet id and no id is reused before its exchange ends.
 */
static char *
out_key(const struct session *s, uint16_t pid, size_t *len)
{
	size_t n = strlen(s->key);
	char *k = xmalloc(n + 4);

	k[0] = 'o';
	memcpy(k + 1, s->key, n + 1);
	k[n + 2] = (char)(pid >> 8);
	k[n + 3] = (char)(pid & 0xff);
	*len = n + 4;
	return k;
}

static void
out_store(struct session *s, const struct outflight *o, bool keep)
{
	struct wbuf w;
	size_t klen;
	char *k;
	int rc;

	if (!s->persistent)
		return;
	k = out_key(s, o->pid, &klen);
	wbuf_init(&w);
	put_u64(&w, o->seq);
	put_u8(&w, o->rel);
	put_str(&w, o->topic);
	put_u8(&w, o->qos);
	rc = keep ? kv_put(s->b->store, k, klen, w.data, w.len) : kv_del(s->b->store, k, klen);
	if (rc == -1)
		log_warnx("session %s: cannot record packet %u", s->key, o->pid);
	wbuf_free(&w);
	free(k);
}

/* Called before returning to the event loop after deliveries or acks. */
void
mqtt_flush(struct broker *b)
{
	if (kv_pending(b->store) > 0 && kv_flush(b->store) == -1)
		log_warnx("the session store cannot be written");
}

static int
load_outflight(const void *key, size_t klen, void *arg)
{
	struct broker *b = arg;
	const char *k = key, *nul = memchr(k + 1, '\0', klen - 1);
	struct session *s;
	struct outflight *o;
	struct rbuf r;
	const char *topic;
	uint8_t rel, qos = 0;
	void *val;
	size_t vlen;

	if (nul == NULL || (size_t)(nul - k) + 3 != klen || (s = session_find(b, k + 1)) == NULL ||
	    kv_get(b->store, key, klen, &val, &vlen) != 1)
		return 0;
	o = xcalloc(1, sizeof(*o));
	o->pid = (uint16_t)((uint8_t)nul[1] << 8 | (uint8_t)nul[2]);
	rbuf_init(&r, val, vlen);
	get_u64(&r, &o->seq);
	get_u8(&r, &rel);
	get_str(&r, &topic);
	if (r.left > 0)		/* records written before the QoS was kept lack it */
		get_u8(&r, &qos);
	if (get_end(&r) == -1 || o->pid == 0 || qos > 2) {
		log_warnx("session %s: bad in-flight record; ignored", s->key);
		free(o);
	} else {
		o->rel = rel != 0;
		o->qos = qos;
		o->topic = xstrdup(topic);
		RB_INSERT(outflight_tree, &s->out, o);
		s->nout++;
		if (!o->rel)
			s->nsent++;
		s->next_pid = o->pid;
	}
	free(val);
	return 0;
}

void
mqtt_load_outflights(struct broker *b)
{
	kv_scan(b->store, "o", 1, load_outflight, b);
}

static struct outflight *
out_find_seq(struct session *s, const char *topic, uint64_t seq)
{
	struct outflight *o;

	RB_FOREACH(o, outflight_tree, &s->out)
		if (o->seq == seq && strcmp(o->topic, topic) == 0)
			return o;
	return NULL;
}

/* A new packet id: the next one not in flight; NULL when every id is
 * taken (mqtt_can_take() keeps that from happening). */
static struct outflight *
out_new(struct session *s, const char *topic, uint64_t seq, uint8_t qos)
{
	struct outflight *o, key;
	unsigned tries = 0;

	do {
		if (++s->next_pid == 0)
			s->next_pid = 1;
		key.pid = s->next_pid;
		if (++tries > UINT16_MAX)
			return NULL;
	} while (RB_FIND(outflight_tree, &s->out, &key) != NULL);
	o = xcalloc(1, sizeof(*o));
	o->pid = s->next_pid;
	o->topic = xstrdup(topic);
	o->seq = seq;
	o->qos = qos;
	RB_INSERT(outflight_tree, &s->out, o);
	s->nsent++;
	s->nout++;
	out_store(s, o, true);
	return o;
}

/* Drops an outflight from memory; forget: from the store too. */
static void
out_drop(struct session *s, struct outflight *o, bool forget)
{
	if (forget)
		out_store(s, o, false);
	RB_REMOVE(outflight_tree, &s->out, o);
	s->nout--;
	if (!o->rel)
		s->nsent--;
	free(o->topic);
	free(o);
}

/* forget: the session ends for good (its stored ids go too); otherwise
 * only memory is released (shutdown). */
void
mqtt_session_clear(struct session *s, bool forget)
{
	struct outflight *o;

	while ((o = RB_MIN(outflight_tree, &s->out)) != NULL)
		out_drop(s, o, forget);
}

/* Deliveries waiting for PUBACK / PUBREC are bounded by
 * max_inflight_messages; with those waiting for PUBCOMP, every exchange
 * in flight is bounded too, well below the 65535 packet ids. */
#define OUT_MAX 16384

bool
mqtt_can_take(const struct client *cl)
{
	const struct session *s = cl->session;

	return s == NULL || (s->nsent < cl->b->set.max_inflight_messages && s->nout < OUT_MAX);
}

/* The session no longer takes the topic (UNSUBSCRIBE, a cursor dropped):
 * its deliveries from there will never be resent or acknowledged. */
void
mqtt_forget_topic(struct session *s, const char *topic)
{
	struct outflight *o, *next;

	RB_FOREACH_SAFE(o, outflight_tree, &s->out, next)
		if (strcmp(o->topic, topic) == 0)
			out_drop(s, o, true);
}

static void
ack_to_topic(struct broker *b, struct session *s, const struct outflight *o, uint8_t kind)
{
	struct rec_ack a = { .subkey = s->key, .seq = o->seq, .kind = kind };
	const char *why;
	struct child *c = child_get(b, o->topic, false, &why);
	struct wbuf w;

	if (c == NULL)
		return;
	wbuf_init(&w);
	enc_ack(&w, &a);
	child_send(c, IPC_ACK, &w);
	wbuf_free(&w);
}

static void
deliver_publish(struct client *cl, const struct rec_deliver *d)
{
	struct session *s = cl->session;
	struct outflight *o = NULL;
	struct mqtt_publish pub = {
		.qos = d->qos, .dup = d->qos > 0 && (d->flags & DF_DUP),
		.retain = (d->flags & DF_RETAIN) != 0, .topic = (char *)d->topic,
		.payload = d->payload, .len = d->payload_len,
	};
	struct wbuf w;

	if (d->qos > 0) {
		if ((o = out_find_seq(s, d->topic, d->seq)) != NULL && o->rel) {
			/* The client PUBREC'd it, but a restarted topicd lost that:
			 * tell it again rather than resend (MQTT 4.3.3). */
			ack_to_topic(cl->b, s, o, ACK_PUBREC);
			return;
		}
		if (o != NULL) {
			pub.dup = true;		/* sent before, whatever the topicd knows */
			if (o->qos != d->qos) {
				o->qos = d->qos;	/* the client answers this PUBLISH */
				out_store(s, o, true);
			}
		} else if ((o = out_new(s, d->topic, d->seq, d->qos)) == NULL) {
			client_close(cl, "no packet id left");
			return;
		}
		pub.packet_id = o->pid;
	}
	wbuf_init(&w);
	if (mqtt_enc_publish(&w, &pub) == 0) {
		mqtt_send(cl, &w);
		cl->b->msgs_out++;
		cl->b->bytes_out += d->payload_len;
	} else {
		log_warnx("client %s: cannot encode a delivery from %s", cl->desc, d->topic);
	}
	wbuf_free(&w);
}

static void
deliver_pubrel(struct client *cl, const struct rec_deliver_rel *r)
{
	struct session *s = cl->session;
	struct outflight *o = out_find_seq(s, r->topic, r->seq);

	if (o == NULL && (o = out_new(s, r->topic, r->seq, 2)) == NULL) {
		client_close(cl, "no packet id left");
		return;
	}
	if (!o->rel) {
		o->rel = true;
		s->nsent--;
		out_store(s, o, true);
	}
	send_ack(cl, MQTT_PUBREL, o->pid);
}

void
mqtt_deliver(struct client *cl, const struct ipc_msg *m)
{
	struct rec_deliver d;
	struct rec_deliver_rel r;

	if (cl->session == NULL)
		return;
	if (m->type == IPC_DELIVER && dec_deliver(m->body, m->len, &d) == 0)
		deliver_publish(cl, &d);
	else if (m->type == IPC_DELIVER_REL && dec_deliver_rel(m->body, m->len, &r) == 0)
		deliver_pubrel(cl, &r);
	else
		log_warnx("client %s: bad %s record on its delivery socket", cl->desc,
		    ipc_type_name(m->type));
}

/* Is type the acknowledgement that o waits for?  1: yes; 0: a harmless
 * repeat (a PUBREC after the PUBREL went out); -1: the wrong kind, a
 * protocol violation (MQTT 4.3.2, 4.3.3). */
static int
ack_fits(const struct outflight *o, uint8_t type)
{
	if (o->qos == 0)	/* QoS unknown: only the stage can be checked */
		return (type == MQTT_PUBCOMP) == o->rel ? 1 : 0;
	if (o->qos == 1)
		return type == MQTT_PUBACK ? 1 : -1;
	if (type == MQTT_PUBACK)
		return -1;
	if (o->rel)
		return type == MQTT_PUBCOMP ? 1 : 0;
	return type == MQTT_PUBREC ? 1 : -1;	/* PUBCOMP before the PUBREL */
}

/* PUBACK, PUBREC or PUBCOMP of a delivery: passed to its topic.  One for
 * a packet id not in flight (a repeat after a reconnect) is ignored. */
void
mqtt_ack_in(struct client *cl, uint8_t type, uint16_t pid)
{
	struct session *s = cl->session;
	struct outflight key = { .pid = pid }, *o = RB_FIND(outflight_tree, &s->out, &key);
	char why[128];
	int fits = o != NULL ? ack_fits(o, type) : 0;

	if (fits == 0) {
		log_debug("client %s: %s for packet %u %s; ignored", cl->desc,
		    mqtt_type_name(type), pid, o == NULL ? "not in flight" : "again");
		return;
	}
	if (fits == -1) {
		snprintf(why, sizeof(why),
		    "%s for packet %u, a QoS %u delivery%s: protocol violation", mqtt_type_name(type),
		    pid, o->qos,
		    o->qos == 2 && !o->rel && type == MQTT_PUBCOMP ? ", before the PUBREL" : "");
		client_close(cl, why);
		return;
	}
	ack_to_topic(cl->b, s, o, type == MQTT_PUBACK ? ACK_PUBACK :
	    type == MQTT_PUBREC ? ACK_PUBREC : ACK_PUBCOMP);
	if (type == MQTT_PUBREC) {
		o->rel = true;
		s->nsent--;
		out_store(s, o, true);
	} else {
		out_drop(s, o, true);
	}
	delivery_resume(cl);
}
