/* The JSON-lines publisher port: PUB -> PUBREC once durable, PUBREL ->
 * PUBCOMP once released.  Message ids are unique per connection; what a
 * connection staged is released when it goes (it was told it is stored). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "json/json_int.h"
#include "log.h"
#include "xmalloc.h"

static int
pubmap_cmp(struct pubmap *a, struct pubmap *b)
{
	return a->msg_id < b->msg_id ? -1 : a->msg_id > b->msg_id;
}

RB_PROTOTYPE(pubmap_tree, pubmap, entry, pubmap_cmp)
RB_GENERATE(pubmap_tree, pubmap, entry, pubmap_cmp)

/* The topic of a message this connection staged under id (between PUBREC
 * and PUBCOMP), or NULL. */
static struct pubmap *
pending_find(struct json_conn *jc, uint64_t id)
{
	struct pubmap key = { .msg_id = id };

	return RB_FIND(pubmap_tree, &jc->pending, &key);
}

/* Not a copy of the topic: a publisher that never sends PUBREL would
 * hold one per message, up to message_size_limit each, in the master. */
static void
pending_set(struct json_conn *jc, uint64_t id, struct child *c)
{
	struct pubmap *pm;

	if (pending_find(jc, id) != NULL)
		return;
	pm = xcalloc(1, sizeof(*pm));
	pm->msg_id = id;
	pm->child = c;
	c->pins++;
	RB_INSERT(pubmap_tree, &jc->pending, pm);
}

static void
pending_del(struct json_conn *jc, struct pubmap *pm)
{
	RB_REMOVE(pubmap_tree, &jc->pending, pm);
	pm->child->pins--;
	free(pm);
}

/* The next msgId: never 0, nor one still waiting for its PUBREL (the ids
 * of a connection wrap at 2^32). */
static uint32_t
next_id(struct json_conn *jc)
{
	uint32_t id;

	do
		id = (uint32_t)++jc->next_msg_id;
	while (id == 0 || pending_find(jc, id) != NULL);
	return id;
}

/* The PUBREC or PUBCOMP of msg_id, in its line's place. */
static void
answer(struct client *cl, uint64_t msg_id, bool pubrec)
{
	struct wbuf w;

	wbuf_init(&w);
	if (pubrec)
		jl_enc_pubrec(&w, msg_id);
	else
		jl_enc_pubcomp(&w, msg_id);
	json_answer_ready(cl, msg_id, pubrec, w.data, w.len);
	wbuf_free(&w);
}

static void submit_release(struct client *, struct child *, uint64_t);

/* PUBREC: stored (staged); PUBCOMP: released.  A PUBREL that came before
 * the message was stored releases it now. */
static void
publish_done(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *cl = client_by_id(c->b, h->client_id);
	struct pubmap *pm;

	if (cl == NULL || cl->closing)
		return;
	if (d->status != ST_OK) {
		json_error(cl, "message not stored: its topic failed");
		return;
	}
	if ((pm = pending_find(json_conn(cl), h->arg)) == NULL) {
		pending_set(json_conn(cl), h->arg, c);
		pm = pending_find(json_conn(cl), h->arg);
	}
	pm->stored = true;
	answer(cl, h->arg, true);
	for (unsigned n = pm->releases; n > 0 && !cl->closing; n--)
		submit_release(cl, c, h->arg);
}

static void
release_done(struct child *c, struct held *h, const struct rec_done *d)
{
	struct client *cl = client_by_id(c->b, h->client_id);
	struct pubmap *pm;

	if (cl == NULL || cl->closing)
		return;
	if (d->status != ST_OK) {
		json_error(cl, "message not released: its topic failed");
		return;
	}
	if ((pm = pending_find(json_conn(cl), h->arg)) != NULL)
		pending_del(json_conn(cl), pm);
	answer(cl, h->arg, false);
}

static void
publish(struct client *cl, struct jl_request *r)
{
	struct json_conn *jc = json_conn(cl);
	struct child *c;
	const char *why = NULL;

	if (!auth_may(cl->auth, jc->user, jc->user != NULL ? jc->user : "", r->topic, AUTH_WRITE)) {
		json_denied(cl, "PUB", r->topic);
		return;
	}
	if (topic_reserved(cl->b, r->topic)) {
		/* $DLQ, $SYS...: written by the broker only. */
		json_unknown(cl, "reserved_topic", r->topic[0] == '$' ?
		    "PUB to a topic starting with $ (reserved)" :
		    "PUB to the dead-letter topic (written by the broker only)",
		    r->topic, r->payload, r->payload_len);
		return;
	}
	struct rec_publish p = {
		.req = broker_req(cl->b), .owner = owner_name(cl),
		.pubid = next_id(jc), .qos = 2,
		.flags = PF_STAGE | (r->payload_json ? PF_JSON : 0), .time_ms = (uint64_t)wall_ms_coarse(),
		.payload = r->payload, .payload_len = r->payload_len,
	};
	/* Not stored, not acknowledged: the client is told (an ERROR line
	 * ends the connection) and sends it again later. */
	json_answer_expect(cl, p.pubid, true);
	if ((c = topic_open(cl->b, r->topic, &why)) == NULL || c->state == CH_FAILED ||
	    publish_submit(cl, c, &p, publish_done, p.pubid, &why) == -1) {
		json_error(cl, why ? why : "the topic's store is damaged (topic failed)");
		return;
	}
	/* Its id is taken from now on: a PUBREL sent before its PUBREC was
	 * read names it, and waits for it to be stored. */
	pending_set(jc, p.pubid, c);
}

static void
submit_release(struct client *cl, struct child *c, uint64_t msg_id)
{
	struct rec_release r = { .req = broker_req(cl->b), .owner = owner_name(cl),
				 .pubid = (uint32_t)msg_id };
	const char *why;

	if (release_submit(cl, c, &r, release_done, msg_id, &why) == -1)
		json_error(cl, why);
}

static void
release(struct client *cl, uint64_t msg_id)
{
	struct pubmap *pm = pending_find(json_conn(cl), msg_id);

	if (pm == NULL) {
		answer(cl, msg_id, false);	/* unknown or completed: PUBCOMP, as in MQTT */
		return;
	}
	json_answer_expect(cl, msg_id, false);
	if (pm->stored)
		submit_release(cl, pm->child, msg_id);
	else
		pm->releases++;		/* once it is stored (publish_done) */
}

/* With a password file, the first line: a login, or (if anonymous
 * publishers may come in) already a command.  True when the line is
 * done with. */
static bool
pub_login(struct client *cl, const char *line, size_t len)
{
	struct json_conn *jc = json_conn(cl);
	char *name, *password;
	bool checked;

	if (!jl_parse_login_password(line, len, &name, &password)) {
		if (cl->auth->anonymous) {
			jc->login_pending = false;	/* an anonymous publisher */
			return false;
		}
		if (++jc->login_tries >= cl->b->set.login_attempts)
			client_close_fault(cl, "too many failed logins");
		else
			json_line(cl, JL_TEXT_PLEASE_LOGIN);
		return true;
	}
	if (json_login(cl, name, password, &checked)) {
		jc->login_pending = false;
		jc->user = name;
		name = NULL;
		snprintf(cl->desc + strlen(cl->desc), sizeof(cl->desc) - strlen(cl->desc),
		    " user %s", jc->user);
		log_info("client %s: logged in", cl->desc);
		json_line(cl, JL_TEXT_LOGGED_IN);
	}
	free(name);
	free(password);
	return true;
}

static void
pub_line(struct client *cl, const char *line, size_t len)
{
	struct jl_request r;

	if (json_conn(cl)->login_pending && pub_login(cl, line, len))
		return;

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

static void
pub_start(struct client *cl)
{
	char *owner;

	json_conn_new(cl, false)->login_pending = auth_has_passwords(cl->auth);
	xasprintf(&owner, "j/%016llx/%llu", (unsigned long long)cl->b->boot_id,
	    (unsigned long long)cl->id);
	owner_set(cl, owner);
	free(owner);
	if (!auth_has_passwords(cl->auth) && !cl->auth->anonymous) {
		json_refuse_anonymous(cl);	/* nobody could log in */
		return;
	}
	json_update_idle(cl);
}

static void
pub_read(struct client *cl)
{
	json_read_lines(cl, pub_line);
	json_update_idle(cl);
}

/* What it staged is released: it was told it is stored. */
static void
pub_closed(struct client *cl)
{
	struct json_conn *jc = json_conn(cl);
	struct pubmap *pm;

	owner_closed(cl, true);
	while ((pm = RB_MIN(pubmap_tree, &jc->pending)) != NULL)
		pending_del(jc, pm);
	json_answers_free(jc);
	free(jc->user);
	free(jc);
}

static void
pub_deliver(struct client *cl, struct ipc_msg *m)
{
	(void)cl;
	(void)m;		/* a publisher has no delivery socket */
}

static bool
pub_can_take(const struct client *cl)
{
	(void)cl;
	return false;
}

const struct proto json_publisher_proto = {
	.name = "JSON-lines publisher",
	.start = pub_start,
	.read = pub_read,
	.deliver = pub_deliver,
	.can_take = pub_can_take,
	.idle = json_idle,
	.closed = pub_closed,
};
