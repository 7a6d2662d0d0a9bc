/* The master's core: the topics and their topicds (supervision, the
 * requests held for them, attachments), sessions and the routing of topics
 * to them, client connections with their delivery sockets and
 * back-pressure, dead letters, and the master's own store.
 *
 * The core knows no client protocol.  A protocol (broker/mqtt,
 * broker/json) plugs in with a table of operations (struct proto) for its
 * connections, completion callbacks on the requests it makes (held_done),
 * and hooks on the sessions it keeps state for (struct session_ext).
 * Calls go down only: the daemon (broker/) calls the protocols and the
 * core, the protocols call the core, the core calls common/ and the
 * protocols' tables. */
#ifndef BROKER_CORE_CORE_H
#define BROKER_CORE_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>

#include "auth/auth.h"
#include "ipc.h"
#include "ipc_proto.h"
#include "core/settings.h"

struct event_base;
struct event;
struct evbuffer;
struct bufferevent;
struct evconnlistener;
struct ipc_chan;
struct ipc_msg;
struct kv;
struct client;
struct child;
struct held;
struct session;
struct registry;
struct routes;
struct ssl_ctx_st;		/* OpenSSL's SSL_CTX */
struct ssl_st;			/* OpenSSL's SSL */
struct ws_conn;

/* ------------------------------------------------------------ protocols */

/* A client protocol's operations on its connections.  The core calls
 * start once, read when input is there and the client is not throttled,
 * deliver for each record from a topicd while can_take says yes, idle
 * when the client's timer fires, and closed once, when the connection
 * ends (the protocol frees its state there).  stopping (may be NULL)
 * closes a connection as the broker shuts down, telling the client why. */
struct proto {
	const char	*name;		/* "MQTT", ... for logs */
	void	(*start)(struct client *);
	void	(*read)(struct client *);
	void	(*deliver)(struct client *, struct ipc_msg *);	/* may keep its body */
	/* A cold topic's retained message, from the master's copy (DF_COPY);
	 * NULL: the protocol has no retained messages. */
	void	(*deliver_copy)(struct client *, const struct rec_deliver *);
	bool	(*can_take)(const struct client *);
	void	(*idle)(struct client *);
	void	(*closed)(struct client *);
	void	(*stopping)(struct client *);
};

/* A protocol's own state in a session, and what the core tells it. */
struct session_ext {
	/* The session no longer takes the topic (its cursor is gone) for
	 * share ("$share/G/F"), for its own subscription (""), or for any
	 * (NULL). */
	void	(*topic_dropped)(struct session *, const char *topic, const char *share);
	/* The session ends: forget (for good: what it stored goes too), or
	 * only its memory is released (the broker stops). */
	void	(*ended)(struct session *, bool forget);
};

#include "core/topicds.h"

/* ------------------------------------------------------------ sessions */

/* A session's topic filter. */
struct filter {
	char		*filter;
	uint8_t		 qos;
};
/* A session's filters by name, and those a topic is matched against one
 * by one (filters.c). */
struct filter_ix;
RB_HEAD(filter_index, filter_ix);
RB_HEAD(filter_scan, filter_ix);

/* A subscriber identity: "j/NAME" (JSON-lines), "m/ID" (persistent MQTT
 * session) or "c/BOOT/ID" (clean MQTT session). */
struct session {
	RB_ENTRY(session) entry;
	struct broker	*b;
	char		*key;
	uint8_t		 mode;		/* how its topicds deliver: MODE_JSON, MODE_MQTT */
	bool		 persistent;
	struct client	*cl;		/* the connection, NULL while offline */
	struct filter	*filters;
	size_t		 nfilters;
	struct filter_index findex;	/* filters by name */
	struct filter_scan findex_scan;	/* those with a wildcard, and shares */
	/* When it went offline: wall ms for its record, which outlives the
	 * process; the expiry counts on the monotonic clock from offline_mono,
	 * which a step of the wall clock does not move. */
	int64_t		 offline_since;
	int64_t		 offline_mono;
	/* Offline this long (ms), an MQTT session is removed: 0 means
	 * persistent_client_expiration, UINT64_MAX never (MQTT 5.0's Session
	 * Expiry Interval, set by its protocol). */
	uint64_t	 expiry_ms;
	/* Tells a session from an earlier one of the same key: given in
	 * increasing order, never twice, also across restarts (session.c). */
	uint64_t	 incarnation;
	/* Whose it is, for the ACL: the user name its client logged in
	 * with (NULL: anonymous), and the auth that applies to it, also
	 * while it is offline: the broker's, or with per_listener_settings
	 * that of the listener block its client last came in by (listener:
	 * its "PORT [ADDRESS]", kept in the record). */
	char		*user;
	struct auth	*auth;
	char		*listener;
	void		*ext;		/* its protocol's state */
	const struct session_ext *ext_ops;
	bool		 dirty;		/* its record is to be written */
	TAILQ_ENTRY(session) dirty_entry;	/* in b->dirty_sessions */
};
RB_HEAD(session_tree, session);
RB_PROTOTYPE(session_tree, session, entry, session_cmp)

/* ------------------------------------------------------------ listeners */

/* A port the master listens on (broker/listen.c): the plain listener of a
 * shortcut key (mqtt_port, ...) or a listener block of the configuration.
 * A TLS listener has a context, which SIGHUP replaces: a connection keeps
 * the one it started with.  Listeners stay until the broker's end, after
 * they stopped accepting, so that a client may look at its own. */
struct listener {
	struct broker		*b;
	const struct proto	*proto;
	const char		*what;		/* "MQTT", "JSON-lines consumers", ... */
	unsigned		 port;
	char			*addr;
	const char		*key;		/* the setting of its port ("mqtt_port"),
						 * or NULL for a block */
	struct listener_conf	*conf;		/* its block; NULL for a shortcut */
	struct evconnlistener	*ev;		/* NULL once closed */
	struct ssl_ctx_st	*tls;		/* NULL: plain */
	bool			 websocket;	/* the protocol over WebSockets (wsconn.c) */
	struct auth		*auth;		/* the password file, ACL... that apply:
						 * the broker's, or its own with
						 * per_listener_settings */
};

/* ------------------------------------------------------------- clients */

/* What a connection published and may have staged (QoS 2, JSON-lines):
 * released when it goes, since it was told those are stored. */
struct owner;

struct client {
	RB_ENTRY(client) by_id;
	uint64_t	 id;
	const struct proto *proto;
	void		*pstate;	/* the protocol's */
	struct broker	*b;
	/* What the protocol reads and writes: the connection's own
	 * bufferevent (raw: the socket's, or an OpenSSL one), or on a
	 * WebSocket listener a filter over it (ws). */
	struct bufferevent *bev;
	struct bufferevent *raw;
	struct ws_conn	*ws;		/* NULL: not a WebSocket */
	char		 desc[128];	/* "127.0.0.1:5555", and what the protocol adds */
	char		 addr[64];	/* "127.0.0.1": failed logins are counted by it */
	int		 port;		/* the broker port it came in on */
	struct auth	*auth;		/* the password file, ACL... that apply to it */
	/* A refused login: nothing more is read, and the answer (farewell)
	 * waits for the idle timer, then the connection closes. */
	bool		 refusing;
	struct wbuf	 farewell;
	char		*farewell_why;
	/* Its WebSocket ended (a close frame, a broken rule) with requests
	 * before it still to handle, at the pace its reading is let: why,
	 * for the close once they are.  NULL: none. */
	char		*ws_end_why;
	bool		 ws_end_fault;	/* ... for a broken rule: a notice */
	const struct listener *listener;	/* ... and its listener */
	struct ssl_st	*ssl;		/* TLS; NULL: plain */
	bool		 handshaking;	/* TLS, WebSocket: the protocol has not started yet */
	bool		 tls_done;	/* its TLS handshake completed (a WebSocket's
					 * upgrade may follow) */
	bool		 started;	/* the protocol's start was called */
	/* The common name of its certificate (or the identity of its
	 * pre-shared key) when its listener has use_identity_as_username,
	 * its subject with use_subject_as_username: it is the user name (the
	 * password is not checked).  NULL otherwise. */
	char		*tls_identity;
	/* TLS-PSK: the last identity it offered whose key is known
	 * (psk_known), else the last one it offered; NULL: none. */
	char		*psk_identity;
	bool		 psk_known;
	/* The identity OpenSSL last found a key for (tls_psk_key): in TLS
	 * 1.3 the one whose key it used, if it used one. */
	char		*psk_keyed;
	struct event	*idle;
	bool		 closing;	/* flushing output, then freed */
	bool		 last_words;	/* ending: what it sent is read, unthrottled */
	bool		 its_fault;	/* closed for what it sent: a notice */
	bool		 freeing;	/* release scheduled */
	bool		 throttled;	/* not reading (client_throttle) */
	unsigned	 pending;	/* its requests waiting for a topicd's answer */
	unsigned	 nstalled;	/* its publishes waiting for room (held.c) */
	uint64_t	 gate;		/* output waits for this store ticket */
	struct evbuffer	*gated;		/* ... here */
	TAILQ_ENTRY(client) gate_entry;
	struct session	*session;
	int		 dsock[2];	/* delivery socketpair: [0] read, [1] handed out */
	struct event	*dev;		/* read event on dsock[0] */
	bool		 dev_on;
	struct ipc_reader din;		/* records read from dsock[0], not taken yet */
	struct attachment_list attached;	/* by_client */
	struct attachment_ix attached_ix;	/* the same, by topic */
	struct attachment_list shared;		/* by_client: memberships of groups */
	struct attachment_list owed;		/* by_owed: retained messages to send
						 * from the master's copies */
	uint64_t	 drained_gen;	/* b->cold_gen when its delivery socket was
					 * last read to empty */
	bool		 dropped_sent;	/* an attachment that went to a topicd was
					 * dropped (retcopy.c): its topicd may
					 * write for it until it reads the DETACH */
	struct owner	*owner;
};
RB_HEAD(client_ids, client);
TAILQ_HEAD(client_list, client);

typedef void durable_fn(void *);
struct waiter;
TAILQ_HEAD(waiter_list, waiter);
TAILQ_HEAD(session_list, session);
/* Starts a topic's topicd: its pid and the master's end of its channel
 * in *chan_fd, or -1 (topicd_spawn). */
typedef pid_t topicd_spawn_fn(struct broker *b, const char *topic, int *chan_fd);

/* ------------------------------------------------------------- broker */

struct broker {
	struct event_base *base;
	struct settings	 set;
	uint64_t	 boot_id;
	char		*topicd_path;
	int		 topicd_fd;	/* topicd_path opened at the start; <= IPC_EXEC_FD: none */
	topicd_spawn_fn	*spawn;		/* NULL: topicd_spawn (a test plays the topicd) */
	/* The master's store: sessions and the topic registry. */
	struct kv	*store;
	struct event	*store_ev;	/* its worker finished something */
	struct event	*durable_retry;	/* after a full disk */
	struct event	*durable_next;	/* the write at the end of this pass (durable_later) */
	struct session_list dirty_sessions;	/* records to write (session_save) */
	bool		 dirty_linked;	/* a change that goes with them is pending (session_linked) */
	struct waiter_list waiters;	/* for a ticket to be durable */
	struct wbuf	 pkt_enc;	/* a delivery's packet, being encoded */
	struct wbuf	 rec_enc;	/* a QoS 0 publish's record (held.c) */
	struct client_list gated;	/* clients whose output waits for one */
	struct session_tree sessions;
	int64_t		 next_expiry;	/* mono ms of the first session to expire */
	uint64_t	 last_incarnation;	/* the latest given, or stored */
	struct routes	*routes;	/* every session's filters (route.c) */
	struct registry	*registry;	/* every topic known (registry.c) */
	unsigned	 ntopics;
	uint64_t	 seq_floor;	/* past every sequence number of a topic
					 * forgotten: a new store's first */
	uint64_t	 topics_forgotten;	/* since start */
	uint64_t	 forgotten_restarts;	/* what those counted, for $SYS */
	uint64_t	 forgotten_poisoned;
	/* Topics and their topicds. */
	struct child_tree children;
	struct child_pids pids;		/* children with a process */
	unsigned	 nlive;		/* processes: at most max_topicds */
	unsigned	 nparking;	/* ... sent STOP */
	struct spare_list spares;	/* topicds between topics (spare.c) */
	unsigned	 nspares;	/* ... waiting (not let go) */
	unsigned	 nqueued;
	struct child_list queue;	/* waiting for room to start, in order */
	struct child_list lru;		/* READY, busy: least recently used first */
	struct child_list quiet;	/* READY, quiet: quiet longest first */
	struct child_list forgetting;	/* forgotten, their topicds deleting
					 * their stores (forget.c) */
	struct event	*live_pass;	/* ends the loop pass that starts topicds */
	int64_t		 live_pass_ms;	/* when it began, 0: none open */
	bool		 store_full;	/* all topics over max_store_size */
	bool		 attach_retry;	/* an attachment has no_fd: the tick retries */
	uint64_t	 stored_bytes;	/* messages kept by all topics (their STATS) */
	uint64_t	 held_bytes;	/* publishes held for topicds (held.c) */
	size_t		 nlazy;		/* lazy requests held for cold topics (held.c) */
	uint64_t	 chan_bytes;	/* records queued on the topicds' channels */
	bool		 held_over;	/* the two past max_held_bytes */
	struct event	*budget_ev;	/* held_budget from the loop */
	uint64_t	 topics_refused;	/* new topics past max_topics */
	int64_t		 topics_refused_logged;
	uint64_t	 next_req;
	/* Clients. */
	struct client_ids clients;
	unsigned	 nclients;
	uint64_t	 next_client_id;
	uint64_t	 cold_gen;	/* topics gone cold since the start */
	uint64_t	 conns_refused;		/* accepted past max_connections */
	int64_t		 conns_refused_logged;
	/* Shutdown. */
	bool		 stopping;
	int		 stop_phase;	/* 1: finishing requests, 2: stopping topicds */
	int64_t		 stop_deadline;
	/* Who may connect and what they may do (the broker's listeners'). */
	struct auth	 auth;
	struct auth_failures *auth_failures;
	/* Figures. */
	int64_t		 started_ms;
	uint64_t	 logins_failed;		/* wrong user name or password */
	uint64_t	 anonymous_refused;
	uint64_t	 publishes_denied, subscribes_denied;	/* by the ACL */
	uint64_t	 msgs_in, msgs_out, bytes_in, bytes_out;
	uint64_t	 tls_failures;	/* TLS handshakes that failed or timed out */
	uint64_t	 msgs_too_large;	/* not sent: over an MQTT 5.0 client's maximum */
	unsigned	 mqtt5_clients;		/* connected at MQTT 5.0 */
	uint64_t	 mqtt5_disconnects;	/* DISCONNECTs the broker sent them */
	bool		 title_dirty;
	/* The daemon's (broker/): listeners, signals, timers, options. */
	char		*conf_path;
	int		 lock_fd;
	struct listener	*listeners;
	size_t		 nlisteners;
	struct event	*accept_retry;
	struct event	*sigs[6];
	struct event	*tick;
	struct event	*sys_timer;
	struct event	*stop_timer;
	bool		 verbose;
	bool		 daemonize;
	char		*opt_data_dir, *opt_bind, *opt_mqtt_port, *opt_json_ports;
};

/* ---------------------------------------------------- topics (topics.c) */

/* The topic's child if the topic is in use, or NULL: a lookup. */
struct child *topic_find(struct broker *b, const char *topic);
/* The topic's child, created if needed: a new topic is registered
 * durably and its topicd started.  NULL with *why when it cannot be
 * (past max_topics: *why is topic_too_many; shutting down). */
struct child *topic_open(struct broker *b, const char *topic, const char **why);
extern const char topic_too_many[];
/* Written by the broker only: a topic starting with $, and the
 * dead-letter topic whatever its name (so that no client can forge a
 * dead letter). */
bool	 topic_reserved(const struct broker *b, const char *topic);
/* durable_wait's callback: the child's need_ticket may be durable. */
void	 child_registered(void *child);

/* registry.c: every topic ever used, durable, for wildcard filters */
typedef void topic_fn(struct broker *b, const char *topic, void *arg);
void	 registry_init(struct broker *b);
void	 registry_free(struct broker *b);
int	 registry_load(struct broker *b);
void	 registry_start_staged(struct broker *b);
bool	 registry_known(struct broker *b, const char *topic);
/* What is known of a known topic, or NULL. */
struct topic_info *registry_info(struct broker *b, const char *topic);
/* Adds a new topic; the ticket that makes it durable. */
uint64_t registry_add(struct broker *b, const char *topic);
/* Was the topic live when the last master ended (asked once)? */
bool	 registry_take_recreate(struct broker *b, const char *topic);
/* The topic is being forgotten, its sequence numbers past seq_floor from
 * now on: the ticket that makes that durable, after which its store may
 * be deleted.  registry_forgotten: it is; the topic leaves the registry
 * (true) unless it came back. */
uint64_t registry_forget(struct broker *b, const char *topic, const uint8_t *idle, size_t len,
	    uint64_t next_seq);
bool	 registry_forgotten(struct broker *b, const char *topic);
/* A topicd starts for the topic: nothing is known until it stops; the
 * ticket that makes that durable. */
uint64_t registry_live(struct broker *b, const char *topic);
/* Its topicd stopped, having said this IDLE (body). */
void	 registry_cold(struct broker *b, const char *topic, const uint8_t *idle, size_t len);
void	 registry_set_bytes(struct broker *b, struct topic_info *ti, uint64_t bytes);
/* What is known of a subscriber there: no cursor, one with nothing to
 * get, one with messages to get, or nothing known. */
enum sub_known { SUB_UNKNOWN, SUB_ABSENT, SUB_CAUGHT_UP, SUB_BACKLOG };
/* A topic being forgotten that nothing used again (forget.c). */
bool	 registry_forgetting(struct broker *b, const char *topic);
enum sub_known topic_info_sub(const struct topic_info *ti, const char *subkey);
/* Calls fn for every known topic the filter matches. */
void	 registry_match(struct broker *b, const char *filter, topic_fn *fn, void *arg);

/* route.c: the sessions' filters, for routing a topic to its sessions */
typedef void session_fn(struct session *s, void *arg);
void	 routes_init(struct broker *b);
void	 routes_free(struct broker *b);
void	 routes_add(struct broker *b, struct session *s, const char *filter);
void	 routes_remove(struct broker *b, struct session *s, const char *filter);
void	 routes_drop(struct broker *b, struct session *s, const char *filter);
/* Calls fn once for every session with a filter matching topic. */
void	 routes_match(struct broker *b, const char *topic, session_fn *fn, void *arg);

/* ---------------------------------------------- supervision (supervise.c) */

struct child *child_create(struct broker *b, const char *topic);
void	 child_free(struct child *c);
void	 child_start(struct child *c);
/* Records to the child's process (counted, for IDLE). */
void	 child_chan_send(struct child *c, uint16_t type, const void *body, size_t len, int fd);
/* live.c: topicds that run, at most max_topicds, and cold topics */
void	 live_init(struct broker *b);
bool	 child_live(const struct child *c);
struct child *child_by_pid(struct broker *b, pid_t pid);
void	 live_unlist(struct child *c);
void	 live_spawned(struct child *c);
/* Something needs the topicd: started now, or queued for room. */
void	 child_wake(struct child *c);
void	 live_ready(struct child *c);
void	 live_touch(struct child *c, uint16_t type);
void	 live_idle(struct child *c, const struct ipc_msg *m);
void	 live_registered(struct child *c);
/* The process is gone (pid 0): out of the live lists; true if it was
 * parked and the topic is now cold. */
bool	 live_exited(struct child *c, int status);
/* forget.c: a topic that keeps nothing is forgotten when it goes cold */
void	 forget_consider(struct child *c, const struct rec_idle *r);
void	 forget_prune(struct child *c, const uint8_t *idle, size_t len);
void	 forget_exited(struct child *c, int status, const char *how);
void	 live_balance(struct broker *b);
void	 live_park(struct child *c, const char *why, bool checkpoint);
void	 live_expire(struct broker *b);
/* spare.c: topicds that take another topic instead of exiting */
void	 spares_init(struct broker *b);
void	 spare_offered(struct child *c, const struct ipc_msg *m);
/* A SPARE said that (deleted) ends the topic as an exit would. */
bool	 spare_clean_end(const struct child *c, bool deleted);
pid_t	 spare_take(struct broker *b, int *fd);
void	 spare_send_take(struct child *c);
bool	 spare_reaped(struct broker *b, pid_t pid, int status);
void	 spares_expire(struct broker *b);
void	 spares_let_go(struct broker *b, const char *why, int sig);
bool	 spares_all_gone(const struct broker *b);
void	 spares_free(struct broker *b);
/* Its process left the topic and lives on (a spare): the topic is cold,
 * or forgotten (deleted: its store is), as if it had exited. */
void	 child_released(struct child *c, bool deleted);
void	 child_kill(struct child *c, const char *why);
/* procstate.c: the state of process pid under the proc root (R, S, D,
 * T...), 'D' also when one of its threads waits for a disk; '?' if
 * unknown. */
char	 proc_state(const char *proc, pid_t pid);
/* A topicd starting or stopping has topicd_timeout to be ready or gone;
 * a ready one with work, to be heard from. */
void	 child_watch(struct child *c);
void	 child_watch_ready(struct child *c);
void	 children_reap(struct broker *b);
void	 children_retry_failed(struct broker *b);
void	 children_config(struct broker *b);
void	 children_stop_all(struct broker *b);
void	 children_kill_all(struct broker *b);
void	 children_free_all(struct broker *b);
bool	 children_all_gone(struct broker *b);
unsigned children_pending(struct broker *b);
void	 children_budget(struct broker *b);
void	 held_budget(struct broker *b);
void	 held_budget_later(struct broker *b);
bool	 over_limit(uint64_t sum, uint64_t max, bool was);
/* spawn.c */
char	*topicd_find(const char *configured);
/* Holds the topicd found, so that every start runs that binary, not what
 * an upgrade put in its place: 0, or -1 (logged). */
int	 topicd_hold(struct broker *b);
pid_t	 topicd_spawn(struct broker *b, const char *topic, int *chan_fd);
/* topicd_ipc.c */
void	 topicd_dispatch(struct ipc_chan *ch, struct ipc_msg *m, void *arg);
void	 topicd_chan_error(struct ipc_chan *ch, int err, void *arg);

/* ------------------------------------------------------ held.c requests */

uint64_t broker_req(struct broker *b);
struct held *held_new(uint16_t type, uint64_t req, const struct wbuf *w);
void	 held_free(struct held *h);
/* Queues h for the topic (sent now if it can be); -1 with *why if the
 * topic is failed (h is not taken). */
int	 child_submit(struct child *c, struct held *h, const char **why);
bool	 child_send_now(struct child *c, const struct rec_publish *p);
/* Records without an answer (ACK, DETACH, RESUME): to a ready child only;
 * an ACK is kept for the next one otherwise. */
void	 child_send(struct child *c, uint16_t type, const struct wbuf *w);
void	 child_free_acks(struct child *c);
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
/* A client's publish to a topic: queued with its answer.  0, or -1 with
 * *why (not taken). */
int	 publish_submit(struct client *cl, struct child *c, const struct rec_publish *p,
	    held_done *done, uint64_t arg, const char **why);
/* Releases a staged message (owner, pubid): done is called when it is. */
int	 release_submit(struct client *cl, struct child *c, const struct rec_release *r,
	    held_done *done, uint64_t arg, const char **why);
/* A request nobody waits for (UNSUB, RELEASE_OWNER, an offline ATTACH). */
int	 note_submit(struct child *c, uint16_t type, uint64_t req, const struct wbuf *w,
	    const char **why);
/* The same, with done called when it is answered (req not 0). */
int	 note_submit_done(struct child *c, uint16_t type, uint64_t req, const struct wbuf *w,
	    held_done *done, uint64_t arg, const char **why);
/* A request that starts no cold topic: it goes first at the topic's next
 * start, whatever causes that (an offline session's registration, which
 * a publish there would wait behind).  The broker's stop does not wait
 * for it; lost with the master, it is made again at the next start
 * (sessions_register_missing).  It costs the master's memory until then
 * (about 200 bytes): past HELD_LAZY_MAX waiting, a request starts its
 * topic as the others do. */
#define HELD_LAZY_MAX	100000
int	 note_submit_lazy(struct child *c, uint16_t type, uint64_t req, const struct wbuf *w,
	    const char **why);
/* Is a request not sent yet that needs the topicd (not a lazy one)? */
bool	 child_has_work(const struct child *c);
/* An UNSUB that a cold topic does not need (a waiting registration of
 * the same subscriber dropped instead): true. */
bool	 held_unsub_needless(struct child *c, const char *subkey, const char *member,
	    bool forget);

/* ------------------------------------------------------ attach.c */

void	 attach_topic(struct client *cl, struct child *c, const struct rec_attach *a);
/* Must the topicd run for this subscriber (something to get, or the
 * retained message)?  True when nothing is known. */
bool	 attach_needs_topicd(struct child *c, const struct rec_attach *a);
void	 attach_offline(struct child *c, const struct rec_attach *a);
void	 topic_unsub(struct child *c, const char *subkey, bool forget);
void	 child_free_cold_unsubs(struct child *c);
/* A session's attachment ends (its client goes); forget: a clean session,
 * whose cursor goes too. */
void	 attach_end(struct attachment *a, bool persistent);
void	 attach_resend(struct attachment *a);
/* Once a second: the ATTACHes that found no descriptor, again. */
void	 attach_retry_failed(struct broker *b);
void	 attach_unsub_sent(struct child *c);
void	 attach_go(struct attachment *a);
void	 attach_done(struct attachment *a, const struct rec_done *d);
void	 attach_drop(struct attachment *a, bool detach);
struct attachment *attach_find(struct client *cl, struct child *c);
/* retcopy.c: a cold topic's retained message, from the master's copy */
bool	 retcopy_take(struct attachment *a);
void	 retcopy_offer(struct child *c);
void	 retcopy_cancel(struct attachment *a, bool ask);
void	 retcopy_send(struct client *cl);
/* A subscriber's ack of a delivery, to its topic. */
void	 ack_to_topic(struct broker *b, const char *subkey, const char *topic,
	    const char *share, uint64_t seq, uint8_t kind);

/* ------------------------------------------------- session.c, route.c */

int	 store_open(struct broker *b);
void	 store_close(struct broker *b);
struct session *session_find(struct broker *b, const char *key);
struct session *session_new(struct broker *b, const char *key, uint8_t mode, bool persistent);
/* The record is to be written at the end of this pass (durable_later):
 * DURABLE_NEXT, for client_gate (0: not stored). */
uint64_t session_save(struct session *s);
void	 sessions_put_dirty(struct broker *b);
void	 session_linked(struct session *s);
void	 sessions_put_linked(struct broker *b);
void	 session_delete(struct session *s);
void	 session_free(struct session *s);
unsigned session_count(struct broker *b);
void	 sessions_expire(struct broker *b);
/* Removes the session now if it is past its lifetime, which the sweep
 * of sessions_expire() notices only within a second (and a second after
 * a start): true when it is gone.  A client that comes back must not
 * resume it. */
bool	 session_expire_due(struct session *s);
/* When a session offline since `since` (ms) with a lifetime of `life` ms
 * is due: INT64_MAX for a lifetime too long to count to. */
int64_t	 session_deadline(int64_t since, uint64_t life);
/* When a stored session went offline (wall ms) at wall time now: `since`,
 * unless the wall clock is now earlier (it stepped back) or the record
 * does not say (0): then now. */
int64_t	 session_offline_wall(uint64_t since, int64_t now);
/* The auth of a listener block by its name ("PORT [ADDRESS]"); the
 * broker's for NULL or a block without its own. */
struct auth *listener_auth(const struct broker *b, const char *listener);
/* The incarnation after `last` at wall time now (ms): now, unless that is
 * not later (the same millisecond, a clock set back): last + 1. */
uint64_t incarnation_next(uint64_t last, int64_t now);
void	 store_maintain(struct broker *b);
/* What was changed in the master's store is written now (the page cache:
 * it survives the death of any process); a full disk waits for later. */
void	 store_flush(struct broker *b);
int	 session_qos(const struct session *s, const char *topic);
bool	 session_add_filter(struct session *s, const char *filter, uint8_t qos);
/* Whether filter may be added: the session has it, or fewer than
 * max_subscriptions. */
bool	 session_may_add_filter(const struct session *s, const char *filter);
bool	 session_has_filter(const struct session *s, const char *filter);
bool	 session_remove_filter(struct session *s, const char *filter);
/* Calls fn for each filter with a wildcard, and each share. */
typedef void filter_fn(struct session *s, const struct filter *f, void *arg);
void	 session_scan(struct session *s, filter_fn *fn, void *arg);
/* Calls fn for each filter that matches topic (no share does). */
void	 session_matching(struct session *s, const char *topic, filter_fn *fn, void *arg);
void	 session_filters_free(struct session *s);
/* Whether another of the session's filters is routed as filter is: the
 * plain filter of a share's, or another group's share of it. */
bool	 session_shares_route(const struct session *s, const char *filter);
/* The settings a session attaches to a topic with, at QoS qos. */
void	 session_attach_settings(const struct session *s, int qos, struct rec_attach *a);
/* Brings one topic, every topic a filter matches (or all of the
 * session's), in line with the session's filters. */
void	 session_sync_topic(struct session *s, struct child *c, bool retained);
void	 session_attach_all(struct session *s, const char *only_filter, bool retained);
/* At start: persistent sessions get the cursors cold topics lost. */
void	 sessions_register_missing(struct broker *b);
/* A new topic: the sessions whose filters match get their cursor. */
void	 sessions_topic_created(struct broker *b, struct child *c);
/* May the session read the topic (its ACL)?  Its MQTT client id, or its
 * JSON-lines user name, for the ACL's %c. */
bool	 session_may_read(const struct session *s, const char *topic);
const char *session_client_id(const struct session *s);
/* The ACL changed: every online session is brought in line with it. */
void	 sessions_acl_changed(struct broker *b);
/* A session comes online on cl (logged in as user: NULL anonymous), or
 * goes offline. */
void	 session_online(struct session *s, struct client *cl, const char *user);
void	 session_offline(struct session *s);

/* share.c: shared subscriptions ($share/GROUP/FILTER) */
/* The filter a session's filter is routed by: FILTER for a share. */
const char *filter_route(const char *filter);
void	 session_sync_shares(struct session *s, struct child *c);
/* At start: a group membership in a cold topic that the topic lost. */
bool	 session_share_unregistered(struct session *s, const char *topic);
void	 share_filter_removed(struct session *s, const char *filter);
void	 share_client_gone(struct session *s);
void	 share_session_deleted(struct session *s);
void	 share_prune_member(struct child *c, const char *gkey, const char *member);

/* ------------------------------------------------------------ client.c */

/* A connection accepted on l: its protocol starts at once, or after the
 * TLS handshake on a TLS listener, or the upgrade on a WebSocket one. */
void	 client_new(struct listener *l, int fd, const char *desc);
/* wsconn.c tells: the upgrade is done (the protocol starts); the
 * WebSocket ended (a refused upgrade, the client's close frame, a broken
 * rule: fault, its close a notice), for why. */
void	 client_upgraded(struct client *cl);
void	 client_ws_ended(struct client *cl, const char *why, bool fault);
/* A login is refused: nothing more is read; after delay_ms (0: at once)
 * the answer is written and the connection closed, for why (logged). */
void	 client_refuse(struct client *cl, uint64_t delay_ms, const void *answer, size_t len,
	    const char *why);
/* A failed login from the client's address: counted, logged, and the
 * delay its answer waits (auth_failures_note). */
uint64_t client_login_failed(struct client *cl, const char *user, const char *why);
void	 client_close(struct client *cl, const char *why);
/* The same for what the client sent (a malformed packet, a broken rule,
 * a packet over a limit): logged at notice, not information. */
void	 client_close_fault(struct client *cl, const char *why);
void	 client_write(struct client *cl, const void *data, size_t len);
void	 client_write_body(struct client *cl, const void *data, size_t len,
	    struct ipc_msg *m);
struct evbuffer *client_input(struct client *cl);
/* Reads up to about want more bytes of a plain connection into its input
 * now (client_read.c): the number read, 0 when none (or TLS). */
ssize_t	 client_read_more(struct client *cl, size_t want);
struct client *client_by_id(struct broker *b, uint64_t id);
bool	 client_output_full(const struct client *cl);
bool	 client_throttled(const struct client *cl);
void	 client_throttle(struct client *cl);
void	 client_arm_idle(struct client *cl, uint64_t ms);
void	 client_disarm_idle(struct client *cl);
bool	 client_idle_armed(const struct client *cl);
void	 client_gate(struct client *cl, uint64_t ticket);
void	 clients_ungate(struct broker *b, uint64_t durable);
void	 clients_gate_next(struct broker *b, uint64_t ticket);
/* fn(client) for every client; fn frees none. */
void	 clients_each(struct broker *b, void (*fn)(struct client *));
void	 clients_close_all(struct broker *b);
void	 clients_free_all(struct broker *b);
void	 clients_stop_reading(struct broker *b);
/* tlsconn.c: TLS on a client connection */
/* The bufferevent of a connection to a TLS listener, in the accepting
 * state (cl->ssl is set); NULL if OpenSSL cannot make one. */
struct bufferevent *tls_bufferevent(struct client *cl, int fd);
/* The handshake is done: the identity, if the listener wants it.  -1
 * with *why when the connection cannot go on. */
int	 tls_handshake_done(struct client *cl, const char **why);
/* OpenSSL's server callback of the listeners with psk_hint: the key of
 * the identity the client offers, from the psk_file of its auth, into
 * psk (room for max bytes); its length, 0 if there is none. */
unsigned int tls_psk_key(struct ssl_st *ssl, const char *identity, unsigned char *psk,
	    unsigned int max);
/* OpenSSL's ClientHello callback of a listener with psk_hint: a TLS 1.3
 * client whose identities are all unknown is refused, and a client that
 * offers a pre-shared key gets only the ciphers of the listener's lists
 * that can carry one. */
int	 tls_psk_hello(struct ssl_st *ssl, int *alert, void *arg);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384, certificate CN=alice" (or "pre-shared
 * key identity alice") */
void	 tls_describe(const struct client *cl, char *buf, size_t len);
/* What an error or end event (what) on a TLS connection was, from
 * OpenSSL's errors (taken from the bufferevent), or "" if the peer went
 * before it sent a byte; *plain is set when the peer spoke plain text
 * (not a TLS record). */
void	 tls_error_text(struct client *cl, short what, char *buf, size_t len, bool *plain);
/* A close_notify to the peer, if the handshake was done (best effort). */
void	 tls_close_notify(struct client *cl);
/* After a failed write: what the peer sent before its reset, decrypted
 * into cl->raw's input (up to max bytes); how much. */
size_t	 tls_read_rest(struct client *cl, size_t max);
/* wsconn.c: MQTT over WebSockets on a client connection */
/* A filter over raw that speaks WebSockets to the client (cl->ws is
 * set), starting with the upgrade; NULL if libevent cannot make one (raw
 * is freed). */
struct bufferevent *ws_bufferevent(struct client *cl, struct bufferevent *raw);
/* The client is freed: the WebSocket no longer refers to it. */
void	 ws_free(struct client *cl);
/* Whether the client sent a byte. */
bool	 ws_heard(const struct client *cl);
/* "WebSocket /PATH", for the connect line. */
void	 ws_describe(const struct client *cl, char *buf, size_t len);
/* Bytes framed for the client and not written yet (0: not a WebSocket). */
size_t	 ws_pending(const struct client *cl);
/* The close frame's code, unless one was chosen (1000 otherwise). */
void	 ws_set_close(struct client *cl, uint16_t code);
/* The connection closes, and what the protocol wrote is framed: the close
 * frame goes (once); true once everything is written (or not a WebSocket). */
bool	 ws_flushed(struct client *cl);
/* The broker ends: what waits is framed, and the close frame, now. */
void	 ws_flush_now(struct client *cl);
/* delivery.c */
int	 delivery_open(struct client *cl);
void	 delivery_close(struct client *cl);
void	 delivery_resume(struct client *cl);
/* owner.c: a publisher's staged messages */
const char *owner_name(struct client *cl);
void	 owner_set(struct client *cl, const char *name);
void	 owner_note_topic(struct client *cl, const char *topic);
void	 owner_closed(struct client *cl, bool release);

/* ------------------------------------------------------------ durable.c */

void	 durable_init(struct broker *b);
void	 durable_free(struct broker *b);
/* The ticket of the write at the end of this pass of the loop (durable_later):
 * a client gated on it waits until that write is durable. */
#define DURABLE_NEXT	UINT64_MAX
uint64_t durable_write(struct broker *b);
uint64_t durable_later(struct broker *b);
bool	 durable_reached(struct broker *b, uint64_t ticket);
void	 durable_wait(struct broker *b, uint64_t ticket, durable_fn *fn, void *arg);

/* ------------------------------------------------------------ dlq.c */

/* A dead-letter record: why, when, from whom, the original topic and
 * bytes; detail (may be NULL) says what exactly was wrong. */
struct deadletter {
	uint64_t	 client_id;	/* the client whose reading waits for it, as for
					 * its publishes (max_client_pending); 0: none */
	const char	*reason;
	const char	*detail;
	const char	*client;
	int		 port;
	const char	*topic;
	const void	*bytes;
	size_t		 len;
};
/* Queues it for the dead-letter topic.  answer (may be NULL): the request
 * whose done is called once it is durable there (taken on success, left
 * to the caller on failure).  -1 if it could not be queued (logged). */
int	 dlq_publish(struct broker *b, const struct deadletter *d, struct held *answer);
void	 dlq_from_child(struct child *c, const struct rec_deadletter *d);
void	 dlq_poison(struct child *c, struct held *h);
/* The record itself, for tests: a compact JSON object. */
int	 dlq_encode(struct wbuf *w, const struct deadletter *d, int64_t time_ms);
/* The same, in at most max bytes (base64, then truncated, if need be). */
int	 dlq_encode_within(struct wbuf *w, const struct deadletter *d, int64_t time_ms,
	    size_t max);

#endif
