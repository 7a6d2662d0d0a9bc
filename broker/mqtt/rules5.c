/* MQTT 5.0 rules that need no connection: topic aliases, session expiry,
 * the granted keep-alive (rules5.h). */
#include "mqtt/rules5.h"

#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt_props.h"
#include "xmalloc.h"

void
alias_init(struct alias_table *t, uint16_t max)
{
	t->max = max;
	t->used = 0;
	t->topic = NULL;	/* made when the first alias is set */
}

static char **
alias_slot(struct alias_table *t, uint16_t alias)
{
	if (t->topic == NULL)
		t->topic = xcalloc(t->max, sizeof(*t->topic));
	return &t->topic[alias - 1];
}

void
alias_free(struct alias_table *t)
{
	for (uint16_t i = 0; t->topic != NULL && i < t->max; i++)
		free(t->topic[i]);
	free(t->topic);
	t->topic = NULL;
	t->max = 0;
	t->used = 0;
}

const char *
alias_resolve(struct alias_table *t, const char *topic, uint32_t alias, uint8_t *rc)
{
	char **slot;

	if (alias == 0) {
		if (topic[0] != '\0')
			return topic;
		*rc = MQTT_RC_PROTOCOL_ERROR;	/* no topic, no alias */
		return NULL;
	}
	if (alias > t->max) {
		*rc = MQTT_RC_TOPIC_ALIAS_INVALID;
		return NULL;
	}
	slot = alias_slot(t, (uint16_t)alias);
	if (topic[0] != '\0') {
		free(*slot);
		*slot = xstrdup(topic);
	} else if (*slot == NULL) {
		*rc = MQTT_RC_PROTOCOL_ERROR;	/* an alias never set */
		return NULL;
	}
	return *slot;
}

uint16_t
alias_peek(const struct alias_table *t, const char *topic, bool *fresh)
{
	*fresh = false;
	for (uint16_t i = 0; i < t->used; i++)
		if (strcmp(t->topic[i], topic) == 0)
			return (uint16_t)(i + 1);
	if (t->used == t->max)
		return 0;
	*fresh = true;
	return (uint16_t)(t->used + 1);
}

uint16_t
alias_pick(struct alias_table *t, const char *topic, bool *fresh)
{
	uint16_t alias = alias_peek(t, topic, fresh);

	if (*fresh) {
		t->used++;
		*alias_slot(t, t->used) = xstrdup(topic);
	}
	return alias;
}

int64_t
expiry_at_disconnect(uint32_t at_connect, bool given, uint32_t value)
{
	if (!given)
		return at_connect;
	if (at_connect == 0 && value != 0)
		return -1;
	return value;
}

uint64_t
expiry_ms(uint32_t interval_s, uint64_t cap_ms, bool *capped)
{
	uint64_t ms = interval_s == SESSION_EXPIRY_NEVER ? EXPIRY_MS_NEVER :
	    (uint64_t)interval_s * 1000;

	*capped = cap_ms > 0 && ms > cap_ms;
	return *capped ? cap_ms : ms;
}

uint16_t
keepalive_granted(uint16_t asked, unsigned max_keepalive, bool *told)
{
	*told = max_keepalive > 0 && (asked == 0 || asked > max_keepalive);
	return *told ? (uint16_t)max_keepalive : asked;
}
