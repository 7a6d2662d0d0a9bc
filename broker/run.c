/* The master's life: data directory and its lock, privileges, daemon
 * mode and pid file, the event loop, and the once-a-second tick that keeps
 * the process title (and the service manager's status) current.
 *
 * Start-up order: data directory (created for `user`, or checked to be
 * its) and its lock; listeners, bound while still root; -d's fork; the
 * privilege drop; then, as `user`, the stores, the pid file, and READY. */
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/unistd.h>
#include <event2/event.h>

#include "broker.h"
#include "clock.h"
#include "evloop.h"
#include "fdio.h"
#include "kvstore.h"
#include "log.h"
#include "xmalloc.h"

/* The data directory when the master does not change user. */
static int
make_data_dir(const char *dir)
{
	if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
		privs_log_cannot_create(dir, geteuid(), getegid(), errno);
		return -1;
	}
	return 0;
}

/* A directory in the data directory, as the user the master runs as. */
static int
make_sub_dir(const char *dir, const char *path)
{
	if (mkdir(path, 0750) == -1 && errno != EEXIST) {
		privs_log_unwritable(dir, path, errno);
		return -1;
	}
	return 0;
}

/* One broker per data directory: an exclusive lock held for life.  When
 * the master is to drop root, the lock file is given to the user.  The
 * directory is the user's: root follows no link there (one to a file of
 * root's would give that file away), and takes nothing but a plain file. */
static int
lock_data_dir(struct broker *b, int drop, uid_t uid, gid_t gid)
{
	struct stat st;
	char *path;
	int fd;

	xasprintf(&path, "%s/broker.lock", b->set.data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0640);
	if (fd == -1 && errno == ELOOP) {
		log_errx("%s is a symbolic link: remove it", path);
		free(path);
		return -1;
	}
	if (fd == -1) {
		privs_log_unwritable(b->set.data_dir, path, errno);
		free(path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_errx("%s is not a plain file of its own (a link, a device, a "
		    "directory?): remove it", path);
		close(fd);
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_errx("another broker is running on data directory %s (%s is locked): "
			    "stop it, or give this one another data_dir", b->set.data_dir, path);
		else
			log_errx("cannot lock %s: %s: put data_dir on a local file system",
			    path, strerror(errno));
		close(fd);
		free(path);
		return -1;
	}
	if (drop && fchown(fd, uid, gid) == -1) {
		log_errx("cannot give %s to user %s: %s: chown %s: %s", path, b->set.user,
		    strerror(errno), b->set.user, path);
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	b->lock_fd = fd;
	return 0;
}

/* "master 1883,4040,4041 clients=12 topics=5 running=2", and " spare=3"
 * while topicds wait between topics. */
static void
title_text(struct broker *b, char *buf, size_t len)
{
	char ports[64];
	int n;

	listeners_ports(b, ports, sizeof(ports));
	n = snprintf(buf, len, "master %s clients=%u topics=%u running=%u", ports, b->nclients,
	    b->ntopics, b->nlive);
	if (b->nspares > 0 && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " spare=%u", b->nspares);
}

void
broker_title(struct broker *b)
{
	char t[128];

	title_text(b, t, sizeof(t));
	setproctitle("%s", t);
	notify_status(t);
	b->title_dirty = false;
}

#define MAINTAIN_TICKS 10	/* seconds between syncs of the session store */
#define TRIM_TICKS 60		/* seconds between returns of free heap to the system */

/* A burst (publishes held for topicds that did not keep up, clients'
 * buffers) leaves the heap's pages free but kept: glibc returns only the
 * top of the heap by itself.  The master's RSS would stay at its peak. */
static void
heap_trim(void)
{
#ifdef __GLIBC__
	(void)malloc_trim(0);
#endif
}

/* Once a second: the title, sessions past persistent_client_expiration,
 * topicds idle for topicd_idle_timeout, max_held_bytes; every
 * MAINTAIN_TICKS, the session store is synced; every TRIM_TICKS, free
 * heap goes back. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	static unsigned ticks;

	(void)fd;
	(void)what;
	if (b->title_dirty)
		broker_title(b);
	sessions_expire(b);
	attach_retry_failed(b);
	live_expire(b);
	held_budget(b);		/* channels drain without a word */
	if (++ticks % MAINTAIN_TICKS == 0)
		store_maintain(b);
	if (ticks % TRIM_TICKS == 0)
		heap_trim();
}

/* -d, the classic way: fork, setsid, chdir /.  The parent waits on a pipe
 * until the child is ready (exit 0) or gave up (exit 1), so that start-up
 * errors reach the terminal (the child writes its errors to its stderr
 * until it has started, whatever log_dest says) and the exit status;
 * stdio is closed once the child is ready (daemon_ready). */
static int
daemon_fork(struct broker *b, int *ready_fd)
{
	int p[2];
	ssize_t n;
	char c = 0;

	if (b->conf_path != NULL && b->conf_path[0] != '/') {
		char *abs = broker_absolute(b->conf_path);	/* for SIGHUP after chdir */

		free(b->conf_path);
		b->conf_path = abs;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		log_err("cannot become a daemon: pipe");
		return -1;
	}
	switch (fork()) {
	case -1:
		log_err("cannot become a daemon: fork");
		close(p[0]);
		close(p[1]);
		return -1;
	case 0:
		break;
	default:
		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n == -1 && errno == EINTR);
		_exit(n == 1 && c == 'R' ? 0 : 1);
	}
	close(p[0]);
	*ready_fd = p[1];
	if (setsid() == -1 || chdir("/") == -1) {
		log_err("cannot become a daemon: setsid/chdir");
		return -1;
	}
	if (event_reinit(b->base) == -1)
		fatalx("cannot re-initialise the event loop after fork");
	return 0;
}

static int
daemon_ready(int ready_fd)
{
	int fd;

	if ((fd = open("/dev/null", O_RDWR)) == -1) {
		log_err("cannot become a daemon: /dev/null");
		return -1;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(fd, i) == -1) {
			log_err("cannot become a daemon: dup2");
			return -1;
		}
	if (fd > 2)
		close(fd);
	if (write(ready_fd, "R", 1) != 1) {
		log_err("cannot tell the parent that the daemon is ready");
		return -1;
	}
	close(ready_fd);
	return 0;
}

static int
write_pid_file(struct broker *b)
{
	char buf[32];
	int fd, n, rc, e;

	if (b->set.pid_file == NULL)
		return 0;
	fd = open(b->set.pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_errx("cannot write pid file %s: %s: create its directory, writable by uid "
		    "%ld, or change pid_file", b->set.pid_file, strerror(errno), (long)geteuid());
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	/* close() releases the descriptor even when it fails: it is not
	 * closed again, which could close one opened meanwhile. */
	rc = write_all(fd, buf, (size_t)n);
	e = errno;
	if (close(fd) == -1 && rc == 0) {
		rc = -1;
		e = errno;
	}
	if (rc == -1) {
		log_errx("cannot write pid file %s: %s: make room, or change pid_file",
		    b->set.pid_file, strerror(e));
		unlink(b->set.pid_file);
		return -1;
	}
	return 0;
}

/* "N records replayed": anything but 0 means the store was not closed
 * cleanly (a crash, SIGKILL, power loss) and was recovered. */
static void
log_store_opened(const char *what, struct kv *kv)
{
	struct kv_stats st;

	kv_get_stats(kv, &st);
	if (st.recovered > 0 || st.truncated > 0)
		log_notice("%s: store opened: %llu records replayed, %llu torn bytes cut "
		    "(it was not closed cleanly)", what, (unsigned long long)st.recovered,
		    (unsigned long long)st.truncated);
	else
		log_info("%s: store opened: 0 records replayed", what);
}

/* As the user the master runs as: what the stores need. */
static int
open_stores(struct broker *b)
{
	char *topics_dir;

	xasprintf(&topics_dir, "%s/topics", b->set.data_dir);
	if (make_sub_dir(b->set.data_dir, topics_dir) == -1) {
		free(topics_dir);
		return -1;
	}
	free(topics_dir);
	if ((b->topicd_path = topicd_find(b->set.topicd_path)) == NULL ||
	    topicd_hold(b) == -1)
		return -1;
	if (store_open(b) == -1)
		return -1;
	durable_init(b);
	mqtt_init(b);
	log_store_opened("sessions", b->store);
	return 0;
}

static int
setup(struct broker *b)
{
	struct timeval one = { 1, 0 };
	uid_t uid = 0;
	gid_t gid = 0;
	int drop, ready_fd = -1;

	if (getrandom(&b->boot_id, sizeof(b->boot_id), 0) != (ssize_t)sizeof(b->boot_id))
		b->boot_id = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 40);
	if ((drop = privs_target(&b->set, &uid, &gid)) == -1)
		return -1;
	if (drop ? privs_data_dir(b->set.data_dir, b->set.user, uid, gid) :
	    make_data_dir(b->set.data_dir))
		return -1;
	if (lock_data_dir(b, drop, uid, gid) == -1)
		return -1;
	if ((b->base = evloop_new()) == NULL)
		fatalx("cannot create the event loop");
	signals_init(b);
	if (listeners_open(b) == -1)
		return -1;
	if (b->daemonize && daemon_fork(b, &ready_fd) == -1)
		return -1;
	if (drop && log_file_give(uid) == -1)
		log_warn("cannot give log file %s to user %s: its topicds cannot log there, nor "
		    "itself after a SIGHUP", log_get_file(), b->set.user);
	if (drop && privs_drop(b->set.user, uid, gid) == -1)
		return -1;
	if (open_stores(b) == -1 || write_pid_file(b) == -1)
		return -1;
	sys_start(b);
	b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
	if (b->tick == NULL || event_add(b->tick, &one) == -1)
		fatalx("cannot arm the title timer");
	if (ready_fd != -1 && daemon_ready(ready_fd) == -1)
		return -1;
	return 0;
}

/* Frees what setup() got, whatever it got to. */
static void
teardown(struct broker *b)
{
	clients_free_all(b);
	children_free_all(b);
	if (b->store != NULL)
		store_close(b);
	mqtt_wills_free();
	sys_stop(b);
	listeners_free(b);
	signals_free(b);
	if (b->tick != NULL)
		event_free(b->tick);
	if (b->stop_timer != NULL)
		event_free(b->stop_timer);
	if (b->base != NULL)
		event_base_free(b->base);
	free(b->topicd_path);
	if (b->topicd_fd > IPC_EXEC_FD)
		close(b->topicd_fd);
	if (b->lock_fd != -1)
		close(b->lock_fd);
}

/* After teardown(): a supervisor that starts a new broker as soon as
 * the pid file is gone finds the data directory's lock free. */
static void
remove_pid_file(struct broker *b)
{
	if (b->set.pid_file != NULL && unlink(b->set.pid_file) == -1)
		log_warn("cannot remove pid file %s", b->set.pid_file);
}

int
broker_run(struct broker *b)
{
	char t[128];
	bool ran = false;
	int rc = 0;

	RB_INIT(&b->children);
	live_init(b);
	RB_INIT(&b->clients);
	TAILQ_INIT(&b->gated);
	TAILQ_INIT(&b->waiters);
	TAILQ_INIT(&b->dirty_sessions);
	b->lock_fd = -1;
	b->started_ms = mono_ms();
	b->next_req = 1;
	b->auth_failures = auth_failures_new();
	if (setup(b) == -1) {
		rc = 1;
		goto out;
	}
	broker_check_limits(b);
	registry_start_staged(b);
	sessions_register_missing(b);
	mqtt_wills_restore(b);
	broker_title(b);
	broker_log_auth(b);
	log_notice("started: version %s, pid %ld, data %s, topicd %s, boot %016llx",
	    BROKER_VERSION, (long)getpid(), b->set.data_dir, b->topicd_path,
	    (unsigned long long)b->boot_id);
	log_errors_to_stderr(false);	/* from now on, errors go where log_dest says */
	title_text(b, t, sizeof(t));
	notify_ready(t);
	ran = true;
	if (event_base_dispatch(b->base) == -1) {
		log_warnx("event loop failed");
		rc = 1;
	}
out:
	teardown(b);		/* closes the stores, then releases the lock */
	if (ran)
		remove_pid_file(b);
	settings_free(&b->set);
	auth_free(&b->auth);
	auth_failures_free(b->auth_failures);
	if (rc == 0)
		log_notice("stopped");
	return rc;
}
