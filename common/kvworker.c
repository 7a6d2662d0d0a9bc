/* The store's worker thread: syncs and checkpoints, one job at a time,
 * so that the caller's event loop never waits for the disk.  The thread
 * touches nothing of the store but the job it is given (duplicated
 * descriptors, a snapshot, paths); the caller takes the finished job back
 * (kvw_collect) when the eventfd says so.  With kv->inline_jobs the job
 * runs in the caller instead (tests, and the last checkpoint at close). */
#include "kvstore_int.h"

#include <sys/eventfd.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

struct kv_job *
kvw_job_new(enum kv_job_kind kind)
{
	struct kv_job *j = xcalloc(1, sizeof(*j));

	j->kind = kind;
	j->dirfd = -1;
	atomic_init(&j->cancel, false);
	wbuf_init(&j->snap);
	return j;
}

void
kvw_job_free(struct kv_job *j)
{
	for (size_t i = 0; i < j->nfds; i++)
		(void)close(j->fds[i]);		/* duplicates, synced or not needed */
	if (j->dirfd != -1)
		(void)close(j->dirfd);
	free(j->fds);
	free(j->keep);
	for (size_t i = 0; i < j->ngone; i++)
		free(j->gone[i]);
	free(j->gone);
	free(j->spare_from);
	free(j->spare_to);
	free(j->tmppath);
	free(j->dbpath);
	free(j->what);
	wbuf_free(&j->snap);
	free(j);
}

static void
sync_run(struct kv_job *j)
{
	j->rc = 0;
	if (j->dirfd != -1) {
		kvj_crash_step(j->kv);
		if (kvj_sync_fd(j->dirfd, 0) == -1) {
			j->rc = -1;
			j->err = errno;
			j->what = xstrdup("fsync of the directory");
			return;
		}
	}
	for (size_t i = 0; i < j->nfds; i++) {
		kvj_crash_step(j->kv);
		if (kvj_sync_fd(j->fds[i], 1) == -1) {
			j->rc = -1;
			j->err = errno;
			j->what = xstrdup("journal fdatasync");
			return;
		}
	}
}

static void
run(struct kv_job *j)
{
	if (j->kind == JOB_SYNC)
		sync_run(j);
	else
		(void)kvc_run(j);
}

static void *
worker_main(void *arg)
{
	struct kv_worker *w = arg;
	struct kv_job *j;
	uint64_t one = 1;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->todo == NULL && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->todo == NULL)
			break;
		j = w->todo;
		w->todo = NULL;
		pthread_mutex_unlock(&w->mu);
		run(j);
		pthread_mutex_lock(&w->mu);
		w->done = j;
		pthread_cond_broadcast(&w->cv);
		/* The loop reads the eventfd; a full counter cannot happen. */
		while (write(w->efd, &one, sizeof(one)) == -1 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Signals stay with the caller's thread. */
static int
start(struct kv *kv)
{
	struct kv_worker *w = &kv->w;
	sigset_t all, old;
	int rc;

	if (w->started)
		return 0;
	if (w->efd == -1 && (w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("store %s: eventfd", kv->label);
		return -1;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		log_warn("store %s: cannot start its worker thread", kv->label);
		return -1;
	}
	w->started = true;
	return 0;
}

/* Hands j over; kv->job is it until collected.  Without a thread the job
 * is done here and now. */
int
kvw_submit(struct kv *kv, struct kv_job *j)
{
	struct kv_worker *w = &kv->w;

	j->kv = kv;
	kv->job = j;
	if (kv->inline_jobs || kv->crash_at != 0 || start(kv) == -1) {
		uint64_t one = 1;

		run(j);
		w->done = j;
		if (w->efd != -1)
			while (write(w->efd, &one, sizeof(one)) == -1 && errno == EINTR)
				;
		return 0;
	}
	pthread_mutex_lock(&w->mu);
	w->todo = j;
	pthread_mutex_unlock(&w->mu);
	/* After unlocking: woken under the lock, the worker would wake only
	 * to wait for the mutex, a second switch before every sync. */
	pthread_cond_broadcast(&w->cv);
	return 0;
}

/* The finished job, or NULL (still running, or none); wait: until it is. */
struct kv_job *
kvw_collect(struct kv *kv, bool wait)
{
	struct kv_worker *w = &kv->w;
	struct kv_job *j;
	uint64_t n;

	if (kv->job == NULL)
		return NULL;
	if (w->started)
		pthread_mutex_lock(&w->mu);
	while (wait && w->done == NULL && w->started)
		pthread_cond_wait(&w->cv, &w->mu);
	j = w->done;
	w->done = NULL;
	if (w->started)
		pthread_mutex_unlock(&w->mu);
	if (j != NULL) {
		kv->job = NULL;
		if (w->efd != -1)
			while (read(w->efd, &n, sizeof(n)) == -1 && errno == EINTR)
				;
	}
	return j;
}

void
kvw_stop(struct kv *kv)
{
	struct kv_worker *w = &kv->w;

	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->quit = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
	if (w->efd != -1)
		(void)close(w->efd);
	w->efd = -1;
}

/* Asks for a sync of everything written: the directory if a segment was
 * created, and every segment written since its last sync. */
int
kvw_sync_job(struct kv *kv)
{
	struct kv_job *j = kvw_job_new(JOB_SYNC);

	if (kv->dir_dirty && (j->dirfd = fcntl(kv->dirfd, F_DUPFD_CLOEXEC, 0)) == -1)
		goto fail;
	for (size_t i = 0; i < kv->nsegs; i++) {
		int fd;

		if (!kv->segs[i].dirty)
			continue;
		if ((fd = fcntl(kv->segs[i].fd, F_DUPFD_CLOEXEC, 0)) == -1)
			goto fail;
		j->fds = xreallocarray(j->fds, j->nfds + 1, sizeof(*j->fds));
		j->fds[j->nfds++] = fd;
	}
	kv->dir_dirty = false;
	for (size_t i = 0; i < kv->nsegs; i++)
		kv->segs[i].dirty = false;
	j->ticket = kv->written;
	j->records = kv->unsynced;
	kv->unsynced = 0;
	kv->unsynced_bytes = 0;
	return kvw_submit(kv, j);
fail:
	log_warn("store %s: cannot start a sync", kv->label);
	kvw_job_free(j);
	return -1;
}
