/* The core's types for the topics' side: a request held for a topicd,
 * a topic's child (its topicd, supervision state, the sessions attached
 * to it) and what the master knows of a cold topic.  Part of the core's
 * interface: include core/core.h, which includes this. */
#ifndef BROKER_CORE_TOPICDS_H
#define BROKER_CORE_TOPICDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>

#include "ipc_proto.h"
#include "lograte.h"

struct broker;
struct client;
struct child;
struct held;
struct ipc_chan;
struct event;

/* -------------------------------------------------------------- requests */

/* A request to a topicd that waits for DONE; replayed into a restarted
 * child.  done says what the answer does (called once: with the topicd's
 * answer, or with ST_STORE when the request is refused); client_id and
 * arg are for it (the client is looked up by id: it may be gone). */
typedef void held_done(struct child *c, struct held *h, const struct rec_done *d);

struct held {
	TAILQ_ENTRY(held) entry;
	uint16_t	 type;		/* IPC_PUBLISH, IPC_RELEASE, ... */
	uint64_t	 req;		/* 0 for records without an answer */
	uint8_t		*body;		/* follows the struct, or is own */
	uint8_t		*own;		/* a body allocated by itself (NULL: none) */
	size_t		 len;
	bool		 sent;		/* to the current child */
	held_done	*done;		/* NULL: nothing to answer */
	uint64_t	 client_id;	/* who waits (0: nobody) */
	uint64_t	 arg;		/* done's: a msgId, a packet id */
	uint8_t		 qos;		/* of the PUBLISH */
	bool		 from_client;	/* a client's publish: dropped if it goes first */
	bool		 stalls;	/* counted in its client's nstalled */
	bool		 counted;	/* a QoS 0 publish counted in its client's pending
					 * until it goes */
	bool		 lazy;		/* starts nothing: waits for the topic's next
					 * start (an offline session's registration) */
	bool		 suspect;	/* outstanding at a crash (probing) */
	unsigned	 strikes;	/* crashes while it alone was outstanding */
	/* Who sent it, for dead-lettering it (a poison record); after body. */
	char		*client_desc;
	int		 port;
	/* A dead letter asked for by a topicd: whom to tell it is stored. */
	char		*dlq_topic;
	uint64_t	 dlq_req;
	unsigned	 dlq_gen;
};
TAILQ_HEAD(held_list, held);

/* ------------------------------------------------------------ topicds */

/* A session attached to a topic: re-sent to every new topicd.  A
 * member of a shared subscription's group is one too (group set; in its
 * client's shared list, not attached). */
struct attachment {
	TAILQ_ENTRY(attachment) by_child;
	TAILQ_ENTRY(attachment) by_client;	/* attached, or shared */
	RB_ENTRY(attachment) by_topic;		/* in its client's attached_ix */
	struct client	*client;
	struct child	*child;
	uint64_t	 req;		/* non-zero while waiting for DONE */
	bool		 confirmed;	/* the topicd answered the last ATTACH */
	bool		 sent;		/* an ATTACH went to a topicd (a cursor may exist) */
	bool		 deferred;	/* waits for a held UNSUB of its own to go */
	bool		 no_fd;		/* its socket could not be duplicated: retried */
	bool		 owed;		/* in its client's owed: the cold topic's
					 * retained message goes from the master's
					 * copy (retcopy.c) */
	TAILQ_ENTRY(attachment) by_owed;
	struct rec_attach a;		/* a.subkey points to the session's key, or to
					 * group (then a.member to the session's key) */
	char		*group;		/* a group's key "g/GROUP/FILTER", or NULL */
};
TAILQ_HEAD(attachment_list, attachment);
RB_HEAD(attachment_ix, attachment);

enum child_state {
	CH_COLD,		/* no topicd: started when something needs it */
	CH_QUEUED,		/* needs one; waits for room under max_topicds */
	CH_STARTING,		/* forked, no READY yet */
	CH_READY,
	CH_PARKING,		/* we sent STOP: it exits, and the topic is cold */
	CH_BACKOFF,		/* exited; restart timer running */
	CH_FAILED,		/* its store is damaged; SIGHUP retries */
	CH_STOPPING,		/* we sent SIGTERM (shutdown) */
};

TAILQ_HEAD(child_list, child);

/* A subscriber's ack that came while the topic's topicd was stopping or
 * restarting: sent to the next one first, so that it does not send again
 * what was acknowledged. */
struct stashed_ack {
	TAILQ_ENTRY(stashed_ack) entry;
	size_t		 len;
	uint8_t		 body[];
};
TAILQ_HEAD(ack_list, stashed_ack);

/* A topic and its topicd. */
struct child {
	RB_ENTRY(child)	 entry;
	RB_ENTRY(child)	 by_pid;	/* while it has a process */
	TAILQ_ENTRY(child) live;	/* READY: b->lru or b->quiet; QUEUED: b->queue */
	struct child_list *list;	/* ... which one, or NULL */
	char		*topic;
	pid_t		 pid;
	enum child_state state;
	unsigned	 gen;		/* bumped at every spawn */
	struct ipc_chan	*chan;
	struct ipc_chan	*dead_chan;	/* one a write failed on: its answers are read at
					 * SIGCHLD (drain_answers) */
	uint64_t	 tx;		/* records sent to this process */
	bool		 quiet;		/* said IDLE for everything we sent: in b->quiet */
	bool		 idle_early;	/* said IDLE before it was registered ... */
	uint64_t	 idle_rx;	/* ... for this many records */
	int64_t		 quiet_since;	/* mono ms */
	int64_t		 work_since;	/* quiet_since kept across records that give
					 * it no work (attach, detach, unsub): 0 once
					 * one that may has gone */
	int64_t		 started_at;	/* mono ms */
	bool		 want_again;	/* parked with work left: start again */
	uint64_t	 cold_gen;	/* b->cold_gen when it last went cold; 0:
					 * no topicd of it ran under this master */
	bool		 stop_final;	/* sent STOP_CHECKPOINT: the broker stops; it
					 * waits for nothing more, and a record after its
					 * last IDLE would make that one stale */
	uint8_t		*final_idle;	/* the IDLE it said after STOP */
	size_t		 final_len;
	uint64_t	 final_tx;	/* tx when it said it */
	uint64_t	 need_ticket;	/* the master's store, durable before it is sent
					 * anything that changes the topic */
	struct event	*timer;		/* restart back-off */
	uint64_t	 backoff_ms;
	uint64_t	 restarts;
	bool		 after_crash;	/* this start follows a crash (or a failure):
					 * the requests it is given are a replay */
	uint64_t	 poisoned;	/* poison records dead-lettered */
	int64_t		 ready_at;
	bool		 version_mismatch; /* a topicd binary of another release */
	bool		 killed;	/* we killed it (protocol violation): still a crash */
	bool		 heard;		/* READY: a record came since the last check */
	bool		 pinged;	/* READY: PING sent, nothing heard since */
	bool		 hung;		/* killed for that, not stopped: a crash */
	bool		 registered;	/* need_ticket is durable */
	bool		 full;		/* FULL: no room until we sent RESUME */
	struct lograte	 full_log;	/* "no room" at notice once a minute at most */
	enum log_level	 full_level;	/* of the last "no room": "room again" alike */
	bool		 probing;	/* after a crash: one request at a time */
	bool		 stalling;	/* the clients of its waiting publishes are not read */
	unsigned	 pins;		/* pointers to it kept elsewhere: not forgotten */
	bool		 forgetting;	/* out of the topic table (forget.c) ... */
	bool		 forget_waiting;	/* ... until its forgetting is durable ... */
	bool		 forget_sent;	/* ... when it is sent FORGET */
	uint64_t	 forget_tx;	/* tx then */
	struct held_list held;
	unsigned	 nheld_pub;	/* held publishes, for max_held_publishes */
	unsigned	 nunsent;	/* held, not sent to the current child */
	unsigned	 noutstanding;	/* sent with a req, not answered */
	struct attachment_list attached;	/* by_child */
	struct ack_list	 acks;		/* subscribers' acks while no topicd ran */
	unsigned	 nacks;
	/* Clean sessions that ended while the topic was cold: their cursors
	 * are forgotten (UNSUB) when it next starts, not by starting it now;
	 * a new master drops them anyway (the topicd sees a new boot id). */
	char		**cold_unsubs;
	size_t		 ncold_unsubs;
	struct rec_stats stats;
	struct broker	*b;
};
RB_HEAD(child_tree, child);
RB_PROTOTYPE(child_tree, child, entry, child_cmp)
RB_HEAD(child_pids, child);
RB_PROTOTYPE(child_pids, child, by_pid, child_pid_cmp)

/* A topicd that left its topic and waits to take another (spare.c). */
struct spare {
	TAILQ_ENTRY(spare) entry;
	pid_t		 pid;
	int		 fd;		/* its channel; -1: let go, not reaped yet */
	int64_t		 since;		/* mono ms */
};
TAILQ_HEAD(spare_list, spare);

/* What the master knows of a topic while no topicd runs for it (its
 * topicd's last IDLE), kept in the registry. */
struct topic_sub {
	char		*key;
	bool		 backlog;	/* has messages to get, or in flight */
};
struct topic_info {
	bool		 known;		/* else: anything may be there */
	bool		 retained;	/* a retained message is kept */
	bool		 subs_unknown;	/* too many to list: any may have a backlog */
	bool		 staged;	/* messages staged by connections wait there */
	uint8_t		*copy;		/* the retained message (IDLE_RETAINED_COPY's
					 * DELIVER body), or NULL */
	size_t		 copy_len;
	uint64_t	 bytes;		/* messages kept, for max_store_size */
	struct topic_sub *subs;		/* sorted by key */
	size_t		 nsubs;
	bool		 recreate;	/* live when the last master ended: the
					 * cursors its creation gave may not be
					 * stored (topic_open) */
	bool		 gone;		/* being forgotten (REC_GONE) ... */
	uint8_t		*gone_idle;	/* ... with its last IDLE, read at start */
	size_t		 gone_len;
};

#endif
