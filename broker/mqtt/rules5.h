/* MQTT 5.0 rules that need no connection or broker: the Topic Alias
 * tables, the Session Expiry Interval and the keep-alive a server grants.
 * Pure, for the unit tests. */
#ifndef BROKER_MQTT_RULES5_H
#define BROKER_MQTT_RULES5_H

#include <stdbool.h>
#include <stdint.h>

/* Topic aliases of one direction of one connection: alias 1 .. max ->
 * topic (NULL: not set).  max 0: no aliases. */
struct alias_table {
	char		**topic;	/* [0 .. max), alias i at topic[i - 1]; NULL
					 * until an alias is set */
	uint16_t	  max;
	uint16_t	  used;		/* outbound: aliases handed out */
};

void	 alias_init(struct alias_table *t, uint16_t max);
void	 alias_free(struct alias_table *t);
/*
 * A received PUBLISH's topic and Topic Alias (0: none), 3.3.2.3.4: the
 * topic it is published to (the table's own string, or topic), or NULL
 * with *rc the reason code of the DISCONNECT that answers it: 0x94 for an
 * alias of 0 or over max (3.3.2-8, -9), 0x82 for an empty topic without
 * an alias, or with an alias never set.  A topic with an alias
 * sets (or replaces) the alias.
 */
const char *alias_resolve(struct alias_table *t, const char *topic,
	    uint32_t alias, uint8_t *rc);
/*
 * An alias to send a PUBLISH to topic with: the one it has, or a new one
 * while there is room (*fresh: send the topic with it this time); 0 when
 * the table is full (send the topic alone).
 */
uint16_t alias_pick(struct alias_table *t, const char *topic, bool *fresh);
/* The alias alias_pick() would give, without giving it. */
uint16_t alias_peek(const struct alias_table *t, const char *topic, bool *fresh);

#define SESSION_EXPIRY_NEVER	UINT32_MAX	/* 0xFFFFFFFF: does not expire */
#define EXPIRY_MS_NEVER		UINT64_MAX

/*
 * The Session Expiry Interval a DISCONNECT leaves (3.14.2.2.2): the one
 * of the CONNECT unless the DISCONNECT gives one; -1 (a Protocol Error)
 * when the CONNECT's was 0 and the DISCONNECT's is not (3.14.2-2).
 */
int64_t	 expiry_at_disconnect(uint32_t at_connect, bool given, uint32_t value);
/*
 * How long (ms) an offline session of this interval is kept, with cap_ms
 * (persistent_client_expiration; 0: none) as the longest: EXPIRY_MS_NEVER
 * for never.  *capped is set when the cap shortened it (the CONNACK then
 * says the interval the server uses, 3.2.2.3.2).
 */
uint64_t expiry_ms(uint32_t interval_s, uint64_t cap_ms, bool *capped);
/*
 * The keep-alive (seconds) a server with max_keepalive (seconds, 0: no
 * maximum) grants a client that asked for asked: asked, or max_keepalive
 * when asked is 0 or larger (mosquitto's rule); *told is set when it
 * differs (CONNACK Server Keep Alive, 3.2.2.3.14).
 */
uint16_t keepalive_granted(uint16_t asked, unsigned max_keepalive, bool *told);

#endif
