/* Stores of format 1 are converted once, at open.  Format 1 kept one
 * journal, DIR/NAME.journal, and checkpoints of plain values.  Every
 * record of both is put again into segment 1 (values written once more,
 * in the new journal), synced, and a checkpoint of format 2 replaces the
 * old file; only then is the old journal removed.  A crash before the
 * rename leaves format 1 as it was (the conversion starts again); after
 * it, the old journal is a leftover and is removed. */
#include "kvstore_int.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

static char *
old_journal(const struct kv *kv)
{
	char *p;

	xasprintf(&p, "%s.journal", kv->label);
	return p;
}

static bool
has_meta(GDBM_FILE db)
{
	datum k = { KV_META_KEY, KV_META_KLEN };

	return gdbm_exists(db, k) != 0;
}

/* *legacy: the store is of format 1 and must be converted. */
int
kvl_detect(struct kv *kv, bool *legacy, char **err)
{
	char *journal = old_journal(kv);
	bool has_journal = access(journal, F_OK) == 0, v2 = false;
	struct stat sb;
	GDBM_FILE db;

	*legacy = false;
	if (stat(kv->dbpath, &sb) == 0) {
		db = gdbm_open(kv->dbpath, 0, GDBM_READER | GDBM_NOLOCK | GDBM_CLOEXEC, 0, NULL);
		if (db == NULL) {
			xasprintf(err, "%s: %s", kv->dbpath, gdbm_strerror(gdbm_errno));
			free(journal);
			errno = EUCLEAN;
			return -1;
		}
		v2 = has_meta(db);
		(void)gdbm_close(db);		/* read only */
		*legacy = !v2;
	} else {
		*legacy = has_journal;
	}
	if (v2 && has_journal) {
		/* A conversion that ended before removing it. */
		if (unlink(journal) == -1)
			log_warn("store %s: unlink %s", kv->label, journal);
	}
	free(journal);
	return 0;
}

static int
reput_records(struct kv *kv, GDBM_FILE db, char **err)
{
	datum k, next, v;

	for (k = gdbm_firstkey(db); k.dptr != NULL; k = next) {
		v = gdbm_fetch(db, k);
		if (v.dptr == NULL || kv_put(kv, k.dptr, (size_t)k.dsize, v.dptr,
		    (size_t)v.dsize) == -1 || (kv->batch.len > (64u << 20) && kvj_write(kv) == -1)) {
			xasprintf(err, "%s: cannot convert a record", kv->dbpath);
			free(v.dptr);
			free(k.dptr);
			errno = EUCLEAN;
			return -1;
		}
		free(v.dptr);
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

static int
reput_checkpoint(struct kv *kv, char **err)
{
	GDBM_FILE db;
	int rc;

	db = gdbm_open(kv->dbpath, 0, GDBM_READER | GDBM_NOLOCK | GDBM_CLOEXEC, 0, NULL);
	if (db == NULL) {
		if (gdbm_errno == GDBM_FILE_OPEN_ERROR && errno == ENOENT)
			return 0;
		xasprintf(err, "%s: %s", kv->dbpath, gdbm_strerror(gdbm_errno));
		errno = EUCLEAN;
		return -1;
	}
	rc = reput_records(kv, db, err);
	(void)gdbm_close(db);		/* read only */
	return rc;
}

static int
reput_journal(struct kv *kv, char **err)
{
	char *path = old_journal(kv);
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd == -1) {
		rc = errno == ENOENT ? 0 : -1;
		if (rc == -1)
			xasprintf(err, "%s: %s", path, strerror(errno));
		free(path);
		return rc;
	}
	rc = kvj_convert_journal(kv, fd, path, err);
	(void)close(fd);		/* read only */
	free(path);
	return rc;
}

int
kvl_convert(struct kv *kv, char **err)
{
	char *journal;

	log_notice("store %s: converting from format 1", kv->label);
	kv->first_seg = kv->oldest_seg = 1;
	if (kvj_create_segment(kv, 1, err) == -1)
		return -1;
	if (reput_checkpoint(kv, err) == -1 || reput_journal(kv, err) == -1)
		return -1;
	if (kvj_write(kv) == -1 || kvj_sync_inline(kv) == -1 || kvc_begin(kv, true) == -1) {
		xasprintf(err, "%s: conversion failed: %s", kv->label, strerror(errno));
		return -1;
	}
	journal = old_journal(kv);
	if (unlink(journal) == -1 && errno != ENOENT)
		log_warn("store %s: unlink %s", kv->label, journal);
	free(journal);
	log_notice("store %s: converted: %llu keys", kv->label,
	    (unsigned long long)kv->st.keys);
	return 0;
}
