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

/* An exact filter names its topic: it is created (so that its cursor
 * exists from now on); 0x80 when that is refused, or when the filter is
 * deeper than max_topic_levels. */
static uint8_t
grant(struct client *cl, const char *filter, uint8_t qos)
{
	const char *why;
	size_t levels = topic_levels(filter, strlen(filter));

	if (levels > cl->b->set.max_topic_levels) {
		log_info("client %s: SUBSCRIBE %.64s%s refused: %zu levels, "
		    "max_topic_levels is %u", cl->desc, filter, strlen(filter) > 64 ? "..." : "", levels,
		    cl->b->set.max_topic_levels);
		return MQTT_SUBACK_FAILURE;
	}
	if (topic_share_split(filter, &filter) == -1) {
		log_info("client %s: SUBSCRIBE %.64s refused: a malformed $share/GROUP/FILTER",
		    cl->desc, filter);
		return MQTT_SUBACK_FAILURE;
	}
	if (sys_topic(filter) || strpbrk(filter, "+#") != NULL)
		return qos;
	if (filter[0] == '$' && strcmp(filter, cl->b->set.dead_letter_topic) != 0)
		return qos;	/* nothing is ever published there; harmless */
	if (topic_open(cl->b, filter, &why) == NULL) {
		log_warnx("client %s: SUBSCRIBE %s refused: %s", cl->desc, filter, why);
		return MQTT_SUBACK_FAILURE;
	}
	return qos;
}

void
mqtt_subscribe_in(struct client *cl, const struct mqtt_subscribe *sub)
{
	struct session *s = cl->session;
	uint8_t *codes = xcalloc(sub->n, 1);
	struct wbuf w;

	for (size_t i = 0; i < sub->n; i++) {
		codes[i] = grant(cl, sub->items[i].filter, sub->items[i].qos);
		if (codes[i] != MQTT_SUBACK_FAILURE)
			session_add_filter(s, sub->items[i].filter, codes[i]);
	}
	client_gate(cl, session_save(s));	/* SUBACK once the filters are durable */
	wbuf_init(&w);
	mqtt_enc_suback(&w, sub->packet_id, codes, sub->n);
	mqtt_send(cl, &w);
	wbuf_free(&w);
	/* After the SUBACK: retained messages follow it (MQTT 3.3.1-6). */
	for (size_t i = 0; i < sub->n; i++) {
		const char *f = sub->items[i].filter;

		if (codes[i] == MQTT_SUBACK_FAILURE)
			continue;
		if (sys_topic(f))
			sys_subscribed(cl, f);
		else
			session_attach_all(s, f, true);
	}
	free(codes);
}

void
mqtt_unsubscribe_in(struct client *cl, const struct mqtt_unsubscribe *u)
{
	struct session *s = cl->session;
	struct attachment *a, *next;
	struct wbuf w;
	bool changed = false;

	for (size_t i = 0; i < u->n; i++)
		changed |= session_remove_filter(s, u->filters[i]);
	if (changed)
		client_gate(cl, session_save(s));
	/* Topics no filter matches any more drop the cursor; others may get
	 * a lower QoS. */
	TAILQ_FOREACH_SAFE(a, &cl->attached, by_client, next) {
		for (size_t i = 0; i < u->n; i++) {
			if (topic_matches(u->filters[i], a->child->topic)) {
				session_sync_topic(s, a->child, false);
				break;
			}
		}
	}
	wbuf_init(&w);
	mqtt_enc_ack(&w, MQTT_UNSUBACK, u->packet_id);
	mqtt_send(cl, &w);
	wbuf_free(&w);
}
