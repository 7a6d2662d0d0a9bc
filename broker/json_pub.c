/* The JSON-lines publisher port: PUB -> PUBREC once durable, PUBREL ->
 * PUBCOMP once released.  Message ids are unique per connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "json_codec.h"
#include "log.h"
#include "xmalloc.h"

/* msgId -> topic, from PUBREC until PUBCOMP; and the topics a connection
 * published to, to release what it staged when it goes. */
struct pubmap {
	RB_ENTRY(pubmap) entry;
	uint64_t msg_id;
	char    *topic;
};
RB_HEAD(pubmap_tree, pubmap);

struct topicset {
	RB_ENTRY(topicset) entry;
	char *topic;
};
RB_HEAD(topicset_tree, topicset);

struct pubstate {
	struct pubmap_tree   pending;
	struct topicset_tree published;
};

static int
pubmap_cmp(struct pubmap *a, struct pubmap *b)
{
	return a->msg_id < b->msg_id ? -1 : a->msg_id > b->msg_id;
}

static int
topicset_cmp(struct topicset *a, struct topicset *b)
{
	return strcmp(a->topic, b->topic);
}

RB_PROTOTYPE(pubmap_tree, pubmap, entry, pubmap_cmp)
RB_GENERATE(pubmap_tree, pubmap, entry, pubmap_cmp)
RB_PROTOTYPE(topicset_tree, topicset, entry, topicset_cmp)
RB_GENERATE(topicset_tree, topicset, entry, topicset_cmp)

static struct pubstate *
state(struct client *cl)
{
	if (cl->pub == NULL) {
		cl->pub = xcalloc(1, sizeof(*cl->pub));
		RB_INIT(&cl->pub->pending);
		RB_INIT(&cl->pub->published);
		if (cl->owner == NULL)
			xasprintf(&cl->owner, "j/%016llx/%llu", (unsigned long long)cl->b->boot_id,
			    (unsigned long long)cl->id);
	}
	return cl->pub;
}

/* The topic of a message this connection staged under id (between PUBREC
 * and PUBCOMP), or NULL. */
const char *
pub_pending_get(struct client *cl, uint64_t id)
{
	struct pubmap key = { .msg_id = id }, *pm;

	pm = RB_FIND(pubmap_tree, &state(cl)->pending, &key);
	return pm ? pm->topic : NULL;
}

void
pub_pending_set(struct client *cl, uint64_t id, const char *topic)
{
	struct pubmap *pm;

	if (pub_pending_get(cl, id) != NULL)
		return;
	pm = xcalloc(1, sizeof(*pm));
	pm->msg_id = id;
	pm->topic = xstrdup(topic);
	RB_INSERT(pubmap_tree, &cl->pub->pending, pm);
}

void
pub_pending_del(struct client *cl, uint64_t id)
{
	struct pubmap key = { .msg_id = id }, *pm;

	if ((pm = RB_FIND(pubmap_tree, &state(cl)->pending, &key)) != NULL) {
		RB_REMOVE(pubmap_tree, &cl->pub->pending, pm);
		free(pm->topic);
		free(pm);
	}
}

void
pub_note_topic(struct client *cl, const char *topic)
{
	struct topicset key = { .topic = (char *)topic }, *t;

	if (RB_FIND(topicset_tree, &state(cl)->published, &key) != NULL)
		return;
	t = xcalloc(1, sizeof(*t));
	t->topic = xstrdup(topic);
	RB_INSERT(topicset_tree, &cl->pub->published, t);
}

static void
publish(struct client *cl, struct jl_request *r)
{
	struct child *c;
	const char *why;
	struct wbuf w;

	if (r->topic[0] == '$') {
		/* $DLQ, $SYS...: written by the broker only. */
		json_unknown(cl, "reserved_topic", "PUB to a topic starting with $ (reserved)",
		    r->topic, r->payload, r->payload_len);
		return;
	}
	/* Not stored, not acknowledged: the client is told (an ERROR line
	 * ends the connection) and sends it again later. */
	c = child_get(cl->b, r->topic, true, &why);
	if (c == NULL || c->state == CH_FAILED) {
		client_error(cl, why ? why : "the topic's store is damaged (topic failed)");
		return;
	}
	state(cl);
	struct rec_publish p = {
		.req = broker_req(cl->b), .owner = cl->owner,
		.pubid = (uint32_t)++cl->next_msg_id, .qos = 2,
		.flags = PF_STAGE | (r->payload_json ? PF_JSON : 0), .time_ms = (uint64_t)wall_ms(),
		.payload = r->payload, .payload_len = r->payload_len,
	};
	wbuf_init(&w);
	enc_publish(&w, &p);
	struct held *h = held_new(HELD_JSON_PUB, IPC_PUBLISH, p.req, &w);
	wbuf_free(&w);
	h->client_id = cl->id;
	h->msg_id = p.pubid;
	h->client_desc = xstrdup(cl->desc);
	h->port = cl->port;
	pub_note_topic(cl, r->topic);
	if (child_submit(c, h, &why) == -1) {
		client_error(cl, why);
		held_free(h);
		return;
	}
	cl->b->msgs_in++;
	cl->b->bytes_in += r->payload_len;
}

static void
release(struct client *cl, uint64_t msg_id)
{
	const char *topic = pub_pending_get(cl, msg_id), *why;
	struct child *c = topic ? child_get(cl->b, topic, false, &why) : NULL;
	struct wbuf w;

	if (c == NULL) {
		/* Unknown or already completed: PUBCOMP, as in MQTT. */
		wbuf_init(&w);
		jl_enc_pubcomp(&w, msg_id);
		client_write(cl, &w);
		wbuf_free(&w);
		return;
	}
	struct rec_release r = { .req = broker_req(cl->b), .owner = cl->owner,
				 .pubid = (uint32_t)msg_id };
	wbuf_init(&w);
	enc_release(&w, &r);
	struct held *h = held_new(HELD_JSON_REL, IPC_RELEASE, r.req, &w);
	wbuf_free(&w);
	h->client_id = cl->id;
	h->msg_id = msg_id;
	if (child_submit(c, h, &why) == -1) {
		client_error(cl, why);
		held_free(h);
	}
}

void
json_pub_line(struct client *cl, const char *line, size_t len)
{
	struct jl_request r;

	switch (jl_parse_limited(line, len, cl->b->set.max_topic_levels, &r)) {
	case JL_PUB:
		publish(cl, &r);
		break;
	case JL_PUBREL:
		release(cl, r.msg_id);
		break;
	default:	/* bad, unknown, or a consumer's command */
		json_refuse(cl, &r, line, len);
		break;
	}
	jl_request_free(&r);
}

void
json_pub_done(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *cl = client_by_id(c->b, h->client_id);
	struct wbuf w;

	if (cl == NULL || cl->closing)
		return;
	if (d->status != ST_OK) {
		client_error(cl, "message not stored: its topic failed");
		return;
	}
	wbuf_init(&w);
	if (h->kind == HELD_JSON_PUB) {
		pub_pending_set(cl, h->msg_id, c->topic);
		jl_enc_pubrec(&w, h->msg_id);
	} else {
		pub_pending_del(cl, h->msg_id);
		jl_enc_pubcomp(&w, h->msg_id);
	}
	client_write(cl, &w);
	wbuf_free(&w);
}

void
json_pub_closed(struct client *cl)
{
	publisher_closed(cl, true);
}

/* The connection is gone.  release: what it staged is released (it was
 * told it is stored, and stored messages are never lost); a persistent
 * MQTT session instead keeps it staged for the PUBREL after reconnecting. */
void
publisher_closed(struct client *cl, bool release)
{
	struct pubmap *pm, *pn;
	struct topicset *t, *tn;
	const char *why;
	struct wbuf w;

	if (cl->pub == NULL) {
		free(cl->owner);
		cl->owner = NULL;
		return;
	}
	RB_FOREACH_SAFE(t, topicset_tree, &cl->pub->published, tn) {
		struct child *c = child_get(cl->b, t->topic, false, &why);
		struct rec_release_owner r = { .req = broker_req(cl->b), .owner = cl->owner };

		if (release && c != NULL && c->state != CH_FAILED) {
			wbuf_init(&w);
			enc_release_owner(&w, &r);
			/* Held until answered, replayed into a restarted topicd. */
			struct held *h = held_new(HELD_NOTE, IPC_RELEASE_OWNER, r.req, &w);
			wbuf_free(&w);
			if (child_submit(c, h, &why) == -1)
				held_free(h);
		}
		RB_REMOVE(topicset_tree, &cl->pub->published, t);
		free(t->topic);
		free(t);
	}
	RB_FOREACH_SAFE(pm, pubmap_tree, &cl->pub->pending, pn) {
		RB_REMOVE(pubmap_tree, &cl->pub->pending, pm);
		free(pm->topic);
		free(pm);
	}
	free(cl->pub);
	cl->pub = NULL;
	free(cl->owner);
	cl->owner = NULL;
}
