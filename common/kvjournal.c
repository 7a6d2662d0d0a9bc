/* The store's journal: batch framing, group commit, recovery, and
 * checkpoints into a new gdbm file.
 *
 * A batch on disk is
 *	u32 magic "KVJ1"  u32 body length  u32 CRC32 of the body  body
 * and the body is a sequence of records
 *	u8 1 (put)  u32 key length  key  u32 value length  value
 *	u8 2 (del)  u32 key length  key
 * all integers little-endian (marshal.h).  Recovery applies whole batches
 * only, so a batch is atomic. */
#include "kvstore_int.h"

#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "fdio.h"
#include "log.h"
#include "xmalloc.h"

#define KV_MAGIC	0x314a564bU	/* "KVJ1" as little-endian bytes */
#define KV_CRASH_STATUS	99

enum { OP_PUT = 1, OP_DEL = 2 };

/* Counts one write step for the crash tests; true at the chosen one. */
static int
crash_now(struct kv *kv)
{
	return kv->crash_at != 0 && ++kv->steps == kv->crash_at;
}

static void
crash_step(struct kv *kv)
{
	if (crash_now(kv))
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

static int
sync_fd(int fd, int data_only)
{
	/* Only EINTR is retried: after a failed sync the kernel may have
	 * dropped the dirty pages, and a second call could lie. */
	while ((data_only ? fdatasync(fd) : fsync(fd)) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

static int
truncate_fd(int fd, uint64_t len)
{
	while (ftruncate(fd, (off_t)len) == -1)
		if (errno != EINTR)
			return -1;
	return sync_fd(fd, 0);
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

/* Appends a put to the pending batch; *off is where the value will be in
 * the journal. */
int
kvj_add_put(struct kv *kv, const void *key, size_t klen, const void *val, size_t vlen,
    uint64_t *off)
{
	if (batch_room(kv, 1 + 4 + klen + 4 + vlen) == -1)
		return -1;
	put_u8(&kv->batch, OP_PUT);
	put_bytes(&kv->batch, key, klen);
	put_u32(&kv->batch, (uint32_t)vlen);
	*off = kv->jsize + kv->batch.len;
	put_raw(&kv->batch, val, vlen);
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

/* Frames the pending batch and writes it with one write() loop. */
static int
journal_write(struct kv *kv)
{
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
	put_u32(&kv->scratch, (uint32_t)(len - KV_HDR_LEN));
	put_u32(&kv->scratch, (uint32_t)crc32(0, p + KV_HDR_LEN, (uInt)(len - KV_HDR_LEN)));
	memcpy(p, kv->scratch.data, KV_HDR_LEN);
	if (crash_now(kv)) {
		/* A torn write, the case recovery must cut; the process is
		 * going away, so the result does not matter. */
		(void)write_all(kv->jfd, p, len / 2);
		_exit(KV_CRASH_STATUS);
	}
	if (write_all(kv->jfd, p, len) == -1) {
		log_warn("store %s: journal write", kv->label);
		kv->failed = 1;
		return -1;
	}
	kv->jsize += len;
	kv->unsynced += kv->npending;
	kv->dirty = 1;
	kv->npending = 0;
	wbuf_reset(&kv->batch);
	return 0;
}

/* Writes the pending batch and syncs whatever was written since the last
 * sync. */
int
kvj_sync(struct kv *kv)
{
	if (journal_write(kv) == -1)
		return -1;
	if (!kv->dirty)
		return 0;
	crash_step(kv);
	if (sync_fd(kv->jfd, 1) == -1) {
		log_warn("store %s: journal fdatasync", kv->label);
		kv->failed = 1;
		return -1;
	}
	kv->dirty = 0;
	kv->st.commits++;
	kv->st.committed += kv->unsynced;
	kv->unsynced = 0;
	return 0;
}

int
kv_flush(struct kv *kv)
{
	return journal_write(kv);
}

int
kv_commit(struct kv *kv)
{
	if (kvj_sync(kv) == -1)
		return -1;
	if (kv->jsize > kv->ckpt_bytes && kv->jsize > kv->st.live_bytes &&
	    kv->jsize >= kv->ckpt_defer && kv_checkpoint(kv) == -1) {
		/* The batch is durable all the same.  Unless the store is
		 * now unusable, carry on with the journal, and retry only
		 * once it has doubled rather than at every commit. */
		if (kv->failed)
			return -1;
		kv->ckpt_defer = kv->jsize * 2;
	}
	return 0;
}

/* Checks (apply 0) or applies (apply 1) the records of a batch whose body
 * starts at journal offset off. */
static int
batch_parse(struct kv *kv, const uint8_t *body, size_t len, uint64_t off, int apply)
{
	struct rbuf r;
	const uint8_t *k, *v;
	size_t klen, vlen;
	uint8_t op;

	rbuf_init(&r, body, len);
	while (r.left > 0) {
		if (get_u8(&r, &op) == -1 || get_bytes(&r, &k, &klen) == -1 ||
		    klen == 0 || klen > KV_KEY_MAX)
			return -1;
		if (op == OP_PUT) {
			if (get_bytes(&r, &v, &vlen) == -1 || vlen > KV_VAL_MAX)
				return -1;
			if (apply)
				kvi_set(kv, k, klen, v, vlen, KV_IN_JOURNAL,
				    off + (uint64_t)(v - body));
		} else if (op == OP_DEL) {
			if (apply)
				kvi_del(kv, k, klen);
		} else
			return -1;
		if (apply)
			kv->st.recovered++;
	}
	return get_end(&r);
}

/* Reads the batch at off into *buf: 1 if it is whole and its CRC matches,
 * 0 if it is torn or corrupt (the end of the valid journal), -1 on an
 * error. */
static int
batch_read(struct kv *kv, uint64_t off, uint64_t size, uint8_t **buf, size_t *cap,
    uint32_t *len)
{
	uint8_t hdr[KV_HDR_LEN];
	uint32_t magic, crc;
	struct rbuf r;
	ssize_t n;

	if (size - off < KV_HDR_LEN)
		return 0;
	if ((n = kvj_pread(kv->jfd, hdr, sizeof(hdr), off)) != KV_HDR_LEN)
		return n == -1 ? -1 : 0;
	rbuf_init(&r, hdr, sizeof(hdr));
	get_u32(&r, &magic);
	get_u32(&r, len);
	get_u32(&r, &crc);
	if (get_end(&r) == -1 || magic != KV_MAGIC || *len == 0 ||
	    *len > KV_BATCH_MAX || *len > size - off - KV_HDR_LEN)
		return 0;
	if (*len > *cap) {
		*buf = xrealloc(*buf, *len);
		*cap = *len;
	}
	if ((n = kvj_pread(kv->jfd, *buf, *len, off + KV_HDR_LEN)) != (ssize_t)*len)
		return n == -1 ? -1 : 0;
	if (crc32(0, *buf, *len) != crc)
		return 0;
	return 1;
}

/* Replays the journal over the checkpoint, batch by batch, and cuts it at
 * the first batch that is not whole. */
int
kvj_replay(struct kv *kv, char **err)
{
	struct stat sb;
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint64_t off = 0, size;
	uint32_t len;
	int rc;

	if (fstat(kv->jfd, &sb) == -1)
		goto fail;
	size = (uint64_t)sb.st_size;
	while ((rc = batch_read(kv, off, size, &buf, &cap, &len)) == 1) {
		if (batch_parse(kv, buf, len, 0, 0) == -1) {
			log_warnx("store %s: malformed batch at journal offset %" PRIu64,
			    kv->label, off);
			break;
		}
		(void)batch_parse(kv, buf, len, off + KV_HDR_LEN, 1);
		off += KV_HDR_LEN + len;
	}
	free(buf);
	if (rc == -1)
		goto fail;
	kv->jsize = off;
	if (off < size) {
		log_warnx("store %s: cutting %" PRIu64 " torn bytes from the journal"
		    " at offset %" PRIu64, kv->label, size - off, off);
		if (truncate_fd(kv->jfd, off) == -1)
			goto fail;
		kv->st.truncated = size - off;
	}
	return 0;
fail:
	xasprintf(err, "%s: %s", kv->jpath, strerror(errno));
	return -1;
}

static int
ckpt_store(struct kv *kv, GDBM_FILE tmp, struct kv_node *n)
{
	uint8_t *val;
	datum k, d;
	int rc;

	if (kvi_load(kv, n, &val) == -1)
		return -1;
	k.dptr = (char *)n->key;
	k.dsize = n->klen;
	d.dptr = (char *)val;
	d.dsize = (int)n->vlen;
	rc = gdbm_store(tmp, k, d, GDBM_REPLACE);
	free(val);
	if (rc != 0) {
		log_warnx("store %s: writing %s: %s", kv->label, kv->tmppath,
		    gdbm_db_strerror(tmp));
		return -1;
	}
	return 0;
}

/* Writes every live key into a new gdbm file beside the checkpoint and
 * makes it durable.  No per-store GDBM_SYNC: one sync at the end. */
static int
ckpt_write(struct kv *kv)
{
	GDBM_FILE tmp;
	struct kv_node *n;
	uint64_t i = 0;
	int crash = crash_now(kv), rc = -1;

	tmp = gdbm_open(kv->tmppath, 0, GDBM_NEWDB | GDBM_NOLOCK | GDBM_CLOEXEC, 0600, NULL);
	if (tmp == NULL) {
		log_warnx("store %s: creating %s: %s", kv->label, kv->tmppath,
		    gdbm_strerror(gdbm_errno));
		return -1;
	}
	RB_FOREACH(n, kv_tree, &kv->tree) {
		/* Die half-way through, leaving a partial file behind. */
		if (crash && i++ >= kv->st.keys / 2)
			_exit(KV_CRASH_STATUS);
		if (ckpt_store(kv, tmp, n) == -1)
			goto out;
	}
	if (crash)
		_exit(KV_CRASH_STATUS);
	if (gdbm_sync(tmp) != 0) {
		log_warnx("store %s: syncing %s: %s", kv->label, kv->tmppath,
		    gdbm_db_strerror(tmp));
		goto out;
	}
	crash_step(kv);
	if (sync_fd(gdbm_fdesc(tmp), 0) == -1) {
		log_warn("store %s: fsync %s", kv->label, kv->tmppath);
		goto out;
	}
	rc = 0;
out:
	if (gdbm_close(tmp) != 0 && rc == 0) {
		log_warnx("store %s: closing %s: %s", kv->label, kv->tmppath,
		    gdbm_strerror(gdbm_errno));
		rc = -1;
	}
	return rc;
}

/* Renames the new file over the checkpoint and switches lookups to it.
 * A failure after the rename leaves the store unusable: what is on disk
 * is still consistent, but this process no longer knows which file its
 * index describes. */
static int
ckpt_install(struct kv *kv)
{
	GDBM_FILE db;
	struct kv_node *n;

	crash_step(kv);
	if (rename(kv->tmppath, kv->dbpath) == -1) {
		log_warn("store %s: rename %s", kv->label, kv->tmppath);
		return -1;
	}
	kv->failed = 1;
	crash_step(kv);
	if (sync_fd(kv->dirfd, 0) == -1) {
		log_warn("store %s: fsync of the directory", kv->label);
		return -1;
	}
	db = gdbm_open(kv->dbpath, 0, GDBM_READER | GDBM_NOLOCK | GDBM_CLOEXEC, 0, NULL);
	if (db == NULL) {
		log_warnx("store %s: reopening %s: %s", kv->label, kv->dbpath,
		    gdbm_strerror(gdbm_errno));
		return -1;
	}
	if (kv->db != NULL)
		(void)gdbm_close(kv->db);	/* read-only: nothing to lose */
	kv->db = db;
	RB_FOREACH(n, kv_tree, &kv->tree)
		if (n->where == KV_IN_JOURNAL)
			n->where = KV_IN_DB;
	kv->failed = 0;
	return 0;
}

int
kv_checkpoint(struct kv *kv)
{
	if (kvj_sync(kv) == -1)
		return -1;
	if (ckpt_write(kv) == -1 || ckpt_install(kv) == -1) {
		/* Before the rename the old checkpoint and the journal
		 * still hold everything: drop the new file and go on. */
		if (!kv->failed && unlink(kv->tmppath) == -1 && errno != ENOENT)
			log_warn("store %s: unlink %s", kv->label, kv->tmppath);
		return -1;
	}
	/* Only now is the journal redundant. */
	crash_step(kv);
	if (truncate_fd(kv->jfd, 0) == -1) {
		log_warn("store %s: truncating the journal", kv->label);
		kv->failed = 1;
		return -1;
	}
	kv->jsize = 0;
	kv->ckpt_defer = 0;
	kv->st.checkpoints++;
	return 0;
}
