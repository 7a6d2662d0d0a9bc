/* A client protocol in a test of the master's core: its table of
 * operations (struct proto) and its hooks in sessions (struct
 * session_ext) record what the core does with them in the fixture, and
 * the done callback of the requests the tests make records the answers. */
#ifndef TESTS_UNIT_FAKE_PROTO_H
#define TESTS_UNIT_FAKE_PROTO_H

#include "core_fixture.h"

static inline void
fake_start(struct client *cl)
{
	(void)cl;
}

static inline void
fake_read(struct client *cl)
{
	struct evbuffer *in = client_input(cl);

	if (FX_OF(cl->b)->read_hook != NULL)
		FX_OF(cl->b)->read_hook(cl);
	(void)evbuffer_drain(in, evbuffer_get_length(in));
}

static inline void
fake_deliver(struct client *cl, struct ipc_msg *m)
{
	struct core_fx *fx = FX_OF(cl->b);
	struct rec_deliver d;

	assert_int_equal(m->type, IPC_DELIVER);
	assert_int_equal(dec_deliver(m->body, m->len, &d), 0);
	assert_true(fx->ndelivered < FX_MAX_LOG);
	fx->delivered[fx->ndelivered++] = (struct delivered){ cl->id, xstrdup(d.topic), d.seq,
							     d.qos, false };
}

static inline void
fake_deliver_copy(struct client *cl, const struct rec_deliver *d)
{
	struct core_fx *fx = FX_OF(cl->b);

	assert_true(d->flags & DF_COPY);
	assert_true(fx->ndelivered < FX_MAX_LOG);
	fx->delivered[fx->ndelivered++] = (struct delivered){ cl->id, xstrdup(d->topic), d->seq,
							     d->qos, true };
}

static inline bool
fake_can_take(const struct client *cl)
{
	(void)cl;
	return true;
}

static inline void
fake_idle(struct client *cl)
{
	(void)cl;
}

/* As the protocols do: the session detaches (its cursors stay if it
 * persists) and goes offline. */
static inline void
fake_closed(struct client *cl)
{
	struct session *s = cl->session;

	FX_OF(cl->b)->nclosed++;
	while (!TAILQ_EMPTY(&cl->attached))
		attach_drop(TAILQ_FIRST(&cl->attached), s != NULL && s->persistent);
	if (s != NULL)
		session_offline(s);
}

/* A connected client of the fake protocol. */
static inline struct client *
fx_client(struct core_fx *fx)
{
	static const struct proto fake_proto = {
		"FAKE", fake_start, fake_read, fake_deliver, fake_deliver_copy, fake_can_take,
		fake_idle,
		fake_closed, NULL,
	};
	static struct listener fake_listener;
	int sv[2];

	assert_true(fx->npeers < sizeof(fx->peers) / sizeof(fx->peers[0]));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fake_listener = (struct listener){ .b = &fx->b, .proto = &fake_proto, .what = "fake" };
	client_new(&fake_listener, sv[0], "fake");
	fx->peers[fx->npeers++] = sv[1];
	return client_by_id(&fx->b, fx->b.next_client_id);
}

/* A protocol's hooks in its sessions: what the core told them.  A topic
 * dropped is logged as "TOPIC" for the session's own subscription,
 * "TOPIC SHARE" for a group's, "TOPIC *" for all. */
static inline void
fake_topic_dropped(struct session *s, const char *topic, const char *share)
{
	struct core_fx *fx = FX_OF(s->b);

	assert_true(fx->ndropped < FX_MAX_LOG);
	if (share != NULL && share[0] == '\0')
		fx->dropped[fx->ndropped++] = xstrdup(topic);
	else
		xasprintf(&fx->dropped[fx->ndropped++], "%s %s", topic,
		    share != NULL ? share : "*");
}

static inline void
fake_ended(struct session *s, bool forget)
{
	struct core_fx *fx = FX_OF(s->b);

	if (forget)
		fx->nforgotten++;
	else
		fx->nreleased++;
}

static const struct session_ext fake_ext = { fake_topic_dropped, fake_ended };

/* A session with the fake protocol's hooks; online on a new client with
 * its delivery socket unless offline. */
static inline struct session *
fx_session(struct core_fx *fx, const char *key, bool persistent, bool offline)
{
	struct session *s = session_new(&fx->b, key, key[0] == 'j' ? MODE_JSON : MODE_MQTT,
	    persistent);
	struct client *cl;

	s->ext_ops = &fake_ext;
	if (offline)
		return s;
	cl = fx_client(fx);
	assert_int_equal(delivery_open(cl), 0);
	session_online(s, cl, NULL);
	return s;
}

/* The done callback of every request the tests make. */
static inline void
fx_answered(struct child *c, struct held *h, const struct rec_done *d)
{
	struct core_fx *fx = FX_OF(c->b);

	assert_true(fx->nanswers < FX_MAX_LOG);
	fx->answers[fx->nanswers++] = (struct answer){ xstrdup(c->topic), h->arg, d->status,
						       d->seq };
}

/* A client's QoS 1 publish of payload; its req. */
static inline uint64_t
fx_publish(struct client *cl, struct child *c, uint64_t arg, const char *payload)
{
	struct rec_publish p = { .req = broker_req(cl->b), .owner = "", .qos = 1,
				 .time_ms = 1, .payload = (const uint8_t *)payload,
				 .payload_len = strlen(payload) };
	const char *why = NULL;

	assert_int_equal(publish_submit(cl, c, &p, fx_answered, arg, &why), 0);
	return p.req;
}

/* The answer #i: for arg, with status, from topic. */
static inline void
fx_expect_answer(struct core_fx *fx, size_t i, uint64_t arg, uint32_t status,
    const char *topic)
{
	assert_true(i < fx->nanswers);
	assert_int_equal(fx->answers[i].arg, arg);
	assert_int_equal(fx->answers[i].status, status);
	assert_string_equal(fx->answers[i].topic, topic);
}

#endif
