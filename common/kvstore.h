/* A crash-safe key/value store: an append-only journal as the commit
 * point, values written once, and gdbm checkpoints that are never modified
 * in place and are written off the caller's event loop.
 *
 * Files, for a store NAME in directory DIR:
 *   DIR/NAME.lock                 held (flock) by the one process using it
 *   DIR/NAME.journal.NNNNNNNN     journal segments, numbered from 1
 *   DIR/NAME.spare                a segment's file kept to be the next one
 *                                 (while the store is open)
 *   DIR/NAME.db                   the last checkpoint (gdbm)
 *   DIR/NAME.db.tmp               a checkpoint being written (removed at open)
 *
 * kv_put()/kv_del() take effect at once in memory (kv_get() sees them)
 * and are appended to an in-memory batch.  A batch is written after the
 * last one of the current segment with one pwrite(), framed with its
 * length, its segment's number and a CRC32, and made durable with one
 * fdatasync() (group commit); recovery replays whole batches only, so a
 * batch is atomic.
 *
 * A value larger than a small threshold is written once, in its batch, and
 * stays where it is: the index and the checkpoints refer to it (segment,
 * offset, length).  A checkpoint is a gdbm file of every key with its
 * small value or that reference, plus which segments it covers; it is
 * written by a worker thread from a snapshot of the index, synced, and
 * renamed over NAME.db.  Then the segments it covers that no longer hold a
 * live value are deleted, but for one kept as NAME.spare (kvjournal.c).
 * So a checkpoint costs in proportion to the number of keys, not to the
 * bytes stored, and the caller's loop never waits for it.
 *
 * Recovery loads the checkpoint and replays the segments it does not
 * cover, in order.  Only the end of the last segment may be cut: from its
 * first batch that does not check on (a torn write, or what an earlier
 * use of the file left).  Anything else that does not read back (a bad
 * batch in an earlier segment, or one without its end record, a missing
 * segment, a checkpoint of an unknown format) stops the store with an
 * error that names the file and the offset (errno EUCLEAN), and nothing
 * is dropped.
 *
 * A store of format 1 (DIR/NAME.journal and a checkpoint of plain values)
 * is converted once, at open. */
#ifndef COMMON_KVSTORE_H
#define COMMON_KVSTORE_H

#include <sys/uio.h>
#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv;

struct kv_stats {
	uint64_t keys;			/* live keys */
	uint64_t live_bytes;		/* live keys + values */
	uint64_t index_bytes;		/* what a checkpoint writes */
	uint64_t journal_bytes;		/* segments not covered by the checkpoint */
	uint64_t disk_bytes;		/* every segment and the checkpoint */
	uint64_t segments;		/* segment files */
	uint64_t commits;		/* syncs */
	uint64_t committed;		/* records made durable */
	uint64_t checkpoints;
	uint64_t recovered;		/* records replayed at open */
	uint64_t truncated;		/* torn bytes cut from the journal at open */
	uint64_t reads;			/* reads of segments for values */
	uint64_t forgotten;		/* bytes of the current segment the page
					 * cache was told to forget */
};

/* Opens (creating if needed) and recovers the store.  On failure returns
 * NULL, sets *err to a malloc'd message and errno: EWOULDBLOCK when
 * another process holds the store, EUCLEAN when what is on disk does not
 * read back (corruption, an unknown format), else the error met.
 * checkpoint_bytes: the journal size past which a commit starts a
 * checkpoint (it also waits until the journal is larger than the index,
 * so that the cost stays proportional). */
struct kv *kv_open(const char *dir, const char *name, uint64_t checkpoint_bytes, char **err);
/* Waits for background work, commits, checkpoints if the journal is not
 * empty (so that the next open replays nothing) and frees.  An index of
 * more than 8 MiB (minutes of writing, with millions of keys) is closed
 * as kv_close_lazy() does: the next open replays what a death now would
 * leave.  Returns -1 if the final commit or checkpoint failed (logged), or
 * if the store had failed before. */
int  kv_close(struct kv *kv);
/* The same without the checkpoint, unless the journal is past 64 KiB of
 * mostly dead records: it stays for the next open to replay, which costs
 * little while it is short (a store closed and opened often: a topic that
 * goes cold), and a cold store's disk does not grow to checkpoint_bytes. */
int  kv_close_lazy(struct kv *kv);
/* Deletes the store's files and frees it; whatever a death in the middle
 * leaves opens as an empty store.  0, or -1 (logged) when it could not:
 * the store may be left empty, or as it was. */
int  kv_destroy(struct kv *kv);
/* Frees without writing anything more (what is pending is dropped): for a
 * store found not to be the caller's, or not readable as its own. */
void kv_abandon(struct kv *kv);

/* 0, or -1 with errno EINVAL (key empty, over 65535 bytes or starting
 * with a NUL byte, which is reserved; value over 1 GiB), EFBIG (the
 * pending batch would pass 2 GiB: commit first) or EIO (the store failed
 * earlier).  Deleting an absent key is a no-op. */
int  kv_put(struct kv *kv, const void *key, size_t klen, const void *val, size_t vlen);
/* As kv_put, the value being the n parts of iov one after the other (a
 * large payload goes into the batch from where it is, not through a
 * buffer that frames it first). */
int  kv_putv(struct kv *kv, const void *key, size_t klen, const struct iovec *iov, int n);
int  kv_del(struct kv *kv, const void *key, size_t klen);
/* 1 and a malloc'd copy in *val (NUL-terminated beyond vlen), 0 if absent,
 * -1 on an I/O error (logged). */
int  kv_get(struct kv *kv, const void *key, size_t klen, void **val, size_t *vlen);
int  kv_exists(struct kv *kv, const void *key, size_t klen);
/* The length of key's value, -1 if absent (no read). */
ssize_t kv_size(struct kv *kv, const void *key, size_t klen);

/* Records put or deleted since the last write. */
size_t kv_pending(const struct kv *kv);
/* Writes the pending batch and syncs everything written (inline); may
 * then start a checkpoint in the background.  0 once the batch is
 * durable.  -1 with errno ENOSPC or EDQUOT when the disk is full: nothing
 * is lost, the batch stays pending and a later call retries it.  -1 with
 * another errno on an I/O error (logged; the store is then unusable and
 * the caller exits). */
int  kv_commit(struct kv *kv);
/* Writes the pending batch without syncing (best-effort data: it survives
 * the death of the process, not of the machine).  Errors as kv_commit(). */
int  kv_flush(struct kv *kv);
/* Writes the pending batch, without syncing, when it holds min_bytes or
 * more, and with start_disk has the disk start on it, so that the next
 * kv_commit() waits less.  0 (also when the batch is smaller), or -1 as
 * kv_flush(). */
int  kv_write_ahead(struct kv *kv, size_t min_bytes, bool start_disk);
/* Forces a checkpoint now and waits for it.  -1 on failure (logged). */
int  kv_checkpoint(struct kv *kv);
/* Deletes the segment file kept for reuse, if there is one: for a disk
 * short of space.  The bytes it held, or 0. */
uint64_t kv_drop_spare(struct kv *kv);
/* The caller will not read again the values written before key's (key
 * NULL: before anything not yet written): the page cache may forget the
 * journal's bytes up to a margin before it.  Cheap enough to call after
 * every batch; it acts every few MiB.  Key absent: nothing happens. */
void kv_forget_before(struct kv *kv, const void *key, size_t klen);
/* True once a write or sync failed for good. */
int  kv_failed(const struct kv *kv);

/* Durability without waiting, for an event loop that must never block on
 * the disk: kv_flush() writes, kv_sync_async() asks the worker thread to
 * sync everything written so far; kv_event_fd() becomes readable when the
 * worker finished something, and kv_poll() (also safe to call at any
 * time) takes its results.  kv_written() is the ticket of the last write;
 * an answer that depends on it may go out once kv_durable() has reached
 * it.  kv_poll() returns 1 when kv_durable() moved, 0 if not, -1 if the
 * store failed. */
int	 kv_sync_async(struct kv *kv);
uint64_t kv_written(const struct kv *kv);
uint64_t kv_durable(const struct kv *kv);
int	 kv_event_fd(struct kv *kv);
int	 kv_poll(struct kv *kv);

/* Calls cb for every key starting with prefix, in key order (bytewise,
 * shorter first); stops early when cb returns non-zero, and returns that
 * value.  cb must not modify the store. */
typedef int kv_scan_cb(const void *key, size_t klen, void *arg);
int  kv_scan(struct kv *kv, const void *prefix, size_t plen, kv_scan_cb *cb, void *arg);
/* As kv_scan, but the keys are collected first: cb may change the store. */
int  kv_each(struct kv *kv, const void *prefix, size_t plen, kv_scan_cb *cb, void *arg);

void kv_get_stats(const struct kv *kv, struct kv_stats *st);

/* Test hooks.  kv_set_crash_at(): when non-zero, the process _exit(99)s
 * at the n-th write step after this call (or after kv_open() for the
 * environment variable KV_CRASH_AT), counting from 1, to simulate SIGKILL
 * there; background work then runs in the caller, so that the steps come
 * in a fixed order.  The steps: each journal write (half of the batch is
 * written first: a torn write), each sync, and per checkpoint the new
 * file's writing (it dies half-way), its fsync, the rename and the
 * directory fsync; in kv_destroy() each unlink and directory fsync.  kv_set_enospc_at(): the n-th journal write from now
 * writes half of its batch and fails with ENOSPC.  kv_set_inline(): do
 * background work in the caller. */
void kv_set_crash_at(struct kv *kv, unsigned n);
void kv_set_enospc_at(struct kv *kv, unsigned n);
void kv_set_inline(struct kv *kv, int on);

#endif
