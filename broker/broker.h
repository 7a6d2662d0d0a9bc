/* The master: internal structures and prototypes, grouped by the file
 * that defines them. */
#ifndef BROKER_BROKER_H
#define BROKER_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>

#include "ipc_proto.h"
#include "settings.h"

struct event_base;
struct event;
struct bufferevent;
struct evconnlistener;
struct ipc_chan;
struct ipc_msg;
struct mqtt_packet;
struct kv;
struct client;
struct evbuffer;

typedef void durable_fn(void *);
struct waiter;
TAILQ_HEAD(waiter_list, waiter);
TAILQ_HEAD(client_list, client);

/* A request to a topicd that waits for DONE; replayed into a restarted
 * child.  What the answer does is said by kind and the ids below (the
 * client is looked up by id: it may be gone). */
enum held_kind {
	HELD_JSON_PUB,		/* JSON-lines PUB: answer PUBREC msg_id */
	HELD_JSON_REL,		/* JSON-lines PUBREL: answer PUBCOMP msg_id */
	HELD_MQTT_PUB,		/* MQTT PUBLISH QoS 1/2: answer PUBACK / PUBREC */
	HELD_MQTT_REL,		/* MQTT PUBREL: answer PUBCOMP */
	HELD_DLQ,		/* a dead letter: answer DLQ_DONE to its topic */
	HELD_NOTE,		/* nothing to answer (RELEASE_OWNER, internal) */
};

struct held {
	TAILQ_ENTRY(held) entry;
	enum held_kind	 kind;
	uint16_t	 type;		/* IPC_PUBLISH, IPC_RELEASE, ... */
	uint64_t	 req;		/* 0 for records without an answer */
	uint8_t		*body;
	size_t		 len;
	bool		 sent;		/* to the current child */
	uint64_t	 client_id;
	uint64_t	 msg_id;	/* JSON-lines msgId, MQTT packet id */
	uint8_t		 qos;		/* MQTT: of the PUBLISH */
	bool		 stalls;	/* counted in its client's nstalled */
	bool		 suspect;	/* outstanding at a crash (probing) */
	unsigned	 strikes;	/* crashes while it alone was outstanding */
	char		*dlq_topic;	/* HELD_DLQ: the topic that asked */
	uint64_t	 dlq_req;	/* ... and its request id */
	unsigned	 dlq_gen;	/* ... and that child's generation */
	/* For dead-lettering what a failed topic cannot take. */
	char		*client_desc;
	int		 port;
};
TAILQ_HEAD(held_list, held);

/* A session attached to a topic: re-sent to every new topicd. */
struct attachment {
	TAILQ_ENTRY(attachment) by_child;
	TAILQ_ENTRY(attachment) by_client;
	struct client	*client;
	struct child	*child;
	uint64_t	 req;		/* non-zero while waiting for DONE */
	bool		 confirmed;	/* the topicd answered the last ATTACH */
	struct rec_attach a;		/* a.subkey points to the session's key */
};
TAILQ_HEAD(attachment_list, attachment);

enum child_state {
	CH_STARTING,		/* forked, no READY yet */
	CH_READY,
	CH_BACKOFF,		/* exited; restart timer running */
	CH_FAILED,		/* its store is damaged; SIGHUP retries */
	CH_STOPPING,		/* we sent SIGTERM (shutdown) */
};

struct child {
	RB_ENTRY(child)	 entry;
	char		*topic;
	pid_t		 pid;
	enum child_state state;
	unsigned	 gen;		/* bumped at every spawn */
	struct ipc_chan	*chan;
	struct event	*timer;		/* restart back-off */
	uint64_t	 backoff_ms;
	uint64_t	 restarts;
	uint64_t	 poisoned;	/* poison records dead-lettered */
	int64_t		 ready_at;
	bool		 killed;	/* we killed it (protocol violation): still a crash */
	bool		 registered;	/* its registry entry is durable */
	bool		 full;		/* FULL: no room until we sent RESUME */
	bool		 probing;	/* after a crash: one request at a time */
	bool		 stalling;	/* the clients of its waiting publishes are not read */
	struct held_list held;
	unsigned	 nheld_pub;	/* held publishes, for max_held_publishes */
	unsigned	 nunsent;	/* held, not sent to the current child */
	unsigned	 noutstanding;	/* sent with a req, not answered */
	struct attachment_list attached;	/* by_child */
	struct rec_stats stats;
	struct broker	*b;
};
RB_HEAD(child_tree, child);
RB_PROTOTYPE(child_tree, child, entry, child_cmp)

enum client_kind { CL_JSON_CONSUMER, CL_JSON_PUBLISHER, CL_MQTT };

/* A session's topic filter. */
struct filter {
	char		*filter;
	uint8_t		 qos;
};

/* An MQTT delivery in flight: packet id <-> (topic, sequence). */
struct outflight {
	RB_ENTRY(outflight) entry;
	uint16_t	 pid;
	char		*topic;
	uint64_t	 seq;
	uint8_t		 qos;		/* of the PUBLISH sent: 1 or 2; 0 unknown
					 * (stored by an older version) */
	bool		 rel;		/* PUBREC'd: waiting for PUBCOMP */
};
RB_HEAD(outflight_tree, outflight);
RB_PROTOTYPE(outflight_tree, outflight, entry, outflight_cmp)

/* A subscriber identity: "j/NAME" (JSON-lines), "m/ID" (persistent MQTT
 * session) or "c/BOOT/ID" (clean MQTT session). */
struct session {
	RB_ENTRY(session) entry;
	struct broker	*b;
	char		*key;
	uint8_t		 mode;		/* MODE_JSON or MODE_MQTT */
	bool		 persistent;
	struct client	*cl;		/* the connection, NULL while offline */
	struct filter	*filters;
	size_t		 nfilters;
	int64_t		 offline_since;	/* wall ms */
	uint64_t	 incarnation;	/* tells a session from an earlier one of the same key */
	struct outflight_tree out;	/* MQTT */
	unsigned	 nsent;		/* in out, not yet PUBACK'd / PUBREC'd */
	unsigned	 nout;		/* in out */
	uint16_t	 next_pid;
};
RB_HEAD(session_tree, session);
RB_PROTOTYPE(session_tree, session, entry, session_cmp)

/* A topic ever used (for wildcard filters). */
struct tname {
	RB_ENTRY(tname)	 entry;
	char		*name;
};
RB_HEAD(tname_tree, tname);
RB_PROTOTYPE(tname_tree, tname, entry, tname_cmp)

/* What an MQTT connection leaves behind if it ends without DISCONNECT. */
struct mqtt_will {
	char		*topic;
	uint8_t		*payload;
	size_t		 len;
	uint8_t		 qos;
	bool		 retain;
};

struct client {
	RB_ENTRY(client) by_id;
	RB_ENTRY(client) by_name;	/* logged-in JSON consumers */
	uint64_t	 id;
	enum client_kind kind;
	struct broker	*b;
	struct bufferevent *bev;
	char		 desc[64];	/* "127.0.0.1:5555" */
	int		 port;		/* the broker port it came in on */
	struct event	*idle;		/* half a line, or no login, for too long */
	bool		 closing;	/* flushing output, then closed */
	bool		 freeing;	/* release scheduled */
	bool		 throttled;	/* not reading: too much pending (client_throttle) */
	unsigned	 pending;	/* its requests waiting for a topicd's answer */
	unsigned	 nstalled;	/* its publishes waiting for room (held.c) */
	uint64_t	 gate;		/* output waits for this store ticket (durable.c) */
	struct evbuffer	*gated;		/* ... here */
	TAILQ_ENTRY(client) gate_entry;
	struct session	*session;	/* JSON consumers after login, MQTT after CONNECT */
	/* JSON consumers */
	char		*username;
	unsigned	 login_tries;
	int		 dsock[2];	/* delivery socketpair: [0] read, [1] handed out */
	struct event	*dev;		/* read event on dsock[0] */
	bool		 dev_on;
	struct attachment_list attached;	/* by_client */
	/* MQTT */
	bool		 connected;	/* CONNECT accepted */
	uint64_t	 keepalive_ms;	/* 1.5 x the client's keep-alive; 0: none */
	struct mqtt_will *will;
	char		*client_id;
	/* publishers (JSON-lines, MQTT) */
	char		*owner;		/* "j/BOOT/ID" or "m/ID": staged-message owner */
	uint64_t	 next_msg_id;
	struct pubstate	*pub;		/* msgIds awaiting PUBREL, topics published to */
};
RB_HEAD(client_ids, client);
RB_HEAD(client_names, client);

struct broker {
	struct event_base *base;
	struct settings	 set;
	char		*conf_path;
	char		*topicd_path;
	uint64_t	 boot_id;
	int		 lock_fd;
	struct kv	*store;		/* sessions and topics */
	struct event	*store_ev;	/* its worker finished something */
	struct event	*durable_retry;	/* after a full disk */
	struct waiter_list waiters;	/* for a ticket to be durable */
	struct client_list gated;	/* clients whose output waits for one */
	bool		 store_full;	/* all topics over max_store_size */
	uint64_t	 stored_bytes;	/* messages kept by all topics (their STATS) */
	uint64_t	 topics_refused;	/* new topics past max_topics */
	int64_t		 topics_refused_logged;
	struct session_tree sessions;
	struct tname_tree topics;
	struct evconnlistener *listeners[3];
	struct event	*accept_retry;
	struct child_tree children;
	unsigned	 ntopics;	/* known topics (the registry) */
	struct client_ids clients;
	struct client_names consumers;
	unsigned	 nclients;
	uint64_t	 next_client_id;
	uint64_t	 next_req;
	struct event	*sigs[6];
	struct event	*tick;		/* once a second: titles */
	struct event	*sys_timer;	/* $SYS every sys_interval */
	struct event	*stop_timer;
	bool		 stopping;
	int		 stop_phase;	/* 1: finishing requests, 2: stopping topicds */
	int64_t		 stop_deadline;
	bool		 title_dirty;
	int64_t		 started_ms;
	bool		 verbose;
	bool		 daemonize;
	/* figures */
	uint64_t	 msgs_in, msgs_out, bytes_in, bytes_out;
	/* command-line overrides, re-applied on reload */
	char		*opt_data_dir, *opt_bind, *opt_mqtt_port, *opt_json_ports;
};

/* main.c */
/* run.c */
int	 broker_run(struct broker *b);
void	 broker_title(struct broker *b);
/* signals.c */
void	 signals_init(struct broker *b);
void	 signals_free(struct broker *b);
void	 broker_shutdown(struct broker *b);
/* config.c */
/* How broker_load_settings() reports a bad configuration: printed (-t,
 * -T), logged as errors (start-up: the broker does not start), logged as
 * warnings (SIGHUP: the running configuration stays). */
enum settings_report { SETTINGS_PRINT, SETTINGS_LOG_ERRORS, SETTINGS_LOG_WARNINGS };
int	 broker_load_settings(struct broker *b, struct settings *s, enum settings_report how);
int	 broker_reload(struct broker *b);
void	 broker_apply_logging(struct broker *b);
void	 broker_resolve_paths(struct settings *s);
char	*broker_absolute(const char *path);
void	 broker_dump_settings(const struct settings *s);
/* child_ipc.c */
void	 child_dispatch(struct ipc_chan *ch, struct ipc_msg *m, void *arg);
void	 child_chan_error(struct ipc_chan *ch, int err, void *arg);
/* spawn.c */
char	*topicd_find(const char *configured);
pid_t	 topicd_spawn(struct broker *b, const char *topic, int *chan_fd);
/* children.c */
struct child *child_get(struct broker *b, const char *topic, bool create, const char **why);
struct child *child_find(struct broker *b, const char *topic);
void	 child_start(struct child *c);
void	 children_reap(struct broker *b);
void	 children_retry_failed(struct broker *b);
void	 children_stop_all(struct broker *b);
void	 children_kill_all(struct broker *b);
void	 children_free_all(struct broker *b);
unsigned children_pending(struct broker *b);
void	 children_config(struct broker *b);
bool	 children_all_gone(struct broker *b);
void	 child_kill(struct child *c, const char *why);
int	 children_count(struct broker *b);
void	 children_budget(struct broker *b);
/* held.c */
struct held *held_new(enum held_kind kind, uint16_t type, uint64_t req, const struct wbuf *w);
void	 held_free(struct held *h);
int	 child_submit(struct child *c, struct held *h, const char **why);
void	 child_send(struct child *c, uint16_t type, const struct wbuf *w);
void	 child_pump(struct child *c);
void	 child_replay(struct child *c);
void	 child_done(struct child *c, const struct rec_done *d);
void	 child_update_stalls(struct child *c);
unsigned child_requeue(struct child *c, struct held **alone);
void	 child_suspect_all(struct child *c);
void	 child_take_held(struct child *c, struct held *h);
void	 held_refuse(struct child *c, struct held *h);
void	 child_fail_held(struct child *c);
void	 child_discard_held(struct child *c);
/* durable.c */
void	 durable_init(struct broker *b);
void	 durable_free(struct broker *b);
uint64_t durable_write(struct broker *b);
bool	 durable_reached(struct broker *b, uint64_t ticket);
void	 durable_wait(struct broker *b, uint64_t ticket, durable_fn *fn, void *arg);
void	 durable_cancel(struct broker *b, void *arg);
uint64_t broker_req(struct broker *b);
/* attach.c */
void	 attach_topic(struct client *cl, struct child *c, const struct rec_attach *a);
void	 attach_offline(struct child *c, const struct rec_attach *a);
void	 topic_unsub(struct child *c, const char *subkey, bool forget);
void	 attach_resend(struct attachment *a);
void	 attach_done(struct attachment *a, const struct rec_done *d);
void	 attach_drop(struct attachment *a, bool detach);
struct attachment *attach_find(struct client *cl, struct child *c);
/* listen.c */
int	 listeners_open(struct broker *b);
void	 listeners_close(struct broker *b);
/* client.c */
void	 client_new(struct broker *b, int fd, enum client_kind kind, const char *desc, int port);
void	 client_close(struct client *cl, const char *why);
void	 client_write(struct client *cl, const struct wbuf *w);
void	 client_line(struct client *cl, const char *text);
/* "ERROR text", then the connection is closed once it is sent: on the
 * JSON-lines ports an ERROR line always ends the connection. */
void	 client_error(struct client *cl, const char *text);
struct client *client_by_id(struct broker *b, uint64_t id);
bool	 client_output_full(const struct client *cl);
bool	 client_throttled(const struct client *cl);
void	 client_throttle(struct client *cl);
void	 clients_close_all(struct broker *b);
void	 clients_free_all(struct broker *b);
void	 clients_stop_reading(struct broker *b);
void	 client_gate(struct client *cl, uint64_t ticket);
void	 clients_ungate(struct broker *b, uint64_t durable);
/* delivery.c */
int	 delivery_open(struct client *cl);
void	 delivery_close(struct client *cl);
void	 delivery_resume(struct client *cl);
/* json_pub.c */
void	 json_pub_line(struct client *cl, const char *line, size_t len);
void	 json_pub_done(struct child *c, struct held *h, const struct rec_done *d);
void	 json_pub_closed(struct client *cl);
void	 publisher_closed(struct client *cl, bool release);
void	 pub_note_topic(struct client *cl, const char *topic);
const char *pub_pending_get(struct client *cl, uint64_t id);
void	 pub_pending_set(struct client *cl, uint64_t id, const char *topic);
void	 pub_pending_del(struct client *cl, uint64_t id);
/* json_cons.c */
void	 json_cons_start(struct client *cl);
void	 json_cons_line(struct client *cl, const char *line, size_t len);
void	 json_cons_closed(struct client *cl);
void	 json_cons_deliver(struct client *cl, const struct ipc_msg *m);
/* session.c */
int	 store_open(struct broker *b);
void	 store_close(struct broker *b);
struct session *session_find(struct broker *b, const char *key);
struct session *session_new(struct broker *b, const char *key, uint8_t mode, bool persistent);
uint64_t session_save(struct session *s);
void	 session_delete(struct session *s);
void	 session_free(struct session *s);
int	 session_qos(const struct session *s, const char *topic);
bool	 session_add_filter(struct session *s, const char *filter, uint8_t qos);
bool	 session_remove_filter(struct session *s, const char *filter);
void	 session_sync_topic(struct session *s, struct child *c, bool retained);
void	 session_attach_all(struct session *s, const char *only_filter, bool retained);
void	 sessions_topic_created(struct broker *b, struct child *c);
unsigned session_count(struct broker *b);
void	 sessions_expire(struct broker *b);
void	 store_maintain(struct broker *b);
bool	 topic_known(struct broker *b, const char *topic);
uint64_t topic_register(struct broker *b, const char *topic);
/* mqtt_conn.c */
void	 mqtt_start(struct client *cl);
void	 mqtt_read(struct client *cl);
void	 mqtt_closed(struct client *cl);
void	 mqtt_send(struct client *cl, const struct wbuf *w);
void	 mqtt_touch(struct client *cl);
/* mqtt_pub.c */
void	 mqtt_publish_in(struct client *cl, struct mqtt_packet *p);
void	 mqtt_pubrel_in(struct client *cl, uint16_t pid);
void	 mqtt_ack_in(struct client *cl, uint8_t type, uint16_t pid);
void	 mqtt_pub_done(struct child *c, struct held *h, const struct rec_done *d);
void	 mqtt_deliver(struct client *cl, const struct ipc_msg *m);
bool	 mqtt_can_take(const struct client *cl);
void	 mqtt_session_clear(struct session *s, bool forget);
void	 mqtt_load_outflights(struct broker *b);
void	 mqtt_flush(struct broker *b);
void	 mqtt_forget_topic(struct session *s, const char *topic);
void	 mqtt_publish_will(struct client *cl);
/* mqtt_sub.c */
void	 mqtt_subscribe_in(struct client *cl, struct mqtt_packet *p);
void	 mqtt_unsubscribe_in(struct client *cl, struct mqtt_packet *p);
/* sys.c */
void	 sys_start(struct broker *b);
void	 sys_stop(struct broker *b);
void	 sys_subscribed(struct client *cl, const char *filter);
/* dlq.c */
void	 dlq_bad_input(struct client *cl, const char *reason, const char *topic,
	     const void *bytes, size_t len);
int	 dlq_publish(struct broker *b, const char *reason, const char *client, int port,
	     const char *topic, const void *bytes, size_t len, struct held *answer);
void	 dlq_from_child(struct child *c, const struct rec_deadletter *d);
void	 dlq_poison(struct child *c, struct held *h);
struct jl_request;
void	 json_refuse(struct client *cl, const struct jl_request *r, const char *line, size_t len);
void	 json_unknown(struct client *cl, const char *reason, const char *detail,
	     const char *topic, const void *bytes, size_t len);
void	 dlq_refused(struct client *cl, const char *reason, const char *detail,
	     const char *topic, const void *bytes, size_t len);
/* status.c */
void	 status_log(struct broker *b);

/* privs.c: started as root, become `user` once the ports are bound */
/* 1: the master is to become uid/gid; 0: it stays who it is; -1: error (logged) */
int	 privs_target(const struct settings *s, uid_t *uid, gid_t *gid);
/* Creates the data directory for the user, or checks that it is the user's. */
int	 privs_data_dir(const char *dir, const char *user, uid_t uid, gid_t gid);
int	 privs_drop(const char *user, uid_t uid, gid_t gid);
/* Error lines that say what to do: the data directory dir cannot be
 * created for uid:gid; path (dir, or a file in it) cannot be written by
 * this process (err is the errno of the attempt). */
void	 privs_log_cannot_create(const char *dir, uid_t uid, gid_t gid, int err);
void	 privs_log_unwritable(const char *dir, const char *path, int err);

/* notify.c: sd_notify(3) for a systemd unit of Type=notify */
void	 notify_ready(const char *status);
void	 notify_reloading(void);
void	 notify_stopping(void);
void	 notify_status(const char *status);

#endif
