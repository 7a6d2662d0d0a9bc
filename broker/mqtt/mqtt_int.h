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
	bool		 has_expiry;	/* Message Expiry Interval: */
	uint32_t	 expiry_s;
	char		*origin;	/* the client id, for No Local */
	bool		 staged;	/* its record says it is staged in its topic (QoS 2):
					 * only to be released */
};

/* Inbound QoS 2 of a clean session, between PUBREC and PUBREL: packet id
 * -> topic (a persistent session keeps them in the store). */
struct inbound {
	RB_ENTRY(inbound) entry;
	uint16_t	 pid;
	char		*topic;
};
RB_HEAD(inbound_tree, inbound);
/* The packet ids of the QoS 2 publishes a level-5 connection counts
 * against its Receive Maximum, PUBLISH to PUBCOMP: a resend (DUP) of one
 * is not counted again, a resend of one from before a reconnect is. */
struct counted {
	RB_ENTRY(counted) entry;
	uint16_t	 pid;
};
RB_HEAD(counted_tree, counted);

/* A subscription's options that act on delivery (subopts.c). */
#define SO_NO_LOCAL	0x01
#define SO_RAP		0x02	/* Retain As Published */
struct subopt {
	RB_ENTRY(subopt) entry;
	char		*filter;
	uint8_t		 flags;		/* SO_* */
	uint32_t	 id;		/* Subscription Identifier; 0: none */
};
RB_HEAD(subopt_tree, subopt);
struct subopts {
	struct subopt_tree tree;	/* by filter (zeroed: empty) */
	size_t		 n;
};
/* What a session's subscriptions say of one delivery. */
#define SUB_MATCH_IDS	32

/* Client ids have at most this many bytes (MQTT asks for 23 at least):
 * a store key holds one with a topic filter (TOPIC_MAX_LEN). */
#define MQTT_CLIENT_ID_MAX	16384
#define MQTT_STR_(x)	#x
#define MQTT_STR(x)	MQTT_STR_(x)
struct sub_match {
	bool		 skip;		/* No Local on every matching subscription */
	bool		 no_local;	/* No Local on some: those do not match (3.3.4) */
	uint8_t		 qos;		/* with no_local: the highest the others grant */
	bool		 rap;		/* one has Retain As Published */
	uint32_t	 ids[SUB_MATCH_IDS];
	size_t		 nids;
};

/* A connection's state (client->pstate).  The v5 part is what an MQTT
 * 5.0 CONNECT said (3.1.2.11) and what the connection keeps for it. */
struct mqtt_conn {
	bool		 connected;	/* CONNECT accepted */
	uint8_t		 level;		/* MQTT_LEVEL_31, _311 or _5 */
	uint64_t	 keepalive_ms;	/* 1.5 x the client's keep-alive; 0: none */
	struct mqtt_will *will;
	char		*will_key;	/* its will's record (NULL: none) */
	char		*client_id;
	struct inbound_tree inbound;
	/* MQTT 5.0 */
	uint32_t	 session_expiry; /* seconds; SESSION_EXPIRY_NEVER */
	bool		 problem_info;	/* Request Problem Information */
	uint16_t	 recv_max;	/* the client's Receive Maximum */
	uint32_t	 max_packet;	/* the client's Maximum Packet Size; 0: none */
	unsigned	 inflight_in;	/* its QoS 1/2 publishes not yet PUBACK'd / PUBCOMP'd */
	struct counted_tree counted;	/* the QoS 2 ones among them */
	/* What its CONNACK told it, which a reload does not change for it. */
	uint32_t	 told_recv_max;	/* the server's Receive Maximum */
	size_t		 told_max_packet; /* the server's Maximum Packet Size; 0: not told yet */
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
bool	 mqtt_record(const struct session *s, char *k, size_t klen, struct wbuf *w, bool keep);
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
/* The CONNACK of such a refusal (rc3 not 0xff below level 5), within the
 * client's Maximum Packet Size if it said one. */
void	 mqtt_enc_refusal(const struct client *cl, struct wbuf *w, uint8_t level, uint8_t rc5,
	    uint8_t rc3, const char *why);
/* Reads a level-5 CONNECT's properties into the connection; false when
 * it is refused (answered and closing). */
bool	 mqtt5_connect_props(struct client *cl, const struct mqtt_connect *c);
/* The CONNACK of an accepted CONNECT; the connection closes if the
 * client's Maximum Packet Size cannot take it. */
void	 mqtt5_send_connack(struct client *cl, bool present, const struct mqtt_connect *c);
/* A client's DISCONNECT at level 5: false when it breaks a rule (closing). */
bool	 mqtt5_disconnect_in(struct client *cl, const struct mqtt_disconnect *d);
/* The largest packet the broker takes from a client. */
size_t	 mqtt_max_packet_in(const struct broker *b);
/* The session's expiry as the core keeps it (struct session expiry_ms). */
void	 mqtt5_session_expiry(struct client *cl, struct session *s);
/* publish.c */
bool	 mqtt_may_write(struct client *cl, const char *topic);
void	 mqtt_publish_in(struct client *cl, const struct mqtt_publish *m);
void	 mqtt_pubrel_in(struct client *cl, uint16_t pid);
void	 mqtt_inbound_free(struct mqtt_conn *mc);
void	 mqtt_inbound_end(struct session *s);
/* outbound.c */
void	 mqtt_deliver(struct client *cl, struct ipc_msg *m);
void	 mqtt_deliver_copy(struct client *cl, const struct rec_deliver *d);
void	 mqtt_delivery_over(struct client *cl, const struct rec_deliver *d);
bool	 mqtt_can_take(const struct client *cl);
void	 mqtt_ack_in(struct client *cl, uint8_t type, const struct mqtt_ack *a);
void	 mqtt_session_attach(struct session *s);
void	 mqtt_session_reconnected(struct session *s);
/* subscribe.c */
void	 mqtt_subscribe_in(struct client *cl, const struct mqtt_subscribe *sub);
void	 mqtt_unsubscribe_in(struct client *cl, const struct mqtt_unsubscribe *u);
/* msgprops.c */
/* A PUBLISH's (or a will's) properties for the topic's log: the packed
 * application properties but the Message Expiry Interval, which comes
 * back as *expiry_ms (wall ms; 0: none).  -1 if they cannot be packed. */
int	 msg_props_in(const struct mqtt_props *in, struct wbuf *blob, uint64_t *expiry_ms);
/* A delivery's properties for an MQTT 5.0 subscriber, with the Message
 * Expiry Interval left (0 if it has passed); -1 with *why when they are
 * unreadable.  out points into d: free it with mqtt_props_free(). */
int	 msg_props_out(const struct rec_deliver *d, struct mqtt_props *out, const char **why);
/* Has its Message Expiry Interval passed? */
bool	 delivery_expired(const struct rec_deliver *d);
/* will.c */
struct mqtt_will *mqtt_will_new(const struct mqtt_connect *c, const char *origin);
void	 mqtt_will_free(struct mqtt_will *wl);
/* A will published, or refused by the ACL; key: its record (NULL: none),
 * which goes when it is stored (QoS 1, 2), or now. */
void	 mqtt_will_publish(struct broker *b, const char *who, const struct mqtt_will *wl,
	    const char *key);
void	 mqtt_will_denied(struct broker *b, const char *who, const char *topic, const char *key);
/* The connection ended without a clean DISCONNECT: its will now, or,
 * after its Will Delay Interval when the session stays, later (the
 * session has it then, and its record says since when). */
void	 mqtt_will_end(struct client *cl, struct session *s, bool stays, const char *key);
/* The session gets wl, to publish in ms unless it resumes, and its record
 * (key, or a new one if NULL) says it waits since then; false (wl still
 * the caller's) if no timer can be had. */
bool	 mqtt_will_delay(struct session *s, struct mqtt_will *wl, const char *who, uint64_t ms,
	    const char *key, int64_t since);
/* will_store.c: a will's record, written under *key (a new key if NULL;
 * since: wall ms it began waiting, 0 while its connection is open; false,
 * *key NULL, if the store refused it) or deleted */
bool	 mqtt_will_store(const struct session *s, const struct mqtt_will *wl, int64_t since,
	    bool stays, char **key);
void	 mqtt_will_unstore(struct broker *b, const char *key);
/* A will about to go to its topicd: its record says so (a start publishes
 * it whatever its delay).  Sent under request req: its record goes when
 * mqtt_will_stored() hears it is stored.  A QoS 2 will is staged under
 * owner mqtt_will_owner(key) (staging): once stored, its record says so,
 * and once that is durable it is released (mqtt_will_release), under a
 * request of its own whose DONE removes the record. */
void	 mqtt_will_mark_sent(struct broker *b, const char *key);
void	 mqtt_will_sent(const char *key, const char *topic, uint64_t req, bool staging);
void	 mqtt_will_stored(struct child *c, struct held *h, const struct rec_done *d);
char	*mqtt_will_owner(const char *key);
const char *mqtt_will_key_session(const char *key);
/* will.c: the will staged under key released to its subscribers. */
void	 mqtt_will_release(struct broker *b, const char *topic, const char *key);
/* The session resumed: its delayed will is not sent. */
void	 mqtt_will_cancel(struct session *s);
/* The session ends (forget) or the broker stops: a delayed will is sent,
 * or (stopping) lost. */
void	 mqtt_will_session_end(struct session *s, bool forget);
void	 mqtt_out_forget(struct session *s, const char *topic, const char *share,
	    uint64_t seq);
/* deliver5.c */
/* false when the client is not to get the message (then it counts as
 * delivered); else pub has its properties (mqtt_props_free() them), and
 * its QoS, unless it goes again as it went (again), what the matching
 * subscriptions grant. */
bool	 mqtt5_deliver_prepare(struct client *cl, const struct rec_deliver *d,
	    struct mqtt_publish *pub, bool again);
void	 mqtt5_use_alias(struct client *cl, struct mqtt_publish *pub);
/* outbound.c: the session's delayed will (NULL: none), its options */
struct delayed_will **mqtt_session_will(struct session *s);
struct subopts *mqtt_session_opts(struct session *s);
/* atmostonce.c: the highest sequence number of each subscription in a
 * topic (share "" for its own) passed on at QoS 0 */
struct q0mark;
RB_HEAD(q0mark_tree, q0mark);
struct q0marks {
	struct q0mark_tree tree;
	struct q0mark	*last;
};
void	 q0marks_init(struct q0marks *qm);
/* Whether seq was passed on (or one after it); if not, it is now. */
bool	 q0marks_seen(struct q0marks *qm, const char *topic, const char *share, uint64_t seq);
/* Forgets the subscription share in topic (NULL: all of them). */
void	 q0marks_drop(struct q0marks *qm, const char *topic, const char *share);
void	 q0marks_free(struct q0marks *qm);
/* subopts.c */
/* Sets (or with 0, 0 removes) a filter's options. */
void	 subopts_set(struct session *s, const char *filter, uint8_t flags, uint32_t id);
void	 subopts_remove(struct session *s, const char *filter);
/* The session ends (forget: its records go too) or the broker stops. */
void	 subopts_end(struct session *s, bool forget);
/* share: the shared subscription it is delivered for, or ""; own: the
 * message is from this session's client id. */
void	 subopts_match(const struct session *s, const char *topic, const char *share, bool own,
	    struct sub_match *m);
int	 subopts_load(const void *key, size_t klen, void *arg);
/* sys.c */
void	 sys_subscribed(struct client *cl, const char *filter);
bool	 sys_topic(const char *filter);

#endif
