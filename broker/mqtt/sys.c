/* $SYS/broker/...: the broker's figures every sys_interval, in the layout
 * mosquitto users know; with an ACL, each to the sessions that may read it.  Served from the master straight to the MQTT
 * sessions whose filters match: they are not worth a topicd each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "mqtt/mqtt_int.h"
#include "topic.h"

struct sys_value {
	const char *topic;
	char        text[64];
};

static unsigned
sys_values(struct broker *b, struct sys_value *v)
{
	struct child *c;
	uint64_t restarts = b->forgotten_restarts, poisoned = b->forgotten_poisoned;
	unsigned n = 0, full = 0, failed = 0;

	RB_FOREACH(c, child_tree, &b->children) {
		restarts += c->restarts;
		poisoned += c->poisoned;
		full += c->full;
		failed += c->state == CH_FAILED;
	}
#define SYS(t, ...) do { v[n].topic = "$SYS/broker/" t; \
	snprintf(v[n].text, sizeof(v[n].text), __VA_ARGS__); n++; } while (0)
	SYS("version", "broker version %s", BROKER_VERSION);
	SYS("uptime", "%lld seconds", (long long)(mono_ms() - b->started_ms) / 1000);
	SYS("clients/connected", "%u", b->nclients);
	SYS("messages/received", "%llu", (unsigned long long)b->msgs_in);
	SYS("messages/sent", "%llu", (unsigned long long)b->msgs_out);
	SYS("bytes/received", "%llu", (unsigned long long)b->bytes_in);
	SYS("bytes/sent", "%llu", (unsigned long long)b->bytes_out);
	SYS("topics/count", "%u", b->ntopics);
	SYS("topics/forgotten", "%llu", (unsigned long long)b->topics_forgotten);
	SYS("topicd/running", "%u", b->nlive);
	SYS("topicd/waiting", "%u", b->nqueued);
	SYS("topicd/restarts", "%llu", (unsigned long long)restarts);
	SYS("topicd/poisoned", "%llu", (unsigned long long)poisoned);
	SYS("topics/full", "%u", full);
	SYS("topics/failed", "%u", failed);
	SYS("topics/refused", "%llu", (unsigned long long)b->topics_refused);
	SYS("store/bytes", "%llu", (unsigned long long)b->stored_bytes);
	SYS("store/full", "%d", b->store_full ? 1 : 0);
	SYS("auth/logins_failed", "%llu", (unsigned long long)b->logins_failed);
	SYS("auth/anonymous_refused", "%llu", (unsigned long long)b->anonymous_refused);
	SYS("acl/publishes_denied", "%llu", (unsigned long long)b->publishes_denied);
	SYS("acl/subscribes_denied", "%llu", (unsigned long long)b->subscribes_denied);
	SYS("tls/handshake_failures", "%llu", (unsigned long long)b->tls_failures);
	SYS("clients/mqtt5", "%u", b->mqtt5_clients);
	SYS("mqtt5/disconnects_sent", "%llu", (unsigned long long)b->mqtt5_disconnects);
	SYS("mqtt5/too_large", "%llu", (unsigned long long)b->msgs_too_large);
#undef SYS
	return n;
}

#define SYS_MAX 28

/* An MQTT 5.0 client gets the identifiers of its subscriptions that
 * match, as with every other message (3.3.4-3). */
static void
add_ids(struct client *cl, struct mqtt_publish *p)
{
	struct sub_match m;

	subopts_match(cl->session, p->topic, "", false, &m);
	for (size_t i = 0; i < m.nids; i++)
		(void)mqtt_props_add_u32(&p->props, MQTT_PROP_SUBSCRIPTION_ID, m.ids[i]);
}

/* A value larger than an MQTT 5.0 client's Maximum Packet Size is not
 * sent to it (3.1.2-24), as any message. */
static bool
too_large(struct client *cl, const struct mqtt_publish *p)
{
	uint32_t max = mqtt_conn(cl)->max_packet;
	struct mqtt_packet pk = { .type = MQTT_PUBLISH, .level = MQTT_LEVEL_5, .u.publish = *p };

	if (!mqtt_v5(cl) || max == 0 || mqtt_packet_size(&pk) <= max)
		return false;
	log_debug("client %s: %s is over its Maximum Packet Size (%u): not sent", cl->desc,
	    p->topic, max);
	cl->b->msgs_too_large++;
	return true;
}

/* Sends the values that match filter (all filters of the session when
 * filter is NULL) to one client. */
static void
send_values(struct client *cl, const char *filter, const struct sys_value *v, unsigned n,
    bool retain)
{
	struct wbuf w;

	wbuf_init(&w);
	for (unsigned i = 0; i < n; i++) {
		if (filter != NULL ? !topic_matches(filter, v[i].topic) :
		    session_qos(cl->session, v[i].topic) < 0)
			continue;
		if (!session_may_read(cl->session, v[i].topic))
			continue;
		struct mqtt_publish p = { .qos = 0, .retain = retain, .topic = (char *)v[i].topic,
					  .payload = (const uint8_t *)v[i].text,
					  .len = strlen(v[i].text) };
		if (mqtt_v5(cl))
			add_ids(cl, &p);
		if (!too_large(cl, &p))
			mqtt_enc_publish(&w, mqtt_conn(cl)->level, &p);
		mqtt_props_free(&p.props);
	}
	if (w.len > 0)
		mqtt_send(cl, &w);
	wbuf_free(&w);
}

void
sys_subscribed(struct client *cl, const char *filter)
{
	struct sys_value v[SYS_MAX];
	unsigned n = sys_values(cl->b, v);

	send_values(cl, filter, v, n, true);
}

static void
on_sys_tick(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct sys_value v[SYS_MAX];
	struct session *s;
	unsigned n;

	(void)fd;
	(void)what;
	n = sys_values(b, v);
	RB_FOREACH(s, session_tree, &b->sessions)
		if (s->cl != NULL && s->mode == MODE_MQTT && !s->cl->closing)
			send_values(s->cl, NULL, v, n, false);
}

bool
sys_topic(const char *filter)
{
	return strncmp(filter, "$SYS", 4) == 0 && (filter[4] == '\0' || filter[4] == '/');
}

void
sys_start(struct broker *b)
{
	uint64_t ms = b->set.sys_interval;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (ms == 0)
		return;
	b->sys_timer = event_new(b->base, -1, EV_PERSIST, on_sys_tick, b);
	if (b->sys_timer == NULL || event_add(b->sys_timer, &tv) == -1)
		fatalx("cannot arm the $SYS timer");
}

void
sys_stop(struct broker *b)
{
	if (b->sys_timer != NULL)
		event_free(b->sys_timer);
	b->sys_timer = NULL;
}
