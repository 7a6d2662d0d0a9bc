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

/* SIGHUP or SIGUSR1 sent to every topicd would end a spare (their
 * default action): ignored while it has no topic.  SIGTERM, SIGINT and
 * its parent's death still end it. */
static void
quiet_signals(void)
{
	static const int sigs[] = { SIGHUP, SIGUSR1, SIGUSR2 };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) == -1)
			log_warn("sigaction");
}

int
spare_wait(bool deleted, struct ipc_reader *in, char **topic)
{
	struct rec_take t;
	struct ipc_msg m;
	int rc;

	memset(in, 0, sizeof(*in));
	quiet_signals();
	(void)malloc_trim(0);
	setproctitle("spare");
	if (say_spare(deleted) == -1) {
		if (errno != EPIPE && errno != ECONNRESET)
			log_warn("spare topicd: channel");
		return errno == EPIPE || errno == ECONNRESET ? 0 : -1;
	}
	while ((rc = ipc_recv(IPC_CHANNEL_FD, in, &m)) != 1) {
		if (rc == 0)
			return 0;	/* let go */
		if ((errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
		    wait_for(POLLIN) == -1) {
			log_warn("spare topicd: channel");
			return -1;
		}
	}
	rc = m.type == IPC_TAKE && m.fd == -1 && dec_take(m.body, m.len, &t) == 0;
	if (rc)
		*topic = xstrdup(t.topic);
	else
		log_warnx("spare topicd: protocol violation: %s instead of TAKE",
		    ipc_type_name(m.type));
	ipc_msg_clear(&m);
	if (!rc)
		ipc_reader_clear(in);
	return rc ? 1 : -1;
}
