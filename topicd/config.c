/* CONFIG from the master: settings, accepted at any time (reload), and
 * the master's boot id, which tells us when a new master took over. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

/* A master of another release (an upgrade while it runs): say so and
 * exit with the status that tells the master not to restart us. */
void
config_check_version(struct topicd *td, const void *body, size_t len)
{
	uint32_t v = ipc_version_of(body, len);

	if (v == IPC_PROTO_VERSION)
		return;
	log_errx("topic %s: the master speaks IPC version %u, this topicd %u (release %s): "
	    "a master and a topicd of different releases; restart the broker after an "
	    "upgrade", td->topic, v, IPC_PROTO_VERSION, BROKER_VERSION);
	exit(TOPICD_EXIT_VERSION);
}

void
config_apply(struct topicd *td, const struct rec_config *r)
{
	uint64_t ckpt = r->checkpoint_kib ? (uint64_t)r->checkpoint_kib * 1024 :
	    TD_CHECKPOINT_DEFAULT;
	int level = r->log_level > LOG_LVL_DEBUG ? LOG_LVL_DEBUG : r->log_level;
	const char *file = r->log_file[0] != '\0' ? r->log_file : NULL;

	/* -v wins: it is asked for when debugging one topic. */
	level = td->verbose ? LOG_LVL_DEBUG : level;
	/* A CONFIG follows every reload of the master, which is also when a
	 * rotated log file is reopened, or log_dest changed: a topicd that
	 * runs through the reload logs where the master now does, not
	 * where it did when the topicd started. */
	if (r->log_dests != 0 && !log_dests_are(r->log_dests, file) &&
	    log_init("topicd", (enum log_level)level, r->log_dests, file) == -1)
		log_warnx("topic %s: cannot open log file %s: %s; still writing "
		    "where it did", td->topic, r->log_file, strerror(errno));
	/* A file kept through log_init (the same path) is reopened too: a
	 * logrotate may have moved it in the same reload. */
	log_reopen();
	log_set_level((enum log_level)level);
	td->retry_ms = r->retry_ms ? r->retry_ms : TD_RETRY_MS_DEFAULT;
	td->max_attempts = r->max_attempts ? r->max_attempts : TD_ATTEMPTS_DEFAULT;
	td->max_queued = r->max_queued;
	td->max_bytes = r->max_bytes;
	td->min_free = r->min_free;
	td->sync = r->sync;
	if (td->kv == NULL)
		td->checkpoint_bytes = ckpt;
	else if (ckpt != td->checkpoint_bytes)
		log_notice("topic %s: the new checkpoint size applies from the next start",
		    td->topic);
	free(td->dlq_topic);
	td->dlq_topic = xstrdup(r->dlq_topic);
	td->conf_boot_id = r->boot_id;
	td->seq_floor = r->seq_floor;
	td->configured = true;
	log_debug("topic %s: config: retry %u ms, %u attempts, max %llu bytes, "
	    "min free %llu bytes, dead letters to %s", td->topic, td->retry_ms,
	    td->max_attempts, (unsigned long long)td->max_bytes,
	    (unsigned long long)td->min_free, td->dlq_topic);
}

/* A connection-scoped owner ("j/BOOTID/CONN": a JSON-lines publisher or
 * a clean MQTT session) died with the master that started it.  Under a
 * new master nobody will release what it staged, and it was acknowledged
 * as stored: release it now.  Likewise the cursors of clean MQTT sessions
 * ("c/..."): nobody will come back for them. */
void
config_boot(struct topicd *td)
{
	unsigned n;

	if (td->kv == NULL || !td->configured || td->conf_boot_id == td->boot_id)
		return;
	n = stage_release_prefix(td, "Sj/", 3);
	if (n > 0)
		log_info("topic %s: released %u messages staged under an earlier master",
		    td->topic, n);
	n = share_drop_members_prefix(td, "c/");
	if (n > 0)
		log_info("topic %s: %u clean-session members of an earlier master left their "
		    "groups", td->topic, n);
	n = sub_delete_prefix(td, "c/");
	if (n > 0)
		log_info("topic %s: dropped %u clean-session subscribers of an earlier master",
		    td->topic, n);
	td->boot_id = td->conf_boot_id;
	td->meta_dirty = true;
	td->need_sync = true;
}
