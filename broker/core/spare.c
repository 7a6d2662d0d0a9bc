/* Spare topicds.  A topicd stopped for room or idleness (STOP) applies
 * what it was sent, says its last IDLE, closes its store and, instead of
 * exiting, says SPARE: it can serve another topic.  The topic is cold
 * from then on, as if the process had exited 0.  The next topic to start
 * takes a spare (TAKE, then CONFIG as at any start) rather than a new
 * process: a start then costs the opening of a store, not a fork, an
 * exec and the C library's start-up, which on a virtual machine asks the
 * CPU about its caches some ninety times, each a trap to the hypervisor.
 *
 * At most topicd_spares wait; one that waited for topicd_idle_timeout
 * (60 s when that is 0), those past a topicd_spares lowered by a reload,
 * and every one when the broker stops, is let go: its channel is closed,
 * and it exits.  A spare gets the settings of the moment, and reopens its
 * log, with the CONFIG that follows its TAKE.  A topicd serves a bounded number
 * of topics (topicd/spare.c), then exits when stopped, as before.
 *
 * The master takes a spare only from a topicd that was sent nothing after
 * the STOP its last IDLE answered: then the spare has nothing of the old
 * topic left to read, and the TAKE is the first record it sees. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "clock.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

#define SPARE_WAIT_MS	60000	/* when topicd_idle_timeout is 0 */

void
spares_init(struct broker *b)
{
	TAILQ_INIT(&b->spares);
}

/* Let go: the closed channel ends it; it stays listed until reaped. */
static void
retire(struct broker *b, struct spare *s, const char *why)
{
	log_debug("topicd pid %ld: spare no more: %s", (long)s->pid, why);
	if (close(s->fd) == -1)
		log_warn("topicd pid %ld: close", (long)s->pid);
	s->fd = -1;
	b->nspares--;
	b->title_dirty = true;
}

/* Was it sent nothing since what ended it: the last IDLE's STOP (and the
 * KEEP that answered a last IDLE saying it keeps nothing), or the FORGET
 * that deleted its store? */
bool
spare_clean_end(const struct child *c, bool deleted)
{
	if (deleted)
		return c->forgetting && c->forget_sent && c->forget_tx == c->tx;
	return !c->forgetting && c->final_idle != NULL && c->final_tx == c->tx;
}

/* IPC_SPARE from c's topicd, parked with its last IDLE said. */
void
spare_offered(struct child *c, const struct ipc_msg *m)
{
	struct broker *b = c->b;
	struct rec_spare r;
	struct spare *s;
	int fd;

	if (dec_spare(m->body, m->len, &r) == -1) {
		child_kill(c, "bad SPARE record");
		return;
	}
	if (c->state != CH_PARKING) {
		child_kill(c, "SPARE while not stopping");
		return;
	}
	/* Declined: the closed channel ends it, and SIGCHLD does the rest. */
	if (c->stop_final || !spare_clean_end(c, r.flags & SPARE_DELETED) || b->stopping ||
	    b->nspares >= b->set.topicd_spares ||
	    (fd = fcntl(ipc_chan_fd(c->chan), F_DUPFD_CLOEXEC, 0)) == -1) {
		ipc_chan_free(c->chan);
		c->chan = NULL;
		return;
	}
	ipc_chan_free(c->chan);
	c->chan = NULL;
	s = xcalloc(1, sizeof(*s));
	s->pid = c->pid;
	s->fd = fd;
	s->since = mono_ms();
	TAILQ_INSERT_TAIL(&b->spares, s, entry);
	b->nspares++;
	b->title_dirty = true;
	child_released(c, r.flags & SPARE_DELETED);	/* may start a topic, on it */
}

/* A spare for a topic that starts: its pid and channel, or 0.  The one
 * that waited least: those not needed grow old and go.  One that died
 * while it waited (its SIGCHLD not handled yet) is reaped here, not
 * given a topic it would take down with it. */
pid_t
spare_take(struct broker *b, int *fd)
{
	struct spare *s;
	pid_t pid;
	int status;

	for (;;) {
		TAILQ_FOREACH_REVERSE(s, &b->spares, spare_list, entry)
			if (s->fd != -1)
				break;
		if (s == NULL)
			return 0;
		while ((pid = waitpid(s->pid, &status, WNOHANG)) == -1 && errno == EINTR)
			;
		if (pid != s->pid)
			break;
		(void)spare_reaped(b, pid, status);
	}
	TAILQ_REMOVE(&b->spares, s, entry);
	b->nspares--;
	b->title_dirty = true;
	pid = s->pid;
	*fd = s->fd;
	free(s);
	return pid;
}

/* The first record to a spare taken: the topic it serves now. */
void
spare_send_take(struct child *c)
{
	struct rec_take r = { .topic = c->topic };
	struct wbuf w;

	wbuf_init(&w);
	enc_take(&w, &r);
	if (ipc_chan_send(c->chan, IPC_TAKE, w.data, w.len, -1) == -1)
		log_errx("topic %s: TAKE too large to send", c->topic);
	wbuf_free(&w);
}

/* A process reaped that is no topic's: a spare's?  Then it is gone. */
bool
spare_reaped(struct broker *b, pid_t pid, int status)
{
	struct spare *s;

	TAILQ_FOREACH(s, &b->spares, entry)
		if (s->pid == pid)
			break;
	if (s == NULL)
		return false;
	if (s->fd != -1) {
		/* It went while it waited: killed from outside, say. */
		log_info("topicd pid %ld, spare, %s", (long)pid,
		    WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited");
		(void)close(s->fd);
		b->nspares--;
		b->title_dirty = true;
	}
	TAILQ_REMOVE(&b->spares, s, entry);
	free(s);
	return true;
}

/* Once a second: those that waited long enough, and those past
 * topicd_spares (lowered by a reload), go. */
void
spares_expire(struct broker *b)
{
	uint64_t wait = b->set.topicd_idle_timeout ? b->set.topicd_idle_timeout : SPARE_WAIT_MS;
	int64_t now = mono_ms();
	struct spare *s;

	TAILQ_FOREACH(s, &b->spares, entry) {
		if (s->fd == -1)
			continue;
		if (b->nspares > b->set.topicd_spares)
			retire(b, s, "past topicd_spares");
		else if (now - s->since >= (int64_t)wait)
			retire(b, s, "not needed");
	}
}

/* Every spare is let go (why: the broker stops); sig, if not 0, is sent
 * to those not reaped yet. */
void
spares_let_go(struct broker *b, const char *why, int sig)
{
	struct spare *s;

	TAILQ_FOREACH(s, &b->spares, entry) {
		if (s->fd != -1)
			retire(b, s, why);
		if (sig != 0 && kill(s->pid, sig) == -1 && errno != ESRCH)
			log_warn("topicd pid %ld: kill", (long)s->pid);
	}
}

bool
spares_all_gone(const struct broker *b)
{
	return TAILQ_EMPTY(&b->spares);
}

void
spares_free(struct broker *b)
{
	struct spare *s;

	while ((s = TAILQ_FIRST(&b->spares)) != NULL) {
		TAILQ_REMOVE(&b->spares, s, entry);
		if (s->fd != -1)
			(void)close(s->fd);
		free(s);
	}
	b->nspares = 0;
}
