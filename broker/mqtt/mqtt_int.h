/* MQTT's own: what its files share, not an interface. */
#ifndef BROKER_MQTT_MQTT_INT_H
#define BROKER_MQTT_MQTT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <bsd/sys/tree.h>

#include "core/core.h"
#include "mqtt/mqtt.h"
#include "mqtt/mqtt_codec.h"

/* What a connection leaves behind if it ends without DISCONNECT. */
struct mqtt_will {
	char		*topic;
	uint8_t		*payload;
	size_t		 len;
	uint8_t		 qos;
	bool		 retain;
};

/* Inbound QoS 2 of a clean session, between PUBREC and PUBREL: packet id
 * -> topic (a persistent session keeps them in the store). */
struct inbound {
	RB_ENTRY(inbound) entry;
	uint16_t	 pid;
	char		*topic;
};
RB_HEAD(inbound_tree, inbound);

/* A connection's state (client->pstate). */
struct mqtt_conn {
	bool		 connected;	/* CONNECT accepted */
	uint8_t		 level;		/* MQTT_LEVEL_31 or _311 */
	uint64_t	 keepalive_ms;	/* 1.5 x the client's keep-alive; 0: none */
	struct mqtt_will *will;
	char		*client_id;
	struct inbound_tree inbound;
};

static inline struct mqtt_conn *
mqtt_conn(const struct client *cl)
{
	return cl->pstate;
}

/* conn.c */
void	 mqtt_send(struct client *cl, const struct wbuf *w);
void	 mqtt_send_ack(struct client *cl, uint8_t type, uint16_t pid);
/* publish.c */
void	 mqtt_publish_in(struct client *cl, const struct mqtt_publish *m);
void	 mqtt_pubrel_in(struct client *cl, uint16_t pid);
void	 mqtt_publish_will(struct client *cl);
void	 mqtt_inbound_free(struct mqtt_conn *mc);
void	 mqtt_inbound_end(struct session *s);
/* outbound.c */
void	 mqtt_deliver(struct client *cl, const struct ipc_msg *m);
bool	 mqtt_can_take(const struct client *cl);
void	 mqtt_ack_in(struct client *cl, uint8_t type, uint16_t pid);
void	 mqtt_session_attach(struct session *s);
void	 mqtt_session_reconnected(struct session *s);
/* subscribe.c */
void	 mqtt_subscribe_in(struct client *cl, const struct mqtt_subscribe *sub);
void	 mqtt_unsubscribe_in(struct client *cl, const struct mqtt_unsubscribe *u);
/* sys.c */
void	 sys_subscribed(struct client *cl, const char *filter);
bool	 sys_topic(const char *filter);

#endif
