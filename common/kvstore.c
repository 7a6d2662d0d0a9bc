/* The key/value store: opening (lock, checkpoint, journal replay),
 * closing, the record API, and the commits.  See kvstore.h for the
 * design. */
#include "kvstore_int.h"

#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

static void finish_job(struct kv *, struct kv_job *);

static void
kv_free(struct kv *kv)
{
	kvw_stop(kv);
	for (size_t i = 0; i < kv->nsegs; i++)
		if (kv->segs[i].fd != -1)
			(void)close(kv->segs[i].fd);	/* synced, or nothing to keep */
	if (kv->dirfd != -1)
		(void)close(kv->dirfd);
	if (kv->lockfd != -1)
		(void)close(kv->lockfd);
	kvi_free_all(kv);
	free(kv->segs);
	free(kv->ra.buf);
	wbuf_free(&kv->batch);
	wbuf_free(&kv->scratch);
	free(kv->label);
	free(kv->dir);
	free(kv->name);
	free(kv->dbpath);
	free(kv->tmppath);
	free(kv->sparepath);
	pthread_mutex_destroy(&kv->w.mu);
	pthread_cond_destroy(&kv->w.cv);
	free(kv);
}

static struct kv *
kv_alloc(const char *dir, const char *name, uint64_t checkpoint_bytes)
{
	struct kv *kv = xcalloc(1, sizeof(*kv));
	const char *env = getenv("KV_CRASH_AT");

	kv->dir = xstrdup(dir);
	kv->name = xstrdup(name);
	xasprintf(&kv->label, "%s/%s", dir, name);
	xasprintf(&kv->dbpath, "%s.db", kv->label);
	xasprintf(&kv->tmppath, "%s.db.tmp", kv->label);
	xasprintf(&kv->sparepath, "%s.spare", kv->label);
	kv->dirfd = kv->lockfd = kv->w.efd = -1;
	RB_INIT(&kv->tree);
	wbuf_init(&kv->batch);
	wbuf_init(&kv->scratch);
	pthread_mutex_init(&kv->w.mu, NULL);
	pthread_cond_init(&kv->w.cv, NULL);
	kv->ckpt_bytes = checkpoint_bytes;
	if (env != NULL)
		kv->crash_at = (unsigned)strtoul(env, NULL, 10);
	return kv;
}

/* 1 if the lock file was unlinked (its store deleted), 0 if not, -1
 * (errno) if fstat fails. */
static int
lock_unlinked(int fd)
{
	struct stat sb;

	if (fstat(fd, &sb) == -1)
		return -1;
	return sb.st_nlink == 0 ? 1 : 0;
}

/* Opens the directory and takes the store's lock: two processes appending
 * to one store would corrupt it. */
static int
open_files(struct kv *kv, char **err)
{
	char *lock;
	int e, rc;

	if ((kv->dirfd = open(kv->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		xasprintf(err, "%s: %s", kv->dir, strerror(errno));
		return -1;
	}
	xasprintf(&lock, "%s.lock", kv->label);
again:
	kv->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	while (kv->lockfd != -1 && flock(kv->lockfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		e = errno;
		xasprintf(err, e == EWOULDBLOCK ? "%s: in use by another process" :
		    "%s: lock: %s", lock, strerror(e));
		free(lock);
		errno = e;
		return -1;
	}
	if (kv->lockfd != -1 && (rc = lock_unlinked(kv->lockfd)) != 0) {
		/* Taken from a store deleted since it was opened (kv_destroy
		 * removes the lock file last, holding it): a lock file made
		 * since is the store's now. */
		e = errno;
		(void)close(kv->lockfd);
		kv->lockfd = -1;
		if (rc == 1)
			goto again;
		errno = e;
	}
	if (kv->lockfd == -1) {
		e = errno;
		xasprintf(err, "%s: %s", lock, strerror(e));
		free(lock);
		errno = e;
		return -1;
	}
	free(lock);
	/* A checkpoint that was being written when the process died. */
	if (unlink(kv->tmppath) == -1 && errno != ENOENT) {
		xasprintf(err, "%s: unlink: %s", kv->tmppath, strerror(errno));
		return -1;
	}
	return 0;
}

static int
recover(struct kv *kv, char **err)
{
	bool legacy;

	if (kvl_detect(kv, &legacy, err) == -1)
		return -1;
	if (legacy)
		return kvl_convert(kv, err);
	if (kvc_load(kv, err) == -1)
		return -1;
	return kvj_replay_all(kv, err);
}

struct kv *
kv_open(const char *dir, const char *name, uint64_t checkpoint_bytes, char **err)
{
	struct kv *kv = kv_alloc(dir, name, checkpoint_bytes);
	int e;

	*err = NULL;
	if (open_files(kv, err) == -1)
		goto fail;
	kvj_remove_leftover_spare(kv);
	if (recover(kv, err) == -1)
		goto fail;
	/* A segment may have just been created and the temporary file
	 * removed: make both facts durable before anything is committed. */
	while (fsync(kv->dirfd) == -1) {
		if (errno != EINTR) {
			xasprintf(err, "%s: fsync: %s", dir, strerror(errno));
			goto fail;
		}
	}
	kv->dir_dirty = false;
	return kv;
fail:
	e = errno;
	kv_free(kv);
	errno = e;
	return NULL;
}

static int
close_store(struct kv *kv, bool checkpoint)
{
	int rc = 0;

	if (kv == NULL)
		return 0;
	/* A checkpoint begun with a long queue in the index would hold the
	 * close for seconds; the one below covers what is there now. */
	if (kv->job != NULL && kv->job->kind == JOB_CHECKPOINT)
		atomic_store(&kv->job->cancel, true);
	finish_job(kv, kvw_collect(kv, true));
	kv->inline_jobs = true;
	kv->ckpt_defer = 0;		/* the close decides for itself */
	kvj_drop_spare(kv);		/* not made a segment a moment before closing */
	/* A large index is checkpointed only when a running store would: the
	 * next open replays no more than after a death at this moment, and
	 * the close does not hold the store's lock for minutes (a new
	 * process of the topic waits for it). */
	if (checkpoint && kv->index_bytes > KV_CLOSE_CKPT_MAX)
		checkpoint = false;
	if (kv->failed || kv_commit(kv) == -1)
		rc = -1;
	else if (checkpoint && kvs_journal_bytes(kv, NULL) > 0 && kvc_begin(kv, true) == -1)
		rc = -1;
	else if (!checkpoint && kvc_lazy_due(kv))
		(void)kvc_begin(kv, true);	/* if it fails (logged), the journal stays */
	if (rc == 0)
		/* The next open would take an earlier segment's bytes after the
		 * last batch for a torn write. */
		(void)kvj_trim_current(kv);
	kvj_drop_spare(kv);
	kv_free(kv);
	return rc;
}

int
kv_close(struct kv *kv)
{
	return close_store(kv, true);
}

int
kv_close_lazy(struct kv *kv)
{
	return close_store(kv, false);
}

static int
unlink_file(struct kv *kv, const char *path)
{
	kvj_crash_step(kv);
	if (unlink(path) == -1 && errno != ENOENT) {
		log_warn("store %s: unlink %s", kv->label, path);
		return -1;
	}
	return 0;
}

static int
sync_dir(struct kv *kv)
{
	kvj_crash_step(kv);
	while (fsync(kv->dirfd) == -1)
		if (errno != EINTR) {
			log_warn("store %s: fsync of its directory", kv->label);
			return -1;
		}
	return 0;
}

/* Every key is deleted and the deletion made durable, then a checkpoint
 * covers every segment, which deletes them: what is left (the checkpoint,
 * the segment begun after it, the spare) reads as an empty store however
 * little of it a death leaves.  Those go, the checkpoint last, then the
 * lock file: a process that opened it meanwhile sees it unlinked once it
 * has the lock (open_files) and opens the path again. */
int
kv_destroy(struct kv *kv)
{
	struct kv_node *n;
	char *path, *lock;
	int rc = -1;

	if (kv->job != NULL && kv->job->kind == JOB_CHECKPOINT)
		atomic_store(&kv->job->cancel, true);
	finish_job(kv, kvw_collect(kv, true));
	kv->inline_jobs = true;
	kv->ckpt_defer = 0;
	while ((n = RB_MIN(kv_tree, &kv->tree)) != NULL)
		if (kv_del(kv, n->key, n->klen) == -1)
			goto out;
	if (kv->failed || kv_commit(kv) == -1 || kvc_begin(kv, true) == -1)
		goto out;
	kvj_drop_spare(kv);
	for (size_t i = 0; i < kv->nsegs; i++) {
		path = kvs_path(kv, kv->segs[i].num);
		rc = unlink_file(kv, path);
		free(path);
		if (rc == -1)
			goto out;
	}
	rc = -1;
	if (sync_dir(kv) == -1 || unlink_file(kv, kv->tmppath) == -1 ||
	    unlink_file(kv, kv->dbpath) == -1)
		goto out;
	xasprintf(&lock, "%s.lock", kv->label);
	rc = unlink_file(kv, lock);
	free(lock);
	if (rc == 0)
		rc = sync_dir(kv);
out:
	if (rc == -1)
		log_warnx("store %s: not deleted; it stays, empty or as it was", kv->label);
	kv_free(kv);
	return rc;
}

void
kv_abandon(struct kv *kv)
{
	if (kv == NULL)
		return;
	finish_job(kv, kvw_collect(kv, true));
	kv_free(kv);
}

static int
kv_usable(struct kv *kv)
{
	if (kv->failed) {
		log_warnx("store %s: refused after an earlier I/O error", kv->label);
		errno = EIO;
		return -1;
	}
	return 0;
}

int
kv_putv(struct kv *kv, const void *key, size_t klen, const struct iovec *iov, int n)
{
	const void *at;
	size_t vlen = 0;
	uint64_t off;
	uint32_t seg;

	if (kv_usable(kv) == -1)
		return -1;
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > KV_VAL_MAX - vlen) {
			errno = EINVAL;
			return -1;
		}
		vlen += iov[i].iov_len;
	}
	if (klen == 0 || klen > KV_KEY_MAX || *(const uint8_t *)key == 0) {
		errno = EINVAL;
		return -1;
	}
	if (kvj_add_put(kv, key, klen, iov, n, vlen, &seg, &off, &at) == -1)
		return -1;
	kvi_set(kv, key, klen, at, vlen, KV_IN_SEG, seg, off);
	return 0;
}

int
kv_put(struct kv *kv, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct iovec iov = { .iov_base = (void *)val, .iov_len = vlen };

	return kv_putv(kv, key, klen, &iov, 1);
}

int
kv_del(struct kv *kv, const void *key, size_t klen)
{
	struct kv_node *n;

	if (kv_usable(kv) == -1)
		return -1;
	/* Deleting what is not there needs no record: replay would not
	 * find it either. */
	if ((n = kvi_find(kv, key, klen, 0)) == NULL)
		return 0;
	if (kvj_add_del(kv, key, klen) == -1)
		return -1;
	kvi_remove(kv, n);
	return 0;
}

int
kv_get(struct kv *kv, const void *key, size_t klen, void **val, size_t *vlen)
{
	struct kv_node *n = kvi_find(kv, key, klen, 0);
	uint8_t *v;

	*val = NULL;
	*vlen = 0;
	if (n == NULL)
		return 0;
	if (kvi_load(kv, n, &v) == -1)
		return -1;
	*val = v;
	*vlen = n->vlen;
	return 1;
}

int
kv_exists(struct kv *kv, const void *key, size_t klen)
{
	return kvi_find(kv, key, klen, 0) != NULL;
}

ssize_t
kv_size(struct kv *kv, const void *key, size_t klen)
{
	struct kv_node *n = kvi_find(kv, key, klen, 0);

	return n != NULL ? (ssize_t)n->vlen : -1;
}

size_t
kv_pending(const struct kv *kv)
{
	return kv->npending;
}

int
kv_failed(const struct kv *kv)
{
	return kv->failed;
}

/* A sync in progress must end before one here may say durable: the
 * segments it syncs are no longer marked as written. */
static bool
job_syncs(const struct kv *kv)
{
	return kv->job != NULL && kv->job->kind == JOB_SYNC;
}

int
kv_commit(struct kv *kv)
{
	finish_job(kv, kvw_collect(kv, job_syncs(kv)));
	if (kvj_write(kv) == -1 || kvj_sync_inline(kv) == -1)
		return -1;
	if (kvc_due(kv)) {
		(void)kvc_begin(kv, false);	/* a failure is only logged */
		finish_job(kv, kvw_collect(kv, false));	/* when done inline */
	}
	return kv->failed ? -1 : 0;
}

uint64_t
kv_drop_spare(struct kv *kv)
{
	uint64_t bytes = kv->spare ? kv->spare_bytes : 0;

	kvj_drop_spare(kv);
	if (bytes > 0)
		log_info("store %s: spare segment file of %" PRIu64 " bytes deleted",
		    kv->label, bytes);
	return bytes;
}

/* The journal is read back only for values still to be read; what lies
 * before the oldest of them need not stay in memory, where it would
 * crowd out what is read (and, on a virtual machine, keep taking fresh
 * pages from the host).  KV_COLD_LAG bytes before it are left for values
 * of other keys written meanwhile and still to be read (a staged
 * message).  Only the current segment: an older one is soon deleted or
 * becomes the spare, whose pages had better stay (kvcheckpoint.c). */
void
kv_forget_before(struct kv *kv, const void *key, size_t klen)
{
	struct kv_seg *cur = kvs_current(kv);
	struct kv_node q, *n;
	uint64_t upto;

	if (cur == NULL || cur->size < cur->cold + KV_COLD_LAG + KV_COLD_STEP ||
	    klen > KV_KEY_MAX)
		return;
	upto = cur->size;
	if (key != NULL) {
		q.key = key;
		q.klen = (uint16_t)klen;
		n = RB_FIND(kv_tree, &kv->tree, &q);	/* the finger stays */
		if (n == NULL || n->where != KV_IN_SEG || n->seg != cur->num)
			return;
		upto = n->off < cur->size ? n->off : cur->size;
	}
	if (upto >= KV_COLD_LAG)
		kvj_forget(kv, cur, upto - KV_COLD_LAG);
}

/* A store written without syncs (kv_flush() alone: sync_policy none,
 * QoS 0) must still checkpoint, or its journal grows for as long as the
 * writes come: a gigabyte in 8 s of a QoS 0 stream.  A checkpoint starts
 * from synced segments, so when one is due the worker first syncs, in the
 * background; next_job() then syncs what came meanwhile and begins it. */
static void
flush_checkpoint(struct kv *kv)
{
	if (kv->job != NULL || kv->failed || !kvc_due(kv))
		return;
	if (kv->written != kv->durable || kv->dir_dirty)
		(void)kvw_sync_job(kv);		/* a failure is logged; the writes go on */
	else if (!kvs_current(kv)->dirty && kv->npending == 0)
		(void)kvc_begin(kv, false);	/* likewise */
}

int
kv_flush(struct kv *kv)
{
	if (kvj_write(kv) == -1)
		return -1;
	flush_checkpoint(kv);
	return 0;
}

/* Writing a large batch early lets the disk work while the caller
 * gathers the rest of it (start_disk); the sync at its end then waits
 * only for what is left.  And its bytes go to the page cache while they
 * are still in the CPU's: writes of 1-4 MiB copied at a quarter of the
 * speed of writes of 256 KiB here.  The disk is told to start once
 * KV_AHEAD_START bytes wait for it: each time costs a request to the
 * device (an exit to the hypervisor, on a virtual machine).  The segment
 * is the current one before and after the write (segments change at
 * checkpoints only). */
int
kv_write_ahead(struct kv *kv, size_t min_bytes, bool start_disk)
{
	struct kv_seg *cur = kvs_current(kv);

	if (kv->npending == 0 || kv->batch.len < min_bytes)
		return 0;
	if (kv->ahead_seg != cur->num) {
		kv->ahead_seg = cur->num;
		kv->ahead_off = cur->size;
	}
	if (kvj_write(kv) == -1)
		return -1;
	if (!start_disk || cur->size - kv->ahead_off < KV_AHEAD_START)
		return 0;
	if (sync_file_range(cur->fd, (off_t)kv->ahead_off, (off_t)(cur->size - kv->ahead_off),
	    SYNC_FILE_RANGE_WRITE) == -1)
		log_debug("store %s: sync_file_range: %s", kv->label, strerror(errno));
	kv->ahead_off = cur->size;
	return 0;
}

int
kv_checkpoint(struct kv *kv)
{
	finish_job(kv, kvw_collect(kv, true));
	if (kv_commit(kv) == -1)
		return -1;
	finish_job(kv, kvw_collect(kv, true));
	return kvc_begin(kv, true);
}

/* Durability without waiting. */

int
kv_sync_async(struct kv *kv)
{
	if (kv->failed) {
		errno = EIO;
		return -1;
	}
	if (kv->written == kv->durable && !kv->dir_dirty)
		return 0;
	if (job_syncs(kv)) {
		kv->want_sync = true;	/* after the sync in progress */
		return 0;
	}
	kv->want_sync = false;
	/* While a checkpoint runs, and when one is due (it starts from synced
	 * segments), the sync is done here: a sync never waits for a
	 * checkpoint, and a store always busy syncing still checkpoints.
	 * Megabytes unsynced (sync_policy none writes them while the sync
	 * before a checkpoint runs) are synced in the background first, a few
	 * times at most: here the caller's loop would wait for them. */
	if (kv->job != NULL || (kvc_due(kv) && kv->npending == 0)) {
		if (kv->job == NULL && kv->unsynced_bytes > KV_CHASE_BYTES &&
		    kv->chases < KV_CHASE_MAX) {
			kv->chases++;
			return kvw_sync_job(kv);
		}
		if (kvj_sync_inline(kv) == -1)
			return -1;
		if (kv->job == NULL)
			(void)kvc_begin(kv, false);	/* a failure is only logged */
		return 0;
	}
	return kvw_sync_job(kv);
}

uint64_t
kv_written(const struct kv *kv)
{
	return kv->written;
}

uint64_t
kv_durable(const struct kv *kv)
{
	return kv->durable;
}

int
kv_event_fd(struct kv *kv)
{
	if (kv->w.efd == -1 &&
	    (kv->w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		log_warn("store %s: eventfd", kv->label);
	return kv->w.efd;
}

static int
sync_done(struct kv *kv, struct kv_job *j)
{
	if (j->rc != 0) {
		errno = j->err;
		log_warn("store %s: %s", kv->label, j->what ? j->what : "sync");
		kv->failed = 1;
		kvw_job_free(j);
		return -1;
	}
	if (j->ticket > kv->durable)
		kv->durable = j->ticket;
	if (j->nfds > 0) {
		kv->st.commits++;
		kv->st.committed += j->records;
	}
	kvw_job_free(j);
	return 1;
}

/* Takes a finished job's results (NULL: none). */
static void
finish_job(struct kv *kv, struct kv_job *j)
{
	if (j == NULL)
		return;
	if (j->kind == JOB_SYNC)
		(void)sync_done(kv, j);
	else
		kvc_finish(kv, j);
}

/* After a job: the sync asked for meanwhile, or the one a due checkpoint
 * needs first (kv_sync_async() starts the checkpoint after it), or the
 * checkpoint when the current segment is synced (a segment is complete
 * before the next) and nothing is pending (its offsets are in the
 * current segment).  What was only flushed is not synced for its own
 * sake: a store written without syncs would sync without end. */
static void
next_job(struct kv *kv)
{
	if (kv->job != NULL || kv->failed)
		return;
	if (kv->want_sync || (kv->written != kv->durable && kvc_due(kv))) {
		(void)kv_sync_async(kv);
		if (kv->job != NULL || kv->failed)
			return;		/* a sync, or the checkpoint after one */
	}
	if (kvc_due(kv) && !kvs_current(kv)->dirty && kv->npending == 0)
		(void)kvc_begin(kv, false);
}

int
kv_poll(struct kv *kv)
{
	uint64_t before = kv->durable;

	finish_job(kv, kvw_collect(kv, false));
	if (kv->failed)
		return -1;
	next_job(kv);
	if (kv->failed)
		return -1;
	return kv->durable > before;
}

int
kv_scan(struct kv *kv, const void *prefix, size_t plen, kv_scan_cb *cb, void *arg)
{
	struct kv_node *n;
	int rc;

	for (n = kvi_find(kv, prefix, plen, 1); n != NULL; n = RB_NEXT(kv_tree, &kv->tree, n)) {
		if (n->klen < plen || (plen > 0 && memcmp(n->key, prefix, plen) != 0))
			break;
		if ((rc = cb(n->key, n->klen, arg)) != 0)
			return rc;
	}
	return 0;
}

struct keylist {
	uint8_t	**key;
	size_t	 *len;
	size_t	  n;
};

static int
collect_key(const void *key, size_t klen, void *arg)
{
	struct keylist *l = arg;

	l->key = xreallocarray(l->key, l->n + 1, sizeof(*l->key));
	l->len = xreallocarray(l->len, l->n + 1, sizeof(*l->len));
	l->key[l->n] = xmemdup(key, klen);
	l->len[l->n] = klen;
	l->n++;
	return 0;
}

int
kv_each(struct kv *kv, const void *prefix, size_t plen, kv_scan_cb *cb, void *arg)
{
	struct keylist l = { NULL, NULL, 0 };
	int rc = 0;

	(void)kv_scan(kv, prefix, plen, collect_key, &l);
	for (size_t i = 0; i < l.n; i++) {
		if (rc == 0)
			rc = cb(l.key[i], l.len[i], arg);
		free(l.key[i]);
	}
	free(l.key);
	free(l.len);
	return rc;
}

void
kv_get_stats(const struct kv *kv, struct kv_stats *st)
{
	*st = kv->st;
	st->index_bytes = kv->index_bytes;
	st->journal_bytes = kvs_journal_bytes(kv, NULL);
	st->disk_bytes = kvs_disk_bytes(kv);
	st->segments = kv->nsegs;
	st->forgotten = kv->nsegs > 0 ? kv->segs[kv->nsegs - 1].cold : 0;
}

void
kv_set_crash_at(struct kv *kv, unsigned n)
{
	kv->crash_at = n;
	kv->steps = 0;
}

void
kv_set_enospc_at(struct kv *kv, unsigned n)
{
	kv->enospc_at = n;
}

void
kv_set_inline(struct kv *kv, int on)
{
	kv->inline_jobs = on != 0;
}
