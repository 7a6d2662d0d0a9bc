/* Supervision: one topicd per topic, reaped in a waitpid(WNOHANG) loop,
 * restarted with exponential back-off for ever; a record it crashes on
 * repeatedly is a poison record (dead-lettered); a store it cannot read
 * marks the topic failed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/core.h"
#include "clock.h"
#include "ipc.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

static void on_restart_timer(evutil_socket_t fd, short what, void *arg);

/* A new entry in the topic table, its topicd not started yet. */
struct child *
child_create(struct broker *b, const char *topic)
{
	struct child *c = xcalloc(1, sizeof(*c));

	c->b = b;
	c->topic = xstrdup(topic);
	c->backoff_ms = b->set.restart_backoff_min;
	TAILQ_INIT(&c->held);
	TAILQ_INIT(&c->attached);
	TAILQ_INIT(&c->acks);
	c->timer = evtimer_new(b->base, on_restart_timer, c);
	if (c->timer == NULL)
		fatalx("cannot create a timer for topic %s", topic);
	RB_INSERT(child_tree, &b->children, c);
	b->title_dirty = true;
	return c;
}

static void
send_config(struct child *c)
{
	struct settings *s = &c->b->set;
	struct rec_config r = {
		.version = IPC_PROTO_VERSION,
		.retry_ms = (uint32_t)s->retry_interval,
		.max_attempts = s->max_delivery_attempts,
		.checkpoint_kib = (uint32_t)(s->checkpoint_size / 1024),
		.max_queued = s->max_queued_messages,
		.max_bytes = s->max_topic_size,
		.min_free = s->min_free_space,
		.sync = strcmp(s->sync_policy, "none") != 0,
		.log_level = (uint8_t)log_get_level(),
		.boot_id = c->b->boot_id,
		.dlq_topic = s->dead_letter_topic,
		.seq_floor = c->b->seq_floor,
		.log_dests = (uint8_t)log_get_dests(),
		.log_file = log_get_file() != NULL ? log_get_file() : "",
	};
	struct wbuf w;

	wbuf_init(&w);
	enc_config(&w, &r);
	child_chan_send(c, IPC_CONFIG, w.data, w.len, -1);
	wbuf_free(&w);
}

void
child_chan_send(struct child *c, uint16_t type, const void *body, size_t len, int fd)
{
	if (c->chan == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	c->tx++;
	live_touch(c, type);
	/* Records are bounded before they get here (a dead letter's too). */
	if (ipc_chan_send(c->chan, type, body, len, fd) == -1)
		log_errx("topic %s: a %s record of %zu bytes is too large to send: dropped",
		    c->topic, ipc_type_name(type), len);
}

static void schedule_restart(struct child *, const char *);

void
child_start(struct child *c)
{
	topicd_spawn_fn *spawn = c->b->spawn != NULL ? c->b->spawn : topicd_spawn;
	int fd;
	bool spare;

	c->gen++;
	/* Until this one is ready: one that dies before counts as a crash
	 * soon after a start, however long the one before ran. */
	c->ready_at = 0;
	/* A spare after a crash too: it is not the process that crashed. */
	spare = (c->pid = spare_take(c->b, &fd)) > 0;
	if (!spare)
		c->pid = spawn(c->b, c->topic, &fd);
	if (c->pid == -1) {
		c->pid = 0;
		schedule_restart(c, "could not be started");
		return;
	}
	c->state = CH_STARTING;
	child_watch(c);
	live_spawned(c);
	c->chan = ipc_chan_new(c->b->base, fd, topicd_dispatch, topicd_chan_error, c);
	ipc_chan_use_ring(c->chan);
	ipc_chan_tally(c->chan, &c->b->chan_bytes);
	if (spare)
		spare_send_take(c);
	send_config(c);
	log_info("topic %s: topicd pid %ld started%s", c->topic, (long)c->pid,
	    spare ? " (a spare)" : "");
}

/* A topicd that is starting, or was told to stop for room, or closed its
 * channel, has topicd_timeout to be ready or gone: one stopped (SIGSTOP)
 * or hung would hold its place under max_topicds for ever.  The timer is
 * the restart timer's, which runs in none of those states. */
void
child_watch(struct child *c)
{
	uint64_t ms = c->b->set.topicd_timeout;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (c->pid > 0 && evtimer_add(c->timer, &tv) == -1)
		fatalx("cannot arm the timer of topic %s", c->topic);
}

/* A READY topicd is watched too, while it has work (it has not said
 * IDLE for everything sent to it): one that sends nothing for half of
 * topicd_timeout is sent a PING, which it answers with its figures, and
 * one that still sends nothing for the other half is stopped (SIGSTOP)
 * or hung.  It is killed: its topic would wait for ever, and every
 * subscription made to it meanwhile keep a descriptor here.  One that
 * waits in the kernel for its disk (state D, of its loop or of any of
 * its threads: most syncs run in the store's worker, and the loop may
 * wait for that) is left to it: a new one would wait for the same disk.  A hung one counts as a crash (the record it was
 * applying may be a poison record); a stopped one, an operator's doing,
 * does not. */
void
child_watch_ready(struct child *c)
{
	uint64_t ms = c->b->set.topicd_timeout / 2;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	c->heard = false;
	c->pinged = false;
	if (evtimer_add(c->timer, &tv) == -1)
		fatalx("cannot arm the timer of topic %s", c->topic);
}

static void
check_ready(struct child *c)
{
	char state;

	if (c->heard || c->quiet) {
		child_watch_ready(c);
		return;
	}
	state = c->pinged ? proc_state("/proc", c->pid) : '?';
	if (c->pinged && state == 'D') {
		log_info("topic %s: topicd pid %ld has not answered for topicd_timeout: it waits "
		    "for its disk", c->topic, (long)c->pid);
		child_watch_ready(c);
		return;
	}
	if (c->pinged) {
		c->hung = state != 'T' && state != 't';
		child_kill(c, c->hung ? "sent nothing for topicd_timeout, with work waiting "
		    "(hung)" : "sent nothing for topicd_timeout, with work waiting (stopped)");
		return;
	}
	child_watch_ready(c);
	log_debug("topic %s: topicd pid %ld: nothing heard for half of topicd_timeout, with "
	    "work waiting: PING", c->topic, (long)c->pid);
	/* Not live_touch()ed: a ping is no use of the topic. */
	c->tx++;
	(void)ipc_chan_send(c->chan, IPC_PING, NULL, 0, -1);
	c->pinged = true;
}

static void
on_restart_timer(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CH_READY && c->chan != NULL && !c->killed) {
		check_ready(c);
		return;
	}
	if (c->pid > 0 && c->state != CH_STOPPING) {
		child_kill(c, c->state == CH_STARTING ? "not ready within topicd_timeout" :
		    c->state == CH_PARKING ? "not gone within topicd_timeout of its STOP" :
		    "its channel closed, and it did not exit within topicd_timeout");
		return;
	}
	if (c->state == CH_BACKOFF && c->b->stop_phase < 2) {
		c->restarts++;
		c->after_crash = true;
		c->state = CH_COLD;
		child_wake(c);		/* under max_topicds like any start */
	}
}

void
child_kill(struct child *c, const char *why)
{
	log_warnx("topic %s: topicd pid %ld: %s; killing it", c->topic, (long)c->pid, why);
	c->killed = true;
	if (c->pid > 0 && kill(c->pid, SIGKILL) == -1 && errno != ESRCH)
		log_warn("topic %s: kill %ld", c->topic, (long)c->pid);
}

static void
describe_status(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

/* A crash that a record may have caused: a fault or abort of the child,
 * or its exit on an error of its own.  Not a kill from outside (SIGKILL,
 * SIGTERM, the OOM killer), nor an I/O error of its store. */
static bool
crashed_itself(int status)
{
	if (WIFSIGNALED(status)) {
		switch (WTERMSIG(status)) {
		case SIGSEGV: case SIGBUS: case SIGABRT: case SIGFPE:
		case SIGILL: case SIGSYS: case SIGTRAP:
			return true;
		default:
			return false;
		}
	}
	return WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != TOPICD_EXIT_IO &&
	    WEXITSTATUS(status) != TOPICD_EXIT_DAMAGED;
}

static void
schedule_restart(struct child *c, const char *how)
{
	struct settings *s = &c->b->set;
	struct timeval tv;

	/* A child that ran for a while starts its back-off afresh: for
	 * crash_window, or for ten times the wait it would now get.  The
	 * back-off slows a crash loop; a topicd that served its topic for a
	 * while and was then killed from outside (every 20 s, say) would
	 * otherwise keep its topic down for up to restart_backoff_max. */
	if (c->ready_at != 0 && (mono_ms() - c->ready_at > (int64_t)s->crash_window ||
	    mono_ms() - c->ready_at > 10 * (int64_t)c->backoff_ms))
		c->backoff_ms = s->restart_backoff_min;
	log_warnx("topic %s: topicd %s; restarting in %llu ms (restart %llu)%s", c->topic, how,
	    (unsigned long long)c->backoff_ms, (unsigned long long)c->restarts + 1,
	    c->nheld_pub ? "; its publishes wait" : "");
	c->state = CH_BACKOFF;
	tv.tv_sec = (time_t)(c->backoff_ms / 1000);
	tv.tv_usec = (suseconds_t)(c->backoff_ms % 1000) * 1000;
	if (evtimer_add(c->timer, &tv) == -1)
		fatalx("cannot arm the restart timer of topic %s", c->topic);
	c->backoff_ms *= 2;
	if (c->backoff_ms > s->restart_backoff_max)
		c->backoff_ms = s->restart_backoff_max;
	child_update_stalls(c);
}

/* The only request outstanding when it crashed, while probing: one
 * strike; poison_limit strikes and it goes to the dead-letter topic. */
static void
strike(struct child *c, struct held *h, const char *how)
{
	if (++h->strikes < c->b->set.poison_limit) {
		log_warnx("topic %s: topicd %s while applying %s (strike %u of %u)", c->topic,
		    how, ipc_type_name(h->type), h->strikes, c->b->set.poison_limit);
		return;
	}
	child_take_held(c, h);
	c->poisoned++;
	log_errx("topic %s: a %s from %s killed its topicd %u times: POISON, moved to %s",
	    c->topic, ipc_type_name(h->type), h->client_desc ? h->client_desc : "the broker",
	    h->strikes, c->b->set.dead_letter_topic);
	dlq_poison(c, h);
}

static void
child_crashed(struct child *c, int status, const char *how, bool hung)
{
	struct held *alone;
	unsigned n = child_requeue(c, &alone);

	if (WIFEXITED(status) && WEXITSTATUS(status) == TOPICD_EXIT_VERSION)
		c->version_mismatch = true;
	if ((WIFEXITED(status) && WEXITSTATUS(status) == TOPICD_EXIT_DAMAGED) ||
	    c->version_mismatch) {
		c->state = CH_FAILED;
		log_errx("topic %s: topicd %s: %s (see the line above): TOPIC FAILED; publishes "
		    "to it are refused until %s", c->topic, how, c->version_mismatch ?
		    "it is of another release than this broker" : "its store is damaged",
		    c->version_mismatch ? "the broker is restarted" :
		    "it is repaired and SIGHUP sent");
		child_fail_held(c);
		child_update_stalls(c);
		return;
	}
	if (crashed_itself(status) || hung) {
		if (c->probing && alone != NULL)
			strike(c, alone, how);
		else if (n > 0 && !c->probing) {
			c->probing = true;
			child_suspect_all(c);
		}
	}
	schedule_restart(c, how);
}

/* Answers the child sent before it died may still wait in the channel
 * (SIGCHLD can come first): they count, so that what they answer is not
 * replayed and stored twice.  The channel is the child's no more while
 * they are read: what an answer lets go (the next request while probing)
 * waits for the next topicd instead of going to a dead one and counting
 * as outstanding at its crash. */
static void
drain_answers(struct child *c, int *status)
{
	struct ipc_chan *ch = c->chan != NULL ? c->chan : c->dead_chan;
	struct ipc_msg m;
	struct rec_done d;
	struct rec_spare sp;

	c->chan = NULL;
	c->dead_chan = NULL;
	while (ipc_chan_recv(ch, &m) == 1) {
		if ((c->state == CH_READY || c->state == CH_PARKING) && m.type == IPC_DONE &&
		    dec_done(m.body, m.len, &d) == 0)
			child_done(c, &d);
		else if (c->state == CH_PARKING && m.type == IPC_IDLE)
			live_idle(c, &m);	/* its last word */
		else if (c->state == CH_PARKING && m.type == IPC_SPARE &&
		    dec_spare(m.body, m.len, &sp) == 0 &&
		    spare_clean_end(c, sp.flags & SPARE_DELETED))
			/* Its topic was done with, whatever ended it after. */
			*status = W_EXITCODE(sp.flags & SPARE_DELETED ? TOPICD_EXIT_DELETED : 0, 0);
		ipc_msg_clear(&m);
	}
	ipc_chan_free(ch);
}

/* Its process is gone from the topic: exited with status, or left it
 * as a spare (spare.c, status 0). */
static void
child_gone(struct child *c, int status, bool spare)
{
	char how[96];
	bool cold, hung = c->hung;

	c->hung = false;
	evtimer_del(c->timer);
	if (spare)
		snprintf(how, sizeof(how), "is spare");
	else
		describe_status(status, how, sizeof(how));
	snprintf(how + strlen(how), sizeof(how) - strlen(how), " (pid %ld)", (long)c->pid);
	if (c->chan != NULL || c->dead_chan != NULL)
		drain_answers(c, &status);
	/* Before live_exited: a topic gone cold with work left starts its
	 * next topicd there, which is not to be forgotten. */
	c->pid = 0;
	c->full = false;	/* a new topicd says again if it has no room */
	cold = live_exited(c, status);
	if (c->forgetting) {
		struct broker *b = c->b;

		forget_exited(c, status, how);	/* may free c */
		live_balance(b);		/* its place is free */
		return;
	}
	if (cold)
		log_info("topic %s: topicd %s; the topic is cold", c->topic, how);
	else if (c->state == CH_STOPPING || (c->state == CH_PARKING && c->b->stop_phase >= 2))
		log_info("topic %s: topicd %s", c->topic, how);
	else {
		c->killed = false;
		child_crashed(c, status, how, hung);
	}
	live_balance(c->b);
}

static void
child_exited(struct child *c, int status)
{
	child_gone(c, status, false);
}

void
child_released(struct child *c, bool deleted)
{
	child_gone(c, deleted ? W_EXITCODE(TOPICD_EXIT_DELETED, 0) : W_EXITCODE(0, 0), true);
}

void
children_reap(struct broker *b)
{
	struct child *c;
	int status;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid == -1 && errno == EINTR)
			continue;
		if (pid <= 0)
			break;
		if ((c = child_by_pid(b, pid)) != NULL)
			child_exited(c, status);
		else if (!spare_reaped(b, pid, status))
			log_debug("reaped unknown child %ld", (long)pid);
	}
	if (b->stop_phase == 2 && children_all_gone(b))
		event_base_loopexit(b->base, NULL);
}

void
children_retry_failed(struct broker *b)
{
	struct child *c;

	if (b->stopping)
		return;
	RB_FOREACH(c, child_tree, &b->children) {
		if (c->state != CH_FAILED)
			continue;
		log_notice("topic %s: retrying the failed topic", c->topic);
		c->backoff_ms = b->set.restart_backoff_min;
		c->restarts++;
		c->after_crash = true;
		c->version_mismatch = false;
		c->state = CH_COLD;
		child_wake(c);
	}
}

/* After a reload: the new settings to every topicd (not to one sent
 * STOP: it may exit before it reads them, and its next one starts with
 * them), and the new restart back-off to every topic not waiting for a
 * restart now.  A spare gets them with its next topic (and reopens its
 * log then); those past a lower topicd_spares go at the next tick. */
void
children_config(struct broker *b)
{
	struct child *c;

	RB_FOREACH(c, child_tree, &b->children) {
		if (c->chan != NULL && c->state != CH_PARKING)
			send_config(c);
		if (c->state != CH_BACKOFF)
			c->backoff_ms = b->set.restart_backoff_min;
	}
}

static void
signal_all(struct broker *b, int sig)
{
	struct child *c;

	RB_FOREACH(c, child_tree, &b->children) {
		if (sig == SIGTERM && c->state == CH_PARKING)
			continue;	/* its last IDLE is coming */
		evtimer_del(c->timer);
		live_unlist(c);
		if (c->pid > 0 && kill(c->pid, sig) == -1 && errno != ESRCH)
			log_warn("topic %s: kill %ld", c->topic, (long)c->pid);
		c->state = CH_STOPPING;
	}
	/* Those being forgotten stay listed there: they are freed from it. */
	TAILQ_FOREACH(c, &b->forgetting, live) {
		evtimer_del(c->timer);
		if (c->pid > 0 && kill(c->pid, sig) == -1 && errno != ESRCH)
			log_warn("topic %s: kill %ld", c->topic, (long)c->pid);
	}
}

/* A topicd that runs is stopped as for room (STOP): its last IDLE says
 * which of its subscribers have something to get, and its topic is then
 * cold with that known, so that after the restart a session that comes
 * back starts only the topics that owe it something.  One stopping
 * already for room or idleness goes on as it would (its journal kept, as
 * a cold topic's is); the others (still starting, waiting for a restart)
 * get SIGTERM. */
void
children_stop_all(struct broker *b)
{
	struct child *c;

	RB_FOREACH(c, child_tree, &b->children) {
		if (c->state == CH_READY && c->chan != NULL)
			live_park(c, "the broker is stopping", true);
		if (c->state == CH_PARKING)
			evtimer_del(c->timer);	/* shutdown_timeout is its deadline */
	}
	spares_let_go(b, "the broker stops", 0);
	signal_all(b, SIGTERM);
}

void
children_kill_all(struct broker *b)
{
	signal_all(b, SIGKILL);
	spares_let_go(b, "the broker stops", SIGKILL);
}

bool
children_all_gone(struct broker *b)
{
	struct child *c;

	RB_FOREACH(c, child_tree, &b->children)
		if (c->pid > 0)
			return false;
	TAILQ_FOREACH(c, &b->forgetting, live)
		if (c->pid > 0)
			return false;
	return spares_all_gone(b);
}

/* Frees an entry out of the topic table and the live lists. */
void
child_free(struct child *c)
{
	child_discard_held(c);
	while (!TAILQ_EMPTY(&c->attached))
		attach_drop(TAILQ_FIRST(&c->attached), false);
	if (c->chan != NULL)
		ipc_chan_free(c->chan);
	if (c->dead_chan != NULL)
		ipc_chan_free(c->dead_chan);
	event_free(c->timer);
	child_free_acks(c);
	child_free_cold_unsubs(c);
	free(c->final_idle);
	free(c->topic);
	free(c);
}

void
children_free_all(struct broker *b)
{
	struct child *c, *next;

	RB_FOREACH_SAFE(c, child_tree, &b->children, next) {
		RB_REMOVE(child_tree, &b->children, c);
		child_free(c);
	}
	while ((c = TAILQ_FIRST(&b->forgetting)) != NULL) {
		live_unlist(c);
		child_free(c);
	}
	spares_free(b);
	if (b->live_pass != NULL)
		event_free(b->live_pass);
	b->live_pass = NULL;
	if (b->budget_ev != NULL)
		event_free(b->budget_ev);
	b->budget_ev = NULL;
	wbuf_free(&b->pkt_enc);
	wbuf_free(&b->rec_enc);
}

/* Requests sent or waiting to be sent that a client or a topic waits for. */
unsigned
children_pending(struct broker *b)
{
	struct child *c;
	struct held *h;
	unsigned n = 0;

	RB_FOREACH(c, child_tree, &b->children) {
		if (c->state == CH_FAILED)
			continue;
		TAILQ_FOREACH(h, &c->held, entry)
			if (h->req != 0 && (h->sent || !h->lazy))
				n++;
	}
	return n;
}

/* max_store_size: the messages all topics keep, from their STATS (at
 * least once a second).  Past it every publish waits; below 90% of it
 * they go on. */
void
children_budget(struct broker *b)
{
	uint64_t max = b->set.max_store_size, sum = b->stored_bytes;
	bool full = over_limit(sum, max, b->store_full);
	struct child *c;

	if (full == b->store_full)
		return;
	b->store_full = full;
	if (full)
		log_notice("%llu bytes of messages kept, max_store_size is %llu: every publish "
		    "waits, unacknowledged", (unsigned long long)sum, (unsigned long long)max);
	else
		log_notice("%llu bytes of messages kept: below max_store_size again, publishes "
		    "go on", (unsigned long long)sum);
	RB_FOREACH(c, child_tree, &b->children) {
		child_pump(c);
		child_update_stalls(c);
	}
}
