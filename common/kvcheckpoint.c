/* Checkpoints: a gdbm file of every key with its small value or the place
 * of its value in the journal, and which segments it covers.
 *
 * Records of the checkpoint file (format 2):
 *   KV_META_KEY -> u8 format (2), u32 first segment not covered,
 *                  u32 oldest segment that may exist
 *   key         -> 'v' value                       (a small value)
 *               |  'r' u32 segment, u64 offset, u32 length
 *
 * kvc_begin() writes nothing to the checkpoint itself: it starts a new
 * segment, takes a snapshot of the index into a job, and hands the job to
 * the worker, which writes the file beside the old one, syncs it, renames
 * it over NAME.db and syncs the directory, then deletes the segments the
 * new checkpoint covers and does not refer to (kvc_run); kvc_finish()
 * takes them out of the table.
 * A crash at any point leaves the old checkpoint with every segment it
 * needs, or the new one with every segment it needs. */
#include "kvstore_int.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

static void
job_fail(struct kv_job *j, const char *what, const char *path)
{
	j->rc = -1;
	j->err = errno;
	xasprintf(&j->what, "%s %s", what, path);
}

/* Loading. */

static int
load_record(struct kv *kv, datum k, datum v, char **err)
{
	struct rbuf r;
	uint8_t tag;
	uint32_t seg, len;
	uint64_t off;

	rbuf_init(&r, v.dptr, (size_t)v.dsize);
	if (k.dsize <= 0 || k.dsize > KV_KEY_MAX || get_u8(&r, &tag) == -1)
		goto bad;
	if (tag == 'v') {
		kvi_set(kv, k.dptr, (size_t)k.dsize, r.p, r.left, KV_IN_MEM, 0, 0);
		return 0;
	}
	if (tag != 'r' || get_u32(&r, &seg) == -1 || get_u64(&r, &off) == -1 ||
	    get_u32(&r, &len) == -1 || get_end(&r) == -1 || len <= KV_SMALL_MAX ||
	    len > KV_VAL_MAX || seg >= kv->first_seg)
		goto bad;
	kvi_set(kv, k.dptr, (size_t)k.dsize, NULL, len, KV_IN_SEG, seg, off);
	return 0;
bad:
	xasprintf(err, "%s: a record that does not read back (key of %d bytes)",
	    kv->dbpath, k.dsize);
	errno = EUCLEAN;
	return -1;
}

static int
load_meta(struct kv *kv, GDBM_FILE db, char **err)
{
	datum k = { KV_META_KEY, KV_META_KLEN }, v = gdbm_fetch(db, k);
	uint8_t format = 0;
	struct rbuf r;

	rbuf_init(&r, v.dptr, v.dptr ? (size_t)v.dsize : 0);
	get_u8(&r, &format);
	get_u32(&r, &kv->first_seg);
	get_u32(&r, &kv->oldest_seg);
	if (v.dptr == NULL || get_end(&r) == -1 || format != KV_FORMAT ||
	    kv->first_seg == 0 || kv->oldest_seg > kv->first_seg) {
		xasprintf(err, "%s: checkpoint of an unknown format (%u)", kv->dbpath, format);
		free(v.dptr);
		errno = EUCLEAN;
		return -1;
	}
	free(v.dptr);
	return 0;
}

static int
load_keys(struct kv *kv, GDBM_FILE db, char **err)
{
	datum k, next, v;

	for (k = gdbm_firstkey(db); k.dptr != NULL; k = next) {
		if (k.dsize != KV_META_KLEN || memcmp(k.dptr, KV_META_KEY, KV_META_KLEN) != 0) {
			v = gdbm_fetch(db, k);
			if (v.dptr == NULL || load_record(kv, k, v, err) == -1) {
				if (v.dptr == NULL) {
					xasprintf(err, "%s: %s", kv->dbpath, gdbm_db_strerror(db));
					errno = EUCLEAN;
				}
				free(v.dptr);
				free(k.dptr);
				return -1;
			}
			free(v.dptr);
		}
		next = gdbm_nextkey(db, k);
		free(k.dptr);
	}
	if (gdbm_last_errno(db) != GDBM_ITEM_NOT_FOUND) {
		xasprintf(err, "%s: %s", kv->dbpath, gdbm_db_strerror(db));
		errno = EUCLEAN;
		return -1;
	}
	return 0;
}

/* The segments below first_seg that the checkpoint refers to must be
 * there; the others are what a crash left before deleting them. */
static int
check_old_segments(struct kv *kv, char **err)
{
	struct stat sb;

	for (uint32_t n = kv->oldest_seg; n < kv->first_seg; n++) {
		struct kv_seg *s = kvs_find(kv, n);
		char *path = kvs_path(kv, n);

		if (s != NULL && stat(path, &sb) == -1) {
			xasprintf(err, "%s: %s (the checkpoint refers to it)", path,
			    strerror(errno));
			free(path);
			errno = EUCLEAN;
			return -1;
		}
		if (s != NULL)
			s->size = (uint64_t)sb.st_size;
		else if (unlink(path) == 0)
			log_info("store %s: removed segment %" PRIu32 ", left by a crash",
			    kv->label, n);
		free(path);
	}
	return 0;
}

/* Indexes the checkpoint (format 2), if there is one yet. */
int
kvc_load(struct kv *kv, char **err)
{
	struct stat sb;
	GDBM_FILE db;
	int rc;

	kv->first_seg = kv->oldest_seg = 1;
	if (stat(kv->dbpath, &sb) == -1) {
		if (errno == ENOENT)
			return 0;
		xasprintf(err, "%s: %s", kv->dbpath, strerror(errno));
		return -1;
	}
	db = gdbm_open(kv->dbpath, 0, GDBM_READER | GDBM_NOLOCK | GDBM_CLOEXEC, 0, NULL);
	if (db == NULL) {
		xasprintf(err, "%s: %s", kv->dbpath, gdbm_strerror(gdbm_errno));
		errno = EUCLEAN;
		return -1;
	}
	rc = load_meta(kv, db, err) == -1 || load_keys(kv, db, err) == -1 ? -1 : 0;
	(void)gdbm_close(db);		/* read only */
	if (rc == 0) {
		kv->db_bytes = (uint64_t)sb.st_size;
		rc = check_old_segments(kv, err);
	}
	return rc;
}

/* Taking a snapshot. */

static void
snap_node(struct kv_job *j, const struct kv_node *n)
{
	put_u16(&j->snap, n->klen);
	put_raw(&j->snap, n->key, n->klen);
	if (n->where == KV_IN_MEM) {
		put_u8(&j->snap, 'v');
		put_u32(&j->snap, n->vlen);
		put_raw(&j->snap, n->sval, n->vlen);
	} else {
		put_u8(&j->snap, 'r');
		put_u32(&j->snap, n->seg);
		put_u64(&j->snap, n->off);
		put_u32(&j->snap, n->vlen);
	}
	j->nsnap++;
}

/* Past checkpoint_bytes of journal, once the journal costs KV_CKPT_RATIO
 * times what the checkpoint does.  A checkpoint writes every live key (a
 * gdbm store each, 2-25 us); a replay reads every record (0.3 us) and
 * every byte.  So it is due when the journal holds KV_CKPT_RATIO records
 * for every live key and KV_CKPT_RATIO times the index's bytes (small
 * values: a long queue of a million keys otherwise spends a core
 * rewriting them), or KV_CKPT_RATIO times KV_CKPT_KEY_BYTES for every
 * live key (large values: few records, many bytes to read back; counted
 * in bytes only, a queue of 64 KiB values rewrote its thousands of keys
 * every 64 records). */
bool
kvc_due(const struct kv *kv)
{
	return kvc_due_past(kv, kv->ckpt_bytes);
}

bool
kvc_due_past(const struct kv *kv, uint64_t bytes)
{
	uint64_t records, journal = kvs_journal_bytes(kv, &records);
	uint64_t keys = kv->st.keys;

	if (kv->failed || kv->job != NULL || journal <= bytes || journal < kv->ckpt_defer)
		return false;
	if (records / KV_CKPT_RATIO > keys && journal / KV_CKPT_RATIO > kv->index_bytes)
		return true;
	return journal / KV_CKPT_RATIO / KV_CKPT_KEY_BYTES > keys;
}

/* At a lazy close: a checkpoint is due past KV_LAZY_MAX of journal, or
 * when segments the last checkpoint kept (for values then live) now hold
 * none, past KV_LAZY_MAX and KV_CKPT_RATIO times what a checkpoint
 * writes: only a checkpoint deletes them, and a cold store has none to
 * come. */
bool
kvc_lazy_due(const struct kv *kv)
{
	uint64_t dead = 0;

	if (kvc_due_past(kv, KV_LAZY_MAX))
		return true;
	if (kv->failed || kv->job != NULL)
		return false;
	for (size_t i = 0; i < kv->nsegs; i++)
		if (kv->segs[i].num < kv->first_seg && kv->segs[i].refs == 0)
			dead += kv->segs[i].size;
	return dead > KV_LAZY_MAX && dead / KV_CKPT_RATIO > kv->index_bytes;
}

/* Starts a checkpoint of everything written so far: nothing may be
 * pending and the current segment must be synced (the caller makes sure).
 * wait: do it now, in the caller. */
int
kvc_begin(struct kv *kv, bool wait)
{
	struct kv_seg *cur = kvs_current(kv);
	struct kv_job *j;
	struct kv_node *n;
	char *err = NULL;

	kv->chases = 0;
	if (kvj_create_segment(kv, cur->num + 1, &err) == -1) {
		log_warnx("store %s: checkpoint not started: %s", kv->label, err);
		free(err);
		return -1;
	}
	j = kvw_job_new(JOB_CHECKPOINT);
	j->first = kvs_current(kv)->num;
	j->oldest = kv->oldest_seg;
	RB_FOREACH(n, kv_tree, &kv->tree)
		snap_node(j, n);
	for (size_t i = 0; i + 1 < kv->nsegs; i++) {
		struct kv_seg *s = &kv->segs[i];

		if (s->refs == 0) {
			/* Nothing will read it again.  The job deletes it: the
			 * last reference to a large file takes long to drop (its
			 * blocks are freed, and discarded on some disks).  Or
			 * it keeps it as the spare (kvjournal.c). */
			if (s->fd != -1)
				(void)close(s->fd);	/* read-only or synced */
			s->fd = -1;
			j->gone = xreallocarray(j->gone, j->ngone + 1, sizeof(*j->gone));
			j->gone[j->ngone++] = kvs_path(kv, s->num);
			/* The largest: the most of the next segment written
			 * over.  One smaller goes back among the deleted.
			 * Not one whose pages were let go (kv_forget_before):
			 * writing over it would read the last page of every
			 * write back from the disk first. */
			if (!kv->spare && s->reusable && s->cold == 0 &&
			    s->size >= KV_SPARE_MIN && s->size > j->spare_bytes) {
				char *smaller = j->spare_from;

				j->spare_from = j->gone[j->ngone - 1];
				if (smaller != NULL)
					j->gone[j->ngone - 1] = smaller;
				else
					j->ngone--;
				j->spare_bytes = s->size;
			}
			continue;
		}
		j->keep = xreallocarray(j->keep, j->nkeep + 1, sizeof(*j->keep));
		j->keep[j->nkeep++] = s->num;
	}
	j->tmppath = xstrdup(kv->tmppath);
	j->dbpath = xstrdup(kv->dbpath);
	if (j->spare_from != NULL)
		j->spare_to = xstrdup(kv->sparepath);
	if ((j->dirfd = fcntl(kv->dirfd, F_DUPFD_CLOEXEC, 0)) == -1) {
		log_warn("store %s: checkpoint not started", kv->label);
		kvw_job_free(j);
		return -1;
	}
	if (wait) {
		bool was = kv->inline_jobs;

		kv->inline_jobs = true;
		kvw_submit(kv, j);
		kv->inline_jobs = was;
		kvc_finish(kv, kvw_collect(kv, true));
		return kv->st.checkpoints > 0 && kv->first_seg == kvs_current(kv)->num ? 0 : -1;
	}
	return kvw_submit(kv, j);
}

/* Writing it (in the worker, or inline). */

static int
store_snap(struct kv_job *j, GDBM_FILE db)
{
	struct rbuf r;
	struct wbuf v;
	int crash = kvj_crash_now(j->kv), rc = 0;

	wbuf_init(&v);
	rbuf_init(&r, j->snap.data, j->snap.len);
	for (uint64_t i = 0; i < j->nsnap && rc == 0; i++) {
		const uint8_t *k, *p;
		uint16_t klen;
		uint8_t tag;
		uint32_t n, seg;
		uint64_t off;
		datum dk, dv;

		/* Die half-way through, leaving a partial file behind. */
		if (crash && i >= j->nsnap / 2)
			_exit(KV_CRASH_STATUS);
		if (i % 1024 == 0 && atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
			rc = -1;
			break;
		}
		get_u16(&r, &klen);
		get_raw(&r, &k, klen);
		get_u8(&r, &tag);
		wbuf_reset(&v);
		put_u8(&v, tag);
		if (tag == 'v') {
			get_u32(&r, &n);
			get_raw(&r, &p, n);
			put_raw(&v, p, n);
		} else {
			get_u32(&r, &seg);
			get_u64(&r, &off);
			get_u32(&r, &n);
			put_u32(&v, seg);
			put_u64(&v, off);
			put_u32(&v, n);
		}
		dk.dptr = (char *)k;
		dk.dsize = klen;
		dv.dptr = (char *)v.data;
		dv.dsize = (int)v.len;
		rc = r.err || gdbm_store(db, dk, dv, GDBM_REPLACE) != 0 ? -1 : 0;
	}
	if (crash)
		_exit(KV_CRASH_STATUS);
	wbuf_free(&v);
	return rc;
}

static int
store_meta(struct kv_job *j, GDBM_FILE db)
{
	struct wbuf w;
	datum k = { KV_META_KEY, KV_META_KLEN }, v;
	int rc;

	wbuf_init(&w);
	put_u8(&w, KV_FORMAT);
	put_u32(&w, j->first);
	put_u32(&w, j->oldest);
	v.dptr = (char *)w.data;
	v.dsize = (int)w.len;
	rc = gdbm_store(db, k, v, GDBM_REPLACE);
	wbuf_free(&w);
	return rc == 0 ? 0 : -1;
}

static int
write_file(struct kv_job *j)
{
	struct stat sb;
	GDBM_FILE db;
	int rc = -1, flags = GDBM_NEWDB | GDBM_NOLOCK | GDBM_CLOEXEC, bs = 0;

	/* gdbm writes a key's whole bucket back at every store: with the
	 * default (the file system's block) a checkpoint of a million keys
	 * took 45 us a key, with 64 KiB buckets 10 us.  A small store keeps
	 * the default: a bucket is the least a file holds. */
	if (j->nsnap > KV_BIG_SNAP) {
		bs = KV_BIG_BUCKET;
		flags |= GDBM_BSEXACT;
	}
	db = gdbm_open(j->tmppath, bs, flags, 0600, NULL);
	if (db == NULL) {
		errno = gdbm_check_syserr(gdbm_errno) ? errno : EIO;
		job_fail(j, "creating", j->tmppath);
		return -1;
	}
	if (store_meta(j, db) == -1 || store_snap(j, db) == -1 || gdbm_sync(db) != 0) {
		if (atomic_load(&j->cancel))
			errno = ECANCELED;
		else
			errno = gdbm_last_syserr(db) ? gdbm_last_syserr(db) : EIO;
		job_fail(j, "writing", j->tmppath);
		goto out;
	}
	kvj_crash_step(j->kv);
	if (kvj_sync_fd(gdbm_fdesc(db), 0) == -1 || fstat(gdbm_fdesc(db), &sb) == -1) {
		job_fail(j, "fsync", j->tmppath);
		goto out;
	}
	j->dbsize = (uint64_t)sb.st_size;
	rc = 0;
out:
	if (gdbm_close(db) != 0 && rc == 0) {
		errno = EIO;
		job_fail(j, "closing", j->tmppath);
		rc = -1;
	}
	return rc;
}

/* The job: segments it covers synced, the new file written and synced,
 * renamed over the old one, the rename synced. */
int
kvc_run(struct kv_job *j)
{
	for (size_t i = 0; i < j->nfds; i++) {
		kvj_crash_step(j->kv);
		if (kvj_sync_fd(j->fds[i], 1) == -1) {
			job_fail(j, "fdatasync of a segment of", j->dbpath);
			return -1;
		}
	}
	if (write_file(j) == -1)
		return -1;
	kvj_crash_step(j->kv);
	if (rename(j->tmppath, j->dbpath) == -1) {
		job_fail(j, "rename", j->tmppath);
		return -1;
	}
	kvj_crash_step(j->kv);
	if (kvj_sync_fd(j->dirfd, 0) == -1) {
		/* The rename may not be durable: keep every segment. */
		job_fail(j, "fsync of the directory of", j->dbpath);
		j->rc = -2;
		return -1;
	}
	for (size_t i = 0; i < j->ngone; i++)
		if (unlink(j->gone[i]) == -1 && errno != ENOENT && j->gone_err == 0)
			j->gone_err = errno;
	if (j->spare_from != NULL) {
		j->spared = rename(j->spare_from, j->spare_to) == 0;
		if (!j->spared && unlink(j->spare_from) == -1 && errno != ENOENT &&
		    j->gone_err == 0)
			j->gone_err = errno;
	}
	j->rc = 0;
	return 0;
}

static bool
kept(const struct kv_job *j, uint32_t num)
{
	for (size_t i = 0; i < j->nkeep; i++)
		if (j->keep[i] == num)
			return true;
	return false;
}

/* Back in the caller: the segments the new checkpoint covers and does
 * not refer to go. */
void
kvc_finish(struct kv *kv, struct kv_job *j)
{
	if (j == NULL)
		return;
	if (j->rc != 0) {
		errno = j->err;
		if (j->err == ECANCELED)
			log_info("store %s: checkpoint given up (closing)", kv->label);
		else
			log_warn("store %s: checkpoint failed: %s", kv->label,
			    j->what ? j->what : "?");
		if (j->rc == -1 && unlink(j->tmppath) == -1 && errno != ENOENT)
			log_warn("store %s: unlink %s", kv->label, j->tmppath);
		kv->ckpt_defer = kvs_journal_bytes(kv, NULL) * 2;
		kvw_job_free(j);
		return;
	}
	kv->first_seg = j->first;
	kv->oldest_seg = j->nkeep > 0 ? j->keep[0] : j->first;
	if (j->gone_err != 0) {
		errno = j->gone_err;
		log_warn("store %s: deleting segments the checkpoint covers", kv->label);
	}
	for (size_t i = 0; i < kv->nsegs;) {
		struct kv_seg *s = &kv->segs[i];

		if (s->num >= j->first || kept(j, s->num))
			i++;
		else
			kvs_remove(kv, s);	/* deleted by the job */
	}
	if (j->spared) {
		kv->spare = true;
		kv->spare_bytes = j->spare_bytes;
	}
	kv->db_bytes = j->dbsize;
	kv->ckpt_defer = 0;
	kv->st.checkpoints++;
	kvw_job_free(j);
}
