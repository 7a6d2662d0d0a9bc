/* The key/value store: the in-memory index, opening (the checkpoint is
 * loaded here, the journal replayed in kvjournal.c), closing, and the
 * record API.  See kvstore.h for the design. */
#include "kvstore_int.h"

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

/* Bytewise, and a key sorts before every longer key it is a prefix of. */
int
kv_node_cmp(struct kv_node *a, struct kv_node *b)
{
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	int c = n ? memcmp(a->key, b->key, n) : 0;

	if (c != 0)
		return c;
	return (a->klen > b->klen) - (a->klen < b->klen);
}

RB_GENERATE(kv_tree, kv_node, entry, kv_node_cmp)

/* The node of key, or with nearest the first node not below it. */
static struct kv_node *
node_find(struct kv *kv, const void *key, size_t klen, int nearest)
{
	struct kv_node q;

	if (klen > KV_KEY_MAX)
		return NULL;
	q.key = key;
	q.klen = (uint16_t)klen;
	if (nearest)
		return RB_NFIND(kv_tree, &kv->tree, &q);
	return RB_FIND(kv_tree, &kv->tree, &q);
}

/* Records that key now has a value of vlen bytes.  A small value is
 * copied into memory; a larger one is only located (where, off), so that
 * memory grows with the number of keys, not with the payload. */
void
kvi_set(struct kv *kv, const void *key, size_t klen, const void *val, size_t vlen,
    enum kv_where where, uint64_t off)
{
	struct kv_node *n = node_find(kv, key, klen, 0);

	if (n == NULL) {
		n = xcalloc(1, sizeof(*n) + klen);
		memcpy(n + 1, key, klen);
		n->key = (const uint8_t *)(n + 1);
		n->klen = (uint16_t)klen;
		RB_INSERT(kv_tree, &kv->tree, n);
		kv->st.keys++;
		kv->st.live_bytes += klen;
	} else {
		kv->st.live_bytes -= n->vlen;
		free(n->sval);
		n->sval = NULL;
	}
	n->vlen = (uint32_t)vlen;
	kv->st.live_bytes += vlen;
	if (vlen <= KV_SMALL_MAX) {
		n->where = KV_IN_MEM;
		n->sval = xmemdup(val, vlen);
	} else {
		n->where = (uint8_t)where;
		n->off = off;
	}
}

void
kvi_del(struct kv *kv, const void *key, size_t klen)
{
	struct kv_node *n = node_find(kv, key, klen, 0);

	if (n == NULL)
		return;
	RB_REMOVE(kv_tree, &kv->tree, n);
	kv->st.keys--;
	kv->st.live_bytes -= n->klen + (uint64_t)n->vlen;
	free(n->sval);
	free(n);
}

static int
load_journal(struct kv *kv, struct kv_node *n, uint8_t **out)
{
	uint8_t *v;
	ssize_t r;

	if (n->off >= kv->jsize) {
		/* Put but not yet written: it is in the pending batch. */
		*out = xmemdup(kv->batch.data + (n->off - kv->jsize), n->vlen);
		return 0;
	}
	v = xmalloc((size_t)n->vlen + 1);
	r = kvj_pread(kv->jfd, v, n->vlen, n->off);
	if (r != (ssize_t)n->vlen) {
		if (r >= 0)
			errno = EIO;	/* the journal is shorter than the index says */
		log_warn("store %s: reading a value at journal offset %" PRIu64,
		    kv->label, n->off);
		free(v);
		return -1;
	}
	v[n->vlen] = '\0';
	*out = v;
	return 0;
}

static int
load_db(struct kv *kv, struct kv_node *n, uint8_t **out)
{
	datum k, d;

	k.dptr = (char *)n->key;
	k.dsize = n->klen;
	d = gdbm_fetch(kv->db, k);
	if (d.dptr == NULL || (size_t)d.dsize != n->vlen) {
		log_warnx("store %s: a value is missing from the checkpoint: %s",
		    kv->label, d.dptr == NULL ? gdbm_db_strerror(kv->db) : "wrong size");
		free(d.dptr);
		errno = EIO;
		return -1;
	}
	*out = xrealloc(d.dptr, (size_t)n->vlen + 1);
	(*out)[n->vlen] = '\0';
	return 0;
}

/* A malloc'd, NUL-terminated copy of the value of n. */
int
kvi_load(struct kv *kv, struct kv_node *n, uint8_t **out)
{
	switch (n->where) {
	case KV_IN_MEM:
		*out = xmemdup(n->sval, n->vlen);
		return 0;
	case KV_IN_JOURNAL:
		return load_journal(kv, n, out);
	default:
		return load_db(kv, n, out);
	}
}

static void
kv_free(struct kv *kv)
{
	struct kv_node *n, *next;

	/* Everything worth keeping was synced before; a close error on a
	 * descriptor that only reads or is already synced changes nothing. */
	if (kv->db != NULL)
		(void)gdbm_close(kv->db);
	if (kv->jfd != -1)
		(void)close(kv->jfd);
	if (kv->dirfd != -1)
		(void)close(kv->dirfd);
	RB_FOREACH_SAFE(n, kv_tree, &kv->tree, next) {
		RB_REMOVE(kv_tree, &kv->tree, n);
		free(n->sval);
		free(n);
	}
	wbuf_free(&kv->batch);
	wbuf_free(&kv->scratch);
	free(kv->label);
	free(kv->dbpath);
	free(kv->tmppath);
	free(kv->jpath);
	free(kv);
}

static struct kv *
kv_alloc(const char *dir, const char *name, uint64_t checkpoint_bytes)
{
	struct kv *kv = xcalloc(1, sizeof(*kv));
	const char *env = getenv("KV_CRASH_AT");

	xasprintf(&kv->label, "%s/%s", dir, name);
	xasprintf(&kv->dbpath, "%s.db", kv->label);
	xasprintf(&kv->tmppath, "%s.db.tmp", kv->label);
	xasprintf(&kv->jpath, "%s.journal", kv->label);
	kv->dirfd = kv->jfd = -1;
	RB_INIT(&kv->tree);
	wbuf_init(&kv->batch);
	wbuf_init(&kv->scratch);
	kv->ckpt_bytes = checkpoint_bytes;
	if (env != NULL)
		kv->crash_at = (unsigned)strtoul(env, NULL, 10);
	return kv;
}

/* Opens the directory and the journal, and takes the journal's lock:
 * two processes appending to one store would corrupt it. */
static int
open_files(struct kv *kv, const char *dir, char **err)
{
	kv->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (kv->dirfd == -1)
		goto fail_dir;
	kv->jfd = open(kv->jpath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (kv->jfd == -1)
		goto fail_journal;
	while (flock(kv->jfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			xasprintf(err, "%s: in use by another process", kv->jpath);
		else
			xasprintf(err, "%s: lock: %s", kv->jpath, strerror(errno));
		return -1;
	}
	/* A checkpoint that was being written when the process died. */
	if (unlink(kv->tmppath) == -1 && errno != ENOENT) {
		xasprintf(err, "%s: unlink: %s", kv->tmppath, strerror(errno));
		return -1;
	}
	return 0;
fail_dir:
	xasprintf(err, "%s: %s", dir, strerror(errno));
	return -1;
fail_journal:
	xasprintf(err, "%s: %s", kv->jpath, strerror(errno));
	return -1;
}

static int
load_key(struct kv *kv, datum k, char **err)
{
	datum v = gdbm_fetch(kv->db, k);

	if (v.dptr == NULL || k.dsize <= 0 || k.dsize > KV_KEY_MAX ||
	    (unsigned)v.dsize > KV_VAL_MAX) {
		xasprintf(err, "%s: bad record: %s", kv->dbpath,
		    v.dptr == NULL ? gdbm_db_strerror(kv->db) : "bad size");
		free(v.dptr);
		return -1;
	}
	kvi_set(kv, k.dptr, (size_t)k.dsize, v.dptr, (size_t)v.dsize, KV_IN_DB, 0);
	free(v.dptr);
	return 0;
}

/* Indexes every key of the checkpoint, if there is one yet. */
static int
load_checkpoint(struct kv *kv, char **err)
{
	struct stat sb;
	datum k, next;

	if (stat(kv->dbpath, &sb) == -1) {
		if (errno == ENOENT)
			return 0;
		xasprintf(err, "%s: %s", kv->dbpath, strerror(errno));
		return -1;
	}
	kv->db = gdbm_open(kv->dbpath, 0, GDBM_READER | GDBM_NOLOCK | GDBM_CLOEXEC, 0, NULL);
	if (kv->db == NULL) {
		xasprintf(err, "%s: %s", kv->dbpath, gdbm_strerror(gdbm_errno));
		return -1;
	}
	for (k = gdbm_firstkey(kv->db); k.dptr != NULL; k = next) {
		if (load_key(kv, k, err) == -1) {
			free(k.dptr);
			return -1;
		}
		next = gdbm_nextkey(kv->db, k);
		free(k.dptr);
	}
	if (gdbm_last_errno(kv->db) != GDBM_ITEM_NOT_FOUND) {
		xasprintf(err, "%s: %s", kv->dbpath, gdbm_db_strerror(kv->db));
		return -1;
	}
	return 0;
}

struct kv *
kv_open(const char *dir, const char *name, uint64_t checkpoint_bytes, char **err)
{
	struct kv *kv = kv_alloc(dir, name, checkpoint_bytes);

	*err = NULL;
	if (open_files(kv, dir, err) == -1 || load_checkpoint(kv, err) == -1 ||
	    kvj_replay(kv, err) == -1)
		goto fail;
	/* The journal may have just been created and the temporary file
	 * removed: make both facts durable before anything is committed. */
	while (fsync(kv->dirfd) == -1) {
		if (errno != EINTR) {
			xasprintf(err, "%s: fsync: %s", dir, strerror(errno));
			goto fail;
		}
	}
	return kv;
fail:
	kv_free(kv);
	return NULL;
}

int
kv_close(struct kv *kv)
{
	int rc = 0;

	if (kv == NULL)
		return 0;
	if (kv->failed || kvj_sync(kv) == -1)
		rc = -1;
	else if (kv->jsize > 0 && kv_checkpoint(kv) == -1)
		rc = -1;
	kv_free(kv);
	return rc;
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
kv_put(struct kv *kv, const void *key, size_t klen, const void *val, size_t vlen)
{
	uint64_t off;

	if (kv_usable(kv) == -1)
		return -1;
	if (klen == 0 || klen > KV_KEY_MAX || vlen > KV_VAL_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (kvj_add_put(kv, key, klen, val, vlen, &off) == -1)
		return -1;
	kvi_set(kv, key, klen, val, vlen, KV_IN_JOURNAL, off);
	return 0;
}

int
kv_del(struct kv *kv, const void *key, size_t klen)
{
	if (kv_usable(kv) == -1)
		return -1;
	/* Deleting what is not there needs no record: replay would not
	 * find it either. */
	if (node_find(kv, key, klen, 0) == NULL)
		return 0;
	if (kvj_add_del(kv, key, klen) == -1)
		return -1;
	kvi_del(kv, key, klen);
	return 0;
}

int
kv_get(struct kv *kv, const void *key, size_t klen, void **val, size_t *vlen)
{
	struct kv_node *n = node_find(kv, key, klen, 0);
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
	return node_find(kv, key, klen, 0) != NULL;
}

size_t
kv_pending(const struct kv *kv)
{
	return kv->npending;
}

int
kv_scan(struct kv *kv, const void *prefix, size_t plen, kv_scan_cb *cb, void *arg)
{
	struct kv_node *n;
	int rc;

	for (n = node_find(kv, prefix, plen, 1); n != NULL; n = RB_NEXT(kv_tree, &kv->tree, n)) {
		if (n->klen < plen || (plen > 0 && memcmp(n->key, prefix, plen) != 0))
			break;
		if ((rc = cb(n->key, n->klen, arg)) != 0)
			return rc;
	}
	return 0;
}

void
kv_get_stats(const struct kv *kv, struct kv_stats *st)
{
	*st = kv->st;
	st->journal_bytes = kv->jsize;
}

void
kv_set_crash_at(struct kv *kv, unsigned n)
{
	kv->crash_at = n;
	kv->steps = 0;
}
