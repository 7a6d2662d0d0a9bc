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
struct kv;
struct client;

/* A request to a topicd that waits for DONE; replayed into a restarted
 * child.  What the answer does is said by kind and the ids below (the
 * client is looked up by id: it may be gone). */
enum held_kind {
	HELD_JSON_PUB,		/* JSON-lines PUB: answer PUBREC msg_id */
	HELD_JSON_REL,		/* JSON-lines PUBREL: answer PUBCOMP msg_id */
	HELD_UNSUB,		/* JSON-lines UNSUB: answer OK */
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
	uint64_t	 msg_id;	/* JSON-lines msgId */
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
	bool		 answer_ok;	/* send OK to the client on DONE */
	struct rec_attach a;		/* a.subkey points to the client's subkey */
};
TAILQ_HEAD(attachment_list, attachment);

#define CRASH_RING 64		/* crash_limit is capped to this */

enum child_state {
	CH_STARTING,		/* forked, no READY yet */
	CH_READY,
	CH_BACKOFF,		/* crashed; restart timer running */
	CH_FAILED,		/* crashed too often; SIGHUP retries */
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
	int64_t		 crashes[CRASH_RING];	/* times (mono ms) of recent crashes */
	unsigned	 ncrashes;
	uint64_t	 restarts;
	int64_t		 ready_at;
	bool		 killed;	/* we killed it (protocol violation): still a crash */
	struct held_list held;
	unsigned	 nheld_pub;	/* held publishes, for max_held_publishes */
	struct attachment_list attached;	/* by_child */
	struct rec_stats stats;
	struct broker	*b;
};
RB_HEAD(child_tree, child);
RB_PROTOTYPE(child_tree, child, entry, child_cmp)

enum client_kind { CL_JSON_CONSUMER, CL_JSON_PUBLISHER };

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
	bool		 discarding;	/* skipping the rest of an oversized line */
	bool		 closing;	/* flushing output, then closed */
	bool		 freeing;	/* release scheduled */
	/* JSON consumers */
	char		*username;
	char		*subkey;	/* "j/USERNAME" */
	unsigned	 login_tries;
	int		 dsock[2];	/* delivery socketpair: [0] read, [1] handed out */
	struct event	*dev;		/* read event on dsock[0] */
	bool		 dev_on;
	struct attachment_list attached;	/* by_client */
	/* JSON publishers */
	char		*owner;		/* "j/BOOT/ID" */
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
	struct kv	*sessions;
	struct evconnlistener *listeners[3];
	struct event	*accept_retry;
	struct child_tree children;
	unsigned	 ntopics;	/* known topics: on disk and new */
	struct client_ids clients;
	struct client_names consumers;
	unsigned	 nclients;
	uint64_t	 next_client_id;
	uint64_t	 next_req;
	struct event	*sigs[6];
	struct event	*tick;		/* once a second: titles */
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
int	 broker_load_settings(struct broker *b, struct settings *s, bool quiet);
int	 broker_reload(struct broker *b);
void	 broker_apply_logging(struct broker *b);
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
int	 broker_count_topics(struct broker *b);
/* held.c */
struct held *held_new(enum held_kind kind, uint16_t type, uint64_t req, const struct wbuf *w);
void	 held_free(struct held *h);
int	 child_submit(struct child *c, struct held *h, const char **why);
void	 child_send(struct child *c, uint16_t type, const struct wbuf *w);
void	 child_replay(struct child *c);
void	 child_done(struct child *c, const struct rec_done *d);
void	 child_fail_held(struct child *c);
void	 child_discard_held(struct child *c);
uint64_t broker_req(struct broker *b);
/* attach.c */
void	 attach_topic(struct client *cl, struct child *c, bool answer_ok);
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
void	 client_error(struct client *cl, const char *text);
struct client *client_by_id(struct broker *b, uint64_t id);
bool	 client_output_full(const struct client *cl);
void	 clients_close_all(struct broker *b);
void	 clients_free_all(struct broker *b);
void	 clients_stop_reading(struct broker *b);
/* delivery.c */
int	 delivery_open(struct client *cl);
void	 delivery_close(struct client *cl);
void	 delivery_resume(struct client *cl);
/* json_pub.c */
void	 json_pub_line(struct client *cl, const char *line, size_t len);
void	 json_pub_done(struct child *c, struct held *h, const struct rec_done *d);
void	 json_pub_closed(struct client *cl);
/* json_cons.c */
void	 json_cons_start(struct client *cl);
void	 json_cons_line(struct client *cl, const char *line, size_t len);
void	 json_cons_closed(struct client *cl);
void	 json_cons_deliver(struct client *cl, const struct ipc_msg *m);
/* sessions.c */
int	 sessions_open(struct broker *b);
void	 sessions_close(struct broker *b);
int	 sessions_topics(struct broker *b, const char *subkey, char ***topics, size_t *n);
int	 sessions_add(struct broker *b, const char *subkey, const char *topic);
int	 sessions_remove(struct broker *b, const char *subkey, const char *topic);
/* dlq.c */
void	 dlq_bad_input(struct client *cl, const char *reason, const char *topic,
	     const void *bytes, size_t len);
void	 dlq_publish(struct broker *b, const char *reason, const char *client, int port,
	     const char *topic, const void *bytes, size_t len, struct held *answer);
void	 dlq_from_child(struct child *c, const struct rec_deadletter *d);
/* status.c */
void	 status_log(struct broker *b);

#endif
