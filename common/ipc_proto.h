/* The protocol between the master (broker) and a topic's topicd.
 *
 * Channel: a SOCK_SEQPACKET socketpair; the topicd has its end on fd 3
 * (IPC_CHANNEL_FD).  Delivery sockets: one SOCK_SEQPACKET socketpair per
 * client session; the master hands the write end to a topicd with ATTACH
 * (SCM_RIGHTS) and reads the other end while the client can take more.
 *
 * Order of a child's life: the master queues CONFIG first; the topicd opens
 * its store and sends READY once; everything else is accepted only after
 * that.  A record the peer may not send in its state, or one that does not
 * decode, is a protocol violation: the master kills and restarts the child.
 *
 * Requests that carry a non-zero req are answered with DONE (same req);
 * the master keeps them until then and replays them into a restarted child,
 * so every request is idempotent in the topicd:
 *   - PUBLISH with PF_STAGE is deduplicated on (owner, pubid) while staged;
 *   - RELEASE of an unknown (owner, pubid) succeeds with seq 0;
 *   - ACK for a sequence outside the subscriber's window is ignored.
 *
 * Bodies are marshalled with common/marshal.h; every decoder insists that
 * nothing is left over.  Strings point into the received body. */
#ifndef COMMON_IPC_PROTO_H
#define COMMON_IPC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "marshal.h"

/* CONFIG (the master's first record) and READY (the topicd's) both begin
 * with this version, so that a master and a topicd binary of different
 * releases (an upgrade with the old master still running) tell each other
 * so, whatever else changed in the records' layout. */
#define IPC_PROTO_VERSION 14
#define IPC_CHANNEL_FD    3
/* The topicd executable the master opened at its start, which it runs
 * through /proc/self/fd: the binary it was started with, even after an
 * upgrade replaced the file.  The topicd closes it first thing. */
#define IPC_EXEC_FD       4

enum ipc_type {
	/* master -> topicd, on the channel */
	IPC_CONFIG = 1,		/* settings; first record, again on reload */
	IPC_PUBLISH = 2,	/* store a message; DONE when durable */
	IPC_RELEASE = 3,	/* release a staged message to subscribers */
	IPC_RELEASE_OWNER = 4,	/* release everything an owner staged (publisher gone);
				 * idempotent, answered with DONE when req is set */
	IPC_ATTACH = 5,		/* subscribe / resume, with the delivery socket as fd;
				 * without one: only create or keep the cursor (an
				 * offline persistent session's filter matched) */
	IPC_DETACH = 6,		/* session gone: drop the fd, keep the cursor */
	IPC_UNSUB = 7,		/* stop delivering; UF_FORGET also drops the cursor */
	IPC_ACK = 8,		/* a subscriber's PUBACK / PUBREC / PUBCOMP */
	IPC_DLQ_DONE = 9,	/* a DEADLETTER is durable in the dead-letter topic */
	IPC_RESUME = 10,	/* after ROOM: publishes come again (empty body) */
	IPC_STOP = 11,		/* apply what came before, send a last IDLE, exit 0:
				 * the topic goes cold (struct rec_stop) */
	IPC_PING = 12,		/* are you there: answered with a STATS (empty body) */
	IPC_FORGET = 13,	/* after a last IDLE with IDLE_EMPTY: delete the store
				 * and exit 0 (empty body; the master no longer knows
				 * the topic) */
	IPC_KEEP = 14,		/* after a last IDLE with IDLE_EMPTY: exit 0, the store
				 * kept (empty body) */
	IPC_TAKE = 15,		/* to a spare topicd, first on its channel: serve this
				 * topic (struct rec_take); CONFIG follows, as at a
				 * start */

	/* topicd -> master, on the channel */
	IPC_READY = 32,		/* store open; once */
	IPC_DONE = 33,		/* answer to a request with a req id */
	IPC_DEADLETTER = 34,	/* please store this in the dead-letter topic */
	IPC_STATS = 35,		/* figures for status, titles and $SYS (on change, <= 1/s) */
	IPC_FULL = 36,		/* no room: publishes are refused (ST_FULL) until RESUME */
	IPC_ROOM = 37,		/* room again: send RESUME, then the refused publishes
				 * (empty body) */
	IPC_IDLE = 38,		/* nothing to do now (or, after STOP, the last word):
				 * what the master must know of a cold topic */
	IPC_SPARE = 39,		/* after the last IDLE of a STOP, its store closed (or
				 * deleted, after FORGET): it can take another topic
				 * (TAKE) instead of exiting; the master closes the
				 * channel to end it (struct rec_spare) */

	/* topicd -> master, on a delivery socket */
	IPC_DELIVER = 64,	/* a message for the session */
	IPC_DELIVER_REL = 65,	/* PUBREL for a message the client PUBREC'd */
};

/* How a topicd ends, for the master's supervision: 0 when asked to
 * stop; TOPICD_EXIT_DAMAGED when its store does not read back (the topic
 * is failed until an operator looks); TOPICD_EXIT_IO after an I/O error
 * of its store (restarted, as after SIGKILL); TOPICD_EXIT_VERSION when the
 * master speaks another IPC_PROTO_VERSION (the topic is failed: restarting
 * the same binary cannot help); TOPICD_EXIT_DELETED once it deleted its
 * store as FORGET asked.  Any other status, or a
 * signal like SIGSEGV or SIGABRT, is a crash: a record it was applying
 * may be a poison record. */
#define TOPICD_EXIT_DAMAGED	65	/* EX_DATAERR */
#define TOPICD_EXIT_IO		74	/* EX_IOERR */
#define TOPICD_EXIT_VERSION	76	/* EX_PROTOCOL: the master is of another release */
#define TOPICD_EXIT_DELETED	3	/* after FORGET: its store is deleted (only then:
					 * a topicd stopped otherwise exits 0) */

/* PUBLISH flags, also stored with the message and echoed in DELIVER. */
#define PF_RETAIN 0x01		/* MQTT retain */
#define PF_JSON   0x02		/* payload is JSON text (from a JSON-lines msg that is not a string) */
#define PF_STAGE  0x04		/* hold until RELEASE (QoS 2 / JSON-lines PUB) */
#define PF_EXT    0x08		/* wire only, set and cleared by the codec: props,
				 * expiry_ms and origin follow the payload */

/* DELIVER flags */
#define DF_DUP    0x01		/* sent before */
#define DF_RETAIN 0x02		/* a retained message sent on subscribe */
#define DF_JSON   0x04		/* = PF_JSON of the message */
#define DF_EXT    0x08		/* wire only, set and cleared by the codec: props,
				 * expiry_ms, origin and share follow the payload */
#define DF_PUBRETAIN 0x10	/* the message was published with RETAIN=1
				 * (MQTT 5 Retain As Published) */
#define DF_COPY   0x20		/* never on the wire: a delivery the master makes
				 * of a cold topic's retained message (IDLE's
				 * copy), whose exchange ends with the client */

/* ATTACH mode and flags */
#define MODE_JSON 1		/* JSON-lines consumer: QoS 2 exchange, timed retrial */
#define MODE_MQTT 2		/* MQTT session: resend on reconnect only */
#define AF_RETAINED 0x01	/* send the retained message (MQTT SUBSCRIBE) */
#define AF_NEW_ONLY 0x02	/* a new subscriber starts at the next message */
#define AF_MEMBER   0x04	/* wire only: member follows (a shared subscription) */
#define AF_SAME_CONN 0x08	/* the connection attached already (a SUBSCRIBE
				 * that replaces a subscription): new settings,
				 * nothing in flight sent again */

/* UNSUB flags */
#define UF_FORGET 0x01		/* delete the cursor too (MQTT UNSUBSCRIBE) */
#define UF_MEMBER 0x02		/* wire only: member follows; only that member leaves
				 * the group (with UF_FORGET: and the group's cursor
				 * goes when it was the last) */

/* Shared subscriptions ($share/GROUP/FILTER): the group is one subscriber
 * of the topic, with one cursor, whose key is SHARE_KEY_PREFIX "GROUP/FILTER";
 * its members are sessions (member: the session's key), each with its own
 * delivery socket and window.  A message goes to one member with room; a
 * member's unacknowledged messages go to the others when it leaves.  ACK
 * names the member's key (or the group's): the topicd finds the group. */
#define SHARE_KEY_PREFIX "g/"

/* ACK kinds */
#define ACK_PUBACK  1
#define ACK_PUBREC  2
#define ACK_PUBCOMP 3

/* DONE status */
enum ipc_status {
	ST_OK = 0,
	ST_INVALID = 1,		/* the request made no sense (bad qos, unknown subscriber) */
	ST_STORE = 2,		/* the store failed (I/O error): not stored */
	ST_FULL = 3,		/* no room now (FULL was sent): not stored; send it
				 * again after RESUME */
};

struct rec_config {
	uint32_t    version;		/* IPC_PROTO_VERSION */
	uint32_t    retry_ms;		/* JSON-lines retrial interval */
	uint32_t    max_attempts;	/* sends before a consumer is parked */
	uint32_t    checkpoint_kib;	/* journal size that triggers a checkpoint */
	uint32_t    max_queued;		/* MQTT subscriber backlog limit (0: none) */
	uint64_t    max_bytes;		/* bytes of messages the topic keeps (0: no limit) */
	uint64_t    min_free;		/* free bytes the data directory keeps (0: none) */
	uint8_t     sync;		/* 1: fdatasync each batch; 0: write only */
	uint8_t     log_level;
	uint64_t    boot_id;		/* changes on every master start */
	const char *dlq_topic;
	uint64_t    seq_floor;		/* a new store's first sequence number is at
					 * least this: past every number of the
					 * topics the master forgot */
	uint8_t     log_dests;		/* the master's LOG_DEST_* (0: the topicd
					 * keeps those of its command line) */
	const char *log_file;		/* the master's log file ("" for none) */
};

/* A message's MQTT 5 side, all optional (a record without any costs no
 * byte more on the wire): props is an opaque blob of MQTT 5 application
 * properties in property wire format without the length prefix (the
 * topicd never parses it); expiry_ms is absolute wall-clock time (0:
 * never); origin is the publisher's client id for No Local ("" for none;
 * it is not the owner, which is set only for staged publishes). */
struct rec_publish {
	uint64_t       req;		/* 0: QoS 0, no answer */
	const char    *owner;		/* publisher identity for dedupe ("" for none) */
	uint32_t       pubid;		/* publisher's id for the message */
	uint8_t        qos;
	uint8_t        flags;		/* PF_* (PF_EXT is the codec's) */
	uint64_t       time_ms;		/* wall clock at receipt */
	const uint8_t *payload;
	size_t         payload_len;
	const uint8_t *props;		/* NULL or props_len bytes */
	size_t         props_len;
	uint64_t       expiry_ms;	/* wall clock ms when it expires; 0: never */
	const char    *origin;		/* publisher's client id; "" (or NULL) for none */
};

struct rec_release {
	uint64_t    req;
	const char *owner;
	uint32_t    pubid;
};

struct rec_release_owner {
	uint64_t    req;		/* answered with DONE when non-zero */
	const char *owner;
};

struct rec_attach {			/* the delivery socket rides as the fd */
	uint64_t    req;
	const char *subkey;		/* "j/USERNAME", "m/CLIENTID", or a group "g/G/F" */
	uint8_t     mode;		/* MODE_* */
	uint8_t     qos;		/* granted QoS (JSON-lines: 2) */
	uint8_t     flags;		/* AF_* (AF_MEMBER is the codec's) */
	uint16_t    window;		/* messages in flight at once (JSON-lines: 1) */
	const char *member;		/* a group's: the member session's key; "" (or
					 * NULL) for a session's own subscription */
};

struct rec_detach {
	const char *subkey;
	const char *member;		/* a group's member that goes offline, or "" */
};

struct rec_unsub {
	uint64_t    req;
	const char *subkey;
	uint8_t     flags;		/* UF_* (UF_MEMBER is the codec's) */
	const char *member;		/* a group's member that leaves it, or "" */
};

struct rec_ack {
	const char *subkey;
	uint64_t    seq;
	uint8_t     kind;		/* ACK_* */
	const char *share;		/* the delivery's (struct rec_deliver): "" for
					 * the session's own, or unknown */
};

/* STOP: the store is closed with a checkpoint (the broker is stopping:
 * its next start replays nothing); without, its journal stays, for a
 * topic that may start again soon. */
#define STOP_CHECKPOINT	0x01

struct rec_stop {
	uint8_t  flags;		/* STOP_* */
};

#define SPARE_DELETED 0x01	/* its store was deleted, as FORGET asked */
struct rec_spare {
	uint8_t  flags;		/* SPARE_* */
};

struct rec_take {
	const char *topic;	/* a valid topic name (topic_check_name) */
};

struct rec_dlq_done {
	uint64_t req;
	uint8_t  stored;	/* 0: it could not be stored: ask again later */
};

struct rec_ready {
	uint32_t    version;		/* IPC_PROTO_VERSION */
	const char *topic;
	uint64_t    next_seq;
};

struct rec_done {
	uint64_t req;
	uint32_t status;		/* ST_* */
	uint64_t seq;			/* sequence assigned, or the cursor for ATTACH */
};

struct rec_deadletter {
	uint64_t       req;		/* DLQ_DONE answers it */
	const char    *reason;		/* "max_attempts", ... */
	const char    *subkey;		/* whose delivery gave up ("" for none) */
	uint64_t       seq;
	uint8_t        flags;		/* PF_* of the message */
	uint64_t       time_ms;		/* when it was published */
	const uint8_t *payload;
	size_t         payload_len;
};

struct rec_full {
	const char *reason;		/* "max_topic_size", "min_free_space", "disk_full" */
};

struct rec_stats {
	uint32_t subscribers;		/* durable cursors */
	uint32_t online;		/* attached right now */
	uint64_t first_seq;		/* oldest message kept */
	uint64_t next_seq;
	uint64_t messages;		/* messages kept */
	uint64_t bytes;			/* payload bytes kept */
	uint64_t lag;			/* largest next_seq - cursor over subscribers */
	uint64_t oldest_unacked_ms;	/* age of the oldest in-flight delivery, 0 if none */
	uint64_t commits;		/* syncs since start */
	uint64_t committed;		/* records made durable since start */
	uint64_t disk_bytes;		/* the store's files */
	uint8_t  full;			/* publishes are refused (FULL sent, no RESUME yet) */
	uint64_t expired;		/* messages not delivered because they expired
					 * (retained ones included), since start */
};

/* IDLE: the topicd has nothing to do (every record up to rx applied and
 * committed, nothing to deliver to or wait for from an online subscriber),
 * or it is stopping.  What follows lets the master leave the topic cold
 * until a subscriber with something to get comes: every subscriber's key
 * and whether it has messages to get (or in flight).  A topic with more
 * subscribers than fit sends none and IDLE_SUBS_UNKNOWN. */
#define IDLE_RETAINED		0x01	/* a retained message is kept */
#define IDLE_SUBS_UNKNOWN	0x02	/* subscribers not listed: any may have some */
#define IDLE_FINAL		0x04	/* after STOP: it exits now */
#define IDLE_STAGED		0x08	/* messages staged by connections wait: the
					 * topicd releases those of an earlier master
					 * when it starts (config_boot) */
#define IDLE_EMPTY		0x10	/* with IDLE_FINAL: the store keeps nothing but
					 * subscribers with nothing to get (no message,
					 * retained or staged one, dead letter waiting);
					 * the topicd waits for FORGET or KEEP */
#define IDLE_RETAINED_COPY	0x20	/* with IDLE_FINAL: the retained message follows
					 * the list, for the master to send new
					 * subscribers while the topic is cold */
#define IDLE_MASK		0x3f
#define IDLE_MAX_SUBS		65536	/* subscribers listed at most */
/* A group's members are listed too, each under a key of its own
 * (idle_member_key), so that the master knows a session that is one. */
#define IDLE_MEMBER_PREFIX	"M/"
/* The retained message is copied into a last IDLE when its payload,
 * properties and origin come to at most this many bytes. */
#define IDLE_COPY_MAX		1024

struct rec_idle {
	uint64_t       rx;		/* records received from this master so far */
	uint64_t       next_seq;
	uint64_t       bytes;		/* payload bytes kept (as STATS) */
	uint64_t       disk_bytes;
	uint8_t        flags;		/* IDLE_* */
	uint32_t       nsubs;
	const uint8_t *subs;		/* nsubs x (string key, u8 backlog), as encoded */
	size_t         subs_len;
	const uint8_t *copy;		/* IDLE_RETAINED_COPY: a DELIVER body of the
					 * retained message at its own QoS, with an
					 * empty topic (dec_idle_copy) */
	size_t         copy_len;
};

struct rec_deliver {
	const char    *topic;
	uint64_t       seq;
	uint8_t        qos;
	uint8_t        flags;		/* DF_* (DF_EXT is the codec's) */
	const uint8_t *payload;
	size_t         payload_len;
	const uint8_t *props;		/* as published (struct rec_publish) */
	size_t         props_len;
	uint64_t       expiry_ms;	/* 0: never; the remaining interval is
					 * expiry_ms - now */
	const char    *origin;		/* the publisher's client id, or "" */
	const char    *share;		/* the shared subscription it is delivered for,
					 * "$share/GROUP/FILTER", or "" for the session's own */
};

struct rec_deliver_rel {
	const char *topic;
	uint64_t    seq;
	const char *share;		/* as in struct rec_deliver */
};

/* Encoders append the body to w (the caller resets it). */
void enc_config(struct wbuf *w, const struct rec_config *r);
void enc_publish(struct wbuf *w, const struct rec_publish *r);
/* The bytes enc_publish writes. */
size_t enc_publish_size(const struct rec_publish *r);
void enc_release(struct wbuf *w, const struct rec_release *r);
void enc_release_owner(struct wbuf *w, const struct rec_release_owner *r);
void enc_attach(struct wbuf *w, const struct rec_attach *r);
void enc_detach(struct wbuf *w, const struct rec_detach *r);
void enc_unsub(struct wbuf *w, const struct rec_unsub *r);
void enc_ack(struct wbuf *w, const struct rec_ack *r);
void enc_dlq_done(struct wbuf *w, const struct rec_dlq_done *r);
void enc_stop(struct wbuf *w, const struct rec_stop *r);
void enc_take(struct wbuf *w, const struct rec_take *r);
void enc_spare(struct wbuf *w, const struct rec_spare *r);
void enc_ready(struct wbuf *w, const struct rec_ready *r);
void enc_done(struct wbuf *w, const struct rec_done *r);
void enc_deadletter(struct wbuf *w, const struct rec_deadletter *r);
void enc_stats(struct wbuf *w, const struct rec_stats *r);
void enc_full(struct wbuf *w, const struct rec_full *r);
/* The fixed fields of r (subs and subs_len ignored), then r->nsubs entries
 * added with enc_idle_sub. */
void enc_idle(struct wbuf *w, const struct rec_idle *r);
void enc_idle_sub(struct wbuf *w, const char *key, bool backlog);
/* After the list: the retained message (IDLE_RETAINED_COPY), d's topic
 * and share empty. */
void enc_idle_copy(struct wbuf *w, const struct rec_deliver *d);
void enc_deliver(struct wbuf *w, const struct rec_deliver *r);
/* enc_deliver is its head, the payload's bytes, and its tail: for a
 * sender that sends the payload from where it is. */
void enc_deliver_head(struct wbuf *w, const struct rec_deliver *r);
void enc_deliver_tail(struct wbuf *w, const struct rec_deliver *r);
void enc_deliver_rel(struct wbuf *w, const struct rec_deliver_rel *r);

/* Decoders return 0, or -1 when the body is malformed (wrong size, a
 * string without its NUL or with one inside, trailing bytes, a value out
 * of range).  Pointers in *r point into body; an optional string that is
 * absent (origin, share, member) comes back as "". */
int dec_config(const void *body, size_t len, struct rec_config *r);
int dec_publish(const void *body, size_t len, struct rec_publish *r);
int dec_release(const void *body, size_t len, struct rec_release *r);
int dec_release_owner(const void *body, size_t len, struct rec_release_owner *r);
int dec_attach(const void *body, size_t len, struct rec_attach *r);
int dec_detach(const void *body, size_t len, struct rec_detach *r);
int dec_unsub(const void *body, size_t len, struct rec_unsub *r);
int dec_ack(const void *body, size_t len, struct rec_ack *r);
int dec_dlq_done(const void *body, size_t len, struct rec_dlq_done *r);
int dec_stop(const void *body, size_t len, struct rec_stop *r);
int dec_take(const void *body, size_t len, struct rec_take *r);
int dec_spare(const void *body, size_t len, struct rec_spare *r);
int dec_ready(const void *body, size_t len, struct rec_ready *r);
int dec_done(const void *body, size_t len, struct rec_done *r);
int dec_deadletter(const void *body, size_t len, struct rec_deadletter *r);
int dec_stats(const void *body, size_t len, struct rec_stats *r);
int dec_full(const void *body, size_t len, struct rec_full *r);
/* RESUME and ROOM have no body. */
int dec_empty(const void *body, size_t len);
int dec_idle(const void *body, size_t len, struct rec_idle *r);
/* The retained message of a decoded IDLE with IDLE_RETAINED_COPY (its
 * topic ""): 0, or -1 without one. */
int dec_idle_copy(const struct rec_idle *r, struct rec_deliver *d);
/* The next subscriber of a decoded IDLE's list (*pos starts at 0): its key
 * (pointing into the body) and backlog flag; false after the last. */
bool idle_next_sub(const struct rec_idle *r, size_t *pos, const char **key, bool *backlog);
/* The key a group's member is listed under: unambiguous whatever the
 * two keys hold (the group's length comes first).  Returns w->data. */
const char *idle_member_key(struct wbuf *w, const char *gkey, const char *member);
int dec_deliver(const void *body, size_t len, struct rec_deliver *r);
/* For r decoded from a body another process may still write (a topicd's
 * ring): its strings and properties are copied into w (reset first), each
 * read once and within the body, and r points to the copies; only the
 * payload, passed on as bytes, stays where it is. */
void rec_deliver_own(struct rec_deliver *r, const void *body, size_t len, struct wbuf *w);
int dec_deliver_rel(const void *body, size_t len, struct rec_deliver_rel *r);

/* The version a CONFIG or READY body begins with, whatever its release's
 * layout of the rest; 0 when the body is too short to hold one. */
uint32_t ipc_version_of(const void *body, size_t len);

/* "PUBLISH", "DONE", ... for logs; "?" for an unknown type. */
const char *ipc_type_name(uint16_t type);

#endif
