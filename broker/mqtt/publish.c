/* MQTT publishing in: PUBLISH (acknowledged once durable), PUBREL, and
 * the will of a connection that ends without DISCONNECT.
 *
 * Inbound QoS 2 between PUBREC and PUBREL: packet id -> topic.  A
 * persistent session keeps it in the store ("i" KEY "/" PID -> topic,
 * written, not synced: it survives the death of any process), since its
 * PUBREL may come after a reconnect or a restart; a clean session keeps it
 * with the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "kvstore.h"
#include "log.h"
#include "mqtt/mqtt_int.h"
#include "topic.h"
#include "xmalloc.h"

static int
inbound_cmp(struct inbound *a, struct inbound *b)
{
	return a->pid - b->pid;
}

RB_PROTOTYPE(inbound_tree, inbound, entry, inbound_cmp)
RB_GENERATE(inbound_tree, inbound, entry, inbound_cmp)

static int
counted_cmp(struct counted *a, struct counted *b)
{
	return a->pid - b->pid;
}

RB_PROTOTYPE(counted_tree, counted, entry, counted_cmp)
RB_GENERATE(counted_tree, counted, entry, counted_cmp)

static char *
pend_key(const struct session *s, uint16_t pid, size_t *len)
{
	char *k;

	*len = (size_t)xasprintf(&k, "i%s/%u", s->key, pid);
	return k;
}

/* The topic of the QoS 2 publish pid waits for its PUBREL in: 1, and
 * *topic (malloc'd); 0 if none does; -1 if the store cannot say. */
static int
pend_get(struct client *cl, uint16_t pid, char **topic)
{
	struct inbound key = { .pid = pid }, *in;
	size_t klen, vlen;
	char *k;
	void *v;
	int rc;

	*topic = NULL;
	if (!cl->session->persistent) {
		in = RB_FIND(inbound_tree, &mqtt_conn(cl)->inbound, &key);
		*topic = in ? xstrdup(in->topic) : NULL;
		return in != NULL;
	}
	k = pend_key(cl->session, pid, &klen);
	if ((rc = kv_get(cl->b->store, k, klen, &v, &vlen)) == 1)
		*topic = v;
	free(k);
	return rc;
}

static int
pend_set_clean(struct mqtt_conn *mc, uint16_t pid, const char *topic)
{
	struct inbound key = { .pid = pid }, *in = RB_FIND(inbound_tree, &mc->inbound, &key);

	if (in != NULL && topic == NULL) {
		RB_REMOVE(inbound_tree, &mc->inbound, in);
		free(in->topic);
		free(in);
	} else if (in == NULL && topic != NULL) {
		in = xcalloc(1, sizeof(*in));
		in->pid = pid;
		in->topic = xstrdup(topic);
		RB_INSERT(inbound_tree, &mc->inbound, in);
	}
	return 0;
}

/* Records (topic) or forgets (NULL) a packet id between PUBREC and PUBREL. */
static int
pend_set(struct client *cl, uint16_t pid, const char *topic)
{
	size_t klen;
	char *k;
	int rc;

	if (!cl->session->persistent)
		return pend_set_clean(mqtt_conn(cl), pid, topic);
	k = pend_key(cl->session, pid, &klen);
	rc = topic != NULL ? kv_put(cl->b->store, k, klen, topic, strlen(topic)) :
	    kv_del(cl->b->store, k, klen);
	/* Written before the PUBREC leaves.  A full disk keeps it pending,
	 * which the death of the master would lose: no PUBREC then (the
	 * client sends the PUBLISH again).  A forgotten one may wait. */
	if (rc == 0 && kv_flush(cl->b->store) == -1 && (topic != NULL || kv_failed(cl->b->store)))
		rc = -1;
	if (rc == -1)
		log_warnx("client %s: cannot record QoS 2 state of packet %u", cl->desc, pid);
	free(k);
	return rc;
}

void
mqtt_inbound_free(struct mqtt_conn *mc)
{
	struct inbound *in;
	struct counted *n;

	while ((in = RB_MIN(inbound_tree, &mc->inbound)) != NULL) {
		RB_REMOVE(inbound_tree, &mc->inbound, in);
		free(in->topic);
		free(in);
	}
	while ((n = RB_MIN(counted_tree, &mc->counted)) != NULL) {
		RB_REMOVE(counted_tree, &mc->counted, n);
		free(n);
	}
}

/* Counts a QoS 1 or 2 publish against the Receive Maximum told the
 * client (3.3.4-7): false when that is exceeded.  A QoS 2 one whose
 * packet id is counted already (a DUP) is not counted again. */
static bool
inflight_count(struct mqtt_conn *mc, uint8_t qos, uint16_t pid)
{
	struct counted key = { .pid = pid }, *n;

	if (qos == 2) {
		if (RB_FIND(counted_tree, &mc->counted, &key) != NULL)
			return true;
		n = xcalloc(1, sizeof(*n));
		n->pid = pid;
		RB_INSERT(counted_tree, &mc->counted, n);
	}
	return ++mc->inflight_in <= mc->told_recv_max;
}

/* A QoS 1 or 2 publish of the client's is answered (PUBACK, PUBCOMP, or
 * an error): its Receive Maximum quota is back (3.3.4-8).  A PUBCOMP for
 * a publish of an earlier connection gives back nothing: this one did not
 * count it. */
static void
inflight_done(struct client *cl, uint8_t qos, uint16_t pid)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	struct counted key = { .pid = pid }, *n;

	if (qos == 2) {
		if ((n = RB_FIND(counted_tree, &mc->counted, &key)) == NULL)
			return;
		RB_REMOVE(counted_tree, &mc->counted, n);
		free(n);
	}
	if (mc->inflight_in > 0)
		mc->inflight_in--;
}

/* A QoS 2 publish staged for a persistent session that has ended since
 * (a clean start, its expiry): no record will ever name it, so it is
 * released now, as what the session recorded was when it ended.  A clean
 * session's connection released its topics when it closed, after this
 * publish (owner_closed). */
static void
release_orphan(struct child *c, const struct rec_publish *p, uint16_t pid)
{
	struct rec_release r = { .req = broker_req(c->b), .owner = p->owner, .pubid = pid };
	const char *why;
	struct wbuf w;

	if (strncmp(p->owner, "j/", 2) == 0)
		return;
	wbuf_init(&w);
	enc_release(&w, &r);
	if (note_submit(c, IPC_RELEASE, r.req, &w, &why) == -1)
		log_warnx("topic %s: a message of ended session %s stays staged: %s", c->topic,
		    p->owner, why);
	wbuf_free(&w);
}

/* A QoS 2 publish stored after its client went: a persistent session
 * records it as at its PUBREC.  Its client may send it again after
 * reconnecting (the topicd takes it once); if the session ends first,
 * what it staged in that topic is released (mqtt_inbound_end) rather
 * than kept there for ever. */
static void
pend_set_away(struct child *c, const struct held *h)
{
	struct rec_publish r;
	struct session *s;
	const char *inc;
	size_t klen;
	char *key, *k;

	if (dec_publish(h->body, h->len, &r) == -1 || (inc = strrchr(r.owner, '/')) == NULL)
		return;
	key = xmemdup(r.owner, (size_t)(inc - r.owner));
	s = session_find(c->b, key);
	free(key);
	if (s == NULL || !s->persistent || s->mode != MODE_MQTT ||
	    strtoull(inc + 1, NULL, 16) != s->incarnation) {
		release_orphan(c, &r, (uint16_t)h->arg);
		return;
	}
	k = pend_key(s, (uint16_t)h->arg, &klen);
	if (kv_put(c->b->store, k, klen, c->topic, strlen(c->topic)) == -1 ||
	    kv_flush(c->b->store) == -1)
		log_warnx("session %s: cannot record QoS 2 state of packet %u", s->key,
		    (unsigned)h->arg);
	free(k);
}

/* PUBACK, PUBREC: the message is stored; PUBCOMP: released. */
static void
publish_done(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *cl = client_by_id(c->b, h->client_id);
	uint16_t pid = (uint16_t)h->arg;

	if (cl == NULL || cl->closing || cl->session == NULL) {
		if (h->qos == 2 && d->status == ST_OK)
			pend_set_away(c, h);
		return;		/* the client resends after reconnecting */
	}
	if (d->status != ST_OK) {
		mqtt_close(cl, MQTT_RC_UNSPECIFIED_ERROR,
		    "message not stored (its topic failed): not acknowledged");
		return;
	}
	if (h->qos == 2) {
		/* Without its record the PUBREL could not find the message. */
		if (pend_set(cl, pid, c->topic) == -1) {
			mqtt_close(cl, MQTT_RC_UNSPECIFIED_ERROR, "cannot record QoS 2 state");
			return;
		}
		mqtt_send_ack(cl, MQTT_PUBREC, pid);
	} else {
		inflight_done(cl, 1, pid);
		mqtt_send_ack(cl, MQTT_PUBACK, pid);
	}
}

static void
release_done(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *cl = client_by_id(c->b, h->client_id);
	uint16_t pid = (uint16_t)h->arg;

	if (cl == NULL || cl->closing || cl->session == NULL)
		return;
	if (d->status != ST_OK) {
		mqtt_close(cl, MQTT_RC_UNSPECIFIED_ERROR, "PUBREL for a topic that failed");
		return;
	}
	pend_set(cl, pid, NULL);
	inflight_done(cl, 2, pid);
	mqtt_send_ack(cl, MQTT_PUBCOMP, pid);
}

/* A publish to a reserved topic is in the dead-letter topic: at MQTT 5.0
 * the ack says Topic Name invalid (0x90: not published, no PUBREL to
 * follow a PUBREC); 3.1.1 cannot say so, and its PUBREL finds nothing
 * and gets its PUBCOMP. */
static void
reserved_done(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *cl = client_by_id(c->b, h->client_id);
	uint16_t pid = (uint16_t)h->arg;

	if (cl == NULL || cl->closing || cl->session == NULL)
		return;		/* the client resends after reconnecting */
	if (d->status != ST_OK) {
		mqtt_close(cl, MQTT_RC_UNSPECIFIED_ERROR, "PUBLISH to a reserved topic could not "
		    "be dead-lettered: not acknowledged");
		return;
	}
	inflight_done(cl, h->qos, pid);
	mqtt_send_reason_ack(cl, h->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, pid,
	    MQTT_RC_TOPIC_NAME_INVALID, "reserved topic: dead-lettered");
}

/* What MQTT lets a broker do with a PUBLISH it does not store: one it
 * refuses by rule (a reserved topic: $, the dead-letter topic) is
 * dead-lettered and acknowledged once durable there (at 5.0 with 0x90);
 * one it cannot store (a failed topic) is never acknowledged: the
 * connection is closed, and the client sends it again. */
static void
publish_reserved(struct client *cl, const struct mqtt_publish *m)
{
	static uint8_t none;
	struct wbuf w = { &none, 0, 0 };
	struct held *answer = m->qos ? held_new(IPC_PUBLISH, 0, &w) : NULL;
	struct deadletter d = { .reason = "reserved_topic", .client = cl->desc,
				.port = cl->port, .topic = m->topic, .bytes = m->payload,
				.len = m->len };

	log_info("client %s: PUBLISH to %s dead-lettered: %s", cl->desc, m->topic,
	    m->topic[0] == '$' ? "topics starting with $ are reserved" :
	    "the dead-letter topic is written by the broker only");
	if (answer != NULL) {
		answer->done = reserved_done;
		answer->client_id = cl->id;
		answer->arg = m->packet_id;
		answer->qos = m->qos;
	}
	if (dlq_publish(cl->b, &d, answer) == -1) {
		if (answer != NULL)
			held_free(answer);
		if (m->qos > 0)
			mqtt_close(cl, MQTT_RC_UNSPECIFIED_ERROR, "PUBLISH to a reserved topic "
			    "could not be dead-lettered; not acknowledged");
	}
}

/* May the client publish to the topic (the ACL)? */
bool
mqtt_may_write(struct client *cl, const char *topic)
{
	const struct session *s = cl->session;

	return auth_may(cl->auth, s != NULL ? s->user : NULL, mqtt_conn(cl)->client_id, topic,
	    AUTH_WRITE);
}

/* A PUBLISH the ACL denies: acknowledged and dropped, as MQTT 3.1.1 has
 * it (a PUBREC's PUBREL then finds nothing and gets its PUBCOMP); at
 * MQTT 5.0 the ack says Not authorized. */
static void
publish_denied(struct client *cl, const struct mqtt_publish *m)
{
	cl->b->publishes_denied++;
	log_info("client %s: PUBLISH to %.64s%s denied by the ACL: acknowledged and dropped",
	    cl->desc, m->topic, strlen(m->topic) > 64 ? "..." : "");
	if (m->qos > 0) {
		inflight_done(cl, m->qos, m->packet_id);
		/* MQTT 5.0 says why: 0x87 (3.3.4); 3.1.1 cannot. */
		mqtt_send_reason_ack(cl, m->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, m->packet_id,
		    MQTT_RC_NOT_AUTHORIZED, "not authorized");
	}
}

static void publish_refused(struct client *cl, const struct mqtt_publish *m, uint8_t ack_rc,
    uint8_t rc, const char *why);

/* Queues a client's publish for its topic, with its properties and its
 * client id (for its subscribers' No Local); acknowledged once stored. */
static void
publish_store(struct client *cl, const struct mqtt_publish *m)
{
	struct broker *b = cl->b;
	const char *why = NULL;
	struct child *c;
	char msg[160];
	struct wbuf blob;
	struct rec_publish p = {
		.req = m->qos ? broker_req(b) : 0, .owner = m->qos == 2 ? owner_name(cl) : "",
		.pubid = m->packet_id, .qos = m->qos,
		.flags = (m->retain ? PF_RETAIN : 0) | (m->qos == 2 ? PF_STAGE : 0),
		.time_ms = (uint64_t)wall_ms_coarse(), .payload = m->payload, .payload_len = m->len,
		.origin = mqtt_conn(cl)->client_id,
	};
	int rc = -1;

	wbuf_init(&blob);
	if (msg_props_in(&m->props, &blob, &p.expiry_ms) == -1) {
		why = "its properties cannot be kept";
	} else if ((c = topic_open(b, m->topic, &why)) != NULL) {
		p.props = blob.data;
		p.props_len = blob.len;
		rc = publish_submit(cl, c, &p, publish_done, m->packet_id, &why);
	}
	wbuf_free(&blob);
	if (rc == 0)
		return;
	/* Cut between characters: the text is the DISCONNECT's Reason String.
	 * QoS 0 is never acknowledged: it is lost, not owed. */
	snprintf(msg, sizeof(msg), "%sPUBLISH to %.*s not stored (%s): %s",
	    m->qos == 0 ? "QoS 0 " : "", (int)utf8_prefix(m->topic, strnlen(m->topic, 60)),
	    m->topic, why, m->qos == 0 ? "dropped" : "not acknowledged");
	/* Past max_topics an MQTT 5.0 client hears why (0x97), on its
	 * PUBACK or PUBREC, and stays: the topics it has go on. */
	if (why == topic_too_many && mqtt_v5(cl) && m->qos > 0)
		publish_refused(cl, m, MQTT_RC_QUOTA_EXCEEDED, MQTT_RC_QUOTA_EXCEEDED, why);
	else if (why == topic_too_many)
		mqtt_close(cl, MQTT_RC_QUOTA_EXCEEDED, msg);
	else
		mqtt_close(cl, b->stopping ? MQTT_RC_SERVER_SHUTTING_DOWN :
		    MQTT_RC_UNSPECIFIED_ERROR, msg);
}

/* A publish the broker does not take: at QoS 1 and 2 an ack with an
 * error reason code (MQTT 5.0), else the connection ends with rc. */
static void
publish_refused(struct client *cl, const struct mqtt_publish *m, uint8_t ack_rc, uint8_t rc,
    const char *why)
{
	if (mqtt_v5(cl) && m->qos > 0 && ack_rc != 0) {
		log_info("client %s: PUBLISH to %.60s refused: %s", cl->desc, m->topic, why);
		inflight_done(cl, m->qos, m->packet_id);
		mqtt_send_reason_ack(cl, m->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK, m->packet_id,
		    ack_rc, why);
	} else {
		mqtt_close(cl, rc, why);
	}
}

/* What MQTT 5.0 adds to a PUBLISH: its Topic Alias (m->topic is set to
 * the topic), the Receive Maximum, Payload Format Indicator.  false when
 * the publish is refused (answered, or the connection closing). */
static bool
publish5_checks(struct client *cl, struct mqtt_publish *m)
{
	struct mqtt_conn *mc = mqtt_conn(cl);
	uint32_t alias = 0, pfi = 0;
	uint8_t rc = 0;
	const char *topic;

	if (mqtt_props_find(&m->props, MQTT_PROP_SUBSCRIPTION_ID) != NULL) {
		mqtt_close(cl, MQTT_RC_PROTOCOL_ERROR, "PUBLISH with a Subscription Identifier");
		return false;
	}
	(void)mqtt_props_get_u32(&m->props, MQTT_PROP_TOPIC_ALIAS, &alias);
	if ((topic = alias_resolve(&mc->alias_in, m->topic, alias, &rc)) == NULL) {
		mqtt_close(cl, rc, rc == MQTT_RC_TOPIC_ALIAS_INVALID ?
		    "Topic Alias over the Topic Alias Maximum" : "Topic Alias not set before");
		return false;
	}
	m->topic = (char *)topic;
	if (m->qos > 0 && !inflight_count(mc, m->qos, m->packet_id)) {
		mqtt_close(cl, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED,
		    "more QoS 1 and 2 publishes unacknowledged than the Receive Maximum");
		return false;
	}
	if (mqtt_props_get_u32(&m->props, MQTT_PROP_PAYLOAD_FORMAT, &pfi) && pfi == 1 &&
	    !utf8_valid(m->payload, m->len)) {
		publish_refused(cl, m, MQTT_RC_PAYLOAD_FORMAT_INVALID,
		    MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not the UTF-8 its format says");
		return false;
	}
	return true;
}

void
mqtt_publish_in(struct client *cl, const struct mqtt_publish *in)
{
	struct broker *b = cl->b;
	struct mqtt_publish pm = *in, *m = &pm;

	if (mqtt_v5(cl) && !publish5_checks(cl, m))
		return;
	if (m->len > b->set.message_size_limit) {
		publish_refused(cl, m, MQTT_RC_IMPLEMENTATION_ERROR, MQTT_RC_PACKET_TOO_LARGE,
		    "PUBLISH payload over message_size_limit");
		return;
	}
	if (topic_check_levels(m->topic, strlen(m->topic), b->set.max_topic_levels) != TOPIC_OK) {
		/* Not acknowledged: the message was not taken. */
		publish_refused(cl, m, MQTT_RC_TOPIC_NAME_INVALID, MQTT_RC_TOPIC_NAME_INVALID,
		    "PUBLISH to a topic of more levels than max_topic_levels");
		return;
	}
	if (!mqtt_may_write(cl, m->topic)) {
		publish_denied(cl, m);
		return;
	}
	if (topic_reserved(b, m->topic)) {
		publish_reserved(cl, m);
		return;
	}
	publish_store(cl, m);
}

/* A PUBREL: its message is released.  One that cannot be now (the
 * broker stops, the store cannot be read) gets no PUBCOMP, which would
 * end the exchange with the message still staged: the connection is
 * closed, and the client sends the PUBREL again. */
void
mqtt_pubrel_in(struct client *cl, uint16_t pid)
{
	char *topic;
	int found = pend_get(cl, pid, &topic);
	const char *why = "the session store cannot be read";
	struct child *c = found == 1 ? topic_open(cl->b, topic, &why) : NULL;

	free(topic);
	if (found == 0) {	/* unknown: complete it (4.3.3) */
		mqtt_send_reason_ack(cl, MQTT_PUBCOMP, pid, MQTT_RC_PACKET_ID_NOT_FOUND,
		    "no PUBLISH of that packet identifier is waiting for its PUBREL");
		return;
	}
	if (c == NULL) {
		char text[160];

		snprintf(text, sizeof(text), "PUBREL not taken: %s", why);
		mqtt_close(cl, cl->b->stopping ? MQTT_RC_SERVER_SHUTTING_DOWN :
		    MQTT_RC_UNSPECIFIED_ERROR, text);
		return;
	}
	struct rec_release r = { .req = broker_req(cl->b), .owner = owner_name(cl), .pubid = pid };

	if (release_submit(cl, c, &r, release_done, pid, &why) == -1)
		mqtt_close(cl, MQTT_RC_UNSPECIFIED_ERROR, "PUBREL for a topic that failed");
}

struct keys {
	size_t	  plen;		/* "i" SESSION "/" */
	char	**k;
	size_t	  n;
};

/* A QoS 2 record of the session whose prefix is scanned: the prefix and
 * a packet id.  Client ids may hold '/': "im/a/b/7" is session "a/b"'s,
 * not session "a"'s. */
static int
collect_key(const void *key, size_t klen, void *arg)
{
	struct keys *ks = arg;
	const char *id = (const char *)key + ks->plen;
	size_t idlen = klen - ks->plen;

	if (idlen == 0 || idlen > 5)
		return 0;
	for (size_t i = 0; i < idlen; i++)
		if (id[i] < '0' || id[i] > '9')
			return 0;
	ks->k = xreallocarray(ks->k, ks->n + 1, sizeof(char *));
	ks->k[ks->n++] = xmemdup(key, klen);
	return 0;
}

/* A persistent session that ends for good releases what it staged (it was
 * told it is stored) and forgets its QoS 2 records. */
void
mqtt_inbound_end(struct session *s)
{
	struct keys ks = { 0, NULL, 0 };
	struct rec_release_owner r;
	char *prefix, *owner;

	ks.plen = (size_t)xasprintf(&prefix, "i%s/", s->key);
	xasprintf(&owner, "%s/%llx", s->key, (unsigned long long)s->incarnation);
	kv_scan(s->b->store, prefix, ks.plen, collect_key, &ks);
	for (size_t i = 0; i < ks.n; i++) {
		void *topic = NULL;
		size_t tlen = 0;
		const char *why;
		struct child *c;
		struct wbuf w;

		if (kv_get(s->b->store, ks.k[i], strlen(ks.k[i]), &topic, &tlen) == 1 &&
		    (c = topic_open(s->b, topic, &why)) != NULL) {
			r.req = broker_req(s->b);
			r.owner = owner;
			wbuf_init(&w);
			enc_release_owner(&w, &r);
			(void)note_submit(c, IPC_RELEASE_OWNER, r.req, &w, &why);
			wbuf_free(&w);
		}
		free(topic);
		kv_del(s->b->store, ks.k[i], strlen(ks.k[i]));
		free(ks.k[i]);
	}
	free(ks.k);
	free(prefix);
	free(owner);
}
