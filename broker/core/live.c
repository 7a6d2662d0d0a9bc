/* Topicds that run.  A topic needs its topicd only while something is to
 * be done there: a request to apply, or a subscriber online with messages
 * to get.  Otherwise the topic is cold: no process, its store closed, and
 * what the master must know of it (registry.c) is what its topicd said
 * when it stopped.
 *
 * At most max_topicds run at once.  A topic that needs one waits in a
 * queue for room; room is made by stopping (STOP) the topicd that has
 * been quiet longest, else the least recently used one that ran for a
 * time slice since it was ready: busy topics then take turns, like
 * processes on a CPU.  The slice grows with the number running, so that
 * turning them over never costs more than a fraction of a core in
 * starting processes, however many wait.  It is ten times as long when
 * the topic next in the queue only has messages to deliver (no request
 * waits for it): a topicd whose messages wait for a subscriber's window
 * is busy, and stopping it early would only start another that waits for
 * the same window; the long slice still lets other subscribers' topics
 * in past a subscriber that does not read.  A topicd quiet for topicd_idle_timeout is stopped too.  Stopping
 * loses nothing: the topicd applies and answers what it was sent before
 * STOP, says a last IDLE and exits; what came for the topic meanwhile
 * waits, and a topic stopped with work left queues to start again.
 *
 * Starting a topicd costs the master a fork and an exec, milliseconds: a
 * pass of the loop starts them for LIVE_PASS_MS at most, and the next pass
 * goes on, so that a subscription to a wildcard over thousands of cold
 * topics gets its SUBACK, and the other clients their answers, while
 * those topics start. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "core/core.h"
#include "clock.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

#define LIVE_PASS_MS	10	/* starting topicds in one pass of the loop */
#define LIVE_MIN_MS	1000	/* a busy topicd runs at least this long ... */
#define LIVE_PER_TOPICD_MS 10	/* ... plus this for each one running ... */
#define LIVE_DELIVERY_ONLY 10	/* ... times this for a topic that only delivers */
#define LIVE_ROOM_AHEAD	16	/* places made ahead of the starts to take them */

static int
child_pid_cmp(struct child *a, struct child *b)
{
	return (a->pid > b->pid) - (a->pid < b->pid);
}

RB_GENERATE(child_pids, child, by_pid, child_pid_cmp)

void
live_init(struct broker *b)
{
	RB_INIT(&b->pids);
	TAILQ_INIT(&b->queue);
	TAILQ_INIT(&b->lru);
	TAILQ_INIT(&b->quiet);
	TAILQ_INIT(&b->forgetting);
	spares_init(b);
}

bool
child_live(const struct child *c)
{
	return c->pid > 0;
}

void
live_unlist(struct child *c)
{
	if (c->list == NULL)
		return;
	if (c->list == &c->b->queue)
		c->b->nqueued--;
	TAILQ_REMOVE(c->list, c, live);
	c->list = NULL;
}

static void
list(struct child *c, struct child_list *l)
{
	live_unlist(c);
	TAILQ_INSERT_TAIL(l, c, live);
	c->list = l;
	if (l == &c->b->queue)
		c->b->nqueued++;
}

/* The quiet ones in the order they went quiet, longest first (live_expire
 * and room take the head): one quiet since before its last attachment
 * goes back in its place, found from the tail, where most go. */
static void
list_quiet(struct child *c)
{
	struct child_list *l = &c->b->quiet;
	struct child *after = TAILQ_LAST(l, child_list);

	live_unlist(c);
	while (after != NULL && after->quiet_since > c->quiet_since)
		after = TAILQ_PREV(after, child_list, live);
	if (after != NULL)
		TAILQ_INSERT_AFTER(l, after, c, live);
	else
		TAILQ_INSERT_HEAD(l, c, live);
	c->list = l;
}

struct child *
child_by_pid(struct broker *b, pid_t pid)
{
	struct child key = { .pid = pid };

	return RB_FIND(child_pids, &b->pids, &key);
}

/* The process was forked. */
void
live_spawned(struct child *c)
{
	c->b->nlive++;
	c->b->title_dirty = true;
	c->started_at = mono_ms();
	c->tx = 0;
	c->quiet = false;
	c->work_since = 0;
	c->idle_early = false;
	c->stop_final = false;
	RB_INSERT(child_pids, &c->b->pids, c);
}

void
live_ready(struct child *c)
{
	c->quiet = false;
	list(c, &c->b->lru);
}

/* A record went to it: busy, and the most recently used.  A session
 * that comes, goes or unsubscribes gives it no work of its own (what
 * such a session has to get keeps it busy until delivered): if it is
 * quiet again after that, it has been so since before, and
 * topicd_idle_timeout counts from then.  Else a client on a wildcard
 * that connects every few seconds would keep every topicd it matches
 * running for ever. */
void
live_touch(struct child *c, uint16_t type)
{
	bool no_work = type == IPC_ATTACH || type == IPC_DETACH || type == IPC_UNSUB ||
	    type == IPC_CONFIG;

	if (!no_work)
		c->work_since = 0;
	else if (c->quiet && c->work_since == 0)
		c->work_since = c->quiet_since;
	if (c->state != CH_READY)
		return;
	c->quiet = false;
	list(c, &c->b->lru);
}

/* STOP: the topic goes cold once its topicd has said its last IDLE;
 * checkpoint (the broker is stopping) closes its store with one. */
void
live_park(struct child *c, const char *why, bool checkpoint)
{
	struct rec_stop r = { checkpoint ? STOP_CHECKPOINT : 0 };
	struct wbuf w;

	log_info("topic %s: topicd pid %ld stops: %s", c->topic, (long)c->pid, why);
	c->stop_final = checkpoint;
	wbuf_init(&w);
	enc_stop(&w, &r);
	child_chan_send(c, IPC_STOP, w.data, w.len, -1);
	wbuf_free(&w);
	live_unlist(c);
	c->state = CH_PARKING;
	child_watch(c);
	c->b->nparking++;
}

/* What a stopped topicd said last, for when it is gone. */
static void
keep_final(struct child *c, const struct ipc_msg *m)
{
	free(c->final_idle);
	c->final_idle = xmemdup(m->body, m->len);
	c->final_len = m->len;
	c->final_tx = c->tx;
}

/* It said IDLE for everything it was sent: a topicd to stop first. */
static void
go_quiet(struct child *c)
{
	if (c->state != CH_READY || c->quiet || c->noutstanding > 0 || c->nunsent > 0)
		return;
	c->quiet = true;
	c->quiet_since = c->work_since != 0 ? c->work_since : mono_ms();
	list_quiet(c);
	live_balance(c->b);
}

void
live_idle(struct child *c, const struct ipc_msg *m)
{
	struct rec_idle r;

	if (dec_idle(m->body, m->len, &r) == -1) {
		child_kill(c, "bad IDLE record");
		return;
	}
	if (r.flags & IDLE_EMPTY) {
		/* A last word that waits for FORGET or KEEP (forget.c). */
		if (c->state == CH_PARKING && r.rx == c->tx)
			keep_final(c, m);
		forget_consider(c, &r);
		return;
	}
	if (r.rx != c->tx)
		return;		/* said before what we sent since: busy */
	if (c->chan != NULL)
		ipc_chan_trim(c->chan);	/* it has applied all: its ring is empty */
	if (r.flags & IDLE_FINAL) {
		if (c->state == CH_PARKING)
			keep_final(c, m);
		return;
	}
	if (!c->registered) {
		/* Nothing was sent yet that it was started for (its
		 * subscribers, what waits for it): judged once it is
		 * (live_registered).  Stopped now, it would start again. */
		c->idle_early = true;
		c->idle_rx = r.rx;
		return;
	}
	go_quiet(c);
}

/* Registered, and sent what waited for that: idle if it had said so for
 * everything, nothing having been sent since. */
void
live_registered(struct child *c)
{
	if (c->idle_early && c->idle_rx == c->tx)
		go_quiet(c);
	c->idle_early = false;
}

/* Does a subscriber online here need the topicd (messages to get)? */
static bool
attachments_want(struct child *c)
{
	struct attachment *a;

	TAILQ_FOREACH(a, &c->attached, by_child)
		if (attach_needs_topicd(c, &a->a))
			return true;
	return false;
}

/* The topic is cold now: start it again if something waits for it. */
static void
gone_cold(struct child *c)
{
	registry_cold(c->b, c->topic, c->final_idle, c->final_len);
	free(c->final_idle);
	c->final_idle = NULL;
	c->state = CH_COLD;
	c->cold_gen = ++c->b->cold_gen;
	if (!child_has_work(c) && !c->want_again)
		retcopy_offer(c);
	if (child_has_work(c) || c->want_again || attachments_want(c)) {
		c->want_again = false;
		child_wake(c);
	}
}

bool
live_exited(struct child *c, int status)
{
	bool parked = c->state == CH_PARKING;

	RB_REMOVE(child_pids, &c->b->pids, c);
	c->b->nlive--;
	c->b->title_dirty = true;
	if (parked)
		c->b->nparking--;
	if (c->forgetting)
		return false;	/* forget_exited; in b->forgetting until freed */
	live_unlist(c);
	if (parked && WIFEXITED(status) && WEXITSTATUS(status) == 0 && c->final_idle != NULL) {
		gone_cold(c);
		return true;
	}
	free(c->final_idle);
	c->final_idle = NULL;
	return false;
}

static void
launch(struct child *c)
{
	c->need_ticket = registry_live(c->b, c->topic);
	c->registered = durable_reached(c->b, c->need_ticket);
	if (!c->registered)
		durable_wait(c->b, c->need_ticket, child_registered, c);
	child_start(c);
}

void
child_wake(struct child *c)
{
	struct broker *b = c->b;

	if (c->state == CH_PARKING)
		c->want_again = true;
	if (c->state != CH_COLD || b->stop_phase >= 2)
		return;		/* while stopping, requests in hand are finished */
	c->state = CH_QUEUED;
	list(c, &b->queue);
	live_balance(b);
}

/* The topicd to stop for room: quiet longest, else the least recently
 * used that ran a while (not one being probed after a crash). */
static struct child *
victim(struct broker *b)
{
	int64_t now = mono_ms();
	int64_t slice = LIVE_MIN_MS + (int64_t)b->nlive * LIVE_PER_TOPICD_MS;
	struct child *next = TAILQ_FIRST(&b->queue), *c;

	if ((c = TAILQ_FIRST(&b->quiet)) != NULL)
		return c;
	if (next != NULL && !child_has_work(next))
		slice *= LIVE_DELIVERY_ONLY;
	TAILQ_FOREACH(c, &b->lru, live)
		if (!c->probing && now - c->ready_at >= slice)
			return c;
	return NULL;
}

static void
on_live_pass(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;

	(void)fd;
	(void)what;
	b->live_pass_ms = 0;
	live_balance(b);
}

/* May a topicd start in this pass of the loop?  The first start opens the
 * pass, and a timer due at once ends it: the loop polls its sockets
 * before that timer runs (and the pass after it begins). */
static bool
pass_has_time(struct broker *b)
{
	static const struct timeval now = { 0, 0 };

	if (b->live_pass_ms != 0)
		return mono_ms() - b->live_pass_ms < LIVE_PASS_MS;
	if (b->live_pass == NULL && (b->live_pass = evtimer_new(b->base, on_live_pass, b)) == NULL)
		return true;		/* no memory: no passes, starts all the same */
	if (evtimer_add(b->live_pass, &now) == -1)
		return true;
	b->live_pass_ms = mono_ms();
	return true;
}

static unsigned
room(const struct broker *b)
{
	return b->nlive < b->set.max_topicds ? b->set.max_topicds - b->nlive : 0;
}

void
live_balance(struct broker *b)
{
	struct child *c;

	while ((c = TAILQ_FIRST(&b->queue)) != NULL && room(b) > 0 && b->stop_phase < 2 &&
	    pass_has_time(b)) {
		live_unlist(c);
		launch(c);
	}
	/* Room is made for those queued that the room left cannot take, a
	 * few places ahead of the starts to take them (starts go for
	 * LIVE_PASS_MS a pass): a topicd stopped for a place that no start
	 * takes yet is a warm topic made cold for nothing, which the next
	 * publish to it has to start again. */
	while (b->nqueued > b->nparking + room(b) && b->nparking + room(b) < LIVE_ROOM_AHEAD &&
	    (c = victim(b)) != NULL)
		live_park(c, c->quiet ? "idle, room for another topic" : "room for another topic", false);
}

/* Once a second: topicds quiet for topicd_idle_timeout stop; the others
 * that are quiet give back their rings' pages. */
void
live_expire(struct broker *b)
{
	uint64_t max = b->set.topicd_idle_timeout;
	int64_t now = mono_ms();
	struct child *c;

	while (max > 0 && (c = TAILQ_FIRST(&b->quiet)) != NULL &&
	    now - c->quiet_since >= (int64_t)max)
		live_park(c, "idle for topicd_idle_timeout", false);
	spares_expire(b);
	live_balance(b);
	TAILQ_FOREACH(c, &b->quiet, live)
		if (c->chan != NULL)
			ipc_chan_trim(c->chan);
}
