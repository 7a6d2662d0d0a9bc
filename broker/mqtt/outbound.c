/* MQTT deliveries out, with their packet ids, and the client's acks of
 * them.  The packet ids live in the session (its struct session_ext), so
 * that a resend after a reconnect uses the original id (MQTT 4.4); they
 * are indexed by id and by (topic, subscription, sequence): a session
 * subscribed to a topic on its own and in a group gets a message once for
 * each (MQTT 4.8.2), in two exchanges.
 *
 * A persistent session's deliveries in flight are also in the store
 * ("o" KEY NUL PID -> seq, rel, topic, qos, share), written before the PUBLISH
 * leaves (the core flushes the store when the callback returns, before
 * libevent writes the socket), so that after a restart of the master a
 * resend uses the original packet id and no id is reused before its
 * exchange ends.
 *
 * The window (max_inflight_messages) counts what was sent on this
 * connection.  What a session had in flight when it reconnects is stale
 * until its topicd sends it again (a topicd sends, per subscriber, the
 * retained message, then what it resends in sequence order, then new
 * messages): so a full window left by the last connection does not keep
 * its own resends from being read.  A stale delivery that its topicd
 * passed over (a later one of the topic came first) was acknowledged
 * before the master could record it (it was killed in between): it is
 * forgotten.
 *
 * A QoS 2 delivery's PUBREL goes as soon as the client's PUBREC comes,
 * the PUBREC being in the session's record first; the topicd makes it
 * durable and says so with DELIVER_REL.  A PUBCOMP that comes before
 * that DELIVER_REL is held (comp) and passed on once it comes: were it
 * passed on at once, a topicd killed before it stored the PUBREC would
 * send the message again, and the master, no longer knowing the
 * exchange, would deliver it twice.  An MQTT 5.0 client's Receive
 * Maximum counts a delivery until its PUBCOMP (MQTT 4.9), and nothing
 * the window waits for then comes through the delivery socket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "mqtt/mqtt_int.h"
#include "xmalloc.h"

/* A delivery in flight: packet id <-> (topic, sequence). */
struct outflight {
	RB_ENTRY(outflight) by_pid;
	RB_ENTRY(outflight) by_seq;
	uint16_t	 pid;
	char		*topic;
	char		*share;		/* "$share/G/F" of a group's delivery, or "" */
	uint64_t	 seq;
	bool		 rel;		/* PUBREC'd: waiting for PUBCOMP */
	bool		 stale;		/* sent on an earlier connection, not again yet */
	bool		 early;		/* PUBREL sent at the PUBREC, before the topicd's
					 * DELIVER_REL said the PUBREC is stored */
	bool		 comp;		/* PUBCOMP'd before that DELIVER_REL: over for the
					 * client, passed on to the topicd when it comes */
	bool		 alone;		/* a cold topic's retained message the master
					 * sent from its copy (DF_COPY): no topicd
					 * knows it, the exchange ends with the client */
	bool		 orphan;	/* its subscription went (UNSUBSCRIBE): the
					 * exchange ends with the client alone */
	uint8_t		 qos;		/* it went out with; 0: unknown (older record) */
};
RB_HEAD(pid_tree, outflight);
RB_HEAD(seq_tree, outflight);

#define OUT_UNKNOWN_REL	8

struct mqtt_session {
	struct pid_tree	 pids;
	struct seq_tree	 seqs;
	unsigned	 nsent;		/* not yet PUBACK'd / PUBREC'd */
	unsigned	 nout;		/* in flight */
	unsigned	 nstale;	/* stale */
	unsigned	 nstale_sent;	/* stale and not yet PUBACK'd / PUBREC'd */
	unsigned	 ncomp;		/* comp and not stale */
	unsigned	 norphan_sent;	/* orphans not yet PUBACK'd / PUBREC'd: out of
					 * max_inflight_messages (not out of a 5.0
					 * client's Receive Maximum) */
	uint16_t	 next_pid;
	uint16_t	 unknown_rel[OUT_UNKNOWN_REL];	/* PUBREL'd as not in flight
					 * (0x92), waiting for the client's PUBCOMP: not
					 * given to a new delivery meanwhile; 0: free */
	struct delayed_will *will;	/* will.c */
	struct subopts	 opts;		/* subopts.c */
	struct q0marks	 q0;		/* atmostonce.c */
};

static int
pid_cmp(struct outflight *a, struct outflight *b)
{
	return a->pid - b->pid;
}

static int
seq_cmp(struct outflight *a, struct outflight *b)
{
	int c = strcmp(a->topic, b->topic);

	if (c == 0)
		c = strcmp(a->share, b->share);
	return c != 0 ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

RB_PROTOTYPE(pid_tree, outflight, by_pid, pid_cmp)
RB_GENERATE(pid_tree, outflight, by_pid, pid_cmp)
RB_PROTOTYPE(seq_tree, outflight, by_seq, seq_cmp)
RB_GENERATE(seq_tree, outflight, by_seq, seq_cmp)

static struct mqtt_session *
ms_of(const struct session *s)
{
	return s->ext;
}

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

/* A persistent session's record in the master's store: written (keep)
 * or deleted; false if the store refused it. */
bool
mqtt_record(const struct session *s, char *k, size_t klen, struct wbuf *w, bool keep)
{
	int rc = keep ? kv_put(s->b->store, k, klen, w->data, w->len) :
	    kv_del(s->b->store, k, klen);

	wbuf_free(w);
	free(k);
	return rc != -1;
}

static void
out_store(struct session *s, const struct outflight *o, bool keep)
{
	struct wbuf w;
	size_t klen;
	char *k;

	if (!s->persistent || (o->orphan && keep))
		return;
	k = out_key(s, o->pid, &klen);
	wbuf_init(&w);
	put_u64(&w, o->seq);
	put_u8(&w, o->rel);
	put_str(&w, o->topic);
	put_u8(&w, o->qos);
	put_str(&w, o->share);
	if (!mqtt_record(s, k, klen, &w, keep))
		log_warnx("session %s: cannot record packet %u", s->key, o->pid);
}

static void
out_insert(struct mqtt_session *ms, struct outflight *o)
{
	RB_INSERT(pid_tree, &ms->pids, o);
	RB_INSERT(seq_tree, &ms->seqs, o);
	ms->nout++;
	if (!o->rel)
		ms->nsent++;
}

/* The topicd sent it again on this connection: it counts in the window. */
static void
out_fresh(struct mqtt_session *ms, struct outflight *o)
{
	if (!o->stale)
		return;
	o->stale = false;
	ms->nstale--;
	if (!o->rel)
		ms->nstale_sent--;
	if (o->comp)
		ms->ncomp++;
}

/* PUBREC'd (by the client, or by an earlier connection's as its topicd
 * says): waiting for PUBCOMP, out of the window. */
static void
out_received(struct session *s, struct outflight *o)
{
	if (o->rel)
		return;
	out_fresh(ms_of(s), o);
	o->rel = true;
	ms_of(s)->nsent--;
	if (o->orphan)
		ms_of(s)->norphan_sent--;
	out_store(s, o, true);
}

/* Drops an outflight from memory; forget: from the store too. */
static void
out_drop(struct session *s, struct outflight *o, bool forget)
{
	struct mqtt_session *ms = ms_of(s);

	out_fresh(ms, o);
	if (forget)
		out_store(s, o, false);
	RB_REMOVE(pid_tree, &ms->pids, o);
	RB_REMOVE(seq_tree, &ms->seqs, o);
	ms->nout--;
	if (!o->rel)
		ms->nsent--;
	if (o->comp)
		ms->ncomp--;
	if (o->orphan && !o->rel)
		ms->norphan_sent--;
	free(o->topic);
	free(o->share);
	free(o);
}

static struct outflight *
out_find_seq(struct session *s, const char *topic, const char *share, uint64_t seq)
{
	struct outflight key = { .topic = (char *)topic, .share = (char *)share, .seq = seq };

	return RB_FIND(seq_tree, &ms_of(s)->seqs, &key);
}

/* Is pid one answered PUBREL 0x92 whose PUBCOMP has not come?  With
 * take, it is no longer. */
static bool
unknown_rel(struct mqtt_session *ms, uint16_t pid, bool take)
{
	for (unsigned i = 0; i < OUT_UNKNOWN_REL; i++)
		if (ms->unknown_rel[i] == pid) {
			if (take)
				ms->unknown_rel[i] = 0;
			return true;
		}
	return false;
}

/* A PUBREC for pid, not in flight, is answered PUBREL: its PUBCOMP is
 * to come, and must not be taken for a new delivery's.  The oldest
 * entry gives way to a client that sends many. */
static void
unknown_rel_add(struct mqtt_session *ms, uint16_t pid)
{
	if (unknown_rel(ms, pid, false))
		return;
	memmove(&ms->unknown_rel[1], &ms->unknown_rel[0],
	    sizeof(ms->unknown_rel) - sizeof(ms->unknown_rel[0]));
	ms->unknown_rel[0] = pid;
}

/* A new packet id: the next one not in flight (nor waited for, see
 * unknown_rel); NULL when every id is taken (mqtt_can_take() keeps that
 * from happening). */
static struct outflight *
out_new(struct session *s, const char *topic, const char *share, uint64_t seq, uint8_t qos)
{
	struct mqtt_session *ms = ms_of(s);
	struct outflight *o, key;
	unsigned tries = 0;

	do {
		if (++ms->next_pid == 0)
			ms->next_pid = 1;
		key.pid = ms->next_pid;
		if (++tries > UINT16_MAX)
			return NULL;
	} while (RB_FIND(pid_tree, &ms->pids, &key) != NULL ||
	    unknown_rel(ms, ms->next_pid, false));
	o = xcalloc(1, sizeof(*o));
	o->pid = ms->next_pid;
	o->topic = xstrdup(topic);
	o->share = xstrdup(share);
	o->seq = seq;
	o->qos = qos;
	out_insert(ms, o);
	out_store(s, o, true);
	return o;
}

/* Stale deliveries of topic for the same subscription (share) before seq:
 * its topicd went past them without sending them again, so they were
 * acknowledged. */
static void
out_passed_over(struct session *s, const char *topic, const char *share, uint64_t seq)
{
	struct outflight key = { .topic = (char *)topic, .share = (char *)share, .seq = 0 };
	struct outflight *o, *next;

	for (o = RB_NFIND(seq_tree, &ms_of(s)->seqs, &key); o != NULL && o->seq < seq &&
	    strcmp(o->topic, topic) == 0 && strcmp(o->share, share) == 0; o = next) {
		next = RB_NEXT(seq_tree, &ms_of(s)->seqs, o);
		if (o->stale) {
			log_debug("session %s: packet %u (%s seq %llu) was acknowledged before "
			    "the broker restarted; forgotten", s->key, o->pid, o->topic,
			    (unsigned long long)o->seq);
			out_drop(s, o, true);
		}
	}
}

/* A connection of the session begins: what is in flight is stale, and
 * its PUBRELs are to be sent again.  What the last connection completed
 * stays so (comp): stale too, so that a topicd that went past it ends it
 * as well as its DELIVER_REL. */
void
mqtt_session_reconnected(struct session *s)
{
	struct mqtt_session *ms = ms_of(s);
	struct outflight *o, *next;

	/* A PUBCOMP answering a PUBREL of the last connection does not come. */
	memset(ms->unknown_rel, 0, sizeof(ms->unknown_rel));
	RB_FOREACH_SAFE(o, pid_tree, &ms->pids, next) {
		o->early = false;
		if (o->orphan || o->alone) {
			out_drop(s, o, true);
			continue;
		}
		if (o->stale)
			continue;
		if (o->comp)
			ms->ncomp--;
		o->stale = true;
		ms->nstale++;
		if (!o->rel)
			ms->nstale_sent++;
	}
}

/* The session no longer takes the topic for a subscription (UNSUBSCRIBE,
 * a cursor dropped): share, "" for its own, NULL for all of them.  Its
 * deliveries from there will never be resent or acknowledged by a topicd.
 * Those sent on this connection are exchanges the broker has started,
 * which it completes with the client (MQTT 3.10.4-3): kept, as orphans,
 * until their PUBACK or PUBCOMP, or the end of the connection (nothing
 * is kept to send them again). */
static void
topic_dropped(struct session *s, const char *topic, const char *share)
{
	struct outflight key = { .topic = (char *)topic, .share = (char *)"", .seq = 0 };
	struct outflight *o, *next;

	for (o = RB_NFIND(seq_tree, &ms_of(s)->seqs, &key);
	    o != NULL && strcmp(o->topic, topic) == 0; o = next) {
		next = RB_NEXT(seq_tree, &ms_of(s)->seqs, o);
		if (share != NULL && strcmp(o->share, share) != 0)
			continue;
		if (o->stale || s->cl == NULL || o->comp) {
			out_drop(s, o, true);
			continue;
		}
		out_store(s, o, false);
		o->orphan = true;
		if (!o->rel)
			ms_of(s)->norphan_sent++;
	}
	q0marks_drop(&ms_of(s)->q0, topic, share);
}

/* forget: the session ends for good (its stored ids and QoS 2 records go
 * too, and what it staged is released); otherwise only memory is released
 * (shutdown). */
static void
ended(struct session *s, bool forget)
{
	struct mqtt_session *ms = ms_of(s);
	struct outflight *o;

	mqtt_will_session_end(s, forget);
	subopts_end(s, forget);
	while ((o = RB_MIN(pid_tree, &ms->pids)) != NULL)
		out_drop(s, o, forget);
	q0marks_free(&ms->q0);
	if (forget && s->persistent)
		mqtt_inbound_end(s);
	free(ms);
	s->ext = NULL;
}

static const struct session_ext mqtt_session_ext = {
	.topic_dropped = topic_dropped,
	.ended = ended,
};

struct delayed_will **
mqtt_session_will(struct session *s)
{
	return &ms_of(s)->will;
}

struct subopts *
mqtt_session_opts(struct session *s)
{
	return &ms_of(s)->opts;
}

/* Gives an MQTT session its state (once). */
void
mqtt_session_attach(struct session *s)
{
	struct mqtt_session *ms;

	if (s->ext != NULL)
		return;
	ms = xcalloc(1, sizeof(*ms));
	RB_INIT(&ms->pids);
	RB_INIT(&ms->seqs);
	q0marks_init(&ms->q0);
	s->ext = ms;
	s->ext_ops = &mqtt_session_ext;
}

static int
load_outflight(const void *key, size_t klen, void *arg)
{
	struct broker *b = arg;
	const char *k = key, *nul = memchr(k + 1, '\0', klen - 1);
	struct session *s;
	struct outflight *o;
	struct rbuf r;
	const char *topic, *share = "";
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
	if (r.left > 0)		/* records of older releases lack these */
		get_u8(&r, &qos);
	if (r.left > 0)
		get_str(&r, &share);
	if (get_end(&r) == -1 || o->pid == 0 || qos > 2) {
		log_warnx("session %s: bad in-flight record; ignored", s->key);
		free(o);
	} else {
		mqtt_session_attach(s);
		o->rel = rel != 0;
		o->qos = qos;
		o->topic = xstrdup(topic);
		o->share = xstrdup(share);
		out_insert(ms_of(s), o);
		ms_of(s)->next_pid = o->pid;
	}
	free(val);
	return 0;
}

static void
attach_each(struct broker *b)
{
	struct session *s;

	RB_FOREACH(s, session_tree, &b->sessions)
		if (s->mode == MODE_MQTT)
			mqtt_session_attach(s);
}

/* At start: every MQTT session gets its state, with the deliveries in
 * flight it had. */
void
mqtt_init(struct broker *b)
{
	attach_each(b);
	kv_scan(b->store, "o", 1, load_outflight, b);
	kv_scan(b->store, "u", 1, subopts_load, b);
}

/* Deliveries waiting for PUBACK / PUBREC are bounded by
 * max_inflight_messages; with those waiting for PUBCOMP, every exchange
 * in flight is bounded too, well below the 65535 packet ids. */
#define OUT_MAX 16384

bool
mqtt_can_take(const struct client *cl)
{
	const struct session *s = cl->session;
	const struct mqtt_session *ms = s != NULL ? ms_of(s) : NULL;
	unsigned busy, window;

	if (ms == NULL)
		return true;
	/* An MQTT 5.0 client says how many it takes (Receive Maximum,
	 * 3.3.4-9), as in mosquitto, counted until PUBACK or PUBCOMP; the
	 * others get max_inflight_messages, counted until PUBACK or PUBREC. */
	if (mqtt_v5(cl)) {
		busy = ms->nout - ms->ncomp - ms->nstale;	/* orphans too: its limit */
		window = mqtt_conn(cl)->recv_max;
	} else {
		busy = ms->nsent - ms->nstale_sent - ms->norphan_sent;
		window = cl->b->set.max_inflight_messages;
	}
	/* What is stale goes only as its topicd sends it again, which is
	 * read from here: while some is, reading goes on past OUT_MAX (a
	 * session back with OUT_MAX in flight would never get them), up to
	 * the last free packet id. */
	return busy < window && (ms->nout < OUT_MAX || ms->nstale > 0) && ms->nout < UINT16_MAX;
}

static void
ack_out(struct client *cl, const struct outflight *o, uint8_t kind)
{
	if (!o->alone)
		ack_to_topic(cl->b, cl->session->key, o->topic, o->share, o->seq, kind);
}

/* A delivery the client will not get (MQTT 5.0, deliver5.c): if it was
 * sent before, its packet id is forgotten. */
void
mqtt_out_forget(struct session *s, const char *topic, const char *share, uint64_t seq)
{
	struct outflight *o = out_find_seq(s, topic, share, seq);

	if (o != NULL)
		out_drop(s, o, true);
}

static void
send_publish(struct client *cl, const struct rec_deliver *d, struct mqtt_publish *pub,
    struct ipc_msg *m)
{
	struct wbuf *w = &cl->b->pkt_enc;

	if (mqtt_v5(cl))
		mqtt5_use_alias(cl, pub);
	wbuf_reset(w);
	/* The payload goes from the delivery record to the output (copied
	 * when small), not through the encoder's buffer as well. */
	if (mqtt_enc_publish_head(w, mqtt_conn(cl)->level, pub) == 0) {
		mqtt_send(cl, w);
		if (pub->len > 0)
			client_write_body(cl, pub->payload, pub->len, m);
		cl->b->msgs_out++;
		cl->b->bytes_out += d->payload_len;
	} else {
		log_warnx("client %s: cannot encode a delivery from %s", cl->desc, d->topic);
	}
	mqtt_props_free(&pub->props);
}

/* A message whose Message Expiry Interval passed before the client was
 * sent it is not sent (3.3.2-5): it counts as delivered.  One sent
 * before goes again all the same (4.4), which is why the topicd passes
 * on its resends: only the master knows which ones went out. */
static bool
expired_unsent(struct client *cl, const struct rec_deliver *d)
{
	if (!delivery_expired(d))
		return false;
	log_debug("client %s: %s seq %llu not sent: its Message Expiry Interval passed",
	    cl->desc, d->topic, (unsigned long long)d->seq);
	if (d->qos > 0)
		mqtt_delivery_over(cl, d);
	return true;
}

/* A delivery the client is not sent, or is sent at QoS 0 only, counts as
 * delivered: its topicd moves on.  The master's own (DF_COPY) is no
 * topicd's. */
void
mqtt_delivery_over(struct client *cl, const struct rec_deliver *d)
{
	if (!(d->flags & DF_COPY))
		ack_to_topic(cl->b, cl->session->key, d->topic, d->share, d->seq, ACK_PUBACK);
}

static void
deliver_publish(struct client *cl, const struct rec_deliver *d, struct ipc_msg *m)
{
	struct session *s = cl->session;
	struct outflight *o = NULL;
	struct mqtt_publish pub = {
		.qos = d->qos, .dup = d->qos > 0 && (d->flags & DF_DUP),
		.retain = (d->flags & DF_RETAIN) != 0, .topic = (char *)d->topic,
		.payload = d->payload, .len = d->payload_len,
	};

	/* Sent before: it goes again as it went, whatever QoS the session's
	 * subscription grants now, for the client answers that exchange
	 * (MQTT 4.3.2, 4.3.3); the topicd takes either answer. */
	if (d->qos > 0 || ms_of(s)->nout > 0)
		o = out_find_seq(s, d->topic, d->share, d->seq);
	/* The master sent it from its copy, and now the topicd sends it: the
	 * client's answer is the topicd's. */
	if (o != NULL && o->alone && !(d->flags & DF_COPY))
		o->alone = false;
	/* Sent on this connection, not answered: a restarted topicd sends it
	 * again, but the client has it, and MQTT resends only on a
	 * reconnect (4.4.0-1). */
	if (o != NULL && !o->stale && !o->rel && o->qos > 0) {
		log_debug("client %s: %s seq %llu (packet %u) is in flight on this connection: "
		    "not sent again", cl->desc, d->topic, (unsigned long long)d->seq, o->pid);
		return;
	}
	if (o != NULL && !o->rel && o->qos == 0 && d->qos > 0) {
		o->qos = d->qos;	/* unknown (an older record): as it goes now */
		out_store(s, o, true);
	}
	if (o != NULL && !o->rel && o->qos > 0) {
		pub.qos = o->qos;
		pub.dup = true;
	}
	/* Not a DUP: one a group moved here from a member that went comes
	 * out of order, and a restarted topicd sends QoS 0 as new. */
	if (o == NULL && d->qos == 0 && !(d->flags & (DF_RETAIN | DF_DUP)) &&
	    q0marks_seen(&ms_of(s)->q0, d->topic, d->share, d->seq)) {
		log_debug("client %s: %s seq %llu at QoS 0 was passed on before its topicd "
		    "restarted: not again", cl->desc, d->topic, (unsigned long long)d->seq);
		return;
	}
	if (ms_of(s)->nstale > 0)
		out_passed_over(s, d->topic, d->share, d->seq);	/* those before o */
	/* Before the 5.0 checks, which may drop a message (expired, too
	 * large): this exchange goes on whatever the message is now. */
	if (o != NULL && o->rel) {
		/* The client PUBREC'd it, but a restarted topicd lost that:
		 * tell it again rather than resend (MQTT 4.3.3).  The PUBREL
		 * goes now, as at the PUBREC, unless this connection has had
		 * it; the DELIVER_REL follows, except for a delivery the
		 * topicd now sends at QoS 0, which it has ended. */
		out_fresh(ms_of(s), o);
		ack_out(cl, o, ACK_PUBREC);
		if (!o->comp && !o->early) {
			o->early = d->qos > 0;
			mqtt_send_ack(cl, MQTT_PUBREL, o->pid);
		}
		return;
	}
	if (o == NULL && expired_unsent(cl, d))
		return;
	if (mqtt_v5(cl) && !mqtt5_deliver_prepare(cl, d, &pub, o != NULL))
		return;				/* o may be forgotten */
	if (o != NULL)
		out_fresh(ms_of(s), o);
	else if (pub.qos > 0 && (o = out_new(s, d->topic, d->share, d->seq, pub.qos)) == NULL) {
		mqtt_props_free(&pub.props);
		client_close(cl, "no packet id left");
		return;
	} else if (o != NULL)
		o->alone = (d->flags & DF_COPY) != 0;
	if (o != NULL)
		pub.packet_id = o->pid;
	send_publish(cl, d, &pub, m);
}

/* The topicd has the PUBREC stored: the PUBREL goes, unless it went at
 * the PUBREC; a PUBCOMP held for it goes to the topicd. */
static void
deliver_pubrel(struct client *cl, const struct rec_deliver_rel *r)
{
	struct session *s = cl->session;
	struct outflight *o;

	if (ms_of(s)->nstale > 0)
		out_passed_over(s, r->topic, r->share, r->seq);
	if ((o = out_find_seq(s, r->topic, r->share, r->seq)) == NULL &&
	    (o = out_new(s, r->topic, r->share, r->seq, 2)) == NULL) {
		client_close(cl, "no packet id left");
		return;
	}
	if (o->comp) {
		ack_out(cl, o, ACK_PUBCOMP);
		out_drop(s, o, true);
		return;
	}
	out_fresh(ms_of(s), o);
	out_received(s, o);
	if (o->early)
		o->early = false;
	else
		mqtt_send_ack(cl, MQTT_PUBREL, o->pid);
}

/* A cold topic's retained message, from the master's copy (retcopy.c):
 * small, so the payload is copied to the output. */
void
mqtt_deliver_copy(struct client *cl, const struct rec_deliver *d)
{
	struct ipc_msg m = { .fd = -1 };

	if (cl->session != NULL)
		deliver_publish(cl, d, &m);
}

void
mqtt_deliver(struct client *cl, struct ipc_msg *m)
{
	struct rec_deliver d;
	struct rec_deliver_rel r;
	struct wbuf own;

	if (cl->session == NULL)
		return;
	if (m->type == IPC_DELIVER && dec_deliver(m->body, m->len, &d) == 0) {
		wbuf_init(&own);
		if (m->ring != NULL)		/* the topicd could still write it */
			rec_deliver_own(&d, m->body, m->len, &own);
		deliver_publish(cl, &d, m);
		wbuf_free(&own);
	} else if (m->type == IPC_DELIVER_REL && dec_deliver_rel(m->body, m->len, &r) == 0)
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
	if (o->comp)		/* over for the client */
		return 0;
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

/* PUBACK, PUBREC or PUBCOMP of a delivery: passed to its topic (a
 * PUBCOMP once the topicd has the PUBREC stored).  One for a packet id not
 * in flight (a repeat after a reconnect) changes nothing, but a PUBREC
 * gets its PUBREL all the same (4.3.3), as a PUBREL of a packet id not
 * waiting gets its PUBCOMP: a client that lost the PUBREL is not left
 * waiting; at level 5 it says 0x92 when the id is not in flight.  A
 * PUBREC with an error reason code (MQTT 5.0) ends the exchange
 * (4.3.3): the client refused the message, the topic moves on. */
void
mqtt_ack_in(struct client *cl, uint8_t type, const struct mqtt_ack *a)
{
	uint16_t pid = a->packet_id;
	struct session *s = cl->session;
	struct outflight key = { .pid = pid }, *o = RB_FIND(pid_tree, &ms_of(s)->pids, &key);
	char why[128];
	int fits = o != NULL ? ack_fits(o, type) : 0;

	if (fits == 0) {
		bool rel = type == MQTT_PUBREC && a->reason < 0x80;

		log_debug("client %s: %s for packet %u %s%s", cl->desc, mqtt_type_name(type), pid,
		    o == NULL ? "not in flight" : "again", rel ? ": PUBREL again" : "; ignored");
		if (rel && o == NULL) {
			unknown_rel_add(ms_of(s), pid);
			mqtt_send_reason_ack(cl, MQTT_PUBREL, pid, MQTT_RC_PACKET_ID_NOT_FOUND,
			    "no delivery of that packet identifier is in flight");
		} else if (rel)
			mqtt_send_ack(cl, MQTT_PUBREL, pid);	/* o->rel or o->comp */
		else if (type == MQTT_PUBCOMP && o == NULL)
			(void)unknown_rel(ms_of(s), pid, true);
		return;
	}
	if (fits == -1) {
		snprintf(why, sizeof(why),
		    "%s for packet %u, a QoS %u delivery%s: protocol violation", mqtt_type_name(type),
		    pid, o->qos,
		    o->qos == 2 && !o->rel && type == MQTT_PUBCOMP ? ", before the PUBREL" : "");
		mqtt_close(cl, MQTT_RC_PROTOCOL_ERROR, why);	/* 5.0 says why (4.13.2) */
		return;
	}
	if (type == MQTT_PUBREC && a->reason >= 0x80) {
		log_info("client %s: PUBREC %s for packet %u: the message is dropped", cl->desc,
		    mqtt_reason_name(a->reason), pid);
		type = MQTT_PUBCOMP;
	}
	if (o->orphan || o->alone) {
		/* No topicd has it (any more): the client alone ends it. */
		if (type == MQTT_PUBREC) {
			out_received(s, o);
			mqtt_send_ack(cl, MQTT_PUBREL, o->pid);
		} else
			out_drop(s, o, true);
	} else if (type == MQTT_PUBCOMP && o->early) {
		o->comp = true;		/* until the topicd has the PUBREC */
		ms_of(s)->ncomp++;
	} else {
		ack_out(cl, o, type == MQTT_PUBACK ? ACK_PUBACK :
		    type == MQTT_PUBREC ? ACK_PUBREC : ACK_PUBCOMP);
		if (type == MQTT_PUBREC) {
			out_received(s, o);
			o->early = true;
			mqtt_send_ack(cl, MQTT_PUBREL, o->pid);
		} else
			out_drop(s, o, true);
	}
	delivery_resume(cl);
}
