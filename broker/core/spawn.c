/* Starting a topicd: fork + exec onto fixed fds (the channel on fd 3,
 * everything else closed), _exit(127) if exec fails. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "ipc_proto.h"
#include "log.h"
#include "xmalloc.h"

/* The topicd to run: the configured one, else one next to this binary
 * (installed side by side, or the build tree's topicd/topicd), else the
 * installed libexec one. */
char *
topicd_find(const char *configured)
{
	char exe[PATH_MAX], *dir, *cand;
	ssize_t n;

	if (configured != NULL) {
		if (access(configured, X_OK) == 0)
			return xstrdup(configured);
		log_errx("topicd_path %s is not executable: %s: set topicd_path to the "
		    "topicd program, or remove it to use the installed one", configured,
		    strerror(errno));
		return NULL;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		dir = dirname(exe);
		const char *rel[] = { "topicd", "../topicd/topicd", "../libexec/broker/topicd" };

		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			xasprintf(&cand, "%s/%s", dir, rel[i]);
			if (access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
	}
	cand = xstrdup(BROKER_LIBEXECDIR "/topicd");
	if (access(cand, X_OK) == 0)
		return cand;
	log_errx("cannot find the topicd executable next to the broker or as %s: install "
	    "it (make install), or set topicd_path", cand);
	free(cand);
	return NULL;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void __attribute__((noreturn))
exec_child(struct broker *b, const char *topic, int chan)
{
	const char *file = log_get_file();
	char *argv[12];
	int n = 0;
	sigset_t all;
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	/* The topicd logs where the master does. */
	argv[n++] = "topicd";
	argv[n++] = "-t";
	argv[n++] = (char *)topic;
	argv[n++] = "-D";
	argv[n++] = b->set.data_dir;
	if (b->verbose)
		argv[n++] = "-v";
	if (log_get_dests() & LOG_DEST_SYSLOG)
		argv[n++] = "-s";
	if (!(log_get_dests() & LOG_DEST_STDERR))
		argv[n++] = "-q";
	if (file != NULL) {
		argv[n++] = "-f";
		argv[n++] = (char *)file;
	}
	argv[n] = NULL;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	if (chan != IPC_CHANNEL_FD) {
		if (dup2(chan, IPC_CHANNEL_FD) == -1)
			_exit(127);
	} else if (fcntl(chan, F_SETFD, 0) == -1) {
		_exit(127);
	}
	if (close_range(IPC_CHANNEL_FD + 1, ~0U, 0) == -1)
		_exit(127);
	execv(b->topicd_path, argv);
	_exit(127);
}

pid_t
topicd_spawn(struct broker *b, const char *topic, int *chan_fd)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("topic %s: socketpair", topic);
		return -1;
	}
	pid = fork();
	if (pid == -1) {
		log_warn("topic %s: fork", topic);
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		exec_child(b, topic, sv[1]);
	}
	close(sv[1]);
	*chan_fd = sv[0];
	return pid;
}
