/* MQTT's own: what its files share, not an interface. */
#ifndef BROKER_MQTT_MQTT_INT_H
#define BROKER_MQTT_MQTT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <bsd/sys/tree.h>

#include "core/core.h"
#include "mqtt/mqtt.h"
#include "mqtt/mqtt_codec.h"
#include "mqtt/rules5.h"

/* What a connection leaves behind if it ends without DISCONNECT. */
struct mqtt_will {
	char		*topic;
	uint8_t		*payload;
	size_t		 len;
	uint8_t		 qos;
	bool		 retain;
	uint8_t		*props;		/* MQTT 5.0 Will Properties, packed (or NULL) */
	size_t		 props_len;
	uint32_t	 delay_s;	/* Will Delay Interval */
};

/* Inbound QoS 2 of a clean session, between PUBREC and PUBREL: packet id
 * -> topic (a persistent session keeps them in the store). */
struct inbound {
	RB_ENTRY(inbound) entry;
	uint16_t	 pid;
	char		*topic;
};
RB_HEAD(inbound_tree, inbound);

/* A connection's state (client->pstate).  The v5 part is what an MQTT
 * 5.0 CONNECT said (3.1.2.11) and what the connection keeps for it. */
struct mqtt_conn {
	bool		 connected;	/* CONNECT accepted */
	uint8_t		 level;		/* MQTT_LEVEL_31, _311 or _5 */
	uint64_t	 keepalive_ms;	/* 1.5 x the client's keep-alive; 0: none */
	struct mqtt_will *will;
	char		*client_id;
	struct inbound_tree inbound;
	/* MQTT 5.0 */
	uint32_t	 session_expiry; /* seconds; SESSION_EXPIRY_NEVER */
	bool		 problem_info;	/* Request Problem Information */
	uint16_t	 recv_max;	/* the client's Receive Maximum */
	uint32_t	 max_packet;	/* the client's Maximum Packet Size; 0: none */
	unsigned	 inflight_in;	/* its QoS 1/2 publishes not yet PUBACK'd / PUBCOMP'd */
	struct alias_table alias_in;	/* client -> broker */
	struct alias_table alias_out;	/* broker -> client */
};

static inline struct mqtt_conn *
mqtt_conn(const struct client *cl)
{
	return cl->pstate;
}

static inline bool
mqtt_v5(const struct client *cl)
{
	return mqtt_conn(cl)->level == MQTT_LEVEL_5;
}

/* conn.c */
void	 mqtt_send(struct client *cl, const struct wbuf *w);
void	 mqtt_send_ack(struct client *cl, uint8_t type, uint16_t pid);
/* conn5.c: MQTT 5.0's CONNECT, CONNACK, DISCONNECT and reason codes */
/* An ack with a reason code (and why as Reason String if the client
 * allows it); below level 5, the plain ack. */
void	 mqtt_send_reason_ack(struct client *cl, uint8_t type, uint16_t pid, uint8_t rc,
	    const char *why);
/* Closes the connection; at level 5 once connected, a DISCONNECT with rc
 * (and why as Reason String) goes first. */
void	 mqtt_close(struct client *cl, uint8_t rc, const char *why);
/* Refuses a CONNECT: CONNACK with rc5 at level 5, rc3 below (none if
 * rc3 is 0xff), then closes. */
void	 mqtt_refuse(struct client *cl, uint8_t level, uint8_t rc5, uint8_t rc3, const char *why);
/* Reads a level-5 CONNECT's properties into the connection; false when
 * it is refused (answered and closing). */
bool	 mqtt5_connect_props(struct client *cl, const struct mqtt_connect *c);
void	 mqtt5_send_connack(struct client *cl, bool present, const struct mqtt_connect *c);
/* A client's DISCONNECT at level 5: false when it breaks a rule (closing). */
bool	 mqtt5_disconnect_in(struct client *cl, const struct mqtt_disconnect *d);
/* The largest packet the broker takes from a client. */
size_t	 mqtt_max_packet_in(const struct broker *b);
/* The session's expiry as the core keeps it (struct session expiry_ms). */
void	 mqtt5_session_expiry(struct client *cl, struct session *s);
/* publish.c */
void	 mqtt_publish_in(struct client *cl, const struct mqtt_publish *m);
void	 mqtt_pubrel_in(struct client *cl, uint16_t pid);
void	 mqtt_inbound_free(struct mqtt_conn *mc);
void	 mqtt_inbound_end(struct session *s);
/* outbound.c */
void	 mqtt_deliver(struct client *cl, const struct ipc_msg *m);
bool	 mqtt_can_take(const struct client *cl);
void	 mqtt_ack_in(struct client *cl, uint8_t type, const struct mqtt_ack *a);
void	 mqtt_session_attach(struct session *s);
void	 mqtt_session_reconnected(struct session *s);
/* subscribe.c */
void	 mqtt_subscribe_in(struct client *cl, const struct mqtt_subscribe *sub);
void	 mqtt_unsubscribe_in(struct client *cl, const struct mqtt_unsubscribe *u);
/* will.c */
struct mqtt_will *mqtt_will_new(const struct mqtt_connect *c);
void	 mqtt_will_free(struct mqtt_will *wl);
/* The connection ended without a clean DISCONNECT: its will now, or,
 * after its Will Delay Interval when the session stays, later. */
void	 mqtt_will_end(struct client *cl, struct session *s, bool stays);
/* The session resumed: its delayed will is not sent. */
void	 mqtt_will_cancel(struct session *s);
/* The session ends (forget) or the broker stops: a delayed will is sent,
 * or (stopping) lost. */
void	 mqtt_will_session_end(struct session *s, bool forget);
/* outbound.c: the session's delayed will (NULL: none) */
struct delayed_will **mqtt_session_will(struct session *s);
/* sys.c */
void	 sys_subscribed(struct client *cl, const char *filter);
bool	 sys_topic(const char *filter);

#endif
