/* topicd: one process per topic.  It owns the topic's store (message log,
 * staged messages, subscribers' cursors and in-flight state, the retained
 * message), answers the master on the channel (fd 3) and writes deliveries
 * into the sessions' delivery sockets.
 *
 * Within a subscriber, the in-flight entries cover the sequence numbers
 * [cursor, cursor + nfl) without gaps: fl[i] is the state of message
 * cursor + i.  The cursor is the first message not completed; completed
 * entries behind a pending one stay (FL_DONE) until the cursor passes
 * them. */
#ifndef TOPICD_TOPICD_H
#define TOPICD_TOPICD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>

#include "ipc.h"
#include "ipc_proto.h"
#include "lograte.h"
#include "marshal.h"

struct event;
struct event_base;
struct ipc_chan;
struct ipc_msg;
struct kv;

#define TD_CHECKPOINT_DEFAULT	(4ULL << 20)
#define TD_RETRY_MS_DEFAULT	10000
#define TD_ATTEMPTS_DEFAULT	5
#define TD_BATCH_MAX		256	/* records applied per commit */
#define TD_CACHE_SLOTS		4096	/* recent messages kept in memory, at most (cache.c) */
#define TD_CACHE_FIRST		16	/* ... slots at first; doubled as needed */
#define TD_CACHE_BYTES		(16u << 20)	/* ... their payloads in all, at most */
#define TD_CACHE_MAX_PAYLOAD	(64 * 1024)
#define TD_WRITE_AHEAD		(256 * 1024)	/* store_write_ahead() */
#define TD_LOCK_WAIT_MS		10000	/* for an older topicd of the topic to exit */
#define TD_LOCK_STEP_MS		20
#define TD_IO_RETRY_MS		1000	/* a commit the disk was full for, again */
#define TD_CONFIG_WAIT_MS	30000	/* for the first CONFIG */
#define TD_SEND_RETRY_MS	100	/* after a transient send error */
#define TD_WINDOW_MAX		1024	/* in flight per subscriber, whatever asked */
#define TD_PUMP_QUANTUM		256	/* new messages per subscriber's turn */
#define TD_TRIM_STEP		4096	/* messages taken by all, trimmed between batches */
#define TD_MSG_HEADER		14	/* a message record's bytes besides its
					 * payload, without MQTT 5.0 properties */

/* A message as stored.  payload, props and origin point into buf (owned)
 * or into the cache (buf == NULL: valid until the next store call). */
struct msg {
	uint64_t	 seq;
	uint8_t		 flags;		/* PF_* */
	uint8_t		 qos;
	uint64_t	 time_ms;
	const uint8_t	*payload;
	size_t		 len;
	const uint8_t	*props;		/* MQTT 5 properties, opaque (NULL: none) */
	size_t		 props_len;
	uint64_t	 expiry_ms;	/* wall clock; 0: never */
	const char	*origin;	/* the publisher's client id, or "" */
	void		*buf;
};

enum fl_state { FL_SENT = 1, FL_RECEIVED, FL_DONE };

struct flight {
	uint8_t		 state;		/* FL_* (stored) */
	bool		 resend;	/* send again when the socket allows */
	uint32_t	 attempts;	/* sends (of DELIVER, then of DELIVER_REL); stored */
	int64_t		 first_ms;	/* monotonic: first send in this process */
	int64_t		 last_ms;	/* monotonic: last send */
	uint16_t	 mi;		/* a group's: the member slot + 1 it went to
					 * (stored), 0 for none */
	uint8_t		 qos;		/* a group's: the QoS it went out with, 0 when
					 * not known (sent by an earlier process) */
	bool		 unsent;	/* a group's: given to its member, to be sent
					 * once that is durable (not DUP) */
	uint64_t	 rel_gen;	/* its PUBREL waits for this batch (gate.c) */
};

/* A group member's exchange kept past the group's cursor (share_aside.c). */
struct aside {
	uint64_t	 seq;
	struct flight	 f;
};

struct sub {
	RB_ENTRY(sub)	 entry;
	TAILQ_ENTRY(sub) work_entry;	/* in td->work: wants a pump */
	TAILQ_ENTRY(sub) dirty_entry;	/* in td->dirty: record to write */
	struct topicd	*td;
	char		*key;		/* "j/USER", "m/CLIENTID", or a group "g/G/F" */
	char		*share;		/* a group's "$share/G/F" (a member's: its
					 * group's, borrowed), else NULL */
	bool		 is_group;	/* a shared subscription (share.c) */
	struct sub	*group;		/* a member: its group (not in td->subs) */
	struct sub	**members;	/* a group's member slots (NULL: free) */
	uint16_t	 nslots;
	uint16_t	 rr;		/* a group's: the slot to try first */
	uint16_t	 slot;		/* a member's: its slot + 1 */
	struct aside	*aside;		/* a member's exchanges kept aside */
	uint32_t	 naside;
	TAILQ_ENTRY(sub) group_entry;	/* a group: in td->groups */
	uint64_t	 cursor;	/* first sequence not completed */
	uint8_t		 mode;		/* MODE_* */
	uint8_t		 qos;		/* granted */
	uint16_t	 window;
	bool		 parked;	/* attempts used up: wait for ATTACH */
	struct flight	*fl;
	uint32_t	 nfl;
	uint32_t	 flcap;
	uint32_t	 busy;		/* entries not FL_DONE */
	int		 fd;		/* delivery socket, -1 when offline */
	struct event	*wev;		/* EV_WRITE while blocked */
	struct ipc_out	 out;		/* records packed for the socket, not sent yet */
	struct event	*timer;		/* retrial, or retry after a send error */
	bool		 retry_due;	/* retry_soon armed timer: kept until it fires */
	bool		 blocked;	/* the socket was full */
	bool		 queued;	/* in td->work */
	bool		 dirty;		/* in td->dirty */
	bool		 want_retained;	/* send the retained message first */
	bool		 check_head;	/* on resume: dead-letter an exhausted head */
	bool		 restored;	/* in flight as loaded from the store: their next
					 * sends make up for this process's start and
					 * are not attempts */
	uint64_t	 retained_rel;	/* PUBREL owed for a retained delivery's PUBREC, or 0 */
	uint64_t	 rel_again;	/* PUBREL owed for a repeated PUBREC, or 0 */
	uint64_t	 last_done;	/* the message its last PUBCOMP completed, or 0
					 * (JSON-lines; not stored) */
	uint64_t	 ret_seq;	/* the retained message in flight to it (QoS 1, 2) */
	uint8_t		 ret_state;	/* ... FL_SENT, FL_RECEIVED, or 0: none (stored) */
	bool		 ret_resend;	/* send it again (DUP): resumed with it unanswered */
	uint64_t	 dlq_req;	/* DEADLETTER waiting for DLQ_DONE, or 0 */
	uint64_t	 dlq_seq;
	uint64_t	 hold_gen;	/* nothing is sent before this batch is
					 * durable (its ATTACH; gate.c) */
	uint64_t	 ret_gen;	/* retained_rel waits for this batch */
};
RB_HEAD(sub_tree, sub);
TAILQ_HEAD(sub_list, sub);

struct reply {
	uint64_t	 req;
	uint32_t	 status;
	uint64_t	 seq;
	uint64_t	 gen;		/* the batch it answers for */
};

struct gate;

struct topicd {
	/* From the command line. */
	char		*topic;
	char		*datadir;
	char		*stem;		/* topic_file_name(topic) */
	bool		 verbose;
	pid_t		 ppid;

	struct event_base *base;
	struct ipc_chan	*chan;
	struct ipc_reader boot_in;	/* read with the first CONFIG, for the channel */
	struct ipc_ring	*dring;		/* large deliveries' bodies (or NULL) */
	struct event	*dring_trim;	/* gives its pages back once quiet */
	struct kv	*kv;
	struct wbuf	 wb;		/* scratch for records */
	struct wbuf	 kb;		/* scratch for keys */

	/* CONFIG */
	uint32_t	 retry_ms;
	uint32_t	 max_attempts;
	uint32_t	 max_queued;	/* MQTT subscriber backlog limit (0: none) */
	uint64_t	 max_bytes;	/* max_topic_size (0: no limit) */
	uint64_t	 min_free;	/* min_free_space (0: none) */
	bool		 sync;		/* fdatasync batches that need durability */
	uint64_t	 checkpoint_bytes;
	bool		 configured;	/* a CONFIG arrived */
	uint64_t	 conf_boot_id;	/* as the master said */
	uint64_t	 seq_floor;	/* a new store's first sequence number, at least */
	char		*dlq_topic;

	/* The log and the meta record. */
	uint64_t	 boot_id;	/* the master boot the staged "j/" owners belong to */
	uint64_t	 first_seq;	/* oldest kept (== next_seq when none) */
	uint64_t	 next_seq;
	uint64_t	 messages;
	uint64_t	 bytes;		/* of their records as stored */
	bool		 meta_dirty;
	struct msg	*cache;		/* cache_slots of them, from the first message */
	size_t		 cache_slots;
	uint64_t	 cache_bytes;
	bool		 has_retained;
	uint64_t	 retained_seq;

	/* Room (room.c). */
	bool		 refusing;	/* FULL sent: publishes refused until RESUME */
	bool		 room_sent;	/* ROOM sent, RESUME not yet here */
	uint64_t	 full_gen;	/* the batch of the last publish refused (ST_FULL) */
	const char	*full_reason;
	struct lograte	 full_log;	/* "no room" at notice once a minute at most */
	enum log_level	 full_level;	/* of the last "no room": "room again" alike */
	bool		 io_wait;	/* a commit failed on a full disk: retrying */
	struct event	*io_timer;
	uint64_t	 disk_free;
	int64_t		 disk_checked_ms;
	uint64_t	 written_since_check;

	/* Subscribers. */
	struct sub_tree	 subs;
	struct sub_list	 work;		/* to be pumped (deliver_run) */
	struct sub_list	 dirty;
	struct sub_list	 groups;	/* the shared subscriptions among subs */
	uint32_t	 nsubs;
	uint32_t	 nonline;
	uint64_t	 dlq_next;	/* request ids of DEADLETTER */
	int64_t		 dlq_retry_ms;	/* monotonic: none asked for before (one failed) */
	uint64_t	 expired;	/* messages not delivered: expired (since start) */

	/* The current batch, and those on their way to the disk (gate.c). */
	struct reply	*replies;	/* answers not sent yet, in order */
	size_t		 nreplies;
	size_t		 replies_cap;
	struct gate	*gates;		/* batches written, not yet durable */
	size_t		 ngates;
	size_t		 gates_cap;
	uint64_t	 gen;		/* the batch in hand */
	uint64_t	 done_gen;	/* batches up to this one are durable */
	uint64_t	 hold_max;	/* the last batch something waits for */
	uint64_t	 deliver_upto;	/* messages below it are durable */
	bool		 need_sync;
	unsigned	 batch_n;
	uint64_t	 batches;
	uint64_t	 batch_records;
	struct event	*batch_ev;
	struct event	*work_ev;	/* deliver_run for a wake outside a batch's end */

	struct event	*tick;		/* once a second, unless asleep */
	bool		 tick_asleep;
	struct event	*kv_ev;		/* the store's worker finished something */
	struct event	*sigs[5];
	bool		 stats_dirty;
	int		 exit_code;

	/* Going cold (idle.c). */
	uint64_t	 rx;		/* records received from the master */
	uint64_t	 idle_rx;	/* rx when IDLE was last sent */
	bool		 idle_said;
	bool		 stop_asked;	/* STOP received */
	int64_t		 stop_asked_ms;	/* monotonic: when */
	bool		 stop_checkpoint; /* ... to close the store with a checkpoint */
	unsigned	 ndlq;		/* subscribers with a dead letter asked for */
	bool		 went_idle;	/* ... and it stops for it */
	bool		 verdict_wait;	/* said IDLE_EMPTY: FORGET or KEEP comes */
	bool		 forget;	/* FORGET came: the store is deleted at exit */
	bool		 spare;		/* topicd_run: stopped for room or idleness, its
					 * channel open: it may take another topic */
};

/* spare.c: between topics.  With the stopping signals held from the
 * end of the loop (spare_hold_signals), SPARE (deleted: the store was, as
 * FORGET asked), then the topic of the TAKE that follows (1, *topic
 * allocated, in the records that came with it); 0 when the master let it
 * go, -1 for a bad TAKE. */
#define SPARE_MAX_TOPICS 256
void	 spare_hold_signals(void);
int	 spare_wait(bool deleted, struct ipc_reader *in, char **topic);

/* run.c */
void	 tick_wake(struct topicd *);
void	 topicd_init(struct topicd *, const char *, const char *, bool);
int	 topicd_open(struct topicd *);
void	 topicd_close(struct topicd *);
int	 topicd_run(struct topicd *);
void	 topicd_stop(struct topicd *, int);

/* dispatch.c */
void	 dispatch_msg(struct topicd *, struct ipc_msg *);
void	 dispatch_end_batch(struct topicd *);
int	 dispatch_sync(struct topicd *, bool);
void	 dispatch_after(struct topicd *);
void	 dispatch_durable(struct topicd *);
void	 dispatch_send(struct topicd *, uint16_t);

/* gate.c */
void	 reply(struct topicd *, uint64_t, uint32_t, uint64_t);
void	 gate_end_batch(struct topicd *, bool);
bool	 gate_release(struct topicd *);
bool	 gate_clear(const struct topicd *);
uint64_t gate_hold(struct topicd *);
bool	 gate_open(const struct topicd *, uint64_t);
void	 gate_free(struct topicd *);

/* idle.c */
void	 idle_tick(struct topicd *);
void	 idle_trim_ring(struct topicd *);
void	 idle_batch_end(struct topicd *);
void	 idle_stop_asked(struct topicd *, bool);
void	 idle_verdict(struct topicd *, bool);
void	 idle_stop_now(struct topicd *);

/* room.c */
bool	 room_for(struct topicd *, size_t);
void	 room_disk_full(struct topicd *);
void	 room_check(struct topicd *);
void	 room_resume(struct topicd *);

/* config.c */
void	 config_check_version(struct topicd *, const void *body, size_t len);
void	 config_apply(struct topicd *, const struct rec_config *);
void	 config_boot(struct topicd *);

/* store.c */
int	 store_open(struct topicd *, char **);
void	 store_close(struct topicd *);
void	 store_fail(struct topicd *, const char *) __attribute__((noreturn));
int	 store_commit(struct topicd *, bool);
void	 store_write_ahead(struct topicd *);
int	 store_get(struct topicd *, const void *, size_t, void **, size_t *);
void	 store_put(struct topicd *, const void *, size_t, const void *, size_t);
void	 store_del(struct topicd *, const void *, size_t);
int	 store_each(struct topicd *, const char *, size_t,
	     int (*)(struct topicd *, const uint8_t *, size_t));
void	 store_save_meta(struct topicd *);
uint64_t log_append(struct topicd *, struct msg *);
int	 log_get(struct topicd *, uint64_t, struct msg *);
void	 msg_release(struct msg *);
void	 log_trim(struct topicd *);
bool	 stage_exists(struct topicd *, const char *, uint32_t);
int	 stage_put(struct topicd *, const char *, uint32_t, const struct msg *);
uint64_t stage_release(struct topicd *, const char *, uint32_t);
unsigned stage_release_prefix(struct topicd *, const char *, size_t);
/* Whether any message is staged under prefix. */
bool	 stage_any(struct topicd *, const char *, size_t);
void	 msg_encode(struct wbuf *, const struct msg *);
int	 msg_decode(const void *, size_t, struct msg *);
void	 msg_copy(struct msg *, const struct msg *);
bool	 msg_expired(const struct msg *);

/* cache.c */
void	 cache_put(struct topicd *, const struct msg *);
void	 cache_adopt(struct topicd *, struct msg *);
int	 cache_get(struct topicd *, uint64_t, struct msg *);
bool	 cache_forget(struct topicd *, uint64_t, size_t *);
void	 cache_clear(struct topicd *);

/* retain.c */
void	 retain_load(struct topicd *);
void	 retain_update(struct topicd *, const struct msg *);
void	 retain_expire(struct topicd *);
int	 retain_get(struct topicd *, struct msg *);

/* subs.c */
RB_PROTOTYPE(sub_tree, sub, entry, sub_cmp)
int	 sub_cmp(struct sub *, struct sub *);
int	 subs_load(struct topicd *);
void	 subs_free(struct topicd *);
void	 subs_save(struct topicd *);
struct sub *sub_alloc(struct topicd *, const char *);
void	 sub_free(struct sub *);
struct sub *sub_find(struct topicd *, const char *);
struct sub *sub_create(struct topicd *, const char *);
void	 sub_delete(struct sub *);
unsigned sub_delete_prefix(struct topicd *, const char *);
void	 sub_dirty(struct sub *);
struct flight *sub_flight(struct sub *, uint64_t);
struct flight *sub_push(struct sub *, uint8_t);
void	 sub_set_state(struct sub *, struct flight *, uint8_t);
bool	 sub_advance(struct sub *);
uint64_t subs_min_cursor(struct topicd *);

/* deliver.c */
#define SEND_OK		0
#define SEND_LATER	1	/* socket full or a transient error */
#define SEND_GONE	(-1)	/* the session is gone: now offline */
int	 deliver_send_msg(struct sub *, uint64_t, uint8_t, uint8_t *);
int	 deliver_send_rel(struct sub *, uint64_t);
void	 deliver_of_msg(const struct msg *, uint8_t, struct rec_deliver *);
int	 deliver_flush(struct sub *);
void	 deliver_sent(struct sub *, struct flight *, int64_t);
uint32_t deliver_span_max(const struct sub *);
void	 deliver_take_socket(struct sub *, int, const struct rec_attach *);
bool	 deliver_same_connection(struct sub *, int, const struct rec_attach *);
void	 deliver_attach(struct sub *, int, const struct rec_attach *);
void	 deliver_register(struct sub *, const struct rec_attach *);
void	 deliver_offline(struct sub *);
void	 deliver_ack(struct topicd *, const struct rec_ack *);
void	 deliver_wake(struct sub *);
void	 deliver_wake_all(struct topicd *);
void	 deliver_run(struct topicd *);
void	 deliver_pump(struct sub *);

/* deadletter.c */
bool	 deliver_dead_letter_head(struct sub *);
bool	 deliver_dead_letter_aside(struct sub *, uint64_t, uint32_t);
void	 deliver_maxlen_all(struct topicd *);
void	 deliver_dlq_done(struct topicd *, const struct rec_dlq_done *);

/* share.c: shared subscriptions, a group's members */
bool	 sub_online(const struct sub *);
void	 share_attach(struct sub *, int, const struct rec_attach *);
void	 share_register(struct sub *, const struct rec_attach *);
void	 share_detach(struct sub *, const char *);
void	 share_leave(struct sub *, const char *, bool);
void	 share_member_offline(struct sub *);
void	 share_member_park(struct sub *, uint64_t, uint32_t);
struct sub *share_member_of_dlq(struct topicd *, uint64_t);
void	 share_offline_all(struct sub *);
void	 share_free_members(struct sub *);
size_t	 share_idle_bytes(const struct sub *, uint32_t *);
void	 share_idle_members(const struct sub *, struct wbuf *);
unsigned share_drop_members_prefix(struct topicd *, const char *);
void	 share_wake_groups_of(struct topicd *, const char *);
bool	 share_ack_find(struct topicd *, const char *, const char *, uint64_t,
	    struct sub **, struct flight **);
bool	 share_bound(struct sub *, const struct sub *, const struct flight *, uint64_t);
void	 share_pump(struct sub *);
void	 share_retry_arm(struct sub *);
void	 share_retry_check(struct sub *);
void	 share_encode(struct wbuf *, const struct sub *);
int	 share_decode(struct sub *, struct rbuf *);

/* share_aside.c: a member's exchanges kept aside while it is away */
void	 share_set_aside(struct sub *);
void	 share_aside_resume(struct sub *);
void	 share_aside_send(struct sub *);
void	 share_aside_dead_lettered(struct sub *, uint64_t);
bool	 share_aside_ack(struct topicd *, const struct rec_ack *);
bool	 share_aside_any(const struct sub *);
bool	 share_aside_online(const struct sub *);
int64_t	 share_aside_oldest(const struct sub *);
void	 share_aside_retry_check(struct sub *, int64_t);
uint64_t share_aside_min_seq(const struct sub *);
void	 share_aside_encode(struct wbuf *, const struct sub *);
int	 share_aside_decode(struct sub *, struct rbuf *);

/* retry.c */
void	 retry_arm(struct sub *);
void	 retry_soon(struct sub *);
void	 retry_timer_cb(int, short, void *);

/* stats.c */
void	 stats_fill(struct topicd *, struct rec_stats *);
void	 stats_tick(struct topicd *);
void	 stats_report(struct topicd *);
bool	 stats_tick_needed(struct topicd *);
void	 stats_log(struct topicd *);

#endif
