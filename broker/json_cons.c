/* The JSON-lines consumer port: login, SUB / UNSUB, the consumer's side of
 * the QoS 2 exchange, and deliveries.  A username's subscriptions are
 * remembered and resumed at login. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "ipc.h"
#include "json_codec.h"
#include "log.h"
#include "xmalloc.h"

static int
name_cmp(struct client *a, struct client *b)
{
	return strcmp(a->username, b->username);
}

RB_PROTOTYPE(client_names, client, by_name, name_cmp)
RB_GENERATE(client_names, client, by_name, name_cmp)

void
json_cons_start(struct client *cl)
{
	client_line(cl, JL_TEXT_PLEASE_LOGIN);
}

/* Resumes every remembered subscription of the user. */
static void
resume(struct client *cl)
{
	char **topics;
	size_t n;
	const char *why;

	if (sessions_topics(cl->b, cl->subkey, &topics, &n) == -1) {
		client_error(cl, "cannot read the stored subscriptions");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct child *c = child_get(cl->b, topics[i], true, &why);

		if (c != NULL)
			attach_topic(cl, c, false);
		else
			log_warnx("client %s user %s: cannot resume topic %s: %s", cl->desc,
			    cl->username, topics[i], why);
		free(topics[i]);
	}
	free(topics);
}

static void
login(struct client *cl, const char *line, size_t len)
{
	struct client key;
	char *name;

	if (!jl_parse_login(line, len, &name)) {
		if (++cl->login_tries >= cl->b->set.login_attempts) {
			client_close(cl, "too many failed logins");
			return;
		}
		client_line(cl, JL_TEXT_PLEASE_LOGIN);
		return;
	}
	key.username = name;
	if (RB_FIND(client_names, &cl->b->consumers, &key) != NULL) {
		client_error(cl, "user is already connected");
		log_info("client %s: user %s is already connected; refused", cl->desc, name);
		free(name);
		client_close(cl, "duplicate login");
		return;
	}
	if (delivery_open(cl) == -1) {
		client_error(cl, "cannot set up delivery");
		free(name);
		client_close(cl, "no delivery socket");
		return;
	}
	cl->username = name;
	xasprintf(&cl->subkey, "j/%s", name);
	RB_INSERT(client_names, &cl->b->consumers, cl);
	log_info("client %s: logged in as %s", cl->desc, name);
	client_line(cl, JL_TEXT_LOGGED_IN);
	resume(cl);
}

static void
subscribe(struct client *cl, const char *topic)
{
	const char *why;
	struct child *c;

	if (strpbrk(topic, "+#") != NULL) {
		client_error(cl, "wildcard subscriptions are not supported on this port");
		return;
	}
	if ((c = child_get(cl->b, topic, true, &why)) == NULL) {
		client_error(cl, why);
		return;
	}
	if (sessions_add(cl->b, cl->subkey, topic) == -1) {
		client_error(cl, "cannot store the subscription");
		return;
	}
	attach_topic(cl, c, true);
}

static void
unsubscribe(struct client *cl, const char *topic)
{
	const char *why;
	struct child *c = child_get(cl->b, topic, false, &why);
	struct attachment *a = c ? attach_find(cl, c) : NULL;
	struct wbuf w;

	if (sessions_remove(cl->b, cl->subkey, topic) == -1) {
		client_error(cl, "cannot store the unsubscription");
		return;
	}
	if (a == NULL) {
		client_line(cl, JL_TEXT_OK);
		return;
	}
	/* The cursor stays: a later SUB resumes where this one stopped. */
	struct rec_unsub r = { .req = broker_req(cl->b), .subkey = cl->subkey, .flags = 0 };
	wbuf_init(&w);
	enc_unsub(&w, &r);
	struct held *h = held_new(HELD_UNSUB, IPC_UNSUB, r.req, &w);
	wbuf_free(&w);
	h->client_id = cl->id;
	attach_drop(a, false);
	if (child_submit(c, h, &why) == -1) {
		held_free(h);
		client_line(cl, JL_TEXT_OK);	/* nothing to stop in a failed topic */
	}
}

static void
ack(struct client *cl, const struct jl_request *r, uint8_t kind)
{
	const char *why;
	struct child *c = child_get(cl->b, r->topic, false, &why);
	struct rec_ack a = { .subkey = cl->subkey, .seq = r->msg_id, .kind = kind };
	struct wbuf w;

	client_line(cl, JL_TEXT_OK);
	if (c == NULL)
		return;
	wbuf_init(&w);
	enc_ack(&w, &a);
	child_send(c, IPC_ACK, &w);
	wbuf_free(&w);
}

void
json_cons_line(struct client *cl, const char *line, size_t len)
{
	struct jl_request r;

	if (cl->username == NULL) {
		login(cl, line, len);
		return;
	}
	switch (jl_parse(line, len, &r)) {
	case JL_SUB:
		subscribe(cl, r.topic);
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
	case JL_INVALID_JSON:
		client_line(cl, JL_TEXT_INVALID_JSON);
		dlq_bad_input(cl, "invalid_json", NULL, line, len);
		break;
	case JL_BAD_REQUEST:
		client_error(cl, r.error);
		dlq_bad_input(cl, "bad_request", r.topic, line, len);
		break;
	default:	/* unknown, or a publisher's command */
		client_line(cl, JL_TEXT_UNKNOWN_COMMAND);
		dlq_bad_input(cl, "unknown_command", NULL, line, len);
		break;
	}
	jl_request_free(&r);
}

void
json_cons_closed(struct client *cl)
{
	while (!TAILQ_EMPTY(&cl->attached))
		attach_drop(TAILQ_FIRST(&cl->attached), true);
	if (cl->username != NULL)
		RB_REMOVE(client_names, &cl->b->consumers, cl);
	free(cl->username);
	free(cl->subkey);
	cl->username = cl->subkey = NULL;
}

void
json_cons_deliver(struct client *cl, const struct ipc_msg *m)
{
	struct rec_deliver d;
	struct rec_deliver_rel r;
	struct wbuf w;

	wbuf_init(&w);
	if (m->type == IPC_DELIVER && dec_deliver(m->body, m->len, &d) == 0) {
		if (jl_enc_deliver(&w, d.topic, d.seq, d.payload, d.payload_len,
		    (d.flags & DF_JSON) != 0) == 0) {
			cl->b->msgs_out++;
			cl->b->bytes_out += d.payload_len;
		}
	} else if (m->type == IPC_DELIVER_REL && dec_deliver_rel(m->body, m->len, &r) == 0) {
		jl_enc_pubrel(&w, r.seq);
	} else {
		log_warnx("client %s: bad %s record on its delivery socket", cl->desc,
		    ipc_type_name(m->type));
	}
	if (w.len > 0)
		client_write(cl, &w);
	wbuf_free(&w);
}
