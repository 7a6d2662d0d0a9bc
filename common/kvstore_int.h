/* Internals of the key/value store, shared by kvstore.c (index, open,
 * close, the record API) and kvjournal.c (journal, recovery, checkpoints).
 * Nothing outside those two files includes this. */
#ifndef COMMON_KVSTORE_INT_H
#define COMMON_KVSTORE_INT_H

#include <bsd/sys/tree.h>
#include <gdbm.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvstore.h"
#include "marshal.h"

#define KV_SMALL_MAX	64		/* values up to this size live in memory */
#define KV_KEY_MAX	65535
#define KV_VAL_MAX	(1U << 30)
#define KV_BATCH_MAX	0x7ff00000U	/* body bytes in one journal batch */
#define KV_HDR_LEN	12		/* magic, body length, CRC32 */

/* Where the value of a key is. */
enum kv_where {
	KV_IN_MEM,			/* n->sval */
	KV_IN_DB,			/* the checkpoint: gdbm_fetch() */
	KV_IN_JOURNAL			/* at n->off in the journal, or in the
					 * pending batch when n->off >= kv->jsize */
};

struct kv_node {
	RB_ENTRY(kv_node)	 entry;
	const uint8_t		*key;	/* the bytes follow the node */
	uint8_t			*sval;	/* KV_IN_MEM only */
	uint64_t		 off;	/* KV_IN_JOURNAL only */
	uint32_t		 vlen;
	uint16_t		 klen;
	uint8_t			 where;
};

RB_HEAD(kv_tree, kv_node);
RB_PROTOTYPE(kv_tree, kv_node, entry, kv_node_cmp)

struct kv {
	char		*label;		/* DIR/NAME, for messages */
	char		*dbpath;
	char		*tmppath;
	char		*jpath;
	int		 dirfd;
	int		 jfd;
	GDBM_FILE	 db;		/* the checkpoint; NULL if none yet */
	struct kv_tree	 tree;
	/* The pending batch, laid out as it will be written: KV_HDR_LEN bytes
	 * of room for the header, then the records.  It goes to journal
	 * offset jsize, so a value in it already has its final offset. */
	struct wbuf	 batch;
	struct wbuf	 scratch;	/* header encoding */
	size_t		 npending;
	uint64_t	 jsize;		/* journal bytes written */
	uint64_t	 unsynced;	/* records written, not yet synced */
	int		 dirty;		/* bytes written since the last sync */
	int		 failed;	/* a write or sync failed: refuse commits */
	uint64_t	 ckpt_bytes;
	uint64_t	 ckpt_defer;	/* after a failed checkpoint: wait for this */
	unsigned	 crash_at;
	unsigned	 steps;
	struct kv_stats	 st;
};

/* kvstore.c */
int	 kv_node_cmp(struct kv_node *, struct kv_node *);
void	 kvi_set(struct kv *, const void *, size_t, const void *, size_t,
	    enum kv_where, uint64_t);
void	 kvi_del(struct kv *, const void *, size_t);
int	 kvi_load(struct kv *, struct kv_node *, uint8_t **);

/* kvjournal.c */
int	 kvj_add_put(struct kv *, const void *, size_t, const void *, size_t, uint64_t *);
int	 kvj_add_del(struct kv *, const void *, size_t);
int	 kvj_sync(struct kv *);
int	 kvj_replay(struct kv *, char **);
ssize_t	 kvj_pread(int, void *, size_t, uint64_t);

#endif
