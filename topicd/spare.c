/* Between topics.  A topicd stopped for room or idleness (STOP), its
 * last IDLE said and its store closed, can serve another topic rather
 * than exit: a new process costs more than the opening of a store (see
 * the master's spare.c).  It says SPARE and waits on its channel, with
 * nothing of the last topic kept: its state freed, its store's thread
 * joined, its descriptors closed (the channel and the log's excepted),
 * the heap given back.  The master sends TAKE, with the topic, then
 * CONFIG as at a start; or it closes the channel, and the topicd exits.
 *
 * A process serves at most SPARE_MAX_TOPICS topics: whatever the code
 * of one topic leaves behind (a fragmented heap) goes with the process. */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "ipc.h"
#include "log.h"
#include "topicd.h"
#include "xmalloc.h"

/* Waits on the channel for what it wants (POLLIN, POLLOUT); -1 if that
 * failed. */
static int
wait_for(short what)
{
	struct pollfd p = { .fd = IPC_CHANNEL_FD, .events = what };

	while (poll(&p, 1, -1) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

static int
say_spare(bool deleted)
{
	struct rec_spare r = { deleted ? SPARE_DELETED : 0 };
	struct wbuf w;
	int rc;

	wbuf_init(&w);
	enc_spare(&w, &r);
	while ((rc = ipc_send(IPC_CHANNEL_FD, IPC_SPARE, w.data, w.len, -1)) == -1 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && wait_for(POLLOUT) == 0)
		;
	wbuf_free(&w);
	return rc;
}

static const int stop_sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };

/* From the end of its loop (whose handlers go with it) until SPARE is
 * said: a SIGTERM then would end it before the master knows its topic
 * was done with, which would look like a crash. */
void
spare_hold_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(stop_sigs) / sizeof(stop_sigs[0]); i++)
		sigaddset(&set, stop_sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		log_warn("sigprocmask");
}

/* SIGHUP or SIGUSR1 sent to every topicd would end a spare (their
 * default action): ignored while it has no topic.  SIGTERM, SIGINT and
 * its parent's death end it, once SPARE is said. */
static void
release_signals(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(stop_sigs) / sizeof(stop_sigs[0]); i++) {
		if (stop_sigs[i] != SIGTERM && stop_sigs[i] != SIGINT &&
		    sigaction(stop_sigs[i], &sa, NULL) == -1)
			log_warn("sigaction");
		sigaddset(&set, stop_sigs[i]);
	}
	if (sigprocmask(SIG_UNBLOCK, &set, NULL) == -1)
		log_warn("sigprocmask");
}

/* The TAKE, or 0 at the end of the channel (let go: records before it,
 * sent after the topic's end, are the reason and go unread). */
static int
take(struct ipc_reader *in, char **topic)
{
	struct rec_take t;
	struct ipc_msg m;
	int rc;

	for (;;) {
		while ((rc = ipc_recv(IPC_CHANNEL_FD, in, &m)) != 1) {
			if (rc == 0)
				return 0;
			if ((errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
			    wait_for(POLLIN) == -1) {
				log_warn("spare topicd: channel");
				return 0;
			}
		}
		if (m.type == IPC_TAKE)
			break;
		log_debug("spare topicd: %s, sent before it was let go", ipc_type_name(m.type));
		ipc_msg_clear(&m);
	}
	rc = m.fd == -1 && dec_take(m.body, m.len, &t) == 0;
	if (rc)
		*topic = xstrdup(t.topic);
	else
		log_warnx("spare topicd: protocol violation: a bad TAKE record");
	ipc_msg_clear(&m);
	return rc ? 1 : -1;
}

int
spare_wait(bool deleted, struct ipc_reader *in, char **topic)
{
	int rc;

	memset(in, 0, sizeof(*in));
	(void)malloc_trim(0);
	setproctitle("spare");
	if (say_spare(deleted) == -1) {
		if (errno != EPIPE && errno != ECONNRESET)
			log_warn("spare topicd: channel");
		release_signals();
		return 0;
	}
	release_signals();
	if ((rc = take(in, topic)) != 1)
		ipc_reader_clear(in);
	return rc;
}
