/* topicd: the process that owns one topic.  Started by the master with
 * its channel on fd 3: topicd -t TOPIC -D DATADIR [-qsv] [-f LOGFILE]
 * (-s: also syslog, -f: also a file, -q: not stderr; as the master logs) */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "ipc_proto.h"
#include "log.h"
#include "topic.h"
#include "topicd.h"
#include "xmalloc.h"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: topicd -t topic -D datadir [-qsv] [-f logfile]\n");
	exit(2);
}

/* Its channel is a SOCK_SEQPACKET socket on fd 3, which only the master
 * gives: run by hand, it says so rather than fail on the first read. */
static void
need_channel(void)
{
	int type = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(IPC_CHANNEL_FD, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
	    type != SOCK_SEQPACKET) {
		fprintf(stderr, "topicd: no channel on fd %d: topicd is started by broker(8), "
		    "not by hand\n", IPC_CHANNEL_FD);
		exit(2);
	}
}

/* The topic it was started for, then those it takes as a spare. */
static int
serve(const char *topic, const char *datadir, bool verbose, pid_t ppid, int argc, char *argv[])
{
	char *dir = xstrdup(datadir), *next = NULL;
	struct ipc_reader in;
	struct topicd td;
	int code, rc;

	/* Copies the arguments: the title may overwrite them. */
	topicd_init(&td, topic, dir, verbose);
	td.ppid = ppid;
	setproctitle_init(argc, argv, environ);
	for (unsigned served = 1;; served++) {
		code = topicd_run(&td);
		if (!td.spare || served >= SPARE_MAX_TOPICS)
			break;
		/* Let go, it exits as it would have (0, or that its store
		 * is deleted); a bad TAKE is the next topic's failure. */
		if ((rc = spare_wait(td.forget, &in, &next)) != 1) {
			code = rc == 0 ? code : 1;
			break;
		}
		topicd_init(&td, next, dir, verbose);
		td.ppid = ppid;
		td.boot_in = in;
		free(next);
	}
	free(dir);
	return code;
}

int
main(int argc, char *argv[])
{
	const char *topic = NULL, *datadir = NULL, *logfile = NULL;
	int dests = LOG_DEST_STDERR;
	bool verbose = false;
	pid_t ppid = getppid();
	enum topic_err e;
	int ch, flags;

	while ((ch = getopt(argc, argv, "t:D:vqsf:")) != -1) {
		switch (ch) {
		case 't':
			topic = optarg;
			break;
		case 'D':
			datadir = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'q':
			dests &= ~LOG_DEST_STDERR;
			break;
		case 's':
			dests |= LOG_DEST_SYSLOG;
			break;
		case 'f':
			dests |= LOG_DEST_FILE;
			logfile = optarg;
			break;
		default:
			usage();
		}
	}
	if (topic == NULL || datadir == NULL || optind != argc)
		usage();
	if ((e = topic_check_name(topic, strlen(topic))) != TOPIC_OK) {
		fprintf(stderr, "topicd: -t: invalid topic name: %s\n", topic_strerror(e));
		usage();
	}
	need_channel();
	/* What the master ran us as (IPC_EXEC_FD, an O_PATH descriptor), when
	 * it held the file: not ours to keep; anything else there is left
	 * alone.  The name the kernel took from that path is a number: ps,
	 * top and pgrep show topicd. */
	if ((flags = fcntl(IPC_EXEC_FD, F_GETFL)) != -1 && (flags & O_PATH))
		(void)close(IPC_EXEC_FD);
	if (prctl(PR_SET_NAME, "topicd", 0, 0, 0) == -1)
		fprintf(stderr, "topicd: cannot set its name: %s\n", strerror(errno));
	if (log_init("topicd", verbose ? LOG_LVL_DEBUG : LOG_LVL_NOTICE, dests, logfile) == -1)
		fprintf(stderr, "topicd: cannot open log file %s: %s\n", logfile, strerror(errno));
	if (xmalloc_keep_freed() == -1)
		log_debug("the allocator keeps its own thresholds");
	return serve(topic, datadir, verbose, ppid, argc, argv);
}
