/* The master's core in a test: a struct broker with its store in a
 * temporary data directory, and topicds that the test plays (its
 * clients' protocol is in fake_proto.h).
 *
 * A topicd is started through b->spawn: the master gets one end of a
 * SOCK_SEQPACKET socketpair as its channel, the test keeps the other
 * (struct fake_td collects what the master sends there; the test answers
 * as a topicd does with fake_topicd.h), and the pid is a stand-in process
 * that does nothing but exit when the test says so (an exit status, or a
 * signal), so that the supervision kills and reaps a real child.
 *
 * Everything waits for a condition with a deadline (FX_UNTIL), running
 * the broker's event loop with EVLOOP_ONCE. */
#ifndef TESTS_UNIT_CORE_FIXTURE_H
#define TESTS_UNIT_CORE_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/core.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

#define FX_TIMEOUT_MS	5000	/* for anything that should happen at once */
#define FX_MAX_LOG	64

/* A topicd played by the test. */
struct fake_td {
	TAILQ_ENTRY(fake_td) entry;
	struct core_fx	*fx;
	char		*topic;
	pid_t		 pid;		/* the stand-in */
	int		 fd;		/* the topicd's end of the channel; -1 once closed */
	int		 ctl;		/* the stand-in exits with the byte written here */
	struct event	*ev;
	bool		 eof;		/* the master closed its end */
	bool		 gone;		/* the stand-in exited (and was waited for) */
	int		 bad;		/* records that did not read */
	struct ipc_reader in;		/* the rest of a datagram read */
	struct ipc_msg	*recs;		/* what the master sent, in order */
	size_t		 nrecs, cap, next;
};
TAILQ_HEAD(fake_td_list, fake_td);

/* A done callback's call. */
struct answer {
	char		*topic;		/* of the child that answered */
	uint64_t	 arg;
	uint32_t	 status;
	uint64_t	 seq;
};

/* A delivery the fake protocol was handed. */
struct delivered {
	uint64_t	 client_id;
	char		*topic;
	uint64_t	 seq;
	uint8_t		 qos;
	bool		 copy;		/* from the master's copy (DF_COPY) */
};

struct core_fx {
	struct broker	 b;		/* first: a callback's broker is its fixture */
	char		 dir[256];
	struct fake_td_list tds;
	struct answer	 answers[FX_MAX_LOG];
	size_t		 nanswers;
	struct delivered delivered[FX_MAX_LOG];
	size_t		 ndelivered;
	unsigned	 nclosed;	/* clients whose protocol state was closed */
	char		*dropped[FX_MAX_LOG];	/* topic_dropped hooks called */
	size_t		 ndropped;
	unsigned	 nforgotten, nreleased;	/* ended hooks called, by forget */
	int		 peers[16];	/* the clients' other ends */
	size_t		 npeers;
	uint64_t	 marker;	/* for td_sync */
	unsigned	 max_live;	/* the most topicds that ran at once */
	unsigned	 spawn_ms;	/* what a start costs (a fork and an exec) */
	void		(*read_hook)(struct client *);	/* called as a client is read */
	struct event	*sigchld;	/* wakes the loop up when a stand-in exits */
};

#define FX_OF(bp)	((struct core_fx *)(void *)(bp))

/* ------------------------------------------------------- waiting */

struct fx_deadline {
	struct event	*ev;
	bool		 expired;
};

static inline void
fx_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

static inline void
fx_on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static inline void
fx_deadline_start(struct core_fx *fx, struct fx_deadline *d, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	d->expired = false;
	d->ev = evtimer_new(fx->b.base, fx_on_deadline, &d->expired);
	assert_non_null(d->ev);
	assert_int_equal(evtimer_add(d->ev, &tv), 0);
}

static inline void
fx_loop_once(struct core_fx *fx)
{
	assert_int_not_equal(event_base_loop(fx->b.base, EVLOOP_ONCE), -1);
}

/* Runs the broker's loop until cond holds; fails the test after ms. */
#define FX_UNTIL_MS(fx, cond, ms) do {						\
	struct fx_deadline dl_;							\
	fx_deadline_start((fx), &dl_, (ms));					\
	while (!(cond) && !dl_.expired)						\
		fx_loop_once(fx);						\
	event_free(dl_.ev);							\
	if (!(cond))								\
		fail_msg("%s:%d: timed out waiting for %s", __FILE__, __LINE__, #cond); \
} while (0)
#define FX_UNTIL(fx, cond)	FX_UNTIL_MS(fx, cond, FX_TIMEOUT_MS)

/* fn(b) every ms while the loop runs, as the daemon's timers do (the
 * caller frees the event). */
static inline struct event *
fx_every(struct core_fx *fx, int ms, void (*fn)(evutil_socket_t, short, void *))
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *ev = event_new(fx->b.base, -1, EV_PERSIST, fn, &fx->b);

	assert_non_null(ev);
	assert_int_equal(event_add(ev, &tv), 0);
	return ev;
}

/* ------------------------------------------------------- stand-ins */

/* In the stand-in: ctl on fd 3, done on fd 4, nothing else; closing
 * done says so. */
static inline int
standin_fds(int ctl, int done)
{
	int c = fcntl(ctl, F_DUPFD, 64), d = fcntl(done, F_DUPFD, 64);

	if (c == -1 || d == -1 || dup2(c, 3) == -1 || dup2(d, 4) == -1 ||
	    close_range(5, ~0U, 0) == -1 || close(4) == -1)
		return -1;
	return 0;
}

/* A process that exits with the byte written to *ctl (0 on EOF), or
 * when a signal kills it.  It holds none of our descriptors once this
 * returns (not the store's lock either). */
static inline pid_t
standin_start(int *ctl)
{
	unsigned char code = 0;
	int p[2], d[2];
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(pipe2(d, O_CLOEXEC), 0);
	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		if (standin_fds(p[0], d[1]) == -1)
			_exit(126);
		do
			n = read(3, &code, 1);
		while (n == -1 && errno == EINTR);
		_exit(n == 1 ? code : 0);
	}
	close(p[0]);
	close(d[1]);
	do
		n = read(d[0], &code, 1);
	while (n == -1 && errno == EINTR);
	assert_int_equal(n, 0);
	close(d[0]);
	*ctl = p[1];
	return pid;
}

/* Whether the stand-in exited (*si says how), leaving it to be reaped. */
static inline bool
standin_exited(struct fake_td *td, siginfo_t *si)
{
	memset(si, 0, sizeof(*si));
	while (waitid(P_PID, (id_t)td->pid, si, WEXITED | WNOHANG | WNOWAIT) == -1)
		assert_int_equal(errno, EINTR);
	return si->si_pid == td->pid;
}

/* Waits for the stand-in's end (SIGCHLD wakes the loop up). */
static inline siginfo_t
standin_wait(struct fake_td *td)
{
	siginfo_t si;

	FX_UNTIL(td->fx, standin_exited(td, &si));
	td->gone = true;
	return si;
}

/* ------------------------------------------------------- fake topicds */

static inline void
td_read(struct fake_td *td)
{
	struct ipc_msg m;
	int rc;

	while (td->fd != -1 && !td->eof) {
		rc = ipc_recv(td->fd, &td->in, &m);
		if (rc == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (rc == -1) {
			td->bad++;
			continue;
		}
		if (rc == 0) {
			td->eof = true;
			event_del(td->ev);
			return;
		}
		if (td->nrecs == td->cap) {
			td->cap = td->cap ? td->cap * 2 : 16;
			td->recs = xreallocarray(td->recs, td->cap, sizeof(*td->recs));
		}
		td->recs[td->nrecs++] = m;
	}
}

static inline void
td_on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	td_read(arg);
}

static inline pid_t
fx_spawn(struct broker *b, const char *topic, int *chan_fd)
{
	struct core_fx *fx = FX_OF(b);
	struct fake_td *td = xcalloc(1, sizeof(*td));
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv), 0);
	if (b->nlive + 1 > fx->max_live)
		fx->max_live = b->nlive + 1;	/* counted once spawned */
	td->fx = fx;
	td->topic = xstrdup(topic);
	td->fd = sv[1];
	td->pid = standin_start(&td->ctl);
	if (fx->spawn_ms > 0) {
		struct timespec ts = { 0, (long)fx->spawn_ms * 1000000L };

		while (nanosleep(&ts, &ts) == -1)
			assert_int_equal(errno, EINTR);
	}
	td->ev = event_new(b->base, td->fd, EV_READ | EV_PERSIST, td_on_read, td);
	assert_non_null(td->ev);
	assert_int_equal(event_add(td->ev, NULL), 0);
	TAILQ_INSERT_TAIL(&fx->tds, td, entry);
	*chan_fd = sv[0];
	return td->pid;
}

static inline void
td_free(struct fake_td *td)
{
	int st;

	if (td->ev != NULL)
		event_free(td->ev);
	if (td->fd != -1)
		close(td->fd);
	close(td->ctl);			/* the stand-in exits on EOF */
	while (!td->gone && waitpid(td->pid, &st, 0) == -1 && errno == EINTR)
		;			/* gone: the broker reaped it */
	ipc_reader_clear(&td->in);
	for (size_t i = 0; i < td->nrecs; i++)
		ipc_msg_clear(&td->recs[i]);
	free(td->recs);
	free(td->topic);
	free(td);
}

/* ------------------------------------------------------- the broker */

static inline int
fx_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void
fx_store_open(struct core_fx *fx)
{
	assert_int_equal(store_open(&fx->b), 0);
	durable_init(&fx->b);
}

/* The store's syncs are not taken in while held: what waits for one to
 * be durable waits, whatever else the loop does. */
static inline void
fx_hold_store(struct core_fx *fx)
{
	assert_int_equal(event_del(fx->b.store_ev), 0);
}

static inline void
fx_release_store(struct core_fx *fx)
{
	assert_int_equal(event_add(fx->b.store_ev, NULL), 0);
}

/* The store closed and opened again, as by a restart of the master. */
static inline void
fx_store_reopen(struct core_fx *fx)
{
	store_close(&fx->b);
	fx_store_open(fx);
}

static inline int
fx_setup(void **state)
{
	struct core_fx *fx = xcalloc(1, sizeof(*fx));
	struct broker *b = &fx->b;
	const char *tmp = getenv("TMPDIR");

	log_init("test", LOG_LVL_ERR, LOG_DEST_STDERR, NULL);
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s/core.XXXXXX", tmp ? tmp : "/tmp");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	TAILQ_INIT(&fx->tds);
	settings_init(&b->set);
	free(b->set.data_dir);
	b->set.data_dir = xstrdup(fx->dir);
	b->set.restart_backoff_min = 1;
	b->set.restart_backoff_max = 4;
	RB_INIT(&b->children);
	live_init(b);
	RB_INIT(&b->clients);
	TAILQ_INIT(&b->gated);
	TAILQ_INIT(&b->waiters);
	TAILQ_INIT(&b->dirty_sessions);
	b->next_req = 1;
	b->boot_id = 0x5eed;
	b->spawn = fx_spawn;
	if ((b->base = event_base_new()) == NULL)
		return -1;
	fx->sigchld = evsignal_new(b->base, SIGCHLD, fx_on_sigchld, NULL);
	if (fx->sigchld == NULL || event_add(fx->sigchld, NULL) == -1)
		return -1;
	fx_store_open(fx);
	*state = fx;
	return 0;
}

static inline int
fx_teardown(void **state)
{
	struct core_fx *fx = *state;
	struct fake_td *td;

	clients_free_all(&fx->b);
	children_free_all(&fx->b);
	if (fx->b.store != NULL)
		store_close(&fx->b);
	while ((td = TAILQ_FIRST(&fx->tds)) != NULL) {
		TAILQ_REMOVE(&fx->tds, td, entry);
		td_free(td);
	}
	event_free(fx->sigchld);
	event_base_free(fx->b.base);
	for (size_t i = 0; i < fx->npeers; i++)
		close(fx->peers[i]);
	for (size_t i = 0; i < fx->nanswers; i++)
		free(fx->answers[i].topic);
	for (size_t i = 0; i < fx->ndelivered; i++)
		free(fx->delivered[i].topic);
	for (size_t i = 0; i < fx->ndropped; i++)
		free(fx->dropped[i]);
	settings_free(&fx->b.set);
	nftw(fx->dir, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}
#endif
