/* MQTT SUBSCRIBE and UNSUBSCRIBE.  A filter is kept in the session (and
 * stored, for a persistent one) before the SUBACK; every known topic it
 * matches gets the session's cursor, and new topics get it when they
 * appear.  $SYS filters are served by the master itself. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mqtt/mqtt_int.h"
#include "topic.h"
#include "xmalloc.h"

/* The granted QoS, or a reason code: 0x80 for a malformed share, 0x8F
 * for a filter deeper than max_topic_levels, 0x87 when the ACL denies it
 * (below level 5 all are 0x80).  A topic is not created by a
 * subscription, not even an exact filter's: a topic gives every session
 * whose filters match it its cursor when it is created (route.c), so a
 * subscriber of thousands of topics nobody has published to yet costs no
 * topic, store or topicd start. */
static uint8_t
grant(struct client *cl, const char *filter, uint8_t qos)
{
	size_t levels = topic_levels(filter, strlen(filter));

	if (levels > cl->b->set.max_topic_levels) {
		log_info("client %s: SUBSCRIBE %.64s%s refused: %zu levels, "
		    "max_topic_levels is %u", cl->desc, filter, strlen(filter) > 64 ? "..." : "", levels,
		    cl->b->set.max_topic_levels);
		return MQTT_RC_TOPIC_FILTER_INVALID;
	}
	if (topic_share_split(filter, &filter) == -1) {
		log_info("client %s: SUBSCRIBE %.64s refused: a malformed $share/GROUP/FILTER",
		    cl->desc, filter);
		return MQTT_SUBACK_FAILURE;
	}
	if (!auth_may_subscribe(cl->auth, cl->session->user, session_client_id(cl->session),
	    filter)) {
		cl->b->subscribes_denied++;
		log_info("client %s: SUBSCRIBE %.64s%s refused: the ACL lets it read no topic "
		    "there", cl->desc, filter, strlen(filter) > 64 ? "..." : "");
		return MQTT_RC_NOT_AUTHORIZED;
	}
	return qos;
}


/* Retained messages on subscribing (3.3.1.3): Retain Handling 0 sends
 * them, 1 only for a new subscription, 2 never. */
static bool
wants_retained(const struct mqtt_sub_item *it, bool existed)
{
	return it->retain_handling == 0 || (it->retain_handling == 1 && !existed);
}

/* A SUBACK or UNSUBACK (which carry no properties) that is larger than
 * the client's Maximum Packet Size with its reason codes alone is not
 * sent (3.1.2-24): the connection closes with DISCONNECT 0x95.  false
 * when it closes. */
static bool
send_suback(struct client *cl, uint8_t type, uint16_t pid, size_t n, const uint8_t *codes)
{
	uint32_t max = mqtt_conn(cl)->max_packet;
	struct wbuf w;
	bool fits = true;

	wbuf_init(&w);
	if (mqtt_enc_suback(&w, mqtt_conn(cl)->level, type, &(struct mqtt_suback){
	    .packet_id = pid, .n = n, .codes = codes }) == -1)
		log_warnx("client %s: cannot encode a %s", cl->desc, mqtt_type_name(type));
	else if (max > 0 && w.len > max)
		fits = false;
	else
		mqtt_send(cl, &w);
	wbuf_free(&w);
	if (!fits)
		mqtt_close(cl, MQTT_RC_PACKET_TOO_LARGE, type == MQTT_SUBACK ?
		    "SUBACK over the client's Maximum Packet Size" :
		    "UNSUBACK over the client's Maximum Packet Size");
	return fits;
}

void
mqtt_subscribe_in(struct client *cl, const struct mqtt_subscribe *sub)
{
	struct session *s = cl->session;
	uint8_t *codes = xcalloc(sub->n, 1);
	bool *retained = xcalloc(sub->n, sizeof(bool));
	uint32_t id = 0;
	bool sent;

	(void)mqtt_props_get_u32(&sub->props, MQTT_PROP_SUBSCRIPTION_ID, &id);
	for (size_t i = 0; i < sub->n; i++) {
		const struct mqtt_sub_item *it = &sub->items[i];

		retained[i] = wants_retained(it, session_has_filter(s, it->filter));
		if (session_may_add_filter(s, it->filter))
			codes[i] = grant(cl, it->filter, it->qos);
		else {
			log_info("client %s: SUBSCRIBE %.64s refused: max_subscriptions (%u) "
			    "reached", cl->desc, it->filter, cl->b->set.max_subscriptions);
			codes[i] = MQTT_RC_QUOTA_EXCEEDED;
		}
		if (codes[i] >= 0x80 && !mqtt_v5(cl))
			codes[i] = MQTT_SUBACK_FAILURE;		/* 3.1.1 has no reason */
		if (codes[i] >= 0x80)
			continue;
		session_add_filter(s, it->filter, codes[i]);
		/* A subscription replaced: its options too (3.8.4-3). */
		subopts_set(s, it->filter, (it->no_local ? SO_NO_LOCAL : 0) |
		    (it->retain_as_published ? SO_RAP : 0), id);
	}
	client_gate(cl, session_save(s));	/* SUBACK once the filters are durable */
	sent = send_suback(cl, MQTT_SUBACK, sub->packet_id, sub->n, codes);
	/* After the SUBACK: retained messages follow it (MQTT 3.3.1-6). */
	for (size_t i = 0; sent && i < sub->n; i++) {
		const char *f = sub->items[i].filter;

		if (codes[i] >= 0x80)
			continue;
		if (sys_topic(f)) {
			if (retained[i])	/* $SYS values are retained messages */
				sys_subscribed(cl, f);
		} else
			session_attach_all(s, f, retained[i]);
	}
	free(codes);
	free(retained);
}

static int
child_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(struct child *const *)a;
	uintptr_t y = (uintptr_t)*(struct child *const *)b;

	return (x > y) - (x < y);
}

/* Topics no filter matches any more drop the cursor; others may get a
 * lower QoS.  Each attached topic an unsubscribed filter matches is
 * brought in line once: a plain filter's is looked up, the wildcards are
 * matched in one pass over the attachments (an UNSUBSCRIBE of thousands
 * of plain filters is not a pass over thousands of topics for each). */
static void
unsubscribed_sync(struct client *cl, const struct mqtt_unsubscribe *u)
{
	struct child **v = xcalloc(u->n, sizeof(*v)), *c;
	struct attachment *a;
	size_t n = 0, nwild = 0, k = 0;

	for (size_t i = 0; i < u->n; i++) {
		if (strpbrk(u->filters[i], "+#") != NULL)
			nwild++;
		else if ((c = topic_find(cl->b, u->filters[i])) != NULL && attach_find(cl, c))
			v[n++] = c;
	}
	TAILQ_FOREACH(a, &cl->attached, by_client) {
		for (size_t i = 0; nwild > 0 && i < u->n; i++) {
			if (strpbrk(u->filters[i], "+#") != NULL &&
			    topic_matches(u->filters[i], a->child->topic)) {
				if (n == u->n + k) {
					k = k ? 2 * k : 16;
					v = xreallocarray(v, u->n + k, sizeof(*v));
				}
				v[n++] = a->child;
				break;
			}
		}
	}
	qsort(v, n, sizeof(*v), child_cmp);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || v[i] != v[i - 1])
			session_sync_topic(cl->session, v[i], false);
	free(v);
}

void
mqtt_unsubscribe_in(struct client *cl, const struct mqtt_unsubscribe *u)
{
	struct session *s = cl->session;
	uint8_t *codes = xcalloc(u->n, 1);
	bool changed = false;

	for (size_t i = 0; i < u->n; i++) {
		bool had = session_remove_filter(s, u->filters[i]);

		subopts_remove(s, u->filters[i]);

		codes[i] = had ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
		changed |= had;
	}
	if (changed)
		client_gate(cl, session_save(s));
	unsubscribed_sync(cl, u);
	if (mqtt_v5(cl))
		(void)send_suback(cl, MQTT_UNSUBACK, u->packet_id, u->n, codes);
	else
		mqtt_send_ack(cl, MQTT_UNSUBACK, u->packet_id);
	free(codes);
}
