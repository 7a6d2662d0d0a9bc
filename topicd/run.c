/* Start-up, the event loop, signals and shutdown.
 *
 * Start-up order: die with the master (PR_SET_PDEATHSIG), lock the
 * topic's store against an older topicd still exiting, read the CONFIG the
 * master queued first (it carries the checkpoint size the store is opened
 * with), open and load the store, send READY, then serve the channel. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "evloop.h"
#include "ipc.h"
#include "kvstore.h"
#include "log.h"
#include "topic.h"
#include "topicd.h"
#include "xmalloc.h"

void
topicd_init(struct topicd *td, const char *topic, const char *datadir, bool verbose)
{
	memset(td, 0, sizeof(*td));
	td->topic = xstrdup(topic);
	td->datadir = xstrdup(datadir);
	td->stem = topic_file_name(topic);
	td->verbose = verbose;
	td->sync = true;
	RB_INIT(&td->subs);
	TAILQ_INIT(&td->work);
	TAILQ_INIT(&td->dirty);
	TAILQ_INIT(&td->groups);
	wbuf_init(&td->wb);
	wbuf_init(&td->kb);
	td->retry_ms = TD_RETRY_MS_DEFAULT;
	td->max_attempts = TD_ATTEMPTS_DEFAULT;
	td->checkpoint_bytes = TD_CHECKPOINT_DEFAULT;
	td->gen = 1;
	/* Dead-letter request ids unlike those of an earlier process. */
	td->dlq_next = (uint64_t)wall_ms() << 12;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Records are replayed from the journal after a crash, and after a stop
 * that went cold (no checkpoint then): the master says which.  Torn bytes
 * cut mean a write was cut short (SIGKILL, a crash, power loss). */
static void
log_recovery(struct topicd *td)
{
	struct kv_stats st;

	kv_get_stats(td->kv, &st);
	if (st.truncated > 0)
		log_notice("topic %s: store opened: %llu records replayed, %llu torn bytes cut "
		    "(it was not closed cleanly)", td->topic, (unsigned long long)st.recovered,
		    (unsigned long long)st.truncated);
	else
		log_info("topic %s: store opened: %llu records replayed", td->topic,
		    (unsigned long long)st.recovered);
}

/* Opens and loads the store; an older topicd of this topic (its master
 * was killed) may still be exiting: wait a while for its lock.  0, or -1
 * (logged) with errno EUCLEAN when the store does not read back. */
static int
open_store(struct topicd *td)
{
	int64_t deadline = mono_ms() + TD_LOCK_WAIT_MS;
	char *err = NULL;
	int e;

	for (int tries = 0; store_open(td, &err) == -1; tries++) {
		e = errno;
		if (e != EWOULDBLOCK || mono_ms() >= deadline) {
			log_errx("topic %s: store: %s", td->topic, err ? err : "cannot open");
			free(err);
			errno = e;
			return -1;
		}
		if (tries == 0)
			log_info("topic %s: store locked; waiting for the previous topicd",
			    td->topic);
		free(err);
		err = NULL;
		sleep_ms(TD_LOCK_STEP_MS);
	}
	return 0;
}

/* Loads the store; 0, or -1 (logged). */
int
topicd_open(struct topicd *td)
{
	char *dir;

	xasprintf(&dir, "%s/topics", td->datadir);
	if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
		log_warn("%s", dir);
		free(dir);
		return -1;
	}
	free(dir);
	if (open_store(td) == -1)
		return -1;
	log_recovery(td);
	config_boot(td);
	if (dispatch_sync(td, true) == -1) {
		errno = ENOSPC;
		return -1;
	}
	td->need_sync = false;
	td->deliver_upto = td->next_seq;
	return 0;
}

/* Writes everything, checkpoints and frees; td->exit_code becomes 1 if
 * the store could not be closed cleanly. */
void
topicd_close(struct topicd *td)
{
	if (td->kv != NULL && dispatch_sync(td, true) == -1)
		td->exit_code = TOPICD_EXIT_IO;
	subs_free(td);
	store_close(td);
	ipc_reader_clear(&td->boot_in);
	gate_free(td);
	wbuf_free(&td->wb);
	wbuf_free(&td->kb);
	free(td->dlq_topic);
	free(td->stem);
	free(td->datadir);
	free(td->topic);
	td->dlq_topic = td->stem = td->datadir = td->topic = NULL;
}

void
topicd_stop(struct topicd *td, int code)
{
	if (code > td->exit_code)
		td->exit_code = code;
	event_base_loopbreak(td->base);
}

/* The CONFIG the master queued before starting us: 1, 0 on EOF, -1. */
static int
first_config(struct topicd *td)
{
	int64_t deadline = mono_ms() + TD_CONFIG_WAIT_MS, left;
	struct pollfd p = { .fd = IPC_CHANNEL_FD, .events = POLLIN };
	struct rec_config r;
	struct ipc_msg m;
	int rc;

	while ((rc = ipc_recv(IPC_CHANNEL_FD, &td->boot_in, &m)) != 1) {
		if (rc == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			log_warn("topic %s: channel", td->topic);
			return -1;
		}
		if ((left = deadline - mono_ms()) <= 0) {
			log_warnx("topic %s: no CONFIG from the master", td->topic);
			return -1;
		}
		if (poll(&p, 1, (int)left) == -1 && errno != EINTR) {
			log_warn("topic %s: poll", td->topic);
			return -1;
		}
	}
	if (m.type == IPC_CONFIG)
		config_check_version(td, m.body, m.len);
	rc = m.type == IPC_CONFIG && m.fd == -1 && dec_config(m.body, m.len, &r) == 0;
	if (rc) {
		td->rx++;		/* counted like every record (IDLE) */
		config_apply(td, &r);
	}
	else
		log_warnx("topic %s: protocol violation: %s before CONFIG", td->topic,
		    ipc_type_name(m.type));
	ipc_msg_clear(&m);
	return rc ? 1 : -1;
}

static void
on_chan_msg(struct ipc_chan *c, struct ipc_msg *m, void *arg)
{
	(void)c;
	dispatch_msg(arg, m);
}

static void
on_chan_err(struct ipc_chan *c, int err, void *arg)
{
	struct topicd *td = arg;

	if (err == EPROTO)
		fatalx("topic %s: malformed record from the master", td->topic);
	if (err == 0)
		log_info("topic %s: the master closed the channel", td->topic);
	else
		log_info("topic %s: channel: %s", td->topic, strerror(err));
	ipc_chan_free(c);
	td->chan = NULL;
	topicd_stop(td, 0);
}

static void
on_batch(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dispatch_end_batch(arg);
}

static void
on_work(evutil_socket_t fd, short what, void *arg)
{
	struct topicd *td = arg;

	(void)fd;
	(void)what;
	deliver_run(td);
	/* Deliveries with no batch to follow (a backlog read out): what every
	 * subscriber has taken goes now and then, not all at the next tick,
	 * which would hold the loop for as long as it took to deliver. */
	if (td->batch_n == 0 && !td->io_wait && td->kv != NULL &&
	    subs_min_cursor(td) - td->first_seq >= TD_TRIM_STEP)
		(void)dispatch_sync(td, false);		/* a full disk: retried */
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct topicd *td = arg;

	(void)fd;
	(void)what;
	stats_tick(td);
	room_check(td);
	if (!stats_tick_needed(td) && event_del(td->tick) == 0)
		td->tick_asleep = true;
}

/* After each pass of the loop, and at each record (a pass can last as
 * long as the master keeps the channel full): a record, a delivery or a
 * commit may have given the sleeping tick something to do. */
void
tick_wake(struct topicd *td)
{
	struct timeval second = { 1, 0 };

	if (!td->tick_asleep || !stats_tick_needed(td))
		return;
	if (event_add(td->tick, &second) == -1)
		fatalx("topic %s: cannot set up the tick", td->topic);
	td->tick_asleep = false;
}

/* The event loop, a pass at a time (tick_wake); 0 when stopped, -1. */
static int
loop(struct topicd *td)
{
	int rc;

	for (;;) {
		if ((rc = event_base_loop(td->base, EVLOOP_ONCE)) == -1)
			return -1;
		if (rc == 1 || event_base_got_break(td->base))
			return 0;
		tick_wake(td);
	}
}

/* The store's worker finished a sync or a checkpoint. */
static void
on_kv(evutil_socket_t fd, short what, void *arg)
{
	struct topicd *td = arg;

	(void)fd;
	(void)what;
	dispatch_durable(td);
}

/* The disk was full: try the waiting batch again. */
static void
on_io_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dispatch_end_batch(arg);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct topicd *td = arg;

	(void)what;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("topic %s: %s: stopping", td->topic, strsignal(sig));
		topicd_stop(td, 0);
		break;
	case SIGUSR1:
		stats_log(td);
		break;
	case SIGUSR2:
		log_debug("topic %s: SIGUSR2 ignored", td->topic);
		break;
	default:
		log_debug("topic %s: %s ignored (the master sends CONFIG)", td->topic,
		    strsignal(sig));
		break;
	}
}

static void
on_dring_trim(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	idle_trim_ring(arg);
}

static void
events_setup(struct topicd *td)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP };
	struct timeval second = { 1, 0 };

	if ((td->base = evloop_new()) == NULL)
		fatalx("cannot create the event base");
	td->chan = ipc_chan_new(td->base, IPC_CHANNEL_FD, on_chan_msg, on_chan_err, td);
	ipc_chan_adopt(td->chan, &td->boot_in);	/* what came with the CONFIG */
	td->batch_ev = event_new(td->base, -1, 0, on_batch, td);
	td->work_ev = event_new(td->base, -1, 0, on_work, td);
	td->tick = event_new(td->base, -1, EV_PERSIST, on_tick, td);
	td->io_timer = evtimer_new(td->base, on_io_retry, td);
	td->dring_trim = evtimer_new(td->base, on_dring_trim, td);
	td->kv_ev = event_new(td->base, kv_event_fd(td->kv), EV_READ | EV_PERSIST, on_kv, td);
	if (td->batch_ev == NULL || td->work_ev == NULL || td->tick == NULL || td->io_timer == NULL ||
	    td->dring_trim == NULL ||
	    td->kv_ev == NULL || event_add(td->tick, &second) == -1 ||
	    event_add(td->kv_ev, NULL) == -1)
		fatalx("cannot set up timers");
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		td->sigs[i] = evsignal_new(td->base, sigs[i], on_signal, td);
		if (td->sigs[i] == NULL || event_add(td->sigs[i], NULL) == -1)
			fatalx("cannot set up signal %d", sigs[i]);
	}
}

static void
events_free(struct topicd *td)
{
	for (size_t i = 0; i < sizeof(td->sigs) / sizeof(td->sigs[0]); i++)
		if (td->sigs[i] != NULL)
			event_free(td->sigs[i]);
	if (td->tick != NULL)
		event_free(td->tick);
	if (td->batch_ev != NULL)
		event_free(td->batch_ev);
	if (td->work_ev != NULL)
		event_free(td->work_ev);
	td->work_ev = NULL;
	if (td->io_timer != NULL)
		event_free(td->io_timer);
	if (td->dring_trim != NULL)
		event_free(td->dring_trim);
	td->dring_trim = NULL;
	if (td->kv_ev != NULL)
		event_free(td->kv_ev);
	if (td->chan != NULL)
		ipc_chan_free(td->chan);
	td->chan = NULL;
	event_base_free(td->base);
	td->base = NULL;
}

static void
send_ready(struct topicd *td)
{
	struct rec_ready r = { IPC_PROTO_VERSION, td->topic, td->next_seq };

	wbuf_reset(&td->wb);
	enc_ready(&td->wb, &r);
	dispatch_send(td, IPC_READY);
	if (td->next_seq > td->first_seq)
		log_info("topic %s: ready: messages %llu..%llu kept, %u subscribers", td->topic,
		    (unsigned long long)td->first_seq, (unsigned long long)td->next_seq - 1,
		    td->nsubs);
	else
		log_info("topic %s: ready: no message kept, newest seq %llu, %u subscribers",
		    td->topic, (unsigned long long)(td->next_seq > 0 ? td->next_seq - 1 : 0),
		    td->nsubs);
}

/* The loop's events and the channel go; a topicd stopped for room or
 * idleness (its store closed or, as FORGET asked, deleted) keeps the
 * channel's descriptor, to say SPARE on it. */
static void
keep_channel(struct topicd *td)
{
	int keep = -1;

	if (td->chan != NULL && td->went_idle &&
	    (td->exit_code == 0 || (td->forget && td->exit_code == TOPICD_EXIT_DELETED))) {
		if ((keep = fcntl(IPC_CHANNEL_FD, F_DUPFD_CLOEXEC, IPC_CHANNEL_FD + 1)) == -1)
			log_warn("cannot keep the channel");
		else
			spare_hold_signals();	/* the loop's handlers go */
	}
	events_free(td);		/* closes the channel */
	ipc_ring_free(td->dring);
	td->dring = NULL;
	td->spare = keep != -1 && dup2(keep, IPC_CHANNEL_FD) == IPC_CHANNEL_FD;
	if (keep != -1 && close(keep) == -1)
		log_warn("close");
}

/* true to go on; false with *code, the exit status. */
static bool
start(struct topicd *td, int *code)
{
	struct sigaction sa;
	int rc;

	*code = 0;
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		log_warn("prctl");
	if (getppid() != td->ppid) {
		log_info("topic %s: the master is gone already", td->topic);
		return false;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		log_warn("sigaction");
	if ((rc = first_config(td)) <= 0) {
		*code = rc == 0 ? 0 : 1;
		return false;
	}
	if (topicd_open(td) == -1) {
		*code = errno == EUCLEAN ? TOPICD_EXIT_DAMAGED : TOPICD_EXIT_IO;
		return false;
	}
	return true;
}

int
topicd_run(struct topicd *td)
{
	int code;

	if (!start(td, &code)) {
		topicd_close(td);
		return code;
	}
	events_setup(td);
	/* Announced before READY: no delivery can come before the master
	 * has it mapped. */
	if ((td->dring = ipc_ring_new(IPC_RING_SIZE)) == NULL)
		log_warn("topic %s: no shared ring; large deliveries go inline", td->topic);
	else
		ipc_chan_announce(td->chan, td->dring);
	send_ready(td);
	td->stats_dirty = true;
	stats_tick(td);
	if (loop(td) == -1)
		log_warnx("topic %s: event loop failed", td->topic);
	/* Finish the batch in hand: commit, and answer if the master is there. */
	dispatch_end_batch(td);
	(void)dispatch_sync(td, true);
	if (td->chan != NULL && ipc_chan_flush(td->chan, 1000) == -1)
		log_info("topic %s: answers left unsent", td->topic);
	event_free(td->kv_ev);		/* its descriptor goes with the store */
	td->kv_ev = NULL;
	topicd_close(td);
	keep_channel(td);
	return td->exit_code;
}
