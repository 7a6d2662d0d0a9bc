/* A crash-safe key/value store: an append-only journal as the commit
 * point, and gdbm snapshots that are never modified in place.
 *
 * Files, for a store NAME in directory DIR:
 *   DIR/NAME.db          the last checkpoint (gdbm), read-only between checkpoints
 *   DIR/NAME.journal     records committed since that checkpoint
 *   DIR/NAME.db.tmp      a checkpoint being written (removed at open)
 *
 * kv_put()/kv_del() take effect at once in memory (kv_get() sees them)
 * and are appended to an in-memory batch; kv_commit() writes the batch with
 * one write() and makes it durable with one fdatasync() (group commit).  A
 * record is durable once kv_commit() returned 0.  A batch is atomic: the
 * journal frames each written batch with its length and a CRC32, and
 * recovery replays whole batches only, over the checkpoint, and truncates
 * a torn tail.  A checkpoint writes a complete new gdbm file, fsyncs it, renames
 * it over NAME.db, fsyncs the directory and only then empties the journal,
 * so SIGKILL at any instant leaves either the old checkpoint and its whole
 * journal or the new checkpoint (replaying the old journal over it is
 * harmless: records are idempotent puts and deletes).
 *
 * Memory holds an ordered index of the keys; values larger than a small
 * threshold stay on disk (in the checkpoint or the journal) and are read
 * back on kv_get(). */
#ifndef COMMON_KVSTORE_H
#define COMMON_KVSTORE_H

#include <stddef.h>
#include <stdint.h>

struct kv;

struct kv_stats {
	uint64_t keys;			/* live keys */
	uint64_t live_bytes;		/* live keys + values */
	uint64_t journal_bytes;		/* current journal size */
	uint64_t commits;		/* kv_commit() calls that synced */
	uint64_t committed;		/* records made durable */
	uint64_t checkpoints;
	uint64_t recovered;		/* records replayed at open */
	uint64_t truncated;		/* torn bytes cut from the journal at open */
};

/* Opens (creating if needed) and recovers the store.  On failure returns
 * NULL and sets *err to a malloc'd message.  checkpoint_bytes: the journal
 * size at which kv_commit() checkpoints (it also waits until the journal
 * is larger than the live data, so that the cost stays proportional).
 * One process at a time: the journal is locked (flock), and a second open
 * fails with "in use by another process". */
struct kv *kv_open(const char *dir, const char *name, uint64_t checkpoint_bytes, char **err);
/* Commits, checkpoints if the journal is not empty (so that the next open
 * replays nothing) and frees.  Returns -1 if the final commit or checkpoint
 * failed (logged), or if the store had failed before. */
int  kv_close(struct kv *kv);

/* 0, or -1 with errno EINVAL (key empty or over 65535 bytes, value over
 * 1 GiB), EFBIG (the pending batch would pass 2 GiB: commit first) or EIO
 * (the store failed earlier).  Deleting an absent key is a no-op. */
int  kv_put(struct kv *kv, const void *key, size_t klen, const void *val, size_t vlen);
int  kv_del(struct kv *kv, const void *key, size_t klen);
/* 1 and a malloc'd copy in *val (NUL-terminated beyond vlen), 0 if absent,
 * -1 on an I/O error (logged). */
int  kv_get(struct kv *kv, const void *key, size_t klen, void **val, size_t *vlen);
int  kv_exists(struct kv *kv, const void *key, size_t klen);

/* Records put or deleted since the last commit. */
size_t kv_pending(const struct kv *kv);
/* Writes and syncs the pending batch (no sync if nothing was written since
 * the last one); may then checkpoint.  0 once the batch is durable, or -1
 * on an I/O error (logged; the store is then unusable and the caller
 * exits).  A checkpoint that fails before it replaces NAME.db is only
 * logged: the journal still holds everything, and it is retried once the
 * journal has doubled. */
int  kv_commit(struct kv *kv);
/* Writes the pending batch without syncing (best-effort data: it survives
 * the death of the process, not of the machine). */
int  kv_flush(struct kv *kv);
/* Forces a checkpoint now (after committing).  -1 on failure (logged). */
int  kv_checkpoint(struct kv *kv);

/* Calls cb for every key starting with prefix, in key order (bytewise,
 * shorter first); stops early when cb returns non-zero, and returns that
 * value.  cb must not modify the store. */
typedef int kv_scan_cb(const void *key, size_t klen, void *arg);
int  kv_scan(struct kv *kv, const void *prefix, size_t plen, kv_scan_cb *cb, void *arg);

void kv_get_stats(const struct kv *kv, struct kv_stats *st);

/* Test hook: when non-zero, the process _exit(99)s at the n-th write step
 * after this call (or after kv_open() for the environment variable
 * KV_CRASH_AT), counting from 1, to simulate SIGKILL there.  The steps:
 * each journal write (half of the batch is written first: a torn write),
 * each fdatasync, and per checkpoint the new file's writing (it dies
 * half-way), its fsync, the rename, the directory fsync and the journal
 * truncation. */
void kv_set_crash_at(struct kv *kv, unsigned n);

#endif
