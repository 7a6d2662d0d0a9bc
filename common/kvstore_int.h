/* Internals of the key/value store, shared by its files:
 *   kvstore.c     open, close, the record API
 *   kvindex.c     the in-memory index and the segment table
 *   kvjournal.c   batch framing, writing, syncing, segments
 *   kvreplay.c    recovery: replaying the segments
 *   kvcheckpoint.c snapshots, checkpoint files, cleaning up segments
 *   kvworker.c    the thread that syncs and checkpoints off the caller's loop
 *   kvlegacy.c    the one-time conversion of a store of format 1
 * Nothing outside these files includes this. */
#ifndef COMMON_KVSTORE_INT_H
#define COMMON_KVSTORE_INT_H

#include <bsd/sys/tree.h>
#include <gdbm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvstore.h"
#include "marshal.h"

#define KV_SMALL_MAX	64		/* values up to this size live in memory */
#define KV_KEY_MAX	65535
#define KV_VAL_MAX	(1U << 30)
#define KV_BATCH_MAX	0x7ff00000U	/* body bytes in one journal batch */
#define KV_HDR_LEN	16		/* "KVJ2": magic, body length, segment, CRC32 */
#define KV_HDR1_LEN	12		/* "KVJ1": magic, body length, CRC32 */
#define KV_LEN_REUSED	0x80000000U	/* in the length: the file was reused */
#define KV_MAGIC	0x324a564bU	/* "KVJ2" as little-endian bytes */
#define KV_MAGIC1	0x314a564bU	/* "KVJ1": no segment number */

/* Records of a journal batch (kvjournal.c). */
enum { OP_PUT = 1, OP_DEL = 2, OP_END = 3 };
#define KV_REF_LEN	16		/* a reference in a checkpoint: seg, off, len */
#define KV_FORMAT	2
#define KV_META_KEY	"\0kv"		/* the checkpoint's own record */
#define KV_META_KLEN	3
#define KV_FD_CACHE	8		/* segments kept open for reading */
#define KV_CKPT_RATIO	8		/* journal to index for a checkpoint (kvc_due) */
#define KV_LAZY_MAX	(64 * 1024)	/* journal a lazy close leaves, if it is mostly
					 * dead records (kv_close_lazy) */
#define KV_CKPT_KEY_BYTES 4096		/* journal bytes worth a key's checkpoint */
#define KV_CLOSE_CKPT_MAX (8 * 1024 * 1024)	/* index a close checkpoints whatever the
					 * journal (kv_close); a larger one takes
					 * seconds to minutes to write */
#define KV_SPARE_MIN	(1024 * 1024)	/* a segment this large is kept for reuse */
#define KV_AHEAD_START	(1024 * 1024)	/* kv_write_ahead: the disk is started on this much */
#define KV_CHASE_BYTES	(1024 * 1024)	/* kv_sync_async: more unsynced before a checkpoint ... */
#define KV_CHASE_MAX	4		/* ... is synced in the background, this many times at most */
#define KV_COLD_STEP	(8u << 20)	/* kv_forget_before: the page cache is told this much at once */
#define KV_COLD_LAG	(16u << 20)	/* ... this far behind the oldest value still to be read */
#define KV_BIG_SNAP	16384		/* keys of a checkpoint written with ... */
#define KV_BIG_BUCKET	65536		/* ... gdbm buckets of this size */
#define KV_READAHEAD	(64 * 1024)	/* bytes read at once by a reader in order */
#define KV_SEQ_SLACK	4096		/* a read this far past the last is in order */
#define KV_CRASH_STATUS	99

/* Where the value of a key is. */
enum kv_where {
	KV_IN_MEM,			/* n->sval */
	KV_IN_SEG			/* at n->off in segment n->seg, or in the
					 * pending batch (see kvi_load) */
};

struct kv_node {
	RB_ENTRY(kv_node)	 entry;
	const uint8_t		*key;	/* the bytes follow the node */
	uint8_t			*sval;	/* KV_IN_MEM only */
	uint64_t		 off;	/* KV_IN_SEG only */
	uint32_t		 seg;	/* KV_IN_SEG only */
	uint32_t		 vlen;
	uint16_t		 klen;
	uint8_t			 where;
};

RB_HEAD(kv_tree, kv_node);
RB_PROTOTYPE(kv_tree, kv_node, entry, kv_node_cmp)

/* A journal segment, DIR/NAME.journal.NNNNNNNN. */
struct kv_seg {
	uint32_t	 num;
	int		 fd;		/* -1 while closed (it is opened to read) */
	uint64_t	 size;		/* valid bytes written */
	uint64_t	 records;	/* puts and deletes written in it */
	uint64_t	 refs;		/* live values stored in it */
	uint64_t	 used;		/* when last read, for the descriptor cache */
	bool		 dirty;		/* written since its last sync */
	bool		 reusable;	/* all "KVJ2", written or replayed here:
					 * its file may become the spare */
	bool		 reused;	/* its file was an earlier segment's */
	uint64_t	 cold;		/* the page cache was told to forget the bytes below */
	uint64_t	 cold_from;	/* ... and those from here were told once only */
};

/* The journal as a reader in key order sees it: values put one after
 * the other lie one after the other in a segment, so one read of
 * KV_READAHEAD bytes serves many (see load_segment). */
struct kv_readahead {
	uint8_t		*buf;		/* KV_READAHEAD bytes, allocated on first use */
	uint32_t	 seg;		/* what buf holds: len bytes at off of seg */
	uint64_t	 off;
	size_t		 len;
	uint64_t	 next;		/* where the last value read from seg ended */
	uint32_t	 next_seg;
};

/* Work for the worker thread (or done in the caller, see kvworker.c). */
enum kv_job_kind { JOB_SYNC = 1, JOB_CHECKPOINT };

struct kv_job {
	enum kv_job_kind kind;
	int		*fds;		/* duplicates of segments to fdatasync */
	size_t		 nfds;
	int		 dirfd;		/* a duplicate to fsync first, or -1 */
	uint64_t	 ticket;	/* JOB_SYNC: the last write it covers */
	uint64_t	 records;	/* records it makes durable */
	/* JOB_CHECKPOINT */
	atomic_bool	 cancel;	/* set by the caller: stop, write nothing */
	struct wbuf	 snap;		/* the records, see kvcheckpoint.c */
	uint64_t	 nsnap;
	uint32_t	 first;		/* the first segment it does not cover */
	uint32_t	 oldest;	/* the oldest segment that may exist */
	uint32_t	*keep;		/* segments below first it references */
	size_t		 nkeep;
	char		**gone;		/* the others' paths, deleted once it is durable */
	size_t		 ngone;
	char		*spare_from;	/* one of them, renamed to spare_to instead */
	char		*spare_to;
	uint64_t	 spare_bytes;
	bool		 spared;	/* out: it was */
	int		 gone_err;	/* out: errno of a failed deletion, or 0 */
	char		*tmppath;
	char		*dbpath;
	uint64_t	 dbsize;	/* out: size of the new checkpoint */
	/* Result. */
	int		 rc;
	int		 err;		/* errno of a failure */
	char		*what;		/* what failed (malloc'd), for the log */
	struct kv	*kv;		/* crash steps (tests) */
};

struct kv_worker {
	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 efd;		/* eventfd the caller's loop watches */
	struct kv_job	*todo;		/* handed to the thread */
	struct kv_job	*done;		/* finished, for the caller */
	bool		 quit;
	bool		 started;
};

struct kv {
	char		*label;		/* DIR/NAME, for messages */
	char		*dir;
	char		*name;
	char		*dbpath;
	char		*tmppath;
	char		*sparepath;	/* a segment file kept for reuse (kvj_create_segment) */
	bool		 spare;		/* ... is there */
	uint64_t	 spare_bytes;	/* ... of this size */
	int		 dirfd;
	int		 lockfd;
	struct kv_tree	 tree;
	struct kv_node	*finger;	/* the last found (kvi_find) */
	uint64_t	 index_bytes;	/* what a checkpoint writes */
	/* Segments, by number; the last one is written to. */
	struct kv_seg	*segs;
	size_t		 nsegs;
	size_t		 segcap;
	uint32_t	 first_seg;	/* the checkpoint covers those below */
	uint32_t	 oldest_seg;	/* no segment below it exists */
	bool		 dir_dirty;	/* a segment was created since the last dir sync */
	uint64_t	 clock;		/* for kv_seg.used */
	struct kv_readahead ra;
	/* The pending batch, laid out as it will be written: KV_HDR_LEN bytes
	 * of room for the header, then the records.  It goes to the end of
	 * the current segment, so a value in it already has its final offset. */
	struct wbuf	 batch;
	struct wbuf	 scratch;	/* header encoding */
	size_t		 npending;
	uint64_t	 unsynced;	/* records written, not yet synced */
	uint64_t	 unsynced_bytes; /* ... their bytes, not yet given to a sync */
	unsigned	 chases;	/* background syncs since a checkpoint was due */
	uint64_t	 written;	/* batches written (tickets) */
	uint64_t	 durable;	/* the last ticket known durable */
	int		 failed;	/* a write or sync failed: refuse commits */
	uint64_t	 ckpt_bytes;
	uint64_t	 ckpt_defer;	/* after a failed checkpoint: wait for this */
	uint32_t	 ahead_seg;	/* kv_write_ahead: the disk was started on */
	uint64_t	 ahead_off;	/* ... this segment up to this offset */
	uint64_t	 db_bytes;	/* size of the checkpoint file */
	/* Background work. */
	struct kv_worker w;
	struct kv_job	*job;		/* in progress, or NULL */
	bool		 want_sync;	/* a sync was asked for while busy */
	bool		 inline_jobs;	/* do jobs in the caller (tests, close) */
	unsigned	 crash_at;
	unsigned	 steps;
	unsigned	 enospc_at;	/* test hook: the n-th write fails ENOSPC */
	struct kv_stats	 st;
};

/* kvindex.c */
int	 kv_node_cmp(struct kv_node *, struct kv_node *);
struct kv_node *kvi_find(struct kv *, const void *, size_t, int);
void	 kvi_set(struct kv *, const void *, size_t, const void *, size_t,
	    enum kv_where, uint32_t, uint64_t);
void	 kvi_del(struct kv *, const void *, size_t);
void	 kvi_remove(struct kv *, struct kv_node *);
void	 kvi_free_all(struct kv *);
int	 kvi_load(struct kv *, struct kv_node *, uint8_t **);
struct kv_seg *kvs_find(struct kv *, uint32_t);
struct kv_seg *kvs_add(struct kv *, uint32_t);
void	 kvs_remove(struct kv *, struct kv_seg *);
struct kv_seg *kvs_current(struct kv *);
int	 kvs_fd(struct kv *, struct kv_seg *);
char	*kvs_path(const struct kv *, uint32_t);
uint64_t kvs_journal_bytes(const struct kv *, uint64_t *);
uint64_t kvs_disk_bytes(const struct kv *);

/* kvjournal.c */
int	 kvj_add_put(struct kv *, const void *, size_t, const struct iovec *, int, size_t,
	    uint32_t *, uint64_t *, const void **);
int	 kvj_add_del(struct kv *, const void *, size_t);
int	 kvj_write(struct kv *);
int	 kvj_sync_inline(struct kv *);
int	 kvj_replay_all(struct kv *, char **);
int	 kvj_create_segment(struct kv *, uint32_t, char **);
void	 kvj_remove_leftover_spare(struct kv *);
void	 kvj_drop_spare(struct kv *);
/* Cuts what the current segment's file holds past the segment (an
 * earlier segment's bytes, in a reused file): -1 (logged) if it cannot. */
int	 kvj_trim_current(struct kv *);
ssize_t	 kvj_pread(int, void *, size_t, uint64_t);
int	 kvj_sync_fd(int, int);
int	 kvj_crash_now(struct kv *);
int	 kvj_convert_journal(struct kv *, int, const char *, char **);
void	 kvj_crash_step(struct kv *);
uint32_t kvj_batch_crc(uint32_t, const uint8_t *, size_t);
int	 kvj_truncate(int, uint64_t);
void	 kvj_forget(struct kv *, struct kv_seg *, uint64_t);

/* kvcheckpoint.c */
int	 kvc_load(struct kv *, char **);
int	 kvc_begin(struct kv *, bool);
int	 kvc_run(struct kv_job *);
void	 kvc_finish(struct kv *, struct kv_job *);
bool	 kvc_due(const struct kv *);
/* The same past bytes of journal instead of checkpoint_bytes. */
bool	 kvc_due_past(const struct kv *, uint64_t bytes);
bool	 kvc_lazy_due(const struct kv *);

/* kvworker.c */
int	 kvw_submit(struct kv *, struct kv_job *);
struct kv_job *kvw_collect(struct kv *, bool);
void	 kvw_stop(struct kv *);
struct kv_job *kvw_job_new(enum kv_job_kind);
void	 kvw_job_free(struct kv_job *);
int	 kvw_sync_job(struct kv *);

/* kvlegacy.c */
int	 kvl_detect(struct kv *, bool *, char **);
int	 kvl_convert(struct kv *, char **);

#endif
