/* Starting a topicd: posix_spawn onto fixed fds (the channel on fd 3, the
 * executable on fd 4, everything else closed). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
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
			char *real;

			xasprintf(&cand, "%s/%s", dir, rel[i]);
			if (access(cand, X_OK) == 0) {
				/* The log names it without "..". */
				if ((real = realpath(cand, NULL)) == NULL)
					return cand;
				free(cand);
				return real;
			}
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

/* An upgrade replaces the topicd file while the old master runs: a topicd
 * it then started by name would be of the new release, speak another IPC
 * version, and fail its topic until the broker was restarted.  The master
 * holds the file it found instead, and runs that, as
 * /proc/self/fd/IPC_EXEC_FD in the child.  Without /proc it runs the file
 * by name, as before. */
int
topicd_hold(struct broker *b)
{
	char path[64];
	int fd, high;

	if ((fd = open(b->topicd_path, O_PATH | O_CLOEXEC)) == -1) {
		log_warn("cannot open the topicd executable %s", b->topicd_path);
		return -1;
	}
	/* Above the fds the child's are dup'ed onto, so that no dup2 of the
	 * spawn overwrites it before it is used. */
	if (fd <= IPC_EXEC_FD) {
		high = fcntl(fd, F_DUPFD_CLOEXEC, IPC_EXEC_FD + 1);
		if (high == -1) {
			log_warn("cannot hold the topicd executable %s", b->topicd_path);
			close(fd);
			return -1;
		}
		close(fd);
		fd = high;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (access(path, X_OK) == -1) {
		log_notice("topicd %s is started by name (%s: %s): an upgrade takes effect "
		    "on its next start", b->topicd_path, path, strerror(errno));
		close(fd);
		fd = -1;
	}
	b->topicd_fd = fd;
	return 0;
}

/* The topicd's command line: the topic, the data directory, and where the
 * master logs.  argv has room for 12. */
static void
topicd_argv(struct broker *b, const char *topic, char **argv)
{
	const char *file = log_get_file();
	int n = 0;

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
}

/* posix_spawn (a vfork underneath): the master's page tables are not
 * copied, which fork() would do for every topicd the master starts, at a
 * cost that grows with the master's memory.  The child gets the channel
 * on fd 3, the executable held on fd 4 (topicd_hold), nothing else open
 * above them, no blocked signal and SIGPIPE at its default. */
static int
spawn(struct broker *b, const char *topic, int chan, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char *argv[12];
	sigset_t none, pipe;
	int rc;

	topicd_argv(b, topic, argv);
	sigemptyset(&none);
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		return rc;
	if ((rc = posix_spawnattr_init(&at)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	bool held = b->topicd_fd > IPC_EXEC_FD;
	char exe[32];

	/* In the child, dup2 leaves the fd open across the exec (a script,
	 * like a test's fake topicd, needs it open after); topicd closes it. */
	snprintf(exe, sizeof(exe), "/proc/self/fd/%d", IPC_EXEC_FD);
	if ((rc = posix_spawn_file_actions_adddup2(&fa, chan, IPC_CHANNEL_FD)) == 0 &&
	    (!held || (rc = posix_spawn_file_actions_adddup2(&fa, b->topicd_fd,
	    IPC_EXEC_FD)) == 0) &&
	    (rc = posix_spawn_file_actions_addclosefrom_np(&fa, held ? IPC_EXEC_FD + 1 :
	    IPC_CHANNEL_FD + 1)) == 0 &&
	    (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF)) == 0 &&
	    (rc = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
	    (rc = posix_spawnattr_setsigdefault(&at, &pipe)) == 0)
		rc = posix_spawn(pid, held ? exe : b->topicd_path, &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

pid_t
topicd_spawn(struct broker *b, const char *topic, int *chan_fd)
{
	int sv[2], chan, rc;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("topic %s: socketpair", topic);
		return -1;
	}
	/* dup2 onto itself would leave close-on-exec set: never fd 3. */
	chan = sv[1];
	if (chan == IPC_CHANNEL_FD &&
	    (chan = fcntl(sv[1], F_DUPFD_CLOEXEC, IPC_CHANNEL_FD + 1)) == -1) {
		log_warn("topic %s: fcntl", topic);
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	rc = spawn(b, topic, chan, &pid);
	if (chan != sv[1])
		close(chan);
	close(sv[1]);
	if (rc != 0) {
		errno = rc;
		log_warn("topic %s: cannot start %s", topic, b->topicd_path);
		close(sv[0]);
		return -1;
	}
	*chan_fd = sv[0];
	return pid;
}
