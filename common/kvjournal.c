/* The store's journal: batch framing, writing, syncing, segments
 * (kvreplay.c reads it back).
 *
 * A batch on disk is
 *	u32 magic "KVJ2"  u32 body length  u32 segment  u32 CRC32  body
 * where the CRC covers the segment number (4 bytes) and the body, the
 * length's top bit (KV_LEN_REUSED) says that the segment's file was an
 * earlier segment's, and the body is a sequence of records
 *	u8 1 (put)  u32 key length  key  u32 value length  value
 *	u8 2 (del)  u32 key length  key
 *	u8 3 (end)  alone in its batch: nothing more is written to the segment
 * all integers little-endian (marshal.h).  Recovery applies whole batches
 * only, so a batch is atomic.  A batch is written with one pwrite() after
 * the last one of the current segment.
 *
 * Segment files are reused: the file of a segment a checkpoint no longer
 * needs is kept as NAME.spare (one at most, KV_SPARE_MIN bytes or more)
 * and becomes the next segment.  Overwriting blocks a file already has
 * costs the disk no block allocation, and fdatasync() no metadata to
 * write: 1 MiB batches sync 1.4-1.6x faster, small ones 1.2x.
 * So a segment ends at its first batch that does not check, not at the
 * end of its file, and what follows may be an earlier segment's batches;
 * the segment number in each header tells them apart.  A segment is
 * complete before the next is created: it ends with an end record, synced
 * first.  So replay demands one at the end of every segment but the last
 * (or, written before segments were reused, "KVJ1" batches up to the end
 * of the file).  Only the last may end in a torn write, and only a reused
 * one in a batch that does not check before the end of its file (there,
 * a torn write and damage look alike). */
#include "kvstore_int.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libdeflate.h>

#include "fdio.h"
#include "log.h"
#include "xmalloc.h"


/* Counts one write step for the crash tests; true at the chosen one. */
int
kvj_crash_now(struct kv *kv)
{
	return kv->crash_at != 0 && ++kv->steps == kv->crash_at;
}

void
kvj_crash_step(struct kv *kv)
{
	if (kvj_crash_now(kv))
		_exit(KV_CRASH_STATUS);
}

/* Reads up to n bytes at off; fewer only at the end of the file. */
ssize_t
kvj_pread(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = pread(fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* CRC-32 (the one of zlib and gzip) of the segment's number, little
 * endian, and the batch.  libdeflate's carry-less multiplication computes
 * it at 14 GB/s here, zlib's table at 6: zlib's was a tenth of a topicd's
 * time in a stream of 64 KiB messages.  The result is the same bits. */
uint32_t
kvj_batch_crc(uint32_t seg, const uint8_t *body, size_t len)
{
	uint8_t le[4] = { (uint8_t)seg, (uint8_t)(seg >> 8), (uint8_t)(seg >> 16),
			  (uint8_t)(seg >> 24) };

	return libdeflate_crc32(libdeflate_crc32(0, le, sizeof(le)), body, len);
}

int
kvj_sync_fd(int fd, int data_only)
{
	/* Only EINTR is retried: after a failed sync the kernel may have
	 * dropped the dirty pages, and a second call could lie. */
	while ((data_only ? fdatasync(fd) : fsync(fd)) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

int
kvj_truncate(int fd, uint64_t len)
{
	while (ftruncate(fd, (off_t)len) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* Makes room for a record of need bytes in the pending batch. */
static int
batch_room(struct kv *kv, size_t need)
{
	static const uint8_t hdr[KV_HDR_LEN];

	if (kv->batch.len == 0)
		put_raw(&kv->batch, hdr, sizeof(hdr));
	if (kv->batch.len - KV_HDR_LEN + need > KV_BATCH_MAX) {
		log_warnx("store %s: batch too large; commit more often", kv->label);
		errno = EFBIG;
		return -1;
	}
	return 0;
}

/* Appends a put of the value in iov[0..n) (vlen bytes in all) to the
 * pending batch; *seg and *off are where the value will be in the
 * journal, *at where it is in the batch until the next call. */
int
kvj_add_put(struct kv *kv, const void *key, size_t klen, const struct iovec *iov, int n,
    size_t vlen, uint32_t *seg, uint64_t *off, const void **at)
{
	struct kv_seg *cur = kvs_current(kv);

	if (batch_room(kv, 1 + 4 + klen + 4 + vlen) == -1)
		return -1;
	put_u8(&kv->batch, OP_PUT);
	put_bytes(&kv->batch, key, klen);
	put_u32(&kv->batch, (uint32_t)vlen);
	*seg = cur->num;
	*off = cur->size + kv->batch.len;
	for (int i = 0; i < n; i++)
		put_raw(&kv->batch, iov[i].iov_base, iov[i].iov_len);
	*at = kv->batch.data + kv->batch.len - vlen;	/* the batch may have moved */
	kv->npending++;
	return 0;
}

int
kvj_add_del(struct kv *kv, const void *key, size_t klen)
{
	if (batch_room(kv, 1 + 4 + klen) == -1)
		return -1;
	put_u8(&kv->batch, OP_DEL);
	put_bytes(&kv->batch, key, klen);
	kv->npending++;
	return 0;
}

/* A full disk is not the store's failure: what was written of the batch
 * is cut off again, the batch stays pending, and a later write retries. */
static int
write_failed(struct kv *kv, struct kv_seg *cur, int err)
{
	if ((err == ENOSPC || err == EDQUOT) && kvj_truncate(cur->fd, cur->size) == 0) {
		errno = err;
		return -1;
	}
	errno = err;
	log_warn("store %s: journal write", kv->label);
	kv->failed = 1;
	return -1;
}

/* Frames the pending batch and writes it with one write() loop. */
int
kvj_write(struct kv *kv)
{
	struct kv_seg *cur = kvs_current(kv);
	uint8_t *p = kv->batch.data;
	size_t len = kv->batch.len;

	if (kv->failed) {
		log_warnx("store %s: refused after an earlier I/O error", kv->label);
		errno = EIO;
		return -1;
	}
	if (kv->npending == 0)
		return 0;
	wbuf_reset(&kv->scratch);
	put_u32(&kv->scratch, KV_MAGIC);
	put_u32(&kv->scratch, (uint32_t)(len - KV_HDR_LEN) | (cur->reused ? KV_LEN_REUSED : 0));
	put_u32(&kv->scratch, cur->num);
	put_u32(&kv->scratch, kvj_batch_crc(cur->num, p + KV_HDR_LEN, len - KV_HDR_LEN));
	memcpy(p, kv->scratch.data, KV_HDR_LEN);
	if (kvj_crash_now(kv)) {
		/* A torn write, the case recovery must cut; the process is
		 * going away, so the result does not matter. */
		(void)pwrite_all(cur->fd, p, len / 2, (off_t)cur->size);
		_exit(KV_CRASH_STATUS);
	}
	if (kv->enospc_at != 0 && --kv->enospc_at == 0) {
		(void)pwrite_all(cur->fd, p, len / 2, (off_t)cur->size);
		return write_failed(kv, cur, ENOSPC);
	}
	if (pwrite_all(cur->fd, p, len, (off_t)cur->size) == -1)
		return write_failed(kv, cur, errno);
	cur->size += len;
	cur->records += kv->npending;
	cur->dirty = true;
	kv->unsynced += kv->npending;
	kv->unsynced_bytes += len;
	kv->npending = 0;
	kv->written++;
	wbuf_reset(&kv->batch);
	return 0;
}

/* Syncs, in the caller, the directory if a segment was created and every
 * segment written since its last sync. */
int
kvj_sync_inline(struct kv *kv)
{
	bool synced = false;

	if (kv->dir_dirty) {
		kvj_crash_step(kv);
		if (kvj_sync_fd(kv->dirfd, 0) == -1) {
			log_warn("store %s: fsync of the directory", kv->label);
			kv->failed = 1;
			return -1;
		}
		kv->dir_dirty = false;
	}
	for (size_t i = 0; i < kv->nsegs; i++) {
		struct kv_seg *s = &kv->segs[i];

		if (!s->dirty)
			continue;
		kvj_crash_step(kv);
		if (kvj_sync_fd(s->fd, 1) == -1) {
			log_warn("store %s: journal fdatasync", kv->label);
			kv->failed = 1;
			return -1;
		}
		s->dirty = false;
		synced = true;
	}
	if (synced) {
		kv->st.commits++;
		kv->st.committed += kv->unsynced;
		kv->unsynced = 0;
	}
	kv->unsynced_bytes = 0;
	kv->durable = kv->written;
	return 0;
}

/* Ends the current segment with an end record, synced: nothing is
 * pending (the caller makes sure). */
static int
end_segment(struct kv *kv)
{
	if (kv->nsegs == 0)
		return 0;
	if (kv->npending != 0) {
		errno = EBUSY;
		return -1;
	}
	if (batch_room(kv, 1) == 0) {
		put_u8(&kv->batch, OP_END);
		kv->npending = 1;
		if (kvj_write(kv) == 0) {
			kv->unsynced--;		/* no record of the caller's */
			return kvj_sync_inline(kv);
		}
	}
	wbuf_reset(&kv->batch);		/* nothing else may follow it */
	kv->npending = 0;
	return -1;
}

/* Tells the page cache that the bytes of segment s below upto will not be
 * read again (kv_forget_before), KV_COLD_STEP at a time.  Each range is
 * told twice, a step apart: the first time starts writing the pages that
 * are still dirty (sync_policy none) and drops the clean ones, the second
 * drops those written since.  Only advice: a read of a forgotten byte
 * reads the disk. */
void
kvj_forget(struct kv *kv, struct kv_seg *s, uint64_t upto)
{
	int rc;

	upto -= upto % KV_COLD_STEP;
	if (s->fd == -1 || upto <= s->cold)
		return;
	rc = posix_fadvise(s->fd, (off_t)s->cold_from, (off_t)(upto - s->cold_from),
	    POSIX_FADV_DONTNEED);
	if (rc != 0)
		log_debug("store %s: posix_fadvise: %s", kv->label, strerror(rc));
	s->cold_from = s->cold;
	s->cold = upto;
}

/* The spare's file as segment path, or -1. */
static int
reuse_spare(struct kv *kv, const char *path, bool *reused)
{
	int fd;

	if (!kv->spare)
		return -1;
	kv->spare = false;
	if (rename(kv->sparepath, path) == -1) {
		log_warn("store %s: rename %s", kv->label, kv->sparepath);
		return -1;
	}
	if ((fd = open(path, O_RDWR | O_CLOEXEC)) == -1) {
		/* Not left as a next segment of old bytes (kvj_create_segment
		 * tries a new file, and goes on in the current one if that
		 * fails too). */
		log_warn("store %s: %s", kv->label, path);
		if (unlink(path) == -1)
			log_warn("store %s: unlink %s", kv->label, path);
	}
	*reused = fd != -1;
	return fd;
}

/* Creates segment num, empty, as the one to write to, in the spare's file
 * if there is one; the current segment is ended first.  Its directory
 * entry becomes durable with the next sync (dir_dirty). */
int
kvj_create_segment(struct kv *kv, uint32_t num, char **err)
{
	char *path = kvs_path(kv, num);
	struct kv_seg *s;
	bool reused = false;
	int fd;

	if (end_segment(kv) == -1) {
		xasprintf(err, "ending segment %" PRIu32 ": %s", kvs_current(kv)->num,
		    strerror(errno));
		free(path);
		return -1;
	}
	fd = reuse_spare(kv, path, &reused);
	if (fd == -1)
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		/* The current segment stays the one written to: an end record
		 * only ends a segment that has a next one. */
		xasprintf(err, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	s = kvs_find(kv, num);
	if (s == NULL)
		s = kvs_add(kv, num);
	else if (s->fd != -1)
		(void)close(s->fd);
	s->fd = fd;
	s->size = 0;
	s->records = 0;
	s->dirty = false;
	s->reusable = true;
	s->reused = reused;
	kv->dir_dirty = true;
	return 0;
}

/* A spare left by a process that did not close the store is removed, not
 * reused: if a crash lost its rename into the next segment (made durable
 * only by the next sync), it holds batches of that segment, which a later
 * replay would take for new ones once the file is that segment again.
 * The fsync of the directory at open makes the removal durable. */
void
kvj_remove_leftover_spare(struct kv *kv)
{
	if (unlink(kv->sparepath) == -1 && errno != ENOENT)
		log_warn("store %s: unlink %s", kv->label, kv->sparepath);
}

int
kvj_trim_current(struct kv *kv)
{
	struct kv_seg *cur = kvs_current(kv);
	struct stat st;

	if (!cur->reused || cur->fd < 0)
		return 0;
	if (fstat(cur->fd, &st) == -1 || ((uint64_t)st.st_size > cur->size &&
	    kvj_truncate(cur->fd, cur->size) == -1)) {
		log_warn("store %s: cutting the end of segment %" PRIu32, kv->label, cur->num);
		return -1;
	}
	return 0;
}

/* A closed store keeps no spare: its disk is the store's again. */
void
kvj_drop_spare(struct kv *kv)
{
	if (kv->spare && unlink(kv->sparepath) == -1 && errno != ENOENT)
		log_warn("store %s: unlink %s", kv->label, kv->sparepath);
	kv->spare = false;
}
