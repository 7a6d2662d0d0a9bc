/* The JSON-lines consumer port: login, SUB / UNSUB, the consumer's side of
 * the QoS 2 exchange, and deliveries.  A username's subscriptions are
 * remembered and resumed at login. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "json/json_int.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

static void
cons_start(struct client *cl)
{
	json_conn_new(cl, true);
	json_line(cl, JL_TEXT_PLEASE_LOGIN);
	json_update_idle(cl);
}

static void
login(struct client *cl, const char *line, size_t len)
{
	struct json_conn *jc = json_conn(cl);
	struct session *s;
	char *name, *skey, *password;
	bool checked;

	if (!json_parse_login(cl, line, len, &name, &password)) {
		if (++jc->login_tries >= cl->b->set.login_attempts) {
			client_close_fault(cl, "too many failed logins");
			return;
		}
		json_line(cl, JL_TEXT_PLEASE_LOGIN);
		return;
	}
	if (!json_login(cl, name, password, &checked)) {
		free(name);
		free(password);
		return;
	}
	free(password);
	xasprintf(&skey, "j/%s", name);
	s = session_find(cl->b, skey);
	free(skey);
	if (s != NULL && s->cl != NULL) {
		log_notice("client %s: user %s is already connected; refused", cl->desc, name);
		free(name);
		json_error(cl, "user is already connected");
		return;
	}
	if (!json_may_resume(cl, s, name)) {
		free(name);
		return;
	}
	if (delivery_open(cl) == -1) {
		free(name);
		json_error(cl, "cannot set up delivery");
		return;
	}
	jc->username = name;
	if (s == NULL) {
		xasprintf(&skey, "j/%s", name);
		s = session_new(cl->b, skey, MODE_JSON, true);
		free(skey);
	}
	session_online(s, cl, checked ? name : NULL);
	snprintf(cl->desc + strlen(cl->desc), sizeof(cl->desc) - strlen(cl->desc), " user %s",
	    name);
	log_info("client %s: logged in", cl->desc);
	json_line(cl, JL_TEXT_LOGGED_IN);
	session_attach_all(s, NULL, false);	/* resume what it subscribed to */
}

/* Refusals that end the connection (a failed topic, too many topics, a
 * store that cannot be written) are ERROR lines; a filter no one may
 * subscribe to is an unknown command.  "$share/GROUP/FILTER" joins the
 * group of consumers that share FILTER's messages (one gets each). */
static void
subscribe(struct client *cl, const char *filter, const char *line, size_t len)
{
	struct session *s = cl->session;
	const char *why, *route = filter;
	struct child *c;

	if (topic_share_split(filter, &route) == -1) {
		json_unknown(cl, "bad_share", "SUB to a malformed $share/GROUP/FILTER", filter,
		    line, len);
		return;
	}
	if (!session_may_add_filter(s, filter)) {
		json_unknown(cl, "too_many_subscriptions", "SUB past max_subscriptions", filter,
		    line, len);
		return;
	}
	if (!auth_may_subscribe(cl->auth, s->user, session_client_id(s), route)) {
		json_denied(cl, "SUB", filter);
		return;
	}
	if (route[0] == '$' && strcmp(route, cl->b->set.dead_letter_topic) != 0) {
		json_unknown(cl, "reserved_topic", "SUB to a topic starting with $ (reserved)",
		    filter, line, len);
		return;
	}
	if (strpbrk(route, "+#") == NULL) {
		if ((c = topic_open(cl->b, route, &why)) == NULL) {
			json_error(cl, why);
			return;
		}
		if (c->state == CH_FAILED) {
			json_error(cl, "the topic's store is damaged (topic failed)");
			return;
		}
	}
	session_add_filter(s, filter, 2);
	client_gate(cl, session_save(s));	/* OK once the subscription is durable */
	session_attach_all(s, filter, false);
	json_line(cl, JL_TEXT_OK);
}

static void
unsubscribe(struct client *cl, const char *filter)
{
	struct session *s = cl->session;
	struct attachment *a, *next;

	if (session_remove_filter(s, filter))
		client_gate(cl, session_save(s));
	/* The cursors stay: a later SUB resumes where this one stopped. */
	TAILQ_FOREACH_SAFE(a, &cl->attached, by_client, next)
		if (topic_matches(filter, a->child->topic))
			session_sync_topic(s, a->child, false);
	json_line(cl, JL_TEXT_OK);
}

static void
ack(struct client *cl, const struct jl_request *r, uint8_t kind)
{
	json_line(cl, JL_TEXT_OK);
	ack_to_topic(cl->b, cl->session->key, r->topic, "", r->msg_id, kind);
}

static void
cons_line(struct client *cl, const char *line, size_t len)
{
	struct jl_request r;

	if (json_conn(cl)->username == NULL) {
		login(cl, line, len);
		return;
	}
	switch (jl_parse_limited(line, len, cl->b->set.max_topic_levels, &r)) {
	case JL_SUB:
		subscribe(cl, r.topic, line, len);
		break;
	case JL_UNSUB:
		unsubscribe(cl, r.topic);
		break;
	case JL_PUBREC:
		ack(cl, &r, ACK_PUBREC);
		break;
	case JL_PUBCOMP:
		ack(cl, &r, ACK_PUBCOMP);
		break;
	default:	/* bad, unknown, or a publisher's command */
		json_refuse(cl, &r, line, len);
		break;
	}
	jl_request_free(&r);
}

static void
cons_read(struct client *cl)
{
	json_read_lines(cl, cons_line);
	json_update_idle(cl);
}

static void
cons_closed(struct client *cl)
{
	struct json_conn *jc = json_conn(cl);

	while (!TAILQ_EMPTY(&cl->attached))
		attach_drop(TAILQ_FIRST(&cl->attached), true);
	if (cl->session != NULL)
		session_offline(cl->session);
	free(jc->username);
	free(jc);
}

static void
cons_deliver(struct client *cl, struct ipc_msg *m)
{
	struct rec_deliver d;
	struct rec_deliver_rel r;
	struct wbuf w, own;

	wbuf_init(&w);
	wbuf_init(&own);
	if (m->type == IPC_DELIVER && dec_deliver(m->body, m->len, &d) == 0) {
		if (m->ring != NULL)		/* the topicd could still write it */
			rec_deliver_own(&d, m->body, m->len, &own);
		if (jl_enc_deliver(&w, d.topic, d.seq, d.payload, d.payload_len,
		    (d.flags & DF_JSON) != 0) == 0) {
			cl->b->msgs_out++;
			cl->b->bytes_out += d.payload_len;
		}
	} else if (m->type == IPC_DELIVER_REL && dec_deliver_rel(m->body, m->len, &r) == 0) {
		/* msgId is a sequence number of its topic: the topic says which. */
		if (jl_enc_pubrel(&w, r.seq, r.topic) == -1)
			log_warnx("client %s: cannot encode a PUBREL of %s", cl->desc, r.topic);
	} else {
		log_warnx("client %s: bad %s record on its delivery socket", cl->desc,
		    ipc_type_name(m->type));
	}
	if (w.len > 0)
		client_write(cl, w.data, w.len);
	wbuf_free(&w);
	wbuf_free(&own);
}

/* A consumer takes one message at a time per topic (its topicds see to
 * that): nothing to count here. */
static bool
cons_can_take(const struct client *cl)
{
	(void)cl;
	return true;
}

const struct proto json_consumer_proto = {
	.name = "JSON-lines consumer",
	.start = cons_start,
	.read = cons_read,
	.deliver = cons_deliver,
	.can_take = cons_can_take,
	.idle = json_idle,
	.closed = cons_closed,
};
